#!/usr/bin/env bash
# Configure and build one configuration into build/<name>.
#   scripts/build.sh NAME            NAME: x86_64-gcc x86_64-clang aarch64 riscv64
#                                          x86_64-asan x86_64-tsan
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
name=$1
args=(-G Ninja -DBUILD_TESTING=ON)
case "$name" in
  x86_64-gcc)   args+=(-DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++) ;;
  x86_64-clang) args+=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++) ;;
  aarch64|riscv64)
    args+=(-DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-$name.cmake")
    # Recorded patch logs are verified by the host's stitch-check.
    host_check="$root/build/x86_64-gcc/tools/check/stitch-check"
    [ -x "$host_check" ] && args+=(-DSTITCH_HOST_CHECK="$host_check")
    # liburcu for the target (tracing's RCU), built from Debian's source
    args+=("$("$root/scripts/cross-urcu.sh" --cmake-arg "$name")") ;;
  # -O0: also proves the static-branch macros build without optimisation.
  # Without liburcu: every other build uses it, so this one covers the
  # tracing core's fallback RCU (what a build without liburcu-dev gets).
  x86_64-asan)  args+=(-DCMAKE_C_COMPILER=gcc -DCMAKE_CXX_COMPILER=g++ -DCMAKE_BUILD_TYPE=Debug -DSTITCH_SANITIZE=address,undefined
                       -DSTITCH_URCU=OFF) ;;
  x86_64-tsan)  args+=(-DCMAKE_C_COMPILER=clang -DCMAKE_CXX_COMPILER=clang++ -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSTITCH_SANITIZE=thread) ;;
  *) echo "build.sh: unknown configuration '$name'" >&2; exit 2 ;;
esac
cmake -S "$root" -B "$root/build/$name" "${args[@]}" >/dev/null
cmake --build "$root/build/$name"
