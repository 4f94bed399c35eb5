/* SPDX-License-Identifier: MIT */
/*
 * Sites of a library loaded with dlopen() are found by the next ftrace
 * call and forgotten after dlclose(), also while an ops traces them, and
 * while another thread loads and unloads it during the updates.
 *   dl_ftrace LIBRARY [ROUNDS]  (rounds of the dlclose race, 300 by default)
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
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

/*
 * Another thread loads and unloads the library in a loop while this one
 * registers and unregisters an ops on its functions: each update either
 * finds the library (and holds it loaded until it is done: ftrace.c,
 * "Pinning the loaded modules") or does not.  Before the pinning, an
 * update read or wrote the code of a copy being unmapped (SIGSEGV in ~half
 * of the runs) or wrote a jump into the next copy mapped at the same
 * address, which every later registration then refused ("found e9 ...").
 */
/*
 * Each round: the loader thread loads the library, the update starts,
 * and meanwhile the loader unloads it after a few yields (a different
 * number each round) and loads it again - most likely at the same
 * address - then waits for the update to end and unloads that copy.
 */
static atomic_int round_no, loader_state; /* 0 idle, 1 loaded, 2 reloaded */
static atomic_int loader_stop;
static void *load_unload(void *path)
{
	for (int done = 0; !atomic_load(&loader_stop);) {
		if (atomic_load(&round_no) == done) {
			sched_yield();
			continue;
		}
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		atomic_store(&loader_state, 1);
		for (int k = done % 16; k > 0; k--)
			sched_yield();
		if (h)
			dlclose(h);
		h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		atomic_store(&loader_state, 2);
		while (atomic_load(&loader_state) != 0 && !atomic_load(&loader_stop))
			sched_yield(); /* until the update ended */
		if (h)
			dlclose(h);
		done++;
		atomic_store(&loader_state, 3); /* the round is over */
	}
	return NULL;
}

static void dlclose_during_updates(const char *path, int rounds)
{
	struct stitch_ftrace_ops ops = { .func = cb };
	pthread_t loader;
	CHECK_EQ(pthread_create(&loader, NULL, load_unload, (void *)path), 0);
	int found = 0, other = 0;
	for (int i = 0; i < rounds && other < 5; i++) {
		atomic_store(&loader_state, 0);
		atomic_fetch_add(&round_no, 1);
		while (atomic_load(&loader_state) == 0)
			sched_yield(); /* loaded */
		int err = stitch_ftrace_register(&ops, "lib_fn_*");
		if (err == 0) {
			found++;
			err = stitch_ftrace_unregister(&ops);
		} else if (err == -STITCH_ENOTFOUND) {
			err = 0;
		}
		if (err) {
			other++;
			CHECK(0, "update %d while the library comes and goes: %d %s", i, err, stitch_last_error());
		}
		while (atomic_load(&loader_state) != 2)
			sched_yield(); /* reloaded */
		atomic_store(&loader_state, 0);
		while (atomic_load(&loader_state) != 3)
			sched_yield(); /* unloaded */
	}
	atomic_store(&loader_stop, 1);
	pthread_join(loader, NULL);
	printf("dlclose during updates: the library found by %d of %d registrations\n", found, rounds);
	/* a fresh copy holds the compiler's entries, and traces */
	void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
	CHECK(h != NULL, "dlopen: %s", dlerror());
	if (!h)
		return;
	int (*call_all)(void) = (int (*)(void))dlsym(h, "lib_call_all");
	CHECK(stitch_ftrace_register(&ops, "lib_fn_*") == 0, "register after the race: %s", stitch_last_error());
	calls = 0;
	CHECK_EQ(call_all(), 64 * 63 / 2);
	CHECK_EQ(calls, 64);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	dlclose(h);
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
	dlclose_during_updates(argv[1], argc > 2 ? atoi(argv[2]) : 300);
	return check_summary("dl_ftrace");
}
