/* SPDX-License-Identifier: MIT */
/*
 * x86-64 static-call trampolines.
 *
 * The trampoline (16 bytes, 16-aligned, emitted by
 * include/stitch/arch/static_call.h), called directly by the program:
 *
 *            NEAR               NULL               FAR
 *   +0   e9 rel32 target    0f 1f 44 00 00     e9 03 00 00 00  (jmp +8)
 *   +5   c3  ret            c3                 c3
 *   +6   cc cc
 *   +8   ff 25 rel32        jmp *lit(%rip)     (lit = descriptor's first field)
 *   +14  cc cc
 *
 * Only the 5 bytes at +0 are ever rewritten, always as one instruction by
 * another of the same length (jmp rel32 / nop5 / jmp rel32), which is
 * exactly what the int3 protocol of poke.c applies (steps 1-3 there, three
 * syncs, the SIGTRAP handler emulates the new jmp or nop).  NULL is `nop5`
 * falling into the `ret` at +5: the kernel writes `ret` over the jmp, but
 * a 1-byte instruction replacing a 5-byte one is not one instruction
 * replaced by another of the same length, and the nop costs nothing next
 * to the call.
 *
 * Far targets (more than +-2 GiB from +5): a jmp rel32 cannot reach them,
 * so +0 becomes `jmp +8`, and +8 jumps through the 64-bit literal.  We
 * chose a literal over a per-target near thunk because a thunk would have
 * to be allocated within 2 GiB of the trampoline, written, and freed only
 * after a grace period; the literal is one aligned 8-byte data store
 * (single-copy atomic), and lives in the descriptor (.data), so the
 * emitted code needs no text relocation in PIE or shared objects.
 *
 * An update to target T (lit := T, or the RET at +5 for NULL):
 *   step 1  to a far T: lit := T (release store; +0 unchanged)
 *   step 2  +0 := the form for T, by the int3 protocol (if it changes)
 *   step 3  to a near or NULL T: lit := T
 * Threads during the update: a thread that already took +0's old form
 * is either in the old target (fine) or at +8 about to load lit: it loads
 * the old or the new literal, both current at some moment of the update.
 * A thread entering at +0 executes old +0, int3 (emulated as new +0), or
 * new +0; a new far +0 finds the new literal (step 1 came first).  A
 * thread at +8 never finds lit NULL: NULL is the `ret` at +5.  After step
 * 2's last sync every call that starts runs new +0 and (far) the new
 * literal.  Why the literal goes last for a near or NULL target, which
 * never reads it: a batch refused at step 2 (a site changed behind our
 * back, a thread blocking SIGTRAP that cannot be stopped either) must
 * leave the calls going where they went - stored first, it sent every
 * call through a far +0 to the refused target until it was put back (a
 * probe on 2026-11-28: 29.7 of 30.3 million calls during five refused
 * updates).  To a far target the literal must come first; a refusal then
 * comes before any code is written, and until then only a thread parked
 * at +8 since an earlier far period could load it.
 *
 * Inline call sites (found by src/core/static_call.c in the module's
 * relocations): `call tramp` (e8 rel32; or a tail `jmp tramp`) becomes
 * `call target` while the target is within rel32 of the site, and goes
 * back to `call tramp` for NULL and far targets (the trampoline handles
 * them).  Each site is one 5-byte instruction replaced by another of the
 * same length, so the sites join the trampoline's +0 in the same batch:
 * one run of the int3 protocol (3 syncs) for the trampoline and all its
 * sites; the SIGTRAP handler emulates the new call (push, go).  A thread
 * that already executed the old call is in the old target or the
 * trampoline, both current until step 2's last sync.
 * Model: models/static-call-x86.model (+ mutant static-call-x86-nosync1).
 */
#include <stdbool.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/x86_64/insn.h"
#include "stitch/static_call.h"

#define TRAMP_LEN 16
#define FAR_PATH 8

enum { ST_FAR = 0, ST_NEAR = 1, ST_NULL = 2 };

static void image(const struct stitch_static_call *sc, uint32_t state, uint64_t near, uint8_t out[TRAMP_LEN])
{
	uintptr_t t = (uintptr_t)sc->tramp;
	memset(out, 0xcc, TRAMP_LEN);
	if (state == ST_NEAR)
		x86_encode_jmp_rel32(out, t, near);
	else if (state == ST_NULL)
		x86_encode_nop(out, 5);
	else
		x86_encode_jmp_rel32(out, t, t + FAR_PATH);
	out[5] = X86_RET;
	out[8] = 0xff;
	out[9] = 0x25;
	int32_t rel = (int32_t)((intptr_t)&sc->lit - (intptr_t)(t + 14));
	memcpy(out + 10, &rel, 4);
}

/* Compare the trampoline with the image of its recorded state. */
static int check_image(const struct stitch_static_call *sc, const uint8_t want[TRAMP_LEN], const char *what)
{
	if (memcmp(sc->tramp, want, TRAMP_LEN) == 0)
		return 0;
	char a[3 * TRAMP_LEN + 1], b[3 * TRAMP_LEN + 1];
	return stitch_fail(what ? STITCH_EUNKNOWN : STITCH_EMISMATCH,
			   "static call %s: trampoline %p %s: expected %s, found %s", sc->name, sc->tramp,
			   what ? what : "was changed behind stitch's back", stitch_hex(a, want, TRAMP_LEN),
			   stitch_hex(b, (const uint8_t *)sc->tramp, TRAMP_LEN));
}

