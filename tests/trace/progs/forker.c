/* SPDX-License-Identifier: MIT */
/* fork: the child records into its own file (--fork follow). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

int child_leaf(void);
int child_work(void);
int parent_work(void);
int do_fork(void);

int child_leaf(void)
{
	return 7;
}

int child_work(void)
{
	return child_leaf() + 1;
}

int parent_work(void)
{
	return 3;
}

int do_fork(void)
{
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		int r = child_work();
		exit(r == 8 ? 0 : 1); /* exit(), not _exit(): the agent flushes at exit */
	}
	int status;
	if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
		return -1;
	return parent_work();
}

/* outlive: the child outlives its parent, reading stdin until EOF.  The
 * parent returns once the child runs: fork() has returned in the child, so
 * its trace file exists (the agent's fork handler opens it). */
static int outlive(void)
{
	int ready[2];
	if (pipe(ready) != 0)
		return 1;
	fflush(stdout);
	pid_t pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0) {
		char buf[64];
		close(1); /* whoever reads the parent's output must not wait for us */
		close(ready[0]);
		if (write(ready[1], "r", 1) != 1)
			_exit(1);
		close(ready[1]);
		while (read(0, buf, sizeof buf) > 0)
			child_work();
		exit(0);
	}
	close(ready[1]);
	char c;
	if (read(ready[0], &c, 1) != 1)
		return 1;
	printf("child %d\n", (int)pid);
	return parent_work() == 3 ? 0 : 1;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "outlive") == 0)
		return outlive();
	int r = do_fork();
	printf("fork %d\n", r);
	return r == 3 ? 0 : 1;
}
