#!/usr/bin/python3
"""ppfwd end to end with real peers: HAProxy and nginx in front of ppfwd,
nginx and an HTTP responder behind it, curl --haproxy-protocol as client.
Run: /usr/bin/python3 tests/integration/test_peers.py [SCENARIO...]"""

import json
import os
import subprocess
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PPFWD, V4, V6, Fail, Server, check, connect, eq, fmt_addr, hostport,  # noqa: E402
                     parse_header, recv_all, recv_line, run, scenario, start_ppfwd, v1, v2,
                     whoami, capture_handler, wait_for, header_len_available)
import peers  # noqa: E402


def whoami_json(s):
    line = recv_line(s)
    try:
        return json.loads(line)
    except ValueError:
        raise Fail("whoami answered %r, not JSON" % line)


def tlv_map(proxy):
    return {t.get("name", t["type"]): t for t in (proxy or {}).get("tlvs", [])}


@scenario
def selftest_header_codec():
    """Our independent v1/v2 builder and parser agree with `ppfwd decode`."""
    h = v2(("192.0.2.10", 51234), ("198.51.100.1", 443), [(2, b"example.com")], crc=True)
    out = subprocess.run([PPFWD, "decode"], input=h, capture_output=True, timeout=10)
    eq(out.returncode, 0, "ppfwd decode exit")
    j = json.loads(out.stdout)
    eq((j["src"], j["dst"], j["length"]), ("192.0.2.10:51234", "198.51.100.1:443", len(h)), "decode")
    p, n = parse_header(h)
    eq((p["crc_ok"], n, p["src"]), (True, len(h), ("192.0.2.10", 51234)), "own parser")
    enc = subprocess.run([PPFWD, "encode", "--v2", "--src", "[2001:db8::1]:1", "--dst",
                          "[2001:db8::2]:2", "--crc32c", "--tlv", "authority=a.example"],
                         capture_output=True, timeout=10).stdout
    p, n = parse_header(enc)
    eq((p["family"], p["src"], p["crc_ok"], n), ("tcp6", ("2001:db8::1", 1), True, len(enc)),
       "own parser on ppfwd encode")


@scenario
def haproxy_v2_tlvs_to_whoami():
    """HAProxy send-proxy-v2 (authority,crc32c,unique-id) -> ppfwd
    accept-proxy=required&send-proxy=v2&tlvs=pass -> whoami: the client and
    HAProxy's TLVs arrive. HAProxy 2.6 without TLS sends authority only when
    it accepted one itself, so the second case enters HAProxy with a header."""
    wp, wport = whoami(V4, "required")
    d, (pport,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&trusted=127.0.0.1/32"
        "&send-proxy=v2&tlvs=pass" % (ps[0], wport)], 1)
    hp, plain, withproxy = peers.haproxy(pport)

    s = connect(V4, plain)
    me = s.getsockname()
    j = whoami_json(s)
    s.close()
    eq(j.get("client"), fmt_addr(me), "whoami client (plain client via HAProxy)")
    pr = j.get("proxy") or {}
    eq((pr.get("version"), pr.get("command"), pr.get("src")), (2, "proxy", fmt_addr(me)), "proxy")
    t = tlv_map(pr)
    check("unique-id" in t, "no unique-id TLV passed on: %r" % pr.get("tlvs"))
    eq(t["unique-id"]["hex"], ("%s:%d" % me).encode().hex(), "unique-id (HAProxy's %ci:%cp)")
    check("authority" not in t, "authority TLV without SNI or accepted TLV: %r" % t)

    src, dst = ("192.0.2.10", 51234), ("198.51.100.1", 443)
    s = connect(V4, withproxy)
    s.sendall(v2(src, dst, [(2, b"example.com")]))
    j = whoami_json(s)
    s.close()
    eq(j.get("client"), "192.0.2.10:51234", "whoami client (header into HAProxy)")
    pr = j.get("proxy") or {}
    eq(pr.get("dst"), "198.51.100.1:443", "proxy dst")
    t = tlv_map(pr)
    eq(t.get("authority", {}).get("value"), "example.com", "authority TLV")
    eq(t.get("unique-id", {}).get("hex"), b"192.0.2.10:51234".hex(), "unique-id TLV")
    close = d.wait_event("conn_close", lambda e: e.get("client") == "192.0.2.10:51234")
    check(close[0].get("upstream") in ("127.0.0.1:%d" % wport,), "conn_close upstream %r" % close[0])
    check(d.alive(), "ppfwd died")


