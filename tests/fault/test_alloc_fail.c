/* SPDX-License-Identifier: MIT */
/*
 * Memory exhaustion during an operation (issue 8, fault matrix).
 *
 * The program is linked with -Wl,--wrap=malloc,--wrap=calloc,
 * --wrap=realloc,--wrap=strdup: every allocation the library (linked
 * statically) and this file make goes through the wrappers below, which
 * can make the n-th allocation of the calling thread fail.  Allocations
 * inside libc itself (fopen, opendir) are not wrapped.
 *
 * For each operation - static key enable and disable (256 sites), static
 * call update (with inline call sites where the architecture has them),
 * ftrace register / set_filter / unregister - and for n = 1, 2, ... until
 * the operation no longer reaches an n-th allocation:
 *  - the operation fails with -STITCH_ENOMEM, or succeeds completely (an
 *    allocation whose failure the library can do without);
 *  - after a failure every byte of every site (keys: each site; static
 *    calls: the trampoline and the callers' code; ftrace: every site) is
 *    exactly as before, and the state the API reports is unchanged;
 *  - two threads keep calling through all of it the whole time and never
 *    see a result that is neither the old nor the new one.
 * Usage: test_alloc_fail
 */
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <string.h>

#include <stitch/static_call.h>
#include <stitch/static_key.h>
#ifdef STITCH_TEST_FTRACE
#include <stitch/ftrace.h>

#include "ftrace/funcs.h"
#include "ftrace/site_bytes.h"
#endif

#include "common/check.h"
#include "common/key_sites.h"
#include "common/repeat.h"

/* ---- the allocation wrappers --------------------------------------------- */

void *__real_malloc(size_t n);
void *__real_calloc(size_t n, size_t size);
void *__real_realloc(void *p, size_t n);
char *__real_strdup(const char *s);
void *__wrap_malloc(size_t n);
void *__wrap_calloc(size_t n, size_t size);
void *__wrap_realloc(void *p, size_t n);
char *__wrap_strdup(const char *s);

/* Only the thread that armed the countdown counts: readers allocate nothing
 * of ours, but the library may allocate on other threads (e.g. liburcu). */
static __thread bool armed;
static __thread long alloc_seen, fail_at;
static __thread bool injected;
/* Protocol step (stitch_batch_step_hook: 0 just before the first write,
 * k after the k-th sync) the operation had reached, -1 before the batch
 * protocol started; and where the injected failure struck. */
static __thread int step_now = -1, step_at_injection;

static void step_hook(unsigned step)
{
	step_now = (int)step;
}

static bool inject(void)
{
	if (!armed)
		return false;
	if (++alloc_seen != fail_at)
		return false;
	injected = true;
	step_at_injection = step_now;
	errno = ENOMEM;
	return true;
}

void *__wrap_malloc(size_t n) { return inject() ? NULL : __real_malloc(n); }
void *__wrap_calloc(size_t n, size_t size) { return inject() ? NULL : __real_calloc(n, size); }
void *__wrap_realloc(void *p, size_t n) { return inject() ? NULL : __real_realloc(p, n); }
char *__wrap_strdup(const char *s) { return inject() ? NULL : __real_strdup(s); }

/* Make the n-th allocation from now on (this thread) fail; n = 0: none. */
static void fail_alloc_after(long n)
{
	alloc_seen = 0;
	fail_at = n;
	injected = false;
	step_now = -1;
	armed = n > 0;
}

/* ---- what is patched ------------------------------------------------------ */

#define NOINLINE __attribute__((noinline))

STITCH_DEFINE_STATIC_KEY_FALSE(key);
#define SITE(x, i) static NOINLINE int site_##i(void) { return stitch_static_branch_unlikely(&x) ? 1 : 0; }
REPEAT_256(SITE, key, 0)
#define SITE_PTR(x, i) site_##i,
static int (*const sites[])(void) = { REPEAT_256(SITE_PTR, x, 0) };
#define NSITES (int)(sizeof(sites) / sizeof(sites[0]))

static int sites_on(void)
{
	int n = 0;
	for (int i = 0; i < NSITES; i++)
		n += sites[i]();
	return n;
}

static NOINLINE int f_a(int x) { return x + 1; }
static NOINLINE int f_b(int x) { return x + 2; }
STITCH_DEFINE_STATIC_CALL(sc, f_a);
/* Callers: with --emit-relocs their calls are the static call's inline sites. */
#define CALLER(x, i) \
	static NOINLINE int caller_##i(int v) { int r = stitch_static_call(sc)(v); __asm__ volatile("" ::: "memory"); return r; }
REPEAT_16(CALLER, x, 0)
#define CALLER_PTR(x, i) caller_##i,
static int (*const callers[])(int) = { REPEAT_16(CALLER_PTR, x, 0) };
#define NCALLERS (int)(sizeof(callers) / sizeof(callers[0]))
#define CALLER_BYTES 32 /* compared from each caller's entry: its call is in there */
#define TRAMP_BYTES 16

