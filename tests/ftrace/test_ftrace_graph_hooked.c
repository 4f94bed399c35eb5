/* SPDX-License-Identifier: MIT */
/*
 * stitch_ftrace_return_hooked(): an entry callback of a graph ops learns
 * whether the return of the call it sees will be reported.  Exact, call by
 * call, against what the library then does:
 *
 *  1. one recursion 300 calls deeper than the shadow stack: "hooked" for
 *     exactly the first STITCH_FTRACE_GRAPH_DEPTH levels, "not hooked"
 *     beyond; every level said hooked gets exactly one ret_func, no other
 *     does (each return is told by its value: g_deep_then(n) returns n);
 *  2. the shadow stack is the thread's, shared by every graph ops: a
 *     thread 1 001 calls deep under ops A waits at the bottom while another
 *     thread unregisters A and registers B; then it recurses 300 calls
 *     more, under B.  A's entries still hold their places (their calls
 *     have not returned), so only 23 of B's calls are hooked - where a
 *     count of B's own calls (what stitch-trace's agent kept) sees room
 *     for 1 024.
 *
 * Each case runs with the graph ops alone on the site (the trampolines'
 * assembly fast paths, which push the shadow entry before func, where the
 * build has them) and with a second, entry-only ops beside it (the C
 * dispatcher, which pushes after func).  Built twice, like
 * test_ftrace_graph: test_ftrace_graph_hooked_fast (GRAPH_FAST) calls it
 * from fast-ABI callbacks (x86-64's lean trampoline).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "common/check.h"
#include "graph_funcs.h"
#include "stitch/ftrace.h"
#include "stitch/stitch.h"
#include "trampolines.h"

#ifdef GRAPH_FAST
#define CB STITCH_FTRACE_PRESERVES_REGS
#define FN(f) STITCH_FTRACE_FAST_FUNC(f)
#define RFN(f) STITCH_FTRACE_FAST_RET_FUNC(f)
#define OPS_FLAGS STITCH_FTRACE_F_PRESERVES_REGS
#if defined(__x86_64__)
#define CB_HELPER __attribute__((target("general-regs-only")))
#else
#define CB_HELPER
#endif
#else
#define CB
#define FN(f) (f)
#define RFN(f) (f)
#define CB_HELPER
#define OPS_FLAGS 0u
#endif

#define LIMIT STITCH_FTRACE_GRAPH_DEPTH
#define OVER_DEEP (LIMIT + 300) /* case 1: g_deep_then(OVER_DEEP), OVER_DEEP + 1 calls */
#define STALE_DEEP 1000         /* case 2: under A, 1 001 calls */
#define AFTER_DEEP 300          /* case 2: then under B, 301 calls */
#define MAX_LEVELS (OVER_DEEP + 1)

/* What one graph ops saw of one recursion, level by level (level 0 the
 * outermost call).  Written by the one recursing thread; read by the main
 * thread after pthread_join() or on the same thread. */
struct track {
	struct stitch_ftrace_ops *ops;
	int outer_n; /* the argument of the outermost call: level = outer_n - value */
	int entered;
	signed char hooked[MAX_LEVELS]; /* the answer at each level's entry */
	int returned[MAX_LEVELS];       /* ret_func calls for each level */
};
static struct track track_a, track_b;
static atomic_int stray_returns; /* a ret_func no level expects */
static atomic_long entries_from_asm;

static struct stitch_ftrace_ops ops_a, ops_b, ops_plain;

static CB_HELPER struct track *track_of(const struct stitch_ftrace_ops *ops)
{
	return ops == &ops_a ? &track_a : ops == &ops_b ? &track_b : NULL;
}

static CB void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)regs;
	uintptr_t from = (uintptr_t)__builtin_return_address(0);
	if (tramp_in_entry(from) || tramp_in_lean(from))
		atomic_fetch_add(&entries_from_asm, 1);
	struct track *t = track_of(ops);
	if (!t)
		return;
	if (t->entered < MAX_LEVELS)
		t->hooked[t->entered] = (signed char)stitch_ftrace_return_hooked();
	t->entered++;
}

