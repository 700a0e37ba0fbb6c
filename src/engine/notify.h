/*
 * notify.h - systemd's service readiness protocol (sd_notify(3)), spoken
 * without libsystemd: one datagram per state change to the AF_UNIX socket
 * that $NOTIFY_SOCKET names (notify_*). Without $NOTIFY_SOCKET every call is
 * a no-op, so the server calls these unconditionally.
 */
#ifndef PPFWD_NOTIFY_H
#define PPFWD_NOTIFY_H

#include <stddef.h>
#include <sys/socket.h>
#include <sys/un.h>

struct server;

/* Parses a $NOTIFY_SOCKET value into *sun / *len: "/path" (a file system
 * socket) or "@name" (abstract: the '@' becomes a NUL byte). Returns 0, or
 * a message for a value that is neither or too long for sun_path. */
const char *notify_addr(const char *value, struct sockaddr_un *sun, socklen_t *len);

/* Formats the STATUS= text into buf[0..cap): the route count, open TCP
 * connections and UDP sessions of the current routes, e.g. "2 routes, 5 open connections,
 * 1 UDP session". Takes srv->lock. */
void notify_status_text(struct server *srv, char *buf, size_t cap);

/* Every route listens: opens the socket (a bad $NOTIFY_SOCKET is logged
 * once as notify_error, and ppfwd runs on without it), sends READY=1 and
 * STATUS=, and starts a thread that sends STATUS= again every 2 s when it
 * changed. Returns 0, or -1 if that thread cannot start (logged; ppfwd
 * runs on without status updates). */
int notify_start(struct server *srv);

/* Around a reload: RELOADING=1 with MONOTONIC_USEC= (CLOCK_MONOTONIC, as
 * Type=notify-reload requires), then READY=1 with the new STATUS=. When the
 * reload changed the route set, notify_ready first waits (up to 2 s) for
 * every worker to have applied it, so that the new routes listen by the
 * time systemd hears READY=1. */
void notify_reloading(struct server *srv);
void notify_ready(struct server *srv);

/* SIGTERM/SIGINT: STOPPING=1 and STATUS=draining: ...; later status
 * updates keep the "draining: " prefix. */
void notify_stopping(void);

/* Stops the status thread and closes the socket. */
void notify_stop(void);

#endif /* PPFWD_NOTIFY_H */
