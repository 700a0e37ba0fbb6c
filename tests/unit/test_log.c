/*
 * test_log.c - the logger as an operator's tools see it: exact text and JSON
 * lines on stderr, the level threshold, hostile strings escaped, and whole
 * lines from concurrent writers.
 *
 * stderr is swapped for a pipe while a test logs, and a reader thread drains
 * the pipe meanwhile, so writers never block on a full pipe. Nothing is
 * asserted while stderr is captured: cmocka reports failures on stderr.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
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

#include "util/log.h"

#define TIME_LEN 24 /* "2026-11-23T19:55:00.123Z" */

struct capture {
    int saved; /* the real stderr */
    int rfd;   /* read end of the pipe */
    pthread_t reader;
    char *buf; /* everything written, NUL-terminated */
    size_t len;
    size_t cap;
};

/* The last capture's bytes: freed by the next capture or the group teardown,
 * so that a failed assertion (a longjmp) leaves no leak report. */
static char *last_buf;

static int capture_teardown(void **state)
{
    (void)state;
    free(last_buf);
    last_buf = NULL;
    return 0;
}

static void *capture_reader(void *arg)
{
    struct capture *c = arg;
    char chunk[65536];
    ssize_t n;

    while ((n = read(c->rfd, chunk, sizeof(chunk))) != 0) {
        if (n == -1) {
            if (errno == EINTR)
                continue;
            break;
        }
        while (c->len + (size_t)n + 1 > c->cap) {
            c->cap = c->cap ? c->cap * 2 : 65536;
            c->buf = realloc(c->buf, c->cap);
            if (c->buf == NULL)
                abort();
        }
        memcpy(c->buf + c->len, chunk, (size_t)n);
        c->len += (size_t)n;
        c->buf[c->len] = '\0';
    }
    return NULL;
}

static void capture_begin(struct capture *c)
{
    int p[2];

    capture_teardown(NULL);
    memset(c, 0, sizeof(*c));
    assert_int_equal(pipe(p), 0);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved != -1);
    assert_true(dup2(p[1], STDERR_FILENO) != -1);
    close(p[1]);
    c->rfd = p[0];
    assert_int_equal(pthread_create(&c->reader, NULL, capture_reader, c), 0);
}

/* Restores stderr; the reader sees EOF once no write end is left. Returns
 * the captured bytes (owned by c, "" when none). */
static const char *capture_end(struct capture *c)
{
    dup2(c->saved, STDERR_FILENO);
    close(c->saved);
    pthread_join(c->reader, NULL);
    close(c->rfd);
    last_buf = c->buf;
    return c->buf != NULL ? c->buf : "";
}

/* "YYYY-MM-DDTHH:MM:SS.mmmZ" */
static int is_time(const char *s)
{
    static const char pat[] = "dddd-dd-ddTdd:dd:dd.dddZ";

    for (size_t i = 0; i < TIME_LEN; i++) {
        if (pat[i] == 'd' ? (s[i] < '0' || s[i] > '9') : s[i] != pat[i])
            return 0;
    }
    return 1;
}

/* Checks a text line: the time, then exactly rest. */
static void check_text(const char *line, const char *rest)
{
    assert_true(strlen(line) > TIME_LEN);
    assert_true(is_time(line));
    assert_string_equal(line + TIME_LEN, rest);
}

/* Checks a JSON line: {"time":"<time>", then exactly rest. */
static void check_json(const char *line, const char *rest)
{
    static const char head[] = "{\"time\":\"";
    size_t h = sizeof(head) - 1;

    assert_true(strlen(line) > h + TIME_LEN + 1);
    assert_memory_equal(line, head, h);
    assert_true(is_time(line + h));
    assert_int_equal(line[h + TIME_LEN], '"');
    assert_string_equal(line + h + TIME_LEN + 1, rest);
}

static struct sockaddr_in sin4(const char *ip, uint16_t port)
{
    struct sockaddr_in a;

    memset(&a, 0, sizeof(a));
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    inet_pton(AF_INET, ip, &a.sin_addr);
    return a;
}

