/* SPDX-License-Identifier: MIT */
/*
 * longjmp() out of a tracing section (src/core/ftrace.c, "longjmp() out of
 * a section"; src/core/ftrace_longjmp.c).  A section - a tracer callback
 * and the trampoline around it - holds the thread's recursion guard and
 * urcu-bp's read side; a jump out of it must end both, a jump inside it
 * must end neither.  What would show a mistake:
 *   - the guard left set: the thread's calls are not traced any more (the
 *     callback count stops: "tracing did not resume");
 *   - the read side left held: the next unregister waits for ever;
 *   - a section ended by a jump that stays inside it: the callback's own
 *     traced call reaches the callback (nested), and the read side is left
 *     twice (urcu-bp's count underflows: a later grace period never ends).
 * Phases, each with entry-only ops and with function_graph ops:
 *   A. a worker loops over a traced call whose callback spins; its SIGUSR1
 *      handler siglongjmp()s back to the top of the loop (the interpreter
 *      timeout pattern); main sends the signals one at a time.  Again with
 *      the handler on a sigaltstack.
 *   B. the callback itself leaves by longjmp(), _longjmp() or siglongjmp()
 *      (an error path of the tracer).
 *   C. the callback sigsetjmp()s, raise()s SIGUSR2, and the handler jumps
 *      back into the callback (a callback probing memory under a fault
 *      handler); the callback then calls a traced function.
 *   D. the callback longjmp()s to a coroutine on a stack of its own,
 *      mapped above the worker's, which calls a traced function and jumps
 *      back (user-level threads that switch by longjmp): the section is
 *      suspended, not left - ended there, the coroutine's call would reach
 *      the callback, and the callback's return would leave the read side a
 *      second time.  Not with _FORTIFY_SOURCE, whose __longjmp_chk refuses
 *      a jump down to another stack, nor under ASan.
 *   F. as A, with the handler leaving by setcontext() to a context the
 *      worker saved with getcontext() (not under ASan).
 *   G. a section on the signal stack: the worker's SIGUSR1 handler runs on
 *      a sigaltstack and makes a traced call, whose callback siglongjmp()s
 *      back to the worker's loop on the thread's stack; with the stack
 *      armed plainly and with SS_AUTODISARM (the kernel reports it disabled
 *      while the handler runs: without the library's own record of it the
 *      section was kept, and the worker was never traced again).
 *   E. a jump out of a thread's first traced call while the thread sets
 *      itself up (this program's pthread_setspecific(), which the library
 *      calls then, jumps): the thread must be traced afterwards and may
 *      change tracing (it was left "inside a callback" for good).
 * Built four times: plain; with _FORTIFY_SOURCE, where the jumps are
 * __longjmp_chk(); with fast-ABI callbacks (x86-64: the lean trampolines;
 * phase A only, whose callbacks call nothing); and with libstitch loaded
 * by dlopen() (test_ftrace_longjmp_dlopen PATH/libstitch.so, as
 * stitch-trace attach loads it: the program's jumps are bound to libc's,
 * and reach the library only by the redirect of their GOT slots).  A stage that
 * does not finish within its budget is a failure (the SIGALRM watchdog):
 * the hangs above are what this test is for.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <ucontext.h>
#include <unistd.h>

#include "common/check.h"
#include "graph_funcs.h"
#include "stitch/ftrace.h"

#if defined(LONGJMP_DLOPEN)
#include <dlfcn.h>
#define NAME "test_ftrace_longjmp_dlopen"
/* the library's functions, from the dlopen()ed copy */
static int (*lib_register)(struct stitch_ftrace_ops *, const char *);
static int (*lib_unregister)(struct stitch_ftrace_ops *);
static const char *(*lib_last_error)(void);
#define stitch_ftrace_register lib_register
#define stitch_ftrace_unregister lib_unregister
#define stitch_last_error lib_last_error
#define CB
#define FN(f) (f)
#define RFN(f) (f)
#define OPS_FLAGS 0u
#elif defined(LONGJMP_FAST)
#define NAME "test_ftrace_longjmp_fast"
#define CB STITCH_FTRACE_PRESERVES_REGS
#define FN(f) STITCH_FTRACE_FAST_FUNC(f)
#define RFN(f) STITCH_FTRACE_FAST_RET_FUNC(f)
#define OPS_FLAGS STITCH_FTRACE_F_PRESERVES_REGS
#else
#if defined(__USE_FORTIFY_LEVEL) && __USE_FORTIFY_LEVEL > 0
#define NAME "test_ftrace_longjmp_chk"
#else
#define NAME "test_ftrace_longjmp"
#endif
#define CB
#define FN(f) (f)
#define RFN(f) (f)
#define OPS_FLAGS 0u
#endif

