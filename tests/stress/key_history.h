/* SPDX-License-Identifier: MIT */
/*
 * A key's history as readers can check it.  The toggler bumps seq to odd
 * before it changes a key and to even after the change returned; a reader
 * that saw the same even seq before and after running a site knows the key
 * was stable meanwhile, and that the update which produced it had returned
 * (and synced) before the reader started: the site must show exactly that
 * value.  During an update (odd seq, or seq moved) old and new are both
 * valid, but nothing else is: every site returns one of two magic values.
 */
#ifndef STITCH_TEST_KEY_HISTORY_H
#define STITCH_TEST_KEY_HISTORY_H
#include <stdatomic.h>
#include <stdbool.h>

#define SITE_ON 0xc0de1u
#define SITE_OFF 0x0ff00u

struct key_history {
	atomic_uint seq;
	bool initial; /* the key's value at seq 0 */
};

static inline bool history_value(const struct key_history *h, unsigned seq)
{
	return h->initial ^ ((seq / 2) & 1);
}

/* Writer side, around one change of the key's value. */
static inline void history_begin(struct key_history *h)
{
	atomic_fetch_add_explicit(&h->seq, 1, memory_order_release);
}
static inline void history_end(struct key_history *h)
{
	atomic_fetch_add_explicit(&h->seq, 1, memory_order_release);
}

struct reader_tally {
	unsigned long calls, stable_checks, transition_reads, wrong_value, garbage;
};

/* Run n sites of a key, check them against its history. */
static inline void history_check(struct key_history *h, unsigned (*const *sites)(void), int n,
				 struct reader_tally *t)
{
	unsigned s1 = atomic_load_explicit(&h->seq, memory_order_acquire);
	bool expect = history_value(h, s1);
	bool stable = true;
	unsigned bad = 0;
	for (int i = 0; i < n; i++) {
		unsigned v = sites[i]();
		if (v != SITE_ON && v != SITE_OFF)
			t->garbage++;
		else if ((v == SITE_ON) != expect)
			bad++;
	}
	unsigned s2 = atomic_load_explicit(&h->seq, memory_order_acquire);
	stable = s1 == s2 && (s1 & 1) == 0;
	t->calls += (unsigned long)n;
	if (stable) {
		t->stable_checks++;
		t->wrong_value += bad;
	} else {
		t->transition_reads++;
	}
}
#endif
