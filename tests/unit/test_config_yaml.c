/*
 * test_config_yaml.c - the YAML file of INTERFACE.md, case by case: every
 * key, errors at FILE:LINE naming the route and the key, top-level keys,
 * syntax, duplicates, a missing file, and `ppfwd check`. (Its limits are in
 * test_config_limits.c.)
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <glob.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfgtest.h"
#include "cmd/check.h"
#include "config/config.h"
#include "util/log.h"

/* ---- YAML ------------------------------------------------------------------- */

static const char example[] = "log: {level: info, format: json}\n"
                              "workers: 2\n"
                              "metrics: 127.0.0.1:9100\n"
                              "routes:\n"
                              "  ssh:\n"
                              "    listen: tcp://0.0.0.0:2222\n"
                              "    upstream: [127.0.0.1:22, 127.0.0.2:22]\n"
                              "    accept_proxy: optional\n"
                              "    trusted: [10.0.0.0/8]\n"
                              "    send_proxy: v2\n"
                              "    idle_timeout: 30m\n"
                              "  dns:\n"
                              "    listen: udp4://0.0.0.0:53\n"
                              "    upstream: 127.0.0.1:5353\n";

static void test_yaml_example(void **state)
{
    const struct route_cfg *r;

    (void)state;
    cfgt_load_yaml_ok(example);
    assert_int_equal(cfgt_cfg.log_level, LOG_INFO);
    assert_int_equal(cfgt_cfg.log_format, LOG_FORMAT_JSON);
    assert_int_equal(cfgt_cfg.workers, 2);
    assert_string_equal(cfgt_cfg.metrics, "127.0.0.1:9100");
    assert_int_equal(cfgt_cfg.nroutes, 2);
    r = cfgt_route(0);
    assert_string_equal(r->name, "ssh");
    assert_string_equal(r->listen, "tcp://0.0.0.0:2222");
    assert_int_equal(r->proto, ROUTE_TCP);
    cfgt_check_sa(&r->bind, AF_INET, "0.0.0.0", 2222);
    assert_int_equal(r->nup, 2);
    cfgt_check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 22);
    cfgt_check_sa(&r->up[1].addr, AF_INET, "127.0.0.2", 22);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_OPTIONAL);
    assert_int_equal(r->trusted_all, 0);
    assert_int_equal(r->trusted.n, 1);
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    assert_int_equal(r->idle_timeout_ms, 1800000);
    assert_int_equal(r->connect_timeout_ms, 5000);
    r = cfgt_route(1);
    assert_string_equal(r->name, "dns");
    assert_int_equal(r->proto, ROUTE_UDP);
    assert_int_equal(r->family, AF_INET);
    cfgt_check_sa(&r->bind, AF_INET, "0.0.0.0", 53);
    assert_int_equal(r->nup, 1);
    cfgt_check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 5353);
    assert_int_equal(r->idle_timeout_ms, 300000);
    assert_int_equal(r->send_proxy, SEND_PROXY_OFF);
}

static void test_yaml_every_key(void **state)
{
    const struct route_cfg *r;

    (void)state;
    cfgt_load_yaml_ok("routes:\n"
                      "  web:\n"
                      "    listen: tcp6://[::1]:8443\n"
                      "    upstream:\n"
                      "      - localhost:443\n"
                      "      - '[::1]:444'\n"
                      "    accept_proxy: required\n"
                      "    trusted: 10.0.0.0/8, 192.168.0.0/16\n"
                      "    send_proxy: v2\n"
                      "    tlvs: drop\n"
                      "    authority: example.com\n"
                      "    unique_id: true\n"
                      "    crc32c: on\n"
                      "    allow:\n"
                      "      - 0.0.0.0/0\n"
                      "      - ::/0\n"
                      "    deny: [192.0.2.0/24]\n"
                      "    max_conns: 1000\n"
                      "    balance: source\n"
                      "    check: 10s\n"
                      "    connect_timeout: 1s\n"
                      "    header_timeout: 2s\n"
                      "    idle_timeout: 3m\n");
    r = cfgt_route(0);
    assert_string_equal(r->name, "web");
    assert_int_equal(r->family, AF_INET6);
    cfgt_check_sa(&r->bind, AF_INET6, "::1", 8443);
    assert_int_equal(r->nup, 2);
    cfgt_check_sa(&r->up[1].addr, AF_INET6, "::1", 444);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_REQUIRED);
    assert_int_equal(r->trusted.n, 2);
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    assert_int_equal(r->tlvs_mode, TLVS_DROP);
    assert_string_equal(r->authority, "example.com");
    assert_int_equal(r->unique_id, 1);
    assert_int_equal(r->crc32c, 1);
    assert_int_equal(r->allow.n, 2);
    assert_int_equal(r->deny.n, 1);
    assert_int_equal(r->max_conns, 1000);
    assert_int_equal(r->balance, BALANCE_SOURCE);
    assert_int_equal(r->check_ms, 10000);
    assert_int_equal(r->connect_timeout_ms, 1000);
    assert_int_equal(r->header_timeout_ms, 2000);
    assert_int_equal(r->idle_timeout_ms, 180000);
}

