/* SPDX-License-Identifier: MIT */
/*
 * Transition relation and breadth-first exhaustive search.
 *
 * A state is the writer's position plus, per reader, where it is
 * (not started / running / preempted / done), its pc and the registers
 * the model uses.  Memory is not in the state: it is a function of the
 * writer's position (mem.c).  Transitions, all interleaved:
 *   - the writer does its next step (a `quiesce` applies its `rewind … on
 *     quiesce` rules to every started reader and completes only when no
 *     reader is then inside its ranges; a `sync` also applies `rewind … on
 *     sync` rules to every running reader, as the IPI that delivers it
 *     would);
 *   - a reader fetches and executes one instruction, choosing among every
 *     value the fetch model allows (stale versions, torn combinations);
 *   - a `preempt` reader is descheduled / scheduled again (`rewind … on
 *     resume` rules apply on the way back, like a kernel's trap return).
 * No reader moves between `stop` and `resume`.
 *
 * Search is BFS with a hash set of visited states, so the first violation
 * found has a shortest path, which is printed as the counterexample.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "explore.h"

#define POISON 0xdead000000000000ULL /* value of a register nobody wrote: never code, never a function */

void initial_state(const struct model *m, struct gst *s)
{
	memset(s, 0, sizeof *s);
	(void)m;
}

bool is_final(const struct model *m, const struct gst *s)
{
	if (s->wpc != (uint32_t)m->nsteps)
		return false;
	for (int i = 0; i < m->nreaders; i++)
		if (s->r[i].status != RS_DONE)
			return false;
	return true;
}

/* Register slot for an architectural register, -1 for the zero register. */
static int regslot(struct model *m, int r)
{
	if (r < 0 || (m->arch == ARCH_RISCV64 && r == 0) || (m->arch == ARCH_AARCH64 && r == 31))
		return -1;
	if (m->regmap[r] < 0) {
		if (m->nregslots == NREGSLOT) {
			fprintf(stderr, "%s: error: more than %d registers in use\n", m->file, NREGSLOT);
			exit(2);
		}
		m->regmap[r] = (int8_t)m->nregslots++;
	}
	return m->regmap[r];
}

static uint64_t rget(struct model *m, const struct rst *r, int reg)
{
	int k = regslot(m, reg);
	if (k < 0)
		return 0;
	return (r->wmask >> k) & 1 ? r->regs[k] : POISON | (uint64_t)reg << 32;
}

static void rset(struct model *m, struct rst *r, int reg, uint64_t v)
{
	int k = regslot(m, reg);
	if (k < 0)
		return;
	r->regs[k] = v;
	r->wmask |= (uint8_t)(1u << k);
}

static const char *sym(const struct model *m, uint64_t a)
{
	static char buf[4][96];
	static int k;
	return model_symname(m, a, buf[k++ & 3], sizeof buf[0]);
}

/* A code byte (flat index) for pc, or -1. */
static int code_flat(const struct model *m, uint64_t pc)
{
	int f = model_flat(m, pc);
	return f >= 0 && m->is_code[f] ? f : -1;
}

static uint32_t region_end(const struct model *m, uint64_t addr)
{
	for (int i = 0; i < m->nregions; i++) {
		const struct region *r = &m->regions[i];
		if (addr >= r->base && addr - r->base < r->size)
			return r->flat + r->size;
	}
	return 0;
}

/* Distinct n-byte values at flat index f over the window [from, to]. */
static int window_values(const struct model *m, int from, int to, int f, int n, uint8_t vals[][8])
{
	int k = 0;
	for (int q = from; q <= to; q++) {
		int j;
		for (j = 0; j < k && memcmp(vals[j], m->snap[q] + f, (size_t)n); j++)
			;
		if (j == k)
			memcpy(vals[k++], m->snap[q] + f, (size_t)n);
	}
	return k;
}

struct fchoice {
	uint8_t b[MAX_INSN];
	uint8_t len;
	bool stale;
	const char *bad; /* torn or mid-instruction: why no version of the code had this instruction here */
};

#define MAX_CHOICES 512

