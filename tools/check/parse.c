/* SPDX-License-Identifier: MIT */
/*
 * Model parser (grammar: docs/model-format.md).
 *
 * Two passes over the lines, like an assembler: the first lays out code
 * and data and defines every label (instruction lengths never depend on
 * symbol values), the second encodes instructions, resolves every
 * address operand and validates cross-references.  Any error is reported
 * as FILE:LINE: error: ... and the model is rejected (exit status 2).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "model.h"

struct item {
	int line;
	int region;
	uint64_t addr;
	uint32_t len;
	char *text;
};

struct pending_step {
	char *loc;  /* address operand(s), resolved in pass 2 */
	char *body; /* instruction text for store/trap */
};

struct pending_reader {
	char entry[128];
	char acc_sym[MAX_ACCEPT][64];
	char req_label[MAX_REQUIRE][64];
};

struct pending_rewind {
	char from[128], to[128];
	char label[64]; /* `on quiesce LABEL` */
};

struct pending_site {
	char loc[128];
	int line;
};

struct parser {
	struct model *m;
	struct item *items;
	int nitems, capitems;
	struct pending_step ps[MAX_STEPS];
	struct pending_reader pr[MAX_READERS];
	struct pending_rewind pw[MAX_REWIND];
	struct pending_site psite[MAX_TRAPS];
	char labels[MAX_STEPS][64];
	int label_pos[MAX_STEPS];
	int label_line[MAX_STEPS];
	int nlabels;
};

