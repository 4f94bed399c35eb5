/* SPDX-License-Identifier: MIT */
/*
 * fork() and exec() around patching (issue 8, fault matrix).
 *
 *  1. after: a key enabled in the parent before fork() is enabled in the
 *     child (flag and code); the child, with threads calling through the
 *     sites, toggles a key with 64 sites and retargets a static call on its
 *     own, and leaves them changed; the parent's code and state are as they
 *     were (the child's writes must reach the child's memory only).
 *  2. during: a helper thread forks while the main thread is at step k of a
 *     patch operation (the batch step hook), for every step k of a key
 *     toggle and of a static call update.  The child must find consistent
 *     code (every site agrees with the key; the static call calls what it
 *     reports) and must then patch successfully on its own.  A child that
 *     hangs (e.g. on an update lock held by a thread that does not exist in
 *     it) is killed by alarm() and fails the test.
 *  3. exec: a child execs this program again (--exec-child) from a patched,
 *     multi-threaded parent; the new image starts from its own defaults and
 *     patches normally.
 *  4. tracing (where the build has function tracing): the parent forks while
 *     one thread is held inside a tracer callback (so inside the read-side
 *     section of the per-site ops sets) and two more call traced functions
 *     in a loop.  The child must be able to change the filter and to
 *     unregister - each waits for a grace period, which must not wait for
 *     the parent's threads, absent from the child - and callbacks must
 *     follow its changes exactly; the parent then does the same.
 *  5. no handlers: a child made by _Fork(), which runs no fork handlers,
 *     enables a key: the child's code changes, the parent's does not (the
 *     child kept the parent's /proc/self/mem descriptor, and its update
 *     rewrote the parent's code, until 2026-11-28).
 * Usage: test_fork [--emulated | --exec-child]
 *   --emulated: under qemu-user, whose 7.2 aborts when the child of a
 *   multi-threaded guest creates a thread (its per-vCPU plugin table still
 *   holds the parent's vCPUs): children patch without reader threads.
 *   STITCH_TEST_EMULATOR: the command that runs a foreign binary, for exec.
 */
#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <string.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <stitch/static_call.h>
#include <stitch/static_key.h>
#ifdef STITCH_TEST_FTRACE
#include <stitch/ftrace.h>

#include "ftrace/funcs.h"
#endif

#include "common/check.h"
#include "common/repeat.h"
#include "core/internal.h"

#define NOINLINE __attribute__((noinline))

STITCH_DEFINE_STATIC_KEY_FALSE(k_before);
STITCH_DEFINE_STATIC_KEY_FALSE(k_many);

static NOINLINE int before_site(void) { return stitch_static_branch_unlikely(&k_before) ? 7 : 3; }
STITCH_DEFINE_STATIC_KEY_FALSE(k_nohandlers);
static NOINLINE int nohandlers_site(void) { return stitch_static_branch_unlikely(&k_nohandlers) ? 1 : 0; }

#define MANY_SITE(x, i) static NOINLINE int many_##i(void) { return stitch_static_branch_unlikely(&x) ? 1 : 0; }
REPEAT_64(MANY_SITE, k_many, 0)
#define MANY_PTR(x, i) many_##i,
static int (*const many[])(void) = { REPEAT_64(MANY_PTR, x, 0) };
#define NMANY (int)(sizeof(many) / sizeof(many[0]))

/* Number of the 64 sites that jump. */
static int many_on(void)
{
	int n = 0;
	for (int i = 0; i < NMANY; i++)
		n += many[i]();
	return n;
}

static NOINLINE int f_a(int x) { return x + 1; }
static NOINLINE int f_b(int x) { return x + 2; }
STITCH_DEFINE_STATIC_CALL(sc, f_a);

static bool child_threads = true; /* false with --emulated */

/* How long a child may take before it counts as hung (seconds). */
#define CHILD_ALARM 60

/* ---- readers: threads calling through the sites ---------------------------- */

