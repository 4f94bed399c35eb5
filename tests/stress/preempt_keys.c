/* SPDX-License-Identifier: MIT */
/*
 * Preemption-point coverage for static keys.  A worker thread calls a site
 * in a loop; the harness parks it (a signal whose handler spins until
 * released) exactly at a chosen PC — the site instruction itself, or the
 * instruction it executes right after the site — at a chosen step p of an
 * update (0: before the first store, k: after the k-th sync), and releases
 * it after step q >= p.  Then it checks what that one call returned:
 *
 *   parked at the site, released after the last sync  -> the new path only
 *   parked at the site, released earlier               -> old or new path
 *   parked after the site (before any store)           -> the old path only
 *
 * "After the site" is where the old instruction leads (the fall-through of
 * a NOP, the target of a jump).  Only p = 0 reaches it: once the first
 * step is synced, a thread at the site runs the new instruction (on x86 the
 * int3 handler emulates the new one), so the old path is no longer taken
 * and those cells are not claimed reachable.
 *
 * and never anything else (each path returns its own magic value).  Every
 * (direction, offset, p, q) cell must be exercised: the suite fails on a
 * cell never reached or on one wrong outcome, and prints the table.
 * Under qemu-user this runs with -singlestep so that every instruction
 * boundary can take a signal.
 *
 *   preempt_keys [repetitions per cell]   (default 3)
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/arch.h"
#include "common/check.h"
#include "common/key_sites.h"
#include "common/park.h"
#include "key_history.h"

STITCH_DEFINE_STATIC_KEY_FALSE(key);
static __attribute__((noinline)) unsigned site_fn(void)
{
	return stitch_static_branch_unlikely(&key) ? SITE_ON : SITE_OFF;
}

static atomic_uint parked_result;
static atomic_int parked_result_ready, stop;

static void *worker(void *arg)
{
	(void)arg;
	park_worker_tid = (pid_t)syscall(SYS_gettid);
	unsigned long id = 0;
	while (!atomic_load(&stop)) {
		atomic_store(&park_progress, ++id);
		unsigned v = site_fn();
		if (atomic_load(&parked_call) == id) {
			atomic_store(&parked_result, v);
			atomic_store(&parked_result_ready, 1);
		}
	}
	return NULL;
}

/* park_at, with this test's record of the parked call's result reset */
static bool park_call_at(uintptr_t pc)
{
	atomic_store(&parked_result_ready, 0);
	return park_at(pc);
}

/* The plan for the update in flight. */
static unsigned plan_p, plan_q;
static uintptr_t plan_pc;
static bool plan_parked;

static void step_hook(unsigned step)
{
	if (step == plan_p && step != 0)
		plan_parked = park_call_at(plan_pc);
	if (step == plan_q && plan_parked)
		unpark();
}

#define MAX_STEPS 3
struct cell {
	unsigned hits, wrong, unreached;
};
/* [direction][offset][p][q] */
static struct cell table[2][2][MAX_STEPS + 1][MAX_STEPS + 1];

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 3;
	park_install(SIGRTMIN + 6);
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());

	struct test_key_group g = test_key_group(&key.key);
	CHECK_EQ(g.count, 1);
	struct stitch_patch shape;
	CHECK_EQ(arch_jump_label_patch(&g.sites[0].where, true, &shape), 0);
	const uintptr_t at_site = g.sites[0].where.code;
	const uintptr_t fallthrough = at_site + shape.len, target = g.sites[0].where.target;

	/* How many syncs one update takes on this architecture. */
	struct stitch_stats s0, s1;
	stitch_get_stats(&s0);
	CHECK_EQ(stitch_static_key_enable(&key), 0);
	CHECK_EQ(stitch_static_key_disable(&key), 0);
	stitch_get_stats(&s1);
	unsigned steps = (unsigned)(s1.syncs - s0.syncs) / 2;
	CHECK(steps >= 1 && steps <= MAX_STEPS, "%u syncs per update", steps);

	pthread_t w;
	pthread_create(&w, NULL, worker, NULL);
	while (!atomic_load(&park_progress))
		sched_yield();
	stitch_batch_step_hook = step_hook;

	for (int rep = 0; rep < reps; rep++)
		for (int dir = 0; dir < 2; dir++) /* 0: enable (off -> on), 1: disable */
			for (int off = 0; off < 2; off++) /* 0: at the site, 1: right after it */
				for (unsigned p = 0; p <= (off ? 0 : steps); p++)
					for (unsigned q = p; q <= steps; q++) {
						struct cell *c = &table[dir][off][p][q];
						unsigned old_v = dir == 0 ? SITE_OFF : SITE_ON;
						unsigned new_v = dir == 0 ? SITE_ON : SITE_OFF;
						/* Start from the old state, with no plan armed. */
						plan_p = plan_q = ~0u;
						CHECK_EQ(dir == 0 ? stitch_static_key_disable(&key)
								  : stitch_static_key_enable(&key), 0);
						plan_p = p;
						plan_q = q;
						/* after the site: where the old instruction leads */
						plan_pc = off == 0 ? at_site : (dir == 0 ? fallthrough : target);
						plan_parked = p == 0 ? park_call_at(plan_pc) : false;
						int err = dir == 0 ? stitch_static_key_enable(&key)
								   : stitch_static_key_disable(&key);
						CHECK(err == 0, "update: %s", stitch_last_error());
						if (!plan_parked) {
							c->unreached++;
							continue;
						}
						while (!atomic_load(&parked_result_ready))
							sched_yield();
						unsigned v = atomic_load(&parked_result);
						bool ok;
						if (off == 0 && q == steps)
							ok = v == new_v;
						else if (off == 1)
							ok = v == old_v;
						else
							ok = v == old_v || v == new_v;
						c->hits++;
						c->wrong += !ok;
					}
	stitch_batch_step_hook = NULL;
	atomic_store(&stop, 1);
	pthread_join(w, NULL);

	printf("preemption-point coverage, static-key site (%u-byte instruction, %u sync%s per update):\n",
	       shape.len, steps, steps > 1 ? "s" : "");
	printf("  %-8s %-14s %5s %5s %6s %6s\n", "update", "parked at", "p", "q", "hits", "wrong");
	for (int dir = 0; dir < 2; dir++)
		for (int off = 0; off < 2; off++)
			for (unsigned p = 0; p <= (off ? 0 : steps); p++)
				for (unsigned q = p; q <= steps; q++) {
					struct cell *c = &table[dir][off][p][q];
					printf("  %-8s %-14s %5u %5u %6u %6u%s\n", dir ? "disable" : "enable",
					       off ? "after site" : "site", p, q, c->hits, c->wrong,
					       c->hits == 0 ? "   <- never exercised" : "");
					CHECK(c->hits > 0, "cell %s/%s/%u/%u never exercised", dir ? "disable" : "enable",
					      off ? "after" : "site", p, q);
					CHECK(c->wrong == 0, "cell %s/%s/%u/%u: %u wrong outcomes", dir ? "disable" : "enable",
					      off ? "after" : "site", p, q, c->wrong);
				}
	return check_summary("preempt_keys");
}
