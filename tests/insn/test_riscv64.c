// SPDX-License-Identifier: MIT
/* RV64 instruction layer: golden words, range boundaries, error paths, round trips. */
#include "arch/riscv64/insn.h"
#include "check.h"

#define SENTINEL 0xa5a5a5a5u
#define MiB (1ll << 20)

static void test_golden(void)
{
	uint32_t w;
	uint8_t b[4];
	struct rv_insn d;

	CHECK_EQ(rv_nop(), 0x00000013);
	CHECK_EQ(rv_c_nop(), 0x0001);
	CHECK_EQ(rv_ebreak(), 0x00100073);
	CHECK_EQ(rv_c_ebreak(), 0x9002);
	CHECK(rv_encode_jal(&w, RV_REG_RA, 0x10008, 0x10010) == 0 && w == 0x008000ef);
	CHECK(rv_encode_jal(&w, RV_REG_ZERO, 0x1000, 0x1000) == 0 && w == 0x0000006f); /* j . */
	CHECK(rv_encode_jalr(&w, RV_REG_T0, RV_REG_T0, 16) == 0 && w == 0x010282e7);
	CHECK(rv_encode_jalr(&w, RV_REG_ZERO, RV_REG_RA, 0) == 0 && w == 0x00008067);  /* ret */
	CHECK(rv_encode_auipc(&w, RV_REG_T0, 0x12) == 0 && w == 0x00012297);
	CHECK(rv_encode_auipc(&w, RV_REG_T0, -256) == 0 && w == 0xfff00297);
	CHECK(rv_encode_ld(&w, RV_REG_T1, RV_REG_T0, -8) == 0 && w == 0xff82b303);
	CHECK(rv_encode_addi(&w, RV_REG_T0, RV_REG_T0, -2048) == 0 && w == 0x80028293);
	CHECK(rv_encode_addi(&w, 0, 0, 0) == 0 && w == rv_nop());

	rv_put32(b, rv_ebreak());
	CHECK_BYTES(b, ((const uint8_t[]){ 0x73, 0x00, 0x10, 0x00 }), 4);
	rv_put16(b, rv_c_ebreak());
	CHECK_BYTES(b, ((const uint8_t[]){ 0x02, 0x90 }), 2);
	CHECK(rv_decode(b, 2, 0, &d) == 0 && d.kind == RV_INSN_C_EBREAK && d.len == 2);
	rv_put16(b, rv_c_nop());
	CHECK(rv_decode(b, 2, 0, &d) == 0 && d.kind == RV_INSN_C_NOP && d.len == 2);
	rv_put32(b, rv_nop());
	CHECK(rv_decode(b, 4, 0, &d) == 0 && d.kind == RV_INSN_NOP && d.len == 4);
	rv_put32(b, rv_ebreak());
	CHECK(rv_decode(b, 4, 0, &d) == 0 && d.kind == RV_INSN_EBREAK && d.len == 4);
}

static bool dec32(uint32_t w, uint64_t pc, struct rv_insn *d)
{
	uint8_t b[4];

	rv_put32(b, w);
	return rv_decode(b, 4, pc, d) == 0 && d->len == 4;
}

