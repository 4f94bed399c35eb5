/* SPDX-License-Identifier: MIT */
/*
 * Static calls: semantics, the per-architecture trampoline states, the
 * AArch64 seed state machine over every update sequence of length 3 from
 * (A) and from (B), and every error path (nothing written on error).
 *
 * Targets: "near" functions of this program; "mid" stubs about 1 GiB away
 * (beyond B/JAL range, within ADRP/AUIPC and x86 rel32 range: C/D pages
 * share their low 12 bits, E does not); a "far" stub 64 GiB away.
 */
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "arch/arch.h"
#include "common/check.h"
#include "common/repeat.h"
#include "core/internal.h"
#include "static_call/far_thunk.h"
#include <stitch/static_call.h>

#if defined(__aarch64__)
#include "arch/aarch64/insn.h"
#elif defined(__riscv)
#include "arch/riscv64/insn.h"
#else
#include "arch/x86_64/insn.h"
#endif

__attribute__((noinline)) static int f_a(int x) { return x + 1; }
__attribute__((noinline)) static int f_b(int x) { return x + 2; }
__attribute__((noinline)) static int f_c(int x) { return x + 3; }
__attribute__((noinline)) static int f_far(int x) { return x + 9; }
static int not_code = 42;

STITCH_DEFINE_STATIC_CALL(op, f_a);
STITCH_DEFINE_STATIC_CALL_NULL(op_null, int (int));

/* void calls that report which target ran (or -1: none) */
__attribute__((noinline)) static void v_near(int *r) { *r = 1; }
__attribute__((noinline)) static void v_mid_c(int *r) { *r = 2; }
__attribute__((noinline)) static void v_mid_d(int *r) { *r = 3; }
__attribute__((noinline)) static void v_mid_e(int *r) { *r = 4; }
__attribute__((noinline)) static void v_far(int *r) { *r = 5; }
typedef void vfn(int *);

STITCH_DEFINE_STATIC_CALL(ev, v_near);

/* Inline sites: where did the call come from, and what does it call? */
static void *volatile probe_ra;
__attribute__((noinline)) static void probe_a(void) { probe_ra = __builtin_return_address(0); }
__attribute__((noinline)) static void probe_b(void) { probe_ra = __builtin_return_address(0); }
STITCH_DEFINE_STATIC_CALL(probe, probe_a);
__attribute__((noinline)) static void call_probe(void)
{
	stitch_static_call(probe)();
	__asm__ volatile("" ::: "memory"); /* not a tail call: keep the return address here */
}

/* 64 static calls starting in (A) and 64 starting in (B) */
#define DEF_A(x, i) STITCH_DEFINE_STATIC_CALL(seqA##i, v_near);
#define DEF_B(x, i) STITCH_DEFINE_STATIC_CALL_NULL(seqB##i, vfn);
REPEAT_64(DEF_A, x, )
REPEAT_64(DEF_B, x, )
struct seq_call {
	struct stitch_static_call *sc;
	vfn *call;
};
#define ENT_A(x, i) { stitch_static_call_desc(seqA##i), stitch_static_call(seqA##i) },
#define ENT_B(x, i) { stitch_static_call_desc(seqB##i), stitch_static_call(seqB##i) },
static const struct seq_call seq_a[64] = { REPEAT_64(ENT_A, x, ) };
static const struct seq_call seq_b[64] = { REPEAT_64(ENT_B, x, ) };

static void *mid_c, *mid_d, *mid_e, *far_v, *far_op, *far_probe, *mid_probe;

static int make_targets(void)
{
	uintptr_t here = (uintptr_t)stitch_static_call_desc(op)->tramp;
	uint8_t *p1 = far_page(here, 1ull << 30, 0), *p2 = far_page(here, 1ull << 30, 1);
	uint8_t *pf = far_page(here, FAR_DISTANCE, 0);
	if (!p1 || !p2 || !pf) {
		fprintf(stderr, "cannot map far pages\n");
		return -1;
	}
	mid_c = far_stub(p1, 0, (void *)v_mid_c);
	mid_e = far_stub(p1, 0x100, (void *)v_mid_e);
	mid_d = far_stub(p2, 0, (void *)v_mid_d);
	far_v = far_stub(pf, 0, (void *)v_far);
	far_op = far_stub(pf, 0x40, (void *)f_far);
	far_probe = far_stub(pf, 0x80, (void *)probe_b);
	mid_probe = far_stub(p1, 0x200, (void *)probe_b);
	return far_seal(p1) || far_seal(p2) || far_seal(pf) ? -1 : 0;
}

