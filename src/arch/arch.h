/* SPDX-License-Identifier: MIT */
/*
 * The hooks the portable core calls.  Every architecture implements each of
 * them in the file named beside it, src/arch/<arch>/<file>:
 *
 *   poke.c        the protocol that applies a batch of instruction changes
 *                 safely while other threads run, and its trap handling
 *   jump_label.c  what a static-key site looks like and how it is flipped
 *
 * Preconditions common to all hooks: the caller holds the update lock and
 * the library is initialised.
 */
#ifndef STITCH_ARCH_ARCH_H
#define STITCH_ARCH_ARCH_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <ucontext.h>

#include "core/internal.h"

/* poke.c ---------------------------------------------------------------- */

/* One-time set-up (x86: install the SIGTRAP handler). */
int arch_poke_init(void);
/*
 * A SIGTRAP that reached a handler of the program's (src/core/signals.c's
 * wrapper) may still be one of the library's: a thread that met an int3
 * of an update and was preempted before the signal was delivered gets the
 * handler installed at delivery, and the program may have replaced ours
 * meanwhile.  True if it was ours and is handled (the context now resumes
 * where it should); x86-64 only, false elsewhere.
 */
bool arch_sigtrap_claim(siginfo_t *info, void *context);

/*
 * Apply a validated batch (every site was just compared with its old
 * bytes): write the new bytes in the steps of the architecture's protocol,
 * with the syncs the protocol requires.  Other threads may be running
 * through or be stopped anywhere inside any site; each of them executes
 * the old or the new instruction, never a mix.  A patch whose change the
 * architecture cannot make live (e.g. AArch64 outside CMODX) is refused
 * with an error before anything is written.
 */
int arch_batch_apply(const struct stitch_patch *patches, size_t count);
/* Whether arch_batch_apply() makes threads that run into a site trap
 * (x86-64's int3 protocol): a thread blocking SIGTRAP must not meet it. */
bool arch_batch_traps(void);
/*
 * A stitch_pc_fixup_fn over a batch sorted by address (arg: a struct
 * stitch_patch_span).  A patch's old bytes may be several instructions
 * that are all NOPs (x86-64: gcc's five one-byte NOPs); a thread stopped
 * between two of them is moved past the patch, which only skips NOPs.
 * False (nothing moved) for any other PC, and always where no batch has
 * such patches (AArch64, RISC-V).  Async-signal-safe.
 */
struct stitch_patch_span {
	const struct stitch_patch *p;
	size_t n;
};
bool arch_batch_skip_nops(uintptr_t *pc, void *span);

/* Read and write the interrupted PC of a signal context. */
uintptr_t arch_ucontext_pc(const ucontext_t *uc);
void arch_ucontext_set_pc(ucontext_t *uc, uintptr_t pc);
/* Its stack pointer (also of a getcontext() one: where setcontext() goes). */
uintptr_t arch_ucontext_sp(const ucontext_t *uc);

/* The backend self-test's probe: a function returning 1 whose result can be
 * changed to 2 by writing `probe_new` over `probe_old` at `probe_addr`. */
struct arch_probe {
	uintptr_t addr;
	uint8_t len;
	uint8_t old_bytes[8];
	uint8_t new_bytes[8];
	int (*run)(void);
};
void arch_probe_describe(struct arch_probe *p);
/* Whether /proc/self/mem writes are known to store an aligned instruction
 * word in one single-copy-atomic access on this architecture. */
bool arch_procmem_word_atomic(void);
/* Whether the protocols rely on no store being atomic beyond one byte, so
 * that stores through /proc/self/mem may be merged into one write per run
 * of pages, the bytes between them rewritten with the values they hold
 * (text.c, stitch_text_store_patches). */
bool arch_procmem_runs(void);
/* Local instruction-cache maintenance after writing [start, end). */
void arch_flush_icache_range(uintptr_t start, uintptr_t end);
/* Whether arch_flush_icache_range() does nothing whatever the range, so
 * that a sync need not walk a batch's patches to call it (x86). */
