/* SPDX-License-Identifier: MIT */
/* A program with no instrumented function: every call says which flags to use. */
#include <string.h>

#include <stitch/ftrace.h>

#include "common/check.h"

static void cb(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip, (void)parent, (void)ops, (void)regs;
}

int main(void)
{
	struct stitch_ftrace_ops ops = { .func = cb };
	CHECK_EQ(stitch_ftrace_site_count(), 0);
	CHECK_EQ(stitch_ftrace_register(&ops, "*"), -STITCH_ENOTFOUND);
	CHECK(strstr(stitch_last_error(), "-fpatchable-function-entry") != NULL, "message: %s", stitch_last_error());
	CHECK(strstr(stitch_last_error(), "trace_cflags") != NULL, "message: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_register(&ops, "main"), -STITCH_ENOTFOUND);
	CHECK(strstr(stitch_last_error(), "-fpatchable-function-entry") != NULL, "message: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_unregister(&ops), -STITCH_EINVAL);
	return check_summary("test_ftrace_none");
}
