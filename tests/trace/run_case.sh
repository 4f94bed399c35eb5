#!/bin/sh
# SPDX-License-Identifier: MIT
# One stitch-trace test case: record PROG with the CLI, then compare what
# the CLI shows with what the program must have done.
#   run_case.sh CHECK CLI PROG [ARGS...]
# CHECK: tree:FILE  `dump --tree --collapse` equals FILE exactly;
#                   also the exit status and the Chrome JSON are checked
#        deep:N     PROG recursed N deep: N+2 calls, the ones beyond the
#                   return stack (1024) recorded without exit
#        noflags    PROG has no patchable entries: record names the flags
# RECORD_OPTS: more options for record.
# Cross builds: STITCH_TEST_EMULATOR runs the CLI and (through
# STITCH_TRACE_EMULATOR) the program under qemu-user.
set -u
check=$1 cli=$2 prog=$3
shift 3
here=$(cd "$(dirname "$0")" && pwd)
emu=${STITCH_TEST_EMULATOR:-}
export STITCH_TRACE_EMULATOR="$emu"
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-trace-test.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

# shellcheck disable=SC2086 # $emu is a command line, RECORD_OPTS options
$emu "$cli" record --graph ${RECORD_OPTS:-} -o "$work/d" -- "$prog" "$@" >"$work/out" 2>"$work/err"
rc=$?
cat "$work/out"
cat "$work/err" >&2

case $check in
noflags)
	[ $rc -ne 0 ] || fail "record of a program without patchable entries succeeded"
	grep -q "has no patchable function entries" "$work/err" || fail "no message about the missing entries"
	grep -q -- "-fpatchable-function-entry" "$work/err" || fail "the message does not name the flags"
	echo "ok: noflags"
	exit 0 ;;
esac

[ $rc -eq 0 ] || fail "record exited $rc (the program's status must pass through)"
grep -q " 0 lost" "$work/err" || fail "events were lost"
$emu "$cli" dump "$work/d" --tree --collapse >"$work/tree" || fail "dump --tree failed"

case $check in
tree:*)
	expected=${check#tree:}
	if ! diff -u "$expected" "$work/tree"; then
		echo "--- replay:" >&2
		$emu "$cli" replay "$work/d" >&2
		fail "call tree differs from $expected"
	fi
	# a demangled name has its parameter list: no "()" after it
	$emu "$cli" replay "$work/d" | grep -F ')()' && fail "replay puts () after a name with its parameters"
	$emu "$cli" dump "$work/d" --ftrace | grep -F ')()' && fail "dump --ftrace puts () after a name with its parameters"
	;;
deep:*)
	n=${check#deep:}
	$emu "$cli" dump "$work/d" --tree >"$work/full" || fail "dump --tree failed"
	calls=$(grep -c "descend" "$work/full")
	noexit=$(grep -c "(no exit recorded)" "$work/full")
	# main, n+1 descend, bottom; the first 1024 get their returns hooked
	[ "$calls" -eq $((n + 1)) ] || fail "$calls descend calls, expected $((n + 1))"
	[ "$noexit" -eq $((n + 3 - 1024)) ] || fail "$noexit calls without exit, expected $((n + 3 - 1024))"
	grep -q "^  main$" "$work/tree" || fail "main not at the top"
	;;
*) fail "unknown check $check" ;;
esac

# The Chrome trace: well-formed JSON, every event complete or instant.
$emu "$cli" dump "$work/d" --chrome -o "$work/trace.json" || fail "dump --chrome failed"
if command -v python3 >/dev/null; then
	python3 "$here/check_chrome.py" "$work/trace.json" || fail "Chrome JSON invalid"
elif command -v jq >/dev/null; then
	jq -e '.traceEvents | all(.ph == "X" or .ph == "i" or .ph == "M")' "$work/trace.json" >/dev/null ||
		fail "Chrome JSON invalid"
fi
# The other outputs at least run and say something.
for cmd in "replay" "report" "dump --folded" "dump --ftrace"; do
	# shellcheck disable=SC2086
	$emu "$cli" $cmd "$work/d" >"$work/o" || fail "$cmd failed"
	[ -s "$work/o" ] || fail "$cmd printed nothing"
done
$emu "$cli" flame "$work/d" -o "$work/f.svg" || fail "flame failed"
grep -q "</svg>" "$work/f.svg" || fail "flame graph incomplete"
echo "ok: $check"
