/* SPDX-License-Identifier: MIT */
/* Reading trace files (format.h) into per-thread call trees. */
#ifndef STITCH_TRACE_READER_H
#define STITCH_TRACE_READER_H

#include <stddef.h>
#include <stdint.h>

#include "format.h"

/* How a call ended. */
enum tr_end {
	TR_END_EXIT,     /* it returned */
	TR_END_UNWIND,   /* its frame was abandoned (longjmp, exception) */
	TR_END_MISSING,  /* no exit recorded: lost, a return the library could not hook, or
			  * open when its process exited (or exec'ed) */
	TR_END_RUNNING,  /* still running when the trace ended (its process wrote no END) */
	TR_END_NONE,     /* an entry-only trace: no exits recorded at all */
	TR_END_GAP,      /* open where its thread lost events: ended at its last event
			  * before the gap, the stack after a gap being unknown */
	TR_END_SWITCH,   /* its function left the filter live (pause, disable, graph off)
			  * while it ran, and no exit came: ended when last known running */
};

/* One call, in pre-order; children follow their parent directly. */
struct tr_node {
	uint64_t ip;
	uint64_t start, end;   /* ns; end == start unless the end is known */
	uint64_t children_ns;  /* time in direct children, for self time */
	uint32_t depth;
	uint32_t nchildren;
	uint32_t subtree;      /* nodes in this subtree, itself included */
	enum tr_end how;
	uint32_t gen;          /* filter generation of the entry */
};

struct tr_thread {
	uint32_t tid;
	char name[17];
	struct st_event *ev;   /* raw events in order */
	size_t nev, capev;
	struct tr_node *node;  /* the call tree (tr_build) */
	size_t nnode;
	uint64_t lost;         /* events lost (ST_EV_LOST) */
	uint64_t lost_exits;   /* entries whose exit never came (every end but EXIT, UNWIND, RUNNING, NONE) */
	uint64_t orphan_exits; /* exits of calls whose entry was not recorded */
	uint64_t noret;
};

struct tr_sym {
	uint64_t addr;
	char *name, *module;
	char *raw;  /* the name as recorded, when name is its demangled form; else NULL */
};

struct tr_mark {
	struct st_mark m;
	char *filter;
};

struct tr_proc {
	char *path;
	struct st_file_header h;
	char *cmdline;          /* arguments joined by spaces */
	char *exe;              /* argv[0]'s base name */
	struct tr_thread *thr;
	size_t nthr;
	struct tr_sym *sym;     /* sorted by addr */
	size_t nsym;
	struct tr_mark *mark;
	size_t nmark;
	int ended;              /* ST_REC_END or ST_REC_EXEC seen */
	int has_exits;          /* recorded with --graph, or graph switched on live */
	struct st_clock *clk;   /* ST_FLAG_COUNTER: the (counter, ns) pairs */
	size_t nclk;
	int execed;
	char *exec_path;
	struct st_end end;
	uint64_t events_in_file; /* skip_events: events in the EVENTS records (loss markers not counted) */
	uint64_t lost_in_file;   /* skip_events: events lost, by the loss markers */
	/* calls made inside callbacks, not recorded (ST_REC_GUARD, the last
	 * one); 0 if the file has none */
	uint64_t guard_skipped;
};

struct tr_trace {
	struct tr_proc *proc;   /* sorted by start time */
	size_t nproc;
	uint64_t t0;            /* earliest start */
};

/* Symbols whose name is a C++ mangled one (_Z...) are loaded demangled
 * (libstdc++'s __cxa_demangle, when it can be loaded) unless this is 0. */
extern int tr_demangle;

/* Load every trace-*.dat of dir; 0, or -1 with a message on stderr. */
int tr_load(const char *dir, struct tr_trace *t);
/* The same, with flags: TR_SKIP_EVENTS loads only headers, symbols, marks
 * and totals; TR_QUIET_EMPTY returns -1 without a message when dir holds
 * no trace file (the caller says it its own way). */
enum { TR_SKIP_EVENTS = 1, TR_QUIET_EMPTY = 2 };
int tr_load_opt(const char *dir, struct tr_trace *t, int flags);
/*
 * Parse one trace file's bytes (format.h) into p; `name` is for messages.
 * 0, or -1 with a message on stderr (not a trace file, another format
 * version).  A damaged or truncated record ends the reading with a message
 * on stderr and keeps what came before it (a process killed while it wrote
 * leaves such a file): that is still 0.  Release with tr_proc_free().
 */
int tr_parse(const void *data, size_t size, const char *name, struct tr_proc *p, int skip_events);
void tr_proc_free(struct tr_proc *p);
/* Processes by start time, each one's threads by first event; sets t0. */
void tr_order(struct tr_trace *t);
/* The name of ip in a process ("0x..." in buf if unknown). */
const char *tr_sym_name(const struct tr_proc *p, uint64_t ip, char *buf, size_t size);
/* Does the trace record exits (graph mode)? */
int tr_has_exits(const struct tr_proc *p);

#endif
