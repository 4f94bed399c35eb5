// SPDX-License-Identifier: MIT
// Filters with C++ names (src/core/ftrace.c, "C++ patterns"): a pattern
// with "::" or "(" is matched against demangled names, and without "("
// against the name before its parameter list too.  Before, every such
// pattern matched nothing (the names in the symbol table are mangled).
// A plain pattern matches a C++ function's name before its parameter list
// as well ("handle" selects handle(int)); before, only its mangled name.
// This file is built with the trace flags.
#include <cstdio>
#include <cstring>

#include <stitch/ftrace.h>

#include "common/check.h"

static long hits;
static void on_entry(uintptr_t, uintptr_t, stitch_ftrace_ops *, stitch_ftrace_regs *) { hits++; }
static stitch_ftrace_ops ops;

#ifdef __clang__
#define NOIPA __attribute__((noinline))
#else
#define NOIPA __attribute__((noipa))
#endif
/* every call kept: clang drops a noinline call whose result it can work
 * out (interprocedural constant propagation) when the callee has no effect */
#define KEEP() __asm__ volatile("" ::: "memory")

namespace ns {
struct Widget {
	int v;
	NOIPA int draw(int x) const { KEEP(); return v + x; }
	NOIPA int draw(double x) const { KEEP(); return v + (int)x + 1; }
	NOIPA static int make() { KEEP(); return 7; }
};
NOIPA int free_fn(int x) { KEEP(); return x * 2; }
} // namespace ns
namespace other {
NOIPA int free_fn(int x) { KEEP(); return x * 3; }
}
extern "C" NOIPA int plain_c(int x) { KEEP(); return x - 1; }
NOIPA int handle(int x) { KEEP(); return x + 5; } /* C++ linkage, no namespace: _Z6handlei */

/* Names whose demangled form has more than "name(params)": a template
 * instance ("int tpl::twice<int>(int)": the return type first), a call
 * operator ("tpl::Adder::operator()(int) const"), an anonymous namespace
 * ("(anonymous namespace)::hidden(int)"), two parameters ("tpl::pair(int,
 * char)"), an operator with a bracket in its name ("tpl::operator<(...)"). */
namespace tpl {
template <typename T> NOIPA T twice(T x) { KEEP(); return x * 2; }
template int twice<int>(int);
struct Adder {
	int v;
	NOIPA int operator()(int x) const { KEEP(); return v + x; }
};
NOIPA int pair(int a, char b) { KEEP(); return a + b; }
NOIPA bool operator<(const Adder &a, const Adder &b) { KEEP(); return a.v < b.v; }
} // namespace tpl
namespace {
NOIPA int hidden(int x) { KEEP(); return x + 9; }
}
/* "operator" inside other words is no operator: a template argument list
 * after binary_operator is one, cooperator's template instance loses its
 * arguments and make's return type (opw::operators::Kind) its place */
namespace opw {
template <typename A, typename B> struct binary_operator {
	NOIPA static int run(int x) { KEEP(); return x + (int)sizeof(A) + (int)sizeof(B); }
};
struct cooperator {
	template <typename T> NOIPA static T run(T x) { KEEP(); return x + 1; }
};
namespace operators {
enum Kind { K0, K1 };
}
template <typename T> NOIPA operators::Kind make(T x) { KEEP(); return x ? operators::K1 : operators::K0; }
template operators::Kind make<int>(int);
} // namespace opw

/* Which of calls[] reach the callback now: a bit each, by calling them. */
using call_fn = int (*)();
static unsigned traced_bits(const call_fn *calls, size_t n)
{
	unsigned set = 0;
	for (size_t i = 0; i < n; i++) {
		long before = hits;
		(void)calls[i]();
		if (hits != before)
			set |= 1u << i;
	}
	return set;
}

/* The first seven functions, in the order of their bits. */
static const ns::Widget widget{ 1 };
static const call_fn first_calls[] = {
	[] { return widget.draw(1); },	      [] { return widget.draw(1.0); }, [] { return ns::Widget::make(); },
	[] { return ns::free_fn(1); },	      [] { return other::free_fn(1); }, [] { return plain_c(1); },
	[] { return handle(1); },
};
enum { DRAW_INT = 1, DRAW_DOUBLE = 2, MAKE = 4, NS_FREE = 8, OTHER_FREE = 16, PLAIN = 32, HANDLE = 64 };

/* The names with more than "name(params)", in the order of their bits. */
static const call_fn more_calls[] = {
	[] { return tpl::twice<int>(2); },
	[] { return tpl::Adder{ 1 }(2); },
	[] { return hidden(1); },
	[] { return tpl::pair(1, 'a'); },
	[] { return (int)(tpl::Adder{ 1 } < tpl::Adder{ 2 }); },
	[] { return opw::binary_operator<int, char>::run(1); },
	[] { return opw::cooperator::run<int>(1); },
	[] { return (int)opw::make<int>(1); },
};
enum { TWICE = 1, CALL_OP = 2, HIDDEN = 4, PAIR = 8, LESS = 16, BINOP = 32, COOP = 64, OPW_MAKE = 128 };

#define NCALLS(a) (sizeof(a) / sizeof((a)[0]))
static unsigned traced_set() { return traced_bits(first_calls, NCALLS(first_calls)); }

