/*
 * test_cli.c - runs the ppfwd binary ($PPFWD, default build/asan/ppfwd) the way
 * users and scripts do: arguments, bytes on stdin, then the exit status and
 * exactly what came out on stdout and stderr.
 *
 * Every run has a deadline (RUN_TIMEOUT_MS) and the child is killed past it,
 * so a hanging binary fails the test instead of stalling the suite.
 */
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>

#include <proxyproto.h>

#define RUN_TIMEOUT_MS 30000
#define MAX_ARGS 32

struct run {
    int status; /* exit code; 128 + signal if killed; -1 on timeout */
    uint8_t *out;
    size_t out_len;
    char *err; /* NUL-terminated */
    size_t err_len;
};

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

/* Appends what is readable on fd to *buf; returns 0 at EOF, 1 otherwise. */
static int drain(int fd, uint8_t **buf, size_t *len)
{
    uint8_t chunk[65536];
    ssize_t n = read(fd, chunk, sizeof(chunk));

    if (n == -1)
        return errno == EINTR || errno == EAGAIN ? 1 : 0;
    if (n == 0)
        return 0;
    *buf = realloc(*buf, *len + (size_t)n + 1);
    assert_non_null(*buf);
    memcpy(*buf + *len, chunk, (size_t)n);
    *len += (size_t)n;
    (*buf)[*len] = '\0';
    return 1;
}

/* The child must hold no other end of its pipes, or it would never see EOF
 * on stdin (nor the parent on stdout); descriptors 0-2 are its own. */
