// SPDX-License-Identifier: MIT
/* x86-64 instruction layer: golden bytes, range boundaries, error paths, round trips. */
#include "arch/x86_64/insn.h"
#include "check.h"

#define SENTINEL 0xa5

static bool untouched(const uint8_t *buf, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (buf[i] != SENTINEL)
			return false;
	return true;
}

static void test_golden(void)
{
	static const uint8_t want[10][9] = {
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
	uint8_t buf[16];

	for (size_t len = 1; len <= 9; len++) {
		struct x86_insn d;

		memset(buf, SENTINEL, sizeof(buf));
		CHECK_EQ(x86_encode_nop(buf, len), 0);
		CHECK_BYTES(buf, want[len], len);
		CHECK_EQ(buf[len], SENTINEL); /* nothing written past len */
		CHECK_EQ(x86_decode(buf, len, 0x1000, &d), 0);
		CHECK_EQ(d.kind, X86_INSN_NOP);
		CHECK_EQ(d.len, len);
		CHECK_EQ(d.target, 0);
		/* every shorter window of a NOP is a truncated instruction */
		for (size_t avail = 1; avail < len; avail++)
			CHECK_EQ(x86_decode(buf, avail, 0, &d), -STITCH_EINVAL);
	}
	memset(buf, SENTINEL, sizeof(buf));
	CHECK_EQ(x86_encode_nop(buf, 0), -STITCH_EINVAL);
	CHECK_EQ(x86_encode_nop(buf, 10), -STITCH_EINVAL);
	CHECK_EQ(x86_encode_nop(NULL, 5), -STITCH_EINVAL);
	CHECK(untouched(buf, sizeof(buf)));

	CHECK_EQ(x86_encode_int3(buf), 0);
	CHECK_EQ(buf[0], 0xcc);
	CHECK_EQ(x86_encode_ret(buf), 0);
	CHECK_EQ(buf[0], 0xc3);

	/* jmp to itself: eb fe; call to the next instruction: e8 00 00 00 00 */
	CHECK_EQ(x86_encode_jmp_rel8(buf, 0x401000, 0x401000), 0);
	CHECK_BYTES(buf, ((const uint8_t[]){ 0xeb, 0xfe }), 2);
	CHECK_EQ(x86_encode_call_rel32(buf, 0x401000, 0x401005), 0);
	CHECK_BYTES(buf, ((const uint8_t[]){ 0xe8, 0, 0, 0, 0 }), 5);
	CHECK_EQ(x86_encode_jmp_rel32(buf, 0x401000, 0x400000), 0);
	CHECK_BYTES(buf, ((const uint8_t[]){ 0xe9, 0xfb, 0xef, 0xff, 0xff }), 5);
}

typedef int (*rel_enc)(uint8_t *, uint64_t, uint64_t);

/* Boundaries of a relative branch of `len` bytes with displacement in [lo, hi]. */
static void test_rel(rel_enc enc, unsigned len, uint8_t opcode, enum x86_insn_kind kind, int64_t lo, int64_t hi)
{
	static const uint64_t pcs[] = { 0x401000, 0x7ffff7dd1234, 0x10, 0xfffffffffffffff0ull };
	uint8_t buf[8];
	struct x86_insn d;

	for (size_t i = 0; i < sizeof(pcs) / sizeof(pcs[0]); i++) {
		uint64_t pc = pcs[i], next = pc + len;
		int64_t ok[] = { lo, hi, 0, -1, 1, -(int64_t)len };
		int64_t bad[] = { lo - 1, hi + 1, lo - 1000, hi + 1000, INT64_MIN / 2, INT64_MAX / 2 };

		for (size_t j = 0; j < sizeof(ok) / sizeof(ok[0]); j++) {
			uint64_t target = next + (uint64_t)ok[j];
			int64_t disp;

			memset(buf, SENTINEL, sizeof(buf));
			if (!CHECK_EQ(enc(buf, pc, target), 0))
				continue;
			CHECK_EQ(buf[0], opcode);
			if (len == 2)
				disp = (int8_t)buf[1];
			else
				disp = (int32_t)((uint32_t)buf[1] | (uint32_t)buf[2] << 8 | (uint32_t)buf[3] << 16 |
						 (uint32_t)buf[4] << 24);
			CHECK_EQ(disp, ok[j]);
			CHECK_EQ(buf[len], SENTINEL);
			CHECK_EQ(x86_decode(buf, len, pc, &d), 0);
			CHECK_EQ(d.kind, kind);
			CHECK_EQ(d.len, len);
			CHECK_EQ(d.target, target);
			CHECK_EQ(x86_decode(buf, len - 1, pc, &d), -STITCH_EINVAL);
		}
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			memset(buf, SENTINEL, sizeof(buf));
			CHECK_EQ(enc(buf, pc, next + (uint64_t)bad[j]), -STITCH_ERANGE);
			CHECK(untouched(buf, sizeof(buf)));
		}
	}
	CHECK_EQ(enc(NULL, 0, 0), -STITCH_EINVAL);
}

