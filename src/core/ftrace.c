/* SPDX-License-Identifier: MIT */
/*
 * Function tracing core: site records per loaded module, tracer ops and
 * their filters, the per-site set of ops (RCU), and the dispatcher every
 * trampoline calls.  No opcode here: src/arch/<arch>/ftrace.c draws each
 * site and switches it.
 *
 * Records.  Every loaded module (dl_iterate_phdr) with a
 * __patchable_function_entries section gets an array of records, never
 * moved or freed while the module is loaded, and a trampoline region
 * within reach of its text holding what each enabled site calls
 * (ftrace_sites.c places it; the arch fills it).  The trampoline passes
 * the record's address ("cookie") to stitch__ftrace_dispatch(), so the
 * dispatcher finds the site's ops in O(1) without a search (the
 * call_ops idea, with the record as the literal).
 *
 * Ops sets.  A record points (RCU) at an immutable array of the ops that
 * trace it, NULL when none does.  An update builds the new arrays, then:
 *   1. publishes the arrays of sites that stay or become traced,
 *   2. switches the code of sites that become traced or untraced (one
 *      batch, arch protocol, constant number of syncs),
 *   3. unpublishes the arrays of sites that became untraced,
 *   4. waits for a grace period, and frees the old arrays.
 * A thread that entered a trampoline before step 2's last sync and reads
 * the set after step 3 finds NULL and calls nothing; one that read the old
 * set is waited for by step 4, so after unregister returns, no thread runs
 * the ops' func.  On error after step 1, the old arrays are put back.
 *
 * RCU: liburcu's urcu-bp where the build found it, else a small fallback;
 * a per-thread word is the recursion guard ("per-thread state, recursion
 * guard and RCU" below).
 *
 * x86-64 sites reach their trampoline through the record's `entry` word
 * (arch_ftrace_entry): the full one, a direct call's, or the lean one for
 * a set of one STITCH_FTRACE_F_PRESERVES_REGS ops (`lean`), published
 * and unpublished with the set.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/ftrace_internal.h"
#include "core/internal.h"
#include "core/patch_log.h"
#include "stitch/ftrace.h"

#if defined(__x86_64__)
#define FT_CFLAGS "-fpatchable-function-entry=5"
#elif defined(__aarch64__)
#define FT_CFLAGS "-fpatchable-function-entry=4,2 -falign-functions=8"
#else
#define FT_CFLAGS "-fpatchable-function-entry=8,4 -falign-functions=8"
#endif
#define FT_HINT "build with " FT_CFLAGS " (pkg-config --variable=trace_cflags stitch)"

#define FT_TLS __thread __attribute__((tls_model("initial-exec")))

/* ---- per-thread state, recursion guard and RCU -----------------------------
 *
 * Each thread has one thread-local block, stitch__ftrace_thread
 * (ftrace_internal.h).  Its word `seq` is the recursion guard, and only
 * that: 0 until the thread's first traced call (which sets up its exit
 * hook), then odd (FT_SEQ_OUT) while the thread is outside callbacks and
 * even while it runs them, so a callback that calls traced code (or a
 * signal handler that interrupts one) finds seq even and calls nothing.
 * No other thread reads it: it is not a grace-period mechanism.  While
 * the guard is set seq holds the stack pointer of the code that set it
 * (with FT_SEQ_REGISTERING or'ed in during the thread's set-up;
 * FT_SEQ_BUSY, 2, during its exit): every frame of
 * that section - the trampoline's or the C function's that set it, the
 * callbacks' - lies below it, every frame it will return to at or above
 * it, which is what tells a longjmp() out of a section from one inside it
 * ("longjmp() out of a section" below).  A signal handler may run between
 * a thread's load of seq and its store: its own sections set seq and put
 * FT_SEQ_OUT back before it returns, and the thread then stores its own
 * value - the parity, all that is tested, stays right.
 *
 * Every call the guard skips is counted (stitch_stats.ftrace_guard_skips):
 * a callback's own traced calls, a signal handler's that landed inside a
 * section, and the rare handler's that landed while the thread set itself
 * up or exited (seq even there too: those calls run untraced just the
 * same).  The thread's first traced call, which finds seq 0, is traced,
 * not skipped, and not counted.  Every trampoline's fast path hands a
 * call that finds seq even to the dispatcher without touching anything
 * (src/arch/<arch>/ftrace.c), so the count is in one place, on the path
 * that skips: a traced call outside callbacks runs no extra instruction.
 * A tracer reads it to say how many calls its recording lacks (stitch-trace
 * does).
 *
 * The RCU read side is liburcu's (urcu-bp) where the build found it,
 * else the small fallback below; ft_read_lock() sets the guard first and
 * then enters the RCU section, ft_read_unlock() leaves in reverse order,
 * so sections never nest on a thread (a signal handler inside one finds
 * the guard set).  Sets, ops and the shadow stack are read inside.  A
 * grace period (ft_synchronize) is urcu_bp_synchronize_rcu() (or the
 * fallback's).  The x86-64 trampolines do the same in assembly for their
 * fast cases (src/arch/x86_64/ftrace.c, with urcu-bp's read side inlined;
 * only when liburcu-bp uses membarrier(), ft_fast_ok()).
 *
 * RCU: liburcu's urcu-bp where the build found it (readers register
 * lazily, at their first read lock, and unregister at thread exit; the
 * flavour that survives fork(), see "fork()" below): the host's, or for a
 * cross build one built from Debian's source (scripts/cross-urcu.sh);
 * without it the small fallback, a per-thread sequence counter with a full
 * fence on the read side.
 *
 * fork().  Only the forking thread exists in the child, but whatever the
 * other threads had registered as readers is copied, including a reader
 * that was inside a read-side section at that moment (a thread in a
 * tracer callback, or between ft_read_lock and ft_read_unlock).  A grace
 * period in the child - every set_filter/unregister that drops a site -
 * would wait for it forever.  So the child forgets every reader but its
 * own, in the library's atfork child handler (init.c), which runs before
 * any code of the child can call us:
 *   - liburcu: urcu-bp, the one flavour liburcu supports across fork()
 *     without exec (its README, "Interaction with fork()"):
 *     urcu_bp_before_fork() takes its grace-period and registry locks
 *     (no grace period or registration is half done when the process is
 *     copied), urcu_bp_after_fork_child() prunes every registered reader
 *     except the calling thread's.  urcu-memb has no such call: its
 *     registry cannot be pruned from outside.
 *   - the fallback: stitch_ftrace_after_fork_child() marks every reader
 *     slot but the forking thread's free and outside a section, under the
 *     same argument: the thread that owned it does not exist.
 * Dropping those readers is safe: a reader is waited for so that what it
 * read is not freed under it, and a thread that does not exist reads
 * nothing.  The forking thread's own reader is kept as it is: if it forks
 * from inside a callback, it is still inside its section in the child.
 * The prepare handler takes the update lock first (every grace period is
 * waited for under it), then urcu-bp's locks: the same order as an update.
 * The guard word is the thread's own: the child's copy of the forking
 * thread's is right as it is.
 */

FT_TLS struct ft_thread stitch__ftrace_thread;

#ifdef STITCH_HAVE_URCU
/* The read side inlined (_LGPL_SOURCE), except under UBSan: liburcu-bp
 * 0.13 hands out its readers, declared 128-byte aligned, from an arena at
 * 32 bytes past a page, which UBSan reports in the inlined accesses; its
 * out-of-line functions do the same accesses uninstrumented.  Nor for
 * clang's analyzer (scripts/lint.sh), which cannot see that the inlined
 * urcu_bp_register() sets the thread's reader pointer it then follows. */
#if !defined(STITCH_URCU_OUT_OF_LINE) && !defined(__clang_analyzer__)
#define _LGPL_SOURCE
#endif
#include <urcu/urcu-bp.h>
#if !defined(_LGPL_SOURCE) && !defined(CONFIG_RCU_FORCE_SYS_MEMBARRIER)
extern int urcu_bp_has_sys_membarrier; /* liburcu-bp's, declared by its static header */
#endif

/* urcu-bp registers a thread at its first read lock and unregisters it at exit. */
static inline void rcu_lock(void)
{
	urcu_bp_read_lock();
}

static inline void rcu_unlock(void)
{
	urcu_bp_read_unlock();
}

/* Whether the thread is inside a read section, without registering it
 * (urcu_bp_read_ongoing() would: a mutex and an mmap, in a signal handler
 * here).  The reader's ctr is its first word (ftrace_asm.h checks). */
#ifdef _LGPL_SOURCE
static inline bool rcu_inside(void)
{
	const struct urcu_bp_reader *r = URCU_TLS(urcu_bp_reader);
	return r && (r->ctr & URCU_BP_GP_CTR_NEST_MASK);
}
#else
extern __thread unsigned long *urcu_bp_reader; /* liburcu-bp's, as the trampolines read it */
static inline bool rcu_inside(void)
{
	const unsigned long *r = urcu_bp_reader;
	return r && (*r & 0xffffffffUL);
}
#endif

static void ft_synchronize(void)
{
	urcu_bp_synchronize_rcu();
}

/* The x86-64 trampolines' fast paths inline urcu-bp's read side without
 * its slave barrier: records offer them their ops only when liburcu-bp's
 * grace periods use membarrier() (it decides once, at its initialization,
 * before any of our updates), which makes that barrier a compiler barrier. */
static bool ft_fast_ok(void)
{
	return urcu_bp_has_sys_membarrier != 0;
}

void stitch_ftrace_before_fork(void)
{
	urcu_bp_before_fork();
}

void stitch_ftrace_after_fork_parent(void)
{
	urcu_bp_after_fork_parent();
}

void stitch_ftrace_after_fork_child(void)
{
	urcu_bp_after_fork_child();
}
#else
/* Fallback: each reader's counter is odd while it is inside a read section. */
static pthread_key_t rcu_key;
static pthread_once_t rcu_once = PTHREAD_ONCE_INIT;

struct ft_reader {
	_Atomic unsigned long seq;
	_Atomic int used;
	struct ft_reader *next;
};
static _Atomic(struct ft_reader *) readers;
static FT_TLS struct ft_reader *me;

static void rcu_thread_exit(void *arg)
{
	struct ft_reader *r = arg;
	atomic_store_explicit(&r->used, 0, memory_order_release);
}

static void rcu_key_init(void)
{
	if (pthread_key_create(&rcu_key, rcu_thread_exit) != 0)
		stitch_die("ftrace: pthread_key_create");
}

static struct ft_reader *reader_get(void)
{
	pthread_once(&rcu_once, rcu_key_init);
	for (struct ft_reader *r = atomic_load(&readers); r; r = r->next) {
		int zero = 0;
		if (atomic_compare_exchange_strong(&r->used, &zero, 1))
			return r;
	}
	struct ft_reader *r = calloc(1, sizeof(*r));
	if (!r)
		stitch_die("ftrace: out of memory registering a reader thread");
	r->used = 1;
	r->next = atomic_load(&readers);
	while (!atomic_compare_exchange_weak(&readers, &r->next, r))
		;
	return r;
}

static inline void rcu_lock(void)
{
	if (__builtin_expect(!me, 0)) {
		me = reader_get();
		pthread_setspecific(rcu_key, me);
	}
	unsigned long s = atomic_load_explicit(&me->seq, memory_order_relaxed);
	atomic_store_explicit(&me->seq, s + 1, memory_order_relaxed);
	/* seq odd before any load of a set; pairs with ft_synchronize's fence */
	atomic_thread_fence(memory_order_seq_cst);
}

static inline void rcu_unlock(void)
{
	unsigned long s = atomic_load_explicit(&me->seq, memory_order_relaxed);
	atomic_store_explicit(&me->seq, s + 1, memory_order_release);
}

static inline bool rcu_inside(void)
{
	return me && (atomic_load_explicit(&me->seq, memory_order_relaxed) & 1);
}

static void ft_synchronize(void)
{
	/* the sets were unpublished before this fence; readers that were
	 * inside (odd) when we look are waited for until they leave */
	atomic_thread_fence(memory_order_seq_cst);
	for (struct ft_reader *r = atomic_load(&readers); r; r = r->next) {
		unsigned long s = atomic_load_explicit(&r->seq, memory_order_acquire);
		if (!(s & 1))
			continue;
		while (atomic_load_explicit(&r->seq, memory_order_acquire) == s)
			sched_yield();
	}
}

/* No assembly fast path reads the fallback's counters. */
static bool ft_fast_ok(void)
{
	return false;
}

void stitch_ftrace_before_fork(void)
{
}

void stitch_ftrace_after_fork_parent(void)
{
}

/*
 * The child's only thread is the forking one: every other slot belonged
 * to a thread that is not here.  Even and free, a slot is skipped by
 * ft_synchronize and can be taken by the child's next new thread.  A
 * thread between reader_get's CAS and its assignment to `me` in the parent
 * is another thread too, so its slot is freed here as well.
 */
void stitch_ftrace_after_fork_child(void)
{
	for (struct ft_reader *r = atomic_load(&readers); r; r = r->next) {
		if (r == me)
			continue;
		atomic_store_explicit(&r->seq, 0, memory_order_relaxed);
		atomic_store_explicit(&r->used, 0, memory_order_relaxed);
	}
}
#endif

/* Thread exit: its shadow stack goes (any hooked frames left will never
 * return); a later traced call of the thread sets this up again. */
static pthread_key_t thread_key;
static pthread_once_t thread_once = PTHREAD_ONCE_INIT;

static void thread_exit(void *arg)
{
	(void)arg;
	struct ft_thread *t = &stitch__ftrace_thread;
	/* Hooked calls left: the thread ends without returning through them
	 * (a cancellation that a C cleanup handler ended with glibc's own
	 * longjmp, past the frames the unwinder had reported): abandoned. */
	stitch__ftrace_graph_abandon_all();
	/* even meanwhile: a signal handler's traced calls call nothing */
	__atomic_store_n(&t->seq, FT_SEQ_BUSY, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	struct ft_shadow_stack *st = t->shadow;
	if (st) {
		/* gone before it is unmapped: an unwinder run by a signal
		 * handler meanwhile reads it (ftrace_unwind.c) */
		t->shadow = NULL;
		__atomic_signal_fence(__ATOMIC_SEQ_CST);
		munmap(st, sizeof(*st));
	}
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&t->seq, 0, __ATOMIC_RELAXED);
}

