/* SPDX-License-Identifier: MIT */
/*
 * AArch64 static-call trampolines: three strategies, chosen per defining
 * translation unit (include/stitch/arch/static_call.h).  In all three the
 * descriptor's first field is a 64-bit literal; NULL's literal is a RET in
 * the trampoline, so a thread on a literal path never branches to 0.
 * Near = B range (+-128 MiB) from the branch; "far" beyond it.
 *
 * ---- LITERAL (the default; what Linux merged) ----------------------------
 *   0x00 BTI C | NOP    0x04 ADRP X16, lit    0x08 LDR X16, [X16, #:lo12:lit]
 *   0x0c BR X16         0x10 RET (NULL's literal)
 * No instruction ever changes: an update is one aligned 64-bit release
 * store of the literal (single-copy atomic data).  A thread anywhere in
 * the trampoline loads the old or the new literal.  0 syncs.
 * Model: models/static-call-a64-literal.model.
 *
 * ---- SEED: seed 000's (A)-(E), as a state machine --------------------------
 *        (A)        (B)      (C)            (D)            (E)
 *   00  BTI C      BTI C    BTI C          BTI C          BTI C
 *   04  B fn       NOP      NOP            NOP            NOP
 *   08  RET        RET      ADRP X16, fn   ADRP X16, fn   ADRP X16, fn
 *   0c  NOP        NOP      ADD X16, fn    ADD X16, fn    ADD X16, fn
 *   10                      BR X16         RET            NOP
 *   14                                                    ADRP X16, lit
 *   18                                                    LDR X16, [X16, lit]
 *   1c                                                    BR X16
 *   20  RET (ours: NULL's literal)
 * The state is (word 0x04: NOP | B near) x (tail: AB | C | D | E), plus the
 * ADRP/ADD target and whether the literal path at 0x14 was ever written.
 * Transitions (seed_next), exactly the seed's rules:
 *   near target     0x04 := B fn, tail unchanged (any state);
 *   NULL            AB: 0x04 := NOP (A -> B); C, E: tail -> D (0x10 := RET);
 *                   D: 0x04 := NOP;
 *   far target      AB -> C; C -> C only if the ADD opcode is unchanged
 *                   (same target modulo 4 KiB); otherwise -> E (literal);
 *                   D and E -> E (see below).  0x04 := NOP.
 * How they are written: every word other than 0x04 is written inside
 * stitch_stop_world() (no thread runs; ADRP/ADD/BR/RET are outside the
 * CMODX list), followed by a sync, then the world resumes; 0x04 changes
 * only between NOP and B (both on the CMODX list) as one single-word swap
 * through poke.c (store, sync).  The literal is stored where the new state
 * reads it (E with 0x04 a NOP) before anything leads there (inside the
 * stopped world when the tail changes, else before the 0x04 swap), and
 * last otherwise: a transition refused part-way then sent no call of (E)
 * to the refused target (seed_update).
 * Resume points (threads parked by the stop, or preempted earlier, resume
 * in the new code):
 *   0x08  a RET here was patched in for (B)/(D): NULL is a valid target;
 *         an ADRP here starts a complete, consistent pair;
 *   0x0c  ADD is written once per ADRP page change only when its opcode is
 *         unchanged, so ADD(new) on X16 = ADRP(old) page gives the old
 *         target, which was valid when the thread stopped;
 *   0x10  X16 came from a consistent ADRP/ADD pair.  This is why D and E
 *         never go back to C: a thread that entered in (D) computed X16
 *         from the stale ADRP/ADD and stopped at the RET; turning 0x10
 *         back into BR X16 would send it to a target that was not current
 *         at any moment of its stop (models/static-call-a64-seed-D-to-C,
 *         expected UNSAFE).  In (E) 0x10 is a NOP: it discards X16 and
 *         falls into the literal path;
 *   0x14..0x1c  the literal path, written once, then constant.
 * Model: models/seed000-*.model (each transition), static-call-a64-seed-
 * D-to-E, -E-to-D, and
 * models/static-call-a64-seed-D-to-C.model (the refused one).
 *
 * ---- SLOTS: two slots + flip (the reply in seed 000) -----------------------
 *   0x00 BTI C | NOP   0x04 NOP (-> slot 1) | B 0x18 (-> slot 2)
 *   0x08 slot 1 (4 words)   0x18 slot 2 (4 words)   0x28 RET
 *   a slot is one of:  B fn | ADRP X16, fn; ADD; BR X16 | ADRP X16, lit;
 *   LDR; BR X16 | RET   (unused words BRK #1)
 * With inline call sites (below) this is also the seed's second variant,
 * "patch the call-sites to point to the alternative trampoline slot": a
 * site is `BL fn` when fn is within B range of it, otherwise `BL slot`
 * of the active slot (far targets, and NULL: a slot holding RET), so a
 * call from a site never executes the entry's flip word.  "Reachable": a
 * slot that the entry's flip or some site's B/BL leads to.
 *   step 1  make the unused slot unreachable and empty.  Normally it is
 *           already (step 5 of the previous update).  If that step's
 *           quiescence failed (SLOT_GRACE), or a failed update left sites
 *           on it: move those sites to the active slot (one batch, one
 *           sync), then stitch_quiesce on the unused slot.  Failure: error,
 *           the slots unchanged (moved sites recorded, SLOT_GRACE kept).
 *   step 2  write the unused slot with plain stores (no thread is in it
 *           and nothing leads to it, so the CMODX list does not matter),
 *           sync.  Failure: the words are put back.
 *   step 3  literal := target, if the new slot is a literal one (the
 *           active one is not then: see below); otherwise the literal is
 *           stored after step 4, so that a step 4 refused sent no call
 *           through an active literal slot to the refused target
 *   step 4  ONE batch of single-word CMODX swaps, one sync: 0x04 := NOP |
 *           B 0x18 (the flip), and every site := BL fn | BL new slot
 *           (B/BL <-> B/BL).  Failure before any store: the literal is put
 *           back, the new slot stays recorded but unused.  Failure part-way:
 *           each word holds its old or new value (the sync publishes what
 *           was stored); we read them back, record them and set SLOT_GRACE
 *           so that step 1 of the next update repairs it.
 *   step 5  stitch_quiesce on the old slot: our substitute for
 *           synchronize_rcu_tasks(); afterwards it is free for step 2.  If
 *           this fails the update still happened; SLOT_GRACE makes the
 *           next update repeat the wait at its step 1.
 * An active literal slot that stays one (target beyond ADRP range): one
 * batch for the sites that must move (to `BL fn` or `BL active slot`),
 * then the literal (a site moved to the slot calls the old target until
 * then); no slot is written, so nothing needs a wait.
 * Why a thread stopped at any instruction boundary stays correct.  Write
 * N for the slot written in step 2, O for the other one (the active one
 * before the update); calls through O or a site's old word run the old
 * target, calls through N or a new word the new one; both are acceptable
 * from step 3 until the update returns.
 *   - in N: impossible before step 4 stores the flip or a site word
 *     (nothing led there since the previous update's step 5, or step 1
 *     made sure of it), so step 2's plain stores are never fetched
 *     half-done; they were synced before step 4, so whoever gets there
 *     fetches N complete, and N stays constant for the rest of this
 *     update.
 *   - in O: O is not written by this update at all.  A thread in it runs
 *     the old target (its ADRP/ADD pair or B or RET is consistent: it was
 *     written whole before anything led there; a literal slot loads the
 *     old or the new literal, both valid).  The next update writes O only
 *     after this update's step 5 (or its own step 1) saw no thread in it.
 *   - at the entry (0x00 or 0x04, before the flip executed): fetches the
 *     old or the new flip until step 4's sync, the new one after it; it
 *     then enters O or N, both intact (above).  Having executed the flip,
 *     its PC is at the start of O or N: it counts as "in" that slot.
 *   - at a site, before its B/BL: fetches the old or the new word until
 *     step 4's sync (CMODX: either runs whole), the new one after it.  Old
 *     word: the old target directly, the entry, or O; new: fn directly or
 *     N.  Having executed it, a thread is in the target (never rewritten)
 *     or at the start of a slot, i.e. in O or N.
 *   - the key ordering: the sites switch in step 4, BEFORE step 5 waits
 *     for O.  After step 4's sync no fetch of the entry or of any site
 *     can lead into O, so once step 5 has seen no thread in O, none can
 *     be in it or enter it later: step 2 of the next update may rewrite
 *     it.  Switching the sites after the wait would let a thread execute
 *     an old `BL O` after the wait and be inside O while the next update
 *     rewrites it (models/static-call-a64-slots-sites-late.model, UNSAFE).
 *   - a thread at the final RET (0x28) or in a target: nothing there
 *     changes.
 * Model: models/static-call-a64-slots.model (and -noquiesce, UNSAFE),
 * models/seed000-two-slot-flip.model, and with call sites pointing at the
 * slots models/static-call-a64-slots-sites.model (SAFE) and
 * -slots-sites-late (sites switched after the wait: UNSAFE).
 *
 * ---- inline call sites ------------------------------------------------------
 * With the module linked with -Wl,--emit-relocs, every `BL tramp` (or tail
 * `B tramp`) the compiler emitted is found (src/core/static_call.c).  All
 * sites are checked against their recorded word before anything is
 * written, so a site changed behind our back fails with nothing written.
 * LITERAL and SEED: a site becomes `BL target` while the target is within
 * 128 MiB, `BL tramp` otherwise.  B/BL <-> B/BL is on the CMODX list: one
 * batch of single-word swaps and one sync.  LITERAL does it before the
 * literal store, SEED after the trampoline reached its new state; either
 * way a call through an old site word reaches the old target or the
 * trampoline, and one through a new word the new target or the
 * trampoline, all current at some moment of the update.  A site batch
 * that fails leaves the trampoline on the current target: LITERAL has not
 * stored the literal yet, SEED takes the trampoline back.
 * SLOTS: `BL target` or `BL active slot`, switched together with the flip
 * (step 4 above).
 */
