// SPDX-License-Identifier: MIT
/* AArch64 instruction layer: golden words, range boundaries, error paths, round trips. */
#include "arch/aarch64/insn.h"
#include "check.h"

#define SENTINEL 0xa5a5a5a5u
#define MiB (1ll << 20)

static void test_golden(void)
{
	uint32_t w;

	CHECK_EQ(a64_nop(), 0xd503201f);
	CHECK_EQ(a64_bti_c(), 0xd503245f);
	CHECK_EQ(a64_ret(), 0xd65f03c0);
	CHECK(a64_encode_ret(&w, 30) == 0 && w == 0xd65f03c0);
	CHECK(a64_encode_ret(&w, 5) == 0 && w == 0xd65f00a0);
	CHECK(a64_encode_br(&w, 16) == 0 && w == 0xd61f0200);
	CHECK(a64_encode_br(&w, 17) == 0 && w == 0xd61f0220);
	CHECK(a64_encode_mov_reg(&w, 9, 30) == 0 && w == 0xaa1e03e9);     /* mov x9, x30 */
	CHECK(a64_encode_b(&w, 0x400000, 0x400004) == 0 && w == 0x14000001);
	CHECK(a64_encode_b(&w, 0x400000, 0x400000) == 0 && w == 0x14000000);
	CHECK(a64_encode_bl(&w, 0x400004, 0x400000) == 0 && w == 0x97ffffff);
	CHECK(a64_encode_adrp(&w, 16, 0x400000, 0x400000) == 0 && w == 0x90000010);
	CHECK(a64_encode_adrp(&w, 0, 0x1000, 0x0) == 0 && w == 0xf0ffffe0); /* adrp x0, -1 page */
	CHECK(a64_encode_add_imm(&w, 16, 16, 0x10, false) == 0 && w == 0x91004210);
	CHECK(a64_encode_add_imm(&w, 0, 1, 1, true) == 0 && w == 0x91400420);
	CHECK(a64_encode_add_imm(&w, 0, 31, 0, false) == 0 && w == 0x910003e0); /* mov x0, sp */
	CHECK(a64_encode_ldr_literal(&w, 16, 0x400000, 0x400008) == 0 && w == 0x58000050);
	CHECK(a64_encode_ldr_imm(&w, 16, 16, 8) == 0 && w == 0xf9400610);
	CHECK(a64_encode_ldr_imm(&w, 16, 31, 0) == 0 && w == 0xf94003f0);   /* ldr x16, [sp] */
}

typedef int (*pcrel_enc)(uint32_t *, uint64_t, uint64_t);

static int enc_b(uint32_t *o, uint64_t pc, uint64_t t) { return a64_encode_b(o, pc, t); }
static int enc_bl(uint32_t *o, uint64_t pc, uint64_t t) { return a64_encode_bl(o, pc, t); }
static int enc_ldr_x7(uint32_t *o, uint64_t pc, uint64_t t) { return a64_encode_ldr_literal(o, 7, pc, t); }

/* A PC-relative encoder reaching [pc + lo, pc + hi] in steps of 4. */
static void test_pcrel(pcrel_enc enc, enum a64_insn_kind kind, int64_t lo, int64_t hi)
{
	static const uint64_t pcs[] = { 0x400000, 0xffff8000a0001000ull, 0x4, 0xfffffffffffffffcull };

	for (size_t i = 0; i < sizeof(pcs) / sizeof(pcs[0]); i++) {
		uint64_t pc = pcs[i];
		int64_t ok[] = { lo, hi, 0, 4, -4, lo + 4, hi - 4 };
		int64_t range[] = { lo - 4, hi + 4, lo * 2, hi * 2, INT64_MIN / 2, INT64_MAX / 2 - 3 };
		int64_t align[] = { 1, 2, 3, hi - 1, lo + 2 };
		uint32_t w;
		struct a64_insn d;

		for (size_t j = 0; j < sizeof(ok) / sizeof(ok[0]); j++) {
			w = SENTINEL;
			if (!CHECK_EQ(enc(&w, pc, pc + (uint64_t)ok[j]), 0))
				continue;
			CHECK_EQ(a64_decode(w, pc, &d), 0);
			CHECK_EQ(d.kind, kind);
			CHECK_EQ(d.imm, ok[j]);
			CHECK_EQ(d.target, pc + (uint64_t)ok[j]);
		}
		for (size_t j = 0; j < sizeof(range) / sizeof(range[0]); j++) {
			w = SENTINEL;
			CHECK_EQ(enc(&w, pc, pc + (uint64_t)range[j]), -STITCH_ERANGE);
			CHECK_EQ(w, SENTINEL);
		}
		for (size_t j = 0; j < sizeof(align) / sizeof(align[0]); j++) {
			w = SENTINEL;
			CHECK_EQ(enc(&w, pc, pc + (uint64_t)align[j]), -STITCH_EALIGN);
			CHECK_EQ(w, SENTINEL);
			CHECK_EQ(enc(&w, pc + 2, pc + 2 + 4), -STITCH_EALIGN); /* pc itself misaligned */
			CHECK_EQ(w, SENTINEL);
		}
	}
	CHECK_EQ(enc(NULL, 0, 0), -STITCH_EINVAL);
}

