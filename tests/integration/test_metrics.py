#!/usr/bin/python3
"""--metrics serves Prometheus text at /metrics whose counters match the
traffic sent: connections, bytes both ways, PROXY header outcomes, upstream
errors and up/down, active connections; anything else is a 404. No client
can hold a scrape off: slow, idle and oversized requests are timed out,
capped and refused while scrapes answer within 1 s. /healthz says 200
while serving, 503 while draining.
Run: /usr/bin/python3 tests/integration/test_metrics.py [SCENARIO...]"""

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (V4, EchoServer, Fail, check, connect, eq, expect_closed,  # noqa: E402
                     free_port, on_cleanup, recv_all, run, scenario, start_ppfwd, v2, wait_for)


def scrape(port, path="/metrics", timeout=5):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path),
                                    timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def samples(text):
    """{'name{labels}': value} for every sample line."""
    out = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def value(s, name, route, **labels):
    lab = ",".join(['route="%s"' % route] + ['%s="%s"' % kv for kv in labels.items()])
    key = "%s{%s}" % (name, lab)
    if key not in s:
        raise Fail("no sample %s" % key)
    return s[key]


@scenario
def counters_match_traffic():
    echo = EchoServer()
    mport = free_port()
    dead = free_port()  # nothing listens there: connects are refused
    d, (plain, req, down) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port),
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required" % (ps[1], echo.port),
        "tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[2], dead)], 3,
        extra=["--metrics", "127.0.0.1:%d" % mport])
    r_plain = "tcp://127.0.0.1:%d/127.0.0.1:%d" % (plain, echo.port)
    r_req = "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required" % (req, echo.port)
    r_down = "tcp://127.0.0.1:%d/127.0.0.1:%d" % (down, dead)

    for i in range(3):  # 3 connections x 1000 bytes echoed
        s = connect(V4, plain)
        s.sendall(b"x" * 1000)
        s.shutdown(1)
        eq(len(recv_all(s)), 1000, "echoed bytes")
        s.close()
    s = connect(V4, req)  # a valid header, then 10 bytes
    s.sendall(v2(("192.0.2.1", 1234), ("192.0.2.2", 80)) + b"0123456789")
    s.shutdown(1)
    eq(len(recv_all(s)), 10, "echoed bytes after the header")
    s.close()
    s = connect(V4, req)  # garbage: refused
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    expect_closed(s)
    s = connect(V4, down)  # upstream refuses
    expect_closed(s)
    held = connect(V4, plain)  # stays open: active = 1
    held.sendall(b"y")
    held.settimeout(5.0)
    eq(held.recv(1), b"y", "held connection echo")

    def settled():
        code, text = scrape(mport)
        s = samples(text)
        return (code, text, s) if value(s, "ppfwd_connections_total", r_down) == 1 and \
            value(s, "ppfwd_connections_active", r_plain) == 1 else None
    code, text, s = wait_for(settled, 5.0, "metrics to settle")
    eq(code, 200, "status")
    eq(value(s, "ppfwd_connections_total", r_plain), 4, "plain connections")
    eq(value(s, "ppfwd_bytes_total", r_plain, direction="in"), 3001, "bytes in")
    eq(value(s, "ppfwd_bytes_total", r_plain, direction="out"), 3001, "bytes out")
    eq(value(s, "ppfwd_connections_total", r_req), 2, "required connections")
    eq(value(s, "ppfwd_proxy_headers_total", r_req, result="ok"), 1, "headers ok")
    eq(value(s, "ppfwd_proxy_headers_total", r_req, result="invalid"), 1, "headers invalid")
    eq(value(s, "ppfwd_proxy_headers_total", r_req, result="untrusted"), 0, "untrusted")
    eq(value(s, "ppfwd_bytes_total", r_req, direction="in"), 10, "bytes in after header")
    eq(value(s, "ppfwd_upstream_errors_total", r_down), 1, "upstream errors")
    eq(value(s, "ppfwd_upstream_up", r_down, upstream="127.0.0.1:%d" % dead), 0, "down")
    eq(value(s, "ppfwd_upstream_up", r_plain, upstream="127.0.0.1:%d" % echo.port), 1, "up")
    eq(value(s, "ppfwd_udp_sessions_active", r_plain), 0, "udp sessions")
    check("# TYPE ppfwd_bytes_total counter" in text, "TYPE line for ppfwd_bytes_total")
    eq(scrape(mport, "/other")[0], 404, "other paths")
    promtool = shutil.which("promtool")
    if promtool:
        p = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        check(p.returncode == 0, "promtool: %s" % p.stdout.decode() + p.stderr.decode())
    held.close()
    echo.close()


def with_metrics():
    """ppfwd with one route to an echo server and --metrics; returns
    (daemon, route port, metrics port, echo)."""
    echo = EchoServer()
    mport = free_port()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)],
                             1, extra=["--metrics", "127.0.0.1:%d" % mport])
    wait_for(lambda: d.events("metrics_listen"), 5, "metrics_listen")
    return d, port, mport, echo


