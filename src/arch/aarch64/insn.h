/* SPDX-License-Identifier: MIT */
/*
 * AArch64 instruction layer: encoders for the instructions stitch writes,
 * and a decoder that also classifies the branches and exception-generating
 * instructions the Arm ARM lets us swap while another core executes them.
 *
 * Instructions are uint32_t values (the CPU fetches them little-endian);
 * `pc` and every branch target must be 4-byte aligned.  Registers are
 * numbered 0..31; what 31 means (SP or XZR) depends on the instruction
 * and is noted per encoder.  Sections are from the Arm ARM (DDI 0487),
 * chapter C6.2 (A64 base instruction descriptions).
 *
 * Every encoder returns 0 or a negative STITCH_E* code, checked in this
 * order: -STITCH_EINVAL (register > 31, NULL), -STITCH_EALIGN (pc,
 * target or offset misaligned), -STITCH_ERANGE (does not fit).  On error
 * *out is left untouched.  The decoder returns -STITCH_EUNKNOWN for words
 * it does not recognise.
 *
 * Plain portable C, built on every host; names start with a64_.
 */
#ifndef STITCH_ARCH_AARCH64_INSN_H
#define STITCH_ARCH_AARCH64_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stitch/stitch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define A64_INSN_LEN 4
#define A64_REG_SP 31  /* as base register or ADD destination */
#define A64_REG_XZR 31 /* as data register */
#define A64_REG_LR 30
#define A64_REG_IP0 16
#define A64_REG_IP1 17

/* Golden words, also returned by a64_nop() etc. */
#define A64_NOP 0xd503201fu
#define A64_BTI_C 0xd503245fu
#define A64_RET 0xd65f03c0u /* RET X30 */

/* Reach of the PC-relative forms, in bytes. */
#define A64_B_RANGE (128ll << 20)     /* B/BL: -128 MiB .. +128 MiB - 4 */
#define A64_ADRP_RANGE (4ll << 30)    /* ADRP: pages -4 GiB .. +4 GiB - 4 KiB */
#define A64_LDR_LIT_RANGE (1ll << 20) /* LDR literal: -1 MiB .. +1 MiB - 4 */

enum a64_insn_kind {
	A64_INSN_B,
	A64_INSN_BL,
	A64_INSN_NOP,
	A64_INSN_BTI_C,
	A64_INSN_RET,
	A64_INSN_ADRP,
	A64_INSN_ADD_IMM,
	A64_INSN_LDR_LIT,
	A64_INSN_LDR_IMM,
	A64_INSN_BR,
	A64_INSN_MOV_REG,
	/* recognised for classification only: */
	A64_INSN_B_COND,
	A64_INSN_CBZ,
	A64_INSN_CBNZ,
	A64_INSN_TBZ,
	A64_INSN_TBNZ,
	A64_INSN_BRK,
	A64_INSN_ISB,
	A64_INSN_SVC,
	A64_INSN_HVC,
	A64_INSN_SMC,
};

/*
 * A decoded instruction.  Fields that a kind does not use are 0.
 *   B, BL          imm = byte offset, target = pc + imm
 *   NOP, BTI_C     -
 *   RET, BR        rn
 *   ADRP           rd, imm = page offset in bytes (multiple of 4096),
 *                  target = (pc & ~0xfff) + imm
 *   ADD_IMM        rd, rn (31 = SP), rm = shift (0 or 12), imm = immediate
 *                  after the shift (imm12 or imm12 << 12); 64-bit ADD only
 *   LDR_LIT        rd = Rt, imm = byte offset, target = pc + imm (64-bit load only)
 *   LDR_IMM        rd = Rt, rn = base (31 = SP), imm = byte offset (64-bit load,
 *                  unsigned offset form only)
 *   MOV_REG        rd, rm (ORR Xd, XZR, Xm; 64-bit only)
 *   B_COND         rd = condition code (0..15), imm, target
 *   CBZ, CBNZ      rd = Rt, sf = 1 for Xt, 0 for Wt, imm, target
 *   TBZ, TBNZ      rd = Rt, rm = bit number (0..63), sf = 1 if bit >= 32, imm, target
 *   BRK, SVC, HVC, SMC   imm = 16-bit immediate
 *   ISB            imm = CRm option (15 = SY)
 */
