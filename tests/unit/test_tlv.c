/*
 * test_tlv.c - the TLV iterator, pp_tlv_find, pp_tlv_name, the typed
 * decoders and the pp_get_* accessors. Byte areas are placed right before a
 * PROT_NONE page so an iterator or decoder that reads past its end crashes.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyproto.h"
#include "vectors.h"

#define SIG "0d0a0d0a000d0a515549540a"

/* Decodes hex and places it before the guard page; returns the placed copy. */
static const uint8_t *place_hex(const char *hex, size_t *n)
{
    static uint8_t tmp[70000];
    long len = vectors_unhex(hex, tmp, sizeof(tmp));
    assert_true(len >= 0);
    *n = (size_t)len;
    uint8_t *p = guard_place(&guard, tmp, *n);
    assert_non_null(p);
    return p;
}

static struct pp_tlv tlv_of(uint8_t type, const uint8_t *value, size_t len)
{
    struct pp_tlv t = {.type = type, .len = (uint16_t)len, .value = value};
    return t;
}

/* A TLV whose value is hex, placed before the guard page. */
static struct pp_tlv tlv_hex(uint8_t type, const char *hex)
{
    size_t n;
    const uint8_t *v = place_hex(hex, &n);
    return tlv_of(type, v, n);
}

static void assert_str(struct pp_str s, const char *want)
{
    if (want == NULL) {
        assert_null(s.ptr);
        assert_int_equal(s.len, 0);
        return;
    }
    assert_non_null(s.ptr);
    assert_int_equal(s.len, strlen(want));
    assert_memory_equal(s.ptr, want, s.len);
}

/* ---- pp_tlv_next ---------------------------------------------------------- */

static void test_next_walks_in_order(void **state)
{
    (void)state;
    size_t n;
    /* ALPN "h2", NOOP(0), AUTHORITY "abc", AUTHORITY "x": duplicates kept. */
    const uint8_t *b = place_hex("010002 6832 040000 020003 616263 020001 78", &n);
    const uint8_t *end = b + n, *cur = b;
    static const struct {
        uint8_t type;
        uint16_t len;
        size_t off; /* value offset */
    } want[] = {{0x01, 2, 3}, {0x04, 0, 8}, {0x02, 3, 11}, {0x02, 1, 17}};
    struct pp_tlv t;

    for (size_t i = 0; i < 4; i++) {
        memset(&t, 0xA5, sizeof(t));
        assert_int_equal(pp_tlv_next(&cur, end, &t), 1);
        assert_int_equal(t.type, want[i].type);
        assert_int_equal(t.len, want[i].len);
        if (t.len > 0)
            assert_ptr_equal(t.value, b + want[i].off);
        assert_ptr_equal(cur, b + want[i].off + want[i].len);
    }
    assert_memory_equal(b + 11, "abc", 3);
    assert_ptr_equal(cur, end);
    assert_int_equal(pp_tlv_next(&cur, end, &t), 0);
    assert_int_equal(pp_tlv_next(&cur, end, &t), 0);
    assert_ptr_equal(cur, end);
}

static void test_next_empty_area(void **state)
{
    (void)state;
    size_t n;
    const uint8_t *b = place_hex("", &n);
    const uint8_t *cur = b;
    struct pp_tlv t;
    assert_int_equal(pp_tlv_next(&cur, b, &t), 0);
    assert_ptr_equal(cur, b);
}

static void test_next_truncated_header(void **state)
{
    (void)state;
    static const char *const areas[] = {"02", "0200", "020001 78 02", "020001 78 0200"};
    static const size_t bad_at[] = {0, 0, 4, 4};
    for (size_t i = 0; i < 4; i++) {
        size_t n;
        const uint8_t *b = place_hex(areas[i], &n);
        const uint8_t *cur = b, *end = b + n;
        struct pp_tlv t;
        if (bad_at[i] > 0)
            assert_int_equal(pp_tlv_next(&cur, end, &t), 1);
        assert_ptr_equal(cur, b + bad_at[i]);
        assert_int_equal(pp_tlv_next(&cur, end, &t), -PP_EBADTLV);
        /* The cursor stays on the bad TLV, so a retry fails the same way. */
        assert_ptr_equal(cur, b + bad_at[i]);
        assert_int_equal(pp_tlv_next(&cur, end, &t), -PP_EBADTLV);
        assert_ptr_equal(cur, b + bad_at[i]);
    }
}

