#!/usr/bin/python3
"""UDP GSO in ppfwd (src/engine/udp_send.c udp_send/gso_run) with real traffic.

ppfwd sends a session's run of equal-size datagrams as one UDP GSO send
(UDP_SEGMENT), queues the replies of all sessions and sends them at the end
of the loop iteration, GSO-grouped per destination, and when the kernel
refuses a GSO send (a segment larger than the path MTU, ...) sends the run
again datagram by datagram and stops using GSO on that listener.

Clients here keep a window of datagrams in flight, so that ppfwd reads
several of a client's datagrams in one batch and runs form. Every datagram
carries its client id and sequence number and a payload derived from both;
every answer must come back intact, to the right client, in order. Some
clients (and the echo backend) set UDP_GRO: on loopback a GSO send then
reaches them as one buffer with its segment size, so they can count the
trains ppfwd sent, which shows GSO in use (or, after a fallback, not).

small_mtu_fallback_v4/v6 need a second network namespace: the file
re-executes itself under `unshare -n` (namespace "A": ppfwd and the clients,
on loopback), and the scenario joins a namespace "B" to it by a veth pair
whose two ends have MTU 1280; the echo backend's socket lives in B, so all
of ppfwd's upstream traffic crosses the 1280-byte link:

    clients --lo--> ppfwd (A) --veth gsoaN/gsobN, MTU 1280--> echo backend (B)

Per route, three phases of 4 clients x 300 datagrams, 16 in flight each:
"fit" (1000, 1000, 1000, 700 bytes repeating: GSO runs with a shorter last
segment, which fit the link), "over" (1,300 bytes, which do not: the kernel
refuses the GSO send, EMSGSIZE on Linux 6.x, EINVAL on older ones, and
ppfwd resends the run datagram by datagram, which IP fragments), then "fit"
again. Two routes, so two listeners with a GSO switch each: the first
refused run of one is all 1,300 bytes, of the other 1300, 1300, 1300, 900.
What proves the fallback ran, besides every datagram coming back in order:
in "fit", ppfwd's GSO sends cross the veth as one packet each (fewer tx
packets than datagrams) and reach the GRO clients as trains; in "over",
A's Ip FragOKs grows by one per datagram over the MTU (a GSO send cannot
be fragmented: these are the fallback's plain sends), B's ReasmOKs
likewise; in "fit" again, the veth carries at least a packet per datagram
and the GRO clients get no train: GSO is off for the listener.
Without root, unshare(1), nsenter(1) or ip(8) those two print SKIP, and the
others run on the host's loopback. The host's network configuration is
never touched: the setup runs only after checking that this process is in
a namespace of its own.

Run: /usr/bin/python3 tests/integration/test_udp_gso.py [SCENARIO...]"""

import json
import os
import random
import re
import selectors
import signal
import socket
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PPFWD, Fail, Ppfwd, Skip, check, eq, fmt_addr, hostport,  # noqa: E402
                     on_cleanup, parse_header, read_log, run, scenario, spawn, stop, tail,
                     tmpdir, wait_for)
from netns import (IP, bound_udp, ip_in, lo_up, must, own_netns, sockets_in_netns,  # noqa: E402
                   udp_port, veth_netns)

ENV_HOST_NS = "PPFWD_GSO_HOST_NETNS"
# None when this process runs in a namespace of its own with loopback up,
# else why the veth scenarios cannot run.
NETNS = {"why": "not set up"}

SOL_UDP = 17
UDP_SEGMENT = 103  # linux/udp.h
UDP_GRO = 104
SO_RCVBUFFORCE = 33

MTU = 1280
# family -> (A's end of the veth, B's end (the backend), prefix, loopback)
NETS = {
    4: ("198.51.100.1", "198.51.100.2", 24, "127.0.0.1"),
    6: ("2001:db8:5::1", "2001:db8:5::2", 64, "::1"),
}

# A block of random bytes: a datagram's payload is a slice of it chosen by
# its client and sequence number, so any corruption or mix-up shows.
BLOCK = random.Random(1452).randbytes(1 << 16)


# ---- sockets ----------------------------------------------------------------


def fam_of(host):
    return socket.AF_INET6 if ":" in host else socket.AF_INET


def big_buffers(s):
    for opt, val in ((SO_RCVBUFFORCE, 4 << 20), (socket.SO_RCVBUF, 4 << 20)):
        try:
            s.setsockopt(socket.SOL_SOCKET, opt, val)
            return
        except OSError:
            pass


