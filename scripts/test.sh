#!/usr/bin/env bash
# The whole test suite: every configuration, all three architectures
# (x86-64 natively, AArch64 and RISC-V 64 under qemu-user), plus sanitizer
# builds.  Installs missing Debian packages first.
#   scripts/test.sh [CONFIG...]     (default: all configurations, and lint)
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
"$root/scripts/install-deps.sh" || exit 1

configs=("$@")
[ ${#configs[@]} -gt 0 ] || configs=(x86_64-gcc x86_64-clang aarch64 riscv64 x86_64-asan x86_64-tsan lint)

mkdir -p "$root/build"
total_pass=0 total_fail=0 failed_configs=()
for c in "${configs[@]}"; do
  # `lint` is no build: clang-tidy and cppcheck over src/ and tools/check/
  # (scripts/lint.sh); it counts as one test, failed only by a finding.
  if [ "$c" = lint ]; then
    echo "=== lint: clang-tidy, cppcheck"
    if out=$("$root/scripts/lint.sh" 2>&1); then
      echo "$out" | grep -E ": clean$"
      total_pass=$((total_pass + 1))
    else
      echo "$out" | tail -200
      echo "=== lint: FINDINGS"
      failed_configs+=("lint"); total_fail=$((total_fail + 1))
    fi
    continue
  fi
  echo "=== $c: build"
  if ! "$root/scripts/build.sh" "$c" > "$root/build/$c.build.log" 2>&1; then
    mkdir -p "$root/build"; tail -40 "$root/build/$c.build.log"
    echo "=== $c: BUILD FAILED"
    failed_configs+=("$c (build)"); total_fail=$((total_fail + 1)); continue
  fi
  echo "=== $c: test"
  ctest_args=(--test-dir "$root/build/$c" --output-on-failure)
  # Sanitizer builds skip what cannot run under them (see tests/CMakeLists.txt).
  case "$c" in
    # The checker is a single-threaded host tool: TSan has nothing to add;
    # the spin cross-check (30 s) runs once, in the gcc build.
    x86_64-tsan) ctest_args+=(-LE '^check$') ;;
    x86_64-gcc) ;;
    *) ctest_args+=(-E '^check-spin$') ;;
  esac
  out=$(ctest "${ctest_args[@]}" -j2 2>&1); rc=$?
  echo "$out" | grep -E "^ *[0-9]+/[0-9]+ Test|tests passed|Errors while|\*\*\*|check failed" || true
  pass=$(echo "$out" | sed -n 's/^[0-9]*% tests passed, \([0-9]*\) tests failed out of \([0-9]*\).*/\2 \1/p' | tail -1)
  if [ -n "$pass" ]; then
    set -- $pass
    total_pass=$((total_pass + $1 - $2)); total_fail=$((total_fail + $2))
  fi
  if [ $rc -ne 0 ]; then
    echo "$out" | tail -60
    failed_configs+=("$c")
  fi
done
echo
echo "configurations: ${configs[*]}"
[ ${#failed_configs[@]} -eq 0 ] || echo "failed: ${failed_configs[*]}"
echo "$total_pass passed, $total_fail failed"
[ ${#failed_configs[@]} -eq 0 ]
