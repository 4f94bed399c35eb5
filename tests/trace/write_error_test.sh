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
#  3. Writes failing partway keep what fits (records of 4096 events).
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

# 3. What fits is kept: with 512 KiB allowed and one drain at the end (a
# writer tick of an hour), the events go out in records of 4096 (96 KiB),
# and those that fit stay (in one record of 65 536 events, 1.5 MiB, until
# 2026-11-28: nothing did).
( ulimit -f 1024 && trap '' XFSZ && STITCH_TRACE_TICK_MS=3600000 exec "$CLI" record --graph -o "$work/d3" -- \
	"$PROG" 100000 ) >/dev/null 2>"$work/err3"
kept=$(sed -n 's/^stitch-trace: 1 process, \([0-9]*\) events.*/\1/p' "$work/err3")
if [ -z "$kept" ] || [ "$kept" -lt 4096 ]; then
	fail "with 512 KiB allowed, ${kept:-no} events were kept (at least one record of 4096 fits):"
	cat "$work/err3" >&2
fi
[ $fails -eq 0 ] && echo "ok ($kept events kept in 512 KiB)"
[ $fails -eq 0 ]
