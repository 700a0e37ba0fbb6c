/*
 * balance.h - choosing an upstream (balance_*): round robin, least
 * connections or source hashing, among the live upstreams.
 */
#ifndef PPFWD_BALANCE_H
#define PPFWD_BALANCE_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

struct route;

/* The index of the upstream for client at time now (ms): a live one, or,
 * when every upstream the health check passes is paused after a failed
 * connect, one of those (tried again rather than refusing everyone). -1
 * only when the health check fails them all. */
int balance_pick(struct route *r, const struct sockaddr *client, uint64_t now);

/* 1 if upstream i is live: passed its health check and not within the
 * pause after a failed connect (ppfwd_upstream_up). */
int balance_live(const struct route *r, size_t i, uint64_t now);

/* Records a connect's outcome (err: 0 or an errno): a failure keeps the
 * upstream out for a short while; a success ends that pause. */
void balance_result(struct route *r, size_t i, int err, uint64_t now);

#endif /* PPFWD_BALANCE_H */
