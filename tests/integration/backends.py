"""Backends for the integration scenarios, each on threads of this process:
a TCP server with a handler per connection (Server), an echo server for
hundreds of connections on one thread (EchoServer), and the echo and
capture handlers. Imported by harness.py, whose names they use; test files
get them from harness as before."""

import selectors
import socket
import threading

from harness import V4, check, header_len_available, on_cleanup

# ---- backends (threads in this process) -------------------------------------


class Server:
    """A TCP server on a thread: handler(conn_socket, info) runs per
    connection on its own thread. info.conns counts accepted connections;
    info.results collects what handlers append."""

    def __init__(self, handler, host=V4, port=0, backlog=1024):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, port))
        self.sock.listen(backlog)
        self.sock.settimeout(0.2)
        self.host, self.port = host, self.sock.getsockname()[1]
        self.handler = handler
        self.conns = 0
        self.results = []
        self.errors = []
        self.lock = threading.Lock()
        self.stopping = False
        self.threads = []
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def _run(self):
        while not self.stopping:
            try:
                c, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.conns += 1
            t = threading.Thread(target=self._one, args=(c,), daemon=True)
            t.start()
            self.threads.append(t)

    def _one(self, c):
        try:
            c.settimeout(30)
            self.handler(c, self)
        except Exception as e:  # noqa: BLE001 - recorded, asserted by the scenario
            with self.lock:
                self.errors.append(repr(e))
        finally:
            c.close()

    def add(self, r):
        with self.lock:
            self.results.append(r)

    def close(self):
        self.stopping = True
        try:
            self.sock.close()
        except OSError:
            pass
        self.t.join(2)


def echo_handler(c, srv):
    while True:
        try:
            d = c.recv(65536)
        except ConnectionResetError:
            return
        if not d:
            c.shutdown(socket.SHUT_WR)
            return
        c.sendall(d)


class EchoServer:
    """A selectors-based echo server on one thread: hundreds of concurrent
    connections without a thread each. Half-close is echoed: EOF from the
    client is answered by a shutdown(SHUT_WR) once all was echoed."""

    def __init__(self, host=V4):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.sock = socket.socket(fam, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((host, 0))
        self.sock.listen(4096)
        self.sock.setblocking(False)
        self.port = self.sock.getsockname()[1]
        self.conns = 0
        self.sel = selectors.DefaultSelector()
        self.sel.register(self.sock, selectors.EVENT_READ, None)
        self.pending = {}
        self.stopping = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def _run(self):
        while not self.stopping:
            for key, ev in self.sel.select(0.2):
                if key.data is None:
                    for _ in range(256):
                        try:
                            c, _ = self.sock.accept()
                        except (BlockingIOError, OSError):
                            break
                        c.setblocking(False)
                        self.conns += 1
                        self.pending[c] = [b"", False]
                        self.sel.register(c, selectors.EVENT_READ, c)
                    continue
                self._service(key.fileobj, ev)

    def _service(self, c, ev):
        st = self.pending[c]
        try:
            if ev & selectors.EVENT_READ and not st[1]:
                d = c.recv(65536)
                if d:
                    st[0] += d
                else:
                    st[1] = True
            if st[0]:
                n = c.send(st[0])
                st[0] = st[0][n:]
            if st[1] and not st[0]:
                c.shutdown(socket.SHUT_WR)
                self._drop(c)
                return
            want = (0 if st[1] or len(st[0]) > 1 << 20 else selectors.EVENT_READ) | (
                selectors.EVENT_WRITE if st[0] else 0)
            self.sel.modify(c, want or selectors.EVENT_READ, c)
        except (BlockingIOError, InterruptedError):
            pass
        except OSError:
            self._drop(c)

    def _drop(self, c):
        try:
            self.sel.unregister(c)
        except (KeyError, ValueError):
            pass
        self.pending.pop(c, None)
        c.close()

    def close(self):
        self.stopping = True
        self.t.join(2)
        for c in list(self.pending):
            self._drop(c)
        self.sock.close()


def capture_handler(c, srv):
    """Records everything a connection sends until EOF (or 1 s of silence),
    and answers "ok\\n"."""
    c.settimeout(1.0)
    data = b""
    try:
        while True:
            hl = header_len_available(data)
            if hl and len(data) > hl and data.endswith(b"\n"):
                break
            d = c.recv(65536)
            if not d:
                break
            data += d
    except (socket.timeout, ConnectionResetError):
        pass
    srv.add(data)
    try:
        c.sendall(b"ok\n")
    except OSError:
        pass


class UdpRecorder:
    """A UDP backend on a thread: records (payload, source) of every datagram
    and answers b"echo:" + payload to its source."""

    def __init__(self, host):
        fam = socket.AF_INET6 if ":" in host else socket.AF_INET
        self.s = socket.socket(fam, socket.SOCK_DGRAM)
        self.s.bind((host, 0))
        self.s.settimeout(0.2)
        self.port = self.s.getsockname()[1]
        self.seen = []
        self.lock = threading.Lock()
        self.stopped = False
        self.t = threading.Thread(target=self._run, daemon=True)
        self.t.start()
        on_cleanup(self.close)

    def _run(self):
        while not self.stopped:
            try:
                d, a = self.s.recvfrom(65535)
            except OSError:
                continue
            with self.lock:
                self.seen.append((d, a[:2]))
            try:
                self.s.sendto(b"echo:" + d, a)
            except OSError:
                pass

    def sources_of(self, payload):
        with self.lock:
            return [a for d, a in self.seen if d == payload]

    def close(self):
        if not self.stopped:
            self.stopped = True
            self.t.join(2)
            self.s.close()
