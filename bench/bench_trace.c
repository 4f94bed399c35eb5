/* SPDX-License-Identifier: MIT */
/*
 * bench_trace: what a function-entry tracing site costs per call, built
 * three ways from one source (bench/CMakeLists.txt):
 *
 *   bench_trace        (any compiler, BENCH_STITCH)  plain call, stitch site
 *                      untraced (as compiled, and prepared: the form a
 *                      first enable or stitch_ftrace_prepare() leaves; x86
 *                      gcc: one NOP5), traced entry (empty func), traced
 *                      entry+exit (empty func and ret_func) if the library
 *                      has function_graph; the same two with the fast
 *                      callback ABI (STITCH_FTRACE_F_PRESERVES_REGS)
 *   bench_trace_xray   (clang, BENCH_XRAY)  plain call, XRay sled unpatched,
 *                      patched with an empty handler (entry and exit events:
 *                      XRay patches a function's entry and exit sleds together)
 *   bench_trace_pg     (gcc, BENCH_PG)  the leaf built with -pg, for
 *                      `uftrace record` (bench/run times the whole program,
 *                      since uftrace's cost is also in its recorder)
 *
 * The traced functions are in trace_leaf.c, compiled once per variant.
 * Every variant also has the plain loop, so each ratio has a baseline from
 * the same process.
 *
 *   bench_trace [--quick]              ns per call, one TSV line per mode:
 *                                      ns <mode> <median> <min> <max> <reps> <calls>
 *   bench_trace --only MODE --iters N  put MODE in place, run its loop N times,
 *                                      exit (callgrind: N vs 0; uftrace; perf)
 *   bench_trace --modes                list the modes
 *
 * Numbers only: nothing here passes or fails on a timing.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"

#if defined(BENCH_STITCH)
#include <stitch/ftrace.h>
#elif defined(BENCH_XRAY)
#include "xray_c.h" /* clang's xray_interface.h is C++ only */
#elif !defined(BENCH_PG)
#error "define BENCH_STITCH, BENCH_XRAY or BENCH_PG"
#endif

/* trace_leaf.c, once per prefix */
long bench_loop_plain(long n);
#if defined(BENCH_STITCH)
long bench_loop_ftrace(long n);
long bench_loop_ftrace_pristine(long n);
int ftrace_leaf(int x);
#elif defined(BENCH_XRAY)
long bench_loop_xray(long n);
int xray_leaf(int x);
#else
long bench_loop_pg(long n);
#endif

volatile long bench_sink;

static void fail(const char *what, const char *why)
{
	fprintf(stderr, "bench_trace: %s: %s\n", what, why);
	exit(2);
}

/* ---- what each mode puts in place ---------------------------------------- */

#if defined(BENCH_STITCH)
/* Empty callbacks: what is measured is the path to them and back. */
static void on_entry(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops,
		     struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent_ip, (void)ops, (void)regs;
}
static struct stitch_ftrace_ops ops_entry = { .func = on_entry };
#ifdef BENCH_HAVE_FGRAPH
static void on_return(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops,
		      struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent_ip, (void)ops, (void)rregs;
}
static struct stitch_ftrace_ops ops_graph = { .func = on_entry, .ret_func = on_return };
#endif
#ifdef STITCH_FTRACE_F_PRESERVES_REGS
/* The fast ABI: callbacks that preserve every register (stitch/ftrace.h). */
#define BENCH_HAVE_FAST
static STITCH_FTRACE_PRESERVES_REGS void on_entry_fast(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops,
						       struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent_ip, (void)ops, (void)regs;
}
static STITCH_FTRACE_PRESERVES_REGS void on_return_fast(uintptr_t ip, uintptr_t parent_ip,
							struct stitch_ftrace_ops *ops,
							struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent_ip, (void)ops, (void)rregs;
}
static struct stitch_ftrace_ops ops_entry_fast = { .func = STITCH_FTRACE_FAST_FUNC(on_entry_fast), .flags = STITCH_FTRACE_F_PRESERVES_REGS };
static struct stitch_ftrace_ops ops_graph_fast = { .func = STITCH_FTRACE_FAST_FUNC(on_entry_fast),
						   .ret_func = STITCH_FTRACE_FAST_RET_FUNC(on_return_fast),
						   .flags = STITCH_FTRACE_F_PRESERVES_REGS };
#endif
static struct stitch_ftrace_ops *registered;

/* Trace ftrace_leaf with ops (NULL: trace nothing). */
static void trace_with(struct stitch_ftrace_ops *ops)
{
	int err;
	if (registered == ops)
		return;
	if (registered && (err = stitch_ftrace_unregister(registered)) != 0)
		fail("stitch_ftrace_unregister", stitch_last_error());
	registered = NULL;
	if (ops && (err = stitch_ftrace_register(ops, "ftrace_leaf")) != 0)
		fail("stitch_ftrace_register", stitch_last_error());
	registered = ops;
}
static void set_none(void) { trace_with(NULL); }
/* The leaf's site in its prepared form (x86 gcc: one NOP5 for five NOPs),
 * as after its first enable, untraced. */