static void test_yaml_errors(void **state)
{
    (void)state;
    cfgt_yaml_fails_at("routes:\n"
                       "  ssh:\n"
                       "    listen: tcp://:2222\n"
                       "    upstream: 127.0.0.1:22\n"
                       "    send_proxy: v3\n",
                       5, "ssh", "send_proxy");
    cfgt_yaml_fails_at("routes:\n"
                       "  ssh:\n"
                       "    listen: tcp://:2222\n"
                       "    upstream: 127.0.0.1:22\n"
                       "\n"
                       "    bogus_key: 1\n",
                       6, "ssh", "bogus_key");
    cfgt_yaml_fails_at("routes:\n"
                       "  a:\n"
                       "    listen: tcp://:2222\n"
                       "    upstream: [127.0.0.1:22, no-such-host.invalid:22]\n",
                       4, "a", "upstream");
    cfgt_yaml_fails_at("routes:\n"
                       "  a:\n"
                       "    listen: tcp://:99999\n"
                       "    upstream: 127.0.0.1:22\n",
                       3, "a", "listen");
    cfgt_yaml_fails_at("routes:\n"
                       "  a:\n"
                       "    listen: tcp://:1\n"
                       "    upstream: 127.0.0.1:22\n"
                       "    max_conns: [1, 2]\n",
                       5, "a", "max_conns");
    cfgt_yaml_fails_at("routes:\n"
                       "  a:\n"
                       "    listen: tcp://:1\n"
                       "    upstream: 127.0.0.1:22\n"
                       "    crc32c: sometimes\n",
                       5, "a", "crc32c");
    cfgt_yaml_fails_at("routes:\n"
                       "  a:\n"
                       "    listen: tcp://:1\n"
                       "    upstream: 127.0.0.1:22\n"
                       "    listen: tcp://:2\n",
                       5, "a", "listen");
    cfgt_yaml_fails_at("routes:\n"
                       "  a:\n"
                       "    listen: tcp://:1\n"
                       "    upstream: 127.0.0.1:22\n"
                       "    send_proxy: v2\n"
                       "    send-proxy: v1\n",
                       6, "a", "send-proxy");
}

static void test_yaml_route_errors(void **state)
{
    (void)state;
    /* The combination is reported at the key that makes it impossible. */
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  dns:\n"
                                    "    listen: udp://:53\n"
                                    "    upstream: 127.0.0.1:5353\n"
                                    "    send_proxy: v1\n"),
                     -1);
    cfgt_expect_error(": route dns: key send_proxy:", NULL);
    cfgt_expect_error(cfgt_path, NULL);
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  a:\n"
                                    "    upstream: 127.0.0.1:22\n"),
                     -1);
    cfgt_expect_error("route a: key listen:", NULL);
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  a:\n"
                                    "    listen: tcp://:1\n"),
                     -1);
    cfgt_expect_error("route a: key upstream:", NULL);
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  a:\n"
                                    "    listen: tcp://:1\n"
                                    "    upstream: []\n"),
                     -1);
    cfgt_expect_error("route a: key upstream:", NULL);
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  a:\n"
                                    "    listen: tcp://:1/127.0.0.1:2\n"
                                    "    upstream: 127.0.0.1:22\n"),
                     -1);
    cfgt_expect_error("route a: key listen:", NULL);
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  a: tcp://:1/127.0.0.1:2\n"),
                     -1);
    cfgt_expect_error("route a:", NULL);
}

