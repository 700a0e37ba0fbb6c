/*
 * cfgtest.c - what the config unit tests share: one loaded config and its
 * errors (freed by the teardown, so that a failed assertion, a longjmp,
 * leaves no leak report), a temporary directory for YAML files, loading a
 * URL or a YAML text, and finding a message among the errors.
 */
#include <arpa/inet.h>
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

struct cfg cfgt_cfg;
struct cfg_errors cfgt_errs;
char cfgt_tmpdir[] = "/tmp/test_config.XXXXXX";
char cfgt_path[CFGT_PATH_MAX];

int cfgt_setup(void **state)
{
    (void)state;
    memset(&cfgt_cfg, 0, sizeof(cfgt_cfg));
    memset(&cfgt_errs, 0, sizeof(cfgt_errs));
    return 0;
}

int cfgt_teardown(void **state)
{
    (void)state;
    cfg_free(&cfgt_cfg);
    cfg_errors_free(&cfgt_errs);
    unlink(cfgt_path);
    return 0;
}

int cfgt_group_setup(void **state)
{
    (void)state;
    return mkdtemp(cfgt_tmpdir) == NULL ? -1 : 0;
}

int cfgt_group_teardown(void **state)
{
    (void)state;
    return rmdir(cfgt_tmpdir);
}

void cfgt_print_errors(void)
{
    for (size_t i = 0; i < cfgt_errs.n; i++)
        print_message("  error: %s\n", cfgt_errs.msg[i]);
}

/* Loads one URL (replacing what a previous call loaded) and returns rc. */
int cfgt_load_url(const char *url)
{
    char *urls[1];

    cfg_free(&cfgt_cfg);
    cfg_errors_free(&cfgt_errs);
    urls[0] = (char *)(uintptr_t)url;
    return cfg_from_urls(&cfgt_cfg, urls, 1, &cfgt_errs);
}

void cfgt_load_url_ok(const char *url)
{
    int rc = cfgt_load_url(url);

    if (rc != 0) {
        cfgt_print_errors();
        fail_msg("refused: %s", url);
    }
    assert_int_equal(cfgt_errs.n, 0);
    assert_int_equal(cfgt_cfg.nroutes, 1);
}

/* 1 if some message contains every given substring (NULL-terminated). */
int cfgt_has_error(const char *a, const char *b)
{
    for (size_t i = 0; i < cfgt_errs.n; i++) {
        if (strstr(cfgt_errs.msg[i], a) != NULL &&
            (b == NULL || strstr(cfgt_errs.msg[i], b) != NULL))
            return 1;
    }
    return 0;
}

void cfgt_expect_error(const char *a, const char *b)
{
    if (!cfgt_has_error(a, b)) {
        print_message("no error with '%s' and '%s' among:\n", a, b ? b : "");
        cfgt_print_errors();
        fail();
    }
}

/* The URL fails, and a message names the key (URL spelling). */
void cfgt_url_fails(const char *url, const char *key)
{
    char want[64];

    if (cfgt_load_url(url) != -1)
        fail_msg("accepted: %s", url);
    snprintf(want, sizeof(want), "key %s:", key);
    cfgt_expect_error(want, NULL);
}

void cfgt_write_file(const char *text)
{
    FILE *fp;

    snprintf(cfgt_path, sizeof(cfgt_path), "%s/ppfwd.yaml", cfgt_tmpdir);
    fp = fopen(cfgt_path, "w");
    assert_non_null(fp);
    assert_int_equal(fputs(text, fp) >= 0, 1);
    assert_int_equal(fclose(fp), 0);
}

int cfgt_load_yaml(const char *text)
{
    cfg_free(&cfgt_cfg);
    cfg_errors_free(&cfgt_errs);
    cfgt_write_file(text);
    return cfg_load_file(&cfgt_cfg, cfgt_path, &cfgt_errs);
}

void cfgt_load_yaml_ok(const char *text)
{
    int rc = cfgt_load_yaml(text);

    if (rc != 0)
        cfgt_print_errors();
    assert_int_equal(rc, 0);
    assert_int_equal(cfgt_errs.n, 0);
}

/* The file fails with a message "FILE:LINE: route ROUTE: key KEY:". */
void cfgt_yaml_fails_at(const char *text, unsigned line, const char *route, const char *key)
{
    char want[256], tail[128];

    assert_int_equal(cfgt_load_yaml(text), -1);
    snprintf(want, sizeof(want), "%s:%u: ", cfgt_path, line);
    if (route != NULL && key != NULL)
        snprintf(tail, sizeof(tail), "route %s: key %s:", route, key);
    else if (route != NULL)
        snprintf(tail, sizeof(tail), "route %s:", route);
    else
        snprintf(tail, sizeof(tail), "key %s:", key);
    cfgt_expect_error(want, tail);
}

const struct route_cfg *cfgt_route(size_t i)
{
    assert_true(i < cfgt_cfg.nroutes);
    return &cfgt_cfg.routes[i];
}

void cfgt_check_sa(const struct sockaddr_storage *ss, int family, const char *ip, int port)
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
