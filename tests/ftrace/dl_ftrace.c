/* SPDX-License-Identifier: MIT */
/*
 * Sites of a library loaded with dlopen() are found by the next ftrace
 * call and forgotten after dlclose(), also while an ops traces them.
 *   dl_ftrace LIBRARY
 */
#include <dlfcn.h>
#include <setjmp.h>
#include <stdatomic.h>
#include <stdlib.h>
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

static _Atomic int returns;
static void ret_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_ret_regs *rr)
{
	(void)ip, (void)parent, (void)ops, (void)rr;
	atomic_fetch_add(&returns, 1);
}

static int twice(int v)
{
	return 2 * v;
}

static jmp_buf back;
static int jump_back(int v)
{
	(void)v;
	longjmp(back, 1);
}

/* Sites of the library's own functions (sanitizer builds add their ctors). */
static int lib_sites(void)
{
	int n = stitch_ftrace_site_count(), k = 0;
	for (int i = 0; i < n; i++) {
		struct stitch_ftrace_site_info s;
		if (stitch_ftrace_get_site_info((size_t)i, &s) == 0 && strncmp(s.name, "lib_", 4) == 0)
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
		CHECK_EQ(lib_sites(), 66);
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
		CHECK_EQ(lib_sites(), 66);                        /* rescan */
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
	/*
	 * function_graph: a hooked call of the library left by longjmp() leaves
	 * an abandoned shadow entry naming its record; the library is unloaded
	 * and forgotten, memory is reused, and the next hooked call (in a new
	 * copy of the library) drops that entry.  Its record must still be
	 * there to say that no ops is left (it was freed: a use after free,
	 * seen by ASan, a crash once the memory was reused).
	 */
	struct stitch_ftrace_ops gops = { .func = cb, .ret_func = ret_cb };
	static char *reuse[2000];
	h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL, "dlopen: %s", dlerror());
	if (h) {
		int (*call_back)(int (*)(int), int) = (int (*)(int (*)(int), int))dlsym(h, "lib_call_back");
		CHECK(stitch_ftrace_register(&gops, "lib_call_back") == 0, "register: %s", stitch_last_error());
		if (!setjmp(back))
			call_back(jump_back, 1);
		dlclose(h);
		CHECK_EQ(lib_sites(), 0); /* forgets the module */
		for (int i = 0; i < 2000; i++) { /* kept until the end: the memory stays reused */
			size_t n = 64 * (1 + i % 16);
			reuse[i] = malloc(n);
			if (reuse[i])
				memset(reuse[i], 0x41, n);
		}
		h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
		CHECK(h != NULL, "dlopen again: %s", dlerror());
	}
	if (h) {
		int (*call_back)(int (*)(int), int) = (int (*)(int (*)(int), int))dlsym(h, "lib_call_back");
		CHECK(stitch_ftrace_set_filter(&gops, "lib_call_back") == 0, "set_filter: %s", stitch_last_error());
		calls = 0;
		returns = 0;
		/* from the same frame as the call left by longjmp: its entry is
		 * dropped here (the abandoned entry's ops went with its module: not
		 * reported) */
		CHECK_EQ(call_back(twice, 4), 9);
		CHECK_EQ(calls, 1);
		CHECK_EQ(returns, 1);
		CHECK_EQ(stitch_ftrace_unregister(&gops), 0);
		dlclose(h);
	}
	for (int i = 0; i < 2000; i++)
		free(reuse[i]);
	return check_summary("dl_ftrace");
}