static void child(const int pin[2], const int pout[2], const int perr[2], char **argv)
{
    const int fds[] = {pin[0], pin[1], pout[0], pout[1], perr[0], perr[1]};
    size_t i;

    if (dup2(pin[0], STDIN_FILENO) == -1 || dup2(pout[1], STDOUT_FILENO) == -1 ||
        dup2(perr[1], STDERR_FILENO) == -1)
        _exit(127);
    for (i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
        if (fds[i] > STDERR_FILENO)
            close(fds[i]);
    execv(argv[0], argv);
    _exit(127);
}

/* Feeds in[0..in_len) and collects stdout/stderr until both close or the
 * deadline passes. Returns 0, or -1 on timeout. */
static int pump(int fin, int fout, int ferr, const uint8_t *in, size_t in_len, struct run *r)
{
    long deadline = now_ms() + RUN_TIMEOUT_MS;
    size_t off = 0;
    ssize_t n;
    struct pollfd p[3];

    p[0] = (struct pollfd){.fd = in_len > 0 ? fin : -1, .events = POLLOUT};
    p[1] = (struct pollfd){.fd = fout, .events = POLLIN};
    p[2] = (struct pollfd){.fd = ferr, .events = POLLIN};
    if (in_len == 0)
        close(fin);
    while (p[1].fd != -1 || p[2].fd != -1) {
        long left = deadline - now_ms();

        if (left <= 0)
            return -1;
        if (poll(p, 3, (int)left) == -1 && errno != EINTR)
            return -1;
        if (p[0].fd != -1 && p[0].revents != 0) {
            n = write(fin, in + off, in_len - off);
            if (n > 0)
                off += (size_t)n;
            /* EPIPE: ppfwd stopped reading once it knew the answer. */
            if ((n == -1 && errno != EAGAIN && errno != EINTR) || off == in_len) {
                close(fin);
                p[0].fd = -1;
            }
        }
        if (p[1].fd != -1 && p[1].revents != 0 && !drain(fout, &r->out, &r->out_len))
            p[1].fd = -1;
        if (p[2].fd != -1 && p[2].revents != 0 && !drain(ferr, (uint8_t **)&r->err, &r->err_len))
            p[2].fd = -1;
    }
    if (p[0].fd != -1)
        close(fin);
    return 0;
}

static void run_free(struct run *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

/* Runs ppfwd with args (NULL-terminated) and stdin in[0..in_len). */
static void run_ppfwd(struct run *r, const char *const *args, const void *in, size_t in_len)
{
    char *argv[MAX_ARGS + 2];
    int pin[2], pout[2], perr[2], st, timed_out;
    size_t i;
    pid_t pid;

    memset(r, 0, sizeof(*r));
    argv[0] = (char *)(uintptr_t)ppfwd_path();
    for (i = 0; args[i] != NULL; i++) {
        assert_true(i < MAX_ARGS);
        argv[i + 1] = (char *)(uintptr_t)args[i];
    }
    argv[i + 1] = NULL;
    assert_int_equal(pipe(pin), 0);
    assert_int_equal(pipe(pout), 0);
    assert_int_equal(pipe(perr), 0);
    pid = fork();
    assert_true(pid != -1);
    if (pid == 0)
        child(pin, pout, perr, argv);
    close(pin[0]);
    close(pout[1]);
    close(perr[1]);
    fcntl(pin[1], F_SETFL, O_NONBLOCK);
    timed_out = pump(pin[1], pout[0], perr[0], in, in_len, r) != 0;
    if (timed_out)
        kill(pid, SIGKILL);
    close(pout[0]);
    close(perr[0]);
    assert_int_equal(waitpid(pid, &st, 0), pid);
    r->status = timed_out ? -1 : WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    if (r->err == NULL)
        r->err = calloc(1, 1);
    if (timed_out || r->status >= 128)
        fprintf(stderr, "ppfwd %s: status %d, stderr: %s\n", args[0] ? args[0] : "", r->status,
                r->err);
}

static size_t unhex(const char *hex, uint8_t *out, size_t cap)
{
    size_t n = 0;
    unsigned v;

    for (; hex[0] != '\0' && hex[1] != '\0'; hex += 2) {
        assert_int_equal(sscanf(hex, "%2x", &v), 1);
        assert_true(n < cap);
        out[n++] = (uint8_t)v;
    }
    return n;
}

/* ---- expectations ------------------------------------------------------- */

/* Decodes in[0..len) from stdin and expects exit 0 and exactly json + '\n'. */
static void expect_decode(const void *in, size_t len, const char *json)
{
    static const char *const args[] = {"decode", NULL};
    struct run r;

    run_ppfwd(&r, args, in, len);
    if (r.status != 0)
        fprintf(stderr, "stderr: %s\n", r.err);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out, json);
    assert_int_equal(r.out_len, strlen(json));
    assert_string_equal(r.err, "");
    run_free(&r);
}

static void expect_decode_hex(const char *hex, const char *json_line)
{
    uint8_t buf[512];
    size_t n = unhex(hex, buf, sizeof(buf));

    expect_decode(buf, n, json_line);
}

/* Expects a failure with this exit status, nothing on stdout and stderr
 * containing each of the NULL-terminated needles. */
static void expect_fail(const char *const *args, const void *in, size_t len, int status, ...)
{
    const char *needle;
    struct run r;
    va_list ap;

    run_ppfwd(&r, args, in, len);
    if (r.status != status)
        fprintf(stderr, "%s ...: stderr: %s\n", args[0] ? args[0] : "", r.err);
    assert_int_equal(r.status, status);
    assert_int_equal(r.out_len, 0);
    assert_true(r.err_len > 0);
    va_start(ap, status);
    while ((needle = va_arg(ap, const char *)) != NULL) {
        if (strstr(r.err, needle) == NULL)
            fprintf(stderr, "missing '%s' in stderr: %s\n", needle, r.err);
        assert_non_null(strstr(r.err, needle));
    }
    va_end(ap);
    run_free(&r);
}

/* Runs encode with args, expects success, and returns the header bytes. */
static size_t encode(const char *const *args, uint8_t **out)
{
    struct run r;
    size_t n;

    run_ppfwd(&r, args, NULL, 0);
    if (r.status != 0)
        fprintf(stderr, "encode: stderr: %s\n", r.err);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_true(r.out_len > 0);
    *out = r.out;
    n = r.out_len;
    r.out = NULL;
    run_free(&r);
    return n;
}

/* encode | decode must print exactly json (plus '\n'). */
static void expect_roundtrip(const char *const *args, const char *json)
{
    uint8_t *hdr;
    size_t n = encode(args, &hdr);

    expect_decode(hdr, n, json);
    free(hdr);
}

static void expect_encode_bytes(const char *const *args, const char *hex)
{
    uint8_t want[512], *got;
    size_t n = unhex(hex, want, sizeof(want)), len = encode(args, &got);

    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    free(got);
}

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NEEDLES(...) __VA_ARGS__, (const char *)NULL

/* ---- vectors (PROXY-PROTOCOL.md section 12) ------------------------------ */

#define V2_SIG "0d0a0d0a000d0a515549540a"
#define ADDRS4 "c0a80001c0a8000bdc0401bb"
#define SSL_VALUE                                                                                  \
    "0700000000210007544c5376312e3322000e636c69656e742e6578616d706c65230016544c535f4145535f3132"   \
    "385f47434d5f534841323536"

struct vector {
    const char *hex;
    const char *json; /* decode's output for a valid vector; NULL for invalid */
};

#define J_PROXY4 "\"command\":\"proxy\",\"family\":\"tcp4\""
#define J_ADDRS4 "\"src\":\"192.168.0.1:56324\",\"dst\":\"192.168.0.11:443\""

static const struct vector valid[] = {
    {V2_SIG "20000000",
     "{\"version\":2,\"command\":\"local\",\"family\":\"unspec\",\"length\":16,\"tlvs\":[]}\n"},
    {V2_SIG "2011000c0a0000010a000002045708ae",
     "{\"version\":2,\"command\":\"local\",\"family\":\"tcp4\",\"length\":28,\"tlvs\":[]}\n"},
    {V2_SIG "2111000c7f0000017f000001ca2b0401",
     "{\"version\":2," J_PROXY4 ",\"src\":\"127.0.0.1:51755\",\"dst\":\"127.0.0.1:1025\","
     "\"length\":28,\"tlvs\":[]}\n"},
    {V2_SIG "2112000c7f0000017f000001ca2b0401",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp4\",\"src\":\"127.0.0.1:51755\","
     "\"dst\":\"127.0.0.1:1025\",\"length\":28,\"tlvs\":[]}\n"},
    {V2_SIG "2121002420010db800000000000000000000000120010db8000000000000000000000002dc0401bb",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\",\"src\":\"[2001:db8::1]:56324\","
     "\"dst\":\"[2001:db8::2]:443\",\"length\":52,\"tlvs\":[]}\n"},
    {V2_SIG "2122002420010db800000000000000000000000120010db8000000000000000000000002dc0401bb",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp6\",\"src\":\"[2001:db8::1]:56324\","
     "\"dst\":\"[2001:db8::2]:443\",\"length\":52,\"tlvs\":[]}\n"},
    {V2_SIG "211100137f0000017f000001ca2b04010300043442e161",
     "{\"version\":2," J_PROXY4 ",\"src\":\"127.0.0.1:51755\",\"dst\":\"127.0.0.1:1025\","
     "\"length\":35,\"tlvs\":[{\"type\":3,\"name\":\"crc32c\",\"hex\":\"3442e161\"}]}\n"},
    {V2_SIG "2121002b0000000000000000000000000000000100000000000000000000000000000001cf8f0401"
            "030004fd16ee60",
     "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\",\"src\":\"[::1]:53135\","
     "\"dst\":\"[::1]:1025\",\"length\":59,"
     "\"tlvs\":[{\"type\":3,\"name\":\"crc32c\",\"hex\":\"fd16ee60\"}]}\n"},
    {V2_SIG "21110021" ADDRS4 "02000b6578616d706c652e636f6d030004bb56885c",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":49,\"tlvs\":["
     "{\"type\":2,\"name\":\"authority\",\"value\":\"example.com\","
     "\"hex\":\"6578616d706c652e636f6d\"},"
     "{\"type\":3,\"name\":\"crc32c\",\"hex\":\"bb56885c\"}]}\n"},
    {V2_SIG "2111002e" ADDRS4 "010002683202000b6578616d706c652e636f6d040000050009636f6e6e2d"
            "30303031",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":62,\"tlvs\":["
     "{\"type\":1,\"name\":\"alpn\",\"value\":\"h2\",\"hex\":\"6832\"},"
     "{\"type\":2,\"name\":\"authority\",\"value\":\"example.com\","
     "\"hex\":\"6578616d706c652e636f6d\"},"
     "{\"type\":4,\"name\":\"noop\",\"hex\":\"\"},"
     "{\"type\":5,\"name\":\"unique-id\",\"hex\":\"636f6e6e2d30303031\"}]}\n"},
    {V2_SIG "21110048" ADDRS4 "200039" SSL_VALUE,
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":88,\"tlvs\":["
     "{\"type\":32,\"name\":\"ssl\",\"hex\":\"" SSL_VALUE "\","
     "\"ssl\":{\"client\":7,\"verify\":0,\"version\":\"TLSv1.3\",\"cn\":\"client.example\","
     "\"cipher\":\"TLS_AES_128_GCM_SHA256\"}}]}\n"},
    {V2_SIG "21110026" ADDRS4 "ea001701767063652d3031323334353637383961626364656630",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":54,\"tlvs\":["
     "{\"type\":234,\"name\":\"aws\",\"value\":\"vpce-0123456789abcdef0\","
     "\"hex\":\"01767063652d3031323334353637383961626364656630\"}]}\n"},
    {V2_SIG "21110014" ADDRS4 "ee00050178563412",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":36,\"tlvs\":["
     "{\"type\":238,\"name\":\"azure\",\"value\":305419896,\"hex\":\"0178563412\"}]}\n"},
    {V2_SIG "21110017" ADDRS4 "e000080102030405060708",
     "{\"version\":2," J_PROXY4 "," J_ADDRS4 ",\"length\":39,\"tlvs\":["
     "{\"type\":224,\"name\":\"gcp\",\"value\":\"72623859790382856\","
     "\"hex\":\"0102030405060708\"}]}\n"},
};

static const char *const valid_v1[][2] = {
    {"PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\r\n",
     "{\"version\":1," J_PROXY4 "," J_ADDRS4 ",\"length\":47,\"tlvs\":[]}\n"},
    {"PROXY TCP6 2001:db8::1 2001:db8::2 1234 443\r\n",
     "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\",\"src\":\"[2001:db8::1]:1234\","
     "\"dst\":\"[2001:db8::2]:443\",\"length\":45,\"tlvs\":[]}\n"},
    {"PROXY TCP4 255.255.255.255 255.255.255.255 65535 65535\r\n",
     "{\"version\":1," J_PROXY4 ",\"src\":\"255.255.255.255:65535\","
     "\"dst\":\"255.255.255.255:65535\",\"length\":56,\"tlvs\":[]}\n"},
    {"PROXY UNKNOWN\r\n",
     "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,\"tlvs\":[]}\n"},
    {"PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff ffff:ffff:ffff:ffff:ffff:ffff:ffff:"
     "ffff 65535 65535\r\n",
     "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":107,\"tlvs\":[]}\n"},
    {"PROXY TCP4 1.2.3.4 5.6.7.8 0 0\r\n",
     "{\"version\":1," J_PROXY4 ",\"src\":\"1.2.3.4:0\",\"dst\":\"5.6.7.8:0\",\"length\":32,"
     "\"tlvs\":[]}\n"},
    {"PROXY TCP6 ::ffff:192.168.0.1 2001:db8::2 56324 443\r\n",
     "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\","
     "\"src\":\"[::ffff:192.168.0.1]:56324\",\"dst\":\"[2001:db8::2]:443\",\"length\":53,"
     "\"tlvs\":[]}\n"},
};

static const char *const invalid_hex[] = {
    V2_SIG "1111000c7f0000017f00000100010002",
    V2_SIG "2211000c7f0000017f00000100010002",
    V2_SIG "2113000c7f0000017f00000100010002",
    V2_SIG "2141000c7f0000017f00000100010002",
    V2_SIG "21120000",
    V2_SIG "2111000b7f0000017f000001000100",
    V2_SIG "211100137f0000017f0000010001000202000a61626364",
    V2_SIG "2111000e7f0000017f000001000100020400",
    V2_SIG "211100137f0000017f000001ca2b04010300043442e160",
    V2_SIG "211100127f0000017f00000100010002030003000000",
    "0d0a0d0a000d0a515549540b2111000c7f0000017f00000100010002",
};

static const char *const invalid_v1[] = {
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443\rX",
    "PROXY TCP4 192.168.0.01 192.168.0.11 56324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 056324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 65536 443\r\n",
    "PROXY TCP4 192.168.0.1  192.168.0.11 56324 443\r\n",
    "PROXY TCP4 192.168.0.1 192.168.0.11 56324 443 \r\n",
    "PROXY TCP4 2001:db8::1 2001:db8::2 1 2\r\n",
    "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP5 1.2.3.4 5.6.7.8 1 2\r\n",
    "proxy tcp4 1.2.3.4 5.6.7.8 1 2\r\n",
    "PROXY TCP4 256.1.1.1 1.1.1.1 1 2\r\n",
    "PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
    ("PROXY UNKNOWN AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
     "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"),
};

/* ---- decode ---------------------------------------------------------------- */

static void test_decode_valid_vectors(void **state)
{
    size_t i;

    (void)state;
    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++)
        expect_decode_hex(valid[i].hex, valid[i].json);
    for (i = 0; i < sizeof(valid_v1) / sizeof(valid_v1[0]); i++)
        expect_decode(valid_v1[i][0], strlen(valid_v1[i][0]), valid_v1[i][1]);
}