static void thread_key_init(void)
{
	if (pthread_key_create(&thread_key, thread_exit) != 0)
		stitch_die("ftrace: pthread_key_create");
}

/* The thread's first traced call.  Returns its (odd) seq. */
static __attribute__((noinline)) unsigned long thread_register(struct ft_thread *t)
{
	/* even meanwhile: a signal handler's traced calls return at once; a
	 * longjmp() out starts it again (stitch__ftrace_longjmp) */
	__atomic_store_n(&t->seq, ft_stack_pointer() | FT_SEQ_REGISTERING, __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	pthread_once(&thread_once, thread_key_init);
	pthread_setspecific(thread_key, (void *)1);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&t->seq, FT_SEQ_OUT, __ATOMIC_RELAXED);
	return FT_SEQ_OUT;
}

/* Enter a read section (the thread is outside one): the guard first,
 * then RCU (a signal handler in between calls nothing).  Inlined, so the
 * stack pointer is the calling function's: its callbacks' frames are below
 * it, the trampoline that called it above. */
static inline __attribute__((always_inline)) void ft_read_lock(struct ft_thread *t)
{
	__atomic_store_n(&t->seq, ft_stack_pointer(), __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	rcu_lock();
}

/* Leave the read section; s: the thread's seq before it was entered. */
static inline void ft_read_unlock(struct ft_thread *t, unsigned long s)
{
	rcu_unlock();
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&t->seq, s, __ATOMIC_RELAXED);
}

/*
 * longjmp() out of a section.  A callback, or a signal handler that
 * interrupted a section (the interpreter-timeout pattern: SIGALRM, then
 * siglongjmp() back to the main loop), may leave by longjmp() to a frame
 * above the section.  The section never ends then: the guard would stay
 * set - the thread's calls would never be traced again - and the RCU read
 * side held, so the next grace period (any unregister or filter change)
 * would wait for ever.  The library interposes the longjmp() family
 * (ftrace_longjmp.c), which reads the target's stack pointer from the
 * jmp_buf and calls this first.  The section is left when the target is
 * at or above the stack pointer in seq (ft_read_lock): every frame of the
 * section is below it, a setjmp() inside a callback included, so a
 * handler's jump back into the callback that it interrupted (a callback
 * probing memory under a SIGSEGV handler) keeps the section.  Two stacks:
 * a section on the signal stack is left by a jump off it (one armed with
 * SS_AUTODISARM, which the kernel reports disabled while a handler runs on
 * it, is known from the program's sigaltstack() calls: ftrace_longjmp.c);
 * a section off it is not left by a jump onto it (the target is a
 * handler that runs above the section's interruption); otherwise the
 * addresses compare, on
 * one stack only - the target in the section's mapping: a jump to another
 * stack (a coroutine switch, a user-level thread scheduler) may come back,
 * and the section must hold until then (a section ended there would leave
 * its read side twice, and its callback would run unprotected).
 * Leaving ends what the section had begun: urcu-bp's read side if the
 * thread is inside it (the trampolines take it just after the guard and
 * leave it just before: a jump from between the two finds it not taken),
 * and the guard.  Where libstitch was loaded by dlopen() the program's
 * jumps are bound to libc's; the GOT slots they go through are redirected
 * (stitch__ftrace_longjmp_prepare).  setcontext() is interposed too (its
 * context holds the target's stack pointer).  Not seen: a jump bound to
 * another interposer - the section stays as before.  Runs on the
 * thread itself, typically in a signal handler: stores to its own words
 * and urcu-bp's, which are async-signal-safe.
 */
/* The thread's signal stack [lo, hi) and whether the thread runs on it
 * now; false if it has none.  One armed with SS_AUTODISARM is reported
 * disabled by the kernel while a handler runs on it, and after a jump out
 * of that handler: known from the program's sigaltstack() calls then
 * (ftrace_longjmp.c).  System calls and the thread's words only: signal
 * handlers ask. */
static bool signal_stack(uintptr_t *lo, uintptr_t *hi, bool *on)
{
	stack_t ss;
	if (sigaltstack(NULL, &ss) == 0 && !(ss.ss_flags & SS_DISABLE)) {
		*lo = (uintptr_t)ss.ss_sp;
		*hi = *lo + ss.ss_size;
		*on = (ss.ss_flags & SS_ONSTACK) != 0;
		return true;
	}
	if (!stitch__ftrace_autodisarm_stack(lo, hi))
		return false;
	uintptr_t sp = ft_stack_pointer();
	*on = sp >= *lo && sp < *hi;
	return true;
}

/* Whether a and b lie in one mapping of /proc/self/maps (true if it
 * cannot be read: the addresses alone decide then, as they did before
 * this check): system calls and a buffer on the stack only, as a signal
 * handler may ask. */
static bool one_mapping(uintptr_t a, uintptr_t b)
{
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return true;
	char buf[2048];
	size_t have = 0;
	int found = -1; /* -1: a's mapping not seen yet */
	while (found < 0) {
		ssize_t n = read(fd, buf + have, sizeof(buf) - have);
		if (n <= 0)
			break;
		have += (size_t)n;
		char *line = buf, *nl;
		while (found < 0 && (nl = memchr(line, '\n', (size_t)(buf + have - line))) != NULL) {
			*nl = '\0';
			char *dash;
			uintptr_t lo = (uintptr_t)strtoull(line, &dash, 16), hi = 0;
			if (*dash == '-')
				hi = (uintptr_t)strtoull(dash + 1, NULL, 16);
			if (a >= lo && a < hi)
				found = b >= lo && b < hi;
			line = nl + 1;
		}
		/* the part line not complete yet to the front (a line is far
		 * shorter than the buffer: a path is at most PATH_MAX, and a
		 * longer one is cut, which only its tail would show) */
		size_t rest = (size_t)(buf + have - line);
		if (rest == sizeof(buf))
			rest = 0;
		memmove(buf, line, rest);
		have = rest;
	}
	close(fd);
	return found != 0; /* a's mapping not found: unknown, as unreadable */
}

static bool ft_jump_leaves(uintptr_t section_sp, uintptr_t target_sp)
{
	uintptr_t lo, hi;
	bool on;
	if (signal_stack(&lo, &hi, &on)) {
		bool section_on = section_sp >= lo && section_sp < hi;
		bool target_on = target_sp >= lo && target_sp < hi;
		if (section_on != target_on)
			return section_on;
	}
	/* another stack (a coroutine's, a user-level thread's) says nothing:
	 * the section may be resumed by a jump back, and ending it now would
	 * leave its read side twice then */
	return target_sp >= section_sp && one_mapping(section_sp, target_sp);
}

void stitch__ftrace_longjmp(uintptr_t target_sp)
{
	struct ft_thread *t = &stitch__ftrace_thread;
	unsigned long s = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	if ((s & 1) || s <= FT_SEQ_BUSY || !ft_jump_leaves(s & ~FT_SEQ_REGISTERING, target_sp))
		return;
	if (s & FT_SEQ_REGISTERING) {
		/* left thread_register() half done: it runs again (pthread_once
		 * and pthread_setspecific do not mind) */
		__atomic_store_n(&t->seq, 0, __ATOMIC_RELAXED);
		return;
	}
	if (rcu_inside())
		rcu_unlock();
	t->unhooked_section = 0; /* the dispatcher's callback left: its mark goes with it */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&t->seq, FT_SEQ_OUT, __ATOMIC_RELAXED);
}

/* ---- records and modules ---------------------------------------------------- */

/* One record no longer points at s: true if s is now unused (free it after a grace period). */
static bool set_put(struct ft_set *s)
{
	return s && --s->refs == 0;
}

/* A record's name and index, for a module's name index (select_filter). */
struct ft_name {
	const char *name;
	size_t rec;
};

struct ft_module {
	char *path;
	uintptr_t base;
	const void *phdr;
	struct ft_elf elf;
	struct ft_rec *recs;
	size_t nrecs;
	struct ft_name *by_name; /* the records in name order, made by the first filter (NULL: not yet) */
	char **demangled;        /* per record, its C++ name demangled or NULL; made by the first C++ pattern */
	int mangled;             /* -1: not counted yet; else how many of its names are C++ ones ("_Z...") */
	size_t nbad; /* records refused (bad != 0): a selection need not look at each record when 0 */
	uintptr_t region;
	size_t region_size;
	bool present;
	bool graph_seen; /* a set with graph ops was published on one of its records */
	struct ft_module *next;
};

/*
 * Records of unloaded modules that a shadow entry may still name: a call
 * of the module's code that was hooked, then left by longjmp(), leaves an
 * abandoned entry pointing at its record, reported (and dropped) only at
 * the thread's next traced call, or never.  Such records are kept, with no
 * set and the untraced words, so that the report finds no ops; never
 * freed, nor reused (a new copy of the module gets new records): 128 bytes
 * per site of a module that was traced with function_graph and unloaded.
 * Update lock.
 */
struct ft_retired {
	struct ft_rec *recs;
	struct ft_retired *next;
};
static struct ft_retired *retired;

/* Everything below is guarded by the update lock. */
static struct ft_module *modules;
static unsigned long long seen_adds, seen_subs;
static bool rescan_again; /* the last rescan left a module for the next (ft_lock) */
static bool scanned_once;

struct ft_ops_priv {
	struct ft_rec **sel; /* sorted by address of the record */
	size_t nsel;
};

static struct stitch_ftrace_ops **ops_list;
static size_t ops_count;

/* ---- function_graph: hooking returns ----------------------------------------
 *
 * A site whose set has ops with a ret_func makes the traced function return
 * into stitch__ftrace_return (arch): the dispatcher saves the function's
 * return address on the thread's shadow stack and overwrites the copy the
 * entry trampoline restores (arch_ftrace_parent_slot).  The return
 * trampoline saves the return registers and asks stitch__ftrace_graph_return()
 * where to go.  Each entry is keyed by the stack pointer the function
 * returns with, which is what the return trampoline sees:
 *  - a normal return matches the top entry;
 *  - a tail call (f jumps to g) gives g the same key and, as its return
 *    address, the return trampoline itself: g's entry is pushed above f's
 *    with that as its "original" address, so g returns into the trampoline
 *    again, which then pops f - both calls see their return, in order;
 *  - longjmp() abandons entries: a return whose key is above theirs, or a
 *    new entry whose key is above or equal (and that is not a tail call),
 *    proves their frames are gone (the stack grows down), so they are
 *    popped and reported with NULL registers.  At an entry only
 *    keys within FT_STACK_WINDOW below are taken as abandoned, so that a
 *    signal handler running on a sigaltstack at a higher address does not
 *    discard the interrupted code's live entries;
 *  - a signal handler's traced calls nest above the interrupted ones.
 * The shadow stack is touched only inside a read section (seq even), so a
 * signal handler's traced code, which returns at once from the dispatcher
 * then, never sees it half-updated.  It is mapped at a thread's first
 * hooked call (mmap: async-signal-safe) and unmapped at the thread's exit.
 * The x86-64 lean trampolines push and pop entries the same way for the
 * common cases (no entry to prune, top entry matches) and leave every
 * other case to the functions below.
 */
#define FT_STACK_WINDOW ((uintptr_t)64 << 20)
/* RETURN_TRAMP, ft_entry_key(): ftrace_internal.h */
#define E_KEY(e) ft_entry_key(e)

