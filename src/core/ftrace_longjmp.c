/* SPDX-License-Identifier: MIT */
/*
 * longjmp() out of a tracing section (ftrace.c, "longjmp() out of a
 * section"): the longjmp() family is interposed so that the tracing core
 * learns where a jump goes before it is made.
 *
 * Why interpose: a program's signal handler that interrupted a tracer
 * callback (or the trampoline around it) and leaves by siglongjmp() - the
 * interpreter-timeout pattern - never comes back to end the section.  No
 * code of the library runs between the jump and wherever it lands, and the
 * kernel's signal frame says nothing about where that is; the jmp_buf does.
 *
 * Where a jump goes: glibc keeps the target's stack pointer in the jmp_buf,
 * mangled with a per-process guard on x86-64 and AArch64 (PTR_MANGLE: x86-64
 * xors and rotates left by 17 bits, AArch64 xors; RISC-V stores it plain).
 * The slot and the transformation are a glibc detail, so neither is taken
 * on trust: at load, three setjmp()s at stack pointers this code knows fix
 * the guard and must agree on it; if they do not (another libc, another
 * layout), the interposers only forward, and a jump out of a section leaves
 * it as before (docs/ftrace.md says so).
 *
 * Interposed: longjmp, _longjmp, siglongjmp (one function in glibc under
 * three names), __longjmp_chk (what they become under _FORTIFY_SOURCE),
 * and setcontext (whose context holds the stack pointer plain); and
 * sigaltstack, to know a signal stack the kernel disarmed.  Each
 * calls the next definition in the lookup order (glibc's, or a sanitizer's
 * interceptor), found at load (stitch__ftrace_longjmp_init).  The
 * interposers run in signal handlers: they read the jmp_buf or context,
 * and stitch__ftrace_longjmp() makes system calls (sigaltstack, reading
 * /proc/self/maps) and stores to the thread's own words.
 */
#undef _FORTIFY_SOURCE /* setjmp.h would rename longjmp to __longjmp_chk */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdbool.h>
#include <stdint.h>
#include <signal.h>
#include <string.h>
#include <ucontext.h>

#ifndef SS_AUTODISARM
#define SS_AUTODISARM (1U << 31) /* <linux/signal.h>, which clashes with <signal.h> */
#endif

#include "arch/arch.h"
#include "core/ftrace_internal.h"
#include "core/internal.h"

/* A sanitizer runtime linked into the program (clang's) defines its
 * interceptors there as weak aliases: ours would replace them, and the
 * runtime would miss the jumps.  Not interposed then. */
#if defined(__clang__) && defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || __has_feature(memory_sanitizer)
#define STITCH_NO_LONGJMP_INTERPOSE 1
#endif
#endif

#if !defined(STITCH_NO_LONGJMP_INTERPOSE) && defined(__x86_64__)
#define JB_SP_SLOT 6 /* glibc's JB_RSP */
#define JB_ROTATE 17
#elif !defined(STITCH_NO_LONGJMP_INTERPOSE) && defined(__aarch64__)
#define JB_SP_SLOT 13 /* glibc's JB_SP */
#define JB_ROTATE 0
#elif !defined(STITCH_NO_LONGJMP_INTERPOSE) && defined(__riscv)
#define JB_SP_SLOT 13 /* after the pc and s0-s11 */
#define JB_ROTATE 0
#endif

#ifdef JB_SP_SLOT
typedef void (*jump_fn)(struct __jmp_buf_tag *, int);

static uintptr_t sp_guard;
static bool sp_known; /* set once, at load, before any interposer can want it */

static inline uintptr_t rotate_right(uintptr_t v, unsigned n)
{
	return n ? (v >> n) | (v << (64 - n)) : v;
}

static inline uintptr_t jmpbuf_word(struct __jmp_buf_tag *env, unsigned slot)
{
	uintptr_t w;
	memcpy(&w, (const char *)env->__jmpbuf + slot * sizeof(w), sizeof(w));
	return w;
}

/* One setjmp() with the stack pointer it will store: the caller's, at the
 * call (no push or stack adjustment lies between the read and the call on
 * these ABIs; if the compiler put one there, the guards disagree). */
static __attribute__((noinline)) uintptr_t sample(jmp_buf env, unsigned pad)
{
	volatile char shift[pad + 1];
	shift[0] = 0;
	uintptr_t sp = ft_stack_pointer();
	if (_setjmp(env) != 0)
		stitch_die("ftrace: a jump to the jmp_buf of the longjmp() self-test");
	return sp + (uintptr_t)shift[0];
}

static void find_sp_guard(void)
{
	static const unsigned pads[3] = { 16, 272, 4112 };
	jmp_buf env;
	uintptr_t guard = 0;
	for (unsigned i = 0; i < 3; i++) {
		// cppcheck-suppress uninitvar ; sample()'s _setjmp() fills it
		uintptr_t sp = sample(env, pads[i]);
		uintptr_t g = rotate_right(jmpbuf_word(env, JB_SP_SLOT), JB_ROTATE) ^ sp;
		if (i > 0 && g != guard)
			return;
		guard = g;
	}
	sp_guard = guard;
	sp_known = true;
}

