/*
 * keys.c - the route key table: for each key, how its text is parsed, where
 * the value lives in struct route_cfg, and how two values compare and are
 * freed (cfg_key_*). cfg_route_equal and cfg_free walk the table, so a key
 * added later is compared on reload and freed without another list to keep.
 */
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <proxyproto.h>

#include "config/config.h"
#include "config/internal.h"

#define FIELD(r, k, type) ((type *)(void *)((char *)(r) + (k)->off))
#define CFIELD(r, k, type) ((const type *)(const void *)((const char *)(r) + (k)->off))

/* ---- values ---------------------------------------------------------------- */

int cfg_parse_duration(const char *s, unsigned *ms)
{
    static const struct {
        const char *unit;
        unsigned long long mult;
    } units[] = {{"ms", 1}, {"s", 1000}, {"m", 60000}, {"h", 3600000}, {"", 1000}};
    unsigned long long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoull(s, &end, 10);
    if (errno != 0)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++) {
        if (strcmp(end, units[i].unit) != 0)
            continue;
        if (v > UINT_MAX / units[i].mult)
            return -EINVAL;
        *ms = (unsigned)(v * units[i].mult);
        return 0;
    }
    return -EINVAL;
}

int cfg_parse_uint(const char *s, unsigned long max, unsigned *out)
{
    unsigned long v;
    char *end;

    if (*s < '0' || *s > '9')
        return -EINVAL;
    errno = 0;
    v = strtoul(s, &end, 10);
    if (errno != 0 || *end != '\0' || v > max)
        return -EINVAL;
    *out = (unsigned)v;
    return 0;
}

/* ---- setters --------------------------------------------------------------- */

static const char *set_enum(struct route_cfg *r, const struct key *k, const char *v,
                            const struct place *at)
{
    (void)at;
    for (int i = 0; k->words[i] != NULL; i++) {
        if (strcmp(v, k->words[i]) == 0) {
            *FIELD(r, k, int) = i;
            return NULL;
        }
    }
    return "bad value";
}

int cfg_parse_bool(const char *s)
{
    static const char *const on[] = {"on", "true", "yes", "1", NULL};
    static const char *const off[] = {"off", "false", "no", "0", NULL};

    for (int i = 0; on[i] != NULL; i++) {
        if (strcasecmp(s, on[i]) == 0)
            return 1;
        if (strcasecmp(s, off[i]) == 0)
            return 0;
    }
    return -EINVAL;
}

static const char *set_bool(struct route_cfg *r, const struct key *k, const char *v,
                            const struct place *at)
{
    int b = cfg_parse_bool(v);

    (void)at;
    if (b < 0)
        return "bad value (expected on or off)";
    *FIELD(r, k, int) = b;
    return NULL;
}

/* A timeout of 0 would close everything at once; 0 is refused rather than
 * read as "the default" or "none", which would be a silent surprise. */
static const char *set_timeout(struct route_cfg *r, const struct key *k, const char *v,
                               const struct place *at)
{
    unsigned ms;

    (void)at;
    if (cfg_parse_duration(v, &ms) != 0 || ms == 0)
        return "bad duration (expected more than 0, e.g. 500ms, 5s, 5m, 1h)";
    *FIELD(r, k, unsigned) = ms;
    return NULL;
}

/* A check interval, or "off" (also 0), the default. */
static const char *set_check(struct route_cfg *r, const struct key *k, const char *v,
                             const struct place *at)
{
    (void)at;
    if (strcmp(v, "off") == 0)
        v = "0";
    return cfg_parse_duration(v, FIELD(r, k, unsigned)) == 0
               ? NULL
               : "bad duration (expected off or e.g. 500ms, 5s, 5m, 1h)";
}

static const char *set_count(struct route_cfg *r, const struct key *k, const char *v,
                             const struct place *at)
{
    unsigned n;

    (void)at;
    if (cfg_parse_uint(v, 10000000, &n) != 0 || n == 0)
        return "bad value (expected a positive number)";
    *FIELD(r, k, unsigned) = n;
    return NULL;
}

static const char *set_authority(struct route_cfg *r, const struct key *k, const char *v,
                                 const struct place *at)
{
    char **s = FIELD(r, k, char *);

    (void)at;
    if (*v == '\0' || strlen(v) > PP2_AUTHORITY_MAX)
        return "bad value (expected 1-255 bytes)";
    free(*s);
    *s = strdup(v);
    return *s ? NULL : "out of memory";
}

/* tlvs=pass|drop|keep:LIST|strip:LIST (config/tlv_policy.c). */
static const char *set_tlvs(struct route_cfg *r, const struct key *k, const char *v,
                            const struct place *at)
{
    char err[256];

    (void)k;
    if (tlvs_parse(v, &r->tlvs_mode, &r->tlvs_list, err, sizeof(err)) != 0)
        cfg_problem(at, at->key, "%s", err);
    return NULL;
}

