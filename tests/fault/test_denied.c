/* SPDX-License-Identifier: MIT */
/*
 * A system call the library needs is refused (a seccomp filter installed
 * after stitch_init(), as a sandbox might): the update must fail with a
 * message and change nothing - the site's bytes, the key's count, the static
 * call's target, the tracer's registration - and the library must not abort.
 * Each case runs in a child of its own (a filter cannot be removed):
 *
 *   open        mprotect(+PROT_WRITE) refused              mprotect backend
 *   restore     mprotect back to PROT_READ|PROT_EXEC refused  (the new code
 *               would stay in place if this were found only after writing)
 *   pwrite      every pwrite64 refused                      /proc/self/mem backend
 *   pwrite4     4-byte pwrite64s refused: the int3 protocol's step 2 (x86-64)
 *   membarrier  the cross-thread sync refused: step 1's sync fails after the
 *               int3s are in (x86-64), the roll-back cannot sync either
 *
 * Native only (the filter would apply to qemu-user itself).
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stitch/static_call.h>
#include <stitch/static_key.h>
#include <stitch/stitch.h>
#ifdef STITCH_TEST_FTRACE
#include <stitch/ftrace.h>
#include "../ftrace/funcs.h"
#endif

#include "../common/check.h"

STITCH_DEFINE_STATIC_KEY_FALSE(key);
__attribute__((noinline)) static int branch(void)
{
	return stitch_static_branch_unlikely(&key) ? 1 : 0;
}

__attribute__((noinline)) static int f_one(int v) { return v + 1; }
__attribute__((noinline)) static int f_two(int v) { return v + 2; }
STITCH_DEFINE_STATIC_CALL(op, f_one);

/* Refuse system call nr with EPERM; when arg >= 0, only if that argument's
 * low 32 bits equal val.  For every thread of the process. */
static int deny(long nr, int arg, uint32_t val)
{
	struct sock_filter f[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, (uint32_t)nr, 0, 3),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 arg >= 0 ? offsetof(struct seccomp_data, args[0]) + 8 * (unsigned)arg
				  : offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, arg >= 0 ? val : (uint32_t)nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (EPERM & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(f) / sizeof(f[0]), f };
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) != 0)
		return -1;
	return (int)syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, SECCOMP_FILTER_FLAG_TSYNC, &prog);
}

struct denial {
	const char *name;
	const char *backend;
	long nr;
	int arg;
	uint32_t val;
};

static const struct denial denials[] = {
	{ "open", "mprotect", SYS_mprotect, 2, PROT_READ | PROT_WRITE | PROT_EXEC },
	{ "restore", "mprotect", SYS_mprotect, 2, PROT_READ | PROT_EXEC },
	{ "pwrite", "procmem", SYS_pwrite64, -1, 0 },
#if defined(__x86_64__)
	{ "pwrite4", "procmem", SYS_pwrite64, 2, 4 },
	{ "membarrier", NULL, SYS_membarrier, -1, 0 },
#endif
};

enum what { KEY, STATIC_CALL, FTRACE };

#ifdef STITCH_TEST_FTRACE
static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
}
#endif

/* In a child, exec'd with the case's backend (stitch_init() may have run in
 * the parent already, from a constructor): one update under one denial;
 * the exit status is the checks'. */
static int run_case(const struct denial *d, enum what what)
{
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	CHECK(!d->backend || strcmp(stitch_backend_name(), d->backend) == 0, "backend %s, not %s",
	      stitch_backend_name(), d->backend);
	const uint8_t *site = NULL;
	size_t len = 16;
	struct stitch_static_call *sc = stitch_static_call_desc(op);
	struct stitch_ftrace_site_info info = { 0 };
	switch (what) {
	case KEY:
		site = (const uint8_t *)(uintptr_t)&branch;
		len = 64; /* the function holds the site */
		break;
	case STATIC_CALL:
		site = (const uint8_t *)sc->tramp;
		break;
	case FTRACE:
#ifdef STITCH_TEST_FTRACE
		CHECK(stitch_ftrace_lookup("tf_a0001", &info) == 0, "lookup: %s", stitch_last_error());
		stitch_ftrace_prepare("tf_a0001"); /* gcc's five NOPs: their first switch apart */
		site = (const uint8_t *)info.site;
#endif
		break;
	}
	if (!site)
		return check_summary(d->name);
	uint8_t before[64];
	memcpy(before, site, len);
	CHECK(deny(d->nr, d->arg, d->val) == 0, "seccomp: %s", strerror(errno));

	int err = 0;
#ifdef STITCH_TEST_FTRACE
	struct stitch_ftrace_ops ops = { .func = on_entry };
#endif
	switch (what) {
	case KEY:
		err = stitch_static_key_enable(&key);
		CHECK_EQ(stitch_static_key_count(&key.key), 0);
		CHECK_EQ(branch(), 0);
		break;
	case STATIC_CALL:
		err = stitch_static_call_update(op, f_two);
		CHECK(stitch_static_call_query(op) == f_one, "target unchanged");
		CHECK_EQ(stitch_static_call(op)(1), 2);
		break;
	case FTRACE:
#ifdef STITCH_TEST_FTRACE
		err = stitch_ftrace_register(&ops, "tf_a0001");
		CHECK_EQ(stitch_ftrace_ops_site_count(&ops), -STITCH_EINVAL); /* not registered */
#endif
		break;
	}
	CHECK(err < 0, "%s: the update succeeded", d->name);
	CHECK(*stitch_last_error() != '\0', "%s: no message", d->name);
	CHECK(memcmp(before, site, len) == 0, "%s: the code changed", d->name);
	printf("%s, %s: %s\n", d->name, what == KEY ? "key" : what == STATIC_CALL ? "static call" : "ftrace",
	       stitch_last_error());
	return check_summary(d->name);
}

int main(int argc, char **argv)
{
	size_t ndenials = sizeof(denials) / sizeof(denials[0]);
	if (argc == 3) {
		size_t i = strtoul(argv[1], NULL, 10);
		return i < ndenials ? run_case(&denials[i], (enum what)atoi(argv[2])) : EXIT_FAILURE;
	}
	int failed = 0, ran = 0;
	for (size_t i = 0; i < ndenials; i++)
		for (int what = KEY; what <= FTRACE; what++) {
#ifndef STITCH_TEST_FTRACE
			if (what == FTRACE)
				continue;
#endif
			fflush(stdout);
			pid_t pid = fork();
			if (pid < 0) {
				perror("fork");
				return EXIT_FAILURE;
			}
			if (pid == 0) {
				char ci[16], cw[16];
				snprintf(ci, sizeof(ci), "%zu", i);
				snprintf(cw, sizeof(cw), "%d", what);
				if (denials[i].backend)
					setenv("STITCH_WRITE_BACKEND", denials[i].backend, 1);
				execl("/proc/self/exe", argv[0], ci, cw, (char *)NULL);
				perror("exec");
				_exit(EXIT_FAILURE);
			}
			int status = 0;
			waitpid(pid, &status, 0);
			ran++;
			if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
				failed++;
				fprintf(stderr, "case %s/%d: %s %d\n", denials[i].name, what,
					WIFSIGNALED(status) ? "killed by signal" : "exit status",
					WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
			}
		}
	printf("test_denied: %d cases, %d failed\n", ran, failed);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
