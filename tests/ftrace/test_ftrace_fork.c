/* SPDX-License-Identifier: MIT */
/*
 * fork() while threads run traced functions: the child, where only the
 * forking thread exists, can still change tracing.  The grace period waits
 * for registered threads inside a callback; the parent's other threads
 * were registered, and one may have been inside a callback at the fork,
 * so the child must not wait for them (the library's atfork child handler
 * calls urcu_bp_after_fork_child(), or frees the fallback's reader slots,
 * src/core/ftrace.c "fork()").  With liburcu-memb's registry 19 of 20 such
 * children hung (docs/reliability.md).  tests/fault/test_fork.c part 4
 * holds a thread inside a callback at the fork.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/check.h"
#include "funcs.h"
#include "stitch/ftrace.h"

static atomic_long hits;
static atomic_int running = 1;
static atomic_int workers_in_loop;

static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add(&hits, 1);
}
static struct stitch_ftrace_ops ops = { .func = on_entry };

static void *worker(void *arg)
{
	(void)arg;
	long bad = 0;
	atomic_fetch_add(&workers_in_loop, 1);
	while (atomic_load(&running))
		for (int i = 0; i < 64; i++)
			bad += tf_table[i](i) != i * 3 + i;
	return (void *)bad;
}

int main(void)
{
	CHECK_EQ(stitch_ftrace_register(&ops, "tf_a*"), 0);
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, worker, NULL), 0);
	/* Both workers past their start-up, which allocates: under gcc 12's
	 * ASan a fork during another thread's allocation leaves the child's
	 * allocator locked (tests/fault/test_fork.c, wait_running). */
	while (atomic_load(&workers_in_loop) < 2 || atomic_load(&hits) < 1000)
		sched_yield();
	int hung = 0, failed = 0;
	for (int k = 0; k < 20; k++) {
		pid_t pid = fork();
		if (pid == 0) {
			alarm(10); /* a hang is a failure, not a stuck test */
			int err = stitch_ftrace_set_filter(&ops, "tf_b*");
			err |= stitch_ftrace_unregister(&ops);
			_exit(err == 0 && tf_table[0](1) == 3 ? 0 : 1);
		}
		int st = 0;
		waitpid(pid, &st, 0);
		hung += WIFSIGNALED(st) && WTERMSIG(st) == SIGALRM;
		failed += !WIFEXITED(st) || WEXITSTATUS(st) != 0;
	}
	atomic_store(&running, 0);
	long bad = 0;
	for (int i = 0; i < 2; i++) {
		void *r;
		pthread_join(t[i], &r);
		bad += (long)r;
	}
	CHECK_EQ(hung, 0);
	CHECK_EQ(failed, 0);
	CHECK_EQ(bad, 0);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	return check_summary("test_ftrace_fork");
}
