/* SPDX-License-Identifier: MIT */
/*
 * function_graph and stack unwinding: C++ exceptions, pthread_exit(),
 * pthread_cancel() and stack walks (backtrace()).
 *
 * A hooked function's return address is the return trampoline, which has
 * no unwind information: an unwinder walking the stack stops there as at
 * the end of the stack.  An exception thrown through a hooked frame found
 * no handler (std::terminate), and pthread_exit() ran no cleanup handler
 * and no destructor beyond it.
 *
 * So before a stack is unwound the thread's hooked frames get their real
 * return addresses back (fix_frames(false)), and when a C++ catch handler is
 * entered (the last exception in flight caught), the frames still live are
 * hooked again (fix_frames(true)), and the
 * shadow entries of the frames the exception went through are reported as
 * abandoned (ret_func with rregs NULL, innermost first), as a longjmp()'s
 * are at the next hooked call (ftrace.c, "hooking returns").
 *
 * Entry points, interposed by name: libstitch comes before libgcc_s and
 * libc in a program's lookup order when it is linked or preloaded.  When
 * it is loaded by dlopen() (stitch-trace attach) it comes after them, and
 * the program's bound calls are redirected to these instead (imports.c;
 * below, "loaded after the unwinder"):
 *   _Unwind_RaiseException, _Unwind_Resume_or_Rethrow: throw and rethrow;
 *     they return only when no handler was found (then the frames are
 *     live: hooked again);
 *   __cxa_begin_catch: the handler's frame and those above it are live,
 *     those below it gone;
 *   pthread_exit: glibc unwinds through libgcc_s functions it looks up
 *     itself (not interposable), so before it is called; every hooked
 *     frame of the thread goes, so they are all reported abandoned then;
 *   backtrace, _Unwind_Backtrace: stack walks, which return - the frames
 *     are hooked again after (not while the thread is being unwound:
 *     being_unwound() says why);
 *   _Unwind_Find_FDE: what an unwinding started where nothing above can be
 *     interposed - pthread_cancel()'s, inside glibc - needs: unwind
 *     information for the return trampoline, so that the unwinder walks
 *     through the hooked frames as they are ("walking through the return
 *     trampoline", below).
 *
 * Which shadow entries are frames on the stack now?  An entry's key is the
 * stack pointer its function returns with; on x86-64 its return address
 * lives at arch_ftrace_return_slot(key) (AArch64 and RISC-V: below,
 * "no fixed place").  Entries of frames a longjmp() left behind
 * (not pruned yet) name memory that other frames may use now, so a slot is
 * written only when it is proved to be a live frame's:
 *   - the walk (_Unwind_Backtrace) reports, for each frame Y, its stack
 *     pointer (the CFA of the frame X it called) and the address in Y that
 *     X returns to.  A group of entries with key == Y's stack pointer whose
 *     real return address is that address is X's: live.
 *   - x86-64 (fixed slots): unhooking must write before the walk reads
 *     X's slot, so every candidate (a slot above this function's frame
 *     that holds the trampoline) gets its real address first; the walk proves the live
 *     ones, and the others get the trampoline back.  Only the slots of
 *     hooked frames hold the trampoline (a hooked call at a stale entry's
 *     key would have pruned it), so a wrong candidate is a word the program
 *     copied the trampoline's address into, restored before return.
 *   - hooking again writes the trampoline into X's slot in Y's callback,
 *     after the walk has read it.
 *   - AArch64, RISC-V: the slot is found in X's own callback, X named by
 *     its function (walk_frame, "no fixed place"); proved live the same way.
 * The walk's stack pointers increase frame by frame, so candidates sorted
 * by key are merged with it in one pass: linear in frames plus entries.
 * Meanwhile seq is even (ftrace.c, "per-thread state"): a signal handler's
 * traced calls leave the shadow stack alone.
 */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <unwind.h>

#include "core/ftrace_internal.h"
#include "core/internal.h"

/* One group of shadow entries sharing a key (a tail-call chain): e[lo] is
 * the outermost, whose orig is the real return address; the innermost
 * names the function whose frame is on the stack. */
struct group {
	uintptr_t key;
	uintptr_t *slot; /* NULL: not known (yet) */
	uintptr_t real;
	uintptr_t func;
	bool live;
};

struct walk {
	struct group *g;
	size_t n, next;
	bool rehook;
	bool scan;         /* the architecture has no fixed slot: find it */
	uintptr_t prev_sp; /* scan: the stack pointer of the frame walked before */
};

static int cmp_group(const void *a, const void *b)
{
	uintptr_t x = ((const struct group *)a)->key, y = ((const struct group *)b)->key;
	return x < y ? -1 : x > y;
}

