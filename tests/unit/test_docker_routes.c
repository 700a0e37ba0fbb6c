/*
 * test_docker_routes.c - containers' labels into routes, from recorded API
 * answers through the same parsing code the provider runs: the upstream
 * host "container" of a running container (IPv4 and IPv6), routes of a
 * stopped one, refusals (bad URL, unknown key, unknown label, bad name,
 * no network address, a port another route holds) beside routes that
 * serve, a running route keeping its port against a newcomer, the
 * composition with file routes, and each problem logged once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "provider/docker_routes.h"
#include "util/log.h"

static char *vector(const char *name)
{
    const char *dir = getenv("PP_VECTORS") ? getenv("PP_VECTORS") : "tests/vectors";
    char path[512], *buf = NULL;
    size_t cap = 0;
    FILE *f;

    snprintf(path, sizeof(path), "%s/docker/%s", dir, name);
    f = fopen(path, "rb");
    assert_non_null(f);
    assert_true(getdelim(&buf, &cap, '\0', f) > 0);
    fclose(f);
    return buf;
}

static void list_of(const char *json, struct docker_list *l)
{
    assert_int_equal(docker_json_list(json, strlen(json), l), 0);
}

static const struct route_cfg *route(const struct docker_set *s, const char *name)
{
    for (size_t i = 0; i < s->cfg.nroutes; i++) {
        if (strcmp(s->cfg.routes[i].name, name) == 0)
            return &s->cfg.routes[i];
    }
    return NULL;
}

/* The problem about label of container, or NULL. */
static const char *problem(const struct docker_problems *p, const char *container,
                           const char *label)
{
    for (size_t i = 0; i < p->n; i++) {
        if (strcmp(p->v[i].at.container, container) == 0 && strcmp(p->v[i].at.label, label) == 0)
            return p->v[i].error;
    }
    return NULL;
}

static void test_recorded(void **state)
{
    char *json = vector("containers-docker.json");
    struct docker_problems p = {0};
    struct docker_list l;
    struct docker_set s;
    const struct route_cfg *r;

    (void)state;
    list_of(json, &l);
    assert_int_equal(docker_set_build(&l, NULL, &s, &p), 0);
    /* web: the container's first network; dns mixes it with a fixed one. */
    r = route(&s, "web.ssh");
    assert_non_null(r);
    assert_int_equal(r->nup, 1);
    assert_string_equal(r->up[0].name, "172.18.0.5:22");
    assert_string_equal(r->listen, "tcp://127.0.0.1:2222");
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    r = route(&s, "web.dns");
    assert_non_null(r);
    assert_int_equal(r->proto, ROUTE_UDP);
    assert_int_equal(r->nup, 2);
    assert_string_equal(r->up[0].name, "172.18.0.5:53");
    assert_string_equal(r->up[1].name, "127.0.0.1:53");
    assert_non_null(route(&s, "web.fixed"));
    /* v6only: an IPv6 address goes in brackets. */
    r = route(&s, "v6only.app");
    assert_non_null(r);
    assert_string_equal(r->up[0].name, "[fd00:db8::5]:443");
    /* stopped: the fixed route exists, the "container" one waits. */
    assert_non_null(route(&s, "stopped.admin"));
    assert_null(route(&s, "stopped.db"));
    assert_null(problem(&p, "stopped", "ppfwd.route.db"));
    /* hostnet runs without an address: refused, and said why. */
    assert_null(route(&s, "hostnet.web"));
    assert_non_null(strstr(problem(&p, "hostnet", "ppfwd.route.web"), "no network address"));
    assert_int_equal(p.n, 1);
    assert_int_equal(s.cfg.nroutes, 5);
    /* Sorted by name, each with its origin. */
    for (size_t i = 1; i < s.cfg.nroutes; i++)
        assert_true(strcmp(s.cfg.routes[i - 1].name, s.cfg.routes[i].name) < 0);
    assert_string_equal(s.origin[0].container, "stopped");
    assert_string_equal(s.origin[0].label, "ppfwd.route.admin");
    docker_problems_free(&p);
    docker_set_free(&s);
    docker_list_free(&l);
    free(json);
}

#define C(name, labels)                                                                            \
    "{\"Id\":\"id-" name "\",\"Names\":[\"/" name "\"],\"State\":\"created\",\"Labels\":{" labels  \
    "}}"

