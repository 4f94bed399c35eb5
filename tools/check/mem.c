/* SPDX-License-Identifier: MIT */
/*
 * Memory and fetch model tables.
 *
 * The writer is one deterministic sequence of steps, so the contents of
 * memory depend only on how many steps it has done (its position p).  We
 * keep snap[p], the memory after p steps, and express staleness as a
 * window of positions: an instruction fetch at position p may return the
 * bytes of any snap[q] with fetch_from[p] <= q <= p, where fetch_from[p]
 * is the position right after the last `sync` (membarrier SYNC_CORE,
 * remote fence.i, IPI+ISB).  Before that sync every thread may still
 * fetch anything written since the previous one; after it, none can.
 * Which bytes are fetched *together* (one granule, single-copy atomic)
 * is per architecture, in explore.c: a 4-byte aligned word on AArch64 and
 * RISC-V, one byte on x86 (the SDM promises nothing larger for code being
 * modified by another CPU, so any multi-byte instruction can be torn).
 *
 * Data loads use the same scheme with data_from[p], reset by `fence`,
 * `sync` and `quiesce`: this is deliberately simple (it treats the reader as
 * ordering its own dependent loads), it only matters for literal pools
 * and trampoline tables, and is documented in docs/model-format.md.
 *
 * bound[p] marks instruction starts in snap[p], found by decoding forward
 * from every anchor (region start, label, end of data).  A fetch at pc is
 * only an instruction of version q if bound[q][pc] is set: this is what
 * catches a thread resuming at offset 2 of five one-byte NOPs that have
 * since become one 5-byte call.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "model.h"

static void *xcalloc(size_t n, size_t s)
{
	void *p = calloc(n ? n : 1, s ? s : 1);
	if (!p) {
		perror("calloc");
		exit(3);
	}
	return p;
}

static void sweep(const struct model *m, const uint8_t *snap, uint8_t *bound)
{
	for (int r = 0; r < m->nregions; r++) {
		const struct region *rg = &m->regions[r];
		if (!rg->code)
			continue;
		uint32_t end = rg->flat + rg->size;
		for (uint32_t f = rg->flat; f < end; f++) {
			if (!m->anchor[f] || !m->is_code[f])
				continue;
			uint32_t pos = f;
			while (pos < end && m->is_code[pos] && (pos == f || !m->anchor[pos])) {
				uint64_t pc = rg->base + (pos - rg->flat);
				struct insn in;
				if (m->arch == ARCH_AARCH64 && (pc & 3))
					break;
				decode_insn(m->arch, snap + pos, end - pos, pc, &in);
				bound[pos] = 1;
				/*
				 * x86: after undecodable bytes we cannot know where the next
				 * instruction starts; claiming none is the safe answer.
				 */
				if (in.kind == IK_UNDEF && m->arch == ARCH_X86_64)
					break;
				pos += in.len ? in.len : 1;
			}
		}
	}
}