def set_gro(s):
    """UDP_GRO on s: a GSO train reaches it as one buffer (on loopback),
    with a control message naming the segment size."""
    try:
        s.setsockopt(SOL_UDP, UDP_GRO, 1)
    except OSError as e:
        raise Skip("setsockopt UDP_GRO: %s (kernel older than 5.0?)" % e)


def recv_segments(s):
    """Reads one buffer from s (non-blocking): its datagrams (split by the
    UDP_GRO segment size when it was a train), and the source address.
    Returns (None, None) when nothing is waiting."""
    try:
        data, anc, _flags, src = s.recvmsg(1 << 16, socket.CMSG_SPACE(4))
    except (BlockingIOError, InterruptedError):
        return None, None
    seg = 0
    for level, typ, cd in anc:
        if level == SOL_UDP and typ == UDP_GRO and len(cd) >= 4:
            seg = int.from_bytes(cd[:4], sys.byteorder)
    if seg <= 0 or seg >= len(data):
        return [data], src
    return [data[i:i + seg] for i in range(0, len(data), seg)], src


# ---- backends ----------------------------------------------------------------


class EchoBackend:
    """A UDP backend on a thread. mode "echo" answers each datagram with
    itself; mode "v2" expects a PROXY v2 header in each (harness's own
    parser), records the client it names, and answers that client's
    "ip:port" and a newline, then the payload. It drains all that is
    waiting before answering, so ppfwd gets replies in bursts. With gro it
    counts the GSO trains ppfwd sent it."""

    def __init__(self, host=None, mode="echo", gro=False, sock=None):
        self.s = sock or socket.socket(fam_of(host), socket.SOCK_DGRAM)
        if sock is None:
            self.s.bind((host, 0))
        big_buffers(self.s)
        if gro:
            set_gro(self.s)
        self.s.setblocking(False)
        self.port = self.s.getsockname()[1]
        PORT_NAMES[self.port] = "backend"
        self.mode = mode
        self.datagrams = self.trains = 0
        self.errors = []
        self.stopped = False
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.s, selectors.EVENT_READ)
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def _answer(self, d):
        if self.mode == "echo":
            return d
        # Over UDP the family byte says DGRAM (0x12, 0x22); harness's
        # parser knows the STREAM ones, the layout is the same.
        fam = d[13] if len(d) > 13 else None
        if fam not in (0x12, 0x22):
            self.errors.append("v2 family byte %r, want UDP over IPv4/IPv6 (%r)" % (fam, d[:40]))
            return None
        try:
            h, n = parse_header(d[:13] + bytes([fam - 1]) + d[14:])
        except Fail as e:
            self.errors.append("bad PROXY header: %s (%r)" % (e, d[:40]))
            return None
        if h["version"] != 2 or h["command"] != "proxy" or h["src"] is None:
            self.errors.append("unexpected header %r" % h)
            return None
        return fmt_addr(h["src"]).encode() + b"\n" + d[n:]

    def _run(self):
        while not self.stopped:
            if not self.sel.select(0.2):
                continue
            out = []
            for _ in range(256):
                segs, src = recv_segments(self.s)
                if segs is None:
                    break
                self.datagrams += len(segs)
                if len(segs) > 1:
                    self.trains += 1
                for d in segs:
                    a = self._answer(d)
                    if a is not None:
                        out.append((a, src))
            for a, src in out:
                for _ in range(100):
                    try:
                        self.s.sendto(a, src)
                        break
                    except (BlockingIOError, InterruptedError):
                        time.sleep(0.001)
                    except OSError as e:
                        self.errors.append("sendto %s: %s" % (src, e))
                        break

    def close(self):
        if not self.stopped:
            self.stopped = True
            self.t.join(2)
            self.sel.close()
            self.s.close()


def start_whoami(host="127.0.0.1"):
    """`ppfwd whoami --udp --accept-proxy=required` on a fresh port."""
    d = tmpdir()
    for _ in range(5):
        port = udp_port(host)
        p = spawn([PPFWD, "whoami", "--udp", "--accept-proxy=required", hostport(host, port)],
                  os.path.join(d, "whoami.log"))

        def up():
            if p.poll() is not None:
                return "exited"
            return bound_udp(host, port)
        wait_for(up, 10, "whoami bound to UDP %d" % port)
        if p.poll() is None:
            PORT_NAMES[port] = "whoami"
            return p, port
        if "in use" not in read_log(p).lower():
            raise Fail("whoami exited with %s:\n%s" % (p.returncode, tail(read_log(p))))
    raise Fail("whoami did not start")


