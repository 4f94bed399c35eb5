/* SPDX-License-Identifier: MIT */
/* Per-architecture instructions the tests plant at sites. */
#ifndef STITCH_TEST_ARCH_BYTES_H
#define STITCH_TEST_ARCH_BYTES_H
#include <stdint.h>

#if defined(__x86_64__)
/* Five one-byte NOPs: what gcc's -fpatchable-function-entry=5 emits, and
 * not a static-key site (five instructions, not one). */
static const uint8_t foreign_insn[] = { 0x90, 0x90, 0x90, 0x90, 0x90 };
#define SITE_LEN 5
/* Branch displacement no site encoding can reach. */
#define FAR_AWAY (3ull << 30)
#elif defined(__aarch64__)
static const uint8_t foreign_insn[] = { 0xe0, 0x03, 0x00, 0xaa }; /* mov x0, x0 */
#define SITE_LEN 4
#define FAR_AWAY (256ull << 20)
#elif defined(__riscv)
static const uint8_t foreign_insn[] = { 0x13, 0x05, 0x05, 0x00 }; /* addi a0, a0, 0 */
#define SITE_LEN 4
#define FAR_AWAY (2ull << 20)
#endif

#endif
