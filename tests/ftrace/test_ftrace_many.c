/* SPDX-License-Identifier: MIT */
/*
 * A program with 100 000 traced functions (bench/gen_funcs.sh, built with
 * the trace flags): every site enabled and disabled repeatedly, and by
 * globs, while two threads call random functions and check every result.
 * Checks: the ops' site counts, exactly one callback per call made by this
 * thread while a function is traced and none otherwise, and after every
 * unregister: the site's prepared form (docs/ftrace.md: on x86-64 the
 * compiler's 5-byte NOP, or one NOP5 in place of gcc's five NOPs; on
 * AArch64 and RISC-V the literal at func-8, MOV X9,X30 / AUIPC t0 at
 * func+0 are written at the first enable and stay; func+4 is a NOP
 * again), the same after every round.  Prints the time of each switch (numbers only; no check).
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stitch/ftrace.h>

#include "common/check.h"

extern int (*const bt_funcs[])(int);
extern const unsigned long bt_nfuncs;

#if defined(__x86_64__)
#define SITE_BEFORE 0 /* the site is the function's first 5 bytes */
#define SITE_BYTES 5
#else
#define SITE_BEFORE 8 /* func-8: the literal; func+0, func+4: the two instructions */
#define SITE_BYTES 16
#endif
#define SITE(i) ((const uint8_t *)bt_funcs[i] - SITE_BEFORE)

/* A disabled site as it must be after an unregister. */
static bool site_disabled(const uint8_t *orig, const uint8_t *site)
{
#if defined(__x86_64__)
	/* the compiler's bytes, or gcc's five NOPs as one NOP5 (its first enable) */
	static const uint8_t five_nops[5] = { 0x90, 0x90, 0x90, 0x90, 0x90 };
	static const uint8_t nop5[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
	if (memcmp(orig, five_nops, 5) == 0)
		return memcmp(site, nop5, 5) == 0;
	return memcmp(orig, site, SITE_BYTES) == 0;
#else
	uint32_t w0, w1;
	uint64_t literal;
	memcpy(&literal, site, 8);
	memcpy(&w0, site + 8, 4);
	memcpy(&w1, site + 12, 4);
	(void)orig;
#if defined(__aarch64__)
	return literal != 0 && w0 == 0xaa1e03e9u /* mov x9, x30 */ && w1 == 0xd503201fu; /* nop */
#else
	return literal != 0 && (w0 & 0xfffu) == 0x297u /* auipc t0, ... */ && w1 == 0x00000013u; /* nop */
#endif
#endif
}

static __thread unsigned long my_calls; /* callbacks run on this thread */
static void count(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	my_calls++;
}

static atomic_int stop;
static atomic_ulong wrong, worker_calls;
static void *worker(void *arg)
{
	unsigned x = 99u + (unsigned)(uintptr_t)arg;
	while (!atomic_load(&stop)) {
		x = x * 1103515245u + 12345u;
		unsigned long i = (x >> 8) % bt_nfuncs;
		if (bt_funcs[i](5) != 5 + (int)(i % 7) + 1)
			atomic_fetch_add(&wrong, 1);
		atomic_fetch_add_explicit(&worker_calls, 1, memory_order_relaxed);
	}
	return NULL;
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)(t.tv_sec - t0->tv_sec) * 1e3 + (double)(t.tv_nsec - t0->tv_nsec) / 1e6;
}

/* Calls every function once; returns the callbacks this thread saw. */
static unsigned long call_all(void)
{
	unsigned long before = my_calls, bad = 0;
	for (unsigned long i = 0; i < bt_nfuncs; i++)
		bad += bt_funcs[i](5) != 5 + (int)(i % 7) + 1;
	CHECK_EQ(bad, 0);
	return my_calls - before;
}

int main(void)
{
	const unsigned long n = bt_nfuncs;
	uint8_t *orig = malloc(n * SITE_BYTES);
	CHECK(orig != NULL, "malloc");
	if (!orig)
		return check_summary("test_ftrace_many");
	uint8_t *prepared = malloc(n * SITE_BYTES); /* the sites after the first round */
	CHECK(prepared != NULL, "malloc");
	if (!prepared)
		return check_summary("test_ftrace_many");
	for (unsigned long i = 0; i < n; i++)
		memcpy(orig + i * SITE_BYTES, SITE(i), SITE_BYTES);
	CHECK((unsigned long)stitch_ftrace_site_count() >= n, "%d sites for %lu functions", stitch_ftrace_site_count(),
	      n);
	pthread_t th[2];
	for (int i = 0; i < 2; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);

	struct stitch_ftrace_ops ops = { .func = count };
	for (int round = 0; round < 3; round++) {
		struct timespec t0;
		clock_gettime(CLOCK_MONOTONIC, &t0);
		int err = stitch_ftrace_register(&ops, "bt_f*");
		double on = ms_since(&t0);
		CHECK(err == 0, "register: %s", stitch_last_error());
		CHECK_EQ(stitch_ftrace_ops_site_count(&ops), n);
		CHECK_EQ(call_all(), n);
		/* a thousandth, then ten: sites leave in one switch */
		CHECK_EQ(stitch_ftrace_set_filter(&ops, "bt_f00*"), 0);
		CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 1000);
		CHECK_EQ(call_all(), 1000);
		CHECK_EQ(stitch_ftrace_set_filter(&ops, "bt_f9999*"), 0);
		CHECK_EQ(call_all(), 10);
		CHECK_EQ(stitch_ftrace_set_filter(&ops, "bt_f*"), 0);
		CHECK_EQ(call_all(), n);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
		double off = ms_since(&t0);
		CHECK_EQ(call_all(), 0);
		unsigned long changed = 0, moved = 0;
		for (unsigned long i = 0; i < n; i++) {
			changed += !site_disabled(orig + i * SITE_BYTES, SITE(i));
			if (round == 0)
				memcpy(prepared + i * SITE_BYTES, SITE(i), SITE_BYTES);
			else
				moved += memcmp(prepared + i * SITE_BYTES, SITE(i), SITE_BYTES) != 0;
		}
		CHECK_EQ(changed, 0); /* every site disabled as it must be */
		CHECK_EQ(moved, 0);   /* and the same as after the first round */
		printf("round %d: %lu sites on in %.1f ms, off in %.1f ms\n", round, n, on, off);
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < 2; i++)
		pthread_join(th[i], NULL);
	printf("test_ftrace_many: %lu worker calls checked, %lu wrong\n", atomic_load(&worker_calls),
	       atomic_load(&wrong));
	CHECK_EQ(atomic_load(&wrong), 0);
	free(orig);
	free(prepared);
	return check_summary("test_ftrace_many");
}