/* Is (pc, bytes) an instruction of some version in the window? */
static const char *consistent(const struct model *m, int from, int to, int f, const uint8_t *b, int len)
{
	bool same_bytes = false;
	for (int q = from; q <= to; q++) {
		if (memcmp(m->snap[q] + f, b, (size_t)len))
			continue;
		same_bytes = true;
		if (m->bound[q][f])
			return NULL;
	}
	return same_bytes ? "pc is not an instruction boundary of that code (the thread resumed inside an instruction "
			    "that was rewritten)"
			  : "torn fetch: these bytes never existed together (parts of different versions)";
}

/*
 * Every instruction a fetch at pc may return at writer position wpc.
 * Returns the number of choices, or -1 with *why set for a violation
 * that does not depend on the choice (misaligned pc, CMODX).
 */
static int fetch(const struct model *m, int wpc, uint64_t pc, struct fchoice *out, char *why, size_t whyn)
{
	int f = code_flat(m, pc), from = m->fetch_from[wpc], n = 0;
	uint8_t v[MAX_STEPS + 1][8], v2[MAX_STEPS + 1][8];

	if (f < 0) {
		snprintf(why, whyn, "pc %s is not in a code region", sym(m, pc));
		return -1;
	}
	int avail = (int)(region_end(m, pc) - (uint32_t)f);
	switch (m->arch) {
	case ARCH_AARCH64: {
		if ((pc & 3) || avail < 4) {
			snprintf(why, whyn, "misaligned pc %s", sym(m, pc));
			return -1;
		}
		int k = window_values(m, from, wpc, f, 4, v);
		if (k > 1) {
			/* concurrent modification: allowed only between CMODX-listed instructions */
			char vers[256] = "";
			const char *bad = NULL;
			struct insn in[MAX_STEPS + 1];
			for (int i = 0; i < k; i++) {
				a64_dec((uint32_t)v[i][0] | (uint32_t)v[i][1] << 8 | (uint32_t)v[i][2] << 16 |
						(uint32_t)v[i][3] << 24,
					pc, &in[i]);
				snprintf(vers + strlen(vers), sizeof vers - strlen(vers), "%s'%s'", i ? ", " : "",
					 in[i].text);
				if (!in[i].cmodx_ok && !bad)
					bad = in[i].text;
			}
			if (bad) {
				snprintf(why, whyn,
					 "CMODX violation: %s is fetched while being changed without a sync in between "
					 "(versions %s); '%s' is not one of B, BL, B.cond, CBZ, CBNZ, TBZ, TBNZ, NOP, BRK, "
					 "ISB, SVC, HVC, SMC",
					 sym(m, pc), vers, bad);
				return -1;
			}
		}
		for (int i = 0; i < k; i++) {
			memcpy(out[n].b, v[i], 4);
			out[n].len = 4;
			out[n].stale = memcmp(v[i], m->snap[wpc] + f, 4) != 0;
			out[n].bad = NULL;
			n++;
		}
		return n;
	}
	case ARCH_RISCV64: {
		if ((pc & 1) || avail < 2) {
			snprintf(why, whyn, "misaligned pc %s", sym(m, pc));
			return -1;
		}
		/* the 4-byte aligned word holding pc is fetched atomically; a second word only if straddling */
		int k = window_values(m, from, wpc, f, avail >= 4 && !(pc & 2) ? 4 : 2, v);
		for (int i = 0; i < k; i++) {
			bool four = (v[i][0] & 3) == 3;
			if (!four || !(pc & 2)) {
				if (four && avail < 4)
					continue;
				memcpy(out[n].b, v[i], four ? 4 : 2);
				out[n].len = four ? 4 : 2;
				n++;
				continue;
			}
			if (avail < 4)
				continue;
			int k2 = window_values(m, from, wpc, f + 2, 2, v2);
			for (int j = 0; j < k2 && n < MAX_CHOICES; j++) {
				memcpy(out[n].b, v[i], 2);
				memcpy(out[n].b + 2, v2[j], 2);
				out[n].len = 4;
				n++;
			}
		}
		break;
	}
	case ARCH_X86_64: {
		/* one byte per granule: enumerate the product, keep distinct decoded instructions */
		int lim = avail < 8 ? avail : 8, cnt[8], idx[8] = {0};
		uint8_t bv[8][MAX_STEPS + 1];
		for (int i = 0; i < lim; i++) {
			cnt[i] = 0;
			for (int q = from; q <= wpc; q++) {
				uint8_t b = m->snap[q][f + i];
				int j;
				for (j = 0; j < cnt[i] && bv[i][j] != b; j++)
					;
				if (j == cnt[i])
					bv[i][cnt[i]++] = b;
			}
		}
		for (;;) {
			uint8_t b[8];
			struct insn in;
			for (int i = 0; i < lim; i++)
				/* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): from <= wpc: >= 1 value per byte */
				b[i] = bv[i][idx[i]];
			x86_dec(b, (size_t)lim, pc, &in);
			int j;
			for (j = 0; j < n && (out[j].len != in.len || memcmp(out[j].b, b, in.len)); j++)
				;
			if (j == n && n < MAX_CHOICES) {
				memcpy(out[n].b, b, in.len);
				out[n].len = in.len;
				n++;
			}
			/* odometer over the bytes the instruction may cover */
			int i = 0;
			while (i < lim && ++idx[i] == cnt[i])
				idx[i++] = 0;
			if (i == lim)
				break;
		}
		break;
	}
	default:
		return 0;
	}
	for (int i = 0; i < n; i++) {
		out[i].stale = memcmp(out[i].b, m->snap[wpc] + f, out[i].len) != 0;
		out[i].bad = consistent(m, from, wpc, f, out[i].b, out[i].len);
	}
	return n;
}

