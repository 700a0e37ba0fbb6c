/*
 * parse_v1.c - the text header: "PROXY TCP4|TCP6|UNKNOWN ... \r\n".
 *
 * The whole line is located first (its CR must be within PP_V1_MAX_LEN
 * bytes), then the fields are read left to right. The field readers rely on
 * the CR that ends the line as a sentinel: every reader stops at the first
 * byte it does not accept, and CR is accepted by none, so they never need to
 * compare against the end pointer.
 */
#include "internal.h"

#define V1_PREFIX "PROXY "
#define V1_PREFIX_LEN 6

/* Hex digit values, -1 for every other byte. */
static const int8_t hex_table[256] = {
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    0,  1,  2,  3,  4,  5,  6,  7,  8,  9,  -1, -1, -1, -1, -1, -1, -1, 10, 11, 12, 13, 14, 15, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, 10, 11, 12, 13, 14, 15, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
    -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1, -1,
};

static inline int hexval(uint8_t c)
{
    return hex_table[c];
}

static inline int is_digit(uint8_t c)
{
    return (unsigned)(c - '0') < 10;
}

/* One IPv4 octet, 0-255 without a leading zero. Each digit is looked at
 * only if the one before was a digit, so the CR sentinel bounds the reads. */
static inline const uint8_t *read_octet(const uint8_t *p, uint8_t *out)
{
    unsigned d0 = (unsigned)(p[0] - '0'), d1, d2, v;

    if (d0 > 9)
        return NULL;
    d1 = (unsigned)(p[1] - '0');
    if (d1 > 9) {
        *out = (uint8_t)d0;
        return p + 1;
    }
    if (d0 == 0)
        return NULL;
    d2 = (unsigned)(p[2] - '0');
    if (d2 > 9) {
        *out = (uint8_t)(d0 * 10 + d1);
        return p + 2;
    }
    v = d0 * 100 + d1 * 10 + d2;
    if (v > 255 || is_digit(p[3]))
        return NULL;
    *out = (uint8_t)v;
    return p + 3;
}

/* Dotted quad, four decimal octets 0-255 without leading zeros. */
static const uint8_t *parse_ipv4(const uint8_t *p, uint8_t out[4])
{
    for (int i = 0; i < 4; i++) {
        if (i > 0 && *p++ != '.')
            return NULL;
        p = read_octet(p, &out[i]);
        if (p == NULL)
            return NULL;
    }
    return p;
}

/* Puts the dotted IPv4 address at q into groups g[n], g[n + 1]. */
static const uint8_t *ipv6_dotted_tail(const uint8_t *q, uint16_t *g)
{
    uint8_t v4[4];

    q = parse_ipv4(q, v4);
    if (q == NULL)
        return NULL;
    g[0] = (uint16_t)(v4[0] << 8 | v4[1]);
    g[1] = (uint16_t)(v4[2] << 8 | v4[3]);
    return q;
}

/* One group of 1-4 hex digits. p[i] is read only after p[i - 1] was a
 * digit, so the CR sentinel bounds the reads. */
static inline const uint8_t *read_group(const uint8_t *p, unsigned *out)
{
    int d = hexval(p[0]);
    unsigned v;

    if (d < 0)
        return NULL;
    v = (unsigned)d;
    for (int i = 1; i < 4; i++) {
        d = hexval(p[i]);
        if (d < 0) {
            *out = v;
            return p + i;
        }
        v = v << 4 | (unsigned)d;
    }
    if (hexval(p[4]) >= 0)
        return NULL;
    *out = v;
    return p + 4;
}

/*
 * RFC 4291 text form: up to eight groups of 1-4 hex digits, at most one "::"
 * for a run of zero groups, and optionally a dotted IPv4 address as the last
 * 32 bits (which is how ::ffff:a.b.c.d arrives from HAProxy). With
 * allow_v4, a plain dotted IPv4 address is taken as IPv4-mapped.
 */