@scenario
def metrics_on_every_address():
    """--metrics :PORT (as a route's tcp://:PORT, and Prometheus exporters'
    :9100): every address, IPv4 and IPv6 alike."""
    echo = EchoServer()
    mport = free_port()
    d, (port,) = start_ppfwd(lambda ps: ["tcp://127.0.0.1:%d/127.0.0.1:%d" % (ps[0], echo.port)],
                             1, extra=["--metrics", ":%d" % mport])
    ev = wait_for(lambda: d.events("metrics_listen"), 5, "metrics_listen")[0]
    eq(ev.get("listen"), "[::]:%d" % mport, "metrics_listen address")
    eq(scrape(mport, "/healthz")[0], 200, "healthz over IPv4")
    with urllib.request.urlopen("http://[::1]:%d/healthz" % mport, timeout=5) as r:
        eq(r.status, 200, "healthz over IPv6")
    echo.close()


def timed_scrape(mport, limit=1.0):
    t0 = time.monotonic()
    try:
        code, text = scrape(mport, timeout=limit)
    except OSError as e:
        raise Fail("scrape failed after %.2fs: %s" % (time.monotonic() - t0, e))
    dt = time.monotonic() - t0
    eq(code, 200, "scrape status")
    check("ppfwd_connections_total" in text, "scrape body")
    check(dt < limit, "scrape took %.2fs" % dt)
    return dt


def is_closed(s):
    """True when the server closed s (EOF or reset), False while it is open."""
    s.setblocking(False)  # a socket timeout would make recv wait first
    try:
        return s.recv(1, socket.MSG_DONTWAIT | socket.MSG_PEEK) == b""
    except BlockingIOError:
        return False
    except ConnectionResetError:
        return True


@scenario
def slow_and_idle_clients_never_delay_a_scrape():
    """A client sending a byte every 1.5 s and 200 idle connections: each
    of 5 scrapes still answers within 1 s (before: 5 of 5 failed)."""
    d, _, mport, echo = with_metrics()
    stop = threading.Event()
    on_cleanup(stop.set)

    def loris():
        s = socket.create_connection((V4, mport), timeout=5)
        try:
            for b in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 64:
                if stop.wait(1.5):
                    break
                s.send(bytes([b]))
        except OSError:
            pass  # closed by the server: what should happen
        finally:
            s.close()
    t = threading.Thread(target=loris, daemon=True)
    t.start()
    idle = []
    on_cleanup(lambda: [s.close() for s in idle])
    for _ in range(200):
        idle.append(socket.create_connection((V4, mport), timeout=5))
    times = [timed_scrape(mport) for _ in range(5)]
    stop.set()
    t.join(5)
    print("  scrape times with 200 idle clients and a slow one: %s s"
          % ", ".join("%.3f" % x for x in times))
    echo.close()


@scenario
def whole_request_deadline():
    """A client that keeps sending a byte every 0.5 s is closed 5 s after
    accept: the deadline is for the whole request, not per read."""
    d, _, mport, echo = with_metrics()
    s = socket.create_connection((V4, mport), timeout=5)
    t0 = time.monotonic()
    closed_at = None
    for b in b"GET /metrics HTTP/1.0\r\nX-Slow: " + b"a" * 40:
        try:
            s.send(bytes([b]))
        except OSError:
            closed_at = time.monotonic() - t0
            break
        if is_closed(s):
            closed_at = time.monotonic() - t0
            break
        time.sleep(0.5)
    s.close()
    check(closed_at is not None, "a slow client was never closed (%.1fs)" % (time.monotonic() - t0))
    check(4.5 <= closed_at <= 7.0, "slow client closed after %.1fs (want about 5)" % closed_at)
    echo.close()


@scenario
def connection_cap_closes_the_oldest_idle():
    """100 idle clients: the 36 oldest are closed, 64 stay; a scrape then
    still answers at once (and one more idle client gives way)."""
    d, _, mport, echo = with_metrics()
    socks = []
    on_cleanup(lambda: [s.close() for s in socks])
    for _ in range(100):
        socks.append(socket.create_connection((V4, mport), timeout=5))
    wait_for(lambda: sum(is_closed(s) for s in socks) >= 36, 5, "36 clients closed")
    time.sleep(0.2)
    closed = [is_closed(s) for s in socks]
    eq(sum(closed), 36, "clients closed at the cap of 64")
    eq(closed[:36], [True] * 36, "the oldest are the ones closed")
    timed_scrape(mport)
    wait_for(lambda: is_closed(socks[36]), 2, "the next oldest to give way to the scrape")
    eq(is_closed(socks[37]), False, "only one gave way")
    echo.close()


