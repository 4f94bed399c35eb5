// SPDX-License-Identifier: MIT
/*
 * Cross-check the instruction layer against GNU objdump, an independent
 * decoder.
 *
 *   insn_crosscheck <x86_64|aarch64|riscv64> [--count N] [--seed S]
 *                   [--objdump PATH] [--workdir DIR]
 *
 * Generates N (default 12000) random valid instructions with the
 * library's encoders (random registers, random in-range targets, a quarter
 * of them near each end of the range) plus, on AArch64, hand-built words
 * of the classification-only kinds; writes them as one raw blob at
 * DIR/insn_crosscheck_<arch>.bin; disassembles it with that architecture's
 * objdump at a fixed base address; and for every instruction checks
 *   - objdump found an instruction at exactly that address (so lengths
 *     agree, and nothing else was found in between);
 *   - mnemonic, registers and immediates/targets in objdump's text are the
 *     intended ones (parsed from the text, not compared to our own output);
 *   - the library's decoder returns the intended fields;
 *   - the library's *_disasm text equals objdump's (whitespace collapsed,
 *     comments dropped).
 * A missing objdump is a failure, with the Debian package to install.
 */
#include <stdarg.h>
#include <ctype.h>

#include "arch/aarch64/insn.h"
#include "arch/riscv64/insn.h"
#include "arch/x86_64/insn.h"
#include "check.h"

#define BASE 0x555555554000ull /* address the blob is disassembled at */
#define MAX_OPS 6

enum arch { ARCH_X86, ARCH_A64, ARCH_RV };

/* One intended instruction: what we asked the encoder for. */
struct item {
	uint32_t off;   /* offset in the blob */
	uint8_t len;
	int kind;       /* x86_insn_kind, a64_insn_kind or rv_insn_kind */
	unsigned rd, rn, rm;
	int64_t imm;
	uint64_t target;
	bool flag;      /* a64: ADD shift / CBZ-TBZ sf; rv: second half of an AUIPC pair */
	int64_t pair_off; /* rv: offset the AUIPC+JALR pair must reach */
};

/* One instruction line of objdump's output. */
struct line {
	uint64_t addr;
	char text[128];            /* normalised: single spaces, no comment */
	char mn[32];
	char ops[MAX_OPS][48];
	int nops;
};

static enum arch arch;
static uint8_t *blob;
static size_t blob_len, blob_cap;
static struct item *items;
static size_t nitems, items_cap;
static unsigned long kind_count[32];
static unsigned long mismatches;

static void die(const char *fmt, ...)
{
	va_list ap;

	fflush(stdout);
	va_start(ap, fmt);
	fprintf(stderr, "insn_crosscheck: FAIL: ");
	vfprintf(stderr, fmt, ap);
	fprintf(stderr, "\n");
	va_end(ap);
	exit(1);
}

static void *xrealloc(void *p, size_t n)
{
	p = realloc(p, n);
	if (!p)
		die("out of memory");
	return p;
}

static uint64_t cur_pc(void)
{
	return BASE + blob_len;
}

static struct item *add_item(const void *bytes, size_t len, int kind)
{
	struct item *it;

	if (blob_len + len > blob_cap) {
		blob_cap = blob_cap ? blob_cap * 2 : 65536;
		blob = xrealloc(blob, blob_cap);
	}
	if (nitems == items_cap) {
		items_cap = items_cap ? items_cap * 2 : 4096;
		items = xrealloc(items, items_cap * sizeof(*items));
	}
	it = &items[nitems++];
	memset(it, 0, sizeof(*it));
	it->off = (uint32_t)blob_len;
	it->len = (uint8_t)len;
	it->kind = kind;
	memcpy(blob + blob_len, bytes, len);
	blob_len += len;
	kind_count[kind]++;
	return it;
}

static void add_word(uint32_t w, int kind, struct item *tmpl)
{
	uint8_t b[4] = { (uint8_t)w, (uint8_t)(w >> 8), (uint8_t)(w >> 16), (uint8_t)(w >> 24) };
	struct item *it = add_item(b, 4, kind);
	uint32_t off = it->off;

	*it = *tmpl;
	it->off = off;
	it->len = 4;
	it->kind = kind;
}

static void mismatch(const struct item *it, const struct line *l, const char *what)
{
	mismatches++;
	if (mismatches > 30)
		return;
	fprintf(stderr, "  at 0x%llx bytes", (unsigned long long)(BASE + it->off));
	for (unsigned i = 0; i < it->len; i++)
		fprintf(stderr, " %02x", blob[it->off + i]);
	fprintf(stderr, ": objdump says \"%s\": %s\n", l ? l->text : "(nothing)", what);
}

/* Check helpers that report the instruction on failure. */
#define EXPECT(it, l, cond) (CHECK(cond) ? true : (mismatch((it), (l), #cond), false))

/* ---- parsing objdump text ---- */

