"""The Debian packages (debian/, `make deb`), built and tried as a new user
would: dpkg-buildpackage through `make deb` (lintian errors fail it), the
files each package holds, then the packages unpacked into a scratch root
(dpkg -x): the packaged ppfwd starts, checks the packaged examples and runs a
route in front of its own whoami on 127.0.0.1; a program builds against the
-dev package through its pkg-config file, statically and dynamically.

SKIP (with the reason) when dpkg-buildpackage, debhelper or lintian is
missing; `scripts/deps.sh test` installs them.
"""

import atexit
import glob
import os
import shutil
import subprocess
import sys
import tempfile

os.environ.setdefault("PPFWD_SCENARIO_SECONDS", "240")
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "integration"))

from harness import (ROOT, V4, Skip, check, eq, free_port, recv_line, connect,  # noqa: E402
                     scenario, run, spawn, stop, tmpdir, wait_listen, read_log, tail)

_built = {}


def tools_missing():
    need = {"dpkg-buildpackage": "dpkg-dev", "dh": "debhelper", "lintian": "lintian",
            "fakeroot": "fakeroot"}
    return [pkg for tool, pkg in need.items() if shutil.which(tool) is None]


def multiarch():
    return subprocess.run(["dpkg-architecture", "-qDEB_HOST_MULTIARCH"], capture_output=True,
                          text=True, check=True).stdout.strip()


def build():
    """Runs `make deb` once into a temp dir; returns {package: .deb path}."""
    if _built:
        return _built
    missing = tools_missing()
    if missing:
        raise Skip("needs %s (scripts/deps.sh test installs them)" % " ".join(missing))
    # Kept for every scenario of this file (tmpdir() lasts one scenario).
    out = tempfile.mkdtemp(prefix="ppfwd-deb-")
    atexit.register(shutil.rmtree, out, True)
    log = os.path.join(out, "make-deb.log")
    with open(log, "w") as f:
        rc = subprocess.run(["make", "-s", "deb", "DEB_DIR=" + os.path.join(out, "deb")],
                            cwd=ROOT, stdout=f, stderr=subprocess.STDOUT, timeout=200).returncode
    text = open(log).read()
    check(rc == 0, "make deb failed (exit %d):\n%s" % (rc, tail(text, 40)))
    for pkg in ("ppfwd", "libproxyproto0", "libproxyproto-dev"):
        debs = glob.glob(os.path.join(out, "deb", pkg + "_*.deb"))
        eq(len(debs), 1, "%s .deb files" % pkg)
        _built[pkg] = debs[0]
    _built["log"] = text
    return _built


def contents(deb):
    """{path: link target or None} of a .deb, from dpkg -c."""
    out = subprocess.run(["dpkg", "-c", deb], capture_output=True, text=True,
                         check=True).stdout
    files = {}
    for line in out.splitlines():
        parts = line.split(None, 5)
        name = parts[5]
        target = None
        if " -> " in name:
            name, target = name.split(" -> ", 1)
        files[name.lstrip(".")] = target
    return files


def unpack():
    debs = build()
    root = os.path.join(tmpdir(), "root")
    for pkg in ("ppfwd", "libproxyproto0", "libproxyproto-dev"):
        subprocess.run(["dpkg", "-x", debs[pkg], root], check=True)
    return root


@scenario
def deb_builds_lintian_clean():
    text = build()["log"]
    check("E: " not in text, "lintian printed an error:\n%s" % tail(text, 30))


@scenario
def deb_contents():
    debs = build()
    ma = multiarch()
    want = {
        "ppfwd": ["/usr/bin/ppfwd", "/usr/share/man/man1/ppfwd.1.gz",
                  "/usr/share/man/man5/ppfwd.yaml.5.gz", "/lib/systemd/system/ppfwd.service",
                  "/usr/share/doc/ppfwd/examples/ssh-behind-lb.yaml",
                  "/usr/share/doc/ppfwd/examples/demo.yaml", "/usr/share/doc/ppfwd/copyright"],
        "libproxyproto0": ["/usr/lib/%s/libproxyproto.so.0.1.0" % ma],
        "libproxyproto-dev": ["/usr/include/proxyproto.h", "/usr/lib/%s/libproxyproto.a" % ma,
                              "/usr/lib/%s/pkgconfig/proxyproto.pc" % ma,
                              "/usr/share/man/man3/proxyproto.3.gz"],
    }
    links = {
        "libproxyproto0": {"/usr/lib/%s/libproxyproto.so.0" % ma: "libproxyproto.so.0.1.0"},
        "libproxyproto-dev": {"/usr/lib/%s/libproxyproto.so" % ma: "libproxyproto.so.0"},
    }
    for pkg, paths in want.items():
        files = contents(debs[pkg])
        for p in paths:
            check(p in files, "%s lacks %s; it has:\n%s" % (pkg, p, "\n".join(sorted(files))))
        for p, target in links.get(pkg, {}).items():
            eq(files.get(p), target, "%s: symlink %s" % (pkg, p))
    # The library is in the library package only, the header in -dev only.
    check(not any("libproxyproto" in f for f in contents(debs["ppfwd"])),
          "ppfwd ships a copy of the library")
    info = subprocess.run(["dpkg-deb", "-f", debs["libproxyproto-dev"], "Depends"],
                          capture_output=True, text=True, check=True).stdout
    check("libproxyproto0 (= 0.1.0)" in info, "-dev Depends: %r" % info)
    control = subprocess.run(["dpkg-deb", "--ctrl-tarfile", debs["libproxyproto0"]],
                             capture_output=True, check=True).stdout
    check(len(control) > 0, "no control tarball")


