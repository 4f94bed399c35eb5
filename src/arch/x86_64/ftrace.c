/* SPDX-License-Identifier: MIT */
/*
 * x86-64 function-entry sites: a 5-byte NOP <-> `jmp rel32` (ops) or
 * `call rel32` (a direct call) to one of the site's two stubs in a
 * trampoline region mapped within +-2 GiB of the module's text.
 *
 *   The site, as the compilers emit it for -fpatchable-function-entry=5
 *   (checked with gcc 12.2 and clang 14.0.6; with -fcf-protection an
 *   endbr64 comes first and the record points after it):
 *
 *     gcc    func: 90 90 90 90 90        five 1-byte NOPs     FORM_5NOPS
 *     clang  func: 0f 1f 44 00 08        nopl 0x8(%rax,%rax)   FORM_NOP5_DISP
 *     -pg -mfentry -mnop-mcount:
 *            func: 0f 1f 44 00 00        nopl 0x0(%rax,%rax)   FORM_NOP5
 *   enabled, for tracers (ops):
 *            func: e9 <jstub - (func+5)> jmp jstub             (form |= ENABLED_JMP)
 *   enabled, for a direct call:
 *            func: e8 <cstub - (func+5)> call cstub
 *
 *   The module's region (not live until every byte is written, then RX):
 *     +0       <stitch__ftrace_tramp_jmp_x86>   the jump stubs' target
 *     +16+32i  49 bb <cookie_i>     movabs $cookie_i, %r11   cstub (the site's record)
 *              41 ff 63 08          jmp *8(%r11)             (the record's entry word)
 *     +32+32i  49 bb <cookie_i>     movabs $cookie_i, %r11   jstub
 *              ff 25 <rel32>        jmp *head(%rip)
 *   r11 is free at a function's entry (SysV ABI: scratch, never an
 *   argument); r10 (static chain) and rax (vararg count) are preserved.
 *
 * Why a jump, and two kinds.  A call at the site pushes func+5 on the
 * CPU's return stack (its return-address predictor) as well as on the
 * stack.  function_graph hooks a return by replacing the caller's return
 * address with the return trampoline; after a call-kind entry the
 * function's `ret` then goes where the return stack did not predict (the
 * caller's address), which cost ~6.5 ns a call here, and leaves the
 * prediction of the return trampoline's own jump to chance.  With the
 * jump, nothing is pushed at the site; the jump kind's trampoline enters
 * a hooked function through `call *%r11` at stitch__ftrace_call_in, the
 * three bytes just before the return trampoline, so the return address
 * the call pushes IS the return trampoline, on the stack and the return
 * stack alike: the function's `ret` is predicted, and the return
 * trampoline leaves by `push; ret` to the caller's address, the entry
 * the caller's own call pushed (predicted too).  An unhooked function is
 * entered by `jmp *%r11` to func+5.  (Calls and returns stay paired, as a
 * CET shadow stack also requires: untested, no kernel here enables it.
 * Those two indirect branches land on func+5, not on an endbr64: CET's
 * indirect branch tracking, which Linux does not enable for user space,
 * would need them `notrack`.)
 * The stack is the same as after a call-kind hooking: the return
 * trampoline in the slot above the function's frame, keyed as before, so
 * every consumer of the shadow stack (unwinders, gdb, longjmp) is
 * unchanged.
 *   A direct call's trampoline is written for the frame a call leaves
 *   ([rsp] = func+5), so a site with one gets the call, through the
 *   call stub and the record's entry word.  A site's set is direct alone
 *   or has no direct call (the core refuses mixing), and goes through
 *   untraced between the two, so its enabled instruction never changes
 *   kind while enabled; arch_ftrace_apply() picks it at enabling, from
 *   s->direct, which the core sets with the record's direct word before
 *   it switches the site, and records it (ENABLED_JMP) for the disable.
 *   Each stub leads to trampolines of its own kind only, so a thread that
 *   took either instruction finds the frame it expects, whatever was
 *   switched since:
 *     cstub: the entry word (src/core/ftrace.c publishes it with the
 *         site's set): stitch__ftrace_tramp_x86 (full), _lean_x86 (the
 *         fast ABI) or the direct trampoline: the call kind, as before;
 *     jstub: stitch__ftrace_tramp_jmp_x86, which pushes func+5 (the
 *         site's `target`) to make the call kind's frame, then runs the
 *         lean path if the record has a lean ops, else the full jump-kind
 *         trampoline; they differ from the call kind only in the exits.
 *         A thread that took the jump before a direct call replaced the
 *         site's tracers finds no tracer to call and enters the function
 *         without the direct trampoline: a call in flight during the
 *         switch, which the enable window allows.
 *   The full trampoline (either kind) saves rdi rsi rdx rcx r8 r9 rax r10
 *   and xmm0-7, calls stitch__ftrace_dispatch(cookie, parent_ip, regs),
 *   restores, and returns (or jumps) to func+5: the function runs as if
 *   the site were a NOP.  The lean one (one ops whose callbacks preserve
 *   every register, stitch/ftrace.h) saves only what it uses, see "lean
 *   trampolines" below.
 *   Reading a word is a stub's one load: a thread that took the old
 *   value of a word changed under it goes where that value said, which the
 *   core's grace periods cover (RCU for the ops, a quiescence of the
 *   regions for a direct trampoline that went).
 *
 * Protocols (what a thread at the site may execute):
 *   A. old and new are each ONE instruction of 5 bytes that poke.c's trap
 *      handler knows (x86_decode_site: the canonical NOP5 and clang's
 *      0f 1f 44 00 08 <-> jmp or call): the int3 batch of poke.c (steps
 *      1-3 there); a thread runs the NOP, the jump or the call, or traps
 *      and the handler emulates the new instruction (the jump or call, or
 *      the NOP: skip 5 bytes).  No thread can be inside the site: it is
 *      one instruction.  Patch-logged and checked like every batch;
 *      models/ftrace-x86-nop-int3-jmp.model (and its -nosync2 mutant),
 *      x86-int3-call.model, ftrace-x86-clang-nop-int3.model (and its
 *      -plain-store mutant).
 *   B. gcc's five NOPs, once per site (its first enable, or a prepare:
 *      see "Preparing" below; after it the site is a NOP5): the same int3
 *      batch, with poke.c's step 1b.  Five NOPs are five instructions, so
 *      a thread may be stopped between two of them; after step 1's sync
 *      nobody new gets past byte 0 (int3), and a quiescence asks every
 *      thread where it is, moving one found at offsets 1-4 to offset 5
 *      (skipping NOPs changes nothing).  Only then are bytes 1-4 written.
 *      Nobody is stopped: each thread runs the quiescence handler once.
 *      models/x86-five-nops-quiesce.model (SAFE), x86-five-nops.model
 *      (without the quiescence, UNSAFE).  While a thread blocks SIGTRAP
 *      the batch stops the world instead (src/core/batch.c) with the same
 *      fixup for the parked threads: models/ftrace-x86-five-nops-stop.model
 *      (SAFE) and its mutant without the fixup (UNSAFE).
 *   Either way every site is first compared with the bytes of the state
 *   the core believes it is in; one mismatch and nothing is written.
 */
