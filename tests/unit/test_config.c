/*
 * test_config.c - route URLs, the YAML file, durations and CIDR lists: every
 * key with good and bad values, defaults, and error messages that name the
 * place, the route and the key.
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
#include <arpa/inet.h>
#include <netinet/in.h>

#include "util/cidr.h"
#include "config/config.h"

/* Loads one URL; returns the number of problems (0: loaded). */
static size_t load_url(const char *url, struct cfg *c, struct cfg_errors *e)
{
    char *urls[] = {(char *)(uintptr_t)url};

    memset(c, 0, sizeof(*c));
    memset(e, 0, sizeof(*e));
    cfg_from_urls(c, urls, 1, e);
    return e->n;
}

/* Asserts that the URL is refused with a message holding every needle. */
static void refused(const char *url, const char *needle1, const char *needle2)
{
    struct cfg c;
    struct cfg_errors e;
    int found = 0;

    assert_true(load_url(url, &c, &e) > 0);
    for (size_t i = 0; i < e.n; i++) {
        if (strstr(e.msg[i], needle1) && (!needle2 || strstr(e.msg[i], needle2)))
            found = 1;
    }
    if (!found) {
        for (size_t i = 0; i < e.n; i++)
            fprintf(stderr, "got: %s\n", e.msg[i]);
    }
    assert_true(found);
    cfg_errors_free(&e);
    cfg_free(&c);
}

static void test_url_defaults(void **state)
{
    struct cfg c;
    struct cfg_errors e;
    const struct route_cfg *r;
    const struct sockaddr_in6 *b;

    (void)state;
    assert_int_equal(load_url("tcp://:2222/127.0.0.1:22", &c, &e), 0);
    assert_int_equal(c.nroutes, 1);
    r = &c.routes[0];
    assert_int_equal(r->proto, ROUTE_TCP);
    b = (const struct sockaddr_in6 *)(const void *)&r->bind;
    assert_int_equal(b->sin6_family, AF_INET6); /* every address, dual-stack */
    assert_int_equal(ntohs(b->sin6_port), 2222);
    assert_int_equal(r->nup, 1);
    assert_string_equal(r->up[0].name, "127.0.0.1:22");
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_OFF);
    assert_int_equal(r->send_proxy, SEND_PROXY_OFF);
    assert_int_equal(r->tlvs_mode, TLVS_PASS);
    assert_int_equal(r->trusted_all, 1);
    assert_int_equal(r->allow_all, 1);
    assert_int_equal(r->deny.n, 0);
    assert_int_equal(r->max_conns, 0);
    assert_int_equal(r->balance, BALANCE_ROUNDROBIN);
    assert_int_equal(r->connect_timeout_ms, 5000);
    assert_int_equal(r->header_timeout_ms, 5000);
    assert_int_equal(r->idle_timeout_ms, 3600000);
    assert_int_equal(c.log_level, -1);
    assert_int_equal(c.log_format, -1);
    cfg_free(&c);

    assert_int_equal(load_url("udp4://127.0.0.1:5353/127.0.0.1:53", &c, &e), 0);
    assert_int_equal(c.routes[0].proto, ROUTE_UDP);
    assert_int_equal(c.routes[0].family, AF_INET);
    assert_int_equal(c.routes[0].idle_timeout_ms, 300000);
    cfg_free(&c);
}

/* reply-timeout (UDP only): 30 s by default, never later than idle-timeout's
 * own close; refused on TCP, naming the key. */
static void test_reply_timeout(void **state)
{
    struct cfg c;
    struct cfg_errors e;

    (void)state;
    assert_int_equal(load_url("udp://127.0.0.1:5353/127.0.0.1:53", &c, &e), 0);
    assert_int_equal(c.routes[0].reply_timeout_ms, 30000);
    cfg_free(&c);
    assert_int_equal(load_url("udp://127.0.0.1:5353/127.0.0.1:53?reply-timeout=2s", &c, &e), 0);
    assert_int_equal(c.routes[0].reply_timeout_ms, 2000);
    cfg_free(&c);
    assert_int_equal(load_url("tcp://127.0.0.1:1/127.0.0.1:2", &c, &e), 0);
    assert_int_equal(c.routes[0].reply_timeout_ms, 0);
    cfg_free(&c);
    refused("tcp://127.0.0.1:1/127.0.0.1:2?reply-timeout=2s", "key reply-timeout", "UDP only");
    refused("udp://127.0.0.1:1/127.0.0.1:2?reply-timeout=0", "key reply-timeout", "duration");
}

