/*
 * bench_kernel.c - the kernel's price list on this machine, for the cost
 * model (docs/design.md): what a system call costs by itself, and what
 * sending and receiving a UDP datagram over loopback costs the sender and
 * the receiver by how many datagrams travel together, sent one message
 * each (sendmmsg) or as one UDP GSO send (UDP_SEGMENT).
 *
 *   bench_kernel [-n DATAGRAMS] [-s SIZE]
 *
 * The receiver is a child process reading in recvmmsg batches of 64; each
 * side's CPU time (user + system, getrusage) is divided by the datagrams
 * it handled. On loopback the sender also pays for delivering each
 * datagram into the receiver's socket (the softirq runs in its context),
 * which is why a send costs more than a receive. Every 16 runs the sender
 * sleeps 20 us so the receiver keeps up (SO_RCVBUF 32 MiB besides); the
 * datagrams lost anyway are printed.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/udp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifndef UDP_SEGMENT
#define UDP_SEGMENT 103
#endif

#define MAX_RUN 16
#define RBATCH 64

static double cpu_s(void)
{
    struct rusage ru;

    getrusage(RUSAGE_SELF, &ru);
    return (double)(ru.ru_utime.tv_sec + ru.ru_stime.tv_sec) +
           (double)(ru.ru_utime.tv_usec + ru.ru_stime.tv_usec) / 1e6;
}

static double now_s(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Nanoseconds per system call that does nothing (getppid). */
static double syscall_ns(void)
{
    const int n = 2000000;
    double t0 = now_s();

    for (int i = 0; i < n; i++)
        syscall(SYS_getppid);
    return (now_s() - t0) * 1e9 / n;
}

/* The receiver: reads until want datagrams or 300 ms of silence; writes
 * "datagrams cpu_seconds" to fd out. */
static void receive(int fd, long want, int out)
{
    static uint8_t bufs[RBATCH][2048];
    struct mmsghdr m[RBATCH];
    struct iovec iov[RBATCH];
    struct timeval tv = {.tv_usec = 300000};
    long got = 0;
    char line[64];
    double c0 = cpu_s();
    int len;

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    while (got < want) {
        int n;

        for (int i = 0; i < RBATCH; i++) {
            iov[i] = (struct iovec){.iov_base = bufs[i], .iov_len = sizeof(bufs[i])};
            memset(&m[i], 0, sizeof(m[i]));
            m[i].msg_hdr.msg_iov = &iov[i];
            m[i].msg_hdr.msg_iovlen = 1;
        }
        n = recvmmsg(fd, m, RBATCH, MSG_WAITFORONE, NULL);
        if (n <= 0) {
            if (n == -1 && errno == EINTR)
                continue;
            break; /* silence: the rest was lost */
        }
        got += n;
    }
    len = snprintf(line, sizeof(line), "%ld %.6f\n", got, cpu_s() - c0);
    if (write(out, line, (size_t)len) != len)
        _exit(1);
    _exit(0);
}

/* Sends n datagrams of size bytes in runs of k, by sendmmsg or GSO; fills
 * the sender's and receiver's microseconds per datagram and the lost. */
