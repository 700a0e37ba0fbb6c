/*
 * log.c - one event per line on stderr, as text or JSON (log_*); see log.h.
 *
 * Each call builds its line in its own buffer. Before log_async_start()
 * (subcommands, unit tests) the line goes to the kernel with one write(2).
 * Once the daemon runs, a worker must never wait on whoever reads stderr: a
 * full pipe nobody drains would otherwise freeze the data plane after 64 KB.
 * So each line is copied into one bounded ring under a short lock, and a
 * writer thread of its own, the only one that may block, hands the ring to
 * the kernel. O_NONBLOCK on stderr was the other way, and a wrong one: it is
 * a flag of the open file description, shared with whoever else holds the fd
 * (the shell, a supervisor, our own fprintf(stderr)), and MSG_DONTWAIT only
 * works where stderr is a socket (journald), not on a pipe or a file.
 *
 * A line that does not fit is dropped and counted (log_dropped_total(), the
 * metric ppfwd_log_lines_dropped_total); once a write succeeds again, one
 * log_lines_dropped line says how many were lost. Per-connection events at
 * info level or below are also rate limited (LOG_RATE lines per second and
 * event); what is held back is counted and said in one log_suppressed line.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
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

/* Address text, or "-" for a family addr_format does not know (AF_UNSPEC).
 * An IPv4 client of a dual-stack listener is shown as IPv4 (addr_unmapped). */
