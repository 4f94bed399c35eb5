/* SPDX-License-Identifier: MIT */
/*
 * Preemption-point coverage for function-entry sites (the harness of
 * tests/stress/preempt_keys.c applied to tracing).  A worker calls a traced
 * function in a loop; the harness parks it - a signal handler of the
 * program, installed with sigaction(), spins until released - exactly at
 * one instruction boundary of the site, at step p of a switch (0: before
 * the first store; k: after the k-th sync), and releases it after step
 * q >= p.  Then it checks that one call: it returned the right value, and
 * it was traced or not as the protocol says:
 *
 *   enable, released after the last step:
 *     at the site's first instruction                 -> traced
 *     inside gcc's five NOPs (x86, first enable,
 *       moved to func+5 by the quiescence)            -> not traced
 *     at func+2..func+6 (AArch64/RISC-V, replayed
 *       from func+0 when the site is first prepared)  -> traced
 *     past the site                                   -> not traced
 *   disable, released after the last step             -> not traced
 *   released earlier                                  -> either
 *
 * Switches that stop the world (first enables on AArch64/RISC-V write
 * MOV/AUIPC) have one step: the stop, during which the worker is parked in
 * the program's handler, so the library reaches the site's PC only
 * through src/core/signals.c.  So does the quiescence of x86's first
 * enable of gcc's five NOPs (three steps, the quiescence between the
 * first two): a worker parked inside the NOPs is moved past them there.
 * Inside the NOPs it can only be parked at p = 0: once the int3 is synced
 * no thread gets past byte 0.  "first stopped" (x86, five NOPs) is that
 * first enable beside a thread that blocks SIGTRAP, asleep: the library
 * stops the world instead, and its park handler moves the worker past the
 * NOPs.  Every cell (switch, kind, offset, p, q) that is reachable must be
 * hit; the table is printed.
 * Under qemu-user: -singlestep.
 *
 *   preempt_ftrace [repetitions per cell]   (default 2)
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
#include "core/internal.h"
#include "funcs.h"
#include "stitch/ftrace.h"

static volatile int target_index;
static atomic_int stop;
static atomic_int parked_traced; /* the parked call ran the callback */
static atomic_int parked_result, parked_result_ready;

static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	if (atomic_load(&park_progress) == atomic_load(&parked_call))
		atomic_store(&parked_traced, 1);
}

static void *worker(void *arg)
{
	(void)arg;
	park_worker_tid = (pid_t)syscall(SYS_gettid);
	unsigned long id = 0;
	while (!atomic_load(&stop)) {
		atomic_store(&park_progress, ++id);
		int i = target_index; /* one read: the function and its argument agree */
		int v = tf_table[i](i);
		if (atomic_load(&parked_call) == id) {
			atomic_store(&parked_result, v == 4 * i);
			atomic_store(&parked_result_ready, 1);
		}
	}
	return NULL;
}

/* park_at, with this test's record of the parked call reset */
static bool park_call_at(uintptr_t pc)
{
	atomic_store(&parked_traced, 0);
	atomic_store(&parked_result_ready, 0);
	return park_at(pc);
}

/* The plan for the switch in flight (steps counted over the whole switch). */
static unsigned plan_p, plan_q, step_now;
static uintptr_t plan_pc;
static bool plan_parked, counting;

static void step_hook(unsigned step)
{
	if (!counting || step == 0)
		return;
	step_now++;
	if (step_now == plan_p)
		plan_parked = park_call_at(plan_pc);
	if (step_now == plan_q && plan_parked)
		unpark();
}

/* ---- cells ------------------------------------------------------------------ */

enum { SW_FIRST, SW_FIRST_STOPPED, SW_ENABLE, SW_DISABLE, SW_COUNT };
static const char *const sw_name[SW_COUNT] = { "first enable", "first stopped", "enable", "disable" };
enum { EXPECT_ANY, EXPECT_TRACED, EXPECT_UNTRACED };

#define MAX_OFF 8
#define MAX_STEPS 3
struct cell {
	unsigned hits, wrong, unreached;
};
static struct cell table[SW_COUNT][MAX_OFF][MAX_STEPS + 1][MAX_STEPS + 1];

