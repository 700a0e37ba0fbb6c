#!/usr/bin/python3
"""ppfwd under bad input: missing, untrusted, slow and garbage headers,
upstreams that refuse or never answer, clients that vanish, max-conns, bad
route URLs and bad YAML. After each, ppfwd still serves a good connection and
its descriptor count (/proc/PID/fd) is back to where it was.
Run: /usr/bin/python3 tests/integration/test_badinput.py [SCENARIO...]"""

import errno
import os
import random
import re
import selectors
import signal
import socket
import struct
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PPFWD, V4, V6, EchoServer, Fail, Server, check, connect, eq,  # noqa: E402
                     expect_closed, fmt_addr, free_port, on_cleanup, recv_all, run, scenario,
                     start_ppfwd, tmpdir, v1, v2, wait_for, V2_SIG, spawn, stop, read_log,
                     wait_listen)


def with_good_route(bad_routes, upstream_port=None, extra_ports=0, hosts=None):
    """Starts ppfwd with a plain route to an echo server first, then
    bad_routes(ports[1:], echo_port). Warms the good route up once and takes
    the fd baseline. Returns (ppfwd, echo, good_port, other ports, baseline)."""
    echo = EchoServer()
    n = 1 + extra_ports
    d, ports = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)]
                           + bad_routes(ps[1:], echo.port), n,
                           hosts=[V4] + (hosts or [V4] * extra_ports))
    good_echo(ports[0])
    d.wait_event("conn_close")
    time.sleep(0.1)
    base = d.fds()
    return d, echo, ports[0], ports[1:], base


def good_echo(port, host=V4):
    s = connect(host, port)
    msg = b"good %d\n" % random.randrange(1 << 30)
    s.sendall(msg)
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 5), msg, "a good connection's echo")
    s.close()


def still_serves(d, good_port, base):
    """The check that follows every bad-input scenario."""
    check(d.alive(), "ppfwd exited with %s" % d.p.poll())
    good_echo(good_port)
    d.wait_fds(base, 5)


def refused_events(d, pred=lambda e: True, count=1, timeout=5):
    """proxy_header_refused lines (docs/log-events.md): a header missing,
    invalid, too slow or from an untrusted source."""
    return d.wait_event("proxy_header_refused", pred, timeout=timeout, count=count)


@scenario
def no_header_under_required():
    """accept-proxy=required: bytes that are no header are refused, the
    upstream is never contacted, and the refusal is logged with a reason."""
    d, echo, good, (rp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required" % (ps[0], e)], extra_ports=1)
    conns = echo.conns
    for data in (b"GET / HTTP/1.0\r\n\r\n", b"PROXY TCP4 1.2.3.4\r\n", b"SSH-2.0-OpenSSH_9\r\n"):
        s = connect(V4, rp)
        s.sendall(data)
        expect_closed(s, 3)
        s.close()
    ev = refused_events(d, count=3)
    check(all(e.get("reason") for e in ev), "conn_refused without a reason: %r" % ev)
    eq(echo.conns, conns, "upstream connections for refused clients")
    still_serves(d, good, base)


@scenario
def header_from_untrusted_source():
    """trusted=10.0.0.0/8 while we come from 127.0.0.1: under required a
    valid header is refused; under optional a header closes the connection
    and a direct client is served as itself."""
    d, echo, good, (req, opt), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&trusted=10.0.0.0/8" % (ps[0], e),
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=optional&trusted=10.0.0.0/8" % (ps[1], e)],
        extra_ports=2)
    conns = echo.conns
    for port in (req, opt):
        for hdr in (v1(("192.0.2.10", 1234), ("192.0.2.1", 80)),
                    v2(("192.0.2.10", 1234), ("192.0.2.1", 80))):
            s = connect(V4, port)
            s.sendall(hdr + b"hello\n")
            expect_closed(s, 3)
            s.close()
    eq(echo.conns, conns, "upstream connections for untrusted headers")
    refused_events(d, count=4)
    s = connect(V4, opt)
    me = s.getsockname()
    s.sendall(b"direct client\n")
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 5), b"direct client\n", "direct client under optional")
    s.close()
    ev = d.wait_event("conn_close", lambda e: e.get("peer") == fmt_addr(me))[0]
    eq(ev.get("client"), fmt_addr(me), "real client of a direct connection")
    still_serves(d, good, base)


