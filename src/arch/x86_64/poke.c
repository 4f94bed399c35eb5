/* SPDX-License-Identifier: MIT */
/*
 * x86-64: replacing an instruction that other threads may be executing.
 *
 * The rule (Intel SDM vol. 3, 8.1.3 "Handling Self- and Cross-Modifying
 * Code"): another processor may fetch a multi-byte instruction while it is
 * being written and see a mix of old and new bytes; a processor is only
 * guaranteed to see the new code after it executes a serialising
 * instruction.  A single byte store is never torn.  So we change byte 0 to
 * int3 first, and only rewrite the other bytes while every thread that
 * reaches the site traps instead of decoding them (the kernel's INT3
 * protocol, text_poke_bp):
 *
 *      site, 5 bytes             old: 0f 1f 44 00 00   (nop)
 *                                new: e9 xx xx xx xx   (jmp rel32)
 *
 *   step 1  byte 0 := cc          cc 1f 44 00 00       sync
 *   step 2  bytes 1..n-1 := new   cc xx xx xx xx       sync
 *   step 3  byte 0 := new         e9 xx xx xx xx       sync
 *
 * What a thread at the site executes:
 *   before step 1's sync   old, or int3 (trap)
 *   after step 1's sync    int3 (trap): bytes 1..n-1 are never decoded
 *   after step 2's sync    int3 (trap), or after step 3's store: new
 *   after step 3's sync    new
 * A thread stopped *inside* the old instruction cannot exist: the site is
 * one instruction and threads stop only at instruction boundaries, so its
 * next fetch starts at byte 0.
 *
 * Except when the old bytes are several NOPs (gcc's five one-byte NOPs at
 * a patchable function entry, NOTES section 2): a thread may be stopped
 * between two of them, and step 2 would rewrite the bytes it fetches next
 * (it would resume inside the call's displacement).  Such a batch has one
 * more step, without stopping anybody:
 *
 *   step 1b  quiesce: every other thread reports where it is (quiesce.c);
 *            one found at offsets 1..len-1 of such a site is moved past
 *            it (arch_batch_skip_nops: skipping NOPs does what they do),
 *            so every thread answers outside them in one round.
 *
 * Why that suffices: after step 1's sync a thread reaches the site only
 * through byte 0, which traps (the handler sends it past the site or to
 * the call's target); so a thread seen outside offsets 1..len-1 after
 * that sync never comes back into them, and step 2 stores bytes no thread
 * will decode.  A thread that cannot answer (it blocks the quiescence
 * signal and runs) fails the batch after the timeout, and the roll-back
 * puts byte 0 back: the tails were never written.
 * Models: models/x86-five-nops-quiesce.model (SAFE), x86-five-nops.model
 * (the same without step 1b: UNSAFE); the library's own patch logs of it
 * are checked by patchlog_test_ftrace_prepare and patchlog_stress_ftrace
 * (tests/ftrace), and models/patchlog-x86-five-nops-quiesce*.model keeps
 * one (SAFE, and UNSAFE without the quiescence).
 *
 * The trap: our SIGTRAP handler finds the site in the published table (the
 * batch's own sorted patches) and
 * emulates the *new* instruction (either is correct while the update is in
 * flight): nop -> skip, jmp -> go to target, call -> push and go.  A NOP
 * may be any of x86_decode_site()'s forms, e.g. clang's patchable entry
 * 0f 1f 44 00 08: a multi-byte NOP issues no memory operation (SDM Vol.
 * 2B, NOP), so skipping its length is all it does, whatever its
 * displacement byte.  If the
 * site is no longer in the table but its byte 0 is no longer int3, the
 * update finished between the trap and the handler: the handler rewinds
 * the PC to re-execute the now complete instruction.  If byte 0 is int3
 * but the table the handler read does not name the site, the next update
 * may have published its table and written that int3 since (the handler
 * ran late, after the update it trapped in was over): it reads the table
 * again, and only an int3 seen while one and the same table was published
 * and did not name it is someone else's.  Any other SIGTRAP (a debugger's
 * breakpoint, the program's own int3) goes to the handler that was
 * installed before ours.  The kernel picks the handler when it delivers
 * the signal, not at the trap: a thread preempted in between gets the
 * handler of that moment, which may be the program's if it replaced ours
 * since (the next update puts ours back in front).  So the wrapper that
 * runs the program's handlers (src/core/signals.c) first asks
 * arch_sigtrap_claim() too.  (Before 2026-11-27 that trap reached the
 * program's handler, which returned to byte 1 of the site: SIGILL, about
 * once in 150 runs of test_sigtrap_chain; a core dump showed it delivered
 * to the program's handler directly.)
 *
 * Pairing of barriers:
 *   writer                                   trapped thread
 *   publish table (seq_cst)                  traps_running++ (seq_cst)
 *   store cc, membarrier (step 1)            load table, look up site
 *   ... step 3, membarrier                   (not found: byte 0 != cc -> rewind;
 *                                             cc -> load table again, retry if
 *                                             it changed, else not ours)
 *   unpublish table; wait traps_running==0   traps_running--
 *   the patches may be reused
 * Models: models/x86-static-key-jmp32.model, x86-static-key-jmp8.model and
 * x86-int3-call.model (SAFE); x86-int3-call-nosync{1,2,3}.model (each sync dropped
 * in turn: UNSAFE); x86-static-key-plain-store.model (no int3: UNSAFE).
 */
