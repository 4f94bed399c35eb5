/* SPDX-License-Identifier: MIT */
/*
 * RISC-V 64 function-entry sites: call_ops, as Linux 6.16 does it.
 *
 *   -fpatchable-function-entry=8,4 -falign-functions=8 with RVC (gcc 12:
 *   2-byte c.nops), or =4,2 without RVC (4-byte nops); checked in linked
 *   binaries: the area and the symbol are 8-aligned.  The record points at
 *   func-8.
 *
 *                 compiler          prepared, off            prepared, on
 *     func-8:     c.nop x4          .quad record             .quad record     (literal: data)
 *     func+0:     c.nop c.nop       auipc t0, hi(region)     auipc t0, ...    (written once)
 *     func+4:     c.nop c.nop       nop                      jalr t0, lo(region)(t0)  (toggled)
 *     func+8:     ...body
 *
 *   region (within +-2 GiB of the module's text, RX before use):
 *     +0  auipc t1, 0 ; ld t1, 16(t1) ; jr t1 ; nop ; .quad stitch__ftrace_tramp_rv
 *   JALR links t0 = func+8 (ra, the function's return address, is left
 *   alone); the trampoline finds the record in the literal at t0-16, saves
 *   a0-a7, fa0-fa7, ra, t0, calls stitch__ftrace_dispatch(record, ra,
 *   regs), restores, and jumps to t0.  t0/t1 are temporaries at a
 *   function's entry (psABI), which is why the compiler's NOPs may become
 *   AUIPC t0 / JALR t0 (the kernel's choice too; `jalr t0, ...(t0)` is a
 *   pattern compilers never emit).
 *
 * Protocols:
 *   A. Prepared sites: NOP <-> JALR is one naturally aligned 4-byte word
 *      (func is 8-aligned, so func+4 is 4-aligned; checked at discovery):
 *      with Ziccif an aligned 4-byte fetch is atomic against an aligned
 *      4-byte store, so poke.c stores it and syncs (riscv_flush_icache /
 *      membarrier), patch-logged; models/riscv-ftrace-toggle.model.  The
 *      AUIPC before it never changes, so a thread sees AUIPC then the old
 *      or the new word, never a torn pair (seed 004's concern is a pair
 *      whose two halves both change).
 *   B. First enable: the literal, AUIPC and the NOP4/JALR replace c.nops,
 *      which a thread may be between, and AUIPC must have run before the
 *      JALR: stop the world; the park handler moves a thread found at
 *      func+2..func+6 back to func+0 (replay: re-running NOPs is harmless,
 *      and it then runs the AUIPC); store; sync; resume.
 *      models/ftrace-rv-call-ops-prepare.model (and -noreplay, UNSAFE).
 *   Disabling only puts the NOP back at func+4: the AUIPC and the literal
 *   stay, and the c.nops are not restored (a thread could be between them
 *   again).  A site that is not laid out as above (misaligned, a 4-byte
 *   instruction straddling a 4-byte boundary) is refused at discovery.
 */
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/riscv64/insn.h"
#include "stitch/ftrace.h"

#define FORM_RVC 1   /* c.nop x 8 */
#define FORM_NORVC 2 /* nop x 4 */
#define PREPARED 0x80

struct stitch_ftrace_regs {
	uint64_t a[8];
	uint64_t t0, ra;
	uint64_t fa[8];
	uint64_t pad[2];
};

uintptr_t stitch_ftrace_regs_arg(const struct stitch_ftrace_regs *regs, unsigned n)
{
	return regs && n < 8 ? regs->a[n] : 0;
}

void stitch__ftrace_tramp_rv(void);
__asm__(".text\n"
	".p2align 3\n"
	".globl stitch__ftrace_tramp_rv\n"
	".hidden stitch__ftrace_tramp_rv\n"
	".type stitch__ftrace_tramp_rv, @function\n"
	"stitch__ftrace_tramp_rv:\n"
	"	ld t1, -16(t0)\n" /* the record */
	"	ld t1, 0(t1)\n"   /* its direct call (stitch/ftrace.h, ops->direct) */
	"	bnez t1, 1f\n"
	"	addi sp, sp, -160\n"
	"	sd a0, 0(sp)\n"
	"	sd a1, 8(sp)\n"
	"	sd a2, 16(sp)\n"
	"	sd a3, 24(sp)\n"
	"	sd a4, 32(sp)\n"
	"	sd a5, 40(sp)\n"
	"	sd a6, 48(sp)\n"
	"	sd a7, 56(sp)\n"
	"	sd t0, 64(sp)\n"
	"	sd ra, 72(sp)\n"
	"	fsd fa0, 80(sp)\n"
	"	fsd fa1, 88(sp)\n"
	"	fsd fa2, 96(sp)\n"
	"	fsd fa3, 104(sp)\n"
	"	fsd fa4, 112(sp)\n"
	"	fsd fa5, 120(sp)\n"
	"	fsd fa6, 128(sp)\n"
	"	fsd fa7, 136(sp)\n"
	"	ld a0, -16(t0)\n" /* the record, from the literal at func-8 */
	"	mv a1, ra\n"      /* parent ip */
	"	mv a2, sp\n"      /* regs */
	"	call stitch__ftrace_dispatch\n"
	"	ld a0, 0(sp)\n"
	"	ld a1, 8(sp)\n"
	"	ld a2, 16(sp)\n"
	"	ld a3, 24(sp)\n"
	"	ld a4, 32(sp)\n"
	"	ld a5, 40(sp)\n"
	"	ld a6, 48(sp)\n"
	"	ld a7, 56(sp)\n"
	"	ld t0, 64(sp)\n"
	"	ld ra, 72(sp)\n"
	"	fld fa0, 80(sp)\n"
	"	fld fa1, 88(sp)\n"
	"	fld fa2, 96(sp)\n"
	"	fld fa3, 104(sp)\n"
	"	fld fa4, 112(sp)\n"
	"	fld fa5, 120(sp)\n"
	"	fld fa6, 128(sp)\n"
	"	fld fa7, 136(sp)\n"
	"	addi sp, sp, 160\n"
	"	jr t0\n"
	"1:	jr t1\n"
	".size stitch__ftrace_tramp_rv, . - stitch__ftrace_tramp_rv\n"
	".globl stitch__ftrace_tramp_rv_end\n"
	".hidden stitch__ftrace_tramp_rv_end\n"
	"stitch__ftrace_tramp_rv_end:\n");

