/*
 * internal.h - what the files of the config layer share, and nothing else
 * includes (tests apart): where a problem is, the key table and its row type.
 *
 * The layer, one file per step:
 *   config.c    problems, a new route, freeing
 *   keys.c      the key table, value parsing, key_set, route equality
 *   url.c       route URLs, the listen address and upstreams (resolving)
 *   yaml.c      the YAML file, within its limits (size, nesting, aliases)
 *   validate.c  what only makes sense together, and overlapping addresses
 */
#ifndef PPFWD_CONFIG_INTERNAL_H
#define PPFWD_CONFIG_INTERNAL_H

#include <stddef.h>

#include "config/config.h"

/* Where a problem is: "route 'URL'" or "FILE:LINE: route NAME". */
struct place {
    struct cfg_errors *errs;
    const char *file; /* NULL for a URL */
    const char *route;
    unsigned line;
    /* The line of each route key given (index in cfg_keys[]; 1 in a URL),
     * or 0: a key given twice is refused, a key that means nothing on UDP is
     * refused only when given, and a problem found once the whole route is
     * read is reported at the line of the key that causes it. */
    unsigned *key_lines;
    int routes_seen; /* YAML: the top-level "routes" key was there */
    const char *key; /* for a setter: the key as spelled where it was given */
};

/* Adds one message "PLACE: key KEY: MSG" (or "PLACE: MSG" without a key). */
void cfg_problem(const struct place *at, const char *key, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* ---- the key table (keys.c) ---------------------------------------------- */

struct key;

/* Sets the key's value in r from its text v. Returns NULL, or what is wrong
 * with v (key_set reports it, naming v). A setter that can find several
 * problems in one value (a list of upstreams) reports each through at and
 * returns NULL. */
typedef const char *key_setter(struct route_cfg *r, const struct key *k, const char *v,
                               const struct place *at);

/* 1 if a and b hold the same value for key k. */
typedef int key_equal(const struct route_cfg *a, const struct route_cfg *b, const struct key *k);

/* Frees what the key's value owns in r (NULL: nothing to free). */
typedef void key_clear(struct route_cfg *r, const struct key *k);

/* One row per route key: how its text is parsed, where its value is
 * stored, and how two values are compared and freed. Everything a route
 * is configured with is a row: cfg_route_equal, cfg_free and the unit test
 * of equality walk this table, so a new key is one row and nothing else. */
struct key {
    const char *name; /* URL spelling; YAML uses '_' for '-' */
    key_setter *set;
    key_equal *equal;
    key_clear *clear;
    size_t off;               /* offsetof(struct route_cfg, field) */
    size_t all_off;           /* CIDR lists: the "every address" flag set without the key */
    const char *const *words; /* enum values, in enum order */
    int tcp_only;             /* refused on udp:// routes: it would do nothing there */
    int repeatable;           /* given again, it adds (add-tlv); a YAML list gives each item */
};

/* The table (CFG_NKEYS rows; keys.c asserts the count, so that arrays
 * indexed by key, such as place.key_lines, can be sized at compile time). */
#define CFG_NKEYS 21
extern const struct key *const cfg_keys;

/* Finds a key by its URL or YAML spelling; NULL if there is none. */
const struct key *cfg_key_find(const char *name);

/* Sets key name (either spelling) of r to v, or reports why not: unknown,
 * given twice (with at->key_lines), a bad value. */
void cfg_key_set(struct route_cfg *r, const struct place *at, const char *name, const char *v);

/* Parses a boolean: on, true, yes, 1 or off, false, no, 0, in any case
 * (YAML's True, ON, ...). Returns 1, 0, or -EINVAL. */
int cfg_parse_bool(const char *s);

/* Parses a decimal number 0..max, the whole string. Returns 0 or -EINVAL. */
int cfg_parse_uint(const char *s, unsigned long max, unsigned *out);

/* ---- setters of the listen address and upstreams (url.c) ---------------- */

key_setter cfg_set_listen;    /* "PROTO://[BIND]:PORT" */
key_setter cfg_set_upstreams; /* "HOST:PORT[,HOST:PORT...]" */

/* ---- a route (config.c, validate.c) -------------------------------------- */

/* Appends a route with its defaults to c. Returns it, or NULL (no memory). */
struct route_cfg *cfg_route_new(struct cfg *c);

/* What only makes sense together, once the route is read (a missing
 * upstream, TLVs without v2, keys that mean nothing on UDP); also fills in
 * the defaults that depend on the protocol. */
void cfg_route_check(struct route_cfg *r, const struct place *at);

/* Reports each route whose address another route before it already has,
 * once, naming the first such route. at gives the file (or NULL for URLs);
 * each route's own place is its name and line. O(n log n). */
void cfg_check_overlaps(const struct cfg *c, const struct place *at);

#endif /* PPFWD_CONFIG_INTERNAL_H */
