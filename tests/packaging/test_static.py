"""The static ppfwd (`make static`: musl, libyaml built with musl-gcc) and
host-name resolution where there is no /etc and no NSS module: the binary
alone in a root of its own (chroot, as the image's user 65532), in a
network namespace of the test's own so that port 53 of 127.0.0.1 is ours.

- with no /etc at all, musl asks the DNS server on 127.0.0.1:53 (its default
  when /etc/resolv.conf is missing): a fake one there answers, and an upstream
  given by name is reached; an unknown name is refused, naming the key;
- with the image's /etc/hosts (dist/container/hosts) plus an entry, names
  resolve from the file and no DNS question is asked;
- with an /etc/resolv.conf (what Docker, Podman and Kubernetes mount), its
  nameserver is asked, and 127.0.0.1:53 is not.

SKIP (with the reason) without musl-gcc (musl-tools), root, or unshare -n.
"""

import os
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from harness import (ROOT, V4, V6, Fail, Skip, check, eq, free_port, on_cleanup,  # noqa: E402
                     run, scenario, tail)
from netns import lo_up, own_netns  # noqa: E402
from fakedns import QTYPE_A, FakeDNS  # noqa: E402
from rootfs import (ask, bare_root, check_proxied, run_in, spawn_in, stop_clean,  # noqa: E402
                    whoami_in, why_no_chroot)

ENV_NS = "PPFWD_STATIC_TEST_HOST_NETNS"
STATIC = os.path.join(ROOT, "build/static/ppfwd")
STATE = {"skip": None, "fail": None}


def build():
    """make static, once, in the caller's namespace (the first build fetches
    libyaml's Debian source). Sets STATE."""
    if subprocess.run(["sh", "-c", "command -v musl-gcc"], capture_output=True).returncode:
        STATE["skip"] = "musl-gcc not installed (musl-tools; scripts/deps.sh test installs it)"
        return
    r = subprocess.run(["make", "-s", "static"], cwd=ROOT, capture_output=True, text=True,
                       timeout=400)
    if r.returncode != 0:
        STATE["fail"] = "make static failed:\n%s" % tail(r.stdout + r.stderr, 30)


def ready():
    if STATE["fail"]:
        raise Fail(STATE["fail"])
    if STATE["skip"]:
        raise Skip(STATE["skip"])
    check(os.access(STATIC, os.X_OK), "%s missing after make static" % STATIC)


def dns(table, host=V4):
    d = FakeDNS(table, host)
    on_cleanup(d.close)
    return d


def names_asked(d):
    return sorted({name for name, _ in d.questions()})


@scenario
def static_binary_has_no_dynamic_parts():
    ready()
    prog = subprocess.run(["readelf", "-l", "-d", STATIC], capture_output=True, text=True,
                          check=True).stdout
    check("INTERP" not in prog, "the static ppfwd asks for a program interpreter:\n%s" % prog)
    check("NEEDED" not in prog, "the static ppfwd needs shared libraries:\n%s" % prog)
    size = os.path.getsize(STATIC)
    check(size < 2 << 20, "static ppfwd is %d bytes (over 2 MiB)" % size)
    root = bare_root(STATIC)
    r = run_in(root, ["--version"])
    eq(r.returncode, 0, "--version in an empty root (stderr %r)" % r.stderr)
    check(r.stdout.startswith("ppfwd "), "--version: %r" % r.stdout)
    # The YAML parser is in the binary: check -c reads a config in that root.
    cfg = "routes:\n  r:\n    listen: tcp://127.0.0.1:7000\n    upstream: 127.0.0.1:7001\n"
    root = bare_root(STATIC, {"/c.yaml": cfg})
    r = run_in(root, ["check", "-c", "/c.yaml"])
    eq(r.returncode, 0, "check -c in an empty root (stderr %r)" % r.stderr)


