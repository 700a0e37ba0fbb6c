#!/usr/bin/python3
"""Interop over UDP with Debian's go-mmproxy, which receives the PROXY v2
header ppfwd puts in every datagram and sends the payload on to a backend
from the real client's address (a transparent socket):

    client (own netns, veth) -> ppfwd udp send-proxy=v2 -> go-mmproxy -p udp
        -> UDP echo backend on loopback, which must see the client's address

go-mmproxy binds its socket to the client's address and port, so the client
cannot live in the same network namespace (the bind would collide with the
client's own socket). The file therefore re-executes itself under
`unshare -n` (namespace "server": ppfwd, go-mmproxy, the backend), and each
scenario puts its clients in a second namespace joined by a veth pair, with
addresses from the documentation ranges (192.0.2.0/24, 2001:db8::/64).
The server namespace gets go-mmproxy's routing (its README): replies that
the backend sends from loopback to the client's address are routed back to
loopback, where go-mmproxy's transparent socket takes them.

Needs root, unshare(1), ip(8) and go-mmproxy; without them every scenario
prints SKIP with the reason. The host's network configuration is never
touched: the setup runs only after checking it is in a namespace of its own.
Run: /usr/bin/python3 tests/integration/test_mmproxy.py [SCENARIO...]"""

import os
import shutil
import socket
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (UdpRecorder, Fail, Ppfwd, Skip, check, eq, fmt_addr, on_cleanup, read_log,  # noqa: E402
                     run, scenario, spawn, stop, tail, tmpdir, wait_for)
from netns import (IP, bound_udp, lo_up, own_netns, sh, sockets_in_netns,  # noqa: E402
                   udp_port, veth_netns)

MMPROXY = shutil.which("go-mmproxy") or "/usr/bin/go-mmproxy"

# Set by the outer process to its own netns before re-executing under
# unshare -n; the inner one refuses to touch routing if it is still there.
ENV_HOST_NS = "PPFWD_MMPROXY_HOST_NETNS"
TABLE = "123"  # go-mmproxy's README uses table 123

# Per address family: None when the server namespace is ready, else why not.
READY = {4: "not set up", 6: "not set up"}

# family -> (server address, client addresses, prefix length, loopback)
NETS = {
    4: ("192.0.2.1", ["192.0.2.10", "192.0.2.11"], 24, "127.0.0.1"),
    6: ("2001:db8::1", ["2001:db8::10", "2001:db8::11"], 64, "::1"),
}
ROUNDS = 5  # datagrams per client


def setup_server_netns():
    """In the fresh namespace: loopback up, and go-mmproxy's policy routing
    per family (a family that cannot be set up skips its scenario)."""
    why = lo_up()
    if why:
        READY[4] = READY[6] = why
        return
    for fam, v, lo_net, any_net in ((4, "-4", "127.0.0.1/8", "0.0.0.0/0"),
                                    (6, "-6", "::1/128", "::/0")):
        why = None
        for argv in ([IP, v, "rule", "add", "from", lo_net, "iif", "lo", "table", TABLE],
                     [IP, v, "route", "add", "local", any_net, "dev", "lo", "table", TABLE]):
            ok, out = sh(argv)
            if not ok:
                why = "%s: %s" % (" ".join(argv), out)
                break
        READY[fam] = why