static void test_jal(void)
{
	static const uint64_t pcs[] = { 0x10000, 0x2, 0x7fffffff000ull, 0xfffffffffffffffeull };
	uint32_t w;
	struct rv_insn d;

	for (size_t i = 0; i < sizeof(pcs) / sizeof(pcs[0]); i++) {
		uint64_t pc = pcs[i];
		int64_t ok[] = { -MiB, MiB - 2, 0, 2, -2, 4, 2048, -2048, 1 << 11, 1 << 12 };
		int64_t range[] = { -MiB - 2, MiB, 2 * MiB, -2 * MiB, INT64_MIN / 2, INT64_MAX / 2 - 1 };
		int64_t align[] = { 1, -1, MiB - 1, 3 };

		for (size_t j = 0; j < sizeof(ok) / sizeof(ok[0]); j++)
			for (unsigned rd = 0; rd < 32; rd += 5) {
				w = SENTINEL;
				if (!CHECK_EQ(rv_encode_jal(&w, rd, pc, pc + (uint64_t)ok[j]), 0))
					continue;
				CHECK(dec32(w, pc, &d));
				CHECK_EQ(d.kind, RV_INSN_JAL);
				CHECK_EQ(d.rd, rd);
				CHECK_EQ(d.imm, ok[j]);
				CHECK_EQ(d.target, pc + (uint64_t)ok[j]);
			}
		for (size_t j = 0; j < sizeof(range) / sizeof(range[0]); j++) {
			w = SENTINEL;
			CHECK_EQ(rv_encode_jal(&w, 1, pc, pc + (uint64_t)range[j]), -STITCH_ERANGE);
			CHECK_EQ(w, SENTINEL);
		}
		for (size_t j = 0; j < sizeof(align) / sizeof(align[0]); j++) {
			w = SENTINEL;
			CHECK_EQ(rv_encode_jal(&w, 1, pc, pc + (uint64_t)align[j]), -STITCH_EALIGN);
			CHECK_EQ(w, SENTINEL);
		}
		CHECK_EQ(rv_encode_jal(&w, 1, pc + 1, pc + 3), -STITCH_EALIGN); /* odd pc, even distance */
		CHECK_EQ(rv_encode_jal(&w, 32, pc, pc), -STITCH_EINVAL);
		CHECK_EQ(w, SENTINEL);
	}
	CHECK_EQ(rv_encode_jal(NULL, 1, 0, 0), -STITCH_EINVAL);
}

typedef int (*itype_enc)(uint32_t *, unsigned, unsigned, int32_t);

static void test_itype(itype_enc enc, enum rv_insn_kind kind)
{
	static const int32_t ok[] = { -2048, 2047, 0, -1, 1, 0x7ff, -0x800 };
	static const int32_t bad[] = { -2049, 2048, 4096, -4096, INT32_MAX, INT32_MIN };
	uint32_t w;
	struct rv_insn d;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		for (unsigned rd = 0; rd < 32; rd += 3)
			for (unsigned rs1 = 0; rs1 < 32; rs1 += 7) {
				w = SENTINEL;
				if (!CHECK_EQ(enc(&w, rd, rs1, ok[i]), 0))
					continue;
				CHECK(dec32(w, 0, &d));
				if (kind == RV_INSN_ADDI && rd == 0 && rs1 == 0 && ok[i] == 0) {
					CHECK_EQ(d.kind, RV_INSN_NOP);
					continue;
				}
				CHECK_EQ(d.kind, kind);
				CHECK_EQ(d.rd, rd);
				CHECK_EQ(d.rs1, rs1);
				CHECK_EQ(d.imm, ok[i]);
				CHECK_EQ(d.target, 0);
			}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		w = SENTINEL;
		CHECK_EQ(enc(&w, 1, 2, bad[i]), -STITCH_ERANGE);
		CHECK_EQ(w, SENTINEL);
	}
	CHECK_EQ(enc(&w, 32, 2, 0), -STITCH_EINVAL);
	CHECK_EQ(enc(&w, 1, 32, 0), -STITCH_EINVAL);
	CHECK_EQ(enc(&w, 32, 2, 5000), -STITCH_EINVAL); /* register checked first */
	CHECK_EQ(w, SENTINEL);
	CHECK_EQ(enc(NULL, 1, 2, 0), -STITCH_EINVAL);
}

static void test_auipc(void)
{
	static const int32_t ok[] = { -524288, 524287, 0, 1, -1, 0x12 };
	static const int32_t bad[] = { -524289, 524288, 1 << 20, INT32_MIN, INT32_MAX };
	uint32_t w;
	struct rv_insn d;

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++)
		for (unsigned rd = 0; rd < 32; rd++) {
			w = SENTINEL;
			CHECK_EQ(rv_encode_auipc(&w, rd, ok[i]), 0);
			CHECK(dec32(w, 0, &d) && d.kind == RV_INSN_AUIPC && d.rd == rd && d.imm == ok[i]);
		}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		w = SENTINEL;
		CHECK_EQ(rv_encode_auipc(&w, 5, bad[i]), -STITCH_ERANGE);
		CHECK_EQ(w, SENTINEL);
	}
	CHECK_EQ(rv_encode_auipc(&w, 32, 0), -STITCH_EINVAL);
	CHECK_EQ(w, SENTINEL);
}

