/*
 * test_whoami.c - `ppfwd whoami` ($PPFWD, default build/asan/ppfwd) as the
 * integration tests will use it: started on loopback, fed PROXY headers built
 * with libproxyproto, and judged by the exact JSON line it answers.
 *
 * The server's port is found by binding port 0 here and closing it; if
 * another process takes the port meanwhile, the server reports "Address
 * already in use" and the test tries another. Every wait is bounded (poll
 * with a timeout), and the teardown stops the server with SIGTERM and
 * requires exit status 0, which also catches the sanitizers' reports in the
 * (ASan) child.
 */
#define _GNU_SOURCE /* mkostemp, unshare, setns */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <net/if.h>
#include <netinet/in.h>
#include <poll.h>
#include <sched.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <proxyproto.h>

#define READY_MS 15000  /* an ASan binary on a busy machine starts slowly */
#define ANSWER_MS 10000 /* longest wait for one answer (or for a close) */
#define STOP_MS 10000
#define START_TRIES 5
#define CONNS 50

struct server {
    pid_t pid;
    int family;
    int udp;
    uint16_t port;
    const char *to; /* the IP clients connect to; NULL: loopback of family */
    char log[64];   /* the server's stderr, a temporary file */
};

static struct server srv;

static int setup(void **state);
static int teardown(void **state);

/* An argv built from copies, since exec wants char * and literals are const. */
struct args {
    char buf[6][512];
    char *argv[7];
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

/* A loopback address of family with the given port. */
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

/* A port free right now for this family and protocol. */
static uint16_t free_port(int family, int udp)
{
    struct sockaddr_storage ss;
    socklen_t len = loopback(family, 0, &ss);
    int fd = socket(family, udp ? SOCK_DGRAM : SOCK_STREAM, 0);

    assert_true(fd != -1);
    assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    close(fd);
    return ntohs(((struct sockaddr_in *)&ss)->sin_port); /* same offset in sin6 */
}

/* The server's stderr so far, NUL-terminated, in a static buffer. */
static const char *server_log(void)
{
    static char buf[65536];
    int fd = open(srv.log, O_RDONLY | O_CLOEXEC);
    ssize_t n = fd == -1 ? -1 : read(fd, buf, sizeof(buf) - 1);

    if (fd != -1)
        close(fd);
    buf[n > 0 ? n : 0] = '\0';
    return buf;
}

static void spawn(char **argv)
{
    int fd = open(srv.log, O_WRONLY | O_TRUNC | O_CLOEXEC);
    int null = open("/dev/null", O_RDWR | O_CLOEXEC);

    assert_true(fd != -1 && null != -1);
    srv.pid = fork();
    assert_true(srv.pid != -1);
    if (srv.pid == 0) {
        dup2(null, STDIN_FILENO);
        dup2(null, STDOUT_FILENO);
        dup2(fd, STDERR_FILENO);
        execv(argv[0], argv);
        _exit(127);
    }
    close(fd);
    close(null);
}

/* Waits for the child to exit; returns its exit code, 128 + signal, or -1
 * if it is still running after ms. */
static int reap(long ms)
{
    long end = now_ms() + ms;
    int status;

    for (;;) {
        pid_t p = waitpid(srv.pid, &status, WNOHANG);
        if (p == srv.pid) {
            srv.pid = 0;
            return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
        }
        if (p == -1 || now_ms() > end)
            return -1;
        sleep_ms(10);
    }
}

/* Waits for whoami_listen (1), "in use" (0, the child reaped) or a failure
 * (-1). */
static int server_wait(void)
{
    long end = now_ms() + READY_MS;

    while (now_ms() < end) {
        const char *log = server_log();
        if (strstr(log, "\"whoami_listen\"") != NULL)
            return 1;
        if (strstr(log, "in use") != NULL) {
            reap(STOP_MS);
            return 0;
        }
        if (waitpid(srv.pid, NULL, WNOHANG) == srv.pid) {
            srv.pid = 0;
            return -1;
        }
        sleep_ms(10);
    }
    return -1;
}

/* Starts `ppfwd whoami [--udp] [mode] HOST:PORT`; mode may be NULL. host
 * is as whoami takes it ("127.0.0.1", "[::1]", "" for every address);
 * clients connect to family's loopback address. */
static void server_start_at(const char *host, int family, int udp, const char *mode)
{
    static struct args a;
    char addr[64];
    int rc = 0;

    srv.family = family;
    srv.udp = udp;
    for (int i = 0; i < START_TRIES && rc == 0; i++) {
        srv.port = free_port(family, udp);
        snprintf(addr, sizeof(addr), "%s:%u", host, srv.port);
        memset(&a, 0, sizeof(a));
        args_add(&a, ppfwd_path());
        args_add(&a, "whoami");
        args_add(&a, udp ? "--udp" : NULL);
        args_add(&a, mode);
        args_add(&a, addr);
        spawn(a.argv);
        rc = server_wait();
    }
    if (rc != 1)
        fail_msg("whoami did not start: %s", server_log());
}

/* Starts `ppfwd whoami [--udp] [mode] LOOPBACK:PORT`; mode may be NULL. */
static void server_start(int family, int udp, const char *mode)
{
    server_start_at(family == AF_INET ? "127.0.0.1" : "[::1]", family, udp, mode);
}

/* Where clients connect: srv.to, or the loopback address of srv.family. */
static socklen_t server_addr(struct sockaddr_storage *ss)
{
    socklen_t len = loopback(srv.family, srv.port, ss);

    if (srv.to != NULL && srv.family == AF_INET)
        assert_int_equal(inet_pton(AF_INET, srv.to, &((struct sockaddr_in *)ss)->sin_addr), 1);
    else if (srv.to != NULL)
        assert_int_equal(inet_pton(AF_INET6, srv.to, &((struct sockaddr_in6 *)ss)->sin6_addr), 1);
    return len;
}

/* ---- clients ----------------------------------------------------------- */

static int tcp_connect(void)
{
    struct sockaddr_storage ss;
    socklen_t len = server_addr(&ss);
    int fd = socket(srv.family, SOCK_STREAM | SOCK_CLOEXEC, 0);

    assert_true(fd != -1);
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
    return fd;
}

/* Reads until EOF (or a reset) into buf, NUL-terminated. Returns the bytes
 * read, or -1 if the server neither answered in full nor closed in time. */
static ssize_t read_all(int fd, char *buf, size_t cap, long ms)
{
    long end = now_ms() + ms;
    size_t len = 0;

    for (;;) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        long left = end - now_ms();
        if (left <= 0 || poll(&p, 1, (int)left) != 1)
            return -1;
        ssize_t n = read(fd, buf + len, cap - 1 - len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n <= 0 || len + (size_t)n == cap - 1) {
            len += n > 0 ? (size_t)n : 0;
            buf[len] = '\0';
            return (ssize_t)len;
        }
        len += (size_t)n;
    }
}

