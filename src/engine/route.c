/*
 * route.c - a running route's policy and life (route_*); see route.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

#include "util/addr.h"
#include "util/log.h"
#include "engine/route.h"

/* ---- life ---------------------------------------------------------------- */

struct route_cfgs *route_cfgs_new(struct cfg *c, int owned)
{
    struct route_cfgs *cs = calloc(1, sizeof(*cs));

    if (cs == NULL)
        return NULL;
    atomic_init(&cs->refs, 1);
    cs->cfg = c;
    cs->owned = owned;
    return cs;
}

struct route_cfgs *route_cfgs_wrap(struct cfg *c, route_cfgs_release_cb *release, void *arg)
{
    struct route_cfgs *cs = route_cfgs_new(c, 0);

    if (cs != NULL) {
        cs->release = release;
        cs->arg = arg;
    }
    return cs;
}

void route_cfgs_ref(struct route_cfgs *cs)
{
    atomic_fetch_add_explicit(&cs->refs, 1, memory_order_relaxed);
}

void route_cfgs_unref(struct route_cfgs *cs)
{
    /* acq_rel: whatever a thread did with the config happens before the
     * free in the thread that drops the last reference. */
    if (cs == NULL || atomic_fetch_sub_explicit(&cs->refs, 1, memory_order_acq_rel) != 1)
        return;
    if (cs->owned) {
        cfg_free(cs->cfg);
        free(cs->cfg);
    } else if (cs->release != NULL) {
        cs->release(cs->arg);
    }
    free(cs);
}

/* The header policy, decided once: which TLVs of an accepted header go on
 * (tlvs=pass: all but those the route sets itself; a CRC32C is never
 * copied, pp_build_v2_tlvs) and the block of TLVs the route adds, built
 * here with the library's builder on a scratch header. A TLV policy of keep
 * and strip lists only changes `pass`; added TLVs only grow the block.
 * Returns 0 or -ENOMEM. */
static int header_policy(struct route *r)
{
    const struct route_cfg *rc = r->cfg;
    uint8_t scratch[PP_V2_HDR_LEN + 3 + 65535];
    ssize_t n;

    /* tlvs=: the types passed on (never a received CRC32C); the route's own
     * AUTHORITY and UNIQUE_ID replace received ones. */
    tlvs_passed(rc->tlvs_mode, &rc->tlvs_list, &r->pass);
    if (rc->authority)
        r->pass.bits[PP2_TYPE_AUTHORITY >> 3] &= (uint8_t) ~(1u << (PP2_TYPE_AUTHORITY & 7));
    if (rc->unique_id)
        r->pass.bits[PP2_TYPE_UNIQUE_ID >> 3] &= (uint8_t) ~(1u << (PP2_TYPE_UNIQUE_ID & 7));
    r->pass_any = 0;
    for (size_t i = 0; i < sizeof(r->pass.bits); i++)
        r->pass_any |= r->pass.bits[i] != 0;
    /* Added after the passed ones: authority=, then add-tlv= in order. */
    if (rc->authority == NULL && rc->add_tlv.len == 0)
        return 0;
    n = pp_build_v2(scratch, sizeof(scratch), PP2_CMD_LOCAL, 0, NULL, NULL);
    if (rc->authority != NULL)
        n = pp_build_v2_tlv(scratch, sizeof(scratch), (size_t)n, PP2_TYPE_AUTHORITY,
                            rc->authority, strlen(rc->authority));
    if (n >= 0 && rc->add_tlv.len > 0)
        n = pp_build_v2_tlvs(scratch, sizeof(scratch), (size_t)n, rc->add_tlv.bytes,
                             rc->add_tlv.len, NULL);
    if (n < PP_V2_HDR_LEN)
        return -EINVAL; /* the config checked the lengths */
    r->add_len = (size_t)n - PP_V2_HDR_LEN;
    r->add = malloc(r->add_len);
    if (r->add == NULL)
        return -ENOMEM;
    memcpy(r->add, scratch + PP_V2_HDR_LEN, r->add_len);
    return 0;
}

static void route_free(struct route *r)
{
    for (int i = 0; r->udp_fds != NULL && i < r->nudp_fds; i++) {
        if (r->udp_fds[i] != -1)
            close(r->udp_fds[i]);
    }
    free(r->udp_fds);
    free(r->add);
    free(r->ups);
    free(r->stats);
    route_cfgs_unref(r->cfgs);
    free(r);
}

struct route *route_new(const struct route_cfg *rc, struct route_cfgs *cs, int nworkers)
{
    struct route *r = calloc(1, sizeof(*r));

