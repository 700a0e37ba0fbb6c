/*
 * bench_udp_relay.c - the floor of a UDP proxy: the least a relay does per
 * datagram, for the cost model (docs/design.md), as bench_tcp_relay is for
 * TCP. No config, no header, no logs, no timers, no limits, no idle close:
 * each client address gets a socket connected to the upstream (so replies
 * can be told apart: the same as ppfwd's sessions), and the datagrams are
 * moved with the cheapest calls ppfwd uses.
 *
 *   bench_udp_relay -p PORT -u UPSTREAM_PORT [-j THREADS]
 *
 * Each of THREADS (2) threads has its own SO_REUSEPORT socket on
 * 127.0.0.1:PORT and its own level-triggered epoll, as ppfwd's workers do.
 * Client to upstream: one recvmmsg of up to 64 datagrams, then each
 * client's datagrams in one call on its socket, a run of equal sizes as one
 * GSO send (UDP_SEGMENT). Upstream to client: one recvmmsg per ready
 * session socket into a queue that leaves, as GSO runs, in one sendmmsg on
 * the listening socket once the epoll batch is handled. Stops on SIGTERM.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <pthread.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#define BATCH 64
#define BUF 2048
#define SESSIONS 4096 /* per thread, open addressing; never freed */
#define CTL CMSG_SPACE(sizeof(uint16_t))

struct sess {
    struct sockaddr_in client; /* sin_family 0: free */
    int fd;
};

struct relay {
    int lfd, ep;
    struct sess sess[SESSIONS];
    /* the batch read from clients */
    uint8_t in[BATCH][BUF];
    struct sockaddr_in from[BATCH];
    struct mmsghdr rmsg[BATCH];
    struct iovec riov[BATCH];
    int owner[BATCH];
    /* sends: runs of one session's datagrams */
    struct mmsghdr smsg[BATCH];
    struct iovec siov[BATCH];
    uint8_t sctl[BATCH][CTL];
    /* the reply queue */
    uint8_t out[BATCH][BUF];
    struct mmsghdr qmsg[BATCH];
    struct iovec qiov[BATCH];
    int qowner[BATCH];
    int nq;
};

static volatile sig_atomic_t stop;
static int port, up_port, nthreads = 2;

static void on_term(int sig)
{
    (void)sig;
    stop = 1;
}

static struct sockaddr_in loopback(int p)
{
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t)p)};

    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return sin;
}

static void die(const char *what)
{
    perror(what);
    exit(2);
}

static int watch(int ep, int fd, uint64_t tag)
{
    struct epoll_event ev = {.events = EPOLLIN, .data.u64 = tag};

    return epoll_ctl(ep, EPOLL_CTL_ADD, fd, &ev);
}

/* The session of a client address, made at its first datagram; -1 when
 * the table is full or the upstream socket cannot be had. */
static int session(struct relay *r, const struct sockaddr_in *c)
{
    uint32_t h = (c->sin_addr.s_addr * 2654435761u) ^ c->sin_port;
    struct sockaddr_in up = loopback(up_port);

    for (unsigned k = 0; k < SESSIONS; k++) {
        unsigned i = (h + k) % SESSIONS;
        struct sess *s = &r->sess[i];

        if (s->client.sin_family == AF_INET) {
            if (s->client.sin_addr.s_addr == c->sin_addr.s_addr &&
                s->client.sin_port == c->sin_port)
                return (int)i;
            continue;
        }
        s->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
        if (s->fd == -1 || connect(s->fd, (struct sockaddr *)&up, sizeof(up)) == -1 ||
            watch(r->ep, s->fd, i + 1) == -1) {
            if (s->fd != -1)
                close(s->fd);
            return -1;
        }
        s->client = *c;
        return (int)i;
    }
    return -1;
}

/* Makes msg m one GSO run of the iovecs iov[0..n): equal sizes but the
 * last, which may be shorter. */
static void run_msg(struct relay *r, int m, struct iovec *iov, int n, void *name, socklen_t namelen)
{
    struct msghdr *mh = &r->smsg[m].msg_hdr;

    memset(mh, 0, sizeof(*mh));
    mh->msg_name = name;
    mh->msg_namelen = namelen;
    mh->msg_iov = iov;
    mh->msg_iovlen = (size_t)n;
    if (n > 1) {
        struct cmsghdr *cm;
        uint16_t seg = (uint16_t)iov[0].iov_len;

        mh->msg_control = r->sctl[m];
        mh->msg_controllen = CTL;
        cm = CMSG_FIRSTHDR(mh);
        cm->cmsg_level = SOL_UDP;
        cm->cmsg_type = UDP_SEGMENT;
        cm->cmsg_len = CMSG_LEN(sizeof(seg));
        memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
    }
}

/* Appends iov[0..n) as GSO runs to the messages from m on (to name, if
 * given); returns the new count. */
static int add_runs(struct relay *r, int m, struct iovec *iov, int n, void *name, socklen_t namelen)
{
    for (int i = 0; i < n;) {
        int j = i + 1;

        while (j < n && iov[j].iov_len == iov[i].iov_len &&
               (size_t)(j - i + 1) * iov[i].iov_len <= 65000)
            j++;
        if (j < n && iov[j].iov_len < iov[i].iov_len &&
            (size_t)(j - i + 1) * iov[i].iov_len <= 65000)
            j++; /* a shorter last one ends the run */
        run_msg(r, m++, iov + i, j - i, name, namelen);
        i = j;
    }
    return m;
}

