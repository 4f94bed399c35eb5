/* SPDX-License-Identifier: MIT */
/*
 * 4 threads call traced functions in a loop while the main thread
 * registers, re-filters and unregisters several ops.  Checks: no crash, no
 * wrong return value, every callback is of an ops that is registered at
 * that moment (never after its unregister returned), and once the churn is
 * over an ops on every site counts exactly the calls made.  Two of the ops
 * are function_graph ops (ret_func): their returns obey the same rules,
 * and in the counted phase every call's return is seen exactly once.
 *
 *   stress_ftrace [ROUNDS]   (default 60)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <stitch/ftrace.h>

#include "common/check.h"
#include "funcs.h"

#define WORKERS 4
#define NOPS 3

struct tracer {
	struct stitch_ftrace_ops ops;
	_Atomic int alive; /* set before register, cleared after unregister returns */
	_Atomic unsigned long calls;
	_Atomic unsigned long returns;
};
static struct tracer tracers[NOPS];
static _Atomic unsigned long phantom, foreign;
static _Atomic int stop_workers, workers_go, workers_waiting;
static _Atomic unsigned long worker_calls[WORKERS];
static _Atomic long budget; /* phase 2: calls left to make */

static void cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)regs;
	struct tracer *t = NULL;
	for (int i = 0; i < NOPS; i++)
		if (ops == &tracers[i].ops)
			t = &tracers[i];
	if (!t) {
		atomic_fetch_add(&foreign, 1);
		return;
	}
	if (!atomic_load(&t->alive))
		atomic_fetch_add(&phantom, 1);
	atomic_fetch_add(&t->calls, 1);
}

static void ret_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent;
	struct tracer *t = NULL;
	for (int i = 0; i < NOPS; i++)
		if (ops == &tracers[i].ops)
			t = &tracers[i];
	if (!t || !rregs) { /* no longjmp here: a NULL rregs is as wrong as a stranger */
		atomic_fetch_add(&foreign, 1);
		return;
	}
	if (!atomic_load(&t->alive))
		atomic_fetch_add(&phantom, 1);
	atomic_fetch_add(&t->returns, 1);
}

static _Atomic unsigned long wrong;

static void *worker(void *arg)
{
	int id = (int)(intptr_t)arg;
	unsigned x = 12345u + (unsigned)id;
	while (!atomic_load(&stop_workers)) {
		x = x * 1103515245u + 12345u;
		int i = (int)((x >> 8) % TF_COUNT);
		if (tf_table[i](i) != 4 * i)
			atomic_fetch_add(&wrong, 1);
		if ((x & 255) == 0 && recurse(3) != 3)
			atomic_fetch_add(&wrong, 1);
		worker_calls[id]++;
	}
	/* phase 2: a fixed number of calls with a stable tracer */
	atomic_fetch_add(&workers_waiting, 1);
	while (!atomic_load(&workers_go))
		;
	while (atomic_fetch_sub(&budget, 1) > 0) {
		x = x * 1103515245u + 12345u;
		int i = (int)((x >> 8) % TF_COUNT);
		if (tf_table[i](i) != 4 * i)
			atomic_fetch_add(&wrong, 1);
	}
	return NULL;
}

static void unreg(struct tracer *t)
{
	int err = stitch_ftrace_unregister(&t->ops);
	CHECK(err == 0, "unregister: %s", stitch_last_error());
	if (!err)
		atomic_store(&t->alive, 0);
}

static void reg(struct tracer *t, const char *filter)
{
	atomic_store(&t->alive, 1);
	int err = stitch_ftrace_register(&t->ops, filter);
	CHECK(err == 0, "register %s: %s", filter, stitch_last_error());
	if (err)
		atomic_store(&t->alive, 0);
}

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? atoi(argv[1]) : 60;
	/* narrow first: the sites' first enables (x86: gcc's five NOPs, with a
	 * quiescence; AArch64/RISC-V: a stopped world) spread over several
	 * rounds while the workers run through every function */
	static const char *const globs[] = { "tf_a*", "tf_b* tf_c*", "tf_*1 recurse", "tf_d* !tf_d3*", "parse_*", "*" };
	const int nglobs = (int)(sizeof(globs) / sizeof(globs[0]));
	for (int i = 0; i < NOPS; i++)
		tracers[i].ops.func = cb;
	tracers[0].ops.ret_func = ret_cb;
	tracers[1].ops.ret_func = ret_cb;
	CHECK_EQ(stitch_init(), 0);
	pthread_t th[WORKERS];
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&th[i], NULL, worker, (void *)(intptr_t)i);

	for (int r = 0; r < rounds; r++) {
		struct tracer *t = &tracers[r % NOPS];
		if (t->ops.priv_ == NULL)
			reg(t, globs[r % nglobs]);
		else if (r % 4 == 3)
			unreg(t);
		else {
			int err = stitch_ftrace_set_filter(&t->ops, globs[(r * 7) % nglobs]);
			CHECK(err == 0, "set_filter: %s", stitch_last_error());
		}
	}
	for (int i = 0; i < NOPS; i++)
		if (tracers[i].ops.priv_)
			unreg(&tracers[i]);
	atomic_store(&stop_workers, 1);

	/* phase 2: exactly counted, once no worker is still in a phase-1 call */
	while (atomic_load(&workers_waiting) < WORKERS)
		;
	const long calls = 40000;
	reg(&tracers[0], "tf_*");
	atomic_store(&tracers[0].calls, 0);
	atomic_store(&tracers[0].returns, 0);
	atomic_store(&budget, calls);
	atomic_store(&workers_go, 1);
	unsigned long total = 0;
	for (int i = 0; i < WORKERS; i++) {
		pthread_join(th[i], NULL);
		total += worker_calls[i];
	}
	CHECK_EQ(atomic_load(&tracers[0].calls), calls);
	CHECK_EQ(atomic_load(&tracers[0].returns), calls);
	unreg(&tracers[0]);

	CHECK_EQ(wrong, 0);
	CHECK_EQ(phantom, 0);
	CHECK_EQ(foreign, 0);
	struct stitch_stats st;
	stitch_get_stats(&st);
	printf("stress_ftrace: %d rounds, %lu worker calls, %llu batches, %llu syncs, %llu trap hits, %llu fixups\n",
	       rounds, total, (unsigned long long)st.batches, (unsigned long long)st.syncs,
	       (unsigned long long)st.trap_hits, (unsigned long long)st.quiesce_fixups);
	return check_summary("stress_ftrace");
}
