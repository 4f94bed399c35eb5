/* SPDX-License-Identifier: MIT */
/*
 * stitch-check: the in-memory form of a model (docs/model-format.md).
 *
 * A model is compiled once by the parser into flat tables so the explorer
 * never touches text: code/data bytes, the writer's steps, and, for every
 * writer position p (0 = before the first step, nsteps = finished), the
 * memory snapshot after p steps plus which older snapshots a reader may
 * still observe (the "window", see mem.c).  Everything the explorer needs
 * per state is then an index into these tables.
 */
#ifndef STITCH_CHECK_MODEL_H
#define STITCH_CHECK_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define MAX_SYMS 512
#define MAX_REGIONS 16
#define MAX_STEPS 256
#define MAX_READERS 4
#define MAX_ACCEPT 16
#define MAX_REQUIRE 8
#define MAX_REWIND 32 /* a patch log: up to 4 sites x 4 offsets (x86 five NOPs) */
#define MAX_TRAPS 16
#define NREGSLOT 8 /* registers a model may use (mapped lazily, regmap) */
#define MAX_INSN 16
#define MAX_QRANGES 8 /* ranges of one `quiesce` step */

enum arch { ARCH_NONE, ARCH_X86_64, ARCH_AARCH64, ARCH_RISCV64 };

/* What an instruction does, at the level the checker cares about. */
enum ikind {
	IK_FALL,      /* no control or tracked-register effect (NOP, BTI, STP…) */
	IK_JUMP,      /* direct branch/call to .target; link register if .link >= 0 */
	IK_JUMP_REG,  /* indirect branch/call to reg[rn] + imm */
	IK_RET,       /* return from the reader's entry function */
	IK_SETREG,    /* rd = .target (ADRP, ADR, AUIPC: pc-relative constant) */
	IK_ADDIMM,    /* rd = reg[rn] + imm */
	IK_LOAD,      /* rd = mem64[reg[rn] + imm], or [target] when rn < 0 (literal) */
	IK_MOV,       /* rd = reg[rn] */
	IK_TRAP,      /* int3 / BRK / EBREAK */
	IK_CONDBR,    /* conditional branch: the checker has no flags, so executing it is an error */
	IK_UNDEF,     /* undecodable or permanently undefined */
};

struct insn {
	enum ikind kind;
	uint8_t len;
	int8_t rd, rn, link; /* architectural register numbers, -1 = none */
	int64_t imm;
	uint64_t target;
	bool cmodx_ok; /* AArch64: on the Arm ARM's list of concurrently modifiable instructions */
	char text[64]; /* disassembly, for traces */
};

struct sym {
	char name[64];
	uint64_t addr;
	bool is_func; /* `func`: outside the code, reaching it ends a reader */
	int line;
};

struct region {
	uint64_t base;
	uint32_t size;
	uint32_t flat; /* offset of this region in a snapshot */
	bool code;     /* `code` (executable) or `data` */
};

enum step_kind {
	ST_STORE,
	ST_SYNC,    /* membarrier SYNC_CORE / remote fence.i / IPI+ISB: every fetch after it sees memory as it is now */
	ST_FENCE,   /* writer-side ordering: later data loads no longer see older data */
	ST_STOP,    /* stop the world: readers are parked where they are */
	ST_RESUME,
	ST_QUIESCE, /* apply `rewind … on quiesce`, then wait until no reader is inside any [lo[i], hi[i]) */
	ST_TRAP,    /* arm the int3 handler for addr: it emulates .bytes */
	ST_UNTRAP,
};

struct step {
	enum step_kind kind;
	int line;
	char text[160];
	uint64_t addr;
	int nranges; /* ST_QUIESCE */
	uint64_t lo[MAX_QRANGES], hi[MAX_QRANGES];
	uint32_t len;
	uint8_t *bytes; /* ST_STORE: the stored bytes; ST_TRAP: the emulated instruction */
};

enum out_kind { OUT_REACH, OUT_RET };

struct accept {
	char cls[32];
	enum out_kind kind;
	int sym; /* OUT_REACH: index into syms */
	int line;
};

struct require {
	int label_pos; /* writer position the reader must have started at or after */
	char label[64];
	int ncls;
	char cls[MAX_ACCEPT][32];
	int line;
};

