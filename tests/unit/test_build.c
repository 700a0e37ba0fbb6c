/*
 * test_build.c - the builders produce the exact bytes of PROXY-PROTOCOL.md
 * section 12, write nothing at all when the buffer is too small, and refuse
 * arguments they cannot encode.
 *
 * Each exact-bytes case is run three ways: with every capacity below the
 * needed one (-PP_ENOSPC, buffer byte-for-byte unchanged), with the exact
 * capacity ending at a PROT_NONE page (a write past cap crashes), and with
 * room to spare (the bytes after the header stay untouched).
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
#define CANARY 0xA5
#define SPARE 64

static struct sockaddr_in in4(const char *ip, uint16_t port)
{
    struct sockaddr_in a;
    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

static struct sockaddr_in6 in6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 a;
    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

static struct sockaddr_un un(const char *path)
{
    struct sockaddr_un a;
    memset(&a, 0, sizeof(a));
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, strnlen(path, sizeof(a.sun_path)));
    return a;
}

#define SA(x) ((const struct sockaddr *)(x))

enum kind { V1, V2, V2_TLV, V2_CRC, SSL };

/* One builder call; pre is a header already in the buffer (V2_TLV, V2_CRC). */
struct bcase {
    enum kind kind;
    int command, socktype;
    const struct sockaddr *src, *dst;
    const uint8_t *pre;
    size_t pre_len;
    uint8_t type;
    const void *value;
    size_t vlen;
    const struct pp_ssl *ssl;
};

static ssize_t run(const struct bcase *c, uint8_t *buf, size_t cap)
{
    switch (c->kind) {
    case V1:
        return pp_build_v1(buf, cap, c->src, c->dst);
    case V2:
        return pp_build_v2(buf, cap, c->command, c->socktype, c->src, c->dst);
    case V2_TLV:
        return pp_build_v2_tlv(buf, cap, c->pre_len, c->type, c->value, c->vlen);
    case V2_CRC:
        return pp_build_v2_crc32c(buf, cap, c->pre_len);
    case SSL:
        return pp_build_ssl(buf, cap, c->ssl);
    }
    return 0;
}

/* Canary-filled buffer of n bytes with the case's existing header first. */
static void prepare(const struct bcase *c, uint8_t *buf, size_t n)
{
    memset(buf, CANARY, n);
    if (c->pre_len > 0)
        memcpy(buf, c->pre, c->pre_len);
}

/* Scratch buffers, static so that a failed assertion leaks nothing. */
#define SCRATCH (PP_V2_MAX_LEN + 8192)
static uint8_t buf[SCRATCH], ref[SCRATCH];

static void check_exact(const struct bcase *c, const uint8_t *want, size_t want_len)
{
    size_t n = want_len + SPARE;
    assert_true(n <= SCRATCH);

    for (size_t cap = 0; cap < want_len; cap++) {
        prepare(c, buf, n);
        memcpy(ref, buf, n);
        ssize_t rc = run(c, buf, cap);
        /* Below the existing header's own length the call is inconsistent;
         * either refusal is fine, a write is not. */
        if (rc != -PP_ENOSPC && !(cap < c->pre_len && rc == -PP_EINVAL))
            fail_msg("cap %zu of %zu: got %zd, want -PP_ENOSPC", cap, want_len, rc);
        if (memcmp(buf, ref, n) != 0)
            fail_msg("cap %zu of %zu: buffer changed on failure", cap, want_len);
    }

    uint8_t *g = guard.limit - want_len;
    assert_true(want_len <= guard.cap);
    prepare(c, g, want_len);
    ssize_t rc = run(c, g, want_len);
    if (rc != (ssize_t)want_len)
        fail_msg("exact cap %zu: got %zd", want_len, rc);
    assert_memory_equal(g, want, want_len);

    prepare(c, buf, n);
    assert_int_equal(run(c, buf, n), want_len);
    assert_memory_equal(buf, want, want_len);
    for (size_t i = want_len; i < n; i++)
        assert_int_equal(buf[i], CANARY);
}

