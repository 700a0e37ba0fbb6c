/*
 * udp_drop.c - what a UDP listener drops (udp_drop*): each reason counted
 * in the route's metrics and logged at most once per second per listener,
 * with the count since the previous line, so a flood costs one line.
 */
#define _GNU_SOURCE
#include "util/addr.h"
#include "util/log.h"
#include "engine/udp_lsn.h"
#include "engine/worker.h"

/* At most one warning line per reason, listener and period. */
#define UDP_WARN_MS 1000

struct drop_info {
    const char *event;
    const char *reason;   /* NULL: the error text given at the drop */
    enum route_stat stat; /* the metrics counter it adds to; STAT_COUNT: none */
};

static const struct drop_info drop_info[DROP_ADMIT] = {
    [DROP_SESSION] = {"udp_session_refused", NULL, STAT_REFUSED},
    [DROP_NO_UPSTREAM] = {"udp_session_refused", "no live upstream", STAT_UPSTREAM_ERRORS},
    [DROP_TRUNC] = {"udp_dropped", "datagram truncated (larger than 65,536 bytes)", STAT_COUNT},
    [DROP_SEND_UP] = {"udp_dropped", NULL, STAT_UPSTREAM_ERRORS},
    [DROP_SEND_CLIENT] = {"udp_dropped", NULL, STAT_COUNT},
    [DROP_UPSTREAM] = {"upstream_error", NULL, STAT_UPSTREAM_ERRORS},
    [DROP_CAP] = {"udp_session_refused", "UDP session cap reached (half the fd limit)",
                  STAT_REFUSED},
    [DROP_EVICTED] = {"udp_session_evicted",
                      "UDP session cap reached: the oldest unanswered session gave way",
                      STAT_COUNT},
    [DROP_FORGED] = {"udp_dropped", "forged IPv4-mapped source (the datagram came as IPv6)",
                     STAT_HDR_UNTRUSTED},
};

/* A refusal by the route's admission: a header's is a proxy_header_refused,
 * a client's a udp_session_refused, with route.c's counter and reason. */
static struct drop_info info(enum udp_drop why)
{
    const struct admit_info *a;

    if (why < DROP_ADMIT)
        return drop_info[why];
    a = &route_admit_info[why - DROP_ADMIT];
    return (struct drop_info){a->stat == STAT_REFUSED ? "udp_session_refused"
                                                      : "proxy_header_refused",
                              a->reason, a->stat};
}

void udp_drop(struct udp_lsn *u, enum udp_drop why, const char *error,
              const struct sockaddr *peer, const struct sockaddr *client)
{
    struct udp_warn *wr = &u->warn[why];
    uint64_t now = loop_now(u->w->loop);
    struct drop_info d = info(why);
    char raw[ADDR_STRLEN];
    const char *forged = NULL;

    wr->total++;
    wr->held++;
    if (d.stat != STAT_COUNT)
        route_count(u->r, u->w->id, d.stat, 1);
    if (wr->last_ms != 0 && now - wr->last_ms < UDP_WARN_MS)
        return;
    /* The log shows ::ffff:a.b.c.d as the IPv4 client it stands for; a forged
     * one (it came over IPv6) is shown as it came: one "peer" field or the
     * other, the unused one NULL and left out. */
    if (why == DROP_FORGED && peer != NULL && addr_format(peer, raw, sizeof(raw)) >= 0) {
        forged = raw;
        peer = NULL;
    }
    log_event(LOG_WARN, d.event, u->rc->name, "proto", LOG_STR, "udp", "reason", LOG_STR,
              d.reason ? d.reason : error, "peer", LOG_ADDR, peer, "peer", LOG_STR, forged,
              "client", LOG_ADDR, client, "dropped", LOG_UINT, wr->held, "dropped_total",
              LOG_UINT, wr->total, LOG_END);
    wr->last_ms = now;
    wr->held = 0;
}

void udp_drop_admit(struct udp_lsn *u, enum admit a, ssize_t n, const struct sockaddr *peer,
                    const struct sockaddr *client)
{
    udp_drop(u, (enum udp_drop)(DROP_ADMIT + a), route_admit_reason(a, n), peer, client);
}

void udp_drop_flush(struct udp_lsn *u)
{
    for (int i = 0; i < DROP_MAX; i++) {
        struct drop_info d = info((enum udp_drop)i);

        if (u->warn[i].held == 0)
            continue;
        log_event(LOG_WARN, d.event, u->rc->name, "proto", LOG_STR, "udp", "reason", LOG_STR,
                  d.reason ? d.reason : "(several)", "dropped", LOG_UINT, u->warn[i].held,
                  "dropped_total", LOG_UINT, u->warn[i].total, LOG_END);
    }
}
