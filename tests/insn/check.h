/* SPDX-License-Identifier: MIT */
/*
 * Minimal checks for the instruction-layer tests: every check counts, a
 * failure prints where and what, and check_report() prints
 * "<name>: N passed, M failed" and gives the exit status.
 */
#ifndef STITCH_TESTS_INSN_CHECK_H
#define STITCH_TESTS_INSN_CHECK_H

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static unsigned long check_passed, check_failed;

static inline bool check_true(bool ok, const char *what, const char *file, int line)
{
	if (ok) {
		check_passed++;
		return true;
	}
	check_failed++;
	if (check_failed <= 50)
		fprintf(stderr, "%s:%d: FAILED: %s\n", file, line, what);
	return false;
}

static inline bool check_u64(uint64_t got, uint64_t want, const char *expr, const char *file, int line)
{
	if (got == want) {
		check_passed++;
		return true;
	}
	check_failed++;
	if (check_failed <= 50)
		fprintf(stderr, "%s:%d: FAILED: %s is 0x%" PRIx64 " (%" PRId64 "), expected 0x%" PRIx64
			" (%" PRId64 ")\n", file, line, expr, got, (int64_t)got, want, (int64_t)want);
	return false;
}

static inline bool check_str(const char *got, const char *want, const char *expr, const char *file, int line)
{
	if (strcmp(got, want) == 0) {
		check_passed++;
		return true;
	}
	check_failed++;
	if (check_failed <= 50)
		fprintf(stderr, "%s:%d: FAILED: %s is \"%s\", expected \"%s\"\n", file, line, expr, got, want);
	return false;
}

static inline bool check_bytes(const uint8_t *got, const uint8_t *want, size_t n, const char *expr,
			       const char *file, int line)
{
	if (memcmp(got, want, n) == 0) {
		check_passed++;
		return true;
	}
	check_failed++;
	if (check_failed <= 50) {
		fprintf(stderr, "%s:%d: FAILED: %s:\n  got ", file, line, expr);
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %02x", got[i]);
		fprintf(stderr, "\n  want");
		for (size_t i = 0; i < n; i++)
			fprintf(stderr, " %02x", want[i]);
		fprintf(stderr, "\n");
	}
	return false;
}

#define CHECK(c) check_true((c), #c, __FILE__, __LINE__)
#define CHECK_EQ(got, want) check_u64((uint64_t)(got), (uint64_t)(want), #got, __FILE__, __LINE__)
#define CHECK_STR(got, want) check_str((got), (want), #got, __FILE__, __LINE__)
#define CHECK_BYTES(got, want, n) check_bytes((got), (want), (n), #got, __FILE__, __LINE__)

static inline int check_report(const char *name)
{
	printf("%s: %lu passed, %lu failed\n", name, check_passed, check_failed);
	return check_failed ? 1 : 0;
}

/* Deterministic PRNG (splitmix64): same seed, same test, on every host. */
static uint64_t rng_state;

static inline void rng_seed(uint64_t seed)
{
	rng_state = seed;
}

static inline uint64_t rng_next(void)
{
	uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
	return z ^ (z >> 31);
}

/* Uniform in [lo, hi] (inclusive), for ranges narrower than 2^63. */
static inline int64_t rng_range(int64_t lo, int64_t hi)
{
	return lo + (int64_t)(rng_next() % (uint64_t)(hi - lo + 1));
}

/*
 * A value in [lo, hi]: a quarter of the time within 16 steps of lo, a
 * quarter within 16 steps of hi, otherwise uniform; always a multiple of
 * `step` counted from lo (lo and hi must be multiples of step apart).
 */
static inline int64_t rng_edgy(int64_t lo, int64_t hi, int64_t step)
{
	int64_t n = (hi - lo) / step, k;

	switch (rng_next() % 4) {
	case 0: k = rng_range(0, n < 16 ? n : 16); break;
	case 1: k = n - rng_range(0, n < 16 ? n : 16); break;
	default: k = rng_range(0, n); break;
	}
	return lo + k * step;
}

/* Seed from argv ("--seed N") or STITCH_TEST_SEED, else a fixed default. */
static inline uint64_t rng_seed_from(int argc, char **argv, uint64_t def)
{
	const char *e = getenv("STITCH_TEST_SEED");

	for (int i = 1; i + 1 < argc; i++)
		if (strcmp(argv[i], "--seed") == 0)
			return strtoull(argv[i + 1], NULL, 0);
	return e && *e ? strtoull(e, NULL, 0) : def;
}

#endif /* STITCH_TESTS_INSN_CHECK_H */
