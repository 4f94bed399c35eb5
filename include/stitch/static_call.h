/* SPDX-License-Identifier: MIT */
/*
 * Static calls: a call whose target is changed by rewriting code, so that
 * calling it costs (nearly) a direct call: no function-pointer load on the
 * fast path, no indirect branch.
 *
 * Usage:
 *
 *     #include <stitch/static_call.h>
 *
 *     static int fast_hash(int x) { ... }
 *     static int slow_hash(int x) { ... }
 *
 *     STITCH_DEFINE_STATIC_CALL(hash, fast_hash);      // file scope
 *     STITCH_DEFINE_STATIC_CALL_NULL(on_event, void (int));
 *
 *     int h = stitch_static_call(hash)(42);             // calls fast_hash
 *     stitch_static_call_cond(on_event)(7);             // no-op while NULL
 *
 *     stitch_static_call_update(hash, slow_hash);       // any thread, any time
 *     stitch_static_call_update(on_event, NULL);
 *     int (*cur)(int) = stitch_static_call_query(hash);
 *
 * Each static call has a *trampoline*: a few instructions emitted by the
 * DEFINE macro into the text of the defining module (section
 * .text.stitch_static_call), which the compiler calls directly.  The
 * trampoline is rewritten to branch to the current target:
 *
 *   x86-64   jmp rel32 target (±2 GiB), `nop5; ret` for NULL, and for a far
 *            target jmp to `jmp *lit(%rip)` (src/arch/x86_64/static_call.c)
 *   AArch64  one of three strategies, chosen per defining translation unit
 *            with -DSTITCH_STATIC_CALL_A64=seed|slots|literal (default
 *            below; src/arch/aarch64/static_call.c)
 *   RISC-V   `jal zero, target` (±1 MiB) / `j ret` for NULL / nop into an
 *            `auipc; ld; jr` literal path for far targets
 *            (src/arch/riscv64/static_call.c)
 * Targets may be anywhere in the address space (another library > 4 GiB
 * away included): far targets go through a 64-bit literal, which is the
 * first field of the static call's descriptor.
 *
 * Guarantees once stitch_static_call_update() returns 0: every call that
 * starts afterwards, in any thread, goes to the new target (or does
 * nothing for NULL).  A call that was in flight during the update -
 * including one whose thread was stopped at any instruction inside the
 * trampoline - goes to a target that was current at some moment during
 * the update, never anywhere else.  On error nothing was written and the
 * target is unchanged; stitch_last_error() says why.
 *
 * Errors of stitch_static_call_update():
 *   -STITCH_EINVAL     the target is not in executable memory, or is the
 *                      static call's own trampoline (every call would loop)
 *   -STITCH_EALIGN     the target is misaligned for the architecture
 *                      (AArch64, RISC-V; never on x86-64)
 *   -STITCH_ENOTFOUND  the static call is not registered (its module's
 *                      constructor has not run, or it was dlclose()d)
 *   -STITCH_EMISMATCH  the trampoline's or a call site's bytes are not
 *                      what the library wrote last (changed behind its
 *                      back; a call site stays a call, or a tail jump)
 *   -STITCH_EQUIESCE   threads could not be stopped / did not report
 *   and the engine's errors (-STITCH_EPROTECT, -STITCH_ENOSYNC, ...).
 *
 * A target is not followed: a static call left pointing into a library
 * that is then dlclose()d crashes its next caller.  Update it first (as
 * the kernel does before a module's text goes).
 *
 * Scope: like static keys, a static call is private to the module that
 * defines it (hidden visibility); other modules call it through a function
 * the defining module exports.  DEFINE must name a function (identifier)
 * whose type is the call's type; with the AArch64 `seed` strategy the
 * initial trampoline branches to it directly.
 *
 * Updates take the library-wide update lock; they are not
 * async-signal-safe.  Calling needs nothing.
 */
#ifndef STITCH_STATIC_CALL_H
#define STITCH_STATIC_CALL_H

#include <stdint.h>
#include <stitch/stitch.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Trampoline layouts, as emitted by include/stitch/arch/static_call.h. */
enum stitch_static_call_layout {
	STITCH_SC_X86 = 1,         /* jmp/nop5 @0, ret @5, jmp *lit(%rip) @8 */
	STITCH_SC_A64_SEED = 2,    /* seed 000 (A)-(E) */
	STITCH_SC_A64_SLOTS = 3,   /* two slots + flip, quiescence as grace period */
	STITCH_SC_A64_LITERAL = 4, /* BTI C; ADRP X16; LDR X16; BR X16 */
	STITCH_SC_RV = 5,          /* nop/jal @0, auipc; ld; jr @4, ret @16 */
};

/*
 * The descriptor.  `lit` must stay the first field: the trampolines' far
 * paths load it with a PC-relative load of the descriptor's address.
 */
struct stitch_static_call {
	void *lit;         /* where the literal path goes: the target, or a RET in the trampoline for NULL */
	void *func;        /* current target, NULL for none.  Atomic. */
	void *tramp;       /* the trampoline */
	const char *name;
	uint32_t layout;   /* enum stitch_static_call_layout */
	uint32_t state;    /* library-private: trampoline state */
	uint64_t priv[2];  /* library-private: targets encoded in the trampoline */
	void *module;      /* library-private: registration */
};