static const char *log_addr(const struct sockaddr *sa, char *buf, size_t cap)
{
    struct sockaddr_storage v4;

    return addr_format(addr_unmapped(sa, &v4), buf, cap) < 0 ? "-" : buf;
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

/* ---- output: direct, or through the ring and its writer thread ---------- */

enum { OUT_DIRECT, OUT_RING, OUT_ABANDONED };

/* One ring for the process. head and tail count bytes ever queued and ever
 * written, so head - tail bytes are queued at buf[tail % cap]. Producers
 * copy whole lines into the free part under mu; the writer reads the queued
 * part without mu (producers never touch it) and advances tail under mu. */
static struct {
    pthread_mutex_t mu;
    pthread_cond_t more;    /* the writer: bytes queued, a notice due, or stop */
    pthread_cond_t drained; /* log_flush: the queue is empty */
    int mode;               /* OUT_*, under mu */
    int stop;               /* the writer exits once the queue is empty */
    int write_ok;           /* the writer's last write succeeded */
    char *buf;
    size_t cap;
    uint64_t head, tail;
    pthread_t thread;
} R = {.mu = PTHREAD_MUTEX_INITIALIZER, .mode = OUT_DIRECT};

static _Atomic uint64_t dropped_total, dropped_held; /* held: not yet in a notice */
static _Atomic uint64_t suppressed_total;

/* The rate limit of per-connection events (the table below) at info level
 * and below, per event and process: at most LOG_RATE lines in each second
 * of CLOCK_MONOTONIC; the rest are held and counted. */
static const char *const rate_events[] = {"conn_open", "conn_close", "udp_session_open",
                                          "udp_session_close"};
#define NRATE (sizeof(rate_events) / sizeof(rate_events[0]))

static struct rate {
    _Atomic uint64_t window; /* the second being counted, + 1 (0: never) */
    atomic_uint count;       /* lines allowed or held in it */
    _Atomic uint64_t held;   /* held back, not yet said in log_suppressed */
    _Atomic uint64_t total;
} rates[NRATE];

static int log_emit(enum log_level level, const char *event, const char *route, ...);

static uint64_t mono_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t count_lines(const char *p, size_t len)
{
    uint64_t n = 0;
    const char *end = p + len;

    while (p < end && (p = memchr(p, '\n', (size_t)(end - p))) != NULL) {
        n++;
        p++;
    }
    return n;
}

static void count_dropped(uint64_t n)
{
    atomic_fetch_add(&dropped_total, n);
    atomic_fetch_add(&dropped_held, n);
}

/* Writes all of [p, p + len) to stderr, waiting as long as it takes (the
 * writer thread, or a process without workers). Returns 0, or -1 when the fd
 * refused the bytes for good (EPIPE, EBADF, ...): the caller counts them.
 * EAGAIN only if someone else set O_NONBLOCK on the shared file description:
 * wait for room rather than spin. */
static int out_write(const char *p, size_t len)
{
    struct pollfd pfd = {.fd = STDERR_FILENO, .events = POLLOUT};

    while (len > 0) {
        ssize_t n = write(STDERR_FILENO, p, len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN) {
            poll(&pfd, 1, 1000);
            continue;
        }
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Hands one whole line on: written now (direct), queued in the ring, or
 * dropped and counted when the ring has no room for all of it. Returns 0,
 * or -1 when dropped. */
static int out_line(const char *p, size_t len)
{
    pthread_mutex_lock(&R.mu);
    if (R.mode == OUT_DIRECT) {
        pthread_mutex_unlock(&R.mu);
        if (out_write(p, len) == 0)
            return 0;
        count_dropped(1);
        return -1;
    }
    if (R.mode == OUT_RING && R.cap - (R.head - R.tail) >= len) {
        size_t off = (size_t)(R.head % R.cap), first = R.cap - off < len ? R.cap - off : len;
        memcpy(R.buf + off, p, first);
        memcpy(R.buf, p + first, len - first);
        R.head += len;
        pthread_cond_signal(&R.more);
        pthread_mutex_unlock(&R.mu);
        return 0;
    }
    pthread_cond_signal(&R.more); /* the writer reports the drop once it can */
    pthread_mutex_unlock(&R.mu);
    count_dropped(1);
    return -1;
}

/* Says how many lines of each rate-limited event were held back: in the
 * first line of a new second, from the writer once a flood is over, and at
 * a flush. Each count is said once (exchange); a line that finds the ring
 * full gives its count back for the next. */
static void rate_report(struct rate *r, const char *event)
{
    uint64_t n = atomic_exchange(&r->held, 0);

    if (n > 0 && log_emit(LOG_WARN, "log_suppressed", NULL, "event", LOG_STR, event, "suppressed",
                          LOG_UINT, n, "suppressed_total", LOG_UINT, atomic_load(&r->total),
                          "limit_per_s", LOG_UINT, (uint64_t)LOG_RATE, LOG_END) != 0)
        atomic_fetch_add(&r->held, n);
}

/* Reports the held counts of the events whose second is over (all of
 * them when all is set: a flush). */
static void rate_report_all(int all)
{
    uint64_t now = mono_ms() / 1000 + 1;

    for (size_t i = 0; i < NRATE; i++) {
        if (all || atomic_load(&rates[i].window) != now)
            rate_report(&rates[i], rate_events[i]);
    }
}

/* 1 if a line of event at level may be written now, 0 if it is held back. */
static int rate_allow(enum log_level level, const char *event)
{
    struct rate *r = NULL;
    uint64_t now, w;

    if (level > LOG_INFO)
        return 1;
    for (size_t i = 0; i < NRATE && r == NULL; i++) {
        if (strcmp(event, rate_events[i]) == 0)
            r = &rates[i];
    }
    if (r == NULL)
        return 1;
    now = mono_ms() / 1000 + 1;
    w = atomic_load(&r->window);
    if (w != now && atomic_compare_exchange_strong(&r->window, &w, now)) {
        /* A line or two of the old second may still count into the new
         * one: the limit is a bound on volume, not an exact quota. */
        atomic_store(&r->count, 0);
        rate_report(r, event);
    }
    if (atomic_fetch_add(&r->count, 1) < LOG_RATE)
        return 1;
    atomic_fetch_add(&r->held, 1);
    atomic_fetch_add(&r->total, 1);
    atomic_fetch_add(&suppressed_total, 1);
    return 0;
}

/* The log_lines_dropped notice, once writing works again. A notice that
 * finds the ring full again is dropped like any line: its count goes back,
 * to be said (one more) by the next one. */
static void drop_report(void)
{
    uint64_t n = atomic_exchange(&dropped_held, 0);

    if (n > 0 && log_emit(LOG_WARN, "log_lines_dropped", NULL, "dropped", LOG_UINT, n,
                          "dropped_total", LOG_UINT, atomic_load(&dropped_total), LOG_END) != 0)
        atomic_fetch_add(&dropped_held, n);
}

/* Lines queued in the ring, for counting what is lost. Called with mu held. */
static uint64_t queued_lines(void)
{
    size_t off = (size_t)(R.tail % R.cap), n = (size_t)(R.head - R.tail);
    size_t first = n > R.cap - off ? R.cap - off : n;

    return count_lines(R.buf + off, first) + count_lines(R.buf, n - first);
}

/* The writer thread: the only one that waits on stderr's reader. Called
 * with mu held; returns with it held. Writes one contiguous part of the
 * queue, then the notices that a working stderr can now carry. */
static void writer_step(void)
{
    size_t off = (size_t)(R.tail % R.cap);
    size_t n = (size_t)(R.head - R.tail);
    int ok;

    if (n > R.cap - off)
        n = R.cap - off;
    pthread_mutex_unlock(&R.mu);
    ok = out_write(R.buf + off, n) == 0;
    if (!ok)
        count_dropped(count_lines(R.buf + off, n));
    pthread_mutex_lock(&R.mu);
    R.tail += n;
    R.write_ok = ok;
    if (R.head == R.tail)
        pthread_cond_broadcast(&R.drained);
}

static void *writer_main(void *arg)
{
    struct timespec ts;

    (void)arg;
    pthread_mutex_lock(&R.mu);
    while (R.mode == OUT_RING) {
        if (R.head != R.tail) {
            writer_step();
        } else if (R.stop) {
            break;
        } else {
            /* Wakes at least once a second: a flood that stopped still
             * gets its log_suppressed line. */
            clock_gettime(CLOCK_MONOTONIC, &ts);
            ts.tv_sec += 1;
            pthread_cond_timedwait(&R.more, &R.mu, &ts);
        }
        if (R.write_ok && R.mode == OUT_RING) {
            pthread_mutex_unlock(&R.mu);
            drop_report();
            rate_report_all(0);
            pthread_mutex_lock(&R.mu);
        }
    }
    if (R.mode == OUT_ABANDONED) {
        /* log_async_stop gave up on us while stderr was stuck; it is
         * moving again: what is still queued is lost, the rest goes direct. */
        count_dropped(queued_lines());
        free(R.buf);
        R.buf = NULL;
        R.mode = OUT_DIRECT;
    }
    pthread_mutex_unlock(&R.mu);
    return NULL;
}

int log_async_start(size_t cap)
{
    pthread_condattr_t ca;
    sigset_t all, old;
    int rc;

    pthread_mutex_lock(&R.mu);
    if (R.mode != OUT_DIRECT) {
        pthread_mutex_unlock(&R.mu);
        return -EBUSY;
    }
    R.buf = malloc(cap);
    if (R.buf == NULL) {
        pthread_mutex_unlock(&R.mu);
        return -ENOMEM;
    }
    /* Touched now, so its pages are resident from the start: otherwise RSS
     * creeps up by the ring's size over the first lines logged, which looks
     * like a leak to anyone watching it (test_reload_memory did). */
    memset(R.buf, 0, cap);
    R.cap = cap;
    R.head = R.tail = 0;
    R.stop = 0;
    R.write_ok = 1;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&R.more, &ca);
    pthread_cond_init(&R.drained, &ca);
    pthread_condattr_destroy(&ca);
    /* The writer takes no signal: SIGTERM and SIGHUP belong to the thread
     * that sigwaits for them, whenever the caller blocks them. */
    sigfillset(&all);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    R.mode = OUT_RING;
    rc = pthread_create(&R.thread, NULL, writer_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        R.mode = OUT_DIRECT;
        free(R.buf);
        R.buf = NULL;
    }
    pthread_mutex_unlock(&R.mu);
    return -rc;
}

/* Waits until the ring is empty or the deadline passes. Called with mu held.
 * Returns 1 when empty. */
static int wait_drained(unsigned timeout_ms)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    ts.tv_sec += timeout_ms / 1000;
    ts.tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    while (R.mode == OUT_RING && R.head != R.tail) {
        if (pthread_cond_timedwait(&R.drained, &R.mu, &ts) == ETIMEDOUT)
            break;
    }
    return R.mode != OUT_RING || R.head == R.tail;
}

int log_flush(unsigned timeout_ms)
{
    int ok;

    rate_report_all(1);
    drop_report();
    pthread_mutex_lock(&R.mu);
    ok = wait_drained(timeout_ms);
    pthread_mutex_unlock(&R.mu);
    return ok ? 0 : -ETIMEDOUT;
}

int log_async_stop(unsigned timeout_ms)
{
    int ok;

    rate_report_all(1);
    pthread_mutex_lock(&R.mu);
    if (R.mode != OUT_RING) {
        pthread_mutex_unlock(&R.mu);
        return 0;
    }
    ok = wait_drained(timeout_ms);
    if (!ok) {
        /* stderr is stuck: leave the writer to its write(2) rather than
         * hold the exit; lines logged from now on are dropped, counted. */
        R.mode = OUT_ABANDONED;
        pthread_detach(R.thread);
        pthread_mutex_unlock(&R.mu);
        return -ETIMEDOUT;
    }
    R.stop = 1;
    pthread_cond_signal(&R.more);
    pthread_mutex_unlock(&R.mu);
    pthread_join(R.thread, NULL);
    pthread_mutex_lock(&R.mu);
    R.mode = OUT_DIRECT;
    free(R.buf);
    R.buf = NULL;
    pthread_mutex_unlock(&R.mu);
    /* Drops the writer had no write left to report: said now, directly. */
    drop_report();
    return 0;
}

uint64_t log_dropped_total(void)
{
    return atomic_load(&dropped_total);
}

uint64_t log_suppressed_total(void)
{
    return atomic_load(&suppressed_total);
}

/* ---- events ------------------------------------------------------------- */

static int log_current_format(void)
{
    /* log_init() was not called (a unit test, a subcommand): decide now. */
    if (log_fmt == LOG_FORMAT_AUTO)
        return isatty(STDERR_FILENO) ? LOG_FORMAT_TEXT : LOG_FORMAT_JSON;
    return log_fmt;
}

static int log_text(enum log_level level, const char *event, const char *route, va_list *ap)
{
    struct log_line b = {0};
    int rc = -1;
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
        rc = out_line(b.p, b.len);
    free(b.p);
    return rc;
}

static int log_json(enum log_level level, const char *event, const char *route, va_list *ap)
{
    struct json j;
    int rc = -1;
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
    /* Every line has a route (INTERFACE.md: "at least time, level, msg,
     * route"): null for a process-wide event. */
    if (route != NULL)
        json_string(&j, "route", route);
    else
        json_null(&j, "route");
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
        rc = out_line(out, len);
    json_free(&j);
    return rc;
}

/* Returns 0, or -1 when the line was dropped (or could not be built). */
static int log_vemit(enum log_level level, const char *event, const char *route, va_list *ap)
{
    int saved = errno, rc;

    if (log_current_format() == LOG_FORMAT_TEXT)
        rc = log_text(level, event, route, ap);
    else
        rc = log_json(level, event, route, ap);
    /* Callers log on error paths and may still look at errno afterwards. */
    errno = saved;
    return rc;
}

/* An event of the logger itself: written whatever the threshold, since
 * it tells of lines lost at any level. */
static int log_emit(enum log_level level, const char *event, const char *route, ...)
{
    va_list ap;
    int rc;

    va_start(ap, route);
    rc = log_vemit(level, event, route, &ap);
    va_end(ap);
    return rc;
}

void log_event(enum log_level level, const char *event, const char *route, ...)
{
    va_list ap;

    if (!log_enabled(level) || !rate_allow(level, event))
        return;
    va_start(ap, route);
    log_vemit(level, event, route, &ap);
    va_end(ap);
}
