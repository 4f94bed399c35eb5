/* SPDX-License-Identifier: MIT */
/*
 * bench_keys: what a static key costs on the fast path, and what a toggle
 * costs.  Prints markdown; bench/run drives it.  No thresholds: numbers only.
 *
 * 1. Fast path.  Four loops, identical except for what guards `hits++`:
 *      empty      nothing (the baseline)
 *      disabled   stitch_static_branch_unlikely() on a disabled key (a NOP)
 *      enabled    the same on an enabled key (a jump to the out-of-line hits++)
 *      flag       if (__atomic_load_n(&bench_flag, __ATOMIC_RELAXED)) on a global that is 0
 *    Each iteration ends with an empty asm with a "memory" clobber, so the
 *    compiler keeps one load of `flag` per iteration and cannot drop the loop;
 *    the guarded statement holds one too, so that `if (flag)` stays a
 *    conditional branch; the loops are not unrolled.  ns/iteration: median, min and max over
 *    repetitions, interleaved so that machine noise hits all four alike,
 *    and the ratio against the empty loop of the same run.
 *
 * 2. Toggles.  Keys with 1, 100 and 10 000 sites; each toggle is an enable
 *    or a disable (alternating) that rewrites every site.  µs per toggle
 *    (median, min, max), and from stitch_get_stats(): syncs, sites written
 *    and int3 trap hits per toggle; measured with no other thread, and with
 *    threads running through the key's sites meanwhile.
 *
 * Usage:
 *   bench_keys [--quick] [--loops-only | --toggles-only] [--busy N]
 *              [--ir NAME=VALUE]... [--ir-note TEXT]
 *       --ir: instructions per iteration measured elsewhere (bench/run runs
 *       callgrind), printed in the fast-path table.
 *   bench_keys --only NAME --iters N
 *       run only loop NAME (empty, disabled, enabled, flag) N times and exit:
 *       for instruction counting (callgrind, qemu), N vs 0 iterations.
 */
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stitch/static_key.h>

#include "repeat.h"

#define NOINLINE __attribute__((noinline))
#define BARRIER() __asm__ volatile("" ::: "memory")
#define NO_UNROLL _Pragma("GCC unroll 1")
/* The guarded statement; the asm keeps the compiler from turning `if (flag)` into a branch-free sbb. */
#define GUARDED(hits) do { (hits)++; BARRIER(); } while (0)

#if defined(__x86_64__)
#define ARCH_NAME "x86-64"
#elif defined(__aarch64__)
#define ARCH_NAME "AArch64"
#elif defined(__riscv)
#define ARCH_NAME "RISC-V 64"
#else
#define ARCH_NAME "unknown"
#endif

#if defined(__clang__)
#define STR_(x) #x
#define STR(x) STR_(x)
#define COMPILER "clang " STR(__clang_major__) "." STR(__clang_minor__) "." STR(__clang_patchlevel__)
#elif defined(__GNUC__)
#define COMPILER "gcc " __VERSION__
#else
#define COMPILER "unknown compiler"
#endif

/* ---- 1. The fast-path loops. ---- */

STITCH_DEFINE_STATIC_KEY_FALSE(key_off); /* never enabled */
STITCH_DEFINE_STATIC_KEY_FALSE(key_on);  /* enabled before the loops run */
/*
 * Never set; read with a relaxed atomic load.  Not static: clang folds
 * loads of a static variable that nothing ever stores to.
 */
extern int bench_flag;
int bench_flag;

/* Not static, so that their symbols keep these names (callgrind, qemu logs). */
uint64_t bench_loop_empty(uint64_t n);
uint64_t bench_loop_disabled(uint64_t n);
uint64_t bench_loop_enabled(uint64_t n);
uint64_t bench_loop_flag(uint64_t n);

NOINLINE uint64_t bench_loop_empty(uint64_t n)
{
	uint64_t hits = 0;
	NO_UNROLL
	for (uint64_t i = 0; i < n; i++)
		BARRIER();
	return hits;
}

NOINLINE uint64_t bench_loop_disabled(uint64_t n)
{
	uint64_t hits = 0;
	NO_UNROLL
	for (uint64_t i = 0; i < n; i++) {
		if (stitch_static_branch_unlikely(&key_off))
			GUARDED(hits);
		BARRIER();
	}
	return hits;
}

