/* SPDX-License-Identifier: MIT */
/*
 * Static keys (jump labels): a branch whose direction is changed by
 * rewriting the code, so that the disabled path costs one NOP.
 *
 * Usage:
 *
 *     #include <stitch/static_key.h>
 *
 *     STITCH_DEFINE_STATIC_KEY_FALSE(tracing_on);
 *
 *     void hot_path(void)
 *     {
 *             if (stitch_static_branch_unlikely(&tracing_on))
 *                     emit_trace_record();        // out of line, not taken
 *             ...
 *     }
 *
 *     stitch_static_key_enable(&tracing_on);    // from any thread, any time
 *
 * Each use of stitch_static_branch_likely/unlikely() is a *site*: one
 * instruction (x86-64: a 2- or 5-byte NOP or JMP; AArch64: NOP or B;
 * RISC-V: a 4-byte aligned NOP or JAL) plus an entry in the
 * __stitch_jump_table section.  _likely() and _unlikely() only choose which
 * path the compiler lays out as the fall-through; both return the key's
 * current value.
 *
 * Guarantees once stitch_static_key_enable/disable/inc/dec() returns 0:
 *  - every site of the key has been rewritten, and every thread's next
 *    pass through any site takes the new direction (the update ends with a
 *    cross-thread instruction sync);
 *  - a thread that ran through a site *during* the update took either the
 *    old or the new direction, never anything else, whatever instruction
 *    boundary it was stopped at (see src/arch/<arch>/jump_label.c);
 *  - on error, no site was changed and the key's value is unchanged.
 *
 * Scope: a key is private to the executable or shared library that defines
 * it (it has hidden visibility: an asm-goto site can only refer to a
 * link-time constant, which a symbol that might be interposed is not).
 * Code in other modules toggles it through a pointer.  Sites are found
 * when their module is loaded (a constructor emitted by this header) and
 * forgotten at dlclose().
 *
 * Updates take the library-wide update lock; they are not
 * async-signal-safe.  Reading a key (taking a branch) needs nothing.
 */
#ifndef STITCH_STATIC_KEY_H
#define STITCH_STATIC_KEY_H

#include <stdbool.h>
#include <stdint.h>
#include <stitch/stitch.h>

