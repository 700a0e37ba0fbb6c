/*
 * test_roundtrip.c - property test: random headers built with the builders
 * parse back to exactly what was put in, and building again from the parsed
 * header gives the same bytes.
 *
 * 20000 headers: v1 (TCP4, TCP6 with mixed families, UNKNOWN) and v2 (LOCAL,
 * PROXY UNSPEC, TCP4/UDP4, TCP6/UDP6, UNIX stream/dgram) with random
 * addresses, ports, UNIX paths and up to 8 random TLVs (SSL through
 * pp_build_ssl, vendor TLVs in their documented layouts, values up to ~300
 * bytes), with or without a trailing CRC32C and application bytes after the
 * header. Fixed-seed xorshift: the seed is printed at the start, PP_SEED=N in
 * the environment runs another sequence, and round_no holds the header number
 * for a debugger when an assertion fails.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <arpa/inet.h>
#include <cmocka.h>

#include "proxyproto.h"
#include "rng.h"
#include "vectors.h"

#define ROUNDS 20000
#define MAX_TLVS 8
#define BUF_CAP 16384
#define DEFAULT_SEED 0x5EED0F00DULL

static uint64_t seed;
static struct rng prng;
static unsigned round_no;
/* What the run covered, checked at the end so a generator change cannot
 * silently stop exercising a family or TLV kind. */
static unsigned seen_fam[2][256], seen_tlv_type[256], seen_ssl_fields, seen_crc, seen_tlv_bytes;

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng_next(&prng) >> 40);
}

/* ---- random inputs -------------------------------------------------------- */

static uint16_t random_port(void)
{
    static const uint16_t edges[] = {0, 1, 9, 10, 99, 100, 999, 1000, 9999, 10000, 65535};
    if (rng_below(&prng, 4) == 0)
        return edges[rng_below(&prng, sizeof(edges) / sizeof(edges[0]))];
    return (uint16_t)rng_next(&prng);
}

static void random_in4(union pp_addr *a)
{
    memset(a, 0, sizeof(*a));
    a->sin.sin_family = AF_INET;
    a->sin.sin_port = htons(random_port());
    uint8_t *b = (uint8_t *)&a->sin.sin_addr;
    fill_random(b, 4);
    /* Single digits, zeros and 255s exercise the dotted-quad writer. */
    for (int i = 0; i < 4; i++) {
        unsigned r = rng_below(&prng, 4);
        if (r == 0)
            b[i] = 0;
        else if (r == 1)
            b[i] = (uint8_t)rng_below(&prng, 10);
        else if (r == 2)
            b[i] = 255;
    }
}

static void random_in6(union pp_addr *a)
{
    memset(a, 0, sizeof(*a));
    a->sin6.sin6_family = AF_INET6;
    a->sin6.sin6_port = htons(random_port());
    uint8_t *b = a->sin6.sin6_addr.s6_addr;
    if (rng_below(&prng, 8) == 0) {
        b[10] = b[11] = 0xff; /* IPv4-mapped */
        fill_random(b + 12, 4);
        return;
    }
    /* Zero groups often, so "::" lands everywhere. */
    for (int g = 0; g < 8; g++) {
        unsigned r = rng_below(&prng, 3);
        uint16_t v = r == 0   ? 0
                     : r == 1 ? (uint16_t)rng_below(&prng, 16)
                              : (uint16_t)rng_next(&prng);
        b[2 * g] = (uint8_t)(v >> 8);
        b[2 * g + 1] = (uint8_t)v;
    }
}

static void random_unix(union pp_addr *a)
{
    memset(a, 0, sizeof(*a));
    a->sun.sun_family = AF_UNIX;
    size_t n =
        rng_below(&prng, 4) == 0 ? PP2_UNIX_PATH_LEN : rng_below(&prng, PP2_UNIX_PATH_LEN + 1);
    for (size_t i = 0; i < n; i++)
        a->sun.sun_path[i] = (char)(1 + rng_below(&prng, 255));
}

