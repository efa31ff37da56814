#!/usr/bin/env python3
"""Turns compare.sh's raw lines (round server measure value) into a markdown table with
ratios against hyper, and a CSV for chart.py. Throughput keeps the best round; latency the
lowest. usage: table.py RAW CSV_OUT"""
import csv
import sys

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
    lower_is_better = measure.endswith("_ms")
    if key not in best or (v < best[key][0] if lower_is_better else v > best[key][0]):
        best[key] = (v, flagged)

servers = list(dict.fromkeys(s for s, _ in best))
measures = list(dict.fromkeys(m for _, m in best))
ref = "hyper-peer" if any(s == "hyper-peer" for s in servers) else "hyper-engine"

with open(out, "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["server"] + measures)
    for s in servers:
        w.writerow([s] + [best.get((s, m), ("", False))[0] for m in measures])

print("| server | " + " | ".join(measures) + " |")
print("|---" * (len(measures) + 1) + "|")
for s in servers:
    cells = []
    for m in measures:
        if (s, m) not in best:
            cells.append("—")
            continue
        v, flagged = best[(s, m)]
        text = f"{v:.1f} ms" if m.endswith("_ms") else f"{v / 1000:.0f}k"
        if (ref, m) in best and s != ref and best[(ref, m)][0]:
            text += f" ({v / best[(ref, m)][0]:.2f}×)"
        if flagged:
            text += " [errors]"
        cells.append(text)
    print(f"| {s} | " + " | ".join(cells) + " |")
print(f"\nratios against {ref}, same run")