NOINLINE uint64_t bench_loop_enabled(uint64_t n)
{
	uint64_t hits = 0;
	NO_UNROLL
	for (uint64_t i = 0; i < n; i++) {
		if (stitch_static_branch_unlikely(&key_on))
			GUARDED(hits);
		BARRIER();
	}
	return hits;
}

NOINLINE uint64_t bench_loop_flag(uint64_t n)
{
	uint64_t hits = 0;
	NO_UNROLL
	for (uint64_t i = 0; i < n; i++) {
		if (__builtin_expect(__atomic_load_n(&bench_flag, __ATOMIC_RELAXED), 0))
			GUARDED(hits);
		BARRIER();
	}
	return hits;
}

struct loop {
	const char *name;
	const char *label;
	uint64_t (*fn)(uint64_t);
	uint64_t expect_hits_per_iter;
};
static const struct loop loops[] = {
	{ "empty", "empty loop (baseline)", bench_loop_empty, 0 },
	{ "disabled", "static branch, key disabled", bench_loop_disabled, 0 },
	{ "enabled", "static branch, key enabled", bench_loop_enabled, 1 },
	{ "flag", "`if (flag)`, relaxed atomic load", bench_loop_flag, 0 },
};
#define NLOOPS (int)(sizeof(loops) / sizeof(loops[0]))

/* Called through a volatile pointer: no constant propagation into the loops. */
static uint64_t run_loop(int i, uint64_t n)
{
	uint64_t (*volatile fn)(uint64_t) = loops[i].fn;
	return fn(n);
}

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

struct summary {
	double median, min, max;
};

static struct summary summarise(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	struct summary s = { n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1] };
	return s;
}

static void die(const char *what, int err)
{
	fprintf(stderr, "bench_keys: %s: %s: %s\n", what, stitch_strerror(err), stitch_last_error());
	exit(2);
}

static const char *ir_value[NLOOPS];
static const char *ir_note = "not measured (run bench/run for callgrind counts)";

static void bench_loops(bool quick)
{
	const uint64_t iters = quick ? 20000000 : 50000000;
	const int reps = quick ? 5 : 21;
	double ns[NLOOPS][21];

	int err = stitch_static_key_enable(&key_on);
	if (err)
		die("enable key_on", err);
	for (int i = 0; i < NLOOPS; i++) /* warm up: page in, settle the clock */
		run_loop(i, iters / 10);
	for (int r = 0; r < reps; r++)
		for (int j = 0; j < NLOOPS; j++) {
			int i = (j + r) % NLOOPS; /* rotate the order from one repetition to the next */
			double t0 = now_ns();
			uint64_t hits = run_loop(i, iters);
			double dt = now_ns() - t0;
			if (hits != loops[i].expect_hits_per_iter * iters) {
				fprintf(stderr, "bench_keys: loop %s: %llu hits, expected %llu\n", loops[i].name,
					(unsigned long long)hits,
					(unsigned long long)(loops[i].expect_hits_per_iter * iters));
				exit(2);
			}
			ns[i][r] = dt / (double)iters;
		}

	struct summary s[NLOOPS];
	for (int i = 0; i < NLOOPS; i++)
		s[i] = summarise(ns[i], reps);
	printf("## Fast path: cost of one loop iteration\n\n");
	printf("%s, %s; %d repetitions of %llu iterations per loop, interleaved.\n\n", ARCH_NAME, COMPILER, reps,
	       (unsigned long long)iters);
	printf("| loop | ns/iter median | min | max | median / empty | instructions/iter | extra vs empty |\n");
	printf("|---|---:|---:|---:|---:|---:|---:|\n");
	double ir_empty = ir_value[0] ? atof(ir_value[0]) : 0;
	for (int i = 0; i < NLOOPS; i++) {
		printf("| %s | %.3f | %.3f | %.3f | %.2f | ", loops[i].label, s[i].median, s[i].min, s[i].max,
		       s[i].median / s[0].median);
		if (ir_value[i] && ir_value[0])
			printf("%s | %+.2f |\n", ir_value[i], atof(ir_value[i]) - ir_empty);
		else
			printf("n/a | n/a |\n");
	}
	printf("\nInstructions/iter: %s.\n\n", ir_note);
}

