/* SPDX-License-Identifier: MIT */
/*
 * --promela: translate a model into Promela for an independent check
 * with spin (tests/check: spin -a, cc pan.c, ./pan).
 *
 * What is shared with stitch-check: the assembler/decoder (which
 * instruction a given byte string is) and the memory snapshots per writer
 * position.  What spin decides on its own: the interleaving of writer and
 * readers, which versions a fetch may return (the window is evaluated in
 * Promela from wpc and the sync positions), tearing across granules,
 * whether a fetched instruction is consistent with some version in the
 * window, CMODX, int3 handlers, quiescence, stop/resume, preemption and
 * rewinds, and the accept/require rules.  Each (pc, fetched bytes) pair
 * becomes one guarded branch whose guard says "every granule of these
 * bytes exists in some version inside the window".
 *
 * Scope: register-free models (branches, calls, returns, NOPs, traps).
 * Models using ADRP/ADD/AUIPC/JALR/loads are refused with status 2.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "explore.h"

struct pchoice {
	uint8_t b[MAX_INSN];
	uint8_t len;
};

/* Byte ranges [off, off+len) of an instruction of length `len` at pc that are fetched atomically. */
static int parts(const struct model *m, uint64_t pc, int len, int off[8], int plen[8])
{
	int n = 0;
	if (m->arch == ARCH_X86_64) {
		for (int i = 0; i < len; i++)
			off[n] = i, plen[n++] = 1;
	} else if (m->arch == ARCH_RISCV64 && (pc & 2) && len == 4) {
		off[0] = 0, plen[0] = 2, off[1] = 2, plen[1] = 2, n = 2;
	} else {
		off[0] = 0, plen[0] = len, n = 1;
	}
	return n;
}

/* "(W(0)||W(3))": some version q with these bytes at f is inside the window. */
static void emit_versions(FILE *o, const struct model *m, int f, const uint8_t *b, int len, bool need_bound)
{
	int k = 0;
	fputc('(', o);
	for (int q = 0; q <= m->nsteps; q++) {
		if (memcmp(m->snap[q] + f, b, (size_t)len) || (need_bound && !m->bound[q][f]))
			continue;
		fprintf(o, "%sW(%d)", k++ ? "||" : "", q);
	}
	if (!k)
		fputs("false", o);
	fputc(')', o);
}

static int choices(const struct model *m, uint64_t pc, int f, int avail, struct pchoice *out, int max)
{
	int n = 0, lim = avail < 8 ? avail : 8, cnt[8] = {0}, idx[8] = {0};
	uint8_t bv[8][MAX_STEPS + 1];

	/* every byte value any version has, per position; decode each combination */
	for (int i = 0; i < lim; i++)
		for (int q = 0; q <= m->nsteps; q++) {
			uint8_t x = m->snap[q][f + i];
			int j;
			for (j = 0; j < cnt[i] && bv[i][j] != x; j++)
				;
			if (j == cnt[i])
				bv[i][cnt[i]++] = x;
		}
	for (;;) {
		uint8_t b[8];
		struct insn in;
		for (int i = 0; i < lim; i++)
			/* NOLINTNEXTLINE(clang-analyzer-core.uninitialized.Assign): every position has >= 1 value (nsteps >= 0) */
			b[i] = bv[i][idx[i]];
		decode_insn(m->arch, b, (size_t)lim, pc, &in);
		/*
		 * Undecodable bytes were judged on everything the decoder looked
		 * at, so the guard must cover all of it, not just one byte.
		 */
		int len = in.kind == IK_UNDEF || in.len > lim ? lim : in.len, j;
		for (j = 0; j < n && (out[j].len != len || memcmp(out[j].b, b, (size_t)len)); j++)
			;
		if (j == n && n < max) {
			memcpy(out[n].b, b, (size_t)len);
			out[n++].len = (uint8_t)len;
		}
		int i = 0;
		while (i < lim && ++idx[i] == cnt[i])
			idx[i++] = 0;
		if (i == lim)
			break;
	}
	return n;
}

