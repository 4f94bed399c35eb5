// SPDX-License-Identifier: MIT
/*
 * AArch64 encoders and decoder; see insn.h for the contract.
 *
 * Bit layouts are written most significant bit first, as the Arm ARM
 * (DDI 0487) draws them; each instruction's page is in chapter C6.2 "A64
 * base instructions in alphabetical order" (section numbers move between
 * revisions, so the comments name the page).  The instruction classes are
 * from C4.1 "A64 instruction set encoding".
 */
#include "arch/aarch64/insn.h"

#include <stdio.h>

/* Fixed bits of each encoding (all variable fields zero) and the mask of
 * the bits that identify it. */
#define A64_B_OP 0x14000000u        /* 0 00101 imm26 */
#define A64_BL_OP 0x94000000u       /* 1 00101 imm26 */
#define A64_BRANCH_MASK 0xfc000000u
#define A64_ADRP_OP 0x90000000u     /* 1 immlo:2 10000 immhi:19 Rd:5 */
#define A64_ADRP_MASK 0x9f000000u
#define A64_ADD_IMM_OP 0x91000000u  /* sf=1 op=0 S=0 100010 sh imm12 Rn Rd */
#define A64_ADD_IMM_MASK 0xff800000u
#define A64_LDR_LIT_OP 0x58000000u  /* opc=01 011 V=0 00 imm19 Rt */
#define A64_LDR_LIT_MASK 0xff000000u
#define A64_LDR_IMM_OP 0xf9400000u  /* size=11 111 V=0 01 opc=01 imm12 Rn Rt */
#define A64_LDR_IMM_MASK 0xffc00000u
#define A64_BR_OP 0xd61f0000u       /* 1101011 0000 11111 000000 Rn 00000 */
#define A64_RET_OP 0xd65f0000u      /* 1101011 0010 11111 000000 Rn 00000 */
#define A64_BR_RET_MASK 0xfffffc1fu
#define A64_MOV_REG_OP 0xaa0003e0u  /* sf=1 01 01010 00 0 Rm 000000 11111 Rd */
#define A64_MOV_REG_MASK 0xffe0ffe0u
#define A64_B_COND_OP 0x54000000u   /* 0101010 0 imm19 0 cond */
#define A64_B_COND_MASK 0xff000010u
#define A64_CBZ_OP 0x34000000u      /* sf 011010 op imm19 Rt, op 0 = CBZ, 1 = CBNZ */
#define A64_CBNZ_OP 0x35000000u
#define A64_TBZ_OP 0x36000000u      /* b5 011011 op b40:5 imm14 Rt, op 0 = TBZ, 1 = TBNZ */
#define A64_TBNZ_OP 0x37000000u
#define A64_CB_TB_MASK 0x7f000000u
#define A64_EXC_MASK 0xffe0001fu    /* 11010100 opc:3 imm16 op2:3 LL:2 */
#define A64_SVC_OP 0xd4000001u
#define A64_HVC_OP 0xd4000002u
#define A64_SMC_OP 0xd4000003u
#define A64_BRK_OP 0xd4200000u
#define A64_ISB_OP 0xd50330dfu      /* barriers: 1101010100 0 00 011 0011 CRm 1 10 11111 */
#define A64_ISB_MASK 0xfffff0ffu

static bool a64_reg_ok(unsigned r)
{
	return r <= 31;
}

/* Sign-extend the low `bits` bits of v. */
static int64_t a64_sext(uint64_t v, unsigned bits)
{
	uint64_t m = 1ull << (bits - 1);

	v &= (1ull << bits) - 1;
	return (int64_t)((v ^ m) - m);
}

/*
 * Word offset from pc to target for an imm field of `bits` bits scaled by
 * 4: checks alignment of both, then range.  Stores the field value.
 */
