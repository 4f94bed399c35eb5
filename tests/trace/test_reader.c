/* SPDX-License-Identifier: MIT */
/*
 * The reader and the outputs on hand-made recordings (format.h): what
 * they must make of lost events, live switches, a process's end, and
 * names with separators in them - cases a recorded program produces
 * only by chance (a full ring, a switch landing mid-call), made exact.
 */
#include <stdarg.h>
#include <string.h>

#include "common/check.h"
#include "output.h"
#include "reader.h"

/* A trace file being written. */
struct file {
	unsigned char buf[8192];
	size_t n;
};

static void put(struct file *f, const void *p, size_t n)
{
	if (f->n + n > sizeof f->buf) {
		fprintf(stderr, "test_reader: a recording over %zu bytes\n", sizeof f->buf);
		exit(1);
	}
	if (n) /* p may be NULL then, which memcpy does not allow */
		memcpy(f->buf + f->n, p, n);
	f->n += n;
}

static void record(struct file *f, uint32_t type, const void *a, size_t na, const void *b, size_t nb)
{
	static const char zeros[8];
	size_t size = (na + nb + 7) & ~(size_t)7;
	struct st_rec_header rh = { type, (uint32_t)size };
	put(f, &rh, sizeof rh);
	put(f, a, na);
	put(f, b, nb);
	put(f, zeros, size - na - nb);
}

/* A file with the header (graph mode), the command line "t" and the
 * functions main, alpha_one, alpha_two, and one named by `odd`. */
#define MAIN 0x1000
#define ONE 0x2000
#define TWO 0x3000
#define ODD 0x4000
static void begin(struct file *f, const char *odd)
{
	f->n = 0;
	struct st_file_header h = { .version = ST_VERSION, .header_size = sizeof h, .pid = 10, .clock_id = 1,
				    .flags = ST_FLAG_GRAPH };
	memcpy(h.magic, ST_MAGIC, 8);
	put(f, &h, sizeof h);
	record(f, ST_REC_CMDLINE, "t", 2, NULL, 0);
	const struct { uint64_t addr; const char *name; } syms[] = {
		{ MAIN, "main" }, { ONE, "alpha_one" }, { TWO, "alpha_two" }, { ODD, odd }
	};
	for (size_t i = 0; i < sizeof syms / sizeof *syms; i++) {
		char names[64];
		size_t ln = strlen(syms[i].name) + 1;
		memcpy(names, syms[i].name, ln);
		memcpy(names + ln, "t", 2);
		struct st_sym s = { syms[i].addr, ln + 2 };
		record(f, ST_REC_SYM, &s, sizeof s, names, ln + 2);
	}
}

/* One EVENTS record of thread 1: (kind, ip, ts) triples, kind 0 ending
 * them; every event under generation gen. */
static void events(struct file *f, uint32_t gen, ...)
{
	struct st_event ev[32];
	uint32_t n = 0;
	va_list ap;
	va_start(ap, gen);
	for (uint32_t kind; (kind = va_arg(ap, uint32_t)) != 0 && n < 32; n++) {
		uint64_t ip = va_arg(ap, uint64_t), ts = va_arg(ap, uint64_t);
		ev[n] = (struct st_event){ .ts_ns = ts, .ip = ip, .kind = kind, .gen = gen };
	}
	va_end(ap);
	struct st_events h = { 1, n };
	record(f, ST_REC_EVENTS, &h, sizeof h, ev, n * sizeof *ev);
}
#define E(ip, ts) (uint32_t)ST_EV_ENTRY, (uint64_t)(ip), (uint64_t)(ts)
#define X(ip, ts) (uint32_t)ST_EV_EXIT, (uint64_t)(ip), (uint64_t)(ts)
#define LOST(n, ts) (uint32_t)ST_EV_LOST, (uint64_t)(n), (uint64_t)(ts)
#define END_EV (uint32_t)0

/* A live switch from generation gen to gen + 2 with these rules. */
static void mark(struct file *f, uint32_t gen, uint32_t graph, const char *rules)
{
	struct st_mark m = { .ts_begin = 1, .ts_end = 2, .gen_before = gen, .gen_after = gen + 2, .ok = 1,
			     .graph = graph };
	record(f, ST_REC_MARK, &m, sizeof m, rules, strlen(rules) + 1);
}

static void end(struct file *f)
{
	struct st_end e = { .ts_ns = 1000 };
	record(f, ST_REC_END, &e, sizeof e, NULL, 0);
}

/* What an output prints for the file (parsed into *p, which the caller frees). */
static char *output(const struct file *f, struct tr_proc *p, void (*print)(FILE *, const struct tr_trace *))
{
	CHECK_EQ(tr_parse(f->buf, f->n, "test", p, 0), 0);
	struct tr_trace tr = { .proc = p, .nproc = 1 };
	tr_order(&tr);
	char *s = NULL;
	size_t n = 0;
	FILE *out = open_memstream(&s, &n);
	print(out, &tr);
	fclose(out);
	return s;
}

