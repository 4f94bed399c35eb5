/* SPDX-License-Identifier: MIT */
/*
 * AArch64 (Arm ARM, A64 base instructions).  Encoded forms:
 *   B/BL imm26, BR/BLR/RET Xn, ADRP/ADR, ADD (immediate, 64-bit),
 *   LDR Xt literal, LDR Xt [Xn, #imm], MOV Xd, Xm (ORR alias),
 *   NOP, BTI C, ISB, BRK.
 * The decoder also recognises B.cond, CBZ/CBNZ, TBZ/TBNZ, SVC, HVC, SMC
 * because they are on the CMODX list (Arm ARM B2.2.5 "Concurrent
 * modification and execution of instructions"): a word changed between
 * two listed instructions may be executed without synchronisation and
 * the executing thread sees old or new.  Every other change to a word a
 * thread may fetch is a violation the checker reports.
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "model.h"

/* Split "X16, [X16, #8]" into at most 4 operands, brackets kept together. */
static int split_ops(const char *ops, char out[4][64])
{
	int n = 0, depth = 0;
	size_t k = 0;

	for (const char *p = ops;; p++) {
		if (!*p || (*p == ',' && !depth)) {
			while (k && isspace((unsigned char)out[n][k - 1]))
				k--;
			// cppcheck-suppress arrayIndexOutOfBoundsCond ; n < 4 here: the loop breaks when n reaches 4
			out[n][k] = 0;
			if (k || *p)
				n++;
			if (!*p || n == 4)
				break;
			k = 0;
			continue;
		}
		if (*p == '[')
			depth++;
		if (*p == ']')
			depth--;
		if (!k && isspace((unsigned char)*p))
			continue;
		if (k < 63)
			out[n][k++] = *p;
	}
	return n;
}

static int reg_op(struct asm_ctx *c, const char *s)
{
	int r = parse_reg(ARCH_AARCH64, s);
	if (r < 0)
		snprintf(c->err, sizeof c->err, "expected an X register, found '%s'", s);
	return r;
}

/* "#imm", "imm", ":lo12:SYM" */
static bool imm_op(struct asm_ctx *c, const char *s, uint64_t *v)
{
	if (!strncasecmp(s, ":lo12:", 6)) {
		if (!eval_expr(c, s + 6, v))
			return false;
		*v &= 0xfff;
		return true;
	}
	return eval_expr(c, s, v);
}

static void put32(uint8_t *o, uint32_t w)
{
	o[0] = (uint8_t)w, o[1] = (uint8_t)(w >> 8), o[2] = (uint8_t)(w >> 16), o[3] = (uint8_t)(w >> 24);
}

