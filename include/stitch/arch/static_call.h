/* SPDX-License-Identifier: MIT */
/*
 * The per-architecture half of <stitch/static_call.h>: the trampoline the
 * DEFINE macros emit, as top-level asm (builds at -O0, in PIE and in
 * shared objects: every reference is PC-relative to a hidden symbol of the
 * same module).  Not for direct use.  The byte images are checked by
 * src/arch/<arch>/static_call.c at registration; keep both in step.
 *
 *   STITCH__SC_TRAMP_ASM(name, func, null)  the trampoline + table entry
 *   STITCH__SC_RET_OFFSET                   offset of a RET in it (NULL's literal)
 *   STITCH__SC_LAYOUT                       enum stitch_static_call_layout
 */
#ifndef STITCH_ARCH_STATIC_CALL_H
#define STITCH_ARCH_STATIC_CALL_H

#define STITCH__SC_ENTRY(name)                                    \
	".pushsection __stitch_static_calls, \"aw\"\n"            \
	".balign 8\n"                                             \
	".quad stitch__sc_" #name "\n"                            \
	".popsection\n"

#if defined(__x86_64__)
/*
 *   +0   e9 03 00 00 00     jmp +8 (far path; becomes jmp target / nop5)
 *   +5   c3                 ret     (NULL: +0 is nop5)
 *   +6   cc cc
 *   +8   ff 25 rel32        jmp *lit(%rip)
 *   +14  cc cc
 */
#define STITCH__SC_LAYOUT STITCH_SC_X86
#define STITCH__SC_RET_OFFSET 5
#define STITCH__SC_TRAMP_ASM(name, func, null)                                   \
	".pushsection .text.stitch_static_call, \"ax\", @progbits\n"             \
	".balign 16\n"                                                           \
	".globl stitch__sct_" #name "\n"                                         \
	".hidden stitch__sct_" #name "\n"                                        \
	".type stitch__sct_" #name ", @function\n"                               \
	"stitch__sct_" #name ":\n"                                               \
	".byte 0xe9, 0x03, 0x00, 0x00, 0x00\n"                                   \
	".byte 0xc3, 0xcc, 0xcc\n"                                               \
	"jmp *stitch__sc_" #name "(%rip)\n"                                      \
	".byte 0xcc, 0xcc\n"                                                     \
	".size stitch__sct_" #name ", . - stitch__sct_" #name "\n"               \
	".popsection\n" STITCH__SC_ENTRY(name)

#elif defined(__aarch64__)
#if defined(__ARM_FEATURE_BTI_DEFAULT)
#define STITCH__SC_BTI "bti c\n"
#else
#define STITCH__SC_BTI "nop\n" /* BTI C's slot: keeps the seed's offsets */
#endif
#define STITCH__SC_HEAD(name)                                                    \
	".pushsection .text.stitch_static_call, \"ax\", %progbits\n"             \
	".balign 16\n"                                                           \
	".globl stitch__sct_" #name "\n"                                         \
	".hidden stitch__sct_" #name "\n"                                        \
	".type stitch__sct_" #name ", %function\n"                               \
	"stitch__sct_" #name ":\n" STITCH__SC_BTI
#define STITCH__SC_TAIL(name)                                                    \
	".size stitch__sct_" #name ", . - stitch__sct_" #name "\n"               \
	".popsection\n" STITCH__SC_ENTRY(name)
#define STITCH__SC_LIT_LOAD(name)                                                \
	"adrp x16, stitch__sc_" #name "\n"                                       \
	"ldr x16, [x16, #:lo12:stitch__sc_" #name "]\n"                          \
	"br x16\n"

#if defined(STITCH_STATIC_CALL_A64_SEED)
/* Seed 000: starts in (A) `b func` or (B) for NULL; 0x20 holds a RET. */
#define STITCH__SC_LAYOUT STITCH_SC_A64_SEED
#define STITCH__SC_RET_OFFSET 0x20
#define STITCH__SC_W4_0(func) "b " #func "\n"
#define STITCH__SC_W4_1(func) "nop\n"
#define STITCH__SC_TRAMP_ASM(name, func, null)                                   \
	STITCH__SC_HEAD(name) STITCH__SC_W4_##null(func)                         \
	"ret\n nop\n nop\n nop\n nop\n nop\n ret\n" STITCH__SC_TAIL(name)
#elif defined(STITCH_STATIC_CALL_A64_SLOTS)
/* Two slots: 0x04 flips NOP (slot 1 @0x08) / B 0x18 (slot 2); 0x28 RET.
 * Inline call sites (module linked with --emit-relocs) are rewritten to
 * `bl target` or `bl <active slot>`, skipping 0x00 and 0x04. */
#define STITCH__SC_LAYOUT STITCH_SC_A64_SLOTS
#define STITCH__SC_RET_OFFSET 0x28
#define STITCH__SC_TRAMP_ASM(name, func, null)                                   \
	STITCH__SC_HEAD(name) "nop\n" STITCH__SC_LIT_LOAD(name)                  \
	"brk #1\n brk #1\n brk #1\n brk #1\n brk #1\n ret\n" STITCH__SC_TAIL(name)
#else
/* The default, the literal: only the 64-bit literal (the descriptor's
 * first field) ever changes; 0x10 RET. */
#define STITCH__SC_LAYOUT STITCH_SC_A64_LITERAL
#define STITCH__SC_RET_OFFSET 0x10
#define STITCH__SC_TRAMP_ASM(name, func, null)                                   \
	STITCH__SC_HEAD(name) STITCH__SC_LIT_LOAD(name) "ret\n" STITCH__SC_TAIL(name)
#endif

#elif defined(__riscv) && __riscv_xlen == 64
/*
 *   0x00  nop | jal zero, target | jal zero, 0x10    (4-byte aligned word)
 *   0x04  auipc t1, %pcrel_hi(lit)
 *   0x08  ld t1, %pcrel_lo(lit)(t1)
 *   0x0c  jr t1
 *   0x10  ret
 */
#define STITCH__SC_LAYOUT STITCH_SC_RV
#define STITCH__SC_RET_OFFSET 0x10
#define STITCH__SC_TRAMP_ASM(name, func, null)                                   \
	".pushsection .text.stitch_static_call, \"ax\", @progbits\n"             \
	".balign 16\n"                                                           \
	".option push\n.option norvc\n.option norelax\n"                         \
	".globl stitch__sct_" #name "\n"                                         \
	".hidden stitch__sct_" #name "\n"                                        \
	".type stitch__sct_" #name ", @function\n"                               \
	"stitch__sct_" #name ":\n"                                               \
	"nop\n"                                                                  \
	".Lstitch_sc_hi_" #name ": auipc t1, %pcrel_hi(stitch__sc_" #name ")\n"  \
	"ld t1, %pcrel_lo(.Lstitch_sc_hi_" #name ")(t1)\n"                        \
	"jr t1\n"                                                                \
	"ret\n"                                                                  \
	".option pop\n"                                                          \
	".size stitch__sct_" #name ", . - stitch__sct_" #name "\n"               \
	".popsection\n" STITCH__SC_ENTRY(name)
#else
#error "stitch: static calls are implemented for x86-64, AArch64 and RISC-V 64 only"
#endif

#endif /* STITCH_ARCH_STATIC_CALL_H */
