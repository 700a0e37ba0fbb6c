/*
 * test_build_tlvs.c - pp_build_v2_tlvs: copying a selection of a TLV block
 * (a parsed header's, or one prepared at config time) into a v2 header.
 *
 * Every result is parsed back with pp_parse and walked with pp_tlv_next, so
 * the test checks what a receiver sees, not only the bytes written.
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

#define CAP 1024

/* A received header: TCP4 with ALPN "h2", AUTHORITY "example.com", an AWS
 * VPC endpoint TLV, a custom 0xE5 TLV, an SSL TLV with a version sub-TLV,
 * and the CRC32C its sender computed. */
static uint8_t in_buf[CAP];
static struct pp_header in_hdr;

static void make_received(void)
{
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(40000)};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(443)};
    static const uint8_t aws[] = {0x01, 'v', 'p', 'c', 'e', '-', '1'};
    uint8_t ssl[64];
    struct pp_ssl s;
    ssize_t n, sn;

    inet_pton(AF_INET, "192.0.2.1", &src.sin_addr);
    inet_pton(AF_INET, "198.51.100.2", &dst.sin_addr);
    memset(&s, 0, sizeof(s));
    s.client = PP2_CLIENT_SSL;
    s.version.ptr = "TLSv1.3";
    s.version.len = 7;
    sn = pp_build_ssl(ssl, sizeof(ssl), &s);
    assert_true(sn > 0);

    n = pp_build_v2(in_buf, CAP, PP2_CMD_PROXY, SOCK_STREAM, (const struct sockaddr *)&src,
                    (const struct sockaddr *)&dst);
    n = pp_build_v2_tlv(in_buf, CAP, (size_t)n, PP2_TYPE_ALPN, "h2", 2);
    n = pp_build_v2_tlv(in_buf, CAP, (size_t)n, PP2_TYPE_AUTHORITY, "example.com", 11);
    n = pp_build_v2_tlv(in_buf, CAP, (size_t)n, PP2_TYPE_AWS, aws, sizeof(aws));
    n = pp_build_v2_tlv(in_buf, CAP, (size_t)n, 0xE5, "x", 1);
    n = pp_build_v2_tlv(in_buf, CAP, (size_t)n, PP2_TYPE_SSL, ssl, (size_t)sn);
    n = pp_build_v2_crc32c(in_buf, CAP, (size_t)n);
    assert_true(n > 0);
    assert_int_equal(pp_parse(in_buf, (size_t)n, &in_hdr, NULL), n);
}

/* A fresh TCP4 header to append to; returns its length. */
static size_t fresh(uint8_t *buf)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons(1)};
    ssize_t n = pp_build_v2(buf, CAP, PP2_CMD_PROXY, SOCK_STREAM, (const struct sockaddr *)&a,
                            (const struct sockaddr *)&a);

    assert_int_equal(n, 28);
    return (size_t)n;
}

/* Parses buf[0..n) and checks its TLV types are exactly want[0..nwant). */
static void check_types(const uint8_t *buf, ssize_t n, const uint8_t *want, size_t nwant)
{
    struct pp_header h;
    const uint8_t *p, *end;
    struct pp_tlv t;
    size_t i = 0;

    assert_true(n > 0);
    assert_int_equal(pp_parse(buf, (size_t)n, &h, NULL), n);
    p = h.tlv;
    end = p + h.tlv_len;
    while (pp_tlv_next(&p, end, &t) > 0) {
        assert_true(i < nwant);
        assert_int_equal(t.type, want[i]);
        i++;
    }
    assert_int_equal(i, nwant);
}

static void test_keep_all_skips_crc(void **state)
{
    uint8_t out[CAP];
    static const uint8_t want[] = {PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_AWS, 0xE5,
                                   PP2_TYPE_SSL};
    ssize_t n;

    (void)state;
    n = pp_build_v2_tlvs(out, CAP, fresh(out), in_hdr.tlv, in_hdr.tlv_len, NULL);
    check_types(out, n, want, sizeof(want));
    /* Every byte of the kept TLVs as it came: the CRC32C is the last TLV of
     * the received block (7 bytes), so the rest is one prefix of it. */
    assert_int_equal((size_t)n, 28 + in_hdr.tlv_len - 7);
    assert_memory_equal(out + 28, in_hdr.tlv, in_hdr.tlv_len - 7);
}

