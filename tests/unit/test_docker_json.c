/*
 * test_docker_json.c - the Docker Engine API's answers into the provider's
 * model: recorded container lists (Docker's documented shape, with a running
 * container on two networks and one on IPv6 only, and Podman's), event
 * objects, the event stream split at every byte, and the refusals: not
 * JSON, the wrong shape, an answer or an event over its cap, deep nesting.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <json-c/json.h>

#include "provider/docker_json.h"

/* Reads tests/vectors/docker/NAME (PP_VECTORS overrides tests/vectors). */
static char *vector(const char *name, size_t *len)
{
    const char *dir = getenv("PP_VECTORS") ? getenv("PP_VECTORS") : "tests/vectors";
    char path[512];
    FILE *f;
    char *buf;
    long n;

    snprintf(path, sizeof(path), "%s/docker/%s", dir, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_int_equal(fseek(f, 0, SEEK_END), 0);
    n = ftell(f);
    assert_true(n > 0);
    rewind(f);
    buf = malloc((size_t)n + 1);
    assert_non_null(buf);
    assert_int_equal(fread(buf, 1, (size_t)n, f), (size_t)n);
    buf[n] = '\0';
    fclose(f);
    *len = (size_t)n;
    return buf;
}

static int list_str(const char *s, struct docker_list *l)
{
    return docker_json_list(s, strlen(s), l);
}

static const char *label(const struct docker_container *c, const char *key)
{
    for (size_t i = 0; i < c->nlabels; i++) {
        if (strcmp(c->labels[i].key, key) == 0)
            return c->labels[i].value;
    }
    return NULL;
}

static void test_docker_list(void **state)
{
    struct docker_list l;
    size_t len;
    char *buf = vector("containers-docker.json", &len);

    (void)state;
    assert_int_equal(docker_json_list(buf, len, &l), 0);
    assert_int_equal(l.n, 4);
    /* Sorted by name: hostnet, stopped, v6only, web. */
    assert_string_equal(l.v[0].name, "hostnet");
    assert_int_equal(l.v[0].running, 1);
    assert_string_equal(l.v[0].addr, "");
    assert_string_equal(l.v[1].name, "stopped");
    assert_int_equal(l.v[1].running, 0);
    assert_string_equal(l.v[1].addr, "");
    assert_int_equal(l.v[1].nlabels, 2);
    assert_string_equal(l.v[2].name, "v6only");
    assert_string_equal(l.v[2].addr, "fd00:db8::5");
    assert_string_equal(l.v[3].name, "web");
    assert_string_equal(l.v[3].id,
                        "8dfafdbc3a40d2b9a4f3e2c1f0e9d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a3f2e1");
    assert_int_equal(l.v[3].running, 1);
    /* The first network in the answer, not the alphabetically first. */
    assert_string_equal(l.v[3].addr, "172.18.0.5");
    /* Only ppfwd.* labels, sorted by key. */
    assert_int_equal(l.v[3].nlabels, 3);
    assert_string_equal(l.v[3].labels[0].key, "ppfwd.route.dns");
    assert_string_equal(l.v[3].labels[1].key, "ppfwd.route.fixed");
    assert_string_equal(l.v[3].labels[2].key, "ppfwd.route.ssh");
    assert_string_equal(label(&l.v[3], "ppfwd.route.ssh"),
                        "tcp://127.0.0.1:2222/container:22?send-proxy=v2");
    assert_null(label(&l.v[3], "com.example.vendor"));
    docker_list_free(&l);
    free(buf);
}

static void test_podman_list(void **state)
{
    struct docker_list l;
    size_t len;
    char *buf = vector("containers-podman.json", &len);

    (void)state;
    assert_int_equal(docker_json_list(buf, len, &l), 0);
    assert_int_equal(l.n, 1);
    assert_string_equal(l.v[0].name, "c1");
    assert_int_equal(l.v[0].running, 0);
    assert_string_equal(l.v[0].addr, "");
    assert_string_equal(label(&l.v[0], "ppfwd.route.ssh"), "tcp://127.0.0.1:12345/127.0.0.1:22");
    docker_list_free(&l);
    free(buf);
    assert_int_equal(list_str(" [ ]\n", &l), 0);
    assert_int_equal(l.n, 0);
    docker_list_free(&l);
}

/* Older daemons: no State; no Names (named by the id); null members. */
static void test_list_variants(void **state)
{
    struct docker_list l;

    (void)state;
    assert_int_equal(list_str("[{\"Id\":\"0123456789abcdef0123\",\"Status\":\"Up 5 minutes\","
                              "\"Labels\":null,\"NetworkSettings\":{\"Networks\":{\"a\":null,"
                              "\"b\":{\"IPAddress\":\"10.0.0.7\"}}}}]",
                              &l),
                     0);
    assert_string_equal(l.v[0].name, "0123456789ab");
    assert_int_equal(l.v[0].running, 1);
    assert_string_equal(l.v[0].addr, "10.0.0.7");
    assert_int_equal(l.v[0].nlabels, 0);
    docker_list_free(&l);
    /* An address that is not one never reaches a URL. */
    assert_int_equal(list_str("[{\"Id\":\"x\",\"State\":\"running\",\"NetworkSettings\":"
                              "{\"Networks\":{\"n\":{\"IPAddress\":\"1.2.3.4:80/evil\"}}}}]",
                              &l),
                     0);
    assert_string_equal(l.v[0].addr, "");
    docker_list_free(&l);
}

static void test_list_malformed(void **state)
{
    static const struct {
        const char *json;
        int rc;
    } cases[] = {
        {"", -DOCKER_EJSON},
        {"not json", -DOCKER_EJSON},
        {"[{\"Id\":\"a\"}", -DOCKER_EJSON},     /* truncated */
        {"[{\"Id\":\"a\"}] x", -DOCKER_EJSON},  /* trailing bytes */
        {"[{\"Id\":\"a\"}][]", -DOCKER_EJSON},  /* two values */
        {"{\"Id\":\"a\"}", -DOCKER_ESHAPE},     /* not an array */
        {"{\"message\":\"page not found\"}", -DOCKER_ESHAPE},
        {"[1]", -DOCKER_ESHAPE},
        {"[{\"Names\":[\"/x\"]}]", -DOCKER_ESHAPE}, /* no Id */
        {"[{\"Id\":\"\"}]", -DOCKER_ESHAPE},
        {"[{\"Id\":5}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"Names\":\"/x\"}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"Names\":[7]}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"State\":true}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"Labels\":[\"ppfwd.route.x\"]}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"Labels\":{\"ppfwd.route.x\":1}}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"Labels\":{\"ppfwd.route.x\":\"tcp://:1/a:1\\u0000?x\"}}]",
         -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"NetworkSettings\":{\"Networks\":[]}}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"NetworkSettings\":{\"Networks\":{\"n\":7}}}]", -DOCKER_ESHAPE},
        {"[{\"Id\":\"a\",\"NetworkSettings\":{\"Networks\":{\"n\":{\"IPAddress\":7}}}}]",
         -DOCKER_ESHAPE},
        /* The second element is bad: nothing of the first is kept. */
        {"[{\"Id\":\"a\",\"Labels\":{\"ppfwd.route.x\":\"v\"}},{\"Id\":1}]", -DOCKER_ESHAPE},
    };
    struct docker_list l;

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        l.n = 99;
        if (list_str(cases[i].json, &l) != cases[i].rc)
            fail_msg("case %zu '%s': expected %d", i, cases[i].json, cases[i].rc);
        assert_int_equal(l.n, 0);
        assert_null(l.v);
    }
    assert_string_equal(docker_strerror(-DOCKER_ETOOBIG), "answer too large");
    assert_string_equal(docker_strerror(-999), "unknown error");
}

