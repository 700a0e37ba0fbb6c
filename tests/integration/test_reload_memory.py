#!/usr/bin/python3
"""Reloads do not leak: after 100 reloads to warm up, 600 more SIGHUP reloads
of a -c file that alternately adds and removes a TCP and a UDP route (a
connection and a UDP session open across some of them) grow the daemon's RSS
by less than 300 KiB, and its descriptors come back to the baseline.

Before routes were reference-counted, every retired route and config stayed
allocated for the life of the process: about +600 KiB over 600 reloads.

The RSS figure is taken from the optimised build (build/ppfwd, next to the
build/asan/ directory of $PPFWD): ASan's allocator keeps freed memory in a
quarantine of up to 256 MiB, so under ASan RSS says nothing about leaks
(LeakSanitizer covers those at exit in the other scenarios).
Run: /usr/bin/python3 tests/integration/test_reload_memory.py [SCENARIO...]"""

import os
import signal
import socket
import sys
import threading
import time

os.environ.setdefault("PPFWD_SCENARIO_SECONDS", "240")
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (V4, EchoServer, Fail, Ppfwd, Skip, check, connect, eq,  # noqa: E402
                     free_port, run, scenario, tmpdir, wait_for, wait_listen)

WARMUP = 100
RELOADS = 600
RSS_LIMIT_KIB = 300


def plain_binary():
    """build/ppfwd beside build/asan/ppfwd; PPFWD itself if it is not ASan."""
    path = harness.PPFWD
    if os.path.basename(os.path.dirname(path)) == "asan":
        path = os.path.join(os.path.dirname(os.path.dirname(path)), "ppfwd")
    if not (os.path.isfile(path) and os.access(path, os.X_OK)):
        raise Skip("no optimised build at %s (make build/ppfwd)" % path)
    return path


class UdpEcho:
    """Sends every datagram back to where it came from, until closed."""

    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((V4, 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.done = threading.Event()
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()

    def serve(self):
        while not self.done.is_set():
            try:
                data, peer = self.s.recvfrom(65535)
            except OSError:
                continue
            self.s.sendto(data, peer)

    def close(self):
        self.done.set()
        self.t.join(2)
        self.s.close()


def write_config(path, ports, extra):
    lines = ["routes:",
             "  a:", "    listen: tcp://127.0.0.1:%d" % ports["a"],
             "    upstream: 127.0.0.1:%d" % ports["echo"],
             "  u:", "    listen: udp4://127.0.0.1:%d" % ports["u"],
             "    upstream: 127.0.0.1:%d" % ports["uecho"]]
    if extra:
        lines += ["  x:", "    listen: tcp://127.0.0.1:%d" % ports["x"],
                  "    upstream: 127.0.0.1:%d" % ports["echo"],
                  "    send_proxy: v2", "    unique_id: true",
                  "  y:", "    listen: udp4://127.0.0.1:%d" % ports["y"],
                  "    upstream: 127.0.0.1:%d" % ports["uecho"]]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(lines) + "\n")
    os.rename(path + ".tmp", path)


class Log:
    """Counts "reload" lines, reading the log only from where it stopped."""

    def __init__(self, path):
        self.path, self.off, self.reloads, self.partial = path, 0, 0, ""

    def count(self):
        with open(self.path) as f:
            f.seek(self.off)
            data = f.read()
            self.off = f.tell()
        lines = (self.partial + data).split("\n")
        self.partial = lines.pop()
        for line in lines:
            if '"reload_failed"' in line or '"reload_error"' in line:
                raise Fail("a reload failed: %s\n%s" % (line, harness.tail(data)))
            if '"reload"' in line:
                self.reloads += 1
        return self.reloads


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise Fail("no VmRSS for pid %d" % pid)


def udp_roundtrip(sock, port, msg):
    for _ in range(5):  # UDP: a bounded retry if a datagram is lost
        sock.sendto(msg, (V4, port))
        try:
            if sock.recv(64) == msg:
                return True
        except OSError:
            continue
    return False


def free_udp_port():
    """A port free for UDP on 127.0.0.1 a moment ago (free_port checks TCP,
    and a TCP-free port can be bound for UDP: "Address already in use")."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((V4, 0))
        return s.getsockname()[1]
    finally:
        s.close()


@scenario
def rss_flat_over_600_reloads():
    binary = plain_binary()
    echo, uecho = EchoServer(), UdpEcho()
    path = os.path.join(tmpdir(), "ppfwd.yaml")
    ports = {"a": free_port(), "u": free_udp_port(), "x": free_port(), "y": free_udp_port(),
             "echo": echo.port, "uecho": uecho.port}
    write_config(path, ports, False)
    saved, harness.PPFWD = harness.PPFWD, binary
    try:
        d = Ppfwd([], workers=2, extra=["-l", "info", "-c", path])
        d.start([ports["a"]])
    finally:
        harness.PPFWD = saved
    log = Log(d.log_path)
    usock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    usock.settimeout(1)
    held = []  # a connection and a session opened on x and y, kept across a reload
    state = {"n": 0}

    def reload_once():
        n = state["n"] + 1
        extra = n % 2 == 1
        if extra:
            # Fresh ports: the workers close a removed route's sockets after
            # the reload is logged, so its port may still be bound for a
            # moment, and re-adding it could then not listen.
            ports["x"], ports["y"] = free_port(), free_udp_port()
        write_config(path, ports, extra)
        d.p.send_signal(signal.SIGHUP)
        wait_for(lambda: log.count() >= n or None, 10, "reload %d logged" % n, step=0.002)
        state["n"] = n
        if extra and n % 10 == 1:
            wait_listen(ports["x"], 5, d.p)
            s = connect(V4, ports["x"])
            s.settimeout(5)
            s.sendall(b"hold")
            got = b""
            while b"hold" not in got:
                chunk = s.recv(256)
                check(chunk, "echo through added route x")
                got += chunk
            check(udp_roundtrip(usock, ports["y"], b"dgram %d" % n), "UDP echo through y")
            held.append(s)
        elif not extra:
            for s in held:  # x was just removed: its connection drains, still relaying
                s.sendall(b"more")
                got = b""
                while not got.endswith(b"more"):
                    chunk = s.recv(256)
                    check(chunk, "echo on a removed route's connection")
                    got += chunk
                s.close()
            held.clear()

    for _ in range(WARMUP):
        reload_once()
    time.sleep(0.5)  # held connections closed: let the workers free them
    base_rss, base_fds = rss_kib(d.pid), d.fds()
    for _ in range(RELOADS):
        reload_once()
    eq(state["n"] % 2, 0, "ends on the config it started with")
    d.wait_fds(base_fds, timeout=10)
    time.sleep(0.5)
    grown = rss_kib(d.pid) - base_rss
    print("rss: %d KiB after warm-up, %+d KiB after %d reloads" % (base_rss, grown, RELOADS),
          flush=True)
    check(grown < RSS_LIMIT_KIB, "RSS grew %d KiB over %d reloads (limit %d)"
          % (grown, RELOADS, RSS_LIMIT_KIB))
    eq(d.stop(), 0, "exit status")
    usock.close()
    uecho.close()
    echo.close()


if __name__ == "__main__":
    sys.exit(run())