static void test_adrp(void)
{
	static const uint64_t pcs[] = { 0x400000, 0x400ffc, 0x7fff00001234 & ~3ull, 0x0, 0xfffffffffffff000ull };
	const int64_t P = 4096, maxp = (1ll << 20) - 1, minp = -(1ll << 20);
	uint32_t w;
	struct a64_insn d;

	for (size_t i = 0; i < sizeof(pcs) / sizeof(pcs[0]); i++) {
		uint64_t pc = pcs[i], page = pc & ~0xfffull;
		int64_t ok[] = { maxp, minp, 0, 1, -1 };
		int64_t bad[] = { maxp + 1, minp - 1, maxp * 4, minp * 4 };

		for (size_t j = 0; j < sizeof(ok) / sizeof(ok[0]); j++) {
			for (uint64_t low = 0; low < 4096; low += 0x7ff) { /* low bits of target don't matter */
				uint64_t target = page + (uint64_t)(ok[j] * P) + low;

				w = SENTINEL;
				if (!CHECK_EQ(a64_encode_adrp(&w, 3, pc, target), 0))
					continue;
				CHECK_EQ(a64_decode(w, pc, &d), 0);
				CHECK_EQ(d.kind, A64_INSN_ADRP);
				CHECK_EQ(d.rd, 3);
				CHECK_EQ(d.imm, ok[j] * P);
				CHECK_EQ(d.target, target & ~0xfffull);
			}
		}
		for (size_t j = 0; j < sizeof(bad) / sizeof(bad[0]); j++) {
			w = SENTINEL;
			CHECK_EQ(a64_encode_adrp(&w, 3, pc, page + (uint64_t)(bad[j] * P)), -STITCH_ERANGE);
			CHECK_EQ(w, SENTINEL);
		}
	}
	w = SENTINEL;
	CHECK_EQ(a64_encode_adrp(&w, 3, 0x400002, 0x400000), -STITCH_EALIGN);
	CHECK_EQ(a64_encode_adrp(&w, 32, 0x400000, 0x400000), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_adrp(&w, ~0u, 0x400000, 0x400000), -STITCH_EINVAL);
	CHECK_EQ(w, SENTINEL);
	CHECK_EQ(a64_encode_adrp(NULL, 3, 0x400000, 0x400000), -STITCH_EINVAL);
}