#if defined(__x86_64__) && !defined(__SANITIZE_ADDRESS__)
#define SIGNALS 300 /* native */
#else
#define SIGNALS 60 /* qemu, or ASan */
#endif
#define SPIN 3000
#define STAGE_SECONDS 60

static sigjmp_buf worker_env;
static atomic_int stop;
static atomic_long jumps, landed, cb_calls, entries, probes, nested, wrong;
static _Atomic int phase_b_every; /* B: the callback jumps out every n-th call (0: never) */
static __thread volatile int in_cb;

/* ---- the watchdog ----------------------------------------------------------- */

static const char *volatile stage = "start";

static void on_alarm(int sig)
{
	(void)sig;
	char msg[320];
	/* snprintf is not async-signal-safe; the process ends here anyway */
	int n = snprintf(msg, sizeof(msg), NAME ": stuck (a hang this test is for) in: %s (%ld callbacks, %ld jumps)\n",
			 stage, atomic_load(&cb_calls), atomic_load(&jumps));
	if (write(2, msg, (size_t)n) < 0)
		_exit(2);
	_exit(1);
}

static void begin(const char *what)
{
	stage = what;
	alarm(STAGE_SECONDS);
}

/* ---- callbacks ---------------------------------------------------------------- */

static CB void spin(void)
{
	in_cb = 1;
	atomic_fetch_add_explicit(&cb_calls, 1, memory_order_relaxed);
	for (volatile int i = 0; i < SPIN; i++)
		;
	in_cb = 0;
}

static CB void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	spin();
}

static CB void on_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			 struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent, (void)ops;
	if (rregs) /* not an abandoned call's report */
		spin();
}

#ifndef LONGJMP_FAST
static sigjmp_buf probe_env;
static __thread int cb_depth;

/* B: leave by each of the three names in turn */
static void on_entry_jump(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add(&cb_calls, 1);
	long n = atomic_fetch_add(&entries, 1) + 1; /* not cb_calls: graph's returns count there too */
	int every = atomic_load(&phase_b_every);
	if (every && n % every == 0) {
		long j = atomic_fetch_add(&jumps, 1);
		if (j % 3 == 0)
			longjmp(worker_env, 2);
		else if (j % 3 == 1)
			_longjmp(worker_env, 2);
		else
			siglongjmp(worker_env, 2);
	}
}

/* C: a jump back into the callback; the guard must still be set after it */
static void on_entry_probe(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			   struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	if (++cb_depth != 1)
		atomic_fetch_add(&nested, 1);
	atomic_fetch_add(&cb_calls, 1);
	if (cb_depth == 1 && !sigsetjmp(probe_env, 1)) {
		raise(SIGUSR2);
		atomic_fetch_add(&wrong, 1); /* the handler did not jump */
	} else if (cb_depth == 1) {
		if (g_chain_c(5) != 8) /* traced: must not reach this callback */
			atomic_fetch_add(&wrong, 1);
		atomic_fetch_add(&probes, 1);
	}
	cb_depth--;
}

static void on_probe_signal(int sig)
{
	(void)sig;
	siglongjmp(probe_env, 1);
}

/* D: not under ASan either, which takes a switch of stacks by longjmp()
 * for a stack overflow */
#if !(defined(__USE_FORTIFY_LEVEL) && __USE_FORTIFY_LEVEL > 0) && !defined(__SANITIZE_ADDRESS__)
#define PHASE_D 1
#include <sys/mman.h>
#include <ucontext.h>
#define CORO_STACK (256 * 1024)
static jmp_buf coro_env, back_env;
static ucontext_t coro_uc, setup_uc;
static uintptr_t coro_sp, section_sp;

/* The coroutine: its jmp_buf is made once, on its own stack; each jump to
 * it makes a traced call and jumps back into the callback. */