/* The next definition after libstitch's own (libc's, or a sanitizer's
 * interceptor); if that is libstitch's (a copy loaded twice), none. */
static void *find_next(const char *name, void *ours)
{
	void *f = dlsym(RTLD_NEXT, name);
	return f == ours ? NULL : f;
}

static void before_jump(struct __jmp_buf_tag *env)
{
	if (sp_known)
		stitch__ftrace_longjmp(rotate_right(jmpbuf_word(env, JB_SP_SLOT), JB_ROTATE) ^ sp_guard);
}

static __attribute__((noreturn)) void jump(void *volatile *next, const char *name, void *ours,
					   struct __jmp_buf_tag *env, int val)
{
	before_jump(env);
	void *f = __atomic_load_n(next, __ATOMIC_ACQUIRE);
	if (!f) /* a jump from a constructor that ran before the library's */
		f = find_next(name, ours);
	if (!f)
		stitch_die("ftrace: cannot find the longjmp() family in libc");
	jump_fn fn;
	memcpy(&fn, &f, sizeof(fn));
	fn(env, val);
	__builtin_unreachable();
}

static void *volatile next_longjmp, *volatile next_underscore_longjmp, *volatile next_siglongjmp,
	*volatile next_longjmp_chk;

/* Each interposer is a static function exported under the interposed name
 * (STITCH_EXPORT_AS, internal.h says why). */
static __attribute__((noreturn)) void longjmp_hook(jmp_buf env, int val)
{
	jump(&next_longjmp, "longjmp", (void *)longjmp_hook, env, val);
}

static __attribute__((noreturn)) void underscore_longjmp_hook(jmp_buf env, int val)
{
	jump(&next_underscore_longjmp, "_longjmp", (void *)underscore_longjmp_hook, env, val);
}

static __attribute__((noreturn)) void siglongjmp_hook(sigjmp_buf env, int val)
{
	jump(&next_siglongjmp, "siglongjmp", (void *)siglongjmp_hook, env, val);
}

static __attribute__((noreturn)) void longjmp_chk_hook(sigjmp_buf env, int val)
{
	jump(&next_longjmp_chk, "__longjmp_chk", (void *)longjmp_chk_hook, env, val);
}

/* setcontext(): where a signal handler goes back to a context saved by
 * getcontext() instead of a jmp_buf.  The target's stack pointer is in the
 * context, plain.  (swapcontext() is not interposed: it saves the context
 * it leaves, which a later switch resumes - a coroutine switch, not a
 * jump out.)  If setcontext() then fails (a context it cannot load), the
 * section was ended all the same: nothing returns into it but the caller,
 * which only a malformed context can make happen. */
static void *volatile next_setcontext;

static int setcontext_hook(const ucontext_t *ucp)
{
	if (ucp)
		stitch__ftrace_longjmp(arch_ucontext_sp(ucp));
	void *f = __atomic_load_n(&next_setcontext, __ATOMIC_ACQUIRE);
	if (!f)
		f = find_next("setcontext", (void *)setcontext_hook);
	if (!f)
		stitch_die("ftrace: cannot find libc's setcontext");
	int (*fn)(const ucontext_t *);
	memcpy(&fn, &f, sizeof(fn));
	return fn(ucp);
}

/*
 * sigaltstack(): the signal stack the thread armed last with SS_AUTODISARM,
 * for stitch__ftrace_longjmp().  The kernel disarms such a stack while a
 * handler runs on it (and it stays so after a jump out of that handler,
 * until the program arms it again): sigaltstack(NULL) then says
 * "disabled", and a section on that stack would look like one on no
 * signal stack at all - a jump from it back to the thread's stack compares
 * addresses across two mappings and would keep the section.  The
 * program's own calls are what says where the stack is; a disarm by the
 * kernel does not go through them.  Only such a stack is recorded: a
 * stack disabled by any other way (the raw system call) may have been
 * freed and reused since, and must not be taken for the signal stack.
 * Not seen: a stack armed before the calls reached this hook (libstitch
 * loaded by dlopen(), or preloaded by stitch-trace's agent, which hides
 * its interposers: the calls come here once their GOT slots are
 * redirected, at the first registration).
 */
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
/* gcc's sanitizers intercept sigaltstack() themselves (and ASan loses a
 * stack the kernel disarmed anyway): not interposed there */
#define STITCH_NO_SIGALTSTACK_INTERPOSE 1
#endif

#ifndef STITCH_NO_SIGALTSTACK_INTERPOSE
static void *volatile next_sigaltstack;
static __thread struct {
	uintptr_t lo, hi; /* [lo, hi): armed with SS_AUTODISARM; hi == 0: none */
} armed __attribute__((tls_model("initial-exec")));