static void test_decode_unix(void **state)
{
    uint8_t buf[232];

    (void)state;
    memset(buf, 0, sizeof(buf));
    unhex(V2_SIG "213100d8", buf, 16);
    memcpy(buf + 16, "/run/a.sock", 11);
    memcpy(buf + 16 + 108, "/run/b.sock", 11);
    expect_decode(buf, sizeof(buf),
                  "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-stream\","
                  "\"src\":\"/run/a.sock\",\"dst\":\"/run/b.sock\",\"length\":232,\"tlvs\":[]}\n");
}

/* The header ends where it ends: application bytes after it, a second
 * header included, are neither parsed nor reported. */
static void test_decode_ignores_trailing_data(void **state)
{
    static const char in[] =
        "PROXY UNKNOWN\r\nPROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nGET / HTTP/1.1\r\n";

    (void)state;
    expect_decode(in, sizeof(in) - 1,
                  "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,"
                  "\"tlvs\":[]}\n");
}

/* stderr must carry exactly the library's reason for the rejection. */
static void expect_invalid(const uint8_t *in, size_t len)
{
    static const char *const args[] = {"decode", NULL};
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN, .flags = 0};
    struct pp_header hdr;
    ssize_t rc = pp_parse(in, len, &hdr, &opts);
    char want[256];
    struct run r;

    assert_true(rc < 0);
    snprintf(want, sizeof(want), "ppfwd: decode: %s\n", pp_strerror((int)rc));
    run_ppfwd(&r, args, in, len);
    assert_int_equal(r.status, 1);
    assert_int_equal(r.out_len, 0);
    assert_string_equal(r.err, want);
    run_free(&r);
}

