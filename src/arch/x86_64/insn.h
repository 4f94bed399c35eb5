/* SPDX-License-Identifier: MIT */
/*
 * x86-64 instruction layer: the handful of instructions stitch writes or
 * has to recognise at a patch site, as bytes.
 *
 *   nop (1..9 bytes)   Intel SDM Vol. 2B, NOP, "Recommended Multi-Byte
 *                      Sequence of NOP Instruction" table
 *   jmp rel8  (eb)     SDM Vol. 2A, JMP
 *   jmp rel32 (e9)     SDM Vol. 2A, JMP
 *   call rel32 (e8)    SDM Vol. 2A, CALL
 *   int3 (cc)          SDM Vol. 2A, INT n/INTO/INT3/INT1
 *   ret (c3)           SDM Vol. 2B, RET (near return)
 *
 * Addresses: `pc` is the address of the first byte of the instruction; a
 * relative displacement counts from the end of the instruction, and the
 * sum wraps modulo 2^64 as the CPU's does in 64-bit mode.
 *
 * Every function returns 0 or a negative STITCH_E* code:
 *   -STITCH_ERANGE    the displacement does not fit
 *   -STITCH_EINVAL    bad length, NULL pointer or not enough bytes
 *   -STITCH_EUNKNOWN  (decoder) bytes that are none of the forms above
 * On error the output buffer is left untouched.
 *
 * Plain portable C, built on every host; names start with x86_.
 */
#ifndef STITCH_ARCH_X86_64_INSN_H
#define STITCH_ARCH_X86_64_INSN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "stitch/stitch.h"

#ifdef __cplusplus
extern "C" {
#endif

#define X86_INT3 0xcc
#define X86_RET 0xc3
#define X86_JMP_REL8 0xeb
#define X86_JMP_REL32 0xe9
#define X86_CALL_REL32 0xe8

#define X86_NOP_MAX 9          /* longest NOP form stitch writes or recognises */
#define X86_JMP_REL8_LEN 2
#define X86_JMP_REL32_LEN 5
#define X86_CALL_REL32_LEN 5

enum x86_insn_kind {
	X86_INSN_NOP,
	X86_INSN_JMP_REL8,
	X86_INSN_JMP_REL32,
	X86_INSN_CALL_REL32,
	X86_INSN_INT3,
	X86_INSN_RET,
};

struct x86_insn {
	enum x86_insn_kind kind;
	uint8_t len;     /* bytes, 1..9 */
	uint64_t target; /* branch target (jmp/call), 0 otherwise */
};

/* Intel's recommended NOP of exactly `len` bytes, 1..9 (len 2: 66 90, len 5: 0f 1f 44 00 00). */
int x86_encode_nop(uint8_t *out, size_t len);
/* jmp rel8 at `pc`: eb dd, target - (pc + 2) in -128..127. */
int x86_encode_jmp_rel8(uint8_t out[2], uint64_t pc, uint64_t target);
/* jmp rel32 at `pc`: e9 dd dd dd dd, target - (pc + 5) in -2^31..2^31-1. */
int x86_encode_jmp_rel32(uint8_t out[5], uint64_t pc, uint64_t target);
/* call rel32 at `pc`: e8 dd dd dd dd, same range as jmp rel32. */
int x86_encode_call_rel32(uint8_t out[5], uint64_t pc, uint64_t target);
int x86_encode_int3(uint8_t out[1]);
int x86_encode_ret(uint8_t out[1]);

/*
 * Decode the instruction at `bytes` (`avail` readable bytes, located at
 * address `pc`).  Recognises exactly the forms above, every NOP form of
 * 1..9 bytes included.  -STITCH_EINVAL if `avail` is too short for the
 * form the first bytes announce, -STITCH_EUNKNOWN for anything else.
 */
int x86_decode(const uint8_t *bytes, size_t avail, uint64_t pc, struct x86_insn *out);

/*
 * x86_decode(), and also the multi-byte NOP forms 4..9 with any
 * displacement value (a NOP issues no memory operation: the displacement
 * changes nothing), such as clang's patchable-entry NOP 0f 1f 44 00 08.
 * For sites stitch finds in compiled code and may have to emulate (a NOP:
 * skip len bytes); x86_decode() itself stays exact.
 */
int x86_decode_site(const uint8_t *bytes, size_t avail, uint64_t pc, struct x86_insn *out);

/* "nop", "jmp", "call", "int3", "ret"; "?" for a value outside the enum. */
const char *x86_insn_name(enum x86_insn_kind kind);

/*
 * Render a decoded instruction in objdump's AT&T style without the byte
 * column, e.g. "jmp 0x401000", "call 0x401000", "nopl 0x0(%rax,%rax,1)",
 * "int3", "ret".  Writes at most n bytes including the NUL (snprintf
 * rules); returns what snprintf returns.
 */
int x86_disasm(char *buf, size_t n, const struct x86_insn *insn);

#ifdef __cplusplus
}
#endif

#endif /* STITCH_ARCH_X86_64_INSN_H */
