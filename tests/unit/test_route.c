/*
 * test_route.c - the route module (src/engine/route.c) alone, no daemon:
 * admission (trusted source, header verdict, allow/deny, max-conns), the
 * header sent upstream (v1 and v2 bytes checked with the library's own
 * parser: relayed addresses, LOCAL passed on, TLVs passed or dropped, the
 * route's AUTHORITY, UNIQUE_ID and CRC32C), and the reference-counted life
 * of a route and its config (freed with the last user, not before: under
 * ASan a route freed early is a use-after-free here, one never freed a
 * leak).
 */
#define _GNU_SOURCE
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <sys/un.h>

#include "engine/route.h"

/* A route from one URL, with its own config (freed with the route). */
static struct route *mkroute(const char *url)
{
    struct cfg *c = calloc(1, sizeof(*c));
    struct cfg_errors errs = {0};
    char copy[512], *urls[1] = {copy};
    struct route_cfgs *cs;
    struct route *r;

    assert_non_null(c);
    assert_true(strlen(url) < sizeof(copy));
    strcpy(copy, url);
    if (cfg_from_urls(c, urls, 1, &errs) != 0) {
        for (size_t i = 0; i < errs.n; i++)
            print_error("%s\n", errs.msg[i]);
        fail();
    }
    cs = route_cfgs_new(c, 1);
    assert_non_null(cs);
    r = route_new(&c->routes[0], cs, 2);
    assert_non_null(r);
    route_cfgs_unref(cs); /* the route holds it now */
    return r;
}

static struct sockaddr_storage ip(const char *addr, uint16_t port)
{
    struct sockaddr_storage ss;

    memset(&ss, 0, sizeof(ss));
    if (strchr(addr, ':') != NULL) {
        struct sockaddr_in6 *s6 = (struct sockaddr_in6 *)&ss;
        s6->sin6_family = AF_INET6;
        s6->sin6_port = htons(port);
        assert_int_equal(inet_pton(AF_INET6, addr, &s6->sin6_addr), 1);
    } else {
        struct sockaddr_in *s4 = (struct sockaddr_in *)&ss;
        s4->sin_family = AF_INET;
        s4->sin_port = htons(port);
        assert_int_equal(inet_pton(AF_INET, addr, &s4->sin_addr), 1);
    }
    return ss;
}

#define SA(ss) ((const struct sockaddr *)&(ss))

/* ---- admission ------------------------------------------------------------ */

static void test_admit_peer(void **state)
{
    struct route *req = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?accept-proxy=required&trusted="
                                "10.0.0.0/8");
    struct route *opt = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?accept-proxy=optional&trusted="
                                "10.0.0.0/8");
    struct route *all = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?accept-proxy=required");
    struct sockaddr_storage in = ip("10.1.2.3", 1000), out = ip("192.0.2.1", 1000);
    int trusted = -1;

    (void)state;
    assert_int_equal(route_admit_peer(req, SA(in), &trusted), ADMIT_OK);
    assert_int_equal(trusted, 1);
    assert_int_equal(route_admit_peer(req, SA(out), &trusted), ADMIT_UNTRUSTED_SOURCE);
    assert_int_equal(trusted, 0);
    assert_string_equal(route_admit_reason(ADMIT_UNTRUSTED_SOURCE, 0), "untrusted source");
    /* optional: an untrusted source may connect, its header will not count */
    assert_int_equal(route_admit_peer(opt, SA(out), &trusted), ADMIT_OK);
    assert_int_equal(trusted, 0);
    /* no trusted list: every source */
    assert_int_equal(route_admit_peer(all, SA(out), &trusted), ADMIT_OK);
    assert_int_equal(trusted, 1);
    route_unref(req);
    route_unref(opt);
    route_unref(all);
}

