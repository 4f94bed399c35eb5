/* SPDX-License-Identifier: MIT */
/*
 * RISC-V 64 (unprivileged ISA, RV64I + C): NOP (addi x0,x0,0), C.NOP,
 * JAL/J, JALR/JR/RET, AUIPC, LD, ADDI, EBREAK, C.EBREAK.  Instruction
 * length comes from the low two bits (11 = 4 bytes, else 2), so any
 * halfword-aligned address decodes to *something*; whether that
 * something is an instruction that ever existed there is the torn-fetch
 * check in explore.c.
 *
 * Pc-relative pairs: `AUIPC rd, %hi(X)` takes the high part of X - pc;
 * `JALR rd, %lo(X)(rs)` / `LD rd, %lo(X)(rs)` the low part of X - (pc-4),
 * i.e. relative to an AUIPC right before it; `%lo(X, L)` is relative to
 * the AUIPC at label L instead.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"

static int64_t sext(uint64_t v, int bits)
{
	return (int64_t)(v << (64 - bits)) >> (64 - bits);
}

static int reg_op(struct asm_ctx *c, const char *s)
{
	char b[32];
	size_t n = 0;

	while (isspace((unsigned char)*s))
		s++;
	while (*s && !isspace((unsigned char)*s) && *s != ',' && *s != ')' && n < sizeof b - 1)
		b[n++] = *s++;
	b[n] = 0;
	int r = parse_reg(ARCH_RISCV64, b);
	if (r < 0)
		snprintf(c->err, sizeof c->err, "expected a register, found '%s'", b);
	return r;
}

/* "%hi(X)" / "%lo(X)" / "%lo(X, L)" / plain expression; `pcbase` is what %lo is relative to. */
static bool rel_imm(struct asm_ctx *c, const char *s, int *is_hi_out, int64_t *v)
{
	uint64_t x, base;
	char inner[128], *comma;

	while (isspace((unsigned char)*s))
		s++;
	*is_hi_out = 0;
	if (!strncasecmp(s, "%hi(", 4) || !strncasecmp(s, "%lo(", 4)) {
		int hi = s[1] == 'h' || s[1] == 'H';
		const char *close = strrchr(s, ')');
		if (!close || (size_t)(close - s - 4) >= sizeof inner) {
			snprintf(c->err, sizeof c->err, "unbalanced %%hi/%%lo");
			return false;
		}
		memcpy(inner, s + 4, (size_t)(close - s - 4));
		inner[close - s - 4] = 0;
		base = hi ? c->pc : c->pc - 4;
		comma = strchr(inner, ',');
		if (comma) {
			*comma = 0;
			if (!eval_expr(c, comma + 1, &base))
				return false;
		}
		if (!eval_expr(c, inner, &x))
			return false;
		/* unsigned: a model may name any 64-bit address (no overflow) */
		uint64_t off = x - base;
		if (hi) {
			*is_hi_out = 1;
			*v = (int64_t)(off + 0x800) >> 12;
		} else {
			*v = sext(off & 0xfff, 12);
		}
		return true;
	}
	if (!eval_expr(c, s, &x))
		return false;
	*v = (int64_t)x;
	return true;
}

/* "imm(rs1)" where imm may be %lo(...) */
static bool mem_op(struct asm_ctx *c, const char *s, int64_t *imm, int *rs1)
{
	char b[128];
	int hi;
	const char *open = strrchr(s, '(');
	const char *close = strrchr(s, ')');

	/* the base register is the last parenthesised group: %lo(X)(t0) */
	if (!open || !close || close < open || (size_t)(open - s) >= sizeof b) {
		snprintf(c->err, sizeof c->err, "expected imm(reg), found '%s'", s);
		return false;
	}
	memcpy(b, s, (size_t)(open - s));
	b[open - s] = 0;
	*imm = 0;
	if (b[strspn(b, " \t")] && !rel_imm(c, b, &hi, imm))
		return false;
	if ((*rs1 = reg_op(c, open + 1)) < 0)
		return false;
	if (*imm < -2048 || *imm > 2047) {
		snprintf(c->err, sizeof c->err, "12-bit immediate out of range");
		return false;
	}
	return true;
}

static int put32(uint8_t *o, uint32_t w)
{
	o[0] = (uint8_t)w, o[1] = (uint8_t)(w >> 8), o[2] = (uint8_t)(w >> 16), o[3] = (uint8_t)(w >> 24);
	return 4;
}