static int a64_pcrel_words(uint64_t pc, uint64_t target, unsigned bits, uint32_t *field)
{
	int64_t off, lim;

	if ((pc | target) & 3)
		return -STITCH_EALIGN;
	off = (int64_t)(target - pc) / 4; /* exact: both are multiples of 4 */
	lim = 1LL << (bits - 1);
	if (off < -lim || off >= lim)
		return -STITCH_ERANGE;
	*field = (uint32_t)((uint64_t)off & ((1ull << bits) - 1));
	return 0;
}

uint32_t a64_nop(void)
{
	/* NOP (C6.2 NOP): HINT #0, 1101010100 0 00 011 0010 0000 000 11111. */
	return A64_NOP;
}

uint32_t a64_bti_c(void)
{
	/* BTI c (C6.2 BTI): HINT #34, CRm=0100 op2=010; a NOP without FEAT_BTI. */
	return A64_BTI_C;
}

uint32_t a64_ret(void)
{
	return A64_RET_OP | (uint32_t)A64_REG_LR << 5;
}

/*
 * B (C6.2 B): 0 00101 imm26.  Branches to pc + SignExtend(imm26:'00'),
 * so 26 bits of words reach -2^27 .. 2^27-4 bytes (±128 MiB).
 * BL (C6.2 BL): the same with bit 31 set; also writes pc + 4 to X30.
 */
static int a64_encode_b_bl(uint32_t *out, uint32_t op, uint64_t pc, uint64_t target)
{
	uint32_t imm26;
	int err;

	if (!out)
		return -STITCH_EINVAL;
	err = a64_pcrel_words(pc, target, 26, &imm26);
	if (err)
		return err;
	*out = op | imm26;
	return 0;
}

int a64_encode_b(uint32_t *out, uint64_t pc, uint64_t target)
{
	return a64_encode_b_bl(out, A64_B_OP, pc, target);
}

int a64_encode_bl(uint32_t *out, uint64_t pc, uint64_t target)
{
	return a64_encode_b_bl(out, A64_BL_OP, pc, target);
}

/*
 * ADRP (C6.2 ADRP): 1 immlo:2 10000 immhi:19 Rd:5.  Xd = (pc & ~0xfff) +
 * SignExtend(immhi:immlo:Zeros(12)); 21 bits of pages, ±4 GiB.
 */
int a64_encode_adrp(uint32_t *out, unsigned rd, uint64_t pc, uint64_t target)
{
	int64_t pages;
	uint32_t imm;

	if (!out || !a64_reg_ok(rd))
		return -STITCH_EINVAL;
	if (pc & 3)
		return -STITCH_EALIGN;
	/* Arithmetic shift of the wrapped difference of two page addresses. */
	pages = (int64_t)((target & ~0xfffull) - (pc & ~0xfffull)) / 4096;
	if (pages < -(1LL << 20) || pages >= (1LL << 20))
		return -STITCH_ERANGE;
	imm = (uint32_t)((uint64_t)pages & 0x1fffff);
	*out = A64_ADRP_OP | (imm & 3) << 29 | (imm >> 2) << 5 | rd;
	return 0;
}

/*
 * ADD (immediate), 64-bit (C6.2 ADD (immediate)):
 * sf=1 op=0 S=0 100010 sh imm12 Rn Rd.  Xd|SP = Xn|SP + (imm12 << (sh ? 12 : 0)).
 */
int a64_encode_add_imm(uint32_t *out, unsigned rd, unsigned rn, uint32_t imm12, bool shift12)
{
	if (!out || !a64_reg_ok(rd) || !a64_reg_ok(rn))
		return -STITCH_EINVAL;
	if (imm12 > 0xfff)
		return -STITCH_ERANGE;
	*out = A64_ADD_IMM_OP | (uint32_t)shift12 << 22 | imm12 << 10 | rn << 5 | rd;
	return 0;
}

/*
 * LDR (literal), 64-bit (C6.2 LDR (literal)): 01 011 0 00 imm19 Rt.
 * Loads 8 bytes from pc + SignExtend(imm19:'00'): ±1 MiB.
 */