static void test_add_ldr_imm(void)
{
	uint32_t w;
	struct a64_insn d;

	for (unsigned rd = 0; rd < 32; rd += 31)
		for (unsigned rn = 0; rn < 32; rn += 31)
			for (int sh = 0; sh < 2; sh++) {
				uint32_t imms[] = { 0, 1, 4095 };

				for (size_t i = 0; i < 3; i++) {
					w = SENTINEL;
					CHECK_EQ(a64_encode_add_imm(&w, rd, rn, imms[i], sh), 0);
					CHECK_EQ(a64_decode(w, 0, &d), 0);
					CHECK_EQ(d.kind, A64_INSN_ADD_IMM);
					CHECK_EQ(d.rd, rd);
					CHECK_EQ(d.rn, rn);
					CHECK_EQ(d.rm, sh ? 12 : 0);
					CHECK_EQ(d.imm, (int64_t)imms[i] << (sh ? 12 : 0));
				}
				w = SENTINEL;
				CHECK_EQ(a64_encode_add_imm(&w, rd, rn, 4096, sh), -STITCH_ERANGE);
				CHECK_EQ(a64_encode_add_imm(&w, rd, rn, UINT32_MAX, sh), -STITCH_ERANGE);
				CHECK_EQ(w, SENTINEL);
			}
	w = SENTINEL;
	CHECK_EQ(a64_encode_add_imm(&w, 32, 0, 0, false), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_add_imm(&w, 0, 32, 0, false), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_add_imm(&w, 32, 0, 4096, false), -STITCH_EINVAL); /* register checked first */
	CHECK_EQ(w, SENTINEL);

	for (uint32_t off = 0; off <= 32760; off += 8) {
		w = SENTINEL;
		if (!CHECK_EQ(a64_encode_ldr_imm(&w, 1, 2, off), 0))
			break;
		CHECK_EQ(a64_decode(w, 0, &d), 0);
		CHECK(d.kind == A64_INSN_LDR_IMM && d.rd == 1 && d.rn == 2 && d.imm == off);
	}
	w = SENTINEL;
	CHECK_EQ(a64_encode_ldr_imm(&w, 1, 2, 32768), -STITCH_ERANGE);
	CHECK_EQ(a64_encode_ldr_imm(&w, 1, 2, 32760 + 8 * 100), -STITCH_ERANGE);
	CHECK_EQ(a64_encode_ldr_imm(&w, 1, 2, 4), -STITCH_EALIGN);
	CHECK_EQ(a64_encode_ldr_imm(&w, 1, 2, 1), -STITCH_EALIGN);
	CHECK_EQ(a64_encode_ldr_imm(&w, 1, 2, 32761), -STITCH_EALIGN);
	CHECK_EQ(a64_encode_ldr_imm(&w, 32, 2, 8), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_ldr_imm(&w, 1, 32, 8), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_ldr_imm(NULL, 1, 2, 8), -STITCH_EINVAL);
	CHECK_EQ(w, SENTINEL);
	CHECK_EQ(a64_encode_ldr_literal(&w, 32, 0, 0), -STITCH_EINVAL);
	CHECK_EQ(w, SENTINEL);
}

static void test_registers(void)
{
	uint32_t w;
	struct a64_insn d;

	for (unsigned r = 0; r < 32; r++) {
		CHECK(a64_encode_br(&w, r) == 0 && a64_decode(w, 0, &d) == 0 && d.kind == A64_INSN_BR && d.rn == r);
		CHECK(a64_encode_ret(&w, r) == 0 && a64_decode(w, 0, &d) == 0 && d.kind == A64_INSN_RET && d.rn == r);
		for (unsigned m = 0; m < 32; m++)
			CHECK(a64_encode_mov_reg(&w, r, m) == 0 && a64_decode(w, 0, &d) == 0 &&
			      d.kind == A64_INSN_MOV_REG && d.rd == r && d.rm == m);
		CHECK(a64_encode_ldr_literal(&w, r, 0x1000, 0x2000) == 0 && a64_decode(w, 0x1000, &d) == 0 &&
		      d.kind == A64_INSN_LDR_LIT && d.rd == r && d.target == 0x2000);
	}
	w = SENTINEL;
	CHECK_EQ(a64_encode_br(&w, 32), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_ret(&w, 32), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_mov_reg(&w, 32, 0), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_mov_reg(&w, 0, 32), -STITCH_EINVAL);
	CHECK_EQ(a64_encode_mov_reg(&w, 0, 1000), -STITCH_EINVAL);
	CHECK_EQ(w, SENTINEL);
	CHECK_EQ(a64_encode_br(NULL, 0), -STITCH_EINVAL);
}

