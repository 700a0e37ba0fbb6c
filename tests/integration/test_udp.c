/*
 * test_udp.c - ppfwd's UDP routes end to end on loopback: $PPFWD (default
 * build/asan/ppfwd) run as a child in front of `ppfwd whoami --udp` or of an
 * echo server forked from this test, fed datagrams from many sockets.
 *
 * Every wait is bounded (poll with a timeout); every child is stopped with
 * SIGTERM and reaped in the teardown, and ppfwd and whoami must exit 0,
 * which also catches the sanitizers' reports in the (ASan) children.
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

#define READY_MS 15000 /* an ASan binary on a busy machine starts slowly */
#define ANSWER_MS 5000 /* longest wait for one answer */
#define QUIET_MS 400   /* how long a dropped datagram is given to show up anyway */
#define STOP_MS 10000
#define MAX_CHILDREN 3
#define CLIENTS 10
#define PER_CLIENT 1000
#define WINDOW 8 /* datagrams in flight per client */

struct child {
    pid_t pid;
    char log[64]; /* its stderr, a temporary file */
    int must_exit0;
};

static struct child kids[MAX_CHILDREN];
static int nkids;
static rlim_t child_nofile; /* RLIMIT_NOFILE for the next child; 0: inherited */

static const char *ppfwd_path(void)
{
    const char *p = getenv("PPFWD");

    return p != NULL && p[0] != '\0' ? p : "build/asan/ppfwd";
}

static long now_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L};

    nanosleep(&ts, NULL);
}

static socklen_t loopback(int family, uint16_t port, struct sockaddr_storage *ss)
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
static int udp_bound(int family, uint16_t port, uint16_t *port_out)
{
    struct sockaddr_storage ss;
    socklen_t len = loopback(family, port, &ss);
    int fd = socket(family, SOCK_DGRAM | SOCK_CLOEXEC, 0);

    assert_true(fd != -1);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (port_out != NULL)
        *port_out = ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in sin6 */
    return fd;
}

static uint16_t free_port(int family)
{
    uint16_t port;

    close(udp_bound(family, 0, &port));
    return port;
}

