#!/usr/bin/python3
"""Transparent mode (transparent=on): ppfwd connects (TCP) or sends (UDP) to
the upstream from the real client's own address and port, so that a backend
that knows nothing of the PROXY protocol sees the client itself:

    client --PROXY header (or none)--> ppfwd transparent=on --> plain backend
                                                               on loopback

The file re-executes itself under `unshare -n` and sets up, in that fresh
namespace, the policy routing the documentation gives for loopback upstreams
(ip rule from 127.0.0.1/8 iif lo table 123; ip route add local 0.0.0.0/0 dev
lo table 123; and the IPv6 pair): the backend's replies to the client's
foreign address are delivered back to ppfwd's transparent socket. Clients
that send a header claim addresses from the documentation ranges
(198.51.100.0/24, 2001:db8::/32); a client without a header lives in a second
namespace joined by a veth pair, so that its own address is foreign here.

Needs root, unshare(1), nsenter(1) and ip(8); go-mmproxy for the side-by-side
scenario and setpriv(1) for the missing-capability one. Without them the
scenarios print SKIP with the reason. The host's network configuration is
never touched.
Run: /usr/bin/python3 tests/integration/test_transparent.py [SCENARIO...]"""

import hashlib
import os
import shutil
import socket
import struct
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (UdpRecorder, PPFWD, V2_SIG, V4, V6, Fail, Ppfwd, Server, Skip, check, eq,  # noqa: E402
                     expect_closed, free_port, hostport, on_cleanup, rand_bytes, read_log,
                     run, scenario, spawn, stop, tail, tmpdir, v1, v2, wait_for, wait_listen)
from netns import IP, lo_up, own_netns, sh, tcp_socket_in_netns, veth_netns  # noqa: E402

MMPROXY = shutil.which("go-mmproxy") or "/usr/bin/go-mmproxy"
SETPRIV = shutil.which("setpriv") or "/usr/bin/setpriv"
ENV_HOST_NS = "PPFWD_TRANSPARENT_HOST_NETNS"
TABLE = "123"
RULES = {
    4: [[IP, "-4", "rule", "add", "from", "127.0.0.1/8", "iif", "lo", "table", TABLE],
        [IP, "-4", "route", "add", "local", "0.0.0.0/0", "dev", "lo", "table", TABLE]],
    6: [[IP, "-6", "rule", "add", "from", "::1/128", "iif", "lo", "table", TABLE],
        [IP, "-6", "route", "add", "local", "::/0", "dev", "lo", "table", TABLE]],
}
NOT_SET_UP = "not set up"
WHY = [NOT_SET_UP]  # None once the namespace is ready, else why not

# Foreign client addresses the headers claim, per family.
CLIENT_NET = {4: "198.51.100.%d", 6: "2001:db8:7::%x"}
LOOP = {4: V4, 6: V6}


def need_netns():
    if WHY[0]:
        raise Skip(WHY[0])


def setup():
    why = lo_up()
    if why:
        WHY[0] = why
        return
    for fam in (4, 6):
        for argv in RULES[fam]:
            ok, out = sh(argv)
            if not ok:
                WHY[0] = "%s: %s" % (" ".join(argv), out)
                return
    WHY[0] = None


class Backend:
    """A plain TCP backend (no PROXY protocol): records the peer address of
    every connection and echoes what it reads until EOF."""

    def __init__(self, host):
        self.peers = []
        self.lock = threading.Lock()
        self.srv = Server(self._handle, host)
        self.port = self.srv.port

    def _handle(self, c, srv):
        with self.lock:
            self.peers.append(c.getpeername()[:2])
        while True:
            try:
                d = c.recv(65536)
            except ConnectionResetError:
                return
            if not d:
                c.shutdown(socket.SHUT_WR)
                return
            c.sendall(d)

    def wait_peers(self, n, timeout=10.0):
        wait_for(lambda: len(self.peers) >= n, timeout, "%d connections at the backend" % n)
        with self.lock:
            return list(self.peers)


def v2_udp(src, dst):
    """A PROXY v2 header for a datagram (UDP4 / UDP6 family)."""
    if ":" in src[0]:
        addr = (socket.inet_pton(socket.AF_INET6, src[0]) + socket.inet_pton(socket.AF_INET6, dst[0])
                + struct.pack("!HH", src[1], dst[1]))
        fam = 0x22
    else:
        addr = socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack("!HH", src[1], dst[1])
        fam = 0x12
    return V2_SIG + bytes([0x21, fam]) + struct.pack("!H", len(addr)) + addr


