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
#include "core/ftrace_asm.h"
#include "stitch/ftrace.h"

#define FORM_CALL_OPS 1
#define PREPARED 0x80

struct stitch_ftrace_regs {
	uint64_t x[10]; /* x0..x9 */
	uint64_t fp, lr;
	uint8_t q[8][16];
};
#define A64_FRAME 224 /* the trampoline's frame: struct stitch_ftrace_regs */
_Static_assert(sizeof(struct stitch_ftrace_regs) == A64_FRAME && offsetof(struct stitch_ftrace_regs, x[9]) == 72,
	       "the trampoline's frame");

uintptr_t stitch_ftrace_regs_arg(const struct stitch_ftrace_regs *regs, unsigned n)
{
	return regs && n < 8 ? regs->x[n] : 0;
}

/*
 * The trampoline's fast path: what the dispatcher does for one ops on the
 * site (record->single; a set of several, a direct call or a first call
 * of the thread take the dispatcher), in assembly, after
 * the register saves: the x86-64 full trampoline's fast path (see
 * src/arch/x86_64/ftrace.c, "Lean trampolines" and "RCU in the fast
 * paths", for the argument), with liburcu-bp's read side inlined:
 *
 *   t = &stitch__ftrace_thread (initial-exec TLS: tpidr_el0 + GOT offset)
 *   t->seq odd? else (first call, or inside a callback) -> dispatcher
 *   t->seq = sp (even: the guard is set; the section's frame, for a
 *     longjmp() out of it: core/ftrace.c)
 *   RCU_LOCK: r = urcu_bp_reader; NULL, or nested (ctr's low 32 bits
 *     not 0) -> leave the guard, dispatcher; r->ctr = urcu_bp_gp.ctr
 *   ops = record->single; NULL -> leave both, dispatcher
 *   parent (x9) == the return trampoline (a hooked function's tail
 *     call) -> leave both, dispatcher
 *   no ret_func: func(ip, parent, ops, regs)
 *   ret_func: unless the shadow stack is mapped, not full, and empty or
 *     its top entry's key above this call's (nothing to prune) -> leave
 *     both, dispatcher; push {orig = parent, key, record, ops}, then
 *     func(...) if set, then the saved x9 (the function's return
 *     address, restored into x30) := the return trampoline
 *   RCU_UNLOCK (r reloaded: the callback clobbers every caller-saved
 *     register); t->seq = 1 (odd)
 *
 * The record, x9 and the frame are the trampoline's until the callback
 * runs; after it only the frame is: the thread block and the reader are
 * found again from tpidr_el0.  No fence around the read section, as in
 * urcu-bp's own read side: the record offers `single` only when
 * liburcu-bp's grace periods use membarrier() (ft_fast_ok() in
 * core/ftrace.c), whose barrier on every running thread orders the lock's
 * store of ctr before this thread's loads of record->single and the ops,
 * and its last use of them before the unlock's store, as far as a grace
 * period can tell (urcu-bp's slave barrier is then a compiler barrier,
 * which the asm statement is).  Signal handlers: as on x86-64 (before
 * the guard their traced calls run normally and leave ctr and the shadow
 * stack as they found them; after it they call nothing).  Without liburcu
 * (FT_ASM_FAST 0) every call takes the dispatcher.
 */
