/* SPDX-License-Identifier: MIT */
/*
 * stitch_ftrace_prepare(): the stopped-world part of the sites' first
 * enable, done in advance, while four threads call every traced function
 * and check each result.  Checks:
 *   - bad input changes nothing: a filter that selects nothing, a site
 *     changed behind the library's back (-STITCH_EMISMATCH, no site written);
 *   - afterwards every site is in its prepared, disabled form (x86-64: one
 *     5-byte NOP, gcc's five NOPs replaced; AArch64: literal, MOV X9, X30,
 *     NOP; RISC-V: literal, AUIPC, NOP - in each STITCH_RV_FTRACE_MODE)
 *     and untraced;
 *   - a second prepare writes nothing;
 *   - then tracing every site and back needs no stopped world: it succeeds
 *     while a thread that blocks every signal but SIGTRAP keeps running (such a thread
 *     cannot be parked; test_ftrace_blocked shows the first enable failing
 *     then), with one callback per call.
 * Run with STITCH_QUIESCE_TIMEOUT_MS small (CMakeLists.txt): a switch that
 * did try to stop the world fails quickly.
 *   test_ftrace_prepare [ROUNDS [GLOB]]
 *     ROUNDS of tracing on and off (default 3), with the sites of GLOB
 *     (default "tf_*") prepared, the others left as they are
 */
#include <pthread.h>
#include <signal.h>
#include <fnmatch.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stitch/ftrace.h>

#include "common/check.h"
#include "funcs.h"
#include "site_bytes.h"

static atomic_int stop_workers, stop_blocker, blocker_started;
static atomic_ulong worker_calls, wrong;

static void *worker(void *arg)
{
	unsigned i = (unsigned)(uintptr_t)arg;
	while (!atomic_load(&stop_workers)) {
		i = (i * 1103515245u + 12345u) % TF_COUNT;
		if (tf_table[i]((int)i) != 4 * (int)i)
			atomic_fetch_add(&wrong, 1);
		atomic_fetch_add_explicit(&worker_calls, 1, memory_order_relaxed);
	}
	return NULL;
}

static void *blocker(void *arg)
{
	(void)arg;
	/* every signal but SIGTRAP, which x86's int3 protocol needs
	 * deliverable (test_sigtrap_blocked) */
	sigset_t all;
	sigfillset(&all);
	sigdelset(&all, SIGTRAP);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	atomic_store(&blocker_started, 1);
	while (!atomic_load(&stop_blocker))
		; /* running, never in a system call: cannot be parked */
	return NULL;
}

static __thread unsigned long my_calls;
static void count(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	my_calls++;
}