/*
 * The groups of st whose slot is at or above `floor` (the top of
 * walk_stack's frame: the walk's own frames are below it) and holds the
 * trampoline when unhooking, the real address when hooking again.  Sorted
 * by key.
 */
static size_t collect(const struct ft_shadow_stack *st, struct group *g, uintptr_t floor, bool rehook, bool scan)
{
	size_t n = 0;
	for (size_t i = 0; i < st->depth;) {
		size_t lo = i;
		uintptr_t key = ft_entry_key(&st->e[i]);
		while (i < st->depth && ft_entry_key(&st->e[i]) == key)
			i++;
		uintptr_t *slot = arch_ftrace_return_slot(key);
		uintptr_t real = st->e[lo].orig;
		if (real == RETURN_TRAMP || key <= floor)
			continue;
		if (!scan && ((uintptr_t)slot < floor || *slot != (rehook ? real : RETURN_TRAMP)))
			continue;
		g[n++] = (struct group){
			.key = key, .slot = slot, .real = real, .func = st->e[i - 1].rec->a.func, .live = false
		};
	}
	qsort(g, n, sizeof(*g), cmp_group);
	return n;
}

/*
 * Where the return address is kept has no fixed place on some
 * architectures (AArch64, RISC-V: wherever the prologue saves the link
 * register).  There the walk finds it: in the callback for frame X, before
 * the unwinder reads X's return address, _Unwind_GetRegionStart() is X's
 * function; if the next group's function is X's, the group is X's and its
 * key X's CFA, and X's frame [X's stack pointer, key) holds the trampoline
 * in exactly one word - the saved return address (several: the one in
 * the slot where prologues usually save it, arch_ftrace_return_slot_usual;
 * none there: not touched).
 * Hooking again looks in the same frame for the one word holding the real
 * address, once the unwinder has read it (the callback of X's caller).
 */
#define SCAN_LIMIT ((uintptr_t)1 << 20) /* a frame larger than 1 MiB is not scanned */
/* The unwind information of a function with patchable entry NOPs starts
 * after those at its symbol (AArch64: 8 bytes, RISC-V: 8): a region start
 * this far after a group's function (and not before) is that function. */
#define FDE_AFTER_SYMBOL 16u

static uintptr_t *unique_word(uintptr_t lo, uintptr_t hi, uintptr_t value)
{
	uintptr_t *found = NULL, *usual = arch_ftrace_return_slot_usual(lo, hi);
	size_t n = 0;
	if (hi <= lo || hi - lo > SCAN_LIMIT)
		return NULL;
	for (uintptr_t *p = (uintptr_t *)((lo + 7) & ~(uintptr_t)7); (uintptr_t)(p + 1) <= hi; p++)
		if (*p == value) {
			found = p;
			n++;
		}
	/* several: stale copies in the frame's padding too; the prologue's
	 * usual slot is the saved one (a saved return address is the value
	 * looked for, so that slot holds it when it is the one) */
	if (n > 1)
		found = (uintptr_t)usual >= lo && (uintptr_t)(usual + 1) <= hi && *usual == value ? usual : NULL;
	return found;
}

static _Unwind_Reason_Code walk_frame(struct _Unwind_Context *ctx, void *arg)
{
	struct walk *w = arg;
	uintptr_t sp = (uintptr_t)_Unwind_GetCFA(ctx), ip = (uintptr_t)_Unwind_GetIP(ctx);
	while (w->next < w->n && w->g[w->next].key < sp)
		w->next++;
	/* the frame walked before (X's callee) returns with sp: its group */
	for (; w->next < w->n && w->g[w->next].key == sp; w->next++) {
		struct group *g = &w->g[w->next];
		if (g->real != ip)
			continue;
		if (w->scan && w->rehook)
			g->slot = unique_word(w->prev_sp, sp, g->real);
		if (!g->slot)
			continue;
		g->live = true;
		if (w->rehook) /* the walk has read it: hooked again */
			*g->slot = RETURN_TRAMP;
	}
	/* scan, unhook: this frame's own slot, before the unwinder reads it */
	if (w->scan && !w->rehook && w->next < w->n &&
	    (uintptr_t)_Unwind_GetRegionStart(ctx) - w->g[w->next].func <= FDE_AFTER_SYMBOL) {
		struct group *g = &w->g[w->next];
		g->slot = unique_word(sp, g->key, RETURN_TRAMP);
		if (g->slot)
			*g->slot = g->real;
	}
	w->prev_sp = sp;
	return w->next < w->n ? _URC_NO_REASON : _URC_END_OF_STACK;
}