@scenario
def slow_header_timeout():
    """header-timeout=1s: a partial header and a silent client are closed at
    about 1 s, while other clients are served meanwhile."""
    d, echo, good, (rp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&header-timeout=1s" % (ps[0], e)],
        extra_ports=1)
    slow = connect(V4, rp)
    slow.sendall(b"PROXY TCP4 192.0.2")
    silent = connect(V4, rp)
    v2slow = connect(V4, rp)
    v2slow.sendall(V2_SIG[:7])
    t0 = time.monotonic()
    good_echo(good)
    s = connect(V4, rp)
    s.sendall(v1(("192.0.2.10", 1), ("192.0.2.1", 2)) + b"fast\n")
    s.shutdown(socket.SHUT_WR)
    eq(recv_all(s, 3), b"fast\n", "a complete header while others dawdle")
    s.close()
    check(time.monotonic() - t0 < 0.9, "good connections were held up by slow headers")
    for name, c in (("partial v1", slow), ("silent", silent), ("partial v2", v2slow)):
        expect_closed(c, 4)
        dt = time.monotonic() - t0
        check(0.7 <= dt <= 3.5, "%s header closed after %.2fs, want ~1s" % (name, dt))
        c.close()
    refused_events(d, count=3)
    still_serves(d, good, base)


def garbage(rng):
    """A prefix no PROXY header can start with (so ppfwd can decide at once)."""
    k = rng.randrange(6)
    if k == 0:
        first = rng.choice([b for b in range(256) if b not in (ord("P"), ord("\r"))])
        return bytes([first]) + rng.randbytes(rng.randrange(0, 63))
    if k == 1:
        line = bytearray(v1(("192.0.2.%d" % rng.randrange(256), rng.randrange(1, 65536)),
                            ("198.51.100.1", 443)))
        line[rng.randrange(5, len(line) - 2)] = ord("Z")
        return bytes(line)
    if k == 2:
        sig = bytearray(V2_SIG)
        i = rng.randrange(12)
        sig[i] ^= 1 << rng.randrange(8)
        return bytes(sig) + rng.randbytes(rng.randrange(4, 40))
    if k == 3:
        ver = rng.choice([0x00, 0x11, 0x31, 0xF1, 0x22, 0x2F])
        return V2_SIG + bytes([ver, 0x11]) + struct.pack("!H", 12) + rng.randbytes(12)
    if k == 4:
        return b"PROXY " + bytes(rng.choice(b"ABCDEFGH0123456789. ") for _ in range(150))
    return b"PROXY TCP4 192.0.2.1 192.0.2.2 80 443\n"  # LF without CR