static void test_admit_header(void **state)
{
    struct route *req = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?accept-proxy=required");
    struct route *opt = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?accept-proxy=optional");

    (void)state;
    assert_int_equal(route_admit_header(opt, -PP_EBADSIG, 1, 0), ADMIT_DIRECT);
    assert_int_equal(route_admit_header(req, -PP_EBADSIG, 1, 0), ADMIT_NO_HEADER);
    assert_int_equal(route_admit_header(req, 0, 1, 0), ADMIT_MORE);
    assert_int_equal(route_admit_header(req, 0, 1, 1), ADMIT_TRUNCATED);
    assert_int_equal(route_admit_header(req, -PP_EBADADDR, 1, 0), ADMIT_BAD_HEADER);
    assert_string_equal(route_admit_reason(ADMIT_BAD_HEADER, -PP_EBADADDR),
                        pp_strerror(-PP_EBADADDR));
    assert_int_equal(route_admit_header(req, 28, 0, 0), ADMIT_UNTRUSTED);
    assert_int_equal(route_admit_header(opt, 28, 0, 1), ADMIT_UNTRUSTED);
    assert_int_equal(route_admit_header(req, 28, 1, 0), ADMIT_OK);
    /* each refusal names its counter */
    assert_int_equal(route_admit_info[ADMIT_NO_HEADER].stat, STAT_HDR_INVALID);
    assert_int_equal(route_admit_info[ADMIT_UNTRUSTED].stat, STAT_HDR_UNTRUSTED);
    assert_int_equal(route_admit_info[ADMIT_DENIED].stat, STAT_REFUSED);
    assert_int_equal(route_admit_info[ADMIT_FULL].stat, STAT_REFUSED);
    route_unref(req);
    route_unref(opt);
}

/* A datagram cannot grow: one that ends inside the v2 signature is no
 * header (data with optional), one with the whole signature is truncated. */
static void test_admit_datagram(void **state)
{
    struct route *req = mkroute("udp://127.0.0.1:1/127.0.0.1:2?accept-proxy=required");
    struct route *opt = mkroute("udp://127.0.0.1:1/127.0.0.1:2?accept-proxy=optional");
    const struct pp_parse_opts o = {.flags = PP_PARSE_NO_V1};
    const uint8_t sig[] = PP_V2_SIG "\x21\x11\x00";
    struct pp_header h;

    (void)state;
    for (size_t len = 0; len < PP_V2_SIG_LEN; len++) {
        ssize_t n = pp_parse(sig, len, &h, &o);

        assert_int_equal(n, 0); /* a valid prefix, as pp_parse sees it */
        assert_int_equal(route_admit_datagram(opt, n, len, 1), ADMIT_DIRECT);
        assert_int_equal(route_admit_datagram(opt, n, len, 0), ADMIT_DIRECT);
        assert_int_equal(route_admit_datagram(req, n, len, 1), ADMIT_NO_HEADER);
    }
    for (size_t len = PP_V2_SIG_LEN; len < sizeof(sig) - 1; len++) {
        ssize_t n = pp_parse(sig, len, &h, &o);

        assert_int_equal(n, 0);
        assert_int_equal(route_admit_datagram(opt, n, len, 1), ADMIT_TRUNCATED);
        assert_int_equal(route_admit_datagram(req, n, len, 1), ADMIT_TRUNCATED);
    }
    assert_int_equal(route_admit_datagram(opt, -PP_EBADSIG, 5, 1), ADMIT_DIRECT);
    assert_int_equal(route_admit_datagram(req, 28, 40, 1), ADMIT_OK);
    assert_int_equal(route_admit_datagram(opt, 28, 40, 0), ADMIT_UNTRUSTED);
    route_unref(req);
    route_unref(opt);
}

static void test_admit_client(void **state)
{
    struct route *r = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?allow=10.0.0.0/8,2001:db8::/32"
                              "&deny=10.9.0.0/16");
    struct route *open = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?deny=192.0.2.0/24");
    struct sockaddr_storage a = ip("10.1.1.1", 1), d = ip("10.9.1.1", 1), o = ip("192.0.2.7", 1);
    struct sockaddr_storage v6 = ip("2001:db8::5", 1), x = ip("198.51.100.1", 1);
    struct sockaddr_un un = {.sun_family = AF_UNIX};

    (void)state;
    assert_int_equal(route_admit_client(r, SA(a)), ADMIT_OK);
    assert_int_equal(route_admit_client(r, SA(v6)), ADMIT_OK);
    assert_int_equal(route_admit_client(r, SA(d)), ADMIT_DENIED); /* deny wins over allow */
    assert_int_equal(route_admit_client(r, SA(o)), ADMIT_DENIED); /* not in allow */
    assert_int_equal(route_admit_client(r, (const struct sockaddr *)&un), ADMIT_OK);
    assert_int_equal(route_admit_client(open, SA(x)), ADMIT_OK); /* no allow: all but deny */
    assert_int_equal(route_admit_client(open, SA(o)), ADMIT_DENIED);
    assert_string_equal(route_admit_reason(ADMIT_DENIED, 0), "client not allowed");
    route_unref(r);
    route_unref(open);
}

