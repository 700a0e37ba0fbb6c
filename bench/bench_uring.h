/*
 * bench_uring.h - what the io_uring backends (-u) of bench_tcp_echo and
 * bench_udp_echo share: opening a ring and giving it a provided buffer ring.
 * Only included when the tools are built with liburing (HAVE_URING).
 */
#ifndef BENCH_URING_H
#define BENCH_URING_H

#include <errno.h>
#include <liburing.h>
#include <stdint.h>
#include <string.h>
#include <sys/mman.h>

/* The operation of a completion, in the top byte of its user_data; the low
 * 32 bits carry an fd (TCP) or a buffer id (UDP). */
enum uring_op { URING_ACCEPT = 1, URING_RECV, URING_SEND, URING_CLOSE, URING_CANCEL };
#define URING_UD(op, id) ((uint64_t)(op) << 56 | (uint32_t)(id))
#define URING_OP(ud) ((int)((ud) >> 56))
#define URING_ID(ud) ((int)(uint32_t)(ud))

/* Opens a ring of `entries` submissions with a CQ eight times as deep (a
 * multishot request may post many completions per submission), in the
 * cheapest mode the kernel accepts: task work deferred to io_uring_enter and
 * a single submitter (6.1+), else cooperative task work (5.19+), else plain.
 * The ring fd is registered so io_uring_enter skips the fd lookup. Returns 0
 * or a negative errno. */
static inline int uring_open(struct io_uring *ring, unsigned entries)
{
    static const unsigned modes[] = {
        IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_DEFER_TASKRUN,
        IORING_SETUP_COOP_TASKRUN,
        0,
    };
    int rc = -EINVAL;
    for (size_t i = 0; i < sizeof(modes) / sizeof(modes[0]); i++) {
        struct io_uring_params p;
        memset(&p, 0, sizeof(p));
        p.flags = modes[i] | IORING_SETUP_CQSIZE | IORING_SETUP_SUBMIT_ALL;
        p.cq_entries = entries * 8;
        rc = io_uring_queue_init_params(entries, ring, &p);
        if (rc == 0) {
            io_uring_register_ring_fd(ring); /* an optimisation: failure is fine */
            return 0;
        }
        if (rc != -EINVAL)
            break;
    }
    return rc;
}

/* Registers n buffers of size bytes each, laid out from base, as buffer group
 * bgid (n a power of two, at most 32768). Returns the buffer ring (the
 * caller gives buffers back with io_uring_buf_ring_add and _advance), or
 * NULL with errno set. */
static inline struct io_uring_buf_ring *uring_bufs(struct io_uring *ring, uint8_t *base,
                                                   unsigned n, unsigned size, int bgid)
{
    size_t len = n * sizeof(struct io_uring_buf);
    struct io_uring_buf_ring *br =
        mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_ANONYMOUS | MAP_PRIVATE, -1, 0);
    if (br == MAP_FAILED)
        return NULL;
    struct io_uring_buf_reg reg = {
        .ring_addr = (uint64_t)(uintptr_t)br, .ring_entries = n, .bgid = (uint16_t)bgid};
    int rc = io_uring_register_buf_ring(ring, &reg, 0);
    if (rc < 0) {
        munmap(br, len);
        errno = -rc;
        return NULL;
    }
    io_uring_buf_ring_init(br);
    for (unsigned i = 0; i < n; i++)
        io_uring_buf_ring_add(br, base + (size_t)i * size, size, (unsigned short)i,
                              io_uring_buf_ring_mask(n), (int)i);
    io_uring_buf_ring_advance(br, (int)n);
    return br;
}

/* An SQE, submitting what is queued first when the SQ is full. */
static inline struct io_uring_sqe *uring_sqe(struct io_uring *ring)
{
    struct io_uring_sqe *sqe = io_uring_get_sqe(ring);
    while (!sqe) {
        io_uring_submit(ring);
        sqe = io_uring_get_sqe(ring);
    }
    return sqe;
}

#endif
