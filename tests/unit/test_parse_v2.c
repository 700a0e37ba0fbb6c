/*
 * test_parse_v2.c - the fields pp_parse decodes from v2 binary headers (the
 * vectors of PROXY-PROTOCOL.md section 12), CRC32C handling, the length cap,
 * and what is decided from the 16 fixed bytes alone. Every input is placed
 * right before a PROT_NONE page.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyproto.h"
#include "check.h"
#include "rng.h"
#include "vectors.h"

#define SIG "0d0a0d0a000d0a515549540a"

static ssize_t parse_opts(const uint8_t *b, size_t n, const struct pp_parse_opts *opts,
                          struct pp_header *hdr)
{
    const uint8_t *p = guard_place(&guard, b, n);
    assert_non_null(p);
    memset(hdr, 0xA5, sizeof(*hdr));
    ssize_t rc = pp_parse(p, n, hdr, opts);
    assert_memory_equal(p, b, n);
    return rc;
}

static ssize_t parse_n(const uint8_t *b, size_t n, unsigned flags, struct pp_header *hdr)
{
    struct pp_parse_opts opts = {.flags = flags};
    return parse_opts(b, n, &opts, hdr);
}

/* Decodes hex into a static buffer; tests use one input at a time. */
static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    long n = vectors_unhex(hex, out, cap);
    assert_true(n >= 0);
    return (size_t)n;
}

/* Address block size of a fam byte (0 for an undefined one). */
static int pp2_block(uint8_t fam)
{
    switch (fam >> 4) {
    case 1:
        return PP2_ADDR_LEN_INET;
    case 2:
        return PP2_ADDR_LEN_INET6;
    case 3:
        return PP2_ADDR_LEN_UNIX;
    default:
        return 0;
    }
}

/* The placed copy of the last input, so tlv pointers can be checked. */
static const uint8_t *placed(size_t n)
{
    return guard.limit - n;
}

static void assert_head(const struct pp_header *h, uint8_t command, uint8_t fam, int socktype,
                        size_t len, size_t tlv_len)
{
    assert_int_equal(h->version, 2);
    assert_int_equal(h->command, command);
    assert_int_equal(h->fam, fam);
    assert_int_equal(h->socktype, socktype);
    assert_int_equal(h->len, len);
    assert_int_equal(h->tlv_len, tlv_len);
}

static void test_local(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    size_t n = unhex(SIG "20000000", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 16);
    assert_head(&h, PP2_CMD_LOCAL, PP2_FAM_UNSPEC_UNSPEC, 0, 16, 0);
    assert_int_equal(h.flags, 0);
    assert_int_equal(h.src.sa.sa_family, AF_UNSPEC);
    assert_int_equal(h.dst.sa.sa_family, AF_UNSPEC);
}

static void test_local_skips_address_block(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    size_t n = unhex(SIG "2011000c0a0000010a000002045708ae", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 28);
    assert_int_equal(h.version, 2);
    assert_int_equal(h.command, PP2_CMD_LOCAL);
    assert_int_equal(h.fam, PP2_FAM_TCP4);
    assert_int_equal(h.tlv_len, 0);
    /* LOCAL: the receiver keeps the real endpoints, so none are carried. */
    assert_int_equal(h.src.sa.sa_family, AF_UNSPEC);
    assert_int_equal(h.dst.sa.sa_family, AF_UNSPEC);

    /* TLVs after a skipped block start after it, not at byte 16. */
    n = unhex(SIG "20110011 0a0000010a000002045708ae 0100026832", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 33);
    assert_int_equal(h.command, PP2_CMD_LOCAL);
    assert_int_equal(h.tlv_len, 5);
    assert_ptr_equal(h.tlv, placed(n) + 28);
    struct pp_str alpn;
    assert_int_equal(pp_get_alpn(&h, &alpn), 0);
    assert_int_equal(alpn.len, 2);
    assert_memory_equal(alpn.ptr, "h2", 2);

    /* "Receivers MUST skip len bytes whatever it is": a LOCAL length shorter
     * than its family's block is no error. */
    n = unhex(SIG "20110000", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 16);
    assert_int_equal(h.command, PP2_CMD_LOCAL);
    assert_int_equal(h.src.sa.sa_family, AF_UNSPEC);
}

