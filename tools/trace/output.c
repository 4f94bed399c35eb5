/* SPDX-License-Identifier: MIT */
/* What stitch-trace prints from a loaded trace: replay, report, dumps, flame graph. */
#include "output.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void *xcalloc(size_t n, size_t size)
{
	void *p = calloc(n ? n : 1, size);
	if (!p) {
		fprintf(stderr, "stitch-trace: out of memory\n");
		exit(1);
	}
	return p;
}

static void *xrealloc(void *old, size_t size)
{
	void *p = realloc(old, size ? size : 1);
	if (!p) {
		fprintf(stderr, "stitch-trace: out of memory\n");
		exit(1);
	}
	return p;
}

static char *xstrdup(const char *s)
{
	size_t n = strlen(s) + 1;
	return memcpy(xrealloc(NULL, n), s, n);
}

static void fmt_dur(char *buf, size_t size, uint64_t ns)
{
	if (ns < 1000)
		snprintf(buf, size, "%7" PRIu64 " ns", ns);
	else if (ns < 1000000)
		snprintf(buf, size, "%7.3f us", (double)ns / 1e3);
	else if (ns < 1000000000)
		snprintf(buf, size, "%7.3f ms", (double)ns / 1e6);
	else
		snprintf(buf, size, "%7.3f  s", (double)ns / 1e9);
}

static const char *end_note(enum tr_end how)
{
	switch (how) {
	case TR_END_UNWIND: return " (unwound)";
	case TR_END_MISSING: return " (no exit recorded)";
	case TR_END_RUNNING: return " (still running)";
	/* the reader ended these at the last moment it knew them running */
	case TR_END_GAP: return " (no exit recorded: events lost)";
	case TR_END_SWITCH: return " (no exit recorded: switched off live)";
	default: return "";
	}
}

/*
 * Text from the traced program (its command line, thread and exec'ed file
 * names, function names) on one line of text output: control characters
 * shown as C escapes, and a backslash doubled so that they are not
 * ambiguous (a newline in an argument split the "# process" line in two;
 * one in a symbol name could end a call line and fake another).  s itself
 * when it needs no escape, else the escaped text in *buf (grown as needed;
 * the caller frees it).
 */
static const char *line_text(const char *s, char **buf, size_t *cap)
{
	size_t n = 0;
	int plain = 1;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		size_t k = *c == '\\' || *c == '\n' || *c == '\t' ? 2 : *c < 0x20 || *c == 0x7f ? 4 : 1;
		n += k;
		plain &= k == 1;
	}
	if (plain)
		return s;
	if (n + 1 > *cap) {
		*cap = n + 1;
		*buf = xrealloc(*buf, *cap);
	}
	char *o = *buf;
	for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
		if (*c == '\n')
			o += sprintf(o, "\\n");
		else if (*c == '\t')
			o += sprintf(o, "\\t");
		else if (*c == '\\')
			o += sprintf(o, "\\\\");
		else if (*c < 0x20 || *c == 0x7f)
			o += sprintf(o, "\\x%02x", *c);
		else
			*o++ = (char)*c;
	}
	*o = '\0';
	return *buf;
}

static void put_line_text(FILE *out, const char *s)
{
	char *buf = NULL;
	size_t cap = 0;
	fputs(line_text(s, &buf, &cap), out);
	free(buf);
}

const char *out_guard_text(uint64_t n)
{
	static char text[160];
	snprintf(text, sizeof text,
		 "%" PRIu64 " call%s made inside callbacks (signal handlers interrupting tracing) %s not recorded", n,
		 n == 1 ? "" : "s", n == 1 ? "was" : "were");
	return text;
}

static void thread_summary(FILE *out, const struct tr_thread *t)
{
	if (t->lost)
		fprintf(out, "# thread %u: %" PRIu64 " events LOST (ring full): the tree has gaps\n", t->tid, t->lost);
	if (t->noret)
		fprintf(out, "# thread %u: %" PRIu64 " calls deeper than the return stack (exits not recorded)\n",
			t->tid, t->noret);
}

static void proc_title(FILE *out, const struct tr_proc *p)
{
	fprintf(out, "# process %u (", p->h.pid);
	put_line_text(out, p->cmdline);
	fprintf(out, ")%s%s", (p->h.flags & ST_FLAG_FORKED) ? ", forked" : "", p->execed ? ", then exec'ed " : "");
	if (p->execed)
		put_line_text(out, p->exec_path);
	fputc('\n', out);
	if (!p->ended)
		fprintf(out, "# process %u did not exit cleanly: its last events may be missing\n", p->h.pid);
	if (p->end.lost)
		fprintf(out, "# process %u: %" PRIu64 " events LOST in total\n", p->h.pid, p->end.lost);
	if (p->guard_skipped)
		fprintf(out, "# process %u: %s\n", p->h.pid, out_guard_text(p->guard_skipped));
}

/* What follows a name in a call line: "()", unless the name has its
 * parameter list already (a demangled C++ name). */
static const char *call_parens(const char *name)
{
	return strchr(name, '(') ? "" : "()";
}

