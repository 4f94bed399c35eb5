/* SPDX-License-Identifier: MIT */
/*
 * Preloaded into `stitch-trace live` by live_epipe_test.py: every connect()
 * that succeeds is followed by shutdown(SHUT_WR), so the request's write
 * fails with EPIPE, as when the traced process exits between the CLI's
 * connect and its write (a race too narrow to hit on purpose otherwise).
 */
#include <dlfcn.h>
#include <sys/socket.h>

int connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	int (*real)(int, const struct sockaddr *, socklen_t) =
		(int (*)(int, const struct sockaddr *, socklen_t))dlsym(RTLD_NEXT, "connect");
	int r = real(fd, sa, len);
	if (r == 0)
		shutdown(fd, SHUT_WR);
	return r;
}