static void test_local_with_tlvs(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    /* LOCAL + ALPN "h2" + NOOP(0). */
    size_t n = unhex(SIG "2000000801000268320400 00", b, sizeof(b));
    assert_int_equal(n, 24);
    assert_int_equal(parse_n(b, n, 0, &h), 24);
    assert_head(&h, PP2_CMD_LOCAL, PP2_FAM_UNSPEC_UNSPEC, 0, 24, 8);
    assert_ptr_equal(h.tlv, placed(n) + 16);
    assert_int_equal(h.src.sa.sa_family, AF_UNSPEC);
}

static void test_tcp4_udp4(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    size_t n = unhex(SIG "2111000c7f0000017f000001ca2b0401", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 28);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, 28, 0);
    assert_int_equal(h.flags, 0);
    check_in4(&h.src, "127.0.0.1", 51755);
    check_in4(&h.dst, "127.0.0.1", 1025);

    n = unhex(SIG "2112000c7f0000017f000001ca2b0401", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 28);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_UDP4, SOCK_DGRAM, 28, 0);
    check_in4(&h.src, "127.0.0.1", 51755);
    check_in4(&h.dst, "127.0.0.1", 1025);
}

static void test_tcp6_udp6(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    const char *addrs = "20010db8000000000000000000000001"
                        "20010db8000000000000000000000002dc0401bb";
    char hex[200];

    snprintf(hex, sizeof(hex), SIG "21210024%s", addrs);
    size_t n = unhex(hex, b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 52);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP6, SOCK_STREAM, 52, 0);
    check_in6(&h.src, "2001:db8::1", 56324);
    check_in6(&h.dst, "2001:db8::2", 443);

    snprintf(hex, sizeof(hex), SIG "21220024%s", addrs);
    n = unhex(hex, b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 52);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_UDP6, SOCK_DGRAM, 52, 0);
    check_in6(&h.src, "2001:db8::1", 56324);
    check_in6(&h.dst, "2001:db8::2", 443);
}

static void test_tcp6_v4_mapped_stays_v6(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    size_t n = unhex(SIG "21210024"
                         "00000000000000000000ffff7f000001"
                         "00000000000000000000ffff7f000001cc4c0401",
                     b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 52);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP6, SOCK_STREAM, 52, 0);
    check_in6(&h.src, "::ffff:127.0.0.1", 52300);
    check_in6(&h.dst, "::ffff:127.0.0.1", 1025);
}

static void fill_unix(uint8_t *b, const char *src, const char *dst, uint8_t fam)
{
    memcpy(b, PP_V2_SIG, PP_V2_SIG_LEN);
    b[12] = 0x21;
    b[13] = fam;
    b[14] = 0;
    b[15] = 216;
    memset(b + 16, 0, 216);
    memcpy(b + 16, src, strnlen(src, 108));
    memcpy(b + 16 + 108, dst, strnlen(dst, 108));
}

static void test_unix(void **state)
{
    (void)state;
    uint8_t b[232];
    struct pp_header h;

    fill_unix(b, "/run/a.sock", "/run/b.sock", PP2_FAM_UNIX_STREAM);
    assert_int_equal(parse_n(b, sizeof(b), 0, &h), 232);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_UNIX_STREAM, SOCK_STREAM, 232, 0);
    assert_int_equal(h.src.sa.sa_family, AF_UNIX);
    assert_int_equal(h.dst.sa.sa_family, AF_UNIX);
    assert_string_equal(h.src.sun.sun_path, "/run/a.sock");
    assert_string_equal(h.dst.sun.sun_path, "/run/b.sock");

    fill_unix(b, "/run/a.sock", "/run/b.sock", PP2_FAM_UNIX_DGRAM);
    assert_int_equal(parse_n(b, sizeof(b), 0, &h), 232);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_UNIX_DGRAM, SOCK_DGRAM, 232, 0);
    assert_string_equal(h.src.sun.sun_path, "/run/a.sock");
    assert_string_equal(h.dst.sun.sun_path, "/run/b.sock");

    /* A path using all 108 bytes comes back without a NUL. */
    char full_a[109], full_b[109];
    memset(full_a, 'a', 108);
    memset(full_b, 'b', 108);
    full_a[108] = full_b[108] = '\0';
    fill_unix(b, full_a, full_b, PP2_FAM_UNIX_STREAM);
    assert_int_equal(parse_n(b, sizeof(b), 0, &h), 232);
    assert_memory_equal(h.src.sun.sun_path, full_a, 108);
    assert_memory_equal(h.dst.sun.sun_path, full_b, 108);
}

