/*
 * bench_parse.c - nanoseconds per PROXY header for pp_parse, pp_parse plus a
 * TLV walk, and the builders, on the cases mailgun/proxyproto publishes
 * figures for, so the numbers can be read side by side with theirs.
 *
 *   bench_parse [--iters N] [--runs N] [--tsv | --json] [--cases]
 *
 * Each measurement times a batch of N calls with CLOCK_MONOTONIC; a figure is
 * the median of the runs, and the runs of one case are interleaved with those
 * of every other case so that a slow spell of the machine (frequency change,
 * a neighbour waking up) spreads over all cases instead of hitting one.
 * --cases prints the case bytes so the Go peers are measured on exactly the
 * same input.  Exit status 1 means a parse or build gave a wrong result.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "proxyproto.h"

#define DEFAULT_ITERS 2000000L
#define DEFAULT_RUNS 7
#define MAX_RUNS 101
#define CRC_BUF_LEN 4096

/* Published targets for this library, printed beside the figures. */
#define TARGET_V2_PARSE_NS 20.0
#define TARGET_V1_TYPICAL_PARSE_NS 60.0
#define TARGET_V2_BUILD_NS 25.0
#define TARGET_POLICY_BUILD_NS 40.0 /* issue 12: 2 kept + 2 added TLVs + CRC32c */

/* A compiler barrier: the asm may read or write any memory, so stores into
 * the output buffers and header stay live, and hiding the input pointer in a
 * register stops the compiler from treating consecutive calls as identical. */
#define CLOBBER() __asm__ __volatile__("" ::: "memory")
#define LAUNDER(p) __asm__ __volatile__("" : "+r"(p))

enum op { OP_PARSE, OP_TLV, OP_BUILD, OP_COUNT };

struct bcase {
    const char *name;
    int version;
    const char *text; /* v1: the line itself */
    const char *hex;  /* v2: the bytes, in hex */
    /* What the builder is given to reproduce the case. */
    int family;
    const char *src, *dst;
    uint16_t sport, dport;
    int crc;
    /* Set when the builder cannot reproduce the case byte for byte: the
     * canonical text it is expected to write instead. */
    const char *built_text;

    /* Filled in at start-up. */
    uint8_t buf[128];
    size_t len;
    union pp_addr bsrc, bdst;
    uint8_t want[128];
    size_t want_len;
    ssize_t parse_rc;
    int build_bad;
    double ns[OP_COUNT][MAX_RUNS];
    double med[OP_COUNT];
};

/* mailgun/proxyproto's benchmark cases (its BenchmarkRead* tables). */
static struct bcase cases[] = {
    {.name = "v1 TCP4-Minimal",
     .version = 1,
     .text = "PROXY TCP4 1.1.1.5 1.1.1.6 2 3\r\n",
     .family = AF_INET,
     .src = "1.1.1.5",
     .dst = "1.1.1.6",
     .sport = 2,
     .dport = 3},
    {.name = "v1 TCP4-Maximal",
     .version = 1,
     .text = "PROXY TCP4 255.255.255.255 255.255.255.254 65535 65535\r\n",
     .family = AF_INET,
     .src = "255.255.255.255",
     .dst = "255.255.255.254",
     .sport = 65535,
     .dport = 65535},
    {.name = "v1 TCP4-Typical",
     .version = 1,
     .text = "PROXY TCP4 67.11.173.63 67.11.173.63 65535 65535\r\n",
     .family = AF_INET,
     .src = "67.11.173.63",
     .dst = "67.11.173.63",
     .sport = 65535,
     .dport = 65535},
    {.name = "v1 TCP6-Minimal",
     .version = 1,
     .text = "PROXY TCP6 ::1 ::2 3 4\r\n",
     .family = AF_INET6,
     .src = "::1",
     .dst = "::2",
     .sport = 3,
     .dport = 4},
    {.name = "v1 TCP6-Maximal",
     .version = 1,
     .text = "PROXY TCP6 0000:0000:0000:0000:0000:0000:0000:0002 "
             "0000:0000:0000:0000:0000:0000:0000:0001 65535 65535\r\n",
     .family = AF_INET6,
     .src = "::2",
     .dst = "::1",
     .sport = 65535,
     .dport = 65535,
     .built_text = "PROXY TCP6 ::2 ::1 65535 65535\r\n"},
    {.name = "v2 TCP6-With-TLVs",
     .version = 2,
     .hex = "0d0a0d0a000d0a515549540a2121002b00000000000000000000000000000001"
            "00000000000000000000000000000001cf8f0401030004fd16ee60",
     .family = AF_INET6,
     .src = "::1",
     .dst = "::1",
     .sport = 53135,
     .dport = 1025,
     .crc = 1},
    {.name = "v2 TCP6-Minimal",
     .version = 2,
     .hex = "0d0a0d0a000d0a515549540a2121002400000000000000000000ffff7f000001"
            "00000000000000000000ffff7f000001cc4c0401",
     .family = AF_INET6,
     .src = "::ffff:127.0.0.1",
     .dst = "::ffff:127.0.0.1",
     .sport = 52300,
     .dport = 1025},
    {.name = "v2 TCP6-Maximal",
     .version = 2,
     .hex = "0d0a0d0a000d0a515549540a21210024"
            "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff"
            "ffffffff",
     .family = AF_INET6,
     .src = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     .dst = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
     .sport = 65535,
     .dport = 65535},
    {.name = "v2 TCP4-Minimal",
     .version = 2,
     .hex = "0d0a0d0a000d0a515549540a2111000c7f0000017f000001ca2b0401",
     .family = AF_INET,
     .src = "127.0.0.1",
     .dst = "127.0.0.1",
     .sport = 51755,
     .dport = 1025},
};

