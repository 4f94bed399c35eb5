#!/bin/sh
# SPDX-License-Identifier: MIT
# Recording must not change what a program does: a thread's exit(3) while
# main sleeps in pause() ends the program with status 3, main printing
# nothing.  It exited 0 under record when the agent's own threads blocked
# SIGTRAP: the library then switched the sites at exit in a stopped world,
# whose signal woke main's pause() with EINTR.
#   pause_exit_test.sh CLI PROG
set -u
cli=$1 prog=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-pause.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
"$prog" >"$work/native" 2>&1
native=$?
"$cli" record -o "$work/d" -- "$prog" >"$work/traced" 2>"$work/err"
traced=$?
fail=0
[ $native -eq 3 ] || { echo "FAIL: natively the program exited $native, not 3"; fail=1; }
[ $traced -eq 3 ] || { echo "FAIL: under record the program exited $traced, not 3"; cat "$work/err"; fail=1; }
if [ -s "$work/traced" ]; then
	echo "FAIL: under record main printed:"; cat "$work/traced"; fail=1
fi
[ $fail -eq 0 ] && echo "ok: exit status 3 under record, main's pause() not interrupted"
exit $fail
