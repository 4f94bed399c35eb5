/* SPDX-License-Identifier: MIT */
/* Traced functions for the function_graph test (graph_funcs.c, built with
 * the trace flags; the test itself is not). */
#ifndef STITCH_TEST_GRAPH_FUNCS_H
#define STITCH_TEST_GRAPH_FUNCS_H

#include <setjmp.h>

struct g_pair {
	long a, b;
};

int g_chain_a(int v);   /* calls g_chain_b, which calls g_chain_c */
int g_chain_b(int v);
int g_chain_c(int v);
int g_fact(int n);      /* recursion: n entries */
int g_even(int n);      /* mutual recursion with g_odd */
int g_odd(int n);
int g_tail_f(int v);    /* ends in a tail call of g_tail_g (a jump at -O2) */
int g_tail_g(int v);
double g_twice(double x);          /* floating-point return */
struct g_pair g_pair_of(long a);   /* two-register return */
int g_depth(int n);                /* recursion n deep, not a tail call */
/* g_lj_outer: setjmp, then g_lj_mid -> g_lj_inner, which longjmps back */
int g_lj_outer(int v);
int g_lj_mid(jmp_buf *env, int v);
int g_lj_inner(jmp_buf *env, int v);
int g_raise(int sig);              /* raise(sig) from inside a traced frame */
int g_thread_exit(int n);          /* n hooked frames deep, then pthread_exit(42) */
int g_nested_target(int v);        /* v * 5 + 1 (test_ftrace_nested) */
int g_wait(int *flag);              /* returns 7 once *flag is set */
int g_cancel_at(int n);             /* n + 1 hooked frames deep, then waits for cancellation */
int g_deep_then(int n, void (*bottom)(void)); /* n + 1 calls deep, the innermost calls bottom() if set; returns n */

#endif
