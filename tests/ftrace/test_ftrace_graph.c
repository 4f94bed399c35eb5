/* SPDX-License-Identifier: MIT */
/*
 * function_graph (ret_func in struct stitch_ftrace_ops): every traced call
 * gets its return reported once, in order, with the function's real return
 * value, and the function itself returns what it computed to where it was
 * called from - through chains, recursion, tail calls, longjmp, a signal
 * handler, floating-point and two-register returns, a shadow stack that
 * overflows, and threads running while graph ops come and go.
 *
 * Built twice: test_ftrace_graph_fast (GRAPH_FAST) runs every case again
 * with the fast callback ABI (STITCH_FTRACE_F_PRESERVES_REGS): callbacks
 * that preserve every register, which x86-64 runs from its lean
 * trampolines (and the other architectures like any callback).  The
 * lean trampolines need liburcu-bp (GRAPH_FAST_LEAN: the library was
 * built with it) and its membarrier(); without them every entry takes the
 * full trampoline, with regs (which is checked then).  With liburcu both
 * builds also check that the trampolines' assembly fast paths called the
 * callbacks (all three architectures), and without it that nothing did.
 */
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "common/check.h"
#include "graph_funcs.h"
#include "stitch/ftrace.h"
#include "trampolines.h"

#ifdef GRAPH_FAST
#define CB STITCH_FTRACE_PRESERVES_REGS /* the callbacks */
#define FN(f) STITCH_FTRACE_FAST_FUNC(f)
#define RFN(f) STITCH_FTRACE_FAST_RET_FUNC(f)
#define OPS_FLAGS STITCH_FTRACE_F_PRESERVES_REGS
#if defined(__x86_64__)
#define CB_HELPER __attribute__((target("general-regs-only"))) /* what they call */
#else
#define CB_HELPER
#endif
#else
#define CB
#define FN(f) (f)
#define RFN(f) (f)
#define CB_HELPER
#define OPS_FLAGS 0u
#endif

/* ---- per-thread event log ------------------------------------------------- */

#define LOG_MAX 64
struct ev {
	char kind; /* 'E' entry, 'R' return, 'A' abandoned */
	uintptr_t ip, parent, value;
};
static __thread struct ev ev_log[LOG_MAX];
static __thread int ev_n, ev_lost;
static __thread int logging;

static const struct {
	const char *name;
	uintptr_t addr;
} names[] = {
#define N(f) { #f, (uintptr_t)f }
	N(g_chain_a), N(g_chain_b), N(g_chain_c), N(g_fact), N(g_even), N(g_odd), N(g_tail_f), N(g_tail_g),
	N(g_twice), N(g_pair_of), N(g_depth), N(g_lj_outer), N(g_lj_mid), N(g_lj_inner), N(g_raise), N(g_thread_exit),
#undef N
};

static const char *name_of(uintptr_t ip)
{
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		if (names[i].addr == ip)
			return names[i].name + 2; /* without "g_" */
	return "?";
}

static CB_HELPER void add_ev(char kind, uintptr_t ip, uintptr_t parent, uintptr_t value)
{
	if (!logging)
		return;
	if (ev_n == LOG_MAX) {
		ev_lost++;
		return;
	}
	ev_log[ev_n++] = (struct ev){ kind, ip, parent, value };
}

/* entries seen without argument registers: the x86-64 lean trampoline ran */
static atomic_long no_regs;

/*
 * Callbacks called from the trampolines' assembly fast paths (the entry
 * trampoline's one-ops path, the return trampoline's) rather than from
 * the C dispatcher or the return's C half: told by where the callback
 * returns to.  The trampolines' symbols are the library's, hidden, and
 * reachable here because this test links it statically.  (x86-64 fast
 * ABI: the lean trampoline, which stitch__ftrace_return follows.)
 */
static atomic_long entries_from_asm, returns_from_asm;

/* set: on_entry of g_even calls traced code, which must not recurse into callbacks */
static int call_from_callback;
static int from_callback_result;

static atomic_long cancel_entered, cancel_returned, cancel_abandoned; /* g_cancel_at */

