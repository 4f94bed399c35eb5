/* SPDX-License-Identifier: MIT */
/*
 * Quiescence: where is every other thread of the process right now?
 *
 * User space has no synchronize_rcu_tasks().  We ask each thread instead:
 * tgkill() it with a dedicated signal; its handler reads the interrupted PC
 * from the ucontext, lets the caller's fixup rewrite it (seed 004's "replay"),
 * and reports it.  A thread that ran the handler was stopped at an
 * instruction boundary, so its report is an exact position at an instant
 * after the call began.  A thread reported inside one of the ranges is asked
 * again until it has left them.
 *
 * Edge cases, and what we do:
 *  - a thread exits before answering: tgkill(tid, 0) says ESRCH; it counts
 *    as outside (it will never execute anything again);
 *  - a thread is created after we listed /proc/self/task: it starts in the
 *    thread library, outside any site, and sees code synced before the call;
 *  - a thread blocks the signal: if /proc/self/task/TID/syscall shows it
 *    sleeping in a system call, its PC is at a system call instruction, which
 *    no patch site contains, so it counts as outside; otherwise we wait until
 *    STITCH_QUIESCE_TIMEOUT_MS and fail with -STITCH_EQUIESCE naming it.
 *    (This is also what makes helper threads of qemu-user, which block every
 *    signal and sleep in futex(), harmless.)
 *  - the handler is installed with SA_RESTART, so an interrupted system call
 *    restarts where the kernel allows; calls that never restart (see
 *    signal(7): nanosleep, epoll_wait, ...) return EINTR as with any signal.
 *
 * Stop the world (stitch_stop_world) is the same request with `park` set:
 * each handler reports and then waits on `world_epoch` until resume, so
 * every other thread sits at an instruction boundary inside our handler
 * while the caller rewrites code that must not be executed concurrently
 * (seed 000's non-branch writes).  The thread list is read again until it
 * brings no new thread.  A thread that blocks the signal and sleeps in a
 * system call cannot be parked; it is accepted, and resume reports an error
 * if its context-switch count shows it ran while the world was stopped.
 *
 * Handler and writer share `request` (published with release/acquire) and
 * `handlers_running`: the writer unpublishes the request and then waits for
 * the count to drop to zero before freeing it, so a late handler never
 * touches freed memory.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/futex.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "arch/arch.h"
#include "core/internal.h"
#include "core/patch_log.h"

enum slot_state { SLOT_PENDING, SLOT_REPORTED, SLOT_DONE };

struct slot {
	pid_t tid;
	_Atomic int state;
	uintptr_t pc;
};

struct request {
	struct slot *slots;
	size_t count;
	stitch_pc_fixup_fn fixup;
	void *arg;
	bool park; /* stop the world: stay in the handler until the epoch moves on */
	const struct stitch_range *ranges; /* what the requester waits for threads to leave */
	size_t nranges;
	bool sorted; /* ranges ascending and disjoint: looked up by bisection */
};

static bool in_ranges(uintptr_t pc, const struct request *req);

static int quiesce_signal;
static long timeout_ms = 2000;
static _Atomic(struct request *) published;
static _Atomic int handlers_running;
static _Atomic int reports; /* futex word: bumped by every report */
/* Stop-the-world epoch, a futex word: odd while the world is stopped. */
static _Atomic int world_epoch;

static pid_t gettid_raw(void)
{
	return (pid_t)syscall(SYS_gettid);
}

