/* SPDX-License-Identifier: MIT */
/*
 * x86-64 static-key sites (emitted by <stitch/arch/jump_label.h>):
 *
 *   5-byte site:  0f 1f 44 00 00  (nop)   <->  e9 rel32  (jmp target)
 *   2-byte site:  66 90           (nop)   <->  eb rel8   (jmp target)
 *
 * The NOP form of a site the compiler emitted as a NOP is always 5 bytes;
 * a site emitted as a jump is whatever the assembler chose, and keeps that
 * length: the length found when the module registered is kept in the site
 * (core/jump_label.c), and a later update finding another one is refused.
 * The bytes alone cannot tell: 66 90 written over the head of a 5-byte
 * site is a well-formed 2-byte site.  Both directions are multi-byte
 * changes: poke.c's int3 protocol.
 */
#include <string.h>

#include "arch/arch.h"
#include "arch/x86_64/insn.h"

int arch_jump_label_patch(const struct stitch_jump_site *site, bool jump, struct stitch_patch *patch)
{
	const uint8_t *code = (const uint8_t *)site->code;
	struct x86_insn insn;
	char found[3 * 5 + 1];
	int err = x86_decode(code, 5, site->code, &insn);
	bool is_nop = !err && insn.kind == X86_INSN_NOP && (insn.len == 5 || insn.len == 2);
	bool is_jmp = !err && (insn.kind == X86_INSN_JMP_REL32 || insn.kind == X86_INSN_JMP_REL8);
	if (!is_nop && !is_jmp)
		return stitch_fail(STITCH_EUNKNOWN,
				   "static-key site %#lx: expected a 2- or 5-byte NOP or a jmp, found %s",
				   (unsigned long)site->code, stitch_hex(found, code, 5));
	if (site->len && insn.len != site->len)
		return stitch_fail(STITCH_EUNKNOWN,
				   "static-key site %#lx: expected a %u-byte NOP or jmp, found a %u-byte %s (%s)",
				   (unsigned long)site->code, site->len, insn.len, is_nop ? "NOP" : "jmp",
				   stitch_hex(found, code, 5));
	if (is_jmp && insn.target != site->target)
		return stitch_fail(STITCH_EMISMATCH, "static-key site %#lx: jmp goes to %#lx, the table says %#lx",
				   (unsigned long)site->code, (unsigned long)insn.target, (unsigned long)site->target);
	memset(patch, 0, sizeof(*patch));
	patch->addr = site->code;
	patch->len = insn.len;
	memcpy(patch->old, code, insn.len);
	if (!jump)
		err = x86_encode_nop(patch->new_bytes, insn.len);
	else if (insn.len == 5)
		err = x86_encode_jmp_rel32(patch->new_bytes, site->code, site->target);
	else
		err = x86_encode_jmp_rel8(patch->new_bytes, site->code, site->target);
	if (err)
		return stitch_fail(-err, "static-key site %#lx: cannot encode a %u-byte %s to %#lx: %s",
				   (unsigned long)site->code, insn.len, jump ? "jmp" : "nop",
				   (unsigned long)site->target, stitch_strerror(err));
	return 0;
}
