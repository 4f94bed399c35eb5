/* SPDX-License-Identifier: MIT */
/*
 * Function tracing, internal: what ftrace_sites.c (finding sites in loaded
 * ELF modules, placing trampoline regions) gives ftrace.c (records, ops,
 * filters, RCU, dispatch).
 */
#ifndef STITCH_CORE_FTRACE_INTERNAL_H
#define STITCH_CORE_FTRACE_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

/* A function symbol of a module, at its run-time address. */
struct ft_sym {
	uintptr_t addr;
	size_t size;
	const char *name; /* points into the module's name blob */
};

/* What the ELF reader found in one loaded module. */
struct ft_elf {
	uintptr_t *records; /* run-time addresses from __patchable_function_entries */
	size_t nrecords;
	struct ft_sym *syms; /* STT_FUNC symbols, sorted by address */
	size_t nsyms;
	char *names; /* the names, NUL-separated */
};

/*
 * Read the module mapped at `base` from `path` (its file on disk): check
 * that the file's program headers are those of the mapping (`phdr`,
 * `phnum`), take the section addresses from the file and the record values
 * from memory (already relocated), and the symbols of .symtab (else
 * .dynsym).  A module without the section gives nrecords == 0.  Returns 0
 * or a STITCH_E* error with a message; `out` is then empty.
 */
int ft_elf_read(const char *path, uintptr_t base, const void *phdr, int phnum, struct ft_elf *out);
void ft_elf_free(struct ft_elf *e);
/* The function symbol containing addr, or NULL. */
const struct ft_sym *ft_elf_sym_at(const struct ft_elf *e, uintptr_t addr);

/*
 * Map `size` bytes readable and writable at an address from which every
 * byte of [lo, hi) is within `reach` (in both directions), found in the
 * gaps of /proc/self/maps.  Returns the address or 0 (with stitch_fail).
 */
uintptr_t ft_map_near(uintptr_t lo, uintptr_t hi, size_t size, uintptr_t reach);

/* ---- what the dispatcher and the x86-64 lean trampolines share ---------------
 * (src/core/ftrace.c owns these; src/arch/x86_64/ftrace.c's lean
 * trampolines read them by offsetof, so they are declared here.) */
#include <stdatomic.h>
#include <stdbool.h>
#include "arch/arch.h"
#include "stitch/ftrace.h"

/* The immutable array of ops tracing a site (RCU). */
/*
 * The ops tracing a record: immutable once published.  Records with the
 * same ops share one set (commit() makes one per distinct old set, not
 * one per record: 100 000 allocations were a millisecond and more);
 * `refs` counts the records pointing at it, under the update lock only -
 * readers never touch it, the grace period protects them.
 */
/* What the words of a record traced by a set hold (see struct ft_rec). */
struct ft_words {
	struct stitch_ftrace_ops *lean, *single;
	uintptr_t lean_ret, single_ret, entry;
};

struct ft_set {
	size_t n;
	size_t ngraph; /* how many of the ops have a ret_func */
	size_t refs;   /* records whose set this is (update lock) */
	/* the record words for this set, worked out once when it is made (the
	 * same for each of its records); `direct` is ops[0]'s, published apart */
	struct ft_words words;
	struct stitch_ftrace_ops *ops[];
};

struct ft_module;

/*
 * A site's record, aligned to a cache line so that what a switch of many
 * sites touches is two lines of it: line 0 the words the trampolines read
 * (and the site's function, which they pass on), line 1 what the arch
 * switches (patch, orig, stub) with the set and state; what names the
 * site comes after.  Unaligned, each pass over the records of a switch
 * read ~2.5 lines per record; a disable of 100 000 sites took 5-10% less
 * aligned.
 */
struct ft_rec {
	_Alignas(64) _Atomic uintptr_t direct; /* first: the AArch64/RISC-V trampolines read it (arch.h, direct calls) */
	_Atomic uintptr_t entry;  /* second: where an x86-64 site's stub jumps (arch_ftrace_entry) */
	/* the set's one ops when the lean trampoline may run it alone
	 * (STITCH_FTRACE_F_PRESERVES_REGS), else NULL; RCU like `set` */
	_Atomic(struct stitch_ftrace_ops *) lean;
	/* `lean` if it has a ret_func, else FT_NO_LEAN_RET (never an ops, nor
	 * NULL: a shadow entry naming no single ops never matches it) */
	_Atomic uintptr_t lean_ret;
	/* the set's one ops (not a direct call) when liburcu-bp uses
	 * membarrier, else NULL: the x86-64 full trampoline's own fast path */
	_Atomic(struct stitch_ftrace_ops *) single;
	_Atomic uintptr_t single_ret; /* `single` if it has a ret_func, else FT_NO_LEAN_RET */
	struct arch_ftrace_site a;
	_Atomic(struct ft_set *) set;
	bool enabled; /* the code calls the trampoline */
	int bad;      /* 0, or why the site is refused (a STITCH_E* code) */
	const char *name;
	struct ft_module *mod;
	char *why;
};

_Static_assert(offsetof(struct ft_rec, a.patch) == 64 && offsetof(struct ft_rec, bad) + sizeof(int) <= 128,
	       "struct ft_rec: what a switch touches is in lines 0 and 1");

#define FT_NO_LEAN_RET ((uintptr_t)1)

