#!/bin/sh
# SPDX-License-Identifier: MIT
# Time added per traced call by `stitch-trace record --graph`, against
# `uftrace record` of the same program (built with -pg for it), in the same
# run.  Not a ctest test (wall-clock numbers need a quiet machine).
#   tests/trace/bench_overhead.sh BUILD_DIR [CALLS]     (default 5e6 x 2 calls)
set -eu
build=$1 n=${2:-5000000}
src=$(cd "$(dirname "$0")" && pwd)/progs/bench_calls.c
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cc=${CC:-gcc}
$cc -O2 -fpatchable-function-entry=5 "$src" -o "$work/calls_stitch"
$cc -O2 -pg "$src" -o "$work/calls_pg"
export STITCH_TRACE_AGENT="$build/tools/trace/libstitch-agent.so"
secs() { s=$(date +%s%N); "$@" >/dev/null 2>"$work/err" || { cat "$work/err"; exit 1; }; e=$(date +%s%N); echo $(( (e - s) / 1000 )); }
base=$(secs "$work/calls_stitch" "$n")
st=$(secs "$build/tools/trace/stitch-trace" record --graph --block -o "$work/s" -- "$work/calls_stitch" "$n")
grep -q " 0 lost" "$work/err" || echo "note: $(tail -1 "$work/err")"
if command -v uftrace >/dev/null; then
	uf=$(secs uftrace record -d "$work/u" "$work/calls_pg" "$n")
else
	uf=
fi
calls=$((2 * n))
echo "untraced:      $base us"
echo "stitch-trace:  $st us, $(( (st - base) * 1000 / calls )) ns added per call"
if [ -n "$uf" ]; then
	echo "uftrace:       $uf us, $(( (uf - base) * 1000 / calls )) ns added per call"
	echo "ratio stitch/uftrace (added time): $(awk "BEGIN { printf \"%.2f\", ($st - $base) / ($uf - $base) }")"
fi
