/* SPDX-License-Identifier: MIT */
/*
 * C++ exceptions and pthread_exit() through function_graph-hooked frames
 * (src/core/ftrace_unwind.c; all three architectures, AArch64 and RISC-V
 * under qemu with their cross g++).  Before, the unwinder stopped at the
 * first hooked frame's
 * replaced return address: every throw through one ended in
 * std::terminate, and pthread_exit() ran no cleanup handler beyond it.
 *
 *  1. a throw through hooked frames, caught by a hooked frame: the right
 *     value, destructors of the frames unwound run once, and each hooked
 *     call gets exactly one return report - real (rregs) for the frames
 *     that returned, abandoned (rregs NULL) for those unwound;
 *  2. a rethrow from a hooked catch(...) further out;
 *  3. a throw inside a catch block, caught there;
 *  4. 300-deep hooked recursion unwound at once, 50 times;
 *  5. a throw after a longjmp() left hooked frames' entries behind, through
 *     untraced frames that now use their stack, then through traced ones
 *     (the entries left behind name memory that is not theirs any more);
 *  6. pthread_exit() three hooked frames deep: the cleanup handler pushed
 *     by the outermost and the destructors in between run, and the three
 *     frames are reported abandoned (they were never reported);
 *  7. four threads do 1-5, 8 and 9 in a loop while the main thread
 *     registers and unregisters the graph ops: no crash, every value and
 *     destructor count exact;
 *  8. while an exception unwinds hooked frames, a destructor throws and
 *     catches another one through hooked frames: the first one's unwinding
 *     goes on (the inner catch must not hook the frames it is unwinding);
 *  9. backtrace() and _Unwind_Backtrace() inside hooked frames see the
 *     frames beyond them (as many as untraced), and the frames stay hooked.
 * 10. pthread_cancel() four hooked frames deep, 20 times: the destructors
 *     in between and the cleanup handler of the outermost run (glibc
 *     unwinds from inside itself: the unwinder must walk through the return
 *     trampoline, with the unwind information libstitch gives it), and the
 *     four calls are reported abandoned.
 * This file is built with the trace flags; only u_* is traced.
 * UNWIND_FAST (test_ftrace_unwind_fast): the same with fast-ABI callbacks,
 * which take x86-64's lean trampolines (their own shadow push and pop).
 * UNWIND_DLOPEN (test_ftrace_unwind_dlopen PATH/libstitch.so): the same
 * with libstitch loaded by dlopen() once the program has thrown - as
 * stitch-trace attach loads its agent - so the program's calls are bound
 * to libgcc_s and libstdc++, and reach libstitch's interposers only
 * through the redirect (imports.c): without it the first throw through a
 * hooked frame ends the program.
 */
#include <atomic>
#include <csetjmp>
#include <cerrno>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <pthread.h>
#include <sched.h>
#include <stdexcept>

#include <stitch/ftrace.h>

#include "common/check.h"

#ifdef UNWIND_FAST
#define NAME "test_ftrace_unwind_fast"
#elif defined(UNWIND_DLOPEN)
#define NAME "test_ftrace_unwind_dlopen"
#else
#define NAME "test_ftrace_unwind"
#endif

#ifdef UNWIND_DLOPEN
#include <dlfcn.h>
/* The library's functions, from the dlopen()ed copy. */
static int (*dl_register)(stitch_ftrace_ops *, const char *);
static int (*dl_unregister)(stitch_ftrace_ops *);
static int (*dl_unwind_ready)();
static const char *(*dl_last_error)();
#define stitch_ftrace_register dl_register
#define stitch_ftrace_unregister dl_unregister
#define stitch_ftrace_unwind_ready dl_unwind_ready
#define stitch_last_error dl_last_error

template <typename F> static bool load(void *h, F *f, const char *name)
{
	*f = reinterpret_cast<F>(dlsym(h, name));
	CHECK(*f != nullptr, "%s: %s", name, dlerror());
	return *f != nullptr;
}

static void *library;

