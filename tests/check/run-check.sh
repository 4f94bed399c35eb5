#!/bin/sh
# Driver for the stitch-check tests registered in tests/check/CMakeLists.txt.
# usage: run-check.sh cli|malformed|enumerate|budget|spin|patchlog STITCH_CHECK MODELS_DIR TEST_DIR [PROG]
set -u
what=$1 sc=$2 models=$3 here=$4
tmp=${TMPDIR:-/tmp}/stitch-check-test.$$
mkdir -p "$tmp"
trap 'rm -rf "$tmp"' EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }

case $what in
cli)
	# exit 0: only SAFE models
	"$sc" "$models/x86-int3-call.model" "$models/aarch64-static-key.model" >/dev/null
	[ $? -eq 0 ] || fail "SAFE models must exit 0"
	# exit 1: one UNSAFE model among SAFE ones, with a counterexample
	"$sc" "$models/x86-int3-call.model" "$models/x86-int3-call-nosync2.model" >"$tmp/out"
	[ $? -eq 1 ] || fail "an UNSAFE model must exit 1"
	grep -q "shortest counterexample" "$tmp/out" || fail "UNSAFE without counterexample"
	grep -q "torn fetch" "$tmp/out" || fail "nosync2 should be a torn fetch"
	# exit 2 beats 1
	"$sc" "$models/x86-int3-call-nosync2.model" "$here/malformed/no-arch.model" >/dev/null 2>&1
	[ $? -eq 2 ] || fail "a malformed model must exit 2"
	# every UNSAFE model yields a non-empty counterexample in JSON
	for m in "$models"/*.model; do
		grep -q '^# expect: UNSAFE' "$m" || continue
		"$sc" --json "$m" >"$tmp/j"
		grep -q '"verdict":"UNSAFE"' "$tmp/j" || fail "$m: not UNSAFE"
		grep -q '"counterexample":\["' "$tmp/j" || fail "$m: no counterexample"
	done
	# mutation: removing the quiescence wait from a SAFE model flips it
	sed '/^  quiesce /d' "$models/x86-five-nops-quiesce.model" >"$tmp/mut.model"
	"$sc" "$tmp/mut.model" >/dev/null
	[ $? -eq 1 ] || fail "x86-five-nops-quiesce without quiesce must be UNSAFE"
	# mutation: making the riscv jump label straddle flips it
	sed '/^        \.align 4$/d' "$models/riscv-static-key.model" >"$tmp/mut2.model"
	"$sc" "$tmp/mut2.model" >/dev/null
	[ $? -eq 1 ] || fail "riscv static key without .align 4 must be UNSAFE"
	# `rewind … on quiesce LABEL`: the replay of a quiescence reaches a
	# preempted reader, and only at its own quiesce step
	q="$models/riscv-retarget-quiesce-rewind.model"
	sed '/^rewind /d' "$q" >"$tmp/q1.model"
	sed 's/ on quiesce replay$/ on sync/' "$q" >"$tmp/q2.model"
	sed 's/ on quiesce replay$/ on quiesce done/' "$q" >"$tmp/q3.model"
	for k in 1 2 3; do
		"$sc" "$tmp/q$k.model" >"$tmp/out"
		[ $? -eq 1 ] || fail "riscv-retarget-quiesce-rewind mutant $k must be UNSAFE"
	done
	sed 's/ on quiesce replay$/ on quiesce/' "$q" >"$tmp/q4.model"
	"$sc" "$tmp/q4.model" >/dev/null || fail "a rewind at every quiesce must keep it SAFE"
	# --expect reports a mismatch with status 1
	sed 's/^# expect: SAFE/# expect: UNSAFE/' "$models/aarch64-static-key.model" >"$tmp/wrong.model"
	"$sc" --expect "$tmp/wrong.model" >"$tmp/out"
	[ $? -eq 1 ] || fail "--expect must fail on a wrong expectation"
	grep -q MISMATCH "$tmp/out" || fail "--expect must say MISMATCH"
	;;
malformed)
	for m in "$here"/malformed/*.model; do
		line=$(sed -n 's/^# error-line: *\([0-9]*\).*/\1/p' "$m")
		"$sc" "$m" >/dev/null 2>"$tmp/err"
		rc=$?
		[ $rc -eq 2 ] || fail "$m: exit $rc, expected 2"
		grep -q "^$m:$line: error: " "$tmp/err" || fail "$m: expected '$m:$line: error:', got: $(cat "$tmp/err")"
	done
	;;
