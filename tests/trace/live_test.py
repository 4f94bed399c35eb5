#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Live control of a running multi-threaded program (stitch-trace live).

Records tests/trace/progs/live_prog.c, switches its filter many times
while its threads run, then checks every recorded entry against the
filter in force when it happened: an event tagged with filter generation
g (even) must match the filter of g; one tagged odd (a switch was under
way) may match the filter before or after that switch.  Also: a malformed
control message is refused and changes nothing; the socket is private.

usage: live_test.py CLI PROG   (env STITCH_TEST_EMULATOR for qemu-user)
"""
import fnmatch
import os
import re
import shlex
import shutil
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile

CLI, PROG = sys.argv[1], sys.argv[2]
EMU = shlex.split(os.environ.get("STITCH_TEST_EMULATOR", ""))
FAILS = []


def fail(msg):
    FAILS.append(msg)
    print("FAIL:", msg, file=sys.stderr)


def cli(*args, check=True):
    r = subprocess.run(EMU + [CLI, *args], capture_output=True, text=True, timeout=120)
    if check and r.returncode != 0:
        fail(f"stitch-trace {' '.join(args)} exited {r.returncode}: {r.stderr.strip()}")
    return r


def selected(name, rules):
    """The agent's rules: the last +glob/-glob matching the name decides."""
    for r in reversed(rules.split()):
        if fnmatch.fnmatchcase(name, r[1:]):
            return r[0] == "+"
    return False


def sock_path(pid):
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and xdg.startswith("/"):
        d = os.path.join(xdg, "stitch-trace")
    else:
        tmp = os.environ.get("TMPDIR", "/tmp")
        if not tmp.startswith("/"):
            tmp = "/tmp"
        d = os.path.join(tmp, f"stitch-trace-{os.getuid()}")
    return d, os.path.join(d, f"{pid}.sock")


def raw_request(path, payload):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    s.settimeout(30)
    s.connect(path)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    data = b""
    while True:
        b = s.recv(4096)
        if not b:
            break
        data += b
    s.close()
    if len(data) < 5:
        return None, ""
    (n,) = struct.unpack("<I", data[:4])
    return data[4], data[5:4 + n].decode()


def start_recording(d, *options):
    """PROG under `stitch-trace record OPTIONS -o d`; (process, pid), or None once it failed to start."""
    env = dict(os.environ, STITCH_TRACE_EMULATOR=" ".join(EMU))
    p = subprocess.Popen(EMU + [CLI, "record", *options, "-o", d, "--", PROG],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env)
    line = p.stdout.readline()
    m = re.match(r"ready (\d+)", line)
    if not m:
        p.kill()
        print("FAIL: program did not start:", line, file=sys.stderr)
        return None
    return p, int(m.group(1))


