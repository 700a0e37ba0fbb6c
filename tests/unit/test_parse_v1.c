/*
 * test_parse_v1.c - the fields pp_parse decodes from v1 text lines, the
 * per-field rules of PROXY-PROTOCOL.md section 2, and the early "not a PROXY
 * header" decision. Every input is placed right before a PROT_NONE page.
 */
#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "proxyproto.h"
#include "check.h"
#include "rng.h"
#include "vectors.h"

static ssize_t parse_n(const void *s, size_t n, unsigned flags, struct pp_header *hdr)
{
    struct pp_parse_opts opts = {.flags = flags};
    const uint8_t *p = guard_place(&guard, s, n);
    assert_non_null(p);
    memset(hdr, 0xA5, sizeof(*hdr));
    ssize_t rc = pp_parse(p, n, hdr, &opts);
    /* The parser must leave its input alone. */
    assert_memory_equal(p, s, n);
    return rc;
}

static ssize_t parse_str(const char *s, unsigned flags, struct pp_header *hdr)
{
    return parse_n(s, strlen(s), flags, hdr);
}

static void assert_proxy_v1(const struct pp_header *h, uint8_t fam, size_t len)
{
    assert_int_equal(h->version, 1);
    assert_int_equal(h->command, PP2_CMD_PROXY);
    assert_int_equal(h->fam, fam);
    assert_int_equal(h->socktype, SOCK_STREAM);
    assert_int_equal(h->flags, 0);
    assert_int_equal(h->len, len);
    assert_int_equal(h->tlv_len, 0);
}

static void test_tcp4_spec_example(void **state)
{
    (void)state;
    struct pp_header h;
    assert_int_equal(parse_str("PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n", 0, &h), 47);
    assert_proxy_v1(&h, PP2_FAM_TCP4, 47);
    check_in4(&h.src, "192.168.0.1", 56324);
    check_in4(&h.dst, "192.168.0.11", 443);
}

static void test_tcp4_extremes(void **state)
{
    (void)state;
    struct pp_header h;
    assert_int_equal(parse_str("PROXY TCP4 255.255.255.255 255.255.255.254 65535 65535\r\n", 0, &h),
                     56);
    assert_proxy_v1(&h, PP2_FAM_TCP4, 56);
    check_in4(&h.src, "255.255.255.255", 65535);
    check_in4(&h.dst, "255.255.255.254", 65535);

    assert_int_equal(parse_str("PROXY TCP4 0.0.0.0 10.0.0.9 0 0\r\n", 0, &h), 33);
    check_in4(&h.src, "0.0.0.0", 0);
    check_in4(&h.dst, "10.0.0.9", 0);
}

static void test_tcp6(void **state)
{
    (void)state;
    struct pp_header h;
    assert_int_equal(parse_str("PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n", 0, &h), 45);
    assert_proxy_v1(&h, PP2_FAM_TCP6, 45);
    check_in6(&h.src, "2001:db8::1", 1234);
    check_in6(&h.dst, "2001:db8::2", 443);
}

static void test_tcp6_v4_mapped(void **state)
{
    (void)state;
    struct pp_header h;
    static const uint8_t mapped[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 0, 1};
    assert_int_equal(parse_str("PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n", 0, &h),
                     53);
    assert_proxy_v1(&h, PP2_FAM_TCP6, 53);
    /* The mapped form stays IPv6: the line said TCP6. */
    assert_int_equal(h.src.sa.sa_family, AF_INET6);
    assert_memory_equal(&h.src.sin6.sin6_addr, mapped, 16);
    assert_int_equal(h.src.sin6.sin6_port, htons(56324));
    check_in6(&h.dst, "2001:db8::2", 443);
}