/* ---- 2. Toggles: keys with 1, 100 and 10 000 sites. ---- */

STITCH_DEFINE_STATIC_KEY_FALSE(key_1);
STITCH_DEFINE_STATIC_KEY_FALSE(key_100);
STITCH_DEFINE_STATIC_KEY_FALSE(key_10k);

static NOINLINE int sites_1(void)
{
	return stitch_static_branch_unlikely(&key_1) ? 1 : 0;
}

/*
 * `cold`: gcc optimises these for size, which keeps its block reordering
 * (the "stc" algorithm) from duplicating sites: at -O2 on AArch64 and RISC-V
 * it turned 100 branches into 199 sites.  Each copy would be a site of its
 * own, and the key would no longer have the number of sites in its name.
 */
#define SITES_FN __attribute__((noinline, cold))
#define SITE_100 n += stitch_static_branch_unlikely(&key_100) ? 1 : 0;
static SITES_FN int sites_100(void)
{
	int n = 0;
	SITES_100(SITE_100)
	return n;
}

/* 100 functions of 100 sites each. */
#define SITE_10K n += stitch_static_branch_unlikely(&key_10k) ? 1 : 0;
#define FUNC_10K(i)                                  \
	static SITES_FN int sites_10k_##i(void)      \
	{                                            \
		int n = 0;                           \
		SITES_100(SITE_10K)                  \
		return n;                            \
	}
FUNCS_100(FUNC_10K, _)
#define FUNC_10K_PTR(i) sites_10k_##i,
static int (*const sites_10k_fns[])(void) = { FUNCS_100(FUNC_10K_PTR, _) };

static NOINLINE int sites_10k(void)
{
	int n = 0;
	for (size_t i = 0; i < sizeof(sites_10k_fns) / sizeof(sites_10k_fns[0]); i++)
		n += sites_10k_fns[i]();
	return n;
}

struct toggle_key {
	const char *name;
	struct stitch_static_key *key;
	int (*run)(void); /* runs through every site once; returns how many jumped */
	int branches;     /* branches in the source (what run() returns when enabled) */
	int toggles, toggles_quick;
};
static const struct toggle_key tkeys[] = {
	{ "1", &key_1.key, sites_1, 1, 2000, 200 },
	{ "100", &key_100.key, sites_100, 100, 1000, 200 },
	{ "10 000", &key_10k.key, sites_10k, 10000, 60, 10 },
};
#define NTKEYS (int)(sizeof(tkeys) / sizeof(tkeys[0]))

static const struct toggle_key *busy_key;
static int busy_stop;

static void *busy_main(void *arg)
{
	(void)arg;
	while (!__atomic_load_n(&busy_stop, __ATOMIC_RELAXED))
		busy_key->run();
	return NULL;
}

static void bench_toggle(const struct toggle_key *k, int toggles, int busy)
{
	double *us = calloc((size_t)toggles, sizeof(*us));
	pthread_t threads[16];
	if (!us)
		exit(2);
	busy_key = k;
	busy_stop = 0;
	for (int i = 0; i < busy; i++)
		if (pthread_create(&threads[i], NULL, busy_main, NULL)) {
			fprintf(stderr, "bench_keys: pthread_create failed\n");
			exit(2);
		}

	struct stitch_stats s0, s1;
	stitch_get_stats(&s0);
	for (int t = 0; t < toggles; t++) {
		double t0 = now_ns();
		int err = t % 2 ? stitch_static_key_disable_key(k->key) : stitch_static_key_enable_key(k->key);
		us[t] = (now_ns() - t0) / 1e3;
		if (err)
			die("toggle", err);
	}
	stitch_get_stats(&s1);

	__atomic_store_n(&busy_stop, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < busy; i++)
		pthread_join(threads[i], NULL);
	/* Every site follows the key (toggles is even, so the key ends disabled). */
	int want = stitch_static_key_count(k->key) > 0 ? k->branches : 0;
	if (k->run() != want) {
		fprintf(stderr, "bench_keys: key with %s sites: sites disagree with the key after toggling\n",
			k->name);
		exit(2);
	}

	struct summary s = summarise(us, toggles);
	double n = toggles;
	printf("| %s | %d | %d | %d | %.1f | %.1f | %.1f | %.2f | %.1f | %.1f | %.2f |\n", k->name,
	       stitch_static_key_site_count(k->key), busy, toggles, s.median, s.min, s.max, (double)(s1.syncs - s0.syncs) / n,
	       (double)(s1.sites_written - s0.sites_written) / n, (double)(s1.trap_hits - s0.trap_hits) / n,
	       (double)(s1.quiesce_rounds - s0.quiesce_rounds) / n);
	free(us);
}