int a64_encode_ldr_literal(uint32_t *out, unsigned rt, uint64_t pc, uint64_t target)
{
	uint32_t imm19;
	int err;

	if (!out || !a64_reg_ok(rt))
		return -STITCH_EINVAL;
	err = a64_pcrel_words(pc, target, 19, &imm19);
	if (err)
		return err;
	*out = A64_LDR_LIT_OP | imm19 << 5 | rt;
	return 0;
}

/*
 * LDR (immediate), 64-bit, unsigned offset (C6.2 LDR (immediate)):
 * 11 111 0 01 01 imm12 Rn Rt.  Address Xn|SP + (imm12 << 3): 0..32760.
 */
int a64_encode_ldr_imm(uint32_t *out, unsigned rt, unsigned rn, uint32_t byte_offset)
{
	if (!out || !a64_reg_ok(rt) || !a64_reg_ok(rn))
		return -STITCH_EINVAL;
	if (byte_offset & 7)
		return -STITCH_EALIGN;
	if (byte_offset > 0xfffu * 8)
		return -STITCH_ERANGE;
	*out = A64_LDR_IMM_OP | (byte_offset / 8) << 10 | rn << 5 | rt;
	return 0;
}

/* BR (C6.2 BR): 1101011 0000 11111 000000 Rn 00000. */
int a64_encode_br(uint32_t *out, unsigned rn)
{
	if (!out || !a64_reg_ok(rn))
		return -STITCH_EINVAL;
	*out = A64_BR_OP | rn << 5;
	return 0;
}

/* RET (C6.2 RET): 1101011 0010 11111 000000 Rn 00000. */
int a64_encode_ret(uint32_t *out, unsigned rn)
{
	if (!out || !a64_reg_ok(rn))
		return -STITCH_EINVAL;
	*out = A64_RET_OP | rn << 5;
	return 0;
}

/*
 * MOV (register), 64-bit (C6.2 MOV (register)), the preferred alias of
 * ORR (shifted register) sf=1 opc=01 01010 shift=00 N=0 Rm imm6=0 Rn=11111 Rd.
 */
int a64_encode_mov_reg(uint32_t *out, unsigned rd, unsigned rm)
{
	if (!out || !a64_reg_ok(rd) || !a64_reg_ok(rm))
		return -STITCH_EINVAL;
	*out = A64_MOV_REG_OP | rm << 16 | rd;
	return 0;
}

