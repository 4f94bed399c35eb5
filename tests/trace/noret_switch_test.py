#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""NORET decided by the library across live graph/pause switches.

tests/trace/progs/depth_switch.c ("probe N K") descends N = 1500 calls of
probe_down() and waits at the bottom (it prints "bottom" and reads a line:
the handshake is the program's pipes, no timing).  The library hooks the
returns of the first 1024 calls in flight (its per-thread return stack) and
the agent marks the 477 beyond NORET.  The test pauses and resumes there (or
switches graph off and on): a new graph ops, whose first calls the agent's
own count took for the first of an empty stack - but the old ops' 1024
entries are still on the library's stack, the calls have not returned.
Then the program calls leaf() K times at the bottom, and K times more after
the recursion has returned:
  - the K leaves at the bottom are NORET: the library hooks none of them
    (before stitch_ftrace_return_hooked(), the agent recorded them as
    hooked entries that never exit, and the tree nested each leaf in the
    one before, the leaves after the recursion too);
  - the K leaves after it are entries with exits;
  - in `dump --tree` each group of leaves is flat: all at one depth;
  - before the switch, exactly 1024 entries were hooked (main and
    probe_down) and the rest of probe_down's calls are NORET.

usage: noret_switch_test.py CLI PROG   (env STITCH_TEST_EMULATOR for qemu-user)
"""
import os
import re
import shlex
import shutil
import subprocess
import sys
import tempfile

CLI, PROG = sys.argv[1], sys.argv[2]
EMU = shlex.split(os.environ.get("STITCH_TEST_EMULATOR", ""))
FAILS = []
DEEP = 1500   # probe_down(DEEP): DEEP + 1 calls
LEAVES = 50
LIMIT = 1024  # the library's return stack (STITCH_FTRACE_GRAPH_DEPTH)


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def cli(*args):
    return subprocess.run(EMU + [CLI, *args], capture_output=True, text=True, timeout=300)


def run(work, tag, off, on):
    d = os.path.join(work, tag)
    env = dict(os.environ, STITCH_TRACE_EMULATOR=" ".join(EMU))
    p = subprocess.Popen(EMU + [CLI, "record", "--graph", "-o", d, "--", PROG],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)

    def expect(what):
        line = p.stdout.readline()
        if not line.startswith(what):
            raise RuntimeError(f"{tag}: expected {what!r} from the program, got {line!r}")
        return line

    def live(*args):
        r = subprocess.run(EMU + [CLI, "live", str(pid), *args], capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            raise RuntimeError(f"{tag}: live {' '.join(args)}: {r.stderr.strip()}")

    try:
        pid = int(re.match(r"ready (\d+)", expect("ready")).group(1))
        p.stdin.write(f"probe {DEEP} {LEAVES}\n")
        p.stdin.flush()
        expect("bottom")          # DEEP + 1 calls of probe_down() in flight
        live(*off)
        live(*on)                 # a new graph ops, the old one's entries still stacked
        p.stdin.write("\n")       # the leaves at the bottom, the return, the leaves after
        p.stdin.flush()
        expect("done")
    except RuntimeError as e:
        fail(str(e))
        p.kill()
        p.wait()
        return None
    p.stdin.close()
    rc = p.wait(timeout=300)
    if rc != 0:
        fail(f"{tag}: record exited {rc}")
        return None
    return d


def check(d, what):
    r = cli("dump", d, "--events")
    if r.returncode != 0:
        fail(f"{what}: dump --events: {r.stderr.strip()}")
        return
    # "E pid tid kind gen ts name"
    count = {}
    hooked_before_switch = 0
    for line in r.stdout.splitlines():
        f = line.split(" ", 6)
        if len(f) < 7 or f[0] != "E":
            continue
        kind, gen, name = f[3], int(f[4]), f[6]
        count[(name, kind)] = count.get((name, kind), 0) + 1
        if gen == 0 and kind == "entry":
            hooked_before_switch += 1
    c = lambda name, kind: count.get((name, kind), 0)
    if hooked_before_switch != LIMIT:
        fail(f"{what}: {hooked_before_switch} hooked entries before the switch (expected {LIMIT})")
    if c("probe_down", "entry") + c("probe_down", "noret") != DEEP + 1 or c("probe_down", "noret") == 0:
        fail(f"{what}: probe_down {c('probe_down', 'entry')} entries, {c('probe_down', 'noret')} NORET "
             f"(expected {DEEP + 1} in all, those past the return stack NORET)")
    if c("leaf", "noret") != LEAVES or c("leaf", "entry") != LEAVES or c("leaf", "exit") != LEAVES:
        fail(f"{what}: leaf {c('leaf', 'noret')} NORET, {c('leaf', 'entry')} entries, {c('leaf', 'exit')} exits "
             f"(expected {LEAVES} NORET at the bottom - the library's return stack was still full - "
             f"and {LEAVES} entries with exits after)")

    r = cli("dump", d, "--tree")
    if r.returncode != 0:
        fail(f"{what}: dump --tree: {r.stderr.strip()}")
        return
    # "  " per level; a leaf nested in the one before is one level deeper
    leaves = [(len(l) - len(l.lstrip(" ")), l.strip()) for l in r.stdout.splitlines()
              if l.strip().split(" ")[0] == "leaf"]
    bottom = [ind for ind, text in leaves if "no exit recorded" in text]
    after = [ind for ind, text in leaves if text == "leaf"]
    if len(bottom) != LEAVES or len(after) != LEAVES or len(leaves) != 2 * LEAVES:
        fail(f"{what}: dump --tree shows {len(bottom)} leaves without an exit, {len(after)} with one, "
             f"{len(leaves)} in all (expected {LEAVES}, {LEAVES}, {2 * LEAVES})")
    for group, name in ((bottom, "at the bottom"), (after, "after the recursion")):
        if len(set(group)) > 1:
            fail(f"{what}: the leaves {name} are not flat in dump --tree: depths "
                 f"{sorted(set(i // 2 for i in group))[:5]}... (each nested in the one before)")


def main():
    work = tempfile.mkdtemp(prefix="stitch-noret.")
    os.environ["XDG_RUNTIME_DIR"] = work  # sockets of its own (see live_test.py)
    for off, on in ((("pause",), ("resume",)), (("graph", "off"), ("graph", "on"))):
        what = f"{' '.join(off)}/{' '.join(on)} at the bottom"
        d = run(work, off[0], off, on)
        if d is not None:
            check(d, what)
    if not FAILS:
        shutil.rmtree(work, ignore_errors=True)
        print("ok")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
