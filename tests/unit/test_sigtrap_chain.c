/* SPDX-License-Identifier: MIT */
/*
 * x86-64: the int3 protocol's SIGTRAP handler chains every trap that is not
 * ours to the handler the program had (before stitch_init, or installed
 * later: the next update puts ours back in front of it), and a program
 * without a handler still dies of its own int3.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stitch/static_key.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/check.h"

STITCH_DEFINE_STATIC_KEY_FALSE(key);
static __attribute__((noinline)) int site(void)
{
	return stitch_static_branch_unlikely(&key) ? 1 : 0;
}

static atomic_int first_handler_hits, second_handler_hits;
static void first_handler(int sig)
{
	(void)sig;
	atomic_fetch_add(&first_handler_hits, 1);
}
static void second_handler(int sig, siginfo_t *info, void *ctx)
{
	(void)sig;
	(void)info;
	(void)ctx;
	atomic_fetch_add(&second_handler_hits, 1);
}

static atomic_int stop;
static void *runner(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop))
		site();
	return NULL;
}

static void toggle_many(int n)
{
	for (int i = 0; i < n; i++) {
		CHECK_EQ(stitch_static_key_enable(&key), 0);
		CHECK_EQ(stitch_static_key_disable(&key), 0);
	}
}

int main(void)
{
	/* A program whose own int3 must still kill it (default action). */
	pid_t pid = fork();
	if (pid == 0) {
		stitch_init();
		stitch_static_key_enable(&key);
		__asm__ volatile("int3");
		_exit(0);
	}
	int status = 0;
	waitpid(pid, &status, 0);
	CHECK(WIFSIGNALED(status) && WTERMSIG(status) == SIGTRAP, "child status %#x", status);

	signal(SIGTRAP, first_handler);
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	__asm__ volatile("int3");
	CHECK_EQ(atomic_load(&first_handler_hits), 1);

	/* Our own traps are not passed on. */
	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&t[i], NULL, runner, NULL);
	struct stitch_stats s0, s1;
	stitch_get_stats(&s0);
	toggle_many(2000);
	stitch_get_stats(&s1);
	printf("int3 traps taken by running threads: %llu\n", (unsigned long long)(s1.trap_hits - s0.trap_hits));
	CHECK_EQ(atomic_load(&first_handler_hits), 1);

	/* The program replaces the handler after init: the next update puts
	 * ours in front again, chaining to the new one. */
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = second_handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGTRAP, &sa, NULL);
	toggle_many(200);
	__asm__ volatile("int3");
	CHECK_EQ(atomic_load(&second_handler_hits), 1);
	CHECK_EQ(atomic_load(&first_handler_hits), 1);
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	CHECK_EQ(site(), 0);
	return check_summary("test_sigtrap_chain");
}
