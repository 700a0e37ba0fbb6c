/*
 * whoami_udp.c - `ppfwd whoami --udp`: each datagram is answered to its
 * source, from the address it was sent to (whoami_udp_*; see whoami.c for
 * the modes).
 */
#define _GNU_SOURCE /* struct in6_pktinfo */
#include <errno.h>
#include <netinet/in.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <proxyproto.h>

#include "cmd/whoami_internal.h"
#include "loop/loop.h"
#include "util/addr.h"
#include "util/log.h"

/* ---- UDP ----------------------------------------------------------------- */

/* The control buffer for one IP_PKTINFO or IPV6_PKTINFO message. */
union whoami_cmsg {
    struct cmsghdr align;
    char buf[CMSG_SPACE(sizeof(struct in6_pktinfo))];
};

/* Reads the datagram's destination address (from the packet info) into
 * *local, and its interface into *ifindex. */
static void whoami_udp_local(const struct whoami *w, struct msghdr *m,
                             struct sockaddr_storage *local, int *ifindex)
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
static socklen_t whoami_udp_source(const struct sockaddr_storage *local, int ifindex,
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

static void whoami_udp_send(struct whoami *w, struct sockaddr_storage *peer,
                            const struct sockaddr_storage *local, int ifindex, char *out,
                            size_t len)
{
    struct iovec iov = {.iov_base = out, .iov_len = len};
    struct msghdr m = {.msg_name = peer,
                       .msg_namelen = addr_len((const struct sockaddr *)peer),
                       .msg_iov = &iov,
                       .msg_iovlen = 1};
    union whoami_cmsg cb;

    if (w->wildcard) {
        m.msg_control = cb.buf;
        m.msg_controllen = whoami_udp_source(local, ifindex, &cb);
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
static int whoami_udp_header(struct whoami *w, size_t n, const struct sockaddr *peer,
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

/* 1 when sa is a loopback address: 127.0.0.0/8, ::1, or ::ffff:127.0.0.0/104
 * (an IPv4 loopback client of a dual-stack socket). The kernel drops a
 * packet with such a source that arrives on any interface but lo, so it
 * came from this host and cannot have been forged from elsewhere. */
static int whoami_is_loopback(const struct sockaddr_storage *sa)
{
    if (sa->ss_family == AF_INET)
        return (ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr) >> 24) == 127;
    if (sa->ss_family == AF_INET6) {
        const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;
        return IN6_IS_ADDR_LOOPBACK(a) || (IN6_IS_ADDR_V4MAPPED(a) && a->s6_addr[12] == 127);
    }
    return 0;
}

/* Receives and answers one datagram; returns -1 when none is waiting. */
static int whoami_udp_one(struct whoami *w)
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
    whoami_udp_local(w, &m, &local, &ifindex);
    rc = whoami_udp_header(w, (size_t)n, (struct sockaddr *)&peer, &hdr);
    if (rc < 0)
        return 0;
    out =
        whoami_answer((struct sockaddr *)&peer, (struct sockaddr *)&local, rc ? &hdr : NULL, &len);
    if (out == NULL)
        return 0;
    /* A source address is easy to forge on UDP: an answer longer than the
     * datagram would make whoami an amplifier aimed at someone else. Such
     * an answer is not sent at all (half a JSON line is of no use), and the
     * client learns from the log to pad its datagram. A loopback source
     * cannot be forged from another host: it is always answered, so that
     * a short query on 127.0.0.1 or ::1 works as one expects. */
    if (len > (size_t)n && !whoami_is_loopback(&peer)) {
        log_event(LOG_WARN, "whoami_answer_dropped", NULL, "proto", LOG_STR, "udp", "peer",
                  LOG_ADDR, (const struct sockaddr *)&peer, "bytes_in", LOG_UINT, (uint64_t)n,
                  "answer_bytes", LOG_UINT, (uint64_t)len, "reason", LOG_STR,
                  "answer longer than the datagram (pad the datagram)", LOG_END);
        free(out);
        return 0;
    }
    whoami_log_answer("udp", (struct sockaddr *)&peer, rc ? &hdr : NULL);
    whoami_udp_send(w, &peer, &local, ifindex, out, len);
    free(out);
    return 0;
}

void whoami_udp_cb(struct loop *l, int fd, void *arg, unsigned events)
{
    struct whoami *w = arg;

    (void)l, (void)fd, (void)events;
    /* A batch, then back to the loop: level-triggered, the rest comes again. */
    for (int i = 0; i < WHOAMI_UDP_BATCH; i++)
        if (whoami_udp_one(w) != 0)
            return;
}
