// SPDX-License-Identifier: MIT
// attach_prog.c with a C++ runtime: it throws and catches once before main,
// so the unwinder (libgcc_s, through libstdc++) is bound before the
// attached agent is loaded, and then, every round, throws from thwack()
// through to trick()'s catch - both traced by the test's "t*ck" filter, so
// under --graph the throw goes through hooked frames: the agent must
// redirect the program's unwinder calls (src/core/imports.c) or the
// first such throw ends the program.
#include <stdexcept>

[[maybe_unused]] static int cxx_runtime = [] {
	try {
		throw std::runtime_error("loaded");
	} catch (const std::exception &) {
		return 1;
	}
}();

extern "C" {
int trick(int x);
#define EXTRA_ROUND(i) (trick(i) == ((i) % 2 ? (i) : -1))
#include "attach_prog.c"
}

#ifdef __clang__
#define TRACED extern "C" __attribute__((noinline))
#else
#define TRACED extern "C" __attribute__((noipa))
#endif

TRACED int thwack(int x)
{
	if (x % 2 == 0)
		throw std::runtime_error("even");
	return x;
}

TRACED int trick(int x)
{
	try {
		return thwack(x);
	} catch (const std::exception &) {
		return -1;
	}
}