static void set_prepared(void)
{
	trace_with(NULL);
	if (stitch_ftrace_prepare("ftrace_leaf") != 0)
		fail("stitch_ftrace_prepare", stitch_last_error());
}
static void set_entry(void) { trace_with(&ops_entry); }
#ifdef BENCH_HAVE_FGRAPH
static void set_graph(void) { trace_with(&ops_graph); }
#endif
#ifdef BENCH_HAVE_FAST
static void set_entry_fast(void) { trace_with(&ops_entry_fast); }
static void set_graph_fast(void) { trace_with(&ops_graph_fast); }
#endif

#elif defined(BENCH_XRAY)
static void on_event(int32_t id, enum bench_xray_entry_type type)
{
	(void)id, (void)type;
}
static int32_t leaf_id = -1;
static int patched;

/* XRay numbers functions; find the leaf's number by its address. */
static void find_leaf(void)
{
	for (size_t id = 1; id <= __xray_max_function_id(); id++)
		if (__xray_function_address((int32_t)id) == (uintptr_t)xray_leaf)
			leaf_id = (int32_t)id;
	if (leaf_id < 0)
		fail("xray", "no sled for xray_leaf (built without -fxray-instrument?)");
	if (__xray_set_handler(on_event) != 1)
		fail("__xray_set_handler", "failed");
}
static void set_none(void)
{
	if (patched && __xray_unpatch_function(leaf_id) != BENCH_XRAY_SUCCESS)
		fail("__xray_unpatch_function", "failed");
	patched = 0;
}
static void set_patched(void)
{
	if (!patched && __xray_patch_function(leaf_id) != BENCH_XRAY_SUCCESS)
		fail("__xray_patch_function", "failed");
	patched = 1;
}
#else
static void set_none(void) {}
#endif

struct mode {
	const char *name;
	long (*loop)(long);
	void (*set)(void);
};
static const struct mode modes[] = {
	{ "plain", bench_loop_plain, set_none },
#if defined(BENCH_STITCH)
	{ "untraced", bench_loop_ftrace_pristine, set_none },
	{ "untraced_prepared", bench_loop_ftrace, set_prepared },
	{ "entry", bench_loop_ftrace, set_entry },
#ifdef BENCH_HAVE_FGRAPH
	{ "entry_exit", bench_loop_ftrace, set_graph },
#endif
#ifdef BENCH_HAVE_FAST
	{ "entry_fast", bench_loop_ftrace, set_entry_fast },
	{ "entry_exit_fast", bench_loop_ftrace, set_graph_fast },
#endif
#elif defined(BENCH_XRAY)
	{ "unpatched", bench_loop_xray, set_none },
	{ "patched", bench_loop_xray, set_patched },
#else
	{ "pg", bench_loop_pg, set_none },
#endif
};
#define NMODES (int)(sizeof(modes) / sizeof(modes[0]))

static const struct mode *find_mode(const char *name)
{
	for (int i = 0; i < NMODES; i++)
		if (!strcmp(modes[i].name, name))
			return &modes[i];
	fail("unknown mode", name);
	return NULL;
}

/* Through a volatile pointer, so that nothing is propagated into the loop. */
static long run(const struct mode *m, long n)
{
	long (*volatile loop)(long) = m->loop;
	return loop(n);
}

#define MAX_REPS 21

int main(int argc, char **argv)
{
	const char *only = NULL;
	long iters = -1;
	int quick = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--modes")) {
			for (int m = 0; m < NMODES; m++)
				printf("%s\n", modes[m].name);
			return 0;
		} else
			fail("usage", "bench_trace [--quick] | --only MODE --iters N | --modes");
	}
#if defined(BENCH_XRAY)
	find_leaf();
#endif
	if (only) {
		const struct mode *m = find_mode(only);
		if (iters < 0)
			fail("usage", "--only needs --iters");
		m->set();
		bench_sink = run(m, iters);
		set_none();
		return 0;
	}

	/*
	 * Repetitions interleaved and rotated, as in bench_keys: noise from
	 * the other users of this machine hits every mode alike.  The switch
	 * between modes (register, patch) is outside the timed region.
	 */
	const long calls = quick ? 5000000 : 10000000;
	const int reps = quick ? 5 : MAX_REPS;
	double ns[NMODES][MAX_REPS];
	for (int i = 0; i < NMODES; i++) { /* warm up: page in, first register */
		modes[i].set();
		bench_sink = run(&modes[i], calls / 10);
	}
	for (int r = 0; r < reps; r++)
		for (int j = 0; j < NMODES; j++) {
			const struct mode *m = &modes[(j + r) % NMODES];
			m->set();
			double t0 = bench_now_ns();
			bench_sink = run(m, calls);
			ns[m - modes][r] = (bench_now_ns() - t0) / (double)calls;
		}
	set_none();
	for (int i = 0; i < NMODES; i++) {
		struct bench_summary s = bench_summarise(ns[i], reps);
		printf("ns\t%s\t%.3f\t%.3f\t%.3f\t%d\t%ld\n", modes[i].name, s.median, s.min, s.max, reps, calls);
	}
	printf("compiler\t%s\n", BENCH_COMPILER);
	return 0;
}