#define NCASES (sizeof(cases) / sizeof(cases[0]))

/* Accumulates results so no call can be proven useless. */
static volatile uint64_t sink;

static double now_ns(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

static size_t unhex(const char *s, uint8_t *out, size_t cap)
{
    size_t n = 0;

    for (; s[0] && s[1]; s += 2) {
        int hi = hexval(s[0]), lo = hexval(s[1]);

        if (hi < 0 || lo < 0 || n == cap) {
            fprintf(stderr, "bench_parse: bad case hex\n");
            exit(2);
        }
        out[n++] = (uint8_t)(hi << 4 | lo);
    }
    return n;
}

static void make_addr(union pp_addr *a, int family, const char *ip, uint16_t port)
{
    memset(a, 0, sizeof(*a));
    if (family == AF_INET) {
        a->sin.sin_family = AF_INET;
        a->sin.sin_port = htons(port);
        if (inet_pton(AF_INET, ip, &a->sin.sin_addr) != 1)
            goto bad;
    } else {
        a->sin6.sin6_family = AF_INET6;
        a->sin6.sin6_port = htons(port);
        if (inet_pton(AF_INET6, ip, &a->sin6.sin6_addr) != 1)
            goto bad;
    }
    return;
bad:
    fprintf(stderr, "bench_parse: bad case address %s\n", ip);
    exit(2);
}

static void print_hex(FILE *f, const uint8_t *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        fprintf(f, "%02x", p[i]);
}

static ssize_t build_once(struct bcase *c, uint8_t *out, size_t cap)
{
    ssize_t n;

    if (c->version == 1)
        return pp_build_v1(out, cap, &c->bsrc.sa, &c->bdst.sa);
    n = pp_build_v2(out, cap, PP2_CMD_PROXY, SOCK_STREAM, &c->bsrc.sa, &c->bdst.sa);
    if (n > 0 && c->crc)
        n = pp_build_v2_crc32c(out, cap, (size_t)n);
    return n;
}

static int addr_eq(const union pp_addr *a, const union pp_addr *b)
{
    if (a->sa.sa_family != b->sa.sa_family)
        return 0;
    if (a->sa.sa_family == AF_INET)
        return a->sin.sin_port == b->sin.sin_port &&
               a->sin.sin_addr.s_addr == b->sin.sin_addr.s_addr;
    return a->sin6.sin6_port == b->sin6.sin6_port &&
           memcmp(&a->sin6.sin6_addr, &b->sin6.sin6_addr, 16) == 0;
}

/* Checks once, outside the timed loops, that every case parses to what it
 * says and that the builder reproduces it; a benchmark of a wrong answer is
 * worthless. Returns the number of failures. */
static int setup_case(struct bcase *c)
{
    struct pp_header hdr;
    uint8_t out[256];
    ssize_t n;
    int bad = 0;

    if (c->version == 1) {
        c->len = strlen(c->text);
        memcpy(c->buf, c->text, c->len);
    } else {
        c->len = unhex(c->hex, c->buf, sizeof(c->buf));
    }
    make_addr(&c->bsrc, c->family, c->src, c->sport);
    make_addr(&c->bdst, c->family, c->dst, c->dport);
    if (c->built_text) {
        c->want_len = strlen(c->built_text);
        memcpy(c->want, c->built_text, c->want_len);
    } else {
        c->want_len = c->len;
        memcpy(c->want, c->buf, c->len);
    }

    c->parse_rc = pp_parse(c->buf, c->len, &hdr, NULL);
    if (c->parse_rc != (ssize_t)c->len) {
        fprintf(stderr, "bench_parse: %s: pp_parse returned %zd (%s), expected %zu\n", c->name,
                c->parse_rc, c->parse_rc < 0 ? pp_strerror((int)c->parse_rc) : "-", c->len);
        bad++;
    } else if (!addr_eq(&hdr.src, &c->bsrc) || !addr_eq(&hdr.dst, &c->bdst)) {
        fprintf(stderr, "bench_parse: %s: parsed addresses differ from the case\n", c->name);
        bad++;
    }

    n = build_once(c, out, sizeof(out));
    if (n != (ssize_t)c->want_len || memcmp(out, c->want, c->want_len) != 0) {
        fprintf(stderr, "bench_parse: %s: build returned %zd: ", c->name, n);
        if (n > 0)
            print_hex(stderr, out, (size_t)n);
        fprintf(stderr, "\n  expected %zu: ", c->want_len);
        print_hex(stderr, c->want, c->want_len);
        fprintf(stderr, "\n");
        c->build_bad = 1;
        bad++;
    }
    return bad;
}

static double time_parse(const struct bcase *c, long iters)
{
    struct pp_header hdr;
    uint64_t acc = 0;
    double t0 = now_ns();

    for (long i = 0; i < iters; i++) {
        const uint8_t *p = c->buf;

        LAUNDER(p);
        acc += (uint64_t)pp_parse(p, c->len, &hdr, NULL);
        CLOBBER();
    }
    double t1 = now_ns();
    sink += acc;
    return (t1 - t0) / (double)iters;
}

static double time_parse_tlv(const struct bcase *c, long iters)
{
    struct pp_header hdr;
    struct pp_tlv t;
    uint64_t acc = 0;
    double t0 = now_ns();

    for (long i = 0; i < iters; i++) {
        const uint8_t *p = c->buf;

        LAUNDER(p);
        acc += (uint64_t)pp_parse(p, c->len, &hdr, NULL);
        /* v1 headers have tlv == NULL, and NULL + 0 is undefined in C. */
        const uint8_t *cur = hdr.tlv, *end = cur ? cur + hdr.tlv_len : cur;
        while (pp_tlv_next(&cur, end, &t) == 1) {
            acc += t.type + t.len;
            for (uint16_t k = 0; k < t.len; k++)
                acc += t.value[k];
        }
        CLOBBER();
    }
    double t1 = now_ns();
    sink += acc;
    return (t1 - t0) / (double)iters;
}

static double time_build(struct bcase *c, long iters)
{
    uint8_t out[256];
    uint64_t acc = 0;
    double t0 = now_ns();

    for (long i = 0; i < iters; i++) {
        acc += (uint64_t)build_once(c, out, sizeof(out));
        CLOBBER();
    }
    double t1 = now_ns();
    sink += acc + out[0];
    return (t1 - t0) / (double)iters;
}

static double measure(struct bcase *c, enum op op, long iters)
{
    switch (op) {
    case OP_PARSE:
        return time_parse(c, iters);
    case OP_TLV:
        return time_parse_tlv(c, iters);
    default:
        return time_build(c, iters);
    }
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;

    return (x > y) - (x < y);
}

static double median(const double *v, int n)
{
    double s[MAX_RUNS];

    memcpy(s, v, (size_t)n * sizeof(*s));
    qsort(s, (size_t)n, sizeof(*s), cmp_double);
    return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2;
}

/* CRC32c throughput in GB/s (1e9 bytes) over a 4 KiB buffer, chaining each
 * call's result into the next as a streaming checksum would. */
static double crc_gbps(int runs)
{
    static _Alignas(64) uint8_t buf[CRC_BUF_LEN];
    const long iters = 65536; /* 256 MiB per measurement */
    double v[MAX_RUNS];

    for (size_t i = 0; i < sizeof(buf); i++)
        buf[i] = (uint8_t)(i * 131 + 7);
    for (int r = 0; r < runs; r++) {
        uint32_t crc = 0;
        double t0 = now_ns();

        for (long i = 0; i < iters; i++) {
            crc = pp_crc32c(crc, buf, sizeof(buf));
            CLOBBER();
        }
        double t1 = now_ns();
        sink += crc;
        v[r] = (double)iters * sizeof(buf) / (t1 - t0);
    }
    return median(v, runs);
}

/* The header a route with a TLV policy sends: a received v2 header with
 * five TLVs (ALPN, AUTHORITY, AWS, UNIQUE_ID, CRC32C), of which two are kept
 * (tlvs=keep:alpn,authority), two TLVs prepared at config time added
 * (add-tlv=0xe0=...,add-tlv=0xe1=hex:...), and a fresh CRC32c. */
static uint8_t pol_in[256], pol_added[64];
static size_t pol_added_len;
static struct pp_header pol_hdr;
static struct pp_tlv_set pol_keep;

static int policy_setup(void)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6, .sin6_port = htons(443)};
    static const uint8_t aws[] = {0x01, 'v', 'p', 'c', 'e', '-', '0', '1', '2', '3'};
    uint8_t scratch[128], id[16] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16};
    ssize_t n, base;

    a.sin6_addr.s6_addr[15] = 1;
    n = pp_build_v2(pol_in, sizeof(pol_in), PP2_CMD_PROXY, SOCK_STREAM,
                    (const struct sockaddr *)&a, (const struct sockaddr *)&a);
    n = pp_build_v2_tlv(pol_in, sizeof(pol_in), (size_t)n, PP2_TYPE_ALPN, "h2", 2);
    n = pp_build_v2_tlv(pol_in, sizeof(pol_in), (size_t)n, PP2_TYPE_AUTHORITY, "example.com", 11);
    n = pp_build_v2_tlv(pol_in, sizeof(pol_in), (size_t)n, PP2_TYPE_AWS, aws, sizeof(aws));
    n = pp_build_v2_tlv(pol_in, sizeof(pol_in), (size_t)n, PP2_TYPE_UNIQUE_ID, id, sizeof(id));
    n = pp_build_v2_crc32c(pol_in, sizeof(pol_in), (size_t)n);
    if (n < 0 || pp_parse(pol_in, (size_t)n, &pol_hdr, NULL) != n)
        return 1;
    pp_tlv_set_add(&pol_keep, PP2_TYPE_ALPN);
    pp_tlv_set_add(&pol_keep, PP2_TYPE_AUTHORITY);
    base = pp_build_v2(scratch, sizeof(scratch), PP2_CMD_LOCAL, 0, NULL, NULL);
    n = pp_build_v2_tlv(scratch, sizeof(scratch), (size_t)base, 0xE0, "zone-a", 6);
    n = pp_build_v2_tlv(scratch, sizeof(scratch), (size_t)n, 0xE1, "\x01\x02\x03\x04", 4);
    if (base < 0 || n < 0)
        return 1;
    pol_added_len = (size_t)(n - base);
    memcpy(pol_added, scratch + base, pol_added_len);
    return 0;
}