static CB void on_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			 struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent;
	struct track *t = track_of(ops);
	long level = t && rregs ? (long)t->outer_n - (long)stitch_ftrace_ret_value(rregs) : -1;
	if (level < 0 || level >= MAX_LEVELS)
		atomic_fetch_add(&stray_returns, 1);
	else
		t->returned[level]++;
}

/* The entry-only ops that sends the site's calls through the dispatcher. */
static CB void on_plain_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			      struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
}

static void track_reset(struct track *t, struct stitch_ftrace_ops *ops, int outer_n)
{
	memset(t, 0, sizeof(*t));
	memset(t->hooked, -1, sizeof(t->hooked));
	t->ops = ops;
	t->outer_n = outer_n;
}

static void ops_init(struct stitch_ftrace_ops *o)
{
	*o = (struct stitch_ftrace_ops){ .func = FN(on_entry), .ret_func = RFN(on_return), .flags = OPS_FLAGS };
}

/* Levels [0, calls) seen, the first `room` said hooked and reported once
 * each, the rest said not hooked and never reported; `reported` false:
 * none reported at all (the ops was gone when they returned). */
static void check_track(const char *what, const struct track *t, int calls, int room, bool reported)
{
	CHECK(t->entered == calls, "%s: %d entries seen, expected %d", what, t->entered, calls);
	int wrong_answer = 0, wrong_return = 0, first_wrong = -1;
	for (int i = 0; i < calls && i < MAX_LEVELS; i++) {
		int want = i < room;
		int got_returns = t->returned[i], want_returns = reported && want;
		if (t->hooked[i] != want)
			wrong_answer++;
		if (got_returns != want_returns)
			wrong_return++;
		if (first_wrong < 0 && (t->hooked[i] != want || got_returns != want_returns))
			first_wrong = i;
	}
	CHECK(wrong_answer == 0 && wrong_return == 0,
	      "%s: %d levels answered wrong, %d with the wrong number of returns (first: level %d, said %d, "
	      "%d returns; hooked up to level %d)",
	      what, wrong_answer, wrong_return, first_wrong, first_wrong >= 0 ? t->hooked[first_wrong] : 0,
	      first_wrong >= 0 ? t->returned[first_wrong] : 0, room - 1);
}

static void register_plain(bool mixed)
{
	if (!mixed)
		return;
	ops_plain = (struct stitch_ftrace_ops){ .func = FN(on_plain_entry), .flags = OPS_FLAGS };
	int err = stitch_ftrace_register(&ops_plain, "g_deep_then");
	CHECK(err == 0, "register the entry-only ops: %s", stitch_last_error());
}

static void unregister_plain(bool mixed)
{
	if (mixed)
		CHECK_EQ(stitch_ftrace_unregister(&ops_plain), 0);
}

/* ---- 1: deeper than the shadow stack -------------------------------------- */

static void run_overflow(bool mixed)
{
	const char *what = mixed ? "overflow, with an entry-only ops" : "overflow, alone";
	ops_init(&ops_a);
	track_reset(&track_a, &ops_a, OVER_DEEP);
	atomic_store(&stray_returns, 0);
	atomic_store(&entries_from_asm, 0);
	int err = stitch_ftrace_register(&ops_a, "g_deep_then");
	CHECK(err == 0, "register: %s", stitch_last_error());
	register_plain(mixed);
	struct stitch_stats s0, s1;
	stitch_get_stats(&s0);
	CHECK_EQ(g_deep_then(OVER_DEEP, NULL), OVER_DEEP);
	stitch_get_stats(&s1);
	CHECK(!stitch_ftrace_return_hooked(), "outside a callback: said hooked");
	unregister_plain(mixed);
	CHECK_EQ(stitch_ftrace_unregister(&ops_a), 0);

	check_track(what, &track_a, OVER_DEEP + 1, LIMIT, true);
	CHECK_EQ(atomic_load(&stray_returns), 0);
	CHECK_EQ(s1.graph_overflows - s0.graph_overflows, OVER_DEEP + 1 - LIMIT);
	long from_asm = atomic_load(&entries_from_asm);
	if (mixed) {
		CHECK(from_asm == 0, "%s: %ld entries took a fast path", what, from_asm);
	} else {
#ifdef GRAPH_ASM_FAST
		/* all hooked ones but the thread's first: the fast paths' answer
		 * (pushed before func) is checked, and the dispatcher's at the
		 * limit (they hand it full stacks) */
		CHECK(from_asm >= LIMIT - 1, "%s: only %ld entries took a fast path", what, from_asm);
#endif
	}
}

