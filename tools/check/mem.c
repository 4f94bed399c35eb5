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
 * Data loads use the same scheme with data_from[p], reset by `fence` as
 * well as `sync`: this is deliberately simple (it treats the reader as
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
			break;
		}
	}
	for (int p = 0; p <= n; p++)
		sweep(m, m->snap[p], m->bound[p]);
}