static bool load_library(const char *path)
{
	/* the program has thrown and caught already: its calls are bound */
	try {
		throw std::runtime_error("before");
	} catch (const std::exception &) {
	}
	void *h = library = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CHECK(h != nullptr, "dlopen %s: %s", path, dlerror());
	return h && load(h, &dl_register, "stitch_ftrace_register") &&
	       load(h, &dl_unregister, "stitch_ftrace_unregister") &&
	       load(h, &dl_unwind_ready, "stitch_ftrace_unwind_ready") &&
	       load(h, &dl_last_error, "stitch_last_error");
}
#endif

static thread_local long t_entries, t_live, t_abandoned, t_dtors;

#ifdef UNWIND_FAST
#define CALLBACK STITCH_FTRACE_PRESERVES_REGS
#else
#define CALLBACK
#endif

static CALLBACK void on_entry(uintptr_t, uintptr_t, stitch_ftrace_ops *, stitch_ftrace_regs *)
{
	t_entries++;
}

static long abandoned_total; /* __atomic builtins: the fast callbacks cannot inline std::atomic's */

static CALLBACK void on_return(uintptr_t, uintptr_t, stitch_ftrace_ops *, stitch_ftrace_ret_regs *rregs)
{
	if (rregs) {
		t_live++;
	} else {
		t_abandoned++;
		__atomic_fetch_add(&abandoned_total, 1, __ATOMIC_RELAXED);
	}
}

static stitch_ftrace_ops ops;

struct Guard {
	~Guard() { t_dtors++; }
};

/* Not inlined, nor cloned under another name (gcc's noipa; clang does not
 * clone a noinline function). */
#ifdef __clang__
#define TRACED extern "C" __attribute__((noinline))
#else
#define TRACED extern "C" __attribute__((noipa))
#endif

TRACED int u_thrower(int x)
{
	if (x > 0)
		throw std::runtime_error("boom");
	return x;
}
TRACED int u_middle(int x)
{
	Guard g;
	return u_thrower(x) + 1;
}
TRACED int u_catcher(int x)
{
	try {
		return u_middle(x);
	} catch (const std::exception &) {
		return -1;
	}
}
TRACED int u_outer(int x) { return u_catcher(x) * 2; }

TRACED int u_rethrower(int x)
{
	try {
		return u_middle(x);
	} catch (...) {
		Guard g;
		throw;
	}
}
TRACED int u_catch_rethrown(int x)
{
	try {
		return u_rethrower(x);
	} catch (const std::runtime_error &) {
		return -3;
	}
}

/* a throw caught inside a catch block */
TRACED int u_nested(int x)
{
	try {
		return u_middle(x);
	} catch (const std::exception &) {
		return u_catcher(x) - 10; /* throws and catches again inside */
	}
}

TRACED int u_rec(int n)
{
	Guard g;
	if (n == 0)
		throw std::runtime_error("bottom");
	return u_rec(n - 1) + 1;
}
TRACED int u_catch_rec(int n)
{
	try {
		return u_rec(n);
	} catch (const std::runtime_error &) {
		return -4;
	}
}

/* 5 */
static __attribute__((noinline)) int plain_throw(int n)
{
	volatile char pad[64];
	pad[n % 64] = (char)n;
	if (n == 0)
		throw std::runtime_error("plain");
	return plain_throw(n - 1) + pad[n % 64];
}
TRACED int u_jump_deep(std::jmp_buf *jb, int n)
{
	if (n < 0)
		return n;
	if (n == 0)
		std::longjmp(*jb, 1);
	return u_jump_deep(jb, n - 1) + 1;
}
TRACED int u_jumper(int n)
{
	std::jmp_buf jb;
	if (setjmp(jb)) {
		int r = 0;
		try {
			r = plain_throw(n); /* over the left-behind frames' stack */
		} catch (const std::runtime_error &) {
			r = -5;
		}
		return r + u_catcher(1); /* and through hooked frames again */
	}
	return u_jump_deep(&jb, n);
}

/* A hooked call from the thread's base frame: its entry reports the
 * entries of unwound frames as abandoned. */
TRACED int u_flush(int x)
{
	__asm__ volatile("" ::: "memory"); /* a call kept even when its result is unused */
	return x;
}

