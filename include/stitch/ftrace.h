/* SPDX-License-Identifier: MIT */
/*
 * Function tracing: call a function of yours at the entry of any function
 * of the running program, switched on and off while threads run through it.
 *
 * Usage:
 *
 *     #include <stitch/ftrace.h>
 *
 *     static void on_entry(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops,
 *                          struct stitch_ftrace_regs *regs)
 *     {
 *             ...   // ip: the traced function's site; parent_ip: where it returns to
 *     }
 *     static struct stitch_ftrace_ops my_ops = { .func = on_entry };
 *
 *     stitch_ftrace_register(&my_ops, "parse_* !parse_fast");   // from any thread, any time
 *     ...
 *     stitch_ftrace_set_filter(&my_ops, "*");                    // change what is traced
 *     stitch_ftrace_unregister(&my_ops);                         // on_entry no longer runs
 *
 * Sites: the functions of the executable and of every loaded library built
 * with the flags of `pkg-config --variable=trace_cflags stitch` (or the
 * CMake helper cmake/StitchTrace.cmake):
 *     x86-64   -fpatchable-function-entry=5      (gcc: five 1-byte NOPs; clang: one 5-byte NOP)
 *     AArch64  -fpatchable-function-entry=4,2 -falign-functions=8
 * Sites are read from each module's __patchable_function_entries section
 * and named from its ELF symbol table (static functions included) when it
 * is first seen; modules loaded by dlopen() are picked up by the next call
 * here, modules unloaded by dlclose() are forgotten.  The layouts and the
 * protocols that switch them: src/arch/<arch>/ftrace.c and docs/ftrace.md.
 *
 * Guarantees once a call returns 0:
 *  - register / set_filter: every selected site calls the ops on every
 *    thread's next pass (the change ends with a cross-thread sync);
 *  - unregister: the ops' func is not running on any thread and will not
 *    be called again (a grace period waited for every thread that might
 *    be inside it); the ops may be freed;
 *  - a site none of the registered ops selects again holds exactly the
 *    bytes the compiler emitted;
 *  - a thread running through a site while it changes executes the old or
 *    the new form, never anything else.
 * On error nothing changed: no byte of code, no ops, no filter.
 *
 * Callbacks run on the traced thread, with the traced function's argument
 * registers saved (read them with stitch_ftrace_regs_arg()).  A callback
 * that calls traced code does not recurse into callbacks: tracing is off
 * for the thread while it runs one, and so for a signal handler that
 * interrupts one.  Such calls run untraced, and each is counted in
 * stitch_stats.ftrace_guard_skips (stitch_get_stats(), stitch/stitch.h;
 * process-wide, every ops' sites: also a handler that lands while a thread
 * sets up its tracing state at its first traced call, or at its exit),
 * so that a tracer can say how many calls its record lacks.  Callbacks run inside an RCU read-side
 * section (liburcu urcu-bp where available, see docs/ftrace.md): they
 * must not call the update functions below (these return -STITCH_EINVAL
 * there), and must not fork() (the fork waits for the update lock, which
 * an update holds while it waits for the callback).  A longjmp() out of a
 * callback, or out of a signal handler that interrupted one, ends the
 * section (the library interposes the longjmp() family and setcontext(),
 * also when loaded by dlopen(): docs/ftrace.md).  x86-64: callbacks may use
 * general and SSE registers (xmm0-7 are saved), not AVX upper halves of
 * argument registers - unless the ops chooses the fast ABI below
 * (STITCH_FTRACE_F_PRESERVES_REGS).
 *
 * Updates take the library-wide update lock; none is async-signal-safe.
 */
#ifndef STITCH_FTRACE_H
#define STITCH_FTRACE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stitch/stitch.h>

