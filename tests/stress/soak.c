/* SPDX-License-Identifier: MIT */
/*
 * Soak: every feature at once, for a bounded time.  Worker threads run
 * through static-key branches, a static call and traced functions (with
 * function_graph ops and a direct call on some of them) while the main
 * thread performs random operations on all of them: key enable/disable,
 * static-call retargets (two targets and NULL), ftrace register /
 * set_filter / unregister of entry and graph ops, direct calls moved with
 * stitch_ftrace_modify_direct.
 *
 * Checked on every call: a traced function returns its value; a
 * static-key branch takes one of its two paths; a static call reaches one
 * of its targets (each target counts what it ran).  At the end, with the
 * workers stopped: every branch agrees with its key, the static call's
 * counters add up to the calls that were not NULL, and a final counted
 * phase with one graph ops sees exactly one entry and one return per call.
 * Reports operations done, calls checked and failures (must be 0).
 *
 *   soak [SECONDS]   (default 5; STITCH_SOAK_SECONDS overrides)
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include <stitch/ftrace.h>
#include <stitch/static_call.h>
#include <stitch/static_key.h>

#include "common/check.h"
#include "funcs.h"

#define WORKERS 3
#define NKEYS 4

STITCH_DEFINE_STATIC_KEY_FALSE(k0);
STITCH_DEFINE_STATIC_KEY_FALSE(k1);
STITCH_DEFINE_STATIC_KEY_TRUE(k2);
STITCH_DEFINE_STATIC_KEY_TRUE(k3);
static struct stitch_static_key *const keys[NKEYS] = { &k0.key, &k1.key, &k2.key, &k3.key };

static __attribute__((noinline)) int branch(int k)
{
	switch (k) {
	case 0: return stitch_static_branch_unlikely(&k0) ? 1 : 0;
	case 1: return stitch_static_branch_unlikely(&k1) ? 1 : 0;
	case 2: return stitch_static_branch_likely(&k2) ? 1 : 0;
	default: return stitch_static_branch_likely(&k3) ? 1 : 0;
	}
}

static atomic_ulong sc_ran[2];
static __attribute__((noinline)) void sc_a(int *r) { *r = 1; atomic_fetch_add(&sc_ran[0], 1); }
static __attribute__((noinline)) void sc_b(int *r) { *r = 2; atomic_fetch_add(&sc_ran[1], 1); }
STITCH_DEFINE_STATIC_CALL(soak_call, sc_a);

static atomic_int stop_workers;
static atomic_ulong calls, failures, sc_reached;

static atomic_ulong entries, returns;
static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add_explicit(&entries, 1, memory_order_relaxed);
}
static void on_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
		      struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent, (void)ops;
	if (!rregs) /* nothing here leaves by longjmp */
		atomic_fetch_add(&failures, 1);
	atomic_fetch_add_explicit(&returns, 1, memory_order_relaxed);
}

static void *worker(void *arg)
{
	unsigned x = 777u + (unsigned)(uintptr_t)arg;
	while (!atomic_load(&stop_workers)) {
		x = x * 1103515245u + 12345u;
		int i = (int)((x >> 8) % TF_COUNT);
		unsigned long bad = tf_table[i](i) != 4 * i;
		int b = branch((int)(x >> 20) % NKEYS);
		bad += b != 0 && b != 1;
		int r = 0;
		stitch_static_call(soak_call)(&r);
		bad += r != 0 && r != 1 && r != 2;
		if (r)
			atomic_fetch_add_explicit(&sc_reached, 1, memory_order_relaxed);
		atomic_fetch_add_explicit(&calls, 3, memory_order_relaxed);
		if (bad)
			atomic_fetch_add(&failures, bad);
	}
	return NULL;
}

/* Direct trampolines: count and return (see test_ftrace_direct.c). */
long soak_direct_hits;
extern char soak_direct1[], soak_direct1_end[], soak_direct2[], soak_direct2_end[];
#if defined(__x86_64__)
__asm__(".text\n"
	".globl soak_direct1\nsoak_direct1:\n	lock incq soak_direct_hits(%rip)\n	ret\n"
	".globl soak_direct1_end\nsoak_direct1_end:\n"
	".globl soak_direct2\nsoak_direct2:\n	lock incq soak_direct_hits(%rip)\n	ret\n"
	".globl soak_direct2_end\nsoak_direct2_end:\n");
#elif defined(__aarch64__)
#define A64_DIRECT(n)                                                                                     \
	".p2align 2\n.globl soak_direct" #n "\nsoak_direct" #n ":\n	hint #34\n"                            \
	"	adrp x16, soak_direct_hits\n	add x16, x16, :lo12:soak_direct_hits\n"                       \
	"1:	ldaxr x17, [x16]\n	add x17, x17, #1\n	stlxr w15, x17, [x16]\n	cbnz w15, 1b\n"       \
	"	mov x16, x30\n	mov x30, x9\n	ret x16\n.globl soak_direct" #n "_end\nsoak_direct" #n "_end:\n"
