// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for rv_decode().  Input: 8 bytes of pc, then the
 * instruction bytes.  Beyond "no crash":
 *  - a failure is -STITCH_EINVAL (fewer bytes than the length the low bits
 *    announce) or -STITCH_EUNKNOWN, and leaves *out as it was;
 *  - a success has len 2 or 4 (from the low two bits), len <= avail;
 *  - every kind re-encodes to the very bytes it came from (the decoder
 *    accepts no bit it does not account for); JAL's target is pc + imm;
 *  - rv_disasm() of it fits a modest buffer.
 * The pc is aligned down to 2 bytes, as RISC-V instructions are.
 */
#include <string.h>

#include "arch/riscv64/insn.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rv_insn d, sentinel;
	char text[64];
	uint8_t enc[4];

	if (size < 8)
		return 0;
	uint64_t pc = fuzz_get64(data) & ~1ull;
	const uint8_t *b = data + 8;
	size_t avail = size - 8;

	memset(&sentinel, 0x5a, sizeof sentinel);
	d = sentinel;
	int rc = rv_decode(avail ? b : data, avail, pc, &d);
	if (rc != 0) {
		FUZZ_CHECK(rc == -STITCH_EINVAL || rc == -STITCH_EUNKNOWN);
		FUZZ_CHECK(rc == -STITCH_EUNKNOWN || avail < 2 || ((b[0] & 3) == 3 && avail < 4));
		FUZZ_CHECK(memcmp(&d, &sentinel, sizeof d) == 0);
		return 0;
	}
	FUZZ_CHECK(d.len == ((b[0] & 3) == 3 ? 4 : 2) && d.len <= avail);
	FUZZ_CHECK(d.rd <= 31 && d.rs1 <= 31);
	FUZZ_CHECK(d.kind == RV_INSN_JAL ? d.target == pc + (uint64_t)d.imm : d.target == 0);

	uint32_t w = 0;
	switch (d.kind) {
	case RV_INSN_NOP: w = rv_nop(); break;
	case RV_INSN_C_NOP: w = rv_c_nop(); break;
	case RV_INSN_EBREAK: w = rv_ebreak(); break;
	case RV_INSN_C_EBREAK: w = rv_c_ebreak(); break;
	case RV_INSN_JAL: rc = rv_encode_jal(&w, d.rd, pc, d.target); break;
	case RV_INSN_JALR: rc = rv_encode_jalr(&w, d.rd, d.rs1, (int32_t)d.imm); break;
	case RV_INSN_AUIPC: rc = rv_encode_auipc(&w, d.rd, (int32_t)d.imm); break;
	case RV_INSN_LD: rc = rv_encode_ld(&w, d.rd, d.rs1, (int32_t)d.imm); break;
	case RV_INSN_ADDI: rc = rv_encode_addi(&w, d.rd, d.rs1, (int32_t)d.imm); break;
	}
	FUZZ_CHECK(rc == 0);
	if (d.len == 2)
		rv_put16(enc, (uint16_t)w);
	else
		rv_put32(enc, w);
	FUZZ_CHECK(memcmp(enc, b, d.len) == 0);
	int n = rv_disasm(text, sizeof text, &d);
	FUZZ_CHECK(n > 0 && (size_t)n < sizeof text);
	return 0;
}
