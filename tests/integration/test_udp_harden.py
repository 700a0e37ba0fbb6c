#!/usr/bin/python3
"""UDP routes against a hostile network (issue 10): a native IPv6 datagram
forged from an IPv4-mapped source is dropped and counted untrusted; short
datagrams that are a prefix of the v2 signature are data on an `optional`
route; a flood of one-datagram sessions from many sources neither stops the
TCP routes nor keeps a new UDP client out (the session cap from the fd
limit, the early end of unanswered sessions, the oldest giving way).
Run: /usr/bin/python3 tests/integration/test_udp_harden.py [SCENARIO...]"""

import os
import socket
import struct
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (V4, EchoServer, Fail, Ppfwd, Skip, check, connect, eq,  # noqa: E402
                     free_port, on_cleanup, run, scenario, v2, wait_for)

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


class UdpEcho:
    """A UDP upstream on 127.0.0.1 that keeps every payload it gets and
    answers each with the same bytes (unless mute)."""

    def __init__(self, mute=False, answer=None):
        self.s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.s.bind((V4, 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.got, self.mute, self.stop = [], mute, False
        self.answer = answer or (lambda data: True)
        self.lock = threading.Lock()
        self.t = threading.Thread(target=self.loop, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def loop(self):
        while not self.stop:
            try:
                data, peer = self.s.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.got.append(data)
            if not self.mute and self.answer(data):
                try:
                    self.s.sendto(data, peer)
                except OSError:
                    pass

    def payloads(self):
        with self.lock:
            return list(self.got)

    def close(self):
        self.stop = True
        self.t.join(2.0)
        self.s.close()


def start_ppfwd(make_routes, nports, workers=2, extra=(), nofile=None):
    """ppfwd on fresh ports; the first route must be TCP (its listener says
    ppfwd is up; the harness's start_ppfwd waits for TCP listeners only)."""
    last = None
    for _ in range(5):
        ports = [free_port() for _ in range(nports)]
        d = Ppfwd(make_routes(ports), workers, extra, nofile)
        try:
            d.start(ports[:1])
            return d, ports
        except Fail as e:
            last = e
            d.stop()
    raise last


def udp_client(host=V4, bind=None):
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    if bind:
        s.bind((bind, 0))
    s.settimeout(3.0)
    on_cleanup(s.close)
    return s


def ask(s, dest, data, want=None):
    """Sends data and returns the answer (checked against want, default
    data); resends a few times: loopback UDP may drop under load."""
    want = data if want is None else want
    for _ in range(5):
        s.sendto(data, dest)
        try:
            got = s.recv(65536)
        except socket.timeout:
            continue
        eq(got, want, "answer")
        return got
    raise Fail("no answer to %r from %r" % (data[:20], dest))


def scrape(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        text = r.read().decode()
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, val = line.rpartition(" ")
            out[key] = float(val)
    return out


def metric(mport, name, route, **labels):
    lab = ",".join(['route="%s"' % route] + ['%s="%s"' % kv for kv in labels.items()])
    return scrape(mport).get("%s{%s}" % (name, lab))


def wait_metric(mport, name, route, want, timeout=5.0, **labels):
    try:
        wait_for(lambda: metric(mport, name, route, **labels) == want, timeout,
                 "%s %s = %s" % (name, labels, want))
    except Fail:
        raise Fail("%s{%s} is %s, want %s" % (name, labels, metric(mport, name, route, **labels),
                                              want))


# ---- 1. a native IPv6 datagram forged from an IPv4-mapped source ---------------

def checksum(b):
    if len(b) % 2:
        b += b"\0"
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16:
        t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff


def forged_udp6(src, sport, dst, dport, payload):
    """An IPv6 packet (header included) carrying a UDP datagram from src to
    dst, with its checksum over the IPv6 pseudo-header."""
    s, d = socket.inet_pton(socket.AF_INET6, src), socket.inet_pton(socket.AF_INET6, dst)
    n = 8 + len(payload)
    udp = struct.pack("!HHHH", sport, dport, n, 0) + payload
    c = checksum(s + d + struct.pack("!I", n) + b"\0\0\0\x11" + udp) or 0xffff
    udp = udp[:6] + struct.pack("!H", c) + udp[8:]
    return struct.pack("!IHBB", 6 << 28, n, 17, 64) + s + d + udp


@scenario
def forged_v4_mapped_source_dropped():
    if os.geteuid() != 0:
        raise Skip("needs root for a raw IPv6 socket (a forged source address)")
    try:
        raw = socket.socket(socket.AF_INET6, socket.SOCK_RAW, socket.IPPROTO_RAW)
    except OSError as e:
        raise Skip("no raw IPv6 socket: %s" % e)
    on_cleanup(raw.close)
    up = UdpEcho()
    mport = free_port()
    q = "accept-proxy=required&trusted=127.0.0.2/32"
    d, (tport, wild, one) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], up.port),
        "udp://[::]:%d/127.0.0.1:%d?%s" % (ps[1], up.port, q),
        "udp://[::1]:%d/127.0.0.1:%d?%s" % (ps[2], up.port, q)], 3, workers=1,
        extra=["--metrics", "127.0.0.1:%d" % mport])
    r_wild = "udp://[::]:%d/127.0.0.1:%d?%s" % (wild, up.port, q)
    r_one = "udp://[::1]:%d/127.0.0.1:%d?%s" % (one, up.port, q)
    hdr = v2(("192.0.2.7", 1000), ("192.0.2.8", 53))
    for port, name in ((wild, b"wild"), (one, b"one")):
        raw.sendto(forged_udp6("::ffff:127.0.0.2", 4444, "::1", port, hdr + b"forged " + name),
                   ("::1", 0))
    # A real IPv4 datagram from 127.0.0.2 with a header is still served.
    c = udp_client(V4, bind="127.0.0.2")
    ask(c, (V4, wild), hdr + b"real", b"real")
    wait_metric(mport, "ppfwd_proxy_headers_total", r_wild, 1, result="untrusted")
    wait_metric(mport, "ppfwd_proxy_headers_total", r_one, 1, result="untrusted")
    eq(metric(mport, "ppfwd_proxy_headers_total", r_wild, result="ok"), 1, "headers ok")
    eq(metric(mport, "ppfwd_udp_sessions_active", r_one), 0, "sessions on [::1]")
    got = up.payloads()
    check(not any(p.startswith(b"forged") for p in got), "forged datagrams reached the upstream: %r"
          % got)
    ev = d.wait_event("udp_dropped", lambda e: "forged" in e.get("reason", ""))
    eq(ev[0].get("peer"), "[::ffff:127.0.0.2]:4444", "peer of the forged datagram")
    # The same listener still takes real IPv6 (native source, not trusted).
    c6 = udp_client("::1")
    c6.sendto(hdr + b"v6", ("::1", wild))
    wait_metric(mport, "ppfwd_proxy_headers_total", r_wild, 2, result="untrusted")
    d.wait_event("proxy_header_refused", lambda e: e.get("peer", "").startswith("[::1]"))


