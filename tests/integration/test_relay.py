#!/usr/bin/python3
"""ppfwd relays bytes intact: 64 MiB each way with SHA-256, 500 concurrent
echoing connections, half-close in both directions, and the conn_close log
line with its byte counts.
Run: /usr/bin/python3 tests/integration/test_relay.py [SCENARIO...]"""

import hashlib
import json
import os
import selectors
import socket
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PPFWD, V4, V6, EchoServer, Fail, Server, check, connect, eq, fmt_addr,  # noqa: E402
                     recv_all, recv_line, run, scenario, start_ppfwd, wait_for, capture_handler,
                     parse_header, v1, v2, whoami)

# Extra ppfwd options of the relay scenarios; the *_copy variants at the end
# run them again with the buffered relay (--relay copy) instead of splice.
RELAY = []
MIB = 1 << 20
BULK = 64 * MIB
CHUNK = 256 * 1024


def stream_out(sock, total, seed, result):
    """Sends `total` bytes of a seeded stream; result['sha'] is its hash."""
    import random
    rng = random.Random(seed)
    h = hashlib.sha256()
    sent = 0
    try:
        while sent < total:
            b = rng.randbytes(min(CHUNK, total - sent))
            h.update(b)
            sock.sendall(b)
            sent += len(b)
        result["sha"] = h.hexdigest()
    except OSError as e:
        result["error"] = repr(e)
    result["sent"] = sent


def stream_in(sock, total, timeout):
    """Reads exactly `total` bytes (or until EOF); returns (count, sha)."""
    h = hashlib.sha256()
    got = 0
    end = time.monotonic() + timeout
    sock.settimeout(timeout)
    while got < total:
        if time.monotonic() > end:
            raise Fail("read %d of %d bytes in %.0fs" % (got, total, timeout))
        d = sock.recv(min(1 << 20, total - got))
        if not d:
            break
        h.update(d)
        got += len(d)
    return got, h.hexdigest()


def bulk_handler(c, srv):
    r = {}
    t = threading.Thread(target=stream_out, args=(c, BULK, 2, r), daemon=True)
    t.start()
    got, sha = stream_in(c, BULK, 60)
    t.join(60)
    srv.add({"got": got, "sha": sha, "sent_sha": r.get("sha"), "error": r.get("error")})
    c.shutdown(socket.SHUT_WR)
    c.settimeout(5)
    try:
        c.recv(1)
    except OSError:
        pass


@scenario
def bulk_64mib_each_way():
    """64 MiB client->upstream and 64 MiB upstream->client at the same time,
    SHA-256 on both ends; then conn_close carries both byte counts."""
    srv = Server(bulk_handler)
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], srv.port)], 1,
                             extra=RELAY)
    base = d.fds()
    s = connect(V4, port)
    me = s.getsockname()
    r = {}
    t = threading.Thread(target=stream_out, args=(s, BULK, 1, r), daemon=True)
    t.start()
    got, sha = stream_in(s, BULK, 90)
    t.join(90)
    check("error" not in r, "client send: %s" % r.get("error"))
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 10), b"", "EOF after the bulk data")
    s.close()
    wait_for(lambda: srv.results, 10, "the backend's result")
    b = srv.results[0]
    eq(b["got"], BULK, "bytes the backend received")
    eq(b["sha"], r["sha"], "SHA-256 client->upstream")
    eq(got, BULK, "bytes the client received")
    eq(sha, b["sent_sha"], "SHA-256 upstream->client")
    ev = d.wait_event("conn_close", lambda e: e.get("client") == fmt_addr(me))[0]
    eq((ev.get("bytes_in"), ev.get("bytes_out")), (BULK, BULK), "conn_close byte counts")
    eq(ev.get("peer"), fmt_addr(me), "conn_close peer")
    eq(ev.get("upstream"), "127.0.0.1:%d" % srv.port, "conn_close upstream")
    check(isinstance(ev.get("duration_ms"), int), "duration_ms %r" % ev.get("duration_ms"))
    check(not ev.get("error"), "conn_close error %r" % ev.get("error"))
    d.wait_fds(base)


