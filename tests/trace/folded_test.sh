#!/bin/sh
# SPDX-License-Identifier: MIT
# dump --folded and flame in memory proportional to the distinct stacks,
# not to calls x depth: 300 recursions 1000 deep (300,000 calls, 1002
# distinct stacks) fold and draw within a 512 MiB address space and 60 s.
# Building a line per call and sorting them took 37 s and 2.6 GB here;
# flame walked every call's whole stack: 1.0 s here, 0.23 s from the tree.
#   folded_test.sh CLI DEEP_PROG
set -u
cli=$1 prog=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-folded.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
command -v prlimit >/dev/null || { echo "skipped: no prlimit"; exit 77; }
"$cli" record --graph --block -o "$work/d" -- "$prog" 1000 300 >/dev/null 2>"$work/err" ||
	fail "record failed: $(cat "$work/err")"
timeout 60 prlimit --as=536870912 "$cli" dump "$work/d" --folded --calls >"$work/f" 2>"$work/err" ||
	fail "dump --folded failed within 512 MiB and 60 s: $(tail -2 "$work/err")"
# main, main;descend (1001 depths), main;descend*1001;bottom
lines=$(wc -l <"$work/f")
[ "$lines" -eq 1003 ] || fail "$lines folded lines, expected 1003"
calls=$(awk '{ s += $NF } END { print s }' "$work/f")
[ "$calls" -eq $((300 * 1002 + 1)) ] || fail "$calls calls in the folded stacks, expected $((300 * 1002 + 1))"
grep -q "^main;descend;descend [0-9]" "$work/f" || fail "no main;descend;descend line"
# the flame graph of the same tree: a box per distinct stack, the root
# "all" included, and the deepest one drawn
timeout 60 prlimit --as=536870912 "$cli" flame "$work/d" -o "$work/f.svg" 2>"$work/err" ||
	fail "flame failed within 512 MiB and 60 s: $(tail -2 "$work/err")"
boxes=$(grep -c "^<g><title>" "$work/f.svg")
[ "$boxes" -eq 1004 ] || fail "$boxes boxes in the flame graph, expected 1004"
grep -q "<title>bottom (" "$work/f.svg" || fail "no box for bottom, 1002 calls deep"
# report says how many calls were beyond the 1024-entry return stack
# (replay flagged them; report was silent): 1100 deep, main and bottom
"$cli" record --graph -o "$work/over" -- "$prog" 1100 1 >/dev/null 2>"$work/err" ||
	fail "record 1100 deep failed: $(cat "$work/err")"
"$cli" report "$work/over" >"$work/r" || fail "report failed"
grep -q "^# $((1100 + 3 - 1024)) calls were deeper than the return stack" "$work/r" ||
	fail "report does not count the calls beyond the return stack: $(tail -2 "$work/r")"
echo "ok: folded, flame, report"