static void test_decode_invalid_vectors(void **state)
{
    uint8_t buf[512];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(invalid_hex) / sizeof(invalid_hex[0]); i++) {
        n = unhex(invalid_hex[i], buf, sizeof(buf));
        expect_invalid(buf, n);
    }
    for (i = 0; i < sizeof(invalid_v1) / sizeof(invalid_v1[0]); i++)
        expect_invalid((const uint8_t *)invalid_v1[i], strlen(invalid_v1[i]));
    n = unhex(invalid_hex[8], buf, sizeof(buf));
    expect_fail(ARGS("decode"), buf, n, 1, NEEDLES("ppfwd: decode: ", "CRC32C"));
}

/* A v2 UNIQUE_ID of 129 bytes: well formed, but over HAProxy's limit. */
static void test_decode_unique_id_too_long(void **state)
{
    uint8_t buf[16 + 12 + 3 + 129];

    (void)state;
    unhex(V2_SIG "211100907f0000017f00000100010002050081", buf, sizeof(buf));
    memset(buf + 31, 'x', 129);
    expect_invalid(buf, sizeof(buf));
}

static void test_decode_garbage(void **state)
{
    static const char http[] = "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    uint8_t noise[4096];
    size_t i;

    (void)state;
    expect_fail(ARGS("decode"), http, sizeof(http) - 1, 1,
                NEEDLES("ppfwd: decode: ", pp_strerror(-PP_EBADSIG)));
    for (i = 0; i < sizeof(noise); i++)
        noise[i] = (uint8_t)(i * 7 + 1);
    expect_fail(ARGS("decode"), noise, sizeof(noise), 1, NEEDLES("ppfwd: decode: "));
    expect_fail(ARGS("decode"), "\0\0\0\0", 4, 1, NEEDLES("ppfwd: decode: "));
}

static void test_decode_empty(void **state)
{
    (void)state;
    expect_fail(ARGS("decode"), NULL, 0, 2, NEEDLES("incomplete"));
    expect_fail(ARGS("decode", "/dev/null"), NULL, 0, 2, NEEDLES("incomplete"));
}

/* Every vector cut short is incomplete (exit 2), never accepted or refused. */
static void expect_truncations(const uint8_t *in, size_t len)
{
    size_t cuts[] = {1, 5, 12, 13, 15, 16, 17, len / 2, len - 2, len - 1};
    size_t i;

    for (i = 0; i < sizeof(cuts) / sizeof(cuts[0]); i++)
        if (cuts[i] > 0 && cuts[i] < len)
            expect_fail(ARGS("decode"), in, cuts[i], 2, NEEDLES("ppfwd: decode: ", "incomplete"));
}

static void test_decode_truncated(void **state)
{
    uint8_t buf[512];
    size_t i, n;

    (void)state;
    for (i = 0; i < sizeof(valid) / sizeof(valid[0]); i++) {
        n = unhex(valid[i].hex, buf, sizeof(buf));
        expect_truncations(buf, n);
    }
    for (i = 0; i < sizeof(valid_v1) / sizeof(valid_v1[0]); i++)
        expect_truncations((const uint8_t *)valid_v1[i][0], strlen(valid_v1[i][0]));
}

static char *write_temp(const void *data, size_t len)
{
    char *path = strdup("/tmp/test_cli.XXXXXX");
    int fd;

    assert_non_null(path);
    fd = mkstemp(path);
    assert_true(fd != -1);
    assert_int_equal(write(fd, data, len), (ssize_t)len);
    close(fd);
    return path;
}

static void test_decode_file(void **state)
{
    static const char line[] = "PROXY TCP4 1.2.3.4 5.6.7.8 1 2\r\nhello";
    static const char json[] = "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp4\","
                               "\"src\":\"1.2.3.4:1\",\"dst\":\"5.6.7.8:2\",\"length\":32,"
                               "\"tlvs\":[]}\n";
    char *path = write_temp(line, sizeof(line) - 1);
    struct run r;

    (void)state;
    run_ppfwd(&r, ARGS("decode", path), "ignored", 7);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out, json);
    run_free(&r);
    run_ppfwd(&r, ARGS("decode", "-"), line, sizeof(line) - 1);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out, json);
    run_free(&r);
    expect_fail(ARGS("decode", path, "extra"), NULL, 0, 1, NEEDLES("extra", "usage:"));
    unlink(path);
    free(path);
    expect_fail(ARGS("decode", "/nonexistent/ppfwd-test"), NULL, 0, 1,
                NEEDLES("/nonexistent/ppfwd-test"));
    expect_fail(ARGS("decode", "/"), NULL, 0, 1, NEEDLES("ppfwd: decode: /"));
}

