/*
 * worker.h - a worker thread: its event loop, its listeners (one per route
 * of the current set), its connections and its spare relay buffers
 * (worker_*). Everything here belongs to the worker's thread but for `wake`.
 */
#ifndef PPFWD_WORKER_H
#define PPFWD_WORKER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <pthread.h>

#include "loop/loop.h"
#include "engine/relay.h"

struct server;
struct route;
struct conn;
struct health;
struct udp_sess;

/* A worker's UDP sessions, every route (udp_session.c): how many, those
 * never answered (oldest first: they give way at the cap), and the number
 * of the batch being forwarded (its sessions are not evicted). */
struct worker_udp {
    unsigned n;
    struct udp_sess *unans_old, *unans_new;
    uint64_t batch;
};

/* One route's listening socket in one worker. It holds a reference to its
 * route (route.h) until it is freed. */
struct listener {
    struct worker *w;
    struct route *r;
    int fd;    /* -1 when closed */
    void *udp; /* UDP routes: the listener's state, owned by udp_listen.c */
};

struct worker {
    int id;
    struct server *srv;
    struct loop *loop;
    pthread_t thread;
    struct listener **ls; /* one per current route, same order; NULL if it failed */
    size_t nls;
    atomic_int wake;           /* WAKE_* requests from the main thread */
    atomic_uint synced;        /* WAKE_SYNCs done (notify.c waits for a reload's) */
    struct timer accept_pause; /* accepting paused: out of fds or memory (listen.c) */
    struct timer drain_timer;  /* the drain deadline (SIGTERM/SIGINT) */
    int draining;
    unsigned nconns;             /* open TCP connections of this worker */
    struct conn *conns;          /* all of them, to close what a drain leaves */
    struct listener **udp_drain; /* UDP listeners whose sessions finish (udp_drain) */
    size_t nudp_drain;
    struct worker_udp udp;
    struct health *health; /* worker 0: the health checks it runs (health.c) */
    struct relay_pool pool;
};

#define WAKE_SYNC 0x1  /* the route set changed: open and close listeners */
#define WAKE_DRAIN 0x2 /* stop accepting, let connections finish, stop */

/* Sets up worker id of srv (loop, pool, listeners for the current routes).
 * Returns 0, or -1 after logging. Main thread, before the thread starts. */
int worker_init(struct server *srv, struct worker *w, int id, int max_fds);

/* The thread's body: runs the loop until the drain ends. */
void *worker_main(void *arg);

/* Closes what is left and frees the worker (after its thread ended). */
void worker_free(struct worker *w);

/* Called when a TCP connection or a draining UDP listener ended: stops the
 * loop when the worker drains and nothing is left. */
void worker_drained(struct worker *w);

#endif /* PPFWD_WORKER_H */
