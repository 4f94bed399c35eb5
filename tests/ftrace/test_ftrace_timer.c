/* SPDX-License-Identifier: MIT */
/*
 * A timer signal whose handler calls traced code, while threads call the
 * same function and the main thread switches its tracing on and off 2 000
 * times (200 under qemu).  On x86-64 the switches go through int3s: a thread trapping on one
 * runs the library's SIGTRAP handler, and the timer may fire right then.
 * Had the program's handler run nested in the library's, SIGTRAP would be
 * blocked there, and its traced call meeting another int3 of the switch
 * would have the kernel kill the process (it did, every run, before the
 * library's handler blocked every signal while it runs).  Checked: the
 * process lives, the callback ran, the handler's calls return the right
 * value.  On AArch64 and RISC-V (no int3) the same must hold.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include <stitch/ftrace.h>

#include "common/check.h"
#include "funcs.h"

static atomic_int stop;
static atomic_long entries, handler_calls, handler_wrong;

static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add_explicit(&entries, 1, memory_order_relaxed);
}

static void on_timer(int sig)
{
	(void)sig;
	if (tf_table[1](1) != 1 * 3 + 1)
		atomic_fetch_add(&handler_wrong, 1);
	atomic_fetch_add_explicit(&handler_calls, 1, memory_order_relaxed);
}

static void *caller(void *arg)
{
	(void)arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		tf_table[1](2);
	return NULL;
}

int main(int argc, char **argv)
{
	int want = argc > 1 ? atoi(argv[1]) : 2000; /* fewer under qemu (CMakeLists.txt) */
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_timer;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGALRM, &sa, NULL);
	pthread_t th[4];
	for (int i = 0; i < 4; i++)
		pthread_create(&th[i], NULL, caller, NULL);
	struct itimerval every = { { 0, 100 }, { 0, 100 } }, off = { { 0, 0 }, { 0, 0 } };
	setitimer(ITIMER_REAL, &every, NULL);
	struct stitch_ftrace_ops ops = { .func = on_entry };
	struct stitch_stats a, b;
	stitch_get_stats(&a);
	int rounds = 0;
	for (; rounds < want; rounds++) {
		int err = stitch_ftrace_register(&ops, "tf_a0001");
		CHECK(err == 0, "register: %s", stitch_last_error());
		if (err)
			break;
		err = stitch_ftrace_unregister(&ops);
		CHECK(err == 0, "unregister: %s", stitch_last_error());
		if (err)
			break;
	}
	stitch_get_stats(&b);
	setitimer(ITIMER_REAL, &off, NULL);
	atomic_store(&stop, 1);
	for (int i = 0; i < 4; i++)
		pthread_join(th[i], NULL);
	CHECK_EQ(rounds, want);
	CHECK(atomic_load(&entries) > 0, "the callback never ran");
	CHECK(atomic_load(&handler_calls) > 0, "the timer never fired");
	CHECK_EQ(atomic_load(&handler_wrong), 0);
	printf("%d switches: %ld callbacks, %ld timer signals calling traced code, %llu int3 traps\n",
	       want, atomic_load(&entries), atomic_load(&handler_calls), (unsigned long long)(b.trap_hits - a.trap_hits));
	return check_summary("test_ftrace_timer");
}