static void test_keep_list_in_arrival_order(void **state)
{
    uint8_t out[CAP];
    struct pp_tlv_set keep = {{0}};
    static const uint8_t want[] = {PP2_TYPE_AUTHORITY, 0xE5};
    struct pp_str s;
    struct pp_header h;
    ssize_t n;

    (void)state;
    /* Added in another order than they came: the output keeps theirs. */
    pp_tlv_set_add(&keep, 0xE5);
    pp_tlv_set_add(&keep, PP2_TYPE_AUTHORITY);
    pp_tlv_set_add(&keep, PP2_TYPE_CRC32C); /* never copied, even when asked */
    n = pp_build_v2_tlvs(out, CAP, fresh(out), in_hdr.tlv, in_hdr.tlv_len, &keep);
    check_types(out, n, want, sizeof(want));
    assert_int_equal(pp_parse(out, (size_t)n, &h, NULL), n);
    assert_int_equal(pp_get_authority(&h, &s), 0);
    assert_int_equal(s.len, 11);
    assert_memory_equal(s.ptr, "example.com", 11);
}

static void test_strip_is_complement(void **state)
{
    uint8_t out[CAP];
    struct pp_tlv_set keep;
    static const uint8_t want[] = {PP2_TYPE_ALPN, PP2_TYPE_AUTHORITY, PP2_TYPE_SSL};
    ssize_t n;

    (void)state;
    memset(&keep, 0xFF, sizeof(keep));
    keep.bits[PP2_TYPE_AWS >> 3] &= (uint8_t) ~(1u << (PP2_TYPE_AWS & 7));
    keep.bits[0xE5 >> 3] &= (uint8_t) ~(1u << (0xE5 & 7));
    n = pp_build_v2_tlvs(out, CAP, fresh(out), in_hdr.tlv, in_hdr.tlv_len, &keep);
    check_types(out, n, want, sizeof(want));
}

/* The config-time case: TLVs prepared on a scratch header, appended to
 * every header after the passed ones, then a fresh CRC32C over it all. */
static void test_added_block_then_crc(void **state)
{
    uint8_t scratch[CAP], out[CAP];
    struct pp_tlv_set keep = {{0}};
    static const uint8_t want[] = {PP2_TYPE_ALPN, 0xE0, 0xE1, PP2_TYPE_CRC32C};
    size_t base = fresh(scratch);
    ssize_t s, n;
    uint32_t crc;
    struct pp_header h;

    (void)state;
    s = pp_build_v2_tlv(scratch, CAP, base, 0xE0, "zone-a", 6);
    s = pp_build_v2_tlv(scratch, CAP, (size_t)s, 0xE1, "\x01\x02", 2);
    assert_int_equal(s, (ssize_t)base + 9 + 5);

    pp_tlv_set_add(&keep, PP2_TYPE_ALPN);
    n = pp_build_v2_tlvs(out, CAP, fresh(out), in_hdr.tlv, in_hdr.tlv_len, &keep);
    n = pp_build_v2_tlvs(out, CAP, (size_t)n, scratch + base, (size_t)s - base, NULL);
    n = pp_build_v2_crc32c(out, CAP, (size_t)n);
    check_types(out, n, want, sizeof(want));
    /* pp_parse verified the fresh checksum; it is not the received one. */
    assert_int_equal(pp_parse(out, (size_t)n, &h, NULL), n);
    assert_int_equal(pp_get_crc32c(&h, &crc), 0);
    assert_int_equal(crc, (uint32_t)out[n - 4] << 24 | (uint32_t)out[n - 3] << 16 |
                              (uint32_t)out[n - 2] << 8 | out[n - 1]);
    /* And it covers the header sent: flip one byte of an added TLV. */
    out[n - 8] ^= 1;
    assert_int_equal(pp_parse(out, (size_t)n, &h, NULL), -PP_EBADCRC);
}

static void test_nothing_kept_or_empty(void **state)
{
    uint8_t out[CAP];
    struct pp_tlv_set none = {{0}};
    size_t len = fresh(out);

    (void)state;
    assert_int_equal(pp_build_v2_tlvs(out, CAP, len, in_hdr.tlv, in_hdr.tlv_len, &none),
                     (ssize_t)len);
    assert_int_equal(pp_build_v2_tlvs(out, CAP, len, NULL, 0, NULL), (ssize_t)len);
    check_types(out, (ssize_t)len, NULL, 0);
}