static bool is_terminal(const struct model *m, const struct reader *rd, uint64_t a)
{
	for (int i = 0; i < m->nsyms; i++)
		if (m->syms[i].is_func && m->syms[i].addr == a)
			return true;
	for (int k = 0; k < rd->nacc; k++)
		if (rd->acc[k].kind == OUT_REACH && m->syms[rd->acc[k].sym].addr == a)
			return true;
	return false;
}

static void emit_finish(FILE *o, const struct model *m, int ri, bool is_ret, uint64_t to)
{
	const struct reader *rd = &m->readers[ri];
	int a;
	for (a = 0; a < rd->nacc; a++)
		if (is_ret ? rd->acc[a].kind == OUT_RET
			   : rd->acc[a].kind == OUT_REACH && m->syms[rd->acc[a].sym].addr == to)
			break;
	if (a == rd->nacc) {
		fprintf(o, "printf(\"VIOLATION outcome not accepted\\n\"); assert(false)");
		return;
	}
	for (int q = 0; q < rd->nreq; q++) {
		int c;
		for (c = 0; c < rd->req[q].ncls && strcmp(rd->req[q].cls[c], rd->acc[a].cls); c++)
			;
		if (c == rd->req[q].ncls)
			fprintf(o, "assert(start[%d] < %d); ", ri, rd->req[q].label_pos);
	}
	fprintf(o, "st[%d] = DONE", ri);
}

/* Effect of executing `in` (fetched at pc) for reader ri. */
static int emit_effect(FILE *o, const struct model *m, int ri, uint64_t pc, const struct insn *in)
{
	const struct reader *rd = &m->readers[ri];
	uint64_t next = pc + in->len;
	switch (in->kind) {
	case IK_FALL:
		break;
	case IK_JUMP:
		next = in->target;
		break;
	case IK_RET:
		emit_finish(o, m, ri, true, 0);
		return 0;
	case IK_UNDEF:
	case IK_TRAP:
	case IK_CONDBR:
		fprintf(o, "printf(\"VIOLATION %s\\n\"); assert(false)", in->kind == IK_UNDEF ? "undefined" : "trap");
		return 0;
	default:
		fprintf(stderr, "%s: error: the Promela translation covers register-free models; '%s' uses registers\n",
			m->file, in->text);
		return 2;
	}
	if (is_terminal(m, rd, next)) {
		emit_finish(o, m, ri, false, next);
		return 0;
	}
	int f = model_flat(m, next);
	if (f < 0 || !m->is_code[f]) {
		fprintf(o, "printf(\"VIOLATION control leaves the code\\n\"); assert(false)");
		return 0;
	}
	fprintf(o, "pc[%d] = %llu", ri, (unsigned long long)next);
	return 0;
}

static bool pc_possible(const struct model *m, uint64_t pc)
{
	int f = model_flat(m, pc);
	if (f < 0 || !m->is_code[f])
		return false;
	for (int i = 0; i < m->nreaders; i++)
		if (m->readers[i].entry == pc)
			return true;
	for (int i = 0; i < m->nrewind; i++)
		if (m->rewinds[i].to == pc)
			return true;
	for (int q = 0; q <= m->nsteps; q++)
		if (m->bound[q][f])
			return true;
	return false;
}