static void test_bad_labels(void **state)
{
    struct docker_problems p = {0};
    struct docker_list l;
    struct docker_set s;

    (void)state;
    list_of("[" C("app", "\"ppfwd.route.good\":\"tcp://127.0.0.1:7001/127.0.0.1:1\","
                         "\"ppfwd.route.badurl\":\"tcp://127.0.0.1:7002\","
                         "\"ppfwd.route.badkey\":\"tcp://127.0.0.1:7003/127.0.0.1:1?colour=red\","
                         "\"ppfwd.route.badval\":\"tcp://127.0.0.1:7004/127.0.0.1:1?send-proxy=v9\","
                         "\"ppfwd.route.\":\"tcp://127.0.0.1:7005/127.0.0.1:1\","
                         "\"ppfwd.route.a/b\":\"tcp://127.0.0.1:7006/127.0.0.1:1\","
                         "\"ppfwd.enable\":\"true\","
                         "\"ppfwd.route.udp1\":\"udp://127.0.0.1:7007/127.0.0.1:1?send-proxy=v1\","
                         "\"com.other\":\"x\"") "]",
            &l);
    assert_int_equal(docker_set_build(&l, NULL, &s, &p), 0);
    assert_int_equal(s.cfg.nroutes, 1);
    assert_string_equal(s.cfg.routes[0].name, "app.good");
    assert_int_equal(p.n, 7);
    assert_non_null(strstr(problem(&p, "app", "ppfwd.route.badurl"), "expected PROTO://"));
    assert_non_null(strstr(problem(&p, "app", "ppfwd.route.badkey"), "key colour: unknown key"));
    assert_non_null(strstr(problem(&p, "app", "ppfwd.route.badval"), "key send-proxy"));
    assert_non_null(strstr(problem(&p, "app", "ppfwd.route."), "bad route name"));
    assert_non_null(strstr(problem(&p, "app", "ppfwd.route.a/b"), "bad route name"));
    assert_non_null(strstr(problem(&p, "app", "ppfwd.enable"), "unknown label"));
    assert_non_null(strstr(problem(&p, "app", "ppfwd.route.udp1"), "v1 cannot carry UDP"));
    for (size_t i = 0; i < p.n; i++) {
        if (strcmp(p.v[i].at.label, "ppfwd.route.badurl") == 0)
            assert_string_equal(p.v[i].at.value, "tcp://127.0.0.1:7002");
    }
    docker_problems_free(&p);
    docker_set_free(&s);
    docker_list_free(&l);
}

/* Two containers on one port: the first (by name) serves; but a route that
 * already serves keeps its port against a newcomer sorting before it. */
static void test_port_conflicts(void **state)
{
    static const char one[] = "[" C("b", "\"ppfwd.route.x\":\"tcp://127.0.0.1:7100/127.0.0.1:1\"") "]";
    static const char two[] =
        "[" C("a", "\"ppfwd.route.y\":\"tcp://127.0.0.1:7100/127.0.0.1:2\",\"ppfwd.route.z\":"
                   "\"tcp://127.0.0.1:7101/127.0.0.1:2\"") "," C("b", "\"ppfwd.route.x\":"
                                                                  "\"tcp://127.0.0.1:7100/127.0.0.1:1\"") "]";
    struct docker_problems p = {0};
    struct docker_list l1, l2;
    struct docker_set s1, s2, s3;

    (void)state;
    list_of(one, &l1);
    list_of(two, &l2);
    assert_int_equal(docker_set_build(&l2, NULL, &s1, &p), 0);
    assert_non_null(route(&s1, "a.y"));
    assert_null(route(&s1, "b.x"));
    assert_non_null(strstr(problem(&p, "b", "ppfwd.route.x"), "held by route a.y"));
    docker_problems_free(&p);
    docker_set_free(&s1);

    assert_int_equal(docker_set_build(&l1, NULL, &s1, &p), 0);
    assert_int_equal(p.n, 0);
    assert_int_equal(docker_set_build(&l2, &s1, &s2, &p), 0);
    assert_non_null(route(&s2, "b.x"));
    assert_non_null(route(&s2, "a.z"));
    assert_null(route(&s2, "a.y"));
    assert_non_null(strstr(problem(&p, "a", "ppfwd.route.y"), "held by route b.x"));
    /* Same containers, same routes: equal sets (no reload). */
    assert_int_equal(docker_set_build(&l2, &s2, &s3, &p), 0);
    assert_int_equal(docker_set_equal(&s2, &s3), 1);
    assert_int_equal(docker_set_equal(&s1, &s2), 0);
    docker_problems_free(&p);
    docker_set_free(&s1);
    docker_set_free(&s2);
    docker_set_free(&s3);
    docker_list_free(&l1);
    docker_list_free(&l2);
}

