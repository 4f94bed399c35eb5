/* SPDX-License-Identifier: MIT */
/*
 * Stress: reader threads run through 1024 static-key sites (8 keys, both
 * initial values, both branch layouts) in tight loops while a toggler
 * thread flips the keys (enable/disable and inc/dec) thousands of times.
 * Each reader checks every result against the key's history
 * (key_history.h): a stable key must read its value, and no site may ever
 * produce anything but one of its two paths.
 *
 *   stress_keys [toggles] [readers]      (defaults: 10000, 4)
 */
#include <pthread.h>
#include <stitch/static_key.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "common/repeat.h"
#include "key_history.h"

#define NOINLINE __attribute__((noinline))
#define SITE_U(k, i) static NOINLINE unsigned k##_u##i(void) { return stitch_static_branch_unlikely(&k) ? SITE_ON : SITE_OFF; }
#define SITE_L(k, i) static NOINLINE unsigned k##_l##i(void) { return stitch_static_branch_likely(&k) ? SITE_ON : SITE_OFF; }
#define PTR_U(k, i) k##_u##i,
#define PTR_L(k, i) k##_l##i,
#define KEY_SITES(k)                                                                        \
	REPEAT_64(SITE_U, k, 0)                                                             \
	REPEAT_64(SITE_L, k, 0)                                                             \
	static unsigned (*const k##_sites[])(void) = { REPEAT_64(PTR_U, k, 0) REPEAT_64(PTR_L, k, 0) };

STITCH_DEFINE_STATIC_KEY_FALSE(kf0);
STITCH_DEFINE_STATIC_KEY_FALSE(kf1);
STITCH_DEFINE_STATIC_KEY_FALSE(kf2);
STITCH_DEFINE_STATIC_KEY_FALSE(kf3);
STITCH_DEFINE_STATIC_KEY_TRUE(kt0);
STITCH_DEFINE_STATIC_KEY_TRUE(kt1);
STITCH_DEFINE_STATIC_KEY_TRUE(kt2);
STITCH_DEFINE_STATIC_KEY_TRUE(kt3);
KEY_SITES(kf0) KEY_SITES(kf1) KEY_SITES(kf2) KEY_SITES(kf3)
KEY_SITES(kt0) KEY_SITES(kt1) KEY_SITES(kt2) KEY_SITES(kt3)

#define NKEYS 8
#define SITES_PER_KEY 128
static struct stitch_static_key *const keys[NKEYS] = { &kf0.key, &kf1.key, &kf2.key, &kf3.key,
							&kt0.key, &kt1.key, &kt2.key, &kt3.key };
static unsigned (*const *const key_sites[NKEYS])(void) = { kf0_sites, kf1_sites, kf2_sites, kf3_sites,
							    kt0_sites, kt1_sites, kt2_sites, kt3_sites };
static struct key_history history[NKEYS] = { { 0, false }, { 0, false }, { 0, false }, { 0, false },
					     { 0, true },  { 0, true },  { 0, true },  { 0, true } };

static atomic_int stop;

static void *reader(void *arg)
{
	struct reader_tally *t = arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed))
		for (int k = 0; k < NKEYS; k++)
			history_check(&history[k], key_sites[k], SITES_PER_KEY, t);
	return NULL;
}

int main(int argc, char **argv)
{
	long toggles = argc > 1 ? atol(argv[1]) : 10000;
	int nreaders = argc > 2 ? atoi(argv[2]) : 4;
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	for (int k = 0; k < NKEYS; k++)
		CHECK_EQ(stitch_static_key_site_count(keys[k]), SITES_PER_KEY);

	struct reader_tally *tally = calloc((size_t)nreaders, sizeof(*tally));
	pthread_t *th = calloc((size_t)nreaders, sizeof(*th));
	for (int i = 0; i < nreaders; i++)
		pthread_create(&th[i], NULL, reader, &tally[i]);

	struct stitch_stats s0, s1;
	stitch_get_stats(&s0);
	unsigned rng = 12345;
	int failures = 0;
	for (long t = 0; t < toggles; t++) {
		rng = rng * 1103515245u + 12345u;
		int k = (int)((rng >> 16) % NKEYS);
		bool on = stitch_static_key_count(keys[k]) > 0;
		history_begin(&history[k]);
		int err;
		if (t % 2) /* half the flips through the reference count */
			err = on ? stitch_static_key_dec_key(keys[k]) : stitch_static_key_inc_key(keys[k]);
		else
			err = on ? stitch_static_key_disable_key(keys[k]) : stitch_static_key_enable_key(keys[k]);
		history_end(&history[k]);
		if (err && failures++ < 5)
			CHECK(err == 0, "toggle %ld of key %d: %s", t, k, stitch_last_error());
	}
	stitch_get_stats(&s1);
	atomic_store(&stop, 1);
	struct reader_tally sum = { 0 };
	for (int i = 0; i < nreaders; i++) {
		pthread_join(th[i], NULL);
		sum.calls += tally[i].calls;
		sum.stable_checks += tally[i].stable_checks;
		sum.transition_reads += tally[i].transition_reads;
		sum.wrong_value += tally[i].wrong_value;
		sum.garbage += tally[i].garbage;
	}
	printf("stress_keys: backend %s, %ld toggles of %d keys x %d sites, %d readers\n", stitch_backend_name(),
	       toggles, NKEYS, SITES_PER_KEY, nreaders);
	printf("  reader calls %lu, stable checks %lu, reads across an update %lu\n", sum.calls, sum.stable_checks,
	       sum.transition_reads);
	printf("  syncs %llu (%.2f per toggle), sites written %llu, int3 traps taken %llu\n",
	       (unsigned long long)(s1.syncs - s0.syncs), (double)(s1.syncs - s0.syncs) / (double)(toggles ? toggles : 1),
	       (unsigned long long)(s1.sites_written - s0.sites_written),
	       (unsigned long long)(s1.trap_hits - s0.trap_hits));
	CHECK_EQ(failures, 0);
	CHECK_EQ(sum.garbage, 0);
	CHECK_EQ(sum.wrong_value, 0);
	CHECK(sum.stable_checks > 0, "readers made stable checks");
	CHECK_EQ(s1.sites_written - s0.sites_written, (unsigned long long)toggles * SITES_PER_KEY);
	free(tally);
	free(th);
	return check_summary("stress_keys");
}
