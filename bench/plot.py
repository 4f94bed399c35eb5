#!/usr/bin/python3
# SPDX-License-Identifier: MIT
"""plot.py DATA.tsv OUT.svg TITLE [SITES]: the main comparisons of bench/run as one SVG.

DATA.tsv is what bench/run collects while it writes the report, one
measurement per line, tab-separated:
    call   <key> <label> <ns/call> <instructions/call or empty>
    patch  <tool> <enable|disable> <µs>          (SITES sites, default "100 000")
    stall  <tool> <idle|patching> <p99 ns> <max ns>
Three panels, log scales (the values span four orders of magnitude):
per-call cost, switching SITES sites, worker stalls.
Needs matplotlib (Debian: python3-matplotlib).
"""
import sys

import matplotlib

matplotlib.use("Agg")  # no display here; Agg writes SVG (and PNG) files without one
import matplotlib.pyplot as plt  # noqa: E402

# Text as text, not as glyph outlines: a tenth of the size, and greppable.
matplotlib.rcParams["svg.fonttype"] = "none"


def read(path):
    calls, patch, stall = [], {}, []
    with open(path, encoding="utf-8") as f:
        for line in f:
            v = line.rstrip("\n").split("\t")
            if v[0] == "call" and len(v) >= 4:
                group = "gcc" if v[1].startswith("g:") else "clang"
                calls.append((f"{v[2]} [{group}]", float(v[3])))
            elif v[0] == "patch" and len(v) >= 4:
                patch.setdefault(v[1], {})[v[2]] = float(v[3])
            elif v[0] == "stall" and len(v) >= 5:
                stall.append((f"{v[1]}, {v[2]}", float(v[3]), float(v[4])))
    return calls, patch, stall


def main():
    if len(sys.argv) not in (4, 5):
        sys.exit("usage: plot.py DATA.tsv OUT.svg TITLE [SITES]")
    sites = sys.argv[4] if len(sys.argv) == 5 else "100 000"
    calls, patch, stall = read(sys.argv[1])
    fig, axes = plt.subplots(3, 1, figsize=(10, 13), gridspec_kw={"height_ratios": [3, 1.3, 1.3]})
    fig.suptitle(sys.argv[3], fontsize=11)

    ax = axes[0]
    if calls:
        labels = [c[0] for c in calls][::-1]
        values = [c[1] for c in calls][::-1]
        bars = ax.barh(labels, values, color="#4477aa")
        ax.set_xscale("log")
        for b, v in zip(bars, values):
            ax.text(v, b.get_y() + b.get_height() / 2, f" {v:.3g}", va="center", fontsize=7)
    ax.set_title("Cost per call of a traced leaf function (ns, median; log scale)", fontsize=10)
    ax.tick_params(axis="y", labelsize=7)

    ax = axes[1]
    tools = list(patch)
    if tools:
        y = range(len(tools))
        h = 0.38
        en = [patch[t].get("enable", 0) / 1e3 for t in tools]
        dis = [patch[t].get("disable", 0) / 1e3 for t in tools]
        ax.barh([i + h / 2 for i in y], en, h, label="enable", color="#cc6677")
        ax.barh([i - h / 2 for i in y], dis, h, label="disable", color="#117733")
        ax.set_yticks(list(y), tools, fontsize=8)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_title("Switching " + sites + " sites (ms, median; log scale)", fontsize=10)

    ax = axes[2]
    if stall:
        y = range(len(stall))
        h = 0.38
        ax.barh([i + h / 2 for i in y], [s[1] / 1e3 for s in stall], h, label="p99", color="#ddcc77")
        ax.barh([i - h / 2 for i in y], [s[2] / 1e3 for s in stall], h, label="max", color="#882255")
        ax.set_yticks(list(y), [s[0] for s in stall], fontsize=8)
        ax.set_xscale("log")
        ax.legend(fontsize=8)
    ax.set_title("Worker iteration time while " + sites + " sites are switched (µs; log scale)", fontsize=10)

    fig.tight_layout()
    fig.savefig(sys.argv[2])


if __name__ == "__main__":
    main()
