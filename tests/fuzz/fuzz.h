/* SPDX-License-Identifier: MIT */
/*
 * Shared by the libFuzzer targets: the entry point's prototype (the build
 * uses -Wmissing-prototypes) and a check that aborts, so that libFuzzer
 * records the input that broke an invariant as a crash.
 */
#ifndef STITCH_TESTS_FUZZ_H
#define STITCH_TESTS_FUZZ_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FUZZ_CHECK(cond)                                                                                   \
	do {                                                                                               \
		if (!(cond)) {                                                                             \
			fprintf(stderr, "%s:%d: invariant broken: %s\n", __FILE__, __LINE__, #cond);      \
			abort();                                                                           \
		}                                                                                          \
	} while (0)

/* Little-endian 64-bit value from the first 8 bytes (the inputs carry their pc there). */
static inline uint64_t fuzz_get64(const uint8_t *p)
{
	uint64_t v = 0;
	for (int i = 7; i >= 0; i--)
		v = v << 8 | p[i];
	return v;
}

#endif
