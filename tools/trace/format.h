/* SPDX-License-Identifier: MIT */
/*
 * The trace file: what libstitch-agent.so writes and stitch-trace reads.
 * One file per traced process image, DIR/trace-<pid>[.<n>].dat (a new <n>
 * after exec, which keeps the pid).  Little-endian host layout: a trace is
 * read on the machine type it was recorded on (docs/stitch-trace.md).
 *
 *   header   struct st_file_header (64 bytes)
 *   records  struct st_rec_header, then `size` bytes of payload, repeated;
 *            each record's total size is a multiple of 8.
 *
 * Records appear in the order the writer thread produced them; a thread's
 * events are in its own order, and a SYM record precedes every event of
 * the site it names (the table is written before the sites are enabled).
 */
#ifndef STITCH_TRACE_FORMAT_H
#define STITCH_TRACE_FORMAT_H

#include <stdint.h>

#define ST_MAGIC "STITCHTR"
#define ST_VERSION 1

struct st_file_header {
	char magic[8];          /* ST_MAGIC, no NUL */
	uint32_t version;       /* ST_VERSION */
	uint32_t header_size;   /* sizeof(struct st_file_header) */
	uint32_t pid, ppid;     /* ppid: the tracing parent for a forked child, else getppid() */
	uint32_t clock_id;      /* CLOCK_MONOTONIC: every ts_ns below */
	uint32_t flags;         /* ST_FLAG_* the recording started with */
	uint64_t start_ns;      /* monotonic time the agent started */
	uint64_t start_realtime_ns;
	uint32_t exec_seq;      /* <n> of the file name: images of this pid before this one */
	uint32_t reserved[3];
};
#define ST_FLAG_GRAPH 1u   /* exits are recorded */
#define ST_FLAG_FORKED 2u  /* this process is a fork child of a traced one */
#define ST_FLAG_COUNTER 4u /* event ts_ns are CPU counter values: convert with the CLOCK records */

enum st_rec_type {
	ST_REC_SYM = 1,    /* struct st_sym, then name '\0' module '\0' */
	ST_REC_EVENTS = 2, /* struct st_events, then count struct st_event */
	ST_REC_THREAD = 3, /* struct st_thread: a thread's name */
	ST_REC_MARK = 4,   /* struct st_mark, then the new filter text '\0' */
	ST_REC_END = 5,    /* struct st_end: the process exited cleanly */
	ST_REC_EXEC = 6,   /* struct st_end, then the path '\0': the image exec'ed */
	ST_REC_CMDLINE = 7, /* the command line, arguments separated by '\0' */
	ST_REC_CLOCK = 8,  /* struct st_clock: a counter value and the monotonic ns at that moment */
	ST_REC_GUARD = 9   /* struct st_guard: calls made inside callbacks, not recorded (the last one counts) */
};

/* Calls of traced functions made while their thread was inside a callback
 * - the agent's own code, or a signal handler that interrupted it (with
 * --block, one waiting for room in its ring) - ran untraced: the library's
 * recursion guard skipped them (stitch_stats.ftrace_guard_skips).  Their
 * number since this file began; written when it changed (at a drain) and
 * before END and EXEC.  Added after the first files were written: readers
 * skip record types they do not know, so ST_VERSION stayed 1; a file
 * without this record says nothing about such calls (a writer from before
 * it, or none happened). */
struct st_guard {
	uint64_t skipped;
};

/* With ST_FLAG_COUNTER, readers map counter values to ns with the least-
 * squares line through every CLOCK record of the file (one at the start,
 * one per drain, one at the end): one linear map per file, so converted
 * times keep the counter's order. */
struct st_clock {
	uint64_t count;
	uint64_t ns;
};

struct st_rec_header {
	uint32_t type; /* enum st_rec_type */
	uint32_t size; /* payload bytes after this header, a multiple of 8 */
};

struct st_sym {
	uint64_t addr; /* the function's address: the ip of its events */
	uint64_t size; /* of name '\0' module '\0' that follow, before padding */
};

struct st_events {
	uint32_t tid;
	uint32_t count;
};

enum st_event_kind {
	ST_EV_ENTRY = 1,
	ST_EV_EXIT = 2,     /* normal return */
	ST_EV_UNWIND = 3,   /* the frame was abandoned (longjmp, exception); ts = when detected */
	ST_EV_LOST = 4,     /* `ip` events were lost here: the ring was full */
	ST_EV_NORET = 5     /* an entry whose return could not be hooked (shadow stack full) */
};

struct st_event {
	uint64_t ts_ns;  /* CLOCK_MONOTONIC ns, or a counter value (ST_FLAG_COUNTER) */
	uint64_t ip;    /* function address (ST_EV_LOST: number of events lost) */
	uint32_t kind;  /* enum st_event_kind */
	uint32_t gen;   /* filter generation read at the event; odd while a filter changes */
};

struct st_thread {
	uint32_t tid;
	uint32_t reserved;
	char name[16];
};

/* A filter change made through the control channel: events with gen
 * == gen_before used the old filter, gen_after the new one. */
struct st_mark {
	uint64_t ts_begin, ts_end;
	uint32_t gen_before, gen_after;
	uint32_t ok, graph;
};

struct st_end {
	uint64_t ts_ns;
	uint64_t events;   /* events written for all threads */
	uint64_t lost;     /* events lost in full rings */
	uint64_t noret;    /* entries whose return could not be hooked */
};

#endif
