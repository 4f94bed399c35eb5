/* SPDX-License-Identifier: MIT */
/* Static keys: values through every branch form, counting, sync counts. */
#include <stitch/static_key.h>
#include <string.h>

#include "common/check.h"
#include "common/repeat.h"

STITCH_DEFINE_STATIC_KEY_FALSE(key_false);
STITCH_DEFINE_STATIC_KEY_TRUE(key_true);
STITCH_DEFINE_STATIC_KEY_FALSE(key_one_site);
STITCH_DEFINE_STATIC_KEY_FALSE(key_many_sites);
STITCH_DEFINE_STATIC_KEY_FALSE(key_no_sites);

#define NOINLINE __attribute__((noinline))
static NOINLINE int f_unlikely(void) { return stitch_static_branch_unlikely(&key_false) ? 7 : 3; }
static NOINLINE int f_likely(void) { return stitch_static_branch_likely(&key_false) ? 7 : 3; }
static NOINLINE int t_unlikely(void) { return stitch_static_branch_unlikely(&key_true) ? 7 : 3; }
static NOINLINE int t_likely(void) { return stitch_static_branch_likely(&key_true) ? 7 : 3; }
static NOINLINE int one_site(void) { return stitch_static_branch_unlikely(&key_one_site) ? 1 : 0; }

#define MANY_SITE(x, i) static NOINLINE int many_##i(void) { return stitch_static_branch_unlikely(&x) ? 1 : 0; }
REPEAT_256(MANY_SITE, key_many_sites, 0)
#define MANY_PTR(x, i) many_##i,
static int (*const many[])(void) = { REPEAT_256(MANY_PTR, x, 0) };
#define NMANY (int)(sizeof(many) / sizeof(many[0]))

static int all_many(int want)
{
	for (int i = 0; i < NMANY; i++)
		if (many[i]() != want)
			return 0;
	return 1;
}

int main(void)
{
	int err = stitch_init();
	CHECK(err == 0, "stitch_init: %s", stitch_last_error());
	printf("write backend: %s\n", stitch_backend_name());

	/* Initial values, all four forms. */
	CHECK_EQ(f_unlikely(), 3);
	CHECK_EQ(f_likely(), 3);
	CHECK_EQ(t_unlikely(), 7);
	CHECK_EQ(t_likely(), 7);
	CHECK_EQ(stitch_static_key_site_count(&key_false.key), 2);
	CHECK_EQ(stitch_static_key_site_count(&key_true.key), 2);
	CHECK_EQ(stitch_static_key_site_count(&key_many_sites.key), NMANY);

	CHECK_EQ(stitch_static_key_enable(&key_false), 0);
	CHECK_EQ(f_unlikely(), 7);
	CHECK_EQ(f_likely(), 7);
	CHECK(stitch_static_key_enabled(&key_false), "enabled after enable");
	CHECK_EQ(stitch_static_key_disable(&key_true), 0);
	CHECK_EQ(t_unlikely(), 3);
	CHECK_EQ(t_likely(), 3);
	CHECK_EQ(stitch_static_key_disable(&key_false), 0);
	CHECK_EQ(f_unlikely(), 3);
	CHECK_EQ(f_likely(), 3);
	CHECK_EQ(stitch_static_key_enable(&key_true), 0);
	CHECK_EQ(t_unlikely(), 7);
	CHECK_EQ(t_likely(), 7);

	/* Enabling twice is enabling once; the count stays 1. */
	CHECK_EQ(stitch_static_key_enable(&key_false), 0);
	CHECK_EQ(stitch_static_key_enable(&key_false), 0);
	CHECK_EQ(stitch_static_key_count(&key_false.key), 1);
	CHECK_EQ(stitch_static_key_disable(&key_false), 0);

	/* Reference counting. */
	CHECK_EQ(stitch_static_key_inc(&key_false), 0);
	CHECK_EQ(stitch_static_key_inc(&key_false), 0);
	CHECK_EQ(f_unlikely(), 7);
	CHECK_EQ(stitch_static_key_dec(&key_false), 0);
	CHECK_EQ(f_unlikely(), 7);
	CHECK_EQ(stitch_static_key_dec(&key_false), 0);
	CHECK_EQ(f_unlikely(), 3);
	err = stitch_static_key_dec(&key_false);
	CHECK_EQ(err, -STITCH_EOVERFLOW);
	CHECK(strlen(stitch_last_error()) > 0, "an underflow explains itself");
	CHECK_EQ(stitch_static_key_count(&key_false.key), 0);
	CHECK_EQ(f_unlikely(), 3);

	/* A key without sites still counts. */
	CHECK_EQ(stitch_static_key_enable(&key_no_sites), 0);
	CHECK(stitch_static_key_enabled(&key_no_sites), "siteless key enabled");
	CHECK_EQ(stitch_static_key_enable_key(NULL), -STITCH_EINVAL);

	/* A copy of a key is not the key: refused, and the original's sites,
	 * which the copy's pointer names, are not rewritten behind its count. */
	struct stitch_static_key copy = key_false.key;
	CHECK_EQ(stitch_static_key_enable_key(&copy), -STITCH_EINVAL);
	CHECK(strstr(stitch_last_error(), "copy") != NULL, "message: %s", stitch_last_error());
	CHECK_EQ(stitch_static_key_count(&copy), 0);
	CHECK_EQ(stitch_static_key_count(&key_false.key), 0);
	CHECK_EQ(f_unlikely(), 3);
	CHECK_EQ(stitch_static_key_site_count(&copy), 0);

	/* Syncs per update do not grow with the number of sites. */
	struct stitch_stats s0, s1, s2;
	stitch_get_stats(&s0);
	CHECK_EQ(stitch_static_key_enable(&key_one_site), 0);
	CHECK_EQ(one_site(), 1);
	stitch_get_stats(&s1);
	CHECK_EQ(stitch_static_key_enable(&key_many_sites), 0);
	CHECK(all_many(1), "every one of %d sites jumps", NMANY);
	stitch_get_stats(&s2);
	printf("syncs per update: 1 site %llu, %d sites %llu\n", (unsigned long long)(s1.syncs - s0.syncs), NMANY,
	       (unsigned long long)(s2.syncs - s1.syncs));
	CHECK(s1.syncs - s0.syncs >= 1, "an update syncs");
	CHECK_EQ(s2.syncs - s1.syncs, s1.syncs - s0.syncs);
	CHECK_EQ(s2.sites_written - s1.sites_written, NMANY);
	CHECK_EQ(stitch_static_key_disable(&key_many_sites), 0);
	CHECK(all_many(0), "every one of %d sites falls through", NMANY);
	return check_summary("test_static_key");
}
