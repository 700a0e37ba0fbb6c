/*
 * test_config_urls.c - routes as operators write them on the command line,
 * case by case: the URLs of INTERFACE.md, every protocol, every key with
 * good and bad values, the defaults, durations. (test_config.c holds the
 * first, broader cases; test_config_yaml.c the file; test_cidr.c the
 * networks.) A bad input must come back as an error that names the key,
 * never as a silent default.
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
#include <net/if.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "cfgtest.h"
#include "cmd/check.h"
#include "config/config.h"

/* ---- URLs ------------------------------------------------------------------- */

static void test_url_examples(void **state)
{
    const struct route_cfg *r;

    (void)state;
    cfgt_load_url_ok("tcp://:2222/127.0.0.1:22?send-proxy=v2");
    r = cfgt_route(0);
    assert_string_equal(r->name, "tcp://:2222/127.0.0.1:22?send-proxy=v2");
    assert_int_equal(r->proto, ROUTE_TCP);
    assert_int_equal(r->family, AF_UNSPEC);
    /* Empty BIND on tcp: [::], which the listener makes dual-stack. */
    cfgt_check_sa(&r->bind, AF_INET6, "::", 2222);
    assert_int_equal(r->bindlen, sizeof(struct sockaddr_in6));
    assert_int_equal(r->nup, 1);
    assert_string_equal(r->up[0].name, "127.0.0.1:22");
    cfgt_check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 22);
    assert_int_equal(r->up[0].addrlen, sizeof(struct sockaddr_in));
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);

    cfgt_load_url_ok("udp://127.0.0.1:5353/127.0.0.1:53");
    r = cfgt_route(0);
    assert_int_equal(r->proto, ROUTE_UDP);
    cfgt_check_sa(&r->bind, AF_INET, "127.0.0.1", 5353);
    cfgt_check_sa(&r->up[0].addr, AF_INET, "127.0.0.1", 53);

    cfgt_load_url_ok("tcp://[::1]:8080/[::1]:80");
    r = cfgt_route(0);
    cfgt_check_sa(&r->bind, AF_INET6, "::1", 8080);
    cfgt_check_sa(&r->up[0].addr, AF_INET6, "::1", 80);
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
        cfgt_load_url_ok(cases[i].url);
        assert_int_equal(cfgt_route(0)->proto, cases[i].proto);
        assert_int_equal(cfgt_route(0)->family, cases[i].family);
        cfgt_check_sa(&cfgt_route(0)->bind, cases[i].bind_family, cases[i].bind, 80);
    }
}

static void test_url_listen_spelling(void **state)
{
    (void)state;
    cfgt_load_url_ok("tcp4://127.0.0.1:80/127.0.0.1:1?max-conns=3");
    assert_string_equal(cfgt_route(0)->listen, "tcp4://127.0.0.1:80");
    cfgt_load_url_ok("tcp://[::1]:80/[::1]:1");
    assert_string_equal(cfgt_route(0)->listen, "tcp://[::1]:80");
}

static void test_url_upstreams(void **state)
{
    const struct route_cfg *r;

    (void)state;
    cfgt_load_url_ok("tcp://:80/127.0.0.1:81,[::1]:82,localhost:83");
    r = cfgt_route(0);
    assert_int_equal(r->nup, 3);
    assert_string_equal(r->up[0].name, "127.0.0.1:81");
    assert_string_equal(r->up[1].name, "[::1]:82");
    assert_string_equal(r->up[2].name, "localhost:83");
    cfgt_check_sa(&r->up[1].addr, AF_INET6, "::1", 82);
    assert_true(r->up[2].addr.ss_family == AF_INET || r->up[2].addr.ss_family == AF_INET6);
    assert_int_not_equal(r->up[2].addrlen, 0);
    /* The upstream's family does not follow the listener's. */
    cfgt_load_url_ok("tcp6://[::1]:80/127.0.0.1:81");
    cfgt_check_sa(&cfgt_route(0)->up[0].addr, AF_INET, "127.0.0.1", 81);
}

static void test_defaults(void **state)
{
    const struct route_cfg *r;

    (void)state;
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1");
    r = cfgt_route(0);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_OFF);
    assert_int_equal(r->trusted_all, 1);
    assert_int_equal(r->trusted.n, 0);
    assert_int_equal(r->send_proxy, SEND_PROXY_OFF);
    assert_int_equal(r->tlvs_mode, TLVS_PASS);
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
    assert_int_equal(cfgt_cfg.log_level, -1);
    assert_int_equal(cfgt_cfg.log_format, -1);
    assert_int_equal(cfgt_cfg.workers, 0);
    assert_null(cfgt_cfg.metrics);

    cfgt_load_url_ok("udp://:80/127.0.0.1:1");
    assert_int_equal(cfgt_route(0)->idle_timeout_ms, 300000);
    cfgt_load_url_ok("udp://:80/127.0.0.1:1?idle-timeout=1h");
    assert_int_equal(cfgt_route(0)->idle_timeout_ms, 3600000);
}

