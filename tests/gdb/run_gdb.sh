#!/bin/sh
# SPDX-License-Identifier: MIT
# gdb_prog under gdb -batch (issue 8, environment matrix; x86-64 native).
#   run_gdb.sh GDB GDB_PROG
#
# 1. A breakpoint inside probe_fn, a function whose key site and tracing
#    site are rewritten while the program runs (after the tracing site:
#    *probe_fn+5).  gdb must stop there exactly as often as the program
#    calls probe_fn, and the program's own checks must pass.  The int3s of
#    stitch's x86 protocol reach gdb as SIGTRAPs that are not gdb's: gdb
#    stops for them (a SIGTRAP gdb cannot explain is reported, not passed,
#    and `handle SIGTRAP pass` makes gdb 13 pass its own single-step traps
#    too, which kills the program), so the script passes each one on with
#    `signal SIGTRAP`; the library's handler must then complete the call.
#    Every trap the library counts must be one gdb passed on, and at least
#    2 per toggle that took the int3 protocol are certain (gdb_prog.c; a
#    toggle that finds a thread held by gdb inside the SIGTRAP handler
#    stops the world instead).
# 2. A breakpoint on the tracing site itself (*probe_fn): gdb's int3 is in
#    the bytes stitch would rewrite.  Enabling tracing there must fail
#    with the library's error naming the unexpected byte (cc), not write.
# 3. With tools/gdb/stitch.py, a backtrace from inside three function_graph
#    calls (gdb_graph: each returns to stitch's return trampoline) goes on
#    through the trampoline to the real callers, up to main.  Without it,
#    gdb's backtrace went astray at the first hooked frame.
#   run_gdb.sh GDB GDB_PROG GDB_GRAPH STITCH_PY
set -u
gdb=$1 prog=$2 graph=$3 stitch_py=$4
rounds=50
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-gdb.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
num() { sed -n "s/^$1 *\([0-9][0-9]*\).*/\1/p" "$work/out1" | tail -1; }

# `handle all` leaves SIGTRAP and SIGINT alone; it covers the library's
# quiescence signal (SIGRTMIN+5 unless STITCH_QUIESCE_SIGNAL says otherwise).
cat >"$work/1.gdb" <<'GDB'
set pagination off
set confirm off
handle all nostop noprint pass
set $hits = 0
set $traps = 0
break *probe_fn+5
run
while $_isvoid($_exitcode)
  if $pc == (long)probe_fn + 5
    set $hits = $hits + 1
    continue
  else
    set $traps = $traps + 1
    signal SIGTRAP
  end
end
printf "gdb hits: %d\n", $hits
printf "gdb passed SIGTRAPs: %d\n", $traps
printf "exit code: %d\n", $_exitcode
GDB
"$gdb" -batch -nx -x "$work/1.gdb" --args "$prog" $rounds >"$work/out1" 2>&1
grep -q "^gdb_prog: [0-9]* passed, 0 failed" "$work/out1" || fail "gdb_prog's own checks failed under gdb"
[ "$(num "exit code:")" = 0 ] || fail "gdb_prog did not exit with 0 under gdb"
calls=$(num "probe_fn calls:") hits=$(num "gdb hits:")
[ -n "$calls" ] && [ "$calls" = "$hits" ] || fail "gdb stopped ${hits:-?} times in probe_fn, which was called ${calls:-?} times"
traps=$(num "int3 traps:") passed=$(num "gdb passed SIGTRAPs:")
[ -n "$traps" ] && [ "$traps" = "$passed" ] ||
	fail "the library counted ${traps:-?} int3 traps, gdb passed ${passed:-?} SIGTRAPs on"
# a toggle that met a thread gdb held in the SIGTRAP handler stopped the
# world instead (gdb_prog.c counts those that did not)
int3=$(num "k_work toggles through int3:")
[ "${int3:-0}" -gt 0 ] || fail "no toggle took the int3 protocol"
[ "${traps:-0}" -ge $((2 * ${int3:-1})) ] || fail "only ${traps:-0} int3 traps, at least $((2 * ${int3:-1})) expected"
[ $failed -eq 0 ] && echo "ok: under gdb: $hits breakpoint hits, $passed of stitch's int3 traps passed on, $int3 of $rounds toggles through int3"

cat >"$work/2.gdb" <<'GDB'
set pagination off
set confirm off
handle all nostop noprint pass
break *probe_fn
run
GDB
"$gdb" -batch -nx -x "$work/2.gdb" --args "$prog" 2 >"$work/out2" 2>&1
grep -q "cannot trace probe_fn.*expected a patchable entry.*found cc" "$work/out2" ||
	fail "a gdb breakpoint on the tracing site: no error naming the int3 from stitch_ftrace_register"
[ $failed -eq 0 ] && echo "ok: a breakpoint on the tracing site: refused with a clear error"

cat >"$work/3.gdb" <<GDB
set pagination off
set confirm off
handle all nostop noprint pass
source $stitch_py
break *g_inner+5
run
bt
continue
GDB
"$gdb" -batch -nx -x "$work/3.gdb" --args "$graph" >"$work/out3" 2>&1
grep -q "^gdb_graph: [0-9]* passed, 0 failed" "$work/out3" || fail "gdb_graph's own checks failed under gdb"
# frames 0-6: g_inner, the trampoline, g_mid, the trampoline, g_outer, the trampoline, main
frames=$(sed -n 's/^#\([0-9]\) .* in \([a-z_]*\|<stitch return trampoline>\) (.*/\1 \2/p; s/^#0  \([a-z_]*\) (.*/0 \1/p' "$work/out3" | tr '\n' ',')
want="0 g_inner,1 <stitch return trampoline>,2 g_mid,3 <stitch return trampoline>,4 g_outer,5 <stitch return trampoline>,6 main,"
[ "$frames" = "$want" ] || fail "backtrace through hooked returns: got '$frames', want '$want'"
[ $failed -eq 0 ] && echo "ok: a backtrace through three hooked returns reaches main"

if [ $failed -ne 0 ]; then
	# every run: the first one's failure must not be hidden by the next one's output
	for run in 1 2 3; do
		echo "--- gdb output, run $run (the program's check failures first):" >&2
		grep "check failed" "$work/out$run" | head -5 >&2
		tail -30 "$work/out$run" >&2
	done
fi
exit $failed
