// SPDX-License-Identifier: MIT
/*
 * x86-64 encoders and decoder; see insn.h for the contract.
 *
 * All multi-byte immediates are little-endian.  A relative branch's
 * displacement is added to the address of the *next* instruction, modulo
 * 2^64 (SDM Vol. 1, 3.3.7 "Address Calculations in 64-Bit Mode": 64-bit
 * addresses wrap).
 */
#include "arch/x86_64/insn.h"

#include <stdio.h>
#include <string.h>

/*
 * Intel's recommended multi-byte NOPs (SDM Vol. 2B, NOP, table
 * "Recommended Multi-Byte Sequence of NOP Instruction").  Forms 3..9 are
 * "0F 1F /0" (NOP r/m32) with a ModRM byte chosen to add a SIB byte and a
 * zero displacement of 0, 1 or 4 bytes; a 66 prefix makes forms 2, 6, 9.
 *
 *   len  bytes                        operand
 *    1   90                           -
 *    2   66 90                        -            (operand-size prefix)
 *    3   0f 1f 00                     [rax]        ModRM 00 000 000
 *    4   0f 1f 40 00                  [rax+disp8]  ModRM 01 000 000
 *    5   0f 1f 44 00 00               [rax+rax*1+disp8]  ModRM 01 000 100, SIB 00 000 000
 *    6   66 0f 1f 44 00 00            as 5, 16-bit operand
 *    7   0f 1f 80 00 00 00 00         [rax+disp32] ModRM 10 000 000
 *    8   0f 1f 84 00 00 00 00 00      [rax+rax*1+disp32] ModRM 10 000 100, SIB 0
 *    9   66 0f 1f 84 00 00 00 00 00   as 8, 16-bit operand
 */
static const uint8_t x86_nops[X86_NOP_MAX + 1][X86_NOP_MAX] = {
	[1] = { 0x90 },
	[2] = { 0x66, 0x90 },
	[3] = { 0x0f, 0x1f, 0x00 },
	[4] = { 0x0f, 0x1f, 0x40, 0x00 },
	[5] = { 0x0f, 0x1f, 0x44, 0x00, 0x00 },
	[6] = { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00 },
	[7] = { 0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00 },
	[8] = { 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 },
	[9] = { 0x66, 0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00 },
};

/* How objdump spells each NOP form (AT&T syntax). */
static const char *const x86_nop_text[X86_NOP_MAX + 1] = {
	[1] = "nop",
	[2] = "xchg %ax,%ax",
	[3] = "nopl (%rax)",
	[4] = "nopl 0x0(%rax)",
	[5] = "nopl 0x0(%rax,%rax,1)",
	[6] = "nopw 0x0(%rax,%rax,1)",
	[7] = "nopl 0x0(%rax)",
	[8] = "nopl 0x0(%rax,%rax,1)",
	[9] = "nopw 0x0(%rax,%rax,1)",
};

int x86_encode_nop(uint8_t *out, size_t len)
{
	if (!out || len < 1 || len > X86_NOP_MAX)
		return -STITCH_EINVAL;
	memcpy(out, x86_nops[len], len);
	return 0;
}

/* Displacement of a branch of `len` bytes at pc to target, as a signed 64-bit value. */
static int64_t x86_rel(uint64_t pc, unsigned len, uint64_t target)
{
	return (int64_t)(target - (pc + len));
}

static void x86_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

static uint32_t x86_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

/* JMP rel8 (SDM Vol. 2A, JMP, "EB cb"): opcode, then a signed byte. */
int x86_encode_jmp_rel8(uint8_t out[2], uint64_t pc, uint64_t target)
{
	int64_t d = x86_rel(pc, X86_JMP_REL8_LEN, target);

	if (!out)
		return -STITCH_EINVAL;
	if (d < INT8_MIN || d > INT8_MAX)
		return -STITCH_ERANGE;
	out[0] = X86_JMP_REL8;
	out[1] = (uint8_t)(int8_t)d;
	return 0;
}

/* Opcode byte, then a signed 32-bit little-endian displacement from pc + 5. */
static int x86_encode_rel32(uint8_t out[5], uint8_t opcode, uint64_t pc, uint64_t target)
{
	int64_t d = x86_rel(pc, 5, target);

	if (!out)
		return -STITCH_EINVAL;
	if (d < INT32_MIN || d > INT32_MAX)
		return -STITCH_ERANGE;
	out[0] = opcode;
	x86_put32(out + 1, (uint32_t)(int32_t)d);
	return 0;
}

/* JMP rel32 (SDM Vol. 2A, JMP, "E9 cd"). */
int x86_encode_jmp_rel32(uint8_t out[5], uint64_t pc, uint64_t target)
{
	return x86_encode_rel32(out, X86_JMP_REL32, pc, target);
}

/* CALL rel32 (SDM Vol. 2A, CALL, "E8 cd"); pushes pc + 5. */
int x86_encode_call_rel32(uint8_t out[5], uint64_t pc, uint64_t target)
{
	return x86_encode_rel32(out, X86_CALL_REL32, pc, target);
}

/* INT3 (SDM Vol. 2A, INT n/INTO/INT3/INT1, "CC"): the one-byte breakpoint. */
int x86_encode_int3(uint8_t out[1])
{
	if (!out)
		return -STITCH_EINVAL;
	out[0] = X86_INT3;
	return 0;
}

