/* SPDX-License-Identifier: MIT */
/*
 * A program that takes the agent's descriptors: it closes every descriptor
 * above 2 (close_range) or dup2's /dev/null over 3..1023, then opens files
 * of its own, which get the numbers the agent used.  The agent must never
 * write into them (tests/trace/fd_test.py).
 *
 *   fdclobber close|dup2|lose DIR   (DIR: where its own files go)
 * lose: the trace file is renamed away first, so the agent cannot reopen it
 * (and nothing waits for the agent to write).
 * Prints "ready PID CALLS" once the agent has written to its trace file
 * after the clobbering (or a deadline passed), reads a line, then checks
 * its files and exits 0 if they hold only what it wrote.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define NFILES 32
static long calls;

int leaf(int x);
int mid(int x);

int leaf(int x)
{
	calls++;
	return x * 2;
}

int mid(int x)
{
	calls++;
	return leaf(x) + leaf(x + 1);
}

static long long file_size(const char *path)
{
	struct stat st;
	return stat(path, &st) == 0 ? (long long)st.st_size : -1;
}

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	if (argc != 3)
		return 2;
	const char *mode = argv[1], *dir = argv[2];
	const char *tdir = getenv("STITCH_TRACE_DIR");
	char trace[4096];
	snprintf(trace, sizeof trace, "%s/trace-%d.dat", tdir ? tdir : ".", (int)getpid());
	int s = 0;
	for (int i = 0; i < 1000; i++)
		s += mid(i);
	if (strcmp(mode, "lose") == 0) {
		char away[4200];
		snprintf(away, sizeof away, "%s.away", trace);
		if (rename(trace, away) != 0)
			perror("rename");
	}
	if (strcmp(mode, "dup2") == 0) {
		int null = open("/dev/null", O_RDWR);
		for (int fd = 3; fd < 1024; fd++)
			if (fd != null)
				dup2(null, fd);
	} else if (syscall(SYS_close_range, 3U, ~0U, 0) != 0) {
		for (int fd = 3; fd < 1024; fd++)
			close(fd);
	}
	int fds[NFILES];
	char name[4200];
	for (int k = 0; k < NFILES; k++) {
		snprintf(name, sizeof name, "%s/user%d.txt", dir, k);
		fds[k] = open(name, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fds[k] < 0 || write(fds[k], "user data\n", 10) != 10)
			return 3;
	}
	/* Calls until the agent's writer has written to the trace file since
	 * (its drains check the descriptor first), for at most 10 s. */
	long long size0 = file_size(trace);
	double deadline = now_s() + 10;
	do
		for (int i = 0; i < 1000; i++)
			s += mid(i);
	while (strcmp(mode, "lose") != 0 && file_size(trace) == size0 && now_s() < deadline);
	printf("ready %d %ld\n", (int)getpid(), calls);
	fflush(stdout);
	char line[64];
	if (!fgets(line, sizeof line, stdin))
		return 4;
	int bad = 0;
	for (int k = 0; k < NFILES; k++) {
		char buf[64];
		ssize_t n = pread(fds[k], buf, sizeof buf, 0);
		if (n != 10 || memcmp(buf, "user data\n", 10) != 0) {
			fprintf(stderr, "fdclobber: %s/user%d.txt (fd %d) holds %zd bytes not written by the program\n",
				dir, k, fds[k], n - 10);
			bad = 1;
		}
	}
	/* the calls made after the check are in the recording too */
	for (int i = 0; i < 1000; i++)
		s += mid(i);
	printf("calls %ld %d\n", calls, s);
	return bad;
}
