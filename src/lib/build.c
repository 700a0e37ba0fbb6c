/*
 * build.c - writing v1 lines, v2 headers, TLVs and the SSL TLV value.
 *
 * Every builder computes the size it needs and checks it against the
 * caller's capacity before writing its first byte, so a failure leaves the
 * buffer exactly as it was.
 */
#include "internal.h"

static const uint8_t v4mapped_prefix[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};

static char *fmt_dec(char *p, unsigned v)
{
    char tmp[5];
    int n = 0;

    do {
        tmp[n++] = (char)('0' + v % 10);
        v /= 10;
    } while (v != 0);
    while (n > 0)
        *p++ = tmp[--n];
    return p;
}

static char *fmt_ipv4(char *p, const uint8_t a[4])
{
    for (int i = 0; i < 4; i++) {
        if (i > 0)
            *p++ = '.';
        p = fmt_dec(p, a[i]);
    }
    return p;
}

static char *fmt_hex16(char *p, unsigned v)
{
    static const char digits[] = "0123456789abcdef";
    int shift = 12;

    while (shift > 0 && (v >> shift) == 0)
        shift -= 4;
    for (; shift >= 0; shift -= 4)
        *p++ = digits[(v >> shift) & 0xF];
    return p;
}

/* RFC 5952 canonical text: lowercase, no leading zeros, the longest run of
 * two or more zero groups (the first one on a tie) as "::", and IPv4-mapped
 * addresses with a dotted tail, as inet_ntop writes them. */
static char *fmt_ipv6(char *p, const uint8_t a[16])
{
    unsigned g[8];
    int best = -1, best_len = 1;

    if (memcmp(a, v4mapped_prefix, 12) == 0) {
        memcpy(p, "::ffff:", 7);
        return fmt_ipv4(p + 7, a + 12);
    }
    for (int i = 0; i < 8; i++)
        g[i] = (unsigned)a[2 * i] << 8 | a[2 * i + 1];
    for (int i = 0; i < 8;) {
        int j = i;
        while (j < 8 && g[j] == 0)
            j++;
        if (j - i > best_len) {
            best = i;
            best_len = j - i;
        }
        i = j > i ? j : i + 1;
    }
    for (int i = 0; i < 8;) {
        if (i == best) {
            *p++ = ':';
            *p++ = ':';
            i += best_len;
            continue;
        }
        if (i > 0 && i != best + best_len)
            *p++ = ':';
        p = fmt_hex16(p, g[i++]);
    }
    return p;
}

static int is_ip(const struct sockaddr *sa)
{
    return sa != NULL && (sa->sa_family == AF_INET || sa->sa_family == AF_INET6);
}