static void send_all(int fd, const void *p, size_t len)
{
    assert_int_equal(send(fd, p, len, MSG_NOSIGNAL), (ssize_t)len);
}

/* "IP:PORT" of the socket's local end: the peer the server sees. */
static void sock_name(int fd, char *buf, size_t cap)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof(ss);
    char ip[INET6_ADDRSTRLEN];
    uint16_t port;

    assert_int_equal(getsockname(fd, (struct sockaddr *)&ss, &len), 0);
    if (ss.ss_family == AF_INET) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        inet_ntop(AF_INET, &sin->sin_addr, ip, sizeof(ip));
        port = ntohs(sin->sin_port);
        snprintf(buf, cap, "%s:%u", ip, port);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        inet_ntop(AF_INET6, &sin6->sin6_addr, ip, sizeof(ip));
        port = ntohs(sin6->sin6_port);
        snprintf(buf, cap, "[%s]:%u", ip, port);
    }
}

/* The answer whoami gives to the client on fd: peer and local filled in,
 * then client and proxy as given (client NULL: the peer). */
static void expect(char *buf, size_t cap, int fd, const char *client, const char *proxy)
{
    char peer[80], local[80];

    sock_name(fd, peer, sizeof(peer));
    snprintf(local, sizeof(local), srv.family == AF_INET ? "127.0.0.1:%u" : "[::1]:%u", srv.port);
    snprintf(buf, cap, "{\"peer\":\"%s\",\"local\":\"%s\",\"client\":\"%s\",\"proxy\":%s}\n", peer,
             local, client != NULL ? client : peer, proxy);
}

/* Connects, sends data (if any), half-closes if asked, and checks that the
 * answer is exactly the expected line, or that the connection is closed
 * without one when proxy is NULL. */
static void ask(const void *data, size_t len, int shut, const char *client, const char *proxy)
{
    static char got[65536], want[65536];
    int fd = tcp_connect();

    if (len > 0)
        send_all(fd, data, len);
    if (shut)
        shutdown(fd, SHUT_WR);
    assert_true(read_all(fd, got, sizeof(got), ANSWER_MS) >= 0);
    if (proxy != NULL) {
        expect(want, sizeof(want), fd, client, proxy);
        assert_string_equal(got, want);
    } else {
        assert_string_equal(got, "");
    }
    close(fd);
}

