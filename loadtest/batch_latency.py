#!/usr/bin/env python3
"""One write of DEPTH pipelined GETs of PATH on one connection; time until all DEPTH
responses are read. Prints the median over RUNS in milliseconds (just the number).
usage: batch_latency.py HOST:PORT [PATH] [DEPTH] [RUNS]"""
import socket
import statistics
import sys
import time

host, port = sys.argv[1].split(":")
assert host in ("127.0.0.1", "localhost"), "loopback targets only"
path = sys.argv[2] if len(sys.argv) > 2 else "/delay/20"
depth = int(sys.argv[3]) if len(sys.argv) > 3 else 16
runs = int(sys.argv[4]) if len(sys.argv) > 4 else 9


def read_responses(s, n):
    buf, got = b"", 0
    while got < n:
        i = buf.find(b"\r\n\r\n")
        if i >= 0:
            length = 0
            for line in buf[:i].decode("latin1").split("\r\n")[1:]:
                k, _, v = line.partition(":")
                if k.strip().lower() == "content-length":
                    length = int(v)
            if len(buf) >= i + 4 + length:
                buf, got = buf[i + 4 + length:], got + 1
                continue
        data = s.recv(65536)
        if not data:
            sys.exit(f"connection closed after {got} of {n} responses")
        buf += data


times = []
request = f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode() * depth
for _ in range(runs):
    s = socket.create_connection((host, int(port)))
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    t = time.perf_counter()
    s.sendall(request)
    read_responses(s, depth)
    times.append((time.perf_counter() - t) * 1000)
    s.close()
print(f"{statistics.median(times):.1f}")