struct reader {
	char name[32];
	uint64_t entry;
	bool preempt;
	bool old_or_new; /* accept rules derived from the site's first and last versions (patch logs) */
	int line;
	int nacc;
	struct accept acc[MAX_ACCEPT];
	int nreq;
	struct require req[MAX_REQUIRE];
};

struct rewind {
	uint64_t from, to;
	bool on_sync, on_resume;
	bool on_quiesce;  /* at a `quiesce` step, to every started reader (the library's quiescence fixup) */
	int quiesce_pos;  /* that step only (writer position), or -1: every `quiesce` */
	int line;
};

struct trap {
	uint64_t addr;
	uint8_t len;
	uint8_t bytes[MAX_INSN];
};

struct model {
	char file[256];
	char name[128];
	char expect[16]; /* "SAFE" / "UNSAFE" from the `# expect:` comment, "" if none */
	enum arch arch;

	int nsyms;
	struct sym syms[MAX_SYMS];
	int nregions;
	struct region regions[MAX_REGIONS];
	uint32_t memsize;
	uint8_t *is_code;  /* per flat byte */
	uint8_t *anchor;   /* per flat byte: a decode sweep may start here (region start, label) */
	uint8_t *init;     /* initial bytes */

	int nsteps;
	struct step steps[MAX_STEPS];
	int nreaders;
	struct reader readers[MAX_READERS];
	int nrewind;
	struct rewind rewinds[MAX_REWIND];
	/* `site LOC`: a patch site whose int3 (x86) is handled by the library, emulating its final instruction */
	int nsites;
	uint64_t sites[MAX_TRAPS];

	/* Derived by mem_prepare(), indexed by writer position 0..nsteps. */
	uint8_t **snap;      /* memory after p steps */
	uint8_t **bound;     /* per flat byte: an instruction starts here in snap[p] */
	int *fetch_from;     /* instruction fetch may return any snap[q], fetch_from[p] <= q <= p */
	int *data_from;      /* data loads may return any snap[q], data_from[p] <= q <= p */
	uint8_t *stopped;    /* readers cannot move at position p */
	int *ntraps;
	struct trap **traps; /* int3 handlers armed at position p */

	/* Registers in use: arch register number -> slot (lazy, see regslot()). */
	int8_t regmap[64];
	int nregslots;
};

/* parse.c */
int model_parse(const char *path, struct model *m); /* 0, or 2 after printing file:line: error */
/* The same for a model held in memory (len bytes, no NUL needed); `name` is used in messages. */
int model_parse_buffer(const char *name, const char *buf, size_t len, struct model *m);
void model_free(struct model *m);
int model_flat(const struct model *m, uint64_t addr); /* flat index or -1 */
const char *model_symname(const struct model *m, uint64_t addr, char *buf, size_t n);

/* mem.c */
void mem_prepare(struct model *m);
int mem_derive_sites(struct model *m); /* after mem_prepare: site traps, old-or-new rules */

#ifdef STITCH_CHECK_LIBDECODE
/* libdec.c: cross-decode every instruction with the library's decoders */
int libdec_verify(const struct model *m);
#endif

/* arch_*.c: assembler and decoder per architecture. */
struct asm_ctx {
	const struct model *m;
	uint64_t pc;
	int line;
	char err[160];
	bool sizing; /* first pass: symbols may be undefined, only the length matters */
};
int asm_insn(struct asm_ctx *c, const char *text, uint8_t *out, size_t cap); /* length, or -1 with c->err */
void decode_insn(enum arch a, const uint8_t *b, size_t avail, uint64_t pc, struct insn *out);

int x86_asm(struct asm_ctx *c, const char *mn, const char *ops, uint8_t *out, size_t cap);
void x86_dec(const uint8_t *b, size_t avail, uint64_t pc, struct insn *out);
int a64_asm(struct asm_ctx *c, const char *mn, const char *ops, uint8_t *out, size_t cap);
void a64_dec(uint32_t w, uint64_t pc, struct insn *out);
int rv_asm(struct asm_ctx *c, const char *mn, const char *ops, uint8_t *out, size_t cap);
void rv_dec(const uint8_t *b, size_t avail, uint64_t pc, struct insn *out);

/* Expression helper shared by the assemblers: NUMBER | SYM | SYM±NUMBER | . */
bool eval_expr(struct asm_ctx *c, const char *s, uint64_t *out);
int parse_reg(enum arch a, const char *s); /* architectural number, or -1 */
const char *reg_name(enum arch a, int r);

#endif