#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include "arch/arch.h"
#include "arch/x86_64/insn.h"
#include "core/ftrace_asm.h"
#include "core/ftrace_internal.h"
#include "stitch/ftrace.h"

enum { FORM_NOP5, FORM_NOP5_DISP, FORM_5NOPS };
/* form bit: the compiler's five NOPs were replaced by one NOP5 (see "Preparing") */
#define CONVERTED 0x80

#define SITE_LEN 5
#define STUB_SIZE 32 /* the call stub, then the jump stub */
#define JMP_STUB 16
#define REGION_HEAD 16
/* form bit: the enabled instruction written is the jump (else the call) */
#define ENABLED_JMP 0x40

/* What the trampoline saves, in this order (offsets used by the asm below). */
struct stitch_ftrace_regs {
	uint64_t rdi, rsi, rdx, rcx, r8, r9, rax, r10, r11;
	uint64_t *parent_slot; /* the caller's return address, on the stack */
	uint8_t xmm[8][16];
};

/* general-regs-only: callable from fast-ABI callbacks (stitch/ftrace.h) */
__attribute__((target("general-regs-only"))) uintptr_t stitch_ftrace_regs_arg(const struct stitch_ftrace_regs *regs,
									 unsigned n)
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
void stitch__ftrace_tramp_jmp_full_x86(void);
void stitch__ftrace_call_in(void);
/* FULL_TRAMP name, jmpk: the call kind (jmpk 0, entered by a site's call
 * through its call stub) or the jump kind (jmpk 1, entered from
 * stitch__ftrace_tramp_jmp_x86 below, which pushed func+5 as the site's
 * call would have: the frame is the same).  Only the exits differ. */