/* Distinct 8-byte values a load at addr may return at wpc. */
static int load_values(const struct model *m, int wpc, uint64_t addr, uint64_t *vals, int max)
{
	int f = model_flat(m, addr), from = m->data_from[wpc], n = 0;
	int g = !(addr & 7) ? 8 : !(addr & 3) && m->arch != ARCH_X86_64 ? 4 : 1;
	uint8_t v[8][MAX_STEPS + 1][8];
	int cnt[8], idx[8] = {0}, ng = 8 / g;

	if (f < 0 || model_flat(m, addr + 7) != f + 7)
		return -1;
	/* an aligned 8-byte load is single-copy atomic; a misaligned one is not */
	for (int i = 0; i < ng; i++)
		cnt[i] = window_values(m, from, wpc, f + i * g, g, v[i]);
	for (;;) {
		uint64_t x = 0;
		for (int i = 0; i < ng; i++)
			for (int j = 0; j < g; j++)
				/* NOLINTNEXTLINE(clang-analyzer-core.UndefinedBinaryOperatorResult): from <= wpc: >= 1 value per granule */
				x |= (uint64_t)v[i][idx[i]][j] << (8 * (i * g + j));
		int j;
		for (j = 0; j < n && vals[j] != x; j++)
			;
		if (j == n && n < max)
			vals[n++] = x;
		int i = 0;
		while (i < ng && ++idx[i] == cnt[i])
			idx[i++] = 0;
		if (i == ng)
			break;
	}
	return n;
}

static int find_sym_at(const struct model *m, const struct reader *rd, uint64_t a)
{
	for (int i = 0; i < m->nsyms; i++)
		if (m->syms[i].is_func && m->syms[i].addr == a)
			return i;
	for (int k = 0; k < rd->nacc; k++)
		if (rd->acc[k].kind == OUT_REACH && m->syms[rd->acc[k].sym].addr == a)
			return rd->acc[k].sym;
	return -1;
}

struct ctx_out {
	succ_cb cb;
	void *ctx;
	bool describe;
};

#define DESC(...)                                                         \
	do {                                                              \
		if (o->describe)                                          \
			snprintf(desc + strlen(desc), sizeof desc - strlen(desc), __VA_ARGS__); \
	} while (0)

/*
 * The reader finished (ret or reached a terminal symbol): classify the
 * outcome against its accept rules, then its require rules.
 */
