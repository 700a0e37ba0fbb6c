#!/usr/bin/python3
"""A log reader that stops reading never freezes the data plane: with
ppfwd's stderr on a pipe nobody drains, 3,000 connections still relay both
ways in bounded time and an open connection keeps relaying, while 3,000
more to a route whose upstream refuses log two warn lines each (not rate
limited: they fill the log buffer for sure); the lines that
did not fit are counted in ppfwd_log_lines_dropped_total, and once the pipe
is read again a log_lines_dropped line says how many (before: after about
64 KB of log every worker blocked in write(2)).
Run: /usr/bin/python3 tests/integration/test_log_pipe.py [SCENARIO...]"""

import collections
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (PPFWD, V4, EchoServer, Fail, check, eq, free_port,  # noqa: E402
                     on_cleanup, recv_all, run, scenario, wait_listen)

CONNS = 3000


def metric(mport, name):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        for line in r.read().decode().splitlines():
            if line.startswith(name + " "):
                return int(float(line.split()[1]))
    raise Fail("no sample %s" % name)


class PipeReader:
    """Reads ppfwd's stderr once started, until EOF (ppfwd gone); keeps
    every whole line. Raw os.read: a buffered file's lock would deadlock a
    close from another thread."""

    def __init__(self, fd):
        self.fd, self.lines, self.lock = fd, [], threading.Lock()
        self.t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self.t.start()

    def _run(self):
        rest = b""
        while True:
            try:
                b = os.read(self.fd, 65536)
            except OSError:
                return
            if not b:
                return
            rest += b
            *whole, rest = rest.split(b"\n")
            with self.lock:
                self.lines += [w.decode("utf-8", "replace") for w in whole]

    def events(self, name):
        with self.lock:
            lines = list(self.lines)
        out = []
        for line in lines:
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if e.get("msg") == name:
                out.append(e)
        return out

    def text(self):
        with self.lock:
            return "\n".join(self.lines)


def refused_once(port):
    """A connection the upstream refuses: ppfwd closes it (two warn lines)."""
    s = socket.create_connection((V4, port), timeout=5)
    try:
        eq(recv_all(s, timeout=5), b"", "a refused upstream's connection closes")
    finally:
        s.close()


def echo_once(port, i):
    msg = ("conn %d " % i).encode() * 20
    s = socket.create_connection((V4, port), timeout=5)
    try:
        s.sendall(msg)
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s, timeout=5)
    finally:
        s.close()
    eq(got, msg, "echo through the route (connection %d)" % i)


@scenario
def unread_stderr_does_not_stop_relaying():
    echo = EchoServer()
    port, dead, mport, nobody = free_port(), free_port(), free_port(), free_port()
    argv = [PPFWD, "--log-format", "json", "-l", "info", "-w", "2", "--metrics",
            "127.0.0.1:%d" % mport, "tcp://127.0.0.1:%d/127.0.0.1:%d" % (port, echo.port),
            "tcp://127.0.0.1:%d/127.0.0.1:%d" % (dead, nobody)]
    p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.PIPE, start_new_session=True)
    harness._procs.append(p)  # stopped and reaped whatever happens
    wait_listen(port, 10, p)
    wait_listen(dead, 10, p)
    wait_listen(mport, 10, p)
    held = socket.create_connection((V4, port), timeout=5)
    on_cleanup(held.close)
    held.sendall(b"first")
    eq(held.recv(5), b"first", "held connection before the flood")

    t0 = time.monotonic()
    for i in range(CONNS):
        echo_once(port, i)
        refused_once(dead)
        if time.monotonic() - t0 > 40:
            raise Fail("only %d of %d connections in 40 s" % (i, CONNS))
    dt = time.monotonic() - t0
    print("  %d connections relayed in %.1fs with stderr unread" % (CONNS, dt))
    held.sendall(b"after")
    eq(held.recv(5), b"after", "held connection relays after the flood")
    dropped = metric(mport, "ppfwd_log_lines_dropped_total")
    check(dropped > 0, "ppfwd_log_lines_dropped_total is %d with stderr unread" % dropped)

    r = PipeReader(p.stderr.fileno())
    r.start()

    def said():
        n = sum(e.get("dropped", 0) for e in r.events("log_lines_dropped"))
        return n if n > 0 and n == metric(mport, "ppfwd_log_lines_dropped_total") else None
    harness.wait_for(said, 10, "log_lines_dropped lines adding up to the metric")
    # Every connection's lines were written, dropped, or held back by the
    # rate limit; a log_lines_dropped line that found the buffer full again
    # counts as one more dropped line (its count goes to the next).
    def accounted():
        written = sum(len(r.events(m)) for m in ("conn_close", "upstream_error", "conn_refused"))
        total = metric(mport, "ppfwd_log_lines_dropped_total")
        held_back = metric(mport, "ppfwd_log_lines_suppressed_total")
        return (written, total, held_back)
    try:
        harness.wait_for(lambda: sum(accounted()) >= 3 * CONNS, 10,
                         "every connection's log lines written, dropped or suppressed")
    except Fail as e:
        raise Fail("%s: %r %r" % (e, accounted(), collections.Counter(
            json.loads(x).get("msg") for x in r.text().splitlines())))
    written, total, held_back = accounted()
    check(sum(accounted()) <= 3 * CONNS + 100,
          "lines written %d + dropped %d + suppressed %d, want 3 x %d (+ lost notices)"
          % (written, total, held_back, CONNS))
    print("  lines written %d, dropped %d, suppressed %d" % (written, total, held_back))
    for line in r.text().splitlines():
        check(line.startswith("{") and line.endswith("}"), "a cut log line: %r" % line[:120])

    held.close()
    p.send_signal(signal.SIGTERM)
    eq(p.wait(timeout=10), 0, "exit status")
    r.t.join(5)
    check("AddressSanitizer" not in r.text() and "runtime error:" not in r.text(),
          "sanitizer report:\n%s" % r.text()[-3000:])
    check(r.events("stopping"), "the exit's lines reach stderr")
    echo.close()


if __name__ == "__main__":
    sys.exit(run())
