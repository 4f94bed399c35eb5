/* SPDX-License-Identifier: MIT */
/* Minimal test checks: count, print what failed, summarise, exit status. */
#ifndef STITCH_TEST_CHECK_H
#define STITCH_TEST_CHECK_H

#include <stdio.h>
#include <stdlib.h>

static int check_passed, check_failed;

#define CHECK(cond, ...)                                                        \
	do {                                                                    \
		if (cond) {                                                     \
			check_passed++;                                         \
		} else {                                                        \
			check_failed++;                                         \
			fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__,  \
				__LINE__, #cond);                               \
			fprintf(stderr, __VA_ARGS__);                           \
			fputc('\n', stderr);                                    \
		}                                                               \
	} while (0)

/* Equality of two ints, printing both. */
#define CHECK_EQ(a, b)                                                                 \
	do {                                                                           \
		long long check_a_ = (long long)(a), check_b_ = (long long)(b);         \
		CHECK(check_a_ == check_b_, "%s = %lld, %s = %lld", #a, check_a_, #b,  \
		      check_b_);                                                       \
	} while (0)

static inline int check_summary(const char *name)
{
	printf("%s: %d passed, %d failed\n", name, check_passed, check_failed);
	return check_failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
