#!/usr/bin/python3
"""Routes from container labels (--docker) against the real peer: Podman's
Docker-compatible service on a socket of the test's own, with a storage of
its own (vfs, --root/--runroot in a temp dir) and a one-file image imported
from a tarball. Containers cannot run here, but can be created and removed,
which is enough for routes with explicit upstreams (the upstream host
`container` of a running container is tested on recorded answers in
tests/unit/test_docker_routes.c).

Scenarios: a labelled container's route starts within a second of `podman
create` and stops after `podman rm`, while a file route and its open
connection are untouched and SIGHUP keeps the containers' routes; containers
that existed before ppfwd started are picked up (no route needed at start);
bad labels among good ones are refused, each with one log line; the API
socket going away and coming back; `ppfwd check --docker`; and, from a fake
API of the test's own, answers Podman would never give: a list over 8 MiB,
JSON of another shape, truncated JSON, garbage and a 70 KiB event on the
stream.
Run: /usr/bin/python3 tests/integration/test_docker.py [SCENARIO...]"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PPFWD, V4, EchoServer, Fail, Ppfwd, Skip, check, eq,  # noqa: E402
                     free_port, listening, on_cleanup, recv_all, run, scenario, spawn, stop,
                     tail, tmpdir, wait_for)

IMAGE = "localhost/ppfwd-test:1"


class Podman:
    """A podman with storage, run dir and events of its own, and its API
    service on a unix socket in the same temp dir."""

    def __init__(self):
        if shutil.which("podman") is None:
            raise Skip("podman is not installed (scripts/deps.sh test installs it)")
        self.dir = tmpdir()
        self.sock = os.path.join(self.dir, "api.sock")
        self.base = ["podman", "--root", os.path.join(self.dir, "root"),
                     "--runroot", os.path.join(self.dir, "run"),
                     "--tmpdir", os.path.join(self.dir, "tmp"),
                     "--storage-driver", "vfs", "--cgroup-manager", "cgroupfs",
                     "--events-backend", "file"]
        self.service = None
        self._image()

    def cmd(self, *args, check_rc=True):
        r = subprocess.run(self.base + list(args), stdin=subprocess.DEVNULL,
                           capture_output=True, text=True, timeout=60)
        if check_rc and r.returncode != 0:
            raise Fail("podman %s: exit %d: %s" % (" ".join(args), r.returncode, r.stderr))
        return r

    def _image(self):
        """A one-file image, made here: nothing is pulled."""
        root = os.path.join(self.dir, "img")
        os.makedirs(root)
        with open(os.path.join(root, "hello"), "w") as f:
            f.write("hello\n")
        tar = os.path.join(self.dir, "img.tar")
        with tarfile.open(tar, "w") as t:
            t.add(os.path.join(root, "hello"), arcname="hello")
        r = self.cmd("import", tar, IMAGE, check_rc=False)
        if r.returncode != 0:
            raise Skip("podman cannot import an image here (as uid %d): %s"
                       % (os.getuid(), r.stderr.strip()[-300:]))

    def start(self):
        self.service = spawn(self.base + ["system", "service", "--time=0", "unix://" + self.sock],
                             os.path.join(self.dir, "service.log"))

        def up():
            if self.service.poll() is not None:
                raise Skip("podman system service exited %s: %s"
                           % (self.service.returncode, tail(open(self.service.log_path).read())))
            return os.path.exists(self.sock)

        wait_for(up, 15, "podman's API socket")
        return self

    def kill(self):
        stop(self.service, signal.SIGTERM, wait=10)
        if os.path.exists(self.sock):
            os.unlink(self.sock)

    @property
    def url(self):
        return "unix://" + self.sock

    def create(self, name, labels):
        args = ["create", "--name", name]
        for k, v in labels.items():
            args += ["--label", "%s=%s" % (k, v)]
        self.cmd(*(args + [IMAGE, "/hello"]))

    def rm(self, name):
        self.cmd("rm", name)


def route(port, upstream, query=""):
    return "tcp://127.0.0.1:%d/127.0.0.1:%d%s" % (port, upstream, query)


def echo_through(port, payload=b"ping"):
    s = socket.create_connection((V4, port), timeout=5)
    s.sendall(payload)
    s.shutdown(socket.SHUT_WR)
    got = recv_all(s)
    s.close()
    return got


def write_yaml(path, sock, routes):
    lines = ["docker: " + sock, "routes:"] if routes else ["docker: " + sock]
    for name, (lp, up) in routes.items():
        lines += ["  %s:" % name, "    listen: tcp://127.0.0.1:%d" % lp,
                  "    upstream: 127.0.0.1:%d" % up]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")


def start_ppfwd(extra, ports=()):
    d = Ppfwd([], workers=2, extra=extra)
    d.start(list(ports))
    return d


def refusals(d):
    return d.events("docker_route_refused")


@scenario
def container_route_comes_and_goes():
    pm = Podman().start()
    echo = EchoServer()
    pf, pd = free_port(), free_port()
    cfg = os.path.join(tmpdir(), "ppfwd.yaml")
    write_yaml(cfg, pm.url, {"file": (pf, echo.port)})
    d = start_ppfwd(["-c", cfg], [pf])
    d.wait_event("docker_connected", timeout=10)
    held = socket.create_connection((V4, pf), timeout=5)
    held.sendall(b"before")
    eq(held.recv(6), b"before", "the file route's connection")

    pm.create("web", {"ppfwd.route.app": route(pd, echo.port)})
    t0 = time.monotonic()
    wait_for(lambda: listening(pd), 1.0, "the container's route within 1 s of podman create")
    started = time.monotonic() - t0
    eq(echo_through(pd), b"ping", "data through the container's route")
    ev = d.wait_event("route_start", lambda e: e.get("route") == "web.app")[0]
    eq(ev.get("listen"), "tcp://127.0.0.1:%d" % pd, "route_start listen")
    d.wait_event("reload", lambda e: e.get("trigger") == "docker" and e.get("added") == 1)

    # SIGHUP reads the file again; the containers' routes stay.
    d.p.send_signal(signal.SIGHUP)
    d.wait_event("reload", lambda e: e.get("trigger") == "SIGHUP")
    check(listening(pd), "the container's route survives a SIGHUP reload")
    eq(d.events("reload")[-1].get("routes"), 2, "routes after SIGHUP (file + container)")

    pm.rm("web")
    wait_for(lambda: not listening(pd), 2.0, "the route gone after podman rm")
    d.wait_event("route_stop", lambda e: e.get("route") == "web.app")
    # The file route kept its listener and its connection all along.
    held.sendall(b"after")
    eq(held.recv(5), b"after", "the file route's connection after the changes")
    held.close()
    eq(echo_through(pf), b"ping", "a new connection through the file route")
    eq([e for e in d.events("route_stop") if e.get("route") == "file"], [],
       "the file route never stopped")
    check(started < 1.0, "route started %.3fs after create" % started)


@scenario
def existing_containers_picked_up():
    pm = Podman()
    echo = EchoServer()
    pa, pb, pc = free_port(), free_port(), free_port()
    pm.create("alpha", {"ppfwd.route.one": route(pa, echo.port),
                        "ppfwd.route.two": "udp://127.0.0.1:%d/127.0.0.1:%d" % (pb, echo.port)})
    pm.create("beta", {"ppfwd.route.ssh": route(pc, echo.port, "?send-proxy=v2&idle-timeout=5m"),
                       "com.example.other": "not ours"})
    pm.create("plain", {})
    pm.start()
    # No route at all at start: every one comes from the containers.
    d = start_ppfwd(["--docker=" + pm.url], [pa, pc])
    ev = d.wait_event("docker_connected", timeout=10)[0]
    eq(ev.get("containers"), 3, "containers listed")
    eq(ev.get("routes"), 3, "routes from labels")
    names = sorted(e["route"] for e in d.events("route_start"))
    eq(names, ["alpha.one", "alpha.two", "beta.ssh"], "routes started")
    eq(echo_through(pa), b"ping", "data through alpha.one")
    eq(refusals(d), [], "no label refused")


@scenario
def bad_labels_among_good_ones():
    pm = Podman().start()
    echo = EchoServer()
    pf, p1, p2, p3, p4, pout = (free_port() for _ in range(6))
    outsider = socket.socket()  # a port held outside ppfwd
    outsider.bind((V4, pout))
    outsider.listen(1)
    d = start_ppfwd(["--docker=" + pm.url, route(pf, echo.port)], [pf])
    d.wait_event("docker_connected", timeout=10)
    pm.create("mixed", {"ppfwd.route.good": route(p1, echo.port),
                        "ppfwd.route.badurl": "tcp://127.0.0.1:%d" % p2,
                        "ppfwd.route.badkey": route(p3, echo.port, "?colour=blue"),
                        "ppfwd.route.onfile": route(pf, echo.port),
                        "ppfwd.route.outside": route(pout, echo.port),
                        "ppfwd.nonsense": "x"})
    pm.create("second", {"ppfwd.route.good": route(p4, echo.port),
                         "ppfwd.route.dup": route(p1, echo.port)})
    wait_for(lambda: listening(p1) and listening(p4), 2.0, "the good routes")
    eq(echo_through(p1), b"ping", "data through mixed.good")
    d.wait_event("docker_route_refused", count=6)
    time.sleep(0.3)
    got = {(e["container"], e["label"]): e["error"] for e in refusals(d)}
    eq(len(refusals(d)), 6, "one line per refused label: %r" % got)
    want = {("mixed", "ppfwd.route.badurl"): "expected PROTO://",
            ("mixed", "ppfwd.route.badkey"): "key colour: unknown key",
            ("mixed", "ppfwd.route.onfile"): "held by route tcp://127.0.0.1:%d" % pf,
            ("mixed", "ppfwd.route.outside"): "Address already in use",
            ("mixed", "ppfwd.nonsense"): "unknown label",
            ("second", "ppfwd.route.dup"): "held by route mixed.good"}
    for k, needle in want.items():
        check(k in got and needle in got[k], "refusal of %s: want %r, got %r" % (k, needle,
                                                                              got.get(k)))
    check(not listening(p2) and not listening(p3), "refused routes do not listen")
    # Another change lists again: the same problems are not logged again.
    pm.create("unrelated", {"ppfwd.route.x": route(free_port(), echo.port)})
    d.wait_event("route_start", lambda e: e.get("route") == "unrelated.x")
    time.sleep(0.3)
    eq(len(refusals(d)), 6, "refusals logged once, not at every change")
    outsider.close()


@scenario
def api_socket_goes_and_comes_back():
    pm = Podman()
    echo = EchoServer()
    pa, pb, pc = free_port(), free_port(), free_port()
    pm.create("a", {"ppfwd.route.r": route(pa, echo.port)})
    pm.create("b", {"ppfwd.route.r": route(pb, echo.port)})
    pm.start()
    d = start_ppfwd(["--docker=" + pm.url], [pa, pb])
    d.wait_event("docker_connected", timeout=10)

    pm.kill()
    err = d.wait_event("docker_api_error", timeout=5)[0]
    eq(err.get("level"), "warn", "the first failure is a warning")
    eq(err.get("socket"), pm.url, "the failure names the socket")
    # The routes stay, and keep serving.
    eq(echo_through(pa), b"ping", "route a while the API is away")
    check(listening(pb), "route b while the API is away")
    # Retries back off: 0.5 s, 1 s, 2 s, ... (no busy loop).
    time.sleep(3.2)
    n = len(d.events("docker_api_error"))
    check(2 <= n <= 5, "%d attempts in 3.2 s with backoff" % n)
    eq(len([e for e in d.events("docker_api_error") if e.get("level") == "warn"]), 1,
       "one warning, the retries at debug level")
    # Changes made meanwhile are seen once the API is back.
    pm.rm("b")
    pm.create("c", {"ppfwd.route.r": route(pc, echo.port)})
    pm.start()
    wait_for(lambda: listening(pc) and not listening(pb), 10.0,
             "the changes made while the API was away")
    eq(len(d.events("docker_connected")), 2, "connected again")
    check(listening(pa), "route a kept")
    eq(echo_through(pc), b"ping", "data through the new route")


@scenario
def check_docker_prints_routes():
    pm = Podman()
    p1, p2 = free_port(), free_port()
    pm.start()
    r = subprocess.run([PPFWD, "check", "--docker=" + pm.url], capture_output=True, text=True,
                       timeout=30)
    eq(r.returncode, 0, "check with no container: %s" % r.stderr)
    check("0 containers, 0 routes" in r.stdout, "summary: %r" % r.stdout)
    pm.create("web", {"ppfwd.route.a": route(p1, 80), "ppfwd.route.b": route(p2, 81, "?x=1")})
    r = subprocess.run([PPFWD, "check", "--docker=" + pm.url], capture_output=True, text=True,
                       timeout=30)
    eq(r.returncode, 1, "check with a bad label")
    check("web.a tcp://127.0.0.1:%d -> 127.0.0.1:80" % p1 in r.stdout, "route line: %r" % r.stdout)
    check("container web: label ppfwd.route.b:" in r.stderr and "unknown key" in r.stderr,
          "problem line: %r" % r.stderr)
    check(not listening(p1), "check starts nothing")
    # Beside a file: its routes count for conflicts.
    cfg = os.path.join(tmpdir(), "c.yaml")
    write_yaml(cfg, pm.url, {"f": (p1, 80)})
    r = subprocess.run([PPFWD, "check", "-c", cfg, "--docker"], capture_output=True, text=True,
                       timeout=30)
    eq(r.returncode, 1, "check -c with a conflicting label")
    check("held by route f" in r.stderr, "conflict named: %r" % r.stderr)
    pm.kill()
    r = subprocess.run([PPFWD, "check", "--docker=" + pm.url], capture_output=True, text=True,
                       timeout=30)
    eq(r.returncode, 1, "check with the API away")
    check("cannot connect" in r.stderr and pm.sock in r.stderr, "message: %r" % r.stderr)


@scenario
def url_routes_compose_with_containers():
    """Routes given as URLs (no -c FILE): a container's change reloads with
    the command-line routes kept, trigger docker; SIGHUP composes the same
    (nothing to read again, the containers' routes stay)."""
    pm = Podman().start()
    echo = EchoServer()
    pf, pd = free_port(), free_port()
    d = start_ppfwd(["--docker=" + pm.url, route(pf, echo.port)], [pf])
    d.wait_event("docker_connected", timeout=10)
    pm.create("web", {"ppfwd.route.app": route(pd, echo.port)})
    ev = d.wait_event("reload", lambda e: e.get("trigger") == "docker")[0]
    eq((ev.get("routes"), ev.get("added"), ev.get("removed")), (2, 1, 0),
       "routes/added/removed of the docker reload")
    check("file" not in ev, "no file in the reload line: %r" % ev)
    eq(echo_through(pd), b"ping", "data through the container's route")
    d.p.send_signal(signal.SIGHUP)
    ev = d.wait_event("reload", lambda e: e.get("trigger") == "SIGHUP")[0]
    eq((ev.get("routes"), ev.get("added"), ev.get("removed")), (2, 0, 0), "SIGHUP's reload")
    eq(d.events("reload_error"), [], "no 'nothing to reload' with --docker")
    pm.rm("web")
    wait_for(lambda: not listening(pd), 2.0, "the container's route gone")
    eq(echo_through(pf), b"ping", "the command line's route")
    eq([e for e in d.events("route_stop") if e.get("route") != "web.app"], [],
       "only the container's route stopped")


@scenario
def retired_container_sets_are_freed():
    """A set of the containers' routes lives while a route of it does (here
    a connection draining through a removed container's route), and is
    freed when the last goes, while ppfwd runs (not kept until exit)."""
    pm = Podman().start()
    echo = EchoServer()
    p1, p2, pf = free_port(), free_port(), free_port()
    d = start_ppfwd(["--docker=" + pm.url, route(pf, echo.port)], [pf])  # logs at debug
    d.wait_event("docker_connected", timeout=10)
    pm.create("one", {"ppfwd.route.r": route(p1, echo.port)})
    wait_for(lambda: listening(p1), 2.0, "route one.r")
    held = socket.create_connection((V4, p1), timeout=5)
    held.sendall(b"x")
    eq(held.recv(1), b"x", "a connection through one.r")
    pm.rm("one")
    d.wait_event("route_stop", lambda e: e.get("route") == "one.r")
    pm.create("two", {"ppfwd.route.r": route(p2, echo.port)})
    d.wait_event("route_start", lambda e: e.get("route") == "two.r")
    # one.r drains: its set (one route) and the empty set after `rm` (no
    # route ever used it) -- only the empty one is gone.
    d.wait_event("docker_set_freed", lambda e: e.get("routes") == 0)
    time.sleep(0.3)
    eq([e for e in d.events("docker_set_freed") if e.get("routes") == 1], [],
       "the set of a route with an open connection is kept")
    held.sendall(b"y")
    eq(held.recv(1), b"y", "the draining connection still relays")
    held.close()
    d.wait_event("docker_set_freed", lambda e: e.get("routes") == 1, timeout=5)
    for i in range(20):  # churn: every retired set goes
        name = "c%d" % i
        pm.create(name, {"ppfwd.route.r": route(free_port(), echo.port)})
        d.wait_event("route_start", lambda e, n=name: e.get("route") == n + ".r")
        pm.rm(name)
        d.wait_event("route_stop", lambda e, n=name: e.get("route") == n + ".r")
    # Freed: one's, the empty one, and per round the set with cN.r (once
    # cN.r stopped) and the one after `rm` but the last (current). two.r
    # runs on from the set it started in, which stays.
    wait_for(lambda: len(d.events("docker_set_freed")) >= 2 + 20 + 19, 5.0,
             "every retired set freed")
    time.sleep(0.3)
    eq(len(d.events("docker_set_freed")), 41, "sets freed, none twice")
    check(listening(p2), "the current route two.r")


class FakeApi:
    """A Docker Engine API that answers what the test says: the list body
    as given, and an event stream (chunked) that sends what push() queues.
    For answers Podman would never give: huge, malformed."""

    def __init__(self):
        self.sock = os.path.join(tmpdir(), "fake.sock")
        self.list_body = b"[]"
        self.pending = []
        self.lock = threading.Lock()
        self.closed = False
        self.srv = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.srv.bind(self.sock)
        self.srv.listen(16)
        self.t = threading.Thread(target=self._accept, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    @property
    def url(self):
        return "unix://" + self.sock

    def push(self, payload):
        with self.lock:
            self.pending.append(payload)

    def _accept(self):
        while not self.closed:
            try:
                c, _ = self.srv.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(c,), daemon=True).start()

    def _serve(self, c):
        try:
            req = b""
            while b"\r\n\r\n" not in req and len(req) < 65536:
                b = c.recv(4096)
                if not b:
                    return
                req += b
            path = req.split(b" ")[1].decode()
            if path.startswith("/v1.41/containers/json"):
                body = self.list_body
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(body))
                c.sendall(body)
            elif path.startswith("/v1.41/events"):
                c.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                          b"Transfer-Encoding: chunked\r\n\r\n")
                end = time.monotonic() + 60
                c.setblocking(False)
                while not self.closed and time.monotonic() < end:
                    try:
                        if c.recv(1) == b"":
                            return  # the client went: leave the events to the next
                    except BlockingIOError:
                        pass
                    with self.lock:
                        out, self.pending = self.pending, []
                    c.setblocking(True)
                    for p in out:
                        c.sendall(b"%x\r\n%s\r\n" % (len(p), p))
                    c.setblocking(False)
                    time.sleep(0.02)
            else:
                c.sendall(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
        except OSError:
            pass
        finally:
            c.close()

    def close(self):
        self.closed = True
        self.srv.close()


def api_errors(d, needle, request=None):
    return [e for e in d.events("docker_api_error") if needle in e.get("error", "") and
            (request is None or e.get("request") == request)]


@scenario
def huge_and_malformed_answers():

    fake = FakeApi()
    echo = EchoServer()
    pa, pf = free_port(), free_port()
    # A list over 8 MiB: refused before it is parsed, whatever it holds.
    fake.list_body = b"[" + b" " * (9 << 20) + b"]"
    d = start_ppfwd(["--docker=" + fake.url, route(pf, echo.port)], [pf])
    wait_for(lambda: api_errors(d, "answer too large", "GET /containers/json"), 10,
             "the huge list refused")
    # JSON of another shape, then bytes that are not JSON.
    fake.list_body = b'[{"Id": 5}]'
    wait_for(lambda: api_errors(d, "not of the documented shape"), 10, "the bad shape refused")
    fake.list_body = b'[{"Id": "x", "Names": ["/x"], "Labels": {"ppfwd.route.r": "'
    wait_for(lambda: api_errors(d, "not valid JSON"), 10, "the truncated list refused")
    check(d.alive(), "ppfwd alive after bad answers")
    # A good answer: the route comes.
    fake.list_body = ('[{"Id": "abc", "Names": ["/box"], "State": "created", "Labels": '
                      '{"ppfwd.route.r": "%s"}}]' % route(pa, echo.port)).encode()
    wait_for(lambda: listening(pa), 10, "the route once the answer is good")
    eq(echo_through(pa), b"ping", "data through box.r")
    # Bytes on the event stream that are not JSON, then an event over 64 KiB:
    # each ends the stream (logged), the route stays, the stream comes back.
    n = len(d.events("docker_connected"))
    fake.push(b'{"Type": ]\n')
    try:
        wait_for(lambda: api_errors(d, "not valid JSON", "GET /events"), 10, "the bad event")
    except Fail:
        raise Fail("no error for the bad event:\n" + tail(d.log_text(), 12))
    d.wait_event("docker_connected", count=n + 1, timeout=10)
    fake.push(b'{"Type": "container", "Action": "' + b"a" * (70 << 10) + b'"}\n')
    wait_for(lambda: api_errors(d, "answer too large", "GET /events"), 10, "the huge event")
    d.wait_event("docker_connected", count=n + 2, timeout=10)
    check(listening(pa), "the route stays through bad events")
    eq(echo_through(pa), b"ping", "data through box.r at the end")
    eq(echo_through(pf), b"ping", "the command line's route all along")


def compose_labels():
    """{container_name: {label: value}} of examples/docker-compose.yml's services
    (read line by line: the standard library has no YAML parser)."""
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.abspath(__file__)))), "examples", "docker-compose.yml")
    out, name = {}, None
    with open(path) as f:
        for line in f:
            m = re.match(r"^    container_name: (\S+)$", line)
            if m:
                name = m.group(1)
            m = re.match(r'^      (ppfwd\.[^:]+): "(.*)"$', line)
            if m:
                check(name is not None, "a label before container_name: %r" % line)
                out.setdefault(name, {})[m.group(1)] = m.group(2)
    return out


@scenario
def compose_example_labels_are_valid():
    labels = compose_labels()
    eq(sorted(labels), ["dns", "git", "mail"], "services with labels")
    pm = Podman().start()
    for name, lab in labels.items():
        pm.create(name, lab)
    r = subprocess.run([PPFWD, "check", "--docker=" + pm.url], capture_output=True, text=True,
                       timeout=30)
    eq(r.returncode, 0, "check of the example's labels: %s" % r.stderr)
    # The containers do not run here: only the fixed-upstream route exists.
    check(r.stdout.startswith("mail.smtp tcp://:2525 -> 127.0.0.1:25 "), r.stdout)
    check("3 containers, 1 route, 0 refused" in r.stdout, r.stdout)


if __name__ == "__main__":
    sys.exit(run())
