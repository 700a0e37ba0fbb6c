/* cli.c - shared command-line helpers (cli_*); see cli.h. */
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "config/cli.h"

void cli_error(const char *cmd, const char *fmt, ...)
{
    va_list ap;

    fputs("ppfwd: ", stderr);
    if (cmd != NULL)
        fprintf(stderr, "%s: ", cmd);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

/* The val of the long option arg ("--name" or "--name=value") names, exactly
 * or as a prefix as getopt_long allows, or -1. */
static int long_val(const struct option *longopts, const char *arg)
{
    size_t n = strcspn(arg + 2, "=");

    for (; longopts->name != NULL; longopts++)
        if (strncmp(longopts->name, arg + 2, n) == 0)
            return longopts->val;
    return -1;
}

/*
 * After a refused long option getopt has moved optind past it, so
 * argv[optind - 1] is what was typed. A refused short option may sit inside a
 * cluster ("-xz") that optind has not left yet, so it is named from optopt.
 * optopt is 0 for an unknown or ambiguous long option and the option's val
 * for a known one, which tells the two apart.
 */
void cli_opt_error(const char *cmd, const struct option *longopts, char *const argv[], int c)
{
    const char *arg = optind > 0 ? argv[optind - 1] : "";
    int n = (int)strcspn(arg, "=");

    if (strncmp(arg, "--", 2) != 0 || (optopt != 0 && long_val(longopts, arg) != optopt)) {
        if (c == ':')
            cli_error(cmd, "option '-%c' needs a value", optopt);
        else
            cli_error(cmd, "unknown option '-%c'", optopt);
    } else if (c == ':') {
        cli_error(cmd, "option '%s' needs a value", arg);
    } else if (optopt != 0) {
        cli_error(cmd, "option '%.*s' takes no value", n, arg);
    } else {
        cli_error(cmd, "unknown option '%.*s'", n, arg);
    }
}

int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out)
{
    unsigned long v = 0, d;
    size_t i;

    if (s[0] == '\0')
        return -1;
    for (i = 0; s[i] != '\0'; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned long)(s[i] - '0');
        if (d > max || v > (max - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    if (v < min)
        return -1;
    *out = v;
    return 0;
}