static void test_url_keys_valid(void **state)
{
    const struct route_cfg *r;

    (void)state;
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?accept-proxy=optional&trusted=10.0.0.0/8,::1"
                     "&send-proxy=v2&tlvs=drop&authority=example.com&unique-id=on&crc32c=true"
                     "&allow=192.168.0.0/16&deny=192.168.1.0/24,2001:db8::/32&max-conns=100"
                     "&balance=leastconn&check=2s&connect-timeout=500ms&header-timeout=3s"
                     "&idle-timeout=30m");
    r = cfgt_route(0);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_OPTIONAL);
    assert_int_equal(r->trusted_all, 0);
    assert_int_equal(r->trusted.n, 2);
    assert_int_equal(r->trusted.v[0].family, AF_INET);
    assert_int_equal(r->trusted.v[1].family, AF_INET6);
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    assert_int_equal(r->tlvs_mode, TLVS_DROP);
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

    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?accept-proxy=required&send-proxy=v1&balance=source"
                     "&tlvs=pass&unique-id=off&crc32c=false");
    r = cfgt_route(0);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_REQUIRED);
    assert_int_equal(r->send_proxy, SEND_PROXY_V1);
    assert_int_equal(r->balance, BALANCE_SOURCE);
    assert_int_equal(r->tlvs_mode, TLVS_PASS);
    assert_int_equal(r->unique_id, 0);
    assert_int_equal(r->crc32c, 0);
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?accept-proxy=off&send-proxy=off&balance=roundrobin");
    assert_int_equal(cfgt_route(0)->accept_proxy, ACCEPT_PROXY_OFF);
    assert_int_equal(cfgt_route(0)->send_proxy, SEND_PROXY_OFF);
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
        cfgt_url_fails(url, cases[i].key);
        /* The message names the route too. */
        cfgt_expect_error(url, NULL);
    }
}

static void test_url_bad_shape(void **state)
{
    (void)state;
    cfgt_url_fails("tcp://:0/127.0.0.1:1", "listen");
    cfgt_url_fails("tcp://:65536/127.0.0.1:1", "listen");
    cfgt_url_fails("tcp://:x/127.0.0.1:1", "listen");
    cfgt_url_fails("tcp://127.0.0.1/127.0.0.1:1", "listen");
    cfgt_url_fails("sctp://:80/127.0.0.1:1", "listen");
    cfgt_url_fails("tcp://::1:80/127.0.0.1:1", "listen");
    cfgt_url_fails("tcp4://[::1]:80/127.0.0.1:1", "listen");
    cfgt_url_fails("tcp6://127.0.0.1:80/127.0.0.1:1", "listen");
    cfgt_url_fails("tcp://:80/", "upstream");
    cfgt_url_fails("tcp://:80/127.0.0.1", "upstream");
    cfgt_url_fails("tcp://:80/127.0.0.1:0", "upstream");
    cfgt_url_fails("tcp://:80/127.0.0.1:65536", "upstream");
    cfgt_url_fails("tcp://:80/::1:80", "upstream");
    cfgt_url_fails("tcp://:80/?send-proxy=v2", "upstream");
    assert_int_equal(cfgt_load_url("tcp://:80"), -1);
    assert_int_equal(cfgt_load_url("127.0.0.1:80/127.0.0.1:1"), -1);
    assert_int_equal(cfgt_load_url(""), -1);
    assert_int_equal(cfg_from_urls(&cfgt_cfg, NULL, 0, &cfgt_errs), -1);
    assert_true(cfgt_errs.n > 0);
}

/* The query and the address parts, edge by edge: listen and upstream are
 * keys too (given in the path, so a query repeating them is "given twice");
 * an empty query or empty pairs are nothing; a pair without a key, or a key
 * without '=', is refused; brackets need a port after them. */
