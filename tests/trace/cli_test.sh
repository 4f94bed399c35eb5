#!/bin/sh
# SPDX-License-Identifier: MIT
# The CLI's conventions and the never-silent loss accounting.
#   cli_test.sh CLI CALLS_PROG FORK_PROG   (env STITCH_TEST_EMULATOR for qemu-user)
set -u
cli=$1 prog=$2 forker=$3
emu=${STITCH_TEST_EMULATOR:-}
export STITCH_TRACE_EMULATOR="$emu"
work=$(mktemp -d "${TMPDIR:-/tmp}/stitch-trace-cli.XXXXXX") || exit 1
trap 'rm -rf "$work"' EXIT
failed=0
fail() { echo "FAIL: $*" >&2; failed=1; }
# shellcheck disable=SC2086
run() { $emu "$cli" "$@"; }

# --help everywhere: exit 0, a usage line on stdout
for c in "" record live replay report dump flame attach; do
	# shellcheck disable=SC2086
	out=$(run $c --help 2>&1) || fail "'$c --help' failed"
	echo "$out" | grep -q "usage: stitch-trace" || fail "'$c --help' prints no usage"
done
# usage errors: exit 2 with a hint
for args in "" "bogus" "record" "record --depth 3 -- true" "record --buffer 1000 -- true" \
	"record --fork maybe -- true" "dump $work" "dump $work --chrome --tree" "flame $work" \
	"report -s speed $work" "live" "live 1 frobnicate" "live 1 enable" "live 1 enable a\ b" \
	"live 1 enable !x" "live 1 graph sideways" "attach" "attach notapid" "attach --depth 3 999999999"; do
	# shellcheck disable=SC2086
	run $args >/dev/null 2>"$work/err"
	rc=$?
	[ $rc -eq 2 ] || fail "'$args' exited $rc, expected 2"
	[ -s "$work/err" ] || fail "'$args' printed no error"
done
# globs beyond the agent's limits: a usage error before the program runs
# (the agent refused them and the program ran untraced, "nothing was recorded")
long=$(printf '%0257d' 0)
run record -F "$long" -o "$work/lim" -- "$prog" 1 >/dev/null 2>"$work/err"
rc=$?
[ $rc -eq 2 ] && grep -q "longer than 256" "$work/err" || fail "a 257-character glob: rc $rc, $(cat "$work/err")"
many=
for i in $(seq 65); do many="$many -F g$i"; done
# shellcheck disable=SC2086
run record $many -o "$work/lim" -- "$prog" 1 >/dev/null 2>"$work/err"
rc=$?
[ $rc -eq 2 ] && grep -q "more than 64" "$work/err" || fail "65 globs: rc $rc, $(cat "$work/err")"
[ ! -e "$work/lim" ] || fail "a refused record made its directory"
# a bad option is said once, in our words (getopt's own line came first)
for args in "record -o" "record --output" "record -gx -- true" "record --bogus -- true" "report -s" \
	"attach --depth" "dump --nope"; do
	# shellcheck disable=SC2086
	run $args >/dev/null 2>"$work/err"
	[ "$(grep -c "^stitch-trace" "$work/err")" -eq 1 ] || fail "'$args': not one message: $(cat "$work/err")"
done
# a program that cannot be run: exit 127 with one message (under qemu-user
# the emulator says it and exits 1), and no empty output directory left
# behind (an existing one stays)
run record -o "$work/never" -- "$work/no-such-program" >/dev/null 2>"$work/err"
rc=$?
[ -e "$work/never" ] && fail "record of a missing program left $work/never behind"
if [ -z "$emu" ]; then
	[ $rc -eq 127 ] || fail "record of a missing program exited $rc, expected 127"
	[ "$(wc -l <"$work/err")" -eq 1 ] || fail "record of a missing program: not one message: $(cat "$work/err")"
fi
mkdir "$work/kept"
run record -o "$work/kept" -- "$work/no-such-program" >/dev/null 2>&1
[ -d "$work/kept" ] || fail "record of a missing program removed a directory it had not made"
# failures: exit 1 with a message
for args in "replay $work/missing" "report $work" "live 999999999 status" "live $work status"; do
	# shellcheck disable=SC2086
	run $args >/dev/null 2>"$work/err"
	rc=$?
	[ $rc -eq 1 ] || fail "'$args' exited $rc, expected 1"
	[ -s "$work/err" ] || fail "'$args' printed no error"
done

# Overload: a 16-event ring loses events; every event is either recorded
# or counted as lost, exactly: main + N mid + N leaf calls, entry and exit.
n=20000
run record --graph --buffer 16 -o "$work/d" -- "$prog" $n >/dev/null 2>"$work/err" || fail "record failed"
grep -q " lost" "$work/err" || fail "record did not report losses"
grep -q " 0 lost" "$work/err" && fail "a 16-event ring lost nothing: the test shows nothing"
run dump "$work/d" --events >"$work/ev" || fail "dump --events failed"
total=$(awk '$1 == "E" { if ($4 == "lost") s += $7; else s += 1 } END { print s }' "$work/ev")
[ "$total" = $((4 * n + 2)) ] || fail "$total events recorded or lost, expected $((4 * n + 2))"
run report "$work/d" | grep -q "LOST" || fail "report does not mention the loss"
run report --no-demangle "$work/d" >/dev/null || fail "report --no-demangle failed"
run replay "$work/d" | grep -q "LOST" || fail "replay does not mention the loss"