static CB void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	if (ip == (uintptr_t)g_cancel_at)
		atomic_fetch_add(&cancel_entered, 1);
	(void)ops;
	if (!regs)
		atomic_fetch_add(&no_regs, 1);
	uintptr_t from = (uintptr_t)__builtin_return_address(0);
#if defined(GRAPH_FAST) && defined(__x86_64__)
	if (tramp_in_lean(from))
#else
	if (tramp_in_entry(from))
#endif
		atomic_fetch_add(&entries_from_asm, 1);
	add_ev('E', ip, parent, 0);
	if (call_from_callback && ip == (uintptr_t)g_even)
		from_callback_result = g_chain_c(1);
}

static CB void on_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
		      struct stitch_ftrace_ret_regs *rregs)
{
	(void)ops;
	if (tramp_in_return((uintptr_t)__builtin_return_address(0)))
		atomic_fetch_add(&returns_from_asm, 1);
	add_ev(rregs ? 'R' : 'A', ip, parent, rregs ? stitch_ftrace_ret_value(rregs) : 0);
	if (ip == (uintptr_t)g_cancel_at)
		atomic_fetch_add(rregs ? &cancel_returned : &cancel_abandoned, 1);
}

static struct stitch_ftrace_ops graph = { .func = FN(on_entry), .ret_func = RFN(on_return), .flags = OPS_FLAGS };

/* "E:chain_a E:chain_b R:chain_b=5 ..." */
static const char *render(void)
{
	static char buf[4096];
	size_t o = 0;
	buf[0] = 0;
	for (int i = 0; i < ev_n && o < sizeof(buf) - 64; i++) {
		const struct ev *e = &ev_log[i];
		if (e->kind == 'R')
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%sR:%s=%ld", o ? " " : "", name_of(e->ip),
					      (long)e->value);
		else
			o += (size_t)snprintf(buf + o, sizeof(buf) - o, "%s%c:%s", o ? " " : "", e->kind,
					      name_of(e->ip));
	}
	return buf;
}

#define EXPECT_LOG(want)                                                                             \
	do {                                                                                         \
		const char *got_ = render();                                                         \
		CHECK(strcmp(got_, want) == 0, "\n  want %s\n  got  %s", want, got_);                \
	} while (0)

static void start(void)
{
	ev_n = ev_lost = 0;
	logging = 1;
}

static void stop(void)
{
	logging = 0;
}

/* Entry and return of the same call see the same parent (where it returns). */
static void check_parents(void)
{
	int stack[LOG_MAX], sp = 0;
	for (int i = 0; i < ev_n; i++) {
		if (ev_log[i].kind == 'E')
			stack[sp++] = i;
		else if (sp > 0) {
			const struct ev *e = &ev_log[stack[--sp]];
			CHECK(e->ip == ev_log[i].ip && e->parent == ev_log[i].parent,
			      "event %d: return of %s to %#lx does not match entry of %s from %#lx", i,
			      name_of(ev_log[i].ip), (unsigned long)ev_log[i].parent, name_of(e->ip),
			      (unsigned long)e->parent);
		}
	}
}

/* ---- single-threaded cases ------------------------------------------------ */

static void on_usr1(int sig)
{
	(void)sig;
	CHECK_EQ(g_chain_c(5), 8);
}

/* On the alternate signal stack: a traced call that longjmps back to
 * main's sigsetjmp (glibc's longjmp restores the saved mask as
 * siglongjmp does) */
static sigjmp_buf alt_env;
static void on_usr2_jump(int sig)
{
	(void)sig;
	g_lj_mid((jmp_buf *)&alt_env, 1);
}