static void test_url_query_shape(void **state)
{
    (void)state;
    cfgt_url_fails("tcp://:80/127.0.0.1:1?listen=tcp://:81", "listen");
    cfgt_expect_error("given twice", NULL);
    assert_string_equal(cfgt_cfg.routes[0].listen, "tcp://:80");
    cfgt_url_fails("tcp://:80/127.0.0.1:1?upstream=127.0.0.1:2", "upstream");
    assert_int_equal(cfgt_cfg.routes[0].nup, 1);
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?");
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?&&max-conns=2&");
    assert_int_equal(cfgt_route(0)->max_conns, 2);
    assert_int_equal(cfgt_load_url("tcp://:80/127.0.0.1:1?=v"), -1);
    cfgt_expect_error("expected KEY=VALUE, got '=v'", NULL);
    assert_false(cfgt_has_error("key :", NULL));
    cfgt_url_fails("tcp://:80/127.0.0.1:1?max-conns", "max-conns");
    cfgt_expect_error("expected KEY=VALUE", NULL);
    cfgt_url_fails("tcp://:80/127.0.0.1:1?max-conns=", "max-conns");
    /* Empty items of a list are skipped, as in the YAML list form. */
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1,,127.0.0.1:2,");
    assert_int_equal(cfgt_route(0)->nup, 2);
    /* A path after the upstream is not a port. */
    cfgt_url_fails("tcp://:80/127.0.0.1:1/x", "upstream");
    cfgt_expect_error("bad port", NULL);
    cfgt_url_fails("tcp://[::1]/127.0.0.1:1", "listen");
    cfgt_expect_error("expected [ADDR]:PORT: '[::1]'", NULL);
    cfgt_url_fails("tcp://[::1:80/127.0.0.1:1", "listen");
    cfgt_expect_error("expected [ADDR]:PORT", NULL);
    cfgt_url_fails("tcp://:80/[::1]x:80", "upstream");
    cfgt_expect_error("expected [ADDR]:PORT", NULL);
    cfgt_load_url_ok("tcp6://[]:80/[::1]:80");
    cfgt_check_sa(&cfgt_route(0)->bind, AF_INET6, "::", 80);
    /* An IPv6 zone, as RFC 6874 writes it in a URL (%25) and bare. */
    cfgt_load_url_ok("tcp6://[fe80::1%25lo]:80/[fe80::2%lo]:80");
    assert_int_equal(((const struct sockaddr_in6 *)&cfgt_route(0)->bind)->sin6_scope_id,
                     if_nametoindex("lo"));
    assert_int_equal(((const struct sockaddr_in6 *)&cfgt_route(0)->up[0].addr)->sin6_scope_id,
                     if_nametoindex("lo"));
    /* Keys and values are percent-decoded: what '&' or '=' would cut. */
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?send-proxy=v2&authority=a%26b%3dc%2Fd+e");
    assert_string_equal(cfgt_route(0)->authority, "a&b=c/d+e");
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?trusted=10.0.0.0%2f8&max%2Dconns=3");
    assert_int_equal(cfgt_route(0)->max_conns, 3);
    cfgt_url_fails("tcp://:80/127.0.0.1:1?send-proxy=v2&authority=100%", "authority");
    cfgt_expect_error("bad percent-encoding", NULL);
    cfgt_url_fails("tcp://:80/127.0.0.1:1?send-proxy=v2&authority=a%zz", "authority");
    cfgt_url_fails("tcp://:80/127.0.0.1:1?send-proxy=v2&authority=a%00b", "authority");
}

static void test_url_unresolvable(void **state)
{
    (void)state;
    cfgt_url_fails("tcp://:80/no-such-host.invalid:80", "upstream");
    cfgt_expect_error("no-such-host.invalid", NULL);
    cfgt_url_fails("tcp://no-such-host.invalid:80/127.0.0.1:1", "listen");
}

static void test_url_combinations(void **state)
{
    (void)state;
    cfgt_url_fails("udp://:53/127.0.0.1:1?send-proxy=v1", "send-proxy");
    cfgt_load_url_ok("udp://:53/127.0.0.1:1?send-proxy=v2&accept-proxy=required");
    /* The TLVs we add only exist in v2 headers. */
    cfgt_url_fails("tcp://:80/127.0.0.1:1?authority=example.com", "authority");
    cfgt_url_fails("tcp://:80/127.0.0.1:1?send-proxy=v1&unique-id=on", "unique-id");
    cfgt_url_fails("tcp://:80/127.0.0.1:1?crc32c=on", "crc32c");
    cfgt_load_url_ok("tcp://:80/127.0.0.1:1?unique-id=off&crc32c=off");
    /* A key given twice is a mistake, not "the last one wins". */
    cfgt_url_fails("tcp://:80/127.0.0.1:1?send-proxy=v1&send-proxy=v2", "send-proxy");
    cfgt_url_fails("tcp://:80/127.0.0.1:1?idle-timeout=1s&idle_timeout=2s", "idle_timeout");
}

/* Keys that would do nothing on UDP are refused there, naming the route and
 * the key (INTERFACE.md): a health check connects over TCP, and a datagram
 * carries its whole header and needs no connect. On TCP they are fine. */
