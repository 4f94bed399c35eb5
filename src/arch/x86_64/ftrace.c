/* SPDX-License-Identifier: MIT */
/*
 * x86-64 function-entry sites: a 5-byte NOP <-> `call rel32` to a per-site
 * stub in a trampoline region mapped within +-2 GiB of the module's text.
 *
 *   The site, as the compilers emit it for -fpatchable-function-entry=5
 *   (checked with gcc 12.2 and clang 14.0.6; with -fcf-protection an
 *   endbr64 comes first and the record points after it):
 *
 *     gcc    func: 90 90 90 90 90        five 1-byte NOPs     FORM_5NOPS
 *     clang  func: 0f 1f 44 00 08        nopl 0x8(%rax,%rax)   FORM_NOP5_DISP
 *     -pg -mfentry -mnop-mcount:
 *            func: 0f 1f 44 00 00        nopl 0x0(%rax,%rax)   FORM_NOP5
 *   enabled:
 *            func: e8 <stub - (func+5)>  call stub
 *
 *   The module's region (not live until every byte is written, then RX):
 *     +0       .quad stitch__ftrace_tramp_x86      (the common trampoline, anywhere)
 *     +16+16i  49 bb <cookie_i>        movabs $cookie_i, %r11
 *              ff 25 <-(16+16i+16)>    jmp *region+0(%rip)
 *   r11 is free at a function's entry (SysV ABI: scratch, never an
 *   argument); r10 (static chain) and rax (vararg count) are preserved.
 *   The trampoline saves rdi rsi rdx rcx r8 r9 rax r10 and xmm0-7, calls
 *   stitch__ftrace_dispatch(cookie, parent_ip, regs), restores, returns to
 *   func+5: the function runs as if the site were a NOP.
 *
 * Protocols (what a thread at the site may execute):
 *   A. old and new are each ONE instruction of 5 bytes that poke.c's trap
 *      handler knows (x86_decode_site: the canonical NOP5 and clang's
 *      0f 1f 44 00 08 <-> call): the int3 batch of poke.c (steps 1-3
 *      there); a thread runs the NOP or the call, or traps and the handler
 *      emulates the new instruction (the call, or the NOP: skip 5 bytes).
 *      No thread can be inside the site: it is one instruction.  Patch-
 *      logged and checked like every batch; models/x86-int3-call.model,
 *      ftrace-x86-clang-nop-int3.model (and its -plain-store mutant).
 *   B. gcc's five NOPs: stop the world.  Every
 *      other thread is parked in the quiescence handler at an instruction
 *      boundary.  A thread parked at offsets 1-4 of five 1-byte NOPs is
 *      moved to offset 5 by the fixup (skipping NOPs changes nothing);
 *      then no thread is inside any site, none executes, the 5 bytes are
 *      stored, synced (membarrier SYNC_CORE), and the world resumes:
 *      every thread's next fetch at the site sees all five new bytes.
 *      models/ftrace-x86-five-nops-stop.model (SAFE) and its mutant
 *      without the fixup (UNSAFE).  The int3 + quiesce alternative,
 *      models/x86-five-nops-quiesce.model, needs poke.c's trap table to
 *      accept a multi-instruction old form; it does not yet.
 *   Either way every site is first compared with the bytes of the state
 *   the core believes it is in; one mismatch and nothing is written.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/x86_64/insn.h"
#include "stitch/ftrace.h"

enum { FORM_NOP5, FORM_NOP5_DISP, FORM_5NOPS };

#define SITE_LEN 5
#define STUB_SIZE 16
#define REGION_HEAD 16

/* What the trampoline saves, in this order (offsets used by the asm below). */
struct stitch_ftrace_regs {
	uint64_t rdi, rsi, rdx, rcx, r8, r9, rax, r10, r11;
	uint64_t *parent_slot; /* the caller's return address, on the stack */
	uint8_t xmm[8][16];
};

uintptr_t stitch_ftrace_regs_arg(const struct stitch_ftrace_regs *regs, unsigned n)
{
	if (!regs)
		return 0;
	switch (n) {
	case 0: return regs->rdi;
	case 1: return regs->rsi;
	case 2: return regs->rdx;
	case 3: return regs->rcx;
	case 4: return regs->r8;
	case 5: return regs->r9;
	default: return 0;
	}
}