__asm__(".macro STITCH_FULL_TRAMP name, jmpk\n"
	".p2align 4\n"
	".globl \\name\n"
	".hidden \\name\n"
	".type \\name, @function\n"
	"\\name:\n"
	"	.cfi_startproc\n"
	"	endbr64\n"
	/* [rsp] = func+5 (return into the traced function), [rsp+8] = its caller's return */
	"	pushq %rbp\n"
	"	.cfi_def_cfa_offset 16\n"
	"	.cfi_offset %rbp, -16\n"
	"	movq %rsp, %rbp\n"
	"	.cfi_def_cfa_register %rbp\n"
	"	subq $224, %rsp\n"
	"	andq $-16, %rsp\n"
	"	movq %rdi, 0(%rsp)\n"
	"	movq %rsi, 8(%rsp)\n"
	"	movq %rdx, 16(%rsp)\n"
	"	movq %rcx, 24(%rsp)\n"
	"	movq %r8, 32(%rsp)\n"
	"	movq %r9, 40(%rsp)\n"
	"	movq %rax, 48(%rsp)\n"
	"	movq %r10, 56(%rsp)\n"
	"	movq %r11, 64(%rsp)\n"   /* the record */
	"	movq $0, 208(%rsp)\n"    /* 1 once the return is hooked (the jump kind's exit) */
	"	movaps %xmm0, 80(%rsp)\n"
	"	movaps %xmm1, 96(%rsp)\n"
	"	movaps %xmm2, 112(%rsp)\n"
	"	movaps %xmm3, 128(%rsp)\n"
	"	movaps %xmm4, 144(%rsp)\n"
	"	movaps %xmm5, 160(%rsp)\n"
	"	movaps %xmm6, 176(%rsp)\n"
	"	movaps %xmm7, 192(%rsp)\n"
	/* Fast path (the lean trampoline's, for callbacks of the plain ABI):
	 * one ops on the site (record->single), not a tail call, nothing to
	 * prune; else the dispatcher.  Every caller-saved register is saved
	 * above.  The guard, then urcu-bp's read lock (r9: the thread's
	 * reader; see "RCU in the fast paths"); 8: leaves both, 2: the guard
	 * alone, before the dispatcher. */
	".if " STR(FT_ASM_FAST) "\n"
	"	movq stitch__ftrace_thread@gottpoff(%rip), %rax\n"
	"	testb $1, %fs:" STR(T_SEQ) "(%rax)\n"
	"	jz 3f\n"
	"	movq %rsp, %fs:" STR(T_SEQ) "(%rax)\n" /* the guard: this frame */
	"	movq urcu_bp_reader@gottpoff(%rip), %r9\n"
	"	movq %fs:(%r9), %r9\n"
	"	testq %r9, %r9\n"
	"	jz 2f\n"                /* not registered yet: urcu_bp_read_lock() will */
	"	cmpl $0, " STR(U_CTR) "(%r9)\n"
	"	jne 2f\n"               /* nested in another read section */
	"	movq urcu_bp_gp@GOTPCREL(%rip), %r10\n"
	"	movq " STR(U_GP_CTR) "(%r10), %r10\n"
	"	movq %r10, " STR(U_CTR) "(%r9)\n"
	"	movq " STR(R_SINGLE) "(%r11), %rdx\n"
	"	testq %rdx, %rdx\n"
	"	jz 8f\n"
	"	movq 16(%rbp), %rsi\n"  /* parent ip */
	"	leaq stitch__ftrace_return(%rip), %rdi\n"
	"	cmpq %rdi, %rsi\n"
	"	je 8f\n"
	"	cmpq $0, " STR(O_RETF) "(%rdx)\n"
	"	jne 5f\n"
	"	movq " STR(R_IP) "(%r11), %rdi\n"
	"	movq %rsp, %rcx\n"      /* regs (parent_slot is the dispatcher's) */
	"	call *" STR(O_FUNC) "(%rdx)\n" /* no ret_func: func is set */
	"4:	movq urcu_bp_reader@gottpoff(%rip), %rax\n"
	"	movq %fs:(%rax), %rax\n"
	"	subq $" STR(U_COUNT) ", " STR(U_CTR) "(%rax)\n" /* urcu-bp's read unlock */
	"	movq stitch__ftrace_thread@gottpoff(%rip), %rax\n"
	"	movq $" STR(FT_SEQ_OUT_N) ", %fs:" STR(T_SEQ) "(%rax)\n"
	"	jmp 1f\n"
	"5:	movq %fs:" STR(T_SHADOW) "(%rax), %r8\n"
	"	testq %r8, %r8\n"
	"	jz 8f\n"
	"	movq " STR(S_DEPTH) "(%r8), %rcx\n"
	"	cmpq $" STR(STITCH_FTRACE_GRAPH_DEPTH) ", %rcx\n"
	"	jae 8f\n"
	"	shlq $5, %rcx\n"
	"	jz 6f\n"
	"	leaq 25(%rbp), %rdi\n"  /* key | 1 (see the lean trampoline) */
	"	cmpq %rdi, " STR(S_E) "-32+" STR(E_KEY) "(%r8,%rcx)\n"
	"	jbe 8f\n"
	"6:	incq " STR(S_DEPTH) "(%r8)\n"
	"	leaq " STR(S_E) "(%r8,%rcx), %r8\n"
	"	movq %rsi, " STR(E_ORIG) "(%r8)\n"
	"	leaq 24(%rbp), %rdi\n"  /* key */
	"	movq %rdi, " STR(E_KEY) "(%r8)\n"
	"	movq %r11, " STR(E_REC) "(%r8)\n"
	"	movq %rdx, " STR(E_OPS) "(%r8)\n"
	"	movq " STR(O_FUNC) "(%rdx), %rax\n"
	"	testq %rax, %rax\n"
	"	jz 7f\n"
	"	movq " STR(R_IP) "(%r11), %rdi\n"
	"	movq %rsp, %rcx\n"
	"	call *%rax\n"
	"7:	leaq stitch__ftrace_return(%rip), %rdi\n"
	"	movq %rdi, 16(%rbp)\n"  /* hook the return */
	"	movq $1, 208(%rsp)\n"
	"	jmp 4b\n"
	"8:	subq $" STR(U_COUNT) ", " STR(U_CTR) "(%r9)\n"
	"2:	movq $" STR(FT_SEQ_OUT_N) ", %fs:" STR(T_SEQ) "(%rax)\n"
	".endif\n"
	"3:	movq %r11, %rdi\n"      /* cookie */
	"	leaq 16(%rbp), %r11\n"
	"	movq %r11, 72(%rsp)\n"  /* parent_slot */
	"	movq 16(%rbp), %rsi\n"  /* parent ip */
	"	movq %rsp, %rdx\n"      /* regs */
	"	call stitch__ftrace_dispatch\n"
	"	movzbl %al, %eax\n"      /* true: it hooked the return */
	"	movq %rax, 208(%rsp)\n"
	"1:	movq 0(%rsp), %rdi\n"
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
	".if \\jmpk\n"
	/* hooked?  (The flags survive to the jnz.  Set only by a hooking:
	 * a hooked return entered by the jump would still return right,
	 * through the slot, only unpredicted; an unhooked one entered by the
	 * call would have its caller's address overwritten.) */
	"	cmpq $0, 208(%rsp)\n"
	"	movq %rbp, %rsp\n"
	"	popq %rbp\n"
	"	.cfi_def_cfa %rsp, 8\n"
	"	popq %r11\n"             /* func+5 */
	"	.cfi_def_cfa_offset 0\n"
	"	.cfi_undefined rip\n"
	"	jnz 13f\n"
	"	jmp *%r11\n"             /* not hooked: into the function, as past a NOP */
	"13:	addq $8, %rsp\n"         /* hooked: where the caller's return address was; */
	"	jmp stitch__ftrace_call_in\n" /* the call there pushes the return trampoline */
	".else\n"
	"	movq %rbp, %rsp\n"
	"	popq %rbp\n"
	"	.cfi_def_cfa %rsp, 8\n"
	"	ret\n"
	".endif\n"
	"	.cfi_endproc\n"
	".size \\name, . - \\name\n"
	".endm\n"
	".text\n"
	"STITCH_FULL_TRAMP stitch__ftrace_tramp_x86, 0\n"
	"STITCH_FULL_TRAMP stitch__ftrace_tramp_jmp_full_x86, 1\n"
	".globl stitch__ftrace_tramp_x86_end\n"
	".hidden stitch__ftrace_tramp_x86_end\n"
	"stitch__ftrace_tramp_x86_end:\n");

/*
 * function_graph (src/core/ftrace.c): the caller's return address is the
 * stack word above the call's, 16(%rbp) in the trampoline; the function
 * returns with %rsp just above it.  The return trampoline is entered by
 * the function's `ret`; it keeps rax, rdx, xmm0 and xmm1 (every SysV
 * return register but the x87 stack, which C code here does not touch)
 * and goes to the real return address by `push %r11; ret` (r11 is a
 * scratch register at a return as at an entry; the `ret` pairs with the
 * caller's call, see "Why a jump" above).
 */
struct stitch_ftrace_ret_regs {
	uint64_t rax, rdx;
	uint8_t xmm[2][16];
};

__attribute__((target("general-regs-only"))) uintptr_t
stitch_ftrace_ret_value(const struct stitch_ftrace_ret_regs *rregs)
{
	return rregs ? rregs->rax : 0;
}


