/* SPDX-License-Identifier: MIT */
/*
 * x86-64: the instructions that appear at patch sites (Intel SDM Vol. 2):
 * NOPs (90, 66 90, 0f 1f /0 forms), jmp rel8 (eb), jmp rel32 (e9),
 * call rel32 (e8), int3 (cc), ret (c3), endbr64 (f3 0f 1e fa).
 * Anything else is IK_UNDEF: at a patch site it can only be a torn or
 * misaligned fetch, which is exactly what the checker must report.
 */
#include <stdio.h>
#include <string.h>

#include "model.h"

static int rel(struct asm_ctx *c, const char *ops, uint64_t end, int bytes, int64_t *d)
{
	uint64_t t;

	if (!eval_expr(c, ops, &t))
		return -1;
	*d = (int64_t)(t - end);
	if (c->sizing)
		return 0;
	if ((bytes == 1 && (*d < -128 || *d > 127)) || (bytes == 4 && (*d < INT32_MIN || *d > INT32_MAX))) {
		snprintf(c->err, sizeof c->err, "target out of rel%d range", bytes * 8);
		return -1;
	}
	return 0;
}

/* Intel's recommended multi-byte NOPs, 1..8 bytes. */
static const uint8_t nops[9][8] = {
	{0},
	{0x90},
	{0x66, 0x90},
	{0x0f, 0x1f, 0x00},
	{0x0f, 0x1f, 0x40, 0x00},
	{0x0f, 0x1f, 0x44, 0x00, 0x00},
	{0x66, 0x0f, 0x1f, 0x44, 0x00, 0x00},
	{0x0f, 0x1f, 0x80, 0x00, 0x00, 0x00, 0x00},
	{0x0f, 0x1f, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00},
};

int x86_asm(struct asm_ctx *c, const char *mn, const char *ops, uint8_t *out, size_t cap)
{
	int64_t d;

	if (cap < 8) {
		snprintf(c->err, sizeof c->err, "no room");
		return -1;
	}
	if (!strncmp(mn, "nop", 3) && (!mn[3] || (mn[3] >= '1' && mn[3] <= '8' && !mn[4]))) {
		int n = mn[3] ? mn[3] - '0' : 1;
		memcpy(out, nops[n], (size_t)n);
		return n;
	}
	if (!strcmp(mn, "int3")) {
		out[0] = 0xcc;
		return 1;
	}
	if (!strcmp(mn, "ret")) {
		out[0] = 0xc3;
		return 1;
	}
	if (!strcmp(mn, "endbr64")) {
		/* NOLINTNEXTLINE(bugprone-not-null-terminated-result): instruction bytes, not a string */
		memcpy(out, "\xf3\x0f\x1e\xfa", 4);
		return 4;
	}
	if (!strcmp(mn, "call") || !strcmp(mn, "jmp") || !strcmp(mn, "jmp8")) {
		int short8 = !strcmp(mn, "jmp8");
		/* `jmp rel8 X` / `jmp rel32 X` spell the form explicitly */
		if (!strncmp(ops, "rel8 ", 5) && mn[0] == 'j') {
			short8 = 1;
			ops += 5;
		} else if (!strncmp(ops, "rel32 ", 6)) {
			ops += 6;
		}
		int n = short8 ? 2 : 5;
		if (rel(c, ops, c->pc + (uint64_t)n, short8 ? 1 : 4, &d) < 0)
			return -1;
		out[0] = short8 ? 0xeb : mn[0] == 'c' ? 0xe8 : 0xe9;
		for (int i = 1; i < n; i++)
			out[i] = (uint8_t)((uint64_t)d >> (8 * (i - 1)));
		return n;
	}
	snprintf(c->err, sizeof c->err,
		 "unknown x86_64 instruction '%s' (expected nop, nop2..nop8, int3, ret, endbr64, call, jmp, jmp8)",
		 mn);
	return -1;
}

void x86_dec(const uint8_t *b, size_t avail, uint64_t pc, struct insn *o)
{
	memset(o, 0, sizeof *o);
	o->rd = o->rn = o->link = -1;
	o->kind = IK_UNDEF;
	o->len = 1;
	snprintf(o->text, sizeof o->text, "(bad) %02x", avail ? b[0] : 0);
	if (!avail)
		return;
	switch (b[0]) {
	case 0x90:
		o->kind = IK_FALL, o->len = 1;
		snprintf(o->text, sizeof o->text, "nop");
		return;
	case 0xcc:
		o->kind = IK_TRAP, o->len = 1;
		snprintf(o->text, sizeof o->text, "int3");
		return;
	case 0xc3:
		o->kind = IK_RET, o->len = 1;
		snprintf(o->text, sizeof o->text, "ret");
		return;
	case 0xeb:
		if (avail < 2)
			return;
		o->kind = IK_JUMP, o->len = 2;
		o->target = pc + 2 + (uint64_t)(int64_t)(int8_t)b[1];
		snprintf(o->text, sizeof o->text, "jmp8 0x%llx", (unsigned long long)o->target);
		return;
	case 0xe8:
	case 0xe9: {
		if (avail < 5)
			return;
		int32_t d = (int32_t)((uint32_t)b[1] | (uint32_t)b[2] << 8 | (uint32_t)b[3] << 16 |
				      (uint32_t)b[4] << 24);
		o->kind = IK_JUMP, o->len = 5;
		o->target = pc + 5 + (uint64_t)(int64_t)d;
		o->link = b[0] == 0xe8 ? 0 : -1; /* call pushes; 0 = "has a return address" */
		snprintf(o->text, sizeof o->text, "%s 0x%llx", b[0] == 0xe8 ? "call" : "jmp",
			 (unsigned long long)o->target);
		return;
	}
	default:
		break;
	}
	/* NOP forms: [66] 0f 1f modrm [sib] [disp] with modrm.reg == 0 */
	size_t i = 0;
	if (b[0] == 0x66) {
		if (avail >= 2 && b[1] == 0x90) {
			o->kind = IK_FALL, o->len = 2;
			snprintf(o->text, sizeof o->text, "nop2");
			return;
		}
		i = 1;
	}
	if (avail >= i + 3 && b[i] == 0x0f && b[i + 1] == 0x1f && ((b[i + 2] >> 3) & 7) == 0) {
		uint8_t modrm = b[i + 2], mod = modrm >> 6, rm = modrm & 7;
		size_t n = i + 3;
		if (mod != 3 && rm == 4)
			n++; /* SIB */
		if (mod == 1)
			n += 1;
		else if (mod == 2 || (mod == 0 && rm == 5))
			n += 4;
		if (n <= avail) {
			o->kind = IK_FALL, o->len = (uint8_t)n;
			snprintf(o->text, sizeof o->text, "nop%zu", n);
		}
		return;
	}
	if (avail >= 4 && !memcmp(b, "\xf3\x0f\x1e\xfa", 4)) {
		o->kind = IK_FALL, o->len = 4;
		snprintf(o->text, sizeof o->text, "endbr64");
	}
}
