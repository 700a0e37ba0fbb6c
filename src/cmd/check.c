/*
 * check.c - `ppfwd check -c FILE` (and, as an extension, `ppfwd check
 * ROUTE...`): load the routes exactly as running them would, resolve hosts,
 * and report every problem (check_*). With --docker, also the routes the
 * containers' labels would give beside them, and the labels refused.
 */
#define _GNU_SOURCE /* getopt_long */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/check.h"
#include "config/cli.h"
#include "config/config.h"
#include "provider/docker.h"
#include "provider/docker_api.h"

#define USAGE "usage: ppfwd check [--docker[=SOCKET]] [-c FILE | ROUTE...]"

/* The file's docker: socket, checked as running would. */
static int check_socket(const char *path, const char *spec)
{
    char sock[108];

    if (docker_api_socket_path(spec, sock, sizeof(sock)) == 0)
        return 0;
    fprintf(stderr, "%s: key docker: %s: '%s'\n", path ? path : "routes",
            docker_strerror(-DOCKER_ESOCKET), spec);
    return -1;
}

int check_main(int argc, char **argv, const char *config, int docker_on, const char *docker)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"docker", optional_argument, NULL, 'd'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cfg cfg = {0};
    struct cfg_errors errs = {0};
    const char *path = config;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        } else if (c == 'd') {
            docker_on = 1;
            docker = optarg;
        } else if (c == 'h') {
            printf("%s\n", USAGE);
            return CLI_EXIT_OK;
        } else {
            cli_opt_error("check", longopts, argv, c);
            fprintf(stderr, "%s\n", USAGE);
            return CLI_EXIT_FAIL;
        }
    }
    if ((path != NULL && optind < argc) || (path == NULL && optind >= argc && !docker_on)) {
        cli_error("check", "give -c FILE, ROUTE... or --docker");
        fprintf(stderr, "%s\n", USAGE);
        return CLI_EXIT_FAIL;
    }
    cfg.log_level = cfg.log_format = -1;
    if (path != NULL || optind < argc)
        rc = path ? cfg_load_file(&cfg, path, &errs)
                  : cfg_from_urls(&cfg, argv + optind, argc - optind, &errs);
    else
        rc = 0; /* --docker alone: the containers' routes only */
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    if (rc == 0 && cfg.docker != NULL && check_socket(path, cfg.docker) != 0)
        rc = -1;
    if (rc == 0 && (path != NULL || optind < argc))
        printf("%s: OK, %zu route%s\n", path ? path : "routes", cfg.nroutes,
               cfg.nroutes == 1 ? "" : "s");
    /* The containers' routes beside those given, as running would give them. */
    if (rc == 0 && docker_on)
        rc = docker_check(docker ? docker : cfg.docker, &cfg, stdout, stderr);
    cfg_errors_free(&errs);
    cfg_free(&cfg);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
