"""Network namespaces for the integration scenarios that need more than one
host (python3 stdlib only): test_mmproxy.py, test_udp_gso.py and
test_transparent.py.

A test file calls own_netns() first thing in main(): the first process checks
that this machine can make namespaces (root, unshare(1), nsenter(1), ip(8)
and whatever else the file names) and re-executes the file under
`unshare -n`, with the caller's namespace in an environment variable; the
re-executed one checks that it is in a namespace of its own before it returns,
and prints FAIL and exits otherwise, so that nothing here ever changes the
routing, addresses or links of the namespace the tests were started in. When
the machine cannot, own_netns() returns why, and the file SKIPs with that
reason the scenarios that need it.

In the fresh namespace a scenario joins a second one to it with veth_netns()
(a veth pair, addresses on both ends; the pair is deleted and the process
that holds the second namespace killed at the end of the scenario) and makes
its sockets there with sockets_in_netns(). Commands run through sh() and
must(), every one bounded in time; every wait is bounded.
"""

import ctypes
import os
import shutil
import socket
import subprocess
import sys

from harness import Fail, Skip, check, on_cleanup, read_log, spawn, tmpdir, wait_for

UNSHARE = shutil.which("unshare") or "/usr/bin/unshare"
NSENTER = shutil.which("nsenter") or "/usr/bin/nsenter"
IP = shutil.which("ip") or "/usr/sbin/ip"

CLONE_NEWNET = 0x40000000


def netns_of(pid="self"):
    """The network namespace of pid, as /proc names it ("net:[N]")."""
    return os.readlink("/proc/%s/ns/net" % pid)


def sh(argv, timeout=10):
    """Runs a short command; returns (ok, its output)."""
    try:
        r = subprocess.run(argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, timeout=timeout)
    except (OSError, subprocess.TimeoutExpired) as e:
        return False, repr(e)
    return r.returncode == 0, r.stdout.decode("utf-8", "replace").strip()


def must(argv, timeout=10):
    """sh(), and Fail when the command fails; returns its output."""
    ok, out = sh(argv, timeout)
    if not ok:
        raise Fail("%s: %s" % (" ".join(argv), out))
    return out


def why_no_netns(not_root, tools=()):
    """Why this machine cannot run the namespace scenarios, or None.
    not_root: the reason when not root; tools: (what, path) of the
    executables needed besides unshare, nsenter and ip."""
    if os.geteuid() != 0:
        return not_root
    for what, path in ((("unshare (util-linux)", UNSHARE), ("nsenter (util-linux)", NSENTER),
                        ("ip (iproute2)", IP)) + tuple(tools)):
        if not os.access(path, os.X_OK):
            return "%s not found" % what
    ok, out = sh([UNSHARE, "-n", "true"])
    if not ok:
        return "unshare -n refused: %s" % (out or "no message")
    return None


def own_netns(env_name, not_root, tools=()):
    """Puts the running test file in a network namespace of its own.

    First process (env_name unset): when why_no_netns(not_root, tools) gives
    a reason, returns it (the caller SKIPs what needs the namespace and runs
    the rest here); else re-executes the file, with the same arguments, under
    `unshare -n`, with env_name set to this namespace, and does not return.
    Re-executed process: returns None once it is sure it is no longer in the
    caller's namespace; when it still is, prints FAIL and exits 1 before
    anything touches that namespace."""
    if os.environ.get(env_name) is None:
        why = why_no_netns(not_root, tools)
        if why is not None:
            return why
        env = dict(os.environ, **{env_name: netns_of()})
        sys.stdout.flush()
        sys.stderr.flush()
        script = os.path.abspath(sys.modules["__main__"].__file__)
        os.execve(UNSHARE, [UNSHARE, "-n", sys.executable, script] + sys.argv[1:], env)
    if netns_of() == os.environ[env_name]:
        print("FAIL: still in the netns of the caller after unshare -n; "
              "not touching its network configuration", flush=True)
        sys.exit(1)
    return None


def lo_up():
    """Brings loopback of this namespace up; returns None, or why it could not."""
    ok, out = sh([IP, "link", "set", "lo", "up"])
    return None if ok else "ip link set lo up: %s" % out


# ---- a second namespace --------------------------------------------------------

_veth_seq = [0]


def ip_in(holder):
    """The argv prefix that runs ip(8) in holder's namespace."""
    return [NSENTER, "-t", str(holder.pid), "-n", IP]