#include <stdlib.h>
#include <string.h>

#include "arch/aarch64/insn.h"
#include "arch/arch.h"
#include "stitch/static_call.h"

#define A64_BRK1 0xd4200020u
#define MAXW 11

static inline uint32_t lo12(uint64_t a)
{
	return (uint32_t)(a & 0xfff);
}

static int check_image(const struct stitch_static_call *sc, const uint32_t *want, size_t n, const char *what)
{
	if (memcmp(sc->tramp, want, 4 * n) == 0)
		return 0;
	char a[3 * 4 * MAXW + 1], b[3 * 4 * MAXW + 1];
	return stitch_fail(what ? STITCH_EUNKNOWN : STITCH_EMISMATCH,
			   "static call %s: trampoline %p %s: expected %s, found %s", sc->name, sc->tramp,
			   what ? what : "was changed behind stitch's back", stitch_hex(a, (const uint8_t *)want, 4 * n),
			   stitch_hex(b, (const uint8_t *)sc->tramp, 4 * n));
}

/* ADRP X16, target; then ADD X16, X16, #lo12 (add) or LDR X16, [X16, #lo12] (!add). */
static int enc_pair(uint32_t *w, uint64_t pc, uint64_t target, bool add)
{
	int err = a64_encode_adrp(&w[0], A64_REG_IP0, pc, target);
	if (!err)
		err = add ? a64_encode_add_imm(&w[1], A64_REG_IP0, A64_REG_IP0, lo12(target), false)
			  : a64_encode_ldr_imm(&w[1], A64_REG_IP0, A64_REG_IP0, lo12(target));
	return err;
}

