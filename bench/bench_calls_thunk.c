/* SPDX-License-Identifier: MIT */
/*
 * The retpoline loop of bench_calls, alone in a file built with
 * -mindirect-branch=thunk (gcc) / -mretpoline (clang) on x86-64: the
 * indirect call goes through __x86_indirect_thunk_*.  Elsewhere it is a
 * plain indirect call.
 */
long bench_loop_retpoline(long n, int (*fp)(int));
__attribute__((noinline)) long bench_loop_retpoline(long n, int (*fp)(int))
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += fp((int)i);
	return s;
}
