#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The agent's per-thread depth count across live graph/pause switches.

tests/trace/progs/depth_switch.c descends 600 calls of down() and waits at
the bottom; the test switches graph off (or pauses) there, lets the calls
return (the library reports none of those returns: the ops is gone), switches
graph on (or resumes), and has the program descend 600 calls of final_down().
Those 600 are the only hooked calls in flight then, so:
  - with --depth 5 exactly five final_down entries (and exits) are recorded
    (the count drifted by 600: none was);
  - without --depth, all 600 entries and exits and no NORET (the count
    drifted past the library's 1024-entry return stack: 176+ NORET).
The trace file is parsed here (tools/trace/format.h), not through a reader.

usage: depth_switch_test.py CLI PROG   (env STITCH_TEST_EMULATOR for qemu-user)
"""
import glob
import os
import re
import shlex
import shutil
import struct
import subprocess
import sys
import tempfile

CLI, PROG = sys.argv[1], sys.argv[2]
EMU = shlex.split(os.environ.get("STITCH_TEST_EMULATOR", ""))
FAILS = []
DEEP = 600
EV_ENTRY, EV_EXIT, EV_NORET = 1, 2, 5


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def events(d):
    """(name -> {kind: count}) over every trace file of the directory."""
    out = {}
    for path in glob.glob(os.path.join(d, "trace-*.dat")):
        data = open(path, "rb").read()
        names, evs = {}, []
        off = struct.unpack_from("<I", data, 12)[0]  # header_size
        while off + 8 <= len(data):
            typ, size = struct.unpack_from("<II", data, off)
            p = off + 8
            if typ == 1:  # SYM
                addr, n = struct.unpack_from("<QQ", data, p)
                names[addr] = data[p + 16:p + 16 + n].split(b"\0")[0].decode()
            elif typ == 2:  # EVENTS
                _, count = struct.unpack_from("<II", data, p)
                for k in range(count):
                    _, ip, kind, _ = struct.unpack_from("<QQII", data, p + 8 + 24 * k)
                    evs.append((ip, kind))
            off = p + size
        for ip, kind in evs:
            c = out.setdefault(names.get(ip, hex(ip)), {})
            c[kind] = c.get(kind, 0) + 1
    return out


def run(work, tag, options, off, on):
    d = os.path.join(work, tag)
    env = dict(os.environ, STITCH_TRACE_EMULATOR=" ".join(EMU))
    p = subprocess.Popen(EMU + [CLI, "record", "--graph", *options, "-o", d, "--", PROG],
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
        p.stdin.write(f"deep {DEEP}\n")
        p.stdin.flush()
        expect("bottom")          # 600 hooked calls of down() in flight
        live(*off)
        p.stdin.write("\n")       # they return with graph off / paused
        p.stdin.flush()
        expect("done")
        live(*on)
        p.stdin.write(f"final {DEEP}\n")
        p.stdin.flush()
        expect("done")
    except RuntimeError as e:
        fail(str(e))
        p.kill()
        p.wait()
        return None
    p.stdin.close()
    rc = p.wait(timeout=120)
    if rc != 0:
        fail(f"{tag}: record exited {rc}")
    return events(d)


def main():
    work = tempfile.mkdtemp(prefix="stitch-depth.")
    os.environ["XDG_RUNTIME_DIR"] = work  # sockets of its own (see live_test.py)
    for off, on in ((("graph", "off"), ("graph", "on")), (("pause",), ("resume",))):
        what = f"{' '.join(off)}/{' '.join(on)}"
        ev = run(work, f"limit-{off[0]}", ["--depth", "5"], off, on)
        if ev is not None:
            f = ev.get("final_down", {})
            if f.get(EV_ENTRY, 0) != 5 or f.get(EV_EXIT, 0) != 5:
                fail(f"--depth 5 after {what}: final_down recorded {f.get(EV_ENTRY, 0)} entries, "
                     f"{f.get(EV_EXIT, 0)} exits (expected 5 and 5)")
        ev = run(work, f"full-{off[0]}", [], off, on)
        if ev is not None:
            f = ev.get("final_down", {})
            noret = sum(c.get(EV_NORET, 0) for c in ev.values())
            # DEEP + 1: final_down(0) too
            if noret or f.get(EV_ENTRY, 0) != DEEP + 1 or f.get(EV_EXIT, 0) != DEEP + 1:
                fail(f"after {what}: final_down {f.get(EV_ENTRY, 0)} entries, {f.get(EV_EXIT, 0)} exits "
                     f"(expected {DEEP + 1} each), {noret} NORET (expected 0)")
    if not FAILS:
        shutil.rmtree(work, ignore_errors=True)
        print("ok")
    return 1 if FAILS else 0


if __name__ == "__main__":
    sys.exit(main())
