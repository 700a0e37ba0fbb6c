/*
 * log.h - one line per event, as text or JSON, on stderr (log_*).
 *
 * Event names are stable snake_case strings listed in docs/log-events.md.
 * Each line is built in a buffer and written with one write(2), so lines
 * from several worker threads never interleave.
 */
#ifndef PPFWD_LOG_H
#define PPFWD_LOG_H

#include <stdint.h>

enum log_level { LOG_DEBUG, LOG_INFO, LOG_WARN, LOG_ERROR };
enum log_format { LOG_FORMAT_AUTO = -1, LOG_FORMAT_TEXT, LOG_FORMAT_JSON };

/* Field types for log_event's variable arguments. */
enum log_type {
    LOG_STR = 1, /* const char * (NULL: the field is left out) */
    LOG_INT,     /* int64_t */
    LOG_UINT,    /* uint64_t */
    LOG_ADDR,    /* const struct sockaddr * formatted "IP:PORT" (NULL: left out) */
};

#define LOG_END ((const char *)0)

/* Sets the threshold and the format (AUTO: text on a terminal, else JSON).
 * Call before starting threads. */
void log_init(enum log_level level, enum log_format format);

/* Parses "debug", "info", "warn", "error"; returns the level or -1. */
int log_level_parse(const char *s);

/* 1 if level would be written. */
int log_enabled(enum log_level level);

/*
 * Writes one event: time, level, msg = event, route (NULL: left out), then
 * (const char *key, enum log_type, value) triples ended by LOG_END (a NULL
 * key), e.g.
 *   log_event(LOG_INFO, "conn_close", r->name,
 *             "client", LOG_ADDR, &c->client.sa, "bytes_in", LOG_UINT, n,
 *             "error", LOG_STR, err, LOG_END);
 * Text: "2026-11-23T19:55:00.123Z info conn_close route=ssh client=... ".
 * JSON: {"time":"...","level":"info","msg":"conn_close","route":"ssh",...}.
 */
void log_event(enum log_level level, const char *event, const char *route, ...);

#endif /* PPFWD_LOG_H */
