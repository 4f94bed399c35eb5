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
/* How often the control thread checks that its descriptors are still its
 * own (agent.h, struct agent_fd): poll() on a number the program took may
 * never return, or return at once. */
#define CTL_FD_CHECK_MS 250

static struct agent_fd listen_fd = AGENT_FD_NONE;
/* The stop pipe: agent_ctl_stop() writes, the thread polls.  stop_lock
 * serialises the write with the thread replacing a pipe the program took;
 * ctl_stop is what counts, the byte only wakes the thread early. */
static struct agent_fd stop_rd = AGENT_FD_NONE, stop_wr = AGENT_FD_NONE;
static pthread_mutex_t stop_lock = PTHREAD_MUTEX_INITIALIZER;
static _Atomic int ctl_stop;
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

/* The listening socket at sock_path (replacing whatever is there). */
static int open_listener(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	strcpy(sa.sun_path, sock_path);
	unlink(sock_path); /* a stale one of an earlier process with this pid, or ours gone */
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 || chmod(sock_path, 0600) != 0 ||
	    listen(fd, 8) != 0) {
		int err = errno;
		if (fd >= 0)
			close(fd);
		unlink(sock_path);
		errno = err;
		return -1;
	}
	return agent_fd_keep(&listen_fd, fd) < 0 ? -1 : 0;
}

/* stop_lock held, or no control thread yet.  A socket pair, not a pipe:
 * the program may close the reading end and leave the writing one (a dup2
 * loop half way), and only send() can be told not to raise SIGPIPE then. */
static int open_stop_pipe(void)
{
	int p[2];
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, p) != 0)
		return -1;
	if (agent_fd_keep(&stop_rd, p[0]) < 0 || agent_fd_keep(&stop_wr, p[1]) < 0) {
		agent_fd_close(&stop_rd);
		agent_fd_close(&stop_wr);
		return -1;
	}
	return 0;
}

/*
 * Are the listening socket and the stop pipe still ours?  A program that
 * closed them (close_range, dup2 over them) may have its own files at
 * those numbers now: leave the numbers alone, make new ones, say so once.
 * Returns -1 if the socket could not be made again (nobody can reach us).
 */
static int check_fds(void)
{
	static int said_sock, said_pipe;
	if (!agent_fd_ours(&listen_fd)) {
		int old = listen_fd.fd;
		listen_fd.fd = -1; /* the program's now: never closed */
		if (open_listener() != 0) {
			static int said_fail;
			if (!said_fail)
				agent_say("the program closed or reused descriptor %d (the control socket) and %s cannot "
					  "be made again: %s; trying again every %d ms",
					  old, sock_path, strerror(errno), CTL_FD_CHECK_MS);
			said_fail = 1;
			return 0; /* poll() ignores the -1: the next tick tries again */
		}
		if (!said_sock)
			agent_say("the program closed or reused descriptor %d (the control socket); listening again on %s",
				  old, sock_path);
		said_sock = 1;
	}
	pthread_mutex_lock(&stop_lock);
	if (!agent_fd_ours(&stop_rd) || !agent_fd_ours(&stop_wr)) {
		int old = !agent_fd_ours(&stop_rd) ? stop_rd.fd : stop_wr.fd;
		/* close only the end still ours; the other number is the program's */
		agent_fd_close(&stop_rd);
		agent_fd_close(&stop_wr);
		/* without a pipe the thread still sees ctl_stop every CTL_FD_CHECK_MS */
		if (open_stop_pipe() == 0 && !said_pipe) {
			agent_say("the program closed or reused descriptor %d (the control thread's pipe); made a new one",
				  old);
			said_pipe = 1;
		}
	}
	pthread_mutex_unlock(&stop_lock);
	return 0;
}

static void close_fds(void)
{
	agent_fd_close(&listen_fd);
	pthread_mutex_lock(&stop_lock);
	agent_fd_close(&stop_rd);
	agent_fd_close(&stop_wr);
	pthread_mutex_unlock(&stop_lock);
}

static void ctl_loop(void)
{
	long long next_module_poll = now_ms() + AGENT_MODULE_POLL_MS;
	while (!atomic_load(&ctl_stop)) {
		if (check_fds() != 0)
			break;
		struct pollfd p[2] = { { .fd = listen_fd.fd, .events = POLLIN }, { .fd = stop_rd.fd, .events = POLLIN } };
		int timeout = CTL_FD_CHECK_MS;
		if (agent_polls_modules()) {
			/* by the clock: a stream of requests must not put it off */
			long long now = now_ms();
			if (now >= next_module_poll) {
				agent_poll_modules();
				next_module_poll = now + AGENT_MODULE_POLL_MS;
			}
			if (next_module_poll - now < timeout)
				timeout = (int)(next_module_poll - now);
		}
		int n = poll(p, 2, timeout);
		if (n <= 0 || atomic_load(&ctl_stop))
			continue;
		/* a number the program took may be readable (its file): only
		 * accept on our own socket */
		if (!(p[0].revents & POLLIN) || !agent_fd_ours(&listen_fd))
			continue;
		int fd = accept4(listen_fd.fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0) {
			/* not a listening socket: the program put something of its
			 * own at that number between our socket() and the fstat()
			 * that recorded it (a dup2 loop running meanwhile), so the
			 * record names its file - forget it and listen again */
			if (errno == ENOTSOCK || errno == EINVAL || errno == EBADF)
				listen_fd.fd = -1;
			continue;
		}
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
			close_fds();
			atomic_store(&ctl_running, 0);
			return;
		}
	}
}

static void *ctl_main(void *arg)
{
	(void)arg;
	agent_thread_enter();
	agent_block_signals();
	ctl_loop();
	/* every way out of the loop: the thread is not the program's */
	agent_thread_leave();
	return NULL;
}

int agent_ctl_start(void)
{
	const char *why = "";
	if (stitch_trace_ctl_socket_path(sock_path, sizeof sock_path, getpid(), 1, &why) != 0) {
		agent_say("no control socket: %s (%s)", why, strerror(errno));
		return -1;
	}
	stitch_trace_ctl_sweep(); /* the sockets of processes killed since */
	atomic_store(&ctl_stop, 0);
	if (open_listener() != 0 || open_stop_pipe() != 0) {
		agent_say("no control socket %s: %s", sock_path, strerror(errno));
		agent_fd_close(&listen_fd);
		unlink(sock_path);
		return -1;
	}
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = pthread_create(&ctl_thread, NULL, ctl_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		agent_say("no control thread: %s", strerror(err));
		close_fds();
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
	atomic_store(&ctl_stop, 1);
	pthread_mutex_lock(&stop_lock);
	if (agent_fd_ours(&stop_wr)) { /* else the thread sees ctl_stop within CTL_FD_CHECK_MS */
		char c = 1;
		ssize_t w = send(stop_wr.fd, &c, 1, MSG_NOSIGNAL | MSG_DONTWAIT);
		(void)w;
	}
	pthread_mutex_unlock(&stop_lock);
	pthread_join(ctl_thread, NULL);
	ctl_running = 0;
	close_fds();
	unlink(sock_path);
}

void agent_ctl_forget(void)
{
	if (!ctl_running)
		return;
	/* The socket file is the parent's: close our copies (those still ours),
	 * leave it.  stop_lock may have been held by the parent's thread. */
	pthread_mutex_init(&stop_lock, NULL);
	close_fds();
	ctl_running = 0;
}
