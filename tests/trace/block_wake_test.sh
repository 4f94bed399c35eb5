#!/bin/sh
# SPDX-License-Identifier: MIT
# --block: a thread whose ring is full wakes the writer (no wait for its tick).
# The writer's tick is set to an hour (STITCH_TRACE_TICK_MS, a test hook), so
# without the wake-up the first full ring would wait an hour; a watchdog
# (timeout) turns that hang into a failure.  No time is measured: with the
# wake-up the recording completes, without it it cannot.
#   block_wake_test.sh CLI PROG   (PROG: bench_calls; env STITCH_TEST_EMULATOR)
set -u
CLI=$1 PROG=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-block.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
emu=${STITCH_TEST_EMULATOR:-}
export STITCH_TRACE_EMULATOR="$emu"
calls=3000
STITCH_TRACE_TICK_MS=3600000 timeout 100 $emu "$CLI" record --graph --block --buffer 16 \
	-o "$work/d" -- "$PROG" $calls >"$work/out" 2>"$work/err"
rc=$?
if [ $rc -eq 124 ]; then
	echo "FAIL: record --block --buffer 16 did not finish in 100 s with a writer tick of an hour:" \
	     "a full ring waits for the tick instead of waking the writer" >&2
	exit 1
fi
if [ $rc -ne 0 ]; then
	echo "FAIL: record exited $rc" >&2; cat "$work/err" >&2; exit 1
fi
# main, then mid and leaf per call: every entry and exit recorded, none lost
want=$((2 + 4 * calls))
if ! grep -q "$want events, 0 lost" "$work/err"; then
	echo "FAIL: expected '$want events, 0 lost' in record's summary:" >&2; cat "$work/err" >&2; exit 1
fi
echo ok
