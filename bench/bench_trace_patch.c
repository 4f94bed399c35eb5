/* SPDX-License-Identifier: MIT */
/*
 * bench_trace_patch: what switching function tracing on and off costs, and
 * what the program's own threads feel meanwhile.  The functions are the
 * generated bt_f00000 ... (bench/gen_funcs.sh, built with the tracing flags
 * at -O0: their bodies do not matter, only their entry sites, and -O0
 * keeps 100 000 of them quick to compile).  Built twice from this source:
 *
 *   bench_trace_patch       BENCH_STITCH: stitch_ftrace_register() of a glob
 *                           selecting the first n functions, or
 *                           stitch_ftrace_register_ips() of their addresses;
 *                           stitch_ftrace_unregister()
 *   bench_trace_xray_patch  BENCH_XRAY (clang): __xray_patch_function() for
 *                           each of the first n, or __xray_patch() when n is
 *                           all of them (and the unpatch counterparts)
 *
 *   --patch [--quick]  enable and disable 1, 1 000 and all sites, timed
 *                      separately; TSV lines:
 *                      patch <method> <n> <enable|disable> <median µs> <min> <max>
 *                            <reps> <syncs/op> ("-" for XRay, which keeps no counters)
 *   --first [--stopped]  (stitch) the first enable of every site, once per
 *                      process: gcc's five NOPs become a call (and later a
 *                      NOP5) through the int3 batch with a quiescence (x86-64);
 *                      with --stopped a thread that blocks SIGTRAP sleeps
 *                      meanwhile, so the batch stops the world instead (what
 *                      the library did before 2026-11-27).  The workers of
 *                      --disturb run through it.  TSV:
 *                      first <int3+quiesce|stopped> <n> <enable µs> <syncs>
 *                            <quiescence rounds> <stopped worlds> <TLB shootdowns,
 *                            all CPUs, the machine's whole (-1: unknown)>
 *                      and stall lines for "idle" (0.3 s) and "first-enable"
 *   --switch-all REPS  only: enable and disable all sites REPS times (glob, or
 *                      XRay's __xray_patch), then the two patch lines; for a
 *                      profiler (perf record), whose samples would otherwise
 *                      be spread over the smaller sizes and the set-up
 *   --disturb SECONDS  one worker thread per CPU calls 16 of the functions per
 *                      iteration and records each iteration's duration; first
 *                      with nothing patching, then while the main thread
 *                      enables and disables every site, back to back.  TSV:
 *                      stall <idle|patching> <iterations> <median ns> <p99 ns>
 *                            <p99.9 ns> <max ns> <switches> <stalls >= 1 ms> <ms in them>
 *
 * Numbers only: nothing here passes or fails on a timing.
 */
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "bench_common.h"

#if defined(BENCH_STITCH)
#include <stitch/ftrace.h>
#elif defined(BENCH_XRAY)
#include "xray_c.h" /* clang's xray_interface.h is C++ only */
#else
#error "define BENCH_STITCH or BENCH_XRAY"
#endif

/* bt_table.c (generated) */
extern int (*const bt_funcs[])(int);
extern const unsigned long bt_nfuncs;

static void fail(const char *what, const char *why)
{
	fprintf(stderr, "bench_trace_patch: %s: %s\n", what, why);
	exit(2);
}

/* ---- the backends: trace the first n generated functions, or stop ------- */

#if defined(BENCH_STITCH)
static void on_entry(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops,
		     struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent_ip, (void)ops, (void)regs;
}
static struct stitch_ftrace_ops ops = { .func = on_entry };

static void backend_init(void)
{
	if (stitch_init() != 0)
		fail("stitch_init", stitch_last_error());
	if ((unsigned long)stitch_ftrace_site_count() < bt_nfuncs)
		fail("stitch_ftrace_site_count", "fewer sites than generated functions (trace flags missing?)");
}