def start(route, ports, extra=()):
    return Ppfwd([route], extra=list(extra)).start(ports)


def roundtrip(host, port, header, data, timeout=20.0):
    """Sends header + data, half-closes, reads the echo to EOF; returns it."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    try:
        s.connect((host, port))
        got = []

        def reader():
            while True:
                try:
                    d = s.recv(65536)
                except OSError:
                    return
                if not d:
                    return
                got.append(d)
        t = threading.Thread(target=reader, daemon=True)
        t.start()
        s.sendall(header + data)
        s.shutdown(socket.SHUT_WR)
        t.join(timeout)
        check(not t.is_alive(), "no EOF within %.0fs" % timeout)
        return b"".join(got)
    finally:
        s.close()


def exchange(host, port, header, data, timeout=10.0):
    """Sends header + data and reads len(data) bytes of echo, without a
    half-close (go-mmproxy closes both ways when the client shuts its
    side); returns them."""
    s = socket.create_connection((host, port), timeout=timeout)
    try:
        s.sendall(header + data)
        got = b""
        while len(got) < len(data):
            x = s.recv(65536)
            if not x:
                break
            got += x
        return got
    finally:
        s.close()


def tcp_through(fam, header_kind):
    """One MiB each way through a transparent TCP route; the backend sees the
    client address and port the header carries."""
    need_netns()
    lo = LOOP[fam]
    backend = Backend(lo)
    port = free_port(lo)
    route = "tcp://%s/%s?accept-proxy=required&trusted=%s&transparent=on" % (
        hostport(lo, port), hostport(lo, backend.port), "127.0.0.0/8" if fam == 4 else "::1/128")
    d = start(route, [port])
    client = (CLIENT_NET[fam] % 77, 40077)
    hdr = v1(client, (lo, port)) if header_kind == "v1" else v2(client, (lo, port))
    data = rand_bytes(1 << 20, 11 + fam)
    got = roundtrip(lo, port, hdr, data)
    eq(hashlib.sha256(got).hexdigest(), hashlib.sha256(data).hexdigest(),
       "SHA-256 of the MiB echoed back")
    eq(backend.wait_peers(1), [client], "the address the backend saw")
    d.stop()


@scenario
def tcp4_v1_header_client_seen():
    tcp_through(4, "v1")


@scenario
def tcp4_v2_header_client_seen():
    tcp_through(4, "v2")


@scenario
def tcp6_v1_header_client_seen():
    tcp_through(6, "v1")


@scenario
def tcp6_v2_header_client_seen():
    tcp_through(6, "v2")


def tcp_no_header(fam):
    """A client without a header, from a second namespace: the backend sees
    the client's own address and port."""
    need_netns()
    server, client_ip, plen = ("192.0.2.1", "192.0.2.10", 24) if fam == 4 else \
        ("2001:db8::1", "2001:db8::10", 64)
    holder, _, _ = veth_netns(fam, ("tps", "tpc"), [server], [client_ip], plen, "the client netns")
    lo = LOOP[fam]
    backend = Backend(lo)
    port = free_port(server)
    d = start("tcp://%s/%s?transparent=on" % (hostport(server, port), hostport(lo, backend.port)),
              [port])
    s = tcp_socket_in_netns(holder.pid, socket.AF_INET6 if fam == 6 else socket.AF_INET,
                            "a TCP client in the client namespace")
    on_cleanup(s.close)
    s.bind((client_ip, 0))
    me = s.getsockname()[:2]
    s.settimeout(10)
    end = time.monotonic() + 5  # the veth link may need a moment
    while True:
        try:
            s.connect((server, port))
            break
        except OSError:
            if time.monotonic() > end:
                raise
            time.sleep(0.1)
    s.sendall(b"hello")
    s.shutdown(socket.SHUT_WR)
    got = b""
    while True:
        x = s.recv(4096)
        if not x:
            break
        got += x
    eq(got, b"hello", "echo")
    eq(backend.wait_peers(1), [me], "the address the backend saw")
    d.stop()


@scenario
def tcp4_no_header_peer_seen():
    tcp_no_header(4)


@scenario
def tcp6_no_header_peer_seen():
    tcp_no_header(6)