static bool parse_hex(const char *s, uint64_t *v)
{
	char *end;

	if (s[0] != '0' || s[1] != 'x' || !isxdigit((unsigned char)s[2]))
		return false;
	*v = strtoull(s + 2, &end, 16);
	return *end == 0;
}

static bool parse_dec(const char *s, int64_t *v)
{
	char *end;

	if (!*s)
		return false;
	*v = strtoll(s, &end, 10);
	return *end == 0;
}

static bool hex_is(const char *s, uint64_t want)
{
	uint64_t v;

	return parse_hex(s, &v) && v == want;
}

/* "#0x3e8" / "#40" */
static bool imm_hex_is(const char *s, uint64_t want)
{
	return s[0] == '#' && hex_is(s + 1, want);
}

static bool imm_dec_is(const char *s, int64_t want)
{
	int64_t v;

	return s[0] == '#' && parse_dec(s + 1, &v) && v == want;
}

/* "imm(reg)" as RISC-V prints loads and JALR. */
static bool rv_mem_is(const char *s, int64_t imm, unsigned reg)
{
	char num[32], name[16];
	const char *open = strchr(s, '(');
	size_t k = open ? (size_t)(open - s) : 0;
	int64_t v;

	if (!open || k >= sizeof(num) || strlen(open) < 3 || strlen(open) - 2 >= sizeof(name))
		return false;
	memcpy(num, s, k);
	num[k] = 0;
	if (open[strlen(open) - 1] != ')')
		return false;
	memcpy(name, open + 1, strlen(open) - 2);
	name[strlen(open) - 2] = 0;
	return parse_dec(num, &v) && v == imm && strcmp(name, rv_reg_name(reg)) == 0;
}

static void split_line(struct line *l, const char *body)
{
	char tmp[128];
	size_t n = 0;
	const char *p;
	int depth = 0;
	char *ops, *start;

	/* collapse whitespace, drop comments */
	for (p = body; *p && n + 1 < sizeof(tmp); p++) {
		if (arch == ARCH_A64 && p[0] == '/' && p[1] == '/')
			break;
		if (arch == ARCH_RV && p[0] == '#')
			break;
		if (isspace((unsigned char)*p)) {
			if (n && tmp[n - 1] != ' ')
				tmp[n++] = ' ';
		} else
			tmp[n++] = *p;
	}
	while (n && tmp[n - 1] == ' ')
		n--;
	tmp[n] = 0;
	snprintf(l->text, sizeof(l->text), "%s", tmp);

	ops = strchr(tmp, ' ');
	if (ops)
		*ops++ = 0;
	snprintf(l->mn, sizeof(l->mn), "%.31s", tmp);
	l->nops = 0;
	if (!ops)
		return;
	/* split operands on commas outside () and [] */
	for (start = ops, p = ops;; p++) {
		if (*p == '(' || *p == '[')
			depth++;
		else if (*p == ')' || *p == ']')
			depth--;
		else if ((*p == ',' && depth == 0) || *p == 0) {
			size_t len = (size_t)(p - start);

			while (len && *start == ' ')
				start++, len--;
			while (len && start[len - 1] == ' ')
				len--;
			if (l->nops < MAX_OPS) {
				snprintf(l->ops[l->nops], sizeof(l->ops[0]), "%.*s", (int)len, start);
				l->nops++;
			}
			if (*p == 0)
				break;
			start = (char *)p + 1;
		}
	}
}

/* Run objdump on the blob; returns lines indexed by offset (NULL where none start). */
static struct line **run_objdump(const char *objdump, const char *file, size_t *nlines)
{
	static const char *const mach[] = {
		[ARCH_X86] = "-m i386:x86-64",
		[ARCH_A64] = "-m aarch64",
		[ARCH_RV] = "-m riscv:rv64 -M no-aliases",
	};
	char cmd[10240], buf[512];
	struct line **at = calloc(blob_len + 1, sizeof(*at));
	FILE *f;
	int status;

	if (!at)
		die("out of memory");
	snprintf(cmd, sizeof(cmd), "'%s' -D -b binary %s --adjust-vma=0x%llx '%s'", objdump, mach[arch],
		 (unsigned long long)BASE, file);
	printf("insn_crosscheck: %s\n", cmd);
	f = popen(cmd, "r");
	if (!f)
		die("cannot run %s", cmd);
	*nlines = 0;
	while (fgets(buf, sizeof(buf), f)) {
		char *colon, *tab1, *tab2, *end;
		unsigned long long addr;
		struct line *l;

		buf[strcspn(buf, "\n")] = 0;
		/* "    addr:\tbytes\tmnemonic operands"; continuation lines have no second tab */
		addr = strtoull(buf, &end, 16);
		colon = end;
		if (end == buf || *colon != ':' || colon[1] != '\t')
			continue;
		tab1 = colon + 1;
		tab2 = strchr(tab1 + 1, '\t');
		if (!tab2)
			continue;
		if (addr < BASE || addr - BASE >= blob_len) {
			fprintf(stderr, "  objdump line outside the blob: %s\n", buf);
			check_failed++;
			continue;
		}
		l = calloc(1, sizeof(*l));
		if (!l)
			die("out of memory");
		l->addr = addr;
		split_line(l, tab2 + 1);
		at[addr - BASE] = l;
		(*nlines)++;
	}
	status = pclose(f);
	if (status != 0)
		die("%s exited with status %d", cmd, status);
	return at;
}