/* The 16 address bytes of sa as IPv6, mapping IPv4. */
static void addr_as_v6(const struct sockaddr *sa, uint8_t out[16])
{
    if (sa->sa_family == AF_INET6) {
        memcpy(out, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
    } else {
        memcpy(out, v4mapped_prefix, 12);
        memcpy(out + 12, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
    }
}

/* The port of an AF_INET or AF_INET6 address, in network byte order. */
static uint16_t port_of(const struct sockaddr *sa)
{
    if (sa->sa_family == AF_INET6)
        return ((const struct sockaddr_in6 *)(const void *)sa)->sin6_port;
    return ((const struct sockaddr_in *)(const void *)sa)->sin_port;
}

PP_API ssize_t pp_build_v1(uint8_t *buf, size_t cap, const struct sockaddr *src,
                           const struct sockaddr *dst)
{
    char line[PP_V1_MAX_LEN], *p = line;
    size_t n;

    if (!is_ip(src) || !is_ip(dst)) {
        memcpy(p, "PROXY UNKNOWN\r\n", PP_MIN_LEN);
        p += PP_MIN_LEN;
    } else if (src->sa_family == AF_INET && dst->sa_family == AF_INET) {
        memcpy(p, "PROXY TCP4 ", 11);
        p = fmt_ipv4(p + 11,
                     (const uint8_t *)&((const struct sockaddr_in *)(const void *)src)->sin_addr);
        *p++ = ' ';
        p = fmt_ipv4(p,
                     (const uint8_t *)&((const struct sockaddr_in *)(const void *)dst)->sin_addr);
    } else {
        uint8_t a[16];
        memcpy(p, "PROXY TCP6 ", 11);
        addr_as_v6(src, a);
        p = fmt_ipv6(p + 11, a);
        *p++ = ' ';
        addr_as_v6(dst, a);
        p = fmt_ipv6(p, a);
    }
    if (is_ip(src) && is_ip(dst)) {
        *p++ = ' ';
        p = fmt_dec(p, ntohs(port_of(src)));
        *p++ = ' ';
        p = fmt_dec(p, ntohs(port_of(dst)));
        *p++ = '\r';
        *p++ = '\n';
    }
    n = (size_t)(p - line);
    if (n > cap)
        return -PP_ENOSPC;
    memcpy(buf, line, n);
    return (ssize_t)n;
}

/* The fam byte for a PROXY header from src to dst, or -PP_EINVAL. */
static int v2_fam(int socktype, const struct sockaddr *src, const struct sockaddr *dst)
{
    int trans;

    if (socktype == SOCK_STREAM)
        trans = PP2_TRANS_STREAM;
    else if (socktype == SOCK_DGRAM)
        trans = PP2_TRANS_DGRAM;
    else
        return -PP_EINVAL;
    if (src == NULL || dst == NULL || src->sa_family == AF_UNSPEC || dst->sa_family == AF_UNSPEC)
        return PP2_FAM_UNSPEC_UNSPEC;
    if (src->sa_family == AF_INET && dst->sa_family == AF_INET)
        return PP2_FAM_INET | trans;
    if (is_ip(src) && is_ip(dst))
        return PP2_FAM_INET6 | trans;
    if (src->sa_family == AF_UNIX && dst->sa_family == AF_UNIX)
        return PP2_FAM_UNIX | trans;
    return -PP_EINVAL;
}

static void put_unix_path(uint8_t *p, const struct sockaddr *sa)
{
    const char *path = ((const struct sockaddr_un *)(const void *)sa)->sun_path;
    size_t n = strnlen(path, PP2_UNIX_PATH_LEN);

    memcpy(p, path, n);
    memset(p + n, 0, PP2_UNIX_PATH_LEN - n);
}

static void put_addrs(uint8_t *p, int fam, const struct sockaddr *src, const struct sockaddr *dst)
{
    uint16_t sport, dport;

    switch (fam & 0xF0) {
    case PP2_FAM_INET:
        memcpy(p, &((const struct sockaddr_in *)(const void *)src)->sin_addr, 4);
        memcpy(p + 4, &((const struct sockaddr_in *)(const void *)dst)->sin_addr, 4);
        sport = port_of(src);
        dport = port_of(dst);
        memcpy(p + 8, &sport, 2);
        memcpy(p + 10, &dport, 2);
        break;
    case PP2_FAM_INET6:
        addr_as_v6(src, p);
        addr_as_v6(dst, p + 16);
        sport = port_of(src);
        dport = port_of(dst);
        memcpy(p + 32, &sport, 2);
        memcpy(p + 34, &dport, 2);
        break;
    case PP2_FAM_UNIX:
        put_unix_path(p, src);
        put_unix_path(p + PP2_UNIX_PATH_LEN, dst);
        break;
    default:
        break;
    }
}

PP_API ssize_t pp_build_v2(uint8_t *buf, size_t cap, int command, int socktype,
                           const struct sockaddr *src, const struct sockaddr *dst)
{
    int fam;
    size_t alen;

    if (command == PP2_CMD_LOCAL)
        fam = PP2_FAM_UNSPEC_UNSPEC;
    else if (command == PP2_CMD_PROXY)
        fam = v2_fam(socktype, src, dst);
    else
        return -PP_EINVAL;
    if (fam < 0)
        return fam;
    alen = (size_t)pp__addr_len((uint8_t)fam);
    if (cap < PP_V2_HDR_LEN + alen)
        return -PP_ENOSPC;
    memcpy(buf, PP_V2_SIG, PP_V2_SIG_LEN);
    buf[12] = (uint8_t)(PP2_VERSION | command);
    buf[13] = (uint8_t)fam;
    wr16be(buf + 14, (uint16_t)alen);
    put_addrs(buf + PP_V2_HDR_LEN, fam, src, dst);
    return (ssize_t)(PP_V2_HDR_LEN + alen);
}

/* Checks that buf holds a v2 header of exactly hdr_len bytes that can grow
 * by add bytes, and fits in cap once grown. */
static int check_append(const uint8_t *buf, size_t cap, size_t hdr_len, size_t add)
{
    /* The signature compared as two words: a fixed-size memcpy is inlined,
     * a memcmp is a call (this runs for every TLV appended). */
    uint64_t sig8, buf8;
    uint32_t sig4, buf4;

    if (hdr_len < PP_V2_HDR_LEN || hdr_len > cap)
        return -PP_EINVAL;
    memcpy(&sig8, PP_V2_SIG, 8);
    memcpy(&sig4, &PP_V2_SIG[8], 4);
    memcpy(&buf8, buf, 8);
    memcpy(&buf4, buf + 8, 4);
    if (sig8 != buf8 || sig4 != buf4 ||
        (buf[12] & 0xF0) != PP2_VERSION || PP_V2_HDR_LEN + (size_t)rd16be(buf + 14) != hdr_len)
        return -PP_EINVAL;
    if (add > PP_V2_MAX_LEN - hdr_len)
        return -PP_EINVAL;
    if (add > cap - hdr_len)
        return -PP_ENOSPC;
    return 0;
}

PP_API ssize_t pp_build_v2_tlv(uint8_t *buf, size_t cap, size_t hdr_len, uint8_t type,
                               const void *value, size_t vlen)
{
    uint8_t *p = buf + hdr_len;
    int rc;

    if (vlen > 0xFFFF || (value == NULL && vlen > 0))
        return -PP_EINVAL;
    rc = check_append(buf, cap, hdr_len, 3 + vlen);
    if (rc < 0)
        return rc;
    p[0] = type;
    wr16be(p + 1, (uint16_t)vlen);
    if (vlen > 0)
        memcpy(p + 3, value, vlen);
    hdr_len += 3 + vlen;
    wr16be(buf + 14, (uint16_t)(hdr_len - PP_V2_HDR_LEN));
    return (ssize_t)hdr_len;
}

/* Whether the TLV of this type is copied by pp_build_v2_tlvs. */
static int tlv_kept(const struct pp_tlv_set *keep, uint8_t type)
{
    return type != PP2_TYPE_CRC32C && (keep == NULL || pp_tlv_set_has(keep, type));
}

/* Copies the kept TLVs of tlvs[0..len) to out in one pass, checking the
 * block as it goes. Returns the bytes written or -PP_EBADTLV. The caller
 * made sure len bytes fit at out. */
static ssize_t copy_kept(uint8_t *out, const uint8_t *tlvs, size_t len,
                         const struct pp_tlv_set *keep)
{
    const uint8_t *p = tlvs, *end = tlvs + len;
    uint8_t *o = out;

    while (p != end) {
        size_t n;

        if (end - p < 3)
            return -PP_EBADTLV;
        n = 3 + (size_t)rd16be(p + 1);
        if ((size_t)(end - p) < n)
            return -PP_EBADTLV;
        if (tlv_kept(keep, p[0])) {
            memcpy(o, p, n);
            o += n;
        }
        p += n;
    }
    return o - out;
}

PP_API ssize_t pp_build_v2_tlvs(uint8_t *buf, size_t cap, size_t hdr_len, const uint8_t *tlvs,
                                size_t len, const struct pp_tlv_set *keep)
{
    const uint8_t *p, *end;
    ssize_t add;
    size_t n, need = 0;
    int rc;

    if (len == 0)
        return check_append(buf, cap, hdr_len, 0) < 0 ? -PP_EINVAL : (ssize_t)hdr_len;
    if (tlvs == NULL)
        return -PP_EINVAL;
    /* The usual case, room for the whole block: one pass that checks and
     * copies (the TLV walk is a chain of dependent loads, so a second pass
     * would double its cost). Only the length field makes the bytes part of
     * the header, and it is written last. */
    rc = check_append(buf, cap, hdr_len, len);
    if (rc == 0) {
        add = copy_kept(buf + hdr_len, tlvs, len, keep);
        if (add < 0)
            return add;
    } else {
        /* Less room than the block: count what is kept, then copy it. */
        end = tlvs + len;
        for (p = tlvs; p != end; p += n) {
            if (end - p < 3 || (size_t)(end - p) - 3 < rd16be(p + 1))
                return -PP_EBADTLV;
            n = 3 + (size_t)rd16be(p + 1);
            if (tlv_kept(keep, p[0]))
                need += n;
        }
        rc = check_append(buf, cap, hdr_len, need);
        if (rc < 0)
            return rc;
        add = copy_kept(buf + hdr_len, tlvs, len, keep);
    }
    hdr_len += (size_t)add;
    wr16be(buf + 14, (uint16_t)(hdr_len - PP_V2_HDR_LEN));
    return (ssize_t)hdr_len;
}

PP_API ssize_t pp_build_v2_crc32c(uint8_t *buf, size_t cap, size_t hdr_len)
{
    static const uint8_t zero[4];
    ssize_t n = pp_build_v2_tlv(buf, cap, hdr_len, PP2_TYPE_CRC32C, zero, 4);

    if (n < 0)
        return n;
    wr32be(buf + n - 4, pp_crc32c(0, buf, (size_t)n));
    return n;
}

static uint8_t *put_sub(uint8_t *p, uint8_t type, const struct pp_str *s)
{
    if (s->ptr == NULL)
        return p;
    p[0] = type;
    wr16be(p + 1, (uint16_t)s->len);
    memcpy(p + 3, s->ptr, s->len);
    return p + 3 + s->len;
}

PP_API ssize_t pp_build_ssl(uint8_t *buf, size_t cap, const struct pp_ssl *ssl)
{
    const struct pp_str *subs[] = {&ssl->version, &ssl->cn,    &ssl->cipher,     &ssl->sig_alg,
                                   &ssl->key_alg, &ssl->group, &ssl->sig_scheme, &ssl->client_cert};
    size_t n = PP2_SSL_FIXED_LEN;
    uint8_t *p = buf;

    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++) {
        if (subs[i]->ptr == NULL)
            continue;
        if (subs[i]->len > 0xFFFF)
            return -PP_EINVAL;
        n += 3 + subs[i]->len;
    }
    if (n > 0xFFFF)
        return -PP_EINVAL;
    if (n > cap)
        return -PP_ENOSPC;
    *p++ = ssl->client;
    wr32be(p, ssl->verify);
    p += 4;
    for (size_t i = 0; i < sizeof(subs) / sizeof(subs[0]); i++)
        p = put_sub(p, (uint8_t)(PP2_SUBTYPE_SSL_VERSION + i), subs[i]);
    return (ssize_t)n;
}
