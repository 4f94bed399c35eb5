/* SPDX-License-Identifier: MIT */
/*
 * Calls the recursion guard skips are counted: stitch_stats.ftrace_guard_skips
 * (src/core/ftrace.c, "the recursion guard").  A callback on g_nested_target
 * calls the traced g_chain_c N times, then raises a signal whose handler
 * calls g_chain_c H times: each of those calls runs untraced (no callback
 * of g_chain_c's ops sees it) and moves the counter by exactly one.  Calls
 * outside callbacks - the program's own, a handler's that interrupted the
 * program rather than a callback, a new thread's first traced call (which
 * sets up the thread's tracing state) - are traced and move it by 0.
 * The ops are registered plain (the trampolines' fast path), with a
 * ret_func (function_graph), and, built as test_ftrace_guard_fast, with
 * the fast callback ABI (x86-64's lean trampolines): every entry path that
 * can meet the guard set hands the call to the C dispatcher, which counts.
 * The signal is raised synchronously (raise() delivers it to the calling
 * thread before it returns): where it lands is not left to timing.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "common/check.h"
#include "graph_funcs.h"
#include "stitch/ftrace.h"
#include "stitch/stitch.h"

#ifdef GUARD_FAST
#define NAME "test_ftrace_guard_fast"
#define CB STITCH_FTRACE_PRESERVES_REGS
#define FN(f) STITCH_FTRACE_FAST_FUNC(f)
#define RFN(f) STITCH_FTRACE_FAST_RET_FUNC(f)
#define OPS_FLAGS STITCH_FTRACE_F_PRESERVES_REGS
#else
#define NAME "test_ftrace_guard"
#define CB
#define FN(f) (f)
#define RFN(f) (f)
#define OPS_FLAGS 0u
#endif

#define CALLS_IN_CALLBACK 7 /* N: the callback's own calls of g_chain_c */
#define CALLS_IN_HANDLER 3  /* H: the handler's, per signal */

/* through volatile pointers: the calls are made, whatever the compiler sees */
static int (*volatile outer_fn)(int) = g_nested_target;
static int (*volatile inner_fn)(int) = g_chain_c;

static atomic_long outer_entries, outer_returns, inner_entries, inner_returns;
static atomic_long wrong;          /* a traced function returned a wrong value */
static atomic_long handler_runs;   /* signals handled */
static atomic_long raised_in_callback, handled_before_raise_returned;

static uint64_t guard_skips(void)
{
	struct stitch_stats st;
	stitch_get_stats(&st);
	return st.ftrace_guard_skips;
}

static void on_signal(int sig)
{
	(void)sig;
	atomic_fetch_add(&handler_runs, 1);
	for (int i = 0; i < CALLS_IN_HANDLER; i++)
		if (inner_fn(i) != i + 3)
			atomic_fetch_add(&wrong, 1);
}

static CB void on_outer(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add(&outer_entries, 1);
	for (int i = 0; i < CALLS_IN_CALLBACK; i++)
		if (inner_fn(i) != i + 3)
			atomic_fetch_add(&wrong, 1);
	long before = atomic_load(&handler_runs);
	raise(SIGUSR1);
	atomic_fetch_add(&raised_in_callback, 1);
	if (atomic_load(&handler_runs) == before + 1)
		atomic_fetch_add(&handled_before_raise_returned, 1);
}

static CB void on_outer_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			       struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent, (void)ops, (void)rregs;
	atomic_fetch_add(&outer_returns, 1);
}

static CB void on_inner(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add(&inner_entries, 1);
}

static CB void on_inner_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			       struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent, (void)ops, (void)rregs;
	atomic_fetch_add(&inner_returns, 1);
}

static void *first_call_thread(void *arg)
{
	(void)arg;
	/* this thread's first traced call: it sets up its tracing state */
	if (inner_fn(40) != 43)
		atomic_fetch_add(&wrong, 1);
	return NULL;
}