@scenario
def concurrent_500_echo():
    """500 connections open at once, each echoing its own message."""
    n = 500
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)], 1,
                             extra=RELAY)
    base = d.fds()
    socks = []
    try:
        for i in range(n):
            socks.append(connect(V4, port))
        # All 500 are relayed at the same time: every one reached the backend.
        wait_for(lambda: echo.conns >= n, 20, "%d upstream connections (have %d)" % (n, echo.conns))
        sel = selectors.DefaultSelector()
        want = {}
        for i, s in enumerate(socks):
            msg = ("conn %d " % i).encode() * 50 + b"\n"
            s.sendall(msg)
            s.setblocking(False)
            want[s] = [msg, b""]
            sel.register(s, selectors.EVENT_READ)
        end = time.monotonic() + 30
        left = n
        while left and time.monotonic() < end:
            for key, _ in sel.select(0.5):
                s = key.fileobj
                try:
                    d_ = s.recv(65536)
                except BlockingIOError:
                    continue
                w = want[s]
                check(d_, "connection closed before its echo")
                w[1] += d_
                if len(w[1]) >= len(w[0]):
                    eq(w[1], w[0], "echo")
                    sel.unregister(s)
                    left -= 1
        eq(left, 0, "connections still waiting for their echo")
        sel.close()
    finally:
        for s in socks:
            s.close()
    d.wait_event("conn_close", count=n, timeout=15)
    d.wait_fds(base, 15)


def sink_then_reply(c, srv):
    """Reads until EOF, then answers the count and hash of what came."""
    h = hashlib.sha256()
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        h.update(d)
        n += len(d)
    c.sendall(b"%d %s\n" % (n, h.hexdigest().encode()))


def reply_then_sink(c, srv):
    """Sends its reply and shuts down writing first, then still reads all the
    client sends and records it."""
    c.sendall(b"early reply\n")
    c.shutdown(socket.SHUT_WR)
    n = 0
    while True:
        d = c.recv(65536)
        if not d:
            break
        n += len(d)
    srv.add(n)


@scenario
def half_close_client_first():
    """The client sends, shuts down writing, and still receives the reply
    the upstream sends after seeing EOF (v4 and v6)."""
    srv = Server(sink_then_reply)
    d, (p4, p6) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], srv.port),
        "tcp://[::1]:%d/127.0.0.1:%d" % (ps[1], srv.port)], 2, hosts=[V4, V6], extra=RELAY)
    base = d.fds()
    data = os.urandom(3 * MIB + 17)
    for host, port in ((V4, p4), (V6, p6)):
        s = connect(host, port)
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        eq(recv_all(s, 10), b"%d %s\n" % (len(data), hashlib.sha256(data).hexdigest().encode()),
           "reply after half-close (%s)" % host)
        s.close()
    d.wait_fds(base)


@scenario
def half_close_upstream_first():
    """The upstream replies and shuts down writing; the client sees EOF yet
    can still send, and all it sends reaches the upstream."""
    srv = Server(reply_then_sink)
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], srv.port)], 1,
                             extra=RELAY)
    base = d.fds()
    s = connect(V4, port)
    eq(recv_all(s, 5), b"early reply\n", "reply then EOF")
    s.sendall(b"x" * (MIB + 3))
    s.shutdown(socket.SHUT_WR)
    wait_for(lambda: srv.results, 10, "the upstream to read to EOF")
    eq(srv.results[0], MIB + 3, "bytes sent after the upstream's half-close")
    s.close()
    d.wait_fds(base)


@scenario
def header_then_data_exactly_one():
    """Exactly one header is consumed: a second header and the data that
    came in the same write are the client's data, sent upstream right after
    ppfwd's own header. A header trickling in byte by byte is assembled."""
    cap = Server(capture_handler)
    d, (port,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&send-proxy=v2&tlvs=pass"
        % (ps[0], cap.port)], 1)
    first = v2(("192.0.2.10", 1000), ("198.51.100.1", 443), [(2, b"a.example")])
    second = v1(("203.0.113.9", 2000), ("198.51.100.1", 443))
    s = connect(V4, port)
    s.sendall(first + second + b"data\n")
    eq(recv_all(s, 5), b"ok\n", "answer")
    s.close()
    wait_for(lambda: cap.results, 5, "the capture")
    got = cap.results.pop()
    h, n = parse_header(got)
    eq((h["src"], h["dst"]), (("192.0.2.10", 1000), ("198.51.100.1", 443)), "relayed addresses")
    check((2, b"a.example") in h["tlvs"], "authority TLV passed: %r" % h["tlvs"])
    eq(got[n:], second + b"data\n", "bytes after the one header")
    s = connect(V4, port)
    for i in range(len(first)):
        s.sendall(first[i:i + 1])
        time.sleep(0.005)
    s.sendall(b"slow\n")
    eq(recv_all(s, 5), b"ok\n", "answer to a trickled header")
    s.close()
    wait_for(lambda: cap.results, 5, "the capture")
    got = cap.results.pop()
    h, n = parse_header(got)
    eq((h["src"], got[n:]), (("192.0.2.10", 1000), b"slow\n"), "trickled header and data")