/*
 * Lean trampolines: the fast ABI (STITCH_FTRACE_F_PRESERVES_REGS, stitch/ftrace.h).
 * The site's record holds, in `lean`, the one ops of its set when that
 * ops' callbacks preserve every register; the entry word sends the stub
 * here then.  This code does, in assembly, what the dispatcher and
 * stitch__ftrace_graph_return() do for the common cases, and hands every
 * other case to them (through the full trampoline, or the C half of the
 * return trampoline) from a state where it changed nothing:
 *
 *   entry (r11 = record; [rsp] = func+5, [rsp+8] = the caller's return;
 *     the jump kind pushed func+5 itself, and went to its full trampoline
 *     at once if record->lean was NULL):
 *     push rax; rax = stitch__ftrace_thread's %fs offset
 *     seq odd? else (first call of the thread, or inside a callback) -> full path
 *     seq = rsp (even: the recursion guard is set; the section's frame,
 *     for a longjmp() out of it: core/ftrace.c)
 *     push rdi rsi rdx rcx r8 (the callbacks' arguments and scratch)
 *     RCU_LOCK (below); the thread not registered with urcu-bp, or
 *       already in a read section -> leave the guard, full path
 *     ops = record->lean; NULL (no longer alone, or not lean) -> leave, full path
 *     parent == the return trampoline (a hooked function's tail call) -> leave, full path
 *     no ret_func: func(ip, parent, ops, NULL)
 *     ret_func: unless the shadow stack is mapped, not full, and empty or
 *       its top entry's key is above this call's (nothing to prune)
 *       -> leave, full path; depth += 1, fill the entry {orig, key,
 *       record, ops}; func(...) if set; [rsp+8] = return trampoline
 *     RCU_UNLOCK; seq = 1 (odd); pop; ret (the jump kind: pop func+5
 *     into r11; hooked: drop the hooked slot and enter the function by
 *     the call at stitch__ftrace_call_in, else jmp *r11)
 *   return (rsp = key; rax rdx xmm0 xmm1: the value; rdi rsi rcx r8-r11 free):
 *     seq odd and the top entry's key is rsp (a tail call's entry has
 *     bit 0 of its key set: never equal), else -> the C half; seq = rsp;
 *     RCU_LOCK, else seq = 1, C half;
 *     record->lean_ret == the entry's ops (alone and lean on the site,
 *     with a ret_func; never NULL), else (and not single_ret either)
 *     RCU_UNLOCK, seq = 1, C half;
 *     depth -= 1; push rdx rax (rregs); ret_func(ip, orig, ops, rregs);
 *     pop; orig into r11 (before leaving: a signal handler's traced call
 *     may reuse the popped slot once seq is odd); RCU_UNLOCK; seq = 1;
 *     push r11; ret (predicted after a jump-kind entry; after a call-kind
 *     one, only around a switch, a misprediction)
 * The full trampoline's fast path (record->single, plain ABI) is the same
 * after its register saves.  "leave" is RCU_UNLOCK then seq = 1.
 *
 * RCU in the fast paths: liburcu-bp's read side, inlined as
 * _urcu_bp_read_lock() / _urcu_bp_read_unlock() (<urcu/static/urcu-bp.h>)
 * do it, for the outermost section only:
 *   RCU_LOCK:   r = the thread's urcu_bp_reader (initial-exec TLS, %fs);
 *               r == NULL (not registered: urcu_bp_register() is for the
 *               C path) or r->ctr & URCU_BP_GP_CTR_NEST_MASK (nested in a
 *               section of the thread's own, e.g. the application's: the
 *               C path nests) -> not taken;
 *               r->ctr = urcu_bp_gp.ctr (phase + URCU_BP_GP_COUNT)
 *   RCU_UNLOCK: r (reloaded: the callback may clobber it)->ctr -= URCU_BP_GP_COUNT
 * liburcu's urcu_bp_smp_mb_slave() after the lock's store and before the
 * unlock's is a compiler barrier when urcu_bp_has_sys_membarrier, a full
 * fence otherwise; records hold a `lean` or `single` ops (and a
 * lean_ret/single_ret other than FT_NO_LEAN_RET) only when it is set
 * (ft_fast_ok() in ftrace.c; liburcu-bp sets it once, at its
 * initialization), so the assembly needs no fence: the membarrier() in
 * urcu_bp_synchronize_rcu() orders a reader's ctr store before its loads
 * of the record and the ops, and its loads and calls before the unlock's
 * store.  The constants and offsets are liburcu's, as asm operands here
 * and _Static_assert'ed for the full trampoline's top-level asm (which
 * takes no operands); the nesting mask is the low 32 bits of ctr
 * (cmpl $0, checked).
 *
 * A thread interrupted anywhere in them: before the guard is set (seq
 * odd), a signal handler's traced calls run normally, push and pop their
 * shadow entries above ours (or fill the slot we are about to fill and
 * pop it again before the handler returns), and leave urcu-bp's ctr as
 * they found it (their own sections are outermost and balanced); once it
 * is set (seq even), the handler's traced calls call nothing, take no
 * read section and touch no shadow entry, so the lock's load-test-store
 * of ctr and the unlock's decrement are never interleaved with another
 * section of the same thread.  Between RCU_LOCK's store and RCU_UNLOCK's
 * decrement the thread is a reader of urcu-bp in the current phase: an
 * unregister or set change unpublishes the record's ops, then
 * urcu_bp_synchronize_rcu() waits until that ctr shows the thread outside
 * the section (or in one begun after the grace period started, which
 * loads the unpublished state), so record->lean/single, the ops and its
 * callbacks stay valid while used here, and unregister returns only after
 * the thread left them.  A thread interrupted between the guard and
 * RCU_LOCK, or after RCU_UNLOCK, holds nothing RCU protects.
 * The callbacks preserve every general register but their argument
 * registers (their contract; GCC's no_caller_saved_registers preserves
 * those too, clang's does not), which are saved here, so the traced
 * function's arguments, and rax and rdx at the return, come back as they
 * were; no xmm register is touched here.  The stack stays as aligned as
 * the traced function's caller left it (6 pushes at the entry, 2 at the
 * return).  Without liburcu (FT_ASM_FAST 0) the lean entry jumps to the
 * full trampoline, which calls the dispatcher, and the return trampoline
 * is its C half only.
 */
uintptr_t *arch_ftrace_parent_slot(struct stitch_ftrace_regs *regs, uintptr_t *key)
{
	*key = (uintptr_t)(regs->parent_slot + 1);
	return (uintptr_t *)regs->parent_slot;
}

/* The return address never moves on x86-64: the call pushed it just below
 * the stack pointer the function returns with. */
uintptr_t *arch_ftrace_return_slot(uintptr_t key)
{
	return (uintptr_t *)key - 1;
}

/* DWARF register numbers: rsp is 7, the return address (RIP) column 16. */
const struct arch_dwarf_return arch_ftrace_return_dwarf = { .sp_reg = 7, .ra_column = 16 };

/* Not asked: the slot has its fixed place. */
uintptr_t *arch_ftrace_return_slot_usual(uintptr_t sp, uintptr_t cfa)
{
	(void)sp;
	return (uintptr_t *)cfa - 1;
}

_Static_assert(offsetof(struct ft_rec, entry) == 8, "the stub's jmp *8(%r11)");

void stitch__ftrace_tramp_lean_x86(void);
void stitch__ftrace_tramp_jmp_x86(void);

