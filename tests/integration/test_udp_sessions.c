/*
 * test_udp_sessions.c - the life of ppfwd's UDP sessions end to end on
 * loopback: idle timeout, an upstream that refuses, draining at SIGTERM,
 * start-up, max-conns and running out of descriptors. (The traffic itself:
 * test_udp.c; the shared helpers: tests/common/udptest.c.)
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

/* Sessions to an upstream that never answers close at idle-timeout, and
 * their descriptors with them. */
static void test_idle(void **state)
{
    uint16_t up, lp = udpt_free_port(AF_INET);
    int sink = udpt_udp_bound(AF_INET, 0, &up), fd[20], base;
    struct udpt_child *k;
    long end;

    (void)state;
    k = udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?idle-timeout=1s", lp, up), NULL,
                   NULL);
    base = udpt_fd_count_settled(k->pid);
    for (int i = 0; i < 20; i++) {
        fd[i] = udpt_client(AF_INET);
        udpt_send_to(fd[i], AF_INET, lp, "anyone?", 7);
    }
    end = udpt_now_ms() + ANSWER_MS;
    while (udpt_fd_count(k->pid) < base + 20 && udpt_now_ms() < end)
        udpt_sleep_ms(20);
    assert_int_equal(udpt_fd_count(k->pid), base + 20);
    end = udpt_now_ms() + ANSWER_MS;
    while (udpt_fd_count(k->pid) > base && udpt_now_ms() < end)
        udpt_sleep_ms(50);
    assert_int_equal(udpt_fd_count(k->pid), base);
    /* The lines go through ppfwd's logger thread: they may trail the fds. */
    end = udpt_now_ms() + ANSWER_MS;
    while (udpt_count(udpt_child_log(k), "\"reason\":\"idle timeout\"") < 20 &&
           udpt_now_ms() < end)
        udpt_sleep_ms(20);
    assert_int_equal(udpt_count(udpt_child_log(k), "\"reason\":\"idle timeout\""), 20);
    for (int i = 0; i < 20; i++)
        close(fd[i]);
    close(sink);
}

/* An upstream that answers with an ICMP port unreachable is avoided by new
 * sessions for a while, as after a failed TCP connect: every client that
 * comes after the refusal is served by the live upstream. */
static void test_upstream_refused(void **state)
{
    enum { FIRST = 4, AFTER = 8 };
    uint16_t up = udpt_echo_start(AF_INET), dead = udpt_free_port(AF_INET),
             lp = udpt_free_port(AF_INET);
    struct udpt_child *k;
    int fd[FIRST], n, refused = -1;
    long end;
    char buf[64];

    (void)state;
    k = udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u,127.0.0.1:%u", lp, dead, up), NULL,
                   NULL);
    /* Round robin: one of the first clients lands on the dead upstream. */
    for (n = 0; n < FIRST && refused < 0; n++) {
        fd[n] = udpt_client(AF_INET);
        udpt_send_to(fd[n], AF_INET, lp, "first", 5);
        if (udpt_recv_one(fd[n], buf, sizeof(buf), QUIET_MS) < 0)
            refused = n;
    }
    for (int i = 0; i < n; i++)
        close(fd[i]);
    assert_true(refused >= 0);
    end = udpt_now_ms() + ANSWER_MS;
    while (strstr(udpt_child_log(k), "Connection refused") == NULL) {
        if (udpt_now_ms() > end)
            fail_msg("no upstream_error for the refusal: %s", udpt_child_log(k));
        udpt_sleep_ms(10);
    }
    /* Within the pause (2 s): each new client is answered. */
    for (int i = 0; i < AFTER; i++) {
        int c = udpt_client(AF_INET);

        udpt_send_to(c, AF_INET, lp, "after", 5);
        if (udpt_recv_one(c, buf, sizeof(buf), ANSWER_MS) != 5 || strcmp(buf, "after") != 0)
            fail_msg("client %d after the refusal: no answer: %s", i, udpt_child_log(k));
        close(c);
    }
}

/* SIGTERM while an answer is on its way: ppfwd stops reading clients but
 * the session lives until it has been quiet for a second, so the answer
 * still reaches the client; then ppfwd exits 0 well before the drain
 * timeout, the session closed as "drained". */