static const char *child_log(const struct child *k)
{
    static char buf[1 << 20];
    int fd = open(k->log, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd == -1 ? -1 : read(fd, buf, sizeof(buf) - 1);

    if (fd != -1)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static size_t count(const char *hay, const char *needle)
{
    size_t n = 0;

    for (const char *p = strstr(hay, needle); p != NULL; p = strstr(p + 1, needle))
        n++;
    return n;
}

/* Starts argv (NULL-terminated) with stderr to a temporary file and waits
 * until its log holds `ready` times the string ready_str. */
static struct child *spawn(char *const *argv, const char *ready_str, size_t ready)
{
    struct child *k = &kids[nkids++];
    int fd, null = open("/dev/null", O_RDWR | O_CLOEXEC);
    long end = now_ms() + READY_MS;

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
        if (child_nofile != 0) {
            struct rlimit rl = {.rlim_cur = child_nofile, .rlim_max = child_nofile};
            setrlimit(RLIMIT_NOFILE, &rl);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    close(null);
    while (count(child_log(k), ready_str) < ready) {
        if (now_ms() > end || waitpid(k->pid, NULL, WNOHANG) == k->pid)
            fail_msg("%s did not start: %s", argv[0], child_log(k));
        sleep_ms(10);
    }
    return k;
}

/* An argv built from copies, since exec wants char * and literals are const. */
struct args {
    char buf[12][512];
    char *argv[13];
    int n;
};

static void args_add(struct args *a, const char *s)
{
    if (s == NULL)
        return;
    snprintf(a->buf[a->n], sizeof(a->buf[0]), "%s", s);
    a->argv[a->n] = a->buf[a->n];
    a->n++;
    a->argv[a->n] = NULL;
}

static struct child *whoami(int family, uint16_t port)
{
    static struct args a;
    char addr[64];

    snprintf(addr, sizeof(addr), family == AF_INET ? "127.0.0.1:%u" : "[::1]:%u", port);
    memset(&a, 0, sizeof(a));
    args_add(&a, ppfwd_path());
    args_add(&a, "whoami");
    args_add(&a, "--udp");
    args_add(&a, addr);
    return spawn(a.argv, "\"whoami_listen\"", 1);
}

/* ppfwd -w 2 with up to three route URLs (NULL ends the list). */
static struct child *ppfwd(const char *r1, const char *r2, const char *r3)
{
    static struct args a;
    const char *fixed[] = {ppfwd_path(), "-w", "2", "--log-format", "json", "-l", "debug"};
    size_t n = 1 + (r2 != NULL) + (r2 != NULL && r3 != NULL);

    memset(&a, 0, sizeof(a));
    for (size_t i = 0; i < sizeof(fixed) / sizeof(fixed[0]); i++)
        args_add(&a, fixed[i]);
    args_add(&a, r1);
    args_add(&a, r2);
    args_add(&a, r2 != NULL ? r3 : NULL);
    return spawn(a.argv, "\"route_start\"", n);
}

/* An echo server: a forked copy of this test answering each datagram with
 * itself; killed by the teardown. */
static uint16_t echo_start_delay(int family, long delay_ms);

static uint16_t echo_start(int family)
{
    return echo_start_delay(family, 0);
}

/* The same, answering each datagram delay_ms after it came. */
static uint16_t echo_start_delay(int family, long delay_ms)
{
    static uint8_t buf[65536];
    struct child *k = &kids[nkids++];
    uint16_t port;
    int fd = udp_bound(family, 0, &port);

    k->pid = fork();
    assert_true(k->pid != -1);
    if (k->pid == 0) {
        for (;;) {
            struct sockaddr_storage ss;
            socklen_t len = sizeof(ss);
            ssize_t n = recvfrom(fd, buf, sizeof(buf), 0, (struct sockaddr *)&ss, &len);
            if (n >= 0 && delay_ms > 0)
                sleep_ms(delay_ms);
            if (n >= 0)
                sendto(fd, buf, (size_t)n, 0, (struct sockaddr *)&ss, len);
        }
    }
    close(fd);
    return port;
}

static int setup(void **state)
{
    (void)state;
    nkids = 0;
    child_nofile = 0;
    return 0;
}

static int teardown(void **state)
{
    int bad = 0;

    (void)state;
    for (int i = nkids - 1; i >= 0; i--) {
        struct child *k = &kids[i];
        long end = now_ms() + STOP_MS;
        int status = 0;
        pid_t p = 0;

        if (k->pid <= 0) { /* reaped by its test already */
            if (k->log[0] != '\0')
                unlink(k->log);
            memset(k, 0, sizeof(*k));
            continue;
        }
        kill(k->pid, k->must_exit0 ? SIGTERM : SIGKILL);
        while (now_ms() < end && (p = waitpid(k->pid, &status, WNOHANG)) == 0)
            sleep_ms(10);
        if (p != k->pid) {
            kill(k->pid, SIGKILL);
            waitpid(k->pid, &status, 0);
            bad = 1;
        }
        if (k->must_exit0 && (!WIFEXITED(status) || WEXITSTATUS(status) != 0)) {
            fprintf(stderr, "child %d exit status %d; log:\n%s\n", (int)k->pid, status,
                    child_log(k));
            bad = 1;
        }
        if (k->log[0] != '\0')
            unlink(k->log);
        memset(k, 0, sizeof(*k));
    }
    nkids = 0;
    return bad ? -1 : 0;
}

/* ---- clients ---------------------------------------------------------- */

static int client(int family)
{
    int fd = udp_bound(family, 0, NULL), big = 1 << 20;

    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    return fd;
}

static void send_to(int fd, int family, uint16_t port, const void *p, size_t len)
{
    struct sockaddr_storage ss;
    socklen_t sl = loopback(family, port, &ss);

    assert_int_equal(sendto(fd, p, len, 0, (struct sockaddr *)&ss, sl), (ssize_t)len);
}

/* One datagram into buf (NUL-terminated); its length, or -1 after ms. */
static ssize_t recv_one(int fd, void *buf, size_t cap, long ms)
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

static void sock_name(int fd, char *buf, size_t cap)
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

/* Sends one datagram and expects a whoami answer naming this socket as the
 * client (and in proxy.src). */
static void ask_whoami(int fd, int family, uint16_t port)
{
    char me[80], want[128], got[4096];

    sock_name(fd, me, sizeof(me));
    send_to(fd, family, port, "hi", 2);
    assert_true(recv_one(fd, got, sizeof(got), ANSWER_MS) > 0);
    snprintf(want, sizeof(want), "\"client\":\"%s\"", me);
    if (strstr(got, want) == NULL)
        fail_msg("want %s in %s", want, got);
    snprintf(want, sizeof(want), "\"src\":\"%s\"", me);
    if (strstr(got, want) == NULL)
        fail_msg("want %s in %s", want, got);
}

static int fd_count(pid_t pid)
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

static char *route(const char *fmt, ...)
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

/* CLIENTS sockets each send PER_CLIENT datagrams to port, WINDOW in flight.
 * echo: the answers must be the datagrams themselves, in order per client;
 * else (whoami) each answer must name its client. */
static void pump(int family, uint16_t port, int echo)
{
    int fd[CLIENTS], sent[CLIENTS] = {0}, got[CLIENTS] = {0}, done = 0;
    char me[CLIENTS][80], buf[4096], want[128];
    struct pollfd p[CLIENTS];

    for (int c = 0; c < CLIENTS; c++) {
        fd[c] = client(family);
        sock_name(fd[c], me[c], sizeof(me[c]));
        p[c] = (struct pollfd){.fd = fd[c], .events = POLLIN};
        for (; sent[c] < WINDOW; sent[c]++) {
            snprintf(buf, sizeof(buf), "c%d-%d", c, sent[c]);
            send_to(fd[c], family, port, buf, strlen(buf));
        }
    }
    while (done < CLIENTS) {
        if (poll(p, CLIENTS, ANSWER_MS) <= 0)
            fail_msg("no answer in %d ms (done %d; client 0 got %d)", ANSWER_MS, done, got[0]);
        for (int c = 0; c < CLIENTS; c++) {
            if (!(p[c].revents & POLLIN))
                continue;
            assert_true(recv_one(fd[c], buf, sizeof(buf), 0) > 0);
            if (echo)
                snprintf(want, sizeof(want), "c%d-%d", c, got[c]);
            else
                snprintf(want, sizeof(want), "\"client\":\"%s\"", me[c]);
            if (echo ? strcmp(buf, want) != 0 : strstr(buf, want) == NULL)
                fail_msg("client %d answer %d: want %s, got %.300s", c, got[c], want, buf);
            if (++got[c] == PER_CLIENT)
                done++;
            if (sent[c] < PER_CLIENT) {
                snprintf(buf, sizeof(buf), "c%d-%d", c, sent[c]++);
                send_to(fd[c], family, port, buf, strlen(buf));
            }
        }
    }
    for (int c = 0; c < CLIENTS; c++)
        close(fd[c]);
}

/* send-proxy=v2 in front of whoami: each answer names its real client. */
static void test_send_proxy(void **state)
{
    uint16_t up = free_port(AF_INET), lp = free_port(AF_INET);

    (void)state;
    whoami(AF_INET, up);
    ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u?send-proxy=v2", lp, up), NULL, NULL);
    pump(AF_INET, lp, 0);
}

/* A plain route to an echo server: every datagram back, in order. */
static void test_echo_order(void **state)
{
    uint16_t up = echo_start(AF_INET), lp = free_port(AF_INET);

    (void)state;
    ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u", lp, up), NULL, NULL);
    pump(AF_INET, lp, 1);
}

/* Two hops: the first sends v2, the second takes it (required, trusted)
 * and sends v2 on: whoami still sees the original client. */
static void test_two_hops(void **state)
{
    uint16_t up = free_port(AF_INET), p1 = free_port(AF_INET), p2 = free_port(AF_INET);
    int fd;

    (void)state;
    whoami(AF_INET, up);
    ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u?send-proxy=v2&crc32c=on", p1, p2),
          route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=required&trusted=127.0.0.1"
                "&send-proxy=v2&authority=example.com",
                p2, up),
          NULL);
    for (int i = 0; i < 3; i++) {
        fd = client(AF_INET);
        ask_whoami(fd, AF_INET, p1);
        close(fd);
    }
}

static void test_ipv6(void **state)
{
    uint16_t up = free_port(AF_INET6), lp = free_port(AF_INET6);
    int fd;

    (void)state;
    whoami(AF_INET6, up);
    ppfwd(route("udp6://[::1]:%u/[::1]:%u?send-proxy=v2", lp, up), NULL, NULL);
    fd = client(AF_INET6);
    ask_whoami(fd, AF_INET6, lp);
    close(fd);
}

/* A 65,507-byte datagram (the IPv4 maximum) through a plain route. */
static void test_big(void **state)
{
    static uint8_t out[65507], in[65536];
    uint16_t up = echo_start(AF_INET), lp = free_port(AF_INET);
    int fd = client(AF_INET);

    (void)state;
    for (size_t i = 0; i < sizeof(out); i++)
        out[i] = (uint8_t)(i * 7 + 3);
    ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u", lp, up), NULL, NULL);
    send_to(fd, AF_INET, lp, out, sizeof(out));
    assert_int_equal(recv_one(fd, in, sizeof(in), ANSWER_MS), (ssize_t)sizeof(out));
    assert_memory_equal(in, out, sizeof(out));
    close(fd);
}

/* Expects no answer on fd within QUIET_MS. */
static void silence(int fd)
{
    char buf[4096];

    assert_int_equal(recv_one(fd, buf, sizeof(buf), QUIET_MS), -1);
}

static size_t header(uint8_t *buf, size_t cap, uint16_t dport, const char *payload)
{
    struct sockaddr_storage src, dst;
    struct sockaddr_in *sin = (struct sockaddr_in *)&src;
    ssize_t n;

    loopback(AF_INET, dport, &dst);
    memset(&src, 0, sizeof(src));
    sin->sin_family = AF_INET;
    sin->sin_port = htons(1234);
    inet_pton(AF_INET, "192.0.2.10", &sin->sin_addr);
    n = pp_build_v2(buf, cap, PP2_CMD_PROXY, SOCK_DGRAM, (struct sockaddr *)&src,
                    (struct sockaddr *)&dst);
    assert_true(n > 0);
    memcpy(buf + n, payload, strlen(payload));
    return (size_t)n + strlen(payload);
}

/* Garbage, truncated headers and headers from untrusted sources are
 * dropped and logged; a valid header, and a plain datagram where the
 * header is optional, are served. */
static void test_bad_input(void **state)
{
    uint16_t up = free_port(AF_INET), req = free_port(AF_INET), unt = free_port(AF_INET),
             opt = free_port(AF_INET);
    struct child *k;
    uint8_t hdr[256];
    char got[4096];
    size_t n;
    int fd = client(AF_INET);

    (void)state;
    whoami(AF_INET, up);
    k = ppfwd(
        route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=required&trusted=127.0.0.1"
              "&send-proxy=v2",
              req, up),
        route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=required&trusted=10.0.0.0/8", unt, up),
        route("udp://127.0.0.1:%u/127.0.0.1:%u?accept-proxy=optional&trusted=10.0.0.0/8", opt, up));
    send_to(fd, AF_INET, req, "garbage, no header", 18);
    silence(fd);
    n = header(hdr, sizeof(hdr), req, "x");
    send_to(fd, AF_INET, req, hdr, 20); /* a header cut short */
    silence(fd);
    send_to(fd, AF_INET, req, hdr, n);
    assert_true(recv_one(fd, got, sizeof(got), ANSWER_MS) > 0);
    if (strstr(got, "\"client\":\"192.0.2.10:1234\"") == NULL)
        fail_msg("the header's client, not %s", got);
    send_to(fd, AF_INET, unt, hdr, n); /* untrusted, required */
    silence(fd);
    send_to(fd, AF_INET, unt, "plain", 5);
    silence(fd);
    send_to(fd, AF_INET, opt, hdr, n); /* untrusted, optional: header refused */
    silence(fd);
    send_to(fd, AF_INET, opt, "plain", 5); /* served directly */
    assert_true(recv_one(fd, got, sizeof(got), ANSWER_MS) > 0);
    close(fd);
    const char *log = child_log(k);
    assert_non_null(strstr(log, "\"reason\":\"no PROXY header\""));
    assert_non_null(strstr(log, "\"reason\":\"truncated PROXY header\""));
    assert_true(count(log, "\"reason\":\"PROXY header from an untrusted source\"") >= 2);
}

