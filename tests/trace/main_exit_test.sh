#!/bin/sh
# SPDX-License-Identifier: MIT
# A program whose main() ends with pthread_exit() ends when its last thread
# does, with status 0 (glibc calls exit(0) then), under record too.  It
# never ended under record: glibc counts the agent's threads as well, and
# they never exit (nor take SIGTERM: they block every signal).  Now the
# writer sees the main thread gone and no program thread left, and calls
# exit(0) itself.  The worker makes its 1000 calls after main has exited
# (it joins the main thread); they must all be recorded.  A third thread
# makes no traced call (-N quiet): it waits for the worker, then prints;
# the process must not end before it (the agent counts the kernel's
# threads, not its rings).  A watchdog
# (timeout) turns the hang into a failure; no time is measured.
# Native only: under qemu-user /proc/self/stat is made up, the agent cannot
# see the main thread gone (docs/stitch-trace.md, Limits).
#   main_exit_test.sh CLI PROG   (PROG: main_exit; env STITCH_TEST_EMULATOR)
set -u
CLI=$1 PROG=$2
if [ -n "${STITCH_TEST_EMULATOR:-}" ]; then
	echo "skip: under an emulator ($STITCH_TEST_EMULATOR) a program whose main thread calls pthread_exit()" \
	     "does not end under record (native only: docs/stitch-trace.md, Limits)"
	exit 77
fi
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-main-exit.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
timeout 60 "$CLI" record --graph -N quiet -o "$work/d" -- "$PROG" >"$work/out" 2>"$work/err"
rc=$?
if [ $rc -eq 124 ]; then
	# the program takes no SIGTERM: without this it would run forever
	for f in "$work"/d/trace-*.dat; do
		pid=${f##*/trace-}
		pid=${pid%%.*}
		kill -9 "$pid" 2>/dev/null
	done
	fail "record did not return in 60 s: the program whose main thread called pthread_exit() did not end"
fi
cat "$work/err" >&2
[ $rc -eq 0 ] || fail "record exited $rc, not 0 (the status of a program whose last thread exited)"
grep -q " 0 lost" "$work/err" || fail "events were lost"
grep -q "^quiet thread done$" "$work/out" || fail "the thread without traced calls was cut short"
"$CLI" report "$work/d" >"$work/report" || fail "report failed"
grep -q "did not exit cleanly" "$work/report" && fail "the process did not end with an END record"
leaf=$(awk '$NF == "leaf" { print $(NF - 1) }' "$work/report")
work_calls=$(awk '$NF == "work" { print $(NF - 1) }' "$work/report")
if [ "$leaf" != 1000 ] || [ "$work_calls" != 1 ]; then
	cat "$work/report" >&2
	fail "expected work 1 and leaf 1000 calls, got '$work_calls' and '$leaf'"
fi
echo "ok: record returned 0 once the last thread exited, the worker's 1000 calls recorded"
