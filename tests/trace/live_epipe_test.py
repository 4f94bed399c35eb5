#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""`live` when the process goes between connect and write: exit 1 with a
message, not death by SIGPIPE (exit 141, nothing said).

A listening socket stands in for an agent (this process's pid, in the
control directory); epipe_shim.so makes the CLI's write fail with EPIPE.

usage: live_epipe_test.py CLI SHIM
"""
import os
import socket
import subprocess
import sys
import tempfile

CLI, SHIM = sys.argv[1], sys.argv[2]


def ctl_dir():
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg and xdg.startswith("/"):
        return os.path.join(xdg, "stitch-trace")
    tmp = os.environ.get("TMPDIR", "/tmp")
    if not tmp.startswith("/"):
        tmp = "/tmp"
    return os.path.join(tmp, f"stitch-trace-{os.getuid()}")


def main():
    d = ctl_dir()
    os.makedirs(d, mode=0o700, exist_ok=True)
    path = os.path.join(d, f"{os.getpid()}.sock")
    if os.path.exists(path):
        os.unlink(path)
    srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    srv.bind(path)
    os.chmod(path, 0o600)
    srv.listen(1)
    try:
        env = dict(os.environ, LD_PRELOAD=SHIM)
        r = subprocess.run([CLI, "live", str(os.getpid()), "status"], env=env, capture_output=True, text=True,
                           timeout=60)
    finally:
        srv.close()
        os.unlink(path)
    ok = r.returncode == 1 and "closed the connection" in r.stderr
    if not ok:
        print(f"FAIL: live exited {r.returncode} ({'SIGPIPE' if r.returncode == -13 else ''}), "
              f"stderr {r.stderr.strip()!r}", file=sys.stderr)
        return 1
    print("ok: live epipe")
    return 0


if __name__ == "__main__":
    sys.exit(main())