static struct ft_shadow_stack *shadow_get(struct ft_thread *t)
{
	if (__builtin_expect(t->shadow != NULL, 1))
		return t->shadow;
	void *p = mmap(NULL, sizeof(struct ft_shadow_stack), PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	t->shadow = p; /* unmapped by thread_exit (the thread is registered) */
	return t->shadow;
}

static bool set_has_ops(const struct ft_set *s, const struct stitch_ftrace_ops *ops)
{
	for (size_t i = 0; s && i < s->n; i++)
		if (s->ops[i] == ops)
			return true;
	return false;
}

/* Where a call whose return address is `ra` really returns: past the
 * entries that tail calls chained through the return trampoline. */
static uintptr_t real_parent(const struct ft_shadow_stack *st, size_t below, uintptr_t ra)
{
	uintptr_t tramp = RETURN_TRAMP;
	while (ra == tramp && below)
		ra = st->e[--below].orig;
	return ra;
}

/* Call the ret_funcs of e, st->e[idx] before it was popped (read section). */
static void graph_report(const struct ft_shadow_stack *st, size_t idx, const struct ft_shadow *e,
			 struct stitch_ftrace_ret_regs *rregs)
{
	struct ft_set *s = atomic_load_explicit(&e->rec->set, memory_order_consume);
	uintptr_t parent = real_parent(st, idx, e->orig);
	if (e->ops) {
		/* not if it was unregistered meanwhile (its memory may be freed
		 * since: membership first, by pointer), nor if it came back
		 * without a ret_func */
		if (set_has_ops(s, e->ops)) {
			stitch_ftrace_ret_func_t fn = e->ops->ret_func;
			if (fn)
				fn(e->rec->a.func, parent, e->ops, rregs);
		}
		return;
	}
	for (size_t i = 0; s && i < s->n; i++)
		if (s->ops[i]->ret_func)
			s->ops[i]->ret_func(e->rec->a.func, parent, s->ops[i], rregs);
}

/* Pop and report the entries above depth `keep`, innermost first.  Nothing
 * is pushed while a read section runs, so the popped slot stays intact. */
static void graph_abandon(struct ft_shadow_stack *st, size_t keep)
{
	while (st->depth > keep) {
		const struct ft_shadow *e = &st->e[--st->depth];
		graph_report(st, st->depth, e, NULL);
	}
}

/* No entry to prune for a call with this slot and key (the common case:
 * the top entry is a live caller's, below in the stack). */
static inline bool graph_no_prune(const struct ft_shadow_stack *st, const uintptr_t *slot, uintptr_t key)
{
	return *slot != RETURN_TRAMP && (st->depth == 0 || E_KEY(&st->e[st->depth - 1]) > key);
}

/*
 * At an entry of a site with graph ops (read section), before any
 * callback: report the entries this call proves abandoned, so that a
 * tracer sees their returns before this call's entry.  Returns the
 * thread's shadow stack, NULL if it has none (mapping failed).
 */
static __attribute__((noinline)) struct ft_shadow_stack *graph_prune(struct ft_thread *t, uintptr_t *slot,
								      uintptr_t key)
{
	struct ft_shadow_stack *st = shadow_get(t);
	if (!st)
		return NULL;
	/* Entries this call's frame is at or above are gone, except the one a
	 * tail call chains to (same key, returning into the trampoline). */
	bool tail = *slot == RETURN_TRAMP;
	size_t keep = st->depth;
	uintptr_t alt_lo = 0, alt_hi = 0;
	bool alt_read = false;
	while (keep) {
		uintptr_t e = E_KEY(&st->e[keep - 1]);
		if (!(e < key || (e == key && !tail)))
			break;
		if (key - e >= FT_STACK_WINDOW) {
			/* Far below: another stack's.  Gone only if it lies on the
			 * thread's signal stack while the thread runs elsewhere: a
			 * handler there left by longjmp (the window alone would keep
			 * its entries, and the ones under them, for ever). */
			if (!alt_read) {
				alt_read = true;
				bool on;
				if (!signal_stack(&alt_lo, &alt_hi, &on) || on)
					alt_lo = alt_hi = 0;
			}
			if (!(e >= alt_lo && e < alt_hi))
				break;
		}
		keep--;
	}
	graph_abandon(st, keep);
	return st;
}

/* After the entry callbacks: hook the return. */
static inline bool graph_push(struct ft_shadow_stack *st, struct ft_rec *r, struct stitch_ftrace_ops *ops,
			      uintptr_t *slot, uintptr_t key)
{
	if (__builtin_expect(!st || st->depth == STITCH_FTRACE_GRAPH_DEPTH, 0)) {
		stitch_count(graph_overflows, 1);
		return false;
	}
	struct ft_shadow *e = &st->e[st->depth++];
	e->orig = *slot;
	e->key = key | (e->orig == RETURN_TRAMP);
	e->rec = r;
	e->ops = ops;
	*slot = RETURN_TRAMP;
	return true;
}

/*
 * stitch_ftrace_return_hooked(): whether the call whose entry callbacks
 * run now will have its return hooked.  Where the shadow entry is pushed
 * differs by path: the C dispatcher pushes it after the callbacks (above
 * and in dispatch_set), every assembly fast path (x86-64 full and lean,
 * AArch64, RISC-V) before them - and those run only when the stack has
 * room (else they hand the call to the dispatcher, having changed
 * nothing), and then always push.  So while an entry callback runs, depth
 * below STITCH_FTRACE_GRAPH_DEPTH means hooked on either path (pushed
 * already, or room for the push to come), and only depth exactly at the
 * limit is ambiguous: the fast path's push of the last free entry, or the
 * dispatcher about to refuse.  The dispatcher tells the second apart by
 * marking the section (its seq, unique among the thread's sections, which
 * never nest) while the callbacks run; the fast paths are not touched:
 * no instruction is added to any trampoline.  Cleared after the
 * callbacks, and by a longjmp() that leaves the section.
 */
static inline bool graph_mark_unhooked(struct ft_thread *t, const struct ft_shadow_stack *st)
{
	if (__builtin_expect(st && st->depth < STITCH_FTRACE_GRAPH_DEPTH, 1))
		return false;
	t->unhooked_section = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	return true;
}

/* general-regs-only: callable from fast-ABI callbacks (stitch/ftrace.h) */
#if defined(__x86_64__)
__attribute__((target("general-regs-only")))
#endif
bool stitch_ftrace_return_hooked(void)
{
	const struct ft_thread *t = &stitch__ftrace_thread;
	unsigned long s = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	const struct ft_shadow_stack *st = t->shadow;
	if ((s & 1) || !st) /* not in a callback; or no stack: nothing hooked */
		return false;
	return st->depth < STITCH_FTRACE_GRAPH_DEPTH || t->unhooked_section != s;
}

static __attribute__((noreturn, noinline)) void graph_lost(void)
{
	/* Nowhere correct to go: say so rather than jump anywhere. */
	static const char msg[] = "stitch: function_graph: a hooked function returned with a stack that "
				  "matches no shadow entry (stack switched by swapcontext, or unwound "
				  "by an exception?); aborting\n";
	if (write(2, msg, sizeof(msg) - 1) < 0) {
		/* nothing more to do */
	}
	abort();
}

static __attribute__((noinline)) uintptr_t graph_return_slow(uintptr_t key, struct stitch_ftrace_ret_regs *rregs)
{
	struct ft_thread *t = &stitch__ftrace_thread;
	struct ft_shadow_stack *st = t->shadow;
	size_t i = st ? st->depth : 0;
	while (i && E_KEY(&st->e[i - 1]) != key)
		i--;
	if (!i)
		graph_lost();
	/* Already inside a section (a callback's or handler's code returning
	 * through a hooked frame it entered before): that section covers this. */
	unsigned long s = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	bool outer = s & 1;
	if (outer)
		ft_read_lock(t);
	if (__builtin_expect(i < st->depth, 0))
		graph_abandon(st, i);
	const struct ft_shadow *e = &st->e[--st->depth];
	uintptr_t orig = e->orig;
	graph_report(st, st->depth, e, rregs);
	if (outer)
		ft_read_unlock(t, s);
	return orig;
}

void stitch__ftrace_graph_unwound_below(uintptr_t sp)
{
	struct ft_thread *t = &stitch__ftrace_thread;
	unsigned long s = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	if (!(s & 1) || !t->shadow || !t->shadow->depth)
		return;
	ft_read_lock(t);
	struct ft_shadow_stack *st = t->shadow;
	size_t keep = st->depth;
	/* as graph_prune: within the window below sp (not another stack's) */
	while (keep && sp - E_KEY(&st->e[keep - 1]) < FT_STACK_WINDOW && E_KEY(&st->e[keep - 1]) <= sp)
		keep--;
	graph_abandon(st, keep);
	ft_read_unlock(t, s);
}

void stitch__ftrace_graph_abandon_all(void)
{
	struct ft_thread *t = &stitch__ftrace_thread;
	unsigned long s = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	if (!(s & 1) || !t->shadow || !t->shadow->depth)
		return;
	ft_read_lock(t);
	graph_abandon(t->shadow, 0);
	ft_read_unlock(t, s);
}

uintptr_t stitch__ftrace_graph_return(uintptr_t key, struct stitch_ftrace_ret_regs *rregs)
{
	struct ft_thread *t = &stitch__ftrace_thread;
	struct ft_shadow_stack *st = t->shadow;
	unsigned long s = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	size_t d = st ? st->depth : 0;
	/* the common case: the top entry, not a tail call's (its key would be
	 * tagged), one graph ops, outside callbacks */
	if (__builtin_expect(d && st->e[d - 1].key == key && st->e[d - 1].ops && (s & 1), 1)) {
		ft_read_lock(t);
		const struct ft_shadow *e = &st->e[--st->depth];
		uintptr_t orig = e->orig;
		struct stitch_ftrace_ops *ops = e->ops;
		/* not if it was unregistered meanwhile (its memory may be freed
		 * since: membership first, by pointer), nor if it came back
		 * without a ret_func */
		if (set_has_ops(atomic_load_explicit(&e->rec->set, memory_order_consume), ops)) {
			stitch_ftrace_ret_func_t fn = ops->ret_func;
			if (fn)
				fn(e->rec->a.func, orig, ops, rregs);
		}
		ft_read_unlock(t, s);
		return orig;
	}
	return graph_return_slow(key, rregs);
}

/* Several ops on the site (or one caught while its set changes). */
static __attribute__((noinline)) bool dispatch_set(struct ft_thread *t, struct ft_rec *r, struct ft_set *s,
						   uintptr_t parent_ip, struct stitch_ftrace_regs *regs)
{
	uintptr_t ip = r->a.func;
	struct stitch_ftrace_ops *graph_ops = NULL;
	struct ft_shadow_stack *st = NULL;
	uintptr_t key = 0, *slot = NULL;
	if (s->ngraph) {
		slot = arch_ftrace_parent_slot(regs, &key);
		st = graph_prune(t, slot, key);
	}
	bool unhooked = s->ngraph && graph_mark_unhooked(t, st);
	for (size_t i = 0; i < s->n; i++) {
		if (s->ops[i]->func) /* not a direct call caught in its switch */
			s->ops[i]->func(ip, parent_ip, s->ops[i], regs);
		if (s->ops[i]->ret_func)
			graph_ops = s->ops[i];
	}
	if (unhooked)
		t->unhooked_section = 0;
	return s->ngraph && graph_push(st, r, s->ngraph == 1 ? graph_ops : NULL, slot, key);
}

bool stitch__ftrace_dispatch(uintptr_t cookie, uintptr_t parent_ip, struct stitch_ftrace_regs *regs)
{
	struct ft_thread *t = &stitch__ftrace_thread;
	bool hooked = false;
	unsigned long seq = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	if (__builtin_expect(!(seq & 1), 0)) {
		if (seq) {
			/* A callback called traced code, or a signal handler
			 * interrupted the tracing code (or the thread's set-up or
			 * exit): the call runs untraced, and is counted so that it
			 * is not silently missing ("the recursion guard" above). */
			stitch_count(ftrace_guard_skips, 1);
			return false;
		}
		seq = thread_register(t);
	}
	ft_read_lock(t);
	struct ft_rec *r = (struct ft_rec *)cookie;
	struct ft_set *s = atomic_load_explicit(&r->set, memory_order_consume);
	if (__builtin_expect(parent_ip == RETURN_TRAMP, 0) && t->shadow) /* a tail call of a hooked function */
		parent_ip = real_parent(t->shadow, t->shadow->depth, parent_ip);
	if (__builtin_expect(s && s->n == 1, 1)) { /* one tracer: no loop */
		struct stitch_ftrace_ops *ops = s->ops[0];
		if (!s->ngraph) {
			if (ops->func)
				ops->func(r->a.func, parent_ip, ops, regs);
		} else {
			uintptr_t key, *slot = arch_ftrace_parent_slot(regs, &key);
			struct ft_shadow_stack *st = t->shadow;
			if (__builtin_expect(!st || !graph_no_prune(st, slot, key), 0))
				st = graph_prune(t, slot, key);
			if (ops->func) {
				bool unhooked = graph_mark_unhooked(t, st);
				ops->func(r->a.func, parent_ip, ops, regs);
				if (unhooked)
					t->unhooked_section = 0;
			}
			hooked = graph_push(st, r, ops, slot, key);
		}
	} else if (s) {
		hooked = dispatch_set(t, r, s, parent_ip, regs);
	}
	ft_read_unlock(t, seq);
	return hooked;
}

static int cmp_rec_ptr(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t) * (struct ft_rec *const *)a, y = (uintptr_t) * (struct ft_rec *const *)b;
	return x < y ? -1 : x > y;
}


static int cmp_addr(const void *a, const void *b)
{
	uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
	return x < y ? -1 : x > y;
}

static int module_init_sites(struct ft_module *m)
{
	stitch_sort_if_needed(m->elf.records, m->elf.nrecords, sizeof(uintptr_t), cmp_addr);
	/* sizeof is a multiple of the alignment (struct ft_rec) */
	m->recs = aligned_alloc(_Alignof(struct ft_rec), m->elf.nrecords * sizeof(*m->recs));
	if (!m->recs)
		return stitch_fail(STITCH_ENOMEM, "%s: out of memory for %zu sites", m->path, m->elf.nrecords);
	memset(m->recs, 0, m->elf.nrecords * sizeof(*m->recs));
	for (size_t i = 0; i < m->elf.nrecords; i++) {
		if (i && m->elf.records[i] == m->elf.records[i - 1])
			continue;
		struct ft_rec *r = &m->recs[m->nrecs++];
		r->mod = m;
		r->a.record = m->elf.records[i];
		atomic_init(&r->entry, arch_ftrace_entry(0, false));
		atomic_init(&r->lean_ret, FT_NO_LEAN_RET);
		atomic_init(&r->single_ret, FT_NO_LEAN_RET);
		int err = arch_ftrace_site_init(&r->a);
		/* the toggled instruction is inside the function (the record may
		 * point before it: AArch64 and RISC-V literals) */
		uintptr_t inside = r->a.patch ? r->a.patch : r->a.record;
		const struct ft_sym *sym = ft_elf_sym_at(&m->elf, inside);
		r->name = sym ? sym->name : "";
		r->a.func = sym ? sym->addr : inside;
		if (!err && strncmp(r->name, "stitch_", 7) == 0)
			err = stitch_fail(STITCH_EINVAL, "%s is part of stitch and cannot be traced", r->name);
		if (err) {
			r->bad = -err;
			r->why = strdup(stitch_last_error());
			m->nbad++;
		}
	}
	if (!m->nrecs)
		return 0;
	uintptr_t lo = m->recs[0].a.patch, hi = m->recs[m->nrecs - 1].a.patch + 16;
	m->region_size = arch_ftrace_region_size(m->nrecs);
	m->region = ft_map_near(lo, hi, m->region_size, arch_ftrace_reach());
	if (!m->region)
		return -STITCH_ERANGE;
	struct arch_ftrace_site **sites = calloc(m->nrecs, sizeof(*sites));
	uintptr_t *cookies = calloc(m->nrecs, sizeof(*cookies));
	int err = 0;
	if (!sites || !cookies)
		err = stitch_fail(STITCH_ENOMEM, "out of memory building trampolines");
	for (size_t i = 0; !err && i < m->nrecs; i++) {
		sites[i] = &m->recs[i].a;
		cookies[i] = (uintptr_t)&m->recs[i];
	}
	/* The region is ours and not live yet: fill, then make it RX. */
	if (!err)
		err = arch_ftrace_region_fill((uint8_t *)m->region, m->region, sites, cookies, m->nrecs);
	if (!err) {
		arch_flush_icache_range(m->region, m->region + m->region_size);
		if (mprotect((void *)m->region, m->region_size, PROT_READ | PROT_EXEC) != 0)
			err = stitch_fail_errno(STITCH_ESYS, "mprotect trampoline region");
		else
			err = arch_ftrace_region_ready(m->region, m->region_size);
	}
	free(sites);
	free(cookies);
	return err;
}

