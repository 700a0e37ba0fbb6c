/*
 * cfgtest.h - helpers of the config unit tests (test_config_*.c): the
 * config and errors of the current test, YAML files in a temporary
 * directory (cfgt_group_setup makes it, cfgt_group_teardown removes it),
 * and assertions on the messages. Every address the tests use is numeric
 * or "localhost", and unresolvable names end in .invalid (RFC 6761), so
 * they run offline and never wait on DNS.
 */
#ifndef PPFWD_TESTS_CFGTEST_H
#define PPFWD_TESTS_CFGTEST_H

#include <stddef.h>
#include <sys/socket.h>

#include "config/config.h"

#define CFGT_PATH_MAX 96

extern struct cfg cfgt_cfg;
extern struct cfg_errors cfgt_errs;
extern char cfgt_tmpdir[];
extern char cfgt_path[CFGT_PATH_MAX]; /* the YAML file of the test */

/* cmocka setup/teardown: per test (zero, then free cfgt_cfg and
 * cfgt_errs) and per group (the temporary directory). */
int cfgt_setup(void **state);
int cfgt_teardown(void **state);
int cfgt_group_setup(void **state);
int cfgt_group_teardown(void **state);

void cfgt_print_errors(void);

/* Loads one URL (replacing what a previous call loaded) and returns rc;
 * _ok asserts it loaded as one route without a message. */
int cfgt_load_url(const char *url);
void cfgt_load_url_ok(const char *url);

/* 1 if some message contains a and (unless NULL) b; expect_ fails the test
 * with every message printed when none does. */
int cfgt_has_error(const char *a, const char *b);
void cfgt_expect_error(const char *a, const char *b);

/* The URL fails, and a message names the key (URL spelling). */
void cfgt_url_fails(const char *url, const char *key);

/* Writes text to cfgt_path; loads it (replacing what a previous call
 * loaded) and returns rc; _ok asserts it loaded without a message. */
void cfgt_write_file(const char *text);
int cfgt_load_yaml(const char *text);
void cfgt_load_yaml_ok(const char *text);

/* The file fails with a message "FILE:LINE: route ROUTE: key KEY:". */
void cfgt_yaml_fails_at(const char *text, unsigned line, const char *route, const char *key);

/* Route i of cfgt_cfg (asserted to exist). */
const struct route_cfg *cfgt_route(size_t i);

/* Asserts ss is family, ip and port. */
void cfgt_check_sa(const struct sockaddr_storage *ss, int family, const char *ip, int port);

#endif /* PPFWD_TESTS_CFGTEST_H */