static void test_max_conns(void **state)
{
    struct route *r = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?max-conns=2");
    struct route *u = mkroute("tcp://127.0.0.1:1/127.0.0.1:2");

    (void)state;
    assert_int_equal(route_enter(r), ADMIT_OK);
    assert_int_equal(route_enter(r), ADMIT_OK);
    assert_int_equal(route_enter(r), ADMIT_FULL);
    assert_int_equal(atomic_load(&r->conns), 2); /* a refusal takes no place */
    route_leave(r);
    assert_int_equal(route_enter(r), ADMIT_OK);
    assert_int_equal(route_enter(r), ADMIT_FULL);
    assert_string_equal(route_admit_reason(ADMIT_FULL, 0), "max-conns reached");
    for (int i = 0; i < 1000; i++) /* 0: unlimited */
        assert_int_equal(route_enter(u), ADMIT_OK);
    route_unref(r);
    route_unref(u);
}

/* ---- the header sent upstream --------------------------------------------- */

static void test_header_v1(void **state)
{
    struct route *r = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?send-proxy=v1");
    struct route *off = mkroute("tcp://127.0.0.1:1/127.0.0.1:2");
    struct sockaddr_storage src = ip("192.0.2.1", 5000), dst = ip("198.51.100.1", 80);
    struct route_hdr h = {.src = SA(src), .dst = SA(dst), .socktype = SOCK_STREAM};
    struct pp_header local = {.version = 2, .command = PP2_CMD_LOCAL};
    uint8_t buf[256];
    ssize_t n;

    (void)state;
    n = route_header(r, &h, buf, sizeof(buf));
    assert_int_equal(n, strlen("PROXY TCP4 192.0.2.1 198.51.100.1 5000 80\r\n"));
    assert_memory_equal(buf, "PROXY TCP4 192.0.2.1 198.51.100.1 5000 80\r\n", (size_t)n);
    h.accepted = &local; /* a LOCAL header received goes on as UNKNOWN */
    n = route_header(r, &h, buf, sizeof(buf));
    assert_int_equal(n, 15);
    assert_memory_equal(buf, "PROXY UNKNOWN\r\n", 15);
    assert_int_equal(route_header(off, &h, buf, sizeof(buf)), 0);
    assert_int_equal(route_header(r, &h, buf, 10), -PP_ENOSPC);
    route_unref(r);
    route_unref(off);
}

/* An IPv4 client of a dual-stack listener (the default bind): the socket
 * names both ends ::ffff:a.b.c.d, the header says TCP4/UDP4 a.b.c.d; but
 * mapped addresses relayed from an accepted header go on as they came. */