static void test_next_overrun(void **state)
{
    (void)state;
    size_t n;
    const uint8_t *b = place_hex("02000a 61626364", &n);
    const uint8_t *cur = b;
    struct pp_tlv t;
    assert_int_equal(pp_tlv_next(&cur, b + n, &t), -PP_EBADTLV);
    assert_ptr_equal(cur, b);

    /* Off by one either way around the exact fit. */
    b = place_hex("020004 61626364", &n);
    cur = b;
    assert_int_equal(pp_tlv_next(&cur, b + n, &t), 1);
    assert_int_equal(t.len, 4);
    assert_ptr_equal(cur, b + n);
    cur = b;
    assert_int_equal(pp_tlv_next(&cur, b + n - 1, &t), -PP_EBADTLV);
    assert_ptr_equal(cur, b);

    /* The largest length does not wrap the bounds check. */
    b = place_hex("04ffff 00", &n);
    cur = b;
    assert_int_equal(pp_tlv_next(&cur, b + n, &t), -PP_EBADTLV);
    assert_ptr_equal(cur, b);
}

/* ---- pp_tlv_find ---------------------------------------------------------- */

static void parse_hex(const char *hex, struct pp_header *h, const uint8_t **buf)
{
    size_t n;
    const uint8_t *b = place_hex(hex, &n);
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN};
    ssize_t rc = pp_parse(b, n, h, &opts);
    if (rc != (ssize_t)n)
        fail_msg("parse: got %zd, want %zu", rc, n);
    if (buf != NULL)
        *buf = b;
}

/* A header struct whose TLV area is hex, as pp_parse would leave it; used to
 * give the accessors areas pp_parse itself would refuse. */
static void fake_header(const char *tlv_hex_area, struct pp_header *h)
{
    size_t n;
    memset(h, 0, sizeof(*h));
    h->version = 2;
    h->command = PP2_CMD_PROXY;
    h->fam = PP2_FAM_UNSPEC_UNSPEC;
    h->tlv = place_hex(tlv_hex_area, &n);
    h->tlv_len = n;
    h->len = PP_V2_HDR_LEN + n;
}

static void test_find(void **state)
{
    (void)state;
    struct pp_header h;
    struct pp_tlv t;
    const uint8_t *b;

    /* AUTHORITY a.example, NOOP, AUTHORITY b.example, NOOP "x". */
    parse_hex(SIG "2111002bc0a80001c0a8000bdc0401bb020009612e6578616d706c65040000"
                  "020009622e6578616d706c6504000178",
              &h, &b);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_AUTHORITY, &t), 1);
    assert_int_equal(t.type, PP2_TYPE_AUTHORITY);
    assert_int_equal(t.len, 9);
    assert_ptr_equal(t.value, b + 31);
    assert_memory_equal(t.value, "a.example", 9);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_NOOP, &t), 1);
    assert_int_equal(t.len, 0);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_ALPN, &t), 0);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_CRC32C, &t), 0);

    /* No TLVs at all, v2 and v1. */
    parse_hex(SIG "2111000c7f0000017f000001ca2b0401", &h, NULL);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_NOOP, &t), 0);
    parse_hex("50524f585920554e4b4e4f574e0d0a", &h, NULL);
    assert_int_equal(h.version, 1);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_NOOP, &t), 0);

    /* A malformed area is reported, wherever the malformation is. */
    fake_header("02000a 61626364", &h);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_AUTHORITY, &t), -PP_EBADTLV);
    fake_header("040000 0200", &h);
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_ALPN, &t), -PP_EBADTLV);
    /* ... but a match before it is found. */
    assert_int_equal(pp_tlv_find(&h, PP2_TYPE_NOOP, &t), 1);
}

/* ---- pp_tlv_name ---------------------------------------------------------- */

