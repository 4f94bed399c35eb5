/* SPDX-License-Identifier: MIT */
/*
 * Cross-decoding with the library's own decoders (src/arch/<arch>/insn.h,
 * target stitch_insn).  Built when the library is part of the build
 * (STITCH_CHECK_LIBDECODE): every instruction start of every memory
 * version of a model (raw bytes recorded by STITCH_PATCH_LOG included) is
 * decoded by both, and any disagreement about what the instruction does
 * (kind, length, target, AArch64 CMODX class) rejects the model.  So the
 * verdict on a recorded operation rests on the decoders the library
 * itself uses to check the bytes before it writes them.
 */
#include <stdio.h>
#include <string.h>

#include "arch/aarch64/insn.h"
#include "arch/riscv64/insn.h"
#include "arch/x86_64/insn.h"
#include "model.h"

int libdec_verify(const struct model *m);

static int disagree(const struct model *m, uint64_t pc, int q, const struct insn *mine, const char *lib)
{
	fprintf(stderr,
		"%s: error: decoders disagree at 0x%llx (memory version %d): stitch-check decodes '%s', the library "
		"decoder %s\n",
		m->file, (unsigned long long)pc, q, mine->text, lib);
	return 2;
}

static int check_x86(const struct model *m, const uint8_t *b, size_t avail, uint64_t pc, int q,
		     const struct insn *mine)
{
	struct x86_insn x;
	if (x86_decode(b, avail, pc, &x)) {
		/* outside the library's repertoire (endbr64, garbage): nothing to compare with */
		return 0;
	}
	bool ok = x.len == mine->len;
	switch (x.kind) {
	case X86_INSN_NOP:
		ok = ok && mine->kind == IK_FALL;
		break;
	case X86_INSN_JMP_REL8:
	case X86_INSN_JMP_REL32:
		ok = ok && mine->kind == IK_JUMP && mine->link < 0 && mine->target == x.target;
		break;
	case X86_INSN_CALL_REL32:
		ok = ok && mine->kind == IK_JUMP && mine->link >= 0 && mine->target == x.target;
		break;
	case X86_INSN_INT3:
		ok = ok && mine->kind == IK_TRAP;
		break;
	case X86_INSN_RET:
		ok = ok && mine->kind == IK_RET;
		break;
	}
	return ok ? 0 : disagree(m, pc, q, mine, "says otherwise (x86 kind/length/target)");
}

static int check_a64(const struct model *m, uint32_t w, uint64_t pc, int q, const struct insn *mine)
{
	struct a64_insn a;
	if (a64_insn_cmodx_safe(w) != mine->cmodx_ok)
		return disagree(m, pc, q, mine, "classifies its CMODX safety differently");
	if (a64_decode(w, pc, &a))
		return 0;
	bool ok;
	switch (a.kind) {
	case A64_INSN_B:
	case A64_INSN_BL:
		ok = mine->kind == IK_JUMP && mine->target == a.target && (mine->link >= 0) == (a.kind == A64_INSN_BL);
		break;
	case A64_INSN_NOP:
	case A64_INSN_BTI_C:
	case A64_INSN_ISB:
		ok = mine->kind == IK_FALL;
		break;
	case A64_INSN_RET:
		ok = mine->kind == IK_RET;
		break;
	case A64_INSN_ADRP:
		ok = mine->kind == IK_SETREG && mine->target == a.target && mine->rd == (int)a.rd;
		break;
	case A64_INSN_ADD_IMM:
		ok = mine->kind == IK_ADDIMM && mine->rd == (int)a.rd && mine->rn == (int)a.rn;
		break;
	case A64_INSN_LDR_LIT:
		ok = mine->kind == IK_LOAD && mine->target == a.target && mine->rd == (int)a.rd;
		break;
	case A64_INSN_LDR_IMM:
		ok = mine->kind == IK_LOAD && mine->rd == (int)a.rd && mine->rn == (int)a.rn;
		break;
	case A64_INSN_BR:
		ok = mine->kind == IK_JUMP_REG && mine->rn == (int)a.rn;
		break;
	case A64_INSN_MOV_REG:
		ok = mine->kind == IK_MOV && mine->rd == (int)a.rd;
		break;
	case A64_INSN_B_COND:
	case A64_INSN_CBZ:
	case A64_INSN_CBNZ:
	case A64_INSN_TBZ:
	case A64_INSN_TBNZ:
		ok = mine->kind == IK_CONDBR;
		break;
	default: /* BRK, SVC, HVC, SMC */
		ok = mine->kind == IK_TRAP;
		break;
	}
	return ok ? 0 : disagree(m, pc, q, mine, "says otherwise (aarch64 kind/register/target)");
}

static int check_rv(const struct model *m, const uint8_t *b, size_t avail, uint64_t pc, int q,
		    const struct insn *mine)
{
	struct rv_insn r;
	if (rv_decode(b, avail, pc, &r))
		return 0;
	bool ok = r.len == mine->len;
	switch (r.kind) {
	case RV_INSN_NOP:
	case RV_INSN_C_NOP:
		ok = ok && mine->kind == IK_FALL;
		break;
	case RV_INSN_JAL:
		ok = ok && mine->kind == IK_JUMP && mine->target == r.target;
		break;
	case RV_INSN_JALR:
		ok = ok && (mine->kind == IK_JUMP_REG || mine->kind == IK_RET);
		break;
	case RV_INSN_AUIPC:
		ok = ok && mine->kind == IK_SETREG && mine->rd == (int)r.rd;
		break;
	case RV_INSN_LD:
		ok = ok && mine->kind == IK_LOAD && mine->rd == (int)r.rd && mine->imm == r.imm;
		break;
	case RV_INSN_EBREAK:
	case RV_INSN_C_EBREAK:
		ok = ok && mine->kind == IK_TRAP;
		break;
	case RV_INSN_ADDI:
		ok = ok && mine->kind == IK_ADDIMM && mine->imm == r.imm;
		break;
	}
	return ok ? 0 : disagree(m, pc, q, mine, "says otherwise (riscv64 kind/length/target)");
}

int libdec_verify(const struct model *m)
{
	for (int q = 0; q <= m->nsteps; q++)
		for (int r = 0; r < m->nregions; r++) {
			const struct region *rg = &m->regions[r];
			if (!rg->code)
				continue;
			for (uint32_t off = 0; off < rg->size; off++) {
				uint32_t f = rg->flat + off;
				if (!m->bound[q][f] || !m->is_code[f])
					continue;
				const uint8_t *b = m->snap[q] + f;
				size_t avail = rg->size - off;
				uint64_t pc = rg->base + off;
				struct insn in;
				int rc = 0;
				decode_insn(m->arch, b, avail, pc, &in);
				if (m->arch == ARCH_X86_64)
					rc = check_x86(m, b, avail, pc, q, &in);
				else if (m->arch == ARCH_AARCH64 && avail >= 4)
					rc = check_a64(m, (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
								  (uint32_t)b[3] << 24,
						       pc, q, &in);
				else if (m->arch == ARCH_RISCV64)
					rc = check_rv(m, b, avail, pc, q, &in);
				if (rc)
					return rc;
			}
		}
	return 0;
}
