#!/bin/sh
# SPDX-License-Identifier: MIT
# Losses of a thread that has exited are marked in its events: with a
# 16-event ring and a writer tick of an hour (STITCH_TRACE_TICK_MS: the
# writer drains at its start and at exit only, so losses are certain), a
# thread makes 5000 calls and exits before the program.  Every loss must be
# in a marker (ST_EV_LOST, `dump --events`: "E pid tid lost gen ts N"):
# the markers' total equals the END record's lost total, and report says
# so.  The losses pending when the thread exited were never marked: its
# ring was set aside at the drain that found it gone, and the markers at
# exit skip such rings.
#   thread_lost_test.sh CLI PROG   (PROG: thread_lost; env STITCH_TEST_EMULATOR)
set -u
CLI=$1 PROG=$2
emu=${STITCH_TEST_EMULATOR:-}
export STITCH_TRACE_EMULATOR="$emu"
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-thread-lost.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
# shellcheck disable=SC2086 # $emu is a command line
STITCH_TRACE_TICK_MS=3600000 timeout 100 $emu "$CLI" record --graph --buffer 16 \
	-o "$work/d" -- "$PROG" 5000 >"$work/out" 2>"$work/err"
rc=$?
cat "$work/err" >&2
[ $rc -eq 0 ] || fail "record exited $rc"
$emu "$CLI" report "$work/d" >"$work/report" || fail "report failed"
# the END record's total
end_lost=$(sed -n 's/^# process [0-9]*: \([0-9]*\) events LOST in total$/\1/p' "$work/report")
[ "${end_lost:-0}" -gt 0 ] || fail "no losses in the END record (with a 16-event ring and no drain)"
$emu "$CLI" dump "$work/d" --events >"$work/events" || fail "dump --events failed"
marked=$(awk '$4 == "lost" { n += $7 } END { print n + 0 }' "$work/events")
[ "$marked" -eq "$end_lost" ] ||
	fail "$end_lost events lost (END record), but loss markers for $marked in the events"
grep -q "^# $end_lost events were LOST" "$work/report" || {
	cat "$work/report" >&2
	fail "report does not say that $end_lost events were LOST"
}
grep -q "events, $end_lost lost" "$work/err" || fail "record does not report $end_lost lost"
echo "ok: $end_lost events lost, all of them marked in the thread's events"
