/* SPDX-License-Identifier: MIT */
/*
 * Start-up: cross-thread sync, write backend, quiescence signal, the
 * architecture's trap handler.  Done once, lazily or by stitch_init(); the
 * first failure is sticky (and its message is kept) so that every later
 * call reports the same reason instead of half-working.
 */
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "core/internal.h"

struct stitch_counters stitch_counters;

static pthread_mutex_t update_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_once_t init_once = PTHREAD_ONCE_INIT;
static int init_result;
static char init_message[512];

void stitch_update_lock(void)
{
	if (pthread_mutex_lock(&update_lock) != 0)
		stitch_die("update lock is broken");
}

void stitch_update_unlock(void)
{
	stitch_text_forget_checked();
	if (pthread_mutex_unlock(&update_lock) != 0)
		stitch_die("update lock released by a thread that does not hold it");
}

/*
 * Function tracing's RCU is forked after the update lock is taken (every
 * grace period is waited for under that lock: the same order as an
 * update), and its child handler runs first: from then on a grace period
 * in the child waits for no thread of the parent (ftrace.c, "fork()").
 */
static void atfork_prepare(void)
{
	stitch_update_lock();
#ifdef STITCH_HAVE_FTRACE
	stitch_ftrace_before_fork();
#endif
}

static void atfork_parent(void)
{
#ifdef STITCH_HAVE_FTRACE
	stitch_ftrace_after_fork_parent();
#endif
	stitch_update_unlock();
}

static void atfork_child(void)
{
#ifdef STITCH_HAVE_FTRACE
	stitch_ftrace_after_fork_child();
#endif
	stitch_text_after_fork_child();
	stitch_quiesce_after_fork_child();
	/* The child's only thread is the one that took the lock in prepare;
	 * start it afresh rather than rely on unlocking a copied mutex. */
	pthread_mutex_init(&update_lock, NULL);
}

/*
 * Registered when the library is loaded, not at stitch_init(): child
 * handlers run in registration order, and a library built on stitch (the
 * stitch-trace agent) may call stitch in its own child handler, which must
 * find the update lock fresh.  A dependency's constructor runs before its
 * dependents', and priority 101 puts ours first within one module (the
 * agent links the library's objects into itself).
 */
__attribute__((constructor(101))) static void register_fork_handlers(void)
{
	if (pthread_atfork(atfork_prepare, atfork_parent, atfork_child) != 0)
		stitch_die("pthread_atfork: cannot register the fork handlers");
}

static void init_once_fn(void)
{
	stitch_signals_init(); /* before the library's own handlers, which it must not wrap */
	int r = stitch_sync_init();
	if (r == 0)
		r = stitch_quiesce_init();
	if (r == 0)
		r = arch_poke_init();
	if (r == 0)
		r = stitch_text_init();
	if (r == 0 && stitch_text_emulated())
		stitch_quiesce_note_emulator_threads();
	init_result = r;
	if (r != 0)
		snprintf(init_message, sizeof(init_message), "stitch initialisation failed: %s",
			 stitch_last_error());
}

int stitch_ensure_init(void)
{
	pthread_once(&init_once, init_once_fn);
	if (init_result != 0)
		return stitch_fail(-init_result, "%s", init_message);
	return 0;
}

int stitch_init(void)
{
	stitch_clear_error();
	return stitch_ensure_init();
}

const char *stitch_backend_name(void)
{
	switch (stitch_text_backend()) {
	case STITCH_BACKEND_PROCMEM: return "procmem";
	case STITCH_BACKEND_MPROTECT: return "mprotect";
	default: return "none";
	}
}

void stitch_get_stats(struct stitch_stats *out)
{
	if (!out)
		return;
	out->batches = atomic_load(&stitch_counters.batches);
	out->sites_written = atomic_load(&stitch_counters.sites_written);
	out->syncs = atomic_load(&stitch_counters.syncs);
	out->protect_calls = atomic_load(&stitch_counters.protect_calls);
	out->trap_hits = atomic_load(&stitch_counters.trap_hits);
	out->quiesce_rounds = atomic_load(&stitch_counters.quiesce_rounds);
	out->quiesce_fixups = atomic_load(&stitch_counters.quiesce_fixups);
	out->graph_overflows = atomic_load(&stitch_counters.graph_overflows);
	out->world_stops = atomic_load(&stitch_counters.world_stops);
	out->ftrace_guard_skips = atomic_load(&stitch_counters.ftrace_guard_skips);
}
