/*
 * metrics.c - Prometheus text exposition at /metrics, and /healthz
 * (metrics_*).
 *
 * One thread of its own serves the endpoint on an event loop of its own
 * (loop.c): keeping it off the workers' loops means the hot path never pays
 * for a scrape, and a loop means no client waits on another. Before, one
 * client at a time was served with a 2 s wait per recv: a byte every 1.5 s
 * held every scrape off. Now each client has METRICS_DEADLINE_MS from
 * accept for its whole request and answer, a request head is at most
 * REQ_MAX bytes (else 431), and at most METRICS_MAX_CONNS are open (see
 * make_room). libmicrohttpd would do the same in a dependency: what is
 * needed here, GET (and HEAD) of two paths answered whole and closed, is
 * small enough for the loop the project already has and tests.
 *
 * The workers' counters are summed at scrape time (each has a single
 * writer, so a relaxed read is exact enough).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <netinet/in.h>

#include "util/addr.h"
#include "util/log.h"
#include "loop/loop.h"
#include "engine/balance.h"
#include "engine/control.h"
#include "engine/listen.h"
#include "engine/metrics.h"
#include "engine/route.h"
#include "engine/server.h"

/* A request head (request line and headers) holds well under 1 KiB from
 * Prometheus, curl or a probe. */
#define REQ_MAX 4096
/* From accept to the last byte of the answer: a scrape takes milliseconds. */
#define METRICS_DEADLINE_MS 5000
/* Clients open at once; 64 x 4 KiB of request buffers at most. */
#define METRICS_MAX_CONNS 64

struct mconn;

static struct {
    struct server *srv;
    pthread_t thread;
    int running;
    atomic_int stop;
    int fd;
    struct loop *loop;
    struct mconn *conns, *last; /* oldest first */
    unsigned nconns;
    struct timer pause; /* accepting paused: out of fds or memory */
} M = {.fd = -1};

static void resume_accept(struct loop *l, struct timer *t, void *arg);

/* A label value with \, " and newline escaped, as the format requires. */
static void label(FILE *f, const char *s)
{
    for (; *s; s++) {
        if (*s == '\\' || *s == '"')
            fputc('\\', f);
        if (*s == '\n')
            fputs("\\n", f);
        else
            fputc(*s, f);
    }
}

static uint64_t sum(const struct server *srv, size_t route, enum route_stat k)
{
    uint64_t n = 0;

    for (int i = 0; i < srv->nworkers; i++)
        n += atomic_load_explicit(&srv->routes[route]->stats[i][k], memory_order_relaxed);
    return n;
}

