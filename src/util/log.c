/*
 * log.c - one event per line on stderr, as text or JSON (log_*); see log.h.
 *
 * Each call builds its line in its own buffer and hands it to the kernel with
 * one write(2): a pipe takes a write of up to PIPE_BUF bytes atomically, so
 * lines from several threads never interleave, and no lock is held while a
 * slow reader (a terminal, journald) makes us wait.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "util/addr.h"
#include "util/json.h"
#include "util/log.h"

/* Set by log_init() before any thread starts, read-only afterwards. */
static enum log_level log_threshold = LOG_INFO;
static enum log_format log_fmt = LOG_FORMAT_AUTO;

static const char *const log_names[] = {"debug", "info", "warn", "error"};

/* A text line under construction. It grows on the heap: a hostile TLV value
 * can be long, and a truncated line would be worse than a slow one. */
struct log_line {
    char *p;
    size_t len;
    size_t cap;
    int err;
};

void log_init(enum log_level level, enum log_format format)
{
    log_threshold = level;
    log_fmt = format;
    if (log_fmt == LOG_FORMAT_AUTO)
        log_fmt = isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
}

int log_level_parse(const char *s)
{
    for (size_t i = 0; i < sizeof(log_names) / sizeof(log_names[0]); i++)
        if (strcmp(s, log_names[i]) == 0)
            return (int)i;
    return -1;
}

int log_enabled(enum log_level level)
{
    return level >= log_threshold && level <= LOG_ERROR;
}

