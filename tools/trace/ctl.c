/* SPDX-License-Identifier: MIT */
/* The control channel's request parser and encoder (ctl.h). */
#include "ctl.h"

#include <string.h>

static uint32_t get_le32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v, p[1] = (uint8_t)(v >> 8), p[2] = (uint8_t)(v >> 16), p[3] = (uint8_t)(v >> 24);
}

/* A glob travels inside a whitespace-separated filter, and '!' at its
 * start would turn it into an exclusion: so printable ASCII, no space, no
 * leading '!' (use "disable" to exclude). */
static int glob_ok(const uint8_t *s, size_t n)
{
	if (n == 0 || n > CTL_MAX_ARG || s[0] == '!')
		return 0;
	for (size_t i = 0; i < n; i++)
		if (s[i] <= 0x20 || s[i] >= 0x7f)
			return 0;
	return 1;
}

int stitch_trace_ctl_parse(const uint8_t *buf, size_t len, struct ctl_request *out)
{
	if (!buf || len < CTL_HEADER)
		return -CTL_ERR_SHORT;
	uint32_t body = get_le32(buf);
	if (body > CTL_MAX_REQUEST - 4 || (size_t)body + 4 != len)
		return (size_t)body + 4 > len ? -CTL_ERR_SHORT : -CTL_ERR_LENGTH;
	if (buf[4] != CTL_VERSION)
		return -CTL_ERR_VERSION;
	int cmd = buf[5];
	size_t arg_len = (size_t)buf[6] | (size_t)buf[7] << 8;
	if (arg_len != len - CTL_HEADER)
		return -CTL_ERR_LENGTH;
	const uint8_t *arg = buf + CTL_HEADER;
	switch (cmd) {
	case CTL_STATUS:
	case CTL_PAUSE:
	case CTL_RESUME:
	case CTL_DETACH:
		if (arg_len != 0)
			return -CTL_ERR_ARGUMENT;
		out->on = 0;
		break;
	case CTL_ENABLE:
	case CTL_DISABLE:
		if (!glob_ok(arg, arg_len))
			return -CTL_ERR_ARGUMENT;
		out->on = 0;
		break;
	case CTL_GRAPH:
		if (arg_len == 2 && memcmp(arg, "on", 2) == 0)
			out->on = 1;
		else if (arg_len == 3 && memcmp(arg, "off", 3) == 0)
			out->on = 0;
		else
			return -CTL_ERR_ARGUMENT;
		break;
	default:
		return -CTL_ERR_COMMAND;
	}
	out->cmd = cmd;
	memcpy(out->arg, arg, arg_len);
	out->arg[arg_len] = '\0';
	return 0;
}

const char *stitch_trace_ctl_strerror(int err)
{
	switch (-err) {
	case CTL_ERR_SHORT: return "truncated request";
	case CTL_ERR_LENGTH: return "request length does not match its contents";
	case CTL_ERR_VERSION: return "unknown protocol version";
	case CTL_ERR_COMMAND: return "unknown command";
	case CTL_ERR_ARGUMENT: return "bad argument (a glob of printable characters without spaces, not starting with '!'; graph: on|off)";
	default: return "unknown error";
	}
}

size_t stitch_trace_ctl_encode(uint8_t *buf, size_t size, int cmd, const char *arg)
{
	size_t n = arg ? strlen(arg) : 0;
	if (n > CTL_MAX_ARG || CTL_HEADER + n > size)
		return 0;
	put_le32(buf, (uint32_t)(CTL_HEADER - 4 + n));
	buf[4] = CTL_VERSION;
	buf[5] = (uint8_t)cmd;
	buf[6] = (uint8_t)n;
	buf[7] = (uint8_t)(n >> 8);
	if (n)
		memcpy(buf + CTL_HEADER, arg, n);
	struct ctl_request check;
	return stitch_trace_ctl_parse(buf, CTL_HEADER + n, &check) == 0 ? CTL_HEADER + n : 0;
}

const char *stitch_trace_ctl_name(int cmd)
{
	static const char *const names[] = { [CTL_STATUS] = "status", [CTL_ENABLE] = "enable",
		[CTL_DISABLE] = "disable", [CTL_GRAPH] = "graph", [CTL_PAUSE] = "pause", [CTL_RESUME] = "resume",
		[CTL_DETACH] = "detach" };
	return cmd > 0 && cmd <= CTL_DETACH ? names[cmd] : NULL;
}
