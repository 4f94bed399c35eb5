/* SPDX-License-Identifier: MIT */
/*
 * libstitch-agent.so: preloaded into a program by `stitch-trace record`,
 * it traces the program's functions with stitch's ftrace and writes
 * DIR/trace-<pid>[.<n>].dat (format.h).
 *
 * Configuration (set by the CLI; docs/stitch-trace.md):
 *   STITCH_TRACE_DIR      output directory (required; no tracing without it)
 *   STITCH_TRACE_FILTER   globs to trace; "!glob": never trace these
 *   STITCH_TRACE_GRAPH    1: record returns too
 *   STITCH_TRACE_DEPTH    record calls up to this nesting depth (graph only)
 *   STITCH_TRACE_FORK     "follow" (default): a fork child traces into its
 *                         own file; "stop": it records nothing
 *   STITCH_TRACE_BUFFER   events per thread ring (power of two)
 *   STITCH_TRACE_BLOCK    1: a full ring waits for the writer (no loss)
 *   STITCH_TRACE_CLOCK    "monotonic": clock_gettime() in the callbacks
 *   STITCH_TRACE_CONTROL  1: open the control socket (agent_ctl.c)
 *   STITCH_TRACE_TICK_MS  the writer's tick (default 10; for tests: a tick
 *                         of an hour proves --block wakes the writer)
 *
 * Threads.  Each traced thread writes its events into its own ring
 * (ring.h); the writer thread drains every ring each tick into the file.
 * A ring is freed once its thread is gone (tgkill(tid, 0) fails) and it
 * was drained again after that: nothing can write to it any more.
 *
 * Locks: file_lock serialises everything written to the file (writer
 * tick, symbol table, exec/exit flush); ctl_lock serialises filter and
 * registration changes (control requests, dlopen) and nests outside
 * file_lock.  The callbacks take neither.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <link.h>
#include <pthread.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <linux/futex.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <stitch/ftrace.h>
#include <stitch/stitch.h>

#include "agent.h"
#include "ctlpath.h"
#include "format.h"
#include "ring.h"

#define AGENT_EXPORT __attribute__((visibility("default")))
#define AGENT_TLS __thread __attribute__((tls_model("initial-exec")))

#define WRITER_TICK_MS 10
#define DEFAULT_RING_EVENTS (1u << 18)

static struct {
	int active;            /* constructor succeeded: tracing into file */
	struct agent_fd file;  /* the trace file (file_lock; file_usable()) */
	char dir[4096];
	char path[4200];
	int graph;
	uint32_t depth_limit;
	int fork_follow;
	int control;
	uint64_t ring_events;
	uint32_t exec_seq;
	int registered;
	int forked;
	pid_t pid;             /* the process the file belongs to */
} ag = { .file = AGENT_FD_NONE };

static struct ring *_Atomic all_rings;
static AGENT_TLS struct ring *my_ring;
static _Atomic uint32_t filter_gen;   /* odd while a filter change is under way */
static _Atomic int recording = 1;    /* 0 in a fork child told to stop */
static _Atomic uint64_t lost_no_ring; /* events of threads whose ring could not be mapped */
static uint64_t events_written;      /* file_lock */

static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_mutex_t ctl_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_t writer_thread;
static int writer_running;
/*
 * The writer's tick, its stop request and the wake-ups from threads
 * blocked on a full ring (--block): a futex word, bumped by whoever wants
 * the writer to drain now, which the writer waits on with the tick as
 * timeout.  Not a pipe (no descriptor for the program to close or reuse),
 * and not a condition variable: the wake comes from callbacks, which may
 * run inside signal handlers, where only an atomic add and a system call
 * are safe (pthread_cond_signal is not async-signal-safe).
 */
static _Atomic uint32_t writer_wake;
static _Atomic int writer_stop;
static long writer_tick_ms = WRITER_TICK_MS;

/* What is traced (ctl_lock): see rules_text(). */
#define MAX_RULES CTL_MAX_RULES
static struct rule {
	char glob[CTL_MAX_ARG + 1];
	int enable;
} rules[MAX_RULES];
static size_t nrules;
static int paused;
static unsigned long dl_adds_seen;
/* loaded by stitch-trace attach, not LD_PRELOAD (load_attach_conf) */
static int attached;

static void on_entry(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *o, struct stitch_ftrace_regs *regs);
#ifdef STITCH_TRACE_HAVE_GRAPH
#define HOOKS_RETURNS 1
static void on_return(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *o,
		      struct stitch_ftrace_ret_regs *rregs);
#define RETURN_HOOKED() stitch_ftrace_return_hooked()
#else
#define HOOKS_RETURNS 0
#define RETURN_HOOKED() false
#endif
/*
 * Graph mode registers a fresh ops every time (graph_ops_new()), never one
 * registered before.  The library calls an ops' ret_func for a hooked call
 * only if that ops is on the site when the call returns: after an
 * unregister (graph off, pause, detach) the calls in flight return without
 * it, or - were the same ops registered again - with it, if they return
 * after that.  A thread's depth count (ring.h) could not tell which.  With
 * one ops per registration the rule is simple: the calls hooked under an
 * ops that was unregistered never come back, so a thread's count restarts
 * at the first callback of a new ops.  The old ops are never freed: the
 * library's shadow stacks still name them (compared by pointer), and a new
 * ops at a reused address would receive those returns.
 */
static struct stitch_ftrace_ops ops_flat = { .func = on_entry };
static struct stitch_ftrace_ops *cur_ops = &ops_flat; /* registered if ag.registered */

static struct stitch_ftrace_ops *graph_ops_new(void)
{
	struct stitch_ftrace_ops *o = calloc(1, sizeof *o);
	if (o) {
		o->func = on_entry;
#ifdef STITCH_TRACE_HAVE_GRAPH
		o->ret_func = on_return;
#endif
	}
	return o;
}
void agent_say(const char *fmt, ...)
{
	char buf[1024];
	int n = snprintf(buf, sizeof buf, "stitch-agent[%d]: ", (int)getpid());
	va_list ap;
	va_start(ap, fmt);
	int m = vsnprintf(buf + n, sizeof buf - (size_t)n - 1, fmt, ap);
	va_end(ap);
	size_t len = (size_t)n + (m < 0 ? 0 : (size_t)m < sizeof buf - (size_t)n - 1 ? (size_t)m : sizeof buf - (size_t)n - 2);
	buf[len++] = '\n';
	ssize_t w = write(2, buf, len);
	(void)w;
}

static uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/*
 * Event timestamps.  clock_gettime() is a third of the cost of recording an
 * event (54 ns against 23 ns for rdtsc on the test machine, a VM), so the
 * callbacks read the CPU's counter (TSC, CNTVCT_EL0, the RISC-V time CSR;
 * all constant-rate on Linux, and what the vDSO itself reads); the writer
 * records (counter, monotonic ns) pairs at the start and at every drain,
 * and readers convert with the line fitted through them (format.h).
 * STITCH_TRACE_CLOCK=monotonic makes the callbacks call clock_gettime().
 */
static int use_counter;

static inline uint64_t counter_now(void)
{
#if defined(__x86_64__)
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
#elif defined(__aarch64__)
	uint64_t v;
	__asm__ volatile("mrs %0, cntvct_el0" : "=r"(v));
	return v;
#elif defined(__riscv) && __riscv_xlen == 64
	uint64_t v;
	__asm__ volatile("rdtime %0" : "=r"(v));
	return v;
#else
	return now_ns();
#endif
}

/*
 * --block: a full ring makes the thread wait for the writer instead of
 * dropping the event.  Cannot deadlock: the writer takes no lock a traced
 * thread can hold (agent code is not traced) and blocks every signal but
 * the library's quiesce signal, so no callback runs on it.
 */
static int block_when_full;

/* Have the writer drain now (from callbacks too: async-signal-safe). */
static void wake_writer(void)
{
	int saved = errno; /* the traced code's, maybe a handler's caller's */
	atomic_fetch_add_explicit(&writer_wake, 1, memory_order_seq_cst);
	syscall(SYS_futex, &writer_wake, FUTEX_WAKE_PRIVATE, 1, NULL, NULL, 0);
	errno = saved;
}

/* Set while this thread holds file_lock across an exec (flush_before_exec). */
static AGENT_TLS int in_exec;

static inline void wait_for_room(struct ring *r)
{
	if (ring_has_room(r))
		return;
	/* A traced signal handler between flush_before_exec() and the exec
	 * system call: the writer waits for the file_lock this thread holds,
	 * so waiting for it would never end.  The event is dropped (counted
	 * lost) instead. */
	if (in_exec)
		return;
	/* Without this the writer would notice the full ring only at its next
	 * tick: a ring of 16 events then cost 10 ms every 16 events. */
	wake_writer();
	while (!ring_has_room(r))
		sched_yield();
}

static inline uint64_t event_time(void)
{
	return use_counter ? counter_now() : now_ns();
}

