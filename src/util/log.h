/*
 * log.h - one line per event, as text or JSON, on stderr (log_*).
 *
 * Event names are stable snake_case strings listed in docs/log-events.md.
 * Each line is built whole in a buffer and handed on at once, so lines from
 * several threads never interleave. Until log_async_start() a line is
 * written with one write(2); after it, it is queued for a writer thread and
 * log_event() never waits on stderr's reader (see log.c).
 */
#ifndef PPFWD_LOG_H
#define PPFWD_LOG_H

#include <stddef.h>
#include <stdint.h>

/* The daemon's ring: 256 KiB hold some 800 JSON conn_close lines, a burst
 * of several hundred connections closing at once, and bound what a stuck
 * stderr costs. */
#define LOG_RING_SIZE (256 * 1024)
/* Lines per second of each per-connection event (conn_open, conn_close,
 * udp_session_open, udp_session_close) at info level or below; beyond it
 * they are held back and counted (log_suppressed). Above the 500 closes of
 * a burst of 500 connections, far below what fills a pipe in a second. */
#define LOG_RATE 1000
/* How long the exit waits for the ring to reach stderr. */
#define LOG_EXIT_FLUSH_MS 1000

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

/*
 * From now on lines go through a ring of cap bytes written by a thread of
 * the logger's own, which blocks every signal. A line that does not fit is
 * dropped and counted; once a write succeeds again, one log_lines_dropped
 * line gives the count. Returns 0, -EBUSY if already started (or a writer
 * abandoned by log_async_stop is still stuck), -ENOMEM, or -errno of
 * pthread_create; on failure lines keep being written directly.
 */
int log_async_start(size_t cap);

/*
 * Waits up to timeout_ms for the ring to be written, then stops the writer
 * and writes directly again; pending log_suppressed and log_lines_dropped
 * lines are written first. Returns 0, or -ETIMEDOUT when stderr did not
 * take the ring in time: the writer is then left blocked in its write(2)
 * (detached) and later lines are dropped and counted until it gets through.
 * A no-op (0) when not started.
 */
int log_async_stop(unsigned timeout_ms);

/* Writes pending log_suppressed and log_lines_dropped lines, then waits up
 * to timeout_ms for the ring to be empty. Returns 0 or -ETIMEDOUT. */
int log_flush(unsigned timeout_ms);

/* Lines dropped since the start of the process: the ring was full, or
 * stderr refused them (EPIPE...). ppfwd_log_lines_dropped_total. */
uint64_t log_dropped_total(void);

/* Lines held back by the per-connection rate limit (LOG_RATE).
 * ppfwd_log_lines_suppressed_total. */
uint64_t log_suppressed_total(void);

#endif /* PPFWD_LOG_H */