static void *next_symbol(const char *name, void *volatile *cache)
{
	void *f = __atomic_load_n(cache, __ATOMIC_ACQUIRE);
	if (f)
		return f;
	f = dlsym(RTLD_NEXT, name);
	if (!f) {
		char msg[160];
		int n = snprintf(msg, sizeof(msg), "stitch: %s: not found after libstitch (dlsym: %s)\n", name,
				 dlerror());
		if (n > 0 && write(2, msg, (size_t)n < sizeof(msg) ? (size_t)n : sizeof(msg) - 1) < 0) {
			/* nothing more to do */
		}
		abort();
	}
	__atomic_store_n(cache, f, __ATOMIC_RELEASE);
	return f;
}

#define NEXT(name, type) ((type)next_symbol(#name, &next_##name))

/* The originals: looked up at load (look_up_at_load), again before the
 * program's calls are redirected here (redirect_to_ours), else on first
 * call (RTLD_NEXT). */
static void *volatile next__Unwind_RaiseException;
static void *volatile next__Unwind_Resume_or_Rethrow;
static void *volatile next___cxa_begin_catch;
static void *volatile next_pthread_exit;
static void *volatile next_backtrace;
static void *volatile next__Unwind_Backtrace;
static void *volatile next__Unwind_Find_FDE;

/* unhook: real return addresses in; rehook: the trampoline back.  Called
 * with the thread's seq odd (outside callbacks) and a shadow stack. */
static __attribute__((noinline)) void walk_stack(struct ft_shadow_stack *st, bool rehook)
{
	struct group g[st->depth]; /* at most one per entry; depth > 0 */
	uintptr_t floor = (uintptr_t)__builtin_dwarf_cfa();
	bool scan = arch_ftrace_return_slot(floor) == NULL; /* no fixed place on this architecture */
	struct walk w = {
		.g = g, .n = collect(st, g, floor, rehook, scan), .next = 0, .rehook = rehook, .scan = scan, .prev_sp = floor
	};
	if (!w.n)
		return;
	if (!rehook && !scan)
		for (size_t i = 0; i < w.n; i++)
			*g[i].slot = g[i].real;
	NEXT(_Unwind_Backtrace, _Unwind_Reason_Code(*)(_Unwind_Trace_Fn, void *))(walk_frame, &w);
	if (!rehook)
		for (size_t i = 0; i < w.n; i++)
			if (g[i].slot && !g[i].live) /* not a frame: as it was */
				*g[i].slot = RETURN_TRAMP;
}

/*
 * When frames must not be hooked again: while the thread is being unwound.
 * An exception that is in flight (thrown, not caught yet: the C++ ABI's
 * per-thread count) is unwinding frames that a hook again would put the
 * trampoline back into - the next step of its unwinding would find no
 * frame there and abort.  That happens when a destructor run by that
 * unwinding catches an exception of its own, or walks the stack.  And
 * pthread_exit() unwinds the thread to its end (no C++ count for that).
 * Those frames stay unhooked: their returns go unreported, and their
 * entries are reported abandoned by the catch (or the exit) that ends it.
 */
static __thread bool thread_exiting;
struct cxa_eh_globals { /* the Itanium C++ ABI's __cxa_eh_globals */
	void *caught_exceptions;
	unsigned int uncaught_exceptions;
};
typedef struct cxa_eh_globals *(*cxa_get_globals_fn)(void);
static void *volatile cxa_get_globals; /* libstdc++'s, once looked up (not in signal handlers) */

static void look_up_cxa_globals(void)
{
	if (!__atomic_load_n(&cxa_get_globals, __ATOMIC_ACQUIRE)) {
		void *f = dlsym(RTLD_NEXT, "__cxa_get_globals");
		if (!f)
			f = dlsym(RTLD_DEFAULT, "__cxa_get_globals");
		__atomic_store_n(&cxa_get_globals, f, __ATOMIC_RELEASE);
	}
}

static bool being_unwound(void)
{
	if (thread_exiting)
		return true;
	void *f = __atomic_load_n(&cxa_get_globals, __ATOMIC_ACQUIRE);
	if (!f)
		return false; /* no C++ runtime seen yet: nothing thrown */
	cxa_get_globals_fn get;
	memcpy(&get, &f, sizeof(get));
	const struct cxa_eh_globals *g = get();
	return g && g->uncaught_exceptions > 0;
}

static void fix_frames(bool rehook)
{
	struct ft_thread *t = &stitch__ftrace_thread;
	unsigned long s = __atomic_load_n(&t->seq, __ATOMIC_RELAXED);
	/* seq 0: never traced; even: inside a callback, whose own throws and
	 * catches stay inside it and meet no hooked frame */
	if (!(s & 1) || !t->shadow || !t->shadow->depth)
		return;
	if (rehook && being_unwound())
		return;
	__atomic_store_n(&t->seq, ft_stack_pointer(), __ATOMIC_RELAXED);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	walk_stack(t->shadow, rehook);
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	__atomic_store_n(&t->seq, s, __ATOMIC_RELAXED);
}