/* Names may meet: container "a.b" label "c" and container "a" label "b.c". */
static void test_name_conflict(void **state)
{
    struct docker_problems p = {0};
    struct docker_list l;
    struct docker_set s;

    (void)state;
    list_of("[" C("a", "\"ppfwd.route.b.c\":\"tcp://127.0.0.1:7200/127.0.0.1:1\"") "," C(
                "a.b", "\"ppfwd.route.c\":\"tcp://127.0.0.1:7201/127.0.0.1:1\"") "]",
            &l);
    assert_int_equal(docker_set_build(&l, NULL, &s, &p), 0);
    assert_int_equal(s.cfg.nroutes, 1);
    assert_string_equal(s.origin[0].container, "a");
    assert_non_null(strstr(problem(&p, "a.b", "ppfwd.route.c"), "a route of this name exists"));
    docker_problems_free(&p);
    docker_set_free(&s);
    docker_list_free(&l);
}

/* Containers without labels, and no container at all: no route. */
static void test_empty(void **state)
{
    struct docker_problems p = {0};
    struct docker_list l;
    struct docker_set s;

    (void)state;
    list_of("[" C("a", "\"other\":\"x\"") "," C("b", "") "]", &l);
    assert_int_equal(docker_set_build(&l, NULL, &s, &p), 0);
    assert_int_equal(s.cfg.nroutes, 0);
    assert_int_equal(p.n, 0);
    docker_set_free(&s);
    docker_list_free(&l);
    list_of("[]", &l);
    assert_int_equal(docker_set_build(&l, NULL, &s, &p), 0);
    assert_int_equal(s.cfg.nroutes, 0);
    docker_set_free(&s);
    docker_list_free(&l);
}

/* YAML `docker: SOCKET`: then the file may have no route; without it, it
 * may not; a value that is not a string is refused. */
static int load_yaml(const char *text, struct cfg *c, struct cfg_errors *e)
{
    char path[] = "/tmp/test_docker_yaml.XXXXXX";
    int fd = mkstemp(path), rc;

    assert_true(fd != -1);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    memset(c, 0, sizeof(*c));
    memset(e, 0, sizeof(*e));
    rc = cfg_load_file(c, path, e);
    unlink(path);
    return rc;
}

static void test_yaml_docker_key(void **state)
{
    struct cfg c;
    struct cfg_errors e;

    (void)state;
    assert_int_equal(load_yaml("docker: unix:///run/docker.sock\n", &c, &e), 0);
    assert_string_equal(c.docker, "unix:///run/docker.sock");
    assert_int_equal(c.nroutes, 0);
    cfg_free(&c);
    assert_int_equal(load_yaml("docker: /run/podman/podman.sock\nroutes:\n  a:\n"
                               "    listen: tcp://127.0.0.1:7400\n    upstream: 127.0.0.1:1\n",
                               &c, &e),
                     0);
    assert_string_equal(c.docker, "/run/podman/podman.sock");
    assert_int_equal(c.nroutes, 1);
    cfg_free(&c);
    assert_int_equal(load_yaml("workers: 2\n", &c, &e), -1);
    assert_non_null(strstr(e.msg[0], "routes"));
    cfg_errors_free(&e);
    cfg_free(&c);
    assert_int_equal(load_yaml("docker: [a, b]\n", &c, &e), -1);
    assert_non_null(strstr(e.msg[0], "key docker: expected the API socket"));
    assert_null(c.docker);
    cfg_errors_free(&e);
    cfg_free(&c);
}

static int refuse_7302(void *arg, const struct route_cfg *rc)
{
    (*(int *)arg)++;
    return strstr(rc->listen, ":7302") ? -EADDRINUSE : 0;
}

