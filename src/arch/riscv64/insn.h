/* SPDX-License-Identifier: MIT */
/*
 * RISC-V 64 instruction layer: encoders and a decoder for the few
 * instructions stitch writes at a patch site.  Sections refer to the
 * RISC-V Unprivileged ISA specification (chapter "RV32I Base Integer
 * Instruction Set" for the formats, "RV64I" for LD, "C" extension for the
 * compressed forms).
 *
 * 4-byte instructions are uint32_t values, compressed ones uint16_t; in
 * memory both are little-endian.  Registers are x0..x31 by number.
 *
 * Every encoder returns 0 or a negative STITCH_E* code, checked in this
 * order: -STITCH_EINVAL (register > 31, NULL), -STITCH_EALIGN (odd pc,
 * target), -STITCH_ERANGE (immediate does not fit).  On error *out is
 * left untouched.  The decoder returns -STITCH_EUNKNOWN for bytes it does
 * not recognise.
 *
 * Plain portable C, built on every host; names start with rv_.
 */
#ifndef STITCH_ARCH_RISCV64_INSN_H
#define STITCH_ARCH_RISCV64_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stitch/stitch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define RV_REG_ZERO 0
#define RV_REG_RA 1
#define RV_REG_SP 2
#define RV_REG_T0 5
#define RV_REG_T1 6

/* Golden encodings, also returned by rv_nop() etc. */
#define RV_NOP 0x00000013u  /* addi x0, x0, 0 */
#define RV_C_NOP 0x0001u    /* c.nop */
#define RV_EBREAK 0x00100073u
#define RV_C_EBREAK 0x9002u

/* Reach in bytes. */
#define RV_JAL_RANGE (1ll << 20) /* JAL: -1 MiB .. +1 MiB - 2 */
/* AUIPC + 12-bit signed low part: offsets PCREL_MIN .. PCREL_MAX. */
#define RV_PCREL_MIN (-(1ll << 31) - 2048)
#define RV_PCREL_MAX ((1ll << 31) - 2049)

uint32_t rv_nop(void);
uint16_t rv_c_nop(void);
uint32_t rv_ebreak(void);
uint16_t rv_c_ebreak(void);

/* JAL rd, target: pc, target even, target - pc in -1 MiB .. 1 MiB - 2. */
int rv_encode_jal(uint32_t *out, unsigned rd, uint64_t pc, uint64_t target);
/* JALR rd, imm12(rs1): imm12 in -2048..2047. */
int rv_encode_jalr(uint32_t *out, unsigned rd, unsigned rs1, int32_t imm12);
/* AUIPC rd, hi20: rd = pc + (hi20 << 12) (sign-extended); hi20 in -524288..524287. */
int rv_encode_auipc(uint32_t *out, unsigned rd, int32_t hi20);
/* LD rd, imm12(rs1): imm12 in -2048..2047. */
int rv_encode_ld(uint32_t *out, unsigned rd, unsigned rs1, int32_t imm12);
/* ADDI rd, rs1, imm12: imm12 in -2048..2047 (for AUIPC+ADDI address pairs). */
int rv_encode_addi(uint32_t *out, unsigned rd, unsigned rs1, int32_t imm12);

/*
 * Split a pc-relative offset for an AUIPC + (JALR | LD | ADDI) pair:
 * offset == hi20 * 4096 + lo12 with lo12 in -2048..2047.  Because lo12 is
 * sign-extended, hi20 is rounded: (offset + 0x800) >> 12.  Offsets in
 * RV_PCREL_MIN..RV_PCREL_MAX (about ±2 GiB) fit, others give
 * -STITCH_ERANGE and leave *hi20, *lo12 untouched.
 */
int rv_split_pcrel(int64_t offset, int32_t *hi20, int32_t *lo12);

enum rv_insn_kind {
	RV_INSN_NOP,
	RV_INSN_C_NOP,
	RV_INSN_JAL,
	RV_INSN_JALR,
	RV_INSN_AUIPC,
	RV_INSN_LD,
	RV_INSN_EBREAK,
	RV_INSN_C_EBREAK,
	RV_INSN_ADDI, /* ADDI other than the canonical NOP */
};

/*
 * A decoded instruction; unused fields are 0.
 *   JAL    rd, imm = byte offset, target = pc + imm
 *   JALR   rd, rs1, imm = imm12
 *   AUIPC  rd, imm = hi20 (signed, not shifted)
 *   LD     rd, rs1, imm = imm12
 *   ADDI   rd, rs1, imm = imm12
 */
struct rv_insn {
	enum rv_insn_kind kind;
	uint8_t len; /* 2 or 4 */
	unsigned rd, rs1;
	int64_t imm;
	uint64_t target; /* JAL only */
};

/*
 * Decode little-endian bytes at address pc.  -STITCH_EINVAL if avail is
 * shorter than the instruction's length (2 or 4, from its low two bits).
 */
int rv_decode(const uint8_t *bytes, size_t avail, uint64_t pc, struct rv_insn *out);

/* Store a 4-byte / 2-byte instruction little-endian into memory. */
void rv_put32(uint8_t *dst, uint32_t insn);
void rv_put16(uint8_t *dst, uint16_t insn);

/* "nop", "c.nop", "jal", "jalr", "auipc", "ld", "ebreak", "c.ebreak", "addi"; "?" if unknown. */
const char *rv_insn_name(enum rv_insn_kind kind);

/*
 * Render like `objdump -M no-aliases` with ABI register names, e.g.
 * "jal ra,0x10100", "jalr t0,16(t0)", "auipc t0,0x12", "ld t1,-8(t0)",
 * "addi zero,zero,0" for NOP, "ebreak", "c.ebreak"; C.NOP is shown as
 * "c.nop" (objdump -M no-aliases says "c.addi zero,0").
 * snprintf rules for buf/n and the return value.
 */
int rv_disasm(char *buf, size_t n, const struct rv_insn *insn);
/* ABI name of x0..x31 ("zero", "ra", "sp", ... "t6"); "?" if > 31. */
const char *rv_reg_name(unsigned reg);

#ifdef __cplusplus
}
#endif

#endif /* STITCH_ARCH_RISCV64_INSN_H */
