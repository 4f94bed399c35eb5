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
 *
 * Modes (STITCH_RV_FTRACE_MODE, read once per process): the layout above
 * is `call_ops`, the default; direct calls go through the common
 * trampoline, which reads the record's direct word.  Seed 004's two
 * alternatives make a direct call reach its trampoline without it:
 *
 *   retarget   func+0 AUIPC t0, hi(dest); func+4 NOP | JALR t0, lo(dest)(t0)
 *              where dest is the region's veneer or a direct trampoline.
 *     Enabling towards a dest whose hi differs from the AUIPC's: store
 *     AUIPC' (func+4 is a NOP, so either AUIPC is harmless), sync, then
 *     quiesce with the replay fixup (a thread at func+4 goes back to
 *     func+0: it may hold t0 from the old AUIPC), then store JALR', sync.
 *     Moving a live direct call (stitch_ftrace_modify_direct) is the seed's
 *     3-step: (1) func+0 := J +8, sync; quiesce with the replay (a thread
 *     at func+4 executed the old AUIPC; rewound, it runs J +8); (2) func+4
 *     := JALR', sync; (3) func+0 := AUIPC', sync.  A thread executes
 *     AUIPC;JALR, J +8 (the call is skipped, the function runs untraced),
 *     or AUIPC';JALR', never a mixed pair: after (1)'s replay nothing
 *     reaches func+4 but through func+0, which is J until (3).  The replay
 *     is needed only once: at the later syncs no thread can be at func+4
 *     with a stale t0.  models/riscv-retarget-rewind.model (rewind at
 *     every sync; its -norewind mutant is UNSAFE).  Same hi: one JALR store.
 *     Patch log: one model per operation, the quiescence's fixup as
 *     `rewind … on quiesce` (models/patchlog-rv-retarget.model; without
 *     the quiescence UNSAFE, without only its fixup still SAFE, since the
 *     quiescence also waits for func+4 to be empty).
 *
 *   table      the region is a writable page of destination slots and three
 *              executable pages of stubs; slot 0 is the common trampoline,
 *              the others hold direct trampolines:
 *       stub k:  auipc t1, hi(slot k); ld t1, lo(slot k)(t1); jr t1
 *       site:    func+0 AUIPC t1, H (once); func+4 NOP | JALR t0, imm(t1)
 *     The JALR alone selects the destination (the seed's idea).  The seed's
 *     `ld t1, -2048(t1)` pairs assume t1 is the pair's address, but after
 *     AUIPC t1 holds pc + H*4096, whose low 12 bits are the site's, so
 *     each stub finds its slot from its own pc.  A JALR reaches +-2 KiB of
 *     t1: the stubs are laid out in blocks of 170 (2040 bytes), repeated
 *     over the three pages, and H puts t1 in the middle page, so every
 *     4 KiB window around a t1 holds a copy of every stub.
 *     Enable/disable/switch destination: one aligned JALR store (protocol
 *     A); a fresh slot is stored and synced before any JALR selects it (a
 *     thread may fetch the JALR before its own sync).  Moving a direct call whose slot only its own sites use: one
 *     aligned 8-byte store into the slot (data: a thread loads the old or
 *     the new trampoline; the core's grace period then waits for the old
 *     one), no code written.  A slot no site uses any more is reused only
 *     after a quiescence of the stub pages (a thread may be between a
 *     stub's AUIPC and its load).  models/riscv-tramp-table.model; patch
 *     logs carry the stubs and slots a site reaches
 *     (models/patchlog-rv-table-switch.model and its -slot-* mutants).
 */
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "arch/arch.h"
#include "core/ftrace_asm.h"
#include "arch/riscv64/insn.h"
#include "core/patch_log.h"
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

#define RV_FRAME 160 /* the trampoline's frame: struct stitch_ftrace_regs */
_Static_assert(sizeof(struct stitch_ftrace_regs) == RV_FRAME && offsetof(struct stitch_ftrace_regs, ra) == 72,
	       "the trampoline's frame");

/*
 * The trampoline's fast path: one ops on the site (either ABI)
 * (record->single), in assembly, after the register saves - the same
 * steps as AArch64's (src/arch/aarch64/ftrace.c) and x86-64's, with
 * liburcu-bp's read side inlined; see those for the argument.  Here t0 is
 * func+8 and ra the parent until the callback runs (both are on the frame
 * for after it); the thread block and the reader are reached from tp
 * (initial-exec TLS) and found again after the callback.  The return is
 * hooked through the saved ra.  Without liburcu (FT_ASM_FAST 0) every
 * call takes the dispatcher.
 */
void stitch__ftrace_tramp_rv(void);
__asm__(/* the fast paths' steps (assembler macros, used by both trampolines) */
	".macro ft_thread dst\n" /* dst := &stitch__ftrace_thread */
	"	la.tls.ie \\dst, stitch__ftrace_thread\n"
	"	add \\dst, tp, \\dst\n"
	".endm\n"
	".macro ft_reader dst\n" /* dst := the thread's urcu_bp_reader */
	"	la.tls.ie \\dst, urcu_bp_reader\n"
	"	add \\dst, tp, \\dst\n"
	"	ld \\dst, 0(\\dst)\n"
	".endm\n"
	/* urcu-bp's read lock, outermost section only: else to fail */
	".macro ft_read_lock reader, x, fail\n"
	"	beqz \\reader, \\fail\n"
	"	lw \\x, " STR(U_CTR) "(\\reader)\n"
	"	bnez \\x, \\fail\n"
	"	la \\x, urcu_bp_gp\n"
	"	ld \\x, " STR(U_GP_CTR) "(\\x)\n"
	"	sd \\x, " STR(U_CTR) "(\\reader)\n"
	".endm\n"
	".macro ft_read_unlock reader, x\n"
	"	ld \\x, " STR(U_CTR) "(\\reader)\n"
	"	addi \\x, \\x, -" STR(U_COUNT) "\n"
	"	sd \\x, " STR(U_CTR) "(\\reader)\n"
	".endm\n"
	".macro ft_seq_out thread, x\n" /* the guard: left (seq odd again) */
	"	li \\x, " STR(FT_SEQ_OUT_N) "\n"
	"	sd \\x, " STR(T_SEQ) "(\\thread)\n"
	".endm\n"
	".text\n"
	".p2align 3\n"
	".globl stitch__ftrace_tramp_rv\n"
	".hidden stitch__ftrace_tramp_rv\n"
	".type stitch__ftrace_tramp_rv, @function\n"
	"stitch__ftrace_tramp_rv:\n"
	"	ld t1, -16(t0)\n" /* the record */
	"	ld t1, 0(t1)\n"   /* its direct call (stitch/ftrace.h, ops->direct) */
	"	bnez t1, 9f\n"
	"	addi sp, sp, -" STR(RV_FRAME) "\n"
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
	".if " STR(FT_ASM_FAST) "\n"
	"	ft_thread t1\n"          /* t1: the thread block */
	"	ld t2, " STR(T_SEQ) "(t1)\n"
	"	andi t3, t2, 1\n"
	"	beqz t3, 3f\n"
	"	sd sp, " STR(T_SEQ) "(t1)\n" /* the guard: this frame */
	"	ft_reader t3\n"          /* t3: the thread's urcu-bp reader */
	"	ft_read_lock t3, t4, 2f\n"
	"	ld t5, -16(t0)\n"        /* t5: the record */
	"	ld a2, " STR(R_SINGLE) "(t5)\n"
	"	beqz a2, 8f\n"
	"	lla t6, stitch__ftrace_return\n"
	"	beq ra, t6, 8f\n"
	"	ld t6, " STR(O_RETF) "(a2)\n"
	"	bnez t6, 5f\n"
	"	ld a0, " STR(R_IP) "(t5)\n"
	"	mv a1, ra\n"
	"	mv a3, sp\n"             /* regs */
	"	ld t6, " STR(O_FUNC) "(a2)\n"
	"	jalr t6\n"               /* no ret_func: func is set */
	"4:	ft_reader t3\n"
	"	ft_read_unlock t3, t4\n"
	"	ft_thread t1\n"
	"	ft_seq_out t1, t2\n"
	"	j 1f\n"
	/* graph: t1 the thread, t3 the reader, a2 the ops, t5 the record, ra the parent */
	"5:	ld t2, " STR(T_SHADOW) "(t1)\n"
	"	beqz t2, 8f\n"
	"	ld t4, " STR(S_DEPTH) "(t2)\n"
	"	li t6, " STR(STITCH_FTRACE_GRAPH_DEPTH) "\n"
	"	bgeu t4, t6, 8f\n"
	"	addi a4, sp, " STR(RV_FRAME) "\n" /* key: the function's stack pointer */
	"	slli a5, t4, 5\n"
	"	add a5, t2, a5\n"        /* &e[depth] - S_E */
	"	beqz t4, 6f\n"
	/* prune nothing: the top entry's key is above ours (as key | 1) */
	"	ld a6, " STR(S_E) "-" STR(E_SIZE) "+" STR(E_KEY) "(a5)\n"
	"	ori a7, a4, 1\n"
	"	bleu a6, a7, 8f\n"
	"6:	addi t4, t4, 1\n"
	"	sd t4, " STR(S_DEPTH) "(t2)\n"
	"	addi a5, a5, " STR(S_E) "\n"
	"	sd ra, " STR(E_ORIG) "(a5)\n"
	"	sd a4, " STR(E_KEY) "(a5)\n"
	"	sd t5, " STR(E_REC) "(a5)\n"
	"	sd a2, " STR(E_OPS) "(a5)\n"
	"	ld t6, " STR(O_FUNC) "(a2)\n"
	"	beqz t6, 7f\n"
	"	ld a0, " STR(R_IP) "(t5)\n"
	"	mv a1, ra\n"
	"	mv a3, sp\n"
	"	jalr t6\n"
	"7:	lla t6, stitch__ftrace_return\n"
	"	sd t6, 72(sp)\n"         /* hook the return: the saved ra */
	"	j 4b\n"
	/* 8: leave the read section (t3: the reader), 2: the guard (t1) */
	"8:	ft_read_unlock t3, t4\n"
	"2:	ft_seq_out t1, t2\n"
	".endif\n"
	"3:	ld a0, -16(t0)\n" /* the record, from the literal at func-8 */
	"	mv a1, ra\n"      /* parent ip */
	"	mv a2, sp\n"      /* regs */
	"	call stitch__ftrace_dispatch\n"
	"1:	ld a0, 0(sp)\n"
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
	"	addi sp, sp, " STR(RV_FRAME) "\n"
	"	jr t0\n"
	"9:	jr t1\n"
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
 * Its fast path is AArch64's (src/arch/aarch64/ftrace.c): the top shadow
 * entry is this return's and its ops the site's one ops with a ret_func;
 * anything else takes the C half with nothing held.
 */
struct stitch_ftrace_ret_regs {
	uint64_t a[2];
	uint64_t fa[2];
};

uintptr_t stitch_ftrace_ret_value(const struct stitch_ftrace_ret_regs *rregs)
{
	return rregs ? rregs->a[0] : 0;
}

/* The hooked function gets its return address in ra and saves it where its
 * prologue chooses: no fixed place.  ftrace_unwind.c finds it in the
 * frame during the unwinder's walk ("no fixed place"). */
uintptr_t *arch_ftrace_return_slot(uintptr_t key)
{
	(void)key;
	return NULL;
}

/* DWARF register numbers: sp (x2) is 2, ra (x1) 1. */
const struct arch_dwarf_return arch_ftrace_return_dwarf = { .sp_reg = 2, .ra_column = 1 };

/* gcc and clang: "sd ra, N-8(sp)" - ra at the top of the frame. */
uintptr_t *arch_ftrace_return_slot_usual(uintptr_t sp, uintptr_t cfa)
{
	(void)sp;
	return (uintptr_t *)cfa - 1;
}

uintptr_t *arch_ftrace_parent_slot(struct stitch_ftrace_regs *regs, uintptr_t *key)
{
	*key = (uintptr_t)regs + RV_FRAME;
	return (uintptr_t *)&regs->ra;
}

__asm__(".text\n"
	".p2align 2\n"
	".globl stitch__ftrace_return\n"
	".hidden stitch__ftrace_return\n"
	".type stitch__ftrace_return, @function\n"
	"stitch__ftrace_return:\n"
	/* the return registers (struct stitch_ftrace_ret_regs), ra, and the
	 * return address once known */
	"	addi sp, sp, -48\n"
	"	sd a0, 0(sp)\n"
	"	sd a1, 8(sp)\n"
	"	fsd fa0, 16(sp)\n"
	"	fsd fa1, 24(sp)\n"
	"	sd ra, 32(sp)\n"
	".if " STR(FT_ASM_FAST) "\n"
	/* the fast path (see above): t0-t6, a2-a7 are free at a return */
	"	ft_thread t1\n"          /* t1: the thread block */
	"	ld t2, " STR(T_SEQ) "(t1)\n"
	"	andi t3, t2, 1\n"
	"	beqz t3, 2f\n"
	"	ld t3, " STR(T_SHADOW) "(t1)\n"
	"	beqz t3, 2f\n"
	"	ld t4, " STR(S_DEPTH) "(t3)\n"
	"	beqz t4, 2f\n"
	"	slli t5, t4, 5\n"
	"	add t5, t3, t5\n"
	"	addi t5, t5, " STR(S_E) "-" STR(E_SIZE) "\n" /* t5: the top entry */
	"	ld t6, " STR(E_KEY) "(t5)\n"
	"	addi t0, sp, 48\n"       /* the stack pointer the function returned with */
	"	bne t6, t0, 2f\n"
	"	ld a2, " STR(E_OPS) "(t5)\n"
	"	ld a3, " STR(E_REC) "(t5)\n"
	"	sd sp, " STR(T_SEQ) "(t1)\n" /* the guard: this frame */
	"	ft_reader a4\n"          /* a4: the thread's urcu-bp reader */
	"	ft_read_lock a4, a5, 0f\n"
	"	ld a5, " STR(R_SINGLE_RET) "(a3)\n"
	"	bne a5, a2, 10f\n"       /* the entry's ops, alone on the site, with its ret_func */
	"	addi t4, t4, -1\n"
	"	sd t4, " STR(S_DEPTH) "(t3)\n" /* pop */
	"	ld a1, " STR(E_ORIG) "(t5)\n"
	"	sd a1, 40(sp)\n"         /* before leaving: see above */
	"	ld a0, " STR(R_IP) "(a3)\n"
	"	mv a3, sp\n"
	"	ld t6, " STR(O_RETF) "(a2)\n"
	"	jalr t6\n"
	"	ft_reader a4\n"
	"	ft_read_unlock a4, a5\n"
	"	ft_thread t1\n"
	"	ft_seq_out t1, t2\n"
	"	ld t0, 40(sp)\n"
	"	j 1f\n"
	/* 10: leave the read section (a4: the reader), 0: the guard, then the C half */
	"10:	ft_read_unlock a4, a5\n"
	"0:	ft_seq_out t1, t2\n"
	".endif\n"
	"2:	addi a0, sp, 48\n" /* key: the stack pointer the function returned with */
	"	mv a1, sp\n"       /* ret regs */
	"	call stitch__ftrace_graph_return\n"
	"	mv t0, a0\n"
	"1:	ld a0, 0(sp)\n"
	"	ld a1, 8(sp)\n"
	"	fld fa0, 16(sp)\n"
	"	fld fa1, 24(sp)\n"
	"	addi sp, sp, 48\n"
	"	mv ra, t0\n"
	"	jr t0\n"
	".size stitch__ftrace_return, . - stitch__ftrace_return\n"
	".globl stitch__ftrace_return_end\n"
	".hidden stitch__ftrace_return_end\n"
	"stitch__ftrace_return_end:\n");


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

/* ---- modes ------------------------------------------------------------------ */

enum { MODE_CALL_OPS, MODE_RETARGET, MODE_TABLE, MODE_BAD };
static int mode = -1;

static int rv_mode(void)
{
	if (mode < 0) {
		const char *e = getenv("STITCH_RV_FTRACE_MODE");
		mode = !e || !*e || !strcmp(e, "call_ops") ? MODE_CALL_OPS
		       : !strcmp(e, "retarget")		  ? MODE_RETARGET
		       : !strcmp(e, "table")			  ? MODE_TABLE
								  : MODE_BAD;
	}
	return mode;
}

/* Table mode: region = one RW page of slots, then TABLE_CODE bytes of stubs. */
#define PAGE 4096u
#define TABLE_SLOTS 170u                /* 12-byte stubs: a block of 2040 bytes */
#define TABLE_BLOCK (12u * TABLE_SLOTS)
#define TABLE_CODE (3u * PAGE)
struct table_page {
	uint64_t slot[TABLE_SLOTS]; /* destinations; 0: never used since the last recycling */
	uint32_t users[TABLE_SLOTS]; /* sites whose JALR selects the slot (update lock) */
};

static struct table_page *table_of(const struct arch_ftrace_site *s)
{
	return (struct table_page *)s->stub; /* the region's first page */
}

static uintptr_t table_code(const struct arch_ftrace_site *s)
{
	return s->stub + PAGE;
}

size_t arch_ftrace_region_size(size_t nsites)
{
	(void)nsites;
	return rv_mode() == MODE_TABLE ? PAGE + TABLE_CODE : 24;
}

int arch_ftrace_region_ready(uintptr_t region, size_t size)
{
	(void)size;
	if (rv_mode() != MODE_TABLE)
		return 0;
	/* the slots are data: written with plain stores, never executed */
	if (mprotect((void *)region, PAGE, PROT_READ | PROT_WRITE) != 0)
		return stitch_fail_errno(STITCH_ESYS, "mprotect the ftrace destination table");
	return 0;
}

/* Eight bytes of NOPs before the symbol: four c.nops (=8,4), or two
 * 4-byte NOPs without RVC (=4,2). */
uintptr_t arch_ftrace_record_of(uintptr_t func)
{
	return func - 8;
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
	if (rv_mode() == MODE_BAD)
		return stitch_fail(STITCH_EINVAL, "STITCH_RV_FTRACE_MODE=%s: expected call_ops, retarget or table",
				   getenv("STITCH_RV_FTRACE_MODE"));
	return 0;
}

static int fill_veneer(uint8_t *buf)
{
	uint32_t w[4];
	uint64_t tramp = (uint64_t)(uintptr_t)stitch__ftrace_tramp_rv;
	if (rv_encode_auipc(&w[0], RV_REG_T1, 0) || rv_encode_ld(&w[1], RV_REG_T1, RV_REG_T1, 16) ||
	    rv_encode_jalr(&w[2], RV_REG_ZERO, RV_REG_T1, 0))
		return stitch_fail(STITCH_EINVAL, "cannot encode the trampoline veneer");
	w[3] = RV_NOP;
	memcpy(buf, w, 16);
	memcpy(buf + 16, &tramp, 8);
	return 0;
}

/* Table mode: the slots (slot 0 = the common trampoline) and the stub blocks. */
static int fill_table(uint8_t *buf, uintptr_t addr)
{
	struct table_page *t = (struct table_page *)buf;
	memset(buf, 0, PAGE + TABLE_CODE); /* past the last whole block: illegal instructions */
	t->slot[0] = (uint64_t)(uintptr_t)stitch__ftrace_tramp_rv;
	for (uint32_t off = 0; off + TABLE_BLOCK <= TABLE_CODE; off += TABLE_BLOCK)
		for (uint32_t k = 0; k < TABLE_SLOTS; k++) {
			uint32_t at = PAGE + off + 12 * k, w[3];
			int32_t hi, lo;
			if (rv_split_pcrel((int64_t)(8 * k) - (int64_t)at, &hi, &lo) ||
			    rv_encode_auipc(&w[0], RV_REG_T1, hi) || rv_encode_ld(&w[1], RV_REG_T1, RV_REG_T1, lo) ||
			    rv_encode_jalr(&w[2], RV_REG_ZERO, RV_REG_T1, 0))
				return stitch_fail(STITCH_EINVAL, "cannot encode table stub %u", k);
			memcpy(buf + at, w, 12);
		}
	(void)addr;
	return 0;
}

int arch_ftrace_region_fill(uint8_t *buf, uintptr_t addr, struct arch_ftrace_site *const *sites,
			    const uintptr_t *cookies, size_t n)
{
	int err = rv_mode() == MODE_TABLE ? fill_table(buf, addr) : fill_veneer(buf);
	for (size_t i = 0; !err && i < n; i++) {
		sites[i]->stub = addr;
		sites[i]->cookie = cookies[i];
		sites[i]->target = rv_mode() == MODE_TABLE ? 0 : addr;
	}
	return err;
}

bool arch_ftrace_site_lost(const struct arch_ftrace_site *s, bool enabled)
{
	uint64_t lit;
	(void)enabled;
	memcpy(&lit, (const void *)s->record, 8);
	return (s->form & PREPARED) && lit != s->cookie;
}

/* ---- site words per mode ------------------------------------------------------- */

/*
 * The words at func+0 (AUIPC) and func+4 (enabled) that reach `dest`: an
 * address (call_ops, retarget) or a slot index (table).
 */
static int site_words_stub(const struct arch_ftrace_site *s, uintptr_t dest, uint32_t *auipc, uint32_t *jalr,
			   uintptr_t *stub)
{
	uintptr_t func = s->record + 8;
	if (rv_mode() != MODE_TABLE) {
		int32_t hi, lo;
		if (rv_split_pcrel((int64_t)(dest - func), &hi, &lo) != 0 || rv_encode_auipc(auipc, RV_REG_T0, hi) ||
		    rv_encode_jalr(jalr, RV_REG_T0, RV_REG_T0, lo))
			return stitch_fail(STITCH_ERANGE, "site %#lx: %#lx is out of AUIPC+JALR range",
					   (unsigned long)s->patch, (unsigned long)dest);
		return 0;
	}
	/* t1 = func + h * 4096 in the stubs' middle page */
	uintptr_t code = table_code(s);
	int64_t delta = (int64_t)(code + PAGE) - (int64_t)func;
	int64_t h = delta >= 0 ? (delta + PAGE - 1) / PAGE : -(-delta / PAGE);
	uintptr_t t1 = func + (uintptr_t)(h * PAGE);
	for (uintptr_t b = code + 12 * dest; b + 12 <= code + TABLE_CODE; b += TABLE_BLOCK)
		if (b + 2048 >= t1 && b <= t1 + 2047) {
			if (h < -(1 << 19) || h >= (1 << 19) || rv_encode_auipc(auipc, RV_REG_T1, (int32_t)h) ||
			    rv_encode_jalr(jalr, RV_REG_T0, RV_REG_T1, (int32_t)(int64_t)(b - t1)))
				break;
			if (stub)
				*stub = b;
			return 0;
		}
	return stitch_fail(STITCH_ERANGE, "site %#lx: table stub %lu is out of reach", (unsigned long)s->patch,
			   (unsigned long)dest);
}

static int site_words(const struct arch_ftrace_site *s, uintptr_t dest, uint32_t *auipc, uint32_t *jalr)
{
	return site_words_stub(s, dest, auipc, jalr, NULL);
}

/* ---- patch log (core/patch_log.h) ----------------------------------------------- */

/* The site as a thread enters it: func+0 and func+4, as they are now. */
static void log_site(const struct arch_ftrace_site *s)
{
	uintptr_t func = s->record + 8;
	stitch_patch_log_site(func, (const uint8_t *)func, 8);
}

/* Table mode: the stub that slot `slot` of s's JALR reaches, and the slot it loads. */
static void log_table_path(const struct arch_ftrace_site *s, uintptr_t slot)
{
	uint32_t a, j;
	uintptr_t stub = 0;
	if (rv_mode() != MODE_TABLE || !stitch_patch_log_active() || site_words_stub(s, slot, &a, &j, &stub) != 0)
		return;
	stitch_patch_log_context(s->record + 8, stub, 12, false);
	stitch_patch_log_context(s->record + 8, s->stub + 8 * slot, 8, true);
}

/* A data store into a slot, logged first (the log reads what it replaces). */
static void slot_store(uint64_t *slot, uint64_t v)
{
	stitch_patch_log_store_data((uintptr_t)slot, (const uint8_t *)&v, 8);
	__atomic_store_n(slot, v, __ATOMIC_RELEASE);
}

static uintptr_t direct_of(const struct arch_ftrace_site *s)
{
	return __atomic_load_n((const uintptr_t *)s->cookie, __ATOMIC_ACQUIRE); /* the record's direct word */
}

/* Table mode: the slot holding `dest` in s's table, or a fresh one. */
static int table_slot(const struct arch_ftrace_site *s, uintptr_t dest, uintptr_t *out)
{
	struct table_page *t = table_of(s);
	if (!dest) {
		*out = 0;
		return 0;
	}
	for (int pass = 0; pass < 2; pass++) {
		for (uint32_t k = 1; k < TABLE_SLOTS; k++)
			if (t->slot[k] == dest) {
				*out = k;
				return 0;
			}
		for (uint32_t k = 1; k < TABLE_SLOTS; k++)
			if (t->slot[k] == 0) {
				/* A site may select the slot as soon as its JALR store
				 * is fetched, before that store's sync: every thread
				 * must load the destination by then.  The release store
				 * orders nothing after it, so sync here (patch log:
				 * without it, a thread loads 0 from the slot;
				 * models/patchlog-rv-table-slot-nosync.model). */
				slot_store(&t->slot[k], (uint64_t)dest);
				int err = stitch_text_sync(NULL, 0);
				if (err)
					return err;
				*out = k;
				return 0;
			}
		/* Recycle the slots no site selects: once no thread is in a stub
		 * (one may have jumped there before its site changed), nobody
		 * can load them. */
		struct stitch_range stubs = { table_code(s), table_code(s) + TABLE_CODE };
		int err = stitch_quiesce(&stubs, 1, NULL, NULL);
		if (err)
			return err;
		for (uint32_t k = 1; k < TABLE_SLOTS; k++)
			if (t->users[k] == 0 && t->slot[k] != 0)
				slot_store(&t->slot[k], 0);
	}
	return stitch_fail(STITCH_EOVERFLOW, "the ftrace destination table of region %#lx is full (%u direct "
			   "trampolines)", (unsigned long)s->stub, TABLE_SLOTS - 1);
}

/* Where an enabled site should go now. */
static int want_dest(const struct arch_ftrace_site *s, uintptr_t *dest)
{
	switch (rv_mode()) {
	case MODE_RETARGET: *dest = direct_of(s) ? direct_of(s) : s->stub; return 0;
	case MODE_TABLE: return table_slot(s, direct_of(s), dest);
	default: *dest = s->stub; return 0;
	}
}

static void table_use(struct arch_ftrace_site *s, uintptr_t slot, int by)
{
	if (rv_mode() == MODE_TABLE)
		table_of(s)->users[slot] += (uint32_t)by;
}

/* ---- applying --------------------------------------------------------------- */

struct replay {
	const uintptr_t *func; /* func of the sites being prepared, sorted */
	size_t count;
};

/* Async-signal-safe: a thread inside (func, func+8) of a listed site goes back to func. */
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

/*
 * The replay without stopping the world: wait until no thread is at
 * func+4 of the listed sites, moving those found there back to func+0.
 */
static int replay_quiesce(uintptr_t *funcs, size_t n)
{
	struct stitch_range *r = calloc(n ? n : 1, sizeof(*r));
	if (!r)
		return stitch_fail(STITCH_ENOMEM, "out of memory");
	stitch_sort_uintptr(funcs, n);
	for (size_t i = 0; i < n; i++)
		r[i] = (struct stitch_range){ funcs[i] + 4, funcs[i] + 8 };
	struct replay rp = { funcs, n };
	int err = stitch_quiesce(r, n, replay_entry, &rp);
	free(r);
	return err;
}

/* Put back patches [0, n) that were applied (best effort, after a later step failed). */
static void undo(struct stitch_patch *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint8_t t[8];
		memcpy(t, p[i].old, p[i].len);
		memcpy(p[i].old, p[i].new_bytes, p[i].len);
		memcpy(p[i].new_bytes, t, p[i].len);
	}
	if (n)
		stitch_apply_patches_locked(p, n, "ftrace undo");
}

/* A never prepared site's writes, into p[0..3): the literal over the
 * compiler's NOPs before the function, `auipc` at func+0 and `last` (the
 * JALR, or a NOP4: for a prepare) at func+4.  Returns how many (2 or 3). */
static size_t prepare_patches(const struct arch_ftrace_site *s, uint32_t auipc, uint32_t last,
			      struct stitch_patch *p)
{
	const uint32_t nop = RV_NOP;
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
	stitch_patch_init(&p[0], s->record, area, &lit, 8);
	p[0].data = true;
	stitch_patch_init(&p[1], s->record + 8, area + 8, &auipc, 4);
	if (memcmp(area + 12, &last, 4) == 0)
		return 2; /* a prepare without RVC: the NOP4 is there already */
	stitch_patch_init(&p[2], s->patch, area + 12, &last, 4);
	return 3;
}

int arch_ftrace_apply(struct arch_ftrace_site *const *sites, bool *enabled, const bool *enable, size_t n)
{
	const uint32_t nop = RV_NOP;
	size_t cap = 3 * (n ? n : 1);
	struct stitch_patch *p = calloc(cap, sizeof(*p)), *pre = calloc(n ? n : 1, sizeof(*pre));
	uintptr_t *prep = calloc(n ? n : 1, sizeof(*prep)), *moved = calloc(n ? n : 1, sizeof(*moved));
	uintptr_t *dest = calloc(n ? n : 1, sizeof(*dest));
	bool *prepping = calloc(n ? n : 1, sizeof(*prepping));
	struct replay rp = { prep, 0 };
	size_t np = 0, npre = 0;
	int err = (!p || !pre || !prep || !moved || !dest || !prepping)
			  ? stitch_fail(STITCH_ENOMEM, "out of memory switching %zu sites", n)
			  : 0;
	/* one model for the whole switch: slot stores, AUIPC moves, replay, JALRs */
	static const char *const op_name[] = { "ftrace switch", "ftrace switch (retarget mode)",
					       "ftrace switch (table mode)", "ftrace switch" };
	stitch_patch_log_begin(op_name[rv_mode()]);
	for (size_t i = 0; i < n && !err; i++)
		if (enabled[i] != enable[i])
			log_site(sites[i]);
	for (size_t i = 0; i < n && !err; i++) {
		struct arch_ftrace_site *s = sites[i];
		uintptr_t func = s->record + 8;
		uint32_t auipc, jalr, cur_auipc, cur_jalr;
		if (enabled[i] == enable[i])
			continue;
		dest[i] = s->target;
		if (enabled[i])
			log_table_path(s, s->target);
		if (enable[i])
			err = want_dest(s, &dest[i]);
		if (!err && enable[i])
			log_table_path(s, dest[i]);
		if (!err)
			err = site_words(s, dest[i], &auipc, &jalr);
		if (!err && (s->form & PREPARED))
			err = site_words(s, s->target, &cur_auipc, &cur_jalr);
		if (err)
			break;
		if ((s->form & PREPARED) &&
		    (arch_ftrace_site_lost(s, enabled[i]) || memcmp((const void *)func, &cur_auipc, 4) != 0)) {
			err = stitch_fail(STITCH_EMISMATCH,
					  "site %#lx: the literal or AUIPC written at its first enable is gone; "
					  "nothing written",
					  (unsigned long)s->record);
			break;
		}
		if (!(s->form & PREPARED)) {
			/* only reached when enabling a never prepared site: the compiler's bytes */
			np += prepare_patches(s, auipc, jalr, &p[np]);
			prep[rp.count++] = func;
			prepping[i] = true;
			continue;
		}
		if (!enable[i]) {
			stitch_patch_init(&p[np++], s->patch, &cur_jalr, &nop, 4);
			p[np - 1].lead = 4; /* the AUIPC */
			continue;
		}
		if (auipc != cur_auipc) {
			/* retarget mode, towards another 4 KiB page: the AUIPC first */
			stitch_patch_init(&pre[npre], func, &cur_auipc, &auipc, 4);
			moved[npre++] = func;
		}
		stitch_patch_init(&p[np++], s->patch, &nop, &jalr, 4);
		p[np - 1].lead = 4; /* the AUIPC */
	}
	bool written = false;
	if (!err && np) {
		if (rp.count) {
			/* Protocol B: stopped world (the AUIPCs that move go along,
			 * their threads replayed like those of prepared sites). */
			for (size_t k = 0; k < npre; k++) {
				p[np++] = pre[k];
				prep[rp.count++] = moved[k];
			}
			stitch_sort_uintptr(prep, rp.count);
			err = stitch_apply_stopped(p, np, replay_entry, (void *)&rp, &written);
		} else {
			/* AUIPC' (harmless before a NOP), sync, replay, then the JALRs:
			 * protocol A word stores (poke.c compares every site first). */
			if (npre)
				err = stitch_apply_patches_locked(pre, npre, "ftrace move auipc");
			if (!err && npre && (err = replay_quiesce(moved, npre)) != 0)
				undo(pre, npre);
			if (!err) {
				err = stitch_apply_patches_locked(p, np, "ftrace switch");
				if (err)
					undo(pre, npre);
			}
			written = !err;
		}
	}
	for (size_t i = 0; written && i < n; i++) {
		if (enabled[i] == enable[i])
			continue;
		if (prepping[i])
			sites[i]->form |= PREPARED;
		if (enable[i])
			table_use(sites[i], dest[i], +1);
		else
			table_use(sites[i], sites[i]->target, -1);
		sites[i]->target = dest[i];
		enabled[i] = enable[i];
	}
	stitch_patch_log_end(err);
	free(p);
	free(pre);
	free(prep);
	free(moved);
	free(dest);
	free(prepping);
	return err;
}

/*
 * stitch_ftrace_prepare(): the first enable's stopped world with a NOP4
 * where the JALR would go: the literal and the AUIPC towards the site's
 * current destination (s->target: the stub, or the table's slot 0) are
 * written, and a thread inside (func, func+8) is replayed from func as in
 * a first enable.  Later enables of these sites are protocol A (with the
 * AUIPC moved first when a retarget-mode destination is in another page).
 */
int arch_ftrace_prepare(struct arch_ftrace_site *const *sites, size_t n)
{
	struct stitch_patch *p = calloc(3 * (n ? n : 1), sizeof(*p));
	uintptr_t *prep = calloc(n ? n : 1, sizeof(*prep));
	struct replay rp = { prep, 0 };
	size_t np = 0;
	bool written = false;
	int err = (!p || !prep) ? stitch_fail(STITCH_ENOMEM, "out of memory preparing %zu sites", n) : 0;
	for (size_t i = 0; i < n && !err; i++) {
		const struct arch_ftrace_site *s = sites[i];
		uint32_t auipc, jalr;
		if (s->form & PREPARED)
			continue;
		err = site_words(s, s->target, &auipc, &jalr);
		uint32_t at;
		memcpy(&at, (const void *)s->patch, 4);
		if (!err && (s->form & ~PREPARED) != FORM_RVC && at != RV_NOP)
			/* not written, but what a later enable expects: say so now */
			err = stitch_fail(STITCH_EMISMATCH, "site %#lx: expected NOP (%08x), found %08x; nothing written",
					  (unsigned long)s->patch, (unsigned)RV_NOP, (unsigned)at);
		if (!err) {
			np += prepare_patches(s, auipc, RV_NOP, &p[np]);
			prep[rp.count++] = s->record + 8;
		}
	}
	if (!err && np) {
		stitch_sort_if_needed(prep, rp.count, sizeof(*prep), stitch_cmp_uintptr);
		err = stitch_apply_stopped(p, np, replay_entry, (void *)&rp, &written);
	}
	for (size_t i = 0; written && i < n; i++)
		sites[i]->form |= PREPARED;
	free(p);
	free(prep);
	return err;
}

/* ---- moving a live direct call (stitch_ftrace_modify_direct) ---------------------- */

static int retarget_code(struct arch_ftrace_site *const *sites, size_t n, uintptr_t to)
{
	const uint32_t jal8 = 0x0080006fu; /* jal zero, +8: J +8 */
	struct stitch_patch *step1 = calloc(n ? n : 1, sizeof(*step1)), *step2 = calloc(n ? n : 1, sizeof(*step2)),
			    *step3 = calloc(n ? n : 1, sizeof(*step3));
	uintptr_t *moved = calloc(n ? n : 1, sizeof(*moved));
	size_t n1 = 0, n2 = 0;
	int err = (!step1 || !step2 || !step3 || !moved) ? stitch_fail(STITCH_ENOMEM, "out of memory") : 0;
	/* one model for the three steps and the replay between them */
	stitch_patch_log_begin("ftrace retarget (3-step)");
	for (size_t i = 0; i < n && !err; i++)
		log_site(sites[i]);
	for (size_t i = 0; i < n && !err; i++) {
		const struct arch_ftrace_site *s = sites[i];
		uint32_t a0, j0, a1, j1;
		err = site_words(s, s->target, &a0, &j0);
		if (!err)
			err = site_words(s, to, &a1, &j1);
		if (err)
			break;
		uintptr_t func = s->record + 8;
		if (a0 != a1) {
			stitch_patch_log_skip(func, func + 8); /* J +8: this call is not traced */
			stitch_patch_init(&step1[n1], func, &a0, &jal8, 4);
			stitch_patch_init(&step3[n1], func, &jal8, &a1, 4);
			moved[n1++] = func;
		}
		stitch_patch_init(&step2[n2++], s->patch, &j0, &j1, 4);
	}
	/* (1) J +8, sync, replay; (2) JALR', sync; (3) AUIPC', sync */
	if (!err && n1)
		err = stitch_apply_patches_locked(step1, n1, "ftrace retarget step 1");
	if (!err && n1 && (err = replay_quiesce(moved, n1)) != 0)
		undo(step1, n1);
	if (!err && (err = stitch_apply_patches_locked(step2, n2, "ftrace retarget step 2")) != 0)
		undo(step1, n1);
	if (!err && n1 && (err = stitch_apply_patches_locked(step3, n1, "ftrace retarget step 3")) != 0) {
		undo(step2, n2); /* func+0 is still J +8: no thread can be at func+4 */
		undo(step1, n1);
	}
	for (size_t i = 0; !err && i < n; i++)
		sites[i]->target = to;
	stitch_patch_log_end(err);
	free(step1);
	free(step2);
	free(step3);
	free(moved);
	return err;
}

static int retarget_table(struct arch_ftrace_site *const *sites, size_t n, uintptr_t to)
{
	int err = 0;
	stitch_patch_log_begin("ftrace retarget (table)");
	for (size_t i = 0; i < n; i++) {
		log_site(sites[i]);
		log_table_path(sites[i], sites[i]->target);
	}
	/* per region (the sites come sorted by record, so a module's are together) */
	for (size_t i = 0; i < n && !err;) {
		struct table_page *t = table_of(sites[i]);
		size_t j = i + 1;
		while (j < n && table_of(sites[j]) == t)
			j++;
		uintptr_t from_slot = sites[i]->target, to_slot;
		if (t->users[from_slot] == j - i) {
			/* the slot is this direct call's alone: one data store */
			slot_store(&t->slot[from_slot], (uint64_t)to);
		} else if ((err = table_slot(sites[i], to, &to_slot)) == 0) {
			for (size_t k = i; k < j; k++)
				log_table_path(sites[k], to_slot);
			struct stitch_patch *p = calloc(j - i, sizeof(*p));
			err = p ? 0 : stitch_fail(STITCH_ENOMEM, "out of memory");
			for (size_t k = i; k < j && !err; k++) {
				uint32_t a0, j0, a1, j1;
				err = site_words(sites[k], from_slot, &a0, &j0);
				if (!err)
					err = site_words(sites[k], to_slot, &a1, &j1);
				if (!err)
					stitch_patch_init(&p[k - i], sites[k]->patch, &j0, &j1, 4);
			}
			if (!err)
				err = stitch_apply_patches_locked(p, j - i, "ftrace table retarget");
			free(p);
			for (size_t k = i; k < j && !err; k++) {
				table_use(sites[k], from_slot, -1);
				table_use(sites[k], to_slot, +1);
				sites[k]->target = to_slot;
			}
		}
		i = j;
	}
	stitch_patch_log_end(err);
	return err;
}

int arch_ftrace_retarget(struct arch_ftrace_site *const *sites, size_t n, uintptr_t from, uintptr_t to)
{
	(void)from;
	switch (rv_mode()) {
	case MODE_RETARGET: return retarget_code(sites, n, to);
	case MODE_TABLE: return retarget_table(sites, n, to);
	default: return 0; /* call_ops: the common trampoline reads the direct word */
	}
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