/*
 * Never called: its asm puts both trampolines in a text section of their
 * own, with the offsets.  Not in this function's own section: there they
 * would lie inside its unwind information's range, and an unwinder that
 * meets a hooked frame's return address (this return trampoline) would
 * apply this function's rules there and walk on through garbage (glibc's
 * backtrace() crashed so).  Outside any range, an unwinder stops there as
 * at the end of the stack (ftrace_unwind.c makes the usual ones walk the
 * real return addresses instead).
 */
__attribute__((used)) static void lean_trampolines(void)
{
	__asm__ volatile(
		".pushsection .text.stitch_trampolines, \"ax\", @progbits\n"
		/* LEAN_TRAMP name, jmpk, full: the call kind, entered by the
		 * site's call through its stub's entry word, or the jump kind,
		 * entered by the site's jump through its jump stub, which first
		 * pushes func+5 as the call would have (the frame is then the
		 * same) and sends a site with no lean ops straight on to the full
		 * trampoline of its kind.  Only the exits differ. */
		".macro STITCH_LEAN_TRAMP name, jmpk, full\n"
		".p2align 4\n"
		".globl \\name\n"
		".hidden \\name\n"
		".type \\name, @function\n"
		"\\name:\n"
		"	endbr64\n"
		".if \\jmpk\n"
		"	pushq %c[resume](%%r11)\n"              /* where the site's call would return */
		"	cmpq $0, %c[lean](%%r11)\n"            /* a hint (the RCU read below decides) */
		"	je \\full\n"
		".endif\n"
		".if %c[fast]\n"
		"	pushq %%rax\n"
		"	movq stitch__ftrace_thread@gottpoff(%%rip), %%rax\n"
		"	testb $1, %%fs:%c[seq](%%rax)\n"
		"	jz 9f\n"
		"	movq %%rsp, %%fs:%c[seq](%%rax)\n"       /* the guard: this frame */
		"	pushq %%rdi\n"
		"	pushq %%rsi\n"
		"	pushq %%rdx\n"
		"	pushq %%rcx\n"
		"	pushq %%r8\n"
		/* urcu-bp's read lock (_urcu_bp_read_lock, outermost case) */
		"	movq urcu_bp_reader@gottpoff(%%rip), %%rcx\n"
		"	movq %%fs:(%%rcx), %%rcx\n"
		"	testq %%rcx, %%rcx\n"
		"	jz 8f\n"
		"	cmpl $0, %c[u_ctr](%%rcx)\n"
		"	jne 8f\n"
		"	movq urcu_bp_gp@GOTPCREL(%%rip), %%r8\n"
		"	movq %c[u_gp_ctr](%%r8), %%r8\n"
		"	movq %%r8, %c[u_ctr](%%rcx)\n"
		"	movq %c[lean](%%r11), %%rdx\n"
		"	testq %%rdx, %%rdx\n"
		"	jz 3f\n"
		"	movq 56(%%rsp), %%rsi\n"                 /* parent ip */
		"	leaq stitch__ftrace_return(%%rip), %%rdi\n"
		"	cmpq %%rdi, %%rsi\n"
		"	je 3f\n"
		"	cmpq $0, %c[retf](%%rdx)\n"
		"	jne 5f\n"
		"	movq %c[ip](%%r11), %%rdi\n"
		"	xorl %%ecx, %%ecx\n"
		"	call *%c[func](%%rdx)\n"                 /* no ret_func: func is set */
		"4:	movq urcu_bp_reader@gottpoff(%%rip), %%rcx\n"
		"	movq %%fs:(%%rcx), %%rcx\n"
		"	subq $%c[u_count], %c[u_ctr](%%rcx)\n"     /* read unlock */
		"	movq $%c[seq_out], %%fs:%c[seq](%%rax)\n"
		"	popq %%r8\n"
		"	popq %%rcx\n"
		"	popq %%rdx\n"
		"	popq %%rsi\n"
		"	popq %%rdi\n"
		"	popq %%rax\n"
		".if \\jmpk\n"
		"	popq %%r11\n"                           /* into the function, as past a NOP */
		"	jmp *%%r11\n"
		".else\n"
		"	ret\n"
		".endif\n"
		"5:	movq %%fs:%c[shadow](%%rax), %%r8\n"
		"	testq %%r8, %%r8\n"
		"	jz 3f\n"
		"	movq %c[depth](%%r8), %%rcx\n"
		"	cmpq $%c[max], %%rcx\n"
		"	jae 3f\n"
		"	shlq $5, %%rcx\n"
		"	jz 6f\n"
		/* prune nothing: the top entry's key is above ours (compared
		 * as key | 1: a tail call's tagged key equal to ours is not) */
		"	leaq 65(%%rsp), %%rdi\n"
		"	cmpq %%rdi, %c[e]-32+%c[key](%%r8,%%rcx)\n"
		"	jbe 3f\n"
		/* the entry, before func (nobody looks at it meanwhile): after
		 * the call only r11 and rax are still ours (clang's callbacks
		 * need not preserve their argument registers) */
		"6:	incq %c[depth](%%r8)\n"
		"	leaq %c[e](%%r8,%%rcx), %%r8\n"
		"	movq %%rsi, %c[orig](%%r8)\n"
		"	leaq 64(%%rsp), %%rdi\n"
		"	movq %%rdi, %c[key](%%r8)\n"
		"	movq %%r11, %c[rec](%%r8)\n"
		"	movq %%rdx, %c[ops](%%r8)\n"
		"	cmpq $0, %c[func](%%rdx)\n"
		"	je 7f\n"
		"	movq %c[ip](%%r11), %%rdi\n"
		"	xorl %%ecx, %%ecx\n"
		"	call *%c[func](%%rdx)\n"
		"7:	leaq stitch__ftrace_return(%%rip), %%rdi\n"
		"	movq %%rdi, 56(%%rsp)\n"                 /* hook the return */
		"	movq urcu_bp_reader@gottpoff(%%rip), %%rcx\n"
		"	movq %%fs:(%%rcx), %%rcx\n"
		"	subq $%c[u_count], %c[u_ctr](%%rcx)\n"     /* read unlock */
		"	movq $%c[seq_out], %%fs:%c[seq](%%rax)\n"
		"	popq %%r8\n"
		"	popq %%rcx\n"
		"	popq %%rdx\n"
		"	popq %%rsi\n"
		"	popq %%rdi\n"
		"	popq %%rax\n"
		".if \\jmpk\n"
		"	popq %%r11\n"                           /* func+5 */
		"	addq $8, %%rsp\n"                       /* the hooked slot: the call pushes it again */
		"	jmp stitch__ftrace_call_in\n"
		".else\n"
		"	ret\n"
		".endif\n"
		/* 3: read unlock (the reader reloaded: rcx was reused), 8: the guard */
		"3:	movq urcu_bp_reader@gottpoff(%%rip), %%rcx\n"
		"	movq %%fs:(%%rcx), %%rcx\n"
		"	subq $%c[u_count], %c[u_ctr](%%rcx)\n"
		"8:	popq %%r8\n"
		"	popq %%rcx\n"
		"	popq %%rdx\n"
		"	popq %%rsi\n"
		"	popq %%rdi\n"
		"	movq $%c[seq_out], %%fs:%c[seq](%%rax)\n"
		"9:	popq %%rax\n"
		".endif\n"
		"	jmp \\full\n"
		".size \\name, . - \\name\n"
		".endm\n"
		"STITCH_LEAN_TRAMP stitch__ftrace_tramp_lean_x86, 0, stitch__ftrace_tramp_x86\n"
		"STITCH_LEAN_TRAMP stitch__ftrace_tramp_jmp_x86, 1, stitch__ftrace_tramp_jmp_full_x86\n"

		/* The return trampoline: the lean fast path, then the C half.
		 * Just before it, stitch__ftrace_call_in: the jump kind's entry
		 * into a hooked function (r11 = func+5, rsp = the entry's key),
		 * whose 3-byte call pushes this trampoline's address.  No
		 * instruction starts one byte before the trampoline: an unwinder's
		 * look-up of that byte is for a frame returning here
		 * (core/ftrace_unwind.c answers it). */
		".p2align 4\n"
		".skip 13, 0xcc\n"
		".globl stitch__ftrace_call_in\n"
		".hidden stitch__ftrace_call_in\n"
		"stitch__ftrace_call_in:\n"
		"	call *%%r11\n"                          /* 41 ff d3: pushes the return trampoline */
		".globl stitch__ftrace_return\n"
		".hidden stitch__ftrace_return\n"
		".type stitch__ftrace_return, @function\n"
		"stitch__ftrace_return:\n"
		".if %c[fast]\n"
		"	movq stitch__ftrace_thread@gottpoff(%%rip), %%r8\n"
		"	testb $1, %%fs:%c[seq](%%r8)\n"
		"	jz 2f\n"
		"	movq %%fs:%c[shadow](%%r8), %%r9\n"
		"	testq %%r9, %%r9\n"
		"	jz 2f\n"
		"	movq %c[depth](%%r9), %%r10\n"
		"	shlq $5, %%r10\n"
		"	jz 2f\n"
		"	leaq %c[e]-32(%%r9,%%r10), %%r10\n"       /* the top entry */
		"	cmpq %%rsp, %c[key](%%r10)\n"
		"	jne 2f\n"
		"	movq %c[ops](%%r10), %%rdi\n"
		"	movq %c[rec](%%r10), %%rcx\n"
		"	movq %%rsp, %%fs:%c[seq](%%r8)\n"       /* the guard: the caller's stack pointer */
		/* urcu-bp's read lock (rsi: the reader), then the RCU reads */
		"	movq urcu_bp_reader@gottpoff(%%rip), %%rsi\n"
		"	movq %%fs:(%%rsi), %%rsi\n"
		"	testq %%rsi, %%rsi\n"
		"	jz 0f\n"
		"	cmpl $0, %c[u_ctr](%%rsi)\n"
		"	jne 0f\n"
		"	movq urcu_bp_gp@GOTPCREL(%%rip), %%r11\n"
		"	movq %c[u_gp_ctr](%%r11), %%r11\n"
		"	movq %%r11, %c[u_ctr](%%rsi)\n"
		"	cmpq %%rdi, %c[lean_ret](%%rcx)\n"      /* the ops, alone on the site, with its ret_func */
		"	jne 1f\n"
		"	movq %c[orig](%%r10), %%rsi\n"
		"	movq %c[retf](%%rdi), %%r11\n"
		"	decq %c[depth](%%r9)\n"
		"	pushq %%rdx\n"
		"	pushq %%rax\n"
		"	movq %%rdi, %%rdx\n"
		"	movq %c[ip](%%rcx), %%rdi\n"
		"	movq %%rsp, %%rcx\n"
		"	call *%%r11\n"                          /* r8 and r10 survive it */
		"	popq %%rax\n"
		"	popq %%rdx\n"
		"	movq %c[orig](%%r10), %%r11\n"          /* before leaving: see above */
		"	movq urcu_bp_reader@gottpoff(%%rip), %%rsi\n"
		"	movq %%fs:(%%rsi), %%rsi\n"
		"	subq $%c[u_count], %c[u_ctr](%%rsi)\n"     /* read unlock */
		"	movq $%c[seq_out], %%fs:%c[seq](%%r8)\n"
		"	pushq %%r11\n"
		"	ret\n"
		/* one ops of the plain ABI with a ret_func: its rregs are rax
		 * rdx xmm0 xmm1, saved in an aligned frame with orig */
		"1:	cmpq %%rdi, %c[single_ret](%%rcx)\n"
		"	jne 10f\n"
		"	movq %c[orig](%%r10), %%rsi\n"
		"	decq %c[depth](%%r9)\n"
		"	pushq %%rbp\n"
		"	movq %%rsp, %%rbp\n"
		"	subq $64, %%rsp\n"
		"	andq $-16, %%rsp\n"
		"	movq %%rax, 0(%%rsp)\n"
		"	movq %%rdx, 8(%%rsp)\n"
		"	movaps %%xmm0, 16(%%rsp)\n"
		"	movaps %%xmm1, 32(%%rsp)\n"
		"	movq %%rsi, 48(%%rsp)\n"
		"	movq %%rdi, %%rdx\n"
		"	movq %c[ip](%%rcx), %%rdi\n"
		"	movq %%rsp, %%rcx\n"
		"	call *%c[retf](%%rdx)\n"
		"	movq 48(%%rsp), %%r11\n"
		"	movq 0(%%rsp), %%rax\n"
		"	movq 8(%%rsp), %%rdx\n"
		"	movaps 16(%%rsp), %%xmm0\n"
		"	movaps 32(%%rsp), %%xmm1\n"
		"	movq %%rbp, %%rsp\n"
		"	popq %%rbp\n"
		"	movq urcu_bp_reader@gottpoff(%%rip), %%rsi\n"
		"	movq %%fs:(%%rsi), %%rsi\n"
		"	subq $%c[u_count], %c[u_ctr](%%rsi)\n"     /* read unlock */
		"	movq stitch__ftrace_thread@gottpoff(%%rip), %%r8\n"
		"	movq $%c[seq_out], %%fs:%c[seq](%%r8)\n"
		"	pushq %%r11\n"
		"	ret\n"
		"10:	subq $%c[u_count], %c[u_ctr](%%rsi)\n"   /* read unlock, the guard, the C half */
		"0:	movq $%c[seq_out], %%fs:%c[seq](%%r8)\n"
		".endif\n"
		"2:	pushq %%rbp\n"
		"	movq %%rsp, %%rbp\n"
		"	subq $48, %%rsp\n"
		"	andq $-16, %%rsp\n"      /* whatever the function left, the C call is aligned */
		"	movq %%rax, 0(%%rsp)\n"
		"	movq %%rdx, 8(%%rsp)\n"
		"	movaps %%xmm0, 16(%%rsp)\n"
		"	movaps %%xmm1, 32(%%rsp)\n"
		"	leaq 8(%%rbp), %%rdi\n"   /* key: the stack pointer the function returned with */
		"	movq %%rsp, %%rsi\n"      /* ret regs */
		"	call stitch__ftrace_graph_return\n"
		"	movq %%rax, %%r11\n"      /* r11: scratch at a return, as at an entry */
		"	movq 0(%%rsp), %%rax\n"
		"	movq 8(%%rsp), %%rdx\n"
		"	movaps 16(%%rsp), %%xmm0\n"
		"	movaps 32(%%rsp), %%xmm1\n"
		"	movq %%rbp, %%rsp\n"
		"	popq %%rbp\n"
		"	pushq %%r11\n"
		"	ret\n"
		".size stitch__ftrace_return, . - stitch__ftrace_return\n"
		".globl stitch__ftrace_return_end\n"
		".hidden stitch__ftrace_return_end\n"
		"stitch__ftrace_return_end:\n"
		".popsection\n"
		:
		: [seq] "i"(offsetof(struct ft_thread, seq)), [seq_out] "i"(FT_SEQ_OUT), [shadow] "i"(offsetof(struct ft_thread, shadow)),
		  [lean] "i"(offsetof(struct ft_rec, lean)), [lean_ret] "i"(offsetof(struct ft_rec, lean_ret)),
		  [single_ret] "i"(offsetof(struct ft_rec, single_ret)),
		  [ip] "i"(offsetof(struct ft_rec, a.func)),
		  [func] "i"(offsetof(struct stitch_ftrace_ops, func)),
		  [retf] "i"(offsetof(struct stitch_ftrace_ops, ret_func)),
		  [depth] "i"(offsetof(struct ft_shadow_stack, depth)), [e] "i"(offsetof(struct ft_shadow_stack, e)),
		  [max] "i"(STITCH_FTRACE_GRAPH_DEPTH), [orig] "i"(offsetof(struct ft_shadow, orig)),
		  [key] "i"(offsetof(struct ft_shadow, key)), [rec] "i"(offsetof(struct ft_shadow, rec)),
		  [ops] "i"(offsetof(struct ft_shadow, ops)), [resume] "i"(offsetof(struct ft_rec, a.target)),
		  [fast] "i"(FT_ASM_FAST), [u_ctr] "i"(U_CTR_OP),
		  [u_gp_ctr] "i"(U_GP_CTR_OP), [u_count] "i"(U_COUNT_OP));
}