static atomic_bool readers_stop;
static atomic_long reader_bad;
static atomic_int readers_running; /* readers past their first round */

/*
 * Wait until `*running` threads have made one round of their loop.  A fork
 * must not catch a thread still starting up: its start-up allocates, and an
 * allocator without fork handlers (ASan's in gcc 12: google/sanitizers#774,
 * fixed in LLVM 18 by llvm-project#75290) then leaves its lock held in the
 * child, whose own threads hang on it.  Once in their loops these threads
 * allocate nothing, so every fork below sees them at a site, where the test
 * wants them.
 */
static void wait_running(atomic_int *running, int want)
{
	while (atomic_load(running) < want)
		sched_yield();
}

static void *reader(void *arg)
{
	(void)arg;
	bool first = true;
	while (!atomic_load(&readers_stop)) {
		int n = many_on();
		int r = stitch_static_call(sc)(10);
		/* During an update each site is old or new; nothing else. */
		if (n < 0 || n > NMANY || (r != 11 && r != 12))
			atomic_fetch_add(&reader_bad, 1);
		if (first)
			atomic_fetch_add(&readers_running, 1), first = false;
	}
	return NULL;
}

struct readers {
	pthread_t t[2];
	int n;
};

static void readers_start(struct readers *r)
{
	atomic_store(&readers_stop, false);
	atomic_store(&readers_running, 0);
	r->n = 0;
	for (int i = 0; i < 2; i++)
		if (pthread_create(&r->t[i], NULL, reader, NULL) == 0)
			r->n++;
	CHECK_EQ(r->n, 2);
	wait_running(&readers_running, r->n);
}

static void readers_stop_join(struct readers *r)
{
	atomic_store(&readers_stop, true);
	for (int i = 0; i < r->n; i++)
		pthread_join(r->t[i], NULL);
	r->n = 0;
}

/*
 * What a child does on its own: toggle k_many and retarget sc, with two
 * threads calling through them, and leave both changed from `start_on`.
 * Returns the child's exit status.
 */
static int child_patches(bool start_on)
{
	struct readers rd = { .n = 0 };
	if (child_threads)
		readers_start(&rd);
	for (int round = 0; round < 20; round++) {
		CHECK_EQ(stitch_static_key_enable(&k_many), 0);
		CHECK_EQ(many_on(), NMANY);
		CHECK_EQ(stitch_static_call_update(sc, f_b), 0);
		CHECK_EQ(stitch_static_call(sc)(10), 12);
		CHECK_EQ(stitch_static_key_disable(&k_many), 0);
		CHECK_EQ(many_on(), 0);
		CHECK_EQ(stitch_static_call_update(sc, f_a), 0);
		CHECK_EQ(stitch_static_call(sc)(10), 11);
	}
	/* leave the opposite of what the parent has */
	CHECK_EQ(start_on ? stitch_static_key_disable(&k_many) : stitch_static_key_enable(&k_many), 0);
	CHECK_EQ(stitch_static_call_update(sc, stitch_static_call_query(sc) == f_a ? f_b : f_a), 0);
	readers_stop_join(&rd);
	CHECK_EQ(atomic_load(&reader_bad), 0);
	if (check_failed)
		fprintf(stderr, "child %d: last error: %s\n", (int)getpid(), stitch_last_error());
	return check_failed ? 1 : 0;
}

/* Wait for a child; true if it exited with status 0. */
static bool child_ok(pid_t pid, const char *what)
{
	int status;
	pid_t w;
	while ((w = waitpid(pid, &status, 0)) < 0 && errno == EINTR)
		;
	if (w != pid) {
		fprintf(stderr, "%s: waitpid: %s\n", what, strerror(errno));
		return false;
	}
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "%s: child killed by signal %d%s\n", what, WTERMSIG(status),
			WTERMSIG(status) == SIGALRM ? " (hung)" : "");
		return false;
	}
	return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

