/* SPDX-License-Identifier: MIT */
/* A dlopen()ed library that defines and calls its own static call. */
#include <stitch/static_call.h>

__attribute__((noinline)) static int lib_fn(int x) { return x * 100; }

STITCH_DEFINE_STATIC_CALL(dl_call, lib_fn);

__attribute__((visibility("default"))) int lib_call(int x);
int lib_call(int x)
{
	return stitch_static_call(dl_call)(x);
}

__attribute__((visibility("default"))) struct stitch_static_call *lib_desc(void);
struct stitch_static_call *lib_desc(void)
{
	return stitch_static_call_desc(dl_call);
}
