/* SPDX-License-Identifier: MIT */
/*
 * AArch64 SLOTS with inline call sites: the grace-pending path (step 1 of
 * src/arch/aarch64/static_call.c's SLOTS protocol).
 *
 * A thread that blocks stitch's quiescence signal and keeps running (not
 * asleep in a system call) cannot be located, so a wait for a slot to
 * empty fails after STITCH_QUIESCE_TIMEOUT_MS (set short by ctest).
 *   1. with such a thread running, an update succeeds (steps 2-4 need no
 *      wait) but its step 5 fails: the old slot is left "grace pending";
 *   2. the next update must wait for that slot before rewriting it
 *      (step 1), fails, and must leave the trampoline and the site
 *      byte-identical, the target unchanged, and calls still working;
 *   3. once the thread unblocks, updates succeed again, and the site and
 *      the slots decode to what the new targets demand.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch/aarch64/insn.h"
#include "common/check.h"
#include "static_call/far_thunk.h"
#include <stitch/static_call.h>

static atomic_int hit;
__attribute__((noinline)) static void t_near(void) { atomic_store(&hit, 1); }
__attribute__((noinline)) static void t_mid(void) { atomic_store(&hit, 2); }
__attribute__((noinline)) static void t_far(void) { atomic_store(&hit, 3); }

STITCH_DEFINE_STATIC_CALL(g, t_near);

/* the inline site (a compiler-emitted BL of the trampoline) */
__attribute__((noinline)) static int call_g(void)
{
	atomic_store(&hit, 0);
	stitch_static_call_cond(g)();
	__asm__ volatile("" ::: "memory");
	return atomic_load(&hit);
}

static int qsig;
static atomic_bool blocked, unblock;

static void *blocker(void *arg)
{
	(void)arg;
	sigset_t s;
	sigemptyset(&s);
	sigaddset(&s, qsig);
	pthread_sigmask(SIG_BLOCK, &s, NULL);
	atomic_store(&blocked, true);
	while (!atomic_load(&unblock))
		; /* running, position unknown to stitch */
	pthread_sigmask(SIG_UNBLOCK, &s, NULL);
	return NULL;
}

/* The site: the BL in call_g whose target is the trampoline, a slot, or a target. */
static uintptr_t find_site(const struct stitch_static_call *sc, void *const *targets, int n)
{
	uintptr_t t = (uintptr_t)sc->tramp;
	for (const uint32_t *p = (const uint32_t *)(uintptr_t)call_g; p < (const uint32_t *)(uintptr_t)call_g + 64; p++) {
		struct a64_insn i;
		if (a64_decode(*p, (uintptr_t)p, &i) != 0 || i.kind != A64_INSN_BL)
			continue;
		if (i.target == t || i.target == t + 8 || i.target == t + 0x18)
			return (uintptr_t)p;
		for (int k = 0; k < n; k++)
			if (targets[k] && i.target == (uintptr_t)targets[k])
				return (uintptr_t)p;
	}
	return 0;
}

static uintptr_t site_target(uintptr_t site)
{
	struct a64_insn i;
	return a64_decode(*(const uint32_t *)site, site, &i) == 0 && i.kind == A64_INSN_BL ? i.target : 0;
}

static uintptr_t active_slot(const struct stitch_static_call *sc)
{
	uintptr_t t = (uintptr_t)sc->tramp;
	struct a64_insn i;
	a64_decode(((const uint32_t *)sc->tramp)[1], t + 4, &i);
	return i.kind == A64_INSN_B ? i.target : t + 8;
}

