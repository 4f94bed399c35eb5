/* SPDX-License-Identifier: MIT */
/*
 * For depth_switch_test.py: deep recursions driven by standard input, so
 * that the test can switch graph mode while calls are in flight.
 *   "deep N"   descend N calls of down(), print "bottom", wait for a line,
 *              return all the way, print "done"
 *   "final N"  descend N calls of final_down() and return, print "done"
 *   "probe N K"  descend N calls of probe_down(), print "bottom", wait for
 *              a line, call leaf() K times there, return all the way, call
 *              leaf() K times more, print "done"
 * Prints "ready PID" first; exits at end of input.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

int down(int n);
int final_down(int n);
int probe_down(int n, int leaves);
void leaf(void);

/* Say "bottom" and wait for the test's line (the handshake, no sleeps). */
static void wait_at_bottom(void)
{
	char line[64];
	printf("bottom\n");
	fflush(stdout);
	if (!fgets(line, sizeof line, stdin))
		exit(1);
}

int down(int n)
{
	if (n == 0) {
		wait_at_bottom();
		return 0;
	}
	return down(n - 1) + 1;
}

int final_down(int n)
{
	return n == 0 ? 0 : final_down(n - 1) + 1;
}

static volatile int leaf_calls;

void leaf(void)
{
	leaf_calls++;
}

int probe_down(int n, int leaves)
{
	if (n == 0) {
		wait_at_bottom();
		for (int i = 0; i < leaves; i++)
			leaf();
		return 0;
	}
	return probe_down(n - 1, leaves) + 1;
}

int main(void)
{
	char line[64];
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	while (fgets(line, sizeof line, stdin)) {
		int n = atoi(line + strcspn(line, " "));
		if (strncmp(line, "deep ", 5) == 0) {
			down(n);
		} else if (strncmp(line, "final ", 6) == 0) {
			final_down(n);
		} else if (strncmp(line, "probe ", 6) == 0) {
			int leaves = atoi(line + 6 + strcspn(line + 6, " "));
			probe_down(n, leaves);
			for (int i = 0; i < leaves; i++)
				leaf();
		} else {
			continue;
		}
		printf("done\n");
		fflush(stdout);
	}
	return 0;
}
