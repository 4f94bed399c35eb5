/* SPDX-License-Identifier: MIT */
/*
 * For the attach test: not started under stitch-trace.  Calls tick() and
 * tock() in a loop until standard input closes, checking every result;
 * prints its functions' addresses first so the test can read their code.
 * Its output does not depend on how long it ran.
 */
#include <stdio.h>
#include <unistd.h>
#include <poll.h>

int tick(int x);
int tock(int x);

int tock(int x)
{
	return x * 2;
}

int tick(int x)
{
	return tock(x) + 1;
}

int main(void)
{
	printf("ready %d %p %p\n", (int)getpid(), (void *)tick, (void *)tock);
	fflush(stdout);
	long bad = 0;
	for (int i = 0;; i++) {
		if (tick(i) != 2 * i + 1)
			bad++;
#ifdef EXTRA_ROUND
		if (!EXTRA_ROUND(i)) /* the C++ build's throw and catch */
			bad++;
#endif
		struct pollfd p = { .fd = 0, .events = POLLIN, .revents = 0 }; /* all three: also built as C++ */
		if (poll(&p, 1, 1) > 0) { /* input or EOF: stop at EOF */
			char buf[64];
			if (read(0, buf, sizeof buf) <= 0)
				break;
		}
		if (i == 1 << 30)
			i = 0;
	}
	printf("attach_prog: %s\n", bad ? "WRONG RESULTS" : "all results right");
	return bad ? 1 : 0;
}