static void run_cases(void)
{
	start();
	CHECK_EQ(g_chain_a(1), 2 * ((2 * 2 + 3) + 1));
	stop();
	EXPECT_LOG("E:chain_a E:chain_b E:chain_c R:chain_c=7 R:chain_b=8 R:chain_a=16");
	check_parents();

	start();
	CHECK_EQ(g_fact(4), 24);
	stop();
	EXPECT_LOG("E:fact E:fact E:fact E:fact R:fact=1 R:fact=2 R:fact=6 R:fact=24");
	check_parents();

	start();
	CHECK_EQ(g_even(3), 0);
	stop();
	EXPECT_LOG("E:even E:odd E:even E:odd R:odd=0 R:even=0 R:odd=0 R:even=0");

	/* a callback that calls traced code: no events from inside it */
	call_from_callback = 1;
	start();
	CHECK_EQ(g_even(1), 0);
	stop();
	call_from_callback = 0;
	CHECK_EQ(from_callback_result, 4);
	EXPECT_LOG("E:even E:odd R:odd=0 R:even=0");

	/* g_tail_f's call of g_tail_g is a jump at -O2: g returns straight to
	 * f's caller, through the trampoline twice; both returns are seen,
	 * innermost first, with the value the caller gets. */
	start();
	CHECK_EQ(g_tail_f(2), 21);
	stop();
	EXPECT_LOG("E:tail_f E:tail_g R:tail_g=21 R:tail_f=21");
	check_parents();

	start();
	double d = g_twice(1.25);
	struct g_pair p = g_pair_of(40);
	stop();
	CHECK(d == 2.5, "g_twice(1.25) = %g", d);
	CHECK(p.a == 40 && p.b == -40, "g_pair_of(40) = {%ld, %ld}", p.a, p.b);
	CHECK_EQ(ev_n, 4);

	/* longjmp past two hooked frames: their returns are reported (as
	 * abandoned) when the frame that called setjmp returns. */
	start();
	CHECK_EQ(g_lj_outer(4), 50);
	stop();
	EXPECT_LOG("E:lj_outer E:lj_mid E:lj_inner A:lj_inner A:lj_mid R:lj_outer=50");

	/* ... and from untraced code, again and again: the next entry at the
	 * same depth finds the abandoned ones; the shadow stack does not fill. */
	struct stitch_stats s0, s1;
	stitch_get_stats(&s0);
	jmp_buf env;
	for (volatile int i = 0; i < 3000; i++)
		if (setjmp(env) == 0)
			g_lj_mid(&env, i);
	start();
	CHECK_EQ(g_chain_c(0), 3);
	stop();
	EXPECT_LOG("A:lj_inner A:lj_mid E:chain_c R:chain_c=3");
	stitch_get_stats(&s1);
	CHECK_EQ(s1.graph_overflows - s0.graph_overflows, 0);

	/* a signal handler's traced call nests inside the interrupted one */
	signal(SIGUSR1, on_usr1);
	start();
	CHECK_EQ(g_raise(SIGUSR1), SIGUSR1);
	stop();
	EXPECT_LOG("E:raise E:chain_c R:chain_c=8 R:raise=10");
	signal(SIGUSR1, SIG_DFL);

	/* a handler on a sigaltstack far below the main stack (malloc'd)
	 * whose traced calls leave by longjmp to the main stack, again and
	 * again: the next entry on the main stack finds the handler's entries
	 * abandoned, and the interrupted ones under them; the shadow stack
	 * does not fill (it did: the handler's entries, beyond the window
	 * below the main stack, were taken as another stack's live ones) */
	stack_t alt = { .ss_sp = malloc(1 << 16), .ss_size = 1 << 16 }, old_alt;
	struct sigaction jump = { .sa_handler = on_usr2_jump, .sa_flags = SA_ONSTACK }, old_usr2;
	CHECK(alt.ss_sp && sigaltstack(&alt, &old_alt) == 0, "sigaltstack");
	CHECK_EQ(sigaction(SIGUSR2, &jump, &old_usr2), 0);
	stitch_get_stats(&s0);
	for (volatile int i = 0; i < 100; i++)
		if (sigsetjmp(alt_env, 1) == 0)
			g_raise(SIGUSR2);
	int below = STITCH_FTRACE_GRAPH_DEPTH - 20;
	CHECK_EQ(g_depth(below), below);
	stitch_get_stats(&s1);
	CHECK_EQ(s1.graph_overflows - s0.graph_overflows, 0);
	sigaction(SIGUSR2, &old_usr2, NULL);
	sigaltstack(&old_alt, NULL);
	free(alt.ss_sp);

	/* deeper than the shadow stack: every call runs and returns right;
	 * the calls beyond the depth get no return hook and are counted */
	stitch_get_stats(&s0);
	int deep = STITCH_FTRACE_GRAPH_DEPTH + 300;
	CHECK_EQ(g_depth(deep), deep);
	stitch_get_stats(&s1);
	CHECK_EQ(s1.graph_overflows - s0.graph_overflows, deep + 1 - STITCH_FTRACE_GRAPH_DEPTH); /* g_depth(n): n + 1 calls */
	CHECK_EQ(g_chain_a(1), 16); /* and the stack is usable again */
}

