/*
 * test_log.c - the logger as an operator's tools see it: exact text and JSON
 * lines on stderr, the level threshold, hostile strings escaped, and whole
 * lines from concurrent writers; the ring that keeps a stuck stderr from
 * stalling anyone (drops counted and reported, a bounded exit), and the
 * rate limit of per-connection events.
 *
 * stderr is swapped for a pipe while a test logs, and a reader thread drains
 * the pipe meanwhile, so writers never block on a full pipe. Nothing is
 * asserted while stderr is captured: cmocka reports failures on stderr.
 */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
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
#include <time.h>
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

/* stderr becomes a pipe of pipe_size bytes (0: the default) that nobody
 * reads until capture_read(). */
static void capture_open(struct capture *c, int pipe_size)
{
    int p[2];

    capture_teardown(NULL);
    memset(c, 0, sizeof(*c));
    assert_int_equal(pipe(p), 0);
    if (pipe_size > 0)
        assert_true(fcntl(p[1], F_SETPIPE_SZ, pipe_size) >= pipe_size);
    c->saved = dup(STDERR_FILENO);
    assert_true(c->saved != -1);
    assert_true(dup2(p[1], STDERR_FILENO) != -1);
    close(p[1]);
    c->rfd = p[0];
}

static void capture_read(struct capture *c)
{
    assert_int_equal(pthread_create(&c->reader, NULL, capture_reader, c), 0);
}