static int fail(const struct model *m, int line, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int fail(const struct model *m, int line, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s:%d: error: ", m->file, line);
	va_start(ap, fmt);
	/* NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized): va_start is the line above */
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	return 2;
}

static char *trim(char *s)
{
	char *e;

	while (isspace((unsigned char)*s))
		s++;
	e = s + strlen(s);
	while (e > s && isspace((unsigned char)e[-1]))
		*--e = 0;
	return s;
}

/* Next whitespace-separated word of *s; advances *s. */
static char *word(char **s)
{
	char *p = *s, *w;

	while (isspace((unsigned char)*p))
		p++;
	if (!*p)
		return NULL;
	w = p;
	while (*p && !isspace((unsigned char)*p))
		p++;
	if (*p)
		*p++ = 0;
	*s = p;
	return w;
}

static bool is_ident(const char *s)
{
	if (!*s || !(isalpha((unsigned char)*s) || *s == '_' || *s == '.'))
		return false;
	for (; *s; s++)
		if (!(isalnum((unsigned char)*s) || *s == '_' || *s == '.'))
			return false;
	return true;
}

static int find_sym(const struct model *m, const char *name)
{
	for (int i = 0; i < m->nsyms; i++)
		if (!strcmp(m->syms[i].name, name))
			return i;
	return -1;
}

static int add_sym(struct model *m, const char *name, uint64_t addr, bool func, int line)
{
	int old = find_sym(m, name);

	if (old >= 0)
		return fail(m, line, "symbol '%s' already defined at line %d", name, m->syms[old].line);
	if (!is_ident(name) || strlen(name) >= sizeof m->syms[0].name)
		return fail(m, line, "bad symbol name '%s'", name);
	if (m->nsyms == MAX_SYMS)
		return fail(m, line, "too many symbols (max %d)", MAX_SYMS);
	struct sym *s = &m->syms[m->nsyms++];
	snprintf(s->name, sizeof s->name, "%s", name);
	s->addr = addr;
	s->is_func = func;
	s->line = line;
	return 0;
}

int model_flat(const struct model *m, uint64_t addr)
{
	for (int i = 0; i < m->nregions; i++) {
		const struct region *r = &m->regions[i];
		if (addr >= r->base && addr - r->base < r->size)
			return (int)(r->flat + (addr - r->base));
	}
	return -1;
}

const char *model_symname(const struct model *m, uint64_t addr, char *buf, size_t n)
{
	int best = -1;

	/* nearest label at or below addr, within the same region; functions only exactly */
	for (int i = 0; i < m->nsyms; i++) {
		const struct sym *s = &m->syms[i];
		if (s->addr > addr || (s->is_func && s->addr != addr))
			continue;
		if (!s->is_func && model_flat(m, s->addr) >= 0 && model_flat(m, addr) >= 0 &&
		    addr - s->addr > 0x1000)
			continue;
		if (!s->is_func && model_flat(m, addr) < 0)
			continue;
		if (best < 0 || s->addr > m->syms[best].addr)
			best = i;
	}
	if (best < 0)
		snprintf(buf, n, "0x%llx", (unsigned long long)addr);
	else if (m->syms[best].addr == addr)
		snprintf(buf, n, "%s", m->syms[best].name);
	else
		snprintf(buf, n, "%s+0x%llx", m->syms[best].name, (unsigned long long)(addr - m->syms[best].addr));
	return buf;
}

/* The checker gives up on memory exhaustion (exit status 3), as everywhere. */
static char *xstrdup(const char *s)
{
	char *d = strdup(s);
	if (!d) {
		perror("strdup");
		exit(3);
	}
	return d;
}

static int add_item(struct parser *p, int line, int region, uint64_t addr, uint32_t len, const char *text)
{
	if (p->nitems == p->capitems) {
		p->capitems = p->capitems ? 2 * p->capitems : 256;
		p->items = realloc(p->items, (size_t)p->capitems * sizeof *p->items);
		if (!p->items) {
			perror("realloc");
			exit(3);
		}
	}
	struct item *it = &p->items[p->nitems++];
	it->line = line, it->region = region, it->addr = addr, it->len = len;
	it->text = xstrdup(text);
	return 0;
}

static bool eval(struct model *m, const char *s, int line, uint64_t *v, char *err, size_t errn)
{
	struct asm_ctx c = {.m = m, .pc = 0, .line = line};
	if (eval_expr(&c, s, v))
		return true;
	snprintf(err, errn, "%s", c.err);
	return false;
}

/* Assemble `body` (items separated by ';') at addr. */
static int assemble_seq(struct model *m, int line, uint64_t addr, const char *body, bool sizing, uint8_t *out,
			size_t cap, uint32_t *len_out)
{
	char buf[512], *save = NULL, *tok;
	uint32_t len = 0;

	snprintf(buf, sizeof buf, "%s", body);
	for (tok = strtok_r(buf, ";", &save); tok; tok = strtok_r(NULL, ";", &save)) {
		struct asm_ctx c = {.m = m, .pc = addr + len, .line = line, .sizing = sizing};
		char *t = trim(tok);
		if (!*t)
			continue;
		int n = asm_insn(&c, t, out + len, cap - len);
		if (n < 0)
			return fail(m, line, "%s", c.err);
		len += (uint32_t)n;
	}
	if (!len)
		return fail(m, line, "expected an instruction or data directive");
	*len_out = len;
	return 0;
}

enum section { SEC_TOP, SEC_CODE, SEC_WRITER, SEC_READER };

static int parse_lines(struct parser *p, FILE *f)
{
	struct model *m = p->m;
	char raw[1024];
	int line = 0, rc;
	enum section sec = SEC_TOP;
	int region = -1;
	uint64_t pc = 0;
	bool seen_directive = false;

	while (fgets(raw, sizeof raw, f)) {
		line++;
		/*
		 * A comment is '#' at the start of a line or after blank space and
		 * followed by blank space (or end of line): AArch64 immediates (#8,
		 * BRK #1) also use '#'.
		 */
		for (char *hash = strchr(raw, '#'); hash; hash = strchr(hash + 1, '#')) {
			if (hash != raw && !isspace((unsigned char)hash[-1]))
				continue;
			if (hash[1] && !isspace((unsigned char)hash[1]) && hash[1] != '#')
				continue;
			/* `# expect: SAFE|UNSAFE` states the verdict the test suite expects */
			char *e = strstr(hash, "expect:");
			if (e && !seen_directive) {
				char v[16] = "";
				sscanf(e + 7, "%15s", v);
				if (strcmp(v, "SAFE") && strcmp(v, "UNSAFE"))
					return fail(m, line, "`# expect:` must be SAFE or UNSAFE, found '%s'", v);
				snprintf(m->expect, sizeof m->expect, "%s", v);
			}
			*hash = 0;
			break;
		}
		char *s = trim(raw), *rest = s, *kw;
		if (!*s)
			continue;
		seen_directive = true;
		char lower[16] = "";
		{
			size_t i = 0;
			while (s[i] && !isspace((unsigned char)s[i]) && i < sizeof lower - 1) {
				lower[i] = s[i];
				i++;
			}
			lower[i] = 0;
		}
		if (!strcmp(lower, "model")) {
			word(&rest);
			snprintf(m->name, sizeof m->name, "%s", trim(rest));
			sec = SEC_TOP;
			continue;
		}
		if (!strcmp(lower, "arch")) {
			word(&rest);
			kw = word(&rest);
			if (m->arch)
				return fail(m, line, "`arch` given twice");
			if (kw && !strcmp(kw, "x86_64"))
				m->arch = ARCH_X86_64;
			else if (kw && !strcmp(kw, "aarch64"))
				m->arch = ARCH_AARCH64;
			else if (kw && !strcmp(kw, "riscv64"))
				m->arch = ARCH_RISCV64;
			else
				return fail(m, line, "expected `arch x86_64|aarch64|riscv64`");
			sec = SEC_TOP;
			continue;
		}
		if (!m->arch)
			return fail(m, line, "expected `arch x86_64|aarch64|riscv64` before '%s'", lower);
		if (!strcmp(lower, "func")) {
			char err[160];
			uint64_t a;
			word(&rest);
			char *name = word(&rest), *addr = word(&rest);
			if (!name || !addr || word(&rest))
				return fail(m, line, "expected `func NAME ADDRESS`");
			if (!eval(m, addr, line, &a, err, sizeof err))
				return fail(m, line, "%s", err);
			if ((rc = add_sym(m, name, a, true, line)))
				return rc;
			sec = SEC_TOP;
			continue;
		}
		if (!strcmp(lower, "code") || !strcmp(lower, "data")) {
			char err[160];
			word(&rest);
			char *addr = word(&rest);
			if (!addr || word(&rest))
				return fail(m, line, "expected `%s ADDRESS`", lower);
			if (m->nregions == MAX_REGIONS)
				return fail(m, line, "too many regions");
			region = m->nregions++;
			if (!eval(m, addr, line, &pc, err, sizeof err))
				return fail(m, line, "%s (region addresses must be numbers)", err);
			m->regions[region].base = pc;
			m->regions[region].code = lower[0] == 'c';
			sec = SEC_CODE;
			continue;
		}
		if (!strcmp(lower, "writer")) {
			word(&rest);
			if (m->nsteps)
				return fail(m, line, "only one `writer` section");
			sec = SEC_WRITER;
			continue;
		}
		if (!strcmp(lower, "reader")) {
			word(&rest);
			if (m->nreaders == MAX_READERS)
				return fail(m, line, "too many readers (max %d)", MAX_READERS);
			struct reader *r = &m->readers[m->nreaders];
			char *name = word(&rest), *e = word(&rest), *loc = word(&rest);
			if (!name || !e || strcmp(e, "entry") || !loc)
				return fail(m, line, "expected `reader NAME entry LOCATION [preempt]`");
			snprintf(r->name, sizeof r->name, "%s", name);
			snprintf(p->pr[m->nreaders].entry, sizeof p->pr[0].entry, "%s", loc);
			r->line = line;
			while ((kw = word(&rest))) {
				if (!strcmp(kw, "preempt"))
					r->preempt = true;
				else if (!strcmp(kw, "old-or-new"))
					r->old_or_new = true;
				else
					return fail(m, line, "unknown reader option '%s' (expected `preempt` or `old-or-new`)",
						    kw);
			}
			m->nreaders++;
			sec = SEC_READER;
			continue;
		}
		if (!strcmp(lower, "site")) {
			word(&rest);
			char *loc = word(&rest);
			if (!loc || word(&rest))
				return fail(m, line, "expected `site LOCATION`");
			if (m->nsites == MAX_TRAPS)
				return fail(m, line, "too many sites (max %d)", MAX_TRAPS);
			snprintf(p->psite[m->nsites].loc, sizeof p->psite[0].loc, "%s", loc);
			p->psite[m->nsites++].line = line;
			sec = SEC_TOP;
			continue;
		}
		if (!strcmp(lower, "rewind")) {
			word(&rest);
			if (m->nrewind == MAX_REWIND)
				return fail(m, line, "too many rewind rules");
			struct rewind *w = &m->rewinds[m->nrewind];
			char *from = word(&rest), *to = word(&rest);
			if (!from || !to)
				return fail(m, line, "expected `rewind FROM TO [on sync] [on resume]`");
			if (!strcmp(to, "->") && !(to = word(&rest)))
				return fail(m, line, "expected `rewind FROM TO [on sync] [on resume]`");
			snprintf(p->pw[m->nrewind].from, sizeof p->pw[0].from, "%s", from);
			snprintf(p->pw[m->nrewind].to, sizeof p->pw[0].to, "%s", to);
			w->line = line;
			w->quiesce_pos = -1;
			char *next = NULL;
			while ((kw = next ? next : word(&rest))) {
				char *what;
				next = NULL;
				if (strcmp(kw, "on") || !(what = word(&rest)))
					return fail(m, line, "expected `on sync`, `on resume` or `on quiesce [LABEL]`, found '%s'",
						    kw);
				if (!strcmp(what, "sync")) {
					w->on_sync = true;
				} else if (!strcmp(what, "resume")) {
					w->on_resume = true;
				} else if (!strcmp(what, "quiesce")) {
					w->on_quiesce = true;
					/* an optional writer label: the quiesce step right after it */
					char *label = word(&rest);
					if (label && !strcmp(label, "on"))
						next = label, label = NULL;
					snprintf(p->pw[m->nrewind].label, sizeof p->pw[0].label, "%s", label ? label : "");
				} else {
					return fail(m, line,
						    "expected `on sync`, `on resume` or `on quiesce [LABEL]`, found 'on %s'", what);
				}
			}
			if (!w->on_sync && !w->on_resume && !w->on_quiesce)
				w->on_sync = w->on_resume = true;
			m->nrewind++;
			sec = SEC_TOP;
			continue;
		}

		switch (sec) {
		case SEC_TOP:
			return fail(m, line,
				    "expected a section keyword (model, arch, func, code, data, writer, reader, rewind), "
				    "found '%s'",
				    lower);
		case SEC_CODE: {
			/* [LABEL:] [ITEM] */
			char *colon = NULL;
			size_t n = strcspn(s, " \t");
			if (n && s[n - 1] == ':') {
				colon = s + n - 1;
				*colon = 0;
				if ((rc = add_sym(m, s, pc, false, line)))
					return rc;
				s = trim(colon + 1);
			}
			if (!*s)
				continue;
			if (!strncasecmp(s, ".space", 6) || !strncasecmp(s, ".align", 6)) {
				char *q = s + 6, *end;
				unsigned long v = strtoul(q, &end, 0);
				if (end == q || *trim(end) || v == 0 || v > 65536)
					return fail(m, line, "expected `%.6s N`", s);
				uint64_t npad = s[1] == 's' ? v : (v - pc % v) % v;
				if (npad)
					add_item(p, line, region, pc, (uint32_t)npad, s[1] == 's' ? ".space" : ".align");
				pc += npad;
				/* Padding belongs to the region too: a trailing `.space` or
				 * `.align` would otherwise be laid out past its end. */
				m->regions[region].size = (uint32_t)(pc - m->regions[region].base);
				continue;
			}
			uint8_t tmp[512];
			uint32_t len;
			if ((rc = assemble_seq(m, line, pc, s, true, tmp, sizeof tmp, &len)))
				return rc;
			if (!m->regions[region].code && s[0] != '.')
				return fail(m, line, "instructions belong in a `code` region, not `data`");
			add_item(p, line, region, pc, len, s);
			pc += len;
			m->regions[region].size = (uint32_t)(pc - m->regions[region].base);
			continue;
		}
		case SEC_WRITER: {
			if (m->nsteps == MAX_STEPS)
				return fail(m, line, "too many writer steps (max %d)", MAX_STEPS);
			struct step *st = &m->steps[m->nsteps];
			struct pending_step *ps = &p->ps[m->nsteps];
			st->line = line;
			snprintf(st->text, sizeof st->text, "%s", s);
			kw = word(&rest);
			if (!strcmp(kw, "label")) {
				char *name = word(&rest);
				if (!name || word(&rest) || !is_ident(name))
					return fail(m, line, "expected `label NAME`");
				for (int i = 0; i < p->nlabels; i++)
					if (!strcmp(p->labels[i], name))
						return fail(m, line, "writer label '%s' defined twice", name);
				snprintf(p->labels[p->nlabels], 64, "%s", name);
				p->label_line[p->nlabels] = line;
				p->label_pos[p->nlabels++] = m->nsteps;
				continue;
			}
			if (!strcmp(kw, "sync") || !strcmp(kw, "fence") || !strcmp(kw, "stop") || !strcmp(kw, "resume")) {
				if (word(&rest))
					return fail(m, line, "`%s` takes no operands", kw);
				st->kind = kw[0] == 's' ? (kw[1] == 'y' ? ST_SYNC : ST_STOP) : kw[0] == 'f' ? ST_FENCE : ST_RESUME;
			} else if (!strcmp(kw, "quiesce")) {
				st->kind = ST_QUIESCE;
				ps->loc = xstrdup(trim(rest));
			} else if (!strcmp(kw, "store") || !strcmp(kw, "trap")) {
				char *loc = word(&rest);
				if (!loc || !*trim(rest))
					return fail(m, line, "expected `%s LOCATION INSTRUCTION[; INSTRUCTION…]`", kw);
				st->kind = kw[0] == 's' ? ST_STORE : ST_TRAP;
				ps->loc = xstrdup(loc);
				ps->body = xstrdup(trim(rest));
			} else if (!strcmp(kw, "untrap")) {
				char *loc = word(&rest);
				if (!loc || word(&rest))
					return fail(m, line, "expected `untrap LOCATION`");
				st->kind = ST_UNTRAP;
				ps->loc = xstrdup(loc);
			} else {
				return fail(m, line,
					    "unknown writer step '%s' (expected store, sync, fence, stop, resume, quiesce, "
					    "trap, untrap, label)",
					    kw);
			}
			m->nsteps++;
			continue;
		}
		case SEC_READER: {
			struct reader *r = &m->readers[m->nreaders - 1];
			struct pending_reader *pr = &p->pr[m->nreaders - 1];
			kw = word(&rest);
			if (!strcmp(kw, "accept")) {
				char *cls = word(&rest), *what = word(&rest);
				if (r->nacc == MAX_ACCEPT)
					return fail(m, line, "too many accept rules");
				struct accept *a = &r->acc[r->nacc];
				if (!cls || !what)
					return fail(m, line, "expected `accept CLASS reach SYMBOL` or `accept CLASS ret`");
				snprintf(a->cls, sizeof a->cls, "%s", cls);
				a->line = line;
				if (!strcmp(what, "ret")) {
					a->kind = OUT_RET;
				} else if (!strcmp(what, "reach")) {
					char *sym = word(&rest);
					if (!sym)
						return fail(m, line, "expected a symbol after `reach`");
					a->kind = OUT_REACH;
					snprintf(pr->acc_sym[r->nacc], 64, "%s", sym);
				} else {
					return fail(m, line, "expected `reach SYMBOL` or `ret`, found '%s'", what);
				}
				if (word(&rest))
					return fail(m, line, "trailing text after accept rule");
				r->nacc++;
			} else if (!strcmp(kw, "require")) {
				char *after = word(&rest), *label = word(&rest), *cls;
				if (r->nreq == MAX_REQUIRE)
					return fail(m, line, "too many require rules");
				struct require *q = &r->req[r->nreq];
				if (!after || strcmp(after, "after") || !label)
					return fail(m, line, "expected `require after WRITER_LABEL CLASS…`");
				snprintf(pr->req_label[r->nreq], 64, "%s", label);
				snprintf(q->label, sizeof q->label, "%s", label);
				q->line = line;
				while ((cls = word(&rest)) && q->ncls < MAX_ACCEPT)
					snprintf(q->cls[q->ncls++], 32, "%s", cls);
				if (!q->ncls)
					return fail(m, line, "`require after %s` lists no outcome class", label);
				r->nreq++;
			} else {
				return fail(m, line, "expected `accept` or `require` in a reader section, found '%s'", kw);
			}
			continue;
		}
		}
	}
	if (ferror(f))
		return fail(m, line, "read error: %s", strerror(errno));
	return 0;
}

static int resolve(struct parser *p)
{
	struct model *m = p->m;
	char err[160];
	int rc;

	if (!m->arch)
		return fail(m, 1, "missing `arch` line");
	if (!m->nregions)
		return fail(m, 1, "no `code` region");
	if (!m->nreaders)
		return fail(m, 1, "no `reader`");

	/* lay out the flat snapshot */
	for (int i = 0; i < m->nregions; i++) {
		struct region *r = &m->regions[i];
		if (!r->size)
			return fail(m, 1, "region at 0x%llx is empty", (unsigned long long)r->base);
		for (int j = 0; j < i; j++) {
			struct region *o = &m->regions[j];
			if (r->base < o->base + o->size && o->base < r->base + r->size)
				return fail(m, 1, "regions at 0x%llx and 0x%llx overlap", (unsigned long long)o->base,
					    (unsigned long long)r->base);
		}
		r->flat = m->memsize;
		m->memsize += r->size;
	}
	m->init = calloc(m->memsize, 1);
	m->is_code = calloc(m->memsize, 1);
	m->anchor = calloc(m->memsize, 1);
	if (!m->init || !m->is_code || !m->anchor) {
		perror("calloc");
		exit(3);
	}
	for (int i = 0; i < m->nregions; i++) {
		struct region *r = &m->regions[i];
		memset(m->is_code + r->flat, r->code, r->size);
		m->anchor[r->flat] = 1;
	}
	for (int i = 0; i < m->nsyms; i++) {
		int f = model_flat(m, m->syms[i].addr);
		if (m->syms[i].is_func && f >= 0)
			return fail(m, m->syms[i].line, "function '%s' lies inside a code/data region; use a label",
				    m->syms[i].name);
		if (f >= 0)
			m->anchor[f] = 1;
	}

	/* encode code and data */
	for (int i = 0; i < p->nitems; i++) {
		struct item *it = &p->items[i];
		int f = model_flat(m, it->addr);
		if (!strcmp(it->text, ".space") || !strcmp(it->text, ".align")) {
			/* padding: NOPs in code (so a sweep passes over it), zeros in data */
			for (uint32_t k = 0; k < it->len; k++) {
				uint8_t b = 0;
				if (m->regions[it->region].code) {
					if (m->arch == ARCH_X86_64)
						b = 0x90;
					else if (m->arch == ARCH_AARCH64)
						b = (uint8_t)(0xd503201fu >> (8 * ((it->addr + k) & 3)));
					else
						b = (it->addr + k) & 1 ? 0x00 : 0x01; /* C.NOP */
				}
				m->init[f + (int)k] = b;
			}
			continue;
		}
		uint8_t tmp[512];
		uint32_t len = 0; /* set by assemble_seq() when it returns 0 */
		if ((rc = assemble_seq(m, it->line, it->addr, it->text, false, tmp, sizeof tmp, &len)))
			return rc;
		memcpy(m->init + f, tmp, len);
		/* data in a code region ends a decode sweep; the next item restarts it */
		if (it->text[0] == '.' && strncasecmp(it->text, ".bytes", 6) && strncasecmp(it->text, ".word", 5) &&
		    strncasecmp(it->text, ".half", 5)) {
			memset(m->is_code + f, 0, len);
			if (f + (int)len < (int)m->memsize)
				m->anchor[f + (int)len] = 1;
		}
	}

	/* writer steps */
	for (int i = 0; i < m->nsteps; i++) {
		struct step *st = &m->steps[i];
		struct pending_step *ps = &p->ps[i];
		/*
		 * `store LOC[A:B] INSN` assembles INSN at LOC and stores only its
		 * bytes A..B-1 (at LOC+A): the int3 protocol writes an instruction
		 * in pieces.
		 */
		int slice_a = -1, slice_b = -1;
		char *br = ps->loc ? strchr(ps->loc, '[') : NULL;
		if (br && st->kind == ST_STORE) {
			if (sscanf(br, "[%d:%d]", &slice_a, &slice_b) != 2 || slice_a < 0 || slice_b <= slice_a)
				return fail(m, st->line, "expected LOCATION[FROM:TO] with 0 <= FROM < TO");
			*br = 0;
		} else if (br) {
			return fail(m, st->line, "a byte range [FROM:TO] is only allowed on `store`");
		}
		if (st->kind == ST_STORE || st->kind == ST_TRAP || st->kind == ST_UNTRAP) {
			if (!eval(m, ps->loc, st->line, &st->addr, err, sizeof err))
				return fail(m, st->line, "%s", err);
			if (model_flat(m, st->addr) < 0)
				return fail(m, st->line, "address 0x%llx is not inside a code or data region",
					    (unsigned long long)st->addr);
		}
		if (st->kind == ST_STORE || st->kind == ST_TRAP) {
			uint8_t tmp[512];
			if ((rc = assemble_seq(m, st->line, st->addr, ps->body, false, tmp, sizeof tmp, &st->len)))
				return rc;
			if (model_flat(m, st->addr + st->len - 1) != model_flat(m, st->addr) + (int)st->len - 1)
				return fail(m, st->line, "store runs past the end of its region");
			if (st->kind == ST_TRAP && (st->len > MAX_INSN || strchr(ps->body, ';')))
				return fail(m, st->line, "`trap` emulates exactly one instruction");
			if (slice_a >= 0) {
				if ((uint32_t)slice_b > st->len)
					return fail(m, st->line, "byte range [%d:%d] exceeds the %u assembled bytes", slice_a,
						    slice_b, st->len);
				memmove(tmp, tmp + slice_a, (size_t)(slice_b - slice_a));
				st->addr += (uint64_t)slice_a;
				st->len = (uint32_t)(slice_b - slice_a);
			}
			st->bytes = malloc(st->len);
			if (!st->bytes) {
				perror("malloc");
				exit(3);
			}
			memcpy(st->bytes, tmp, st->len);
		}
		if (st->kind == ST_TRAP && m->arch != ARCH_X86_64)
			return fail(m, st->line, "`trap` (int3 emulation) is an x86_64 protocol step");
		if (st->kind == ST_QUIESCE) {
			char *a = ps->loc, *b;
			/* NOLINTNEXTLINE(clang-analyzer-core.NullDereference): pass 1 sets loc for every quiesce step */
			if (!*a) {
				st->nranges = 1;
				st->lo[0] = 0, st->hi[0] = UINT64_MAX;
			} else {
				/* FROM TO [FROM TO]…: one wait for all of them (a thread is
				 * outside every range at one moment, not each at its own) */
				b = a;
				char *lo, *hi;
				while ((lo = word(&b))) {
					hi = word(&b);
					if (!hi)
						return fail(m, st->line, "expected `quiesce` or `quiesce FROM TO [FROM TO]…`");
					if (st->nranges == MAX_QRANGES)
						return fail(m, st->line, "too many quiesce ranges (max %d)", MAX_QRANGES);
					int q = st->nranges++;
					if (!eval(m, lo, st->line, &st->lo[q], err, sizeof err) ||
					    !eval(m, hi, st->line, &st->hi[q], err, sizeof err))
						return fail(m, st->line, "%s", err);
					if (st->lo[q] >= st->hi[q])
						return fail(m, st->line, "empty quiesce range");
				}
			}
		}
	}
	/* stop/resume must nest properly */
	int depth = 0;
	for (int i = 0; i < m->nsteps; i++) {
		if (m->steps[i].kind == ST_STOP && depth++)
			return fail(m, m->steps[i].line, "`stop` inside stop…resume");
		if (m->steps[i].kind == ST_RESUME && !depth--)
			return fail(m, m->steps[i].line, "`resume` without `stop`");
		if (m->steps[i].kind == ST_QUIESCE && depth)
			return fail(m, m->steps[i].line, "`quiesce` inside stop…resume would never finish");
	}
	if (depth)
		return fail(m, m->nsteps ? m->steps[m->nsteps - 1].line : 1, "`stop` without `resume`");

	/* readers */
	for (int i = 0; i < m->nreaders; i++) {
		struct reader *r = &m->readers[i];
		struct pending_reader *pr = &p->pr[i];
		if (!eval(m, pr->entry, r->line, &r->entry, err, sizeof err))
			return fail(m, r->line, "%s", err);
		int f = model_flat(m, r->entry);
		if (f < 0 || !m->is_code[f])
			return fail(m, r->line, "reader entry 0x%llx is not in a code region",
				    (unsigned long long)r->entry);
		if (!r->nacc && !r->old_or_new)
			return fail(m, r->line, "reader '%s' has no `accept` rule: every outcome would be a violation",
				    r->name);
		for (int k = 0; k < r->nacc; k++) {
			if (r->acc[k].kind != OUT_REACH)
				continue;
			if ((r->acc[k].sym = find_sym(m, pr->acc_sym[k])) < 0)
				return fail(m, r->acc[k].line, "unknown symbol '%s'", pr->acc_sym[k]);
		}
		for (int k = 0; k < r->nreq; k++) {
			struct require *q = &r->req[k];
			int j;
			for (j = 0; j < p->nlabels && strcmp(p->labels[j], pr->req_label[k]); j++)
				;
			if (j == p->nlabels)
				return fail(m, q->line, "unknown writer label '%s'", pr->req_label[k]);
			q->label_pos = p->label_pos[j];
			for (int c = 0; c < q->ncls; c++) {
				int a;
				for (a = 0; a < r->nacc && strcmp(r->acc[a].cls, q->cls[c]); a++)
					;
				if (a == r->nacc)
					return fail(m, q->line, "class '%s' is not named by any accept rule", q->cls[c]);
			}
		}
	}
	for (int i = 0; i < m->nrewind; i++) {
		struct rewind *w = &m->rewinds[i];
		if (!eval(m, p->pw[i].from, w->line, &w->from, err, sizeof err) ||
		    !eval(m, p->pw[i].to, w->line, &w->to, err, sizeof err))
			return fail(m, w->line, "%s", err);
		/* TO may be a terminal outside the code (the reader ends there) */
		if (model_flat(m, w->from) < 0)
			return fail(m, w->line, "a rewind's FROM must be inside a code region");
		if (p->pw[i].label[0]) {
			int j;
			for (j = 0; j < p->nlabels && strcmp(p->labels[j], p->pw[i].label); j++)
				;
			if (j == p->nlabels)
				return fail(m, w->line, "unknown writer label '%s'", p->pw[i].label);
			w->quiesce_pos = p->label_pos[j];
			if (w->quiesce_pos >= m->nsteps || m->steps[w->quiesce_pos].kind != ST_QUIESCE)
				return fail(m, w->line, "writer label '%s' is not followed by a `quiesce`", p->pw[i].label);
		}
	}
	for (int i = 0; i < m->nsites; i++) {
		if (!eval(m, p->psite[i].loc, p->psite[i].line, &m->sites[i], err, sizeof err))
			return fail(m, p->psite[i].line, "%s", err);
		int f = model_flat(m, m->sites[i]);
		if (f < 0 || !m->is_code[f])
			return fail(m, p->psite[i].line, "site is not in a code region");
	}
	memset(m->regmap, -1, sizeof m->regmap);
	return 0;
}

/* Parse the model read from f (named `path` in messages); f is closed. */
static int model_parse_stream(const char *path, FILE *f, struct model *m)
{
	struct parser *p = calloc(1, sizeof *p);
	int rc;

	if (!p) {
		perror("calloc");
		exit(3);
	}
	p->m = m;
	rc = parse_lines(p, f);
	fclose(f);
	if (!rc)
		rc = resolve(p);
	if (!rc) {
		mem_prepare(m);
		rc = mem_derive_sites(m);
	}
#ifdef STITCH_CHECK_LIBDECODE
	if (!rc)
		rc = libdec_verify(m);
#endif
	for (int i = 0; i < p->nitems; i++)
		free(p->items[i].text);
	free(p->items);
	for (int i = 0; i < MAX_STEPS; i++) {
		free(p->ps[i].loc);
		free(p->ps[i].body);
	}
	free(p);
	if (!m->name[0]) {
		const char *b = strrchr(path, '/');
		snprintf(m->name, sizeof m->name, "%s", b ? b + 1 : path);
	}
	return rc;
}

int model_parse(const char *path, struct model *m)
{
	FILE *f;

	memset(m, 0, sizeof *m);
	snprintf(m->file, sizeof m->file, "%s", path);
	f = fopen(path, "r");
	if (!f) {
		fprintf(stderr, "%s: error: %s\n", path, strerror(errno));
		return 2;
	}
	return model_parse_stream(path, f, m);
}

int model_parse_buffer(const char *name, const char *buf, size_t len, struct model *m)
{
	FILE *f;

	memset(m, 0, sizeof *m);
	snprintf(m->file, sizeof m->file, "%s", name);
	/* glibc >= 2.22 accepts len 0 (a stream that is at end of file at once). */
	f = fmemopen((void *)buf, len, "r");
	if (!f) {
		fprintf(stderr, "%s: error: %s\n", name, strerror(errno));
		return 2;
	}
	return model_parse_stream(name, f, m);
}

void model_free(struct model *m)
{
	for (int i = 0; i < m->nsteps; i++) {
		free(m->steps[i].bytes);
	}
	if (m->snap)
		for (int p = 0; p <= m->nsteps; p++) {
			free(m->snap[p]);
			free(m->bound[p]);
			free(m->traps[p]);
		}
	free(m->snap);
	free(m->bound);
	free(m->traps);
	free(m->ntraps);
	free(m->fetch_from);
	free(m->data_from);
	free(m->stopped);
	free(m->init);
	free(m->is_code);
	free(m->anchor);
}