/* ---- x86-64 ---- */

static const char *const x86_objdump_nop[10] = {
	NULL, "nop", "xchg %ax,%ax", "nopl (%rax)", "nopl 0x0(%rax)", "nopl 0x0(%rax,%rax,1)",
	"nopw 0x0(%rax,%rax,1)", "nopl 0x0(%rax)", "nopl 0x0(%rax,%rax,1)", "nopw 0x0(%rax,%rax,1)",
};

static void gen_x86(size_t count)
{
	for (size_t i = 0; i < count; i++) {
		uint8_t b[X86_NOP_MAX];
		uint64_t pc = cur_pc();
		int kind = (int)(rng_next() % 6);
		size_t len = 0;
		int64_t disp = 0;
		int err = 0;
		struct item *it;

		switch (kind) {
		case X86_INSN_NOP:
			len = (size_t)rng_range(1, 9);
			err = x86_encode_nop(b, len);
			break;
		case X86_INSN_JMP_REL8:
			len = 2;
			disp = rng_edgy(INT8_MIN, INT8_MAX, 1);
			err = x86_encode_jmp_rel8(b, pc, pc + len + (uint64_t)disp);
			break;
		case X86_INSN_JMP_REL32:
		case X86_INSN_CALL_REL32:
			len = 5;
			disp = rng_edgy(INT32_MIN, INT32_MAX, 1);
			err = (kind == X86_INSN_JMP_REL32 ? x86_encode_jmp_rel32 : x86_encode_call_rel32)(
				b, pc, pc + len + (uint64_t)disp);
			break;
		case X86_INSN_INT3:
			len = 1;
			err = x86_encode_int3(b);
			break;
		default:
			len = 1;
			err = x86_encode_ret(b);
			break;
		}
		if (err)
			die("x86 encoder %d failed with %d for an in-range operand", kind, err);
		it = add_item(b, len, kind);
		if (kind == X86_INSN_JMP_REL8 || kind == X86_INSN_JMP_REL32 || kind == X86_INSN_CALL_REL32)
			it->target = pc + len + (uint64_t)disp;
	}
}

static void check_x86(const struct item *it, const struct line *l)
{
	struct x86_insn d;
	char text[128];

	switch (it->kind) {
	case X86_INSN_NOP:
		EXPECT(it, l, strcmp(l->text, x86_objdump_nop[it->len]) == 0);
		break;
	case X86_INSN_JMP_REL8:
	case X86_INSN_JMP_REL32:
	case X86_INSN_CALL_REL32:
		EXPECT(it, l, strcmp(l->mn, it->kind == X86_INSN_CALL_REL32 ? "call" : "jmp") == 0);
		EXPECT(it, l, l->nops == 1 && hex_is(l->ops[0], it->target));
		break;
	case X86_INSN_INT3:
		EXPECT(it, l, strcmp(l->text, "int3") == 0);
		break;
	default:
		EXPECT(it, l, strcmp(l->text, "ret") == 0);
		break;
	}
	if (!EXPECT(it, l, x86_decode(blob + it->off, blob_len - it->off, BASE + it->off, &d) == 0))
		return;
	EXPECT(it, l, (int)d.kind == it->kind && d.len == it->len && d.target == it->target);
	x86_disasm(text, sizeof(text), &d);
	EXPECT(it, l, strcmp(text, l->text) == 0);
}

/* ---- AArch64 ---- */

static const char *const a64_objdump_cond[16] = {
	"eq", "ne", "cs", "cc", "mi", "pl", "vs", "vc", "hi", "ls", "ge", "lt", "gt", "le", "al", "nv",
};

/* x0..x30, then "sp" or "xzr" (or w-names) */
static const char *a64_name(unsigned r, bool sp, bool x)
{
	static char names[4][8];
	static int k;

	if (r == 31)
		return sp ? "sp" : x ? "xzr" : "wzr";
	k = (k + 1) % 4;
	snprintf(names[k], sizeof(names[k]), "%c%u", x ? 'x' : 'w', r);
	return names[k];
}

