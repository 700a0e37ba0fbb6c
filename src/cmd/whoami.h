/* whoami.h - the `ppfwd whoami` test server. */
#ifndef PPFWD_WHOAMI_H
#define PPFWD_WHOAMI_H

/*
 * Runs `ppfwd whoami [--udp] [--accept-proxy=optional|required|off] ADDR:PORT`
 * with argv[0] == "whoami". Listens on ADDR:PORT (IPv6 in brackets; port 0
 * picks one, reported in the whoami_listen log line) and answers each TCP
 * connection, or each datagram with --udp, with one JSON line
 *   {"peer":..., "local":..., "client":..., "proxy":{...} or null}
 * after reading the PROXY header the mode asks for (see docs/ppfwd.1 and
 * docs/log-events.md). Logs go to stderr. Runs until SIGINT or SIGTERM.
 * log_level and log_format: ppfwd's -l and --log-format given before
 * `whoami` (enum log_level, enum log_format), or -1 for the defaults (info;
 * text on a terminal, else JSON).
 * Returns the exit status: 0 after a signal, 1 on a usage error or when it
 * cannot listen.
 */
int whoami_main(int argc, char **argv, int log_level, int log_format);

#endif /* PPFWD_WHOAMI_H */