static void test_names(void **state)
{
    (void)state;
    struct name_case {
        uint8_t type;
        const char *name;
    };
    static const struct name_case types[] = {
        {0x01, "alpn"}, {0x02, "authority"}, {0x03, "crc32c"}, {0x04, "noop"},  {0x05, "unique-id"},
        {0x20, "ssl"},  {0x30, "netns"},     {0xEA, "aws"},    {0xEE, "azure"}, {0xE0, "gcp"},
    };
    static const struct name_case subs[] = {
        {0x21, "version"}, {0x22, "cn"},    {0x23, "cipher"},     {0x24, "sig_alg"},
        {0x25, "key_alg"}, {0x26, "group"}, {0x27, "sig_scheme"}, {0x28, "client_cert"},
    };
    for (int t = 0; t < 256; t++) {
        const char *want = NULL, *want_sub = NULL;
        for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++)
            if (types[i].type == t)
                want = types[i].name;
        for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
            if (subs[i].type == t)
                want_sub = subs[i].name;
        const char *got = pp_tlv_name((uint8_t)t, 0);
        const char *got_sub = pp_tlv_name((uint8_t)t, 1);
        if (want == NULL && got != NULL)
            fail_msg("type 0x%02x: got \"%s\", want NULL", t, got);
        if (want != NULL)
            assert_string_equal(got, want);
        if (want_sub == NULL && got_sub != NULL)
            fail_msg("sub-type 0x%02x: got \"%s\", want NULL", t, got_sub);
        if (want_sub != NULL) {
            assert_string_equal(got_sub, want_sub);
            /* Any non-zero sub means "SSL sub-TLV". */
            assert_string_equal(pp_tlv_name((uint8_t)t, 7), want_sub);
        }
    }
}

/* ---- SSL ------------------------------------------------------------------ */

/* client 0x05, verify 0x01020304, then the 8 sub-TLVs in type order. */
#define SSL_ALL                                                                                    \
    "05 01020304"                                                                                  \
    "210007 544c5376312e33"                                                                        \
    "22000e 636c69656e742e6578616d706c65"                                                          \
    "230016 544c535f4145535f3235365f47434d5f534841333834"                                          \
    "24000a 5253412d534841323536"                                                                  \
    "250007 52534132303438"                                                                        \
    "260009 736563703235367231"                                                                    \
    "270013 7273615f7073735f727361655f736861323536"                                                \
    "28000c 3082000a020101a003020102"

static void test_ssl_all_subtlvs(void **state)
{
    (void)state;
    struct pp_tlv t = tlv_hex(PP2_TYPE_SSL, SSL_ALL);
    struct pp_ssl s;
    memset(&s, 0xA5, sizeof(s));
    assert_int_equal(pp_tlv_ssl(&t, &s), 0);
    assert_int_equal(s.client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS);
    assert_int_equal(s.verify, 0x01020304);
    assert_str(s.version, "TLSv1.3");
    assert_str(s.cn, "client.example");
    assert_str(s.cipher, "TLS_AES_256_GCM_SHA384");
    assert_str(s.sig_alg, "RSA-SHA256");
    assert_str(s.key_alg, "RSA2048");
    assert_str(s.group, "secp256r1");
    assert_str(s.sig_scheme, "rsa_pss_rsae_sha256");
    assert_int_equal(s.client_cert.len, 12);
    assert_memory_equal(s.client_cert.ptr, "\x30\x82\x00\x0a\x02\x01\x01\xa0\x03\x02\x01\x02", 12);
    /* Strings point into the TLV value, not into a copy. */
    assert_ptr_equal(s.version.ptr, (const char *)t.value + 8);
    assert_ptr_equal(s.client_cert.ptr, (const char *)t.value + t.len - 12);
    assert_ptr_equal(s.sub, t.value + PP2_SSL_FIXED_LEN);
    assert_int_equal(s.sub_len, t.len - PP2_SSL_FIXED_LEN);

    /* sub/sub_len walk with the same iterator. */
    const uint8_t *cur = s.sub;
    struct pp_tlv sub;
    for (uint8_t type = PP2_SUBTYPE_SSL_VERSION; type <= PP2_SUBTYPE_SSL_CLIENT_CERT; type++) {
        assert_int_equal(pp_tlv_next(&cur, s.sub + s.sub_len, &sub), 1);
        assert_int_equal(sub.type, type);
    }
    assert_int_equal(pp_tlv_next(&cur, s.sub + s.sub_len, &sub), 0);
}

