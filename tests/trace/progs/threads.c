/* SPDX-License-Identifier: MIT */
/* Threads, each with its own call tree; all alive at once (a barrier). */
#include <pthread.h>
#include <stdio.h>

#define NTHREADS 4

void *worker(void *arg);
int work_step(int i);
int work_inner(int i);

static pthread_barrier_t all_started;

int work_inner(int i)
{
	return i * 2;
}

int work_step(int i)
{
	return work_inner(i) + 1;
}

void *worker(void *arg)
{
	long id = (long)arg, sum = 0;
	pthread_barrier_wait(&all_started);
	for (int i = 0; i <= id; i++) /* thread k makes k+1 steps */
		sum += work_step(i);
	return (void *)sum;
}

int main(void)
{
	pthread_t t[NTHREADS];
	pthread_barrier_init(&all_started, NULL, NTHREADS);
	for (long i = 0; i < NTHREADS; i++)
		if (pthread_create(&t[i], NULL, worker, (void *)i) != 0)
			return 1;
	long total = 0;
	for (int i = 0; i < NTHREADS; i++) {
		void *r;
		pthread_join(t[i], &r);
		total += (long)r;
	}
	printf("threads %ld\n", total);
	return 0;
}