static bool near_from(uint64_t pc, uint64_t target)
{
	uint32_t w;
	return a64_encode_b(&w, pc, target) == 0;
}

/* Store the literal; returns the old value to put back on failure. */
static void *set_lit(struct stitch_static_call *sc, void *func, unsigned ret_offset)
{
	void *old = __atomic_load_n(&sc->lit, __ATOMIC_RELAXED);
	__atomic_store_n(&sc->lit, func ? func : (void *)((uintptr_t)sc->tramp + ret_offset), __ATOMIC_SEQ_CST);
	return old;
}

/* One CMODX single-word swap through poke.c (store, sync). */
static int swap_word(struct stitch_static_call *sc, unsigned off, uint32_t old_w, uint32_t new_w, const char *op)
{
	if (old_w == new_w)
		return 0;
	struct stitch_patch p;
	stitch_patch_init(&p, (uintptr_t)sc->tramp + off, &old_w, &new_w, 4);
	return stitch_apply_patches_locked(&p, 1, op);
}

/* Plain stores of the words that differ in [from, to) (caller made sure
 * no thread executes them: world stopped, or a quiescent slot), then sync. */
static int write_words(struct stitch_static_call *sc, const uint32_t *cur, const uint32_t *next, unsigned from,
		       unsigned to)
{
	struct stitch_patch p[MAXW];
	size_t n = 0;
	for (unsigned i = from; i < to; i++)
		if (cur[i] != next[i]) {
			memset(&p[n], 0, sizeof(p[n]));
			p[n].addr = (uintptr_t)sc->tramp + 4 * i;
			p[n].len = 4;
			memcpy(p[n].old, &cur[i], 4);
			memcpy(p[n].new_bytes, &next[i], 4);
			n++;
		}
	if (n == 0)
		return 0;
	int err = stitch_text_open(p, n);
	if (err)
		return err;
	size_t done = 0;
	for (; done < n && !err; done++)
		err = stitch_text_store(p[done].addr, p[done].new_bytes, 4);
	if (err) /* put back what was written (same precondition: nobody runs it) */
		for (size_t i = 0; i < done; i++)
			stitch_text_store(p[i].addr, p[i].old, 4);
	int cerr = stitch_text_close();
	int serr = stitch_text_sync(p, n);
	return err ? err : cerr ? cerr : serr;
}

/* ======================= LITERAL ======================================== */

