/*
 * main.c - ppfwd's entry point: global options, then dispatch to a subcommand
 * (decode, encode, check, whoami) or to running routes (main_*).
 */
#define _GNU_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include <proxyproto.h>

#include "provider/docker_api.h"
#include "util/addr.h"
#include "cmd/check.h"
#include "config/cli.h"
#include "config/config.h"
#include "cmd/decode.h"
#include "cmd/encode.h"
#include "util/log.h"
#include "engine/relay.h"
#include "engine/server.h"
#include "cmd/whoami.h"

#define USAGE_HINT "usage: ppfwd [OPTIONS] ROUTE... | -c FILE | SUBCOMMAND ...; see ppfwd --help"

/* Global options, kept for the daemon; the subcommands of today ignore them. */
struct main_opts {
    const char *config;
    const char *log_level;
    const char *log_format;
    unsigned long workers;
    struct sockaddr_storage metrics;
    int watch;
    int docker_on;      /* --docker given */
    const char *docker; /* its SOCKET, or NULL: the file's, else the default */
    unsigned drain_ms;  /* --drain-timeout, or 0 */
};

enum { OPT_LOG_FORMAT = 256, OPT_METRICS, OPT_RELAY, OPT_WATCH, OPT_DOCKER, OPT_DRAIN };

/* One option per line reads as a table. */
/* clang-format off */
static const struct option longopts[] = {
    {"config", required_argument, NULL, 'c'},
    {"log-level", required_argument, NULL, 'l'},
    {"log-format", required_argument, NULL, OPT_LOG_FORMAT},
    {"workers", required_argument, NULL, 'w'},
    {"metrics", required_argument, NULL, OPT_METRICS},
    {"relay", required_argument, NULL, OPT_RELAY},
    {"watch", no_argument, NULL, OPT_WATCH},
    {"docker", optional_argument, NULL, OPT_DOCKER},
    {"drain-timeout", required_argument, NULL, OPT_DRAIN},
    {"help", no_argument, NULL, 'h'},
    {"version", no_argument, NULL, 'V'},
    {NULL, 0, NULL, 0},
};
/* clang-format on */

static void main_help(void)
{
    fputs("usage:\n"
          "  ppfwd [OPTIONS] ROUTE...        run the routes given as URLs\n"
          "  ppfwd [OPTIONS] -c FILE         run the routes of a YAML config\n"
          "  ppfwd check -c FILE             validate a config file\n"
          "  ppfwd check --docker[=SOCKET]   the routes the containers' labels give\n"
          "  ppfwd whoami [--udp] [--accept-proxy=optional|required|off] ADDR:PORT\n"
          "                                  test server answering in JSON\n"
          "  ppfwd decode [FILE]             parse the PROXY header at the start of FILE\n"
          "                                  (default stdin) and print it as JSON;\n"
          "                                  exit 0 valid, 1 invalid, 2 incomplete\n"
          "  ppfwd encode --src IP:PORT --dst IP:PORT [--v1|--v2] [--udp] [--local]\n"
          "               [--tlv TYPE=VALUE]... [--crc32c]\n"
          "                                  write a PROXY header to stdout (default v2)\n"
          "  ppfwd --version | --help\n"
          "\n"
          "OPTIONS (for running routes):\n"
          "  -l, --log-level debug|info|warn|error   (default info)\n"
          "      --log-format text|json              (default text on a terminal, else json)\n"
          "  -w, --workers N                         (default: number of CPUs)\n"
          "      --metrics ADDR:PORT                 Prometheus text at /metrics\n"
          "      --relay splice|copy                 zero-copy splice(2) (default) or buffers\n"
          "      --watch                             with -c: reload when the file changes\n"
          "      --docker[=SOCKET]                   routes also from container labels\n"
          "                                          ppfwd.route.NAME=ROUTE (default SOCKET\n"
          "                                          unix:///var/run/docker.sock)\n"
          "      --drain-timeout DURATION            at SIGTERM/SIGINT, how long open\n"
          "                                          connections may finish (default 10s)\n"
          "\n"
          "ROUTE: PROTO://[BIND]:PORT/UPSTREAM[,UPSTREAM...][?KEY=VALUE&...]\n"
          "  e.g. 'tcp://:2222/127.0.0.1:22?send-proxy=v2'\n"
          "\n"
          "`ppfwd decode --help` and `ppfwd encode --help` describe those subcommands;\n"
          "man ppfwd describes everything.\n",
          stdout);
}

static int main_one_of(const char *opt, const char *val, const char *const *allowed)
{
    for (; *allowed != NULL; allowed++)
        if (strcmp(val, *allowed) == 0)
            return 0;
    cli_error(NULL, "%s: bad value '%s'", opt, val);
    return -1;
}

static int main_docker_socket(const char *what, const char *spec)
{
    char path[108];

    if (docker_api_socket_path(spec, path, sizeof(path)) == 0)
        return 0;
    cli_error(NULL, "%s '%s': %s", what, spec, docker_strerror(-DOCKER_ESOCKET));
    return -1;
}

