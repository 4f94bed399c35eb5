/* SPDX-License-Identifier: MIT */
#include "reader.h"

#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

static void *xrealloc(void *p, size_t n)
{
	void *q = realloc(p, n ? n : 1);
	if (!q) {
		fprintf(stderr, "stitch-trace: out of memory\n");
		exit(1);
	}
	return q;
}

static char *xstrndup(const char *s, size_t n)
{
	char *p = xrealloc(NULL, n + 1);
	memcpy(p, s, n);
	p[n] = '\0';
	return p;
}

static struct tr_thread *thread_of(struct tr_proc *p, uint32_t tid)
{
	for (size_t i = 0; i < p->nthr; i++)
		if (p->thr[i].tid == tid)
			return &p->thr[i];
	p->thr = xrealloc(p->thr, (p->nthr + 1) * sizeof *p->thr);
	struct tr_thread *t = &p->thr[p->nthr++];
	memset(t, 0, sizeof *t);
	t->tid = tid;
	return t;
}

static int cmp_sym(const void *a, const void *b)
{
	const struct tr_sym *x = a, *y = b;
	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

int tr_demangle = 1;

/*
 * A C++ name demangled (malloc'd), or NULL to keep it as it is: not a
 * mangled name, demangling off, or no demangler.  libstdc++'s, loaded on
 * first use, so that the CLI depends on no C++ library (under qemu the
 * target's libstdc++ is usually absent: names stay mangled there).
 */
static char *demangled(const char *name)
{
	typedef char *(*demangle_fn)(const char *, char *, size_t *, int *);
	static demangle_fn fn;
	static int tried;
	if (!tr_demangle || strncmp(name, "_Z", 2) != 0)
		return NULL;
	if (!tried) {
		tried = 1;
		void *h = dlopen("libstdc++.so.6", RTLD_LAZY | RTLD_LOCAL);
		if (h)
			*(void **)&fn = dlsym(h, "__cxa_demangle");
	}
	int status = -1;
	char *out = fn ? fn(name, NULL, NULL, &status) : NULL;
	if (status != 0) {
		free(out);
		return NULL;
	}
	return out;
}

/* The symbol at ip (the SYM records, sorted), or NULL. */
static const struct tr_sym *sym_at(const struct tr_proc *p, uint64_t ip)
{
	size_t lo = 0, hi = p->nsym;
	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (p->sym[mid].addr == ip)
			return &p->sym[mid];
		if (p->sym[mid].addr < ip)
			lo = mid + 1;
		else
			hi = mid;
	}
	return NULL;
}

const char *tr_sym_name(const struct tr_proc *p, uint64_t ip, char *buf, size_t size)
{
	const struct tr_sym *s = sym_at(p, ip);
	if (s)
		return s->name;
	snprintf(buf, size, "0x%" PRIx64, ip);
	return buf;
}

int tr_has_exits(const struct tr_proc *p)
{
	return (p->h.flags & ST_FLAG_GRAPH) != 0 || p->has_exits;
}

/* Counter values to monotonic ns: the least-squares line through the
 * file's CLOCK pairs, one map for the whole file so the counter's order
 * is kept (format.h).  One pair: its offset with 1 ns per count. */
static void convert_times(struct tr_proc *p)
{
	if (!(p->h.flags & ST_FLAG_COUNTER) || p->nclk == 0)
		return;
	long double slope = 1, mc = 0, mn = 0;
	for (size_t i = 0; i < p->nclk; i++)
		mc += (long double)(p->clk[i].count - p->clk[0].count), mn += (long double)(p->clk[i].ns - p->clk[0].ns);
	mc /= (long double)p->nclk, mn /= (long double)p->nclk;
	long double sxy = 0, sxx = 0;
	for (size_t i = 0; i < p->nclk; i++) {
		long double x = (long double)(p->clk[i].count - p->clk[0].count) - mc;
		long double y = (long double)(p->clk[i].ns - p->clk[0].ns) - mn;
		sxy += x * y, sxx += x * x;
	}
	if (sxx > 0 && sxy > 0)
		slope = sxy / sxx;
	for (size_t ti = 0; ti < p->nthr; ti++)
		for (size_t i = 0; i < p->thr[ti].nev; i++) {
			struct st_event *e = &p->thr[ti].ev[i];
			if (e->kind == ST_EV_LOST && e->ts_ns == 0)
				continue;
			long double x = (long double)(int64_t)(e->ts_ns - p->clk[0].count) - mc;
			long double ns = (long double)p->clk[0].ns + mn + slope * x;
			/* a damaged CLOCK pair can put it anywhere: clamp, never overflow the cast */
			e->ts_ns = !(ns >= 0) ? 0 : ns >= 18446744073709551615.0L ? UINT64_MAX : (uint64_t)ns;
		}
}

