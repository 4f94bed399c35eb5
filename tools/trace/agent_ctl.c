/* SPDX-License-Identifier: MIT */
/*
 * The agent's control channel: a Unix stream socket <dir>/<pid>.sock
 * (ctlpath.c), mode 0600 inside a 0700 directory, served by one thread.
 * One request per connection: the peer must have our uid (SO_PEERCRED),
 * the request must arrive whole within CTL_READ_TIMEOUT_MS and parse
 * (ctl.c); anything else gets a refusal and changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdatomic.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "ctl.h"
#include "ctlpath.h"

#define CTL_READ_TIMEOUT_MS 2000

static int listen_fd = -1;
static int stop_pipe[2] = { -1, -1 };
static pthread_t ctl_thread;
static _Atomic int ctl_running;
static int detached;
static char sock_path[108];

static long long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Read exactly n bytes by `deadline` (now_ms) or fail (peer closed, time
 * out, error): the whole request shares one CTL_READ_TIMEOUT_MS, so a
 * client sending a byte now and then cannot hold the channel (a probe's
 * byte every 1.5 s held it 17 s). */
static int read_full(int fd, uint8_t *buf, size_t n, long long deadline)
{
	size_t got = 0;
	while (got < n) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		long long left = deadline - now_ms();
		if (left <= 0)
			return -1;
		int r = poll(&p, 1, (int)left);
		if (r < 0 && errno == EINTR)
			continue;
		if (r <= 0)
			return -1;
		ssize_t k = read(fd, buf + got, n - got);
		if (k < 0 && errno == EINTR)
			continue;
		if (k <= 0)
			return -1;
		got += (size_t)k;
	}
	return 0;
}

static void send_reply(int fd, int status, const char *text)
{
	uint8_t buf[CTL_MAX_REPLY + 5];
	size_t n = strlen(text);
	if (n > CTL_MAX_REPLY)
		n = CTL_MAX_REPLY;
	uint32_t len = (uint32_t)(n + 1);
	buf[0] = (uint8_t)len, buf[1] = (uint8_t)(len >> 8), buf[2] = (uint8_t)(len >> 16), buf[3] = (uint8_t)(len >> 24);
	buf[4] = (uint8_t)status;
	memcpy(buf + 5, text, n);
	size_t off = 0;
	while (off < n + 5) {
		ssize_t w = send(fd, buf + off, n + 5 - off, MSG_NOSIGNAL);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		off += (size_t)w;
	}
}

static void serve(int fd)
{
	struct ucred cred;
	socklen_t len = sizeof cred;
	if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0 || cred.uid != getuid()) {
		send_reply(fd, 1, "refused: peer is not the owner of the traced process");
		return;
	}
	uint8_t buf[CTL_MAX_REQUEST];
	long long deadline = now_ms() + CTL_READ_TIMEOUT_MS;
	if (read_full(fd, buf, 4, deadline) != 0) {
		send_reply(fd, 1, "refused: truncated request");
		return;
	}
	uint32_t body = (uint32_t)buf[0] | (uint32_t)buf[1] << 8 | (uint32_t)buf[2] << 16 | (uint32_t)buf[3] << 24;
	/* Refuse an oversized length before reading: never trust it for a size. */
	if (body > sizeof buf - 4 || body < CTL_HEADER - 4) {
		send_reply(fd, 1, "refused: request length out of range");
		return;
	}
	if (read_full(fd, buf + 4, body, deadline) != 0) {
		send_reply(fd, 1, "refused: truncated request");
		return;
	}
	/* One request per connection: bytes that came with it past its
	 * length are a malformed client, refused rather than ignored. */
	uint8_t extra;
	if (recv(fd, &extra, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
		send_reply(fd, 1, "refused: bytes after the request (one request per connection)");
		return;
	}
	struct ctl_request req;
	int err = stitch_trace_ctl_parse(buf, 4 + (size_t)body, &req);
	if (err) {
		char msg[256];
		snprintf(msg, sizeof msg, "refused: %s", stitch_trace_ctl_strerror(err));
		send_reply(fd, 1, msg);
		return;
	}
	char reply[CTL_MAX_REPLY];
	int r = agent_control(&req, reply, sizeof reply);
	if (req.cmd == CTL_DETACH && r == 0) {
		/* the socket goes before the answer: once "detach" returns, the
		 * process can no longer be reached */
		unlink(sock_path);
		detached = 1;
	}
	send_reply(fd, r == 0 ? 0 : 1, reply);
}