__asm__(".text\n" A64_DIRECT(1) A64_DIRECT(2));
#else
#define RV_DIRECT(n)                                                                                      \
	".p2align 2\n.globl soak_direct" #n "\nsoak_direct" #n ":\n	lla t1, soak_direct_hits\n"            \
	"	li t2, 1\n	amoadd.d zero, t2, (t1)\n	jr t0\n.globl soak_direct" #n "_end\nsoak_direct" #n   \
	"_end:\n"
__asm__(".text\n" RV_DIRECT(1) ".p2align 12\n" RV_DIRECT(2));
#endif

static double now_s(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const char *env = getenv("STITCH_SOAK_SECONDS");
	double seconds = env ? atof(env) : argc > 1 ? atof(argv[1]) : 5;
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	pthread_t th[WORKERS];
	for (int i = 0; i < WORKERS; i++)
		pthread_create(&th[i], NULL, worker, (void *)(uintptr_t)i);

	/* none selects tf_d2*, which the direct call owns */
	static const char *const globs[] = { "tf_a*", "tf_b* tf_c0*", "tf_*1 !tf_d2*", "parse_* tf_d1*", "tf_c* !tf_c3*" };
	struct stitch_ftrace_ops entry_ops = { .func = on_entry };
	struct stitch_ftrace_ops graph_ops = { .func = on_entry, .ret_func = on_return };
	struct stitch_ftrace_ops direct_ops = { .direct = soak_direct1,
						.direct_size = (size_t)(soak_direct1_end - soak_direct1) };
	bool key_on[NKEYS] = { false, false, true, true };
	int sc_state = 0; /* 0 a, 1 b, 2 NULL */
	unsigned long ops_done = 0, op_errors = 0;
	unsigned x = 4242;
	double end = now_s() + seconds;
	CHECK_EQ(stitch_ftrace_register(&direct_ops, "tf_d2*"), 0);
	int direct_at = 1;
	while (now_s() < end) {
		x = x * 1103515245u + 12345u;
		int err = 0;
		switch ((x >> 16) % 6) {
		case 0: {
			int k = (int)(x >> 8) % NKEYS;
			err = key_on[k] ? stitch_static_key_disable_key(keys[k]) : stitch_static_key_enable_key(keys[k]);
			if (!err)
				key_on[k] = !key_on[k];
			break;
		}
		case 1:
			sc_state = (sc_state + 1 + (int)((x >> 8) & 1)) % 3;
			err = stitch_static_call_update(soak_call, sc_state == 0 ? sc_a : sc_state == 1 ? sc_b : NULL);
			break;
		case 2:
			err = entry_ops.priv_ ? stitch_ftrace_unregister(&entry_ops)
					      : stitch_ftrace_register(&entry_ops, globs[(x >> 8) % 5]);
			break;
		case 3:
			err = graph_ops.priv_ ? stitch_ftrace_set_filter(&graph_ops, globs[(x >> 8) % 5])
					      : stitch_ftrace_register(&graph_ops, globs[(x >> 9) % 5]);
			break;
		case 4:
			if (graph_ops.priv_ && (x & 0x100))
				err = stitch_ftrace_unregister(&graph_ops);
			break;
		default:
			direct_at = 3 - direct_at;
			err = stitch_ftrace_modify_direct(&direct_ops, direct_at == 1 ? soak_direct1 : soak_direct2,
							  (size_t)(soak_direct1_end - soak_direct1));
			break;
		}
		ops_done++;
		if (err && op_errors++ < 5)
			fprintf(stderr, "soak: operation failed: %s\n", stitch_last_error());
	}
	if (entry_ops.priv_)
		CHECK_EQ(stitch_ftrace_unregister(&entry_ops), 0);
	if (graph_ops.priv_)
		CHECK_EQ(stitch_ftrace_unregister(&graph_ops), 0);
	CHECK_EQ(stitch_ftrace_unregister(&direct_ops), 0);
	atomic_store(&stop_workers, 1);
	for (int i = 0; i < WORKERS; i++)
		pthread_join(th[i], NULL);

	/* final state, workers stopped */
	for (int k = 0; k < NKEYS; k++)
		CHECK(branch(k) == (int)key_on[k], "key %d: branch %d, key %s", k, branch(k), key_on[k] ? "on" : "off");
	CHECK_EQ(atomic_load(&sc_ran[0]) + atomic_load(&sc_ran[1]), atomic_load(&sc_reached));
	/* counted phase: one graph ops on every tf_ site, this thread calling */
	CHECK_EQ(stitch_ftrace_register(&graph_ops, "tf_*"), 0);
	atomic_store(&entries, 0);
	atomic_store(&returns, 0);
	for (int i = 0; i < TF_COUNT; i++)
		CHECK_EQ(tf_table[i](i), 4 * i);
	CHECK_EQ(atomic_load(&entries), TF_COUNT);
	CHECK_EQ(atomic_load(&returns), TF_COUNT);
	CHECK_EQ(stitch_ftrace_unregister(&graph_ops), 0);

	printf("soak: %.0f s, %lu operations (%lu failed), %lu calls checked, %lu failures, %ld direct-call hits\n",
	       seconds, ops_done, op_errors, atomic_load(&calls), atomic_load(&failures), soak_direct_hits);
	CHECK_EQ(op_errors, 0);
	CHECK_EQ(atomic_load(&failures), 0);
	CHECK(ops_done > 0, "no operation done");
	return check_summary("soak");
}