static int eq_tlvs(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    (void)k;
    return a->tlvs_mode == b->tlvs_mode &&
           memcmp(&a->tlvs_list, &b->tlvs_list, sizeof(a->tlvs_list)) == 0;
}

/* add-tlv=TYPE=VALUE: one more TLV, after those given before. */
static const char *set_add_tlv(struct route_cfg *r, const struct key *k, const char *v,
                               const struct place *at)
{
    char err[320];

    (void)k;
    if (tlv_block_add(&r->add_tlv, v, err, sizeof(err)) != 0)
        cfg_problem(at, at->key, "%s", err);
    return NULL;
}

static int eq_add_tlv(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    (void)k;
    return a->add_tlv.len == b->add_tlv.len &&
           (a->add_tlv.len == 0 || memcmp(a->add_tlv.bytes, b->add_tlv.bytes, a->add_tlv.len) == 0);
}

static void clear_add_tlv(struct route_cfg *r, const struct key *k)
{
    (void)k;
    tlv_block_free(&r->add_tlv);
}

/* A comma-separated CIDR list; the flag beside it ("all") is cleared. */
static const char *set_cidrs(struct route_cfg *r, const struct key *k, const char *v,
                             const struct place *at)
{
    struct cidr_list *l = FIELD(r, k, struct cidr_list);
    char *copy = strdup(v), *save = NULL;
    const char *err = NULL;
    struct cidr c;

    (void)at;
    if (copy == NULL)
        return "out of memory";
    cidr_list_free(l);
    for (char *t = strtok_r(copy, ", ", &save); t && !err; t = strtok_r(NULL, ", ", &save)) {
        if (cidr_parse(t, &c) != 0)
            err = "bad network (expected e.g. 10.0.0.0/8, 2001:db8::/32)";
        else if (cidr_list_add(l, &c) != 0)
            err = "out of memory";
    }
    free(copy);
    if (!err && l->n == 0)
        err = "empty list";
    if (!err && k->all_off != 0)
        *(int *)(void *)((char *)r + k->all_off) = 0;
    return err;
}

/* ---- comparing and freeing ------------------------------------------------- */

static int str_equal(const char *a, const char *b)
{
    return a == b || (a && b && strcmp(a, b) == 0);
}

static int eq_int(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    return *CFIELD(a, k, int) == *CFIELD(b, k, int);
}

static int eq_uint(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    return *CFIELD(a, k, unsigned) == *CFIELD(b, k, unsigned);
}

static int eq_str(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    const char *const *x = (const char *const *)(const void *)((const char *)a + k->off);
    const char *const *y = (const char *const *)(const void *)((const char *)b + k->off);

    return str_equal(*x, *y);
}

static void clear_str(struct route_cfg *r, const struct key *k)
{
    free(*FIELD(r, k, char *));
    *FIELD(r, k, char *) = NULL;
}

/* The "every address" flag beside a CIDR list (0 for a list without one). */
static int all_flag(const struct route_cfg *r, const struct key *k)
{
    return k->all_off != 0 ? *(const int *)(const void *)((const char *)r + k->all_off) : 0;
}

/* The list and its flag. Field by field: struct padding is not guaranteed
 * to compare equal. */
static int eq_cidrs(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    const struct cidr_list *x = CFIELD(a, k, struct cidr_list), *y = CFIELD(b, k, struct cidr_list);

    if (x->n != y->n || all_flag(a, k) != all_flag(b, k))
        return 0;
    for (size_t i = 0; i < x->n; i++) {
        if (x->v[i].family != y->v[i].family || x->v[i].bits != y->v[i].bits ||
            memcmp(x->v[i].addr, y->v[i].addr, sizeof(x->v[i].addr)) != 0)
            return 0;
    }
    return 1;
}

static void clear_cidrs(struct route_cfg *r, const struct key *k)
{
    cidr_list_free(FIELD(r, k, struct cidr_list));
}

/* The listen URL as written, and what it was read into. */
static int eq_listen(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    (void)k;
    return str_equal(a->listen, b->listen) && a->proto == b->proto && a->family == b->family &&
           a->bindlen == b->bindlen && memcmp(&a->bind, &b->bind, a->bindlen) == 0;
}

static int eq_upstreams(const struct route_cfg *a, const struct route_cfg *b, const struct key *k)
{
    (void)k;
    if (a->nup != b->nup)
        return 0;
    for (size_t i = 0; i < a->nup; i++) {
        if (!str_equal(a->up[i].name, b->up[i].name) || a->up[i].addrlen != b->up[i].addrlen ||
            memcmp(&a->up[i].addr, &b->up[i].addr, a->up[i].addrlen) != 0)
            return 0;
    }
    return 1;
}

static void clear_upstreams(struct route_cfg *r, const struct key *k)
{
    (void)k;
    for (size_t i = 0; i < r->nup; i++)
        free(r->up[i].name);
    free(r->up);
    r->up = NULL;
    r->nup = 0;
}

/* ---- the table ------------------------------------------------------------- */