# ---- 10. short datagrams that are a prefix of the v2 signature ------------------

@scenario
def optional_short_signature_prefix_is_data():
    up = UdpEcho()
    mport = free_port()
    d, (tport, opt, req) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], up.port),
        "udp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=optional" % (ps[1], up.port),
        "udp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required" % (ps[2], up.port)], 3,
        extra=["--metrics", "127.0.0.1:%d" % mport])
    r_opt = "udp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=optional" % (opt, up.port)
    r_req = "udp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required" % (req, up.port)
    c = udp_client()
    for n in (2, 1, 5, 11):  # "\r\n", "\r", ... up to one byte short of the signature
        ask(c, (V4, opt), V2_SIG[:n])
    ask(c, (V4, opt), b"plain")
    # The whole signature, then nothing: a truncated header, dropped.
    c.sendto(V2_SIG + b"\x21", (V4, opt))
    wait_metric(mport, "ppfwd_proxy_headers_total", r_opt, 1, result="invalid")
    d.wait_event("proxy_header_refused", lambda e: e.get("reason") == "truncated PROXY header")
    # required: a 2-byte "\r\n" carries no header and is refused as such.
    before = len(up.payloads())
    c.sendto(b"\r\n", (V4, req))
    wait_metric(mport, "ppfwd_proxy_headers_total", r_req, 1, result="invalid")
    d.wait_event("proxy_header_refused", lambda e: e.get("reason") == "no PROXY header")
    eq(len(up.payloads()), before, "datagrams the required route passed on")


# ---- 2. a flood of one-datagram sessions ---------------------------------------