static int run_v(vfn *call)
{
	int r = -1;
	call(&r);
	return r;
}

/* ---- basic semantics ------------------------------------------------------ */

static void test_basic(void)
{
	CHECK_EQ(stitch_static_call(op)(1), 2);
	CHECK(stitch_static_call_query(op) == f_a, "query after DEFINE");
	CHECK(stitch_static_call_query(op_null) == NULL, "query after DEFINE_NULL");
	CHECK_EQ(stitch_static_call_update(op, f_b), 0);
	CHECK_EQ(stitch_static_call(op)(1), 3);
	CHECK(stitch_static_call_query(op) == f_b, "query after update");
	CHECK_EQ(stitch_static_call_update(op, (int (*)(int))far_op), 0);
	CHECK_EQ(stitch_static_call(op)(1), 10);
	CHECK_EQ(stitch_static_call_update(op, f_c), 0);
	CHECK_EQ(stitch_static_call(op)(1), 4);
	CHECK_EQ(stitch_static_call_update(op_null, f_a), 0);
	CHECK_EQ(stitch_static_call(op_null)(5), 6);

	CHECK_EQ(run_v(stitch_static_call(ev)), 1);
	CHECK_EQ(stitch_static_call_update(ev, NULL), 0);
	CHECK_EQ(run_v(stitch_static_call_cond(ev)), -1);
	CHECK_EQ(stitch_static_call_update(ev, (vfn *)far_v), 0);
	CHECK_EQ(run_v(stitch_static_call(ev)), 5);
	CHECK_EQ(stitch_static_call_update(ev, NULL), 0);
	CHECK_EQ(run_v(stitch_static_call_cond(ev)), -1);
	CHECK_EQ(stitch_static_call_update(ev, (vfn *)mid_c), 0);
	CHECK_EQ(run_v(stitch_static_call(ev)), 2);
	CHECK_EQ(stitch_static_call_update(ev, v_near), 0);
	CHECK_EQ(run_v(stitch_static_call(ev)), 1);
}

/* ---- sequences and the trampoline's bytes ----------------------------------- */

enum { U_NEAR, U_FAR_SAME_ADD, U_FAR_OTHER_ADD, U_NULL };
static const char *const u_name[] = { "near", "far-same-add", "far-other-add", "NULL" };

#if defined(__aarch64__) && defined(STITCH_STATIC_CALL_A64_SEED)
/* The seed's rules, restated independently of the library. */
enum { T_AB, T_C, T_D, T_E };
struct seed_ref {
	int tail;
	uintptr_t c_target;
};
static void seed_ref_step(struct seed_ref *s, int u, uintptr_t target)
{
	if (u == U_NEAR)
		return;
	if (u == U_NULL) {
		if (s->tail != T_AB)
			s->tail = T_D;
		return;
	}
	if (s->tail == T_AB || (s->tail == T_C && (target & 0xfff) == (s->c_target & 0xfff))) {
		s->tail = T_C;
		s->c_target = target;
	} else {
		s->tail = T_E;
	}
}
static const char *const tail_name[] = { "A/B", "C", "D", "E" };

