/*
 * fuzz_parse.c - libFuzzer target for pp_parse.
 *
 * The whole input is parsed with the default options, so the seed corpus
 * (raw headers from tests/vectors) is exercised as is. The input minus its
 * first byte is parsed again with options chosen by that byte. Every result
 * is checked against the contract in proxyproto.h:
 *  - a positive result is a header whose fields agree with its bytes, whose
 *    TLVs walk cleanly and decode as their types say, and which parses the
 *    same from an exact-size copy with nothing after it;
 *  - a prefix of a valid header, or of a valid prefix, needs more bytes, and
 *    bytes that were already refused stay refused when more arrive;
 *  - the carried addresses survive pp_build_v1/pp_build_v2 and a re-parse,
 *    and a v2 TCP/UDP header is rebuilt byte for byte from its parts.
 * Copies are made into exact-size heap buffers so ASan catches any read past
 * the length the parser was given.
 */
#include <arpa/inet.h>
#include <stdint.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Room for the largest v2 header plus slack for the rebuild. */
static uint8_t out[PP_V2_MAX_LEN + 64];

static uint8_t *dup_exact(const uint8_t *p, size_t n)
{
    /* malloc(0) may return NULL; one byte keeps the pointer valid while the
     * parser is still given length 0. */
    uint8_t *q = malloc(n ? n : 1);

    CHECK(q != NULL);
    if (n)
        memcpy(q, p, n);
    return q;
}

/* FNV-1a: a cheap, deterministic way to pick a cut point from the input. */
static uint32_t hash(const uint8_t *p, size_t n)
{
    uint32_t h = 2166136261u;

    for (size_t i = 0; i < n; i++)
        h = (h ^ p[i]) * 16777619u;
    return h;
}

static size_t cap_of(const struct pp_parse_opts *o)
{
    if (o == NULL || o->max_len == 0)
        return PP_V2_DEFAULT_CAP;
    return o->max_len > PP_V2_MAX_LEN ? PP_V2_MAX_LEN : o->max_len;
}

static void opts_from_byte(uint8_t sel, struct pp_parse_opts *o)
{
    static const size_t caps[] = {0,    PP_V2_MAX_LEN, PP_V2_HDR_LEN + 12, 64, 4095,
                                  4097, 300,           PP_V2_MAX_LEN + 1};

    o->max_len = caps[sel & 7];
    o->flags = 0;
    if (sel & 0x08)
        o->flags |= PP_PARSE_NO_CRC;
    if (sel & 0x10)
        o->flags |= PP_PARSE_V1_IPV4_IN_TCP6;
    if (sel & 0x20)
        o->flags |= PP_PARSE_REJECT_UNSPEC;
    if (sel & 0x40)
        o->flags |= sel & 0x80 ? PP_PARSE_NO_V1 : PP_PARSE_NO_V2;
}

static int addr_eq(const union pp_addr *a, const union pp_addr *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return 0;
    switch (a->sa.sa_family) {
    case AF_INET:
        return a->sin.sin_port == b->sin.sin_port &&
               a->sin.sin_addr.s_addr == b->sin.sin_addr.s_addr;
    case AF_INET6:
        return a->sin6.sin6_port == b->sin6.sin6_port &&
               memcmp(&a->sin6.sin6_addr, &b->sin6.sin6_addr, 16) == 0;
    case AF_UNIX:
        return strncmp(a->sun.sun_path, b->sun.sun_path, PP2_UNIX_PATH_LEN) == 0;
    default:
        return 1;
    }
}

static int hdr_eq(const struct pp_header *a, const struct pp_header *b)
{
    return a->version == b->version && a->command == b->command && a->fam == b->fam &&
           a->flags == b->flags && a->socktype == b->socktype && a->len == b->len &&
           a->tlv_len == b->tlv_len && addr_eq(&a->src, &b->src) && addr_eq(&a->dst, &b->dst);
}

static int family_of_fam(uint8_t fam)
{
    switch (fam & 0xF0) {
    case PP2_FAM_INET:
        return AF_INET;
    case PP2_FAM_INET6:
        return AF_INET6;
    case PP2_FAM_UNIX:
        return AF_UNIX;
    default:
        return AF_UNSPEC;
    }
}