/* The address pp_parse returns for one the builder was given, in a TCP6 or
 * UDP6 header: IPv4 comes back IPv4-mapped. */
static void as_v6(const union pp_addr *in, union pp_addr *out)
{
    if (in->sa.sa_family == AF_INET6) {
        *out = *in;
        return;
    }
    memset(out, 0, sizeof(*out));
    out->sin6.sin6_family = AF_INET6;
    out->sin6.sin6_port = in->sin.sin_port;
    out->sin6.sin6_addr.s6_addr[10] = 0xff;
    out->sin6.sin6_addr.s6_addr[11] = 0xff;
    memcpy(out->sin6.sin6_addr.s6_addr + 12, &in->sin.sin_addr, 4);
}

static void assert_same_addr(const union pp_addr *got, const union pp_addr *want)
{
    assert_true(got->sa.sa_family == want->sa.sa_family);
    switch (want->sa.sa_family) {
    case AF_INET:
        assert_true(memcmp(&got->sin.sin_addr, &want->sin.sin_addr, 4) == 0);
        assert_true(got->sin.sin_port == want->sin.sin_port);
        break;
    case AF_INET6:
        assert_true(memcmp(&got->sin6.sin6_addr, &want->sin6.sin6_addr, 16) == 0);
        assert_true(got->sin6.sin6_port == want->sin6.sin6_port);
        break;
    case AF_UNIX:
        assert_true(memcmp(got->sun.sun_path, want->sun.sun_path, PP2_UNIX_PATH_LEN) == 0);
        break;
    default:
        break;
    }
}

/* ---- the model: what was built and what must come back -------------------- */

struct tlv_model {
    uint8_t type;
    uint16_t len;
    uint8_t value[PP2_SSL_FIXED_LEN + 8 * (3 + 300)];
    int is_ssl;
    struct pp_ssl ssl; /* strings point into ssl_text */
    char ssl_text[8][300];
};

struct model {
    int version, command, socktype, crc;
    uint8_t fam;
    union pp_addr src, dst; /* given to the builder */
    int src_null, dst_null;
    union pp_addr esrc, edst; /* expected back */
    int esocktype;
    unsigned ntlv;
    struct tlv_model tlv[MAX_TLVS];
};

static void random_ssl(struct tlv_model *t)
{
    struct pp_ssl *s = &t->ssl;
    struct pp_str *fields[8] = {&s->version, &s->cn,    &s->cipher,     &s->sig_alg,
                                &s->key_alg, &s->group, &s->sig_scheme, &s->client_cert};
    memset(s, 0, sizeof(*s));
    s->client = (uint8_t)rng_below(&prng, 8);
    s->verify = rng_below(&prng, 2) ? 0 : (uint32_t)rng_next(&prng);
    for (int i = 0; i < 8; i++) {
        if (rng_below(&prng, 2))
            continue; /* absent */
        size_t n = 1 + rng_below(&prng, i == 7 ? 299 : 40);
        if (i == 7)
            fill_random((uint8_t *)t->ssl_text[i], n);
        else
            for (size_t k = 0; k < n; k++)
                t->ssl_text[i][k] = (char)(0x21 + rng_below(&prng, 94));
        fields[i]->ptr = t->ssl_text[i];
        fields[i]->len = n;
    }
    ssize_t n = pp_build_ssl(t->value, sizeof(t->value), s);
    assert_true(n >= PP2_SSL_FIXED_LEN);
    t->len = (uint16_t)n;
    t->is_ssl = 1;
}