void mem_prepare(struct model *m)
{
	int n = m->nsteps;

	m->snap = xcalloc((size_t)n + 1, sizeof *m->snap);
	m->bound = xcalloc((size_t)n + 1, sizeof *m->bound);
	m->fetch_from = xcalloc((size_t)n + 1, sizeof *m->fetch_from);
	m->data_from = xcalloc((size_t)n + 1, sizeof *m->data_from);
	m->stopped = xcalloc((size_t)n + 1, 1);
	m->ntraps = xcalloc((size_t)n + 1, sizeof *m->ntraps);
	m->traps = xcalloc((size_t)n + 1, sizeof *m->traps);

	for (int p = 0; p <= n; p++) {
		m->snap[p] = xcalloc(m->memsize, 1);
		m->bound[p] = xcalloc(m->memsize, 1);
		m->traps[p] = xcalloc(MAX_TRAPS, sizeof(struct trap));
		if (p == 0) {
			memcpy(m->snap[0], m->init, m->memsize);
			continue;
		}
		const struct step *st = &m->steps[p - 1];
		memcpy(m->snap[p], m->snap[p - 1], m->memsize);
		m->fetch_from[p] = m->fetch_from[p - 1];
		m->data_from[p] = m->data_from[p - 1];
		m->stopped[p] = m->stopped[p - 1];
		m->ntraps[p] = m->ntraps[p - 1];
		memcpy(m->traps[p], m->traps[p - 1], MAX_TRAPS * sizeof(struct trap));
		switch (st->kind) {
		case ST_STORE:
			memcpy(m->snap[p] + model_flat(m, st->addr), st->bytes, st->len);
			break;
		case ST_SYNC:
			m->fetch_from[p] = p;
			m->data_from[p] = p;
			break;
		case ST_FENCE:
			m->data_from[p] = p;
			break;
		case ST_STOP:
			m->stopped[p] = 1;
			break;
		case ST_RESUME:
			m->stopped[p] = 0;
			break;
		case ST_TRAP:
		case ST_UNTRAP: {
			int k;
			for (k = 0; k < m->ntraps[p] && m->traps[p][k].addr != st->addr; k++)
				;
			if (st->kind == ST_UNTRAP) {
				if (k < m->ntraps[p])
					m->traps[p][k] = m->traps[p][--m->ntraps[p]];
				break;
			}
			if (k == m->ntraps[p] && k < MAX_TRAPS)
				m->ntraps[p]++;
			if (k < MAX_TRAPS) {
				m->traps[p][k].addr = st->addr;
				m->traps[p][k].len = (uint8_t)st->len;
				memcpy(m->traps[p][k].bytes, st->bytes, st->len);
			}
			break;
		}
		case ST_QUIESCE:
			/* a handshake with every thread (stitch: a signal whose handler
			 * acquires the request the writer released after its stores;
			 * the kernel's rcu_tasks: full barriers): data loads after it
			 * see memory as it is now.  Instruction fetch is not synced. */
			m->data_from[p] = p;
			break;
		}
	}
	for (int p = 0; p <= n; p++)
		sweep(m, m->snap[p], m->bound[p]);
}

/* The region (code block) holding addr, or -1. */
static int region_of(const struct model *m, uint64_t addr)
{
	for (int i = 0; i < m->nregions; i++)
		if (addr >= m->regions[i].base && addr - m->regions[i].base < m->regions[i].size)
			return i;
	return -1;
}

/*
 * Where control goes from pc in version q: 0 = returns, else the address.
 * Instructions that do not branch are followed while they stay in pc's
 * region: a site of several instructions (gcc's five 1-byte NOPs on x86;
 * in a patch log, adjacent patches of one stopped-world operation, e.g.
 * RISC-V's AUIPC + JALR) behaves as a whole.  The pc-relative constants
 * and additions met on the way are tracked, so that an indirect jump
 * through a register set inside the region (AUIPC t0; JALR t0) is known.
 * A branch into a code region that holds no `site` (a destination
 * table's stub) is followed too, and a load from the model's memory
 * gives what version q holds there (the stub's slot), so the behaviour
 * is where the stub sends the thread.
 */
/* A code region holding no `site`: code the site's thread runs on its way (a stub). */
static bool passage(const struct model *m, int reg)
{
	if (reg < 0 || !m->regions[reg].code)
		return false;
	for (int s = 0; s < m->nsites; s++)
		if (region_of(m, m->sites[s]) == reg)
			return false;
	return true;
}

static int behaviour(const struct model *m, int q, uint64_t pc, uint64_t *to)
{
	int reg = region_of(m, pc);
	uint64_t val[32];
	bool known[32] = { false };
	struct insn in;

	for (int steps = 0; steps < 256; steps++) {
		int f = model_flat(m, pc);
		decode_insn(m->arch, m->snap[q] + f, m->memsize - (uint32_t)f, pc, &in);
		bool rd_ok = in.rd >= 0 && in.rd < 32;
		bool src = in.rn >= 0 && in.rn < 32 && known[in.rn];
		switch (in.kind) {
		case IK_LOAD: {
			/* a load from the model's memory (a destination slot, a
			 * literal) as version q holds it */
			uint64_t at = in.rn < 0 ? in.target : src ? val[in.rn] + (uint64_t)in.imm : 0;
			int lf = (in.rn < 0 || src) ? model_flat(m, at) : -1;
			if (rd_ok) {
				known[in.rd] = lf >= 0 && region_of(m, at) == region_of(m, at + 7);
				if (known[in.rd])
					memcpy(&val[in.rd], m->snap[q] + lf, 8);
			}
			goto next;
		}
		case IK_SETREG:
		case IK_ADDIMM:
		case IK_MOV:
			if (rd_ok) {
				bool arith = in.kind == IK_ADDIMM || in.kind == IK_MOV;
				known[in.rd] = in.kind == IK_SETREG || (arith && src);
				val[in.rd] = in.kind == IK_SETREG ? in.target
					     : src	       ? val[in.rn] + (in.kind == IK_ADDIMM ? (uint64_t)in.imm : 0)
							       : 0;
			}
			/* fall through */
		case IK_FALL:
		next:
			*to = pc + in.len;
			if (in.len && region_of(m, *to) == reg) {
				pc = *to;
				continue;
			}
			return 1;
		case IK_JUMP:
			*to = in.target;
			if (passage(m, region_of(m, *to))) {
				reg = region_of(m, *to);
				pc = *to;
				continue;
			}
			return 1;
		case IK_JUMP_REG:
			if (src) {
				*to = (val[in.rn] + (uint64_t)in.imm) & (m->arch == ARCH_RISCV64 ? ~1ULL : ~0ULL);
				/* into code of the model that is no site (a table's stub):
				 * follow it, its loads included, to where it goes */
				if (passage(m, region_of(m, *to))) {
					reg = region_of(m, *to);
					pc = *to;
					continue;
				}
				return 1;
			}
			break;
		case IK_RET:
			return 0;
		default:
			break;
		}
		fprintf(stderr, "%s: error: cannot derive the behaviour of '%s' at 0x%llx (version %d) for old-or-new\n",
			m->file, in.text, (unsigned long long)pc, q);
		return -1;
	}
	fprintf(stderr, "%s: error: the behaviour at 0x%llx (version %d) does not leave the model's code\n", m->file,
		(unsigned long long)pc, q);
	return -1;
}

