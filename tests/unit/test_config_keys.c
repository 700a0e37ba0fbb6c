/*
 * test_config_keys.c - routes as operators write them, case by case: the URLs
 * and the YAML of INTERFACE.md, every protocol, every key with good and bad
 * values, the defaults, durations, duplicates, `ppfwd check`. (test_config.c
 * holds the first, broader cases; test_cidr.c the networks.)
 *
 * A bad input must come back as an error that names the key (and in a file,
 * FILE:LINE and the route), never as a silent default. Every address used
 * here is numeric or "localhost", and the unresolvable names end in .invalid
 * (RFC 6761), so the tests run offline and never wait on DNS.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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

#include "cmd/check.h"
#include "config/config.h"
#include "util/log.h"

/* The loaded config and its errors: freed by the teardown, so that a failed
 * assertion (a longjmp) leaves no leak report. */
static struct cfg cfg;
static struct cfg_errors errs;
static char tmpdir[] = "/tmp/test_config_keys.XXXXXX";
static char path[sizeof(tmpdir) + 32];

static int setup(void **state)
{
    (void)state;
    memset(&cfg, 0, sizeof(cfg));
    memset(&errs, 0, sizeof(errs));
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    cfg_free(&cfg);
    cfg_errors_free(&errs);
    unlink(path);
    return 0;
}

