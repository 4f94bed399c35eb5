/* SPDX-License-Identifier: MIT */
/*
 * AArch64 static-key sites: one aligned word, NOP <-> B target.  Both are
 * on the CMODX list, so poke.c swaps them with one store and one sync.
 */
#include <string.h>

#include "arch/aarch64/insn.h"
#include "arch/arch.h"

int arch_jump_label_patch(const struct stitch_jump_site *site, bool jump, struct stitch_patch *patch)
{
	if (site->code % 4 != 0)
		return stitch_fail(STITCH_EALIGN, "static-key site %#lx is not 4-byte aligned", (unsigned long)site->code);
	uint32_t cur, next = A64_NOP;
	memcpy(&cur, (const void *)site->code, 4);
	struct a64_insn insn;
	int err = a64_decode(cur, site->code, &insn);
	if (err || (insn.kind != A64_INSN_NOP && insn.kind != A64_INSN_B))
		return stitch_fail(STITCH_EUNKNOWN, "static-key site %#lx: expected NOP or B, found %08x",
				   (unsigned long)site->code, cur);
	if (insn.kind == A64_INSN_B && insn.target != site->target)
		return stitch_fail(STITCH_EMISMATCH, "static-key site %#lx: B goes to %#lx, the table says %#lx",
				   (unsigned long)site->code, (unsigned long)insn.target, (unsigned long)site->target);
	if (jump) {
		err = a64_encode_b(&next, site->code, site->target);
		if (err)
			return stitch_fail(-err, "static-key site %#lx: cannot branch to %#lx: %s",
					   (unsigned long)site->code, (unsigned long)site->target, stitch_strerror(err));
	}
	memset(patch, 0, sizeof(*patch));
	patch->addr = site->code;
	patch->len = 4;
	memcpy(patch->old, &cur, 4);
	memcpy(patch->new_bytes, &next, 4);
	return 0;
}