static inline void rec_publish_words(struct ft_rec *r, const struct ft_words *w);

/* A record's direct word, and its copy beside the fields a switch reads
 * (arch_ftrace_site.direct: whether the word is set). */
static void rec_set_direct(struct ft_rec *r, uintptr_t direct)
{
	atomic_store_explicit(&r->direct, direct, memory_order_release);
	r->a.direct = direct != 0;
}
static void set_words(const struct ft_set *s, struct ft_words *w);

static void module_free(struct ft_module *m)
{
	struct ft_words untraced;
	set_words(NULL, &untraced);
	struct ft_retired *keep = m->graph_seen ? malloc(sizeof(*keep)) : NULL;
	for (size_t i = 0; i < m->nrecs; i++) {
		struct ft_rec *r = &m->recs[i];
		struct ft_set *set = atomic_load(&r->set);
		free(r->why);
		r->why = NULL;
		if (m->graph_seen) {
			atomic_store_explicit(&r->set, NULL, memory_order_release);
			rec_set_direct(r, 0);
			rec_publish_words(r, &untraced);
			r->mod = NULL;
		}
		if (set_put(set))
			free(set);
	}
	if (m->region)
		munmap((void *)m->region, m->region_size);
	if (keep) {
		keep->recs = m->recs;
		keep->next = retired;
		retired = keep;
	} else if (m->graph_seen) {
		/* out of memory for the list entry: keep the records anyway, unlisted */
	} else {
		free(m->recs);
	}
	free(m->by_name);
	for (size_t i = 0; m->demangled && i < m->nrecs; i++)
		free(m->demangled[i]);
	free(m->demangled);
	ft_elf_free(&m->elf);
	free(m->path);
	free(m);
}

/* Something was unloaded: is this module a new copy at the old one's place? */
static bool module_reloaded(const struct ft_module *m)
{
	for (size_t i = 0; i < m->nrecs; i++)
		if (!m->recs[i].bad && arch_ftrace_site_lost(&m->recs[i].a, m->recs[i].enabled))
			return true;
	return false;
}

struct dl_entry {
	char *path;
	uintptr_t base;
	const void *phdr;
	int phnum;
};

struct dl_list {
	struct dl_entry *v;
	size_t n, cap;
	bool first_done;
	unsigned long long adds, subs;
	bool oom;
	bool skipped; /* a module loaded after the update pinned the others */
};

/*
 * Pinning the loaded modules for one update.
 *
 * An update reads a module's code (its sites' bytes, to compare them) and
 * writes it, from the rescan that finds the module to the last store.
 * Another thread's dlclose() may unmap the module meanwhile: a read of its
 * code then faults, and a store lands in whatever is mapped there next - a
 * fresh copy of the same library, whose entry then jumps into the old
 * copy's trampolines while every record says the site is untraced.  So
 * every update holds a reference to each module it may touch: ft_lock()
 * takes one with dlopen(RTLD_NOLOAD) before the update lock, ft_unlock()
 * drops it with dlclose() after.  A dlclose() of the program's then only
 * lowers the count; the last reference, ours, unloads the module after the
 * update, outside our lock (its destructors may take it: the static keys
 * of the module).  dlopen() and dlclose() are never called under the
 * update lock (the loader holds its own lock while constructors run, and
 * a constructor may take ours).
 *
 * A module loaded after ft_lock() listed the loaded modules has no
 * reference: the rescan leaves it for the next update (it is racing with
 * this one anyway) and makes sure that one looks again.  A module listed
 * that dlopen() does not find by its name (loaded with dlmopen() into
 * another namespace) is scanned without a reference, as before.
 */
struct ft_pin {
	uintptr_t base;   /* dlpi_addr */
	const char *name; /* dlpi_name: the loader's own string, compared as a pointer */
	void *handle;     /* our reference, or NULL */
};
static struct ft_pin *pins; /* update lock: the current update's, or NULL */
static size_t npins;

struct pin_list {
	struct ft_pin *v;
	size_t n, cap;
	bool first_done, oom;
};
static bool pins_oom; /* update lock: ft_lock() could not list the modules */

static int list_pin(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	struct pin_list *l = arg;
	bool main_prog = !l->first_done;
	l->first_done = true;
	if (main_prog || !info->dlpi_name || !*info->dlpi_name)
		return 0; /* the program and the vDSO stay */
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct ft_pin *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->oom = true; /* rescan() fails the update */
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	l->v[l->n++] = (struct ft_pin){ info->dlpi_addr, info->dlpi_name, NULL };
	return 0;
}

/*
 * The loader's own dlopen() and dlclose(), not a definition that comes
 * before libstitch in the lookup order: a program (the stitch-trace agent
 * among them) may interpose dlopen() with a wrapper that takes locks of its
 * own around a call into us.  Looked up at load, where dlsym() is safe.
 */
static void *(*loader_dlopen)(const char *, int) = dlopen;
static int (*loader_dlclose)(void *) = dlclose;

/* priority 101: before constructors that update (the stitch-trace agent's) */
__attribute__((constructor(101))) static void look_up_loader(void)
{
	void *open_fn = dlsym(RTLD_NEXT, "dlopen"), *close_fn = dlsym(RTLD_NEXT, "dlclose");
	if (open_fn && close_fn) {
		loader_dlopen = (void *(*)(const char *, int))open_fn;
		loader_dlclose = (int (*)(void *))close_fn;
	}
	stitch__ftrace_longjmp_init();
}

/* Only a listed module is scanned (see above). */
static bool pinned(const struct dl_phdr_info *info)
{
	for (size_t i = 0; i < npins; i++)
		if (pins[i].base == info->dlpi_addr && pins[i].name == info->dlpi_name)
			return true;
	return false;
}

/* Take the update lock, with every loaded module pinned (see above). */
static void ft_lock(void)
{
	struct pin_list l = { 0 };
	/* no dlopen() inside the walk: its lock is taken in the other order */
	dl_iterate_phdr(list_pin, &l);
	for (size_t i = 0; i < l.n; i++)
		l.v[i].handle = loader_dlopen(l.v[i].name, RTLD_LAZY | RTLD_NOLOAD);
	stitch_update_lock();
	pins = l.v; /* NULL: no library, no module is skipped */
	npins = l.n;
	pins_oom = l.oom;
}

static void ft_unlock(void)
{
	struct ft_pin *v = pins;
	size_t n = npins;
	pins = NULL;
	npins = 0;
	pins_oom = false;
	stitch_update_unlock();
	for (size_t i = 0; i < n; i++)
		if (v[i].handle)
			loader_dlclose(v[i].handle);
	free(v);
}

static int collect_module(struct dl_phdr_info *info, size_t size, void *arg)
{
	struct dl_list *l = arg;
	bool main_prog = !l->first_done;
	l->first_done = true;
	if (size >= offsetof(struct dl_phdr_info, dlpi_subs) + sizeof(info->dlpi_subs)) {
		l->adds = info->dlpi_adds;
		l->subs = info->dlpi_subs;
	}
	const char *name = info->dlpi_name;
	if (!main_prog && (!name || !*name))
		return 0; /* the vDSO */
	if (!main_prog && strstr(name, "linux-vdso"))
		return 0;
	if (!main_prog && pins && !pinned(info)) {
		l->skipped = true; /* loaded after ft_lock(): the next update's */
		return 0;
	}
	if (l->n == l->cap) {
		size_t cap = l->cap ? 2 * l->cap : 16;
		struct dl_entry *v = realloc(l->v, cap * sizeof(*v));
		if (!v) {
			l->oom = true;
			return 1;
		}
		l->v = v;
		l->cap = cap;
	}
	char *path = strdup(main_prog ? "/proc/self/exe" : name);
	if (!path) {
		l->oom = true;
		return 1;
	}
	l->v[l->n++] = (struct dl_entry){ path, info->dlpi_addr, info->dlpi_phdr, info->dlpi_phnum };
	// cppcheck-suppress memleak ; path is owned by the list now (freed with it)
	return 0;
}

static void ops_forget_module(struct ft_module *m);

/* Bring the module list up to date with what is loaded.  Update lock held. */
static int rescan(void)
{
	if (pins_oom)
		return stitch_fail(STITCH_ENOMEM, "out of memory listing the loaded modules to hold them");
	struct dl_list l = { 0 };
	dl_iterate_phdr(collect_module, &l);
	int err = 0;
	if (l.oom)
		err = stitch_fail(STITCH_ENOMEM, "out of memory listing loaded modules");
	if (!err && scanned_once && !rescan_again && l.adds == seen_adds && l.subs == seen_subs)
		goto out;
	for (struct ft_module *m = modules; m; m = m->next)
		m->present = false;
	for (size_t i = 0; !err && i < l.n; i++) {
		struct ft_module *m;
		for (m = modules; m; m = m->next)
			if (m->base == l.v[i].base && m->phdr == l.v[i].phdr && strcmp(m->path, l.v[i].path) == 0)
				break;
		if (m && scanned_once && l.subs != seen_subs && module_reloaded(m))
			m = NULL; /* a fresh copy at the same place: the old one is forgotten below */
		if (m) {
			m->present = true;
			continue;
		}
		m = calloc(1, sizeof(*m));
		if (!m) {
			err = stitch_fail(STITCH_ENOMEM, "out of memory");
			break;
		}
		m->path = l.v[i].path;
		l.v[i].path = NULL;
		m->mangled = -1;
		m->base = l.v[i].base;
		m->phdr = l.v[i].phdr;
		m->present = true;
		int e = ft_elf_read(m->path, m->base, m->phdr, l.v[i].phnum, &m->elf);
		if (!e && m->elf.nrecords)
			e = module_init_sites(m);
		if (e && m->elf.nrecords) {
			/* Keep the module, with every site refused and the reason. */
			for (size_t k = 0; k < m->nrecs; k++)
				if (!m->recs[k].bad) {
					m->recs[k].bad = -e;
					m->recs[k].why = strdup(stitch_last_error());
					m->nbad++;
				}
		}
		/* A module we cannot read has no sites for us (libraries of the
		 * system are usually not instrumented anyway). */
		m->next = modules;
		modules = m;
	}
	if (!err) {
		/* Forget modules that were unloaded: their code is gone. */
		bool any_gone = false;
		for (struct ft_module **pp = &modules; *pp;) {
			struct ft_module *m = *pp;
			if (m->present) {
				pp = &m->next;
				continue;
			}
			*pp = m->next;
			ops_forget_module(m);
			any_gone = true;
			m->next = NULL;
			/* Sets may still be read by a thread that was in the module's trampoline. */
			ft_synchronize();
			module_free(m);
		}
		(void)any_gone;
		seen_adds = l.adds;
		seen_subs = l.subs;
		rescan_again = l.skipped;
		scanned_once = true;
		stitch__ftrace_unwind_modules_changed();
		stitch__ftrace_longjmp_modules_changed();
	}
out:
	for (size_t i = 0; i < l.n; i++)
		free(l.v[i].path);
	free(l.v);
	return err;
}

static size_t total_sites(void)
{
	size_t n = 0;
	for (struct ft_module *m = modules; m; m = m->next)
		n += m->nrecs;
	return n;
}

/* ---- filters ------------------------------------------------------------------ */

struct sel_list {
	struct ft_rec **v;
	size_t n, cap;
};

static int sel_add(struct sel_list *s, struct ft_rec *r)
{
	if (s->n == s->cap) {
		size_t cap = s->cap ? 2 * s->cap : 64;
		struct ft_rec **v = realloc(s->v, cap * sizeof(*v));
		if (!v)
			return stitch_fail(STITCH_ENOMEM, "out of memory selecting sites");
		s->v = v;
		s->cap = cap;
	}
	s->v[s->n++] = r;
	return 0;
}

/*
 * The record whose function, patched instruction or record address is
 * addr.  A module's records are sorted by record address, and the other
 * two lie within a few bytes of it (x86: an endbr64 before the record;
 * AArch64/RISC-V: the record 8 bytes before the function): a search, then
 * a look at the neighbours - register_ips of 100 000 functions must not be
 * quadratic.  Modules whose records cannot hold addr are skipped at once.
 * The cursor (NULL: none) remembers where the last lookup ended: when
 * addresses come in ascending order (a symbol table, an earlier
 * selection) the next search gallops forward from there instead of
 * bisecting 128-byte records from scratch, a cache miss per step.
 */
#define REC_SLACK 16
struct rec_cursor {
	const struct ft_module *m;
	size_t i;
};

static struct ft_rec *rec_at(uintptr_t addr, struct rec_cursor *c)
{
	uintptr_t lo_addr = addr > REC_SLACK ? addr - REC_SLACK : 0;
	for (struct ft_module *m = modules; m; m = m->next) {
		if (!m->nrecs || m->recs[0].a.record > addr + REC_SLACK ||
		    m->recs[m->nrecs - 1].a.record + REC_SLACK < lo_addr)
			continue;
		size_t lo = 0, hi = m->nrecs;
		if (c && c->m == m && c->i < m->nrecs && m->recs[c->i].a.record < lo_addr) {
			/* the first record at or after lo_addr is past c->i:
			 * gallop to a record beyond it, then bisect the gap */
			size_t a = c->i + 1, b = a, step = 1;
			while (b < m->nrecs && m->recs[b].a.record < lo_addr) {
				a = b + 1;
				b += step;
				step *= 2;
			}
			lo = a;
			hi = b < m->nrecs ? b + 1 : m->nrecs;
		}
		while (lo < hi) {
			size_t mid = lo + (hi - lo) / 2;
			if (m->recs[mid].a.record < lo_addr)
				lo = mid + 1;
			else
				hi = mid;
		}
		for (size_t i = lo; i < m->nrecs && m->recs[i].a.record <= addr + REC_SLACK; i++) {
			struct ft_rec *r = &m->recs[i];
			if (r->a.func == addr || r->a.patch == addr || r->a.record == addr) {
				if (c)
					*c = (struct rec_cursor){ m, i };
				return r;
			}
		}
	}
	return NULL;
}