static int group_setup(void **state)
{
    (void)state;
    return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int group_teardown(void **state)
{
    (void)state;
    return rmdir(tmpdir);
}

static void print_errors(void)
{
    for (size_t i = 0; i < errs.n; i++)
        print_message("  error: %s\n", errs.msg[i]);
}

/* Loads one URL (replacing what a previous call loaded) and returns rc. */
static int load_url(const char *url)
{
    char *urls[1];

    cfg_free(&cfg);
    cfg_errors_free(&errs);
    urls[0] = (char *)(uintptr_t)url;
    return cfg_from_urls(&cfg, urls, 1, &errs);
}

static void load_url_ok(const char *url)
{
    int rc = load_url(url);

    if (rc != 0) {
        print_errors();
        fail_msg("refused: %s", url);
    }
    assert_int_equal(errs.n, 0);
    assert_int_equal(cfg.nroutes, 1);
}

/* 1 if some message contains every given substring (NULL-terminated). */
static int has_error(const char *a, const char *b)
{
    for (size_t i = 0; i < errs.n; i++) {
        if (strstr(errs.msg[i], a) != NULL && (b == NULL || strstr(errs.msg[i], b) != NULL))
            return 1;
    }
    return 0;
}

static void expect_error(const char *a, const char *b)
{
    if (!has_error(a, b)) {
        print_message("no error with '%s' and '%s' among:\n", a, b ? b : "");
        print_errors();
        fail();
    }
}

/* The URL fails, and a message names the key (URL spelling). */
static void url_fails(const char *url, const char *key)
{
    char want[64];

    if (load_url(url) != -1)
        fail_msg("accepted: %s", url);
    snprintf(want, sizeof(want), "key %s:", key);
    expect_error(want, NULL);
}

static void write_file(const char *text)
{
    FILE *fp;

    snprintf(path, sizeof(path), "%s/ppfwd.yaml", tmpdir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

static int load_yaml(const char *text)
{
    cfg_free(&cfg);
    cfg_errors_free(&errs);
    write_file(text);
    return cfg_load_file(&cfg, path, &errs);
}

static void load_yaml_ok(const char *text)
{
    int rc = load_yaml(text);

    if (rc != 0)
        print_errors();
    assert_int_equal(rc, 0);
    assert_int_equal(errs.n, 0);
}

/* The file fails with a message "FILE:LINE: route ROUTE: key KEY:". */
static void yaml_fails_at(const char *text, unsigned line, const char *route, const char *key)
{
    char want[256], tail[128];

    assert_int_equal(load_yaml(text), -1);
    snprintf(want, sizeof(want), "%s:%u: ", path, line);
    if (route != NULL && key != NULL)
        snprintf(tail, sizeof(tail), "route %s: key %s:", route, key);
    else if (route != NULL)
        snprintf(tail, sizeof(tail), "route %s:", route);
    else
        snprintf(tail, sizeof(tail), "key %s:", key);
    expect_error(want, tail);
}

static const struct route_cfg *route(size_t i)
{
    assert_true(i < cfg.nroutes);
    return &cfg.routes[i];
}

static void check_sa(const struct sockaddr_storage *ss, int family, const char *ip, int port)
{
    const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;
    char buf[INET6_ADDRSTRLEN];

    assert_int_equal(ss->ss_family, family);
    if (family == AF_INET) {
        assert_non_null(inet_ntop(AF_INET, &sin->sin_addr, buf, sizeof(buf)));
        assert_int_equal(ntohs(sin->sin_port), port);
    } else {
        assert_non_null(inet_ntop(AF_INET6, &sin6->sin6_addr, buf, sizeof(buf)));
        assert_int_equal(ntohs(sin6->sin6_port), port);
    }
    assert_string_equal(buf, ip);
}

/* ---- URLs ------------------------------------------------------------------- */

static void test_url_examples(void **state)
{
    const struct route_cfg *r;

    (void)state;
    load_url_ok("tcp://:2222/127.0.0.1:22?send-proxy=v2");
    r = route(0);
    assert_string_equal(r->name, "tcp://:2222/127.0.0.1:22?send-proxy=v2");
    assert_int_equal(r->proto, ROUTE_TCP);
    assert_int_equal(r->family, AF_UNSPEC);
    /* Empty BIND on tcp: [::], which the listener makes dual-stack. */
    check_sa(&r->bind, AF_INET6, "::", 2222);
    assert_int_equal(r->bindlen, sizeof(struct sockaddr_in6));
    assert_int_equal(r->nup, 1);
    assert_string_equal(r->up[0].name, "127.0.0.1:22");
    check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 22);
    assert_int_equal(r->up[0].addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);

    load_url_ok("udp://127.0.0.1:5353/127.0.0.1:53");
    r = route(0);
    assert_int_equal(r->proto, ROUTE_UDP);
    check_sa(&r->bind, AF_INET, "127.0.0.1", 5353);
    check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 53);

    load_url_ok("tcp://[::1]:8080/[::1]:80");
    r = route(0);
    check_sa(&r->bind, AF_INET6, "::1", 8080);
    check_sa(&r->up[0].addr, AF_INET6, "::1", 80);
}

static void test_url_protocols(void **state)
{
    static const struct {
        const char *url;
        enum route_proto proto;
        int family, bind_family;
        const char *bind;
    } cases[] = {
        {"tcp://:80/127.0.0.1:1", ROUTE_TCP, AF_UNSPEC, AF_INET6, "::"},
        {"tcp4://:80/127.0.0.1:1", ROUTE_TCP, AF_INET, AF_INET, "0.0.0.0"},
        {"tcp6://:80/127.0.0.1:1", ROUTE_TCP, AF_INET6, AF_INET6, "::"},
        {"udp://:80/127.0.0.1:1", ROUTE_UDP, AF_UNSPEC, AF_INET6, "::"},
        {"udp4://:80/127.0.0.1:1", ROUTE_UDP, AF_INET, AF_INET, "0.0.0.0"},
        {"udp6://:80/127.0.0.1:1", ROUTE_UDP, AF_INET6, AF_INET6, "::"},
        {"tcp://0.0.0.0:80/127.0.0.1:1", ROUTE_TCP, AF_UNSPEC, AF_INET, "0.0.0.0"},
        {"tcp://[::]:80/127.0.0.1:1", ROUTE_TCP, AF_UNSPEC, AF_INET6, "::"},
        {"tcp4://127.0.0.1:80/127.0.0.1:1", ROUTE_TCP, AF_INET, AF_INET, "127.0.0.1"},
        {"tcp6://[::1]:80/127.0.0.1:1", ROUTE_TCP, AF_INET6, AF_INET6, "::1"},
        {"tcp4://localhost:80/127.0.0.1:1", ROUTE_TCP, AF_INET, AF_INET, "127.0.0.1"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        load_url_ok(cases[i].url);
        assert_int_equal(route(0)->proto, cases[i].proto);
        assert_int_equal(route(0)->family, cases[i].family);
        check_sa(&route(0)->bind, cases[i].bind_family, cases[i].bind, 80);
    }
}

static void test_url_listen_spelling(void **state)
{
    (void)state;
    load_url_ok("tcp4://127.0.0.1:80/127.0.0.1:1?max-conns=3");
    assert_string_equal(route(0)->listen, "tcp4://127.0.0.1:80");
    load_url_ok("tcp://[::1]:80/[::1]:1");
    assert_string_equal(route(0)->listen, "tcp://[::1]:80");
}

static void test_url_upstreams(void **state)
{
    const struct route_cfg *r;

    (void)state;
    load_url_ok("tcp://:80/127.0.0.1:81,[::1]:82,localhost:83");
    r = route(0);
    assert_int_equal(r->nup, 3);
    assert_string_equal(r->up[0].name, "127.0.0.1:81");
    assert_string_equal(r->up[1].name, "[::1]:82");
    assert_string_equal(r->up[2].name, "localhost:83");
    check_sa(&r->up[1].addr, AF_INET6, "::1", 82);
    assert_true(r->up[2].addr.ss_family == AF_INET || r->up[2].addr.ss_family == AF_INET6);
    assert_int_not_equal(r->up[2].addrlen, 0);
    /* The upstream's family does not follow the listener's. */
    load_url_ok("tcp6://[::1]:80/127.0.0.1:81");
    check_sa(&route(0)->up[0].addr, AF_INET, "127.0.0.1", 81);
}

static void test_defaults(void **state)
{
    const struct route_cfg *r;

    (void)state;
    load_url_ok("tcp://:80/127.0.0.1:1");
    r = route(0);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_OFF);
    assert_int_equal(r->trusted_all, 1);
    assert_int_equal(r->trusted.n, 0);
    assert_int_equal(r->send_proxy, SEND_PROXY_OFF);
    assert_int_equal(r->tlvs_pass, 1);
    assert_null(r->authority);
    assert_int_equal(r->unique_id, 0);
    assert_int_equal(r->crc32c, 0);
    assert_int_equal(r->allow_all, 1);
    assert_int_equal(r->allow.n, 0);
    assert_int_equal(r->deny.n, 0);
    assert_int_equal(r->max_conns, 0);
    assert_int_equal(r->balance, BALANCE_ROUNDROBIN);
    assert_int_equal(r->check_ms, 0);
    assert_int_equal(r->connect_timeout_ms, 5000);
    assert_int_equal(r->header_timeout_ms, 5000);
    assert_int_equal(r->idle_timeout_ms, 3600000);
    assert_int_equal(cfg.log_level, -1);
    assert_int_equal(cfg.log_format, -1);
    assert_int_equal(cfg.workers, 0);
    assert_null(cfg.metrics);

    load_url_ok("udp://:80/127.0.0.1:1");
    assert_int_equal(route(0)->idle_timeout_ms, 300000);
    load_url_ok("udp://:80/127.0.0.1:1?idle-timeout=1h");
    assert_int_equal(route(0)->idle_timeout_ms, 3600000);
}

static void test_url_keys_valid(void **state)
{
    const struct route_cfg *r;

    (void)state;
    load_url_ok("tcp://:80/127.0.0.1:1?accept-proxy=optional&trusted=10.0.0.0/8,::1"
                "&send-proxy=v2&tlvs=drop&authority=example.com&unique-id=on&crc32c=true"
                "&allow=192.168.0.0/16&deny=192.168.1.0/24,2001:db8::/32&max-conns=100"
                "&balance=leastconn&check=2s&connect-timeout=500ms&header-timeout=3s"
                "&idle-timeout=30m");
    r = route(0);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_OPTIONAL);
    assert_int_equal(r->trusted_all, 0);
    assert_int_equal(r->trusted.n, 2);
    assert_int_equal(r->trusted.v[0].family, AF_INET);
    assert_int_equal(r->trusted.v[1].family, AF_INET6);
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    assert_int_equal(r->tlvs_pass, 0);
    assert_string_equal(r->authority, "example.com");
    assert_int_equal(r->unique_id, 1);
    assert_int_equal(r->crc32c, 1);
    assert_int_equal(r->allow_all, 0);
    assert_int_equal(r->allow.n, 1);
    assert_int_equal(r->deny.n, 2);
    assert_int_equal(r->max_conns, 100);
    assert_int_equal(r->balance, BALANCE_LEASTCONN);
    assert_int_equal(r->check_ms, 2000);
    assert_int_equal(r->connect_timeout_ms, 500);
    assert_int_equal(r->header_timeout_ms, 3000);
    assert_int_equal(r->idle_timeout_ms, 1800000);

    load_url_ok("tcp://:80/127.0.0.1:1?accept-proxy=required&send-proxy=v1&balance=source"
                "&tlvs=pass&unique-id=off&crc32c=false");
    r = route(0);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_REQUIRED);
    assert_int_equal(r->send_proxy, SEND_PROXY_V1);
    assert_int_equal(r->balance, BALANCE_SOURCE);
    assert_int_equal(r->tlvs_pass, 1);
    assert_int_equal(r->unique_id, 0);
    assert_int_equal(r->crc32c, 0);
    load_url_ok("tcp://:80/127.0.0.1:1?accept-proxy=off&send-proxy=off&balance=roundrobin");
    assert_int_equal(route(0)->accept_proxy, ACCEPT_PROXY_OFF);
    assert_int_equal(route(0)->send_proxy, SEND_PROXY_OFF);
}

