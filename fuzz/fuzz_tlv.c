/*
 * fuzz_tlv.c - libFuzzer target for the TLV iterator, the typed decoders and
 * the TLV builders.
 *
 *  1. pp_tlv_next walks the whole input as a TLV area: each step must make
 *     progress and stay inside it, and the walk must end at 0 exactly at the
 *     end or at -PP_EBADTLV with the cursor unmoved.
 *  2. The input read as one TLV (type = first byte, value = the rest) goes
 *     through every decoder, once with its own type and once under each
 *     decodable type, against the model in fuzz_check.h.
 *  3. The rest drives the builders: a v2 header, TLVs appended with sizes and
 *     capacities taken from the input, an SSL value from pp_build_ssl, maybe
 *     a CRC32C TLV. Every output buffer is heap-allocated at exactly its
 *     capacity, so a write past it is an ASan report; a failed call must
 *     leave the buffer untouched, and a successful header must parse back to
 *     the same TLVs.
 */
#include <arpa/inet.h>
#include <stdint.h>

#include "fuzz_check.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define MAX_OPS 8
/* Covers the longest string build_ssl declares (0xFFFF + 0xFF00 bytes from an
 * offset below 64), in case the builder reads a string before refusing it. */
#define PATTERN_LEN (0x20000 + 64)

/* Bytes for values longer than the input itself. */
static uint8_t pattern[PATTERN_LEN];

struct reader {
    const uint8_t *p, *end;
};

static unsigned get8(struct reader *r)
{
    return r->p < r->end ? *r->p++ : 0;
}

static unsigned get16(struct reader *r)
{
    unsigned hi = get8(r);

    return hi << 8 | get8(r);
}

static uint32_t get32(struct reader *r)
{
    uint32_t hi = get16(r);

    return hi << 16 | get16(r);
}

static uint8_t *alloc_filled(size_t n, uint8_t fill)
{
    uint8_t *q = malloc(n ? n : 1);

    CHECK(q != NULL);
    memset(q, fill, n);
    return q;
}

static void walk_raw(const uint8_t *data, size_t size)
{
    static const uint8_t empty[1];
    const uint8_t *p = size ? data : empty, *end = p + size, *old;
    struct pp_tlv t;
    int rc;

    for (;;) {
        old = p;
        rc = pp_tlv_next(&p, end, &t);
        if (rc == 1) {
            CHECK(p > old && p <= end);
            CHECK(t.type == old[0] && t.len == be16(old + 1));
            CHECK(t.value == old + 3 && p == t.value + t.len);
            check_decoders(&t);
            continue;
        }
        if (rc == 0) {
            CHECK(old == end && p == end);
            return;
        }
        CHECK(rc == -PP_EBADTLV && p == old);
        CHECK(end - old < 3 || (size_t)(end - old) - 3 < be16(old + 1));
        return;
    }
}

/* The input as a TLV block appended by pp_build_v2_tlvs, keeping the types
 * whose bit is set in a set drawn from the input's first bytes: the result
 * must be exactly what a pp_tlv_next walk keeps, with any CRC32C left out,
 * and must parse; a truncated block must be refused as the walk refuses it. */
static void build_selection(const uint8_t *data, size_t size)
{
    static uint8_t out[PP_V2_MAX_LEN + 64], want[PP_V2_MAX_LEN];
    struct sockaddr_in a = {.sin_family = AF_INET};
    const uint8_t *p = data, *end = data + size;
    struct pp_tlv_set keep;
    struct pp_header h;
    struct pp_tlv t;
    size_t nwant = 0;
    ssize_t base, n;
    int rc, all = size > 0 && (data[0] & 1);

    if (size == 0)
        return;
    for (size_t i = 0; i < sizeof(keep.bits); i++)
        keep.bits[i] = data[(i * 13) % size];
    while ((rc = pp_tlv_next(&p, end, &t)) > 0) {
        if (t.type == PP2_TYPE_CRC32C || (!all && !pp_tlv_set_has(&keep, t.type)))
            continue;
        want[nwant++] = t.type;
        want[nwant++] = (uint8_t)(t.len >> 8);
        want[nwant++] = (uint8_t)t.len;
        memcpy(want + nwant, t.value, t.len);
        nwant += t.len;
    }
    base = pp_build_v2(out, sizeof(out), PP2_CMD_PROXY, SOCK_STREAM, (struct sockaddr *)&a,
                       (struct sockaddr *)&a);
    CHECK(base == 28);
    n = pp_build_v2_tlvs(out, sizeof(out), (size_t)base, data, size, all ? NULL : &keep);
    if (rc < 0) {
        CHECK(n == -PP_EBADTLV);
        CHECK(be16(out + 14) == 12);
        return;
    }
    CHECK(n == base + (ssize_t)nwant);
    CHECK(memcmp(out + base, want, nwant) == 0);
    CHECK(be16(out + 14) == (size_t)n - 16);
    /* pp_parse may still refuse what the TLVs hold (a bad SSL TLV, an
     * AUTHORITY too long...); when it accepts, it sees the whole header. */
    if (pp_parse(out, (size_t)n, &h, NULL) > 0)
        CHECK(h.tlv == out + base && h.tlv_len == nwant);
}

