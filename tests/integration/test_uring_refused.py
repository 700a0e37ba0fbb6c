#!/usr/bin/python3
"""ppfwd when the kernel refuses io_uring: its workers' loops fall back to
epoll (src/loop/loop.c loop_open_backend) and it relays as before.

ppfwd runs under build/no_uring (tests/tools/no_uring.c), whose seccomp
filter makes io_uring_setup, io_uring_enter and io_uring_register fail
with EPERM for ppfwd and its threads only, as kernel.io_uring_disabled or a
container's seccomp profile would (the sysctl is global: other tests run
at the same time). PPFWD_LOOP is removed from ppfwd's environment, so the
loop has to find out by itself. With one TCP route (send-proxy=v2) and one
UDP route, two workers, and --log-level debug:
- every worker's `worker_loop` line names epoll;
- a TCP client's bytes reach the backend behind a PROXY v2 header naming
  the client's own address and the address it connected to, and the
  backend's answer (the address it was told, then the bytes echoed) comes
  back to the client, both ways ending in a clean half-close;
- a UDP datagram reaches the echo backend and its answer the client.
The same once without the tool, where io_uring is expected; that one SKIPs
when this machine refuses io_uring_setup to everyone. `tool_refuses` checks
the tool itself: io_uring_setup under it fails with EPERM.

The tool is $PPFWD_NO_URING, default no_uring in the build directory of
$PPFWD (build/no_uring for build/asan/ppfwd; `make` builds it).
Run: /usr/bin/python3 tests/integration/test_uring_refused.py [SCENARIO...]"""

import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import harness  # noqa: E402
from harness import (PPFWD, V4, Fail, Ppfwd, Server, Skip, UdpRecorder, check, connect,  # noqa: E402
                     eq, fmt_addr, free_port, hostport, parse_header, rand_bytes, recv_all,
                     run, scenario, tail, wait_for)
from netns import bound_udp, udp_port  # noqa: E402


def _tool_path():
    d = os.path.dirname(PPFWD)
    if os.path.basename(d) == "asan":
        d = os.path.dirname(d)
    return os.path.abspath(os.environ.get("PPFWD_NO_URING", os.path.join(d, "no_uring")))


NO_URING = _tool_path()
WORKERS = 2
PAYLOAD = rand_bytes(256 * 1024, 1272)

# The loop must decide on its own: PPFWD_LOOP=epoll would make it epoll
# whatever the kernel allows (ppfwd inherits this process's environment).
os.environ.pop("PPFWD_LOOP", None)

# Prints the errno of io_uring_setup(1, params): 0 when the ring was set
# up. 425 is its number on every architecture since Linux 5.1.
PROBE = """
import ctypes, os
libc = ctypes.CDLL(None, use_errno=True)
params = ctypes.create_string_buffer(120)
rc = libc.syscall(425, 1, params)
print(0 if rc >= 0 else ctypes.get_errno())
"""


def probe(wrap):
    """errno of io_uring_setup in a child python (under wrap), 0 if it
    worked. Skip when the tool cannot install its filter here."""
    if wrap and not os.access(NO_URING, os.X_OK):
        raise Fail("%s is not an executable (make builds it; or set PPFWD_NO_URING)" % NO_URING)
    try:
        r = subprocess.run(list(wrap) + [sys.executable, "-c", PROBE], capture_output=True,
                           timeout=20)
    except subprocess.TimeoutExpired:
        raise Fail("the io_uring_setup probe did not finish in 20 s")
    if wrap and r.returncode == 3:
        raise Skip("no_uring cannot install its seccomp filter here: %s"
                   % r.stderr.decode(errors="replace").strip())
    eq(r.returncode, 0, "exit status of the io_uring_setup probe (stderr %r)" % r.stderr[-300:])
    return int(r.stdout.split()[-1])


def proxied_echo(c, srv):
    """Reads to EOF: a PROXY header then data. Records (header, data), and
    answers the source address the header names, a newline, the data."""
    data = b""
    while len(data) <= 2 * len(PAYLOAD):
        d = c.recv(65536)
        if not d:
            break
        data += d
    h, n = parse_header(data)
    srv.add((h, data[n:]))
    c.sendall(fmt_addr(h["src"]).encode() + b"\n" + data[n:])
    c.shutdown(socket.SHUT_WR)


