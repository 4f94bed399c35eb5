/* SPDX-License-Identifier: MIT */
/*
 * stitch-trace attach: load libstitch-agent.so into a running process that
 * was not started under the tool, by making one of its threads call
 * dlopen() under ptrace (x86-64).
 *
 *   1. write the agent's configuration to <ctl dir>/attach-<pid>.conf
 *      (0600 in the private directory; the agent reads and removes it);
 *   2. PTRACE_ATTACH the main thread (only it stops; the others run on);
 *   3. save its registers and the stack bytes about to be used;
 *   4. put the agent's path below its stack pointer (past the red zone),
 *      point rip at the target's dlopen with rdi = path, rsi = RTLD_NOW,
 *      and a return address of 0, so dlopen's return faults;
 *   5. continue it, passing on every other signal, until that fault;
 *   6. restore the bytes and registers, detach: the thread resumes where
 *      it was (a system call it was blocked in is restarted as usual,
 *      since orig_rax is restored with the other registers).
 * dlopen runs the agent's constructor, which registers the tracer (the
 * library switches the sites with its own protocol) and opens the control
 * socket; `stitch-trace live PID detach` later restores the code.
 *
 * The target's dlopen is found as the CLI's own dlopen's offset in libc
 * applied to the target's mapping of the same libc file.
 */
#include "attach.h"

#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "ctlpath.h"

#if defined(__x86_64__)
#include <sys/ptrace.h>
#include <sys/user.h>
#include <sys/wait.h>

/* Where libc (the file defining dlopen) is mapped in pid; 0 if not found. */
static uintptr_t module_base(pid_t pid, const char *path)
{
	char maps[64], line[PATH_MAX + 128];
	snprintf(maps, sizeof maps, "/proc/%d/maps", (int)pid);
	FILE *f = fopen(maps, "r");
	if (!f)
		return 0;
	uintptr_t base = 0;
	struct stat want, got;
	if (stat(path, &want) != 0) {
		fclose(f);
		return 0;
	}
	while (fgets(line, sizeof line, f)) {
		unsigned long lo, off;
		char *p = strchr(line, '/');
		if (!p || sscanf(line, "%lx-%*x %*s %lx", &lo, &off) != 2 || off != 0)
			continue;
		p[strcspn(p, "\n")] = '\0';
		/* the same file (a path may be spelt differently: compare inodes) */
		if (stat(p, &got) == 0 && got.st_dev == want.st_dev && got.st_ino == want.st_ino) {
			base = lo;
			break;
		}
	}
	fclose(f);
	return base;
}

static int mem_rw(pid_t pid, uintptr_t addr, void *buf, size_t n, int write)
{
	char path[64];
	snprintf(path, sizeof path, "/proc/%d/mem", (int)pid);
	int fd = open(path, write ? O_WRONLY : O_RDONLY);
	if (fd < 0)
		return -1;
	ssize_t k = write ? pwrite(fd, buf, n, (off_t)addr) : pread(fd, buf, n, (off_t)addr);
	close(fd);
	return k == (ssize_t)n ? 0 : -1;
}

static int write_conf(pid_t pid, const char *const *env)
{
	char dir[200], path[256], tmp[270];
	const char *why;
	if (stitch_trace_ctl_dir(dir, sizeof dir, 1, &why) != 0) {
		fprintf(stderr, "stitch-trace attach: %s\n", why);
		return -1;
	}
	snprintf(path, sizeof path, "%s/attach-%d.conf", dir, (int)pid);
	snprintf(tmp, sizeof tmp, "%s.tmp", path);
	unlink(tmp);
	int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0) {
		fprintf(stderr, "stitch-trace attach: %s: %s\n", tmp, strerror(errno));
		return -1;
	}
	FILE *f = fdopen(fd, "w");
	for (size_t i = 0; env[i]; i++)
		fprintf(f, "%s\n", env[i]);
	if (fclose(f) != 0 || rename(tmp, path) != 0) {
		fprintf(stderr, "stitch-trace attach: %s: %s\n", path, strerror(errno));
		unlink(tmp);
		return -1;
	}
	return 0;
}

static void remove_conf(pid_t pid)
{
	char dir[200], path[256];
	const char *why;
	if (stitch_trace_ctl_dir(dir, sizeof dir, 0, &why) == 0) {
		snprintf(path, sizeof path, "%s/attach-%d.conf", dir, (int)pid);
		unlink(path);
	}
}

