/* SPDX-License-Identifier: MIT */
/*
 * A function of an object compiled with -ffunction-sections and linked with
 * -Wl,--gc-sections is traceable, though the object's first function was
 * collected (gc_funcs.c says why that used to lose its entry record with
 * gcc 11 and 12): registering on it succeeds and every call is seen.
 */
#include <stitch/ftrace.h>

#include "common/check.h"

int gc_used(int x);

static long hits;
static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip;
	(void)parent;
	(void)ops;
	(void)regs;
	hits++;
}

static struct stitch_ftrace_ops ops = { .func = on_entry };

int main(void)
{
	int err = stitch_ftrace_register(&ops, "gc_used");
	CHECK(err == 0, "register on gc_used: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_ops_site_count(&ops), 1);
	int sum = 0;
	for (int i = 0; i < 100; i++)
		sum += gc_used(i);
	CHECK_EQ(sum, 5050);
	CHECK_EQ(hits, err ? 0 : 100);
	if (!err)
		CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	return check_summary("test_ftrace_gc_sections");
}