#define STITCH__SC_HIDDEN __attribute__((visibility("hidden")))
#define STITCH__SC_STR2(x) #x
#define STITCH__SC_STR(x) STITCH__SC_STR2(x)

#include <stitch/arch/static_call.h>

/*
 * Declarations shared by DEFINE and DECLARE: the trampoline, with the type
 * of the call (so that calls type-check), and the descriptor.
 */
#ifdef __cplusplus /* unmangled, as the trampoline's asm names them */
#define STITCH__SC_EXTERN extern "C"
#else
#define STITCH__SC_EXTERN extern
#endif
#define STITCH__SC_DECL(name, type)                                                 \
	STITCH__SC_EXTERN STITCH__SC_HIDDEN __typeof__(type) stitch__sct_##name;    \
	STITCH__SC_EXTERN STITCH__SC_HIDDEN struct stitch_static_call stitch__sc_##name

#define STITCH_DECLARE_STATIC_CALL(name, func_or_type) STITCH__SC_DECL(name, func_or_type)

/* A static call named `name` that calls function `func` until updated. */
#define STITCH_DEFINE_STATIC_CALL(name, func)                                        \
	STITCH__SC_DECL(name, func);                                                 \
	__asm__(STITCH__SC_TRAMP_ASM(name, func, 0));                                \
	STITCH__SC_HIDDEN struct stitch_static_call stitch__sc_##name = {             \
		(void *)(func), (void *)(func), (void *)stitch__sct_##name, #name,    \
		STITCH__SC_LAYOUT, 0, { 0, 0 }, 0 }

/* A static call of function type `type` (e.g. `int (int)`) that starts NULL. */
#define STITCH_DEFINE_STATIC_CALL_NULL(name, type)                                   \
	STITCH__SC_DECL(name, type);                                                 \
	__asm__(STITCH__SC_TRAMP_ASM(name, 0, 1));                                   \
	STITCH__SC_HIDDEN struct stitch_static_call stitch__sc_##name = {             \
		(void *)((char *)stitch__sct_##name + STITCH__SC_RET_OFFSET), 0,      \
		(void *)stitch__sct_##name, #name, STITCH__SC_LAYOUT, 0, { 0, 0 }, 0 }

/* The call: stitch_static_call(name)(args...) is a direct call of the trampoline. */
#define stitch_static_call(name) (stitch__sct_##name)
/* Same, documenting that the call may be NULL (then it returns without calling:
 * use it for functions returning void). */
#define stitch_static_call_cond(name) (stitch__sct_##name)

/* Retarget; `func` must have the call's type (or be NULL).  0 or -STITCH_E*. */
#define stitch_static_call_update(name, func)                                            \
	stitch_static_call_update_desc(&stitch__sc_##name,                               \
				       (void *)(1 ? (func) : &stitch__sct_##name))

/* The current target, typed; NULL for none. */
#define stitch_static_call_query(name)                                                   \
	((__typeof__(&stitch__sct_##name))stitch_static_call_query_desc(&stitch__sc_##name))

/* The descriptor, for code that passes static calls around. */
#define stitch_static_call_desc(name) (&stitch__sc_##name)

STITCH_API int stitch_static_call_update_desc(struct stitch_static_call *sc, void *func);
STITCH_API void *stitch_static_call_query_desc(const struct stitch_static_call *sc);
/*
 * Number of inline call sites found for the static call (x86-64, modules
 * linked with -Wl,--emit-relocs; 0 otherwise): calls that are rewritten to
 * call the target directly, so that they cost exactly a direct call.
 */
STITCH_API int stitch_static_call_site_count(const struct stitch_static_call *sc);

/*
 * Module registration, called by the constructor/destructor this header
 * emits into every module that defines static calls; idempotent.  The
 * constructor moves each trampoline from the form the assembler emitted
 * to the fastest form for its target.
 */
STITCH_API int stitch__static_call_module_register(const void *dso_handle, struct stitch_static_call **start,
						   struct stitch_static_call **stop);
STITCH_API void stitch__static_call_module_unregister(const void *dso_handle);

extern struct stitch_static_call *__start___stitch_static_calls[] __attribute__((weak, visibility("hidden")));
extern struct stitch_static_call *__stop___stitch_static_calls[] __attribute__((weak, visibility("hidden")));
extern void *__dso_handle __attribute__((weak, visibility("hidden")));

__attribute__((weak, visibility("hidden"), constructor(101))) void stitch__sc_module_ctor(void);
__attribute__((weak, visibility("hidden"), constructor(101))) void stitch__sc_module_ctor(void)
{
	if ((void *)__start___stitch_static_calls != (void *)__stop___stitch_static_calls)
		stitch__static_call_module_register(&__dso_handle, __start___stitch_static_calls,
						    __stop___stitch_static_calls);
}
__attribute__((weak, visibility("hidden"), destructor(101))) void stitch__sc_module_dtor(void);
__attribute__((weak, visibility("hidden"), destructor(101))) void stitch__sc_module_dtor(void)
{
	if ((void *)__start___stitch_static_calls != (void *)__stop___stitch_static_calls)
		stitch__static_call_module_unregister(&__dso_handle);
}

#ifdef __cplusplus
}
#endif

#endif /* STITCH_STATIC_CALL_H */