int main(void)
{
	const char *tmo = getenv("STITCH_QUIESCE_TIMEOUT_MS");
	CHECK(tmo && atoi(tmo) <= 1000, "run with a short STITCH_QUIESCE_TIMEOUT_MS (ctest sets it)");
	if (!tmo)
		return check_summary("grace_slots_sites");
	const char *env = getenv("STITCH_QUIESCE_SIGNAL");
	qsig = env && *env ? atoi(env) : SIGRTMIN + 5; /* stitch's default (src/core/quiesce.c) */
	if (stitch_init() != 0)
		return fprintf(stderr, "stitch_init: %s\n", stitch_last_error()), 1;
	struct stitch_static_call *sc = stitch_static_call_desc(g);
	uintptr_t t = (uintptr_t)sc->tramp;
	CHECK(sc->layout == STITCH_SC_A64_SLOTS, "built with the SLOTS strategy");
	CHECK(stitch_static_call_site_count(sc) == 1, "call_g's BL is an inline site");
	uint8_t *pm = far_page(t, 1ull << 30, 0), *pf = far_page(t, FAR_DISTANCE, 0);
	if (!pm || !pf)
		return fprintf(stderr, "cannot map far pages\n"), 1;
	void *mid = far_stub(pm, 0, (void *)t_mid), *far = far_stub(pf, 0, (void *)t_far);
	if (far_seal(pm) || far_seal(pf))
		return 1;
	void *targets[3] = { (void *)t_near, mid, far };

	CHECK_EQ(stitch_static_call_update_desc(sc, mid), 0);
	CHECK_EQ(call_g(), 2);
	uintptr_t site = find_site(sc, targets, 3);
	CHECK(site != 0, "found the site in call_g");
	if (!site)
		return check_summary("grace_slots_sites");
	uintptr_t slot_mid = active_slot(sc);
	CHECK(site_target(site) == slot_mid, "mid: the site calls the active slot");

	/* 1: a thread the wait cannot locate; the update happens, its wait fails */
	pthread_t th;
	pthread_create(&th, NULL, blocker, NULL);
	while (!atomic_load(&blocked))
		sched_yield();
	CHECK_EQ(stitch_static_call_update_desc(sc, far), 0);
	CHECK_EQ(call_g(), 3);
	uintptr_t slot_far = active_slot(sc);
	CHECK(slot_far != slot_mid, "far went into the other slot");
	CHECK(site_target(site) == slot_far, "far: the site calls the new active slot");

	/* 2: the next update would rewrite the mid slot, which was never seen empty */
	uint8_t before_t[0x2c], after_t[0x2c];
	uint32_t before_s = *(const uint32_t *)site;
	memcpy(before_t, sc->tramp, sizeof(before_t));
	int err = stitch_static_call_update_desc(sc, NULL);
	CHECK_EQ(err, -STITCH_EQUIESCE);
	printf("update while the old slot's grace period is pending: %s\n", stitch_last_error());
	memcpy(after_t, sc->tramp, sizeof(after_t));
	CHECK(memcmp(before_t, after_t, sizeof(before_t)) == 0, "trampoline unchanged after the failed wait");
	CHECK(*(const uint32_t *)site == before_s, "site unchanged after the failed wait");
	CHECK(stitch_static_call_query_desc(sc) == far, "target unchanged after the failed wait");
	CHECK_EQ(call_g(), 3);

	/* 3: the thread unblocks: the wait succeeds, updates go through */
	atomic_store(&unblock, true);
	pthread_join(th, NULL);
	CHECK_EQ(stitch_static_call_update_desc(sc, NULL), 0);
	CHECK_EQ(call_g(), 0);
	uintptr_t slot_null = active_slot(sc);
	CHECK(slot_null == slot_mid, "NULL reused the slot whose grace period was pending");
	CHECK(*(const uint32_t *)slot_null == A64_RET, "the NULL slot is a RET");
	CHECK(site_target(site) == slot_null, "NULL: the site calls the active slot");
	CHECK_EQ(stitch_static_call_update_desc(sc, (void *)t_near), 0);
	CHECK_EQ(call_g(), 1);
	CHECK(site_target(site) == (uintptr_t)t_near, "near: the site calls the target directly");
	return check_summary("grace_slots_sites");
}
