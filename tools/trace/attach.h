/* SPDX-License-Identifier: MIT */
#ifndef STITCH_TRACE_ATTACH_H
#define STITCH_TRACE_ATTACH_H

#include <sys/types.h>

/* Load the agent into pid (attach.c); env: NAME=VALUE configuration lines,
 * NULL-terminated.  0 once the agent runs there, -1 with a message. */
int stitch_trace_attach(pid_t pid, const char *agent, const char *const *env);

#endif