def flood(port, n):
    """One 1-byte datagram from each of n source addresses 127.1.x.y (all of
    127/8 is local), as a spoofing attacker would send them."""
    sent = 0
    for i in range(n):
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            s.bind(("127.1.%d.%d" % (i // 250, 1 + i % 250), 0))
            s.sendto(b"x", (V4, port))
            sent += 1
        finally:
            s.close()
        if i % 200 == 199:
            time.sleep(0.02)  # let ppfwd keep up: the kernel queue is finite
    return sent


@scenario
def session_flood_leaves_tcp_and_new_clients_served():
    nofile, cap = 512, 256  # the cap is half the fd limit
    up = UdpEcho(answer=lambda d: d.startswith(b"hello"))  # junk gets no answer, as from DNS
    echo = EchoServer()
    mport = free_port()
    d, (tport, uport) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port),
        "udp://127.0.0.1:%d/127.0.0.1:%d" % (ps[1], up.port)], 2, nofile=nofile,
        extra=["--metrics", "127.0.0.1:%d" % mport])
    r_udp = "udp://127.0.0.1:%d/127.0.0.1:%d" % (uport, up.port)
    first = udp_client()
    ask(first, (V4, uport), b"hello first")  # answered: never evicted
    t0 = time.monotonic()
    sent = flood(uport, 2000)
    d.wait_event("udp_session_evicted", timeout=10.0)
    dt = time.monotonic() - t0
    active = metric(mport, "ppfwd_udp_sessions_active", r_udp)
    check(active is not None and active <= cap, "sessions active %s > cap %d" % (active, cap))
    other, pipes = d.fds()
    check(other + pipes < nofile - cap // 2, "ppfwd holds %d fds of %d" % (other + pipes, nofile))
    # TCP still accepts and relays.
    for i in range(3):
        c = connect(V4, tport)
        c.sendall(b"tcp %d" % i)
        eq(c.recv(100), b"tcp %d" % i, "TCP echo during the flood")
        c.close()
    # A new UDP client gets a session (an unanswered one gave way) and its answer.
    ask(udp_client(), (V4, uport), b"hello new")
    ask(first, (V4, uport), b"hello again")
    check(not d.events("udp_session_refused"), "refused: %s" % d.events("udp_session_refused")[:2])
    print("  %d datagrams from %d sources in %.1fs, %s sessions active (cap %d), %d fds"
          % (sent, sent, dt, active, cap, other + pipes))


@scenario
def unanswered_session_ends_after_reply_timeout():
    up = UdpEcho(answer=lambda d: d.startswith(b"hello"))
    mport = free_port()
    q = "reply-timeout=1s&idle-timeout=1m"
    d, (tport, uport) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], up.port),
        "udp://127.0.0.1:%d/127.0.0.1:%d?%s" % (ps[1], up.port, q)], 2,
        extra=["--metrics", "127.0.0.1:%d" % mport])
    r_udp = "udp://127.0.0.1:%d/127.0.0.1:%d?%s" % (uport, up.port, q)
    answered, silent = udp_client(), udp_client()
    ask(answered, (V4, uport), b"hello")
    silent.sendto(b"junk", (V4, uport))
    wait_metric(mport, "ppfwd_udp_sessions_active", r_udp, 2)
    t0 = time.monotonic()
    ev = d.wait_event("udp_session_close", lambda e: e.get("reason") == "no reply", timeout=5.0)
    dt = time.monotonic() - t0
    check(dt < 3.0, "the unanswered session closed after %.1fs (reply-timeout 1s)" % dt)
    eq(ev[0].get("peer"), "127.0.0.1:%d" % silent.getsockname()[1], "closed session's peer")
    time.sleep(1.0)
    eq(metric(mport, "ppfwd_udp_sessions_active", r_udp), 1, "sessions left (the answered one)")
    ask(answered, (V4, uport), b"hello again")



@scenario
def session_close_names_the_upstream_error():
    """A session whose upstream refused (ICMP port unreachable) says so in
    its udp_session_close line ("error"), as a TCP conn_close does; one
    that saw no error has no "error" key."""
    up = UdpEcho(answer=lambda d: True)
    dead = free_port()
    # The TCP route is how start_ppfwd sees that ppfwd listens.
    d, (_, ok_port, dead_port) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], up.port),
        "udp://127.0.0.1:%d/127.0.0.1:%d?idle-timeout=1s" % (ps[1], up.port),
        "udp://127.0.0.1:%d/127.0.0.1:%d?idle-timeout=1s" % (ps[2], dead)], 3)
    good, bad = udp_client(), udp_client()
    ask(good, (V4, ok_port), b"hello")
    bad.sendto(b"anyone?", (V4, dead_port))
    d.wait_event("upstream_error", timeout=5.0)
    evs = {}
    for c in (good, bad):
        peer = "127.0.0.1:%d" % c.getsockname()[1]
        evs[c] = d.wait_event("udp_session_close", lambda e, p=peer: e.get("peer") == p,
                              timeout=5.0)[0]
    eq(evs[bad].get("error"), "Connection refused", "the refused session's error")
    check("error" not in evs[good], "no error on the answered session: %r" % evs[good])


if __name__ == "__main__":
    sys.exit(run())