static void quiesce_handler(int sig, siginfo_t *info, void *context)
{
	(void)sig;
	(void)info;
	int saved_errno = errno;
	bool park = false;
	atomic_fetch_add(&handlers_running, 1);
	struct request *req = atomic_load(&published);
	if (req) {
		pid_t self = gettid_raw();
		for (size_t i = 0; i < req->count; i++) {
			struct slot *s = &req->slots[i];
			if (s->tid != self || atomic_load_explicit(&s->state, memory_order_acquire) != SLOT_PENDING)
				continue;
			ucontext_t *uc = context;
			uintptr_t pc = arch_ucontext_pc(uc);
			if (req->fixup && req->fixup(&pc, req->arg)) {
				arch_ucontext_set_pc(uc, pc);
				stitch_count(quiesce_fixups, 1);
			}
			/* The thread also goes back, one day, to the contexts its
			 * running signal handlers interrupted (signals.c): they get
			 * the fixup too, and one inside a range is what we report. */
			ucontext_t *outer[8];
			size_t nouter = stitch_nested_contexts(outer, 8);
			for (size_t k = 0; k < nouter; k++) {
				uintptr_t opc = arch_ucontext_pc(outer[k]);
				if (req->fixup && req->fixup(&opc, req->arg)) {
					stitch_nested_set_pc(outer[k], opc);
					stitch_count(quiesce_fixups, 1);
				}
				if (in_ranges(opc, req))
					pc = opc;
			}
			park = req->park;
			s->pc = pc;
			atomic_store_explicit(&s->state, SLOT_REPORTED, memory_order_release);
			atomic_fetch_add(&reports, 1);
			syscall(SYS_futex, &reports, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
			break;
		}
	}
	/* The request may be freed once we stop counting as running; a parked
	 * thread only needs the epoch, which is static. */
	int epoch = atomic_load(&world_epoch);
	atomic_fetch_sub(&handlers_running, 1);
	while (park && (epoch & 1) && atomic_load(&world_epoch) == epoch)
		syscall(SYS_futex, &world_epoch, FUTEX_WAIT_PRIVATE, epoch, NULL, NULL, 0);
	errno = saved_errno;
}

/*
 * In a child of fork() (with the update lock taken, so no request is in
 * progress): a handler that was running in another parent thread at the
 * moment of the fork left handlers_running counted, and that thread does
 * not exist here; nothing else of this file's state belongs to threads.
 */
void stitch_quiesce_after_fork_child(void)
{
	atomic_store(&published, NULL);
	atomic_store(&handlers_running, 0);
	atomic_store(&reports, 0);
}

int stitch_quiesce_init(void)
{
	quiesce_signal = SIGRTMIN + 5;
	const char *env = getenv("STITCH_QUIESCE_SIGNAL");
	if (env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end || v < 1 || v > SIGRTMAX || v == SIGKILL || v == SIGSTOP)
			return stitch_fail(STITCH_EINVAL, "STITCH_QUIESCE_SIGNAL=%s is not a usable signal number",
					   env);
		quiesce_signal = (int)v;
	}
	env = getenv("STITCH_QUIESCE_TIMEOUT_MS");
	if (env && *env) {
		char *end;
		long v = strtol(env, &end, 10);
		if (*end || v < 1)
			return stitch_fail(STITCH_EINVAL, "STITCH_QUIESCE_TIMEOUT_MS=%s is not a positive number", env);
		timeout_ms = v;
	}
	struct sigaction old, sa;
	if (stitch_sigaction_raw(quiesce_signal, NULL, &old) != 0)
		return stitch_fail_errno(STITCH_ESYS, "sigaction(%d)", quiesce_signal);
	if ((old.sa_flags & SA_SIGINFO) ? old.sa_sigaction != NULL
					: (old.sa_handler != SIG_DFL && old.sa_handler != SIG_IGN))
		return stitch_fail(STITCH_EINVAL,
				   "signal %d already has a handler; choose another with STITCH_QUIESCE_SIGNAL",
				   quiesce_signal);
	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = quiesce_handler;
	sa.sa_flags = SA_SIGINFO | SA_RESTART;
	sigemptyset(&sa.sa_mask);
	if (stitch_sigaction_raw(quiesce_signal, &sa, NULL) != 0)
		return stitch_fail_errno(STITCH_ESYS, "sigaction(%d)", quiesce_signal);
	return 0;
}

/* Async-signal-safe.  A batch of 100 000 sites waits for as many ranges
 * (one per site), so sorted ones are bisected, in the handler too. */
static bool in_ranges(uintptr_t pc, const struct request *req)
{
	const struct stitch_range *r = req->ranges;
	size_t n = req->nranges;
	if (!req->sorted) {
		for (size_t i = 0; i < n; i++)
			if (pc >= r[i].start && pc < r[i].end)
				return true;
		return false;
	}
	size_t lo = 0, hi = n; /* the first range that ends after pc */
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (r[mid].end <= pc)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < n && pc >= r[lo].start;
}

static bool sorted_disjoint(const struct stitch_range *r, size_t n)
{
	for (size_t i = 1; i < n; i++)
		if (r[i].start < r[i - 1].end)
			return false;
	return true;
}

static bool contains(const pid_t *v, size_t n, pid_t tid)
{
	for (size_t i = 0; i < n; i++)
		if (v[i] == tid)
			return true;
	return false;
}

/*
 * Under qemu-user the process also holds the emulator's own threads (its
 * RCU thread, created before the guest's first instruction), which block
 * every signal, never run guest code, and wake when they like: a stopped
 * world would report them as "woke while stopped".  When the write
 * backend's self-test found an emulator, the threads that already block
 * the quiescence signal at initialisation are taken for the emulator's
 * and left out.  Natively nothing is left out.
 */