@scenario
def garbage_prefixes_1000():
    """1,000 connections each opening with garbage: each is closed promptly
    (well before header-timeout), none reaches the upstream, each is logged."""
    d, echo, good, (rp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&header-timeout=20s"
        % (ps[0], e)], extra_ports=1)
    conns = echo.conns
    rng = random.Random(1234)
    total, batch = 1000, 100
    t0 = time.monotonic()
    for b in range(total // batch):
        socks = []
        sel = selectors.DefaultSelector()
        try:
            for i in range(batch):
                s = connect(V4, rp)
                socks.append(s)
                g = garbage(rng)
                try:
                    s.sendall(g)
                except (BrokenPipeError, ConnectionResetError):
                    continue
                s.setblocking(False)
                sel.register(s, selectors.EVENT_READ, g)
            open_ = len(sel.get_map())
            end = time.monotonic() + 5
            while open_ and time.monotonic() < end:
                for key, _ in sel.select(0.5):
                    try:
                        data = key.fileobj.recv(4096)
                    except BlockingIOError:
                        continue
                    except ConnectionResetError:
                        data = b""
                    check(data == b"", "garbage %r got an answer %r" % (key.data, data[:60]))
                    sel.unregister(key.fileobj)
                    open_ -= 1
            if open_:
                left = [k.data for k in sel.get_map().values()][:3]
                raise Fail("%d connections of batch %d still open after 5s, e.g. %r"
                           % (open_, b, left))
        finally:
            sel.close()
            for s in socks:
                s.close()
    check(time.monotonic() - t0 < 60, "1,000 garbage connections took too long")
    eq(echo.conns, conns, "upstream connections for garbage")
    refused_events(d, count=total, timeout=15)
    still_serves(d, good, base)


@scenario
def upstream_refusing():
    """The upstream port is closed: every client is closed promptly and the
    error is logged."""
    dead = free_port()
    d, echo, good, (rp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?connect-timeout=5s" % (ps[0], dead)], extra_ports=1)
    for _ in range(3):
        s = connect(V4, rp)
        try:
            s.sendall(b"anyone there?\n")
        except (BrokenPipeError, ConnectionResetError):
            pass
        dt = expect_closed(s, 3)
        check(dt < 2.5, "closed only after %.1fs" % dt)
        s.close()
    # The first close names the upstream that refused; after a failed
    # connect the upstream is paused (passive health), so the next clients
    # may be refused at once with "no live upstream" instead.
    d.wait_event("upstream_error", lambda e: e.get("upstream") == "127.0.0.1:%d" % dead)
    d.wait_event("conn_close", lambda e: e.get("error") and "127.0.0.1:%d/" % rp in
                 e.get("route", ""), count=3)
    still_serves(d, good, base)


@scenario
def upstream_unreachable_at_once():
    """connect() fails at once (ENETUNREACH: a broadcast address, refused by
    TCP before any packet): logged and counted as the upstream's error, not
    taken for a connection that then fails to relay."""
    d, echo, good, (rp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/255.255.255.255:%d" % (ps[0], e)], extra_ports=1)
    s = connect(V4, rp)
    dt = expect_closed(s, 3)
    check(dt < 2.5, "closed only after %.1fs" % dt)
    s.close()
    ev = d.wait_event("upstream_error", lambda e: e.get("upstream", "").startswith("255."))[0]
    eq(ev.get("error"), "Network is unreachable", "upstream_error error")
    ev = d.wait_event("conn_close", lambda e: "127.0.0.1:%d/" % rp in e.get("route", ""))[0]
    eq(ev.get("error"), "Network is unreachable", "conn_close error")
    still_serves(d, good, base)


def black_hole(keep=None):
    """A loopback port that never completes a handshake: a listener with
    backlog 0 that never accepts, its accept queue filled by us, so further
    SYNs are dropped (no root, no firewall). Returns its port. With keep (a
    dict), keep["ls"] and keep["fillers"] let the caller open it again."""
    ls = socket.socket()
    ls.bind((V4, 0))
    ls.listen(0)
    on_cleanup(ls.close)
    port = ls.getsockname()[1]
    fillers = []
    for _ in range(16):
        s = socket.socket()
        s.setblocking(False)
        on_cleanup(s.close)
        fillers.append(s)
        rc = s.connect_ex((V4, port))
        if rc not in (0, errno.EINPROGRESS):
            raise Fail("filling the black hole: %s" % os.strerror(rc))
        sel = selectors.DefaultSelector()
        sel.register(s, selectors.EVENT_WRITE)
        done = sel.select(0.3)
        sel.close()
        if not done:
            if keep is not None:
                keep.update(ls=ls, fillers=fillers)
            return port  # this SYN was dropped: the hole is ready
    raise Fail("could not fill a backlog-0 accept queue with 16 connections")


@scenario
def upstream_black_hole():
    """An upstream that swallows SYNs: connect-timeout=1s closes the client
    after about 1 s, and the error is logged."""
    hole = black_hole()
    d, echo, good, (rp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?connect-timeout=1s" % (ps[0], hole)], extra_ports=1)
    s = connect(V4, rp)
    s.sendall(b"hello?\n")
    t0 = time.monotonic()
    good_echo(good)
    check(time.monotonic() - t0 < 0.9, "a hanging connect held up another client")
    expect_closed(s, 5)
    dt = time.monotonic() - t0
    check(0.7 <= dt <= 3.5, "closed after %.2fs, want ~1s (connect-timeout)" % dt)
    s.close()
    d.wait_event("conn_close", lambda e: e.get("error") and e.get("upstream") ==
                 "127.0.0.1:%d" % hole)
    still_serves(d, good, base)


def open_hole(keep):
    """Opens a black_hole(keep) again: the fillers go (accepted, or closed
    while their SYN is still unanswered), so the next SYN retransmission,
    1 s after the first, is answered."""
    for f in keep["fillers"]:
        f.close()
    keep["ls"].setblocking(False)
    while True:
        try:
            keep["ls"].accept()[0].close()
        except BlockingIOError:
            break
    keep["ls"].setblocking(True)


@scenario
def client_sends_while_connecting():
    """accept-proxy: while the upstream connect hangs, the client sends more
    after its header and early data, then half-closes. ppfwd does not spin
    on the unread bytes; once the connect succeeds, the upstream gets the
    early data, the rest and the EOF, and its answer reaches the client. A
    client that resets while connecting is closed at once."""
    keep = {}
    hole = black_hole(keep)
    d, echo, good, (rp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&connect-timeout=5s"
        % (ps[0], hole)], extra_ports=1)
    s = connect(V4, rp)
    s.sendall(v2(("198.51.100.7", 1234), (V4, rp)) + b"early ")
    time.sleep(0.2)
    c0 = cpu_seconds(d.pid)
    s.sendall(b"later")
    s.shutdown(socket.SHUT_WR)
    time.sleep(0.5)
    busy = cpu_seconds(d.pid) - c0
    check(busy < 0.3, "ppfwd used %.2f s of CPU in 0.5 s while connecting (spinning?)" % busy)
    open_hole(keep)
    keep["ls"].settimeout(5)
    u, _ = keep["ls"].accept()
    on_cleanup(u.close)
    eq(recv_all(u, 5), b"early later", "what the upstream received before EOF")
    u.sendall(b"answer")
    u.close()
    eq(recv_all(s, 5), b"answer", "what the client received")
    s.close()
    ev = d.wait_event("conn_close", lambda e: e.get("client") == "198.51.100.7:1234")[0]
    eq((ev.get("bytes_in"), ev.get("bytes_out"), ev.get("error")), (11, 6, None),
       "conn_close bytes and error")

    hole = black_hole()
    d2, echo2, good2, (rp2,), base2 = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&connect-timeout=5s"
        % (ps[0], hole)], extra_ports=1)
    s = connect(V4, rp2)
    s.sendall(v2(("198.51.100.8", 1234), (V4, rp2)))
    time.sleep(0.2)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.close()
    ev = d2.wait_event("conn_close", lambda e: e.get("client") == "198.51.100.8:1234",
                       timeout=2)[0]
    eq(ev.get("error"), "client closed while connecting", "conn_close error")
    still_serves(d, good, base)
    still_serves(d2, good2, base2)


def firehose(c, srv):
    """Sends without end until the connection breaks; records how it ended."""
    block = os.urandom(64 * 1024)
    c.settimeout(10)
    t0 = time.monotonic()
    try:
        while time.monotonic() - t0 < 20:
            c.sendall(block)
    except OSError as e:
        srv.add(("broken", time.monotonic()))
        return
    srv.add(("timeout", time.monotonic()))


def slow_reader(c, srv):
    """Reads until EOF or reset; records how it ended."""
    c.settimeout(10)
    try:
        while c.recv(65536):
            pass
        srv.add(("eof", time.monotonic()))
    except OSError:
        srv.add(("broken", time.monotonic()))


@scenario
def client_vanishes_mid_transfer():
    """The client resets the connection (SO_LINGER 0) in the middle of a
    download and of an upload: ppfwd closes the upstream side too, logs the
    close, and leaks nothing."""
    hose = Server(firehose)
    sink = Server(slow_reader)
    d, echo, good, (down, up), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], hose.port),
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[1], sink.port)], extra_ports=2)
    for port, srv, mode in ((down, hose, "download"), (up, sink, "upload")):
        s = connect(V4, port)
        if mode == "download":
            got = 0
            while got < 4 << 20:
                got += len(s.recv(1 << 20))
        else:
            for _ in range(64):
                s.sendall(os.urandom(64 * 1024))
            wait_for(lambda: srv.conns, 5, "the upstream connection")
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        t0 = time.monotonic()
        s.close()
        wait_for(lambda: srv.results, 5, "the upstream to notice the %s client vanished" % mode)
        how, when = srv.results[0]
        check(how in ("broken", "eof"), "%s upstream: %s" % (mode, how))
        check(when - t0 < 5, "%s upstream noticed after %.1fs" % (mode, when - t0))
    d.wait_event("conn_close", lambda e: e.get("upstream") in (
        "127.0.0.1:%d" % hose.port, "127.0.0.1:%d" % sink.port), count=2)
    still_serves(d, good, base)


