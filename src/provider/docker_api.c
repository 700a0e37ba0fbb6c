/*
 * docker_api.c - GETs to the Docker Engine API over its unix socket with
 * libcurl's multi interface (docker_api_*); see docker_api.h.
 *
 * Why libcurl: it speaks HTTP/1.1 with chunked bodies (the event stream is
 * one endless chunked answer) over a unix socket (CURLOPT_UNIX_SOCKET_PATH),
 * and curl_multi_poll/curl_multi_wakeup give the provider one wait that both
 * transfers and a stop request end, so stopping never waits for the daemon.
 * Both transfers share one multi handle, each its own connection.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <curl/curl.h>
#include <json-c/json.h>

#include "provider/docker_api.h"

/* An error answer's body is read only for its message. */
#define ERROR_BODY_MAX 4096

struct body {
    char *p;
    size_t len, cap;
};

struct xfer {
    CURL *h;
    struct docker_api *a;
    struct body body; /* the list answer, or any error answer */
    size_t max;       /* cap for body */
    int running;
    int ready; /* headers of a 200 answer are in */
    int rc;    /* a negative DOCKER_E* found while reading, else 0 */
    char err[CURL_ERROR_SIZE];
};

struct docker_api {
    char path[108]; /* sizeof(sun_path) */
    CURLM *m;
    struct xfer list, ev;
    struct docker_stream stream;
    docker_stream_cb *cb;
    void *arg;
    atomic_int stopped;
};

static pthread_once_t global_once = PTHREAD_ONCE_INIT;
static CURLcode global_rc;

static void global_init(void)
{
    global_rc = curl_global_init(CURL_GLOBAL_NOTHING);
}

static int body_add(struct body *b, const char *p, size_t n, size_t max)
{
    if (n > max - b->len)
        return -DOCKER_ETOOBIG;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 16384;
        char *q;
        while (cap < b->len + n + 1)
            cap *= 2;
        if ((q = realloc(b->p, cap)) == NULL)
            return -DOCKER_ENOMEM;
        b->p = q;
        b->cap = cap;
    }
    memcpy(b->p + b->len, p, n);
    b->len += n;
    b->p[b->len] = '\0';
    return 0;
}

static long status_of(CURL *h)
{
    long status = 0;

    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    return status;
}

/* A return other than n makes libcurl end the transfer (CURLE_WRITE_ERROR);
 * x->rc says why. */
static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;
    struct docker_api *a = x->a;
    int rc;

    (void)size; /* always 1 */
    if (x == &a->ev && x->ready)
        rc = docker_stream_feed(&a->stream, p, n, a->cb, a->arg);
    else
        rc = body_add(&x->body, p, n, x->ready ? x->max : ERROR_BODY_MAX);
    if (rc == 0)
        return n;
    x->rc = rc;
    return 0;
}

/* The empty line that ends the headers: from here on, a 200 answer's body
 * is what was asked for. */
static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct xfer *x = arg;

    (void)size;
    if ((n == 2 && p[0] == '\r') || (n == 1 && p[0] == '\n'))
        x->ready = status_of(x->h) == 200;
    return n;
}

