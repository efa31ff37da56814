#!/usr/bin/env python3
"""Draws results/latest.csv (written by compare.sh) as an SVG bar chart: pipelined
throughput per server, and the 16 x /delay/20 batch latency (the other columns, such as
cpu_ns_* and h2load_*, are left out of the chart). No dependencies.
usage: chart.py [CSV] [SVG]"""
import csv
import os
import sys
from html import escape

here = os.path.dirname(os.path.abspath(__file__))
src = sys.argv[1] if len(sys.argv) > 1 else os.path.join(here, "results", "latest.csv")
dst = sys.argv[2] if len(sys.argv) > 2 else os.path.join(here, "results", "chart.svg")
rows = list(csv.DictReader(open(src)))

PANELS = [
    ("pipelined16_c64", "pipelined /plaintext, depth 16, 64 conns (k req/s)", 1000, "k"),
    ("pipelined16_c256", "pipelined /plaintext, depth 16, 256 conns (k req/s)", 1000, "k"),
    ("batch16x20ms_ms", "16 × /delay/20 in one write: time to all answers (ms)", 1, " ms"),
]
COLORS = {"ordered": "#2a7ab0", "ordered-bare": "#6fa8d6", "hyper-engine": "#c0504d", "hyper-peer": "#d98c3f",
          "actix-peer": "#8064a2", "raw-limit": "#7f7f7f"}
W, BAR, GAP, LEFT, PANEL_GAP = 760, 22, 6, 130, 40
out, y = [], 20
for key, title, scale, unit in PANELS:
    data = [(r["server"], float(r[key])) for r in rows if r.get(key)]
    if not data:
        continue
    top = max(v for _, v in data) or 1
    out.append(f'<text x="10" y="{y}" font-weight="bold">{escape(title)}</text>')
    y += 10
    for server, v in data:
        width = (W - LEFT - 90) * v / top
        color = COLORS.get(server, "#4f81bd")
        out.append(f'<text x="{LEFT - 8}" y="{y + BAR - 6}" text-anchor="end">{escape(server)}</text>')
        out.append(f'<rect x="{LEFT}" y="{y}" width="{width:.1f}" height="{BAR}" fill="{color}"/>')
        out.append(f'<text x="{LEFT + width + 6:.1f}" y="{y + BAR - 6}">{v / scale:.1f}{unit}</text>')
        y += BAR + GAP
    y += PANEL_GAP
svg = (f'<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{y}" '
       f'font-family="sans-serif" font-size="13"><rect width="100%" height="100%" fill="white"/>'
       + "".join(out) + "</svg>\n")
open(dst, "w").write(svg)
print(f"wrote {dst}")