void out_replay(FILE *out, const struct tr_trace *tr, int show_time)
{
	char nb[32], d[32], *eb = NULL;
	size_t ecap = 0;
	for (size_t pi = 0; pi < tr->nproc; pi++) {
		const struct tr_proc *p = &tr->proc[pi];
		proc_title(out, p);
		int graph = tr_has_exits(p);
		for (size_t ti = 0; ti < p->nthr; ti++) {
			const struct tr_thread *t = &p->thr[ti];
			fprintf(out, "# thread %u (", t->tid);
			put_line_text(out, t->name);
			fputs(")\n", out);
			thread_summary(out, t);
			if (show_time)
				fprintf(out, "#%s %s  FUNCTION\n", graph ? "  DURATION  " : "  TIMESTAMP ", "   TID  ");
			/* ends of open calls, innermost on top */
			size_t *stack = xcalloc(t->nnode + 1, sizeof *stack), sp = 0;
			for (size_t i = 0; i <= t->nnode; i++) {
				uint32_t depth = i < t->nnode ? t->node[i].depth : 0;
				while (sp && t->node[stack[sp - 1]].depth >= depth) {
					const struct tr_node *n = &t->node[stack[--sp]];
					fmt_dur(d, sizeof d, n->end - n->start);
					if (show_time)
						fprintf(out, "%s [%6u] | ", d, t->tid);
					fprintf(out, "%*s} /* %s%s */\n", 2 * (int)n->depth, "",
						line_text(tr_sym_name(p, n->ip, nb, sizeof nb), &eb, &ecap), end_note(n->how));
				}
				if (i == t->nnode)
					break;
				const struct tr_node *n = &t->node[i];
				const char *name = line_text(tr_sym_name(p, n->ip, nb, sizeof nb), &eb, &ecap);
				if (!graph) {
					if (show_time)
						fprintf(out, "%12.6f [%6u] | ", (double)(n->start - tr->t0) / 1e9, t->tid);
					fprintf(out, "%s%s\n", name, call_parens(name));
				} else if (n->nchildren == 0) {
					fmt_dur(d, sizeof d, n->end - n->start);
					if (show_time)
						fprintf(out, "%s [%6u] | ", n->how == TR_END_EXIT ? d : "          ", t->tid);
					fprintf(out, "%*s%s%s;%s\n", 2 * (int)n->depth, "", name, call_parens(name),
						end_note(n->how));
				} else {
					if (show_time)
						fprintf(out, "%10s [%6u] | ", "", t->tid);
					fprintf(out, "%*s%s%s {\n", 2 * (int)n->depth, "", name, call_parens(name));
					stack[sp++] = i;
				}
			}
			free(stack);
		}
	}
	free(eb);
}

/* ---- tree dump: the canonical form the tests compare ----------------- */

struct strbuf {
	char *s;
	size_t n, cap;
};