/*
 * Whether an entry made under filter generation `gen` had its return
 * hooked: the mode in force then - the file header's, then each applied
 * mark's from its gen_after on (graph switched on or off live).  An odd
 * generation (a switch under way) is hooked if the mode was graph on both
 * sides of the switch (the agent registers only its graph ops then, and
 * pause, resume and filter changes are such switches: their entries'
 * exits come, and taken as unhooked they paired with older calls instead).
 * Else it may be either, and is taken as not hooked, so that an entry
 * whose exit never comes cannot nest the rest of the thread under it (an
 * exit that does come is counted as an orphan).  Without this, a
 * recording whose graph mode was switched off pushed every later entry,
 * millions deep, and the tree's readers crashed or hung.
 */
static int gen_hooked(const struct tr_proc *p, uint32_t gen)
{
	uint32_t even = gen & ~1u;
	int graph = (p->h.flags & ST_FLAG_GRAPH) != 0;
	for (size_t i = 0; i < p->nmark; i++)
		if (p->mark[i].m.ok && p->mark[i].m.gen_after <= even)
			graph = p->mark[i].m.graph != 0;
	if (!(gen & 1) || !graph)
		return graph;
	for (size_t i = 0; i < p->nmark; i++)
		if (p->mark[i].m.gen_before == even)
			return !p->mark[i].m.ok || p->mark[i].m.graph != 0;
	return 0;
}

/* Does one glob of the rules select the function s: 1, 0, or -1 when the
 * reader cannot tell.  The library's matching (stitch_ftrace_pattern_matches):
 * an address selects the function or its site; a C++ pattern ("::" or "(")
 * never selects a name that is not mangled; a plain glob is fnmatch() on the
 * recorded name - and on a C++ name's demangled forms, which this leaves
 * undecided rather than copy the library's rules for them. */
static int glob_selects(const char *glob, const struct tr_sym *s)
{
	const char *raw = s->raw ? s->raw : s->name;
	int cxx_name = strncmp(raw, "_Z", 2) == 0;
	if (strncmp(glob, "0x", 2) == 0) {
		const char *digits = glob + 2;
		if (!*digits || strspn(digits, "0123456789abcdefABCDEF") != strlen(digits) || strlen(digits) > 16)
			return 0; /* the library's bad address: selects nothing */
		uint64_t a = strtoull(digits, NULL, 16);
		if (a == s->addr)
			return 1;
		return a > s->addr && a - s->addr < 16 ? -1 : 0; /* its site's own address? */
	}
	if (strstr(glob, "::") || strchr(glob, '('))
		return cxx_name ? -1 : 0;
	if (fnmatch(glob, raw, 0) == 0)
		return 1;
	return cxx_name ? -1 : 0;
}

/*
 * Whether a MARK's rules text selects the function at ip: 1, 0, or -1 when
 * the reader cannot tell (an unknown function, a rule glob_selects leaves
 * undecided, a text it cannot read).  The text is the agent's rule list,
 * "+glob -glob ..." (globs have no spaces: the agent splits on them), the
 * last rule matching a function deciding and none meaning not traced; ""
 * while paused.
 */
static int rules_select(const struct tr_proc *p, const char *rules, uint64_t ip)
{
	const struct tr_sym *s = sym_at(p, ip);
	if (!s)
		return -1;
	int verdict = 0;
	char glob[512];
	for (const char *r = rules;;) {
		r += strspn(r, " ");
		size_t n = strcspn(r, " ");
		if (!n)
			break;
		if ((r[0] != '+' && r[0] != '-') || n - 1 >= sizeof glob)
			return -1;
		memcpy(glob, r + 1, n - 1);
		glob[n - 1] = '\0';
		int m = glob_selects(glob, s);
		if (m == 1)
			verdict = r[0] == '+';
		else if (m < 0)
			verdict = -1; /* unless a later rule decides */
		r += n;
	}
	return verdict;
}