struct a64_insn {
	enum a64_insn_kind kind;
	unsigned rd, rn, rm;
	int64_t imm;
	uint64_t target;
	bool sf;
};

uint32_t a64_nop(void);
uint32_t a64_bti_c(void);
uint32_t a64_ret(void); /* RET X30 */

/* B label: pc, target 4-aligned, target - pc in -128 MiB .. 128 MiB - 4. */
int a64_encode_b(uint32_t *out, uint64_t pc, uint64_t target);
/* BL label: as B. */
int a64_encode_bl(uint32_t *out, uint64_t pc, uint64_t target);
/*
 * ADRP Xd, label: Xd = page of target.  Only the pages matter: the low 12
 * bits of pc and target are ignored (pc must still be 4-aligned); the page
 * distance must be within -2^20 .. 2^20-1 pages (±4 GiB).  rd 31 is XZR.
 */
int a64_encode_adrp(uint32_t *out, unsigned rd, uint64_t pc, uint64_t target);
/* ADD Xd, Xn, #imm12{, LSL #12}: imm12 0..4095; rd/rn 31 = SP. */
int a64_encode_add_imm(uint32_t *out, unsigned rd, unsigned rn, uint32_t imm12, bool shift12);
/* LDR Xt, label: pc, target 4-aligned, target - pc in -1 MiB .. 1 MiB - 4; rt 31 = XZR. */
int a64_encode_ldr_literal(uint32_t *out, unsigned rt, uint64_t pc, uint64_t target);
/* LDR Xt, [Xn, #off]: off a multiple of 8, 0..32760; rt 31 = XZR, rn 31 = SP. */
int a64_encode_ldr_imm(uint32_t *out, unsigned rt, unsigned rn, uint32_t byte_offset);
/* BR Xn. */
int a64_encode_br(uint32_t *out, unsigned rn);
/* RET Xn (a64_ret() is RET X30). */
int a64_encode_ret(uint32_t *out, unsigned rn);
/* MOV Xd, Xm, i.e. ORR Xd, XZR, Xm: rd/rm 31 = XZR. */
int a64_encode_mov_reg(uint32_t *out, unsigned rd, unsigned rm);

/* Decode one instruction located at `pc` (used only for targets). */
int a64_decode(uint32_t insn, uint64_t pc, struct a64_insn *out);

/*
 * True if `insn` is one of the instructions that Arm ARM B2.2.5
 * ("Concurrent modification and execution of instructions") allows to be
 * replaced while another PE executes it: B, BL, B.cond, CBZ, CBNZ, TBZ,
 * TBNZ, NOP, BRK, ISB, SVC, HVC, SMC.  The rule is about pairs: both the
 * old and the new word must qualify (a64_cmodx_pair_safe), and the other
 * PE then executes either the old or the new instruction.
 */
bool a64_insn_cmodx_safe(uint32_t insn);
bool a64_cmodx_pair_safe(uint32_t old_insn, uint32_t new_insn);

/* Lower-case mnemonic of a kind ("b", "bl", "nop", "bti", "b.cond", ...); "?" if unknown. */
const char *a64_insn_name(enum a64_insn_kind kind);

/*
 * Render a decoded instruction as GNU objdump prints it (preferred
 * aliases, targets as absolute hex), e.g. "b 0x400100", "bl 0x400100",
 * "adrp x16, 0x412000", "add x16, x16, #0x10", "add x0, x1, #0x1, lsl #12",
 * "ldr x16, 0x400200", "ldr x16, [x16, #8]", "br x16", "mov x9, x30",
 * "ret", "bti c", "b.ne 0x400100", "cbz w1, 0x400100",
 * "tbnz x3, #40, 0x400100", "brk #0x3e8", "isb", "svc #0x0".
 * snprintf rules for buf/n and the return value.
 */
int a64_disasm(char *buf, size_t n, const struct a64_insn *insn);

#ifdef __cplusplus
}
#endif

#endif /* STITCH_ARCH_AARCH64_INSN_H */
