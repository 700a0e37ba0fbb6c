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

/* Opens this worker's listener for r (taking a reference to r). Returns it,
 * or NULL after logging why. */
struct listener *listen_route(struct worker *w, struct route *r);

/* Closes a listener (a UDP one at a drain may stay until its sessions end)
 * and drops its reference to its route. */
void listen_close(struct worker *w, struct listener *ls);

/* Closes every listener of this worker. */
void listen_stop(struct worker *w);

#endif /* PPFWD_LISTEN_H */
