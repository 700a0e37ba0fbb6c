/*
 * balance.c - choosing an upstream (balance_*): round robin, least
 * connections, or the source address with rendezvous hashing, among the
 * upstreams that are live: not failed by the health check, and not within
 * the short pause that follows a failed connect (the passive check).
 *
 * The pause never leaves a route with nothing to try: when every upstream
 * the health check passes is paused (a lone upstream after one failed
 * connect, say), they are all tried again, as nginx marks its peers live
 * again "for quick recovery". Only the health check's verdict keeps an
 * upstream out for good.
 */
#include <string.h>
#include <netinet/in.h>

#include "engine/balance.h"
#include "engine/route.h"

/* How long a failed connect keeps an upstream out of the rotation. */
#define PASSIVE_DOWN_MS 2000

int balance_live(const struct route *r, size_t i, uint64_t now)
{
    const struct upstream_state *u = &r->ups[i];

    return atomic_load_explicit(&u->checked_up, memory_order_relaxed) &&
           now >= atomic_load_explicit(&u->down_until, memory_order_relaxed);
}

/* What a pick may take: the live upstreams, or, when none is live, those
 * only paused (now is then UINT64_MAX: every pause is over). */
static uint64_t pick_time(const struct route *r, uint64_t now)
{
    for (size_t i = 0; i < r->cfg->nup; i++) {
        if (balance_live(r, i, now))
            return now;
    }
    return UINT64_MAX;
}

/* A success ends the pause at once: the upstream is back, and while every
 * upstream was paused (all tried again) the one that answered must not stay
 * on a par with those still failing, nor read 0 in ppfwd_upstream_up. The
 * load first spares the shared cache line on the common path. */
void balance_result(struct route *r, size_t i, int err, uint64_t now)
{
    _Atomic uint64_t *until = &r->ups[i].down_until;

    if (err != 0)
        atomic_store_explicit(until, now + PASSIVE_DOWN_MS, memory_order_relaxed);
    else if (atomic_load_explicit(until, memory_order_relaxed) != 0)
        atomic_store_explicit(until, 0, memory_order_relaxed);
}

static int pick_roundrobin(struct route *r, uint64_t now)
{
    size_t n = r->cfg->nup, start = atomic_fetch_add(&r->next_up, 1);

    for (size_t k = 0; k < n; k++) {
        if (balance_live(r, (start + k) % n, now))
            return (int)((start + k) % n);
    }
    return -1;
}

/* Ties go round robin, so equal upstreams share an idle start evenly. */
static int pick_leastconn(struct route *r, uint64_t now)
{
    size_t n = r->cfg->nup, start = atomic_fetch_add(&r->next_up, 1);
    unsigned best_conns = 0;
    int best = -1;

    for (size_t k = 0; k < n; k++) {
        size_t i = (start + k) % n;
        unsigned c = atomic_load_explicit(&r->ups[i].conns, memory_order_relaxed);
        if (balance_live(r, i, now) && (best < 0 || c < best_conns)) {
            best = (int)i;
            best_conns = c;
        }
    }
    return best;
}

/* 64-bit FNV-1a then a final mix: cheap and well spread. */
static uint64_t hash_bytes(uint64_t h, const void *p, size_t n)
{
    const uint8_t *b = p;

    while (n--)
        h = (h ^ *b++) * 0x100000001b3ULL;
    return h;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    return h;
}

/*
 * Rendezvous (highest random weight) hashing: each client goes to the live
 * upstream with the highest hash of (client address, upstream). When an
 * upstream goes down only its own clients move, and they come back when it
 * returns; the others never move.
 */
static int pick_source(struct route *r, const struct sockaddr *client, uint64_t now)
{
    const void *ip = NULL;
    size_t iplen = 0;
    uint64_t base = 0xcbf29ce484222325ULL, best_h = 0;
    int best = -1;

    if (client->sa_family == AF_INET) {
        ip = &((const struct sockaddr_in *)(const void *)client)->sin_addr;
        iplen = 4;
    } else if (client->sa_family == AF_INET6) {
        ip = &((const struct sockaddr_in6 *)(const void *)client)->sin6_addr;
        iplen = 16;
    }
    base = hash_bytes(base, ip, iplen);
    for (size_t i = 0; i < r->cfg->nup; i++) {
        const char *name = r->cfg->up[i].name;
        uint64_t h = mix(hash_bytes(base, name, strlen(name)));
        if (balance_live(r, i, now) && (best < 0 || h > best_h)) {
            best = (int)i;
            best_h = h;
        }
    }
    return best;
}

/* Returns the index of the upstream for this client, or -1 if none is live. */
int balance_pick(struct route *r, const struct sockaddr *client, uint64_t now)
{
    now = pick_time(r, now);
    switch (r->cfg->balance) {
    case BALANCE_LEASTCONN:
        return pick_leastconn(r, now);
    case BALANCE_SOURCE:
        return pick_source(r, client, now);
    default:
        return pick_roundrobin(r, now);
    }
}