@scenario
def tcp_50_concurrent_clients_each_seen():
    """50 clients at once, each header from its own address and port: the
    backend sees each connection from exactly the client it carries."""
    need_netns()
    backend = Backend(V4)
    port = free_port(V4)
    d = start("tcp://%s/%s?accept-proxy=required&trusted=127.0.0.0/8&transparent=on" % (
        hostport(V4, port), hostport(V4, backend.port)), [port])
    clients = [(CLIENT_NET[4] % (100 + i), 41000 + i) for i in range(50)]
    socks = []
    for c in clients:
        s = socket.create_connection((V4, port), timeout=10)
        on_cleanup(s.close)
        s.sendall(v2(c, (V4, port)) + ("from %s:%d\n" % c).encode())
        socks.append(s)
    for s, c in zip(socks, clients):
        buf = b""
        while not buf.endswith(b"\n"):
            x = s.recv(4096)
            check(x, "EOF before the echo of %s:%d" % c)
            buf += x
        eq(buf, ("from %s:%d\n" % c).encode(), "echo for %s:%d" % c)
    eq(sorted(backend.wait_peers(50)), sorted(clients), "the addresses the backend saw")
    for s in socks:
        s.close()
    d.stop()


def udp_through(fam):
    """A v2 header in every datagram: the backend sees the client in every
    one; its replies come back through ppfwd to the sender, in order."""
    need_netns()
    lo = LOOP[fam]
    backend = UdpRecorder(lo)
    port = free_port(lo)
    d = Ppfwd(["udp://%s/%s?accept-proxy=required&trusted=%s&transparent=on" % (
        hostport(lo, port), hostport(lo, backend.port), "127.0.0.0/8" if fam == 4 else "::1/128")])
    d.start([])
    wait_for(lambda: d.events("route_start"), 10, "route_start")
    s = socket.socket(socket.AF_INET6 if fam == 6 else socket.AF_INET, socket.SOCK_DGRAM)
    on_cleanup(s.close)
    s.bind((lo, 0))
    s.settimeout(2)
    clients = [(CLIENT_NET[fam] % (20 + k), 42000 + k) for k in range(3)]
    n = 20
    for k, c in enumerate(clients):
        for i in range(n):
            s.sendto(v2_udp(c, (lo, port)) + b"c%d-%d" % (k, i), (lo, port))
    replies = []
    end = time.monotonic() + 10
    while len(replies) < n * len(clients) and time.monotonic() < end:
        try:
            x, src = s.recvfrom(65535)
        except socket.timeout:
            break
        eq(src[:2], (lo, port), "source of a reply")
        replies.append(x)
    for k in range(len(clients)):
        mine = [r for r in replies if r.startswith(b"echo:c%d-" % k)]
        eq(mine, [b"echo:c%d-%d" % (k, i) for i in range(n)], "replies of client %d, in order" % k)
    with backend.lock:
        seen = list(backend.seen)
    for k, c in enumerate(clients):
        srcs = {a for p, a in seen if p.startswith(b"c%d-" % k)}
        eq(srcs, {c}, "sources the backend saw for client %d" % k)
    d.stop()


@scenario
def udp4_v2_header_client_seen():
    udp_through(4)


@scenario
def udp6_v2_header_client_seen():
    udp_through(6)


@scenario
def same_addresses_as_go_mmproxy():
    """The same clients through go-mmproxy (TCP, PROXY v2) and through ppfwd
    transparent=on: the backend sees the same addresses and ports."""
    need_netns()
    if not os.access(MMPROXY, os.X_OK):
        raise Skip("go-mmproxy not found (apt-get install go-mmproxy)")
    backend = Backend(V4)
    d_dir = tmpdir()
    allowed = os.path.join(d_dir, "allowed.txt")
    with open(allowed, "w") as f:
        f.write("127.0.0.1/32\n")
    mp = free_port(V4)
    mm = spawn([MMPROXY, "-l", "127.0.0.1:%d" % mp, "-4", "127.0.0.1:%d" % backend.port,
                "-6", "[::1]:%d" % backend.port, "-allowed-subnets", allowed],
               os.path.join(d_dir, "go-mmproxy.log"))
    on_cleanup(lambda: stop(mm))
    wait_listen(mp, 10, mm)
    port = free_port(V4)
    d = start("tcp://%s/%s?accept-proxy=required&trusted=127.0.0.0/8&transparent=on" % (
        hostport(V4, port), hostport(V4, backend.port)), [port])
    clients = [(CLIENT_NET[4] % (200 + i), 43000 + i) for i in range(5)]
    for c in clients:
        eq(exchange(V4, mp, v2(c, (V4, mp)), b"via go-mmproxy"), b"via go-mmproxy",
           "echo through go-mmproxy (its log: %s)" % tail(read_log(mm)))
    via_mm = backend.wait_peers(len(clients))
    for c in clients:
        # Another port: go-mmproxy's sockets from these addresses may linger.
        c2 = (c[0], c[1] + 100)
        eq(exchange(V4, port, v2(c2, (V4, port)), b"via ppfwd"), b"via ppfwd", "echo through ppfwd")
    via_pp = backend.wait_peers(2 * len(clients))[len(clients):]
    eq([a for a, _ in via_mm], [c[0] for c in clients], "addresses seen through go-mmproxy")
    eq([p for _, p in via_mm], [c[1] for c in clients], "ports seen through go-mmproxy")
    eq([a for a, _ in via_pp], [a for a, _ in via_mm], "addresses: ppfwd as go-mmproxy")
    eq([p - 100 for _, p in via_pp], [p for _, p in via_mm], "ports: ppfwd as go-mmproxy")
    d.stop()


