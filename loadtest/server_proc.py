"""A server under test as a child process, and what /proc says of it: shared by soak.py and
fanout_attack.py. Loopback only."""
import os, socket, subprocess, sys, time


def rss_kib(pid):
    """Resident memory of process `pid`, in KiB."""
    with open(f"/proc/{pid}/status") as f:
        return int(next(l for l in f if l.startswith("VmRSS")).split()[1])


def fds(pid):
    """Open descriptors of process `pid`."""
    return len(os.listdir(f"/proc/{pid}/fd"))


def start(binary, port, args):
    """Runs `binary serve --bind 127.0.0.1:PORT ARGS...` and waits (10 s at most) until it
    accepts connections; exits the script if it does not."""
    command = [binary, "serve", "--bind", f"127.0.0.1:{port}", *args]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    for _ in range(200):
        if server.poll() is not None:
            sys.exit(f"the server exited with {server.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port)).close()
            return server
        except OSError:
            time.sleep(0.05)
    server.kill()
    sys.exit("the server did not start")