#ifdef __cplusplus
extern "C" {
#endif

/* The traced function's argument registers as saved at its entry. */
struct stitch_ftrace_regs;

struct stitch_ftrace_ops;
/* The traced function's return-value registers as saved at its return. */
struct stitch_ftrace_ret_regs;
typedef void (*stitch_ftrace_func_t)(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops,
				     struct stitch_ftrace_regs *regs);

typedef void (*stitch_ftrace_ret_func_t)(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops,
					 struct stitch_ftrace_ret_regs *rregs);

struct stitch_ftrace_ops {
	stitch_ftrace_func_t func; /* the entry callback; NULL for a direct call or a ret_func alone */
	void *data;                /* yours */
	unsigned flags;            /* STITCH_FTRACE_F_*, or 0; not changed while registered */
	void *priv_;               /* the library's; zero before registering */
	/*
	 * Direct call (instead of func): the selected sites enter this code
	 * of yours, in place of the library's trampoline and dispatcher.  A
	 * site with a direct call has no other ops (registering another one
	 * on it fails with -STITCH_EINVAL, and the other way round).  It is
	 * entered exactly like the library's trampoline:
	 *   x86-64   by `call` at the function's entry: [rsp] = where to
	 *            return (func+5), [rsp+8] = the caller's return address;
	 *            preserve rdi rsi rdx rcx r8 r9 rax r10 and xmm0-7; `ret`.
	 *   AArch64  by `BL` at func+4: x30 = func+8, x9 = the caller's
	 *            return address; preserve x0-x8 and q0-q7; x10-x17 are
	 *            free; return with `mov x16, x30; mov x30, x9; ret x16`.
	 *            Reached by `BR X17`: begin with `BTI C` where BTI is on.
	 *   RISC-V   by `JALR t0` at func+4: t0 = func+8, ra = the caller's
	 *            return address; preserve a0-a7, fa0-fa7, ra; t1-t6 are
	 *            free; return with `jr t0`.
	 * It must be executable code where the architecture can branch (4-byte
	 * aligned on AArch64, 2 on RISC-V): else register and modify_direct
	 * fail with -STITCH_EINVAL or -STITCH_EALIGN and change nothing.
	 * [direct, direct + direct_size) must be all of its code: after
	 * unregister (or a filter change that drops sites) the library waits
	 * until no thread's PC is in that range or in the library's
	 * trampolines.  A direct trampoline that calls other code is not
	 * covered while a thread is inside the callee.
	 */
	void *direct;
	size_t direct_size;
	/*
	 * function_graph: called when the traced function returns, on the
	 * same thread, once for every call in which the site ran this ops
	 * (func, which may then be NULL, is called at the entry as usual).
	 * `rregs` holds the return-value registers (stitch_ftrace_ret_value);
	 * it is NULL when the frame was found abandoned (longjmp() past it):
	 * such returns are reported late, when detected, innermost first.
	 * The return is hooked by replacing the function's return address
	 * with a library trampoline, kept on a per-thread shadow stack of
	 * STITCH_FTRACE_GRAPH_DEPTH entries; a call deeper than that runs
	 * func but gets no ret_func (counted in stitch_stats.graph_overflows).
	 * C++ exceptions and pthread_exit() through hooked frames work
	 * (the library puts the real return addresses back before the
	 * unwinder walks the stack, src/core/ftrace_unwind.c; see
	 * stitch_ftrace_unwind_ready()): the frames unwound get ret_func
	 * with rregs NULL.  pthread_cancel() too (the unwinder is given
	 * unwind information for the return trampoline).  Not supported:
	 * stack switching (swapcontext) through a hooked frame; a return
	 * that matches no shadow entry aborts the process with a message
	 * rather than jump anywhere.
	 * With several graph ops on one site, each one's ret_func is called
	 * if it is still registered on the site when the function returns.
	 */
	stitch_ftrace_ret_func_t ret_func;
};

#define STITCH_FTRACE_GRAPH_DEPTH 1024

/*
 * For the entry callback (func) of an ops with a ret_func: whether the
 * return of the call being entered is hooked, i.e. whether ret_func will
 * be called for it (true), or the thread's shadow stack is full - or
 * could not be mapped - so that it never will (false; the call counts in
 * stitch_stats.graph_overflows).  The stack is the thread's, shared by
 * every graph ops: entries of calls hooked under an ops since unregistered
 * keep their places until those calls return, so a count of one's own
 * entries cannot tell (stitch-trace's agent asks this to mark NORET).
 * Exact on every entry path (the assembly fast paths and the C
 * dispatcher).  Outside an entry callback it returns false; in the func
 * of an ops without a ret_func, on a site that no graph ops traces, its
 * answer means nothing.  Costs the traced calls nothing; may be called
 * from fast-ABI callbacks (STITCH_FTRACE_F_PRESERVES_REGS, below).
 * Async-signal-safe.
 */
STITCH_API bool stitch_ftrace_return_hooked(void);

/*
 * 1 if C++ exceptions and pthread_exit() through hooked frames are handled
 * in this process: libstitch is linked into the program or preloaded, so
 * its interposers come first; or it was loaded by dlopen() after the
 * unwinder and the program's calls to the unwinder, to __cxa_begin_catch
 * and to pthread_exit() were redirected to them (their GOT slots, in every
 * loaded module: done by this call and by the first registration of an
 * ops with a ret_func, and again for modules loaded later, at the next
 * call that rescans modules); or no unwinder is loaded at all.  0, with
 * stitch_last_error() saying why, if that cannot be done (the C++ runtime
 * and the unwinder linked statically into one module, or a GOT page that
 * cannot be made writable): a throw through a hooked frame then
 * terminates the program.  The same redirect covers pthread_cancel()'s
 * unwinding (the unwinder's _Unwind_Find_FDE).
 */
STITCH_API int stitch_ftrace_unwind_ready(void);

/*
 * Fast callback ABI (opt-in, ops->flags): func and ret_func preserve every
 * register but the four that carry their arguments, so the trampoline
 * saves only those of the traced function's registers.  Declare both with
 * STITCH_FTRACE_PRESERVES_REGS:
 *
 *     static STITCH_FTRACE_PRESERVES_REGS void on_entry(uintptr_t ip, uintptr_t parent_ip,
 *                                                       struct stitch_ftrace_ops *ops,
 *                                                       struct stitch_ftrace_regs *regs) { ... }
 *     static struct stitch_ftrace_ops fast = { .func = STITCH_FTRACE_FAST_FUNC(on_entry),
 *                                              .flags = STITCH_FTRACE_F_PRESERVES_REGS };
 *
 * (clang makes the attribute part of the function's type: the
 * STITCH_FTRACE_FAST_FUNC / _FAST_RET_FUNC casts store such a callback in
 * the ops; the library calls it only from code that preserves nothing
 * less than a plain call would, so the cast is sound.)
 *
 * x86-64: the macro is __attribute__((no_caller_saved_registers,
 * target("general-regs-only"))): the compiler saves and restores every
 * general register the callback uses (GCC: the argument registers too;
 * clang: all but the argument registers - either is enough).  It does not save SSE, AVX, MMX or
 * x87 state (GCC's documentation of the attribute): the callbacks must
 * not touch them - they are compiled without them - and neither may
 * anything they call.  A plain function called from them is entered with
 * every general register saved around the call, but may use xmm
 * registers (memcpy, printf and most of libc do): call only functions
 * declared with this macro or compiled with -mgeneral-regs-only.
 * What the callbacks get: `regs` is NULL on the fast path
 * (stitch_ftrace_regs_arg() gives 0: the arguments are not saved
 * anywhere; they are still in their registers, which the callback cannot
 * read from C) and valid when the full trampoline ran them; in ret_func,
 * `rregs` holds the integer return registers (stitch_ftrace_ret_value()
 * works; on the fast path not the SSE ones).  stitch_ftrace_ret_value()
 * and stitch_ftrace_regs_arg() (and stitch_ftrace_return_hooked()) may
 * be called from these callbacks.  The stack is 16-byte aligned for the
 * callbacks when the traced function was called with an aligned stack.
 * Everything else holds as for other ops: recursion guard, unregister's
 * guarantee, function_graph's shadow stack (docs/ftrace.md, "Fast ABI").
 * A site runs the fast path when this ops is the only one on it (and
 * liburcu-bp uses membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)); otherwise the
 * full trampoline calls the callbacks as usual, with regs.
 * AArch64, RISC-V: the flag is accepted and changes nothing (the macro is
 * empty; their trampolines save every argument register).
 */
#define STITCH_FTRACE_F_PRESERVES_REGS 0x1u
#if defined(__x86_64__)
#define STITCH_FTRACE_PRESERVES_REGS __attribute__((no_caller_saved_registers, target("general-regs-only")))
#else
#define STITCH_FTRACE_PRESERVES_REGS
#endif
#define STITCH_FTRACE_FAST_FUNC(f) ((stitch_ftrace_func_t)(void (*)(void))(f))
#define STITCH_FTRACE_FAST_RET_FUNC(f) ((stitch_ftrace_ret_func_t)(void (*)(void))(f))

/* The traced function's return value (integer register), for ret_func. */
STITCH_API uintptr_t stitch_ftrace_ret_value(const struct stitch_ftrace_ret_regs *rregs);

/* Integer argument n (0-based, n < 6 on x86-64, < 8 on AArch64/RISC-V) of
 * the traced function; 0 if n is out of range. */
STITCH_API uintptr_t stitch_ftrace_regs_arg(const struct stitch_ftrace_regs *regs, unsigned n);

/*
 * Filters: fnmatch() globs on symbol names, separated by whitespace or
 * ',' (outside parentheses and angle brackets), each optionally prefixed
 * with '!' to exclude (a notrace list); a site is selected if it matches
 * some positive glob (or there is none, i.e. the filter is only
 * exclusions) and no exclusion.  NULL or "" or "*": every site.  "0x..."
 * entries select the site at that address (the function's address, or the
 * site's own).  A pattern with "::" or "(" is a C++ one, matched against
 * demangled names as they are, without a template instance's return type,
 * and by the name before the parameter list, with or without its template
 * arguments: "ns::Widget::draw" selects every overload, "ns::twice" every
 * instance of that template, "ns::*" all of ns, "ns::f(int, char)" that
 * overload (written as demangled, spaces included), and
 * "(anonymous namespace)::f" and "ns::S::operator()" work.  A plain
 * pattern matches a C++ function's name before its parameter list too
 * ("handle" selects "handle(int)"; "draw" does not select
 * "ns::Widget::draw").  A pattern that leaves a '(' or '<' open is refused
 * (-STITCH_EINVAL).  The demangler is libstdc++'s, loaded if the program
 * has not.  A filter that
 * selects nothing fails with -STITCH_ENOTFOUND naming it; one that names a
 * function that is not instrumented says which flags to build with.
 */

/* Start calling ops->func at every site the filter selects. */
STITCH_API int stitch_ftrace_register(struct stitch_ftrace_ops *ops, const char *filter);
/* The same for an explicit list of functions (addresses of functions or sites). */
STITCH_API int stitch_ftrace_register_ips(struct stitch_ftrace_ops *ops, const uintptr_t *ips, size_t n);
/* Change a registered ops' selection in one step (sites leave and join atomically per site). */
STITCH_API int stitch_ftrace_set_filter(struct stitch_ftrace_ops *ops, const char *filter);
/* Stop; on return ops->func is running nowhere and will not be called again. */
STITCH_API int stitch_ftrace_unregister(struct stitch_ftrace_ops *ops);

/*
 * Move a registered direct call to another trampoline while threads run
 * through its sites (Linux's modify_ftrace_direct).  On return every call
 * that starts enters `direct`, and no thread is still in the old one (it
 * may be freed); a call in flight during the change enters the old or
 * the new one, or - RISC-V's retarget mode, while its sites are being
 * rewritten - neither.  On error nothing changed.
 */
STITCH_API int stitch_ftrace_modify_direct(struct stitch_ftrace_ops *ops, void *direct, size_t direct_size);
/*
 * Do now, for the sites the filter selects, the part of their first
 * enable that must reach every thread, and leave them disabled: on x86-64
 * gcc's five 1-byte NOPs become one 5-byte NOP (an untraced function then
 * runs one NOP instead of five; every thread is asked once where it is,
 * none is stopped); on AArch64 and RISC-V the literal and the MOV X9, X30
 * / AUIPC are written (in a stopped world).  Afterwards enabling and
 * disabling these sites needs neither, and works beside threads that
 * block every signal but SIGTRAP.  One quiescence or stop for all the
 * selected sites; sites enabled or prepared already are left alone.  Optional: a
 * first enable does the same for its own sites.  Costs memory: each text
 * page holding a prepared site becomes a private copy.
 */
STITCH_API int stitch_ftrace_prepare(const char *filter);

/* Number of sites the ops currently traces; -STITCH_EINVAL if not registered. */
STITCH_API int stitch_ftrace_ops_site_count(const struct stitch_ftrace_ops *ops);

/*
 * Discovery.  stitch_ftrace_site_count() rescans the loaded modules and
 * returns how many sites there are (0 if none is instrumented).
 * stitch_ftrace_get_site_info() gives site i's function address and name
 * (valid until the module is unloaded).  stitch_ftrace_lookup() finds the
 * site of a function by name; -STITCH_ENOTFOUND if there is none.
 */
struct stitch_ftrace_site_info {
	uintptr_t func;   /* the function's address (its symbol) */
	uintptr_t site;   /* the patched instruction's address */
	const char *name; /* symbol name, "" if the module has no symbol for it */
	const char *module;
	int enabled;      /* currently calling a tracer */
};
STITCH_API int stitch_ftrace_site_count(void);
STITCH_API int stitch_ftrace_get_site_info(size_t i, struct stitch_ftrace_site_info *out);
/*
 * Whether one filter pattern (no '!') selects site i, exactly as in a
 * filter: 1 or 0, or -STITCH_E*.  For a tool that combines patterns its
 * own way (stitch-trace's ordered rules) and must agree with filters on
 * each, C++ patterns included.
 */
STITCH_API int stitch_ftrace_pattern_matches(const char *pattern, size_t i);
STITCH_API int stitch_ftrace_lookup(const char *name, struct stitch_ftrace_site_info *out);

#ifdef __cplusplus
}
#endif

#endif /* STITCH_FTRACE_H */
