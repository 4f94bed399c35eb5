/* SPDX-License-Identifier: MIT */
/*
 * x86-64: a thread that blocks SIGTRAP must never meet an int3 of the trap
 * protocol (the kernel would kill the process).  While one exists, batches
 * are applied in a stopped world instead (src/core/batch.c):
 *   1. a thread blocking SIGTRAP alone runs through a static branch while
 *      the key is toggled 200 times: every toggle succeeds, the thread sees
 *      each new state, the process lives, no int3 was hit and the world
 *      was stopped for every toggle;
 *   2. a thread blocking every signal cannot be stopped either: the toggle
 *      fails with -STITCH_EQUIESCE, says why (SIGTRAP), and the branch is
 *      as it was.
 * Without the check, case 1 dies of SIGTRAP within a few toggles.
 * Run with STITCH_QUIESCE_TIMEOUT_MS small (CMakeLists.txt).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <stitch/static_key.h>

#include "common/check.h"

STITCH_DEFINE_STATIC_KEY_FALSE(key);

static __attribute__((noinline)) int branch(void)
{
	return stitch_static_branch_unlikely(&key) ? 1 : 0;
}

static atomic_int stop, started;
static atomic_ulong seen_on, seen_off;

static void *runner(void *arg)
{
	sigset_t set;
	if (arg)
		sigfillset(&set);
	else {
		sigemptyset(&set);
		sigaddset(&set, SIGTRAP);
	}
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	atomic_store(&started, 1);
	while (!atomic_load(&stop)) {
		if (branch())
			atomic_fetch_add(&seen_on, 1);
		else
			atomic_fetch_add(&seen_off, 1);
	}
	return NULL;
}

static void start(pthread_t *th, void *block_all)
{
	atomic_store(&stop, 0);
	atomic_store(&started, 0);
	pthread_create(th, NULL, runner, block_all);
	while (!atomic_load(&started))
		;
}

static void finish(pthread_t th)
{
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
}

int main(void)
{
	CHECK_EQ(stitch_init(), 0);
	pthread_t th;

	/* 1. SIGTRAP blocked, the quiescence signal not */
	start(&th, NULL);
	struct stitch_stats a, b;
	stitch_get_stats(&a);
	int toggles = 0;
	for (int i = 0; i < 100; i++) {
		unsigned long on = atomic_load(&seen_on), off;
		int err = stitch_static_key_enable(&key);
		CHECK(err == 0, "enable beside a thread blocking SIGTRAP: %s", stitch_last_error());
		if (err)
			break;
		while (atomic_load(&seen_on) == on)
			; /* the runner took the new branch */
		off = atomic_load(&seen_off);
		err = stitch_static_key_disable(&key);
		CHECK(err == 0, "disable beside a thread blocking SIGTRAP: %s", stitch_last_error());
		if (err)
			break;
		while (atomic_load(&seen_off) == off)
			;
		toggles += 2;
	}
	stitch_get_stats(&b);
	finish(th);
	CHECK_EQ(toggles, 200);
	CHECK_EQ(b.trap_hits - a.trap_hits, 0);
	CHECK(b.world_stops - a.world_stops == 200, "%llu stops for 200 toggles",
	      (unsigned long long)(b.world_stops - a.world_stops));
	printf("200 toggles beside a thread blocking SIGTRAP: %llu stopped worlds, %llu syncs, 0 int3 hits\n",
	       (unsigned long long)(b.world_stops - a.world_stops), (unsigned long long)(b.syncs - a.syncs));

	/* the same thread gone: the int3 protocol again, no stop */
	stitch_get_stats(&a);
	CHECK_EQ(stitch_static_key_enable(&key), 0);
	CHECK_EQ(stitch_static_key_disable(&key), 0);
	stitch_get_stats(&b);
	CHECK_EQ(b.quiesce_rounds - a.quiesce_rounds, 0);

	/* 2. every signal blocked: refused, nothing changed */
	start(&th, (void *)1);
	int err = stitch_static_key_enable(&key);
	CHECK_EQ(err, -STITCH_EQUIESCE);
	printf("thread blocking every signal: %s\n", stitch_last_error());
	CHECK(strstr(stitch_last_error(), "SIGTRAP") != NULL, "message: %s", stitch_last_error());
	CHECK_EQ(branch(), 0);
	CHECK(!stitch_static_key_enabled(&key), "the key stays disabled");
	finish(th);
	CHECK_EQ(stitch_static_key_enable(&key), 0);
	CHECK_EQ(branch(), 1);
	return check_summary("test_sigtrap_blocked");
}
