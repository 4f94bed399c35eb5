/* SPDX-License-Identifier: MIT */
/*
 * --enumerate: seed 004's table, mechanised.
 *
 * The seed lists every way the reader's two instructions (offsets 0 and 4)
 * can interleave with the writer's three fence.i ("fff04" … "04fff") and
 * marks each updated / safe / old / impossible.  We do the same for any
 * single-reader model:
 *   1. the reader's path on the unpatched code gives the symbols to place
 *      ("04"); each `sync` step is an "f";
 *   2. every interleaving of the two is a *naive schedule*;
 *   3. an exhaustive search (without merging paths that differ in their
 *      history) collects every complete execution as its trace string,
 *      e.g. "0f0f08f", with the reader's outcome class;
 *   4. a naive schedule that some execution follows exactly gets that
 *      execution's classes; one that none follows is "impossible", and
 *      the reason is what executions do once they reach the longest
 *      prefix of it that is possible (seed: "0f4ff -- impossible, would
 *      be 0f08ff (safe) …").
 * Executions that are in no naive schedule (e.g. a stale fetch of the new
 * instruction before the sync) are listed after the table.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"

#define TRACE_MAX 96

struct outcome {
	char trace[TRACE_MAX];
	char cls[160];
};

struct enum_ctx {
	struct model *m;
	size_t ssize;
	/* visited (state, trace, cls) triples, open addressing over a byte arena */
	uint8_t *keys;
	size_t keysize;
	uint32_t nkeys, capkeys, *table, tcap;
	struct outcome *outs;
	int nouts, capouts;
	uint64_t visited;
	bool overflow;
};

static void sym_for(const struct model *m, uint64_t off, char *buf, size_t n)
{
	(void)m;
	if (off < 16)
		snprintf(buf, n, "%x", (unsigned)off);
	else
		snprintf(buf, n, "(%llx)", (unsigned long long)off);
}

static uint64_t h64(const uint8_t *p, size_t n)
{
	uint64_t h = 1469598103934665603ULL;
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

static bool seen(struct enum_ctx *E, const uint8_t *key)
{
	if ((E->nkeys + 1) * 2 > E->tcap) {
		uint32_t ncap = E->tcap ? E->tcap * 2 : 1024;
		uint32_t *t = calloc(ncap, sizeof *t);
		if (!t) {
			perror("calloc");
			exit(3);
		}
		for (uint32_t i = 0; i < E->nkeys; i++) {
			uint32_t j = (uint32_t)h64(E->keys + (size_t)i * E->keysize, E->keysize) & (ncap - 1);
			while (t[j])
				j = (j + 1) & (ncap - 1);
			t[j] = i + 1;
		}
		free(E->table);
		E->table = t;
		E->tcap = ncap;
	}
	uint32_t j = (uint32_t)h64(key, E->keysize) & (E->tcap - 1);
	while (E->table[j]) {
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): a table entry implies a stored key */
		if (!memcmp(E->keys + (size_t)(E->table[j] - 1) * E->keysize, key, E->keysize))
			return true;
		j = (j + 1) & (E->tcap - 1);
	}
	if (E->nkeys == E->capkeys) {
		E->capkeys = E->capkeys ? E->capkeys * 2 : 1024;
		E->keys = realloc(E->keys, (size_t)E->capkeys * E->keysize);
	}
	memcpy(E->keys + (size_t)E->nkeys * E->keysize, key, E->keysize);
	E->table[j] = ++E->nkeys;
	return false;
}

static void add_outcome(struct enum_ctx *E, const char *trace, const char *cls)
{
	for (int i = 0; i < E->nouts; i++)
		if (!strcmp(E->outs[i].trace, trace) && !strcmp(E->outs[i].cls, cls))
			return;
	if (E->nouts == E->capouts) {
		E->capouts = E->capouts ? E->capouts * 2 : 64;
		E->outs = realloc(E->outs, (size_t)E->capouts * sizeof *E->outs);
	}
	snprintf(E->outs[E->nouts].trace, TRACE_MAX, "%s", trace);
	snprintf(E->outs[E->nouts].cls, sizeof E->outs[0].cls, "%s", cls);
	E->nouts++;
}

struct frame_ctx {
	struct enum_ctx *E;
	struct {
		struct event ev;
		struct gst next;
		char why[200];
		bool bad;
	} *succ;
	int n, cap;
};