/* RET (SDM Vol. 2B, RET, "C3"): near return. */
int x86_encode_ret(uint8_t out[1])
{
	if (!out)
		return -STITCH_EINVAL;
	out[0] = X86_RET;
	return 0;
}

/*
 * Length of the recommended NOP at b, 0 if the bytes are no NOP form, -1 if
 * the avail bytes are the beginning of a NOP form but it is cut short.
 * No form in the table is a prefix of another, so at most one can match.
 */
static int x86_match_nop(const uint8_t *b, size_t avail)
{
	bool truncated = false;

	for (size_t len = 1; len <= X86_NOP_MAX; len++) {
		size_t cmp = avail < len ? avail : len;

		if (b[0] != x86_nops[len][0] || memcmp(b, x86_nops[len], cmp) != 0)
			continue;
		if (cmp == len)
			return (int)len;
		truncated = true;
	}
	return truncated ? -1 : 0;
}

int x86_decode(const uint8_t *bytes, size_t avail, uint64_t pc, struct x86_insn *out)
{
	struct x86_insn r = { 0 };
	int n;

	if (!bytes || !out || avail == 0)
		return -STITCH_EINVAL;
	switch (bytes[0]) {
	case X86_INT3:
		r.kind = X86_INSN_INT3;
		r.len = 1;
		break;
	case X86_RET:
		r.kind = X86_INSN_RET;
		r.len = 1;
		break;
	case X86_JMP_REL8:
		if (avail < 2)
			return -STITCH_EINVAL;
		r.kind = X86_INSN_JMP_REL8;
		r.len = 2;
		r.target = pc + 2 + (uint64_t)(int64_t)(int8_t)bytes[1];
		break;
	case X86_JMP_REL32:
	case X86_CALL_REL32:
		if (avail < 5)
			return -STITCH_EINVAL;
		r.kind = bytes[0] == X86_JMP_REL32 ? X86_INSN_JMP_REL32 : X86_INSN_CALL_REL32;
		r.len = 5;
		r.target = pc + 5 + (uint64_t)(int64_t)(int32_t)x86_get32(bytes + 1);
		break;
	default:
		n = x86_match_nop(bytes, avail);
		if (n < 0)
			return -STITCH_EINVAL;
		if (n == 0)
			return -STITCH_EUNKNOWN;
		r.kind = X86_INSN_NOP;
		r.len = (uint8_t)n;
		break;
	}
	*out = r;
	return 0;
}

/*
 * x86_decode(), plus the NOP forms 4..9 above with any displacement bytes.
 * The SDM (Vol. 2B, NOP): the multi-byte NOP "will not issue a memory
 * operation", so the displacement changes the bytes and nothing else;
 * clang's -fpatchable-function-entry=5 emits 0f 1f 44 00 08.  Forms 3 and
 * 1..2 have no displacement.  For code stitch finds, not code it writes
 * (x86_decode() stays exact: it re-encodes to what it decoded).
 */
int x86_decode_site(const uint8_t *bytes, size_t avail, uint64_t pc, struct x86_insn *out)
{
	int err = x86_decode(bytes, avail, pc, out);
	if (err != -STITCH_EUNKNOWN)
		return err;
	/* each form's length and its bytes before the displacement (1 byte
	 * for forms 4..6, 4 for 7..9, up to the end) */
	static const struct {
		uint8_t len, fixed;
	} shapes[] = { { 4, 3 }, { 5, 4 }, { 6, 5 }, { 7, 3 }, { 8, 4 }, { 9, 5 } };
	for (size_t i = 0; i < sizeof(shapes) / sizeof(shapes[0]); i++) {
		size_t fixed = shapes[i].fixed;
		if (avail < fixed || memcmp(bytes, x86_nops[shapes[i].len], fixed) != 0)
			continue;
		if (avail < shapes[i].len)
			return -STITCH_EINVAL;
		struct x86_insn r = { .kind = X86_INSN_NOP, .len = shapes[i].len };
		*out = r;
		return 0;
	}
	return -STITCH_EUNKNOWN;
}

const char *x86_insn_name(enum x86_insn_kind kind)
{
	switch (kind) {
	case X86_INSN_NOP: return "nop";
	case X86_INSN_JMP_REL8:
	case X86_INSN_JMP_REL32: return "jmp";
	case X86_INSN_CALL_REL32: return "call";
	case X86_INSN_INT3: return "int3";
	case X86_INSN_RET: return "ret";
	}
	return "?";
}

int x86_disasm(char *buf, size_t n, const struct x86_insn *insn)
{
	switch (insn->kind) {
	case X86_INSN_NOP:
		if (insn->len >= 1 && insn->len <= X86_NOP_MAX)
			return snprintf(buf, n, "%s", x86_nop_text[insn->len]);
		break;
	case X86_INSN_JMP_REL8:
	case X86_INSN_JMP_REL32:
	case X86_INSN_CALL_REL32:
		return snprintf(buf, n, "%s 0x%llx", x86_insn_name(insn->kind),
				(unsigned long long)insn->target);
	case X86_INSN_INT3:
	case X86_INSN_RET:
		return snprintf(buf, n, "%s", x86_insn_name(insn->kind));
	}
	return snprintf(buf, n, "(bad)");
}