static void test_url_keys_invalid(void **state)
{
    static const struct {
        const char *query, *key;
    } cases[] = {
        {"accept-proxy=yes", "accept-proxy"},
        {"accept-proxy=", "accept-proxy"},
        {"accept-proxy=OPTIONAL", "accept-proxy"},
        {"trusted=10.0.0.0/33", "trusted"},
        {"trusted=not-a-network", "trusted"},
        {"trusted=", "trusted"},
        {"send-proxy=v3", "send-proxy"},
        {"send-proxy=2", "send-proxy"},
        {"tlvs=keep&send-proxy=v2", "tlvs"},
        {"authority=&send-proxy=v2", "authority"},
        {"unique-id=maybe&send-proxy=v2", "unique-id"},
        {"crc32c=2&send-proxy=v2", "crc32c"},
        {"allow=10.0.0.1/8x", "allow"},
        {"allow=::1/129", "allow"},
        {"deny=300.0.0.0/8", "deny"},
        {"deny=10.0.0.0/8,bogus", "deny"},
        {"max-conns=0", "max-conns"},
        {"max-conns=-1", "max-conns"},
        {"max-conns=ten", "max-conns"},
        {"max-conns=99999999999999999999", "max-conns"},
        {"balance=random", "balance"},
        {"check=soon", "check"},
        {"connect-timeout=5x", "connect-timeout"},
        {"header-timeout=-5s", "header-timeout"},
        {"idle-timeout=1d", "idle-timeout"},
        {"idle-timeout=", "idle-timeout"},
        {"no-such-key=1", "no-such-key"},
        {"send-proxy", "send-proxy"},
    };
    char url[256];

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        snprintf(url, sizeof(url), "tcp://:80/127.0.0.1:1?%s", cases[i].query);
        url_fails(url, cases[i].key);
        /* The message names the route too. */
        expect_error(url, NULL);
    }
}