static void reset_counts(void)
{
	atomic_store(&outer_entries, 0);
	atomic_store(&outer_returns, 0);
	atomic_store(&inner_entries, 0);
	atomic_store(&inner_returns, 0);
	atomic_store(&raised_in_callback, 0);
	atomic_store(&handled_before_raise_returned, 0);
}

static void run(const char *mode, int graph)
{
	static struct stitch_ftrace_ops outer, inner;
	outer = (struct stitch_ftrace_ops){ .func = FN(on_outer), .flags = OPS_FLAGS };
	inner = (struct stitch_ftrace_ops){ .func = FN(on_inner), .flags = OPS_FLAGS };
	if (graph) {
		outer.ret_func = RFN(on_outer_return);
		inner.ret_func = RFN(on_inner_return);
	}
	CHECK(stitch_ftrace_register(&inner, "g_chain_c") == 0, "%s: register: %s", mode, stitch_last_error());
	CHECK(stitch_ftrace_register(&outer, "g_nested_target") == 0, "%s: register: %s", mode, stitch_last_error());
	reset_counts();
	uint64_t base = guard_skips();

	/* outside callbacks: traced, not counted */
	const int outside = 5;
	for (int i = 0; i < outside; i++)
		if (inner_fn(i) != i + 3)
			atomic_fetch_add(&wrong, 1);
	CHECK_EQ(atomic_load(&inner_entries), outside);
	CHECK_EQ(guard_skips() - base, 0);

	/* a handler that interrupted the program, not a callback: traced */
	long runs = atomic_load(&handler_runs);
	raise(SIGUSR1);
	CHECK_EQ(atomic_load(&handler_runs), runs + 1);
	CHECK_EQ(atomic_load(&inner_entries), outside + CALLS_IN_HANDLER);
	CHECK_EQ(guard_skips() - base, 0);

	/* a new thread's first traced call: traced, not counted */
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, first_call_thread, NULL), 0);
	pthread_join(t, NULL);
	const long traced_inner = outside + CALLS_IN_HANDLER + 1;
	CHECK_EQ(atomic_load(&inner_entries), traced_inner);
	CHECK_EQ(guard_skips() - base, 0);

	/* inside callbacks: every call of g_chain_c skipped and counted */
	const int outer_calls = 4;
	for (int i = 0; i < outer_calls; i++)
		if (outer_fn(i) != i * 5 + 1)
			atomic_fetch_add(&wrong, 1);
	CHECK_EQ(atomic_load(&outer_entries), outer_calls);
	CHECK_EQ(atomic_load(&raised_in_callback), outer_calls);
	/* the handler ran inside the callback, not after it */
	CHECK_EQ(atomic_load(&handled_before_raise_returned), outer_calls);
	CHECK_EQ(atomic_load(&inner_entries), traced_inner); /* none of them reached a callback */
	CHECK_EQ(guard_skips() - base, (uint64_t)outer_calls * (CALLS_IN_CALLBACK + CALLS_IN_HANDLER));
	if (graph) {
		CHECK_EQ(atomic_load(&outer_returns), outer_calls);
		CHECK_EQ(atomic_load(&inner_returns), traced_inner); /* the skipped calls were not hooked */
	}

	CHECK_EQ(stitch_ftrace_unregister(&outer), 0);
	CHECK_EQ(stitch_ftrace_unregister(&inner), 0);
	/* untraced sites: nothing to skip */
	uint64_t after = guard_skips();
	for (int i = 0; i < outer_calls; i++)
		outer_fn(i);
	CHECK_EQ(guard_skips() - after, 0);
	printf("%s: %s: %lu traced calls of g_chain_c, %llu skipped inside callbacks\n", NAME, mode,
	       (unsigned long)atomic_load(&inner_entries), (unsigned long long)(after - base));
}

int main(void)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof sa);
	sa.sa_handler = on_signal;
	sigemptyset(&sa.sa_mask);
	CHECK_EQ(sigaction(SIGUSR1, &sa, NULL), 0);
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	run("entry callbacks", 0);
	run("function_graph", 1);
	CHECK_EQ(atomic_load(&wrong), 0);
	return check_summary(NAME);
}