/* The parent's view must be exactly what it set up. */
static void parent_unchanged(bool many_enabled, void *sc_target, const char *when)
{
	CHECK(many_on() == (many_enabled ? NMANY : 0), "%s: parent's 64 sites: %d jump", when, many_on());
	CHECK(stitch_static_key_enabled(&k_many) == many_enabled, "%s: parent's key", when);
	CHECK(stitch_static_call_query(sc) == sc_target, "%s: parent's static call target", when);
	int want = sc_target == (void *)f_a ? 11 : 12;
	CHECK(stitch_static_call(sc)(10) == want, "%s: parent's static call", when);
}

/* ---- 1. fork after patching -------------------------------------------------- */

static void test_after(void)
{
	CHECK_EQ(stitch_static_key_enable(&k_before), 0);
	CHECK_EQ(before_site(), 7);
	struct readers rd;
	readers_start(&rd); /* the parent is multi-threaded when it forks */
	pid_t pid = fork();
	if (pid == 0) {
		alarm(CHILD_ALARM);
		CHECK_EQ(before_site(), 7);
		CHECK(stitch_static_key_enabled(&k_before), "child inherits the enabled key");
		CHECK_EQ(many_on(), 0);
		_exit(child_patches(false));
	}
	CHECK(pid > 0, "fork: %s", strerror(errno));
	CHECK(pid > 0 && child_ok(pid, "fork after patching"), "child patched on its own");
	readers_stop_join(&rd);
	CHECK_EQ(atomic_load(&reader_bad), 0);
	parent_unchanged(false, (void *)f_a, "after the child patched");
	CHECK_EQ(before_site(), 7);
	/* and the parent still patches */
	CHECK_EQ(stitch_static_key_disable(&k_before), 0);
	CHECK_EQ(before_site(), 3);
}

/* ---- 2. fork during a patch operation ---------------------------------------- */

/*
 * The forker thread forks on request.  The step hook (main thread, update
 * lock held) asks for a fork at step `fork_at`, waits until the forker is
 * inside fork() (its atfork prepare handler, registered after the
 * library's, runs first and says so), and then until either the fork has
 * happened (the atfork parent handler says so: the child is a snapshot
 * taken at step k) or the forker sleeps (blocked inside fork(), which is
 * what the library's prepare handler does until the operation ends).
 * Without the library's handler the fork happens at step k exactly.
 */
static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static pid_t forker_tid;
static bool fork_requested, forker_in_fork, forker_forked, fork_done, forker_quit;
static bool fork_child_ok;
static int fork_at = -1;       /* step to fork at; -1: none */
static int steps_seen;         /* highest step of the last operation */
static int op_kind;            /* 0 key toggle, 1 static call update: what the child checks */

/* The state letter of a thread of this process (R, S, D...), '?' if unknown. */
static char thread_state(pid_t tid)
{
	char path[64], buf[512];
	snprintf(path, sizeof path, "/proc/self/task/%d/stat", (int)tid);
	FILE *f = fopen(path, "r");
	if (!f)
		return '?';
	size_t n = fread(buf, 1, sizeof buf - 1, f);
	fclose(f);
	buf[n] = 0;
	const char *p = strrchr(buf, ')'); /* after "tid (comm)" */
	return p && p[1] == ' ' ? p[2] : '?';
}

static void step_hook(unsigned step)
{
	if ((int)step > steps_seen)
		steps_seen = (int)step;
	if ((int)step != fork_at)
		return;
	fork_at = -1;
	pthread_mutex_lock(&mu);
	fork_requested = true;
	pthread_cond_broadcast(&cv);
	while (!forker_in_fork)
		pthread_cond_wait(&cv, &mu);
	/* The forker holds no lock of ours from here on: a sleep is inside fork(). */
	while (!forker_forked && thread_state(forker_tid) != 'S') {
		pthread_mutex_unlock(&mu);
		sched_yield();
		pthread_mutex_lock(&mu);
	}
	pthread_mutex_unlock(&mu);
}