static void test_url_bad_shape(void **state)
{
    (void)state;
    url_fails("tcp://:0/127.0.0.1:1", "listen");
    url_fails("tcp://:65536/127.0.0.1:1", "listen");
    url_fails("tcp://:x/127.0.0.1:1", "listen");
    url_fails("tcp://127.0.0.1/127.0.0.1:1", "listen");
    url_fails("sctp://:80/127.0.0.1:1", "listen");
    url_fails("tcp://::1:80/127.0.0.1:1", "listen");
    url_fails("tcp4://[::1]:80/127.0.0.1:1", "listen");
    url_fails("tcp6://127.0.0.1:80/127.0.0.1:1", "listen");
    url_fails("tcp://:80/", "upstream");
    url_fails("tcp://:80/127.0.0.1", "upstream");
    url_fails("tcp://:80/127.0.0.1:0", "upstream");
    url_fails("tcp://:80/127.0.0.1:65536", "upstream");
    url_fails("tcp://:80/::1:80", "upstream");
    url_fails("tcp://:80/?send-proxy=v2", "upstream");
    assert_int_equal(load_url("tcp://:80"), -1);
    assert_int_equal(load_url("127.0.0.1:80/127.0.0.1:1"), -1);
    assert_int_equal(load_url(""), -1);
    assert_int_equal(cfg_from_urls(&cfg, NULL, 0, &errs), -1);
    assert_true(errs.n > 0);
}