/* The addresses of a v2 PROXY header must be the bytes of its block. */
static void check_v2_addrs(const uint8_t *buf, const struct pp_header *h)
{
    const uint8_t *b = buf + PP_V2_HDR_LEN;

    switch (h->src.sa.sa_family) {
    case AF_INET:
        CHECK(memcmp(&h->src.sin.sin_addr, b, 4) == 0);
        CHECK(memcmp(&h->dst.sin.sin_addr, b + 4, 4) == 0);
        CHECK(ntohs(h->src.sin.sin_port) == be16(b + 8));
        CHECK(ntohs(h->dst.sin.sin_port) == be16(b + 10));
        break;
    case AF_INET6:
        CHECK(memcmp(&h->src.sin6.sin6_addr, b, 16) == 0);
        CHECK(memcmp(&h->dst.sin6.sin6_addr, b + 16, 16) == 0);
        CHECK(ntohs(h->src.sin6.sin6_port) == be16(b + 32));
        CHECK(ntohs(h->dst.sin6.sin6_port) == be16(b + 34));
        break;
    case AF_UNIX:
        CHECK(strncmp(h->src.sun.sun_path, (const char *)b, PP2_UNIX_PATH_LEN) == 0);
        CHECK(strncmp(h->dst.sun.sun_path, (const char *)b + PP2_UNIX_PATH_LEN,
                      PP2_UNIX_PATH_LEN) == 0);
        break;
    default:
        break;
    }
}

static void check_fields(const uint8_t *buf, size_t ret, const struct pp_header *h,
                         const struct pp_parse_opts *o)
{
    CHECK(h->len == ret && ret >= PP_MIN_LEN);
    if (h->version == 1) {
        CHECK(buf[0] == 'P' && ret <= PP_V1_MAX_LEN);
        CHECK(buf[ret - 2] == '\r' && buf[ret - 1] == '\n');
        CHECK(memchr(buf, '\n', ret - 1) == NULL);
        CHECK(h->tlv_len == 0 && h->flags == 0);
        CHECK(!o || !(o->flags & PP_PARSE_NO_V1));
        if (h->command == PP2_CMD_PROXY) {
            CHECK(h->fam == PP2_FAM_TCP4 || h->fam == PP2_FAM_TCP6);
            CHECK(h->socktype == SOCK_STREAM);
            CHECK(h->src.sa.sa_family == family_of_fam(h->fam));
        } else {
            CHECK(h->command == PP2_CMD_LOCAL && h->fam == PP2_FAM_UNSPEC_UNSPEC);
            CHECK(memcmp(buf, "PROXY UNKNOWN", 13) == 0);
            CHECK(h->src.sa.sa_family == AF_UNSPEC);
        }
        CHECK(h->dst.sa.sa_family == h->src.sa.sa_family);
        return;
    }
    CHECK(h->version == 2 && ret >= PP_V2_HDR_LEN);
    CHECK(!o || !(o->flags & PP_PARSE_NO_V2));
    CHECK(memcmp(buf, PP_V2_SIG, PP_V2_SIG_LEN) == 0);
    CHECK(ret == PP_V2_HDR_LEN + be16(buf + 14) && ret <= cap_of(o));
    CHECK(h->command == (buf[12] & 0x0F) && (buf[12] & 0xF0) == PP2_VERSION);
    CHECK(h->fam == buf[13]);
    CHECK(h->socktype == ((h->fam & 0x0F) == PP2_TRANS_STREAM  ? SOCK_STREAM
                          : (h->fam & 0x0F) == PP2_TRANS_DGRAM ? SOCK_DGRAM
                                                               : 0));
    if (h->tlv_len > 0) {
        CHECK(h->tlv >= buf + PP_V2_HDR_LEN && h->tlv < buf + ret);
        CHECK(h->tlv + h->tlv_len == buf + ret);
    } else {
        CHECK(h->tlv == NULL || (h->tlv >= buf && h->tlv <= buf + ret));
    }
    if (h->command == PP2_CMD_PROXY) {
        CHECK(h->src.sa.sa_family == family_of_fam(h->fam));
        CHECK(h->dst.sa.sa_family == h->src.sa.sa_family);
        CHECK(!(h->fam == PP2_FAM_UNSPEC_UNSPEC && o && (o->flags & PP_PARSE_REJECT_UNSPEC)));
        check_v2_addrs(buf, h);
    } else {
        CHECK(h->command == PP2_CMD_LOCAL);
        CHECK(h->src.sa.sa_family == AF_UNSPEC && h->dst.sa.sa_family == AF_UNSPEC);
    }
}

/* The CRC TLV must hold the CRC32c of the header with its value zeroed. */
static void check_crc(const uint8_t *buf, size_t ret, const struct pp_tlv *crc)
{
    uint8_t *copy = dup_exact(buf, ret);
    size_t at = (size_t)(crc->value - buf);

    memset(copy + at, 0, 4);
    CHECK(pp_crc32c(0, copy, ret) == be32(crc->value));
    free(copy);
}

