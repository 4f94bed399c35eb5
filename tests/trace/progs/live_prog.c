/* SPDX-License-Identifier: MIT */
/*
 * For the live-control test: threads call alpha_*, beta_* and gamma_*
 * functions in a loop until standard input closes.  Prints "ready PID"
 * once every thread has made a full round, so the test switches filters
 * only while all threads are running.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <unistd.h>

#define NTHREADS 3

int alpha_one(int x);
int alpha_two(int x);
int beta_one(int x);
int beta_two(int x);
int gamma_common(int x);
void *worker(void *arg);

static atomic_int stop, rounds_done;

/* A little work per call keeps the event rate near what the rings drain. */
static int spin(int x)
{
	volatile int v = x;
	for (int i = 0; i < 20000; i++)
		v = v * 3 + 1;
	return v;
}

int alpha_one(int x) { return spin(x) + 1; }
int alpha_two(int x) { return alpha_one(x) + 2; }
int beta_one(int x) { return spin(x) + 3; }
int beta_two(int x) { return beta_one(x) + 4; }
int gamma_common(int x) { return spin(x) + 5; }

void *worker(void *arg)
{
	(void)arg;
	int first = 1, sum = 0;
	while (!atomic_load(&stop)) {
		sum += alpha_two(sum) + beta_two(sum) + gamma_common(sum);
		if (first) {
			first = 0;
			atomic_fetch_add(&rounds_done, 1);
		}
	}
	return (void *)(long)sum;
}

int main(void)
{
	pthread_t t[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, worker, NULL) != 0)
			return 1;
	/* not a sleep standing in for synchronisation: a wait for a condition */
	while (atomic_load(&rounds_done) < NTHREADS)
		sched_yield();
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	char buf[64];
	while (read(0, buf, sizeof buf) > 0)
		;
	atomic_store(&stop, 1);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	printf("done\n");
	return 0;
}
