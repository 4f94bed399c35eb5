/* SPDX-License-Identifier: MIT */
/*
 * A thread interrupted inside a site by one of the program's signal
 * handlers, and still in that handler while the site is switched, goes
 * back to the site when the handler returns.  The quiescence signal (of
 * x86's first switch of five NOPs, or the one that stops the world on
 * AArch64 and RISC-V) only sees the handler's frame; the site's PC is in the
 * context the handler interrupted (src/core/signals.c keeps it).  The
 * fixups must reach it:
 *   x86-64, gcc's five 1-byte NOPs: parked at func+2, it must resume at
 *           func+5, not in the middle of the new `call`;
 *   AArch64 / RISC-V first enable: parked at func+4 (it ran the
 *           compiler's NOP at func+0, not the new MOV / AUIPC), it must be
 *           replayed from func+0.
 * Without that, the released thread crashes or returns to garbage.  Each
 * round parks the worker there with a handler installed by sigaction(),
 * enables tracing (a quiescence or a stopped world), releases it, and checks that its call
 * returns the right value and the thread goes on calling.
 * Under qemu-user this runs with -singlestep so a signal can land there.
 */
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "arch/arch.h"
#include "common/check.h"
#include "common/park.h"
#include "graph_funcs.h"
#include "stitch/ftrace.h"

static int (*volatile target)(int) = g_nested_target;
static atomic_int stop;
static atomic_ulong wrong;
static atomic_ulong parked_call_done; /* calls finished since the release */

static void *worker(void *arg)
{
	(void)arg;
	park_worker_tid = (pid_t)syscall(SYS_gettid);
	int v = 0;
	while (!atomic_load(&stop)) {
		v = (v + 1) & 0xffff;
		atomic_fetch_add(&park_progress, 1);
		if (target(v) != v * 5 + 1)
			atomic_fetch_add(&wrong, 1);
		if (atomic_load(&park_release))
			atomic_fetch_add(&parked_call_done, 1);
	}
	return NULL;
}

static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
}

int main(void)
{
	park_install(SIGUSR1);
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());

	struct stitch_ftrace_site_info si;
	CHECK(stitch_ftrace_lookup("g_nested_target", &si) == 0, "lookup: %s", stitch_last_error());
	uintptr_t at = si.site;
#if defined(__x86_64__)
	static const uint8_t five_nops[5] = { 0x90, 0x90, 0x90, 0x90, 0x90 };
	if (memcmp((const void *)si.site, five_nops, 5) != 0) {
		/* clang's single 5-byte NOP switches with int3: no PC to fix */
		printf("test_ftrace_nested: site is one instruction (clang): nothing to fix up, skipped\n");
		return check_summary("test_ftrace_nested");
	}
	at = si.site + 2;
#endif
	pthread_t w;
	pthread_create(&w, NULL, worker, NULL);
	while (!atomic_load(&park_progress))
		sched_yield();

	static struct stitch_ftrace_ops ops = { .func = on_entry };
	int rounds = 0, parked_rounds = 0;
	for (; rounds < 3; rounds++) {
		if (!park_at(at))
			continue;
		parked_rounds++;
		/* the first enable asks (x86) or stops (AArch64, RISC-V) every
		 * thread while the worker sits in our handler */
		int err = stitch_ftrace_register(&ops, "g_nested_target");
		CHECK(err == 0, "register: %s", stitch_last_error());
		atomic_store(&parked_call_done, 0);
		unpark();
		/* the interrupted call completes, and the worker goes on */
		while (atomic_load(&parked_call_done) < 2)
			sched_yield();
		CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
		/* x86: sites stay one 5-byte NOP after the first enable, so only
		 * the first round has five NOPs to land in */
#if defined(__x86_64__)
		break;
#endif
	}
	atomic_store(&stop, 1);
	pthread_join(w, NULL);
	printf("test_ftrace_nested: parked at %#lx (site %#lx) in %d round(s), %lu calls, %lu wrong\n",
	       (unsigned long)at, (unsigned long)si.site, parked_rounds, atomic_load(&park_progress), atomic_load(&wrong));
	CHECK(parked_rounds > 0, "the worker was never parked at %#lx", (unsigned long)at);
	CHECK_EQ(atomic_load(&wrong), 0);
	return check_summary("test_ftrace_nested");
}