static void capture_begin(struct capture *c)
{
    capture_open(c, 0);
    capture_read(c);
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

/* An IPv4 client of a dual-stack listener (::ffff:a.b.c.d) is shown as the
 * IPv4 client it is, in both formats; a real IPv6 address is untouched. */
static void test_mapped_shown_as_ipv4(void **state)
{
    struct sockaddr_in6 mapped = sin6("::ffff:192.0.2.10", 51234), v6 = sin6("::1", 80);
    struct capture c;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_TEXT);
    capture_begin(&c);
    log_event(LOG_INFO, "conn_close", "r", "client", LOG_ADDR, (struct sockaddr *)&mapped,
              "local", LOG_ADDR, (struct sockaddr *)&v6, LOG_END);
    check_text(capture_end(&c), " info conn_close route=r client=192.0.2.10:51234 local=[::1]:80\n");
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    capture_begin(&c);
    log_event(LOG_INFO, "conn_close", "r", "client", LOG_ADDR, (struct sockaddr *)&mapped, LOG_END);
    check_json(capture_end(&c), ",\"level\":\"info\",\"msg\":\"conn_close\",\"route\":\"r\","
                                "\"client\":\"192.0.2.10:51234\"}\n");
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
        /* A process-wide event: route null, every line has one. */
        check_json(c.buf, ",\"level\":\"error\",\"msg\":\"accept_error\",\"route\":null,"
                          "\"error\":\"Too many open files\"}");
        check_json(second, ",\"level\":\"debug\",\"msg\":\"tick\",\"route\":null}\n");
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
        log_event(LOG_INFO, "busy_line", "busy", "thread", LOG_INT, id, "seq", LOG_UINT, i, "pad",
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
               "\",\"level\":\"info\",\"msg\":\"busy_line\",\"route\":"
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

static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* The value of "key": in a JSON line, or -1. */
static long long json_num(const char *line, const char *key)
{
    char pat[64];
    const char *p;

    snprintf(pat, sizeof(pat), "\"%s\":", key);
    p = strstr(line, pat);
    return p ? strtoll(p + strlen(pat), NULL, 10) : -1;
}

/* Counts the lines of buf whose msg is event, and sums their key values. */
static unsigned count_event(const char *buf, const char *event, const char *key, long long *sum)
{
    char pat[64];
    unsigned n = 0;
    const char *p, *nl;

    snprintf(pat, sizeof(pat), "\"msg\":\"%s\"", event);
    if (sum)
        *sum = 0;
    for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        char line[2048];
        size_t len = (size_t)(nl - p) < sizeof(line) - 1 ? (size_t)(nl - p) : sizeof(line) - 1;
        memcpy(line, p, len);
        line[len] = '\0';
        if (strstr(line, pat) == NULL)
            continue;
        n++;
        if (sum)
            *sum += json_num(line, key);
    }
    return n;
}

/* 1 if every line of buf is a whole JSON line: no line lost half-way. */
static int whole_lines(const char *buf)
{
    const char *p, *nl;

    for (p = buf; (nl = strchr(p, '\n')) != NULL; p = nl + 1) {
        if (strncmp(p, "{\"time\":\"", 9) != 0 || nl[-1] != '}')
            return 0;
    }
    return *p == '\0';
}

/* LOG_RATE conn_close lines at info in one second, then the rest held and
 * said in one log_suppressed line; warn lines of the same event pass. */
static void test_rate_limit(void **state)
{
    struct capture c;
    uint64_t before = log_suppressed_total(), t0 = now_ms() / 1000;
    long long said;
    unsigned closes;
    const char *out;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    /* Start at the beginning of a second nobody counted in. */
    while (now_ms() / 1000 == t0)
        usleep(1000);
    capture_begin(&c);
    for (int i = 0; i < LOG_RATE + 500; i++)
        log_event(LOG_INFO, "conn_close", "r", "seq", LOG_UINT, (uint64_t)i, LOG_END);
    for (int i = 0; i < 10; i++)
        log_event(LOG_WARN, "conn_close", "r", "error", LOG_STR, "Connection reset", LOG_END);
    log_flush(1000);
    out = capture_end(&c);
    assert_true(now_ms() / 1000 == t0 + 1); /* all in one second, or the count is off */
    closes = count_event(out, "conn_close", "seq", NULL);
    assert_int_equal(closes, LOG_RATE + 10);
    assert_int_equal(count_event(out, "log_suppressed", "suppressed", &said), 1);
    assert_int_equal(said, 500);
    assert_non_null(strstr(out, "\"event\":\"conn_close\""));
    assert_int_equal(log_suppressed_total() - before, 500);
}

#define STUCK_LINES 2000

/* stderr on a 4 KiB pipe nobody reads, a 16 KiB ring: logging never waits;
 * what did not fit is counted, and once the pipe is read again one
 * log_lines_dropped line says how many, so written + dropped = logged. */
static void test_stuck_stderr_drops(void **state)
{
    struct capture c;
    uint64_t before = log_dropped_total(), t, spent, dropped;
    long long said;
    int flushed, stopped;
    const char *out;

    (void)state;
    memset(pad, 'y', 100);
    pad[100] = '\0';
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    capture_open(&c, 4096);
    assert_int_equal(log_async_start(16 * 1024), 0);
    t = now_ms();
    for (int i = 0; i < STUCK_LINES; i++)
        log_event(LOG_WARN, "busy_line", "r", "seq", LOG_UINT, (uint64_t)i, "pad", LOG_STR, pad,
                  LOG_END);
    spent = now_ms() - t;
    dropped = log_dropped_total() - before;
    capture_read(&c);
    flushed = log_flush(5000);
    stopped = log_async_stop(5000);
    out = capture_end(&c);
    assert_true(spent < 2000);
    assert_true(dropped > 0);
    assert_int_equal(flushed, 0);
    assert_int_equal(stopped, 0);
    assert_true(whole_lines(out));
    assert_true(count_event(out, "log_lines_dropped", "dropped", &said) >= 1);
    /* Every line was written or counted, and every count was said. */
    assert_int_equal((uint64_t)said, log_dropped_total() - before);
    assert_int_equal(count_event(out, "busy_line", NULL, NULL) + dropped, STUCK_LINES);
}

/* The exit waits for a stuck stderr only so long; logging after it drops
 * (counted) instead of blocking; once stderr moves again, the writer left
 * behind finishes and lines are written directly again. */
static void test_stop_bounded(void **state)
{
    struct capture c;
    uint64_t t, spent, before;
    int stopped, restarted = -1;

    (void)state;
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    capture_open(&c, 4096);
    assert_int_equal(log_async_start(16 * 1024), 0);
    for (int i = 0; i < 200; i++)
        log_event(LOG_WARN, "busy_line", "r", "seq", LOG_UINT, (uint64_t)i, "pad", LOG_STR, pad,
                  LOG_END);
    t = now_ms();
    stopped = log_async_stop(300);
    spent = now_ms() - t;
    before = log_dropped_total();
    log_event(LOG_WARN, "after_stop", NULL, LOG_END);
    assert_int_equal(log_dropped_total() - before, 1);
    capture_read(&c);
    for (int i = 0; i < 500 && restarted != 0; i++) {
        restarted = log_async_start(16 * 1024);
        if (restarted != 0)
            usleep(10000);
    }
    if (restarted == 0)
        log_async_stop(5000);
    capture_end(&c);
    assert_int_equal(stopped, -ETIMEDOUT);
    assert_true(spent >= 290 && spent < 1500);
    assert_int_equal(restarted, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_line),    cmocka_unit_test(test_json_line),
        cmocka_unit_test(test_mapped_shown_as_ipv4),
        cmocka_unit_test(test_no_route),     cmocka_unit_test(test_threshold),
        cmocka_unit_test(test_level_parse),  cmocka_unit_test(test_json_hostile),
        cmocka_unit_test(test_text_hostile), cmocka_unit_test(test_errno_kept),
        cmocka_unit_test(test_concurrent),   cmocka_unit_test(test_rate_limit),
        cmocka_unit_test(test_stuck_stderr_drops), cmocka_unit_test(test_stop_bounded),
    };

    return cmocka_run_group_tests(tests, NULL, capture_teardown);
}
