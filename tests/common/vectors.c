/*
 * vectors.c - vector files, their listing, and the guard page (vectors.h).
 */
#include <dirent.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "proxyproto.h"
#include "vectors.h"

struct named {
    const char *name;
    long value;
};

static const struct named errors[] = {
    {"PP_EBADSIG", PP_EBADSIG},   {"PP_EBADVER", PP_EBADVER},   {"PP_EBADCMD", PP_EBADCMD},
    {"PP_EBADFAM", PP_EBADFAM},   {"PP_ETOOLONG", PP_ETOOLONG}, {"PP_EBADPROTO", PP_EBADPROTO},
    {"PP_EBADLINE", PP_EBADLINE}, {"PP_EBADCRLF", PP_EBADCRLF}, {"PP_EBADADDR", PP_EBADADDR},
    {"PP_EBADPORT", PP_EBADPORT}, {"PP_EADDRLEN", PP_EADDRLEN}, {"PP_EUNSPEC", PP_EUNSPEC},
    {"PP_EBADTLV", PP_EBADTLV},   {"PP_ETLVLEN", PP_ETLVLEN},   {"PP_EBADCRC", PP_EBADCRC},
    {"PP_ENOSPC", PP_ENOSPC},     {"PP_EINVAL", PP_EINVAL},     {"PP_ENOTFOUND", PP_ENOTFOUND},
};

static const struct named parse_flags[] = {
    {"PP_PARSE_NO_CRC", PP_PARSE_NO_CRC},
    {"PP_PARSE_V1_IPV4_IN_TCP6", PP_PARSE_V1_IPV4_IN_TCP6},
    {"PP_PARSE_NO_V1", PP_PARSE_NO_V1},
    {"PP_PARSE_NO_V2", PP_PARSE_NO_V2},
    {"PP_PARSE_REJECT_UNSPEC", PP_PARSE_REJECT_UNSPEC},
};

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

int vectors_error_value(const char *name)
{
    for (size_t i = 0; i < COUNT(errors); i++)
        if (strcmp(errors[i].name, name) == 0)
            return (int)errors[i].value;
    return -1;
}

const char *vectors_error_name(long code)
{
    if (code < 0)
        code = -code;
    for (size_t i = 0; i < COUNT(errors); i++)
        if (errors[i].value == code)
            return errors[i].name;
    return "?";
}

unsigned vectors_flag_value(const char *name)
{
    for (size_t i = 0; i < COUNT(parse_flags); i++)
        if (strcmp(parse_flags[i].name, name) == 0)
            return (unsigned)parse_flags[i].value;
    return 0;
}

static char *read_file(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (f == NULL) {
        fprintf(stderr, "%s: %s\n", path, strerror(errno));
        return NULL;
    }
    size_t cap = 4096, n = 0;
    char *buf = malloc(cap + 1);
    while (buf != NULL) {
        n += fread(buf + n, 1, cap - n, f);
        if (n < cap)
            break;
        char *bigger = realloc(buf, 2 * cap + 1);
        if (bigger == NULL) {
            free(buf);
            buf = NULL;
            break;
        }
        buf = bigger;
        cap *= 2;
    }
    if (buf != NULL && ferror(f)) {
        fprintf(stderr, "%s: read error\n", path);
        free(buf);
        buf = NULL;
    }
    fclose(f);
    if (buf == NULL)
        return NULL;
    buf[n] = '\0';
    *len = n;
    return buf;
}

static char *trim(char *s)
{
    while (*s == ' ' || *s == '\t')
        s++;
    size_t n = strlen(s);
    while (n > 0 && (s[n - 1] == ' ' || s[n - 1] == '\t' || s[n - 1] == '\r'))
        s[--n] = '\0';
    return s;
}

