/* SPDX-License-Identifier: MIT */
/*
 * Architecture-neutral part of the assembler: operand expressions,
 * register names, data directives, and dispatch to arch_*.c.
 *
 * Models are written in instruction text so that they read like the
 * seeds' diagrams; the checker turns them into the real encodings so
 * that every question ("which target does this JALR reach after AUIPC'
 * was written?") is answered by arithmetic on real bits, not by a label.
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"

static const char *const rv_abi[32] = {
	"zero", "ra", "sp", "gp", "tp", "t0", "t1", "t2", "s0", "s1", "a0",
	"a1", "a2", "a3", "a4", "a5", "a6", "a7", "s2", "s3", "s4", "s5",
	"s6", "s7", "s8", "s9", "s10", "s11", "t3", "t4", "t5", "t6",
};

int parse_reg(enum arch a, const char *s)
{
	char *end;
	long n;

	if (a == ARCH_AARCH64) {
		if (!strcasecmp(s, "xzr"))
			return 31;
		if (!strcasecmp(s, "sp"))
			return 31; /* encoding 31 means SP in address operands */
		if (!strcasecmp(s, "lr"))
			return 30;
		if (s[0] != 'x' && s[0] != 'X')
			return -1;
		n = strtol(s + 1, &end, 10);
		if (end == s + 1 || *end || n < 0 || n > 30)
			return -1;
		return (int)n;
	}
	if (a == ARCH_RISCV64) {
		for (int i = 0; i < 32; i++)
			if (!strcasecmp(s, rv_abi[i]))
				return i;
		if (!strcasecmp(s, "fp"))
			return 8;
		if (s[0] != 'x' && s[0] != 'X')
			return -1;
		n = strtol(s + 1, &end, 10);
		if (end == s + 1 || *end || n < 0 || n > 31)
			return -1;
		return (int)n;
	}
	return -1;
}

const char *reg_name(enum arch a, int r)
{
	static char buf[8][8];
	static int k;
	char *b = buf[k++ & 7];

	if (a == ARCH_RISCV64 && r >= 0 && r < 32)
		return rv_abi[r];
	if (r == 31)
		return "xzr/sp";
	snprintf(b, 8, "x%d", r);
	return b;
}

static bool lookup(const struct model *m, const char *name, uint64_t *out)
{
	for (int i = 0; i < m->nsyms; i++)
		if (!strcmp(m->syms[i].name, name)) {
			*out = m->syms[i].addr;
			return true;
		}
	return false;
}

/* NUMBER | SYM | SYM+NUMBER | SYM-NUMBER | . | .+NUMBER ; no spaces needed */
bool eval_expr(struct asm_ctx *c, const char *s, uint64_t *out)
{
	char name[80];
	size_t i = 0;
	uint64_t base = 0;
	const char *p = s;

	while (isspace((unsigned char)*p))
		p++;
	if (*p == '#')
		p++;
	if (*p == '-' || isdigit((unsigned char)*p)) {
		char *end;
		long long v = strtoll(p, &end, 0);
		while (isspace((unsigned char)*end))
			end++;
		if (end == p || *end) {
			snprintf(c->err, sizeof c->err, "expected a number or symbol, found '%s'", s);
			return false;
		}
		*out = (uint64_t)v;
		return true;
	}
	while (*p && (isalnum((unsigned char)*p) || *p == '_' || *p == '.') && i < sizeof name - 1)
		name[i++] = *p++;
	name[i] = 0;
	if (!i) {
		snprintf(c->err, sizeof c->err, "expected a number or symbol, found '%s'", s);
		return false;
	}
	if (!strcmp(name, "."))
		base = c->pc;
	else if (!lookup(c->m, name, &base)) {
		if (!c->sizing) {
			snprintf(c->err, sizeof c->err, "undefined symbol '%s'", name);
			return false;
		}
		base = c->pc; /* first pass: any value; lengths never depend on it */
	}
	while (isspace((unsigned char)*p))
		p++;
	if (*p == '+' || *p == '-') {
		char *end;
		int neg = *p == '-';
		long long v = strtoll(p + 1, &end, 0);
		while (isspace((unsigned char)*end))
			end++;
		if (end == p + 1 || *end) {
			snprintf(c->err, sizeof c->err, "bad offset in '%s'", s);
			return false;
		}
		base += neg ? (uint64_t)-v : (uint64_t)v;
	} else if (*p) {
		snprintf(c->err, sizeof c->err, "unexpected '%s' in expression '%s'", p, s);
		return false;
	}
	*out = base;
	return true;
}