/* IPv6 text forms the parser must decode exactly as inet_pton does. */
static void test_tcp6_text_forms(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "::",
        "::1",
        "1::",
        "fe80::1",
        "2001:DB8::ABCD",
        "2001:dB8::aBcD",
        "1:2:3:4:5:6:7:8",
        "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        "0000:0000:0000:0000:0000:0000:0000:0002",
        "1::8",
        "1:2:3:4:5:6::8",
        "1::3:4:5:6:7:8",
        "1:2:3:4:5:6:7::",
        "::2:3:4:5:6:7:8",
        "1:0:0:2::3",
        "::ffff:1.2.3.4",
        "::ffff:255.255.255.255",
        "64:ff9b::192.0.2.33",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char line[160];
        struct pp_header h;
        int n = snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 65535 1\r\n", forms[i]);
        ssize_t rc = parse_str(line, 0, &h);
        if (rc != n)
            fail_msg("\"%s\": got %zd, want %d", forms[i], rc, n);
        check_in6(&h.src, forms[i], 65535);
        check_in6(&h.dst, "::1", 1);
    }
}

static void test_tcp6_bad_forms(void **state)
{
    (void)state;
    static const char *const forms[] = {
        ":",
        ":::",
        "1:::2",
        ":1::2",
        "1::2:",
        "1::2::3",
        "12345::",
        "::12345",
        "1:2:3:4:5:6:7",
        "1:2:3:4:5:6:7:8:9",
        "::g",
        "::1.2.3",
        "::1.2.3.256",
        "::1.2.3.04",
        "1.2.3.4::",
        "[::1]",
        "fe80::1%eth0",
        "1:2:3:4:5:6:7:8::",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char line[160];
        struct pp_header h;
        struct in6_addr a;
        /* Guards the table itself: inet_pton refuses these too. */
        assert_int_equal(inet_pton(AF_INET6, forms[i], &a), 0);
        snprintf(line, sizeof(line), "PROXY TCP6 %s ::1 1 2\r\n", forms[i]);
        ssize_t rc = parse_str(line, 0, &h);
        if (rc != -PP_EBADADDR)
            fail_msg("\"%s\": got %zd, want -PP_EBADADDR", forms[i], rc);
    }
}

static void test_tcp4_bad_forms(void **state)
{
    (void)state;
    static const char *const forms[] = {
        "01.2.3.4", "1.2.3.00",   "256.0.0.1", "1.2.3",          "1.2.3.4.5", "1..3.4",
        ".1.2.3",   "1.2.3.",     "a.b.c.d",   "1.2.3.-4",       "1.2.3.+4",  "0x1.2.3.4",
        "1.2.3.4a", "1000.1.1.1", "::1",       "::ffff:1.2.3.4",
    };
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++) {
        char line[160];
        struct pp_header h;
        snprintf(line, sizeof(line), "PROXY TCP4 %s 5.6.7.8 1 2\r\n", forms[i]);
        ssize_t rc = parse_str(line, 0, &h);
        if (rc != -PP_EBADADDR)
            fail_msg("src \"%s\": got %zd, want -PP_EBADADDR", forms[i], rc);
        snprintf(line, sizeof(line), "PROXY TCP4 5.6.7.8 %s 1 2\r\n", forms[i]);
        rc = parse_str(line, 0, &h);
        if (rc != -PP_EBADADDR)
            fail_msg("dst \"%s\": got %zd, want -PP_EBADADDR", forms[i], rc);
    }
}

static void test_ports(void **state)
{
    (void)state;
    static const struct {
        const char *text;
        long port; /* -1: must be refused */
    } cases[] = {
        {"0", 0},
        {"1", 1},
        {"9", 9},
        {"10", 10},
        {"443", 443},
        {"65534", 65534},
        {"65535", 65535},
        {"65536", -1},
        {"99999", -1},
        {"100000", -1},
        {"00", -1},
        {"01", -1},
        {"056324", -1},
        {"+1", -1},
        {"-1", -1},
        {"1a", -1},
        {"0x1", -1},
        {"4294967297", -1},
        {"18446744073709551617", -1},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        char line[160];
        struct pp_header h;
        int n = snprintf(line, sizeof(line), "PROXY TCP4 1.2.3.4 5.6.7.8 %s 7\r\n", cases[i].text);
        ssize_t rc = parse_str(line, 0, &h);
        ssize_t want = cases[i].port < 0 ? -PP_EBADPORT : n;
        if (rc != want)
            fail_msg("src port \"%s\": got %zd, want %zd", cases[i].text, rc, want);
        if (cases[i].port >= 0) {
            assert_int_equal(h.src.sin.sin_port, htons((uint16_t)cases[i].port));
            assert_int_equal(h.dst.sin.sin_port, htons(7));
        }
        n = snprintf(line, sizeof(line), "PROXY TCP6 ::1 ::2 7 %s\r\n", cases[i].text);
        rc = parse_str(line, 0, &h);
        want = cases[i].port < 0 ? -PP_EBADPORT : n;
        if (rc != want)
            fail_msg("dst port \"%s\": got %zd, want %zd", cases[i].text, rc, want);
        if (cases[i].port >= 0)
            assert_int_equal(h.dst.sin6.sin6_port, htons((uint16_t)cases[i].port));
    }
}