def start_ppfwd(routes_for, hosts, workers=2):
    """ppfwd with the routes routes_for(ports) gives, one UDP port per
    entry of hosts; waits until every worker bound them (route_start)."""
    for _ in range(5):
        ports = [udp_port(h) for h in hosts]
        d = Ppfwd(routes_for(ports), workers=workers).start([])

        def up():
            if not d.alive():
                return "exited"
            return all(bound_udp(h, p) for h, p in zip(hosts, ports))
        wait_for(up, 10, "ppfwd bound to UDP %s" % ports)
        if d.alive():
            PORT_NAMES.update((p, "ppfwd") for p in ports)
            d.wait_event("route_start", count=len(ports))
            return d, ports
        if "in use" not in d.log_text().lower():
            raise Fail("ppfwd exited with %s:\n%s" % (d.p.returncode, tail(d.log_text())))
    raise Fail("ppfwd did not start")


def check_sessions(d, clients, count):
    """Stops ppfwd (SIGTERM, exit 0) and checks the session lines it then
    logs: one per client, count datagrams each way; and no drop at all."""
    eq(d.stop(), 0, "ppfwd's exit status after SIGTERM")
    log = d.log_text()
    dropped = d.events("udp_dropped") + d.events("upstream_error")
    eq(dropped, [], "ppfwd's udp_dropped / upstream_error lines")
    closes = {e.get("client"): e for e in d.events("udp_session_close")}
    for c in clients:
        e = closes.get(fmt_addr(c.addr))
        check(e is not None, "no udp_session_close for %s; log tail:\n%s"
              % (fmt_addr(c.addr), tail(log)))
        eq((e.get("datagrams_in"), e.get("datagrams_out")), (count, count),
           "datagrams in/out of %s's session" % fmt_addr(c.addr))


# ---- clients -----------------------------------------------------------------


class Client:
    def __init__(self, cid, host, gro=False):
        self.cid = cid
        self.s = socket.socket(fam_of(host), socket.SOCK_DGRAM)
        self.s.bind((host, 0))
        big_buffers(self.s)
        self.gro = gro
        if gro:
            set_gro(self.s)
        self.s.setblocking(False)
        self.addr = self.s.getsockname()[:2]
        on_cleanup(self.s.close)

    def reset(self):
        self.sent = 0
        self.got = []
        self.trains = 0
        self.strangers = []


def payload(tag, cid, seq, size):
    """b"TAG cCID sSEQ " then bytes of BLOCK picked by cid and seq: size bytes."""
    head = b"%s c%03d s%05d " % (tag, cid, seq)
    off = (cid * 7919 + seq * 104729) % (len(BLOCK) - 2048)
    return head + BLOCK[off:off + size - len(head)]


def foreign(c):
    """", N of them another client's" when answers to c carry another id."""
    n = 0
    for d in c.got:
        m = re.search(rb" c(\d{3}) s\d{5} ", d[:60])
        n += m is not None and int(m.group(1)) != c.cid
    return ", %d of them another client's" % n if n else ""


def pump(clients, dest, count, window, make, what, timeout=40.0):
    """Each client sends make(client, seq) for seq in 0..count-1 to dest,
    with at most `window` unanswered, topping its window up after each
    round of reading (so that datagrams leave in bursts); answers go to
    client.got. Returns when every client has count answers, or when none
    came for 5 s, or after timeout."""
    sel = selectors.DefaultSelector()
    t0, udp0 = time.monotonic(), udp_counters()
    for c in clients:
        c.reset()
        sel.register(c.s, selectors.EVENT_READ, c)
    try:
        end = time.monotonic() + timeout
        last = time.monotonic()
        todo = set(clients)
        while todo:
            for c in list(todo):
                while c.sent < count and c.sent - len(c.got) < window:
                    try:
                        c.s.sendto(make(c, c.sent), dest)
                    except (BlockingIOError, InterruptedError):
                        break
                    c.sent += 1
            now = time.monotonic()
            if now > end or now - last > 5.0:
                break
            for key, _ in sel.select(0.2):
                c = key.data
                while True:
                    segs, src = recv_segments(c.s)
                    if segs is None:
                        break
                    if src[:2] != dest[:2]:
                        c.strangers.append(src)
                        continue
                    last = time.monotonic()
                    if len(segs) > 1:
                        c.trains += 1
                    c.got.extend(segs)
                if len(c.got) >= count:
                    todo.discard(c)
    finally:
        sel.close()
    udp = delta(udp_counters(), udp0)
    short = ["client %d (%s): %d of %d answered%s" % (c.cid, fmt_addr(c.addr), len(c.got), count,
                                                       foreign(c))
             for c in clients if len(c.got) != count]
    if short:
        raise Fail("%s: answers missing or extra after %.1fs (UDP counters of this namespace "
                   "meanwhile: %s; drops by local port: %s):\n  %s"
                   % (what, time.monotonic() - t0, udp, udp_drops(), "\n  ".join(short[:10])))
    for c in clients:
        eq(c.strangers, [], "%s: answers to client %d from other addresses" % (what, c.cid))


