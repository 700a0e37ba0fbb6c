#!/usr/bin/python3
"""Chaos (issue 10, "Also"), bounded to about 20 s: TCP and UDP clients that
vanish mid-transfer (reset, close unread, half-close and go) beside clients
whose echoes are checked byte for byte, a route-changing reload every 100 ms
(SIGHUP, -c file alternating between two sets of routes: an accept-proxy
route with a health check comes and goes, a send-proxy route and a UDP route
come back on new ports), a flood of connections and datagrams in the middle,
then SIGTERM. ppfwd must serve every checked echo, end with its descriptors
back at the baseline and its RSS within RSS_BOUND_MIB of where it started,
exit 0 on SIGTERM with no sanitizer report (the harness checks that).
Run: /usr/bin/python3 tests/integration/test_chaos.py"""

import os
import random
import signal
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (V4, EchoServer, Fail, Ppfwd, check, connect, free_port, on_cleanup,  # noqa: E402
                     rand_bytes, recv_all, run, scenario, tmpdir, v1, wait_for)

CHAOS_SECONDS = 8.0
RELOAD_EVERY = 0.1
# RSS may grow by this much over the run (the ASan build: its allocator keeps
# freed memory in quarantine, capped here at 16 MiB by ASAN_OPTIONS).
RSS_BOUND_MIB = 48