static struct sockaddr_storage ip(const char *text, uint16_t port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(text, ':') == NULL) {
        struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
        sin->sin_family = AF_INET;
        sin->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, text, &sin->sin_addr), 1);
    } else {
        struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
        sin6->sin6_family = AF_INET6;
        sin6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, text, &sin6->sin6_addr), 1);
    }
    return ss;
}

static size_t build_v1(uint8_t *buf, const char *src, uint16_t sport, const char *dst,
                       uint16_t dport)
{
    struct sockaddr_storage s = ip(src, sport), d = ip(dst, dport);
    ssize_t n = pp_build_v1(buf, PP_V1_MAX_LEN, (struct sockaddr *)&s, (struct sockaddr *)&d);

    assert_true(n > 0);
    return (size_t)n;
}

static size_t build_v2(uint8_t *buf, size_t cap, int socktype, const char *src, uint16_t sport,
                       const char *dst, uint16_t dport)
{
    struct sockaddr_storage s = ip(src, sport), d = ip(dst, dport);
    ssize_t n = pp_build_v2(buf, cap, PP2_CMD_PROXY, socktype, (struct sockaddr *)&s,
                            (struct sockaddr *)&d);

    assert_true(n > 0);
    return (size_t)n;
}

static size_t add_tlv(uint8_t *buf, size_t cap, size_t len, uint8_t type, const char *v)
{
    ssize_t n = pp_build_v2_tlv(buf, cap, len, type, v, strlen(v));

    assert_true(n > 0);
    return (size_t)n;
}

/* ---- TCP ----------------------------------------------------------------- */

static const char v1_proxy[] = "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp4\","
                               "\"src\":\"192.0.2.10:51234\",\"dst\":\"198.51.100.1:443\","
                               "\"length\":46,\"tlvs\":[]}";

static void test_tcp_v1(void **state)
{
    uint8_t hdr[256];
    size_t n;

    (void)state;
    server_start(AF_INET, 0, NULL);
    n = build_v1(hdr, "192.0.2.10", 51234, "198.51.100.1", 443);
    assert_int_equal(n, 46);
    ask(hdr, n, 1, "192.0.2.10:51234", v1_proxy);
    /* Bytes after the header are the client's: the same answer, at once. */
    memcpy(hdr + n, "hello", 5);
    ask(hdr, n + 5, 0, "192.0.2.10:51234", v1_proxy);
}

static void test_tcp_v2_tlvs(void **state)
{
    uint8_t hdr[512];
    char proxy[1024];
    size_t n;
    ssize_t rc;

    (void)state;
    server_start(AF_INET, 0, NULL);
    n = build_v2(hdr, sizeof(hdr), SOCK_STREAM, "2001:db8::1", 1000, "2001:db8::2", 443);
    n = add_tlv(hdr, sizeof(hdr), n, PP2_TYPE_ALPN, "h2");
    n = add_tlv(hdr, sizeof(hdr), n, PP2_TYPE_AUTHORITY, "example.com");
    n = add_tlv(hdr, sizeof(hdr), n, 0xE5, "\"<x>\"");
    rc = pp_build_v2_crc32c(hdr, sizeof(hdr), n);
    assert_true(rc > 0);
    snprintf(proxy, sizeof(proxy),
             "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\","
             "\"src\":\"[2001:db8::1]:1000\",\"dst\":\"[2001:db8::2]:443\",\"length\":%zd,"
             "\"tlvs\":[{\"type\":1,\"name\":\"alpn\",\"value\":\"h2\",\"hex\":\"6832\"},"
             "{\"type\":2,\"name\":\"authority\",\"value\":\"example.com\","
             "\"hex\":\"6578616d706c652e636f6d\"},{\"type\":229,\"hex\":\"223c783e22\"},"
             "{\"type\":3,\"name\":\"crc32c\",\"hex\":\"%02x%02x%02x%02x\"}]}",
             rc, hdr[rc - 4], hdr[rc - 3], hdr[rc - 2], hdr[rc - 1]);
    ask(hdr, (size_t)rc, 1, "[2001:db8::1]:1000", proxy);
}

static void test_tcp_local(void **state)
{
    uint8_t hdr[64];
    ssize_t n;

    (void)state;
    server_start(AF_INET, 0, NULL);
    n = pp_build_v2(hdr, sizeof(hdr), PP2_CMD_LOCAL, 0, NULL, NULL);
    assert_int_equal(n, 16);
    ask(hdr, 16, 1, NULL,
        "{\"version\":2,\"command\":\"local\",\"family\":\"unspec\",\"length\":16,\"tlvs\":[]}");
}