static void finish(struct model *m, struct ctx_out *o, struct event *ev, struct gst *n, int ri, bool is_ret,
		   uint64_t to, char *desc)
{
	const struct reader *rd = &m->readers[ri];
	struct rst *r = &n->r[ri];
	char why[512];
	int a;

	for (a = 0; a < rd->nacc; a++) {
		const struct accept *ac = &rd->acc[a];
		if (is_ret ? ac->kind == OUT_RET : ac->kind == OUT_REACH && m->syms[ac->sym].addr == to)
			break;
	}
	if (a == rd->nacc) {
		snprintf(why, sizeof why, "reader %s %s%s, which no accept rule allows", rd->name,
			 is_ret ? "returns (ret)" : "reaches ", is_ret ? "" : sym(m, to));
		o->cb(o->ctx, ev, n, why, desc);
		return;
	}
	for (int q = 0; q < rd->nreq; q++) {
		const struct require *rq = &rd->req[q];
		if (r->start < rq->label_pos)
			continue;
		int c;
		for (c = 0; c < rq->ncls && strcmp(rq->cls[c], rd->acc[a].cls); c++)
			;
		if (c == rq->ncls) {
			snprintf(why, sizeof why,
				 "reader %s entered after writer label '%s' but ended '%s' (%s %s); required: %s%s%s",
				 rd->name, rq->label, rd->acc[a].cls, is_ret ? "ret" : "reach", is_ret ? "" : sym(m, to),
				 rq->cls[0], rq->ncls > 1 ? " or " : "", rq->ncls > 1 ? rq->cls[1] : "");
			o->cb(o->ctx, ev, n, why, desc);
			return;
		}
	}
	ev->cls = (int16_t)a;
	DESC(" => %s %s: '%s'", rd->name, is_ret ? "returns" : "reaches", rd->acc[a].cls);
	if (!is_ret)
		DESC(" (%s)", sym(m, to));
	memset(r, 0, sizeof *r);
	r->status = RS_DONE;
	o->cb(o->ctx, ev, n, NULL, desc);
}