static void test_proxy_unspec(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    size_t n = unhex(SIG "21000000", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 16);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_UNSPEC_UNSPEC, 0, 16, 0);
    assert_int_equal(h.src.sa.sa_family, AF_UNSPEC);
    assert_int_equal(h.dst.sa.sa_family, AF_UNSPEC);
    assert_int_equal(parse_n(b, n, PP_PARSE_REJECT_UNSPEC, &h), -PP_EUNSPEC);
    /* LOCAL is not "PROXY with UNSPEC": still accepted. */
    n = unhex(SIG "20000000", b, sizeof(b));
    assert_int_equal(parse_n(b, n, PP_PARSE_REJECT_UNSPEC, &h), 16);
}

static void test_crc32c(void **state)
{
    (void)state;
    uint8_t b[128];
    struct pp_header h;
    size_t n = unhex(SIG "211100137f0000017f000001ca2b04010300043442e161", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 35);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, 35, 7);
    assert_int_equal(h.flags, PP_HDR_CRC_VERIFIED);
    assert_ptr_equal(h.tlv, placed(n) + 28);

    /* Not checked, so not claimed as verified. */
    assert_int_equal(parse_n(b, n, PP_PARSE_NO_CRC, &h), 35);
    assert_int_equal(h.flags & PP_HDR_CRC_VERIFIED, 0);

    /* Flip each bit of the header in turn: never accepted as verified. The
     * bits of the fixed part change the length or the family, so only the
     * address block and the TLV are flipped here. */
    for (size_t i = 16; i < n; i++) {
        for (int bit = 0; bit < 8; bit++) {
            if (i >= 28 && i < 31)
                continue; /* TLV type/length: a structure error, not a CRC one */
            b[i] ^= (uint8_t)(1u << bit);
            ssize_t rc = parse_n(b, n, 0, &h);
            if (rc != -PP_EBADCRC)
                fail_msg("byte %zu bit %d flipped: got %zd, want -PP_EBADCRC", i, bit, rc);
            assert_int_equal(parse_n(b, n, PP_PARSE_NO_CRC, &h), 35);
            b[i] ^= (uint8_t)(1u << bit);
        }
    }

    n = unhex(SIG "2121002b0000000000000000000000000000000100000000000000000000000000000001"
                  "cf8f0401030004fd16ee60",
              b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 59);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP6, SOCK_STREAM, 59, 7);
    assert_int_equal(h.flags, PP_HDR_CRC_VERIFIED);
    check_in6(&h.src, "::1", 53135);
    check_in6(&h.dst, "::1", 1025);

    /* No CRC TLV at all: nothing verified. */
    n = unhex(SIG "2111000c7f0000017f000001ca2b0401", b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 28);
    assert_int_equal(h.flags, 0);
}

static void test_tlv_area(void **state)
{
    (void)state;
    uint8_t b[128];
    struct pp_header h;
    size_t n = unhex(SIG "21110021c0a80001c0a8000bdc0401bb02000b6578616d706c652e636f6d"
                         "030004bb56885c",
                     b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 49);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, 49, 21);
    assert_int_equal(h.flags, PP_HDR_CRC_VERIFIED);
    check_in4(&h.src, "192.168.0.1", 56324);
    check_in4(&h.dst, "192.168.0.11", 443);
    assert_ptr_equal(h.tlv, placed(n) + 28);
    assert_memory_equal(h.tlv, b + 28, 21);

    n = unhex(SIG "2111002ec0a80001c0a8000bdc0401bb010002683202000b6578616d706c652e636f6d"
                  "040000050009636f6e6e2d30303031",
              b, sizeof(b));
    assert_int_equal(parse_n(b, n, 0, &h), 62);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, 62, 34);
    assert_int_equal(h.flags, 0);
    assert_ptr_equal(h.tlv, placed(n) + 28);
}

/* A TCP4 header of exactly total bytes, padded with one NOOP TLV. The buffer
 * is static (one header at a time), so failed assertions leak nothing. */
