"""Scenario harness for ppfwd's integration tests (python3 stdlib only).

Run by Debian's /usr/bin/python3. Everything listens on 127.0.0.1 or ::1,
every wait is bounded in time, every child process is killed and reaped and
every temporary directory removed, whatever happens (finally + atexit +
SIGTERM/SIGINT handlers).

A test file defines scenarios with @scenario and ends with `sys.exit(run())`;
each scenario prints one PASS or FAIL line (or SKIP, with the reason, when it
raises Skip because what it needs cannot run here), and run() returns non-zero
when any failed.
"""

import atexit
import errno
import hashlib
import json
import os
import random
import shutil
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
PPFWD = os.path.abspath(os.path.join(ROOT, os.environ.get("PPFWD", "build/asan/ppfwd")))
V4 = "127.0.0.1"
V6 = "::1"

# Every scenario gets at most this long (SIGALRM), so a hang is a FAIL, not a
# stuck `make test`.
SCENARIO_SECONDS = int(os.environ.get("PPFWD_SCENARIO_SECONDS", "60"))

# Enough descriptors for 500 concurrent connections on both sides of the
# proxy; children (ppfwd, haproxy, nginx) inherit the raised limit.
try:
    import resource

    _soft, _hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    _want = 8192 if _hard == resource.RLIM_INFINITY else min(_hard, 8192)
    if _soft < _want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (_want, _hard))
except (ImportError, ValueError, OSError):
    pass


class Fail(Exception):
    """An assertion of a scenario did not hold."""


class ScenarioTimeout(Exception):
    pass


class Skip(Exception):
    """The scenario cannot run on this machine (the message says why): it
    prints a SKIP line and does not count as a failure."""


def check(cond, msg):
    if not cond:
        raise Fail(msg)


def eq(got, want, what):
    if got != want:
        raise Fail("%s: got %r, want %r" % (what, got, want))


# ---- processes, temp dirs, cleanup ------------------------------------------

_procs = []
_tmpdirs = []
_closers = []


def _closers_run():
    for fn in reversed(_closers):
        try:
            fn()
        except Exception:
            pass
    _closers.clear()


def _cleanup():
    _closers_run()
    for p in list(_procs):  # stop() removes p from _procs
        stop(p)
    _procs.clear()
    for d in _tmpdirs:
        shutil.rmtree(d, ignore_errors=True)
    _tmpdirs.clear()


atexit.register(_cleanup)


def _on_signal(signum, frame):
    _cleanup()
    os._exit(128 + signum)


signal.signal(signal.SIGTERM, _on_signal)
signal.signal(signal.SIGHUP, _on_signal)


def tmpdir():
    d = tempfile.mkdtemp(prefix="ppfwd-it-")
    _tmpdirs.append(d)
    return d


def on_cleanup(fn):
    _closers.append(fn)


def spawn(argv, log_path, **kw):
    """Starts argv with stdout and stderr to log_path; the process is stopped
    at the end of the scenario at the latest."""
    log = open(log_path, "ab")
    try:
        p = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                             start_new_session=True, **kw)
    finally:
        log.close()
    p.log_path = log_path
    _procs.append(p)
    return p


def stop(p, sig=signal.SIGTERM, wait=5.0):
    """Stops p (its whole process group) and reaps it; SIGKILL after `wait`."""
    if p.poll() is None:
        try:
            os.killpg(p.pid, sig)
        except OSError:
            pass
        try:
            p.wait(wait)
        except subprocess.TimeoutExpired:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                pass
            p.wait(5)
    if p in _procs:
        _procs.remove(p)
    return p.returncode


