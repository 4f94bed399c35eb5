/* SPDX-License-Identifier: MIT */
/*
 * AArch64 function-entry sites: the kernel's CALL_OPS layout.
 *
 *   -fpatchable-function-entry=4,2 -falign-functions=8 (gcc 12, clang 14):
 *   the record points at func-8; func is 8-aligned, so the literal is too.
 *
 *                 compiler           prepared, off        prepared, on
 *     func-8:     nop  \             .quad record   \     .quad record     (literal: data)
 *     func-4:     nop  /                            /
 *     func+0:     nop                mov x9, x30          mov x9, x30      (written once)
 *     func+4:     nop                nop                  bl region        (toggled)
 *     func+8:     ...body
 *
 *   region (within BL range, +-128 MiB, of the module's text; RX before use):
 *     +0   ldr x16, +8 ; br x16 ; .quad stitch__ftrace_tramp_a64
 *   The trampoline finds the record in the literal at x30-16, saves x0-x9,
 *   x29, x30 and q0-q7, calls stitch__ftrace_dispatch(record, x9 = the
 *   function's return address, regs), restores, then returns to func+8
 *   with x30 = x9: the function runs as if the site were NOPs.  x9 and x16
 *   are scratch at a function's entry (AAPCS64: temporaries, not argument
 *   registers), which is why the compiler's NOP can become MOV X9, X30.
 *
 * Protocols:
 *   A. Prepared sites: NOP <-> BL at func+4 is a CMODX pair (Arm ARM
 *      B2.2.5: both are on the list), so poke.c stores the word and syncs
 *      (one batch, patch-logged): a thread executes the old or the new one.
 *      models/aarch64-static-key.model covers the same NOP <-> branch swap.
 *   B. First enable of a site: the literal and MOV X9, X30 must be written
 *      too, and MOV is not a CMODX instruction, so the world is stopped:
 *      1. stop (every other thread parked at an instruction boundary);
 *         the park handler moves a thread found at func+4 back to func+0,
 *         so that it runs the MOV before the BL (seed 004's "replay"): it
 *         executed the compiler's NOP at func+0, not the MOV, and would
 *         otherwise enter the trampoline with a stale x9 as its return
 *         address.  Re-running a NOP is harmless.
 *      2. store literal (one aligned 8-byte store), MOV, BL
 *      3. sync (cache maintenance + membarrier SYNC_CORE), resume.
 *      models/ftrace-a64-call-ops-prepare.model.
 *   Disabling only puts the NOP back at func+4; the literal and the MOV
 *   stay (the kernel does the same): func+4 holds the compiler's word.
 *   Every site is compared with the words of the state the core believes
 *   it is in before anything is written.
 */
#include <stdlib.h>
#include <string.h>

#include "arch/aarch64/insn.h"
#include "arch/arch.h"
#include "stitch/ftrace.h"

#define FORM_CALL_OPS 1
#define PREPARED 0x80

struct stitch_ftrace_regs {
	uint64_t x[10]; /* x0..x9 */
	uint64_t fp, lr;
	uint8_t q[8][16];
};

uintptr_t stitch_ftrace_regs_arg(const struct stitch_ftrace_regs *regs, unsigned n)
{
	return regs && n < 8 ? regs->x[n] : 0;
}