/* What an AUIPC hi20 + sign-extended lo12 pair adds to pc, as the hardware computes it. */
static int64_t pair_offset(int32_t hi20, int32_t lo12)
{
	return (int64_t)hi20 * 4096 + lo12;
}

static void test_split(uint64_t seed)
{
	static const struct {
		int64_t off;
		int32_t hi, lo;
	} golden[] = {
		{ 0, 0, 0 },
		{ 0x7ff, 0, 0x7ff },
		{ 0x800, 1, -0x800 },  /* bit 11 set: lo12 is negative, hi20 carries */
		{ 0xfff, 1, -1 },
		{ 0x1000, 1, 0 },
		{ -1, 0, -1 },
		{ -0x800, 0, -0x800 },
		{ -0x801, -1, 0x7ff },
		{ RV_PCREL_MAX, 524287, 2047 },
		{ RV_PCREL_MIN, -524288, -2048 },
		{ (1ll << 31) - 4096, 524287, 0 },
		{ -(1ll << 31), -524288, 0 },
	};
	static const int64_t bad[] = { RV_PCREL_MAX + 1, RV_PCREL_MIN - 1, 1ll << 32, -(1ll << 32), INT64_MAX, INT64_MIN };
	int32_t hi, lo;

	for (size_t i = 0; i < sizeof(golden) / sizeof(golden[0]); i++) {
		hi = lo = 12345;
		CHECK_EQ(rv_split_pcrel(golden[i].off, &hi, &lo), 0);
		CHECK_EQ(hi, golden[i].hi);
		CHECK_EQ(lo, golden[i].lo);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		hi = lo = 12345;
		CHECK_EQ(rv_split_pcrel(bad[i], &hi, &lo), -STITCH_ERANGE);
		CHECK(hi == 12345 && lo == 12345);
	}
	CHECK_EQ(rv_split_pcrel(0, NULL, &lo), -STITCH_EINVAL);

	/* Random offsets: the encoded AUIPC + JALR pair must land exactly on pc + off. */
	rng_seed(seed);
	for (int i = 0; i < 20000; i++) {
		int64_t off = rng_edgy(RV_PCREL_MIN, RV_PCREL_MAX, 1);
		uint64_t pc = rng_next() & ~1ull;
		uint32_t w1, w2;
		struct rv_insn a, j;

		if (!CHECK_EQ(rv_split_pcrel(off, &hi, &lo), 0))
			continue;
		CHECK(lo >= -2048 && lo <= 2047);
		CHECK_EQ(pair_offset(hi, lo), off);
		CHECK_EQ(rv_encode_auipc(&w1, RV_REG_T0, hi), 0);
		CHECK_EQ(rv_encode_jalr(&w2, RV_REG_T0, RV_REG_T0, lo), 0);
		CHECK(dec32(w1, pc, &a) && dec32(w2, pc + 4, &j));
		CHECK_EQ(pc + (uint64_t)(a.imm * 4096) + (uint64_t)j.imm, pc + (uint64_t)off);
	}
}

