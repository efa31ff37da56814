#!/usr/bin/env python3
"""Memory that comes back (issue #12, item 5): ROUNDS rounds of CONNS pipelining connections
(wrk, 16 requests per write, ROUND_SECS each) plus a fanout burst (4 connections x 32
pipelined /fanout?n=100&ms=500), the server's RSS recorded after each round, then again
IDLE_SECS after the last. Bounded in time and loopback only.

Passes when the RSS at the end of each round's load (the server holding CONNS connections)
grows by at most 5 % from round 3 to round ROUNDS (a leak grows every round; allocator reuse
does not), and RSS IDLE_SECS after the last round is at most baseline + 50 MiB. The RSS right
after each round is printed too; it is small and depends on when the allocator last purged,
so a percentage of it says little.

usage: loadtest/soak.py BINARY [SERVER ARGS...]
env:   ROUNDS (10), CONNS (10000), ROUND_SECS (5), IDLE_SECS (60), PORT (9611)
needs: wrk (apt-get install wrk)"""
import os, resource, socket, subprocess, sys, threading, time

from server_proc import fds, rss_kib, start

ROUNDS = int(os.environ.get("ROUNDS", 10))
CONNS = int(os.environ.get("CONNS", 10000))
ROUND_SECS = int(os.environ.get("ROUND_SECS", 5))
IDLE_SECS = int(os.environ.get("IDLE_SECS", 60))
PORT = int(os.environ.get("PORT", 9611))
HERE = os.path.dirname(os.path.abspath(__file__))
ADDR = ("127.0.0.1", PORT)


def fanout_burst():
    """The fanout attack of issue #12, at half the delay: every answer read to the end."""
    one = b"GET /fanout?n=100&ms=500 HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /fanout?n=100&ms=500 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"

    def attack():
        with socket.create_connection(ADDR, timeout=30) as s:
            s.sendall(one * 31 + last)
            while s.recv(65536):
                pass

    threads = [threading.Thread(target=attack) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


def settle(pid, baseline_fds):
    """Waits (at most 20 s) until the round's connections are gone from the server."""
    for _ in range(200):
        if fds(pid) <= baseline_fds + 8:
            return
        time.sleep(0.1)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    server = start(sys.argv[1], PORT, sys.argv[2:])
    try:
        pid = server.pid
        baseline, baseline_fds = rss_kib(pid), fds(pid)
        print(f"baseline: rss {baseline} KiB, {baseline_fds} descriptors")
        after, loaded = [], []
        for r in range(1, ROUNDS + 1):
            wrk = subprocess.run(
                ["wrk", "-t2", f"-c{CONNS}", f"-d{ROUND_SECS}s", "--timeout", "10s",
                 "-s", os.path.join(HERE, "pipeline.lua"), f"http://127.0.0.1:{PORT}",
                 "--", "/plaintext", "16"],
                capture_output=True, text=True, timeout=ROUND_SECS + 60)
            rps = next((l.split()[1] for l in wrk.stdout.splitlines()
                        if l.startswith("Requests/sec")), "?")
            loaded.append(rss_kib(pid))
            fanout_burst()
            settle(pid, baseline_fds)
            after.append(rss_kib(pid))
            print(f"round {r}: {rps} req/s, rss at end of load {loaded[-1]} KiB, "
                  f"after the round {after[-1]} KiB, {fds(pid)} descriptors", flush=True)
        time.sleep(IDLE_SECS)
        idle = rss_kib(pid)
        growth = (loaded[-1] - loaded[2]) / loaded[2] * 100 if len(loaded) >= 3 else 0.0
        print(f"{IDLE_SECS} s after the last round: rss {idle} KiB "
              f"(baseline + {(idle - baseline) / 1024:.1f} MiB)")
        print(f"RSS under load, rounds 3..{ROUNDS}: {growth:+.1f} % (target <= 5 %); "
              f"idle - baseline: {(idle - baseline) / 1024:.1f} MiB (target <= 50 MiB)")
        ok = growth <= 5.0 and idle - baseline <= 50 * 1024
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        server.terminate()
        server.wait(timeout=40)


if __name__ == "__main__":
    sys.exit(main())