/*
 * A live switch (MARK m) reached by a thread whose open calls are
 * stack[0..sp): a call whose function it may have switched off can return
 * unseen - the library calls ret_func only for a site still selected when
 * the function returns - unless its exit is in the file after all
 * (exited[], from a first pairing: selected again before it returned).
 * Such calls are marked TR_END_SWITCH, ended at last_ts (the thread's last
 * event before the switch) unless something later shows them running.
 * They stay on the stack, so that an exit of theirs still pairs with them,
 * and build_calls drops them when an entry finds one on top, not knowing
 * whether it is that entry's caller.  Without this an entry whose exit
 * never came stayed open, and every later call of the thread nested under
 * it (a pause/resume made alpha_two call alpha_one call alpha_two...).
 * A refused switch changed nothing.
 */
static void switch_off(const struct tr_proc *p, struct tr_thread *t, const struct tr_mark *m, const size_t *stack,
		       size_t sp, const unsigned char *exited, uint64_t last_ts)
{
	if (!m->m.ok)
		return;
	for (size_t k = 0; k < sp; k++) {
		struct tr_node *n = &t->node[stack[k]];
		if (n->how != TR_END_RUNNING || exited[stack[k]])
			continue;
		/* graph off: ret_func is no longer registered anywhere; a
		 * function the reader cannot place is taken as switched off
		 * (ending a call early hides a nesting, keeping it can invent one) */
		if (!m->m.graph || rules_select(p, m->filter, n->ip) != 1) {
			n->how = TR_END_SWITCH;
			n->end = last_ts;
		}
	}
}

/* Pair a thread's entries and exits into its call nodes (pre-order), with
 * the live switches (marks) when exited[] says which calls get an exit. */
static void build_calls(struct tr_proc *p, struct tr_thread *t, const unsigned char *exited)
{
	int graph = tr_has_exits(p);
	uint32_t cached_gen = 1;
	int cached_hooked = 0; /* gen_hooked(p, cached_gen): odd, not hooked */
	size_t *stack = NULL, sp = 0, cap = 0;
	size_t next_mark = 0; /* the first mark this thread's events have not passed */
	t->nnode = 0;
	t->lost = t->lost_exits = t->orphan_exits = t->noret = 0;
	uint64_t last_ts = 0;
	for (size_t i = 0; i < t->nev; i++) {
		const struct st_event *e = &t->ev[i];
		/* A later generation than a mark's gen_before: the switch began
		 * before this event read its site's ops (a loss marker carries
		 * the next event's generation, or 0 at the end: not used). */
		if (exited && e->kind != ST_EV_LOST)
			for (; next_mark < p->nmark && e->gen > p->mark[next_mark].m.gen_before; next_mark++)
				switch_off(p, t, &p->mark[next_mark], stack, sp, exited, last_ts);
		switch (e->kind) {
		case ST_EV_LOST:
			/* After a gap the stack is unknown: the lost events may hold
			 * the open calls' exits and entries of others.  Keeping the
			 * calls open nested every later call under an entry whose
			 * exit was lost (89 levels of g in g), and charged them the
			 * time to the thread's end; they end here, at the thread's
			 * last event before the gap, and what follows starts at the
			 * top.  An exit of theirs after the gap is an orphan. */
			t->lost += e->ip;
			while (sp > 0) {
				struct tr_node *n = &t->node[stack[--sp]];
				if (n->how != TR_END_SWITCH) {
					n->how = TR_END_GAP;
					n->end = last_ts;
				}
				t->lost_exits++;
			}
			break;
		case ST_EV_ENTRY:
		case ST_EV_NORET: {
			/* a call a switch left without its exit is not taken as
			 * this one's caller (switch_off) */
			while (sp > 0 && t->node[stack[sp - 1]].how == TR_END_SWITCH) {
				sp--;
				t->lost_exits++;
			}
			if (graph && e->gen != cached_gen) {
				cached_gen = e->gen;
				cached_hooked = gen_hooked(p, cached_gen);
			}
			int hooked = graph && cached_hooked;
			struct tr_node *n = &t->node[t->nnode];
			*n = (struct tr_node){ .ip = e->ip, .start = e->ts_ns, .end = e->ts_ns, .depth = (uint32_t)sp,
					       .subtree = 1, .gen = e->gen,
					       .how = !hooked ? TR_END_NONE : e->kind == ST_EV_NORET ? TR_END_MISSING
											  : TR_END_RUNNING };
			if (sp)
				t->node[stack[sp - 1]].nchildren++;
			if (e->kind == ST_EV_NORET)
				t->noret++;
			/* Without exits there is no nesting; a NORET call's end is never
			 * seen, so its callees are shown as its siblings. */
			if (hooked && e->kind == ST_EV_ENTRY) {
				if (sp == cap) {
					cap = cap ? 2 * cap : 64;
					stack = xrealloc(stack, cap * sizeof *stack);
				}
				stack[sp++] = t->nnode;
			}
			t->nnode++;
			break;
		}
		case ST_EV_EXIT:
		case ST_EV_UNWIND: {
			size_t k = sp;
			while (k > 0 && t->node[stack[k - 1]].ip != e->ip)
				k--;
			if (k == 0) {
				t->orphan_exits++;
				break;
			}
			/* frames above the match never reported an exit */
			while (sp > k) {
				struct tr_node *n = &t->node[stack[--sp]];
				if (n->how != TR_END_SWITCH) { /* else: ended when last known running */
					n->how = TR_END_MISSING;
					n->end = e->ts_ns;
				}
				t->lost_exits++;
			}
			struct tr_node *n = &t->node[stack[--sp]];
			n->how = e->kind == ST_EV_EXIT ? TR_END_EXIT : TR_END_UNWIND;
			n->end = e->ts_ns;
			/* its caller, left without an exit by a switch, ran until now */
			if (sp > 0 && t->node[stack[sp - 1]].how == TR_END_SWITCH)
				t->node[stack[sp - 1]].end = e->ts_ns;
			break;
		}
		default:
			break;
		}
		if (e->kind != ST_EV_LOST)
			last_ts = e->ts_ns;
	}
	/* Switches after the thread's last event apply to its open calls too
	 * (a main() waiting in pthread_join() across a pause was "no exit
	 * recorded", 0 ns long, instead of switched off live). */
	if (exited)
		for (; next_mark < p->nmark; next_mark++)
			switch_off(p, t, &p->mark[next_mark], stack, sp, exited, last_ts);
	/* Calls still open: running if the process may still be (or died
	 * without a word); a process that wrote its END (or EXEC) record is
	 * gone, and they never returned. */
	while (sp > 0) {
		struct tr_node *n = &t->node[stack[--sp]];
		if (n->how == TR_END_SWITCH) {
			t->lost_exits++;
			continue;
		}
		n->end = last_ts;
		if (p->ended) {
			n->how = TR_END_MISSING;
			t->lost_exits++;
		}
	}
	free(stack);
}