/* A counter reading and the monotonic time at (about) the same moment. */
static void clock_pair(uint64_t *count, uint64_t *ns)
{
	uint64_t a = now_ns();
	*count = counter_now();
	uint64_t b = now_ns();
	*ns = a + (b - a) / 2;
}

/* ---- the hot path ---------------------------------------------------- */

static struct ring *ring_create(void)
{
	size_t size = sizeof(struct ring) + ag.ring_events * sizeof(struct st_event);
	void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		return NULL;
	struct ring *r = p; /* zero-filled */
	r->mask = ag.ring_events - 1;
	r->map_size = size;
	r->tid = (uint32_t)syscall(SYS_gettid);
	/* the name now, in case the thread is gone before the writer looks */
	prctl(PR_GET_NAME, r->name, 0, 0, 0);
	struct ring *old = atomic_load_explicit(&all_rings, memory_order_relaxed);
	do
		r->next = old;
	while (!atomic_compare_exchange_weak_explicit(&all_rings, &old, r, memory_order_release, memory_order_relaxed));
	my_ring = r;
	return r;
}

static inline struct ring *this_ring(void)
{
	struct ring *r = my_ring;
	if (__builtin_expect(r != NULL, 1))
		return r;
	r = ring_create();
	if (!r)
		atomic_fetch_add_explicit(&lost_no_ring, 1, memory_order_relaxed);
	return r;
}

static void on_entry(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *o, struct stitch_ftrace_regs *regs)
{
	(void)parent_ip, (void)regs;
	/* Read after the dispatcher's acquire load of the site's ops set, so a
	 * generation g here means the set was read under filter g (agent_control). */
	uint32_t gen = atomic_load_explicit(&filter_gen, memory_order_relaxed);
	struct ring *r = this_ring();
	if (!r)
		return;
	uint32_t kind = ST_EV_ENTRY;
	/* the ops tells whether this call's return is hooked, not ag.graph:
	 * that changes under a live "graph on|off" while callbacks run */
	if (HOOKS_RETURNS && o != &ops_flat) {
		if (r->depth_ops != o) {
			/* the first call under a new registration: none of the
			 * calls counted so far will call on_return (graph_ops_new) */
			r->depth_ops = o;
			r->depth = 0;
		}
		uint32_t d = r->depth;
		/* The library says whether it hooks this return: its return
		 * stack (STITCH_FTRACE_GRAPH_DEPTH entries) is the thread's, and
		 * still holds the calls in flight that were hooked under an
		 * earlier ops, which r->depth, restarted above, does not count
		 * (a pause at the bottom of a 1 500-deep recursion then showed
		 * every later call nested in the one before). */
		if (!RETURN_HOOKED()) {
			/* no ret_func will come: say so, keep depth */
			kind = ST_EV_NORET;
			atomic_store_explicit(&r->noret_total,
					      atomic_load_explicit(&r->noret_total, memory_order_relaxed) + 1,
					      memory_order_relaxed);
		} else {
			r->depth = d + 1;
		}
		if (d >= ag.depth_limit)
			return;
	}
	if (atomic_load_explicit(&recording, memory_order_relaxed)) {
		if (block_when_full)
			wait_for_room(r);
		ring_put(r, kind, ip, event_time(), gen);
	}
}

#ifdef STITCH_TRACE_HAVE_GRAPH
static void on_return(uintptr_t ip, uintptr_t parent_ip, struct stitch_ftrace_ops *o, struct stitch_ftrace_ret_regs *rregs)
{
	(void)parent_ip;
	uint32_t gen = atomic_load_explicit(&filter_gen, memory_order_relaxed);
	struct ring *r = this_ring();
	if (!r)
		return;
	/* A return of o's comes after an entry of o's on this thread, which
	 * set depth_ops (o was registered after the ops before it was gone);
	 * the test only keeps a count of another ops from being touched. */
	if (r->depth_ops == o && r->depth)
		r->depth--;
	if (r->depth_ops == o && r->depth >= ag.depth_limit)
		return;
	if (atomic_load_explicit(&recording, memory_order_relaxed)) {
		if (block_when_full)
			wait_for_room(r);
		ring_put(r, rregs ? ST_EV_EXIT : ST_EV_UNWIND, ip, event_time(), gen);
	}
}
#endif

/* ---- the file --------------------------------------------------------- */

static int write_all(int fd, const void *buf, size_t n)
{
	const char *p = buf;
	while (n) {
		ssize_t w = write(fd, p, n);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		p += w, n -= (size_t)w;
	}
	return 0;
}

/*
 * The file cannot be written any more (a write failed, or the program took
 * its descriptor and the file could not be reopened): records are dropped
 * and the events drained from then on are counted in lost_unwritten, so
 * that the totals never claim "0 lost" for them.  file_lock.
 */
static int file_dead;
static uint64_t lost_unwritten; /* file_lock */
/* Bytes of whole records in the file: a failed write is cut back to this,
 * so that what was written before stays readable.  file_lock. */
static off_t file_good;
static int write_failed; /* file_dead by a failed write: the END record is still tried */

/* Cut the file back to `at`, the end of a whole record, and go on writing
 * there (lseek too: the descriptor is not O_APPEND, unless reopened).
 * 0, or -1 with errno. */
static int cut_file_back(off_t at)
{
	if (ftruncate(ag.file.fd, at) != 0 || lseek(ag.file.fd, at, SEEK_SET) < 0)
		return -1;
	file_good = at;
	return 0;
}

/*
 * A write error, for `stitch-trace record` to print after the program
 * exited (it cannot be put in the file, and the agent's stderr is the
 * program's): <ctl dir>/werr-<record's pid>-<pid>, the strerror text
 * (STITCH_TRACE_RECORD: record's pid; unset under attach, which does not
 * wait for the program).  The control directory is private to the user
 * and usually on another file system (XDG_RUNTIME_DIR or /tmp).  Best
 * effort.
 */
static void report_write_error(int err)
{
	char dir[200], path[256];
	const char *why, *rec = getenv("STITCH_TRACE_RECORD");
	if (!rec || !*rec || strspn(rec, "0123456789") != strlen(rec) ||
	    stitch_trace_ctl_dir(dir, sizeof dir, 1, &why) != 0)
		return;
	snprintf(path, sizeof path, "%s/werr-%s-%d", dir, rec, (int)getpid());
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return;
	const char *msg = strerror(err);
	ssize_t w = write(fd, msg, strlen(msg));
	(void)w;
	close(fd);
}

int agent_fd_keep(struct agent_fd *a, int fd)
{
	a->fd = -1;
	if (fd < 0)
		return -1;
	/* Above the numbers a program opens first: close_range(3, ~0U) and
	 * dup2 loops still reach it, but ordinary programs then do not meet
	 * our numbers at all.  A low RLIMIT_NOFILE makes this fail: keep fd. */
	int high = fcntl(fd, F_DUPFD_CLOEXEC, AGENT_FD_FLOOR);
	if (high >= 0) {
		close(fd);
		fd = high;
	}
	struct stat st;
	if (fstat(fd, &st) != 0)
		return -1;
	a->fd = fd, a->dev = st.st_dev, a->ino = st.st_ino;
	return fd;
}

int agent_fd_ours(const struct agent_fd *a)
{
	struct stat st;
	return a->fd >= 0 && fstat(a->fd, &st) == 0 && st.st_dev == a->dev && st.st_ino == a->ino;
}

void agent_fd_close(struct agent_fd *a)
{
	if (agent_fd_ours(a))
		close(a->fd);
	a->fd = -1;
}

/*
 * Before every write: is ag.file still our trace file?  If the program
 * closed or replaced it, its number is the program's now: reopen the file
 * by its path (only if it is still the same file: never append to another
 * one put there), and say so once.  Returns 0 if the file can be written.
 * file_lock.
 *
 * The program may be taking descriptors while we reopen (a dup2 loop over
 * 3..1023 runs for a millisecond or so): the number open() gives us, or
 * the one we move it to, can be replaced before we look at it.  So what
 * decides that another file is there is the path (stat), not the
 * descriptor: while the path is still our file, a descriptor that turned
 * out not to be ours is dropped (only if it is still what we saw) and the
 * open tried again.  Before 2026-11-28 the first such race ended the
 * recording ("another file is there now"), and the failure path closed
 * the number open() had returned a second time - by then possibly the
 * program's (trace_fd, 1 run in ~40).
 */