@scenario
def max_conns_exceeded():
    """max-conns=3: a fourth connection is refused at once; once one closes,
    a new one is served again."""
    d, echo, good, (mp,), base = with_good_route(lambda ps, e: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?max-conns=3" % (ps[0], e)], extra_ports=1)
    held = []
    for i in range(3):
        s = connect(V4, mp)
        s.sendall(b"held %d\n" % i)
        s.settimeout(5)
        eq(s.recv(100), b"held %d\n" % i, "echo on held connection %d" % i)
        held.append(s)
    on_cleanup(lambda: [s.close() for s in held])
    s = connect(V4, mp)
    me = fmt_addr(s.getsockname())
    dt = expect_closed(s, 3)
    check(dt < 1.0, "the connection over max-conns was closed only after %.1fs" % dt)
    s.close()
    ev = d.wait_event("conn_refused")[0]
    eq(ev.get("reason"), "max-conns reached", "conn_refused reason")
    eq(ev.get("peer"), me, "conn_refused peer")
    # Without accept-proxy the real client is the peer: named as in every
    # connection event (INTERFACE.md, Logs).
    eq(ev.get("client"), me, "conn_refused client")
    held.pop().close()

    def served():
        s = connect(V4, mp)
        try:
            s.sendall(b"again\n")
            s.shutdown(socket.SHUT_WR)
            return recv_all(s, 3) == b"again\n"
        except OSError:
            return False
        finally:
            s.close()

    wait_for(served, 5, "a connection to be served once one of the 3 closed", step=0.1)
    for s in held:
        s.close()
    held.clear()
    still_serves(d, good, base)


def cpu_seconds(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@scenario
def out_of_fds():
    """With RLIMIT_NOFILE 64, 80 clients at once: ppfwd runs out of
    descriptors, says so (accept_error), does not spin, keeps relaying the
    connections it has, and serves again once they close."""
    echo = EchoServer()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)],
                             1, workers=1, nofile=64)
    good_echo(port)
    time.sleep(0.1)
    base = d.fds()
    held = []
    on_cleanup(lambda: [s.close() for s in held])
    for i in range(80):
        s = socket.socket()
        s.settimeout(2)
        try:
            s.connect((V4, port))
            s.sendall(b"h%d\n" % i)
        except OSError:
            s.close()
            continue
        held.append(s)
    served = []
    sel = selectors.DefaultSelector()
    for s in held:
        sel.register(s, selectors.EVENT_READ)
    end = time.monotonic() + 1.5
    while time.monotonic() < end:
        for key, _ in sel.select(0.2):
            sel.unregister(key.fileobj)
            try:
                if key.fileobj.recv(100).startswith(b"h"):
                    served.append(key.fileobj)
            except OSError:
                pass
    sel.close()
    check(served, "no connection at all was served")
    d.wait_event("accept_error", timeout=5)
    c0 = cpu_seconds(d.pid)
    time.sleep(1.0)
    busy = cpu_seconds(d.pid) - c0
    check(busy < 0.5, "ppfwd used %.2f s of CPU in 1 s while out of fds (spinning?)" % busy)
    s = served[0]
    s.settimeout(3)
    s.sendall(b"again\n")
    eq(s.recv(100), b"again\n", "an established connection still relays")
    for s in held:
        s.close()
    held.clear()
    wait_for(lambda: _try_echo(port), 10, "ppfwd to serve again after the fds came back", step=0.2)
    still_serves(d, port, base)


