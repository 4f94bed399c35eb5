// SPDX-License-Identifier: MIT
// C++ exceptions through traced frames (src/core/ftrace_unwind.c):
// the frames a throw went through are reported unwound, the catcher and its
// callers return normally, a rethrow, pthread_exit() and pthread_cancel()
// work too.
#include <atomic>
#include <cstdio>
#include <pthread.h>
#include <sched.h>
#include <stdexcept>

extern "C" {
int thrower(int x);
int middle(int x);
int catcher(int x);
int rethrower(int x);
int outer(int x);
void exiting(int x);
void waiting(int x);
void cancelled(int x);
}

int thrower(int x)
{
	if (x > 0)
		throw std::runtime_error("boom");
	return x;
}

int middle(int x)
{
	return thrower(x) + 1;
}

int catcher(int x)
{
	try {
		return middle(x);
	} catch (const std::exception &) {
		return -1;
	}
}

int rethrower(int x)
{
	try {
		return middle(x);
	} catch (...) {
		throw;
	}
}

int outer(int x)
{
	int r = catcher(x);
	try {
		r += rethrower(x);
	} catch (const std::runtime_error &) {
		r -= 10;
	}
	return r;
}

static int cleaned;
static void cleanup(void *) { cleaned = 1; }

void exiting(int x)
{
	pthread_cleanup_push(cleanup, nullptr);
	(void)middle(x - 1);
	pthread_exit(nullptr);
	pthread_cleanup_pop(0);
}

static void *thread_main(void *)
{
	exiting(1);
	return nullptr;
}

// Cancelled at pthread_testcancel() once main() has asked for it: glibc
// unwinds the thread from inside itself.
static std::atomic<int> stage;
static int cancel_cleaned;
static void cancel_cleanup(void *) { cancel_cleaned = 1; }

void waiting(int)
{
	stage.store(1);
	while (stage.load() != 2)
		sched_yield();
	pthread_testcancel();
}

void cancelled(int x)
{
	pthread_cleanup_push(cancel_cleanup, nullptr);
	(void)middle(x - 1);
	waiting(x);
	pthread_cleanup_pop(0);
}

static void *cancelled_main(void *)
{
	cancelled(1);
	return nullptr;
}

int main()
{
	int r = outer(1);
	pthread_t t;
	pthread_create(&t, nullptr, thread_main, nullptr);
	pthread_join(t, nullptr);
	pthread_create(&t, nullptr, cancelled_main, nullptr);
	while (stage.load() != 1)
		sched_yield();
	pthread_cancel(t);
	stage.store(2);
	void *ret = nullptr;
	pthread_join(t, &ret);
	std::printf("outer %d, cleanup %s, cancel cleanup %s\n", r, cleaned ? "ran" : "skipped",
		    cancel_cleaned ? "ran" : "skipped");
	return r == -11 && cleaned && cancel_cleaned && ret == PTHREAD_CANCELED ? 0 : 1;
}