static void test_errors_leave_buf_unchanged(void **state)
{
    uint8_t out[CAP], before[CAP];
    static const uint8_t truncated[] = {0xE0, 0x00, 0x05, 'a', 'b'};
    static const uint8_t short_hdr[] = {0xE0, 0x00};
    static const uint8_t good_then_truncated[] = {0xE1, 0x00, 0x01, 'z', 0xE0, 0x00, 0x05, 'a'};
    size_t len = fresh(out);

    (void)state;
    memset(out + len, 0xA5, CAP - len);
    memcpy(before, out, CAP);
    /* A truncated block: the header (its len bytes, length field included)
     * stays as it was, whatever was copied past it. */
    assert_int_equal(pp_build_v2_tlvs(out, CAP, len, truncated, sizeof(truncated), NULL),
                     -PP_EBADTLV);
    assert_int_equal(pp_build_v2_tlvs(out, CAP, len, short_hdr, sizeof(short_hdr), NULL),
                     -PP_EBADTLV);
    assert_int_equal(pp_build_v2_tlvs(out, CAP, len, good_then_truncated,
                                      sizeof(good_then_truncated), NULL),
                     -PP_EBADTLV);
    assert_memory_equal(out, before, len);
    memcpy(out, before, CAP);
    /* Less room than the block (the two-pass path): the same errors, and
     * nothing written at all. */
    assert_int_equal(pp_build_v2_tlvs(out, len + 4, len, good_then_truncated,
                                      sizeof(good_then_truncated), NULL),
                     -PP_EBADTLV);
    /* One byte short of room for everything but the CRC32C. */
    assert_int_equal(
        pp_build_v2_tlvs(out, len + in_hdr.tlv_len - 7 - 1, len, in_hdr.tlv, in_hdr.tlv_len, NULL),
        -PP_ENOSPC);
    /* Exactly enough room for the kept TLVs, less than the whole block. */
    assert_int_equal(
        pp_build_v2_tlvs(out, len + in_hdr.tlv_len - 7, len, in_hdr.tlv, in_hdr.tlv_len, NULL),
        (ssize_t)(len + in_hdr.tlv_len - 7));
    memcpy(out, before, CAP);
    assert_int_equal(pp_build_v2_tlvs(out, CAP, len, NULL, 3, NULL), -PP_EINVAL);
    /* Not a v2 header of len bytes. */
    assert_int_equal(pp_build_v2_tlvs(out, CAP, len - 1, in_hdr.tlv, in_hdr.tlv_len, NULL),
                     -PP_EINVAL);
    assert_memory_equal(out, before, CAP);
}

static void test_max_len(void **state)
{
    static uint8_t out[PP_V2_MAX_LEN + 16], block[PP_V2_MAX_LEN];
    size_t len = fresh(out), room = PP_V2_MAX_LEN - len;

    (void)state;
    /* One TLV that fills the header to exactly PP_V2_MAX_LEN, then one byte
     * more: the second is refused as pp_build_v2_tlv refuses it. */
    block[0] = 0xE0;
    block[1] = (uint8_t)((room - 3) >> 8);
    block[2] = (uint8_t)(room - 3);
    assert_int_equal(pp_build_v2_tlvs(out, sizeof(out), len, block, room, NULL), PP_V2_MAX_LEN);
    len = fresh(out);
    block[1] = (uint8_t)((room - 2) >> 8);
    block[2] = (uint8_t)(room - 2);
    assert_int_equal(pp_build_v2_tlvs(out, sizeof(out), len, block, room + 1, NULL), -PP_EINVAL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_keep_all_skips_crc),
        cmocka_unit_test(test_keep_list_in_arrival_order),
        cmocka_unit_test(test_strip_is_complement),
        cmocka_unit_test(test_added_block_then_crc),
        cmocka_unit_test(test_nothing_kept_or_empty),
        cmocka_unit_test(test_errors_leave_buf_unchanged),
        cmocka_unit_test(test_max_len),
    };

    make_received();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