static void test_url_unresolvable(void **state)
{
    (void)state;
    url_fails("tcp://:80/no-such-host.invalid:80", "upstream");
    expect_error("no-such-host.invalid", NULL);
    url_fails("tcp://no-such-host.invalid:80/127.0.0.1:1", "listen");
}

static void test_url_combinations(void **state)
{
    (void)state;
    url_fails("udp://:53/127.0.0.1:1?send-proxy=v1", "send-proxy");
    load_url_ok("udp://:53/127.0.0.1:1?send-proxy=v2&accept-proxy=required");
    /* The TLVs we add only exist in v2 headers. */
    url_fails("tcp://:80/127.0.0.1:1?authority=example.com", "authority");
    url_fails("tcp://:80/127.0.0.1:1?send-proxy=v1&unique-id=on", "unique-id");
    url_fails("tcp://:80/127.0.0.1:1?crc32c=on", "crc32c");
    load_url_ok("tcp://:80/127.0.0.1:1?unique-id=off&crc32c=off");
    /* A key given twice is a mistake, not "the last one wins". */
    url_fails("tcp://:80/127.0.0.1:1?send-proxy=v1&send-proxy=v2", "send-proxy");
    url_fails("tcp://:80/127.0.0.1:1?idle-timeout=1s&idle_timeout=2s", "idle_timeout");
}

static void test_url_authority_length(void **state)
{
    char url[512];
    char name[257];

    (void)state;
    memset(name, 'a', sizeof(name) - 1);
    name[255] = '\0';
    snprintf(url, sizeof(url), "tcp://:80/127.0.0.1:1?send-proxy=v2&authority=%s", name);
    load_url_ok(url);
    assert_int_equal(strlen(route(0)->authority), 255);
    name[255] = 'a';
    name[256] = '\0';
    snprintf(url, sizeof(url), "tcp://:80/127.0.0.1:1?send-proxy=v2&authority=%s", name);
    url_fails(url, "authority");
}

static void test_url_every_problem(void **state)
{
    char u0[] = "tcp://:80/127.0.0.1:1?send-proxy=v3&balance=x&max-conns=0";
    char u1[] = "udp://:81/127.0.0.1:1?send-proxy=v1";
    char u2[] = "tcp://:82/127.0.0.1:1";
    char *urls[] = {u0, u1, u2};

    (void)state;
    assert_int_equal(cfg_from_urls(&cfg, urls, 3, &errs), -1);
    expect_error("key send-proxy:", urls[0]);
    expect_error("key balance:", urls[0]);
    expect_error("key max-conns:", urls[0]);
    expect_error("key send-proxy:", urls[1]);
    assert_int_equal(errs.n, 4);
}

