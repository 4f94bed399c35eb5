// SPDX-License-Identifier: MIT
/*
 * RV64 encoders and decoder; see insn.h for the contract.
 *
 * Formats are from the RISC-V Unprivileged ISA specification, RV32I
 * chapter, "Base Instruction Formats" and "Immediate Encoding Variants"
 * (bit 31 is always the immediate's sign bit); LD is in the RV64I
 * chapter; C.NOP and C.EBREAK in the "C" Standard Extension chapter.
 * Bit layouts below are most significant bit first.
 *
 *   I-type  imm[11:0]:12 rs1:5 funct3:3 rd:5 opcode:7
 *   U-type  imm[31:12]:20 rd:5 opcode:7
 *   J-type  imm[20] imm[10:1] imm[11] imm[19:12] rd:5 opcode:7
 */
#include "arch/riscv64/insn.h"

#include <stdio.h>

#define RV_OP_JAL 0x6fu    /* 1101111 */
#define RV_OP_JALR 0x67u   /* 1100111, funct3 000 */
#define RV_OP_AUIPC 0x17u  /* 0010111 */
#define RV_OP_LOAD 0x03u   /* 0000011, funct3 011 = LD */
#define RV_OP_IMM 0x13u    /* 0010011, funct3 000 = ADDI */
#define RV_F3_LD 3u

static bool rv_reg_ok(unsigned r)
{
	return r <= 31;
}

static bool rv_imm12_ok(int32_t imm)
{
	return imm >= -2048 && imm <= 2047;
}

static int64_t rv_sext(uint64_t v, unsigned bits)
{
	uint64_t m = 1ull << (bits - 1);

	v &= (1ull << bits) - 1;
	return (int64_t)((v ^ m) - m);
}

static uint32_t rv_itype(uint32_t opcode, uint32_t funct3, unsigned rd, unsigned rs1, int32_t imm12)
{
	return ((uint32_t)imm12 & 0xfff) << 20 | (uint32_t)rs1 << 15 | funct3 << 12 | (uint32_t)rd << 7 | opcode;
}

/* ADDI x0, x0, 0: the canonical NOP (RV32I, "NOP Instruction"). */
uint32_t rv_nop(void)
{
	return RV_NOP;
}

/* C.NOP: 000 0 00000 00000 01 (C.ADDI x0 with immediate 0). */
uint16_t rv_c_nop(void)
{
	return RV_C_NOP;
}

/* EBREAK: I-type, imm 1, rs1 0, funct3 0, rd 0, opcode SYSTEM 1110011. */
uint32_t rv_ebreak(void)
{
	return RV_EBREAK;
}

/* C.EBREAK: 100 1 00000 00000 10. */
uint16_t rv_c_ebreak(void)
{
	return RV_C_EBREAK;
}

/*
 * JAL rd, offset (RV32I, "Unconditional Jumps"): J-type, opcode 1101111.
 * The offset is a signed multiple of 2 with 21 bits: -1 MiB .. 1 MiB - 2.
 */
int rv_encode_jal(uint32_t *out, unsigned rd, uint64_t pc, uint64_t target)
{
	int64_t off;
	uint32_t u;

	if (!out || !rv_reg_ok(rd))
		return -STITCH_EINVAL;
	if ((pc | target) & 1)
		return -STITCH_EALIGN;
	off = (int64_t)(target - pc);
	if (off < -RV_JAL_RANGE || off >= RV_JAL_RANGE)
		return -STITCH_ERANGE;
	u = (uint32_t)off;
	*out = (u >> 20 & 1) << 31 | (u >> 1 & 0x3ff) << 21 | (u >> 11 & 1) << 20 |
	       (u >> 12 & 0xff) << 12 | (uint32_t)rd << 7 | RV_OP_JAL;
	return 0;
}

/* JALR rd, imm12(rs1) (RV32I, "Unconditional Jumps"): I-type, funct3 000, opcode 1100111. */
int rv_encode_jalr(uint32_t *out, unsigned rd, unsigned rs1, int32_t imm12)
{
	if (!out || !rv_reg_ok(rd) || !rv_reg_ok(rs1))
		return -STITCH_EINVAL;
	if (!rv_imm12_ok(imm12))
		return -STITCH_ERANGE;
	*out = rv_itype(RV_OP_JALR, 0, rd, rs1, imm12);
	return 0;
}

