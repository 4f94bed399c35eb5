/* SPDX-License-Identifier: MIT */
/* Deeper than the library's return stack (STITCH_FTRACE_GRAPH_DEPTH = 1024):
 * the calls beyond it are recorded without an exit, and said so.
 *   deep [N [REPEAT]] */
#include <stdio.h>
#include <stdlib.h>

int descend(int n);
int bottom(void);

int bottom(void)
{
	return 1;
}

int descend(int n)
{
	return n == 0 ? bottom() : descend(n - 1) + 1;
}

int main(int argc, char **argv)
{
	int n = argc > 1 ? atoi(argv[1]) : 1100;
	int repeat = argc > 2 ? atoi(argv[2]) : 1; /* folded_test.sh: many deep stacks */
	int r = 0;
	for (int i = 0; i < repeat; i++)
		r = descend(n);
	printf("deep %d\n", r);
	return 0;
}