static void test_decode_options(void **state)
{
    uint8_t buf[64];
    size_t n = unhex(invalid_hex[8], buf, sizeof(buf));
    struct run r;

    (void)state;
    run_ppfwd(&r, ARGS("decode", "--no-crc"), buf, n);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "\"hex\":\"3442e160\""));
    run_free(&r);
    n = unhex(valid[6].hex, buf, sizeof(buf));
    expect_fail(ARGS("decode", "--max-len", "34"), buf, n, 1, NEEDLES(pp_strerror(-PP_ETOOLONG)));
    run_ppfwd(&r, ARGS("decode", "--max-len=35"), buf, n);
    assert_int_equal(r.status, 0);
    run_free(&r);
    expect_fail(ARGS("decode", "--max-len", "15"), NULL, 0, 1, NEEDLES("--max-len"));
    expect_fail(ARGS("decode", "--max-len", "65552"), NULL, 0, 1, NEEDLES("--max-len"));
    expect_fail(ARGS("decode", "--max-len"), NULL, 0, 1, NEEDLES("--max-len", "needs a value"));
    expect_fail(ARGS("decode", "--bogus"), NULL, 0, 1, NEEDLES("unknown option '--bogus'"));
    expect_fail(ARGS("decode", "-z"), NULL, 0, 1, NEEDLES("unknown option '-z'"));
}

/* nginx sends plain IPv4 in TCP6 lines: refused unless asked for. */
static void test_decode_ipv4_in_tcp6(void **state)
{
    static const char line[] = "PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n";
    struct run r;

    (void)state;
    expect_fail(ARGS("decode"), line, sizeof(line) - 1, 1, NEEDLES("ppfwd: decode: "));
    run_ppfwd(&r, ARGS("decode", "--ipv4-in-tcp6"), line, sizeof(line) - 1);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out,
                        "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\","
                        "\"src\":\"[::ffff:1.2.3.4]:1\",\"dst\":\"[::ffff:5.6.7.8]:2\","
                        "\"length\":32,\"tlvs\":[]}\n");
    run_free(&r);
}

/* ---- encode ---------------------------------------------------------------- */

#define SRC4 "--src", "192.0.2.10:51234"
#define DST4 "--dst", "198.51.100.1:443"
#define SRC6 "--src", "[2001:db8::1]:56324"
#define DST6 "--dst", "[2001:db8::2]:443"
#define J_DOC4 "\"src\":\"192.0.2.10:51234\",\"dst\":\"198.51.100.1:443\""
#define J_DOC6 "\"src\":\"[2001:db8::1]:56324\",\"dst\":\"[2001:db8::2]:443\""
#define J_V2_TCP4 "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp4\"," J_DOC4
#define J_LOCAL2 "{\"version\":2,\"command\":\"local\",\"family\":\"unspec\",\"length\":16,"

static void test_roundtrip_families(void **state)
{
    (void)state;
    expect_roundtrip(ARGS("encode", SRC4, DST4), J_V2_TCP4 ",\"length\":28,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--v2", SRC4, DST4, "--udp"),
                     "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp4\"," J_DOC4
                     ",\"length\":28,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", SRC6, DST6),
                     "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\"," J_DOC6
                     ",\"length\":52,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--udp", SRC6, DST6),
                     "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp6\"," J_DOC6
                     ",\"length\":52,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", SRC4, DST6),
                     "{\"version\":2,\"command\":\"proxy\",\"family\":\"tcp6\","
                     "\"src\":\"[::ffff:192.0.2.10]:51234\",\"dst\":\"[2001:db8::2]:443\","
                     "\"length\":52,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", SRC6, DST4, "--udp"),
                     "{\"version\":2,\"command\":\"proxy\",\"family\":\"udp6\","
                     "\"src\":\"[2001:db8::1]:56324\",\"dst\":\"[::ffff:198.51.100.1]:443\","
                     "\"length\":52,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--src", "/run/a.sock", "--dst", "/run/b.sock"),
                     "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-stream\","
                     "\"src\":\"/run/a.sock\",\"dst\":\"/run/b.sock\",\"length\":232,"
                     "\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--udp", "--src", "/a", "--dst", "/b"),
                     "{\"version\":2,\"command\":\"proxy\",\"family\":\"unix-dgram\","
                     "\"src\":\"/a\",\"dst\":\"/b\",\"length\":232,\"tlvs\":[]}\n");
}

static void test_roundtrip_local(void **state)
{
    (void)state;
    expect_roundtrip(ARGS("encode", "--local"), J_LOCAL2 "\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", SRC4, DST4, "--local"), J_LOCAL2 "\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--local", "--udp", SRC6, DST6), J_LOCAL2 "\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--local", "--tlv", "authority=x"),
                     "{\"version\":2,\"command\":\"local\",\"family\":\"unspec\",\"length\":20,"
                     "\"tlvs\":[{\"type\":2,\"name\":\"authority\",\"value\":\"x\","
                     "\"hex\":\"78\"}]}\n");
    expect_roundtrip(ARGS("encode", "--v1", "--local"),
                     "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,"
                     "\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--v1", "--local", SRC4, DST4),
                     "{\"version\":1,\"command\":\"local\",\"family\":\"unspec\",\"length\":15,"
                     "\"tlvs\":[]}\n");
}