static void gen_a64(size_t count)
{
	for (size_t i = 0; i < count; i++) {
		uint64_t pc = cur_pc();
		struct item t = { 0 };
		uint32_t w = 0;
		int err = 0;
		int kind = (int)(rng_next() % (A64_INSN_SMC + 1));

		t.rd = (unsigned)rng_range(0, 31);
		t.rn = (unsigned)rng_range(0, 31);
		t.rm = (unsigned)rng_range(0, 31);
		switch (kind) {
		case A64_INSN_B:
		case A64_INSN_BL:
			t.imm = rng_edgy(-A64_B_RANGE, A64_B_RANGE - 4, 4);
			t.target = pc + (uint64_t)t.imm;
			err = (kind == A64_INSN_B ? a64_encode_b : a64_encode_bl)(&w, pc, t.target);
			break;
		case A64_INSN_NOP: w = a64_nop(); break;
		case A64_INSN_BTI_C: w = a64_bti_c(); break;
		case A64_INSN_RET:
			if (rng_next() % 2)
				t.rn = A64_REG_LR;
			err = a64_encode_ret(&w, t.rn);
			break;
		case A64_INSN_ADRP:
			t.imm = rng_edgy(-(1ll << 20), (1ll << 20) - 1, 1) * 4096;
			t.target = (pc & ~0xfffull) + (uint64_t)t.imm;
			/* any address inside the target page will do */
			err = a64_encode_adrp(&w, t.rd, pc, t.target + (uint64_t)rng_range(0, 4095));
			break;
		case A64_INSN_ADD_IMM:
			t.imm = rng_next() % 8 == 0 ? 0 : rng_edgy(0, 4095, 1);
			t.flag = rng_next() % 2;
			err = a64_encode_add_imm(&w, t.rd, t.rn, (uint32_t)t.imm, t.flag);
			break;
		case A64_INSN_LDR_LIT:
			t.imm = rng_edgy(-A64_LDR_LIT_RANGE, A64_LDR_LIT_RANGE - 4, 4);
			t.target = pc + (uint64_t)t.imm;
			err = a64_encode_ldr_literal(&w, t.rd, pc, t.target);
			break;
		case A64_INSN_LDR_IMM:
			t.imm = rng_next() % 8 == 0 ? 0 : rng_edgy(0, 32760, 8);
			err = a64_encode_ldr_imm(&w, t.rd, t.rn, (uint32_t)t.imm);
			break;
		case A64_INSN_BR: err = a64_encode_br(&w, t.rn); break;
		case A64_INSN_MOV_REG: err = a64_encode_mov_reg(&w, t.rd, t.rm); break;
		/* Classification-only kinds: built here field by field from the Arm ARM layouts. */
		case A64_INSN_B_COND:
			t.rd = (unsigned)rng_range(0, 15);
			t.imm = rng_edgy(-(1ll << 20), (1ll << 20) - 4, 4);
			t.target = pc + (uint64_t)t.imm;
			w = 0x54000000u | ((uint32_t)(t.imm / 4) & 0x7ffff) << 5 | t.rd;
			break;
		case A64_INSN_CBZ:
		case A64_INSN_CBNZ:
			t.flag = rng_next() % 2;
			t.imm = rng_edgy(-(1ll << 20), (1ll << 20) - 4, 4);
			t.target = pc + (uint64_t)t.imm;
			w = (uint32_t)t.flag << 31 | 0x34000000u | (uint32_t)(kind == A64_INSN_CBNZ) << 24 |
			    ((uint32_t)(t.imm / 4) & 0x7ffff) << 5 | t.rd;
			break;
		case A64_INSN_TBZ:
		case A64_INSN_TBNZ:
			t.rm = (unsigned)rng_range(0, 63);
			t.flag = t.rm >= 32;
			t.imm = rng_edgy(-(1ll << 15), (1ll << 15) - 4, 4);
			t.target = pc + (uint64_t)t.imm;
			w = (uint32_t)(t.rm >> 5) << 31 | 0x36000000u | (uint32_t)(kind == A64_INSN_TBNZ) << 24 |
			    (t.rm & 31) << 19 | ((uint32_t)(t.imm / 4) & 0x3fff) << 5 | t.rd;
			break;
		case A64_INSN_BRK:
		case A64_INSN_SVC:
		case A64_INSN_HVC:
		case A64_INSN_SMC:
			t.imm = rng_range(0, 0xffff);
			w = 0xd4000000u | (uint32_t)t.imm << 5 |
			    (kind == A64_INSN_BRK ? 1u << 21 : (uint32_t)(kind - A64_INSN_SVC + 1));
			break;
		case A64_INSN_ISB:
			t.imm = rng_next() % 2 ? 15 : rng_range(0, 15);
			w = 0xd50330dfu | (uint32_t)t.imm << 8;
			break;
		}
		if (err)
			die("a64 encoder %d failed with %d for an in-range operand", kind, err);
		add_word(w, kind, &t);
	}
}

