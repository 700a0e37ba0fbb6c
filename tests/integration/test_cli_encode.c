/*
 * test_cli_encode.c - `ppfwd encode` as users and scripts run it: encode |
 * decode round trips for every family, TLVs and CRC32C, exact bytes, JSON
 * escaping and every usage error.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include <proxyproto.h>

#include "cli_vectors.h"
#include "clirun.h"

/* ---- encode ---------------------------------------------------------------- */

#define SRC4 "--src", "192.0.2.10:51234"
#define DST4 "--dst", "198.51.100.1:443"
#define SRC6 "--src", "[2001:db8::1]:56324"
#define DST6 "--dst", "[2001:db8::2]:443"
#define J_DOC4 "\"src\":\"192.0.2.10:51234\",\"dst\":\"198.51.100.1:443\""
#define J_DOC6 "\"src\":\"[2001:db8::1]:56324\",\"dst\":\"[2001:db8::2]:443\""
#define J_V2_TCP4 "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp4\"," J_DOC4
#define J_LOCAL2 "{\"version\":2,\"command\":\"local\",\"family\":\"unspec\",\"length\":16,"

static void test_roundtrip_families(void **state)
{
    (void)state;
    crun_expect_roundtrip(ARGS("encode", SRC4, DST4), J_V2_TCP4 ",\"length\":28,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", "--v2", SRC4, DST4, "--udp"),
                          "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp4\"," J_DOC4
                          ",\"length\":28,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", SRC6, DST6),
                          "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\"," J_DOC6
                          ",\"length\":52,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", "--udp", SRC6, DST6),
                          "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp6\"," J_DOC6
                          ",\"length\":52,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", SRC4, DST6),
                          "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\","
                          "\"src\":\"[::ffff:192.0.2.10]:51234\",\"dst\":\"[2001:db8::2]:443\","
                          "\"length\":52,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", SRC6, DST4, "--udp"),
                          "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp6\","
                          "\"src\":\"[2001:db8::1]:56324\",\"dst\":\"[::ffff:198.51.100.1]:443\","
                          "\"length\":52,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", "--src", "/run/a.sock", "--dst", "/run/b.sock"),
                          "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-stream\","
                          "\"src\":\"/run/a.sock\",\"dst\":\"/run/b.sock\",\"length\":232,"
                          "\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", "--udp", "--src", "/a", "--dst", "/b"),
                          "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-dgram\","
                          "\"src\":\"/a\",\"dst\":\"/b\",\"length\":232,\"tlvs\":[]}\n");
}

static void test_roundtrip_local(void **state)
{
    (void)state;
    crun_expect_roundtrip(ARGS("encode", "--local"), J_LOCAL2 "\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", SRC4, DST4, "--local"), J_LOCAL2 "\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", "--local", "--udp", SRC6, DST6),
                          J_LOCAL2 "\"tlvs\":[]}\n");
    crun_expect_roundtrip(
        ARGS("encode", "--local", "--tlv", "authority=x"),
        "{\"version\":2,\"command\":\"local\",\"family\":\"unspec\",\"length\":20,"
        "\"tlvs\":[{\"type\":2,\"name\":\"authority\",\"value\":\"x\","
        "\"hex\":\"78\"}]}\n");
    crun_expect_roundtrip(
        ARGS("encode", "--v1", "--local"),
        "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,"
        "\"tlvs\":[]}\n");
    crun_expect_roundtrip(
        ARGS("encode", "--v1", "--local", SRC4, DST4),
        "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,"
        "\"tlvs\":[]}\n");
}

static void test_roundtrip_v1(void **state)
{
    (void)state;
    crun_expect_roundtrip(ARGS("encode", "--v1", SRC4, DST4),
                          "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp4\"," J_DOC4
                          ",\"length\":46,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", "--v1", SRC6, DST6),
                          "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\"," J_DOC6
                          ",\"length\":46,\"tlvs\":[]}\n");
    crun_expect_roundtrip(ARGS("encode", "--v1", SRC4, DST6),
                          "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\","
                          "\"src\":\"[::ffff:192.0.2.10]:51234\",\"dst\":\"[2001:db8::2]:443\","
                          "\"length\":52,\"tlvs\":[]}\n");
}

/* One TLV after the 28-byte TCP4 header, decoded back as tlv_json. */
static void expect_tlv(const char *spec, size_t len, const char *tlv_json)
{
    char json[1024];

    snprintf(json, sizeof(json), J_V2_TCP4 ",\"length\":%zu,\"tlvs\":[%s]}\n", len, tlv_json);
    crun_expect_roundtrip(ARGS("encode", SRC4, DST4, "--tlv", spec), json);
}

