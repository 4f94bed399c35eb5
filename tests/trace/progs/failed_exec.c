/* SPDX-License-Identifier: MIT */
/* An exec that fails (no such file), then more calls and a normal exit:
 * the process goes on in its image, and its recording must say so
 * (tests/trace/failed_exec_test.sh).  Exit status 2 if the exec's errno
 * did not reach the program. */
#include <errno.h>
#include <unistd.h>

int leaf(int x);
int try_exec(void);
int after(void);

int leaf(int x)
{
	return x + 1;
}

int try_exec(void)
{
	execl("/nonexistent/stitch-failed-exec", "prog", (char *)0);
	return errno == ENOENT ? 0 : 2;
}

int after(void)
{
	int s = 0;
	for (int i = 0; i < 5; i++)
		s += leaf(i);
	return s;
}

int main(void)
{
	int r = try_exec();
	if (r)
		return r;
	return after() == 15 ? 0 : 3;
}
