/* SPDX-License-Identifier: MIT */
/*
 * RISC-V 64 static-key sites: one 4-byte-aligned word (the site is emitted
 * with .balign 4 and .option norvc), NOP <-> JAL zero, target.  poke.c
 * swaps it with one aligned store and one sync.
 */
#include <string.h>

#include "arch/arch.h"
#include "arch/riscv64/insn.h"

int arch_jump_label_patch(const struct stitch_jump_site *site, bool jump, struct stitch_patch *patch)
{
	if (site->code % 4 != 0)
		return stitch_fail(STITCH_EALIGN,
				   "static-key site %#lx is not 4-byte aligned (it could straddle a 4-byte boundary "
				   "and be fetched torn)",
				   (unsigned long)site->code);
	const uint8_t *code = (const uint8_t *)site->code;
	struct rv_insn insn;
	char found[3 * 4 + 1];
	int err = rv_decode(code, 4, site->code, &insn);
	bool is_nop = !err && insn.kind == RV_INSN_NOP;
	bool is_jal = !err && insn.kind == RV_INSN_JAL && insn.rd == RV_REG_ZERO;
	if (!is_nop && !is_jal)
		return stitch_fail(STITCH_EUNKNOWN, "static-key site %#lx: expected nop or jal zero, found %s",
				   (unsigned long)site->code, stitch_hex(found, code, 4));
	if (is_jal && insn.target != site->target)
		return stitch_fail(STITCH_EMISMATCH, "static-key site %#lx: jal goes to %#lx, the table says %#lx",
				   (unsigned long)site->code, (unsigned long)insn.target, (unsigned long)site->target);
	uint32_t next = RV_NOP;
	if (jump) {
		err = rv_encode_jal(&next, RV_REG_ZERO, site->code, site->target);
		if (err)
			return stitch_fail(-err, "static-key site %#lx: cannot jump to %#lx: %s",
					   (unsigned long)site->code, (unsigned long)site->target, stitch_strerror(err));
	}
	memset(patch, 0, sizeof(*patch));
	patch->addr = site->code;
	patch->len = 4;
	memcpy(patch->old, code, 4);
	rv_put32(patch->new_bytes, next);
	return 0;
}
