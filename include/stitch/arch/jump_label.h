/* SPDX-License-Identifier: MIT */
/*
 * The per-architecture half of <stitch/static_key.h>: the asm-goto site.
 * Each site is one patchable instruction plus a __stitch_jump_table entry
 * (site, jump target, key|branch), all self-relative.  Not for direct use.
 *
 *   stitch_arch_static_branch(key, branch)       site starts as a NOP
 *   stitch_arch_static_branch_jump(key, branch)  site starts as a jump
 *
 * Both return false when the site falls through and true when it jumps.
 */
#ifndef STITCH_ARCH_JUMP_LABEL_H
#define STITCH_ARCH_JUMP_LABEL_H

/*
 * "?": the entry joins the section group of the code around it, so that a
 * site in a C++ inline function or template (a COMDAT group, one copy kept
 * by the linker) has its entry kept or discarded with it; in a plain
 * section the entry of a discarded copy failed the link.  GNU as and
 * LLVM's integrated assembler both know the flag.
 */
#define STITCH__JUMP_TABLE_ENTRY(key_operand)                    \
	".pushsection __stitch_jump_table, \"a?\"\n\t"           \
	".balign 8\n\t"                                          \
	".long 1b - ., %l[l_yes] - .\n\t"                        \
	".quad " key_operand " - .\n\t"                          \
	".popsection\n\t"

#if defined(__x86_64__)
/*
 * x86-64: the NOP form is always the 5-byte NOP (0f 1f 44 00 00) so that it
 * can become a jmp rel32 to any target in the function; the jump form is
 * whatever `jmp` the assembler picks (eb rel8 or e9 rel32), and its NOP is
 * then a NOP of the same length.
 */
#define STITCH__SITE_NOP "1: .byte 0x0f, 0x1f, 0x44, 0x00, 0x00\n\t"
#define STITCH__SITE_JMP "1: jmp %l[l_yes]\n\t"
#define STITCH__KEY_OPERAND "%c0"
#define STITCH__KEY_CONSTRAINT "i"
#elif defined(__aarch64__)
/* AArch64: NOP <-> B, both on the Arm ARM's list of instructions that may be swapped live. */
#define STITCH__SITE_NOP "1: nop\n\t"
#define STITCH__SITE_JMP "1: b %l[l_yes]\n\t"
#define STITCH__KEY_OPERAND "%c0"
/* "S": a symbolic address, which gcc accepts under -fPIC/-fPIE where "i" alone warns. */
#define STITCH__KEY_CONSTRAINT "Si"
#elif defined(__riscv) && __riscv_xlen == 64
/*
 * RISC-V: a 4-byte NOP <-> JAL x0.  `norvc` keeps the assembler from using
 * c.nop/c.j (2 bytes, cannot hold every JAL), `norelax` keeps the linker
 * from shrinking it, and `.balign 4` keeps the 4-byte instruction from
 * straddling a 4-byte boundary, where an instruction fetch may tear.
 */
#define STITCH__SITE_NOP                                                             \
	".balign 4\n\t.option push\n\t.option norelax\n\t.option norvc\n\t"          \
	"1: nop\n\t.option pop\n\t"
#define STITCH__SITE_JMP                                                             \
	".balign 4\n\t.option push\n\t.option norelax\n\t.option norvc\n\t"          \
	"1: jal zero, %l[l_yes]\n\t.option pop\n\t"
#define STITCH__KEY_OPERAND "%0"
#define STITCH__KEY_CONSTRAINT "i"
#else
#error "stitch: static keys are implemented for x86-64, AArch64 and RISC-V 64 only"
#endif

/*
 * Macros rather than inline functions: the key's address must reach the asm
 * as a link-time constant even at -O0, where an inline function's argument
 * is not one.  __label__ makes the labels local to each expansion.
 */
#define STITCH__STATIC_BRANCH(site, key, branch)                                              \
	__extension__({                                                                       \
		__label__ l_yes, l_done;                                                      \
		bool stitch__taken;                                                          \
		__asm__ goto(site STITCH__JUMP_TABLE_ENTRY(STITCH__KEY_OPERAND)               \
			     : : STITCH__KEY_CONSTRAINT(&((char *)(key))[(branch) ? 1 : 0])   \
			     : : l_yes);                                                      \
		stitch__taken = 0;                                                            \
		goto l_done;                                                                  \
	l_yes:                                                                                \
		stitch__taken = 1;                                                            \
	l_done:                                                                               \
		stitch__taken;                                                                \
	})

#define stitch_arch_static_branch(key, branch) STITCH__STATIC_BRANCH(STITCH__SITE_NOP, key, branch)
#define stitch_arch_static_branch_jump(key, branch) STITCH__STATIC_BRANCH(STITCH__SITE_JMP, key, branch)

#endif /* STITCH_ARCH_JUMP_LABEL_H */