static void random_tlv(struct tlv_model *t)
{
    static const uint8_t known[] = {PP2_TYPE_ALPN,      PP2_TYPE_AUTHORITY, PP2_TYPE_NOOP,
                                    PP2_TYPE_UNIQUE_ID, PP2_TYPE_SSL,       PP2_TYPE_NETNS,
                                    PP2_TYPE_GCP,       PP2_TYPE_AWS,       PP2_TYPE_AZURE};
    static const char aws_chars[] =
        "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-";
    t->is_ssl = 0;
    do
        t->type =
            rng_below(&prng, 2) ? known[rng_below(&prng, sizeof(known))] : (uint8_t)rng_next(&prng);
    while (t->type == PP2_TYPE_CRC32C); /* the CRC goes last, via its builder */

    switch (t->type) {
    case PP2_TYPE_SSL:
        random_ssl(t);
        return;
    case PP2_TYPE_GCP:
        t->len = 8;
        break;
    case PP2_TYPE_AZURE:
        t->len = 5;
        break;
    case PP2_TYPE_AWS:
        t->len = (uint16_t)(1 + rng_below(&prng, 41));
        t->value[0] = PP2_SUBTYPE_AWS_VPCE_ID;
        for (size_t i = 1; i < t->len; i++)
            t->value[i] = (uint8_t)aws_chars[rng_below(&prng, sizeof(aws_chars) - 1)];
        return;
    case PP2_TYPE_AUTHORITY:
        t->len = (uint16_t)rng_below(&prng, PP2_AUTHORITY_MAX + 1);
        break;
    case PP2_TYPE_UNIQUE_ID:
        t->len = (uint16_t)rng_below(&prng, PP2_UNIQUE_ID_MAX + 1);
        break;
    default:
        t->len = (uint16_t)rng_below(&prng, 301);
        break;
    }
    fill_random(t->value, t->len);
    if (t->type == PP2_TYPE_AZURE)
        t->value[0] = PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID;
}

static void random_v1(struct model *m)
{
    m->version = 1;
    m->command = PP2_CMD_PROXY;
    m->esocktype = SOCK_STREAM;
    switch (rng_below(&prng, 4)) {
    case 0: /* TCP4 */
        random_in4(&m->src);
        random_in4(&m->dst);
        m->fam = PP2_FAM_TCP4;
        m->esrc = m->src;
        m->edst = m->dst;
        return;
    case 1: /* TCP6, possibly mixed */
    case 2: {
        unsigned mix = rng_below(&prng, 4);
        if (mix == 1)
            random_in4(&m->src);
        else
            random_in6(&m->src);
        if (mix == 2)
            random_in4(&m->dst);
        else
            random_in6(&m->dst);
        m->fam = PP2_FAM_TCP6;
        as_v6(&m->src, &m->esrc);
        as_v6(&m->dst, &m->edst);
        return;
    }
    default: /* UNKNOWN: a missing address or one v1 cannot carry */
        m->command = PP2_CMD_LOCAL;
        m->fam = PP2_FAM_UNSPEC_UNSPEC;
        m->esocktype = 0;
        random_unix(&m->src);
        random_in4(&m->dst);
        if (rng_below(&prng, 2))
            m->src_null = 1;
        else if (rng_below(&prng, 2))
            m->dst_null = 1;
        return;
    }
}

static void random_v2(struct model *m)
{
    m->version = 2;
    m->command = PP2_CMD_PROXY;
    int dgram = rng_below(&prng, 2);
    m->socktype = dgram ? SOCK_DGRAM : SOCK_STREAM;
    m->esocktype = m->socktype;
    switch (rng_below(&prng, 5)) {
    case 0: /* LOCAL: addresses given but not sent */
        m->command = PP2_CMD_LOCAL;
        random_in4(&m->src);
        random_in4(&m->dst);
        m->fam = PP2_FAM_UNSPEC_UNSPEC;
        m->esocktype = 0;
        break;
    case 1: /* PROXY without addresses */
        random_in6(&m->src);
        m->dst_null = 1;
        if (rng_below(&prng, 2))
            m->src_null = 1;
        m->fam = PP2_FAM_UNSPEC_UNSPEC;
        m->esocktype = 0;
        break;
    case 2:
        random_in4(&m->src);
        random_in4(&m->dst);
        m->fam = dgram ? PP2_FAM_UDP4 : PP2_FAM_TCP4;
        m->esrc = m->src;
        m->edst = m->dst;
        break;
    case 3: {
        unsigned mix = rng_below(&prng, 4);
        if (mix == 1)
            random_in4(&m->src);
        else
            random_in6(&m->src);
        if (mix == 2)
            random_in4(&m->dst);
        else
            random_in6(&m->dst);
        m->fam = dgram ? PP2_FAM_UDP6 : PP2_FAM_TCP6;
        as_v6(&m->src, &m->esrc);
        as_v6(&m->dst, &m->edst);
        break;
    }
    default:
        random_unix(&m->src);
        random_unix(&m->dst);
        m->fam = dgram ? PP2_FAM_UNIX_DGRAM : PP2_FAM_UNIX_STREAM;
        m->esrc = m->src;
        m->edst = m->dst;
        break;
    }
    m->ntlv = rng_below(&prng, 4) == 0 ? 0 : rng_below(&prng, MAX_TLVS + 1);
    for (unsigned i = 0; i < m->ntlv; i++)
        random_tlv(&m->tlv[i]);
    m->crc = rng_below(&prng, 2);
}