static void literal_image(const struct stitch_static_call *sc, uint32_t *w)
{
	uint64_t t = (uint64_t)(uintptr_t)sc->tramp;
	w[0] = (sc->state & 1) ? A64_BTI_C : A64_NOP;
	enc_pair(&w[1], t + 4, (uintptr_t)&sc->lit, false);
	a64_encode_br(&w[3], A64_REG_IP0);
	w[4] = A64_RET;
}

/* ======================= SEED (A)-(E) =================================== */

enum { TAIL_AB = 0, TAIL_C = 1, TAIL_D = 2, TAIL_E = 3 };
#define SEED_TAIL(s) ((s) & 3u)
#define SEED_W4_B 4u
#define SEED_LITPATH 8u
#define SEED_BTI 16u
#define SEED_WORDS 9

static void seed_image(const struct stitch_static_call *sc, uint32_t s, uint64_t near, uint64_t far, uint32_t *w)
{
	uint64_t t = (uint64_t)(uintptr_t)sc->tramp;
	for (int i = 0; i < SEED_WORDS; i++)
		w[i] = A64_NOP;
	w[0] = (s & SEED_BTI) ? A64_BTI_C : A64_NOP;
	if (s & SEED_W4_B)
		a64_encode_b(&w[1], t + 4, near);
	if (SEED_TAIL(s) == TAIL_AB) {
		w[2] = A64_RET;
	} else {
		enc_pair(&w[2], t + 8, far, true);
		if (SEED_TAIL(s) == TAIL_C)
			a64_encode_br(&w[4], A64_REG_IP0);
		else if (SEED_TAIL(s) == TAIL_D)
			w[4] = A64_RET;
	}
	if (s & SEED_LITPATH) {
		enc_pair(&w[5], t + 0x14, (uintptr_t)&sc->lit, false);
		a64_encode_br(&w[7], A64_REG_IP0);
	}
	w[8] = A64_RET;
}

/*
 * The seed's rules.  Returns the next state and updates *near and *far.
 * Every transition the rules forbid is simply not produced here.
 */
static uint32_t seed_next(const struct stitch_static_call *sc, uint32_t s, uint64_t target, uint64_t *near,
			  uint64_t *far)
{
	uint64_t t = (uint64_t)(uintptr_t)sc->tramp;
	uint32_t keep = s & (SEED_BTI | SEED_LITPATH);
	uint32_t tail = SEED_TAIL(s);
	if (target && near_from(t + 4, target)) { /* "always patched in at offset 0x4" */
		*near = target;
		return keep | tail | SEED_W4_B;
	}
	*near = 0;
	if (!target) {
		if (tail == TAIL_AB)
			return keep | TAIL_AB; /* (A) -> (B) */
		return keep | TAIL_D;          /* (C), (D), (E) -> (D) */
	}
	if (tail == TAIL_AB || (tail == TAIL_C && lo12(target) == lo12(*far))) {
		uint32_t probe;
		if (a64_encode_adrp(&probe, A64_REG_IP0, t + 8, target) == 0) {
			*far = target;
			return keep | TAIL_C;
		}
	}
	/* (E); the ADRP/ADD at 0x08 keep their old target (AB: none). */
	if (tail == TAIL_AB)
		*far = t + 0x20; /* unreachable pair for a tramp that never was in (C): point it at our RET */
	return keep | TAIL_E | SEED_LITPATH;
}

/* ======================= SLOTS ========================================== */

enum { SLOT_EMPTY = 0, SLOT_LIT = 1, SLOT_NEAR = 2, SLOT_FAR = 3, SLOT_NULL = 4 };
#define SLOT_FORM(s, i) (((s) >> (1 + 3 * (i))) & 7u)
#define SLOT_SET_FORM(s, i, f) (((s) & ~(7u << (1 + 3 * (i)))) | ((uint32_t)(f) << (1 + 3 * (i))))
#define SLOT_ACTIVE(s) (((s) >> 7) & 1u)
#define SLOT_GRACE 0x100u
#define SLOT_BTI 0x200u
#define SLOT_WORDS 11

static void slot_words(const struct stitch_static_call *sc, unsigned slot, unsigned form, uint64_t target,
		       uint32_t *w)
{
	uint64_t pc = (uint64_t)(uintptr_t)sc->tramp + 8 + 16 * slot;
	for (int i = 0; i < 4; i++)
		w[i] = A64_BRK1;
	switch (form) {
	case SLOT_LIT: enc_pair(w, pc, (uintptr_t)&sc->lit, false); a64_encode_br(&w[2], A64_REG_IP0); break;
	case SLOT_NEAR: a64_encode_b(&w[0], pc, target); break;
	case SLOT_FAR: enc_pair(w, pc, target, true); a64_encode_br(&w[2], A64_REG_IP0); break;
	case SLOT_NULL: w[0] = A64_RET; break;
	}
}