/* Turn a thread's events into its call tree (pre-order nodes). */
static void build_tree(struct tr_proc *p, struct tr_thread *t)
{
	t->node = xrealloc(NULL, (t->nev + 1) * sizeof *t->node);
	build_calls(p, t, NULL);
	if (p->nmark && tr_has_exits(p)) {
		/* Live switches: which calls get their exit, from a pairing that
		 * ignores the switches, then the pairing again with them.  The
		 * nodes are the same (one per entry, in order); the first pass
		 * only keeps more calls open, which pair with no exit. */
		unsigned char *exited = xrealloc(NULL, t->nnode + 1);
		for (size_t i = 0; i < t->nnode; i++)
			exited[i] = t->node[i].how == TR_END_EXIT || t->node[i].how == TR_END_UNWIND;
		build_calls(p, t, exited);
		free(exited);
	}
	/* subtree sizes and child time, children before parents (reverse
	 * pre-order).  A call without a recorded exit ran at least until its
	 * last callee ended: its end, a guess (the last moment it was known
	 * running), is moved there (a call switched off live ended before its
	 * own callees, 0.7 s long around a 1.7 s one, and a flame graph of a
	 * 1.7 s run added up to 2.7 s). */
	for (size_t i = t->nnode; i-- > 0;) {
		struct tr_node *n = &t->node[i];
		int guessed = n->how != TR_END_EXIT && n->how != TR_END_UNWIND;
		size_t j = i + 1;
		for (uint32_t c = 0; c < n->nchildren; c++) {
			if (guessed && t->node[j].end > n->end)
				n->end = t->node[j].end;
			n->subtree += t->node[j].subtree;
			n->children_ns += t->node[j].end - t->node[j].start;
			j += t->node[j].subtree;
		}
	}
}