static void test_yaml_top_level(void **state)
{
    (void)state;
    cfgt_yaml_fails_at("workers: 0\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n",
                       1, NULL, "workers");
    cfgt_yaml_fails_at(
        "workers: 4097\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1, NULL,
        "workers");
    cfgt_yaml_fails_at("routes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\nworker: 2\n",
                       3, NULL, "worker");
    cfgt_yaml_fails_at(
        "log: {level: loud}\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1,
        NULL, "level");
    cfgt_yaml_fails_at("log:\n  format: xml\nroutes:\n  a: {listen: 'tcp://:1', upstream: "
                       "'127.0.0.1:2'}\n",
                       2, NULL, "format");
    cfgt_yaml_fails_at("log:\n  colour: red\nroutes:\n  a: {listen: 'tcp://:1', upstream: "
                       "'127.0.0.1:2'}\n",
                       2, NULL, "colour");
    cfgt_yaml_fails_at(
        "metrics: [1]\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1, NULL,
        "metrics");
    cfgt_yaml_fails_at(
        "metrics: nowhere\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1, NULL,
        "metrics");
    cfgt_yaml_fails_at("workers: 2\n", 1, NULL, "routes");
    cfgt_yaml_fails_at("routes: [a, b]\n", 1, NULL, "routes");
    cfgt_load_yaml_ok("log: {level: debug, format: text}\nworkers: 4096\n"
                      "routes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n");
    assert_int_equal(cfgt_cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfgt_cfg.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(cfgt_cfg.workers, 4096);
    assert_int_equal(cfgt_cfg.drain_ms, 0); /* not set: the 10 s default */
    cfgt_load_yaml_ok("drain_timeout: 2500ms\n"
                      "routes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n");
    assert_int_equal(cfgt_cfg.drain_ms, 2500);
    cfgt_yaml_fails_at(
        "drain_timeout: 0\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1, NULL,
        "drain_timeout");
    cfgt_yaml_fails_at(
        "drain_timeout: soon\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1,
        NULL, "drain_timeout");
}

/* watch: takes YAML's booleans as the route keys do (crc32c: yes, True):
 * True, yes, on, 1 and False, no, off, 0, in any case. */
static void test_yaml_booleans(void **state)
{
    static const char *const on[] = {"true", "True", "TRUE", "yes", "Yes", "on", "ON", "1"};
    static const char *const off[] = {"false", "False", "no", "NO", "off", "Off", "0"};
    char y[256];

    (void)state;
    for (size_t i = 0; i < sizeof(on) / sizeof(on[0]); i++) {
        snprintf(y, sizeof(y),
                 "watch: %s\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2', "
                 "send_proxy: v2, crc32c: %s}\n",
                 on[i], on[i]);
        cfgt_load_yaml_ok(y);
        assert_int_equal(cfgt_cfg.watch, 1);
        assert_int_equal(cfgt_cfg.routes[0].crc32c, 1);
    }
    for (size_t i = 0; i < sizeof(off) / sizeof(off[0]); i++) {
        snprintf(y, sizeof(y),
                 "watch: %s\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2', "
                 "send_proxy: v2, crc32c: %s}\n",
                 off[i], off[i]);
        cfgt_load_yaml_ok(y);
        assert_int_equal(cfgt_cfg.watch, 0);
        assert_int_equal(cfgt_cfg.routes[0].crc32c, 0);
    }
    cfgt_yaml_fails_at("watch: maybe\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n",
                       1, NULL, "watch");
}

static void test_yaml_syntax(void **state)
{
    char want[256];

    (void)state;
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  a:\n"
                                    "    listen: tcp://:1\n"
                                    "    upstream: [127.0.0.1:2\n"
                                    "    send_proxy: v2\n"
                                    "  b: {\n"),
                     -1);
    snprintf(want, sizeof(want), "%s:", cfgt_path);
    cfgt_expect_error(want, "YAML");
    assert_int_equal(cfgt_load_yaml("routes:\n"
                                    "  a:\n"
                                    "    listen: tcp://:1\n"
                                    "   upstream: 127.0.0.1:2\n"),
                     -1);
    snprintf(want, sizeof(want), "%s:4:", cfgt_path);
    cfgt_expect_error(want, NULL);
    assert_int_equal(cfgt_load_yaml(""), -1);
    assert_true(cfgt_errs.n > 0);
    assert_int_equal(cfgt_load_yaml("just a string\n"), -1);
    assert_true(cfgt_errs.n > 0);
}

static void test_yaml_every_problem(void **state)
{
    (void)state;
    assert_int_equal(cfgt_load_yaml("workers: many\n"
                                    "routes:\n"
                                    "  a:\n"
                                    "    listen: tcp://:1\n"
                                    "    upstream: 127.0.0.1:2\n"
                                    "    balance: random\n"
                                    "    idle_timeout: forever\n"
                                    "  b:\n"
                                    "    listen: udp://:2\n"
                                    "    upstream: 127.0.0.1:2\n"
                                    "    accept_proxy: sometimes\n"),
                     -1);
    cfgt_expect_error(":1: ", "key workers:");
    cfgt_expect_error(":6: route a: key balance:", NULL);
    cfgt_expect_error(":7: route a: key idle_timeout:", NULL);
    cfgt_expect_error(":11: route b: key accept_proxy:", NULL);
    assert_int_equal(cfgt_errs.n, 4);
}

static void test_yaml_duplicates(void **state)
{
    (void)state;
    assert_int_equal(
        cfgt_load_yaml("routes:\n"
                       "  a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"
                       "  b: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"),
        -1);
    cfgt_expect_error("route b: key listen:", NULL);
    assert_int_equal(
        cfgt_load_yaml("routes:\n"
                       "  a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"
                       "  a: {listen: 'tcp://127.0.0.1:2', upstream: '127.0.0.1:9'}\n"),
        -1);
    cfgt_expect_error("route a", NULL);
    /* The same port over TCP and UDP is two sockets. */
    cfgt_load_yaml_ok("routes:\n"
                      "  a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"
                      "  b: {listen: 'udp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n");
}