/* ---- bytes of every site -------------------------------------------------- */

#if defined(__x86_64__)
#define KEY_SITE_LEN 5 /* jmp rel32 or nop5 (jmp rel8 / nop2 fit inside) */
#else
#define KEY_SITE_LEN 4
#endif

struct image {
	size_t len;
	uint8_t *bytes;
};

static void image_add(struct image *im, uintptr_t addr, size_t n)
{
	im->bytes = __real_realloc(im->bytes, im->len + n);
	if (!im->bytes)
		abort();
	memcpy(im->bytes + im->len, (const void *)addr, n);
	im->len += n;
}

#ifdef STITCH_TEST_FTRACE
static size_t ft_nsites;
static struct stitch_ftrace_site_info *ft_info;
#endif

/* Everything this test patches, as bytes. */
static struct image take_image(void)
{
	struct image im = { 0, NULL };
	struct test_key_group g = test_key_group(&key.key);
	for (size_t i = 0; i < g.count; i++)
		image_add(&im, g.sites[i].where.code, KEY_SITE_LEN);
	image_add(&im, (uintptr_t)stitch_static_call(sc), TRAMP_BYTES);
	for (int i = 0; i < NCALLERS; i++)
		image_add(&im, (uintptr_t)callers[i], CALLER_BYTES);
#ifdef STITCH_TEST_FTRACE
	for (size_t i = 0; i < ft_nsites; i++)
		image_add(&im, ft_info[i].site, SITE_LEN);
#endif
	return im;
}

static bool same_image(const struct image *a, const struct image *b)
{
	return a->len == b->len && memcmp(a->bytes, b->bytes, a->len) == 0;
}

/* ---- readers ---------------------------------------------------------------- */

static atomic_bool stop;
static atomic_long wrong, calls;

static void *reader(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop)) {
		int n = sites_on();
		if (n < 0 || n > NSITES)
			atomic_fetch_add(&wrong, 1);
		for (int i = 0; i < NCALLERS; i++) {
			int r = callers[i](i);
			if (r != i + 1 && r != i + 2)
				atomic_fetch_add(&wrong, 1);
		}
#ifdef STITCH_TEST_FTRACE
		for (int i = 0; i < TF_COUNT; i += 61)
			if (tf_table[i](5) != 5 * 3 + i)
				atomic_fetch_add(&wrong, 1);
#endif
		atomic_fetch_add(&calls, 1);
	}
	return NULL;
}

/* ---- the sweep -------------------------------------------------------------- */

typedef int (*op_fn)(void);
/* The state the API reports, compared with what it was after a failure. */
typedef long (*state_fn)(void);

/*
 * Run op with the n-th allocation failing, n = 1, 2, ..., until it runs
 * without reaching an n-th allocation.  When it succeeds although the
 * allocation failed, `undo` (the inverse operation, run without failures)
 * puts things back for the next n.  Returns the op's final result.
 */
static int sweep(const char *name, op_fn op, op_fn undo, state_fn state)
{
	int failures = 0, survived = 0, after_writes = 0;
	for (long n = 1;; n++) {
		struct image before = take_image();
		long st = state();
		fail_alloc_after(n);
		int err = op();
		bool hit = injected;
		fail_alloc_after(0);
		if (!hit) {
			CHECK(err == 0, "%s: runs without an injected failure: %d (%s)", name, err, stitch_last_error());
			printf("%s: %ld allocations; %d failed with -STITCH_ENOMEM and changed nothing "
			       "(%d of them inside the write protocol, past its step 0), %d were survived\n",
			       name, n - 1, failures, after_writes, survived);
			free(before.bytes);
			return err;
		}
		if (err == 0) {
			/* the library did without that allocation: the op happened */
			survived++;
			CHECK(undo() == 0, "%s: undo after allocation %ld: %s", name, n, stitch_last_error());
			struct image back = take_image();
			CHECK(same_image(&before, &back) && state() == st, "%s: undo after allocation %ld", name, n);
			free(before.bytes);
			free(back.bytes);
			continue;
		}
		failures++;
		after_writes += step_at_injection >= 0;
		struct image after = take_image();
		CHECK(err == -STITCH_ENOMEM, "%s, allocation %ld failed: returns %d (%s)", name, n, err,
		      stitch_last_error());
		CHECK(same_image(&before, &after), "%s, allocation %ld failed: code bytes changed", name, n);
		CHECK(state() == st, "%s, allocation %ld failed: state %ld, was %ld", name, n, state(), st);
		free(before.bytes);
		free(after.bytes);
	}
}

