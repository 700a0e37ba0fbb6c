/*
 * udp.h - UDP routes: per-client sessions, each with its own connected
 * upstream socket; PROXY v2 in every datagram (udp_*). What the rest of the
 * engine sees; the UDP files share udp_lsn.h among themselves.
 */
#ifndef PPFWD_UDP_H
#define PPFWD_UDP_H

struct worker;
struct listener;
struct route_cfg;

/*
 * Opens and binds the route's n sockets, one per worker, all at once, so
 * the SO_REUSEPORT group is whole before any datagram is taken: a client's
 * datagrams all go to the same worker (the kernel picks by a hash of the
 * addresses over the sockets of the group; a socket joining later moves
 * clients). What arrives while the group forms is dropped. Fills fds[n];
 * returns 0, or -1 after logging (nothing left open).
 */
int udp_open_group(const struct route_cfg *rc, int n, int *fds);

/*
 * Sets the cap on UDP sessions from the descriptor limit (RLIMIT_NOFILE,
 * after raising it): half of it, since a session holds one socket, shared
 * evenly by the nworkers workers (the kernel spreads clients evenly over
 * them); the other half stays for TCP connections (two sockets each, and
 * their pipes), listeners and the rest, however many UDP clients come. At
 * its share a worker gives a new client the place of its oldest session
 * that never had a reply, of any route (udp_session.c). Main thread, before
 * the workers start; without it there is no cap.
 */
void udp_limits(int max_fds, int nworkers);

/* A worker's share of the cap udp_limits set (0: none). */
unsigned udp_session_cap(void);

/* Starts serving this worker's socket of the route's group (opened by
 * udp_open_group). Sets ls->fd. Returns 0, or -1 after logging why. */
int udp_listen(struct worker *w, struct listener *ls);

/* Stops serving: closes the listening socket and every session of this
 * worker's route (called at stop and drain). */
void udp_stop(struct worker *w, struct listener *ls);

/*
 * At a drain (SIGTERM/SIGINT): stops taking datagrams from clients but lets
 * the sessions finish: replies still go back, and a session closes once it
 * has been quiet for a second (or its idle-timeout, if shorter). Returns 1
 * when it keeps ls for that (in w->udp_drain until its last session is
 * gone, then it frees ls), 0 when there was nothing to wait for (the caller
 * closes ls as usual).
 */
int udp_drain(struct worker *w, struct listener *ls);

/* The drain timeout: closes what the draining listeners still hold. */
void udp_drain_end(struct worker *w);

#endif /* PPFWD_UDP_H */
