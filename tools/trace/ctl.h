/* SPDX-License-Identifier: MIT */
/*
 * The control channel's messages (docs/stitch-trace.md, "Control channel").
 *
 * Request:  u32 length (little-endian, bytes that follow), then
 *           u8 version (CTL_VERSION), u8 command (enum ctl_cmd),
 *           u16 argument length (little-endian), the argument bytes.
 * Reply:    u32 length, then u8 status (0 done, 1 refused), then text.
 *
 * The parser is a pure function of its input (no globals, no allocation)
 * so the fuzz target tests/trace/fuzz_ctl.c can call it directly.
 */
#ifndef STITCH_TRACE_CTL_H
#define STITCH_TRACE_CTL_H

#include <stddef.h>
#include <stdint.h>

#define CTL_VERSION 1
#define CTL_MAX_ARG 256
#define CTL_MAX_RULES 64 /* globs an agent keeps (-F/-N at start, enable/disable after) */
#define CTL_HEADER 8 /* length prefix + version, command, argument length */
#define CTL_MAX_REQUEST (CTL_HEADER + CTL_MAX_ARG)
#define CTL_MAX_REPLY 4096

enum ctl_cmd {
	CTL_STATUS = 1,
	CTL_ENABLE = 2,  /* argument: a glob */
	CTL_DISABLE = 3, /* argument: a glob */
	CTL_GRAPH = 4,   /* argument: "on" or "off" */
	CTL_PAUSE = 5,
	CTL_RESUME = 6,
	CTL_DETACH = 7,  /* stop for good: code restored, file closed, socket gone */
};

struct ctl_request {
	int cmd;                    /* enum ctl_cmd */
	int on;                     /* CTL_GRAPH */
	char arg[CTL_MAX_ARG + 1];  /* NUL-terminated glob for ENABLE/DISABLE */
};

/* Errors of stitch_trace_ctl_parse(), negative. */
enum ctl_error {
	CTL_ERR_SHORT = 1,    /* fewer bytes than the header or than the length says */
	CTL_ERR_LENGTH,       /* length prefix disagrees with the bytes given, or too large */
	CTL_ERR_VERSION,
	CTL_ERR_COMMAND,
	CTL_ERR_ARGUMENT,     /* missing, unexpected, too long or with a forbidden byte */
};

/* Parse one whole request of len bytes (length prefix included).  Returns
 * 0 and fills *out, or a negative enum ctl_error leaving *out unspecified. */
int stitch_trace_ctl_parse(const uint8_t *buf, size_t len, struct ctl_request *out);
/* A sentence for an error of stitch_trace_ctl_parse(). */
const char *stitch_trace_ctl_strerror(int err);
/* Encode a request; returns its size, or 0 if it does not fit or arg is invalid. */
size_t stitch_trace_ctl_encode(uint8_t *buf, size_t size, int cmd, const char *arg);
/* Name of a command ("enable"), or NULL. */
const char *stitch_trace_ctl_name(int cmd);

#endif