static void test_unknown(void **state)
{
    (void)state;
    static const char *const lines[] = {
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN 10.0.0.1 junk !@#$ whatever\r\n",
        ("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
         "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n"),
    };
    for (size_t i = 0; i < sizeof(lines) / sizeof(lines[0]); i++) {
        struct pp_header h;
        size_t n = strlen(lines[i]);
        assert_int_equal(parse_str(lines[i], 0, &h), n);
        assert_int_equal(h.version, 1);
        assert_int_equal(h.command, PP2_CMD_LOCAL);
        assert_int_equal(h.fam, PP2_FAM_UNSPEC_UNSPEC);
        assert_int_equal(h.socktype, 0);
        assert_int_equal(h.len, n);
        assert_int_equal(h.tlv_len, 0);
        assert_int_equal(h.src.sa.sa_family, AF_UNSPEC);
        assert_int_equal(h.dst.sa.sa_family, AF_UNSPEC);
    }
}

static void test_ipv4_in_tcp6_opt_in(void **state)
{
    (void)state;
    struct pp_header h;
    const char *line = "PROXY TCP6 1.2.3.4 ::ffff:5.6.7.8 1 2\r\n";
    assert_int_equal(parse_str(line, 0, &h), -PP_EBADADDR);
    assert_int_equal(parse_str(line, PP_PARSE_V1_IPV4_IN_TCP6, &h), strlen(line));
    assert_proxy_v1(&h, PP2_FAM_TCP6, strlen(line));
    /* Returned IPv4-mapped, like the dotted-tail form next to it. */
    check_in6(&h.src, "::ffff:1.2.3.4", 1);
    check_in6(&h.dst, "::ffff:5.6.7.8", 2);

    line = "PROXY TCP6 2001:db8::1 10.0.0.1 80 8080\r\n";
    assert_int_equal(parse_str(line, 0, &h), -PP_EBADADDR);
    assert_int_equal(parse_str(line, PP_PARSE_V1_IPV4_IN_TCP6, &h), strlen(line));
    check_in6(&h.src, "2001:db8::1", 80);
    check_in6(&h.dst, "::ffff:10.0.0.1", 8080);

    /* The opt-in is about TCP6 lines only; TCP4 still wants IPv4. */
    assert_int_equal(parse_str("PROXY TCP4 ::1 ::2 1 2\r\n", PP_PARSE_V1_IPV4_IN_TCP6, &h),
                     -PP_EBADADDR);
}

static void test_line_structure(void **state)
{
    (void)state;
    static const struct {
        const char *line;
        int err;
    } cases[] = {
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n", PP_EBADLINE},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 3\r\n", PP_EBADLINE},
        {"PROXY TCP4 1.2.3.4  5.6.7.8 1 2\r\n", PP_EBADLINE},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2 \r\n", PP_EBADLINE},
        {"PROXY TCP4 1.2.3.4 5.6.7.8\r\n", PP_EBADLINE},
        {"PROXY TCP4\r\n", PP_EBADLINE},
        {"PROXY TCP6 ::1 ::2 1\r\n", PP_EBADLINE},
        {"PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n", PP_EBADPROTO},
        {"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n", PP_EBADPROTO},
        {"PROXY tcp4 1.2.3.4 5.6.7.8 1 2\r\n", PP_EBADPROTO},
        {"PROXY UNKNOWNX\r\n", PP_EBADPROTO},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n", PP_EBADCRLF},
        {"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\rX", PP_EBADCRLF},
        {"PROXY UNKNOWN\n", PP_EBADCRLF},
        {"PROXY UNKNOWN a\nb\r\n", PP_EBADCRLF},
        {"PROXYTCP4 1.2.3.4 5.6.7.8 1 2\r\n", PP_EBADSIG},
        {"proxy TCP4 1.2.3.4 5.6.7.8 1 2\r\n", PP_EBADSIG},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pp_header h;
        ssize_t rc = parse_str(cases[i].line, 0, &h);
        if (rc != -cases[i].err)
            fail_msg("case %zu: got %zd (%s), want -%s", i, rc, vectors_error_name(rc),
                     vectors_error_name(cases[i].err));
    }
}

