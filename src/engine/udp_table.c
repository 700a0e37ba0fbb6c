/*
 * udp_table.c - the UDP session table (udp_table_*); see udp_table.h.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "engine/udp_table.h"

#define UDP_TABLE_MIN 64

int udp_table_init(struct udp_table *t)
{
    t->v = calloc(UDP_TABLE_MIN, sizeof(*t->v));
    if (t->v == NULL)
        return -ENOMEM;
    t->cap = UDP_TABLE_MIN;
    t->n = 0;
    arc4random_buf(&t->seed, sizeof(t->seed));
    return 0;
}

void udp_table_free(struct udp_table *t)
{
    free(t->v);
    t->v = NULL;
    t->cap = t->n = 0;
}

static uint64_t mix(uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdULL;
    h ^= h >> 33;
    h *= 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 33);
}

uint64_t udp_table_hash(const struct udp_table *t, const struct udp_key *k)
{
    const uint8_t *p = (const uint8_t *)k;
    uint64_t h = t->seed;

    for (size_t i = 0; i < sizeof(*k); i += 8) {
        uint64_t w;
        memcpy(&w, p + i, sizeof(w));
        h = mix(h ^ w) + i;
    }
    return mix(h);
}

struct udp_sess *udp_table_find(const struct udp_table *t, const struct udp_key *k, uint64_t h)
{
    size_t mask = t->cap - 1;

    for (size_t i = h & mask;; i = (i + 1) & mask) {
        struct udp_sess *s = t->v[i];
        if (s == NULL)
            return NULL;
        if (s->hash == h && memcmp(&s->key, k, sizeof(*k)) == 0)
            return s;
    }
}

static void put(struct udp_sess **v, size_t cap, struct udp_sess *s)
{
    size_t i = s->hash & (cap - 1);

    while (v[i] != NULL)
        i = (i + 1) & (cap - 1);
    v[i] = s;
}

static int grow(struct udp_table *t)
{
    size_t cap = t->cap * 2;
    struct udp_sess **v = calloc(cap, sizeof(*v));

    if (v == NULL)
        return -ENOMEM;
    for (size_t i = 0; i < t->cap; i++) {
        if (t->v[i] != NULL)
            put(v, cap, t->v[i]);
    }
    free(t->v);
    t->v = v;
    t->cap = cap;
    return 0;
}

int udp_table_add(struct udp_table *t, struct udp_sess *s, const struct udp_key *k, uint64_t h)
{
    /* At most half full: probes stay short even with clustering. */
    if ((t->n + 1) * 2 > t->cap && grow(t) != 0)
        return -ENOMEM;
    memcpy(&s->key, k, sizeof(*k));
    s->hash = h;
    put(t->v, t->cap, s);
    t->n++;
    return 0;
}

/* Backward-shift deletion: later members of the cluster move up into the
 * hole when their home slot allows it, so no tombstones pile up. */
void udp_table_del(struct udp_table *t, struct udp_sess *s)
{
    size_t mask = t->cap - 1, i = s->hash & mask;

    while (t->v[i] != s)
        i = (i + 1) & mask;
    for (size_t j = (i + 1) & mask; t->v[j] != NULL; j = (j + 1) & mask) {
        size_t home = t->v[j]->hash & mask;
        /* j's entry may fill hole i unless its home lies in (i, j]. */
        if (((j - home) & mask) >= ((j - i) & mask)) {
            t->v[i] = t->v[j];
            i = j;
        }
    }
    t->v[i] = NULL;
    t->n--;
}