@scenario
def local_header_goes_on_as_local():
    """A LOCAL header (a health check) from a trusted proxy is sent on as
    LOCAL; v1 UNKNOWN too."""
    wp, wport = whoami(V4, "required")
    d, (port,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&trusted=127.0.0.0/8&send-proxy=v2"
        % (ps[0], wport)], 1)
    for hdr in (v2(("0.0.0.0", 0), ("0.0.0.0", 0), local=True), b"PROXY UNKNOWN\r\n"):
        s = connect(V4, port)
        s.sendall(hdr)
        line = recv_line(s)
        s.close()
        j = json.loads(line)
        eq((j.get("proxy") or {}).get("command"), "local", "command seen upstream for %r" % hdr[:14])


@scenario
def allow_deny_on_real_client():
    """deny/allow apply to the client the header names, not to the proxy
    that sent it."""
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&allow=192.0.2.0/24,198.51.100.0/24"
        "&deny=192.0.2.128/25" % (ps[0], echo.port)], 1)
    for src, served in ((("192.0.2.10", 1), True), (("192.0.2.200", 1), False),
                        (("198.51.100.7", 1), True), (("203.0.113.1", 1), False)):
        s = connect(V4, port)
        s.sendall(v1(src, ("127.0.0.1", port)) + b"hi\n")
        s.shutdown(socket.SHUT_WR)
        got = recv_all(s, 5)
        s.close()
        eq(got, b"hi\n" if served else b"", "client %s:%d" % src)
    d.wait_event("conn_refused", count=2)


@scenario
def conn_open_logged_at_debug():
    """conn_open (debug, docs/log-events.md): the peer, the address it
    connected to and, without accept-proxy, the client; with accept-proxy
    the client is not known yet at accept and is left out."""
    echo = EchoServer()
    d, (plain, hdr) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port),
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required" % (ps[1], echo.port)], 2,
        extra=RELAY)
    s = connect(V4, plain)
    me = fmt_addr(s.getsockname())
    s.sendall(b"hi")
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 5), b"hi", "echo")
    s.close()
    e = d.wait_event("conn_open", lambda e: e.get("peer") == me)[0]
    eq(e.get("client"), me, "conn_open client")
    eq(e.get("local"), "127.0.0.1:%d" % plain, "conn_open local")
    eq(e.get("level"), "debug", "conn_open level")
    s = connect(V4, hdr)
    me = fmt_addr(s.getsockname())
    s.sendall(v1(("192.0.2.1", 5), ("127.0.0.1", hdr)) + b"x")
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 5), b"x", "echo after a header")
    s.close()
    e = d.wait_event("conn_open", lambda e: e.get("peer") == me)[0]
    check("client" not in e, "no client before the header: %r" % e)
    eq(e.get("local"), "127.0.0.1:%d" % hdr, "conn_open local (accept-proxy)")


@scenario
def idle_timeout_closes():
    """idle-timeout=1s closes a connection with no traffic either way, and
    not one that keeps talking."""
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?idle-timeout=1s" % (ps[0], echo.port)], 1)
    busy = connect(V4, port)
    idle = connect(V4, port)
    idle.sendall(b"x")
    idle.settimeout(3)
    eq(idle.recv(10), b"x", "echo before going idle")
    t0 = time.monotonic()
    for i in range(8):  # 1.6 s of traffic every 0.2 s
        busy.sendall(b"%d" % i)
        busy.settimeout(3)
        eq(busy.recv(10), b"%d" % i, "echo on the busy connection")
        time.sleep(0.2)
    from harness import expect_closed
    expect_closed(idle, 3)
    dt = time.monotonic() - t0
    check(0.7 <= dt <= 3.5, "idle connection closed after %.2fs, want ~1s" % dt)
    busy.sendall(b"still")
    eq(busy.recv(10), b"still", "the busy connection outlived the idle timeout")
    busy.close()
    idle.close()


@scenario
def drain_timeout_closes_what_is_left():
    """--drain-timeout 500ms: at SIGTERM a connection that stays open is
    closed after half a second (not the default 10 s) and ppfwd exits 0;
    a bad value is refused at start."""
    import signal as sig
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)],
                             1, extra=["--drain-timeout", "500ms"])
    s = connect(V4, port)
    s.sendall(b"hold\n")
    s.settimeout(3)
    eq(s.recv(100), b"hold\n", "echo before SIGTERM")
    t0 = time.monotonic()
    d.p.send_signal(sig.SIGTERM)
    try:
        rc = d.p.wait(5)
    except Exception:
        raise Fail("ppfwd still running 5 s after SIGTERM with --drain-timeout 500ms")
    took = time.monotonic() - t0
    check(0.4 <= took < 3, "exited %.2f s after SIGTERM" % took)
    eq(rc, 0, "exit status after the drain timeout")
    eq(d.events("stopping")[0].get("drain_ms"), 500, "stopping names the drain timeout")
    check(s.recv(100) == b"", "the held connection closed")
    s.close()
    r = subprocess.run([PPFWD, "--drain-timeout", "soon", "tcp://127.0.0.1:1/127.0.0.1:2"],
                       capture_output=True, text=True, timeout=5)
    check(r.returncode != 0 and "--drain-timeout" in r.stderr, "bad value refused: %r" % r.stderr)


