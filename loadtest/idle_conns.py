#!/usr/bin/env python3
"""Open N keep-alive connections, one GET each, then hold them idle; print the
server's RSS growth in KiB per connection. usage: idle_conns.py HOST:PORT PID N
(used by extras.sh; vendored from ../shared/bench)"""
import socket, sys, time
host, port = sys.argv[1].split(":"); pid = int(sys.argv[2]); n = int(sys.argv[3])
assert host in ("127.0.0.1", "localhost"), "loopback targets only"
def rss(): return int([l for l in open(f"/proc/{pid}/status") if l.startswith("VmRSS")][0].split()[1])
import resource; h = resource.getrlimit(resource.RLIMIT_NOFILE)[1]; resource.setrlimit(resource.RLIMIT_NOFILE, (h, h))
base = rss(); socks = []
for i in range(n):
    s = socket.create_connection((host, int(port))); s.sendall(b"GET /plaintext HTTP/1.1\r\nHost: x\r\n\r\n"); socks.append(s)
for s in socks: s.recv(4096)
time.sleep(1); after = rss()
print(f"conns={n} rss_base_kib={base} rss_after_kib={after} per_conn_kib={(after-base)/n:.1f}")