def veth_netns(fam, names, here, there, plen, what, mtu=None, hold=120):
    """A second namespace, joined to this one by a veth pair: this end is
    names[0] + N with the addresses here, the other names[1] + N with the
    addresses there (all /plen, of family fam: 4 or 6), both up, and the
    other namespace's loopback up; mtu, when given, on both ends. what names
    the namespace in a timeout. Raises Skip when the kernel makes no veth.
    Returns (the process that holds the namespace, this end, the other end);
    it sleeps hold seconds, and is killed at the end of the scenario."""
    d = tmpdir()
    holder = spawn([UNSHARE, "-n", "sleep", str(hold)], os.path.join(d, "holder.log"))
    mine = netns_of()
    wait_for(lambda: holder.poll() is not None or netns_of(holder.pid) != mine, 5,
             "unshare -n of %s" % what)
    check(holder.poll() is None, "unshare -n sleep exited: %s" % read_log(holder))
    _veth_seq[0] += 1
    dev, peer = "%s%d" % (names[0], _veth_seq[0]), "%s%d" % (names[1], _veth_seq[0])
    m = [] if mtu is None else ["mtu", str(mtu)]
    ok, out = sh([IP, "link", "add", dev] + m + ["type", "veth", "peer", "name", peer] + m
                 + ["netns", str(holder.pid)])
    if not ok:
        raise Skip("cannot make a veth pair (%s)" % out)
    on_cleanup(lambda: sh([IP, "link", "del", dev]))
    nodad = ["nodad"] if fam == 6 else []
    v = "-%d" % fam
    for a in here:
        must([IP, v, "addr", "add", "%s/%d" % (a, plen), "dev", dev] + nodad)
    must([IP, "link", "set", dev, "up"])
    inside = ip_in(holder)
    for a in there:
        must(inside + [v, "addr", "add", "%s/%d" % (a, plen), "dev", peer] + nodad)
    must(inside + ["link", "set", peer, "up"])
    must(inside + ["link", "set", "lo", "up"])
    return holder, dev, peer


_libc = ctypes.CDLL(None, use_errno=True)


def _setns(fd):
    if _libc.setns(fd, CLONE_NEWNET) != 0:
        e = ctypes.get_errno()
        raise OSError(e, "setns: %s" % os.strerror(e))


def sockets_in_netns(pid, addrs, what):
    """UDP sockets bound to addrs (port 0) in the network namespace of pid:
    the calling thread joins it for the socket() calls only, and the sockets
    keep that namespace once the thread is back. Fail, naming what, when
    one cannot be made. The caller closes them."""
    mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    other = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY)
    socks = []
    try:
        _setns(other)
        try:
            for a in addrs:
                s = socket.socket(socket.AF_INET6 if ":" in a else socket.AF_INET,
                                  socket.SOCK_DGRAM)
                socks.append(s)
                s.bind((a, 0))
        finally:
            _setns(mine)
    except OSError as e:
        for s in socks:
            s.close()
        raise Fail("%s: %s" % (what, e))
    finally:
        os.close(mine)
        os.close(other)
    return socks


def tcp_socket_in_netns(pid, fam, what):
    """An unbound TCP socket of family fam made in the network namespace
    of pid (as sockets_in_netns does); Fail, naming what, when it cannot be
    made. The caller binds, connects and closes it."""
    mine = os.open("/proc/thread-self/ns/net", os.O_RDONLY)
    other = os.open("/proc/%d/ns/net" % pid, os.O_RDONLY)
    try:
        _setns(other)
        try:
            return socket.socket(fam, socket.SOCK_STREAM)
        finally:
            _setns(mine)
    except OSError as e:
        raise Fail("%s: %s" % (what, e))
    finally:
        os.close(mine)
        os.close(other)


# ---- UDP ports of this namespace -------------------------------------------------


def udp_port(host):
    """A free UDP port on host (bind port 0, read it, close). Alone in a
    namespace it stays free until used; on the host's loopback the caller
    retries when it lost the port."""
    s = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((host, 0))
        return s.getsockname()[1]
    finally:
        s.close()


def bound_udp(host, port):
    """True when a UDP socket of this namespace is bound to port (of host's
    family); read from /proc, so that probing never holds the port itself."""
    name = "/proc/net/udp6" if ":" in host else "/proc/net/udp"
    with open(name) as f:
        next(f)
        for line in f:
            if int(line.split()[1].rsplit(":", 1)[1], 16) == port:
                return True
    return False
