"""A DNS server for tests (python3 stdlib only): answers A and AAAA queries
over UDP from a fixed table, NXDOMAIN for names it does not know, and
records every question it was asked. Bind it to 127.0.0.1:53 only inside a
network namespace of the test's own (port 53 of the caller's loopback is not
the test's to take)."""

import socket
import struct
import threading

QTYPE_A, QTYPE_AAAA = 1, 28


def parse_question(msg):
    """(id, flags, qname, qtype, end of question) of a query, or None."""
    if len(msg) < 12:
        return None
    qid, flags, qdcount = struct.unpack("!HHH", msg[:6])
    if qdcount != 1:
        return None
    labels, p = [], 12
    while p < len(msg):
        n = msg[p]
        p += 1
        if n == 0:
            break
        if n & 0xC0 or p + n > len(msg):
            return None
        labels.append(msg[p:p + n].decode("ascii", "replace").lower())
        p += n
    if p + 4 > len(msg):
        return None
    qtype, _qclass = struct.unpack("!HH", msg[p:p + 4])
    return qid, flags, ".".join(labels), qtype, p + 4


def answer(msg, table):
    """The reply to query msg from table {name: [ip, ...]}, or None."""
    q = parse_question(msg)
    if q is None:
        return None
    qid, flags, name, qtype, qend = q
    question = msg[12:qend]
    if name not in table:
        rcode, rrs = 3, []
    else:
        fam = {QTYPE_A: socket.AF_INET, QTYPE_AAAA: socket.AF_INET6}.get(qtype)
        rcode = 0
        rrs = [socket.inet_pton(fam, ip) for ip in table[name]
               if fam is not None and (":" in ip) == (fam == socket.AF_INET6)]
    # QR, the query's RD, RA; rcode.
    hdr = struct.pack("!HHHHHH", qid, 0x8080 | (flags & 0x0100) | rcode, 1, len(rrs), 0, 0)
    out = hdr + question
    for rdata in rrs:
        # The name as a pointer to the question (offset 12), class IN, TTL 5.
        out += struct.pack("!HHHIH", 0xC00C, qtype, 1, 5, len(rdata)) + rdata
    return out


class FakeDNS:
    """Serves table on (host, port) over UDP in a thread until close()."""

    def __init__(self, table, host="127.0.0.1", port=53):
        self.table = {k.lower(): v for k, v in table.items()}
        self.asked = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.1)
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()

    def _run(self):
        while not self.stopping:
            try:
                msg, peer = self.sock.recvfrom(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            q = parse_question(msg)
            if q is not None:
                with self.lock:
                    self.asked.append((q[2], q[3]))
            reply = answer(msg, self.table)
            if reply is not None:
                self.sock.sendto(reply, peer)

    def questions(self):
        with self.lock:
            return list(self.asked)

    def close(self):
        self.stopping = True
        self.t.join(2)
        self.sock.close()