static void test_url_same_listen(void **state)
{
    char a[] = "tcp://127.0.0.1:80/127.0.0.1:1", b[] = "tcp://127.0.0.1:80/127.0.0.1:2";
    char u[] = "udp://127.0.0.1:80/127.0.0.1:2";
    char *same[] = {a, b};
    char *tcp_udp[] = {a, u};

    (void)state;
    assert_int_equal(cfg_from_urls(&cfg, same, 2, &errs), -1);
    expect_error("key listen:", same[1]);
    cfg_free(&cfg);
    cfg_errors_free(&errs);
    assert_int_equal(cfg_from_urls(&cfg, tcp_udp, 2, &errs), 0);
    assert_int_equal(cfg.nroutes, 2);
}

/* ---- durations ---------------------------------------------------------------- */

static void test_durations(void **state)
{
    static const struct {
        const char *s;
        unsigned ms;
    } good[] = {
        {"0", 0},       {"500ms", 500},         {"5s", 5000},
        {"5m", 300000}, {"1h", 3600000},        {"30", 30000},
        {"0ms", 0},     {"1193h", 4294800000u}, {"4294967295ms", 4294967295u},
    };
    static const char *const bad[] = {
        "",     "s",    "ms",           "-5s",      "+5s",   " 5s",
        "5s ",  "5 s",  "5sec",         "1.5s",     "5S",    "0x10",
        "1d",   "5mss", "4294967296ms", "4294968s", "1194h", "99999999999999999999999",
        "5h5m",
    };
    unsigned ms;

    (void)state;
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++) {
        ms = 12345;
        if (cfg_parse_duration(good[i].s, &ms) != 0 || ms != good[i].ms)
            fail_msg("'%s': %u, want %u", good[i].s, ms, good[i].ms);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (cfg_parse_duration(bad[i], &ms) != -EINVAL)
            fail_msg("'%s' accepted", bad[i]);
    }
}

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
    load_yaml_ok(example);
    assert_int_equal(cfg.log_level, LOG_INFO);
    assert_int_equal(cfg.log_format, LOG_FORMAT_JSON);
    assert_int_equal(cfg.workers, 2);
    assert_string_equal(cfg.metrics, "127.0.0.1:9100");
    assert_int_equal(cfg.nroutes, 2);
    r = route(0);
    assert_string_equal(r->name, "ssh");
    assert_string_equal(r->listen, "tcp://0.0.0.0:2222");
    assert_int_equal(r->proto, ROUTE_TCP);
    check_sa(&r->bind, AF_INET, "0.0.0.0", 2222);
    assert_int_equal(r->nup, 2);
    check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 22);
    check_sa(&r->up[1].addr, AF_INET, "127.0.0.2", 22);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_OPTIONAL);
    assert_int_equal(r->trusted_all, 0);
    assert_int_equal(r->trusted.n, 1);
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    assert_int_equal(r->idle_timeout_ms, 1800000);
    assert_int_equal(r->connect_timeout_ms, 5000);
    r = route(1);
    assert_string_equal(r->name, "dns");
    assert_int_equal(r->proto, ROUTE_UDP);
    assert_int_equal(r->family, AF_INET);
    check_sa(&r->bind, AF_INET, "0.0.0.0", 53);
    assert_int_equal(r->nup, 1);
    check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 5353);
    assert_int_equal(r->idle_timeout_ms, 300000);
    assert_int_equal(r->send_proxy, SEND_PROXY_OFF);
}

