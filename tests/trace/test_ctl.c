/* SPDX-License-Identifier: MIT */
/* The control channel's parser on hand-made requests, good and bad
 * (the fuzz target covers the rest where clang's libFuzzer exists). */
#include <string.h>

#include "common/check.h"
#include "ctl.h"

static size_t req(uint8_t *b, uint32_t len, int ver, int cmd, int alen, const char *arg)
{
	b[0] = (uint8_t)len, b[1] = (uint8_t)(len >> 8), b[2] = (uint8_t)(len >> 16), b[3] = (uint8_t)(len >> 24);
	b[4] = (uint8_t)ver, b[5] = (uint8_t)cmd, b[6] = (uint8_t)alen, b[7] = (uint8_t)(alen >> 8);
	size_t n = arg ? strlen(arg) : 0;
	memcpy(b + 8, arg ? arg : "", n);
	return 8 + n;
}

int main(void)
{
	uint8_t b[1024];
	struct ctl_request r;
	size_t n;

	/* good */
	n = stitch_trace_ctl_encode(b, sizeof b, CTL_ENABLE, "alpha_*");
	CHECK_EQ(n, 15);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), 0);
	CHECK_EQ(r.cmd, CTL_ENABLE);
	CHECK(strcmp(r.arg, "alpha_*") == 0, "arg %s", r.arg);
	n = stitch_trace_ctl_encode(b, sizeof b, CTL_GRAPH, "off");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), 0);
	CHECK_EQ(r.on, 0);
	n = stitch_trace_ctl_encode(b, sizeof b, CTL_STATUS, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), 0);

	/* bad: every one refused with its reason */
	CHECK_EQ(stitch_trace_ctl_parse(NULL, 0, &r), -CTL_ERR_SHORT);
	CHECK_EQ(stitch_trace_ctl_parse(b, 7, &r), -CTL_ERR_SHORT);
	n = req(b, 4, 1, CTL_STATUS, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n - 1, &r), -CTL_ERR_SHORT);
	n = req(b, 5, 1, CTL_STATUS, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_SHORT);      /* says 5, has 4 */
	n = req(b, 4, 1, CTL_STATUS, 0, "x");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_LENGTH);     /* extra byte */
	n = req(b, 0xfffffff0u, 1, CTL_STATUS, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_SHORT);
	n = req(b, 4, 2, CTL_STATUS, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_VERSION);
	n = req(b, 4, 1, 0, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_COMMAND);
	n = req(b, 4, 1, CTL_DETACH + 1, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_COMMAND);
	n = req(b, 4, 1, 0xff, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_COMMAND);
	n = req(b, 5, 1, CTL_ENABLE, 2, "a");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_LENGTH);     /* arg length != bytes */
	n = req(b, 4, 1, CTL_ENABLE, 0, NULL);
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_ARGUMENT);   /* glob missing */
	n = req(b, 7, 1, CTL_ENABLE, 3, "a b");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_ARGUMENT);   /* space */
	n = req(b, 6, 1, CTL_DISABLE, 2, "!a");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_ARGUMENT);   /* leading '!' */
	n = req(b, 6, 1, CTL_ENABLE, 2, "a\x01");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_ARGUMENT);   /* control byte */
	n = req(b, 5, 1, CTL_PAUSE, 1, "x");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_ARGUMENT);   /* unexpected arg */
	n = req(b, 7, 1, CTL_GRAPH, 3, "onn");
	CHECK_EQ(stitch_trace_ctl_parse(b, n, &r), -CTL_ERR_ARGUMENT);
	char big[CTL_MAX_ARG + 2];
	memset(big, 'a', sizeof big - 1);
	big[sizeof big - 1] = '\0';
	CHECK_EQ(stitch_trace_ctl_encode(b, sizeof b, CTL_ENABLE, big), 0);
	n = req(b, (uint32_t)(4 + strlen(big)), 1, CTL_ENABLE, (int)strlen(big), big);
	CHECK(stitch_trace_ctl_parse(b, n, &r) < 0, "oversized glob accepted");
	CHECK_EQ(stitch_trace_ctl_encode(b, 8, CTL_ENABLE, "abc"), 0); /* buffer too small */
	return check_summary("test_ctl");
}