typedef _Unwind_Reason_Code (*raise_fn)(struct _Unwind_Exception *);

/* Each interposer is a static function exported under the interposed name
 * (STITCH_EXPORT_AS, internal.h says why). */
static _Unwind_Reason_Code raise_hook(struct _Unwind_Exception *e)
{
	fix_frames(false);
	_Unwind_Reason_Code r = NEXT(_Unwind_RaiseException, raise_fn)(e);
	fix_frames(true); /* no handler: every frame is still there */
	return r;
}
STITCH_EXPORT_AS(_Unwind_RaiseException, raise_hook);

static _Unwind_Reason_Code rethrow_hook(struct _Unwind_Exception *e)
{
	fix_frames(false);
	_Unwind_Reason_Code r = NEXT(_Unwind_Resume_or_Rethrow, raise_fn)(e);
	fix_frames(true);
	return r;
}
STITCH_EXPORT_AS(_Unwind_Resume_or_Rethrow, rethrow_hook);

static void *begin_catch_hook(void *exception)
{
	look_up_cxa_globals(); /* libstdc++ is loaded: it calls here */
	void *r = NEXT(__cxa_begin_catch, void *(*)(void *))(exception);
	fix_frames(true);
	/* this function's CFA: the handler's stack pointer at the call */
	stitch__ftrace_graph_unwound_below((uintptr_t)__builtin_dwarf_cfa());
	return r;
}
/* The C++ ABI's name (libstdc++ has it; no C header declares it). */
STITCH_EXPORT_AS(__cxa_begin_catch, begin_catch_hook); // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)

static __attribute__((noreturn)) void pthread_exit_hook(void *retval)
{
	thread_exiting = true;
	fix_frames(false);
	stitch__ftrace_graph_abandon_all();
	NEXT(pthread_exit, void (*)(void *))(retval);
	abort(); /* not reached */
}
STITCH_EXPORT_AS(pthread_exit, pthread_exit_hook);

/* Stack walks (glibc's backtrace() calls libgcc_s through its own pointer,
 * so both): the real return addresses while they walk, the trampoline
 * back after - unless the thread is being unwound (then they stay). */
static int backtrace_hook(void **buffer, int size)
{
	fix_frames(false);
	int n = NEXT(backtrace, int (*)(void **, int))(buffer, size);
	fix_frames(true);
	return n;
}
STITCH_EXPORT_AS(backtrace, backtrace_hook);

static _Unwind_Reason_Code unwind_backtrace_hook(_Unwind_Trace_Fn fn, void *arg)
{
	fix_frames(false);
	_Unwind_Reason_Code r = NEXT(_Unwind_Backtrace, _Unwind_Reason_Code(*)(_Unwind_Trace_Fn, void *))(fn, arg);
	fix_frames(true);
	return r;
}
STITCH_EXPORT_AS(_Unwind_Backtrace, unwind_backtrace_hook);

/* ---- walking through the return trampoline --------------------------------
 *
 * What the interposers above cannot reach: an unwinding started inside a
 * library, through its own pointers to the unwinder - glibc's for
 * pthread_cancel() (it looks libgcc_s's _Unwind_ForcedUnwind up itself).
 * There the unwinder meets a hooked frame's return address, the return
 * trampoline, and without unwind information for it stops as at the end
 * of the stack: the C++ destructors and cleanup handlers of the frames
 * beyond never ran.
 *
 * So the unwinder is told how to walk through the trampoline.  libgcc's
 * unwinder asks _Unwind_Find_FDE() for the unwind information of each
 * frame's address, through its own PLT (an exported function): that call
 * is interposed here (and redirected where libstitch is loaded after it,
 * as the others).  Asked for the trampoline - a return address T is looked
 * up as T - 1 (x86-64 has no instruction starting there: the trampoline's
 * assembly says why), an interrupted instruction at T as T - it answers
 * with a CIE and FDE describing the trampoline at its first instruction as
 * a frame of its own:
 *   - CFA = the stack pointer, unchanged: the frame the unwinder goes on
 *     to is the caller at its real return address, with the hooked
 *     function's callee-saved registers already restored (every other
 *     register's rule is "same value");
 *   - the return address is in the thread's shadow stack: the entry whose
 *     key is that stack pointer (the key is the stack pointer the function
 *     returns with, which is the trampoline's at its first instruction).
 * A DWARF expression finds it: it walks the shadow entries from the top
 * down and yields the address of the first one whose stored key equals
 * the CFA.  A tail call's entries have bit 0 of their stored key set
 * (ftrace_internal.h), so the first match is the outermost entry of the
 * group, whose orig is the real return address.  An entry left behind by
 * a longjmp() with the same key is below the live one (a hooked call at
 * its key prunes it), so the live one is found first.  No match: the
 * entry popped by the personality routine just before, if its key is
 * that (return_personality, below, says why it pops); else the address
 * of a zero word, and a return address of 0 is the end of the stack to
 * the unwinder - what it saw before.
 * A CFI expression cannot reach thread-local storage, so the addresses of
 * the thread's shadow stack are constants in it: the CIE and FDE are
 * built in the thread's shadow stack block, by the thread that unwinds
 * (an unwinder walks its own thread's stack).  They are rebuilt at every
 * such look-up with the same bytes, so a signal handler unwinding in the
 * middle of a build, or while the interrupted unwinder reads them, finds
 * them whole.  The entries are read while the unwinder runs in the thread
 * that owns them: a signal handler's traced calls push and pop entries
 * above the live ones, and prune none of them (their keys are above the
 * handler's stack pointer).
 * The unwound frames' calls end there: the trampoline's personality
 * routine reports them abandoned (ret_func with rregs NULL) as the
 * unwinding goes through, innermost first.
 * Only libgcc's unwinder (libgcc_s, and the copies of unwind-dw2 in
 * libgcc_eh.a) calls _Unwind_Find_FDE; LLVM's libunwind does not.
 */