static void test_ssl_section12(void **state)
{
    (void)state;
    struct pp_tlv t = tlv_hex(PP2_TYPE_SSL, "0700000000210007544c5376312e3322000e636c69656e742e"
                                            "6578616d706c65230016544c535f4145535f3132385f4743"
                                            "4d5f534841323536");
    struct pp_ssl s;
    assert_int_equal(t.len, 57);
    assert_int_equal(pp_tlv_ssl(&t, &s), 0);
    assert_int_equal(s.client, PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS);
    assert_int_equal(s.verify, 0);
    assert_str(s.version, "TLSv1.3");
    assert_str(s.cn, "client.example");
    assert_str(s.cipher, "TLS_AES_128_GCM_SHA256");
    assert_str(s.sig_alg, NULL);
    assert_str(s.key_alg, NULL);
    assert_str(s.group, NULL);
    assert_str(s.sig_scheme, NULL);
    assert_str(s.client_cert, NULL);
}

static void test_ssl_fixed_part_only(void **state)
{
    (void)state;
    /* What HAProxy sends for a non-TLS frontend; verify non-zero, big-endian. */
    struct pp_tlv t = tlv_hex(PP2_TYPE_SSL, "00 80000001");
    struct pp_ssl s;
    memset(&s, 0xA5, sizeof(s));
    assert_int_equal(pp_tlv_ssl(&t, &s), 0);
    assert_int_equal(s.client, 0);
    assert_int_equal(s.verify, 0x80000001);
    assert_int_equal(s.sub_len, 0);
    assert_str(s.version, NULL);
    assert_str(s.cn, NULL);
    assert_str(s.cipher, NULL);
    assert_str(s.client_cert, NULL);
}

static void test_ssl_first_of_each_kind(void **state)
{
    (void)state;
    /* CN twice and an unknown sub-type 0x29: the first CN wins, 0x29 is
     * skipped like any TLV a receiver does not know. */
    struct pp_tlv t = tlv_hex(PP2_TYPE_SSL, "01 00000000 220001 61 290002 ffff 220001 62");
    struct pp_ssl s;
    assert_int_equal(pp_tlv_ssl(&t, &s), 0);
    assert_str(s.cn, "a");
    assert_str(s.version, NULL);
    assert_int_equal(s.sub_len, 13);
}

static void test_ssl_errors(void **state)
{
    (void)state;
    struct pp_ssl s;
    struct pp_tlv t;
    static const char *const short_values[] = {"", "01", "0100", "010000", "01000000"};
    for (size_t i = 0; i < 5; i++) {
        t = tlv_hex(PP2_TYPE_SSL, short_values[i]);
        assert_int_equal(pp_tlv_ssl(&t, &s), -PP_ETLVLEN);
    }
    static const char *const bad_subs[] = {
        "01 00000000 21000a 544c53",       /* sub-TLV runs past the value */
        "01 00000000 21",                  /* 1 byte left */
        "01 00000000 2100",                /* 2 bytes left */
        "01 00000000 210001 41 2200",      /* good one, then 2 bytes */
        "01 00000000 210001 41 22ffff 41", /* good one, then a huge length */
    };
    for (size_t i = 0; i < 5; i++) {
        t = tlv_hex(PP2_TYPE_SSL, bad_subs[i]);
        int rc = pp_tlv_ssl(&t, &s);
        if (rc != -PP_EBADTLV)
            fail_msg("\"%s\": got %d, want -PP_EBADTLV", bad_subs[i], rc);
    }
    t = tlv_hex(PP2_TYPE_ALPN, "01 00000000");
    assert_int_equal(pp_tlv_ssl(&t, &s), -PP_EINVAL);
    t = tlv_hex(PP2_SUBTYPE_SSL_VERSION, "01 00000000");
    assert_int_equal(pp_tlv_ssl(&t, &s), -PP_EINVAL);
}

/* ---- CRC32C, vendor TLVs -------------------------------------------------- */