int a64_decode(uint32_t insn, uint64_t pc, struct a64_insn *out)
{
	struct a64_insn r = { 0 };

	if (!out)
		return -STITCH_EINVAL;
	if ((insn & A64_BRANCH_MASK) == A64_B_OP || (insn & A64_BRANCH_MASK) == A64_BL_OP) {
		r.kind = (insn & A64_BRANCH_MASK) == A64_B_OP ? A64_INSN_B : A64_INSN_BL;
		r.imm = a64_sext(insn, 26) * 4;
		r.target = pc + (uint64_t)r.imm;
	} else if (insn == A64_NOP) {
		r.kind = A64_INSN_NOP;
	} else if (insn == A64_BTI_C) {
		r.kind = A64_INSN_BTI_C;
	} else if ((insn & A64_BR_RET_MASK) == A64_RET_OP || (insn & A64_BR_RET_MASK) == A64_BR_OP) {
		r.kind = (insn & A64_BR_RET_MASK) == A64_RET_OP ? A64_INSN_RET : A64_INSN_BR;
		r.rn = insn >> 5 & 31;
	} else if ((insn & A64_ADRP_MASK) == A64_ADRP_OP) {
		uint32_t imm21 = (insn >> 5 & 0x7ffff) << 2 | (insn >> 29 & 3);

		r.kind = A64_INSN_ADRP;
		r.rd = insn & 31;
		r.imm = a64_sext(imm21, 21) * 4096;
		r.target = (pc & ~0xfffull) + (uint64_t)r.imm;
	} else if ((insn & A64_ADD_IMM_MASK) == A64_ADD_IMM_OP) {
		/* sh is bit 22; bit 23 set would be a different class (tag arithmetic). */
		r.kind = A64_INSN_ADD_IMM;
		r.rd = insn & 31;
		r.rn = insn >> 5 & 31;
		r.rm = insn >> 22 & 1 ? 12 : 0;
		r.imm = (int64_t)(insn >> 10 & 0xfff) << r.rm;
	} else if ((insn & A64_LDR_LIT_MASK) == A64_LDR_LIT_OP) {
		r.kind = A64_INSN_LDR_LIT;
		r.rd = insn & 31;
		r.imm = a64_sext(insn >> 5, 19) * 4;
		r.target = pc + (uint64_t)r.imm;
	} else if ((insn & A64_LDR_IMM_MASK) == A64_LDR_IMM_OP) {
		r.kind = A64_INSN_LDR_IMM;
		r.rd = insn & 31;
		r.rn = insn >> 5 & 31;
		r.imm = (int64_t)(insn >> 10 & 0xfff) * 8;
	} else if ((insn & A64_MOV_REG_MASK) == A64_MOV_REG_OP) {
		r.kind = A64_INSN_MOV_REG;
		r.rd = insn & 31;
		r.rm = insn >> 16 & 31;
	} else if ((insn & A64_B_COND_MASK) == A64_B_COND_OP) {
		/* B.cond (C6.2 B.cond): 0101010 0 imm19 0 cond. */
		r.kind = A64_INSN_B_COND;
		r.rd = insn & 15;
		r.imm = a64_sext(insn >> 5, 19) * 4;
		r.target = pc + (uint64_t)r.imm;
	} else if ((insn & A64_CB_TB_MASK) == A64_CBZ_OP || (insn & A64_CB_TB_MASK) == A64_CBNZ_OP) {
		/* CBZ, CBNZ (C6.2 CBZ, CBNZ): sf 011010 op imm19 Rt. */
		r.kind = (insn & A64_CB_TB_MASK) == A64_CBZ_OP ? A64_INSN_CBZ : A64_INSN_CBNZ;
		r.rd = insn & 31;
		r.sf = insn >> 31;
		r.imm = a64_sext(insn >> 5, 19) * 4;
		r.target = pc + (uint64_t)r.imm;
	} else if ((insn & A64_CB_TB_MASK) == A64_TBZ_OP || (insn & A64_CB_TB_MASK) == A64_TBNZ_OP) {
		/* TBZ, TBNZ (C6.2 TBZ, TBNZ): b5 011011 op b40 imm14 Rt; bit = b5:b40. */
		r.kind = (insn & A64_CB_TB_MASK) == A64_TBZ_OP ? A64_INSN_TBZ : A64_INSN_TBNZ;
		r.rd = insn & 31;
		r.rm = (insn >> 31) << 5 | (insn >> 19 & 31);
		r.sf = insn >> 31;
		r.imm = a64_sext(insn >> 5, 14) * 4;
		r.target = pc + (uint64_t)r.imm;
	} else if ((insn & A64_EXC_MASK) == A64_BRK_OP || (insn & A64_EXC_MASK) == A64_SVC_OP ||
		   (insn & A64_EXC_MASK) == A64_HVC_OP || (insn & A64_EXC_MASK) == A64_SMC_OP) {
		/* Exception generation (C6.2 BRK, SVC, HVC, SMC): 11010100 opc imm16 000 LL. */
		switch (insn & A64_EXC_MASK) {
		case A64_BRK_OP: r.kind = A64_INSN_BRK; break;
		case A64_SVC_OP: r.kind = A64_INSN_SVC; break;
		case A64_HVC_OP: r.kind = A64_INSN_HVC; break;
		default: r.kind = A64_INSN_SMC; break;
		}
		r.imm = insn >> 5 & 0xffff;
	} else if ((insn & A64_ISB_MASK) == A64_ISB_OP) {
		/* ISB (C6.2 ISB): barrier class, CRm = option (1111 = SY). */
		r.kind = A64_INSN_ISB;
		r.imm = insn >> 8 & 15;
	} else {
		return -STITCH_EUNKNOWN;
	}
	*out = r;
	return 0;
}