/* A record that cannot be what its type says: the rest of the file is not read. */
static void damaged(const char *name, size_t off, const char *what)
{
	fprintf(stderr, "stitch-trace: %s: damaged record at offset %zu (%s); reading stops here\n", name, off, what);
}

int tr_parse(const void *data, size_t size, const char *name, struct tr_proc *p, int skip_events)
{
	const unsigned char *d = data;
	memset(p, 0, sizeof *p);
	if (size < sizeof p->h || memcmp(d, ST_MAGIC, 8) != 0) {
		fprintf(stderr, "stitch-trace: %s: not a stitch trace file\n", name);
		return -1;
	}
	memcpy(&p->h, d, sizeof p->h);
	if (p->h.version != ST_VERSION || p->h.header_size != sizeof p->h) {
		fprintf(stderr, "stitch-trace: %s: format version %u (header %u bytes), this tool reads %u (%zu)\n", name,
			p->h.version, p->h.header_size, ST_VERSION, sizeof p->h);
		return -1;
	}
	p->path = xstrndup(name, strlen(name));
	char *buf = NULL;
	size_t bufcap = 0;
	size_t off = sizeof p->h;
	while (off < size) {
		struct st_rec_header rh;
		if (size - off < sizeof rh) {
			fprintf(stderr, "stitch-trace: %s: truncated record header at offset %zu (the process died while writing?)\n",
				name, off);
			break;
		}
		memcpy(&rh, d + off, sizeof rh);
		if (rh.size % 8 || rh.size > (1u << 30)) {
			damaged(name, off, "size not a multiple of 8, or over 1 GiB");
			break;
		}
		if (rh.size > size - off - sizeof rh) {
			fprintf(stderr, "stitch-trace: %s: truncated record at offset %zu (the process died while writing?)\n",
				name, off);
			break;
		}
		size_t at = off;
		off += sizeof rh + rh.size;
		if (skip_events && rh.type == ST_REC_EVENTS) {
			/* counted, not kept: the totals of a file without END, as
			 * the full read counts them (a loss marker is not an event,
			 * its ip is the number lost) */
			struct st_events eh;
			if (rh.size >= sizeof eh) {
				memcpy(&eh, d + at + sizeof rh, sizeof eh);
				size_t room = (rh.size - sizeof eh) / sizeof(struct st_event);
				const unsigned char *ev = d + at + sizeof rh + sizeof eh;
				for (size_t k = 0; k < eh.count && k < room; k++) {
					struct st_event e;
					memcpy(&e, ev + k * sizeof e, sizeof e);
					if (e.kind == ST_EV_LOST)
						p->lost_in_file += e.ip;
					else
						p->events_in_file++;
				}
			}
			continue;
		}
		/* a NUL-terminated copy: string payloads may lack their NUL */
		if (rh.size + 1 > bufcap) {
			bufcap = rh.size + 1;
			buf = xrealloc(buf, bufcap);
		}
		memcpy(buf, d + at + sizeof rh, rh.size);
		buf[rh.size] = '\0';
		const char *bad = NULL;
		switch (rh.type) {
		case ST_REC_SYM: {
			struct st_sym s;
			if (rh.size < sizeof s) {
				bad = "symbol record too short";
				break;
			}
			memcpy(&s, buf, sizeof s);
			if (s.size > rh.size - sizeof s) {
				bad = "symbol name longer than its record";
				break;
			}
			const char *sname = buf + sizeof s;
			size_t ln = strnlen(sname, s.size);
			const char *mod = ln < s.size ? sname + ln + 1 : "";
			char *sym_name = xstrndup(sname, ln), *raw = NULL;
			char *pretty = demangled(sym_name);
			if (pretty) {
				raw = sym_name; /* kept for the filter rules (sym_selected) */
				sym_name = pretty;
			}
			p->sym = xrealloc(p->sym, (p->nsym + 1) * sizeof *p->sym);
			p->sym[p->nsym++] = (struct tr_sym){ s.addr, sym_name,
							     xstrndup(mod, strnlen(mod, s.size - ln - (ln < s.size))), raw };
			break;
		}
		case ST_REC_EVENTS: {
			struct st_events h;
			if (rh.size < sizeof h) {
				bad = "event record too short";
				break;
			}
			memcpy(&h, buf, sizeof h);
			if (h.count > (rh.size - sizeof h) / sizeof(struct st_event)) {
				bad = "more events than the record holds";
				break;
			}
			struct tr_thread *t = thread_of(p, h.tid);
			if (t->nev + h.count > t->capev) {
				t->capev = 2 * (t->nev + h.count);
				t->ev = xrealloc(t->ev, t->capev * sizeof *t->ev);
			}
			if (h.count)
				memcpy(t->ev + t->nev, buf + sizeof h, h.count * sizeof(struct st_event));
			t->nev += h.count;
			break;
		}
		case ST_REC_THREAD: {
			struct st_thread th;
			if (rh.size < sizeof th) {
				bad = "thread record too short";
				break;
			}
			memcpy(&th, buf, sizeof th);
			struct tr_thread *t = thread_of(p, th.tid);
			memcpy(t->name, th.name, 16);
			t->name[16] = '\0';
			break;
		}
		case ST_REC_MARK: {
			struct st_mark m;
			if (rh.size < sizeof m) {
				bad = "mark record too short";
				break;
			}
			memcpy(&m, buf, sizeof m);
			p->mark = xrealloc(p->mark, (p->nmark + 1) * sizeof *p->mark);
			p->mark[p->nmark++] = (struct tr_mark){ m, xstrndup(buf + sizeof m, strnlen(buf + sizeof m, rh.size - sizeof m)) };
			break;
		}
		case ST_REC_END:
		case ST_REC_EXEC:
			if (rh.size < sizeof p->end) {
				bad = "end record too short";
				break;
			}
			memcpy(&p->end, buf, sizeof p->end);
			p->ended = 1;
			if (rh.type == ST_REC_EXEC) {
				p->execed = 1;
				free(p->exec_path);
				p->exec_path = xstrndup(buf + sizeof p->end, strnlen(buf + sizeof p->end, rh.size - sizeof p->end));
			}
			break;
		case ST_REC_CLOCK:
			if (rh.size < sizeof(struct st_clock)) {
				bad = "clock record too short";
				break;
			}
			p->clk = xrealloc(p->clk, (p->nclk + 1) * sizeof *p->clk);
			memcpy(&p->clk[p->nclk++], buf, sizeof *p->clk);
			break;
		case ST_REC_GUARD: {
			struct st_guard g;
			if (rh.size < sizeof g) {
				bad = "guard record too short";
				break;
			}
			memcpy(&g, buf, sizeof g);
			p->guard_skipped = g.skipped; /* a running count: the last one is the total */
			break;
		}
		case ST_REC_CMDLINE: {
			size_t n = rh.size;
			while (n && buf[n - 1] == '\0')
				n--;
			free(p->cmdline);
			free(p->exe);
			p->cmdline = xstrndup(buf, n);
			for (size_t i = 0; i < n; i++)
				if (p->cmdline[i] == '\0')
					p->cmdline[i] = ' ';
			const char *argv0 = buf, *slash = strrchr(argv0, '/');
			p->exe = xstrndup(slash ? slash + 1 : argv0, strlen(slash ? slash + 1 : argv0));
			break;
		}
		default:
			break; /* a newer writer's record: skip it */
		}
		if (bad) {
			damaged(name, at, bad);
			break;
		}
	}
	free(buf);
	if (!p->exe)
		p->exe = xstrndup("?", 1);
	if (!p->cmdline)
		p->cmdline = xstrndup("?", 1);
	/* Last SYM for an address wins (a module unloaded and another loaded
	 * at the same place is named after the newer one). */
	if (p->nsym) {
		qsort(p->sym, p->nsym, sizeof *p->sym, cmp_sym);
		size_t w = 0;
		for (size_t i = 0; i < p->nsym; i++) {
			if (w && p->sym[w - 1].addr == p->sym[i].addr) {
				w--;
				free(p->sym[w].name);
				free(p->sym[w].module);
				free(p->sym[w].raw);
			}
			p->sym[w++] = p->sym[i];
		}
		p->nsym = w;
	}
	convert_times(p);
	for (size_t i = 0; i < p->nthr && !p->has_exits; i++)
		for (size_t j = 0; j < p->thr[i].nev; j++)
			if (p->thr[i].ev[j].kind == ST_EV_EXIT || p->thr[i].ev[j].kind == ST_EV_UNWIND) {
				p->has_exits = 1;
				break;
			}
	for (size_t i = 0; i < p->nthr; i++)
		build_tree(p, &p->thr[i]);
	return 0;
}