static void collect(void *ctx, const struct event *ev, const struct gst *next, const char *violation,
		    const char *desc)
{
	struct frame_ctx *F = ctx;
	(void)desc;
	if (F->n == F->cap) {
		F->cap = F->cap ? 2 * F->cap : 16;
		F->succ = realloc(F->succ, (size_t)F->cap * sizeof *F->succ);
	}
	F->succ[F->n].ev = *ev;
	F->succ[F->n].next = *next;
	F->succ[F->n].bad = violation != NULL;
	snprintf(F->succ[F->n].why, sizeof F->succ[0].why, "%s", violation ? violation : "");
	F->n++;
}

/* Trace symbol(s) contributed by one transition. */
static void event_syms(const struct model *m, const struct event *ev, const struct gst *next, char *out, size_t n)
{
	const struct reader *rd = &m->readers[0];
	out[0] = 0;
	if (ev->kind == EV_WRITER) {
		if (m->steps[next->wpc - 1].kind == ST_SYNC)
			snprintf(out, n, "f");
		return;
	}
	if (ev->kind != EV_FETCH)
		return;
	sym_for(m, ev->pc - rd->entry, out, n);
	/* finished by reaching a label inside the code (e.g. "+8, past the site"): show where */
	if (ev->cls >= 0 && rd->acc[ev->cls].kind == OUT_REACH) {
		uint64_t a = m->syms[rd->acc[ev->cls].sym].addr;
		if (!m->syms[rd->acc[ev->cls].sym].is_func)
			sym_for(m, a - rd->entry, out + strlen(out), n - strlen(out));
	}
}

/* NOLINTNEXTLINE(misc-no-recursion): depth bounded by the model's schedule length (MAX_STEPS) */
static void dfs(struct enum_ctx *E, const struct gst *s, const char *trace, int cls)
{
	struct model *m = E->m;
	uint8_t key[sizeof(struct gst) + TRACE_MAX + 2];

	if (E->visited++ > 2000000) {
		E->overflow = true;
		return;
	}
	memset(key, 0, sizeof key);
	memcpy(key, s, E->ssize);
	snprintf((char *)key + E->ssize, TRACE_MAX, "%s", trace);
	key[E->ssize + TRACE_MAX] = (uint8_t)(cls + 1);
	if (seen(E, key))
		return;
	if (is_final(m, s)) {
		add_outcome(E, trace, cls >= 0 ? m->readers[0].acc[cls].cls : "?");
		return;
	}
	struct frame_ctx F = {.E = E};
	successors(m, s, false, collect, &F);
	for (int i = 0; i < F.n; i++) {
		char t[TRACE_MAX], sy[32];
		event_syms(m, &F.succ[i].ev, &F.succ[i].next, sy, sizeof sy);
		snprintf(t, sizeof t, "%s%s", trace, sy);
		if (F.succ[i].bad) {
			char c[160];
			snprintf(c, sizeof c, "UNSAFE: %.150s", F.succ[i].why);
			add_outcome(E, t, c);
			continue;
		}
		dfs(E, &F.succ[i].next, t, F.succ[i].ev.cls >= 0 ? F.succ[i].ev.cls : cls);
	}
	free(F.succ);
}

/* The reader alone on the unpatched code: the symbols the naive schedules interleave. */
static int naive_path(struct model *m, char syms[][16], int max)
{
	struct gst s;
	int n = 0;

	initial_state(m, &s);
	while (n < max && s.r[0].status != RS_DONE) {
		struct frame_ctx F = {0};
		successors(m, &s, false, collect, &F);
		int pick = -1;
		for (int i = 0; i < F.n; i++)
			if (F.succ[i].ev.actor == 0 && F.succ[i].ev.kind == EV_FETCH && !F.succ[i].bad) {
				pick = i;
				break;
			}
		if (pick < 0) {
			free(F.succ);
			return -1;
		}
		event_syms(m, &F.succ[pick].ev, &F.succ[pick].next, syms[n++], 16);
		s = F.succ[pick].next;
		s.wpc = 0;
		free(F.succ);
	}
	return n;
}

static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		if (*s == '"' || *s == '\\')
			printf("\\%c", *s);
		else if ((unsigned char)*s < 0x20)
			printf("\\u%04x", *s);
		else
			putchar(*s);
	}
	putchar('"');
}

