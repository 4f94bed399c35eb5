/* SPDX-License-Identifier: MIT */
/*
 * AArch64 SLOTS with inline call sites (src/arch/aarch64/static_call.c):
 * a thread stopped at the site, at the trampoline's entry, or at any word
 * of the active (soon old) slot while an update runs, released at each
 * step of the update, completes a call to the old or the new target -
 * never anything else, never a crash.
 *
 * The parker (as in resume_static_call.c): a thread signals itself; its
 * handler computes the registers of a thread that entered the call and
 * was stopped at the chosen position (walking the slot as it is now:
 * ADRP, ADD, LDR), points its context there (return address: a landing
 * pad), and spins until released.  Released, it resumes at that position
 * in whatever code is there by then.
 *
 * The release points, one per run, in the update's own order:
 *   H0   before the update's first batch writes (the new slot is written
 *        and synced, the literal is new; the flip and the sites are old);
 *   H1   after that batch's sync (flip and sites switched);
 *   Q    when the update waits for the old slot to empty: the parker's
 *        handler blocks stitch's quiescence signal (sa_mask) and returns
 *        as soon as that signal is pending, so it is delivered with the
 *        thread exactly at the stopped position.  A thread stopped in the
 *        old slot is then really inside it during the wait: the wait must
 *        see it there and ask again (counted: quiesce rounds).  This is
 *        the case resume_static_call.c cannot cover (its parker's PC is in
 *        its handler);
 *   END  after the update returned, for updates that have no such step
 *        (a literal slot that stays one: no batch, no wait).
 * H0 and H1 come from stitch_batch_step_hook, which runs on the updating
 * thread with the update lock held; it waits there until the parker's
 * call has completed, so the call runs against exactly that step's code.
 *
 * Checked for every run: the parker ran the old or the new target (none
 * for NULL).  And what the protocol promises beyond that:
 *   - from H1 on, a thread at the site or at the entry runs the NEW
 *     target: sites and flip switch before the wait (a site switched after
 *     the wait would still run the old one at Q);
 *   - at H0 it runs the old target (unless the old slot is a literal
 *     slot, which loads the literal, already new);
 *   - a thread in the old slot at Q was seen there by the wait.
 * Targets: NULL, two near functions (the site calls them directly; the
 * slot holds B fn), a "mid" stub 1 GiB away (ADRP/ADD slot) and two far
 * stubs 64 GiB away (literal slot; far -> far2 keeps the literal slot and
 * only stores the literal: released at END).  The covered (position,
 * release) pairs are printed.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>

#include "arch/aarch64/insn.h"
#include "common/check.h"
#include "core/internal.h"
#include "static_call/far_thunk.h"
#include <stitch/static_call.h>

static atomic_int hit;
#define TGT(k) __attribute__((noinline)) static void tgt##k(void) { atomic_store(&hit, k); }
TGT(1)
TGT(2)
TGT(3)
TGT(4)
TGT(5)

STITCH_DEFINE_STATIC_CALL(rs, tgt1);

/*
 * The site: a `bl` of the trampoline, found through its relocation like
 * any compiler-emitted call (linked with --emit-relocs); after the call,
 * straight to the landing pad.  The parker resumes at rs_site itself.
 */
__attribute__((noreturn, used)) void resume_landing_c(void);
void rs_site(void);
__asm__(".text\n.p2align 2\n.globl rs_site\n.hidden rs_site\n.type rs_site, %function\n"
	"rs_site:\n"
	"	bl stitch__sct_rs\n"
	"	b resume_landing_c\n"
	".size rs_site, . - rs_site\n");

/* targets: 0 = NULL, 1 near1, 2 near2, 3 mid (ADRP slot), 4 far, 5 far2 (literal slot) */
#define NT 6
static void *target[NT];
static const char *const tname[NT] = { "NULL", "near1", "near2", "mid", "far", "far2" };

/* (a slot's fourth word is always BRK #1: no thread is ever there) */
enum { P_SITE, P_ENTRY0, P_ENTRY4, P_SLOT0, P_SLOT4, P_SLOT8, NPOS };
static const char *const pname[NPOS] = { "site", "entry+0", "entry+4", "slot+0", "slot+4", "slot+8" };
enum { R_H0, R_H1, R_Q, R_END, NREL };
static const char *const rname[NREL] = { "H0", "H1", "Q", "END" };

/* ---- the parker ---------------------------------------------------------------- */

static int qsig;
static sigjmp_buf land_env;
static atomic_int job_seq, done_seq, state; /* state: 0 idle, 1 parked, 2 unreachable */
static atomic_bool release_flag;
static atomic_int released_at = -1;
static uintptr_t job_pc, job_slot; /* where to stop; the slot it is in (0: site, entry) */
static atomic_int result;

void resume_landing_c(void)
{
	siglongjmp(land_env, 1);
}

