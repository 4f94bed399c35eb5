#!/bin/sh
# SPDX-License-Identifier: MIT
# Calls made inside callbacks are counted and reported, not silently
# missing.  progs/guard.c raises SIGUSR1 from inside the agent's entry
# callback (through a prctl() of its own, which the agent calls when a
# thread's first traced call makes the thread's ring), and once outside
# callbacks; its handler calls the traced handled_leaf() and knows where
# it ran.  The library skips the handler's traced calls inside the
# callback (its recursion guard) and counts them; the agent writes the
# count (ST_REC_GUARD), and record, report, replay and dump --events say
# it.  It must equal what the program counted; the handler's calls outside
# callbacks must be recorded, those inside must not.
#   guard_test.sh CLI PROG   (PROG: guard; env STITCH_TEST_EMULATOR)
set -u
CLI=$1 PROG=$2
emu=${STITCH_TEST_EMULATOR:-}
export STITCH_TRACE_EMULATOR="$emu"
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-guard.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck disable=SC2086 # $emu is a command line
timeout 100 $emu "$CLI" record -o "$work/d" -- "$PROG" >"$work/out" 2>"$work/err"
rc=$?
cat "$work/out" "$work/err" >&2
[ $rc -eq 0 ] || fail "record exited $rc"
inside=$(sed -n 's/^inside \([0-9]*\)$/\1/p' "$work/out")
outside=$(sed -n 's/^outside \([0-9]*\)$/\1/p' "$work/out")
[ "${inside:-0}" -gt 0 ] || fail "no handler call landed inside a callback: the test shows nothing"
[ "${outside:-0}" -gt 0 ] || fail "no handler call outside callbacks"
what="$inside calls made inside callbacks (signal handlers interrupting tracing) were not recorded"
grep -q "^stitch-trace: $what$" "$work/err" || fail "record does not say: $what"
# shellcheck disable=SC2086
$emu "$CLI" report "$work/d" >"$work/report" || fail "report failed"
cat "$work/report" >&2
grep -q "^# process [0-9]*: $what$" "$work/report" || fail "report does not say, for the process: $what"
grep -q "^# $what: counts are low$" "$work/report" || fail "report's summary does not say: $what"
# shellcheck disable=SC2086
$emu "$CLI" replay "$work/d" | grep -q "^# process [0-9]*: $what$" || fail "replay does not say: $what"
# shellcheck disable=SC2086
$emu "$CLI" dump "$work/d" --events >"$work/events" || fail "dump --events failed"
g=$(awk '$1 == "G" { print $3 }' "$work/events")
[ "$g" = "$inside" ] || fail "dump --events: G line says '$g', the program counted $inside"
# the handler's calls outside callbacks were recorded, those inside were not
recorded=$(awk '$1 == "E" && $4 == "entry" && $7 == "handled_leaf" { n++ } END { print n + 0 }' "$work/events")
[ "$recorded" -eq "$outside" ] || fail "$recorded calls of handled_leaf recorded, expected $outside (outside callbacks)"
echo "ok: $inside calls inside callbacks counted and reported, $outside outside recorded"