/*
 * Two ways to select the first n functions:
 *   glob  as a user would write one: the names have five digits, so
 *         "bt_f00*" is the first 1 000 and "bt_f*" all of them; the time
 *         includes matching the glob against every site's name;
 *   ips   their addresses (stitch_ftrace_register_ips), closer to what
 *         XRay's per-function-id calls do.
 */
static const char *const methods[] = { "glob", "ips" };
#define NMETHODS 2

static void enable(int method, unsigned long n)
{
	int err;
	if (method == 1) {
		static uintptr_t *ips;
		if (!ips && !(ips = calloc(bt_nfuncs, sizeof(*ips))))
			fail("calloc", "out of memory");
		for (unsigned long i = 0; i < n; i++)
			ips[i] = (uintptr_t)bt_funcs[i];
		err = stitch_ftrace_register_ips(&ops, ips, n);
	} else {
		char glob[32] = "bt_f";
		unsigned long m = n;
		int digits = 5;
		while (m >= 10 && m % 10 == 0)
			m /= 10, digits--;
		if (m != 1 || n > 100000)
			fail("enable", "n must be a power of ten up to 100 000");
		if (n == 1)
			strcat(glob, "00000");
		else {
			for (int i = 0; i < digits; i++)
				strcat(glob, "0");
			strcat(glob, "*");
		}
		err = stitch_ftrace_register(&ops, glob);
	}
	if (err)
		fail("stitch_ftrace_register", stitch_last_error());
	if ((unsigned long)stitch_ftrace_ops_site_count(&ops) != n)
		fail("stitch_ftrace_register", "traces a different number of sites than asked for");
}

static void disable(int method, unsigned long n)
{
	(void)method, (void)n;
	if (stitch_ftrace_unregister(&ops) != 0)
		fail("stitch_ftrace_unregister", stitch_last_error());
}

static int have_stats = 1;
static void get_stats(struct stitch_stats *s) { stitch_get_stats(s); }

#else /* BENCH_XRAY */
struct stitch_stats { /* XRay keeps no counters; a stand-in so the code below is shared */
	uint64_t syncs;
};
static int have_stats = 0;
static void get_stats(struct stitch_stats *s) { memset(s, 0, sizeof(*s)); }

static void on_event(int32_t id, enum bench_xray_entry_type type)
{
	(void)id, (void)type;
}

/*
 * XRay numbers the instrumented functions 1..max in the order of its sled
 * table; the only instrumented functions here are the generated ones, so
 * "the first n" are ids 1..n.  (Mapping ids to addresses would be
 * quadratic: __xray_function_address() scans, 7 s for 100 000.)
 */
static const char *const methods[] = { "ids" };
#define NMETHODS 1

static void backend_init(void)
{
	if (__xray_max_function_id() != bt_nfuncs)
		fail("xray", "not one sled per generated function (built without -fxray-instrument?)");
	if (__xray_set_handler(on_event) != 1)
		fail("__xray_set_handler", "failed");
}

/* All of them: __xray_patch(), the one call XRay has for that. */
static void enable(int method, unsigned long n)
{
	(void)method;
	if (n == bt_nfuncs) {
		if (__xray_patch() != BENCH_XRAY_SUCCESS)
			fail("__xray_patch", "failed");
		return;
	}
	for (unsigned long i = 1; i <= n; i++)
		if (__xray_patch_function((int32_t)i) != BENCH_XRAY_SUCCESS)
			fail("__xray_patch_function", "failed");
}

static void disable(int method, unsigned long n)
{
	(void)method;
	if (n == bt_nfuncs) {
		if (__xray_unpatch() != BENCH_XRAY_SUCCESS)
			fail("__xray_unpatch", "failed");
		return;
	}
	for (unsigned long i = 1; i <= n; i++)
		if (__xray_unpatch_function((int32_t)i) != BENCH_XRAY_SUCCESS)
			fail("__xray_unpatch_function", "failed");
}
#endif

/* ---- --patch ---------------------------------------------------------------- */

#define MAX_REPS 200