int a64_asm(struct asm_ctx *c, const char *mn, const char *ops, uint8_t *out, size_t cap)
{
	char op[4][64];
	int n = split_ops(ops, op), rd, rn;
	uint64_t v;
	uint32_t w;

	if (cap < 4) {
		snprintf(c->err, sizeof c->err, "no room");
		return -1;
	}
#define WANT(k)                                                                                 \
	do {                                                                                    \
		if (n != (k)) {                                                                 \
			snprintf(c->err, sizeof c->err, "%s takes %d operand(s), found %d", mn, k, n); \
			return -1;                                                              \
		}                                                                               \
	} while (0)
	if (!strcmp(mn, "nop")) {
		WANT(0);
		w = 0xd503201f;
	} else if (!strcmp(mn, "bti")) {
		if (n != 1 || strcasecmp(op[0], "c")) {
			snprintf(c->err, sizeof c->err, "only `BTI C` is supported");
			return -1;
		}
		w = 0xd503245f;
	} else if (!strcmp(mn, "isb")) {
		w = 0xd5033fdf;
	} else if (!strcmp(mn, "brk")) {
		WANT(1);
		if (!imm_op(c, op[0], &v))
			return -1;
		w = 0xd4200000 | (uint32_t)(v & 0xffff) << 5;
	} else if (!strcmp(mn, "ret")) {
		rn = 30;
		if (n == 1 && (rn = reg_op(c, op[0])) < 0)
			return -1;
		w = 0xd65f0000 | (uint32_t)rn << 5;
	} else if (!strcmp(mn, "br") || !strcmp(mn, "blr")) {
		WANT(1);
		if ((rn = reg_op(c, op[0])) < 0)
			return -1;
		w = (mn[1] == 'r' ? 0xd61f0000 : 0xd63f0000) | (uint32_t)rn << 5;
	} else if (!strcmp(mn, "b") || !strcmp(mn, "bl")) {
		WANT(1);
		if (!eval_expr(c, op[0], &v))
			return -1;
		int64_t d = (int64_t)(v - c->pc);
		if (!c->sizing && ((d & 3) || d < -(1LL << 27) || d >= (1LL << 27))) {
			snprintf(c->err, sizeof c->err, "branch target out of B/BL range (+-128 MiB) or misaligned");
			return -1;
		}
		w = (mn[1] ? 0x94000000 : 0x14000000) | ((uint32_t)(d >> 2) & 0x3ffffff);
	} else if (!strcmp(mn, "adrp") || !strcmp(mn, "adr")) {
		WANT(2);
		if ((rd = reg_op(c, op[0])) < 0 || !eval_expr(c, op[1], &v))
			return -1;
		int64_t d = mn[3] ? (int64_t)((v & ~0xfffULL) - (c->pc & ~0xfffULL)) >> 12 : (int64_t)(v - c->pc);
		if (!c->sizing && (d < -(1LL << 20) || d >= (1LL << 20))) {
			snprintf(c->err, sizeof c->err, "target out of %s range", mn);
			return -1;
		}
		w = (mn[3] ? 0x90000000u : 0x10000000u) | ((uint32_t)d & 3) << 29 |
		    ((uint32_t)(d >> 2) & 0x7ffff) << 5 | (uint32_t)rd;
	} else if (!strcmp(mn, "add")) {
		WANT(3);
		if ((rd = reg_op(c, op[0])) < 0 || (rn = reg_op(c, op[1])) < 0 || !imm_op(c, op[2], &v))
			return -1;
		if (v > 0xfff) {
			snprintf(c->err, sizeof c->err, "ADD immediate must be 0..4095");
			return -1;
		}
		w = 0x91000000 | (uint32_t)v << 10 | (uint32_t)rn << 5 | (uint32_t)rd;
	} else if (!strcmp(mn, "mov")) {
		WANT(2);
		if ((rd = reg_op(c, op[0])) < 0 || (rn = reg_op(c, op[1])) < 0)
			return -1;
		w = 0xaa0003e0 | (uint32_t)rn << 16 | (uint32_t)rd;
	} else if (!strcmp(mn, "ldr")) {
		WANT(2);
		if ((rd = reg_op(c, op[0])) < 0)
			return -1;
		if (op[1][0] == '[') {
			char inner[64], a[4][64];
			size_t l = strlen(op[1]);
			if (op[1][l - 1] != ']') {
				snprintf(c->err, sizeof c->err, "expected [Xn, #imm]");
				return -1;
			}
			memcpy(inner, op[1] + 1, l - 2);
			inner[l - 2] = 0;
			int k = split_ops(inner, a);
			v = 0;
			if (k < 1 || (rn = reg_op(c, a[0])) < 0 || (k == 2 && !imm_op(c, a[1], &v)))
				return -1;
			if ((v & 7) || v > 0x7ff8) {
				snprintf(c->err, sizeof c->err, "LDR offset must be a multiple of 8 below 32768");
				return -1;
			}
			w = 0xf9400000 | (uint32_t)(v / 8) << 10 | (uint32_t)rn << 5 | (uint32_t)rd;
		} else {
			if (!eval_expr(c, op[1], &v))
				return -1;
			int64_t d = (int64_t)(v - c->pc);
			if (!c->sizing && ((d & 3) || d < -(1LL << 20) || d >= (1LL << 20))) {
				snprintf(c->err, sizeof c->err, "literal out of LDR range (+-1 MiB) or misaligned");
				return -1;
			}
			w = 0x58000000 | ((uint32_t)(d >> 2) & 0x7ffff) << 5 | (uint32_t)rd;
		}
	} else {
		snprintf(c->err, sizeof c->err,
			 "unknown aarch64 instruction '%s' (expected NOP, BTI C, ISB, BRK, RET, BR, BLR, B, BL, ADRP, ADR, "
			 "ADD, MOV, LDR, or .word)",
			 mn);
		return -1;
	}
#undef WANT
	put32(out, w);
	return 4;
}

static int64_t sext(uint64_t v, int bits)
{
	return (int64_t)(v << (64 - bits)) >> (64 - bits);
}

