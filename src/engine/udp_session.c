/*
 * udp_session.c - a UDP session per client (udp_session_*): keyed by the
 * datagram's source plus, when a header was accepted, the real client it
 * names; admitted by the route (allow/deny, max-conns), given an upstream
 * (balance) and a socket connected to it, so a reply is matched to its
 * client by the socket it arrives on, without a lookup; closed when idle.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "util/addr.h"
#include "util/log.h"
#include "engine/balance.h"
#include "engine/transparent.h"
#include "engine/udp.h"
#include "engine/udp_lsn.h"
#include "engine/worker.h"

/* At a drain, a session closes once quiet this long (or its idle-timeout). */
#define UDP_DRAIN_QUIET_MS 1000

/* A worker's share of the session cap (set once by udp_limits before the
 * workers start; 0: none). Each worker counts its own sessions
 * (worker_udp.n): no shared counter, no lock. */
static unsigned udp_cap;

void udp_limits(int max_fds, int nworkers)
{
    unsigned half = max_fds > 0 ? (unsigned)max_fds / 2 : 0;

    udp_cap = nworkers > 0 ? half / (unsigned)nworkers : half;
    if (udp_cap == 0)
        udp_cap = 1;
}

unsigned udp_session_cap(void)
{
    return udp_cap;
}

/* ---- the unanswered list: oldest first ------------------------------------ */

static void unans_add(struct worker_udp *wu, struct udp_sess *s)
{
    s->older = wu->unans_new;
    s->newer = NULL;
    if (wu->unans_new != NULL)
        wu->unans_new->newer = s;
    else
        wu->unans_old = s;
    wu->unans_new = s;
}

static void unans_del(struct worker_udp *wu, struct udp_sess *s)
{
    if (s->older != NULL)
        s->older->newer = s->newer;
    else
        wu->unans_old = s->newer;
    if (s->newer != NULL)
        s->newer->older = s->older;
    else
        wu->unans_new = s->older;
    s->older = s->newer = NULL;
}

void udp_session_answered(struct udp_lsn *u, struct udp_sess *s)
{
    if (s->answered)
        return;
    s->answered = 1;
    unans_del(&u->w->udp, s);
}

/* ---- close ------------------------------------------------------------------ */

static void sess_free(void *arg)
{
    free(arg);
}

static void release(struct udp_lsn *u, struct udp_sess *s, const char *reason, int level)
{
    uint64_t now = loop_now(u->w->loop);

    log_event(level, "udp_session_close", u->rc->name, "client", LOG_ADDR,
              (const struct sockaddr *)&s->client, "peer", LOG_ADDR,
              (const struct sockaddr *)&s->peer, "upstream", LOG_STR, s->up->name, "datagrams_in",
              LOG_UINT, s->dg_in, "datagrams_out", LOG_UINT, s->dg_out, "bytes_in", LOG_UINT,
              s->bytes_in, "bytes_out", LOG_UINT, s->bytes_out, "duration_ms", LOG_UINT,
              now - s->start_ms, "reason", LOG_STR, reason, "error", LOG_STR,
              s->err != 0 ? strerror(s->err) : NULL, LOG_END);
    loop_timer_cancel(u->w->loop, &s->timer);
    loop_remove(u->w->loop, s->fd);
    close(s->fd);
    route_leave(u->r);
    atomic_fetch_sub(&u->r->udp_sessions, 1);
    atomic_fetch_sub_explicit(&u->r->ups[s->up - u->rc->up].conns, 1, memory_order_relaxed);
    u->w->udp.n--;
    if (!s->answered)
        unans_del(&u->w->udp, s);
}

void udp_session_release(struct udp_lsn *u, struct udp_sess *s, const char *reason)
{
    release(u, s, reason, LOG_INFO);
}

/* The caller holds no pointer to s past this call, nor does anyone else but
 * the loop's event batch (whose stale events the loop skips) and callers
 * up the stack of this iteration: hence the deferred free, which cannot
 * fail (struct loop_work). */
static void sess_close(struct udp_lsn *u, struct udp_sess *s, const char *reason, int level)
{
    release(u, s, reason, level);
    udp_table_del(&u->table, s);
    loop_defer(u->w->loop, &s->free_work, sess_free, s);
}

/* How long a session may stay quiet: idle-timeout, or reply-timeout while
 * the upstream never answered, or the drain's second. */
static uint64_t quiet_limit(const struct udp_lsn *u, const struct udp_sess *s, int *unanswered)
{
    uint64_t idle = u->rc->idle_timeout_ms, reply = u->rc->reply_timeout_ms;

    *unanswered = !s->answered && reply != 0 && reply < idle;
    if (*unanswered)
        idle = reply;
    if (u->draining && idle > UDP_DRAIN_QUIET_MS)
        idle = UDP_DRAIN_QUIET_MS;
    return idle;
}