/* Execute one fetched instruction of reader ri; may branch on a load's value. */
static void execute(struct model *m, struct ctx_out *o, const struct gst *s, int ri, const struct fchoice *fc,
		    uint64_t pc)
{
	const struct reader *rd = &m->readers[ri];
	struct event ev = {.actor = (int8_t)ri, .kind = EV_FETCH, .len = fc->len, .stale = fc->stale, .cls = -1, .pc = pc};
	struct gst n = *s;
	struct rst *r = &n.r[ri];
	struct insn in;
	char desc[1024] = "", why[512];
	uint64_t next;

	memcpy(ev.bytes, fc->b, fc->len);
	if (r->status == RS_IDLE) {
		r->status = RS_RUN;
		r->start = (uint16_t)s->wpc;
		r->pc = pc;
	}
	decode_insn(m->arch, fc->b, fc->len, pc, &in);
	DESC("%s @%s: %s", rd->name, sym(m, pc), in.text);
	if (o->describe) {
		DESC("  [");
		for (int i = 0; i < fc->len; i++)
			DESC("%s%02x", i ? " " : "", fc->b[i]);
		DESC("%s]", fc->stale ? ", stale" : "");
	}
	if (fc->bad) {
		snprintf(why, sizeof why, "reader %s at %s executes '%s': %s", rd->name, sym(m, pc), in.text, fc->bad);
		o->cb(o->ctx, &ev, &n, why, desc);
		return;
	}
	if (in.kind == IK_TRAP && m->arch == ARCH_X86_64) {
		int k;
		for (k = 0; k < m->ntraps[s->wpc] && m->traps[s->wpc][k].addr != pc; k++)
			;
		if (k == m->ntraps[s->wpc]) {
			snprintf(why, sizeof why, "reader %s hits int3 at %s with no handler armed (SIGTRAP)", rd->name,
				 sym(m, pc));
			o->cb(o->ctx, &ev, &n, why, desc);
			return;
		}
		/* the trap handler emulates the instruction and resumes after it */
		decode_insn(m->arch, m->traps[s->wpc][k].bytes, m->traps[s->wpc][k].len, pc, &in);
		DESC(" -> handler emulates %s", in.text);
	}
	switch (in.kind) {
	case IK_UNDEF:
	case IK_TRAP:
	case IK_CONDBR:
		snprintf(why, sizeof why, "reader %s executes '%s' at %s: %s", rd->name, in.text, sym(m, pc),
			 in.kind == IK_UNDEF	? "undefined instruction (SIGILL)"
			 : in.kind == IK_TRAP ? "a trap nobody handles"
					      : "conditional branches are not modelled");
		o->cb(o->ctx, &ev, &n, why, desc);
		return;
	default:
		break;
	}
	next = pc + in.len;
	bool transfer = false;
	switch (in.kind) {
	case IK_FALL:
		break;
	case IK_SETREG:
		rset(m, r, in.rd, in.target);
		DESC(" -> %s=0x%llx", reg_name(m->arch, in.rd), (unsigned long long)in.target);
		break;
	case IK_ADDIMM: {
		uint64_t x = rget(m, r, in.rn) + (uint64_t)in.imm;
		rset(m, r, in.rd, x);
		DESC(" -> %s=0x%llx", reg_name(m->arch, in.rd), (unsigned long long)x);
		break;
	}
	case IK_MOV: {
		uint64_t x = rget(m, r, in.rn);
		rset(m, r, in.rd, x);
		DESC(" -> %s=0x%llx", reg_name(m->arch, in.rd), (unsigned long long)x);
		break;
	}
	case IK_LOAD: {
		uint64_t addr = in.rn < 0 ? in.target : rget(m, r, in.rn) + (uint64_t)in.imm, vals[64];
		int k = load_values(m, (int)s->wpc, addr, vals, 64);
		if (k < 0) {
			snprintf(why, sizeof why, "reader %s loads 8 bytes from %s, outside every region", rd->name,
				 sym(m, addr));
			o->cb(o->ctx, &ev, &n, why, desc);
			return;
		}
		size_t dl = strlen(desc);
		for (int i = 0; i < k; i++) {
			struct gst n2 = n;
			struct event ev2 = ev;
			desc[dl] = 0;
			rset(m, &n2.r[ri], in.rd, vals[i]);
			n2.r[ri].pc = next;
			ev2.loaded = 1;
			ev2.data = vals[i];
			DESC(" -> %s=0x%llx", reg_name(m->arch, in.rd), (unsigned long long)vals[i]);
			if (find_sym_at(m, rd, next) >= 0) {
				finish(m, o, &ev2, &n2, ri, false, next, desc);
				continue;
			}
			o->cb(o->ctx, &ev2, &n2, NULL, desc);
		}
		return;
	}
	case IK_JUMP:
		next = in.target;
		transfer = true;
		if (in.link >= 0 && m->arch != ARCH_X86_64)
			rset(m, r, in.link, pc + in.len);
		break;
	case IK_JUMP_REG:
		next = (rget(m, r, in.rn) + (uint64_t)in.imm) & (m->arch == ARCH_RISCV64 ? ~1ULL : ~0ULL);
		transfer = true;
		if (in.link >= 0)
			rset(m, r, in.link, pc + in.len);
		DESC(" -> 0x%llx", (unsigned long long)next);
		break;
	case IK_RET:
		finish(m, o, &ev, &n, ri, true, 0, desc);
		return;
	default:
		break;
	}
	r->pc = next;
	if (find_sym_at(m, rd, next) >= 0) {
		finish(m, o, &ev, &n, ri, false, next, desc);
		return;
	}
	if (code_flat(m, next) < 0) {
		if ((next & 0xffff0000ffffffffULL) == POISON)
			snprintf(why, sizeof why,
				 "reader %s jumps through %s, which it never set on this path (it skipped the instruction "
				 "that loads it)",
				 rd->name, reg_name(m->arch, (int)((next >> 32) & 0xffff)));
		else
			snprintf(why, sizeof why, "reader %s %s 0x%llx, which is neither code nor a declared function",
				 rd->name, transfer ? "transfers control to" : "runs off the end of its code into",
				 (unsigned long long)next);
		o->cb(o->ctx, &ev, &n, why, desc);
		return;
	}
	o->cb(o->ctx, &ev, &n, NULL, desc);
}

enum rewind_at { AT_SYNC, AT_RESUME, AT_QUIESCE };

/* `wpc`: the writer's position (AT_QUIESCE: the quiesce step being done). */
static void apply_rewinds(const struct model *m, struct rst *r, enum rewind_at at, int wpc, char *desc, size_t dn,
			  const char *name)
{
	for (int k = 0; k < m->nrewind; k++) {
		const struct rewind *w = &m->rewinds[k];
		bool when = at == AT_SYNC     ? w->on_sync
			    : at == AT_RESUME ? w->on_resume
					      : w->on_quiesce && (w->quiesce_pos < 0 || w->quiesce_pos == wpc);
		if (when && r->pc == w->from) {
			if (desc)
				snprintf(desc + strlen(desc), dn - strlen(desc), " [%s at %s rewound to %s]", name,
					 sym(m, w->from), sym(m, w->to));
			r->pc = w->to;
			break;
		}
	}
}