static void atfork_parent(void)
{
	if ((pid_t)syscall(SYS_gettid) != forker_tid)
		return;
	pthread_mutex_lock(&mu);
	forker_forked = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

static void atfork_prepare(void)
{
	if ((pid_t)syscall(SYS_gettid) != forker_tid)
		return;
	pthread_mutex_lock(&mu);
	forker_in_fork = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
}

/* In the child of a fork taken during an operation. */
static int child_during(void)
{
	alarm(CHILD_ALARM);
	/* Consistent code: all 64 sites agree with the key, the call with its target. */
	int n = many_on();
	bool on = stitch_static_key_enabled(&k_many);
	CHECK(n == (on ? NMANY : 0), "child: %d of 64 sites jump, key %s", n, on ? "on" : "off");
	void *t = stitch_static_call_query(sc);
	CHECK(t == (void *)f_a || t == (void *)f_b, "child: static call target %p", t);
	CHECK_EQ(stitch_static_call(sc)(10), t == (void *)f_a ? 11 : 12);
	return child_patches(on);
}

static void *forker(void *arg)
{
	(void)arg;
	pthread_mutex_lock(&mu);
	forker_tid = (pid_t)syscall(SYS_gettid);
	pthread_cond_broadcast(&cv);
	for (;;) {
		while (!fork_requested && !forker_quit)
			pthread_cond_wait(&cv, &mu);
		if (forker_quit)
			break;
		fork_requested = false;
		pthread_mutex_unlock(&mu);
		pid_t pid = fork();
		if (pid == 0)
			_exit(child_during());
		bool ok = pid > 0 && child_ok(pid, op_kind ? "fork during a static call update" : "fork during a key toggle");
		pthread_mutex_lock(&mu);
		forker_in_fork = forker_forked = false;
		fork_child_ok = ok;
		fork_done = true;
		pthread_cond_broadcast(&cv);
	}
	pthread_mutex_unlock(&mu);
	return NULL;
}

/* One operation of kind `kind`, flipping the current state. */
static int flip(int kind)
{
	if (kind == 0)
		return stitch_static_key_enabled(&k_many) ? stitch_static_key_disable(&k_many)
							  : stitch_static_key_enable(&k_many);
	return stitch_static_call_update(sc, stitch_static_call_query(sc) == f_a ? f_b : f_a);
}

static void test_during(void)
{
	pthread_t ft;
	CHECK_EQ(pthread_create(&ft, NULL, forker, NULL), 0);
	pthread_mutex_lock(&mu);
	while (!forker_tid)
		pthread_cond_wait(&cv, &mu);
	pthread_mutex_unlock(&mu);
	CHECK_EQ(pthread_atfork(atfork_prepare, atfork_parent, NULL), 0);
	stitch_batch_step_hook = step_hook;

	for (int kind = 0; kind < 2; kind++) {
		op_kind = kind;
		/* how many steps does this operation have here? */
		steps_seen = -1;
		CHECK_EQ(flip(kind), 0);
		int nsteps = steps_seen + 1;
		printf("%s: %d protocol steps (0 = before the first write)\n", kind ? "static call update" : "key toggle",
		       nsteps);
		if (kind == 1 && nsteps == 0)
			printf("  (this architecture's static call update writes no instruction through a batch)\n");
		for (int k = 0; k < nsteps; k++) {
			bool on = stitch_static_key_enabled(&k_many);
			void *t = stitch_static_call_query(sc);
			pthread_mutex_lock(&mu);
			fork_done = false;
			pthread_mutex_unlock(&mu);
			fork_at = k;
			steps_seen = -1;
			CHECK_EQ(flip(kind), 0);
			CHECK(fork_at == -1, "step %d was reached", k);
			pthread_mutex_lock(&mu);
			while (!fork_done)
				pthread_cond_wait(&cv, &mu);
			bool ok = fork_child_ok;
			pthread_mutex_unlock(&mu);
			CHECK(ok, "%s, fork at step %d: the child found consistent code and patched on its own",
			      kind ? "static call update" : "key toggle", k);
			/* the parent's operation completed as if nothing had happened */
			if (kind == 0)
				parent_unchanged(!on, t, "after a fork during a key toggle");
			else
				parent_unchanged(on, t == (void *)f_a ? (void *)f_b : (void *)f_a,
						 "after a fork during a static call update");
		}
	}
	stitch_batch_step_hook = NULL;
	pthread_mutex_lock(&mu);
	forker_quit = true;
	pthread_cond_broadcast(&cv);
	pthread_mutex_unlock(&mu);
	pthread_join(ft, NULL);
	/* back to the state the next part expects */
	if (stitch_static_key_enabled(&k_many))
		CHECK_EQ(stitch_static_key_disable(&k_many), 0);
	CHECK_EQ(stitch_static_call_update(sc, f_a), 0);
}

/* ---- 3. exec after patching -------------------------------------------------- */

static int exec_child(void)
{
	/* A new image: its own defaults, whatever the parent had patched. */
	CHECK_EQ(before_site(), 3);
	CHECK_EQ(many_on(), 0);
	CHECK_EQ(stitch_static_call(sc)(10), 11);
	CHECK_EQ(stitch_init(), 0);
	return child_patches(false) || check_summary("test_fork --exec-child") != EXIT_SUCCESS;
}

static void test_exec(void)
{
	CHECK_EQ(stitch_static_key_enable(&k_before), 0);
	CHECK_EQ(stitch_static_key_enable(&k_many), 0);
	CHECK_EQ(stitch_static_call_update(sc, f_b), 0);
	struct readers rd;
	readers_start(&rd);
	/* Under qemu-user the foreign binary is run through the emulator again. */
	char *argv[16];
	int argc = 0;
	char emu[256] = "";
	const char *e = getenv("STITCH_TEST_EMULATOR");
	if (e && *e) {
		snprintf(emu, sizeof emu, "%s", e);
		for (char *save = NULL, *tok = strtok_r(emu, " ;", &save); tok && argc < 12;
		     tok = strtok_r(NULL, " ;", &save))
			argv[argc++] = tok;
	}
	char self[4096];
	ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
	CHECK(n > 0, "readlink /proc/self/exe: %s", strerror(errno));
	if (n <= 0)
		return;
	self[n] = 0;
	argv[argc++] = self;
	argv[argc++] = (char *)"--exec-child";
	argv[argc] = NULL;
	pid_t pid = fork();
	if (pid == 0) {
		execvp(argv[0], argv);
		fprintf(stderr, "execvp %s: %s\n", argv[0], strerror(errno));
		_exit(127);
	}
	CHECK(pid > 0 && child_ok(pid, "exec after patching"), "the exec'd program ran and patched normally");
	readers_stop_join(&rd);
	parent_unchanged(true, (void *)f_b, "after the exec'd child ran");
	CHECK_EQ(before_site(), 7);
}

/* ---- 4. fork while tracing ---------------------------------------------------- */

#ifdef STITCH_TEST_FTRACE
static atomic_long ft_one, ft_two, ft_other; /* callbacks, by function */
static atomic_bool ft_stop;
static atomic_int ft_hold_armed; /* int: an atomic_bool exchange needs libatomic on RISC-V */
static __thread bool ft_holder; /* the thread that is held in its callback */
static pthread_mutex_t ft_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t ft_cv = PTHREAD_COND_INITIALIZER;
static bool ft_held, ft_release;
static atomic_int ft_callers_running; /* ft_caller threads past their first round */

static void ft_cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)parent, (void)ops, (void)regs;
	if (ip == (uintptr_t)parse_one)
		atomic_fetch_add(&ft_one, 1);
	else if (ip == (uintptr_t)parse_two)
		atomic_fetch_add(&ft_two, 1);
	else
		atomic_fetch_add(&ft_other, 1);
	/* The holder's first callback once armed stays here (inside the
	 * library's read-side section) until the parent has forked. */
	if (ft_holder && atomic_exchange(&ft_hold_armed, 0)) {
		pthread_mutex_lock(&ft_mu);
		ft_held = true;
		pthread_cond_broadcast(&ft_cv);
		while (!ft_release)
			pthread_cond_wait(&ft_cv, &ft_mu);
		pthread_mutex_unlock(&ft_mu);
	}
}

