/* SPDX-License-Identifier: MIT */
/*
 * Quiescence: every thread reports where it is; a PC fixup moves a thread
 * out of a range (seed 004's replay, here: out of an endless loop); a
 * thread that blocks the signal while running is reported by name, one
 * that blocks it while asleep in a system call is known to be outside.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/check.h"
#include "common/spin_loop.h"
#include "core/internal.h"

static atomic_int spinner_returned;

static void *spinner(void *arg)
{
	(void)arg;
	spin_loop();
	atomic_store(&spinner_returned, 1);
	return NULL;
}

static atomic_int stop_workers;

static void *busy_worker(void *arg)
{
	(void)arg;
	volatile unsigned long n = 0;
	while (!atomic_load(&stop_workers))
		n++;
	return NULL;
}

static atomic_int blocker_ready;

static void *blocking_worker(void *arg)
{
	/* Block every signal, then either sleep in read() or run.  (A thread
	 * that has not reached read() yet is seen running and looked at again
	 * every 10 ms, so the flag only needs to follow the sigmask.) */
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	atomic_store(&blocker_ready, 1);
	int *fd = arg;
	if (fd) {
		char c;
		(void)!read(*fd, &c, 1);
	} else {
		volatile unsigned long n = 0;
		while (!atomic_load(&stop_workers))
			n++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	bool emulated = argc > 1 && !strcmp(argv[1], "--emulated");
	/* Long enough for a busy machine (ctest -j2 beside the stress tests) to
	 * schedule every thread; the signal-blocking cases wait it out once. */
	setenv("STITCH_QUIESCE_TIMEOUT_MS", "3000", 1);
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());

	/* 1. Grace period with busy threads: everyone answers. */
	pthread_t w[3];
	for (int i = 0; i < 3; i++)
		pthread_create(&w[i], NULL, busy_worker, NULL);
	struct stitch_stats s0, s1;
	stitch_get_stats(&s0);
	CHECK_EQ(stitch_quiesce(NULL, 0, NULL, NULL), 0);
	stitch_get_stats(&s1);
	CHECK(s1.quiesce_rounds > s0.quiesce_rounds, "a round was counted");

	/* 2. A fixup that moves a thread out of an endless loop. */
	pthread_t sp;
	pthread_create(&sp, NULL, spinner, NULL);
	while (spin_count == 0) /* inside the loop */
		sched_yield();
	struct stitch_range loop = { (uintptr_t)spin_loop, (uintptr_t)spin_escape };
	/* It is inside: one quiescence moves it out (and only returns once it is). */
	int err = stitch_quiesce(&loop, 1, escape_fixup, NULL);
	CHECK(err == 0, "quiesce with fixup: %s", stitch_last_error());
	pthread_join(sp, NULL);
	CHECK(atomic_load(&spinner_returned), "the spinner escaped");
	struct stitch_stats s2;
	stitch_get_stats(&s2);
	CHECK(s2.quiesce_fixups > s1.quiesce_fixups, "the fixup ran");

	/* 3. Without a fixup, a thread that never leaves the range is named.
	 * The range is one of many, sorted (as a batch of 100 000 sites asks:
	 * the quiescence bisects them), with ranges on both sides of it. */
	enum { SIDE = 500 };
	struct stitch_range *many = malloc((2 * SIDE + 1) * sizeof(*many));
	CHECK(many != NULL, "malloc");
	if (!many)
		return check_summary("test_quiesce");
	for (size_t i = 0; i < SIDE; i++) {
		many[i] = (struct stitch_range){ loop.start - 64 * (SIDE - i), loop.start - 64 * (SIDE - i) + 8 };
		many[SIDE + 1 + i] = (struct stitch_range){ loop.end + 64 * (i + 1), loop.end + 64 * (i + 1) + 8 };
	}
	many[SIDE] = loop;
	atomic_store(&spinner_returned, 0);
	spin_count = 0;
	pthread_create(&sp, NULL, spinner, NULL);
	while (spin_count == 0)
		sched_yield();
	err = stitch_quiesce(many, 2 * SIDE + 1, NULL, NULL);
	free(many);
	CHECK_EQ(err, -STITCH_EQUIESCE);
	CHECK(strstr(stitch_last_error(), "inside") != NULL, "message: %s", stitch_last_error());
	printf("stuck thread: %s\n", stitch_last_error());
	while (!atomic_load(&spinner_returned))
		stitch_quiesce(&loop, 1, escape_fixup, NULL);
	pthread_join(sp, NULL);

	/* 4. A running thread that blocks the signal: a clear error. */
	pthread_t blk;
	pthread_create(&blk, NULL, blocking_worker, NULL);
	while (!atomic_load(&blocker_ready))
		sched_yield();
	err = stitch_quiesce(NULL, 0, NULL, NULL);
	if (emulated) {
		/* qemu-user may deliver host signals to a guest thread that blocks
		 * them (it queues them for later); either outcome is acceptable. */
		CHECK(err == 0 || err == -STITCH_EQUIESCE, "err %d", err);
	} else {
		CHECK_EQ(err, -STITCH_EQUIESCE);
		CHECK(strstr(stitch_last_error(), "blocks signal") != NULL, "message: %s", stitch_last_error());
	}
	printf("blocking thread: %s\n", err ? stitch_last_error() : "(answered)");
	atomic_store(&stop_workers, 1);
	pthread_join(blk, NULL);
	for (int i = 0; i < 3; i++)
		pthread_join(w[i], NULL);

	/* 5. A thread asleep in read() with every signal blocked counts as outside. */
	if (!emulated) {
		int pipefd[2];
		CHECK(pipe(pipefd) == 0, "pipe");
		atomic_store(&blocker_ready, 0);
		pthread_create(&blk, NULL, blocking_worker, &pipefd[0]);
		while (!atomic_load(&blocker_ready))
			sched_yield();
		err = stitch_quiesce(NULL, 0, NULL, NULL);
		CHECK(err == 0, "sleeping blocked thread: %s", stitch_last_error());
		(void)!write(pipefd[1], "x", 1);
		pthread_join(blk, NULL);
	}
	return check_summary("test_quiesce");
}