static void test_tcp_optional_no_header(void **state)
{
    static const char get[] = "GET / HTTP/1.0\r\n\r\n";
    static const char post[] = "POST / HTTP/1.0\r\n\r\n";
    long t0;

    (void)state;
    server_start(AF_INET, 0, "--accept-proxy=optional");
    ask(get, sizeof(get) - 1, 0, NULL, "null");
    /* 'P' could start a v1 header until the 'O'. */
    ask(post, sizeof(post) - 1, 0, NULL, "null");
    /* A client that closes its side without a byte: answered at once. */
    ask(NULL, 0, 1, NULL, "null");
    /* A silent client (server-speaks-first): answered after the quiet period. */
    t0 = now_ms();
    ask(NULL, 0, 0, NULL, "null");
    assert_true(now_ms() - t0 >= 900);
}

static void test_tcp_garbage(void **state)
{
    static const uint8_t badver[16] = "\r\n\r\n\0\r\nQUIT\n\x31\x11\x00\x0c";
    static const char badv1[] = "PROXY TCP4 x\r\n";
    char long_v1[200];

    (void)state;
    server_start(AF_INET, 0, NULL);
    ask(badv1, sizeof(badv1) - 1, 0, NULL, NULL);
    ask(badver, sizeof(badver), 0, NULL, NULL);
    memset(long_v1, 'A', sizeof(long_v1));
    memcpy(long_v1, "PROXY TCP4 ", 11);
    ask(long_v1, sizeof(long_v1), 0, NULL, NULL);
    /* A header cut short by EOF is not "no header". */
    ask("PROXY TCP4 1.2", 14, 1, NULL, NULL);
    assert_non_null(strstr(server_log(), "\"proxy_header_refused\""));
}

static void test_tcp_required(void **state)
{
    static const char get[] = "GET / HTTP/1.0\r\n\r\n";
    uint8_t hdr[PP_V1_MAX_LEN];
    size_t n;
    long t0;

    (void)state;
    server_start(AF_INET, 0, "--accept-proxy=required");
    ask(get, sizeof(get) - 1, 0, NULL, NULL);
    ask(NULL, 0, 1, NULL, NULL);
    n = build_v1(hdr, "192.0.2.10", 51234, "198.51.100.1", 443);
    ask(hdr, n, 0, "192.0.2.10:51234", v1_proxy);
    /* Silence is no header: closed at the 5 s header timeout. */
    t0 = now_ms();
    ask(NULL, 0, 0, NULL, NULL);
    assert_true(now_ms() - t0 >= 4500);
    assert_non_null(strstr(server_log(), "PROXY header timeout"));
}

static void test_tcp_off(void **state)
{
    uint8_t hdr[PP_V1_MAX_LEN];
    size_t n;

    (void)state;
    server_start(AF_INET, 0, "--accept-proxy=off");
    n = build_v1(hdr, "192.0.2.10", 51234, "198.51.100.1", 443);
    ask(hdr, n, 0, NULL, "null");
    ask(NULL, 0, 0, NULL, "null");
}

static void test_tcp_ipv6(void **state)
{
    uint8_t hdr[PP_V1_MAX_LEN];
    char proxy[512];
    size_t n;

    (void)state;
    server_start(AF_INET6, 0, NULL);
    n = build_v1(hdr, "2001:db8::10", 5000, "2001:db8::1", 80);
    snprintf(proxy, sizeof(proxy),
             "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\","
             "\"src\":\"[2001:db8::10]:5000\",\"dst\":\"[2001:db8::1]:80\",\"length\":%zu,"
             "\"tlvs\":[]}",
             n);
    ask(hdr, n, 0, "[2001:db8::10]:5000", proxy);
    ask(NULL, 0, 1, NULL, "null");
}

/* All connections open before any sends: the server must hold them all
 * in the header phase at once, then answer each its own line. */
static void test_tcp_concurrent(void **state)
{
    static char got[CONNS][1024], want[1024];
    char client[64], proxy[512];
    uint8_t hdr[PP_V1_MAX_LEN];
    int fds[CONNS];
    size_t n;

    (void)state;
    server_start(AF_INET, 0, "--accept-proxy=required");
    for (int i = 0; i < CONNS; i++)
        fds[i] = tcp_connect();
    for (int i = 0; i < CONNS; i++) {
        n = build_v1(hdr, "192.0.2.10", (uint16_t)(10000 + i), "198.51.100.1", 443);
        send_all(fds[i], hdr, n);
    }
    for (int i = 0; i < CONNS; i++) {
        assert_true(read_all(fds[i], got[i], sizeof(got[i]), ANSWER_MS) > 0);
        snprintf(client, sizeof(client), "192.0.2.10:%d", 10000 + i);
        snprintf(proxy, sizeof(proxy),
                 "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp4\",\"src\":\"%s\","
                 "\"dst\":\"198.51.100.1:443\",\"length\":%zu,\"tlvs\":[]}",
                 client, n);
        expect(want, sizeof(want), fds[i], client, proxy);
        assert_string_equal(got[i], want);
        close(fds[i]);
    }
}

