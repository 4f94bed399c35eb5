/* SPDX-License-Identifier: MIT */
/*
 * libFuzzer target for the control channel's parser (tools/trace/ctl.c).
 * The parser must accept or refuse any input without reading outside it,
 * and what it accepts must be a request the encoder produces again
 * byte for byte (so nothing is accepted by accident).
 */
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* an exact-size heap copy, so ASan sees any read past the end */
	uint8_t *buf = malloc(size ? size : 1);
	if (!buf)
		return 0;
	memcpy(buf, data, size);
	struct ctl_request req;
	if (stitch_trace_ctl_parse(buf, size, &req) == 0) {
		uint8_t again[CTL_MAX_REQUEST];
		const char *arg = req.cmd == CTL_GRAPH ? (req.on ? "on" : "off") : req.arg[0] ? req.arg : NULL;
		size_t n = stitch_trace_ctl_encode(again, sizeof again, req.cmd, arg);
		if (n != size || memcmp(again, buf, size) != 0)
			abort();
	}
	free(buf);
	return 0;
}
