/*
 * test_config_equal.c - route equality (what a reload keeps running) is
 * derived from the key table: for every row of the table itself, two routes
 * that differ only in that key are unequal, and two built from the same text
 * are equal. A key added to the table without two sample values here fails
 * test_every_key_has_samples, so no key can be left out of the comparison.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfgtest.h"
#include "config/config.h"
#include "config/internal.h"

/* Two values of each key that are stored differently, both valid on the
 * base route below (TCP, send-proxy v2; UDP for the keys of udp_only).
 * URL spelling. */
static const struct {
    const char *key, *a, *b;
} samples[] = {
    {"listen", "tcp://127.0.0.1:7001", "tcp://127.0.0.1:7002"},
    {"upstream", "127.0.0.1:1", "[127.0.0.1:1, 127.0.0.1:2]"},
    {"accept-proxy", "optional", "required"},
    {"trusted", "10.0.0.0/8", "10.0.0.0/16"},
    {"send-proxy", "v1", "v2"},
    {"tlvs", "keep:aws", "strip:aws"},
    {"add-tlv", "0xe0=a", "0xe0=b"},
    {"authority", "a.example", "b.example"},
    {"unique-id", "on", "off"},
    {"crc32c", "on", "off"},
    {"transparent", "on", "off"},
    {"allow", "10.0.0.0/8", "[10.0.0.0/8, 192.168.0.0/16]"},
    {"deny", "10.0.0.1", "10.0.0.2"},
    {"max-conns", "1", "2"},
    {"balance", "roundrobin", "source"},
    {"next-upstream", "on", "off"},
    {"check", "1s", "2s"},
    {"connect-timeout", "1s", "1500ms"},
    {"header-timeout", "1s", "2s"},
    {"idle-timeout", "1m", "1h"},
    {"reply-timeout", "1s", "2s"},
};

/* Keys refused on a TCP route: their samples load on this one. */
static const char *const udp_only[] = {"reply-timeout"};
static const char udp_listen[] = "udp://127.0.0.1:7000";

static int is_udp_only(const char *key)
{
    for (size_t i = 0; key != NULL && i < sizeof(udp_only) / sizeof(udp_only[0]); i++) {
        if (strcmp(udp_only[i], key) == 0)
            return 1;
    }
    return 0;
}

/* The base route's keys; a key under test replaces its base value. */
static const struct {
    const char *key, *value;
} base[] = {
    {"listen", "tcp://127.0.0.1:7000"},
    {"upstream", "127.0.0.1:9"},
    {"send-proxy", "v2"},
};

/* Three configs loaded by one test, freed by the teardown. */
static struct cfg cfgs[3];

static int teardown(void **state)
{
    for (size_t i = 0; i < 3; i++)
        cfg_free(&cfgs[i]);
    return cfgt_teardown(state);
}

static const char *yaml_name(const char *key, char *buf, size_t cap)
{
    snprintf(buf, cap, "%s", key);
    for (char *p = buf; *p; p++)
        *p = *p == '-' ? '_' : *p;
    return buf;
}

/* Loads the base route "r" with key = value (key may be NULL) into *c. */
static const struct route_cfg *load(struct cfg *c, const char *key, const char *value)
{
    char text[1024], name[64];
    size_t n = (size_t)snprintf(text, sizeof(text), "routes:\n  r:\n");

    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++) {
        const char *v = base[i].value;

        if (is_udp_only(key) && strcmp(base[i].key, "listen") == 0)
            v = udp_listen;
        if (key == NULL || strcmp(base[i].key, key) != 0)
            n += (size_t)snprintf(text + n, sizeof(text) - n, "    %s: %s\n",
                                  yaml_name(base[i].key, name, sizeof(name)), v);
    }
    if (key != NULL)
        n += (size_t)snprintf(text + n, sizeof(text) - n, "    %s: %s\n",
                              yaml_name(key, name, sizeof(name)), value);
    assert_true(n < sizeof(text));
    cfgt_write_file(text);
    cfg_free(c);
    cfg_errors_free(&cfgt_errs);
    if (cfg_load_file(c, cfgt_path, &cfgt_errs) != 0) {
        cfgt_print_errors();
        fail_msg("refused:\n%s", text);
    }
    assert_int_equal(c->nroutes, 1);
    return &c->routes[0];
}

static int sample_of(const char *key)
{
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++) {
        if (strcmp(samples[i].key, key) == 0)
            return (int)i;
    }
    return -1;
}

static void test_every_key_has_samples(void **state)
{
    (void)state;
    for (size_t k = 0; k < CFG_NKEYS; k++) {
        if (sample_of(cfg_keys[k].name) < 0)
            fail_msg("key %s of the table has no sample values here: add two", cfg_keys[k].name);
    }
    /* And no stale sample: each names a key of the table. */
    for (size_t i = 0; i < sizeof(samples) / sizeof(samples[0]); i++)
        assert_non_null(cfg_key_find(samples[i].key));
}

static void test_each_key_changes_equality(void **state)
{
    (void)state;
    for (size_t k = 0; k < CFG_NKEYS; k++) {
        const char *key = cfg_keys[k].name;
        int s = sample_of(key);
        const struct route_cfg *a, *b, *a2;

        assert_true(s >= 0);
        a = load(&cfgs[0], key, samples[s].a);
        b = load(&cfgs[1], key, samples[s].b);
        a2 = load(&cfgs[2], key, samples[s].a);
        if (cfg_route_equal(a, b))
            fail_msg("key %s: routes with %s and %s compare equal", key, samples[s].a,
                     samples[s].b);
        if (!cfg_route_equal(a, a2) || !cfg_route_equal(a2, a))
            fail_msg("key %s: two routes with %s compare unequal", key, samples[s].a);
        assert_true(cfg_route_equal(a, a));
    }
}

/* A key given with its default value configures the same route as the key
 * left out: a reload that spells out a default keeps the route running. */
static void test_default_spelled_out(void **state)
{
    const struct route_cfg *a, *b;

    (void)state;
    a = load(&cfgs[0], NULL, NULL);
    b = load(&cfgs[1], "tlvs", "pass");
    assert_true(cfg_route_equal(a, b));
    b = load(&cfgs[1], "header-timeout", "5s");
    assert_true(cfg_route_equal(a, b));
    b = load(&cfgs[1], "idle-timeout", "1h");
    assert_true(cfg_route_equal(a, b));
    b = load(&cfgs[1], "accept-proxy", "off");
    assert_true(cfg_route_equal(a, b));
}

/* The route's name is its identity: the same keys under another name are
 * another route. Where it was written (its line) is not compared. */
static void test_name_and_line(void **state)
{
    const struct route_cfg *a;
    struct route_cfg b;
    char *name;

    (void)state;
    a = load(&cfgs[0], NULL, NULL);
    b = *a;
    b.line = a->line + 10;
    assert_true(cfg_route_equal(a, &b));
    name = strdup("other");
    assert_non_null(name);
    b.name = name;
    assert_false(cfg_route_equal(a, &b));
    free(name);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_every_key_has_samples, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_each_key_changes_equality, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_spelled_out, cfgt_setup, teardown),
        cmocka_unit_test_setup_teardown(test_name_and_line, cfgt_setup, teardown),
    };

    return cmocka_run_group_tests(tests, cfgt_group_setup, cfgt_group_teardown);
}