@scenario
def deb_library_soname_and_symbols():
    root = unpack()
    ma = multiarch()
    lib = os.path.join(root, "usr/lib", ma, "libproxyproto.so.0.1.0")
    dyn = subprocess.run(["readelf", "-d", lib], capture_output=True, text=True,
                         check=True).stdout
    check("Library soname: [libproxyproto.so.0]" in dyn, "soname:\n%s" % dyn)
    nm = subprocess.run(["nm", "-D", "--defined-only", lib], capture_output=True, text=True,
                        check=True).stdout
    exported = sorted(l.split()[2] for l in nm.splitlines() if l.split()[1] == "T")
    check(exported and all(s.startswith("pp_") for s in exported),
          "exported symbols not all pp_*: %s" % exported)
    listed = sorted(l.split("@")[0].strip() for l in
                    open(os.path.join(ROOT, "debian/libproxyproto0.symbols"))
                    if l.startswith(" "))
    eq(exported, listed, "exported symbols vs debian/libproxyproto0.symbols")


@scenario
def deb_unpacked_ppfwd_runs():
    root = unpack()
    ppfwd = os.path.join(root, "usr/bin/ppfwd")
    r = subprocess.run([ppfwd, "--version"], capture_output=True, text=True, timeout=10)
    eq(r.returncode, 0, "ppfwd --version exit")
    check(r.stdout.startswith("ppfwd 0.1.0"), "--version: %r" % r.stdout)
    examples = sorted(glob.glob(os.path.join(root, "usr/share/doc/ppfwd/examples/*.yaml")))
    check(len(examples) >= 4, "packaged examples: %s" % examples)
    for ex in examples:
        r = subprocess.run([ppfwd, "check", "-c", ex], capture_output=True, text=True, timeout=10)
        eq(r.returncode, 0, "check -c %s exit (stderr %r)" % (ex, r.stderr))
    # A live route of the packaged binary in front of its own whoami.
    d = tmpdir()
    wport, pport = free_port(), free_port()
    w = spawn([ppfwd, "whoami", "--accept-proxy=required", "%s:%d" % (V4, wport)],
              os.path.join(d, "whoami.log"))
    p = spawn([ppfwd, "--log-format", "json", "-w", "1",
               "tcp://%s:%d/%s:%d?send-proxy=v2" % (V4, pport, V4, wport)],
              os.path.join(d, "ppfwd.log"))
    try:
        wait_listen(wport, 10, w)
        wait_listen(pport, 10, p)
        s = connect(V4, pport)
        line = recv_line(s).decode("utf-8", "replace")
        s.close()
        check('"proxy":{"version":2' in line, "whoami through the packaged ppfwd: %r" % line)
    finally:
        eq(stop(p), 0, "packaged ppfwd exit on SIGTERM (log %s)" % tail(read_log(p)))
        stop(w)


@scenario
def deb_dev_package_builds_a_program():
    root = unpack()
    ma = multiarch()
    d = tmpdir()
    src = os.path.join(d, "prog.c")
    with open(src, "w") as f:
        f.write('#include <proxyproto.h>\n#include <stdio.h>\n#include <string.h>\n'
                'int main(void) {\n'
                '    const char *h = "PROXY TCP4 192.0.2.1 192.0.2.2 1000 2000\\r\\n";\n'
                '    struct pp_header hdr;\n'
                '    ssize_t n = pp_parse((const uint8_t *)h, strlen(h), &hdr, NULL);\n'
                '    printf("%zd %s\\n", n, pp_strerror(-1));\n'
                '    return n == (ssize_t)strlen(h) ? 0 : 1;\n}\n')
    env = dict(os.environ, PKG_CONFIG_PATH=os.path.join(root, "usr/lib", ma, "pkgconfig"),
               PKG_CONFIG_SYSROOT_DIR=root, PKG_CONFIG_LIBDIR="")
    flags = subprocess.run(["pkg-config", "--cflags", "--libs", "proxyproto"], env=env,
                           capture_output=True, text=True)
    eq(flags.returncode, 0, "pkg-config exit (%s)" % flags.stderr)
    check(root in flags.stdout and "-lproxyproto" in flags.stdout, "pkg-config: %r" % flags.stdout)
    libdir = os.path.join(root, "usr/lib", ma)
    for kind, extra in (("dynamic", []), ("static", ["-static"])):
        exe = os.path.join(d, "prog-" + kind)
        r = subprocess.run(["cc", "-std=c11", "-Wall", "-Werror", src, "-o", exe] +
                           flags.stdout.split() + extra, capture_output=True, text=True)
        eq(r.returncode, 0, "%s build: %s" % (kind, r.stderr))
        r = subprocess.run([exe], capture_output=True, text=True, timeout=10,
                           env=dict(os.environ, LD_LIBRARY_PATH=libdir))
        eq(r.returncode, 0, "%s program exit (%r)" % (kind, r.stdout))
    need = subprocess.run(["readelf", "-d", os.path.join(d, "prog-dynamic")],
                          capture_output=True, text=True, check=True).stdout
    check("[libproxyproto.so.0]" in need, "dynamic program NEEDED:\n%s" % need)


if __name__ == "__main__":
    sys.exit(run())
