/*
 * notify.c - systemd's readiness protocol without libsystemd (notify_*).
 *
 * The protocol is one datagram of "KEY=VALUE\n" lines to the AF_UNIX socket
 * named by $NOTIFY_SOCKET: READY=1 once every route listens, RELOADING=1
 * and READY=1 around a reload, STOPPING=1 at SIGTERM, STATUS= free text for
 * `systemctl status`. systemd takes the sender's PID from the socket's
 * credentials, so any thread of the process may send. Sends never block
 * (MSG_DONTWAIT): a datagram systemd cannot take now is dropped, as
 * sd_notify(3) would fail it, and a later one carries the current state.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/notify.h"
#include "engine/route.h"
#include "engine/server.h"
#include "engine/worker.h"
#include "util/log.h"

#define STATUS_EVERY_MS 2000
#define RELOAD_WAIT_MS 2000

static struct {
    int fd;
    struct sockaddr_un addr;
    socklen_t addrlen;
    int send_failed;     /* logged once */
    atomic_int draining; /* after STOPPING=1: the status says so */
    struct server *srv;
    pthread_t thread;
    int thread_up;
    int stop;
    char last[160];               /* the last STATUS= sent */
    uint64_t gen_before;          /* the route set's generation when the reload began */
    unsigned *synced_before;      /* each worker's synced then; NULL: no reload */
    pthread_mutex_t lock;         /* guards stop and last */
    pthread_cond_t cond;
} nt = {.fd = -1, .lock = PTHREAD_MUTEX_INITIALIZER};

const char *notify_addr(const char *value, struct sockaddr_un *sun, socklen_t *len)
{
    size_t n = strlen(value);

    if (n == 0 || (value[0] != '/' && value[0] != '@'))
        return "not an absolute path or an @abstract name";
    if (n >= sizeof(sun->sun_path) || (value[0] == '@' && n < 2))
        return value[0] == '@' ? "bad abstract socket name" : "path too long for a socket";
    memset(sun, 0, sizeof(*sun));
    sun->sun_family = AF_UNIX;
    memcpy(sun->sun_path, value, n);
    if (value[0] == '@')
        sun->sun_path[0] = '\0';
    /* An abstract name is exactly its bytes: no trailing NUL counted. */
    *len = (socklen_t)(offsetof(struct sockaddr_un, sun_path) + n + (value[0] == '/'));
    return NULL;
}

static void notify_send(const char *msg)
{
    ssize_t n;

    if (nt.fd == -1)
        return;
    do
        n = sendto(nt.fd, msg, strlen(msg), MSG_NOSIGNAL | MSG_DONTWAIT,
                   (const struct sockaddr *)&nt.addr, nt.addrlen);
    while (n == -1 && errno == EINTR);
    if (n == -1 && !nt.send_failed) {
        nt.send_failed = 1;
        log_event(LOG_WARN, "notify_error", NULL, "socket", LOG_STR, getenv("NOTIFY_SOCKET"),
                  "error", LOG_STR, strerror(errno), LOG_END);
    }
}

/* Open TCP connections and UDP sessions of the current routes (those a
 * reload removed are not counted while they drain). A route's conns counts
 * both, for max-conns. */
static void count(struct server *srv, unsigned *tcp, unsigned *udp)
{
    *tcp = *udp = 0;
    for (size_t i = 0; i < srv->nroutes; i++) {
        unsigned all = atomic_load(&srv->routes[i]->conns);
        unsigned sessions = atomic_load(&srv->routes[i]->udp_sessions);
        /* Two loads, not one snapshot: never let a race show a negative. */
        *tcp += all > sessions ? all - sessions : 0;
        *udp += sessions;
    }
}

void notify_status_text(struct server *srv, char *buf, size_t cap)
{
    size_t routes;
    unsigned conns, sessions;

    pthread_mutex_lock(&srv->lock);
    routes = srv->nroutes;
    count(srv, &conns, &sessions);
    pthread_mutex_unlock(&srv->lock);
    snprintf(buf, cap, "%zu route%s, %u open connection%s, %u UDP session%s", routes,
             routes == 1 ? "" : "s", conns, conns == 1 ? "" : "s", sessions,
             sessions == 1 ? "" : "s");
}

/* Records status as the last STATUS= sent; returns 1 if it differs from
 * the one before. */
static int status_changed(const char *status)
{
    int changed;

    pthread_mutex_lock(&nt.lock);
    changed = strcmp(nt.last, status) != 0;
    snprintf(nt.last, sizeof(nt.last), "%s", status);
    pthread_mutex_unlock(&nt.lock);
    return changed;
}

/* The status line: the counts, after "draining: " once stopping. */
static void status_line(char *buf, size_t cap)
{
    char counts[128];

    notify_status_text(nt.srv, counts, sizeof(counts));
    snprintf(buf, cap, "%s%s", atomic_load(&nt.draining) ? "draining: " : "", counts);
}

