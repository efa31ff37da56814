#!/usr/bin/env python3
"""Issue #17 point 6 against the binary's TLS listener: SOCKETS TCP connections that connect
and say nothing (no ClientHello) for DURATION seconds, each one the server closes replaced at
once (REFILL=1: a sustained flood, as fast as the server closes them) or not (REFILL=0), while
an honest TLS client (Python's ssl) times a fresh connection and handshake every 50 ms.
Bounded in time; loopback only; a certificate is made for the run with openssl.

Prints the honest clients' median and slowest times (TCP connect and TLS handshake apart);
PASS when the slowest is under 1 s.
The flood needs about SOCKETS descriptors in this process: the soft limit is raised to the hard
one, and the flood is cut to fit when that is not enough.

usage: loadtest/handshake_flood.py BINARY [SERVER ARGS...]
env:   SOCKETS (2000), DURATION (20), REFILL (1), PORT (9613)"""
import os, resource, select, socket, ssl, statistics, subprocess, sys, tempfile, threading, time

from server_proc import fds, start

SOCKETS = int(os.environ.get("SOCKETS", 2000))
DURATION = float(os.environ.get("DURATION", 20))
PORT = int(os.environ.get("PORT", 9613))
REFILL = os.environ.get("REFILL", "1") == "1"
ADDR = ("127.0.0.1", PORT)
# An honest handshake that takes this long is counted as this long (and fails the run).
PROBE_TIMEOUT = 15


def certificate(directory):
    """A throw-away self-signed certificate and key for 127.0.0.1, as tls.sh makes them."""
    cert, key = os.path.join(directory, "cert.pem"), os.path.join(directory, "key.pem")
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec",
                    "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes", "-days", "1",
                    "-subj", "/CN=localhost",
                    "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1",
                    "-keyout", key, "-out", cert], check=True, capture_output=True)
    return cert, key


def descriptors_for_flood():
    """Raises this process's descriptor limit as far as allowed; the flood size that fits."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return min(SOCKETS, hard - 100)


def silent_socket():
    """A TCP connection begun without waiting (the server may not be accepting), never written."""
    s = socket.socket()
    s.setblocking(False)
    s.connect_ex(ADDR)
    return s


def flood(size, stop, counts):
    """Keeps `size` silent sockets open until `stop`: every one the server closes (or that
    failed to connect) is replaced when REFILL is on. counts["replaced"] counts them."""
    sockets = {}
    for _ in range(size):
        s = silent_socket()
        sockets[s.fileno()] = s
    poller = select.poll()
    for fd in sockets:
        poller.register(fd, select.POLLIN | select.POLLHUP | select.POLLERR)
    while not stop.is_set():
        for fd, _ in poller.poll(20):
            poller.unregister(fd)
            sockets.pop(fd).close()
            if not REFILL:
                continue
            s = silent_socket()
            sockets[s.fileno()] = s
            poller.register(s.fileno(), select.POLLIN | select.POLLHUP | select.POLLERR)
            counts["replaced"] += 1
    for s in sockets.values():
        s.close()


def handshake_ms(context):
    """How long a fresh connection took: (TCP connect, then the TLS handshake), in ms."""
    began = time.monotonic()
    try:
        with socket.create_connection(ADDR, timeout=PROBE_TIMEOUT) as tcp:
            connected = time.monotonic()
            with context.wrap_socket(tcp, server_hostname="127.0.0.1"):
                pass
    except OSError:
        return (PROBE_TIMEOUT * 1000.0, 0.0)
    return ((connected - began) * 1000, (time.monotonic() - connected) * 1000)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    size = descriptors_for_flood()
    with tempfile.TemporaryDirectory() as directory:
        cert, key = certificate(directory)
        server = start(sys.argv[1], PORT,
                       ["--tls-cert", cert, "--tls-key", key, *sys.argv[2:]])
        try:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
            idle = [sum(handshake_ms(context)) for _ in range(5)]
            stop, counts = threading.Event(), {"replaced": 0}
            flooder = threading.Thread(target=flood, args=(size, stop, counts))
            flooder.start()
            probes, peak_fds, began = [], 0, time.monotonic()
            while time.monotonic() - began < DURATION:
                probes.append(handshake_ms(context))
                peak_fds = max(peak_fds, fds(server.pid))
                time.sleep(0.05)
            stop.set()
            flooder.join()
        finally:
            server.terminate()
            server.wait()
    totals = [sum(p) for p in probes]
    slowest = max(totals)
    flood_kind = (f"replaced as the server closed them ({counts['replaced']} replacements)"
                  if REFILL else "opened once")
    print(f"{size} silent sockets for {DURATION:.0f} s, {flood_kind}; "
          f"server descriptors at most {peak_fds}")
    print(f"honest connect + handshake: {statistics.median(idle):.1f} ms median without the "
          f"flood; under it, {len(totals)} probes: median {statistics.median(totals):.1f} ms, "
          f"slowest {slowest:.1f} ms (slowest TCP connect {max(p[0] for p in probes):.1f} ms, "
          f"slowest TLS handshake {max(p[1] for p in probes):.1f} ms)")
    print("PASS" if slowest < 1000 else "FAIL: an honest client took 1 s or more")
    return 0 if slowest < 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