bool arch_flush_icache_is_nop(void);
/* Extra cross-thread sync the architecture offers besides membarrier
 * (RISC-V: riscv_flush_icache for all threads); 0 if done, -1 if none. */
int arch_sync_all_threads(void);

/* jump_label.c ------------------------------------------------------------ */

/*
 * Describe the change that makes the site a jump (jump=true) or a NOP.
 * Reads the site, checks it holds one of the two forms this architecture
 * emits for a static-key site (with the entry's target), and fills *patch
 * with the current bytes as `old` and the wanted bytes as `new_bytes`.
 * Errors: -STITCH_EALIGN, -STITCH_EUNKNOWN (bytes are neither form),
 * -STITCH_ERANGE.
 */
int arch_jump_label_patch(const struct stitch_jump_site *site, bool jump, struct stitch_patch *patch);

/* static_call.c ----------------------------------------------------------- */

struct stitch_static_call;
/*
 * Check that the trampoline holds exactly what the DEFINE macro emits for
 * this architecture and layout, and set the descriptor's private state to
 * it.  Writes nothing.  -STITCH_EUNKNOWN (with the bytes) otherwise.
 */
int arch_static_call_register(struct stitch_static_call *sc);
/* The bytes of sc's trampoline (its layout's): none of them is a target
 * (a call would loop, or run the middle of an instruction). */
size_t arch_static_call_tramp_size(const struct stitch_static_call *sc);
/* -STITCH_EALIGN, naming `what`, if `target` cannot be the target of a
 * branch here (a static call's target, a direct-call trampoline). */
int arch_check_branch_target(uintptr_t target, const char *what);
/*
 * Inline call sites: a direct call (or tail jump) of a trampoline found in
 * the module's relocations (src/core/static_call.c), rewritten to call the
 * target directly while it is in range, and back to the trampoline.
 * `target` is what the site calls now (the trampoline initially; with the
 * AArch64 SLOTS strategy also one of the trampoline's slots).
 */
struct stitch_sc_site {
	uintptr_t addr;
	uintptr_t target;
	/*
	 * What the site was when its module registered: x86-64 its opcode
	 * (call or jmp), AArch64 and RISC-V its word (B or BL; JAL's link
	 * register).  A site is rewritten as the same kind for good, so a call
	 * turned into a tail jump behind our back is refused, not followed.
	 */
	uint32_t kind;
};
/*
 * Is a relocation of type `type` at address `where` (r_offset + load bias)
 * against a trampoline symbol a call site this architecture rewrites?  If
 * so set *site to the instruction's address.  Reads nothing.
 */
bool arch_static_call_reloc_site(uint32_t type, int64_t addend, uintptr_t where, uintptr_t *site);
/* Check that the bytes at `site` are a direct call/jump of sc's trampoline;
 * sets *kind (struct stitch_sc_site) if so. */
int arch_static_call_site_check(const struct stitch_static_call *sc, uintptr_t site, uint32_t *kind);
/*
 * Retarget the trampoline (and its inline sites, in the same batch) to
 * `func` (NULL: return without calling) with the architecture's protocol,
 * after checking that their bytes are those of their recorded state
 * (-STITCH_EMISMATCH, nothing written).  Sets sc->lit and, on success,
 * sites[i].target.  On error nothing was written.
 */
int arch_static_call_update(struct stitch_static_call *sc, void *func, struct stitch_sc_site *sites, size_t nsites);

/* ftrace.c ---------------------------------------------------------------- */

/*
 * One function-entry site (the core's record embeds it).  The core fills
 * `record` (the __patchable_function_entries entry, relocated);
 * arch_ftrace_site_init() fills patch/len/form/orig from the bytes it
 * finds; then the core sets `func` to the address of the symbol that
 * contains `patch`.
 */