static void coroutine(void)
{
	volatile char here;
	coro_sp = (uintptr_t)&here;
	if (setjmp(coro_env) == 0)
		swapcontext(&coro_uc, &setup_uc); /* made: back to the set-up, once */
	if (g_chain_c(5) != 8) /* traced, inside the suspended section: no callback */
		atomic_fetch_add(&wrong, 1);
	longjmp(back_env, 1);
}

static void on_entry_switch(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			    struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	volatile char here;
	section_sp = (uintptr_t)&here;
	if (++cb_depth != 1)
		atomic_fetch_add(&nested, 1);
	atomic_fetch_add(&cb_calls, 1);
	if (cb_depth == 1 && setjmp(back_env) == 0)
		longjmp(coro_env, 1);
	else if (cb_depth == 1)
		atomic_fetch_add(&probes, 1);
	cb_depth--;
}
#endif
#endif

#ifndef LONGJMP_FAST
/* E: the library's pthread_setspecific() call in a thread's set-up comes
 * here (this program's definition comes first in the lookup) */
#include <dlfcn.h>
static __thread int jump_in_setspecific;
static sigjmp_buf setup_env;

int pthread_setspecific(pthread_key_t key, const void *value)
{
	static int (*real)(pthread_key_t, const void *);
	if (!real)
		*(void **)&real = dlsym(RTLD_NEXT, "pthread_setspecific");
	if (jump_in_setspecific) {
		jump_in_setspecific = 0;
		siglongjmp(setup_env, 1);
	}
	return real(key, value);
}
#endif

/* ---- the worker ------------------------------------------------------------------ */

static void on_timeout_signal(int sig)
{
	(void)sig;
	if (in_cb)
		atomic_fetch_add(&landed, 1);
	in_cb = 0;
	atomic_fetch_add(&jumps, 1);
	siglongjmp(worker_env, 1);
}

static void *worker(void *arg)
{
	stack_t *alt = arg;
	if (alt && sigaltstack(alt, NULL) != 0)
		atomic_fetch_add(&wrong, 1);
	/* every jump lands here, and the loop goes on */
	sigsetjmp(worker_env, 1);
	while (!atomic_load(&stop))
		if (g_chain_a(3) != 3 * 4 + 12)
			atomic_fetch_add(&wrong, 1);
	/* ours, not to be unmapped at exit (ASan's thread exit frees the
	 * signal stack it finds as if it were its own) */
	stack_t off = { .ss_flags = SS_DISABLE };
	if (alt && sigaltstack(&off, NULL) != 0)
		atomic_fetch_add(&wrong, 1);
	return NULL;
}

static void reset(void)
{
	atomic_store(&stop, 0);
	atomic_store(&jumps, 0);
	atomic_store(&landed, 0);
	atomic_store(&cb_calls, 0);
	atomic_store(&entries, 0);
	atomic_store(&probes, 0);
	atomic_store(&nested, 0);
	atomic_store(&wrong, 0);
	atomic_store(&phase_b_every, 0);
}

static void wait_for(atomic_long *counter, long at_least, const char *what)
{
	begin(what);
	while (atomic_load(counter) < at_least)
		sched_yield();
}

/* The worker's calls reach the callback again, then unregister ends. */
static void finish(pthread_t w, struct stitch_ftrace_ops *ops, const char *label)
{
	char what[160];
	snprintf(what, sizeof(what), "%s: tracing did not resume after the jumps", label);
	wait_for(&cb_calls, atomic_load(&cb_calls) + 50, what);
	atomic_store(&stop, 1);
	snprintf(what, sizeof(what), "%s: the worker did not stop", label);
	begin(what);
	pthread_join(w, NULL);
	snprintf(what, sizeof(what), "%s: unregister did not return (a read section never left)", label);
	begin(what);
	CHECK(stitch_ftrace_unregister(ops) == 0, "%s: unregister: %s", label, stitch_last_error());
	alarm(0);
	CHECK(atomic_load(&wrong) == 0, "%s: %ld wrong results", label, atomic_load(&wrong));
}

static void install(int sig, void (*fn)(int), int flags)
{
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = fn;
	sa.sa_flags = flags;
	sigemptyset(&sa.sa_mask);
	CHECK(sigaction(sig, &sa, NULL) == 0, "sigaction");
}

