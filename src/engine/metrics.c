/*
 * metrics.c - Prometheus text exposition at /metrics (metrics_*).
 *
 * One thread of its own serves the endpoint, one short request at a time:
 * a scrape is rare and small, and keeping it off the workers' loops means
 * the hot path never pays for it. The workers' counters are summed here at
 * scrape time (each has a single writer, so a relaxed read is exact enough).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <sys/socket.h>

#include "util/addr.h"
#include "util/log.h"
#include "engine/balance.h"
#include "engine/metrics.h"
#include "engine/route.h"
#include "engine/server.h"

#define REQ_MAX 4096
#define IO_TIMEOUT_MS 2000

static struct {
    struct server *srv;
    pthread_t thread;
    int fd;
    int stop_pipe[2]; /* written to stop the thread */
} M = {.fd = -1, .stop_pipe = {-1, -1}};

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
    family(f, "ppfwd_upstream_errors_total", "counter", "Failed upstream connects.");
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

/* Writes all of buf, giving up when the client stops reading. */
static void send_all(int fd, const char *buf, size_t len)
{
    struct pollfd p = {.fd = fd, .events = POLLOUT};

    while (len > 0 && poll(&p, 1, IO_TIMEOUT_MS) == 1) {
        ssize_t n = send(fd, buf, len, MSG_NOSIGNAL);
        if (n <= 0 && errno != EINTR && errno != EAGAIN)
            return;
        if (n > 0) {
            buf += n;
            len -= (size_t)n;
        }
    }
}

/* Reads the request head (up to the blank line) within the timeout. */
static int read_request(int fd, char *req, size_t cap)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    size_t len = 0;

    while (len < cap - 1 && poll(&p, 1, IO_TIMEOUT_MS) == 1) {
        ssize_t n = recv(fd, req + len, cap - 1 - len, 0);
        if (n <= 0)
            return -1;
        len += (size_t)n;
        req[len] = '\0';
        if (strstr(req, "\r\n\r\n") || strstr(req, "\n\n"))
            return 0;
    }
    return -1;
}

static void serve(int fd)
{
    char req[REQ_MAX], *body = NULL, head[160];
    size_t blen = 0;
    FILE *f;
    int ok;

    if (read_request(fd, req, sizeof(req)) != 0)
        return;
    ok = strncmp(req, "GET /metrics ", 13) == 0 || strncmp(req, "GET /metrics?", 13) == 0;
    f = open_memstream(&body, &blen);
    if (f == NULL)
        return;
    if (ok) {
        pthread_mutex_lock(&M.srv->lock);
        write_counters(f, M.srv);
        write_gauges(f, M.srv);
        pthread_mutex_unlock(&M.srv->lock);
    } else {
        fputs("not found: try /metrics\n", f);
    }
    fclose(f);
    snprintf(head, sizeof(head),
             "HTTP/1.0 %s\r\nContent-Type: text/plain; version=0.0.4\r\n"
             "Content-Length: %zu\r\nConnection: close\r\n\r\n",
             ok ? "200 OK" : "404 Not Found", blen);
    send_all(fd, head, strlen(head));
    send_all(fd, body, blen);
    free(body);
}

static void *metrics_main(void *arg)
{
    struct pollfd p[2] = {{.fd = M.fd, .events = POLLIN}, {.fd = M.stop_pipe[0], .events = POLLIN}};

    (void)arg;
    for (;;) {
        if (poll(p, 2, -1) == -1 && errno != EINTR)
            break;
        if (p[1].revents)
            break;
        if (p[0].revents & POLLIN) {
            int c = accept4(M.fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
            if (c == -1) {
                if (errno == EMFILE || errno == ENFILE)
                    poll(NULL, 0, 100); /* out of fds: do not spin */
                continue;
            }
            serve(c);
            close(c);
        }
    }
    return NULL;
}

/* Listens on addr and starts the thread. Returns 0, or -1 after logging. */
int metrics_start(struct server *srv, const struct sockaddr_storage *addr)
{
    const struct sockaddr *sa = (const struct sockaddr *)addr;
    char name[64];
    int one = 1;

    M.srv = srv;
    addr_format(sa, name, sizeof(name));
    M.fd = socket(sa->sa_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (M.fd == -1 || setsockopt(M.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) == -1 ||
        bind(M.fd, sa, addr_len(sa)) == -1 || listen(M.fd, 64) == -1 ||
        pipe2(M.stop_pipe, O_CLOEXEC) == -1 ||
        pthread_create(&M.thread, NULL, metrics_main, NULL) != 0) {
        log_event(LOG_ERROR, "metrics_error", NULL, "listen", LOG_STR, name, "error", LOG_STR,
                  strerror(errno), LOG_END);
        metrics_stop();
        return -1;
    }
    log_event(LOG_INFO, "metrics_listen", NULL, "listen", LOG_STR, name, LOG_END);
    return 0;
}

void metrics_stop(void)
{
    if (M.stop_pipe[1] != -1 && M.thread) {
        (void)!write(M.stop_pipe[1], "x", 1);
        pthread_join(M.thread, NULL);
        M.thread = 0;
    }
    for (int i = 0; i < 2; i++) {
        if (M.stop_pipe[i] != -1)
            close(M.stop_pipe[i]);
        M.stop_pipe[i] = -1;
    }
    if (M.fd != -1)
        close(M.fd);
    M.fd = -1;
}