static void check_seed_words(const struct stitch_static_call *sc, const struct seed_ref *ref, int u,
			     uintptr_t target, const char *what)
{
	const uint32_t *w = sc->tramp;
	uintptr_t t = (uintptr_t)sc->tramp;
	struct a64_insn i4, i8, i10, i14;
	a64_decode(w[1], t + 4, &i4);
	a64_decode(w[2], t + 8, &i8);
	a64_decode(w[4], t + 0x10, &i10);
	a64_decode(w[5], t + 0x14, &i14);
	if (u == U_NEAR)
		CHECK(i4.kind == A64_INSN_B && i4.target == target, "%s: 0x04 is B %#lx", what, (unsigned long)target);
	else
		CHECK(i4.kind == A64_INSN_NOP, "%s: 0x04 is NOP", what);
	switch (ref->tail) {
	case T_AB:
		CHECK(i8.kind == A64_INSN_RET, "%s: (A)/(B): 0x08 is RET", what);
		break;
	case T_C:
	case T_D:
	case T_E: {
		CHECK(i8.kind == A64_INSN_ADRP, "%s: %s: 0x08 is ADRP", what, tail_name[ref->tail]);
		enum a64_insn_kind want10 = ref->tail == T_C ? A64_INSN_BR : ref->tail == T_D ? A64_INSN_RET : A64_INSN_NOP;
		CHECK(i10.kind == want10, "%s: %s: 0x10 is %s, found %s", what, tail_name[ref->tail], a64_insn_name(want10),
		      a64_insn_name(i10.kind));
		if (ref->tail == T_C) {
			struct a64_insn ic;
			a64_decode(w[3], t + 12, &ic);
			uint64_t x16 = i8.target + (uint64_t)ic.imm;
			CHECK(x16 == ref->c_target, "%s: (C): ADRP+ADD give %#lx, want %#lx", what, (unsigned long)x16,
			      (unsigned long)ref->c_target);
		}
		if (ref->tail == T_E)
			CHECK(i14.kind == A64_INSN_ADRP, "%s: (E): 0x14 is ADRP", what);
		break;
	}
	}
}
#endif

/* The bytes at the trampoline's entry for the other layouts. */
__attribute__((unused)) static void check_entry(const struct stitch_static_call *sc, int u, uintptr_t target, const char *what)
{
#if defined(__x86_64__)
	struct x86_insn i;
	uintptr_t t = (uintptr_t)sc->tramp;
	CHECK(x86_decode(sc->tramp, 5, t, &i) == 0, "%s: +0 decodes", what);
	if (u == U_NULL)
		CHECK(i.kind == X86_INSN_NOP && i.len == 5, "%s: +0 is nop5", what);
	else if (target - (t + 5) + (1ull << 31) < (1ull << 32))
		CHECK(i.kind == X86_INSN_JMP_REL32 && i.target == target, "%s: +0 is jmp %#lx", what, (unsigned long)target);
	else
		CHECK(i.kind == X86_INSN_JMP_REL32 && i.target == t + 8, "%s: +0 is jmp +8 (far)", what);
#elif defined(__riscv)
	struct rv_insn i;
	uintptr_t t = (uintptr_t)sc->tramp;
	CHECK(rv_decode(sc->tramp, 4, t, &i) == 0, "%s: word 0 decodes", what);
	if (u == U_NULL)
		CHECK(i.kind == RV_INSN_JAL && i.target == t + 16, "%s: word 0 is j 0x10", what);
	else if (u == U_NEAR)
		CHECK(i.kind == RV_INSN_JAL && i.target == target, "%s: word 0 is jal %#lx", what, (unsigned long)target);
	else
		CHECK(i.kind == RV_INSN_NOP, "%s: word 0 is nop (literal path)", what);
#else
	(void)sc, (void)u, (void)target, (void)what;
#endif
}

static int pick(int u, uintptr_t *last_far, uintptr_t *target, int *want)
{
	switch (u) {
	case U_NEAR: *target = (uintptr_t)v_near; *want = 1; return 0;
	case U_NULL: *target = 0; *want = -1; return 0;
	case U_FAR_SAME_ADD:
		*target = *last_far == (uintptr_t)mid_c ? (uintptr_t)mid_d : (uintptr_t)mid_c;
		break;
	default:
		*target = *last_far == (uintptr_t)mid_e ? (uintptr_t)mid_c : (uintptr_t)mid_e;
		break;
	}
	*last_far = *target;
	*want = *target == (uintptr_t)mid_c ? 2 : *target == (uintptr_t)mid_d ? 3 : 4;
	return 0;
}

