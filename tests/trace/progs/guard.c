/* SPDX-License-Identifier: MIT */
/*
 * A signal handler that calls a traced function lands inside the agent's
 * callback, deterministically (tests/trace/guard_test.sh).  The program
 * interposes prctl(), which the agent calls from its entry callback when a
 * thread's first traced call makes the thread's ring (to read its name):
 * armed for the thread, the interposer raises SIGUSR1 there, and raise()
 * runs the handler before it returns - inside the callback, where tracing
 * is off for the thread.  A program that wraps a libc function the tracer
 * uses is the stand-in here for a handler arriving at any moment.
 * The handler knows where it runs and counts its traced calls both ways;
 * the program prints them:
 *   inside N      calls made inside the callback (not recorded)
 *   outside M     calls made by the handler outside callbacks (recorded)
 */
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

#define HANDLER_CALLS 3
#define ARMED_THREADS 4

/* not traced itself: only the handler's calls are counted */
#define NOT_TRACED __attribute__((patchable_function_entry(0, 0)))

int handled_leaf(int v);
int first_traced_call(int v);

static __thread int raise_in_prctl; /* the next prctl(PR_GET_NAME) raises SIGUSR1 */
static __thread int in_prctl;
static volatile sig_atomic_t calls_inside, calls_outside;

int handled_leaf(int v)
{
	return v + 1;
}

int first_traced_call(int v)
{
	return v * 2;
}

NOT_TRACED int prctl(int option, ...)
{
	va_list ap;
	va_start(ap, option);
	unsigned long a2 = va_arg(ap, unsigned long), a3 = va_arg(ap, unsigned long);
	unsigned long a4 = va_arg(ap, unsigned long), a5 = va_arg(ap, unsigned long);
	va_end(ap);
	if (raise_in_prctl && option == PR_GET_NAME) {
		raise_in_prctl = 0;
		in_prctl = 1;
		raise(SIGUSR1);
		in_prctl = 0;
	}
	return (int)syscall(SYS_prctl, option, a2, a3, a4, a5);
}

NOT_TRACED static void on_usr1(int sig)
{
	(void)sig;
	for (int i = 0; i < HANDLER_CALLS; i++)
		handled_leaf(i);
	if (in_prctl)
		calls_inside += HANDLER_CALLS;
	else
		calls_outside += HANDLER_CALLS;
}

NOT_TRACED static void *armed_thread(void *arg)
{
	(void)arg;
	raise_in_prctl = 1;
	/* the thread's first traced call: its callback makes the thread's ring */
	first_traced_call(1);
	if (raise_in_prctl)
		fprintf(stderr, "guard: the agent did not call prctl(PR_GET_NAME) in this thread's first traced call\n");
	return NULL;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_usr1 };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	/* outside callbacks: the handler's calls are recorded */
	raise(SIGUSR1);
	for (int i = 0; i < ARMED_THREADS; i++) {
		pthread_t t;
		if (pthread_create(&t, NULL, armed_thread, NULL) != 0)
			return 2;
		pthread_join(t, NULL);
	}
	printf("inside %d\noutside %d\n", (int)calls_inside, (int)calls_outside);
	return 0;
}