static void check_exact_hex(const struct bcase *c, const char *hex)
{
    static uint8_t want[1024];
    long n = vectors_unhex(hex, want, sizeof(want));
    assert_true(n > 0);
    check_exact(c, want, (size_t)n);
}

static void check_exact_str(const struct bcase *c, const char *s)
{
    check_exact(c, (const uint8_t *)s, strlen(s));
}

/* The call fails with err and leaves a canary buffer of cap bytes alone. */
static void check_refused(const struct bcase *c, size_t cap, int err)
{
    assert_true(cap + SPARE <= SCRATCH);
    prepare(c, buf, cap + SPARE);
    memcpy(ref, buf, cap + SPARE);
    ssize_t rc = run(c, buf, cap);
    if (rc != -err)
        fail_msg("got %zd (%s), want -%s", rc, vectors_error_name(rc), vectors_error_name(err));
    assert_memory_equal(buf, ref, cap + SPARE);
}

/* ---- v2 ------------------------------------------------------------------- */

static void test_v2_inet(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("127.0.0.1", 51755), d4 = in4("127.0.0.1", 1025);
    struct bcase c = {.kind = V2,
                      .command = PP2_CMD_PROXY,
                      .socktype = SOCK_STREAM,
                      .src = SA(&s4),
                      .dst = SA(&d4)};
    check_exact_hex(&c, SIG "2111000c7f0000017f000001ca2b0401");
    c.socktype = SOCK_DGRAM;
    check_exact_hex(&c, SIG "2112000c7f0000017f000001ca2b0401");

    struct sockaddr_in6 s6 = in6("2001:db8::1", 56324), d6 = in6("2001:db8::2", 443);
    c.src = SA(&s6);
    c.dst = SA(&d6);
    c.socktype = SOCK_STREAM;
    check_exact_hex(&c, SIG "21210024 20010db8000000000000000000000001"
                            "20010db8000000000000000000000002 dc0401bb");
    c.socktype = SOCK_DGRAM;
    check_exact_hex(&c, SIG "21220024 20010db8000000000000000000000001"
                            "20010db8000000000000000000000002 dc0401bb");
}

static void test_v2_mixed_families_map_ipv4(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("192.168.0.1", 56324);
    struct sockaddr_in6 d6 = in6("2001:db8::2", 443);
    struct bcase c = {.kind = V2,
                      .command = PP2_CMD_PROXY,
                      .socktype = SOCK_STREAM,
                      .src = SA(&s4),
                      .dst = SA(&d6)};
    check_exact_hex(&c, SIG "21210024 00000000000000000000ffffc0a80001"
                            "20010db8000000000000000000000002 dc0401bb");
    c.src = SA(&d6);
    c.dst = SA(&s4);
    c.socktype = SOCK_DGRAM;
    check_exact_hex(&c, SIG "21220024 20010db8000000000000000000000002"
                            "00000000000000000000ffffc0a80001 01bbdc04");
}

static void test_v2_unix(void **state)
{
    (void)state;
    struct sockaddr_un sa = un("/run/a.sock"), da = un("/run/b.sock");
    uint8_t want[232];
    long n = vectors_unhex(SIG "213100d8", want, sizeof(want));
    assert_int_equal(n, 16);
    memset(want + 16, 0, 216);
    memcpy(want + 16, "/run/a.sock", 11);
    memcpy(want + 16 + 108, "/run/b.sock", 11);

    struct bcase c = {.kind = V2,
                      .command = PP2_CMD_PROXY,
                      .socktype = SOCK_STREAM,
                      .src = SA(&sa),
                      .dst = SA(&da)};
    check_exact(&c, want, sizeof(want));
    c.socktype = SOCK_DGRAM;
    want[13] = PP2_FAM_UNIX_DGRAM;
    check_exact(&c, want, sizeof(want));

    /* A path that fills sun_path has no NUL; the sockaddr ends at a guard
     * page so that looking for one past sun_path crashes. */
    char full[PP2_UNIX_PATH_LEN];
    memset(full, 'p', sizeof(full));
    struct sockaddr_un big;
    memset(&big, 0, sizeof(big));
    big.sun_family = AF_UNIX;
    memcpy(big.sun_path, full, sizeof(full));
    static uint8_t out[232 + SPARE];
    /* guard_place returns the page end minus the size: 2-byte aligned, as a
     * sockaddr_un needs. */
    const struct sockaddr *gsa = SA(guard_place(&guard, &big, sizeof(big)));
    ssize_t rc = pp_build_v2(out, 232 + SPARE, PP2_CMD_PROXY, SOCK_STREAM, gsa, SA(&da));
    assert_int_equal(rc, 232);
    assert_memory_equal(out + 16, full, 108);
    assert_memory_equal(out + 16 + 108, "/run/b.sock\0", 12);
}

