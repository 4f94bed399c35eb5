/* SPDX-License-Identifier: MIT */
/*
 * AArch64: replacing an instruction that other threads may be executing.
 *
 * The rule (Arm ARM, B2.2.5 "Concurrent modification and execution of
 * instructions", CMODX): a 32-bit instruction may be overwritten while
 * other PEs execute it, without synchronisation, only if both the old and
 * the new instruction are one of B, BL, B.cond, CBZ, CBNZ, TBZ, TBNZ, NOP,
 * BRK, ISB, SVC, HVC, SMC; a PE then executes either the old or the new
 * one.  Any other change needs the location not to be executed meanwhile.
 *
 *      site            old: d503201f  nop
 *                      new: 14xxxxxx  b target
 *
 *   step 1  store the new word (one aligned 32-bit store: single-copy atomic)
 *   step 2  DC CVAU; DSB ISH; IC IVAU; DSB ISH; ISB on this thread
 *           (__builtin___clear_cache), then membarrier(SYNC_CORE): every
 *           other thread takes a context-synchronising event before it
 *           returns to user space.
 *
 * What a thread at the site executes: before step 2 completes, old or new
 * (CMODX); after it, new.  A thread is never "inside" a 4-byte instruction.
 * Changes outside the CMODX list are refused here, before any write; the
 * protocols that need them (static calls' far targets) stop or quiesce
 * threads first and do not come through this path.
 * Models: models/aarch64-static-key.model (SAFE), models/peer-xray-arm64-sled.model
 * (a non-CMODX rewrite by plain stores: UNSAFE).  Every operation the library
 * performs can also be recorded and checked: docs/patch-log.md.
 */
#include <string.h>
#include <ucontext.h>

#include "arch/aarch64/insn.h"
#include "arch/arch.h"

uintptr_t arch_ucontext_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.pc;
}

uintptr_t arch_ucontext_sp(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.sp;
}

void arch_ucontext_set_pc(ucontext_t *uc, uintptr_t pc)
{
	uc->uc_mcontext.pc = pc;
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
	for (size_t i = 0; i < n; i++) {
		uint32_t old_insn, new_insn;
		if (p[i].len != 4 || p[i].addr % 4 != 0)
			return stitch_fail(STITCH_EALIGN, "site %#lx: AArch64 patches are one aligned 4-byte instruction",
					   (unsigned long)p[i].addr);
		memcpy(&old_insn, p[i].old, 4);
		memcpy(&new_insn, p[i].new_bytes, 4);
		if (!a64_insn_cmodx_safe(old_insn) || !a64_insn_cmodx_safe(new_insn))
			return stitch_fail(STITCH_EINVAL,
					   "site %#lx: %08x -> %08x may not be changed while other threads run it "
					   "(Arm ARM B2.2.5: both must be B, BL, B.cond, CB(N)Z, TB(N)Z, NOP, BRK, ISB, "
					   "SVC, HVC or SMC)",
					   (unsigned long)p[i].addr, old_insn, new_insn);
	}
	/* steps 1 and 2 */
	return stitch_text_store_all_and_sync(p, n);
}

/* ---- backend self-test probe -------------------------------------------- */

int stitch_a64_probe(void);
__asm__(".text\n"
	".p2align 3\n"
	".globl stitch_a64_probe\n"
	".hidden stitch_a64_probe\n"
	".type stitch_a64_probe, %function\n"
	"stitch_a64_probe:\n"
	"	movz w0, #1\n" /* 52800020, becomes movz w0, #2 (52800040) */
	"	ret\n"
	".size stitch_a64_probe, . - stitch_a64_probe\n");

void arch_probe_describe(struct arch_probe *p)
{
	static const uint32_t movz_w0_1 = 0x52800020u, movz_w0_2 = 0x52800040u;
	memset(p, 0, sizeof(*p));
	p->addr = (uintptr_t)stitch_a64_probe;
	p->len = 4;
	memcpy(p->old_bytes, &movz_w0_1, 4);
	memcpy(p->new_bytes, &movz_w0_2, 4);
	p->run = stitch_a64_probe;
}

bool arch_procmem_word_atomic(void)
{
	/* The kernel's memcpy copies 4..7 bytes with two overlapping 32-bit
	 * loads and stores; for an aligned 4-byte write both stores are the
	 * whole word, each single-copy atomic. */
	return true;
}

bool arch_procmem_runs(void)
{
	/* A long copy by the kernel's memcpy may cover an instruction word with
	 * two stores when the run does not start word-aligned: torn. */
	return false;
}

void arch_flush_icache_range(uintptr_t start, uintptr_t end)
{
	__builtin___clear_cache((char *)start, (char *)end);
}

bool arch_flush_icache_is_nop(void)
{
	return false;
}

int arch_sync_all_threads(void)
{
	return -1; /* membarrier SYNC_CORE is the way on arm64 */
}