@scenario
def missing_capability_refused_at_start():
    """Without CAP_NET_ADMIN (and CAP_NET_RAW, which Linux also takes), a
    transparent route fails at start, naming the route, the key, the
    capability and how to grant it."""
    need_netns()
    if not os.access(SETPRIV, os.X_OK):
        raise Skip("setpriv (util-linux) not found")
    port = free_port(V4)
    d = tmpdir()
    log = os.path.join(d, "ppfwd.log")
    p = spawn([SETPRIV, "--inh-caps=-net_admin,-net_raw", "--bounding-set=-net_admin,-net_raw",
               PPFWD, "tcp://%s/%s?transparent=on" % (hostport(V4, port), hostport(V4, 9))], log)
    wait_for(lambda: p.poll() is not None, 10, "ppfwd to exit")
    text = read_log(p)
    check(p.returncode != 0, "ppfwd started without the capability:\n%s" % tail(text))
    for want in ("CAP_NET_ADMIN", "transparent", "AmbientCapabilities=CAP_NET_ADMIN"):
        check(want in text, "%r not in the message:\n%s" % (want, tail(text)))


@scenario
def family_mismatch_refused():
    """An IPv6 client for an IPv4 upstream: refused and logged with the
    reason, never sent from ppfwd's own address."""
    need_netns()
    backend = Backend(V4)
    port = free_port(V4)
    d = start("tcp://%s/%s?accept-proxy=required&trusted=127.0.0.0/8&transparent=on" % (
        hostport(V4, port), hostport(V4, backend.port)), [port])
    s = socket.create_connection((V4, port), timeout=5)
    on_cleanup(s.close)
    s.sendall(v2(("2001:db8::99", 4000), ("2001:db8::1", 443)) + b"x")
    expect_closed(s)
    time.sleep(0.3)
    eq(backend.peers, [], "connections the backend got")
    text = d.log_text()
    check("family" in text, "no log line gives the family mismatch:\n%s" % tail(text))
    d.stop()


@scenario
def missing_routing_hint_once_per_route():
    """Without the policy routing the upstream's SYN-ACK never comes back:
    each connection ends with a connect timeout, and the route logs a hint
    to the routing rules once, not per connection."""
    need_netns()
    for argv in RULES[4]:
        ok, out = sh([a if a != "add" else "del" for a in argv])
        check(ok, "removing %s: %s" % (" ".join(argv), out))
    try:
        backend = Backend(V4)
        port = free_port(V4)
        d = start("tcp://%s/%s?accept-proxy=required&trusted=127.0.0.0/8&transparent=on"
                  "&connect-timeout=500ms" % (hostport(V4, port), hostport(V4, backend.port)),
                  [port])
        # Three at once: each connects before the first times out (after
        # which the lone upstream is paused by the passive check).
        socks = []
        for i in range(3):
            s = socket.create_connection((V4, port), timeout=5)
            on_cleanup(s.close)
            s.sendall(v2((CLIENT_NET[4] % (60 + i), 44000 + i), (V4, port)) + b"x")
            socks.append(s)
        for s in socks:
            expect_closed(s, 5)
        # Lines reach the log through ppfwd's logger thread: wait for them.
        d.wait_event("upstream_error", count=3)
        time.sleep(0.2)  # a second hint would have come by now
        text = d.log_text()
        hints = [line for line in text.splitlines() if "ip rule" in line]
        eq(len(hints), 1, "log lines with the routing hint")
        eq(len(d.events("upstream_error")), 3, "connect timeouts logged (upstream_error)")
        d.stop()
    finally:
        for argv in RULES[4]:
            sh(argv)


def main():
    why = own_netns(ENV_HOST_NS, "not root (transparent mode needs CAP_NET_ADMIN, and the test "
                    "makes network namespaces)")
    if why is not None:
        WHY[0] = why
    else:
        setup()
    return run()


if __name__ == "__main__":
    sys.exit(main())