static void test_crc32c_value(void **state)
{
    (void)state;
    uint32_t v = 0;
    struct pp_tlv t = tlv_hex(PP2_TYPE_CRC32C, "3442e161");
    assert_int_equal(pp_tlv_crc32c(&t, &v), 0);
    assert_int_equal(v, 0x3442E161);
    t = tlv_hex(PP2_TYPE_CRC32C, "bb56885c");
    assert_int_equal(pp_tlv_crc32c(&t, &v), 0);
    assert_int_equal(v, 0xBB56885C);
    t = tlv_hex(PP2_TYPE_CRC32C, "3442e1");
    assert_int_equal(pp_tlv_crc32c(&t, &v), -PP_ETLVLEN);
    t = tlv_hex(PP2_TYPE_CRC32C, "3442e16100");
    assert_int_equal(pp_tlv_crc32c(&t, &v), -PP_ETLVLEN);
    t = tlv_hex(PP2_TYPE_CRC32C, "");
    assert_int_equal(pp_tlv_crc32c(&t, &v), -PP_ETLVLEN);
    t = tlv_hex(PP2_TYPE_NOOP, "3442e161");
    assert_int_equal(pp_tlv_crc32c(&t, &v), -PP_EINVAL);
}

static void test_aws(void **state)
{
    (void)state;
    struct pp_str s;
    struct pp_tlv t = tlv_hex(PP2_TYPE_AWS, "01767063652d3031323334353637383961626364656630");
    assert_int_equal(pp_tlv_aws_vpce_id(&t, &s), 0);
    assert_str(s, "vpce-0123456789abcdef0");
    assert_ptr_equal(s.ptr, (const char *)t.value + 1);

    /* Every allowed character class, and the empty ID. */
    t = tlv_hex(PP2_TYPE_AWS, "01 415a617a30392d");
    assert_int_equal(pp_tlv_aws_vpce_id(&t, &s), 0);
    assert_str(s, "AZaz09-");
    t = tlv_hex(PP2_TYPE_AWS, "01");
    assert_int_equal(pp_tlv_aws_vpce_id(&t, &s), 0);
    assert_int_equal(s.len, 0);

    /* Characters outside [A-Za-z0-9-], wherever they are. */
    static const char *const bad[] = {"01 7670 5f 6365", "01 7670 20 6365", "01 7670 2e 6365",
                                      "01 7670 00 6365", "01 7670 80 6365", "01 76706365 0a",
                                      "01 2f",           "01 7670 3a 6365"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        t = tlv_hex(PP2_TYPE_AWS, bad[i]);
        int rc = pp_tlv_aws_vpce_id(&t, &s);
        if (rc != -PP_EBADTLV)
            fail_msg("\"%s\": got %d, want -PP_EBADTLV", bad[i], rc);
    }
    /* Another subtype is not a VPC endpoint ID. */
    t = tlv_hex(PP2_TYPE_AWS, "02 76706365");
    assert_int_equal(pp_tlv_aws_vpce_id(&t, &s), -PP_EBADTLV);
    t = tlv_hex(PP2_TYPE_AWS, "00");
    assert_int_equal(pp_tlv_aws_vpce_id(&t, &s), -PP_EBADTLV);
    /* No subtype byte at all: the header leaves the code open. */
    t = tlv_hex(PP2_TYPE_AWS, "");
    int rc = pp_tlv_aws_vpce_id(&t, &s);
    assert_true(rc == -PP_ETLVLEN || rc == -PP_EBADTLV);

    t = tlv_hex(PP2_TYPE_AZURE, "01 76706365");
    assert_int_equal(pp_tlv_aws_vpce_id(&t, &s), -PP_EINVAL);
}

static void test_azure(void **state)
{
    (void)state;
    uint32_t v = 0;
    struct pp_tlv t = tlv_hex(PP2_TYPE_AZURE, "0178563412");
    assert_int_equal(pp_tlv_azure_linkid(&t, &v), 0);
    assert_int_equal(v, 0x12345678);
    t = tlv_hex(PP2_TYPE_AZURE, "01ffffff80");
    assert_int_equal(pp_tlv_azure_linkid(&t, &v), 0);
    assert_int_equal(v, 0x80ffffff);

    static const char *const bad_len[] = {"", "01", "01785634", "017856341200"};
    for (size_t i = 0; i < 4; i++) {
        t = tlv_hex(PP2_TYPE_AZURE, bad_len[i]);
        assert_int_equal(pp_tlv_azure_linkid(&t, &v), -PP_ETLVLEN);
    }
    t = tlv_hex(PP2_TYPE_AZURE, "0278563412");
    assert_int_equal(pp_tlv_azure_linkid(&t, &v), -PP_EBADTLV);
    t = tlv_hex(PP2_TYPE_AWS, "0178563412");
    assert_int_equal(pp_tlv_azure_linkid(&t, &v), -PP_EINVAL);
}