/*
 * AUIPC rd, hi20 (RV32I, "Integer Register-Immediate Instructions"):
 * U-type, opcode 0010111.  rd = pc + SignExtend(hi20 << 12) on RV64.
 */
int rv_encode_auipc(uint32_t *out, unsigned rd, int32_t hi20)
{
	if (!out || !rv_reg_ok(rd))
		return -STITCH_EINVAL;
	if (hi20 < -(1 << 19) || hi20 >= (1 << 19))
		return -STITCH_ERANGE;
	*out = ((uint32_t)hi20 & 0xfffff) << 12 | (uint32_t)rd << 7 | RV_OP_AUIPC;
	return 0;
}

/* LD rd, imm12(rs1) (RV64I, "Load and Store Instructions"): I-type, funct3 011, opcode 0000011. */
int rv_encode_ld(uint32_t *out, unsigned rd, unsigned rs1, int32_t imm12)
{
	if (!out || !rv_reg_ok(rd) || !rv_reg_ok(rs1))
		return -STITCH_EINVAL;
	if (!rv_imm12_ok(imm12))
		return -STITCH_ERANGE;
	*out = rv_itype(RV_OP_LOAD, RV_F3_LD, rd, rs1, imm12);
	return 0;
}

/* ADDI rd, rs1, imm12 (RV32I, "Integer Register-Immediate Instructions"): funct3 000, opcode 0010011. */
int rv_encode_addi(uint32_t *out, unsigned rd, unsigned rs1, int32_t imm12)
{
	if (!out || !rv_reg_ok(rd) || !rv_reg_ok(rs1))
		return -STITCH_EINVAL;
	if (!rv_imm12_ok(imm12))
		return -STITCH_ERANGE;
	*out = rv_itype(RV_OP_IMM, 0, rd, rs1, imm12);
	return 0;
}

/*
 * The second instruction sign-extends lo12, so when bit 11 of the offset
 * is set the low part is negative and hi20 must be one more: adding 0x800
 * before the arithmetic shift does exactly that rounding.
 */
int rv_split_pcrel(int64_t offset, int32_t *hi20, int32_t *lo12)
{
	int64_t hi;

	if (!hi20 || !lo12)
		return -STITCH_EINVAL;
	if (offset < RV_PCREL_MIN || offset > RV_PCREL_MAX)
		return -STITCH_ERANGE;
	/* Arithmetic shift: implementation-defined (not undefined) for a
	 * negative value, and gcc and clang define it as such. */
	// cppcheck-suppress shiftNegativeLHS
	hi = (offset + 0x800) >> 12;
	*hi20 = (int32_t)hi;
	*lo12 = (int32_t)(offset - hi * 4096);
	return 0;
}

void rv_put32(uint8_t *dst, uint32_t insn)
{
	dst[0] = (uint8_t)insn;
	dst[1] = (uint8_t)(insn >> 8);
	dst[2] = (uint8_t)(insn >> 16);
	dst[3] = (uint8_t)(insn >> 24);
}

void rv_put16(uint8_t *dst, uint16_t insn)
{
	dst[0] = (uint8_t)insn;
	dst[1] = (uint8_t)(insn >> 8);
}

