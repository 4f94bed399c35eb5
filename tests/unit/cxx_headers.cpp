// SPDX-License-Identifier: MIT
// Compiled, not run, for each architecture by a C++ compiler in target
// mode (tests/unit/CMakeLists.txt, test_cxx_headers): the public headers'
// per-architecture parts in C++.  test_cxx.cpp runs the same natively.
#include <stitch/ftrace.h>
#include <stitch/static_call.h>
#include <stitch/static_key.h>
#include <stitch/stitch.h>

STITCH_DEFINE_STATIC_KEY_FALSE(k_off);
STITCH_DEFINE_STATIC_KEY_TRUE(k_on);
static int f_a(int x) { return x + 1; }
STITCH_DEFINE_STATIC_CALL(sc, f_a);
STITCH_DEFINE_STATIC_CALL_NULL(sc_null, int(int));

int use(void);
int use(void)
{
	int r = 0;
	if (stitch_static_branch_unlikely(&k_off))
		r += 100;
	if (stitch_static_branch_likely(&k_on))
		r += 1;
	r += stitch_static_call(sc)(1);
	r += stitch_static_call_query(sc_null) == nullptr;
	struct stitch_ftrace_site_info info;
	r += stitch_ftrace_get_site_info(0, &info);
	return r + stitch_static_key_enable(&k_off) + stitch_static_call_update(sc, f_a);
}