def _try_echo(port):
    try:
        good_echo(port)
        return True
    except (Fail, OSError):
        return False


BAD_URLS = [
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?bogus-key=1", "bogus-key"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?accept-proxy=sometimes", "accept-proxy"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?send-proxy=v3", "send-proxy"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?send-proxy=v2&tlvs=keep", "tlvs"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?connect-timeout=soon", "connect-timeout"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?header-timeout=-1s", "header-timeout"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?idle-timeout=5parsecs", "idle-timeout"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?max-conns=-3", "max-conns"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?max-conns=many", "max-conns"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?accept-proxy=required&trusted=10.0.0.0/33", "trusted"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?allow=not-a-cidr", "allow"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?deny=1.2.3.4/99", "deny"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?send-proxy=v2&crc32c=maybe", "crc32c"),
    ("udp://127.0.0.1:{p}/127.0.0.1:{q}?send-proxy=v1", "send-proxy"),
    ("ftp://127.0.0.1:{p}/127.0.0.1:{q}", "ftp"),
    ("tcp://127.0.0.1:99999/127.0.0.1:{q}", "99999"),
    ("tcp://127.0.0.1:{p}/127.0.0.1:{q}?accept-proxy", "accept-proxy"),
    ("tcp://127.0.0.1:{p}/no-such-host.invalid:80", "no-such-host.invalid"),
]


