/*
 * json.h - a tiny streaming JSON writer for ppfwd's output and logs.
 *
 * A struct json writes either to a FILE * or to a growable memory buffer. The
 * caller emits values in document order; commas and key quoting are handled
 * here. Every json_* value function takes a key: the member name inside an
 * object, NULL inside an array or at the top level.
 *
 * Errors are sticky: the first failure (-ENOMEM, -EIO, or -EINVAL for misuse
 * such as a missing key or unbalanced containers) is kept, later calls do
 * nothing, and json_error() reports it once at the end. This keeps call sites
 * free of per-value checks.
 *
 * Strings are arbitrary bytes (TLV values and unix paths come off the wire):
 * valid UTF-8 is copied, quotes, backslashes and control characters (and DEL)
 * are escaped, and every byte that is not part of a valid UTF-8 sequence
 * becomes \ufffd (U+FFFD, the replacement character). Output is therefore
 * always valid JSON and never carries raw terminal control bytes.
 */
#ifndef PPFWD_JSON_H
#define PPFWD_JSON_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Deepest nesting of objects and arrays a writer accepts. */
#define JSON_MAX_DEPTH 32

struct json {
    FILE *fp;       /* destination stream, or NULL to write into buf */
    char *buf;      /* memory destination, NUL-terminated; owned by the writer */
    size_t len;     /* bytes in buf, NUL excluded */
    size_t cap;     /* bytes allocated for buf */
    int err;        /* first error (negative errno), 0 while all is well */
    unsigned depth; /* open containers */
    uint32_t more;  /* bit d: the container at depth d already has a member */
    uint32_t obj;   /* bit d: the container at depth d is an object */
};

/* Starts a writer on fp, which stays owned by the caller. */
void json_init_file(struct json *j, FILE *fp);

/* Starts a writer into a memory buffer; release it with json_free(). */
void json_init_buf(struct json *j);

/* Releases the memory buffer (if any). The writer may be initialised again. */
void json_free(struct json *j);

/* Forgets everything written and any error, keeping the buffer's memory, so
 * one writer can produce many documents (one log line each). */
void json_reset(struct json *j);

/* Returns 0, or the first error: -ENOMEM, -EIO (short write to the stream),
 * or -EINVAL (a key missing in an object or given in an array, nesting over
 * JSON_MAX_DEPTH, or an end without a begin). */
int json_error(const struct json *j);

/* Returns the memory buffer's contents (NUL-terminated, never NULL) and
 * stores its length in *len when len is not NULL. Valid until the next
 * json_* call on j. For a writer on a FILE, returns "". */
const char *json_buf(const struct json *j, size_t *len);

void json_object_begin(struct json *j, const char *key);
void json_object_end(struct json *j);
void json_array_begin(struct json *j, const char *key);
void json_array_end(struct json *j);

/* A NUL-terminated string, or n bytes that may hold anything, NUL included. */
void json_string(struct json *j, const char *key, const char *s);
void json_string_n(struct json *j, const char *key, const void *s, size_t n);

/* n bytes as a string of lowercase hex digits, two per byte. */
void json_hex(struct json *j, const char *key, const void *p, size_t n);

void json_int(struct json *j, const char *key, int64_t v);
void json_uint(struct json *j, const char *key, uint64_t v);
void json_bool(struct json *j, const char *key, int v);
void json_null(struct json *j, const char *key);

/* Ends a top-level value with '\n' (JSON Lines); the next value starts a new
 * document. -EINVAL if containers are still open. */
void json_newline(struct json *j);

#endif /* PPFWD_JSON_H */