/* A list over the cap is refused before any parsing; nesting past the
 * depth limit is refused by the parser, not by the stack. */
static void test_list_huge(void **state)
{
    size_t n = DOCKER_LIST_MAX + 1, depth = 100000;
    char *big = malloc(n), *deep = malloc(2 * depth + 1);
    struct docker_list l;

    (void)state;
    assert_non_null(big);
    assert_non_null(deep);
    memset(big, ' ', n);
    big[0] = '[';
    big[n - 1] = ']';
    assert_int_equal(docker_json_list(big, n, &l), -DOCKER_ETOOBIG);
    /* Exactly the cap is still read. */
    big[n - 2] = ']';
    assert_int_equal(docker_json_list(big, n - 1, &l), 0);
    docker_list_free(&l);
    memset(deep, '[', depth);
    memset(deep + depth, ']', depth);
    deep[2 * depth] = '\0';
    assert_int_equal(docker_json_list(deep, 2 * depth, &l), -DOCKER_EJSON);
    free(big);
    free(deep);
}

/* ---- events ---- */

struct seen {
    int n;
    struct docker_event ev[8];
    int relevant[8];
};

static int on_obj(void *arg, const void *obj)
{
    struct seen *s = arg;

    if (s->n >= 8)
        return -1;
    s->relevant[s->n] = docker_json_event(obj, &s->ev[s->n]);
    s->n++;
    return 0;
}