static void slots_image(const struct stitch_static_call *sc, uint32_t s, const uint64_t *targets, uint32_t *w)
{
	uint64_t t = (uint64_t)(uintptr_t)sc->tramp;
	w[0] = (s & SLOT_BTI) ? A64_BTI_C : A64_NOP;
	w[1] = A64_NOP;
	if (SLOT_ACTIVE(s))
		a64_encode_b(&w[1], t + 4, t + 0x18);
	slot_words(sc, 0, SLOT_FORM(s, 0), targets[0], &w[2]);
	slot_words(sc, 1, SLOT_FORM(s, 1), targets[1], &w[6]);
	w[10] = A64_RET;
}

static unsigned slot_form_for(const struct stitch_static_call *sc, unsigned slot, uint64_t target)
{
	uint64_t pc = (uint64_t)(uintptr_t)sc->tramp + 8 + 16 * slot;
	uint32_t probe;
	if (!target)
		return SLOT_NULL;
	if (near_from(pc, target))
		return SLOT_NEAR;
	if (a64_encode_adrp(&probe, A64_REG_IP0, pc, target) == 0)
		return SLOT_FAR;
	return SLOT_LIT;
}

/* slots_update() is below, after the call-site helpers it uses. */

/* ======================= hooks ========================================== */

size_t arch_static_call_tramp_size(const struct stitch_static_call *sc)
{
	switch (sc->layout) {
	case STITCH_SC_A64_LITERAL: return 5 * 4;
	case STITCH_SC_A64_SEED: return SEED_WORDS * 4;
	default: return SLOT_WORDS * 4;
	}
}

int arch_static_call_register(struct stitch_static_call *sc)
{
	uint32_t w[MAXW], w0;
	if ((uintptr_t)sc->tramp % 16 != 0)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: trampoline %p misaligned", sc->name, sc->tramp);
	memcpy(&w0, sc->tramp, 4);
	bool bti = w0 == A64_BTI_C;
	switch (sc->layout) {
	case STITCH_SC_A64_LITERAL:
		sc->state = bti;
		literal_image(sc, w);
		return check_image(sc, w, 5, "is not what STITCH_DEFINE_STATIC_CALL emits");
	case STITCH_SC_A64_SEED: {
		uint32_t w4, s = bti ? SEED_BTI : 0;
		struct a64_insn insn;
		memcpy(&w4, (const uint8_t *)sc->tramp + 4, 4);
		sc->priv[0] = sc->priv[1] = 0;
		if (a64_decode(w4, (uintptr_t)sc->tramp + 4, &insn) == 0 && insn.kind == A64_INSN_B) {
			s |= SEED_W4_B; /* (A): the assembler's B (possibly to a linker veneer) */
			sc->priv[0] = insn.target;
		}
		sc->state = s;
		seed_image(sc, s, sc->priv[0], 0, w);
		return check_image(sc, w, SEED_WORDS, "is not (A) or (B) as STITCH_DEFINE_STATIC_CALL emits");
	}
	case STITCH_SC_A64_SLOTS:
		sc->state = SLOT_SET_FORM(0u, 0, SLOT_LIT) | (bti ? SLOT_BTI : 0);
		sc->priv[0] = sc->priv[1] = 0;
		slots_image(sc, sc->state, sc->priv, w);
		return check_image(sc, w, SLOT_WORDS, "is not what STITCH_DEFINE_STATIC_CALL emits");
	}
	return stitch_fail(STITCH_EUNKNOWN, "static call %s: layout %u is not an AArch64 one", sc->name, sc->layout);
}

int arch_check_branch_target(uintptr_t target, const char *what)
{
	if (target % 4 != 0)
		return stitch_fail(STITCH_EALIGN, "%s %#lx is not 4-byte aligned", what, (unsigned long)target);
	return 0;
}

/* Do fresh calls through a trampoline in state `s` load the literal?  Only
 * (E) with a NOP at 0x04: 0x10's NOP falls into the literal path. */
static bool seed_reads_literal(uint32_t s)
{
	return SEED_TAIL(s) == TAIL_E && !(s & SEED_W4_B);
}

/*
 * When the literal is stored: only where the new state reads it, and then
 * before any code leads there - inside the stopped world when the tail
 * changes, before the 0x04 swap otherwise.  Anywhere else it goes last: a
 * transition refused part-way (a thread that cannot be stopped:
 * -STITCH_EQUIESCE) must not have sent the calls of a state that reads the
 * literal, (E), to the refused target meanwhile (the same defect x86-64's
 * static_call.c describes).  Threads parked on the literal path load the
 * old or the new literal whichever order is used.
 */
