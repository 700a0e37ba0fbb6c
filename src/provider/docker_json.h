/*
 * docker_json.h - the Docker Engine API's JSON, read into a small model of
 * containers and events (docker_json_*), with json-c. Nothing here does I/O:
 * the answers come as bytes, so recorded answers test the same code the
 * provider runs.
 *
 * Only what ppfwd needs is kept: a container's id, name, whether it runs,
 * its address on its first network, and its labels that start with
 * "ppfwd.". Every size is capped (DOCKER_LIST_MAX, DOCKER_EVENT_MAX) so an
 * answer can never take more memory than those caps allow.
 */
#ifndef PPFWD_DOCKER_JSON_H
#define PPFWD_DOCKER_JSON_H

#include <stddef.h>
#include <netinet/in.h>
#include <arpa/inet.h>

/* The largest answer to GET /containers/json read (8 MiB: some 5000
 * containers with many labels each); a larger one is refused. */
#define DOCKER_LIST_MAX (8u << 20)
/* The largest single event object of GET /events (64 KiB). */
#define DOCKER_EVENT_MAX (64u << 10)
/* Nesting depth the JSON parser accepts (a container is 5 levels deep). */
#define DOCKER_JSON_DEPTH 32
/* Labels are kept only under this prefix; the rest are not ours. */
#define DOCKER_LABEL_PREFIX "ppfwd."

/* Error codes (negative in returns); docker_strerror() names them. */
enum docker_err {
    DOCKER_ENOMEM = 1, /* out of memory */
    DOCKER_ETOOBIG,    /* an answer or an event over its cap */
    DOCKER_EJSON,      /* not JSON */
    DOCKER_ESHAPE,     /* JSON, but not the shape the API documents */
    DOCKER_ECONNECT,   /* the socket cannot be reached */
    DOCKER_EHTTP,      /* an HTTP status other than 200 */
    DOCKER_EIO,        /* the transfer broke off */
    DOCKER_ESTOPPED,   /* the provider is stopping */
    DOCKER_ESOCKET,    /* the SOCKET argument is not unix://PATH or /PATH */
    DOCKER_ENOTBUILT,  /* a build without the provider (make static) */
};

const char *docker_strerror(int err);

struct docker_label {
    char *key; /* the whole key, e.g. "ppfwd.route.ssh" */
    char *value;
};

struct docker_container {
    char *id;
    char *name;  /* Names[0] without its '/'; the id's first 12 digits without */
    int running; /* State is "running" */
    char addr[INET6_ADDRSTRLEN]; /* its first network's address; "" without */
    struct docker_label *labels; /* those under DOCKER_LABEL_PREFIX, sorted by key */
    size_t nlabels;
};

struct docker_list {
    struct docker_container *v; /* sorted by name */
    size_t n;
};

/*
 * Parses an answer of GET /containers/json (an array of container objects)
 * from buf[0..len). Returns 0 and fills *out (free it with
 * docker_list_free), or a negative DOCKER_E* code with *out empty:
 * -DOCKER_ETOOBIG over DOCKER_LIST_MAX, -DOCKER_EJSON for bytes that are not
 * one JSON value, -DOCKER_ESHAPE when an element lacks Id or a field has
 * the wrong type.
 */
int docker_json_list(const char *buf, size_t len, struct docker_list *out);

void docker_list_free(struct docker_list *l);

/* What an event says; strings are truncated to their buffers. */
struct docker_event {
    char type[32];   /* "container", "image", "network", ... */
    char action[64]; /* "create", "start", "die", "destroy", "remove", ... */
    char id[80];
    char name[256]; /* Actor.Attributes.name, "" without */
};

/*
 * Reads one event object (json-c's json_object *, passed as void * to keep
 * json-c out of this header). Returns 1 when it concerns the route set (a
 * container's create, start, die, destroy or remove), 0 for any other
 * event, -DOCKER_ESHAPE when obj is not an object with string "Type" (or
 * "type") and "Action" (or "status").
 */
int docker_json_event(const void *obj, struct docker_event *ev);

/*
 * Splits the body of GET /events (JSON objects one after another, with or
 * without newlines between them) into objects as bytes arrive, in chunks of
 * any size.
 */
struct docker_stream {
    void *tok;   /* json_tokener * */
    size_t used; /* bytes of the object being read so far */
};

typedef int docker_stream_cb(void *arg, const void *obj);

int docker_stream_init(struct docker_stream *s);

/* Feeds p[0..len). For each complete object calls cb(arg, obj) (obj lives
 * for the call); a negative return from cb stops and is returned. Returns 0,
 * -DOCKER_ETOOBIG when one object passes DOCKER_EVENT_MAX bytes,
 * -DOCKER_EJSON for bytes that are not JSON, -DOCKER_ESHAPE for a value that
 * is not an object. After an error the stream must be reset (it is
 * desynchronised). */
int docker_stream_feed(struct docker_stream *s, const char *p, size_t len, docker_stream_cb *cb,
                       void *arg);

void docker_stream_reset(struct docker_stream *s);
void docker_stream_free(struct docker_stream *s);

#endif /* PPFWD_DOCKER_JSON_H */