struct layout {
	unsigned noff;
	uintptr_t off[MAX_OFF];  /* from func */
	int expect[MAX_OFF];     /* when released after the last step */
	bool before_only[MAX_OFF]; /* reachable at p = 0 only (x86: inside five NOPs) */
	unsigned steps;          /* syncs of the switch */
	bool stopped;            /* the switch stops the world: p = 0 only */
	bool used;
};
static struct layout layouts[SW_COUNT];

static struct stitch_ftrace_ops ops = { .func = on_entry };
static uintptr_t funcs[TF_COUNT], sites[TF_COUNT];
static int next_fresh;

static int enable_fn(int i)
{
	return stitch_ftrace_register_ips(&ops, &funcs[i], 1);
}

static int disable_fn(void)
{
	return stitch_ftrace_unregister(&ops);
}

/* Switch function i with the cell's plan; record the outcome. */
static void run_cell(int sw, int i, unsigned o, unsigned p, unsigned q)
{
	struct layout *l = &layouts[sw];
	struct cell *c = &table[sw][o][p][q];
	target_index = i;
	/* let the worker be in this function's loop */
	unsigned long seen = atomic_load(&park_progress);
	while (atomic_load(&park_progress) < seen + 2)
		;
	plan_p = p;
	plan_q = q;
	plan_pc = funcs[i] + l->off[o];
	step_now = 0;
	plan_parked = p == 0 ? park_call_at(plan_pc) : false;
	counting = true;
	int err = sw == SW_DISABLE ? disable_fn() : enable_fn(i);
	counting = false;
	CHECK(err == 0, "%s: %s", sw_name[sw], stitch_last_error());
	if (q == 0 && plan_parked)
		unpark();
	if (!plan_parked) {
		c->unreached++;
		if (atomic_load(&park_pc))
			unpark();
		return;
	}
	if (atomic_load(&park_pc) || !atomic_load(&park_release))
		unpark(); /* q beyond the steps this run took */
	while (!atomic_load(&parked_result_ready))
		sched_yield();
	bool traced = atomic_load(&parked_traced);
	bool ok = atomic_load(&parked_result) == 1;
	int want = q == l->steps ? l->expect[o] : EXPECT_ANY;
	if (sw == SW_DISABLE && q == l->steps)
		want = EXPECT_UNTRACED;
	if (want == EXPECT_TRACED)
		ok = ok && traced;
	else if (want == EXPECT_UNTRACED)
		ok = ok && !traced;
	c->hits++;
	c->wrong += !ok;
}

/*
 * A thread that blocks SIGTRAP and sleeps in a system call while
 * sigtrap_sleeper_on is 1 (x86, "first stopped"): every int3 batch then
 * stops the world instead (src/core/batch.c), parking it too.
 */
static atomic_int sigtrap_sleeper_on, sigtrap_sleeper_ready;
static pthread_t sigtrap_sleeper_thread;

static void *sigtrap_sleeper(void *arg)
{
	(void)arg;
	sigset_t trap;
	sigemptyset(&trap);
	sigaddset(&trap, SIGTRAP);
	pthread_sigmask(SIG_BLOCK, &trap, NULL);
	atomic_store(&sigtrap_sleeper_ready, 1);
	while (atomic_load(&sigtrap_sleeper_on))
		syscall(SYS_futex, &sigtrap_sleeper_on, FUTEX_WAIT_PRIVATE, 1, NULL, NULL, 0);
	return NULL;
}

static void sigtrap_sleeper_start(void)
{
	atomic_store(&sigtrap_sleeper_on, 1);
	atomic_store(&sigtrap_sleeper_ready, 0);
	pthread_create(&sigtrap_sleeper_thread, NULL, sigtrap_sleeper, NULL);
	while (!atomic_load(&sigtrap_sleeper_ready))
		sched_yield();
}