void a64_dec(uint32_t w, uint64_t pc, struct insn *o)
{
	memset(o, 0, sizeof *o);
	o->rd = o->rn = o->link = -1;
	int rd = (int)(w & 31), rn = (int)((w >> 5) & 31);

	o->len = 4;
	o->kind = IK_FALL;
	snprintf(o->text, sizeof o->text, ".word 0x%08x", w);
	if (w == 0) {
		o->kind = IK_UNDEF;
		snprintf(o->text, sizeof o->text, "udf #0");
	} else if (w == 0xd503201f) {
		o->cmodx_ok = true;
		snprintf(o->text, sizeof o->text, "NOP");
	} else if ((w & 0xffffff3f) == 0xd503241f) {
		snprintf(o->text, sizeof o->text, "BTI");
	} else if ((w & 0xfffff0ff) == 0xd50330df) {
		o->cmodx_ok = true;
		snprintf(o->text, sizeof o->text, "ISB");
	} else if ((w & 0x7c000000) == 0x14000000) {
		o->kind = IK_JUMP;
		o->target = pc + (uint64_t)(sext(w & 0x3ffffff, 26) * 4);
		o->link = (w >> 31) ? 30 : -1;
		o->cmodx_ok = true;
		snprintf(o->text, sizeof o->text, "%s 0x%llx", o->link >= 0 ? "BL" : "B",
			 (unsigned long long)o->target);
	} else if ((w & 0xfffffc1f) == 0xd65f0000) {
		o->kind = IK_RET;
		snprintf(o->text, sizeof o->text, "RET");
	} else if ((w & 0xfffffc1f) == 0xd61f0000 || (w & 0xfffffc1f) == 0xd63f0000) {
		o->kind = IK_JUMP_REG;
		o->rn = (int8_t)rn;
		o->link = (w & 0x00200000) ? 30 : -1;
		snprintf(o->text, sizeof o->text, "%s X%d", o->link >= 0 ? "BLR" : "BR", rn);
	} else if ((w & 0x1f000000) == 0x10000000) { /* ADR / ADRP */
		int64_t imm = sext(((w >> 5) & 0x7ffff) << 2 | ((w >> 29) & 3), 21);
		o->kind = IK_SETREG;
		o->rd = (int8_t)rd;
		if (w >> 31)
			o->target = (pc & ~0xfffULL) + (uint64_t)(imm * 4096);
		else
			o->target = pc + (uint64_t)imm;
		snprintf(o->text, sizeof o->text, "%s X%d, 0x%llx", (w >> 31) ? "ADRP" : "ADR", rd,
			 (unsigned long long)o->target);
	} else if ((w & 0xff800000) == 0x91000000) {
		o->kind = IK_ADDIMM;
		o->rd = (int8_t)rd, o->rn = (int8_t)rn;
		o->imm = (int64_t)((w >> 10) & 0xfff) << ((w >> 22) & 1 ? 12 : 0);
		snprintf(o->text, sizeof o->text, "ADD X%d, X%d, #0x%llx", rd, rn, (unsigned long long)o->imm);
	} else if ((w & 0xff000000) == 0x58000000) {
		o->kind = IK_LOAD;
		o->rd = (int8_t)rd;
		o->target = pc + (uint64_t)(sext((w >> 5) & 0x7ffff, 19) * 4);
		snprintf(o->text, sizeof o->text, "LDR X%d, 0x%llx", rd, (unsigned long long)o->target);
	} else if ((w & 0xffc00000) == 0xf9400000) {
		o->kind = IK_LOAD;
		o->rd = (int8_t)rd, o->rn = (int8_t)rn;
		o->imm = (int64_t)((w >> 10) & 0xfff) * 8;
		snprintf(o->text, sizeof o->text, "LDR X%d, [X%d, #0x%llx]", rd, rn, (unsigned long long)o->imm);
	} else if ((w & 0xffe0ffe0) == 0xaa0003e0) {
		o->kind = IK_MOV;
		o->rd = (int8_t)rd, o->rn = (int8_t)((w >> 16) & 31);
		snprintf(o->text, sizeof o->text, "MOV X%d, X%d", rd, o->rn);
	} else if ((w & 0xff000010) == 0x54000000 || (w & 0x7e000000) == 0x34000000 ||
		   (w & 0x7e000000) == 0x36000000) {
		o->kind = IK_CONDBR;
		o->cmodx_ok = true;
		snprintf(o->text, sizeof o->text, "B.cond/CBZ/TBZ 0x%08x", w);
	} else if ((w & 0xffe0001f) == 0xd4200000) {
		o->kind = IK_TRAP;
		o->cmodx_ok = true;
		snprintf(o->text, sizeof o->text, "BRK #%u", (w >> 5) & 0xffff);
	} else if ((w & 0xffe0001c) == 0xd4000000 && (w & 3)) {
		o->kind = IK_TRAP; /* SVC/HVC/SMC: a system call is outside what a patch site may do */
		o->cmodx_ok = true;
		snprintf(o->text, sizeof o->text, "SVC/HVC/SMC");
	}
}
