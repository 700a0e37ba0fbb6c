#!/usr/bin/python3
"""TLV policy of a route: tlvs=pass|drop|keep:LIST|strip:LIST and
add-tlv=TYPE=VALUE, on TCP (behind HAProxy 2.6 and with hand-made headers)
and on every UDP datagram, plus the values ppfwd refuses.

Every header a backend receives is parsed here (harness.parse_header) and, for
the fresh CRC32c, also by `ppfwd decode` and by HAProxy itself (a mode tcp
frontend with accept-proxy, which refuses a header whose CRC32C is wrong).
Run: /usr/bin/python3 tests/integration/test_tlv_policy.py [SCENARIO...]"""

import json
import os
import socket
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import peers  # noqa: E402
from harness import (PPFWD, V2_SIG, V4, Ppfwd, Server, capture_handler, check, eq,  # noqa: E402
                     free_port, hostport, on_cleanup, parse_header, recv_line, run, scenario,
                     start_ppfwd, tmpdir, v2, wait_for)

AWS = (0xEA, b"\x01vpce-0123456789abcdef0")
AZURE = (0xEE, b"\x01\x78\x56\x34\x12")
CUSTOM = (0xE5, b"tenant-7")
ALPN = (0x01, b"h2")
AUTHORITY = (0x02, b"example.com")
NOOP = (0x04, b"\0\0")
RECEIVED = [ALPN, AUTHORITY, AWS, NOOP, AZURE, CUSTOM]  # + a CRC32C last
CLIENT = ("192.0.2.10", 51234)


def capture():
    srv = Server(capture_handler)
    return srv


def send(port, header, payload=b"hello\n"):
    s = socket.create_connection((V4, port), timeout=5)
    on_cleanup(s.close)
    s.sendall(header + payload)
    eq(recv_line(s), b"ok\n", "answer through ppfwd")
    s.close()


def received(srv, n=1):
    wait_for(lambda: len(srv.results) >= n, 5, "%d connection(s) at the backend" % n)
    out = []
    for data in srv.results[-n:]:
        h, hl = parse_header(data)
        out.append((h, data[hl:]))
    return out


def through(query, header=None):
    """A route accept-proxy=required -> send-proxy=v2 with query, one
    connection carrying header (default: RECEIVED with a CRC32C); returns the
    header the backend got."""
    srv = capture()
    d, ps = start_ppfwd(lambda ps: ["tcp://%s/%s?accept-proxy=required&trusted=127.0.0.1/32"
                                    "&send-proxy=v2&%s" % (hostport(V4, ps[0]),
                                                           hostport(V4, srv.port), query)], 1)
    send(ps[0], header if header is not None else v2(CLIENT, (V4, ps[0]), RECEIVED, crc=True))
    (h, rest), = received(srv)
    eq(rest, b"hello\n", "bytes after the header")
    eq(h["src"], CLIENT, "client in the header sent")
    d.stop()
    return h


@scenario
def pass_and_drop():
    """pass: every received TLV in order, the received CRC32C not copied;
    drop: none."""
    h = through("tlvs=pass")
    eq(h["tlvs"], RECEIVED, "TLVs with tlvs=pass")
    h = through("tlvs=drop")
    eq(h["tlvs"], [], "TLVs with tlvs=drop")


@scenario
def keep_list_names_and_numbers():
    """keep: only the listed types, in the order they came (not the list's);
    names and numbers (decimal and hex) mean the same."""
    want = [AUTHORITY, AWS, CUSTOM]
    for q in ("tlvs=keep:0xe5,aws,authority", "tlvs=keep:229,234,2", "tlvs=keep:0xE5,0xea,0x02",
              "tlvs=keep:0xe5,aws,authority,crc32c"):
        eq(through(q)["tlvs"], want, "TLVs with " + q)


@scenario
def strip_list():
    """strip: all but the listed types (the vendor TLVs here)."""
    eq(through("tlvs=strip:aws,azure")["tlvs"], [ALPN, AUTHORITY, NOOP, CUSTOM],
       "TLVs with tlvs=strip:aws,azure")
    eq(through("tlvs=strip:238,noop,0x01")["tlvs"], [AUTHORITY, AWS, CUSTOM],
       "TLVs with tlvs=strip:238,noop,0x01")


@scenario
def added_tlvs_in_order_with_fresh_crc():
    """add-tlv (repeated, text and hex) after the passed TLVs, in the order
    given, then crc32c=on over the header actually sent: correct here, for
    `ppfwd decode`, and never the received CRC."""
    h = through("tlvs=keep:aws&add-tlv=0xe0=zone-a&add-tlv=225=hex:00ff10&add-tlv=noop=&crc32c=on")
    eq([t for t in h["tlvs"] if t[0] != 3],
       [AWS, (0xE0, b"zone-a"), (0xE1, b"\x00\xff\x10"), (0x04, b"")], "TLVs sent")
    eq(h["tlvs"][-1][0], 3, "the CRC32C TLV comes last")
    eq(h["crc_ok"], True, "fresh CRC32c matches the header sent")