int vectors_hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static int parse_expect(const char *path, const char *s, long *out)
{
    if (strncmp(s, "-PP_", 4) == 0) {
        int e = vectors_error_value(s + 1);
        if (e < 0) {
            fprintf(stderr, "%s: unknown error name '%s'\n", path, s);
            return -1;
        }
        *out = -e;
        return 0;
    }
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno != 0 || end == s || *end != '\0') {
        fprintf(stderr, "%s: bad expect '%s'\n", path, s);
        return -1;
    }
    *out = v;
    return 0;
}

static int parse_flags_list(const char *path, char *s, unsigned *out)
{
    *out = 0;
    for (char *tok = strtok(s, "|"); tok != NULL; tok = strtok(NULL, "|")) {
        tok = trim(tok);
        unsigned f = vectors_flag_value(tok);
        if (f == 0 && strcmp(tok, "0") != 0) {
            fprintf(stderr, "%s: unknown flag '%s'\n", path, tok);
            return -1;
        }
        *out |= f;
    }
    return 0;
}

/* Handles one comment (the text after '#'); only "key: value" comments with
 * a known key carry metadata, the rest is prose for the reader. */
static int parse_comment(struct vector *v, char *c, int *have_expect)
{
    c = trim(c);
    if (strncmp(c, "name:", 5) == 0) {
        free(v->name);
        v->name = strdup(trim(c + 5));
        return v->name != NULL ? 0 : -1;
    }
    if (strncmp(c, "expect:", 7) == 0) {
        *have_expect = 1;
        return parse_expect(v->path, trim(c + 7), &v->expect);
    }
    if (strncmp(c, "flags:", 6) == 0)
        return parse_flags_list(v->path, trim(c + 6), &v->flags);
    if (strncmp(c, "max_len:", 8) == 0) {
        char *s = trim(c + 8), *end;
        errno = 0;
        unsigned long n = strtoul(s, &end, 10);
        if (errno != 0 || end == s || *end != '\0') {
            fprintf(stderr, "%s: bad max_len '%s'\n", v->path, s);
            return -1;
        }
        v->max_len = n;
    }
    return 0;
}

static int parse_text(struct vector *v, char *text)
{
    int have_expect = 0, hi = -1;
    unsigned long lineno = 0;
    char *line = text;

    while (line != NULL) {
        char *next = strchr(line, '\n');
        if (next != NULL)
            *next++ = '\0';
        lineno++;
        char *hash = strchr(line, '#');
        if (hash != NULL) {
            *hash = '\0';
            if (parse_comment(v, hash + 1, &have_expect) != 0)
                return -1;
        }
        for (char *p = line; *p != '\0'; p++) {
            if (*p == ' ' || *p == '\t' || *p == '\r' || *p == '\v' || *p == '\f')
                continue;
            int d = vectors_hexval((unsigned char)*p);
            if (d < 0) {
                fprintf(stderr, "%s:%lu: bad hex digit '%c'\n", v->path, lineno, *p);
                return -1;
            }
            if (hi < 0) {
                hi = d;
            } else {
                v->bytes[v->len++] = (uint8_t)(hi << 4 | d);
                hi = -1;
            }
        }
        line = next;
    }
    if (hi >= 0) {
        fprintf(stderr, "%s: odd number of hex digits\n", v->path);
        return -1;
    }
    if (!have_expect) {
        fprintf(stderr, "%s: no '# expect:' line\n", v->path);
        return -1;
    }
    return 0;
}

int vectors_load(const char *path, struct vector *v)
{
    memset(v, 0, sizeof(*v));
    size_t n;
    char *text = read_file(path, &n);
    if (text == NULL)
        return -1;
    v->path = strdup(path);
    /* Two digits per byte, so n / 2 + 1 bytes are always enough. */
    v->bytes = malloc(n / 2 + 1);
    int rc = -1;
    if (v->path != NULL && v->bytes != NULL)
        rc = parse_text(v, text);
    free(text);
    if (rc == 0 && v->name == NULL) {
        const char *slash = strrchr(path, '/');
        v->name = strdup(slash != NULL ? slash + 1 : path);
        if (v->name == NULL)
            rc = -1;
    }
    if (rc != 0)
        vectors_free(v);
    return rc;
}

