/* SPDX-License-Identifier: MIT */
/*
 * Contexts interrupted by the program's own signal handlers.
 *
 * Why: the quiescence (quiesce.c) asks every thread where it is, and the
 * protocols act on the answer - wait while a thread is inside a range
 * (a slot about to be reused, a direct trampoline about to be freed), or
 * move it (the replay of seed 004, the five-NOP fixup).  A thread that is
 * running one of the program's signal handlers has been interrupted twice:
 * the quiescence handler sees the handler's frame, but when the handler
 * returns the thread goes back to the context the first signal interrupted,
 * which may be the middle of a site.  So every handler the program installs
 * runs inside a wrapper that pushes the interrupted ucontext on a small
 * per-thread stack for the duration of the handler, and the quiescence
 * handler checks and fixes up those contexts too (the kernel restores a
 * context from the signal frame on sigreturn, so writing its PC there is
 * how the fixup reaches it).
 *
 * How: sigaction() and signal() are interposed - libstitch's definitions
 * come before libc's in symbol lookup - and install the wrapper in place of
 * a handler; the program reads back its own handler.  Handlers installed
 * before libstitch was loaded are wrapped by stitch_signals_init().  The
 * library installs its own handlers with stitch_sigaction_raw().
 *
 * A handler that leaves by longjmp() never pops its entry: an entry whose
 * context lies below a newer one on the stack is dead (the stack grows
 * down) and is dropped at the next push, and an entry is believed only if
 * its context still holds the PC recorded at the push.
 *
 * Not covered (documented in docs/ftrace.md): handlers installed with the
 * raw system call, sigset()/bsd_signal(), and sanitizer builds, whose
 * runtimes intercept sigaction themselves.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <string.h>

#include "arch/arch.h"
#include "core/internal.h"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define STITCH_NO_SIGNAL_WRAP 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer)
#define STITCH_NO_SIGNAL_WRAP 1
#endif
#endif

#define NEST_MAX 8

struct nest_entry {
	ucontext_t *uc;
	uintptr_t pc; /* the context's PC as we last knew it: checks the entry is live */
};

static __thread struct {
	unsigned depth; /* may exceed NEST_MAX: entries beyond it are not recorded */
	struct nest_entry e[NEST_MAX];
} nest __attribute__((tls_model("initial-exec")));

typedef int (*sigaction_fn)(int, const struct sigaction *, struct sigaction *);
static sigaction_fn real_sigaction_fn;
static pthread_once_t real_once = PTHREAD_ONCE_INIT;

static void find_real_sigaction(void)
{
	real_sigaction_fn = (sigaction_fn)dlsym(RTLD_NEXT, "sigaction");
}

/*
 * At load, not at the first use: dlsym() takes the loader's lock, and the
 * first use may come from stitch_init() in one thread while another
 * thread's dlopen() holds that lock and runs a constructor that waits for
 * stitch (its update lock, or the init once) - a deadlock (a probe on
 * 2026-11-28: a key's first update racing a dlopen() hung 3 runs in 3).
 * A constructor runs with the loader's lock held by its own thread.
 */
__attribute__((constructor)) static void find_real_sigaction_at_load(void)
{
	pthread_once(&real_once, find_real_sigaction);
}

int stitch_sigaction_raw(int sig, const struct sigaction *sa, struct sigaction *old)
{
	pthread_once(&real_once, find_real_sigaction);
	if (!real_sigaction_fn)
		stitch_die("cannot find libc's sigaction");
	return real_sigaction_fn(sig, sa, old);
}

/* ---- the stack of interrupted contexts ------------------------------------- */

size_t stitch_nested_contexts(ucontext_t **out, size_t max)
{
	unsigned d = nest.depth < NEST_MAX ? nest.depth : NEST_MAX;
	uintptr_t here = (uintptr_t)__builtin_frame_address(0);
	size_t n = 0;
	for (unsigned i = 0; i < d && n < max; i++) {
		ucontext_t *uc = nest.e[i].uc;
		/* live outer contexts are above this frame, and still say what we saw */
		if ((uintptr_t)uc > here && arch_ucontext_pc(uc) == nest.e[i].pc)
			out[n++] = uc;
	}
	return n;
}

void stitch_nested_set_pc(ucontext_t *uc, uintptr_t pc)
{
	unsigned d = nest.depth < NEST_MAX ? nest.depth : NEST_MAX;
	for (unsigned i = 0; i < d; i++)
		if (nest.e[i].uc == uc)
			nest.e[i].pc = pc;
	arch_ucontext_set_pc(uc, pc);
}

#ifndef STITCH_NO_SIGNAL_WRAP

/* ---- the program's handlers --------------------------------------------------- */

#define NSIGS 65 /* 1..64 on Linux */

struct user_handler {
	_Atomic(void *) fn; /* sa_handler or sa_sigaction; NULL: not wrapped */
	_Atomic int flags;  /* the program's sa_flags */
};
static struct user_handler handlers[NSIGS];
static struct sigaction programs[NSIGS]; /* what the program set, as it set it (lock) */
static pthread_mutex_t handlers_lock = PTHREAD_MUTEX_INITIALIZER;