def read_log(p):
    try:
        with open(p.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")
    except OSError:
        return ""


# ---- ports and waiting ------------------------------------------------------


# Ports handed out below the kernel's ephemeral range (32768-60999 by
# default): a port bind(0) returned is taken again by the next outgoing
# connection or UDP socket that wants an ephemeral one, and a test that
# listens on it later (a route added at a reload while clients run) loses
# the race now and then. Below the range only a listener can take it; and
# below bench/'s fixed ports (27100 and up), which a benchmark run beside
# the tests holds with SO_REUSEPORT, as ppfwd does: sharing one would mix
# the two runs' traffic.
_PORT_LOW, _PORT_HIGH = 10000, 26999
_ports_given = set()


def _bindable(fam, kind, host, port):
    s = socket.socket(fam, kind)
    try:
        s.bind((host, port))
        return True
    except OSError as e:
        if e.errno not in (errno.EADDRINUSE, errno.EACCES):
            raise
        return False
    finally:
        s.close()


def free_port(host=V4):
    """A port that was free for both TCP and UDP a moment ago, outside the
    ephemeral range, never the same twice in one run. Callers that lose a
    race with another program retry: see Ppfwd.start."""
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    rnd = random.Random(os.getpid() ^ time.monotonic_ns())
    for _ in range(200):
        port = rnd.randint(_PORT_LOW, _PORT_HIGH)
        if port in _ports_given:
            continue
        if _bindable(fam, socket.SOCK_STREAM, host, port) and \
                _bindable(fam, socket.SOCK_DGRAM, host, port):
            _ports_given.add(port)
            return port
    raise Fail("no free port on %s" % host)


def listening(port):
    """True when some socket listens on TCP port (any loopback address);
    read from /proc so that probing does not itself make a connection."""
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A" and int(parts[1].rsplit(":", 1)[1], 16) == port:
                        return True
        except OSError:
            pass
    return False


def wait_for(pred, timeout, what, step=0.02):
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= end:
            raise Fail("timed out after %.1fs waiting for %s" % (timeout, what))
        time.sleep(step)


def wait_listen(port, timeout=10.0, proc=None):
    def ready():
        if proc is not None and proc.poll() is not None:
            raise Fail("process exited with %s before listening on %d:\n%s"
                       % (proc.returncode, port, tail(read_log(proc))))
        return listening(port)

    wait_for(ready, timeout, "a listener on port %d" % port)


def tail(text, n=15):
    return "\n".join(text.splitlines()[-n:])


def hostport(host, port):
    return "[%s]:%d" % (host, port) if ":" in host else "%s:%d" % (host, port)


def fmt_addr(sa):
    """getsockname()/getpeername() -> 'IP:PORT' as INTERFACE.md writes it."""
    return hostport(sa[0], sa[1])


# ---- sockets ----------------------------------------------------------------


def connect(host, port, timeout=5.0):
    fam = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_STREAM)
    s.settimeout(timeout)
    s.connect((host, port))
    return s


def recv_all(s, timeout=5.0, limit=1 << 20):
    """Reads until EOF (or a reset, which counts as the end); raises Fail if
    the peer neither closes nor stops within timeout."""
    s.settimeout(timeout)
    out = b""
    end = time.monotonic() + timeout
    while len(out) <= limit:
        if time.monotonic() > end:
            raise Fail("no EOF within %.1fs (got %d bytes)" % (timeout, len(out)))
        try:
            d = s.recv(65536)
        except ConnectionResetError:
            return out
        except socket.timeout:
            raise Fail("no EOF within %.1fs (got %r)" % (timeout, out[:200]))
        if not d:
            return out
        out += d
    raise Fail("more than %d bytes" % limit)


def recv_line(s, timeout=5.0):
    s.settimeout(timeout)
    out = b""
    end = time.monotonic() + timeout
    while b"\n" not in out:
        if time.monotonic() > end:
            raise Fail("no line within %.1fs (got %r)" % (timeout, out))
        try:
            d = s.recv(4096)
        except socket.timeout:
            raise Fail("no line within %.1fs (got %r)" % (timeout, out))
        if not d:
            raise Fail("EOF before a line (got %r)" % out)
        out += d
        check(len(out) < 1 << 16, "line too long")
    return out


def expect_closed(s, timeout=3.0):
    """Asserts the proxy closes s (EOF or reset) within timeout without
    sending anything; returns the seconds it took."""
    t0 = time.monotonic()
    s.settimeout(timeout)
    try:
        d = s.recv(4096)
    except ConnectionResetError:
        return time.monotonic() - t0
    except socket.timeout:
        raise Fail("connection still open after %.1fs" % timeout)
    check(d == b"", "expected the connection closed, got data %r" % d[:100])
    return time.monotonic() - t0


# ---- PROXY protocol, written independently of the project's library ---------

V2_SIG = b"\r\n\r\n\x00\r\nQUIT\n"


def _crc32c_table():
    t = []
    for i in range(256):
        c = i
        for _ in range(8):
            c = (c >> 1) ^ 0x82F63B78 if c & 1 else c >> 1
        t.append(c)
    return t


_CRC_T = _crc32c_table()