static void test_url_every_key(void **state)
{
    struct cfg c;
    struct cfg_errors e;
    const struct route_cfg *r;
    struct sockaddr_in in = {.sin_family = AF_INET};

    (void)state;
    assert_int_equal(load_url("tcp6://[::1]:8080/[::1]:80,127.0.0.1:81?accept-proxy=required"
                              "&trusted=10.0.0.0/8,192.168.0.0/16&send-proxy=v2&tlvs=drop"
                              "&authority=example.com&unique-id=on&crc32c=on&allow=127.0.0.0/8"
                              "&deny=127.0.0.2&max-conns=100&balance=leastconn&check=2s"
                              "&connect-timeout=500ms&header-timeout=3s&idle-timeout=5m",
                              &c, &e),
                     0);
    r = &c.routes[0];
    assert_int_equal(r->family, AF_INET6);
    assert_int_equal(r->nup, 2);
    assert_int_equal(r->up[1].addr.ss_family, AF_INET);
    assert_int_equal(r->accept_proxy, ACCEPT_PROXY_REQUIRED);
    assert_int_equal(r->trusted_all, 0);
    assert_int_equal(r->trusted.n, 2);
    assert_int_equal(r->send_proxy, SEND_PROXY_V2);
    assert_int_equal(r->tlvs_mode, TLVS_DROP);
    assert_string_equal(r->authority, "example.com");
    assert_int_equal(r->unique_id, 1);
    assert_int_equal(r->crc32c, 1);
    assert_int_equal(r->allow_all, 0);
    in.sin_addr.s_addr = htonl(0x7f000002);
    assert_int_equal(cidr_list_match(&r->deny, (struct sockaddr *)&in), 1);
    assert_int_equal(cidr_list_match(&r->allow, (struct sockaddr *)&in), 1);
    assert_int_equal(r->max_conns, 100);
    assert_int_equal(r->balance, BALANCE_LEASTCONN);
    assert_int_equal(r->check_ms, 2000);
    assert_int_equal(r->connect_timeout_ms, 500);
    assert_int_equal(r->header_timeout_ms, 3000);
    assert_int_equal(r->idle_timeout_ms, 300000);
    cfg_free(&c);
}

static void test_url_errors(void **state)
{
    (void)state;
    refused("tcp://127.0.0.1:1/127.0.0.1:2?bogus=1", "key bogus", "unknown key");
    refused("tcp://127.0.0.1:1/127.0.0.1:2?send-proxy=v3", "key send-proxy", "v3");
    refused("tcp://127.0.0.1:1/127.0.0.1:2?accept-proxy=maybe", "key accept-proxy", "maybe");
    refused("tcp://127.0.0.1:1/127.0.0.1:2?tlvs=keep", "key tlvs", "keep");
    refused("tcp://127.0.0.1:1/127.0.0.1:2?balance=random", "key balance", "random");
    refused("tcp://127.0.0.1:1/127.0.0.1:2?max-conns=0", "key max-conns", NULL);
    refused("tcp://127.0.0.1:1/127.0.0.1:2?max-conns=-1", "key max-conns", NULL);
    refused("tcp://127.0.0.1:1/127.0.0.1:2?idle-timeout=5x", "key idle-timeout", "5x");
    refused("tcp://127.0.0.1:1/127.0.0.1:2?trusted=10.0.0.0/33", "key trusted", NULL);
    refused("tcp://127.0.0.1:1/127.0.0.1:2?deny=bogus", "key deny", NULL);
    refused("tcp://127.0.0.1:1/127.0.0.1:2?unique-id=maybe", "key unique-id", NULL);
    refused("tcp://127.0.0.1:1/127.0.0.1:2?authority=x", "key authority", "send-proxy=v2");
    refused("tcp://127.0.0.1:1/127.0.0.1:2?send-proxy", "send-proxy", "KEY=VALUE");
    refused("udp://127.0.0.1:1/127.0.0.1:2?send-proxy=v1", "key send-proxy", "UDP");
    refused("sctp://127.0.0.1:1/127.0.0.1:2", "key listen", "sctp");
    refused("tcp://127.0.0.1:0/127.0.0.1:2", "key listen", "port");
    refused("tcp://127.0.0.1:70000/127.0.0.1:2", "key listen", "port");
    refused("tcp://127.0.0.1:1/", "key upstream", NULL);
    refused("tcp://127.0.0.1:1/::1:80", "key upstream", "brackets");
    refused("tcp://127.0.0.1:1/host.invalid:80", "key upstream", "resolve");
    refused("tcp4://[::1]:1/127.0.0.1:2", "key listen", "an IPv6 address where IPv4");
    refused("udp6://127.0.0.1:1/127.0.0.1:2", "key listen", "an IPv4 address where IPv6");
    refused("tcp://127.0.0.1:1", "route 'tcp://127.0.0.1:1'", "PROTO://");
}

