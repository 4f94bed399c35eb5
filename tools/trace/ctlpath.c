/* SPDX-License-Identifier: MIT */
#include "ctlpath.h"

#include <dirent.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

int stitch_trace_ctl_dir(char *buf, size_t size, int create, const char **why)
{
	const char *xdg = getenv("XDG_RUNTIME_DIR");
	int n;
	if (xdg && *xdg == '/') {
		n = snprintf(buf, size, "%s/stitch-trace", xdg);
	} else {
		const char *tmp = getenv("TMPDIR");
		if (!tmp || *tmp != '/')
			tmp = "/tmp";
		n = snprintf(buf, size, "%s/stitch-trace-%u", tmp, (unsigned)getuid());
	}
	if (n < 0 || (size_t)n >= size) {
		*why = "socket directory path too long";
		errno = ENAMETOOLONG;
		return -1;
	}
	if (create && mkdir(buf, 0700) != 0 && errno != EEXIST) {
		*why = "cannot create the socket directory";
		return -1;
	}
	struct stat st;
	if (lstat(buf, &st) != 0) {
		*why = "no socket directory (is the program traced with control on?)";
		return -1;
	}
	/* Someone else's directory, or one others can write into, could hold a
	 * socket that is not our program's. */
	if (!S_ISDIR(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
		*why = "socket directory is not a private (0700) directory owned by this user";
		errno = EPERM;
		return -1;
	}
	return 0;
}

int stitch_trace_ctl_socket_path(char *buf, size_t size, pid_t pid, int create, const char **why)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	if (stitch_trace_ctl_dir(dir, sizeof dir, create, why) != 0)
		return -1;
	int n = snprintf(buf, size, "%s/%d.sock", dir, (int)pid);
	if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof dir) {
		*why = "socket path too long";
		errno = ENAMETOOLONG;
		return -1;
	}
	return 0;
}

int stitch_trace_ctl_remove_stale(pid_t pid, const char *path)
{
	/* ESRCH: no such process.  EPERM means it exists. */
	if (kill(pid, 0) == 0 || errno != ESRCH)
		return -1;
	return unlink(path) == 0;
}

int stitch_trace_ctl_sweep(void)
{
	char dir[sizeof(((struct sockaddr_un *)0)->sun_path)];
	const char *why;
	if (stitch_trace_ctl_dir(dir, sizeof dir, 0, &why) != 0)
		return 0;
	DIR *d = opendir(dir);
	if (!d)
		return 0;
	int removed = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		char *end;
		long pid = strtol(de->d_name, &end, 10);
		if (pid <= 0 || strcmp(end, ".sock") != 0)
			continue;
		char path[sizeof dir + sizeof de->d_name + 2];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		removed += stitch_trace_ctl_remove_stale((pid_t)pid, path) == 1;
	}
	closedir(d);
	return removed;
}
