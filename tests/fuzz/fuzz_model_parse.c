// SPDX-License-Identifier: MIT
/*
 * libFuzzer target for the checker's model parser (tools/check/parse.c),
 * from a memory buffer (model_parse_buffer).  A model is accepted (0) or
 * rejected (2, after a FILE:LINE message); either way model_free() must
 * release everything (LeakSanitizer runs at the end of every input).
 * An accepted model must also stay within the limits the explorer's
 * tables are sized for.  Run with -close_fd_mask=2 to silence the
 * parser's error messages.
 */
#include <string.h>

#include "fuzz.h"
#include "model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct model *m = calloc(1, sizeof *m);

	FUZZ_CHECK(m != NULL);
	int rc = model_parse_buffer("fuzz.model", (const char *)data, size, m);
	FUZZ_CHECK(rc == 0 || rc == 2);
	if (rc == 0) {
		FUZZ_CHECK(m->nsteps >= 0 && m->nsteps <= MAX_STEPS);
		FUZZ_CHECK(m->nreaders >= 1 && m->nreaders <= MAX_READERS);
	}
	model_free(m);
	free(m);
	return 0;
}