static void test_gcp(void **state)
{
    (void)state;
    uint64_t v = 0;
    struct pp_tlv t = tlv_hex(PP2_TYPE_GCP, "0102030405060708");
    assert_int_equal(pp_tlv_gcp_psc_id(&t, &v), 0);
    assert_true(v == 0x0102030405060708ULL);
    t = tlv_hex(PP2_TYPE_GCP, "ff00000000000001");
    assert_int_equal(pp_tlv_gcp_psc_id(&t, &v), 0);
    assert_true(v == 0xff00000000000001ULL);
    t = tlv_hex(PP2_TYPE_GCP, "01020304050607");
    assert_int_equal(pp_tlv_gcp_psc_id(&t, &v), -PP_ETLVLEN);
    t = tlv_hex(PP2_TYPE_GCP, "010203040506070809");
    assert_int_equal(pp_tlv_gcp_psc_id(&t, &v), -PP_ETLVLEN);
    t = tlv_hex(PP2_TYPE_GCP, "");
    assert_int_equal(pp_tlv_gcp_psc_id(&t, &v), -PP_ETLVLEN);
    t = tlv_hex(0xE1, "0102030405060708");
    assert_int_equal(pp_tlv_gcp_psc_id(&t, &v), -PP_EINVAL);
}

/* ---- text TLVs ------------------------------------------------------------ */

static void test_str_limits(void **state)
{
    (void)state;
    static uint8_t big[65535];
    memset(big, 'z', sizeof(big));
    static const struct {
        uint8_t type;
        size_t max; /* longest accepted value */
    } types[] = {
        {PP2_TYPE_ALPN, 65535},  {PP2_TYPE_AUTHORITY, PP2_AUTHORITY_MAX},
        {PP2_TYPE_NOOP, 65535},  {PP2_TYPE_UNIQUE_ID, PP2_UNIQUE_ID_MAX},
        {PP2_TYPE_NETNS, 65535},
    };
    for (size_t i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
        struct pp_str s;
        static const size_t lens[] = {0, 1, 128, 129, 255, 256, 65535};
        for (size_t j = 0; j < sizeof(lens) / sizeof(lens[0]); j++) {
            const uint8_t *v = guard_place(&guard, big, lens[j]);
            struct pp_tlv t = tlv_of(types[i].type, v, lens[j]);
            int rc = pp_tlv_str(&t, &s);
            int want = lens[j] <= types[i].max ? 0 : -PP_ETLVLEN;
            if (rc != want)
                fail_msg("type 0x%02x len %zu: got %d, want %d", types[i].type, lens[j], rc, want);
            if (rc == 0) {
                assert_ptr_equal(s.ptr, (const char *)v);
                assert_int_equal(s.len, lens[j]);
            }
        }
    }
    static const uint8_t not_text[] = {PP2_TYPE_CRC32C,
                                       PP2_TYPE_SSL,
                                       PP2_SUBTYPE_SSL_CN,
                                       PP2_TYPE_AWS,
                                       PP2_TYPE_AZURE,
                                       PP2_TYPE_GCP,
                                       0x00,
                                       0x06,
                                       0xF0,
                                       0xFF};
    for (size_t i = 0; i < sizeof(not_text); i++) {
        struct pp_str s;
        struct pp_tlv t = tlv_of(not_text[i], big, 4);
        assert_int_equal(pp_tlv_str(&t, &s), -PP_EINVAL);
    }
}

/* ---- accessors ------------------------------------------------------------ */

