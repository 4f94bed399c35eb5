/* SPDX-License-Identifier: MIT */
/* Built with the trace flags; see graph_funcs.h.  noinline keeps every
 * call a real call; the volatile sink keeps the compiler from folding. */
#include "graph_funcs.h"

#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdint.h>

#define NOINLINE __attribute__((noinline))

volatile int g_sink;

NOINLINE int g_chain_c(int v) { g_sink = v; return v + 3; }
NOINLINE int g_chain_b(int v) { return g_chain_c(v * 2) + 1; }
NOINLINE int g_chain_a(int v) { return g_chain_b(v + 1) * 2; }

/* the volatile store after each recursive call keeps gcc from turning the
 * recursion into a loop */
NOINLINE int g_fact(int n)
{
	if (n <= 1)
		return 1;
	int r = g_fact(n - 1);
	g_sink = r;
	return n * r;
}

NOINLINE int g_odd(int n);
NOINLINE int g_even(int n) { return n == 0 ? 1 : g_odd(n - 1); }
NOINLINE int g_odd(int n) { return n == 0 ? 0 : g_even(n - 1); }

NOINLINE int g_tail_g(int v) { g_sink = v; return v * 7; }
NOINLINE int g_tail_f(int v) { g_sink = v; return g_tail_g(v + 1); }

NOINLINE double g_twice(double x) { g_sink = 1; return x * 2.0; }

NOINLINE struct g_pair g_pair_of(long a) { struct g_pair p = { a, -a }; g_sink = 2; return p; }

NOINLINE int g_depth(int n)
{
	if (n == 0)
		return 0;
	int r = g_depth(n - 1);
	g_sink = r;
	return r + 1;
}

NOINLINE int g_lj_inner(jmp_buf *env, int v) { g_sink = v; longjmp(*env, v); }
NOINLINE int g_lj_mid(jmp_buf *env, int v) { return g_lj_inner(env, v + 1) + 1; }
NOINLINE int g_lj_outer(int v)
{
	jmp_buf env;
	int r = setjmp(env);
	if (r == 0)
		return g_lj_mid(&env, v);
	return r * 10;
}

NOINLINE int g_raise(int sig) { raise(sig); return sig + (g_sink & 0); }

NOINLINE int g_thread_exit(int n)
{
	if (n < 0)
		return 0;
	if (n == 0)
		pthread_exit((void *)(intptr_t)42);
	int r = g_thread_exit(n - 1);
	g_sink = r;
	return r;
}

/* test_ftrace_nested: a worker is parked inside this function's site by a
 * signal handler of the program while the site is switched. */
NOINLINE int g_nested_target(int v)
{
	g_sink = v;
	return v * 5 + 1;
}

/* Waits until *flag is set: a hooked call in flight while the test changes its ops. */
NOINLINE int g_cancel_at(int n)
{
	if (n > 0) {
		int r = g_cancel_at(n - 1);
		g_sink = r;
		return r + 1;
	}
	for (;;) { /* until cancelled (a return, to the compiler, is possible) */
		pthread_testcancel();
		if (g_sink == -1)
			return 0;
		sched_yield();
	}
}

NOINLINE int g_wait(int *flag)
{
	while (!__atomic_load_n(flag, __ATOMIC_ACQUIRE))
		sched_yield();
	return 7;
}

NOINLINE int g_deep_then(int n, void (*bottom)(void))
{
	if (n == 0) {
		if (bottom)
			bottom();
		return 0;
	}
	int r = g_deep_then(n - 1, bottom);
	g_sink = r;
	return r + 1;
}
