/* SPDX-License-Identifier: MIT */
/*
 * A thread that blocks every signal and keeps running cannot be parked:
 * switching compiler-emitted sites that stop the world (gcc's five NOPs on
 * x86-64, the first enable on AArch64 and RISC-V) must fail with a clear
 * error after the timeout and leave every site's bytes as they were.
 * clang's one 5-byte NOP on x86-64 would switch through the int3
 * protocol, which stops nobody - but that thread blocks SIGTRAP too, and
 * would be killed by an int3: the library falls back to stopping the
 * world (src/core/batch.c), which fails the same way, saying so.
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

static void *blocker(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
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
	pthread_t th;
	pthread_create(&th, NULL, blocker, NULL);
	while (!atomic_load(&started))
		;
	struct stitch_ftrace_ops ops = { .func = cb };
	int err = stitch_ftrace_register(&ops, "*");
	CHECK_EQ(err, -STITCH_EQUIESCE);
	printf("blocked thread: %s\n", stitch_last_error());
	CHECK(strstr(stitch_last_error(), "thread") != NULL, "message: %s", stitch_last_error());
#if defined(__x86_64__)
	/* clang's and -mfentry's NOP5: the int3 protocol is refused first */
	if (orig[0][0] == 0x0f)
		CHECK(strstr(stitch_last_error(), "SIGTRAP") != NULL, "message: %s", stitch_last_error());
#endif
	size_t changed = 0;
	for (size_t i = 0; i < ns; i++)
		changed += memcmp(orig[i], (const void *)info[i].site, SITE_LEN) != 0;
	CHECK_EQ(changed, 0);
	CHECK_EQ(stitch_ftrace_unregister(&ops), -STITCH_EINVAL); /* it was not registered */
	atomic_store(&stop, 1);
	pthread_join(th, NULL);
	CHECK(stitch_ftrace_register(&ops, "*") == 0, "register: %s", stitch_last_error());
	CHECK_EQ(tf_table[7](1), 3 + 7);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	free(info);
	free(orig);
	return check_summary("test_ftrace_blocked");
}