class UdpEcho:
    def __init__(self):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((V4, 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.done = threading.Event()
        self.t = threading.Thread(target=self.serve, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def serve(self):
        while not self.done.is_set():
            try:
                data, peer = self.s.recvfrom(65535)
                self.s.sendto(data, peer)
            except OSError:
                continue

    def close(self):
        self.done.set()
        self.t.join(2)
        self.s.close()


def write_config(path, ports, odd):
    r = ["routes:",
         "  stable:", "    listen: tcp://127.0.0.1:%d" % ports["stable"],
         "    upstream: 127.0.0.1:%d" % ports["echo"],
         "  dgram:", "    listen: udp4://127.0.0.1:%d" % ports["dgram"],
         "    upstream: 127.0.0.1:%d" % ports["uecho"], "    idle_timeout: 1s"]
    if not odd:
        r += ["  checked:", "    listen: tcp://127.0.0.1:%d" % ports["checked"],
              "    upstream: 127.0.0.1:%d" % ports["echo"], "    accept_proxy: optional",
              "    header_timeout: 300ms", "    check: 200ms"]
    else:
        r += ["  sender:", "    listen: tcp://127.0.0.1:%d" % ports["sender"],
              "    upstream: 127.0.0.1:%d" % ports["echo"], "    send_proxy: v2",
              "    unique_id: true",
              "  dgram2:", "    listen: udp4://127.0.0.1:%d" % ports["dgram2"],
              "    upstream: 127.0.0.1:%d" % ports["uecho"], "    send_proxy: v2",
              "    idle_timeout: 1s"]
    with open(path + ".tmp", "w") as f:
        f.write("\n".join(r) + "\n")
    os.rename(path + ".tmp", path)


def rss_mib(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    raise Fail("no VmRSS")


def rst_close(s):
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()


class Chaos:
    def __init__(self, ports, deadline):
        self.ports, self.deadline = ports, deadline
        self.ok = self.vanished = self.udp = self.errors = 0
        self.lock = threading.Lock()
        self.failures = []

    def alive(self):
        return time.monotonic() < self.deadline

    def count(self, what):
        with self.lock:
            setattr(self, what, getattr(self, what) + 1)

    def checked_echo(self, rng):
        """On the route that never changes: every byte must come back."""
        data = rand_bytes(rng.choice([1, 100, 5000, 70000, 300000]), rng.randrange(1 << 30))
        s = connect(V4, self.ports["stable"], timeout=10)
        got = []
        t = threading.Thread(target=lambda: got.append(recv_all(s, 10, limit=len(data) + 1)))
        t.start()
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        t.join(12)
        s.close()
        if not got or got[0] != data:
            with self.lock:
                self.failures.append("echo of %d bytes: got %s bytes" % (
                    len(data), len(got[0]) if got else "no answer"))
        else:
            self.count("ok")

    def vanish(self, rng):
        """Anywhere, a route that may be gone: send some, then leave badly."""
        port = self.ports[rng.choice(["stable", "checked", "sender"])]
        try:
            s = connect(V4, port, timeout=2)
            k = rng.randrange(4)
            if k == 0:
                s.sendall(v1(("192.0.2.%d" % rng.randrange(1, 250), 1000), ("192.0.2.1", 80))
                          + rand_bytes(rng.randrange(1, 200000), rng.randrange(1 << 20)))
            elif k == 1:
                s.sendall(rand_bytes(rng.randrange(1, 300000), 7))
            elif k == 2:
                s.sendall(b"half")
                s.shutdown(socket.SHUT_WR)
            time.sleep(rng.random() * 0.05)
            rst_close(s) if rng.random() < 0.5 else s.close()
            self.count("vanished")
        except OSError:
            self.count("errors")  # a route gone or reset meanwhile: expected

    def tcp_client(self, seed):
        rng = random.Random(seed)
        while self.alive():
            try:
                self.checked_echo(rng) if rng.random() < 0.4 else self.vanish(rng)
            except (OSError, Fail) as e:
                with self.lock:
                    self.failures.append("checked echo: %r" % e)

    def udp_client(self, seed):
        rng = random.Random(seed)
        while self.alive():
            u = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            u.settimeout(0.2)
            port = self.ports[rng.choice(["dgram", "dgram", "dgram2"])]
            for _ in range(rng.randrange(1, 20)):
                u.sendto(rand_bytes(rng.randrange(1, 1400), rng.randrange(1000)), (V4, port))
            try:
                u.recv(2048)
            except OSError:
                pass
            u.close()  # gone, its session left to time out
            self.count("udp")

    def flood(self):
        socks = []
        for _ in range(400):
            s = socket.socket()
            s.setblocking(False)
            s.connect_ex((V4, self.ports["stable"]))
            socks.append(s)
        u = [socket.socket(socket.AF_INET, socket.SOCK_DGRAM) for _ in range(50)]
        for i in range(2000):
            u[i % 50].sendto(b"f" * 64, (V4, self.ports["dgram"]))
        time.sleep(0.3)
        for s in socks:
            rst_close(s)
        for s in u:
            s.close()


@scenario
def chaos_reload_flood_sigterm():
    os.environ["ASAN_OPTIONS"] = "detect_leaks=1:abort_on_error=1:quarantine_size_mb=16"
    echo, uecho = EchoServer(), UdpEcho()
    path = os.path.join(tmpdir(), "ppfwd.yaml")
    ports = {"stable": free_port(), "checked": free_port(), "sender": free_port(),
             "dgram": free_port(), "dgram2": free_port(), "echo": echo.port, "uecho": uecho.port}
    write_config(path, ports, False)
    d = Ppfwd([], workers=2, extra=["-l", "info", "-c", path])
    d.start([ports["stable"], ports["checked"]])
    warm = Chaos(ports, time.monotonic() + 0.5)
    warm.checked_echo(random.Random(1))
    time.sleep(0.5)
    base, rss0 = d.fds(), rss_mib(d.pid)

    chaos = Chaos(ports, time.monotonic() + CHAOS_SECONDS)
    threads = [threading.Thread(target=chaos.tcp_client, args=(i,), daemon=True) for i in range(6)]
    threads += [threading.Thread(target=chaos.udp_client, args=(100 + i,), daemon=True)
                for i in range(2)]
    for t in threads:
        t.start()
    reloads, flooded = 0, False
    while chaos.alive():
        odd = reloads % 2 == 0
        if odd:  # routes that come back do so on new ports
            ports["sender"], ports["dgram2"] = free_port(), free_port()
        write_config(path, ports, odd)
        d.p.send_signal(signal.SIGHUP)
        reloads += 1
        if not flooded and time.monotonic() > chaos.deadline - CHAOS_SECONDS / 2:
            threading.Thread(target=chaos.flood, daemon=True).start()
            flooded = True
        time.sleep(RELOAD_EVERY)
    for t in threads:
        t.join(20)
    check(not any(t.is_alive() for t in threads), "a client thread is stuck")
    write_config(path, ports, False)  # back to the first set
    n0 = len(d.events("reload"))
    d.p.send_signal(signal.SIGHUP)
    # SIGHUPs sent while a reload runs may merge into one: the last one is
    # still read after the file was written (wait_fds below waits for it).
    wait_for(lambda: len(d.events("reload")) > n0, 10, "the last reload")
    check(d.alive(), "ppfwd died during the chaos")
    check(not chaos.failures, "%d checked echoes failed: %s" % (len(chaos.failures),
                                                               chaos.failures[:3]))
    check(chaos.ok >= 20 and chaos.vanished >= 20 and chaos.udp >= 10,
          "too little happened: %d echoes, %d vanished, %d UDP" % (chaos.ok, chaos.vanished,
                                                                   chaos.udp))
    failed = d.events("reload_failed") + d.events("reload_error")
    # The reason is logged before reload_failed (listen_failed, config_error...).
    why = [e for e in d.events() if e.get("level") in ("error", "warn")
           and e.get("msg") not in ("reload_failed", "reload_error")]
    check(not failed, "a reload failed: %r after %r" % (failed[:1], why[:3]))
    # The vanished UDP clients' sessions end at their 1 s idle timeout.
    d.wait_fds(base, 10)
    rss1 = rss_mib(d.pid)
    print("  %d reloads, %d checked echoes, %d vanished TCP clients (%d refused), %d UDP "
          "clients, flood of 400 connections + 2000 datagrams; RSS %.1f -> %.1f MiB"
          % (reloads, chaos.ok, chaos.vanished, chaos.errors, chaos.udp, rss0, rss1), flush=True)
    check(rss1 - rss0 <= RSS_BOUND_MIB, "RSS grew by %.1f MiB" % (rss1 - rss0))


if __name__ == "__main__":
    sys.exit(run())