/* File routes come first; a docker route on their port, or on a port held
 * outside ppfwd, is refused and the others run. */
static void test_compose(void **state)
{
    static char url[] = "tcp://127.0.0.1:7300/127.0.0.1:1";
    char *urls[] = {url};
    struct cfg base = {0};
    struct cfg_errors errs = {0};
    struct docker_problems p = {0};
    struct docker_list l;
    struct docker_set s;
    const struct route_cfg *out[8];
    int asked = 0;
    size_t n;

    (void)state;
    assert_int_equal(cfg_from_urls(&base, urls, 1, &errs), 0);
    list_of("[" C("c", "\"ppfwd.route.on-file\":\"tcp://127.0.0.1:7300/127.0.0.1:2\","
                       "\"ppfwd.route.ok\":\"tcp://127.0.0.1:7301/127.0.0.1:2\","
                       "\"ppfwd.route.taken\":\"tcp://127.0.0.1:7302/127.0.0.1:2\"") "]",
            &l);
    assert_int_equal(docker_set_build(&l, NULL, &s, &p), 0);
    assert_int_equal(s.cfg.nroutes, 3);
    n = docker_compose(&base, &s, refuse_7302, &asked, out, &p);
    assert_int_equal(n, 2);
    assert_ptr_equal(out[0], &base.routes[0]);
    assert_string_equal(out[1]->name, "c.ok");
    assert_int_equal(asked, 2); /* not asked for the one refused before */
    assert_int_equal(p.n, 2);
    assert_non_null(strstr(problem(&p, "c", "ppfwd.route.on-file"),
                           "held by route tcp://127.0.0.1:7300/127.0.0.1:1"));
    assert_non_null(strstr(problem(&p, "c", "ppfwd.route.taken"), "Address already in use"));
    /* Without a set, the base alone. */
    assert_int_equal(docker_compose(&base, NULL, NULL, NULL, out, &p), 1);
    docker_problems_free(&p);
    docker_set_free(&s);
    docker_list_free(&l);
    cfg_free(&base);
}

/* Counts the lines written to stderr while fn runs. */
static int log_lines(void (*fn)(void *), void *arg)
{
    char path[] = "/tmp/test_docker_routes.XXXXXX", buf[4096];
    int fd = mkstemp(path), saved = dup(STDERR_FILENO), lines = 0;
    ssize_t n;

    assert_true(fd != -1 && saved != -1);
    unlink(path);
    assert_true(dup2(fd, STDERR_FILENO) != -1);
    fn(arg);
    dup2(saved, STDERR_FILENO);
    close(saved);
    assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
    while ((n = read(fd, buf, sizeof(buf))) > 0) {
        for (ssize_t i = 0; i < n; i++)
            lines += buf[i] == '\n';
    }
    close(fd);
    return lines;
}

struct log_arg {
    struct docker_seen *seen;
    struct docker_problems *p;
};

static void do_log(void *arg)
{
    struct log_arg *a = arg;

    docker_problems_log(a->seen, a->p);
}

static void test_logged_once(void **state)
{
    struct docker_problems p = {0}, none = {0};
    struct docker_seen seen = {0};
    struct docker_list l;
    struct docker_set s;
    struct log_arg a = {&seen, &p};

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    list_of("[" C("x", "\"ppfwd.route.a\":\"bad\",\"ppfwd.route.b\":\"worse\"") "]", &l);
    assert_int_equal(docker_set_build(&l, NULL, &s, &p), 0);
    assert_int_equal(p.n, 2);
    assert_int_equal(log_lines(do_log, &a), 2);
    assert_int_equal(log_lines(do_log, &a), 0); /* the same problems again */
    a.p = &none;
    assert_int_equal(log_lines(do_log, &a), 0);
    a.p = &p;
    assert_int_equal(log_lines(do_log, &a), 2); /* gone, then back */
    docker_seen_free(&seen);
    docker_problems_free(&p);
    docker_set_free(&s);
    docker_list_free(&l);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_recorded),      cmocka_unit_test(test_bad_labels),
        cmocka_unit_test(test_port_conflicts), cmocka_unit_test(test_name_conflict),
        cmocka_unit_test(test_compose),        cmocka_unit_test(test_logged_once),
        cmocka_unit_test(test_empty),         cmocka_unit_test(test_yaml_docker_key),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
