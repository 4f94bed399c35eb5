#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""The control socket refuses a peer of another uid (issue 7).

Records tests/trace/progs/live_prog.c (as root, the owner) and talks to
its agent's socket from fork children running as uid/gid 65534:
  1. plain: connect() fails with EACCES (the socket is 0600 in a 0700
     directory);
  2. with CAP_DAC_OVERRIDE kept across setresuid (so the file permissions
     let it through and only the agent's SO_PEERCRED check is left): the
     request "enable beta_two" is answered "refused: peer is not the
     owner ...";
and after both the agent's state is what it was (status, rules, sites),
while the same request from the owner works.  Needs root: exits 77
(skipped) otherwise.

usage: peer_uid_test.py CLI PROG   (env STITCH_TEST_EMULATOR for qemu-user)
"""
import ctypes
import errno
import os
import re
import socket
import struct
import sys

import live_test as lt

OTHER = 65534  # nobody
PR_SET_KEEPCAPS = 8
CAP_DAC_OVERRIDE = 1
LINUX_CAPABILITY_VERSION_3 = 0x20080522


def become_other(keep_dac_override):
    """In a fork child: drop to uid/gid OTHER, optionally keeping CAP_DAC_OVERRIDE."""
    libc = ctypes.CDLL(None, use_errno=True)
    if keep_dac_override and libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_KEEPCAPS)")
    os.setgroups([])
    os.setresgid(OTHER, OTHER, OTHER)
    os.setresuid(OTHER, OTHER, OTHER)
    if keep_dac_override:
        hdr = struct.pack("<Ii", LINUX_CAPABILITY_VERSION_3, 0)
        bit = 1 << CAP_DAC_OVERRIDE
        data = struct.pack("<6I", bit, bit, 0, 0, 0, 0)  # effective, permitted, inheritable x 2
        if libc.capset(ctypes.c_char_p(hdr), ctypes.c_char_p(data)) != 0:
            raise OSError(ctypes.get_errno(), "capset(CAP_DAC_OVERRIDE)")
    if os.geteuid() != OTHER or os.getuid() != OTHER:
        raise OSError(0, "still root")


def as_other(keep_dac_override, spath, payload):
    """Connect and send as uid OTHER; returns ('eacces', '') or (status, text) or ('error', why)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            become_other(keep_dac_override)
            try:
                status, text = lt.raw_request(spath, payload)
                out = f"{status}\n{text}"
            except PermissionError:
                out = "eacces\n"
        except BaseException as e:  # report anything to the parent, never run its code
            out = f"error\n{e!r}"
        os.write(w, out.encode())
        os._exit(0)
    os.close(w)
    data = b""
    while True:
        b = os.read(r, 4096)
        if not b:
            break
        data += b
    os.close(r)
    os.waitpid(pid, 0)
    first, _, rest = data.decode().partition("\n")
    return first, rest


def main():
    if os.geteuid() != 0:
        print("skipped: needs root (to run a client as uid 65534 against the owner's socket)")
        return 77
    import tempfile
    work = tempfile.mkdtemp(prefix="stitch-peer.")
    d = os.path.join(work, "d")
    started = lt.start_recording(d, "-F", "alpha_*")
    if not started:
        return 1
    p, pid = started
    _, spath = lt.sock_path(pid)
    strip = lambda s: re.sub(r"events \d+, lost \d+, ", "", s)
    before = lt.cli("live", str(pid), "status").stdout
    if "enabled 2" not in before:
        lt.fail(f"status before: {before!r} (expected 2 alpha sites enabled)")

    req = struct.pack("<IBBH", 4 + len(b"beta_two"), 1, 2, len(b"beta_two")) + b"beta_two"  # enable beta_two
    status, text = as_other(False, spath, req)
    if status != "eacces":
        lt.fail(f"uid {OTHER} without capabilities: expected EACCES from connect(), got {status} {text!r}")
    status, text = as_other(True, spath, req)
    if status != "1" or not text.startswith("refused: peer is not the owner"):
        lt.fail(f"uid {OTHER} past the file permissions: expected the agent's refusal, got {status} {text!r}")
    after = lt.cli("live", str(pid), "status").stdout
    if strip(after) != strip(before):
        lt.fail(f"a refused peer changed the state: {before!r} -> {after!r}")

    # The owner, with the same request: done.
    ok = lt.cli("live", str(pid), "enable", "beta_two").stdout
    if "+beta_two" not in ok or "3 sites enabled" not in ok:
        lt.fail(f"the owner's enable beta_two: {ok!r}")

    p.stdin.close()
    p.wait(timeout=120)
    if p.returncode != 0:
        lt.fail(f"record exited {p.returncode}")
    import shutil
    shutil.rmtree(work, ignore_errors=True)
    if not lt.FAILS:
        print(f"peer uid: uid {OTHER} refused (EACCES; with CAP_DAC_OVERRIDE: {text!r}), "
              "state unchanged, the owner's request done")
    return 1 if lt.FAILS else 0


sys.exit(main())
