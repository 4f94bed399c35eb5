/* SPDX-License-Identifier: MIT */
/* main() ends with pthread_exit() while two threads run: the process ends
 * when the last of them does (glibc calls exit(0) after the last thread),
 * with status 0.  The worker makes its calls after main has exited (it
 * joins the main thread first); the quiet thread, recorded with -N quiet,
 * makes no traced call: it waits for the worker, then prints, and must
 * not be cut short (tests/trace/main_exit_test.sh). */
#include <pthread.h>
#include <string.h>
#include <unistd.h>

#define CALLS 1000

int leaf(int x);
int work(int n);
void *worker(void *arg);
void *quiet(void *arg);

static pthread_t main_thread, worker_thread;

int leaf(int x)
{
	return x + 1;
}

int work(int n)
{
	int s = 0;
	for (int i = 0; i < n; i++)
		s += leaf(i);
	return s;
}

void *worker(void *arg)
{
	(void)arg;
	pthread_join(main_thread, NULL);
	work(CALLS);
	return NULL;
}

void *quiet(void *arg)
{
	static const char done[] = "quiet thread done\n";
	(void)arg;
	pthread_join(worker_thread, NULL);
	ssize_t w = write(1, done, strlen(done));
	(void)w;
	return NULL;
}

int main(void)
{
	pthread_t t;
	main_thread = pthread_self();
	if (pthread_create(&worker_thread, NULL, worker, NULL) != 0 || pthread_create(&t, NULL, quiet, NULL) != 0)
		return 1;
	pthread_exit(NULL);
}
