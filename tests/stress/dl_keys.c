/* SPDX-License-Identifier: MIT */
/*
 * A library with keys and sites is dlopen()ed and dlclose()d in rounds.
 * In every round readers run its sites while one thread toggles its key,
 * and, across all rounds, another thread toggles a key of the main program
 * (so module registration and removal race with updates).  Each fresh load
 * must start from the library's initial key value, whatever the last
 * round left.
 *
 *   dl_keys [--emulated] LIBRARY [rounds] [toggles-per-round]
 */
#include <dlfcn.h>
#include <pthread.h>
#include <sched.h>
#include <stitch/static_key.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "key_history.h"

STITCH_DEFINE_STATIC_KEY_FALSE(main_key);
static __attribute__((noinline)) unsigned main_site(void)
{
	return stitch_static_branch_unlikely(&main_key) ? SITE_ON : SITE_OFF;
}
/*
 * Natively the readers call the main-program site directly (gcc resolves
 * the constant table to a `bl`/`call`).  Under qemu-user (--emulated) they
 * call it through a volatile pointer: qemu chains translated blocks of
 * direct calls and may keep entering the old translation of a patched
 * function for a while after its invalidation, whatever the guest syncs;
 * indirect calls look the translation up each time.  (Seen here as a few
 * stale reads in thousands of updates, only with direct calls, only under
 * qemu; real CPUs are held to the architecture's rule by the native runs.)
 */
static unsigned (*const main_sites[])(void) = { main_site };
static unsigned (*volatile main_sites_indirect[])(void) = { main_site };
static bool emulated;

static struct key_history main_history = { 0, false };
static struct key_history lib_history;
static atomic_int stop_round, stop_all;
static unsigned (*const *lib_sites)(void);
static int lib_nsites;

static atomic_ulong reader_passes;

static void *lib_reader(void *arg)
{
	struct reader_tally *t = arg; /* [0] library key, [1] main-program key */
	while (!atomic_load(&stop_round)) {
		history_check(&lib_history, lib_sites, lib_nsites, &t[0]);
		if (emulated)
			history_check(&main_history, (unsigned (*const *)(void))main_sites_indirect, 1, &t[1]);
		else
			history_check(&main_history, main_sites, 1, &t[1]);
		atomic_fetch_add(&reader_passes, 1);
	}
	return NULL;
}

/* Let the readers make progress between two updates, so that they also
 * see each value while it is stable (synchronised on their progress, not
 * on time).  Returns at once when no round is running. */
static void wait_for_readers(void)
{
	unsigned long start = atomic_load(&reader_passes);
	while (!atomic_load(&stop_round) && !atomic_load(&stop_all) && atomic_load(&reader_passes) < start + 4)
		sched_yield();
}

static atomic_long main_toggles;
static atomic_int main_errors;

static void *main_toggler(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_all)) {
		bool on = stitch_static_key_enabled(&main_key);
		history_begin(&main_history);
		int err = on ? stitch_static_key_disable(&main_key) : stitch_static_key_enable(&main_key);
		history_end(&main_history);
		if (err)
			atomic_fetch_add(&main_errors, 1);
		atomic_fetch_add(&main_toggles, 1);
		wait_for_readers();
	}
	return NULL;
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--emulated")) {
		emulated = true;
		argv++;
		argc--;
	}
	if (argc < 2) {
		fprintf(stderr, "usage: dl_keys [--emulated] LIBRARY [rounds] [toggles-per-round]\n");
		return 2;
	}
	int rounds = argc > 2 ? atoi(argv[2]) : 20;
	int toggles = argc > 3 ? atoi(argv[3]) : 200;
	CHECK(stitch_init() == 0, "init: %s", stitch_last_error());
	pthread_t mt;
	pthread_create(&mt, NULL, main_toggler, NULL);
	struct reader_tally sum[2];
	memset(sum, 0, sizeof(sum));
	for (int r = 0; r < rounds; r++) {
		void *h = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
		CHECK(h != NULL, "dlopen: %s", dlerror());
		if (!h)
			break;
		struct stitch_static_key *(*get_key)(void) = (struct stitch_static_key * (*)(void)) dlsym(h, "dl_lib_key");
		unsigned (*const *(*get_sites)(int *))(void) =
			(unsigned (*const *(*)(int *))(void))dlsym(h, "dl_lib_sites");
		CHECK(get_key && get_sites, "dlsym");
		struct stitch_static_key *key = get_key();
		lib_sites = get_sites(&lib_nsites);
		CHECK_EQ(stitch_static_key_site_count(key), lib_nsites);
		CHECK_EQ(stitch_static_key_count(key), 0);
		for (int i = 0; i < lib_nsites; i++)
			CHECK(lib_sites[i]() == SITE_OFF, "fresh load, site %d starts off", i);
		atomic_store(&lib_history.seq, 0);
		lib_history.initial = false;
		atomic_store(&stop_round, 0);
		pthread_t rd[2];
		struct reader_tally t[2][2];
		memset(t, 0, sizeof(t));
		for (int i = 0; i < 2; i++)
			pthread_create(&rd[i], NULL, lib_reader, t[i]);
		for (int i = 0; i < toggles; i++) {
			bool on = stitch_static_key_count(key) > 0;
			history_begin(&lib_history);
			int err = on ? stitch_static_key_disable_key(key) : stitch_static_key_enable_key(key);
			history_end(&lib_history);
			if (err)
				CHECK(err == 0, "toggle library key: %s", stitch_last_error());
			wait_for_readers();
		}
		/* Leave the key enabled half the time: the next load must not care. */
		if (r % 2 && stitch_static_key_count(key) == 0) {
			history_begin(&lib_history);
			CHECK_EQ(stitch_static_key_enable_key(key), 0);
			history_end(&lib_history);
		}
		atomic_store(&stop_round, 1);
		for (int i = 0; i < 2; i++) {
			pthread_join(rd[i], NULL);
			for (int k = 0; k < 2; k++) {
				sum[k].calls += t[i][k].calls;
				sum[k].stable_checks += t[i][k].stable_checks;
				sum[k].wrong_value += t[i][k].wrong_value;
				sum[k].garbage += t[i][k].garbage;
			}
		}
		CHECK(dlclose(h) == 0, "dlclose: %s", dlerror());
	}
	atomic_store(&stop_all, 1);
	pthread_join(mt, NULL);
	printf("dl_keys: %d rounds x %d library toggles, %ld main-key toggles meanwhile\n", rounds, toggles,
	       atomic_load(&main_toggles));
	for (int k = 0; k < 2; k++) {
		printf("  %s key: %lu site calls, %lu stable checks\n", k ? "main-program" : "library", sum[k].calls,
		       sum[k].stable_checks);
		CHECK_EQ(sum[k].garbage, 0);
		CHECK(sum[k].wrong_value == 0, "%s key: %lu wrong values", k ? "main-program" : "library", sum[k].wrong_value);
		CHECK(sum[k].stable_checks > 0, "readers saw stable values");
	}
	CHECK_EQ(atomic_load(&main_errors), 0);
	CHECK_EQ(stitch_static_key_site_count(&main_key.key), 1);
	return check_summary("dl_keys");
}