@scenario
def haproxy_v2_crc_passes_through():
    """The same chain into a raw capture: the header ppfwd sends is a valid
    v2 header (any CRC32C TLV in it matches), with HAProxy's unique-id and
    the client, and ppfwd's own crc32c=on/unique-id=on are honoured."""
    cap = Server(capture_handler)
    d, (p1, p2) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&send-proxy=v2&tlvs=pass"
        % (ps[0], cap.port),
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&send-proxy=v2&tlvs=drop"
        "&crc32c=on&unique-id=on&authority=ppfwd.test" % (ps[1], cap.port)], 2)
    for port, dropped in ((p1, False), (p2, True)):
        hp, plain, _ = peers.haproxy(port)
        s = connect(V4, plain)
        me = s.getsockname()
        s.sendall(b"payload\n")
        eq(recv_line(s), b"ok\n", "capture answer")
        s.close()
        wait_for(lambda: cap.results, 5, "the capture")
        data = cap.results.pop()
        h, n = parse_header(data)
        eq(data[n:], b"payload\n", "client data after the header")
        eq((h["version"], h["src"]), (2, me), "header sent by ppfwd")
        check(h["crc_ok"] in (None, True), "CRC32C TLV does not match the header ppfwd sent")
        types = [t for t, _ in h["tlvs"]]
        uid = [v for t, v in h["tlvs"] if t == 5]
        if not dropped:
            eq(uid, [("%s:%d" % me).encode()], "HAProxy's unique-id passed")
        else:
            eq(h["crc_ok"], True, "crc32c=on")
            eq(len(uid), 1, "one unique-id TLV (ppfwd's, HAProxy's dropped)")
            eq(len(uid[0]), 16, "unique-id=on is 16 bytes")
            check((2, b"ppfwd.test") in h["tlvs"], "authority=ppfwd.test missing: %r" % types)
        hp.kill()
        hp.wait(5)


def _nginx_ppfwd_whoami(host):
    wp, wport = whoami(V4, "required")
    d, (pport,) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&trusted=127.0.0.1/32,::1/128"
        "&send-proxy=v2" % (ps[0], wport)], 1)
    for _ in range(5):
        nport = __import__("harness").free_port(host)
        try:
            peers.nginx("server { listen %s; proxy_pass 127.0.0.1:%d; proxy_protocol on; }"
                        % (hostport(host, nport), pport), [(host, nport)])
            break
        except Fail as e:
            if "in use" not in str(e):
                raise
    s = connect(host, nport)
    me = s.getsockname()
    j = whoami_json(s)
    s.close()
    eq(j.get("client"), fmt_addr(me), "whoami client through nginx (v1) and ppfwd (v2)")
    eq((j.get("proxy") or {}).get("dst"), hostport(host, nport), "proxy dst: nginx's listener")
    ev = d.wait_event("conn_close", lambda e: e.get("client") == fmt_addr(me))[0]
    for k in ("client", "peer", "upstream", "bytes_in", "bytes_out", "duration_ms"):
        check(k in ev, "conn_close without %s: %r" % (k, ev))
    check(ev["peer"].startswith("127.0.0.1:"), "peer is nginx on 127.0.0.1: %r" % ev)


@scenario
def nginx_v1_to_ppfwd_v4():
    _nginx_ppfwd_whoami(V4)


@scenario
def nginx_v1_to_ppfwd_v6():
    _nginx_ppfwd_whoami(V6)