static void sb_add(struct strbuf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void sb_add(struct strbuf *b, const char *fmt, ...)
{
	va_list ap;
	for (;;) {
		va_start(ap, fmt);
		int k = vsnprintf(b->s ? b->s + b->n : NULL, b->s ? b->cap - b->n : 0, fmt, ap);
		va_end(ap);
		if (k < 0)
			return;
		if (b->s && (size_t)k < b->cap - b->n) {
			b->n += (size_t)k;
			return;
		}
		b->cap = 2 * (b->cap + (size_t)k + 64);
		b->s = realloc(b->s, b->cap);
		if (!b->s) {
			fprintf(stderr, "stitch-trace: out of memory\n");
			exit(1);
		}
	}
}

/* Subtrees i and j print the same (names, shape, ends). */
static int same_subtree(const struct tr_thread *t, size_t i, size_t j)
{
	if (t->node[i].subtree != t->node[j].subtree)
		return 0;
	for (uint32_t k = 0; k < t->node[i].subtree; k++) {
		const struct tr_node *a = &t->node[i + k], *b = &t->node[j + k];
		if (a->ip != b->ip || a->nchildren != b->nchildren || a->how != b->how ||
		    a->depth - t->node[i].depth != b->depth - t->node[j].depth)
			return 0;
	}
	return 1;
}

/* Print node i's subtree at indent; with collapse, runs of identical
 * sibling subtrees print once with " *N". Returns the next sibling. */
static size_t tree_node(struct strbuf *b, const struct tr_proc *p, const struct tr_thread *t, size_t i,
			int indent, int collapse, uint32_t repeat)
{
	char nb[32], *eb = NULL;
	size_t ecap = 0;
	const struct tr_node *n = &t->node[i];
	sb_add(b, "%*s%s%s", 2 * indent, "", line_text(tr_sym_name(p, n->ip, nb, sizeof nb), &eb, &ecap),
	       end_note(n->how));
	free(eb);
	if (repeat > 1)
		sb_add(b, " *%u", repeat);
	sb_add(b, "\n");
	size_t j = i + 1;
	for (uint32_t c = 0; c < n->nchildren;) {
		uint32_t run = 1;
		if (collapse)
			for (size_t k = j + t->node[j].subtree; c + run < n->nchildren && same_subtree(t, j, k);
			     k += t->node[k].subtree)
				run++;
		tree_node(b, p, t, j, indent + 1, collapse, run);
		for (uint32_t r = 0; r < run; r++)
			j += t->node[j].subtree;
		c += run;
	}
	return j;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

void out_tree(FILE *out, const struct tr_trace *tr, int collapse)
{
	/* Each process block, then the blocks sorted: pids, tids and which
	 * thread or child started first are not part of the result. */
	char **blocks = xcalloc(tr->nproc, sizeof *blocks);
	for (size_t pi = 0; pi < tr->nproc; pi++) {
		const struct tr_proc *p = &tr->proc[pi];
		char **tb = xcalloc(p->nthr, sizeof *tb);
		size_t ntb = 0;
		for (size_t ti = 0; ti < p->nthr; ti++) {
			const struct tr_thread *t = &p->thr[ti];
			struct strbuf b = { 0 };
			sb_add(&b, "thread\n");
			if (t->lost)
				sb_add(&b, "  LOST %" PRIu64 "\n", t->lost);
			/* top-level calls, collapsed like siblings */
			for (size_t i = 0; i < t->nnode;) {
				uint32_t run = 1;
				size_t k = i + t->node[i].subtree;
				if (collapse)
					for (; k < t->nnode && same_subtree(t, i, k); k += t->node[k].subtree)
						run++;
				tree_node(&b, p, t, i, 1, collapse, run);
				for (uint32_t r = 0; r < run; r++)
					i += t->node[i].subtree;
			}
			tb[ntb++] = b.s ? b.s : strdup("");
		}
		if (ntb > 1) /* qsort's array may not be NULL, even empty */
			qsort(tb, ntb, sizeof *tb, cmp_str);
		struct strbuf b = { 0 };
		sb_add(&b, "process %s%s%s\n", p->exe, (p->h.flags & ST_FLAG_FORKED) ? " forked" : "",
		       p->execed ? " exec" : "");
		for (size_t i = 0; i < ntb; i++) {
			sb_add(&b, "%s", tb[i]);
			free(tb[i]);
		}
		free(tb);
		blocks[pi] = b.s;
	}
	if (tr->nproc > 1)
		qsort(blocks, tr->nproc, sizeof *blocks, cmp_str);
	for (size_t i = 0; i < tr->nproc; i++) {
		fputs(blocks[i], out);
		free(blocks[i]);
	}
	free(blocks);
}

/* ---- report ----------------------------------------------------------- */

struct fstat {
	uint64_t ip;
	const char *name;
	uint64_t calls, total, self;
	uint32_t active; /* instances on the current stack: total counts the outermost only */
};

static int sort_key;

static int cmp_fstat(const void *a, const void *b)
{
	const struct fstat *x = a, *y = b;
	uint64_t u, v;
	switch (sort_key) {
	case SORT_SELF: u = x->self, v = y->self; break;
	case SORT_CALLS: u = x->calls, v = y->calls; break;
	case SORT_NAME: return strcmp(x->name, y->name);
	default: u = x->total, v = y->total; break;
	}
	if (u != v)
		return u > v ? -1 : 1;
	return strcmp(x->name, y->name);
}

static struct fstat *fstat_of(struct fstat **tab, size_t *n, uint64_t ip, const char *name)
{
	for (size_t i = 0; i < *n; i++)
		if ((*tab)[i].ip == ip && strcmp((*tab)[i].name, name) == 0)
			return &(*tab)[i];
	*tab = realloc(*tab, (*n + 1) * sizeof **tab);
	if (!*tab)
		exit(1);
	struct fstat *f = &(*tab)[(*n)++];
	*f = (struct fstat){ .ip = ip, .name = name };
	return f;
}

int out_report(FILE *out, const struct tr_trace *tr, int key)
{
	char d1[32], d2[32], nb[32];
	uint64_t lost = 0, lost_exits = 0, noret = 0, orphans = 0, guard_skipped = 0;
	for (size_t pi = 0; pi < tr->nproc; pi++) {
		const struct tr_proc *p = &tr->proc[pi];
		guard_skipped += p->guard_skipped;
		struct fstat *tab = NULL;
		size_t n = 0;
		int graph = tr_has_exits(p);
		for (size_t ti = 0; ti < p->nthr; ti++) {
			const struct tr_thread *t = &p->thr[ti];
			lost += t->lost;
			lost_exits += t->lost_exits;
			orphans += t->orphan_exits;
			noret += t->noret;
			/* open calls (indexes into tab, which may move), to count a
			 * recursion's time once: for its outermost instance */
			size_t *stack = xcalloc(t->nnode + 1, sizeof *stack);
			uint32_t *depth = xcalloc(t->nnode + 1, sizeof *depth);
			size_t sp = 0;
			for (size_t i = 0; i < t->nnode; i++) {
				const struct tr_node *nd = &t->node[i];
				while (sp && depth[sp - 1] >= nd->depth)
					tab[stack[--sp]].active--;
				char *eb = NULL;
				size_t ecap = 0;
				const char *shown = line_text(tr_sym_name(p, nd->ip, nb, sizeof nb), &eb, &ecap);
				char *name = eb ? eb : strdup(shown);
				struct fstat *f = fstat_of(&tab, &n, nd->ip, name);
				if (f->name != name)
					free(name);
				f->calls++;
				uint64_t dur = nd->end - nd->start;
				if (!f->active)
					f->total += dur;
				f->self += dur > nd->children_ns ? dur - nd->children_ns : 0;
				f->active++;
				stack[sp] = (size_t)(f - tab);
				depth[sp++] = nd->depth;
			}
			while (sp)
				tab[stack[--sp]].active--;
			free(stack);
			free(depth);
		}
		sort_key = key;
		if (n > 1) /* tab is NULL for a process without events */
			qsort(tab, n, sizeof *tab, cmp_fstat);
		proc_title(out, p);
		if (graph)
			fprintf(out, "  Total time   Self time       Calls  Function\n"
				     "  ==========  ==========  ==========  ====================\n");
		else
			fprintf(out, "       Calls  Function   (entries only: record with --graph for times)\n"
				     "  ==========  ====================\n");
		for (size_t i = 0; i < n; i++) {
			if (graph) {
				fmt_dur(d1, sizeof d1, tab[i].total);
				fmt_dur(d2, sizeof d2, tab[i].self);
				fprintf(out, "  %s  %s  %10" PRIu64 "  %s\n", d1, d2, tab[i].calls, tab[i].name);
			} else {
				fprintf(out, "  %10" PRIu64 "  %s\n", tab[i].calls, tab[i].name);
			}
			free((char *)tab[i].name);
		}
		free(tab);
	}
	if (lost)
		fprintf(out, "# %" PRIu64 " events were LOST (a thread's ring was full, or could not be mapped): counts are low\n", lost);
	if (guard_skipped)
		fprintf(out, "# %s: counts are low\n", out_guard_text(guard_skipped));
	if (lost_exits)
		fprintf(out, "# %" PRIu64 " calls had no exit recorded\n", lost_exits);
	if (orphans)
		fprintf(out, "# %" PRIu64 " exits had no entry recorded (calls entered before tracing, graph mode or a "
			"gap began): not counted\n", orphans);
	if (noret)
		fprintf(out, "# %" PRIu64 " calls were deeper than the return stack: their exits were not recorded, "
			"and the calls around them count their time as self time\n", noret);
	return 0;
}

/* ---- Chrome trace JSON ------------------------------------------------ */

static void json_str(FILE *out, const char *s)
{
	fputc('"', out);
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;
		if (c == '"' || c == '\\')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c >= 0x7f)
			fprintf(out, "\\u%04x", c);
		else
			fputc(c, out);
	}
	fputc('"', out);
}

