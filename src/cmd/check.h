/*
 * check.h - `ppfwd check -c FILE` and `ppfwd check ROUTE...` (check.c).
 */
#ifndef PPFWD_CMD_CHECK_H
#define PPFWD_CMD_CHECK_H

/* Validates a config file or route URLs: exit 0 and a summary on stdout, or
 * 1 and one message per problem on stderr (file, line, route and key). */
int check_main(int argc, char **argv);

#endif /* PPFWD_CMD_CHECK_H */