static void test_v2_local_and_unspec(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("127.0.0.1", 51755), d4 = in4("127.0.0.1", 1025);
    struct bcase c = {.kind = V2, .command = PP2_CMD_LOCAL, .socktype = SOCK_STREAM};
    check_exact_hex(&c, SIG "20000000");
    /* LOCAL ignores the addresses it is given. */
    c.src = SA(&s4);
    c.dst = SA(&d4);
    check_exact_hex(&c, SIG "20000000");

    /* PROXY without usable addresses: family UNSPEC, no block. */
    struct sockaddr_storage none;
    memset(&none, 0, sizeof(none));
    none.ss_family = AF_UNSPEC;
    c.command = PP2_CMD_PROXY;
    c.src = NULL;
    c.dst = SA(&d4);
    check_exact_hex(&c, SIG "21000000");
    c.src = SA(&s4);
    c.dst = NULL;
    check_exact_hex(&c, SIG "21000000");
    c.dst = SA(&none);
    check_exact_hex(&c, SIG "21000000");
}

static void test_v2_invalid_arguments(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("127.0.0.1", 1), d4 = in4("127.0.0.1", 2);
    struct sockaddr_un su = un("/tmp/x");
    struct sockaddr_storage odd;
    memset(&odd, 0, sizeof(odd));
    odd.ss_family = AF_NETLINK;
    struct bcase c = {.kind = V2,
                      .command = PP2_CMD_PROXY,
                      .socktype = SOCK_STREAM,
                      .src = SA(&s4),
                      .dst = SA(&d4)};

    static const int bad_commands[] = {2, 3, 0x0f, 0x10, 0x21, -1};
    for (size_t i = 0; i < sizeof(bad_commands) / sizeof(bad_commands[0]); i++) {
        c.command = bad_commands[i];
        check_refused(&c, 64, PP_EINVAL);
    }
    c.command = PP2_CMD_PROXY;
    static const int bad_socktypes[] = {0, SOCK_RAW, SOCK_SEQPACKET, SOCK_RDM, -1, 99};
    for (size_t i = 0; i < sizeof(bad_socktypes) / sizeof(bad_socktypes[0]); i++) {
        c.socktype = bad_socktypes[i];
        check_refused(&c, 64, PP_EINVAL);
    }
    c.socktype = SOCK_STREAM;
    c.src = SA(&su);
    check_refused(&c, 256, PP_EINVAL);
    c.src = SA(&s4);
    c.dst = SA(&su);
    check_refused(&c, 256, PP_EINVAL);
    c.dst = SA(&odd);
    check_refused(&c, 256, PP_EINVAL);
    c.src = SA(&odd);
    check_refused(&c, 256, PP_EINVAL);
}

/* ---- v1 ------------------------------------------------------------------- */