@scenario
def bad_route_urls():
    """Each bad route URL: ppfwd exits non-zero at once with a message naming
    the offending key (or value)."""
    bad = []
    # All at once, with one deadline: a ppfwd that accepts a bad URL and runs
    # costs 8 s in total, not 8 s each.
    hold = socket.socket()
    hold.bind((V4, 0))
    hold.listen(1)
    on_cleanup(hold.close)
    cases = [(url.format(p=free_port(), q=free_port()), key) for url, key in BAD_URLS]
    # A port in use is an error too, naming the port.
    cases.append(("tcp://127.0.0.1:%d/127.0.0.1:%d" % (hold.getsockname()[1], free_port()),
                  str(hold.getsockname()[1])))
    d = tmpdir()
    procs = []
    for i, (u, key) in enumerate(cases):
        procs.append((u, key, spawn([PPFWD, u], os.path.join(d, "out%d" % i))))
    end = time.monotonic() + 8
    for u, key, p in procs:
        try:
            p.wait(max(0.1, end - time.monotonic()))
        except subprocess.TimeoutExpired:
            stop(p, signal.SIGKILL)
            bad.append("%s: still running after 8s" % u)
            continue
        msg = read_log(p).strip()
        if p.returncode == 0:
            bad.append("%s: exit 0" % u)
        elif p.returncode < 0 or "Sanitizer" in msg:
            bad.append("%s: crashed (%d): %s" % (u, p.returncode, msg[:300]))
        elif key not in msg:
            bad.append("%s: message does not name %r: %r" % (u, key, msg[:300]))
    if bad:
        raise Fail("%d of %d bad URLs mishandled:\n  " % (len(bad), len(cases))
                   + "\n  ".join(bad))


GOOD_YAML = """log: {level: info, format: json}
workers: 2
routes:
  web:
    listen: tcp://127.0.0.1:%d
    upstream: [127.0.0.1:%d]
    accept_proxy: optional
    trusted: [127.0.0.0/8, "::1/128"]
    send_proxy: v2
    idle_timeout: 30m
"""

# (yaml text, [(line, key-or-token)...] every problem must be named with)
BAD_YAML = [
    ("""routes:
  web:
    listen: tcp://127.0.0.1:8080
    upstream: 127.0.0.1:80
    accept_prxy: optional
""", [(5, "accept_prxy")]),
    ("""workers: 2
routes:
  web:
    listen: tcp://127.0.0.1:8080
    upstream: 127.0.0.1:80
    send_proxy: v9
""", [(6, "send_proxy")]),
    ("""routes:
  a:
    listen: tcp://127.0.0.1:8080
    upstream: 127.0.0.1:80
    connect_timeout: forever
  b:
    listen: tcp://127.0.0.1:8081
    upstream: 127.0.0.1:81
    max_conns: -1
""", [(5, "connect_timeout"), (9, "max_conns")]),
    ("""routes:
  web:
    listen: tcp://127.0.0.1:8080
    upstream: [127.0.0.1:80
    send_proxy: v2
""", [(None, None)]),
]


@scenario
def bad_yaml_check():
    """`ppfwd check -c FILE`: exit 0 on a valid file; exit 1 and one message
    per problem naming the file, the line and the key on a bad one."""
    d = tmpdir()
    good = os.path.join(d, "good.yaml")
    with open(good, "w") as f:
        f.write(GOOD_YAML % (free_port(), free_port()))
    r = subprocess.run([PPFWD, "check", "-c", good], capture_output=True, timeout=10, text=True)
    eq(r.returncode, 0, "check on a valid file (%s)" % (r.stderr + r.stdout).strip()[:300])
    bad = []
    for i, (text, problems) in enumerate(BAD_YAML):
        path = os.path.join(d, "bad%d.yaml" % i)
        with open(path, "w") as f:
            f.write(text)
        r = subprocess.run([PPFWD, "check", "-c", path], capture_output=True, timeout=10,
                           text=True)
        msg = (r.stderr + r.stdout)
        if r.returncode != 1:
            bad.append("%s: exit %d, want 1: %r" % (path, r.returncode, msg[:300]))
            continue
        lines = [ln for ln in msg.splitlines() if ln.strip()]
        for line, key in problems:
            hits = [ln for ln in lines if "bad%d.yaml" % i in ln]
            if key is not None:
                hits = [ln for ln in hits if key in ln and re.search(r"\b%d\b" % line, ln)]
            if not hits:
                bad.append("%s: no message naming the file%s: %r" % (
                    path, "" if key is None else ", line %d and key %s" % (line, key), msg[:400]))
    # The daemon refuses the same bad file.
    r = subprocess.run([PPFWD, "-c", os.path.join(d, "bad0.yaml")], capture_output=True,
                       timeout=10, text=True)
    if r.returncode == 0:
        bad.append("ppfwd -c bad0.yaml exit 0")
    if bad:
        raise Fail("\n  ".join([""] + bad))