static void test_decode_errors(void)
{
	static const struct {
		uint8_t b[9];
		size_t n;
		int err;
	} cases[] = {
		{ { 0x00 }, 1, -STITCH_EUNKNOWN },                          /* add */
		{ { 0x0f, 0x1f, 0x44, 0x00, 0x01 }, 5, -STITCH_EUNKNOWN },  /* nonzero displacement */
		{ { 0x0f, 0x1f, 0x45, 0x00, 0x00 }, 5, -STITCH_EUNKNOWN },  /* other ModRM */
		{ { 0x66, 0x0f, 0x1f, 0x00 }, 4, -STITCH_EUNKNOWN },        /* prefix on a form Intel lists without */
		{ { 0x0f, 0x0b }, 2, -STITCH_EUNKNOWN },                    /* ud2 */
		{ { 0x66, 0x66, 0x90 }, 3, -STITCH_EUNKNOWN },
		{ { 0xff, 0x25, 0, 0, 0, 0 }, 6, -STITCH_EUNKNOWN },        /* jmp *rip-relative */
		{ { 0xe9, 0, 0, 0 }, 4, -STITCH_EINVAL },
		{ { 0xe8 }, 1, -STITCH_EINVAL },
		{ { 0xeb }, 1, -STITCH_EINVAL },
		{ { 0x0f, 0x1f }, 2, -STITCH_EINVAL },
		{ { 0x66 }, 1, -STITCH_EINVAL },
		{ { 0x0f }, 1, -STITCH_EINVAL },
		{ { 0 }, 0, -STITCH_EINVAL },
	};
	struct x86_insn d;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&d, SENTINEL, sizeof(d));
		if (!CHECK_EQ(x86_decode(cases[i].b, cases[i].n, 0, &d), cases[i].err))
			fprintf(stderr, "  (decode case %zu)\n", i);
		CHECK(untouched((const uint8_t *)&d, sizeof(d)));
	}
	CHECK_EQ(x86_decode(NULL, 5, 0, &d), -STITCH_EINVAL);
	CHECK_EQ(x86_decode((const uint8_t[]){ 0x90 }, 1, 0, NULL), -STITCH_EINVAL);
	/* bytes after a complete instruction are not looked at */
	CHECK_EQ(x86_decode((const uint8_t[]){ 0xcc, 0x0f }, 2, 0, &d), 0);
	CHECK_EQ(d.kind, X86_INSN_INT3);
	CHECK_EQ(d.len, 1);
	CHECK_EQ(x86_decode((const uint8_t[]){ 0xc3 }, 1, 0, &d), 0);
	CHECK_EQ(d.kind, X86_INSN_RET);
}

/* x86_decode_site(): the NOP forms with a displacement, any value (clang's 0f 1f 44 00 08). */
static void test_decode_site(void)
{
	static const struct {
		uint8_t b[9];
		size_t n;
		int err;
		uint8_t len;
	} cases[] = {
		{ { 0x0f, 0x1f, 0x44, 0x00, 0x08 }, 5, 0, 5 },                   /* clang -fpatchable-function-entry=5 */
		{ { 0x0f, 0x1f, 0x44, 0x00, 0xff }, 5, 0, 5 },
		{ { 0x0f, 0x1f, 0x40, 0x7f }, 4, 0, 4 },
		{ { 0x66, 0x0f, 0x1f, 0x44, 0x00, 0x01 }, 6, 0, 6 },
		{ { 0x0f, 0x1f, 0x80, 1, 2, 3, 4 }, 7, 0, 7 },
		{ { 0x0f, 0x1f, 0x84, 0x00, 1, 2, 3, 4 }, 8, 0, 8 },
		{ { 0x66, 0x0f, 0x1f, 0x84, 0x00, 1, 2, 3, 4 }, 9, 0, 9 },
		{ { 0x0f, 0x1f, 0x44, 0x00, 0x00 }, 5, 0, 5 },                   /* exact forms still decode */
		{ { 0x90 }, 1, 0, 1 },
		{ { 0x0f, 0x1f, 0x44, 0x00 }, 4, -STITCH_EINVAL, 0 },            /* cut short */
		{ { 0x0f, 0x1f, 0x44, 0x01, 0x08 }, 5, -STITCH_EUNKNOWN, 0 },    /* other SIB: not a shape we know */
		{ { 0x0f, 0x1f, 0x45, 0x00, 0x00 }, 5, -STITCH_EUNKNOWN, 0 },    /* other ModRM */
		{ { 0x00 }, 1, -STITCH_EUNKNOWN, 0 },
	};
	struct x86_insn d;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&d, SENTINEL, sizeof(d));
		int err = x86_decode_site(cases[i].b, cases[i].n, 0x1000, &d);
		if (!CHECK_EQ(err, cases[i].err))
			fprintf(stderr, "  (decode_site case %zu)\n", i);
		if (err == 0) {
			CHECK_EQ(d.kind, X86_INSN_NOP);
			CHECK_EQ(d.len, cases[i].len);
		} else {
			CHECK(untouched((const uint8_t *)&d, sizeof(d)));
		}
	}
	/* x86_decode() stays exact */
	CHECK_EQ(x86_decode((const uint8_t[]){ 0x0f, 0x1f, 0x44, 0x00, 0x08 }, 5, 0, &d), -STITCH_EUNKNOWN);
}