void stitch__ftrace_tramp_a64(void);
__asm__(".text\n"
	".p2align 3\n"
	".globl stitch__ftrace_tramp_a64\n"
	".hidden stitch__ftrace_tramp_a64\n"
	".type stitch__ftrace_tramp_a64, %function\n"
	"stitch__ftrace_tramp_a64:\n"
	"	hint #34\n" /* BTI C: reached by BR X16 */
	"	ldur x16, [x30, #-16]\n" /* the record */
	"	ldr x17, [x16]\n"        /* its direct call (stitch/ftrace.h, ops->direct) */
	"	cbnz x17, 1f\n"
	"	sub sp, sp, #224\n"
	"	stp x0, x1, [sp, #0]\n"
	"	stp x2, x3, [sp, #16]\n"
	"	stp x4, x5, [sp, #32]\n"
	"	stp x6, x7, [sp, #48]\n"
	"	stp x8, x9, [sp, #64]\n"
	"	stp x29, x30, [sp, #80]\n"
	"	stp q0, q1, [sp, #96]\n"
	"	stp q2, q3, [sp, #128]\n"
	"	stp q4, q5, [sp, #160]\n"
	"	stp q6, q7, [sp, #192]\n"
	"	add x29, sp, #80\n"
	"	mov x0, x16\n" /* the record, from the literal at func-8 */
	"	mov x1, x9\n"           /* parent ip */
	"	mov x2, sp\n"           /* regs */
	"	bl stitch__ftrace_dispatch\n"
	"	ldp x0, x1, [sp, #0]\n"
	"	ldp x2, x3, [sp, #16]\n"
	"	ldp x4, x5, [sp, #32]\n"
	"	ldp x6, x7, [sp, #48]\n"
	"	ldp x8, x9, [sp, #64]\n"
	"	ldp x29, x30, [sp, #80]\n"
	"	ldp q0, q1, [sp, #96]\n"
	"	ldp q2, q3, [sp, #128]\n"
	"	ldp q4, q5, [sp, #160]\n"
	"	ldp q6, q7, [sp, #192]\n"
	"	add sp, sp, #224\n"
	"	mov x16, x30\n" /* func+8 */
	"	mov x30, x9\n"  /* the function's own return address */
	"	ret x16\n"
	"1:	br x17\n"
	".size stitch__ftrace_tramp_a64, . - stitch__ftrace_tramp_a64\n"
	".globl stitch__ftrace_tramp_a64_end\n"
	".hidden stitch__ftrace_tramp_a64_end\n"
	"stitch__ftrace_tramp_a64_end:\n");

/*
 * function_graph (src/core/ftrace.c): the function's return address is x9
 * in the entry trampoline, saved at regs->x[9] and restored into x30 on
 * the way back into the function; the function returns with the stack
 * pointer it was entered with, the trampoline's before its 224 bytes.  The
 * return trampoline is entered by the function's RET (not a BTI target);
 * it keeps x0-x7 and q0-q3 (AAPCS64 result registers: integers and
 * composites in x0-x7, HFA/HVA in v0-v3) and returns through x16, which
 * is scratch at a return.
 */
struct stitch_ftrace_ret_regs {
	uint64_t x[8];
	uint8_t q[4][16];
};

uintptr_t stitch_ftrace_ret_value(const struct stitch_ftrace_ret_regs *rregs)
{
	return rregs ? rregs->x[0] : 0;
}

uintptr_t *arch_ftrace_parent_slot(struct stitch_ftrace_regs *regs, uintptr_t *key)
{
	*key = (uintptr_t)regs + 224;
	return (uintptr_t *)&regs->x[9];
}

__asm__(".text\n"
	".p2align 3\n"
	".globl stitch__ftrace_return\n"
	".hidden stitch__ftrace_return\n"
	".type stitch__ftrace_return, %function\n"
	"stitch__ftrace_return:\n"
	"	sub sp, sp, #144\n"
	"	stp x0, x1, [sp, #0]\n"
	"	stp x2, x3, [sp, #16]\n"
	"	stp x4, x5, [sp, #32]\n"
	"	stp x6, x7, [sp, #48]\n"
	"	stp q0, q1, [sp, #64]\n"
	"	stp q2, q3, [sp, #96]\n"
	"	stp x29, x30, [sp, #128]\n"
	"	add x29, sp, #128\n"
	"	add x0, sp, #144\n" /* key: the stack pointer the function returned with */
	"	mov x1, sp\n"       /* ret regs */
	"	bl stitch__ftrace_graph_return\n"
	"	mov x16, x0\n"
	"	ldp x0, x1, [sp, #0]\n"
	"	ldp x2, x3, [sp, #16]\n"
	"	ldp x4, x5, [sp, #32]\n"
	"	ldp x6, x7, [sp, #48]\n"
	"	ldp q0, q1, [sp, #64]\n"
	"	ldp q2, q3, [sp, #96]\n"
	"	ldp x29, x30, [sp, #128]\n"
	"	add sp, sp, #144\n"
	"	mov x30, x16\n"
	"	ret x16\n"
	".size stitch__ftrace_return, . - stitch__ftrace_return\n");


void arch_ftrace_tramp_range(uintptr_t *start, uintptr_t *end)
{
	extern const char stitch__ftrace_tramp_a64_end[];
	*start = (uintptr_t)stitch__ftrace_tramp_a64;
	*end = (uintptr_t)stitch__ftrace_tramp_a64_end;
}

uintptr_t arch_ftrace_reach(void)
{
	return (uintptr_t)A64_B_RANGE - (1u << 20);
}

size_t arch_ftrace_region_size(size_t nsites)
{
	(void)nsites;
	return 16;
}

