/* SPDX-License-Identifier: MIT */
/*
 * Test access to a key's registered sites: key->sites points at the
 * library's group of sites (src/core/jump_label.c, struct jl_group), whose
 * first two members are the site array and its length.
 */
#ifndef STITCH_TEST_KEY_SITES_H
#define STITCH_TEST_KEY_SITES_H
#include <stdbool.h>
#include <stddef.h>
#include <stitch/static_key.h>

#include "core/internal.h"

struct test_key_site {
	struct stitch_jump_site where;
	struct stitch_static_key *key;
	bool branch;
};

struct test_key_group {
	struct test_key_site *sites;
	size_t count;
};

static inline struct test_key_group test_key_group(const struct stitch_static_key *key)
{
	return *(const struct test_key_group *)key->sites;
}
#endif