/* 8: a destructor that throws and catches through hooked frames, run by
 * the unwinding of another exception */
struct CatchingGuard {
	~CatchingGuard()
	{
		t_dtors++;
		(void)u_catcher(1); /* throws through u_middle, u_thrower; caught in u_catcher */
	}
};
TRACED int u_unwinding(int x)
{
	CatchingGuard g;
	return u_middle(x); /* throws through here: g's destructor runs in the unwinding */
}
TRACED int u_catch_unwinding(int x)
{
	try {
		return u_unwinding(x);
	} catch (const std::runtime_error &) {
		return -7;
	}
}

/* 9: the depth a stack walk sees */
#include <execinfo.h>
#include <unwind.h>
static _Unwind_Reason_Code count_frame(struct _Unwind_Context *, void *n)
{
	++*static_cast<int *>(n);
	return _URC_NO_REASON;
}
struct Depths {
	int glibc, unwinder;
};
static Depths walk_depths()
{
	void *buf[256];
	Depths d{ backtrace(buf, 256), 0 };
	_Unwind_Backtrace(count_frame, &d.unwinder);
	return d;
}
TRACED Depths u_bt_inner(int)
{
	Depths d = walk_depths();
	__asm__ volatile("" ::: "memory");
	return d;
}
/* not traced: its walk sees two frames fewer than u_bt_inner's */
#ifdef __clang__
__attribute__((noinline))
#else
__attribute__((noipa))
#endif
static Depths depths_here()
{
	Depths d = walk_depths();
	__asm__ volatile("" ::: "memory");
	return d;
}
TRACED Depths u_bt_mid(int x) { Depths d = u_bt_inner(x); __asm__ volatile("" ::: "memory"); return d; }
TRACED Depths u_bt_outer(int x) { Depths d = u_bt_mid(x); __asm__ volatile("" ::: "memory"); return d; }

/* One round of cases 1-5, 8 and 9: 0, or bit n set if case n got a wrong
 * value or destructor count, or its stack walk a depth other than
 * untraced. */
static unsigned one_round(int rec_depth)
{
	unsigned bad = 0; /* bit n: case n went wrong */
	long d = t_dtors;
	bad |= !(u_outer(1) == -2 && t_dtors == d + 1) << 1;
	bad |= !(u_outer(0) == 2 && t_dtors == d + 2) << 1;
	d = t_dtors;
	bad |= !(u_catch_rethrown(1) == -3 && t_dtors == d + 2) << 2; /* u_middle's and the handler's */
	d = t_dtors;
	bad |= !(u_nested(1) == -11 && t_dtors == d + 2) << 3;
	d = t_dtors;
	bad |= !(u_catch_rec(rec_depth) == -4 && t_dtors == d + rec_depth + 1) << 4;
	bad |= !(u_jumper(rec_depth) == -6) << 5;
	d = t_dtors;
	bad |= !(u_catch_unwinding(1) == -7 && t_dtors == d + 3) << 8; /* g's, and u_middle's twice */
	Depths here = depths_here(), got = u_bt_outer(0);
	bad |= !(got.glibc == here.glibc + 2 && got.unwinder == here.unwinder + 2) << 9;
	if ((bad >> 9) & 1)
		fprintf(stderr, "case 9: depths %d %d, untraced %d %d (+2)\n", got.glibc, got.unwinder, here.glibc,
			here.unwinder);
	return bad;
}

static void check_balanced(const char *what, long entries_before)
{
	(void)u_flush(0);
	long calls = t_entries - entries_before;
	CHECK(calls > 0, "%s: no hooked call", what);
	CHECK(t_entries == t_live + t_abandoned, "%s: %ld entries, %ld returns, %ld abandoned", what, t_entries,
	      t_live, t_abandoned);
}

/* ---- 6. pthread_exit ------------------------------------------------------- */

static std::atomic<int> cleanup_ran;

static void cleanup(void *) { cleanup_ran.fetch_add(1); }