/* The prepared, disabled form of the site of `func` whose compiler bytes were `orig`. */
static bool prepared(const struct stitch_ftrace_site_info *si, const uint8_t *orig)
{
#if defined(__x86_64__)
	const uint8_t *site = (const uint8_t *)si->site;
	return site[0] == 0x0f && site_disabled_bytes(orig, site); /* one NOP5 (clang's is left as it is) */
#else
	uint64_t literal;
	uint32_t w0, w1;
	memcpy(&literal, (const void *)(si->func - 8), 8);
	memcpy(&w0, (const void *)si->func, 4);
	memcpy(&w1, (const void *)(si->func + 4), 4);
	(void)orig;
#if defined(__aarch64__)
	return literal != 0 && w0 == 0xaa1e03e9u /* mov x9, x30 */ && w1 == 0xd503201fu; /* nop */
#else
	return literal != 0 && (w0 & 0x7fu) == 0x17u /* auipc (t0; t1 in table mode) */ && w1 == 0x00000013u;
#endif
#endif
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 3;
	const char *glob = argc > 2 ? argv[2] : "tf_*";
	CHECK_EQ(stitch_init(), 0);
	int n = stitch_ftrace_site_count();
	CHECK(n > TF_COUNT, "site count %d", n);
	size_t ns = n > 0 ? (size_t)n : 0;
	struct stitch_ftrace_site_info *info;
	uint8_t(*orig)[SITE_LEN];
	int snap = site_snapshot(ns, &info, &orig);
	CHECK(snap == 0, "site_snapshot: %s", stitch_last_error());
	if (snap)
		return check_summary("test_ftrace_prepare");
	pthread_t th[4];
	for (int t = 0; t < 4; t++)
		pthread_create(&th[t], NULL, worker, (void *)(uintptr_t)(t + 1));

	/* bad input: nothing selected; a site changed behind our back */
	CHECK_EQ(stitch_ftrace_prepare("no_such_function_*"), -STITCH_ENOTFOUND);
	printf("no match: %s\n", stitch_last_error());
	struct stitch_ftrace_site_info victim;
	CHECK_EQ(stitch_ftrace_lookup("tf_a0011", &victim), 0);
	uint8_t saved[SITE_LEN];
	CHECK_EQ(tamper_site(victim.site, saved), 0);
	CHECK_EQ(stitch_ftrace_prepare(glob), -STITCH_EMISMATCH);
	printf("tampered site: %s\n", stitch_last_error());
	size_t changed = 0;
	for (size_t i = 0; i < ns; i++)
		changed += info[i].site != victim.site && memcmp(orig[i], (const void *)info[i].site, SITE_LEN) != 0;
	CHECK_EQ(changed, 0);
	CHECK_EQ(untamper_site(victim.site, saved), 0);

	/* while the workers run through them */
	struct stitch_stats a, b;
	CHECK(stitch_ftrace_prepare(glob) == 0, "prepare: %s", stitch_last_error());
	size_t bad = 0, left = 0;
	for (size_t i = 0; i < ns; i++) {
		struct stitch_ftrace_site_info si;
		CHECK_EQ(stitch_ftrace_get_site_info(i, &si), 0);
		if (fnmatch(glob, si.name, 0) == 0)
			bad += !prepared(&si, orig[i]) || si.enabled;
		else
			left += memcmp(orig[i], (const void *)si.site, SITE_LEN) == 0;
	}
	CHECK_EQ(bad, 0);
	CHECK(left > 0, "sites outside '%s' left as they were: %zu", glob, left);
	stitch_get_stats(&a);
	CHECK_EQ(stitch_ftrace_prepare(glob), 0);
	stitch_get_stats(&b);
	CHECK_EQ(b.sites_written - a.sites_written, 0); /* nothing left to do */

	/* now switching stops nobody: it works beside a thread that cannot be parked */
	pthread_t bl;
	pthread_create(&bl, NULL, blocker, NULL);
	while (!atomic_load(&blocker_started))
		;
	struct stitch_ftrace_ops ops = { .func = count };
	for (int round = 0; round < rounds; round++) {
		int err = stitch_ftrace_register(&ops, glob);
		CHECK(err == 0, "register beside a blocked thread: %s", stitch_last_error());
		if (err)
			break;
		my_calls = 0;
		for (int i = 0; i < TF_COUNT; i++)
			CHECK_EQ(tf_table[i](i), 4 * i);
		CHECK_EQ(my_calls, (unsigned long)stitch_ftrace_ops_site_count(&ops));
		CHECK(stitch_ftrace_unregister(&ops) == 0, "unregister: %s", stitch_last_error());
		my_calls = 0;
		for (int i = 0; i < TF_COUNT; i++)
			CHECK_EQ(tf_table[i](i), 4 * i);
		CHECK_EQ(my_calls, 0);
	}
	atomic_store(&stop_blocker, 1);
	pthread_join(bl, NULL);
	bad = 0;
	for (size_t i = 0; i < ns; i++)
		bad += fnmatch(glob, info[i].name, 0) == 0 && !prepared(&info[i], orig[i]);
	CHECK_EQ(bad, 0);

	atomic_store(&stop_workers, 1);
	for (int t = 0; t < 4; t++)
		pthread_join(th[t], NULL);
	printf("test_ftrace_prepare: %lu worker calls checked, %lu wrong\n", atomic_load(&worker_calls),
	       atomic_load(&wrong));
	CHECK_EQ(atomic_load(&wrong), 0);
	free(info);
	free(orig);
	return check_summary("test_ftrace_prepare");
}
