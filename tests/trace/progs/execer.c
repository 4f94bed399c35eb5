/* SPDX-License-Identifier: MIT */
/* exec: the new image records into a file of its own (same pid). */
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int before_exec(char *self);
int after_exec(void);

int before_exec(char *self)
{
	fflush(stdout);
	/* the variadic form: the agent interposes it too */
	execl("/proc/self/exe", self, "again", (char *)NULL);
	perror("execl");
	return 1;
}

int after_exec(void)
{
	return 0;
}

int main(int argc, char **argv)
{
	if (argc > 1 && strcmp(argv[1], "again") == 0) {
		printf("exec done\n");
		return after_exec();
	}
	return before_exec(argv[0]);
}
