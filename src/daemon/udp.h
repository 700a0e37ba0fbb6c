/*
 * udp.h - UDP routes: per-client sessions, each with its own connected
 * upstream socket; PROXY v2 in every datagram (udp_*).
 */
#ifndef PPFWD_UDP_H
#define PPFWD_UDP_H

struct worker;
struct listener;

/* Opens the route's UDP socket for this worker (SO_REUSEPORT, so the
 * kernel spreads clients over the workers by their address) and starts
 * serving it. Sets ls->fd. Returns 0, or -1 after logging why. */
int udp_listen(struct worker *w, struct listener *ls);

/* Stops serving: closes the listening socket and every session of this
 * worker's route (called at stop and drain). */
void udp_stop(struct worker *w, struct listener *ls);

#endif /* PPFWD_UDP_H */