#define MAX_EMULATOR_THREADS 8
static pid_t emulator_tids[MAX_EMULATOR_THREADS];
static size_t emulator_count;

static bool blocks_signal(pid_t tid);

/* All thread ids of the process except the caller's, those in `skip` and the emulator's. */
static int list_threads(struct slot **out, size_t *count, const pid_t *skip, size_t nskip)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return stitch_fail_errno(STITCH_ESYS, "cannot list /proc/self/task");
	pid_t self = gettid_raw();
	struct slot *v = NULL;
	size_t n = 0, cap = 0;
	struct dirent *e;
	while ((e = readdir(d))) {
		char *end;
		long tid = strtol(e->d_name, &end, 10);
		if (*end || tid <= 0 || tid == self || contains(skip, nskip, (pid_t)tid) ||
		    contains(emulator_tids, emulator_count, (pid_t)tid))
			continue;
		if (n == cap) {
			cap = cap ? 2 * cap : 16;
			struct slot *nv = realloc(v, cap * sizeof(*v));
			if (!nv) {
				free(v);
				closedir(d);
				return stitch_fail(STITCH_ENOMEM, "out of memory listing threads");
			}
			v = nv;
		}
		v[n].tid = (pid_t)tid;
		atomic_init(&v[n].state, SLOT_PENDING);
		v[n].pc = 0;
		n++;
	}
	closedir(d);
	*out = v;
	*count = n;
	return 0;
}

static int read_small_file(const char *path, char *buf, size_t size)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, size - 1);
	close(fd);
	if (n < 0)
		return -1;
	buf[n] = '\0';
	return 0;
}

/* Does the thread block signal `sig`? */
static bool blocks(pid_t tid, int sig)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	if (read_small_file(path, buf, sizeof(buf)) != 0)
		return false;
	const char *p = strstr(buf, "SigBlk:");
	if (!p)
		return false;
	unsigned long long mask = strtoull(p + 7, NULL, 16);
	return (mask >> (sig - 1)) & 1;
}

/* Does the thread block our signal? */
static bool blocks_signal(pid_t tid)
{
	return blocks(tid, quiesce_signal);
}

pid_t stitch_thread_blocking(int sig)
{
	DIR *d = opendir("/proc/self/task");
	if (!d)
		return 0; /* cannot tell: as before this check existed */
	pid_t found = 0;
	struct dirent *e;
	while (!found && (e = readdir(d))) {
		char *end;
		long tid = strtol(e->d_name, &end, 10);
		if (*end || tid <= 0 || contains(emulator_tids, emulator_count, (pid_t)tid))
			continue;
		if (blocks((pid_t)tid, sig))
			found = (pid_t)tid;
	}
	closedir(d);
	return found;
}

/* Is the thread asleep in a system call (so its PC is at a syscall instruction)? */
static bool sleeping_in_syscall(pid_t tid)
{
	char path[64], buf[256];
	snprintf(path, sizeof(path), "/proc/self/task/%d/syscall", (int)tid);
	if (read_small_file(path, buf, sizeof(buf)) != 0)
		return false;
	/* "running" or "-1 sp pc" (not in a syscall) versus "nr args... sp pc". */
	return buf[0] >= '0' && buf[0] <= '9';
}

static int64_t now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void ask(struct slot *s)
{
	atomic_store_explicit(&s->state, SLOT_PENDING, memory_order_release);
	if (syscall(SYS_tgkill, getpid(), s->tid, quiesce_signal) != 0 && errno == ESRCH) {
		atomic_store(&s->state, SLOT_DONE);
	}
}

static void unpublish(void)
{
	atomic_store(&published, NULL);
	/* A handler that loaded the request before it was unpublished has
	 * already incremented the count (it increments before it loads). */
	while (atomic_load(&handlers_running) != 0)
		sched_yield();
}

/* Our handler must still be the one installed for the signal. */
static int check_handler(void)
{
	struct sigaction current;
	if (stitch_sigaction_raw(quiesce_signal, NULL, &current) != 0 || !(current.sa_flags & SA_SIGINFO) ||
	    current.sa_sigaction != quiesce_handler)
		return stitch_fail(STITCH_EQUIESCE,
				   "the program replaced stitch's handler for signal %d; set STITCH_QUIESCE_SIGNAL to "
				   "a signal it does not use",
				   quiesce_signal);
	return 0;
}

