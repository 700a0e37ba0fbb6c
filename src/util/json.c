/* json.c - streaming JSON writer (json_*); see json.h for the contract. */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util/json.h"

static const char hexdigits[] = "0123456789abcdef";

void json_init_file(struct json *j, FILE *fp)
{
    memset(j, 0, sizeof(*j));
    j->fp = fp;
}

void json_init_buf(struct json *j)
{
    memset(j, 0, sizeof(*j));
}

void json_free(struct json *j)
{
    free(j->buf);
    memset(j, 0, sizeof(*j));
}

void json_reset(struct json *j)
{
    j->len = 0;
    if (j->buf != NULL)
        j->buf[0] = '\0';
    j->err = 0;
    j->depth = 0;
    j->more = 0;
    j->obj = 0;
}

int json_error(const struct json *j)
{
    return j->err;
}

const char *json_buf(const struct json *j, size_t *len)
{
    if (len != NULL)
        *len = j->buf != NULL ? j->len : 0;
    return j->buf != NULL ? j->buf : "";
}

/* Makes room for n more bytes plus the NUL; doubling keeps appends O(1). */
static int grow(struct json *j, size_t n)
{
    size_t cap = j->cap != 0 ? j->cap : 256;
    char *p;

    if (n > SIZE_MAX / 2 - j->len)
        return -ENOMEM;
    while (cap < j->len + n + 1)
        cap *= 2;
    if (cap == j->cap)
        return 0;
    p = realloc(j->buf, cap);
    if (p == NULL)
        return -ENOMEM;
    j->buf = p;
    j->cap = cap;
    return 0;
}

static void put(struct json *j, const void *p, size_t n)
{
    int rc;

    if (j->err != 0 || n == 0)
        return;
    if (j->fp != NULL) {
        if (fwrite(p, 1, n, j->fp) != n)
            j->err = -EIO;
        return;
    }
    rc = grow(j, n);
    if (rc != 0) {
        j->err = rc;
        return;
    }
    memcpy(j->buf + j->len, p, n);
    j->len += n;
    j->buf[j->len] = '\0';
}

static void put_str(struct json *j, const char *s)
{
    put(j, s, strlen(s));
}

/*
 * Length of the valid UTF-8 sequence at p[0..n), or 0 if there is none.
 * Follows RFC 3629: overlong forms, surrogates (ED A0..BF) and code points
 * past U+10FFFF are invalid, which the lead byte and the bounds on the
 * second byte decide.
 */
static size_t utf8_seq(const uint8_t *p, size_t n)
{
    uint8_t c = p[0], lo = 0x80, hi = 0xbf;
    size_t need, i;

    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf)
        need = 2;
    else if (c >= 0xe0 && c <= 0xef)
        need = 3;
    else if (c >= 0xf0 && c <= 0xf4)
        need = 4;
    else
        return 0;
    if (c == 0xe0)
        lo = 0xa0;
    else if (c == 0xed)
        hi = 0x9f;
    else if (c == 0xf0)
        lo = 0x90;
    else if (c == 0xf4)
        hi = 0x8f;
    if (n < need || p[1] < lo || p[1] > hi)
        return 0;
    for (i = 2; i < need; i++)
        if (p[i] < 0x80 || p[i] > 0xbf)
            return 0;
    return need;
}

/* The escape for byte c, or NULL if c may appear as itself in a string. */
static const char *escape(uint8_t c, char tmp[7])
{
    switch (c) {
    case '"':
        return "\\\"";
    case '\\':
        return "\\\\";
    case '\b':
        return "\\b";
    case '\f':
        return "\\f";
    case '\n':
        return "\\n";
    case '\r':
        return "\\r";
    case '\t':
        return "\\t";
    default:
        break;
    }
    /* DEL is legal JSON, but escaping it keeps terminals safe from log lines. */
    if (c >= 0x20 && c != 0x7f)
        return NULL;
    memcpy(tmp, "\\u00", 4);
    tmp[4] = hexdigits[c >> 4];
    tmp[5] = hexdigits[c & 0xf];
    tmp[6] = '\0';
    return tmp;
}