def crc32c(data):
    c = 0xFFFFFFFF
    for b in data:
        c = _CRC_T[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ 0xFFFFFFFF


def v1(src, dst, fam=None):
    """PROXY v1 line; src and dst are (ip, port)."""
    fam = fam or ("TCP6" if ":" in src[0] else "TCP4")
    return ("PROXY %s %s %s %d %d\r\n" % (fam, src[0], dst[0], src[1], dst[1])).encode()


def v2(src, dst, tlvs=(), local=False, crc=False):
    """PROXY v2 header over TCP; tlvs is a list of (type, bytes)."""
    six = ":" in src[0]
    if local:
        addr, fam = b"", 0x00
    elif six:
        addr = (socket.inet_pton(socket.AF_INET6, src[0]) + socket.inet_pton(socket.AF_INET6, dst[0])
                + struct.pack("!HH", src[1], dst[1]))
        fam = 0x21
    else:
        addr = (socket.inet_aton(src[0]) + socket.inet_aton(dst[0]) + struct.pack("!HH", src[1], dst[1]))
        fam = 0x11
    body = addr + b"".join(struct.pack("!BH", t, len(v)) + v for t, v in tlvs)
    if crc:
        body += struct.pack("!BH", 3, 4) + b"\0\0\0\0"
    h = V2_SIG + bytes([0x20 if local else 0x21, fam]) + struct.pack("!H", len(body)) + body
    if crc:
        h = h[:-4] + struct.pack("!I", crc32c(h))
    return h


def parse_header(buf):
    """Parses a complete PROXY header at the start of buf; returns (dict,
    length). dict: version, command, src, dst (tuples or None), tlvs (list of
    (type, bytes)), crc_ok (None when there is no CRC32C TLV)."""
    if buf.startswith(b"PROXY "):
        n = buf.find(b"\r\n")
        check(0 < n <= 105, "bad v1 line %r" % buf[:110])
        f = buf[:n].decode().split(" ")
        if f[1] == "UNKNOWN":
            return {"version": 1, "command": "local", "src": None, "dst": None, "tlvs": [],
                    "crc_ok": None}, n + 2
        check(len(f) == 6 and f[1] in ("TCP4", "TCP6"), "bad v1 line %r" % buf[:n])
        return {"version": 1, "command": "proxy", "family": f[1].lower(), "src": (f[2], int(f[4])),
                "dst": (f[3], int(f[5])), "tlvs": [], "crc_ok": None}, n + 2
    check(buf.startswith(V2_SIG) and len(buf) >= 16, "no PROXY header in %r" % buf[:32])
    ln = struct.unpack("!H", buf[14:16])[0]
    check(len(buf) >= 16 + ln, "truncated v2 header")
    hdr, body = buf[:16 + ln], buf[16:16 + ln]
    cmd = buf[12] & 0x0F
    fam = buf[13]
    r = {"version": 2, "command": "proxy" if cmd == 1 else "local", "src": None, "dst": None}
    if fam == 0x11:
        r["src"] = (socket.inet_ntoa(body[0:4]), struct.unpack("!H", body[8:10])[0])
        r["dst"] = (socket.inet_ntoa(body[4:8]), struct.unpack("!H", body[10:12])[0])
        r["family"], p = "tcp4", 12
    elif fam == 0x21:
        r["src"] = (socket.inet_ntop(socket.AF_INET6, body[0:16]), struct.unpack("!H", body[32:34])[0])
        r["dst"] = (socket.inet_ntop(socket.AF_INET6, body[16:32]), struct.unpack("!H", body[34:36])[0])
        r["family"], p = "tcp6", 36
    else:
        r["family"], p = "unspec", len(body) if fam == 0 else None
        check(p is not None, "unexpected v2 family byte %#x" % fam)
    tlvs, crc_ok = [], None
    while p < len(body):
        check(len(body) - p >= 3, "truncated TLV")
        t, n = body[p], struct.unpack("!H", body[p + 1:p + 3])[0]
        check(len(body) - p - 3 >= n, "truncated TLV value")
        v = body[p + 3:p + 3 + n]
        if t == 3:
            check(n == 4, "crc32c TLV of %d bytes" % n)
            zeroed = hdr[:16 + p + 3] + b"\0\0\0\0" + hdr[16 + p + 7:]
            crc_ok = struct.unpack("!I", v)[0] == crc32c(zeroed)
        tlvs.append((t, v))
        p += 3 + n
    r["tlvs"], r["crc_ok"] = tlvs, crc_ok
    return r, 16 + ln


def header_len_available(buf):
    """Bytes of a PROXY header at the start of buf once it is complete, else 0."""
    if buf.startswith(b"PROXY"):
        n = buf.find(b"\r\n")
        return n + 2 if n >= 0 else 0
    if len(buf) >= 16 and buf.startswith(V2_SIG):
        n = 16 + struct.unpack("!H", buf[14:16])[0]
        return n if len(buf) >= n else 0
    return 0


# ---- ppfwd ------------------------------------------------------------------


_daemons = []

SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer", "runtime error:")


def _sanitizer_report(text):
    for m in SANITIZER_MARKS:
        i = text.find(m)
        if i >= 0:
            return text[max(0, i - 200):i + 1500]
    return None


def check_daemons_exit():
    """Ends every ppfwd of the scenario with SIGTERM: each must exit 0 within
    its drain time, and no sanitizer may have reported anything."""
    errs = []
    for d in _daemons:
        if d.p is None:
            continue
        crashed = d.p.poll()
        rc = stop(d.p, signal.SIGTERM, wait=12.0)
        rep = _sanitizer_report(d.log_text())
        if rep:
            errs.append("ppfwd pid %d sanitizer report:\n%s" % (d.p.pid, rep))
        elif crashed is not None and crashed != 0:
            errs.append("ppfwd pid %d had exited with %s during the scenario; log tail:\n%s"
                        % (d.p.pid, crashed, tail(d.log_text())))
        elif rc != 0:
            errs.append("ppfwd pid %d exited with %s after SIGTERM; log tail:\n%s"
                        % (d.p.pid, rc, tail(d.log_text())))
    _daemons.clear()
    if errs:
        raise Fail("\n".join(errs))


class Ppfwd:
    """One ppfwd process with JSON logs in a temp file. wrap: a command
    that runs ppfwd (its arguments go first), such as build/no_uring."""

    def __init__(self, routes, workers=2, extra=(), nofile=None, wrap=()):
        self.routes, self.workers, self.extra = routes, workers, list(extra)
        self.nofile = nofile
        self.wrap = list(wrap)
        self.dir = tmpdir()
        self.log_path = os.path.join(self.dir, "ppfwd.log")
        self.p = None
        _daemons.append(self)

    def start(self, ports, timeout=10.0):
        argv = self.wrap + [PPFWD, "--log-format", "json", "-l", "debug", "-w",
                            str(self.workers)] + self.extra + list(self.routes)
        pre = None
        if self.nofile:
            n = self.nofile

            def pre():
                resource.setrlimit(resource.RLIMIT_NOFILE, (n, n))
        self.p = spawn(argv, self.log_path, env=dict(os.environ, ASAN_OPTIONS=os.environ.get(
            "ASAN_OPTIONS", "detect_leaks=1:abort_on_error=1")), preexec_fn=pre)
        for port in ports:
            wait_listen(port, timeout, self.p)
        # A port answers once the first worker listens; route_start comes
        # after every worker is up (an fd baseline taken earlier is short).
        wait_for(lambda: '"route_start"' in self.log_text() or not self.alive(), timeout,
                 "route_start logged", step=0.02)
        return self

    @property
    def pid(self):
        return self.p.pid

    def alive(self):
        return self.p is not None and self.p.poll() is None

    def stop(self):
        if self.p is None:
            return None
        rc = stop(self.p)
        return rc

    def log_text(self):
        return read_log(self.p)

    def events(self, name=None):
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if name is None or e.get("msg") == name or e.get("event") == name:
                out.append(e)
        return out

    def wait_event(self, name, pred=lambda e: True, timeout=5.0, count=1):
        def got():
            evs = [e for e in self.events(name) if pred(e)]
            return evs if len(evs) >= count else None

        try:
            return wait_for(got, timeout, "%d %s log line(s)" % (count, name), step=0.05)
        except Fail as e:
            raise Fail("%s; log tail:\n%s" % (e, tail(self.log_text())))

    def fd_kinds(self):
        """(non-pipe fds, pipe fds) of the daemon, from /proc/PID/fd."""
        d = "/proc/%d/fd" % self.p.pid
        other = pipes = 0
        try:
            names = os.listdir(d)
        except OSError:
            raise Fail("ppfwd (pid %d) is gone, exit %s; log tail:\n%s"
                       % (self.p.pid, self.p.poll(), tail(self.log_text())))
        for n in names:
            try:
                target = os.readlink(os.path.join(d, n))
            except OSError:
                continue  # closed meanwhile
            if target.startswith("pipe:"):
                pipes += 1
            else:
                other += 1
        return other, pipes

    def fds(self):
        return self.fd_kinds()

    def wait_fds(self, baseline, timeout=5.0):
        """Waits until the daemon holds no more sockets (and other non-pipe
        fds) than at `baseline`. Pipes are counted apart: each worker keeps
        up to PIPE_CACHE (64, src/engine/relay.h) empty pipe pairs for reuse
        by design, so they may stay above the baseline by that much, no more."""
        cap = baseline[1] + PIPE_CACHE_FDS * self.workers

        def ok():
            other, pipes = self.fd_kinds()
            return other <= baseline[0] and pipes <= cap

        try:
            wait_for(ok, timeout, "fds back to baseline", step=0.05)
        except Fail:
            other, pipes = self.fd_kinds()
            raise Fail("fd leak? %d non-pipe fds (baseline %d), %d pipe fds (baseline %d, cap %d)"
                       % (other, baseline[0], pipes, baseline[1], cap))


# Two fds per cached pipe, PIPE_CACHE (src/engine/relay.h) pipes per worker.
PIPE_CACHE_FDS = 2 * 64


def start_ppfwd(make_routes, nports, workers=2, extra=(), hosts=None, attempts=5, nofile=None,
                wrap=()):
    """Starts ppfwd on fresh ports: make_routes(ports) -> route URLs. Retries
    with new ports when one of them was taken meanwhile (the race of
    free_port)."""
    last = None
    for _ in range(attempts):
        hs = hosts or [V4] * nports
        ports = [free_port(h) for h in hs]
        d = Ppfwd(make_routes(ports), workers, extra, nofile, wrap)
        try:
            d.start(ports)
            return d, ports
        except Fail as e:
            last = e
            d.stop()
            if d in _daemons:
                _daemons.remove(d)
            if "in use" not in d.log_text().lower():
                raise
    raise last


def whoami(host=V4, mode="required", extra=()):
    """Starts `ppfwd whoami` on a fresh port; returns (process, port)."""
    d = tmpdir()
    for _ in range(5):
        port = free_port(host)
        p = spawn([PPFWD, "whoami", "--accept-proxy=" + mode] + list(extra) + [hostport(host, port)],
                  os.path.join(d, "whoami.log"))
        try:
            wait_listen(port, 10, p)
            return p, port
        except Fail:
            stop(p)
            if "in use" not in read_log(p).lower():
                raise
    raise Fail("whoami did not start")


def sha256(b):
    return hashlib.sha256(b).hexdigest()


def rand_bytes(n, seed):
    return random.Random(seed).randbytes(n)


# ---- running scenarios -------------------------------------------------------

_scenarios = []


def scenario(fn):
    _scenarios.append(fn)
    return fn


def _alarm(signum, frame):
    raise ScenarioTimeout("scenario took longer than %ds" % SCENARIO_SECONDS)


def run():
    """Runs the scenarios named on the command line (default all); prints
    PASS/FAIL/SKIP lines and returns the exit status."""
    want = set(sys.argv[1:])
    if not (os.path.isfile(PPFWD) and os.access(PPFWD, os.X_OK)):
        print("FAIL: %s is not an executable (set PPFWD)" % PPFWD)
        return 1
    signal.signal(signal.SIGALRM, _alarm)
    failed = passed = skipped = 0
    for fn in _scenarios:
        if want and fn.__name__ not in want:
            continue
        t0 = time.monotonic()
        signal.alarm(SCENARIO_SECONDS)
        try:
            fn()
            _closers_run()
            check_daemons_exit()
            ok, why = True, ""
        except Skip as e:
            ok, why = None, str(e)
        except (Fail, ScenarioTimeout, AssertionError) as e:
            ok, why = False, str(e)
        except Exception:
            ok, why = False, traceback.format_exc()
        finally:
            signal.alarm(0)
            _daemons.clear()
            _cleanup()
        dt = time.monotonic() - t0
        if ok is None:
            skipped += 1
            print("SKIP: %s: %s" % (fn.__name__, why), flush=True)
        elif ok:
            passed += 1
            print("PASS: %s (%.1fs)" % (fn.__name__, dt), flush=True)
        else:
            failed += 1
            print("FAIL: %s (%.1fs): %s" % (fn.__name__, dt, why), flush=True)
    print("%d passed, %d failed%s" % (passed, failed, ", %d skipped" % skipped if skipped else ""),
          flush=True)
    return 1 if failed else 0


# The backends live in backends.py (imported last: it uses the names above).
from backends import (EchoServer, Server, UdpRecorder, capture_handler,  # noqa: E402,F401
                      echo_handler)