static void idle_cb(struct loop *l, struct timer *t, void *arg)
{
    struct udp_sess *s = arg;
    struct udp_lsn *u = s->u;
    uint64_t quiet = loop_now(l) - s->active_ms;
    int unanswered;
    uint64_t idle = quiet_limit(u, s, &unanswered);

    /* The deadline moves with traffic lazily: re-arming a heap timer for
     * every datagram would cost more than this check once per period. */
    if (quiet < idle) {
        loop_timer_set(l, t, idle - quiet, idle_cb, s);
        return;
    }
    sess_close(u, s, u->draining ? "drained" : unanswered ? "no reply" : "idle timeout", LOG_INFO);
    if (u->draining && u->table.n == 0)
        udp_listen_drained(u);
}

/*
 * Takes a place under the worker's share of the session cap. At the cap,
 * the worker's oldest session that never had a reply, of any route, gives
 * way, as conntrack's early drop does: a flood from spoofed sources (never
 * answered: the replies go nowhere) cannot keep a new client out. A
 * session of the batch being forwarded is skipped (forward holds it; there
 * are at most UDP_BATCH of them). Returns 0 (the place is taken: n counts
 * it), or -1 when every session had a reply.
 */
static int cap_take(struct udp_lsn *u)
{
    struct worker_udp *wu = &u->w->udp;
    struct udp_sess *s = wu->unans_old;
    struct udp_lsn *su;

    if (udp_cap != 0 && wu->n >= udp_cap) {
        while (s != NULL && s->batch == wu->batch)
            s = s->newer;
        if (s == NULL)
            return -1;
        su = s->u;
        udp_drop(su, DROP_EVICTED, NULL, (const struct sockaddr *)&s->peer,
                 (const struct sockaddr *)&s->client);
        /* Its close line is debug: a flood evicts one per datagram, and
         * the rate-limited udp_session_evicted line counts them. */
        sess_close(su, s, "evicted", LOG_DEBUG);
        if (su->draining && su->table.n == 0)
            udp_listen_drained(su);
    }
    wu->n++;
    return 0;
}

/* The real client of a datagram (route_relayed): the accepted header's
 * source for a PROXY command, else the datagram's source. */
static const struct sockaddr *slot_client(const struct udp_slot *sl)
{
    const struct sockaddr *src, *dst;

    route_relayed(sl->has_hdr ? &sl->hdr : NULL, (const struct sockaddr *)&sl->peer,
                  (const struct sockaddr *)&sl->local, &src, &dst);
    return src;
}

static void key_put(uint8_t *addr, uint16_t *port, const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *sin = (const struct sockaddr_in *)sa;
        memcpy(addr, &sin->sin_addr, 4);
        *port = sin->sin_port;
    } else {
        const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
        memcpy(addr, &sin6->sin6_addr, 16);
        *port = sin6->sin6_port;
    }
}

static void key_make(struct udp_key *k, const struct udp_slot *sl)
{
    const struct sockaddr *peer = (const struct sockaddr *)&sl->peer, *client = slot_client(sl);

    memset(k, 0, sizeof(*k));
    k->peer_family = (uint8_t)peer->sa_family;
    key_put(k->peer, &k->peer_port, peer);
    if (sl->has_hdr && client == peer) {
        k->client_kind = 1;
    } else if (sl->has_hdr) {
        k->client_kind = (uint8_t)client->sa_family;
        key_put(k->client, &k->client_port, client);
    }
}

/* The session's upstream socket: a plain one, or with transparent=on one
 * bound to the client's address (own: the header carried none, so
 * ppfwd's own address). Returns the fd, -EAFNOSUPPORT when the client's
 * family is not the upstream's, or -errno. */
static int sess_socket(struct udp_lsn *u, struct udp_sess *s, int own)
{
    return transparent_open(SOCK_DGRAM, s->up->addr.ss_family, u->rc->transparent,
                            own ? NULL : (const struct sockaddr *)&s->client);
}

/* Picks the session's upstream (balance=...) and connects a socket to it.
 * Returns 0, -EHOSTUNREACH when no upstream is live, or -errno. */
static int sess_connect(struct udp_lsn *u, struct udp_sess *s, int own)
{
    int i = balance_pick(u->r, (const struct sockaddr *)&s->client, loop_now(u->w->loop));
    int rcv = 1 << 20, err;

    if (i < 0)
        return -EHOSTUNREACH;
    s->up = &u->rc->up[i];
    s->fd = sess_socket(u, s, own);
    if (s->fd < 0) {
        err = s->fd;
        s->fd = -1;
        return err;
    }
    /* Replies to a window of large datagrams must queue, not drop. */
    setsockopt(s->fd, SOL_SOCKET, SO_RCVBUF, &rcv, sizeof(rcv));
    err = connect(s->fd, (const struct sockaddr *)&s->up->addr, s->up->addrlen) == -1 ? -errno : 0;
    if (err == 0)
        err = loop_add(u->w->loop, s->fd, LOOP_READ, udp_reply_cb, s);
    if (err != 0) {
        close(s->fd);
        s->fd = -1;
        return err;
    }
    atomic_fetch_add_explicit(&u->r->ups[i].conns, 1, memory_order_relaxed);
    return 0;
}