static void test_roundtrip_tlvs(void **state)
{
    (void)state;
    expect_tlv("alpn=h2", 33, "{\"type\":1,\"name\":\"alpn\",\"value\":\"h2\",\"hex\":\"6832\"}");
    expect_tlv("authority=example.com", 42,
               "{\"type\":2,\"name\":\"authority\",\"value\":\"example.com\","
               "\"hex\":\"6578616d706c652e636f6d\"}");
    expect_tlv("authority=", 31, "{\"type\":2,\"name\":\"authority\",\"value\":\"\",\"hex\":\"\"}");
    expect_tlv("unique-id=conn-0001", 40,
               "{\"type\":5,\"name\":\"unique-id\",\"hex\":\"636f6e6e2d30303031\"}");
    expect_tlv("netns=blue", 35,
               "{\"type\":48,\"name\":\"netns\",\"value\":\"blue\",\"hex\":\"626c7565\"}");
    expect_tlv("noop=", 31, "{\"type\":4,\"name\":\"noop\",\"hex\":\"\"}");
    expect_tlv("noop=hex:000000", 34, "{\"type\":4,\"name\":\"noop\",\"hex\":\"000000\"}");
    expect_tlv("0xf0=hex:DEad", 33, "{\"type\":240,\"hex\":\"dead\"}");
    expect_tlv("7=x", 32, "{\"type\":7,\"hex\":\"78\"}");
    expect_tlv("0xe0=hex:0102030405060708", 39,
               "{\"type\":224,\"name\":\"gcp\",\"value\":\"72623859790382856\","
               "\"hex\":\"0102030405060708\"}");
    expect_tlv("234=hex:01767063652d61", 38,
               "{\"type\":234,\"name\":\"aws\",\"value\":\"vpce-a\",\"hex\":\"01767063652d61\"}");
    expect_tlv("azure=hex:01ffffffff", 36,
               "{\"type\":238,\"name\":\"azure\",\"value\":4294967295,\"hex\":\"01ffffffff\"}");
    expect_tlv("ssl=hex:0700000000210007544c5376312e33", 46,
               "{\"type\":32,\"name\":\"ssl\",\"hex\":\"0700000000210007544c5376312e33\","
               "\"ssl\":{\"client\":7,\"verify\":0,\"version\":\"TLSv1.3\"}}");
    expect_tlv("0x20=hex:0500000001260009736563703235367231270013"
               "7273615f7073735f727361655f736861323536280003308201",
               76,
               "{\"type\":32,\"name\":\"ssl\",\"hex\":\"0500000001260009736563703235367231270013"
               "7273615f7073735f727361655f736861323536280003308201\",\"ssl\":{\"client\":5,"
               "\"verify\":1,\"group\":\"secp256r1\",\"sig_scheme\":\"rsa_pss_rsae_sha256\","
               "\"client_cert\":\"308201\"}}");
}

static void test_roundtrip_duplicates_and_crc(void **state)
{
    struct crun r;
    uint8_t *hdr;
    size_t n;

    (void)state;
    crun_expect_roundtrip(ARGS("encode", SRC4, DST4, "--tlv", "alpn=h2", "--tlv", "alpn=http/1.1"),
                          J_V2_TCP4
                          ",\"length\":44,\"tlvs\":["
                          "{\"type\":1,\"name\":\"alpn\",\"value\":\"h2\",\"hex\":\"6832\"},"
                          "{\"type\":1,\"name\":\"alpn\",\"value\":\"http/1.1\","
                          "\"hex\":\"687474702f312e31\"}]}\n");
    crun_expect_roundtrip(ARGS("encode", "--src", "192.168.0.1:56324", "--dst", "192.168.0.11:443",
                               "--crc32c", "--tlv", "authority=example.com"),
                          valid[8].json);
    n = crun_encode(ARGS("encode", "--local", "--crc32c", "--udp", SRC6, DST6), &hdr);
    assert_int_equal(n, 23);
    crun_run(&r, ARGS("decode"), hdr, n);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "\"tlvs\":[{\"type\":3,\"name\":\"crc32c\","));
    crun_free(&r);
    hdr[n - 1] ^= 1;
    crun_expect_fail(ARGS("decode"), hdr, n, 1, NEEDLES(pp_strerror(-PP_EBADCRC)));
    free(hdr);
}