#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <sched.h>
#include <stdio.h>

#include "arch/arch.h"
#include "arch/x86_64/insn.h"

/* The batch's own patches, sorted by address (batch.c): a trapped thread
 * looks its site up there and decodes the new bytes itself, so a switch of
 * 100 000 sites builds no table of its own (3 MB, written then read). */
struct trap_table {
	size_t count;
	const struct stitch_patch *patches;
};

static _Atomic(struct trap_table *) trap_table;
static _Atomic int traps_running;
static struct sigaction previous_sigtrap;

uintptr_t arch_ucontext_pc(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RIP];
}

uintptr_t arch_ucontext_sp(const ucontext_t *uc)
{
	return (uintptr_t)uc->uc_mcontext.gregs[REG_RSP];
}

void arch_ucontext_set_pc(ucontext_t *uc, uintptr_t pc)
{
	uc->uc_mcontext.gregs[REG_RIP] = (greg_t)pc;
}

/* The patch at addr in t, or NULL.  Async-signal-safe. */
static const struct stitch_patch *find_trap_site(const struct trap_table *t, uintptr_t addr)
{
	size_t lo = 0, hi = t->count;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (t->patches[mid].addr == addr)
			return &t->patches[mid];
		if (t->patches[mid].addr < addr)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

/* Run the new instruction of p (arch_batch_apply checked that it decodes
 * as one, of p's length, not int3). */
static void emulate(ucontext_t *uc, const struct stitch_patch *p)
{
	greg_t *regs = uc->uc_mcontext.gregs;
	struct x86_insn insn;
	if (x86_decode_site(p->new_bytes, p->len, p->addr, &insn) != 0)
		stitch_die("x86 int3 protocol: a published site does not decode"); /* checked before publishing */
	switch (insn.kind) {
	case X86_INSN_NOP:
		/* NOLINTNEXTLINE(bugprone-misplaced-widening-cast): greg_t and uintptr_t are both 64-bit here */
		regs[REG_RIP] = (greg_t)(p->addr + insn.len);
		break;
	case X86_INSN_JMP_REL8:
	case X86_INSN_JMP_REL32:
		regs[REG_RIP] = (greg_t)insn.target;
		break;
	case X86_INSN_CALL_REL32:
		regs[REG_RSP] -= 8;
		*(uint64_t *)regs[REG_RSP] = p->addr + insn.len;
		regs[REG_RIP] = (greg_t)insn.target;
		break;
	case X86_INSN_RET:
		regs[REG_RIP] = (greg_t) * (uint64_t *)regs[REG_RSP];
		regs[REG_RSP] += 8;
		break;
	case X86_INSN_INT3:
		/* Never published: arch_batch_apply refuses int3 as a new instruction. */
		break;
	}
}

static void chain_sigtrap(int sig, siginfo_t *info, void *context)
{
	const struct sigaction *p = &previous_sigtrap;
	/* Our handler runs with every signal blocked (ensure_sigtrap_handler);
	 * the program's runs with the mask the kernel would have given it: the
	 * interrupted code's, its sa_mask, and SIGTRAP unless SA_NODEFER. */
	if (p->sa_handler != SIG_DFL && p->sa_handler != SIG_IGN) {
		sigset_t mask = ((const ucontext_t *)context)->uc_sigmask;
		sigorset(&mask, &mask, &p->sa_mask);
		if (!(p->sa_flags & SA_NODEFER))
			sigaddset(&mask, SIGTRAP);
		pthread_sigmask(SIG_SETMASK, &mask, NULL);
	}
	if (p->sa_flags & SA_SIGINFO) {
		if (p->sa_sigaction)
			p->sa_sigaction(sig, info, context);
		return;
	}
	if (p->sa_handler == SIG_IGN)
		return;
	if (p->sa_handler == SIG_DFL) {
		/* What would have happened without us: die of SIGTRAP.  The signal
		 * is blocked while we run, so it is delivered as we return. */
		struct sigaction dfl;
		memset(&dfl, 0, sizeof(dfl));
		dfl.sa_handler = SIG_DFL;
		stitch_sigaction_raw(SIGTRAP, &dfl, NULL);
		raise(SIGTRAP);
		return;
	}
	p->sa_handler(sig);
}

bool arch_sigtrap_claim(siginfo_t *info, void *context)
{
	ucontext_t *uc = context;
	/* int3 is reported with si_code SI_KERNEL; single-step and hardware
	 * breakpoints (TRAP_TRACE, TRAP_HWBKPT) and kill() are not ours. */
	if (info->si_code != SI_KERNEL)
		return false;
	uintptr_t site = arch_ucontext_pc(uc) - 1;
	atomic_fetch_add(&traps_running, 1); /* no table is reused until we leave */
	const struct trap_table *t = atomic_load(&trap_table);
	bool ours = true;
	for (;;) {
		const struct stitch_patch *s = t ? find_trap_site(t, site) : NULL;
		if (s) {
			emulate(uc, s);
			break;
		}
		if (*(volatile const uint8_t *)site != X86_INT3) {
			/* Our update completed after the trap: run the finished instruction. */
			arch_ucontext_set_pc(uc, site);
			break;
		}
		/* An int3 there, and the table we looked in does not name the
		 * site.  Ours if an update published its table and wrote this
		 * int3 since we looked (a table is published before its int3s
		 * are stored, and x86 keeps our two loads in order): look again.
		 * The same table before and after seeing the int3 (the batch
		 * that owns it cannot end, and reuse its memory, while we hold
		 * traps_running) means the int3 is not ours. */
		const struct trap_table *again = atomic_load(&trap_table);
		if (again == t) {
			ours = false;
			break;
		}
		t = again;
	}
	atomic_fetch_sub(&traps_running, 1);
	if (ours)
		stitch_count(trap_hits, 1);
	return ours;
}

static void sigtrap_handler(int sig, siginfo_t *info, void *context)
{
	if (!arch_sigtrap_claim(info, context))
		chain_sigtrap(sig, info, context);
}

/* Install our SIGTRAP handler in front of whatever the program has now. */
static int ensure_sigtrap_handler(void)
{
	struct sigaction cur, sa;
	if (stitch_sigaction_raw(SIGTRAP, NULL, &cur) != 0)
		return stitch_fail_errno(STITCH_ESYS, "sigaction(SIGTRAP)");
	if ((cur.sa_flags & SA_SIGINFO) && cur.sa_sigaction == sigtrap_handler)
		return 0;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sigtrap_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	/* Every signal waits while the handler runs (a few instructions): a
	 * handler of the program's that ran nested in it would run with
	 * SIGTRAP blocked, and the kernel kills a process whose thread meets
	 * an int3 with SIGTRAP blocked - as a timer handler calling traced
	 * code meets the int3s of a switch. */
	sigfillset(&sa.sa_mask);
	previous_sigtrap = cur;
	if (stitch_sigaction_raw(SIGTRAP, &sa, NULL) != 0)
		return stitch_fail_errno(STITCH_ESYS, "sigaction(SIGTRAP)");
	return 0;
}

int arch_poke_init(void)
{
	return ensure_sigtrap_handler();
}

/* No handler reads the table (nor the batch's patches) after this. */
static void unpublish_trap_table(void)
{
	atomic_store(&trap_table, NULL);
	while (atomic_load(&traps_running) != 0)
		sched_yield();
}

/* The three steps' stores, each over every site (text.c merges page runs). */
static const struct stitch_store_part step1_int3 = { 0, 1, 2, STITCH_STORE_FILL, X86_INT3 };
static const struct stitch_store_part step2_tails = { 1, STITCH_MAX_INSN, 2, STITCH_STORE_NEW, 0 };
static const struct stitch_store_part step3_byte0 = { 0, 1, 0, STITCH_STORE_NEW, 0 };

/*
 * Undo after a failed step (a store that fails after the session opened,
 * practically never; a failed sync, when a seccomp filter denies
 * membarrier; or step 1b's quiescence, which a thread blocking its signal
 * fails): every site that differs from its old bytes goes back through the
 * same three steps, in reverse.  Tails that were not written are not
 * written back: after a failed step 1b a thread may still be among the
 * NOPs, which stay as they are.
 *
 * Before any tail was stored (`tails_stored` false) only byte 0s differ,
 * each an int3 or its old value: step 3 alone puts them back, and its sync
 * may fail (the very reason we are here, when step 1's sync failed)
 * without harm.  A thread whose core still runs a stale int3 traps; the
 * handler finds the table gone (or emulates the site, as during any
 * switch) and, seeing the old byte in memory, resumes at it; the trap and
 * its return serialize that core, which then fetches the old byte.  With
 * tails stored, a sync must separate each step from the next (the old
 * byte 0 must not meet a new tail): without one there is no safe way
 * back.
 */
static void roll_back(const struct stitch_patch *p, size_t n, bool tails_stored)
{
	static const uint8_t int3 = X86_INT3;
	int err = 0;
	for (int step = tails_stored ? 1 : 3; step <= 3 && !err; step++) {
		for (size_t i = 0; i < n && !err; i++) {
			if (memcmp((const void *)p[i].addr, p[i].old, p[i].len) == 0)
				continue;
			if (step == 1 && p[i].len > 1)
				err = stitch_text_store(p[i].addr, &int3, 1);
			else if (step == 2 && p[i].len > 1 &&
				 memcmp((const void *)(p[i].addr + 1), p[i].old + 1, p[i].len - 1u) != 0)
				err = stitch_text_store(p[i].addr + 1, p[i].old + 1, p[i].len - 1u);
			else if (step == 3)
				err = stitch_text_store(p[i].addr, p[i].old, 1);
		}
		if (!err && stitch_text_sync(p, n) != 0 && tails_stored)
			err = -STITCH_ESYS;
	}
	if (err)
		stitch_die("x86 int3 protocol: cannot restore code after a failed write");
}

bool arch_batch_traps(void)
{
	return true;
}

/* Async-signal-safe: whether `b` (len bytes at addr) is two or more NOP
 * instructions, gcc's five one-byte NOPs for instance. */
static bool nop_run(const uint8_t *b, size_t len, uintptr_t addr)
{
	size_t off = 0;
	unsigned count = 0;
	while (off < len) {
		struct x86_insn in;
		if (x86_decode_site(b + off, len - off, addr + off, &in) != 0 || in.kind != X86_INSN_NOP)
			return false;
		off += in.len;
		count++;
	}
	return count > 1;
}

bool arch_batch_skip_nops(uintptr_t *pc, void *arg)
{
	const struct stitch_patch_span *span = arg;
	size_t lo = 0, hi = span->n; /* the first patch at or after pc */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (span->p[mid].addr < *pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo == 0)
		return false;
	const struct stitch_patch *q = &span->p[lo - 1]; /* starts before pc */
	if (*pc >= q->addr + q->len || !nop_run(q->old, q->len, q->addr))
		return false;
	*pc = q->addr + q->len;
	return true;
}

/* A jump or call rel32 filling a 5-byte site: one instruction whatever its
 * displacement (what switching 100 000 trace sites writes and undoes: no
 * decoding of each). */
static inline bool is_rel32(const uint8_t *b, size_t len)
{
	return len == 5 && (b[0] == X86_JMP_REL32 || b[0] == X86_CALL_REL32);
}

/* Step 1b (above): no thread between the NOPs of a site whose old bytes
 * are several; `nruns` of the n patches are such sites. */
static int quiesce_nop_runs(const struct stitch_patch *p, size_t n, const bool *run, size_t nruns)
{
	struct stitch_range *r = stitch_scratch(STITCH_SCRATCH_QRANGES, nruns * sizeof(*r));
	if (!r)
		return -STITCH_ENOMEM;
	size_t k = 0;
	for (size_t i = 0; i < n; i++)
		if (run[i])
			r[k++] = (struct stitch_range){ p[i].addr + 1, p[i].addr + p[i].len };
	struct stitch_patch_span span = { p, n };
	int err = stitch_quiesce(r, k, arch_batch_skip_nops, &span); /* sorted ranges: bisected */
	if (err && err != -STITCH_ENOMEM) {
		char why[256];
		snprintf(why, sizeof(why), "%s", stitch_last_error());
		return stitch_fail(-err, "%zu site(s) made of several NOPs (such as %#lx) need every thread to say "
				   "where it is before they are first switched, and one could not: %s; nothing written",
				   k, (unsigned long)r[0].start - 1, why);
	}
	return err;
}

int arch_batch_apply(const struct stitch_patch *p, size_t n)
{
	int err = ensure_sigtrap_handler();
	if (err)
		return err;
	bool *run = stitch_scratch(STITCH_SCRATCH_NOP_RUNS, n * sizeof(*run));
	if (!run)
		return -STITCH_ENOMEM;
	size_t nruns = 0;
	for (size_t i = 0; i < n; i++) {
		/* The new bytes must be exactly one instruction filling the site:
		 * the trap emulates it.  The old, one instruction too (a thread can
		 * only be at its byte 0) or several NOPs (step 1b).  What bytes
		 * decode to, and so whether they pass, does not depend on where
		 * they are: bytes the same as the site before's passed (NOPs, by
		 * the thousand), and a jump or call rel32 (what switching trace
		 * sites writes and undoes) is one 5-byte instruction whatever its
		 * displacement.  Nothing is kept: a trap decodes its site again. */
		bool same_len = i && p[i].len == p[i - 1].len;
		bool old_ok = true, new_ok = true;
		if (same_len && stitch_same_bytes(p[i].old, p[i - 1].old, p[i].len)) {
			run[i] = run[i - 1];
		} else if (is_rel32(p[i].old, p[i].len)) {
			run[i] = false;
		} else {
			/* one instruction, or a run of NOPs */
			struct x86_insn old_insn;
			bool one = x86_decode_site(p[i].old, p[i].len, p[i].addr, &old_insn) == 0 &&
				   old_insn.len == p[i].len;
			run[i] = !one && nop_run(p[i].old, p[i].len, p[i].addr);
			old_ok = one || run[i];
		}
		nruns += run[i];
		if (!(same_len && stitch_same_bytes(p[i].new_bytes, p[i - 1].new_bytes, p[i].len)) &&
		    !is_rel32(p[i].new_bytes, p[i].len)) {
			struct x86_insn new_insn;
			new_ok = x86_decode_site(p[i].new_bytes, p[i].len, p[i].addr, &new_insn) == 0 &&
				 new_insn.len == p[i].len && new_insn.kind != X86_INSN_INT3;
		}
		if (!old_ok || !new_ok) {
			char a[3 * STITCH_MAX_INSN + 1], b[3 * STITCH_MAX_INSN + 1];
			return stitch_fail(STITCH_EUNKNOWN,
					   "site %#lx: %s -> %s is not one known instruction (or a run of NOPs) "
					   "replaced by one instruction of the same length",
					   (unsigned long)p[i].addr, stitch_hex(a, p[i].old, p[i].len),
					   stitch_hex(b, p[i].new_bytes, p[i].len));
		}
	}
	err = stitch_text_open_checked(p, n); /* batch.c checked these very patches */
	if (err)
		return err;
	struct trap_table table = { n, p }; /* patches are sorted by address (batch.c) */
	atomic_store(&trap_table, &table);

	/* step 1: int3 over byte 0 of every site longer than one byte */
	bool any_long = false, tails_stored = false;
	for (size_t i = 0; i < n; i++)
		any_long |= p[i].len > 1;
	if (any_long) {
		err = stitch_text_store_patches(p, n, &step1_int3);
		if (!err)
			err = stitch_text_sync(p, n);
		if (!err && nruns)
			err = quiesce_nop_runs(p, n, run, nruns); /* step 1b */
		/* step 2: the tails, which no thread decodes while byte 0 is int3
		 * (tails that do not change are not stored) */
		if (!err) {
			tails_stored = true; /* some, even if the store fails */
			err = stitch_text_store_patches(p, n, &step2_tails);
		}
		if (!err)
			err = stitch_text_sync(p, n);
	}
	/* step 3: the new byte 0 completes every site at once */
	if (!err)
		err = stitch_text_store_patches(p, n, &step3_byte0);
	if (!err)
		err = stitch_text_sync(p, n);
	if (err) {
		int saved = err;
		roll_back(p, n, tails_stored);
		err = saved;
	}
	int cerr = stitch_text_close();
	unpublish_trap_table();
	return err ? err : cerr;
}

/* ---- backend self-test probe -------------------------------------------- */

int stitch_x86_probe(void);
__asm__(".text\n"
	".p2align 4\n"
	".globl stitch_x86_probe\n"
	".hidden stitch_x86_probe\n"
	".type stitch_x86_probe, @function\n"
	"stitch_x86_probe:\n"
	"	movl $1, %eax\n" /* b8 01 00 00 00: the immediate's low byte is patched */
	"	ret\n"
	".size stitch_x86_probe, . - stitch_x86_probe\n");

void arch_probe_describe(struct arch_probe *p)
{
	memset(p, 0, sizeof(*p));
	p->addr = (uintptr_t)stitch_x86_probe + 1;
	p->len = 1;
	p->old_bytes[0] = 1;
	p->new_bytes[0] = 2;
	p->run = stitch_x86_probe;
}

bool arch_procmem_word_atomic(void)
{
	/* Every store the x86 protocol relies on being atomic is one byte. */
	return true;
}

bool arch_procmem_runs(void)
{
	/* Every store the protocols rely on being atomic is one byte (above); a
	 * longer copy that rewrites bytes with their own values changes nothing
	 * a fetch could tell apart. */
	return true;
}

void arch_flush_icache_range(uintptr_t start, uintptr_t end)
{
	/* Coherent instruction caches; the sync's serialisation is what matters. */
	(void)start;
	(void)end;
}

bool arch_flush_icache_is_nop(void)
{
	return true;
}

int arch_sync_all_threads(void)
{
	return -1; /* membarrier SYNC_CORE is the way on x86 */
}
