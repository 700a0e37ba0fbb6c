/*
 * route.c - a running route's policy and life (route_*); see route.h.
 */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <netinet/in.h>

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
    }
    free(cs);
}

static void set_bit(uint8_t *bits, uint8_t i)
{
    bits[i / 8] |= (uint8_t)(1u << (i % 8));
}

static int has_bit(const uint8_t *bits, uint8_t i)
{
    return (bits[i / 8] >> (i % 8)) & 1;
}

/* The header policy, decided once: which TLVs of an accepted header go on
 * (tlvs=pass: all but those the route sets itself, and the CRC32C, which is
 * recomputed if asked for) and which the route adds. A TLV policy of keep
 * and strip lists only changes tlv_drop; added TLVs only add entries. */
static void header_policy(struct route *r)
{
    const struct route_cfg *rc = r->cfg;

    if (!rc->tlvs_pass)
        memset(r->tlv_drop, 0xff, sizeof(r->tlv_drop));
    set_bit(r->tlv_drop, PP2_TYPE_CRC32C);
    if (rc->unique_id)
        set_bit(r->tlv_drop, PP2_TYPE_UNIQUE_ID);
    if (rc->authority) {
        set_bit(r->tlv_drop, PP2_TYPE_AUTHORITY);
        r->add[r->nadd++] = (struct route_tlv){.type = PP2_TYPE_AUTHORITY,
                                               .len = (uint16_t)strlen(rc->authority),
                                               .value = rc->authority};
    }
}

static void route_free(struct route *r)
{
    for (int i = 0; r->udp_fds != NULL && i < r->nudp_fds; i++) {
        if (r->udp_fds[i] != -1)
            close(r->udp_fds[i]);
    }
    free(r->udp_fds);
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
    if (r->ups == NULL || r->stats == NULL || (rc->proto == ROUTE_UDP && r->udp_fds == NULL)) {
        route_free(r);
        return NULL;
    }
    r->cfgs = cs;
    route_cfgs_ref(cs);
    for (size_t j = 0; j < rc->nup; j++)
        atomic_init(&r->ups[j].checked_up, 1);
    header_policy(r);
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

/* The accepted header's TLVs that the route passes on. */
static ssize_t pass_tlvs(const struct route *r, const struct pp_header *acc, uint8_t *buf,
                         size_t cap, ssize_t n)
{
    const uint8_t *p, *end;
    struct pp_tlv t;

    if (acc == NULL || acc->version != 2 || acc->tlv == NULL)
        return n;
    p = acc->tlv;
    end = p + acc->tlv_len;
    while (n >= 0 && pp_tlv_next(&p, end, &t) > 0) {
        if (!has_bit(r->tlv_drop, t.type))
            n = pp_build_v2_tlv(buf, cap, (size_t)n, t.type, t.value, t.len);
    }
    return n;
}

static ssize_t build_v2(const struct route *r, const struct route_hdr *h, uint8_t *buf,
                        size_t cap)
{
    int local = h->accepted != NULL && h->accepted->command == PP2_CMD_LOCAL;
    ssize_t n;

    n = pp_build_v2(buf, cap, local ? PP2_CMD_LOCAL : PP2_CMD_PROXY, h->socktype, h->src, h->dst);
    n = pass_tlvs(r, h->accepted, buf, cap, n);
    for (size_t i = 0; i < r->nadd && n >= 0; i++)
        n = pp_build_v2_tlv(buf, cap, (size_t)n, r->add[i].type, r->add[i].value, r->add[i].len);
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

ssize_t route_header(const struct route *r, const struct route_hdr *h, uint8_t *buf, size_t cap)
{
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
