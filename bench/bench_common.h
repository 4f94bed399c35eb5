/* SPDX-License-Identifier: MIT */
/*
 * Small helpers shared by the tracing benchmarks (bench_trace.c,
 * bench_trace_patch.c): a clock, medians, and a log-linear histogram for
 * the stall percentiles.  Header-only because each benchmark is built by
 * both gcc and clang (XRay), in different build directories.
 */
#ifndef STITCH_BENCH_COMMON_H
#define STITCH_BENCH_COMMON_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#if defined(__clang__)
#define BENCH_STR_(x) #x
#define BENCH_STR(x) BENCH_STR_(x)
#define BENCH_COMPILER \
	"clang " BENCH_STR(__clang_major__) "." BENCH_STR(__clang_minor__) "." BENCH_STR(__clang_patchlevel__)
#else
#define BENCH_COMPILER "gcc " __VERSION__
#endif

static inline double bench_now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int bench_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return x < y ? -1 : x > y;
}

struct bench_summary {
	double median, min, max;
};

/* Sorts v. */
static inline struct bench_summary bench_summarise(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), bench_cmp_double);
	struct bench_summary s = { n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, v[0], v[n - 1] };
	return s;
}

/*
 * Histogram of durations in ns: 8 sub-buckets per power of two, so a
 * percentile is known to within 12.5 % whatever its size (a stall of 30 ns
 * and one of 30 ms both matter here), in 512 counters per thread, cheap
 * enough to update on every iteration.  The exact maximum is kept aside.
 */
#define HIST_SUB 8
#define HIST_BUCKETS (64 * HIST_SUB)
struct bench_hist {
	uint64_t count[HIST_BUCKETS];
	uint64_t n, max;
};

static inline unsigned bench_hist_bucket(uint64_t v)
{
	if (v < HIST_SUB)
		return (unsigned)v;
	unsigned msb = 63u - (unsigned)__builtin_clzll(v);
	/* the 3 bits below the leading one pick the sub-bucket */
	return (msb - 2) * HIST_SUB + (unsigned)((v >> (msb - 3)) & (HIST_SUB - 1));
}

/* The lower bound of bucket b (inverse of bench_hist_bucket). */
static inline uint64_t bench_hist_floor(unsigned b)
{
	if (b < HIST_SUB)
		return b;
	unsigned msb = b / HIST_SUB + 2, sub = b % HIST_SUB;
	return (1ull << msb) | ((uint64_t)sub << (msb - 3));
}

static inline void bench_hist_add(struct bench_hist *h, uint64_t v)
{
	h->count[bench_hist_bucket(v)]++;
	h->n++;
	if (v > h->max)
		h->max = v;
}

static inline void bench_hist_merge(struct bench_hist *to, const struct bench_hist *from)
{
	for (unsigned b = 0; b < HIST_BUCKETS; b++)
		to->count[b] += from->count[b];
	to->n += from->n;
	if (from->max > to->max)
		to->max = from->max;
}

/* The smallest bucket floor below which at least fraction q of the samples lie. */
static inline uint64_t bench_hist_quantile(const struct bench_hist *h, double q)
{
	uint64_t want = (uint64_t)((double)h->n * q), seen = 0;
	for (unsigned b = 0; b < HIST_BUCKETS; b++) {
		seen += h->count[b];
		if (seen > want)
			return bench_hist_floor(b);
	}
	return h->max;
}

#endif