static void family(FILE *f, const char *name, const char *type, const char *help)
{
    fprintf(f, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* One sample per route; extra is a label pair (or "") placed after route. */
static void sample(FILE *f, const char *name, const struct route *r, const char *extra, uint64_t v)
{
    fprintf(f, "%s{route=\"", name);
    label(f, r->cfg->name);
    fprintf(f, "\"%s} %llu\n", extra, (unsigned long long)v);
}

static void write_counters(FILE *f, const struct server *srv)
{
    static const struct {
        enum route_stat k;
        const char *result;
    } hdr[] = {{STAT_HDR_OK, "ok"},
               {STAT_HDR_INVALID, "invalid"},
               {STAT_HDR_UNTRUSTED, "untrusted"},
               {STAT_HDR_TIMEOUT, "timeout"}};
    char extra[64];

    family(f, "ppfwd_connections_total", "counter", "Connections accepted.");
    for (size_t i = 0; i < srv->nroutes; i++)
        sample(f, "ppfwd_connections_total", srv->routes[i], "", sum(srv, i, STAT_CONNS));
    family(f, "ppfwd_connections_refused_total", "counter",
           "Connections refused by max-conns or allow/deny.");
    for (size_t i = 0; i < srv->nroutes; i++)
        sample(f, "ppfwd_connections_refused_total", srv->routes[i], "", sum(srv, i, STAT_REFUSED));
    family(f, "ppfwd_bytes_total", "counter", "Bytes relayed, in = client to upstream.");
    for (size_t i = 0; i < srv->nroutes; i++) {
        sample(f, "ppfwd_bytes_total", srv->routes[i], ",direction=\"in\"",
               sum(srv, i, STAT_BYTES_IN));
        sample(f, "ppfwd_bytes_total", srv->routes[i], ",direction=\"out\"",
               sum(srv, i, STAT_BYTES_OUT));
    }
    family(f, "ppfwd_proxy_headers_total", "counter", "PROXY headers received, by outcome.");
    for (size_t i = 0; i < srv->nroutes; i++) {
        for (size_t j = 0; j < sizeof(hdr) / sizeof(hdr[0]); j++) {
            snprintf(extra, sizeof(extra), ",result=\"%s\"", hdr[j].result);
            sample(f, "ppfwd_proxy_headers_total", srv->routes[i], extra, sum(srv, i, hdr[j].k));
        }
    }
    family(f, "ppfwd_upstream_errors_total", "counter",
           "Failed upstream connects, health checks included.");
    for (size_t i = 0; i < srv->nroutes; i++)
        sample(f, "ppfwd_upstream_errors_total", srv->routes[i], "",
               sum(srv, i, STAT_UPSTREAM_ERRORS));
}

/* The clock loop_now() reads, for comparing with the upstreams' states. */
static uint64_t now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void write_gauges(FILE *f, const struct server *srv)
{
    family(f, "ppfwd_connections_active", "gauge", "Open connections.");
    for (size_t i = 0; i < srv->nroutes; i++)
        sample(f, "ppfwd_connections_active", srv->routes[i], "",
               atomic_load(&srv->routes[i]->conns));
    family(f, "ppfwd_udp_sessions_active", "gauge", "Open UDP sessions.");
    for (size_t i = 0; i < srv->nroutes; i++)
        sample(f, "ppfwd_udp_sessions_active", srv->routes[i], "",
               atomic_load(&srv->routes[i]->udp_sessions));
    family(f, "ppfwd_upstream_up", "gauge",
           "1 when the upstream gets traffic: not failed by its check or a recent connect.");
    for (size_t i = 0; i < srv->nroutes; i++) {
        const struct route *r = srv->routes[i];
        for (size_t j = 0; j < r->cfg->nup; j++) {
            fprintf(f, "ppfwd_upstream_up{route=\"");
            label(f, r->cfg->name);
            fprintf(f, "\",upstream=\"");
            label(f, r->cfg->up[j].name);
            fprintf(f, "\"} %d\n", balance_live(r, j, now_ms()));
        }
    }
}

static void write_log_counters(FILE *f)
{
    family(f, "ppfwd_log_lines_dropped_total", "counter",
           "Log lines lost: the log buffer was full (stderr not read fast enough) or stderr "
           "refused them.");
    fprintf(f, "ppfwd_log_lines_dropped_total %llu\n", (unsigned long long)log_dropped_total());
    family(f, "ppfwd_log_lines_suppressed_total", "counter",
           "Per-connection log lines held back by the rate limit.");
    fprintf(f, "ppfwd_log_lines_suppressed_total %llu\n",
            (unsigned long long)log_suppressed_total());
}

/* ---- serving ------------------------------------------------------------- */

enum mc_state { MC_READ, MC_WRITE, MC_LINGER };

/* One client of the endpoint, from accept to close: at most
 * METRICS_DEADLINE_MS in all. */
struct mconn {
    struct mconn *prev, *next; /* M.conns, oldest first */
    int fd;
    enum mc_state state;
    int head; /* a HEAD request: GET's status and headers, no body */
    struct timer deadline;
    size_t len; /* request bytes in req */
    char *out;  /* the response */
    size_t outlen, outoff;
    char req[REQ_MAX];
};

static void mc_close(struct mconn *c)
{
    loop_timer_cancel(M.loop, &c->deadline);
    loop_close(M.loop, c->fd);
    if (c->prev)
        c->prev->next = c->next;
    else
        M.conns = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        M.last = c->prev;
    M.nconns--;
    free(c->out);
    free(c);
}

static void mc_expired(struct loop *l, struct timer *t, void *arg)
{
    (void)l;
    (void)t;
    mc_close(arg);
}

/* The response, whole, in c->out: status line, headers, body. To HEAD,
 * the same without the body: Content-Length is still the length GET gets
 * (RFC 9110 9.3.2). */
static int mc_respond_n(struct mconn *c, const char *status, const char *body, size_t blen)
{
    FILE *f = open_memstream(&c->out, &c->outlen);

    if (f == NULL)
        return -1;
    fprintf(f,
            "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
            "Content-Length: %zu\r\nConnection: close\r\n%s\r\n",
            status, blen, strncmp(status, "405", 3) == 0 ? "Allow: GET, HEAD\r\n" : "");
    if (!c->head)
        fwrite(body, 1, blen, f);
    if (fclose(f) != 0)
        return -1;
    c->state = MC_WRITE;
    return 0;
}

static int mc_respond(struct mconn *c, const char *status, const char *body)
{
    return mc_respond_n(c, status, body, strlen(body));
}

static int mc_metrics(struct mconn *c)
{
    char *body = NULL;
    size_t blen = 0;
    FILE *f = open_memstream(&body, &blen);
    int rc;

    if (f == NULL)
        return -1;
    pthread_mutex_lock(&M.srv->lock);
    write_counters(f, M.srv);
    write_gauges(f, M.srv);
    pthread_mutex_unlock(&M.srv->lock);
    write_log_counters(f);
    rc = fclose(f) == 0 ? mc_respond_n(c, "200 OK", body, blen) : -1;
    free(body);
    return rc;
}

/* 1 if the request line asks for path, with or without a query. */
static int is_path(const char *target, size_t n, const char *path)
{
    size_t plen = strlen(path);

    return n >= plen && memcmp(target, path, plen) == 0 && (n == plen || target[plen] == '?');
}

/* 1 if the request line starts with method and a space. Methods are
 * case-sensitive (RFC 9110 9.1). */
static int is_method(const struct mconn *c, const char *sp, const char *method)
{
    size_t n = strlen(method);

    return (size_t)(sp - c->req) == n && memcmp(c->req, method, n) == 0;
}

/* Answers a complete request head. */
static int mc_route(struct mconn *c)
{
    static const char *const health[] = {"starting\n", "ok\n", "draining\n"};
    const char *sp = memchr(c->req, ' ', c->len), *target, *end;
    enum server_state st;

    if (sp != NULL && is_method(c, sp, "HEAD"))
        c->head = 1;
    else if (sp == NULL || !is_method(c, sp, "GET"))
        return mc_respond(c, "405 Method Not Allowed", "only GET and HEAD\n");
    target = sp + 1;
    end = target;
    while (end < c->req + c->len && *end != ' ' && *end != '\r' && *end != '\n')
        end++;
    if (is_path(target, (size_t)(end - target), "/metrics"))
        return mc_metrics(c);
    if (is_path(target, (size_t)(end - target), "/healthz")) {
        st = server_state(M.srv);
        return mc_respond(c, st == SERVER_SERVING ? "200 OK" : "503 Service Unavailable",
                          health[st]);
    }
    return mc_respond(c, "404 Not Found", "not found: try /metrics or /healthz\n");
}

static void mc_event(struct loop *l, int fd, void *arg, unsigned events);

/* Sends what the socket takes; once all is sent, the write side is shut
 * and the client's bytes read and dropped until it closes (a lingering
 * close, as nginx does): closing with unread input would reset the
 * connection, and the client could lose the answer, a 431 above all. */
static void mc_write(struct mconn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1 && errno == EAGAIN) {
            if (loop_set(M.loop, c->fd, LOOP_WRITE, mc_event, c) != 0)
                mc_close(c);
            return;
        }
        if (n <= 0) {
            mc_close(c);
            return;
        }
        c->outoff += (size_t)n;
    }
    shutdown(c->fd, SHUT_WR);
    c->state = MC_LINGER;
    if (loop_set(M.loop, c->fd, LOOP_READ, mc_event, c) != 0)
        mc_close(c);
}