static const uint8_t *parse_ipv6(const uint8_t *p, uint8_t out[16], int allow_v4)
{
    uint16_t g[8];
    int n = 0, gap = -1;

    if (*p == ':') {
        if (p[1] != ':')
            return NULL;
        p += 2;
        gap = 0;
        if (hexval(*p) < 0)
            goto expand;
    }
    for (;;) {
        const uint8_t *q = p;
        unsigned v;

        p = read_group(p, &v);
        if (p == NULL)
            return NULL;
        if (*p == '.') {
            if (n == 0 && gap < 0) {
                if (!allow_v4)
                    return NULL;
                memset(g, 0, 5 * sizeof(g[0]));
                g[5] = 0xffff;
                n = 6;
            } else if (n > 6) {
                return NULL;
            }
            p = ipv6_dotted_tail(q, &g[n]);
            if (p == NULL)
                return NULL;
            n += 2;
            break;
        }
        if (n == 8)
            return NULL;
        g[n++] = (uint16_t)v;
        if (*p != ':')
            break;
        if (p[1] == ':') {
            if (gap >= 0)
                return NULL;
            gap = n;
            p += 2;
            if (hexval(*p) < 0)
                break;
        } else {
            p++;
        }
    }
expand:
    if (gap < 0) {
        if (n != 8)
            return NULL;
    } else {
        /* "::" stands for at least one zero group. */
        int tail = n - gap;
        if (n > 7)
            return NULL;
        memmove(&g[8 - tail], &g[gap], (size_t)tail * sizeof(g[0]));
        memset(&g[gap], 0, (size_t)(8 - n) * sizeof(g[0]));
    }
    for (int i = 0; i < 8; i++) {
        out[2 * i] = (uint8_t)(g[i] >> 8);
        out[2 * i + 1] = (uint8_t)g[i];
    }
    return p;
}

/* A field must start right here: an empty one is a spacing error. */
static inline int field_missing(const uint8_t *p)
{
    return *p == ' ' || *p == '\r';
}

static const uint8_t *parse_port(const uint8_t *p, uint16_t *port, int *err)
{
    const uint8_t *start = p;
    unsigned v = 0;

    if (field_missing(p)) {
        *err = -PP_EBADLINE;
        return NULL;
    }
    while (is_digit(*p) && p - start < 5)
        v = v * 10 + (unsigned)(*p++ - '0');
    if (p == start || (*start == '0' && p - start > 1) || v > 65535 || (*p != ' ' && *p != '\r')) {
        *err = -PP_EBADPORT;
        return NULL;
    }
    *port = htons((uint16_t)v);
    return p;
}

static const uint8_t *parse_addr(const uint8_t *p, int af, union pp_addr *a, unsigned flags,
                                 int *err)
{
    const uint8_t *q;

    if (field_missing(p)) {
        *err = -PP_EBADLINE;
        return NULL;
    }
    if (af == AF_INET) {
        a->sin.sin_family = AF_INET;
        memset(a->sin.sin_zero, 0, sizeof(a->sin.sin_zero));
        q = parse_ipv4(p, (uint8_t *)&a->sin.sin_addr);
    } else {
        memset(&a->sin6, 0, sizeof(a->sin6));
        a->sin6.sin6_family = AF_INET6;
        q = parse_ipv6(p, a->sin6.sin6_addr.s6_addr, flags & PP_PARSE_V1_IPV4_IN_TCP6);
    }
    if (q == NULL || (*q != ' ' && *q != '\r')) {
        *err = -PP_EBADADDR;
        return NULL;
    }
    return q;
}

/* "SRC DST SPORT DPORT" ending exactly at the CR. */
static int parse_fields(const uint8_t *p, const uint8_t *cr, int af, struct pp_header *hdr,
                        unsigned flags)
{
    int err = -PP_EBADLINE;
    uint16_t sport, dport;

    p = parse_addr(p, af, &hdr->src, flags, &err);
    if (p == NULL)
        return err;
    if (*p++ != ' ')
        return -PP_EBADLINE;
    p = parse_addr(p, af, &hdr->dst, flags, &err);
    if (p == NULL)
        return err;
    if (*p++ != ' ')
        return -PP_EBADLINE;
    p = parse_port(p, &sport, &err);
    if (p == NULL)
        return err;
    if (*p++ != ' ')
        return -PP_EBADLINE;
    p = parse_port(p, &dport, &err);
    if (p == NULL)
        return err;
    if (p != cr)
        return -PP_EBADLINE;
    if (af == AF_INET) {
        hdr->src.sin.sin_port = sport;
        hdr->dst.sin.sin_port = dport;
    } else {
        hdr->src.sin6.sin6_port = sport;
        hdr->dst.sin6.sin6_port = dport;
    }
    return 0;
}

/*
 * No CR yet: decide whether the bytes so far can still become a header, so
 * that garbage is refused now rather than at the caller's deadline.
 */
