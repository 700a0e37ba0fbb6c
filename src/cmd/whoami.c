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
 * sent to. A datagram carries its own v2 header at its start; v1 is not
 * defined for datagrams, so a datagram starting with "PROXY " is dropped
 * and logged in every mode but off. required drops datagrams without a
 * valid header; optional answers proxy null when the datagram does not
 * start with a header and drops one whose header is invalid.
 *
 * Everything runs on one event loop thread: a silent client costs a timer.
 */
#define _GNU_SOURCE /* accept4, struct in6_pktinfo, getopt_long */
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

#include "util/addr.h"
#include "config/cli.h"
#include "util/json.h"
#include "util/log.h"
#include "loop/loop.h"
#include "util/proxy_json.h"
#include "cmd/whoami.h"

#define CMD "whoami"

#define WHOAMI_QUIET_MS 1000       /* optional: silence this long means no header */
#define WHOAMI_HEADER_MS 5000      /* the whole header, counted from accept */
#define WHOAMI_DRAIN_MS 1000       /* reading what follows the answer, at most */
#define WHOAMI_ACCEPT_PAUSE_MS 200 /* out of descriptors: try again after this */
#define WHOAMI_ACCEPT_BATCH 64     /* connections accepted per wake-up */
#define WHOAMI_UDP_BATCH 64        /* datagrams answered per wake-up */
#define WHOAMI_BACKLOG 1024
#define WHOAMI_HDR_CAP PP_V2_DEFAULT_CAP /* as the daemon: v2 headers up to 4 KiB */
#define WHOAMI_MAX_FDS (1 << 20)

enum whoami_mode { WHOAMI_OFF, WHOAMI_OPTIONAL, WHOAMI_REQUIRED };

static const char *const whoami_modes[] = {"off", "optional", "required"};

struct whoami {
    struct loop *loop;
    enum whoami_mode mode;
    int udp;
    int fd;                       /* TCP listener or UDP socket */
    int sigfd;                    /* SIGINT and SIGTERM */
    int wildcard;                 /* bound to 0.0.0.0 or [::]: UDP replies need their source set */
    struct sockaddr_storage addr; /* what the socket is bound to */
    struct timer accept_pause;
    struct whoami_conn *conns; /* every open connection, freed at exit */
    uint8_t dgram[65536];      /* the UDP datagram being answered */
};

enum whoami_state { WC_HEADER, WC_ANSWER, WC_DRAIN };

struct whoami_conn {
    struct whoami *w;
    struct whoami_conn *prev, *next;
    int fd;
    enum whoami_state st;
    struct timer timer;
    struct loop_work free_work; /* conn_free_cb, at the end of the iteration */
    uint64_t start; /* loop_now() at accept */
    struct sockaddr_storage peer, local;
    char *out; /* the answer, while it is being written */
    size_t out_len, out_off;
    size_t len; /* header bytes in buf */
    uint8_t buf[WHOAMI_HDR_CAP];
};

/* ---- the answer ---------------------------------------------------------- */