static void sigtrap_sleeper_stop(void)
{
	atomic_store(&sigtrap_sleeper_on, 0);
	syscall(SYS_futex, &sigtrap_sleeper_on, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	pthread_join(sigtrap_sleeper_thread, NULL);
}

/* The last step before which a worker can be parked at offset o. */
static unsigned last_p(const struct layout *l, unsigned o)
{
	return l->stopped || l->before_only[o] ? 0 : l->steps;
}

static void measure(int sw, int i, struct layout *l)
{
	struct stitch_stats a, b;
	stitch_get_stats(&a);
	int err = sw == SW_DISABLE ? disable_fn() : enable_fn(i);
	CHECK(err == 0, "%s: %s", sw_name[sw], stitch_last_error());
	stitch_get_stats(&b);
	l->steps = (unsigned)(b.syncs - a.syncs);
	l->stopped = b.world_stops != a.world_stops;
	if (l->stopped)
		l->steps = 1;
	l->used = true;
}

int main(int argc, char **argv)
{
	int reps = argc > 1 ? atoi(argv[1]) : 2;
	park_install(SIGUSR1);
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());

	/* function -> site */
	int n = stitch_ftrace_site_count();
	for (int k = 0; k < n; k++) {
		struct stitch_ftrace_site_info si;
		if (stitch_ftrace_get_site_info((size_t)k, &si) != 0)
			continue;
		for (int i = 0; i < TF_COUNT; i++)
			if (si.func == (uintptr_t)tf_table[i])
				sites[i] = si.site;
	}
	for (int i = 0; i < TF_COUNT; i++) {
		funcs[i] = (uintptr_t)tf_table[i];
		CHECK(sites[i] != 0, "no site for tf_table[%d]", i);
	}
	pthread_t w;
	pthread_create(&w, NULL, worker, NULL);
	while (!atomic_load(&park_progress))
		sched_yield();

	/* The layouts: instruction boundaries before a site is first enabled,
	 * and once it was (AArch64/RISC-V keep MOV/AUIPC written). */
	uintptr_t s0 = sites[0] - funcs[0];
	struct layout *f = &layouts[SW_FIRST], *e = &layouts[SW_ENABLE], *d = &layouts[SW_DISABLE];
#if defined(__x86_64__)
	static const uint8_t five_nops[5] = { 0x90, 0x90, 0x90, 0x90, 0x90 };
	bool nops = memcmp((const void *)sites[0], five_nops, 5) == 0;
	if (nops) {
		/* gcc's five NOPs: the first enable (int3 and a quiescence)
		 * leaves one NOP5, switched from then on like -mfentry's */
		for (unsigned k = 0; k < 5; k++) {
			f->off[f->noff] = s0 + k;
			f->before_only[f->noff] = k > 0;
			f->expect[f->noff++] = k == 0 ? EXPECT_TRACED : EXPECT_UNTRACED;
		}
		f->off[f->noff] = s0 + 5;
		f->expect[f->noff++] = EXPECT_UNTRACED;
		next_fresh = 3;
		measure(SW_FIRST, 1, f);
		CHECK_EQ(disable_fn(), 0);
		/* the same offsets, stopped (p = 0 only: measure() sees the stop) */
		struct layout *fs = &layouts[SW_FIRST_STOPPED];
		*fs = *f;
		memset(fs->before_only, 0, sizeof(fs->before_only));
		sigtrap_sleeper_start();
		measure(SW_FIRST_STOPPED, 2, fs);
		CHECK_EQ(disable_fn(), 0);
		sigtrap_sleeper_stop();
		CHECK(fs->stopped, "a first enable beside a SIGTRAP blocker stops the world");
		CHECK_EQ(enable_fn(0), 0); /* function 0: prepared, for the plain switches */
		CHECK_EQ(disable_fn(), 0);
	}
	e->off[e->noff] = s0;
	e->expect[e->noff++] = EXPECT_TRACED;
	e->off[e->noff] = s0 + 5;
	e->expect[e->noff++] = EXPECT_UNTRACED;
	d->off[d->noff++] = s0;
#else
	/* s0 is func+4 (the toggled word); RISC-V with RVC has c.nops at
	 * func+0..func+6 before the first enable */
	unsigned grain = 4;
#if defined(__riscv)
	uint16_t h;
	memcpy(&h, (const void *)funcs[0], 2);
	if (h == 0x0001)
		grain = 2;
#endif
	for (uintptr_t k = 0; k < 8; k += grain) {
		f->off[f->noff] = k;
		f->expect[f->noff++] = EXPECT_TRACED; /* func+0, or replayed to it */
	}
	f->off[f->noff] = 8;
	f->expect[f->noff++] = EXPECT_UNTRACED;
	e->off[0] = 0, e->off[1] = 4, e->off[2] = 8;
	e->expect[0] = e->expect[1] = EXPECT_TRACED, e->expect[2] = EXPECT_UNTRACED;
	e->noff = 3;
	d->off[0] = 0, d->off[1] = 4;
	d->noff = 2;
	(void)s0;
	next_fresh = 2;
	measure(SW_FIRST, 1, f);
	CHECK_EQ(disable_fn(), 0);
	CHECK_EQ(enable_fn(0), 0); /* function 0: prepared, for the plain switches */
	CHECK_EQ(disable_fn(), 0);
#endif
	measure(SW_ENABLE, 0, e);
	measure(SW_DISABLE, 0, d);
	for (int sw = 0; sw < SW_COUNT; sw++)
		CHECK(!layouts[sw].used || layouts[sw].steps <= MAX_STEPS, "%s: %u steps", sw_name[sw],
		      layouts[sw].steps);

	stitch_batch_step_hook = step_hook;
	for (int rep = 0; rep < reps; rep++)
		for (int sw = 0; sw < SW_COUNT; sw++) {
			struct layout *l = &layouts[sw];
			if (!l->used)
				continue;
			if (sw == SW_FIRST_STOPPED)
				sigtrap_sleeper_start();
			for (unsigned o = 0; o < l->noff; o++)
				for (unsigned p = 0; p <= last_p(l, o); p++)
					for (unsigned q = p; q <= l->steps; q++) {
						/* start from the state before the switch */
						int i = 0;
						if (sw == SW_FIRST || sw == SW_FIRST_STOPPED)
							i = next_fresh++;
						if (sw == SW_DISABLE)
							CHECK_EQ(enable_fn(i), 0);
						if (i >= TF_COUNT)
							break;
						run_cell(sw, i, o, p, q);
						if (sw != SW_DISABLE)
							CHECK_EQ(disable_fn(), 0);
					}
			if (sw == SW_FIRST_STOPPED)
				sigtrap_sleeper_stop();
		}
	stitch_batch_step_hook = NULL;
	atomic_store(&stop, 1);
	pthread_join(w, NULL);

	printf("preemption-point coverage, function-entry sites (%s):\n",
#if defined(__x86_64__)
	       nops ? "x86-64 five 1-byte NOPs" : "x86-64 one 5-byte NOP"
#elif defined(__aarch64__)
	       "AArch64 call_ops"
#else
	       grain == 2 ? "RISC-V call_ops, RVC" : "RISC-V call_ops"
#endif
	);
	printf("  %-13s %-9s %3s %3s %3s %6s %6s\n", "switch", "at", "p", "q", "of", "hits", "wrong");
	for (int sw = 0; sw < SW_COUNT; sw++) {
		struct layout *l = &layouts[sw];
		if (!l->used)
			continue;
		for (unsigned o = 0; o < l->noff; o++)
			for (unsigned p = 0; p <= last_p(l, o); p++)
				for (unsigned q = p; q <= l->steps; q++) {
					struct cell *c = &table[sw][o][p][q];
					printf("  %-13s func+%-4lu %3u %3u %3u %6u %6u%s\n", sw_name[sw], (unsigned long)l->off[o],
					       p, q, l->steps, c->hits, c->wrong, c->hits ? "" : "   <- never exercised");
					CHECK(c->hits > 0, "%s at func+%lu, p %u, q %u: never exercised", sw_name[sw],
					      (unsigned long)l->off[o], p, q);
					CHECK(c->wrong == 0, "%s at func+%lu, p %u, q %u: %u wrong outcomes", sw_name[sw],
					      (unsigned long)l->off[o], p, q, c->wrong);
				}
	}
	return check_summary("preempt_ftrace");
}