/* Complete ("X") events for calls whose end is known, instant ("i")
 * events for the rest: nothing can be unbalanced. */
void out_chrome(FILE *out, const struct tr_trace *tr)
{
	char nb[32];
	int first = 1;
	fprintf(out, "{\"displayTimeUnit\":\"ns\",\"traceEvents\":[\n");
	for (size_t pi = 0; pi < tr->nproc; pi++) {
		const struct tr_proc *p = &tr->proc[pi];
		fprintf(out, "%s{\"ph\":\"M\",\"name\":\"process_name\",\"pid\":%u,\"tid\":%u,\"args\":{\"name\":",
			first ? "" : ",\n", p->h.pid, p->h.pid);
		json_str(out, p->cmdline);
		fprintf(out, "}}");
		first = 0;
		for (size_t ti = 0; ti < p->nthr; ti++) {
			const struct tr_thread *t = &p->thr[ti];
			fprintf(out, ",\n{\"ph\":\"M\",\"name\":\"thread_name\",\"pid\":%u,\"tid\":%u,\"args\":{\"name\":",
				p->h.pid, t->tid);
			json_str(out, t->name);
			fprintf(out, "}}");
			for (size_t i = 0; i < t->nnode; i++) {
				const struct tr_node *n = &t->node[i];
				double ts = (double)(n->start - tr->t0) / 1e3;
				fprintf(out, ",\n{\"name\":");
				json_str(out, tr_sym_name(p, n->ip, nb, sizeof nb));
				if (n->how == TR_END_EXIT || n->how == TR_END_UNWIND || n->how == TR_END_RUNNING)
					fprintf(out, ",\"ph\":\"X\",\"ts\":%.3f,\"dur\":%.3f", ts,
						(double)(n->end - n->start) / 1e3);
				else
					fprintf(out, ",\"ph\":\"i\",\"s\":\"t\",\"ts\":%.3f", ts);
				fprintf(out, ",\"pid\":%u,\"tid\":%u", p->h.pid, t->tid);
				if (n->how == TR_END_UNWIND || n->how == TR_END_RUNNING)
					fprintf(out, ",\"args\":{\"end\":\"%s\"}", n->how == TR_END_UNWIND ? "unwound" : "running");
				fprintf(out, "}");
			}
		}
	}
	fprintf(out, "\n]}\n");
}

/* ---- folded stacks ----------------------------------------------------- */

/*
 * A merged call tree for the folded stacks and the flame graph: one node
 * per distinct stack of names, found from its parent and its name by hash, so building it
 * takes time proportional to the calls and memory to the distinct stacks.
 * (A line per call, "a;b;c", then sorted, took calls x depth: 83 s and
 * 8.8 GB for a 1000-deep recursion recorded into 48 MB.)
 */
struct mnode {
	uint32_t parent, name;  /* node 0 is the root */
	uint32_t child, sibling; /* 1-based, 0 none: filled after building */
	uint64_t value;
};

struct mtree {
	char **name;            /* interned names */
	size_t nname, capname;
	uint32_t *name_slot;    /* hash of names: id + 1 */
	size_t name_cap;
	struct mnode *node;
	size_t nnode, capnode;
	uint32_t *node_slot;    /* hash of (parent, name): node + 1 */
	size_t node_cap;
};

static uint64_t mix64(uint64_t h)
{
	h ^= h >> 33;
	h *= 0xff51afd7ed558ccdu;
	h ^= h >> 33;
	return h;
}

static uint64_t str_hash(const char *s)
{
	uint64_t h = 1469598103934665603u;
	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211u;
	return h;
}

