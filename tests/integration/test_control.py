#!/usr/bin/python3
"""Reloads run off the signal thread: a config that takes seconds to load
never delays SIGTERM; SIGHUPs during a reload give exactly one more; a
reload still loading when the stop comes is discarded when its load ends.

The slow load is made exact with a FIFO renamed over the config file: the
reload's open(2) waits until the test writes the config into it, as a
read from a hung network file system would.
Run: /usr/bin/python3 tests/integration/test_control.py [SCENARIO...]"""

import errno
import os
import signal
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (V4, EchoServer, Fail, Ppfwd, check, connect, eq, free_port,  # noqa: E402
                     run, scenario, tmpdir, wait_for)


def config_text(routes):
    """routes: {name: (listen_port, upstream_port)}"""
    lines = ["routes:"]
    for name, (lp, up) in routes.items():
        lines += ["  %s:" % name, "    listen: tcp://127.0.0.1:%d" % lp,
                  "    upstream: 127.0.0.1:%d" % up]
    return "\n".join(lines) + "\n"


def start(routes, ports):
    path = os.path.join(tmpdir(), "ppfwd.yaml")
    with open(path, "w") as f:
        f.write(config_text(routes))
    d = Ppfwd([], workers=2, extra=["-c", path])
    d.start(ports)
    return d, path


def make_slow(path):
    """From now on, loading path waits for feed()."""
    fifo = path + ".fifo"
    os.mkfifo(fifo)
    os.rename(fifo, path)


def reader_waiting(path):
    """True when a reload has the FIFO open and waits for its bytes."""
    try:
        fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
    except OSError as e:
        if e.errno == errno.ENXIO:  # no reader
            return False
        raise
    os.close(fd)  # the reader sees EOF: an empty config, refused
    return True


def feed(path, text, timeout=5.0):
    """Waits for a reload to open the FIFO, then gives it text."""
    end = time.monotonic() + timeout
    while True:
        try:
            fd = os.open(path, os.O_WRONLY | os.O_NONBLOCK)
            break
        except OSError as e:
            if e.errno != errno.ENXIO:
                raise
        if time.monotonic() > end:
            raise Fail("no reload opened the config within %.1fs" % timeout)
        time.sleep(0.02)
    os.set_blocking(fd, True)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def wait_reading(d):
    """Waits until a thread of d is inside the load. The probe must not open
    the write side (that would end the load), so it reads where the threads
    sleep in the kernel: an open(2) of a FIFO waits in wait_for_partner."""
    def blocked():
        for tid in os.listdir("/proc/%d/task" % d.pid):
            try:
                with open("/proc/%d/task/%s/wchan" % (d.pid, tid)) as f:
                    if f.read().strip() == "wait_for_partner":
                        return True
            except OSError:
                pass  # the thread ended meanwhile
        return None
    wait_for(blocked, 5, "a reload waiting on the slow config")


@scenario
def sigterm_during_slow_reload_exits_at_once():
    echo = EchoServer()
    pa = free_port()
    d, path = start({"a": (pa, echo.port)}, [pa])
    make_slow(path)
    d.p.send_signal(signal.SIGHUP)
    wait_reading(d)
    t0 = time.monotonic()
    d.p.send_signal(signal.SIGTERM)
    try:
        rc = d.p.wait(timeout=5)
    except Exception:
        raise Fail("ppfwd still running 5 s after SIGTERM, behind a reload that waits")
    dt = time.monotonic() - t0
    eq(rc, 0, "exit status")
    check(dt < 2.0, "exit took %.2fs after SIGTERM (want < 2 s)" % dt)
    check(d.events("reload_abandoned"), "reload_abandoned logged")
    echo.close()


@scenario
def sighups_during_a_reload_coalesce_into_one():
    echo = EchoServer()
    pa, pb, pc = free_port(), free_port(), free_port()
    d, path = start({"a": (pa, echo.port)}, [pa])
    make_slow(path)
    d.p.send_signal(signal.SIGHUP)
    wait_reading(d)
    for _ in range(5):
        d.p.send_signal(signal.SIGHUP)
    time.sleep(0.3)  # the signals arrive and are recorded meanwhile
    feed(path, config_text({"a": (pa, echo.port), "b": (pb, echo.port)}))
    first = d.wait_event("reload")[0]
    eq((first.get("added"), first.get("trigger")), (1, "SIGHUP"), "first reload")
    # The five SIGHUPs during it give one more reload, which reads again.
    feed(path, config_text({"a": (pa, echo.port), "b": (pb, echo.port), "c": (pc, echo.port)}))
    second = d.wait_event("reload", count=2)[1]
    eq(second.get("added"), 1, "second reload adds c")
    time.sleep(1.0)
    check(not reader_waiting(path), "a third reload was started")
    eq(len(d.events("reload")), 2, "reloads")
    for port in (pa, pb, pc):
        s = connect(V4, port)
        s.sendall(b"x")
        eq(s.recv(1), b"x", "route on %d serves" % port)
        s.close()
    echo.close()


@scenario
def reload_loading_at_stop_is_discarded():
    echo = EchoServer()
    pa, pb = free_port(), free_port()
    d, path = start({"a": (pa, echo.port)}, [pa])
    held = connect(V4, pa)  # keeps the drain going while the load ends
    held.sendall(b"h")
    eq(held.recv(1), b"h", "held connection")
    make_slow(path)
    d.p.send_signal(signal.SIGHUP)
    wait_reading(d)
    d.p.send_signal(signal.SIGTERM)
    d.wait_event("stopping")
    feed(path, config_text({"a": (pa, echo.port), "b": (pb, echo.port)}))
    ev = d.wait_event("reload_discarded")[0]
    eq(ev.get("reason"), "stopping", "reload_discarded reason")
    check(not d.events("reload"), "the stopped server applied the reload")
    held.sendall(b"still")
    eq(held.recv(5), b"still", "the held connection relays while draining")
    held.close()
    eq(d.p.wait(timeout=10), 0, "exit status")
    echo.close()


if __name__ == "__main__":
    sys.exit(run())
