/*
 * whoami.c - `ppfwd whoami`, a test server that answers each TCP connection
 * (or each datagram with --udp) with one JSON line saying what it saw: the
 * socket peer, the local address, the real client and the PROXY header
 * (whoami_*).
 *
 * TCP, per --accept-proxy:
 *   off       answer at once; the client's bytes are never looked at.
 *   required  read one header within WHOAMI_HEADER_MS; anything else (no
 *             header, an invalid one, a timeout, EOF first) closes the
 *             connection without an answer, and is logged.
 *   optional  bytes that cannot start a header (pp_parse's -PP_EBADSIG: the
 *             v1 or v2 signature is ruled out) mean "no header": answer with
 *             proxy null. A header that starts but fails, or does not finish
 *             within WHOAMI_HEADER_MS, closes the connection. A client that
 *             sends nothing (a server-speaks-first protocol) is answered with
 *             proxy null after WHOAMI_QUIET_MS of silence, or at once when it
 *             shuts down its side: waiting is the only way to tell "no
 *             header" from "header not sent yet", and a proxy sends its
 *             header as soon as it connects.
 * The answer is followed by shutdown(SHUT_WR) and a short drain before
 * close(), so that bytes the client sent after its header do not turn the
 * close into a RST that could destroy the answer in flight.
 *
 * UDP: every datagram is answered to its source, from the address it was
 * sent to; a source not on loopback only when the answer is no longer than
 * the datagram (whoami_udp.c). A datagram carries its own v2 header at its
 * start; v1 is not defined for datagrams, so a datagram starting with
 * "PROXY " is dropped and logged in every mode but off. required drops
 * datagrams without a valid header; optional answers proxy null when the
 * datagram does not start with a header and drops one whose header is
 * invalid.
 *
 * Everything runs on one event loop thread: a silent client costs a timer.
 */
#define _GNU_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <proxyproto.h>

#include "cmd/whoami.h"
#include "cmd/whoami_internal.h"
#include "config/cli.h"
#include "loop/loop.h"
#include "util/addr.h"
#include "util/json.h"
#include "util/log.h"
#include "util/proxy_json.h"

#define CMD "whoami"
#define WHOAMI_BACKLOG 1024
#define WHOAMI_MAX_FDS (1 << 20)

static const char *const whoami_modes[] = {"off", "optional", "required"};

/* ---- the answer ---------------------------------------------------------- */

/* "IP:PORT" of sa, or "-" for an address without an IP or unix family. */
const char *whoami_fmt(const struct sockaddr *sa, char *buf)
{
    return addr_format(sa, buf, ADDR_STRLEN) < 0 ? "-" : buf;
}

/* The real client: the header's source for a PROXY command that carries
 * addresses, else the socket peer. */
static const struct sockaddr *whoami_client(const struct sockaddr *peer,
                                            const struct pp_header *hdr)
{
    if (hdr != NULL && hdr->command == PP2_CMD_PROXY && hdr->src.sa.sa_family != AF_UNSPEC)
        return &hdr->src.sa;
    return peer;
}

/* Builds the answer line (with its '\n') in memory the caller frees.
 * Returns NULL when out of memory. */
char *whoami_answer(const struct sockaddr *peer, const struct sockaddr *local,
                    const struct pp_header *hdr, size_t *len)
{
    char a[ADDR_STRLEN];
    struct sockaddr_storage peer4, local4;
    struct json j;
    char *out;

    /* An IPv4 client of a dual-stack socket ("whoami :PORT", or [::]) is
     * shown as it would be on 0.0.0.0. */
    peer = addr_unmapped(peer, &peer4);
    local = addr_unmapped(local, &local4);
    json_init_buf(&j);
    json_object_begin(&j, NULL);
    json_string(&j, "peer", whoami_fmt(peer, a));
    json_string(&j, "local", whoami_fmt(local, a));
    json_string(&j, "client", whoami_fmt(whoami_client(peer, hdr), a));
    if (hdr != NULL)
        proxy_json_write(&j, "proxy", hdr, PROXY_JSON_LENGTH);
    else
        json_null(&j, "proxy");
    json_object_end(&j);
    json_newline(&j);
    if (json_error(&j) != 0) {
        json_free(&j);
        return NULL;
    }
    /* The writer's buffer becomes the caller's: no copy of a 20 KiB answer. */
    out = j.buf;
    *len = j.len;
    j.buf = NULL;
    json_free(&j);
    return out;
}

void whoami_log_answer(const char *proto, const struct sockaddr *peer, const struct pp_header *hdr)
{
    const char *version = hdr == NULL ? NULL : hdr->version == 1 ? "v1" : "v2";

    /* The log shows an IPv4-mapped peer in its IPv4 form itself. */
    log_event(LOG_INFO, "whoami_answer", NULL, "proto", LOG_STR, proto, "peer", LOG_ADDR, peer,
              "client", LOG_ADDR, whoami_client(peer, hdr), "proxy", LOG_STR, version, LOG_END);
}