static int seed_update(struct stitch_static_call *sc, void *func)
{
	uint32_t cur[SEED_WORDS], next[SEED_WORDS];
	uint64_t near = sc->priv[0], far = sc->priv[1];
	seed_image(sc, sc->state, near, far, cur);
	int err = check_image(sc, cur, SEED_WORDS, NULL);
	if (err)
		return err;
	uint32_t ns = seed_next(sc, sc->state, (uintptr_t)func, &near, &far);
	seed_image(sc, ns, near, far, next);
	bool lit_early = seed_reads_literal(ns), lit_stored = false;
	void *old_lit = __atomic_load_n(&sc->lit, __ATOMIC_RELAXED);
	bool tail_changes = memcmp(&cur[2], &next[2], 4 * (SEED_WORDS - 2)) != 0;
	if (tail_changes) {
		/* Non-branch words: only with every other thread parked. */
		err = stitch_stop_world(NULL, NULL);
		if (!err) {
			if (lit_early) {
				set_lit(sc, func, 0x20);
				lit_stored = true;
			}
			err = write_words(sc, cur, next, 2, SEED_WORDS); /* puts the old words back on failure */
			if (!err) {
				/* A thread that blocks the quiescence signal woke up during
				 * the stores: put the old tail back (batch.c's
				 * stitch_apply_stopped says why), report it. */
				err = stitch_world_check_sleepers();
				if (err && write_words(sc, next, cur, 2, SEED_WORDS) != 0)
					stitch_die("static_call seed: cannot put the old tail back");
			}
			if (err && lit_stored)
				__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
			stitch_resume_world();
		}
		if (err)
			return err;
		/* Tail is in: record the intermediate state (0x04 unchanged). */
		sc->state = (ns & ~SEED_W4_B) | (sc->state & SEED_W4_B);
		sc->priv[1] = far;
	}
	if (lit_early && !lit_stored) {
		set_lit(sc, func, 0x20);
		lit_stored = true;
	}
	err = swap_word(sc, 4, cur[1], next[1], "static_call seed 0x04");
	if (err) {
		/* With the tail in, the literal stays with it: the recorded
		 * intermediate state reads it exactly when (E) was written. */
		if (lit_stored && !tail_changes)
			__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
		return err;
	}
	if (!lit_stored)
		set_lit(sc, func, 0x20);
	sc->state = ns;
	sc->priv[0] = near;
	sc->priv[1] = far;
	return 0;
}

/* ---- inline call sites ---------------------------------------------------- */

bool arch_static_call_reloc_site(uint32_t type, int64_t addend, uintptr_t where, uintptr_t *site)
{
	/* R_AARCH64_JUMP26 (282) / R_AARCH64_CALL26 (283): the B / BL itself */
	if ((type != 282 && type != 283) || addend != 0)
		return false;
	*site = where;
	return true;
}

int arch_static_call_site_check(const struct stitch_static_call *sc, uintptr_t site, uint32_t *kind)
{
	struct a64_insn i;
	if (site % 4 != 0 || a64_decode(*(const uint32_t *)site, site, &i) != 0 ||
	    (i.kind != A64_INSN_BL && i.kind != A64_INSN_B) || i.target != (uintptr_t)sc->tramp)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: %#lx is not a B/BL of its trampoline (a veneer?)",
				   sc->name, (unsigned long)site);
	*kind = *(const uint32_t *)site;
	return 0;
}

/* The site's B or BL (its kind: as registered) to `target`; -STITCH_ERANGE if out of reach. */
static int site_word(uintptr_t site, uint32_t kind, uintptr_t target, uint32_t *out)
{
	bool bl = (kind & 0xfc000000u) == 0x94000000u;
	return bl ? a64_encode_bl(out, site, target) : a64_encode_b(out, site, target);
}

/* Every site must hold the B/BL of what we recorded for it. */
static int sites_check(const struct stitch_static_call *sc, const struct stitch_sc_site *sites, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t now = *(const uint32_t *)sites[i].addr, want;
		if (site_word(sites[i].addr, sites[i].kind, sites[i].target, &want) != 0 || want != now)
			return stitch_fail(STITCH_EMISMATCH, "static call %s: site %#lx: expected %08x, found %08x",
					   sc->name, (unsigned long)sites[i].addr, want, now);
	}
	return 0;
}

/* Where a site goes for `func`: func itself if its B/BL reaches it, else `via`. */
static uintptr_t site_dest(const struct stitch_sc_site *site, void *func, uintptr_t via)
{
	uint32_t w;
	return func && site_word(site->addr, site->kind, (uintptr_t)func, &w) == 0 ? (uintptr_t)func : via;
}

/*
 * Queue sites[i] -> dest[i] (only the words that change) after `b`'s
 * other patches.  Every word is encoded here, before anything is written:
 * a destination out of reach fails with nothing queued beyond `b`.
 */
