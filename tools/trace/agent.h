/* SPDX-License-Identifier: MIT */
/* Internal interface between the agent's parts (agent.c, agent_ctl.c). */
#ifndef STITCH_TRACE_AGENT_H
#define STITCH_TRACE_AGENT_H

#include <stddef.h>

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

/* The agent's diagnostics, to stderr with the pid, never through stdio. */
void agent_say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
