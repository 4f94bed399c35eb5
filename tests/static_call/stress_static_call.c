/* SPDX-License-Identifier: MIT */
/*
 * Stress: R threads call a static call in a loop while the main thread
 * retargets it N times among near, mid (beyond B/JAL range), far (64 GiB
 * away, two different low-12-bit offsets) and NULL.
 *
 * Checked for every call: the target that ran (or none, for NULL) is one
 * that was current at some moment between the call's start and its end:
 * history[v] is the target of update v, `version` is published after
 * update v returned, so a call that read version v0 before and v1 after
 * may see history[v0 .. v1 + 1] (update v1 + 1 may be in flight).
 * At the end, every target's own counter equals the callers' tally of it.
 *
 *   stress_static_call [N [R [--emulated | --sites]]]    (defaults 10000 and 4)
 *
 * --emulated (qemu-user runs): call the trampoline through a volatile
 * function pointer.  qemu chains the translated blocks of a direct call
 * and can keep entering a patched page's old translation for a while after
 * its invalidation (see README, "Limits of the emulated runs"); seen here
 * as 1 call in 6.6e8 running a near target three updates stale on the
 * AArch64 seed layout.  Native runs call directly.
 *
 * --sites (a build linked with --emit-relocs, where the direct call below
 * is an inline site; AArch64 SLOTS: `BL target` or `BL active slot`):
 * calls alternate between the site, executed as the direct call it is
 * (the BL itself is what is being tested), and the trampoline's entry
 * through a function pointer; each path's calls are counted and both must
 * have run.  Under qemu the site's page is written with mprotect and
 * stores (src/core/text.c picks that backend there), which drops every
 * translation of the page, the reader loop's own included, so the BL is
 * translated afresh after each update.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/check.h"
#include "static_call/far_thunk.h"
#include <stitch/static_call.h>

#define NT 5 /* targets 0..4, -1 = NULL */
static atomic_ulong ran[NT];

#define TARGET(k) \
	__attribute__((noinline)) static void t##k(int *r) { *r = k; atomic_fetch_add_explicit(&ran[k], 1, memory_order_relaxed); }
TARGET(0)
TARGET(1)
TARGET(2)
TARGET(3)
TARGET(4)

STITCH_DEFINE_STATIC_CALL(hit, t0);

static void *targets[NT]; /* what update() is given for target k */
static _Atomic signed char *history; /* relaxed: ordered by `version` except the in-flight entry */
static atomic_long version;
static atomic_bool stop;
static long nupdates;
static void (*volatile call_ptr)(int *); /* --emulated: the trampoline, called indirectly */
static bool alternate;                     /* --sites: site and entry in turn */

struct reader {
	pthread_t thread;
	unsigned long tally[NT + 1]; /* [0] = NULL */
	unsigned long bad;
	unsigned long calls, via_entry;
};

static void *reader_main(void *arg)
{
	struct reader *rd = arg;
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		long v0 = atomic_load_explicit(&version, memory_order_acquire);
		int r = -1;
		if (call_ptr && (!alternate || (rd->calls & 1))) {
			call_ptr(&r);
			rd->via_entry++;
		} else {
			stitch_static_call_cond(hit)(&r);
		}
		long v1 = atomic_load_explicit(&version, memory_order_acquire);
		long hi = v1 + 1 < nupdates ? v1 + 1 : nupdates;
		bool ok = false;
		for (long v = v0; v <= hi && !ok; v++)
			ok = atomic_load_explicit(&history[v], memory_order_relaxed) == r;
		if (!ok && rd->bad++ < 5)
			fprintf(stderr, "call between versions %ld and %ld ran target %d\n", v0, v1, r);
		rd->tally[r + 1]++;
		rd->calls++;
	}
	return NULL;
}