static uint8_t *make_padded(size_t total)
{
    static uint8_t b[PP_V2_MAX_LEN];
    assert_true(total >= 31 && total <= PP_V2_MAX_LEN);
    memset(b, 0, total);
    size_t len = total - 16, pad = len - 12 - 3;
    memcpy(b, PP_V2_SIG, PP_V2_SIG_LEN);
    b[12] = 0x21;
    b[13] = 0x11;
    b[14] = (uint8_t)(len >> 8);
    b[15] = (uint8_t)len;
    memcpy(b + 16, "\x7f\x00\x00\x01\x7f\x00\x00\x01\xca\x2b\x04\x01", 12);
    b[28] = PP2_TYPE_NOOP;
    b[29] = (uint8_t)(pad >> 8);
    b[30] = (uint8_t)pad;
    return b;
}

static ssize_t parse_cap(size_t total, size_t max_len, size_t give)
{
    struct pp_parse_opts opts = {.max_len = max_len};
    struct pp_header h;
    uint8_t *b = make_padded(total);
    ssize_t rc = parse_opts(b, give, &opts, &h);
    if (rc > 0)
        assert_int_equal(h.len, total);
    return rc;
}

static void test_length_cap(void **state)
{
    (void)state;
    struct pp_header h;

    /* Default: 4096 bytes in all, whether opts is zeroed or NULL. */
    assert_int_equal(parse_cap(PP_V2_DEFAULT_CAP, 0, PP_V2_DEFAULT_CAP), PP_V2_DEFAULT_CAP);
    assert_int_equal(parse_cap(PP_V2_DEFAULT_CAP + 1, 0, PP_V2_DEFAULT_CAP + 1), -PP_ETOOLONG);
    uint8_t *b = make_padded(PP_V2_DEFAULT_CAP + 1);
    const uint8_t *p = guard_place(&guard, b, PP_V2_DEFAULT_CAP + 1);
    assert_int_equal(pp_parse(p, PP_V2_DEFAULT_CAP + 1, &h, NULL), -PP_ETOOLONG);
    b = make_padded(PP_V2_DEFAULT_CAP);
    p = guard_place(&guard, b, PP_V2_DEFAULT_CAP);
    assert_int_equal(pp_parse(p, PP_V2_DEFAULT_CAP, &h, NULL), PP_V2_DEFAULT_CAP);

    /* An explicit cap is inclusive. */
    assert_int_equal(parse_cap(4097, 4097, 4097), 4097);
    assert_int_equal(parse_cap(4098, 4097, 4098), -PP_ETOOLONG);
    assert_int_equal(parse_cap(35, 35, 35), 35);
    assert_int_equal(parse_cap(36, 35, 36), -PP_ETOOLONG);

    /* A cap below the fixed part refuses every v2 header. */
    uint8_t local[16];
    assert_int_equal(unhex(SIG "20000000", local, sizeof(local)), 16);
    struct pp_parse_opts tiny = {.max_len = 16};
    assert_int_equal(parse_opts(local, 16, &tiny, &h), 16);
    tiny.max_len = 15;
    assert_int_equal(parse_opts(local, 16, &tiny, &h), -PP_ETOOLONG);

    /* The largest header the length field allows. */
    assert_int_equal(parse_cap(PP_V2_MAX_LEN, PP_V2_MAX_LEN, PP_V2_MAX_LEN), PP_V2_MAX_LEN);
    assert_int_equal(parse_cap(PP_V2_MAX_LEN, PP_V2_MAX_LEN + 1, PP_V2_MAX_LEN), PP_V2_MAX_LEN);
    assert_int_equal(parse_cap(PP_V2_MAX_LEN, SIZE_MAX, PP_V2_MAX_LEN), PP_V2_MAX_LEN);
    assert_int_equal(parse_cap(PP_V2_MAX_LEN, 0, PP_V2_MAX_LEN), -PP_ETOOLONG);

    /* The cap is applied from the 16 fixed bytes: no need to wait for (or
     * buffer) a header that is refused anyway. */
    assert_int_equal(parse_cap(PP_V2_DEFAULT_CAP + 1, 0, 16), -PP_ETOOLONG);
    assert_int_equal(parse_cap(PP_V2_MAX_LEN, 0, 16), -PP_ETOOLONG);
    assert_int_equal(parse_cap(4098, 4097, 16), -PP_ETOOLONG);
    /* ... while a header under the cap is still waited for. */
    assert_int_equal(parse_cap(PP_V2_DEFAULT_CAP, 0, 16), 0);
    assert_int_equal(parse_cap(PP_V2_DEFAULT_CAP, 0, PP_V2_DEFAULT_CAP - 1), 0);
}

