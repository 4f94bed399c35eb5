#!/bin/sh
# SPDX-License-Identifier: MIT
# stitch-trace in one command: build, record a multi-threaded program,
# refocus the tracing while it runs, then show the replay, the report and
# a flame graph.   tools/trace/demo.sh [BUILD_CONFIG]   (default x86_64-gcc)
set -eu
root=$(cd "$(dirname "$0")/../.." && pwd)
config=${1:-x86_64-gcc}
build=$root/build/$config
[ -x "$build/tools/trace/stitch-trace" ] && [ -x "$build/tests/trace/live_prog" ] ||
	"$root/scripts/build.sh" "$config" >/dev/null
st=$build/tools/trace/stitch-trace
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
out=$build/stitch-trace-demo
mkdir -p "$out"

# live_prog: three threads calling alpha_*, beta_* and gamma_common until
# their standard input closes; it says "ready PID" once all run.
mkfifo "$work/in" "$work/out"
echo "\$ stitch-trace record --graph -F 'alpha_*' -o $out/data -- live_prog &"
"$st" record --graph -F 'alpha_*' -o "$out/data" -- "$build/tests/trace/live_prog" <"$work/in" >"$work/out" &
exec 3>"$work/in" 4<"$work/out"
read -r ready pid <&4
[ "$ready" = ready ]
for cmd in "enable beta_two" "disable alpha_*" "status"; do
	echo "\$ stitch-trace live $out/data $cmd"
	# shellcheck disable=SC2086
	"$st" live "$out/data" $cmd
done
exec 3>&-
cat <&4 >/dev/null # the program's last words, so it never writes into a closed pipe
wait
echo "\$ stitch-trace replay $out/data | head -24"
"$st" replay "$out/data" | head -24
echo "\$ stitch-trace report $out/data"
"$st" report "$out/data"
"$st" flame "$out/data" -o "$out/flame.svg" --title "live_prog (pid $pid)"
"$st" dump "$out/data" --chrome -o "$out/trace.json"
echo "flame graph: $out/flame.svg   Chrome/Perfetto trace: $out/trace.json"