static uint32_t itype(uint32_t opc, uint32_t f3, int rd, int rs1, int64_t imm)
{
	return opc | (uint32_t)rd << 7 | f3 << 12 | (uint32_t)rs1 << 15 | ((uint32_t)imm & 0xfff) << 20;
}

int rv_asm(struct asm_ctx *c, const char *mn, const char *ops, uint8_t *out, size_t cap)
{
	int rd, rs1, hi;
	int64_t imm;
	uint64_t t;
	const char *comma = strchr(ops, ',');

	if (cap < 4) {
		snprintf(c->err, sizeof c->err, "no room");
		return -1;
	}
	if (!strcmp(mn, "nop"))
		return put32(out, 0x00000013);
	if (!strcmp(mn, "ebreak"))
		return put32(out, 0x00100073);
	if (!strcmp(mn, "ret"))
		return put32(out, itype(0x67, 0, 0, 1, 0));
	if (!strcmp(mn, "c.nop")) {
		out[0] = 0x01, out[1] = 0x00;
		return 2;
	}
	if (!strcmp(mn, "c.ebreak")) {
		out[0] = 0x02, out[1] = 0x90;
		return 2;
	}
	if (!strcmp(mn, "jr")) {
		if ((rs1 = reg_op(c, ops)) < 0)
			return -1;
		return put32(out, itype(0x67, 0, 0, rs1, 0));
	}
	if (!strcmp(mn, "j") || !strcmp(mn, "jal")) {
		rd = 0;
		if (mn[1]) {
			if (!comma) {
				snprintf(c->err, sizeof c->err, "JAL takes rd, target");
				return -1;
			}
			if ((rd = reg_op(c, ops)) < 0)
				return -1;
			ops = comma + 1;
		}
		if (!eval_expr(c, ops, &t))
			return -1;
		int64_t d = (int64_t)(t - c->pc);
		if (!c->sizing && ((d & 1) || d < -(1 << 20) || d >= (1 << 20))) {
			snprintf(c->err, sizeof c->err, "JAL target out of range (+-1 MiB) or odd");
			return -1;
		}
		uint32_t u = (uint32_t)d;
		uint32_t w = 0x6f | (uint32_t)rd << 7 | (u & 0xff000) | ((u >> 11) & 1) << 20 | ((u >> 1) & 0x3ff) << 21 |
			     ((u >> 20) & 1) << 31;
		return put32(out, w);
	}
	if (!comma) {
		snprintf(c->err, sizeof c->err,
			 "unknown riscv64 instruction '%s' or missing operands (expected NOP, C.NOP, EBREAK, C.EBREAK, RET, "
			 "J, JAL, JR, JALR, AUIPC, LD, ADDI)",
			 mn);
		return -1;
	}
	if ((rd = reg_op(c, ops)) < 0)
		return -1;
	ops = comma + 1;
	if (!strcmp(mn, "auipc")) {
		if (!rel_imm(c, ops, &hi, &imm))
			return -1;
		if (imm < -(1 << 19) || imm >= (1 << 20)) {
			snprintf(c->err, sizeof c->err, "AUIPC immediate out of range");
			return -1;
		}
		return put32(out, 0x17 | (uint32_t)rd << 7 | ((uint32_t)imm & 0xfffff) << 12);
	}
	if (!strcmp(mn, "jalr") || !strcmp(mn, "ld")) {
		if (!mem_op(c, ops, &imm, &rs1))
			return -1;
		return put32(out, mn[0] == 'j' ? itype(0x67, 0, rd, rs1, imm) : itype(0x03, 3, rd, rs1, imm));
	}
	if (!strcmp(mn, "addi")) {
		const char *c2 = strchr(ops, ',');
		if (!c2 || (rs1 = reg_op(c, ops)) < 0 || !rel_imm(c, c2 + 1, &hi, &imm))
			return -1;
		return put32(out, itype(0x13, 0, rd, rs1, imm));
	}
	snprintf(c->err, sizeof c->err, "unknown riscv64 instruction '%s'", mn);
	return -1;
}