static ssize_t policy_build(uint8_t *out, size_t cap)
{
    ssize_t n = pp_build_v2(out, cap, PP2_CMD_PROXY, SOCK_STREAM, &pol_hdr.src.sa, &pol_hdr.dst.sa);

    n = pp_build_v2_tlvs(out, cap, (size_t)n, pol_hdr.tlv, pol_hdr.tlv_len, &pol_keep);
    n = pp_build_v2_tlvs(out, cap, (size_t)n, pol_added, pol_added_len, NULL);
    return pp_build_v2_crc32c(out, cap, (size_t)n);
}

/* 1 if policy_build gives the header it should (checked once, untimed). */
static int policy_ok(void)
{
    uint8_t out[256];
    struct pp_header h;
    ssize_t n = policy_build(out, sizeof(out));

    /* 2 kept (5 + 14) + 2 added (9 + 7) + CRC32C (7) after 52 bytes. */
    return n == 52 + 19 + 16 + 7 && pp_parse(out, (size_t)n, &h, NULL) == n;
}

/* ns per policy_build over iters calls: one run, interleaved by the caller
 * with the runs of the other cases. */
static double policy_run(long iters)
{
    uint8_t out[256];
    uint64_t acc = 0;
    double t0 = now_ns();

    for (long i = 0; i < iters; i++) {
        acc += (uint64_t)policy_build(out, sizeof(out));
        CLOBBER();
    }
    double t1 = now_ns();
    sink += acc;
    return (t1 - t0) / (double)iters;
}

