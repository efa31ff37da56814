#!/usr/bin/env python3
"""Renders the panels of deploy/grafana/pipelined.json from a real run into docs/dashboard.png.

Starts the release binary twice (the ordered engine, and `--engine hyper` on the same routes),
a Prometheus scraping both every second, and sends both the same pipelined load in three
phases: 1, 4 and 16 requests per write, each request a `/delay/{0-20 ms}`. Then it asks
Prometheus for every dashboard query over the run (the dashboard's own PromQL, with
`$__rate_interval` set to 4s) and plots them, with two panels measured by the load
generator itself: answers per second and the time to all answers of one write, for both
engines. `--engine hyper` exports none of the engine's series (its HTTP/1.1 connection is
hyper's), so the dashboard panels show the ordered engine alone.

usage: cargo build --release && python3 loadtest/dashboard.py [OUT]
env: PHASE seconds per depth (10), CONNS connections per server (4)
needs: prometheus (apt-get install prometheus), matplotlib (pip install matplotlib)
"""
import json
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
import urllib.request

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.join(ROOT, "target", "release", "pipelined")
DASHBOARD = os.path.join(ROOT, "deploy", "grafana", "pipelined.json")
OUT = sys.argv[1] if len(sys.argv) > 1 else os.path.join(ROOT, "docs", "dashboard.png")
PHASE = float(os.environ.get("PHASE", "10"))
CONNS = int(os.environ.get("CONNS", "4"))
DEPTHS = [1, 4, 16]
RATE_INTERVAL = "4s"
ENGINES = {"ordered": [], "hyper": ["--engine", "hyper"]}
COLORS = {"ordered": "#2a7ab0", "hyper": "#c0504d"}


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(what, condition, limit=30.0):
    """Polls condition() until it is true; the limit only turns a hang into an error."""
    deadline = time.time() + limit
    while not condition():
        if time.time() > deadline:
            sys.exit(f"gave up waiting for {what}")
        time.sleep(0.2)


def start_servers():
    servers = {}
    for name, args in ENGINES.items():
        port = free_port()
        cmd = [BIN, "serve", "--bind", f"127.0.0.1:{port}", *args]
        servers[name] = (port, subprocess.Popen(cmd, stdout=subprocess.DEVNULL))
    return servers


