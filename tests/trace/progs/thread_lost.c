/* SPDX-License-Identifier: MIT */
/* A thread makes many calls and exits before the program does: recorded
 * with a tiny ring, most of its events are lost, and its last losses are
 * still pending when it exits (tests/trace/thread_lost_test.sh). */
#include <pthread.h>
#include <stdlib.h>

int leaf(int x);
int mid(int x);
void *worker(void *arg);

int leaf(int x)
{
	return x + 1;
}

int mid(int x)
{
	return leaf(x) + leaf(x + 1);
}

void *worker(void *arg)
{
	long n = (long)arg, s = 0;
	for (long i = 0; i < n; i++)
		s += mid((int)i);
	return (void *)s;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000;
	pthread_t t;
	if (pthread_create(&t, NULL, worker, (void *)n) != 0)
		return 1;
	pthread_join(t, NULL);
	return 0;
}
