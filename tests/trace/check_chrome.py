#!/usr/bin/env python3
# SPDX-License-Identifier: MIT
"""Check a Chrome trace JSON file as stitch-trace writes it: well-formed,
every event has the fields its phase needs, B/E (if any) balanced per
thread, complete (X) events nest properly within each thread."""
import json
import sys

EPS = 0.0015  # us: ts and dur are printed with 3 decimals


def main(path):
    with open(path) as f:
        doc = json.load(f)
    events = doc["traceEvents"] if isinstance(doc, dict) else doc
    open_be = {}
    spans = {}
    for e in events:
        ph = e.get("ph")
        for k in ("name", "pid", "tid"):
            if k not in e:
                return f"event without {k}: {e}"
        key = (e["pid"], e["tid"])
        if ph == "M":
            continue
        if "ts" not in e:
            return f"event without ts: {e}"
        if ph == "B":
            open_be.setdefault(key, []).append(e["name"])
        elif ph == "E":
            if not open_be.get(key):
                return f"E without B: {e}"
            open_be[key].pop()
        elif ph == "X":
            if e.get("dur", -1) < 0:
                return f"X without a duration: {e}"
            spans.setdefault(key, []).append((e["ts"], e["ts"] + e["dur"]))
        elif ph != "i":
            return f"unexpected phase {ph}"
    for key, stack in open_be.items():
        if stack:
            return f"thread {key}: B without E: {stack}"
    # X events in pre-order: each starts inside the innermost open one or after it
    for key, lst in spans.items():
        stack = []
        for start, end in lst:
            # The open one ended before this one started: a sibling.  A tie
            # (coarse clocks: 16 ns under qemu) is a sibling if it does not fit.
            while stack and (start > stack[-1] + EPS or (start >= stack[-1] - EPS and end > stack[-1] + EPS)):
                stack.pop()
            if stack and end > stack[-1] + EPS:
                return f"thread {key}: event [{start}, {end}] overlaps its parent ending {stack[-1]}"
            stack.append(end)
    return None


if __name__ == "__main__":
    err = main(sys.argv[1])
    if err:
        print(f"{sys.argv[1]}: {err}", file=sys.stderr)
        sys.exit(1)