static const char *const accept_words[] = {"off", "optional", "required", NULL};
static const char *const send_words[] = {"off", "v1", "v2", NULL};
static const char *const balance_words[] = {"roundrobin", "leastconn", "source", NULL};

#define OFF(f) offsetof(struct route_cfg, f)
#define ENUM(n, f, w)                                                                              \
    {                                                                                              \
        .name = n, .set = set_enum, .equal = eq_int, .off = OFF(f), .words = w                     \
    }
#define BOOL(n, f)                                                                                 \
    {                                                                                              \
        .name = n, .set = set_bool, .equal = eq_int, .off = OFF(f)                                 \
    }
#define UINT(n, s, f, tcp)                                                                         \
    {                                                                                              \
        .name = n, .set = s, .equal = eq_uint, .off = OFF(f), .tcp_only = tcp                      \
    }
#define CIDRS(n, f, all)                                                                           \
    {                                                                                              \
        .name = n, .set = set_cidrs, .equal = eq_cidrs, .clear = clear_cidrs, .off = OFF(f),       \
        .all_off = all                                                                             \
    }

static const struct key table[] = {
    {.name = "listen",
     .set = cfg_set_listen,
     .equal = eq_listen,
     .clear = clear_str,
     .off = OFF(listen)},
    {.name = "upstream",
     .set = cfg_set_upstreams,
     .equal = eq_upstreams,
     .clear = clear_upstreams,
     .off = OFF(up)},
    ENUM("accept-proxy", accept_proxy, accept_words),
    CIDRS("trusted", trusted, OFF(trusted_all)),
    ENUM("send-proxy", send_proxy, send_words),
    {.name = "tlvs", .set = set_tlvs, .equal = eq_tlvs, .off = OFF(tlvs_mode)},
    {.name = "add-tlv",
     .set = set_add_tlv,
     .equal = eq_add_tlv,
     .clear = clear_add_tlv,
     .off = OFF(add_tlv),
     .repeatable = 1},
    {.name = "authority",
     .set = set_authority,
     .equal = eq_str,
     .clear = clear_str,
     .off = OFF(authority)},
    BOOL("unique-id", unique_id),
    BOOL("crc32c", crc32c),
    BOOL("transparent", transparent),
    CIDRS("allow", allow, OFF(allow_all)),
    CIDRS("deny", deny, 0),
    UINT("max-conns", set_count, max_conns, 0),
    ENUM("balance", balance, balance_words),
    {.name = "next-upstream", .set = set_bool, .equal = eq_int, .off = OFF(next_upstream),
     .tcp_only = 1},
    UINT("check", set_check, check_ms, 1),
    UINT("connect-timeout", set_timeout, connect_timeout_ms, 1),
    UINT("header-timeout", set_timeout, header_timeout_ms, 1),
    UINT("idle-timeout", set_timeout, idle_timeout_ms, 0),
    UINT("reply-timeout", set_timeout, reply_timeout_ms, 0),
};
_Static_assert(sizeof(table) / sizeof(table[0]) == CFG_NKEYS, "CFG_NKEYS is the table's size");
const struct key *const cfg_keys = table;

const struct key *cfg_key_find(const char *name)
{
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        const char *a = cfg_keys[i].name, *b = name;
        while (*a && (*a == *b || (*a == '-' && *b == '_')))
            a++, b++;
        if (*a == '\0' && *b == '\0')
            return &cfg_keys[i];
    }
    return NULL;
}

void cfg_key_set(struct route_cfg *r, const struct place *at, const char *name, const char *v)
{
    const struct key *k = cfg_key_find(name);
    struct place here;
    const char *err;

    if (k == NULL) {
        cfg_problem(at, name, "unknown key");
        return;
    }
    if (at->key_lines != NULL && at->key_lines[k - cfg_keys] != 0 && !k->repeatable) {
        cfg_problem(at, name, "given twice");
        return;
    }
    if (at->key_lines != NULL && at->key_lines[k - cfg_keys] == 0)
        at->key_lines[k - cfg_keys] = at->line != 0 ? at->line : 1;
    here = *at;
    here.key = name;
    err = k->set(r, k, v, &here);
    if (err == NULL)
        return;
    if (k->words != NULL) {
        char expect[128] = "";
        for (int i = 0; k->words[i] != NULL; i++)
            snprintf(expect + strlen(expect), sizeof(expect) - strlen(expect), "%s%s",
                     i ? ", " : "", k->words[i]);
        cfg_problem(at, name, "%s '%s' (expected %s)", err, v, expect);
    } else {
        cfg_problem(at, name, "%s: '%s'", err, v);
    }
}

int cfg_route_equal(const struct route_cfg *a, const struct route_cfg *b)
{
    if (!str_equal(a->name, b->name))
        return 0;
    for (size_t i = 0; i < CFG_NKEYS; i++) {
        if (!cfg_keys[i].equal(a, b, &cfg_keys[i]))
            return 0;
    }
    return 1;
}