/* function_graph shadow stack entry (ftrace.c, "hooking returns"). */
struct ft_shadow {
	uintptr_t orig; /* where the function really returns */
	uintptr_t key;  /* its stack pointer after returning; | 1 if orig is the return trampoline */
	struct ft_rec *rec;
	struct stitch_ftrace_ops *ops; /* the one graph ops armed at entry; NULL: every graph ops of the set */
};
struct ft_shadow_stack {
	size_t depth;
	struct ft_shadow e[STITCH_FTRACE_GRAPH_DEPTH];
	/* the return trampoline's unwind information for this thread, and
	 * the return address of the hooked frame an unwinding has just
	 * gone through (ftrace_unwind.c, "walking through the return
	 * trampoline") */
	_Alignas(8) unsigned char fde[192];
	struct {
		uintptr_t orig, key;
	} unwound;
};
/* tools/gdb/stitch.py reads a thread's shadow stack with these offsets */
_Static_assert(offsetof(struct ft_shadow, orig) == 0 && offsetof(struct ft_shadow, key) == 8 &&
		       sizeof(struct ft_shadow) == 32 && offsetof(struct ft_shadow_stack, depth) == 0 &&
		       offsetof(struct ft_shadow_stack, e) == 8 && STITCH_FTRACE_GRAPH_DEPTH == 1024,
	       "the shadow stack layout tools/gdb/stitch.py reads");
#define RETURN_TRAMP ((uintptr_t)stitch__ftrace_return)
/* An entry whose orig is the return trampoline (a tail call's) has bit 0
 * of its key set (keys are stack pointers, 8-aligned), so that the lean
 * return path, which compares keys, leaves it to graph_return (which
 * finds the real parent); this is the key. */
static inline uintptr_t ft_entry_key(const struct ft_shadow *e)
{
	return e->key & ~(uintptr_t)1;
}

/*
 * A thread's tracing state, one thread-local block (ftrace.c, "per-thread
 * state, recursion guard and RCU"): seq is 0 before the thread's first
 * traced call, then odd outside callbacks and even while the thread runs
 * them (the recursion guard; the RCU read side is liburcu-bp's).
 */
struct ft_thread {
	unsigned long seq;
	struct ft_shadow_stack *shadow;
	/* While the C dispatcher runs the entry callbacks of a call whose
	 * return it will not hook (shadow stack full or not mapped): that
	 * section's seq; else 0 (stitch_ftrace_return_hooked()). */
	unsigned long unhooked_section;
};
extern __thread struct ft_thread stitch__ftrace_thread __attribute__((tls_model("initial-exec")));
/* seq outside callbacks; while the thread sets itself up or exits (inside
 * a callback, seq is the stack pointer of the code that set the guard) */
#define FT_SEQ_OUT 1UL
#define FT_SEQ_BUSY 2UL
/* or'ed into the stack pointer (8-aligned) in seq while thread_register()
 * runs */
#define FT_SEQ_REGISTERING 4UL

/* The stack pointer, for seq (ftrace.c, "per-thread state"). */
static inline __attribute__((always_inline)) uintptr_t ft_stack_pointer(void)
{
	uintptr_t sp;
#if defined(__x86_64__)
	__asm__ volatile("movq %%rsp, %0" : "=r"(sp));
#elif defined(__aarch64__)
	__asm__ volatile("mov %0, sp" : "=r"(sp));
#elif defined(__riscv)
	__asm__ volatile("mv %0, sp" : "=r"(sp));
#else
	sp = (uintptr_t)__builtin_frame_address(0);
#endif
	return sp;
}

/* The thread is about to longjmp() to a frame whose stack pointer is
 * target_sp: if that leaves the tracing section it is in, end the section
 * (ftrace.c, "longjmp() out of a section"). */
void stitch__ftrace_longjmp(uintptr_t target_sp);
/* At load (ftrace.c's first constructor, which also makes a static link
 * take ftrace_longjmp.c, where nothing else names it): look up the
 * originals of the longjmp() family and measure glibc's pointer guard. */
void stitch__ftrace_longjmp_init(void);
/* The signal stack the thread armed last by sigaltstack() with
 * SS_AUTODISARM (false: none, or not known in this build). */
bool stitch__ftrace_autodisarm_stack(uintptr_t *lo, uintptr_t *hi);
/* Point the program's bound calls of the longjmp() family at ours where
 * libstitch was loaded after libc (update lock held; once, and again
 * after modules were loaded: stitch__ftrace_longjmp_modules_changed). */
void stitch__ftrace_longjmp_prepare(void);
void stitch__ftrace_longjmp_modules_changed(void);
_Static_assert(offsetof(struct ft_thread, shadow) == 8, "the layout tools/gdb/stitch.py reads");

/* pthread_exit() (ftrace_unwind.c): the thread's hooked frames are all
 * about to be unwound; report them now, innermost first, as abandoned
 * (ret_func with rregs NULL), rather than never (the thread's shadow stack
 * goes with it). */
void stitch__ftrace_graph_abandon_all(void);
/* __cxa_begin_catch (ftrace_unwind.c): the handler's frame called
 * __cxa_begin_catch with stack pointer sp, so no hooked frame returning to
 * sp or below is live any more: report those abandoned now, as a hooked
 * call there would (rather than at the thread's next hooked event, or
 * never). */
void stitch__ftrace_graph_unwound_below(uintptr_t sp);
/* Look up the originals of ftrace_unwind.c's interposers.  Not under the
 * update lock (dlsym takes the loader's lock: ftrace_unwind.c says why). */
void stitch__ftrace_unwind_lookup(void);
/* Make C++ exceptions and pthread_exit() through hooked frames reach
 * ftrace_unwind.c's interposers (where libstitch was loaded by dlopen():
 * by redirecting the calls to the originals looked up); 1 if they do.
 * Update lock held. */
int stitch__ftrace_unwind_prepare(void);
/* The set of loaded modules changed (rescan): the new ones' calls too. */
void stitch__ftrace_unwind_modules_changed(void);

#endif