static void bench_toggles(bool quick, int busy)
{
	printf("## Toggle latency and syncs per toggle\n\n");
	printf("%s, %s, write backend: %s.  A toggle is one enable or disable that rewrites every site of the "
	       "key; per-toggle figures from stitch_get_stats().  \"Threads running\": threads looping through "
	       "the key's sites during the toggles.\n\n",
	       ARCH_NAME, COMPILER, stitch_backend_name());
	printf("| branches | sites | threads running | toggles | µs/toggle median | min | max | syncs/toggle "
	       "| sites written/toggle | int3 trap hits/toggle | quiesce rounds/toggle |\n");
	printf("|---:|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
	for (int i = 0; i < NTKEYS; i++) {
		int toggles = quick ? tkeys[i].toggles_quick : tkeys[i].toggles;
		bench_toggle(&tkeys[i], toggles, 0);
		if (busy)
			bench_toggle(&tkeys[i], toggles, busy);
	}
	printf("\n");
}

/* ---- Command line. ---- */

static void usage(void)
{
	fprintf(stderr, "usage: bench_keys [--quick] [--loops-only|--toggles-only] [--busy N] "
			"[--ir NAME=VALUE]... [--ir-note TEXT]\n"
			"       bench_keys --only empty|disabled|enabled|flag --iters N\n");
	exit(2);
}

int main(int argc, char **argv)
{
	bool quick = false, do_loops = true, do_toggles = true;
	const char *only = NULL;
	long long iters = -1;
	int busy = 2;
	for (int i = 1; i < argc; i++) {
		const char *a = argv[i];
		if (!strcmp(a, "--quick")) {
			quick = true;
		} else if (!strcmp(a, "--loops-only")) {
			do_toggles = false;
		} else if (!strcmp(a, "--toggles-only")) {
			do_loops = false;
		} else if (!strcmp(a, "--busy") && i + 1 < argc) {
			busy = atoi(argv[++i]);
			if (busy < 0 || busy > 16)
				usage();
		} else if (!strcmp(a, "--only") && i + 1 < argc) {
			only = argv[++i];
		} else if (!strcmp(a, "--iters") && i + 1 < argc) {
			iters = atoll(argv[++i]);
		} else if (!strcmp(a, "--ir-note") && i + 1 < argc) {
			ir_note = argv[++i];
		} else if (!strcmp(a, "--ir") && i + 1 < argc) {
			const char *v = argv[++i], *eq = strchr(v, '=');
			int j = 0;
			while (j < NLOOPS && (!eq || strncmp(v, loops[j].name, (size_t)(eq - v)) ||
					      loops[j].name[eq - v]))
				j++;
			if (j == NLOOPS)
				usage();
			ir_value[j] = eq + 1;
		} else {
			usage();
		}
	}

	if (only) {
		int i = 0;
		while (i < NLOOPS && strcmp(only, loops[i].name))
			i++;
		if (i == NLOOPS || iters < 0)
			usage();
		if (i == 2) {
			int err = stitch_static_key_enable(&key_on);
			if (err)
				die("enable key_on", err);
		}
		uint64_t hits = run_loop(i, (uint64_t)iters);
		return hits == loops[i].expect_hits_per_iter * (uint64_t)iters ? 0 : 1;
	}

	int err = stitch_init();
	if (err)
		die("stitch_init", err);
	if (do_loops)
		bench_loops(quick);
	if (do_toggles)
		bench_toggles(quick, busy);
	return 0;
}