/* Run dlopen(agent) on pid's stopped main thread; 0 and the handle in *handle. */
static int inject(pid_t pid, const char *agent, uintptr_t target_dlopen, uintptr_t *handle)
{
	struct user_regs_struct saved, regs;
	if (ptrace(PTRACE_GETREGS, pid, NULL, &saved) != 0) {
		fprintf(stderr, "stitch-trace attach: PTRACE_GETREGS: %s\n", strerror(errno));
		return -1;
	}
	/* Below the red zone (128 bytes) with a generous margin. */
	uintptr_t area = ((uintptr_t)saved.rsp - 4096) & ~(uintptr_t)15;
	size_t len = strlen(agent) + 1, span = 64 + ((len + 15) & ~(size_t)15);
	uint8_t *old = malloc(span), *fresh = calloc(1, span);
	if (!old || !fresh || mem_rw(pid, area - span, old, span, 0) != 0) {
		fprintf(stderr, "stitch-trace attach: cannot read the target's stack: %s\n", strerror(errno));
		free(old), free(fresh);
		return -1;
	}
	/* [area - span, area): zeros (the return address at +8), the path at +64 */
	uintptr_t sp = area - span;          /* 16-aligned */
	memcpy(fresh + 64, agent, len);      /* return address word stays 0 */
	if (mem_rw(pid, area - span, fresh, span, 1) != 0) {
		fprintf(stderr, "stitch-trace attach: cannot write the target's stack: %s\n", strerror(errno));
		free(old), free(fresh);
		return -1;
	}
	regs = saved;
	regs.rip = target_dlopen;
	regs.rdi = sp + 64;
	regs.rsi = RTLD_NOW;
	regs.rsp = sp + 8;                   /* [rsp] = 0: the return address; rsp+8 16-aligned, as after a call */
	regs.rax = 0;
	regs.orig_rax = (unsigned long)-1;   /* not in a system call: no restart */
	int ret = -1;
	if (ptrace(PTRACE_SETREGS, pid, NULL, &regs) != 0) {
		fprintf(stderr, "stitch-trace attach: PTRACE_SETREGS: %s\n", strerror(errno));
		goto restore;
	}
	int sig = 0;
	for (;;) {
		if (ptrace(PTRACE_CONT, pid, NULL, (void *)(uintptr_t)sig) != 0) {
			fprintf(stderr, "stitch-trace attach: PTRACE_CONT: %s\n", strerror(errno));
			goto restore;
		}
		int status;
		if (waitpid(pid, &status, __WALL) != pid) {
			fprintf(stderr, "stitch-trace attach: waitpid: %s\n", strerror(errno));
			goto restore;
		}
		if (WIFEXITED(status) || WIFSIGNALED(status)) {
			fprintf(stderr, "stitch-trace attach: the process ended during the injection\n");
			free(old), free(fresh);
			return -1;
		}
		sig = WSTOPSIG(status);
		if (sig == SIGSEGV) {
			struct user_regs_struct now;
			if (ptrace(PTRACE_GETREGS, pid, NULL, &now) == 0 && now.rip == 0) {
				*handle = now.rax;
				ret = 0;
				break;
			}
		}
		/* any other signal belongs to the program (the library's quiesce
		 * signal among them): deliver it */
	}
restore:
	if (mem_rw(pid, area - span, old, span, 1) != 0 || ptrace(PTRACE_SETREGS, pid, NULL, &saved) != 0) {
		fprintf(stderr, "stitch-trace attach: could not restore the thread's state: %s\n", strerror(errno));
		ret = -1;
	}
	free(old), free(fresh);
	return ret;
}

int stitch_trace_attach(pid_t pid, const char *agent, const char *const *env)
{
	Dl_info self;
	if (!dladdr((void *)dlopen, &self) || !self.dli_fname || !self.dli_fbase) {
		fprintf(stderr, "stitch-trace attach: cannot locate dlopen in this process\n");
		return -1;
	}
	uintptr_t offset = (uintptr_t)dlopen - (uintptr_t)self.dli_fbase;
	char libc[PATH_MAX];
	if (!realpath(self.dli_fname, libc))
		snprintf(libc, sizeof libc, "%s", self.dli_fname);
	uintptr_t base = module_base(pid, libc);
	if (!base) {
		fprintf(stderr, "stitch-trace attach: %d does not map %s (a static program, or another libc?)\n",
			(int)pid, libc);
		return -1;
	}
	if (write_conf(pid, env) != 0)
		return -1;
	if (ptrace(PTRACE_ATTACH, pid, NULL, NULL) != 0) {
		fprintf(stderr, "stitch-trace attach: ptrace(%d): %s%s\n", (int)pid, strerror(errno),
			errno == EPERM ? " (needs the same user and ptrace permission: "
					 "kernel.yama.ptrace_scope=0 or CAP_SYS_PTRACE)" : "");
		remove_conf(pid);
		return -1;
	}
	int status;
	if (waitpid(pid, &status, __WALL) != pid || !WIFSTOPPED(status)) {
		fprintf(stderr, "stitch-trace attach: %d did not stop\n", (int)pid);
		remove_conf(pid);
		return -1;
	}
	uintptr_t handle = 0;
	int err = inject(pid, agent, base + offset, &handle);
	ptrace(PTRACE_DETACH, pid, NULL, NULL);
	remove_conf(pid); /* normally already read and removed by the agent */
	if (err)
		return -1;
	if (!handle) {
		fprintf(stderr, "stitch-trace attach: dlopen(%s) failed in %d (see its stderr)\n", agent, (int)pid);
		return -1;
	}
	return 0;
}

#else

int stitch_trace_attach(pid_t pid, const char *agent, const char *const *env)
{
	(void)pid, (void)agent, (void)env;
	fprintf(stderr, "stitch-trace attach: only implemented on x86-64 (docs/stitch-trace.md, \"Attach\")\n");
	return -1;
}

#endif