def _ppfwd_to_nginx(version):
    hv = __import__("harness")
    for _ in range(5):
        nport = hv.free_port()
        try:
            peers.nginx('server { listen 127.0.0.1:%d proxy_protocol; '
                        'return "$proxy_protocol_addr:$proxy_protocol_port\\n"; }' % nport,
                        [(V4, nport)])
            break
        except Fail as e:
            if "in use" not in str(e):
                raise
    d, (p4, p6, pa) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?send-proxy=%s" % (ps[0], nport, version),
        "tcp://[::1]:%d/127.0.0.1:%d?send-proxy=%s" % (ps[1], nport, version),
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&send-proxy=%s"
        % (ps[2], nport, version)], 3, hosts=[V4, V6, V4])
    s = connect(V4, p4)
    me = s.getsockname()
    eq(recv_all(s), ("%s:%d\n" % me).encode(), "nginx's $proxy_protocol_addr:port (tcp4)")
    s.close()
    s = connect(V6, p6)
    me = s.getsockname()
    eq(recv_all(s), ("%s:%d\n" % (me[0], me[1])).encode(), "nginx's view (tcp6 client)")
    s.close()
    for hdr in (v1(("192.0.2.10", 51234), ("198.51.100.1", 443)),
                v2(("2001:db8::10", 4000), ("2001:db8::1", 443))):
        s = connect(V4, pa)
        s.sendall(hdr)
        want = "2001:db8::10:4000\n" if b"\0" in hdr else "192.0.2.10:51234\n"
        eq(recv_all(s), want.encode(), "relayed client through ppfwd %s" % version)
        s.close()
    check(d.alive(), "ppfwd died")


@scenario
def ppfwd_send_v1_to_nginx():
    _ppfwd_to_nginx("v1")


@scenario
def ppfwd_send_v2_to_nginx():
    _ppfwd_to_nginx("v2")


def http_handler(c, srv):
    """Tiny HTTP responder behind ppfwd send-proxy=v2: answers the client
    address the header carried."""
    buf = b""
    while not (header_len_available(buf) and b"\r\n\r\n" in buf[header_len_available(buf):]):
        d = c.recv(4096)
        if not d:
            return
        buf += d
        if len(buf) > 65536:
            return
    h, n = parse_header(buf)
    body = ("%s\n" % fmt_addr(h["src"])).encode()
    c.sendall(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
              b"Connection: close\r\n\r\n%s" % (len(body), body))
    srv.add(buf[n:])


@scenario
def curl_haproxy_protocol():
    """curl --haproxy-protocol -> ppfwd accept-proxy=required&send-proxy=v2
    -> HTTP responder: the header curl sent was accepted and relayed; curl
    without it is refused."""
    web = Server(http_handler)
    d, (p4, p6) = start_ppfwd(lambda ps: [
        "tcp://127.0.0.1:%d/127.0.0.1:%d?accept-proxy=required&send-proxy=v2" % (ps[0], web.port),
        "tcp://[::1]:%d/127.0.0.1:%d?accept-proxy=required&send-proxy=v2" % (ps[1], web.port)],
        2, hosts=[V4, V6])
    for host, port in ((V4, p4), (V6, p6)):
        url = "http://%s/" % hostport(host, port)
        before = len(web.results)
        r = subprocess.run(["curl", "-sS", "-g", "--max-time", "5", "--haproxy-protocol",
                            "-w", "%{local_ip} %{local_port}", url],
                           capture_output=True, timeout=15, text=True)
        eq(r.returncode, 0, "curl exit (%s)" % r.stderr.strip())
        body, _, local = r.stdout.rpartition("\n")
        ip, lport = local.split(" ")
        eq(body, hostport(ip, int(lport)), "client seen behind ppfwd (%s)" % url)
        wait_for(lambda: len(web.results) > before, 5, "the responder's record")
        check(web.results[-1].startswith(b"GET / HTTP/1.1\r\n"),
              "request after the header: %r" % (web.results[-1:] or [b""])[0][:40])
    r = subprocess.run(["curl", "-sS", "--max-time", "5", "http://127.0.0.1:%d/" % p4],
                       capture_output=True, timeout=15, text=True)
    check(r.returncode != 0, "curl without --haproxy-protocol got an answer: %r" % r.stdout)
    d.wait_event("proxy_header_refused")
    check(d.alive(), "ppfwd died")


if __name__ == "__main__":
    sys.exit(run())