/* The deadline passed with thread s unaccounted for: end the request, say why. */
static int give_up(const struct slot *s, const struct request *req)
{
	bool blocked = blocks_signal(s->tid);
	unpublish();
	if (s->pc && in_ranges(s->pc, req))
		return stitch_fail(STITCH_EQUIESCE, "thread %d was still inside a patched range (pc %#lx) after %ld ms",
				   (int)s->tid, (unsigned long)s->pc, timeout_ms);
	if (blocked)
		return stitch_fail(STITCH_EQUIESCE,
				   "thread %d blocks signal %d and is not asleep in a system call; its position is "
				   "unknown after %ld ms",
				   (int)s->tid, quiesce_signal, timeout_ms);
	return stitch_fail(STITCH_EQUIESCE, "thread %d did not answer signal %d within %ld ms", (int)s->tid,
			   quiesce_signal, timeout_ms);
}

/* Threads that could not be signalled but were asleep in a system call. */
struct sleepers {
	pid_t *tid;
	unsigned long long *switches; /* context switches when first seen asleep */
	size_t count;
};

/* Voluntary + involuntary context switches of a thread, or ULLONG_MAX if gone. */
static unsigned long long context_switches(pid_t tid)
{
	char path[64], buf[2048];
	snprintf(path, sizeof(path), "/proc/self/task/%d/status", (int)tid);
	if (read_small_file(path, buf, sizeof(buf)) != 0)
		return ULLONG_MAX;
	unsigned long long total = 0;
	const char *p = strstr(buf, "voluntary_ctxt_switches:");
	if (p)
		total += strtoull(p + 24, NULL, 10);
	p = strstr(buf, "nonvoluntary_ctxt_switches:");
	if (p)
		total += strtoull(p + 27, NULL, 10);
	return total;
}

static int note_sleeper(struct sleepers *sl, pid_t tid)
{
	pid_t *t = realloc(sl->tid, (sl->count + 1) * sizeof(*t));
	if (t)
		sl->tid = t;
	unsigned long long *c = realloc(sl->switches, (sl->count + 1) * sizeof(*c));
	if (c)
		sl->switches = c;
	if (!t || !c)
		return stitch_fail(STITCH_ENOMEM, "out of memory");
	sl->tid[sl->count] = tid;
	sl->switches[sl->count++] = context_switches(tid);
	return 0;
}

/*
 * Publish the request, signal its threads, and wait until every one has
 * reported a PC outside the ranges (asking again those found inside), has
 * exited, or sleeps in a system call with the signal blocked (recorded in
 * `sleepers`).  Unpublishes before returning; the caller frees the slots.
 */
static int run_request(struct request *req, const struct stitch_range *ranges, size_t nranges,
		       struct sleepers *sleepers)
{
	req->ranges = ranges;
	req->nranges = nranges;
	req->sorted = sorted_disjoint(ranges, nranges);
	atomic_store(&published, req);
	stitch_count(quiesce_rounds, 1);
	for (size_t i = 0; i < req->count; i++)
		ask(&req->slots[i]);

	const int64_t deadline = now_ms() + timeout_ms;
	for (;;) {
		int seen = atomic_load(&reports);
		size_t pending = 0;
		bool asked_again = false;
		for (size_t i = 0; i < req->count; i++) {
			struct slot *s = &req->slots[i];
			int st = atomic_load_explicit(&s->state, memory_order_acquire);
			if (st == SLOT_REPORTED) {
				if (in_ranges(s->pc, req)) {
					ask(s); /* still inside: look again once it has moved on */
					asked_again = true;
				} else {
					atomic_store(&s->state, SLOT_DONE);
				}
			}
			if (atomic_load(&s->state) != SLOT_DONE)
				pending++;
		}
		if (pending == 0)
			break;
		if (now_ms() > deadline) {
			/* Someone keeps answering from inside a range (silent threads are
			 * looked at below, where blocked signals are told apart). */
			for (size_t i = 0; i < req->count; i++)
				if (atomic_load(&req->slots[i].state) == SLOT_PENDING && req->slots[i].pc &&
				    in_ranges(req->slots[i].pc, req))
					return give_up(&req->slots[i], req);
		}
		if (asked_again)
			stitch_count(quiesce_rounds, 1);
		struct timespec wait = { 0, 10L * 1000 * 1000 };
		long r = syscall(SYS_futex, &reports, FUTEX_WAIT_PRIVATE, seen, &wait, NULL, 0);
		if (r == 0 || errno != ETIMEDOUT)
			continue;
		/* Quiet for 10 ms: look at the threads that have not answered. */
		bool late = now_ms() > deadline;
		for (size_t i = 0; i < req->count; i++) {
			struct slot *s = &req->slots[i];
			if (atomic_load(&s->state) != SLOT_PENDING)
				continue;
			if (syscall(SYS_tgkill, getpid(), s->tid, 0) != 0 && errno == ESRCH) {
				atomic_store(&s->state, SLOT_DONE); /* exited */
			} else if (blocks_signal(s->tid) && sleeping_in_syscall(s->tid)) {
				int err = sleepers ? note_sleeper(sleepers, s->tid) : 0;
				if (err) {
					unpublish();
					return err;
				}
				atomic_store(&s->state, SLOT_DONE);
			} else if (late) {
				return give_up(s, req);
			}
		}
	}
	unpublish();
	return 0;
}

