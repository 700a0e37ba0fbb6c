/*
 * udp_listen.c - a UDP route's sockets and listeners (udp_*, udp_listen_*):
 * the SO_REUSEPORT group opened whole before any datagram is taken, a
 * worker's listener (its socket, session table and batch buffers), its
 * stop, and the drain that lets its sessions finish.
 *
 * Datagrams are read and written in batches (recvmmsg/sendmmsg) into
 * buffers allocated once per listener: nothing is allocated per datagram,
 * only per session.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <linux/filter.h>
#include <sys/socket.h>

#include "util/log.h"
#include "engine/udp.h"
#include "engine/udp_lsn.h"
#include "engine/worker.h"

/* Asked for the route's socket, so a burst from many clients is queued
 * rather than lost while the worker is busy (capped by net.core.rmem_max). */
#define UDP_RCVBUF (4 << 20)

/* ---- the route's socket -------------------------------------------------- */

static int set_opt(int fd, int level, int name, int val)
{
    return setsockopt(fd, level, name, &val, sizeof(val));
}

static int is_any(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET)
        return ((const struct sockaddr_in *)sa)->sin_addr.s_addr == htonl(INADDR_ANY);
    return IN6_IS_ADDR_UNSPECIFIED(&((const struct sockaddr_in6 *)sa)->sin6_addr);
}

/* Opens and binds the route's socket, with the socket filter prog attached
 * before the bind; on failure returns -errno and names the
 * failed step in *what. */
static int sock_open(const struct route_cfg *rc, const struct sock_fprog *prog, int *fd_out,
                     const char **what)
{
    const struct sockaddr *sa = (const struct sockaddr *)&rc->bind;
    int fd = socket(sa->sa_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0), err;

    *what = "socket";
    if (fd == -1)
        return -errno;
    *what = "setsockopt";
    if (set_opt(fd, SOL_SOCKET, SO_REUSEADDR, 1) == -1 ||
        set_opt(fd, SOL_SOCKET, SO_REUSEPORT, 1) == -1)
        goto fail;
    /* "udp://:PORT" means every address, IPv4 included, on one socket. */
    if (sa->sa_family == AF_INET6 &&
        set_opt(fd, IPPROTO_IPV6, IPV6_V6ONLY, rc->family == AF_INET6) == -1)
        goto fail;
    set_opt(fd, SOL_SOCKET, SO_RCVBUF, UDP_RCVBUF);
    /* A wildcard socket needs each datagram's destination. An IPv6 socket,
     * wildcard or not, needs to tell an IPv4 datagram (IP_PKTINFO, or an
     * IPV6_PKTINFO with an IPv4-mapped destination) from a native IPv6 one
     * forged from an IPv4-mapped source, which Linux delivers on UDP: see
     * slot_local in udp_forward.c. IP_PKTINFO on an IPv6 socket is a help,
     * not a need: IPV6_PKTINFO alone tells the two apart. */
    *what = "setsockopt PKTINFO";
    if ((is_any(sa) || sa->sa_family == AF_INET6) &&
        set_opt(fd, IPPROTO_IP, IP_PKTINFO, 1) == -1 && sa->sa_family == AF_INET)
        goto fail;
    if (sa->sa_family == AF_INET6 && set_opt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO, 1) == -1)
        goto fail;
    *what = "setsockopt SO_ATTACH_FILTER";
    if (setsockopt(fd, SOL_SOCKET, SO_ATTACH_FILTER, prog, sizeof(*prog)) == -1)
        goto fail;
    *what = "bind";
    if (bind(fd, sa, rc->bindlen) == -1)
        goto fail;
    *fd_out = fd;
    return 0;
fail:
    err = -errno;
    close(fd);
    return err;
}

void udp_listen_free(struct udp_lsn *u)
{
    udp_table_free(&u->table);
    free(u->bufs);
    free(u->hbufs);
    free(u->qbufs);
    free(u);
}

static struct udp_lsn *lsn_new(struct worker *w, struct listener *ls)
{
    struct udp_lsn *u = calloc(1, sizeof(*u));

    if (u == NULL)
        return NULL;
    u->w = w;
    u->ls = ls;
    u->r = ls->r;
    u->rc = ls->r->cfg;
    u->bufs = malloc((size_t)UDP_BATCH * UDP_BUF_SIZE);
    u->hbufs = malloc((size_t)UDP_BATCH * UDP_HDR_CAP);
    u->qbufs = malloc((size_t)UDP_BATCH * UDP_BUF_SIZE);
    if (u->bufs == NULL || u->hbufs == NULL || u->qbufs == NULL ||
        udp_table_init(&u->table) != 0) {
        udp_listen_free(u);
        return NULL;
    }
    return u;
}