static int key_enable(void) { return stitch_static_key_enable(&key); }
static int key_disable(void) { return stitch_static_key_disable(&key); }
static long key_state(void) { return stitch_static_key_enabled(&key) * 1000 + sites_on(); }

static int sc_flip(void) { return stitch_static_call_update(sc, stitch_static_call_query(sc) == f_a ? f_b : f_a); }
/* The target (1: f_a, 2: f_b) and how many callers call it. */
static long sc_state(void)
{
	long t = stitch_static_call_query(sc) == f_a ? 1 : 2, ok = 0;
	for (int i = 0; i < NCALLERS; i++)
		ok += callers[i](0) == t;
	return t * 100 + ok;
}

#ifdef STITCH_TEST_FTRACE
/* Per thread: the readers run traced functions too. */
static __thread long traced;
static void on_entry(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent_ip, (void)ops, (void)regs;
	traced++;
}
static struct stitch_ftrace_ops ops = { .func = on_entry };
static const char *filters[] = { "tf_a*", "tf_b* tf_c0*" };
static int filter_idx;

static int ft_register(void) { return stitch_ftrace_register(&ops, filters[filter_idx]); }
static int ft_set_filter(void)
{
	int err = stitch_ftrace_set_filter(&ops, filters[!filter_idx]);
	if (err == 0)
		filter_idx = !filter_idx;
	return err;
}
static int ft_unregister(void) { return stitch_ftrace_unregister(&ops); }
/* Sites traced, and whether the callback runs for a traced function of each filter. */
static long ft_state(void)
{
	long n = stitch_ftrace_ops_site_count(&ops);
	long before = traced;
	parse_one(1);     /* selected by neither filter */
	tf_table[0](1);   /* tf_a0000: filter 0 */
	long a = traced - before;
	tf_table[256](1); /* tf_b0000: filter 1 */
	long b = traced - before - a;
	return n * 100 + a * 10 + b;
}
#endif

int main(void)
{
	CHECK_EQ(stitch_init(), 0);
	printf("write backend: %s\n", stitch_backend_name());
	stitch_batch_step_hook = step_hook;
	CHECK_EQ(stitch_static_key_site_count(&key.key), NSITES);
	int nsc = stitch_static_call_site_count(stitch_static_call_desc(sc));
	printf("static call inline sites: %d\n", nsc);
#if defined(__x86_64__) || defined(__riscv)
	/* linked with --emit-relocs: the update must rewrite call sites too */
	CHECK(nsc > 0, "static call inline sites found: %d", nsc);
#endif
#ifdef STITCH_TEST_FTRACE
	int n = stitch_ftrace_site_count();
	CHECK(n >= TF_COUNT, "ftrace sites: %d", n);
	ft_nsites = n > 0 ? (size_t)n : 0;
	ft_info = __real_calloc(ft_nsites ? ft_nsites : 1, sizeof(*ft_info));
	for (size_t i = 0; i < ft_nsites; i++)
		CHECK_EQ(stitch_ftrace_get_site_info(i, &ft_info[i]), 0);
#endif

	pthread_t t[2];
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&t[i], NULL, reader, NULL), 0);

	CHECK_EQ(sweep("static key enable (256 sites)", key_enable, key_disable, key_state), 0);
	CHECK_EQ(sites_on(), NSITES);
	CHECK_EQ(sweep("static key disable (256 sites)", key_disable, key_enable, key_state), 0);
	CHECK_EQ(sites_on(), 0);
	CHECK_EQ(sweep("static call update", sc_flip, sc_flip, sc_state), 0);
	CHECK(stitch_static_call_query(sc) == (void *)f_b, "static call updated");
	for (int i = 0; i < NCALLERS; i++)
		CHECK_EQ(callers[i](i), i + 2);
	CHECK_EQ(sweep("static call update back", sc_flip, sc_flip, sc_state), 0);
	CHECK_EQ(callers[0](0), 1);
#ifdef STITCH_TEST_FTRACE
	CHECK_EQ(sweep("ftrace register", ft_register, ft_unregister, ft_state), 0);
	CHECK_EQ(ft_state() % 100, 10);
	CHECK_EQ(sweep("ftrace set_filter", ft_set_filter, ft_set_filter, ft_state), 0);
	CHECK_EQ(ft_state() % 100, 1);
	CHECK_EQ(sweep("ftrace unregister", ft_unregister, ft_register, ft_state), 0);
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), -STITCH_EINVAL);
	CHECK_EQ(ft_state() % 100, 0);
#endif

	atomic_store(&stop, true);
	for (int i = 0; i < 2; i++)
		pthread_join(t[i], NULL);
	printf("reader passes: %ld, wrong results: %ld\n", atomic_load(&calls), atomic_load(&wrong));
	CHECK_EQ(atomic_load(&wrong), 0);
	CHECK(atomic_load(&calls) > 0, "readers ran");
	return check_summary("test_alloc_fail");
}
