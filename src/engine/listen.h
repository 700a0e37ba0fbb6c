/*
 * listen.h - TCP listeners and accepting (listen_*); a UDP route's
 * listener is handed to udp_listen.c.
 */
#ifndef PPFWD_LISTEN_H
#define PPFWD_LISTEN_H

#include <stddef.h>

#include "config/config.h"

struct worker;
struct route;
struct listener;

/* Opens, binds and listens on rc's address (SO_REUSEPORT, TCP_NODELAY).
 * Returns 0 with *fd_out, or -1 with the failed step and error in err. */
int listen_open(const struct route_cfg *rc, int *fd_out, char *err, size_t errlen);

/* Refuses an address some other socket holds (another ppfwd, say), which
 * SO_REUSEPORT would otherwise share silently. Returns 0, or -1 after
 * logging. */
int listen_probe(const struct route_cfg *rc);

/* How long accepting pauses when descriptors or memory run out. */
#define ACCEPT_PAUSE_MS 100

/* Sorts a failed accept4() (err: its errno), for every listener: the
 * routes' and the metrics endpoint's. Returns 1, logged as accept_error
 * with pause_ms, when the process or the system is out of descriptors or
 * memory (EMFILE, ENFILE, ENOBUFS, ENOMEM): the connection stays in the
 * backlog and the listener readable, so the caller stops watching it for
 * ACCEPT_PAUSE_MS instead of spinning. Returns 0 otherwise: the caller
 * just returns to its loop (logged with route, unless transient: EAGAIN,
 * EINTR, ECONNABORTED). */
int listen_accept_failed(int err, const char *route);

/* Opens this worker's listener for r (taking a reference to r). Returns it,
 * or NULL after logging why. */
struct listener *listen_route(struct worker *w, struct route *r);

/* Closes a listener (a UDP one at a drain may stay until its sessions end)
 * and drops its reference to its route. */
void listen_close(struct worker *w, struct listener *ls);

/* Closes every listener of this worker. */
void listen_stop(struct worker *w);

#endif /* PPFWD_LISTEN_H */