uintptr_t arch_ftrace_entry(uintptr_t direct, bool lean)
{
	if (direct)
		return direct;
	return (uintptr_t)(lean ? stitch__ftrace_tramp_lean_x86 : stitch__ftrace_tramp_x86);
}

bool arch_ftrace_has_lean(void)
{
	return FT_ASM_FAST;
}



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

/* At the symbol, or after an endbr64 (-fcf-protection). */
uintptr_t arch_ftrace_record_of(uintptr_t func)
{
	static const uint8_t endbr64[] = { 0xf3, 0x0f, 0x1e, 0xfa };
	return memcmp((const void *)func, endbr64, sizeof(endbr64)) == 0 ? func + sizeof(endbr64) : func;
}

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
	memset(buf, X86_INT3, arch_ftrace_region_size(n));
	uint64_t jmp_tramp = (uint64_t)(uintptr_t)stitch__ftrace_tramp_jmp_x86;
	memcpy(buf, &jmp_tramp, sizeof(jmp_tramp)); /* the region's head: the jump stubs' target */
	for (size_t i = 0; i < n; i++) {
		uint8_t *st = buf + REGION_HEAD + STUB_SIZE * i;
		uint64_t cookie = cookies[i];
		/* the call stub: movabs $cookie, %r11; jmp *8(%r11) (the record's entry word) */
		static const uint8_t jmp_entry_word[] = { 0x41, 0xff, 0x63, 0x08 };
		st[0] = 0x49;
		st[1] = 0xbb;
		memcpy(st + 2, &cookie, 8);
		memcpy(st + 10, jmp_entry_word, sizeof(jmp_entry_word));
		/* the jump stub: movabs $cookie, %r11; jmp *head(%rip) */
		uint8_t *js = st + JMP_STUB;
		js[0] = 0x49;
		js[1] = 0xbb;
		memcpy(js + 2, &cookie, 8);
		int32_t to_head = (int32_t)-(REGION_HEAD + STUB_SIZE * i + JMP_STUB + 16);
		js[10] = 0xff;
		js[11] = 0x25;
		memcpy(js + 12, &to_head, 4);
		sites[i]->stub = addr + REGION_HEAD + STUB_SIZE * i;
		sites[i]->target = sites[i]->patch + SITE_LEN; /* the jump kind pushes it */
		sites[i]->cookie = cookies[i];
	}
	return 0;
}

