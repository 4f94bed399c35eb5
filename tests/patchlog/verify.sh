#!/bin/sh
# Run a program with STITCH_PATCH_LOG, then verify every operation it
# recorded (the exact bytes written, with their syncs) with stitch-check.
#   verify.sh STITCH_CHECK LOG_DIR PROGRAM [ARGS...]   (PROGRAM may be an emulator + binary)
set -u
check=$1 dir=$2
shift 2
rm -rf "$dir" && mkdir -p "$dir" || exit 1
STITCH_PATCH_LOG="$dir" "$@" || { echo "patchlog: the program failed"; exit 1; }
n=$(ls "$dir"/*.model 2>/dev/null | wc -l)
if [ "$n" -eq 0 ]; then
  echo "patchlog: no operation was recorded"; exit 1
fi
out=$("$check" --expect "$dir"/*.model); rc=$?
echo "$out" | awk '{print $2}' | sort | uniq -c
[ $rc -eq 0 ] || { echo "$out" | grep -v "SAFE (expected SAFE)" | head -20; exit 1; }
echo "patchlog: $n recorded models verified"