int main(int argc, char **argv)
{
	nupdates = argc > 1 ? atol(argv[1]) : 10000;
	int nreaders = argc > 2 ? atoi(argv[2]) : 4;
	if (argc > 3 && (strcmp(argv[3], "--emulated") == 0 || strcmp(argv[3], "--sites") == 0))
		call_ptr = stitch_static_call(hit);
	alternate = argc > 3 && strcmp(argv[3], "--sites") == 0;
	if (stitch_init() != 0) {
		fprintf(stderr, "stitch_init: %s\n", stitch_last_error());
		return 1;
	}
	uintptr_t here = (uintptr_t)stitch_static_call_desc(hit)->tramp;
	uint8_t *pm = far_page(here, 1ull << 30, 0), *pf = far_page(here, FAR_DISTANCE, 0);
	if (!pm || !pf)
		return fprintf(stderr, "cannot map far pages\n"), 1;
	targets[0] = (void *)t0;
	targets[1] = (void *)t1;
	targets[2] = far_stub(pm, 0, (void *)t2);
	targets[3] = far_stub(pf, 0, (void *)t3);
	targets[4] = far_stub(pf, 0x100, (void *)t4);
	if (far_seal(pm) || far_seal(pf))
		return fprintf(stderr, "mprotect far pages failed\n"), 1;

	history = calloc((size_t)nupdates + 1, sizeof(*history));
	atomic_store_explicit(&history[0], 0, memory_order_relaxed);
	struct reader *rd = calloc((size_t)nreaders, sizeof(*rd));
	for (int i = 0; i < nreaders; i++)
		pthread_create(&rd[i].thread, NULL, reader_main, &rd[i]);

	unsigned seed = 12345;
	unsigned long per_kind[NT + 1] = { 0 };
	int failed_updates = 0;
	for (long v = 1; v <= nupdates; v++) {
		int k = (int)(rand_r(&seed) % (NT + 1)) - 1; /* -1..4 */
		atomic_store_explicit(&history[v], (signed char)k, memory_order_relaxed);
		int err = stitch_static_call_update_desc(stitch_static_call_desc(hit), k < 0 ? NULL : targets[k]);
		if (err && failed_updates++ < 5)
			fprintf(stderr, "update %ld: %s\n", v, stitch_last_error());
		per_kind[k + 1]++;
		atomic_store_explicit(&version, v, memory_order_release);
	}
	atomic_store(&stop, true);
	unsigned long calls = 0, bad = 0, via_entry = 0, tally[NT + 1] = { 0 };
	for (int i = 0; i < nreaders; i++) {
		pthread_join(rd[i].thread, NULL);
		calls += rd[i].calls;
		via_entry += rd[i].via_entry;
		bad += rd[i].bad;
		for (int k = 0; k <= NT; k++)
			tally[k] += rd[i].tally[k];
	}
	free(rd);
	free((void *)history);
	CHECK_EQ(failed_updates, 0);
	CHECK(calls > 0, "readers made no calls");
	int nsites = stitch_static_call_site_count(stitch_static_call_desc(hit));
	if (alternate) {
		/* the direct call really is a site, and both paths ran */
		CHECK(nsites >= 1, "--sites: the reader's call is an inline site (found %d)", nsites);
		CHECK(via_entry > 0 && via_entry < calls, "--sites: %lu of %lu calls through the entry", via_entry, calls);
		printf("inline sites %d: %lu calls through the site, %lu through the trampoline's entry\n", nsites,
		       calls - via_entry, via_entry);
	}
	CHECK(bad == 0, "%lu of %lu calls ran a target that was not current during the call", bad, calls);
	for (int k = 0; k < NT; k++)
		CHECK(atomic_load(&ran[k]) == tally[k + 1], "target %d ran %lu times, callers saw it %lu times", k,
		      atomic_load(&ran[k]), tally[k + 1]);
	printf("layout %u: %ld updates (NULL %lu, near %lu+%lu, mid %lu, far %lu+%lu), %d readers, %lu calls "
	       "(NULL %lu, t0..t4 %lu %lu %lu %lu %lu)\n",
	       stitch_static_call_desc(hit)->layout, nupdates, per_kind[0], per_kind[1], per_kind[2], per_kind[3],
	       per_kind[4], per_kind[5], nreaders, calls, tally[0], tally[1], tally[2], tally[3], tally[4], tally[5]);
	struct stitch_stats st;
	stitch_get_stats(&st);
	printf("batches %lu, syncs %lu, trap hits %lu, quiesce rounds %lu\n", (unsigned long)st.batches,
	       (unsigned long)st.syncs, (unsigned long)st.trap_hits, (unsigned long)st.quiesce_rounds);
	return check_summary("stress_static_call");
}