static void wrapper(int sig, siginfo_t *info, void *context)
{
	ucontext_t *uc = context;
	unsigned d = nest.depth;
	/* entries below this context on the stack belong to handlers that
	 * were left by longjmp */
	while (d > 0 && d <= NEST_MAX && (uintptr_t)nest.e[d - 1].uc < (uintptr_t)uc)
		d--;
	if (d < NEST_MAX)
		nest.e[d] = (struct nest_entry){ uc, arch_ucontext_pc(uc) };
	nest.depth = d + 1;
	atomic_signal_fence(memory_order_seq_cst);
	/* one of the library's int3 traps, delivered after the program replaced
	 * our SIGTRAP handler (arch.h): not the program's to see */
	if (sig == SIGTRAP && arch_sigtrap_claim(info, context)) {
		atomic_signal_fence(memory_order_seq_cst);
		nest.depth = d;
		return;
	}
	void *fn = atomic_load_explicit(&handlers[sig].fn, memory_order_acquire);
	int flags = atomic_load_explicit(&handlers[sig].flags, memory_order_relaxed);
	if (fn && (flags & SA_SIGINFO))
		((void (*)(int, siginfo_t *, void *))fn)(sig, info, context);
	else if (fn)
		((void (*)(int))fn)(sig);
	atomic_signal_fence(memory_order_seq_cst);
	nest.depth = d;
}

static bool is_function(const struct sigaction *sa)
{
	if (sa->sa_flags & SA_SIGINFO)
		return sa->sa_sigaction != NULL;
	return sa->sa_handler != SIG_DFL && sa->sa_handler != SIG_IGN;
}

/* Install `sa` for the program (wrapped if it is a function); lock held. */
static int install(int sig, const struct sigaction *sa)
{
	if (!is_function(sa)) {
		int r = stitch_sigaction_raw(sig, sa, NULL);
		if (r == 0) {
			atomic_store(&handlers[sig].fn, NULL);
			programs[sig] = *sa;
		}
		return r;
	}
	struct sigaction w = *sa;
	w.sa_sigaction = wrapper;
	w.sa_flags |= SA_SIGINFO;
	/* the wrapper finds the new handler before the kernel can call it */
	atomic_store(&handlers[sig].flags, sa->sa_flags);
	atomic_store(&handlers[sig].fn, (sa->sa_flags & SA_SIGINFO) ? (void *)sa->sa_sigaction : (void *)sa->sa_handler);
	int r = stitch_sigaction_raw(sig, &w, NULL);
	if (r == 0)
		programs[sig] = *sa;
	return r;
}

__attribute__((visibility("default"))) int sigaction(int sig, const struct sigaction *sa, struct sigaction *old)
{
	if (sig <= 0 || sig >= NSIGS || sig == SIGKILL || sig == SIGSTOP || (sig >= 32 && sig < SIGRTMIN))
		return stitch_sigaction_raw(sig, sa, old);
	/* sigaction is async-signal-safe: no handler of this thread may run
	 * (and call it) while the lock is held */
	sigset_t all, saved;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &saved);
	pthread_mutex_lock(&handlers_lock);
	struct sigaction cur;
	int r = stitch_sigaction_raw(sig, NULL, &cur);
	if (r == 0 && cur.sa_sigaction == wrapper && (cur.sa_flags & SA_SIGINFO))
		cur = programs[sig]; /* the program sees its own handler */
	if (r == 0 && sa) {
		/* SA_RESETHAND may have put SIG_DFL back under the wrapper's feet:
		 * what the kernel has wins */
		r = install(sig, sa);
	}
	pthread_mutex_unlock(&handlers_lock);
	pthread_sigmask(SIG_SETMASK, &saved, NULL);
	if (r == 0 && old)
		*old = cur;
	return r;
}

__attribute__((visibility("default"))) sighandler_t signal(int sig, sighandler_t handler)
{
	/* glibc's signal(): BSD semantics */
	struct sigaction sa, old;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = handler;
	sa.sa_flags = SA_RESTART;
	sigemptyset(&sa.sa_mask);
	sigaddset(&sa.sa_mask, sig);
	return sigaction(sig, &sa, &old) == 0 ? old.sa_handler : SIG_ERR;
}

void stitch_signals_init(void)
{
	pthread_mutex_lock(&handlers_lock);
	for (int sig = 1; sig < NSIGS; sig++) {
		struct sigaction cur;
		/* glibc's own (32, 33: thread cancellation, setxid) are left alone */
		if (sig == SIGKILL || sig == SIGSTOP || (sig >= 32 && sig < SIGRTMIN) ||
		    stitch_sigaction_raw(sig, NULL, &cur) != 0)
			continue;
		if (is_function(&cur) && cur.sa_sigaction != wrapper)
			install(sig, &cur);
	}
	pthread_mutex_unlock(&handlers_lock);
}

#else /* sanitizer builds: their runtimes own sigaction */

void stitch_signals_init(void)
{
}

#endif