static void check_accessors(const struct pp_header *h, const struct pp_tlv *first,
                            const uint8_t *seen)
{
    struct pp_str s;
    struct pp_ssl ssl;
    uint32_t u32;
    uint64_t u64;
    struct pp_tlv t;
    int rc, want;

    /* Each accessor is pp_tlv_find + the decoder, so its answer must equal
     * the decoder's on the first TLV of that type the walk met. */
#define ACCESSOR(fn, type, decoder, var)                                                           \
    do {                                                                                           \
        rc = fn(h, &var);                                                                          \
        want = seen[type] ? decoder(&first[type], &var) : -PP_ENOTFOUND;                           \
        CHECK(rc == want);                                                                         \
    } while (0)
    ACCESSOR(pp_get_alpn, PP2_TYPE_ALPN, pp_tlv_str, s);
    ACCESSOR(pp_get_authority, PP2_TYPE_AUTHORITY, pp_tlv_str, s);
    ACCESSOR(pp_get_unique_id, PP2_TYPE_UNIQUE_ID, pp_tlv_str, s);
    ACCESSOR(pp_get_netns, PP2_TYPE_NETNS, pp_tlv_str, s);
    ACCESSOR(pp_get_noop, PP2_TYPE_NOOP, pp_tlv_str, s);
    ACCESSOR(pp_get_crc32c, PP2_TYPE_CRC32C, pp_tlv_crc32c, u32);
    ACCESSOR(pp_get_ssl, PP2_TYPE_SSL, pp_tlv_ssl, ssl);
    ACCESSOR(pp_get_aws_vpce_id, PP2_TYPE_AWS, pp_tlv_aws_vpce_id, s);
    ACCESSOR(pp_get_azure_linkid, PP2_TYPE_AZURE, pp_tlv_azure_linkid, u32);
    ACCESSOR(pp_get_gcp_psc_id, PP2_TYPE_GCP, pp_tlv_gcp_psc_id, u64);
#undef ACCESSOR

    for (unsigned type = 0; type < 256; type += 17) {
        rc = pp_tlv_find(h, (uint8_t)type, &t);
        CHECK(rc == (seen[type] ? 1 : 0));
        if (rc == 1)
            CHECK(t.value == first[type].value && t.len == first[type].len);
    }
}

/* Walks the TLVs of an accepted header; returns how many there were. */
static unsigned check_tlvs(const uint8_t *buf, size_t ret, const struct pp_header *h,
                           const struct pp_parse_opts *o)
{
    static struct pp_tlv first[256];
    uint8_t seen[256] = {0};
    const uint8_t *p = h->tlv, *end = p ? p + h->tlv_len : p;
    struct pp_tlv t;
    unsigned n = 0, crcs = 0;
    int rc;

    while ((rc = pp_tlv_next(&p, end, &t)) == 1) {
        CHECK(t.value >= h->tlv + 3 && t.value + t.len == p && p <= end);
        CHECK(++n <= h->tlv_len / 3);
        check_decoders(&t);
        /* pp_parse enforces these per-type rules before accepting. */
        if (t.type == PP2_TYPE_CRC32C) {
            CHECK(t.len == 4 && ++crcs == 1);
            if (!o || !(o->flags & PP_PARSE_NO_CRC))
                check_crc(buf, ret, &t);
        }
        if (is_text_type(t.type))
            CHECK(t.len <= text_limit(t.type));
        if (t.type == PP2_TYPE_SSL) {
            struct pp_ssl ssl;
            CHECK(pp_tlv_ssl(&t, &ssl) == 0);
        }
        if (!seen[t.type]) {
            seen[t.type] = 1;
            first[t.type] = t;
        }
    }
    CHECK(rc == 0 && p == end);
    if (!o || !(o->flags & PP_PARSE_NO_CRC))
        CHECK(!!(h->flags & PP_HDR_CRC_VERIFIED) == (crcs == 1));
    check_accessors(h, first, seen);
    return n;
}

static void check_reparse(const uint8_t *bytes, ssize_t n, const struct pp_header *orig)
{
    struct pp_header h;
    struct pp_parse_opts o = {.max_len = PP_V2_MAX_LEN, .flags = 0};

    CHECK(n > 0);
    CHECK(pp_parse(bytes, (size_t)n, &h, &o) == n);
    CHECK(addr_eq(&h.src, &orig->src) && addr_eq(&h.dst, &orig->dst));
}