/* "IP:PORT" of sa, or "-" for an address without an IP or unix family. */
static const char *whoami_fmt(const struct sockaddr *sa, char *buf)
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
static char *whoami_answer(const struct sockaddr *peer, const struct sockaddr *local,
                           const struct pp_header *hdr, size_t *len)
{
    char a[ADDR_STRLEN];
    struct json j;
    char *out;

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

static void whoami_log_answer(const char *proto, const struct sockaddr *peer,
                              const struct pp_header *hdr)
{
    const char *version = hdr == NULL ? NULL : hdr->version == 1 ? "v1" : "v2";

    log_event(LOG_INFO, "whoami_answer", NULL, "proto", LOG_STR, proto, "peer", LOG_ADDR, peer,
              "client", LOG_ADDR, whoami_client(peer, hdr), "proxy", LOG_STR, version, LOG_END);
}

static void whoami_refuse(const char *proto, const struct sockaddr *peer, const char *reason)
{
    log_event(LOG_WARN, "proxy_header_refused", NULL, "proto", LOG_STR, proto, "reason", LOG_STR,
              reason, "peer", LOG_ADDR, peer, LOG_END);
}

/* ---- TCP connections ----------------------------------------------------- */

static void conn_free_cb(void *arg)
{
    struct whoami_conn *c = arg;

    free(c->out);
    free(c);
}

static void conn_close(struct whoami_conn *c)
{
    struct whoami *w = c->w;

    loop_timer_cancel(w->loop, &c->timer);
    loop_remove(w->loop, c->fd);
    close(c->fd);
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        w->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    /* Other callbacks of this iteration may still hold c. */
    loop_defer(w->loop, &c->free_work, conn_free_cb, c);
}

static void conn_timeout(struct loop *l, struct timer *t, void *arg);
static void conn_cb(struct loop *l, int fd, void *arg, unsigned events);

static void conn_refuse(struct whoami_conn *c, const char *reason)
{
    whoami_refuse("tcp", (struct sockaddr *)&c->peer, reason);
    conn_close(c);
}

/* The answer is out: half-close, then read what the client still sends for
 * a moment, since closing with unread bytes would send a RST. */
static void conn_drain_start(struct whoami_conn *c)
{
    free(c->out);
    c->out = NULL;
    shutdown(c->fd, SHUT_WR);
    loop_del(c->w->loop, c->fd, LOOP_WRITE);
    c->st = WC_DRAIN;
    loop_timer_set(c->w->loop, &c->timer, WHOAMI_DRAIN_MS, conn_timeout, c);
}

/* Writes what is left of the answer; a full socket buffer waits for
 * LOOP_WRITE. */
static void conn_flush(struct whoami_conn *c)
{
    while (c->out_off < c->out_len) {
        ssize_t n = send(c->fd, c->out + c->out_off, c->out_len - c->out_off, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN) {
            loop_add(c->w->loop, c->fd, LOOP_WRITE, conn_cb, c);
            return;
        }
        if (n == -1) {
            conn_close(c); /* the client is gone: nobody to answer */
            return;
        }
        c->out_off += (size_t)n;
    }
    conn_drain_start(c);
}

static void conn_answer(struct whoami_conn *c, const struct pp_header *hdr)
{
    c->out =
        whoami_answer((struct sockaddr *)&c->peer, (struct sockaddr *)&c->local, hdr, &c->out_len);
    if (c->out == NULL) {
        log_event(LOG_ERROR, "whoami_error", NULL, "error", LOG_STR, strerror(ENOMEM), LOG_END);
        conn_close(c);
        return;
    }
    whoami_log_answer("tcp", (struct sockaddr *)&c->peer, hdr);
    c->out_off = 0;
    c->st = WC_ANSWER;
    /* A client that never reads would otherwise hold the answer forever. */
    loop_timer_set(c->w->loop, &c->timer, WHOAMI_HEADER_MS, conn_timeout, c);
    conn_flush(c);
}

/* A header has begun: the quiet period of optional mode no longer applies,
 * the header deadline does. */
static void conn_header_deadline(struct whoami_conn *c)
{
    uint64_t now = loop_now(c->w->loop), end = c->start + WHOAMI_HEADER_MS;

    if (now >= end)
        conn_refuse(c, "PROXY header timeout");
    else
        loop_timer_set(c->w->loop, &c->timer, end - now, conn_timeout, c);
}

/* Decides on the header bytes read so far; returns without a decision
 * while they are a valid prefix. */
static void conn_decide(struct whoami_conn *c)
{
    struct pp_header hdr;
    ssize_t n = pp_parse(c->buf, c->len, &hdr, NULL);

    if (n > 0)
        conn_answer(c, &hdr);
    else if (n == -PP_EBADSIG && c->w->mode == WHOAMI_OPTIONAL)
        conn_answer(c, NULL);
    else if (n == -PP_EBADSIG)
        conn_refuse(c, "no PROXY header");
    else if (n < 0)
        conn_refuse(c, pp_strerror((int)n));
    else if (c->len == sizeof(c->buf))
        conn_refuse(c, pp_strerror(-PP_ETOOLONG)); /* cannot happen: the parser caps */
    else
        conn_header_deadline(c);
}

/* EOF before any decision: a client that shut down its side without
 * sending anything can still read an answer in optional mode. */
static void conn_eof(struct whoami_conn *c)
{
    if (c->len == 0 && c->w->mode == WHOAMI_OPTIONAL)
        conn_answer(c, NULL);
    else
        conn_refuse(c, c->len == 0 ? "closed before a PROXY header" : "truncated PROXY header");
}

static void conn_read_header(struct whoami_conn *c)
{
    ssize_t n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n == -1) {
        conn_refuse(c, strerror(errno));
        return;
    }
    if (n == 0) {
        conn_eof(c);
        return;
    }
    c->len += (size_t)n;
    conn_decide(c);
}