static int sigaltstack_hook(const stack_t *ss, stack_t *old)
{
	void *f = __atomic_load_n(&next_sigaltstack, __ATOMIC_ACQUIRE);
	if (!f)
		f = find_next("sigaltstack", (void *)sigaltstack_hook);
	if (!f)
		stitch_die("ftrace: cannot find libc's sigaltstack");
	int (*fn)(const stack_t *, stack_t *);
	memcpy(&fn, &f, sizeof(fn));
	stack_t want = { .ss_flags = SS_DISABLE };
	if (ss)
		want = *ss; /* before the call: old may be ss */
	int r = fn(ss, old);
	if (r == 0 && ss) {
		bool autodisarm = !(want.ss_flags & SS_DISABLE) && (want.ss_flags & (int)SS_AUTODISARM);
		/* a signal handler of this thread may read it between the stores:
		 * none first, then the bounds */
		armed.hi = 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		armed.lo = autodisarm ? (uintptr_t)want.ss_sp : 0;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		armed.hi = autodisarm ? (uintptr_t)want.ss_sp + want.ss_size : 0;
	}
	return r;
}

bool stitch__ftrace_autodisarm_stack(uintptr_t *lo, uintptr_t *hi)
{
	*hi = armed.hi;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	*lo = armed.lo;
	return *hi != 0 && *lo < *hi;
}
#endif

STITCH_EXPORT_AS(longjmp, longjmp_hook);
STITCH_EXPORT_AS(_longjmp, underscore_longjmp_hook); // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)
STITCH_EXPORT_AS(siglongjmp, siglongjmp_hook);
void __longjmp_chk(sigjmp_buf env, int val) __attribute__((noreturn)); // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)
STITCH_EXPORT_AS(__longjmp_chk, longjmp_chk_hook); // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)
STITCH_EXPORT_AS(setcontext, setcontext_hook);
#ifndef STITCH_NO_SIGALTSTACK_INTERPOSE
STITCH_EXPORT_AS(sigaltstack, sigaltstack_hook);
#endif

static const struct stitch_interposer hooks[] = {
	{ "longjmp", (void *)longjmp_hook, &next_longjmp },
	{ "_longjmp", (void *)underscore_longjmp_hook, &next_underscore_longjmp },
	{ "siglongjmp", (void *)siglongjmp_hook, &next_siglongjmp },
	{ "__longjmp_chk", (void *)longjmp_chk_hook, &next_longjmp_chk },
	{ "setcontext", (void *)setcontext_hook, &next_setcontext },
#ifndef STITCH_NO_SIGALTSTACK_INTERPOSE
	{ "sigaltstack", (void *)sigaltstack_hook, &next_sigaltstack },
#endif
};
#define NHOOKS (sizeof(hooks) / sizeof(hooks[0]))

void stitch__ftrace_longjmp_init(void)
{
	for (size_t i = 0; i < NHOOKS; i++)
		__atomic_store_n(hooks[i].next, find_next(hooks[i].name, hooks[i].ours), __ATOMIC_RELEASE);
	find_sp_guard();
}

/*
 * Loaded by dlopen() (stitch-trace attach), libstitch comes after libc in
 * the lookup order and the program's jumps are bound to libc's: the words
 * they go through are pointed here (imports.c, as ftrace_unwind.c does for
 * the unwinder).  Linked in or preloaded, the walk finds them bound here
 * already.  Update lock held; again whenever modules were loaded (their
 * words were bound meanwhile).  Best effort: a word bound elsewhere (another
 * interposer) is left alone, and such a jump out of a section leaves it as
 * before.
 */
static bool redirected, wanted;

void stitch__ftrace_longjmp_prepare(void)
{
	wanted = true;
	if (redirected)
		return;
	struct stitch_import_redirect r[NHOOKS];
	redirected = stitch_redirect_interposers(hooks, r, NHOOKS, NULL, (const void *)before_jump) == 0;
}

/* Update lock held (rescan()): the new modules' words, at once - not at
 * the next registration, which may never come. */
void stitch__ftrace_longjmp_modules_changed(void)
{
	redirected = false;
	if (wanted)
		stitch__ftrace_longjmp_prepare();
}
#else
void stitch__ftrace_longjmp_init(void)
{
}


void stitch__ftrace_longjmp_prepare(void)
{
}

void stitch__ftrace_longjmp_modules_changed(void)
{
}
#endif

#if !defined(JB_SP_SLOT) || defined(STITCH_NO_SIGALTSTACK_INTERPOSE)
/* No jump is followed, or no SS_AUTODISARM stack is known. */
bool stitch__ftrace_autodisarm_stack(uintptr_t *lo, uintptr_t *hi)
{
	*lo = *hi = 0;
	return false;
}
#endif
