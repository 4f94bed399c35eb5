/* SPDX-License-Identifier: MIT */
/*
 * keys_demo: worker threads run flat out through code guarded by static
 * keys while the main thread flips the keys live, and every worker checks
 * each branch it took against the history of the keys.
 *
 *   log   FALSE key, stitch_static_branch_unlikely(), 1 site:  "log this call"
 *   fast  TRUE key,  stitch_static_branch_likely(),   1 site:  fast path / slow path
 *   many  FALSE key, stitch_static_branch_unlikely(), 64 sites in one function
 *
 * How the check works.  The main thread numbers the keys' states: state k
 * is stable while `seq` == 2k and a flip from state k to k+1 is in progress
 * while `seq` == 2k+1.  It writes state k+1 into a history ring, sets
 * seq = 2k+1, calls stitch_static_key_enable/disable/inc/dec(), and sets
 * seq = 2k+2 only after that call returned.  A worker reads seq (s1), runs
 * through every site, and reads seq again (s2):
 *   s1 == s2, even:  no flip overlapped; every site must show state s1/2;
 *   s1 == s2, odd:   one flip overlapped; every site must show the old or
 *                    the new value (the 64 sites of `many` may disagree
 *                    with each other: each one is old or new);
 *   s1 != s2:        several flips overlapped; a site must show a value
 *                    that the key had at some point in between.
 * Anything else is a violation: the demo reports it and exits with 1.
 *
 * Usage: keys_demo [--rounds N] [--threads N] [--quiet]
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <stitch/static_key.h>

#if defined(__x86_64__)
#define ARCH_NAME "x86-64"
#elif defined(__aarch64__)
#define ARCH_NAME "AArch64"
#elif defined(__riscv)
#define ARCH_NAME "RISC-V 64"
#else
#define ARCH_NAME "unknown"
#endif

#define NOINLINE __attribute__((noinline))
#define MAX_THREADS 64
#define ROUND_MS 150
#define STORM_FLIPS 100 /* flips per key in the "storm" round */
#define HIST_SIZE 4096  /* history ring of key states; > flips of any round */

STITCH_DEFINE_STATIC_KEY_FALSE(log_key);
STITCH_DEFINE_STATIC_KEY_TRUE(fast_key);
STITCH_DEFINE_STATIC_KEY_FALSE(many_key);

/* ---- The code the workers run: only the static branches decide anything. ---- */

static NOINLINE bool log_site(void)
{
	if (stitch_static_branch_unlikely(&log_key)) {
		__asm__ volatile("" ::: "memory"); /* "format a log record" */
		return true;
	}
	return false;
}

static NOINLINE bool fast_site(void)
{
	if (stitch_static_branch_likely(&fast_key))
		return true;  /* the fast path, laid out as the fall-through */
	__asm__ volatile("" ::: "memory"); /* the slow path */
	return false;
}

/* 64 sites of one key, in one function: returns how many of them jumped. */
#define MANY_SITES 64
#define REP4(M) M M M M
#define REP16(M) REP4(M) REP4(M) REP4(M) REP4(M)
#define REP64(M) REP16(M) REP16(M) REP16(M) REP16(M)
#define ONE_MANY_SITE n += stitch_static_branch_unlikely(&many_key) ? 1 : 0;
static NOINLINE int many_sites(void)
{
	int n = 0;
	REP64(ONE_MANY_SITE)
	return n;
}

/* ---- State shared between the main thread and the workers. ---- */

enum { K_LOG = 1, K_FAST = 2, K_MANY = 4, K_ALL = 7, K_BASE = 8 /* the state a round runs in */ };

static unsigned long seq;               /* 2k: state k stable; 2k+1: flip k -> k+1 */
static uint32_t hist[HIST_SIZE];        /* state k: key bits | K_BASE? | round << 8 */
static int stop_workers;
static int violations;
static char violation_text[512];        /* the first violation, written once */

static unsigned long load_acq(const unsigned long *p) { return __atomic_load_n(p, __ATOMIC_ACQUIRE); }
static uint32_t hist_get(unsigned long k) { return __atomic_load_n(&hist[k % HIST_SIZE], __ATOMIC_RELAXED); }
static int round_of(unsigned long s) { return (int)(hist_get(s / 2) >> 8); }