int arch_ftrace_site_init(struct arch_ftrace_site *s)
{
	uintptr_t r = s->record;
	uint32_t w[4];
	memcpy(w, (const void *)r, sizeof(w));
	s->patch = r + 12;
	s->len = 4;
	memcpy(s->orig, &w[3], 4);
	if (w[0] != A64_NOP || w[1] != A64_NOP || w[2] != A64_NOP || w[3] != A64_NOP)
		return stitch_fail(STITCH_EUNKNOWN,
				   "site %#lx: expected four NOPs (-fpatchable-function-entry=4,2), found %08x %08x %08x "
				   "%08x",
				   (unsigned long)r, w[0], w[1], w[2], w[3]);
	if (r % 8 != 0)
		return stitch_fail(STITCH_EALIGN,
				   "site %#lx: the ops literal before the function is not 8-byte aligned, so it "
				   "cannot be stored atomically (build with -falign-functions=8)",
				   (unsigned long)r);
	s->form = FORM_CALL_OPS;
	return 0;
}

int arch_ftrace_region_fill(uint8_t *buf, uintptr_t addr, struct arch_ftrace_site *const *sites,
			    const uintptr_t *cookies, size_t n)
{
	uint32_t ldr = 0, br = 0;
	uint64_t tramp = (uint64_t)(uintptr_t)stitch__ftrace_tramp_a64;
	if (a64_encode_ldr_literal(&ldr, A64_REG_IP0, addr, addr + 8) || a64_encode_br(&br, A64_REG_IP0))
		return stitch_fail(STITCH_EINVAL, "cannot encode the trampoline veneer");
	memcpy(buf, &ldr, 4);
	memcpy(buf + 4, &br, 4);
	memcpy(buf + 8, &tramp, 8);
	for (size_t i = 0; i < n; i++) {
		sites[i]->stub = addr;
		sites[i]->cookie = cookies[i];
	}
	return 0;
}

bool arch_ftrace_site_lost(const struct arch_ftrace_site *s, bool enabled)
{
	uint64_t lit;
	(void)enabled;
	memcpy(&lit, (const void *)s->record, 8);
	return (s->form & PREPARED) && lit != s->cookie;
}

/* ---- applying --------------------------------------------------------------- */

struct replay {
	const uintptr_t *patch; /* func+4 of the sites being prepared, sorted */
	size_t count;
};

/* Async-signal-safe: a thread at func+4 of a site being prepared goes back to func+0. */
static bool replay_mov(uintptr_t *pc, void *arg)
{
	const struct replay *r = arg;
	size_t lo = 0, hi = r->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->patch[mid] == *pc) {
			*pc -= 4;
			return true;
		}
		if (r->patch[mid] < *pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	return false;
}

/* A never prepared site's writes besides the toggled word, into p[0..2):
 * the literal over the two NOPs before the function, MOV X9, X30 over
 * the NOP at func+0.  Returns 2. */
static size_t prepare_patches(const struct arch_ftrace_site *s, struct stitch_patch *p)
{
	const uint32_t nop = A64_NOP;
	uint32_t mov = 0;
	a64_encode_mov_reg(&mov, 9, A64_REG_LR);
	uint64_t lit = s->cookie, nops = ((uint64_t)A64_NOP << 32) | A64_NOP;
	stitch_patch_init(&p[0], s->record, &nops, &lit, 8);
	p[0].data = true;
	stitch_patch_init(&p[1], s->record + 8, &nop, &mov, 4);
	return 2;
}