/* Sessions to an upstream that never answers close at idle-timeout, and
 * their descriptors with them. */
static void test_idle(void **state)
{
    uint16_t up, lp = free_port(AF_INET);
    int sink = udp_bound(AF_INET, 0, &up), fd[20], base;
    struct child *k;
    long end;

    (void)state;
    k = ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u?idle-timeout=1s", lp, up), NULL, NULL);
    base = fd_count(k->pid);
    for (int i = 0; i < 20; i++) {
        fd[i] = client(AF_INET);
        send_to(fd[i], AF_INET, lp, "anyone?", 7);
    }
    end = now_ms() + ANSWER_MS;
    while (fd_count(k->pid) < base + 20 && now_ms() < end)
        sleep_ms(20);
    assert_int_equal(fd_count(k->pid), base + 20);
    end = now_ms() + ANSWER_MS;
    while (fd_count(k->pid) > base && now_ms() < end)
        sleep_ms(50);
    assert_int_equal(fd_count(k->pid), base);
    assert_int_equal(count(child_log(k), "\"reason\":\"idle timeout\""), 20);
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
    uint16_t up = echo_start(AF_INET), dead = free_port(AF_INET), lp = free_port(AF_INET);
    struct child *k;
    int fd[FIRST], n, refused = -1;
    long end;
    char buf[64];

    (void)state;
    k = ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u,127.0.0.1:%u", lp, dead, up), NULL, NULL);
    /* Round robin: one of the first clients lands on the dead upstream. */
    for (n = 0; n < FIRST && refused < 0; n++) {
        fd[n] = client(AF_INET);
        send_to(fd[n], AF_INET, lp, "first", 5);
        if (recv_one(fd[n], buf, sizeof(buf), QUIET_MS) < 0)
            refused = n;
    }
    for (int i = 0; i < n; i++)
        close(fd[i]);
    assert_true(refused >= 0);
    end = now_ms() + ANSWER_MS;
    while (strstr(child_log(k), "Connection refused") == NULL) {
        if (now_ms() > end)
            fail_msg("no upstream_error for the refusal: %s", child_log(k));
        sleep_ms(10);
    }
    /* Within the pause (2 s): each new client is answered. */
    for (int i = 0; i < AFTER; i++) {
        int c = client(AF_INET);

        send_to(c, AF_INET, lp, "after", 5);
        if (recv_one(c, buf, sizeof(buf), ANSWER_MS) != 5 || strcmp(buf, "after") != 0)
            fail_msg("client %d after the refusal: no answer: %s", i, child_log(k));
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
    uint16_t up = echo_start_delay(AF_INET, DELAY), lp = free_port(AF_INET);
    struct child *k;
    int fd = client(AF_INET), status = 0;
    long t0, end;
    pid_t p = 0;
    char buf[64];

    (void)state;
    k = ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u", lp, up), NULL, NULL);
    send_to(fd, AF_INET, lp, "late", 4);
    end = now_ms() + ANSWER_MS;
    while (strstr(child_log(k), "\"udp_session_open\"") == NULL) {
        if (now_ms() > end)
            fail_msg("no session: %s", child_log(k));
        sleep_ms(5);
    }
    t0 = now_ms();
    assert_int_equal(kill(k->pid, SIGTERM), 0);
    if (recv_one(fd, buf, sizeof(buf), ANSWER_MS) != 4 || strcmp(buf, "late") != 0)
        fail_msg("the answer did not come through the drain: %s", child_log(k));
    close(fd);
    end = now_ms() + STOP_MS;
    while (now_ms() < end && (p = waitpid(k->pid, &status, WNOHANG)) == 0)
        sleep_ms(10);
    assert_int_equal(p, k->pid);
    k->pid = 0; /* reaped: the teardown has nothing left to stop */
    k->must_exit0 = 0;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
        fail_msg("ppfwd exit status %d: %s", status, child_log(k));
    if (now_ms() - t0 > 5000)
        fail_msg("ppfwd took %ld ms to drain one quiet session", now_ms() - t0);
    if (strstr(child_log(k), "\"reason\":\"drained\"") == NULL)
        fail_msg("no udp_session_close drained: %s", child_log(k));
}

/* A client that sends from the moment ppfwd starts, while its workers are
 * still coming up: all its datagrams must land in one session (the route's
 * sockets form their SO_REUSEPORT group before any datagram is taken; a
 * socket joining later would move the client to another worker). */
static void test_startup_one_session(void **state)
{
    enum { AFTER = 300, MAX_SENT = 20000 };
    static struct args a;
    char url[128];
    uint16_t up = echo_start(AF_INET), lp = free_port(AF_INET);
    int fd = client(AF_INET), sent = 0, after = -1;
    long end = now_ms() + READY_MS;
    struct child *k;

    (void)state;
    snprintf(url, sizeof(url), "udp://127.0.0.1:%u/127.0.0.1:%u", lp, up);
    memset(&a, 0, sizeof(a));
    args_add(&a, ppfwd_path());
    args_add(&a, "-w");
    args_add(&a, "4");
    args_add(&a, "--log-format");
    args_add(&a, "json");
    args_add(&a, "-l");
    args_add(&a, "debug");
    args_add(&a, url);
    k = spawn(a.argv, "\"route_start\"", 0); /* no wait: the client starts at once */
    while (after != 0 && sent < MAX_SENT) {
        char buf[32];
        int len = snprintf(buf, sizeof(buf), "d%d", sent++);
        struct pollfd p = {.fd = fd, .events = POLLIN};

        send_to(fd, AF_INET, lp, buf, (size_t)len);
        while (poll(&p, 1, 0) == 1 && recv(fd, buf, sizeof(buf), MSG_DONTWAIT) > 0)
            p.revents = 0;
        if (after > 0)
            after--;
        else if (after < 0 && count(child_log(k), "\"route_start\"") == 1)
            after = AFTER;
        if (now_ms() > end)
            fail_msg("ppfwd did not start: %s", child_log(k));
        sleep_ms(after < 0 ? 0 : 1);
    }
    close(fd);
    assert_int_equal(after, 0);
    sleep_ms(QUIET_MS);
    if (count(child_log(k), "\"udp_session_open\"") != 1)
        fail_msg("one client, %zu sessions: %s", count(child_log(k), "\"udp_session_open\""),
                 child_log(k));
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
    uint16_t up, lp = free_port(AF_INET);
    int sink = udp_bound(AF_INET, 0, &up), base, peak = 0;
    unsigned long queued, dropped;
    struct child *k;
    const char *log;

    (void)state;
    k = ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u?max-conns=%d", lp, up, MAX), NULL, NULL);
    base = fd_count(k->pid);
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
            send_to(fd[j], AF_INET, lp, "hello", 5);
        }
        for (int j = 0; j < ROUND; j++)
            close(fd[j]);
        /* This tests the cap, not the queue: let ppfwd read the round. */
        end = now_ms() + ANSWER_MS;
        for (udp_backlog(lp, &queued, &dropped); queued > 0 && now_ms() < end;
             udp_backlog(lp, &queued, &dropped))
            sleep_ms(1);
        if (queued > 0)
            fail_msg("ppfwd left %lu bytes unread for %d ms after client %d", queued, ANSWER_MS,
                     i + ROUND);
        int n = fd_count(k->pid);
        if (n > peak)
            peak = n;
        if (n > base + MAX)
            fail_msg("after %d clients ppfwd holds %d fds, more than %d + max-conns %d", i + ROUND,
                     n, base, MAX);
    }
    sleep_ms(QUIET_MS); /* a session opened late would show up by now */
    udp_backlog(lp, &queued, &dropped);
    assert_int_equal(dropped, 0); /* so ppfwd saw all MANY clients */
    log = child_log(k);
    assert_int_equal(count(log, "\"udp_session_open\""), MAX);
    assert_non_null(strstr(log, "\"reason\":\"max-conns reached\""));
    assert_int_equal(fd_count(k->pid), base + MAX);
    assert_int_equal(peak, base + MAX);
    close(sink);
}