/* Registers of a thread that entered the slot at `slot` and reached `pc`; false if it cannot. */
static bool walk_slot(uintptr_t slot, uintptr_t pc, uint64_t *x16)
{
	for (uintptr_t p = slot; p < pc; p += 4) {
		struct a64_insn i;
		if (a64_decode(*(const uint32_t *)p, p, &i) != 0)
			return false;
		switch (i.kind) {
		case A64_INSN_ADRP: *x16 = i.target; break;
		case A64_INSN_ADD_IMM: *x16 += (uint64_t)i.imm; break;
		case A64_INSN_LDR_IMM: *x16 = *(const uint64_t *)(uintptr_t)(*x16 + (uint64_t)i.imm); break;
		default: return false; /* B, BR, RET leave the slot; BRK is never reached */
		}
	}
	struct a64_insn i;
	return a64_decode(*(const uint32_t *)pc, pc, &i) == 0 && i.kind != A64_INSN_BRK;
}

static void park_handler(int sig, siginfo_t *info, void *ctx)
{
	(void)sig, (void)info;
	ucontext_t *uc = ctx;
	uint64_t x16 = 0;
	if (job_slot && !walk_slot(job_slot, job_pc, &x16)) {
		atomic_store(&state, 2);
		return;
	}
	uc->uc_mcontext.regs[16] = x16;
	uc->uc_mcontext.regs[30] = (uintptr_t)resume_landing_c; /* the site's own BL sets it there */
	uc->uc_mcontext.pc = job_pc;
	atomic_store(&state, 1);
	/* qsig is blocked here (sa_mask): if the update starts waiting for
	 * threads while we are parked, its signal stays pending until we
	 * return, and is then taken at job_pc, before any instruction there. */
	for (;;) {
		if (atomic_load(&release_flag))
			break;
		sigset_t p;
		if (sigpending(&p) == 0 && sigismember(&p, qsig)) {
			int none = -1;
			atomic_compare_exchange_strong(&released_at, &none, R_Q);
			break;
		}
	}
}

static void *parker_main(void *arg)
{
	(void)arg;
	volatile int seen = 0;
	for (;;) {
		while (atomic_load(&job_seq) == seen)
			sched_yield();
		seen = atomic_load(&job_seq);
		if (seen < 0)
			return NULL;
		atomic_store(&hit, 0);
		if (sigsetjmp(land_env, 1) == 0) {
			pthread_kill(pthread_self(), SIGUSR1);
			atomic_store(&result, -100); /* only if unreachable: the handler returned normally */
		} else {
			atomic_store(&result, atomic_load(&hit));
		}
		atomic_store(&done_seq, seen);
	}
}

/* Release the parker (if still parked) and wait until its call completed. */
static void release(int why)
{
	int none = -1;
	atomic_compare_exchange_strong(&released_at, &none, why);
	atomic_store(&release_flag, true);
	while (atomic_load(&done_seq) != atomic_load(&job_seq))
		sched_yield();
}

/* ---- the update's steps ---------------------------------------------------------- */

static int want_release; /* R_H0 or R_H1: released from the hook; R_Q: by the wait */
static unsigned first_batch_steps;

static void step_hook(unsigned step)
{
	/* Only the update's first batch (the flip and the sites). */
	if (step == 0 && first_batch_steps++ > 0)
		return;
	if (atomic_load(&state) != 1 || atomic_load(&done_seq) == atomic_load(&job_seq))
		return;
	if ((want_release == R_H0 && step == 0) || (want_release == R_H1 && step == 1))
		release(want_release);
}

static uintptr_t active_slot(const struct stitch_static_call *sc)
{
	uintptr_t t = (uintptr_t)sc->tramp;
	struct a64_insn i;
	a64_decode(((const uint32_t *)sc->tramp)[1], t + 4, &i);
	return i.kind == A64_INSN_B ? i.target : t + 8;
}

static bool is_literal_slot(uintptr_t slot)
{
	struct a64_insn i;
	return a64_decode(((const uint32_t *)slot)[1], slot + 4, &i) == 0 && i.kind == A64_INSN_LDR_IMM;
}

static uint64_t quiesce_rounds(void)
{
	struct stitch_stats st;
	stitch_get_stats(&st);
	return st.quiesce_rounds;
}