int enumerate_model(struct model *m, bool json)
{
	char syms[32][16];
	int nsyms, nf = 0;

	if (m->nreaders != 1) {
		fprintf(stderr, "%s: error: --enumerate needs a model with exactly one reader (it has %d)\n", m->file,
			m->nreaders);
		return 2;
	}
	for (int i = 0; i < m->nsteps; i++)
		nf += m->steps[i].kind == ST_SYNC;
	nsyms = naive_path(m, syms, 32);
	if (nsyms < 0) {
		fprintf(stderr, "%s: error: the reader cannot run on the unpatched code\n", m->file);
		return 2;
	}

	struct enum_ctx E = {.m = m, .ssize = gst_size(m)};
	E.keysize = sizeof(struct gst) + TRACE_MAX + 2;
	struct gst s0;
	initial_state(m, &s0);
	dfs(&E, &s0, "", -1);

	/* all placements of nf 'f' among nsyms + nf slots, in the seed's order (f's first) */
	int total = nsyms + nf, unsafe = 0;
	bool *used = calloc((size_t)E.nouts, sizeof *used);
	if (json)
		printf("{\"model\":"), json_str(m->name), printf(",\"schedules\":[");
	else
		printf("%s: reader schedules (%s = writer sync; digits = reader offset from entry)\n", m->name, "f");
	int first = 1;
	for (uint64_t mask = (1ULL << total) - 1;; mask--) {
		if (__builtin_popcountll(mask) != nf) {
			if (!mask)
				break;
			continue;
		}
		char sched[TRACE_MAX] = "";
		int si = 0;
		for (int pos = total - 1; pos >= 0; pos--) {
			if ((mask >> pos) & 1)
				strcat(sched, "f");
			else
				strcat(sched, syms[si++]);
		}
		char verdict[1024] = "";
		bool any = false;
		/* an execution that breaks the model part-way through the schedule also follows it */
		for (int i = 0; i < E.nouts; i++)
			if (!strcmp(E.outs[i].trace, sched) ||
			    (!strncmp(E.outs[i].cls, "UNSAFE", 6) &&
			     !strncmp(E.outs[i].trace, sched, strlen(E.outs[i].trace)))) {
				snprintf(verdict + strlen(verdict), sizeof verdict - strlen(verdict), "%s%s", any ? ", " : "",
					 E.outs[i].cls);
				any = true;
				used[i] = true;
				unsafe += !strncmp(E.outs[i].cls, "UNSAFE", 6);
			}
		if (!any) {
			/* longest prefix some execution follows, and where those executions go */
			size_t best = 0;
			for (int i = 0; i < E.nouts; i++) {
				size_t l = 0;
				while (sched[l] && E.outs[i].trace[l] == sched[l])
					l++;
				if (l > best)
					best = l;
			}
			snprintf(verdict, sizeof verdict, "impossible (no execution continues '%.*s' with '%c'), would be ",
				 (int)best, sched, sched[best]);
			int k = 0;
			for (int i = 0; i < E.nouts; i++)
				if (!strncmp(E.outs[i].trace, sched, best)) {
					snprintf(verdict + strlen(verdict), sizeof verdict - strlen(verdict), "%s%s (%s)",
						 k++ ? ", " : "", E.outs[i].trace, E.outs[i].cls);
					used[i] = true;
					unsafe += !strncmp(E.outs[i].cls, "UNSAFE", 6);
				}
		}
		if (json) {
			printf("%s{\"schedule\":", first ? "" : ",");
			json_str(sched);
			printf(",\"verdict\":");
			json_str(verdict);
			printf("}");
		} else {
			printf("  %-12s -- %s\n", sched, verdict);
		}
		first = 0;
		if (!mask)
			break;
	}
	if (json)
		printf("],\"other_executions\":[");
	else
		printf("  executions outside the naive schedules:\n");
	first = 1;
	for (int i = 0; i < E.nouts; i++) {
		if (used[i])
			continue;
		unsafe += !strncmp(E.outs[i].cls, "UNSAFE", 6);
		if (json) {
			printf("%s{\"trace\":", first ? "" : ",");
			json_str(E.outs[i].trace);
			printf(",\"verdict\":");
			json_str(E.outs[i].cls);
			printf("}");
		} else {
			printf("  %-12s -- %s\n", E.outs[i].trace, E.outs[i].cls);
		}
		first = 0;
	}
	if (json)
		printf("],\"complete\":%s,\"unsafe_executions\":%d}\n", E.overflow ? "false" : "true", unsafe);
	else {
		if (first)
			printf("  (none)\n");
		printf("  %d distinct executions, %d unsafe%s\n", E.nouts, unsafe,
		       E.overflow ? " (search truncated at 2e6 nodes)" : "");
	}
	free(used);
	free(E.outs);
	free(E.keys);
	free(E.table);
	return unsafe ? 1 : 0;
}