/* What one worker saw in one round, in its steady state or while it was being flipped. */
struct paths {
	uint64_t passes;    /* passes through all three functions */
	uint64_t log;       /* ... through the log path */
	uint64_t fast;      /* ... through the fast path */
	uint64_t slow;      /* ... through the slow path */
	uint64_t many;      /* sites of `many` that jumped */
	uint64_t mixed;     /* passes that saw `many`'s 64 sites part old, part new */
};
/* Per round: written by the worker, read by main once the worker is past the round. */
struct counts {
	struct paths steady;  /* passes that began and ended in the round's own state */
	struct paths flips;   /* passes that began in the round and overlapped its flips */
};

struct worker {
	pthread_t thread;
	int index;
	struct counts *rounds;     /* [nrounds + 1], flushed when seq changes */
	unsigned long seen;        /* every pass that began before seq == seen is flushed */
} __attribute__((aligned(64)));

static int nrounds = 9, nthreads = 4;
static bool quiet;

static void add(uint64_t *to, uint64_t n)
{
	__atomic_store_n(to, __atomic_load_n(to, __ATOMIC_RELAXED) + n, __ATOMIC_RELAXED);
}

static void flush_paths(struct paths *to, struct paths *p)
{
	add(&to->passes, p->passes);
	add(&to->log, p->log);
	add(&to->fast, p->fast);
	add(&to->slow, p->slow);
	add(&to->many, p->many);
	add(&to->mixed, p->mixed);
	memset(p, 0, sizeof(*p));
}

static void flush(struct worker *w, unsigned long s, struct counts *c)
{
	struct counts *r = &w->rounds[round_of(s)];
	flush_paths(&r->steady, &c->steady);
	flush_paths(&r->flips, &c->flips);
}

static void report_violation(const struct worker *w, const char *key, unsigned long s1, unsigned long s2,
			     const char *allowed, int seen)
{
	if (__atomic_fetch_add(&violations, 1, __ATOMIC_RELAXED) == 0)
		snprintf(violation_text, sizeof(violation_text),
			 "thread T%d, key %s: seq %lu..%lu allowed %s, but the code took %d", w->index, key, s1, s2,
			 allowed, seen);
}

/* The keys' values over states s1/2 .. s2/2 (rounded up): which bits were ever 1 and ever 0. */
static void allowed_values(unsigned long s1, unsigned long s2, uint32_t *ever1, uint32_t *ever0)
{
	*ever1 = 0;
	*ever0 = 0;
	unsigned long last = (s2 + 1) / 2;
	if (last - s1 / 2 >= HIST_SIZE / 2) { /* too far behind to know: allow anything */
		*ever1 = *ever0 = K_ALL;
		return;
	}
	for (unsigned long k = s1 / 2; k <= last; k++) {
		uint32_t h = hist_get(k);
		*ever1 |= h & K_ALL;
		*ever0 |= ~h & K_ALL;
	}
}

static void check_bool(const struct worker *w, const char *key, uint32_t bit, bool seen, unsigned long s1,
		       unsigned long s2, uint32_t ever1, uint32_t ever0)
{
	if ((seen && !(ever1 & bit)) || (!seen && !(ever0 & bit)))
		report_violation(w, key, s1, s2, seen ? "0 only" : "1 only", seen);
}

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	struct counts c = { 0 };
	unsigned long cur = load_acq(&seq);
	uint32_t want = hist_get(cur / 2);

	while (!__atomic_load_n(&stop_workers, __ATOMIC_RELAXED)) {
		unsigned long s1 = load_acq(&seq);
		if (s1 != cur) {
			flush(w, cur, &c);
			__atomic_store_n(&w->seen, s1, __ATOMIC_RELEASE);
			cur = s1;
			want = hist_get(s1 / 2);
		}
		bool lg = log_site();
		bool fp = fast_site();
		int mn = many_sites();
		unsigned long s2 = load_acq(&seq);

		bool steady = s1 == s2 && !(s1 & 1) && (want & K_BASE);
		struct paths *p = steady ? &c.steady : &c.flips;
		p->passes++;
		p->log += lg;
		p->fast += fp;
		p->slow += !fp;
		p->many += (uint64_t)mn;
		p->mixed += mn > 0 && mn < MANY_SITES;
		if (s1 == s2 && !(s1 & 1)) {
			/* No flip overlapped this pass: every site shows the current state. */
			check_bool(w, "log", K_LOG, lg, s1, s2, want, ~want);
			check_bool(w, "fast", K_FAST, fp, s1, s2, want, ~want);
			if (mn != ((want & K_MANY) ? MANY_SITES : 0))
				report_violation(w, "many", s1, s2, (want & K_MANY) ? "64 of 64" : "0 of 64", mn);
			continue;
		}
		/* One or more flips overlapped: each site shows a value the key had meanwhile. */
		uint32_t ever1, ever0;
		allowed_values(s1, s2, &ever1, &ever0);
		check_bool(w, "log", K_LOG, lg, s1, s2, ever1, ever0);
		check_bool(w, "fast", K_FAST, fp, s1, s2, ever1, ever0);
		if ((mn > 0 && !(ever1 & K_MANY)) || (mn < MANY_SITES && !(ever0 & K_MANY)))
			report_violation(w, "many", s1, s2, (ever1 & K_MANY) ? "64 of 64" : "0 of 64", mn);
	}
	flush(w, cur, &c);
	__atomic_store_n(&w->seen, ~0UL, __ATOMIC_RELEASE);
	return NULL;
}

