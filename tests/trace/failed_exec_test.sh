#!/bin/sh
# SPDX-License-Identifier: MIT
# An exec that fails leaves no EXEC record: the program's execl() of a
# path that does not exist returns (ENOENT, which must reach the program:
# else it exits 2), then it makes more calls and exits normally.  The
# recording must hold all its 16 events, an END record, and no exec.  The
# agent wrote the EXEC record before the exec and nothing took it back:
# `replay` said "then exec'ed /nonexistent/...", and the process counted as
# ended there.
#   failed_exec_test.sh CLI PROG   (PROG: failed_exec; env STITCH_TEST_EMULATOR)
set -u
CLI=$1 PROG=$2
emu=${STITCH_TEST_EMULATOR:-}
export STITCH_TRACE_EMULATOR="$emu"
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-failed-exec.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck disable=SC2086 # $emu is a command line
timeout 100 $emu "$CLI" record --graph -o "$work/d" -- "$PROG" >"$work/out" 2>"$work/err"
rc=$?
cat "$work/err" >&2
[ $rc -eq 0 ] || fail "record exited $rc, not 0 (2: the exec's errno was not ENOENT)"
# main, try_exec, after and 5 leaf calls: entries and exits
grep -q " 16 events, 0 lost" "$work/err" || fail "record does not report 16 events, 0 lost"
$emu "$CLI" replay "$work/d" >"$work/replay" || fail "replay failed"
if grep -q "exec'ed\|did not exit cleanly" "$work/replay"; then
	cat "$work/replay" >&2
	fail "replay shows an exec, or no clean end"
fi
$emu "$CLI" dump "$work/d" --tree --collapse >"$work/tree" || fail "dump --tree failed"
if ! grep -q "after" "$work/tree" || ! grep -q "leaf" "$work/tree"; then
	cat "$work/tree" >&2
	fail "the calls after the failed exec are not in the tree"
fi
set -- "$work"/d/trace-*.dat
[ $# -eq 1 ] || fail "$# trace files, expected 1: $*"
echo "ok: the failed exec left no EXEC record; 16 events, a clean end"