#define ALL_TLVS                                                                                   \
    "010002 6832"                              /* ALPN h2 */                                       \
    "02000b 6578616d706c652e636f6d"            /* AUTHORITY example.com */                         \
    "040003 000000"                            /* NOOP */                                          \
    "050009 636f6e6e2d30303031"                /* UNIQUE_ID conn-0001 */                           \
    "300004 626c7565"                          /* NETNS blue */                                    \
    "20000f 07 00000000 210007 544c5376312e33" /* SSL */                                           \
    "ea0005 0176706365"                        /* AWS vpce */                                      \
    "ee0005 0178563412"                        /* Azure */                                         \
    "e00008 0102030405060708"                  /* GCP */                                           \
    "020006 7365636f6e64"                      /* AUTHORITY second (ignored) */

static void test_accessors(void **state)
{
    (void)state;
    /* Build TCP4 + ALL_TLVS + CRC32C with the checksum filled in. */
    uint8_t b[512];
    long tl = vectors_unhex(ALL_TLVS, b + 28, sizeof(b) - 28 - 7);
    assert_true(tl > 0);
    size_t len = 12 + (size_t)tl + 7, n = 16 + len;
    memcpy(b, PP_V2_SIG, PP_V2_SIG_LEN);
    b[12] = 0x21;
    b[13] = 0x11;
    b[14] = (uint8_t)(len >> 8);
    b[15] = (uint8_t)len;
    memcpy(b + 16, "\xc0\xa8\x00\x01\xc0\xa8\x00\x0b\xdc\x04\x01\xbb", 12);
    memcpy(b + n - 7, "\x03\x00\x04\x00\x00\x00\x00", 7);
    uint32_t crc = pp_crc32c(0, b, n);
    b[n - 4] = (uint8_t)(crc >> 24);
    b[n - 3] = (uint8_t)(crc >> 16);
    b[n - 2] = (uint8_t)(crc >> 8);
    b[n - 1] = (uint8_t)crc;

    const uint8_t *p = guard_place(&guard, b, n);
    struct pp_header h;
    assert_int_equal(pp_parse(p, n, &h, NULL), n);
    assert_int_equal(h.flags, PP_HDR_CRC_VERIFIED);

    struct pp_str s;
    assert_int_equal(pp_get_alpn(&h, &s), 0);
    assert_str(s, "h2");
    assert_ptr_equal(s.ptr, (const char *)p + 31);
    assert_int_equal(pp_get_authority(&h, &s), 0);
    assert_str(s, "example.com");
    assert_int_equal(pp_get_noop(&h, &s), 0);
    assert_int_equal(s.len, 3);
    assert_memory_equal(s.ptr, "\0\0\0", 3);
    assert_int_equal(pp_get_unique_id(&h, &s), 0);
    assert_str(s, "conn-0001");
    assert_int_equal(pp_get_netns(&h, &s), 0);
    assert_str(s, "blue");
    assert_int_equal(pp_get_aws_vpce_id(&h, &s), 0);
    assert_str(s, "vpce");

    uint32_t u32;
    assert_int_equal(pp_get_crc32c(&h, &u32), 0);
    assert_int_equal(u32, crc);
    assert_int_equal(pp_get_azure_linkid(&h, &u32), 0);
    assert_int_equal(u32, 0x12345678);
    uint64_t u64;
    assert_int_equal(pp_get_gcp_psc_id(&h, &u64), 0);
    assert_true(u64 == 0x0102030405060708ULL);
    struct pp_ssl ssl;
    assert_int_equal(pp_get_ssl(&h, &ssl), 0);
    assert_int_equal(ssl.client, 7);
    assert_int_equal(ssl.verify, 0);
    assert_str(ssl.version, "TLSv1.3");
    assert_str(ssl.cn, NULL);
}

