/*
 * loop_sock.c - listeners and connects (loop_accept, loop_connect; see
 * loop.h): accept4() batches and connect() under epoll; under io_uring the
 * ring's own accept and connect ops (loop_uring.c), with the same calls
 * as a fallback where the ring cannot take them.
 *
 * Listeners live in l->acc, a short array with holes: the io_uring backend
 * names them by index in each accept's user_data, with a generation that
 * tells a stopped listener's late completions from those of one started
 * since in the same place.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdlib.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include "loop/loop.h"
#include "loop/loop_internal.h"

/* What a drain takes at most: a listen backlog is bounded (somaxconn),
 * a flood that goes on while draining is not. */
#define ACCEPT_DRAIN_MAX 65536

int loop_acceptor_find(const struct loop *l, int lfd)
{
    for (int i = 0; i < l->nacc; i++)
        if (l->acc[i] != NULL && l->acc[i]->fd == lfd)
            return i;
    return -1;
}

/* The acceptor at idx is still the one of generation gen (a callback may
 * have stopped it). */
static int acceptor_alive(const struct loop *l, int idx, uint32_t gen)
{
    return l->acc[idx] != NULL && l->acc[idx]->gen == gen;
}

/* Takes up to max connections from the acceptor's backlog with accept4(),
 * handing each to its callback; stops at EAGAIN, after an error (handed
 * over: level-triggered, a lasting one comes back next iteration), or
 * when a callback stops the acceptor. */
static void accept_batch(struct loop *l, int idx, int max)
{
    struct loop_acceptor *a = l->acc[idx];
    uint32_t gen = a->gen;
    int lfd = a->fd;

    for (int i = 0; i < max; i++) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof(peer);
        int cfd = accept4(lfd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);

        if (cfd == -1) {
            int err = errno;

            if (err == EAGAIN || err == EWOULDBLOCK)
                return;
            if (err == EINTR || err == ECONNABORTED)
                continue;
            a->cb(l, lfd, -err, (struct sockaddr *)&peer, 0, a->arg);
            return;
        }
        a->cb(l, lfd, cfd, (struct sockaddr *)&peer, plen, a->arg);
        if (!acceptor_alive(l, idx, gen))
            return;
    }
}

/* epoll: the listener is readable. */
static void accept_ready(struct loop *l, int fd, void *arg, unsigned events)
{
    struct loop_acceptor *a = arg;

    (void)fd, (void)events;
    accept_batch(l, a->idx, LOOP_ACCEPT_BATCH);
}

/* A free place in l->acc, growing it when full; -1 on ENOMEM. */
static int acceptor_slot(struct loop *l)
{
    struct loop_acceptor **acc;
    int old = l->nacc, n = old ? 2 * old : 4;

    for (int i = 0; i < old; i++)
        if (l->acc[i] == NULL)
            return i;
    acc = realloc(l->acc, (size_t)n * sizeof(*acc));
    if (acc == NULL)
        return -1;
    for (int i = old; i < n; i++)
        acc[i] = NULL;
    l->acc = acc;
    l->nacc = n;
    return old;
}

int loop_accept(struct loop *l, int lfd, loop_accept_cb *cb, void *arg)
{
    struct loop_acceptor *a;
    int idx, rc;

    if (lfd < 0 || lfd >= l->max_fds)
        return -EINVAL;
    if (loop_acceptor_find(l, lfd) >= 0)
        return -EEXIST;
    if ((idx = acceptor_slot(l)) < 0 || (a = calloc(1, sizeof(*a))) == NULL)
        return -ENOMEM;
    a->cb = cb;
    a->arg = arg;
    a->fd = lfd;
    a->idx = idx;
    /* 28 bits of it go in user_data (loop_uring.c). */
    a->gen = ++l->acc_gen & 0x0fffffffu;
#ifdef HAVE_URING
    if (l->uring) {
        l->acc[idx] = a;
        uring_accept_start(l, a);
        return 0;
    }
#endif
    if ((rc = loop_add(l, lfd, LOOP_READ, accept_ready, a)) != 0) {
        free(a);
        return rc;
    }
    l->acc[idx] = a;
    return 0;
}

void loop_accept_stop(struct loop *l, int lfd, int drain)
{
    int idx = loop_acceptor_find(l, lfd);
    struct loop_acceptor *a;
    uint32_t gen;

    /* A callback run from here (a connection handed over) may stop
     * accepting everywhere (out of fds): this one is on its way out. */
    if (idx < 0 || l->acc[idx]->stopping)
        return;
    a = l->acc[idx];
    a->stopping = 1;
    gen = a->gen;
#ifdef HAVE_URING
    if (l->uring)
        uring_accept_stop(l, idx);
    else
#endif
        loop_remove(l, lfd);
    if (drain)
        accept_batch(l, idx, ACCEPT_DRAIN_MAX);
    if (acceptor_alive(l, idx, gen)) {
        l->acc[idx] = NULL;
        free(a);
    }
}

void loop_acceptors_free(struct loop *l)
{
    for (int i = 0; i < l->nacc; i++)
        free(l->acc[i]);
    free(l->acc);
    l->acc = NULL;
    l->nacc = 0;
}

int loop_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len)
{
    if (fd < 0 || fd >= l->max_fds)
        return -EINVAL;
    if (!l->fds[fd].registered)
        return -ENOENT;
#ifdef HAVE_URING
    if (l->uring && uring_connect(l, fd, sa, len) == 0)
        return -EINPROGRESS;
#endif
    if (connect(fd, sa, len) == 0)
        return 0;
    return -errno;
}

void loop_tcp_nodelay(struct loop *l, int fd)
{
    int one = 1;

    (void)l;
#ifdef HAVE_URING
    if (l->uring && uring_nodelay(l, fd) == 0)
        return;
#endif
    (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int loop_connect_error(struct loop *l, int fd)
{
    int err = 0;
    socklen_t len = sizeof(err);

    (void)l;
#ifdef HAVE_URING
    /* The ring's connect read and cleared SO_ERROR: its result is kept. */
    if (l->uring && l->connect_fd == fd)
        return l->connect_err;
#endif
    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &len) == -1)
        return errno;
    return err;
}
