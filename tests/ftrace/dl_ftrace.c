/* SPDX-License-Identifier: MIT */
/*
 * Sites of a library loaded with dlopen() are found by the next ftrace
 * call and forgotten after dlclose(), also while an ops traces them.
 *   dl_ftrace LIBRARY
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include <stitch/ftrace.h>

#include "common/check.h"

static _Atomic int calls;
static void cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
	atomic_fetch_add(&calls, 1);
}

/* Sites of the library's own functions (sanitizer builds add their ctors). */
static int lib_sites(void)
{
	int n = stitch_ftrace_site_count(), k = 0;
	for (int i = 0; i < n; i++) {
		struct stitch_ftrace_site_info s;
		if (stitch_ftrace_site_info((size_t)i, &s) == 0 && strncmp(s.name, "lib_", 4) == 0)
			k++;
	}
	return k;
}

int main(int argc, char **argv)
{
	if (argc < 2) {
		fprintf(stderr, "usage: dl_ftrace LIBRARY\n");
		return 2;
	}
	struct stitch_ftrace_ops ops = { .func = cb };
	CHECK_EQ(lib_sites(), 0);
	CHECK_EQ(stitch_ftrace_register(&ops, "lib_*"), -STITCH_ENOTFOUND);

	for (int round = 0; round < 3; round++) {
		void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
		CHECK(h != NULL, "dlopen: %s", dlerror());
		if (!h)
			break;
		int (*call_all)(void) = (int (*)(void))dlsym(h, "lib_call_all");
		CHECK(call_all != NULL, "dlsym lib_call_all");
		CHECK_EQ(lib_sites(), 65);
		struct stitch_ftrace_site_info info;
		CHECK_EQ(stitch_ftrace_lookup("lib_fn_000", &info), 0);
		CHECK(strstr(info.module, "dl_ftrace_lib") != NULL, "module %s", info.module);
		CHECK(stitch_ftrace_register(&ops, "lib_fn_*") == 0, "register: %s", stitch_last_error());
		CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 64);
		calls = 0;
		CHECK_EQ(call_all(), 64 * 63 / 2);
		CHECK_EQ(calls, 64);
		if (round == 1) {
			/* unregister first: the library's code is back to its NOPs */
			CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
			dlclose(h);
			CHECK_EQ(lib_sites(), 0);
		} else {
			/* dlclose while traced: the next call forgets its sites */
			dlclose(h);
			CHECK_EQ(lib_sites(), 0);
			CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 0);
			CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
		}
	}
	/*
	 * Unloaded and loaded again with no ftrace call in between (likely at
	 * the same address): the fresh copy holds the compiler's bytes, not
	 * what was written into the old one.  The old sites must be forgotten,
	 * not switched as if they were still ours.
	 */
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL, "dlopen: %s", dlerror());
	if (h) {
		void *before = dlsym(h, "lib_call_all");
		CHECK(stitch_ftrace_register(&ops, "lib_fn_*") == 0, "register: %s", stitch_last_error());
		dlclose(h);
		h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
		CHECK(h != NULL, "dlopen again: %s", dlerror());
		printf("reloaded at %s address\n", h && dlsym(h, "lib_call_all") == before ? "the same" : "another");
	}
	if (h) {
		int (*call_all)(void) = (int (*)(void))dlsym(h, "lib_call_all");
		CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 64); /* no rescan yet: as it was */
		CHECK_EQ(lib_sites(), 65);                        /* rescan */
		CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 0);
		CHECK(stitch_ftrace_unregister(&ops) == 0, "unregister: %s", stitch_last_error());
		CHECK(stitch_ftrace_register(&ops, "lib_fn_*") == 0, "register: %s", stitch_last_error());
		calls = 0;
		CHECK_EQ(call_all(), 64 * 63 / 2);
		CHECK_EQ(calls, 64);
		CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
		calls = 0;
		CHECK_EQ(call_all(), 64 * 63 / 2);
		CHECK_EQ(calls, 0);
		dlclose(h);
	}
	return check_summary("dl_ftrace");
}