static int no_site_error(const char *what)
{
	if (total_sites() == 0)
		return stitch_fail(STITCH_ENOTFOUND,
				   "%s: no function of this program or of its loaded libraries is instrumented "
				   "for tracing; " FT_HINT,
				   what);
	return stitch_fail(STITCH_ENOTFOUND, "%s: matches no instrumented function", what);
}

static int refuse_bad(const struct ft_rec *r)
{
	return stitch_fail(r->bad, "cannot trace %s (%#lx in %s): %s", *r->name ? r->name : "?",
			   (unsigned long)r->a.func, r->mod->path, r->why ? r->why : "site refused");
}

/*
 * One pattern of a filter, classified once.  fnmatch(p, name, 0) - no
 * FNM_PATHNAME, FNM_PERIOD or FNM_NOESCAPE - gives "*" every name, a
 * pattern without *, ?, [ or backslash only itself, and such a literal
 * followed by one final * every name it begins; the rest go to fnmatch,
 * and only for the names that begin with the pattern's literal part (its
 * characters before the first *, ?, [ or backslash match only
 * themselves).
 */
enum pat_kind { PAT_ALL, PAT_EXACT, PAT_PREFIX, PAT_GLOB, PAT_ADDR, PAT_CXX };
struct pat {
	const char *s;            /* without the leading '!' */
	size_t len;               /* the literal part: all of s for PAT_EXACT */
	const struct ft_rec *rec; /* PAT_ADDR: the record at that address, or NULL */
	enum pat_kind kind;
	bool neg;
	bool bad_addr; /* PAT_ADDR: not only hexadecimal digits after 0x, or too big */
};

/*
 * C++ patterns.  A pattern with "::" or "(" (which no C or mangled name
 * has) is matched, with fnmatch, against the demangled names of C++
 * functions, and without a "(" also against the name before its parameter
 * list: "ns::Widget::draw" selects "ns::Widget::draw(int) const" and its
 * overloads, "ns::*" everything in ns.  A plain pattern is matched against
 * symbol names (through the name index) and, in modules that have C++
 * names, against their names before the parameter list as well, so
 * "handle" selects "handle(Parser&, int)" as it would a C function.  The
 * demangler is libstdc++'s __cxa_demangle: the process's, or loaded on the
 * first C++ pattern (a C++ program that uses nothing of libstdc++ does not
 * load it; it stays loaded, and is absent only where no libstdc++ is
 * installed).
 */
typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);

/* A C++ pattern ("ns::f", "f(int)"); also true of a filter holding one. */
static bool is_cxx_pattern(const char *s)
{
	return strstr(s, "::") || strchr(s, '(');
}

/*
 * libstdc++'s __cxa_demangle, looked up before the update lock is taken
 * (look_up_demangler(), from the calls that take a filter) and only read
 * under it: dlsym() and dlopen() take the loader's lock, which dlopen()
 * holds while it runs constructors, and those take the update lock when
 * they register static keys (ftrace_unwind.c, "loaded after the
 * unwinder", the same rule for the interposers' originals).
 */
static void *_Atomic demangler;

static void look_up_demangler(const char *filter)
{
	if (atomic_load_explicit(&demangler, memory_order_acquire))
		return;
	void *f = dlsym(RTLD_DEFAULT, "__cxa_demangle");
	/* loaded by dlopen() without RTLD_GLOBAL, or not at all: worth
	 * opening for a C++ pattern, which needs it */
	if (!f && filter && is_cxx_pattern(filter)) {
		void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
		if (h)
			f = dlsym(h, "__cxa_demangle"); /* h stays open: f is used later */
	}
	if (f)
		atomic_store_explicit(&demangler, f, memory_order_release);
}

static demangle_fn find_demangler(void)
{
	void *f = atomic_load_explicit(&demangler, memory_order_acquire);
	demangle_fn fn;
	memcpy(&fn, &f, sizeof(fn));
	return fn;
}

/* m->demangled, made once (its records never change), once there is a
 * demangler to make it with (a later C++ pattern may load one).  Update
 * lock held. */
static int module_demangled(struct ft_module *m)
{
	demangle_fn fn = find_demangler();
	if (m->demangled || !m->nrecs || !fn)
		return 0;
	char **v = calloc(m->nrecs, sizeof(*v));
	if (!v)
		return stitch_fail(STITCH_ENOMEM, "%s: out of memory demangling %zu names", m->path, m->nrecs);
	for (size_t i = 0; i < m->nrecs; i++) {
		if (strncmp(m->recs[i].name, "_Z", 2) != 0)
			continue;
		int status = -1;
		v[i] = fn(m->recs[i].name, NULL, NULL, &status);
		if (status != 0) {
			free(v[i]);
			v[i] = NULL;
		}
	}
	m->demangled = v;
	return 0;
}

/* Whether m has C++ names (counted once: its records never change). */
static bool module_has_mangled(struct ft_module *m)
{
	if (m->mangled < 0) {
		m->mangled = 0;
		for (size_t i = 0; i < m->nrecs; i++)
			m->mangled += strncmp(m->recs[i].name, "_Z", 2) == 0;
	}
	return m->mangled > 0;
}

/*
 * The parts of a demangled name a pattern is matched against.  Its
 * parameter list is the last parenthesised group outside any other
 * (parentheses also open "(anonymous namespace)" and end "operator()");
 * what comes before it is the head.  A function template instance's
 * demangled name begins with its return type: the qualified name is the
 * head after its last space outside brackets (none in "ns::S<unsigned
 * int>::f"), looked for before an "operator" (whose name may have spaces:
 * "operator new", "operator unsigned int").
 */
static bool cxx_ident_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_';
}

/* The first "operator" of s that is a word of its own (not "cooperator",
 * "operators", "binary_operator"), or NULL. */
static const char *cxx_operator_word(const char *s)
{
	for (const char *c = strstr(s, "operator"); c; c = strstr(c + 1, "operator"))
		if ((c == s || !cxx_ident_char(c[-1])) && !cxx_ident_char(c[8]))
			return c;
	return NULL;
}

static const char *cxx_params(const char *name)
{
	const char *open = NULL;
	int depth = 0;
	for (const char *c = name; *c; c++) {
		if (*c == '(' && depth++ == 0)
			open = c;
		else if (*c == ')' && depth > 0)
			depth--;
	}
	return open;
}

static const char *cxx_unqualified_start(const char *name)
{
	const char *op = cxx_operator_word(name);
	const char *start = name;
	int depth = 0;
	for (const char *c = name; *c && c != op; c++) {
		if (*c == '(' || *c == '<' || *c == '[')
			depth++;
		else if ((*c == ')' || *c == '>' || *c == ']') && depth > 0)
			depth--;
		else if (*c == ' ' && depth == 0)
			start = c + 1;
	}
	return start;
}

/* A template instance's name without its last template argument list
 * ("tpl::twice<int>" -> "tpl::twice"), in place; not an operator's
 * bracket ("operator>", "operator->"). */
static void cxx_cut_template_args(char *name)
{
	size_t n = strlen(name);
	if (n < 2 || name[n - 1] != '>' || name[n - 2] == '-' || cxx_operator_word(name))
		return;
	int depth = 0;
	for (size_t i = n; i-- > 0;) {
		if (name[i] == '>')
			depth++;
		else if (name[i] == '<' && --depth == 0) {
			name[i] = '\0';
			return;
		}
	}
}

/* The head (parts 0), the head without a return type (1), and that
 * without its template arguments (2); false if too long. */
static bool cxx_heads(const char *name, char heads[3][512])
{
	const char *params = cxx_params(name);
	size_t n = params ? (size_t)(params - name) : strlen(name);
	if (n >= sizeof(heads[0]))
		return false;
	memcpy(heads[0], name, n);
	heads[0][n] = '\0';
	const char *start = cxx_unqualified_start(heads[0]);
	memmove(heads[1], start, (size_t)(heads[0] + n - start) + 1);
	memcpy(heads[2], heads[1], strlen(heads[1]) + 1);
	cxx_cut_template_args(heads[2]);
	return true;
}

/* A plain pattern (no "::" or "("): a C++ function's demangled name before
 * its parameter list, as a C function's name ("handle" selects
 * "handle(Parser&, int)" and "int handle<int>(int)"; "Parser::parse"
 * needs a C++ pattern). */
static bool plain_matches_cxx(const struct pat *p, const char *demangled)
{
	char heads[3][512];
	return demangled && cxx_heads(demangled, heads) &&
	       (fnmatch(p->s, heads[0], 0) == 0 || fnmatch(p->s, heads[1], 0) == 0 ||
		fnmatch(p->s, heads[2], 0) == 0);
}

static bool pat_is_plain(const struct pat *p)
{
	return p->kind == PAT_EXACT || p->kind == PAT_PREFIX || p->kind == PAT_GLOB;
}

/* A C++ pattern: the whole demangled name, or it without its return type,
 * or the head, with or without it, or without its template arguments too
 * ("ns::*" and "ns::f" select "int ns::f<int>(int)", "ns::S::operator()"
 * its overloads). */
static bool cxx_matches(const struct pat *p, const char *name)
{
	if (!name)
		return false;
	if (fnmatch(p->s, name, 0) == 0)
		return true;
	char heads[3][512];
	if (!cxx_heads(name, heads))
		return false;
	size_t ret = strlen(heads[0]) - strlen(heads[1]); /* the return type's length, with its space */
	return (ret && fnmatch(p->s, name + ret, 0) == 0) || fnmatch(p->s, heads[0], 0) == 0 ||
	       (ret && fnmatch(p->s, heads[1], 0) == 0) || fnmatch(p->s, heads[2], 0) == 0;
}

/* Whether p is matched against demangled names at all: C++ and plain patterns. */
static bool pat_reads_demangled(const struct pat *p)
{
	return p->kind == PAT_CXX || pat_is_plain(p);
}

/* Whether p selects a record by its demangled name (NULL: not a C++ name). */
static bool demangled_matches(const struct pat *p, const char *demangled)
{
	return p->kind == PAT_CXX ? cxx_matches(p, demangled) : plain_matches_cxx(p, demangled);
}

static void pat_init(struct pat *p, const char *tok)
{
	p->neg = tok[0] == '!';
	p->s = p->neg ? tok + 1 : tok;
	p->rec = NULL;
	size_t lit = strcspn(p->s, "*?[\\");
	size_t len = strlen(p->s);
	p->bad_addr = false;
	if (strncmp(p->s, "0x", 2) == 0) {
		p->kind = PAT_ADDR;
		/* "0x12zz" or "0x12*" must not select the function at 0x12 */
		const char *digits = p->s + 2;
		errno = 0;
		unsigned long long a = strtoull(digits, NULL, 16);
		p->bad_addr = !*digits || strspn(digits, "0123456789abcdefABCDEF") != strlen(digits) || errno;
		p->rec = p->bad_addr ? NULL : rec_at((uintptr_t)a, NULL);
	} else if (is_cxx_pattern(p->s)) {
		p->kind = PAT_CXX;
	} else if (lit == len) {
		p->kind = PAT_EXACT;
	} else if (lit == len - 1 && p->s[lit] == '*') {
		p->kind = lit ? PAT_PREFIX : PAT_ALL;
	} else {
		p->kind = PAT_GLOB;
	}
	p->len = lit;
}

/*
 * Why a filter's exact name (PAT_EXACT) selects no site, when the process
 * has a function of that name: it is not instrumented - or its record was
 * dropped: its entry has the layout the trace flags give, but no record
 * names it.  That happens with gcc before 13: with -ffunction-sections it
 * ties all of an object's records to the object's first function, and
 * -Wl,--gc-sections drops them with that one (the trace flags say
 * -fno-function-sections for it, which a later -ffunction-sections
 * undoes).  0 when there is no such function.
 */
static int explain_name(const char *name, uintptr_t addr)
{
	struct arch_ftrace_site s = { .record = arch_ftrace_record_of(addr) };
	if (s.record && stitch_text_check_code(s.record, 16) == 0 && arch_ftrace_site_init(&s) == 0)
		return stitch_fail(STITCH_ENOTFOUND,
				   "function %s has no entry record, though its entry has the NOPs of the trace "
				   "flags: the linker dropped the record (gcc before 13 with -ffunction-sections "
				   "and -Wl,--gc-sections: the trace flags add -fno-function-sections, which a "
				   "-ffunction-sections after them undoes)",
				   name);
	return stitch_fail(STITCH_ENOTFOUND, "function %s is not instrumented for tracing; " FT_HINT, name);
}

/*
 * An exact name that no instrumented module's symbols hold, noted under
 * the update lock and looked up with dlsym() after it (explain_later()):
 * only the loader knows the names of modules we read no symbols of (those
 * without records, e.g. libc).  dlsym() takes the loader's lock, which
 * dlopen() holds while constructors run, and a constructor may take the
 * update lock to register a static key: under the update lock that would
 * be a lock-order inversion (ftrace_unwind.c and look_up_demangler() avoid
 * it the same way).
 */
static FT_TLS char *unexplained_name;
static FT_TLS uintptr_t unexplained_ip; /* the same for an address (dladdr()) */

/* Under the update lock: the module's symbols only (see above). */
static int name_not_traceable(const struct pat *p)
{
	if (p->kind != PAT_EXACT || p->neg)
		return 0;
	const char *name = p->s;
	uintptr_t addr = 0;
	for (const struct ft_module *m = modules; m && !addr; m = m->next)
		for (size_t i = 0; i < m->elf.nsyms && !addr; i++)
			if (strcmp(m->elf.syms[i].name, name) == 0)
				addr = m->elf.syms[i].addr;
	if (addr)
		return explain_name(name, addr);
	if (!unexplained_name)
		unexplained_name = strdup(name); /* out of memory: the plainer message stays */
	return 0;
}