@scenario
def fresh_crc_accepted_by_decode_and_haproxy():
    """The header of a route with add-tlv and crc32c=on, sent to HAProxy 2.6
    (accept-proxy on a mode tcp frontend, which checks a CRC32C TLV) and
    decoded by `ppfwd decode`: both accept it."""
    srv = capture()
    hp, _, withproxy = peers.haproxy(srv.port, extra_server="")
    d, ps = start_ppfwd(lambda ps: ["tcp://%s/%s?accept-proxy=required&trusted=127.0.0.1/32"
                                    "&send-proxy=v2&tlvs=keep:authority,aws&add-tlv=0xe0=zone-a"
                                    "&add-tlv=0xe1=hex:deadbeef&crc32c=on"
                                    % (hostport(V4, ps[0]), hostport(V4, withproxy))], 1)
    send(ps[0], v2(CLIENT, (V4, ps[0]), RECEIVED, crc=True))
    wait_for(lambda: srv.results, 5, "the connection through HAProxy")
    # HAProxy took the header (a bad CRC32C makes it close the connection
    # before its backend is reached); the client address went through it.
    check(srv.results[0].endswith(b"hello\n"), "payload through HAProxy")
    # The same header, captured directly, through ppfwd decode.
    srv2 = capture()
    d2, ps2 = start_ppfwd(lambda ps: ["tcp://%s/%s?accept-proxy=required&trusted=127.0.0.1/32"
                                      "&send-proxy=v2&tlvs=keep:authority,aws&add-tlv=0xe0=zone-a"
                                      "&add-tlv=0xe1=hex:deadbeef&crc32c=on"
                                      % (hostport(V4, ps[0]), hostport(V4, srv2.port))], 1)
    send(ps2[0], v2(CLIENT, (V4, ps2[0]), RECEIVED, crc=True))
    wait_for(lambda: srv2.results, 5, "the captured header")
    data = srv2.results[0]
    r = subprocess.run([PPFWD, "decode"], input=data[:len(data) - len(b"hello\n")],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=10)
    eq(r.returncode, 0, "ppfwd decode exit status (stderr %r)" % r.stderr[-300:])
    j = json.loads(r.stdout)
    eq([t["type"] for t in j["tlvs"]], [2, 0xEA, 0xE0, 0xE1, 3], "TLV types ppfwd decode sees")
    d.stop()
    d2.stop()


@scenario
def behind_haproxy_keep_unique_id():
    """HAProxy 2.6 in front (send-proxy-v2 with proxy-v2-options
    authority,crc32c,unique-id): keep:unique-id,authority passes HAProxy's
    unique-id and the authority it relayed, never its CRC32C, and an added TLV
    follows them."""
    srv = capture()
    d, ps = start_ppfwd(lambda ps: ["tcp://%s/%s?accept-proxy=required&trusted=127.0.0.1/32"
                                    "&send-proxy=v2&tlvs=keep:unique-id,authority"
                                    "&add-tlv=0xe0=from-ppfwd" % (hostport(V4, ps[0]),
                                                                  hostport(V4, srv.port))], 1)
    hp, _, withproxy = peers.haproxy(ps[0])
    # The client's own header gives HAProxy an authority to relay (2.6 sends
    # one only from an SNI or an accepted TLV).
    send(withproxy, v2(CLIENT, (V4, withproxy), [AUTHORITY]))
    (h, _), = received(srv)
    types = [t for t, _ in h["tlvs"]]
    eq(types, [2, 5, 0xE0], "TLV types after HAProxy and ppfwd")
    eq(dict(h["tlvs"])[5], ("%s:%d" % CLIENT).encode(), "HAProxy's unique-id (%ci:%cp)")
    eq(h["crc_ok"], None, "no CRC32C: HAProxy's was not copied")
    d.stop()


