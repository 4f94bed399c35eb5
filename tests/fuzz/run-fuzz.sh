#!/bin/sh
# Run one libFuzzer target briefly on a scratch copy of its committed corpus
# (the committed seeds are never modified by a test run).
#   run-fuzz.sh BINARY SEED_DIR WORK_DIR SECONDS [LIBFUZZER_ARGS...]
# Exit status: libFuzzer's (0 clean; non-zero on a crash, leak or broken
# invariant, with the input saved as WORK_DIR/crash-*).
set -eu
bin=$1 seeds=$2 work=$3 secs=${STITCH_FUZZ_SECONDS:-$4}
shift 4
rm -rf "$work"
mkdir -p "$work/corpus"
cp "$seeds"/* "$work/corpus/"
cd "$work"
# -runs bounds the work on a fast machine; -max_total_time bounds the time;
# a fixed -seed keeps a CI run repeatable (STITCH_FUZZ_SEED=0: random).
exec "$bin" -seed="${STITCH_FUZZ_SEED:-1}" -max_total_time="$secs" -runs=50000000 -print_final_stats=1 \
	-artifact_prefix="$work/" "$@" "$work/corpus"