static void mc_read(struct mconn *c)
{
    char sink[4096];
    ssize_t n;

    if (c->state == MC_LINGER) {
        n = recv(c->fd, sink, sizeof(sink), 0);
        if (n == 0 || (n == -1 && errno != EINTR && errno != EAGAIN))
            mc_close(c);
        return;
    }
    n = recv(c->fd, c->req + c->len, sizeof(c->req) - 1 - c->len, 0);
    if (n == -1 && (errno == EINTR || errno == EAGAIN))
        return;
    if (n <= 0) {
        mc_close(c);
        return;
    }
    c->len += (size_t)n;
    c->req[c->len] = '\0';
    if (memchr(c->req, '\0', c->len) != NULL) {
        /* No NUL in an HTTP head (RFC 9110 5.5); searched with memmem
         * below, a head with one would otherwise wait for its deadline. */
        if (mc_respond(c, "400 Bad Request", "NUL byte in the request head\n") != 0) {
            mc_close(c);
            return;
        }
    } else if (memmem(c->req, c->len, "\r\n\r\n", 4) != NULL ||
               memmem(c->req, c->len, "\n\n", 2) != NULL) {
        if (mc_route(c) != 0) {
            mc_close(c);
            return;
        }
    } else if (c->len == sizeof(c->req) - 1) {
        if (mc_respond(c, "431 Request Header Fields Too Large", "request head too large\n") != 0) {
            mc_close(c);
            return;
        }
    } else {
        return;
    }
    mc_write(c);
}