/* Register ops on g_chain_c, the leaf of the worker's calls. */
static bool register_on_chain(struct stitch_ftrace_ops *ops, const char *label)
{
	int err = stitch_ftrace_register(ops, "g_chain_c");
	CHECK(err == 0, "%s: register: %s", label, stitch_last_error());
	return err == 0;
}

/* After a phase: grace periods still end, and tracing still works (a read
 * side left twice would hang here). */
static void check_tracing_still_works(const char *what)
{
	begin(what);
	struct stitch_ftrace_ops again = { .func = FN(on_entry), .flags = OPS_FLAGS };
	CHECK(stitch_ftrace_register(&again, "g_chain_c") == 0, "register: %s", stitch_last_error());
	CHECK(g_chain_a(1) == 16, "a traced call");
	CHECK(stitch_ftrace_unregister(&again) == 0, "unregister: %s", stitch_last_error());
	alarm(0);
}

/* SIGNALS SIGUSR1s to worker w, one at a time: each handler jumps before
 * the next is sent, and the worker is back in its loop, traced, in
 * between (the watchdog names the stage that does not come). */
static void signal_one_at_a_time(pthread_t w, const char *label)
{
	static char first[160], jump[160], resume[160]; /* the watchdog reads them */
	snprintf(first, sizeof(first), "%s: the worker's first traced call", label);
	snprintf(jump, sizeof(jump), "%s: a signal handler's jump", label);
	snprintf(resume, sizeof(resume), "%s: tracing did not resume after a jump", label);
	wait_for(&cb_calls, 1, first);
	for (long i = 0; i < SIGNALS; i++) {
		long j = atomic_load(&jumps);
		pthread_kill(w, SIGUSR1);
		wait_for(&jumps, j + 1, jump);
		wait_for(&cb_calls, atomic_load(&cb_calls) + 1, resume);
	}
}

/* A, and F: the same with setcontext() for the handler's jump */
static void phase_signals(const char *phase, bool graph, bool onstack, void (*handler)(int),
			  void *(*worker_fn)(void *))
{
	char label[64];
	snprintf(label, sizeof(label), "%s, %s%s)", phase, graph ? "graph" : "entry", onstack ? ", sigaltstack" : "");
	reset();
	install(SIGUSR1, handler, onstack ? SA_ONSTACK : 0);
	struct stitch_ftrace_ops ops = { .func = FN(on_entry), .ret_func = graph ? RFN(on_return) : NULL,
					 .flags = OPS_FLAGS };
	if (!register_on_chain(&ops, label))
		return;
	static char altmem[1 << 16];
	stack_t alt = { .ss_sp = altmem, .ss_size = sizeof(altmem) };
	pthread_t w;
	CHECK(pthread_create(&w, NULL, worker_fn, onstack ? &alt : NULL) == 0, "pthread_create");
	signal_one_at_a_time(w, label);
	finish(w, &ops, label);
	printf("%s: %s: %ld signals, %ld landed in a callback\n", NAME, label, (long)SIGNALS, atomic_load(&landed));
	/* the case this is about, many times over (the callback is most of the loop) */
	CHECK(atomic_load(&landed) >= SIGNALS / 4, "%s: only %ld of %d signals landed in a callback", label,
	      atomic_load(&landed), SIGNALS);
}

static void phase_a(bool graph, bool onstack)
{
	phase_signals("A (signal", graph, onstack, on_timeout_signal, worker);
}

/* F: not under ASan, which does not see a setcontext() leave frames */
#ifndef __SANITIZE_ADDRESS__
#define PHASE_F 1
static ucontext_t loop_uc;

static void on_timeout_setcontext(int sig)
{
	(void)sig;
	if (in_cb)
		atomic_fetch_add(&landed, 1);
	in_cb = 0;
	atomic_fetch_add(&jumps, 1);
	setcontext(&loop_uc);
}

static void *worker_setcontext(void *arg)
{
	(void)arg;
	getcontext(&loop_uc); /* every setcontext() lands here */
	while (!atomic_load(&stop))
		if (g_chain_a(3) != 3 * 4 + 12)
			atomic_fetch_add(&wrong, 1);
	return NULL;
}
#endif

