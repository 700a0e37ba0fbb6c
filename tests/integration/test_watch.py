"""--watch (and YAML `watch: true`): ppfwd reloads when its -c file
changes, with the same `reload` / `reload_failed` lines as SIGHUP, for each
way a file changes:

- written in place; written to a temp file and renamed over (editors, sed -i);
- a Kubernetes ConfigMap update: ppfwd.yaml -> ..data/ppfwd.yaml, and a new
  ..data symlink renamed over the old one, the old directory removed;
- a symlink into another directory, whose target is edited;
- removed (refused, the running config kept), then written again;
- a burst of writes within 200 ms is one reload; changes 600 ms apart are
  two; an unchanged rewrite or another file of the directory is none;
- a bad config is refused and the old routes serve, a fixed one applies;
- `watch: true` in the file alone; --watch without -c is an error.
"""

import os
import shutil
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from harness import (PPFWD, V4, EchoServer, Ppfwd, check, connect, eq, free_port,  # noqa: E402
                     listening, run, scenario, tmpdir, wait_for)


def yaml_for(routes, watch=False):
    text = "watch: true\n" if watch else ""
    text += "routes:\n"
    for name, (port, up) in sorted(routes.items()):
        text += "  %s:\n    listen: tcp://%s:%d\n    upstream: %s:%d\n" % (name, V4, port, V4, up)
    return text


def write(path, text):
    with open(path, "w") as f:
        f.write(text)


class Setup:
    """An echo upstream, three free ports, and ppfwd --watch -c path."""

    def __init__(self, path=None, flag=True, watch_key=False, layout=None, dir=None):
        self.up = EchoServer().port
        self.ports = [free_port() for _ in range(3)]
        self.dir = dir or tmpdir()
        self.path = path or os.path.join(self.dir, "ppfwd.yaml")
        self.watch_key = watch_key
        if layout is None:
            write(self.path, self.text(1))
        else:
            layout(self)
        extra = (["--watch"] if flag else []) + ["-c", self.path]
        self.d = Ppfwd([], workers=2, extra=extra)
        self.d.start([self.ports[0]])
        self.d.wait_event("watch_start")

    def text(self, n):
        """The config with the first n routes."""
        return yaml_for({"r%d" % i: (self.ports[i], self.up) for i in range(n)}, self.watch_key)

    def reloads(self):
        return self.d.events("reload")

    def expect_reload(self, count, routes):
        evs = self.d.wait_event("reload", count=count, timeout=5.0)
        eq(evs[-1].get("routes"), routes, "routes after reload %d" % count)
        for i in range(routes):
            wait_for(lambda: listening(self.ports[i]), 5, "route r%d listening" % i)

    def expect_quiet(self, count, seconds=1.0):
        time.sleep(seconds)
        eq(len(self.reloads()), count, "reloads (nothing should have changed)")

    def serves(self, i):
        c = connect(V4, self.ports[i])
        c.sendall(b"ping")
        got = c.recv(4)
        c.close()
        eq(got, b"ping", "echo through r%d" % i)


@scenario
def watch_write_in_place():
    s = Setup()
    with open(s.path, "r+") as f:
        f.truncate(0)
        f.write(s.text(2))
    s.expect_reload(1, 2)
    s.serves(1)


@scenario
def watch_write_and_rename():
    s = Setup()
    tmp = os.path.join(s.dir, ".ppfwd.yaml.swp")
    write(tmp, s.text(2))
    os.rename(tmp, s.path)
    s.expect_reload(1, 2)
    # And again: the watch follows the new inode's name, not the old inode.
    write(tmp, s.text(3))
    os.rename(tmp, s.path)
    s.expect_reload(2, 3)
    s.serves(2)


def k8s_layout(s):
    """As the kubelet lays out a ConfigMap volume."""
    ts = os.path.join(s.dir, "..2026_12_04_10_00_00.000000001")
    os.mkdir(ts)
    write(os.path.join(ts, "ppfwd.yaml"), s.text(1))
    os.symlink(os.path.basename(ts), os.path.join(s.dir, "..data"))
    os.symlink("..data/ppfwd.yaml", s.path)


