// SPDX-License-Identifier: MIT
// The public headers from C++ (g++ and clang++, -Wall -Wextra -Wshadow
// -Werror): static keys and static calls defined, branched on, called and
// switched while two threads run through them.  Before, a C++ program could
// not include them: the key type check was C's __builtin_types_compatible_p
// and _Static_assert, the static call's trampoline was declared with C++
// linkage (a mangled name the trampoline's asm does not define), and
// stitch_ftrace_site_info() hid its struct's constructor; and a key used
// in an inline function or a template failed to link (test_cxx_inline.h).
// cxx_headers.cpp
// is the same compiled for the other architectures (CMakeLists.txt).
#include <atomic>
#include <cstdio>
#include <pthread.h>

#include <stitch/ftrace.h>
#include <stitch/static_call.h>
#include <stitch/static_key.h>
#include <stitch/stitch.h>

#include "common/check.h"
#include "test_cxx_inline.h"

STITCH_DEFINE_STATIC_KEY_FALSE(k_off);
STITCH_DEFINE_STATIC_KEY_FALSE(k_inline);
STITCH_DEFINE_STATIC_KEY_TRUE(k_on);

static __attribute__((noinline)) int f_a(int x) { return x + 1; }
static __attribute__((noinline)) int f_b(int x) { return x + 2; }
STITCH_DEFINE_STATIC_CALL(sc, f_a);
STITCH_DEFINE_STATIC_CALL_NULL(sc_null, void(int *));

static void bump(int *p) { ++*p; }

static __attribute__((noinline)) int branch_off() { return stitch_static_branch_unlikely(&k_off) ? 1 : 0; }
static __attribute__((noinline)) int branch_on() { return stitch_static_branch_likely(&k_on) ? 1 : 0; }

static std::atomic<bool> stop;
static std::atomic<long> bad, loops;

static void *reader(void *)
{
	while (!stop.load(std::memory_order_relaxed)) {
		int b = branch_off() + branch_on();
		int r = stitch_static_call(sc)(10);
		// each switch flips k_off, k_on and sc together, but a reader may
		// see any mix while they are switched one after the other
		if (b < 0 || b > 2 || (r != 11 && r != 12))
			bad.fetch_add(1);
		loops.fetch_add(1, std::memory_order_relaxed);
	}
	return nullptr;
}

int main()
{
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	CHECK_EQ(branch_off(), 0);
	CHECK_EQ(branch_on(), 1);
	CHECK_EQ(stitch_static_call(sc)(10), 11);
	CHECK(stitch_static_call_query(sc) == f_a, "query");
	int n = 0;
	stitch_static_call_cond(sc_null)(&n); // NULL: returns without calling
	CHECK_EQ(n, 0);

	pthread_t t[2];
	for (auto &th : t)
		CHECK_EQ(pthread_create(&th, nullptr, reader, nullptr), 0);
	int i = 0;
	for (; i < 500 || loops.load() < 10000; i++) {
		bool on = i % 2 == 0;
		CHECK_EQ(on ? stitch_static_key_enable(&k_off) : stitch_static_key_disable(&k_off), 0);
		CHECK_EQ(on ? stitch_static_key_disable(&k_on) : stitch_static_key_enable(&k_on), 0);
		CHECK_EQ(stitch_static_call_update(sc, on ? f_b : f_a), 0);
		CHECK_EQ(branch_off(), on ? 1 : 0);
		CHECK_EQ(branch_on(), on ? 0 : 1);
		CHECK_EQ(stitch_static_call(sc)(10), on ? 12 : 11);
	}
	stop.store(true);
	for (auto &th : t)
		pthread_join(th, nullptr);
	CHECK_EQ(bad.load(), 0);
	CHECK_EQ(stitch_static_call_update(sc_null, bump), 0);
	stitch_static_call_cond(sc_null)(&n);
	CHECK_EQ(n, 1);
	CHECK(stitch_static_key_enabled(&k_on) == (i % 2 == 0), "k_on after %d switches", i);
	/* the COMDAT sites: one copy of each function kept, and its site */
	CHECK_EQ(inline_site() + template_site<2>() + inline_sites_b(), 0);
	CHECK_EQ(stitch_static_key_enable(&k_inline), 0);
	CHECK_EQ(inline_site() + template_site<2>() + inline_sites_b(), 6);
	CHECK_EQ(stitch_static_key_disable(&k_inline), 0);
	CHECK_EQ(inline_site() + template_site<2>() + inline_sites_b(), 0);
	std::printf("%d switches, %ld reader loops\n", i, loops.load());
	return check_summary("test_cxx");
}