static void *ctl_main(void *arg)
{
	(void)arg;
	agent_block_signals();
	long long next_module_poll = now_ms() + AGENT_MODULE_POLL_MS;
	for (;;) {
		struct pollfd p[2] = { { .fd = listen_fd, .events = POLLIN }, { .fd = stop_pipe[0], .events = POLLIN } };
		int timeout = -1;
		if (agent_polls_modules()) {
			/* by the clock: a stream of requests must not put it off */
			long long now = now_ms();
			if (now >= next_module_poll) {
				agent_poll_modules();
				next_module_poll = now + AGENT_MODULE_POLL_MS;
			}
			timeout = (int)(next_module_poll - now);
		}
		int n = poll(p, 2, timeout);
		if (n == 0 || (n < 0 && errno == EINTR))
			continue;
		if (n < 0 || p[1].revents)
			break;
		int fd = accept4(listen_fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve(fd);
		/* Read what the peer still sends before closing: closing with
		 * unread input resets the connection, and the peer may lose
		 * the reply (a refusal sent before the rest of a long request:
		 * a 1 MiB one got a reset while this stopped at 64 KiB).  Until
		 * the peer closes, for at most CTL_READ_TIMEOUT_MS. */
		shutdown(fd, SHUT_WR);
		uint8_t sink[4096];
		long long deadline = now_ms() + CTL_READ_TIMEOUT_MS;
		for (;;) {
			long long left = deadline - now_ms();
			struct pollfd pd = { .fd = fd, .events = POLLIN };
			if (left <= 0 || poll(&pd, 1, (int)left) <= 0)
				break;
			ssize_t k = read(fd, sink, sizeof sink);
			if (k <= 0 && !(k < 0 && errno == EINTR))
				break;
		}
		close(fd);
		if (detached) {
			/* nobody joins this thread now: it cleans up after itself */
			pthread_detach(pthread_self());
			close(listen_fd);
			close(stop_pipe[0]);
			close(stop_pipe[1]);
			listen_fd = stop_pipe[0] = stop_pipe[1] = -1;
			atomic_store(&ctl_running, 0);
			break;
		}
	}
	return NULL;
}

int agent_ctl_start(void)
{
	const char *why = "";
	if (stitch_trace_ctl_socket_path(sock_path, sizeof sock_path, getpid(), 1, &why) != 0) {
		agent_say("no control socket: %s (%s)", why, strerror(errno));
		return -1;
	}
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path); /* a stale one of an earlier process with this pid */
	stitch_trace_ctl_sweep(); /* and those of processes killed since */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(sock_path, 0600) != 0 ||
	    listen(fd, 8) != 0 || pipe2(stop_pipe, O_CLOEXEC) != 0) {
		agent_say("no control socket %s: %s", sock_path, strerror(errno));
		if (fd >= 0)
			close(fd);
		unlink(sock_path);
		return -1;
	}
	listen_fd = fd;
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = pthread_create(&ctl_thread, NULL, ctl_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		agent_say("no control thread: %s", strerror(err));
		close(listen_fd);
		listen_fd = -1;
		unlink(sock_path);
		return -1;
	}
	ctl_running = 1;
	return 0;
}

void agent_ctl_stop(void)
{
	if (!ctl_running)
		return;
	char c = 1;
	ssize_t w = write(stop_pipe[1], &c, 1);
	(void)w;
	pthread_join(ctl_thread, NULL);
	ctl_running = 0;
	close(listen_fd);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	listen_fd = stop_pipe[0] = stop_pipe[1] = -1;
	unlink(sock_path);
}

void agent_ctl_forget(void)
{
	if (!ctl_running)
		return;
	/* The socket file is the parent's: close our copies, leave it. */
	close(listen_fd);
	close(stop_pipe[0]);
	close(stop_pipe[1]);
	listen_fd = stop_pipe[0] = stop_pipe[1] = -1;
	ctl_running = 0;
}
