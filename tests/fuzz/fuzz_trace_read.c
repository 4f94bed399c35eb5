// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for stitch-trace's trace file reader (tools/trace/
 * reader.c, tr_parse on a memory buffer), and for what replay, report and
 * dump make of whatever it accepts (tools/trace/output.c, written to
 * /dev/null).  An input is rejected (-1, with a message) or read (0, up to
 * its first damaged record, with a message); either way tr_proc_free()
 * must release everything (LeakSanitizer runs after every input).  What
 * is read must be a well-formed call tree.  Run with -close_fd_mask=2 to
 * silence the reader's messages.
 */
#include <string.h>

#include "fuzz.h"
#include "output.h"
#include "reader.h"

static FILE *devnull;

static void check_tree(const struct tr_thread *t)
{
	FUZZ_CHECK(t->nnode <= t->nev);
	for (size_t i = 0; i < t->nnode; i++) {
		const struct tr_node *n = &t->node[i];
		FUZZ_CHECK(n->subtree >= 1 && i + n->subtree <= t->nnode);
		/* children follow their parent directly, one level deeper */
		size_t j = i + 1;
		for (uint32_t c = 0; c < n->nchildren; c++) {
			FUZZ_CHECK(j < i + n->subtree);
			FUZZ_CHECK(t->node[j].depth == n->depth + 1);
			j += t->node[j].subtree;
		}
		FUZZ_CHECK(j == i + n->subtree);
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	if (!devnull)
		devnull = fopen("/dev/null", "w");
	FUZZ_CHECK(devnull != NULL);
	for (int skip = 0; skip < 2; skip++) {
		struct tr_trace tr = { 0 };
		struct tr_proc p;
		int rc = tr_parse(data, size, "fuzz.dat", &p, skip);
		FUZZ_CHECK(rc == 0 || rc == -1);
		if (rc != 0)
			continue;
		for (size_t i = 1; i < p.nsym; i++)
			FUZZ_CHECK(p.sym[i - 1].addr < p.sym[i].addr);
		for (size_t i = 0; i < p.nthr; i++) {
			FUZZ_CHECK(!skip || p.thr[i].nev == 0);
			check_tree(&p.thr[i]);
		}
		FUZZ_CHECK(p.exe && p.cmdline && p.path);
		tr.proc = &p;
		tr.nproc = 1;
		tr_order(&tr);
		if (!skip) {
			out_replay(devnull, &tr, 1);
			out_tree(devnull, &tr, 1);
			for (int k = SORT_TOTAL; k <= SORT_NAME; k++)
				(void)out_report(devnull, &tr, k);
			out_chrome(devnull, &tr);
			out_folded(devnull, &tr, 0);
			out_folded(devnull, &tr, 1);
			out_ftrace(devnull, &tr);
			out_events(devnull, &tr);
			out_flame(devnull, &tr, "fuzz");
		}
		tr_proc_free(&p);
	}
	return 0;
}
