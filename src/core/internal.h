/* SPDX-License-Identifier: MIT */
/*
 * Internal interfaces of the portable core.  Nothing here builds an
 * opcode: instruction knowledge lives in src/arch/<arch>/.
 *
 * Layers, bottom up:
 *   text.c      the one place that writes code: write backends, syncs
 *   batch.c     compare-and-patch queues, applied by the arch protocol
 *   quiesce.c   where is every thread? (signal, read/rewrite PC)
 *   jump_label.c static keys on top of batches
 */
#ifndef STITCH_CORE_INTERNAL_H
#define STITCH_CORE_INTERNAL_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <signal.h>
#include <ucontext.h>

#include "stitch/stitch.h"

#define STITCH_MAX_INSN 8 /* longest byte sequence one patch may replace (an AArch64 or RISC-V
			    * literal; x86-64 sites are at most 5): 32-byte patches, and a
			    * switch of 100 000 sites streams its patch list ~10 times */

/* ---- errors (error.c) ---------------------------------------------------- */

/* Record a message for stitch_last_error() and return -err. */
int stitch_fail(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Like stitch_fail, adding ": strerror(errno)" for the errno at call time. */
int stitch_fail_errno(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/*
 * Both return -err.  Saying so at the call site lets the static analyser
 * (scripts/lint.sh) follow error paths: it cannot see into error.c, and
 * would otherwise assume err = stitch_fail(ENOMEM, ...) may be 0 and go on
 * to use the allocation that failed.  err must have no side effects.
 */
#define stitch_fail(err, ...) ({ stitch_fail((err), __VA_ARGS__); -(err); })
#define stitch_fail_errno(err, ...) ({ stitch_fail_errno((err), __VA_ARGS__); -(err); })
/* Clear the calling thread's last error (at the start of public calls). */
void stitch_clear_error(void);
/* Format len bytes as "0f 1f 44 00 00" into buf (at least 3*len+1 bytes). */
char *stitch_hex(char *buf, const uint8_t *bytes, size_t len);
/* A state that cannot happen: report where and abort. */
__attribute__((noreturn)) void stitch_die_at(const char *file, int line, const char *msg);
#define stitch_die(msg) stitch_die_at(__FILE__, __LINE__, (msg))

/* ---- library state (init.c) ---------------------------------------------- */

struct stitch_counters {
	atomic_uint_fast64_t batches, sites_written, syncs, protect_calls;
	atomic_uint_fast64_t trap_hits, quiesce_rounds, quiesce_fixups, graph_overflows, world_stops;
	atomic_uint_fast64_t ftrace_guard_skips;
};
extern struct stitch_counters stitch_counters;
#define stitch_count(field, n) atomic_fetch_add_explicit(&stitch_counters.field, (n), memory_order_relaxed)

/*
 * The update lock: serialises every code modification and every change to
 * the site tables.  Held across a whole operation (all phases of a batch).
 * Not async-signal-safe; never taken in a signal handler.
 */
void stitch_update_lock(void);
void stitch_update_unlock(void);

/* Initialise once; returns 0 or the (sticky) error of the first attempt. */
int stitch_ensure_init(void);

/*
 * fork() (pthread_atfork handlers registered by init): the prepare handler
 * takes the update lock, so a fork waits for any patch operation in
 * progress and the child gets whole operations only, and a free lock (the
 * thread that held it does not exist in the child).  In the child, the
 * layers below drop what belonged to the parent process.
 */
void stitch_text_after_fork_child(void);
void stitch_quiesce_after_fork_child(void);
/* Function tracing's RCU readers (ftrace.c, "fork()"): prepare, after the
 * update lock; parent, before it is released; child, first of all. */
void stitch_ftrace_before_fork(void);
void stitch_ftrace_after_fork_parent(void);
void stitch_ftrace_after_fork_child(void);

/* ---- writing code (text.c) ------------------------------------------------ */

enum stitch_backend_kind { STITCH_BACKEND_NONE, STITCH_BACKEND_PROCMEM, STITCH_BACKEND_MPROTECT };

/* Pick and self-test a backend (called once from init). */
int stitch_text_init(void);
enum stitch_backend_kind stitch_text_backend(void);

struct stitch_patch;
/*
 * A write session: make every page touched by the patches writable (mprotect
 * backend; /proc/self/mem needs nothing), store, close.  Opening fails
 * before anything is changed; closing restores each page's original
 * protection as read from /proc/self/maps.  One session per batch, so a
 * page shared by many sites is opened once.
 */
int stitch_text_open(const struct stitch_patch *patches, size_t count);
/* Refuse (-STITCH_EPROTECT) a patch outside executable mappings; reads nothing there. */
int stitch_text_check(const struct stitch_patch *patches, size_t count);
/* stitch_text_open() of exactly the patches the last stitch_text_check()
 * passed, their addresses unchanged since: the check noted which mappings
 * they touch, so the open does not walk them again. */
int stitch_text_open_checked(const struct stitch_patch *patches, size_t count);
/* Drop the mappings the last check read (kept for the next open; update lock release). */
void stitch_text_forget_checked(void);
/* Is [addr, addr + len) mapped executable?  0, -STITCH_EPROTECT (with a
 * message) if not, or another error when it could not tell.  A target of
 * ours (a static call's function, a direct trampoline), not a patch: it
 * keeps nothing for the next open.  Update lock held. */
int stitch_text_check_code(uintptr_t addr, size_t len);
/*
 * One store into code, inside a session.  A store of 1, 2, 4 or 8
 * naturally aligned bytes is a single-copy-atomic store; longer or
 * unaligned stores are plain copies that the caller's protocol must keep
 * away from any instruction fetch.  Does not sync instruction fetch.
 */
int stitch_text_store(uintptr_t addr, const uint8_t *bytes, size_t len);
/* One aligned word of data that other threads may read meanwhile (a GOT
 * slot), stored atomically; a read-only page is made writable around the
 * store (text.c says why not /proc/self/mem). */
int stitch_store_word(uintptr_t *word, uintptr_t value);
/*
 * Redirect the program's bound references to a function (GOT slots, data
 * words; every loaded module but the one holding `self`) to another
 * definition (imports.c).  *real is the original, looked up by the caller
 * (a reference is redirected only from it, or from a lazy binding's PLT
 * stub; NULL: none is).  Sets each one's `bound` to how many references now
 * go to `to`, `missed` to how many go elsewhere, and `bound_in_probe` to
 * how many of the first go from the module holding `probe` (if not NULL);
 * returns 0 or a negative error.
 */
struct stitch_import_redirect {
	const char *name;
	void *to;
	void *volatile *real;
	const void *probe;
	int bound, missed, bound_in_probe; /* out */
};
int stitch_redirect_imports(struct stitch_import_redirect *r, size_t n, const void *self);
/*
 * A function libstitch interposes (defines under a name that libc or
 * libgcc defines too) and the word holding the definition it calls on to.
 * `ours` is a static function exported under `name` by STITCH_EXPORT_AS:
 * the static's address is ours for sure, where the exported name's may be
 * bound to the original (in a dlopen()ed libstitch, its own references to
 * the name resolve in the global scope first).
 */
struct stitch_interposer {
	const char *name;
	void *ours;
	void *volatile *next;
};
/* name is the declarator: it cannot be parenthesised */
#define STITCH_EXPORT_AS(name, fn) extern __typeof(fn) name __attribute__((alias(#fn), visibility("default"))) // NOLINT(bugprone-macro-parentheses)
/* stitch_redirect_imports() of n interposers: each from *next to ours;
 * r has n entries, filled here (probe: see above, may be NULL). */
int stitch_redirect_interposers(const struct stitch_interposer *ip, struct stitch_import_redirect *r, size_t n,
				const void *probe, const void *self);
/* Whether addr is in the main program's image. */
bool stitch_in_main_program(const void *addr);
/*
 * The same part of many patches, in one go: for every patch p[i] (sorted by
 * address, none overlapping) of at least min_len bytes, bytes [from,
 * min(to, len)) of its new or old bytes, or `fill` repeated, each as by
 * stitch_text_store() - except that a store of what memory already holds
 * is left out, and the procmem backend merges the stores of a page run
 * into one write (text.c says why that is safe).  Inside a session; no sync.
 */
enum stitch_store_src { STITCH_STORE_NEW, STITCH_STORE_OLD, STITCH_STORE_FILL };
struct stitch_store_part {
	size_t from, to;
	size_t min_len;
	enum stitch_store_src src;
	uint8_t fill;
};
int stitch_text_store_patches(const struct stitch_patch *p, size_t n, const struct stitch_store_part *part);
int stitch_text_close(void);
/*
 * Make every store so far visible to instruction fetch on every thread of
 * the process: local cache maintenance over the patched ranges and one
 * cross-thread core sync (membarrier SYNC_CORE, or the architecture's own
 * call).  Counts one sync.
 */
int stitch_text_sync(const struct stitch_patch *patches, size_t count);
/*
 * The one-step protocol: store every patch's new bytes (one single-copy-
 * atomic store each) in one session, then one sync.  For changes each of
 * which may be observed half-way by no thread (an aligned instruction word
 * swapped for one a concurrent thread may execute instead).  Even after a
 * failed store the sync publishes what was written: each site then holds
 * its old or its new bytes.
 */
int stitch_text_store_all_and_sync(const struct stitch_patch *patches, size_t count);
int stitch_sync_init(void);

/*
 * Test instrumentation (tests/stress/preempt_keys.c): when set, called with 0
 * just before a batch's protocol starts writing, and with 1, 2, ... after
 * each sync of that batch, with the update lock held.  NULL in production.
 */
extern void (*stitch_batch_step_hook)(unsigned step);
void stitch_batch_step(unsigned step);
void stitch_batch_synced(void);

/* ---- patch batches (batch.c) ---------------------------------------------- */

/* Replace len bytes at addr: they must currently be `old`; become `new_bytes`. */
struct stitch_patch {
	uintptr_t addr;
	uint8_t len;
	bool data; /* a literal the code loads, never executed (the patch log gives it no reader) */
	uint8_t lead; /* bytes before addr the patched instruction depends on (RISC-V: the AUIPC
		       * before a JALR), which the patch log makes part of the site */
	uint8_t old[STITCH_MAX_INSN];
	uint8_t new_bytes[STITCH_MAX_INSN];
};

/* memcmp(a, b, n) == 0 for the few bytes of a site, without a library call
 * per site; 4 to 8 bytes (every site of 100 000 in a switch) as two
 * overlapping 4-byte words, no byte loop. */
static inline bool stitch_same_bytes(const uint8_t *a, const uint8_t *b, size_t n)
{
	if (n >= 4 && n <= 8) {
		uint32_t a0, a1, b0, b1;
		memcpy(&a0, a, 4);
		memcpy(&a1, a + n - 4, 4);
		memcpy(&b0, b, 4);
		memcpy(&b1, b + n - 4, 4);
		return ((a0 ^ b0) | (a1 ^ b1)) == 0;
	}
	uint8_t d = 0;
	for (size_t i = 0; i < n; i++)
		d |= a[i] ^ b[i];
	return d == 0;
}

struct stitch_batch {
	struct stitch_patch *patches;
	size_t count, capacity;
	const char *operation; /* what the batch does, for the patch log */
};

void stitch_batch_init(struct stitch_batch *b);
void stitch_batch_free(struct stitch_batch *b);
int stitch_batch_add(struct stitch_batch *b, uintptr_t addr, const uint8_t *old, const uint8_t *new_bytes,
		     size_t len);
/*
 * Compare every site with its `old` bytes (all of them, before any write),
 * then hand the batch to the architecture's protocol (arch_batch_apply).
 * On error nothing has been written.  Caller holds the update lock.
 */
int stitch_batch_apply_locked(struct stitch_batch *b);
/* The same for patches already in an array: queue them all, apply, free. */
int stitch_apply_patches_locked(const struct stitch_patch *p, size_t n, const char *operation);
/* The same without the copy: the batch filters and sorts p itself (the caller's scratch). */
int stitch_apply_patches_inplace_locked(struct stitch_patch *p, size_t n, const char *operation);

/* Fill *p: replace len bytes at addr, `old` now, `new_bytes` after. */
void stitch_patch_init(struct stitch_patch *p, uintptr_t addr, const void *old, const void *new_bytes, size_t len);
/* qsort, skipped when the array is already in order (sites usually come sorted). */
void stitch_sort_if_needed(void *base, size_t n, size_t size, int (*cmp)(const void *, const void *));
/* Comparison of two uintptr_t, for qsort and stitch_sort_if_needed. */
int stitch_cmp_uintptr(const void *a, const void *b);
/* stitch_sort_if_needed() of uintptr_t, its check without a call per element. */
void stitch_sort_uintptr(uintptr_t *v, size_t n);

/*
 * Scratch arrays of one operation, kept from one operation to the next
 * (update lock held).  Switching 100 000 sites needs megabytes of patch
 * lists and tables; fresh memory from malloc comes as new mappings that
 * cost a page fault per 4 KiB touched, a fifth of such a switch.  Each
 * slot grows to the largest size asked of it and keeps that memory for
 * the life of the process; its contents do not survive the next call for
 * the same slot.  Nested users take different slots.  NULL (with an error
 * recorded) when out of memory.
 */
enum stitch_scratch_slot {
	STITCH_SCRATCH_FTRACE,   /* core/ftrace.c commit() */
	STITCH_SCRATCH_ARCH,     /* arch_ftrace_apply(): the patch list */
	STITCH_SCRATCH_BATCH,    /* stitch_apply_patches_locked()'s copy */
	STITCH_SCRATCH_NOP_RUNS, /* x86 int3 batch: which sites' old bytes are several NOPs */
	STITCH_SCRATCH_QRANGES,  /* x86 int3 batch: the ranges its quiescence waits for */
	STITCH_SCRATCH_RUN,      /* text.c: a page run being written */
	STITCH_SCRATCH_SELECT,   /* core/ftrace.c select_filter(): a module's bitmaps */
	STITCH_SCRATCH_SLOTS
};
void *stitch_scratch(enum stitch_scratch_slot slot, size_t bytes);

/* ---- quiescence (quiesce.c) ------------------------------------------------ */

struct stitch_range {
	uintptr_t start, end; /* [start, end) */
};

/*
 * Called in the signal handler of each interrupted thread with its PC; may
 * rewrite *pc (seed 004's "replay": a thread at +4 moved back to +0).
 * Must be async-signal-safe.  Returns true if it changed *pc.
 */
typedef bool (*stitch_pc_fixup_fn)(uintptr_t *pc, void *arg);

/*
 * signals.c: the program's signal handlers run inside a wrapper that keeps,
 * per thread, the contexts they interrupted (sigaction() and signal() are
 * interposed).  stitch_signals_init() wraps handlers installed earlier;
 * the library installs its own with stitch_sigaction_raw().  In a signal
 * handler: stitch_nested_contexts() gives the calling thread's contexts
 * interrupted by handlers still running (outermost first), and
 * stitch_nested_set_pc() moves one (the kernel resumes it there).
 */
void stitch_signals_init(void);
int stitch_sigaction_raw(int sig, const struct sigaction *sa, struct sigaction *old);
size_t stitch_nested_contexts(ucontext_t **out, size_t max);
void stitch_nested_set_pc(ucontext_t *uc, uintptr_t pc);

int stitch_quiesce_init(void);
/* Under an emulator (stitch_text_emulated()): leave the threads that
 * already block the quiescence signal out of every request (qemu's own). */
void stitch_quiesce_note_emulator_threads(void);
bool stitch_text_emulated(void);
/*
 * Make sure no thread of the process is inside any of the ranges.  Every
 * other thread is signalled and reports its PC (after the fixup, if any);
 * threads found inside a range are asked again until they have left.
 * Threads that exit meanwhile count as outside; threads created after the
 * call starts are not waited for (they start outside every range, and run
 * code synced before the call).  A thread that blocks the signal makes the
 * call fail with -STITCH_EQUIESCE once the timeout passes, naming it.
 * With nranges == 0 it waits until every thread has passed one instruction
 * boundary after the call began (a grace period).
 */
int stitch_quiesce(const struct stitch_range *ranges, size_t nranges, stitch_pc_fixup_fn fixup, void *arg);

/*
 * Stop the world (the kernel's stop_machine): park every other thread of
 * the process at an instruction boundary, inside the quiescence signal
 * handler, until stitch_resume_world().  While the world is stopped the
 * caller may rewrite any instruction (the CMODX list does not matter: no
 * thread executes), then it must stitch_text_sync() before resuming.  The
 * fixup runs for each parked thread when it parks (e.g. to move a thread
 * out of a sequence being rewritten), and may be NULL.  Threads created
 * while stopping are parked too (the thread list is re-read until no new
 * thread appears).  A thread that blocks the signal cannot be parked: the
 * call fails with -STITCH_EQUIESCE after the timeout and nothing stays
 * stopped.  Caller holds the update lock; calls do not nest.
 */
int stitch_stop_world(stitch_pc_fixup_fn fixup, void *arg);
/* A thread of the process (this one included) that blocks signal `sig`
 * now, or 0 if none does (or /proc/self/task cannot be read). */
pid_t stitch_thread_blocking(int sig);
/*
 * While the world is stopped, after the stores and their sync: did a thread
 * that could not be parked (it blocks the signal, and was asleep in a system
 * call) run since the stop?  It may then have met the stores half done.
 * -STITCH_EQUIESCE with a message if so: the caller puts the old code back
 * (an error must mean that nothing changed) before resuming.  A wake-up
 * after this check is harmless: the code is whole again.
 */
int stitch_world_check_sleepers(void);
/* Cannot fail: whether a sleeper ran is asked before, above. */
void stitch_resume_world(void);

/*
 * The stopped-world protocol, for changes no thread may observe half done
 * (instructions outside the CMODX list, multi-instruction sequences):
 *   0  sort, refuse patches outside executable code
 *   1  stop the world (the fixup moves parked threads to a safe PC)
 *   2  compare every site with its old bytes (mismatch: nothing written)
 *   3  store every patch, sync
 *   4  resume
 * *written tells whether step 3's bytes stayed: a store that fails
 * part-way, a failed sync, or a signal-blocking sleeper that woke up during
 * the stores (stitch_world_check_sleepers) has them undone before resuming,
 * with an error.  Caller holds the update lock.
 */
int stitch_apply_stopped(struct stitch_patch *p, size_t n, stitch_pc_fixup_fn fixup, void *arg, bool *written);

/* ---- static keys (jump_label.c) -------------------------------------------- */

struct stitch_jump_site {
	uintptr_t code;   /* the patchable instruction */
	uintptr_t target; /* where it jumps when it is a jump */
	/*
	 * The instruction's length when its module was registered (0 until
	 * then).  On x86-64 a site is 5 or 2 bytes for good; decoding the
	 * bytes alone would take a 5-byte site whose head was overwritten by
	 * a 2-byte NOP (66 90 cc cc cc) for a 2-byte site.
	 */
	uint8_t len;
};

#endif /* STITCH_CORE_INTERNAL_H */
