/* SPDX-License-Identifier: MIT */
/* Where a traced process's control socket lives (shared by agent and CLI). */
#ifndef STITCH_TRACE_CTLPATH_H
#define STITCH_TRACE_CTLPATH_H

#include <stddef.h>
#include <sys/types.h>

/*
 * The socket directory: $XDG_RUNTIME_DIR/stitch-trace if XDG_RUNTIME_DIR is
 * set, else ${TMPDIR:-/tmp}/stitch-trace-<uid>.  With create, it is made
 * with mode 0700.  Either way it must be a real directory (not a symlink)
 * owned by us with no group or other permission, or -1 with errno set and
 * a reason in why.
 */
int stitch_trace_ctl_dir(char *buf, size_t size, int create, const char **why);
/* <dir>/<pid>.sock; -1 if it does not fit a sockaddr_un or the dir is unsafe. */
int stitch_trace_ctl_socket_path(char *buf, size_t size, pid_t pid, int create, const char **why);
/*
 * The socket `path` of process pid, if that process is gone: removed.
 * -1: the process exists; 0: it is gone, no socket removed; 1: removed.
 */
int stitch_trace_ctl_remove_stale(pid_t pid, const char *path);
/*
 * Remove the sockets in the socket directory (never created here) whose
 * process is gone: a traced program killed by a signal cannot remove its
 * own.  Returns how many were removed.
 */
int stitch_trace_ctl_sweep(void);

#endif
