/* SPDX-License-Identifier: MIT */
/* stitch-check: states, transitions and the exhaustive search over them. */
#ifndef STITCH_CHECK_EXPLORE_H
#define STITCH_CHECK_EXPLORE_H

#include <stdio.h>

#include "model.h"

enum rstatus { RS_IDLE, RS_RUN, RS_PREEMPTED, RS_DONE };

/* One reader thread.  Plain bytes: states are hashed and compared with memcmp. */
struct rst {
	uint64_t pc;
	uint64_t regs[NREGSLOT];
	uint16_t start; /* writer position when the reader entered */
	uint8_t status;
	uint8_t wmask; /* which regs[] have been written; unwritten ones read as poison */
	uint8_t pad[4];
};

struct gst {
	uint32_t wpc; /* writer position: steps done */
	uint32_t pad;
	struct rst r[MAX_READERS];
};

static inline size_t gst_size(const struct model *m)
{
	return __builtin_offsetof(struct gst, r) + (size_t)m->nreaders * sizeof(struct rst);
}

enum evkind { EV_WRITER, EV_FETCH, EV_PREEMPT, EV_RESUME };

struct event {
	int8_t actor; /* -1 writer, else reader index */
	uint8_t kind;
	uint8_t len;   /* EV_FETCH: instruction bytes fetched */
	uint8_t stale; /* EV_FETCH: fetched bytes differ from memory now */
	int16_t cls;   /* reader finished with this accept rule, or -1 */
	uint8_t loaded;
	uint8_t pad;
	uint64_t pc;
	uint64_t data; /* value a load returned */
	uint8_t bytes[MAX_INSN];
};

/* violation != NULL: this transition breaks the model; next is then meaningless. */
typedef void (*succ_cb)(void *ctx, const struct event *ev, const struct gst *next, const char *violation,
			const char *desc);

void initial_state(const struct model *m, struct gst *s);
bool is_final(const struct model *m, const struct gst *s);
/* Every transition of s; descriptions are built only when `describe` is set. */
int successors(struct model *m, const struct gst *s, bool describe, succ_cb cb, void *ctx);

struct trace_step {
	char text[1024];
};

struct result {
	bool unsafe;
	uint64_t states, transitions;
	double seconds;
	int depth;
	char violation[512];
	int ntrace;
	struct trace_step *trace; /* shortest counterexample, one line per transition */
};

void check_model(struct model *m, struct result *res);
void result_free(struct result *res);

/* enumerate.c */
int enumerate_model(struct model *m, bool json);

/* promela.c */
int promela_emit(struct model *m, FILE *out);

#endif
