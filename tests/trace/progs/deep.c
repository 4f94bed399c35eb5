/* SPDX-License-Identifier: MIT */
/* Deeper than the library's return stack (STITCH_FTRACE_GRAPH_DEPTH = 1024):
 * the calls beyond it are recorded without an exit, and said so.
 *   deep [N [REPEAT]] */
#include <stdio.h>
#include <stdlib.h>

int descend(int n);
int bottom(void);

/* Some work at the bottom: its box is the narrowest of folded_test.sh's
 * flame graph (every other frame's includes it), and as a bare return
 * its 300 calls were ~1/3 000 of the run, a third of a pixel, which a
 * busy machine's slower descent pushed below the 0.1 pixel a box needs
 * (1003 boxes, not 1004, once in ~25 runs).  ~20 000 iterations make it
 * tens of pixels; no call in them, so the call tree is the same. */
int bottom(void)
{
	volatile unsigned spin = 0;
	for (unsigned i = 0; i < 20000; i++)
		spin = spin + 1;
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
