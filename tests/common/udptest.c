/*
 * udptest.c - what the UDP end-to-end tests (test_udp*.c) share: children
 * (ppfwd, `ppfwd whoami --udp`, a forked echo server) started and reaped
 * with a deadline, loopback clients, and a pump of many datagrams.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <proxyproto.h>

#include "udptest.h"

struct udpt_child udpt_kids[MAX_CHILDREN];
int udpt_nkids;
rlim_t udpt_child_nofile; /* RLIMIT_NOFILE for the next child; 0: inherited */

const char *udpt_ppfwd_path(void)
{
    const char *p = getenv("PPFWD");

    return p != NULL && p[0] != '\0' ? p : "build/asan/ppfwd";
}

long udpt_now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

void udpt_sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

socklen_t udpt_loopback(int family, uint16_t port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof(*ss));
    if (family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        return sizeof(*sin);
    }
    struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;
    sin6->sin6_family = AF_INET6;
    sin6->sin6_port = htons(port);
    sin6->sin6_addr = in6addr_loopback;
    return sizeof(*sin6);
}

/* A UDP socket bound to loopback (port 0: any); returns it and its port. */
int udpt_udp_bound(int family, uint16_t port, uint16_t *port_out)
{
    struct sockaddr_storage ss;
    socklen_t len = udpt_loopback(family, port, &ss);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd != -1);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (port_out != NULL)
        *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in sin6 */
    return fd;
}

uint16_t udpt_free_port(int family)
{
    uint16_t port;

    close(udpt_udp_bound(family, 0, &port));
    return port;
}