# A process that did not exit cleanly (_exit: no END record): record counts
# its losses from the loss markers, as report does (it said "0 lost" while
# report showed millions).
run record --graph --buffer 16 -o "$work/ux" -- "$prog" 2000000 _exit >/dev/null 2>"$work/err"
rec_lost=$(sed -n 's/.* events, at least \([0-9]*\) lost.*/\1/p' "$work/err")
rep_lost=$(run report "$work/ux" 2>/dev/null | sed -n 's/^# \([0-9]*\) events were LOST.*/\1/p')
[ -n "$rec_lost" ] && [ "$rec_lost" = "${rep_lost:-0}" ] && [ "$rec_lost" -gt 0 ] ||
	fail "unclean exit: record says '$(grep ' lost' "$work/err")', report says ${rep_lost:-no} LOST"

# A newline in the program's arguments stays inside the "# process" line,
# shown as \n (it split the header in two).
run record -o "$work/nl" -- "$prog" 10 "$(printf 'x\ny')" >/dev/null 2>"$work/err" || fail "record with a newline argument failed"
run replay "$work/nl" >"$work/o" 2>&1 || fail "replay failed"
grep -q '^# process [0-9]* (.* 10 x\\ny)$' "$work/o" || fail "newline argument: header $(head -2 "$work/o")"

# flame: a title with control characters and bytes that are not UTF-8
# still gives well-formed XML (an ESC in --title made the SVG unreadable).
if command -v python3 >/dev/null; then
	run flame "$work/d" -o "$work/t.svg" --title "$(printf 'a\001b\033[31mc\tx\377y\342\202 <&>')" ||
		fail "flame --title failed"
	python3 -c 'import sys, xml.dom.minidom; xml.dom.minidom.parse(sys.argv[1])' "$work/t.svg" 2>"$work/err" ||
		fail "flame --title with control characters: invalid SVG: $(tail -1 "$work/err")"
fi

# A ring that cannot be mapped (a 2 GiB ring under a 1 GiB address-space
# limit): every event lost, and said so - not "rings full".
if [ -z "$emu" ] && command -v prlimit >/dev/null; then
	prlimit --as=1073741824 "$cli" record --buffer 67108864 -o "$work/nomap" -- "$prog" 100 >/dev/null 2>"$work/err"
	grep -q "ring could not be mapped" "$work/err" || fail "unmappable ring: $(cat "$work/err")"
	grep -q "rings full" "$work/err" && fail "unmappable ring reported as rings full"
fi

# A -F glob that matches no function: said, and the other rules still
# apply (it traced nothing at all, silently: the library refuses a filter
# one of whose patterns selects nothing).
run record -F leaf -F 'zzz_no_such*' -o "$work/f" -- "$prog" 100 >/dev/null 2>"$work/err" || fail "record -F leaf -F zzz failed"
grep -q "'zzz_no_such\*' matches no instrumented function" "$work/err" || fail "no word about the glob that matches nothing"
run dump "$work/f" --events >"$work/fev" || fail "dump --events failed"
leaf=$(awk '$1 == "E" && $4 == "entry" && $7 == "leaf"' "$work/fev" | wc -l)
[ "$leaf" -eq 100 ] || fail "-F leaf -F zzz_no_such*: $leaf entries of leaf, expected 100"

# A second record into a directory still being recorded into is refused
# (it deleted the first's file).  Decided only when the first still runs
# once the second returned.
calls=3000000
[ -n "$emu" ] && calls=100000 # qemu: a few seconds as well
run record --buffer 16 -o "$work/same" -- "$prog" $calls >/dev/null 2>&1 &
first=$!
i=0
# polls for the first's file (a bound, not a wait standing in for it: if it
# never comes, the second takes the directory and the first is refused)
while ! ls "$work/same"/trace-*.dat >/dev/null 2>&1 && [ $i -lt 1200 ]; do sleep 0.05; i=$((i + 1)); done
run record -o "$work/same" -- "$prog" 10 >/dev/null 2>"$work/err2"
rc=$?
if kill -0 $first 2>/dev/null; then
	[ $rc -eq 1 ] && grep -q "is being recorded into" "$work/err2" ||
		fail "a second record into a directory being recorded into: rc $rc, $(cat "$work/err2")"
