#!/usr/bin/python3
"""--metrics serves Prometheus text at /metrics whose counters match the
traffic sent: connections, bytes both ways, PROXY header outcomes, upstream
errors and up/down, active connections; anything else is a 404.
Run: /usr/bin/python3 tests/integration/test_metrics.py [SCENARIO...]"""

import os
import re
import shutil
import subprocess
import sys
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (V4, EchoServer, Fail, check, connect, eq, expect_closed,  # noqa: E402
                     free_port, recv_all, run, scenario, start_ppfwd, v2, wait_for)


def scrape(port, path="/metrics"):
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=5) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, ""


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


if __name__ == "__main__":
    sys.exit(run())