int main(void)
{
	const char *env = getenv("STITCH_QUIESCE_SIGNAL");
	qsig = env && *env ? atoi(env) : SIGRTMIN + 5; /* stitch's default (src/core/quiesce.c) */
	if (stitch_init() != 0)
		return fprintf(stderr, "stitch_init: %s\n", stitch_last_error()), 1;
	struct stitch_static_call *sc = stitch_static_call_desc(rs);
	CHECK(sc->layout == STITCH_SC_A64_SLOTS, "built with the SLOTS strategy");
	int nsites = stitch_static_call_site_count(sc);
	CHECK(nsites == 1, "the bl in rs_site is the static call's one inline site (found %d)", nsites);
	if (nsites != 1)
		return check_summary("resume_slots_sites");
	uintptr_t t = (uintptr_t)sc->tramp;
	uint8_t *pm = far_page(t, 1ull << 30, 0), *pf = far_page(t, FAR_DISTANCE, 0);
	if (!pm || !pf)
		return fprintf(stderr, "cannot map far pages\n"), 1;
	target[0] = NULL;
	target[1] = (void *)tgt1;
	target[2] = (void *)tgt2;
	target[3] = far_stub(pm, 0, (void *)tgt3);
	target[4] = far_stub(pf, 0, (void *)tgt4);
	target[5] = far_stub(pf, 0x100, (void *)tgt5);
	if (far_seal(pm) || far_seal(pf))
		return 1;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = park_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, qsig);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_t parker;
	pthread_create(&parker, NULL, parker_main, NULL);

	unsigned runs = 0, bad = 0, unreachable = 0, cover[NPOS][NREL] = { { 0 } }, slot_cover[2] = { 0, 0 };
	unsigned seen_in_old = 0, q_old_runs = 0;
	for (int from = 0; from < NT; from++)
		for (int to = 0; to < NT; to++) {
			if (to == from)
				continue;
			for (int pos = 0; pos < NPOS; pos++)
				for (int rel = R_H0; rel <= R_Q; rel++) {
					/* the from state; every other run first goes elsewhere, so
					 * that both slots take turns being the old one */
					if ((runs & 1) && stitch_static_call_update_desc(sc, target[(from + 1) % NT]) != 0)
						return fprintf(stderr, "prefix: %s\n", stitch_last_error()), 1;
					if (stitch_static_call_update_desc(sc, target[from]) != 0)
						return fprintf(stderr, "prefix: %s\n", stitch_last_error()), 1;
					runs++;
					uintptr_t old_slot = active_slot(sc);
					bool old_literal = is_literal_slot(old_slot);
					job_slot = pos >= P_SLOT0 ? old_slot : 0;
					job_pc = pos == P_SITE	   ? (uintptr_t)rs_site
						 : pos == P_ENTRY0 ? t
						 : pos == P_ENTRY4 ? t + 4
								   : old_slot + 4 * (unsigned)(pos - P_SLOT0);
					atomic_store(&release_flag, false);
					atomic_store(&released_at, -1);
					atomic_store(&state, 0);
					int seq = atomic_load(&job_seq) + 1;
					atomic_store(&job_seq, seq);
					while (atomic_load(&state) == 0)
						sched_yield();
					if (atomic_load(&state) == 2) { /* e.g. slot+4 of a `B fn` slot */
						while (atomic_load(&done_seq) != seq)
							sched_yield();
						unreachable++;
						continue;
					}
					want_release = rel;
					first_batch_steps = 0;
					uint64_t q0 = quiesce_rounds();
					stitch_batch_step_hook = step_hook;
					int err = stitch_static_call_update_desc(sc, target[to]);
					stitch_batch_step_hook = NULL;
					uint64_t q1 = quiesce_rounds();
					CHECK(err == 0, "update %s -> %s: %s", tname[from], tname[to], stitch_last_error());
					release(R_END);
					int r = atomic_load(&result), why = atomic_load(&released_at);
					cover[pos][why]++;
					if (job_slot)
						slot_cover[old_slot == t + 0x18]++;
					char what[160];
					snprintf(what, sizeof(what), "%s -> %s, stopped at %s, released at %s", tname[from],
						 tname[to], pname[pos], rname[why]);
					const char *wrong = NULL;
					bool outside = pos <= P_ENTRY4; /* not yet in a slot */
					if (r != from && r != to)
						wrong = "neither the old nor the new target";
					else if (outside && (why == R_H1 || why == R_Q) && r != to)
						wrong = "not the new target, but the site and the flip were switched before this step";
					else if (outside && why == R_H0 && !old_literal && r != from)
						wrong = "not the old target, but nothing reachable was switched yet";
					if (!outside && why == R_Q) {
						q_old_runs++;
						/* the wait found the thread in the old slot and asked again */
						if (q1 - q0 >= 2)
							seen_in_old++;
						else if (!wrong)
							wrong = "the wait for the old slot did not see the thread in it";
					}
					CHECK(!wrong, "%s: ran %s: %s", what, r >= 0 && r < NT ? tname[r] : "garbage", wrong);
					bad += wrong != NULL;
				}
		}
	atomic_store(&job_seq, -1);
	pthread_join(parker, NULL);

	printf("covered (position, release point) runs:\n");
	for (int p = 0; p < NPOS; p++) {
		printf("  %-9s", pname[p]);
		for (int r = 0; r < NREL; r++)
			printf(" %s %3u", rname[r], cover[p][r]);
		printf("\n");
	}
	printf("%u runs (%u positions unreachable in their slot's form), stopped in slot 1 %u times, in slot 2 %u; "
	       "%u of %u threads stopped in the old slot were seen there by the wait; %u runs wrong\n",
	       runs, unreachable, slot_cover[0], slot_cover[1], seen_in_old, q_old_runs, bad);
	for (int p = 0; p < NPOS; p++)
		for (int r = R_H0; r <= R_Q; r++)
			CHECK(cover[p][r] > 0, "position %s was released at %s at least once", pname[p], rname[r]);
	CHECK(slot_cover[0] > 0 && slot_cover[1] > 0, "threads stopped in both slots");
	CHECK(cover[P_SITE][R_END] > 0 && cover[P_SLOT8][R_END] > 0, "far -> far2 (the literal slot stays) was covered");
	return check_summary("resume_slots_sites");
}