static int emit_reader(FILE *o, const struct model *m, int ri)
{
	const struct reader *rd = &m->readers[ri];
	static struct pchoice ch[1024];

	fprintf(o, "active proctype reader%d()\n{\n\tdo\n\t:: st[%d] == DONE -> break\n", ri, ri);
	if (rd->preempt && m->nrewind) {
		fprintf(o, "\t:: atomic { !stopped[wpc] && st[%d] == RUN -> st[%d] = PREEMPTED }\n", ri, ri);
		fprintf(o, "\t:: atomic { !stopped[wpc] && st[%d] == PREEMPTED -> st[%d] = RUN;\n\t\tif\n", ri, ri);
		for (int k = 0; k < m->nrewind; k++)
			if (m->rewinds[k].on_resume)
				fprintf(o, "\t\t:: pc[%d] == %llu -> pc[%d] = %llu\n", ri,
					(unsigned long long)m->rewinds[k].from, ri, (unsigned long long)m->rewinds[k].to);
		fprintf(o, "\t\t:: else -> skip\n\t\tfi }\n");
	}
	for (int r = 0; r < m->nregions; r++) {
		const struct region *rg = &m->regions[r];
		if (!rg->code)
			continue;
		for (uint32_t off = 0; off < rg->size; off++) {
			uint64_t pc = rg->base + off;
			int f = (int)(rg->flat + off);
			if (!pc_possible(m, pc))
				continue;
			const char *here = pc == rd->entry ? "(st[%d] == IDLE || (st[%d] == RUN && pc[%d] == %llu))"
							   : "(st[%d] == RUN && pc[%d] == %llu)";
			/* AArch64 CMODX: two versions of the word in the window, one not on the list */
			if (m->arch == ARCH_AARCH64) {
				for (int q1 = 0; q1 <= m->nsteps; q1++)
					for (int q2 = q1 + 1; q2 <= m->nsteps; q2++) {
						struct insn a, b;
						if (!memcmp(m->snap[q1] + f, m->snap[q2] + f, 4))
							continue;
						decode_insn(m->arch, m->snap[q1] + f, 4, pc, &a);
						decode_insn(m->arch, m->snap[q2] + f, 4, pc, &b);
						if (a.cmodx_ok && b.cmodx_ok)
							continue;
						fprintf(o, "\t:: atomic { !stopped[wpc] && ");
						if (pc == rd->entry)
							fprintf(o, here, ri, ri, ri, (unsigned long long)pc);
						else
							fprintf(o, here, ri, ri, (unsigned long long)pc);
						fprintf(o, " && W(%d) && W(%d) -> printf(\"VIOLATION CMODX\\n\"); assert(false) }\n",
							q1, q2);
					}
			}
			int avail = (int)(rg->size - off);
			int n = choices(m, pc, f, avail, ch, 1024);
			for (int c = 0; c < n; c++) {
				struct insn in;
				int po[8], pl[8], np;
				decode_insn(m->arch, ch[c].b, ch[c].len, pc, &in);
				np = parts(m, pc, ch[c].len, po, pl);
				fprintf(o, "\t:: atomic { !stopped[wpc] && ");
				if (pc == rd->entry)
					fprintf(o, here, ri, ri, ri, (unsigned long long)pc);
				else
					fprintf(o, here, ri, ri, (unsigned long long)pc);
				for (int p = 0; p < np; p++) {
					fputs(" && ", o);
					emit_versions(o, m, f + po[p], ch[c].b + po[p], pl[p], false);
				}
				fprintf(o, " ->  /* %s */\n\t\tif :: st[%d] == IDLE -> st[%d] = RUN; start[%d] = wpc; pc[%d] = %llu "
					   ":: else -> skip fi;\n\t\tif\n\t\t:: !",
					in.text, ri, ri, ri, ri, (unsigned long long)pc);
				emit_versions(o, m, f, ch[c].b, ch[c].len, true);
				fprintf(o, " -> printf(\"VIOLATION torn or mid-instruction\\n\"); assert(false)\n\t\t:: else ->\n\t\t\t");
				/* bytes that are no version's instruction here can only take the branch above */
				bool some = false;
				for (int q = 0; q <= m->nsteps && !some; q++)
					some = !memcmp(m->snap[q] + f, ch[c].b, ch[c].len) && m->bound[q][f];
				if (!some) {
					fprintf(o, "skip\n\t\tfi }\n");
					continue;
				}
				if (in.kind == IK_TRAP && m->arch == ARCH_X86_64) {
					/* int3: the handler armed for this pc at this writer position, if any */
					fprintf(o, "if\n");
					for (int q = 0; q <= m->nsteps; q++) {
						int k;
						for (k = 0; k < m->ntraps[q] && m->traps[q][k].addr != pc; k++)
							;
						if (k == m->ntraps[q])
							continue;
						struct insn em;
						decode_insn(m->arch, m->traps[q][k].bytes, m->traps[q][k].len, pc, &em);
						fprintf(o, "\t\t\t:: wpc == %d -> ", q);
						if (emit_effect(o, m, ri, pc, &em))
							return 2;
						fputc('\n', o);
					}
					fprintf(o, "\t\t\t:: else -> printf(\"VIOLATION int3 without handler\\n\"); assert(false)\n\t\t\tfi\n");
				} else if (emit_effect(o, m, ri, pc, &in)) {
					return 2;
				}
				fprintf(o, "\n\t\tfi }\n");
			}
		}
	}
	fprintf(o, "\tod\n}\n\n");
	return 0;
}