static int sites_queue(const struct stitch_static_call *sc, struct stitch_batch *b, const struct stitch_sc_site *sites,
		       size_t n, const uintptr_t *dest)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t now = *(const uint32_t *)sites[i].addr, w;
		if (site_word(sites[i].addr, sites[i].kind, dest[i], &w) != 0)
			return stitch_fail(STITCH_ERANGE, "static call %s: site %#lx cannot reach %#lx", sc->name,
					   (unsigned long)sites[i].addr, (unsigned long)dest[i]);
		if (w != now) {
			int err = stitch_batch_add(b, sites[i].addr, (const uint8_t *)&now, (const uint8_t *)&w, 4);
			if (err)
				return err;
		}
	}
	return 0;
}

/*
 * After a batch failed: record what each site holds now (its old or its
 * new word: the sync publishes whatever was stored).  Returns true if any
 * site changed.
 */
static bool sites_reread(struct stitch_sc_site *sites, size_t n)
{
	bool changed = false;
	for (size_t i = 0; i < n; i++) {
		struct a64_insn insn;
		if (a64_decode(*(const uint32_t *)sites[i].addr, sites[i].addr, &insn) == 0 &&
		    (insn.kind == A64_INSN_B || insn.kind == A64_INSN_BL) && insn.target != sites[i].target) {
			sites[i].target = insn.target;
			changed = true;
		}
	}
	return changed;
}

/* sites[i] -> dest[i] as one batch, one sync (B/BL <-> B/BL: CMODX swaps). */
static int sites_move(struct stitch_static_call *sc, struct stitch_sc_site *sites, size_t n, const uintptr_t *dest,
		      const char *op, bool *changed)
{
	struct stitch_batch b;
	stitch_batch_init(&b);
	b.operation = op;
	int err = sites_queue(sc, &b, sites, n, dest);
	*changed = false;
	if (!err && b.count) {
		err = stitch_batch_apply_locked(&b);
		if (err)
			*changed = sites_reread(sites, n);
	}
	stitch_batch_free(&b);
	for (size_t i = 0; i < n && !err; i++)
		sites[i].target = dest[i];
	if (!err)
		*changed = true;
	return err;
}

/* ---- SLOTS with call sites ------------------------------------------------- */

static uintptr_t slot_addr(const struct stitch_static_call *sc, unsigned slot)
{
	return (uintptr_t)sc->tramp + 8 + 16 * slot;
}

