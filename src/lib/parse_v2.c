/*
 * parse_v2.c - the binary header: 16 fixed bytes, an address block whose
 * size the fam byte gives, then TLVs up to 16 + len.
 *
 * Everything that can be decided from the 16 fixed bytes (version, command,
 * family, the length cap, a length too short for the address block) is
 * decided before waiting for the rest, so a bad header is refused as soon as
 * its first 16 bytes are in.
 */
#include "internal.h"

/* Checks the fixed part that has arrived so far (len may be < 16). */
static int check_fixed(const uint8_t *buf, size_t len)
{
    if (len < PP_V2_SIG_LEN)
        return memcmp(buf, PP_V2_SIG, len) == 0 ? 0 : -PP_EBADSIG;
    /* A constant length lets the compiler inline the comparison. */
    if (memcmp(buf, PP_V2_SIG, PP_V2_SIG_LEN) != 0)
        return -PP_EBADSIG;
    if (len > 12) {
        if ((buf[12] & 0xF0) != PP2_VERSION)
            return -PP_EBADVER;
        if ((buf[12] & 0x0F) > PP2_CMD_PROXY)
            return -PP_EBADCMD;
    }
    if (len > 13 && pp__addr_len(buf[13]) < 0)
        return -PP_EBADFAM;
    return 0;
}

static void set_inet(union pp_addr *a, const uint8_t *addr, const uint8_t *port)
{
    a->sin.sin_family = AF_INET;
    memcpy(&a->sin.sin_addr, addr, 4);
    memcpy(&a->sin.sin_port, port, 2);
    memset(a->sin.sin_zero, 0, sizeof(a->sin.sin_zero));
}

static void set_inet6(union pp_addr *a, const uint8_t *addr, const uint8_t *port)
{
    a->sin6.sin6_family = AF_INET6;
    memcpy(&a->sin6.sin6_port, port, 2);
    a->sin6.sin6_flowinfo = 0;
    memcpy(&a->sin6.sin6_addr, addr, 16);
    a->sin6.sin6_scope_id = 0;
}

static void set_unix(union pp_addr *a, const uint8_t *path)
{
    a->sun.sun_family = AF_UNIX;
    memcpy(a->sun.sun_path, path, PP2_UNIX_PATH_LEN);
}

/* Fills src and dst from the address block at p (PROXY command only). */
static void set_addrs(struct pp_header *hdr, const uint8_t *p)
{
    switch (hdr->fam & 0xF0) {
    case PP2_FAM_INET:
        set_inet(&hdr->src, p, p + 8);
        set_inet(&hdr->dst, p + 4, p + 10);
        break;
    case PP2_FAM_INET6:
        set_inet6(&hdr->src, p, p + 32);
        set_inet6(&hdr->dst, p + 16, p + 34);
        break;
    case PP2_FAM_UNIX:
        set_unix(&hdr->src, p);
        set_unix(&hdr->dst, p + PP2_UNIX_PATH_LEN);
        break;
    default:
        hdr->src.sa.sa_family = AF_UNSPEC;
        hdr->dst.sa.sa_family = AF_UNSPEC;
        break;
    }
}

ssize_t pp__parse_v2(const uint8_t *buf, size_t len, struct pp_header *hdr,
                     const struct pp_parse_opts *opts)
{
    size_t cap = opts->max_len ? opts->max_len : PP_V2_DEFAULT_CAP;
    size_t total, alen;
    int rc, crc_ok = 0;

    rc = check_fixed(buf, len);
    if (rc < 0 || len < PP_V2_HDR_LEN)
        return rc;

    total = PP_V2_HDR_LEN + (size_t)rd16be(buf + 14);
    if (total > cap)
        return -PP_ETOOLONG;
    alen = (size_t)pp__addr_len(buf[13]);
    if (total - PP_V2_HDR_LEN < alen) {
        /* LOCAL ignores its family and the receiver must skip len bytes
         * whatever they are (spec 2.2): all of them are the block. */
        if ((buf[12] & 0x0F) != PP2_CMD_LOCAL)
            return -PP_EADDRLEN;
        alen = total - PP_V2_HDR_LEN;
    }
    if ((buf[12] & 0x0F) == PP2_CMD_PROXY && buf[13] == PP2_FAM_UNSPEC_UNSPEC &&
        (opts->flags & PP_PARSE_REJECT_UNSPEC))
        return -PP_EUNSPEC;
    if (len < total)
        return 0;

    rc = pp__tlv_validate(buf, total, buf + PP_V2_HDR_LEN + alen, buf + total,
                          opts->flags & PP_PARSE_NO_CRC, &crc_ok);
    if (rc < 0)
        return rc;

    hdr->version = 2;
    hdr->command = buf[12] & 0x0F;
    hdr->fam = buf[13];
    hdr->flags = crc_ok ? PP_HDR_CRC_VERIFIED : 0;
    hdr->socktype = (hdr->fam & 0x0F) == PP2_TRANS_STREAM  ? SOCK_STREAM
                    : (hdr->fam & 0x0F) == PP2_TRANS_DGRAM ? SOCK_DGRAM
                                                           : 0;
    hdr->len = total;
    hdr->tlv = buf + PP_V2_HDR_LEN + alen;
    hdr->tlv_len = total - PP_V2_HDR_LEN - alen;
    if (hdr->command == PP2_CMD_PROXY) {
        set_addrs(hdr, buf + PP_V2_HDR_LEN);
    } else {
        /* LOCAL: the receiver uses its real endpoints; the block is skipped. */
        hdr->src.sa.sa_family = AF_UNSPEC;
        hdr->dst.sa.sa_family = AF_UNSPEC;
    }
    return (ssize_t)total;
}
