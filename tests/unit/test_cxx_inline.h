// SPDX-License-Identifier: MIT
// A key used in an inline function and in a template, instantiated in two
// translation units (test_cxx.cpp, test_cxx_b.cpp): each is a COMDAT group
// the linker keeps once, and its jump-table entry must go with it (it was
// left in a plain section pointing into the discarded copy: a link error).
#ifndef TEST_CXX_INLINE_H
#define TEST_CXX_INLINE_H
#include <stitch/static_key.h>

STITCH_DECLARE_STATIC_KEY_FALSE(k_inline);

__attribute__((noinline)) inline int inline_site() { return stitch_static_branch_unlikely(&k_inline) ? 1 : 0; }
template <int N> __attribute__((noinline)) int template_site()
{
	return stitch_static_branch_unlikely(&k_inline) ? N : 0;
}
int inline_sites_b(); // test_cxx_b.cpp: the same, from the other unit

#endif
