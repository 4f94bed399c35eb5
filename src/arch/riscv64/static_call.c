/* SPDX-License-Identifier: MIT */
/*
 * RISC-V 64 static-call trampolines.
 *
 * The trampoline (20 bytes, 16-aligned, .option norvc/norelax, emitted by
 * include/stitch/arch/static_call.h), called directly (`call` = auipc ra +
 * jalr ra, or jal ra) by the program:
 *
 *            NEAR               NULL               FAR
 *   0x00  jal zero, target   jal zero, 0x10     nop
 *   0x04  auipc t1, %pcrel_hi(lit)
 *   0x08  ld    t1, %pcrel_lo(lit)(t1)
 *   0x0c  jr    t1
 *   0x10  ret
 *
 * The principle is the one of poke.c: the only instruction ever rewritten
 * is the word at 0x00, naturally aligned, replaced by one aligned 32-bit
 * store, so with Ziccif every hart fetches the old or the new word, never
 * a mix.  The auipc/ld pair is written once by the assembler and never
 * changes: far targets only change the 64-bit literal, which is data (an
 * aligned 8-byte store is single-copy atomic), so seed 004's torn
 * "AUIPC', JALR" pairs cannot arise.  t1 is a temporary the callee may
 * clobber anyway, and ra is untouched, so the target returns to the
 * caller.  NULL is `j 0x10` (always in range) rather than the literal
 * path: two instructions instead of four.
 *
 * An update to target T (lit := T, or the RET at 0x10 for NULL):
 *   step 1  to a far T: lit := T (seq_cst store)
 *   step 2  word 0 := nop | jal T | j 0x10, one aligned store (poke.c), sync
 *   step 3  to a near or NULL T: lit := T (a refused step 2 must leave
 *           the calls where they went; x86-64's static_call.c says more)
 * A thread stopped at 0x04..0x0c took the literal path when word 0 was a
 * nop (FAR); it loads the old or the new literal, both current at some
 * moment of the update; one at 0x10 returns, which it was doing already.
 * The literal is never NULL (NULL is the RET at 0x10), so a stale
 * literal path can never jump to 0.  Near = jal range (+-1 MiB) from 0x00.
 * Inline `jal ra` call sites: see "inline call sites" below.
 * Model: models/static-call-riscv.model (+ mutant static-call-riscv-null-
 * literal: NULL as a literal of 0 sends a thread on the literal path to 0).
 */
#include <stdbool.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/riscv64/insn.h"
#include "stitch/static_call.h"

#define TRAMP_LEN 20
#define RV_RET 0x00008067u   /* jalr zero, 0(ra) */
#define RV_JR_T1 0x00030067u /* jalr zero, 0(t1) */

enum { ST_FAR = 0, ST_NEAR = 1, ST_NULL = 2 };

static int image(const struct stitch_static_call *sc, uint32_t state, uint64_t near, uint8_t out[TRAMP_LEN])
{
	uintptr_t t = (uintptr_t)sc->tramp;
	uint32_t w[5];
	int32_t hi, lo;
	int err = rv_split_pcrel((int64_t)((uintptr_t)&sc->lit - (t + 4)), &hi, &lo);
	if (err)
		return err;
	w[0] = RV_NOP;
	if (state == ST_NEAR)
		err = rv_encode_jal(&w[0], RV_REG_ZERO, t, near);
	else if (state == ST_NULL)
		err = rv_encode_jal(&w[0], RV_REG_ZERO, t, t + 0x10);
	if (!err)
		err = rv_encode_auipc(&w[1], RV_REG_T1, hi);
	if (!err)
		err = rv_encode_ld(&w[2], RV_REG_T1, RV_REG_T1, lo);
	w[3] = RV_JR_T1;
	w[4] = RV_RET;
	for (int i = 0; i < 5; i++)
		rv_put32(out + 4 * i, w[i]);
	return err;
}

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

size_t arch_static_call_tramp_size(const struct stitch_static_call *sc)
{
	(void)sc;
	return TRAMP_LEN;
}

int arch_static_call_register(struct stitch_static_call *sc)
{
	uint8_t want[TRAMP_LEN];
	if (sc->layout != STITCH_SC_RV || (uintptr_t)sc->tramp % 16 != 0)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: layout %u at %p is not RISC-V's", sc->name,
				   sc->layout, sc->tramp);
	if (image(sc, ST_FAR, 0, want) != 0)
		return stitch_fail(STITCH_ERANGE, "static call %s: descriptor out of auipc range", sc->name);
	int err = check_image(sc, want, "is not what STITCH_DEFINE_STATIC_CALL emits");
	if (err)
		return err;
	sc->state = ST_FAR;
	sc->priv[0] = 0;
	return 0;
}

int arch_check_branch_target(uintptr_t target, const char *what)
{
#if defined(__riscv_compressed)
	const uintptr_t align = 2;
#else
	const uintptr_t align = 4;
#endif
	if (target % align != 0)
		return stitch_fail(STITCH_EALIGN, "%s %#lx is not %lu-byte aligned", what, (unsigned long)target,
				   (unsigned long)align);
	return 0;
}

/* ---- inline call sites ---------------------------------------------------- */