static void check_events(const struct seen *s)
{
    assert_int_equal(s->n, 5);
    assert_int_equal(s->relevant[0], 1);
    assert_string_equal(s->ev[0].action, "create");
    assert_string_equal(s->ev[0].name, "c2");
    assert_string_equal(s->ev[0].id,
                        "708d5be9b31d06adda9cd4d00c4dd2f12482715ccc75700ed335986b08b9cabb");
    assert_int_equal(s->relevant[1], 1);
    assert_string_equal(s->ev[1].action, "start");
    assert_string_equal(s->ev[1].name, "web");
    assert_int_equal(s->relevant[2], 0); /* image pull */
    assert_string_equal(s->ev[2].type, "image");
    assert_int_equal(s->relevant[3], 0); /* exec_start: sh */
    /* API < 1.22: status and id only. */
    assert_int_equal(s->relevant[4], 1);
    assert_string_equal(s->ev[4].action, "die");
    assert_string_equal(s->ev[4].id, "bf5d21a2b0c1");
}

static void test_events_stream(void **state)
{
    struct docker_stream st;
    struct seen s;
    size_t len;
    char *buf = vector("events.json", &len);

    (void)state;
    assert_int_equal(docker_stream_init(&st), 0);
    /* In one piece. */
    memset(&s, 0, sizeof(s));
    assert_int_equal(docker_stream_feed(&st, buf, len, on_obj, &s), 0);
    check_events(&s);
    /* One byte at a time: every split point. */
    memset(&s, 0, sizeof(s));
    for (size_t i = 0; i < len; i++)
        assert_int_equal(docker_stream_feed(&st, buf + i, 1, on_obj, &s), 0);
    check_events(&s);
    /* Without newlines between the objects (Docker writes them with). */
    memset(&s, 0, sizeof(s));
    for (char *p = buf; (p = strchr(p, '\n')) != NULL;)
        *p = ' ';
    assert_int_equal(docker_stream_feed(&st, buf, len, on_obj, &s), 0);
    check_events(&s);
    docker_stream_free(&st);
    free(buf);
}

static int count_obj(void *arg, const void *obj)
{
    (void)obj;
    (*(int *)arg)++;
    return 0;
}

static void test_events_bad(void **state)
{
    struct docker_stream st;
    struct docker_event ev;
    json_object *o;
    static const char small[] = "{\"Type\":\"container\",\"Action\":\"die\"}\n";
    size_t n = DOCKER_EVENT_MAX + 10;
    char *big = malloc(n);
    int count = 0;

    (void)state;
    assert_non_null(big);
    assert_int_equal(docker_stream_init(&st), 0);
    /* Many small events together exceed the cap; none does alone. */
    for (int i = 0; i < 2000; i++)
        assert_int_equal(docker_stream_feed(&st, small, strlen(small), count_obj, &count), 0);
    assert_int_equal(count, 2000);
    /* One event over the cap, fed in pieces. */
    memcpy(big, "{\"Type\":\"", 9);
    memset(big + 9, 'a', n - 9);
    assert_int_equal(docker_stream_feed(&st, big, 4096, count_obj, &count), 0);
    assert_int_equal(docker_stream_feed(&st, big + 4096, n - 4096, count_obj, &count),
                     -DOCKER_ETOOBIG);
    docker_stream_reset(&st);
    assert_int_equal(docker_stream_feed(&st, "{]", 2, count_obj, &count), -DOCKER_EJSON);
    docker_stream_reset(&st);
    assert_int_equal(docker_stream_feed(&st, "[1] ", 4, count_obj, &count), -DOCKER_ESHAPE);
    docker_stream_reset(&st);
    /* After a reset, the stream reads again. */
    assert_int_equal(docker_stream_feed(&st, "{} ", 3, count_obj, &count), 0);
    assert_int_equal(count, 2001);
    docker_stream_free(&st);
    free(big);

    /* Objects of the wrong shape. */
    o = json_tokener_parse("{\"Action\":\"create\"}");
    assert_int_equal(docker_json_event(o, &ev), -DOCKER_ESHAPE);
    json_object_put(o);
    o = json_tokener_parse("{\"Type\":\"container\",\"Action\":5}");
    assert_int_equal(docker_json_event(o, &ev), -DOCKER_ESHAPE);
    json_object_put(o);
    o = json_tokener_parse("{\"Type\":\"container\",\"Action\":\"create\",\"Actor\":[]}");
    assert_int_equal(docker_json_event(o, &ev), -DOCKER_ESHAPE);
    json_object_put(o);
    o = json_tokener_parse("[]");
    assert_int_equal(docker_json_event(o, &ev), -DOCKER_ESHAPE);
    json_object_put(o);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_docker_list),   cmocka_unit_test(test_podman_list),
        cmocka_unit_test(test_list_variants), cmocka_unit_test(test_list_malformed),
        cmocka_unit_test(test_list_huge),     cmocka_unit_test(test_events_stream),
        cmocka_unit_test(test_events_bad),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