static void check_a64(const struct item *it, const struct line *l)
{
	const char *mn = l->mn;
	struct a64_insn d;
	uint32_t w;
	char text[128], mem[48];

	switch (it->kind) {
	case A64_INSN_B:
	case A64_INSN_BL:
		EXPECT(it, l, strcmp(mn, it->kind == A64_INSN_B ? "b" : "bl") == 0);
		EXPECT(it, l, l->nops == 1 && hex_is(l->ops[0], it->target));
		break;
	case A64_INSN_NOP:
		EXPECT(it, l, strcmp(l->text, "nop") == 0);
		break;
	case A64_INSN_BTI_C:
		EXPECT(it, l, strcmp(mn, "bti") == 0 && l->nops == 1 && strcmp(l->ops[0], "c") == 0);
		break;
	case A64_INSN_RET:
		EXPECT(it, l, strcmp(mn, "ret") == 0);
		if (it->rn == A64_REG_LR)
			EXPECT(it, l, l->nops == 0);
		else
			EXPECT(it, l, l->nops == 1 && strcmp(l->ops[0], a64_name(it->rn, false, true)) == 0);
		break;
	case A64_INSN_BR:
		EXPECT(it, l, strcmp(mn, "br") == 0 && l->nops == 1 &&
			      strcmp(l->ops[0], a64_name(it->rn, false, true)) == 0);
		break;
	case A64_INSN_ADRP:
		EXPECT(it, l, strcmp(mn, "adrp") == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, false, true)) == 0);
		EXPECT(it, l, hex_is(l->ops[1], it->target));
		break;
	case A64_INSN_ADD_IMM:
		if (it->imm == 0 && !it->flag && (it->rd == 31 || it->rn == 31)) {
			/* MOV (to/from SP) alias */
			EXPECT(it, l, strcmp(mn, "mov") == 0 && l->nops == 2);
			EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, true, true)) == 0);
			EXPECT(it, l, strcmp(l->ops[1], a64_name(it->rn, true, true)) == 0);
			break;
		}
		EXPECT(it, l, strcmp(mn, "add") == 0 && l->nops == (it->flag ? 4 : 3));
		EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, true, true)) == 0);
		EXPECT(it, l, strcmp(l->ops[1], a64_name(it->rn, true, true)) == 0);
		EXPECT(it, l, imm_hex_is(l->ops[2], (uint64_t)it->imm));
		if (it->flag)
			EXPECT(it, l, strcmp(l->ops[3], "lsl #12") == 0);
		break;
	case A64_INSN_LDR_LIT:
		EXPECT(it, l, strcmp(mn, "ldr") == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, false, true)) == 0);
		EXPECT(it, l, hex_is(l->ops[1], it->target));
		break;
	case A64_INSN_LDR_IMM: {
		/* "[xN]" or "[xN, #off]": parse the base and the offset */
		const char *o = l->ops[1];
		size_t n = strlen(o);
		char *comma;

		EXPECT(it, l, strcmp(mn, "ldr") == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, false, true)) == 0);
		if (!EXPECT(it, l, n >= 3 && o[0] == '[' && o[n - 1] == ']' && n - 2 < sizeof(mem)))
			break;
		memcpy(mem, o + 1, n - 2);
		mem[n - 2] = 0;
		comma = strchr(mem, ',');
		if (comma) {
			*comma = 0;
			EXPECT(it, l, comma[1] == ' ' && imm_dec_is(comma + 2, it->imm) && it->imm != 0);
		} else
			EXPECT(it, l, it->imm == 0);
		EXPECT(it, l, strcmp(mem, a64_name(it->rn, true, true)) == 0);
		break;
	}
	case A64_INSN_MOV_REG:
		EXPECT(it, l, strcmp(mn, "mov") == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, false, true)) == 0);
		EXPECT(it, l, strcmp(l->ops[1], a64_name(it->rm, false, true)) == 0);
		break;
	case A64_INSN_B_COND:
		EXPECT(it, l, strncmp(mn, "b.", 2) == 0 && strcmp(mn + 2, a64_objdump_cond[it->rd]) == 0);
		EXPECT(it, l, l->nops == 1 && hex_is(l->ops[0], it->target));
		break;
	case A64_INSN_CBZ:
	case A64_INSN_CBNZ:
		EXPECT(it, l, strcmp(mn, it->kind == A64_INSN_CBZ ? "cbz" : "cbnz") == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, false, it->flag)) == 0);
		EXPECT(it, l, hex_is(l->ops[1], it->target));
		break;
	case A64_INSN_TBZ:
	case A64_INSN_TBNZ:
		EXPECT(it, l, strcmp(mn, it->kind == A64_INSN_TBZ ? "tbz" : "tbnz") == 0 && l->nops == 3);
		EXPECT(it, l, strcmp(l->ops[0], a64_name(it->rd, false, it->flag)) == 0);
		EXPECT(it, l, imm_dec_is(l->ops[1], it->rm));
		EXPECT(it, l, hex_is(l->ops[2], it->target));
		break;
	case A64_INSN_BRK:
	case A64_INSN_SVC:
	case A64_INSN_HVC:
	case A64_INSN_SMC:
		EXPECT(it, l, strcmp(mn, a64_insn_name(it->kind)) == 0 && l->nops == 1 &&
			      imm_hex_is(l->ops[0], (uint64_t)it->imm));
		break;
	case A64_INSN_ISB:
		EXPECT(it, l, strcmp(mn, "isb") == 0);
		if (it->imm == 15)
			EXPECT(it, l, l->nops == 0);
		else
			EXPECT(it, l, l->nops == 1 && imm_hex_is(l->ops[0], (uint64_t)it->imm));
		break;
	}

	memcpy(&w, blob + it->off, 4); /* the test hosts are little-endian */
	if (!EXPECT(it, l, a64_decode(w, BASE + it->off, &d) == 0))
		return;
	EXPECT(it, l, (int)d.kind == it->kind);
	switch (it->kind) {
	case A64_INSN_B:
	case A64_INSN_BL:
	case A64_INSN_LDR_LIT:
	case A64_INSN_ADRP:
	case A64_INSN_B_COND:
	case A64_INSN_CBZ:
	case A64_INSN_CBNZ:
		EXPECT(it, l, d.target == it->target && d.imm == it->imm);
		if (it->kind == A64_INSN_LDR_LIT || it->kind == A64_INSN_ADRP)
			EXPECT(it, l, d.rd == it->rd);
		if (it->kind == A64_INSN_B_COND || it->kind == A64_INSN_CBZ || it->kind == A64_INSN_CBNZ)
			EXPECT(it, l, d.rd == it->rd);
		if (it->kind == A64_INSN_CBZ || it->kind == A64_INSN_CBNZ)
			EXPECT(it, l, d.sf == it->flag);
		break;
	case A64_INSN_TBZ:
	case A64_INSN_TBNZ:
		EXPECT(it, l, d.target == it->target && d.rd == it->rd && d.rm == it->rm && d.sf == it->flag);
		break;
	case A64_INSN_RET:
	case A64_INSN_BR:
		EXPECT(it, l, d.rn == it->rn);
		break;
	case A64_INSN_ADD_IMM:
		EXPECT(it, l, d.rd == it->rd && d.rn == it->rn && d.rm == (it->flag ? 12u : 0u) &&
			      d.imm == it->imm << (it->flag ? 12 : 0));
		break;
	case A64_INSN_LDR_IMM:
		EXPECT(it, l, d.rd == it->rd && d.rn == it->rn && d.imm == it->imm);
		break;
	case A64_INSN_MOV_REG:
		EXPECT(it, l, d.rd == it->rd && d.rm == it->rm);
		break;
	case A64_INSN_BRK:
	case A64_INSN_SVC:
	case A64_INSN_HVC:
	case A64_INSN_SMC:
	case A64_INSN_ISB:
		EXPECT(it, l, d.imm == it->imm);
		break;
	}
	a64_disasm(text, sizeof(text), &d);
	EXPECT(it, l, strcmp(text, l->text) == 0);
}