/* After the answer, the client's bytes are read and thrown away. */
static void conn_discard(struct whoami_conn *c)
{
    char sink[4096];
    ssize_t n = recv(c->fd, sink, sizeof(sink), 0);

    if (n == -1 && (errno == EAGAIN || errno == EINTR))
        return;
    if (n <= 0 && c->st == WC_DRAIN)
        conn_close(c);
    else if (n <= 0)
        loop_del(c->w->loop, c->fd, LOOP_READ); /* still writing the answer */
}

static void conn_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct whoami_conn *c = arg;

    (void)l, (void)fd;
    if (c->st == WC_HEADER) {
        conn_read_header(c);
        return;
    }
    if (c->st == WC_ANSWER && (events & (LOOP_WRITE | LOOP_ERROR))) {
        conn_flush(c);
        return;
    }
    if (events & (LOOP_READ | LOOP_ERROR))
        conn_discard(c);
}

static void conn_timeout(struct loop *l, struct timer *t, void *arg)
{
    struct whoami_conn *c = arg;

    (void)l, (void)t;
    if (c->st != WC_HEADER)
        conn_close(c); /* drained enough, or the answer could not be written */
    else if (c->len == 0 && c->w->mode == WHOAMI_OPTIONAL)
        conn_answer(c, NULL);
    else
        conn_refuse(c, "PROXY header timeout");
}

static void conn_start(struct whoami *w, int fd, const struct sockaddr_storage *peer)
{
    struct whoami_conn *c = calloc(1, sizeof(*c));
    socklen_t len = sizeof(c->local);

    if (c == NULL || loop_add(w->loop, fd, LOOP_READ, conn_cb, c) != 0) {
        log_event(LOG_ERROR, "accept_error", NULL, "error", LOG_STR,
                  c == NULL ? strerror(ENOMEM) : "descriptor over the loop's limit", LOG_END);
        free(c);
        close(fd);
        return;
    }
    c->w = w;
    c->fd = fd;
    c->peer = *peer;
    getsockname(fd, (struct sockaddr *)&c->local, &len);
    c->start = loop_now(w->loop);
    c->next = w->conns;
    if (w->conns != NULL)
        w->conns->prev = c;
    w->conns = c;
    if (w->mode == WHOAMI_OFF)
        conn_answer(c, NULL);
    else
        loop_timer_set(w->loop, &c->timer,
                       w->mode == WHOAMI_OPTIONAL ? WHOAMI_QUIET_MS : WHOAMI_HEADER_MS,
                       conn_timeout, c);
}

/* ---- accepting ----------------------------------------------------------- */

static void accept_resume(struct loop *l, struct timer *t, void *arg);

static void accept_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct whoami *w = arg;
    struct sockaddr_storage peer;
    socklen_t len;

    (void)events;
    for (int i = 0; i < WHOAMI_ACCEPT_BATCH; i++) {
        len = sizeof(peer);
        int cfd = accept4(fd, (struct sockaddr *)&peer, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (cfd != -1) {
            conn_start(w, cfd, &peer);
            continue;
        }
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
            /* The listener stays readable: pausing is what keeps this
             * from spinning until a descriptor is free again. */
            log_event(LOG_ERROR, "accept_error", NULL, "error", LOG_STR, strerror(errno),
                      "pause_ms", LOG_UINT, (uint64_t)WHOAMI_ACCEPT_PAUSE_MS, LOG_END);
            loop_del(l, fd, LOOP_READ);
            loop_timer_set(l, &w->accept_pause, WHOAMI_ACCEPT_PAUSE_MS, accept_resume, w);
        } else if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED) {
            log_event(LOG_WARN, "accept_error", NULL, "error", LOG_STR, strerror(errno), LOG_END);
        }
        return;
    }
}

static void accept_resume(struct loop *l, struct timer *t, void *arg)
{
    struct whoami *w = arg;

    (void)t;
    loop_add(l, w->fd, LOOP_READ, accept_cb, w);
}

/* ---- UDP ----------------------------------------------------------------- */

/* The control buffer for one IP_PKTINFO or IPV6_PKTINFO message. */
union whoami_cmsg {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
};

/* Reads the datagram's destination address (from the packet info) into
 * *local, and its interface into *ifindex. */
