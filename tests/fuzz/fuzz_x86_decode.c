// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for x86_decode().  Input: 8 bytes of pc (little-endian),
 * then the instruction bytes.  Beyond "no crash":
 *  - a failure is -STITCH_EINVAL or -STITCH_EUNKNOWN and leaves *out as it was;
 *  - a success has len 1..9 and len <= avail, decodes the same with exactly
 *    len bytes available, and fails with -STITCH_EINVAL with one byte fewer
 *    (the decoder knows each form's length from its first bytes);
 *  - every kind re-encodes to the very bytes it was decoded from, with the
 *    encoders stitch patches code with (the decoder recognises exactly the
 *    forms stitch writes, nothing looser);
 *  - x86_disasm() of it is not "(bad)" and fits a modest buffer;
 *  - x86_decode_site() agrees with it where it succeeds, and otherwise
 *    accepts at most a NOP of 4..9 bytes (any displacement).
 */
#include <string.h>

#include "arch/x86_64/insn.h"
#include "fuzz.h"

static void check_reencode(const uint8_t *b, uint64_t pc, const struct x86_insn *d)
{
	uint8_t enc[X86_NOP_MAX];
	int rc = -1;

	switch (d->kind) {
	case X86_INSN_NOP: rc = x86_encode_nop(enc, d->len); break;
	case X86_INSN_JMP_REL8: rc = x86_encode_jmp_rel8(enc, pc, d->target); break;
	case X86_INSN_JMP_REL32: rc = x86_encode_jmp_rel32(enc, pc, d->target); break;
	case X86_INSN_CALL_REL32: rc = x86_encode_call_rel32(enc, pc, d->target); break;
	case X86_INSN_INT3: rc = x86_encode_int3(enc); break;
	case X86_INSN_RET: rc = x86_encode_ret(enc); break;
	}
	FUZZ_CHECK(rc == 0);
	FUZZ_CHECK(memcmp(enc, b, d->len) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct x86_insn d, again;
	const struct x86_insn sentinel = { .kind = X86_INSN_RET, .len = 0xee, .target = 0x5a5a5a5a5a5a5a5aull };
	char text[64];

	if (size < 8)
		return 0;
	uint64_t pc = fuzz_get64(data);
	const uint8_t *b = data + 8;
	size_t avail = size - 8;

	d = sentinel;
	int rc = x86_decode(avail ? b : data, avail, pc, &d);
	/* x86_decode_site(): the same where x86_decode() succeeds; otherwise
	 * at most a displacement NOP of 4..9 bytes, or the same kind of failure */
	struct x86_insn site = sentinel;
	int rs = x86_decode_site(avail ? b : data, avail, pc, &site);
	if (rc == 0)
		FUZZ_CHECK(rs == 0 && site.kind == d.kind && site.len == d.len && site.target == d.target);
	else if (rs == 0)
		FUZZ_CHECK(site.kind == X86_INSN_NOP && site.len >= 4 && site.len <= X86_NOP_MAX && site.len <= avail &&
			   site.target == 0);
	else
		FUZZ_CHECK((rs == -STITCH_EINVAL || rs == -STITCH_EUNKNOWN) && memcmp(&site, &sentinel, sizeof site) == 0);
	if (rc != 0) {
		FUZZ_CHECK(rc == -STITCH_EINVAL || rc == -STITCH_EUNKNOWN);
		FUZZ_CHECK(memcmp(&d, &sentinel, sizeof d) == 0);
		return 0;
	}
	FUZZ_CHECK(d.len >= 1 && d.len <= X86_NOP_MAX && d.len <= avail);
	FUZZ_CHECK(x86_decode(b, d.len, pc, &again) == 0);
	FUZZ_CHECK(again.kind == d.kind && again.len == d.len && again.target == d.target);
	if (d.len > 1)
		FUZZ_CHECK(x86_decode(b, d.len - 1u, pc, &again) == -STITCH_EINVAL);
	check_reencode(b, pc, &d);
	int n = x86_disasm(text, sizeof text, &d);
	FUZZ_CHECK(n > 0 && (size_t)n < sizeof text && strcmp(text, "(bad)") != 0);
	return 0;
}