static void test_roundtrip_v1(void **state)
{
    (void)state;
    expect_roundtrip(ARGS("encode", "--v1", SRC4, DST4),
                     "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp4\"," J_DOC4
                     ",\"length\":46,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--v1", SRC6, DST6),
                     "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\"," J_DOC6
                     ",\"length\":46,\"tlvs\":[]}\n");
    expect_roundtrip(ARGS("encode", "--v1", SRC4, DST6),
                     "{\"version\":1,\"command\":\"proxy\",\"family\":\"tcp6\","
                     "\"src\":\"[::ffff:192.0.2.10]:51234\",\"dst\":\"[2001:db8::2]:443\","
                     "\"length\":52,\"tlvs\":[]}\n");
}

/* One TLV after the 28-byte TCP4 header, decoded back as tlv_json. */
static void expect_tlv(const char *spec, size_t len, const char *tlv_json)
{
    char json[1024];

    snprintf(json, sizeof(json), J_V2_TCP4 ",\"length\":%zu,\"tlvs\":[%s]}\n", len, tlv_json);
    expect_roundtrip(ARGS("encode", SRC4, DST4, "--tlv", spec), json);
}

static void test_roundtrip_tlvs(void **state)
{
    (void)state;
    expect_tlv("alpn=h2", 33, "{\"type\":1,\"name\":\"alpn\",\"value\":\"h2\",\"hex\":\"6832\"}");
    expect_tlv("authority=example.com", 42,
               "{\"type\":2,\"name\":\"authority\",\"value\":\"example.com\","
               "\"hex\":\"6578616d706c652e636f6d\"}");
    expect_tlv("authority=", 31, "{\"type\":2,\"name\":\"authority\",\"value\":\"\",\"hex\":\"\"}");
    expect_tlv("unique-id=conn-0001", 40,
               "{\"type\":5,\"name\":\"unique-id\",\"hex\":\"636f6e6e2d30303031\"}");
    expect_tlv("netns=blue", 35,
               "{\"type\":48,\"name\":\"netns\",\"value\":\"blue\",\"hex\":\"626c7565\"}");
    expect_tlv("noop=", 31, "{\"type\":4,\"name\":\"noop\",\"hex\":\"\"}");
    expect_tlv("noop=hex:000000", 34, "{\"type\":4,\"name\":\"noop\",\"hex\":\"000000\"}");
    expect_tlv("0xf0=hex:DEad", 33, "{\"type\":240,\"hex\":\"dead\"}");
    expect_tlv("7=x", 32, "{\"type\":7,\"hex\":\"78\"}");
    expect_tlv("0xe0=hex:0102030405060708", 39,
               "{\"type\":224,\"name\":\"gcp\",\"value\":\"72623859790382856\","
               "\"hex\":\"0102030405060708\"}");
    expect_tlv("234=hex:01767063652d61", 38,
               "{\"type\":234,\"name\":\"aws\",\"value\":\"vpce-a\",\"hex\":\"01767063652d61\"}");
    expect_tlv("azure=hex:01ffffffff", 36,
               "{\"type\":238,\"name\":\"azure\",\"value\":4294967295,\"hex\":\"01ffffffff\"}");
    expect_tlv("ssl=hex:0700000000210007544c5376312e33", 46,
               "{\"type\":32,\"name\":\"ssl\",\"hex\":\"0700000000210007544c5376312e33\","
               "\"ssl\":{\"client\":7,\"verify\":0,\"version\":\"TLSv1.3\"}}");
    expect_tlv("0x20=hex:0500000001260009736563703235367231270013"
               "7273615f7073735f727361655f736861323536280003308201",
               76,
               "{\"type\":32,\"name\":\"ssl\",\"hex\":\"0500000001260009736563703235367231270013"
               "7273615f7073735f727361655f736861323536280003308201\",\"ssl\":{\"client\":5,"
               "\"verify\":1,\"group\":\"secp256r1\",\"sig_scheme\":\"rsa_pss_rsae_sha256\","
               "\"client_cert\":\"308201\"}}");
}

static void test_roundtrip_duplicates_and_crc(void **state)
{
    struct run r;
    uint8_t *hdr;
    size_t n;

    (void)state;
    expect_roundtrip(ARGS("encode", SRC4, DST4, "--tlv", "alpn=h2", "--tlv", "alpn=http/1.1"),
                     J_V2_TCP4 ",\"length\":44,\"tlvs\":["
                               "{\"type\":1,\"name\":\"alpn\",\"value\":\"h2\",\"hex\":\"6832\"},"
                               "{\"type\":1,\"name\":\"alpn\",\"value\":\"http/1.1\","
                               "\"hex\":\"687474702f312e31\"}]}\n");
    expect_roundtrip(ARGS("encode", "--src", "192.168.0.1:56324", "--dst", "192.168.0.11:443",
                          "--crc32c", "--tlv", "authority=example.com"),
                     valid[8].json);
    n = encode(ARGS("encode", "--local", "--crc32c", "--udp", SRC6, DST6), &hdr);
    assert_int_equal(n, 23);
    run_ppfwd(&r, ARGS("decode"), hdr, n);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "\"tlvs\":[{\"type\":3,\"name\":\"crc32c\","));
    run_free(&r);
    hdr[n - 1] ^= 1;
    expect_fail(ARGS("decode"), hdr, n, 1, NEEDLES(pp_strerror(-PP_EBADCRC)));
    free(hdr);
}