#ifndef LONGJMP_FAST
/* B, C and D: a worker (on the stack `attr` gives, if any) runs the chain
 * until `counter` reaches SIGNALS; then the phase ends. */
static void run_worker_until(pthread_attr_t *attr, atomic_long *counter, const char *what,
			     struct stitch_ftrace_ops *ops, const char *label)
{
	pthread_t w;
	CHECK(pthread_create(&w, attr, worker, NULL) == 0, "pthread_create");
	wait_for(counter, SIGNALS, what);
	finish(w, ops, label);
}

static void phase_b(bool graph)
{
	const char *label = graph ? "B (callback jumps, graph)" : "B (callback jumps, entry)";
	reset();
	struct stitch_ftrace_ops ops = { .func = on_entry_jump, .ret_func = graph ? on_return : NULL };
	atomic_store(&phase_b_every, 4);
	if (!register_on_chain(&ops, label))
		return;
	run_worker_until(NULL, &jumps, "B: the callback's jumps (tracing did not resume after one)", &ops, label);
	printf("%s: %s: %ld jumps out of the callback\n", NAME, label, atomic_load(&jumps));
}

static void phase_c(bool graph)
{
	const char *label = graph ? "C (jump back into the callback, graph)" : "C (jump back into the callback, entry)";
	reset();
	install(SIGUSR2, on_probe_signal, 0);
	struct stitch_ftrace_ops ops = { .func = on_entry_probe, .ret_func = graph ? on_return : NULL };
	/* g_chain_c is traced by the same ops: the callback's own call of it
	 * must find the guard set */
	if (!register_on_chain(&ops, label))
		return;
	run_worker_until(NULL, &probes, "C: the callback's probes", &ops, label);
	CHECK(atomic_load(&nested) == 0, "%s: the callback was reached from inside itself %ld times after a jump "
	      "back into it (the section was ended)", label, atomic_load(&nested));
	check_tracing_still_works("C: a register/unregister after the probes");
}
#endif

#ifndef LONGJMP_FAST
#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* <linux/signal.h>, which clashes with <signal.h> */
#endif
static __thread volatile int in_handler;

/* G: a traced call from a handler on the signal stack reaches this, which
 * jumps back to the worker's loop; the worker's own calls are counted. */
static void on_entry_from_handler(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
				  struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	if (!in_handler) {
		atomic_fetch_add(&cb_calls, 1);
		return;
	}
	in_handler = 0;
	atomic_fetch_add(&landed, 1);
	atomic_fetch_add(&jumps, 1);
	siglongjmp(worker_env, 3);
}

/* G's return callback: short, so that the signals land outside sections */
static void on_return_quick(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
			    struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip, (void)parent, (void)ops, (void)rregs;
}

static void on_signal_traced_call(int sig)
{
	(void)sig;
	in_handler = 1;
	if (g_chain_a(3) != 3 * 4 + 12) /* traced: its callback jumps */
		atomic_fetch_add(&wrong, 1);
	/* not traced: the signal interrupted a section of the worker's (the
	 * guard is set); leave as A does */
	in_handler = 0;
	atomic_fetch_add(&jumps, 1);
	siglongjmp(worker_env, 1);
}

static stack_t g_alt;

static void *worker_g(void *arg)
{
	(void)arg;
	sigsetjmp(worker_env, 1);
	/* (re-)armed after every jump: one out of a handler leaves a stack
	 * armed with SS_AUTODISARM disarmed (only sigreturn re-arms it) */
	if (sigaltstack(&g_alt, NULL) != 0)
		atomic_fetch_add(&wrong, 1);
	while (!atomic_load(&stop)) {
		if (g_chain_a(3) != 3 * 4 + 12)
			atomic_fetch_add(&wrong, 1);
		for (volatile int i = 0; i < SPIN; i++) /* most signals land here, outside a section */
			;
	}
	stack_t off = { .ss_flags = SS_DISABLE };
	if (sigaltstack(&off, NULL) != 0)
		atomic_fetch_add(&wrong, 1);
	return NULL;
}

