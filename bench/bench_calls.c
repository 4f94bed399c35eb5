/* SPDX-License-Identifier: MIT */
/*
 * bench_calls: what a call costs through a static call's trampoline,
 * compared with a direct call, a function-pointer call and a
 * retpoline-style indirect call (bench_calls_thunk.c, built with
 * -mindirect-branch=thunk / -mretpoline), and what an update costs.
 *
 *   bench_calls                      every loop, ns per call (x86-64 native)
 *   bench_calls --only LOOP --iters N   one loop N times (for callgrind/qemu
 *                                    instruction counts; loops are the
 *                                    functions bench_loop_<LOOP>)
 *   bench_calls --updates-only       update latency table only
 *   bench_calls --calls-only         call table only
 *
 * On x86-64 bench_calls is linked with -Wl,--emit-relocs, so the static
 * calls' call sites are rewritten in place (inline); run it with
 * STITCH_STATIC_CALL_INLINE=0 to measure the trampoline instead.
 *
 * Loops: direct, static (near target), static_far (literal path),
 * static_null (stitch_static_call_cond on NULL), fnptr, retpoline.
 * Numbers only; nothing here passes or fails.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "repeat.h"
#include "static_call/far_thunk.h"
#include <stitch/static_call.h>

/* The callee: a real call, nothing the compiler can fold. */
__attribute__((noinline)) int bench_target(int x);
__attribute__((noinline)) int bench_target(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}
__attribute__((noinline)) void bench_vtarget(int *x);
__attribute__((noinline)) void bench_vtarget(int *x)
{
	__asm__ volatile("" ::: "memory");
	(*x)++;
}

STITCH_DEFINE_STATIC_CALL(bench_sc, bench_target);
STITCH_DEFINE_STATIC_CALL(bench_sc_far, bench_target);
STITCH_DEFINE_STATIC_CALL_NULL(bench_sc_null, void (int *));

int (*volatile bench_fnptr)(int) = bench_target;
long bench_loop_retpoline(long n, int (*fp)(int)); /* bench_calls_thunk.c */

volatile long bench_sink;

/* Not static, so that their symbols keep these names (callgrind, qemu logs). */
__attribute__((noinline)) long bench_loop_direct(long n);
__attribute__((noinline)) long bench_loop_direct(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += bench_target((int)i);
	return s;
}
__attribute__((noinline)) long bench_loop_static(long n);
__attribute__((noinline)) long bench_loop_static(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += stitch_static_call(bench_sc)((int)i);
	return s;
}
__attribute__((noinline)) long bench_loop_static_far(long n);
__attribute__((noinline)) long bench_loop_static_far(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += stitch_static_call(bench_sc_far)((int)i);
	return s;
}
__attribute__((noinline)) long bench_loop_static_null(long n);
__attribute__((noinline)) long bench_loop_static_null(long n)
{
	int x = 0;
	for (long i = 0; i < n; i++)
		stitch_static_call_cond(bench_sc_null)(&x);
	return x;
}
__attribute__((noinline)) long bench_loop_fnptr(long n);
__attribute__((noinline)) long bench_loop_fnptr(long n)
{
	long s = 0;
	int (*fp)(int) = bench_fnptr;
	for (long i = 0; i < n; i++)
		s += fp((int)i);
	return s;
}
__attribute__((noinline)) static long run_retpoline(long n)
{
	return bench_loop_retpoline(n, bench_fnptr);
}

struct loop {
	const char *name, *label;
	long (*fn)(long);
};
static const struct loop loops[] = {
	{ "direct", "direct call", bench_loop_direct },
	{ "static", "static call, near target", bench_loop_static },
	{ "static_far", "static call, far target (trampoline's literal path)", bench_loop_static_far },
	{ "static_null", "static call, NULL target (cond)", bench_loop_static_null },
	{ "fnptr", "function pointer", bench_loop_fnptr },
	{ "retpoline", "function pointer, retpoline thunk", run_retpoline },
};
#define NLOOPS (sizeof(loops) / sizeof(loops[0]))

static double now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

/* ---- update latency -------------------------------------------------------- */

#define DEF_SC(i) STITCH_DEFINE_STATIC_CALL(many_##i, bench_target);
#define REF_SC(i) stitch_static_call_desc(many_##i),
FUNCS_1000(DEF_SC, )
static struct stitch_static_call *const many[] = { FUNCS_1000(REF_SC, ) };