/*
 * Arm ARM B2.2.5, "Concurrent modification and execution of instructions":
 * a word that another PE may be executing may be changed without
 * synchronisation only if the old and the new instruction are both among
 * B, BL, B.cond, CBZ, CBNZ, TBZ, TBNZ, NOP, BRK, ISB, SVC, HVC, SMC;
 * that PE then executes the old or the new one.  Anything else
 * (ADRP, ADD, LDR, BR, MOV, BTI, RET...) is CONSTRAINED UNPREDICTABLE
 * when changed under a running PE.  The conditional forms (B.cond,
 * CBZ/CBNZ, TBZ/TBNZ) were added to the list in later revisions of the
 * Arm ARM; whether that revision adds conditions on which fields may
 * change was not checked against the primary text here -- check the
 * revision you cite before swapping a conditional branch for another.
 */
bool a64_insn_cmodx_safe(uint32_t insn)
{
	struct a64_insn d;

	if (a64_decode(insn, 0, &d) != 0)
		return false;
	switch (d.kind) {
	case A64_INSN_B:
	case A64_INSN_BL:
	case A64_INSN_B_COND:
	case A64_INSN_CBZ:
	case A64_INSN_CBNZ:
	case A64_INSN_TBZ:
	case A64_INSN_TBNZ:
	case A64_INSN_NOP:
	case A64_INSN_BRK:
	case A64_INSN_ISB:
	case A64_INSN_SVC:
	case A64_INSN_HVC:
	case A64_INSN_SMC:
		return true;
	default:
		return false;
	}
}

bool a64_cmodx_pair_safe(uint32_t old_insn, uint32_t new_insn)
{
	return a64_insn_cmodx_safe(old_insn) && a64_insn_cmodx_safe(new_insn);
}

const char *a64_insn_name(enum a64_insn_kind kind)
{
	switch (kind) {
	case A64_INSN_B: return "b";
	case A64_INSN_BL: return "bl";
	case A64_INSN_NOP: return "nop";
	case A64_INSN_BTI_C: return "bti";
	case A64_INSN_RET: return "ret";
	case A64_INSN_ADRP: return "adrp";
	case A64_INSN_ADD_IMM: return "add";
	case A64_INSN_LDR_LIT:
	case A64_INSN_LDR_IMM: return "ldr";
	case A64_INSN_BR: return "br";
	case A64_INSN_MOV_REG: return "mov";
	case A64_INSN_B_COND: return "b.cond";
	case A64_INSN_CBZ: return "cbz";
	case A64_INSN_CBNZ: return "cbnz";
	case A64_INSN_TBZ: return "tbz";
	case A64_INSN_TBNZ: return "tbnz";
	case A64_INSN_BRK: return "brk";
	case A64_INSN_ISB: return "isb";
	case A64_INSN_SVC: return "svc";
	case A64_INSN_HVC: return "hvc";
	case A64_INSN_SMC: return "smc";
	}
	return "?";
}

/* X register name; 31 is "sp" or "xzr" depending on the operand. */
static const char *a64_xreg(char buf[8], unsigned r, bool r31_is_sp)
{
	if (r == 31)
		return r31_is_sp ? "sp" : "xzr";
	snprintf(buf, 8, "x%u", r);
	return buf;
}

/* W or X register name; 31 is the zero register. */
static const char *a64_rreg(char buf[8], unsigned r, bool x)
{
	if (r == 31)
		return x ? "xzr" : "wzr";
	snprintf(buf, 8, "%c%u", x ? 'x' : 'w', r);
	return buf;
}