TRACED void u_exit_inner(int) { pthread_exit(nullptr); }
TRACED int u_exit_mid(int x)
{
	Guard g;
	u_exit_inner(x);
	return x;
}
TRACED void u_exit_outer(int x)
{
	pthread_cleanup_push(cleanup, nullptr);
	(void)u_exit_mid(x);
	pthread_cleanup_pop(0);
}

static void *exiting_thread(void *)
{
	u_exit_outer(1);
	return (void *)1; /* not reached */
}

/* ---- 10. pthread_cancel ------------------------------------------------------ */

/* The cancelled thread reaches u_cancel_inner (stage 1), the main thread
 * cancels it and says so (stage 2), and the thread acts on it at
 * pthread_testcancel(): glibc unwinds it from inside itself, through
 * libgcc_s functions it looked up itself - nothing on the way can be
 * interposed.  The unwinder meets the hooked frames' return addresses (the
 * trampoline) and must walk on through them to run the destructors and the
 * cleanup handler further out. */
static std::atomic<int> cancel_stage, cancel_dtors;

struct CancelGuard { /* t_dtors is per thread */
	~CancelGuard() { cancel_dtors.fetch_add(1); }
};

TRACED void u_cancel_inner(int)
{
	cancel_stage.store(1);
	while (cancel_stage.load() != 2)
		sched_yield();
	pthread_testcancel();
}
TRACED int u_cancel_mid(int x)
{
	CancelGuard g;
	u_cancel_inner(x);
	return x;
}
TRACED int u_cancel_mid2(int x)
{
	CancelGuard g;
	return u_cancel_mid(x) + 1;
}
TRACED void u_cancel_outer(int x)
{
	pthread_cleanup_push(cleanup, nullptr);
	(void)u_cancel_mid2(x);
	pthread_cleanup_pop(0);
}

static void *cancelled_thread(void *)
{
	u_cancel_outer(1);
	return (void *)1; /* not reached */
}

/* false if a thread cancelled four hooked frames deep ran both
 * destructors and the cleanup handler, had its four calls reported
 * abandoned, and ended cancelled */
static bool cancel_case()
{
	int d = cancel_dtors.load();
	int c = cleanup_ran.load();
	long abandoned = __atomic_load_n(&abandoned_total, __ATOMIC_RELAXED);
	cancel_stage.store(0);
	pthread_t t;
	if (pthread_create(&t, nullptr, cancelled_thread, nullptr) != 0)
		return true;
	while (cancel_stage.load() != 1)
		sched_yield();
	CHECK_EQ(pthread_cancel(t), 0);
	cancel_stage.store(2);
	void *ret = nullptr;
	CHECK_EQ(pthread_join(t, &ret), 0);
	/* u_cancel_inner, u_cancel_mid, u_cancel_mid2, u_cancel_outer */
	long ended = __atomic_load_n(&abandoned_total, __ATOMIC_RELAXED) - abandoned;
	bool bad = ret != PTHREAD_CANCELED || cancel_dtors.load() != d + 2 || cleanup_ran.load() != c + 1 || ended != 4;
	if (bad)
		fprintf(stderr, "case 10: %s, %d destructors (2), %d cleanups (1), %ld calls ended unwound (4)\n",
			ret == PTHREAD_CANCELED ? "cancelled" : "not cancelled", cancel_dtors.load() - d,
			cleanup_ran.load() - c, ended);
	return bad;
}

/* ---- 7. threads while tracing is switched ------------------------------- */

static std::atomic<bool> stop;
static std::atomic<long> bad_rounds, rounds;

static void *worker(void *)
{
	while (!stop.load(std::memory_order_relaxed)) {
		if (one_round(40))
			bad_rounds.fetch_add(1);
		rounds.fetch_add(1, std::memory_order_relaxed);
	}
	return nullptr;
}