static int add_outcome_rule(struct model *m, struct reader *r, const char *cls, int kind, uint64_t to)
{
	struct accept *a = &r->acc[r->nacc++];
	snprintf(a->cls, sizeof a->cls, "%s", cls);
	a->kind = kind ? OUT_REACH : OUT_RET;
	a->line = r->line;
	if (!kind)
		return 0;
	for (int i = 0; i < m->nsyms; i++)
		if (m->syms[i].addr == to) {
			a->sym = i;
			return 0;
		}
	if (m->nsyms == MAX_SYMS)
		return -1;
	struct sym *s = &m->syms[m->nsyms];
	snprintf(s->name, sizeof s->name, "%s.%s", r->name, cls);
	s->addr = to;
	s->is_func = model_flat(m, to) < 0;
	s->line = r->line;
	a->sym = m->nsyms++;
	return 0;
}

/*
 * Patch-log support (docs/patch-log.md).  `site LOC`: on x86 the library's
 * SIGTRAP handler emulates the site's final instruction while the
 * operation is in progress.  `old-or-new` readers accept exactly the
 * behaviour of the instruction at their entry before the operation and
 * after it, and must see the latter once the operation is over.
 */
int mem_derive_sites(struct model *m)
{
	int n = m->nsteps;

	for (int s = 0; s < m->nsites && m->arch == ARCH_X86_64; s++) {
		int f = model_flat(m, m->sites[s]);
		struct insn in;
		decode_insn(m->arch, m->snap[n] + f, m->memsize - (uint32_t)f, m->sites[s], &in);
		for (int p = 0; p < n; p++) {
			if (m->ntraps[p] == MAX_TRAPS)
				continue;
			struct trap *t = &m->traps[p][m->ntraps[p]++];
			t->addr = m->sites[s];
			t->len = in.len;
			memcpy(t->bytes, m->snap[n] + f, in.len);
		}
	}
	for (int i = 0; i < m->nreaders; i++) {
		struct reader *r = &m->readers[i];
		uint64_t old_to = 0, new_to = 0;
		if (!r->old_or_new)
			continue;
		int ko = behaviour(m, 0, r->entry, &old_to), kn = behaviour(m, n, r->entry, &new_to);
		if (ko < 0 || kn < 0 || r->nacc + 2 > MAX_ACCEPT || r->nreq == MAX_REQUIRE)
			return 2;
		if (add_outcome_rule(m, r, "old", ko, old_to) || add_outcome_rule(m, r, "new", kn, new_to))
			return 2;
		struct require *q = &r->req[r->nreq++];
		q->label_pos = n;
		snprintf(q->label, sizeof q->label, "(end of operation)");
		q->line = r->line;
		q->ncls = 0;
		snprintf(q->cls[q->ncls++], 32, "new");
		if (ko == kn && old_to == new_to)
			snprintf(q->cls[q->ncls++], 32, "old"); /* same behaviour: the first rule matches */
	}
	return 0;
}