def k8s_update(s, text, stamp):
    old = os.readlink(os.path.join(s.dir, "..data"))
    ts = os.path.join(s.dir, "..2026_12_04_10_00_00.%09d" % stamp)
    os.mkdir(ts)
    write(os.path.join(ts, "ppfwd.yaml"), text)
    os.symlink(os.path.basename(ts), os.path.join(s.dir, "..data_tmp"))
    os.rename(os.path.join(s.dir, "..data_tmp"), os.path.join(s.dir, "..data"))
    shutil.rmtree(os.path.join(s.dir, old))


@scenario
def watch_kubernetes_configmap_swap():
    s = Setup(layout=k8s_layout)
    k8s_update(s, s.text(2), 2)
    s.expect_reload(1, 2)
    k8s_update(s, s.text(3), 3)
    s.expect_reload(2, 3)
    s.serves(2)


@scenario
def watch_symlink_to_another_directory():
    def layout(s):
        real = os.path.join(s.dir, "real")
        os.mkdir(real)
        write(os.path.join(real, "ppfwd.yaml"), s.text(1))
        os.mkdir(os.path.join(s.dir, "etc"))
        os.symlink("../real/ppfwd.yaml", s.path)

    d = tmpdir()
    s = Setup(path=os.path.join(d, "etc", "ppfwd.yaml"), dir=d, layout=layout)
    write(os.path.join(d, "real", "ppfwd.yaml"), s.text(2))
    s.expect_reload(1, 2)


@scenario
def watch_burst_is_one_reload():
    s = Setup()
    for n in (2, 3, 1, 3, 2):
        write(s.path, s.text(n))
        time.sleep(0.01)
    s.expect_reload(1, 2)
    s.expect_quiet(1)
    # Two changes 600 ms apart: two reloads.
    write(s.path, s.text(3))
    s.expect_reload(2, 3)
    time.sleep(0.6)
    write(s.path, s.text(1))
    s.expect_reload(3, 1)


@scenario
def watch_ignores_unchanged_and_other_files():
    s = Setup()
    write(s.path, s.text(1))  # same bytes
    os.utime(s.path)
    write(os.path.join(s.dir, "notes.txt"), "not the config\n")
    write(os.path.join(s.dir, "ppfwd.yaml.bak"), s.text(3))
    s.expect_quiet(0)


@scenario
def watch_bad_config_refused_then_fixed():
    s = Setup()
    write(s.path, "routes: {bad: {listen: nowhere, upstream: 127.0.0.1:1}}\n")
    s.d.wait_event("reload_failed")
    eq(len(s.reloads()), 0, "reloads after a bad config")
    s.serves(0)
    write(s.path, s.text(2))
    s.expect_reload(1, 2)


@scenario
def watch_file_removed_then_back():
    s = Setup()
    os.unlink(s.path)
    s.d.wait_event("reload_failed")
    s.serves(0)
    write(s.path, s.text(2))
    s.expect_reload(1, 2)


@scenario
def watch_key_in_yaml():
    s = Setup(flag=False, watch_key=True)
    write(s.path, s.text(2))
    s.expect_reload(1, 2)


@scenario
def watch_needs_a_file_and_a_boolean():
    r = subprocess.run([PPFWD, "--watch", "tcp://127.0.0.1:1/127.0.0.1:2"], capture_output=True,
                       text=True, timeout=20)
    eq(r.returncode, 1, "--watch with URLs: exit")
    check("--watch" in r.stderr and "-c FILE" in r.stderr, "message: %r" % r.stderr)
    path = os.path.join(tmpdir(), "c.yaml")
    write(path, "watch: maybe\n" + yaml_for({"a": (free_port(), 1)}))
    r = subprocess.run([PPFWD, "check", "-c", path], capture_output=True, text=True, timeout=20)
    eq(r.returncode, 1, "check of watch: maybe: exit")
    check(":1:" in r.stderr and "watch" in r.stderr and "maybe" in r.stderr,
          "message: %r" % r.stderr)


if __name__ == "__main__":
    sys.exit(run())