enumerate)
	# seed 004's table, with the replay rewind delivered by every sync
	"$sc" --enumerate "$models/riscv-retarget-rewind.model" >"$tmp/t"
	[ $? -eq 0 ] || fail "the rewind model must have no unsafe execution"
	for row in "fff04        -- updated" "ff0f4        -- impossible" "ff04f        -- updated" \
		   "0fff4        -- impossible" "04fff        -- old"; do
		grep -q -- "$row" "$tmp/t" || fail "enumeration lacks '$row'"
	done
	grep -q "would be ff0f04 (updated)" "$tmp/t" || fail "ff0f4 must resolve to ff0f04"
	# without the rewind, "0fff4" (AUIPC, then JALR' after three syncs) is unsafe
	"$sc" --enumerate "$models/riscv-retarget-norewind.model" >"$tmp/t"
	[ $? -eq 1 ] || fail "the no-rewind enumeration must report unsafe executions"
	grep -q -- "0fff4        -- UNSAFE" "$tmp/t" || fail "0fff4 must be UNSAFE without rewind"
	"$sc" --enumerate --json "$models/riscv-retarget-rewind.model" | grep -q '"schedule":"fff04"' ||
		fail "--enumerate --json"
	;;
budget)
	# Every shipped model stays within a budget of explored states: issue
	# 5's "under one second each", as a count that does not depend on the
	# machine or its load (a time limit here failed under a loaded CI).
	# The largest model explores ~67 000 states; the checker goes through
	# 300 000-400 000 a second on this machine (bench/run prints both), so
	# 150 000 states is about half a second.  A model above it needs a
	# reduction, or the budget a measured reason to grow.
	budget=150000
	for m in "$models"/*.model; do
		"$sc" --json "$m" >"$tmp/j"
		st=$(sed -n 's/.*"states":\([0-9]*\).*/\1/p' "$tmp/j")
		[ -n "$st" ] || fail "$m: no state count in the JSON"
		[ "${st:-0}" -le $budget ] || fail "$m explores $st states, over the budget of $budget"
	done
	;;
spin)
	# Independent cross-check: translate the models listed in
	# spin-models.txt to Promela, verify them with spin, and require the
	# same verdict.
	command -v spin >/dev/null 2>&1 || { echo "spin not installed: skipped"; exit 77; }
	n=0
	cd "$tmp" || fail "cd $tmp"
	for name in $(grep -v "^#" "$here/spin-models.txt"); do
		m="$models/$name.model"
		"$sc" --promela "$m" >model.pml || fail "$m: no Promela translation"
		rm -f pan pan.* model.pml.trail
		spin -a model.pml >/dev/null || fail "$m: spin -a failed"
		${CC:-cc} -O1 -w -DSAFETY -o pan pan.c || fail "$m: cannot compile pan.c"
		./pan -m1000000 >pan.out 2>&1
		errors=$(sed -n 's/.*errors: \([0-9]*\).*/\1/p' pan.out)
		[ -n "$errors" ] || fail "$m: pan produced no verdict"
		grep -q "max search depth too small" pan.out && fail "$m: pan search depth too small"
		"$sc" "$m" >/dev/null
		rc=$?
		if [ "$errors" -eq 0 ]; then spin_v=SAFE; else spin_v=UNSAFE; fi
		if [ $rc -eq 0 ]; then sc_v=SAFE; else sc_v=UNSAFE; fi
		[ "$spin_v" = "$sc_v" ] || fail "$m: stitch-check says $sc_v, spin says $spin_v"
		echo "$(basename "$m"): $sc_v (spin agrees)"
		n=$((n + 1))
	done
	[ $n -ge 3 ] || fail "only $n models were cross-checked with spin"
	;;
patchlog)
	prog=$5
	"$prog" "$tmp/log" || fail "patch_log_test failed"
	n=$(ls "$tmp/log"/*.model 2>/dev/null | wc -l)
	[ "$n" -eq 2 ] || fail "expected 2 recorded operations, found $n"
	first=$(ls "$tmp/log"/*.model | sort | head -1)
	second=$(ls "$tmp/log"/*.model | sort | tail -1)
	grep -q "int3" "$first" || fail "operations recorded out of order"
	"$sc" "$first" >"$tmp/out" || { cat "$tmp/out"; fail "recorded int3 protocol must be SAFE"; }
	"$sc" "$second" >"$tmp/out"
	[ $? -eq 1 ] || fail "recorded plain 5-byte store must be UNSAFE"
	grep -q "torn fetch" "$tmp/out" || fail "plain store should tear"
	;;
*)
	fail "unknown test $what"
	;;
esac
exit 0