/*
 * Only the sync count (stitch_get_stats(); --first also prints the
 * quiescence rounds and stopped worlds); the sites switched are checked
 * with stitch_ftrace_ops_site_count() instead.
 */
static void print_op(const char *method, unsigned long n, const char *op, double *us, int reps, uint64_t syncs)
{
	struct bench_summary s = bench_summarise(us, reps);
	printf("patch\t%s\t%lu\t%s\t%.1f\t%.1f\t%.1f\t%d\t", method, n, op, s.median, s.min, s.max, reps);
	if (have_stats)
		printf("%.2f\n", (double)syncs / reps);
	else
		printf("-\n");
}

static void bench_patch(int quick)
{
	static double en_us[MAX_REPS], dis_us[MAX_REPS];
	const unsigned long counts[] = { 1, 1000, bt_nfuncs };
	const int reps_full[] = { 200, 40, 10 }, reps_quick[] = { 20, 5, 3 };
	for (int c = 0; c < 3; c++)
		for (int m = 0; m < NMETHODS; m++) {
			unsigned long n = counts[c];
			int reps = quick ? reps_quick[c] : reps_full[c];
			uint64_t en_syncs = 0, dis_syncs = 0;
			for (int r = 0; r < reps; r++) {
				struct stitch_stats s0, s1, s2;
				get_stats(&s0);
				double t0 = bench_now_ns();
				enable(m, n);
				double t1 = bench_now_ns();
				get_stats(&s1);
				disable(m, n);
				double t2 = bench_now_ns();
				get_stats(&s2);
				en_us[r] = (t1 - t0) / 1e3;
				dis_us[r] = (t2 - t1) / 1e3;
				en_syncs += s1.syncs - s0.syncs;
				dis_syncs += s2.syncs - s1.syncs;
			}
			print_op(methods[m], n, "enable", en_us, reps, en_syncs);
			print_op(methods[m], n, "disable", dis_us, reps, dis_syncs);
		}
}

/* --switch-all REPS: only enable and disable every site, REPS times (method
 * 0); for a profiler, whose samples the other sizes would dilute. */
static void bench_switch_all(int reps)
{
	static double en_us[MAX_REPS], dis_us[MAX_REPS];
	if (reps > MAX_REPS)
		reps = MAX_REPS;
	for (int r = 0; r < reps; r++) {
		double t0 = bench_now_ns();
		enable(0, bt_nfuncs);
		double t1 = bench_now_ns();
		disable(0, bt_nfuncs);
		double t2 = bench_now_ns();
		en_us[r] = (t1 - t0) / 1e3;
		dis_us[r] = (t2 - t1) / 1e3;
	}
	if (reps > 0) {
		print_op(methods[0], bt_nfuncs, "enable", en_us, reps, 0);
		print_op(methods[0], bt_nfuncs, "disable", dis_us, reps, 0);
	}
}

/* ---- --disturb -------------------------------------------------------------- */

#define WORKER_CALLS 16
enum { PHASE_WARM, PHASE_IDLE, PHASE_PATCHING, PHASE_STOP };
static int phase;

/*
 * Stalls of 1 ms or more, counted apart: there are few of them (one per
 * stopped world, say), too few to move even the 99.9th percentile, and
 * they are what a latency-sensitive thread minds.
 */
#define LONG_STALL_NS 1000000

struct worker {
	pthread_t thread;
	struct bench_hist hist[2]; /* PHASE_IDLE, PHASE_PATCHING */
	uint64_t long_stalls[2], long_stall_ns[2];
	long sink;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	/* 16 functions spread over the whole range: 16 different pages of code */
	int (*fns[WORKER_CALLS])(int);
	for (int k = 0; k < WORKER_CALLS; k++)
		fns[k] = bt_funcs[(unsigned long)k * (bt_nfuncs / WORKER_CALLS)];
	for (;;) {
		int p = __atomic_load_n(&phase, __ATOMIC_RELAXED);
		if (p == PHASE_STOP)
			break;
		double t0 = bench_now_ns();
		for (int k = 0; k < WORKER_CALLS; k++)
			w->sink += fns[k](k);
		double dt = bench_now_ns() - t0;
		if (p != PHASE_WARM) {
			bench_hist_add(&w->hist[p - PHASE_IDLE], (uint64_t)dt);
			if (dt >= LONG_STALL_NS) {
				w->long_stalls[p - PHASE_IDLE]++;
				w->long_stall_ns[p - PHASE_IDLE] += (uint64_t)dt;
			}
		}
	}
	return NULL;
}

