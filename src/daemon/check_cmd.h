/*
 * check_cmd.h - `ppfwd check -c FILE` and `ppfwd check ROUTE...` (check_*, in
 * check.c). Not "check.h": the unit tests build with -Isrc/daemon before
 * -Itests/common, and tests/common/check.h (cmocka helpers) must stay the one
 * that `#include "check.h"` finds there.
 */
#ifndef PPFWD_CHECK_CMD_H
#define PPFWD_CHECK_CMD_H

/* Validates a config file or route URLs: exit 0 and a summary on stdout, or
 * 1 and one message per problem on stderr (file, line, route and key). */
int check_main(int argc, char **argv);

#endif /* PPFWD_CHECK_CMD_H */