@scenario
def sigterm_drains():
    """SIGTERM: ppfwd stops accepting, lets an open connection finish, then
    exits 0 (well before the 10 s drain timeout once it is done)."""
    import signal as sig
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)], 1)
    s = connect(V4, port)
    s.sendall(b"before\n")
    s.settimeout(3)
    eq(s.recv(100), b"before\n", "echo before SIGTERM")
    d.p.send_signal(sig.SIGTERM)
    wait_for(lambda: not __import__("harness").listening(port), 5, "the listener to close")
    check(d.alive(), "ppfwd exited with a connection open (no drain)")
    s.sendall(b"during\n")
    eq(s.recv(100), b"during\n", "echo while draining")
    s.close()
    try:
        rc = d.p.wait(5)
    except Exception:
        raise Fail("ppfwd still running 5 s after its last connection closed")
    eq(rc, 0, "exit status after draining")
    check("Sanitizer" not in d.log_text(), "sanitizer report:\n" + d.log_text()[-2000:])


@scenario
def ipv6_upstream_and_mixed_families():
    """A ::1 upstream behind a 127.0.0.1 listener and the reverse; the v2
    header sent carries the client's own family."""
    cap6 = Server(capture_handler, host=V6)
    cap4 = Server(capture_handler)
    d, (p4, p6) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/[::1]:%d?send-proxy=v2" % (ps[0], cap6.port),
        "tcp6://[::1]:%d/127.0.0.1:%d?send-proxy=v1" % (ps[1], cap4.port)], 2, hosts=[V4, V6])
    for host, port, cap, fam in ((V4, p4, cap6, "tcp4"), (V6, p6, cap4, "tcp6")):
        s = connect(host, port)
        me = s.getsockname()
        s.sendall(b"mixed\n")
        eq(recv_all(s, 5), b"ok\n", "answer via %s" % host)
        s.close()
        wait_for(lambda: cap.results, 5, "the capture")
        got = cap.results.pop()
        h, n = parse_header(got)
        eq((h["family"], h["src"][0], h["src"][1], got[n:]), (fam, me[0], me[1], b"mixed\n"),
           "header and data upstream")


@scenario
def send_proxy_destination_is_local_address():
    """send-proxy without a header phase: the header's destination is the
    address the client connected to, whether the listener is bound to that
    address (taken from the bind, no getsockname) or to every address (asked
    of the socket), IPv4 and IPv6; an IPv4 client of the dual-stack default
    bind goes on (and is logged) as IPv4, not ::ffff:a.b.c.d."""
    cap = Server(capture_handler)
    d, ports = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?send-proxy=v2" % (ps[0], cap.port),
        "tcp://[::1]:%d/127.0.0.1:%d?send-proxy=v2" % (ps[1], cap.port),
        "tcp://:%d/127.0.0.1:%d?send-proxy=v1" % (ps[2], cap.port)], 3, hosts=[V4, V6, V4])
    for host, port in ((V4, ports[0]), (V6, ports[1]), (V4, ports[2]), (V6, ports[2])):
        s = connect(host, port)
        s.sendall(b"data\n")
        eq(recv_all(s, 5), b"ok\n", "answer")
        local = s.getsockname()
        s.close()
        wait_for(lambda: cap.results, 5, "the capture")
        h, n = parse_header(cap.results.pop())
        # "tcp://:PORT" is one dual-stack socket, which names an IPv4
        # client ::ffff:a.b.c.d: it goes on as the IPv4 client (TCP4) it is.
        eq(h["family"], "tcp4" if host == V4 else "tcp6", "family via %s:%d" % (host, port))
        eq(h["dst"], (host, port), "destination via %s:%d" % (host, port))
        eq(h["src"], (local[0], local[1]), "source via %s:%d" % (host, port))
        if port == ports[2] and host == V4:  # and the log names it so too
            me = "%s:%d" % local[:2]
            d.wait_event("conn_close", lambda e: e.get("client") == me and e.get("peer") == me)


def _copy_variant(fn):
    def variant():
        RELAY[:] = ["--relay", "copy"]
        try:
            fn()
        finally:
            RELAY[:] = []

    variant.__name__ = fn.__name__ + "_copy"
    variant.__doc__ = fn.__doc__
    scenario(variant)


for _fn in (bulk_64mib_each_way, concurrent_500_echo, half_close_client_first,
            half_close_upstream_first):
    _copy_variant(_fn)


if __name__ == "__main__":
    sys.exit(run())