static void test_sequences(const struct seq_call *calls, const char *start)
{
	for (int s = 0; s < 64; s++) {
		const struct seq_call *c = &calls[s];
		uintptr_t last_far = 0;
#if defined(__aarch64__) && defined(STITCH_STATIC_CALL_A64_SEED)
		struct seed_ref ref = { T_AB, 0 };
#endif
		char what[160];
		int n = snprintf(what, sizeof(what), "from %s:", start);
		for (int k = 0; k < 3; k++) {
			int u = (s >> (2 * k)) & 3, want;
			uintptr_t target;
			pick(u, &last_far, &target, &want);
			n += snprintf(what + n, sizeof(what) - (size_t)n, " %s", u_name[u]);
			int err = stitch_static_call_update_desc(c->sc, (void *)target);
			CHECK(err == 0, "%s: update: %s", what, stitch_last_error());
			CHECK(run_v(c->call) == want, "%s: call ran target %d, want %d", what, run_v(c->call), want);
			CHECK(stitch_static_call_query_desc(c->sc) == (void *)target, "%s: query", what);
#if defined(__aarch64__) && defined(STITCH_STATIC_CALL_A64_SEED)
			seed_ref_step(&ref, u, target);
			check_seed_words(c->sc, &ref, u, target, what);
#else
			check_entry(c->sc, u, target, what);
#endif
		}
	}
}

/* ---- inline sites (linked with -Wl,--emit-relocs) ------------------------- */

#if defined(STITCH_TEST_INLINE)
/* The call in call_probe(), once test_inline() has seen it call directly. */
static uintptr_t inline_site;
#endif

#if defined(__aarch64__) && defined(STITCH_STATIC_CALL_A64_SLOTS) && defined(STITCH_TEST_INLINE)
/*
 * SLOTS with sites: after every update the site word itself must be
 * `BL target` (target within 128 MiB of the site) or `BL active slot`,
 * where the active slot is the one the entry's flip word selects and
 * holds the form for the target.  Read from the code, not from the
 * library's records.
 */
static uintptr_t active_slot(const struct stitch_static_call *sc)
{
	uintptr_t t = (uintptr_t)sc->tramp;
	struct a64_insn i;
	CHECK(a64_decode(((const uint32_t *)sc->tramp)[1], t + 4, &i) == 0 &&
		      (i.kind == A64_INSN_NOP || (i.kind == A64_INSN_B && i.target == t + 0x18)),
	      "0x04 is NOP or B 0x18");
	return i.kind == A64_INSN_B ? t + 0x18 : t + 8;
}