static struct sockaddr_in6 sin6(const char *ip, uint16_t port)
{
    struct sockaddr_in6 a;

    memset(&a, 0, sizeof(a));
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    inet_pton(AF_INET6, ip, &a.sin6_addr);
    return a;
}

/* The conn_close example of log.h, with every field type. */
static void log_sample(void)
{
    struct sockaddr_in client = sin4("192.0.2.10", 51234);
    struct sockaddr_in6 peer = sin6("2001:db8::1", 443);

    log_event(LOG_INFO, "conn_close", "ssh", "client", LOG_ADDR, (struct sockaddr *)&client, "peer",
              LOG_ADDR, (struct sockaddr *)&peer, "upstream", LOG_STR, "127.0.0.1:22", "bytes_in",
              LOG_UINT, (uint64_t)1234, "delta", LOG_INT, (int64_t)-5, "error", LOG_STR,
              (const char *)NULL, "gone", LOG_ADDR, (const struct sockaddr *)NULL, "note", LOG_STR,
              "two words", "empty", LOG_STR, "", LOG_END);
}

static void test_text_line(void **state)
{
    struct capture c;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_TEXT);
    capture_begin(&c);
    log_sample();
    check_text(capture_end(&c),
               " info conn_close route=ssh client=192.0.2.10:51234 peer=[2001:db8::1]:443"
               " upstream=127.0.0.1:22 bytes_in=1234 delta=-5 note=\"two words\" empty=\"\"\n");
}

static void test_json_line(void **state)
{
    struct capture c;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_sample();
    check_json(capture_end(&c), ",\"level\":\"info\",\"msg\":\"conn_close\",\"route\":\"ssh\","
                                "\"client\":\"192.0.2.10:51234\",\"peer\":\"[2001:db8::1]:443\","
                                "\"upstream\":\"127.0.0.1:22\",\"bytes_in\":1234,\"delta\":-5,"
                                "\"note\":\"two words\",\"empty\":\"\"}\n");
}

static void test_no_route(void **state)
{
    struct capture c;

    (void)state;
    log_init(LOG_DEBUG, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_event(LOG_ERROR, "accept_error", NULL, "error", LOG_STR, "Too many open files", LOG_END);
    log_event(LOG_DEBUG, "tick", NULL, LOG_END);
    capture_end(&c);
    {
        char *second = strchr(c.buf, '\n') + 1;
        second[-1] = '\0';
        check_json(c.buf, ",\"level\":\"error\",\"msg\":\"accept_error\","
                          "\"error\":\"Too many open files\"}");
        check_json(second, ",\"level\":\"debug\",\"msg\":\"tick\"}\n");
    }
}

static void test_threshold(void **state)
{
    struct capture c;
    const char *out;

    (void)state;
    log_init(LOG_WARN, LOG_FORMAT_TEXT);
    assert_false(log_enabled(LOG_DEBUG));
    assert_false(log_enabled(LOG_INFO));
    assert_true(log_enabled(LOG_WARN));
    assert_true(log_enabled(LOG_ERROR));
    capture_begin(&c);
    log_event(LOG_DEBUG, "a", NULL, LOG_END);
    log_event(LOG_INFO, "b", NULL, LOG_END);
    log_event(LOG_WARN, "c", NULL, LOG_END);
    log_event(LOG_ERROR, "d", NULL, LOG_END);
    out = capture_end(&c);
    assert_int_equal(strlen(out), 2 * TIME_LEN + 17);
    check_text(out + TIME_LEN + 8, " error d\n");
    assert_memory_equal(out + TIME_LEN, " warn c\n", 8);
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(log_level_parse("debug"), LOG_DEBUG);
    assert_int_equal(log_level_parse("info"), LOG_INFO);
    assert_int_equal(log_level_parse("warn"), LOG_WARN);
    assert_int_equal(log_level_parse("error"), LOG_ERROR);
    assert_int_equal(log_level_parse("INFO"), -1);
    assert_int_equal(log_level_parse("warning"), -1);
    assert_int_equal(log_level_parse(""), -1);
}

/* Values from the wire: quotes, newlines, terminal escapes, invalid UTF-8. */
static const char hostile[] = "a\"b\\c\nd\x1b[2J\xff\tz\x7f";

static void test_json_hostile(void **state)
{
    struct capture c;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_event(LOG_WARN, "proxy_header_refused", "r\"1\n", "reason", LOG_STR, hostile, LOG_END);
    check_json(capture_end(&c),
               ",\"level\":\"warn\",\"msg\":\"proxy_header_refused\",\"route\":\"r\\\"1\\n\","
               "\"reason\":\"a\\\"b\\\\c\\nd\\u001b[2J\\ufffd\\tz\\u007f\"}\n");
}

static void test_text_hostile(void **state)
{
    struct capture c;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_TEXT);
    capture_begin(&c);
    log_event(LOG_WARN, "x", "a=b", "reason", LOG_STR, hostile, "ok", LOG_STR, "tcp://:1/[::1]:2",
              LOG_END);
    check_text(capture_end(&c), " warn x route=\"a=b\" reason=\"a\\\"b\\\\c\\nd\\u001b[2J\\ufffd"
                                "\\tz\\u007f\" ok=tcp://:1/[::1]:2\n");
}