/*
 * function_graph (src/core/ftrace.c): the function's return address is ra,
 * saved at regs->ra by the entry trampoline and restored before it jumps
 * back into the function; the function returns with the stack pointer it
 * was entered with, the trampoline's before its 160 bytes.  The return
 * trampoline keeps a0, a1, fa0, fa1 (the psABI's return registers) and
 * jumps to the real return address through t0, a temporary at a return.
 */
struct stitch_ftrace_ret_regs {
	uint64_t a[2];
	uint64_t fa[2];
};

uintptr_t stitch_ftrace_ret_value(const struct stitch_ftrace_ret_regs *rregs)
{
	return rregs ? rregs->a[0] : 0;
}

uintptr_t *arch_ftrace_parent_slot(struct stitch_ftrace_regs *regs, uintptr_t *key)
{
	*key = (uintptr_t)regs + 160;
	return (uintptr_t *)&regs->ra;
}

void stitch__ftrace_return_rv(void);
__asm__(".text\n"
	".p2align 2\n"
	".globl stitch__ftrace_return_rv\n"
	".hidden stitch__ftrace_return_rv\n"
	".type stitch__ftrace_return_rv, @function\n"
	"stitch__ftrace_return_rv:\n"
	"	addi sp, sp, -48\n"
	"	sd a0, 0(sp)\n"
	"	sd a1, 8(sp)\n"
	"	fsd fa0, 16(sp)\n"
	"	fsd fa1, 24(sp)\n"
	"	sd ra, 32(sp)\n"
	"	addi a0, sp, 48\n" /* key: the stack pointer the function returned with */
	"	mv a1, sp\n"       /* ret regs */
	"	call stitch__ftrace_graph_return\n"
	"	mv t0, a0\n"
	"	ld a0, 0(sp)\n"
	"	ld a1, 8(sp)\n"
	"	fld fa0, 16(sp)\n"
	"	fld fa1, 24(sp)\n"
	"	addi sp, sp, 48\n"
	"	mv ra, t0\n"
	"	jr t0\n"
	".size stitch__ftrace_return_rv, . - stitch__ftrace_return_rv\n");

uintptr_t arch_ftrace_return_tramp(void)
{
	return (uintptr_t)stitch__ftrace_return_rv;
}

void arch_ftrace_tramp_range(uintptr_t *start, uintptr_t *end)
{
	extern const char stitch__ftrace_tramp_rv_end[];
	*start = (uintptr_t)stitch__ftrace_tramp_rv;
	*end = (uintptr_t)stitch__ftrace_tramp_rv_end;
}

uintptr_t arch_ftrace_reach(void)
{
	return 0x7fff0000u; /* AUIPC + JALR, with a margin */
}

size_t arch_ftrace_region_size(size_t nsites)
{
	(void)nsites;
	return 24;
}

int arch_ftrace_site_init(struct arch_ftrace_site *s)
{
	uintptr_t r = s->record;
	uint16_t h[8];
	memcpy(h, (const void *)r, sizeof(h));
	s->patch = r + 12;
	s->len = 4;
	memcpy(s->orig, (const void *)s->patch, 4);
	bool rvc = true, norvc = true;
	for (int i = 0; i < 8; i++) {
		rvc &= h[i] == RV_C_NOP;
		norvc &= h[i] == (i % 2 ? RV_NOP >> 16 : (RV_NOP & 0xffff));
	}
	if (!rvc && !norvc) {
		char hex[3 * 16 + 1];
		return stitch_fail(STITCH_EUNKNOWN,
				   "site %#lx: expected 8 c.nops (-fpatchable-function-entry=8,4) or 4 nops (=4,2 "
				   "without RVC), found %s",
				   (unsigned long)r, stitch_hex(hex, (const uint8_t *)r, 16));
	}
	if (r % 8 != 0)
		return stitch_fail(STITCH_EALIGN,
				   "site %#lx: the patch area is not 8-byte aligned, so its literal cannot be stored "
				   "atomically and its instructions could straddle a 4-byte boundary (build with "
				   "-falign-functions=8)",
				   (unsigned long)r);
	s->form = rvc ? FORM_RVC : FORM_NORVC;
	return 0;
}

