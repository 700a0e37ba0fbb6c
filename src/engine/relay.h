/*
 * relay.h - moving bytes both ways between two connected sockets (relay_*).
 *
 * The relay knows sockets, buffers, pipes and the loop, nothing of routes or
 * connections: its owner (conn.c) registers the callback that feeds it
 * events, and closes when relay_event() says the relay is over.
 */
#ifndef PPFWD_RELAY_H
#define PPFWD_RELAY_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "loop/loop.h"

/* Bytes a relay buffer holds; one is lent to a direction only while it has
 * data in flight, so an idle connection holds none. */
#define RELAY_BUF_SIZE (16 * 1024)
/* Relay buffers and pipes each worker keeps for reuse; more are freed. */
#define BUF_CACHE 256
#define PIPE_CACHE 64

/* A worker's spare buffers and pipes. */
struct relay_pool {
    void **buf_free;
    size_t nbuf_free;
    int (*pipe_free)[2];
    size_t npipe_free;
};

/* One direction of a relay. */
struct half {
    int from, to;
    uint8_t *buf; /* lent by the pool while data is pending */
    uint32_t off, len;
    int pipe[2];      /* lent while bytes sit in it (splice); -1 otherwise */
    uint32_t in_pipe; /* bytes in the pipe: EAGAIN cannot tell "source empty" from "pipe full" */
    uint64_t bytes;
    uint8_t eof;  /* read side ended */
    uint8_t shut; /* write side shut down */
    uint8_t bulk; /* a read filled the buffer: splice from now on */
    uint8_t hup;  /* the source's FIN has arrived (LOOP_RDHUP or LOOP_ERROR seen) */
    uint8_t hold; /* set by the owner: it reads the source itself for now, the
                   * relay only sends what is queued (the source's READ
                   * events still reach the owner's callback) */
};

struct relay {
    struct loop *loop;
    struct relay_pool *pool;
    loop_fd_cb *cb; /* the owner's callback for cfd and ufd, which calls relay_event */
    void *arg;
    int cfd, ufd;          /* client and upstream sockets, -1 when closed */
    uint8_t cgone, ugone;  /* hung up and no longer watched */
    uint8_t no_splice;     /* splice refused: copy through buffers */
    struct half c2u, u2c;
    uint64_t active_ms;    /* last time bytes moved */
    _Atomic uint64_t *count_in, *count_out; /* counters of bytes each way (c2u, u2c) */
};

/* 1 (default) to relay with splice(2) through pipes, 0 to copy through
 * buffers; set before the workers start. */
extern int relay_splice;

/* Returns 0, or -ENOMEM (nothing to free then). */
int relay_pool_init(struct relay_pool *p);
/* Frees the pool's buffers and closes its pipes. */
void relay_pool_free(struct relay_pool *p);

/* Zeroes rl for the client socket cfd; the upstream's (rl->ufd) is set by
 * the owner once it has one. */
void relay_init(struct relay *rl, struct loop *l, struct relay_pool *pool, int cfd);

/* The buffer of what goes upstream first (a PROXY header, bytes that came
 * with an accepted one): RELAY_BUF_SIZE bytes, lent from the pool. The
 * caller sets c2u.len. Returns NULL on ENOMEM. */
uint8_t *relay_queue_buf(struct relay *rl);

/*
 * Starts relaying between rl->cfd and rl->ufd, with cb/arg as their
 * callback (fds already registered keep their interest: no syscall). c2u
 * may hold queued bytes. client_drained: the client was just read to
 * empty (a header phase), so it is not read again before the loop says so.
 * Returns 0, or a negative errno: the owner closes.
 */
int relay_start(struct relay *rl, loop_fd_cb *cb, void *arg, int client_drained);

/* Handles events on rl->cfd or rl->ufd. Returns 0 to go on, 1 when both
 * ways are done (close cleanly), or a negative errno (close with it). */
int relay_event(struct relay *rl, int fd, unsigned events);

/* Gives back what the relay still holds (buffers, pipes); call at close,
 * after the fds are closed. */
void relay_end(struct relay *rl);

#endif /* PPFWD_RELAY_H */