/* Open addressing, at most half full; slots hold id + 1. */
static void mt_rehash(uint32_t **slot, size_t *cap, size_t n, uint64_t (*key)(const struct mtree *, uint32_t),
		      const struct mtree *m)
{
	size_t nc = *cap ? 2 * *cap : 1024;
	uint32_t *ns = xcalloc(nc, sizeof *ns);
	for (uint32_t id = 0; id < n; id++) {
		size_t i = key(m, id) & (nc - 1);
		while (ns[i])
			i = (i + 1) & (nc - 1);
		ns[i] = id + 1;
	}
	free(*slot);
	*slot = ns, *cap = nc;
}

static uint64_t name_key(const struct mtree *m, uint32_t id)
{
	return str_hash(m->name[id]);
}

static uint64_t node_key(const struct mtree *m, uint32_t id)
{
	return mix64((uint64_t)m->node[id].parent << 32 | m->node[id].name);
}

static uint32_t mt_name(struct mtree *m, const char *s)
{
	if (2 * (m->nname + 1) > m->name_cap)
		mt_rehash(&m->name_slot, &m->name_cap, m->nname, name_key, m);
	size_t i = str_hash(s) & (m->name_cap - 1);
	for (; m->name_slot[i]; i = (i + 1) & (m->name_cap - 1))
		if (strcmp(m->name[m->name_slot[i] - 1], s) == 0)
			return m->name_slot[i] - 1;
	if (m->nname == m->capname) {
		m->capname = m->capname ? 2 * m->capname : 256;
		m->name = xrealloc(m->name, m->capname * sizeof *m->name);
	}
	m->name[m->nname] = xstrdup(s);
	m->name_slot[i] = (uint32_t)m->nname + 1;
	return (uint32_t)m->nname++;
}

static uint32_t mt_child(struct mtree *m, uint32_t parent, uint32_t name)
{
	if (2 * (m->nnode + 1) > m->node_cap)
		mt_rehash(&m->node_slot, &m->node_cap, m->nnode, node_key, m);
	size_t i = mix64((uint64_t)parent << 32 | name) & (m->node_cap - 1);
	for (; m->node_slot[i]; i = (i + 1) & (m->node_cap - 1)) {
		const struct mnode *n = &m->node[m->node_slot[i] - 1];
		if (n->parent == parent && n->name == name)
			return m->node_slot[i] - 1;
	}
	if (m->nnode == m->capnode) {
		m->capnode = m->capnode ? 2 * m->capnode : 1024;
		m->node = xrealloc(m->node, m->capnode * sizeof *m->node);
	}
	m->node[m->nnode] = (struct mnode){ .parent = parent, .name = name };
	m->node_slot[i] = (uint32_t)m->nnode + 1;
	return (uint32_t)m->nnode++;
}

static int cmp_mnode_name(const void *a, const void *b, void *arg)
{
	const struct mtree *m = arg;
	return strcmp(m->name[m->node[*(const uint32_t *)a].name], m->name[m->node[*(const uint32_t *)b].name]);
}

/* Every call of the trace into m, its value (self ns, or 1) on its stack;
 * then each node's children linked in name order. */
static void mt_build(struct mtree *m, const struct tr_trace *tr, int by_time)
{
	char nb[32];
	mt_child(m, 0, mt_name(m, "")); /* the root, node 0 (its own parent) */
	uint32_t *stack = NULL;
	size_t capstack = 0;
	struct ipname { uint64_t ip; uint32_t name; } *ipc = NULL;
	size_t ipcap = 0;
	for (size_t pi = 0; pi < tr->nproc; pi++) {
		const struct tr_proc *p = &tr->proc[pi];
		int graph = tr_has_exits(p);
		/* a name per address, looked up once per process (demangling) */
		size_t nip = 0;
		for (size_t ti = 0; ti < p->nthr; ti++)
			nip += p->thr[ti].nnode;
		size_t want = 16;
		while (want < 2 * (p->nsym + 16) && want < 2 * (nip + 16))
			want *= 2;
		if (want > ipcap) {
			free(ipc);
			ipc = xcalloc(want, sizeof *ipc);
			ipcap = want;
		} else {
			memset(ipc, 0, ipcap * sizeof *ipc);
		}
		size_t ipused = 0;
		for (size_t ti = 0; ti < p->nthr; ti++) {
			const struct tr_thread *t = &p->thr[ti];
			for (size_t i = 0; i < t->nnode; i++) {
				const struct tr_node *n = &t->node[i];
				size_t k = mix64(n->ip) & (ipcap - 1);
				while (ipc[k].name && ipc[k].ip != n->ip)
					k = (k + 1) & (ipcap - 1);
				if (!ipc[k].name) {
					if (2 * (ipused + 1) > ipcap) { /* full: forget the cache */
						memset(ipc, 0, ipcap * sizeof *ipc);
						ipused = 0;
						k = mix64(n->ip) & (ipcap - 1);
					}
					ipc[k].ip = n->ip;
					ipc[k].name = mt_name(m, tr_sym_name(p, n->ip, nb, sizeof nb)) + 1;
					ipused++;
				}
				if (n->depth + 2 > capstack) {
					capstack = 2 * (n->depth + 2);
					stack = xrealloc(stack, capstack * sizeof *stack);
				}
				uint32_t parent = n->depth ? stack[n->depth] : 0;
				uint32_t id = mt_child(m, parent, ipc[k].name - 1);
				stack[n->depth + 1] = id;
				uint64_t dur = n->end - n->start;
				uint64_t self = dur > n->children_ns ? dur - n->children_ns : 0;
				m->node[id].value += by_time && graph ? self : 1;
			}
		}
	}
	free(stack);
	free(ipc);
	/* children in name order: sort all non-root nodes by (parent, name) */
	size_t n = m->nnode - 1;
	uint32_t *order = xcalloc(n + 1, sizeof *order);
	for (size_t i = 0; i < n; i++)
		order[i] = (uint32_t)i + 1;
	if (n > 1)
		qsort_r(order, n, sizeof *order, cmp_mnode_name, m);
	/* linked from the last, so each list comes out in name order */
	for (size_t i = n; i-- > 0;) {
		struct mnode *c = &m->node[order[i]];
		c->sibling = m->node[c->parent].child;
		m->node[c->parent].child = order[i] + 1;
	}
	free(order);
}

