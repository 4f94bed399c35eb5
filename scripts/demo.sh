#!/usr/bin/env bash
# The main demo: worker threads run through static-key sites while the main
# thread flips the keys live; every thread's view is printed and checked.
# Then stitch-trace records a running multi-threaded program, its tracing
# is refocused live from outside, and the call tree, report and flame
# graph are shown (tools/trace/demo.sh).
# Installs missing Debian packages, builds, runs natively, then the same
# binary's AArch64 and RISC-V 64 builds under qemu-user.
#   scripts/demo.sh [--native-only] [demo options, e.g. --rounds 6 --threads 4]
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
native_only=0
if [ "${1:-}" = "--native-only" ]; then native_only=1; shift; fi
"$root/scripts/install-deps.sh"
"$root/scripts/build.sh" x86_64-gcc >/dev/null
echo "### x86-64 (native)"
"$root/build/x86_64-gcc/examples/keys_demo" "$@"
echo; echo "### stitch-trace: tracing a running program, refocused live (x86-64)"
"$root/tools/trace/demo.sh" x86_64-gcc
if [ $native_only -eq 0 ]; then
  for a in aarch64 riscv64; do
    "$root/scripts/build.sh" $a >/dev/null
    echo; echo "### $a (qemu-user)"
    qemu-$a -L /usr/$a-linux-gnu "$root/build/$a/examples/keys_demo" --quiet "$@"
  done
fi
