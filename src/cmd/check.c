/*
 * check.c - `ppfwd check -c FILE` (and, as an extension, `ppfwd check
 * ROUTE...`): load the routes exactly as running them would, resolve hosts,
 * and report every problem (check_*).
 */
#define _GNU_SOURCE /* getopt_long */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "cmd/check.h"
#include "config/cli.h"
#include "config/config.h"

#define USAGE "usage: ppfwd check -c FILE | ppfwd check ROUTE..."

int check_main(int argc, char **argv)
{
    static const struct option longopts[] = {
        {"config", required_argument, NULL, 'c'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    struct cfg cfg = {0};
    struct cfg_errors errs = {0};
    const char *path = NULL;
    int c, rc;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":c:h", longopts, NULL)) != -1) {
        if (c == 'c') {
            path = optarg;
        } else if (c == 'h') {
            printf("%s\n", USAGE);
            return CLI_EXIT_OK;
        } else {
            cli_opt_error("check", longopts, argv, c);
            fprintf(stderr, "%s\n", USAGE);
            return CLI_EXIT_FAIL;
        }
    }
    if ((path == NULL) == (optind >= argc)) {
        cli_error("check", "give either -c FILE or ROUTE...");
        fprintf(stderr, "%s\n", USAGE);
        return CLI_EXIT_FAIL;
    }
    rc = path ? cfg_load_file(&cfg, path, &errs)
              : cfg_from_urls(&cfg, argv + optind, argc - optind, &errs);
    for (size_t i = 0; i < errs.n; i++)
        fprintf(stderr, "%s\n", errs.msg[i]);
    if (rc == 0)
        printf("%s: OK, %zu route%s\n", path ? path : "routes", cfg.nroutes,
               cfg.nroutes == 1 ? "" : "s");
    cfg_errors_free(&errs);
    cfg_free(&cfg);
    return rc == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