static void mc_event(struct loop *l, int fd, void *arg, unsigned events)
{
    struct mconn *c = arg;

    (void)l;
    (void)fd;
    if (c->state == MC_WRITE && (events & (LOOP_WRITE | LOOP_ERROR)))
        mc_write(c);
    else if (events & (LOOP_READ | LOOP_ERROR))
        mc_read(c);
}

/* At the cap, the oldest client still sending its request (or lingering)
 * gives way: a scrape takes milliseconds, so the oldest is the likeliest
 * idle or slow one, and refusing newcomers instead would let 64 idle
 * sockets hold every scrape off until their deadline. Clients being
 * answered are not cut; if all are, the newcomer is. Returns 0 if room. */
static int make_room(void)
{
    for (struct mconn *c = M.conns; c != NULL; c = c->next) {
        if (c->state != MC_WRITE) {
            mc_close(c);
            return 0;
        }
    }
    return -1;
}

static void mc_accept(struct loop *l, int fd, void *arg, unsigned events)
{
    struct mconn *c;
    int cfd;

    (void)arg;
    (void)events;
    for (int i = 0; i < METRICS_MAX_CONNS; i++) {
        cfd = accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
        if (cfd == -1) {
            if (listen_accept_failed(errno, NULL)) {
                /* Out of fds or memory: leave the listener for a while
                 * (a deadline may free one) rather than spin on it. */
                loop_del(l, fd, LOOP_READ);
                loop_timer_set(l, &M.pause, ACCEPT_PAUSE_MS, resume_accept, NULL);
            }
            return;
        }
        c = NULL;
        if (M.nconns < METRICS_MAX_CONNS || make_room() == 0)
            c = calloc(1, sizeof(*c));
        if (c == NULL || loop_add(l, cfd, LOOP_READ, mc_event, c) != 0) {
            free(c);
            close(cfd);
            continue;
        }
        c->fd = cfd;
        c->prev = M.last;
        if (M.last)
            M.last->next = c;
        else
            M.conns = c;
        M.last = c;
        M.nconns++;
        loop_timer_set(l, &c->deadline, METRICS_DEADLINE_MS, mc_expired, c);
    }
}