int promela_emit(struct model *m, FILE *o)
{
	int n = m->nsteps;

	for (int k = 0; k < m->nrewind; k++)
		if (m->rewinds[k].on_quiesce) {
			fprintf(stderr, "%s:%d: error: the Promela translation does not cover `rewind … on quiesce`\n",
				m->file, m->rewinds[k].line);
			return 2;
		}
	fprintf(o, "/* Promela translation of %s (%s), generated by stitch-check --promela */\n", m->file, m->name);
	fprintf(o, "#define IDLE 0\n#define RUN 1\n#define PREEMPTED 2\n#define DONE 3\n");
	fprintf(o, "byte wpc = 0;\nbyte st[%d];\nint pc[%d];\nbyte start[%d];\n", m->nreaders, m->nreaders, m->nreaders);
	/* the window: version q is visible at writer position wpc iff ff[wpc] <= q <= wpc */
	fprintf(o, "byte ff[%d];\nbool stopped[%d];\n", n + 1, n + 1);
	fprintf(o, "#define W(q) (ff[wpc] <= (q) && (q) <= wpc)\n\n");
	fprintf(o, "init {\n\tatomic {\n");
	/* ff is recomputed here from the step kinds, not copied from the checker's tables */
	int last_sync = 0, stopped = 0;
	for (int p = 0; p <= n; p++) {
		if (p > 0) {
			enum step_kind k = m->steps[p - 1].kind;
			if (k == ST_SYNC)
				last_sync = p;
			if (k == ST_STOP)
				stopped = 1;
			if (k == ST_RESUME)
				stopped = 0;
		}
		fprintf(o, "\t\tff[%d] = %d; stopped[%d] = %d;\n", p, last_sync, p, stopped);
	}
	fprintf(o, "\t\trun writer()\n\t}\n}\n\n");

	fprintf(o, "proctype writer()\n{\n");
	for (int p = 0; p < n; p++) {
		const struct step *st = &m->steps[p];
		fprintf(o, "\t/* %s */\n\tatomic { ", st->text);
		if (st->kind == ST_QUIESCE) {
			fprintf(o, "(");
			for (int i = 0; i < m->nreaders; i++)
				for (int q = 0; q < st->nranges; q++)
					fprintf(o, "%s!((st[%d] == RUN || st[%d] == PREEMPTED) && pc[%d] >= %llu && pc[%d] < %llu)",
						i || q ? " && " : "", i, i, i, (unsigned long long)st->lo[q], i,
						(unsigned long long)(st->hi[q] > 0x7fffffff ? 0x7fffffff : st->hi[q]));
			fprintf(o, ") -> ");
		}
		fprintf(o, "wpc = %d", p + 1);
		if (st->kind == ST_SYNC)
			for (int i = 0; i < m->nreaders; i++)
				for (int k = 0; k < m->nrewind; k++)
					if (m->rewinds[k].on_sync)
						fprintf(o, ";\n\t\tif :: st[%d] == RUN && pc[%d] == %llu -> pc[%d] = %llu :: else -> skip fi",
							i, i, (unsigned long long)m->rewinds[k].from, i,
							(unsigned long long)m->rewinds[k].to);
		fprintf(o, " }\n");
	}
	fprintf(o, "}\n\n");
	for (int i = 0; i < m->nreaders; i++)
		if (emit_reader(o, m, i))
			return 2;
	return 0;
}