void tr_proc_free(struct tr_proc *p)
{
	for (size_t i = 0; i < p->nthr; i++) {
		free(p->thr[i].ev);
		free(p->thr[i].node);
	}
	for (size_t i = 0; i < p->nsym; i++) {
		free(p->sym[i].name);
		free(p->sym[i].module);
		free(p->sym[i].raw);
	}
	for (size_t i = 0; i < p->nmark; i++)
		free(p->mark[i].filter);
	free(p->thr);
	free(p->sym);
	free(p->mark);
	free(p->clk);
	free(p->path);
	free(p->cmdline);
	free(p->exe);
	free(p->exec_path);
	memset(p, 0, sizeof *p);
}

/* The file is mapped, not read: with skip_events the events are never
 * touched.  The writer only appends, so the mapping never loses pages. */
static int load_file(const char *path, struct tr_proc *p, int skip_events)
{
	memset(p, 0, sizeof *p);
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	struct stat st;
	if (fd < 0 || fstat(fd, &st) != 0) {
		fprintf(stderr, "stitch-trace: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if (st.st_size == 0) {
		/* A process killed between creating its file and writing the
		 * header (a fork child killed at once): nothing to read, and no
		 * reason to refuse the others. */
		close(fd);
		fprintf(stderr, "stitch-trace: %s: empty (its process died before writing anything); skipped\n", path);
		return 1;
	}
	void *m = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	close(fd);
	if (m == MAP_FAILED) {
		fprintf(stderr, "stitch-trace: %s: mmap: %s\n", path, strerror(errno));
		return -1;
	}
	int r = tr_parse(m, (size_t)st.st_size, path, p, skip_events);
	munmap(m, (size_t)st.st_size);
	return r;
}

static int cmp_proc(const void *a, const void *b)
{
	const struct tr_proc *x = a, *y = b;
	if (x->h.start_ns != y->h.start_ns)
		return x->h.start_ns < y->h.start_ns ? -1 : 1;
	return x->h.pid < y->h.pid ? -1 : x->h.pid > y->h.pid;
}

static uint64_t first_ts(const struct tr_thread *t)
{
	return t->nev ? t->ev[0].ts_ns : UINT64_MAX;
}

static int cmp_thread(const void *a, const void *b)
{
	uint64_t x = first_ts(a), y = first_ts(b);
	return x < y ? -1 : x > y;
}

int tr_load(const char *dir, struct tr_trace *t)
{
	return tr_load_opt(dir, t, 0);
}

int tr_load_opt(const char *dir, struct tr_trace *t, int flags)
{
	int skip_events = (flags & TR_SKIP_EVENTS) != 0;
	memset(t, 0, sizeof *t);
	DIR *d = opendir(dir);
	if (!d) {
		fprintf(stderr, "stitch-trace: %s: %s\n", dir, strerror(errno));
		return -1;
	}
	struct dirent *de;
	int err = 0;
	while ((de = readdir(d))) {
		size_t n = strlen(de->d_name);
		if (strncmp(de->d_name, "trace-", 6) != 0 || n < 10 || strcmp(de->d_name + n - 4, ".dat") != 0)
			continue;
		char path[4096];
		snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
		t->proc = xrealloc(t->proc, (t->nproc + 1) * sizeof *t->proc);
		int r = load_file(path, &t->proc[t->nproc], skip_events);
		if (r == 0)
			t->nproc++;
		else if (r < 0)
			err = -1;
	}
	closedir(d);
	if (err)
		return -1;
	if (t->nproc == 0) {
		if (flags & TR_QUIET_EMPTY)
			return -1;
		fprintf(stderr, "stitch-trace: %s: no trace files (trace-*.dat); record with `stitch-trace record -o %s -- PROG`\n",
			dir, dir);
		return -1;
	}
	tr_order(t);
	return 0;
}

void tr_order(struct tr_trace *t)
{
	if (!t->nproc)
		return;
	qsort(t->proc, t->nproc, sizeof *t->proc, cmp_proc);
	t->t0 = t->proc[0].h.start_ns;
	for (size_t i = 0; i < t->nproc; i++)
		if (t->proc[i].nthr > 1) /* thr is NULL for a file without events */
			qsort(t->proc[i].thr, t->proc[i].nthr, sizeof *t->proc[i].thr, cmp_thread);
}