static void test_v1_lines(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("192.168.0.1", 56324), d4 = in4("192.168.0.11", 443);
    struct bcase c = {.kind = V1, .src = SA(&s4), .dst = SA(&d4)};
    check_exact_str(&c, "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n");

    struct sockaddr_in m1 = in4("255.255.255.255", 65535), m2 = in4("255.255.255.255", 65535);
    c.src = SA(&m1);
    c.dst = SA(&m2);
    check_exact_str(&c, "PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n");

    struct sockaddr_in z1 = in4("1.2.3.4", 0), z2 = in4("5.6.7.8", 0);
    c.src = SA(&z1);
    c.dst = SA(&z2);
    check_exact_str(&c, "PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n");

    struct sockaddr_in6 s6 = in6("2001:db8::1", 1234), d6 = in6("2001:db8::2", 443);
    c.src = SA(&s6);
    c.dst = SA(&d6);
    check_exact_str(&c, "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n");

    struct sockaddr_in6 f1 = in6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff", 65535);
    c.src = SA(&f1);
    c.dst = SA(&f1);
    check_exact_str(&c, "PROXY TCP6 ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n");

    /* Mixed families: TCP6 with the IPv4 end as ::ffff:a.b.c.d, like
     * HAProxy (the section 12 v4-mapped vector). */
    struct sockaddr_in6 d6b = in6("2001:db8::2", 443);
    c.src = SA(&s4);
    c.dst = SA(&d6b);
    check_exact_str(&c, "PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n");
    c.src = SA(&d6b);
    c.dst = SA(&s4);
    check_exact_str(&c, "PROXY TCP6 2001:db8::2 ::ffff:192.168.0.1 443 56324\r\n");
}

static void test_v1_unknown(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("192.168.0.1", 1);
    struct sockaddr_un su = un("/run/a.sock");
    struct sockaddr_storage none;
    memset(&none, 0, sizeof(none));
    none.ss_family = AF_UNSPEC;
    const struct sockaddr *pairs[][2] = {
        {NULL, NULL},       {SA(&s4), NULL},    {NULL, SA(&s4)},
        {SA(&su), SA(&su)}, {SA(&s4), SA(&su)}, {SA(&none), SA(&s4)},
    };
    for (size_t i = 0; i < sizeof(pairs) / sizeof(pairs[0]); i++) {
        struct bcase c = {.kind = V1, .src = pairs[i][0], .dst = pairs[i][1]};
        check_exact_str(&c, "PROXY UNKNOWN\r\n");
    }
}

/* The text of IPv6 addresses is what inet_ntop writes, which is what HAProxy
 * sends (RFC 5952: lower case, longest zero run compressed, no lone "::0"). */
static void test_v1_ipv6_text(void **state)
{
    (void)state;
    static const char *const addrs[] = {
        "::",
        "::1",
        "1::",
        "2001:db8::1",
        "2001:db8:0:1:1:1:1:1",
        "1:0:0:2:0:0:0:3",
        "1:0:0:0:2:0:0:3",
        "fe80::abcd:ef01",
        "1:2:3:4:5:6:7:8",
        "::ffff:10.0.0.1",
        "0:0:1::",
        "1:2:3:4:5:6:7:0",
    };
    uint8_t out[PP_V1_MAX_LEN];
    for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
        struct sockaddr_in6 a = in6(addrs[i], 80), b = in6("::2", 8080);
        char text[INET6_ADDRSTRLEN], want[PP_V1_MAX_LEN + 1];
        assert_non_null(inet_ntop(AF_INET6, &a.sin6_addr, text, sizeof(text)));
        int n = snprintf(want, sizeof(want), "PROXY TCP6 %s ::2 80 8080\r\n", text);
        ssize_t rc = pp_build_v1(out, sizeof(out), SA(&a), SA(&b));
        if (rc != n || memcmp(out, want, (size_t)n) != 0)
            fail_msg("%s: got \"%.*s\", want \"%s\"", addrs[i], rc > 0 ? (int)rc : 0,
                     (const char *)out, want);
    }
}