/* Writes s[0..n) as a quoted string, copying runs of plain bytes at once. */
static void put_quoted(struct json *j, const uint8_t *s, size_t n)
{
    size_t i = 0, run = 0, k;
    const char *esc;
    char tmp[7];

    put(j, "\"", 1);
    while (i < n) {
        k = utf8_seq(s + i, n - i);
        esc = k == 1 ? escape(s[i], tmp) : NULL;
        if (k != 0 && esc == NULL) {
            i += k;
            continue;
        }
        put(j, s + run, i - run);
        put_str(j, k == 0 ? "\\ufffd" : esc);
        i++;
        run = i;
    }
    put(j, s + run, n - run);
    put(j, "\"", 1);
}

/* Writes the separator and "key": before a value, checking the key against
 * the kind of container it goes into. */
static int begin_value(struct json *j, const char *key)
{
    uint32_t bit;
    int in_obj;

    if (j->err != 0)
        return -1;
    if (j->depth == 0) {
        if (key != NULL)
            j->err = -EINVAL;
        return j->err;
    }
    bit = UINT32_C(1) << (j->depth - 1);
    in_obj = (j->obj & bit) != 0;
    if (in_obj != (key != NULL)) {
        j->err = -EINVAL;
        return j->err;
    }
    if (j->more & bit)
        put(j, ",", 1);
    j->more |= bit;
    if (key != NULL) {
        put_quoted(j, (const uint8_t *)key, strlen(key));
        put(j, ":", 1);
    }
    return j->err;
}

static void open_container(struct json *j, const char *key, int is_obj)
{
    uint32_t bit;

    if (begin_value(j, key) != 0)
        return;
    if (j->depth >= JSON_MAX_DEPTH) {
        j->err = -EINVAL;
        return;
    }
    bit = UINT32_C(1) << j->depth;
    j->more &= ~bit;
    if (is_obj)
        j->obj |= bit;
    else
        j->obj &= ~bit;
    j->depth++;
    put(j, is_obj ? "{" : "[", 1);
}

static void close_container(struct json *j, int is_obj)
{
    uint32_t bit;

    if (j->err != 0)
        return;
    if (j->depth == 0) {
        j->err = -EINVAL;
        return;
    }
    bit = UINT32_C(1) << (j->depth - 1);
    if (((j->obj & bit) != 0) != is_obj) {
        j->err = -EINVAL;
        return;
    }
    j->depth--;
    put(j, is_obj ? "}" : "]", 1);
}

void json_object_begin(struct json *j, const char *key)
{
    open_container(j, key, 1);
}

void json_object_end(struct json *j)
{
    close_container(j, 1);
}

void json_array_begin(struct json *j, const char *key)
{
    open_container(j, key, 0);
}

void json_array_end(struct json *j)
{
    close_container(j, 0);
}

void json_string(struct json *j, const char *key, const char *s)
{
    json_string_n(j, key, s, strlen(s));
}

void json_string_n(struct json *j, const char *key, const void *s, size_t n)
{
    if (begin_value(j, key) == 0)
        put_quoted(j, s, n);
}

void json_hex(struct json *j, const char *key, const void *p, size_t n)
{
    const uint8_t *b = p;
    char chunk[128];
    size_t i, k = 0;

    if (begin_value(j, key) != 0)
        return;
    put(j, "\"", 1);
    for (i = 0; i < n; i++) {
        chunk[k++] = hexdigits[b[i] >> 4];
        chunk[k++] = hexdigits[b[i] & 0xf];
        if (k == sizeof(chunk)) {
            put(j, chunk, k);
            k = 0;
        }
    }
    put(j, chunk, k);
    put(j, "\"", 1);
}

void json_int(struct json *j, const char *key, int64_t v)
{
    char num[24];

    if (begin_value(j, key) == 0)
        put(j, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, v));
}

void json_uint(struct json *j, const char *key, uint64_t v)
{
    char num[24];

    if (begin_value(j, key) == 0)
        put(j, num, (size_t)snprintf(num, sizeof(num), "%" PRIu64, v));
}

void json_bool(struct json *j, const char *key, int v)
{
    if (begin_value(j, key) == 0)
        put_str(j, v ? "true" : "false");
}

void json_null(struct json *j, const char *key)
{
    if (begin_value(j, key) == 0)
        put_str(j, "null");
}

void json_newline(struct json *j)
{
    if (j->err != 0)
        return;
    if (j->depth != 0) {
        j->err = -EINVAL;
        return;
    }
    put(j, "\n", 1);
}
