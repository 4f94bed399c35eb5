/* SPDX-License-Identifier: MIT */
/*
 * function_graph under gdb (run_gdb.sh, case 3): g_outer -> g_mid ->
 * g_inner, all three with their returns hooked, so each one's return
 * address is stitch's return trampoline.  gdb stops in g_inner; with
 * tools/gdb/stitch.py its backtrace must go on through the trampoline to
 * g_mid, g_outer and main.
 */
#include <stdio.h>

#include <stitch/ftrace.h>

#include "common/check.h"

#define NOINLINE __attribute__((noinline))
#define KEEP() __asm__ volatile("" ::: "memory")

NOINLINE int g_inner(int x);
NOINLINE int g_mid(int x);
NOINLINE int g_outer(int x);

NOINLINE int g_inner(int x)
{
	KEEP();
	return x + 1;
}
NOINLINE int g_mid(int x)
{
	int r = g_inner(x) * 2;
	KEEP();
	return r;
}
NOINLINE int g_outer(int x)
{
	int r = g_mid(x) + 3;
	KEEP();
	return r;
}

static long entries, returns;
static void on_entry(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops, struct stitch_ftrace_regs *regs)
{
	(void)ip;
	(void)parent;
	(void)ops;
	(void)regs;
	entries++;
}
static void on_return(uintptr_t ip, uintptr_t parent, struct stitch_ftrace_ops *ops,
		      struct stitch_ftrace_ret_regs *rregs)
{
	(void)ip;
	(void)parent;
	(void)ops;
	returns += rregs != NULL;
}
static struct stitch_ftrace_ops ops = { .func = on_entry, .ret_func = on_return };

int main(void)
{
	int err = stitch_ftrace_register(&ops, "g_*");
	CHECK(err == 0, "register: %s", stitch_last_error());
	CHECK_EQ(g_outer(1), 7);
	CHECK_EQ(entries, 3);
	CHECK_EQ(returns, 3);
	if (!err)
		CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
	return check_summary("gdb_graph");
}
