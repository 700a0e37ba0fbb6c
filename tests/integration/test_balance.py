#!/usr/bin/python3
"""Several upstreams: round robin alternates, leastconn prefers the idle
upstream, source sticks and moves only the clients of an upstream that went
down, health checks take a killed upstream out of the rotation within 3 s
and bring it back after it returns (its probes carry a LOCAL header when the
route sends PROXY), a connect refused by one upstream goes on to the next,
and with every upstream down connections are refused at once.
Run: /usr/bin/python3 tests/integration/test_balance.py [SCENARIO...]"""

import os
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (V4, Fail, check, connect, eq, expect_closed, free_port,  # noqa: E402
                     on_cleanup, run, scenario, start_ppfwd, wait_for)


class Named:
    """Answers every connection with its name, then closes; or holds the
    connection open when hold is set. Records the first bytes it got."""

    def __init__(self, name, port=0, hold=False):
        self.name, self.hold, self.got = name, hold, []
        self.s = socket.socket()
        self.s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.s.bind((V4, port))
        self.s.listen(256)
        self.port = self.s.getsockname()[1]
        self.held = []
        self.stopped = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def _run(self):
        self.s.settimeout(0.2)
        while not self.stopped:
            try:
                c, _ = self.s.accept()
            except OSError:
                continue
            try:
                # Read the whole request (the client half-closes) before
                # answering: closing with unread bytes would reset the
                # connection and lose the answer.
                c.settimeout(2.0)
                data = b""
                try:
                    while not self.hold or not data:
                        b = c.recv(4096)
                        if not b:
                            break
                        data += b
                except OSError:
                    pass
                self.got.append(data)
                c.sendall(self.name.encode() + b"\n")
            except OSError:
                pass
            if self.hold:
                self.held.append(c)
            else:
                c.close()

    def close(self):
        self.stopped = True
        self.t.join(2)
        for c in self.held:
            c.close()
        self.held = []
        self.s.close()


def ask(port, payload=b"hi", src=None):
    """Connects (optionally from a given 127.x source), returns the name."""
    s = socket.socket()
    if src:
        s.bind((src, 0))
    s.settimeout(5)
    s.connect((V4, port))
    data = b""
    try:
        s.sendall(payload)
        s.shutdown(socket.SHUT_WR)
        while not data.endswith(b"\n"):
            b = s.recv(64)
            if not b:
                break
            data += b
    except (ConnectionResetError, BrokenPipeError, OSError):
        pass  # refused by ppfwd (its upstream is down): no answer
    s.close()
    return data.decode().strip()


def route(ports, ups, query):
    return ["tcp://127.0.0.1:%d/%s?%s" % (ports[0], ",".join("127.0.0.1:%d" % u.port for u in ups),
                                          query)]


@scenario
def roundrobin_alternates():
    ups = [Named("a"), Named("b"), Named("c")]
    d, (port,) = start_ppfwd(lambda ps: route(ps, ups, "balance=roundrobin"), 1, workers=1)
    got = [ask(port) for _ in range(6)]
    eq(got, ["a", "b", "c", "a", "b", "c"], "round robin order")


@scenario
def leastconn_prefers_idle():
    busy, idle = Named("busy", hold=True), Named("idle")
    d, (port,) = start_ppfwd(lambda ps: route(ps, [busy, idle], "balance=leastconn"), 1,
                             workers=1)
    # Two long connections: one lands on each; the one on "idle" ends at once.
    first = socket.create_connection((V4, port), timeout=5)
    first.sendall(b"x")
    wait_for(lambda: busy.held or None, 5, "a connection held by busy")
    got = []
    for i in range(4):
        got.append(ask(port))
        # The previous connection must be closed in ppfwd too, or its count
        # still ties the held one.
        d.wait_event("conn_close", count=i + 1)
    eq(got, ["idle"] * 4, "leastconn sends new connections to the idle upstream")
    first.close()