__attribute__((noinline)) int bench_target2(int x);
__attribute__((noinline)) int bench_target2(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 2;
}

static void update_table(int quick)
{
	int rounds = quick ? 4 : 20;
	printf("## Static call updates\n\n");
	printf("| static calls updated | µs per update | syncs per update | quiesce rounds per update |\n");
	printf("|---:|---:|---:|---:|\n");
	size_t counts[2] = { 1, 1000 };
	for (int c = 0; c < 2; c++) {
		struct stitch_stats a, b;
		stitch_get_stats(&a);
		double t0 = now_ns();
		long updates = 0;
		for (int r = 0; r < rounds; r++)
			for (size_t i = 0; i < counts[c]; i++, updates++)
				if (stitch_static_call_update_desc(many[i], r & 1 ? (void *)bench_target : (void *)bench_target2)) {
					fprintf(stderr, "update failed: %s\n", stitch_last_error());
					exit(1);
				}
		double t1 = now_ns();
		stitch_get_stats(&b);
		printf("| %zu | %.1f | %.2f | %.2f |\n", counts[c], (t1 - t0) / 1e3 / (double)updates,
		       (double)(b.syncs - a.syncs) / (double)updates,
		       (double)(b.quiesce_rounds - a.quiesce_rounds) / (double)updates);
	}
	printf("\n");
}

int main(int argc, char **argv)
{
	const char *only = NULL;
	long iters = 100000000;
	int quick = 0, updates_only = 0, calls_only = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--only") && i + 1 < argc)
			only = argv[++i];
		else if (!strcmp(argv[i], "--iters") && i + 1 < argc)
			iters = atol(argv[++i]);
		else if (!strcmp(argv[i], "--quick"))
			quick = 1, iters = 20000000;
		else if (!strcmp(argv[i], "--updates-only"))
			updates_only = 1;
		else if (!strcmp(argv[i], "--calls-only"))
			calls_only = 1;
	}
	if (stitch_init() != 0) {
		fprintf(stderr, "stitch_init: %s\n", stitch_last_error());
		return 1;
	}
	/* bench_sc_far: a stub 64 GiB away that jumps on to bench_target, so
	 * the trampoline takes its far (literal) path; the stub's own jump is
	 * counted too (it stands for the far library's entry). */
	{
		uint8_t *page = far_page((uintptr_t)stitch_static_call_desc(bench_sc_far)->tramp, FAR_DISTANCE, 0);
		void *stub = page ? far_stub(page, 0, (void *)bench_target) : NULL;
		if (!stub || far_seal(page) != 0 ||
		    stitch_static_call_update_desc(stitch_static_call_desc(bench_sc_far), stub) != 0)
			fprintf(stderr, "bench_calls: no far stub; static_far measures the near path\n");
	}
	if (only) {
		for (size_t i = 0; i < NLOOPS; i++)
			if (!strcmp(loops[i].name, only)) {
				bench_sink = loops[i].fn(iters);
				return 0;
			}
		fprintf(stderr, "bench_calls: unknown loop %s\n", only);
		return 2;
	}
	if (!updates_only) {
		printf("## Calls, %s (x86-64 native; median of 7 runs of %ld calls)\n\n",
		       stitch_static_call_site_count(stitch_static_call_desc(bench_sc)) > 0
			       ? "static calls through inline sites"
			       : "static calls through the trampoline",
		       iters);
		printf("| call | ns per call | vs direct |\n|---|---:|---:|\n");
		double direct = 0;
		for (size_t l = 0; l < NLOOPS; l++) {
			double t[7];
			loops[l].fn(iters / 10); /* warm up */
			for (int r = 0; r < 7; r++) {
				double t0 = now_ns();
				bench_sink = loops[l].fn(iters);
				t[r] = (now_ns() - t0) / (double)iters;
			}
			qsort(t, 7, sizeof(t[0]), cmp_double);
			if (l == 0)
				direct = t[3];
			printf("| %s | %.3f | %.2f |\n", loops[l].label, t[3], t[3] / direct);
		}
		printf("\n");
	}
	if (!calls_only)
		update_table(quick);
	return 0;
}
