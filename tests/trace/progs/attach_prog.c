/* SPDX-License-Identifier: MIT */
/*
 * For the attach test: not started under stitch-trace.  Calls tick() and
 * tock() in a loop until standard input closes, checking every result;
 * prints its functions' addresses first so the test can read their code.
 * A line "load PATH" on standard input loads that library (the test's
 * dllib.c) and from then on calls its lib_entry() too, printing its
 * address.  Its last line does not depend on how long it ran.
 */
#include <dlfcn.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

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
	int (*lib_entry)(int) = NULL;
	for (int i = 0;; i++) {
		if (tick(i) != 2 * i + 1)
			bad++;
		if (lib_entry && lib_entry(i % 1000) != (i % 1000 + 1) * 2)
			bad++;
#ifdef EXTRA_ROUND
		if (!EXTRA_ROUND(i)) /* the C++ build's throw and catch */
			bad++;
#endif
		struct pollfd p = { .fd = 0, .events = POLLIN, .revents = 0 }; /* all three: also built as C++ */
		if (poll(&p, 1, 1) > 0) { /* input or EOF: stop at EOF */
			char buf[4096];
			ssize_t n = read(0, buf, sizeof buf - 1);
			if (n <= 0)
				break;
			buf[n] = '\0';
			if (!lib_entry && strncmp(buf, "load ", 5) == 0) {
				buf[strcspn(buf, "\n")] = '\0';
				void *h = dlopen(buf + 5, RTLD_NOW | RTLD_LOCAL);
				lib_entry = h ? (int (*)(int))dlsym(h, "lib_entry") : NULL;
				printf("loaded %p\n", (void *)lib_entry);
				fflush(stdout);
				if (!lib_entry)
					bad++;
			}
		}
		if (i == 1 << 30)
			i = 0;
	}
	printf("attach_prog: %s\n", bad ? "WRONG RESULTS" : "all results right");
	return bad ? 1 : 0;
}