def check_echo(clients, count, make, what):
    """Every client got back exactly what it sent, in order."""
    for c in clients:
        for seq, got in enumerate(c.got):
            want = make(c, seq)
            if got != want:
                where = "; it is client %s's" % got[:14] if got[:14] != want[:14] else ""
                raise Fail("%s: client %d answer %d: got %d bytes %r..., want %d bytes %r...%s"
                           % (what, c.cid, seq, len(got), got[:24], len(want), want[:24], where))


def check_v2_echo(clients, count, make, what):
    """Each answer names the client the v2 header named, then the payload,
    in order."""
    for c in clients:
        me = fmt_addr(c.addr).encode() + b"\n"
        for seq, got in enumerate(c.got):
            want = me + make(c, seq)
            if got != want:
                raise Fail("%s: client %d (%s) answer %d: got %r..., want %r..."
                           % (what, c.cid, fmt_addr(c.addr), seq, got[:60], want[:60]))


def check_whoami(clients, count, what):
    """Each answer is whoami's JSON naming the client, from a v2 header for
    UDP; each client's answers name one peer (its session's socket), and no
    two clients share one."""
    peers = {}
    for c in clients:
        me = fmt_addr(c.addr)
        for seq, got in enumerate(c.got):
            try:
                j = json.loads(got)
            except ValueError:
                raise Fail("%s: client %d answer %d is not JSON: %r"
                           % (what, c.cid, seq, got[:80]))
            eq(j.get("client"), me, "%s: client named in answer %d to client %d"
               % (what, seq, c.cid))
            p = j.get("proxy") or {}
            eq((p.get("version"), p.get("family")), (2, "udp6" if ":" in c.addr[0] else "udp4"),
               "%s: PROXY version and family whoami saw for client %d" % (what, c.cid))
            peers.setdefault(j.get("peer"), set()).add(c.cid)
    shared = {p: sorted(cs) for p, cs in peers.items() if len(cs) > 1}
    eq(shared, {}, "%s: ppfwd sockets whoami saw for more than one client" % what)
    eq(len(peers), len(clients), "%s: ppfwd sockets whoami saw (one per client)" % what)


# ---- counters of the small-MTU path ------------------------------------------


def snmp(pid, fam):
    """The IP fragmentation counters of pid's network namespace."""
    out = {}
    if fam == 4:
        with open("/proc/%s/net/snmp" % pid) as f:
            lines = [ln.split() for ln in f if ln.startswith("Ip:")]
        out = dict(zip(lines[0][1:], (int(v) for v in lines[1][1:])))
        return {"FragOKs": out["FragOKs"], "FragCreates": out["FragCreates"],
                "ReasmOKs": out["ReasmOKs"]}
    with open("/proc/%s/net/snmp6" % pid) as f:
        for ln in f:
            k, v = ln.split()
            out[k] = int(v)
    return {"FragOKs": out["Ip6FragOKs"], "FragCreates": out["Ip6FragCreates"],
            "ReasmOKs": out["Ip6ReasmOKs"]}


def udp_counters():
    """The UDP error counters of this network namespace (v4 and v6 summed)."""
    out = {"RcvbufErrors": 0, "SndbufErrors": 0, "InErrors": 0, "NoPorts": 0}
    with open("/proc/self/net/snmp") as f:
        lines = [ln.split() for ln in f if ln.startswith("Udp:")]
    for k, v in zip(lines[0][1:], lines[1][1:]):
        if k in out:
            out[k] += int(v)
    with open("/proc/self/net/snmp6") as f:
        for ln in f:
            k, v = ln.split()
            if k.startswith("Udp6") and k[4:] in out:
                out[k[4:]] += int(v)
    return out


# Local UDP port -> what it is, for udp_drops.
PORT_NAMES = {}


def udp_drops():
    """{port: drops} of this namespace's UDP sockets that dropped some
    (the last column of /proc/net/udp{,6})."""
    out = {}
    for name in ("/proc/self/net/udp", "/proc/self/net/udp6"):
        with open(name) as f:
            next(f)
            for line in f:
                parts = line.split()
                n = int(parts[-1])
                if n:
                    port = int(parts[1].rsplit(":", 1)[1], 16)
                    what = "%s %d" % (PORT_NAMES.get(port, "port"), port)
                    out[what] = out.get(what, 0) + n
    return out