static void udp_local(const struct whoami *w, struct msghdr *m, struct sockaddr_storage *local,
                      int *ifindex)
{
    struct sockaddr_in *sin = (struct sockaddr_in *)local;
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)local;

    *local = w->addr;
    *ifindex = 0;
    for (struct cmsghdr *cm = CMSG_FIRSTHDR(m); cm != NULL; cm = CMSG_NXTHDR(m, cm)) {
        if (cm->cmsg_level == IPPROTO_IP && cm->cmsg_type == IP_PKTINFO &&
            local->ss_family == AF_INET) {
            struct in_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            sin->sin_addr = pi.ipi_addr;
            *ifindex = pi.ipi_ifindex;
        } else if (cm->cmsg_level == IPPROTO_IPV6 && cm->cmsg_type == IPV6_PKTINFO &&
                   local->ss_family == AF_INET6) {
            struct in6_pktinfo pi;
            memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
            sin6->sin6_addr = pi.ipi6_addr;
            *ifindex = (int)pi.ipi6_ifindex;
        }
    }
}

/* Puts the reply's source address in the control buffer: on a wildcard
 * socket the kernel would otherwise pick one by route, and a client that
 * sent to one address of the host would see the answer come from another. */
static socklen_t udp_source(const struct sockaddr_storage *local, int ifindex,
                            union whoami_cmsg *cb)
{
    struct msghdr m = {.msg_control = cb->buf, .msg_controllen = sizeof(cb->buf)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&m);

    memset(cb, 0, sizeof(*cb));
    if (local->ss_family == AF_INET) {
        struct in_pktinfo pi = {.ipi_spec_dst = ((const struct sockaddr_in *)local)->sin_addr};
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        return CMSG_SPACE(sizeof(pi));
    }
    struct in6_pktinfo pi6 = {.ipi6_addr = ((const struct sockaddr_in6 *)local)->sin6_addr,
                              .ipi6_ifindex = (unsigned)ifindex};
    cm->cmsg_level = IPPROTO_IPV6;
    cm->cmsg_type = IPV6_PKTINFO;
    cm->cmsg_len = CMSG_LEN(sizeof(pi6));
    memcpy(CMSG_DATA(cm), &pi6, sizeof(pi6));
    return CMSG_SPACE(sizeof(pi6));
}

static void udp_send(struct whoami *w, struct sockaddr_storage *peer,
                     const struct sockaddr_storage *local, int ifindex, char *out, size_t len)
{
    struct iovec iov = {.iov_base = out, .iov_len = len};
    struct msghdr m = {.msg_name = peer,
                       .msg_namelen = addr_len((const struct sockaddr *)peer),
                       .msg_iov = &iov,
                       .msg_iovlen = 1};
    union whoami_cmsg cb;

    if (w->wildcard) {
        m.msg_control = cb.buf;
        m.msg_controllen = udp_source(local, ifindex, &cb);
    }
    while (sendmsg(w->fd, &m, MSG_NOSIGNAL) == -1) {
        if (errno == EINTR)
            continue;
        /* A full send buffer drops the answer, as the network could. */
        log_event(LOG_WARN, "whoami_error", NULL, "proto", LOG_STR, "udp", "peer", LOG_ADDR,
                  (const struct sockaddr *)peer, "error", LOG_STR, strerror(errno), LOG_END);
        return;
    }
}

/* The header of a datagram of n bytes: 1 with *hdr filled, 0 for none
 * (answer proxy null), -1 after logging why the datagram is dropped. */
static int udp_header(struct whoami *w, size_t n, const struct sockaddr *peer,
                      struct pp_header *hdr)
{
    static const struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN, .flags = PP_PARSE_NO_V1};
    ssize_t rc;

    if (w->mode == WHOAMI_OFF)
        return 0;
    rc = n == 0 ? -PP_EBADSIG : pp_parse(w->dgram, n, hdr, &opts);
    if (rc > 0)
        return 1;
    if (rc == -PP_EBADSIG && n >= 6 && memcmp(w->dgram, "PROXY ", 6) == 0)
        whoami_refuse("udp", peer, "PROXY v1 header on UDP");
    else if (rc == -PP_EBADSIG && w->mode == WHOAMI_OPTIONAL)
        return 0;
    else if (rc == -PP_EBADSIG)
        whoami_refuse("udp", peer, "no PROXY header");
    else
        whoami_refuse("udp", peer, rc == 0 ? "truncated PROXY header" : pp_strerror((int)rc));
    return -1;
}