static void test_header_unmapped(void **state)
{
    struct route *v1 = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?send-proxy=v1");
    struct route *v2 = mkroute("udp://127.0.0.1:1/127.0.0.1:2?send-proxy=v2");
    struct sockaddr_storage peer = ip("::ffff:192.0.2.1", 5000), local = ip("::ffff:198.51.100.1", 80);
    struct sockaddr_storage v6 = ip("2001:db8::1", 80);
    static const char v1_line[] = "PROXY TCP4 192.0.2.1 198.51.100.1 5000 80\r\n";
    struct route_hdr h = {.socktype = SOCK_STREAM};
    struct pp_header acc, got;
    uint8_t buf[256];
    ssize_t n;

    (void)state;
    route_relayed(NULL, SA(peer), SA(local), &h.src, &h.dst);
    n = route_header(v1, &h, buf, sizeof(buf));
    assert_int_equal(n, strlen(v1_line));
    assert_memory_equal(buf, v1_line, (size_t)n);
    h.socktype = SOCK_DGRAM;
    n = route_header(v2, &h, buf, sizeof(buf));
    assert_int_equal(pp_parse(buf, (size_t)n, &got, NULL), n);
    assert_int_equal(got.socktype, SOCK_DGRAM);
    assert_int_equal(got.src.sa.sa_family, AF_INET);
    assert_int_equal(got.dst.sa.sa_family, AF_INET);
    assert_int_equal(got.src.sin.sin_addr.s_addr, htonl(0xc0000201));
    assert_int_equal(got.src.sin.sin_port, htons(5000));
    assert_int_equal(got.dst.sin.sin_addr.s_addr, htonl(0xc6336401));
    assert_int_equal(got.dst.sin.sin_port, htons(80));
    /* one end mapped, the other a real IPv6 address: left as it is */
    h.dst = SA(v6);
    n = route_header(v2, &h, buf, sizeof(buf));
    assert_int_equal(pp_parse(buf, (size_t)n, &got, NULL), n);
    assert_int_equal(got.src.sa.sa_family, AF_INET6);
    /* relayed from an accepted TCP6 header: as it came */
    n = pp_build_v2(buf, sizeof(buf), PP2_CMD_PROXY, SOCK_STREAM, SA(peer), SA(local));
    assert_int_equal(pp_parse(buf, (size_t)n, &acc, NULL), n);
    h = (struct route_hdr){.accepted = &acc, .socktype = SOCK_STREAM};
    route_relayed(&acc, SA(v6), SA(v6), &h.src, &h.dst);
    n = route_header(v2, &h, buf, sizeof(buf));
    assert_int_equal(pp_parse(buf, (size_t)n, &got, NULL), n);
    assert_int_equal(got.src.sa.sa_family, AF_INET6);
    assert_memory_equal(&got.src.sin6.sin6_addr, &acc.src.sin6.sin6_addr, 16);
    route_unref(v1);
    route_unref(v2);
}

/* An accepted v2 header from 203.0.113.9:4000 to 198.51.100.2:443 with an
 * ALPN, an AUTHORITY, a UNIQUE_ID and a CRC32C, parsed into *hdr. */
static void accepted_v2(uint8_t *buf, size_t cap, struct pp_header *hdr, int command)
{
    struct sockaddr_storage src = ip("203.0.113.9", 4000), dst = ip("198.51.100.2", 443);
    ssize_t n = pp_build_v2(buf, cap, command, SOCK_STREAM, SA(src), SA(dst));

    n = pp_build_v2_tlv(buf, cap, (size_t)n, PP2_TYPE_ALPN, "h2", 2);
    n = pp_build_v2_tlv(buf, cap, (size_t)n, PP2_TYPE_AUTHORITY, "in.example", 10);
    n = pp_build_v2_tlv(buf, cap, (size_t)n, PP2_TYPE_UNIQUE_ID, "0123456789abcdef", 16);
    n = pp_build_v2_crc32c(buf, cap, (size_t)n);
    assert_true(n > 0);
    assert_int_equal(pp_parse(buf, (size_t)n, hdr, NULL), n);
}

static int count_tlv(const struct pp_header *h, uint8_t type)
{
    const uint8_t *p = h->tlv, *end = h->tlv + h->tlv_len;
    struct pp_tlv t;
    int k = 0;

    while (pp_tlv_next(&p, end, &t) > 0)
        k += t.type == type;
    return k;
}

static void expect_tlv(const struct pp_header *h, uint8_t type, const void *v, size_t len)
{
    struct pp_tlv t;

    assert_int_equal(count_tlv(h, type), 1);
    assert_int_equal(pp_tlv_find(h, type, &t), 1);
    assert_int_equal(t.len, len);
    assert_memory_equal(t.value, v, len);
}