static void put_le(uint8_t *out, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = (uint8_t)(v >> (8 * i));
}

/*
 * One instruction or data directive.  Directives are common to every
 * architecture: `.bytes` (raw bytes, decoded like any other code), `.word`
 * (one little-endian 32-bit word), `.half`, `.quad EXPR` (a 64-bit datum,
 * e.g. a literal holding a function address).
 */
int asm_insn(struct asm_ctx *c, const char *text, uint8_t *out, size_t cap)
{
	char mn[32];
	size_t i = 0;
	const char *p = text;

	while (isspace((unsigned char)*p))
		p++;
	while (*p && !isspace((unsigned char)*p) && i < sizeof mn - 1)
		mn[i++] = (char)tolower((unsigned char)*p++);
	mn[i] = 0;
	while (isspace((unsigned char)*p))
		p++;
	if (!i) {
		snprintf(c->err, sizeof c->err, "expected an instruction");
		return -1;
	}
	if (!strcmp(mn, ".bytes") || !strcmp(mn, ".byte")) {
		int n = 0;
		char *end;
		while (*p) {
			unsigned long v = strtoul(p, &end, 16);
			if (end == p || v > 0xff) {
				snprintf(c->err, sizeof c->err, "expected hex bytes, found '%s'", p);
				return -1;
			}
			if ((size_t)n >= cap) {
				snprintf(c->err, sizeof c->err, "too many bytes");
				return -1;
			}
			out[n++] = (uint8_t)v;
			p = end;
			while (isspace((unsigned char)*p) || *p == ',')
				p++;
		}
		if (!n) {
			snprintf(c->err, sizeof c->err, ".bytes needs at least one hex byte");
			return -1;
		}
		return n;
	}
	if (!strcmp(mn, ".word") || !strcmp(mn, ".half") || !strcmp(mn, ".quad")) {
		int n = mn[1] == 'w' ? 4 : mn[1] == 'h' ? 2 : 8;
		uint64_t v;
		if ((size_t)n > cap) {
			snprintf(c->err, sizeof c->err, "no room");
			return -1;
		}
		if (!eval_expr(c, p, &v))
			return -1;
		put_le(out, v, n);
		return n;
	}
	switch (c->m->arch) {
	case ARCH_X86_64:
		return x86_asm(c, mn, p, out, cap);
	case ARCH_AARCH64:
		return a64_asm(c, mn, p, out, cap);
	case ARCH_RISCV64:
		return rv_asm(c, mn, p, out, cap);
	default:
		snprintf(c->err, sizeof c->err, "instruction before the `arch` line");
		return -1;
	}
}

void decode_insn(enum arch a, const uint8_t *b, size_t avail, uint64_t pc, struct insn *out)
{
	memset(out, 0, sizeof *out);
	out->rd = out->rn = out->link = -1;
	switch (a) {
	case ARCH_X86_64:
		x86_dec(b, avail, pc, out);
		break;
	case ARCH_AARCH64:
		if (avail < 4) {
			out->kind = IK_UNDEF;
			out->len = 4;
			snprintf(out->text, sizeof out->text, "(truncated)");
			break;
		}
		a64_dec((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24,
			pc, out);
		break;
	case ARCH_RISCV64:
		rv_dec(b, avail, pc, out);
		break;
	default:
		out->kind = IK_UNDEF;
		out->len = 1;
	}
}