struct arch_ftrace_site {
	uintptr_t record;
	uintptr_t func;
	uintptr_t patch;  /* the instruction toggled between its original form and the call */
	uint8_t len;      /* its length in bytes */
	uint8_t form;     /* arch private: which compiler layout was found */
	uint8_t orig[8];  /* the compiler's bytes at `patch`, restored when disabled */
	/* the core's: the record's direct word is set (the site's set is a
	 * direct call), kept beside the fields a switch reads (x86-64 enters a
	 * direct call by a call, tracers by a jump) */
	bool direct;
	uintptr_t stub;   /* what the enabled call targets (set by arch_ftrace_region_fill) */
	uintptr_t cookie; /* handed to the dispatcher (set by arch_ftrace_region_fill) */
	uintptr_t target; /* arch private: where the enabled call goes (RISC-V retarget / table modes);
			   * x86-64: func+5, which its jump-kind trampoline pushes */
};

/* Largest distance between a site and the module's trampoline region. */
uintptr_t arch_ftrace_reach(void);
/* Bytes of trampoline region a module of n sites needs. */
size_t arch_ftrace_region_size(size_t nsites);
/*
 * Read the site at `s->record`, check its bytes are one of the layouts the
 * architecture supports, fill patch/len/form/orig.  Writes nothing.
 * -STITCH_EUNKNOWN / -STITCH_EALIGN with a message naming the bytes.
 */
int arch_ftrace_site_init(struct arch_ftrace_site *s);
/*
 * Where the entry record of a function whose symbol is at `func` would
 * point, had it been compiled with the trace flags (cmake/StitchTrace.cmake):
 * for the diagnosis of a function whose record the linker dropped.  0: no
 * such place (not a layout of this architecture).
 */
uintptr_t arch_ftrace_record_of(uintptr_t func);
/*
 * Build the module's trampoline region into `buf` (the bytes that will be
 * mapped executable at `addr`, not yet live): what every site's enabled
 * call reaches, which calls stitch__ftrace_dispatch(cookies[i], ...).
 * Sets each site's stub and cookie.
 */
int arch_ftrace_region_fill(uint8_t *buf, uintptr_t addr, struct arch_ftrace_site *const *sites,
			    const uintptr_t *cookies, size_t n);
/*
 * Switch sites: enable[i] true makes site i call its stub, false puts the
 * original bytes back, with the architecture's protocol.  Every site is
 * checked against the bytes of its current state first: a site changed
 * behind our back fails the whole call with -STITCH_EMISMATCH and nothing
 * is written.  `enabled[i]` is the state the caller believes site i is in;
 * on return it is the state the site is in (enable[i] after success; on
 * error, unchanged unless the bytes were written before a late failure,
 * such as a thread that woke while the world was stopped).
 */
int arch_ftrace_apply(struct arch_ftrace_site *const *sites, bool *enabled, const bool *enable, size_t n);
/*
 * Write, in one operation, what a first enable of these disabled sites
 * would write besides the call (x86-64: gcc's five NOPs become one NOP5,
 * an int3 batch with a quiescence; AArch64: the literal and MOV X9, X30;
 * RISC-V: the literal and the AUIPC, in a stopped world), leaving them
 * disabled, so that their later switches need neither.  Sites already in that form are skipped.  On error nothing is
 * written (or, after a late failure, every site was).
 */
int arch_ftrace_prepare(struct arch_ftrace_site *const *sites, size_t n);

/*
 * Whether what we wrote at the site is gone (the site's module was
 * unloaded and loaded again at the same address: its code is the
 * compiler's again).  `enabled` is the state the core believes.  Reads only.
 */
bool arch_ftrace_site_lost(const struct arch_ftrace_site *s, bool enabled);

/*
 * Direct calls: every cookie points at a uintptr_t (the record's first
 * word) holding 0 or the address of a direct trampoline.  The common
 * trampoline reads it first and, if non-zero, jumps there with the
 * registers and stack exactly as the site's call left them (ftrace.h
 * describes the entry state per architecture).  [start, end) of the
 * common trampoline's code, for the grace period of a direct call.
 */