/* Receives and answers one datagram; returns -1 when none is waiting. */
static int udp_one(struct whoami *w)
{
    struct sockaddr_storage peer, local;
    struct iovec iov = {.iov_base = w->dgram, .iov_len = sizeof(w->dgram)};
    union whoami_cmsg cb;
    struct msghdr m = {.msg_name = &peer,
                       .msg_namelen = sizeof(peer),
                       .msg_iov = &iov,
                       .msg_iovlen = 1,
                       .msg_control = cb.buf,
                       .msg_controllen = sizeof(cb.buf)};
    struct pp_header hdr;
    ssize_t n;
    size_t len;
    char *out;
    int ifindex, rc;

    n = recvmsg(w->fd, &m, 0);
    if (n == -1)
        return errno == EINTR ? 0 : -1;
    udp_local(w, &m, &local, &ifindex);
    rc = udp_header(w, (size_t)n, (struct sockaddr *)&peer, &hdr);
    if (rc < 0)
        return 0;
    out =
        whoami_answer((struct sockaddr *)&peer, (struct sockaddr *)&local, rc ? &hdr : NULL, &len);
    if (out == NULL)
        return 0;
    whoami_log_answer("udp", (struct sockaddr *)&peer, rc ? &hdr : NULL);
    udp_send(w, &peer, &local, ifindex, out, len);
    free(out);
    return 0;
}

static void udp_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct whoami *w = arg;

    (void)l, (void)fd, (void)events;
    /* A batch, then back to the loop: level-triggered, the rest comes again. */
    for (int i = 0; i < WHOAMI_UDP_BATCH; i++)
        if (udp_one(w) != 0)
            return;
}

/* ---- setup --------------------------------------------------------------- */

static void signal_cb(struct loop *l, int fd, void *arg, unsigned events)
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

/* Asks for each datagram's destination address (see udp_local). */
static int whoami_pktinfo(int fd, int family)
{
    int on = 1;

    if (family == AF_INET)
        return setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
    return setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, &on, sizeof(on));
}

/* Opens, binds and (TCP) listens; w->addr becomes the bound address, the
 * real port included. Returns 0 or -errno. */
static int whoami_listen(struct whoami *w)
{
    int type = (w->udp ? SOCK_DGRAM : SOCK_STREAM) | SOCK_NONBLOCK | SOCK_CLOEXEC;
    socklen_t len = sizeof(w->addr);
    int on = 1;

    w->fd = socket(w->addr.ss_family, type, 0);
    if (w->fd == -1)
        return -errno;
    w->wildcard = whoami_is_wildcard(&w->addr);
    if (setsockopt(w->fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
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
    rc = loop_add(w->loop, w->sigfd, LOOP_READ, signal_cb, w);
    if (rc == 0)
        rc = loop_add(w->loop, w->fd, LOOP_READ, w->udp ? udp_cb : accept_cb, w);
    return rc;
}

static void whoami_teardown(struct whoami *w)
{
    while (w->conns != NULL)
        conn_close(w->conns);
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
          "Answers each TCP connection (each datagram with --udp) with one JSON line:\n"
          "  {\"peer\":...,\"local\":...,\"client\":...,\"proxy\":{...} or null}\n"
          "\n"
          "  --udp                 serve UDP datagrams (PROXY v2 at the start of each)\n"
          "  --accept-proxy=MODE   optional (default): use a header when one comes;\n"
          "                        required: close (drop) without one; off: never read one\n"
          "  -h, --help            show this help\n"
          "\n"
          "ADDR:PORT: 127.0.0.1:9000, [::1]:9000, 0.0.0.0:0 (port 0: any free port,\n"
          "reported in the whoami_listen log line on stderr).\n",
          stdout);
}

static int whoami_mode_parse(const char *s)
{
    for (int i = 0; i < 3; i++)
        if (strcmp(s, whoami_modes[i]) == 0)
            return i;
    return -1;
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
    rc = addr_parse(*spec, 0, &w->addr);
    if (rc != 0)
        cli_error(CMD, "'%s': %s", *spec, addr_strerror(rc));
    return rc != 0 ? -1 : 0;
}

int whoami_main(int argc, char **argv)
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
        log_init(LOG_INFO, LOG_FORMAT_AUTO);
        rc = whoami_run(w, spec);
    } else {
        rc = rc > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    }
    free(w);
    return rc;
}