/* A thread that exits from inside hooked frames: pthread_exit's unwinding
 * stops at the first replaced return address (no frame information there),
 * the thread ends, its shadow stack goes; the process goes on. */
static void *exiting_thread(void *arg)
{
	(void)arg;
	g_thread_exit(5);
	return NULL; /* not reached */
}

/* Cancelled inside hooked frames below a C cleanup handler: glibc runs
 * the handler by a longjmp of its own into this frame, past the outermost
 * hooked one, which the unwinder never reports; the thread's exit does. */
static atomic_int cleanups;
static void count_cleanup(void *arg)
{
	(void)arg;
	atomic_fetch_add(&cleanups, 1);
}

static void *cancelled_thread(void *arg)
{
	pthread_cleanup_push(count_cleanup, NULL);
	g_cancel_at((int)(intptr_t)arg);
	pthread_cleanup_pop(0);
	return NULL; /* not reached */
}

static void run_cancel(void)
{
	for (int n = 0; n < 4; n++) {
		atomic_store(&cancel_entered, 0);
		atomic_store(&cancel_returned, 0);
		atomic_store(&cancel_abandoned, 0);
		atomic_store(&cleanups, 0);
		pthread_t t;
		void *ret = NULL;
		CHECK_EQ(pthread_create(&t, NULL, cancelled_thread, (void *)(intptr_t)n), 0);
		while (atomic_load(&cancel_entered) < n + 1)
			sched_yield(); /* inside all of them */
		CHECK_EQ(pthread_cancel(t), 0);
		CHECK_EQ(pthread_join(t, &ret), 0);
		CHECK(ret == PTHREAD_CANCELED, "cancelled inside %d hooked frames", n + 1);
		CHECK_EQ(atomic_load(&cleanups), 1);
		CHECK_EQ(atomic_load(&cancel_returned), 0);
		CHECK_EQ(atomic_load(&cancel_abandoned), n + 1);
	}
}

static void run_thread_exit(void)
{
	for (int i = 0; i < 3; i++) {
		pthread_t t;
		void *ret = NULL;
		CHECK_EQ(pthread_create(&t, NULL, exiting_thread, NULL), 0);
		CHECK_EQ(pthread_join(t, &ret), 0);
		CHECK_EQ((intptr_t)ret, 42);
	}
	start();
	CHECK_EQ(g_chain_a(1), 16);
	stop();
	EXPECT_LOG("E:chain_a E:chain_b E:chain_c R:chain_c=7 R:chain_b=8 R:chain_a=16");
}

/* A hooked call still in flight when its ops is unregistered and registered
 * again without a ret_func: its return calls nothing (and does not crash). */
static int wait_flag;
static atomic_int wait_entered, wait_returned;
static CB void wait_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_store(&wait_entered, 1);
}
static CB void wait_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent, (void)ops, (void)rregs;
	atomic_fetch_add(&wait_returned, 1);
}

static void *waiting_thread(void *arg)
{
	(void)arg;
	return (void *)(intptr_t)g_wait(&wait_flag);
}