static const char *crc_path(void)
{
#if defined(__x86_64__) || defined(__i386__)
    return __builtin_cpu_supports("sse4.2") ? "SSE4.2" : "table (no SSE4.2)";
#else
    return "runtime-selected";
#endif
}

static const char *target_str(const struct bcase *c, char *out, size_t cap)
{
    int parse_ok, build_ok;

    if (c->version == 2) {
        parse_ok = c->med[OP_PARSE] <= TARGET_V2_PARSE_NS;
        build_ok = c->med[OP_BUILD] <= TARGET_V2_BUILD_NS;
        snprintf(out, cap, "parse<=%.0f %s, build<=%.0f %s", TARGET_V2_PARSE_NS,
                 parse_ok ? "yes" : "NO", TARGET_V2_BUILD_NS, build_ok ? "yes" : "NO");
    } else if (strcmp(c->name, "v1 TCP4-Typical") == 0) {
        parse_ok = c->med[OP_PARSE] <= TARGET_V1_TYPICAL_PARSE_NS;
        snprintf(out, cap, "parse<=%.0f %s", TARGET_V1_TYPICAL_PARSE_NS, parse_ok ? "yes" : "NO");
    } else {
        snprintf(out, cap, "-");
    }
    return out;
}

static void print_table(long iters, int runs, double gbps, double pol)
{
    char tgt[96];

    printf("libproxyproto %s: ns per header, median of %d runs x %ld iterations\n",
           PP_VERSION_STRING, runs, iters);
    printf("%-20s %5s %9s %10s %9s  %s\n", "case", "bytes", "parse", "parse+TLV", "build",
           "target met");
    for (size_t i = 0; i < NCASES; i++) {
        const struct bcase *c = &cases[i];
        const char *mark = c->build_bad ? "!" : (c->built_text || c->crc) ? "*" : " ";

        printf("%-20s %5zu %9.1f %10.1f %8.1f%s  %s%s\n", c->name, c->len, c->med[OP_PARSE],
               c->med[OP_TLV], c->med[OP_BUILD], mark, target_str(c, tgt, sizeof(tgt)),
               c->parse_rc == (ssize_t)c->len ? "" : "  [PARSE FAILED]");
    }
    printf("crc32c 4 KiB buffer: %.2f GB/s (%s)\n", gbps, crc_path());
    printf("build with 2 kept + 2 added TLVs + CRC32c (v2 TCP6, 94 bytes): %.1f ns (target <= %.0f: "
           "%s)\n",
           pol, TARGET_POLICY_BUILD_NS, pol >= 0 && pol <= TARGET_POLICY_BUILD_NS ? "yes" : "NO");
    printf("Notes: parse is pp_parse with default options (CRC32C verified). parse+TLV adds a\n"
           "pp_tlv_next walk reading every value byte. build is pp_build_v1 or pp_build_v2;\n"
           "* TCP6-With-TLVs adds pp_build_v2_crc32c; v1 TCP6-Maximal is built in canonical\n"
           "  form (\"PROXY TCP6 ::2 ::1 65535 65535\\r\\n\", 32 bytes): the builder never\n"
           "  writes the zero-padded groups of the input line.\n");
    for (size_t i = 0; i < NCASES; i++)
        if (cases[i].build_bad)
            printf("! %s: built bytes differ from the case (see stderr)\n", cases[i].name);
}