static const char *const a64_cond_names[16] = {
	"eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc",
	"hi", "ls", "ge", "lt", "gt", "le", "al", "nv",
};

int a64_disasm(char *buf, size_t n, const struct a64_insn *d)
{
	char a[8], b[8];
	unsigned long long t = (unsigned long long)d->target;

	switch (d->kind) {
	case A64_INSN_B:
	case A64_INSN_BL:
	case A64_INSN_LDR_LIT:
		if (d->kind == A64_INSN_LDR_LIT)
			return snprintf(buf, n, "ldr %s, 0x%llx", a64_xreg(a, d->rd, false), t);
		return snprintf(buf, n, "%s 0x%llx", a64_insn_name(d->kind), t);
	case A64_INSN_NOP:
		return snprintf(buf, n, "nop");
	case A64_INSN_BTI_C:
		return snprintf(buf, n, "bti c");
	case A64_INSN_RET:
		if (d->rn == A64_REG_LR)
			return snprintf(buf, n, "ret");
		return snprintf(buf, n, "ret %s", a64_xreg(a, d->rn, false));
	case A64_INSN_BR:
		return snprintf(buf, n, "br %s", a64_xreg(a, d->rn, false));
	case A64_INSN_ADRP:
		return snprintf(buf, n, "adrp %s, 0x%llx", a64_xreg(a, d->rd, false), t);
	case A64_INSN_ADD_IMM:
		/* ADD Xd, Xn, #0 (unshifted) with SP on either side is shown as MOV (to/from SP). */
		if (d->imm == 0 && d->rm == 0 && (d->rd == 31 || d->rn == 31))
			return snprintf(buf, n, "mov %s, %s", a64_xreg(a, d->rd, true),
					a64_xreg(b, d->rn, true));
		if (d->rm == 12)
			return snprintf(buf, n, "add %s, %s, #0x%llx, lsl #12", a64_xreg(a, d->rd, true),
					a64_xreg(b, d->rn, true), (unsigned long long)d->imm >> 12);
		return snprintf(buf, n, "add %s, %s, #0x%llx", a64_xreg(a, d->rd, true),
				a64_xreg(b, d->rn, true), (unsigned long long)d->imm);
	case A64_INSN_LDR_IMM:
		if (d->imm == 0)
			return snprintf(buf, n, "ldr %s, [%s]", a64_xreg(a, d->rd, false),
					a64_xreg(b, d->rn, true));
		return snprintf(buf, n, "ldr %s, [%s, #%lld]", a64_xreg(a, d->rd, false),
				a64_xreg(b, d->rn, true), (long long)d->imm);
	case A64_INSN_MOV_REG:
		return snprintf(buf, n, "mov %s, %s", a64_xreg(a, d->rd, false), a64_xreg(b, d->rm, false));
	case A64_INSN_B_COND:
		return snprintf(buf, n, "b.%s 0x%llx", a64_cond_names[d->rd & 15], t);
	case A64_INSN_CBZ:
	case A64_INSN_CBNZ:
		return snprintf(buf, n, "%s %s, 0x%llx", a64_insn_name(d->kind), a64_rreg(a, d->rd, d->sf), t);
	case A64_INSN_TBZ:
	case A64_INSN_TBNZ:
		return snprintf(buf, n, "%s %s, #%u, 0x%llx", a64_insn_name(d->kind), a64_rreg(a, d->rd, d->sf),
				d->rm, t);
	case A64_INSN_BRK:
	case A64_INSN_SVC:
	case A64_INSN_HVC:
	case A64_INSN_SMC:
		return snprintf(buf, n, "%s #0x%llx", a64_insn_name(d->kind), (unsigned long long)d->imm);
	case A64_INSN_ISB:
		if (d->imm == 15)
			return snprintf(buf, n, "isb");
		return snprintf(buf, n, "isb #0x%llx", (unsigned long long)d->imm);
	}
	return snprintf(buf, n, "(bad)");
}