def link_stats(dev):
    """dev's packet and byte counters, from `ip -s -j link`."""
    j = json.loads(must([IP, "-s", "-j", "link", "show", "dev", dev]))[0]["stats64"]
    return {"%s_%s" % (d, k): j[d][k] for d in ("tx", "rx") for k in ("packets", "bytes")}


def delta(after, before):
    return {k: after[k] - before[k] for k in after}


def mtu_peer_netns(fam):
    """Namespace B, joined to this one by a veth pair with MTU 1280 at both
    ends; returns (holder process, A's device name)."""
    a_addr, b_addr, plen, _ = NETS[fam]
    holder, a_dev, b_dev = veth_netns(fam, ("gsoa", "gsob"), [a_addr], [b_addr], plen,
                                      "the backend's namespace", mtu=MTU, hold=300)
    for dev, pre in ((a_dev, [IP]), (b_dev, ip_in(holder))):
        j = json.loads(must(pre + ["-j", "link", "show", "dev", dev]))[0]
        eq(j.get("mtu"), MTU, "MTU of %s" % dev)
    return holder, a_dev


# ---- scenarios -----------------------------------------------------------------

FIT = (1000, 1000, 1000, 700)  # fits 1280 with IP and UDP headers; the last one shorter
OVER_EQUAL = (1300,)           # does not fit: the GSO send is refused
OVER_MIXED = (1300, 1300, 1300, 900)
SMALL_N, SMALL_W, SMALL_CLIENTS = 300, 16, 4


def small_mtu_fallback(fam):
    if NETNS["why"]:
        raise Skip(NETNS["why"])
    a_addr, b_addr, _, lo = NETS[fam]
    holder, a_dev = mtu_peer_netns(fam)
    sock, = sockets_in_netns(holder.pid, [b_addr],
                             "a socket on %s in the backend's namespace" % b_addr)
    backend = EchoBackend(mode="echo", sock=sock)
    b_ep = hostport(b_addr, backend.port)
    # Two routes, so two listeners, each with its own GSO switch: the first
    # refused run of one is all of equal size, of the other has a shorter
    # last segment. One worker: each route has one listener.
    d, ports = start_ppfwd(lambda ps: ["udp://%s/%s" % (hostport(lo, p), b_ep) for p in ps],
                           [lo, lo], workers=1)

    # The veth's first datagrams may wait for the link and neighbour
    # discovery: one exchange per route, retried, before counting.
    probe = Client(99, lo)
    for p in ports:
        want = b"probe %d" % p

        def answered():
            probe.s.sendto(want, (lo, p))
            t = time.monotonic() + 0.3
            while time.monotonic() < t:
                segs, _ = recv_segments(probe.s)
                if segs and want in segs:
                    return True
                time.sleep(0.01)
            return False
        wait_for(answered, 10, "an echo through ppfwd port %d and the veth" % p, step=0)

    report, all_clients = [], []
    for route, (port, over) in enumerate(zip(ports, (OVER_EQUAL, OVER_MIXED))):
        clients = [Client(route * 10 + i, lo, gro=True) for i in range(SMALL_CLIENTS)]
        all_clients += clients
        trains = {}
        for phase, sizes in (("fit", FIT), ("over", over), ("fit-after", FIT)):
            tag = ("%s-%d" % (phase, route)).encode()

            def make(c, seq, tag=tag, sizes=sizes):
                return payload(tag, c.cid, seq, sizes[seq % len(sizes)])
            n_dg = SMALL_CLIENTS * SMALL_N
            n_over = SMALL_CLIENTS * sum(1 for s in range(SMALL_N)
                                         if sizes[s % len(sizes)] + (28 if fam == 4 else 48) > MTU)
            a0, b0, l0 = snmp("self", fam), snmp(holder.pid, fam), link_stats(a_dev)
            pump(clients, (lo, port), SMALL_N, SMALL_W, make, "route %d, %s" % (route, phase))
            check_echo(clients, SMALL_N, make, "route %d, %s" % (route, phase))
            da, db = delta(snmp("self", fam), a0), delta(snmp(holder.pid, fam), b0)
            lk = delta(link_stats(a_dev), l0)
            trains[phase] = sum(c.trains for c in clients)
            n_bytes = sum(len(make(c, s)) for c in clients for s in range(SMALL_N))
            report.append("route %d %s: %d datagrams, %d over the MTU; veth tx %d packets "
                          "%d bytes, rx %d packets; A FragOKs +%d, B ReasmOKs +%d; reply trains %d"
                          % (route, phase, n_dg, n_over, lk["tx_packets"], lk["tx_bytes"],
                             lk["rx_packets"], da["FragOKs"], db["ReasmOKs"], trains[phase]))
            # Every byte crossed the veth both ways; the backend's answers
            # are plain datagrams: a packet each, two (fragments) if over.
            check(lk["tx_bytes"] >= n_bytes and lk["rx_bytes"] >= n_bytes and
                  lk["rx_packets"] >= n_dg + n_over,
                  "the datagrams did not cross the veth: %s" % report[-1])
            if phase == "fit":
                eq(da["FragOKs"], 0, "datagrams fragmented in A while all fit (%s)" % report[-1])
                # A GSO send crosses the veth as one packet (segmented at B).
                check(lk["tx_packets"] < n_dg, "no GSO send of ppfwd crossed the veth "
                      "before the fallback: %s" % report[-1])
            else:
                # GSO off: each datagram of ppfwd leaves as a packet of its
                # own, or as fragments (a GSO send cannot be fragmented).
                check(lk["tx_packets"] >= n_dg + n_over,
                      "fewer packets than datagrams on the veth after the fallback: %s"
                      % report[-1])
                check(da["FragOKs"] >= n_over and db["ReasmOKs"] >= n_over,
                      "ppfwd's datagrams over the MTU were not sent as plain datagrams "
                      "fragmented by IP: %s" % report[-1])
        # Before the refused send, ppfwd answered the GRO clients with GSO
        # trains; after it, GSO is off for the listener: no train any more.
        check(trains["fit"] > 0, "no GSO train from ppfwd before the fallback (GSO off from "
              "the start?): %s" % "; ".join(report))
        eq(trains["fit-after"], 0, "GSO trains from ppfwd after the refused GSO send (the "
           "listener should have switched GSO off); %s" % "; ".join(report))
        eq(backend.errors, [], "backend errors")
    check_sessions(d, all_clients, 3 * SMALL_N)
    print("  " + "\n  ".join(report), flush=True)