/* Bytes 12..15 alone tell a bad version, command, family or length. */
static void test_fixed_part_decides(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        long want; /* -PP_E*, 0 for a valid prefix, 16 for a whole header */
    } cases[] = {
        {SIG "1111000c", -PP_EBADVER},
        {SIG "0111000c", -PP_EBADVER},
        {SIG "f111000c", -PP_EBADVER},
        {SIG "2211000c", -PP_EBADCMD},
        {SIG "2f11000c", -PP_EBADCMD},
        {SIG "2113000c", -PP_EBADFAM},
        {SIG "2141000c", -PP_EBADFAM},
        {SIG "2110000c", -PP_EBADFAM},
        {SIG "2101000c", -PP_EBADFAM},
        {SIG "2013000c", -PP_EBADFAM},
        {SIG "21120000", -PP_EADDRLEN},
        {SIG "2111000b", -PP_EADDRLEN},
        {SIG "21210023", -PP_EADDRLEN},
        {SIG "213100d7", -PP_EADDRLEN},
        {SIG "21111000", -PP_ETOOLONG},
        {SIG "2111000c", 0},
        {SIG "21000003", 0},
        {SIG "20110000", 16},
        {SIG "21000000", 16},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t b[16];
        struct pp_header h;
        size_t n = unhex(cases[i].hex, b, sizeof(b));
        assert_int_equal(n, 16);
        ssize_t rc = parse_n(b, n, 0, &h);
        if (rc != cases[i].want)
            fail_msg("%s: got %zd (%s), want %ld", cases[i].hex + 24, rc, vectors_error_name(rc),
                     cases[i].want);
    }
}

/* Only '\r' (v2) and 'P' (v1) can start a header, and any wrong signature
 * byte is refused as soon as it arrives. */
static void test_signature_decides(void **state)
{
    (void)state;
    struct pp_header h;
    uint8_t b[PP_V2_SIG_LEN];
    memcpy(b, PP_V2_SIG, PP_V2_SIG_LEN);
    assert_int_equal(parse_n(b, 1, 0, &h), 0);
    for (size_t i = 1; i < PP_V2_SIG_LEN; i++) {
        assert_int_equal(parse_n(b, i, 0, &h), 0);
        b[i] ^= 0x40;
        ssize_t rc = parse_n(b, i + 1, 0, &h);
        if (rc != -PP_EBADSIG)
            fail_msg("signature byte %zu wrong: got %zd, want -PP_EBADSIG", i, rc);
        b[i] ^= 0x40;
    }
    assert_int_equal(parse_n(b, PP_V2_SIG_LEN, 0, &h), 0);
    static const uint8_t firsts[] = {'G', 'S', 0x16, 0x00, 'p', '\n', 0xff, 'H', 'E', 0x03};
    for (size_t i = 0; i < sizeof(firsts); i++)
        assert_int_equal(parse_n(&firsts[i], 1, 0, &h), -PP_EBADSIG);
}

static void test_no_v2(void **state)
{
    (void)state;
    uint8_t b[64];
    struct pp_header h;
    size_t n = unhex(SIG "2111000c7f0000017f000001ca2b0401", b, sizeof(b));
    assert_int_equal(parse_n(b, n, PP_PARSE_NO_V2, &h), -PP_EBADSIG);
    assert_int_equal(parse_n(b, 1, PP_PARSE_NO_V2, &h), -PP_EBADSIG);
    assert_int_equal(parse_n(b, n, PP_PARSE_NO_V1, &h), 28);
}

static void test_split_everywhere(void **state)
{
    (void)state;
    uint8_t b[128], rx[128];
    size_t n = unhex(SIG "21110048c0a80001c0a8000bdc0401bb2000390700000000210007544c5376312e33"
                         "22000e636c69656e742e6578616d706c65230016544c535f4145535f3132385f4743"
                         "4d5f534841323536",
                     b, sizeof(b));
    assert_int_equal(n, 88);
    /* A reader that receives the header in two pieces, split anywhere. */
    for (size_t s = 0; s <= n; s++) {
        struct pp_header h;
        memset(rx, 0, sizeof(rx));
        memcpy(rx, b, s);
        ssize_t rc = parse_n(rx, s, 0, &h);
        if (rc != (s == n ? (ssize_t)n : 0))
            fail_msg("after %zu bytes: got %zd", s, rc);
        memcpy(rx + s, b + s, n - s);
        assert_int_equal(parse_n(rx, n, 0, &h), 88);
        assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, 88, 60);
        check_in4(&h.src, "192.168.0.1", 56324);
    }
}

