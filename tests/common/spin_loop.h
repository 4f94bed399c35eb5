/* SPDX-License-Identifier: MIT */
/*
 * spin_loop(): an endless loop at [spin_loop, spin_escape); spin_escape
 * returns.  A thread only leaves it when a PC fixup moves it out
 * (escape_fixup), which is what the quiescence tests need to observe.
 */
#ifndef STITCH_TEST_SPIN_LOOP_H
#define STITCH_TEST_SPIN_LOOP_H
#include <stdbool.h>
#include <stdint.h>

void spin_loop(void);
extern const char spin_escape[];
/* Bumped by every turn of the loop: > 0 proves a thread is inside it. */
__attribute__((visibility("hidden"))) volatile unsigned spin_count;
#if defined(__x86_64__)
__asm__(".text\n.globl spin_loop\n.globl spin_escape\n.type spin_loop, @function\n"
	"spin_loop:\n1: addl $1, spin_count(%rip)\n pause\n jmp 1b\nspin_escape:\n ret\n"
	".size spin_loop, . - spin_loop\n");
#elif defined(__aarch64__)
__asm__(".text\n.globl spin_loop\n.globl spin_escape\n.type spin_loop, %function\n"
	"spin_loop:\n1: adrp x9, spin_count\n ldr w10, [x9, :lo12:spin_count]\n add w10, w10, #1\n"
	" str w10, [x9, :lo12:spin_count]\n yield\n b 1b\nspin_escape:\n ret\n"
	".size spin_loop, . - spin_loop\n");
#elif defined(__riscv)
__asm__(".text\n.globl spin_loop\n.globl spin_escape\n.type spin_loop, @function\n"
	"spin_loop:\n1: lla t0, spin_count\n lw t1, 0(t0)\n addi t1, t1, 1\n sw t1, 0(t0)\n j 1b\n"
	"spin_escape:\n ret\n.size spin_loop, . - spin_loop\n");
#endif

static inline bool escape_fixup(uintptr_t *pc, void *arg)
{
	(void)arg;
	if (*pc >= (uintptr_t)spin_loop && *pc < (uintptr_t)spin_escape) {
		*pc = (uintptr_t)spin_escape;
		return true;
	}
	return false;
}
#endif