struct dwarf_eh_bases { /* libgcc's unwind-dw2-fde.h; LLVM's libunwind has the same */
	void *tbase;
	void *dbase;
	void *func;
};
typedef const void *(*find_fde_fn)(void *pc, struct dwarf_eh_bases *bases);

/* DWARF 4, sections 7.7.1 (expressions) and 7.23 (call frame instructions) */
enum {
	DW_OP_deref = 0x06,
	DW_OP_const1u = 0x08,
	DW_OP_const8u = 0x0e,
	DW_OP_dup = 0x12,
	DW_OP_pick = 0x15,
	DW_OP_minus = 0x1c,
	DW_OP_mul = 0x1e,
	DW_OP_plus = 0x22,
	DW_OP_plus_uconst = 0x23,
	DW_OP_bra = 0x28,
	DW_OP_eq = 0x29,
	DW_OP_ne = 0x2e,
	DW_OP_skip = 0x2f,
	DW_CFA_nop = 0x00,
	DW_CFA_def_cfa = 0x0c,
	DW_CFA_expression = 0x10,
	DW_EH_PE_absptr = 0x00,
};

static const uintptr_t end_of_stack; /* a return address of 0 */

struct emit {
	unsigned char *p;
};

static void put8(struct emit *e, unsigned v) { *e->p++ = (unsigned char)v; }
static void put32(struct emit *e, uint32_t v)
{
	memcpy(e->p, &v, sizeof(v)); /* little-endian on all three */
	e->p += sizeof(v);
}
static void put64(struct emit *e, uint64_t v)
{
	memcpy(e->p, &v, sizeof(v));
	e->p += sizeof(v);
}
static void put_addr(struct emit *e, const void *a)
{
	put8(e, DW_OP_const8u);
	put64(e, (uintptr_t)a);
}
/* a DW_OP_bra or DW_OP_skip whose target is patched in later: its operand */
static unsigned char *put_branch(struct emit *e, unsigned op)
{
	put8(e, op);
	unsigned char *operand = e->p;
	e->p += 2;
	return operand;
}
static void land(unsigned char *operand, const unsigned char *target)
{
	int16_t off = (int16_t)(target - (operand + 2));
	memcpy(operand, &off, sizeof(off));
}
/* pad with DW_CFA_nop to 8 bytes from start; the length word's value */
static uint32_t close_entry(struct emit *e, unsigned char *start)
{
	while ((e->p - start) % 8)
		put8(e, DW_CFA_nop);
	uint32_t len = (uint32_t)(e->p - start - 4);
	memcpy(start, &len, sizeof(len));
	return len;
}

/*
 * The trampoline's personality routine: the unwinder calls it in the
 * phase that unwinds the frames (a forced unwinding's only one; an
 * exception's second, after the search), before it reads the return
 * address.  The hooked frame under the trampoline - the one returning with
 * the stack pointer the CFA is - has just been unwound, and its landing
 * pads have run: its shadow entries, and any left below them, are
 * reported abandoned and popped now, as __cxa_begin_catch does for an
 * exception (a tracer sees the calls of a cancelled thread end).  Its real
 * return address, which the FDE's expression is about to look for, is
 * kept aside first, in st->unwound, where the expression looks when the
 * shadow stack has no entry with that key.  An entry with the key, when
 * there is one (inside a callback, where nothing is popped), comes first:
 * st->unwound can be stale, never wrong for the frame the stack holds.
 */
