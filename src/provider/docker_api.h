/*
 * docker_api.h - the Docker Engine API over its unix socket, with libcurl
 * (docker_api_*): the container list and the event stream, both GETs that
 * may run at once, and a poll that waits for either, or for a wake-up from
 * another thread.
 *
 * Paths carry the API version (DOCKER_API_VERSION): Docker serves older
 * versions it still supports, and Podman's compatible service accepts the
 * prefix. Bodies are capped (docker_json.h) so that no answer can grow
 * memory past the caps.
 */
#ifndef PPFWD_DOCKER_API_H
#define PPFWD_DOCKER_API_H

#include <stddef.h>

#include "provider/docker_json.h"

/* 1.41 is Docker 20.10's; every Docker since and Podman 3+ serve it. */
#define DOCKER_API_VERSION "v1.41"
#define DOCKER_SOCKET_DEFAULT "unix:///var/run/docker.sock"
/* Time for the whole list answer, and to connect to the socket. */
#define DOCKER_LIST_TIMEOUT_MS 15000
#define DOCKER_CONNECT_TIMEOUT_MS 5000

struct docker_api;

/* Reads "unix:///PATH" or "/PATH" into path[0..cap). Returns 0 or
 * -DOCKER_ESOCKET (another scheme, a relative or too long path). */
int docker_api_socket_path(const char *spec, char *path, size_t cap);

/* A client for the socket named by spec (docker_api_socket_path). Returns
 * it, or NULL with *err set to a negative DOCKER_E* code. Connects to
 * nothing yet. */
struct docker_api *docker_api_new(const char *spec, int *err);
void docker_api_free(struct docker_api *a);

/* What a finished transfer gave. */
struct docker_result {
    int rc;       /* 0, or a negative DOCKER_E* code */
    long status;  /* HTTP status; 0 when none came */
    char msg[256]; /* the daemon's "message" with an error status, or curl's error */
};

/*
 * Starts GET /containers/json?all=1 (at most one at a time). Returns 0, or
 * -DOCKER_ENOMEM. Its end is reported by docker_api_poll; the body is
 * then in docker_api_list_body until the next start.
 */
int docker_api_list_start(struct docker_api *a);
const char *docker_api_list_body(const struct docker_api *a, size_t *len);

/*
 * Starts GET /events filtered to containers' create, start, die, destroy,
 * remove and rename. Each event object is handed to cb(arg, obj) as it
 * arrives (docker_stream_feed). Returns 0 or -DOCKER_ENOMEM.
 * docker_api_events_ready() is 1 once the daemon answered 200: from then on
 * no change is missed, so a list started after it is complete.
 */
int docker_api_events_start(struct docker_api *a, docker_stream_cb *cb, void *arg);
int docker_api_events_ready(const struct docker_api *a);
int docker_api_events_running(const struct docker_api *a);
void docker_api_events_stop(struct docker_api *a);

/*
 * Moves the transfers on, waiting up to timeout_ms for the socket or a
 * wake-up. Returns a bit set of what finished since the last call
 * (DOCKER_DONE_LIST, DOCKER_DONE_EVENTS), their results in *list and *events
 * (each only when its bit is set), or -DOCKER_ESTOPPED once docker_api_stop
 * was called.
 */
#define DOCKER_DONE_LIST 0x1
#define DOCKER_DONE_EVENTS 0x2
int docker_api_poll(struct docker_api *a, int timeout_ms, struct docker_result *list,
                    struct docker_result *events);

/* From any thread: makes docker_api_poll return -DOCKER_ESTOPPED at once. */
void docker_api_stop(struct docker_api *a);

/* Lists once and waits for the answer (for `ppfwd check`). Returns 0 with
 * the body in docker_api_list_body, or a negative code with *res filled. */
int docker_api_list_sync(struct docker_api *a, struct docker_result *res);

#endif /* PPFWD_DOCKER_API_H */