static int main_option(struct main_opts *o, int c)
{
    static const char *const levels[] = {"debug", "info", "warn", "error", NULL};
    static const char *const formats[] = {"text", "json", NULL};
    static const char *const relays[] = {"splice", "copy", NULL};
    int rc;

    switch (c) {
    case 'c':
        o->config = optarg;
        return 0;
    case 'l':
        o->log_level = optarg;
        return main_one_of("--log-level", optarg, levels);
    case OPT_LOG_FORMAT:
        o->log_format = optarg;
        return main_one_of("--log-format", optarg, formats);
    case 'w':
        if (cli_parse_uint(optarg, 1, 4096, &o->workers) == 0)
            return 0;
        cli_error(NULL, "--workers: expected a number from 1 to 4096, got '%s'", optarg);
        return -1;
    case OPT_RELAY:
        relay_splice = strcmp(optarg, "splice") == 0;
        return main_one_of("--relay", optarg, relays);
    case OPT_WATCH:
        o->watch = 1;
        return 0;
    case OPT_DOCKER:
        o->docker_on = 1;
        o->docker = optarg;
        return optarg ? main_docker_socket("--docker", optarg) : 0;
    case OPT_DRAIN:
        if (cfg_parse_duration(optarg, &o->drain_ms) == 0 && o->drain_ms > 0)
            return 0;
        cli_error(NULL, "--drain-timeout: expected a duration (500ms, 10s, 5m, 1h), got '%s'",
                  optarg);
        return -1;
    case OPT_METRICS:
        rc = addr_parse(optarg, ADDR_PARSE_ANY, &o->metrics);
        if (rc != 0)
            cli_error(NULL, "--metrics '%s': %s", optarg, addr_strerror(rc));
        return rc;
    default:
        return -1;
    }
}

/* Parses the global options, stopping at the first operand. Returns 0, 1
 * after --help or --version, or -1 (reported). */
static int main_args(int argc, char **argv, struct main_opts *o)
{
    int c;

    opterr = 0;
    /* '+': options after the first operand belong to the subcommand. */
    while ((c = getopt_long(argc, argv, "+:c:l:w:hV", longopts, NULL)) != -1) {
        if (c == 'h') {
            main_help();
            return 1;
        }
        if (c == 'V') {
            printf("ppfwd %s (libproxyproto %s)\n", PP_VERSION_STRING, PP_VERSION_STRING);
            return 1;
        }
        if (c == '?' || c == ':') {
            cli_opt_error(NULL, longopts, argv, c);
            fprintf(stderr, "%s\n", USAGE_HINT);
            return -1;
        }
        if (main_option(o, c) != 0)
            return -1;
    }
    return 0;
}

/* The metrics address: --metrics, else the file's (checked when loaded). */
static const struct sockaddr_storage *main_metrics(const struct main_opts *o, const struct cfg *cfg,
                                                   struct sockaddr_storage *buf)
{
    if (o->metrics.ss_family != AF_UNSPEC)
        return &o->metrics;
    if (cfg->metrics != NULL && addr_parse(cfg->metrics, ADDR_PARSE_ANY, buf) == 0)
        return buf;
    return NULL;
}

/* The problems of a config refused at start: with --log-format json, one
 * config_error event per problem (one JSON object per line, as every line
 * is then: INTERFACE.md, Logs), else one plain line each. */
static void main_config_errors(const struct main_opts *o, const struct cfg_errors *errs)
{
    if (o->log_format == NULL || strcmp(o->log_format, "json") != 0 || errs->at == NULL) {
        for (size_t i = 0; i < errs->n; i++)
            cli_error(NULL, "%s", errs->msg[i]);
        return;
    }
    log_init(LOG_INFO, LOG_FORMAT_JSON);
    for (size_t i = 0; i < errs->n; i++) {
        const struct cfg_error_at *a = &errs->at[i];

        const char *err = a->error ? a->error : errs->msg[i];

        if (a->file != NULL)
            log_event(LOG_ERROR, "config_error", a->route, "key", LOG_STR, a->key, "error",
                      LOG_STR, err, "file", LOG_STR, a->file, "line", LOG_UINT,
                      (uint64_t)a->line, LOG_END);
        else
            log_event(LOG_ERROR, "config_error", a->route, "key", LOG_STR, a->key, "error",
                      LOG_STR, err, LOG_END);
    }
}

/* Loads the routes (URLs or -c FILE), applies the global options over the
 * file's, and runs them until SIGTERM/SIGINT. */
