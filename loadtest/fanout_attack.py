#!/usr/bin/env python3
"""The /fanout attack of issue #12 against the binary: CONNS connections each pipelining
FANOUTS x GET /fanout?n=100&ms=MS in one write (a client that reads every answer). While it
runs, the server's descriptors and RSS are sampled every 10 ms and a fresh connection's
GET /plaintext is timed every 20 ms. Bounded in time; loopback only.

Passes when every fanout is answered 200 or 503 (+ Retry-After), peak descriptors stay under
baseline + 600 (the fanout budget's bound, cli/src/fanout.rs), peak RSS under 64 MB, and the
slowest fresh /plaintext under 50 ms.

usage: loadtest/fanout_attack.py BINARY [SERVER ARGS...]
env:   CONNS (4), FANOUTS (32), MS (2000), PORT (9612)"""
import os, re, socket, sys, threading, time

from server_proc import fds, rss_kib, start

CONNS = int(os.environ.get("CONNS", 4))
FANOUTS = int(os.environ.get("FANOUTS", 32))
MS = int(os.environ.get("MS", 2000))
PORT = int(os.environ.get("PORT", 9612))
ADDR = ("127.0.0.1", PORT)


def attack(statuses):
    one = f"GET /fanout?n=100&ms={MS} HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    last = f"GET /fanout?n=100&ms={MS} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode()
    data = b""
    try:
        with socket.create_connection(ADDR, timeout=60) as s:
            s.sendall(one * (FANOUTS - 1) + last)
            while chunk := s.recv(65536):
                data += chunk
    except OSError:
        pass  # counted as unanswered below
    for head in re.findall(rb"HTTP/1\.1 (\d{3}) [^\r]*\r\n((?:[^\r]+\r\n)*)\r\n", data):
        status, headers = int(head[0]), head[1].lower()
        statuses.append((status, b"retry-after: 1" in headers))


def plaintext_ms():
    """How long a fresh connection's /plaintext took; infinite when it failed or took 10 s."""
    start = time.monotonic()
    try:
        with socket.create_connection(ADDR, timeout=10) as s:
            s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            if not s.recv(65536):
                return float("inf")
            while s.recv(65536):
                pass
    except OSError:
        return float("inf")
    return (time.monotonic() - start) * 1000


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    server = start(sys.argv[1], PORT, sys.argv[2:])
    try:
        pid = server.pid
        base_fds, base_rss = fds(pid), rss_kib(pid)
        statuses = []
        threads = [threading.Thread(target=attack, args=(statuses,)) for _ in range(CONNS)]
        for t in threads:
            t.start()
        peak_fds, peak_rss, slowest, last_probe = 0, 0, 0.0, 0.0
        while any(t.is_alive() for t in threads):
            peak_fds, peak_rss = max(peak_fds, fds(pid)), max(peak_rss, rss_kib(pid))
            if time.monotonic() - last_probe > 0.02:
                slowest, last_probe = max(slowest, plaintext_ms()), time.monotonic()
            time.sleep(0.01)
        served = sum(1 for s, _ in statuses if s == 200)
        refused = sum(1 for s, r in statuses if s == 503 and r)
        other = len(statuses) - served - refused
        print(f"{CONNS} connections x {FANOUTS} pipelined /fanout?n=100&ms={MS}: "
              f"{served} served, {refused} refused with 503 + Retry-After, {other} other, "
              f"{CONNS * FANOUTS - len(statuses)} unanswered")
        print(f"descriptors: {base_fds} before, peak {peak_fds}; "
              f"RSS: {base_rss} KiB before, peak {peak_rss} KiB; "
              f"slowest fresh /plaintext during the attack: {slowest:.1f} ms")
        ok = (other == 0 and len(statuses) == CONNS * FANOUTS
              and peak_fds <= base_fds + 600 and peak_rss <= 64 * 1024 and slowest <= 50)
        print("PASS" if ok else "FAIL")
        return 0 if ok else 1
    finally:
        server.terminate()
        server.wait(timeout=40)


if __name__ == "__main__":
    sys.exit(main())