void stitch__ftrace_tramp_x86(void);
__asm__(".text\n"
	".p2align 4\n"
	".globl stitch__ftrace_tramp_x86\n"
	".hidden stitch__ftrace_tramp_x86\n"
	".type stitch__ftrace_tramp_x86, @function\n"
	"stitch__ftrace_tramp_x86:\n"
	"	.cfi_startproc\n"
	"	endbr64\n"
	/* a direct call: the record's first word (stitch/ftrace.h, ops->direct),
	 * read ONCE: unregister clears it while threads are here, and a test
	 * followed by a second load could jump to the 0 it read the second
	 * time.  rax is borrowed (pushed), r11 is free on the direct path. */
	"	pushq %rax\n"
	"	movq (%r11), %rax\n"
	"	testq %rax, %rax\n"
	"	jnz 1f\n"
	"	popq %rax\n"
	/* [rsp] = func+5 (return into the traced function), [rsp+8] = its caller's return */
	"	pushq %rbp\n"
	"	.cfi_def_cfa_offset 16\n"
	"	.cfi_offset %rbp, -16\n"
	"	movq %rsp, %rbp\n"
	"	.cfi_def_cfa_register %rbp\n"
	"	subq $208, %rsp\n"
	"	andq $-16, %rsp\n"
	"	movq %rdi, 0(%rsp)\n"
	"	movq %rsi, 8(%rsp)\n"
	"	movq %rdx, 16(%rsp)\n"
	"	movq %rcx, 24(%rsp)\n"
	"	movq %r8, 32(%rsp)\n"
	"	movq %r9, 40(%rsp)\n"
	"	movq %rax, 48(%rsp)\n"
	"	movq %r10, 56(%rsp)\n"
	"	movq %r11, 64(%rsp)\n"
	"	movaps %xmm0, 80(%rsp)\n"
	"	movaps %xmm1, 96(%rsp)\n"
	"	movaps %xmm2, 112(%rsp)\n"
	"	movaps %xmm3, 128(%rsp)\n"
	"	movaps %xmm4, 144(%rsp)\n"
	"	movaps %xmm5, 160(%rsp)\n"
	"	movaps %xmm6, 176(%rsp)\n"
	"	movaps %xmm7, 192(%rsp)\n"
	"	movq %r11, %rdi\n"      /* cookie */
	"	leaq 16(%rbp), %r11\n"
	"	movq %r11, 72(%rsp)\n"  /* parent_slot */
	"	movq 16(%rbp), %rsi\n"  /* parent ip */
	"	movq %rsp, %rdx\n"      /* regs */
	"	call stitch__ftrace_dispatch\n"
	"	movq 0(%rsp), %rdi\n"
	"	movq 8(%rsp), %rsi\n"
	"	movq 16(%rsp), %rdx\n"
	"	movq 24(%rsp), %rcx\n"
	"	movq 32(%rsp), %r8\n"
	"	movq 40(%rsp), %r9\n"
	"	movq 48(%rsp), %rax\n"
	"	movq 56(%rsp), %r10\n"
	"	movaps 80(%rsp), %xmm0\n"
	"	movaps 96(%rsp), %xmm1\n"
	"	movaps 112(%rsp), %xmm2\n"
	"	movaps 128(%rsp), %xmm3\n"
	"	movaps 144(%rsp), %xmm4\n"
	"	movaps 160(%rsp), %xmm5\n"
	"	movaps 176(%rsp), %xmm6\n"
	"	movaps 192(%rsp), %xmm7\n"
	"	movq %rbp, %rsp\n"
	"	popq %rbp\n"
	"	.cfi_def_cfa %rsp, 8\n"
	"	ret\n"
	"1:	movq %rax, %r11\n"
	"	popq %rax\n"
	"	jmp *%r11\n"
	"	.cfi_endproc\n"
	".size stitch__ftrace_tramp_x86, . - stitch__ftrace_tramp_x86\n"
	".globl stitch__ftrace_tramp_x86_end\n"
	".hidden stitch__ftrace_tramp_x86_end\n"
	"stitch__ftrace_tramp_x86_end:\n");

/*
 * function_graph (src/core/ftrace.c): the caller's return address is the
 * stack word above the call's, 16(%rbp) in the trampoline; the function
 * returns with %rsp just above it.  The return trampoline is entered by
 * the function's `ret`; it keeps rax, rdx, xmm0 and xmm1 (every SysV
 * return register but the x87 stack, which C code here does not touch)
 * and jumps to the real return address through r11, a scratch register
 * at a return as at an entry.
 */
