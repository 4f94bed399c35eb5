/* SPDX-License-Identifier: MIT */
/*
 * Static calls in a dlopen()ed library: registered at dlopen (the
 * library's own constructor), retargeted from the program to a function of
 * the program (in a PIE process usually terabytes away: the far path), to
 * NULL and back; forgotten at dlclose; the round repeats with a fresh
 * load.  The program's own static call keeps working throughout.
 */
#include <dlfcn.h>
#include <stdio.h>

#include "common/check.h"
#include <stitch/static_call.h>

__attribute__((noinline)) static int main_fn(int x) { return x + 7; }
__attribute__((noinline)) static int main_fn2(int x) { return x + 8; }
STITCH_DEFINE_STATIC_CALL(main_call, main_fn);

int main(int argc, char **argv)
{
	const char *path = argc > 1 ? argv[1] : "./libdl_static_call_lib.so";
	if (stitch_init() != 0)
		return fprintf(stderr, "stitch_init: %s\n", stitch_last_error()), 1;
	for (int round = 0; round < 3; round++) {
		void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
		if (!h)
			return fprintf(stderr, "dlopen: %s\n", dlerror()), 1;
		int (*lib_call)(int) = (int (*)(int))dlsym(h, "lib_call");
		struct stitch_static_call *(*lib_desc)(void) = (struct stitch_static_call * (*)(void)) dlsym(h, "lib_desc");
		CHECK(lib_call && lib_desc, "symbols");
		if (!lib_call || !lib_desc)
			return 1;
		struct stitch_static_call *d = lib_desc();
		uintptr_t t = (uintptr_t)d->tramp, f = (uintptr_t)main_fn;
		unsigned long long dist = t > f ? t - f : f - t;
		if (round == 0)
			printf("library trampoline %p, program target %p: %.1f GiB apart\n", d->tramp, (void *)main_fn,
			       (double)dist / (1 << 30));
		CHECK_EQ(lib_call(2), 200);
		CHECK_EQ(stitch_static_call_update_desc(d, (void *)main_fn), 0);
		CHECK_EQ(lib_call(2), 9);
		CHECK_EQ(stitch_static_call_update(main_call, main_fn2), 0);
		CHECK_EQ(stitch_static_call(main_call)(2), 10);
		CHECK_EQ(stitch_static_call_update_desc(d, (void *)main_fn2), 0);
		CHECK_EQ(lib_call(2), 10);
		CHECK(stitch_static_call_query_desc(d) == (void *)main_fn2, "query");
		CHECK_EQ(stitch_static_call_update_desc(d, (void *)lib_call), 0); /* back into the library */
		CHECK_EQ(stitch_static_call_update_desc(d, NULL), 0);
		lib_call(2); /* returns without calling anything */
		CHECK_EQ(stitch_static_call_update(main_call, main_fn), 0);
		CHECK_EQ(stitch_static_call(main_call)(2), 9);
		CHECK_EQ(dlclose(h), 0);
	}
	CHECK_EQ(stitch_static_call_update(main_call, main_fn2), 0);
	CHECK_EQ(stitch_static_call(main_call)(2), 10);
	return check_summary("dl_static_call");
}