int udp_open_group(const struct route_cfg *rc, int n, int *fds)
{
    /* A socket filter that takes nothing, on each socket until all are bound. */
    struct sock_filter none = BPF_STMT(BPF_RET | BPF_K, 0);
    struct sock_fprog prog = {.len = 1, .filter = &none};
    const char *what = "socket";
    int i, err = 0;

    for (i = 0; i < n; i++)
        fds[i] = -1;
    for (i = 0; i < n && err == 0; i++)
        err = sock_open(rc, &prog, &fds[i], &what);
    for (i = 0; i < n && err == 0; i++) {
        int unused = 0; /* the kernel wants an int-sized value, and ignores it */

        if (setsockopt(fds[i], SOL_SOCKET, SO_DETACH_FILTER, &unused, sizeof(unused)) == -1) {
            err = -errno;
            what = "setsockopt SO_DETACH_FILTER";
        }
    }
    if (err == 0)
        return 0;
    log_event(LOG_ERROR, "listen_error", rc->name, "listen", LOG_STR, rc->listen, "step", LOG_STR,
              what, "error", LOG_STR, strerror(-err), LOG_END);
    for (i = 0; i < n; i++) {
        if (fds[i] != -1)
            close(fds[i]);
        fds[i] = -1;
    }
    return -1;
}

int udp_listen(struct worker *w, struct listener *ls)
{
    struct route *r = ls->r;
    const struct route_cfg *rc = r->cfg;
    struct udp_lsn *u = lsn_new(w, ls);
    const char *what = "malloc";
    socklen_t len = sizeof(u->local);
    int err = 0;

    if (u == NULL) {
        err = -ENOMEM;
    } else if (r->udp_fds != NULL && w->id < r->nudp_fds && r->udp_fds[w->id] != -1) {
        ls->fd = r->udp_fds[w->id];
        r->udp_fds[w->id] = -1;
    } else {
        /* Opened here, it would join the group late and move clients. */
        err = -EBADF;
        what = "socket (none opened for this worker)";
    }
    if (err == 0) {
        getsockname(ls->fd, (struct sockaddr *)&u->local, &len);
        u->wild = is_any((const struct sockaddr *)&u->local);
        u->v6 = u->local.ss_family == AF_INET6;
        err = loop_add(w->loop, ls->fd, LOOP_READ, udp_forward_cb, u);
        what = "epoll";
    }
    if (err != 0) {
        log_event(LOG_ERROR, "listen_error", rc->name, "listen", LOG_STR, rc->listen, "step",
                  LOG_STR, what, "error", LOG_STR, strerror(-err), LOG_END);
        if (ls->fd != -1)
            close(ls->fd);
        ls->fd = -1;
        if (u != NULL)
            udp_listen_free(u);
        return -1;
    }
    ls->udp = u;
    return 0;
}

void udp_stop(struct worker *w, struct listener *ls)
{
    struct udp_lsn *u = ls->udp;

    if (u != NULL)
        udp_reply_flush(u);
    if (ls->fd != -1) {
        loop_remove(w->loop, ls->fd);
        close(ls->fd);
        ls->fd = -1;
    }
    if (u == NULL)
        return;
    /* Closed in table order; the index goes as a whole afterwards, so no
     * entry moves while we walk it. */
    for (size_t i = 0; i < u->table.cap; i++) {
        struct udp_sess *s = u->table.v[i];
        if (s == NULL)
            continue;
        u->table.v[i] = NULL;
        u->table.n--;
        udp_session_release(u, s, "stopped");
        free(s);
    }
    udp_drop_flush(u);
    ls->udp = NULL;
    if (u->flush_queued)
        u->dead = 1; /* the deferred flush holds u: it frees it */
    else
        udp_listen_free(u);
}

/* ---- drain --------------------------------------------------------------- */

int udp_drain(struct worker *w, struct listener *ls)
{
    struct udp_lsn *u = ls->udp;
    struct listener **v;

    if (u == NULL || ls->fd == -1 || u->table.n == 0)
        return 0;
    v = realloc(w->udp_drain, (w->nudp_drain + 1) * sizeof(*v));
    if (v == NULL)
        return 0;
    w->udp_drain = v;
    v[w->nudp_drain++] = ls;
    /* Datagrams from clients stay unread; replies still leave by ls->fd. */
    loop_remove(w->loop, ls->fd);
    u->draining = 1;
    for (size_t i = 0; i < u->table.cap; i++) {
        struct udp_sess *s = u->table.v[i];
        if (s != NULL)
            udp_session_drain(u, s);
    }
    return 1;
}

/* Takes ls off the worker's draining list and closes it. */
static void drain_close(struct worker *w, struct listener *ls)
{
    for (size_t i = 0; i < w->nudp_drain; i++) {
        if (w->udp_drain[i] == ls) {
            w->udp_drain[i] = w->udp_drain[--w->nudp_drain];
            break;
        }
    }
    udp_stop(w, ls);
    /* The listener was kept from listen_close for its sessions: its
     * reference to its route goes with it. */
    route_unref(ls->r);
    free(ls);
}

void udp_listen_drained(struct udp_lsn *u)
{
    struct worker *w = u->w;

    drain_close(w, u->ls);
    worker_drained(w);
}

void udp_drain_end(struct worker *w)
{
    while (w->nudp_drain > 0)
        drain_close(w, w->udp_drain[w->nudp_drain - 1]);
    free(w->udp_drain);
    w->udp_drain = NULL;
}