bool arch_ftrace_site_lost(const struct arch_ftrace_site *s, bool enabled)
{
	/* a converted site showing the compiler's five NOPs again, enabled or not */
	if ((s->form & CONVERTED) && memcmp((const void *)s->patch, five_nops, SITE_LEN) == 0)
		return true;
	return enabled && memcmp((const void *)s->patch, s->orig, SITE_LEN) == 0;
}

/* ---- applying --------------------------------------------------------------- */

/* The enabled instruction: the jump to the jump stub, or (jmp false) the
 * call to the call stub. */
static int enabled_bytes(const struct arch_ftrace_site *s, bool jmp, uint8_t out[SITE_LEN])
{
	uintptr_t to = jmp ? s->stub + JMP_STUB : s->stub;
	int err = (jmp ? x86_encode_jmp_rel32 : x86_encode_call_rel32)(out, s->patch, to);
	if (err)
		return stitch_fail(STITCH_ERANGE, "site %#lx: trampoline %#lx is out of rel32 range",
				   (unsigned long)s->patch, (unsigned long)to);
	return 0;
}

/*
 * Preparing gcc's five NOPs.  Five 1-byte NOPs are five instructions, and
 * a thread may be stopped between them; protocol B copes with that by a
 * quiescence (or the stopped world's fixup), protocol A needs none.  Once
 * B has replaced them (the site's first enable, or arch_ftrace_prepare()
 * for stitch_ftrace_prepare()), no thread can be inside them any more, and
 * none can enter them again: the site's disabled form is from then on the
 * canonical NOP5 (FORM_NOP5 | CONVERTED, orig = NOP5).  Every later switch
 * of it is protocol A, which asks no thread anything, and the untraced
 * function runs one NOP instead of five.  A disable never writes the five
 * NOPs back: the NOP5 does the same, and a site's disabled bytes are its
 * prepared form, as on AArch64 and RISC-V (docs/ftrace.md).  The CONVERTED
 * bit also tells arch_ftrace_site_lost() that five NOPs there mean a
 * reloaded module.
 */