@scenario
def small_mtu_fallback_v4():
    """Over a 1280-byte MTU to the backend: 1,000/700-byte runs go as GSO,
    1,300-byte runs (equal, or with a 900-byte last one) are refused by the
    kernel and resent one by one, fragmented by IP: all come back, in order."""
    small_mtu_fallback(4)


@scenario
def small_mtu_fallback_v6():
    """The same over IPv6."""
    small_mtu_fallback(6)


@scenario
def gso_on_loopback():
    """4 clients x 2,000 datagrams of 1,200 bytes, 16 in flight each, through
    a plain route (echo backend with UDP_GRO), a send-proxy=v2 route to
    `ppfwd whoami --udp` and a send-proxy=v2 route to an echo backend that
    checks the header: all answered, to the right client, in order; GSO
    trains seen both ways."""
    lo = "127.0.0.1"
    n, w, size = 2000, 16, 1200
    plain = EchoBackend(lo, mode="echo", gro=True)
    v2echo = EchoBackend(lo, mode="v2", gro=True)
    who, who_port = start_whoami(lo)
    ups = [plain.port, who_port, v2echo.port]
    opts = ["", "?send-proxy=v2", "?send-proxy=v2"]
    d, ports = start_ppfwd(lambda ps: ["udp://%s:%d/%s:%d%s" % (lo, p, lo, u, o)
                                       for p, u, o in zip(ps, ups, opts)], [lo] * 3)
    all_clients = []
    for k, (what, port) in enumerate(zip(("plain", "v2 whoami", "v2 echo"), ports)):
        clients = [Client(k * 10 + i, lo, gro=(i % 2 == 0)) for i in range(4)]
        all_clients += clients

        def make(c, seq, tag=what.replace(" ", "-").encode()):
            return payload(tag, c.cid, seq, size)
        pump(clients, (lo, port), n, w, make, what, timeout=45)
        if what == "plain":
            check_echo(clients, n, make, what)
        elif what == "v2 whoami":
            check_whoami(clients, n, what)
        else:
            check_v2_echo(clients, n, make, what)
        got = sum(c.trains for c in clients if c.gro)
        check(got > 0, "%s: no GSO train from ppfwd to the GRO clients" % what)
        print("  %s: %d answers; reply trains to the GRO clients: %d"
              % (what, 4 * n, got), flush=True)
    check(plain.trains > 0, "no GSO train from ppfwd to the plain route's backend")
    check(v2echo.trains > 0, "no GSO train from ppfwd to the v2 route's backend")
    eq(plain.errors + v2echo.errors, [], "backend errors")
    print("  upstream trains: plain backend %d, v2 backend %d" % (plain.trains, v2echo.trains),
          flush=True)
    check_sessions(d, all_clients, n)
    eq(stop(who), 0, "whoami's exit status after SIGTERM")