const char *udpt_child_log(const struct udpt_child *k)
{
    static char buf[1 << 20];
    int fd = open(k->log, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd == -1 ? -1 : read(fd, buf, sizeof(buf) - 1);

    if (fd != -1)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

size_t udpt_count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Starts argv (NULL-terminated) with stderr to a temporary file and waits
 * until its log holds `ready` times the string ready_str. */
struct udpt_child *udpt_spawn(char *const *argv, const char *ready_str, size_t ready)
{
    struct udpt_child *k = &udpt_kids[udpt_nkids++];
    int fd, null = open("/dev/null", O_RDWR | O_CLOEXEC);
    long end = udpt_now_ms() + READY_MS;

    snprintf(k->log, sizeof(k->log), "/tmp/test_udp.XXXXXX");
    fd = mkostemp(k->log, O_CLOEXEC);
    assert_true(fd != -1 && null != -1);
    k->must_exit0 = 1;
    k->pid = fork();
    assert_true(k->pid != -1);
    if (k->pid == 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        if (udpt_child_nofile != 0) {
            struct rlimit rl = {.rlim_cur = udpt_child_nofile, .rlim_max = udpt_child_nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    close(null);
    while (udpt_count(udpt_child_log(k), ready_str) < ready) {
        if (udpt_now_ms() > end || waitpid(k->pid, NULL, WNOHANG) == k->pid)
            fail_msg("%s did not start: %s", argv[0], udpt_child_log(k));
        udpt_sleep_ms(10);
    }
    return k;
}

void udpt_args_add(struct udpt_args *a, const char *s)
{
    if (s == NULL)
        return;
    snprintf(a->buf[a->n], sizeof(a->buf[0]), "%s", s);
    a->argv[a->n] = a->buf[a->n];
    a->n++;
    a->argv[a->n] = NULL;
}

struct udpt_child *udpt_whoami(int family, uint16_t port)
{
    static struct udpt_args a;
    char addr[64];

    snprintf(addr, sizeof(addr), family == AF_INET ? "127.0.0.1:%u" : "[::1]:%u", port);
    memset(&a, 0, sizeof(a));
    udpt_args_add(&a, udpt_ppfwd_path());
    udpt_args_add(&a, "whoami");
    udpt_args_add(&a, "--udp");
    udpt_args_add(&a, addr);
    return udpt_spawn(a.argv, "\"whoami_listen\"", 1);
}

/* ppfwd -w 2 with up to three route URLs (NULL ends the list). */
struct udpt_child *udpt_ppfwd(const char *r1, const char *r2, const char *r3)
{
    static struct udpt_args a;
    const char *fixed[] = {udpt_ppfwd_path(), "-w", "2", "--log-format", "json", "-l", "debug"};
    size_t n = 1 + (r2 != NULL) + (r2 != NULL && r3 != NULL);

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        udpt_args_add(&a, fixed[i]);
    udpt_args_add(&a, r1);
    udpt_args_add(&a, r2);
    udpt_args_add(&a, r2 != NULL ? r3 : NULL);
    return udpt_spawn(a.argv, "\"route_start\"", n);
}

/* An echo server: a forked copy of this test answering each datagram with
 * itself; killed by the teardown. */
uint16_t udpt_echo_start(int family)
{
    return udpt_echo_start_delay(family, 0);
}

/* The same, answering each datagram delay_ms after it came. */
uint16_t udpt_echo_start_delay(int family, long delay_ms)
{
    static uint8_t buf[65536];
    struct udpt_child *k = &udpt_kids[udpt_nkids++];
    uint16_t port;
    int fd = udpt_udp_bound(family, 0, &port);

    k->pid = fork();
    assert_true(k->pid != -1);
    if (k->pid == 0) {
        for (;;) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss, &len);
            if (n >= 0 && delay_ms > 0)
                udpt_sleep_ms(delay_ms);
            if (n >= 0)
                sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&ss, len);
        }
    }
    close(fd);
    return port;
}

int udpt_setup(void **state)
{
    (void)state;
    udpt_nkids = 0;
    udpt_child_nofile = 0;
    return 0;
}

int udpt_teardown(void **state)
{
    int bad = 0;

    (void)state;
    for (int i = udpt_nkids - 1; i >= 0; i--) {
        struct udpt_child *k = &udpt_kids[i];
        long end = udpt_now_ms() + STOP_MS;
        int status = 0;
        pid_t p = 0;

        if (k->pid <= 0) { /* reaped by its test already */
            if (k->log[0] != '\0')
                unlink(k->log);
            memset(k, 0, sizeof(*k));
            continue;
        }
        kill(k->pid, k->must_exit0 ? SIGTERM : SIGKILL);
        while (udpt_now_ms() < end && (p = waitpid(k->pid, &status, WNOHANG)) == 0)
            udpt_sleep_ms(10);
        if (p != k->pid) {
            kill(k->pid, SIGKILL);
            waitpid(k->pid, &status, 0);
            bad = 1;
        }
        if (k->must_exit0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
            fprintf(stderr, "child %d exit status %d; log:\n%s\n", (int)k->pid, status,
                    udpt_child_log(k));
            bad = 1;
        }
        if (k->log[0] != '\0')
            unlink(k->log);
        memset(k, 0, sizeof(*k));
    }
    udpt_nkids = 0;
    return bad ? -1 : 0;
}

/* ---- clients ---------------------------------------------------------- */

int udpt_client(int family)
{
    int fd = udpt_udp_bound(family, 0, NULL), big = 1 << 20;

    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return fd;
}

void udpt_send_to(int fd, int family, uint16_t port, const void *p, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = udpt_loopback(family, port, &ss);

    assert_int_equal(sendto(fd, p, len, 0, (struct sockaddr *)&ss, sl), (ssize_t)len);
}

/* One datagram into buf (NUL-terminated); its length, or -1 after ms. */
ssize_t udpt_recv_one(int fd, void *buf, size_t cap, long ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    ssize_t n;

    if (poll(&p, 1, (int)ms) != 1)
        return -1;
    n = recv(fd, buf, cap - 1, 0);
    if (n >= 0)
        ((char *)buf)[n] = '\0';
    return n;
}

void udpt_sock_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];

    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        snprintf(buf, cap, "%s:%u", ip, ntohs(sin->sin_port));
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        snprintf(buf, cap, "[%s]:%u", ip, ntohs(sin6->sin6_port));
    }
}

/* whoami never answers more bytes than it got: a datagram for it is padded
 * to this (its answer, header and addresses included, is shorter). */

/* Sends one datagram and expects a whoami answer naming this socket as the
 * client (and in proxy.src). */
