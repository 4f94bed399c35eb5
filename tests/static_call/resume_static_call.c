/* SPDX-License-Identifier: MIT */
/*
 * Resume points: a thread stopped at each instruction boundary inside a
 * trampoline while a transition happens, then released.
 *
 * A "parker" thread signals itself; its handler walks the trampoline from
 * its entry to the chosen offset in the code as it is *now* (emulating the
 * few instructions on the way: NOP/BTI, ADRP, ADD, LDR, AUIPC, LD, jumps),
 * so that its registers are those of a thread that entered the call and
 * was preempted exactly there, sets its context to resume at that offset
 * (return address: a landing pad), and spins until released.  Meanwhile
 * the main thread performs the transition (any stop-the-world parks the
 * parker inside its handler, as it would a preempted thread).  Released,
 * the parker resumes at the offset in the new code.  The target it runs
 * must be the one current when it stopped or the one current after the
 * transition (or none, for NULL) - never anything else, never a crash.
 *
 * Each (from state, to) transition uses a fresh static call, since the
 * seed's states depend on history.  Offsets that the from state cannot
 * reach (behind a taken branch) are skipped.  The covered (offset,
 * transition) pairs are printed; the seed's three resume points (0x08,
 * 0x0c, 0x10) must each be covered by a transition that rewrites them.
 *
 * Not for the SLOTS strategy: its grace period asks threads for their PC
 * (stitch_quiesce), and the parker's PC is in its handler, not in the
 * slot, so this method cannot stand for a thread preempted in a slot.
 */
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <ucontext.h>

#include "common/check.h"
#include "common/repeat.h"
#include "static_call/far_thunk.h"
#include <stitch/static_call.h>

#if defined(__aarch64__)
#include "arch/aarch64/insn.h"
#elif defined(__riscv)
#include "arch/riscv64/insn.h"
#else
#include "arch/x86_64/insn.h"
#endif

static atomic_int hit;
#define TGT(k) __attribute__((noinline)) static void tgt##k(void) { atomic_store(&hit, k); }
TGT(1)
TGT(2)
TGT(3)
TGT(4)
TGT(5)
TGT(6)
typedef void vfn(void);

/* 512 static calls, each used for one (from, to, offset) run */
#define DEF(x, i) STITCH_DEFINE_STATIC_CALL(rs##i, tgt1);
#define ENT(x, i) stitch_static_call_desc(rs##i),
REPEAT_256(DEF, x, 0)
REPEAT_256(DEF, x, 1)
static struct stitch_static_call *const calls[512] = { REPEAT_256(ENT, x, 0) REPEAT_256(ENT, x, 1) };

/* targets: 0 = NULL, 1 near1, 2 near2, 3 midC, 4 midD (same lo12), 5 midE (other lo12), 6 far */
static void *target[7];
static const char *const tname[7] = { "NULL", "near1", "near2", "midC", "midD", "midE", "far" };
static const int target_id[7] = { -1, 1, 2, 3, 4, 5, 6 };

/* ---- the parker ---------------------------------------------------------------- */

static sigjmp_buf land_env;
static pthread_t parker;
static atomic_int job_seq, done_seq, state; /* state: 0 idle, 1 parked, 2 unreachable */
static atomic_bool release_flag;
static struct stitch_static_call *job_sc;
static unsigned job_off;
static atomic_int result;

__attribute__((noreturn, used)) void resume_landing_c(void);
void resume_landing_c(void)
{
	siglongjmp(land_env, 1);
}

#if defined(__x86_64__)
void resume_landing(void);
__asm__(".text\n.globl resume_landing\n.hidden resume_landing\n.type resume_landing,@function\n"
	"resume_landing:\n and $-16, %rsp\n call resume_landing_c\n ud2\n");
#else
#define resume_landing resume_landing_c
#endif

