#!/usr/bin/env bash
# Static analysis of src/ and tools/check/: clang-tidy (checks and the reason
# for every exclusion in .clang-tidy) and cppcheck, both driven by the
# compile database of a clang configuration in build/lint (configured, not
# built).  Prints every finding; exit status 0 only when both are clean.
#   scripts/lint.sh
#
# cppcheck flags:
#   --enable=warning,performance,portability  real defects and portability
#       traps; "style" is left out (it is taste: variable scope, const
#       parameters) and so is "information" (missing system headers).
#   -D__x86_64__ -D__linux__ -D__GNUC__  the configuration the database was
#       made for (-D__aarch64__, -D__riscv -D__riscv_xlen=64 for the cross
#       ones): cppcheck is not the compiler and otherwise also tries
#       configurations that end at the "unsupported architecture" #errors.
#   --inline-suppr  findings that are false positives are suppressed on the
#       line with `// cppcheck-suppress ID` and a comment saying why.
#   --error-exitcode=1  any finding fails.
# The host database has the core, every insn.c and the host's arch files;
# the AArch64 and RISC-V arch files come from the cross configurations'
# databases (build/lint-<arch>, configured with cmake/toolchain-<arch>.cmake;
# clang-tidy takes the target from the cross compiler's name), skipped
# with a notice if that cross compiler is missing.
set -uo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
build="$root/build/lint"
for tool in clang-tidy-14 cppcheck jq; do
  command -v "$tool" >/dev/null || { echo "lint.sh: $tool not found" >&2; exit 2; }
done
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_C_COMPILER=clang -DCMAKE_EXPORT_COMPILE_COMMANDS=ON \
  -DBUILD_TESTING=OFF >/dev/null || exit 2
# The database restricted to the analysed trees.
jq --arg src "$root/src/" --arg chk "$root/tools/check/" \
  '[.[] | select((.file | startswith($src)) or (.file | startswith($chk)))]' \
  "$build/compile_commands.json" > "$build/lint_commands.json" || exit 2
files=$(jq -r '.[].file' "$build/lint_commands.json" | sort -u)

status=0
# tidy DB FILES...: clang-tidy over FILES with the database in DB.
tidy() {
  local db=$1; shift
  local out
  out=$(printf '%s\n' "$@" | nice xargs -P2 -n4 clang-tidy-14 -p "$db" --quiet 2>/dev/null)
  local rc=$?
  if [ $rc -ne 0 ] || echo "$out" | grep -q "warning:\|error:"; then
    echo "$out"
    return 1
  fi
}
# cppcheck_db DB DEFINE...: cppcheck over a database, as for the compiler
# that predefines DEFINE... (NAME or NAME=VALUE).
cppcheck_db() {
  local db=$1; shift
  local defs=()
  for d in "$@"; do defs+=("-D$d"); done
  nice cppcheck --project="$db" --enable=warning,performance,portability \
    "${defs[@]}" -D__linux__ -D__GNUC__ --inline-suppr --error-exitcode=1 --quiet -j2 \
    --template='{file}:{line}: {severity}: {message} [{id}]'
}

echo "--- clang-tidy, host ($(echo "$files" | wc -l) files)"
# shellcheck disable=SC2086 # one path per word
if tidy "$build" $files; then echo "clang-tidy: clean"; else echo "clang-tidy: findings (above)"; status=1; fi
echo "--- cppcheck, host"
if cppcheck_db "$build/lint_commands.json" __x86_64__; then echo "cppcheck: clean"; else
  echo "cppcheck: findings (above)"; status=1; fi

for arch in aarch64 riscv64; do
  cc=$arch-linux-gnu-gcc
  if ! command -v "$cc" >/dev/null; then
    echo "--- $arch: $cc not found, its arch files are not analysed"
    continue
  fi
  xbuild="$root/build/lint-$arch"
  cmake -S "$root" -B "$xbuild" -G Ninja -DCMAKE_TOOLCHAIN_FILE="$root/cmake/toolchain-$arch.cmake" \
    -DCMAKE_EXPORT_COMPILE_COMMANDS=ON -DBUILD_TESTING=OFF >/dev/null || exit 2
  jq --arg dir "$root/src/arch/$arch/" \
    '[.[] | select((.file | startswith($dir)) and (.file | endswith("/insn.c") | not))]' \
    "$xbuild/compile_commands.json" > "$xbuild/lint_commands.json" || exit 2
  xfiles=$(jq -r '.[].file' "$xbuild/lint_commands.json" | sort -u)
  defines=(__aarch64__)
  [ "$arch" = riscv64 ] && defines=(__riscv __riscv_xlen=64)
  echo "--- clang-tidy, $arch ($(echo "$xfiles" | wc -l) files)"
  # shellcheck disable=SC2086
  if tidy "$xbuild" $xfiles; then echo "clang-tidy $arch: clean"; else
    echo "clang-tidy $arch: findings (above)"; status=1; fi
  echo "--- cppcheck, $arch"
  if cppcheck_db "$xbuild/lint_commands.json" "${defines[@]}"; then echo "cppcheck $arch: clean"; else
    echo "cppcheck $arch: findings (above)"; status=1; fi
done
exit $status