static void resume_accept(struct loop *l, struct timer *t, void *arg)
{
    (void)t;
    (void)arg;
    loop_add(l, M.fd, LOOP_READ, mc_accept, NULL);
}

static void on_wake(struct loop *l, void *arg)
{
    (void)arg;
    if (atomic_load(&M.stop))
        loop_stop(l);
}

static void *metrics_main(void *arg)
{
    (void)arg;
    loop_run(M.loop);
    while (M.conns != NULL)
        mc_close(M.conns);
    return NULL;
}

/* The loop's fd table spans every fd the process may open. */
static int fd_limit(void)
{
    struct rlimit rl;

    if (getrlimit(RLIMIT_NOFILE, &rl) == -1 || rl.rlim_cur == RLIM_INFINITY)
        return 1 << 20;
    return rl.rlim_cur > (1 << 24) ? 1 << 24 : (int)rl.rlim_cur;
}

/* Opens the listener and the loop. Returns 0 or -errno. */
static int metrics_open(const struct sockaddr *sa)
{
    const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)sa;
    int any6 = sa->sa_family == AF_INET6 && IN6_IS_ADDR_UNSPECIFIED(&sin6->sin6_addr);
    struct sockaddr_in any4;
    int one = 1, off = 0, rc;

    M.fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    /* [::] (":PORT"): every address, IPv4 too; 0.0.0.0 where there is no IPv6. */
    if (M.fd == -1 && any6 && errno == EAFNOSUPPORT) {
        memset(&any4, 0, sizeof(any4));
        any4.sin_family = AF_INET;
        any4.sin_port = sin6->sin6_port;
        sa = (const struct sockaddr *)&any4;
        any6 = 0;
        M.fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    }
    if (M.fd == -1 || setsockopt(M.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        (any6 && setsockopt(M.fd, IPPROTO_IPV6, IPV6_V6ONLY, &off, sizeof(off)) == -1) ||
        bind(M.fd, sa, addr_len(sa)) == -1 || listen(M.fd, 128) == -1 ||
        (M.loop = loop_new(fd_limit())) == NULL)
        return -errno;
    rc = loop_add(M.loop, M.fd, LOOP_READ, mc_accept, NULL);
    if (rc == 0)
        loop_on_wake(M.loop, on_wake, NULL);
    return rc;
}

/* Listens on addr and starts the thread. Returns 0, or -1 after logging. */
int metrics_start(struct server *srv, const struct sockaddr_storage *addr)
{
    const struct sockaddr *sa = (const struct sockaddr *)addr;
    sigset_t all, old;
    char name[64];
    int rc;

    M.srv = srv;
    atomic_store(&M.stop, 0);
    addr_format(sa, name, sizeof(name));
    rc = metrics_open(sa);
    if (rc == 0) {
        /* Signals belong to the thread that sigwaits for them. */
        sigfillset(&all);
        pthread_sigmask(SIG_SETMASK, &all, &old);
        rc = -pthread_create(&M.thread, NULL, metrics_main, NULL);
        pthread_sigmask(SIG_SETMASK, &old, NULL);
        M.running = rc == 0;
    }
    if (rc != 0) {
        log_event(LOG_ERROR, "metrics_error", NULL, "listen", LOG_STR, name, "error", LOG_STR,
                  strerror(-rc), LOG_END);
        metrics_stop();
        return -1;
    }
    log_event(LOG_INFO, "metrics_listen", NULL, "listen", LOG_STR, name, LOG_END);
    return 0;
}

void metrics_stop(void)
{
    if (M.running) {
        atomic_store(&M.stop, 1);
        loop_wake(M.loop);
        pthread_join(M.thread, NULL);
        M.running = 0;
    }
    if (M.loop != NULL)
        loop_free(M.loop);
    M.loop = NULL;
    if (M.fd != -1)
        close(M.fd);
    M.fd = -1;
}
