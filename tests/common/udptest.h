/*
 * udptest.h - helpers of the UDP end-to-end tests: see udptest.c. Every
 * wait is bounded; every child is stopped with SIGTERM and reaped in
 * udpt_teardown, and ppfwd and whoami must exit 0, which also catches the
 * sanitizers' reports in the (ASan) children.
 */
#ifndef PPFWD_TESTS_UDPTEST_H
#define PPFWD_TESTS_UDPTEST_H

#include <stddef.h>
#include <stdint.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/types.h>

#define READY_MS 15000 /* an ASan binary on a busy machine starts slowly */
#define ANSWER_MS 5000 /* longest wait for one answer */
#define QUIET_MS 400   /* how long a dropped datagram is given to show up anyway */
#define STOP_MS 10000
#define MAX_CHILDREN 3
#define CLIENTS 10
#define PER_CLIENT 1000
#define WINDOW 8 /* datagrams in flight per client */
#define WHOAMI_PAD 512

struct udpt_child {
    pid_t pid;
    char log[64]; /* its stderr, a temporary file */
    int must_exit0;
};

/* An argv built from copies, since exec wants char * and literals are const. */
struct udpt_args {
    char buf[12][512];
    char *argv[13];
    int n;
};

extern struct udpt_child udpt_kids[MAX_CHILDREN];
extern int udpt_nkids;
extern rlim_t udpt_child_nofile; /* RLIMIT_NOFILE for the next child; 0: inherited */

const char *udpt_ppfwd_path(void);

long udpt_now_ms(void);

void udpt_sleep_ms(long ms);

socklen_t udpt_loopback(int family, uint16_t port, struct sockaddr_storage *ss);

/* A UDP socket bound to loopback (port 0: any); returns it and its port. */
int udpt_udp_bound(int family, uint16_t port, uint16_t *port_out);

uint16_t udpt_free_port(int family);

const char *udpt_child_log(const struct udpt_child *k);

size_t udpt_count(const char *hay, const char *needle);

/* Starts argv (NULL-terminated) with stderr to a temporary file and waits
 * until its log holds `ready` times the string ready_str. */
struct udpt_child *udpt_spawn(char *const *argv, const char *ready_str, size_t ready);

void udpt_args_add(struct udpt_args *a, const char *s);

struct udpt_child *udpt_whoami(int family, uint16_t port);

/* ppfwd -w 2 with up to three route URLs (NULL ends the list). */
struct udpt_child *udpt_ppfwd(const char *r1, const char *r2, const char *r3);

/* An echo server: a forked copy of this test answering each datagram with
 * itself; killed by the teardown. */
uint16_t udpt_echo_start(int family);

/* The same, answering each datagram delay_ms after it came. */
uint16_t udpt_echo_start_delay(int family, long delay_ms);

int udpt_setup(void **state);

int udpt_teardown(void **state);

int udpt_client(int family);

void udpt_send_to(int fd, int family, uint16_t port, const void *p, size_t len);

/* One datagram into buf (NUL-terminated); its length, or -1 after ms. */
ssize_t udpt_recv_one(int fd, void *buf, size_t cap, long ms);

void udpt_sock_name(int fd, char *buf, size_t cap);

/* Sends one datagram and expects a whoami answer naming this socket as the
 * client (and in proxy.src). */
void udpt_ask_whoami(int fd, int family, uint16_t port);

int udpt_fd_count(pid_t pid);

/* udpt_fd_count once two counts 50 ms apart agree (at most ANSWER_MS):
 * a worker that is starting opens and closes descriptors of its own (the
 * ring's probe socket), which a count taken at that moment would include. */
int udpt_fd_count_settled(pid_t pid);

char *udpt_route(const char *fmt, ...);

/* Datagram seq of client c: "cC-SEQ", padded with NULs for whoami. */
void udpt_send_seq(int fd, int family, uint16_t port, int c, int seq, int echo);

/* CLIENTS sockets each send PER_CLIENT datagrams to port, WINDOW in flight.
 * echo: the answers must be the datagrams themselves, in order per client;
 * else (whoami) each answer must name its client. */
void udpt_pump(int family, uint16_t port, int echo);

#endif /* PPFWD_TESTS_UDPTEST_H */