@scenario
def source_sticks_and_moves_only_the_downed():
    ups = [Named("a"), Named("b"), Named("c")]
    d, (port,) = start_ppfwd(lambda ps: route(ps, ups, "balance=source&check=200ms"), 1)
    srcs = ["127.0.%d.%d" % (i // 200, 1 + i % 200) for i in range(60)]
    before = {s: ask(port, src=s) for s in srcs}
    for s in srcs[:10]:
        eq(ask(port, src=s), before[s], "sticky for %s" % s)
    check(len(set(before.values())) == 3, "source spreads over all three: %r" %
          sorted(set(before.values())))
    down = ups[0]
    port_a = down.port
    down.close()

    def moved():
        now = {s: ask(port, src=s) for s in srcs}
        return now if "a" not in now.values() else None
    after = wait_for(moved, 5, "clients of a to move")
    for s in srcs:
        if before[s] != "a":
            eq(after[s], before[s], "a client of a live upstream stays (%s)" % s)
    ups[0] = Named("a", port=port_a)  # back on the same port
    back = wait_for(lambda: ({s: ask(port, src=s) for s in srcs}
                             if all(ask(port, src=s) == before[s] for s in srcs[:20]) else None),
                    5, "clients to return to a")
    eq(back, before, "every client back where it was")


@scenario
def check_removes_and_restores():
    ups = [Named("a"), Named("b")]
    d, (port,) = start_ppfwd(lambda ps: route(ps, ups, "check=1s&send-proxy=v2"), 1)
    wait_for(lambda: any(g.startswith(b"\r\n\r\n\x00\r\nQUIT\n\x20\x00") for g in ups[1].got)
             or None, 5, "a LOCAL v2 header in a health probe")
    port_a = ups[0].port
    ups[0].close()
    t0 = time.monotonic()
    d.wait_event("upstream_down", timeout=3.0)
    check(time.monotonic() - t0 <= 3.0, "down within 3 s")
    got = [ask(port) for _ in range(6)]
    check(all(g.endswith("b") or g == "b" or g.endswith("\nb") for g in got),
          "only b gets traffic: %r" % got)
    ups[0] = Named("a", port=port_a)
    d.wait_event("upstream_up", timeout=3.0)
    got = [ask(port) for _ in range(4)]
    check(any(g.endswith("a") for g in got), "a gets traffic again: %r" % got)


@scenario
def failed_connect_goes_on_to_the_next():
    """next-upstream=on: a connect refused by one upstream goes on to the
    next live one, for the same client (its bytes arrive whole); each failure
    is logged. With a lone upstream there is nothing to go on to: closed.
    Without the key (off), the client that drew the dead upstream is closed."""
    dead = Named("dead")
    dead_port = dead.port
    dead.close()
    ups = [Named("a"), Named("b")]

    class Port:
        port = dead_port
    d, (port, lone, off) = start_ppfwd(
        lambda ps: route(ps, [Port, ups[0], ups[1]], "balance=roundrobin&next-upstream=on") +
        ["tcp://127.0.0.1:%d/127.0.0.1:%d?next-upstream=on" % (ps[1], dead_port)] +
        ["tcp://127.0.0.1:%d/127.0.0.1:%d,127.0.0.1:%d" % (ps[2], dead_port, ups[0].port)],
        3, workers=1)
    got = [ask(port, payload=b"hello %d" % i) for i in range(6)]
    check(all(g in ("a", "b") for g in got), "every client answered: %r" % got)
    got_bytes = sorted(ups[0].got + ups[1].got)
    eq(got_bytes, sorted(b"hello %d" % i for i in range(6)), "each client's bytes, once")
    errs = d.events("upstream_error")
    check(errs and all(e.get("upstream") == "127.0.0.1:%d" % dead_port for e in errs),
          "the refused connects logged: %r" % errs)
    eq(ask(lone), "", "a lone refused upstream: closed")
    got = [ask(off) for _ in range(2)]
    eq(sorted(got), ["", "a"], "next-upstream off: the client that drew the dead one is closed")
    d.wait_event("conn_close", lambda e: e.get("upstream") == "127.0.0.1:%d" % dead_port
                 and e.get("error"))


@scenario
def all_down_refused_at_once():
    a = Named("a")
    port_a = a.port
    a.close()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d?check=200ms"
                                         % (ps[0], port_a)], 1)
    d.wait_event("upstream_down", timeout=3.0)
    s = connect(V4, port)
    took = expect_closed(s)
    check(took < 0.5, "refused at once, took %.2fs" % took)
    d.wait_event("conn_refused", lambda e: "no live upstream" in e.get("reason", ""))


if __name__ == "__main__":
    sys.exit(run())
