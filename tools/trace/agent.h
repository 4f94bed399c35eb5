/* SPDX-License-Identifier: MIT */
/* Internal interface between the agent's parts (agent.c, agent_ctl.c). */
#ifndef STITCH_TRACE_AGENT_H
#define STITCH_TRACE_AGENT_H

#include <stddef.h>
#include <sys/types.h>

#include "ctl.h"

/* Carry out one control request; writes a one-line answer into reply.
 * Returns 0 if it was carried out, -1 if refused (nothing changed). */
int agent_control(const struct ctl_request *req, char *reply, size_t reply_size);

/* The control channel (agent_ctl.c): a listening socket and its thread. */
int agent_ctl_start(void);
void agent_ctl_stop(void);
/* In a fork child: the parent's socket and thread are not ours. */
void agent_ctl_forget(void);

/* An attached agent is not interposed on the program's dlopen: its
 * control thread calls agent_poll_modules() every AGENT_MODULE_POLL_MS,
 * which traces the sites of modules loaded since by the rules. */
#define AGENT_MODULE_POLL_MS 50
int agent_polls_modules(void);
void agent_poll_modules(void);

/* For the agent's own threads: block every signal but the library's
 * quiesce signal (a thread that blocks it cannot be parked, and every
 * filter change would time out). */
void agent_block_signals(void);

/* Every agent thread calls agent_thread_enter() first thing and
 * agent_thread_leave() last: the writer tells the program's threads from
 * ours by the count (agent.c, program_threads_gone). */
void agent_thread_enter(void);
void agent_thread_leave(void);

/*
 * The agent's own descriptors.  A program may close every descriptor above
 * 2 (close_range, a daemon's loop over fds) or dup2 over them and then open
 * its own files, which get our numbers: writing through a number we only
 * remember would write into the program's file.  So each descriptor is
 * kept with its identity (st_dev, st_ino: unique for pipes and sockets
 * too) and checked before use; one that changed is the program's now and
 * is neither written nor closed.  A check then a write is not atomic (the
 * program may close the fd in between), but it is done at every use, so
 * a clobbered number is used at most for the write already under way.
 */
struct agent_fd {
	int fd;
	dev_t dev;
	ino_t ino;
};
#define AGENT_FD_NONE { .fd = -1 }
/* Move fd above the numbers programs use (F_DUPFD_CLOEXEC, floor
 * AGENT_FD_FLOOR; the original number if that fails) and remember it.
 * Returns the descriptor kept, or -1 if fd < 0. */
#define AGENT_FD_FLOOR 512
int agent_fd_keep(struct agent_fd *a, int fd);
/* Is a->fd still the descriptor agent_fd_keep() remembered? */
int agent_fd_ours(const struct agent_fd *a);
/* Close it if it is still ours; forget it either way. */
void agent_fd_close(struct agent_fd *a);

/* The agent's diagnostics, to stderr with the pid, never through stdio. */
void agent_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