/* ---- RISC-V 64 ---- */

static void gen_rv(size_t count)
{
	for (size_t i = 0; i < count; i++) {
		uint64_t pc = cur_pc();
		struct item t = { 0 };
		uint32_t w = 0;
		uint8_t b[2];
		int err = 0;
		int kind = (int)(rng_next() % (RV_INSN_ADDI + 2)); /* one more: an AUIPC+JALR pair */

		t.rd = (unsigned)rng_range(0, 31);
		t.rn = (unsigned)rng_range(0, 31); /* rs1 */
		switch (kind) {
		case RV_INSN_NOP: w = rv_nop(); break;
		case RV_INSN_EBREAK: w = rv_ebreak(); break;
		case RV_INSN_C_NOP:
		case RV_INSN_C_EBREAK:
			rv_put16(b, kind == RV_INSN_C_NOP ? rv_c_nop() : rv_c_ebreak());
			add_item(b, 2, kind);
			continue;
		case RV_INSN_JAL:
			t.imm = rng_edgy(-RV_JAL_RANGE, RV_JAL_RANGE - 2, 2);
			t.target = pc + (uint64_t)t.imm;
			err = rv_encode_jal(&w, t.rd, pc, t.target);
			break;
		case RV_INSN_JALR:
		case RV_INSN_LD:
		case RV_INSN_ADDI:
			t.imm = rng_edgy(-2048, 2047, 1);
			err = (kind == RV_INSN_JALR ? rv_encode_jalr : kind == RV_INSN_LD ? rv_encode_ld :
										    rv_encode_addi)(&w, t.rd, t.rn, (int32_t)t.imm);
			if (kind == RV_INSN_ADDI && w == rv_nop())
				kind = RV_INSN_NOP;
			break;
		case RV_INSN_AUIPC:
			t.imm = rng_edgy(-(1 << 19), (1 << 19) - 1, 1);
			err = rv_encode_auipc(&w, t.rd, (int32_t)t.imm);
			break;
		default: {
			/* AUIPC t0, hi; JALR ra|t0, lo(t0): must reach pc + offset */
			int32_t hi, lo;
			int64_t off = rng_edgy(RV_PCREL_MIN, RV_PCREL_MAX, 1) & ~1ll;

			err = rv_split_pcrel(off, &hi, &lo);
			if (!err)
				err = rv_encode_auipc(&w, RV_REG_T0, hi);
			if (err)
				break;
			t.rd = RV_REG_T0;
			t.imm = hi;
			add_word(w, RV_INSN_AUIPC, &t);
			t.rd = rng_next() % 2 ? RV_REG_RA : RV_REG_T0;
			t.rn = RV_REG_T0;
			t.imm = lo;
			t.flag = true;
			t.pair_off = off;
			kind = RV_INSN_JALR;
			err = rv_encode_jalr(&w, t.rd, t.rn, lo);
			break;
		}
		}
		if (err)
			die("rv encoder %d failed with %d for an in-range operand", kind, err);
		add_word(w, kind, &t);
	}
}

