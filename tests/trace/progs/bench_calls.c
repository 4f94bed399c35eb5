/* SPDX-License-Identifier: MIT */
/* Call-heavy program for bench_overhead.sh: main -> mid -> leaf, N times.
 * "bench_calls N _exit": ends with _exit() (no END record: cli_test.sh). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
long leaf(long x);
long mid(long x);

__attribute__((noinline)) long leaf(long x) { __asm__ volatile("" ::: "memory"); return x + 1; }
__attribute__((noinline)) long mid(long x) { return leaf(x) ^ 1; }
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000000, s = 0;
	for (long i = 0; i < n; i++)
		s += mid(i);
	printf("%ld\n", s);
	if (argc > 2 && strcmp(argv[2], "_exit") == 0) {
		fflush(stdout);
		_exit(0);
	}
	return 0;
}