/* ---- 2: entries of an unregistered ops still on the stack ------------------ */

static pthread_barrier_t at_bottom, switched;

static void bottom_of_a(void)
{
	/* STALE_DEEP + 1 calls hooked under A are in flight on this thread */
	pthread_barrier_wait(&at_bottom);
	pthread_barrier_wait(&switched); /* A gone, B registered */
	g_deep_then(AFTER_DEEP, NULL);
}

static void *deep_thread(void *arg)
{
	(void)arg;
	g_deep_then(STALE_DEEP, bottom_of_a);
	return NULL;
}

static void run_stale(bool mixed)
{
	const char *what_a = mixed ? "stale, ops A, with an entry-only ops" : "stale, ops A, alone";
	const char *what_b = mixed ? "stale, ops B, with an entry-only ops" : "stale, ops B, alone";
	ops_init(&ops_a);
	ops_init(&ops_b);
	track_reset(&track_a, &ops_a, STALE_DEEP);
	track_reset(&track_b, &ops_b, AFTER_DEEP);
	atomic_store(&stray_returns, 0);
	pthread_barrier_init(&at_bottom, NULL, 2);
	pthread_barrier_init(&switched, NULL, 2);
	int err = stitch_ftrace_register(&ops_a, "g_deep_then");
	CHECK(err == 0, "register A: %s", stitch_last_error());
	register_plain(mixed);

	pthread_attr_t attr;
	pthread_attr_init(&attr);
	pthread_attr_setstacksize(&attr, 16u << 20);
	pthread_t th;
	CHECK_EQ(pthread_create(&th, &attr, deep_thread, NULL), 0);
	pthread_attr_destroy(&attr);
	pthread_barrier_wait(&at_bottom);
	/* the deep thread is outside every callback: the grace period does
	 * not wait for it, and its hooked calls stay on its shadow stack */
	CHECK_EQ(stitch_ftrace_unregister(&ops_a), 0);
	err = stitch_ftrace_register(&ops_b, "g_deep_then");
	CHECK(err == 0, "register B: %s", stitch_last_error());
	pthread_barrier_wait(&switched);
	CHECK_EQ(pthread_join(th, NULL), 0);
	unregister_plain(mixed);
	CHECK_EQ(stitch_ftrace_unregister(&ops_b), 0);
	pthread_barrier_destroy(&at_bottom);
	pthread_barrier_destroy(&switched);

	/* A: all hooked, none reported (A was gone when they returned) */
	check_track(what_a, &track_a, STALE_DEEP + 1, STALE_DEEP + 1, false);
	/* B: only what A's entries left of the thread's stack */
	check_track(what_b, &track_b, AFTER_DEEP + 1, LIMIT - (STALE_DEEP + 1), true);
	CHECK_EQ(atomic_load(&stray_returns), 0);
}

int main(void)
{
	for (int mixed = 0; mixed <= 1; mixed++) {
		run_overflow(mixed);
		run_stale(mixed);
	}
#ifdef GRAPH_FAST
	return check_summary("test_ftrace_graph_hooked_fast");
#else
	return check_summary("test_ftrace_graph_hooked");
#endif
}
