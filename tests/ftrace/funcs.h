/* SPDX-License-Identifier: MIT */
/* Generated traced functions (funcs.c, built with the trace flags). */
#ifndef STITCH_TEST_FTRACE_FUNCS_H
#define STITCH_TEST_FTRACE_FUNCS_H

#define TF_COUNT 1024

typedef int (*tf_fn)(int);
/* tf_a0000 .. tf_d3333 (base-4 suffixes), in order; each returns v * 3 + its index */
extern tf_fn const tf_table[TF_COUNT];
/* four static functions (st_0..st_3), reached through this table */
extern tf_fn const st_table[4];
int parse_one(int v);
int parse_two(int v);
int six_args(int a, int b, int c, int d, int e, int f);
double fp_args(double a, double b);
int recurse(int n);

#endif
