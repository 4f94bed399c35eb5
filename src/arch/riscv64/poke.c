/* SPDX-License-Identifier: MIT */
/*
 * RISC-V 64: replacing an instruction that other harts may be executing.
 *
 * The rule: with Ziccif (which Linux requires for code patching), a
 * naturally aligned 32-bit instruction fetch is atomic with respect to a
 * naturally aligned 32-bit store, so a hart fetches either the old or the
 * new word.  A 4-byte instruction that straddles a 4-byte boundary (legal
 * with the C extension, where code is only 2-byte aligned) may be fetched
 * in two halves, one old and one new; such sites are refused.  fence.i
 * only orders the local hart; other harts are synchronised by the
 * riscv_flush_icache system call with flags 0 (every thread of the
 * process) and, where the kernel has it, membarrier(SYNC_CORE).
 *
 *      site (4-byte aligned)   old: 00000013  nop
 *                              new: xxxxx06f  jal zero, target
 *
 *   step 1  store the new word (one aligned 32-bit store)
 *   step 2  riscv_flush_icache(0, 0, 0); membarrier(SYNC_CORE)
 *
 * What a thread at the site executes: before step 2 completes, old or new;
 * after it, new.  Which *pairs* of instructions may be changed this way is
 * the caller's protocol (static keys: one instruction, trivially safe).
 * Models: models/riscv-static-key.model (SAFE), models/riscv-static-key-straddle.model
 * (the same site not 4-byte aligned: UNSAFE); recorded operations: docs/patch-log.md.
 *
 * The write itself: /proc/self/mem is not used (arch_procmem_word_atomic),
 * since the kernel's copy may store the word byte by byte.
 */
#include <string.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "arch/arch.h"
#include "arch/riscv64/insn.h"

#ifndef __NR_riscv_flush_icache
#define __NR_riscv_flush_icache 259
#endif

uintptr_t arch_ucontext_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.__gregs[REG_PC];
}

uintptr_t arch_ucontext_sp(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.__gregs[REG_SP];
}

void arch_ucontext_set_pc(ucontext_t *uc, uintptr_t pc)
{
	uc->uc_mcontext.__gregs[REG_PC] = pc;
}

int arch_poke_init(void)
{
	return 0;
}

bool arch_sigtrap_claim(siginfo_t *info, void *context)
{
	(void)info, (void)context;
	return false; /* no int3 protocol here */
}

bool arch_batch_traps(void)
{
	return false; /* CMODX word stores: nobody traps */
}

bool arch_batch_skip_nops(uintptr_t *pc, void *span)
{
	(void)pc, (void)span; /* every patch here is one instruction */
	return false;
}

int arch_batch_apply(const struct stitch_patch *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i].len != 4 || p[i].addr % 4 != 0)
			return stitch_fail(STITCH_EALIGN,
					   "site %#lx: a live RISC-V patch must be one 4-byte instruction on a 4-byte "
					   "boundary (a straddling instruction can be fetched torn)",
					   (unsigned long)p[i].addr);
	/* steps 1 and 2 */
	return stitch_text_store_all_and_sync(p, n);
}

/* ---- backend self-test probe -------------------------------------------- */

int stitch_rv_probe(void);
__asm__(".text\n"
	".p2align 2\n"
	".globl stitch_rv_probe\n"
	".hidden stitch_rv_probe\n"
	".type stitch_rv_probe, @function\n"
	"stitch_rv_probe:\n"
	".option push\n"
	".option norvc\n"
	"	addi a0, zero, 1\n" /* 00100513, becomes addi a0, zero, 2 (00200513) */
	"	ret\n"
	".option pop\n"
	".size stitch_rv_probe, . - stitch_rv_probe\n");

void arch_probe_describe(struct arch_probe *p)
{
	static const uint32_t li_a0_1 = 0x00100513u, li_a0_2 = 0x00200513u;
	memset(p, 0, sizeof(*p));
	p->addr = (uintptr_t)stitch_rv_probe;
	p->len = 4;
	memcpy(p->old_bytes, &li_a0_1, 4);
	memcpy(p->new_bytes, &li_a0_2, 4);
	p->run = stitch_rv_probe;
}

bool arch_procmem_word_atomic(void)
{
	return false;
}

bool arch_procmem_runs(void)
{
	/* Never the backend here (arch_procmem_word_atomic). */
	return false;
}

void arch_flush_icache_range(uintptr_t start, uintptr_t end)
{
	/* Nothing per range: the whole-process flush in arch_sync_all_threads
	 * covers this hart too, and costs one system call per sync. */
	(void)start;
	(void)end;
}

bool arch_flush_icache_is_nop(void)
{
	return true;
}

int arch_sync_all_threads(void)
{
	return syscall(__NR_riscv_flush_icache, 0, 0, 0) == 0 ? 0 : -1;
}