/* Classification-only instructions, CMODX set, unknown words. */
static void test_classify(void)
{
	static const struct {
		uint32_t w;
		enum a64_insn_kind kind;
		bool cmodx;
		const char *text;
	} cases[] = {
		{ 0xd503201f, A64_INSN_NOP, true, "nop" },
		{ 0xd503245f, A64_INSN_BTI_C, false, "bti c" },
		{ 0xd65f03c0, A64_INSN_RET, false, "ret" },
		{ 0xd65f00a0, A64_INSN_RET, false, "ret x5" },
		{ 0x14000001, A64_INSN_B, true, "b 0x1004" },
		{ 0x97ffffff, A64_INSN_BL, true, "bl 0xffc" },
		{ 0x90000010, A64_INSN_ADRP, false, "adrp x16, 0x1000" },
		{ 0x91004210, A64_INSN_ADD_IMM, false, "add x16, x16, #0x10" },
		{ 0x91400420, A64_INSN_ADD_IMM, false, "add x0, x1, #0x1, lsl #12" },
		{ 0x91400000, A64_INSN_ADD_IMM, false, "add x0, x0, #0x0, lsl #12" },
		{ 0x910003e0, A64_INSN_ADD_IMM, false, "mov x0, sp" },
		{ 0x9100001f, A64_INSN_ADD_IMM, false, "mov sp, x0" },
		{ 0x58000010, A64_INSN_LDR_LIT, false, "ldr x16, 0x1000" },
		{ 0xf9400610, A64_INSN_LDR_IMM, false, "ldr x16, [x16, #8]" },
		{ 0xf94003f0, A64_INSN_LDR_IMM, false, "ldr x16, [sp]" },
		{ 0xd61f0200, A64_INSN_BR, false, "br x16" },
		{ 0xaa1e03e9, A64_INSN_MOV_REG, false, "mov x9, x30" },
		{ 0xaa1f03e9, A64_INSN_MOV_REG, false, "mov x9, xzr" },
		{ 0x54000021, A64_INSN_B_COND, true, "b.ne 0x1004" },
		{ 0x54ffffe0, A64_INSN_B_COND, true, "b.eq 0xffc" },
		{ 0x34000021, A64_INSN_CBZ, true, "cbz w1, 0x1004" },
		{ 0xb500003f, A64_INSN_CBNZ, true, "cbnz xzr, 0x1004" },
		{ 0xb6400023, A64_INSN_TBZ, true, "tbz x3, #40, 0x1004" },
		{ 0x3728003f, A64_INSN_TBNZ, true, "tbnz wzr, #5, 0x1004" },
		{ 0xd4207d00, A64_INSN_BRK, true, "brk #0x3e8" },
		{ 0xd4000001, A64_INSN_SVC, true, "svc #0x0" },
		{ 0xd4000002, A64_INSN_HVC, true, "hvc #0x0" },
		{ 0xd4000003, A64_INSN_SMC, true, "smc #0x0" },
		{ 0xd5033fdf, A64_INSN_ISB, true, "isb" },
	};
	static const uint32_t unknown[] = {
		0x00000000, /* udf #0 */
		0xd503203f, /* yield */
		0xd503247f, /* bti j */
		0xd503233f, /* paciasp */
		0xd63f0200, /* blr x16 */
		0x11000000, /* add w0, w0, #0 (32-bit) */
		0xb1000000, /* adds */
		0x10000010, /* adr */
		0x18000010, /* ldr w16, literal */
		0xb9400610, /* ldr w16, [x16, #4] */
		0x2a0103e0, /* mov w0, w1 */
		0xaa0103e0 | 1u << 10, /* orr with shift amount */
		0x54000030, /* bc.eq (FEAT_HBC), not in the CMODX list here */
		0xd4000000, /* exception class with LL = 00 */
		0xd4400000, /* hlt */
		0xd50330ff, /* barrier op2 = 111 */
		0xd5033f9f, /* dsb sy */
	};
	struct a64_insn d;
	char buf[64];

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		if (!CHECK_EQ(a64_decode(cases[i].w, 0x1000, &d), 0))
			continue;
		CHECK_EQ(d.kind, cases[i].kind);
		CHECK_EQ(a64_insn_cmodx_safe(cases[i].w), cases[i].cmodx);
		a64_disasm(buf, sizeof(buf), &d);
		CHECK_STR(buf, cases[i].text);
	}
	for (size_t i = 0; i < sizeof(unknown) / sizeof(unknown[0]); i++) {
		memset(&d, 0xa5, sizeof(d));
		if (!CHECK_EQ(a64_decode(unknown[i], 0, &d), -STITCH_EUNKNOWN))
			fprintf(stderr, "  (word %08x)\n", unknown[i]);
		CHECK_EQ(d.rd, 0xa5a5a5a5u);
		CHECK(!a64_insn_cmodx_safe(unknown[i]));
	}
	CHECK(a64_cmodx_pair_safe(A64_NOP, 0x94000010));
	CHECK(!a64_cmodx_pair_safe(A64_NOP, 0xaa1e03e9));
	CHECK(!a64_cmodx_pair_safe(0x90000010, 0x90000011)); /* ADRP -> ADRP */
	CHECK_EQ(a64_decode(A64_NOP, 0, NULL), -STITCH_EINVAL);
	CHECK_STR(a64_insn_name((enum a64_insn_kind)99), "?");
	/* TBZ bit numbers and CBZ width */
	CHECK(a64_decode(0x36f8003f, 0, &d) == 0 && d.kind == A64_INSN_TBZ && d.rm == 31 && !d.sf);
	CHECK(a64_decode(0xb6f8003f, 0, &d) == 0 && d.kind == A64_INSN_TBZ && d.rm == 63 && d.sf);
	CHECK(a64_decode(0xb6000000 | 0x2000u << 5, 0x10000, &d) == 0 && d.imm == -0x8000 && d.target == 0x8000);
}