#ifdef __cplusplus
extern "C" {
#endif

struct stitch_static_key {
	int enabled;  /* reference count; > 0 means enabled.  Atomic. */
	int padding;
	void *sites;  /* library-private: the key's sites, set at registration */
};

/* Typed wrappers so that the initial value is known at compile time. */
struct stitch_static_key_true {
	struct stitch_static_key key;
};
struct stitch_static_key_false {
	struct stitch_static_key key;
};

#define STITCH__KEY_HIDDEN __attribute__((visibility("hidden")))

#define STITCH_DEFINE_STATIC_KEY_TRUE(name) \
	STITCH__KEY_HIDDEN struct stitch_static_key_true name = { { 1, 0, 0 } }
#define STITCH_DEFINE_STATIC_KEY_FALSE(name) \
	STITCH__KEY_HIDDEN struct stitch_static_key_false name = { { 0, 0, 0 } }
#define STITCH_DECLARE_STATIC_KEY_TRUE(name) \
	extern STITCH__KEY_HIDDEN struct stitch_static_key_true name
#define STITCH_DECLARE_STATIC_KEY_FALSE(name) \
	extern STITCH__KEY_HIDDEN struct stitch_static_key_false name

/*
 * One entry per site, in section __stitch_jump_table.  All fields are
 * relative to their own address so that the table needs no dynamic
 * relocations.  The low bit of the key offset is the entry's "branch" bit:
 * the site holds a jump exactly when (key enabled) XOR (branch).
 */
struct stitch_jump_entry {
	int32_t code;    /* site address - &code */
	int32_t target;  /* jump target - &target */
	int64_t key;     /* (key address | branch) - &key */
};

#include <stitch/arch/jump_label.h>

/*
 * The branch macros.  For a TRUE key, _likely() lays out the enabled path
 * as fall-through (site starts as NOP); for a FALSE key, _unlikely() does.
 */
#ifdef __cplusplus /* the same checks with C++'s spelling (g++, clang++) */
#define stitch__same_type(a, b) __is_same(a, b)
#define stitch__static_assert static_assert
#else
#define stitch__same_type(a, b) __builtin_types_compatible_p(a, b)
#define stitch__static_assert _Static_assert
#endif
#define stitch__is_true(x) stitch__same_type(__typeof__(*(x)), struct stitch_static_key_true)
#define stitch__is_false(x) stitch__same_type(__typeof__(*(x)), struct stitch_static_key_false)

#define stitch_static_branch_likely(x)                                                   \
	__extension__({                                                                  \
		bool stitch__b;                                                          \
		stitch__static_assert(stitch__is_true(x) || stitch__is_false(x),         \
			       "stitch_static_branch_likely needs a stitch static key");  \
		if (stitch__is_true(x))                                                  \
			stitch__b = !stitch_arch_static_branch(&(x)->key, true);         \
		else                                                                     \
			stitch__b = !stitch_arch_static_branch_jump(&(x)->key, true);    \
		__builtin_expect(stitch__b, 1);                                          \
	})

#define stitch_static_branch_unlikely(x)                                                 \
	__extension__({                                                                  \
		bool stitch__b;                                                          \
		stitch__static_assert(stitch__is_true(x) || stitch__is_false(x),         \
			       "stitch_static_branch_unlikely needs a stitch static key"); \
		if (stitch__is_true(x))                                                  \
			stitch__b = stitch_arch_static_branch_jump(&(x)->key, false);    \
		else                                                                     \
			stitch__b = stitch_arch_static_branch(&(x)->key, false);         \
		__builtin_expect(stitch__b, 0);                                          \
	})

/* Current value (reads the counter; not a patched branch). */
#define stitch_static_key_enabled(x) (stitch_static_key_count(&(x)->key) > 0)

/* Set the key to 1 (enable) or 0 (disable), rewriting its sites if it changes. */
#define stitch_static_key_enable(x) stitch_static_key_enable_key(&(x)->key)
#define stitch_static_key_disable(x) stitch_static_key_disable_key(&(x)->key)
/* Reference-counted: the key is enabled while the count is above zero. */
#define stitch_static_key_inc(x) stitch_static_key_inc_key(&(x)->key)
#define stitch_static_key_dec(x) stitch_static_key_dec_key(&(x)->key)

STITCH_API int stitch_static_key_count(const struct stitch_static_key *key);
STITCH_API int stitch_static_key_enable_key(struct stitch_static_key *key);
STITCH_API int stitch_static_key_disable_key(struct stitch_static_key *key);
STITCH_API int stitch_static_key_inc_key(struct stitch_static_key *key);
/* Returns -STITCH_EOVERFLOW if the count is already 0. */
STITCH_API int stitch_static_key_dec_key(struct stitch_static_key *key);

/* Number of sites registered for the key (0 if none or unknown). */
STITCH_API int stitch_static_key_site_count(const struct stitch_static_key *key);

/*
 * Module registration, called by the constructor/destructor this header
 * emits into every module that uses keys; idempotent (every translation
 * unit's copy calls it, the first call of a module does the work).
 */
STITCH_API int stitch__jump_module_register(const void *dso_handle, struct stitch_jump_entry *start,
					    struct stitch_jump_entry *stop);
STITCH_API void stitch__jump_module_unregister(const void *dso_handle);

extern struct stitch_jump_entry __start___stitch_jump_table[] __attribute__((weak, visibility("hidden")));
extern struct stitch_jump_entry __stop___stitch_jump_table[] __attribute__((weak, visibility("hidden")));
extern void *__dso_handle __attribute__((weak, visibility("hidden")));

/*
 * Weak + hidden: the linker keeps one copy per module, so each module's
 * table is registered by its own code, at load time, before main() or
 * during dlopen(), and unregistered during dlclose().
 */
__attribute__((weak, visibility("hidden"), constructor(101))) void stitch__jump_module_ctor(void);
__attribute__((weak, visibility("hidden"), constructor(101))) void stitch__jump_module_ctor(void)
{
	if ((void *)__start___stitch_jump_table != (void *)__stop___stitch_jump_table)
		stitch__jump_module_register(&__dso_handle, __start___stitch_jump_table,
					     __stop___stitch_jump_table);
}
__attribute__((weak, visibility("hidden"), destructor(101))) void stitch__jump_module_dtor(void);
__attribute__((weak, visibility("hidden"), destructor(101))) void stitch__jump_module_dtor(void)
{
	if ((void *)__start___stitch_jump_table != (void *)__stop___stitch_jump_table)
		stitch__jump_module_unregister(&__dso_handle);
}

#ifdef __cplusplus
}
#endif

#endif /* STITCH_STATIC_KEY_H */