static void print_stall(const char *name, const struct bench_hist *h, uint64_t nlong, uint64_t long_ns,
			long switches)
{
	printf("stall\t%s\t%llu\t%llu\t%llu\t%llu\t%llu\t%ld\t%llu\t%.1f\n", name, (unsigned long long)h->n,
	       (unsigned long long)bench_hist_quantile(h, 0.5), (unsigned long long)bench_hist_quantile(h, 0.99),
	       (unsigned long long)bench_hist_quantile(h, 0.999), (unsigned long long)h->max, switches,
	       (unsigned long long)nlong, (double)long_ns / 1e6);
}

static struct worker *start_workers(long *ncpu)
{
	*ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	if (*ncpu < 1)
		*ncpu = 1;
	struct worker *w = calloc((size_t)*ncpu, sizeof(*w));
	if (!w)
		fail("calloc", "out of memory");
	for (long i = 0; i < *ncpu; i++)
		if (pthread_create(&w[i].thread, NULL, worker_main, &w[i]))
			fail("pthread_create", "failed");
	usleep(100000);
	return w;
}

/* Stop the workers and print their two phases under these names. */
static void stop_workers(struct worker *w, long ncpu, const char *idle_name, const char *busy_name, long switches)
{
	__atomic_store_n(&phase, PHASE_STOP, __ATOMIC_RELAXED);
	struct bench_hist *all = calloc(2, sizeof(*all));
	uint64_t nlong[2] = { 0, 0 }, long_ns[2] = { 0, 0 };
	if (!all)
		fail("calloc", "out of memory");
	for (long i = 0; i < ncpu; i++) {
		pthread_join(w[i].thread, NULL);
		for (int p = 0; p < 2; p++) {
			bench_hist_merge(&all[p], &w[i].hist[p]);
			nlong[p] += w[i].long_stalls[p];
			long_ns[p] += w[i].long_stall_ns[p];
		}
	}
	printf("workers\t%ld\t%d\n", ncpu, WORKER_CALLS);
	print_stall(idle_name, &all[0], nlong[0], long_ns[0], 0);
	print_stall(busy_name, &all[1], nlong[1], long_ns[1], switches);
	free(all);
	free(w);
}

static void bench_disturb(double seconds)
{
	long ncpu;
	struct worker *w = start_workers(&ncpu);

	/* Same duration, same workers; the main thread sleeps, then patches. */
	__atomic_store_n(&phase, PHASE_IDLE, __ATOMIC_RELAXED);
	usleep((useconds_t)(seconds * 1e6));
	__atomic_store_n(&phase, PHASE_PATCHING, __ATOMIC_RELAXED);
	long switches = 0;
	double end = bench_now_ns() + seconds * 1e9;
	while (bench_now_ns() < end) {
		enable(0, bt_nfuncs);
		disable(0, bt_nfuncs);
		switches += 2;
	}
	stop_workers(w, ncpu, "idle", "patching", switches);
}

/* ---- --first ---------------------------------------------------------------- */

#if defined(BENCH_STITCH)
static int blocker_ready;

/* Blocks SIGTRAP and sleeps: the int3 protocol would kill it, so the
 * library stops the world instead (it parks this thread from pause()). */
static void *sigtrap_blocker(void *arg)
{
	(void)arg;
	sigset_t trap;
	sigemptyset(&trap);
	sigaddset(&trap, SIGTRAP);
	pthread_sigmask(SIG_BLOCK, &trap, NULL);
	__atomic_store_n(&blocker_ready, 1, __ATOMIC_RELEASE);
	for (;;)
		pause();
	return NULL;
}