    if (r == NULL)
        return NULL;
    atomic_init(&r->refs, 1);
    r->cfg = rc;
    r->ups = calloc(rc->nup, sizeof(*r->ups));
    r->stats = calloc((size_t)nworkers, sizeof(*r->stats));
    if (rc->proto == ROUTE_UDP && (r->udp_fds = calloc((size_t)nworkers, sizeof(int))) != NULL) {
        r->nudp_fds = nworkers;
        for (int i = 0; i < nworkers; i++)
            r->udp_fds[i] = -1;
    }
    r->cfgs = cs;
    route_cfgs_ref(cs);
    if (r->ups == NULL || r->stats == NULL || (rc->proto == ROUTE_UDP && r->udp_fds == NULL) ||
        header_policy(r) != 0) {
        route_free(r);
        return NULL;
    }
    for (size_t j = 0; j < rc->nup; j++)
        atomic_init(&r->ups[j].checked_up, 1);
    return r;
}

struct route *route_ref(struct route *r)
{
    atomic_fetch_add_explicit(&r->refs, 1, memory_order_relaxed);
    return r;
}

void route_unref(struct route *r)
{
    if (r != NULL && atomic_fetch_sub_explicit(&r->refs, 1, memory_order_acq_rel) == 1)
        route_free(r);
}

void route_transparent_no_reply(struct route *r, const char *upstream)
{
    if (atomic_exchange_explicit(&r->no_reply_hinted, 1, memory_order_relaxed))
        return;
    log_event(LOG_WARN, "transparent_no_reply", r->cfg->name, "upstream", LOG_STR, upstream, "hint",
              LOG_STR,
              "transparent=on: the upstream's reply to the client's address did not come back; "
              "is policy routing set up? For upstreams on this host: ip rule add from "
              "127.0.0.1/8 iif lo table 123; ip route add local 0.0.0.0/0 dev lo table 123 (and "
              "ip -6 rule add from ::1/128 iif lo table 123; ip -6 route add local ::/0 dev lo "
              "table 123); for other hosts see ppfwd(1), TRANSPARENT MODE",
              LOG_END);
}

/* ---- admission ------------------------------------------------------------ */

const struct admit_info route_admit_info[ADMIT_COUNT] = {
    [ADMIT_OK] = {STAT_COUNT, NULL},
    [ADMIT_DIRECT] = {STAT_COUNT, NULL},
    [ADMIT_MORE] = {STAT_COUNT, NULL},
    [ADMIT_NO_HEADER] = {STAT_HDR_INVALID, "no PROXY header"},
    [ADMIT_BAD_HEADER] = {STAT_HDR_INVALID, NULL},
    [ADMIT_TRUNCATED] = {STAT_HDR_INVALID, "truncated PROXY header"},
    [ADMIT_UNTRUSTED] = {STAT_HDR_UNTRUSTED, "PROXY header from an untrusted source"},
    [ADMIT_UNTRUSTED_SOURCE] = {STAT_HDR_UNTRUSTED, "untrusted source"},
    [ADMIT_DENIED] = {STAT_REFUSED, "client not allowed"},
    [ADMIT_FULL] = {STAT_REFUSED, "max-conns reached"},
};

const char *route_admit_reason(enum admit a, ssize_t n)
{
    if (a == ADMIT_BAD_HEADER)
        return pp_strerror((int)n);
    return route_admit_info[a].reason;
}

static int is_ip(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET || sa->sa_family == AF_INET6;
}

enum admit route_admit_peer(const struct route *r, const struct sockaddr *peer, int *trusted)
{
    *trusted = r->cfg->trusted_all || cidr_list_match(&r->cfg->trusted, peer);
    if (!*trusted && r->cfg->accept_proxy == ACCEPT_PROXY_REQUIRED)
        return ADMIT_UNTRUSTED_SOURCE;
    return ADMIT_OK;
}

enum admit route_admit_header(const struct route *r, ssize_t n, int trusted, int complete)
{
    enum accept_proxy mode = r->cfg->accept_proxy;

    if (n == -PP_EBADSIG)
        return mode == ACCEPT_PROXY_OPTIONAL ? ADMIT_DIRECT : ADMIT_NO_HEADER;
    if (n == 0)
        return complete ? ADMIT_TRUNCATED : ADMIT_MORE;
    if (n < 0)
        return ADMIT_BAD_HEADER;
    return trusted ? ADMIT_OK : ADMIT_UNTRUSTED;
}

enum admit route_admit_datagram(const struct route *r, ssize_t n, size_t len, int trusted)
{
    /* A datagram cannot grow: "a valid prefix, more to come" only means a
     * header attempt when the whole signature is there. */
    if (n == 0 && len < PP_V2_SIG_LEN)
        n = -PP_EBADSIG;
    return route_admit_header(r, n, trusted, 1);
}