def main():
    work = tempfile.mkdtemp(prefix="stitch-live.")
    # Sockets of its own: the agent of any recording sweeps the sockets of
    # dead processes, so another test recording meanwhile (ctest -j) could
    # remove the killed program's below before this test looks at it.
    os.environ["XDG_RUNTIME_DIR"] = work
    d = os.path.join(work, "d")
    initial = "+alpha_*"
    started = start_recording(d, "--graph", "-F", "alpha_*")
    if not started:
        return 1
    p, pid = started

    # The socket is private.
    sdir, spath = sock_path(pid)
    st_d, st_s = os.lstat(sdir), os.lstat(spath)
    if not stat.S_ISDIR(st_d.st_mode) or stat.S_IMODE(st_d.st_mode) != 0o700:
        fail(f"socket directory mode {oct(st_d.st_mode)}")
    if not stat.S_ISSOCK(st_s.st_mode) or stat.S_IMODE(st_s.st_mode) != 0o600:
        fail(f"socket mode {oct(st_s.st_mode)}")

    before = cli("live", str(pid), "status").stdout
    if "enabled 2" not in before:
        fail(f"status before switches: {before!r} (expected 2 alpha sites enabled)")

    # Malformed messages: refused, nothing changes.
    bad = [b"", b"\x01", b"\x05\x00\x00\x00\x01\x02\x01\x00", struct.pack("<IBBH", 4, 9, 1, 0),
           struct.pack("<IBBH", 4, 1, 99, 0), struct.pack("<IBBH", 7, 1, 2, 3) + b"a b",
           struct.pack("<IBBH", 6, 1, 2, 2) + b"!x", struct.pack("<IBBH", 0xFFFFFFF0, 1, 1, 0),
           struct.pack("<IBBH", 5, 1, 4, 1) + b"x", struct.pack("<IBBH", 6, 1, 2, 3) + b"ab",
           # a whole "status" with bytes after it (it was served)
           struct.pack("<IBBH", 4, 1, 1, 0) + b"junk",
           # 1 MiB: the refusal must reach the client (it got a reset)
           struct.pack("<I", 1 << 20) + b"x" * (1 << 20)]
    for msg in bad:
        try:
            status, text = raw_request(spath, msg)
        except OSError as e:
            status, text = None, f"{e!r}"
        if status != 1 or not text.startswith("refused"):
            fail(f"malformed request {msg[:16]!r} ({len(msg)} bytes) answered {status} {text!r}")
    # A client sending a byte now and then cannot hold the channel: the
    # whole request has 2 s (each read had 2 s: 17 s for a probe's byte
    # every 1.5 s).  Here a byte every 0.5 s: refused within about 2 s.
    import time
    slow = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    slow.settimeout(30)
    slow.connect(spath)
    t0 = time.monotonic()
    answered = None
    slow.sendall(struct.pack("<I", 60))  # a valid length: the agent waits for 60 bytes
    try:
        for _ in range(20):
            slow.sendall(b"\x01")
            time.sleep(0.5)
            slow.setblocking(False)
            try:
                if slow.recv(4096) is not None:
                    answered = time.monotonic() - t0
                    break
            except BlockingIOError:
                pass
            finally:
                slow.setblocking(True)
                slow.settimeout(30)
    except OSError:
        answered = time.monotonic() - t0  # reset by the agent: it gave up
    slow.close()
    if answered is None or answered > 4.5:
        fail(f"a client sending a byte every 0.5 s held the channel {answered} s")
    after = cli("live", str(pid), "status").stdout
    strip = lambda s: re.sub(r"events \d+, lost \d+, ", "", s)
    if strip(after) != strip(before):
        fail(f"malformed requests changed the state: {before!r} -> {after!r}")

    # A stopped process: refused at once, saying why (it used to wait 60 s
    # for an answer that could come only after a SIGCONT).
    os.kill(pid, signal.SIGSTOP)
    try:
        while open(f"/proc/{pid}/stat").read().rpartition(")")[2].split()[0] not in ("T", "t"):
            os.sched_yield()
        r = cli("live", str(pid), "status", check=False)
    finally:
        os.kill(pid, signal.SIGCONT)
    if r.returncode != 1 or "the process is stopped (state T)" not in r.stderr:
        fail(f"live to a stopped process: {r.returncode} {r.stderr!r}")

    # Switches, through the recording's directory (every live process).
    script = [("enable", "beta_*"), ("disable", "alpha_*"), ("enable", "gamma_*"), ("disable", "beta_*"),
              ("enable", "alpha_one"), ("pause",), ("resume",), ("graph", "off"), ("graph", "on"),
              ("disable", "gamma_*"), ("enable", "beta_two"), ("disable", "alpha_one"),
              ("enable", "alpha_*"), ("disable", "alpha_two")]
    def sync():
        """Every thread made a full round since: each window saw all functions."""
        p.stdin.write("sync\n")
        p.stdin.flush()
        if p.stdout.readline() != "synced\n":
            fail("the program did not answer sync")

    for rnd in range(2):
        for cmd in script:
            cli("live", d, *cmd)
            sync()
    # A request that must be refused (nothing matches): state unchanged.
    r = cli("live", d, "enable", "no_such_function_xyz", check=False)
    if r.returncode != 1 or "matches no instrumented function" not in r.stderr:
        fail(f"enabling a glob that matches nothing: {r.returncode} {r.stderr!r}")
    p.stdin.close()
    rc = p.wait(timeout=120)
    if rc != 0:
        fail(f"record exited {rc}")

    ev = cli("dump", d, "--events").stdout.splitlines()
    filters = {0: initial}
    marks = {}
    for l in ev:
        if l.startswith("M "):
            f = l.split(" ", 7)
            gb, ga = int(f[2]), int(f[3])
            filters[ga] = f[7] if len(f) > 7 else ""
            marks[gb + 1] = (gb, ga)
    checked = bad_events = 0
    seen = {}
    for l in ev:
        if not l.startswith("E "):
            continue
        _, _, tid, kind, gen, ts, name = l.split(" ")
        if kind != "entry":
            continue
        gen = int(gen)
        if gen % 2 == 0:
            ok = gen in filters and selected(name, filters[gen])
        else:
            gb, ga = marks.get(gen, (None, None))
            ok = gb is not None and (selected(name, filters[gb]) or selected(name, filters[ga]))
        checked += 1
        seen.setdefault(gen, set()).add(name)
        if not ok:
            bad_events += 1
            if bad_events < 10:
                fail(f"thread {tid}: {name} entered under generation {gen} "
                     f"(filter {filters.get(gen, '?')!r})")
    if bad_events:
        fail(f"{bad_events} of {checked} entries do not match their window's filter")
    # Thanks to sync(), every window whose rules select a function has
    # entries, and only those (this is what makes the test able to fail).
    funcs = ("alpha_one", "alpha_two", "beta_one", "beta_two", "gamma_common")
    windows = [g for g in filters if seen.get(g)]
    for g, rules in filters.items():
        want = {n for n in funcs if selected(n, rules)}
        got = seen.get(g, set())
        if g != 0 and want and not got:
            fail(f"window {g} (rules {rules!r}) has no entries")
        if got - want:
            fail(f"window {g} (rules {rules!r}) has entries of {sorted(got - want)}")
        if g != 0 and want != got:
            fail(f"window {g} (rules {rules!r}): entries of {sorted(got)}, expected {sorted(want)}")
    # The readers that build call trees: the entries of the "graph off"
    # window have no exits and must not nest the rest of the thread under
    # them (they did: millions deep in a longer run, and the readers crashed
    # or hung: 3 054 frames deep here).  live_prog's calls are two deep; an
    # entry whose return was lost at a switch (its site left the filter
    # mid-call) stays open, one more level per switch at most.
    folded = cli("dump", d, "--folded").stdout.splitlines()
    deepest = max((l.rsplit(" ", 1)[0].count(";") + 1 for l in folded if l.strip()), default=0)
    limit = 4 + len(marks)
    if not folded or deepest > limit:
        fail(f"dump --folded: {len(folded)} stacks, the deepest {deepest} frames (expected at most {limit})")
    for args in (("dump", d, "--tree"), ("replay", d)):
        cli(*args)

    # At most 64 rules; a `*` rule replaces all those before it, which is
    # how a full list starts over (it could not be emptied before).
    started = start_recording(os.path.join(work, "rules"))
    if not started:
        return 1
    rp, rpid = started
    rsock = sock_path(rpid)[1]
    def request(cmd, glob):
        arg = glob.encode()
        return raw_request(rsock, struct.pack("<IBBH", 4 + len(arg), 1, cmd, len(arg)) + arg)
    ENABLE, DISABLE, STATUS = 2, 3, 1
    # after record's "+*", 63 distinct globs that all select alpha_one
    for k in range(63):
        status, text = request(ENABLE, "alpha_one" + "*" * k)
        if status != 0:
            fail(f"rule {k + 2} of 64 refused: {text!r}")
            break
    status, text = request(DISABLE, "alpha_two")
    if status != 1 or "too many rules" not in text:
        fail(f"a 65th rule: {status} {text!r}")
    status, text = request(DISABLE, "*")
    if status != 0:
        fail(f"disable '*' with 64 rules: {status} {text!r}")
    status, text = request(ENABLE, "alpha_two")
    if status != 0 or 'rules "-* +alpha_two"' not in text:
        fail(f"after disable '*', enable alpha_two: {status} {text!r}")
    rp.stdin.close()
    if rp.wait(timeout=120) != 0:
        fail("the rules recording's program failed")

    # A program killed by a signal cannot remove its socket: `live` says the
    # process is gone and removes it, and a new recording's agent sweeps
    # those of dead processes (they stayed for good).
    for sweeper in ("live", "agent"):
        started = start_recording(os.path.join(work, f"k{sweeper}"))
        if not started:
            return 1
        k, kpid = started
        k_sock = sock_path(kpid)[1]
        os.kill(kpid, signal.SIGKILL)
        k.wait(timeout=60)
        # the program's pid, not the CLI's (under qemu they may differ):
        # gone once its record has returned
        if not os.path.exists(k_sock):
            fail(f"{sweeper}: the killed program's socket is already gone: the test shows nothing")
        if sweeper == "live":
            r = cli("live", str(kpid), "status", check=False)
            if r.returncode != 1 or "no such process" not in r.stderr:
                fail(f"live on a killed process: {r.returncode} {r.stderr!r}")
        else:
            again = start_recording(os.path.join(work, "k2"))
            if not again:
                return 1
            again[0].stdin.close()
            again[0].wait(timeout=60)
        if os.path.exists(k_sock):
            fail(f"{sweeper}: the socket of killed process {kpid} is still there")
    print(f"live: {checked} entries in {len(windows)}/{len(filters)} windows checked; folded stacks at most "
          f"{deepest} deep")
    shutil.rmtree(work, ignore_errors=True)
    return 1 if FAILS else 0


# (imported by peer_uid_test.py for its helpers)
if __name__ == "__main__":
    sys.exit(main())