static _Unwind_Reason_Code return_personality(int version, _Unwind_Action actions, _Unwind_Exception_Class cls,
					      struct _Unwind_Exception *exc, struct _Unwind_Context *ctx)
{
	(void)version;
	(void)cls;
	(void)exc;
	struct ft_shadow_stack *st = __atomic_load_n(&stitch__ftrace_thread.shadow, __ATOMIC_RELAXED);
	if (!(actions & _UA_CLEANUP_PHASE) || !st)
		return _URC_CONTINUE_UNWIND;
	uintptr_t key = (uintptr_t)_Unwind_GetCFA(ctx); /* the hooked frame's: not updated yet */
	for (size_t i = st->depth; i--;)
		if (st->e[i].key == key) { /* the group's outermost: tail calls' keys are tagged */
			st->unwound.orig = st->e[i].orig;
			__atomic_signal_fence(__ATOMIC_SEQ_CST);
			st->unwound.key = key;
			break;
		}
	stitch__ftrace_graph_unwound_below(key);
	return _URC_CONTINUE_UNWIND;
}

/* The CIE and FDE (.eh_frame format) of the return trampoline for the
 * thread owning st, in st->fde; the FDE's address. */
static const void *build_return_fde(struct ft_shadow_stack *st)
{
	const size_t size = sizeof(struct ft_shadow);
	const unsigned char *base = (const unsigned char *)st->e;
	struct emit e = { st->fde };
	unsigned char *cie = e.p;
	put32(&e, 0); /* length, below */
	put32(&e, 0); /* CIE id */
	put8(&e, 1);  /* version */
	put8(&e, 'z');
	put8(&e, 'P');
	put8(&e, 'R');
	put8(&e, 0);
	put8(&e, 1);    /* code alignment */
	put8(&e, 0x78); /* data alignment -8 (sleb128) */
	put8(&e, arch_ftrace_return_dwarf.ra_column);
	put8(&e, 1 + 8 + 1); /* augmentation data: */
	put8(&e, DW_EH_PE_absptr);
	put64(&e, (uintptr_t)return_personality);
	put8(&e, DW_EH_PE_absptr);
	put8(&e, DW_CFA_def_cfa); /* CFA = sp + 0 */
	put8(&e, arch_ftrace_return_dwarf.sp_reg);
	put8(&e, 0);
	(void)close_entry(&e, cie);

	unsigned char *fde = e.p;
	put32(&e, 0);                                       /* length, below */
	put32(&e, (uint32_t)(e.p - cie));                   /* back to the CIE */
	put64(&e, RETURN_TRAMP - 1);                        /* covers T - 1 and T */
	put64(&e, 2);
	put8(&e, 0); /* no augmentation data */
	put8(&e, DW_CFA_expression);
	put8(&e, arch_ftrace_return_dwarf.ra_column);
	unsigned char *len = e.p++; /* the expression's length (< 128) */
	unsigned char *expr = e.p;
	/* the stack starts as [cfa]; a copy of it below, for DW_OP_pick
	 * (libgcc's cannot pick the bottom element) */
	put8(&e, DW_OP_dup);
	put_addr(&e, base); /* [cfa cfa p = &e[depth]] */
	put_addr(&e, &st->depth);
	put8(&e, DW_OP_deref);
	put8(&e, DW_OP_const1u);
	put8(&e, size);
	put8(&e, DW_OP_mul);
	put8(&e, DW_OP_plus);
	unsigned char *loop = e.p; /* [cfa cfa p] */
	put8(&e, DW_OP_dup);
	put_addr(&e, base);
	put8(&e, DW_OP_eq);
	unsigned char *to_none = put_branch(&e, DW_OP_bra); /* p == &e[0]: none */
	put8(&e, DW_OP_const1u);
	put8(&e, size);
	put8(&e, DW_OP_minus); /* [cfa cfa p-1] */
	put8(&e, DW_OP_dup);
	put8(&e, DW_OP_plus_uconst);
	put8(&e, offsetof(struct ft_shadow, key));
	put8(&e, DW_OP_deref); /* [cfa cfa p key] */
	put8(&e, DW_OP_pick);
	put8(&e, 2);
	put8(&e, DW_OP_ne);
	land(put_branch(&e, DW_OP_bra), loop); /* key != cfa: the next one down */
	put8(&e, DW_OP_plus_uconst);
	put8(&e, offsetof(struct ft_shadow, orig)); /* [cfa cfa &p->orig] */
	unsigned char *to_end = put_branch(&e, DW_OP_skip);
	land(to_none, e.p); /* [cfa cfa p] */
	put_addr(&e, &st->unwound.key);
	put8(&e, DW_OP_deref);
	put8(&e, DW_OP_pick);
	put8(&e, 2);
	put8(&e, DW_OP_ne);
	unsigned char *to_end_of_stack = put_branch(&e, DW_OP_bra);
	put_addr(&e, &st->unwound.orig); /* [cfa cfa p &unwound.orig] */
	unsigned char *to_end2 = put_branch(&e, DW_OP_skip);
	land(to_end_of_stack, e.p);
	put_addr(&e, &end_of_stack); /* [cfa cfa p &end_of_stack] */
	land(to_end, e.p);
	land(to_end2, e.p);
	*len = (unsigned char)(e.p - expr);
	(void)close_entry(&e, fde);
	return fde;
}