static void check_rv(const struct item *it, const struct line *l, const struct line *prev)
{
	const char *mn = l->mn;
	struct rv_insn d;
	char text[128];

	switch (it->kind) {
	case RV_INSN_NOP:
		EXPECT(it, l, strcmp(l->text, "addi zero,zero,0") == 0);
		break;
	case RV_INSN_C_NOP:
		EXPECT(it, l, strcmp(l->text, "c.addi zero,0") == 0);
		break;
	case RV_INSN_EBREAK:
		EXPECT(it, l, strcmp(l->text, "ebreak") == 0);
		break;
	case RV_INSN_C_EBREAK:
		EXPECT(it, l, strcmp(l->text, "c.ebreak") == 0);
		break;
	case RV_INSN_JAL:
		EXPECT(it, l, strcmp(mn, "jal") == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], rv_reg_name(it->rd)) == 0);
		EXPECT(it, l, hex_is(l->ops[1], it->target));
		break;
	case RV_INSN_JALR:
	case RV_INSN_LD:
		EXPECT(it, l, strcmp(mn, rv_insn_name(it->kind)) == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], rv_reg_name(it->rd)) == 0);
		EXPECT(it, l, rv_mem_is(l->ops[1], it->imm, it->rn));
		if (it->flag) {
			/* second half of a pair: objdump's AUIPC immediate plus this one */
			uint64_t hi = 0;
			int64_t lo = 0;

			EXPECT(it, l, prev && strcmp(prev->mn, "auipc") == 0 && parse_hex(prev->ops[1], &hi));
			EXPECT(it, l, parse_dec(strtok(strcpy(text, l->ops[1]), "("), &lo));
			if (prev)
				EXPECT(it, l, (((int64_t)(hi << 44) >> 44) * 4096 + lo) == it->pair_off);
		}
		break;
	case RV_INSN_ADDI:
		EXPECT(it, l, strcmp(mn, "addi") == 0 && l->nops == 3);
		EXPECT(it, l, strcmp(l->ops[0], rv_reg_name(it->rd)) == 0);
		EXPECT(it, l, strcmp(l->ops[1], rv_reg_name(it->rn)) == 0);
		{
			int64_t v;

			EXPECT(it, l, parse_dec(l->ops[2], &v) && v == it->imm);
		}
		break;
	case RV_INSN_AUIPC:
		EXPECT(it, l, strcmp(mn, "auipc") == 0 && l->nops == 2);
		EXPECT(it, l, strcmp(l->ops[0], rv_reg_name(it->rd)) == 0);
		EXPECT(it, l, hex_is(l->ops[1], (uint64_t)it->imm & 0xfffff));
		break;
	}

	if (!EXPECT(it, l, rv_decode(blob + it->off, blob_len - it->off, BASE + it->off, &d) == 0))
		return;
	EXPECT(it, l, (int)d.kind == it->kind && d.len == it->len);
	switch (it->kind) {
	case RV_INSN_JAL:
		EXPECT(it, l, d.rd == it->rd && d.imm == it->imm && d.target == it->target);
		break;
	case RV_INSN_JALR:
	case RV_INSN_LD:
	case RV_INSN_ADDI:
		EXPECT(it, l, d.rd == it->rd && d.rs1 == it->rn && d.imm == it->imm);
		break;
	case RV_INSN_AUIPC:
		EXPECT(it, l, d.rd == it->rd && d.imm == it->imm);
		break;
	}
	rv_disasm(text, sizeof(text), &d);
	if (it->kind != RV_INSN_C_NOP) /* we print "c.nop" where objdump -M no-aliases says "c.addi zero,0" */
		EXPECT(it, l, strcmp(text, l->text) == 0);
}

