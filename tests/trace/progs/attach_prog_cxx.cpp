// SPDX-License-Identifier: MIT
// attach_prog.c with a C++ runtime: it throws and catches once before main,
// so the unwinder (libgcc_s, through libstdc++) is loaded before the
// attached agent, which must then warn that --graph cannot follow throws.
#include <stdexcept>

[[maybe_unused]] static int cxx_runtime = [] {
	try {
		throw std::runtime_error("loaded");
	} catch (const std::exception &) {
		return 1;
	}
}();

extern "C" {
#include "attach_prog.c"
}