int rv_decode(const uint8_t *bytes, size_t avail, uint64_t pc, struct rv_insn *out)
{
	struct rv_insn r = { 0 };
	uint32_t w;
	unsigned opcode, funct3;

	if (!bytes || !out || avail < 2)
		return -STITCH_EINVAL;
	w = (uint32_t)bytes[0] | (uint32_t)bytes[1] << 8;
	if ((w & 3) != 3) {
		/* Compressed: only the two exact encodings stitch uses. */
		if (w == RV_C_NOP)
			r.kind = RV_INSN_C_NOP;
		else if (w == RV_C_EBREAK)
			r.kind = RV_INSN_C_EBREAK;
		else
			return -STITCH_EUNKNOWN;
		r.len = 2;
		*out = r;
		return 0;
	}
	if ((w & 0x1c) == 0x1c)
		return -STITCH_EUNKNOWN; /* bits 4:2 = 111: a 48-bit or longer encoding */
	if (avail < 4)
		return -STITCH_EINVAL;
	w |= (uint32_t)bytes[2] << 16 | (uint32_t)bytes[3] << 24;
	r.len = 4;
	opcode = w & 0x7f;
	funct3 = w >> 12 & 7;
	r.rd = w >> 7 & 31;
	r.rs1 = w >> 15 & 31;
	if (w == RV_NOP) {
		r.kind = RV_INSN_NOP;
		r.rd = r.rs1 = 0;
	} else if (w == RV_EBREAK) {
		r.kind = RV_INSN_EBREAK;
		r.rd = r.rs1 = 0;
	} else if (opcode == RV_OP_JAL) {
		uint32_t imm = (w >> 31 & 1) << 20 | (w >> 21 & 0x3ff) << 1 | (w >> 20 & 1) << 11 |
			       (w >> 12 & 0xff) << 12;

		r.kind = RV_INSN_JAL;
		r.rs1 = 0;
		r.imm = rv_sext(imm, 21);
		r.target = pc + (uint64_t)r.imm;
	} else if (opcode == RV_OP_JALR && funct3 == 0) {
		r.kind = RV_INSN_JALR;
		r.imm = rv_sext(w >> 20, 12);
	} else if (opcode == RV_OP_AUIPC) {
		r.kind = RV_INSN_AUIPC;
		r.rs1 = 0;
		r.imm = rv_sext(w >> 12, 20);
	} else if (opcode == RV_OP_LOAD && funct3 == RV_F3_LD) {
		r.kind = RV_INSN_LD;
		r.imm = rv_sext(w >> 20, 12);
	} else if (opcode == RV_OP_IMM && funct3 == 0) {
		r.kind = RV_INSN_ADDI;
		r.imm = rv_sext(w >> 20, 12);
	} else {
		return -STITCH_EUNKNOWN;
	}
	*out = r;
	return 0;
}

const char *rv_insn_name(enum rv_insn_kind kind)
{
	switch (kind) {
	case RV_INSN_NOP: return "nop";
	case RV_INSN_C_NOP: return "c.nop";
	case RV_INSN_JAL: return "jal";
	case RV_INSN_JALR: return "jalr";
	case RV_INSN_AUIPC: return "auipc";
	case RV_INSN_LD: return "ld";
	case RV_INSN_EBREAK: return "ebreak";
	case RV_INSN_C_EBREAK: return "c.ebreak";
	case RV_INSN_ADDI: return "addi";
	}
	return "?";
}

/* Integer register ABI names (RISC-V psABI / unprivileged spec, "RISC-V Assembly Programmer's Handbook"). */
static const char *const rv_abi_names[32] = {
	"zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2",
	"s0", "s1", "a0", "a1", "a2", "a3", "a4", "a5",
	"a6", "a7", "s2", "s3", "s4", "s5", "s6", "s7",
	"s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
};

const char *rv_reg_name(unsigned reg)
{
	return reg < 32 ? rv_abi_names[reg] : "?";
}

int rv_disasm(char *buf, size_t n, const struct rv_insn *d)
{
	switch (d->kind) {
	case RV_INSN_NOP:
		return snprintf(buf, n, "addi zero,zero,0");
	case RV_INSN_C_NOP:
	case RV_INSN_EBREAK:
	case RV_INSN_C_EBREAK:
		return snprintf(buf, n, "%s", rv_insn_name(d->kind));
	case RV_INSN_JAL:
		return snprintf(buf, n, "jal %s,0x%llx", rv_reg_name(d->rd), (unsigned long long)d->target);
	case RV_INSN_JALR:
	case RV_INSN_LD:
		return snprintf(buf, n, "%s %s,%lld(%s)", rv_insn_name(d->kind), rv_reg_name(d->rd),
				(long long)d->imm, rv_reg_name(d->rs1));
	case RV_INSN_ADDI:
		return snprintf(buf, n, "addi %s,%s,%lld", rv_reg_name(d->rd), rv_reg_name(d->rs1),
				(long long)d->imm);
	case RV_INSN_AUIPC:
		/* objdump shows the 20-bit field unsigned, in hex. */
		return snprintf(buf, n, "auipc %s,0x%llx", rv_reg_name(d->rd),
				(unsigned long long)d->imm & 0xfffff);
	}
	return snprintf(buf, n, "(bad)");
}
