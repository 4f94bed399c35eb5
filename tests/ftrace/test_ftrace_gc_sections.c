/* SPDX-License-Identifier: MIT */
/*
 * A function of an object compiled with -ffunction-sections and linked with
 * -Wl,--gc-sections is traceable, though the object's first function was
 * collected (gc_funcs.c says why that used to lose its entry record with
 * gcc 11 and 12): registering on it succeeds and every call is seen.
 * Where a later -ffunction-sections undid the trace flags' fix
 * (gc_funcs_late.c), gcc before 13 loses the record, and registering says
 * why; and a function built without the flags is "not instrumented".
 */
#include <string.h>

#include <stitch/ftrace.h>

#include "common/check.h"

int gc_used(int x);
int gc_late_used(int x);

/* not built with the trace flags (this file is not) */
__attribute__((noinline)) int not_traced(int x);
__attribute__((noinline)) int not_traced(int x)
{
	__asm__ volatile("" ::: "memory");
	return x - 1;
}

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

	struct stitch_ftrace_ops late = { .func = on_entry };
	err = stitch_ftrace_register(&late, "gc_late_used");
#if defined(__GNUC__) && !defined(__clang__) && __GNUC__ < 13
	CHECK(err == -STITCH_ENOTFOUND && strstr(stitch_last_error(), "gc_late_used has no entry record") &&
		      strstr(stitch_last_error(), "the linker dropped the record"),
	      "register on gc_late_used (record dropped): %d, %s", err, stitch_last_error());
#else
	CHECK(err == 0, "register on gc_late_used (this compiler keeps its record): %s", stitch_last_error());
#endif
	if (!err)
		CHECK_EQ(stitch_ftrace_unregister(&late), 0);
	CHECK_EQ(gc_late_used(1), 3);

	err = stitch_ftrace_register(&late, "not_traced");
	CHECK(err == -STITCH_ENOTFOUND && strstr(stitch_last_error(), "function not_traced is not instrumented"),
	      "register on not_traced: %d, %s", err, stitch_last_error());
	CHECK_EQ(not_traced(1), 0);
	return check_summary("test_ftrace_gc_sections");
}