/* ---- build, parse, compare ------------------------------------------------ */

static ssize_t build(const struct model *m, uint8_t *buf, size_t cap)
{
    const struct sockaddr *src = m->src_null ? NULL : &m->src.sa;
    const struct sockaddr *dst = m->dst_null ? NULL : &m->dst.sa;
    if (m->version == 1)
        return pp_build_v1(buf, cap, src, dst);
    ssize_t n = pp_build_v2(buf, cap, m->command, m->socktype, src, dst);
    assert_true(n >= PP_V2_HDR_LEN);
    for (unsigned i = 0; i < m->ntlv; i++) {
        n = pp_build_v2_tlv(buf, cap, (size_t)n, m->tlv[i].type, m->tlv[i].value, m->tlv[i].len);
        assert_true(n > 0);
    }
    if (m->crc) {
        n = pp_build_v2_crc32c(buf, cap, (size_t)n);
        assert_true(n > 0);
    }
    return n;
}

static void check_ssl(const struct tlv_model *t, const struct pp_tlv *got)
{
    struct pp_ssl s;
    assert_true(pp_tlv_ssl(got, &s) == 0);
    assert_true(s.client == t->ssl.client);
    assert_true(s.verify == t->ssl.verify);
    const struct pp_str *g[8] = {&s.version, &s.cn,    &s.cipher,     &s.sig_alg,
                                 &s.key_alg, &s.group, &s.sig_scheme, &s.client_cert};
    const struct pp_str *w[8] = {&t->ssl.version,    &t->ssl.cn,         &t->ssl.cipher,
                                 &t->ssl.sig_alg,    &t->ssl.key_alg,    &t->ssl.group,
                                 &t->ssl.sig_scheme, &t->ssl.client_cert};
    for (int i = 0; i < 8; i++) {
        assert_true(g[i]->len == w[i]->len);
        assert_true((g[i]->ptr == NULL) == (w[i]->ptr == NULL));
        if (w[i]->len > 0)
            assert_true(memcmp(g[i]->ptr, w[i]->ptr, w[i]->len) == 0);
    }
}

static void check_tlvs(const struct model *m, const struct pp_header *h)
{
    const uint8_t *cur = h->tlv, *end = h->tlv + h->tlv_len;
    struct pp_tlv t;
    for (unsigned i = 0; i < m->ntlv; i++) {
        assert_true(pp_tlv_next(&cur, end, &t) == 1);
        assert_true(t.type == m->tlv[i].type);
        assert_true(t.len == m->tlv[i].len);
        if (t.len > 0)
            assert_true(memcmp(t.value, m->tlv[i].value, t.len) == 0);
        if (m->tlv[i].is_ssl)
            check_ssl(&m->tlv[i], &t);
        /* pp_tlv_find gives the first TLV of this type. */
        unsigned first = 0;
        while (m->tlv[first].type != t.type)
            first++;
        struct pp_tlv f;
        assert_true(pp_tlv_find(h, t.type, &f) == 1);
        assert_true(f.len == m->tlv[first].len);
        if (first == i)
            assert_true(f.value == t.value);
    }
    if (m->crc) {
        uint32_t v;
        assert_true(pp_tlv_next(&cur, end, &t) == 1);
        assert_true(t.type == PP2_TYPE_CRC32C);
        assert_true(pp_tlv_crc32c(&t, &v) == 0);
        assert_true(pp_get_crc32c(h, &v) == 0);
    }
    assert_true(pp_tlv_next(&cur, end, &t) == 0);
    assert_true(cur == end);
}