/* Walk from the entry to entry+off in the current code; false if unreachable. */
static bool walk(uintptr_t t, unsigned off, uint64_t *reg)
{
	uintptr_t pc = t;
	for (int steps = 0; steps < 16; steps++) {
		if (pc == t + off)
			return true;
		if (pc < t || pc >= t + 0x40)
			return false; /* left the trampoline */
#if defined(__aarch64__)
		struct a64_insn i;
		if (a64_decode(*(const uint32_t *)pc, pc, &i) != 0)
			return false;
		switch (i.kind) {
		case A64_INSN_NOP: case A64_INSN_BTI_C: pc += 4; break;
		case A64_INSN_ADRP: reg[i.rd] = i.target; pc += 4; break;
		case A64_INSN_ADD_IMM: reg[i.rd] = reg[i.rn] + (uint64_t)i.imm; pc += 4; break;
		case A64_INSN_LDR_IMM: reg[i.rd] = *(const uint64_t *)(uintptr_t)(reg[i.rn] + (uint64_t)i.imm); pc += 4; break;
		case A64_INSN_B: pc = i.target; break;
		default: return false; /* RET, BR: the call leaves */
		}
#elif defined(__riscv)
		struct rv_insn i;
		if (rv_decode((const uint8_t *)pc, 4, pc, &i) != 0)
			return false;
		switch (i.kind) {
		case RV_INSN_NOP: pc += 4; break;
		case RV_INSN_AUIPC: reg[i.rd] = pc + (uint64_t)(i.imm * 4096); pc += 4; break;
		case RV_INSN_LD: reg[i.rd] = *(const uint64_t *)(uintptr_t)(reg[i.rs1] + (uint64_t)i.imm); pc += 4; break;
		case RV_INSN_JAL: if (i.rd != 0) return false; pc = i.target; break;
		default: return false;
		}
#else
		struct x86_insn i;
		if (x86_decode((const uint8_t *)pc, 16, pc, &i) != 0)
			return false;
		if (i.kind == X86_INSN_NOP)
			pc += i.len;
		else if (i.kind == X86_INSN_JMP_REL32 || i.kind == X86_INSN_JMP_REL8)
			pc = i.target;
		else
			return false;
		(void)reg;
#endif
	}
	return false;
}

static void park_handler(int sig, siginfo_t *info, void *ctx)
{
	(void)sig, (void)info;
	ucontext_t *uc = ctx;
	uint64_t reg[32] = { 0 };
	uintptr_t t = (uintptr_t)job_sc->tramp;
	if (!walk(t, job_off, reg)) {
		atomic_store(&state, 2);
		return;
	}
#if defined(__aarch64__)
	uc->uc_mcontext.regs[16] = reg[16];
	uc->uc_mcontext.regs[30] = (uintptr_t)resume_landing;
	uc->uc_mcontext.pc = t + job_off;
#elif defined(__riscv)
	uc->uc_mcontext.__gregs[6] = reg[6];
	uc->uc_mcontext.__gregs[1] = (uintptr_t)resume_landing;
	uc->uc_mcontext.__gregs[REG_PC] = t + job_off;
#else
	greg_t *g = uc->uc_mcontext.gregs;
	uintptr_t sp = (((uintptr_t)g[REG_RSP] - 512) & ~(uintptr_t)15) - 8;
	*(uintptr_t *)sp = (uintptr_t)resume_landing;
	g[REG_RSP] = (greg_t)sp;
	g[REG_RIP] = (greg_t)(t + job_off);
#endif
	atomic_store(&state, 1);
	while (!atomic_load(&release_flag))
		; /* parked: resumes at t + job_off when released */
}

static void *parker_main(void *arg)
{
	(void)arg;
	volatile int seen = 0;
	for (;;) {
		while (atomic_load(&job_seq) == seen)
			sched_yield();
		seen = atomic_load(&job_seq);
		if (seen < 0)
			return NULL;
		atomic_store(&hit, 0);
		if (sigsetjmp(land_env, 1) == 0) {
			pthread_kill(pthread_self(), SIGUSR1);
			/* only here if unreachable (the handler returned normally) */
			atomic_store(&result, -100);
		} else {
			atomic_store(&result, atomic_load(&hit));
		}
		atomic_store(&done_seq, seen);
	}
}

/* ---- driving --------------------------------------------------------------------- */

struct from {
	const char *name;
	int steps[3], n;
};
static const struct from froms[] = {
	{ "A(near1)", { 0 }, 0 },          { "B(NULL)", { 0 }, 1 },
	{ "C(midC)", { 3 }, 1 },           { "D(C,NULL)", { 3, 0 }, 2 },
	{ "E(C,midE)", { 3, 5 }, 2 },      { "near2 over C", { 3, 2 }, 2 },
	{ "far", { 6 }, 1 },               { "D(C,midE,NULL)", { 3, 5, 0 }, 3 },
};
#define NFROM (sizeof(froms) / sizeof(froms[0]))
static const int tos[] = { 2, 3, 4, 5, 6, 0 };
#define NTO (sizeof(tos) / sizeof(tos[0]))