static void mt_free(struct mtree *m)
{
	for (size_t i = 0; i < m->nname; i++)
		free(m->name[i]);
	free(m->name);
	free(m->name_slot);
	free(m->node);
	free(m->node_slot);
}

/* A name as a frame of a folded stack: ';' separates frames and a line is
 * one stack, so a ';' in a name becomes ':' (as the flame graph scripts'
 * stackcollapse-perf does) and a control character '?' (a newline split a
 * stack in two).  Names with these are rare: renamed symbols, assembler. */
static void sb_folded_name(struct strbuf *b, const char *name)
{
	size_t at = b->n;
	sb_add(b, "%s", name);
	for (char *c = b->s + at; *c; c++)
		if (*c == ';')
			*c = ':';
		else if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = '?';
}

/* "a;b;c VALUE" per distinct stack, frame by frame in name order; VALUE
 * is self time in ns (calls for an entry-only trace, or with by_time 0).
 * A depth-first walk with one path buffer: time proportional to the
 * output. */
void out_folded(FILE *out, const struct tr_trace *tr, int by_time)
{
	struct mtree m = { 0 };
	mt_build(&m, tr, by_time);
	struct strbuf path = { 0 };
	sb_add(&path, "%s", "");
	struct visit { uint32_t node; size_t len; } *st = NULL;
	size_t sp = 0, cap = 0;
	/* the root's children, each with the path length before it */
	for (uint32_t c = m.node[0].child; c; c = m.node[c - 1].sibling) {
		if (sp == cap) {
			cap = cap ? 2 * cap : 256;
			st = xrealloc(st, cap * sizeof *st);
		}
		st[sp++] = (struct visit){ c - 1, 0 };
	}
	/* reverse, so the first child is on top */
	for (size_t i = 0; i < sp / 2; i++) {
		struct visit v = st[i];
		st[i] = st[sp - 1 - i], st[sp - 1 - i] = v;
	}
	while (sp) {
		struct visit v = st[--sp];
		path.n = v.len;
		if (v.len)
			sb_add(&path, ";");
		sb_folded_name(&path, m.name[m.node[v.node].name]);
		fprintf(out, "%s %" PRIu64 "\n", path.s, m.node[v.node].value);
		size_t first = sp;
		for (uint32_t c = m.node[v.node].child; c; c = m.node[c - 1].sibling) {
			if (sp == cap) {
				cap = cap ? 2 * cap : 256;
				st = xrealloc(st, cap * sizeof *st);
			}
			st[sp++] = (struct visit){ c - 1, path.n };
		}
		for (size_t i = 0; i < (sp - first) / 2; i++) {
			struct visit t = st[first + i];
			st[first + i] = st[sp - 1 - i], st[sp - 1 - i] = t;
		}
	}
	free(st);
	free(path.s);
	mt_free(&m);
}

/* ---- ftrace-style text ------------------------------------------------ */

/* function tracer lines ("comm-tid [---] ts: func <-parent") for an
 * entry-only trace, function_graph lines otherwise; per thread. */
void out_ftrace(FILE *out, const struct tr_trace *tr)
{
	char nb[32], pb[32], d[32], *eb = NULL;
	size_t ecap = 0;
	for (size_t pi = 0; pi < tr->nproc; pi++) {
		const struct tr_proc *p = &tr->proc[pi];
		int graph = tr_has_exits(p);
		fprintf(out, "# tracer: %s\n#\n", graph ? "function_graph" : "function");
		for (size_t ti = 0; ti < p->nthr; ti++) {
			const struct tr_thread *t = &p->thr[ti];
			/* the thread's name on one line: control characters as '?' */
			char comm[64];
			snprintf(comm, sizeof comm, "%s", t->name);
			for (char *c = comm; *c; c++)
				if ((unsigned char)*c < 0x20 || *c == 0x7f)
					*c = '?';
			size_t *stack = xcalloc(t->nnode + 1, sizeof *stack), sp = 0;
			for (size_t i = 0; i <= t->nnode; i++) {
				uint32_t depth = i < t->nnode ? t->node[i].depth : 0;
				while (sp && t->node[stack[sp - 1]].depth >= depth) {
					const struct tr_node *n = &t->node[stack[--sp]];
					if (!graph || n->nchildren == 0)
						continue;
					fmt_dur(d, sizeof d, n->end - n->start);
					fprintf(out, " %6u) %s |  %*s}%s\n", t->tid, d, 2 * (int)n->depth, "",
						end_note(n->how));
				}
				if (i == t->nnode)
					break;
				const struct tr_node *n = &t->node[i];
				const char *name = line_text(tr_sym_name(p, n->ip, nb, sizeof nb), &eb, &ecap);
				if (!graph) {
					double ts = (double)n->start / 1e9;
					fprintf(out, "%16.16s-%-6u [---] %13.6f: %s\n", comm, t->tid, ts, name);
					continue;
				}
				(void)pb;
				if (n->nchildren == 0) {
					fmt_dur(d, sizeof d, n->end - n->start);
					fprintf(out, " %6u) %s |  %*s%s%s;%s\n", t->tid, n->how == TR_END_EXIT ? d : "          ",
						2 * (int)n->depth, "", name, call_parens(name), end_note(n->how));
				} else {
					fprintf(out, " %6u) %10s |  %*s%s%s {\n", t->tid, "", 2 * (int)n->depth, "", name,
						call_parens(name));
				}
				stack[sp++] = i;
			}
			free(stack);
		}
	}
	free(eb);
}

