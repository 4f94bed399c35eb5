/* SPDX-License-Identifier: MIT */
/*
 * Parking a worker thread exactly at a chosen PC, for the preemption-point
 * tests (tests/stress/preempt_keys.c, tests/ftrace/preempt_ftrace.c,
 * tests/ftrace/test_ftrace_nested.c): a signal is sent to the worker until
 * its handler finds it interrupted at that PC; the handler then waits (on a
 * futex) until released.
 *
 * Natively a signal almost never interrupts a thread exactly between a
 * `call` and the first instruction of the callee (instructions that retire
 * together are never an interrupt boundary in practice), so on x86 the
 * handler single-steps the worker (EFLAGS.TF) until it stands at the
 * chosen PC.  The single-step traps are SIGTRAPs with si_code TRAP_TRACE,
 * which the library's int3 handler passes on to park_trace_handler.  Under
 * qemu the AArch64 and RISC-V runs use -singlestep instead.
 *
 * The test: sets park_signal and installs park_handler for it (and, on
 * x86, park_trace_handler for SIGTRAP); sets park_worker_tid from the
 * worker, which bumps park_progress once per call (before the call, so
 * that parked_call is the call that was parked).
 */
#ifndef STITCH_TEST_PARK_H
#define STITCH_TEST_PARK_H

#include <errno.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <string.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <sys/syscall.h>
#include <ucontext.h>
#include <unistd.h>

#include "arch/arch.h"

static int park_signal;
static pid_t park_worker_tid;
static atomic_ulong park_progress;  /* the worker's call counter */
static atomic_ulong parked_call;    /* park_progress when it parked */
static atomic_uintptr_t park_pc;    /* park when interrupted exactly here; 0: no plan */
static atomic_int parked, park_answered, park_release;

static void park_here(void)
{
	atomic_store(&parked_call, atomic_load(&park_progress));
	atomic_store(&parked, 1);
	while (!atomic_load(&park_release))
		syscall(SYS_futex, &park_release, FUTEX_WAIT_PRIVATE, 0, NULL, NULL, 0);
}

#if defined(__x86_64__)
#define PARK_X86_TF 0x100
static void park_trace_handler(int sig, siginfo_t *info, void *ctx)
{
	(void)sig, (void)info;
	int saved = errno;
	ucontext_t *uc = ctx;
	if (arch_ucontext_pc(uc) == atomic_load(&park_pc)) {
		uc->uc_mcontext.gregs[REG_EFL] &= ~PARK_X86_TF;
		/* Parked, the worker must look like a thread at that PC: inside
		 * this SIGTRAP handler it blocks SIGTRAP, and the library would
		 * then switch in a stopped world instead of the int3 protocol
		 * under test (src/core/batch.c).  The mask of the interrupted
		 * code comes back at the handler's return. */
		sigset_t trap;
		sigemptyset(&trap);
		sigaddset(&trap, SIGTRAP);
		sigprocmask(SIG_UNBLOCK, &trap, NULL);
		park_here();
		atomic_store(&park_answered, 1);
	} else if (!atomic_load(&park_pc)) {
		uc->uc_mcontext.gregs[REG_EFL] &= ~PARK_X86_TF; /* plan cancelled */
	}
	errno = saved;
}
#endif

static void park_handler(int sig, siginfo_t *info, void *ctx)
{
	(void)sig, (void)info;
	int saved = errno;
	if (arch_ucontext_pc(ctx) == atomic_load(&park_pc)) {
		park_here();
	} else {
#if defined(__x86_64__)
		/* Step until there, unless interrupted inside a SIGTRAP handler
		 * (the library's int3 emulation), where a step trap would find
		 * SIGTRAP blocked and kill the process. */
		ucontext_t *uc = ctx;
		if (!sigismember(&uc->uc_sigmask, SIGTRAP)) {
			uc->uc_mcontext.gregs[REG_EFL] |= PARK_X86_TF;
			errno = saved;
			return;
		}
#endif
	}
	atomic_store(&park_answered, 1);
	errno = saved;
}

/* Interrupt the worker until it is interrupted exactly at pc; false if that never happens. */
static bool park_at(uintptr_t pc)
{
	atomic_store(&park_release, 0);
	atomic_store(&parked, 0);
	atomic_store(&parked_call, 0);
	atomic_store(&park_pc, pc);
	unsigned rng = 1;
	for (int attempt = 0; attempt < 200000; attempt++) {
		atomic_store(&park_answered, 0);
		syscall(SYS_tgkill, getpid(), park_worker_tid, park_signal);
		while (!atomic_load(&park_answered) && !atomic_load(&parked))
			sched_yield();
		if (atomic_load(&parked))
			return true;
		/* A signal sent while the worker is still returning from the last
		 * one lands on the same PC again: let it run on first, for a
		 * varying while, so that the next one lands somewhere new. */
		unsigned long seen = atomic_load(&park_progress);
		while (atomic_load(&park_progress) == seen)
			;
		rng = rng * 1103515245u + 12345u;
		for (volatile unsigned spin = (rng >> 16) % 64; spin; spin--)
			;
	}
	atomic_store(&park_pc, 0);
	return false;
}

/* Install the handlers: park_handler for `sig` (park_signal), and on x86
 * park_trace_handler for the single-step SIGTRAPs.  Call it before
 * stitch_init(): the library's SIGTRAP handler chains to the one it finds
 * installed, and wraps the program's other handlers (src/core/signals.c). */
static void park_install(int sig)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
#if defined(__x86_64__)
	sa.sa_sigaction = park_trace_handler;
	sa.sa_flags = SA_SIGINFO;
	sigaction(SIGTRAP, &sa, NULL);
#endif
	park_signal = sig;
	sa.sa_sigaction = park_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigaction(park_signal, &sa, NULL);
}

static void unpark(void)
{
	atomic_store(&park_pc, 0);
	atomic_store(&park_release, 1);
	syscall(SYS_futex, &park_release, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
}

#endif
