/* SPDX-License-Identifier: MIT */
/*
 * A thread that blocks every signal and keeps running cannot be parked:
 * switching compiler-emitted sites that stop the world (the first enable on
 * AArch64 and RISC-V) must fail with a clear error after the timeout and
 * leave every site's bytes as they were.  On x86-64 every switch is the
 * int3 protocol, which stops nobody - but that thread blocks SIGTRAP too,
 * and would be killed by an int3: the library falls back to stopping the
 * world (src/core/batch.c), which fails the same way, saying so.
 * Then a thread that blocks every signal but SIGTRAP: gcc's five NOPs
 * (x86-64) need a quiescence between the int3 and the rest of the call
 * (src/arch/x86_64/poke.c, step 1b), which it cannot answer: the switch
 * fails after the int3 was written, and the roll-back must leave every
 * site as it was.  clang's one 5-byte NOP needs no quiescence: it switches.
 * Run with STITCH_QUIESCE_TIMEOUT_MS small (see CMakeLists.txt).
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stitch/ftrace.h>

#include "common/check.h"
#include "funcs.h"
#include "site_bytes.h"

static _Atomic int stop, started;

/* arg: the one signal left unblocked (0: none) */
static void *blocker(void *arg)
{
	sigset_t mask;
	sigfillset(&mask);
	if (arg)
		sigdelset(&mask, (int)(uintptr_t)arg);
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	atomic_store(&started, 1);
	while (!atomic_load(&stop))
		; /* running, never in a system call: cannot be parked */
	return NULL;
}

static void cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
}

int main(void)
{
	CHECK_EQ(stitch_init(), 0);
	int n = stitch_ftrace_site_count();
	CHECK(n > TF_COUNT, "site count %d", n);
	size_t ns = n > 0 ? (size_t)n : 0;
	struct stitch_ftrace_site_info *info;
	uint8_t(*orig)[SITE_LEN];
	int snap = site_snapshot(ns, &info, &orig);
	CHECK(snap == 0, "site_snapshot: %s", stitch_last_error());
	if (snap)
		return check_summary("test_ftrace_blocked");
	struct stitch_ftrace_ops ops = { .func = cb };
	for (int round = 0; round < 2; round++) {
		/* round 0: every signal blocked; round 1: all but SIGTRAP */
		pthread_t th;
		atomic_store(&stop, 0);
		atomic_store(&started, 0);
		pthread_create(&th, NULL, blocker, (void *)(uintptr_t)(round ? SIGTRAP : 0));
		while (!atomic_load(&started))
			;
		int err = stitch_ftrace_register(&ops, "*");
#if defined(__x86_64__)
		bool nop5 = orig[0][0] == 0x0f; /* clang's and -mfentry's NOP5 */
		if (round == 1 && nop5) {
			/* the int3 protocol alone: nobody needs to answer */
			CHECK(err == 0, "register beside a thread blocking all but SIGTRAP: %s", stitch_last_error());
			CHECK_EQ(tf_table[7](1), 3 + 7);
			CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
			atomic_store(&stop, 1);
			pthread_join(th, NULL);
			continue;
		}
#endif
		CHECK_EQ(err, -STITCH_EQUIESCE);
		printf("blocked thread (%s): %s\n", round ? "all but SIGTRAP" : "every signal", stitch_last_error());
		CHECK(strstr(stitch_last_error(), "thread") != NULL, "message: %s", stitch_last_error());
#if defined(__x86_64__)
		/* the int3 protocol is refused first (any site: five NOPs too) */
		if (round == 0)
			CHECK(strstr(stitch_last_error(), "SIGTRAP") != NULL, "message: %s", stitch_last_error());
		/* five NOPs: the int3 protocol's quiescence is what fails */
		if (round == 1)
			CHECK(strstr(stitch_last_error(), "SIGTRAP") == NULL, "message: %s", stitch_last_error());
#endif
		size_t changed = 0;
		for (size_t i = 0; i < ns; i++)
			changed += memcmp(orig[i], (const void *)info[i].site, SITE_LEN) != 0;
		CHECK_EQ(changed, 0);
		CHECK_EQ(stitch_ftrace_unregister(&ops), -STITCH_EINVAL); /* it was not registered */
		atomic_store(&stop, 1);
		pthread_join(th, NULL);
	}
	CHECK(stitch_ftrace_register(&ops, "*") == 0, "register: %s", stitch_last_error());
	CHECK_EQ(tf_table[7](1), 3 + 7);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	free(info);
	free(orig);
	return check_summary("test_ftrace_blocked");
}