static void test_errno_kept(void **state)
{
    struct capture c;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    capture_begin(&c);
    errno = EMFILE;
    log_event(LOG_ERROR, "accept_error", NULL, LOG_END);
    capture_end(&c);
    assert_int_equal(errno, EMFILE);
}

#define THREADS 4
#define LINES 1000

static char pad[300];

static void *writer(void *arg)
{
    int64_t id = (int64_t)(intptr_t)arg;

    for (uint64_t i = 0; i < LINES; i++)
        log_event(LOG_INFO, "conn_close", "busy", "thread", LOG_INT, id, "seq", LOG_UINT, i, "pad",
                  LOG_STR, pad, LOG_END);
    return NULL;
}

/* Parses one line of the concurrent test; returns 0 if it is intact. */
static int parse_busy(const char *line, size_t len, unsigned *id, unsigned *seq)
{
    char want[512];
    int n;

    if (len < 9 + TIME_LEN || !is_time(line + 9))
        return -1;
    if (sscanf(line + 9 + TIME_LEN,
               "\",\"level\":\"info\",\"msg\":\"conn_close\",\"route\":"
               "\"busy\",\"thread\":%u,\"seq\":%u",
               id, seq) != 2)
        return -1;
    n = snprintf(want, sizeof(want), "\",\"thread\":%u,\"seq\":%u,\"pad\":\"%s\"}", *id, *seq, pad);
    if (n < 0 || (size_t)n >= sizeof(want) || *id >= THREADS || *seq >= LINES)
        return -1;
    return strstr(line, want) != NULL && line[len] == '\n' ? 0 : -1;
}

static void test_concurrent(void **state)
{
    static unsigned char seen[THREADS][LINES];
    pthread_t t[THREADS];
    struct capture c;
    unsigned id, seq, lines = 0;
    char *p, *nl;

    (void)state;
    memset(pad, 'x', sizeof(pad) - 1);
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    capture_begin(&c);
    for (intptr_t i = 0; i < THREADS; i++)
        pthread_create(&t[i], NULL, writer, (void *)i);
    for (int i = 0; i < THREADS; i++)
        pthread_join(t[i], NULL);
    capture_end(&c);
    assert_non_null(c.buf);
    for (p = c.buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        assert_int_equal(parse_busy(p, (size_t)(nl - p), &id, &seq), 0);
        assert_int_equal(seen[id][seq], 0);
        seen[id][seq] = 1;
        lines++;
    }
    assert_int_equal(*p, '\0');
    assert_int_equal(lines, THREADS * LINES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_line),    cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_no_route),     cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_level_parse),  cmocka_unit_test(test_json_hostile),
        cmocka_unit_test(test_text_hostile), cmocka_unit_test(test_errno_kept),
        cmocka_unit_test(test_concurrent),
    };

    return cmocka_run_group_tests(tests, NULL, capture_teardown);
}