int stitch_quiesce(const struct stitch_range *ranges, size_t nranges, stitch_pc_fixup_fn fixup, void *arg)
{
	int err = stitch_ensure_init();
	if (err)
		return err;
	err = check_handler();
	if (err)
		return err;
	struct request req = { .fixup = fixup, .arg = arg };
	err = list_threads(&req.slots, &req.count, NULL, 0);
	if (!err)
		err = run_request(&req, ranges, nranges, NULL);
	free(req.slots);
	if (!err)
		stitch_patch_log_quiesce(ranges, nranges, fixup, arg);
	return err;
}

/* ---- stop the world ------------------------------------------------------ */

static struct {
	bool stopped;
	pid_t *parked; /* threads parked (or found asleep with the signal blocked) */
	size_t nparked;
	struct sleepers sleepers;
} world;

static void release_world(void)
{
	atomic_fetch_add(&world_epoch, 1); /* even: running */
	syscall(SYS_futex, &world_epoch, FUTEX_WAKE_PRIVATE, INT_MAX, NULL, NULL, 0);
	free(world.parked);
	free(world.sleepers.tid);
	free(world.sleepers.switches);
	memset(&world, 0, sizeof(world));
}

int stitch_stop_world(stitch_pc_fixup_fn fixup, void *arg)
{
	int err = stitch_ensure_init();
	if (err)
		return err;
	if (world.stopped)
		stitch_die("stitch_stop_world() while the world is already stopped");
	err = check_handler();
	if (err)
		return err;
	atomic_fetch_add(&world_epoch, 1); /* odd: parked threads stay parked */
	world.stopped = true;
	stitch_count(world_stops, 1);
	/*
	 * Park every thread we can see; a thread we had not seen yet may have
	 * been created by one not yet parked, so look again until a listing
	 * brings no new thread (parked threads create none).
	 */
	for (;;) {
		struct request req = { .fixup = fixup, .arg = arg, .park = true };
		err = list_threads(&req.slots, &req.count, world.parked, world.nparked);
		if (err || req.count == 0) {
			free(req.slots);
			break;
		}
		err = run_request(&req, NULL, 0, &world.sleepers);
		if (!err) {
			/* NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI): req.count > 0 (checked above) */
			pid_t *v = realloc(world.parked, (world.nparked + req.count) * sizeof(*v));
			if (!v)
				err = stitch_fail(STITCH_ENOMEM, "out of memory stopping threads");
			else
				world.parked = v;
		}
		for (size_t i = 0; !err && i < req.count; i++)
			world.parked[world.nparked++] = req.slots[i].tid;
		free(req.slots);
		if (err)
			break;
	}
	if (err) {
		release_world();
		return err;
	}
	return 0;
}

int stitch_world_check_sleepers(void)
{
	if (!world.stopped)
		stitch_die("stitch_world_check_sleepers() without stitch_stop_world()");
	/* A thread that could not be parked because it blocks the signal was
	 * asleep in a system call; if it has run since, it may have executed
	 * code while it was being rewritten.  Say so: nobody else can. */
	for (size_t i = 0; i < world.sleepers.count; i++) {
		unsigned long long now = context_switches(world.sleepers.tid[i]);
		if (now != ULLONG_MAX && now != world.sleepers.switches[i])
			return stitch_fail(STITCH_EQUIESCE,
					   "thread %d blocks signal %d and woke up while the world was stopped; it "
					   "may have run code that was being rewritten",
					   (int)world.sleepers.tid[i], quiesce_signal);
	}
	return 0;
}

void stitch_resume_world(void)
{
	if (!world.stopped)
		stitch_die("stitch_resume_world() without stitch_stop_world()");
	release_world();
}

void stitch_quiesce_note_emulator_threads(void)
{
	struct slot *v = NULL;
	size_t n = 0;
	if (list_threads(&v, &n, NULL, 0) != 0) {
		stitch_clear_error();
		return;
	}
	for (size_t i = 0; i < n && emulator_count < MAX_EMULATOR_THREADS; i++)
		if (blocks_signal(v[i].tid))
			emulator_tids[emulator_count++] = v[i].tid;
	free(v);
}
