/*
 * loop_internal.h - what loop.c (the fd table, timers, deferred work, the
 * epoll backend) and loop_uring.c (the io_uring backend) share. Not for the
 * loop's users: loop.h is the contract.
 */
#ifndef PPFWD_LOOP_INTERNAL_H
#define PPFWD_LOOP_INTERNAL_H

#include <stdint.h>
#include <sys/epoll.h>

#ifdef HAVE_URING
#include <liburing.h>
#endif

#include "loop/loop.h"

struct loop_fd {
    loop_fd_cb *cb;
    void *arg;
    unsigned mask; /* LOOP_READ | LOOP_WRITE wanted */
    int registered;
    /* epoll: the iteration in which loop_remove() last ran on this fd:
     * events of that iteration's batch are stale even if the fd number was
     * registered again (a new connection accepted into a just-closed fd
     * number). io_uring: the generation in each completion does that. */
    uint64_t removed_iter;
#ifdef HAVE_URING
    /* io_uring: the poll in flight (inflight) was armed with generation gen
     * for the mask polled; a completion naming another generation is
     * stale. A poll of a former registration (loop_remove) is an orphan,
     * cancelled by its generation at the next flush. */
    uint32_t gen, orphan_gen;
    int next_dirty; /* the dirty list (see loop_uring.c) */
    unsigned char polled, inflight, orphan, dirty;
    unsigned char fin; /* a poll reported POLLRDHUP: the peer's FIN is in */
    unsigned char connecting; /* the op in flight is loop_connect's */
#endif
};

/* Accepts in flight per listener on io_uring; what epoll takes per wakeup:
 * enough to drain a burst, few enough that one busy listener does not
 * starve the relays. */
#define LOOP_ACCEPT_SLOTS 16
#define LOOP_ACCEPT_BATCH 64

/* A listener loop_accept() watches (l->acc[idx]). */
struct loop_acceptor {
    loop_accept_cb *cb;
    void *arg;
    int fd;
    int idx;      /* its place in l->acc */
    int stopping; /* inside loop_accept_stop() */
    uint32_t gen; /* in each accept's user_data (28 bits): older ones are stale */
#ifdef HAVE_URING
    uint32_t armed; /* slots with an accept in flight, a bit each */
    struct {
        struct sockaddr_storage addr;
        socklen_t len;
    } slot[LOOP_ACCEPT_SLOTS];
#endif
};

struct loop {
    int epfd; /* epoll backend; -1 with io_uring */
    int wakefd;
    int max_fds;
    int stop;
    int running;   /* inside loop_run() */
    int in_timers; /* inside the timer phase; see loop_timer_set() */
    uint64_t now;
    uint64_t iter;
    struct loop_fd *fds; /* max_fds entries */
    struct epoll_event *events;
    int nevents;
    struct timer **heap; /* heap[i]->idx == i + 1 */
    size_t ntimers, timers_cap;
    struct loop_work *defer, *defer_tail; /* deferred work, in order */
    void (*wake_cb)(struct loop *l, void *arg);
    void *wake_arg;
    struct loop_acceptor **acc; /* loop_accept's listeners; NULL holes */
    int nacc;
    uint32_t acc_gen; /* the last acceptor generation handed out */
#ifdef HAVE_URING
    int uring;         /* the io_uring backend is in use */
    int ring_disabled; /* set up IORING_SETUP_R_DISABLED: enabled by loop_run */
    int wake_armed;    /* the eventfd's poll is in flight */
    int dirty;         /* head of the dirty list, -1 when empty */
    int acc_dirty;     /* an acceptor has a slot to arm */
    int sockopt_cmd;   /* the ring takes setsockopt commands (probed) */
    int connect_fd;    /* the connect whose end is being reported, or -1 */
    int connect_err;   /* and its result, 0 or an errno */
    unsigned cq_entries;
    struct io_uring ring;
#endif
};

/* Shared helpers of loop.c. */
unsigned loop_poll_to_mask(uint32_t ev);
unsigned loop_deliverable(const struct loop_fd *e);
void loop_handle_wake(struct loop *l);
int loop_timeout(const struct loop *l);
int loop_acceptor_find(const struct loop *l, int lfd);
void loop_acceptors_free(struct loop *l);

#ifdef HAVE_URING
/* loop_uring.c: the io_uring backend. */
int uring_open(struct loop *l);
void uring_close(struct loop *l);
void uring_interest(struct loop *l, int fd);
void uring_forget(struct loop *l, int fd);
int uring_close_fd(struct loop *l, int fd);
int uring_wait(struct loop *l);
void uring_dispatch(struct loop *l);
int uring_run_start(struct loop *l);
int uring_connect(struct loop *l, int fd, const struct sockaddr *sa, socklen_t len);
int uring_nodelay(struct loop *l, int fd);
void uring_accept_start(struct loop *l, struct loop_acceptor *a);
void uring_accept_stop(struct loop *l, int idx);
void uring_run_end(struct loop *l);
#endif

#endif /* PPFWD_LOOP_INTERNAL_H */