/* Few descriptors (RLIMIT_NOFILE 64): new sessions are refused and
 * logged while the route keeps serving the sessions already open. */
static void test_emfile(void **state)
{
    enum { MANY = 200 };
    static int fd[MANY];
    uint16_t up = echo_start(AF_INET), lp = free_port(AF_INET);
    int first = client(AF_INET), answered = 0;
    char buf[256];
    struct child *k;

    (void)state;
    child_nofile = 64;
    k = ppfwd(route("udp://127.0.0.1:%u/127.0.0.1:%u?idle-timeout=2s", lp, up), NULL, NULL);
    send_to(first, AF_INET, lp, "first", 5);
    assert_int_equal(recv_one(first, buf, sizeof(buf), ANSWER_MS), 5);
    for (int i = 0; i < MANY; i++) {
        fd[i] = client(AF_INET);
        send_to(fd[i], AF_INET, lp, "more", 4);
    }
    for (int i = 0; i < MANY; i++)
        answered += recv_one(fd[i], buf, sizeof(buf), i < 5 ? ANSWER_MS : 20) == 4;
    assert_true(answered > 0 && answered < MANY);
    /* The session cap (half the fd limit, udp_limits) refuses before the
     * descriptors run out. */
    assert_non_null(strstr(child_log(k), "UDP session cap reached"));
    send_to(first, AF_INET, lp, "again", 5); /* an open session still relays */
    assert_int_equal(recv_one(first, buf, sizeof(buf), ANSWER_MS), 5);
    for (int i = 0; i < MANY; i++)
        close(fd[i]);
    close(first);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_send_proxy, setup, teardown),
        cmocka_unit_test_setup_teardown(test_echo_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_hops, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_big, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_input, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle, setup, teardown),
        cmocka_unit_test_setup_teardown(test_max_conns, setup, teardown),
        cmocka_unit_test_setup_teardown(test_emfile, setup, teardown),
        cmocka_unit_test_setup_teardown(test_startup_one_session, setup, teardown),
        cmocka_unit_test_setup_teardown(test_upstream_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_drain, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
