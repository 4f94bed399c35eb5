/* SPDX-License-Identifier: MIT */
/*
 * Built with -ffunction-sections and the trace flags, linked with
 * -Wl,--gc-sections (test_ftrace_gc_sections.c): the first function is
 * unused, the second is called.  gcc 11 and 12 tie this object's entry
 * records to its first function's section, so the garbage collection of
 * that one dropped the second one's record too; the trace flags
 * (cmake/StitchTrace.cmake) say -fno-function-sections with those gcc.
 */
int gc_unused_first(int x);
int gc_used(int x);

int gc_unused_first(int x)
{
	__asm__ volatile("" ::: "memory");
	return x * 3;
}

__attribute__((noinline)) int gc_used(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}