static void print_tsv(double gbps, double pol)
{
    static const char *st[] = {"ok", "parse-failed", "build-mismatch"};

    for (size_t i = 0; i < NCASES; i++) {
        const struct bcase *c = &cases[i];
        int s = c->parse_rc != (ssize_t)c->len ? 1 : c->build_bad ? 2 : 0;

        printf("c\t%s\t%d\t%zu\t%.2f\t%.2f\t%.2f\t%s\n", c->name, c->version, c->len,
               c->med[OP_PARSE], c->med[OP_TLV], c->med[OP_BUILD], st[s]);
    }
    printf("crc32c\t%.3f\t%s\n", gbps, crc_path());
    printf("policy\t%.2f\n", pol);
}

static void print_json(long iters, int runs, double gbps, double pol)
{
    printf("{\"library\":\"libproxyproto\",\"version\":\"%s\",\"iterations\":%ld,\"runs\":%d,"
           "\"cases\":[",
           PP_VERSION_STRING, iters, runs);
    for (size_t i = 0; i < NCASES; i++) {
        const struct bcase *c = &cases[i];

        printf("%s{\"case\":\"%s\",\"version\":%d,\"bytes\":%zu,\"parse_ns\":%.2f,"
               "\"parse_tlv_ns\":%.2f,\"build_ns\":%.2f,\"parse_ok\":%s,\"build_ok\":%s}",
               i ? "," : "", c->name, c->version, c->len, c->med[OP_PARSE], c->med[OP_TLV],
               c->med[OP_BUILD], c->parse_rc == (ssize_t)c->len ? "true" : "false",
               c->build_bad ? "false" : "true");
    }
    printf("],\"crc32c_gbps\":%.3f,\"crc32c_path\":\"%s\",\"policy_build_ns\":%.2f}\n", gbps,
           crc_path(), pol);
}