/* ---- driver ---- */

int main(int argc, char **argv)
{
	static const struct {
		const char *name, *objdump, *package;
		int nkinds;
	} arches[] = {
		[ARCH_X86] = { "x86_64", "objdump", "binutils (binutils-x86-64-linux-gnu on other hosts)", X86_INSN_RET + 1 },
		[ARCH_A64] = { "aarch64", "aarch64-linux-gnu-objdump", "binutils-aarch64-linux-gnu", A64_INSN_SMC + 1 },
		[ARCH_RV] = { "riscv64", "riscv64-linux-gnu-objdump", "binutils-riscv64-linux-gnu", RV_INSN_ADDI + 1 },
	};
	const char *objdump = NULL, *workdir = "/tmp";
	size_t count = 12000, nlines, found = 0;
	uint64_t seed;
	char file[4096], cmd[4200];
	struct line **at, *prev = NULL;
	FILE *f;
	int a = -1;

	if (argc < 2)
		die("usage: %s <x86_64|aarch64|riscv64> [--count N] [--seed S] [--objdump PATH] [--workdir DIR]",
		    argv[0]);
	for (int i = 0; i < 3; i++)
		if (strcmp(argv[1], arches[i].name) == 0)
			a = i;
	if (a < 0)
		die("unknown architecture %s", argv[1]);
	arch = (enum arch)a;
	for (int i = 2; i + 1 < argc; i += 2) {
		if (strcmp(argv[i], "--count") == 0)
			count = strtoul(argv[i + 1], NULL, 0);
		else if (strcmp(argv[i], "--objdump") == 0)
			objdump = argv[i + 1];
		else if (strcmp(argv[i], "--workdir") == 0)
			workdir = argv[i + 1];
		else if (strcmp(argv[i], "--seed") != 0)
			die("unknown option %s", argv[i]);
	}
	if (!objdump || !*objdump || strstr(objdump, "NOTFOUND"))
		objdump = arches[a].objdump;
	seed = rng_seed_from(argc, argv, 0xc0ffee00u + (uint64_t)a);
	printf("insn_crosscheck %s: seed 0x%" PRIx64 " (rerun with --seed 0x%" PRIx64 "), %zu instructions\n",
	       arches[a].name, seed, seed, count);

	snprintf(cmd, sizeof(cmd), "'%s' --version >/dev/null 2>&1", objdump);
	if (system(cmd) != 0)
		die("%s is missing or does not run; install the Debian package %s", objdump, arches[a].package);

	rng_seed(seed);
	if (arch == ARCH_X86)
		gen_x86(count);
	else if (arch == ARCH_A64)
		gen_a64(count);
	else
		gen_rv(count);

	snprintf(file, sizeof(file), "%s/insn_crosscheck_%s.bin", workdir, arches[a].name);
	f = fopen(file, "wb");
	if (!f || fwrite(blob, 1, blob_len, f) != blob_len || fclose(f) != 0)
		die("cannot write %s", file);

	at = run_objdump(objdump, file, &nlines);
	for (size_t i = 0; i < nitems; i++) {
		const struct item *it = &items[i];
		struct line *l = at[it->off];

		if (!EXPECT(it, l, l != NULL)) {
			prev = NULL;
			continue;
		}
		found++;
		if (arch == ARCH_X86)
			check_x86(it, l);
		else if (arch == ARCH_A64)
			check_a64(it, l);
		else
			check_rv(it, l, prev);
		prev = l;
	}
	/* objdump saw no instruction that we did not put there */
	if (!CHECK_EQ(nlines, found))
		fprintf(stderr, "  objdump found %zu instructions, %zu of them where we put one (of %zu)\n", nlines,
			found, nitems);
	/* every encoder and decoder kind was exercised */
	for (int k = 0; k < arches[a].nkinds; k++)
		if (!CHECK(kind_count[k] > 0))
			fprintf(stderr, "  kind %d never generated\n", k);

	printf("insn_crosscheck %s: %zu instructions in %zu bytes, by kind:", arches[a].name, nitems, blob_len);
	for (int k = 0; k < arches[a].nkinds; k++)
		printf(" %s=%lu",
		       arch == ARCH_X86 ? x86_insn_name((enum x86_insn_kind)k) :
		       arch == ARCH_A64 ? a64_insn_name((enum a64_insn_kind)k) :
					  rv_insn_name((enum rv_insn_kind)k),
		       kind_count[k]);
	printf("\n");
	for (size_t i = 0; i < blob_len; i++)
		free(at[i]);
	free(at);
	free(items);
	free(blob);
	snprintf(file, sizeof(file), "insn_crosscheck_%s", arches[a].name);
	return check_report(file);
}