/* After the update lock: a not-found error about a name noted above gets
 * the reason, when the loader knows the name. */
static int explain_later(int err)
{
	char *name = unexplained_name;
	uintptr_t ip = unexplained_ip;
	unexplained_name = NULL;
	unexplained_ip = 0;
	Dl_info info;
	if (name && err == -STITCH_ENOTFOUND) {
		uintptr_t addr = (uintptr_t)dlsym(RTLD_DEFAULT, name);
		if (addr)
			err = explain_name(name, addr);
	} else if (ip && err == -STITCH_ENOTFOUND && dladdr((void *)ip, &info) && info.dli_sname) {
		err = stitch_fail(STITCH_ENOTFOUND, "%#lx (%s) is not an instrumented function; " FT_HINT,
				  (unsigned long)ip, info.dli_sname);
	}
	free(name);
	return err;
}

static int cmp_name(const void *a, const void *b)
{
	return strcmp(((const struct ft_name *)a)->name, ((const struct ft_name *)b)->name);
}

/*
 * The module's records sorted by name, made once per loaded module (its
 * records never change): a filter then finds its names by binary search
 * instead of comparing every name of the program - for one function out
 * of 100 000 that was ~450 us of the ~500 us an enable took.  Names that
 * begin with the same literal are one range of it.  Update lock held.
 */
static int module_name_index(struct ft_module *m)
{
	if (m->by_name || !m->nrecs)
		return 0;
	struct ft_name *v = malloc(m->nrecs * sizeof(*v));
	if (!v)
		return stitch_fail(STITCH_ENOMEM, "%s: out of memory indexing %zu names", m->path, m->nrecs);
	for (size_t i = 0; i < m->nrecs; i++)
		v[i] = (struct ft_name){ m->recs[i].name, i };
	stitch_sort_if_needed(v, m->nrecs, sizeof(*v), cmp_name);
	m->by_name = v;
	return 0;
}

/* [*lo, *hi): the positions in m's name index of the names that begin with the len bytes of s. */
static void name_range(const struct ft_module *m, const char *s, size_t len, size_t *lo, size_t *hi)
{
	size_t a = 0, b = m->nrecs;
	while (a < b) { /* first name >= s[0, len) */
		size_t mid = a + (b - a) / 2;
		if (strncmp(m->by_name[mid].name, s, len) < 0)
			a = mid + 1;
		else
			b = mid;
	}
	*lo = a;
	b = m->nrecs;
	while (a < b) { /* first name after those beginning with s[0, len) */
		size_t mid = a + (b - a) / 2;
		if (strncmp(m->by_name[mid].name, s, len) <= 0)
			a = mid + 1;
		else
			b = mid;
	}
	*hi = a;
}

/* Whether p matches a name of its range in the name index (p not PAT_ADDR). */
static bool pat_keeps(const struct pat *p, const char *name)
{
	if (p->kind == PAT_EXACT)
		return name[p->len] == '\0'; /* not a longer name that begins with it */
	if (p->kind == PAT_GLOB)
		return fnmatch(p->s, name, 0) == 0;
	return true;
}

/* [*lo, *hi): the positions in m's name index (made) of the names p may match (p not PAT_ADDR). */
static void pat_range(const struct pat *p, const struct ft_module *m, size_t *lo, size_t *hi)
{
	*lo = 0;
	*hi = m->nrecs;
	if (p->kind != PAT_ALL)
		name_range(m, p->s, p->len, lo, hi);
}

/* Whether p matches a record of m. */
static bool pat_hits(const struct pat *p, const struct ft_module *m)
{
	if (p->kind == PAT_ADDR)
		return p->rec && p->rec->mod == m;
	if (p->kind != PAT_CXX) {
		size_t lo, hi;
		pat_range(p, m, &lo, &hi);
		for (size_t i = lo; i < hi; i++)
			if (pat_keeps(p, m->by_name[i].name))
				return true;
	}
	for (size_t i = 0; pat_reads_demangled(p) && m->demangled && i < m->nrecs; i++)
		if (demangled_matches(p, m->demangled[i]))
			return true;
	return false;
}

/* Set the bit of each record of m that p matches (bit i: m->recs[i]). */
static void pat_mark(const struct pat *p, const struct ft_module *m, uint64_t *bits)
{
	if (p->kind == PAT_ADDR) {
		if (p->rec && p->rec->mod == m) {
			size_t r = (size_t)(p->rec - m->recs);
			bits[r / 64] |= (uint64_t)1 << (r % 64);
		}
		return;
	}
	if (p->kind != PAT_CXX) {
		size_t lo, hi;
		pat_range(p, m, &lo, &hi);
		for (size_t i = lo; i < hi; i++)
			if (pat_keeps(p, m->by_name[i].name)) {
				size_t r = m->by_name[i].rec;
				bits[r / 64] |= (uint64_t)1 << (r % 64);
			}
	}
	for (size_t r = 0; pat_reads_demangled(p) && m->demangled && r < m->nrecs; r++)
		if (demangled_matches(p, m->demangled[r]))
			bits[r / 64] |= (uint64_t)1 << (r % 64);
}

/*
 * The next pattern of a filter, cut in place: patterns are separated by
 * whitespace or ',' outside parentheses and angle brackets, so a C++
 * parameter or template argument list is written as it is demangled,
 * ", " included ("ns::f(int, char)", "ns::Map<int, int>::find").  The
 * brackets of an operator's name ("operator<", "operator>>=",
 * "operator->") are not brackets.  NULL at the end; *unclosed is set if
 * the pattern returned leaves a bracket open.
 */
static char *next_pattern(char **cursor, bool *unclosed)
{
	char *c = *cursor;
	while (*c && strchr(" \t\n,", *c))
		c++;
	if (!*c)
		return NULL;
	char *start = c;
	int depth = 0;
	for (; *c && (depth > 0 || !strchr(" \t\n,", *c)); c++) {
		/* operator<, operator<<, operator>>, operator->, ... ("operator"
		 * a word of its own: not binary_operator<int>) */
		size_t pos = (size_t)(c - start), back = 8 + (pos >= 9 && strchr("<>-", c[-1]) ? 1 : 0);
		if ((*c == '<' || *c == '>') && pos >= back && strncmp(c - back, "operator", 8) == 0 &&
		    (pos == back || !cxx_ident_char(c[-(ptrdiff_t)back - 1])))
			continue;
		if (*c == '(' || *c == '<')
			depth++;
		else if ((*c == ')' || *c == '>') && depth > 0)
			depth--;
	}
	*unclosed = depth > 0;
	if (*c)
		*c++ = '\0';
	*cursor = c;
	return start;
}

/* Select the sites of a filter string (see ftrace.h).  Sorted, no duplicates. */
static int select_filter(const char *filter, struct sel_list *out)
{
	memset(out, 0, sizeof(*out));
	free(unexplained_name); /* only this filter's name is explained */
	unexplained_name = NULL;
	char *copy = strdup(filter ? filter : "");
	if (!copy)
		return stitch_fail(STITCH_ENOMEM, "out of memory");
	char *tok[256];
	struct pat pat[256];
	size_t ntok = 0, npos = 0;
	char *cursor = copy;
	bool unclosed = false;
	for (char *t = next_pattern(&cursor, &unclosed); t; t = next_pattern(&cursor, &unclosed)) {
		if (unclosed) {
			int err = stitch_fail(STITCH_EINVAL, "filter pattern '%s' leaves a '(' or '<' open", t);
			free(copy);
			return err;
		}
		if (ntok == 256) {
			free(copy);
			return stitch_fail(STITCH_EINVAL, "filter has more than 256 patterns");
		}
		if (t[0] == '!' && t[1] == '\0') {
			free(copy);
			return stitch_fail(STITCH_EINVAL, "filter \"%s\": '!' must be followed by the pattern it "
					   "excludes, with no space (\"!name\")",
					   filter);
		}
		pat_init(&pat[ntok], t);
		if (pat[ntok].bad_addr) {
			int err = stitch_fail(STITCH_EINVAL, "filter pattern '%s' is not an address: 0x and "
					      "hexadecimal digits (a glob cannot follow them)", t);
			free(copy);
			return err;
		}
		tok[ntok++] = t;
		npos += t[0] != '!';
	}
	int err = 0;
	if (total_sites() == 0 && !(ntok == 1 && (err = name_not_traceable(&pat[0])) != 0))
		err = no_site_error(filter && *filter ? filter : "*");
	bool cxx = false, plain = false;
	for (size_t k = 0; k < ntok; k++) {
		cxx |= pat[k].kind == PAT_CXX;
		plain |= pat_is_plain(&pat[k]);
	}
	for (struct ft_module *m = modules; !err && m; m = m->next) {
		err = module_name_index(m);
		if (!err && (cxx || (plain && module_has_mangled(m))))
			err = module_demangled(m);
	}
	/* every positive pattern must match something */
	for (size_t k = 0; !err && k < ntok; k++) {
		if (pat[k].neg)
			continue;
		bool hit = false;
		for (struct ft_module *m = modules; m && !hit; m = m->next)
			hit = pat_hits(&pat[k], m);
		if (!hit) {
			if (pat[k].kind == PAT_CXX && !find_demangler())
				err = stitch_fail(STITCH_ENOTFOUND,
						  "filter pattern '%s' is a C++ name, and this process has no C++ "
						  "demangler (libstdc++'s __cxa_demangle) to read its functions' names",
						  tok[k]);
			else if (!(err = name_not_traceable(&pat[k])))
				err = stitch_fail(STITCH_ENOTFOUND, "filter pattern '%s' matches no instrumented function",
						  tok[k]);
		}
	}
	/*
	 * Per module, a bit per record for "a positive pattern matches" and
	 * one for "a negative one does" (scratch: no fresh pages each time);
	 * the selected records are then read off in address order.
	 */
	bool unsorted = false;
	for (struct ft_module *m = modules; !err && m; m = m->next) {
		size_t words = (m->nrecs + 63) / 64;
		if (!words)
			continue;
		uint64_t *pos = stitch_scratch(STITCH_SCRATCH_SELECT, 2 * words * sizeof(*pos));
		if (!pos) {
			err = -STITCH_ENOMEM;
			break;
		}
		uint64_t *neg = pos + words;
		memset(pos, npos ? 0 : 0xff, words * sizeof(*pos));
		memset(neg, 0, words * sizeof(*neg));
		if (m->nrecs % 64)
			pos[words - 1] &= ((uint64_t)1 << (m->nrecs % 64)) - 1;
		for (size_t k = 0; k < ntok; k++)
			pat_mark(&pat[k], m, pat[k].neg ? neg : pos);
		size_t count = 0;
		for (size_t w = 0; w < words; w++)
			count += (size_t)__builtin_popcountll(pos[w] & ~neg[w]);
		if (!count)
			continue;
		struct ft_rec **v = realloc(out->v, (out->n + count) * sizeof(*v));
		if (!v) {
			err = stitch_fail(STITCH_ENOMEM, "out of memory selecting sites");
			break;
		}
		out->v = v;
		out->cap = out->n + count;
		/* each module's records come in address order; the sort below
		 * only when modules do not follow each other in memory */
		if (out->n && (uintptr_t)out->v[out->n - 1] > (uintptr_t)m->recs)
			unsorted = true;
		for (size_t w = 0; !err && w < words; w++)
			for (uint64_t b = pos[w] & ~neg[w]; b && !err; b &= b - 1) {
				struct ft_rec *r = &m->recs[w * 64 + (size_t)__builtin_ctzll(b)];
				if (m->nbad && r->bad)
					err = refuse_bad(r);
				else
					out->v[out->n++] = r;
			}
	}
	free(copy);
	if (!err && out->n == 0)
		err = no_site_error(filter && *filter ? filter : "*");
	if (err) {
		free(out->v);
		memset(out, 0, sizeof(*out));
		return err;
	}
	if (unsorted)
		qsort(out->v, out->n, sizeof(*out->v), cmp_rec_ptr);
	return 0;
}

static int select_ips(const uintptr_t *ips, size_t n, struct sel_list *out)
{
	memset(out, 0, sizeof(*out));
	int err = n == 0 ? stitch_fail(STITCH_EINVAL, "empty list of functions") : 0;
	struct rec_cursor cursor = { NULL, 0 };
	for (size_t i = 0; !err && i < n; i++) {
		struct ft_rec *r = rec_at(ips[i], &cursor);
		if (!r) {
			/* named from the modules' symbols we read, or by dladdr()
			 * after the lock (explain_later()) */
			const struct ft_sym *sym = NULL;
			for (const struct ft_module *m = modules; m && !sym; m = m->next)
				sym = ft_elf_sym_at(&m->elf, ips[i]);
			if (total_sites() == 0)
				err = no_site_error("function list");
			else if (sym)
				err = stitch_fail(STITCH_ENOTFOUND, "%#lx (%s) is not an instrumented function; " FT_HINT,
						  (unsigned long)ips[i], sym->name);
			else
				err = stitch_fail(STITCH_ENOTFOUND, "%#lx is not an instrumented function; " FT_HINT,
						  (unsigned long)ips[i]);
			if (total_sites() && !sym)
				unexplained_ip = ips[i];
		} else if (r->bad)
			err = refuse_bad(r);
		else
			err = sel_add(out, r);
	}
	if (err) {
		free(out->v);
		memset(out, 0, sizeof(*out));
		return err;
	}
	stitch_sort_if_needed(out->v, out->n, sizeof(*out->v), cmp_rec_ptr);
	size_t k = 0;
	for (size_t i = 0; i < out->n; i++)
		if (!k || out->v[k - 1] != out->v[i])
			out->v[k++] = out->v[i];
	out->n = k;
	return 0;
}

/* ---- committing a selection ------------------------------------------------------ */

static int direct_grace(struct ft_set *const *old, size_t n);