static void test_one_header_only(void **state)
{
    (void)state;
    uint8_t b[128];
    struct pp_header h;
    size_t n = unhex(SIG "2111000c7f0000017f000001ca2b0401" SIG "2111000c0606060607070707"
                         "00080009",
                     b, sizeof(b));
    assert_int_equal(n, 56);
    assert_int_equal(parse_n(b, n, 0, &h), 28);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, 28, 0);
    check_in4(&h.src, "127.0.0.1", 51755);
    check_in4(&h.dst, "127.0.0.1", 1025);

    /* The trailing bytes may be anything, even what would be a bad header. */
    memset(b + 28, 0xff, 28);
    assert_int_equal(parse_n(b, n, 0, &h), 28);
}

static void test_big_noop(void **state)
{
    (void)state;
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN};
    struct pp_header h;
    uint8_t *b = make_padded(16 + 12 + 3 + 5000);
    assert_int_equal(parse_opts(b, 5031, &opts, &h), 5031);
    assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, 5031, 5003);
    assert_ptr_equal(h.tlv, placed(5031) + 28);
    assert_int_equal(parse_opts(b, 5031, NULL, &h), -PP_ETOOLONG);
}

static void test_vendor_tlvs_accepted(void **state)
{
    (void)state;
    static const char *const hexes[] = {
        SIG "21110026c0a80001c0a8000bdc0401bbea001701767063652d30313233343536373839616263"
            "64656630",
        SIG "21110014c0a80001c0a8000bdc0401bbee00050178563412",
        SIG "21110017c0a80001c0a8000bdc0401bbe000080102030405060708",
    };
    static const size_t lens[] = {54, 36, 39};
    for (size_t i = 0; i < 3; i++) {
        uint8_t b[128];
        struct pp_header h;
        size_t n = unhex(hexes[i], b, sizeof(b));
        assert_int_equal(n, lens[i]);
        assert_int_equal(parse_n(b, n, 0, &h), lens[i]);
        assert_head(&h, PP2_CMD_PROXY, PP2_FAM_TCP4, SOCK_STREAM, lens[i], lens[i] - 28);
    }
}

/* Section 12 headers with random byte edits and length changes: whatever is
 * accepted keeps every promise of a positive result (fixed seed). */
static void check_accepted(const uint8_t *b, size_t rc, const struct pp_header *h, unsigned flags)
{
    assert_int_equal(rc, PP_V2_HDR_LEN + ((size_t)b[14] << 8 | b[15]));
    assert_int_equal(h->len, rc);
    assert_true(b[12] == 0x20 || b[12] == 0x21);
    assert_int_equal(h->fam, b[13]);
    size_t block = (size_t)pp2_block(b[13]);
    if (h->command == PP2_CMD_PROXY) {
        assert_true(rc >= PP_V2_HDR_LEN + block);
        if (h->tlv_len > 0)
            assert_ptr_equal(h->tlv, b + PP_V2_HDR_LEN + block);
    }
    if (h->tlv_len > 0)
        assert_ptr_equal(h->tlv + h->tlv_len, b + rc);

    /* "A header pp_parse accepted can be iterated without errors", within
     * HAProxy's per-type limits, with at most one CRC32C that matches. */
    const uint8_t *cur = h->tlv, *end = h->tlv + h->tlv_len;
    struct pp_tlv t;
    int rc_next, crcs = 0;
    while ((rc_next = pp_tlv_next(&cur, end, &t)) == 1) {
        struct pp_ssl ssl;
        switch (t.type) {
        case PP2_TYPE_CRC32C: {
            static uint8_t copy[4096];
            assert_int_equal(t.len, 4);
            crcs++;
            if (flags & PP_PARSE_NO_CRC)
                break;
            memcpy(copy, b, rc);
            memset(copy + (t.value - b), 0, 4);
            uint32_t want = pp_crc32c(0, copy, rc);
            uint32_t got = (uint32_t)t.value[0] << 24 | (uint32_t)t.value[1] << 16 |
                           (uint32_t)t.value[2] << 8 | t.value[3];
            assert_int_equal(got, want);
            break;
        }
        case PP2_TYPE_AUTHORITY:
            assert_true(t.len <= PP2_AUTHORITY_MAX);
            break;
        case PP2_TYPE_UNIQUE_ID:
            assert_true(t.len <= PP2_UNIQUE_ID_MAX);
            break;
        case PP2_TYPE_SSL:
            assert_int_equal(pp_tlv_ssl(&t, &ssl), 0);
            break;
        default:
            break;
        }
    }
    assert_int_equal(rc_next, 0);
    assert_true(crcs <= 1);
    assert_int_equal(h->flags & PP_HDR_CRC_VERIFIED,
                     crcs == 1 && !(flags & PP_PARSE_NO_CRC) ? PP_HDR_CRC_VERIFIED : 0);
}