/* ---- flame graph SVG -------------------------------------------------- */

#define FLAME_WIDTH 1200.0
#define FLAME_ROW 17
#define FLAME_TOP 40

/* Length of the well-formed UTF-8 sequence at s that XML allows, or 0. */
static size_t utf8_len(const unsigned char *s)
{
	size_t n = s[0] >= 0xf0 && s[0] <= 0xf4 ? 4 : s[0] >= 0xe0 ? 3 : s[0] >= 0xc2 && s[0] < 0xe0 ? 2 : 0;
	if (s[0] >= 0xf5)
		n = 0;
	for (size_t i = 1; i < n; i++)
		if ((s[i] & 0xc0) != 0x80)
			return 0;
	uint32_t c = n == 2 ? (uint32_t)(s[0] & 0x1f) << 6 | (s[1] & 0x3f)
		   : n == 3 ? (uint32_t)(s[0] & 0x0f) << 12 | (uint32_t)(s[1] & 0x3f) << 6 | (s[2] & 0x3f)
		   : n == 4 ? (uint32_t)(s[0] & 0x07) << 18 | (uint32_t)(s[1] & 0x3f) << 12 |
				      (uint32_t)(s[2] & 0x3f) << 6 | (s[3] & 0x3f)
			    : 0;
	/* overlong forms, surrogates, beyond U+10FFFF, U+FFFE/U+FFFF */
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff) || c >= 0xfffe)) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	return n;
}

/*
 * Text for the SVG (titles, function names, command lines): markup
 * escaped, and what XML 1.0 does not allow at all - control characters
 * (a --title with an ESC made the file unreadable), DEL, bytes that are
 * not UTF-8 (a name cut in the middle of a character) - shown as '?'.
 */
static void xml_text(FILE *out, const char *str)
{
	for (const unsigned char *s = (const unsigned char *)str; *s; s++) {
		switch (*s) {
		case '<': fputs("&lt;", out); break;
		case '>': fputs("&gt;", out); break;
		case '&': fputs("&amp;", out); break;
		case '"': fputs("&quot;", out); break;
		default:
			if (*s < 0x20 || *s == 0x7f) {
				fputc('?', out);
			} else if (*s < 0x80) {
				fputc(*s, out);
			} else {
				size_t n = utf8_len(s);
				if (n) {
					fwrite(s, 1, n, out);
					s += n - 1;
				} else {
					fputc('?', out);
				}
			}
		}
	}
}

/* One frame: its box, and its name where it fits. */
static void flame_box(FILE *out, const char *name, uint64_t value, double x, double w, int y, uint64_t total,
		      const char *unit)
{
	uint64_t h = 1469598103934665603u;
	for (const char *s = name; *s; s++)
		h = (h ^ (unsigned char)*s) * 1099511628211u;
	int r = 205 + (int)(h % 50), g = 80 + (int)((h >> 8) % 130), b = (int)((h >> 16) % 55);
	fprintf(out, "<g><title>");
	xml_text(out, name);
	fprintf(out, " (%" PRIu64 " %s, %.2f%%)</title><rect x=\"%.2f\" y=\"%d\" width=\"%.2f\" height=\"%d\" "
		     "fill=\"rgb(%d,%d,%d)\" rx=\"2\"/>",
		value, unit, total ? 100.0 * (double)value / (double)total : 0.0, x + 10, y, w, FLAME_ROW - 1, r, g,
		b);
	/* w is at most the image's width, unless a damaged trace's times overflowed */
	size_t fit = w / 7 < 4096 ? (size_t)(w / 7) : 4096;
	if (fit >= 3) {
		fprintf(out, "<text x=\"%.2f\" y=\"%d\">", x + 13, y + FLAME_ROW - 5);
		size_t len = strlen(name);
		if (len <= fit) {
			xml_text(out, name);
		} else {
			char *cut = strndup(name, fit - 2);
			xml_text(out, cut);
			fputs("..", out);
			free(cut);
		}
		fprintf(out, "</text>");
	}
	fprintf(out, "</g>\n");
}

/*
 * The flame graph of the merged tree (mt_build: children in name order,
 * as flame graphs draw them, so the picture is stable).  A box's width is
 * its node's inclusive value: its own plus its children's, summed from
 * the last node to the first (a child is made after its parent).  Drawn
 * depth first with an explicit stack, boxes narrower than 0.1 pixel (and
 * what is above them) left out: time proportional to the boxes drawn.
 * (Before 2026-11-28 every call added its value to each frame of its
 * stack, found by a linear search of the siblings: calls x depth.)
 */