static void test_inline_slots(void)
{
	struct stitch_static_call *sc = stitch_static_call_desc(probe);
	uintptr_t t = (uintptr_t)sc->tramp, site = 0;
	/* every transition among near, mid (ADRP slot), far (literal slot) and NULL */
	void *seq[] = { (void *)probe_b, far_probe, NULL,	   mid_probe, (void *)probe_a, NULL,	    NULL,
			mid_probe,	 mid_probe, far_probe, far_probe, (void *)probe_b, mid_probe, far_probe,
			NULL,		 (void *)probe_a };
	const char *kind[] = { "near", "mid", "far", "NULL" };
	unsigned via_slot[2] = { 0, 0 }, direct = 0, n = sizeof(seq) / sizeof(seq[0]);
	for (unsigned k = 0; k < n; k++) {
		void *target = seq[k];
		int kd = !target ? 3 : target == far_probe ? 2 : target == mid_probe ? 1 : 0;
		CHECK_EQ(stitch_static_call_update_desc(sc, target), 0);
		probe_ra = NULL;
		call_probe();
		if (target) {
			const uint8_t *ra = probe_ra;
			CHECK(ra != NULL, "update %u (%s): probe called", k, kind[kd]);
			if (!ra)
				continue;
			if (!site)
				site = (uintptr_t)(ra - 4); /* the first target is near: called from the site */
			CHECK((uintptr_t)(ra - 4) == site, "update %u (%s): called from the site", k, kind[kd]);
			inline_site = site;
		} else {
			CHECK(probe_ra == NULL, "update %u: NULL: nothing called", k);
		}
		CHECK(site != 0, "the site is known");
		if (!site)
			return;
		struct a64_insn i;
		CHECK(a64_decode(*(const uint32_t *)site, site, &i) == 0 && i.kind == A64_INSN_BL, "update %u: site is a BL",
		      k);
		uintptr_t slot = active_slot(sc);
		uintptr_t want = kd == 0 ? (uintptr_t)target : slot;
		CHECK(i.target == want, "update %u (%s): site is BL %#lx, want BL %#lx (%s)", k, kind[kd],
		      (unsigned long)i.target, (unsigned long)want, kd == 0 ? "the target" : "the active slot");
		if (i.target == slot) {
			via_slot[slot == t + 0x18]++;
			/* and that slot holds the target's form */
			struct a64_insn s0;
			a64_decode(*(const uint32_t *)slot, slot, &s0);
			enum a64_insn_kind want0 = kd == 3 ? A64_INSN_RET : A64_INSN_ADRP;
			CHECK(s0.kind == want0, "update %u (%s): active slot starts with %s, found %s", k, kind[kd],
			      a64_insn_name(want0), a64_insn_name(s0.kind));
		} else {
			direct++;
		}
	}
	printf("slots with sites: %u updates, site -> slot 1 %u times, -> slot 2 %u, -> target %u\n", n, via_slot[0],
	       via_slot[1], direct);
	CHECK(via_slot[0] > 0 && via_slot[1] > 0 && direct > 0, "both slots and the direct call were used");
	(void)t;
}
#endif

static void test_inline(void)
{
	struct stitch_static_call *sc = stitch_static_call_desc(probe);
	int n = stitch_static_call_site_count(sc);
	printf("inline sites: probe %d, op %d, ev %d\n", n, stitch_static_call_site_count(stitch_static_call_desc(op)),
	       stitch_static_call_site_count(stitch_static_call_desc(ev)));
#if defined(STITCH_TEST_INLINE)
	CHECK(n >= 1, "the call in call_probe() was found (linked with --emit-relocs)");
#if defined(__aarch64__) && defined(STITCH_STATIC_CALL_A64_SLOTS)
	test_inline_slots();
	return;
#endif
	void *targets[4] = { (void *)probe_b, far_probe, NULL, (void *)probe_a };
	for (int i = 0; i < 4; i++) {
		CHECK_EQ(stitch_static_call_update_desc(sc, targets[i]), 0);
		probe_ra = NULL;
		call_probe();
		if (!targets[i]) {
			CHECK(probe_ra == NULL, "NULL: nothing called");
			continue;
		}
		const uint8_t *ra = probe_ra;
		bool is_call = false;
		uintptr_t called = 0;
#if defined(__x86_64__)
		struct x86_insn insn;
		is_call = ra && x86_decode(ra - 5, 5, (uintptr_t)(ra - 5), &insn) == 0 && insn.kind == X86_INSN_CALL_REL32;
		called = is_call ? insn.target : 0;
#elif defined(__aarch64__)
		struct a64_insn insn;
		is_call = ra && a64_decode(*(const uint32_t *)(const void *)(ra - 4), (uintptr_t)(ra - 4), &insn) == 0 &&
			  insn.kind == A64_INSN_BL;
		called = is_call ? insn.target : 0;
#else
		struct rv_insn insn;
		is_call = ra && rv_decode(ra - 4, 4, (uintptr_t)(ra - 4), &insn) == 0 && insn.kind == RV_INSN_JAL &&
			  insn.rd == RV_REG_RA;
		called = is_call ? insn.target : 0;
#endif
		CHECK(is_call, "target %d: return address follows a direct call", i);
		uintptr_t want = targets[i] == far_probe ? (uintptr_t)sc->tramp : (uintptr_t)targets[i];
		CHECK(called == want, "target %d: the site calls %#lx, want %#lx (%s)", i, (unsigned long)called,
		      (unsigned long)want, want == (uintptr_t)sc->tramp ? "far: through the trampoline" : "near: directly");
		if (is_call && called == (uintptr_t)targets[i])
#if defined(__x86_64__)
			inline_site = (uintptr_t)(ra - 5);
#else
			inline_site = (uintptr_t)(ra - 4);
#endif
	}
#else
	CHECK_EQ(stitch_static_call_update(probe, probe_b), 0);
	call_probe();
	CHECK(probe_ra != NULL, "probe called");
#endif
}