static void decode_as_every_type(const uint8_t *data, size_t size)
{
    static const uint8_t types[] = {
        PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_CRC32C, PP2_TYPE_NOOP,  PP2_TYPE_UNIQUE_ID,
        PP2_TYPE_SSL,  PP2_TYPE_NETNS,     PP2_TYPE_AWS,    PP2_TYPE_AZURE, PP2_TYPE_GCP};
    struct pp_tlv t;

    if (size == 0)
        return;
    t.type = data[0];
    t.len = (uint16_t)(size - 1 > 0xFFFF ? 0xFFFF : size - 1);
    t.value = data + 1;
    check_decoders(&t);
    for (size_t i = 0; i < sizeof(types); i++) {
        t.type = types[i];
        check_decoders(&t);
    }
}

/* One appended TLV, remembered to compare with what pp_parse gives back. */
struct rec {
    uint8_t type;
    const uint8_t *value;
    size_t len;
};

/*
 * Builds an SSL TLV value into a fresh buffer of a capacity drawn from the
 * input. Returns its length, or -1 when the builder refused (which is then
 * checked), with *valuep set to a buffer the caller frees.
 */
static ssize_t build_ssl(struct reader *r, uint8_t **valuep)
{
    struct pp_ssl s, got;
    struct pp_str *f[] = {&s.version, &s.cn,    &s.cipher,     &s.sig_alg,
                          &s.key_alg, &s.group, &s.sig_scheme, &s.client_cert};
    size_t want = PP2_SSL_FIXED_LEN, cap;
    unsigned present;
    int einval = 0;
    ssize_t n;

    memset(&s, 0, sizeof(s));
    s.client = (uint8_t)get8(r);
    s.verify = get32(r);
    present = get8(r);
    for (int i = 0; i < 8; i++) {
        if (!(present & 1u << i))
            continue;
        unsigned sel = get8(r);
        size_t len = sel & 0x80 ? get16(r) : sel & 0x3F;
        if ((sel & 0xC0) == 0xC0)
            len += 0xFF00; /* past 65535 sometimes */
        f[i]->ptr = (const char *)pattern + (sel & 0x3F);
        f[i]->len = len;
        if (len > 0xFFFF)
            einval = 1;
        want += 3 + len;
    }
    if (want > 0xFFFF)
        einval = 1;
    /* A refused value can be declared far larger than any buffer needs to
     * be; fresh megabyte buffers would only slow the fuzzer down. */
    cap = get16(r) % ((want > 0xFFFF ? 0xFFFF : want) + 16);
    if ((get8(r) & 1) && want <= 0xFFFF)
        cap = want; /* the exact fit is the interesting edge */

    uint8_t *buf = alloc_filled(cap, 0xA5), *shadow = alloc_filled(cap, 0xA5);
    n = pp_build_ssl(buf, cap, &s);
    *valuep = buf;
    if (einval || want > cap) {
        CHECK(n == (einval ? -PP_EINVAL : -PP_ENOSPC) || (einval && want > cap && n == -PP_ENOSPC));
        CHECK(memcmp(buf, shadow, cap) == 0);
        free(shadow);
        return -1;
    }
    CHECK(n == (ssize_t)want);
    CHECK(memcmp(buf + want, shadow + want, cap - want) == 0);
    free(shadow);

    struct pp_tlv t = {.type = PP2_TYPE_SSL, .len = (uint16_t)n, .value = buf};
    CHECK(pp_tlv_ssl(&t, &got) == 0);
    check_decoders(&t);
    CHECK(got.client == s.client && got.verify == s.verify);
    struct pp_str *g[] = {&got.version, &got.cn,    &got.cipher,     &got.sig_alg,
                          &got.key_alg, &got.group, &got.sig_scheme, &got.client_cert};
    for (int i = 0; i < 8; i++) {
        CHECK((g[i]->ptr == NULL) == (f[i]->ptr == NULL));
        if (f[i]->ptr != NULL)
            CHECK(g[i]->len == f[i]->len && memcmp(g[i]->ptr, f[i]->ptr, f[i]->len) == 0);
    }
    return n;
}