void rv_dec(const uint8_t *b, size_t avail, uint64_t pc, struct insn *o)
{
	memset(o, 0, sizeof *o);
	o->rd = o->rn = o->link = -1;
	o->kind = IK_UNDEF;
	o->len = 2;
	snprintf(o->text, sizeof o->text, "(truncated)");
	if (avail < 2)
		return;
	uint16_t h = (uint16_t)(b[0] | b[1] << 8);
	if ((h & 3) != 3) {
		o->kind = IK_FALL;
		if (h == 0x0001)
			snprintf(o->text, sizeof o->text, "C.NOP");
		else if (h == 0x9002) {
			o->kind = IK_TRAP;
			snprintf(o->text, sizeof o->text, "C.EBREAK");
		} else if (h == 0) {
			o->kind = IK_UNDEF; /* the all-zero halfword is defined to be illegal */
			snprintf(o->text, sizeof o->text, "illegal 0x0000");
		} else
			snprintf(o->text, sizeof o->text, ".half 0x%04x", h);
		return;
	}
	o->len = 4;
	if (avail < 4)
		return;
	uint32_t w = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
	int rd = (int)((w >> 7) & 31), rs1 = (int)((w >> 15) & 31), f3 = (int)((w >> 12) & 7);
	int64_t iimm = sext(w >> 20, 12);
	o->kind = IK_FALL;
	snprintf(o->text, sizeof o->text, ".word 0x%08x", w);
	switch (w & 0x7f) {
	case 0x13:
		if (f3 != 0)
			break;
		if (w == 0x13) {
			snprintf(o->text, sizeof o->text, "NOP");
			break;
		}
		o->kind = IK_ADDIMM;
		o->rd = (int8_t)rd, o->rn = (int8_t)rs1, o->imm = iimm;
		snprintf(o->text, sizeof o->text, "ADDI %s, %s, %lld", reg_name(ARCH_RISCV64, rd),
			 reg_name(ARCH_RISCV64, rs1), (long long)iimm);
		break;
	case 0x17:
		o->kind = IK_SETREG;
		o->rd = (int8_t)rd;
		o->target = pc + (uint64_t)sext(w & 0xfffff000, 32);
		snprintf(o->text, sizeof o->text, "AUIPC %s, 0x%x  # =0x%llx", reg_name(ARCH_RISCV64, rd), w >> 12,
			 (unsigned long long)o->target);
		break;
	case 0x6f: {
		uint64_t u = (uint64_t)(w >> 31) << 20 | (uint64_t)((w >> 12) & 0xff) << 12 |
			     (uint64_t)((w >> 20) & 1) << 11 | (uint64_t)((w >> 21) & 0x3ff) << 1;
		o->kind = IK_JUMP;
		o->target = pc + (uint64_t)sext(u, 21);
		o->link = (int8_t)(rd ? (int)rd : -1);
		snprintf(o->text, sizeof o->text, "JAL %s, 0x%llx", reg_name(ARCH_RISCV64, rd),
			 (unsigned long long)o->target);
		break;
	}
	case 0x67:
		if (f3 != 0)
			break;
		if (rd == 0 && rs1 == 1 && iimm == 0) {
			o->kind = IK_RET;
			snprintf(o->text, sizeof o->text, "RET");
			break;
		}
		o->kind = IK_JUMP_REG;
		o->rn = (int8_t)rs1, o->imm = iimm, o->link = (int8_t)(rd ? (int)rd : -1);
		snprintf(o->text, sizeof o->text, "JALR %s, %lld(%s)", reg_name(ARCH_RISCV64, rd), (long long)iimm,
			 reg_name(ARCH_RISCV64, rs1));
		break;
	case 0x03:
		if (f3 != 3)
			break;
		o->kind = IK_LOAD;
		o->rd = (int8_t)rd, o->rn = (int8_t)rs1, o->imm = iimm;
		snprintf(o->text, sizeof o->text, "LD %s, %lld(%s)", reg_name(ARCH_RISCV64, rd), (long long)iimm,
			 reg_name(ARCH_RISCV64, rs1));
		break;
	case 0x73:
		if (w == 0x00100073) {
			o->kind = IK_TRAP;
			snprintf(o->text, sizeof o->text, "EBREAK");
		}
		break;
	case 0x63:
		o->kind = IK_CONDBR;
		snprintf(o->text, sizeof o->text, "Bcc 0x%08x", w);
		break;
	default:
		break;
	}
}
