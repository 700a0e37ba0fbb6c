/*
 * metrics.h - Prometheus text exposition at /metrics and the /healthz probe
 * (metrics_*), served by a thread of its own on an event loop.
 */
#ifndef PPFWD_METRICS_H
#define PPFWD_METRICS_H

#include <sys/socket.h>

struct server;

/* Listens on addr and starts the thread. Returns 0, or -1 after logging. */
int metrics_start(struct server *srv, const struct sockaddr_storage *addr);
void metrics_stop(void);

#endif /* PPFWD_METRICS_H */