void stitch__ftrace_tramp_a64(void);
__asm__(/* the fast paths' steps (assembler macros, used by both trampolines) */
	".macro ft_thread dst, tpreg\n" /* dst := &stitch__ftrace_thread; tpreg := tpidr_el0 */
	"	mrs \\tpreg, tpidr_el0\n"
	"	adrp \\dst, :gottprel:stitch__ftrace_thread\n"
	"	ldr \\dst, [\\dst, #:gottprel_lo12:stitch__ftrace_thread]\n"
	"	add \\dst, \\tpreg, \\dst\n"
	".endm\n"
	".macro ft_reader dst, tpreg\n" /* dst := the thread's urcu_bp_reader */
	"	adrp \\dst, :gottprel:urcu_bp_reader\n"
	"	ldr \\dst, [\\dst, #:gottprel_lo12:urcu_bp_reader]\n"
	"	ldr \\dst, [\\tpreg, \\dst]\n"
	".endm\n"
	/* urcu-bp's read lock, outermost section only: else to fail */
	".macro ft_read_lock reader, x, w, fail\n"
	"	cbz \\reader, \\fail\n"
	"	ldr \\w, [\\reader, #" STR(U_CTR) "]\n"
	"	cbnz \\w, \\fail\n"
	"	adrp \\x, :got:urcu_bp_gp\n"
	"	ldr \\x, [\\x, #:got_lo12:urcu_bp_gp]\n"
	"	ldr \\x, [\\x, #" STR(U_GP_CTR) "]\n"
	"	str \\x, [\\reader, #" STR(U_CTR) "]\n"
	".endm\n"
	".macro ft_read_unlock reader, x\n"
	"	ldr \\x, [\\reader, #" STR(U_CTR) "]\n"
	"	sub \\x, \\x, #" STR(U_COUNT) "\n"
	"	str \\x, [\\reader, #" STR(U_CTR) "]\n"
	".endm\n"
	".macro ft_seq_out thread, x\n" /* the guard: left (seq odd again) */
	"	mov \\x, #" STR(FT_SEQ_OUT_N) "\n"
	"	str \\x, [\\thread, #" STR(T_SEQ) "]\n"
	".endm\n"
	".text\n"
	".p2align 3\n"
	".globl stitch__ftrace_tramp_a64\n"
	".hidden stitch__ftrace_tramp_a64\n"
	".type stitch__ftrace_tramp_a64, %function\n"
	"stitch__ftrace_tramp_a64:\n"
	"	hint #34\n" /* BTI C: reached by BR X16 */
	"	ldur x16, [x30, #-16]\n" /* the record */
	"	ldr x17, [x16]\n"        /* its direct call (stitch/ftrace.h, ops->direct) */
	"	cbnz x17, 9f\n"
	"	sub sp, sp, #" STR(A64_FRAME) "\n"
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
	".if " STR(FT_ASM_FAST) "\n"
	"	ft_thread x10, x11\n"   /* x10: the thread block */
	"	ldr x12, [x10, #" STR(T_SEQ) "]\n"
	"	tbz x12, #0, 3f\n"
	"	mov x12, sp\n"
	"	str x12, [x10, #" STR(T_SEQ) "]\n" /* the guard: this frame */
	"	ft_reader x13, x11\n"   /* x13: the thread's urcu-bp reader */
	"	ft_read_lock x13, x14, w14, 2f\n"
	"	ldr x2, [x16, #" STR(R_SINGLE) "]\n"
	"	cbz x2, 8f\n"
	"	adrp x15, stitch__ftrace_return\n"
	"	add x15, x15, :lo12:stitch__ftrace_return\n"
	"	cmp x9, x15\n"
	"	b.eq 8f\n"
	"	ldr x15, [x2, #" STR(O_RETF) "]\n"
	"	cbnz x15, 5f\n"
	"	ldr x0, [x16, #" STR(R_IP) "]\n"
	"	mov x1, x9\n"
	"	mov x3, sp\n"            /* regs */
	"	ldr x15, [x2, #" STR(O_FUNC) "]\n"
	"	blr x15\n"               /* no ret_func: func is set */
	"4:	ft_thread x10, x11\n"
	"	ft_reader x13, x11\n"
	"	ft_read_unlock x13, x14\n"
	"	ft_seq_out x10, x12\n"
	"	b 1f\n"
	/* graph: x10 the thread, x2 the ops, x16 the record, x9 the parent */
	"5:	ldr x12, [x10, #" STR(T_SHADOW) "]\n"
	"	cbz x12, 8f\n"
	"	ldr x14, [x12, #" STR(S_DEPTH) "]\n"
	"	cmp x14, #" STR(STITCH_FTRACE_GRAPH_DEPTH) "\n"
	"	b.hs 8f\n"
	"	add x15, sp, #" STR(A64_FRAME) "\n" /* key: the function's stack pointer */
	"	add x17, x12, x14, lsl #5\n"        /* &e[depth] - S_E */
	"	cbz x14, 6f\n"
	/* prune nothing: the top entry's key is above ours (compared as
	 * key | 1: a tail call's tagged key equal to ours is not) */
	"	ldur x0, [x17, #" STR(S_E) "-" STR(E_SIZE) "+" STR(E_KEY) "]\n"
	"	orr x1, x15, #1\n"
	"	cmp x0, x1\n"
	"	b.ls 8f\n"
	"6:	add x14, x14, #1\n"
	"	str x14, [x12, #" STR(S_DEPTH) "]\n"
	"	add x17, x17, #" STR(S_E) "\n"
	"	str x9, [x17, #" STR(E_ORIG) "]\n"
	"	str x15, [x17, #" STR(E_KEY) "]\n"
	"	str x16, [x17, #" STR(E_REC) "]\n"
	"	str x2, [x17, #" STR(E_OPS) "]\n"
	"	ldr x15, [x2, #" STR(O_FUNC) "]\n"
	"	cbz x15, 7f\n"
	"	ldr x0, [x16, #" STR(R_IP) "]\n"
	"	mov x1, x9\n"
	"	mov x3, sp\n"
	"	blr x15\n"
	"7:	adrp x15, stitch__ftrace_return\n"
	"	add x15, x15, :lo12:stitch__ftrace_return\n"
	"	str x15, [sp, #72]\n"    /* hook the return: the saved x9 */
	"	b 4b\n"
	/* 8: leave the read section (x13: the reader), 2: the guard (x10) */
	"8:	ft_read_unlock x13, x14\n"
	"2:	ft_seq_out x10, x12\n"
	".endif\n"
	"3:	mov x0, x16\n" /* the record, from the literal at func-8 */
	"	mov x1, x9\n"           /* parent ip */
	"	mov x2, sp\n"           /* regs */
	"	bl stitch__ftrace_dispatch\n"
	"1:	ldp x0, x1, [sp, #0]\n"
	"	ldp x2, x3, [sp, #16]\n"
	"	ldp x4, x5, [sp, #32]\n"
	"	ldp x6, x7, [sp, #48]\n"
	"	ldp x8, x9, [sp, #64]\n"
	"	ldp x29, x30, [sp, #80]\n"
	"	ldp q0, q1, [sp, #96]\n"
	"	ldp q2, q3, [sp, #128]\n"
	"	ldp q4, q5, [sp, #160]\n"
	"	ldp q6, q7, [sp, #192]\n"
	"	add sp, sp, #" STR(A64_FRAME) "\n"
	"	mov x16, x30\n" /* func+8 */
	"	mov x30, x9\n"  /* the function's own return address */
	"	ret x16\n"
	"9:	br x17\n"
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
 *
 * Its fast path (FT_ASM_FAST, the x86-64 return trampoline's): the top
 * shadow entry is this return's (its key is the stack pointer the function
 * returned with; a tail call's entry has bit 0 of its key set and never
 * is) and its ops is the site's one ops,
 * with a ret_func (record->single_ret): inside the guard and an urcu-bp
 * read section taken as at the entry, pop the entry, keep its orig on the
 * frame (once the guard is left a signal handler's traced call may reuse
 * the slot), ret_func(ip, orig, ops, rregs), leave both, return to orig.
 * Anything else leaves what it took and runs the C half,
 * stitch__ftrace_graph_return().  It uses x8-x17 only: free at a return
 * (x8, the indirect result register at a call, is no result).
 */
struct stitch_ftrace_ret_regs {
	uint64_t x[8];
	uint8_t q[4][16];
};
#define A64_RET_FRAME 160 /* the return trampoline's: ret regs, x29/x30 at 128, orig at 144 */
_Static_assert(sizeof(struct stitch_ftrace_ret_regs) == 128, "the return trampoline's frame (sp + 0..127)");

uintptr_t stitch_ftrace_ret_value(const struct stitch_ftrace_ret_regs *rregs)
{
	return rregs ? rregs->x[0] : 0;
}

/* The hooked function gets its return address in x30 and saves it where its
 * prologue chooses: no fixed place.  ftrace_unwind.c finds it in the
 * frame during the unwinder's walk ("no fixed place"). */
uintptr_t *arch_ftrace_return_slot(uintptr_t key)
{
	(void)key;
	return NULL;
}

/* DWARF register numbers: sp is 31, x30 (LR) 30. */
const struct arch_dwarf_return arch_ftrace_return_dwarf = { .sp_reg = 31, .ra_column = 30 };

/* gcc and clang: the frame record (x29, x30) at the bottom of the frame,
 * "stp x29, x30, [sp, #-N]!" - x30 one word above the stack pointer. */
uintptr_t *arch_ftrace_return_slot_usual(uintptr_t sp, uintptr_t cfa)
{
	(void)cfa;
	return (uintptr_t *)sp + 1;
}

uintptr_t *arch_ftrace_parent_slot(struct stitch_ftrace_regs *regs, uintptr_t *key)
{
	*key = (uintptr_t)regs + A64_FRAME;
	return (uintptr_t *)&regs->x[9];
}

__asm__(".text\n"
	".p2align 3\n"
	".globl stitch__ftrace_return\n"
	".hidden stitch__ftrace_return\n"
	".type stitch__ftrace_return, %function\n"
	"stitch__ftrace_return:\n"
	/* the return registers (struct stitch_ftrace_ret_regs), a frame
	 * record, and the return address once known */
	"	sub sp, sp, #" STR(A64_RET_FRAME) "\n"
	"	stp x0, x1, [sp, #0]\n"
	"	stp x2, x3, [sp, #16]\n"
	"	stp x4, x5, [sp, #32]\n"
	"	stp x6, x7, [sp, #48]\n"
	"	stp q0, q1, [sp, #64]\n"
	"	stp q2, q3, [sp, #96]\n"
	"	stp x29, x30, [sp, #128]\n"
	"	add x29, sp, #128\n"
	".if " STR(FT_ASM_FAST) "\n"
	/* the fast path (see the comment above): x8-x17 are free at a return */
	"	ft_thread x10, x11\n"   /* x10: the thread block */
	"	ldr x12, [x10, #" STR(T_SEQ) "]\n"
	"	tbz x12, #0, 2f\n"
	"	ldr x13, [x10, #" STR(T_SHADOW) "]\n"
	"	cbz x13, 2f\n"
	"	ldr x14, [x13, #" STR(S_DEPTH) "]\n"
	"	cbz x14, 2f\n"
	"	add x15, x13, x14, lsl #5\n"
	"	sub x15, x15, #" STR(E_SIZE) "-" STR(S_E) "\n" /* x15: the top entry */
	"	ldr x9, [x15, #" STR(E_KEY) "]\n"
	"	add x16, sp, #" STR(A64_RET_FRAME) "\n" /* the stack pointer the function returned with */
	"	cmp x9, x16\n"
	"	b.ne 2f\n"
	"	ldr x16, [x15, #" STR(E_OPS) "]\n"
	"	ldr x17, [x15, #" STR(E_REC) "]\n"
	"	mov x12, sp\n"
	"	str x12, [x10, #" STR(T_SEQ) "]\n" /* the guard: this frame */
	"	ft_reader x9, x11\n"    /* x9: the thread's urcu-bp reader */
	"	ft_read_lock x9, x8, w8, 0f\n"
	"	ldr x8, [x17, #" STR(R_SINGLE_RET) "]\n"
	"	cmp x8, x16\n"            /* the entry's ops, alone on the site, with its ret_func */
	"	b.ne 10f\n"
	"	sub x14, x14, #1\n"
	"	str x14, [x13, #" STR(S_DEPTH) "]\n" /* pop */
	"	ldr x9, [x15, #" STR(E_ORIG) "]\n"
	"	str x9, [sp, #144]\n"    /* before leaving: see above */
	"	ldr x0, [x17, #" STR(R_IP) "]\n"
	"	mov x1, x9\n"
	"	mov x2, x16\n"
	"	mov x3, sp\n"
	"	ldr x8, [x16, #" STR(O_RETF) "]\n"
	"	blr x8\n"
	"	ft_thread x10, x11\n"
	"	ft_reader x9, x11\n"
	"	ft_read_unlock x9, x8\n"
	"	ft_seq_out x10, x12\n"
	"	ldr x16, [sp, #144]\n"
	"	b 1f\n"
	/* 10: leave the read section (x9: the reader), 0: the guard, then the C half */
	"10:	ft_read_unlock x9, x8\n"
	"0:	ft_seq_out x10, x12\n"
	".endif\n"
	"2:	add x0, sp, #" STR(A64_RET_FRAME) "\n" /* key: the stack pointer the function returned with */
	"	mov x1, sp\n"       /* ret regs */
	"	bl stitch__ftrace_graph_return\n"
	"	mov x16, x0\n"
	"1:	ldp x0, x1, [sp, #0]\n"
	"	ldp x2, x3, [sp, #16]\n"
	"	ldp x4, x5, [sp, #32]\n"
	"	ldp x6, x7, [sp, #48]\n"
	"	ldp q0, q1, [sp, #64]\n"
	"	ldp q2, q3, [sp, #96]\n"
	"	ldp x29, x30, [sp, #128]\n"
	"	add sp, sp, #" STR(A64_RET_FRAME) "\n"
	"	mov x30, x16\n"
	"	ret x16\n"
	".size stitch__ftrace_return, . - stitch__ftrace_return\n"
	".globl stitch__ftrace_return_end\n"
	".hidden stitch__ftrace_return_end\n"
	"stitch__ftrace_return_end:\n");


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

/* Two NOPs before the symbol (-fpatchable-function-entry=4,2). */
uintptr_t arch_ftrace_record_of(uintptr_t func)
{
	return func - 8;
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