/* The lean trampoline may run s's ops (see ftrace.h, fast ABI). */
static struct stitch_ftrace_ops *set_lean(const struct ft_set *s)
{
	struct stitch_ftrace_ops *o = s && s->n == 1 ? s->ops[0] : NULL;
	if (!o || o->direct || !(o->flags & STITCH_FTRACE_F_PRESERVES_REGS) || !arch_ftrace_has_lean() ||
	    !ft_fast_ok())
		return NULL;
	return o;
}

/* The words of a record traced by s (NULL: untraced): where its stub goes,
 * its lean and single ops.  ft_fast_ok() is decided before any update. */
static void set_words(const struct ft_set *s, struct ft_words *w)
{
	uintptr_t direct = s && s->ops[0]->direct ? (uintptr_t)s->ops[0]->direct : 0;
	w->lean = set_lean(s);
	w->lean_ret = w->lean && w->lean->ret_func ? (uintptr_t)w->lean : FT_NO_LEAN_RET;
	w->single = s && s->n == 1 && !direct && ft_fast_ok() ? s->ops[0] : NULL;
	w->single_ret = w->single && w->single->ret_func ? (uintptr_t)w->single : FT_NO_LEAN_RET;
	w->entry = arch_ftrace_entry(direct, w->lean != NULL);
}

/* The set of r with ops removed (add=false) or added; *out NULL if empty. */
static int set_with(const struct ft_set *cur, struct stitch_ftrace_ops *ops, bool add, struct ft_set **out)
{
	size_t n = cur ? cur->n : 0, k = 0;
	*out = NULL;
	if (!add && n <= 1)
		return 0;
	struct ft_set *s = malloc(sizeof(*s) + (n + 1) * sizeof(s->ops[0]));
	if (!s)
		return stitch_fail(STITCH_ENOMEM, "out of memory for tracer sets");
	for (size_t i = 0; i < n; i++)
		if (cur->ops[i] != ops)
			s->ops[k++] = cur->ops[i];
	if (add)
		s->ops[k++] = ops;
	s->n = k;
	s->ngraph = 0;
	s->refs = 0;
	for (size_t i = 0; i < k; i++)
		s->ngraph += s->ops[i]->ret_func != NULL;
	set_words(s, &s->words);
	*out = s;
	return 0;
}

/* Publish r's words for a set whose words are w; its `direct` word is
 * published by the caller. */
static inline void rec_publish_words(struct ft_rec *r, const struct ft_words *w)
{
	atomic_store_explicit(&r->lean, w->lean, memory_order_release);
	atomic_store_explicit(&r->lean_ret, w->lean_ret, memory_order_release);
	atomic_store_explicit(&r->single, w->single, memory_order_release);
	atomic_store_explicit(&r->single_ret, w->single_ret, memory_order_release);
	atomic_store_explicit(&r->entry, w->entry, memory_order_release);
}

/* Records a few ahead of commit()'s walk over them: a switch of 100 000
 * sites reads megabytes of records, and would otherwise wait for each. */
#define FT_AHEAD 8

/*
 * Make `ops` trace exactly the records of `sel` (sorted; NULL/0 for none).
 * Update lock held.  On error nothing changed.  *late: an error found after
 * the change was made (a direct call's grace period could not be completed).
 */
static int commit(struct stitch_ftrace_ops *ops, struct ft_rec **sel, size_t nsel, int *late)
{
	*late = 0;
	struct ft_ops_priv *priv = ops->priv_;
	struct ft_rec **old = priv ? priv->sel : NULL;
	size_t nold = priv ? priv->nsel : 0;
	/* affected records: the union of old and new */
	size_t cap = nold + nsel, na = 0, i = 0, j = 0;
	/* per affected record, in one block of scratch memory (batch.c); every
	 * entry read below is written first */
	size_t c1 = cap ? cap : 1;
	size_t per = sizeof(struct ft_rec *) + 2 * sizeof(struct ft_set *) + sizeof(struct arch_ftrace_site *) +
		     sizeof(size_t) + 2 * sizeof(bool);
	char *block = stitch_scratch(STITCH_SCRATCH_FTRACE, c1 * per);
	struct ft_rec **aff = block ? (struct ft_rec **)block : NULL;
	struct ft_set **nset = block ? (struct ft_set **)(aff + c1) : NULL;
	struct ft_set **oset = block ? nset + c1 : NULL;
	struct arch_ftrace_site **sites = block ? (struct arch_ftrace_site **)(oset + c1) : NULL;
	size_t *sw_idx = block ? (size_t *)(sites + c1) : NULL;
	bool *was = block ? (bool *)(sw_idx + c1) : NULL, *want = block ? was + c1 : NULL;
	/* new sets made here, one per distinct old set (a small direct-mapped
	 * memo: records traced by the same ops share their old set) */
	struct ft_set *made_v[64], **made = made_v;
	size_t nmade = 0, made_cap = 64;
	struct {
		const struct ft_set *old;
		struct ft_set *new_set;
		bool used, add;
	} memo[64];
	memset(memo, 0, sizeof(memo));
	struct ft_words untraced;
	set_words(NULL, &untraced);
	int err = 0;
	if (!block)
		err = -STITCH_ENOMEM;
	size_t nsw = 0;
	while (!err && (i < nold || j < nsel)) {
		struct ft_rec *r;
		bool in_new;
		if (j + FT_AHEAD < nsel)
			// cppcheck-suppress nullPointer ; sel[] is read only when j + FT_AHEAD < nsel
			__builtin_prefetch(&sel[j + FT_AHEAD]->set, 1);
		if (i + FT_AHEAD < nold)
			__builtin_prefetch(&old[i + FT_AHEAD]->set, 1);
		// cppcheck-suppress nullPointer ; sel[j] is read only when j < nsel
		if (j >= nsel || (i < nold && (uintptr_t)old[i] < (uintptr_t)sel[j])) {
			r = old[i++];
			in_new = false;
		} else if (i >= nold || (uintptr_t)sel[j] < (uintptr_t)old[i]) {
			r = sel[j++];
			in_new = true;
		} else {
			i++;
			j++;
			continue; /* in both: unchanged for this ops */
		}
		aff[na] = r;
		oset[na] = atomic_load(&r->set);
		/* set_with(old, ops, add) depends on nothing else */
		size_t h = (((uintptr_t)oset[na] >> 4) * 2 + in_new) % 64;
		if (memo[h].used && memo[h].old == oset[na] && memo[h].add == in_new) {
			nset[na] = memo[h].new_set;
		} else {
			err = set_with(oset[na], ops, in_new, &nset[na]);
			if (!err && nset[na]) {
				if (nmade == made_cap) {
					struct ft_set **v = malloc(2 * made_cap * sizeof(*v));
					if (!v) {
						free(nset[na]);
						nset[na] = NULL;
						err = stitch_fail(STITCH_ENOMEM, "out of memory for tracer sets");
						break;
					}
					memcpy(v, made, nmade * sizeof(*v));
					if (made != made_v)
						free(made);
					made = v;
					made_cap *= 2;
				}
				made[nmade++] = nset[na];
			}
			/* a direct call owns its site: checked once per new set
			 * (a memo hit is a set already checked) */
			for (size_t o = 0; !err && nset[na] && nset[na]->n > 1 && o < nset[na]->n; o++)
				if (nset[na]->ops[o]->direct)
					err = stitch_fail(STITCH_EINVAL,
							  "cannot trace %s (%#lx): a direct call cannot share its site "
							  "with another ops",
							  *r->name ? r->name : "?", (unsigned long)r->a.func);
			if (!err) {
				memo[h].used = true;
				memo[h].add = in_new;
				memo[h].old = oset[na];
				memo[h].new_set = nset[na];
			}
		}
		/* in the same pass over the records: the sites whose code changes */
		if (!err && (nset[na] != NULL) != r->enabled) {
			sites[nsw] = &r->a;
			was[nsw] = r->enabled;
			want[nsw] = nset[na] != NULL;
			sw_idx[nsw++] = na;
		}
		na++;
	}
	if (!err && nsw) {
		err = stitch_ensure_init();
		if (err)
			goto fail;
	}
	if (!err) {
		/* 1. sets of sites that stay or become traced, and direct calls;
		 * `enabled` (the updater's alone) already as it will be, in the
		 * line just written: the roll-back below says what memory holds */
		for (size_t k = 0; k < na; k++)
			if (nset[k]) {
				atomic_store_explicit(&aff[k]->set, nset[k], memory_order_release);
				aff[k]->enabled = true;
				if (nset[k]->ngraph)
					aff[k]->mod->graph_seen = true;
				if (nset[k]->ops[0]->direct)
					rec_set_direct(aff[k], (uintptr_t)nset[k]->ops[0]->direct);
				rec_publish_words(aff[k], &nset[k]->words);
			}
		/* 2. switch the code */
		if (nsw)
			err = arch_ftrace_apply(sites, was, want, nsw);
		if (err) {
			for (size_t k = 0; k < na; k++) {
				atomic_store_explicit(&aff[k]->set, oset[k], memory_order_release);
				rec_set_direct(aff[k], oset[k] ? (uintptr_t)oset[k]->ops[0]->direct : 0);
				rec_publish_words(aff[k], oset[k] ? &oset[k]->words : &untraced);
			}
			/* what is in memory now (a late failure may leave new bytes) */
			for (size_t s = 0; s < nsw; s++)
				aff[sw_idx[s]]->enabled = was[s];
			ft_synchronize();
			goto fail;
		}
		/*
		 * 3. in one pass: the state of the sites switched off (those
		 * switched on were set at step 1); sets of sites that became
		 * untraced; direct calls that went.  A record's
		 * direct word is non-zero exactly while its set is a direct
		 * call's (steps 1 and 3, the roll-back above, modify_direct), so
		 * the sets say where it goes without loading the record.
		 */
		bool direct_gone = false;
		for (size_t k = 0, s = 0; k < na; k++) {
			if (s < nsw && sw_idx[s] == k && !was[s++])
				aff[k]->enabled = false;
			bool was_direct = oset[k] && oset[k]->ops[0]->direct;
			if (!nset[k]) {
				atomic_store_explicit(&aff[k]->set, NULL, memory_order_release);
				rec_publish_words(aff[k], &untraced);
			}
			if (was_direct && !(nset[k] && nset[k]->ops[0]->direct)) {
				rec_set_direct(aff[k], 0);
				direct_gone = true;
			}
		}
		/* 4. grace period, then the old sets no record uses any more go
		 * (a set's count reaches 0 at the last of its records: the
		 * pointers that follow in oset[] are other sets) */
		for (size_t k = 0; k < na; k++)
			if (nset[k])
				nset[k]->refs++;
		if (na)
			ft_synchronize();
		if (direct_gone)
			*late = direct_grace(oset, na); /* done either way: tables stay consistent */
		for (size_t k = 0; k < na; k++)
			if (set_put(oset[k]))
				free(oset[k]);
	}
fail:
	if (err)
		for (size_t k = 0; k < nmade; k++)
			free(made[k]);
	if (made != made_v)
		free(made);
	return err;
}

/*
 * A direct call was removed from some sites: wait until no thread is in
 * a direct trampoline that went, in the library's trampoline, or in a
 * module's trampoline region (a thread there may still be on its way to
 * the old target).  The switch is done either way; an error means the
 * caller must not free the trampoline.
 */
static int direct_grace_ranges(const struct stitch_range *gone, size_t ngone)
{
	size_t nr = 0, cap = 1 + ngone;
	for (struct ft_module *m = modules; m; m = m->next)
		cap++;
	struct stitch_range *r = calloc(cap, sizeof(*r));
	if (!r)
		return stitch_fail(STITCH_ENOMEM, "out of memory waiting for direct calls to finish");
	arch_ftrace_tramp_range(&r[0].start, &r[0].end);
	nr = 1;
	for (struct ft_module *m = modules; m; m = m->next)
		if (m->region)
			r[nr++] = (struct stitch_range){ m->region, m->region + m->region_size };
	for (size_t k = 0; k < ngone; k++)
		r[nr++] = gone[k];
	int err = stitch_quiesce(r, nr, NULL, NULL);
	free(r);
	if (err)
		return stitch_fail(-err, "direct calls were switched off, but a thread may still be in the direct "
				   "trampoline (%s): do not free it",
				   stitch_last_error());
	return 0;
}

static int direct_grace(struct ft_set *const *old, size_t n)
{
	size_t cap = 1, ng = 0;
	for (size_t k = 0; k < n; k++)
		cap += old[k] && old[k]->ops[0]->direct;
	struct stitch_range *gone = calloc(cap, sizeof(*gone));
	if (!gone)
		return stitch_fail(STITCH_ENOMEM, "out of memory waiting for direct calls to finish");
	for (size_t k = 0; k < n; k++)
		if (old[k] && old[k]->ops[0]->direct) {
			uintptr_t d = (uintptr_t)old[k]->ops[0]->direct;
			if (ng && gone[ng - 1].start == d)
				continue; /* records share sets: one range per trampoline in a row */
			gone[ng++] = (struct stitch_range){ d, d + old[k]->ops[0]->direct_size };
		}
	int err = direct_grace_ranges(gone, ng);
	free(gone);
	return err;
}

/* A module went away: drop its records from every ops' selection. */
static void ops_forget_module(struct ft_module *m)
{
	for (size_t o = 0; o < ops_count; o++) {
		struct ft_ops_priv *p = ops_list[o]->priv_;
		size_t k = 0;
		for (size_t i = 0; i < p->nsel; i++)
			if (p->sel[i]->mod != m)
				p->sel[k++] = p->sel[i];
		p->nsel = k;
	}
	for (size_t i = 0; i < m->nrecs; i++)
		atomic_store(&m->recs[i].set, atomic_load(&m->recs[i].set)); /* freed with the module */
}

/* An update waits for the callbacks running to end: called from one, it
 * would wait for itself (and hold the update lock meanwhile).  `seq` is
 * even and non-zero while this thread runs a callback. */
static int refuse_in_callback(const char *what)
{
	unsigned long seq = stitch__ftrace_thread.seq;
	if (seq != 0 && seq % 2 == 0)
		return stitch_fail(STITCH_EINVAL, "%s called from a tracing callback: it would wait for that "
				   "callback to end", what);
	return 0;
}

