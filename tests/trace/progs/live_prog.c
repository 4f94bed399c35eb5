/* SPDX-License-Identifier: MIT */
/*
 * For the live-control test: threads call alpha_*, beta_* and gamma_*
 * functions in a loop until standard input closes.  Prints "ready PID"
 * once every thread has made a full round, so the test switches filters
 * only while all threads are running; answers each "sync" line with
 * "synced" once every thread has made a full round since, so the test
 * knows every filter window saw calls of every function.
 */
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define NTHREADS 3

int alpha_one(int x);
int alpha_two(int x);
int beta_one(int x);
int beta_two(int x);
int gamma_common(int x);
void *worker(void *arg);

static atomic_int stop;
static atomic_long rounds[NTHREADS];

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
	long id = (long)arg;
	int sum = 0;
	while (!atomic_load(&stop)) {
		sum += alpha_two(sum) + beta_two(sum) + gamma_common(sum);
		atomic_fetch_add(&rounds[id], 1);
	}
	return (void *)(long)sum;
}

/* Wait until every thread has begun and finished a round after this call
 * (two more completions): a wait for a condition, not for time. */
static void wait_rounds(void)
{
	long seen[NTHREADS];
	for (int i = 0; i < NTHREADS; i++)
		seen[i] = atomic_load(&rounds[i]);
	for (int i = 0; i < NTHREADS; i++)
		while (atomic_load(&rounds[i]) < seen[i] + 2)
			sched_yield();
}

int main(void)
{
	pthread_t t[NTHREADS];
	for (long i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
			return 1;
	wait_rounds();
	printf("ready %d\n", (int)getpid());
	fflush(stdout);
	char line[64];
	while (fgets(line, sizeof line, stdin)) {
		if (strcmp(line, "sync\n") == 0) {
			wait_rounds();
			printf("synced\n");
			fflush(stdout);
		}
	}
	atomic_store(&stop, 1);
	for (int i = 0; i < NTHREADS; i++)
		pthread_join(t[i], NULL);
	printf("done\n");
	return 0;
}
