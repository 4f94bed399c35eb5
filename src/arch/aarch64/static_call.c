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
 * through poke.c (store, sync).  The literal is stored first.
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
 *   step 1  (if the last grace period did not complete) stitch_quiesce on
 *           the unused slot; failure: error, nothing written
 *   step 2  write the unused slot with plain stores: no thread can be in
 *           it (step 4 of the previous update), sync
 *   step 3  literal := target (threads in a literal slot see old or new)
 *   step 4  0x04 := NOP | B (CMODX swap through poke.c), sync
 *   step 5  stitch_quiesce on the old slot: our substitute for
 *           synchronize_rcu_tasks(); afterwards it is free for step 2.  If
 *           this fails the update still happened; the next update repeats
 *           the wait at its step 1.
 * Model: models/static-call-a64-slots.model (and -noquiesce, UNSAFE),
 * models/seed000-two-slot-flip.model.
 *
 * ---- inline call sites (any strategy) ---------------------------------------
 * With the module linked with -Wl,--emit-relocs, every `BL tramp` (or tail
 * `B tramp`) the compiler emitted is found (src/core/static_call.c) and
 * becomes `BL target` while the target is within 128 MiB, `BL tramp`
 * otherwise.  B/BL <-> B/BL is on the CMODX list: one batch of single-word
 * swaps and one sync, done after the trampoline reached its new state (a
 * call through the old site reaches the old target or the trampoline, both
 * current until the sites' sync).  Sites are checked before the trampoline
 * is touched, so a site changed behind our back fails with nothing written.
 * With the sites pointing at the target, the SLOTS strategy's second
 * variant (call sites patched, not the entry) comes for free: calls from
 * sites bypass the slots.
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

static int slots_update(struct stitch_static_call *sc, void *func)
{
	uint32_t s = sc->state, cur[SLOT_WORDS], next[SLOT_WORDS];
	uint64_t target = (uintptr_t)func;
	slots_image(sc, s, sc->priv, cur);
	int err = check_image(sc, cur, SLOT_WORDS, NULL);
	if (err)
		return err;
	unsigned act = SLOT_ACTIVE(s), idle = act ^ 1;
	uintptr_t t = (uintptr_t)sc->tramp;
	struct stitch_range idle_range = { t + 8 + 16 * idle, t + 8 + 16 * idle + 16 };
	struct stitch_range act_range = { t + 8 + 16 * act, t + 8 + 16 * act + 16 };
	/* A literal slot stays: only the literal changes (step 3 alone). */
	if (SLOT_FORM(s, act) == SLOT_LIT && slot_form_for(sc, act, target) == SLOT_LIT) {
		set_lit(sc, func, 0x28);
		return 0;
	}
	/* step 1 */
	if (s & SLOT_GRACE) {
		err = stitch_quiesce(&idle_range, 1, NULL, NULL);
		if (err)
			return err;
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
		return err;
	/* step 3 */
	void *old_lit = set_lit(sc, func, 0x28);
	/* step 4 */
	ns = (ns & ~(1u << 7)) | (idle << 7);
	uint32_t flip;
	slots_image(sc, ns, targets, next);
	flip = next[1];
	err = swap_word(sc, 4, cur[1], flip, "static_call slots flip");
	if (err) {
		/* the idle slot holds new code nobody can reach: record it */
		__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
		sc->state = SLOT_SET_FORM(s, idle, form);
		sc->priv[0] = idle == 0 ? targets[0] : sc->priv[0];
		sc->priv[1] = idle == 1 ? targets[1] : sc->priv[1];
		return err;
	}
	sc->state = ns;
	sc->priv[0] = targets[0];
	sc->priv[1] = targets[1];
	/* step 5 */
	if (stitch_quiesce(&act_range, 1, NULL, NULL) != 0) {
		sc->state |= SLOT_GRACE;
		stitch_clear_error();
	}
	return 0;
}

/* ======================= hooks ========================================== */

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

int arch_static_call_check_target(uintptr_t target)
{
	if (target % 4 != 0)
		return stitch_fail(STITCH_EALIGN, "static call target %#lx is not 4-byte aligned", (unsigned long)target);
	return 0;
}

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
	void *old_lit = set_lit(sc, func, 0x20);
	bool tail_changes = memcmp(&cur[2], &next[2], 4 * (SEED_WORDS - 2)) != 0;
	if (tail_changes) {
		/* Non-branch words: only with every other thread parked. */
		err = stitch_stop_world(NULL, NULL);
		if (!err) {
			err = write_words(sc, cur, next, 2, SEED_WORDS); /* puts the old words back on failure */
			int rerr = stitch_resume_world();
			if (!err && rerr) {
				/* Written and synced, but a thread that blocks the quiescence
				 * signal woke up meanwhile: record the new tail (it is in the
				 * code), report the problem. */
				sc->state = (ns & ~SEED_W4_B) | (sc->state & SEED_W4_B);
				sc->priv[1] = far;
				return rerr;
			}
		}
		if (err) {
			__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
			return err;
		}
		/* Tail is in: record the intermediate state (0x04 unchanged). */
		sc->state = (ns & ~SEED_W4_B) | (sc->state & SEED_W4_B);
		sc->priv[1] = far;
	}
	err = swap_word(sc, 4, cur[1], next[1], "static_call seed 0x04");
	if (err) {
		if (!tail_changes)
			__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
		return err;
	}
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

int arch_static_call_site_check(const struct stitch_static_call *sc, uintptr_t site)
{
	struct a64_insn i;
	if (site % 4 != 0 || a64_decode(*(const uint32_t *)site, site, &i) != 0 ||
	    (i.kind != A64_INSN_BL && i.kind != A64_INSN_B) || i.target != (uintptr_t)sc->tramp)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: %#lx is not a B/BL of its trampoline (a veneer?)",
				   sc->name, (unsigned long)site);
	return 0;
}

/* The site's B or BL (same kind as now) to `target`; -STITCH_ERANGE if out of reach. */
static int site_word(uintptr_t site, uint32_t now, uintptr_t target, uint32_t *out)
{
	bool bl = (now & 0xfc000000u) == 0x94000000u;
	return bl ? a64_encode_bl(out, site, target) : a64_encode_b(out, site, target);
}

/*
 * Sites: BL tramp <-> BL target (both on the CMODX list: one single-word
 * swap each, one batch, one sync), after the trampoline itself is in its
 * new state, so a call through either path goes to the old or the new
 * target.  Far and NULL targets: back to BL tramp.
 */
static int sites_check(const struct stitch_static_call *sc, const struct stitch_sc_site *sites, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t now = *(const uint32_t *)sites[i].addr, want;
		if (site_word(sites[i].addr, now, sites[i].target, &want) != 0 || want != now)
			return stitch_fail(STITCH_EMISMATCH, "static call %s: site %#lx: expected %08x, found %08x",
					   sc->name, (unsigned long)sites[i].addr, want, now);
	}
	return 0;
}