/* The carried addresses must survive both builders, and a v2 TCP/UDP header
 * is rebuilt exactly from its addresses and TLVs. */
static void check_rebuild(const uint8_t *buf, size_t ret, const struct pp_header *h)
{
    int af = h->src.sa.sa_family;
    ssize_t n;

    if (h->command != PP2_CMD_PROXY || af == AF_UNSPEC)
        return;
    n = pp_build_v2(out, sizeof(out), PP2_CMD_PROXY, h->socktype ? h->socktype : SOCK_STREAM,
                    &h->src.sa, &h->dst.sa);
    check_reparse(out, n, h);
    if (af == AF_UNIX)
        return;

    n = pp_build_v1(out, PP_V1_MAX_LEN, &h->src.sa, &h->dst.sa);
    check_reparse(out, n, h);

    if (h->version != 2)
        return;
    n = pp_build_v2(out, sizeof(out), PP2_CMD_PROXY, h->socktype, &h->src.sa, &h->dst.sa);
    CHECK(n == PP_V2_HDR_LEN + (af == AF_INET ? PP2_ADDR_LEN_INET : PP2_ADDR_LEN_INET6));
    const uint8_t *p = h->tlv, *end = p ? p + h->tlv_len : p;
    struct pp_tlv t;
    while (pp_tlv_next(&p, end, &t) == 1) {
        n = pp_build_v2_tlv(out, sizeof(out), (size_t)n, t.type, t.value, t.len);
        CHECK(n > 0);
    }
    CHECK((size_t)n == ret && memcmp(out, buf, ret) == 0);
}

static int is_parse_error(ssize_t rc)
{
    return rc < 0 && -rc < PP_EMAXCODE && rc != -PP_ENOSPC && rc != -PP_EINVAL &&
           rc != -PP_ENOTFOUND;
}

/* Parses buf[0..len) with o and checks everything the result promises. */
static ssize_t check_parse(const uint8_t *buf, size_t len, const struct pp_parse_opts *o)
{
    struct pp_header h, h2;
    ssize_t ret, rcut;
    uint8_t *copy;
    size_t cut;

    memset(&h, 0xA5, sizeof(h));
    ret = pp_parse(buf, len, &h, o);
    CHECK(ret <= (ssize_t)len);
    if (ret < 0) {
        CHECK(is_parse_error(ret));
        CHECK(strcmp(pp_strerror((int)ret), pp_strerror(PP_EMAXCODE)) != 0);
    }
    if (ret > 0) {
        check_fields(buf, (size_t)ret, &h, o);
        check_tlvs(buf, (size_t)ret, &h, o);
        check_rebuild(buf, (size_t)ret, &h);

        /* Nothing after the header may matter. */
        copy = dup_exact(buf, (size_t)ret);
        memset(&h2, 0x5A, sizeof(h2));
        CHECK(pp_parse(copy, (size_t)ret, &h2, o) == ret && hdr_eq(&h, &h2));
        free(copy);
    }

    /* A shorter input is a prefix of this one: it cannot be valid if this
     * one is valid or incomplete, and it cannot be refused if this one is
     * still acceptable. */
    if (len == 0)
        return ret;
    cut = hash(buf, len) % (ret > 0 ? (size_t)ret : len);
    copy = dup_exact(buf, cut);
    rcut = pp_parse(copy, cut, &h2, o);
    free(copy);
    if (ret >= 0)
        CHECK(rcut == 0);
    else
        CHECK(rcut <= 0);
    return ret;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct pp_parse_opts o;
    ssize_t def, var;
    unsigned loosen, tighten;
    size_t cap;

    check_parse(data, size, NULL);
    if (size == 0)
        return 0;

    opts_from_byte(data[0], &o);
    var = check_parse(data + 1, size - 1, &o);
    def = pp_parse(data + 1, size - 1, &(struct pp_header){0}, NULL);

    /* Options that only relax the defaults keep every header the defaults
     * accept; options that only restrict them accept nothing new. */
    cap = cap_of(&o);
    loosen = !(o.flags & (PP_PARSE_REJECT_UNSPEC | PP_PARSE_NO_V1 | PP_PARSE_NO_V2)) &&
             cap >= PP_V2_DEFAULT_CAP;
    tighten = !(o.flags & (PP_PARSE_NO_CRC | PP_PARSE_V1_IPV4_IN_TCP6)) && cap <= PP_V2_DEFAULT_CAP;
    if (loosen && def > 0)
        CHECK(var == def);
    if (tighten && var > 0)
        CHECK(def == var);
    return 0;
}