static int file_usable(void)
{
	if (file_dead)
		return -1;
	if (agent_fd_ours(&ag.file))
		return 0;
	static int said;
	struct agent_fd old = ag.file;
	const char *why = NULL;
	int err = 0;
	for (int attempt = 0; attempt < 100; attempt++) {
		int fd = open(ag.path, O_WRONLY | O_APPEND | O_CLOEXEC);
		if (fd < 0) {
			err = errno;
			break;
		}
		struct agent_fd fresh = AGENT_FD_NONE;
		(void)agent_fd_keep(&fresh, fd); /* owns fd from here (moved up, or left if fstat failed) */
		if (fresh.fd >= 0 && fresh.dev == old.dev && fresh.ino == old.ino) {
			ag.file = fresh;
			if (!said)
				agent_say("the program closed or reused descriptor %d (the trace file); reopened %s",
					  old.fd, ag.path);
			said = 1;
			return 0;
		}
		agent_fd_close(&fresh); /* only if it still is what agent_fd_keep() saw */
		struct stat st;
		if (stat(ag.path, &st) != 0) {
			err = errno;
			break;
		}
		if (st.st_dev != old.dev || st.st_ino != old.ino) {
			why = " (another file is there now)";
			break;
		}
		sched_yield(); /* the program is still taking descriptors: let it finish */
	}
	if (!why && !err) {
		/* the path is still ours: try again at the next record */
		static int said_busy;
		if (!said_busy)
			agent_say("the program keeps taking the descriptors the trace file is reopened at; trying again");
		said_busy = 1;
		return -1;
	}
	agent_say("the program closed or reused descriptor %d (the trace file) and %s cannot be reopened%s%s; "
		  "recording stops, events from now on are counted as lost",
		  old.fd, ag.path, why ? why : ": ", why ? "" : strerror(err));
	ag.file.fd = -1; /* not ours: never closed */
	file_dead = 1;
	return -1;
}

/* One record: header, payload, zero padding to a multiple of 8.  Returns 0
 * if it was written.  file_lock. */
static int put_record(uint32_t type, const void *a, size_t na, const void *b, size_t nb)
{
	static const char zeros[8];
	/* After a failed write, the END record is still tried (once the part
	 * of the failed record is cut off, a full disk has room for it): the
	 * file then ends cleanly, with the events it could not take counted
	 * as lost. */
	int last_try = write_failed && (type == ST_REC_END || type == ST_REC_EXEC) && agent_fd_ours(&ag.file);
	if (!last_try && file_usable() != 0)
		return -1;
	size_t size = (na + nb + 7) & ~(size_t)7;
	struct st_rec_header h = { .type = type, .size = (uint32_t)size };
	struct iovec iov[4] = { { &h, sizeof h }, { (void *)a, na }, { (void *)b, nb },
				{ (void *)zeros, size - na - nb } };
	size_t total = sizeof h + size;
	int i = 0;
	while (total) {
		ssize_t w = writev(ag.file.fd, iov + i, 4 - i);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			int err = w < 0 ? errno : ENOSPC;
			/* a record cut short would make the rest of the file
			 * unreadable; if it cannot be cut, readers stop there */
			(void)cut_file_back(file_good);
			if (last_try)
				return -1;
			/* once: every later record fails the same way (a full disk
			 * printed this some 40 times); what is drained from now on
			 * is counted as lost (drain_ring) */
			agent_say("writing %s: %s; recording stops, events from now on are counted as lost", ag.path,
				  strerror(err));
			report_write_error(err);
			file_dead = 1;
			write_failed = 1;
			return -1;
		}
		total -= (size_t)w;
		while (i < 4 && (size_t)w >= iov[i].iov_len)
			w -= (ssize_t)iov[i++].iov_len;
		if (i < 4) {
			iov[i].iov_base = (char *)iov[i].iov_base + w;
			iov[i].iov_len -= (size_t)w;
		}
	}
	file_good += (off_t)(sizeof h + size);
	return 0;
}

/* Addresses (and a hash of the name) already in the file's symbol table. */
static struct sym_seen { uint64_t addr, hash; } *seen;
static size_t nseen, capseen;

static uint64_t name_hash(const char *s)
{
	uint64_t h = 1469598103934665603u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211u;
	return h;
}

static int seen_cmp(const void *a, const void *b)
{
	const struct sym_seen *x = a, *y = b;
	return x->addr != y->addr ? (x->addr < y->addr ? -1 : 1) : (x->hash < y->hash ? -1 : x->hash > y->hash);
}

/* Write SYM records for sites not yet in the file.  Called before sites are
 * enabled, so a site's name precedes its events.  file_lock. */
static int write_symbols(void)
{
	int n = stitch_ftrace_site_count();
	size_t added = 0;
	for (int i = 0; i < n; i++) {
		struct stitch_ftrace_site_info s;
		if (stitch_ftrace_get_site_info((size_t)i, &s) != 0 || !s.name[0])
			continue;
		struct sym_seen key = { s.func, name_hash(s.name) };
		if (nseen && bsearch(&key, seen, nseen, sizeof *seen, seen_cmp))
			continue;
		if (nseen + added == capseen) {
			size_t cap = capseen ? 2 * capseen : 1024;
			struct sym_seen *p = realloc(seen, cap * sizeof *p);
			if (!p)
				break;
			seen = p, capseen = cap;
		}
		seen[nseen + added++] = key;
		const char *mod = s.module ? s.module : "";
		size_t ln = strlen(s.name) + 1, lm = strlen(mod) + 1;
		char names[4096];
		if (ln + lm > sizeof names)
			continue;
		memcpy(names, s.name, ln);
		memcpy(names + ln, mod, lm);
		struct st_sym sym = { .addr = s.func, .size = ln + lm };
		put_record(ST_REC_SYM, &sym, sizeof sym, names, ln + lm);
	}
	nseen += added;
	qsort(seen, nseen, sizeof *seen, seen_cmp);
	return n;
}

static void write_thread_name(struct ring *r)
{
	char p[64], name[32] = "";
	memcpy(name, r->name, sizeof r->name);
	snprintf(p, sizeof p, "/proc/self/task/%u/comm", r->tid);
	int fd = open(p, O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, name, sizeof name - 1);
		close(fd);
		if (n > 0) {
			name[n] = '\0';
			name[strcspn(name, "\n")] = '\0';
		}
	}
	struct st_thread t = { .tid = r->tid };
	memcpy(t.name, name, strnlen(name, sizeof t.name - 1));
	put_record(ST_REC_THREAD, &t, sizeof t, NULL, 0);
	r->named = 1;
}

/*
 * Calls the library's recursion guard skipped since this file began
 * (format.h, ST_REC_GUARD): this agent's copy of the library traces for
 * this agent only, so its count is of calls to functions we trace.  It
 * starts at 0 with the process (an exec starts a new one); a fork child
 * inherits the parent's count, and takes it as its base.  file_lock.
 */
static uint64_t guard_skips_base, guard_skips_written;

static uint64_t guard_skips_now(void)
{
	struct stitch_stats st;
	stitch_get_stats(&st);
	return st.ftrace_guard_skips;
}

static void guard_skips_restart(void)
{
	guard_skips_base = guard_skips_now();
	guard_skips_written = 0;
}

/* The count, if it changed since it was last written.  file_lock. */
static void write_guard_skips(void)
{
	struct st_guard g = { .skipped = guard_skips_now() - guard_skips_base };
	if (g.skipped == guard_skips_written)
		return;
	if (put_record(ST_REC_GUARD, &g, sizeof g, NULL, 0) == 0)
		guard_skips_written = g.skipped;
}

/* Copy a ring's new events into the file.  file_lock. */
static void drain_ring(struct ring *r)
{
	if (!r->named)
		write_thread_name(r);
	uint64_t tail = atomic_load_explicit(&r->tail, memory_order_relaxed);
	uint64_t head = atomic_load_explicit(&r->head, memory_order_acquire);
	while (head != tail) {
		uint64_t cap = r->mask + 1, start = tail & r->mask;
		uint64_t n = head - tail;
		if (n > cap - start)
			n = cap - start; /* up to the end of the buffer; the rest next round */
		/* 4096 events (96 KiB) per record: a write that fails (a full
		 * disk) loses its record whole, and with 65 536 (1.5 MiB) a
		 * disk with a megabyte left kept nothing of it */
		if (n > 0x1000)
			n = 0x1000;
		struct st_events e = { .tid = r->tid, .count = (uint32_t)n };
		int ok = put_record(ST_REC_EVENTS, &e, sizeof e, &r->ev[start], n * sizeof(struct st_event)) == 0;
		/* a loss marker is not an event: the totals say events + lost;
		 * events that could not be written are lost, and so counted */
		for (uint64_t k = 0; k < n; k++) {
			const struct st_event *ev = &r->ev[start + k];
			if (ok)
				events_written += ev->kind != ST_EV_LOST;
			else /* a marker's losses are in its ring's lost_total already */
				lost_unwritten += ev->kind != ST_EV_LOST;
		}
		tail += n;
		atomic_store_explicit(&r->tail, tail, memory_order_release);
	}
}

/* A (counter, ns) pair for the readers' conversion.  file_lock. */
static void write_clock(void)
{
	if (!use_counter)
		return;
	struct st_clock c;
	clock_pair(&c.count, &c.ns);
	put_record(ST_REC_CLOCK, &c, sizeof c, NULL, 0);
}

