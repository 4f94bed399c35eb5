/* SPDX-License-Identifier: MIT */
/* Built with the trace flags (cmake/StitchTrace.cmake): every function here is a site. */
#include "funcs.h"
#include "common/repeat.h"

#define DEF(x, i) __attribute__((noinline)) int tf_##i(int v); __attribute__((noinline)) int tf_##i(int v) { __asm__ volatile(""); return v * 3 + (__COUNTER__ - TF_BASE); }
#define PTR(x, i) tf_##i,

enum { TF_BASE = __COUNTER__ + 1 };
REPEAT_256(DEF, , a)
REPEAT_256(DEF, , b)
REPEAT_256(DEF, , c)
REPEAT_256(DEF, , d)

tf_fn const tf_table[TF_COUNT] = { REPEAT_256(PTR, , a) REPEAT_256(PTR, , b) REPEAT_256(PTR, , c) REPEAT_256(PTR, , d) };

#define SDEF(n) static __attribute__((noinline)) int st_##n(int v) { __asm__ volatile(""); return v + 100 * (n + 1); }
SDEF(0) SDEF(1) SDEF(2) SDEF(3)
tf_fn const st_table[4] = { st_0, st_1, st_2, st_3 };

__attribute__((noinline)) int parse_one(int v) { __asm__ volatile(""); return v + 1; }
__attribute__((noinline)) int parse_two(int v) { __asm__ volatile(""); return v + 2; }
__attribute__((noinline)) int six_args(int a, int b, int c, int d, int e, int f)
{
	__asm__ volatile("");
	return a + 10 * b + 100 * c + 1000 * d + 10000 * e + 100000 * f;
}
__attribute__((noinline)) double fp_args(double a, double b) { __asm__ volatile(""); return a * b + 0.5; }
__attribute__((noinline)) int recurse(int n)
{
	if (n <= 0)
		return 0;
	int r = recurse(n - 1);
	__asm__ volatile("" : "+r"(r)); /* no tail recursion turned into a loop */
	return 1 + r;
}