static void run_ops_change_in_flight(void)
{
	struct stitch_ftrace_ops o = { .func = FN(wait_entry), .ret_func = RFN(wait_return), .flags = OPS_FLAGS };
	CHECK_EQ(stitch_ftrace_register(&o, "g_wait"), 0);
	pthread_t t;
	pthread_create(&t, NULL, waiting_thread, NULL);
	while (!atomic_load(&wait_entered)) /* its return is hooked now */
		sched_yield();
	CHECK_EQ(stitch_ftrace_unregister(&o), 0);
	o.ret_func = NULL;
	CHECK_EQ(stitch_ftrace_register(&o, "g_wait"), 0);
	__atomic_store_n(&wait_flag, 1, __ATOMIC_RELEASE);
	void *r;
	pthread_join(t, &r);
	CHECK_EQ((intptr_t)r, 7);
	CHECK_EQ(atomic_load(&wait_returned), 0);
	CHECK_EQ(stitch_ftrace_unregister(&o), 0);

	/* The same, the ops freed once unregister returned ("the ops may be
	 * freed"): its page unmapped, so a read of it faults.  Alone on the
	 * site (the fast paths), and beside a plain ops (the C path). */
	for (int beside = 0; beside < 2; beside++) {
		struct stitch_ftrace_ops plain = { .func = FN(wait_entry), .flags = OPS_FLAGS };
		struct stitch_ftrace_ops *g = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(g != MAP_FAILED, "mmap");
		if (g == MAP_FAILED)
			return;
		memset(g, 0, sizeof(*g));
		g->func = FN(wait_entry);
		g->ret_func = RFN(wait_return);
		g->flags = OPS_FLAGS;
		if (beside)
			CHECK_EQ(stitch_ftrace_register(&plain, "g_wait"), 0);
		CHECK_EQ(stitch_ftrace_register(g, "g_wait"), 0);
		atomic_store(&wait_entered, 0);
		__atomic_store_n(&wait_flag, 0, __ATOMIC_RELEASE);
		pthread_create(&t, NULL, waiting_thread, NULL);
		while (!atomic_load(&wait_entered))
			sched_yield();
		CHECK_EQ(stitch_ftrace_unregister(g), 0);
		munmap(g, 4096);
		__atomic_store_n(&wait_flag, 1, __ATOMIC_RELEASE);
		pthread_join(t, &r);
		CHECK_EQ((intptr_t)r, 7);
		CHECK_EQ(atomic_load(&wait_returned), 0);
		if (beside)
			CHECK_EQ(stitch_ftrace_unregister(&plain), 0);
	}
}

/* ---- threads while graph ops come and go ------------------------------- */

#define THREADS 4
static atomic_int running;
static atomic_long wrong, unmatched, returns;

static CB void thread_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			     struct stitch_ftrace_ret_regs *rregs);
static struct stitch_ftrace_ops graph2 = { .func = FN(on_entry), .ret_func = RFN(thread_return), .flags = OPS_FLAGS };

/* A thread's open entries; a return must match one of them (entries whose
 * returns were lost because the ops left meanwhile are skipped). */
static __thread uintptr_t open_ip[256];
static __thread int open_n;

static CB void thread_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			 struct stitch_ftrace_regs *regs)
{
	(void)parent, (void)ops, (void)regs;
	if (open_n < 256)
		open_ip[open_n++] = ip;
}

static CB void thread_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			     struct stitch_ftrace_ret_regs *rregs)
{
	(void)parent, (void)ops, (void)rregs;
	int i = open_n;
	while (i > 0 && open_ip[i - 1] != ip)
		i--;
	if (i == 0)
		atomic_fetch_add(&unmatched, 1);
	else
		open_n = i - 1;
	atomic_fetch_add(&returns, 1);
}

static void *worker(void *arg)
{
	long calls = 0;
	(void)arg;
	while (atomic_load(&running)) {
		for (int v = 0; v < 50; v++) {
			if (g_chain_a(v) != 2 * ((2 * (v + 1) + 3) + 1) || g_fact(5) != 120 || g_tail_f(v) != 7 * (v + 1) ||
			    g_twice(v) != 2.0 * v)
				atomic_fetch_add(&wrong, 1);
			calls += 4;
		}
		open_n = 0; /* between calls: nothing may be open */
	}
	return (void *)calls;
}

