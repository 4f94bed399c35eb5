/* SPDX-License-Identifier: MIT */
/* Error codes, the per-thread failure message, and stitch_die(). */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/internal.h"

static _Thread_local char last_error[512];

const char *stitch_strerror(int err)
{
	if (err < 0)
		err = -err;
	switch (err) {
	case STITCH_OK: return "success";
	case STITCH_EINVAL: return "invalid argument";
	case STITCH_EMISMATCH: return "site bytes differ from the expected ones";
	case STITCH_EALIGN: return "misaligned site or target";
	case STITCH_ERANGE: return "target out of range of the instruction";
	case STITCH_EUNKNOWN: return "unknown instruction at site";
	case STITCH_ENOMEM: return "out of memory";
	case STITCH_EPROTECT: return "cannot write code";
	case STITCH_ENOSYNC: return "no cross-thread instruction sync available";
	case STITCH_EQUIESCE: return "a thread did not report its position";
	case STITCH_ENOTFOUND: return "unknown site, key or module";
	case STITCH_EBACKEND: return "no code-writing backend works here";
	case STITCH_ESYS: return "system call failed";
	case STITCH_EOVERFLOW: return "counter overflow or underflow";
	default: return "unknown stitch error";
	}
}

const char *stitch_last_error(void)
{
	return last_error;
}

void stitch_clear_error(void)
{
	last_error[0] = '\0';
}

static int vfail(int err, const char *fmt, va_list ap, const char *suffix)
{
	/* Both callers va_start ap; clang-tidy 14 reports it uninitialised through
	 * stitch_fail_errno since internal.h includes <ucontext.h>: false positive. */
	// NOLINTNEXTLINE(clang-analyzer-valist.Uninitialized)
	int n = vsnprintf(last_error, sizeof(last_error), fmt, ap);
	if (suffix && n >= 0 && (size_t)n < sizeof(last_error))
		snprintf(last_error + n, sizeof(last_error) - (size_t)n, ": %s", suffix);
	return -err;
}

/* (name): not the call-site macro of internal.h */
int(stitch_fail)(int err, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	int r = vfail(err, fmt, ap, NULL);
	va_end(ap);
	return r;
}

int(stitch_fail_errno)(int err, const char *fmt, ...)
{
	int saved = errno;
	char buf[128];
	va_list ap;
	va_start(ap, fmt);
	/* GNU strerror_r returns a pointer that may or may not be buf. */
	const char *msg = strerror_r(saved, buf, sizeof(buf));
	int r = vfail(err, fmt, ap, msg);
	va_end(ap);
	errno = saved;
	return r;
}

char *stitch_hex(char *buf, const uint8_t *bytes, size_t len)
{
	static const char digits[] = "0123456789abcdef";
	char *p = buf;
	for (size_t i = 0; i < len; i++) {
		if (i)
			*p++ = ' ';
		*p++ = digits[bytes[i] >> 4];
		*p++ = digits[bytes[i] & 15];
	}
	*p = '\0';
	return buf;
}

void stitch_die_at(const char *file, int line, const char *msg)
{
	char buf[512];
	int n = snprintf(buf, sizeof(buf), "stitch: internal error at %s:%d: %s\n", file, line, msg);
	if (n > 0)
		(void)!write(STDERR_FILENO, buf, (size_t)n < sizeof(buf) ? (size_t)n : sizeof(buf) - 1);
	abort();
}
