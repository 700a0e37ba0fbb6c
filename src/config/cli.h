/*
 * cli.h - what every ppfwd subcommand shares: exit codes, the "ppfwd: cmd:"
 * message prefix, getopt error reporting and strict number parsing.
 */
#ifndef PPFWD_CLI_H
#define PPFWD_CLI_H

#include <getopt.h>

/* Exit codes of INTERFACE.md. 2 means "incomplete" for decode and "not
 * implemented yet" for the parts of the command line still to come. */
#define CLI_EXIT_OK 0
#define CLI_EXIT_FAIL 1
#define CLI_EXIT_INCOMPLETE 2
#define CLI_EXIT_NOTIMPL 2

/* Prints "ppfwd: CMD: MESSAGE\n" to stderr ("ppfwd: MESSAGE\n" when cmd is
 * NULL). */
void cli_error(const char *cmd, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/*
 * Reports the option getopt_long() just refused, naming it as the user typed
 * it: c is its return value ('?' or ':', the optstring starting with ':'),
 * longopts and argv what it was given. Call with opterr = 0 so getopt stays
 * quiet.
 */
void cli_opt_error(const char *cmd, const struct option *longopts, char *const argv[], int c);

/* Parses a decimal number (digits only, no sign or space) within [min, max]
 * into *out. Returns 0 or -1. */
int cli_parse_uint(const char *s, unsigned long min, unsigned long max, unsigned long *out);

#endif /* PPFWD_CLI_H */