static int main_run(const struct main_opts *o, int nurls, char **urls)
{
    struct cfg cfg;
    struct cfg_errors errs = {0};
    struct sockaddr_storage metrics;
    int rc;

    memset(&cfg, 0, sizeof(cfg));
    if (o->config != NULL && nurls > 0) {
        cli_error(NULL, "give either ROUTE... or -c FILE, not both");
        return CLI_EXIT_FAIL;
    }
    if (o->watch && o->config == NULL) {
        cli_error(NULL, "--watch: needs -c FILE (routes given as URLs have no file to watch)");
        return CLI_EXIT_FAIL;
    }
    /* With --docker alone, every route comes from the containers. */
    cfg.log_level = cfg.log_format = -1;
    if (o->config != NULL)
        rc = cfg_load_file(&cfg, o->config, &errs);
    else
        rc = nurls == 0 && o->docker_on ? 0 : cfg_from_urls(&cfg, urls, nurls, &errs);
    if (rc == 0 && o->docker_on && (o->docker != NULL || cfg.docker == NULL)) {
        free(cfg.docker);
        if ((cfg.docker = strdup(o->docker ? o->docker : DOCKER_SOCKET_DEFAULT)) == NULL)
            rc = -1;
    }
    if (rc == 0 && cfg.docker != NULL && main_docker_socket("docker", cfg.docker) != 0)
        rc = -1;
    if (rc != 0) {
        main_config_errors(o, &errs);
        cfg_errors_free(&errs);
        cfg_free(&cfg);
        return CLI_EXIT_FAIL;
    }
    if (o->log_level) {
        cfg.log_level = log_level_parse(o->log_level);
        cfg.cli_set |= CFG_CLI_LOG_LEVEL;
    }
    if (o->log_format) {
        cfg.log_format = strcmp(o->log_format, "json") == 0 ? LOG_FORMAT_JSON : LOG_FORMAT_TEXT;
        cfg.cli_set |= CFG_CLI_LOG_FORMAT;
    }
    if (o->workers) {
        cfg.workers = (int)o->workers;
        cfg.cli_set |= CFG_CLI_WORKERS;
    }
    if (o->metrics.ss_family != AF_UNSPEC)
        cfg.cli_set |= CFG_CLI_METRICS;
    if (o->watch)
        cfg.cli_set |= CFG_CLI_WATCH;
    if (o->docker_on)
        cfg.cli_set |= CFG_CLI_DOCKER;
    if (o->drain_ms) {
        cfg.drain_ms = o->drain_ms;
        cfg.cli_set |= CFG_CLI_DRAIN;
    }
    cfg.watch |= o->watch;
    log_init(cfg.log_level >= 0 ? cfg.log_level : LOG_INFO,
             cfg.log_format >= 0 ? cfg.log_format : LOG_FORMAT_AUTO);
    rc = server_run(&cfg, o->config, main_metrics(o, &cfg, &metrics));
    cfg_free(&cfg);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

/* Runs what the command line asks for and returns its exit status. */
static int main_dispatch(int argc, char **argv)
{
    struct main_opts o;
    const char *cmd;
    int rc;

    memset(&o, 0, sizeof(o));
    rc = main_args(argc, argv, &o);
    if (rc != 0)
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    cmd = optind < argc ? argv[optind] : NULL;
    if (cmd != NULL && strcmp(cmd, "decode") == 0)
        return decode_main(argc - optind, argv + optind);
    if (cmd != NULL && strcmp(cmd, "encode") == 0)
        return encode_main(argc - optind, argv + optind);
    if (cmd != NULL && strcmp(cmd, "whoami") == 0)
        return whoami_main(argc - optind, argv + optind,
                           o.log_level ? log_level_parse(o.log_level) : -1,
                           !o.log_format                      ? -1
                           : strcmp(o.log_format, "json") == 0 ? LOG_FORMAT_JSON
                                                               : LOG_FORMAT_TEXT);
    if (cmd != NULL && strcmp(cmd, "check") == 0)
        return check_main(argc - optind, argv + optind, o.config, o.docker_on, o.docker);
    if (cmd != NULL || o.config != NULL || o.docker_on)
        return main_run(&o, argc - optind, argv + optind);
    cli_error(NULL, "nothing to do: give ROUTE..., -c FILE or a subcommand");
    fprintf(stderr, "%s\n", USAGE_HINT);
    return CLI_EXIT_FAIL;
}

/*
 * What went to stdout (--version, --help, `check`'s verdict) must have
 * reached it: a full disk or a bad descriptor is a failure, not a silent
 * exit 0 (GNU's close_stdout). Nothing written means nothing to check, so a
 * daemon started with stdout closed is not affected. A command that failed
 * already said why (decode and encode report their own write errors).
 */
int main(int argc, char **argv)
{
    int rc = main_dispatch(argc, argv);

    errno = 0;
    if ((fflush(stdout) != 0 || ferror(stdout)) && rc == CLI_EXIT_OK) {
        cli_error(NULL, "cannot write to stdout: %s", errno != 0 ? strerror(errno) : "I/O error");
        return CLI_EXIT_FAIL;
    }
    return rc;
}