@scenario
def bad_config_json_lines():
    """With --log-format json every stderr line is one JSON object
    (INTERFACE.md, Logs), a refused config's problems included: one
    config_error each, with the route, the key, the error and, for a file,
    its file and line. Without it they stay plain lines."""
    import json
    url = "tcp://127.0.0.1:%d/127.0.0.1:%d?foo=bar&send-proxy=v3" % (free_port(), free_port())
    r = subprocess.run([PPFWD, "--log-format", "json", url], capture_output=True, timeout=10,
                       text=True)
    eq(r.returncode, 1, "exit status")
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    try:
        evs = [json.loads(ln) for ln in lines]
    except ValueError:
        raise Fail("not one JSON object per line: %r" % r.stderr[:400])
    eq([(e.get("msg"), e.get("level"), e.get("route"), e.get("key")) for e in evs],
       [("config_error", "error", url, "foo"), ("config_error", "error", url, "send-proxy")],
       "config_error lines")
    check(all(e.get("error") and "time" in e and "file" not in e for e in evs), "fields: %r" % evs)
    path = os.path.join(tmpdir(), "bad.yaml")
    with open(path, "w") as f:
        f.write("routes:\n  ssh:\n    listen: tcp://127.0.0.1:%d\n    upstream: 127.0.0.1:%d\n"
                "    accept_proxy: sometimes\n" % (free_port(), free_port()))
    r = subprocess.run([PPFWD, "--log-format", "json", "-c", path], capture_output=True,
                       timeout=10, text=True)
    eq(r.returncode, 1, "exit status (file)")
    evs = [json.loads(ln) for ln in r.stderr.splitlines() if ln.strip()]
    eq([(e.get("msg"), e.get("route"), e.get("key"), e.get("file"), e.get("line")) for e in evs],
       [("config_error", "ssh", "accept_proxy", path, 5)], "config_error of a file")
    r = subprocess.run([PPFWD, url], capture_output=True, timeout=10, text=True)
    check(r.stderr.startswith("ppfwd: route ") and "key foo" in r.stderr,
          "plain lines without --log-format json: %r" % r.stderr[:300])


@scenario
def whoami_takes_log_options_before_it():
    """`ppfwd -l LEVEL --log-format FORMAT whoami ...`: the global log options
    apply to whoami too (they were ignored without a word)."""
    d = tmpdir()
    port = free_port()
    p = spawn([PPFWD, "--log-format", "text", "whoami", "--accept-proxy=off",
               "127.0.0.1:%d" % port], os.path.join(d, "text.log"))
    wait_for(lambda: "whoami_listen" in read_log(p) or None, 10, "whoami_listen")
    line = [ln for ln in read_log(p).splitlines() if "whoami_listen" in ln][0]
    check(not line.startswith("{") and " info whoami_listen " in line,
          "text line: %r" % line)
    eq(stop(p), 0, "exit status")
    port = free_port()
    q = spawn([PPFWD, "-l", "warn", "--log-format", "json", "whoami", "--accept-proxy=required",
               "127.0.0.1:%d" % port], os.path.join(d, "warn.log"))
    wait_listen(port, 10, q)
    s = connect(V4, port)
    s.sendall(b"GARBAGE\r\n")
    expect_closed(s)
    s.close()
    wait_for(lambda: "proxy_header_refused" in read_log(q) or None, 5, "the refusal (warn)")
    check("whoami_listen" not in read_log(q), "-l warn: no info line: %r" % read_log(q)[:300])
    eq(stop(q), 0, "exit status (-l warn)")


if __name__ == "__main__":
    sys.exit(run())