static void line_put(struct log_line *b, const char *s, size_t n)
{
    char *p;
    size_t cap;

    if (b->err)
        return;
    if (b->len + n + 1 > b->cap) {
        cap = b->cap ? b->cap : 256;
        while (cap < b->len + n + 1)
            cap *= 2;
        p = realloc(b->p, cap);
        if (p == NULL) {
            b->err = 1;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void line_str(struct log_line *b, const char *s)
{
    line_put(b, s, strlen(s));
}

/* Bare words stay bare; anything a reader could misparse (space, quote, '=',
 * control or non-ASCII bytes, emptiness) is quoted with JSON's escapes, which
 * also keeps terminal control sequences out of the log. */
static int text_needs_quotes(const char *s)
{
    if (*s == '\0')
        return 1;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || *p == '"' || *p == '=' || *p == '\\')
            return 1;
    return 0;
}

static void text_value(struct log_line *b, const char *s)
{
    struct json j;

    if (!text_needs_quotes(s)) {
        line_str(b, s);
        return;
    }
    json_init_buf(&j);
    json_string(&j, NULL, s);
    if (json_error(&j) != 0)
        b->err = 1;
    else
        line_str(b, json_buf(&j, NULL));
    json_free(&j);
}

/* "2026-11-23T19:55:00.123Z": UTC with milliseconds, as RFC 3339 readers expect. */
static void log_time(char *buf, size_t cap)
{
    struct timespec ts;
    struct tm tm;
    size_t n;

    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    n = strftime(buf, cap, "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(buf + n, cap - n, ".%03ldZ", ts.tv_nsec / 1000000L);
}

/* One field value as text: the caller has fetched it from the va_list. */
union log_value {
    const char *s;
    int64_t i;
    uint64_t u;
    const struct sockaddr *sa;
};

/* Reads the value of a field of type t; returns 0, or -1 for an unknown
 * type (the rest of the list cannot be walked then). */
static int log_fetch(va_list *ap, int t, union log_value *v)
{
    switch (t) {
    case LOG_STR:
        v->s = va_arg(*ap, const char *);
        return 0;
    case LOG_INT:
        v->i = va_arg(*ap, int64_t);
        return 0;
    case LOG_UINT:
        v->u = va_arg(*ap, uint64_t);
        return 0;
    case LOG_ADDR:
        v->sa = va_arg(*ap, const struct sockaddr *);
        return 0;
    default:
        return -1;
    }
}

/* Address text, or "-" for a family addr_format does not know (AF_UNSPEC). */
static const char *log_addr(const struct sockaddr *sa, char *buf, size_t cap)
{
    return addr_format(sa, buf, cap) < 0 ? "-" : buf;
}

static void text_field(struct log_line *b, const char *key, int t, const union log_value *v)
{
    char tmp[ADDR_STRLEN];

    line_put(b, " ", 1);
    line_str(b, key);
    line_put(b, "=", 1);
    if (t == LOG_STR) {
        text_value(b, v->s);
    } else if (t == LOG_ADDR) {
        text_value(b, log_addr(v->sa, tmp, sizeof(tmp)));
    } else {
        if (t == LOG_INT)
            snprintf(tmp, sizeof(tmp), "%" PRId64, v->i);
        else
            snprintf(tmp, sizeof(tmp), "%" PRIu64, v->u);
        line_str(b, tmp);
    }
}

static void json_field(struct json *j, const char *key, int t, const union log_value *v)
{
    char tmp[ADDR_STRLEN];

    if (t == LOG_STR)
        json_string(j, key, v->s);
    else if (t == LOG_ADDR)
        json_string(j, key, log_addr(v->sa, tmp, sizeof(tmp)));
    else if (t == LOG_INT)
        json_int(j, key, v->i);
    else
        json_uint(j, key, v->u);
}

/* Hands the whole line to the kernel. A short write (only possible past
 * PIPE_BUF or on a full non-blocking pipe) is finished rather than lost. */
static void log_write(const char *p, size_t len)
{
    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0)
            return;
        p += n;
        len -= (size_t)n;
    }
}

static int log_current_format(void)
{
    /* log_init() was not called (a unit test, a subcommand): decide now. */
    if (log_fmt == LOG_FORMAT_AUTO)
        return isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    return log_fmt;
}

static void log_text(enum log_level level, const char *event, const char *route, va_list *ap)
{
    struct log_line b = {0};
    char ts[40];
    const char *key;
    union log_value v;
    int t;

    log_time(ts, sizeof(ts));
    line_str(&b, ts);
    line_put(&b, " ", 1);
    line_str(&b, log_names[level]);
    line_put(&b, " ", 1);
    text_value(&b, event);
    if (route != NULL) {
        v.s = route;
        text_field(&b, "route", LOG_STR, &v);
    }
    while ((key = va_arg(*ap, const char *)) != NULL) {
        t = va_arg(*ap, int);
        if (log_fetch(ap, t, &v) != 0)
            break;
        if ((t == LOG_STR && v.s == NULL) || (t == LOG_ADDR && v.sa == NULL))
            continue;
        text_field(&b, key, t, &v);
    }
    line_put(&b, "\n", 1);
    if (!b.err)
        log_write(b.p, b.len);
    free(b.p);
}

static void log_json(enum log_level level, const char *event, const char *route, va_list *ap)
{
    struct json j;
    char ts[40];
    const char *key, *out;
    union log_value v;
    size_t len;
    int t;

    json_init_buf(&j);
    log_time(ts, sizeof(ts));
    json_object_begin(&j, NULL);
    json_string(&j, "time", ts);
    json_string(&j, "level", log_names[level]);
    json_string(&j, "msg", event);
    if (route != NULL)
        json_string(&j, "route", route);
    while ((key = va_arg(*ap, const char *)) != NULL) {
        t = va_arg(*ap, int);
        if (log_fetch(ap, t, &v) != 0)
            break;
        if ((t == LOG_STR && v.s == NULL) || (t == LOG_ADDR && v.sa == NULL))
            continue;
        json_field(&j, key, t, &v);
    }
    json_object_end(&j);
    json_newline(&j);
    out = json_buf(&j, &len);
    if (json_error(&j) == 0)
        log_write(out, len);
    json_free(&j);
}

void log_event(enum log_level level, const char *event, const char *route, ...)
{
    int saved = errno;
    va_list ap;

    if (!log_enabled(level))
        return;
    va_start(ap, route);
    if (log_current_format() == LOG_FORMAT_TEXT)
        log_text(level, event, route, &ap);
    else
        log_json(level, event, route, &ap);
    va_end(ap);
    /* Callers log on error paths and may still look at errno afterwards. */
    errno = saved;
}