/* A direct trampoline must be code: sites will jump there.  Update lock held. */
static int check_direct(const void *direct, size_t size)
{
	int err = arch_check_branch_target((uintptr_t)direct, "direct trampoline");
	if (err)
		return err;
	err = stitch_text_check_code((uintptr_t)direct, size);
	if (err == -STITCH_EPROTECT)
		return stitch_fail(STITCH_EINVAL, "direct trampoline %p (%zu bytes) is not all in executable memory",
				   direct, size);
	return err;
}

static bool is_registered(const struct stitch_ftrace_ops *ops)
{
	for (size_t i = 0; i < ops_count; i++)
		if (ops_list[i] == ops)
			return true;
	return false;
}

/* Common path of register / register_ips / set_filter.  Takes the lock. */
static int ops_update(struct stitch_ftrace_ops *ops, const char *filter, const uintptr_t *ips, size_t nips,
		      bool must_be_registered)
{
	stitch_clear_error();
	if (!ops)
		return stitch_fail(STITCH_EINVAL, "ftrace ops is NULL");
	if (ops->direct && (ops->func || ops->ret_func))
		return stitch_fail(STITCH_EINVAL, "ftrace ops must have either a direct call or callbacks, not both");
	if (!ops->direct && !ops->func && !ops->ret_func)
		return stitch_fail(STITCH_EINVAL, "ftrace ops has no func, ret_func or direct call");
	if (ops->direct && ops->direct_size == 0)
		return stitch_fail(STITCH_EINVAL, "ftrace ops: direct_size must cover the direct trampoline");
	if (ops->flags & ~STITCH_FTRACE_F_PRESERVES_REGS)
		return stitch_fail(STITCH_EINVAL, "ftrace ops flags %#x: unknown flags", ops->flags);
	if ((ops->flags & STITCH_FTRACE_F_PRESERVES_REGS) && ops->direct)
		return stitch_fail(STITCH_EINVAL, "ftrace ops: STITCH_FTRACE_F_PRESERVES_REGS is for callbacks, not "
				   "direct calls");
	if (refuse_in_callback(must_be_registered ? "stitch_ftrace_set_filter()" : "stitch_ftrace_register()"))
		return -STITCH_EINVAL;
	if (ops->ret_func)
		stitch__ftrace_unwind_lookup(); /* before the lock */
	if (filter)
		look_up_demangler(filter); /* before the lock */
	ft_lock();
	int err = ops->direct ? check_direct(ops->direct, ops->direct_size) : 0;
	bool reg = is_registered(ops);
	if (!err && must_be_registered && !reg)
		err = stitch_fail(STITCH_EINVAL, "ftrace ops %p is not registered", (void *)ops);
	else if (!err && !must_be_registered && reg)
		err = stitch_fail(STITCH_EINVAL, "ftrace ops %p is already registered", (void *)ops);
	if (!err)
		err = rescan();
	if (!err && ops->ret_func)
		(void)stitch__ftrace_unwind_prepare(); /* stitch_ftrace_unwind_ready() tells how it went */
	if (!err)
		stitch__ftrace_longjmp_prepare();
	struct sel_list sel = { 0 };
	if (!err)
		err = ips ? select_ips(ips, nips, &sel) : select_filter(filter, &sel);
	struct ft_ops_priv *priv = NULL;
	struct stitch_ftrace_ops **nl = NULL;
	if (!err && !reg) {
		priv = calloc(1, sizeof(*priv));
		nl = realloc(ops_list, (ops_count + 1) * sizeof(*nl));
		if (nl)
			ops_list = nl;
		if (!priv || !nl)
			err = stitch_fail(STITCH_ENOMEM, "out of memory registering ftrace ops");
		else
			ops->priv_ = priv;
	}
	int late = 0;
	if (!err)
		err = commit(ops, sel.v, sel.n, &late);
	if (!err) {
		priv = ops->priv_;
		free(priv->sel);
		priv->sel = sel.v;
		priv->nsel = sel.n;
		if (!reg)
			ops_list[ops_count++] = ops;
	} else {
		free(sel.v);
		if (!reg && priv) {
			ops->priv_ = NULL;
			free(priv);
		}
	}
	ft_unlock();
	return err ? explain_later(err) : late;
}

int stitch_ftrace_register(struct stitch_ftrace_ops *ops, const char *filter)
{
	return ops_update(ops, filter, NULL, 0, false);
}

int stitch_ftrace_register_ips(struct stitch_ftrace_ops *ops, const uintptr_t *ips, size_t n)
{
	if (!ips) {
		stitch_clear_error();
		return stitch_fail(STITCH_EINVAL, "function list is NULL");
	}
	return ops_update(ops, NULL, ips, n, false);
}

int stitch_ftrace_set_filter(struct stitch_ftrace_ops *ops, const char *filter)
{
	return ops_update(ops, filter, NULL, 0, true);
}

int stitch_ftrace_unregister(struct stitch_ftrace_ops *ops)
{
	stitch_clear_error();
	if (!ops)
		return stitch_fail(STITCH_EINVAL, "ftrace ops is NULL");
	if (refuse_in_callback("stitch_ftrace_unregister()"))
		return -STITCH_EINVAL;
	ft_lock();
	int err = 0;
	if (!is_registered(ops))
		err = stitch_fail(STITCH_EINVAL, "ftrace ops %p is not registered", (void *)ops);
	if (!err)
		err = rescan();
	int late = 0;
	if (!err)
		err = commit(ops, NULL, 0, &late);
	if (!err) {
		struct ft_ops_priv *priv = ops->priv_;
		size_t k = 0;
		for (size_t i = 0; i < ops_count; i++)
			if (ops_list[i] != ops)
				ops_list[k++] = ops_list[i];
		ops_count = k;
		free(priv->sel);
		free(priv);
		ops->priv_ = NULL;
	}
	ft_unlock();
	return err ? err : late;
}

/*
 * Retarget a registered direct call (the kernel's modify_ftrace_direct):
 *   1. every selected record's direct word := the new trampoline (the
 *      library's trampoline reads it: call_ops paths go there from now on);
 *   2. the architecture rewrites code that reaches the old trampoline
 *      without that word (RISC-V's retarget and table modes);
 *   3. grace period: no thread is left in the old trampoline, the
 *      library's, or a region (one on its way to the old one).
 * On an error of step 2 the words are put back and nothing changed; an
 * error of step 3 means the switch happened but the old trampoline must
 * not be freed.
 */
int stitch_ftrace_modify_direct(struct stitch_ftrace_ops *ops, void *direct, size_t direct_size)
{
	stitch_clear_error();
	if (!ops || !direct || !direct_size)
		return stitch_fail(STITCH_EINVAL, "modify_direct: ops, trampoline and its size must be given");
	if (refuse_in_callback("stitch_ftrace_modify_direct()"))
		return -STITCH_EINVAL;
	ft_lock();
	int err = 0;
	if (!is_registered(ops) || !ops->direct)
		err = stitch_fail(STITCH_EINVAL, "ftrace ops %p is not a registered direct call", (void *)ops);
	else
		err = check_direct(direct, direct_size);
	if (!err)
		err = rescan();
	struct ft_ops_priv *priv = err ? NULL : ops->priv_;
	size_t n = priv ? priv->nsel : 0;
	struct arch_ftrace_site **sites = err ? NULL : calloc(n ? n : 1, sizeof(*sites));
	if (!err && !sites)
		err = stitch_fail(STITCH_ENOMEM, "out of memory retargeting %zu sites", n);
	uintptr_t from = (uintptr_t)ops->direct, to = (uintptr_t)direct;
	size_t from_size = ops->direct_size;
	int late = 0;
	if (!err && from != to) {
		for (size_t i = 0; i < n; i++) {
			sites[i] = &priv->sel[i]->a;
			rec_set_direct(priv->sel[i], to);
			atomic_store_explicit(&priv->sel[i]->entry, arch_ftrace_entry(to, false), memory_order_release);
		}
		/* One patch-log operation with the grace period: the architecture
		 * may only store into a destination slot (RISC-V table mode),
		 * which threads stop loading the old value of at the quiescence. */
		stitch_patch_log_begin("ftrace modify_direct");
		err = arch_ftrace_retarget(sites, n, from, to);
		if (err) {
			for (size_t i = 0; i < n; i++) {
				rec_set_direct(priv->sel[i], from);
				atomic_store_explicit(&priv->sel[i]->entry, arch_ftrace_entry(from, false),
						      memory_order_release);
			}
		} else {
			ops->direct = direct;
			ops->direct_size = direct_size;
			struct stitch_range gone = { from, from + from_size };
			late = direct_grace_ranges(&gone, 1);
		}
		stitch_patch_log_end(err ? err : late);
	} else if (!err) {
		ops->direct_size = direct_size;
	}
	free(sites);
	ft_unlock();
	return err ? err : late;
}

int stitch_ftrace_prepare(const char *filter)
{
	stitch_clear_error();
	if (refuse_in_callback("stitch_ftrace_prepare()"))
		return -STITCH_EINVAL;
	ft_lock();
	int err = rescan();
	struct sel_list sel = { 0 };
	if (!err)
		err = select_filter(filter, &sel);
	/* the disabled ones (an enabled site is prepared already) */
	struct arch_ftrace_site **sites = NULL;
	size_t n = 0;
	if (!err && sel.n && !(sites = malloc(sel.n * sizeof(*sites))))
		err = stitch_fail(STITCH_ENOMEM, "out of memory preparing %zu sites", sel.n);
	for (size_t i = 0; !err && i < sel.n; i++)
		if (!sel.v[i]->enabled)
			sites[n++] = &sel.v[i]->a;
	if (!err && n)
		err = stitch_ensure_init();
	if (!err && n)
		err = arch_ftrace_prepare(sites, n);
	free(sites);
	free(sel.v);
	ft_unlock();
	return explain_later(err);
}

int stitch_ftrace_ops_site_count(const struct stitch_ftrace_ops *ops)
{
	stitch_clear_error();
	if (!ops)
		return stitch_fail(STITCH_EINVAL, "ftrace ops is NULL");
	stitch_update_lock(); /* reads records only: no module pinned */
	int n = is_registered(ops) ? (int)((struct ft_ops_priv *)ops->priv_)->nsel
				   : stitch_fail(STITCH_EINVAL, "ftrace ops %p is not registered", (const void *)ops);
	stitch_update_unlock();
	return n;
}

int stitch_ftrace_site_count(void)
{
	stitch_clear_error();
	ft_lock();
	int err = rescan();
	int n = err ? err : (int)total_sites();
	ft_unlock();
	return n;
}

static void fill_info(const struct ft_rec *r, struct stitch_ftrace_site_info *out)
{
	out->func = r->a.func;
	out->site = r->a.patch;
	out->name = r->name;
	out->module = r->mod->path;
	out->enabled = r->enabled;
}

/*
 * Site idx, in the order stitch_ftrace_get_site_info() numbers them: its
 * module and position there; false if there is none.  *total: how many
 * sites there are.  Update lock held.
 */
static bool site_at(size_t idx, struct ft_module **mod, size_t *pos, size_t *total)
{
	bool found = false;
	*total = 0;
	for (struct ft_module *m = modules; m; m = m->next) {
		if (!found && idx - *total < m->nrecs) {
			*mod = m;
			*pos = idx - *total;
			found = true;
		}
		*total += m->nrecs;
	}
	return found;
}

int stitch_ftrace_get_site_info(size_t idx, struct stitch_ftrace_site_info *out)
{
	stitch_clear_error();
	if (!out)
		return stitch_fail(STITCH_EINVAL, "out is NULL");
	stitch_update_lock(); /* reads records only: no module pinned */
	struct ft_module *m = NULL;
	size_t pos = 0, total;
	bool found = site_at(idx, &m, &pos, &total);
	if (found)
		fill_info(&m->recs[pos], out);
	stitch_update_unlock();
	return found ? 0 : stitch_fail(STITCH_ENOTFOUND, "no site %zu: there are %zu", idx, total);
}

int stitch_ftrace_pattern_matches(const char *pattern, size_t idx)
{
	stitch_clear_error();
	if (!pattern || !*pattern || *pattern == '!')
		return stitch_fail(STITCH_EINVAL, "pattern \"%s\": one pattern, without '!'", pattern ? pattern : "(null)");
	look_up_demangler(pattern); /* before the lock */
	stitch_update_lock(); /* reads records only: no module pinned */
	struct ft_module *m = NULL;
	size_t pos = 0, total;
	int r;
	if (!site_at(idx, &m, &pos, &total)) {
		r = stitch_fail(STITCH_ENOTFOUND, "no site %zu: there are %zu", idx, total);
	} else {
		struct pat p;
		pat_init(&p, pattern);
		const struct ft_rec *rec = &m->recs[pos];
		if (p.kind == PAT_ADDR)
			r = p.rec == rec;
		else if (p.kind != PAT_CXX && fnmatch(p.s, rec->name, 0) == 0)
			r = 1;
		else if (p.kind != PAT_CXX && (p.kind == PAT_ALL || strncmp(rec->name, "_Z", 2) != 0))
			r = 0;
		else if ((r = module_demangled(m)) == 0)
			r = m->demangled && demangled_matches(&p, m->demangled[pos]);
	}
	stitch_update_unlock();
	return r;
}

int stitch_ftrace_lookup(const char *name, struct stitch_ftrace_site_info *out)
{
	stitch_clear_error();
	if (!name || !out)
		return stitch_fail(STITCH_EINVAL, "name or out is NULL");
	ft_lock();
	int err = rescan();
	bool found = false;
	for (struct ft_module *m = modules; !err && m && !found; m = m->next)
		for (size_t i = 0; i < m->nrecs && !found; i++)
			if (strcmp(m->recs[i].name, name) == 0) {
				fill_info(&m->recs[i], out);
				found = true;
			}
	if (!err && !found)
		err = total_sites() ? stitch_fail(STITCH_ENOTFOUND, "no instrumented function named %s", name)
				    : no_site_error(name);
	ft_unlock();
	return err;
}