static void test_durations(void **state)
{
    unsigned ms;

    (void)state;
    assert_int_equal(cfg_parse_duration("500ms", &ms), 0);
    assert_int_equal(ms, 500);
    assert_int_equal(cfg_parse_duration("5s", &ms), 0);
    assert_int_equal(ms, 5000);
    assert_int_equal(cfg_parse_duration("5m", &ms), 0);
    assert_int_equal(ms, 300000);
    assert_int_equal(cfg_parse_duration("1h", &ms), 0);
    assert_int_equal(ms, 3600000);
    assert_int_equal(cfg_parse_duration("7", &ms), 0);
    assert_int_equal(ms, 7000);
    assert_int_equal(cfg_parse_duration("", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration("-1s", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration("5 s", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration("5d", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration("99999999h", &ms), -EINVAL);
    assert_int_equal(cfg_parse_duration("99999999999999999999999ms", &ms), -EINVAL);
}

static void test_cidr(void **state)
{
    struct cidr c;
    struct cidr_list l = {0};
    struct sockaddr_in v4 = {.sin_family = AF_INET};
    struct sockaddr_in6 v6 = {.sin6_family = AF_INET6};

    (void)state;
    assert_int_equal(cidr_parse("10.1.2.3/8", &c), 0); /* host bits masked */
    assert_int_equal(cidr_list_add(&l, &c), 0);
    assert_int_equal(cidr_parse("2001:db8::/32", &c), 0);
    assert_int_equal(cidr_list_add(&l, &c), 0);
    inet_pton(AF_INET, "10.200.0.1", &v4.sin_addr);
    assert_int_equal(cidr_list_match(&l, (struct sockaddr *)&v4), 1);
    inet_pton(AF_INET, "11.0.0.1", &v4.sin_addr);
    assert_int_equal(cidr_list_match(&l, (struct sockaddr *)&v4), 0);
    inet_pton(AF_INET6, "::ffff:10.9.9.9", &v6.sin6_addr); /* dual-stack socket view */
    assert_int_equal(cidr_list_match(&l, (struct sockaddr *)&v6), 1);
    inet_pton(AF_INET6, "2001:db8:ffff::1", &v6.sin6_addr);
    assert_int_equal(cidr_list_match(&l, (struct sockaddr *)&v6), 1);
    inet_pton(AF_INET6, "2001:db9::1", &v6.sin6_addr);
    assert_int_equal(cidr_list_match(&l, (struct sockaddr *)&v6), 0);
    cidr_list_free(&l);
    assert_int_equal(cidr_parse("0.0.0.0/0", &c), 0);
    assert_int_equal(cidr_list_add(&l, &c), 0);
    inet_pton(AF_INET, "203.0.113.9", &v4.sin_addr);
    assert_int_equal(cidr_list_match(&l, (struct sockaddr *)&v4), 1);
    cidr_list_free(&l);
    assert_int_equal(cidr_parse("1.2.3.4/", &c), -EINVAL);
    assert_int_equal(cidr_parse("1.2.3.4/33", &c), -EINVAL);
    assert_int_equal(cidr_parse("::/129", &c), -EINVAL);
    assert_int_equal(cidr_parse("1.2.3/8", &c), -EINVAL);
    assert_int_equal(cidr_parse("", &c), -EINVAL);
    assert_int_equal(cidr_parse("10.0.0.0/8x", &c), -EINVAL);
}

/* Writes text to a temporary file whose path is stored in path. */
static void write_file(char *path, const char *text)
{
    int fd = mkstemp(path);
    FILE *fp;

    assert_true(fd >= 0);
    fp = fdopen(fd, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
}

static void test_yaml(void **state)
{
    static const char yaml[] = "log: {level: warn, format: json}\n"
                               "workers: 2\n"
                               "metrics: 127.0.0.1:9100\n"
                               "routes:\n"
                               "  ssh:\n"
                               "    listen: tcp://127.0.0.1:2222\n"
                               "    upstream: [127.0.0.1:22, 127.0.0.1:23]\n"
                               "    accept_proxy: optional\n"
                               "    trusted: [10.0.0.0/8]\n"
                               "    send_proxy: v2\n"
                               "    idle_timeout: 30m\n"
                               "  dns:\n"
                               "    listen: udp4://127.0.0.1:53\n"
                               "    upstream: localhost:5353\n";
    char path[] = "/tmp/ppfwd-test-XXXXXX";
    struct cfg c = {0};
    struct cfg_errors e = {0};

    (void)state;
    write_file(path, yaml);
    assert_int_equal(cfg_load_file(&c, path, &e), 0);
    assert_int_equal(c.log_level, 2);
    assert_int_equal(c.log_format, 1);
    assert_int_equal(c.workers, 2);
    assert_string_equal(c.metrics, "127.0.0.1:9100");
    assert_int_equal(c.nroutes, 2);
    assert_string_equal(c.routes[0].name, "ssh");
    assert_int_equal(c.routes[0].nup, 2);
    assert_int_equal(c.routes[0].accept_proxy, ACCEPT_PROXY_OPTIONAL);
    assert_int_equal(c.routes[0].trusted.n, 1);
    assert_int_equal(c.routes[0].idle_timeout_ms, 1800000);
    assert_string_equal(c.routes[1].name, "dns");
    assert_int_equal(c.routes[1].proto, ROUTE_UDP);
    cfg_free(&c);
    unlink(path);
}

/* Every problem is reported, each with FILE:LINE, the route and the key. */
static void test_yaml_errors(void **state)
{
    static const char yaml[] = "routes:\n"
                               "  ssh:\n"
                               "    listen: tcp://127.0.0.1:2222\n"
                               "    upstream: 127.0.0.1:22\n"
                               "    send_proxy: v9\n"
                               "    idel_timeout: 5m\n"
                               "  web:\n"
                               "    upstream: 127.0.0.1:80\n"
                               "colour: blue\n";
    char path[] = "/tmp/ppfwd-test-XXXXXX", want[256];
    struct cfg c = {0};
    struct cfg_errors e = {0};

    (void)state;
    write_file(path, yaml);
    assert_int_equal(cfg_load_file(&c, path, &e), -1);
    assert_int_equal(e.n, 4);
    snprintf(want, sizeof(want), "%s:5: route ssh: key send_proxy: bad value 'v9'", path);
    assert_non_null(strstr(e.msg[0], want));
    snprintf(want, sizeof(want), "%s:6: route ssh: key idel_timeout: unknown key", path);
    assert_non_null(strstr(e.msg[1], want));
    snprintf(want, sizeof(want), "%s:8: route web: key listen: missing", path);
    assert_non_null(strstr(e.msg[2], want));
    snprintf(want, sizeof(want), "%s:9: key colour: unknown key", path);
    assert_non_null(strstr(e.msg[3], want));
    cfg_errors_free(&e);
    cfg_free(&c);
    unlink(path);

    strcpy(path, "/tmp/ppfwd-test-XXXXXX");
    write_file(path, "routes:\n  a: [\n");
    assert_int_equal(cfg_load_file(&c, path, &e), -1);
    assert_int_equal(e.n, 1);
    assert_non_null(strstr(e.msg[0], "YAML"));
    cfg_errors_free(&e);
    cfg_free(&c);
    unlink(path);

    assert_int_equal(cfg_load_file(&c, "/nonexistent/ppfwd.yaml", &e), -1);
    assert_non_null(strstr(e.msg[0], "/nonexistent/ppfwd.yaml"));
    cfg_errors_free(&e);
    cfg_free(&c);
}

static void test_duplicates(void **state)
{
    char a[] = "tcp://127.0.0.1:3000/127.0.0.1:1", b[] = "tcp://127.0.0.1:3000/127.0.0.1:2";
    char *urls[] = {a, b};
    struct cfg c = {0};
    struct cfg_errors e = {0};

    (void)state;
    assert_int_equal(cfg_from_urls(&c, urls, 2, &e), -1);
    assert_int_equal(e.n, 1);
    assert_non_null(strstr(e.msg[0], "same address"));
    cfg_errors_free(&e);
    cfg_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_url_defaults), cmocka_unit_test(test_url_every_key),
        cmocka_unit_test(test_reply_timeout),
        cmocka_unit_test(test_url_errors),   cmocka_unit_test(test_durations),
        cmocka_unit_test(test_cidr),         cmocka_unit_test(test_yaml),
        cmocka_unit_test(test_yaml_errors),  cmocka_unit_test(test_duplicates),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