int main(void)
{
	if (stitch_init() != 0)
		return fprintf(stderr, "stitch_init: %s\n", stitch_last_error()), 1;
	uintptr_t here = (uintptr_t)calls[0]->tramp;
	uint8_t *p1 = far_page(here, 1ull << 30, 0), *p2 = far_page(here, 1ull << 30, 1);
	uint8_t *pf = far_page(here, FAR_DISTANCE, 0);
	if (!p1 || !p2 || !pf)
		return fprintf(stderr, "cannot map far pages\n"), 1;
	target[0] = NULL;
	target[1] = (void *)tgt1;
	target[2] = (void *)tgt2;
	target[3] = far_stub(p1, 0, (void *)tgt3);
	target[4] = far_stub(p2, 0, (void *)tgt4);
	target[5] = far_stub(p1, 0x100, (void *)tgt5);
	target[6] = far_stub(pf, 0, (void *)tgt6);
	if (far_seal(p1) || far_seal(p2) || far_seal(pf))
		return 1;
	/* B(NULL) starts from near1 then NULL: its step list is {0} with n = 1 */

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = park_handler;
	sa.sa_flags = SA_SIGINFO;
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	pthread_create(&parker, NULL, parker_main, NULL);

	unsigned max_off = calls[0]->layout == STITCH_SC_A64_SEED ? 0x24 : 0x14, step = 4;
#if defined(__x86_64__)
	static const unsigned x86_offs[] = { 0, 5, 8 };
	(void)max_off, (void)step;
#endif
	unsigned used = 0, covered = 0, bad = 0;
	bool key[3] = { false, false, false }; /* 0x08, 0x0c, 0x10 reached while rewritten (seed) */
	printf("layout %u; covered (offset, from -> to) pairs:\n", calls[0]->layout);
	for (unsigned f = 0; f < NFROM; f++) {
		for (unsigned k = 0; k < NTO; k++) {
			char line[512];
			int ln = snprintf(line, sizeof(line), "  %-16s -> %-6s:", froms[f].name, tname[tos[k]]);
#if defined(__x86_64__)
			for (unsigned oi = 0; oi < 3; oi++) {
				unsigned off = x86_offs[oi];
#else
			for (unsigned off = 0; off < max_off; off += step) {
#endif
				if (used == 512)
					break;
				struct stitch_static_call *sc = calls[used++];
				int cur = 1;
				for (int s = 0; s < froms[f].n; s++) {
					cur = froms[f].steps[s];
					if (stitch_static_call_update_desc(sc, target[cur]) != 0) {
						fprintf(stderr, "prefix update: %s\n", stitch_last_error());
						return 1;
					}
				}
				uint8_t before[0x28];
				memcpy(before, sc->tramp, sizeof(before));
				job_sc = sc;
				job_off = off;
				atomic_store(&release_flag, false);
				atomic_store(&state, 0);
				int seq = atomic_load(&job_seq) + 1;
				atomic_store(&job_seq, seq);
				while (atomic_load(&state) == 0)
					sched_yield();
				bool parked = atomic_load(&state) == 1;
				int err = stitch_static_call_update_desc(sc, target[tos[k]]);
				CHECK(err == 0, "update %s -> %s: %s", froms[f].name, tname[tos[k]], stitch_last_error());
				atomic_store(&release_flag, true);
				while (atomic_load(&done_seq) != seq)
					sched_yield();
				if (!parked)
					continue;
				int r = atomic_load(&result);
				/* r == 0: returned without calling anything (NULL) */
				bool ok = r == 0 ? cur == 0 || tos[k] == 0 : r == target_id[cur] || r == target_id[tos[k]];
				if (!ok) {
					bad++;
					fprintf(stderr, "resumed at +%#x: %s -> %s ran %d\n", off, froms[f].name, tname[tos[k]], r);
				}
				covered++;
				ln += snprintf(line + ln, sizeof(line) - (size_t)ln, " %#x", off);
				/* the seed's resume points, with the words at 0x08.. rewritten meanwhile */
				if (ok && off >= 8 && off <= 0x10 && memcmp(before + 8, (const uint8_t *)sc->tramp + 8, 0x18) != 0)
					key[(off - 8) / 4] = true;
			}
			puts(line);
		}
	}
	atomic_store(&job_seq, -1);
	pthread_join(parker, NULL);
	CHECK(bad == 0, "%u resumed calls went to a target that was not current during their stop", bad);
	CHECK(covered > 0, "no offset was reachable");
#if defined(__aarch64__) && defined(STITCH_STATIC_CALL_A64_SEED)
	CHECK(key[0] && key[1] && key[2], "seed resume points covered while rewritten: 0x08 %d, 0x0c %d, 0x10 %d",
	      key[0], key[1], key[2]);
#else
	(void)key;
#endif
	printf("%u (offset, transition) runs with the thread stopped inside the trampoline, %u static calls\n", covered,
	       used);
	return check_summary("resume_static_call");
}