static int sites_apply(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t n)
{
	struct stitch_batch b;
	stitch_batch_init(&b);
	b.operation = "static_call sites";
	int err = 0;
	uintptr_t *next = calloc(n ? n : 1, sizeof(*next));
	if (!next)
		return stitch_fail(STITCH_ENOMEM, "out of memory");
	for (size_t i = 0; i < n && !err; i++) {
		uint32_t now = *(const uint32_t *)sites[i].addr, w;
		next[i] = func && site_word(sites[i].addr, now, (uintptr_t)func, &w) == 0 ? (uintptr_t)func
											: (uintptr_t)sc->tramp;
		err = site_word(sites[i].addr, now, next[i], &w);
		if (!err && w != now)
			err = stitch_batch_add(&b, sites[i].addr, (const uint8_t *)&now, (const uint8_t *)&w, 4);
	}
	if (!err && b.count)
		err = stitch_batch_apply_locked(&b);
	stitch_batch_free(&b);
	for (size_t i = 0; i < n && !err; i++)
		sites[i].target = next[i];
	free(next);
	return err;
}

static int tramp_update(struct stitch_static_call *sc, void *func);

int arch_static_call_update(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t nsites)
{
	int err = sites_check(sc, sites, nsites); /* before anything is written */
	if (!err)
		err = tramp_update(sc, func);
	if (!err && nsites)
		err = sites_apply(sc, func, sites, nsites);
	return err;
}

static int tramp_update(struct stitch_static_call *sc, void *func)
{
	switch (sc->layout) {
	case STITCH_SC_A64_LITERAL: {
		uint32_t w[5];
		literal_image(sc, w);
		int err = check_image(sc, w, 5, NULL);
		if (!err)
			set_lit(sc, func, 0x10);
		return err;
	}
	case STITCH_SC_A64_SEED: return seed_update(sc, func);
	case STITCH_SC_A64_SLOTS: return slots_update(sc, func);
	}
	return stitch_fail(STITCH_EUNKNOWN, "static call %s: layout %u is not an AArch64 one", sc->name, sc->layout);
}
