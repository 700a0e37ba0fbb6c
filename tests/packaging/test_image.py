"""The container image (Containerfile, `make image`), tried the way a
container runtime would run it, without running a container (these build
machines cannot): `make image IMAGE_BIN=host` builds it with podman, then
`podman image mount` exposes its root, and the image's own ENTRYPOINT + CMD
run there under chroot as the image's USER, in a network namespace of the
test's own (the default config listens on 0.0.0.0:8080 and :9100):

- the image holds the static ppfwd, its default config and /etc/hosts, and
  nothing else; a numeric non-root USER; a few hundred KB;
- --version, and `check -c` on the default config;
- the default config live: a client behind a PROXY v2 load balancer reaches
  `ppfwd whoami` (from the image too) on 127.0.0.1:8081 with its real
  address; a client without a header is refused; /metrics answers on :9100;
- a route given as a URL (`docker run IMAGE URL`) to an upstream by name.

SKIP (with the reason) without podman, root or unshare -n.
"""

import atexit
import json
import os
import shutil
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "integration"))
sys.path.insert(0, HERE)

from harness import (ROOT, V4, V6, Fail, Skip, check, connect, eq, expect_closed,  # noqa: E402
                     free_port, recv_all, run, scenario, spawn, tail, tmpdir, v2, wait_listen,
                     read_log)
from netns import lo_up, own_netns  # noqa: E402
from rootfs import CHROOT, ask, check_proxied, stop_clean, whoami_in, why_no_chroot  # noqa: E402

ENV_NS = "PPFWD_IMAGE_TEST_HOST_NETNS"
IMAGE = "localhost/ppfwd-test:%d" % os.getpid()
STATE = {"skip": None, "fail": None, "root": None, "config": None}


def podman(*args, timeout=120):
    return subprocess.run(["podman"] + list(args), capture_output=True, text=True,
                          timeout=timeout)


def build():
    """make image (from the host-built static binary: no registry needed),
    once, in the caller's namespace. Sets STATE."""
    if shutil.which("podman") is None:
        STATE["skip"] = "podman not installed (scripts/deps.sh test installs it)"
        return
    if shutil.which("musl-gcc") is None:
        STATE["skip"] = "musl-gcc not installed (musl-tools; scripts/deps.sh test installs it)"
        return
    if os.geteuid() != 0:
        STATE["skip"] = "not root (podman image mount and chroot need it)"
        return
    r = subprocess.run(["make", "-s", "image", "IMAGE=" + IMAGE, "IMAGE_BIN=host"], cwd=ROOT,
                       capture_output=True, text=True, timeout=400)
    if r.returncode != 0:
        STATE["fail"] = "make image failed:\n%s" % tail(r.stdout + r.stderr, 30)


def remove_image():
    podman("image", "unmount", IMAGE)
    podman("rmi", "-f", IMAGE)


def mount():
    """Mounts the image (in the namespace that runs the scenarios)."""
    atexit.register(remove_image)
    r = podman("image", "mount", IMAGE)
    if r.returncode != 0:
        STATE["fail"] = "podman image mount: %s" % r.stderr
        return
    STATE["root"] = r.stdout.strip()
    r = podman("image", "inspect", IMAGE)
    STATE["config"] = json.loads(r.stdout)[0]


def ready():
    if STATE["fail"]:
        raise Fail(STATE["fail"])
    if STATE["skip"]:
        raise Skip(STATE["skip"])
    return STATE["root"], STATE["config"]["Config"]


def user_of(cfg):
    user = cfg.get("User", "")
    uid, _, gid = user.partition(":")
    check(uid.isdigit() and gid.isdigit(), "USER %r is not numeric uid:gid" % user)
    return int(uid), int(gid)


def argv_of(root, cfg, args=None):
    """What a runtime runs: ENTRYPOINT + (args or CMD), as USER, in root."""
    uid, gid = user_of(cfg)
    cmd = list(cfg.get("Entrypoint") or [])
    cmd += list(args) if args is not None else (cfg.get("Cmd") or [])
    return [CHROOT, "--userspec=%d:%d" % (uid, gid), root] + cmd


def run_image(args, timeout=10):
    root, cfg = ready()
    return subprocess.run(argv_of(root, cfg, args), capture_output=True, text=True,
                          timeout=timeout, stdin=subprocess.DEVNULL)


def files_in(root):
    out = set()
    for d, dirs, files in os.walk(root):
        for f in files:
            out.add(os.path.relpath(os.path.join(d, f), root))
    return out