static void test_decode_errors(void)
{
	static const struct {
		uint8_t b[4];
		size_t n;
		int err;
	} cases[] = {
		{ { 0x01, 0x45 }, 2, -STITCH_EUNKNOWN },             /* c.li a0, 0 */
		{ { 0x05, 0x00 }, 2, -STITCH_EUNKNOWN },             /* c.nop 1: a HINT, not the canonical c.nop */
		{ { 0x82, 0x80 }, 2, -STITCH_EUNKNOWN },             /* c.jr ra (ret) */
		{ { 0xb3, 0x00, 0x31, 0x00 }, 4, -STITCH_EUNKNOWN }, /* add ra, sp, gp */
		{ { 0x03, 0xa3, 0x82, 0xff }, 4, -STITCH_EUNKNOWN }, /* lw */
		{ { 0xe7, 0x92, 0x02, 0x01 }, 4, -STITCH_EUNKNOWN }, /* jalr with funct3 001 */
		{ { 0x73, 0x00, 0x00, 0x00 }, 4, -STITCH_EUNKNOWN }, /* ecall */
		{ { 0x1f, 0x00, 0x00, 0x00 }, 4, -STITCH_EUNKNOWN }, /* 48-bit encoding space */
		{ { 0x1f, 0x00 }, 2, -STITCH_EUNKNOWN },
		{ { 0x13, 0x00, 0x00 }, 3, -STITCH_EINVAL },
		{ { 0x13, 0x00 }, 2, -STITCH_EINVAL },
		{ { 0x01 }, 1, -STITCH_EINVAL },
		{ { 0 }, 0, -STITCH_EINVAL },
	};
	struct rv_insn d;

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(&d, 0xa5, sizeof(d));
		if (!CHECK_EQ(rv_decode(cases[i].b, cases[i].n, 0, &d), cases[i].err))
			fprintf(stderr, "  (decode case %zu)\n", i);
		CHECK_EQ(d.rd, 0xa5a5a5a5u);
	}
	CHECK_EQ(rv_decode(NULL, 4, 0, &d), -STITCH_EINVAL);
	CHECK_EQ(rv_decode(cases[0].b, 4, 0, NULL), -STITCH_EINVAL);
}

static void test_disasm(void)
{
	static const struct {
		uint32_t w;
		const char *text;
	} cases[] = {
		{ 0x00000013, "addi zero,zero,0" },
		{ 0x00100073, "ebreak" },
		{ 0x008000ef, "jal ra,0x1008" },
		{ 0x010282e7, "jalr t0,16(t0)" },
		{ 0xfff00297, "auipc t0,0xfff00" },
		{ 0x00012297, "auipc t0,0x12" },
		{ 0xff82b303, "ld t1,-8(t0)" },
		{ 0x80028293, "addi t0,t0,-2048" },
		{ 0x7fff8f93, "addi t6,t6,2047" },
	};
	struct rv_insn d;
	char buf[64];
	uint8_t b[2];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!CHECK(dec32(cases[i].w, 0x1000, &d)))
			continue;
		rv_disasm(buf, sizeof(buf), &d);
		CHECK_STR(buf, cases[i].text);
	}
	rv_put16(b, rv_c_nop());
	rv_decode(b, 2, 0, &d);
	rv_disasm(buf, sizeof(buf), &d);
	CHECK_STR(buf, "c.nop");
	rv_put16(b, rv_c_ebreak());
	rv_decode(b, 2, 0, &d);
	rv_disasm(buf, sizeof(buf), &d);
	CHECK_STR(buf, "c.ebreak");
	CHECK_STR(rv_reg_name(0), "zero");
	CHECK_STR(rv_reg_name(31), "t6");
	CHECK_STR(rv_reg_name(32), "?");
	CHECK_STR(rv_insn_name((enum rv_insn_kind)99), "?");
}

static void test_random_jal(uint64_t seed)
{
	rng_seed(seed ^ 0x1a1);
	for (int i = 0; i < 20000; i++) {
		uint64_t pc = rng_next() & ~1ull;
		int64_t off = rng_edgy(-MiB, MiB - 2, 2);
		unsigned rd = (unsigned)rng_range(0, 31);
		uint32_t w;
		struct rv_insn d;

		CHECK_EQ(rv_encode_jal(&w, rd, pc, pc + (uint64_t)off), 0);
		CHECK(dec32(w, pc, &d) && d.kind == RV_INSN_JAL && d.rd == rd && d.target == pc + (uint64_t)off);
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = rng_seed_from(argc, argv, 0x75c64);

	printf("insn_riscv64: seed 0x%" PRIx64 "\n", seed);
	test_golden();
	test_jal();
	test_itype(rv_encode_jalr, RV_INSN_JALR);
	test_itype(rv_encode_ld, RV_INSN_LD);
	test_itype(rv_encode_addi, RV_INSN_ADDI);
	test_auipc();
	test_split(seed);
	test_decode_errors();
	test_disasm();
	test_random_jal(seed);
	return check_report("insn_riscv64");
}
