/*
 * test_tlv_policy.c - the values of tlvs= and add-tlv= (config/tlv_policy.c):
 * type names and numbers, keep and strip lists, the added-TLV block and
 * every refusal with its message.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "config/tlv_policy.h"

static char err[512];

static void test_type_names_and_numbers(void **state)
{
    static const struct {
        const char *s;
        uint8_t t;
    } ok[] = {{"alpn", 1},   {"authority", 2}, {"crc32c", 3},  {"noop", 4},    {"unique-id", 5},
              {"ssl", 0x20}, {"netns", 0x30},  {"aws", 0xEA},  {"azure", 0xEE}, {"gcp", 0xE0},
              {"0", 0},      {"234", 234},     {"255", 255},   {"0xea", 0xEA}, {"0XE0", 0xE0},
              {"0x0", 0},    {"007", 7}};
    uint8_t t;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        t = 0x99;
        assert_int_equal(tlv_type_parse(ok[i].s, strlen(ok[i].s), &t, err, sizeof(err)), 0);
        assert_int_equal(t, ok[i].t);
    }
    /* Only the first len bytes count. */
    assert_int_equal(tlv_type_parse("alpn,ssl", 4, &t, err, sizeof(err)), 0);
    assert_int_equal(t, 1);
}

static void test_type_refused(void **state)
{
    static const char *const bad[] = {"ALPN", "uniqueid", "", "0x", "x1", "1a", "-1", "0x1g", " 1"};
    uint8_t t;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tlv_type_parse(bad[i], strlen(bad[i]), &t, err, sizeof(err)), -1);
        assert_non_null(strstr(err, "unknown TLV type"));
    }
    assert_int_equal(tlv_type_parse("256", 3, &t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "above 255"));
    assert_int_equal(tlv_type_parse("0x100", 5, &t, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "above 255"));
    assert_int_equal(tlv_type_parse("99999999999999999999", 20, &t, err, sizeof(err)), -1);
}

static void test_tlvs_modes(void **state)
{
    struct pp_tlv_set set, passed;
    enum tlvs_mode m;

    (void)state;
    assert_int_equal(tlvs_parse("pass", &m, &set, err, sizeof(err)), 0);
    assert_int_equal(m, TLVS_PASS);
    tlvs_passed(m, &set, &passed);
    assert_true(pp_tlv_set_has(&passed, 0) && pp_tlv_set_has(&passed, 255));
    assert_false(pp_tlv_set_has(&passed, PP2_TYPE_CRC32C));

    assert_int_equal(tlvs_parse("drop", &m, &set, err, sizeof(err)), 0);
    tlvs_passed(m, &set, &passed);
    for (int t = 0; t < 256; t++)
        assert_false(pp_tlv_set_has(&passed, (uint8_t)t));

    assert_int_equal(tlvs_parse("keep:authority,0xea,234,crc32c", &m, &set, err, sizeof(err)), 0);
    assert_int_equal(m, TLVS_KEEP);
    tlvs_passed(m, &set, &passed);
    for (int t = 0; t < 256; t++)
        assert_int_equal(pp_tlv_set_has(&passed, (uint8_t)t), t == 2 || t == 0xEA || t == 234);

    assert_int_equal(tlvs_parse("strip:aws,azure", &m, &set, err, sizeof(err)), 0);
    assert_int_equal(m, TLVS_STRIP);
    tlvs_passed(m, &set, &passed);
    for (int t = 0; t < 256; t++)
        assert_int_equal(pp_tlv_set_has(&passed, (uint8_t)t),
                         t != 0xEA && t != 0xEE && t != PP2_TYPE_CRC32C);
}

static void test_tlvs_refused(void **state)
{
    static const struct {
        const char *s, *msg;
    } bad[] = {
        {"keep", "expected pass, drop"}, {"keep:", "list of TLV types is empty"},
        {"strip:", "is empty"},         {"keep:alpn,", "empty item"},
        {"keep:,alpn", "empty item"},   {"keep:alpn,,ssl", "empty item"},
        {"keep:bogus", "unknown TLV type 'bogus'"}, {"strip:300", "above 255"},
        {"Pass", "expected pass"},      {"keep=alpn", "expected pass"},
    };
    struct pp_tlv_set set;
    enum tlvs_mode m;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tlvs_parse(bad[i].s, &m, &set, err, sizeof(err)), -1);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("tlvs=%s: message '%s' lacks '%s'", bad[i].s, err, bad[i].msg);
    }
}