static void *status_main(void *arg)
{
    char now[160], msg[200];
    struct timespec at;
    int stop = 0;

    (void)arg;
    while (!stop) {
        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_sec += STATUS_EVERY_MS / 1000;
        pthread_mutex_lock(&nt.lock);
        while (!nt.stop && pthread_cond_timedwait(&nt.cond, &nt.lock, &at) != ETIMEDOUT)
            ;
        stop = nt.stop;
        pthread_mutex_unlock(&nt.lock);
        status_line(now, sizeof(now));
        if (!stop && status_changed(now)) {
            snprintf(msg, sizeof(msg), "STATUS=%s\n", now);
            notify_send(msg);
        }
    }
    return NULL;
}

static int status_thread_start(void)
{
    pthread_condattr_t ca;
    int rc;

    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&nt.cond, &ca);
    pthread_condattr_destroy(&ca);
    rc = pthread_create(&nt.thread, NULL, status_main, NULL);
    if (rc != 0) {
        pthread_cond_destroy(&nt.cond);
        log_event(LOG_WARN, "notify_error", NULL, "error", LOG_STR,
                  "no status thread: STATUS= is sent at start and reload only", LOG_END);
        return -1;
    }
    nt.thread_up = 1;
    return 0;
}

int notify_start(struct server *srv)
{
    const char *value = getenv("NOTIFY_SOCKET");
    const char *err;

    if (value == NULL)
        return 0;
    err = notify_addr(value, &nt.addr, &nt.addrlen);
    if (err == NULL && (nt.fd = socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0)) == -1)
        err = strerror(errno);
    if (err != NULL) {
        log_event(LOG_WARN, "notify_error", NULL, "socket", LOG_STR, value, "error", LOG_STR, err,
                  LOG_END);
        return 0;
    }
    nt.srv = srv;
    nt.stop = 0;
    notify_ready(srv);
    return status_thread_start();
}

void notify_reloading(struct server *srv)
{
    struct timespec ts;
    char msg[96];

    if (nt.fd == -1)
        return;
    free(nt.synced_before);
    nt.synced_before = calloc((size_t)srv->nworkers + 1, sizeof(*nt.synced_before));
    for (int i = 0; nt.synced_before != NULL && i < srv->nworkers; i++)
        nt.synced_before[i] = atomic_load(&srv->workers[i].synced);
    pthread_mutex_lock(&srv->lock);
    nt.gen_before = srv->routes_gen;
    pthread_mutex_unlock(&srv->lock);

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(msg, sizeof(msg), "RELOADING=1\nMONOTONIC_USEC=%llu\nSTATUS=reloading\n",
             (unsigned long long)ts.tv_sec * 1000000ULL + (unsigned long long)ts.tv_nsec / 1000);
    notify_send(msg);
}

/* After a reload that replaced the route set: waits until every worker
 * has applied it (its listeners open), at most RELOAD_WAIT_MS. */
static void wait_synced(struct server *srv)
{
    struct timespec ms = {0, 1000000};
    uint64_t now;
    int waiting = 1;

    /* A generation, not the set's address: the old set is freed by the
     * swap, and a new one may be allocated where it was. */
    pthread_mutex_lock(&srv->lock);
    now = srv->routes_gen;
    pthread_mutex_unlock(&srv->lock);
    for (int t = 0; now != nt.gen_before && waiting && t < RELOAD_WAIT_MS; t++) {
        waiting = 0;
        for (int i = 0; i < srv->nworkers; i++)
            waiting |= atomic_load(&srv->workers[i].synced) == nt.synced_before[i];
        if (waiting)
            nanosleep(&ms, NULL);
    }
    free(nt.synced_before);
    nt.synced_before = NULL;
}

void notify_ready(struct server *srv)
{
    char status[160], msg[200];

    if (nt.fd == -1)
        return;
    if (nt.synced_before != NULL)
        wait_synced(srv);
    nt.srv = srv;
    status_line(status, sizeof(status));
    status_changed(status);
    snprintf(msg, sizeof(msg), "READY=1\nSTATUS=%s\n", status);
    notify_send(msg);
}

void notify_stopping(void)
{
    char status[160], msg[200];

    if (nt.fd == -1)
        return;
    atomic_store(&nt.draining, 1);
    status_line(status, sizeof(status));
    status_changed(status);
    snprintf(msg, sizeof(msg), "STOPPING=1\nSTATUS=%s\n", status);
    notify_send(msg);
}

void notify_stop(void)
{
    if (nt.thread_up) {
        pthread_mutex_lock(&nt.lock);
        nt.stop = 1;
        pthread_cond_signal(&nt.cond);
        pthread_mutex_unlock(&nt.lock);
        pthread_join(nt.thread, NULL);
        pthread_cond_destroy(&nt.cond);
        nt.thread_up = 0;
    }
    if (nt.fd != -1)
        close(nt.fd);
    nt.fd = -1;
    free(nt.synced_before);
    nt.synced_before = NULL;
    nt.srv = NULL;
    nt.send_failed = 0;
    nt.last[0] = '\0';
    atomic_store(&nt.draining, 0);
}
