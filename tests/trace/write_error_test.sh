#!/bin/sh
# SPDX-License-Identifier: MIT
# Output that cannot be written.
#  1. A directory no file can be created in: record refuses before running
#     the program (exit 1, "cannot write in DIR: <strerror>").  Not root: a
#     directory of mode 0555; root ignores that, so /proc (no file can be
#     created there by anyone).
#  2. Writes failing partway (RLIMIT_FSIZE with SIGXFSZ ignored: EFBIG, as a
#     full disk gives ENOSPC, without needing a mount): record says why, the
#     part written before stays readable (the failed record is cut off and
#     the END record written), and the totals count the unwritten events as
#     lost instead of "0 events, at least 0 lost ... did not exit cleanly".
#   write_error_test.sh CLI PROG   (PROG: bench_calls)
set -u
CLI=$1 PROG=$2
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-werr.XXXXXX") || exit 1
trap 'chmod -R u+w "$work"; rm -rf "$work"' EXIT
fails=0
fail() { echo "FAIL: $*" >&2; fails=$((fails + 1)); }

if [ "$(id -u)" = 0 ]; then
	ro=/proc
else
	ro=$work/ro
	mkdir "$ro" && chmod 0555 "$ro"
fi
"$CLI" record -o "$ro" -- "$PROG" 10 >"$work/out1" 2>"$work/err1"
rc=$?
[ $rc -eq 1 ] || fail "record into $ro exited $rc, expected 1"
grep -q "cannot write in $ro: " "$work/err1" || { fail "no 'cannot write in $ro' message:"; cat "$work/err1" >&2; }
[ -s "$work/out1" ] && fail "the program ran although nothing could be recorded: $(cat "$work/out1")"

# 64 blocks of 512 bytes: the header and symbols fit, the first drain's
# events do not
( ulimit -f 64 && trap '' XFSZ && exec "$CLI" record --graph -o "$work/d" -- "$PROG" 100000 ) \
	>/dev/null 2>"$work/err2"
rc=$?
[ $rc -eq 0 ] || fail "record with RLIMIT_FSIZE exited $rc, expected the program's 0"
grep -q "could not be written: File too large" "$work/err2" ||
	fail "record does not say the output could not be written (File too large)"
grep -q "did not exit cleanly" "$work/err2" && fail "record says the process did not exit cleanly"
grep -Eq "events, [1-9][0-9]* lost" "$work/err2" || fail "record's totals count no loss"
[ $fails -eq 0 ] || cat "$work/err2" >&2
"$CLI" report "$work/d" >"$work/report" 2>&1 || { fail "report of what was written failed:"; cat "$work/report" >&2; }
[ $fails -eq 0 ] && echo ok
[ $fails -eq 0 ]