/*
 * Losses not yet followed by an event that fit are only in the producer's
 * lost_pending: put them in the ring as an ST_EV_LOST event, when no
 * callback can write to it any more (after unregister, or its thread is
 * gone) and there is room (after a drain).  Returns whether it did.
 * file_lock.
 */
static int put_lost_marker(struct ring *r)
{
	if (!r->lost_pending)
		return 0;
	uint64_t head = atomic_load_explicit(&r->head, memory_order_relaxed);
	r->ev[head & r->mask] = (struct st_event){ .ts_ns = use_counter ? counter_now() : now_ns(),
						   .ip = r->lost_pending, .kind = ST_EV_LOST };
	r->lost_pending = 0;
	atomic_store_explicit(&r->head, head + 1, memory_order_release);
	return 1;
}

static int thread_gone(uint32_t tid)
{
	return syscall(SYS_tgkill, getpid(), tid, 0) != 0 && errno == ESRCH;
}

/* Drain every ring; free those whose thread has exited.  Returns whether
 * some ring was more than a quarter full.  file_lock. */
static int drain_all(int reap)
{
	int busy = 0;
	/* once per drain even when nothing is written: a file the program
	 * took is reopened (or given up) at once, and said */
	file_usable();
	write_clock();
	write_guard_skips();
	for (struct ring *r = atomic_load_explicit(&all_rings, memory_order_acquire); r; r = r->next) {
		if (atomic_load_explicit(&r->dead, memory_order_relaxed))
			continue;
		/* gone before the drain: nothing can be written after it */
		int gone = reap && thread_gone(r->tid);
		uint64_t pending = atomic_load_explicit(&r->head, memory_order_relaxed) -
				   atomic_load_explicit(&r->tail, memory_order_relaxed);
		busy |= pending > (r->mask + 1) / 4;
		drain_ring(r);
		if (gone) {
			/* The thread's last losses, if no event fit after them, are
			 * only in its lost_pending: nothing else will put them in the
			 * stream (final_lost_markers skips dead rings, whose buffer
			 * is unmapped below), so the marker goes in now.  The thread
			 * is gone, so lost_pending is final. */
			if (put_lost_marker(r))
				drain_ring(r);
			atomic_store_explicit(&r->dead, 1, memory_order_relaxed);
			/* The list keeps its node (no unlink races with a concurrent
			 * push); only the event buffer's pages are given back. */
			size_t keep = (sizeof(struct ring) + 4095) & ~(size_t)4095;
			if (r->map_size > keep)
				munmap((char *)r + keep, r->map_size - keep);
		}
	}
	return busy;
}

/* Once no callback can run (after unregister): the pending losses of every
 * ring (dead rings had theirs put in when they died, drain_all).
 * file_lock, after a drain. */
static void final_lost_markers(void)
{
	for (struct ring *r = atomic_load_explicit(&all_rings, memory_order_acquire); r; r = r->next)
		if (!atomic_load_explicit(&r->dead, memory_order_relaxed))
			put_lost_marker(r);
}

static void totals(struct st_end *e)
{
	e->ts_ns = now_ns();
	e->events = events_written;
	e->lost = atomic_load(&lost_no_ring) + lost_unwritten;
	e->noret = 0;
	for (struct ring *r = atomic_load_explicit(&all_rings, memory_order_acquire); r; r = r->next) {
		e->lost += atomic_load_explicit(&r->lost_total, memory_order_relaxed);
		e->noret += atomic_load_explicit(&r->noret_total, memory_order_relaxed);
	}
}

void agent_block_signals(void)
{
	/* Signals meant for the program must not run its handlers on our
	 * threads.  The quiesce signal's number is chosen as the library does
	 * (src/core/quiesce.c: SIGRTMIN+5 unless STITCH_QUIESCE_SIGNAL). */
	int quiesce = SIGRTMIN + 5;
	const char *env = getenv("STITCH_QUIESCE_SIGNAL");
	if (env && *env)
		quiesce = atoi(env);
	sigset_t set;
	sigfillset(&set);
	sigdelset(&set, quiesce);
	/* Nor SIGTRAP: a thread that blocks it makes the library switch sites in
	 * a stopped world instead of with int3s (an int3 would kill such a
	 * thread), which signals every thread - and a program's pause() or
	 * nanosleep() then returns early with EINTR (a program whose thread
	 * called exit(3) while main slept in pause() exited 0 under record).
	 * Our threads run no traced code, so they meet no int3. */
	sigdelset(&set, SIGTRAP);
	/* SETMASK: the thread was created with everything blocked */
	pthread_sigmask(SIG_SETMASK, &set, NULL);
}

/*
 * The agent's own threads (writer, control) running: the low 32 bits count
 * them, the high 32 bits count starts and ends, so that a reader can tell
 * whether the count held still while it read the kernel's
 * (program_threads_gone).
 */
static _Atomic uint64_t agent_threads;

void agent_thread_enter(void)
{
	atomic_fetch_add(&agent_threads, ((uint64_t)1 << 32) + 1);
}

void agent_thread_leave(void)
{
	atomic_fetch_add(&agent_threads, ((uint64_t)1 << 32) - 1);
}

/* From /proc/self/stat: the state letter of the process's leader (its
 * main thread) and num_threads, the kernel's count of its threads.
 * Returns 0, or -1 if they cannot be read. */