static void test_v1_max_len_always_enough(void **state)
{
    (void)state;
    /* The longest TCP6 line fits in PP_V1_MAX_LEN, placed at a guard page. */
    struct sockaddr_in6 a = in6("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe", 65535);
    uint8_t *g = guard.limit - PP_V1_MAX_LEN;
    ssize_t rc = pp_build_v1(g, PP_V1_MAX_LEN, SA(&a), SA(&a));
    assert_int_equal(rc, 104);
}

/* Addresses given by pointer are read within their own size: a sockaddr_in
 * ending at a guard page must not be read as a larger structure. */
static void test_reads_only_the_sockaddr(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("10.1.2.3", 4), d4 = in4("10.4.5.6", 7);
    struct sockaddr_in6 d6 = in6("2001:db8::9", 10);
    uint8_t out[256];
    const char *l4 = "PROXY TCP4 10.1.2.3 10.4.5.6 4 7\r\n";
    const char *l6 = "PROXY TCP6 ::ffff:10.1.2.3 2001:db8::9 4 10\r\n";
    const struct sockaddr *gs = SA(guard_place(&guard, &s4, sizeof(s4)));
    assert_int_equal(pp_build_v1(out, sizeof(out), gs, SA(&d4)), strlen(l4));
    assert_memory_equal(out, l4, strlen(l4));
    gs = SA(guard_place(&guard, &s4, sizeof(s4)));
    assert_int_equal(pp_build_v1(out, sizeof(out), gs, SA(&d6)), strlen(l6));
    assert_memory_equal(out, l6, strlen(l6));
    gs = SA(guard_place(&guard, &s4, sizeof(s4)));
    assert_int_equal(pp_build_v2(out, sizeof(out), PP2_CMD_PROXY, SOCK_STREAM, gs, SA(&d4)), 28);
    gs = SA(guard_place(&guard, &s4, sizeof(s4)));
    assert_int_equal(pp_build_v2(out, sizeof(out), PP2_CMD_PROXY, SOCK_STREAM, gs, SA(&d6)), 52);
}

/* ---- TLVs ----------------------------------------------------------------- */

static void test_tlv_and_crc_section12(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("192.168.0.1", 56324), d4 = in4("192.168.0.11", 443);
    uint8_t hdr[64], with_tlv[64];
    assert_int_equal(pp_build_v2(hdr, sizeof(hdr), PP2_CMD_PROXY, SOCK_STREAM, SA(&s4), SA(&d4)),
                     28);

    struct bcase c = {.kind = V2_TLV,
                      .pre = hdr,
                      .pre_len = 28,
                      .type = PP2_TYPE_AUTHORITY,
                      .value = "example.com",
                      .vlen = 11};
    check_exact_hex(&c, SIG "2111001a c0a80001c0a8000bdc0401bb 02000b6578616d706c652e636f6d");

    memcpy(with_tlv, hdr, 28);
    assert_int_equal(
        pp_build_v2_tlv(with_tlv, sizeof(with_tlv), 28, PP2_TYPE_AUTHORITY, "example.com", 11), 42);
    struct bcase k = {.kind = V2_CRC, .pre = with_tlv, .pre_len = 42};
    check_exact_hex(&k, SIG "21110021c0a80001c0a8000bdc0401bb02000b6578616d706c652e636f6d"
                            "030004bb56885c");

    /* CRC32C straight after the address block: the 0x3442E161 vector. */
    struct sockaddr_in l1 = in4("127.0.0.1", 51755), l2 = in4("127.0.0.1", 1025);
    assert_int_equal(pp_build_v2(hdr, sizeof(hdr), PP2_CMD_PROXY, SOCK_STREAM, SA(&l1), SA(&l2)),
                     28);
    struct bcase k2 = {.kind = V2_CRC, .pre = hdr, .pre_len = 28};
    check_exact_hex(&k2, SIG "211100137f0000017f000001ca2b04010300043442e161");
}

