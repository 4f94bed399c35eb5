#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""stitch-trace attach / live detach on a program not started by the tool.

The program's output and exit status must be those of a run without the
tracer; its code bytes must change while traced and be the original ones
after detach (in their prepared form: one 5-byte NOP for gcc's five); the recording must hold its calls.
A library the program loads after the attach is traced by the rules given
at attach (the agent cannot interpose dlopen there: its control thread
polls the loader).
usage: attach_test.py CLI PROG DLLIB [PROG_CXX]
"""
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

CLI, PROG, DLLIB = sys.argv[1], sys.argv[2], sys.argv[3]
PROG_CXX = sys.argv[4] if len(sys.argv) > 4 else None  # a C++ build of PROG
FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def code(pid, addr, n=16):
    with open(f"/proc/{pid}/mem", "rb") as f:
        f.seek(addr)
        return f.read(n)


def file_code(pid, addr, n=16):
    """The bytes at addr as the mapped file holds them (before any patch)."""
    for line in open(f"/proc/{pid}/maps"):
        f = line.split()
        lo, hi = (int(x, 16) for x in f[0].split("-"))
        if lo <= addr < hi and len(f) >= 6:
            with open(f[5], "rb") as fh:
                fh.seek(addr - lo + int(f[2], 16))
                return fh.read(n)
    return b""


def prepared(b):
    """A function's first 16 bytes once its site was enabled: gcc's five
    1-byte NOPs are one 5-byte NOP from then on (docs/ftrace.md, "Prepared
    sites"); other bytes stay the compiler's."""
    if b[:5] == b"\x90" * 5:
        return b"\x0f\x1f\x44\x00\x00" + b[5:]
    return b


def start():
    p = subprocess.Popen([PROG], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    m = re.match(r"ready (\d+) (0x[0-9a-f]+) (0x[0-9a-f]+)", p.stdout.readline())
    if not m:
        p.kill()
        raise SystemExit("FAIL: program did not start")
    return p, int(m.group(1)), int(m.group(2), 16), int(m.group(3), 16)


def finish(p):
    p.stdin.close()
    out = p.stdout.read()
    return out, p.wait(timeout=60)


def main():
    # the reference run
    p, pid, tick, tock = start()
    ref_out, ref_rc = finish(p)

    work = tempfile.mkdtemp(prefix="stitch-attach.")
    d = os.path.join(work, "d")
    p, pid, tick, tock = start()
    before = code(pid, tick) + code(pid, tock)
    r = subprocess.run([CLI, "attach", str(pid), "-F", "t*ck", "--graph", "-o", d],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"attach exited {r.returncode}: {r.stderr.strip()}")
    traced = code(pid, tick) + code(pid, tock)
    if traced == before:
        fail("attach changed no code byte of tick/tock")
    st = subprocess.run([CLI, "live", str(pid), "status"], capture_output=True, text=True, timeout=60)
    if "enabled 2" not in st.stdout:
        fail(f"status after attach: {st.stdout!r} {st.stderr!r}")
    # A second attach is refused, saying why (it said "recording into d2"
    # while the recording went on in d).
    d2 = os.path.join(work, "d2")
    r = subprocess.run([CLI, "attach", str(pid), "-o", d2], capture_output=True, text=True, timeout=60)
    if r.returncode != 1 or "agent loaded already" not in r.stderr:
        fail(f"a second attach: {r.returncode} {r.stderr.strip()!r}")
    r = subprocess.run([CLI, "live", str(pid), "detach"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0 or "detached" not in r.stdout:
        fail(f"detach: {r.returncode} {r.stdout!r} {r.stderr!r}")
    after = code(pid, tick) + code(pid, tock)
    want = prepared(before[:16]) + prepared(before[16:])
    if after != want:
        fail(f"code after detach {after.hex()} is not the prepared form {want.hex()} of {before.hex()}")
    r = subprocess.run([CLI, "live", str(pid), "status"], capture_output=True, text=True, timeout=60)
    if r.returncode == 0:
        fail("the control socket still answers after detach")
    # Attaching again after the detach: refused, saying why, without
    # sending the user to `live PID` (which cannot reach it any more).
    r = subprocess.run([CLI, "attach", str(pid), "-o", os.path.join(work, "d6")], capture_output=True, text=True,
                       timeout=60)
    if r.returncode != 1 or "again after a detach is not possible" not in r.stderr or f"live {pid}" in r.stderr:
        fail(f"attach after detach: {r.returncode} {r.stderr.strip()!r}")
    out, rc = finish(p)
    if out != ref_out or rc != ref_rc:
        fail(f"output/status {out!r}/{rc} differ from the untraced run's {ref_out!r}/{ref_rc}")

    # A library loaded after the attach (dllib.c: lib_entry -> lib_helper),
    # selected by a rule that matched nothing at attach time.
    p, pid, tick, tock = start()
    d5 = os.path.join(work, "d5")
    r = subprocess.run([CLI, "attach", str(pid), "-F", "t*ck", "-F", "lib_*", "--graph", "-o", d5],
                       capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"attach before the dlopen exited {r.returncode}: {r.stderr.strip()}")
    p.stdin.write(f"load {DLLIB}\n")
    p.stdin.flush()
    m = re.match(r"loaded (0x[0-9a-f]+)", p.stdout.readline())
    lib_entry = int(m.group(1), 16) if m else 0
    lib_before = file_code(pid, lib_entry) if lib_entry else b""
    if not lib_before:
        fail("the program did not load the library")
    # Until the agent traces the library's two functions, then until at
    # least 10 more rounds (4 entries each) went through them.
    status, events, start_events = "", -1, None
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        st = subprocess.run([CLI, "live", str(pid), "status"], capture_output=True, text=True, timeout=60)
        status = st.stdout
        e = re.search(r"events (\d+)", status)
        events = int(e.group(1)) if e else -1
        if st.returncode != 0:
            break
        if start_events is None and "enabled 4" in status:
            start_events = events
        if start_events is not None and events >= start_events + 40:
            break
    if start_events is None or events < start_events + 40:
        fail(f"the library loaded after attach is not traced: {status!r}")
    r = subprocess.run([CLI, "live", str(pid), "detach"], capture_output=True, text=True, timeout=60)
    if r.returncode != 0:
        fail(f"detach after the dlopen: {r.returncode} {r.stderr.strip()!r}")
    if lib_before and code(pid, lib_entry) != prepared(lib_before):
        fail(f"lib_entry after detach: {code(pid, lib_entry).hex()}, not the prepared form of {lib_before.hex()}")
    out, rc = finish(p)
    if rc != 0 or "all results right" not in out:
        fail(f"the program that loaded a library under attach: exit {rc}, {out.strip()!r}")
    tree = subprocess.run([CLI, "dump", d5, "--tree", "--collapse"], capture_output=True, text=True).stdout
    if not re.search(r"^  lib_entry( \*\d+)?\n    lib_helper", tree, re.M):
        fail(f"recording lacks lib_entry -> lib_helper: {tree[:400]!r}")

    # Refused at once, before anything is loaded: a stopped process (it
    # waited 60 s, then left the agent loaded and recording), one whose
    # main thread has exited (it named the compiler flags), one of another
    # uid (root only: it can make one).
    def state(pid):
        return open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[0]

    def wait_state(pid, want):
        deadline = time.monotonic() + 10
        while state(pid) != want and time.monotonic() < deadline:
            time.sleep(0.01)  # polling the kernel's state, not a synchronisation

    def refused(what, pid, words):
        t0 = time.monotonic()
        r = subprocess.run([CLI, "attach", str(pid), "--graph", "-o", os.path.join(work, "d7")],
                           capture_output=True, text=True, timeout=120)
        took = time.monotonic() - t0
        loaded = "libstitch-agent" in open(f"/proc/{pid}/maps").read()
        if r.returncode != 1 or words not in r.stderr or took > 10 or loaded:
            fail(f"attach to {what}: exit {r.returncode} after {took:.1f} s, agent loaded {loaded}, "
                 f"{r.stderr.strip()!r}")

    p, pid, tick, tock = start()
    os.kill(pid, signal.SIGSTOP)
    wait_state(pid, "T")
    refused("a stopped process", pid, "is stopped")
    os.kill(pid, signal.SIGCONT)
    out, rc = finish(p)
    if rc != 0 or "all results right" not in out:
        fail(f"the program stopped during a refused attach: exit {rc}, {out.strip()!r}")
    zl = subprocess.Popen([sys.executable, "-c",
                           "import ctypes, threading, time\n"
                           "threading.Thread(target=time.sleep, args=(60,), daemon=True).start()\n"
                           "ctypes.CDLL(None).pthread_exit(None)\n"])
    wait_state(zl.pid, "Z")
    refused("a process whose main thread exited", zl.pid, "main thread of process")
    zl.kill()
    zl.wait()
    if os.getuid() == 0:
        other = subprocess.Popen(["sleep", "60"], user=65534)
        wait_state(other.pid, "S")
        refused("a process of another uid", other.pid, "belongs to uid 65534")
        other.kill()
        other.wait()

    # A program without patchable entries: refused before anything is
    # loaded into it, naming the flags.
    sl = subprocess.Popen(["sleep", "30"])
    r = subprocess.run([CLI, "attach", str(sl.pid), "-o", os.path.join(work, "d3")], capture_output=True,
                       text=True, timeout=60)
    maps = open(f"/proc/{sl.pid}/maps").read()
    sl.kill()
    sl.wait()
    if r.returncode != 1 or "patchable function entries" not in r.stderr or "libstitch-agent" in maps:
        fail(f"attach to sleep: {r.returncode} {r.stderr.strip()!r}")

    # A C++ program (its unwinder bound before the agent is loaded) that
    # throws from thwack() to trick() every round, both traced with
    # --graph: the agent redirects the program's unwinder calls to its own
    # (src/core/imports.c), so the throws go through the hooked frames and
    # are recorded; without that the first one ends the program.
    if PROG_CXX:
        c = subprocess.Popen([PROG_CXX], stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True)
        m = re.match(r"ready (\d+) ", c.stdout.readline())
        if not m:
            c.kill()
            fail("the C++ program did not start")
        else:
            d4 = os.path.join(work, "d4")
            r = subprocess.run([CLI, "attach", m.group(1), "-F", "t*ck", "--graph", "-o", d4],
                               capture_output=True, text=True, timeout=60)
            if r.returncode != 0:
                fail(f"attach to the C++ program exited {r.returncode}: {r.stderr.strip()}")
            # until 100 rounds (50 throws) went through the hooked frames
            events = 0
            for _ in range(6000):
                st = subprocess.run([CLI, "live", m.group(1), "status"], capture_output=True, text=True,
                                    timeout=60)
                e = re.search(r"events (\d+)", st.stdout)
                events = int(e.group(1)) if e else -1
                if st.returncode != 0 or events >= 800:
                    break
            if events < 800:
                fail(f"the C++ program recorded {events} events: {st.stdout!r} {st.stderr!r}")
            subprocess.run([CLI, "live", m.group(1), "detach"], capture_output=True, text=True, timeout=60)
            c.stdin.close()
            out = c.stdout.read()
            err = c.stderr.read()
            rc = c.wait(timeout=60)
            if rc != 0 or "all results right" not in out:
                fail(f"the C++ program under attach --graph: exit {rc}, {out.strip()!r}, {err.strip()!r}")
            if "warning" in err:
                fail(f"a warning in the C++ program's stderr: {err.strip()!r}")
            tree = subprocess.run([CLI, "dump", d4, "--tree", "--collapse"], capture_output=True, text=True).stdout
            if not re.search(r"^  trick( \*\d+)?\n    thwack \(unwound\)", tree, re.M):
                fail(f"the C++ recording lacks trick -> thwack (unwound): {tree[:400]!r}")

    tree = subprocess.run([CLI, "dump", d, "--tree", "--collapse"], capture_output=True, text=True).stdout
    if not re.search(r"^  tick( \*\d+)?\n    tock$", tree, re.M):
        fail(f"recording lacks tick -> tock: {tree[:300]!r}")
    shutil.rmtree(work, ignore_errors=True)
    print("attach:", "ok" if not FAILS else f"{len(FAILS)} failures")
    return 1 if FAILS else 0


sys.exit(main())
