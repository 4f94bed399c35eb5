/* SPDX-License-Identifier: MIT */
/* A traced signal handler runs nested in the interrupted call. */
#include <signal.h>
#include <stdio.h>

void on_signal(int sig);
int in_handler(void);
int send_signal(void);

static volatile sig_atomic_t handled;

int in_handler(void)
{
	return 1;
}

void on_signal(int sig)
{
	(void)sig;
	handled += in_handler();
}

int send_signal(void)
{
	/* raise() delivers the signal before it returns */
	raise(SIGUSR1);
	return handled;
}

int main(void)
{
	struct sigaction sa = { .sa_handler = on_signal };
	sigemptyset(&sa.sa_mask);
	sigaction(SIGUSR1, &sa, NULL);
	int r = send_signal();
	printf("signals %d\n", r);
	return r == 1 ? 0 : 1;
}
