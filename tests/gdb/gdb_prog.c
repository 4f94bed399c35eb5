/* SPDX-License-Identifier: MIT */
/*
 * The program tests/gdb/run_gdb.sh runs under gdb (issue 8, environment
 * matrix).  Two worker threads call worker_fn(), whose static-key site is
 * rewritten under them (x86-64: the int3 protocol, so they trap), while
 * the main thread toggles the key ROUNDS times and calls probe_fn() once
 * per round: gdb has a breakpoint in probe_fn, a function that is itself
 * patched twice over - its key site, and its tracing site (function
 * tracing is on for probe_fn and worker_fn throughout).  The program checks
 * its own results (each call took the key's direction or, during a toggle,
 * one of the two; probe_fn's traced calls counted exactly; the int3 traps
 * counted) and prints "probe_fn calls: N", which the script compares with
 * gdb's count of breakpoint hits.
 * Usage: gdb_prog [ROUNDS]
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include <stitch/ftrace.h>
#include <stitch/static_key.h>

#include "common/check.h"
#include "core/internal.h"

#define NOINLINE __attribute__((noinline))

STITCH_DEFINE_STATIC_KEY_FALSE(k_probe);
STITCH_DEFINE_STATIC_KEY_FALSE(k_work);

static atomic_long traced_probe, traced_work, worker_bad;
static atomic_bool stop;

/* gdb: break probe_fn.  Its body computes first, so the breakpoint gdb puts
 * after the prologue is not on the key site. */
NOINLINE int probe_fn(int x);
NOINLINE int probe_fn(int x)
{
	volatile int y = x * 3;
	if (stitch_static_branch_unlikely(&k_probe))
		return y + 1;
	return y;
}

NOINLINE int worker_fn(int x);
NOINLINE int worker_fn(int x)
{
	if (stitch_static_branch_unlikely(&k_work))
		return x + 1;
	return x;
}

static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)parent, (void)ops, (void)regs;
	if (ip == (uintptr_t)probe_fn)
		atomic_fetch_add(&traced_probe, 1);
	else if (ip == (uintptr_t)worker_fn)
		atomic_fetch_add(&traced_work, 1);
}

static struct stitch_ftrace_ops ops = { .func = on_entry };

/* The trapper: one call of worker_fn per request of the step hook. */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static int requested, done; /* requests made, calls made */
static bool hook_on, trapper_quit;

static void *trapper(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	for (;;) {
		while (done == requested && !trapper_quit)
			pthread_cond_wait(&cv, &mu);
		if (trapper_quit)
			break;
		pthread_mutex_unlock(&mu);
		int r = worker_fn(7); /* byte 0 of its key site is int3 now */
		if (r != 7 && r != 8)
			atomic_fetch_add(&worker_bad, 1);
		pthread_mutex_lock(&mu);
		done++;
		pthread_cond_broadcast(&cv);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* Main thread, update lock held: x86's int3 steps are 1 (int3 written and
 * synced) and 2 (the tail written); byte 0 is int3 after both. */
static void step_hook(unsigned step)
{
	if (!hook_on || (step != 1 && step != 2))
		return;
	pthread_mutex_lock(&mu);
	requested++;
	pthread_cond_broadcast(&cv);
	while (done != requested)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
}

static void *worker(void *arg)
{
	(void)arg;
	for (int i = 0; !atomic_load(&stop); i++) {
		int r = worker_fn(i);
		if (r != i && r != i + 1)
			atomic_fetch_add(&worker_bad, 1);
	}
	return NULL;
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 50;
	setvbuf(stdout, NULL, _IOLBF, 0);
	CHECK(stitch_init() == 0, "stitch_init: %s", stitch_last_error());
	CHECK(stitch_ftrace_register(&ops, "probe_fn worker_fn") == 0, "ftrace: %s", stitch_last_error());
	pthread_t t[2], tt;
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, worker, NULL), 0);
	CHECK_EQ(pthread_create(&tt, NULL, trapper, NULL), 0);
	stitch_batch_step_hook = step_hook;
	struct stitch_stats before;
	stitch_get_stats(&before);
	/* A batch finds a thread blocking SIGTRAP when gdb holds one inside the
	 * library's SIGTRAP handler (all-stop: gdb stops every thread while it
	 * looks at another's trap) for longer than the batch looks (batch.c):
	 * it then stops the world instead, with no int3 step for the hook. */
	int int3_batches = 0;
	for (int i = 0; i < rounds; i++) {
		bool on = i % 2 == 0;
		struct stitch_stats s0, s1;
		stitch_get_stats(&s0);
		hook_on = true; /* only k_work's batches; the main thread alone reads it */
		CHECK_EQ(on ? stitch_static_key_enable(&k_work) : stitch_static_key_disable(&k_work), 0);
		hook_on = false;
		stitch_get_stats(&s1);
		int3_batches += s1.world_stops == s0.world_stops;
		CHECK_EQ(on ? stitch_static_key_enable(&k_probe) : stitch_static_key_disable(&k_probe), 0);
		CHECK_EQ(probe_fn(i), i * 3 + (on ? 1 : 0));
	}
	stitch_batch_step_hook = NULL;
	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	pthread_mutex_lock(&mu);
	trapper_quit = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(tt, NULL);
	CHECK(int3_batches > 0, "no toggle of k_work took the int3 protocol");
	CHECK(done == 2 * int3_batches, "the trapper called worker_fn %d times during toggles, want %d", done,
	      2 * int3_batches);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	CHECK_EQ(probe_fn(1), 3 + (rounds % 2 ? 1 : 0)); /* not traced any more: not counted below */
	struct stitch_stats after;
	stitch_get_stats(&after);
	CHECK_EQ(atomic_load(&traced_probe), rounds + 0L);
	CHECK(atomic_load(&traced_work) > 0, "the workers' calls were traced");
	CHECK_EQ(atomic_load(&worker_bad), 0);
	unsigned long long traps = (unsigned long long)(after.trap_hits - before.trap_hits);
	CHECK(traps >= 2ull * (unsigned)int3_batches, "%llu int3 traps, at least %d expected", traps, 2 * int3_batches);
	printf("probe_fn calls: %d\n", rounds + 1);
	printf("k_work toggles through int3: %d of %d\n", int3_batches, rounds);
	printf("int3 traps: %llu\n", traps);
	return check_summary("gdb_prog");
}