static void phase_g(bool graph, bool autodisarm)
{
	char label[96];
	snprintf(label, sizeof(label), "G (section on the signal stack, %s%s)", graph ? "graph" : "entry",
		 autodisarm ? ", SS_AUTODISARM" : "");
	reset();
	install(SIGUSR1, on_signal_traced_call, SA_ONSTACK);
	static char altmem[1 << 16];
	g_alt = (stack_t){ .ss_sp = altmem, .ss_size = sizeof(altmem), .ss_flags = autodisarm ? (int)SS_AUTODISARM : 0 };
	/* qemu-user (7.2) refuses SS_AUTODISARM: said, not run */
	stack_t off = { .ss_flags = SS_DISABLE };
	if (sigaltstack(&g_alt, NULL) != 0) {
		CHECK(autodisarm, "%s: sigaltstack: %s", label, strerror(errno));
		printf("%s: %s: not run: sigaltstack() refuses SS_AUTODISARM here (%s)\n", NAME, label, strerror(errno));
		return;
	}
	CHECK(sigaltstack(&off, NULL) == 0, "%s: sigaltstack(SS_DISABLE)", label);
	struct stitch_ftrace_ops ops = { .func = on_entry_from_handler, .ret_func = graph ? on_return_quick : NULL };
	if (!register_on_chain(&ops, label))
		return;
	pthread_t w;
	CHECK(pthread_create(&w, NULL, worker_g, NULL) == 0, "pthread_create");
	signal_one_at_a_time(w, label);
	finish(w, &ops, label);
	printf("%s: %s: %ld signals, %ld jumps from a callback on the signal stack\n", NAME, label, (long)SIGNALS,
	       atomic_load(&landed));
	CHECK(atomic_load(&landed) >= SIGNALS / 4, "%s: only %ld of %d handlers' calls were traced", label,
	      atomic_load(&landed), SIGNALS);
}
#endif

#ifdef LONGJMP_DLOPEN
static void load_library(const char *path)
{
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	if (!h) {
		fprintf(stderr, NAME ": dlopen %s: %s\n", path, dlerror());
		exit(1);
	}
	*(void **)&lib_register = dlsym(h, "stitch_ftrace_register");
	*(void **)&lib_unregister = dlsym(h, "stitch_ftrace_unregister");
	*(void **)&lib_last_error = dlsym(h, "stitch_last_error");
	if (!lib_register || !lib_unregister || !lib_last_error) {
		fprintf(stderr, NAME ": %s lacks the ftrace API\n", path);
		exit(1);
	}
}
#endif