static void tree(FILE *out, const struct tr_trace *tr)
{
	out_tree(out, tr, 0);
}

static void report(FILE *out, const struct tr_trace *tr)
{
	out_report(out, tr, SORT_CALLS);
}

static void replay(FILE *out, const struct tr_trace *tr)
{
	out_replay(out, tr, 0);
}

static void folded_calls(FILE *out, const struct tr_trace *tr)
{
	out_folded(out, tr, 0);
}

static void check_output(const struct file *f, void (*print)(FILE *, const struct tr_trace *), const char *want,
			 const char *what)
{
	struct tr_proc p;
	char *got = output(f, &p, print);
	CHECK(strcmp(got, want) == 0, "%s:\n%s--- expected:\n%s", what, got, want);
	free(got);
	tr_proc_free(&p);
}

int main(void)
{
	static struct file f;

	/* Lost events: the calls open at the gap end there, at the last event
	 * before it; what follows is not nested under them (it was: main { g
	 * { f g { f } } } and g ran until the end), and their exit after the
	 * gap pairs with nothing. */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), E(TWO, 20), E(ONE, 30), X(ONE, 40), LOST(5, 100), E(TWO, 100), E(ONE, 110),
	       X(ONE, 120), X(TWO, 130), X(MAIN, 140), END_EV);
	end(&f);
	check_output(&f, tree,
		     "process t\nthread\n  LOST 5\n"
		     "  main (no exit recorded: events lost)\n"
		     "    alpha_two (no exit recorded: events lost)\n"
		     "      alpha_one\n"
		     "  alpha_two\n"
		     "    alpha_one\n",
		     "a gap");
	{
		struct tr_proc p;
		free(output(&f, &p, tree));
		const struct tr_thread *t = &p.thr[0];
		CHECK_EQ(t->nnode, 5);
		CHECK_EQ(t->node[1].end, 40); /* no time after the gap */
		CHECK_EQ(t->node[0].end, 40);
		CHECK_EQ(t->lost_exits, 2);
		CHECK_EQ(t->orphan_exits, 1); /* main's */
		tr_proc_free(&p);
	}

	/* Pause, resume: the calls open at the pause returned while nothing
	 * was traced; the calls after the resume are not theirs (they were:
	 * alpha_one called alpha_two).  main's exit came: it stays open. */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), E(TWO, 20), E(ONE, 30), END_EV);
	mark(&f, 0, 1, "");
	mark(&f, 2, 1, "+main +alpha_*");
	events(&f, 4, E(TWO, 100), E(ONE, 110), X(ONE, 120), X(TWO, 130), X(MAIN, 140), END_EV);
	end(&f);
	check_output(&f, tree,
		     "process t\nthread\n"
		     "  main\n"
		     "    alpha_two (no exit recorded: switched off live)\n"
		     "      alpha_one (no exit recorded: switched off live)\n"
		     "    alpha_two\n"
		     "      alpha_one\n",
		     "pause, then resume");

	/* The same, the calls returning after the resume: their exits are theirs. */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), E(TWO, 20), E(ONE, 30), END_EV);
	mark(&f, 0, 1, "");
	mark(&f, 2, 1, "+main +alpha_*");
	events(&f, 4, X(ONE, 120), X(TWO, 130), E(TWO, 135), X(TWO, 136), X(MAIN, 140), END_EV);
	end(&f);
	check_output(&f, tree, "process t\nthread\n  main\n    alpha_two\n      alpha_one\n    alpha_two\n",
		     "pause, resume, then the returns");

	/* A filter change: the rules (last match wins) switch alpha_one off,
	 * not alpha_two nor main, which never returns (the program exited in
	 * it: its process wrote END, so it is not running). */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), E(TWO, 20), E(ONE, 30), END_EV);
	mark(&f, 0, 1, "+main +alpha_* -alpha_one");
	events(&f, 2, X(TWO, 130), E(TWO, 135), X(TWO, 136), END_EV);
	end(&f);
	check_output(&f, tree,
		     "process t\nthread\n"
		     "  main (no exit recorded)\n"
		     "    alpha_two\n"
		     "      alpha_one (no exit recorded: switched off live)\n"
		     "    alpha_two\n",
		     "a filter change");
	/* graph off: every open call's return is given up */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), E(TWO, 20), END_EV);
	mark(&f, 0, 0, "+*");
	events(&f, 2, E(ONE, 100), END_EV);
	end(&f);
	check_output(&f, tree,
		     "process t\nthread\n"
		     "  main (no exit recorded: switched off live)\n"
		     "    alpha_two (no exit recorded: switched off live)\n"
		     "  alpha_one\n",
		     "graph off");

	/* Two calls switched off around a callee that stays traced: they ran
	 * at least until it returned (alpha_one ended at its last event
	 * before the switch, 40, before its own callee's 500). */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), E(ONE, 20), E(TWO, 30), E(ODD, 40), END_EV);
	mark(&f, 0, 1, "+main +odd");
	events(&f, 2, X(ODD, 500), X(MAIN, 600), END_EV);
	end(&f);
	check_output(&f, tree,
		     "process t\nthread\n"
		     "  main\n"
		     "    alpha_one (no exit recorded: switched off live)\n"
		     "      alpha_two (no exit recorded: switched off live)\n"
		     "        odd\n",
		     "switched off around a traced callee");
	{
		struct tr_proc p;
		free(output(&f, &p, tree));
		const struct tr_thread *t = &p.thr[0];
		CHECK_EQ(t->nnode, 4);
		CHECK_EQ(t->node[3].end, 500);
		CHECK_EQ(t->node[2].end, 500);
		CHECK_EQ(t->node[1].end, 500);
		tr_proc_free(&p);
	}

	/* A switch after the thread's last event (main waiting in a join
	 * across a pause): it applies to the thread's open calls too. */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), END_EV);
	mark(&f, 0, 1, "");
	end(&f);
	check_output(&f, tree, "process t\nthread\n  main (no exit recorded: switched off live)\n",
		     "a switch after the last event");

	/* Calls open at the end: still running if the process wrote no END
	 * record, else they never returned. */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), E(ONE, 20), END_EV);
	check_output(&f, tree, "process t\nthread\n  main (still running)\n    alpha_one (still running)\n",
		     "no END record");
	end(&f);
	check_output(&f, tree, "process t\nthread\n  main (no exit recorded)\n    alpha_one (no exit recorded)\n",
		     "an END record");

	/* Names with the folded format's separators, and a newline: one
	 * frame, one line (';' as ':', control characters as '?'); the tree
	 * and the other line outputs show them escaped. */
	begin(&f, "x;y\nz");
	events(&f, 0, E(MAIN, 10), E(ODD, 20), X(ODD, 30), X(MAIN, 40), END_EV);
	end(&f);
	check_output(&f, folded_calls, "main 1\nmain;x:y?z 1\n", "folded stacks");
	check_output(&f, tree, "process t\nthread\n  main\n    x;y\\nz\n", "tree");

	/* Calls made inside callbacks (ST_REC_GUARD): a running count, the last
	 * record the total; summaries say it next to the losses.  A file
	 * without the record (from before it) says nothing; a short one is
	 * damaged. */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), X(MAIN, 20), END_EV);
	end(&f);
	check_output(&f, out_events, "E 10 1 entry 0 10 main\nE 10 1 exit 0 20 main\n", "no guard record");
	{
		struct tr_proc p;
		char *got = output(&f, &p, report);
		CHECK(strstr(got, "inside callbacks") == NULL, "a file without a guard record:\n%s", got);
		free(got);
		tr_proc_free(&p);
	}
	begin(&f, "odd");
	struct st_guard g = { 2 };
	record(&f, ST_REC_GUARD, &g, sizeof g, NULL, 0);
	events(&f, 0, E(MAIN, 10), X(MAIN, 20), END_EV);
	g.skipped = 7;
	record(&f, ST_REC_GUARD, &g, sizeof g, NULL, 0);
	end(&f);
	check_output(&f, out_events, "G 10 7\nE 10 1 entry 0 10 main\nE 10 1 exit 0 20 main\n", "guard: dump --events");
	{
		struct tr_proc p;
		char *got = output(&f, &p, report);
		CHECK(strstr(got, "# process 10: 7 calls made inside callbacks (signal handlers interrupting tracing) "
				  "were not recorded\n") != NULL &&
			      strstr(got, "# 7 calls made inside callbacks (signal handlers interrupting tracing) were not "
					  "recorded: counts are low\n") != NULL,
		      "report of 7 calls inside callbacks:\n%s", got);
		free(got);
		tr_proc_free(&p);
		got = output(&f, &p, replay);
		CHECK(strstr(got, "# process 10: 7 calls made inside callbacks") != NULL, "replay:\n%s", got);
		free(got);
		tr_proc_free(&p);
	}
	/* too short for its count: damaged, the reading stops there (the END
	 * after it is not seen) */
	begin(&f, "odd");
	events(&f, 0, E(MAIN, 10), END_EV);
	record(&f, ST_REC_GUARD, NULL, 0, NULL, 0);
	end(&f);
	{
		struct tr_proc p;
		CHECK_EQ(tr_parse(f.buf, f.n, "test", &p, 0), 0);
		CHECK_EQ(p.guard_skipped, 0);
		CHECK_EQ(p.ended, 0);
		tr_proc_free(&p);
	}

	return check_summary("test_trace_reader");
}