struct stitch_ftrace_ret_regs {
	uint64_t rax, rdx;
	uint8_t xmm[2][16];
};

uintptr_t stitch_ftrace_ret_value(const struct stitch_ftrace_ret_regs *rregs)
{
	return rregs ? rregs->rax : 0;
}

uintptr_t *arch_ftrace_parent_slot(struct stitch_ftrace_regs *regs, uintptr_t *key)
{
	*key = (uintptr_t)(regs->parent_slot + 1);
	return (uintptr_t *)regs->parent_slot;
}

__asm__(".text\n"
	".p2align 4\n"
	".globl stitch__ftrace_return\n"
	".hidden stitch__ftrace_return\n"
	".type stitch__ftrace_return, @function\n"
	"stitch__ftrace_return:\n"
	"	pushq %rbp\n"
	"	movq %rsp, %rbp\n"
	"	subq $48, %rsp\n"
	"	andq $-16, %rsp\n"      /* whatever the function left, the C call is aligned */
	"	movq %rax, 0(%rsp)\n"
	"	movq %rdx, 8(%rsp)\n"
	"	movaps %xmm0, 16(%rsp)\n"
	"	movaps %xmm1, 32(%rsp)\n"
	"	leaq 8(%rbp), %rdi\n"   /* key: the stack pointer the function returned with */
	"	movq %rsp, %rsi\n"      /* ret regs */
	"	call stitch__ftrace_graph_return\n"
	"	movq %rax, %r11\n"      /* r11: scratch at a return, as at an entry */
	"	movq 0(%rsp), %rax\n"
	"	movq 8(%rsp), %rdx\n"
	"	movaps 16(%rsp), %xmm0\n"
	"	movaps 32(%rsp), %xmm1\n"
	"	movq %rbp, %rsp\n"
	"	popq %rbp\n"
	"	jmp *%r11\n"
	".size stitch__ftrace_return, . - stitch__ftrace_return\n");


void arch_ftrace_tramp_range(uintptr_t *start, uintptr_t *end)
{
	extern const char stitch__ftrace_tramp_x86_end[];
	*start = (uintptr_t)stitch__ftrace_tramp_x86;
	*end = (uintptr_t)stitch__ftrace_tramp_x86_end;
}

uintptr_t arch_ftrace_reach(void)
{
	return 0x7fff0000u; /* call rel32, with a margin for the region's own size */
}

size_t arch_ftrace_region_size(size_t nsites)
{
	return REGION_HEAD + STUB_SIZE * nsites;
}

static const uint8_t nop5[SITE_LEN] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 };
static const uint8_t five_nops[SITE_LEN] = { 0x90, 0x90, 0x90, 0x90, 0x90 };

int arch_ftrace_site_init(struct arch_ftrace_site *s)
{
	const uint8_t *b = (const uint8_t *)s->record;
	s->patch = s->record;
	s->len = SITE_LEN;
	memcpy(s->orig, b, SITE_LEN);
	if (memcmp(b, nop5, SITE_LEN) == 0)
		s->form = FORM_NOP5;
	else if (memcmp(b, nop5, 4) == 0)
		s->form = FORM_NOP5_DISP; /* nopl disp8(%rax,%rax,1): clang writes disp8 = 8 */
	else if (memcmp(b, five_nops, SITE_LEN) == 0)
		s->form = FORM_5NOPS;
	else {
		char h[3 * SITE_LEN + 1];
		return stitch_fail(STITCH_EUNKNOWN,
				   "site %#lx: expected a patchable entry (0f 1f 44 00 xx or 90 90 90 90 90), found %s",
				   (unsigned long)s->record, stitch_hex(h, b, SITE_LEN));
	}
	return 0;
}

