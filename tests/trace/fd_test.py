#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The agent never writes into descriptors the program took from it.

tests/trace/progs/fdclobber.c closes every descriptor above 2
(close_range) or dup2's /dev/null over 3..1023, then opens 32 files of
its own, which get the numbers the agent had.  Under `record --graph`:
its files must hold only what it wrote, the trace file must be reopened
(said on stderr) and hold every call, the control socket must answer
`live PID status` again.  With the trace file renamed away first, the
agent cannot reopen it: it must say so and count the events it could not
write as lost, never "0 lost".

usage: fd_test.py CLI PROG
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

CLI, PROG = sys.argv[1], sys.argv[2]
FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def cli(*args):
    return subprocess.run([CLI, *args], capture_output=True, text=True, timeout=120)


def run(work, mode):
    d = os.path.join(work, mode)
    files = os.path.join(work, mode + ".files")
    os.mkdir(files)
    p = subprocess.Popen([CLI, "record", "--graph", "-o", d, "--", PROG, mode, files],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = p.stdout.readline()
    m = re.match(r"ready (\d+) (\d+)", line)
    if not m:
        p.kill()
        fail(f"{mode}: the program did not get ready: {line!r} {p.stderr.read()!r}")
        return None
    pid = int(m.group(1))
    # The control thread checks its socket every 250 ms: poll for an answer.
    status, deadline = None, time.monotonic() + 10
    while mode != "lose" and time.monotonic() < deadline:
        status = cli("live", str(pid), "status")
        if status.returncode == 0:
            break
        time.sleep(0.05)  # a poll interval, not a synchronisation
    out, err = p.communicate("go\n", timeout=120)
    # lose: the recording is gone, so record says "nothing was recorded"
    if "fdclobber:" in err or (mode != "lose" and p.returncode != 0):
        fail(f"{mode}: the program's files were written by someone else or it failed "
             f"(exit {p.returncode}): {err.strip()}")
    if mode != "lose" and (status is None or status.returncode != 0):
        fail(f"{mode}: `live {pid} status` never answered after the clobbering: "
             f"{status.stderr.strip() if status else ''}")
    calls = int(re.search(r"calls (\d+)", out).group(1))
    return d, err, calls


def main():
    work = tempfile.mkdtemp(prefix="stitch-fd.")
    try:
        for mode in ("close", "dup2"):
            r = run(work, mode)
            if not r:
                continue
            d, err, calls = r
            if "reopened" not in err:
                fail(f"{mode}: the agent did not say it reopened the trace file: {err.strip()}")
            if "did not exit cleanly" in err or not re.search(r" 0 lost", err):
                fail(f"{mode}: record summary: {err.strip()}")
            ev = cli("dump", d, "--events").stdout
            entries = len(re.findall(r" entry .* (main|mid|leaf)$", ev, re.M))
            # main and every mid/leaf call
            if entries != calls + 1:
                fail(f"{mode}: {entries} entries recorded, the program made {calls + 1} calls")
        r = run(work, "lose")
        if r:
            d, err, calls = r
            if "cannot be reopened" not in err:
                fail(f"lose: the agent did not say the trace file is lost: {err.strip()}")
            m = re.search(r"(\d+) events lost: they could not be written", err)
            if not m or int(m.group(1)) == 0:
                fail(f"lose: the events not written are not counted as lost: {err.strip()}")
            if re.search(r"[^0-9]0 lost", err):
                fail(f"lose: \"0 lost\" reported: {err.strip()}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if FAILS:
        return 1
    print("ok: fd")
    return 0


if __name__ == "__main__":
    sys.exit(main())