/* Builds the header again from what pp_parse returned. */
static ssize_t rebuild(const struct pp_header *h, uint8_t *buf, size_t cap)
{
    const struct sockaddr *src = h->src.sa.sa_family == AF_UNSPEC ? NULL : &h->src.sa;
    const struct sockaddr *dst = h->dst.sa.sa_family == AF_UNSPEC ? NULL : &h->dst.sa;
    if (h->version == 1)
        return pp_build_v1(buf, cap, src, dst);
    int socktype = h->socktype != 0 ? h->socktype : SOCK_STREAM;
    ssize_t n = pp_build_v2(buf, cap, h->command, socktype, src, dst);
    const uint8_t *cur = h->tlv, *end = h->tlv + h->tlv_len;
    struct pp_tlv t;
    while (n > 0 && pp_tlv_next(&cur, end, &t) == 1) {
        if (t.type == PP2_TYPE_CRC32C)
            n = pp_build_v2_crc32c(buf, cap, (size_t)n);
        else
            n = pp_build_v2_tlv(buf, cap, (size_t)n, t.type, t.value, t.len);
    }
    return n;
}

static void one_round(uint8_t *buf, uint8_t *again)
{
    static struct model m;
    memset(&m, 0, sizeof(m));
    if (rng_below(&prng, 3) == 0)
        random_v1(&m);
    else
        random_v2(&m);

    ssize_t n = build(&m, buf, BUF_CAP);
    assert_true(n >= PP_MIN_LEN);
    /* Application bytes after the header must not change anything. */
    size_t extra = rng_below(&prng, 4) == 0 ? rng_below(&prng, 40) : 0;
    fill_random(buf + n, extra);

    const uint8_t *p = guard_place(&guard, buf, (size_t)n + extra);
    assert_true(p != NULL);
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN};
    struct pp_header h;
    memset(&h, 0xA5, sizeof(h));
    ssize_t rc = pp_parse(p, (size_t)n + extra, &h, &opts);
    if (rc != n)
        fail_msg("seed 0x%llx header %u: parse gave %zd (%s), built %zd", (unsigned long long)seed,
                 round_no, rc, vectors_error_name(rc), n);

    assert_true(h.len == (size_t)n);
    assert_true(h.version == m.version);
    assert_true(h.command == m.command);
    assert_true(h.fam == m.fam);
    assert_true(h.socktype == m.esocktype);
    assert_true(h.flags == (m.crc ? PP_HDR_CRC_VERIFIED : 0));
    if (m.esrc.sa.sa_family == AF_UNSPEC) {
        assert_true(h.src.sa.sa_family == AF_UNSPEC);
        assert_true(h.dst.sa.sa_family == AF_UNSPEC);
    } else {
        assert_same_addr(&h.src, &m.esrc);
        assert_same_addr(&h.dst, &m.edst);
    }
    if (m.version == 1) {
        assert_true(h.tlv_len == 0);
    } else {
        size_t addr_len = m.fam == PP2_FAM_TCP4 || m.fam == PP2_FAM_UDP4   ? PP2_ADDR_LEN_INET
                          : m.fam == PP2_FAM_TCP6 || m.fam == PP2_FAM_UDP6 ? PP2_ADDR_LEN_INET6
                          : m.fam == PP2_FAM_UNIX_STREAM || m.fam == PP2_FAM_UNIX_DGRAM
                              ? PP2_ADDR_LEN_UNIX
                              : 0;
        assert_true(h.tlv_len == (size_t)n - PP_V2_HDR_LEN - addr_len);
        if (h.tlv_len > 0)
            assert_true(h.tlv == p + PP_V2_HDR_LEN + addr_len);
        check_tlvs(&m, &h);
    }

    seen_fam[m.version - 1][m.fam + (m.command == PP2_CMD_LOCAL ? 0x80 : 0)]++;
    seen_crc += (unsigned)m.crc;
    for (unsigned i = 0; i < m.ntlv; i++) {
        seen_tlv_type[m.tlv[i].type]++;
        seen_tlv_bytes += m.tlv[i].len;
        if (m.tlv[i].is_ssl && m.tlv[i].ssl.client_cert.len > 0 && m.tlv[i].ssl.group.len > 0)
            seen_ssl_fields++;
    }

    ssize_t n2 = rebuild(&h, again, BUF_CAP);
    assert_true(n2 == n);
    assert_true(memcmp(again, buf, (size_t)n) == 0);

    /* Now and then, every prefix too: "need more", never anything else. */
    if (round_no % 64 == 0) {
        for (size_t k = 0; k < (size_t)n; k++) {
            const uint8_t *q = guard_place(&guard, buf, k);
            if (pp_parse(q, k, &h, &opts) != 0)
                fail_msg("seed 0x%llx header %u: prefix of %zu bytes not 0",
                         (unsigned long long)seed, round_no, k);
        }
    }
}