/* TLB shootdowns so far, all CPUs (/proc/interrupts "TLB:"), or -1 if unknown:
 * the first write to a text page replaces its page-table entry, which
 * every CPU running the process must flush. */
static long long tlb_shootdowns(void)
{
	FILE *f = fopen("/proc/interrupts", "r");
	if (!f)
		return -1;
	char line[4096];
	long long sum = -1;
	while (fgets(line, sizeof(line), f)) {
		char *p = line;
		while (*p == ' ')
			p++;
		if (strncmp(p, "TLB:", 4) != 0)
			continue;
		sum = 0;
		for (p += 4;;) {
			char *end;
			long long v = strtoll(p, &end, 10);
			if (end == p)
				break;
			sum += v;
			p = end;
		}
		break;
	}
	fclose(f);
	return sum;
}

static void bench_first(int stopped)
{
	if (stopped) {
		pthread_t t;
		if (pthread_create(&t, NULL, sigtrap_blocker, NULL))
			fail("pthread_create", "failed");
		while (!__atomic_load_n(&blocker_ready, __ATOMIC_ACQUIRE))
			usleep(1000);
	}
	long ncpu;
	struct worker *w = start_workers(&ncpu);
	__atomic_store_n(&phase, PHASE_IDLE, __ATOMIC_RELAXED);
	usleep(300000);
	struct stitch_stats s0, s1;
	get_stats(&s0);
	long long tlb0 = tlb_shootdowns();
	__atomic_store_n(&phase, PHASE_PATCHING, __ATOMIC_RELAXED);
	double t0 = bench_now_ns();
	enable(0, bt_nfuncs);
	double t1 = bench_now_ns();
	long long tlb1 = tlb_shootdowns();
	get_stats(&s1);
	stop_workers(w, ncpu, "idle", "first-enable", 1);
	disable(0, bt_nfuncs);
	printf("first\t%s\t%lu\t%.1f\t%llu\t%llu\t%llu\t%lld\n", stopped ? "stopped" : "int3+quiesce", bt_nfuncs,
	       (t1 - t0) / 1e3, (unsigned long long)(s1.syncs - s0.syncs),
	       (unsigned long long)(s1.quiesce_rounds - s0.quiesce_rounds),
	       (unsigned long long)(s1.world_stops - s0.world_stops), tlb0 < 0 || tlb1 < 0 ? -1 : tlb1 - tlb0);
}
#endif

int main(int argc, char **argv)
{
	int quick = 0, patch = 0, first = 0, stopped = 0, switch_all = -1;
	double disturb = 0;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--quick"))
			quick = 1;
		else if (!strcmp(argv[i], "--patch"))
			patch = 1;
#if defined(BENCH_STITCH)
		else if (!strcmp(argv[i], "--first"))
			first = 1;
		else if (!strcmp(argv[i], "--stopped"))
			stopped = 1;
#endif
		else if (!strcmp(argv[i], "--disturb") && i + 1 < argc)
			disturb = atof(argv[++i]);
		else if (!strcmp(argv[i], "--switch-all") && i + 1 < argc)
			switch_all = atoi(argv[++i]);
		else
			fail("usage", "bench_trace_patch [--quick] [--patch] [--first [--stopped]] [--disturb SECONDS] "
				      "[--switch-all REPS]");
	}
	backend_init();
	printf("functions\t%lu\ncompiler\t%s\n", bt_nfuncs, BENCH_COMPILER);
#if defined(BENCH_STITCH)
	if (first) /* before anything else switched a site */
		bench_first(stopped);
#else
	(void)first, (void)stopped;
#endif
	if (switch_all >= 0) {
		bench_switch_all(switch_all);
		return 0;
	}
	if (patch)
		bench_patch(quick);
	if (disturb > 0)
		bench_disturb(disturb);
	return 0;
}