int successors(struct model *m, const struct gst *s, bool describe, succ_cb cb, void *ctx)
{
	struct ctx_out o = {.cb = cb, .ctx = ctx, .describe = describe};
	int count = 0;
	char why[512];
	struct fchoice fc[MAX_CHOICES];

	/* writer */
	if (s->wpc < (uint32_t)m->nsteps) {
		const struct step *st = &m->steps[s->wpc];
		bool enabled = true;
		struct gst n = *s;
		char desc[1024] = "";
		if (describe)
			snprintf(desc, sizeof desc, "writer: %s", st->text);
		if (st->kind == ST_QUIESCE) {
			/* The library's quiescence signals every thread, running or
			 * not, and its handler applies the fixup before the thread
			 * reports where it is: the step completes once no reader is
			 * in a range after its rewind.  (Each thread is handled at
			 * its own moment, but the writer does nothing meanwhile and
			 * readers do not interact, so one moment for all is the same.) */
			for (int i = 0; i < m->nreaders; i++) {
				struct rst *r = &n.r[i];
				if (r->status != RS_RUN && r->status != RS_PREEMPTED)
					continue;
				apply_rewinds(m, r, AT_QUIESCE, (int)s->wpc, describe ? desc : NULL, sizeof desc,
					      m->readers[i].name);
				for (int q = 0; q < st->nranges; q++)
					if (r->pc >= st->lo[q] && r->pc < st->hi[q])
						enabled = false;
			}
		}
		if (enabled) {
			struct event ev = {.actor = -1, .kind = EV_WRITER, .cls = -1};
			n.wpc++;
			if (st->kind == ST_SYNC)
				for (int i = 0; i < m->nreaders; i++)
					if (n.r[i].status == RS_RUN)
						apply_rewinds(m, &n.r[i], AT_SYNC, (int)s->wpc, describe ? desc : NULL,
							      sizeof desc, m->readers[i].name);
			cb(ctx, &ev, &n, NULL, desc);
			count++;
		}
	}
	if (m->stopped[s->wpc])
		return count;
	for (int i = 0; i < m->nreaders; i++) {
		const struct rst *r = &s->r[i];
		const struct reader *rd = &m->readers[i];
		if (r->status == RS_DONE)
			continue;
		if (r->status == RS_PREEMPTED) {
			struct gst n = *s;
			struct event ev = {.actor = (int8_t)i, .kind = EV_RESUME, .cls = -1, .pc = r->pc};
			char desc[1024] = "";
			if (describe)
				snprintf(desc, sizeof desc, "%s is scheduled again at %s", rd->name, sym(m, r->pc));
			n.r[i].status = RS_RUN;
			apply_rewinds(m, &n.r[i], AT_RESUME, (int)s->wpc, describe ? desc : NULL, sizeof desc, rd->name);
			cb(ctx, &ev, &n, NULL, desc);
			count++;
			continue;
		}
		/* preemption only changes behaviour through rewind rules; without them it is just slowness */
		if (r->status == RS_RUN && rd->preempt && m->nrewind) {
			struct gst n = *s;
			struct event ev = {.actor = (int8_t)i, .kind = EV_PREEMPT, .cls = -1, .pc = r->pc};
			char desc[256] = "";
			if (describe)
				snprintf(desc, sizeof desc, "%s is preempted at %s", rd->name, sym(m, r->pc));
			n.r[i].status = RS_PREEMPTED;
			cb(ctx, &ev, &n, NULL, desc);
			count++;
		}
		/* A rewind (a stopped world's fixup) may move a reader straight
		 * onto a terminal, e.g. past the five NOPs of an x86 site: it ends
		 * there, as if it had run to it. */
		if (r->status == RS_RUN && find_sym_at(m, rd, r->pc) >= 0) {
			struct gst n = *s;
			struct event ev = {.actor = (int8_t)i, .kind = EV_FETCH, .cls = -1, .pc = r->pc};
			char desc[1024] = "";
			if (describe)
				snprintf(desc, sizeof desc, "%s stands at %s", rd->name, sym(m, r->pc));
			finish(m, &o, &ev, &n, i, false, r->pc, desc);
			count++;
			continue;
		}
		uint64_t pc = r->status == RS_IDLE ? rd->entry : r->pc;
		int k = fetch(m, (int)s->wpc, pc, fc, why, sizeof why);
		if (k < 0) {
			struct event ev = {.actor = (int8_t)i, .kind = EV_FETCH, .cls = -1, .pc = pc};
			char w2[600];
			snprintf(w2, sizeof w2, "reader %s: %s", rd->name, why);
			cb(ctx, &ev, s, w2, describe ? w2 : "");
			count++;
			continue;
		}
		for (int c = 0; c < k; c++)
			execute(m, &o, s, i, &fc[c], pc);
		count += k;
	}
	return count;
}