@scenario
def image_layout():
    root, cfg = ready()
    eq(files_in(root), {"usr/bin/ppfwd", "etc/hosts", "etc/ppfwd/ppfwd.yaml"}, "files in the image")
    uid, gid = user_of(cfg)
    check(uid != 0 and gid != 0, "USER %d:%d is root" % (uid, gid))
    eq(cfg.get("Entrypoint"), ["/usr/bin/ppfwd"], "ENTRYPOINT")
    eq(cfg.get("Cmd"), ["-c", "/etc/ppfwd/ppfwd.yaml"], "CMD")
    size = STATE["config"]["Size"]
    check(size < 5 << 20, "image size %d bytes (over 5 MiB)" % size)
    with open(os.path.join(ROOT, "build/static/ppfwd"), "rb") as a, \
            open(os.path.join(root, "usr/bin/ppfwd"), "rb") as b:
        check(a.read() == b.read(), "the image's ppfwd is not build/static/ppfwd")
    with open(os.path.join(ROOT, "dist/container/ppfwd.yaml")) as a, \
            open(os.path.join(root, "etc/ppfwd/ppfwd.yaml")) as b:
        eq(b.read(), a.read(), "the image's default config")


@scenario
def image_version_and_check():
    r = run_image(["--version"])
    eq(r.returncode, 0, "--version exit (stderr %r)" % r.stderr)
    check(r.stdout.startswith("ppfwd 0.1.0"), "--version: %r" % r.stdout)
    r = run_image(["check", "-c", "/etc/ppfwd/ppfwd.yaml"])
    eq(r.returncode, 0, "check -c on the default config (stderr %r)" % r.stderr)
    check("OK" in r.stdout, "check output: %r" % r.stdout)


def http_get(port, path):
    s = connect(V4, port)
    s.sendall(("GET %s HTTP/1.0\r\nHost: x\r\n\r\n" % path).encode())
    data = recv_all(s)
    s.close()
    return data.decode("utf-8", "replace")


@scenario
def image_default_config_live():
    root, cfg = ready()
    w = whoami_in(root, 8081)
    p = spawn(argv_of(root, cfg), os.path.join(tmpdir(), "ppfwd.log"))
    wait_listen(8080, 10, p)
    wait_listen(9100, 10, p)
    # A load balancer on 127.0.0.1 (a trusted network) sends the client.
    a = ask(8080, v2(("192.0.2.10", 51234), ("198.51.100.1", 8080)))
    check_proxied(a, "192.0.2.10")
    eq(a["client"], "192.0.2.10:51234", "client whoami saw")
    # No header: required, so refused.
    s = connect(V4, 8080)
    s.sendall(b"GET / HTTP/1.0\r\n\r\n")
    expect_closed(s)
    s.close()
    m = http_get(9100, "/metrics")
    check(m.startswith("HTTP/1.") and " 200 " in m.split("\r\n", 1)[0], "/metrics: %r" % m[:200])
    check('ppfwd_connections_total{route="app"}' in m, "/metrics lacks the app route:\n%s"
          % m[:2000])
    stop_clean(p, "ppfwd (image CMD)")
    stop_clean(w, "whoami")
    log = read_log(p)
    check('"route_start"' in log, "JSON logs on stderr: %s" % tail(log))


@scenario
def image_route_url_to_a_host_name():
    root, cfg = ready()
    wport, pport = free_port(V6), free_port()
    # localhost comes from the image's /etc/hosts: ::1 first (RFC 6724).
    w = whoami_in(root, wport, V6)
    url = "tcp://%s:%d/localhost:%d?send-proxy=v2" % (V4, pport, wport)
    p = spawn(argv_of(root, cfg, ["-w", "1", url]), os.path.join(tmpdir(), "ppfwd.log"))
    wait_listen(pport, 10, p)
    check_proxied(ask(pport))
    stop_clean(p, "ppfwd")
    stop_clean(w, "whoami")


def main():
    if os.environ.get(ENV_NS) is None:
        build()
    if STATE["skip"] is None and STATE["fail"] is None:
        why = why_no_chroot() or own_netns(
            ENV_NS, "not root (chroot, and the default config's 0.0.0.0 ports in a network "
            "namespace of the test's own)")
        why = why or lo_up()
        if why is not None:
            STATE["skip"] = why
            # Not re-executed: nothing will mount (or remove) the image.
            remove_image()
        else:
            mount()
    return run()


if __name__ == "__main__":
    sys.exit(main())