static void test_block_text_and_hex_in_order(void **state)
{
    struct tlv_block b = {0};
    static const uint8_t want[] = {0xE0, 0, 6, 'z', 'o', 'n', 'e', '=', 'a', /* text with '=' */
                                   0xE1, 0, 3, 0x01, 0xAB, 0xff,            /* hex */
                                   0x02, 0, 11, 'e', 'x', 'a', 'm', 'p', 'l', 'e', '.', 'c', 'o', 'm',
                                   0xE2, 0, 0}; /* empty value */

    (void)state;
    assert_int_equal(tlv_block_add(&b, "0xe0=zone=a", err, sizeof(err)), 0);
    assert_int_equal(tlv_block_add(&b, "225=hex:01ABff", err, sizeof(err)), 0);
    assert_int_equal(tlv_block_add(&b, "authority=example.com", err, sizeof(err)), 0);
    assert_int_equal(tlv_block_add(&b, "0xe2=", err, sizeof(err)), 0);
    assert_int_equal(b.len, sizeof(want));
    assert_memory_equal(b.bytes, want, sizeof(want));

    /* The block appends to a v2 header as a config-time block would. */
    {
        uint8_t hdr[256];
        struct pp_header h;
        struct pp_str s;
        ssize_t n = pp_build_v2(hdr, sizeof(hdr), PP2_CMD_LOCAL, 0, NULL, NULL);

        n = pp_build_v2_tlvs(hdr, sizeof(hdr), (size_t)n, b.bytes, b.len, NULL);
        assert_int_equal(n, 16 + (ssize_t)sizeof(want));
        assert_int_equal(pp_parse(hdr, (size_t)n, &h, NULL), n);
        assert_int_equal(pp_get_authority(&h, &s), 0);
        assert_int_equal(s.len, 11);
    }
    tlv_block_free(&b);
    assert_null(b.bytes);
}

static void test_block_refused(void **state)
{
    static const struct {
        const char *s, *msg;
    } bad[] = {
        {"0xe0", "expected TYPE=VALUE"},
        {"bogus=x", "unknown TLV type 'bogus'"},
        {"256=x", "above 255"},
        {"crc32c=1234", "crc32c=on"},
        {"3=hex:00000000", "crc32c=on"},
        {"0xe0=hex:abc", "odd number of hex digits"},
        {"0xe0=hex:zz", "'z' is not a hex digit"},
        {"=x", "unknown TLV type"},
        /* Values every receiver refuses (pp_parse): each header sent would be. */
        {"ssl=hex:01", "TLV value length not allowed"},
        {"ssl=", "TLV value length not allowed"},
        {"0x20=hex:0100000000ff0001", "malformed TLV"},
        {"ssl=hex:0100000000210005544c53", "malformed TLV"},
    };
    struct tlv_block b = {0};

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(tlv_block_add(&b, bad[i].s, err, sizeof(err)), -1);
        if (strstr(err, bad[i].msg) == NULL)
            fail_msg("add-tlv=%s: message '%s' lacks '%s'", bad[i].s, err, bad[i].msg);
        assert_int_equal(b.len, 0);
    }
}

/* SSL values a receiver takes: the 5-byte fixed part, with whole sub-TLVs. */
static void test_block_ssl_accepted(void **state)
{
    struct tlv_block b = {0};

    (void)state;
    assert_int_equal(tlv_block_add(&b, "ssl=hex:0100000000", err, sizeof(err)), 0);
    assert_int_equal(tlv_block_add(&b, "0x20=hex:0100000000210003544c53", err, sizeof(err)), 0);
    assert_int_equal(b.len, 3 + 5 + 3 + 5 + 6);
    tlv_block_free(&b);
}

static void test_block_limits(void **state)
{
    struct tlv_block b = {0};
    char *s = malloc(8 + 2 * TLV_ADDED_MAX + 1);

    (void)state;
    assert_non_null(s);
    /* AUTHORITY up to 255 bytes, UNIQUE_ID up to 128: the spec's limits. */
    strcpy(s, "authority=");
    memset(s + 10, 'a', 255);
    s[265] = '\0';
    assert_int_equal(tlv_block_add(&b, s, err, sizeof(err)), 0);
    s[265] = 'a';
    s[266] = '\0';
    assert_int_equal(tlv_block_add(&b, s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "256 bytes, more than the 255"));
    strcpy(s, "unique-id=hex:");
    memset(s + 14, 'f', 2 * 129);
    s[14 + 2 * 129] = '\0';
    assert_int_equal(tlv_block_add(&b, s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "129 bytes, more than the 128"));
    s[14 + 2 * 128] = '\0';
    assert_int_equal(tlv_block_add(&b, s, err, sizeof(err)), 0);
    tlv_block_free(&b);

    /* The whole block within TLV_ADDED_MAX, exactly. */
    strcpy(s, "0xe0=");
    memset(s + 5, 'v', TLV_ADDED_MAX - 3);
    s[5 + TLV_ADDED_MAX - 3] = '\0';
    assert_int_equal(tlv_block_add(&b, s, err, sizeof(err)), 0);
    assert_int_equal(b.len, TLV_ADDED_MAX);
    assert_int_equal(tlv_block_add(&b, "0xe1=", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "PP_V2_DEFAULT_CAP"));
    assert_int_equal(b.len, TLV_ADDED_MAX);
    tlv_block_free(&b);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names_and_numbers),
        cmocka_unit_test(test_type_refused),
        cmocka_unit_test(test_tlvs_modes),
        cmocka_unit_test(test_tlvs_refused),
        cmocka_unit_test(test_block_text_and_hex_in_order),
        cmocka_unit_test(test_block_refused),
        cmocka_unit_test(test_block_ssl_accepted),
        cmocka_unit_test(test_block_limits),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