static ssize_t check_prefix(const uint8_t *buf, size_t len)
{
    static const char *const protos[] = {"TCP4 ", "TCP6 ", "UNKNOWN"};
    const uint8_t *p = buf + V1_PREFIX_LEN, *end = buf + len;
    size_t n = len - V1_PREFIX_LEN;
    int match = -1;

    for (int i = 0; i < 3 && match < 0; i++) {
        size_t plen = strlen(protos[i]);
        if (memcmp(p, protos[i], n < plen ? n : plen) == 0)
            match = i;
    }
    if (match < 0)
        return -PP_EBADPROTO;
    if (match == 2) {
        if (n > 7 && p[7] != ' ')
            return -PP_EBADPROTO;
        return 0;
    }
    for (p += n < 5 ? n : 5; p < end; p++) {
        if (hexval(*p) < 0 && *p != '.' && *p != ':' && *p != ' ')
            return -PP_EBADLINE;
        if (*p == ' ' && p[-1] == ' ')
            return -PP_EBADLINE;
    }
    return 0;
}

/* A line with the given error: report a bare LF before its CR as such,
 * since that is the real cause of whatever the field readers tripped on. */
static ssize_t line_error(const uint8_t *buf, const uint8_t *cr, int err)
{
    if (memchr(buf, '\n', (size_t)(cr - buf)) != NULL)
        return -PP_EBADCRLF;
    return err;
}

ssize_t pp__parse_v1(const uint8_t *buf, size_t len, struct pp_header *hdr, unsigned flags)
{
    const uint8_t *cr, *p;
    size_t scan, total, rest;
    int rc;

    /* A constant length lets the compiler inline the comparison. */
    if (len <= V1_PREFIX_LEN)
        return memcmp(buf, V1_PREFIX, len) == 0 ? 0 : -PP_EBADSIG;
    if (memcmp(buf, V1_PREFIX, V1_PREFIX_LEN) != 0)
        return -PP_EBADSIG;

    /* The CR may be at most at index PP_V1_MAX_LEN - 2, its LF right after. */
    scan = len < PP_V1_MAX_LEN - 1 ? len : PP_V1_MAX_LEN - 1;
    cr = memchr(buf + V1_PREFIX_LEN, '\r', scan - V1_PREFIX_LEN);
    if (cr == NULL) {
        if (memchr(buf + V1_PREFIX_LEN, '\n', scan - V1_PREFIX_LEN) != NULL)
            return -PP_EBADCRLF;
        if (len >= PP_V1_MAX_LEN - 1)
            return -PP_ETOOLONG;
        return check_prefix(buf, len);
    }
    total = (size_t)(cr - buf) + 2;
    if (total > len)
        return line_error(buf, cr, check_prefix(buf, (size_t)(cr - buf)));
    if (cr[1] != '\n')
        return -PP_EBADCRLF;

    p = buf + V1_PREFIX_LEN;
    hdr->version = 1;
    hdr->flags = 0;
    hdr->len = total;
    hdr->tlv = NULL;
    hdr->tlv_len = 0;
    /* Compare only inside the line: memcmp may read all n bytes. */
    rest = (size_t)(cr - p);
    if (rest >= 5 && (memcmp(p, "TCP4 ", 5) == 0 || memcmp(p, "TCP6 ", 5) == 0)) {
        int af = p[3] == '4' ? AF_INET : AF_INET6;
        rc = parse_fields(p + 5, cr, af, hdr, flags);
        if (rc < 0)
            return line_error(buf, cr, rc);
        hdr->command = PP2_CMD_PROXY;
        hdr->fam = af == AF_INET ? PP2_FAM_TCP4 : PP2_FAM_TCP6;
        hdr->socktype = SOCK_STREAM;
        return (ssize_t)total;
    }
    if (rest == 4 && (memcmp(p, "TCP4", 4) == 0 || memcmp(p, "TCP6", 4) == 0))
        return -PP_EBADLINE;
    /* UNKNOWN: whatever follows up to the CRLF is ignored (spec 2.1). */
    if (rest < 7 || memcmp(p, "UNKNOWN", 7) != 0 || (p[7] != '\r' && p[7] != ' '))
        return line_error(buf, cr, -PP_EBADPROTO);
    if (memchr(p, '\n', (size_t)(cr - p)) != NULL)
        return -PP_EBADCRLF;
    hdr->command = PP2_CMD_LOCAL;
    hdr->fam = PP2_FAM_UNSPEC_UNSPEC;
    hdr->socktype = 0;
    hdr->src.sa.sa_family = AF_UNSPEC;
    hdr->dst.sa.sa_family = AF_UNSPEC;
    return (ssize_t)total;
}
