/* SPDX-License-Identifier: MIT */
/* A library built with the trace flags, loaded and unloaded by dl_ftrace. */
#include "common/repeat.h"

#define DEF(x, i) __attribute__((noinline)) int lib_fn_##i(int v); __attribute__((noinline)) int lib_fn_##i(int v) { __asm__ volatile(""); return v + (__COUNTER__ - LIB_BASE); }
#define PTR(x, i) lib_fn_##i,

enum { LIB_BASE = __COUNTER__ + 1 };
REPEAT_64(DEF, , )

typedef int (*lib_fn)(int);
static lib_fn const table[64] = { REPEAT_64(PTR, , ) };

/* Calls every function once; returns the sum of their results for v = 0. */
int lib_call_all(void);
int lib_call_all(void)
{
	int s = 0;
	for (int i = 0; i < 64; i++)
		s += table[i](0);
	return s;
}

/* Calls fn(v): a frame of the library that fn may leave by longjmp(). */
int lib_call_back(int (*fn)(int), int v);
__attribute__((noinline)) int lib_call_back(int (*fn)(int), int v)
{
	int r = fn(v);
	__asm__ volatile("");
	return r + 1;
}