static void convert_to_nop5(struct arch_ftrace_site *s)
{
	s->form = (uint8_t)(FORM_NOP5 | CONVERTED | (s->form & ENABLED_JMP));
	memcpy(s->orig, nop5, SITE_LEN);
}

/* Enabling, the site gets the jump but for a direct call (src/core/ftrace.c
 * sets s->direct with the record's direct word, before it switches the
 * site), whose trampoline expects the frame of a call.  s->direct, not the
 * word: the word is in the record's other cache line, which a switch of
 * 100 000 sites would otherwise load again (~3 ms here). */
static bool enables_jmp(const struct arch_ftrace_site *s)
{
	return !s->direct;
}

int arch_ftrace_apply(struct arch_ftrace_site *const *sites, bool *enabled, const bool *enable, size_t n)
{
	/* scratch, not calloc: 100 000 sites are 5 MB; every field used is set below */
	struct stitch_patch *p = stitch_scratch(STITCH_SCRATCH_ARCH, (n ? n : 1) * sizeof(*p));
	size_t np = 0, converting = 0;
	int err = !p ? -STITCH_ENOMEM : 0;
	for (size_t i = 0; i < n && !err; i++) {
		struct arch_ftrace_site *s = sites[i];
		if (enabled[i] == enable[i])
			continue;
		/* enabling: the jump, but for a direct call, whose trampoline is
		 * entered as by a call; disabling: what was written */
		bool jmp = enable[i] ? enables_jmp(s) : (s->form & ENABLED_JMP) != 0;
		uint8_t insn[sizeof(s->orig)] = { 0 }; /* all 8 copied below: SITE_LEN of them count */
		err = enabled_bytes(s, jmp, insn);
		if (err)
			break;
		/* scratch: every field set (100 000 patches, no memset) */
		struct stitch_patch *q = &p[np++];
		q->addr = s->patch;
		q->len = SITE_LEN;
		q->data = false;
		q->lead = 0;
		_Static_assert(sizeof(q->old) == sizeof(s->orig) && sizeof(q->new_bytes) == sizeof(s->orig),
			       "a site's bytes are copied as one word");
		memcpy(q->old, enabled[i] ? insn : s->orig, sizeof(q->old));
		memcpy(q->new_bytes, enable[i] ? insn : s->orig, sizeof(q->new_bytes));
		converting += s->form == FORM_5NOPS; /* enabled for the first time */
		/* the kind about to be written, while this line is at hand (not
		 * in a pass of its own: 100 000 sites' lines, ~0.4 ms); undone
		 * below if the batch fails */
		if (enable[i] && jmp)
			s->form |= ENABLED_JMP;
		else
			s->form &= (uint8_t)~ENABLED_JMP;
	}
	if (!err && np)
		err = stitch_apply_patches_inplace_locked(p, np, "ftrace switch");
	if (err) {
		/* the kind bits back: what the patches list as old is in memory */
		for (size_t i = 0, j = 0; i < n && j < np; i++) {
			if (enabled[i] == enable[i])
				continue;
			if (enabled[i] && p[j].old[0] == X86_JMP_REL32)
				sites[i]->form |= ENABLED_JMP;
			else
				sites[i]->form &= (uint8_t)~ENABLED_JMP;
			j++;
		}
		return err;
	}
	for (size_t i = 0; i < n; i++) {
		if (converting && enable[i] && !enabled[i] && (sites[i]->form & ~ENABLED_JMP) == FORM_5NOPS)
			convert_to_nop5(sites[i]); /* see "Preparing" */
		enabled[i] = enable[i];
	}
	return 0;
}

int arch_ftrace_prepare(struct arch_ftrace_site *const *sites, size_t n)
{
	struct stitch_patch *p = stitch_scratch(STITCH_SCRATCH_ARCH, (n ? n : 1) * sizeof(*p));
	size_t np = 0;
	if (!p)
		return -STITCH_ENOMEM;
	for (size_t i = 0; i < n; i++) {
		const struct arch_ftrace_site *s = sites[i];
		if (s->form != FORM_5NOPS) {
			/* one instruction already: nothing to write, but what a
			 * later enable expects, so say so now */
			if (memcmp((const void *)s->patch, s->orig, SITE_LEN) != 0) {
				char want[3 * SITE_LEN + 1], found[3 * SITE_LEN + 1];
				return stitch_fail(STITCH_EMISMATCH, "site %#lx: expected %s, found %s; nothing written",
						   (unsigned long)s->patch, stitch_hex(want, s->orig, SITE_LEN),
						   stitch_hex(found, (const uint8_t *)s->patch, SITE_LEN));
			}
			continue;
		}
		p[np] = (struct stitch_patch){ .addr = s->patch, .len = SITE_LEN };
		memcpy(p[np].old, five_nops, SITE_LEN);
		memcpy(p[np].new_bytes, nop5, SITE_LEN);
		np++;
	}
	if (!np)
		return 0;
	int err = stitch_apply_patches_inplace_locked(p, np, "ftrace prepare"); /* protocol B */
	for (size_t i = 0; !err && i < n; i++)
		if (sites[i]->form == FORM_5NOPS)
			convert_to_nop5(sites[i]);
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