static void test_yaml_every_key(void **state)
{
    const struct route_cfg *r;

    (void)state;
    load_yaml_ok("routes:\n"
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
    r = route(0);
    assert_string_equal(r->name, "web");
    assert_int_equal(r->family, AF_INET6);
    check_sa(&r->bind, AF_INET6, "::1", 8443);
    assert_int_equal(r->nup, 2);
    check_sa(&r->up[1].addr, AF_INET6, "::1", 444);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_REQUIRED);
    assert_int_equal(r->trusted.n, 2);
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    assert_int_equal(r->tlvs_pass, 0);
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
    yaml_fails_at("routes:\n"
                  "  ssh:\n"
                  "    listen: tcp://:2222\n"
                  "    upstream: 127.0.0.1:22\n"
                  "    send_proxy: v3\n",
                  5, "ssh", "send_proxy");
    yaml_fails_at("routes:\n"
                  "  ssh:\n"
                  "    listen: tcp://:2222\n"
                  "    upstream: 127.0.0.1:22\n"
                  "\n"
                  "    bogus_key: 1\n",
                  6, "ssh", "bogus_key");
    yaml_fails_at("routes:\n"
                  "  a:\n"
                  "    listen: tcp://:2222\n"
                  "    upstream: [127.0.0.1:22, no-such-host.invalid:22]\n",
                  4, "a", "upstream");
    yaml_fails_at("routes:\n"
                  "  a:\n"
                  "    listen: tcp://:99999\n"
                  "    upstream: 127.0.0.1:22\n",
                  3, "a", "listen");
    yaml_fails_at("routes:\n"
                  "  a:\n"
                  "    listen: tcp://:1\n"
                  "    upstream: 127.0.0.1:22\n"
                  "    max_conns: [1, 2]\n",
                  5, "a", "max_conns");
    yaml_fails_at("routes:\n"
                  "  a:\n"
                  "    listen: tcp://:1\n"
                  "    upstream: 127.0.0.1:22\n"
                  "    crc32c: sometimes\n",
                  5, "a", "crc32c");
    yaml_fails_at("routes:\n"
                  "  a:\n"
                  "    listen: tcp://:1\n"
                  "    upstream: 127.0.0.1:22\n"
                  "    listen: tcp://:2\n",
                  5, "a", "listen");
    yaml_fails_at("routes:\n"
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
    assert_int_equal(load_yaml("routes:\n"
                               "  dns:\n"
                               "    listen: udp://:53\n"
                               "    upstream: 127.0.0.1:5353\n"
                               "    send_proxy: v1\n"),
                     -1);
    expect_error(": route dns: key send_proxy:", NULL);
    expect_error(path, NULL);
    assert_int_equal(load_yaml("routes:\n"
                               "  a:\n"
                               "    upstream: 127.0.0.1:22\n"),
                     -1);
    expect_error("route a: key listen:", NULL);
    assert_int_equal(load_yaml("routes:\n"
                               "  a:\n"
                               "    listen: tcp://:1\n"),
                     -1);
    expect_error("route a: key upstream:", NULL);
    assert_int_equal(load_yaml("routes:\n"
                               "  a:\n"
                               "    listen: tcp://:1\n"
                               "    upstream: []\n"),
                     -1);
    expect_error("route a: key upstream:", NULL);
    assert_int_equal(load_yaml("routes:\n"
                               "  a:\n"
                               "    listen: tcp://:1/127.0.0.1:2\n"
                               "    upstream: 127.0.0.1:22\n"),
                     -1);
    expect_error("route a: key listen:", NULL);
    assert_int_equal(load_yaml("routes:\n"
                               "  a: tcp://:1/127.0.0.1:2\n"),
                     -1);
    expect_error("route a:", NULL);
}

static void test_yaml_top_level(void **state)
{
    (void)state;
    yaml_fails_at("workers: 0\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1,
                  NULL, "workers");
    yaml_fails_at("workers: 1025\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1,
                  NULL, "workers");
    yaml_fails_at("routes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\nworker: 2\n", 3,
                  NULL, "worker");
    yaml_fails_at(
        "log: {level: loud}\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1,
        NULL, "level");
    yaml_fails_at("log:\n  format: xml\nroutes:\n  a: {listen: 'tcp://:1', upstream: "
                  "'127.0.0.1:2'}\n",
                  2, NULL, "format");
    yaml_fails_at("log:\n  colour: red\nroutes:\n  a: {listen: 'tcp://:1', upstream: "
                  "'127.0.0.1:2'}\n",
                  2, NULL, "colour");
    yaml_fails_at("metrics: [1]\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n", 1,
                  NULL, "metrics");
    yaml_fails_at("metrics: nowhere\nroutes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n",
                  1, NULL, "metrics");
    yaml_fails_at("workers: 2\n", 1, NULL, "routes");
    yaml_fails_at("routes: [a, b]\n", 1, NULL, "routes");
    load_yaml_ok("log: {level: debug, format: text}\nworkers: 1024\n"
                 "routes:\n  a: {listen: 'tcp://:1', upstream: '127.0.0.1:2'}\n");
    assert_int_equal(cfg.log_level, LOG_DEBUG);
    assert_int_equal(cfg.log_format, LOG_FORMAT_TEXT);
    assert_int_equal(cfg.workers, 1024);
}

static void test_yaml_syntax(void **state)
{
    char want[256];

    (void)state;
    assert_int_equal(load_yaml("routes:\n"
                               "  a:\n"
                               "    listen: tcp://:1\n"
                               "    upstream: [127.0.0.1:2\n"
                               "    send_proxy: v2\n"
                               "  b: {\n"),
                     -1);
    snprintf(want, sizeof(want), "%s:", path);
    expect_error(want, "YAML");
    assert_int_equal(load_yaml("routes:\n"
                               "  a:\n"
                               "    listen: tcp://:1\n"
                               "   upstream: 127.0.0.1:2\n"),
                     -1);
    snprintf(want, sizeof(want), "%s:4:", path);
    expect_error(want, NULL);
    assert_int_equal(load_yaml(""), -1);
    assert_true(errs.n > 0);
    assert_int_equal(load_yaml("just a string\n"), -1);
    assert_true(errs.n > 0);
}

static void test_yaml_every_problem(void **state)
{
    (void)state;
    assert_int_equal(load_yaml("workers: many\n"
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
    expect_error(":1: ", "key workers:");
    expect_error(":6: route a: key balance:", NULL);
    expect_error(":7: route a: key idle_timeout:", NULL);
    expect_error(":11: route b: key accept_proxy:", NULL);
    assert_int_equal(errs.n, 4);
}

static void test_yaml_duplicates(void **state)
{
    (void)state;
    assert_int_equal(load_yaml("routes:\n"
                               "  a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"
                               "  b: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"),
                     -1);
    expect_error("route b: key listen:", NULL);
    assert_int_equal(load_yaml("routes:\n"
                               "  a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"
                               "  a: {listen: 'tcp://127.0.0.1:2', upstream: '127.0.0.1:9'}\n"),
                     -1);
    expect_error("route a", NULL);
    /* The same port over TCP and UDP is two sockets. */
    load_yaml_ok("routes:\n"
                 "  a: {listen: 'tcp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n"
                 "  b: {listen: 'udp://127.0.0.1:1', upstream: '127.0.0.1:9'}\n");
}

static void test_yaml_missing_file(void **state)
{
    (void)state;
    snprintf(path, sizeof(path), "%s/none.yaml", tmpdir);
    assert_int_equal(cfg_load_file(&cfg, path, &errs), -1);
    expect_error(path, NULL);
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
    rc = check_main(a2 ? 3 : 2, argv);
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
    write_file(example);
    assert_int_equal(run_check("-c", path), 0);
    write_file("routes:\n  a: {listen: 'udp://:1', upstream: '127.0.0.1:2', send_proxy: v1}\n");
    assert_int_equal(run_check("-c", path), 1);
    assert_int_equal(run_check("tcp://:1/127.0.0.1:2", NULL), 0);
    assert_int_equal(run_check("tcp://:1/127.0.0.1:2?x=y", NULL), 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_url_examples, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_protocols, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_listen_spelling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_upstreams, setup, teardown),
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_keys_valid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_keys_invalid, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_bad_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_unresolvable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_combinations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_authority_length, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_every_problem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_url_same_listen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_durations, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_example, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_route_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_top_level, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_syntax, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_every_problem, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_yaml_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check, setup, teardown),
    };

    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