/* encode writes exactly the section 12 bytes. */
static void test_encode_bytes(void **state)
{
    (void)state;
    expect_encode_bytes(ARGS("encode", "--local"), valid[0].hex);
    expect_encode_bytes(ARGS("encode", "--src", "127.0.0.1:51755", "--dst", "127.0.0.1:1025"),
                        valid[2].hex);
    expect_encode_bytes(
        ARGS("encode", "--src", "127.0.0.1:51755", "--dst", "127.0.0.1:1025", "--udp"),
        valid[3].hex);
    expect_encode_bytes(ARGS("encode", SRC6, DST6), valid[4].hex);
    expect_encode_bytes(ARGS("encode", SRC6, DST6, "--udp"), valid[5].hex);
    expect_encode_bytes(
        ARGS("encode", "--src", "127.0.0.1:51755", "--dst", "127.0.0.1:1025", "--crc32c"),
        valid[6].hex);
    expect_encode_bytes(ARGS("encode", "--src", "[::1]:53135", "--dst", "[::1]:1025", "--crc32c"),
                        valid[7].hex);
    expect_encode_bytes(ARGS("encode", "--src", "192.168.0.1:56324", "--dst", "192.168.0.11:443",
                             "--tlv", "authority=example.com", "--crc32c"),
                        valid[8].hex);
    expect_encode_bytes(ARGS("encode", "--src", "192.168.0.1:56324", "--dst", "192.168.0.11:443",
                             "--tlv", "alpn=h2", "--tlv", "authority=example.com", "--tlv",
                             "noop=", "--tlv", "unique-id=conn-0001"),
                        valid[9].hex);
    expect_encode_bytes(ARGS("encode", "--src", "192.168.0.1:56324", "--dst", "192.168.0.11:443",
                             "--tlv", "0xEE=hex:0178563412"),
                        valid[12].hex);
    expect_encode_bytes(
        ARGS("encode", "--v1", "--src", "192.168.0.1:56324", "--dst", "192.168.0.11:443"),
        "50524f58592054435034203139322e3136382e302e31203139322e3136382e302e3131"
        "203536333234203434330d0a");
    expect_encode_bytes(ARGS("encode", "--v1", "--local"), "50524f585920554e4b4e4f574e0d0a");
}

/* The largest header there is (65551 bytes) goes through; one byte more is
 * refused before anything is written. */
static void test_encode_big(void **state)
{
    size_t vlen = PP_V2_MAX_LEN - 28 - 3;
    char *spec = malloc(vlen + 8), want[64];
    uint8_t *hdr;
    struct run r;
    size_t n;

    (void)state;
    assert_non_null(spec);
    memcpy(spec, "0xf1=", 5);
    memset(spec + 5, 'a', vlen);
    spec[5 + vlen] = '\0';
    n = encode(ARGS("encode", SRC4, DST4, "--tlv", spec), &hdr);
    assert_int_equal(n, PP_V2_MAX_LEN);
    run_ppfwd(&r, ARGS("decode"), hdr, n);
    assert_int_equal(r.status, 0);
    snprintf(want, sizeof(want), "\"length\":%d,", PP_V2_MAX_LEN);
    assert_non_null(strstr((const char *)r.out, want));
    run_free(&r);
    free(hdr);
    spec[5 + vlen] = 'a';
    spec[6 + vlen] = '\0';
    expect_fail(ARGS("encode", SRC4, DST4, "--tlv", spec), NULL, 0, 1, NEEDLES("65551"));
    free(spec);
}

/* TLV values are attacker bytes: the JSON must stay valid and inert. */
static void test_json_escaping(void **state)
{
    (void)state;
    expect_roundtrip(ARGS("encode", SRC4, DST4, "--tlv", "alpn=hex:225c0a011fff417fe282ac", "--tlv",
                          "netns=hex:c080eda080e282", "--tlv", "authority=a\"b\\c\td"),
                     J_V2_TCP4 ",\"length\":62,\"tlvs\":["
                               "{\"type\":1,\"name\":\"alpn\","
                               "\"value\":\"\\\"\\\\\\n\\u0001\\u001f\\ufffdA\\u007f\xe2\x82\xac\","
                               "\"hex\":\"225c0a011fff417fe282ac\"},"
                               "{\"type\":48,\"name\":\"netns\",\"value\":\"\\ufffd\\ufffd"
                               "\\ufffd\\ufffd\\ufffd\\ufffd\\ufffd\",\"hex\":\"c080eda080e282\"},"
                               "{\"type\":2,\"name\":\"authority\",\"value\":\"a\\\"b\\\\c\\td\","
                               "\"hex\":\"6122625c630964\"}]}\n");
}

static void expect_encode_error(const char *const *args, const char *needle)
{
    expect_fail(args, NULL, 0, 1, NEEDLES("ppfwd: encode: ", needle));
}

static void test_encode_usage_errors(void **state)
{
    (void)state;
    expect_encode_error(ARGS("encode", "--v1", "--udp", SRC4, DST4), "UDP");
    expect_encode_error(ARGS("encode", "--v1", "--udp", "--local"), "UDP");
    expect_encode_error(ARGS("encode", DST4), "missing --src");
    expect_encode_error(ARGS("encode", SRC4), "missing --dst");
    expect_encode_error(ARGS("encode"), "missing --src");
    expect_encode_error(ARGS("encode", "--v1", "--v2", SRC4, DST4), "--v1 and --v2");
    expect_encode_error(ARGS("encode", "--v1", SRC4, DST4, "--tlv", "alpn=h2"), "TLV");
    expect_encode_error(ARGS("encode", "--v1", SRC4, DST4, "--crc32c"), "--crc32c");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--bogus"), "unknown option '--bogus'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "-x"), "unknown option '-x'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--udp=1"), "'--udp' takes no value");
    expect_encode_error(ARGS("encode", DST4, "--src"), "'--src' needs a value");
    expect_encode_error(ARGS("encode", SRC4, DST4, "extra"), "unexpected argument 'extra'");
    expect_fail(ARGS("encode", SRC4, DST4, "--bogus"), NULL, 0, 1, NEEDLES("usage: ppfwd encode"));
}