static void test_disasm(void)
{
	static const char *const nops[10] = {
		NULL, "nop", "xchg %ax,%ax", "nopl (%rax)", "nopl 0x0(%rax)", "nopl 0x0(%rax,%rax,1)",
		"nopw 0x0(%rax,%rax,1)", "nopl 0x0(%rax)", "nopl 0x0(%rax,%rax,1)", "nopw 0x0(%rax,%rax,1)",
	};
	char buf[64];
	uint8_t b[9];
	struct x86_insn d;

	for (size_t len = 1; len <= 9; len++) {
		x86_encode_nop(b, len);
		x86_decode(b, len, 0, &d);
		x86_disasm(buf, sizeof(buf), &d);
		CHECK_STR(buf, nops[len]);
	}
	x86_encode_call_rel32(b, 0x401000, 0x402000);
	x86_decode(b, 5, 0x401000, &d);
	x86_disasm(buf, sizeof(buf), &d);
	CHECK_STR(buf, "call 0x402000");
	x86_encode_jmp_rel8(b, 0x10, 0x0);
	x86_decode(b, 2, 0x10, &d);
	x86_disasm(buf, sizeof(buf), &d);
	CHECK_STR(buf, "jmp 0x0");
	x86_encode_int3(b);
	x86_decode(b, 1, 0, &d);
	x86_disasm(buf, sizeof(buf), &d);
	CHECK_STR(buf, "int3");
	CHECK_STR(x86_insn_name(X86_INSN_RET), "ret");
	CHECK_STR(x86_insn_name((enum x86_insn_kind)99), "?");
}

static void test_random_round_trips(uint64_t seed)
{
	rng_seed(seed);
	for (int i = 0; i < 20000; i++) {
		uint64_t pc = rng_next();
		uint8_t b[5];
		struct x86_insn d;
		int64_t disp;

		switch (i % 3) {
		case 0:
			disp = rng_edgy(INT8_MIN, INT8_MAX, 1);
			CHECK_EQ(x86_encode_jmp_rel8(b, pc, pc + 2 + (uint64_t)disp), 0);
			CHECK_EQ(x86_decode(b, 2, pc, &d), 0);
			CHECK_EQ(d.target, pc + 2 + (uint64_t)disp);
			break;
		case 1:
			disp = rng_edgy(INT32_MIN, INT32_MAX, 1);
			CHECK_EQ(x86_encode_jmp_rel32(b, pc, pc + 5 + (uint64_t)disp), 0);
			CHECK_EQ(x86_decode(b, 5, pc, &d), 0);
			CHECK_EQ(d.kind, X86_INSN_JMP_REL32);
			CHECK_EQ(d.target, pc + 5 + (uint64_t)disp);
			break;
		default:
			disp = rng_edgy(INT32_MIN, INT32_MAX, 1);
			CHECK_EQ(x86_encode_call_rel32(b, pc, pc + 5 + (uint64_t)disp), 0);
			CHECK_EQ(x86_decode(b, 5, pc, &d), 0);
			CHECK_EQ(d.kind, X86_INSN_CALL_REL32);
			CHECK_EQ(d.target, pc + 5 + (uint64_t)disp);
			break;
		}
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = rng_seed_from(argc, argv, 0x5717c4);

	printf("insn_x86_64: seed 0x%" PRIx64 "\n", seed);
	test_golden();
	test_rel(x86_encode_jmp_rel8, 2, 0xeb, X86_INSN_JMP_REL8, INT8_MIN, INT8_MAX);
	test_rel(x86_encode_jmp_rel32, 5, 0xe9, X86_INSN_JMP_REL32, INT32_MIN, INT32_MAX);
	test_rel(x86_encode_call_rel32, 5, 0xe8, X86_INSN_CALL_REL32, INT32_MIN, INT32_MAX);
	test_decode_errors();
	test_decode_site();
	test_disasm();
	test_random_round_trips(seed);
	return check_report("insn_x86_64");
}