/* encode writes exactly the section 12 bytes. */
static void test_encode_bytes(void **state)
{
    (void)state;
    crun_expect_encode_bytes(ARGS("encode", "--local"), valid[0].hex);
    crun_expect_encode_bytes(ARGS("encode", "--src", "127.0.0.1:51755", "--dst", "127.0.0.1:1025"),
                             valid[2].hex);
    crun_expect_encode_bytes(
        ARGS("encode", "--src", "127.0.0.1:51755", "--dst", "127.0.0.1:1025", "--udp"),
        valid[3].hex);
    crun_expect_encode_bytes(ARGS("encode", SRC6, DST6), valid[4].hex);
    crun_expect_encode_bytes(ARGS("encode", SRC6, DST6, "--udp"), valid[5].hex);
    crun_expect_encode_bytes(
        ARGS("encode", "--src", "127.0.0.1:51755", "--dst", "127.0.0.1:1025", "--crc32c"),
        valid[6].hex);
    crun_expect_encode_bytes(
        ARGS("encode", "--src", "[::1]:53135", "--dst", "[::1]:1025", "--crc32c"), valid[7].hex);
    crun_expect_encode_bytes(ARGS("encode", "--src", "192.168.0.1:56324", "--dst",
                                  "192.168.0.11:443", "--tlv", "authority=example.com", "--crc32c"),
                             valid[8].hex);
    crun_expect_encode_bytes(ARGS("encode", "--src", "192.168.0.1:56324", "--dst",
                                  "192.168.0.11:443", "--tlv", "alpn=h2", "--tlv",
                                  "authority=example.com", "--tlv", "noop=", "--tlv",
                                  "unique-id=conn-0001"),
                             valid[9].hex);
    crun_expect_encode_bytes(ARGS("encode", "--src", "192.168.0.1:56324", "--dst",
                                  "192.168.0.11:443", "--tlv", "0xEE=hex:0178563412"),
                             valid[12].hex);
    crun_expect_encode_bytes(
        ARGS("encode", "--v1", "--src", "192.168.0.1:56324", "--dst", "192.168.0.11:443"),
        "50524f58592054435034203139322e3136382e302e31203139322e3136382e302e3131"
        "203536333234203434330d0a");
    crun_expect_encode_bytes(ARGS("encode", "--v1", "--local"), "50524f585920554e4b4e4f574e0d0a");
}

/* The largest header there is (65551 bytes) goes through; one byte more is
 * refused before anything is written. */
static void test_encode_big(void **state)
{
    size_t vlen = PP_V2_MAX_LEN - 28 - 3;
    char *spec = malloc(vlen + 8), want[64];
    uint8_t *hdr;
    struct crun r;
    size_t n;

    (void)state;
    assert_non_null(spec);
    memcpy(spec, "0xf1=", 5);
    memset(spec + 5, 'a', vlen);
    spec[5 + vlen] = '\0';
    n = crun_encode(ARGS("encode", SRC4, DST4, "--tlv", spec), &hdr);
    assert_int_equal(n, PP_V2_MAX_LEN);
    crun_run(&r, ARGS("decode"), hdr, n);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof(want), "\"length\":%d,", PP_V2_MAX_LEN);
    assert_non_null(strstr((const char *)r.out, want));
    crun_free(&r);
    free(hdr);
    spec[5 + vlen] = 'a';
    spec[6 + vlen] = '\0';
    crun_expect_fail(ARGS("encode", SRC4, DST4, "--tlv", spec), NULL, 0, 1, NEEDLES("65551"));
    free(spec);
}

/* TLV values are attacker bytes: the JSON must stay valid and inert. */
static void test_json_escaping(void **state)
{
    (void)state;
    crun_expect_roundtrip(
        ARGS("encode", SRC4, DST4, "--tlv", "alpn=hex:225c0a011fff417fe282ac", "--tlv",
             "netns=hex:c080eda080e282", "--tlv", "authority=a\"b\\c\td"),
        J_V2_TCP4 ",\"length\":62,\"tlvs\":["
                  "{\"type\":1,\"name\":\"alpn\","
                  "\"value\":\"\\\"\\\\\\n\\u0001\\u001f\\ufffdA\\u007f\xe2\x82\xac\","
                  "\"hex\":\"225c0a011fff417fe282ac\"},"
                  "{\"type\":48,\"name\":\"netns\",\"value\":\"\\ufffd\\ufffd"
                  "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\",\"hex\":\"c080eda080e282\"},"
                  "{\"type\":2,\"name\":\"authority\",\"value\":\"a\\\"b\\\\c\\td\","
                  "\"hex\":\"6122625c630964\"}]}\n");
}

static void expect_encode_error(const char *const *args, const char *needle)
{
    crun_expect_fail(args, NULL, 0, 1, NEEDLES("ppfwd: encode: ", needle));
}