fi
wait $first || fail "the first record into $work/same failed"
run report "$work/same" >/dev/null 2>&1 || fail "the first recording in $work/same is not readable"
# The directory belongs to its record until that has read it back, not
# only while the program runs: in between, a second record found no live
# agent and deleted the finished file (aarch64 CI).  That window, made
# every time: the program runs through a wrapper (the emulator hook, with
# the real emulator inside it, if any) that, once the program has exited
# and before the first record reads back, runs a second record into the
# same directory.  It must be refused and change nothing.
cat >"$work/then-second.sh" <<EOF
#!/bin/sh
[ "\$1" = -E ] && { e=\$2; shift 2; }
if [ -n "$emu" ]; then $emu -E "\$e" "\$@"; else env "\$e" "\$@"; fi
rc=\$?
STITCH_TRACE_EMULATOR="$emu" $emu "$cli" record -o "$work/win" -- "$prog" 10 >/dev/null 2>"$work/win-err2"
echo \$? >"$work/win-rc2"
exit \$rc
EOF
chmod +x "$work/then-second.sh"
STITCH_TRACE_EMULATOR="$work/then-second.sh" run record -o "$work/win" -- "$prog" 100 >/dev/null 2>"$work/win-err1" ||
	fail "a record whose directory another record tried meanwhile failed: $(cat "$work/win-err1")"
[ "$(cat "$work/win-rc2" 2>/dev/null)" = 1 ] && grep -q "being recorded into by another stitch-trace" "$work/win-err2" ||
	fail "a second record between the program's exit and its record's read-back: rc $(cat "$work/win-rc2" 2>/dev/null), $(cat "$work/win-err2" 2>/dev/null)"
run dump "$work/win" --events >"$work/winev" 2>/dev/null || fail "the first recording in $work/win is not readable"
leaf=$(awk '$1 == "E" && $4 == "entry" && $7 == "leaf"' "$work/winev" | wc -l)
[ "$leaf" -eq 100 ] || fail "the first recording in $work/win: $leaf entries of leaf, expected 100"

# Damaged files (the reader, tools/trace/reader.c): rejected with a message
# and exit 1 when not readable at all; read up to the damage, with a
# message, when a record is damaged or cut short.  The file is never changed.
f=$(ls "$work"/d/trace-*.dat | head -1)
mkdir -p "$work/bad"
bad=$work/bad/trace-1.dat
damaged() { # damaged WHAT EXPECTED_RC MESSAGE
	cp "$bad" "$work/before"
	run replay "$work/bad" >"$work/out" 2>"$work/err"
	rc=$?
	[ $rc -eq "$2" ] || fail "$1: replay exited $rc, expected $2"
	grep -q "$3" "$work/err" || fail "$1: no '$3' message: $(cat "$work/err")"
	cmp -s "$bad" "$work/before" || fail "$1: the file was changed"
}
echo "not a trace" >"$bad"
damaged "a text file" 1 "not a stitch trace file"
: >"$bad"
damaged "an empty file alone" 1 "empty (its process died"
# beside a readable file (a fork child killed before its header): skipped,
# the others read (it made the whole recording unreadable)
cp "$f" "$work/bad/trace-2.dat"
damaged "an empty file beside a good one" 0 "empty (its process died"
grep -q "^# process" "$work/out" || fail "an empty file beside a good one: the good one was not read"
rm -f "$work/bad/trace-2.dat"
cp "$f" "$bad"
printf '\002' | dd of="$bad" bs=1 seek=8 conv=notrunc 2>/dev/null
damaged "format version 2" 1 "format version 2"
cp "$f" "$bad"
printf '\003' | dd of="$bad" bs=1 seek=68 conv=notrunc 2>/dev/null # the first record's size
damaged "a record size not a multiple of 8" 0 "damaged record at offset 64"
head -c $(($(wc -c <"$f") - 5)) "$f" >"$bad"
damaged "a file cut short" 0 "truncated record"
grep -q "^# process" "$work/out" || fail "a file cut short: nothing read before the cut"

# A fork child still running when record returns (record waits for the
# program only) is "still running", not "did not exit cleanly".  The child
# reads its stdin, a fifo this shell keeps open for writing, until EOF.
# Not under qemu-user: 7.2 aborts in a fork child of a multi-threaded guest
# that creates a thread, and the child's agent starts its writer thread
# (docs/stitch-trace.md, Tests: fork with follow is native only).
if [ -n "$emu" ]; then
	echo "not run under $emu: a fork child that outlives record (qemu-user aborts in the child)"
else
	mkfifo "$work/hold" || fail "mkfifo"
	exec 3<>"$work/hold"
	# shellcheck disable=SC2086
	child=$(run record -o "$work/outlive" -- "$forker" outlive <"$work/hold" 3>&- 2>"$work/outlive.err" | sed -n 's/^child //p')
	grep -q "1 process (forked by the program) still running" "$work/outlive.err" ||
		fail "a running fork child: $(cat "$work/outlive.err")"
	grep -q "did not exit cleanly" "$work/outlive.err" && fail "a running fork child reported as not exited cleanly"
	exec 3>&-
	# the child sees EOF and exits; wait for it before the directory goes
	[ -n "$child" ] || fail "forker outlive printed no child pid"
	while [ -n "$child" ] && kill -0 "$child" 2>/dev/null; do :; done
fi

[ $failed -eq 0 ] && echo "ok: cli"
exit $failed