/*
 * With -Wl,--emit-relocs and linker relaxation, a `call tramp` within
 * 1 MiB was relaxed to `jal ra, tramp` (R_RISCV_JAL); an unrelaxed
 * `auipc ra; jalr ra` pair (R_RISCV_CALL_PLT) is two instructions and is
 * left alone, as is a `jal` at 2 mod 4 (it could be fetched torn).  A site
 * is one aligned word, `jal ra, tramp` <-> `jal ra, target`, stored in one
 * batch after the trampoline reached its new state, like the static-key
 * sites of jump_label.c; sites are checked before anything is written.
 */
bool arch_static_call_reloc_site(uint32_t type, int64_t addend, uintptr_t where, uintptr_t *site)
{
	if (type != 17 /* R_RISCV_JAL */ || addend != 0)
		return false;
	*site = where;
	return true;
}

int arch_static_call_site_check(const struct stitch_static_call *sc, uintptr_t site, uint32_t *kind)
{
	struct rv_insn i;
	if (site % 4 != 0 || rv_decode((const uint8_t *)site, 4, site, &i) != 0 || i.kind != RV_INSN_JAL ||
	    (i.rd != RV_REG_RA && i.rd != RV_REG_ZERO) || i.target != (uintptr_t)sc->tramp)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: %#lx is not an aligned jal of its trampoline",
				   sc->name, (unsigned long)site);
	memcpy(kind, (const void *)site, 4);
	return 0;
}

/* The site's JAL (its link register: as registered) to `target`. */
static int site_word(uintptr_t site, uint32_t kind, uintptr_t target, uint32_t *out)
{
	return rv_encode_jal(out, (kind >> 7) & 31, site, target);
}

static int sites_check(const struct stitch_static_call *sc, const struct stitch_sc_site *sites, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t now, want;
		memcpy(&now, (const void *)sites[i].addr, 4);
		if (site_word(sites[i].addr, sites[i].kind, sites[i].target, &want) != 0 || want != now)
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
	for (size_t i = 0; i < n && !err; i++) {
		uint32_t now, w;
		memcpy(&now, (const void *)sites[i].addr, 4);
		uintptr_t next = func && site_word(sites[i].addr, sites[i].kind, (uintptr_t)func, &w) == 0
					 ? (uintptr_t)func
					 : (uintptr_t)sc->tramp;
		err = site_word(sites[i].addr, sites[i].kind, next, &w);
		if (!err && w != now)
			err = stitch_batch_add(&b, sites[i].addr, (const uint8_t *)&now, (const uint8_t *)&w, 4);
	}
	if (!err && b.count)
		err = stitch_batch_apply_locked(&b);
	for (size_t i = 0; i < n && !err; i++) {
		uint32_t now;
		memcpy(&now, (const void *)sites[i].addr, 4);
		struct rv_insn d;
		if (rv_decode((const uint8_t *)&now, 4, sites[i].addr, &d) == 0)
			sites[i].target = d.target;
	}
	stitch_batch_free(&b);
	return err;
}

static int tramp_update(struct stitch_static_call *sc, void *func);

int arch_static_call_update(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t nsites)
{
	int err = sites_check(sc, sites, nsites); /* before anything is written */
	if (!err)
		err = tramp_update(sc, func);
	if (!err && nsites) {
		err = sites_apply(sc, func, sites, nsites); /* all sites or none */
		if (err) {
			/* The sites could not follow (out of memory, say): put the
			 * trampoline back to the current target (sc->func is not
			 * updated yet), so that a failed update changed nothing. */
			int rerr = tramp_update(sc, __atomic_load_n(&sc->func, __ATOMIC_ACQUIRE));
			if (rerr)
				err = rerr;
		}
	}
	return err;
}

static int tramp_update(struct stitch_static_call *sc, void *func)
{
	uintptr_t t = (uintptr_t)sc->tramp, target = (uintptr_t)func;
	uint8_t cur[TRAMP_LEN], next[TRAMP_LEN];
	if (image(sc, sc->state, sc->priv[0], cur) != 0)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: bad recorded state", sc->name);
	int err = check_image(sc, cur, NULL);
	if (err)
		return err;
	uint32_t jal, state = ST_FAR;
	if (!func)
		state = ST_NULL;
	else if (rv_encode_jal(&jal, RV_REG_ZERO, t, target) == 0)
		state = ST_NEAR;
	if (image(sc, state, target, next) != 0)
		return stitch_fail(STITCH_EUNKNOWN, "static call %s: cannot encode the trampoline", sc->name);
	/* step 1, for a far target only (as on x86-64, static_call.c there
	 * says why): a refused step 2 must not have sent calls anywhere new */
	void *old_lit = __atomic_load_n(&sc->lit, __ATOMIC_RELAXED);
	void *new_lit = func ? func : (void *)(t + 0x10);
	bool lit_first = state == ST_FAR;
	if (lit_first)
		__atomic_store_n(&sc->lit, new_lit, __ATOMIC_SEQ_CST);
	/* step 2 */
	if (memcmp(cur, next, 4) != 0) {
		struct stitch_patch p;
		stitch_patch_init(&p, t, cur, next, 4);
		err = stitch_apply_patches_locked(&p, 1, "static_call update");
		if (err) {
			if (lit_first)
				__atomic_store_n(&sc->lit, old_lit, __ATOMIC_SEQ_CST);
			return err;
		}
	}
	if (!lit_first) /* step 3 */
		__atomic_store_n(&sc->lit, new_lit, __ATOMIC_SEQ_CST);
	sc->state = state;
	sc->priv[0] = state == ST_NEAR ? target : 0;
	return 0;
}