static void test_encode_usage_errors(void **state)
{
    (void)state;
    expect_encode_error(ARGS("encode", "--v1", "--udp", SRC4, DST4), "UDP");
    expect_encode_error(ARGS("encode", "--v1", "--udp", "--local"), "UDP");
    expect_encode_error(ARGS("encode", DST4), "missing --src");
    expect_encode_error(ARGS("encode", SRC4), "missing --dst");
    expect_encode_error(ARGS("encode"), "missing --src");
    expect_encode_error(ARGS("encode", "--v1", "--v2", SRC4, DST4), "--v1 and --v2");
    expect_encode_error(ARGS("encode", "--v1", SRC4, DST4, "--tlv", "alpn=h2"), "TLV");
    expect_encode_error(ARGS("encode", "--v1", SRC4, DST4, "--crc32c"), "--crc32c");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--bogus"), "unknown option '--bogus'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "-x"), "unknown option '-x'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--udp=1"), "'--udp' takes no value");
    expect_encode_error(ARGS("encode", DST4, "--src"), "'--src' needs a value");
    expect_encode_error(ARGS("encode", SRC4, DST4, "extra"), "unexpected argument 'extra'");
    crun_expect_fail(ARGS("encode", SRC4, DST4, "--bogus"), NULL, 0, 1,
                     NEEDLES("usage: ppfwd encode"));
}

static void test_encode_address_errors(void **state)
{
    (void)state;
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4", DST4), "--src '1.2.3.4'");
    expect_encode_error(ARGS("encode", SRC4, "--dst", "[::1]"), "--dst '[::1]'");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:70000", DST4), "port");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:-1", DST4), "port");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:080", DST4), "port");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:", DST4), "PORT");
    expect_encode_error(ARGS("encode", "--src", "1.2.3:5", DST4), "--src '1.2.3:5'");
    expect_encode_error(ARGS("encode", "--src", "01.2.3.4:5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "::1:5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "[::1]x5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "[::g]:5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "example.com:80", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "/run/a.sock", DST4), "unix");
    expect_encode_error(ARGS("encode", "--v1", "--src", "/a", "--dst", "/b"), "unix");
    expect_encode_error(ARGS("encode", "--local", "--src", "bogus"), "--src 'bogus'");
}

/* A PROXY v2 UNIX address is 108 bytes, NUL-padded: a path of exactly 108
 * bytes fills it with no NUL, and encode | decode gives it back whole. */
static void test_encode_unix_108(void **state)
{
    char p108[109], q108[109], p109[110], json[400];
    uint8_t *hdr;

    (void)state;
    p108[0] = q108[0] = p109[0] = '/';
    memset(p108 + 1, 'p', 107);
    memset(q108 + 1, 'q', 107);
    memset(p109 + 1, 'r', 108);
    p108[108] = q108[108] = p109[109] = '\0';

    assert_int_equal(crun_encode(ARGS("encode", "--src", p108, "--dst", q108), &hdr), 232);
    assert_int_equal(hdr[13], PP2_FAM_UNIX_STREAM);
    assert_memory_equal(hdr + 16, p108, 108);
    assert_memory_equal(hdr + 16 + 108, q108, 108);
    free(hdr);
    snprintf(json, sizeof(json),
             "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-dgram\","
             "\"src\":\"%s\",\"dst\":\"/b\",\"length\":232,\"tlvs\":[]}\n",
             p108);
    crun_expect_roundtrip(ARGS("encode", "--udp", "--src", p108, "--dst", "/b"), json);

    expect_encode_error(ARGS("encode", "--src", p109, "--dst", "/b"),
                        "unix path too long (at most 108 bytes)");
    expect_encode_error(ARGS("encode", "--src", "/a", "--dst", p109), "--dst '/rrr");
}

static void test_encode_tlv_errors(void **state)
{
    char big[300] = "authority=";
    uint8_t *hdr;

    (void)state;
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "bogus=1"), "'bogus'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "256=x"), "'256'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "0x100=x"), "'0x100'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "=x"), "type");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "-1=x"), "'-1'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "alpn"), "TYPE=VALUE");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "alpn=hex:zz"), "hex");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "alpn=hex:abc"), "hex");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "3=hex:00000000"), "--crc32c");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "crc32c=abcd"), "--crc32c");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "ssl=hex:00"), "reject");
    memset(big + 10, 'a', 256);
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", big), "256 bytes");
    big[10 + 255] = '\0';
    assert_int_equal(crun_encode(ARGS("encode", SRC4, DST4, "--tlv", big), &hdr), 28 + 3 + 255);
    free(hdr);
    memcpy(big, "unique-id=", 10);
    memset(big + 10, 'u', 129);
    big[10 + 129] = '\0';
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", big), "129 bytes");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_roundtrip_families),
        cmocka_unit_test(test_roundtrip_local),
        cmocka_unit_test(test_roundtrip_v1),
        cmocka_unit_test(test_roundtrip_tlvs),
        cmocka_unit_test(test_roundtrip_duplicates_and_crc),
        cmocka_unit_test(test_encode_bytes),
        cmocka_unit_test(test_encode_big),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_encode_usage_errors),
        cmocka_unit_test(test_encode_address_errors),
        cmocka_unit_test(test_encode_unix_108),
        cmocka_unit_test(test_encode_tlv_errors),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