enum admit route_admit_client(const struct route *r, const struct sockaddr *client)
{
    const struct route_cfg *rc = r->cfg;

    if (is_ip(client) && (cidr_list_match(&rc->deny, client) ||
                          (!rc->allow_all && !cidr_list_match(&rc->allow, client))))
        return ADMIT_DENIED;
    return ADMIT_OK;
}

enum admit route_enter(struct route *r)
{
    unsigned max = r->cfg->max_conns;

    if (atomic_fetch_add(&r->conns, 1) < max || max == 0)
        return ADMIT_OK;
    atomic_fetch_sub(&r->conns, 1);
    return ADMIT_FULL;
}

void route_leave(struct route *r)
{
    atomic_fetch_sub(&r->conns, 1);
}

/* ---- the header sent upstream --------------------------------------------- */

void route_relayed(const struct pp_header *accepted, const struct sockaddr *peer,
                   const struct sockaddr *local, const struct sockaddr **src,
                   const struct sockaddr **dst)
{
    if (accepted != NULL && accepted->command == PP2_CMD_PROXY && is_ip(&accepted->src.sa)) {
        *src = &accepted->src.sa;
        *dst = &accepted->dst.sa;
        return;
    }
    *src = peer;
    *dst = local;
}

static ssize_t build_v2(const struct route *r, const struct route_hdr *h, uint8_t *buf,
                        size_t cap)
{
    const struct pp_header *acc = h->accepted;
    int local = acc != NULL && acc->command == PP2_CMD_LOCAL;
    ssize_t n;

    n = pp_build_v2(buf, cap, local ? PP2_CMD_LOCAL : PP2_CMD_PROXY, h->socktype, h->src, h->dst);
    if (n >= 0 && r->pass_any && acc != NULL && acc->version == 2 && acc->tlv_len > 0)
        n = pp_build_v2_tlvs(buf, cap, (size_t)n, acc->tlv, acc->tlv_len, &r->pass);
    if (n >= 0 && r->add != NULL)
        n = pp_build_v2_tlvs(buf, cap, (size_t)n, r->add, r->add_len, NULL);
    if (n >= 0 && r->cfg->unique_id) {
        uint8_t id[16];

        if (h->unique_id == NULL)
            arc4random_buf(id, sizeof(id));
        n = pp_build_v2_tlv(buf, cap, (size_t)n, PP2_TYPE_UNIQUE_ID,
                            h->unique_id ? h->unique_id : id, sizeof(id));
    }
    if (n >= 0 && r->cfg->crc32c)
        n = pp_build_v2_crc32c(buf, cap, (size_t)n);
    return n;
}

/* The socket's own peer and local address, both IPv4-mapped (an IPv4
 * client of a dual-stack listener, the default bind), go as the IPv4
 * addresses they are: TCP4/UDP4, not TCP6 ::ffff:a.b.c.d. Addresses relayed
 * from an accepted header go on as they came. */
static void own_unmapped(const struct route_hdr *h, struct route_hdr *out,
                         struct sockaddr_storage *src, struct sockaddr_storage *dst)
{
    const struct pp_header *acc = h->accepted;

    *out = *h;
    if (acc != NULL && acc->command == PP2_CMD_PROXY && is_ip(&acc->src.sa))
        return;
    if (h->src == NULL || h->dst == NULL || addr_unmapped(h->src, src) == h->src ||
        addr_unmapped(h->dst, dst) == h->dst)
        return;
    out->src = (const struct sockaddr *)src;
    out->dst = (const struct sockaddr *)dst;
}

ssize_t route_header(const struct route *r, const struct route_hdr *hin, uint8_t *buf, size_t cap)
{
    struct sockaddr_storage src, dst;
    struct route_hdr hv, *h = &hv;

    if (r->cfg->send_proxy == SEND_PROXY_OFF)
        return 0;
    own_unmapped(hin, &hv, &src, &dst);
    switch (r->cfg->send_proxy) {
    case SEND_PROXY_V1:
        if (h->accepted != NULL && h->accepted->command == PP2_CMD_LOCAL)
            return pp_build_v1(buf, cap, NULL, NULL);
        return pp_build_v1(buf, cap, h->src, h->dst);
    case SEND_PROXY_V2:
        return build_v2(r, h, buf, cap);
    default:
        return 0;
    }
}

/* ---- counters ------------------------------------------------------------- */

uint64_t route_stat_sum(const struct route *r, int nworkers, enum route_stat k)
{
    uint64_t n = 0;

    for (int i = 0; i < nworkers; i++)
        n += atomic_load_explicit(&r->stats[i][k], memory_order_relaxed);
    return n;
}