static int xfer_init(struct docker_api *a, struct xfer *x, size_t max)
{
    x->a = a;
    x->max = max;
    if ((x->h = curl_easy_init()) == NULL)
        return -1;
    curl_easy_setopt(x->h, CURLOPT_UNIX_SOCKET_PATH, a->path);
    curl_easy_setopt(x->h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(x->h, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(x->h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(x->h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(x->h, CURLOPT_ERRORBUFFER, x->err);
    curl_easy_setopt(x->h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(x->h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(x->h, CURLOPT_CONNECTTIMEOUT_MS, (long)DOCKER_CONNECT_TIMEOUT_MS);
    return 0;
}

struct docker_api *docker_api_new(const char *spec, int *err)
{
    struct docker_api *a = calloc(1, sizeof(*a));

    *err = -DOCKER_ENOMEM;
    if (a == NULL)
        return NULL;
    if ((*err = docker_api_socket_path(spec, a->path, sizeof(a->path))) != 0) {
        free(a);
        return NULL;
    }
    *err = -DOCKER_ENOMEM;
    pthread_once(&global_once, global_init);
    if (global_rc != CURLE_OK || (a->m = curl_multi_init()) == NULL ||
        xfer_init(a, &a->list, DOCKER_LIST_MAX) != 0 || xfer_init(a, &a->ev, 0) != 0 ||
        docker_stream_init(&a->stream) != 0) {
        docker_api_free(a);
        return NULL;
    }
    curl_easy_setopt(a->list.h, CURLOPT_URL,
                     "http://localhost/" DOCKER_API_VERSION "/containers/json?all=1");
    curl_easy_setopt(a->list.h, CURLOPT_TIMEOUT_MS, (long)DOCKER_LIST_TIMEOUT_MS);
    *err = 0;
    return a;
}

static void xfer_free(struct docker_api *a, struct xfer *x)
{
    if (x->h == NULL)
        return;
    if (x->running)
        curl_multi_remove_handle(a->m, x->h);
    curl_easy_cleanup(x->h);
    free(x->body.p);
}

void docker_api_free(struct docker_api *a)
{
    if (a == NULL)
        return;
    xfer_free(a, &a->list);
    xfer_free(a, &a->ev);
    if (a->m != NULL)
        curl_multi_cleanup(a->m);
    docker_stream_free(&a->stream);
    free(a);
}

static int xfer_start(struct docker_api *a, struct xfer *x)
{
    if (x->running)
        return 0;
    x->body.len = 0;
    x->ready = 0;
    x->rc = 0;
    x->err[0] = '\0';
    if (curl_multi_add_handle(a->m, x->h) != CURLM_OK)
        return -DOCKER_ENOMEM;
    x->running = 1;
    return 0;
}

int docker_api_list_start(struct docker_api *a)
{
    return xfer_start(a, &a->list);
}

const char *docker_api_list_body(const struct docker_api *a, size_t *len)
{
    *len = a->list.body.len;
    return a->list.body.p ? a->list.body.p : "";
}

/* The events a route set depends on, as the API's filters parameter. */
static char *events_url(CURL *h)
{
    static const char filters[] = "{\"type\":[\"container\"],\"event\":[\"create\",\"start\","
                                  "\"die\",\"destroy\",\"remove\",\"rename\"]}";
    char *esc = curl_easy_escape(h, filters, 0), *url = NULL;
    size_t n;

    if (esc == NULL)
        return NULL;
    n = strlen(esc) + 64;
    if ((url = malloc(n)) != NULL)
        snprintf(url, n, "http://localhost/%s/events?filters=%s", DOCKER_API_VERSION, esc);
    curl_free(esc);
    return url;
}

int docker_api_events_start(struct docker_api *a, docker_stream_cb *cb, void *arg)
{
    char *url = events_url(a->ev.h);

    if (url == NULL)
        return -DOCKER_ENOMEM;
    curl_easy_setopt(a->ev.h, CURLOPT_URL, url); /* libcurl keeps its own copy */
    free(url);
    a->cb = cb;
    a->arg = arg;
    docker_stream_reset(&a->stream);
    return xfer_start(a, &a->ev);
}

int docker_api_events_ready(const struct docker_api *a)
{
    return a->ev.running && a->ev.ready;
}

int docker_api_events_running(const struct docker_api *a)
{
    return a->ev.running;
}

void docker_api_events_stop(struct docker_api *a)
{
    if (!a->ev.running)
        return;
    curl_multi_remove_handle(a->m, a->ev.h);
    a->ev.running = 0;
}

/* The daemon's error answers are {"message": "..."}. */
static void error_message(const struct body *b, char *msg, size_t cap)
{
    json_object *o = b->len ? json_tokener_parse(b->p) : NULL, *m;

    if (o != NULL && json_object_object_get_ex(o, "message", &m) &&
        json_object_is_type(m, json_type_string))
        snprintf(msg, cap, "%s", json_object_get_string(m));
    else
        snprintf(msg, cap, "%.*s", (int)(b->len < 200 ? b->len : 200), b->p ? b->p : "");
    json_object_put(o);
}

static void result_of(struct docker_api *a, struct xfer *x, CURLcode cc, struct docker_result *res)
{
    memset(res, 0, sizeof(*res));
    res->status = status_of(x->h);
    x->running = 0;
    curl_multi_remove_handle(a->m, x->h);
    if (x->rc != 0) {
        /* Ours, not curl's "failure writing output". */
        res->rc = x->rc;
        if (x->rc == -DOCKER_ETOOBIG)
            snprintf(res->msg, sizeof(res->msg), "%s over %u bytes",
                     x == &a->ev ? "an event" : "the list",
                     x == &a->ev ? DOCKER_EVENT_MAX : DOCKER_LIST_MAX);
        return;
    } else if (res->status != 0 && res->status != 200) {
        res->rc = -DOCKER_EHTTP;
        error_message(&x->body, res->msg, sizeof(res->msg));
        return;
    } else if (cc == CURLE_COULDNT_CONNECT) {
        long oserr = 0;
        res->rc = -DOCKER_ECONNECT;
        /* curl's own text would name "localhost port 80", not the socket. */
        curl_easy_getinfo(x->h, CURLINFO_OS_ERRNO, &oserr);
        if (oserr != 0) {
            snprintf(res->msg, sizeof(res->msg), "%s: %s", a->path, strerror((int)oserr));
            return;
        }
    } else if (cc != CURLE_OK) {
        res->rc = -DOCKER_EIO;
    } else if (x == &a->ev) {
        res->rc = -DOCKER_EIO; /* an event stream never ends by itself */
        snprintf(res->msg, sizeof(res->msg), "the daemon closed the event stream");
        return;
    }
    snprintf(res->msg, sizeof(res->msg), "%s", x->err[0] ? x->err : curl_easy_strerror(cc));
}

static int collect(struct docker_api *a, struct docker_result *list, struct docker_result *events)
{
    CURLMsg *msg;
    int left, done = 0, running;

    curl_multi_perform(a->m, &running);
    while ((msg = curl_multi_info_read(a->m, &left)) != NULL) {
        if (msg->msg != CURLMSG_DONE)
            continue;
        if (msg->easy_handle == a->list.h) {
            result_of(a, &a->list, msg->data.result, list);
            done |= DOCKER_DONE_LIST;
        } else if (msg->easy_handle == a->ev.h) {
            result_of(a, &a->ev, msg->data.result, events);
            done |= DOCKER_DONE_EVENTS;
        }
    }
    return done;
}

int docker_api_poll(struct docker_api *a, int timeout_ms, struct docker_result *list,
                    struct docker_result *events)
{
    int done;

    if (atomic_load(&a->stopped))
        return -DOCKER_ESTOPPED;
    done = collect(a, list, events);
    if (done != 0)
        return done;
    curl_multi_poll(a->m, NULL, 0, timeout_ms, NULL);
    if (atomic_load(&a->stopped))
        return -DOCKER_ESTOPPED;
    return collect(a, list, events);
}

void docker_api_stop(struct docker_api *a)
{
    atomic_store(&a->stopped, 1);
    curl_multi_wakeup(a->m);
}

int docker_api_list_sync(struct docker_api *a, struct docker_result *res)
{
    struct docker_result ev;
    int rc = docker_api_list_start(a);

    memset(res, 0, sizeof(*res));
    res->rc = rc;
    /* libcurl ends the transfer within DOCKER_LIST_TIMEOUT_MS. */
    while (rc == 0) {
        rc = docker_api_poll(a, 1000, res, &ev);
        if (rc < 0)
            res->rc = rc;
        if (rc < 0 || (rc & DOCKER_DONE_LIST))
            break;
        rc = 0;
    }
    return res->rc;
}