@scenario
def static_no_etc_asks_127_0_0_1():
    ready()
    d = dns({"backend.test": [V4]})
    root = bare_root(STATIC)
    check(not os.path.exists(os.path.join(root, "etc")), "the root has an /etc")
    wport, pport = free_port(), free_port()
    w = whoami_in(root, wport)
    p = spawn_in(root, ["-w", "1", "tcp://%s:%d/backend.test:%d?send-proxy=v2" % (V4, pport, wport)],
                 pport, "ppfwd")
    check_proxied(ask(pport))
    check(("backend.test", QTYPE_A) in d.questions(), "DNS questions: %r" % d.questions())
    stop_clean(p, "ppfwd")
    stop_clean(w, "whoami")
    # A name the server does not know: refused at start, naming route and key.
    r = run_in(root, ["-w", "1", "tcp://%s:%d/nosuch.test:%d" % (V4, pport, wport)])
    eq(r.returncode, 1, "exit with an unknown upstream host (stderr %r)" % r.stderr)
    check("cannot resolve" in r.stderr and "upstream" in r.stderr, "message: %r" % r.stderr)
    check("nosuch.test" in names_asked(d), "DNS questions: %r" % d.questions())


@scenario
def static_hosts_file_needs_no_dns():
    ready()
    d = dns({"backend.hosts": ["127.0.0.9"]})  # would be a wrong answer
    hosts = open(os.path.join(ROOT, "dist/container/hosts")).read()
    root = bare_root(STATIC, {"/etc/hosts": hosts + "127.0.0.1\tbackend.hosts\n"})
    wport, w6port, p1, p2 = free_port(), free_port(V6), free_port(), free_port()
    w = whoami_in(root, wport)
    # localhost is ::1 first (the image's hosts file has both; RFC 6724
    # order), and ppfwd takes the first address.
    w6 = whoami_in(root, w6port, V6)
    p = spawn_in(root, ["-w", "1", "tcp://%s:%d/backend.hosts:%d?send-proxy=v2" % (V4, p1, wport),
                        "tcp://%s:%d/localhost:%d?send-proxy=v2" % (V4, p2, w6port)], p1, "ppfwd")
    check_proxied(ask(p1))
    a = ask(p2)
    check_proxied(a)
    check(a["local"].startswith("[::1]:"), "localhost upstream: %r" % a)
    eq(names_asked(d), [], "DNS questions while /etc/hosts has the names")
    stop_clean(p, "ppfwd")
    stop_clean(w, "whoami")
    stop_clean(w6, "whoami ::1")


@scenario
def static_resolv_conf_is_honoured():
    ready()
    default = dns({"backend.test": ["127.0.0.9"]})  # would be a wrong answer
    mounted = dns({"backend.test": [V4]}, "127.0.0.2")
    root = bare_root(STATIC, {"/etc/resolv.conf": "nameserver 127.0.0.2\noptions timeout:2\n"})
    wport, pport = free_port(), free_port()
    w = whoami_in(root, wport)
    p = spawn_in(root, ["-w", "1", "tcp://%s:%d/backend.test:%d?send-proxy=v2" % (V4, pport, wport)],
                 pport, "ppfwd")
    check_proxied(ask(pport))
    eq(names_asked(mounted), ["backend.test"], "questions to the resolv.conf nameserver")
    eq(names_asked(default), [], "questions to 127.0.0.1:53")
    stop_clean(p, "ppfwd")
    stop_clean(w, "whoami")


def main():
    if os.environ.get(ENV_NS) is None:
        build()
    if STATE["skip"] is None and STATE["fail"] is None:
        why = why_no_chroot() or own_netns(
            ENV_NS, "not root (chroot, and a DNS server on 127.0.0.1:53 in a network namespace "
            "of the test's own)")
        if why is None:
            why = lo_up()
        if why is not None:
            STATE["skip"] = why
    return run()


if __name__ == "__main__":
    sys.exit(main())