static int measure(long n, int size, int k, int gso, double *snd, double *rcv, long *lost)
{
    static char buf[MAX_RUN * 2048];
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t alen = sizeof(a);
    int r = socket(AF_INET, SOCK_DGRAM, 0), s = socket(AF_INET, SOCK_DGRAM, 0), big = 32 << 20;
    int p[2], status;
    long got = 0;
    double c0, rcpu = 0;
    char line[64] = "";
    ssize_t len;
    pid_t pid;

    if (r == -1 || s == -1 || pipe(p) == -1)
        return -1;
    setsockopt(r, SOL_SOCKET, SO_RCVBUFFORCE, &big, sizeof(big));
    setsockopt(r, SOL_SOCKET, SO_RCVBUF, &big, sizeof(big));
    if (bind(r, (struct sockaddr *)&a, sizeof(a)) == -1 ||
        getsockname(r, (struct sockaddr *)&a, &alen) == -1 ||
        connect(s, (struct sockaddr *)&a, sizeof(a)) == -1)
        return -1;
    if ((pid = fork()) == -1)
        return -1;
    if (pid == 0) {
        close(p[0]);
        receive(r, n, p[1]);
    }
    close(p[1]);
    close(r);
    memset(buf, 'x', sizeof(buf));
    c0 = cpu_s();
    for (long i = 0; i < n; i += k) {
        struct timespec pause = {.tv_nsec = 20000};

        if (gso && k > 1) {
            char ctl[CMSG_SPACE(sizeof(uint16_t))] = {0};
            struct iovec iov = {.iov_base = buf, .iov_len = (size_t)size * (size_t)k};
            struct msghdr mh = {.msg_iov = &iov, .msg_iovlen = 1, .msg_control = ctl,
                                .msg_controllen = sizeof(ctl)};
            struct cmsghdr *cm = CMSG_FIRSTHDR(&mh);
            uint16_t seg = (uint16_t)size;

            cm->cmsg_level = SOL_UDP;
            cm->cmsg_type = UDP_SEGMENT;
            cm->cmsg_len = CMSG_LEN(sizeof(seg));
            memcpy(CMSG_DATA(cm), &seg, sizeof(seg));
            if (sendmsg(s, &mh, 0) == -1)
                return -1;
        } else {
            struct mmsghdr m[MAX_RUN];
            struct iovec iov[MAX_RUN];

            for (int j = 0; j < k; j++) {
                iov[j] = (struct iovec){.iov_base = buf + (size_t)j * (size_t)size,
                                        .iov_len = (size_t)size};
                memset(&m[j], 0, sizeof(m[j]));
                m[j].msg_hdr.msg_iov = &iov[j];
                m[j].msg_hdr.msg_iovlen = 1;
            }
            if (sendmmsg(s, m, (unsigned)k, 0) != k)
                return -1;
        }
        if ((i / k) % 16 == 15)
            nanosleep(&pause, NULL);
    }
    *snd = (cpu_s() - c0) * 1e6 / (double)n;
    close(s);
    len = read(p[0], line, sizeof(line) - 1);
    close(p[0]);
    waitpid(pid, &status, 0);
    if (len <= 0 || sscanf(line, "%ld %lf", &got, &rcpu) != 2 || got <= 0)
        return -1;
    *rcv = rcpu * 1e6 / (double)got;
    *lost = n - got;
    return 0;
}

int main(int argc, char **argv)
{
    static const int runs[] = {1, 2, 4, 8, 16};
    long n = 400000;
    int size = 64, opt;

    while ((opt = getopt(argc, argv, "n:s:")) != -1) {
        if (opt == 'n')
            n = atol(optarg);
        else if (opt == 's')
            size = atoi(optarg);
        else
            return 2;
    }
    if (n < 1000 || size < 1 || size > 1400) {
        fprintf(stderr, "usage: bench_kernel [-n DATAGRAMS >= 1000] [-s SIZE 1..1400]\n");
        return 2;
    }
    printf("system call (getppid): %.0f ns\n", syscall_ns());
    printf("UDP %d B over loopback, CPU per datagram (us), %ld datagrams per line:\n", size, n);
    printf("%5s | %9s %9s %6s | %9s %9s %6s\n", "run", "sendmmsg", "receiver", "lost", "GSO send",
           "receiver", "lost");
    for (size_t i = 0; i < sizeof(runs) / sizeof(runs[0]); i++) {
        double s1, r1, s2, r2;
        long l1, l2;
        int k = runs[i];

        if (measure(n / k * k, size, k, 0, &s1, &r1, &l1) != 0 ||
            measure(n / k * k, size, k, 1, &s2, &r2, &l2) != 0) {
            perror("bench_kernel");
            return 1;
        }
        printf("%5d | %9.2f %9.2f %6ld | %9.2f %9.2f %6ld\n", k, s1, r1, l1, s2, r2, l2);
    }
    printf("run: datagrams sent together (one sendmmsg, or one GSO send); the\n"
           "receiver reads in recvmmsg batches of %d. A run of 1 by GSO is a plain send.\n",
           RBATCH);
    return 0;
}