void udpt_ask_whoami(int fd, int family, uint16_t port)
{
    char me[80], want[128], got[4096], pad[WHOAMI_PAD];

    udpt_sock_name(fd, me, sizeof(me));
    memset(pad, 'h', sizeof(pad));
    udpt_send_to(fd, family, port, pad, sizeof(pad));
    assert_true(udpt_recv_one(fd, got, sizeof(got), ANSWER_MS) > 0);
    snprintf(want, sizeof(want), "\"client\":\"%s\"", me);
    if (strstr(got, want) == NULL)
        fail_msg("want %s in %s", want, got);
    snprintf(want, sizeof(want), "\"src\":\"%s\"", me);
    if (strstr(got, want) == NULL)
        fail_msg("want %s in %s", want, got);
}

int udpt_fd_count(pid_t pid)
{
    char path[64];
    struct dirent *e;
    int n = 0;
    DIR *d;

    snprintf(path, sizeof(path), "/proc/%d/fd", (int)pid);
    d = opendir(path);
    assert_non_null(d);
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] != '.';
    closedir(d);
    return n;
}

int udpt_fd_count_settled(pid_t pid)
{
    long end = udpt_now_ms() + ANSWER_MS;
    int n = udpt_fd_count(pid), prev = -1;

    while (n != prev && udpt_now_ms() < end) {
        udpt_sleep_ms(50);
        prev = n;
        n = udpt_fd_count(pid);
    }
    return n;
}

char *udpt_route(const char *fmt, ...)
{
    static char buf[4][512];
    static int i;
    va_list ap;

    i = (i + 1) % 4;
    va_start(ap, fmt);
    vsnprintf(buf[i], sizeof(buf[i]), fmt, ap);
    va_end(ap);
    return buf[i];
}

/* Datagram seq of client c: "cC-SEQ", padded with NULs for whoami. */
void udpt_send_seq(int fd, int family, uint16_t port, int c, int seq, int echo)
{
    char buf[WHOAMI_PAD] = {0};

    snprintf(buf, sizeof(buf), "c%d-%d", c, seq);
    udpt_send_to(fd, family, port, buf, echo ? strlen(buf) : sizeof(buf));
}

/* CLIENTS sockets each send PER_CLIENT datagrams to port, WINDOW in flight.
 * echo: the answers must be the datagrams themselves, in order per client;
 * else (whoami) each answer must name its client. */
void udpt_pump(int family, uint16_t port, int echo)
{
    int fd[CLIENTS], sent[CLIENTS] = {0}, got[CLIENTS] = {0}, done = 0;
    char me[CLIENTS][80], buf[4096], want[128];
    struct pollfd p[CLIENTS];

    for (int c = 0; c < CLIENTS; c++) {
        fd[c] = udpt_client(family);
        udpt_sock_name(fd[c], me[c], sizeof(me[c]));
        p[c] = (struct pollfd){.fd = fd[c], .events = POLLIN};
        for (; sent[c] < WINDOW; sent[c]++)
            udpt_send_seq(fd[c], family, port, c, sent[c], echo);
    }
    while (done < CLIENTS) {
        if (poll(p, CLIENTS, ANSWER_MS) <= 0)
            fail_msg("no answer in %d ms (done %d; client 0 got %d)", ANSWER_MS, done, got[0]);
        for (int c = 0; c < CLIENTS; c++) {
            if (!(p[c].revents & POLLIN))
                continue;
            assert_true(udpt_recv_one(fd[c], buf, sizeof(buf), 0) > 0);
            if (echo)
                snprintf(want, sizeof(want), "c%d-%d", c, got[c]);
            else
                snprintf(want, sizeof(want), "\"client\":\"%s\"", me[c]);
            if (echo ? strcmp(buf, want) != 0 : strstr(buf, want) == NULL)
                fail_msg("client %d answer %d: want %s, got %.300s", c, got[c], want, buf);
            if (++got[c] == PER_CLIENT)
                done++;
            if (sent[c] < PER_CLIENT)
                udpt_send_seq(fd[c], family, port, c, sent[c]++, echo);
        }
    }
    for (int c = 0; c < CLIENTS; c++)
        close(fd[c]);
}