/* One line per case, "name<TAB>version<TAB>hex", for the Go peers. */
static void print_cases(void)
{
    for (size_t i = 0; i < NCASES; i++) {
        printf("%s\t%d\t", cases[i].name, cases[i].version);
        print_hex(stdout, cases[i].buf, cases[i].len);
        printf("\n");
    }
}

static long parse_long(const char *s, long min, long max)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || v < min || v > max) {
        fprintf(stderr, "bench_parse: bad number '%s' (%ld..%ld)\n", s, min, max);
        exit(2);
    }
    return v;
}

static void usage(void)
{
    fprintf(stderr, "usage: bench_parse [--iters N] [--runs N] [--tsv | --json] [--cases]\n");
    exit(2);
}

int main(int argc, char **argv)
{
    long iters = DEFAULT_ITERS;
    int runs = DEFAULT_RUNS, tsv = 0, json = 0, list = 0, bad = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc)
            iters = parse_long(argv[++i], 1000, 1000000000L);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = (int)parse_long(argv[++i], 1, MAX_RUNS);
        else if (strcmp(argv[i], "--tsv") == 0)
            tsv = 1;
        else if (strcmp(argv[i], "--json") == 0)
            json = 1;
        else if (strcmp(argv[i], "--cases") == 0)
            list = 1;
        else
            usage();
    }

    for (size_t i = 0; i < NCASES; i++)
        bad += setup_case(&cases[i]);
    if (policy_setup() != 0) {
        fprintf(stderr, "bench_parse: policy case setup failed\n");
        bad++;
    }
    if (list) {
        print_cases();
        return 0;
    }

    /* Warm caches, branch predictors and the CPU clock before any figure. */
    for (size_t i = 0; i < NCASES; i++)
        for (int op = 0; op < OP_COUNT; op++)
            measure(&cases[i], (enum op)op, iters / 20);

    double pol_ns[MAX_RUNS];

    for (int r = 0; r < runs; r++) {
        for (size_t i = 0; i < NCASES; i++)
            for (int op = 0; op < OP_COUNT; op++)
                cases[i].ns[op][r] = measure(&cases[i], (enum op)op, iters);
        pol_ns[r] = policy_run(iters);
    }
    for (size_t i = 0; i < NCASES; i++)
        for (int op = 0; op < OP_COUNT; op++)
            cases[i].med[op] = median(cases[i].ns[op], runs);
    double gbps = crc_gbps(runs);
    double pol = policy_ok() ? median(pol_ns, runs) : -1;

    if (pol < 0) {
        fprintf(stderr, "bench_parse: policy build gave a wrong header\n");
        bad++;
    }

    if (tsv)
        print_tsv(gbps, pol);
    else if (json)
        print_json(iters, runs, gbps, pol);
    else
        print_table(iters, runs, gbps, pol);
    return bad ? 1 : 0;
}