static void test_yaml_missing_file(void **state)
{
    (void)state;
    snprintf(cfgt_path, sizeof(cfgt_path), "%s/none.yaml", cfgt_tmpdir);
    assert_int_equal(cfg_load_file(&cfgt_cfg, cfgt_path, &cfgt_errs), -1);
    cfgt_expect_error(cfgt_path, NULL);
}

/* ---- ppfwd check -------------------------------------------------------------- */

/* Runs `ppfwd check` in-process, its stdout and stderr sent to /dev/null. */
static int run_check(const char *a1, const char *a2)
{
    char cmd[] = "check";
    char *argv[] = {cmd, (char *)(uintptr_t)a1, (char *)(uintptr_t)a2, NULL};
    int out = dup(1), err = dup(2), null = open("/dev/null", O_WRONLY), rc;

    assert_true(out >= 0 && err >= 0 && null >= 0);
    fflush(stdout);
    dup2(null, 1);
    dup2(null, 2);
    rc = check_main(a2 ? 3 : 2, argv, NULL, 0, NULL);
    fflush(stdout);
    dup2(out, 1);
    dup2(err, 2);
    close(out);
    close(err);
    close(null);
    return rc;
}

static void test_check(void **state)
{
    (void)state;
    cfgt_write_file(example);
    assert_int_equal(run_check("-c", cfgt_path), 0);
    cfgt_write_file(
        "routes:\n  a: {listen: 'udp://:1', upstream: '127.0.0.1:2', send_proxy: v1}\n");
    assert_int_equal(run_check("-c", cfgt_path), 1);
    assert_int_equal(run_check("tcp://:1/127.0.0.1:2", NULL), 0);
    assert_int_equal(run_check("tcp://:1/127.0.0.1:2?x=y", NULL), 1);
    /* Keys that mean nothing on UDP, in a file and in a URL. */
    cfgt_write_file("routes:\n  a: {listen: 'udp://:1', upstream: '127.0.0.1:2', check: 1s}\n");
    assert_int_equal(run_check("-c", cfgt_path), 1);
    assert_int_equal(run_check("udp://:1/127.0.0.1:2?header-timeout=1s", NULL), 1);
    assert_int_equal(run_check("udp://:1/127.0.0.1:2?idle-timeout=1s", NULL), 0);
}

/* Every example shipped (run from the top of the tree, as make test does)
 * still loads: the keys refused on UDP must not break one. */
static void test_examples(void **state)
{
    glob_t g;

    (void)state;
    assert_int_equal(glob("examples/*.yaml", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 5);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        cfg_free(&cfgt_cfg);
        if (cfg_load_file(&cfgt_cfg, g.gl_pathv[i], &cfgt_errs) != 0) {
            cfgt_print_errors();
            globfree(&g);
            fail_msg("refused");
        }
        assert_true(cfgt_cfg.nroutes > 0);
    }
    globfree(&g);
}

/* The YAML spelling and the line of the key that means nothing on UDP. */
static void test_yaml_tcp_only_keys(void **state)
{
    (void)state;
    cfgt_yaml_fails_at("routes:\n"
                       "  dns:\n"
                       "    listen: udp://127.0.0.1:53\n"
                       "    upstream: 127.0.0.1:5353\n"
                       "    connect_timeout: 1s\n"
                       "    check: 10s\n"
                       "    header_timeout: 1s\n",
                       5, "dns", "connect_timeout");
    assert_int_equal(cfgt_errs.n, 3);
    cfgt_expect_error(":6: route dns: key check: means nothing on a UDP route (TCP only)", NULL);
    cfgt_expect_error(":7: route dns: key header_timeout:", "TCP only");
    cfgt_load_yaml_ok("routes:\n"
                      "  web: {listen: 'tcp://127.0.0.1:80', upstream: '127.0.0.1:1', check: 10s,\n"
                      "        connect_timeout: 1s, header_timeout: 1s}\n"
                      "  dns: {listen: 'udp://127.0.0.1:53', upstream: '127.0.0.1:1',\n"
                      "        idle_timeout: 10s}\n");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_yaml_example, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_every_key, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_errors, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_route_errors, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_top_level, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_booleans, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_syntax, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_every_problem, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_duplicates, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_missing_file, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_examples, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_yaml_tcp_only_keys, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_check, cfgt_setup, cfgt_teardown),
    };

    return cmocka_run_group_tests(tests, cfgt_group_setup, cfgt_group_teardown);
}
