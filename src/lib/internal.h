/*
 * internal.h - helpers shared by the library's files; not installed.
 * Wire bytes are read and written through these helpers, never through
 * struct casts, so alignment and byte order are explicit.
 */
#ifndef PP_INTERNAL_H
#define PP_INTERNAL_H

#include <stdint.h>
#include <string.h>

#include "proxyproto.h"

#define PP_API __attribute__((visibility("default")))

_Static_assert(PP_V1_MAX_LEN == sizeof("PROXY UNKNOWN ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff "
                                       "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff 65535 65535\r\n") -
                                    1,
               "PP_V1_MAX_LEN is the worst-case UNKNOWN line");
_Static_assert(PP_MIN_LEN == sizeof("PROXY UNKNOWN\r\n") - 1, "shortest header");
_Static_assert(PP_V2_SIG_LEN == sizeof(PP_V2_SIG) - 1, "v2 signature length");
_Static_assert(PP2_ADDR_LEN_UNIX == 2 * PP2_UNIX_PATH_LEN, "UNIX address block");
_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) == PP2_UNIX_PATH_LEN,
               "sun_path holds a v2 UNIX address");

static inline uint16_t rd16be(const uint8_t *p)
{
    return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t rd32be(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static inline void wr16be(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)(v >> 8);
    p[1] = (uint8_t)v;
}

static inline void wr32be(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24);
    p[1] = (uint8_t)(v >> 16);
    p[2] = (uint8_t)(v >> 8);
    p[3] = (uint8_t)v;
}

/* Size of the address block for a v2 fam byte, or -1 for an undefined one. */
static inline int pp__addr_len(uint8_t fam)
{
    switch (fam) {
    case PP2_FAM_UNSPEC_UNSPEC:
        return 0;
    case PP2_FAM_TCP4:
    case PP2_FAM_UDP4:
        return PP2_ADDR_LEN_INET;
    case PP2_FAM_TCP6:
    case PP2_FAM_UDP6:
        return PP2_ADDR_LEN_INET6;
    case PP2_FAM_UNIX_STREAM:
    case PP2_FAM_UNIX_DGRAM:
        return PP2_ADDR_LEN_UNIX;
    default:
        return -1;
    }
}

ssize_t pp__parse_v1(const uint8_t *buf, size_t len, struct pp_header *hdr, unsigned flags);
ssize_t pp__parse_v2(const uint8_t *buf, size_t len, struct pp_header *hdr,
                     const struct pp_parse_opts *opts);

/* Validates the TLV area [p, end) of a v2 header the way pp_parse does and
 * verifies a CRC32C TLV against hdr[0..hdr_len) unless no_crc is set.
 * Returns 0, or -PP_EBADTLV / -PP_ETLVLEN / -PP_EBADCRC. Sets *crc_ok to 1 if
 * a CRC32C TLV was verified. */
int pp__tlv_validate(const uint8_t *hdr, size_t hdr_len, const uint8_t *p, const uint8_t *end,
                     int no_crc, int *crc_ok);

/* CRC32c implementations behind pp_crc32c(), exposed for the tests that check
 * both give the same result. pp__crc32c_hw must only be called when
 * pp__cpu_has_crc32c() is true. */
uint32_t pp__crc32c_sw(uint32_t crc, const uint8_t *p, size_t len);
uint32_t pp__crc32c_hw(uint32_t crc, const uint8_t *p, size_t len);
int pp__cpu_has_crc32c(void);

/* CRC32c of p[0..len) as a finished value, with the 4 bytes at p + hole
 * counted as zeros: the check of a header's own CRC32C TLV. */
uint32_t pp__crc32c_hole(const uint8_t *p, size_t len, size_t hole);

#endif /* PP_INTERNAL_H */