int arch_static_call_register(struct stitch_static_call *sc)
{
	uint8_t want[TRAMP_LEN];
	if (sc->layout != STITCH_SC_X86 || (uintptr_t)sc->tramp % 16 != 0)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: layout %u at %p is not x86-64's", sc->name,
				   sc->layout, sc->tramp);
	image(sc, ST_FAR, 0, want);
	int err = check_image(sc, want, "is not what STITCH_DEFINE_STATIC_CALL emits");
	if (err)
		return err;
	sc->state = ST_FAR;
	sc->priv[0] = 0;
	return 0;
}

size_t arch_static_call_tramp_size(const struct stitch_static_call *sc)
{
	(void)sc;
	return TRAMP_LEN;
}

int arch_check_branch_target(uintptr_t target, const char *what)
{
	(void)target, (void)what; /* any byte address can start an instruction */
	return 0;
}

/* ---- inline call sites ---------------------------------------------------- */

bool arch_static_call_reloc_site(uint32_t type, int64_t addend, uintptr_t where, uintptr_t *site)
{
	/* R_X86_64_PC32 (2) / R_X86_64_PLT32 (4) on the rel32 of a call or jmp:
	 * the opcode byte precedes it (checked by arch_static_call_site_check). */
	if ((type != 2 && type != 4) || addend != -4)
		return false;
	*site = where - 1;
	return true;
}

int arch_static_call_site_check(const struct stitch_static_call *sc, uintptr_t site, uint32_t *kind)
{
	struct x86_insn i;
	const uint8_t *p = (const uint8_t *)site;
	if ((p[0] != X86_CALL_REL32 && p[0] != X86_JMP_REL32) || x86_decode(p, 5, site, &i) != 0 ||
	    i.target != (uintptr_t)sc->tramp)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: %#lx is not a call or jmp of its trampoline",
				   sc->name, (unsigned long)site);
	*kind = p[0];
	return 0;
}

/* The bytes of a site calling (or tail-jumping to) `target`. */
static int site_bytes(uintptr_t site, uint8_t opcode, uintptr_t target, uint8_t out[5])
{
	return opcode == X86_CALL_REL32 ? x86_encode_call_rel32(out, site, target)
					: x86_encode_jmp_rel32(out, site, target);
}

int arch_static_call_update(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t nsites)
{
	uintptr_t t = (uintptr_t)sc->tramp, target = (uintptr_t)func;
	uint8_t cur[TRAMP_LEN], next[TRAMP_LEN];
	image(sc, sc->state, sc->priv[0], cur);
	int err = check_image(sc, cur, NULL);
	if (err)
		return err;
	uint32_t state;
	if (!func)
		state = ST_NULL;
	else if (x86_encode_jmp_rel32(next, t, target) == 0)
		state = ST_NEAR;
	else
		state = ST_FAR;
	image(sc, state, target, next);
	struct stitch_batch b;
	stitch_batch_init(&b);
	b.operation = "static_call update";
	if (memcmp(cur, next, 5) != 0)
		err = stitch_batch_add(&b, t, cur, next, 5);
	/* Inline sites: call the target directly when it is in rel32 range,
	 * the trampoline otherwise (far and NULL). */
	for (size_t i = 0; i < nsites && !err; i++) {
		uint8_t op = (uint8_t)sites[i].kind, o[5], n[5];
		uintptr_t want = func && site_bytes(sites[i].addr, op, target, n) == 0 ? target : t;
		if (site_bytes(sites[i].addr, op, sites[i].target, o) != 0 || site_bytes(sites[i].addr, op, want, n) != 0)
			err = stitch_fail(STITCH_EUNKNOWN, "static call %s: bad site %#lx", sc->name,
					  (unsigned long)sites[i].addr);
		else if (memcmp(o, n, 5) != 0)
			err = stitch_batch_add(&b, sites[i].addr, o, n, 5);
	}
	/* step 1: only for a far target, whose +0 reads the literal */
	void *old_lit = __atomic_load_n(&sc->lit, __ATOMIC_RELAXED);
	void *new_lit = func ? func : (void *)(t + 5);
	bool lit_first = state == ST_FAR;
	if (!err && lit_first)
		__atomic_store_n(&sc->lit, new_lit, __ATOMIC_SEQ_CST);
	/* step 2: trampoline and sites in one batch, one int3 protocol (3 syncs) */
	if (!err && b.count)
		err = stitch_batch_apply_locked(&b);
	stitch_batch_free(&b);
	if (err) {
		/* No code was changed (the batch checks every site first and rolls
		 * back a failed write); put the literal back too. */
		if (lit_first)
			__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
		return err;
	}
	if (!lit_first) /* step 3 */
		__atomic_store_n(&sc->lit, new_lit, __ATOMIC_SEQ_CST);
	for (size_t i = 0; i < nsites; i++) {
		uint8_t n[5];
		sites[i].target = func && site_bytes(sites[i].addr, (uint8_t)sites[i].kind, target, n) == 0
					  ? target
					  : t;
	}
	sc->state = state;
	sc->priv[0] = state == ST_NEAR ? target : 0;
	return 0;
}