def start_prometheus(servers, tmp):
    config = os.path.join(tmp, "prometheus.yml")
    jobs = "".join(
        f"  - job_name: {name}\n    static_configs:\n      - targets: ['127.0.0.1:{port}']\n"
        for name, (port, _) in servers.items()
    )
    with open(config, "w") as f:
        f.write(f"global:\n  scrape_interval: 1s\nscrape_configs:\n{jobs}")
    port = free_port()
    log = open(os.path.join(tmp, "prometheus.log"), "w")
    proc = subprocess.Popen(
        ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={tmp}/data",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log)
    return f"http://127.0.0.1:{port}/api/v1", proc


def api(base, path, **params):
    url = f"{base}/{path}?{urllib.parse.urlencode(params)}"
    try:
        with urllib.request.urlopen(url, timeout=5) as res:
            return json.load(res)["data"]["result"]
    except OSError:
        return []


def read_answers(sock, buf, n):
    """Reads n responses off sock (all with Content-Length); returns the unread rest."""
    def more(buf):
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("server closed the connection")
        return buf + chunk

    for _ in range(n):
        while b"\r\n\r\n" not in buf:
            buf = more(buf)
        head, buf = buf.split(b"\r\n\r\n", 1)
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        while len(buf) < length:
            buf = more(buf)
        buf = buf[length:]
    return buf


def drive(name, port, t0, samples, seed):
    """One connection: a write of `depth` requests, all answers read, again, until the run
    ends; records (time, answers, seconds to all answers) per write."""
    rng = random.Random(seed)
    sock = socket.create_connection(("127.0.0.1", port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    buf = b""
    while (now := time.time()) < t0 + PHASE * len(DEPTHS):
        depth = DEPTHS[int((now - t0) // PHASE)]
        batch = "".join(f"GET /delay/{rng.randint(0, 20)} HTTP/1.1\r\nHost: x\r\n\r\n"
                        for _ in range(depth)).encode()
        sent = time.time()
        sock.sendall(batch)
        buf = read_answers(sock, buf, depth)
        samples[name].append((sent, depth, time.time() - sent))
    sock.close()


def run_load(servers):
    samples = {name: [] for name in servers}
    t0 = time.time()
    threads = [threading.Thread(target=drive, args=(name, port, t0, samples, i))
               for name, (port, _) in servers.items() for i in range(CONNS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return t0, time.time(), samples


def dashboard_panels():
    with open(DASHBOARD) as f:
        return json.load(f)["panels"]


def query_panels(base, start, end):
    """Every dashboard target's range over the run: (panel, [(legend, [(t, v)])])."""
    out = []
    for panel in dashboard_panels():
        lines = []
        for target in panel["targets"]:
            expr = target["expr"].replace("$__rate_interval", RATE_INTERVAL)
            for series in api(base, "query_range", query=expr, start=start, end=end, step=1):
                legend = target.get("legendFormat", "")
                for label, value in series["metric"].items():
                    legend = legend.replace("{{" + label + "}}", value)
                points = [(float(t), float(v)) for t, v in series["values"]
                          if v not in ("NaN", "+Inf", "-Inf")]
                lines.append((legend, points))
        out.append((panel, lines))
    return out


def client_series(samples, t0, end):
    """Per engine and second: answers per second, and the median time to all answers."""
    rates, rtts = {}, {}
    for name, rows in samples.items():
        seconds = range(int(end - t0))
        per = {s: [r for r in rows if int(r[0] - t0) == s] for s in seconds}
        rates[name] = [(t0 + s, sum(r[1] for r in per[s])) for s in seconds]
        rtts[name] = [(t0 + s, sorted(r[2] for r in per[s])[len(per[s]) // 2])
                      for s in seconds if per[s]]
    return rates, rtts


UNITS = {"s": ("ms", 1000), "reqps": ("req/s", 1), "short": ("", 1)}


def plot(panels, rates, rtts, t0):
    import matplotlib
    matplotlib.use("Agg")
    matplotlib.rcParams.update({"font.size": 8})
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(4, 2, figsize=(11, 12), sharex=True)
    axes = axes.flatten()
    client = [
        ("Answers/s (load generator): ordered vs --engine hyper", rates, "req/s", 1),
        ("Time to all answers of one write, median (load generator)", rtts, "ms", 1000),
    ]
    for ax, (title, series, unit, scale) in zip(axes[:2], client):
        for name, points in series.items():
            ax.plot([t - t0 for t, _ in points], [v * scale for _, v in points],
                    label=name if name == "ordered" else "--engine hyper", color=COLORS[name])
        ax.set_title(title, fontweight="bold", pad=14)
        ax.set_ylabel(unit)
    for ax, (panel, lines) in zip(axes[2:], panels):
        unit, scale = UNITS.get(panel["fieldConfig"]["defaults"].get("unit", "short"), ("", 1))
        for legend, points in sorted(lines):
            ax.plot([t - t0 for t, _ in points], [v * scale for _, v in points], label=legend)
        ax.set_title(panel["title"] + " (ordered)", fontweight="bold", pad=14)
        ax.set_ylabel(unit)
    for ax in axes:
        for i, depth in enumerate(DEPTHS):
            ax.axvspan(i * PHASE, (i + 1) * PHASE, color="#000", alpha=0.04 * (i + 1), lw=0)
            ax.text((i + 0.5) * PHASE, 1.01, f"depth {depth}", transform=ax.get_xaxis_transform(),
                    ha="center", va="bottom", fontsize=7, color="#555")
        ax.grid(alpha=0.3)
        if ax.lines:
            ax.legend(loc="center left", fontsize=7)
        ax.set_xlim(0, PHASE * len(DEPTHS))
    for ax in axes[-2:]:
        ax.set_xlabel("seconds into the run")
    fig.suptitle(f"pipelined, {CONNS} connections per server, each write 1 / 4 / 16 × "
                 "/delay/{0-20 ms}; Prometheus scraping every 1 s", fontsize=10)
    fig.tight_layout(rect=(0, 0, 1, 0.97))
    fig.savefig(OUT, dpi=90)


def main():
    if not os.access(BIN, os.X_OK):
        sys.exit(f"{BIN} missing: cargo build --release")
    if not shutil.which("prometheus"):
        sys.exit("prometheus missing: apt-get install prometheus")
    tmp = tempfile.mkdtemp(prefix="pipelined-dashboard-")
    servers = start_servers()
    base, prom = start_prometheus(servers, tmp)
    try:
        up = lambda: len([r for r in api(base, "query", query="up == 1")]) == len(servers)
        wait_until("Prometheus to scrape both servers", up)
        t0, end, samples = run_load(servers)
        # The last scrape after the load, so the range ends with it.
        scraped = lambda: any(float(r["value"][1]) > end
                              for r in api(base, "query", query="timestamp(up{job='ordered'})"))
        wait_until("a scrape after the load", scraped)
        panels = query_panels(base, t0, end)
        rates, rtts = client_series(samples, t0, end)
        plot(panels, rates, rtts, t0)
        print(f"wrote {OUT}")
    finally:
        prom.terminate()
        for _, proc in servers.values():
            proc.terminate()
        prom.wait()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
