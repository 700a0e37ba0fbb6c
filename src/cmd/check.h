/*
 * check.h - `ppfwd check -c FILE` and `ppfwd check ROUTE...` (check.c).
 */
#ifndef PPFWD_CMD_CHECK_H
#define PPFWD_CMD_CHECK_H

/* Validates a config file or route URLs: exit 0 and a summary on stdout, or
 * 1 and one message per problem on stderr (file, line, route and key).
 * config, docker_on and docker: -c and --docker given before the word
 * check (`ppfwd -c FILE check`), which the check's own override. */
int check_main(int argc, char **argv, const char *config, int docker_on, const char *docker);

#endif /* PPFWD_CMD_CHECK_H */
