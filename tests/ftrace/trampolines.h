/* SPDX-License-Identifier: MIT */
/*
 * Where the library's tracing trampolines are, for tests that tell from a
 * PC (an interrupted one, or where a callback returns to) which code ran.
 * The symbols are the library's, hidden: reachable from tests that link it
 * statically (stitch_static).
 */
#ifndef STITCH_TEST_TRAMPOLINES_H
#define STITCH_TEST_TRAMPOLINES_H

#include <stdint.h>

#if defined(__x86_64__)
extern const char stitch__ftrace_tramp_x86[], stitch__ftrace_tramp_x86_end[];
extern const char stitch__ftrace_tramp_lean_x86[]; /* followed by stitch__ftrace_return */
#define TRAMP_ENTRY stitch__ftrace_tramp_x86
#define TRAMP_ENTRY_END stitch__ftrace_tramp_x86_end
/* callable from fast-ABI callbacks (stitch/ftrace.h): no SSE */
#define TRAMP_HELPER __attribute__((target("general-regs-only")))
#elif defined(__aarch64__)
extern const char stitch__ftrace_tramp_a64[], stitch__ftrace_tramp_a64_end[];
#define TRAMP_ENTRY stitch__ftrace_tramp_a64
#define TRAMP_ENTRY_END stitch__ftrace_tramp_a64_end
#define TRAMP_HELPER
#else
extern const char stitch__ftrace_tramp_rv[], stitch__ftrace_tramp_rv_end[];
#define TRAMP_ENTRY stitch__ftrace_tramp_rv
#define TRAMP_ENTRY_END stitch__ftrace_tramp_rv_end
#define TRAMP_HELPER
#endif
void stitch__ftrace_return(void); /* as src/arch/arch.h declares it */
extern const char stitch__ftrace_return_end[];

static inline TRAMP_HELPER int tramp_in(uintptr_t pc, const void *start, const void *end)
{
	return pc >= (uintptr_t)start && pc < (uintptr_t)end;
}

/* The entry trampoline every ops can run (x86-64: the full one). */
static inline TRAMP_HELPER int tramp_in_entry(uintptr_t pc)
{
	return tramp_in(pc, TRAMP_ENTRY, TRAMP_ENTRY_END);
}

/* x86-64's lean trampoline (the fast ABI's); nothing elsewhere. */
static inline TRAMP_HELPER int tramp_in_lean(uintptr_t pc)
{
#if defined(__x86_64__)
	return tramp_in(pc, stitch__ftrace_tramp_lean_x86, (const void *)(uintptr_t)stitch__ftrace_return);
#else
	(void)pc;
	return 0;
#endif
}

/* The return trampoline (function_graph). */
static inline TRAMP_HELPER int tramp_in_return(uintptr_t pc)
{
	return tramp_in(pc, (const void *)(uintptr_t)stitch__ftrace_return, stitch__ftrace_return_end);
}

#endif