/* ---- search ---- */

struct search {
	struct model *m;
	size_t ssize;
	uint8_t *states;
	uint32_t *parent;
	struct event *evs;
	uint32_t n, cap;
	uint32_t *table;
	uint32_t tcap;
	uint32_t cur;
	uint64_t transitions;
	bool found;
	uint32_t vparent;
	struct event vev;
	char vwhy[512];
};

static uint64_t hash(const uint8_t *p, size_t n)
{
	uint64_t h = 0x9e3779b97f4a7c15ULL ^ n;
	size_t i = 0;
	for (; i + 8 <= n; i += 8) {
		uint64_t x;
		memcpy(&x, p + i, 8);
		h = (h ^ x) * 0xff51afd7ed558ccdULL;
		h ^= h >> 32;
	}
	for (; i < n; i++)
		h = (h ^ p[i]) * 0x100000001b3ULL;
	return h ^ (h >> 29);
}

static void grow_table(struct search *S)
{
	uint32_t ncap = S->tcap ? S->tcap * 2 : 1u << 12;
	uint32_t *t = calloc(ncap, sizeof *t);
	if (!t) {
		perror("calloc");
		exit(3);
	}
	for (uint32_t i = 0; i < S->n; i++) {
		uint64_t h = hash(S->states + (size_t)i * S->ssize, S->ssize);
		uint32_t j = (uint32_t)h & (ncap - 1);
		while (t[j])
			j = (j + 1) & (ncap - 1);
		t[j] = i + 1;
	}
	free(S->table);
	S->table = t;
	S->tcap = ncap;
}

/* Index of the state, inserting it if new; *fresh says which. */
static uint32_t intern(struct search *S, const struct gst *g, uint32_t parent, const struct event *ev, bool *fresh)
{
	const uint8_t *p = (const uint8_t *)g;
	if ((uint64_t)(S->n + 1) * 2 > S->tcap)
		grow_table(S);
	uint64_t h = hash(p, S->ssize);
	uint32_t j = (uint32_t)h & (S->tcap - 1);
	while (S->table[j]) {
		uint32_t i = S->table[j] - 1;
		/* NOLINTNEXTLINE(clang-analyzer-core.NonNullParamChecker): a table entry implies a stored state */
		if (!memcmp(S->states + (size_t)i * S->ssize, p, S->ssize)) {
			*fresh = false;
			return i;
		}
		j = (j + 1) & (S->tcap - 1);
	}
	if (S->n == S->cap) {
		S->cap = S->cap ? S->cap * 2 : 4096;
		/* NOLINTNEXTLINE(clang-analyzer-optin.portability.UnixAPI): ssize (bytes per state) is never 0 */
		S->states = realloc(S->states, (size_t)S->cap * S->ssize);
		S->parent = realloc(S->parent, (size_t)S->cap * sizeof *S->parent);
		S->evs = realloc(S->evs, (size_t)S->cap * sizeof *S->evs);
		if (!S->states || !S->parent || !S->evs) {
			perror("realloc");
			exit(3);
		}
	}
	memcpy(S->states + (size_t)S->n * S->ssize, p, S->ssize);
	S->parent[S->n] = parent;
	if (ev)
		S->evs[S->n] = *ev;
	S->table[j] = S->n + 1;
	*fresh = true;
	return S->n++;
}