/* ---- errors: nothing written ---------------------------------------------------- */

#define SNAP 48

static void tamper(uintptr_t addr, uint8_t byte)
{
	struct stitch_patch p;
	memset(&p, 0, sizeof(p));
	p.addr = addr;
	p.len = 1;
	p.new_bytes[0] = byte;
	stitch_update_lock();
	int err = stitch_text_open(&p, 1);
	if (!err)
		err = stitch_text_store(addr, &byte, 1);
	stitch_text_close();
	stitch_text_sync(&p, 1);
	stitch_update_unlock();
	CHECK_EQ(err, 0);
}

static void test_errors(void)
{
	struct stitch_static_call *sc = stitch_static_call_desc(op);
	uint8_t before[SNAP], after[SNAP];
	CHECK_EQ(stitch_static_call_update(op, f_a), 0);
	memcpy(before, sc->tramp, SNAP);

	int err = stitch_static_call_update_desc(sc, &not_code);
	CHECK_EQ(err, -STITCH_EINVAL);
	printf("non-executable target: %s\n", stitch_last_error());
	CHECK(memcmp(before, sc->tramp, SNAP) == 0, "trampoline unchanged after a non-code target");
	CHECK(stitch_static_call_query(op) == f_a, "target unchanged");
	/* its own trampoline: every call would loop */
	CHECK_EQ(stitch_static_call_update_desc(sc, sc->tramp), -STITCH_EINVAL);
	CHECK(stitch_static_call_query(op) == f_a, "target unchanged");
	/* and any byte inside it (accepted before 2026-11-28: +8 looped on
	 * x86-64, +1 ran the middle of an instruction) */
	size_t tsize = arch_static_call_tramp_size(sc);
	CHECK(tsize >= 16 && tsize < SNAP, "trampoline size %zu", tsize);
	for (size_t off = 1; off < tsize; off++) {
		err = stitch_static_call_update_desc(sc, (char *)sc->tramp + off);
		CHECK(err == -STITCH_EINVAL || err == -STITCH_EALIGN, "target tramp+%zu: %d", off, err);
	}
	printf("inside its trampoline: %s\n", stitch_last_error());
	CHECK(memcmp(before, sc->tramp, SNAP) == 0, "trampoline unchanged after targets inside it");
	CHECK(stitch_static_call_query(op) == f_a, "target unchanged");
	/* the last byte of the address space: its range must not wrap to 0 */
	err = stitch_static_call_update_desc(sc, (void *)UINTPTR_MAX);
	CHECK(err == -STITCH_EINVAL || err == -STITCH_EALIGN, "target ~0: %d (%s)", err, stitch_last_error());
	CHECK(memcmp(before, sc->tramp, SNAP) == 0, "trampoline unchanged after target ~0");
	CHECK(stitch_static_call_query(op) == f_a, "target unchanged");

#if !defined(__x86_64__)
	err = stitch_static_call_update_desc(sc, (char *)(uintptr_t)f_b + 1);
	CHECK_EQ(err, -STITCH_EALIGN);
	printf("misaligned target: %s\n", stitch_last_error());
	CHECK(memcmp(before, sc->tramp, SNAP) == 0, "trampoline unchanged after a misaligned target");
#endif

	struct stitch_static_call copy = *sc;
	err = stitch_static_call_update_desc(&copy, (void *)f_b);
	CHECK_EQ(err, -STITCH_ENOTFOUND);
	printf("unknown static call: %s\n", stitch_last_error());
	CHECK(memcmp(before, sc->tramp, SNAP) == 0, "trampoline unchanged after an unknown static call");

	/* Change a byte the library does not expect to change (the RET for NULL's literal). */
	uintptr_t ret = (uintptr_t)sc->tramp + STITCH__SC_RET_OFFSET;
	uint8_t saved = *(const uint8_t *)ret;
	tamper(ret, (uint8_t)(saved ^ 0x01));
	memcpy(before, sc->tramp, SNAP);
	err = stitch_static_call_update(op, f_b);
	CHECK_EQ(err, -STITCH_EMISMATCH);
	printf("trampoline changed behind our back: %s\n", stitch_last_error());
	memcpy(after, sc->tramp, SNAP);
	CHECK(memcmp(before, after, SNAP) == 0, "trampoline unchanged after a mismatch");
	CHECK(stitch_static_call_query(op) == f_a, "target unchanged after a mismatch");
	CHECK_EQ(stitch_static_call(op)(1), 2);
	tamper(ret, saved);
	CHECK_EQ(stitch_static_call_update(op, f_b), 0);
	CHECK_EQ(stitch_static_call(op)(1), 3);
}