void arch_ftrace_tramp_range(uintptr_t *start, uintptr_t *end);

/*
 * The region's bytes were written, flushed and made RX; the architecture
 * may change the protection of parts it owns (RISC-V's table mode keeps
 * its destination table writable).  Error: the region is not used.
 */
int arch_ftrace_region_ready(uintptr_t region, size_t size);

/*
 * stitch_ftrace_modify_direct(): sites[0..n) are enabled with a direct
 * call whose trampoline moves from `from` to `to`; their records' direct
 * words already say `to`.  Rewrite whatever code reaches `from` without
 * reading that word (nothing on x86-64 and AArch64, which always read
 * it).  On error nothing is written.
 */
int arch_ftrace_retarget(struct arch_ftrace_site *const *sites, size_t n, uintptr_t from, uintptr_t to);

/*
 * Where a site's stub goes, for the record's `entry` word (x86-64: the stub
 * jumps through it): `direct` if non-zero, else the lean trampoline (lean:
 * one ops with STITCH_FTRACE_F_PRESERVES_REGS, only asked when
 * arch_ftrace_has_lean()), else the full one.  Architectures whose stubs
 * do not read the word return 0.
 */
uintptr_t arch_ftrace_entry(uintptr_t direct, bool lean);
bool arch_ftrace_has_lean(void);

/* The portable dispatcher the trampolines call (src/core/ftrace.c).  True
 * when it hooked the function's return (a shadow entry pushed, the
 * return trampoline stored in the parent slot): x86-64's jump-kind
 * trampoline then enters the function by a call (its ftrace.c). */
struct stitch_ftrace_regs;
bool stitch__ftrace_dispatch(uintptr_t cookie, uintptr_t parent_ip, struct stitch_ftrace_regs *regs);

/*
 * function_graph.  arch_ftrace_parent_slot(): where the entry trampoline
 * keeps the traced function's return address, which it restores before
 * the function runs (storing there makes the function return elsewhere),
 * and in *key the stack pointer the function will have when it returns.
 * stitch__ftrace_return: where a hooked function returns to; it saves
 * the return-value registers, calls stitch__ftrace_graph_return(key =
 * its stack pointer, the saved registers), restores them and jumps to the
 * address that returns, with the stack pointer the function returned with.
 */
struct stitch_ftrace_ret_regs;
uintptr_t *arch_ftrace_parent_slot(struct stitch_ftrace_regs *regs, uintptr_t *key);
void stitch__ftrace_return(void);
/*
 * Where a live hooked frame whose shadow entry has `key` keeps its return
 * address now (the word an unwinder reads), or NULL where that has no
 * fixed place (then found in the frame): core/ftrace_unwind.c puts the
 * real address back there before an exception or pthread_exit() unwinds
 * the stack.
 */
uintptr_t *arch_ftrace_return_slot(uintptr_t key);
/*
 * Where there is no fixed place: the word where the compilers' prologues
 * usually save the return address, in a frame spanning [sp, cfa) - the
 * tie-break when several words of the frame hold the value looked for
 * (stale copies in its padding, left by earlier calls at that depth).
 */
uintptr_t *arch_ftrace_return_slot_usual(uintptr_t sp, uintptr_t cfa);
/*
 * The return trampoline's first instruction as an unwinder sees it
 * (core/ftrace_unwind.c describes it to libgcc's unwinder): the DWARF
 * numbers, the psABI's, of the stack pointer - which is the hooked frame's
 * shadow key there - and of the return-address column.
 */
struct arch_dwarf_return {
	uint8_t sp_reg;
	uint8_t ra_column;
};
extern const struct arch_dwarf_return arch_ftrace_return_dwarf;
uintptr_t stitch__ftrace_graph_return(uintptr_t key, struct stitch_ftrace_ret_regs *rregs);

#endif /* STITCH_ARCH_ARCH_H */