static struct stitch_ftrace_ops ft_ops = { .func = ft_cb };

static void *ft_holder_thread(void *arg)
{
	(void)arg;
	ft_holder = true;
	for (int i = 0; !atomic_load(&ft_stop); i = (i + 1) & 0xffff) /* no overflow in a long run (UBSan) */
		(void)parse_one(i);
	return NULL;
}

static void *ft_caller(void *arg)
{
	(void)arg;
	bool first = true;
	for (int i = 0; !atomic_load(&ft_stop); i = (i + 1) & 0xffff) { /* tf_* compute v * 3: no overflow (UBSan) */
		(void)tf_table[i % TF_COUNT](i);
		if (first)
			atomic_fetch_add(&ft_callers_running, 1), first = false;
	}
	return NULL;
}

/*
 * Change the filter to "parse_two", then unregister, checking that the
 * callbacks follow exactly (from this thread's own calls).  `callers`:
 * threads calling tf_* meanwhile (the child's, if it may have threads).
 */
static void ft_change_and_stop(const char *who, int callers)
{
	pthread_t t[2];
	int n = 0;
	atomic_store(&ft_stop, false);
	for (int i = 0; i < callers && i < 2; i++)
		if (pthread_create(&t[n], NULL, ft_caller, NULL) == 0)
			n++;
	CHECK_EQ(n, callers);
	long one = atomic_load(&ft_one), two = atomic_load(&ft_two);
	CHECK_EQ(parse_one(1), 2);
	CHECK(atomic_load(&ft_one) == one + 1, "%s: parse_one traced before the change", who);
	for (int round = 0; round < 3; round++) {
		int err = stitch_ftrace_set_filter(&ft_ops, "parse_two tf_b*");
		CHECK(err == 0, "%s: set_filter: %s", who, stitch_last_error());
		one = atomic_load(&ft_one), two = atomic_load(&ft_two);
		(void)parse_one(1), (void)parse_two(1);
		CHECK(atomic_load(&ft_one) == one && atomic_load(&ft_two) == two + 1,
		      "%s: after set_filter(parse_two): parse_one %ld parse_two %ld calls traced (want 0, 1)", who,
		      atomic_load(&ft_one) - one, atomic_load(&ft_two) - two);
		err = stitch_ftrace_set_filter(&ft_ops, "parse_one tf_a*");
		CHECK(err == 0, "%s: set_filter: %s", who, stitch_last_error());
		one = atomic_load(&ft_one), two = atomic_load(&ft_two);
		(void)parse_one(1), (void)parse_two(1);
		CHECK(atomic_load(&ft_one) == one + 1 && atomic_load(&ft_two) == two,
		      "%s: after set_filter(parse_one): parse_one %ld parse_two %ld calls traced (want 1, 0)", who,
		      atomic_load(&ft_one) - one, atomic_load(&ft_two) - two);
	}
	int err = stitch_ftrace_unregister(&ft_ops);
	CHECK(err == 0, "%s: unregister: %s", who, stitch_last_error());
	atomic_store(&ft_stop, true);
	for (int i = 0; i < n; i++)
		pthread_join(t[i], NULL);
	long all = atomic_load(&ft_one) + atomic_load(&ft_two) + atomic_load(&ft_other);
	(void)parse_one(1), (void)parse_two(1), (void)tf_table[0](1);
	CHECK(atomic_load(&ft_one) + atomic_load(&ft_two) + atomic_load(&ft_other) == all,
	      "%s: no callback after unregister", who);
}

