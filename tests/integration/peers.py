"""HAProxy and nginx started with our own configs in a temp dir, in the
foreground (haproxy -db, nginx -g 'daemon off;'), killed and reaped by the
harness at the end of each scenario."""

import os
import shutil

from harness import Fail, V4, V6, free_port, hostport, spawn, tmpdir, wait_listen, read_log, \
    stop, tail

HAPROXY = shutil.which("haproxy") or "/usr/sbin/haproxy"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
NGINX_STREAM = "/usr/lib/nginx/modules/ngx_stream_module.so"


def haproxy(backend_port, extra_server="send-proxy-v2 proxy-v2-options authority,crc32c,unique-id"):
    """HAProxy 2.6 in mode tcp in front of 127.0.0.1:backend_port. Returns
    (process, plain_port, accept_proxy_port): the second bind takes a PROXY
    header from the client (so that an authority TLV can reach HAProxy
    without TLS: 2.6 only sends authority from an SNI or an accepted TLV).
    unique-id-format is %ci:%cp, so the unique-id TLV is checkable."""
    d = tmpdir()
    for _ in range(5):
        p1, p2 = free_port(), free_port()
        cfg = os.path.join(d, "haproxy.cfg")
        with open(cfg, "w") as f:
            f.write("""global
    log stderr format raw local0 info
defaults
    mode tcp
    log global
    option tcplog
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    unique-id-format %%ci:%%cp
frontend plain
    bind 127.0.0.1:%d
    default_backend b
frontend withproxy
    bind 127.0.0.1:%d accept-proxy
    default_backend b
backend b
    server s1 127.0.0.1:%d %s
""" % (p1, p2, backend_port, extra_server))
        p = spawn([HAPROXY, "-f", cfg, "-db"], os.path.join(d, "haproxy.log"))
        try:
            wait_listen(p1, 10, p)
            wait_listen(p2, 10, p)
            return p, p1, p2
        except Fail:
            stop(p)
            if "address already in use" not in read_log(p).lower():
                raise Fail("haproxy did not start:\n" + tail(read_log(p)))
    raise Fail("haproxy did not start")


def nginx(server_blocks, ports):
    """nginx with the stream module and the given `stream { server {...} }`
    bodies; server_blocks(ports) -> text, ports a list of (host, port) it
    listens on."""
    d = tmpdir()
    cfg = os.path.join(d, "nginx.conf")
    with open(cfg, "w") as f:
        f.write("""load_module %s;
worker_processes 1;
pid %s/nginx.pid;
error_log %s/error.log info;
events { worker_connections 1024; }
stream {
%s
}
""" % (NGINX_STREAM, d, d, server_blocks))
    p = spawn([NGINX, "-p", d, "-c", cfg, "-e", os.path.join(d, "error.log"), "-g", "daemon off;"],
              os.path.join(d, "nginx.out"))
    try:
        for host, port in ports:
            wait_listen(port, 10, p)
    except Fail as e:
        errlog = ""
        try:
            with open(os.path.join(d, "error.log")) as f:
                errlog = tail(f.read())
        except OSError:
            pass
        raise Fail("nginx did not start: %s\n%s" % (e, errlog))
    return p


__all__ = ["haproxy", "nginx", "hostport", "V4", "V6"]
