/* SPDX-License-Identifier: MIT */
/* One thread calls exit(3) while main sleeps in pause(): the status is 3,
 * and main never prints (tests/trace/pause_exit_test.sh). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

__attribute__((noinline)) int three(int x);
__attribute__((noinline)) int three(int x)
{
	return x + 2;
}

static void *exiter(void *arg)
{
	(void)arg;
	usleep(100000);
	exit(three(1));
}

int main(void)
{
	pthread_t t;
	pthread_create(&t, NULL, exiter, NULL);
	int r = pause();
	printf("main: pause() returned %d\n", r);
	return 0;
}