static void test_tracing(void)
{
	int err = stitch_ftrace_register(&ft_ops, "parse_one tf_a*");
	CHECK(err == 0, "register: %s", stitch_last_error());
	if (err)
		return;
	pthread_t holder, callers[2];
	atomic_store(&ft_stop, false);
	atomic_store(&ft_hold_armed, 1);
	atomic_store(&ft_callers_running, 0);
	CHECK_EQ(pthread_create(&holder, NULL, ft_holder_thread, NULL), 0);
	for (int i = 0; i < 2; i++)
		CHECK_EQ(pthread_create(&callers[i], NULL, ft_caller, NULL), 0);
	pthread_mutex_lock(&ft_mu);
	while (!ft_held)
		pthread_cond_wait(&ft_cv, &ft_mu);
	pthread_mutex_unlock(&ft_mu);
	wait_running(&ft_callers_running, 2); /* in their loops, not starting up (see wait_running) */
	/* Under qemu-user (--emulated) the child's first enables would stop
	 * the world beside the helper thread qemu creates anew in a fork
	 * child: its tid is not the one the library noted as the emulator's
	 * at start-up, it blocks every signal, and it wakes now and then, so
	 * such a stop fails at random (-STITCH_EQUIESCE).  There the sites the
	 * child switches are prepared first: its switches are then CMODX word
	 * stores, which stop nobody. */
	if (!child_threads)
		CHECK(stitch_ftrace_prepare("parse_two tf_b*") == 0, "prepare: %s", stitch_last_error());
	/* The holder is inside a callback (a read-side section) right now. */
	pid_t pid = fork();
	if (pid == 0) {
		alarm(CHILD_ALARM);
		check_failed = 0; /* the child's own checks only */
		ft_change_and_stop("child", child_threads ? 2 : 0);
		_exit(check_failed ? 1 : 0);
	}
	CHECK(pid > 0, "fork: %s", strerror(errno));
	pthread_mutex_lock(&ft_mu);
	ft_release = true;
	pthread_cond_broadcast(&ft_cv);
	pthread_mutex_unlock(&ft_mu);
	CHECK(pid > 0 && child_ok(pid, "fork while tracing"),
	      "the child of a fork taken while a thread was in a tracer callback changed tracing and stopped it");
	atomic_store(&ft_stop, true);
	pthread_join(holder, NULL);
	for (int i = 0; i < 2; i++)
		pthread_join(callers[i], NULL);
	CHECK(atomic_load(&ft_other) > 0, "the callers were traced");
	ft_change_and_stop("parent", 0);
}
#endif