_Static_assert(sizeof(struct ft_shadow) < 256 && offsetof(struct ft_shadow, key) < 128 &&
		       offsetof(struct ft_shadow, orig) < 128,
	       "build_return_fde: one-byte operands");
/* the CIE is 32 bytes, the FDE 128 (its expression 93) */
_Static_assert(sizeof(((struct ft_shadow_stack *)0)->fde) >= 32 + 128, "build_return_fde: room for the CIE and FDE");

static const void *find_fde_hook(void *pc, struct dwarf_eh_bases *bases)
{
	uintptr_t a = (uintptr_t)pc;
	struct ft_shadow_stack *st = __atomic_load_n(&stitch__ftrace_thread.shadow, __ATOMIC_RELAXED);
	if ((a == RETURN_TRAMP - 1 || a == RETURN_TRAMP) && st) {
		const void *fde = build_return_fde(st);
		*bases = (struct dwarf_eh_bases){ .tbase = NULL, .dbase = NULL, .func = (void *)(RETURN_TRAMP - 1) };
		return fde;
	}
	return NEXT(_Unwind_Find_FDE, find_fde_fn)(pc, bases);
}
/* libgcc's name (no header declares it) */
STITCH_EXPORT_AS(_Unwind_Find_FDE, find_fde_hook); // NOLINT(bugprone-reserved-identifier,cert-dcl37-c,cert-dcl51-cpp)

/* ---- loaded after the unwinder --------------------------------------------
 *
 * Loaded by dlopen(), libstitch's definitions above come after libgcc_s's,
 * libstdc++'s and libc's in the lookup order, so the program's calls are
 * bound to those: a throw through a hooked frame would end the program.
 * So the words those calls go through (GOT slots, in every module:
 * imports.c says which and why it is safe while threads call through them)
 * are pointed at the definitions above, each original looked up first.
 * Linked in or preloaded, the same walk finds every word bound here
 * already and changes nothing.  Done once function_graph is first asked
 * for (stitch__ftrace_unwind_prepare, from registration) or
 * stitch_ftrace_unwind_ready() is called, and again whenever modules were
 * loaded since (their words were bound meanwhile).
 *
 * The originals are looked up (dlsym) before the update lock is taken
 * (stitch__ftrace_unwind_lookup): dlsym() takes the loader's lock, which
 * dlopen() holds while it runs a module's constructors, and those take the
 * update lock when they register static keys.  Under the update lock only
 * dl_iterate_phdr() is called, whose lock dlopen() does not hold there.
 * No dlopen() at all: a program or a preloaded tool may interpose it
 * (stitch-trace's agent does, and holds its lock around these calls).
 *
 * What cannot be reached that way: calls inside one module, which need no
 * word.  They matter where the C++ runtime and the unwinder are one module
 * (linked statically): __cxa_throw calls _Unwind_RaiseException directly.
 * Seen as a main program that exports __cxa_throw and has no word bound
 * to _Unwind_RaiseException, and refused.  (A static runtime that does not
 * export __cxa_throw, or is linked into a library, goes unseen.)
 * A __cxa_begin_catch called within libstdc++ is missed harmlessly: the
 * frames above the handler stay unhooked until they return (their returns
 * go unreported, as after a longjmp) and the unwound ones are reported at
 * the next hooked call.
 */
static const struct stitch_interposer interposers[] = {
	{ "_Unwind_RaiseException", (void *)raise_hook, &next__Unwind_RaiseException },
	{ "_Unwind_Resume_or_Rethrow", (void *)rethrow_hook, &next__Unwind_Resume_or_Rethrow },
	{ "__cxa_begin_catch", (void *)begin_catch_hook, &next___cxa_begin_catch },
	{ "pthread_exit", (void *)pthread_exit_hook, &next_pthread_exit },
	{ "backtrace", (void *)backtrace_hook, &next_backtrace },
	{ "_Unwind_Backtrace", (void *)unwind_backtrace_hook, &next__Unwind_Backtrace },
	{ "_Unwind_Find_FDE", (void *)find_fde_hook, &next__Unwind_Find_FDE },
};
#define NINTERPOSERS (sizeof(interposers) / sizeof(interposers[0]))