static void test_roundtrip(void **state)
{
    (void)state;
    /* Static, so a failed assertion leaves no leak report behind it. */
    static uint8_t buf[BUF_CAP + 64], again[BUF_CAP];
    prng.state = seed;
    for (round_no = 0; round_no < ROUNDS; round_no++)
        one_round(buf, again);

    unsigned types = 0;
    for (int t = 0; t < 256; t++)
        types += seen_tlv_type[t] > 0;
    print_message("roundtrip: %u headers, %u with CRC32C, %u TLV types, %u TLV value bytes\n",
                  ROUNDS, seen_crc, types, seen_tlv_bytes);
    /* v1: TCP4, TCP6, UNKNOWN (LOCAL); v2: every family, LOCAL apart. */
    assert_true(seen_fam[0][PP2_FAM_TCP4] > 0);
    assert_true(seen_fam[0][PP2_FAM_TCP6] > 0);
    assert_true(seen_fam[0][0x80 | PP2_FAM_UNSPEC_UNSPEC] > 0);
    static const uint8_t fams[] = {PP2_FAM_UNSPEC_UNSPEC, PP2_FAM_TCP4, PP2_FAM_UDP4,
                                   PP2_FAM_TCP6,          PP2_FAM_UDP6, PP2_FAM_UNIX_STREAM,
                                   PP2_FAM_UNIX_DGRAM};
    for (size_t i = 0; i < sizeof(fams); i++)
        assert_true(seen_fam[1][fams[i]] > 0);
    assert_true(seen_fam[1][0x80 | PP2_FAM_UNSPEC_UNSPEC] > 0);
    assert_true(seen_crc > 0);
    assert_true(types > 200);
    assert_true(seen_tlv_type[PP2_TYPE_SSL] > 0);
    assert_true(seen_ssl_fields > 0);
    assert_int_equal(seen_tlv_type[PP2_TYPE_CRC32C], 0);
}

static int setup(void **state)
{
    (void)state;
    const char *s = getenv("PP_SEED");
    seed = s != NULL && *s != '\0' ? strtoull(s, NULL, 0) : DEFAULT_SEED;
    if (seed == 0)
        seed = DEFAULT_SEED; /* xorshift never leaves 0 */
    print_message("roundtrip: seed 0x%llx (set PP_SEED to replay another)\n",
                  (unsigned long long)seed);
    return guard_init(&guard, BUF_CAP + 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, setup, guard_teardown);
}