#if !defined(LONGJMP_FAST) && defined(PHASE_D)
static void phase_d(bool graph)
{
	const char *label = graph ? "D (coroutine switch inside the callback, graph)"
				  : "D (coroutine switch inside the callback, entry)";
	reset();
	/* two stacks, each with a guard page below it as thread and coroutine
	 * stacks have (which keeps them separate mappings): the higher the
	 * coroutine's, the lower the worker thread's */
	size_t page = (size_t)sysconf(_SC_PAGESIZE);
	char *a = mmap(NULL, page + CORO_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	char *b = mmap(NULL, page + CORO_STACK, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_STACK, -1, 0);
	CHECK(a != MAP_FAILED && b != MAP_FAILED, "mmap");
	if (a == MAP_FAILED || b == MAP_FAILED)
		return;
	CHECK(mprotect(a, page, PROT_NONE) == 0 && mprotect(b, page, PROT_NONE) == 0, "guard pages");
	char *stack = ((uintptr_t)a > (uintptr_t)b ? a : b) + page, *worker_stack = (stack == a + page ? b : a) + page;
	getcontext(&coro_uc);
	coro_uc.uc_stack.ss_sp = stack;
	coro_uc.uc_stack.ss_size = CORO_STACK;
	coro_uc.uc_link = NULL;
	makecontext(&coro_uc, coroutine, 0);
	swapcontext(&setup_uc, &coro_uc); /* the coroutine makes its jmp_buf */
	struct stitch_ftrace_ops ops = { .func = on_entry_switch, .ret_func = graph ? on_return : NULL };
	if (!register_on_chain(&ops, label))
		return;
	pthread_attr_t attr;
	pthread_attr_init(&attr);
	CHECK(pthread_attr_setstack(&attr, worker_stack, CORO_STACK) == 0, "pthread_attr_setstack");
	run_worker_until(&attr, &probes, "D: the callback's switches", &ops, label);
	pthread_attr_destroy(&attr);
	printf("%s: %s: coroutine stack %s the section's (%#lx, %#lx)\n", NAME, label,
	       coro_sp > section_sp ? "above" : "below", (unsigned long)coro_sp, (unsigned long)section_sp);
	CHECK(atomic_load(&nested) == 0, "%s: the callback was reached %ld times from the coroutine (the "
	      "section was ended by the switch)", label, atomic_load(&nested));
	/* the case that matters: the coroutine's stack above the section's */
	CHECK(coro_sp > section_sp, "%s: the coroutine stack is not above the section: the test shows nothing", label);
	check_tracing_still_works("D: a register/unregister after the switches");
	munmap(a, page + CORO_STACK);
	munmap(b, page + CORO_STACK);
}
#endif

#ifndef LONGJMP_FAST
static atomic_int setup_jumped, setup_untraced, setup_refused;

static void *worker_setup(void *arg)
{
	(void)arg;
	jump_in_setspecific = 1;
	if (sigsetjmp(setup_env, 1) == 0) {
		(void)g_chain_c(1); /* the thread's first traced call: its set-up jumps out */
		atomic_fetch_add(&wrong, 1);
		return NULL;
	}
	atomic_store(&setup_jumped, 1);
	long before = atomic_load(&cb_calls);
	if (g_chain_c(1) != 4)
		atomic_fetch_add(&wrong, 1);
	if (atomic_load(&cb_calls) == before)
		atomic_store(&setup_untraced, 1);
	struct stitch_ftrace_ops mine = { .func = on_entry };
	if (stitch_ftrace_register(&mine, "g_chain_b") != 0)
		atomic_store(&setup_refused, 1);
	else if (stitch_ftrace_unregister(&mine) != 0)
		atomic_store(&setup_refused, 1);
	return NULL;
}

static void phase_e(void)
{
	const char *label = "E (jump out of a thread's set-up)";
	reset();
	struct stitch_ftrace_ops ops = { .func = on_entry };
	if (!register_on_chain(&ops, label))
		return;
	pthread_t w;
	begin("E: the worker");
	CHECK(pthread_create(&w, NULL, worker_setup, NULL) == 0, "pthread_create");
	pthread_join(w, NULL);
	begin("E: unregister");
	CHECK(stitch_ftrace_unregister(&ops) == 0, "%s: unregister: %s", label, stitch_last_error());
	alarm(0);
	CHECK(atomic_load(&setup_jumped) == 1, "%s: the set-up did not jump (the library does not call "
	      "pthread_setspecific there any more?): the test shows nothing", label);
	CHECK(atomic_load(&setup_untraced) == 0, "%s: the thread's calls are not traced after the jump", label);
	CHECK(atomic_load(&setup_refused) == 0, "%s: the thread may not change tracing after the jump: %s", label,
	      stitch_last_error());
	CHECK(atomic_load(&wrong) == 0, "%s: %ld wrong results", label, atomic_load(&wrong));
	printf("%s: %s: done\n", NAME, label);
}
#endif

int main(int argc, char **argv)
{
#ifdef LONGJMP_DLOPEN
	if (argc != 2) {
		fprintf(stderr, "usage: " NAME " PATH/libstitch.so\n");
		return 2;
	}
	load_library(argv[1]);
#else
	(void)argc, (void)argv;
#endif
	install(SIGALRM, on_alarm, 0);
	for (int graph = 0; graph < 2; graph++) {
		phase_a(graph, false);
		phase_a(graph, true);
#ifndef LONGJMP_FAST
		phase_b(graph);
		phase_c(graph);
#ifdef PHASE_D
		phase_d(graph);
#endif
		phase_g(graph, false);
#ifndef __SANITIZE_ADDRESS__
		/* ASan loses track of a stack the kernel disarmed: its
		 * handling of the jump's no-return poisons the signal stack */
		phase_g(graph, true);
#endif
#endif
	}
#ifdef PHASE_F
	for (int graph = 0; graph < 2; graph++)
		phase_signals("F (setcontext", graph, false, on_timeout_setcontext, worker_setcontext);
#endif
#ifndef LONGJMP_FAST
	phase_e();
#endif
	check_tracing_still_works("a register/unregister after every phase");
	return check_summary(NAME);
}
