/* SPDX-License-Identifier: MIT */
/*
 * As gc_funcs.c, but built with -ffunction-sections after the trace flags
 * (tests/ftrace/CMakeLists.txt), which undoes their -fno-function-sections:
 * with gcc before 13, -Wl,--gc-sections then drops gc_late_used's entry
 * record with the unused first function, and registering on it must say
 * so (test_ftrace_gc_sections.c).
 */
int gc_late_unused_first(int x);
int gc_late_used(int x);

int gc_late_unused_first(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 5;
}

__attribute__((noinline)) int gc_late_used(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 2;
}