static void test_url_tcp_only_keys(void **state)
{
    static const char *const keys[] = {"check=1s", "connect-timeout=1s", "header-timeout=1s",
                                       "check=off", "header_timeout=5s",
                                       "next-upstream=on", "next_upstream=off"};
    char url[128], key[32];

    (void)state;
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); i++) {
        snprintf(key, sizeof(key), "%.*s", (int)strcspn(keys[i], "="), keys[i]);
        for (char *p = key; *p; p++)
            *p = *p == '_' ? '-' : *p; /* named as the table spells it */
        snprintf(url, sizeof(url), "udp://127.0.0.1:53/127.0.0.1:1?%s", keys[i]);
        cfgt_url_fails(url, key);
        cfgt_expect_error("route 'udp://127.0.0.1:53/", "means nothing on a UDP route (TCP only)");
        assert_int_equal(cfgt_errs.n, 1);
        snprintf(url, sizeof(url), "udp4://127.0.0.1:53/127.0.0.1:1?send-proxy=v2&%s", keys[i]);
        cfgt_url_fails(url, key);
        snprintf(url, sizeof(url), "tcp://127.0.0.1:53/127.0.0.1:1?%s", keys[i]);
        cfgt_load_url_ok(url);
    }
    /* Every other key means something on UDP. */
    cfgt_load_url_ok("udp://127.0.0.1:53/127.0.0.1:1,127.0.0.1:2?accept-proxy=required"
                     "&trusted=127.0.0.1&send-proxy=v2&tlvs=drop&authority=a.example"
                     "&unique-id=on&crc32c=on&allow=127.0.0.0/8&deny=127.0.0.9"
                     "&max-conns=10&balance=source&idle-timeout=30s");
    cfgt_url_fails("udp://:53/127.0.0.1:1?check=1s&connect-timeout=2s", "check");
    cfgt_expect_error("key connect-timeout:", "TCP only");
}

static void test_url_authority_length(void **state)
{
    char url[512];
    char name[257];

    (void)state;
    memset(name, 'a', sizeof(name) - 1);
    name[255] = '\0';
    snprintf(url, sizeof(url), "tcp://:80/127.0.0.1:1?send-proxy=v2&authority=%s", name);
    cfgt_load_url_ok(url);
    assert_int_equal(strlen(cfgt_route(0)->authority), 255);
    name[255] = 'a';
    name[256] = '\0';
    snprintf(url, sizeof(url), "tcp://:80/127.0.0.1:1?send-proxy=v2&authority=%s", name);
    cfgt_url_fails(url, "authority");
}

static void test_url_every_problem(void **state)
{
    char u0[] = "tcp://:80/127.0.0.1:1?send-proxy=v3&balance=x&max-conns=0";
    char u1[] = "udp://:81/127.0.0.1:1?send-proxy=v1";
    char u2[] = "tcp://:82/127.0.0.1:1";
    char *urls[] = {u0, u1, u2};

    (void)state;
    assert_int_equal(cfg_from_urls(&cfgt_cfg, urls, 3, &cfgt_errs), -1);
    cfgt_expect_error("key send-proxy:", urls[0]);
    cfgt_expect_error("key balance:", urls[0]);
    cfgt_expect_error("key max-conns:", urls[0]);
    cfgt_expect_error("key send-proxy:", urls[1]);
    assert_int_equal(cfgt_errs.n, 4);
}

static void test_url_same_listen(void **state)
{
    char a[] = "tcp://127.0.0.1:80/127.0.0.1:1", b[] = "tcp://127.0.0.1:80/127.0.0.1:2";
    char u[] = "udp://127.0.0.1:80/127.0.0.1:2";
    char *same[] = {a, b};
    char *tcp_udp[] = {a, u};

    (void)state;
    assert_int_equal(cfg_from_urls(&cfgt_cfg, same, 2, &cfgt_errs), -1);
    cfgt_expect_error("key listen:", same[1]);
    cfg_free(&cfgt_cfg);
    cfg_errors_free(&cfgt_errs);
    assert_int_equal(cfg_from_urls(&cfgt_cfg, tcp_udp, 2, &cfgt_errs), 0);
    assert_int_equal(cfgt_cfg.nroutes, 2);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_url_examples, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_protocols, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_listen_spelling, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_upstreams, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_defaults, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_keys_valid, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_keys_invalid, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_bad_shape, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_query_shape, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_unresolvable, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_combinations, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_tcp_only_keys, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_authority_length, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_every_problem, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_url_same_listen, cfgt_setup, cfgt_teardown),
        cmocka_unit_test_setup_teardown(test_durations, cfgt_setup, cfgt_teardown),
    };

    return cmocka_run_group_tests(tests, cfgt_group_setup, cfgt_group_teardown);
}