static int read_self_stat(char *state, long *threads)
{
	char buf[1024];
	int fd = open("/proc/self/stat", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	ssize_t n = read(fd, buf, sizeof buf - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	char *p = strrchr(buf, ')'); /* field 2, the name, may hold ") " itself */
	if (!p || p[1] != ' ' || !p[2])
		return -1;
	*state = p[2]; /* field 3 */
	p += 2;
	for (int field = 3; field < 20; field++) {
		p = strchr(p, ' ');
		if (!p)
			return -1;
		p++;
	}
	char *end;
	*threads = strtol(p, &end, 10);
	return end == p ? -1 : 0;
}

/*
 * Has every thread of the program exited?  glibc ends a process whose
 * last thread calls pthread_exit() (exit(0) on that thread), but it counts
 * threads itself, ours too: under the agent a main() ending with
 * pthread_exit() never ended (and our threads block SIGTERM).  So the
 * kernel's view: the leader in state Z has exited, and then a thread count
 * of the leader and our own threads only means no program thread is left.
 * num_threads counts a thread from its clone until it is reaped, so a
 * thread being created is counted before its creator can exit, and one
 * that never made a traced call is counted too (the rings would miss it).
 * The count is read after the leader was seen gone, which is for good, so
 * the leader cannot create a thread after it either; a program thread, once
 * none is left, can never come back.  Ours are counted only if no agent
 * thread started or ended while the count was read (the sequence in
 * agent_threads): one in the middle of that might not be in the kernel's
 * count, and counting it anyway would take a program thread for ours.
 * Never true under qemu-user, whose /proc/self/stat is made up (state and
 * count 0): there such a process keeps running (docs/stitch-trace.md).
 */
static int program_threads_gone(void)
{
	char state;
	long threads;
	if (read_self_stat(&state, &threads) != 0 || state != 'Z')
		return 0;
	uint64_t before = atomic_load(&agent_threads);
	if (read_self_stat(&state, &threads) != 0)
		return 0;
	uint64_t after = atomic_load(&agent_threads);
	return before == after && threads == 1 + (long)(uint32_t)before;
}

/* The signal mask of the thread that loaded the agent: the exiter's. */
static sigset_t program_sigmask;

/*
 * Ends the process as glibc would have when the last program thread
 * exited: exit(0), so atexit handlers and destructors run (ours writes the
 * END record).  Not on the writer itself: the destructor stops and joins
 * the writer, and handlers that make traced calls with --block wait for it.
 */
static void *exiter_main(void *arg)
{
	(void)arg;
	pthread_sigmask(SIG_SETMASK, &program_sigmask, NULL);
	exit(0);
}

static void *writer_main(void *arg)
{
	(void)arg;
	agent_thread_enter();
	agent_block_signals();
	int exiting = 0;
	uint64_t next_check = 0;
	for (;;) {
		/* A periodic drain, not a synchronisation: rings are lock-free and
		 * the tick only bounds how full they get.  No pause while the
		 * rings fill faster than a tick drains them.
		 * The wake word is read before the drain: a bump before this read
		 * was made after its ring filled (or stop was set), so the drain
		 * below sees that; a bump after it makes the wait return at once. */
		uint32_t woken = atomic_load_explicit(&writer_wake, memory_order_seq_cst);
		int stop = atomic_load(&writer_stop); /* asked to stop: this is the last drain */
		pthread_mutex_lock(&file_lock);
		int busy = drain_all(1);
		pthread_mutex_unlock(&file_lock);
		if (stop)
			break;
		if (!busy && !exiting && now_ns() >= next_check) {
			/* once a tick: two reads of /proc/self/stat, one while the
			 * main thread runs */
			next_check = now_ns() + (uint64_t)writer_tick_ms * 1000000u;
			pthread_t t;
			if (program_threads_gone() && pthread_create(&t, NULL, exiter_main, NULL) == 0) {
				pthread_detach(t);
				/* the exiter counts as the program's: no more checks */
				exiting = 1;
			}
		}
		if (!busy) {
			struct timespec tick = { writer_tick_ms / 1000, writer_tick_ms % 1000 * 1000000L };
			syscall(SYS_futex, &writer_wake, FUTEX_WAIT_PRIVATE, woken, &tick, NULL, 0);
		}
	}
	agent_thread_leave();
	return NULL;
}

static int open_trace_file(void)
{
	for (uint32_t seq = 0; seq < 1000; seq++) {
		if (seq == 0)
			snprintf(ag.path, sizeof ag.path, "%s/trace-%d.dat", ag.dir, (int)getpid());
		else
			snprintf(ag.path, sizeof ag.path, "%s/trace-%d.%u.dat", ag.dir, (int)getpid(), seq);
		int fd = open(ag.path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
		if (fd >= 0) {
			ag.exec_seq = seq;
			file_dead = 0;
			write_failed = 0;
			file_good = 0;
			return agent_fd_keep(&ag.file, fd);
		}
		if (errno != EEXIST)
			break;
	}
	int err = errno;
	agent_say("cannot create a trace file in %s: %s", ag.dir, strerror(err));
	report_write_error(err);
	return -1;
}

static void write_header(uint32_t ppid)
{
	struct timespec rt;
	clock_gettime(CLOCK_REALTIME, &rt);
	struct st_file_header h = {
		.version = ST_VERSION,
		.header_size = sizeof h,
		.pid = (uint32_t)getpid(),
		.ppid = ppid,
		.clock_id = CLOCK_MONOTONIC,
		.flags = (ag.graph ? ST_FLAG_GRAPH : 0) | (ag.forked ? ST_FLAG_FORKED : 0) |
			 (use_counter ? ST_FLAG_COUNTER : 0),
		.start_ns = now_ns(),
		.start_realtime_ns = (uint64_t)rt.tv_sec * 1000000000u + (uint64_t)rt.tv_nsec,
		.exec_seq = ag.exec_seq,
	};
	memcpy(h.magic, ST_MAGIC, 8);
	if (write_all(ag.file.fd, &h, sizeof h) != 0) {
		int err = errno;
		agent_say("writing %s: %s", ag.path, strerror(err));
		report_write_error(err);
	} else {
		file_good = sizeof h;
	}
	write_clock();
	char cmd[4096];
	int fd = open("/proc/self/cmdline", O_RDONLY | O_CLOEXEC);
	if (fd >= 0) {
		ssize_t n = read(fd, cmd, sizeof cmd);
		close(fd);
		if (n > 0)
			put_record(ST_REC_CMDLINE, cmd, (size_t)n, NULL, 0);
	}
}

static int start_writer(void)
{
	atomic_store(&writer_stop, 0); /* a fork child starts its own writer */
	/* Create the thread with every signal blocked so none lands on it
	 * before it blocks them itself. */
	sigset_t all, old;
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	int err = pthread_create(&writer_thread, NULL, writer_main, NULL);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		agent_say("cannot start the writer thread: %s", strerror(err));
		return -1;
	}
	writer_running = 1;
	return 0;
}

static void stop_writer(void)
{
	if (!writer_running)
		return;
	atomic_store(&writer_stop, 1);
	wake_writer();
	pthread_join(writer_thread, NULL);
	writer_running = 0;
}

/* ---- filter and registration (ctl_lock) ------------------------------ */

/*
 * What is traced: an ordered list of rules, "+glob" (enable) and "-glob"
 * (disable); for each function the last rule whose glob matches its name
 * decides, and none means not traced.  record's -F globs become the first
 * rules, its -N globs follow them (so notrace wins); live enable/disable
 * append one (dropping an earlier rule with the same glob).
 *
 * The library's filter language has no order ("globs !globs": some
 * positive and no negative matches), so a rule list of that shape is
 * passed as globs; any other is evaluated here and passed as the list of
 * selected functions' addresses ("0x..." entries).
 */
static size_t rules_text(char *buf, size_t size)
{
	size_t n = 0;
	buf[0] = '\0';
	for (size_t i = 0; i < nrules; i++) {
		int w = snprintf(buf + n, size - n, "%s%c%s", n ? " " : "", rules[i].enable ? '+' : '-', rules[i].glob);
		if (w < 0 || (size_t)w >= size - n)
			return (size_t)-1;
		n += (size_t)w;
	}
	return n;
}

/* The last rule matching site i decides (the library's matching: C++
 * patterns see demangled names). */
static int rules_select(size_t i)
{
	for (size_t k = nrules; k-- > 0;)
		if (stitch_ftrace_pattern_matches(rules[k].glob, i) == 1)
			return rules[k].enable;
	return 0;
}

/* Are the rules "+a +b ... -c -d ..." (the library's own semantics)? */
static int rules_native(void)
{
	size_t i = 0;
	while (i < nrules && rules[i].enable)
		i++;
	while (i < nrules && !rules[i].enable)
		i++;
	return i == nrules;
}

struct text {
	char *s;
	size_t n, cap;
};

static int text_add(struct text *t, const char *piece)
{
	size_t k = strlen(piece);
	if (t->n + k + 2 > t->cap) {
		size_t cap = 2 * (t->cap + k + 64);
		char *p = realloc(t->s, cap);
		if (!p)
			return -1;
		t->s = p, t->cap = cap;
	}
	if (t->n)
		t->s[t->n++] = ' ';
	memcpy(t->s + t->n, piece, k + 1);
	t->n += k;
	return 0;
}

/* Sites whose name the glob matches. */
static int glob_sites(const char *glob)
{
	int n = stitch_ftrace_site_count(), k = 0;
	for (int i = 0; i < n; i++)
		k += stitch_ftrace_pattern_matches(glob, (size_t)i) == 1;
	return k;
}

/* The library filter for the rules, and how many sites it selects. */
static int rules_filter(struct text *out, int *selected)
{
	int n = stitch_ftrace_site_count();
	*selected = 0;
	for (int i = 0; i < n; i++) {
		struct stitch_ftrace_site_info si;
		if (stitch_ftrace_get_site_info((size_t)i, &si) == 0 && si.name[0] && rules_select((size_t)i))
			++*selected;
	}
	out->n = 0;
	if (out->s)
		out->s[0] = '\0';
	if (rules_native()) {
		char piece[sizeof rules[0].glob + 1];
		for (size_t i = 0; i < nrules; i++) {
			/* The library refuses a filter one of whose patterns selects
			 * nothing: one -F glob without a match would trace nothing at
			 * all.  Such a rule selects nothing here either: left out
			 * (agent_start says so; `live enable` refuses one). */
			if (rules[i].enable && glob_sites(rules[i].glob) == 0)
				continue;
			size_t k = strlen(rules[i].glob), neg = !rules[i].enable;
			piece[0] = '!';
			memcpy(piece + neg, rules[i].glob, k + 1);
			if (text_add(out, piece) != 0)
				return -1;
		}
		return 0;
	}
	for (int i = 0; i < n; i++) {
		struct stitch_ftrace_site_info si;
		char piece[32];
		if (stitch_ftrace_get_site_info((size_t)i, &si) != 0 || !si.name[0] || !rules_select((size_t)i))
			continue;
		snprintf(piece, sizeof piece, "0x%lx", (unsigned long)si.func);
		if (text_add(out, piece) != 0)
			return -1;
	}
	return 0;
}


/* Make the registration match rules/paused/graph.  Returns 0 or a stitch
 * error; on error the registration is as it was (the library changes
 * nothing on error), and the message is in stitch_last_error(). */
static int apply_registration(int want_graph)
{
	/* Sites of modules loaded since the last scan get their names first. */
	pthread_mutex_lock(&file_lock);
	write_symbols();
	pthread_mutex_unlock(&file_lock);
	struct text filter = { 0 };
	int selected;
	if (rules_filter(&filter, &selected) != 0) {
		free(filter.s);
		return -STITCH_ENOMEM;
	}
	int want = !paused && selected > 0;
	int err = 0;
	if (ag.registered && want && want_graph == ag.graph) {
		err = stitch_ftrace_set_filter(cur_ops, filter.s);
	} else {
		if (ag.registered) {
			err = stitch_ftrace_unregister(cur_ops);
			if (err) {
				free(filter.s);
				return err;
			}
			ag.registered = 0;
		}
		int old_graph = ag.graph;
		ag.graph = want_graph;
		/*
		 * Never a ret_func changed under an ops: a fresh graph ops for
		 * each registration (graph_ops_new says why), ops_flat otherwise.
		 */
		struct stitch_ftrace_ops *next = &ops_flat;
		if (want && want_graph) {
			next = graph_ops_new();
			if (!next) {
				ag.graph = old_graph;
				free(filter.s);
				return -STITCH_ENOMEM;
			}
		}
		if (want) {
			err = stitch_ftrace_register(next, filter.s);
			if (err == 0) {
				ag.registered = 1;
				cur_ops = next;
			} else {
				ag.graph = old_graph;
				/* next is not freed: a registration refused part-way ran
				 * its sites for a moment, so a shadow entry may name it */
			}
		}
	}
	free(filter.s);
	return err;
}

/*
 * Append a rule.  Rules earlier with the same glob, and every earlier rule
 * if the glob is "*", are dropped: last match wins, and any name they
 * match the new one matches too, so they would decide nothing any more.
 * That is also how a user whose 64 rules are used up starts over.
 */
static int add_rule(const char *glob, int enable)
{
	size_t w = 0;
	for (size_t i = 0; i < nrules; i++)
		if (strcmp(rules[i].glob, glob) != 0 && strcmp(glob, "*") != 0)
			rules[w++] = rules[i];
	nrules = w;
	if (nrules == MAX_RULES || strlen(glob) > CTL_MAX_ARG)
		return -1;
	strcpy(rules[nrules].glob, glob);
	rules[nrules++].enable = enable;
	return 0;
}

/* STITCH_TRACE_FILTER as the CLI writes it: "glob ... !glob ...". */
static int parse_filter(const char *text)
{
	nrules = 0;
	char glob[CTL_MAX_ARG + 1];
	for (int pass = 0; pass < 2; pass++) { /* enables first, then disables */
		const char *p = text ? text : "";
		for (;;) {
			p += strspn(p, " \t\n");
			size_t n = strcspn(p, " \t\n");
			if (!n)
				break;
			int negative = p[0] == '!';
			if (negative == pass) {
				if (n - (size_t)negative > CTL_MAX_ARG)
					return -1;
				memcpy(glob, p + negative, n - (size_t)negative);
				glob[n - (size_t)negative] = '\0';
				if (add_rule(glob, !negative) != 0)
					return -1;
			}
			p += n;
		}
		if (pass == 0 && nrules == 0 && add_rule("*", 1) != 0)
			return -1;
	}
	return 0;
}

int agent_control(const struct ctl_request *req, char *reply, size_t size)
{
	if (!ag.active) {
		snprintf(reply, size, "refused: tracing has stopped (detached)");
		return -1;
	}
	if (ag.forked && req->cmd != CTL_STATUS) {
		snprintf(reply, size, "refused: a fork child cannot change its tracing (the library would patch the parent's code)");
		return -1;
	}
	pthread_mutex_lock(&ctl_lock);
	char text[2048];
	struct rule saved[MAX_RULES];
	size_t nsaved = nrules;
	memcpy(saved, rules, nrules * sizeof *rules);
	int saved_paused = paused, saved_graph = ag.graph, want_graph = ag.graph;

	switch (req->cmd) {
	case CTL_STATUS: {
		int sites = stitch_ftrace_site_count();
		int enabled = ag.registered ? stitch_ftrace_ops_site_count(cur_ops) : 0;
		pthread_mutex_lock(&file_lock);
		struct st_end e;
		totals(&e);
		pthread_mutex_unlock(&file_lock);
		if (rules_text(text, sizeof text) == (size_t)-1)
			strcpy(text, "(long)");
		snprintf(reply, size,
			 "pid %d: sites %d, enabled %d, %s, graph %s, events %llu, lost %llu, noret %llu, rules \"%s\", file %s",
			 (int)getpid(), sites < 0 ? 0 : sites, enabled < 0 ? 0 : enabled,
			 paused ? "paused" : "running", ag.graph ? "on" : "off", (unsigned long long)e.events,
			 (unsigned long long)e.lost, (unsigned long long)e.noret, text, ag.path);
		pthread_mutex_unlock(&ctl_lock);
		return 0;
	}
	case CTL_DETACH: {
		/* Unregister first: after its grace period no callback runs, the
		 * sites hold the compiler's bytes again, and the drain sees all. */
		int err = ag.registered ? stitch_ftrace_unregister(cur_ops) : 0;
		if (err) {
			snprintf(reply, size, "refused: %s", stitch_last_error());
			pthread_mutex_unlock(&ctl_lock);
			return -1;
		}
		ag.registered = 0;
		atomic_store(&recording, 0);
		stop_writer();
		pthread_mutex_lock(&file_lock);
		drain_all(0);
		final_lost_markers();
		drain_all(0);
		write_guard_skips();
		struct st_end e;
		totals(&e);
		put_record(ST_REC_END, &e, sizeof e, NULL, 0);
		agent_fd_close(&ag.file);
		ag.active = 0;
		pthread_mutex_unlock(&file_lock);
		snprintf(reply, size, "detached: original code restored; %llu events, %llu lost, in %s",
			 (unsigned long long)e.events, (unsigned long long)e.lost, ag.path);
		pthread_mutex_unlock(&ctl_lock);
		return 0;
	}
	case CTL_ENABLE:
	case CTL_DISABLE:
		if (glob_sites(req->arg) == 0) {
			snprintf(reply, size, "refused: '%s' matches no instrumented function", req->arg);
			pthread_mutex_unlock(&ctl_lock);
			return -1;
		}
		if (add_rule(req->arg, req->cmd == CTL_ENABLE) != 0) {
			memcpy(rules, saved, nsaved * sizeof *rules);
			nrules = nsaved;
			snprintf(reply, size, "refused: too many rules (at most %d; a '*' rule replaces all of them)", MAX_RULES);
			pthread_mutex_unlock(&ctl_lock);
			return -1;
		}
		break;
	case CTL_GRAPH:
#ifndef STITCH_TRACE_HAVE_GRAPH
		if (req->on) {
			snprintf(reply, size, "refused: this build of stitch has no function_graph");
			pthread_mutex_unlock(&ctl_lock);
			return -1;
		}
#endif
		want_graph = req->on;
		break;
	case CTL_PAUSE:
		paused = 1;
		break;
	case CTL_RESUME:
		paused = 0;
		break;
	}
	/*
	 * Filter generation: odd while the switch runs.  An event reads gen
	 * after the dispatcher read its site's ops set (an acquire load), so
	 * gen0 means the set was read before the switch began, gen0+2 after it
	 * ended: the library's grace period waited for every callback that
	 * read an older set, and sites join only after this store.
	 */
	uint64_t t0 = now_ns();
	uint32_t gen0 = atomic_load(&filter_gen);
	atomic_store(&filter_gen, gen0 + 1);
	int err = apply_registration(want_graph);
	uint32_t gen1 = gen0 + 2;
	atomic_store(&filter_gen, gen1);
	uint64_t t1 = now_ns();
	int ret = 0;
	if (err) {
		/* nothing changed in the library; put our state back */
		memcpy(rules, saved, nsaved * sizeof *rules);
		nrules = nsaved;
		paused = saved_paused;
		ag.graph = saved_graph;
		snprintf(reply, size, "refused: %s", stitch_last_error());
		ret = -1;
	} else {
		if (rules_text(text, sizeof text) == (size_t)-1)
			strcpy(text, "(long)");
		snprintf(reply, size, "ok: %s, graph %s, rules \"%s\", %d sites enabled", paused ? "paused" : "running",
			 ag.graph ? "on" : "off", text, ag.registered ? stitch_ftrace_ops_site_count(cur_ops) : 0);
	}
	/* The mark carries the rules in force from gen1 on ("" when paused). */
	char *mtext = malloc(MAX_RULES * (CTL_MAX_ARG + 2) + 1);
	if (mtext) {
		if (paused || rules_text(mtext, MAX_RULES * (CTL_MAX_ARG + 2) + 1) == (size_t)-1)
			mtext[0] = '\0';
		struct st_mark m = { .ts_begin = t0, .ts_end = t1, .gen_before = gen0, .gen_after = gen1, .ok = !err,
				     .graph = (uint32_t)ag.graph };
		pthread_mutex_lock(&file_lock);
		put_record(ST_REC_MARK, &m, sizeof m, mtext, strlen(mtext) + 1);
		pthread_mutex_unlock(&file_lock);
		free(mtext);
	}
	pthread_mutex_unlock(&ctl_lock);
	return ret;
}

/* ---- process events: dlopen, fork, exec, exit ------------------------ */

static int count_adds(struct dl_phdr_info *info, size_t size, void *arg)
{
	(void)size;
	*(unsigned long long *)arg = info->dlpi_adds;
	return 1;
}

static unsigned long long module_adds(void)
{
	unsigned long long adds = 0;
	dl_iterate_phdr(count_adds, &adds);
	return adds;
}

static int ctl_started; /* ctl_lock */

/*
 * Modules loaded since we last looked get their sites traced by the rules
 * (the library rescans modules on set_filter).  That includes the case
 * where nothing is registered yet: no rule matched at start (-F 'lib_*'
 * before the library is loaded), or the program itself has no patchable
 * entries and only its plugins do.  Paused, or in a fork child (which
 * must not patch), only their names are written.  ctl_lock held.
 */
static void note_new_modules(const char *what)
{
	unsigned long long adds = module_adds();
	if (adds == dl_adds_seen)
		return;
	dl_adds_seen = adds;
	if (ag.forked || paused) {
		pthread_mutex_lock(&file_lock);
		write_symbols();
		pthread_mutex_unlock(&file_lock);
		return;
	}
	if (apply_registration(ag.graph) != 0)
		agent_say("after %s: %s", what, stitch_last_error());
	/* A process without sites at start opened no control socket (a shell
	 * on the way to the program must not show up in `live DIR`); one that
	 * has some now can be controlled. */
	if (ag.control && !ctl_started && stitch_ftrace_site_count() > 0)
		ctl_started = agent_ctl_start() == 0;
}

/*
 * dlopen is interposed so a library's sites are traced from the moment
 * dlopen returns, before the program can call into the new code.
 * Polling would miss the first calls.  The price: glibc resolves a bare
 * name against the *caller's* RUNPATH, and the caller is now the agent
 * (docs/stitch-trace.md, "Limits").  An attached agent comes too late to
 * be interposed (the program's calls to dlopen are bound to libc's):
 * there the control thread polls (agent_poll_modules()).
 */
AGENT_EXPORT void *dlopen(const char *file, int mode)
{
	static void *(*real_dlopen)(const char *, int);
	if (!real_dlopen)
		real_dlopen = (void *(*)(const char *, int))dlsym(RTLD_NEXT, "dlopen");
	if (!real_dlopen)
		return NULL;
	void *h = real_dlopen(file, mode);
	if (h && ag.active) {
		char what[256];
		snprintf(what, sizeof what, "dlopen(%s)", file ? file : "NULL");
		pthread_mutex_lock(&ctl_lock);
		note_new_modules(what);
		pthread_mutex_unlock(&ctl_lock);
	}
	return h;
}

int agent_polls_modules(void)
{
	return attached;
}

void agent_poll_modules(void)
{
	if (!ag.active || pthread_mutex_trylock(&ctl_lock) != 0)
		return; /* a control request is being served: the next tick */
	note_new_modules("a module was loaded");
	pthread_mutex_unlock(&ctl_lock);
}

/* Where the EXEC record of an exec under way begins (file_lock). */
static off_t exec_record_at;

/*
 * Everything recorded so far reaches the file before the image goes, and
 * the EXEC record last.  An exec can fail (no such file, not executable,
 * E2BIG): the process then goes on in this image, and an EXEC record left
 * in the file would make readers take it as ended (its later events and
 * END misread).  So file_lock is held until the exec is over: nothing is
 * written after the EXEC record meanwhile (the writer waits), and
 * exec_failed() can cut the file back to where the record began.  Returns
 * whether it took file_lock: then exec_failed() must follow a failed exec.
 */
static int flush_before_exec(const char *path)
{
	/* A vfork child shares our memory and file but is another process:
	 * the file's process is not the one exec'ing. */
	if (!ag.active || getpid() != ag.pid)
		return 0;
	pthread_mutex_lock(&file_lock);
	drain_all(0);
	write_guard_skips();
	struct st_end e;
	totals(&e);
	exec_record_at = file_good;
	put_record(ST_REC_EXEC, &e, sizeof e, path, strlen(path) + 1);
	in_exec = 1;
	return 1;
}

/* The exec returned, so it failed: take the EXEC record back and let the
 * writer go on.  The caller's errno is kept (the exec's error). */
static void exec_failed(int held)
{
	if (!held)
		return;
	int saved = errno;
	in_exec = 0;
	if (file_good != exec_record_at && agent_fd_ours(&ag.file)) {
		if (cut_file_back(exec_record_at) != 0)
			agent_say("exec failed, and its EXEC record could not be taken back from %s: %s; "
				  "readers will take this process as exec'ed",
				  ag.path, strerror(errno));
	}
	pthread_mutex_unlock(&file_lock);
	errno = saved;
}

typedef int (*execve_fn)(const char *, char *const[], char *const[]);
typedef int (*execvp_fn)(const char *, char *const[]);
typedef int (*execvpe_fn)(const char *, char *const[], char *const[]);

AGENT_EXPORT int execve(const char *path, char *const argv[], char *const envp[])
{
	execve_fn real = (execve_fn)dlsym(RTLD_NEXT, "execve");
	int held = flush_before_exec(path);
	int ret = real(path, argv, envp);
	exec_failed(held);
	return ret;
}

AGENT_EXPORT int execv(const char *path, char *const argv[])
{
	execvp_fn real = (execvp_fn)dlsym(RTLD_NEXT, "execv");
	int held = flush_before_exec(path);
	int ret = real(path, argv);
	exec_failed(held);
	return ret;
}

AGENT_EXPORT int execvp(const char *file, char *const argv[])
{
	execvp_fn real = (execvp_fn)dlsym(RTLD_NEXT, "execvp");
	int held = flush_before_exec(file);
	int ret = real(file, argv);
	exec_failed(held);
	return ret;
}

AGENT_EXPORT int execvpe(const char *file, char *const argv[], char *const envp[])
{
	execvpe_fn real = (execvpe_fn)dlsym(RTLD_NEXT, "execvpe");
	int held = flush_before_exec(file);
	int ret = real(file, argv, envp);
	exec_failed(held);
	return ret;
}

/* The execl family: the arguments gathered into an array (they end with
 * NULL; execle's environment follows it), then the vector form above. */
#define EXECL_MAX_ARGS 4096

static int collect_args(const char *arg0, va_list ap, char **argv, char ***envp)
{
	int n = 0;
	argv[n++] = (char *)arg0;
	while (arg0 && (argv[n] = va_arg(ap, char *)) != NULL)
		if (++n == EXECL_MAX_ARGS) {
			errno = E2BIG;
			return -1;
		}
	if (!arg0)
		argv[0] = NULL;
	if (envp)
		*envp = va_arg(ap, char **);
	return 0;
}

AGENT_EXPORT int execl(const char *path, const char *arg0, ...)
{
	char *argv[EXECL_MAX_ARGS + 1];
	va_list ap;
	va_start(ap, arg0);
	int err = collect_args(arg0, ap, argv, NULL);
	va_end(ap);
	return err ? -1 : execv(path, argv);
}

AGENT_EXPORT int execlp(const char *file, const char *arg0, ...)
{
	char *argv[EXECL_MAX_ARGS + 1];
	va_list ap;
	va_start(ap, arg0);
	int err = collect_args(arg0, ap, argv, NULL);
	va_end(ap);
	return err ? -1 : execvp(file, argv);
}

AGENT_EXPORT int execle(const char *path, const char *arg0, ...)
{
	char *argv[EXECL_MAX_ARGS + 1], **envp;
	va_list ap;
	va_start(ap, arg0);
	int err = collect_args(arg0, ap, argv, &envp);
	va_end(ap);
	return err ? -1 : execve(path, argv, envp);
}

/* fork: the file lock is held across it so the child never inherits a
 * half-written record or a writer in the middle of a drain. */
static void before_fork(void)
{
	if (ag.active) {
		pthread_mutex_lock(&ctl_lock);
		pthread_mutex_lock(&file_lock);
	}
}

static void after_fork_parent(void)
{
	if (ag.active) {
		pthread_mutex_unlock(&file_lock);
		pthread_mutex_unlock(&ctl_lock);
	}
}

static void after_fork_child(void)
{
	if (!ag.active)
		return;
	pthread_mutex_unlock(&file_lock);
	pthread_mutex_unlock(&ctl_lock);
	/* The parent's writer and control threads do not exist here. */
	writer_running = 0;
	atomic_store(&agent_threads, 0);
	agent_ctl_forget();
	agent_fd_close(&ag.file); /* the parent's, unless the program reused the number */
	/* Events in the rings were recorded by the parent, which writes them. */
	uint32_t me = (uint32_t)syscall(SYS_gettid);
	struct ring *mine = NULL;
	for (struct ring *r = atomic_load(&all_rings), *next; r; r = next) {
		next = r->next; /* before the munmap below */
		if (r == my_ring) {
			mine = r;
			continue;
		}
		/* a dead ring kept only its first page (drain_all) */
		size_t keep = (sizeof(struct ring) + 4095) & ~(size_t)4095;
		munmap(r, atomic_load(&r->dead) ? keep : r->map_size);
	}
	atomic_store(&all_rings, mine);
	if (mine) {
		mine->next = NULL;
		mine->tid = me;
		mine->named = 0;
		atomic_store(&mine->tail, atomic_load(&mine->head));
		atomic_store(&mine->lost_total, 0);
		atomic_store(&mine->noret_total, 0);
		mine->lost_pending = 0;
	}
	atomic_store(&lost_no_ring, 0);
	events_written = 0;
	guard_skips_restart(); /* the parent's are in its file */
	nseen = 0;
	if (!ag.fork_follow) {
		/* Unregistering here would wait for a grace period that includes
		 * the parent's other threads, absent in the child: stay patched,
		 * record nothing. */
		atomic_store(&recording, 0);
		ag.active = 0;
		return;
	}
	uint32_t ppid = (uint32_t)getppid();
	ag.forked = 1;
	ag.pid = getpid();
	if (open_trace_file() < 0) {
		atomic_store(&recording, 0);
		ag.active = 0;
		return;
	}
	write_header(ppid);
	write_symbols();
	if (start_writer() != 0) {
		atomic_store(&recording, 0);
		return;
	}
	/* No control socket: see agent_control() on fork children. */
}

/*
 * Configuration: the environment (record), or for a process the agent was
 * injected into (attach) the file <ctl dir>/attach-<pid>.conf the CLI
 * wrote: NAME=VALUE lines, accepted only from our private directory, a
 * regular file of ours with no group/other permission; read once, removed.
 */
static char attach_conf[8192];

static void load_attach_conf(void)
{
	char dir[200], path[256];
	const char *why;
	if (stitch_trace_ctl_dir(dir, sizeof dir, 0, &why) != 0)
		return;
	snprintf(path, sizeof path, "%s/attach-%d.conf", dir, (int)getpid());
	int fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return;
	struct stat st;
	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_uid != getuid() || (st.st_mode & 077)) {
		agent_say("ignoring %s: not a private file of this user", path);
		close(fd);
		return;
	}
	ssize_t n = read(fd, attach_conf, sizeof attach_conf - 1);
	close(fd);
	unlink(path);
	if (n <= 0)
		return;
	attach_conf[n] = '\0';
	for (char *c = attach_conf; *c; c++)
		if (*c == '\n')
			*c = '\0';
	attach_conf[n] = '\0';
	attached = 1;
	(void)n;
}

static const char *cfg(const char *name)
{
	if (!attached)
		return getenv(name);
	size_t k = strlen(name);
	for (const char *p = attach_conf; p < attach_conf + sizeof attach_conf && *p; p += strlen(p) + 1)
		if (strncmp(p, name, k) == 0 && p[k] == '=')
			return p + k + 1;
	return NULL;
}

static uint64_t env_u64(const char *name, uint64_t dflt)
{
	const char *v = cfg(name);
	if (!v || !*v)
		return dflt;
	char *end;
	errno = 0;
	unsigned long long x = strtoull(v, &end, 0);
	if (errno || *end) {
		agent_say("ignoring %s=%s: not a number", name, v);
		return dflt;
	}
	return x;
}

__attribute__((constructor)) static void agent_start(void)
{
	const char *dir = getenv("STITCH_TRACE_DIR");
	if (!dir || !*dir) {
		load_attach_conf();
		dir = cfg("STITCH_TRACE_DIR");
		if (!dir || !*dir)
			return;
	}
	if (strlen(dir) >= sizeof ag.dir) {
		agent_say("STITCH_TRACE_DIR too long");
		return;
	}
	strcpy(ag.dir, dir);
	pthread_sigmask(SIG_BLOCK, NULL, &program_sigmask);
	ag.graph = env_u64("STITCH_TRACE_GRAPH", 0) != 0;
#ifndef STITCH_TRACE_HAVE_GRAPH
	if (ag.graph) {
		agent_say("this build of stitch has no function_graph: recording entries only");
		ag.graph = 0;
	}
#endif
	uint64_t depth = env_u64("STITCH_TRACE_DEPTH", 0);
	ag.depth_limit = depth && depth < UINT32_MAX ? (uint32_t)depth : UINT32_MAX;
	const char *fork_mode = cfg("STITCH_TRACE_FORK");
	ag.fork_follow = !(fork_mode && strcmp(fork_mode, "stop") == 0);
	ag.control = env_u64("STITCH_TRACE_CONTROL", 0) != 0;
	block_when_full = env_u64("STITCH_TRACE_BLOCK", 0) != 0;
	uint64_t tick = env_u64("STITCH_TRACE_TICK_MS", WRITER_TICK_MS);
	writer_tick_ms = tick >= 1 && tick <= 24 * 3600 * 1000u ? (long)tick : WRITER_TICK_MS;
	ag.ring_events = env_u64("STITCH_TRACE_BUFFER", DEFAULT_RING_EVENTS);
	if (ag.ring_events < 16 || (ag.ring_events & (ag.ring_events - 1)) || ag.ring_events > (1u << 26)) {
		agent_say("STITCH_TRACE_BUFFER must be a power of two in [16, 2^26]; using %u", DEFAULT_RING_EVENTS);
		ag.ring_events = DEFAULT_RING_EVENTS;
	}
	if (parse_filter(cfg("STITCH_TRACE_FILTER")) != 0) {
		agent_say("STITCH_TRACE_FILTER: too many or too long globs");
		return;
	}
	const char *clock_name = cfg("STITCH_TRACE_CLOCK");
	use_counter = !(clock_name && strcmp(clock_name, "monotonic") == 0);
	if (open_trace_file() < 0)
		return;
	ag.pid = getpid();
	ag.active = 1;
	write_header((uint32_t)getppid());
	dl_adds_seen = module_adds();
	pthread_atfork(before_fork, after_fork_parent, after_fork_child);
	pthread_mutex_lock(&ctl_lock);
	int sites = stitch_ftrace_site_count();
	if (sites > 0) {
		if (ag.graph && !stitch_ftrace_unwind_ready())
			agent_say("warning: a C++ exception or pthread_exit() through a traced function will end "
				  "this program (%s); trace without --graph", stitch_last_error());
		for (size_t i = 0; i < nrules; i++)
			if (rules[i].enable && glob_sites(rules[i].glob) == 0)
				agent_say("'%s' matches no instrumented function of this program; the other rules apply",
					  rules[i].glob);
		int err = apply_registration(ag.graph);
		char text[2048];
		if (rules_text(text, sizeof text) == (size_t)-1)
			text[0] = '\0';
		if (err)
			agent_say("nothing traced (rules \"%s\"): %s", text, stitch_last_error());
		else if (!ag.registered)
			agent_say("nothing traced: the rules \"%s\" select none of %d functions", text, sites);
	}
	/* sites == 0: the CLI names the flags; this process may be a helper
	 * (a shell) exec'ed on the way and must run undisturbed. */
	pthread_mutex_unlock(&ctl_lock);
	if (start_writer() != 0)
		return;
	/* Nothing to control in a helper without traceable functions (a shell
	 * on the way to the program): no socket, so `live DIR` skips it. */
	if (ag.control && sites > 0) {
		pthread_mutex_lock(&ctl_lock);
		ctl_started = agent_ctl_start() == 0;
		pthread_mutex_unlock(&ctl_lock);
	}
}

__attribute__((destructor)) static void agent_stop(void)
{
	if (!ag.active)
		return;
	agent_ctl_stop();
	pthread_mutex_lock(&ctl_lock);
	/* After unregister no callback runs anywhere (grace period), so the
	 * final drain below sees every event.  Not in a fork child: the
	 * library's /proc/self/mem descriptor was opened by the parent and
	 * still writes into the parent's code (docs/stitch-trace.md, Limits);
	 * the child has one thread here anyway, unless it made more. */
	if (ag.registered && !ag.forked && stitch_ftrace_unregister(cur_ops) == 0)
		ag.registered = 0;
	atomic_store(&recording, 0);
	pthread_mutex_unlock(&ctl_lock);
	stop_writer();
	pthread_mutex_lock(&file_lock);
	for (struct ring *r = atomic_load(&all_rings); r; r = r->next)
		r->named = atomic_load(&r->dead); /* live threads: their current names */
	drain_all(0);
	if (!ag.registered) { /* no callback can run any more */
		final_lost_markers();
		drain_all(0);
	}
	write_guard_skips();
	struct st_end e;
	totals(&e);
	put_record(ST_REC_END, &e, sizeof e, NULL, 0);
	agent_fd_close(&ag.file);
	pthread_mutex_unlock(&file_lock);
	ag.active = 0;
	uint64_t no_ring = atomic_load(&lost_no_ring);
	if (e.lost > no_ring + lost_unwritten)
		agent_say("%llu events lost (rings full); see `stitch-trace report`",
			  (unsigned long long)(e.lost - no_ring - lost_unwritten));
	if (lost_unwritten)
		agent_say("%llu events lost: they could not be written to %s (see above)",
			  (unsigned long long)lost_unwritten, ag.path);
	if (no_ring)
		agent_say("%llu events lost: a thread's ring could not be mapped (out of memory?)",
			  (unsigned long long)no_ring);
}
