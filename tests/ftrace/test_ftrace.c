/* SPDX-License-Identifier: MIT */
/*
 * Function tracing on a program with 1000+ generated traced functions:
 * enable all / a glob / none, counts equal calls, arguments reach the
 * callback, disabling restores the exact bytes, error paths change nothing.
 */
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stitch/ftrace.h>

#include "common/check.h"
#include "funcs.h"
#include "site_bytes.h"

struct fn {
	uintptr_t addr;
	int idx;
};
static struct fn fns[TF_COUNT];
static _Atomic unsigned long counts[TF_COUNT], others, total;

static int cmp_fn(const void *a, const void *b)
{
	uintptr_t x = ((const struct fn *)a)->addr, y = ((const struct fn *)b)->addr;
	return x < y ? -1 : x > y;
}

static int fn_index(uintptr_t ip)
{
	size_t lo = 0, hi = TF_COUNT;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (fns[mid].addr == ip)
			return fns[mid].idx;
		if (fns[mid].addr < ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}

static void count_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)parent, (void)regs;
	int k = fn_index(ip);
	atomic_fetch_add(&total, 1);
	if (k >= 0)
		atomic_fetch_add(&counts[k], 1);
	else
		atomic_fetch_add(&others, 1);
	(void)ops;
}

static void reset_counts(void)
{
	for (int i = 0; i < TF_COUNT; i++)
		counts[i] = 0;
	others = total = 0;
}

static void call_all(int times)
{
	for (int t = 0; t < times; t++)
		for (int i = 0; i < TF_COUNT; i++)
			if (tf_table[i](i) != i * 3 + i)
				CHECK(0, "tf %d returned a wrong value", i);
}

/* ---- bytes ---------------------------------------------------------------- */

static size_t nsites;
static struct stitch_ftrace_site_info *info;
static uint8_t (*orig)[SITE_LEN];

static void snapshot(void)
{
	int n = stitch_ftrace_site_count();
	CHECK(n >= TF_COUNT + 9, "site count %d", n);
	nsites = n > 0 ? (size_t)n : 0;
	info = calloc(nsites, sizeof(*info));
	orig = calloc(nsites, sizeof(*orig));
	for (size_t i = 0; i < nsites; i++) {
		CHECK_EQ(stitch_ftrace_get_site_info(i, &info[i]), 0);
		memcpy(orig[i], (const void *)info[i].site, SITE_LEN);
	}
}

/* Sites not in a disabled form of the compiler's bytes (site_bytes.h);
 * `except` is skipped. */
static size_t changed_sites(uintptr_t except)
{
	size_t n = 0;
	for (size_t i = 0; i < nsites; i++)
		if (info[i].site != except && !site_disabled_bytes(orig[i], (const uint8_t *)info[i].site))
			n++;
	return n;
}

static size_t enabled_sites(void)
{
	size_t n = 0;
	for (size_t i = 0; i < nsites; i++) {
		struct stitch_ftrace_site_info s;
		if (stitch_ftrace_get_site_info(i, &s) == 0 && s.enabled)
			n++;
	}
	return n;
}

/* ---- argument and recursion callbacks --------------------------------------- */

static uintptr_t seen_args[6];
static _Atomic int arg_calls;
static void args_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops;
	for (unsigned i = 0; i < 6; i++)
		seen_args[i] = stitch_ftrace_regs_arg(regs, i);
	/* use FP registers: the trampoline must keep the traced function's */
	volatile double d = 3.25;
	d = d * d + (double)seen_args[0];
	atomic_fetch_add(&arg_calls, 1);
}

static _Atomic int recursing_calls;
static void recursing_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add(&recursing_calls, 1);
	(void)parse_two(1); /* traced: must not re-enter callbacks */
}

static double ms_since(const struct timespec *t0)
{
	struct timespec t1;
	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) * 1e3 + (double)(t1.tv_nsec - t0->tv_nsec) / 1e6;
}

/* A callback that tries to change tracing: refused, not a wait for itself. */
static struct stitch_ftrace_ops reent_ops;
static int reent_err = 1, reent_filter_err = 1;
static void reent_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *o, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)o, (void)regs;
	reent_err = stitch_ftrace_unregister(&reent_ops);
	reent_filter_err = stitch_ftrace_set_filter(&reent_ops, "tf_a0003");
}