static void test_no_handlers(void)
{
	/* the backend used once in this process first, as a program would have */
	CHECK_EQ(stitch_static_key_enable(&k_nohandlers), 0);
	CHECK_EQ(stitch_static_key_disable(&k_nohandlers), 0);
	pid_t pid = _Fork();
	if (pid == 0) {
		check_failed = 0;
		CHECK_EQ(stitch_static_key_enable(&k_nohandlers), 0);
		CHECK(nohandlers_site() == 1, "_Fork() child: its own site did not change");
		_exit(check_failed ? 1 : 0);
	}
	CHECK(pid > 0, "_Fork: %s", strerror(errno));
	int status = 0;
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid && WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the _Fork() child's update failed (status %#x)", status);
	CHECK(nohandlers_site() == 0, "the _Fork() child's update changed the parent's code");
	CHECK(!stitch_static_key_enabled(&k_nohandlers), "the parent's key changed");
	printf("no handlers: done\n");
}

int main(int argc, char **argv)
{
	if (argc > 1 && !strcmp(argv[1], "--exec-child"))
		return exec_child();
	if (argc > 1 && !strcmp(argv[1], "--emulated"))
		child_threads = false;
	setvbuf(stdout, NULL, _IOLBF, 0); /* children must not repeat buffered output */
	CHECK_EQ(stitch_init(), 0);
	printf("write backend: %s\n", stitch_backend_name());
	test_after();
	test_during();
	test_exec();
#ifdef STITCH_TEST_FTRACE
	test_tracing();
#endif
	test_no_handlers();
	return check_summary("test_fork");
}