void whoami_refuse(const char *proto, const struct sockaddr *peer, const char *reason)
{
    log_event(LOG_WARN, "proxy_header_refused", NULL, "proto", LOG_STR, proto, "reason", LOG_STR,
              reason, "peer", LOG_ADDR, peer, LOG_END);
}

/* ---- setup --------------------------------------------------------------- */

static void whoami_signal_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct signalfd_siginfo si;

    (void)arg, (void)events;
    if (read(fd, &si, sizeof(si)) != (ssize_t)sizeof(si))
        return;
    log_event(LOG_INFO, "whoami_stop", NULL, "signal", LOG_STR,
              si.ssi_signo == SIGINT ? "SIGINT" : "SIGTERM", LOG_END);
    loop_stop(l);
}

/* Signals arrive on a descriptor in the loop, so no handler has to be
 * async-signal-safe. Returns the signalfd or -errno. */
static int whoami_signals(void)
{
    sigset_t set;
    int fd;

    signal(SIGPIPE, SIG_IGN);
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    if (sigprocmask(SIG_BLOCK, &set, NULL) == -1)
        return -errno;
    fd = signalfd(-1, &set, SFD_NONBLOCK | SFD_CLOEXEC);
    return fd == -1 ? -errno : fd;
}

static int whoami_is_wildcard(const struct sockaddr_storage *ss)
{
    if (ss->ss_family == AF_INET)
        return ((const struct sockaddr_in *)ss)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)ss)->sin6_addr);
}

/* Asks for each datagram's destination address (see whoami_udp_local). */
static int whoami_pktinfo(int fd, int family)
{
    int on = 1;

    if (family == AF_INET)
        return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
    return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
}

/* ":PORT" on a host without IPv6: 0.0.0.0 and the same port. */
static void whoami_ipv4_any(struct sockaddr_storage *ss)
{
    struct sockaddr_in sin = {.sin_family = AF_INET,
                              .sin_port = ((struct sockaddr_in6 *)ss)->sin6_port,
                              .sin_addr.s_addr = htonl(INADDR_ANY)};

    memset(ss, 0, sizeof(*ss));
    memcpy(ss, &sin, sizeof(sin));
}

/* Opens, binds and (TCP) listens; w->addr becomes the bound address, the
 * real port included. ":PORT" (w->dual) is [::] with IPv4 too, as a route's
 * "tcp://:PORT", or 0.0.0.0 where IPv6 is not there. Returns 0 or -errno. */
static int whoami_listen(struct whoami *w)
{
    int type = (w->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    socklen_t len = sizeof(w->addr);
    int on = 1, off = 0;

    w->fd = socket(w->addr.ss_family, type, 0);
    if (w->fd == -1 && w->dual && errno == EAFNOSUPPORT) {
        whoami_ipv4_any(&w->addr);
        w->fd = socket(AF_INET, type, 0);
    }
    if (w->fd == -1)
        return -errno;
    w->wildcard = whoami_is_wildcard(&w->addr);
    if ((w->dual && w->addr.ss_family == AF_INET6 &&
         setsockopt(w->fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) == -1) ||
        setsockopt(w->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
        bind(w->fd, (struct sockaddr *)&w->addr, addr_len((struct sockaddr *)&w->addr)) == -1 ||
        (w->udp && whoami_pktinfo(w->fd, w->addr.ss_family) == -1) ||
        (!w->udp && listen(w->fd, WHOAMI_BACKLOG) == -1) ||
        getsockname(w->fd, (struct sockaddr *)&w->addr, &len) == -1)
        return -errno;
    return 0;
}

static int whoami_max_fds(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
        return 1024;
    return rl.rlim_cur > WHOAMI_MAX_FDS ? WHOAMI_MAX_FDS : (int)rl.rlim_cur;
}

/* Sets up everything the loop needs. Returns 0, or -errno with what = the
 * step that failed. */
static int whoami_setup(struct whoami *w, const char **what)
{
    int rc;

    *what = "listen";
    rc = whoami_listen(w);
    if (rc != 0)
        return rc;
    *what = "signals";
    w->sigfd = whoami_signals();
    if (w->sigfd < 0)
        return w->sigfd;
    *what = "event loop";
    w->loop = loop_new(whoami_max_fds());
    if (w->loop == NULL)
        return -errno;
    rc = loop_add(w->loop, w->sigfd, LOOP_READ, whoami_signal_cb, w);
    if (rc == 0)
        rc = loop_add(w->loop, w->fd, LOOP_READ, w->udp ? whoami_udp_cb : whoami_accept_cb, w);
    return rc;
}

static void whoami_teardown(struct whoami *w)
{
    whoami_tcp_close_all(w);
    loop_free(w->loop); /* runs the deferred frees */
    if (w->sigfd >= 0)
        close(w->sigfd);
    if (w->fd >= 0)
        close(w->fd);
}

static int whoami_run(struct whoami *w, const char *spec)
{
    const char *what;
    char a[ADDR_STRLEN];
    int rc;

    rc = whoami_setup(w, &what);
    if (rc != 0) {
        log_event(LOG_ERROR, "whoami_error", NULL, "listen", LOG_STR, spec, "step", LOG_STR, what,
                  "error", LOG_STR, strerror(-rc), LOG_END);
        whoami_teardown(w);
        return CLI_EXIT_FAIL;
    }
    log_event(LOG_INFO, "whoami_listen", NULL, "listen", LOG_STR,
              whoami_fmt((struct sockaddr *)&w->addr, a), "proto", LOG_STR, w->udp ? "udp" : "tcp",
              "accept_proxy", LOG_STR, whoami_modes[w->mode], LOG_END);
    rc = loop_run(w->loop);
    whoami_teardown(w);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* ---- command line -------------------------------------------------------- */

static void whoami_help(void)
{
    fputs("usage: ppfwd whoami [--udp] [--accept-proxy=optional|required|off] ADDR:PORT\n"
          "\n"
          "A test server. Answers each TCP connection (each datagram with --udp) with\n"
          "one JSON line:\n"
          "  {\"peer\":...,\"local\":...,\"client\":...,\"proxy\":{...} or null}\n"
          "It trusts every header and answers anyone: keep it on a test address.\n"
          "\n"
          "  --udp                 serve UDP datagrams (PROXY v2 at the start of each);\n"
          "                        a client not on loopback never gets an answer longer\n"
          "                        than its datagram (none is sent): pad to 512 bytes\n"
          "  --accept-proxy=MODE   optional (default): use a header when one comes;\n"
          "                        required: close (drop) without one; off: never read one\n"
          "  -h, --help            show this help\n"
          "\n"
          "ADDR:PORT: 127.0.0.1:9000, [::1]:9000, 0.0.0.0:0, :9000 (no host: every\n"
          "address, IPv4 and IPv6; port 0: any free port, reported in the\n"
          "whoami_listen log line on stderr).\n",
          stdout);
}

static int whoami_mode_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, whoami_modes[i]) == 0)
            return i;
    return -1;
}