/*
 * An inline site whose call became a tail jump to the same target behind
 * our back (one bit: e8 -> e9, BL -> B, JAL ra -> JAL zero) is refused,
 * and nothing is written.  Until 2026-11-28 the site's kind was read back
 * from the code at every update, so the jump was accepted and rewritten
 * as a jump to the new target: calls through it never returned to their
 * caller.
 */
static void test_inline_tampered(void)
{
#if defined(STITCH_TEST_INLINE)
	struct stitch_static_call *sc = stitch_static_call_desc(probe);
	CHECK(inline_site != 0, "test_inline found the site");
	if (!inline_site)
		return;
	CHECK_EQ(stitch_static_call_update_desc(sc, (void *)probe_a), 0);
#if defined(__x86_64__)
	unsigned off = 0, bit = 0x01, len = 5; /* call rel32 (e8) -> jmp rel32 (e9) */
#elif defined(__aarch64__)
	unsigned off = 3, bit = 0x80, len = 4; /* BL (100101) -> B (000101): bit 31 */
#else
	unsigned off = 0, bit = 0x80, len = 4; /* JAL ra -> JAL zero: rd's bit 0 */
#endif
	uint8_t saved = *(const uint8_t *)(inline_site + off);
	tamper(inline_site + off, (uint8_t)(saved ^ bit));
	uint8_t site_before[8], tramp_before[SNAP];
	memcpy(site_before, (const void *)inline_site, sizeof(site_before));
	memcpy(tramp_before, sc->tramp, SNAP);
	int err = stitch_static_call_update_desc(sc, (void *)probe_b);
	printf("call site made a tail jump behind our back: %d (%s)\n", err, stitch_last_error());
	CHECK_EQ(err, -STITCH_EMISMATCH);
	CHECK(memcmp(site_before, (const void *)inline_site, sizeof(site_before)) == 0, "site unchanged");
	CHECK(memcmp(tramp_before, sc->tramp, SNAP) == 0, "trampoline unchanged");
	CHECK(stitch_static_call_query(probe) == (void *)probe_a, "target unchanged");
	tamper(inline_site + off, saved);
	CHECK_EQ(stitch_static_call_update_desc(sc, (void *)probe_b), 0);
	probe_ra = NULL;
	call_probe();
	CHECK((uintptr_t)probe_ra == inline_site + len, "probe_b called from the site again");
#endif
}

/* Not under TSan, where the library cannot see a thread that blocks
 * SIGTRAP (batch.c) and the int3 protocol would run beside this one. */
#if defined(__SANITIZE_THREAD__)
#define TSAN_BUILD 1
#elif defined(__has_feature)
#if __has_feature(thread_sanitizer)
#define TSAN_BUILD 1
#endif
#endif
#if !defined(TSAN_BUILD) && (defined(__x86_64__) || (defined(__aarch64__) && defined(STITCH_STATIC_CALL_A64_SEED)))
#define TEST_REFUSED 1
#endif