static int slots_update(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t n)
{
	uint32_t s = sc->state, cur[SLOT_WORDS], next[SLOT_WORDS];
	uint64_t target = (uintptr_t)func;
	slots_image(sc, s, sc->priv, cur);
	int err = check_image(sc, cur, SLOT_WORDS, NULL);
	if (err)
		return err;
	unsigned act = SLOT_ACTIVE(s), idle = act ^ 1;
	uintptr_t a_act = slot_addr(sc, act), a_idle = slot_addr(sc, idle);
	struct stitch_range idle_range = { a_idle, a_idle + 16 }, act_range = { a_act, a_act + 16 };
	/* A literal slot stays: only the literal changes (step 3 alone), and
	 * sites that do not call the target directly go to the active slot. */
	bool keep_literal = SLOT_FORM(s, act) == SLOT_LIT && slot_form_for(sc, act, target) == SLOT_LIT;
	uintptr_t via = keep_literal ? a_act : a_idle;

	/* Every site word is planned (and encoded) before anything is written. */
	uintptr_t *dest = calloc(2 * (n ? n : 1), sizeof(*dest));
	if (!dest)
		return stitch_fail(STITCH_ENOMEM, "out of memory");
	uintptr_t *off_idle = dest + (n ? n : 1);
	bool reach_idle = false, changed;
	for (size_t i = 0; i < n; i++) {
		dest[i] = site_dest(&sites[i], func, via);
		off_idle[i] = sites[i].target == a_idle ? a_act : sites[i].target;
		reach_idle |= sites[i].target == a_idle;
	}
	struct stitch_batch b;
	stitch_batch_init(&b);
	err = sites_queue(sc, &b, sites, n, dest);
	if (!err && reach_idle)
		err = sites_queue(sc, &b, sites, n, off_idle);
	stitch_batch_free(&b);
	if (err)
		goto out;

	if (keep_literal) {
		/* The sites first: one that moves to the active slot loads the
		 * old literal until the store, the old target; a refused batch
		 * then changed no call's target. */
		err = sites_move(sc, sites, n, dest, "static_call sites", &changed);
		if (!err)
			set_lit(sc, func, 0x28);
		goto out;
	}
	/* step 1: the idle slot must be unreachable and empty before step 2 */
	if ((s & SLOT_GRACE) || reach_idle) {
		if (reach_idle) {
			/* a failed update left sites on it: back to the active slot first */
			sc->state = s |= SLOT_GRACE;
			err = sites_move(sc, sites, n, off_idle, "static_call sites off the idle slot", &changed);
			if (err)
				goto out;
		}
		err = stitch_quiesce(&idle_range, 1, NULL, NULL);
		if (err)
			goto out;
		s &= ~SLOT_GRACE;
		sc->state = s;
	}
	/* step 2 */
	unsigned form = slot_form_for(sc, idle, target);
	uint64_t targets[2] = { sc->priv[0], sc->priv[1] };
	targets[idle] = form == SLOT_NEAR || form == SLOT_FAR ? target : 0;
	uint32_t ns = SLOT_SET_FORM(s, idle, form);
	slots_image(sc, ns, targets, next);
	err = write_words(sc, cur, next, 2 + 4 * idle, 6 + 4 * idle);
	if (err)
		goto out;
	/* From here on the idle slot holds the new code (unreachable until step 4). */
	sc->state = ns;
	sc->priv[0] = targets[0];
	sc->priv[1] = targets[1];
	/* step 3, if the new slot reads the literal (the active one then does
	 * not: keep_literal above); otherwise after step 4, so that a refused
	 * step 4 sent no call through an active literal slot to the target. */
	bool lit_early = form == SLOT_LIT;
	void *old_lit = lit_early ? set_lit(sc, func, 0x28) : NULL;
	/* step 4: the flip and every site, one batch of CMODX swaps, one sync */
	uint32_t flipped = ns ^ (1u << 7);
	slots_image(sc, flipped, targets, next);
	stitch_batch_init(&b);
	b.operation = "static_call slots flip and sites";
	err = stitch_batch_add(&b, (uintptr_t)sc->tramp + 4, (const uint8_t *)&cur[1], (const uint8_t *)&next[1], 4);
	if (!err)
		err = sites_queue(sc, &b, sites, n, dest);
	if (!err)
		err = stitch_batch_apply_locked(&b);
	stitch_batch_free(&b);
	if (err) {
		uint32_t w4 = *(const uint32_t *)((uintptr_t)sc->tramp + 4);
		bool sites_changed = sites_reread(sites, n);
		if (w4 == cur[1] && !sites_changed) {
			/* nothing reachable changed: the new slot is recorded, unused */
			if (lit_early)
				__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
		} else {
			/* Part of the batch was stored (and synced): record it.  Both
			 * slots may be reachable, so the next update quiesces (and moves
			 * sites off) whichever is idle before reusing it. */
			sc->state = (w4 == cur[1] ? ns : flipped) | SLOT_GRACE;
		}
		goto out;
	}
	sc->state = flipped;
	if (!lit_early)
		set_lit(sc, func, 0x28);
	for (size_t i = 0; i < n; i++)
		sites[i].target = dest[i];
	/* step 5: nothing reaches the old slot any more; wait until nobody is in it */
	if (stitch_quiesce(&act_range, 1, NULL, NULL) != 0) {
		sc->state |= SLOT_GRACE;
		stitch_clear_error();
	}
out:
	free(dest);
	return err;
}

/* Sites of the other strategies: BL target if in reach, else BL tramp. */
static int sites_apply(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t n)
{
	uintptr_t *dest = calloc(n ? n : 1, sizeof(*dest));
	if (!dest)
		return stitch_fail(STITCH_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++)
		dest[i] = site_dest(&sites[i], func, (uintptr_t)sc->tramp);
	bool changed;
	int err = sites_move(sc, sites, n, dest, "static_call sites", &changed);
	free(dest);
	return err;
}

int arch_static_call_update(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t nsites)
{
	int err = sites_check(sc, sites, nsites); /* before anything is written */
	if (err)
		return err;
	if (sc->layout == STITCH_SC_A64_SLOTS)
		return slots_update(sc, func, sites, nsites);
	if (sc->layout == STITCH_SC_A64_LITERAL) {
		/* The sites first, the literal last: a site batch that fails
		 * leaves the trampoline calling the current target (until
		 * 2026-11-28 the literal was already the new one, and stayed). */
		uint32_t w[5];
		literal_image(sc, w);
		err = check_image(sc, w, 5, NULL);
		if (!err && nsites)
			err = sites_apply(sc, func, sites, nsites);
		if (!err)
			set_lit(sc, func, 0x10);
		return err;
	}
	if (sc->layout != STITCH_SC_A64_SEED)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: layout %u is not an AArch64 one", sc->name,
				   sc->layout);
	err = seed_update(sc, func);
	if (!err && nsites) {
		err = sites_apply(sc, func, sites, nsites);
		if (err) {
			/* The sites could not follow: take the trampoline back to the
			 * current target (sc->func is not updated yet), so that a
			 * failed update changed no target. */
			int rerr = seed_update(sc, __atomic_load_n(&sc->func, __ATOMIC_ACQUIRE));
			if (rerr)
				err = rerr;
		}
	}
	return err;
}