int main(int argc, char **argv)
{
#ifdef UNWIND_DLOPEN
	CHECK(argc == 2, "usage: %s PATH/libstitch.so", argv[0]);
	if (argc != 2 || !load_library(argv[1]))
		return check_summary(NAME);
#else
	(void)argc;
	(void)argv;
#endif
#ifdef UNWIND_FAST
	ops.func = STITCH_FTRACE_FAST_FUNC(on_entry);
	ops.ret_func = STITCH_FTRACE_FAST_RET_FUNC(on_return);
	ops.flags = STITCH_FTRACE_F_PRESERVES_REGS;
#else
	ops.func = on_entry;
	ops.ret_func = on_return;
#endif
	/* linked in: its interposers come first; loaded later: the program's
	 * calls are redirected to them */
	CHECK(stitch_ftrace_unwind_ready() == 1, "not ready: %s", stitch_last_error());
	/* 9's premise, untraced: two frames more inside u_bt_inner */
	Depths here = depths_here(), inner = u_bt_outer(0);
	CHECK(inner.glibc == here.glibc + 2 && inner.unwinder == here.unwinder + 2, "untraced depths %d %d, %d %d",
	      here.glibc, here.unwinder, inner.glibc, inner.unwinder);
	int err = stitch_ftrace_register(&ops, "u_*");
	CHECK(err == 0, "register: %s", stitch_last_error());
	if (err)
		return check_summary(NAME);

	/* 1: exact reports */
	long e0 = t_entries;
	long d = t_dtors;
	CHECK_EQ(u_outer(1), -2);
	CHECK_EQ(t_dtors, d + 1);
	CHECK_EQ(t_abandoned, 2); /* at the catch already */
	(void)u_flush(0);
	/* u_outer, u_catcher, u_middle, u_thrower, u_flush */
	CHECK_EQ(t_entries - e0, 5);
	CHECK_EQ(t_live, 3);      /* u_catcher, u_outer, u_flush returned */
	CHECK_EQ(t_abandoned, 2); /* u_middle, u_thrower were unwound */
	/* 2-5 */
	unsigned bad = one_round(300);
	CHECK(bad == 0, "cases %#x: a value, a destructor count or a stack depth is wrong", bad);
	for (int i = 0; i < 50; i++)
		CHECK((bad = one_round(300)) == 0, "round %d, cases %#x: a value, a destructor count or a stack depth is wrong",
		      i, bad);
	check_balanced("cases 1-5", e0);

	/* 6 */
	pthread_t t;
	long abandoned = __atomic_load_n(&abandoned_total, __ATOMIC_RELAXED);
	CHECK_EQ(pthread_create(&t, nullptr, exiting_thread, nullptr), 0);
	void *ret = (void *)2;
	pthread_join(t, &ret);
	CHECK(ret == nullptr, "pthread_exit's value: %p", ret);
	CHECK_EQ(cleanup_ran.load(), 1);
	CHECK_EQ(__atomic_load_n(&abandoned_total, __ATOMIC_RELAXED) - abandoned, 3); /* u_exit_inner, u_exit_mid, u_exit_outer */

	/* 10 */
	for (int i = 0; i < 20; i++)
		CHECK(!cancel_case(), "round %d: pthread_cancel() through hooked frames", i);

	/* 7 */
	pthread_t w[4];
	for (auto &th : w)
		CHECK_EQ(pthread_create(&th, nullptr, worker, nullptr), 0);
	int switches = 0;
	for (; switches < 200 || rounds.load() < 400; switches++) {
		err = stitch_ftrace_unregister(&ops);
		CHECK(err == 0, "unregister: %s", stitch_last_error());
		err = stitch_ftrace_register(&ops, switches % 2 ? "u_*" : "u_rec u_catch* u_middle");
		CHECK(err == 0, "register: %s", stitch_last_error());
		if (err)
			break;
	}
	stop.store(true);
	for (auto &th : w)
		pthread_join(th, nullptr);
	CHECK_EQ(bad_rounds.load(), 0);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	printf("%d switches, %ld rounds of throws by 4 threads meanwhile\n", switches, rounds.load());
#ifdef UNWIND_DLOPEN
	/* dlclose() leaves libstitch mapped (-z nodelete): the program's throws
	 * go through its interposers for good */
	CHECK_EQ(dlclose(library), 0);
	CHECK(one_round(10) == 0, "a throw after dlclose(libstitch)");
#endif
	return check_summary(NAME);
}
