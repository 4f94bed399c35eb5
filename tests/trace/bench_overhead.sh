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
# The floor: a tracer that timestamps entry and exit reads the clock twice
# per call.  What two reads of the CPU counter (what the agent's callbacks
# use, tools/trace/agent.c) cost here, measured alone.
cat >"$work/floor.c" <<'EOC'
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
static inline uint64_t counter(void)
{
#if defined(__x86_64__)
	uint32_t lo, hi;
	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
#else
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return (uint64_t)t.tv_nsec;
#endif
}
int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 10000000;
	struct timespec a, b;
	uint64_t sum = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (long i = 0; i < n; i++)
		sum += counter() - counter();
	clock_gettime(CLOCK_MONOTONIC, &b);
	double ns = ((double)(b.tv_sec - a.tv_sec) * 1e9 + (double)(b.tv_nsec - a.tv_nsec)) / (double)n;
	printf("%.1f%s\n", ns, sum == 42 ? " " : "");
	return 0;
}
EOC
$cc -O2 "$work/floor.c" -o "$work/floor"
echo "floor: two CPU-counter reads per call cost $("$work/floor" "$n") ns here (any tracer timestamping entry and exit pays them)"