#ifdef TEST_REFUSED
/*
 * A refused update sends no call anywhere new.  From a far target (calls go
 * through the literal) to a near one, with a thread that blocks every
 * signal and keeps calling: the int3 protocol cannot run beside it (it
 * blocks SIGTRAP) nor can the world be stopped (it blocks the quiescence
 * signal too), so the update is refused - and until 2026-11-28 the literal,
 * stored before the batch was refused, had sent nearly every call made
 * meanwhile to the refused target.
 */
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
static atomic_int caller_stop, caller_started;
static atomic_long calls_total, calls_refused;

static void *blocking_caller(void *arg)
{
	(void)arg;
	sigset_t all;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, NULL);
	atomic_store(&caller_started, 1);
	while (!atomic_load(&caller_stop)) {
		int r = stitch_static_call(op)(1);
		atomic_fetch_add_explicit(&calls_total, 1, memory_order_relaxed);
		if (r != 10) /* not far_op */
			atomic_fetch_add_explicit(&calls_refused, 1, memory_order_relaxed);
	}
	return NULL;
}

static void test_refused_update_diverts_nothing(void)
{
#if defined(__x86_64__)
	/* far -> near: the int3 protocol */
	int (*refused)(int) = f_b;
	CHECK_EQ(stitch_static_call_update(op, (int (*)(int))far_op), 0);
#else
	/* Seed (E) -> (D) for NULL: (E) reads the literal, (D)'s tail is
	 * written in a stopped world.  (E) is reached from (D): NULL, then a
	 * far target.  Until 2026-11-28 the literal (the RET for NULL) was
	 * stored before the stop was refused. */
	int (*refused)(int) = NULL;
	struct stitch_static_call *sc = stitch_static_call_desc(op);
	CHECK_EQ(stitch_static_call_update(op, NULL), 0);
	CHECK_EQ(stitch_static_call_update(op, (int (*)(int))far_op), 0);
	const uint32_t *w = sc->tramp;
	CHECK(w[1] == A64_NOP && w[4] == A64_NOP, "state (E), reading the literal: 0x04 %08x, 0x10 %08x", w[1], w[4]);
#endif
	CHECK_EQ(stitch_static_call(op)(1), 10);
	pthread_t t;
	CHECK_EQ(pthread_create(&t, NULL, blocking_caller, NULL), 0);
	while (!atomic_load(&caller_started))
		;
	int err = stitch_static_call_update(op, refused);
	long during = atomic_load(&calls_total);
	atomic_store(&caller_stop, 1);
	pthread_join(t, NULL);
	printf("refused update beside a thread blocking every signal: %d (%s); %ld calls meanwhile, %ld to the "
	       "refused target\n", err, stitch_last_error(), during, atomic_load(&calls_refused));
	CHECK_EQ(err, -STITCH_EQUIESCE);
	CHECK(stitch_static_call_query(op) == (void *)far_op, "target unchanged after the refusal");
	CHECK(atomic_load(&calls_refused) == 0, "%ld calls reached the refused target", atomic_load(&calls_refused));
	CHECK_EQ(stitch_static_call(op)(1), 10);
	CHECK_EQ(stitch_static_call_update(op, f_a), 0);
}
#endif

int main(void)
{
	if (stitch_init() != 0) {
		fprintf(stderr, "stitch_init: %s\n", stitch_last_error());
		return 1;
	}
	if (make_targets() != 0)
		return 1;
	printf("layout %u, trampoline %p, mid %p, far %p\n", stitch_static_call_desc(op)->layout,
	       stitch_static_call_desc(op)->tramp, mid_c, far_v);
	test_basic();
	test_sequences(seq_a, "(A)");
	test_sequences(seq_b, "(B)");
	test_errors();
#ifdef TEST_REFUSED
	test_refused_update_diverts_nothing();
#endif
	test_inline();
	test_inline_tampered();
	struct stitch_stats st;
	stitch_get_stats(&st);
	printf("batches %lu, syncs %lu, quiesce rounds %lu\n", (unsigned long)st.batches, (unsigned long)st.syncs,
	       (unsigned long)st.quiesce_rounds);
	return check_summary("test_static_call");
}