/*
 * A TLV type pp_parse accepts with any value. Types whose values pp_parse
 * checks are mapped elsewhere: the checksum is appended by its own builder
 * and SSL values come from pp_build_ssl; vendor types are left out because
 * the contract does not say whether pp_parse checks them.
 */
static uint8_t free_type(unsigned t)
{
    switch (t) {
    case PP2_TYPE_CRC32C:
    case PP2_TYPE_SSL:
    case PP2_TYPE_AWS:
    case PP2_TYPE_AZURE:
    case PP2_TYPE_GCP:
        return PP2_TYPE_NOOP;
    default:
        return (uint8_t)t;
    }
}

/* Appends one TLV and checks the builder's answer and the buffer. */
static ssize_t append(uint8_t *buf, uint8_t *shadow, size_t cap, size_t hdr_len, uint8_t type,
                      const uint8_t *value, size_t vlen)
{
    size_t need = hdr_len + 3 + vlen;
    ssize_t n;

    memcpy(shadow, buf, cap);
    n = pp_build_v2_tlv(buf, cap, hdr_len, type, value, vlen);
    if (need > PP_V2_MAX_LEN || need > cap) {
        CHECK(n == -PP_EINVAL || (need > cap && n == -PP_ENOSPC));
        CHECK(need > PP_V2_MAX_LEN || n == -PP_ENOSPC);
        CHECK(memcmp(buf, shadow, cap) == 0);
        return n;
    }
    CHECK(n == (ssize_t)need);
    CHECK(memcmp(buf, shadow, 14) == 0 && be16(buf + 14) == need - PP_V2_HDR_LEN);
    CHECK(memcmp(buf + PP_V2_HDR_LEN, shadow + PP_V2_HDR_LEN, hdr_len - PP_V2_HDR_LEN) == 0);
    CHECK(buf[hdr_len] == type && be16(buf + hdr_len + 1) == vlen);
    CHECK(vlen == 0 || memcmp(buf + hdr_len + 3, value, vlen) == 0);
    CHECK(memcmp(buf + need, shadow + need, cap - need) == 0);
    return n;
}

static ssize_t base_header(struct reader *r, uint8_t *buf, size_t cap)
{
    struct sockaddr_in a4[2];
    struct sockaddr_in6 a6[2];
    const struct sockaddr *src = NULL, *dst = NULL;
    unsigned kind = get8(r);
    int cmd = PP2_CMD_PROXY, socktype = kind & 4 ? SOCK_DGRAM : SOCK_STREAM;
    size_t want = PP_V2_HDR_LEN;

    memset(a4, 0, sizeof(a4));
    memset(a6, 0, sizeof(a6));
    for (int i = 0; i < 2; i++) {
        a4[i].sin_family = AF_INET;
        a4[i].sin_addr.s_addr = htonl(get32(r));
        a4[i].sin_port = htons((uint16_t)get16(r));
        a6[i].sin6_family = AF_INET6;
        for (int k = 0; k < 16; k++)
            a6[i].sin6_addr.s6_addr[k] = (uint8_t)get8(r);
        a6[i].sin6_port = a4[i].sin_port;
    }
    switch (kind & 3) {
    case 0:
        cmd = PP2_CMD_LOCAL;
        break;
    case 1:
        src = (const struct sockaddr *)&a4[0];
        dst = (const struct sockaddr *)&a4[1];
        want += PP2_ADDR_LEN_INET;
        break;
    case 2:
        /* One IPv4 end is sent mapped inside a TCP6 block. */
        src = (const struct sockaddr *)&a6[0];
        dst = kind & 8 ? (const struct sockaddr *)&a4[1] : (const struct sockaddr *)&a6[1];
        want += PP2_ADDR_LEN_INET6;
        break;
    default:
        break; /* PROXY with no addresses: fam UNSPEC */
    }

    uint8_t *shadow = alloc_filled(cap, 0xA5);
    ssize_t n = pp_build_v2(buf, cap, cmd, socktype, src, dst);
    if (want > cap) {
        CHECK(n == -PP_ENOSPC && memcmp(buf, shadow, cap) == 0);
    } else {
        CHECK(n == (ssize_t)want);
        CHECK(memcmp(buf + want, shadow + want, cap - want) == 0);
        CHECK(memcmp(buf, PP_V2_SIG, PP_V2_SIG_LEN) == 0 && buf[12] == (PP2_VERSION | cmd));
    }
    free(shadow);
    return n;
}