static void test_drain(void **state)
{
    enum { DELAY = 400 };
    uint16_t up = udpt_echo_start_delay(AF_INET, DELAY), lp = udpt_free_port(AF_INET);
    struct udpt_child *k;
    int fd = udpt_client(AF_INET), status = 0;
    long t0, end;
    pid_t p = 0;
    char buf[64];

    (void)state;
    k = udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u", lp, up), NULL, NULL);
    udpt_send_to(fd, AF_INET, lp, "late", 4);
    end = udpt_now_ms() + ANSWER_MS;
    while (strstr(udpt_child_log(k), "\"udp_session_open\"") == NULL) {
        if (udpt_now_ms() > end)
            fail_msg("no session: %s", udpt_child_log(k));
        udpt_sleep_ms(5);
    }
    t0 = udpt_now_ms();
    assert_int_equal(kill(k->pid, SIGTERM), 0);
    if (udpt_recv_one(fd, buf, sizeof(buf), ANSWER_MS) != 4 || strcmp(buf, "late") != 0)
        fail_msg("the answer did not come through the drain: %s", udpt_child_log(k));
    close(fd);
    end = udpt_now_ms() + STOP_MS;
    while (udpt_now_ms() < end && (p = waitpid(k->pid, &status, WNOHANG)) == 0)
        udpt_sleep_ms(10);
    assert_int_equal(p, k->pid);
    k->pid = 0; /* reaped: the teardown has nothing left to stop */
    k->must_exit0 = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("ppfwd exit status %d: %s", status, udpt_child_log(k));
    if (udpt_now_ms() - t0 > 5000)
        fail_msg("ppfwd took %ld ms to drain one quiet session", udpt_now_ms() - t0);
    if (strstr(udpt_child_log(k), "\"reason\":\"drained\"") == NULL)
        fail_msg("no udp_session_close drained: %s", udpt_child_log(k));
}

/* A client that sends from the moment ppfwd starts, while its workers are
 * still coming up: all its datagrams must land in one session (the route's
 * sockets form their SO_REUSEPORT group before any datagram is taken; a
 * socket joining later would move the client to another worker). */
static void test_startup_one_session(void **state)
{
    enum { AFTER = 300, MAX_SENT = 20000 };
    static struct udpt_args a;
    char url[128];
    uint16_t up = udpt_echo_start(AF_INET), lp = udpt_free_port(AF_INET);
    int fd = udpt_client(AF_INET), sent = 0, after = -1;
    long end = udpt_now_ms() + READY_MS;
    struct udpt_child *k;

    (void)state;
    snprintf(url, sizeof(url), "udp://127.0.0.1:%u/127.0.0.1:%u", lp, up);
    memset(&a, 0, sizeof(a));
    udpt_args_add(&a, udpt_ppfwd_path());
    udpt_args_add(&a, "-w");
    udpt_args_add(&a, "4");
    udpt_args_add(&a, "--log-format");
    udpt_args_add(&a, "json");
    udpt_args_add(&a, "-l");
    udpt_args_add(&a, "debug");
    udpt_args_add(&a, url);
    k = udpt_spawn(a.argv, "\"route_start\"", 0); /* no wait: the client starts at once */
    while (after != 0 && sent < MAX_SENT) {
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "d%d", sent++);
        struct pollfd p = {.fd = fd, .events = POLLIN};

        udpt_send_to(fd, AF_INET, lp, buf, (size_t)len);
        while (poll(&p, 1, 0) == 1 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            p.revents = 0;
        if (after > 0)
            after--;
        else if (after < 0 && udpt_count(udpt_child_log(k), "\"route_start\"") == 1)
            after = AFTER;
        if (udpt_now_ms() > end)
            fail_msg("ppfwd did not start: %s", udpt_child_log(k));
        udpt_sleep_ms(after < 0 ? 0 : 1);
    }
    close(fd);
    assert_int_equal(after, 0);
    udpt_sleep_ms(QUIET_MS);
    if (udpt_count(udpt_child_log(k), "\"udp_session_open\"") != 1)
        fail_msg("one client, %zu sessions: %s",
                 udpt_count(udpt_child_log(k), "\"udp_session_open\""), udpt_child_log(k));
}

/* Over the UDP sockets bound to 127.0.0.1:port (ppfwd's, one per worker),
 * from /proc/net/udp: the bytes queued unread, and the datagrams the kernel
 * dropped for want of room in them. Returns how many sockets there are. */
static int udp_backlog(uint16_t port, unsigned long *queued, unsigned long *dropped)
{
    char line[512], want[32];
    FILE *f = fopen("/proc/net/udp", "re");
    int socks = 0;

    assert_non_null(f);
    snprintf(want, sizeof(want), "0100007F:%04X", port);
    *queued = *dropped = 0;
    while (fgets(line, sizeof(line), f) != NULL) {
        char *tok[16], *save = NULL;
        int n = 0;

        for (char *t = strtok_r(line, " \t\n", &save); t != NULL && n < 16;
             t = strtok_r(NULL, " \t\n", &save))
            tok[n++] = t;
        /* sl local rem st tx:rx tr:when retrnsmt uid timeout inode ref ptr drops */
        if (n < 13 || strcmp(tok[1], want) != 0)
            continue;
        *queued += strtoul(strchr(tok[4], ':') + 1, NULL, 16);
        *dropped += strtoul(tok[12], NULL, 10);
        socks++;
    }
    fclose(f);
    return socks;
}

/* 10,000 distinct clients against max-conns=100: each from its own source
 * address (127.1.x.y, port 0), its socket closed once it has sent, so the
 * test holds at most ROUND descriptors. ppfwd must read every datagram (its
 * sockets drop none), and its sessions and descriptors stay bounded by
 * max-conns throughout; the refusals are logged. */