void vectors_free(struct vector *v)
{
    free(v->path);
    free(v->name);
    free(v->bytes);
    memset(v, 0, sizeof(*v));
}

long vectors_unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    int hi = -1;
    for (const char *p = hex; *p != '\0'; p++) {
        if (*p == ' ' || *p == '\t' || *p == '\n')
            continue;
        int d = vectors_hexval((unsigned char)*p);
        if (d < 0)
            return -1;
        if (hi < 0) {
            hi = d;
            continue;
        }
        if (n == cap)
            return -1;
        out[n++] = (uint8_t)(hi << 4 | d);
        hi = -1;
    }
    return hi < 0 ? (long)n : -1;
}

const char *vectors_dir(void)
{
    const char *d = getenv("PP_VECTORS");
    return d != NULL && *d != '\0' ? d : "tests/vectors";
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static int has_hex_suffix(const char *s)
{
    size_t n = strlen(s);
    return n > 4 && strcmp(s + n - 4, ".hex") == 0;
}

int vectors_list(const char *sub, char ***paths)
{
    char dir[4096];
    snprintf(dir, sizeof(dir), "%s/%s", vectors_dir(), sub);
    DIR *d = opendir(dir);
    if (d == NULL) {
        fprintf(stderr, "%s: %s\n", dir, strerror(errno));
        return -1;
    }
    size_t n = 0, cap = 16;
    char **list = calloc(cap + 1, sizeof(*list));
    struct dirent *e = NULL;
    while (list != NULL && (e = readdir(d)) != NULL) {
        if (!has_hex_suffix(e->d_name))
            continue;
        if (n == cap) {
            char **bigger = realloc(list, (2 * cap + 1) * sizeof(*list));
            if (bigger == NULL)
                break;
            list = bigger;
            cap *= 2;
        }
        size_t len = strlen(dir) + 1 + strlen(e->d_name) + 1;
        list[n] = malloc(len);
        if (list[n] == NULL)
            break;
        snprintf(list[n], len, "%s/%s", dir, e->d_name);
        list[++n] = NULL;
    }
    closedir(d);
    if (list == NULL || e != NULL) {
        fprintf(stderr, "%s: out of memory\n", dir);
        vectors_list_free(list);
        return -1;
    }
    qsort(list, n, sizeof(*list), cmp_str);
    *paths = list;
    return (int)n;
}

void vectors_list_free(char **paths)
{
    if (paths == NULL)
        return;
    for (char **p = paths; *p != NULL; p++)
        free(*p);
    free(paths);
}

int guard_init(struct guard *g, size_t cap)
{
    size_t page = (size_t)sysconf(_SC_PAGESIZE);
    size_t room = (cap + page - 1) / page * page;
    if (room == 0)
        room = page;
    memset(g, 0, sizeof(*g));
    void *m = mmap(NULL, room + page, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED) {
        perror("guard_init: mmap");
        return -1;
    }
    if (mprotect((uint8_t *)m + room, page, PROT_NONE) != 0) {
        perror("guard_init: mprotect");
        munmap(m, room + page);
        return -1;
    }
    g->map = m;
    g->size = room + page;
    g->limit = g->map + room;
    g->cap = room;
    return 0;
}

uint8_t *guard_place(struct guard *g, const void *p, size_t n)
{
    if (n > g->cap)
        return NULL;
    uint8_t *dst = g->limit - n;
    if (n > 0)
        memcpy(dst, p, n);
    return dst;
}

void guard_free(struct guard *g)
{
    if (g->map != NULL)
        munmap(g->map, g->size);
    memset(g, 0, sizeof(*g));
}

struct guard guard;
size_t guard_cap;

int guard_setup(void **state)
{
    (void)state;
    return guard_init(&guard, guard_cap);
}

int guard_teardown(void **state)
{
    (void)state;
    guard_free(&guard);
    return 0;
}
