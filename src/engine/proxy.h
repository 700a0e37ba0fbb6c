/*
 * proxy.h - the running proxy: routes, workers and connections, shared by
 * server.c (start, signals, stop), listen.c (accept), conn.c (a connection's
 * life: PROXY header, access control, upstream connect, header sending) and
 * relay.c (moving bytes both ways).
 *
 * Every worker thread owns one event loop, its own SO_REUSEPORT listener per
 * route and the connections it accepted: nothing on the hot path is shared
 * but the per-route connection count, an atomic.
 */
#ifndef PPFWD_PROXY_H
#define PPFWD_PROXY_H

#include <stdatomic.h>
#include <stdint.h>
#include <pthread.h>
#include <sys/socket.h>

#include <proxyproto.h>

#include "config/config.h"
#include "loop/loop.h"
#include "provider/docker.h"

/* Bytes a relay buffer holds; one is lent to a direction only while it has
 * data in flight, so an idle connection holds none. */
#define RELAY_BUF_SIZE (16 * 1024)
/* Room for an accepted header plus the client bytes that came with it. */
#define HEADER_BUF_SIZE PP_V2_DEFAULT_CAP
/* Relay buffers and pipes each worker keeps for reuse; more are freed. */
#define BUF_CACHE 256
#define PIPE_CACHE 64

/* Counters kept per worker and per route, summed when /metrics is read:
 * each has one writer (its worker), so updating one is a plain add. */
enum route_stat {
    STAT_CONNS,           /* connections accepted */
    STAT_BYTES_IN,        /* client -> upstream */
    STAT_BYTES_OUT,       /* upstream -> client */
    STAT_HDR_OK,          /* PROXY headers accepted */
    STAT_HDR_INVALID,     /* missing or malformed (required), or invalid */
    STAT_HDR_UNTRUSTED,   /* from a source not in trusted */
    STAT_HDR_TIMEOUT,     /* not complete within header-timeout */
    STAT_UPSTREAM_ERRORS, /* upstream connect failures and timeouts */
    STAT_REFUSED,         /* max-conns, allow/deny */
    STAT_COUNT
};

/* What the workers share about one upstream. */
struct upstream_state {
    atomic_int checked_up;       /* health check verdict; 1 without checks */
    _Atomic uint64_t down_until; /* after a failed connect: no traffic before this ms */
    atomic_uint conns;           /* open connections through it (leastconn) */
};

/* A route lives as long as the process: a reload that removes it only
 * stops its listeners, and its connections drain with it. */
struct route {
    const struct route_cfg *cfg;
    _Atomic uint64_t (*stats)[STAT_COUNT]; /* per worker (by worker id) */
    atomic_uint conns;                     /* open connections, every worker counted */
    atomic_uint udp_sessions;              /* open UDP sessions, every worker counted */
    atomic_size_t next_up;                 /* round-robin cursor */
    struct upstream_state *ups;            /* one per cfg->up */
    struct health *health;                 /* active checks, run by worker 0; NULL without */
    int *udp_fds; /* UDP: each worker's socket until it takes it (then -1) */
    int nudp_fds;
};

struct listener {
    struct worker *w;
    struct route *r;
    int fd;    /* -1 when closed */
    void *udp; /* UDP routes: the session table, owned by udp.c */
};

struct worker {
    int id;
    struct server *srv;
    struct loop *loop;
    pthread_t thread;
    struct listener **ls; /* one per current route, same order; NULL if it failed */
    size_t nls;
    atomic_int wake;           /* WAKE_* requests from the main thread */
    struct timer accept_pause; /* accepting paused after EMFILE/ENFILE */
    int draining;
    unsigned nconns;    /* connections of this worker, and UDP listeners draining */
    struct conn *conns; /* all of them, to close what a drain leaves */
    struct listener **udp_drain; /* UDP listeners whose sessions finish (udp_drain) */
    size_t nudp_drain;
    void **buf_free;    /* cached relay buffers */
    size_t nbuf_free;
    int (*pipe_free)[2]; /* cached pipes for splice */
    size_t npipe_free;
};

#define WAKE_SYNC 0x1  /* the route set changed: open and close listeners */
#define WAKE_DRAIN 0x2 /* stop accepting, let connections finish, stop */