def mmproxy_interop(fam):
    if READY[fam]:
        raise Skip(READY[fam])
    server, clients, plen, lo = NETS[fam]
    # The clients' namespace, joined to this one by a veth pair.
    holder, _, _ = veth_netns(fam, ("mms", "mmc"), [server], clients, plen,
                              "the client namespace")

    backend = UdpRecorder(lo)
    mp = udp_port(lo)
    d = tmpdir()
    allowed = os.path.join(d, "allowed-subnets.txt")
    with open(allowed, "w") as f:
        f.write("127.0.0.1/32\n::1/128\n")  # only ppfwd, on loopback, may send headers
    lo_ep = "[%s]" % lo if fam == 6 else lo
    mm = spawn([MMPROXY, "-p", "udp", "-l", "%s:%d" % (lo_ep, mp),
                "-4", "127.0.0.1:%d" % backend.port, "-6", "[::1]:%d" % backend.port,
                "-allowed-subnets", allowed, "-close-after", "30", "-v", "2"],
               os.path.join(d, "go-mmproxy.log"))

    def mm_up():
        check(mm.poll() is None, "go-mmproxy exited with %s:\n%s" % (mm.returncode,
                                                                    tail(read_log(mm))))
        return bound_udp(lo, mp)
    wait_for(mm_up, 10, "go-mmproxy bound to UDP %s:%d" % (lo, mp))

    pp = udp_port(server)
    srv_ep = "[%s]" % server if fam == 6 else server
    route = "udp://%s:%d/%s:%d?send-proxy=v2" % (srv_ep, pp, lo_ep, mp)
    ppfwd = Ppfwd([route]).start([])

    def pp_up():
        check(ppfwd.alive(), "ppfwd exited with %s:\n%s" % (ppfwd.p.returncode,
                                                            tail(ppfwd.log_text())))
        return bound_udp(server, pp)
    wait_for(pp_up, 10, "ppfwd bound to UDP %s:%d" % (server, pp))
    # Each worker binds its own SO_REUSEPORT socket, and route_start comes
    # once all have: a datagram sent earlier may open its session on one
    # worker, and the next ones hash to another (a second session).
    ppfwd.wait_event("route_start")

    socks = sockets_in_netns(holder.pid, clients, "client sockets in the client namespace")
    for s in socks:
        on_cleanup(s.close)
    me = [s.getsockname()[:2] for s in socks]
    for s in socks:
        s.settimeout(0.5)

    def exchange(i, s, msg):
        """Sends msg and waits for its echo; a bounded retry covers the
        first datagrams while the veth link comes up."""
        want = b"echo:" + msg
        end = time.monotonic() + (5.0 if i == 0 else 2.0)
        while time.monotonic() < end:
            s.sendto(msg, (server, pp))
            t = time.monotonic() + 0.5
            while time.monotonic() < t:
                try:
                    got, src = s.recvfrom(65535)
                except socket.timeout:
                    break
                eq(src[:2], (server, pp), "source of the reply")
                if got == want:
                    return
                check(got.startswith(b"echo:"), "unexpected reply %r" % got[:80])
        raise Fail("no echo of %r through ppfwd and go-mmproxy; go-mmproxy log:\n%s\n"
                   "ppfwd log:\n%s" % (msg, tail(read_log(mm)), tail(ppfwd.log_text())))

    for i in range(ROUNDS):
        for k, s in enumerate(socks):
            exchange(i, s, b"client%d round%d" % (k, i))

    for k, addr in enumerate(me):
        for i in range(ROUNDS):
            srcs = backend.sources_of(b"client%d round%d" % (k, i))
            check(srcs, "the backend never got client%d round%d" % (k, i))
            for a in srcs:
                eq(a, addr, "source address the backend saw for client%d round%d" % (k, i))
    with backend.lock:
        strangers = sorted({a for _, a in backend.seen if a not in me})
    eq(strangers, [], "sources the backend saw other than the clients")

    opens = ppfwd.wait_event("udp_session_open", count=len(me))
    eq(sorted(e.get("client") for e in opens), sorted(fmt_addr(a) for a in me),
       "clients of ppfwd's UDP sessions")
    log = read_log(mm)
    check("failed" not in log and "error" not in log.lower(),
          "go-mmproxy logged an error:\n%s" % tail(log))
    stop(mm)


@scenario
def udp4_client_address_through_go_mmproxy():
    """Two clients at 192.0.2.10 and .11, five datagrams each: go-mmproxy,
    fed by ppfwd's v2 headers, sends each from the client's own address and
    port to the backend on 127.0.0.1, and every echo returns through ppfwd."""
    mmproxy_interop(4)


@scenario
def udp6_client_address_through_go_mmproxy():
    """The same over IPv6 (2001:db8::10 and ::11 to a backend on ::1)."""
    mmproxy_interop(6)


def main():
    why = own_netns(ENV_HOST_NS, "not root (go-mmproxy needs CAP_NET_ADMIN for IP_TRANSPARENT, "
                    "and the test makes network namespaces)",
                    [("go-mmproxy (apt-get install go-mmproxy)", MMPROXY)])
    if why is not None:
        for fam in READY:
            READY[fam] = why
    else:
        setup_server_netns()
    return run()


if __name__ == "__main__":
    sys.exit(main())