/* On a wildcard socket, replies must leave from the address the client
 * wrote to, or a client on a host with several addresses ignores them. */
static void sess_ctl(struct udp_sess *s, const struct sockaddr_storage *local)
{
    struct msghdr mh = {.msg_control = s->ctl, .msg_controllen = sizeof(s->ctl)};
    struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);

    memset(s->ctl, 0, sizeof(s->ctl));
    if (local->ss_family == AF_INET) {
        struct in_pktinfo pi = {.ipi_spec_dst = ((const struct sockaddr_in *)local)->sin_addr};
        cm->cmsg_level = IPPROTO_IP;
        cm->cmsg_type = IP_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        s->ctllen = CMSG_SPACE(sizeof(pi));
    } else if (local->ss_family == AF_INET6) {
        struct in6_pktinfo pi = {.ipi6_addr = ((const struct sockaddr_in6 *)local)->sin6_addr};
        cm->cmsg_level = IPPROTO_IPV6;
        cm->cmsg_type = IPV6_PKTINFO;
        cm->cmsg_len = CMSG_LEN(sizeof(pi));
        memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
        s->ctllen = CMSG_SPACE(sizeof(pi));
    }
}

static void sess_fill(struct udp_lsn *u, struct udp_sess *s, const struct udp_slot *sl)
{
    const struct sockaddr *client = slot_client(sl);

    s->u = u;
    s->start_ms = s->active_ms = loop_now(u->w->loop);
    memcpy(&s->peer, &sl->peer, sizeof(s->peer));
    s->peerlen = addr_len((const struct sockaddr *)&sl->peer);
    memcpy(&s->client, client,
           client->sa_family == AF_INET ? sizeof(struct sockaddr_in) : sizeof(struct sockaddr_in6));
    if (u->rc->unique_id)
        arc4random_buf(s->uid, sizeof(s->uid));
    if (u->wild)
        sess_ctl(s, &sl->local);
}

/* A new session for the slot's key, or NULL after counting the drop. */
static struct udp_sess *sess_open(struct udp_lsn *u, const struct udp_key *k, uint64_t h,
                                  const struct udp_slot *sl)
{
    const struct route_cfg *rc = u->rc;
    const struct sockaddr *client = slot_client(sl), *peer = (const struct sockaddr *)&sl->peer;
    struct udp_sess *s;
    enum admit a;
    int err, unanswered;

    if ((a = route_admit_client(u->r, client)) != ADMIT_OK || (a = route_enter(u->r)) != ADMIT_OK) {
        udp_drop_admit(u, a, 0, peer, client);
        return NULL;
    }
    if (cap_take(u) != 0) {
        route_leave(u->r);
        udp_drop(u, DROP_CAP, NULL, peer, client);
        return NULL;
    }
    s = calloc(1, sizeof(*s));
    err = s == NULL ? -ENOMEM : 0;
    if (err == 0) {
        sess_fill(u, s, sl);
        err = sess_connect(u, s, sl->has_hdr && client == peer);
    }
    if (err == 0 && (err = udp_table_add(&u->table, s, k, h)) != 0) {
        loop_remove(u->w->loop, s->fd);
        close(s->fd);
        atomic_fetch_sub_explicit(&u->r->ups[s->up - rc->up].conns, 1, memory_order_relaxed);
    }
    if (err != 0) {
        free(s);
        route_leave(u->r);
        u->w->udp.n--;
        udp_drop(u, err == -EHOSTUNREACH ? DROP_NO_UPSTREAM : DROP_SESSION,
                 err == -EAFNOSUPPORT
                     ? "transparent=on: the client's address family is not the upstream's"
                     : strerror(-err),
                 peer, client);
        return NULL;
    }
    atomic_fetch_add(&u->r->udp_sessions, 1);
    route_count(u->r, u->w->id, STAT_CONNS, 1);
    unans_add(&u->w->udp, s);
    loop_timer_set(u->w->loop, &s->timer, quiet_limit(u, s, &unanswered), idle_cb, s);
    log_event(LOG_DEBUG, "udp_session_open", rc->name, "client", LOG_ADDR, client, "peer", LOG_ADDR,
              peer, "upstream", LOG_STR, s->up->name, LOG_END);
    return s;
}

struct udp_sess *udp_session_get(struct udp_lsn *u, const struct udp_slot *sl)
{
    struct udp_key k;
    struct udp_sess *s;
    uint64_t h;

    key_make(&k, sl);
    h = udp_table_hash(&u->table, &k);
    s = udp_table_find(&u->table, &k, h);
    if (s == NULL)
        s = sess_open(u, &k, h, sl);
    if (s != NULL)
        s->batch = u->w->udp.batch;
    return s;
}

void udp_session_drain(struct udp_lsn *u, struct udp_sess *s)
{
    /* idle_cb runs at once and re-arms the timer for the shorter drain
     * deadline. */
    loop_timer_set(u->w->loop, &s->timer, 0, idle_cb, s);
}