/* ---- The main thread: flips, waits, prints. ---- */

enum op { OP_ENABLE, OP_DISABLE, OP_INC, OP_DEC };
static const char *const op_names[] = { "enable", "disable", "inc", "dec" };

struct key_info {
	const char *name;
	struct stitch_static_key *key;
	uint32_t bit;
	int count; /* the reference count we expect the library to hold */
};
static struct key_info keys[] = {
	{ "log", &log_key.key, K_LOG, 0 },
	{ "fast", &fast_key.key, K_FAST, 1 },
	{ "many", &many_key.key, K_MANY, 0 },
};
enum { LOG, FAST, MANY };

struct flip_stats {
	int flips;
	double total_us, max_us;
	char what[160];
};

static double now_us(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec / 1e3;
}

static void flip(struct flip_stats *fs, int round, int ki, enum op op)
{
	struct key_info *k = &keys[ki];
	int count = k->count;
	switch (op) {
	case OP_ENABLE: count = count > 0 ? count : 1; break;
	case OP_DISABLE: count = 0; break;
	case OP_INC: count++; break;
	case OP_DEC: count--; break;
	}
	unsigned long s = seq; /* only this thread writes seq */
	uint32_t next = (hist_get(s / 2) & K_ALL & ~k->bit) | (count > 0 ? k->bit : 0) | (uint32_t)round << 8;
	__atomic_store_n(&hist[(s / 2 + 1) % HIST_SIZE], next, __ATOMIC_RELAXED);
	__atomic_store_n(&seq, s + 1, __ATOMIC_RELEASE);

	double t0 = now_us();
	int err = 0;
	switch (op) {
	case OP_ENABLE: err = stitch_static_key_enable_key(k->key); break;
	case OP_DISABLE: err = stitch_static_key_disable_key(k->key); break;
	case OP_INC: err = stitch_static_key_inc_key(k->key); break;
	case OP_DEC: err = stitch_static_key_dec_key(k->key); break;
	}
	double dt = now_us() - t0;
	if (err) {
		fprintf(stderr, "keys_demo: %s(%s) failed: %s: %s\n", op_names[op], k->name, stitch_strerror(err),
			stitch_last_error());
		exit(2);
	}
	k->count = count;
	__atomic_store_n(&seq, s + 2, __ATOMIC_RELEASE); /* the flip has returned */

	fs->flips++;
	fs->total_us += dt;
	if (dt > fs->max_us)
		fs->max_us = dt;
	if (fs->flips <= 2) {
		size_t n = strlen(fs->what);
		snprintf(fs->what + n, sizeof(fs->what) - n, "%s%s(%s)", n ? " + " : "", op_names[op], k->name);
	}
}

/* The flips at the end of round r: a fixed cycle that exercises every update call. */
static void round_end_flips(int r, struct flip_stats *fs)
{
	int next = r; /* the states these flips pass through belong to round r */
	memset(fs, 0, sizeof(*fs));
	switch (r % 8) {
	case 0: flip(fs, next, LOG, OP_ENABLE); break;
	case 1: flip(fs, next, FAST, OP_DISABLE); break;
	case 2: flip(fs, next, MANY, OP_ENABLE); break;
	case 3: flip(fs, next, LOG, OP_INC); break; /* 1 -> 2: no code changes */
	case 4:
		for (int i = 0; i < STORM_FLIPS; i++) {
			flip(fs, next, LOG, i % 2 ? OP_INC : OP_DEC);  /* 2 -> 1 -> 2: no code change */
			flip(fs, next, FAST, i % 2 ? OP_DISABLE : OP_ENABLE);
			flip(fs, next, MANY, i % 2 ? OP_ENABLE : OP_DISABLE);
		}
		snprintf(fs->what, sizeof(fs->what), "storm: %d x (dec/inc(log), enable/disable(fast), "
			 "disable/enable(many))", STORM_FLIPS);
		break;
	case 5: flip(fs, next, LOG, OP_DEC); flip(fs, next, LOG, OP_DEC); break; /* 2 -> 1 -> 0 */
	case 6: flip(fs, next, FAST, OP_ENABLE); break;
	case 7: flip(fs, next, MANY, OP_DISABLE); break;
	}
}