static void test_tlv_chain_section12(void **state)
{
    (void)state;
    struct sockaddr_in s4 = in4("192.168.0.1", 56324), d4 = in4("192.168.0.11", 443);
    uint8_t b[128], want[128];
    ssize_t n = pp_build_v2(b, sizeof(b), PP2_CMD_PROXY, SOCK_STREAM, SA(&s4), SA(&d4));
    assert_int_equal(n, 28);
    n = pp_build_v2_tlv(b, sizeof(b), (size_t)n, PP2_TYPE_ALPN, "h2", 2);
    assert_int_equal(n, 33);
    n = pp_build_v2_tlv(b, sizeof(b), (size_t)n, PP2_TYPE_AUTHORITY, "example.com", 11);
    assert_int_equal(n, 47);
    /* A NULL value is fine with vlen 0. */
    n = pp_build_v2_tlv(b, sizeof(b), (size_t)n, PP2_TYPE_NOOP, NULL, 0);
    assert_int_equal(n, 50);
    n = pp_build_v2_tlv(b, sizeof(b), (size_t)n, PP2_TYPE_UNIQUE_ID, "conn-0001", 9);
    assert_int_equal(n, 62);
    long w = vectors_unhex(SIG "2111002ec0a80001c0a8000bdc0401bb010002683202000b6578616d706c652e"
                               "636f6d040000050009636f6e6e2d30303031",
                           want, sizeof(want));
    assert_int_equal(w, 62);
    assert_memory_equal(b, want, 62);

    /* TLVs after LOCAL too. */
    n = pp_build_v2(b, sizeof(b), PP2_CMD_LOCAL, SOCK_STREAM, NULL, NULL);
    assert_int_equal(n, 16);
    n = pp_build_v2_tlv(b, sizeof(b), 16, PP2_TYPE_NOOP, "\0\0", 2);
    assert_int_equal(n, 21);
    n = pp_build_v2_crc32c(b, sizeof(b), 21);
    assert_int_equal(n, 28);
    struct pp_header h;
    assert_int_equal(pp_parse(b, 28, &h, NULL), 28);
    assert_int_equal(h.command, PP2_CMD_LOCAL);
    assert_int_equal(h.flags, PP_HDR_CRC_VERIFIED);
}

static void test_tlv_invalid(void **state)
{
    (void)state;
    uint8_t hdr[64] = {0};
    struct sockaddr_in s4 = in4("127.0.0.1", 1), d4 = in4("127.0.0.1", 2);
    assert_int_equal(pp_build_v2(hdr, sizeof(hdr), PP2_CMD_PROXY, SOCK_STREAM, SA(&s4), SA(&d4)),
                     28);
    struct bcase c = {
        .kind = V2_TLV, .pre = hdr, .pre_len = 28, .type = 1, .value = "x", .vlen = 1};
    struct bcase k = {.kind = V2_CRC, .pre = hdr, .pre_len = 28};

    /* hdr_len that does not match the length field, or below 16. */
    static const size_t bad_lens[] = {0, 12, 15, 16, 27, 29};
    for (size_t i = 0; i < sizeof(bad_lens) / sizeof(bad_lens[0]); i++) {
        c.pre_len = k.pre_len = bad_lens[i];
        check_refused(&c, 64, PP_EINVAL);
        check_refused(&k, 64, PP_EINVAL);
    }
    c.pre_len = k.pre_len = 28;

    /* Not a v2 header: a v1 line, a damaged signature, version 1. */
    uint8_t other[64];
    const char *v1 = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    memcpy(other, v1, 32);
    c.pre = k.pre = other;
    c.pre_len = k.pre_len = 32;
    check_refused(&c, 64, PP_EINVAL);
    check_refused(&k, 64, PP_EINVAL);
    memcpy(other, hdr, 28);
    c.pre_len = k.pre_len = 28;
    other[5] ^= 1;
    check_refused(&c, 64, PP_EINVAL);
    check_refused(&k, 64, PP_EINVAL);
    other[5] ^= 1;
    other[12] = 0x11;
    check_refused(&c, 64, PP_EINVAL);
    check_refused(&k, 64, PP_EINVAL);
}

