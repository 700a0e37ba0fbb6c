/*
 * test_threads.c - the library's thread-safety promise: parsing, TLV access,
 * CRC32c and building from several threads at once give the same results as
 * from one. The only shared state is the CPU-feature cache of crc32c.c, and
 * the threads start together so that its first use is raced.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <pthread.h>
#include <string.h>
#include <arpa/inet.h>

#include <proxyproto.h>

#define THREADS 4
#define ROUNDS 20000

/* PROXY TCP4 192.168.0.1:56324 -> 192.168.0.11:443, AUTHORITY example.com,
 * CRC32C 0xBB56885C (PROXY-PROTOCOL.md section 12). */
static const uint8_t v2_crc[] = {
    0x0d, 0x0a, 0x0d, 0x0a, 0x00, 0x0d, 0x0a, 0x51, 0x55, 0x49, 0x54, 0x0a, 0x21,
    0x11, 0x00, 0x21, 0xc0, 0xa8, 0x00, 0x01, 0xc0, 0xa8, 0x00, 0x0b, 0xdc, 0x04,
    0x01, 0xbb, 0x02, 0x00, 0x0b, 0x65, 0x78, 0x61, 0x6d, 0x70, 0x6c, 0x65, 0x2e,
    0x63, 0x6f, 0x6d, 0x03, 0x00, 0x04, 0xbb, 0x56, 0x88, 0x5c,
};
static const char v1_line[] = "PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n";

static pthread_barrier_t start;

/* Returns the number of rounds whose results differed from the expected. */
static void *worker(void *arg)
{
    uintptr_t bad = 0;
    struct sockaddr_in src = {.sin_family = AF_INET, .sin_port = htons(56324)};
    struct sockaddr_in dst = {.sin_family = AF_INET, .sin_port = htons(443)};
    uint8_t out[64];

    (void)arg;
    src.sin_addr.s_addr = htonl(0xc0a80001);
    dst.sin_addr.s_addr = htonl(0xc0a8000b);
    pthread_barrier_wait(&start);
    for (int i = 0; i < ROUNDS; i++) {
        struct pp_header hdr;
        struct pp_str s;
        ssize_t n;

        if (pp_parse(v2_crc, sizeof(v2_crc), &hdr, NULL) != (ssize_t)sizeof(v2_crc) ||
            !(hdr.flags & PP_HDR_CRC_VERIFIED) || pp_get_authority(&hdr, &s) != 0 || s.len != 11 ||
            memcmp(s.ptr, "example.com", 11) != 0)
            bad++;
        if (pp_parse((const uint8_t *)v1_line, sizeof(v1_line) - 1, &hdr, NULL) !=
                (ssize_t)sizeof(v1_line) - 1 ||
            hdr.src.sa.sa_family != AF_INET6)
            bad++;
        if (pp_crc32c(0, "123456789", 9) != 0xE3069283)
            bad++;
        n = pp_build_v2(out, sizeof(out), PP2_CMD_PROXY, SOCK_STREAM, (const struct sockaddr *)&src,
                        (const struct sockaddr *)&dst);
        n = n < 0 ? n : pp_build_v2_tlv(out, sizeof(out), (size_t)n, 2, "example.com", 11);
        n = n < 0 ? n : pp_build_v2_crc32c(out, sizeof(out), (size_t)n);
        if (n != (ssize_t)sizeof(v2_crc) || memcmp(out, v2_crc, sizeof(v2_crc)) != 0)
            bad++;
    }
    return (void *)bad;
}

static void test_concurrent_use(void **state)
{
    pthread_t t[THREADS];
    void *bad;

    (void)state;
    assert_int_equal(pthread_barrier_init(&start, NULL, THREADS), 0);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&t[i], NULL, worker, NULL), 0);
    for (int i = 0; i < THREADS; i++) {
        assert_int_equal(pthread_join(t[i], &bad), 0);
        assert_int_equal((uintptr_t)bad, 0);
    }
    pthread_barrier_destroy(&start);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_concurrent_use),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