/* ADDR:PORT into w->addr; ":PORT" (no host) is every address, as in a
 * route's "tcp://:PORT": [::] dual-stack (w->dual). Returns 0 or -ADDR_E*. */
static int whoami_addr_parse(const char *spec, struct whoami *w)
{
    char buf[16];

    if (spec[0] != ':')
        return addr_parse(spec, 0, &w->addr);
    /* "[::]" and a port of at most 5 digits; a longer one is no port. */
    if (snprintf(buf, sizeof(buf), "[::]%s", spec) >= (int)sizeof(buf))
        return -ADDR_EPORT;
    w->dual = 1;
    return addr_parse(buf, 0, &w->addr);
}

/* Returns 0 with w filled in, 1 after --help, -1 on a usage error (reported). */
static int whoami_args(int argc, char **argv, struct whoami *w, const char **spec)
{
    static const struct option longopts[] = {
        {"udp", no_argument, NULL, 'u'},
        {"accept-proxy", required_argument, NULL, 'a'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            whoami_help();
            return 1;
        }
        if (c == 'u') {
            w->udp = 1;
        } else if (c == 'a') {
            rc = whoami_mode_parse(optarg);
            if (rc < 0) {
                cli_error(CMD, "--accept-proxy: expected optional, required or off, got '%s'",
                          optarg);
                return -1;
            }
            w->mode = (enum whoami_mode)rc;
        } else {
            cli_opt_error(CMD, longopts, argv, c);
            return -1;
        }
    }
    if (argc == optind) {
        cli_error(CMD, "missing ADDR:PORT");
        return -1;
    }
    if (argc - optind > 1) {
        cli_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
        return -1;
    }
    *spec = argv[optind];
    rc = whoami_addr_parse(*spec, w);
    if (rc != 0)
        cli_error(CMD, "'%s': %s", *spec, addr_strerror(rc));
    return rc != 0 ? -1 : 0;
}

int whoami_main(int argc, char **argv, int log_level, int log_format)
{
    struct whoami *w = calloc(1, sizeof(*w));
    const char *spec = NULL;
    int rc;

    if (w == NULL) {
        cli_error(CMD, "%s", strerror(ENOMEM));
        return CLI_EXIT_FAIL;
    }
    w->mode = WHOAMI_OPTIONAL;
    w->fd = w->sigfd = -1;
    rc = whoami_args(argc, argv, w, &spec);
    if (rc == 0) {
        log_init(log_level >= 0 ? (enum log_level)log_level : LOG_INFO,
                 log_format >= 0 ? (enum log_format)log_format : LOG_FORMAT_AUTO);
        rc = whoami_run(w, spec);
    } else {
        rc = rc > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    free(w);
    return rc;
}