static void test_header_v2_relayed(void **state)
{
    struct route *r = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?send-proxy=v2&authority=out.example"
                              "&unique-id=on&crc32c=on");
    struct sockaddr_storage peer = ip("10.0.0.1", 1234), local = ip("10.0.0.2", 80);
    uint8_t in[512], out[1024];
    const uint8_t id[16] = "fedcba9876543210";
    struct pp_header acc, got;
    struct route_hdr h = {.accepted = &acc, .socktype = SOCK_STREAM, .unique_id = id};
    ssize_t n;

    (void)state;
    accepted_v2(in, sizeof(in), &acc, PP2_CMD_PROXY);
    route_relayed(&acc, SA(peer), SA(local), &h.src, &h.dst);
    assert_ptr_equal(h.src, &acc.src.sa); /* the header's addresses, not the socket's */
    assert_ptr_equal(h.dst, &acc.dst.sa);
    n = route_header(r, &h, out, sizeof(out));
    assert_true(n > 16);
    assert_int_equal(pp_parse(out, (size_t)n, &got, NULL), n); /* CRC32C checked too */
    assert_int_equal(got.version, 2);
    assert_int_equal(got.command, PP2_CMD_PROXY);
    assert_int_equal(got.socktype, SOCK_STREAM);
    assert_memory_equal(&got.src.sa, &acc.src.sa, sizeof(struct sockaddr_in));
    assert_memory_equal(&got.dst.sa, &acc.dst.sa, sizeof(struct sockaddr_in));
    expect_tlv(&got, PP2_TYPE_ALPN, "h2", 2);                /* passed on */
    expect_tlv(&got, PP2_TYPE_AUTHORITY, "out.example", 11); /* the route's, not the client's */
    expect_tlv(&got, PP2_TYPE_UNIQUE_ID, id, 16);            /* the given one, once */
    assert_int_equal(count_tlv(&got, PP2_TYPE_CRC32C), 1);   /* recomputed, once */
    route_unref(r);
}

static void test_header_v2_drop_local_dgram(void **state)
{
    struct route *drop = mkroute("udp://127.0.0.1:1/127.0.0.1:2?send-proxy=v2&tlvs=drop");
    struct route *pass = mkroute("tcp://127.0.0.1:1/127.0.0.1:2?send-proxy=v2&unique-id=on");
    struct sockaddr_storage peer = ip("10.0.0.1", 1234), local = ip("10.0.0.2", 80);
    uint8_t in[512], out[1024];
    struct pp_header acc, got;
    struct route_hdr h = {.socktype = SOCK_DGRAM};
    struct pp_tlv t1, t2;
    ssize_t n;

    (void)state;
    /* no header received: the socket's own addresses, no TLVs */
    route_relayed(NULL, SA(peer), SA(local), &h.src, &h.dst);
    assert_ptr_equal(h.src, SA(peer));
    n = route_header(drop, &h, out, sizeof(out));
    assert_int_equal(pp_parse(out, (size_t)n, &got, NULL), n);
    assert_int_equal(got.socktype, SOCK_DGRAM);
    assert_int_equal(got.fam, PP2_FAM_UDP4);
    assert_memory_equal(&got.src.sa, &peer, sizeof(struct sockaddr_in));
    assert_int_equal(got.tlv_len, 0);
    /* tlvs=drop: none of the accepted header's TLVs */
    accepted_v2(in, sizeof(in), &acc, PP2_CMD_PROXY);
    h.accepted = &acc;
    route_relayed(&acc, SA(peer), SA(local), &h.src, &h.dst);
    n = route_header(drop, &h, out, sizeof(out));
    assert_int_equal(pp_parse(out, (size_t)n, &got, NULL), n);
    assert_int_equal(got.tlv_len, 0);
    /* LOCAL received: LOCAL sent, the socket's addresses are not claimed */
    accepted_v2(in, sizeof(in), &acc, PP2_CMD_LOCAL);
    route_relayed(&acc, SA(peer), SA(local), &h.src, &h.dst);
    assert_ptr_equal(h.src, SA(peer));
    h.socktype = SOCK_STREAM;
    n = route_header(pass, &h, out, sizeof(out));
    assert_int_equal(pp_parse(out, (size_t)n, &got, NULL), n);
    assert_int_equal(got.command, PP2_CMD_LOCAL);
    /* unique-id without a given one: a fresh random id per header, once */
    assert_int_equal(count_tlv(&got, PP2_TYPE_UNIQUE_ID), 1);
    assert_int_equal(pp_tlv_find(&got, PP2_TYPE_UNIQUE_ID, &t1), 1);
    assert_int_equal(t1.len, 16);
    assert_memory_not_equal(t1.value, "0123456789abcdef", 16); /* not the client's */
    n = route_header(pass, &h, in, sizeof(in));
    assert_int_equal(pp_parse(in, (size_t)n, &acc, NULL), n);
    assert_int_equal(pp_tlv_find(&acc, PP2_TYPE_UNIQUE_ID, &t2), 1);
    assert_memory_not_equal(t1.value, t2.value, 16);
    assert_int_equal(route_header(pass, &h, out, 20), -PP_ENOSPC);
    route_unref(drop);
    route_unref(pass);
}