/* Register filter, and see which of calls[] it traces. */
static void expect_calls(const char *filter, const call_fn *calls, size_t n, unsigned want)
{
	int err = stitch_ftrace_register(&ops, filter);
	CHECK(err == 0, "register \"%s\": %s", filter, stitch_last_error());
	if (err)
		return;
	unsigned got = traced_bits(calls, n);
	CHECK(got == want, "\"%s\": traced set %#x, expected %#x", filter, got, want);
	CHECK_EQ(stitch_ftrace_unregister(&ops), 0);
}
static void expect(const char *filter, unsigned want) { expect_calls(filter, first_calls, NCALLS(first_calls), want); }
static void expect_more(const char *filter, unsigned want)
{
	expect_calls(filter, more_calls, NCALLS(more_calls), want);
}

/* Sites stitch_ftrace_pattern_matches() says one pattern selects. */
static int pattern_sites(const char *pattern)
{
	int n = stitch_ftrace_site_count(), k = 0;
	for (int i = 0; i < n; i++) {
		int r = stitch_ftrace_pattern_matches(pattern, (size_t)i);
		CHECK(r == 0 || r == 1, "%s, site %d: %d %s", pattern, i, r, stitch_last_error());
		k += r == 1;
	}
	return k;
}

int main()
{
	ops.func = on_entry;
	expect("ns::*", DRAW_INT | DRAW_DOUBLE | MAKE | NS_FREE);
	expect("ns::Widget::draw", DRAW_INT | DRAW_DOUBLE);
	expect("ns::Widget::draw(double)*", DRAW_DOUBLE);
	expect("*::free_fn", NS_FREE | OTHER_FREE);
	expect("ns::* !ns::Widget::*", NS_FREE);
	expect("other::free_fn(int) plain_c", OTHER_FREE | PLAIN);
	/* plain patterns: a C++ name before its parameter list, or the mangled one */
	expect("handle", HANDLE);
	expect("hand*", HANDLE);
	expect("*free_fn", NS_FREE | OTHER_FREE);
	expect("_ZN2ns7free_fnEi", NS_FREE);
	expect("*free_fn hand* !other::* !handle", NS_FREE);
	/* the head is the qualified name: "draw" is not ns::Widget::draw */
	CHECK_EQ(stitch_ftrace_register(&ops, "draw"), -STITCH_ENOTFOUND);
	/* still refused when nothing matches, with the pattern named */
	int err = stitch_ftrace_register(&ops, "nope::*");
	CHECK(err == -STITCH_ENOTFOUND, "nope::*: %d", err);
	CHECK(strstr(stitch_last_error(), "nope::*") != nullptr, "message: %s", stitch_last_error());
	CHECK_EQ(traced_set(), 0);
	/* one pattern, as a filter sees it */
	CHECK_EQ(pattern_sites("ns::*"), 4);
	CHECK_EQ(pattern_sites("ns::Widget::draw"), 2);
	CHECK_EQ(pattern_sites("*::free_fn"), 2);
	CHECK_EQ(pattern_sites("plain_c"), 1);
	CHECK_EQ(pattern_sites("handle"), 1);
	CHECK_EQ(pattern_sites("*free_fn"), 2);
	CHECK_EQ(pattern_sites("draw"), 0);
	CHECK_EQ(pattern_sites("nope::*"), 0);
	/* the names above: before 2026-11-28 "tpl::*" missed the template
	 * instance (its name begins with "int "), and the call operator and the
	 * anonymous namespace were cut at their first '(' */
	expect_more("tpl::*", TWICE | CALL_OP | PAIR | LESS);
	expect_more("tpl::twice", TWICE);
	expect_more("tpl::twice<int>", TWICE);
	expect_more("*twice", TWICE); /* plain: without its return type and template arguments */
	expect_more("tpl::Adder::operator()", CALL_OP);
	expect_more("(anonymous namespace)::hidden", HIDDEN);
	expect_more("*::hidden", HIDDEN);
	/* a parameter list as demangled, ", " included: one pattern, not two */
	expect_more("tpl::pair(int, char)", PAIR);
	expect_more("tpl::pair(int,?char)", PAIR);
	expect_more("tpl::operator< tpl::twice", LESS | TWICE);
	expect_more("tpl::operator<(tpl::Adder const&, tpl::Adder const&)", LESS);
	expect_more("opw::binary_operator<int, char>::run", BINOP);
	expect_more("opw::cooperator::run", COOP);
	expect_more("opw::make", OPW_MAKE);
	expect_more("opw::*", BINOP | COOP | OPW_MAKE);
	CHECK_EQ(pattern_sites("tpl::pair(int, char)"), 1);
	CHECK_EQ(pattern_sites("tpl::*"), 4);
	/* an unclosed bracket is refused, naming the pattern */
	err = stitch_ftrace_register(&ops, "tpl::pair(int");
	CHECK(err == -STITCH_EINVAL, "unclosed: %d", err);
	CHECK(strstr(stitch_last_error(), "tpl::pair(int") != nullptr, "message: %s", stitch_last_error());
	CHECK_EQ(stitch_ftrace_pattern_matches("!plain_c", 0), -STITCH_EINVAL);
	CHECK_EQ(stitch_ftrace_pattern_matches("plain_c", 1u << 30), -STITCH_ENOTFOUND);
	return check_summary("test_ftrace_cxx_filter");
}
