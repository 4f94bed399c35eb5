/* SPDX-License-Identifier: MIT */
/*
 * stitch: safe live code patching inside running, multi-threaded processes.
 *
 * This header holds what every feature shares: error codes, explicit
 * initialisation, and statistics.  Feature APIs live beside it:
 *   <stitch/static_key.h>   jump labels: a branch that costs one NOP when off.
 *
 * Error convention: every public call returns 0 on success or a negative
 * STITCH_E* code.  On error nothing was changed.  stitch_strerror() names
 * the code; stitch_last_error() gives the calling thread a sentence about
 * its last failure (which site, which bytes were expected and found, which
 * system call failed and why).
 *
 * Concurrency: updates are serialised by one library-wide lock.  None of
 * the update calls is async-signal-safe; do not call them from a signal
 * handler.  Code that runs through patch sites needs no lock and no
 * registration: that is the point of the library.
 */
#ifndef STITCH_STITCH_H
#define STITCH_STITCH_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Marks the library's public entry points (it is built with hidden visibility). */
#define STITCH_API __attribute__((visibility("default")))

/* Error codes, returned negated.  Each meaning is listed once, here. */
enum stitch_error {
	STITCH_OK = 0,
	STITCH_EINVAL = 1,     /* an argument is invalid (NULL, bad length, bad option) */
	STITCH_EMISMATCH = 2,  /* the bytes at a site are not the ones expected; nothing written */
	STITCH_EALIGN = 3,     /* a site or a target is not aligned as the instruction requires */
	STITCH_ERANGE = 4,     /* a target is out of reach of the instruction's displacement */
	STITCH_EUNKNOWN = 5,   /* an instruction that stitch does not know where one was expected */
	STITCH_ENOMEM = 6,     /* memory allocation failed; nothing changed */
	STITCH_EPROTECT = 7,   /* the code could not be written (mprotect or /proc/self/mem failed) */
	STITCH_ENOSYNC = 8,    /* no way to synchronise other threads' instruction fetch */
	STITCH_EQUIESCE = 9,   /* a thread could not be brought to report where it is */
	STITCH_ENOTFOUND = 10, /* unknown site, key or module */
	STITCH_EBACKEND = 11,  /* no code-writing backend passed the start-up self-test */
	STITCH_ESYS = 12,      /* a system call failed for another reason (see stitch_last_error) */
	STITCH_EOVERFLOW = 13, /* a counter (key reference count) would overflow or underflow */
};

/* Short constant text for an error code (positive or negative). */
STITCH_API const char *stitch_strerror(int err);

/*
 * The calling thread's description of its last failure, e.g.
 * "site 0x5555...: expected 0f 1f 44 00 00, found 90 90 90 90 90".
 * Empty string if none.  Valid until the thread's next stitch call.
 */
STITCH_API const char *stitch_last_error(void);

/*
 * Initialise the patching engine: register for membarrier SYNC_CORE,
 * choose a code-writing backend by self-test, install the trap handler
 * where the architecture's protocol needs one.  Every other call does this
 * lazily; call it early to fail early.  Idempotent and thread-safe.
 *
 * Environment:
 *   STITCH_WRITE_BACKEND=procmem|mprotect   skip the self-test, force one
 *   STITCH_QUIESCE_SIGNAL=N                 signal used to ask threads where they are
 *                                           (default SIGRTMIN+5)
 *   STITCH_QUIESCE_TIMEOUT_MS=N             give up on a silent thread after N ms (2000)
 */
STITCH_API int stitch_init(void);

/* Names of the write backends, as reported by stitch_backend_name(). */
STITCH_API const char *stitch_backend_name(void);

struct stitch_stats {
	uint64_t batches;        /* patch batches applied */
	uint64_t sites_written;  /* instruction sites rewritten */
	uint64_t syncs;          /* cross-thread instruction syncs issued (membarrier et al.) */
	uint64_t protect_calls;  /* mprotect calls made by the mprotect backend */
	uint64_t trap_hits;      /* threads that ran into a transient trap (x86 int3) */
	uint64_t quiesce_rounds; /* quiescence rounds (all threads signalled once) */
	uint64_t quiesce_fixups; /* thread PCs rewritten by a quiescence fixup */
	uint64_t graph_overflows; /* traced calls whose return was not hooked: shadow stack full */
	uint64_t world_stops;    /* times every other thread was parked (stop the world) */
	/* traced calls that ran untraced because their thread was already in
	 * the tracing code: a callback's own calls, a signal handler's that
	 * interrupted one (the recursion guard, stitch/ftrace.h) */
	uint64_t ftrace_guard_skips;
};

/* A snapshot of the library's counters since start-up. */
STITCH_API void stitch_get_stats(struct stitch_stats *out);

#ifdef __cplusplus
}
#endif

#endif /* STITCH_STITCH_H */