static void test_accessors_not_found(void **state)
{
    (void)state;
    static const char *const headers[] = {
        SIG "2111000c7f0000017f000001ca2b0401", SIG "20000000",
        "50524f5859205443503420312e322e332e3420352e362e372e3820312032 0d0a",
        SIG "21110011 7f0000017f000001ca2b0401 e1000258 58", /* one custom TLV */
    };
    for (size_t i = 0; i < sizeof(headers) / sizeof(headers[0]); i++) {
        struct pp_header h;
        struct pp_str s;
        struct pp_ssl ssl;
        uint32_t u32;
        uint64_t u64;
        parse_hex(headers[i], &h, NULL);
        assert_int_equal(pp_get_alpn(&h, &s), -PP_ENOTFOUND);
        assert_int_equal(pp_get_authority(&h, &s), -PP_ENOTFOUND);
        assert_int_equal(pp_get_unique_id(&h, &s), -PP_ENOTFOUND);
        assert_int_equal(pp_get_netns(&h, &s), -PP_ENOTFOUND);
        assert_int_equal(pp_get_noop(&h, &s), -PP_ENOTFOUND);
        assert_int_equal(pp_get_crc32c(&h, &u32), -PP_ENOTFOUND);
        assert_int_equal(pp_get_ssl(&h, &ssl), -PP_ENOTFOUND);
        assert_int_equal(pp_get_aws_vpce_id(&h, &s), -PP_ENOTFOUND);
        assert_int_equal(pp_get_azure_linkid(&h, &u32), -PP_ENOTFOUND);
        assert_int_equal(pp_get_gcp_psc_id(&h, &u64), -PP_ENOTFOUND);
    }
}

/* The accessors pass on the decoder's error for the first TLV of the type. */
static void test_accessors_errors(void **state)
{
    (void)state;
    struct pp_header h;
    struct pp_str s;
    struct pp_ssl ssl;
    uint32_t u32;
    uint64_t u64;

    fake_header("ee0004 01785634", &h);
    assert_int_equal(pp_get_azure_linkid(&h, &u32), -PP_ETLVLEN);
    fake_header("ee0005 0278563412", &h);
    assert_int_equal(pp_get_azure_linkid(&h, &u32), -PP_EBADTLV);
    fake_header("ee0004 01785634 ee0005 0178563412", &h);
    assert_int_equal(pp_get_azure_linkid(&h, &u32), -PP_ETLVLEN);
    fake_header("e00007 01020304050607", &h);
    assert_int_equal(pp_get_gcp_psc_id(&h, &u64), -PP_ETLVLEN);
    fake_header("ea0003 01 5f5f", &h);
    assert_int_equal(pp_get_aws_vpce_id(&h, &s), -PP_EBADTLV);
    fake_header("030003 000000", &h);
    assert_int_equal(pp_get_crc32c(&h, &u32), -PP_ETLVLEN);
    fake_header("200004 01000000", &h);
    assert_int_equal(pp_get_ssl(&h, &ssl), -PP_ETLVLEN);
    fake_header("200007 01 00000000 2100", &h);
    assert_int_equal(pp_get_ssl(&h, &ssl), -PP_EBADTLV);

    /* Over-long text values, as a header built elsewhere might carry. */
    static char hex[2 * 300 + 16];
    strcpy(hex, "020100");
    for (int i = 0; i < 256; i++)
        strcat(hex, "61");
    fake_header(hex, &h);
    assert_int_equal(pp_get_authority(&h, &s), -PP_ETLVLEN);
    strcpy(hex, "050081");
    for (int i = 0; i < 129; i++)
        strcat(hex, "78");
    fake_header(hex, &h);
    assert_int_equal(pp_get_unique_id(&h, &s), -PP_ETLVLEN);

    /* A malformed area before the TLV sought. */
    fake_header("04000a 00", &h);
    assert_int_equal(pp_get_alpn(&h, &s), -PP_EBADTLV);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_next_walks_in_order),
        cmocka_unit_test(test_next_empty_area),
        cmocka_unit_test(test_next_truncated_header),
        cmocka_unit_test(test_next_overrun),
        cmocka_unit_test(test_find),
        cmocka_unit_test(test_names),
        cmocka_unit_test(test_ssl_all_subtlvs),
        cmocka_unit_test(test_ssl_section12),
        cmocka_unit_test(test_ssl_fixed_part_only),
        cmocka_unit_test(test_ssl_first_of_each_kind),
        cmocka_unit_test(test_ssl_errors),
        cmocka_unit_test(test_crc32c_value),
        cmocka_unit_test(test_aws),
        cmocka_unit_test(test_azure),
        cmocka_unit_test(test_gcp),
        cmocka_unit_test(test_str_limits),
        cmocka_unit_test(test_accessors),
        cmocka_unit_test(test_accessors_not_found),
        cmocka_unit_test(test_accessors_errors),
    };
    guard_cap = 70000;
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
