// SPDX-License-Identifier: MIT
// C++ exceptions through traced frames (src/core/ftrace_unwind.c):
// the frames a throw went through are reported unwound, the catcher and its
// callers return normally, a rethrow and pthread_exit() work too.
#include <cstdio>
#include <pthread.h>
#include <stdexcept>

extern "C" {
int thrower(int x);
int middle(int x);
int catcher(int x);
int rethrower(int x);
int outer(int x);
void exiting(int x);
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

int main()
{
	int r = outer(1);
	pthread_t t;
	pthread_create(&t, nullptr, thread_main, nullptr);
	pthread_join(t, nullptr);
	std::printf("outer %d, cleanup %s\n", r, cleaned ? "ran" : "skipped");
	return r == -11 && cleaned ? 0 : 1;
}
