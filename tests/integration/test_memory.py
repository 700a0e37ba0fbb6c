#!/usr/bin/python3
"""Memory per TCP connection (issue 10, item 8): the optimised build/ppfwd
(ASan inflates RSS) holding 2,000 connections in one phase at a time, each
phase in a fresh process: waiting for a PROXY header (silent clients),
connecting (an upstream that swallows SYNs), relaying then idle (one echo
each, one connection at a time). Each must cost at most 1 KiB of RSS above
the idle process; the figures are printed.
Run: /usr/bin/python3 tests/integration/test_memory.py [SCENARIO...]"""

import errno
import os
import selectors
import signal
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (ROOT, V4, EchoServer, Fail, check, connect, eq, on_cleanup,  # noqa: E402
                     recv_all, run, scenario, start_ppfwd, v1, wait_for)

# The optimised build; bench/memory.sh points PPFWD_OPT at the build it measures.
OPT = os.environ.get("PPFWD_OPT") or os.path.join(ROOT, "build", "ppfwd")
N = 2000
LIMIT = 1024  # bytes of RSS per connection, in every phase


def rss_bytes(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise Fail("no VmRSS for pid %d" % pid)


def black_hole():
    """A loopback port whose handshakes never complete: a backlog-0
    listener that never accepts, its queue filled here, so further SYNs are
    dropped."""
    ls = socket.socket()
    ls.bind((V4, 0))
    ls.listen(0)
    on_cleanup(ls.close)
    port = ls.getsockname()[1]
    for _ in range(16):
        s = socket.socket()
        s.setblocking(False)
        on_cleanup(s.close)
        rc = s.connect_ex((V4, port))
        if rc not in (0, errno.EINPROGRESS):
            raise Fail("filling the black hole: %s" % os.strerror(rc))
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_WRITE)
        done = sel.select(0.3)
        sel.close()
        if not done:
            return port
    raise Fail("the black hole never filled")


def measure(phase, route, open_one, fds_per_conn):
    """Starts build/ppfwd with route(port), warms it up with open_one (then
    closes that), opens N connections with open_one and returns the RSS
    bytes each costs once ppfwd holds all of them."""
    saved = harness.PPFWD
    harness.PPFWD = OPT
    try:
        d, (port,) = start_ppfwd(lambda ps: [route(ps[0])], 1, workers=1)
    finally:
        harness.PPFWD = saved
    held = []
    on_cleanup(lambda: [s.close() for s in held])
    for _ in range(3):
        open_one(port).close()
    time.sleep(0.3)
    fds0, base = sum(d.fds()), rss_bytes(d.pid)
    for _ in range(N):
        held.append(open_one(port))
    wait_for(lambda: sum(d.fds()) >= fds0 + fds_per_conn * N, 15,
             "ppfwd to hold %d connections" % N)
    time.sleep(0.5)
    per = (rss_bytes(d.pid) - base) / N
    print("  %-22s %4d B/conn (%.2f KiB) over %d connections, idle RSS %d KiB"
          % (phase, per, per / 1024, N, base // 1024), flush=True)
    for s in held:
        s.close()
    held.clear()
    # Draining (up to 10 s while connects hang) goes on during the next
    # phase; the harness reaps it and checks its exit status at the end.
    d.p.send_signal(signal.SIGTERM)
    return per


def open_silent(port):
    return connect(V4, port)


def open_echoed(port):
    s = connect(V4, port)
    s.sendall(b"x")
    eq(s.recv(1), b"x", "an echo")
    return s


@scenario
def rss_per_connection():
    check(os.access(OPT, os.X_OK), "%s is missing (make builds it)" % OPT)
    echo = EchoServer()
    hole = black_hole()
    got = {
        "waiting for a header": measure(
            "waiting for a header",
            lambda p: "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&header-timeout=60s"
            % (p, echo.port), open_silent, 1),
        "connecting": measure(
            "connecting",
            lambda p: "tcp://127.0.0.1:%d/127.0.0.1:%d?connect-timeout=60s" % (p, hole),
            open_silent, 2),
        "relaying, then idle": measure(
            "relaying, then idle",
            lambda p: "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=optional" % (p, echo.port),
            open_echoed, 2),
    }
    for phase, per in got.items():
        check(per <= LIMIT, "%s: %d bytes per connection, want <= %d" % (phase, per, LIMIT))


@scenario
def header_with_request_one_read():
    """A header and the request behind it (up to the 4 KiB the relay keeps
    for early bytes) still arrive at the upstream whole when they exceed the
    inline buffer: read in one go, kept on the heap only until connected."""
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required" % (ps[0], echo.port)], 1)
    for size in (1, 100, 300, 1000, 4000, 20000):
        body = bytes((i * 31 + size) & 0xFF for i in range(size))
        s = connect(V4, port)
        s.sendall(v1(("192.0.2.5", 5), ("192.0.2.6", 6)) + body)
        s.shutdown(socket.SHUT_WR)
        eq(recv_all(s, 5, limit=size + 1), body, "echo of %d bytes after the header" % size)
        s.close()


if __name__ == "__main__":
    sys.exit(run())