static void test_length_limit(void **state)
{
    (void)state;
    char line[PP_V1_MAX_LEN + 8];
    struct pp_header h;

    /* UNKNOWN padded so that its CRLF ends exactly at byte 107. */
    memset(line, 'A', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + PP_V1_MAX_LEN - 2, "\r\n", 2);
    assert_int_equal(parse_n(line, PP_V1_MAX_LEN, 0, &h), PP_V1_MAX_LEN);
    assert_int_equal(h.command, PP2_CMD_LOCAL);

    /* One byte more and the same line is too long. */
    memset(line, 'A', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    memcpy(line + PP_V1_MAX_LEN - 1, "\r\n", 2);
    assert_int_equal(parse_n(line, PP_V1_MAX_LEN + 1, 0, &h), -PP_ETOOLONG);

    /* Without any CRLF: still waiting while one can fit, refused once 107
     * bytes hold none. */
    memset(line, 'A', sizeof(line));
    memcpy(line, "PROXY UNKNOWN ", 14);
    assert_int_equal(parse_n(line, PP_V1_MAX_LEN - 2, 0, &h), 0);
    assert_int_equal(parse_n(line, PP_V1_MAX_LEN, 0, &h), -PP_ETOOLONG);
    assert_int_equal(parse_n(line, PP_V1_MAX_LEN + 8, 0, &h), -PP_ETOOLONG);
}

static void test_application_bytes_untouched(void **state)
{
    (void)state;
    struct pp_header h;
    const char *s = "PROXY TCP4 1.1.1.5 1.1.1.6 2 3\r\nPROXY TCP4 6.6.6.6 7.7.7.7 8 9\r\n";
    assert_int_equal(parse_str(s, 0, &h), 32);
    check_in4(&h.src, "1.1.1.5", 2);
    check_in4(&h.dst, "1.1.1.6", 3);

    s = "PROXY UNKNOWN\r\nGET / HTTP/1.1\r\n";
    assert_int_equal(parse_str(s, 0, &h), 15);
    assert_int_equal(h.command, PP2_CMD_LOCAL);
}

static void test_incremental(void **state)
{
    (void)state;
    const char *s = "PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n";
    size_t n = strlen(s);
    struct pp_header h;
    for (size_t k = 0; k < n; k++)
        if (parse_n(s, k, 0, &h) != 0)
            fail_msg("prefix of %zu bytes: not 0", k);
    assert_int_equal(parse_n(s, n, 0, &h), n);
}

/* A caller with an optional header decides from the first byte: only 'P'
 * (v1) and '\r' (v2) can start one. */
static void test_first_byte_decides(void **state)
{
    (void)state;
    for (int c = 0; c < 256; c++) {
        uint8_t b = (uint8_t)c;
        struct pp_header h;
        ssize_t want = c == 'P' || c == '\r' ? 0 : -PP_EBADSIG;
        ssize_t rc = parse_n(&b, 1, 0, &h);
        if (rc != want)
            fail_msg("first byte 0x%02x: got %zd, want %zd", c, rc, want);
    }
}

/* Likewise a wrong byte inside "PROXY " is refused as soon as it arrives. */
static void test_signature_prefix_decides(void **state)
{
    (void)state;
    const char *sig = "PROXY ";
    for (size_t i = 1; i < 6; i++) {
        char s[8];
        struct pp_header h;
        memcpy(s, sig, i);
        s[i] = sig[i] == 'X' ? 'Y' : 'X';
        assert_int_equal(parse_n(s, i, 0, &h), 0);
        ssize_t rc = parse_n(s, i + 1, 0, &h);
        if (rc != -PP_EBADSIG)
            fail_msg("\"%.*s\": got %zd, want -PP_EBADSIG", (int)i + 1, s, rc);
    }
}

static void test_no_v1(void **state)
{
    (void)state;
    struct pp_header h;
    const char *s = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\n";
    assert_int_equal(parse_str(s, PP_PARSE_NO_V1, &h), -PP_EBADSIG);
    assert_int_equal(parse_n(s, 1, PP_PARSE_NO_V1, &h), -PP_EBADSIG);
    assert_int_equal(parse_str(s, PP_PARSE_NO_V2, &h), 32);
}

static void test_opts_null(void **state)
{
    (void)state;
    const char *s = "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n";
    const uint8_t *p = guard_place(&guard, s, strlen(s));
    struct pp_header h;
    assert_int_equal(pp_parse(p, strlen(s), &h, NULL), 47);
    check_in4(&h.src, "192.168.0.1", 56324);
    /* NULL means the defaults: plain IPv4 in TCP6 is refused. */
    s = "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n";
    p = guard_place(&guard, s, strlen(s));
    assert_int_equal(pp_parse(p, strlen(s), &h, NULL), -PP_EBADADDR);
}

/* ---- randomised checks (fixed seed: a failure replays identically) -------- */

static struct rng prng = {0x2545F4914F6CDD1DULL};

/* Random address-like strings, and real addresses with a few characters
 * changed: the parser accepts exactly what inet_pton accepts (both refuse
 * leading zeros in dotted quads), with the same bytes. */
static void test_addresses_match_inet_pton(void **state)
{
    (void)state;
    static const char *const alphabets[2] = {"0123456789...x", "0123456789abcdefABCDEF:::..g"};
    unsigned accepted[2] = {0, 0};
    for (unsigned i = 0; i < 200000; i++) {
        int v6 = (int)rng_below(&prng, 2);
        const char *al = alphabets[v6];
        size_t al_len = strlen(al);
        char s[64];
        if (rng_below(&prng, 2)) {
            size_t n = 1 + rng_below(&prng, 45);
            for (size_t k = 0; k < n; k++)
                s[k] = al[rng_below(&prng, (unsigned)al_len)];
            s[n] = '\0';
        } else {
            uint8_t b[16];
            for (int k = 0; k < 16; k++)
                b[k] = rng_below(&prng, 3) ? 0 : (uint8_t)rng_next(&prng);
            if (v6 && rng_below(&prng, 4) == 0) {
                memset(b, 0, 10);
                b[10] = b[11] = 0xff;
            }
            assert_non_null(inet_ntop(v6 ? AF_INET6 : AF_INET, b, s, sizeof(s)));
            size_t n = strlen(s);
            for (unsigned m = rng_below(&prng, 3); m > 0; m--)
                s[rng_below(&prng, (unsigned)n)] = al[rng_below(&prng, (unsigned)al_len)];
        }
        char line[128];
        int n = snprintf(line, sizeof(line), "PROXY %s %s %s 1 2\r\n", v6 ? "TCP6" : "TCP4", s,
                         v6 ? "::1" : "1.1.1.1");
        uint8_t want[16];
        int ok = inet_pton(v6 ? AF_INET6 : AF_INET, s, want) == 1;
        struct pp_header h;
        ssize_t rc = parse_n(line, (size_t)n, 0, &h);
        if (rc != (ok ? n : -PP_EBADADDR))
            fail_msg("\"%s\": got %zd, inet_pton says %s", s, rc, ok ? "valid" : "invalid");
        if (!ok)
            continue;
        accepted[v6]++;
        if (v6)
            assert_memory_equal(&h.src.sin6.sin6_addr, want, 16);
        else
            assert_memory_equal(&h.src.sin.sin_addr, want, 4);
    }
    /* Both kinds were really exercised, not only refused. */
    assert_true(accepted[0] > 10000);
    assert_true(accepted[1] > 10000);
}

/* Valid lines with random edits: whatever is accepted is one CRLF-ended line
 * of at most 107 bytes with a known protocol, and for TCP4 (whose text form
 * is unique) building the parsed addresses gives the very same line back. */
static void test_accepted_lines_are_canonical(void **state)
{
    (void)state;
    static const char *const seeds[] = {
        "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
        "PROXY TCP4 1.1.1.5 1.1.1.6 2 3\r\n",
        "PROXY TCP4 255.255.255.255 255.255.255.254 65535 65535\r\n",
        "PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n",
        "PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n",
        "PROXY UNKNOWN\r\n",
        "PROXY UNKNOWN a b c\r\n",
    };
    static const char edits[] = "PROXYTCP46UNKW0123456789abcdef:. \r\n\t-+";
    unsigned accepted = 0;
    for (unsigned i = 0; i < 300000; i++) {
        char s[200];
        const char *seed = seeds[rng_below(&prng, sizeof(seeds) / sizeof(seeds[0]))];
        size_t n = strlen(seed);
        memcpy(s, seed, n);
        for (unsigned m = 1 + rng_below(&prng, 3); m > 0; m--) {
            size_t pos = rng_below(&prng, (unsigned)n);
            char c = edits[rng_below(&prng, sizeof(edits))]; /* the final NUL included */
            unsigned op = rng_below(&prng, 3);
            if (op == 0) {
                s[pos] = c;
            } else if (op == 1) {
                memmove(s + pos + 1, s + pos, n - pos);
                s[pos] = c;
                n++;
            } else if (n > 1) {
                memmove(s + pos, s + pos + 1, n - pos - 1);
                n--;
            }
        }
        struct pp_header h;
        ssize_t rc = parse_n(s, n, 0, &h);
        if (rc <= 0)
            continue;
        accepted++;
        assert_true(rc >= PP_MIN_LEN && rc <= PP_V1_MAX_LEN);
        assert_memory_equal(s + rc - 2, "\r\n", 2);
        assert_null(memchr(s, '\r', (size_t)rc - 2));
        assert_null(memchr(s, '\n', (size_t)rc - 2));
        if (h.command == PP2_CMD_LOCAL) {
            assert_memory_equal(s, "PROXY UNKNOWN", 13);
            assert_true(s[13] == '\r' || s[13] == ' ');
            continue;
        }
        assert_memory_equal(s, h.fam == PP2_FAM_TCP4 ? "PROXY TCP4 " : "PROXY TCP6 ", 11);
        uint8_t out[PP_V1_MAX_LEN];
        ssize_t n2 = pp_build_v1(out, sizeof(out), &h.src.sa, &h.dst.sa);
        if (h.fam == PP2_FAM_TCP4) {
            if (n2 != rc || memcmp(out, s, (size_t)rc) != 0)
                fail_msg("\"%.*s\" accepted but not canonical", (int)rc - 2, s);
            continue;
        }
        struct pp_header h2;
        assert_int_equal(parse_n(out, (size_t)n2, 0, &h2), n2);
        assert_memory_equal(&h2.src.sin6.sin6_addr, &h.src.sin6.sin6_addr, 16);
        assert_memory_equal(&h2.dst.sin6.sin6_addr, &h.dst.sin6.sin6_addr, 16);
        assert_int_equal(h2.src.sin6.sin6_port, h.src.sin6.sin6_port);
        assert_int_equal(h2.dst.sin6.sin6_port, h.dst.sin6.sin6_port);
    }
    assert_true(accepted > 10000);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tcp4_spec_example),
        cmocka_unit_test(test_tcp4_extremes),
        cmocka_unit_test(test_tcp6),
        cmocka_unit_test(test_tcp6_v4_mapped),
        cmocka_unit_test(test_tcp6_text_forms),
        cmocka_unit_test(test_tcp6_bad_forms),
        cmocka_unit_test(test_tcp4_bad_forms),
        cmocka_unit_test(test_ports),
        cmocka_unit_test(test_unknown),
        cmocka_unit_test(test_ipv4_in_tcp6_opt_in),
        cmocka_unit_test(test_line_structure),
        cmocka_unit_test(test_length_limit),
        cmocka_unit_test(test_application_bytes_untouched),
        cmocka_unit_test(test_incremental),
        cmocka_unit_test(test_first_byte_decides),
        cmocka_unit_test(test_signature_prefix_decides),
        cmocka_unit_test(test_no_v1),
        cmocka_unit_test(test_opts_null),
        cmocka_unit_test(test_addresses_match_inet_pton),
        cmocka_unit_test(test_accepted_lines_are_canonical),
    };
    guard_cap = 4096;
    return cmocka_run_group_tests(tests, guard_setup, guard_teardown);
}
