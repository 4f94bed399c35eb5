/* SPDX-License-Identifier: MIT */
/*
 * Decimal preprocessor repetition for the benchmarks' static-key sites.
 *
 *   SITES_10(S) / SITES_100(S)     expand the statement macro S 10 / 100 times
 *   FUNCS_10(F, b) ... FUNCS_10000(F, b)
 *                                  expand F(b##0) ... F(b##9999): F gets a
 *                                  distinct suffix per copy, to name functions
 *
 * Each level is a macro of its own, because a macro is not expanded again
 * inside its own expansion (FUNCS_100 cannot be written as FUNCS_10 of FUNCS_10).
 */
#ifndef STITCH_BENCH_REPEAT_H
#define STITCH_BENCH_REPEAT_H

#define SITES_10(S) S S S S S S S S S S
#define SITES_100(S)                                                                            \
	SITES_10(S) SITES_10(S) SITES_10(S) SITES_10(S) SITES_10(S) SITES_10(S) SITES_10(S)     \
	SITES_10(S) SITES_10(S) SITES_10(S)

#define FUNCS_10(F, b) F(b##0) F(b##1) F(b##2) F(b##3) F(b##4) F(b##5) F(b##6) F(b##7) F(b##8) F(b##9)
#define FUNCS_100(F, b)                                                                         \
	FUNCS_10(F, b##0) FUNCS_10(F, b##1) FUNCS_10(F, b##2) FUNCS_10(F, b##3) FUNCS_10(F, b##4) \
	FUNCS_10(F, b##5) FUNCS_10(F, b##6) FUNCS_10(F, b##7) FUNCS_10(F, b##8) FUNCS_10(F, b##9)
#define FUNCS_1000(F, b)                                                                        \
	FUNCS_100(F, b##0) FUNCS_100(F, b##1) FUNCS_100(F, b##2) FUNCS_100(F, b##3) FUNCS_100(F, b##4) \
	FUNCS_100(F, b##5) FUNCS_100(F, b##6) FUNCS_100(F, b##7) FUNCS_100(F, b##8) FUNCS_100(F, b##9)
#define FUNCS_10000(F, b)                                                                       \
	FUNCS_1000(F, b##0) FUNCS_1000(F, b##1) FUNCS_1000(F, b##2) FUNCS_1000(F, b##3)         \
	FUNCS_1000(F, b##4) FUNCS_1000(F, b##5) FUNCS_1000(F, b##6) FUNCS_1000(F, b##7)         \
	FUNCS_1000(F, b##8) FUNCS_1000(F, b##9)

#endif
