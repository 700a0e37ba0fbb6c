/*
 * test_udp_table.c - the UDP session table (udp_table_*) at 100,000
 * sessions: every key found after inserts, after deletes in random order
 * (backward-shift deletion must keep every probe chain whole), and after
 * re-inserts; and lookups of absent keys end.
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "engine/udp_table.h"

#define N 100000

static void key_of(struct udp_key *k, uint32_t i)
{
    memset(k, 0, sizeof(*k));
    k->peer_family = 2;
    k->peer[0] = 127;
    k->peer[3] = (uint8_t)(i % 7); /* many keys share all but the port */
    k->peer_port = (uint16_t)(i & 0xffff);
    k->client[0] = (uint8_t)(i >> 16);
    k->client_kind = (uint8_t)(i % 3 == 0 ? 0 : 2);
}

static struct udp_sess *find(struct udp_table *t, uint32_t i)
{
    struct udp_key k;

    key_of(&k, i);
    return udp_table_find(t, &k, udp_table_hash(t, &k));
}

static void test_many(void **state)
{
    struct udp_sess *s = calloc(N, sizeof(*s));
    uint32_t *order = malloc(N * sizeof(*order));
    struct udp_table t;
    struct udp_key k;
    clock_t start = clock();

    (void)state;
    assert_non_null(s);
    assert_non_null(order);
    assert_int_equal(udp_table_init(&t), 0);
    for (uint32_t i = 0; i < N; i++) {
        key_of(&k, i);
        assert_int_equal(udp_table_add(&t, &s[i], &k, udp_table_hash(&t, &k)), 0);
        order[i] = i;
    }
    assert_int_equal(t.n, N);
    for (uint32_t i = 0; i < N; i++)
        assert_ptr_equal(find(&t, i), &s[i]);
    assert_null(find(&t, N + 1));
    srand(42);
    for (uint32_t i = N - 1; i > 0; i--) { /* Fisher-Yates */
        uint32_t j = (uint32_t)rand() % (i + 1), x = order[i];
        order[i] = order[j];
        order[j] = x;
    }
    for (uint32_t i = 0; i < N / 2; i++)
        udp_table_del(&t, &s[order[i]]);
    for (uint32_t i = 0; i < N; i++)
        assert_ptr_equal(find(&t, order[i]), i < N / 2 ? NULL : &s[order[i]]);
    for (uint32_t i = 0; i < N / 2; i++) {
        key_of(&k, order[i]);
        assert_int_equal(udp_table_add(&t, &s[order[i]], &k, udp_table_hash(&t, &k)), 0);
    }
    for (uint32_t i = 0; i < N; i++)
        assert_ptr_equal(find(&t, i), &s[i]);
    /* Loose bound (ASan build): an O(n) scan per lookup would take minutes. */
    assert_true((double)(clock() - start) / CLOCKS_PER_SEC < 20.0);
    udp_table_free(&t);
    free(order);
    free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_many)};

    return cmocka_run_group_tests(tests, NULL, NULL);
}