@scenario
def replies_of_many_sessions():
    """50 clients with 4 datagrams in flight each, through a plain route to
    an echo backend that answers in bursts (so that ppfwd sends the replies
    of many sessions in one call) and a send-proxy=v2 route to whoami: every
    answer reaches the client it belongs to, in order."""
    lo = "127.0.0.1"
    n, w, nc = 40, 4, 50
    plain = EchoBackend(lo, mode="echo")
    who, who_port = start_whoami(lo)
    d, ports = start_ppfwd(lambda ps: ["udp://%s:%d/%s:%d" % (lo, ps[0], lo, plain.port),
                                       "udp://%s:%d/%s:%d?send-proxy=v2" % (lo, ps[1], lo,
                                                                           who_port)],
                           [lo, lo])
    all_clients = []
    # whoami's socket keeps the kernel's default receive buffer (~200 KiB),
    # which 200 datagrams in flight overflow: 2 each on its route.
    for k, (what, port, w) in enumerate(zip(("plain", "v2 whoami"), ports, (w, 2))):
        clients = [Client(k * 100 + i, lo, gro=(i % 2 == 0)) for i in range(nc)]
        all_clients += clients

        def make(c, seq, tag=what.replace(" ", "-").encode()):
            return payload(tag, c.cid, seq, 256)
        pump(clients, (lo, port), n, w, make, what, timeout=45)
        if what == "plain":
            check_echo(clients, n, make, what)
        else:
            check_whoami(clients, n, what)
    eq(plain.errors, [], "backend errors")
    check_sessions(d, all_clients, n)
    eq(stop(who), 0, "whoami's exit status after SIGTERM")


def send_train(s, datagrams, dest):
    """One GSO send of datagrams (all of the first one's size, the last may
    be shorter) from s to dest: what a QUIC server's burst looks like."""
    seg = len(datagrams[0]).to_bytes(2, sys.byteorder)
    s.sendmsg([b"".join(datagrams)], [(SOL_UDP, UDP_SEGMENT, seg)], 0, dest)


def raw_backend_route(lo, workers=2):
    """A bare UDP socket as the backend (5 s timeout) and ppfwd with one
    udp:// route to it; returns (backend socket, ppfwd, [route port])."""
    back = socket.socket(fam_of(lo), socket.SOCK_DGRAM)
    back.bind((lo, 0))
    big_buffers(back)
    back.settimeout(5)
    on_cleanup(back.close)
    d, ports = start_ppfwd(lambda ps: ["udp://%s/%s" % (hostport(lo, ps[0]),
                                                       hostport(lo, back.getsockname()[1]))],
                           [lo], workers=workers)
    return back, d, ports


def gro_replies(lo):
    """The upstream answers in GSO trains (one send of up to 41 datagrams),
    as QUIC servers do. Once a session's upstream has sent a run, ppfwd sets
    UDP_GRO on the session's socket and the kernel hands it each train as
    one buffer, which ppfwd sends on to the client as one GSO send, as it
    came. What proves it: ppfwd reads at most 32 datagrams at a time, so a
    train of 41 reaching a UDP_GRO client in one buffer was never taken
    apart. Both clients get every datagram, in order, also the shorter last
    ones; trains of 2,000-byte segments (over what ppfwd sends as GSO) reach
    them cut into single datagrams; the session logs count datagrams."""
    back, d, ports = raw_backend_route(lo)
    dest = (lo, ports[0])
    clients = [Client(i, lo, gro=(i == 0)) for i in range(2)]
    sess = {}
    for c in clients:
        c.reset()
        c.s.sendto(b"hello %d" % c.cid, dest)
        data, src = back.recvfrom(2048)
        sess[int(data.split()[1])] = src
    eq(sorted(sess), [0, 1], "the backend heard both clients")
    sent = {0: [], 1: []}
    longest = {0: 0, 1: 0}

    def train(c, n, size, last):
        dgs = [payload(b"gro", c.cid, len(sent[c.cid]) + i, size) for i in range(n)]
        dgs.append(payload(b"gro", c.cid, len(sent[c.cid]) + n, last))
        sent[c.cid] += dgs
        send_train(back, dgs, sess[c.cid])
        end = time.monotonic() + 5
        while len(c.got) < len(sent[c.cid]) and time.monotonic() < end:
            segs, src = recv_segments(c.s)
            if segs is None:
                time.sleep(0.002)
                continue
            eq(src[:2], dest[:2], "where client %d's answer came from" % c.cid)
            longest[c.cid] = max(longest[c.cid], len(segs))
            c.got.extend(segs)
        eq(len(c.got), len(sent[c.cid]), "datagrams client %d got" % c.cid)

    for k in range(6):
        for c in clients:
            train(c, 40, 1000, 300)
        if longest[0] > 32:
            break
    check(longest[0] > 32, "the GRO client never got a train of 41 in one buffer (longest %d): "
          "ppfwd took the upstream's trains apart" % longest[0])
    eq(longest[1], 1, "the longest buffer the plain client read")
    trains = k + 1
    for c in clients:
        longest[c.cid] = 0
        train(c, 5, 2000, 1)
        eq(longest[c.cid], 1, "client %d: 2,000-byte segments come as single datagrams" % c.cid)
    for c in clients:
        eq(c.got, sent[c.cid], "client %d: every datagram, in order" % c.cid)
    print("  %s: %d trains of 41 and one of 6 per client; the GRO client got a train of 41 in one "
          "buffer" % (lo, trains), flush=True)
    eq(d.stop(), 0, "ppfwd's exit status after SIGTERM")
    eq(d.events("udp_dropped"), [], "ppfwd's udp_dropped lines")
    closes = {e.get("client"): e for e in d.events("udp_session_close")}
    for c in clients:
        e = closes.get(fmt_addr(c.addr)) or {}
        eq((e.get("datagrams_in"), e.get("datagrams_out")), (1, len(sent[c.cid])),
           "datagrams in/out of client %d's session" % c.cid)


