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
#       made for: cppcheck is not the compiler and otherwise also tries
#       configurations that end at the "unsupported architecture" #errors.
#   --inline-suppr  findings that are false positives are suppressed on the
#       line with `// cppcheck-suppress ID` and a comment saying why.
#   --error-exitcode=1  any finding fails.
# Only the host architecture's files are in the database: the AArch64 and
# RISC-V arch files (other than insn.c, which every host builds) are not
# analysed here.
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
echo "--- clang-tidy ($(echo "$files" | wc -l) files)"
tidy_out=$(echo "$files" | nice xargs -P2 -n4 clang-tidy-14 -p "$build" --quiet 2>/dev/null)
tidy_rc=$?
if [ $tidy_rc -ne 0 ] || echo "$tidy_out" | grep -q "warning:\|error:"; then
  echo "$tidy_out"
  echo "clang-tidy: findings (above)"
  status=1
else
  echo "clang-tidy: clean"
fi

echo "--- cppcheck"
if ! nice cppcheck --project="$build/lint_commands.json" --enable=warning,performance,portability \
    -D__x86_64__ -D__linux__ -D__GNUC__ --inline-suppr --error-exitcode=1 --quiet -j2 \
    --template='{file}:{line}: {severity}: {message} [{id}]'; then
  echo "cppcheck: findings (above)"
  status=1
else
  echo "cppcheck: clean"
fi
exit $status
