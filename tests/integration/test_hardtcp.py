#!/usr/bin/python3
"""TCP hardening (issue 10): a bulk transfer when no pipe can be had, pipes of
half-closed connections, a header sent after header-timeout's silence, the
header phase's memory per connection, a lone or all-paused upstream.
Run: /usr/bin/python3 tests/integration/test_hardtcp.py [SCENARIO...]"""

import os
import selectors
import socket
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (V4, EchoServer, Fail, Server, capture_handler, check, connect,  # noqa: E402
                     echo_handler, eq, expect_closed, free_port, on_cleanup, parse_header,
                     rand_bytes, recv_all, recv_line, run, scenario, sha256, start_ppfwd, v1, v2,
                     wait_for, PIPE_CACHE_FDS)


def echo_once(port, msg=b"hello\n"):
    s = connect(V4, port)
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 5), msg, "echo")
    s.close()


def bulk_echo(port, size, seed):
    """Sends size random bytes through port to an echo upstream while reading
    the echo on a thread; returns (sha sent, sha received, bytes received)."""
    data = rand_bytes(size, seed)
    s = connect(V4, port, timeout=20)
    got = []

    def rd():
        try:
            got.append(recv_all(s, 20, limit=size + 1))
        except Fail as e:
            got.append(e)

    t = threading.Thread(target=rd, daemon=True)
    t.start()
    try:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
    except OSError as e:
        raise Fail("sending the bulk data failed: %r" % e)
    t.join(25)
    s.close()
    check(got and not isinstance(got[0], Fail), "no echo: %r" % (got[:1],))
    return sha256(data), sha256(got[0]), len(got[0])