static void test_mutations_keep_invariants(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        SIG "20000000",
        SIG "2011000c0a0000010a000002045708ae",
        SIG "2111000c7f0000017f000001ca2b0401",
        SIG "2122002420010db800000000000000000000000120010db8000000000000000000000002dc0401bb",
        SIG "211100137f0000017f000001ca2b04010300043442e161",
        SIG "21110021c0a80001c0a8000bdc0401bb02000b6578616d706c652e636f6d030004bb56885c",
        SIG "2111002ec0a80001c0a8000bdc0401bb010002683202000b6578616d706c652e636f6d040000050009"
            "636f6e6e2d30303031",
        SIG "21110048c0a80001c0a8000bdc0401bb2000390700000000210007544c5376312e3322000e636c6965"
            "6e742e6578616d706c65230016544c535f4145535f3132385f47434d5f534841323536",
        SIG "21000000",
    };
    struct rng prng = {0x9E3779B97F4A7C15ULL};
    unsigned accepted = 0;
    for (unsigned i = 0; i < 300000; i++) {
        uint8_t b[256];
        uint64_t x = rng_next(&prng);
        uint64_t r = x;
        size_t n = unhex(seeds[r % (sizeof(seeds) / sizeof(seeds[0]))], b, sizeof(b));
        r >>= 4;
        /* One to three edits past the signature: a bit flip, a random byte,
         * a small byte (TLV types, lengths), or a shorter length field. */
        for (unsigned m = 1 + (unsigned)(r % 3); m > 0; m--) {
            r = r * 6364136223846793005ULL + 1442695040888963407ULL;
            size_t pos = 12 + (size_t)(r >> 40) % (n - 12);
            switch ((r >> 20) & 3) {
            case 0:
                b[pos] ^= (uint8_t)(1u << ((r >> 8) & 7));
                break;
            case 1:
                b[pos] = (uint8_t)(r >> 24);
                break;
            case 2:
                b[pos] = (uint8_t)((r >> 24) % 6);
                break;
            default:
                n -= (size_t)(r >> 30) % 4 < n - 16 ? (size_t)(r >> 30) % 4 : n - 16;
                b[14] = (uint8_t)((n - 16) >> 8);
                b[15] = (uint8_t)(n - 16);
                break;
            }
        }
        unsigned flags = (x >> 62) == 0 ? PP_PARSE_NO_CRC : 0;
        struct pp_header h;
        ssize_t rc = parse_n(b, n, flags, &h);
        if (rc <= 0)
            continue;
        accepted++;
        check_accepted(placed(n), (size_t)rc, &h, flags);
    }
    assert_true(accepted > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_local),
        cmocka_unit_test(test_local_skips_address_block),
        cmocka_unit_test(test_local_with_tlvs),
        cmocka_unit_test(test_tcp4_udp4),
        cmocka_unit_test(test_tcp6_udp6),
        cmocka_unit_test(test_tcp6_v4_mapped_stays_v6),
        cmocka_unit_test(test_unix),
        cmocka_unit_test(test_proxy_unspec),
        cmocka_unit_test(test_crc32c),
        cmocka_unit_test(test_tlv_area),
        cmocka_unit_test(test_length_cap),
        cmocka_unit_test(test_fixed_part_decides),
        cmocka_unit_test(test_signature_decides),
        cmocka_unit_test(test_no_v2),
        cmocka_unit_test(test_split_everywhere),
        cmocka_unit_test(test_one_header_only),
        cmocka_unit_test(test_big_noop),
        cmocka_unit_test(test_vendor_tlvs_accepted),
        cmocka_unit_test(test_mutations_keep_invariants),
    };
    guard_cap = PP_V2_MAX_LEN + 64;
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