def gro_trial(lo):
    """An upstream that answers in runs of single datagrams (no GSO) gets
    UDP_GRO on its session's socket on trial only: after 32 runs that all
    came datagram by datagram ppfwd turns it off again (it cost CPU per
    datagram and brought nothing). What shows it: a GSO train of 41 sent
    after that reaches ppfwd cut by the kernel, so a UDP_GRO client gets it
    in buffers of at most 32 (ppfwd's read), where gro_replies sees 41 in
    one. ppfwd is stopped (SIGSTOP) while the backend queues each run, so
    that it reads each run in one call."""
    back, d, ports = raw_backend_route(lo, workers=1)
    dest = (lo, ports[0])
    c = Client(0, lo, gro=True)
    c.reset()
    c.s.sendto(b"hello 0", dest)
    _data, sess = back.recvfrom(2048)
    sent = []
    longest = [0]

    def collect():
        end = time.monotonic() + 5
        while len(c.got) < len(sent) and time.monotonic() < end:
            segs, src = recv_segments(c.s)
            if segs is None:
                time.sleep(0.002)
                continue
            eq(src[:2], dest[:2], "where the answer came from")
            longest[0] = max(longest[0], len(segs))
            c.got.extend(segs)
        eq(len(c.got), len(sent), "datagrams the client got")

    runs = 34  # one to start the trial, 32 to end it, one more
    for _ in range(runs):
        dgs = [payload(b"run", 0, len(sent) + i, 200) for i in range(4)]
        sent.extend(dgs)
        os.kill(d.pid, signal.SIGSTOP)
        try:
            for dg in dgs:
                back.sendto(dg, sess)
        finally:
            os.kill(d.pid, signal.SIGCONT)
        collect()
    longest[0] = 0
    dgs = [payload(b"gso", 0, len(sent) + i, 1000) for i in range(41)]
    sent.extend(dgs)
    send_train(back, dgs, sess)
    collect()
    check(longest[0] <= 32, "a train of %d reached the client in one buffer after %d runs of "
          "single datagrams: UDP_GRO is still on" % (longest[0], runs))
    eq(c.got, sent, "every datagram, in order")
    print("  %s: after %d runs of singles a train of 41 came in buffers of at most %d"
          % (lo, runs, longest[0]), flush=True)
    eq(d.stop(), 0, "ppfwd's exit status after SIGTERM")
    eq(d.events("udp_dropped"), [], "ppfwd's udp_dropped lines")


@scenario
def gro_trial_ends_v4():
    gro_trial("127.0.0.1")


@scenario
def gro_trial_ends_v6():
    gro_trial("::1")


@scenario
def gro_replies_v4():
    gro_replies("127.0.0.1")


@scenario
def gro_replies_v6():
    gro_replies("::1")


def main():
    why = own_netns(ENV_HOST_NS, "not root (the scenario makes a network namespace and a "
                    "veth pair)")
    if why is None:
        why = lo_up()
        if why:
            print("FAIL: %s" % why)
            return 1
    NETNS["why"] = why
    return run()


if __name__ == "__main__":
    sys.exit(main())
