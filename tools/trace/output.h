/* SPDX-License-Identifier: MIT */
#ifndef STITCH_TRACE_OUTPUT_H
#define STITCH_TRACE_OUTPUT_H

#include <stdint.h>
#include <stdio.h>

#include "reader.h"

enum { SORT_TOTAL, SORT_SELF, SORT_CALLS, SORT_NAME };

void out_replay(FILE *out, const struct tr_trace *tr, int show_time);
void out_tree(FILE *out, const struct tr_trace *tr, int collapse);
int out_report(FILE *out, const struct tr_trace *tr, int sort_key);
void out_chrome(FILE *out, const struct tr_trace *tr);
void out_folded(FILE *out, const struct tr_trace *tr, int by_time);
void out_ftrace(FILE *out, const struct tr_trace *tr);
void out_events(FILE *out, const struct tr_trace *tr);
void out_flame(FILE *out, const struct tr_trace *tr, const char *title);
/* "N calls made inside callbacks ... were not recorded" (ST_REC_GUARD), for
 * the summaries; a static buffer. */
const char *out_guard_text(uint64_t n);

#endif
