/* SPDX-License-Identifier: MIT */
/*
 * The traced functions of bench_trace: a leaf `int f(int)` and the loop
 * that calls it N times.  This one file is compiled once per way of
 * tracing it (bench/CMakeLists.txt), each time with its own flags and its
 * own prefix, so every variant runs exactly the same C:
 *
 *   LEAF_PREFIX   flags                                          traced by
 *   plain         none                                           nothing (the baseline)
 *   ftrace        trace_cflags (-fpatchable-function-entry=5)    stitch_ftrace_register()
 *   ftrace_pristine  the same                                    nothing: its site stays the
 *                                                                compiler's (never prepared)
 *   xray          -fxray-instrument -fxray-instruction-threshold=1  __xray_patch_function()
 *   pg            -pg                                            uftrace record
 *
 * The leaf gets <prefix>_leaf, the loop bench_loop_<prefix> (the names
 * bench/run gives callgrind's --toggle-collect and perf probe).
 */
#define CAT_(a, b) a##b
#define CAT(a, b) CAT_(a, b)
#define LEAF CAT(LEAF_PREFIX, _leaf)
#define LOOP CAT(bench_loop_, LEAF_PREFIX)

int LEAF(int x);
long LOOP(long n);

/*
 * noinline and an empty asm: a real call to a real function, which the
 * compiler can neither inline, clone nor fold into the loop.
 */
__attribute__((noinline)) int LEAF(int x)
{
	__asm__ volatile("" ::: "memory");
	return x + 1;
}

__attribute__((noinline)) long LOOP(long n)
{
	long s = 0;
	for (long i = 0; i < n; i++)
		s += LEAF((int)i);
	return s;
}
