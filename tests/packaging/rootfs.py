"""Running ppfwd inside a root file system with chroot(8), as the container
image's user, for test_static.py and test_image.py (python3 stdlib only):
nothing of the host's /etc, libc or NSS modules is visible there."""

import json
import os
import shutil
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import (V4, Fail, check, connect, eq, hostport, recv_line, spawn,  # noqa: E402
                     stop, read_log, tail, tmpdir, wait_listen)

# The image's USER (Containerfile).
IMAGE_UID = 65532
CHROOT = shutil.which("chroot") or "/usr/sbin/chroot"


def why_no_chroot():
    """Why chroot cannot run here, or None."""
    if os.geteuid() != 0:
        return "not root (chroot(8) needs CAP_SYS_CHROOT)"
    if not os.access(CHROOT, os.X_OK):
        return "chroot (coreutils) not found"
    return None


def bare_root(binary, files=None):
    """A root holding only /usr/bin/ppfwd (a copy of binary) and files
    {path: text}; returns its path."""
    root = os.path.join(tmpdir(), "root")
    os.makedirs(os.path.join(root, "usr/bin"))
    os.chmod(root, 0o755)
    shutil.copy(binary, os.path.join(root, "usr/bin/ppfwd"))
    for path, text in (files or {}).items():
        full = os.path.join(root, path.lstrip("/"))
        os.makedirs(os.path.dirname(full), exist_ok=True)
        with open(full, "w") as f:
            f.write(text)
    return root


def argv_in(root, args, uid=IMAGE_UID):
    return [CHROOT, "--userspec=%d:%d" % (uid, uid), root, "/usr/bin/ppfwd"] + list(args)


def run_in(root, args, timeout=10):
    """Runs ppfwd in root; returns the CompletedProcess (text)."""
    return subprocess.run(argv_in(root, args), capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def spawn_in(root, args, port, what):
    """Starts ppfwd in root and waits until port listens."""
    p = spawn(argv_in(root, args), os.path.join(tmpdir(), what + ".log"))
    try:
        wait_listen(port, 10, p)
    except Fail as e:
        raise Fail("%s: %s; log:\n%s" % (what, e, tail(read_log(p))))
    return p


def whoami_in(root, port, host=V4):
    return spawn_in(root, ["whoami", "--accept-proxy=required", hostport(host, port)], port,
                    "whoami")


def ask(port, send=b""):
    """Connects to 127.0.0.1:port, sends send, returns whoami's JSON answer."""
    s = connect(V4, port)
    try:
        if send:
            s.sendall(send)
        line = recv_line(s).decode("utf-8", "replace")
    finally:
        s.close()
    try:
        return json.loads(line)
    except ValueError:
        raise Fail("not a whoami answer: %r" % line)


def stop_clean(p, what):
    """SIGTERM: p must drain and exit 0."""
    eq(stop(p, wait=12.0), 0, "%s exit on SIGTERM (log %s)" % (what, tail(read_log(p))))


def check_proxied(answer, want_client_host=V4):
    """whoami saw a v2 header naming a client on want_client_host."""
    check(answer.get("proxy") and answer["proxy"].get("version") == 2,
          "no PROXY v2 header reached whoami: %r" % answer)
    check(answer["client"].startswith(want_client_host + ":"), "client: %r" % answer)
