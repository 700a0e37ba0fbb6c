"""systemd notify (Type=notify in dist/ppfwd.service): the test plays
systemd's side of $NOTIFY_SOCKET, a datagram socket with SO_PASSCRED, and
checks what ppfwd sends and when:

- READY=1 once every route listens (the ports answer when it arrives), with
  STATUS= naming the routes, from ppfwd's own PID (NotifyAccess=main);
- STATUS= again when the open connections change;
- around a SIGHUP reload: RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC,
  taken between the signal and the reply), then READY=1 once the new routes
  listen; a refused config also ends in READY=1, with the old routes;
- STOPPING=1 at SIGTERM, while connections drain; then exit 0;
- an @abstract socket name works as a path does;
- systemd-analyze verify passes on the unit.
"""

import os
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PPFWD, ROOT, V4, EchoServer, Fail, Ppfwd, Skip, check, connect,  # noqa: E402
                     eq, free_port, listening, on_cleanup, run, scenario, spawn, tail, tmpdir)


class Systemd:
    """The receiving end of $NOTIFY_SOCKET."""

    def __init__(self, name=None):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if name is None:
            name = os.path.join(tmpdir(), "notify.sock")
        addr = "\0" + name[1:] if name.startswith("@") else name
        self.sock.bind(addr)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.name = name
        on_cleanup(self.sock.close)

    def recv(self, timeout=5.0):
        """(fields dict, sender pid) of the next datagram, or Fail."""
        self.sock.settimeout(timeout)
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            raise Fail("no notify datagram within %.1fs" % timeout)
        pid = None
        for level, typ, cdata in anc:
            if level == socket.SOL_SOCKET and typ == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", cdata[:12])[0]
        text = data.decode()
        check(text.endswith("\n"), "datagram not newline-terminated: %r" % text)
        fields = dict(line.split("=", 1) for line in text.splitlines())
        return fields, pid

    def expect(self, key, daemon, timeout=5.0, skip_status=True):
        """The next datagram carrying key (plain STATUS= updates skipped)."""
        end = time.monotonic() + timeout
        while True:
            fields, pid = self.recv(max(0.1, end - time.monotonic()))
            eq(pid, daemon.pid, "sender PID")
            if key in fields:
                return fields
            check(skip_status and set(fields) == {"STATUS"},
                  "expected %s, got %r" % (key, fields))


def config(path, routes):
    with open(path, "w") as f:
        f.write("routes:\n")
        for name, (port, up) in routes.items():
            f.write("  %s:\n    listen: tcp://%s:%d\n    upstream: %s:%d\n" % (name, V4, port, V4,
                                                                                   up))


def start(notify_name, cfg):
    """ppfwd -c cfg with $NOTIFY_SOCKET set (checked to exit 0 on SIGTERM
    at the end of the scenario, as every Ppfwd is)."""
    d = Ppfwd([], workers=2, extra=["-c", cfg])
    argv = [PPFWD, "--log-format", "json", "-l", "debug", "-w", "2", "-c", cfg]
    d.p = spawn(argv, d.log_path, env=dict(os.environ, NOTIFY_SOCKET=notify_name))
    return d


def echo_once(port):
    """A connection through ppfwd to the echo upstream, left open."""
    c = connect(V4, port)
    c.sendall(b"ping")
    eq(recv_exact(c, 4), b"ping", "echo through the route")
    return c


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        b = c.recv(n - len(buf))
        if not b:
            break
        buf += b
    return buf


@scenario
def notify_ready_reload_stop():
    sd = Systemd()
    wport = EchoServer().port
    p1, p2 = free_port(), free_port()
    cfg = os.path.join(tmpdir(), "ppfwd.yaml")
    config(cfg, {"one": (p1, wport)})
    d = start(sd.name, cfg)
    f = sd.expect("READY", d)
    eq(f["READY"], "1", "READY")
    check(listening(p1), "READY=1 came before the route listened")
    eq(f.get("STATUS"), "1 route, 0 open connections, 0 UDP sessions", "STATUS at start")

    # An open connection shows in the next STATUS= (sent every 2 s on change).
    hold = echo_once(p1)
    f, pid = sd.recv(5.0)
    eq(pid, d.pid, "STATUS sender")
    eq(f, {"STATUS": "1 route, 1 open connection, 0 UDP sessions"}, "STATUS update")

    # Reload adding a route: RELOADING=1 + MONOTONIC_USEC, then READY=1.
    config(cfg, {"one": (p1, wport), "two": (p2, wport)})
    before = int(time.monotonic() * 1e6)
    os.kill(d.pid, signal.SIGHUP)
    f = sd.expect("RELOADING", d)
    after = int(time.monotonic() * 1e6)
    eq(f["RELOADING"], "1", "RELOADING")
    usec = int(f["MONOTONIC_USEC"])
    check(before <= usec <= after, "MONOTONIC_USEC %d not within [%d, %d]" % (usec, before, after))
    f = sd.expect("READY", d)
    check(listening(p2), "READY=1 after the reload came before the new route listened")
    check(f["STATUS"].startswith("2 routes, "), "STATUS after reload: %r" % f)
    d.wait_event("reload")

    # A refused config: RELOADING=1, then READY=1 with the old routes.
    with open(cfg, "w") as fh:
        fh.write("routes: {bad: {listen: nowhere}}\n")
    os.kill(d.pid, signal.SIGHUP)
    sd.expect("RELOADING", d)
    f = sd.expect("READY", d)
    check(f["STATUS"].startswith("2 routes, "), "STATUS after a refused reload: %r" % f)
    d.wait_event("reload_failed")

    # SIGTERM: STOPPING=1 while the held connection drains.
    os.kill(d.pid, signal.SIGTERM)
    f = sd.expect("STOPPING", d)
    eq(f["STOPPING"], "1", "STOPPING")
    check(f["STATUS"].startswith("draining: 2 routes, 1 open connection"), "STATUS: %r" % f)
    hold.close()
    rc = d.p.wait(12)
    eq(rc, 0, "exit after SIGTERM (log %s)" % tail(d.log_text()))


@scenario
def notify_abstract_socket():
    sd = Systemd("@ppfwd-it-notify-%d" % os.getpid())
    wport = EchoServer().port
    p1 = free_port()
    cfg = os.path.join(tmpdir(), "ppfwd.yaml")
    config(cfg, {"one": (p1, wport)})
    d = start(sd.name, cfg)
    f = sd.expect("READY", d)
    check(listening(p1), "READY=1 before the route listened")
    eq(f["STATUS"], "1 route, 0 open connections, 0 UDP sessions", "STATUS")


@scenario
def notify_unit_verifies():
    tool = shutil.which("systemd-analyze")
    if tool is None:
        raise Skip("systemd-analyze not installed (package systemd)")
    unit = os.path.join(tmpdir(), "ppfwd.service")
    with open(os.path.join(ROOT, "dist/ppfwd.service")) as f:
        text = f.read()
    check("Type=notify\n" in text, "dist/ppfwd.service is not Type=notify")
    # As installed, with ExecStart naming the binary under test.
    with open(unit, "w") as f:
        f.write(text.replace("/usr/local/bin/ppfwd", os.path.abspath(PPFWD)))
    r = subprocess.run([tool, "verify", "--man=no", unit], capture_output=True, text=True,
                       timeout=60)
    eq((r.returncode, r.stdout + r.stderr), (0, ""), "systemd-analyze verify")


if __name__ == "__main__":
    sys.exit(run())