static void on_succ(void *ctx, const struct event *ev, const struct gst *next, const char *violation,
		    const char *desc)
{
	struct search *S = ctx;
	bool fresh;
	(void)desc;
	S->transitions++;
	if (S->found)
		return;
	if (violation) {
		S->found = true;
		S->vparent = S->cur;
		S->vev = *ev;
		snprintf(S->vwhy, sizeof S->vwhy, "%s", violation);
		return;
	}
	intern(S, next, S->cur, ev, &fresh);
}

struct match {
	const struct event *want;
	char text[1024];
	bool hit;
};

static bool same_event(const struct event *a, const struct event *b)
{
	return a->actor == b->actor && a->kind == b->kind && a->len == b->len && a->pc == b->pc &&
	       a->loaded == b->loaded && a->data == b->data && !memcmp(a->bytes, b->bytes, a->len);
}

static void on_match(void *ctx, const struct event *ev, const struct gst *next, const char *violation,
		     const char *desc)
{
	struct match *M = ctx;
	(void)next;
	(void)violation;
	if (M->hit || !same_event(ev, M->want))
		return;
	M->hit = true;
	snprintf(M->text, sizeof M->text, "%s", desc);
}

static void describe_step(struct model *m, const struct gst *from, const struct event *ev, char *out, size_t n)
{
	struct match M = {.want = ev};
	successors(m, from, true, on_match, &M);
	snprintf(out, n, "%s", M.hit ? M.text : "(transition not found)");
}

void check_model(struct model *m, struct result *res)
{
	struct search S = {.m = m, .ssize = gst_size(m)};
	struct gst g;
	bool fresh;
	struct timespec t0, t1;

	memset(res, 0, sizeof *res);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	initial_state(m, &g);
	intern(&S, &g, UINT32_MAX, NULL, &fresh);
	for (S.cur = 0; S.cur < S.n && !S.found; S.cur++) {
		struct gst cur;
		memcpy(&cur, S.states + (size_t)S.cur * S.ssize, S.ssize);
		int k = successors(m, &cur, false, on_succ, &S);
		if (!k && !is_final(m, &cur) && !S.found) {
			/* nobody can move yet the run is not over: the writer waits forever */
			S.found = true;
			S.vparent = S.cur;
			memset(&S.vev, 0, sizeof S.vev);
			S.vev.kind = 255;
			snprintf(S.vwhy, sizeof S.vwhy, "deadlock: no thread can move and the writer is at step %u of %d",
				 cur.wpc, m->nsteps);
		}
	}
	clock_gettime(CLOCK_MONOTONIC, &t1);
	res->seconds = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
	res->states = S.n;
	res->transitions = S.transitions;
	res->unsafe = S.found;
	if (S.found) {
		/* rebuild the path: initial -> ... -> vparent, then the violating transition */
		int len = 0;
		for (uint32_t i = S.vparent; i != UINT32_MAX && i != 0; i = S.parent[i])
			len++;
		res->ntrace = len + 1;
		res->depth = len + 1;
		res->trace = calloc((size_t)res->ntrace, sizeof *res->trace);
		uint32_t *path = calloc((size_t)len + 1, sizeof *path);
		int k = len;
		for (uint32_t i = S.vparent; i != 0; i = S.parent[i])
			path[--k] = i;
		uint32_t prev = 0;
		for (int t = 0; t < len; t++) {
			struct gst from;
			memcpy(&from, S.states + (size_t)prev * S.ssize, S.ssize);
			describe_step(m, &from, &S.evs[path[t]], res->trace[t].text, sizeof res->trace[t].text);
			prev = path[t];
		}
		if (S.vev.kind == 255) {
			snprintf(res->trace[len].text, sizeof res->trace[len].text, "(no move possible)");
		} else {
			struct gst from;
			memcpy(&from, S.states + (size_t)S.vparent * S.ssize, S.ssize);
			describe_step(m, &from, &S.vev, res->trace[len].text, sizeof res->trace[len].text);
		}
		snprintf(res->violation, sizeof res->violation, "%s", S.vwhy);
		free(path);
	}
	free(S.states);
	free(S.parent);
	free(S.evs);
	free(S.table);
}

void result_free(struct result *res)
{
	free(res->trace);
	res->trace = NULL;
}
