// SPDX-License-Identifier: MIT
// A C++ program linked with its C++ runtime and unwinder (-static-libstdc++
// -static-libgcc, exported with -rdynamic) that loads libstitch.so with
// dlopen(): its throws call _Unwind_RaiseException directly, through no
// GOT slot, so libstitch cannot redirect them (src/core/imports.c).
// stitch_ftrace_unwind_ready() must say 0 and why, rather than claim a
// function_graph that would end the program at its first throw.
//   test_ftrace_unwind_static PATH/libstitch.so
#include <cstdio>
#include <cstring>
#include <dlfcn.h>
#include <stdexcept>

#include "common/check.h"

int main(int argc, char **argv)
{
	try {
		throw std::runtime_error("x");
	} catch (const std::exception &) {
	}
	CHECK(argc == 2, "usage: %s libstitch.so", argv[0]);
	if (argc != 2)
		return check_summary("test_ftrace_unwind_static");
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(h != nullptr, "dlopen %s: %s", argv[1], dlerror());
	if (!h)
		return check_summary("test_ftrace_unwind_static");
	auto ready = reinterpret_cast<int (*)()>(dlsym(h, "stitch_ftrace_unwind_ready"));
	auto last_error = reinterpret_cast<const char *(*)()>(dlsym(h, "stitch_last_error"));
	CHECK(ready && last_error, "dlsym: %s", dlerror());
	if (ready && last_error) {
		CHECK_EQ(ready(), 0);
		CHECK(strstr(last_error(), "through no GOT slot") != nullptr, "the reason: %s", last_error());
		CHECK_EQ(ready(), 0); /* asked again: the same answer */
		CHECK(strstr(last_error(), "through no GOT slot") != nullptr, "the reason again: %s", last_error());
	}
	return check_summary("test_ftrace_unwind_static");
}