static void run_threads(void)
{
	graph2.func = FN(thread_entry);
	pthread_t t[THREADS];
	atomic_store(&running, 1);
	for (int i = 0; i < THREADS; i++)
		pthread_create(&t[i], NULL, worker, NULL);
	static const char *const filters[] = { "g_chain_* g_fact", "g_tail_* g_twice", "g_*" };
	int rounds = 60, errors = 0;
	for (int r = 0; r < rounds; r++) {
		errors += stitch_ftrace_register(&graph2, filters[r % 3]) != 0;
		errors += stitch_ftrace_set_filter(&graph2, filters[(r + 1) % 3]) != 0;
		errors += stitch_ftrace_unregister(&graph2) != 0;
	}
	atomic_store(&running, 0);
	long calls = 0;
	for (int i = 0; i < THREADS; i++) {
		void *c;
		pthread_join(t[i], &c);
		calls += (long)c;
	}
	printf("threads: %ld calls, %ld returns hooked, %d register/filter/unregister rounds\n", calls,
	       atomic_load(&returns), rounds);
	CHECK_EQ(errors, 0);
	CHECK_EQ(atomic_load(&wrong), 0);
	CHECK_EQ(atomic_load(&unmatched), 0);
	CHECK(calls > 0, "workers made no calls");
}

int main(void)
{
	/* bad ops */
	struct stitch_ftrace_ops both = { .ret_func = RFN(on_return), .direct = (void *)on_entry, .direct_size = 4 };
	CHECK_EQ(stitch_ftrace_register(&both, "g_*"), -STITCH_EINVAL);

	int err = stitch_ftrace_register(&graph, "g_*");
	CHECK(err == 0, "register: %s", stitch_last_error());
	if (err == 0) {
		run_cases();
#if defined(GRAPH_FAST) && defined(__x86_64__) && defined(GRAPH_FAST_LEAN)
		/* the lean trampoline ran (it passes no argument registers) */
		CHECK(atomic_load(&no_regs) > 0, "fast ABI: every entry went through the full trampoline");
#else
		CHECK_EQ(atomic_load(&no_regs), 0);
#endif
#if defined(GRAPH_ASM_FAST)
		/* one ops on the sites: the assembly fast paths ran (and the
		 * cases above that they hand to C - tail calls, longjmp, nested
		 * callbacks, overflow - still came out right) */
		CHECK(atomic_load(&entries_from_asm) > 0, "no entry took the trampoline's fast path");
		CHECK(atomic_load(&returns_from_asm) > 0, "no return took the return trampoline's fast path");
#else
		/* without liburcu there are none */
		CHECK_EQ(atomic_load(&entries_from_asm), 0);
		CHECK_EQ(atomic_load(&returns_from_asm), 0);
#endif
		run_thread_exit();
		run_cancel();
		CHECK_EQ(stitch_ftrace_unregister(&graph), 0);
	}
	/* unregistered: nothing is reported, and calls still return right */
	start();
	CHECK_EQ(g_chain_a(1), 16);
	stop();
	CHECK_EQ(ev_n, 0);

	/* only a ret_func */
	struct stitch_ftrace_ops ret_only = { .ret_func = RFN(on_return), .flags = OPS_FLAGS };
	CHECK_EQ(stitch_ftrace_register(&ret_only, "g_chain_*"), 0);
	start();
	CHECK_EQ(g_chain_a(1), 16);
	stop();
	EXPECT_LOG("R:chain_c=7 R:chain_b=8 R:chain_a=16");
	CHECK_EQ(stitch_ftrace_unregister(&ret_only), 0);

	/* only a func: entries, no return hook; arguments and results intact */
	struct stitch_ftrace_ops entry_only = { .func = FN(on_entry), .flags = OPS_FLAGS };
	CHECK_EQ(stitch_ftrace_register(&entry_only, "g_chain_* g_twice g_pair_of"), 0);
	start();
	CHECK_EQ(g_chain_a(1), 16);
	double d = g_twice(1.25);
	struct g_pair p = g_pair_of(40);
	stop();
	CHECK(d == 2.5, "g_twice(1.25) = %g", d);
	CHECK(p.a == 40 && p.b == -40, "g_pair_of(40) = {%ld, %ld}", p.a, p.b);
	EXPECT_LOG("E:chain_a E:chain_b E:chain_c E:twice E:pair_of");
	CHECK_EQ(stitch_ftrace_unregister(&entry_only), 0);

	run_ops_change_in_flight();
	run_threads();
#ifdef GRAPH_FAST
	return check_summary("test_ftrace_graph_fast");
#else
	return check_summary("test_ftrace_graph");
#endif
}
