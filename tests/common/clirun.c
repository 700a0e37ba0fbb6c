/*
 * clirun.c - runs the ppfwd binary ($PPFWD, default build/asan/ppfwd) the
 * way users and scripts do, for the command-line tests (test_cli*.c):
 * arguments, bytes on stdin, then the exit status and exactly what came out
 * on stdout and stderr. Every run has a deadline (CRUN_TIMEOUT_MS) and the
 * child is killed past it, so a hanging binary fails the test instead of
 * stalling the suite.
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

#include "clirun.h"

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
static int pump(int fin, int fout, int ferr, const uint8_t *in, size_t in_len, struct crun *r)
{
    long deadline = now_ms() + CRUN_TIMEOUT_MS;
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

void crun_free(struct crun *r)
{
    free(r->out);
    free(r->err);
    memset(r, 0, sizeof(*r));
}

/* Runs ppfwd with args (NULL-terminated) and stdin in[0..in_len). */
void crun_run(struct crun *r, const char *const *args, const void *in, size_t in_len)
{
    char *argv[CRUN_MAX_ARGS + 2];
    int pin[2], pout[2], perr[2], st, timed_out;
    size_t i;
    pid_t pid;

    memset(r, 0, sizeof(*r));
    argv[0] = (char *)(uintptr_t)ppfwd_path();
    for (i = 0; args[i] != NULL; i++) {
        assert_true(i < CRUN_MAX_ARGS);
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

size_t crun_unhex(const char *hex, uint8_t *out, size_t cap)
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
void crun_expect_decode(const void *in, size_t len, const char *json)
{
    static const char *const args[] = {"decode", NULL};
    struct crun r;

    crun_run(&r, args, in, len);
    if (r.status != 0)
        fprintf(stderr, "stderr: %s\n", r.err);
    assert_int_equal(r.status, 0);
    assert_string_equal((const char *)r.out, json);
    assert_int_equal(r.out_len, strlen(json));
    assert_string_equal(r.err, "");
    crun_free(&r);
}

void crun_expect_decode_hex(const char *hex, const char *json_line)
{
    uint8_t buf[512];
    size_t n = crun_unhex(hex, buf, sizeof(buf));

    crun_expect_decode(buf, n, json_line);
}

/* Expects a failure with this exit status, nothing on stdout and stderr
 * containing each of the NULL-terminated needles. */
void crun_expect_fail(const char *const *args, const void *in, size_t len, int status, ...)
{
    const char *needle;
    struct crun r;
    va_list ap;

    crun_run(&r, args, in, len);
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
    crun_free(&r);
}

/* Runs encode with args, expects success, and returns the header bytes. */
size_t crun_encode(const char *const *args, uint8_t **out)
{
    struct crun r;
    size_t n;

    crun_run(&r, args, NULL, 0);
    if (r.status != 0)
        fprintf(stderr, "encode: stderr: %s\n", r.err);
    assert_int_equal(r.status, 0);
    assert_string_equal(r.err, "");
    assert_true(r.out_len > 0);
    *out = r.out;
    n = r.out_len;
    r.out = NULL;
    crun_free(&r);
    return n;
}

/* encode | decode must print exactly json (plus '\n'). */
void crun_expect_roundtrip(const char *const *args, const char *json)
{
    uint8_t *hdr;
    size_t n = crun_encode(args, &hdr);

    crun_expect_decode(hdr, n, json);
    free(hdr);
}

void crun_expect_encode_bytes(const char *const *args, const char *hex)
{
    uint8_t want[512], *got;
    size_t n = crun_unhex(hex, want, sizeof(want)), len = crun_encode(args, &got);

    assert_int_equal(len, n);
    assert_memory_equal(got, want, n);
    free(got);
}