static void send_all(struct relay *r, int fd, int m)
{
    for (int done = 0; done < m;) {
        int k = sendmmsg(fd, r->smsg + done, (unsigned)(m - done), MSG_DONTWAIT);
        if (k <= 0)
            break; /* a full socket buffer drops the rest, as UDP may */
        done += k;
    }
}

static void from_clients(struct relay *r)
{
    int n;

    for (int i = 0; i < BATCH; i++) {
        r->riov[i] = (struct iovec){.iov_base = r->in[i], .iov_len = BUF};
        memset(&r->rmsg[i].msg_hdr, 0, sizeof(r->rmsg[i].msg_hdr));
        r->rmsg[i].msg_hdr.msg_name = &r->from[i];
        r->rmsg[i].msg_hdr.msg_namelen = sizeof(r->from[i]);
        r->rmsg[i].msg_hdr.msg_iov = &r->riov[i];
        r->rmsg[i].msg_hdr.msg_iovlen = 1;
    }
    n = recvmmsg(r->lfd, r->rmsg, BATCH, MSG_DONTWAIT, NULL);
    for (int i = 0; i < n; i++)
        r->owner[i] = r->from[i].sin_family == AF_INET ? session(r, &r->from[i]) : -1;
    /* Each session's datagrams in arrival order, in one call. */
    for (int i = 0; i < n; i++) {
        int s = r->owner[i], k = 0;

        if (s < 0)
            continue;
        for (int j = i; j < n; j++) {
            if (r->owner[j] != s)
                continue;
            r->owner[j] = -1;
            r->siov[k++] = (struct iovec){.iov_base = r->in[j], .iov_len = r->rmsg[j].msg_len};
        }
        send_all(r, r->sess[s].fd, add_runs(r, 0, r->siov, k, NULL, 0));
    }
}

/* Every session's replies in one call: a session's are consecutive in
 * the queue (one recvmmsg each). */
static void flush_replies(struct relay *r)
{
    int m = 0;

    for (int i = 0; i < r->nq;) {
        int s = r->qowner[i], k = 0;

        while (i + k < r->nq && r->qowner[i + k] == s)
            k++;
        m = add_runs(r, m, r->qiov + i, k, &r->sess[s].client, sizeof(r->sess[s].client));
        i += k;
    }
    send_all(r, r->lfd, m);
    r->nq = 0;
}

static void from_upstream(struct relay *r, int s)
{
    int n, q;

    if (r->nq == BATCH)
        flush_replies(r);
    q = r->nq;
    for (int i = q; i < BATCH; i++) {
        r->qiov[i] = (struct iovec){.iov_base = r->out[i], .iov_len = BUF};
        memset(&r->qmsg[i].msg_hdr, 0, sizeof(r->qmsg[i].msg_hdr));
        r->qmsg[i].msg_hdr.msg_iov = &r->qiov[i];
        r->qmsg[i].msg_hdr.msg_iovlen = 1;
    }
    n = recvmmsg(r->sess[s].fd, r->qmsg + q, (unsigned)(BATCH - q), MSG_DONTWAIT, NULL);
    for (int i = q; i < q + n; i++) {
        r->qiov[i].iov_len = r->qmsg[i].msg_len;
        r->qowner[i] = s;
    }
    if (n > 0)
        r->nq += n;
}

static void *relay_main(void *arg)
{
    struct relay *r = arg;
    struct epoll_event ev[64];

    while (!stop) {
        int n = epoll_wait(r->ep, ev, 64, 100);

        for (int i = 0; i < n; i++) {
            if (ev[i].data.u64 == 0)
                from_clients(r);
            else
                from_upstream(r, (int)ev[i].data.u64 - 1);
        }
        flush_replies(r);
    }
    return NULL;
}

static struct relay *relay_new(void)
{
    struct sockaddr_in sin = loopback(port);
    struct relay *r = calloc(1, sizeof(*r));
    int one = 1;

    if (r == NULL)
        die("bench_udp_relay: calloc");
    r->lfd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    r->ep = epoll_create1(0);
    if (r->lfd == -1 || r->ep == -1 ||
        setsockopt(r->lfd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one)) == -1 ||
        bind(r->lfd, (struct sockaddr *)&sin, sizeof(sin)) == -1 || watch(r->ep, r->lfd, 0) == -1)
        die("bench_udp_relay: listen");
    return r;
}

int main(int argc, char **argv)
{
    struct sigaction sa = {.sa_handler = on_term};
    pthread_t th[64];
    int c;

    while ((c = getopt(argc, argv, "p:u:j:")) != -1) {
        switch (c) {
        case 'p':
            port = atoi(optarg);
            break;
        case 'u':
            up_port = atoi(optarg);
            break;
        case 'j':
            nthreads = atoi(optarg);
            break;
        default:
            goto usage;
        }
    }
    if (port <= 0 || up_port <= 0 || nthreads < 1 || nthreads > 64)
        goto usage;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    for (int i = 0; i < nthreads; i++)
        if (pthread_create(&th[i], NULL, relay_main, relay_new()) != 0)
            die("bench_udp_relay: pthread_create");
    for (int i = 0; i < nthreads; i++)
        pthread_join(th[i], NULL);
    return 0;
usage:
    fprintf(stderr, "usage: bench_udp_relay -p PORT -u UPSTREAM_PORT [-j THREADS]\n");
    return 2;
}