def start(wrap):
    """ppfwd (under wrap) with a TCP route (send-proxy=v2) to a backend
    running proxied_echo and a UDP route to an echo backend. Returns
    (ppfwd, tcp port, udp port, tcp backend, udp backend)."""
    srv = Server(proxied_echo)
    udp = UdpRecorder(V4)
    for _ in range(5):
        tport, uport = free_port(V4), udp_port(V4)
        d = Ppfwd(["tcp://%s/%s?send-proxy=v2" % (hostport(V4, tport), hostport(V4, srv.port)),
                   "udp://%s/%s" % (hostport(V4, uport), hostport(V4, udp.port))],
                  workers=WORKERS, wrap=wrap)
        try:
            d.start([tport])
            wait_for(lambda: bound_udp(V4, uport) or not d.alive(), 10,
                     "ppfwd bound to UDP %d" % uport)
            check(d.alive(), "ppfwd exited with %s:\n%s" % (d.p.poll(), tail(d.log_text())))
            d.wait_event("route_start", count=2, timeout=10)
            return d, tport, uport, srv, udp
        except Fail:
            # A port taken meanwhile (the race of free_port): again, with
            # other ports, as harness.start_ppfwd does.
            d.stop()
            if "in use" not in d.log_text().lower():
                raise
            if d in harness._daemons:
                harness._daemons.remove(d)
    raise Fail("ppfwd did not start (ports taken 5 times)")


def relay_checks(d, tport, uport, srv, udp):
    # TCP: PROXY v2 upstream naming the client, bytes both ways.
    s = connect(V4, tport)
    me = s.getsockname()[:2]
    s.sendall(PAYLOAD)
    s.shutdown(socket.SHUT_WR)
    got = recv_all(s, timeout=10, limit=2 * len(PAYLOAD))
    s.close()
    wait_for(lambda: srv.results, 5, "the backend's record of the connection")
    eq(srv.errors, [], "TCP backend errors")
    h, data = srv.results.pop()
    eq((h["version"], h["command"], h["family"]), (2, "proxy", "tcp4"), "header upstream")
    eq(h["src"], me, "client address in the PROXY header")
    eq(h["dst"], (V4, tport), "destination address in the PROXY header")
    check(data == PAYLOAD, "bytes upstream: %d of %d, intact: %s"
          % (len(data), len(PAYLOAD), data == PAYLOAD[:len(data)]))
    want = fmt_addr(me).encode() + b"\n" + PAYLOAD
    check(got == want, "bytes back to the client: %d of %d, starting %r (want %r)"
          % (len(got), len(want), got[:40], want[:40]))
    d.wait_event("conn_close", lambda e: e.get("client") == fmt_addr(me))

    # UDP: a datagram to the echo backend and its answer back.
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        c.bind((V4, 0))
        c.settimeout(5)
        c.sendto(b"ping over udp", (V4, uport))
        try:
            ans, src = c.recvfrom(65535)
        except socket.timeout:
            raise Fail("no UDP answer within 5 s (backend saw %r)" % udp.seen)
        eq((ans, src[:2]), (b"echo:ping over udp", (V4, uport)), "UDP answer and its source")
        eq(len(udp.sources_of(b"ping over udp")), 1, "datagrams the UDP backend got")
    finally:
        c.close()


def loop_check(wrap, want):
    d, tport, uport, srv, udp = start(wrap)
    evs = d.wait_event("worker_loop", count=WORKERS)
    eq(sorted(e.get("worker") for e in evs), list(range(WORKERS)), "workers logging worker_loop")
    eq([e.get("backend") for e in evs], [want] * WORKERS, "worker_loop backends")
    relay_checks(d, tport, uport, srv, udp)
    eq(d.stop(), 0, "ppfwd's exit status after SIGTERM")
    check(not any(m in d.log_text() for m in ("Sanitizer", "runtime error:")),
          "sanitizer report:\n" + tail(d.log_text(), 40))
    print("  worker_loop: %s" % ", ".join("worker %s %s" % (e.get("worker"), e.get("backend"))
                                          for e in evs), flush=True)


@scenario
def tool_refuses():
    """io_uring_setup under no_uring fails with EPERM."""
    eq(probe([NO_URING]), 1, "errno of io_uring_setup under no_uring (1 is EPERM)")


@scenario
def epoll_when_refused():
    """Under no_uring every worker's loop is epoll, and TCP (PROXY v2
    upstream) and UDP relay both ways."""
    eq(probe([NO_URING]), 1, "errno of io_uring_setup under no_uring (1 is EPERM)")
    loop_check([NO_URING], "epoll")


@scenario
def uring_when_allowed():
    """Without the tool, where this machine allows io_uring, every worker's
    loop is io_uring, with the same relay checks."""
    with open(PPFWD, "rb") as f:
        if b"liburing.so" not in f.read():
            raise Skip("%s is built without liburing: epoll is its only loop" % PPFWD)
    err = probe([])
    if err:
        raise Skip("io_uring_setup is refused on this machine: %s" % os.strerror(err))
    loop_check([], "io_uring")


if __name__ == "__main__":
    sys.exit(run())