int arch_ftrace_apply(struct arch_ftrace_site *const *sites, bool *enabled, const bool *enable, size_t n)
{
	const uint32_t nop = A64_NOP;
	uint32_t mov = 0;
	a64_encode_mov_reg(&mov, 9, A64_REG_LR);
	size_t cap = 3 * (n ? n : 1);
	struct stitch_patch *p = calloc(cap, sizeof(*p));
	uintptr_t *prep = calloc(n ? n : 1, sizeof(*prep));
	bool *prepping = calloc(n ? n : 1, sizeof(*prepping));
	struct replay rp = { prep, 0 };
	size_t np = 0;
	int err = (!p || !prep || !prepping) ? stitch_fail(STITCH_ENOMEM, "out of memory switching %zu sites", n) : 0;
	for (size_t i = 0; i < n && !err; i++) {
		const struct arch_ftrace_site *s = sites[i];
		uint32_t bl;
		if (enabled[i] == enable[i])
			continue;
		if (a64_encode_bl(&bl, s->patch, s->stub) != 0) {
			err = stitch_fail(STITCH_ERANGE, "site %#lx: trampoline %#lx is out of BL range",
					  (unsigned long)s->patch, (unsigned long)s->stub);
			break;
		}
		if ((s->form & PREPARED) && (arch_ftrace_site_lost(s, enabled[i]) ||
					     memcmp((const void *)(s->record + 8), &mov, 4) != 0)) {
			err = stitch_fail(STITCH_EMISMATCH,
					  "site %#lx: the literal or MOV X9, X30 written at its first enable is gone; "
					  "nothing written",
					  (unsigned long)s->record);
			break;
		}
		if (!(s->form & PREPARED)) {
			/* only reached when enabling: a disabled, never prepared site */
			np += prepare_patches(s, &p[np]);
			prep[rp.count++] = s->patch;
			prepping[i] = true;
		}
		stitch_patch_init(&p[np++], s->patch, enabled[i] ? (const void *)&bl : (const void *)&nop,
			  enable[i] ? (const void *)&bl : (const void *)&nop, 4);
	}
	bool written = false;
	if (!err && np) {
		if (rp.count == 0) {
			/* Protocol A: CMODX words through poke.c (compares every site first). */
			err = stitch_apply_patches_locked(p, np, "ftrace switch");
			written = !err;
		} else {
			stitch_sort_uintptr(prep, rp.count);
			err = stitch_apply_stopped(p, np, replay_mov, (void *)&rp, &written);
		}
	}
	for (size_t i = 0; written && i < n; i++) {
		if (prepping[i])
			sites[i]->form |= PREPARED;
		enabled[i] = enable[i];
	}
	free(p);
	free(prep);
	free(prepping);
	return err;
}

/*
 * stitch_ftrace_prepare(): the first enable's stopped world without the
 * BL: the literal and MOV X9, X30 are written, func+4 stays a NOP (a
 * thread at func+4 is replayed from func+0 as in the first enable; it
 * runs the MOV, harmless: x9 is a scratch register at the entry).  Later
 * enables of these sites are protocol A.
 */
int arch_ftrace_prepare(struct arch_ftrace_site *const *sites, size_t n)
{
	struct stitch_patch *p = calloc(2 * (n ? n : 1), sizeof(*p));
	uintptr_t *prep = calloc(n ? n : 1, sizeof(*prep));
	struct replay rp = { prep, 0 };
	size_t np = 0;
	bool written = false;
	int err = (!p || !prep) ? stitch_fail(STITCH_ENOMEM, "out of memory preparing %zu sites", n) : 0;
	for (size_t i = 0; i < n && !err; i++) {
		const struct arch_ftrace_site *s = sites[i];
		uint32_t at;
		if (s->form & PREPARED)
			continue;
		/* not written, but what a later enable expects: say so now */
		memcpy(&at, (const void *)s->patch, 4);
		if (at != A64_NOP) {
			err = stitch_fail(STITCH_EMISMATCH, "site %#lx: expected NOP (%08x), found %08x; nothing written",
					  (unsigned long)s->patch, (unsigned)A64_NOP, (unsigned)at);
			break;
		}
		np += prepare_patches(s, &p[np]);
		prep[rp.count++] = s->patch;
	}
	if (!err && np) {
		stitch_sort_if_needed(prep, rp.count, sizeof(*prep), stitch_cmp_uintptr);
		err = stitch_apply_stopped(p, np, replay_mov, (void *)&rp, &written);
	}
	for (size_t i = 0; written && i < n; i++)
		sites[i]->form |= PREPARED;
	free(p);
	free(prep);
	return err;
}

/* The common trampoline reads the record's direct word on every call, so
 * a moved direct call needs no code change here (src/core/ftrace.c). */
int arch_ftrace_retarget(struct arch_ftrace_site *const *sites, size_t n, uintptr_t from, uintptr_t to)
{
	(void)sites, (void)n, (void)from, (void)to;
	return 0;
}

int arch_ftrace_region_ready(uintptr_t region, size_t size)
{
	(void)region, (void)size;
	return 0;
}

/* The stubs here do not read the record's entry word; no lean trampoline
 * (STITCH_FTRACE_F_PRESERVES_REGS is accepted and changes nothing). */
uintptr_t arch_ftrace_entry(uintptr_t direct, bool lean)
{
	(void)direct, (void)lean;
	return 0;
}

bool arch_ftrace_has_lean(void)
{
	return false;
}