@scenario
def bulk_when_no_pipe_can_be_had():
    """Item 5: RLIMIT_NOFILE 64, filled with idle connections until only 2-3
    fds are free: the bulk connection gets its two sockets but no pipe
    (pipe2 says EMFILE). It copies instead: 4 MiB each way, SHA-256 equal."""
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)],
                             1, workers=1, nofile=64)
    echo_once(port)
    time.sleep(0.2)
    other, pipes = d.fds()
    eq(pipes, 0, "pipes before any bulk transfer")
    free = 64 - other
    check(free >= 6, "only %d fds free at the start" % free)
    held = []
    on_cleanup(lambda: [s.close() for s in held])
    for i in range((free - 2) // 2):
        s = connect(V4, port)
        s.sendall(b"x")
        eq(s.recv(1), b"x", "idle connection %d's echo" % i)
        held.append(s)
    left = 64 - sum(d.fds())
    check(left in (2, 3), "%d fds left, want 2 or 3" % left)
    sent, got, n = bulk_echo(port, 4 << 20, 5)
    eq(n, 4 << 20, "bytes echoed through a connection without a pipe")
    eq(got, sent, "SHA-256 of the echo")
    d.wait_event("conn_close", lambda e: e.get("bytes_in") == 4 << 20 and not e.get("error"))
    for s in held:
        s.close()


class Sink:
    """An upstream that reads every connection to its EOF and then keeps it
    open, never writing: the client->upstream way ends, the other stays."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind((V4, 0))
        self.sock.listen(1024)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.eofs = self.bytes = 0
        self.conns = []
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ)
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def _run(self):
        while not self.stopping:
            for key, _ in self.sel.select(0.1):
                if key.fileobj is self.sock:
                    try:
                        c, _ = self.sock.accept()
                    except OSError:
                        continue
                    c.setblocking(False)
                    self.conns.append(c)
                    self.sel.register(c, selectors.EVENT_READ)
                    continue
                try:
                    b = key.fileobj.recv(1 << 16)
                except (BlockingIOError, InterruptedError):
                    continue
                except OSError:
                    b = b""
                self.bytes += len(b)
                if not b:
                    self.eofs += 1
                    self.sel.unregister(key.fileobj)

    def close(self):
        self.stopping = True
        self.t.join(2)
        for c in self.conns:
            c.close()
        self.sock.close()


@scenario
def half_closed_hold_no_pipe():
    """Item 6: 150 connections each send 256 KiB (spliced: bulk) then shut
    their write side; the upstream keeps its side open. The finished ways
    give their pipes back: ppfwd holds no more pipe fds than its worker's
    pipe cache (64 pairs), where it held one pair per connection before."""
    sink = Sink()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], sink.port)],
                             1, workers=1)
    n, size = 150, 256 << 10
    data = rand_bytes(size, 6)
    clients = []
    on_cleanup(lambda: [s.close() for s in clients])
    for _ in range(n):
        s = connect(V4, port, timeout=10)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        clients.append(s)
    wait_for(lambda: sink.eofs >= n, 20, "the upstream to read all %d EOFs" % n)
    eq(sink.bytes, n * size, "bytes the upstream got")
    time.sleep(0.2)
    other, pipes = d.fds()
    print("  %d half-closed connections: %d pipe fds held (cache cap %d)"
          % (n, pipes, PIPE_CACHE_FDS))
    check(pipes <= PIPE_CACHE_FDS, "%d pipe fds held by %d half-closed connections" % (pipes, n))
    check(other >= 2 * n, "the connections are still open (%d non-pipe fds)" % other)
    for s in clients:
        s.close()


def greet_handler(c, srv):
    """A server-speaks-first upstream: a greeting, then it records all it
    gets until EOF."""
    c.sendall(b"220 hello\n")
    c.settimeout(5)
    data = b""
    try:
        while True:
            d = c.recv(65536)
            if not d:
                break
            data += d
    except (OSError, socket.timeout):
        pass
    srv.add(data)


def silent_then(port, *parts):
    """Connects, stays silent past header-timeout, reads the greeting the
    upstream sent meanwhile, then sends parts (0.1 s apart)."""
    s = connect(V4, port)
    eq(recv_line(s, 5), b"220 hello\n", "the upstream's greeting after the silence")
    for i, p in enumerate(parts):
        if i:
            time.sleep(0.1)
        s.sendall(p)
    return s


@scenario
def header_after_silence():
    """Item 7: accept-proxy=optional, header-timeout=300ms. A client silent
    that long is served as direct (server speaks first); if it then opens
    with a PROXY header, the connection is closed and the header never
    reaches the upstream: from an untrusted source (untrusted), and from a
    trusted one too (a late header; counted as a header timeout), whole or
    split after a 2-byte prefix. Data that only starts like a header
    ("\\r\\nhello", "PRIVMSG") goes on intact."""
    up = Server(greet_handler)
    q = "accept-proxy=optional&header-timeout=300ms"
    d, (untr, tr) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?%s&trusted=127.0.0.2/32" % (ps[0], up.port, q),
        "tcp://127.0.0.1:%d/127.0.0.1:%d?%s" % (ps[1], up.port, q)], 2)
    hdr1 = v1(("192.0.2.9", 4000), ("192.0.2.1", 25))
    hdr2 = v2(("192.0.2.9", 4000), ("192.0.2.1", 25))
    for port, parts in ((untr, [hdr1 + b"MAIL\n"]), (untr, [hdr2[:2], hdr2[2:] + b"x\n"]),
                        (tr, [hdr1 + b"MAIL\n"]), (tr, [hdr2[:2], hdr2[2:9], hdr2[9:]])):
        s = silent_then(port, *parts)
        expect_closed(s, 3)
        s.close()
    untrusted = d.wait_event("proxy_header_refused", lambda e: "untrusted" in e.get("reason", ""),
                             count=2)
    late = d.wait_event("proxy_header_refused",
                        lambda e: e.get("reason") == "PROXY header after header-timeout", count=2)
    eq(len(untrusted) + len(late), 4, "refusals")
    for port, parts, want in ((untr, [b"\r\n", b"hello\n"], b"\r\nhello\n"),
                              (tr, [b"PRIVMSG #x :hi\n"], b"PRIVMSG #x :hi\n"),
                              (tr, [b"P", b"ING\n"], b"PING\n")):
        s = silent_then(port, *parts)
        s.shutdown(socket.SHUT_WR)
        eq(recv_all(s, 5), b"", "nothing more from the upstream")
        s.close()
        wait_for(lambda: any(r == want for r in up.results), 5, "the upstream to get %r" % want)
    for r in up.results:
        check(b"PROXY" not in r and b"QUIT" not in r, "a late header reached the upstream: %r" % r)


@scenario
def header_split_at_every_byte():
    """Item 8: the header buffer starts small and grows only to a v2
    header's declared length: a v1 header and a 549-byte v2 header with TLVs
    (larger than the inline buffer), each split at every byte boundary
    (sent as two segments 30 ms apart, 40 connections at a time), followed
    by data, are all accepted, relayed with their address and TLVs, and the
    data follows intact."""
    cap = Server(capture_handler)
    d, (port,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&send-proxy=v2" % (ps[0], cap.port)],
        1)
    tlvs = [(0xE1, bytes(range(200))), (0xE2, b"a" * 300), (0x02, b"example.test")]
    big = v2(("192.0.2.77", 1234), ("198.51.100.2", 443), tlvs=tlvs)
    check(len(big) > 512, "the v2 header is larger than the inline buffer")
    cases = []
    for hdr, src in ((v1(("192.0.2.66", 4321), ("198.51.100.1", 80)), ("192.0.2.66", 4321)),
                     (big, ("192.0.2.77", 1234))):
        for k in range(1, len(hdr)):
            cases.append((hdr, src, k))
    for i in range(0, len(cases), 40):
        batch = cases[i:i + 40]
        socks = []
        for hdr, _, k in batch:
            s = connect(V4, port)
            s.sendall(hdr[:k])
            socks.append(s)
        time.sleep(0.03)
        for s, (hdr, _, k) in zip(socks, batch):
            s.sendall(hdr[k:] + b"split %d\n" % k)
        for s in socks:
            eq(recv_all(s, 10), b"ok\n", "the upstream's answer")
            s.close()
    wait_for(lambda: len(cap.results) >= len(cases), 10, "every connection at the upstream")
    want = {}
    for hdr, src, k in cases:
        want.setdefault((src, b"split %d\n" % k), 0)
        want[(src, b"split %d\n" % k)] += 1
    for r in cap.results:
        h, n = parse_header(r)
        key = (h["src"], r[n:])
        check(key in want, "unexpected header or data at the upstream: %r %r" % key)
        want[key] -= 1
        if h["src"][0] == "192.0.2.77":
            eq(h["tlvs"], tlvs, "TLVs passed on")
    eq([k for k, v in want.items() if v != 0], [], "connections missing at the upstream")
    print("  %d splits of a %d-byte v1 and a %d-byte v2 header" % (len(cases), len(cases[0][0]),
                                                                  len(big)))


def metric(mport, name, route):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % mport, timeout=5) as r:
        text = r.read().decode()
    key = '%s{route="%s"}' % (name, route)
    for line in text.splitlines():
        if line.startswith(key + " "):
            return float(line.rsplit(" ", 1)[1])
    raise Fail("no sample %s in:\n%s" % (key, text[:2000]))


@scenario
def failed_checks_count_as_upstream_errors():
    """A failed health check is a failed connect: it counts in
    ppfwd_upstream_errors_total, one per check, with no client at all; the
    log says upstream_down once, not once per check."""
    dead, mport = free_port(), free_port()
    routes = lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d?check=200ms" % (ps[0], dead)]  # noqa: E731
    d, (port,) = start_ppfwd(routes, 1, workers=1, extra=["--metrics", "127.0.0.1:%d" % mport])
    name = routes([port])[0]
    d.wait_event("upstream_down", timeout=3.0)
    n = wait_for(lambda: (lambda v: v if v >= 4 else None)(
        metric(mport, "ppfwd_upstream_errors_total", name)), 5, "four failed checks counted")
    eq(len(d.events("upstream_down")), 1, "upstream_down lines")
    eq(d.events("upstream_error"), [], "upstream_error lines (no client connected)")
    print("  %d failed checks counted" % n)


@scenario
def paused_upstreams_still_tried():
    """Item 11: after a failed connect, a route's only upstream is tried
    again at once (not "no live upstream" for 2 s), and when both upstreams
    of a route are paused both are tried again; every failed connect counts
    in ppfwd_upstream_errors_total. Once the upstream is back, the next
    client is served at once, well within the 2 s pause."""
    dead, dead2, mport = free_port(), free_port(), free_port()
    routes = lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], dead),  # noqa: E731
                         "tcp://127.0.0.1:%d/127.0.0.1:%d,127.0.0.1:%d" % (ps[1], dead, dead2)]
    d, (lone, pair) = start_ppfwd(routes, 2, workers=1, extra=["--metrics", "127.0.0.1:%d" % mport])
    names = routes([lone, pair])
    for port, n in ((lone, 3), (pair, 4)):
        for _ in range(n):
            s = connect(V4, port)
            expect_closed(s, 3)
            s.close()
    d.wait_event("upstream_error", count=7)
    refused = [e for e in d.events("conn_refused") if "no live" in e.get("reason", "")]
    eq(refused, [], "connections refused with no live upstream")
    eq(metric(mport, "ppfwd_upstream_errors_total", names[0]), 3, "errors of the lone upstream")
    eq(metric(mport, "ppfwd_upstream_errors_total", names[1]), 4, "errors of the paused pair")
    t_fail = time.monotonic()
    Server(echo_handler, port=dead)
    s = connect(V4, lone)
    s.sendall(b"back\n")
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 3), b"back\n", "the lone upstream's echo once it is back")
    s.close()
    check(time.monotonic() - t_fail < 1.5, "served only after the pause ran out")


if __name__ == "__main__":
    sys.exit(run())