static void test_tlv_size_limits(void **state)
{
    (void)state;
    static uint8_t b[PP_V2_MAX_LEN + 256], value[65536 + 16], snap[PP_V2_MAX_LEN + 256];
    size_t cap = sizeof(b);
    struct sockaddr_in s4 = in4("127.0.0.1", 1), d4 = in4("127.0.0.1", 2);

    /* Grow the header with a NOOP to 65548 bytes: one empty TLV still fits
     * (65551), a one-byte one would not. */
    assert_int_equal(pp_build_v2(b, cap, PP2_CMD_PROXY, SOCK_STREAM, SA(&s4), SA(&d4)), 28);
    size_t pad = PP_V2_MAX_LEN - 3 - 28 - 3;
    assert_int_equal(pp_build_v2_tlv(b, cap, 28, PP2_TYPE_NOOP, value, pad), 28 + 3 + pad);
    size_t n = 28 + 3 + pad;
    assert_int_equal(n, PP_V2_MAX_LEN - 3);

    memcpy(snap, b, cap);
    assert_int_equal(pp_build_v2_tlv(b, cap, n, PP2_TYPE_NOOP, value, 1), -PP_EINVAL);
    assert_memory_equal(b, snap, cap);
    /* The CRC TLV is 7 bytes: no room under the 16-bit length either. */
    assert_int_equal(pp_build_v2_crc32c(b, cap, n), -PP_EINVAL);
    assert_memory_equal(b, snap, cap);
    assert_int_equal(pp_build_v2_tlv(b, cap, n, PP2_TYPE_NOOP, NULL, 0), PP_V2_MAX_LEN);

    struct pp_header h;
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN};
    assert_int_equal(pp_parse(b, PP_V2_MAX_LEN, &h, &opts), PP_V2_MAX_LEN);
    assert_int_equal(h.tlv_len, PP_V2_MAX_LEN - 28);

    /* A value longer than a TLV length can say. */
    assert_int_equal(pp_build_v2(b, cap, PP2_CMD_LOCAL, SOCK_STREAM, NULL, NULL), 16);
    memcpy(snap, b, cap);
    assert_int_equal(pp_build_v2_tlv(b, cap, 16, PP2_TYPE_NOOP, value, 65536), -PP_EINVAL);
    assert_memory_equal(b, snap, cap);
}

/* ---- SSL ------------------------------------------------------------------ */

static struct pp_str str(const char *s)
{
    struct pp_str r = {s, strlen(s)};
    return r;
}

static void test_ssl_section12(void **state)
{
    (void)state;
    struct pp_ssl ssl;
    memset(&ssl, 0, sizeof(ssl));
    ssl.client = PP2_CLIENT_SSL | PP2_CLIENT_CERT_CONN | PP2_CLIENT_CERT_SESS;
    ssl.verify = 0;
    ssl.version = str("TLSv1.3");
    ssl.cn = str("client.example");
    ssl.cipher = str("TLS_AES_128_GCM_SHA256");
    /* Ignored by the builder. */
    ssl.sub = (const uint8_t *)"junk";
    ssl.sub_len = 4;

    struct bcase c = {.kind = SSL, .ssl = &ssl};
    const char *value = "0700000000210007544c5376312e3322000e636c69656e742e6578616d706c652300"
                        "16544c535f4145535f3132385f47434d5f534841323536";
    check_exact_hex(&c, value);

    /* Value into the header: the 88-byte section 12 vector. */
    uint8_t v[128], b[256];
    ssize_t vn = pp_build_ssl(v, sizeof(v), &ssl);
    assert_int_equal(vn, 57);
    struct sockaddr_in s4 = in4("192.168.0.1", 56324), d4 = in4("192.168.0.11", 443);
    assert_int_equal(pp_build_v2(b, sizeof(b), PP2_CMD_PROXY, SOCK_STREAM, SA(&s4), SA(&d4)), 28);
    struct bcase t = {.kind = V2_TLV,
                      .pre = b,
                      .pre_len = 28,
                      .type = PP2_TYPE_SSL,
                      .value = v,
                      .vlen = (size_t)vn};
    char hex[512];
    snprintf(hex, sizeof(hex), SIG "21110048c0a80001c0a8000bdc0401bb200039%s", value);
    check_exact_hex(&t, hex);
}