void out_flame(FILE *out, const struct tr_trace *tr, const char *title)
{
	int graph = 1;
	for (size_t i = 0; i < tr->nproc; i++)
		graph &= tr_has_exits(&tr->proc[i]);
	struct mtree m = { 0 };
	mt_build(&m, tr, 1);
	uint64_t *incl = xcalloc(m.nnode, sizeof *incl);
	uint32_t *depth = xcalloc(m.nnode, sizeof *depth);
	uint32_t max_depth = 0;
	for (size_t i = 1; i < m.nnode; i++) {
		depth[i] = depth[m.node[i].parent] + 1;
		if (depth[i] > max_depth)
			max_depth = depth[i];
	}
	for (size_t i = m.nnode; i-- > 1;) {
		incl[i] += m.node[i].value;
		incl[m.node[i].parent] += incl[i];
	}
	uint64_t total = incl[0];
	const char *unit = graph ? "ns" : "calls";
	int height = FLAME_TOP + ((int)max_depth + 1) * FLAME_ROW + 20;
	double scale = total ? FLAME_WIDTH / (double)total : 0;
	fprintf(out, "<?xml version=\"1.0\" standalone=\"no\"?>\n"
		     "<svg version=\"1.1\" width=\"%d\" height=\"%d\" xmlns=\"http://www.w3.org/2000/svg\" "
		     "font-family=\"monospace\" font-size=\"12\">\n"
		     "<rect x=\"0\" y=\"0\" width=\"100%%\" height=\"100%%\" fill=\"#f8f8f0\"/>\n"
		     "<text x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">",
		(int)FLAME_WIDTH + 20, height, (int)FLAME_WIDTH / 2 + 10);
	xml_text(out, title);
	fprintf(out, "</text>\n");
	struct visit { uint32_t node; double x; } *st = xcalloc(m.nnode + 1, sizeof *st);
	size_t sp = 0;
	st[sp++] = (struct visit){ 0, 0 };
	while (sp) {
		struct visit v = st[--sp];
		double w = (double)incl[v.node] * scale;
		if (w < 0.1)
			continue;
		int y = height - ((int)depth[v.node] + 1) * FLAME_ROW - 10;
		flame_box(out, v.node ? m.name[m.node[v.node].name] : "all", incl[v.node], v.x, w, y, total, unit);
		/* the children, first on top; each node is pushed once */
		size_t first = sp;
		double cx = v.x;
		for (uint32_t c = m.node[v.node].child; c; c = m.node[c - 1].sibling) {
			st[sp++] = (struct visit){ c - 1, cx };
			cx += (double)incl[c - 1] * scale;
		}
		for (size_t i = 0; i < (sp - first) / 2; i++) {
			struct visit t = st[first + i];
			st[first + i] = st[sp - 1 - i], st[sp - 1 - i] = t;
		}
	}
	fprintf(out, "</svg>\n");
	free(st);
	free(depth);
	free(incl);
	mt_free(&m);
}

/* ---- raw events ------------------------------------------------------- */

/* One line per event and per filter change, in each thread's order:
 *   E pid tid kind gen ts_ns name     kind: entry exit unwind noret lost
 *                                     (lost: name is the number of events lost)
 *   M pid gen_before gen_after ok ts_begin ts_end filter...
 *   G pid N                           N calls made inside callbacks were not
 *                                     recorded (ST_REC_GUARD; only if N > 0)
 * (what tests/trace/live_test.py reads). */
void out_events(FILE *out, const struct tr_trace *tr)
{
	static const char *const kinds[] = { [ST_EV_ENTRY] = "entry", [ST_EV_EXIT] = "exit",
		[ST_EV_UNWIND] = "unwind", [ST_EV_LOST] = "lost", [ST_EV_NORET] = "noret" };
	char nb[32], *eb = NULL;
	size_t ecap = 0;
	for (size_t pi = 0; pi < tr->nproc; pi++) {
		const struct tr_proc *p = &tr->proc[pi];
		if (p->guard_skipped)
			fprintf(out, "G %u %" PRIu64 "\n", p->h.pid, p->guard_skipped);
		for (size_t m = 0; m < p->nmark; m++)
			fprintf(out, "M %u %u %u %u %" PRIu64 " %" PRIu64 " %s\n", p->h.pid, p->mark[m].m.gen_before,
				p->mark[m].m.gen_after, p->mark[m].m.ok, p->mark[m].m.ts_begin, p->mark[m].m.ts_end,
				p->mark[m].filter);
		for (size_t ti = 0; ti < p->nthr; ti++) {
			const struct tr_thread *t = &p->thr[ti];
			for (size_t i = 0; i < t->nev; i++) {
				const struct st_event *e = &t->ev[i];
				const char *k = e->kind < sizeof kinds / sizeof *kinds && kinds[e->kind] ? kinds[e->kind] : "?";
				if (e->kind == ST_EV_LOST)
					snprintf(nb, sizeof nb, "%" PRIu64, e->ip); /* how many */
				fprintf(out, "E %u %u %s %u %" PRIu64 " %s\n", p->h.pid, t->tid, k, e->gen, e->ts_ns,
					e->kind == ST_EV_LOST ? nb : line_text(tr_sym_name(p, e->ip, nb, sizeof nb), &eb, &ecap));
			}
		}
	}
	free(eb);
}
