/* SPDX-License-Identifier: MIT */
/* Preprocessor repetition: REPEAT_N(M, x) expands M(x, i) for i = 0..N-1. */
#ifndef STITCH_TEST_REPEAT_H
#define STITCH_TEST_REPEAT_H
#define REPEAT_4(M, x, b) M(x, b##0) M(x, b##1) M(x, b##2) M(x, b##3)
#define REPEAT_16(M, x, b) REPEAT_4(M, x, b##0) REPEAT_4(M, x, b##1) REPEAT_4(M, x, b##2) REPEAT_4(M, x, b##3)
#define REPEAT_64(M, x, b) REPEAT_16(M, x, b##0) REPEAT_16(M, x, b##1) REPEAT_16(M, x, b##2) REPEAT_16(M, x, b##3)
#define REPEAT_256(M, x, b) REPEAT_64(M, x, b##0) REPEAT_64(M, x, b##1) REPEAT_64(M, x, b##2) REPEAT_64(M, x, b##3)
#endif