static void test_random_round_trips(uint64_t seed)
{
	rng_seed(seed);
	for (int i = 0; i < 20000; i++) {
		uint64_t pc = rng_next() & ~3ull;
		unsigned rd = (unsigned)rng_range(0, 31), rn = (unsigned)rng_range(0, 31);
		int64_t off;
		uint32_t w = 0;
		struct a64_insn d;

		switch (i % 5) {
		case 0:
			off = rng_edgy(-A64_B_RANGE, A64_B_RANGE - 4, 4);
			CHECK_EQ((i & 8 ? a64_encode_bl : a64_encode_b)(&w, pc, pc + (uint64_t)off), 0);
			CHECK(a64_decode(w, pc, &d) == 0 && d.target == pc + (uint64_t)off &&
			      d.kind == (i & 8 ? A64_INSN_BL : A64_INSN_B));
			break;
		case 1:
			off = rng_edgy(-A64_LDR_LIT_RANGE, A64_LDR_LIT_RANGE - 4, 4);
			CHECK_EQ(a64_encode_ldr_literal(&w, rd, pc, pc + (uint64_t)off), 0);
			CHECK(a64_decode(w, pc, &d) == 0 && d.target == pc + (uint64_t)off && d.rd == rd);
			break;
		case 2:
			off = rng_edgy(-(1ll << 20), (1ll << 20) - 1, 1) * 4096 + rng_range(0, 4095);
			CHECK_EQ(a64_encode_adrp(&w, rd, pc, (pc & ~0xfffull) + (uint64_t)off), 0);
			CHECK(a64_decode(w, pc, &d) == 0 && d.rd == rd &&
			      d.target == (((pc & ~0xfffull) + (uint64_t)off) & ~0xfffull));
			break;
		case 3:
			off = rng_range(0, 4095);
			CHECK_EQ(a64_encode_add_imm(&w, rd, rn, (uint32_t)off, i & 8), 0);
			CHECK(a64_decode(w, pc, &d) == 0 && d.rd == rd && d.rn == rn &&
			      d.imm == off << (i & 8 ? 12 : 0));
			break;
		default:
			off = rng_range(0, 4095) * 8;
			CHECK_EQ(a64_encode_ldr_imm(&w, rd, rn, (uint32_t)off), 0);
			CHECK(a64_decode(w, pc, &d) == 0 && d.rd == rd && d.rn == rn && d.imm == off);
			break;
		}
	}
}

int main(int argc, char **argv)
{
	uint64_t seed = rng_seed_from(argc, argv, 0xa64a64);

	printf("insn_aarch64: seed 0x%" PRIx64 "\n", seed);
	test_golden();
	test_pcrel(enc_b, A64_INSN_B, -128 * MiB, 128 * MiB - 4);
	test_pcrel(enc_bl, A64_INSN_BL, -128 * MiB, 128 * MiB - 4);
	test_pcrel(enc_ldr_x7, A64_INSN_LDR_LIT, -1 * MiB, 1 * MiB - 4);
	test_adrp();
	test_add_ldr_imm();
	test_registers();
	test_classify();
	test_random_round_trips(seed);
	return check_report("insn_aarch64");
}
