/*
 * test_crc32c.c - pp_crc32c against known values and a bit-by-bit reference,
 * incremental use, and the table and SSE4.2 implementations against each
 * other at every length and alignment.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "internal.h"
#include "rng.h"
#include "vectors.h"

#define MAX_LEN 300
#define MAX_ALIGN 16

static struct rng prng = {0x9E3779B97F4A7C15ULL};

static void fill_random(uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = (uint8_t)(rng_next(&prng) >> 32);
}

/* RFC 4960 appendix B, one bit at a time: slow, obviously right. */
static uint32_t crc32c_ref(const uint8_t *p, size_t n)
{
    uint32_t c = 0xFFFFFFFF;
    for (size_t i = 0; i < n; i++) {
        c ^= p[i];
        for (int k = 0; k < 8; k++)
            c = c & 1 ? c >> 1 ^ 0x82F63B78 : c >> 1;
    }
    return ~c;
}

static void test_check_value(void **state)
{
    (void)state;
    assert_int_equal(pp_crc32c(0, "123456789", 9), 0xE3069283);
    assert_int_equal(crc32c_ref((const uint8_t *)"123456789", 9), 0xE3069283);
    assert_int_equal(pp_crc32c(0, "", 0), 0);
    assert_int_equal(pp_crc32c(0x12345678, "", 0), 0x12345678);
}

/* The iSCSI test patterns of RFC 3720 appendix B.4. */
static void test_rfc3720_patterns(void **state)
{
    (void)state;
    uint8_t b[32];
    memset(b, 0, sizeof(b));
    assert_int_equal(pp_crc32c(0, b, 32), 0x8A9136AA);
    memset(b, 0xff, sizeof(b));
    assert_int_equal(pp_crc32c(0, b, 32), 0x62A8AB43);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)i;
    assert_int_equal(pp_crc32c(0, b, 32), 0x46DD794E);
    for (int i = 0; i < 32; i++)
        b[i] = (uint8_t)(31 - i);
    assert_int_equal(pp_crc32c(0, b, 32), 0x113FDB5C);
}

/* The CRC32C values of PROXY-PROTOCOL.md section 12, over each header with
 * its CRC value zeroed. */
static void test_section12_values(void **state)
{
    (void)state;
    static const struct {
        const char *hex;
        uint32_t crc;
    } cases[] = {
        {"0d0a0d0a000d0a515549540a211100137f0000017f000001ca2b040103000400000000", 0x3442E161},
        {"0d0a0d0a000d0a515549540a2121002b00000000000000000000000000000001000000000000000000"
         "00000000000001cf8f040103000400000000",
         0xFD16EE60},
        {"0d0a0d0a000d0a515549540a21110021c0a80001c0a8000bdc0401bb02000b6578616d706c652e636f"
         "6d03000400000000",
         0xBB56885C},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint8_t b[128];
        long n = vectors_unhex(cases[i].hex, b, sizeof(b));
        assert_true(n > 0);
        assert_int_equal(pp_crc32c(0, b, (size_t)n), cases[i].crc);
        assert_int_equal(crc32c_ref(b, (size_t)n), cases[i].crc);
    }
}

static void test_matches_reference(void **state)
{
    (void)state;
    static uint8_t buf[MAX_LEN + MAX_ALIGN];
    fill_random(buf, sizeof(buf));
    for (size_t align = 0; align < MAX_ALIGN; align++) {
        for (size_t n = 0; n <= MAX_LEN; n++) {
            uint32_t want = crc32c_ref(buf + align, n);
            uint32_t got = pp_crc32c(0, buf + align, n);
            if (got != want)
                fail_msg("len %zu align %zu: got 0x%08x, want 0x%08x", n, align, got, want);
        }
    }
}

static void test_incremental(void **state)
{
    (void)state;
    static uint8_t buf[MAX_LEN];
    fill_random(buf, sizeof(buf));
    uint32_t whole = pp_crc32c(0, buf, sizeof(buf));
    assert_int_equal(whole, crc32c_ref(buf, sizeof(buf)));
    for (size_t k = 0; k <= sizeof(buf); k++) {
        uint32_t c = pp_crc32c(0, buf, k);
        c = pp_crc32c(c, buf + k, sizeof(buf) - k);
        if (c != whole)
            fail_msg("split at %zu: got 0x%08x, want 0x%08x", k, c, whole);
    }
    /* Byte by byte, the smallest steps. */
    uint32_t c = 0;
    for (size_t i = 0; i < sizeof(buf); i++)
        c = pp_crc32c(c, buf + i, 1);
    assert_int_equal(c, whole);
}

/* Calls the internal implementations with the public convention, whichever
 * one they use: they may take the raw register (pre- and post-inverted by
 * pp_crc32c) or the finished value. The check value tells which. */
static int raw_register;

static uint32_t call_impl(uint32_t (*f)(uint32_t, const uint8_t *, size_t), uint32_t crc,
                          const uint8_t *p, size_t n)
{
    return raw_register ? ~f(~crc, p, n) : f(crc, p, n);
}

static void test_sw_and_hw_agree(void **state)
{
    (void)state;
    const uint8_t *check = (const uint8_t *)"123456789";
    if (pp__crc32c_sw(0, check, 9) == 0xE3069283)
        raw_register = 0;
    else if (~pp__crc32c_sw(0xFFFFFFFF, check, 9) == 0xE3069283)
        raw_register = 1;
    else
        fail_msg("pp__crc32c_sw gives neither convention the check value");

    int hw = pp__cpu_has_crc32c();
    print_message("hardware CRC32C: %s\n", hw ? "yes, compared with the table" : "no");
    static uint8_t buf[MAX_LEN + MAX_ALIGN];
    fill_random(buf, sizeof(buf));
    for (size_t align = 0; align < MAX_ALIGN; align++) {
        for (size_t n = 0; n <= MAX_LEN; n++) {
            const uint8_t *p = buf + align;
            uint32_t seed = (uint32_t)rng_next(&prng);
            uint32_t want = crc32c_ref(p, n);
            uint32_t sw = call_impl(pp__crc32c_sw, 0, p, n);
            if (sw != want)
                fail_msg("sw len %zu align %zu: 0x%08x, want 0x%08x", n, align, sw, want);
            if (!hw)
                continue;
            uint32_t h = call_impl(pp__crc32c_hw, 0, p, n);
            if (h != want)
                fail_msg("hw len %zu align %zu: 0x%08x, want 0x%08x", n, align, h, want);
            /* Continuing from an arbitrary CRC as well. */
            assert_int_equal(call_impl(pp__crc32c_hw, seed, p, n),
                             call_impl(pp__crc32c_sw, seed, p, n));
        }
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check_value),      cmocka_unit_test(test_rfc3720_patterns),
        cmocka_unit_test(test_section12_values), cmocka_unit_test(test_matches_reference),
        cmocka_unit_test(test_incremental),      cmocka_unit_test(test_sw_and_hw_agree),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
