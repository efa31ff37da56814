#!/usr/bin/env python3
"""Turns compare.sh's raw lines (round server measure value) into a markdown table with
ratios against hyper-peer (hyper-engine when the peers are left out), and a CSV for
chart.py. Throughput (req/s) keeps the best round; measures ending in `_ms` (latency) or
starting with `cpu_` (server CPU ns per request) are lower-is-better and keep the lowest;
`idle_pct_` (the server's idle share while the load ran) keeps the lowest too, the round in
which the server was busiest.
A value ending in `!` had socket errors, non-2xx answers or failed requests.
usage: table.py RAW CSV_OUT"""
import csv
import sys


def lower_is_better(measure):
    return measure.endswith("_ms") or measure.startswith(("cpu_", "idle_"))


raw, out = sys.argv[1], sys.argv[2]
best = {}
for line in open(raw):
    parts = line.split()
    if len(parts) != 4 or parts[3].rstrip("!") == "":
        continue
    _, server, measure, value = parts
    flagged = value.endswith("!")
    v = float(value.rstrip("!"))
    key = (server, measure)
    if key not in best or (v < best[key][0] if lower_is_better(measure) else v > best[key][0]):
        best[key] = (v, flagged)

servers = list(dict.fromkeys(s for s, _ in best))
measures = list(dict.fromkeys(m for _, m in best))
ref = "hyper-peer" if any(s == "hyper-peer" for s in servers) else "hyper-engine"

with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["server"] + measures)
    for s in servers:
        w.writerow([s] + [best.get((s, m), ("", False))[0] for m in measures])


def show(m, v):
    if m.endswith("_ms"):
        return f"{v:.1f} ms"
    if m.startswith("cpu_"):
        return f"{v:,.0f} ns"
    if m.startswith("idle_"):
        return f"{v:.0f} %"
    return f"{v / 1000:.0f}k"


print("| server | " + " | ".join(measures) + " |")
print("|---" * (len(measures) + 1) + "|")
for s in servers:
    cells = []
    for m in measures:
        if (s, m) not in best:
            cells.append("—")
            continue
        v, flagged = best[(s, m)]
        text = show(m, v)
        if (ref, m) in best and s != ref and best[(ref, m)][0]:
            text += f" ({v / best[(ref, m)][0]:.2f}×)"
        if flagged:
            text += " [errors]"
        cells.append(text)
    print(f"| {s} | " + " | ".join(cells) + " |")
print(f"\nratios against {ref}, same run; req/s: higher is better; "
      "`_ms` and `cpu_` (server CPU per request): lower is better")
