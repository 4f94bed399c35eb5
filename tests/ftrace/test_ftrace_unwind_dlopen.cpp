// SPDX-License-Identifier: MIT
// stitch_ftrace_unwind_ready() tells whether exceptions through hooked
// frames are handled: 1 in test_ftrace_unwind (libstitch linked in), 0
// here, where a C++ program loads libstitch.so with dlopen() after its
// unwinder (as stitch-trace attach loads its agent): the program's throws
// reach libgcc_s, not libstitch's interposers.
//   test_ftrace_unwind_dlopen PATH/libstitch.so
#include <cstdio>
#include <dlfcn.h>
#include <stdexcept>

#include "common/check.h"

int main(int argc, char **argv)
{
	// this program throws: its unwinder is loaded before libstitch
	try {
		throw std::runtime_error("x");
	} catch (const std::exception &) {
	}
	CHECK(argc == 2, "usage: %s libstitch.so", argv[0]);
	if (argc != 2)
		return check_summary("test_ftrace_unwind_dlopen");
	void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
	CHECK(h != nullptr, "dlopen %s: %s", argv[1], dlerror());
	if (!h)
		return check_summary("test_ftrace_unwind_dlopen");
	auto ready = reinterpret_cast<int (*)()>(dlsym(h, "stitch_ftrace_unwind_ready"));
	CHECK(ready != nullptr, "stitch_ftrace_unwind_ready: %s", dlerror());
	if (ready)
		CHECK_EQ(ready(), 0);
	return check_summary("test_ftrace_unwind_dlopen");
}