static void check_parse_back(const uint8_t *buf, size_t n, const struct rec *recs, int nrec,
                             int crc)
{
    struct pp_parse_opts o = {.max_len = PP_V2_MAX_LEN, .flags = 0};
    struct pp_header h;
    struct pp_tlv t;
    int i = 0;

    CHECK(pp_parse(buf, n, &h, &o) == (ssize_t)n);
    CHECK(h.version == 2 && h.len == n);
    CHECK(!!(h.flags & PP_HDR_CRC_VERIFIED) == crc);
    const uint8_t *p = h.tlv, *end = p ? p + h.tlv_len : p;
    while (pp_tlv_next(&p, end, &t) == 1) {
        CHECK(i < nrec);
        CHECK(t.type == recs[i].type && t.len == recs[i].len);
        CHECK(t.len == 0 || memcmp(t.value, recs[i].value, t.len) == 0);
        check_decoders(&t);
        i++;
    }
    CHECK(p == end && i == nrec);
}

static void fuzz_builders(struct reader *r)
{
    struct rec recs[MAX_OPS + 1];
    uint8_t *values[MAX_OPS] = {0};
    unsigned sel = get8(r);
    size_t cap;

    /* Mostly small capacities, where the edges are, and sometimes up to past
     * PP_V2_MAX_LEN: a large buffer costs a copy per step, which would slow
     * every input down. */
    if ((sel & 0xE0) == 0xE0) {
        cap = get16(r) << 1;
        cap = (cap | (sel & 1)) % (PP_V2_MAX_LEN + 64) + 1;
    } else {
        cap = (size_t)get8(r) + sel + 1;
    }
    uint8_t *buf = alloc_filled(cap, 0xA5), *shadow = alloc_filled(cap, 0xA5);
    int nrec = 0, crc = 0;
    ssize_t n = base_header(r, buf, cap);

    if (n < 0)
        goto out;
    for (int op = 0; op < MAX_OPS && r->p < r->end && !crc; op++) {
        sel = get8(r);
        const uint8_t *value;
        uint8_t type = free_type(get8(r));
        size_t vlen = sel & 0x40 ? get16(r) : get8(r);
        ssize_t rc;

        if ((sel & 7) == 7) {
            /* A wrong header length must be refused without a write. */
            memcpy(shadow, buf, cap);
            rc = pp_build_v2_tlv(buf, cap, (size_t)n + 1 + (sel >> 7), type, NULL, 0);
            CHECK(rc == -PP_EINVAL && memcmp(buf, shadow, cap) == 0);
            continue;
        }
        if ((sel & 7) == 6) {
            memcpy(shadow, buf, cap);
            rc = pp_build_v2_crc32c(buf, cap, (size_t)n);
            if ((size_t)n + 7 > cap) {
                CHECK(rc == -PP_ENOSPC && memcmp(buf, shadow, cap) == 0);
                continue;
            }
            CHECK(rc == n + 7 && buf[n] == PP2_TYPE_CRC32C);
            recs[nrec++] = (struct rec){PP2_TYPE_CRC32C, buf + n + 3, 4};
            n = rc;
            crc = 1;
            continue;
        }
        if ((sel & 7) == 5) {
            uint8_t *v;
            rc = build_ssl(r, &v);
            values[op] = v;
            if (rc < 0)
                continue;
            type = PP2_TYPE_SSL;
            value = v;
            vlen = (size_t)rc;
        } else {
            if (type == PP2_TYPE_AUTHORITY && vlen > PP2_AUTHORITY_MAX)
                vlen = PP2_AUTHORITY_MAX;
            if (type == PP2_TYPE_UNIQUE_ID && vlen > PP2_UNIQUE_ID_MAX)
                vlen = PP2_UNIQUE_ID_MAX;
            /* Values come from the input while it lasts, then the pattern. */
            if ((size_t)(r->end - r->p) >= vlen) {
                value = r->p;
                r->p += vlen;
            } else {
                value = pattern + (sel & 0x3F);
            }
        }
        rc = append(buf, shadow, cap, (size_t)n, type, vlen ? value : NULL, vlen);
        if (rc > 0) {
            recs[nrec++] = (struct rec){type, value, vlen};
            n = rc;
        }
    }
    check_parse_back(buf, (size_t)n, recs, nrec, crc);
out:
    for (int i = 0; i < MAX_OPS; i++)
        free(values[i]);
    free(buf);
    free(shadow);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (pattern[1] == 0)
        for (size_t i = 0; i < sizeof(pattern); i++)
            pattern[i] = (uint8_t)(i * 7 + 1);
    walk_raw(data, size);
    build_selection(data, size);
    decode_as_every_type(data, size);
    if (size > 0) {
        struct reader r = {data, data + size};
        fuzz_builders(&r);
    }
    return 0;
}