/* ---- UDP ----------------------------------------------------------------- */

static int udp_socket(void)
{
    int fd = socket(srv.family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct sockaddr_storage ss;
    socklen_t len = server_addr(&ss);

    assert_true(fd != -1);
    assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
    return fd;
}

/* Sends one datagram and checks the answer, or that none comes within
 * ms when proxy is NULL. */
static void udp_ask(int fd, const void *p, size_t len, const char *client, const char *proxy,
                    long ms)
{
    static char got[65536], want[65536];
    struct pollfd pfd = {.fd = fd, .events = POLLIN};
    ssize_t n;

    assert_int_equal(send(fd, p, len, 0), (ssize_t)len);
    if (poll(&pfd, 1, (int)ms) != 1) {
        assert_null(proxy);
        return;
    }
    assert_non_null(proxy);
    n = recv(fd, got, sizeof(got) - 1, 0);
    assert_true(n > 0);
    got[n] = '\0';
    expect(want, sizeof(want), fd, client, proxy);
    assert_string_equal(got, want);
}

/* src and dst as IP literals; jsrc and jdst as whoami writes them. Every
 * datagram that expects an answer is padded to UDP_PAD bytes: whoami never
 * answers more bytes than it got (test_udp_no_amplification). */
#define UDP_PAD 1024
static void udp_cases(int family, const char *src, const char *dst, const char *jsrc,
                      const char *jdst)
{
    uint8_t dgram[UDP_PAD];
    char proxy[512];
    size_t n;
    int fd;

    server_start(family, 1, NULL);
    fd = udp_socket();
    memset(dgram, 'q', sizeof(dgram));
    n = build_v2(dgram, sizeof(dgram), SOCK_DGRAM, src, 53000, dst, 53);
    snprintf(proxy, sizeof(proxy),
             "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp%c\",\"src\":\"%s\","
             "\"dst\":\"%s\",\"length\":%zu,\"tlvs\":[]}",
             family == AF_INET ? '4' : '6', jsrc, jdst, n);
    udp_ask(fd, dgram, sizeof(dgram), jsrc, proxy, ANSWER_MS);
    memset(dgram, 'q', sizeof(dgram));
    udp_ask(fd, dgram, sizeof(dgram), NULL, "null", ANSWER_MS);
    /* v1 is not defined for datagrams: dropped, and the server goes on. */
    n = build_v1(dgram, "192.0.2.10", 51234, "198.51.100.1", 443);
    udp_ask(fd, dgram, n, NULL, NULL, 300);
    /* A v2 header cut short: dropped. */
    memcpy(dgram, PP_V2_SIG "\x21\x12", 14);
    udp_ask(fd, dgram, 14, NULL, NULL, 300);
    memset(dgram, 'q', sizeof(dgram));
    udp_ask(fd, dgram, sizeof(dgram), NULL, "null", ANSWER_MS);
    close(fd);
}

/* ---- non-loopback peers: a network namespace of the test's own ---------- */

/* The addresses given to lo in the namespace: documentation prefixes, so
 * that a peer there is on no loopback range, yet nothing leaves the host. */
#define NS_IP4 "192.0.2.1"
#define NS_IP6 "2001:db8::1"

static int netns_home = -1;    /* the namespace the test started in */
static const char *netns_skip; /* why the namespace could not be made */
static char netns_why[160];

/* in6_ifreq of <linux/ipv6.h>, which clashes with <netinet/in.h>. */
struct ifreq6 {
    struct in6_addr addr;
    uint32_t prefixlen;
    int ifindex;
};

/* In the new namespace: lo up, NS_IP4/32 and NS_IP6/128 on it. Returns 0
 * or -1 with netns_why set. */
static int netns_addresses(void)
{
    int fd4 = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    int fd6 = socket(AF_INET6, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    struct ifreq ifr;
    struct ifreq6 r6 = {.prefixlen = 128};
    struct sockaddr_in *sin = (struct sockaddr_in *)&ifr.ifr_addr;
    const char *step = "socket";
    int rc = -1;

    if (fd4 == -1 || fd6 == -1)
        goto out;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo");
    step = "lo up";
    if (ioctl(fd4, SIOCGIFFLAGS, &ifr) == -1)
        goto out;
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(fd4, SIOCSIFFLAGS, &ifr) == -1)
        goto out;
    memset(&ifr, 0, sizeof(ifr));
    strcpy(ifr.ifr_name, "lo:1");
    sin->sin_family = AF_INET;
    inet_pton(AF_INET, NS_IP4, &sin->sin_addr);
    step = "add " NS_IP4;
    if (ioctl(fd4, SIOCSIFADDR, &ifr) == -1)
        goto out;
    inet_pton(AF_INET, "255.255.255.255", &sin->sin_addr);
    if (ioctl(fd4, SIOCSIFNETMASK, &ifr) == -1)
        goto out;
    inet_pton(AF_INET6, NS_IP6, &r6.addr);
    r6.ifindex = (int)if_nametoindex("lo");
    step = "add " NS_IP6; /* lo does no duplicate detection: usable at once */
    if (ioctl(fd6, SIOCSIFADDR, &r6) == -1)
        goto out;
    rc = 0;
out:
    if (rc != 0)
        snprintf(netns_why, sizeof(netns_why), "%s: %s", step, strerror(errno));
    if (fd4 != -1)
        close(fd4);
    if (fd6 != -1)
        close(fd6);
    return rc;
}

/* Moves this (single-threaded) test process into a network namespace of
 * its own, where lo also carries NS_IP4 and NS_IP6: peers there that are
 * not loopback, without touching the host's network. The whoami it starts
 * inherits the namespace. Not root (or no namespaces): the test SKIPs. */
static int setup_netns(void **state)
{
    if (setup(state) != 0)
        return -1;
    netns_skip = NULL;
    if (geteuid() != 0) {
        netns_skip = "needs root, for a network namespace with a non-loopback address";
        return 0;
    }
    netns_home = open("/proc/self/ns/net", O_RDONLY | O_CLOEXEC);
    if (netns_home == -1 || unshare(CLONE_NEWNET) == -1) {
        snprintf(netns_why, sizeof(netns_why), "unshare(CLONE_NEWNET): %s", strerror(errno));
        netns_skip = netns_why;
        return 0;
    }
    if (netns_addresses() != 0)
        return -1; /* in a namespace of our own, yet cannot set it up: fail */
    return 0;
}

/* Stops the server, then back to the namespace the test started in (the
 * new one goes with its last process). */
static int teardown_netns(void **state)
{
    int rc = teardown(state);

    if (netns_home != -1) {
        if (setns(netns_home, CLONE_NEWNET) == -1) {
            fprintf(stderr, "setns back: %s\n", strerror(errno));
            rc = -1;
        }
        close(netns_home);
        netns_home = -1;
    }
    return rc;
}

static void netns_or_skip(void)
{
    if (netns_skip != NULL) {
        fprintf(stderr, "SKIP: %s\n", netns_skip);
        skip();
    }
}

/* The amplification guard, seen from the client on fd (not on loopback): a
 * short query, an empty datagram and a bare header get no answer, and the
 * log says so; a datagram as long as the answer is answered, one byte
 * shorter is not. */
static void no_amplification(int fd)
{
    uint8_t dgram[UDP_PAD];
    char got[2048];
    size_t n;
    ssize_t k;

    udp_ask(fd, "query", 5, NULL, NULL, 300);
    udp_ask(fd, "", 0, NULL, NULL, 300);
    n = build_v2(dgram, sizeof(dgram), SOCK_DGRAM, "192.0.2.10", 1, "198.51.100.1", 2);
    udp_ask(fd, dgram, n, NULL, NULL, 300);
    assert_non_null(strstr(server_log(), "whoami_answer_dropped"));
    assert_non_null(strstr(server_log(), "answer longer than the datagram"));
    /* Exactly as long as the answer: answered, and no byte more. */
    memset(dgram, 'q', sizeof(dgram));
    assert_int_equal(send(fd, dgram, sizeof(dgram), 0), (ssize_t)sizeof(dgram));
    struct pollfd p = {.fd = fd, .events = POLLIN};
    assert_int_equal(poll(&p, 1, ANSWER_MS), 1);
    k = recv(fd, got, sizeof(got), 0);
    assert_true(k > 0 && k < (ssize_t)sizeof(dgram));
    assert_int_equal(send(fd, dgram, (size_t)k, 0), k);
    assert_int_equal(poll(&p, 1, ANSWER_MS), 1);
    assert_int_equal(recv(fd, got, sizeof(got), 0), k);
    assert_int_equal(send(fd, dgram, (size_t)k - 1, 0), k - 1);
    assert_int_equal(poll(&p, 1, 300), 0);
}

/* An answer longer than the datagram is never sent to a peer that is not
 * on loopback (a forged source would turn whoami into an amplifier): here
 * NS_IP4 on an IPv4 socket, in a namespace of the test's own. */
static void test_udp_no_amplification(void **state)
{
    int fd;

    (void)state;
    netns_or_skip();
    srv.to = NS_IP4;
    server_start_at(NS_IP4, AF_INET, 1, NULL);
    fd = udp_socket();
    no_amplification(fd);
    close(fd);
}

/* The same on a dual-stack ":PORT" socket: NS_IP6, and NS_IP4 seen as
 * ::ffff:192.0.2.1 (IPv4-mapped, but not loopback) get no longer answer. */
static void test_udp_no_amplification_dual(void **state)
{
    int fd;

    (void)state;
    netns_or_skip();
    srv.to = NS_IP6;
    server_start_at("", AF_INET6, 1, NULL);
    fd = udp_socket();
    no_amplification(fd);
    close(fd);
    srv.family = AF_INET;
    srv.to = NS_IP4;
    fd = udp_socket();
    no_amplification(fd);
    close(fd);
    /* Four drops for each client, the IPv4 one's peer logged as IPv4 (the
     * log shows an IPv4-mapped address as the IPv4 one). */
    assert_non_null(strstr(server_log(), "\"peer\":\"" NS_IP4 ":"));
    assert_non_null(strstr(server_log(), "\"peer\":\"[" NS_IP6 "]:"));
    const char *at = server_log();
    int drops = 0;
    while ((at = strstr(at, "\"whoami_answer_dropped\"")) != NULL && drops < 100)
        at++, drops++;
    assert_int_equal(drops, 8);
}

/* A peer on loopback cannot be forged from another host: whoami answers it
 * whatever the datagram's size (a short query, an empty datagram, a bare
 * header), from 127.0.0.1, from elsewhere in 127.0.0.0/8, and from ::1. */
static void loopback_short(int family)
{
    uint8_t dgram[256];
    char proxy[512];
    size_t n;
    int fd;

    server_start(family, 1, NULL);
    fd = udp_socket();
    udp_ask(fd, "ping", 4, NULL, "null", ANSWER_MS);
    udp_ask(fd, "", 0, NULL, "null", ANSWER_MS);
    n = build_v2(dgram, sizeof(dgram), SOCK_DGRAM, "192.0.2.10", 1, "198.51.100.1", 2);
    snprintf(proxy, sizeof(proxy),
             "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp4\",\"src\":\"192.0.2.10:1\","
             "\"dst\":\"198.51.100.1:2\",\"length\":%zu,\"tlvs\":[]}",
             n);
    udp_ask(fd, dgram, n, "192.0.2.10:1", proxy, ANSWER_MS);
    close(fd);
    if (family == AF_INET) {
        struct sockaddr_storage ss;
        socklen_t len = loopback(AF_INET, 0, &ss);

        fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
        assert_true(fd != -1);
        inet_pton(AF_INET, "127.0.0.2", &((struct sockaddr_in *)&ss)->sin_addr);
        assert_int_equal(bind(fd, (struct sockaddr *)&ss, len), 0);
        len = loopback(AF_INET, srv.port, &ss);
        assert_int_equal(connect(fd, (struct sockaddr *)&ss, len), 0);
        udp_ask(fd, "ping", 4, NULL, "null", ANSWER_MS);
        close(fd);
    }
    assert_null(strstr(server_log(), "whoami_answer_dropped"));
}

static void test_udp_loopback_short(void **state)
{
    (void)state;
    loopback_short(AF_INET);
}

static void test_udp_loopback_short_ipv6(void **state)
{
    (void)state;
    loopback_short(AF_INET6);
}

/* "whoami :PORT" (no host, as a route's "tcp://:PORT") listens on every
 * address, IPv4 and IPv6 on one socket; an IPv4 client is shown as IPv4.
 * On UDP, 127.0.0.1 arrives as ::ffff:127.0.0.1: loopback, so a short
 * datagram is answered. */
static void test_any_address(void **state)
{
    int fd;

    (void)state;
    server_start_at("", AF_INET, 0, NULL);
    assert_non_null(strstr(server_log(), "\"listen\":\"[::]:"));
    ask(NULL, 0, 1, NULL, "null");
    srv.family = AF_INET6;
    ask(NULL, 0, 1, NULL, "null");
    assert_int_equal(teardown(state), 0);
    assert_int_equal(setup(state), 0);
    server_start_at("", AF_INET, 1, NULL);
    fd = udp_socket();
    udp_ask(fd, "ping", 4, NULL, "null", ANSWER_MS);
    close(fd);
    srv.family = AF_INET6;
    fd = udp_socket();
    udp_ask(fd, "ping", 4, NULL, "null", ANSWER_MS);
    close(fd);
    assert_null(strstr(server_log(), "whoami_answer_dropped"));
}

static void test_udp(void **state)
{
    (void)state;
    udp_cases(AF_INET, "192.0.2.10", "198.51.100.1", "192.0.2.10:53000", "198.51.100.1:53");
}

static void test_udp_ipv6(void **state)
{
    (void)state;
    udp_cases(AF_INET6, "2001:db8::10", "2001:db8::1", "[2001:db8::10]:53000", "[2001:db8::1]:53");
}

static void test_udp_required(void **state)
{
    uint8_t dgram[UDP_PAD];
    size_t n;
    int fd;

    (void)state;
    server_start(AF_INET, 1, "--accept-proxy=required");
    fd = udp_socket();
    udp_ask(fd, "query", 5, NULL, NULL, 300);
    n = build_v2(dgram, sizeof(dgram), SOCK_DGRAM, "192.0.2.10", 1, "198.51.100.1", 2);
    n = add_tlv(dgram, sizeof(dgram), n, PP2_TYPE_AUTHORITY, "dns.example");
    memset(dgram + n, 'q', sizeof(dgram) - n);
    udp_ask(fd, dgram, sizeof(dgram), "192.0.2.10:1",
            "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp4\",\"src\":\"192.0.2.10:1\","
            "\"dst\":\"198.51.100.1:2\",\"length\":42,\"tlvs\":[{\"type\":2,\"name\":"
            "\"authority\",\"value\":\"dns.example\",\"hex\":\"646e732e6578616d706c65\"}]}",
            ANSWER_MS);
    close(fd);
}

/* ---- command line -------------------------------------------------------- */

/* Runs whoami with bad arguments: exit 1 and a message, without listening. */
static void usage_fails(const char *a, const char *b)
{
    static struct args args;

    memset(&args, 0, sizeof(args));
    args_add(&args, ppfwd_path());
    args_add(&args, "whoami");
    args_add(&args, a);
    args_add(&args, b);
    spawn(args.argv);
    assert_int_equal(reap(STOP_MS), 1);
    assert_non_null(strstr(server_log(), "ppfwd: whoami: "));
}

static void test_usage(void **state)
{
    (void)state;
    usage_fails("--accept-proxy=maybe", "127.0.0.1:0");
    usage_fails("localhost:80", NULL);
    usage_fails("127.0.0.1:1", "extra");
    usage_fails(":65536", NULL); /* no host is every address, but a port is needed */
    usage_fails(":", NULL);
    usage_fails("--bogus", "127.0.0.1:0");
    usage_fails(NULL, NULL);
}

/* ---- fixtures ------------------------------------------------------------ */

static int setup(void **state)
{
    int fd;

    (void)state;
    memset(&srv, 0, sizeof(srv));
    strcpy(srv.log, "/tmp/test_whoami.XXXXXX");
    fd = mkostemp(srv.log, O_CLOEXEC);
    if (fd == -1)
        return -1;
    close(fd);
    return 0;
}

/* Stops the server and requires a clean exit: 0 after SIGTERM, which an
 * ASan child would turn into 1 on a leak or an error. */
static int teardown(void **state)
{
    int rc = 0;

    (void)state;
    if (srv.pid > 0) {
        kill(srv.pid, SIGTERM);
        rc = reap(STOP_MS);
        if (rc == -1) {
            kill(srv.pid, SIGKILL);
            reap(STOP_MS);
        }
        if (rc != 0)
            fprintf(stderr, "whoami exited with %d:\n%s\n", rc, server_log());
    }
    unlink(srv.log);
    return rc == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_tcp_v1, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_v2_tlvs, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_local, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_optional_no_header, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_garbage, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_off, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_tcp_concurrent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_required, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_loopback_short, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_loopback_short_ipv6, setup, teardown),
        cmocka_unit_test_setup_teardown(test_any_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_udp_no_amplification, setup_netns, teardown_netns),
        cmocka_unit_test_setup_teardown(test_udp_no_amplification_dual, setup_netns,
                                        teardown_netns),
        cmocka_unit_test_setup_teardown(test_usage, setup, teardown),
    };

    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