static const char *onoff(uint32_t state, uint32_t bit) { return (state & bit) ? "ON " : "off"; }

/* Wait until every worker has flushed its passes that began before seq == s. */
static void wait_for_workers(struct worker *w, unsigned long s)
{
	double deadline = now_us() + 10e6;
	for (int i = 0; i < nthreads; i++)
		while (__atomic_load_n(&w[i].seen, __ATOMIC_ACQUIRE) < s) {
			if (now_us() > deadline) {
				fprintf(stderr, "keys_demo: thread T%d made no progress for 10 s\n", i);
				exit(2);
			}
			sched_yield();
		}
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };
	while (nanosleep(&ts, &ts) == -1 && errno == EINTR)
		;
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s [--rounds N] [--threads N] [--quiet]\n", argv0);
	exit(2);
}

static int parse_int(const char *s, int lo, int hi, const char *argv0)
{
	char *end;
	long v = s ? strtol(s, &end, 10) : 0;
	if (!s || *end || v < lo || v > hi)
		usage(argv0);
	return (int)v;
}

int main(int argc, char **argv)
{
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--rounds"))
			nrounds = parse_int(argv[++i], 1, 100000, argv[0]);
		else if (!strcmp(argv[i], "--threads"))
			nthreads = parse_int(argv[++i], 1, MAX_THREADS, argv[0]);
		else if (!strcmp(argv[i], "--quiet"))
			quiet = true;
		else
			usage(argv[0]);
	}

	int err = stitch_init();
	if (err) {
		fprintf(stderr, "keys_demo: stitch_init: %s: %s\n", stitch_strerror(err), stitch_last_error());
		return 2;
	}
	printf("stitch keys_demo: %d worker threads, %d rounds, %s, write backend: %s\n", nthreads, nrounds,
	       ARCH_NAME, stitch_backend_name());
	int many_count = stitch_static_key_site_count(&many_key.key);
	printf("keys: log (FALSE, unlikely, %d site)  fast (TRUE, likely, %d site)  many (FALSE, unlikely, %d sites)\n",
	       stitch_static_key_site_count(&log_key.key), stitch_static_key_site_count(&fast_key.key), many_count);
	if (many_count != MANY_SITES)
		printf("      (many_sites() has %d branches on `many`; the compiler duplicated some, each copy is a "
		       "site of its own, and a pass runs through %d of them)\n", MANY_SITES, MANY_SITES);

	hist[0] = K_FAST | K_BASE; /* state 0: round 0's steady state */
	struct worker *workers = aligned_alloc(64, sizeof(struct worker) * (size_t)nthreads);
	if (!workers)
		return 2;
	memset(workers, 0, sizeof(struct worker) * (size_t)nthreads);
	for (int i = 0; i < nthreads; i++) {
		workers[i].index = i;
		/* + 1: passes after the last round's end (until the workers stop) count there. */
		workers[i].rounds = calloc((size_t)nrounds + 1, sizeof(struct counts));
		if (!workers[i].rounds || pthread_create(&workers[i].thread, NULL, worker_main, &workers[i])) {
			fprintf(stderr, "keys_demo: cannot start worker %d\n", i);
			return 2;
		}
	}

	struct stitch_stats st0, st1, first;
	stitch_get_stats(&first);
	uint64_t all_flips = 0, all_passes = 0, all_overlap = 0, all_mixed = 0;
	int idle_rounds = 0;
	double max_flip_us = 0;
	for (int r = 0; r < nrounds; r++) {
		uint32_t during = hist_get(seq / 2);
		int log_count = keys[LOG].count;
		sleep_ms(ROUND_MS);
		stitch_get_stats(&st0);
		struct flip_stats fs = { 0 };
		if (r + 1 < nrounds)
			round_end_flips(r, &fs);
		stitch_get_stats(&st1);
		/*
		 * Round r + 1 begins: a state change of no key, so that the
		 * workers' steady passes of round r + 1 are counted apart from
		 * those that overlapped round r's flips, and so that every worker
		 * flushes what it counted for round r.
		 */
		unsigned long s = seq;
		__atomic_store_n(&hist[(s / 2 + 1) % HIST_SIZE],
				 (hist_get(s / 2) & K_ALL) | K_BASE | (uint32_t)(r + 1) << 8, __ATOMIC_RELAXED);
		__atomic_store_n(&seq, s + 2, __ATOMIC_RELEASE);
		wait_for_workers(workers, s + 2);

		all_flips += (uint64_t)fs.flips;
		if (fs.max_us > max_flip_us)
			max_flip_us = fs.max_us;
		struct paths f = { 0 };
		if (!quiet) {
			printf("\nround %d/%d  keys: log=%s(count %d)  fast=%s  many=%s\n", r + 1, nrounds,
			       onoff(during, K_LOG), log_count, onoff(during, K_FAST), onoff(during, K_MANY));
			printf("  thread        passes    log path   fast path   slow path   many: sites jumped\n");
		}
		for (int i = 0; i < nthreads; i++) {
			const struct paths *c = &workers[i].rounds[r].steady, *o = &workers[i].rounds[r].flips;
			all_passes += c->passes + o->passes;
			f.passes += o->passes;
			f.log += o->log;
			f.fast += o->fast;
			f.slow += o->slow;
			f.many += o->many;
			f.mixed += o->mixed;
			idle_rounds += c->passes == 0;
			if (!quiet)
				printf("  T%-3d  %12llu  %10llu  %10llu  %10llu  %19llu\n", i,
				       (unsigned long long)c->passes, (unsigned long long)c->log,
				       (unsigned long long)c->fast, (unsigned long long)c->slow,
				       (unsigned long long)c->many);
		}
		all_overlap += f.passes;
		all_mixed += f.mixed;
		if (!quiet && fs.flips) {
			printf("  then %s: %d flip%s, %.0f us avg, %.0f us max; +%llu syncs, +%llu sites written, "
			       "+%llu int3 trap hits\n",
			       fs.what, fs.flips, fs.flips == 1 ? "" : "s", fs.total_us / fs.flips, fs.max_us,
			       (unsigned long long)(st1.syncs - st0.syncs),
			       (unsigned long long)(st1.sites_written - st0.sites_written),
			       (unsigned long long)(st1.trap_hits - st0.trap_hits));
			printf("  passes overlapping %s (all threads): %llu; log path %llu, fast %llu, slow %llu, "
			       "many sites jumped %llu",
			       fs.flips == 1 ? "the flip" : "the flips", (unsigned long long)f.passes,
			       (unsigned long long)f.log, (unsigned long long)f.fast, (unsigned long long)f.slow,
			       (unsigned long long)f.many);
			if (f.mixed)
				printf(" (%llu passes saw many's sites part old, part new)", (unsigned long long)f.mixed);
			printf("\n");
		}
	}
	__atomic_store_n(&stop_workers, 1, __ATOMIC_RELAXED);
	for (int i = 0; i < nthreads; i++)
		pthread_join(workers[i].thread, NULL);
	for (int i = 0; i < nthreads; i++)
		free(workers[i].rounds);
	free(workers);

	struct stitch_stats end;
	stitch_get_stats(&end);
	printf("\nsummary: %llu flips, max %.0f us; %llu passes by %d threads, %llu overlapped a flip "
	       "(%llu saw many's 64 sites part old, part new)\n",
	       (unsigned long long)all_flips, max_flip_us, (unsigned long long)all_passes, nthreads,
	       (unsigned long long)all_overlap, (unsigned long long)all_mixed);
	printf("library: backend %s, %llu batches, %llu syncs, %llu sites written, %llu int3 trap hits, "
	       "%llu quiescence rounds\n",
	       stitch_backend_name(), (unsigned long long)(end.batches - first.batches),
	       (unsigned long long)(end.syncs - first.syncs),
	       (unsigned long long)(end.sites_written - first.sites_written),
	       (unsigned long long)(end.trap_hits - first.trap_hits),
	       (unsigned long long)(end.quiesce_rounds - first.quiesce_rounds));
	if (idle_rounds)
		printf("note: %d thread-rounds made no pass (an overloaded machine; not an error)\n", idle_rounds);
	int bad = __atomic_load_n(&violations, __ATOMIC_RELAXED);
	if (bad) {
		printf("VERDICT: FAIL, %d passes saw a value the key never had at that time; first: %s\n", bad,
		       violation_text);
		return 1;
	}
	printf("VERDICT: OK, every pass through every site saw the key's old or new value while a flip "
	       "was in progress, and only the new value once the flip had returned\n");
	return 0;
}