int main(void)
{
	for (int i = 0; i < TF_COUNT; i++)
		fns[i] = (struct fn){ (uintptr_t)tf_table[i], i };
	qsort(fns, TF_COUNT, sizeof(fns[0]), cmp_fn);
	CHECK_EQ(stitch_init(), 0);
#if defined(__riscv)
	/* RISC-V: the first enable turns the entry's c.nops into AUIPC t0 + NOP
	 * for good (src/arch/riscv64/ftrace.c); compare with that state. */
	{
		struct stitch_ftrace_ops warm = { .func = count_cb };
		CHECK(stitch_ftrace_register(&warm, "*") == 0, "warm-up: %s", stitch_last_error());
		CHECK_EQ(stitch_ftrace_unregister(&warm), 0);
	}
#endif
	snapshot();

	/* names: globals and statics */
	struct stitch_ftrace_site_info s;
	CHECK_EQ(stitch_ftrace_lookup("tf_a0000", &s), 0);
	CHECK(s.func == (uintptr_t)tf_table[0], "tf_a0000 at %#lx, expected %p", (unsigned long)s.func,
	      (void *)tf_table[0]);
	CHECK_EQ(stitch_ftrace_lookup("st_2", &s), 0);
	CHECK(s.func == (uintptr_t)st_table[2], "static st_2 at %#lx, expected %p", (unsigned long)s.func,
	      (void *)st_table[2]);
	CHECK_EQ(stitch_ftrace_lookup("no_such_fn", &s), -STITCH_ENOTFOUND);

	/* enable all */
	struct stitch_ftrace_ops ops = { .func = count_cb };
	struct stitch_stats st0, st1;
	stitch_get_stats(&st0);
	struct timespec t0;
	clock_gettime(CLOCK_MONOTONIC, &t0);
	int err = stitch_ftrace_register(&ops, "*");
	double en_ms = ms_since(&t0);
	stitch_get_stats(&st1);
	CHECK(err == 0, "register *: %s", stitch_last_error());
	printf("enable %zu sites: %.2f ms, %llu syncs, %llu quiesce rounds\n", nsites, en_ms,
	       (unsigned long long)(st1.syncs - st0.syncs), (unsigned long long)(st1.quiesce_rounds - st0.quiesce_rounds));
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), (long long)nsites);
	CHECK_EQ(enabled_sites(), nsites);
	reset_counts();
	call_all(3);
	int bad = 0;
	for (int i = 0; i < TF_COUNT; i++)
		bad += counts[i] != 3;
	CHECK(bad == 0, "%d functions were not counted exactly 3 times", bad);
	CHECK_EQ(others, 0);
	CHECK_EQ(total, 3 * TF_COUNT);
	for (int i = 0; i < 4; i++)
		CHECK_EQ(st_table[i](1), 1 + 100 * (i + 1));
	CHECK_EQ(others, 4);

	/* a glob, then a glob with an exclusion */
	CHECK(stitch_ftrace_set_filter(&ops, "tf_a00*") == 0, "set_filter: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 16);
	CHECK_EQ(changed_sites(0), 16);
	reset_counts();
	call_all(2);
	CHECK_EQ(total, 32);
	CHECK_EQ(counts[0], 2);
	CHECK_EQ(counts[15], 2);
	CHECK_EQ(counts[16], 0);
	CHECK(stitch_ftrace_set_filter(&ops, "tf_a* !tf_a1*") == 0, "set_filter: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 192);
	reset_counts();
	call_all(1);
	CHECK_EQ(total, 192);

	/* the other kinds of pattern: globs with ?, [...] and a * inside or
	 * first, a name excluded, an address (filters search a name index) */
	CHECK(stitch_ftrace_set_filter(&ops, "tf_a?0[12]?") == 0, "set_filter: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 32);
	reset_counts();
	call_all(1);
	CHECK_EQ(total, 32);
	CHECK_EQ(counts[4], 1);  /* tf_a0010 */
	CHECK_EQ(counts[0], 0);  /* tf_a0000 */
	CHECK_EQ(counts[12], 0); /* tf_a0030 */
	CHECK(stitch_ftrace_set_filter(&ops, "tf_[bc]0* *_d3333 tf_a0*3 !tf_b0000") == 0, "set_filter: %s",
	      stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 2 * 64 - 1 + 1 + 16);
	reset_counts();
	call_all(1);
	CHECK_EQ(counts[256], 0);  /* tf_b0000 */
	CHECK_EQ(counts[257], 1);  /* tf_b0001 */
	CHECK_EQ(counts[1023], 1); /* tf_d3333 */
	CHECK_EQ(counts[3], 1);    /* tf_a0003 */
	CHECK_EQ(counts[2], 0);    /* tf_a0002 */
	char addr[32];
	snprintf(addr, sizeof addr, "%#lx", (unsigned long)(uintptr_t)tf_table[5]);
	CHECK(stitch_ftrace_set_filter(&ops, addr) == 0, "set_filter %s: %s", addr, stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 1);
	reset_counts();
	call_all(1);
	CHECK_EQ(total, 1);
	CHECK_EQ(counts[5], 1);
	CHECK_EQ(stitch_ftrace_set_filter(&ops, "tf_e*"), -STITCH_ENOTFOUND);
	CHECK_EQ(stitch_ftrace_set_filter(&ops, "tf_a0000 tf_a000"), -STITCH_ENOTFOUND);
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 1); /* a failed set_filter changes nothing */
	/* '!' alone (a typo for "!name") excludes nothing: refused, not read as "everything" */
	CHECK_EQ(stitch_ftrace_set_filter(&ops, "!"), -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_set_filter(&ops, "tf_a* ! tf_a1*"), -STITCH_EINVAL);
	CHECK(strstr(stitch_last_error(), "'!'") != NULL, "message: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 1);

	/* a second ops on overlapping sites, arguments, FP registers */
	struct stitch_ftrace_ops ops2 = { .func = args_cb };
	CHECK(stitch_ftrace_set_filter(&ops, "parse_one six_args fp_args") == 0, "%s", stitch_last_error());
	CHECK(stitch_ftrace_register(&ops2, "six_args parse_*") == 0, "%s", stitch_last_error());
	reset_counts();
	CHECK_EQ(six_args(1, 2, 3, 4, 5, 6), 654321);
	for (unsigned i = 0; i < 6; i++)
		CHECK_EQ(seen_args[i], i + 1);
	CHECK_EQ(parse_one(1), 2);
	CHECK_EQ(parse_two(1), 3);
	CHECK_EQ(arg_calls, 3);
	CHECK_EQ(others, 2); /* ops: six_args, parse_one */
	CHECK(fp_args(1.5, 2.0) == 3.5, "fp_args lost its FP arguments");
	CHECK_EQ(others, 3);

	/* explicit addresses */
	struct stitch_ftrace_ops ops3 = { .func = count_cb };
	uintptr_t ips[2] = { (uintptr_t)tf_table[100], (uintptr_t)tf_table[200] };
	CHECK(stitch_ftrace_register_ips(&ops3, ips, 2) == 0, "%s", stitch_last_error());
	reset_counts();
	call_all(1);
	CHECK_EQ(counts[100], 1);
	CHECK_EQ(counts[200], 1);
	CHECK_EQ(total, 2);
	CHECK_EQ(stitch_ftrace_unregister(&ops3), 0);

	/* functions by address, in ascending, descending and scattered order,
	 * with duplicates and site addresses mixed in, and sparse ascending
	 * (the lookup gallops from its last hit when the next address is
	 * further than its slack): each selects exactly its functions */
	uintptr_t *all = malloc((2 * TF_COUNT + 1) * sizeof(*all)); /* order 3: functions, sites, a duplicate */
	static bool want[TF_COUNT];
	CHECK(all != NULL, "malloc");
	for (int order = 0; all && order < 6; order++) {
		size_t k = 0, nwant = 0;
		memset(want, 0, sizeof(want));
		for (size_t i = 0; i < TF_COUNT; i++) {
			size_t pick = i;
			if (order == 1)
				pick = TF_COUNT - 1 - i;
			else if (order == 2)
				pick = (i * 389) % TF_COUNT;
			else if (order == 4) /* every other one ascending, then the rest */
				pick = i < (TF_COUNT + 1) / 2 ? 2 * i : 2 * (i - (TF_COUNT + 1) / 2) + 1;
			else if (order == 5 && i % 37) /* every 37th: long gallops */
				continue;
			all[k++] = fns[pick].addr;
			nwant += !want[fns[pick].idx];
			want[fns[pick].idx] = true;
		}
		if (order == 3) /* and each function's site address, and one repeated */
			for (size_t i = 0; i < nsites; i++)
				if (fn_index(info[i].func) >= 0)
					all[k++] = info[i].site;
		all[k++] = fns[0].addr; /* a duplicate, out of order */
		nwant += !want[fns[0].idx];
		want[fns[0].idx] = true;
		CHECK(stitch_ftrace_register_ips(&ops3, all, k) == 0, "order %d: %s", order, stitch_last_error());
		CHECK_EQ(stitch_ftrace_ops_site_count(&ops3), (int)nwant);
		reset_counts();
		call_all(1);
		size_t right = 0;
		for (size_t i = 0; i < TF_COUNT; i++)
			right += counts[i] == (want[i] ? 1u : 0u);
		CHECK(right == TF_COUNT, "order %d: %zu of %d functions traced as asked", order, right, TF_COUNT);
		CHECK_EQ(stitch_ftrace_unregister(&ops3), 0);
	}
	free(all);

	/* a callback calling traced code does not recurse */
	struct stitch_ftrace_ops ops4 = { .func = recursing_cb };
	CHECK(stitch_ftrace_register(&ops4, "parse_two recurse") == 0, "%s", stitch_last_error());
	CHECK_EQ(recurse(10), 10);
	CHECK_EQ(recursing_calls, 11);
	CHECK_EQ(stitch_ftrace_unregister(&ops4), 0);

	/* disable everything: the compiler's bytes again */
	stitch_get_stats(&st0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(stitch_ftrace_set_filter(&ops, "*"), 0);
	CHECK_EQ(stitch_ftrace_unregister(&ops2), 0);
	stitch_get_stats(&st1);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	double dis_ms = ms_since(&t0);
	struct stitch_stats st2;
	stitch_get_stats(&st2);
	printf("disable %zu sites: %.2f ms, %llu syncs\n", nsites, dis_ms,
	       (unsigned long long)(st2.syncs - st1.syncs));
	CHECK_EQ(changed_sites(0), 0);
	CHECK_EQ(enabled_sites(), 0);
	reset_counts();
	call_all(1);
	CHECK_EQ(total, 0);

	/* an update from inside a callback: refused (it would wait for itself) */
	reent_ops.func = reent_cb;
	CHECK(stitch_ftrace_register(&reent_ops, "tf_a0002") == 0, "%s", stitch_last_error());
	CHECK_EQ(tf_table[2](1), 1 * 3 + 2);
	CHECK_EQ(reent_err, -STITCH_EINVAL);
	CHECK_EQ(reent_filter_err, -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_ops_site_count(&reent_ops), 1);
	CHECK_EQ(stitch_ftrace_unregister(&reent_ops), 0);

	/* bad input: nothing is written */
	CHECK_EQ(stitch_ftrace_register(&ops, "no_such_function"), -STITCH_ENOTFOUND);
	CHECK(strstr(stitch_last_error(), "no_such_function") != NULL, "message: %s", stitch_last_error());
	/* a function of a module without records (libc): the loader finds it,
	 * after the update lock (explain_later()) */
	CHECK_EQ(stitch_ftrace_register(&ops, "puts"), -STITCH_ENOTFOUND);
	CHECK(strstr(stitch_last_error(), "function puts is not instrumented") &&
		      strstr(stitch_last_error(), "-fpatchable-function-entry"),
	      "message: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_prepare("puts"), -STITCH_ENOTFOUND);
	CHECK(strstr(stitch_last_error(), "function puts is not instrumented") != NULL, "message: %s",
	      stitch_last_error());
	uintptr_t not_traced = (uintptr_t)&main;
	CHECK_EQ(stitch_ftrace_register_ips(&ops, &not_traced, 1), -STITCH_ENOTFOUND);
	CHECK(strstr(stitch_last_error(), "not an instrumented function") && strstr(stitch_last_error(), "(main)"),
	      "message: %s", stitch_last_error());
	/* an address with anything after its digits is refused, not read as
	 * the address before it */
	static const char *const junk[] = { "junk", "*", "?", "[0-9]", "0x", "0x-12", "0x0x12" };
	for (size_t i = 0; i < sizeof(junk) / sizeof(junk[0]); i++) {
		char pattern[64];
		if (i < 4) /* after a real function's address */
			snprintf(pattern, sizeof(pattern), "%#lx%s", (unsigned long)(uintptr_t)tf_table[5], junk[i]);
		else
			snprintf(pattern, sizeof(pattern), "%s", junk[i]);
		CHECK_EQ(stitch_ftrace_register(&ops, pattern), -STITCH_EINVAL);
		CHECK(strstr(stitch_last_error(), "is not an address") != NULL, "%s: %s", pattern, stitch_last_error());
	}
	CHECK_EQ(stitch_ftrace_register(NULL, "*"), -STITCH_EINVAL);
	struct stitch_ftrace_ops nofunc = { 0 };
	CHECK_EQ(stitch_ftrace_register(&nofunc, "*"), -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_set_filter(&ops, "*"), -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_unregister(&ops), -STITCH_EINVAL);
	CHECK_EQ(changed_sites(0), 0);

	/* a site changed behind our back: refused, nothing written anywhere */
	uintptr_t victim = (uintptr_t)0;
	CHECK_EQ(stitch_ftrace_lookup("tf_b0000", &s), 0);
	victim = s.site;
	uint8_t saved[SITE_LEN];
	CHECK_EQ(tamper_site(victim, saved), 0);
	err = stitch_ftrace_register(&ops, "*");
	CHECK_EQ(err, -STITCH_EMISMATCH);
	printf("tampered site: %s\n", stitch_last_error());
	CHECK_EQ(changed_sites(victim), 0);
	CHECK_EQ(enabled_sites(), 0);
	CHECK_EQ(stitch_ftrace_register(&ops, "tf_c*"), 0); /* others still work */
	CHECK_EQ(stitch_ftrace_set_filter(&ops, "tf_b000*"), -STITCH_EMISMATCH);
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 256);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	CHECK_EQ(untamper_site(victim, saved), 0);
	CHECK_EQ(stitch_ftrace_register(&ops, "*"), 0);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	CHECK_EQ(changed_sites(0), 0);

	free(info);
	free(orig);
	return check_summary("test_ftrace");
}