static void test_ssl_all_fields(void **state)
{
    (void)state;
    struct pp_ssl ssl;
    memset(&ssl, 0, sizeof(ssl));
    ssl.client = PP2_CLIENT_SSL | PP2_CLIENT_CERT_SESS;
    ssl.verify = 0x01020304;
    ssl.version = str("TLSv1.3");
    ssl.cn = str("client.example");
    ssl.cipher = str("TLS_AES_256_GCM_SHA384");
    ssl.sig_alg = str("RSA-SHA256");
    ssl.key_alg = str("RSA2048");
    ssl.group = str("secp256r1");
    ssl.sig_scheme = str("rsa_pss_rsae_sha256");
    ssl.client_cert.ptr = "\x30\x82\x00\x0a\x02\x01\x01\xa0\x03\x02\x01\x02";
    ssl.client_cert.len = 12;
    struct bcase c = {.kind = SSL, .ssl = &ssl};
    check_exact_hex(&c, "05 01020304"
                        "210007 544c5376312e33"
                        "22000e 636c69656e742e6578616d706c65"
                        "230016 544c535f4145535f3235365f47434d5f534841333834"
                        "24000a 5253412d534841323536"
                        "250007 52534132303438"
                        "260009 736563703235367231"
                        "270013 7273615f7073735f727361655f736861323536"
                        "28000c 3082000a020101a003020102");

    /* Only the fixed part when every string is absent. */
    memset(&ssl, 0, sizeof(ssl));
    ssl.verify = 0xdeadbeef;
    check_exact_hex(&c, "00 deadbeef");
}

static void test_ssl_too_long(void **state)
{
    (void)state;
    static char big[70016];
    static uint8_t out[sizeof(big) + 64];
    size_t big_len = sizeof(big);
    memset(big, 'c', big_len);
    struct pp_ssl ssl;

    /* Exactly the largest value: 5 + 3 + 65527 = 65535. */
    memset(&ssl, 0, sizeof(ssl));
    ssl.client_cert.ptr = big;
    ssl.client_cert.len = 65527;
    assert_int_equal(pp_build_ssl(out, big_len + 64, &ssl), 65535);

    struct bcase c = {.kind = SSL, .ssl = &ssl};
    ssl.client_cert.len = 65528;
    check_refused(&c, big_len, PP_EINVAL);
    ssl.client_cert.len = 65536;
    check_refused(&c, big_len, PP_EINVAL);
    /* Each string fits alone, not together. */
    ssl.client_cert.len = 40000;
    ssl.cn.ptr = big;
    ssl.cn.len = 30000;
    check_refused(&c, big_len, PP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_v2_inet),
        cmocka_unit_test(test_v2_mixed_families_map_ipv4),
        cmocka_unit_test(test_v2_unix),
        cmocka_unit_test(test_v2_local_and_unspec),
        cmocka_unit_test(test_v2_invalid_arguments),
        cmocka_unit_test(test_v1_lines),
        cmocka_unit_test(test_v1_unknown),
        cmocka_unit_test(test_v1_ipv6_text),
        cmocka_unit_test(test_v1_max_len_always_enough),
        cmocka_unit_test(test_reads_only_the_sockaddr),
        cmocka_unit_test(test_tlv_and_crc_section12),
        cmocka_unit_test(test_tlv_chain_section12),
        cmocka_unit_test(test_tlv_invalid),
        cmocka_unit_test(test_tlv_size_limits),
        cmocka_unit_test(test_ssl_section12),
        cmocka_unit_test(test_ssl_all_fields),
        cmocka_unit_test(test_ssl_too_long),
    };
    guard_cap = 4096;
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