/* ---- life ------------------------------------------------------------------- */

static void test_lifetime(void **state)
{
    struct cfg c;
    struct cfg_errors errs = {0};
    char tcp[] = "tcp://127.0.0.1:1/127.0.0.1:2", udp[] = "udp://127.0.0.1:3/127.0.0.1:4";
    char *urls[2] = {tcp, udp};
    struct route_cfgs *cs;
    struct route *a, *b;
    int fd;

    (void)state;
    memset(&c, 0, sizeof(c));
    assert_int_equal(cfg_from_urls(&c, urls, 2, &errs), 0);
    cs = route_cfgs_new(&c, 0); /* not owned: the config stays ours */
    a = route_new(&c.routes[0], cs, 2);
    b = route_new(&c.routes[1], cs, 2);
    assert_int_equal(atomic_load(&cs->refs), 3);
    route_cfgs_unref(cs); /* the loader's reference: the routes keep cs */
    assert_int_equal(atomic_load(&cs->refs), 2);
    /* users: a listener and a connection of a, say */
    route_ref(a);
    route_ref(a);
    route_unref(a); /* the set's reference (a reload removed it) */
    route_unref(a); /* the listener closed */
    assert_int_equal(atomic_load(&a->refs), 1);
    assert_string_equal(a->cfg->name, urls[0]); /* alive: ASan would report it freed */
    assert_int_equal(atomic_load(&cs->refs), 2);
    route_unref(a); /* the last connection: a goes, cs stays for b */
    assert_int_equal(atomic_load(&cs->refs), 1);
    assert_int_equal(b->nudp_fds, 2);
    assert_int_equal(b->udp_fds[0], -1);
    assert_int_equal(b->udp_fds[1], -1);
    fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    b->udp_fds[1] = fd; /* a socket no worker took */
    route_unref(b);     /* b goes and cs with it (ASan: no leak); the socket closes */
    assert_int_equal(fcntl(fd, F_GETFD), -1);
    assert_int_equal(errno, EBADF);
    cfg_free(&c);
}

/* A config living in something else (a container route set): freed by its
 * release callback with the last route, not before and not at all while a
 * route of it lives. */
struct holder {
    struct cfg c;
    int released;
};

static void release_holder(void *arg)
{
    struct holder *h = arg;

    cfg_free(&h->c);
    h->released++;
}

static void test_wrapped_release(void **state)
{
    struct holder h;
    struct cfg_errors errs = {0};
    char tcp[] = "tcp://127.0.0.1:1/127.0.0.1:2";
    char *urls[1] = {tcp};
    struct route_cfgs *cs;
    struct route *a;

    (void)state;
    memset(&h, 0, sizeof(h));
    assert_int_equal(cfg_from_urls(&h.c, urls, 1, &errs), 0);
    cs = route_cfgs_wrap(&h.c, release_holder, &h);
    assert_non_null(cs);
    a = route_new(&h.c.routes[0], cs, 1);
    assert_non_null(a);
    route_cfgs_unref(cs); /* the server replaced the set: its route keeps it */
    assert_int_equal(h.released, 0);
    assert_string_equal(a->cfg->name, tcp);
    route_unref(a); /* the last user: the set goes with it */
    assert_int_equal(h.released, 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_admit_peer),
        cmocka_unit_test(test_admit_header),
        cmocka_unit_test(test_admit_datagram),
        cmocka_unit_test(test_admit_client),
        cmocka_unit_test(test_max_conns),
        cmocka_unit_test(test_header_v1),
        cmocka_unit_test(test_header_v2_relayed),
        cmocka_unit_test(test_header_unmapped),
        cmocka_unit_test(test_header_v2_drop_local_dgram),
        cmocka_unit_test(test_lifetime),
        cmocka_unit_test(test_wrapped_release),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