static enum { NOT_ASKED, READY, CANNOT } unwind_state;
static int unwind_err;
static char unwind_error[512];

/*
 * The original of a name: what the interposer calls (the one it called
 * already, if any).  RTLD_NEXT: the next definition in libstitch's own
 * scope (the global one when linked or preloaded; a dlopen()ed libstitch's
 * dependencies, libgcc_s and libc, otherwise); else the global scope's
 * (libstdc++ of a C++ program).  NULL if only ours is loaded.
 */
static void *original(const struct stitch_interposer *ip)
{
	void *f = __atomic_load_n(ip->next, __ATOMIC_ACQUIRE);
	if (!f)
		f = dlsym(RTLD_NEXT, ip->name);
	if (!f || f == ip->ours)
		f = dlsym(RTLD_DEFAULT, ip->name);
	return f == ip->ours ? NULL : f;
}

/* The C++ runtime's __cxa_throw, if the process has one in its global scope. */
static void *volatile thrower;

void stitch__ftrace_unwind_lookup(void)
{
	for (size_t i = 0; i < NINTERPOSERS; i++) {
		void *orig = original(&interposers[i]);
		if (orig) /* before any call can come */
			__atomic_store_n(interposers[i].next, orig, __ATOMIC_RELEASE);
	}
	if (!__atomic_load_n(&thrower, __ATOMIC_ACQUIRE))
		__atomic_store_n(&thrower, dlsym(RTLD_DEFAULT, "__cxa_throw"), __ATOMIC_RELEASE);
	look_up_cxa_globals();
}

/*
 * At load: the interposers above run in any program that has libstitch,
 * traced or not, and backtrace() is what crash handlers call from signal
 * handlers, where the dlsym() of a first call is not safe.  A constructor
 * runs with the loader's lock taken by its own thread: dlsym() is safe.
 */
__attribute__((constructor)) static void look_up_at_load(void)
{
	stitch__ftrace_unwind_lookup();
}

/* With the originals looked up (the ones not found yet are left alone). */
static int redirect_to_ours(void)
{
	struct stitch_import_redirect r[NINTERPOSERS];
	/* A C++ runtime linked into the program (-static-libstdc++): its
	 * throws must come here through a word.  (A runtime in a library of its
	 * own binds through one: libstdc++.so does, and a sanitizer's
	 * interceptor calls on through a pointer to the next definition.) */
	void *throw_fn = __atomic_load_n(&thrower, __ATOMIC_ACQUIRE);
	if (throw_fn && !stitch_in_main_program(throw_fn))
		throw_fn = NULL;
	int err = stitch_redirect_interposers(interposers, r, NINTERPOSERS, throw_fn, (const void *)fix_frames);
	if (err)
		return err;
	for (size_t i = 0; i < 2; i++) /* the throws: _Unwind_RaiseException, _Unwind_Resume_or_Rethrow */
		if (r[i].missed)
			return stitch_fail(STITCH_EUNKNOWN,
					   "%d call(s) to %s are bound to another definition than the original "
					   "(another interposer?) and were left alone: a throw through them and a "
					   "function_graph-hooked frame would end the program",
					   r[i].missed, r[i].name);
	if (throw_fn && !r[0].bound_in_probe)
		return stitch_fail(STITCH_EUNKNOWN,
				   "the C++ runtime calls _Unwind_RaiseException through no GOT slot (linked "
				   "statically with its unwinder?): its throws cannot be redirected to libstitch, and a "
				   "throw through a function_graph-hooked frame would end the program");
	return 0;
}

/* Update lock held.  1 if exceptions through hooked frames are handled. */
int stitch__ftrace_unwind_prepare(void)
{
	if (unwind_state == READY)
		return 1;
	unwind_err = redirect_to_ours();
	if (unwind_err)
		snprintf(unwind_error, sizeof(unwind_error), "%s", stitch_last_error());
	unwind_state = unwind_err ? CANNOT : READY;
	return !unwind_err;
}

/* Update lock held: modules were loaded or unloaded; the new ones' calls
 * are bound to the originals, where libstitch is not first. */
void stitch__ftrace_unwind_modules_changed(void)
{
	if (unwind_state == NOT_ASKED)
		return;
	unwind_state = NOT_ASKED;
	(void)stitch__ftrace_unwind_prepare();
}

int stitch_ftrace_unwind_ready(void)
{
	stitch__ftrace_unwind_lookup();
	stitch_update_lock();
	int ready = stitch__ftrace_unwind_prepare();
	if (!ready)
		(void)stitch_fail(-unwind_err, "%s", unwind_error);
	stitch_update_unlock();
	return ready;
}
