/*
 * config.h - routes from URLs or a YAML file, validated into struct cfg
 * (cfg_*). Keys map through one table (config.c), so adding an option means
 * adding one row. The same keys are spelled with '-' in URLs and '_' in YAML.
 */
#ifndef PPFWD_CONFIG_H
#define PPFWD_CONFIG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config/tlv_policy.h"
#include "util/cidr.h"

enum route_proto { ROUTE_TCP, ROUTE_UDP };
enum accept_proxy { ACCEPT_PROXY_OFF, ACCEPT_PROXY_OPTIONAL, ACCEPT_PROXY_REQUIRED };
enum send_proxy { SEND_PROXY_OFF, SEND_PROXY_V1, SEND_PROXY_V2 };
enum balance { BALANCE_ROUNDROBIN, BALANCE_LEASTCONN, BALANCE_SOURCE };

struct upstream_cfg {
    char *name;                   /* "HOST:PORT" as written */
    struct sockaddr_storage addr; /* resolved at load time */
    socklen_t addrlen;
};

/* A route as configured. Every field set from a key is a row of the key
 * table (config/keys.c), which compares and frees it; the name is the
 * route's identity and the line is where it was written, not keys. */
struct route_cfg {
    char *name;    /* YAML route name; for a URL route, the URL itself */
    unsigned line; /* YAML: the line of its listen key (or of its name); 0 for a URL */
    char *listen;  /* "PROTO://[BIND]:PORT" as written */
    enum route_proto proto;
    int family; /* AF_INET/AF_INET6 for tcp4/tcp6/udp4/udp6, else AF_UNSPEC */
    struct sockaddr_storage
        bind; /* all addresses ([::] dual-stack, or 0.0.0.0) when BIND is empty */
    socklen_t bindlen;
    struct upstream_cfg *up;
    size_t nup;

    enum accept_proxy accept_proxy;
    struct cidr_list trusted; /* sources allowed to send a header */
    int trusted_all;          /* 1 when `trusted` was not given (every source) */
    enum send_proxy send_proxy;
    enum tlvs_mode tlvs_mode;    /* tlvs=pass|drop|keep:LIST|strip:LIST (default pass) */
    struct pp_tlv_set tlvs_list; /* the LIST of keep: or strip: */
    struct tlv_block add_tlv;    /* add-tlv=TYPE=VALUE..., wire TLVs in the order given */
    char *authority;        /* NULL: no AUTHORITY TLV added */
    int unique_id;          /* add a 16-byte random UNIQUE_ID TLV */
    int crc32c;             /* add a CRC32C TLV */
    int transparent;        /* connect/send from the real client's address */
    struct cidr_list allow; /* real clients allowed */
    int allow_all;          /* 1 when `allow` was not given */
    struct cidr_list deny;  /* real clients refused; wins over allow */
    unsigned max_conns;     /* 0: unlimited */
    enum balance balance;
    int next_upstream;           /* TCP: a failed connect goes on to the next live upstream */
    unsigned check_ms;           /* 0: no health check */
    unsigned connect_timeout_ms; /* default 5000 */
    unsigned header_timeout_ms;  /* default 5000 */
    unsigned idle_timeout_ms;    /* default 3600000 (TCP) or 300000 (UDP) */
    unsigned reply_timeout_ms;   /* UDP: a session never answered, quiet this long, closes;
                                    default 30000 (never more than idle_timeout_ms) */
};

struct cfg {
    int log_level;  /* enum log_level, or -1 when not set */
    int log_format; /* enum log_format, or -1 (auto) when not set */
    int workers;    /* 0 when not set (then the CPU count) */
    char *metrics;  /* "ADDR:PORT" or NULL */
    int watch;      /* YAML watch: true (or --watch): reload when the -c file changes */
    char *docker;   /* the Docker Engine API socket (--docker, docker:), or NULL */
    unsigned drain_ms; /* --drain-timeout, drain_timeout: 0 when not set (then 10 s) */
    unsigned cli_set; /* CFG_CLI_*: the globals the command line gave (they win over the
                       * file's, at start and at each reload) */
    struct route_cfg *routes;
    size_t nroutes;
};

#define CFG_CLI_LOG_LEVEL 0x01
#define CFG_CLI_LOG_FORMAT 0x02
#define CFG_CLI_WORKERS 0x04
#define CFG_CLI_METRICS 0x08
#define CFG_CLI_WATCH 0x10
#define CFG_CLI_DOCKER 0x20
#define CFG_CLI_DRAIN 0x40

/* Problems found while loading: one message per problem, each naming the
 * route and the key (and for a file, "FILE:LINE:"). */
struct cfg_error_at {
    char *file;   /* NULL for a URL */
    unsigned line; /* 0 for a URL */
    char *route;  /* the route's name (YAML) or URL, or NULL for a top-level key */
    char *key;    /* the key as spelled where it was given, or NULL */
    char *error;  /* the problem alone (msg[i] is all of it in one line) */
};

struct cfg_errors {
    char **msg;
    size_t n;
    struct cfg_error_at *at; /* the parts of msg[i], for a log line's fields; may be NULL */
};

/* Builds c from route URLs (PROTO://[BIND]:PORT/UPSTREAM[,UPSTREAM...][?K=V&...]).
 * Returns 0, or -1 with every problem in errs. c must be zeroed before. */
int cfg_from_urls(struct cfg *c, char *const *urls, int n, struct cfg_errors *errs);

/* What a config file may cost, checked before anything of it is used: its
 * size, how deep its collections nest (ppfwd's schema needs 4 levels), and
 * how many anchors it defines, how many nodes its aliases add (an alias counts as every node of
 * what it names, so "billion laughs" documents are refused before they are walked). Aliases may add
 * up to CFG_ALIAS_NODES_MIN nodes, or up to CFG_ALIAS_RATIO times the nodes written out, whichever
 * is more. */
#define CFG_FILE_MAX (1024 * 1024) /* bytes: 1 MiB */
#define CFG_DEPTH_MAX 32
#define CFG_ALIAS_NODES_MIN 10000
#define CFG_ALIAS_RATIO 10
/* Anchors per file: libyaml looks each alias up among every anchor, so
 * their product is bounded too (1,000 anchors and 100,000 aliases: 0.3 s). */
#define CFG_ANCHORS_MAX 1000

/* Loads the YAML file at path (libyaml). Returns 0, or -1 with every
 * problem in errs (FILE:LINE: route KEY: message). A file over one of the
 * limits above is refused with one message naming the limit. c must be
 * zeroed. */
int cfg_load_file(struct cfg *c, const char *path, struct cfg_errors *errs);

/* Parses "500ms", "5s", "5m", "1h" (and a bare number of seconds) into
 * milliseconds. Returns 0 or -EINVAL. */
int cfg_parse_duration(const char *s, unsigned *ms);

/* 1 if two routes are configured the same in every respect (a reload
 * keeps such a route running as it is), 0 otherwise. */
int cfg_route_equal(const struct route_cfg *a, const struct route_cfg *b);

/* 1 if a and b would take the same socket address (the same address and
 * port, or 0.0.0.0:P beside a dual-stack [::]:P), which SO_REUSEPORT would
 * let both bind and silently share; 0 otherwise. */
int cfg_route_overlap(const struct route_cfg *a, const struct route_cfg *b);

void cfg_free(struct cfg *c);
void cfg_errors_free(struct cfg_errors *errs);

#endif /* PPFWD_CONFIG_H */