@scenario
def oversized_request_refused():
    """A request head over 4 KiB gets 431 and the connection closes; the
    endpoint serves the next scrape as usual. Other methods get 405, a NUL
    byte in the head 400 at once."""
    d, _, mport, echo = with_metrics()
    s = socket.create_connection((V4, mport), timeout=5)
    s.sendall(b"GET /metrics HTTP/1.0\r\n" + b"X-Big: " + b"a" * 8192 + b"\r\n\r\n")
    got = recv_all(s, timeout=5)
    s.close()
    check(got.startswith(b"HTTP/1.0 431 "), "oversized request answer: %r" % got[:80])
    s = socket.create_connection((V4, mport), timeout=5)
    s.sendall(b"POST /metrics HTTP/1.0\r\nContent-Length: 0\r\n\r\n")
    got = recv_all(s, timeout=5)
    s.close()
    check(got.startswith(b"HTTP/1.0 405 "), "POST answer: %r" % got[:80])
    # A NUL byte in the head: answered at once, not at the 5 s deadline.
    s = socket.create_connection((V4, mport), timeout=5)
    t0 = time.monotonic()
    s.sendall(b"GET /metrics HTTP/1.0\r\nX-A: b\0c\r\n\r\n")
    got = recv_all(s, timeout=5)
    s.close()
    check(got.startswith(b"HTTP/1.0 400 "), "NUL answer: %r" % got[:80])
    check(time.monotonic() - t0 < 2, "NUL answer took %.1f s" % (time.monotonic() - t0))
    timed_scrape(mport)
    echo.close()


def raw_request(mport, req):
    """Sends req on a new connection and returns (status line, {header:
    value} with lower-case names, body bytes up to the server's close)."""
    s = socket.create_connection((V4, mport), timeout=5)
    try:
        s.sendall(req)
        got = recv_all(s, timeout=5)
    finally:
        s.close()
    head, sep, body = got.partition(b"\r\n\r\n")
    check(sep, "no end of headers in %r" % got[:200])
    lines = head.decode("latin-1").split("\r\n")
    headers = {}
    for line in lines[1:]:
        name, _, val = line.partition(":")
        headers[name.strip().lower()] = val.strip()
    return lines[0], headers, body


@scenario
def head_as_get_without_body():
    """HEAD gets GET's status line and headers, Content-Length included,
    and no body (as nginx and HAProxy answer it; before: 405). Other
    methods get 405 with Allow: GET, HEAD."""
    d, _, mport, echo = with_metrics()
    for path, status in (("/metrics", "200 OK"), ("/healthz", "200 OK"),
                         ("/nope", "404 Not Found")):
        gline, gh, gbody = raw_request(mport, b"GET %s HTTP/1.0\r\n\r\n" % path.encode())
        hline, hh, hbody = raw_request(mport, b"HEAD %s HTTP/1.0\r\n\r\n" % path.encode())
        eq(gline, "HTTP/1.0 " + status, "GET %s status" % path)
        eq(hline, gline, "HEAD %s status" % path)
        eq(hbody, b"", "HEAD %s body" % path)
        check("content-length" in hh, "HEAD %s without Content-Length: %r" % (path, hh))
        eq(int(gh["content-length"]), len(gbody), "GET %s Content-Length" % path)
        if path == "/metrics":
            # The counters may move between the two requests, not the shape.
            check(int(hh["content-length"]) > 0, "HEAD /metrics Content-Length")
        else:
            eq(hh, gh, "HEAD %s headers" % path)
    # curl -I, as an operator checks an endpoint.
    if shutil.which("curl"):
        r = subprocess.run(["curl", "-sS", "-I", "--max-time", "5",
                            "http://127.0.0.1:%d/metrics" % mport],
                           capture_output=True, timeout=10)
        eq(r.returncode, 0, "curl -I exit status (%s)" % r.stderr.decode(errors="replace"))
        out = r.stdout.decode("latin-1")
        check(out.startswith("HTTP/1.0 200 OK\r\n"), "curl -I: %r" % out[:80])
        check("\r\nContent-Length: " in out, "curl -I without Content-Length: %r" % out)
    for method in (b"POST", b"PUT", b"DELETE", b"OPTIONS", b"get", b"HEADX"):
        line, h, body = raw_request(mport, method + b" /metrics HTTP/1.0\r\n\r\n")
        check(line.startswith("HTTP/1.0 405 "), "%s answer: %r" % (method, line))
        eq(h.get("allow"), "GET, HEAD", "%s Allow header" % method)
        eq(int(h["content-length"]), len(body), "%s Content-Length" % method)
    timed_scrape(mport)
    echo.close()


@scenario
def healthz_200_serving_503_draining():
    d, port, mport, echo = with_metrics()
    eq(scrape(mport, "/healthz"), (200, "ok\n"), "/healthz while serving")
    eq(scrape(mport, "/healthz?verbose")[0], 200, "/healthz with a query")
    held = connect(V4, port)  # the drain lasts while it is open
    held.sendall(b"h")
    eq(held.recv(1), b"h", "held connection")
    d.p.send_signal(signal.SIGTERM)
    d.wait_event("stopping")
    eq(scrape(mport, "/healthz"), (503, "draining\n"), "/healthz while draining")
    eq(scrape(mport)[0], 200, "/metrics while draining")
    held.close()
    eq(d.p.wait(timeout=10), 0, "exit status")
    echo.close()


if __name__ == "__main__":
    sys.exit(run())