struct server {
    pthread_mutex_t lock;  /* guards the route set against reloads */
    struct route **routes; /* the current routes */
    size_t nroutes;
    struct route **retired; /* removed by reloads; freed at exit */
    size_t nretired;
    struct cfg **cfgs; /* configs loaded by reloads; freed at exit */
    size_t ncfgs;
    const char *path; /* -c FILE, read again on SIGHUP; NULL for URLs */
    const struct cfg *base;   /* the routes of the file or the command line in force */
    struct docker *docker;    /* the container provider (--docker), or NULL */
    struct docker_set *dset;  /* the containers' routes in force, or NULL */
    struct docker_set **dsets; /* every set applied (routes point into them); freed at exit */
    size_t ndsets;
    struct docker_seen dseen; /* containers' routes refused at the last reload */
    pthread_mutex_t reload_mu; /* one reload at a time: SIGHUP's and the provider's */
    struct worker *workers;
    int nworkers;
    unsigned drain_ms;
};

/* One direction of a relay. */
struct half {
    int from, to;
    uint8_t *buf; /* lent by the worker while data is pending */
    uint32_t off, len;
    int pipe[2];      /* lent while bytes sit in it (splice); -1 otherwise */
    uint32_t in_pipe; /* bytes in the pipe: EAGAIN cannot tell "source empty" from "pipe full" */
    uint64_t bytes;
    uint8_t eof;  /* read side ended */
    uint8_t shut; /* write side shut down */
    uint8_t bulk; /* a read filled the buffer: splice from now on */
    uint8_t hup;  /* the source's FIN has arrived (LOOP_RDHUP or LOOP_ERROR seen) */
};

enum conn_state { CONN_HEADER, CONN_CONNECT, CONN_RELAY };

struct conn {
    struct conn *prev, *next; /* in w->conns */
    struct worker *w;
    struct route *r;
    enum conn_state state;
    int cfd, ufd;
    unsigned cmask, umask; /* interest registered for cfd and ufd */
    uint8_t cgone, ugone;  /* hung up and no longer watched */
    uint8_t no_splice;     /* splice refused: copy through buffers */
    struct timer timer;    /* header, connect or idle deadline */
    uint64_t start_ms, active_ms;
    struct sockaddr_storage peer, local; /* socket endpoints */
    struct sockaddr_storage client, dst; /* real client and its destination */
    const struct upstream_cfg *up;
    uint8_t *hbuf;        /* header phase input; freed once relaying */
    uint32_t hlen, hoff;  /* bytes read; header bytes consumed */
    uint8_t trusted;      /* the peer may send a header */
    struct pp_header hdr; /* accepted header, valid when has_hdr */
    uint8_t has_hdr;
    struct half c2u, u2c;
    const char *error; /* why it closed, for the log; NULL when clean */
};

/* Adds n to a counter of this worker; only the worker writes it, the
 * metrics thread reads it, so relaxed load + store suffice (no lock prefix). */
static inline void stat_add(struct worker *w, const struct route *r, enum route_stat k, uint64_t n)
{
    _Atomic uint64_t *p = &r->stats[w->id][k];

    atomic_store_explicit(p, atomic_load_explicit(p, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* server.c */
int server_run(struct cfg *cfg, const char *path, const struct sockaddr_storage *metrics);

/* balance.c */
int balance_pick(struct route *r, const struct sockaddr *client, uint64_t now);
int balance_live(const struct route *r, size_t i, uint64_t now);
void balance_result(struct route *r, size_t i, int err, uint64_t now);

/* health.c */
int health_start(struct worker *w, struct route *r);
void health_stop(struct worker *w, struct route *r);

/* metrics.c */
int metrics_start(struct server *srv, const struct sockaddr_storage *addr);
void metrics_stop(void);

/* listen.c */
int listen_open(const struct route_cfg *rc, int *fd_out, char *err, size_t errlen);
int listen_probe(const struct route_cfg *rc);
struct listener *listen_route(struct worker *w, struct route *r);
void listen_close(struct worker *w, struct listener *ls);
void listen_stop(struct worker *w);

/* conn.c */
void conn_start(struct worker *w, struct route *r, int fd, const struct sockaddr_storage *peer,
                socklen_t peerlen);
void conn_close(struct conn *c, const char *error);
void conn_close_all(struct worker *w, const char *error);

/* relay.c */
void relay_start(struct conn *c);
void *relay_buf_get(struct worker *w);
void relay_buf_put(struct worker *w, void *buf);
void relay_buf_drain(struct worker *w);
void relay_pipe_put(struct worker *w, int p[2]);
void relay_half_free(struct worker *w, struct half *h);

/* 1 (default) to relay with splice(2) through pipes, 0 to copy through
 * buffers; set before the workers start. */
extern int relay_splice;

#endif /* PPFWD_PROXY_H */