static void test_encode_address_errors(void **state)
{
    (void)state;
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4", DST4), "--src '1.2.3.4'");
    expect_encode_error(ARGS("encode", SRC4, "--dst", "[::1]"), "--dst '[::1]'");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:70000", DST4), "port");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:-1", DST4), "port");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:080", DST4), "port");
    expect_encode_error(ARGS("encode", "--src", "1.2.3.4:", DST4), "PORT");
    expect_encode_error(ARGS("encode", "--src", "1.2.3:5", DST4), "--src '1.2.3:5'");
    expect_encode_error(ARGS("encode", "--src", "01.2.3.4:5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "::1:5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "[::1]x5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "[::g]:5", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "example.com:80", DST4), "--src");
    expect_encode_error(ARGS("encode", "--src", "/run/a.sock", DST4), "unix");
    expect_encode_error(ARGS("encode", "--v1", "--src", "/a", "--dst", "/b"), "unix");
    expect_encode_error(ARGS("encode", "--local", "--src", "bogus"), "--src 'bogus'");
}

static void test_encode_tlv_errors(void **state)
{
    char big[300] = "authority=";
    uint8_t *hdr;

    (void)state;
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "bogus=1"), "'bogus'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "256=x"), "'256'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "0x100=x"), "'0x100'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "=x"), "type");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "-1=x"), "'-1'");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "alpn"), "TYPE=VALUE");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "alpn=hex:zz"), "hex");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "alpn=hex:abc"), "hex");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "3=hex:00000000"), "--crc32c");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "crc32c=abcd"), "--crc32c");
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", "ssl=hex:00"), "reject");
    memset(big + 10, 'a', 256);
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", big), "256 bytes");
    big[10 + 255] = '\0';
    assert_int_equal(encode(ARGS("encode", SRC4, DST4, "--tlv", big), &hdr), 28 + 3 + 255);
    free(hdr);
    memcpy(big, "unique-id=", 10);
    memset(big + 10, 'u', 129);
    big[10 + 129] = '\0';
    expect_encode_error(ARGS("encode", SRC4, DST4, "--tlv", big), "129 bytes");
}

/* ---- the rest of the command line ---------------------------------------- */

static void test_version_and_help(void **state)
{
    struct run r;

    (void)state;
    run_ppfwd(&r, ARGS("--version"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "ppfwd " PP_VERSION_STRING));
    run_free(&r);
    run_ppfwd(&r, ARGS("--help"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "ppfwd decode"));
    assert_non_null(strstr((const char *)r.out, "ppfwd encode"));
    assert_non_null(strstr((const char *)r.out, "whoami"));
    assert_non_null(strstr((const char *)r.out, "ppfwd check -c FILE"));
    assert_non_null(strstr((const char *)r.out, "ROUTE: PROTO://"));
    run_free(&r);
    run_ppfwd(&r, ARGS("encode", "--help"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "--crc32c"));
    run_free(&r);
    run_ppfwd(&r, ARGS("decode", "-h"), NULL, 0);
    assert_int_equal(r.status, 0);
    assert_non_null(strstr((const char *)r.out, "usage: ppfwd decode"));
    run_free(&r);
}

/* A mistake on the command line fails loudly with a message naming it,
 * never looks like success. */
static void test_bad_invocations(void **state)
{
    static const char *const no_args[] = {NULL};

    (void)state;
    expect_fail(ARGS("tcp://127.0.0.1:2222/127.0.0.1:22?bogus=1"), NULL, 0, 1, NEEDLES("bogus"));
    expect_fail(ARGS("-l", "debug", "tcp://127.0.0.1:2222/127.0.0.1:22?send-proxy=v3"), NULL, 0, 1,
                NEEDLES("send-proxy"));
    expect_fail(ARGS("-c", "/nonexistent/ppfwd.yaml"), NULL, 0, 1,
                NEEDLES("/nonexistent/ppfwd.yaml"));
    expect_fail(ARGS("whoami"), NULL, 0, 1, NEEDLES("whoami"));
    expect_fail(no_args, NULL, 0, 1, NEEDLES("usage:"));
    expect_fail(ARGS("--bogus"), NULL, 0, 1, NEEDLES("unknown option '--bogus'", "usage:"));
    expect_fail(ARGS("--log-level", "loud", "x://"), NULL, 0, 1, NEEDLES("--log-level", "loud"));
    expect_fail(ARGS("-w", "0", "x://"), NULL, 0, 1, NEEDLES("--workers"));
    expect_fail(ARGS("--metrics", "9100", "x://"), NULL, 0, 1, NEEDLES("--metrics"));
}

int main(void)
{
    static const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_valid_vectors),
        cmocka_unit_test(test_decode_unix),
        cmocka_unit_test(test_decode_ignores_trailing_data),
        cmocka_unit_test(test_decode_invalid_vectors),
        cmocka_unit_test(test_decode_unique_id_too_long),
        cmocka_unit_test(test_decode_garbage),
        cmocka_unit_test(test_decode_empty),
        cmocka_unit_test(test_decode_truncated),
        cmocka_unit_test(test_decode_file),
        cmocka_unit_test(test_decode_options),
        cmocka_unit_test(test_decode_ipv4_in_tcp6),
        cmocka_unit_test(test_roundtrip_families),
        cmocka_unit_test(test_roundtrip_local),
        cmocka_unit_test(test_roundtrip_v1),
        cmocka_unit_test(test_roundtrip_tlvs),
        cmocka_unit_test(test_roundtrip_duplicates_and_crc),
        cmocka_unit_test(test_encode_bytes),
        cmocka_unit_test(test_encode_big),
        cmocka_unit_test(test_json_escaping),
        cmocka_unit_test(test_encode_usage_errors),
        cmocka_unit_test(test_encode_address_errors),
        cmocka_unit_test(test_encode_tlv_errors),
        cmocka_unit_test(test_version_and_help),
        cmocka_unit_test(test_bad_invocations),
    };

    if (access(ppfwd_path(), X_OK) != 0) {
        fprintf(stderr, "test_cli: %s: %s (set PPFWD to the ppfwd binary)\n", ppfwd_path(),
                strerror(errno));
        return 1;
    }
    /* ppfwd decode may stop reading stdin early; that must not kill us. */
    signal(SIGPIPE, SIG_IGN);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