@scenario
def udp_every_datagram_carries_added_tlvs():
    """A UDP route with send-proxy=v2 and add-tlv: every datagram the
    upstream gets starts with a header carrying the added TLVs in order."""
    up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    on_cleanup(up.close)
    up.bind((V4, 0))
    up.settimeout(2)
    port = free_port(V4)
    d = Ppfwd(["udp://%s/%s?send-proxy=v2&add-tlv=0xe0=zone-a&add-tlv=0xe1=hex:0102&crc32c=on"
               % (hostport(V4, port), hostport(V4, up.getsockname()[1]))]).start([])
    ps = [port]
    c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    on_cleanup(c.close)
    c.bind((V4, 0))
    n = 20
    for i in range(n):
        c.sendto(b"dgram %d" % i, (V4, ps[0]))
    got = []
    end = time.monotonic() + 5
    while len(got) < n and time.monotonic() < end:
        try:
            got.append(up.recvfrom(65535)[0])
        except socket.timeout:
            break
    eq(len(got), n, "datagrams at the upstream")
    for i, g in enumerate(sorted(got, key=lambda x: int(x.rsplit(b" ", 1)[1]))):
        check(g.startswith(V2_SIG), "datagram %d has no v2 header" % i)
        ln = 16 + int.from_bytes(g[14:16], "big")
        body = g[16:ln]
        p = 12  # UDP4 address block
        tl = []
        while p < len(body):
            t, vl = body[p], int.from_bytes(body[p + 1:p + 3], "big")
            tl.append((t, body[p + 3:p + 3 + vl]))
            p += 3 + vl
        eq(tl[:2], [(0xE0, b"zone-a"), (0xE1, b"\x01\x02")], "added TLVs of datagram %d" % i)
        eq(tl[2][0], 3, "CRC32C last in datagram %d" % i)
        eq(g[ln:], b"dgram %d" % i, "payload of datagram %d" % i)
    d.stop()


def check_refuses(query, *want):
    url = "tcp://127.0.0.1:%d/127.0.0.1:9?send-proxy=v2&%s" % (free_port(), query)
    r = subprocess.run([PPFWD, "check", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    err = r.stderr.decode("utf-8", "replace")
    eq(r.returncode, 1, "ppfwd check %s exit status (stderr %r)" % (query, err))
    for w in want:
        check(w in err, "%r not in the message for %s: %r" % (w, query, err))


@scenario
def bad_values_refused_with_route_and_key():
    """Every bad value is refused by ppfwd check (and so at start), naming
    the route, the key and what is wrong."""
    check_refuses("tlvs=keep:bogus", "tlvs", "unknown TLV type 'bogus'", "route")
    check_refuses("tlvs=keep:256", "tlvs", "above 255")
    check_refuses("tlvs=keep:", "tlvs", "empty")
    check_refuses("tlvs=keeps", "tlvs", "keep:LIST")
    check_refuses("add-tlv=0xe0", "add-tlv", "TYPE=VALUE")
    check_refuses("add-tlv=nope=x", "add-tlv", "unknown TLV type 'nope'")
    check_refuses("add-tlv=300=x", "add-tlv", "above 255")
    check_refuses("add-tlv=0xe0=hex:abc", "add-tlv", "odd number of hex digits")
    check_refuses("add-tlv=0xe0=hex:zz", "add-tlv", "not a hex digit")
    check_refuses("add-tlv=crc32c=x", "add-tlv", "crc32c=on")
    check_refuses("add-tlv=authority=" + "a" * 256, "add-tlv", "more than the 255")
    check_refuses("add-tlv=unique-id=" + "u" * 129, "add-tlv", "more than the 128")
    check_refuses("&".join("add-tlv=0xe0=" + "v" * 1000 for _ in range(4)), "add-tlv",
                  "PP_V2_DEFAULT_CAP")
    # Without send-proxy=v2 the TLV keys mean nothing: refused as tlvs is.
    url = "tcp://127.0.0.1:%d/127.0.0.1:9?add-tlv=0xe0=x" % free_port()
    r = subprocess.run([PPFWD, "check", url], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       timeout=10)
    eq(r.returncode, 1, "add-tlv without send-proxy=v2")
    check(b"add-tlv" in r.stderr, "add-tlv not named: %r" % r.stderr)


@scenario
def yaml_add_tlv_list():
    """YAML: add_tlv is a list; tlvs takes the same values; check accepts a
    good file and names file, line, route and key for a bad one."""
    d = tmpdir()
    good = os.path.join(d, "good.yaml")
    with open(good, "w") as f:
        f.write("""routes:
  r1:
    listen: tcp://127.0.0.1:%d
    upstream: 127.0.0.1:9
    send_proxy: v2
    tlvs: strip:aws,azure
    add_tlv:
      - 0xe0=zone-a
      - 0xe1=hex:0102
    crc32c: on
""" % free_port())
    r = subprocess.run([PPFWD, "check", "-c", good], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    eq(r.returncode, 0, "check of a good file (stderr %r)" % r.stderr)
    bad = os.path.join(d, "bad.yaml")
    with open(bad, "w") as f:
        f.write("""routes:
  r1:
    listen: tcp://127.0.0.1:%d
    upstream: 127.0.0.1:9
    send_proxy: v2
    add_tlv:
      - 0xe0=zone-a
      - crc32c=1
""" % free_port())
    r = subprocess.run([PPFWD, "check", "-c", bad], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, timeout=10)
    err = r.stderr.decode()
    eq(r.returncode, 1, "check of a bad file")
    for w in ("bad.yaml:", "r1", "add_tlv", "crc32c=on"):
        check(w in err, "%r not in %r" % (w, err))


if __name__ == "__main__":
    sys.exit(run())