static void test_max_conns(void **state)
{
    enum { MANY = 10000, ROUND = 100, MAX = 100 };
    int fd[ROUND];
    uint16_t up, lp = udpt_free_port(AF_INET);
    int sink = udpt_udp_bound(AF_INET, 0, &up), base, peak = 0;
    unsigned long queued, dropped;
    struct udpt_child *k;
    const char *log;

    (void)state;
    k = udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?max-conns=%d", lp, up, MAX), NULL,
                   NULL);
    base = udpt_fd_count_settled(k->pid);
    assert_int_equal(udp_backlog(lp, &queued, &dropped), 2); /* -w 2: a socket each */
    for (int i = 0; i < MANY; i += ROUND) {
        long end;

        for (int j = 0; j < ROUND; j++) {
            struct sockaddr_in src = {.sin_family = AF_INET};
            int c = i + j;

            /* 127.1.0.1 .. 127.1.39.250: no .0, no .255 */
            src.sin_addr.s_addr =
                htonl(0x7f010000u | (uint32_t)(c / 250) << 8 | (uint32_t)(c % 250 + 1));
            fd[j] = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
            assert_true(fd[j] != -1);
            if (bind(fd[j], (struct sockaddr *)&src, sizeof(src)) != 0)
                fail_msg("bind client %d: %s", c, strerror(errno));
            udpt_send_to(fd[j], AF_INET, lp, "hello", 5);
        }
        for (int j = 0; j < ROUND; j++)
            close(fd[j]);
        /* This tests the cap, not the queue: let ppfwd read the round. */
        end = udpt_now_ms() + ANSWER_MS;
        for (udp_backlog(lp, &queued, &dropped); queued > 0 && udpt_now_ms() < end;
             udp_backlog(lp, &queued, &dropped))
            udpt_sleep_ms(1);
        if (queued > 0)
            fail_msg("ppfwd left %lu bytes unread for %d ms after client %d", queued, ANSWER_MS,
                     i + ROUND);
        int n = udpt_fd_count(k->pid);
        if (n > peak)
            peak = n;
        if (n > base + MAX)
            fail_msg("after %d clients ppfwd holds %d fds, more than %d + max-conns %d", i + ROUND,
                     n, base, MAX);
    }
    udpt_sleep_ms(QUIET_MS); /* a session opened late would show up by now */
    udp_backlog(lp, &queued, &dropped);
    assert_int_equal(dropped, 0); /* so ppfwd saw all MANY clients */
    log = udpt_child_log(k);
    assert_int_equal(udpt_count(log, "\"udp_session_open\""), MAX);
    assert_non_null(strstr(log, "\"reason\":\"max-conns reached\""));
    assert_int_equal(udpt_fd_count(k->pid), base + MAX);
    assert_int_equal(peak, base + MAX);
    close(sink);
}

/* Few descriptors (RLIMIT_NOFILE 64): new sessions are refused and
 * logged while the route keeps serving the sessions already open. */
static void test_emfile(void **state)
{
    enum { MANY = 200 };
    static int fd[MANY];
    uint16_t up = udpt_echo_start(AF_INET), lp = udpt_free_port(AF_INET);
    int first = udpt_client(AF_INET), answered = 0;
    char buf[256];
    struct udpt_child *k;

    (void)state;
    udpt_child_nofile = 64;
    k = udpt_ppfwd(udpt_route("udp://127.0.0.1:%u/127.0.0.1:%u?idle-timeout=2s", lp, up), NULL,
                   NULL);
    udpt_send_to(first, AF_INET, lp, "first", 5);
    assert_int_equal(udpt_recv_one(first, buf, sizeof(buf), ANSWER_MS), 5);
    for (int i = 0; i < MANY; i++) {
        fd[i] = udpt_client(AF_INET);
        udpt_send_to(fd[i], AF_INET, lp, "more", 4);
    }
    for (int i = 0; i < MANY; i++)
        answered += udpt_recv_one(fd[i], buf, sizeof(buf), i < 5 ? ANSWER_MS : 20) == 4;
    assert_true(answered > 0 && answered < MANY);
    /* The session cap (half the fd limit, udp_limits) refuses before the
     * descriptors run out. */
    assert_non_null(strstr(udpt_child_log(k), "UDP session cap reached"));
    udpt_send_to(first, AF_INET, lp, "again", 5); /* an open session still relays */
    assert_int_equal(udpt_recv_one(first, buf, sizeof(buf), ANSWER_MS), 5);
    for (int i = 0; i < MANY; i++)
        close(fd[i]);
    close(first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_idle, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_max_conns, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_emfile, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_startup_one_session, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_upstream_refused, udpt_setup, udpt_teardown),
        cmocka_unit_test_setup_teardown(test_drain, udpt_setup, udpt_teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