int arch_ftrace_region_fill(uint8_t *buf, uintptr_t addr, struct arch_ftrace_site *const *sites,
			    const uintptr_t *cookies, size_t n)
{
	uint32_t w[4];
	uint64_t tramp = (uint64_t)(uintptr_t)stitch__ftrace_tramp_rv;
	if (rv_encode_auipc(&w[0], RV_REG_T1, 0) || rv_encode_ld(&w[1], RV_REG_T1, RV_REG_T1, 16) ||
	    rv_encode_jalr(&w[2], RV_REG_ZERO, RV_REG_T1, 0))
		return stitch_fail(STITCH_EINVAL, "cannot encode the trampoline veneer");
	w[3] = RV_NOP;
	memcpy(buf, w, 16);
	memcpy(buf + 16, &tramp, 8);
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
	const uintptr_t *func; /* func of the sites being prepared, sorted */
	size_t count;
};

/* Async-signal-safe: a thread inside (func, func+8) of a site being prepared goes back to func. */
static bool replay_entry(uintptr_t *pc, void *arg)
{
	const struct replay *r = arg;
	size_t lo = 0, hi = r->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r->func[mid] + 8 <= *pc)
			lo = mid + 1;
		else if (r->func[mid] >= *pc)
			hi = mid;
		else {
			*pc = r->func[mid];
			return true;
		}
	}
	return false;
}

int arch_ftrace_apply(struct arch_ftrace_site *const *sites, bool *enabled, const bool *enable, size_t n)
{
	const uint32_t nop = RV_NOP;
	size_t cap = 3 * (n ? n : 1);
	struct stitch_patch *p = calloc(cap, sizeof(*p));
	uintptr_t *prep = calloc(n ? n : 1, sizeof(*prep));
	bool *prepping = calloc(n ? n : 1, sizeof(*prepping));
	struct replay rp = { prep, 0 };
	size_t np = 0;
	int err = (!p || !prep || !prepping) ? stitch_fail(STITCH_ENOMEM, "out of memory switching %zu sites", n) : 0;
	for (size_t i = 0; i < n && !err; i++) {
		const struct arch_ftrace_site *s = sites[i];
		uintptr_t func = s->record + 8;
		int32_t hi, lo;
		uint32_t auipc, jalr;
		if (enabled[i] == enable[i])
			continue;
		if (rv_split_pcrel((int64_t)(s->stub - func), &hi, &lo) != 0 || rv_encode_auipc(&auipc, RV_REG_T0, hi) ||
		    rv_encode_jalr(&jalr, RV_REG_T0, RV_REG_T0, lo)) {
			err = stitch_fail(STITCH_ERANGE, "site %#lx: trampoline %#lx is out of AUIPC+JALR range",
					  (unsigned long)s->patch, (unsigned long)s->stub);
			break;
		}
		if ((s->form & PREPARED) && (arch_ftrace_site_lost(s, enabled[i]) ||
					     memcmp((const void *)func, &auipc, 4) != 0)) {
			err = stitch_fail(STITCH_EMISMATCH,
					  "site %#lx: the literal or AUIPC t0 written at its first enable is gone; "
					  "nothing written",
					  (unsigned long)s->record);
			break;
		}
		if (!(s->form & PREPARED)) {
			/* only reached when enabling a never prepared site: the compiler's bytes */
			uint8_t area[16];
			uint64_t lit = s->cookie;
			if ((s->form & ~PREPARED) == FORM_RVC)
				for (int k = 0; k < 8; k++) {
					uint16_t cn = RV_C_NOP;
					memcpy(area + 2 * k, &cn, 2);
				}
			else
				for (int k = 0; k < 4; k++)
					memcpy(area + 4 * k, &nop, 4);
			stitch_patch_init(&p[np++], s->record, area, &lit, 8);
			stitch_patch_init(&p[np++], func, area + 8, &auipc, 4);
			stitch_patch_init(&p[np++], s->patch, area + 12, enable[i] ? &jalr : &nop, 4);
			prep[rp.count++] = func;
			prepping[i] = true;
			continue;
		}
		stitch_patch_init(&p[np++], s->patch, enabled[i] ? &jalr : &nop, enable[i] ? &jalr : &nop, 4);
	}
	bool written = false;
	if (!err && np) {
		if (rp.count == 0) {
			/* Protocol A: aligned 4-byte words through poke.c (compares every site first). */
			err = stitch_apply_patches_locked(p, np, "ftrace switch");
			written = !err;
		} else {
			stitch_sort_if_needed(prep, rp.count, sizeof(*prep), stitch_cmp_uintptr);
			err = stitch_apply_stopped(p, np, replay_entry, (void *)&rp, &written);
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
