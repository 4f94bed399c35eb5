// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for a64_decode().  Input: 8 bytes of pc, then one
 * 4-byte instruction word (both little-endian; shorter inputs are padded
 * with zeros, so every word is reachable).  Beyond "no crash":
 *  - a failure is -STITCH_EUNKNOWN and leaves *out as it was;
 *  - register fields are 0..31, fields a kind does not use are 0, and the
 *    target of every PC-relative kind is pc + imm (page-based for ADRP);
 *  - every kind with an encoder re-encodes to the same word: the decoder
 *    must not accept a word that differs from what it claims it is;
 *  - the CMODX classification agrees with the kind, and a64_disasm() fits.
 * The pc is aligned down to 4 bytes: instructions live at aligned addresses.
 */
#include <string.h>

#include "arch/aarch64/insn.h"
#include "fuzz.h"

static bool pc_relative(enum a64_insn_kind k)
{
	switch (k) {
	case A64_INSN_B: case A64_INSN_BL: case A64_INSN_LDR_LIT: case A64_INSN_B_COND:
	case A64_INSN_CBZ: case A64_INSN_CBNZ: case A64_INSN_TBZ: case A64_INSN_TBNZ:
		return true;
	default:
		return false;
	}
}

/* Re-encode d; 1 if this kind has no encoder (classification-only kinds). */
static int reencode(const struct a64_insn *d, uint64_t pc, uint32_t *w)
{
	switch (d->kind) {
	case A64_INSN_B: return a64_encode_b(w, pc, d->target);
	case A64_INSN_BL: return a64_encode_bl(w, pc, d->target);
	case A64_INSN_NOP: *w = a64_nop(); return 0;
	case A64_INSN_BTI_C: *w = a64_bti_c(); return 0;
	case A64_INSN_RET: return a64_encode_ret(w, d->rn);
	case A64_INSN_BR: return a64_encode_br(w, d->rn);
	case A64_INSN_ADRP: return a64_encode_adrp(w, d->rd, pc, d->target);
	case A64_INSN_ADD_IMM:
		return a64_encode_add_imm(w, d->rd, d->rn, (uint32_t)(d->imm >> d->rm), d->rm == 12);
	case A64_INSN_LDR_LIT: return a64_encode_ldr_literal(w, d->rd, pc, d->target);
	case A64_INSN_LDR_IMM: return a64_encode_ldr_imm(w, d->rd, d->rn, (uint32_t)d->imm);
	case A64_INSN_MOV_REG: return a64_encode_mov_reg(w, d->rd, d->rm);
	default: return 1;
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t in[12] = { 0 };
	struct a64_insn d;
	struct a64_insn sentinel;
	char text[96];

	memcpy(in, data, size < sizeof in ? size : sizeof in);
	uint64_t pc = fuzz_get64(in) & ~3ull;
	uint32_t insn = (uint32_t)in[8] | (uint32_t)in[9] << 8 | (uint32_t)in[10] << 16 | (uint32_t)in[11] << 24;

	memset(&sentinel, 0x5a, sizeof sentinel);
	d = sentinel;
	int rc = a64_decode(insn, pc, &d);
	if (rc != 0) {
		FUZZ_CHECK(rc == -STITCH_EUNKNOWN);
		FUZZ_CHECK(memcmp(&d, &sentinel, sizeof d) == 0);
		FUZZ_CHECK(!a64_insn_cmodx_safe(insn));
		return 0;
	}
	FUZZ_CHECK(d.rd <= 31 && d.rn <= 31);
	FUZZ_CHECK(d.kind == A64_INSN_TBZ || d.kind == A64_INSN_TBNZ ? d.rm <= 63 : d.rm <= 31);
	if (pc_relative(d.kind))
		FUZZ_CHECK(d.target == pc + (uint64_t)d.imm && d.imm % 4 == 0);
	else if (d.kind == A64_INSN_ADRP)
		FUZZ_CHECK(d.target == (pc & ~0xfffull) + (uint64_t)d.imm && d.imm % 4096 == 0);
	else
		FUZZ_CHECK(d.target == 0);

	uint32_t w = 0;
	rc = reencode(&d, pc, &w);
	if (rc != 1) {
		FUZZ_CHECK(rc == 0);
		FUZZ_CHECK(w == insn);
	}
	bool cmodx = d.kind == A64_INSN_B || d.kind == A64_INSN_BL || d.kind == A64_INSN_B_COND ||
		     d.kind == A64_INSN_CBZ || d.kind == A64_INSN_CBNZ || d.kind == A64_INSN_TBZ ||
		     d.kind == A64_INSN_TBNZ || d.kind == A64_INSN_NOP || d.kind == A64_INSN_BRK ||
		     d.kind == A64_INSN_ISB || d.kind == A64_INSN_SVC || d.kind == A64_INSN_HVC ||
		     d.kind == A64_INSN_SMC;
	FUZZ_CHECK(a64_insn_cmodx_safe(insn) == cmodx);
	int n = a64_disasm(text, sizeof text, &d);
	FUZZ_CHECK(n > 0 && (size_t)n < sizeof text);
	return 0;
}