int arch_ftrace_region_fill(uint8_t *buf, uintptr_t addr, struct arch_ftrace_site *const *sites,
			    const uintptr_t *cookies, size_t n)
{
	uint64_t tramp = (uint64_t)(uintptr_t)stitch__ftrace_tramp_x86;
	memset(buf, X86_INT3, arch_ftrace_region_size(n));
	memcpy(buf, &tramp, 8);
	for (size_t i = 0; i < n; i++) {
		uint8_t *st = buf + REGION_HEAD + STUB_SIZE * i;
		uint64_t cookie = cookies[i];
		int32_t disp = -(int32_t)(REGION_HEAD + STUB_SIZE * i + 16);
		st[0] = 0x49;
		st[1] = 0xbb; /* movabs $cookie, %r11 */
		memcpy(st + 2, &cookie, 8);
		st[10] = 0xff;
		st[11] = 0x25; /* jmp *disp32(%rip) */
		memcpy(st + 12, &disp, 4);
		sites[i]->stub = addr + REGION_HEAD + STUB_SIZE * i;
		sites[i]->cookie = cookies[i];
	}
	return 0;
}

bool arch_ftrace_site_lost(const struct arch_ftrace_site *s, bool enabled)
{
	return enabled && memcmp((const void *)s->patch, s->orig, SITE_LEN) == 0;
}

/* ---- applying --------------------------------------------------------------- */

static int call_bytes(const struct arch_ftrace_site *s, uint8_t out[SITE_LEN])
{
	int err = x86_encode_call_rel32(out, s->patch, s->stub);
	if (err)
		return stitch_fail(STITCH_ERANGE, "site %#lx: trampoline %#lx is out of call rel32 range",
				   (unsigned long)s->patch, (unsigned long)s->stub);
	return 0;
}

/* Whether the int3 protocol can switch this site: its compiler form is one
 * 5-byte instruction poke.c's trap handler knows (the call is one too):
 * the canonical NOP5 and clang's NOP5 with displacement 8 (x86_decode_site). */
static bool one_insn_form(const struct arch_ftrace_site *s)
{
	return s->form == FORM_NOP5 || s->form == FORM_NOP5_DISP;
}

/* Sites whose current bytes are five 1-byte NOPs, sorted, for the fixup. */
struct nops_fixup {
	const uintptr_t *start;
	size_t count;
};

/* Async-signal-safe: a thread parked at offsets 1..4 of five NOPs goes to offset 5. */
static bool skip_nops(uintptr_t *pc, void *arg)
{
	const struct nops_fixup *f = arg;
	size_t lo = 0, hi = f->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (f->start[mid] + SITE_LEN <= *pc)
			lo = mid + 1;
		else if (f->start[mid] >= *pc)
			hi = mid;
		else {
			*pc = f->start[mid] + SITE_LEN;
			return true;
		}
	}
	return false;
}

int arch_ftrace_apply(struct arch_ftrace_site *const *sites, bool *enabled, const bool *enable, size_t n)
{
	/* scratch, not calloc: 100 000 sites are 5 MB; every field used is set below */
	struct stitch_patch *p = stitch_scratch(STITCH_SCRATCH_ARCH, (n ? n : 1) * sizeof(*p));
	uintptr_t *nops = stitch_scratch(STITCH_SCRATCH_ARCH_AUX, (n ? n : 1) * sizeof(*nops));
	struct nops_fixup fix = { nops, 0 };
	size_t np = 0;
	bool all_one_insn = true, written = false;
	int err = (!p || !nops) ? -STITCH_ENOMEM : 0;
	for (size_t i = 0; i < n && !err; i++) {
		const struct arch_ftrace_site *s = sites[i];
		uint8_t call[SITE_LEN];
		if (enabled[i] == enable[i])
			continue;
		err = call_bytes(s, call);
		if (err)
			break;
		struct stitch_patch *q = &p[np++];
		*q = (struct stitch_patch){ .addr = s->patch, .len = SITE_LEN }; /* scratch: whatever was there before */
		memcpy(q->old, enabled[i] ? call : s->orig, SITE_LEN);
		memcpy(q->new_bytes, enable[i] ? call : s->orig, SITE_LEN);
		all_one_insn &= one_insn_form(s);
		if (!enabled[i] && s->form == FORM_5NOPS)
			nops[fix.count++] = s->patch;
	}
	if (!err && np) {
		if (all_one_insn) {
			/* Protocol A: poke.c's int3 batch (compares every site first). */
			err = stitch_apply_patches_inplace_locked(p, np, "ftrace switch");
			written = !err; /* a failed batch leaves every site as it was */
		} else {
			stitch_sort_if_needed(nops, fix.count, sizeof(*nops), stitch_cmp_uintptr);
			err = stitch_apply_stopped(p, np, skip_nops, &fix, &written);
		}
	}
	for (size_t i = 0; written && i < n; i++)
		enabled[i] = enable[i];
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
