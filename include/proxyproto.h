/*
 * proxyproto.h - parse and build HAProxy PROXY protocol v1 and v2 headers.
 *
 * libproxyproto depends on libc alone. It never allocates, never does I/O and
 * keeps no global state beyond a CPU-feature cache, so every function is safe
 * to call from any number of threads at once on distinct buffers.
 *
 * Conventions used throughout:
 *  - Functions that can fail return a negative PP_E* code (-PP_EBADSIG, ...);
 *    pp_strerror() turns one into a message. Positive codes are never returned
 *    as errors.
 *  - Parsers take (buf, len) and never read outside [buf, buf + len) nor write
 *    to it. Results that refer to bytes (TLV values, strings) point into buf
 *    and live exactly as long as the caller keeps buf alive and unchanged.
 *  - Builders take (buf, cap), write inside [buf, buf + cap) only, and return
 *    the number of bytes written or -PP_ENOSPC. On any error they leave the
 *    caller's buffer as it was: a partial header is never emitted.
 *  - Strings carried in TLVs are not NUL-terminated; they come as struct pp_str.
 *
 * Specification: HAProxy doc/proxy-protocol.txt (revision 2026/04/27).
 */
#ifndef PP_PROXYPROTO_H
#define PP_PROXYPROTO_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <netinet/in.h>

#ifdef __cplusplus
extern "C" {
#endif

#define PP_VERSION_STRING "0.1.0"

/* ---- Limits from the specification -------------------------------------- */

/* Longest legal v1 line, CRLF included: "PROXY UNKNOWN " followed by two
 * 39-character IPv6 addresses and two 5-digit ports. */
#define PP_V1_MAX_LEN 107
/* Shortest legal header of either version: "PROXY UNKNOWN\r\n". */
#define PP_MIN_LEN 15
#define PP_V2_SIG "\r\n\r\n\0\r\nQUIT\n"
#define PP_V2_SIG_LEN 12
/* Fixed part of a v2 header: signature, ver_cmd, fam, 16-bit length. */
#define PP_V2_HDR_LEN 16
/* Largest v2 header the 16-bit length field can describe. */
#define PP_V2_MAX_LEN (PP_V2_HDR_LEN + 65535)
/* Default cap on the total v2 header length (see struct pp_parse_opts). */
#define PP_V2_DEFAULT_CAP 4096

#define PP2_ADDR_LEN_INET 12
#define PP2_ADDR_LEN_INET6 36
#define PP2_ADDR_LEN_UNIX 216
#define PP2_UNIX_PATH_LEN 108

/* v2 ver_cmd byte: high nibble version, low nibble command. */
#define PP2_VERSION 0x20
#define PP2_CMD_LOCAL 0x00
#define PP2_CMD_PROXY 0x01

/* v2 fam byte: high nibble address family, low nibble transport. */
#define PP2_FAM_UNSPEC 0x00
#define PP2_FAM_INET 0x10
#define PP2_FAM_INET6 0x20
#define PP2_FAM_UNIX 0x30
#define PP2_TRANS_UNSPEC 0x00
#define PP2_TRANS_STREAM 0x01
#define PP2_TRANS_DGRAM 0x02

/* The seven defined fam bytes. */
#define PP2_FAM_UNSPEC_UNSPEC 0x00
#define PP2_FAM_TCP4 0x11
#define PP2_FAM_UDP4 0x12
#define PP2_FAM_TCP6 0x21
#define PP2_FAM_UDP6 0x22
#define PP2_FAM_UNIX_STREAM 0x31
#define PP2_FAM_UNIX_DGRAM 0x32

/* TLV types (spec section 2.2) and the cloud vendors' custom types. */
#define PP2_TYPE_ALPN 0x01
#define PP2_TYPE_AUTHORITY 0x02
#define PP2_TYPE_CRC32C 0x03
#define PP2_TYPE_NOOP 0x04
#define PP2_TYPE_UNIQUE_ID 0x05
#define PP2_TYPE_SSL 0x20
#define PP2_SUBTYPE_SSL_VERSION 0x21
#define PP2_SUBTYPE_SSL_CN 0x22
#define PP2_SUBTYPE_SSL_CIPHER 0x23
#define PP2_SUBTYPE_SSL_SIG_ALG 0x24
#define PP2_SUBTYPE_SSL_KEY_ALG 0x25
#define PP2_SUBTYPE_SSL_GROUP 0x26
#define PP2_SUBTYPE_SSL_SIG_SCHEME 0x27
#define PP2_SUBTYPE_SSL_CLIENT_CERT 0x28
#define PP2_TYPE_NETNS 0x30
#define PP2_TYPE_MIN_CUSTOM 0xE0
#define PP2_TYPE_MAX_CUSTOM 0xEF
#define PP2_TYPE_MIN_EXPERIMENT 0xF0
#define PP2_TYPE_MAX_EXPERIMENT 0xF7
#define PP2_TYPE_MIN_FUTURE 0xF8
#define PP2_TYPE_MAX_FUTURE 0xFF
#define PP2_TYPE_GCP 0xE0   /* Private Service Connect ID, u64 big-endian */
#define PP2_TYPE_AWS 0xEA   /* subtype 0x01 + VPC endpoint ID */
#define PP2_TYPE_AZURE 0xEE /* subtype 0x01 + LINKID, u32 little-endian */
#define PP2_SUBTYPE_AWS_VPCE_ID 0x01
#define PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID 0x01

/* Bits of the SSL TLV's client field. */
#define PP2_CLIENT_SSL 0x01
#define PP2_CLIENT_CERT_CONN 0x02
#define PP2_CLIENT_CERT_SESS 0x04

/* Value limits enforced by the parser (HAProxy's policy). */
#define PP2_AUTHORITY_MAX 255
#define PP2_UNIQUE_ID_MAX 128
#define PP2_SSL_FIXED_LEN 5 /* client (u8) + verify (u32) */

/* ---- Errors --------------------------------------------------------------- */

/* Every failure is returned as the negated value of one of these. */
enum pp_error {
    PP_EBADSIG = 1, /* not a PROXY header: neither "PROXY " nor the v2 signature */
    PP_EBADVER,     /* v2 signature followed by a version other than 2 */
    PP_EBADCMD,     /* v2 command other than LOCAL or PROXY */
    PP_EBADFAM,     /* v2 fam byte is not one of the seven defined ones */
    PP_ETOOLONG,    /* v1 line without CRLF in 107 bytes, or v2 header over the cap */
    PP_EBADPROTO,   /* v1 protocol is not TCP4, TCP6 or UNKNOWN */
    PP_EBADLINE,    /* v1 fields: missing, extra, empty, or not single-space separated */
    PP_EBADCRLF,    /* v1 line with a bare CR or a bare LF */
    PP_EBADADDR,    /* address not canonical for its family, or family mismatch */
    PP_EBADPORT,    /* port not 0-65535, or with a leading zero */
    PP_EADDRLEN,    /* v2 PROXY length shorter than the family's address block */
    PP_EUNSPEC,     /* PROXY with family UNSPEC, refused by PP_PARSE_REJECT_UNSPEC */
    PP_EBADTLV,     /* TLV truncated, overrunning its container, or CRC32C repeated */
    PP_ETLVLEN,     /* TLV value length not allowed for its type */
    PP_EBADCRC,     /* CRC32C TLV does not match the header */
    PP_ENOSPC,      /* builder: the output buffer is too small */
    PP_EINVAL,      /* bad argument (unsupported address family, value too long...) */
    PP_ENOTFOUND,   /* accessor: no TLV of that type */
    PP_EMAXCODE
};

/* Returns a static, NUL-terminated English message for a PP_E* code, negated
 * or not ("unknown error" for anything else). Never returns NULL. */
const char *pp_strerror(int err);

/* ---- Parsed header -------------------------------------------------------- */

union pp_addr {
    struct sockaddr sa; /* sa.sa_family: AF_INET, AF_INET6, AF_UNIX or AF_UNSPEC */
    struct sockaddr_in sin;
    struct sockaddr_in6 sin6;
    struct sockaddr_un sun; /* sun_path is NUL-terminated unless all 108 bytes are used */
};

#define PP_HDR_CRC_VERIFIED 0x01 /* a CRC32C TLV was present and matched */

struct pp_header {
    uint8_t version; /* 1 or 2 */
    uint8_t command; /* PP2_CMD_PROXY, or PP2_CMD_LOCAL (also for v1 UNKNOWN) */
    /* The v2 fam byte as received (PP2_FAM_TCP4, ...). For v1: PP2_FAM_TCP4,
     * PP2_FAM_TCP6 or PP2_FAM_UNSPEC_UNSPEC for UNKNOWN. For LOCAL it
     * describes the skipped address block only. */
    uint8_t fam;
    uint8_t flags;      /* PP_HDR_* */
    int socktype;       /* SOCK_STREAM, SOCK_DGRAM, or 0 when unspecified */
    size_t len;         /* total header length in bytes (the value pp_parse returns) */
    union pp_addr src;  /* carried source; sa_family AF_UNSPEC when none is */
    union pp_addr dst;  /* carried destination; likewise */
    const uint8_t *tlv; /* first TLV byte, inside the parsed buffer (v2) */
    size_t tlv_len;     /* bytes of TLVs; 0 for v1 and for v2 without TLVs */
};

/* Parser options. Zero-initialised options mean the defaults. */
#define PP_PARSE_NO_CRC 0x01 /* do not verify a CRC32C TLV */
#define PP_PARSE_V1_IPV4_IN_TCP6                                                                   \
    0x02                    /* accept a plain dotted IPv4 address in a                             \
                             * TCP6 line (what nginx sends); it is                                 \
                             * returned as an IPv4-mapped IPv6 address */
#define PP_PARSE_NO_V1 0x04 /* refuse v1 with -PP_EBADSIG (UDP datagrams) */
#define PP_PARSE_NO_V2 0x08 /* refuse v2 with -PP_EBADSIG */
#define PP_PARSE_REJECT_UNSPEC                                                                     \
    0x10 /* refuse PROXY with family UNSPEC (-PP_EUNSPEC)                                          \
          * instead of accepting it without addresses */

struct pp_parse_opts {
    /* Largest total v2 header accepted, in bytes (16 + len). 0 means
     * PP_V2_DEFAULT_CAP; values above PP_V2_MAX_LEN mean no cap. */
    size_t max_len;
    unsigned flags; /* PP_PARSE_* */
};

/*
 * Parses the PROXY v1 or v2 header at the start of buf[0..len); the version is
 * told by the first byte ('P' for v1, '\r' for v2).
 *
 * Returns:
 *   > 0  the header is complete and valid: its length in bytes, and *hdr is
 *        filled. Bytes after it belong to the application.
 *   0    buf holds a valid prefix of a header and more bytes are needed
 *        (len < PP_MIN_LEN always gives 0 unless the bytes already rule a
 *        header out). *hdr is unspecified.
 *   < 0  -PP_E*: these bytes can never become a valid header. -PP_EBADSIG
 *        means "not a PROXY header at all" and is returned as soon as the
 *        first byte (or the first bytes of the signature) rule it out, so a
 *        caller with an optional header can decide from one byte.
 *
 * opts may be NULL for the defaults (CRC32C verified, v2 capped at 4096
 * bytes, both versions accepted). The header is validated entirely, TLV
 * structure and CRC32C included, so a positive result can be trusted.
 * Never reads outside buf[0..len), never writes buf, never allocates.
 * hdr->tlv points into buf.
 */
ssize_t pp_parse(const uint8_t *buf, size_t len, struct pp_header *hdr,
                 const struct pp_parse_opts *opts);

/* ---- TLVs ----------------------------------------------------------------- */

struct pp_tlv {
    uint8_t type;
    uint16_t len;         /* value length, not counting the 3-byte TLV header */
    const uint8_t *value; /* points into the parsed buffer */
};

struct pp_str {
    const char *ptr; /* not NUL-terminated; points into the parsed buffer */
    size_t len;
};

/*
 * Zero-allocation TLV iterator over [*cursor, end). On success stores the TLV
 * in *out, advances *cursor past it and returns 1; returns 0 when
 * *cursor == end; returns -PP_EBADTLV (without moving *cursor) when fewer than
 * 3 bytes remain or the value runs past end. Duplicates are returned in order.
 * Used for the TLVs of a header (hdr->tlv, hdr->tlv + hdr->tlv_len) and for
 * the sub-TLVs of an SSL TLV (struct pp_ssl's sub, sub_len).
 */
int pp_tlv_next(const uint8_t **cursor, const uint8_t *end, struct pp_tlv *out);

/* Finds the first TLV of the given type in hdr. Returns 1 and fills *out if
 * there is one, 0 if there is none, -PP_EBADTLV on a malformed TLV area (which
 * pp_parse never returns for a header it accepted). */
int pp_tlv_find(const struct pp_header *hdr, uint8_t type, struct pp_tlv *out);

/* Returns the short lowercase name INTERFACE.md uses for a TLV type ("alpn",
 * "authority", "crc32c", "noop", "unique-id", "ssl", "netns", "aws", "azure",
 * "gcp"), or for an SSL sub-TLV type when sub is non-zero ("version", "cn",
 * "cipher", "sig_alg", "key_alg", "group", "sig_scheme", "client_cert").
 * Returns NULL for other types. */
const char *pp_tlv_name(uint8_t type, int sub);

/* Decoded SSL TLV (PP2_TYPE_SSL). Each pp_str is the first sub-TLV of that
 * kind, or {NULL, 0} when absent; sub/sub_len give all sub-TLVs for
 * pp_tlv_next. */
struct pp_ssl {
    uint8_t client;  /* PP2_CLIENT_* bits */
    uint32_t verify; /* 0: the client certificate verified (big-endian on the wire) */
    struct pp_str version, cn, cipher, sig_alg, key_alg, group, sig_scheme;
    struct pp_str client_cert; /* raw DER */
    const uint8_t *sub;
    size_t sub_len;
};

/*
 * Typed decoders for one TLV value. Each returns 0 and fills *out, or:
 * -PP_EINVAL if t is not of the decoder's type, -PP_ETLVLEN if the value has
 * a length the type does not allow, -PP_EBADTLV if its inner structure is
 * malformed (SSL sub-TLVs, vendor subtype, AWS ID characters).
 */
int pp_tlv_ssl(const struct pp_tlv *t, struct pp_ssl *out);         /* value >= 5 */
int pp_tlv_crc32c(const struct pp_tlv *t, uint32_t *out);           /* value == 4, BE */
int pp_tlv_aws_vpce_id(const struct pp_tlv *t, struct pp_str *out); /* 0x01 [A-Za-z0-9-]* */
int pp_tlv_azure_linkid(const struct pp_tlv *t, uint32_t *out);     /* 0x01 + u32 LE */
int pp_tlv_gcp_psc_id(const struct pp_tlv *t, uint64_t *out);       /* u64 BE */

/* Text TLVs: ALPN, AUTHORITY (<= 255), UNIQUE_ID (<= 128 bytes, opaque),
 * NETNS, NOOP (padding, value is whatever was sent). Returns 0 and fills *out,
 * -PP_EINVAL for another type, -PP_ETLVLEN over the type's limit. */
int pp_tlv_str(const struct pp_tlv *t, struct pp_str *out);

/*
 * Header-level accessors: find the first TLV of the type in hdr and decode it.
 * Return 0 on success, -PP_ENOTFOUND when hdr has no such TLV, or the
 * decoder's error.
 */
int pp_get_alpn(const struct pp_header *hdr, struct pp_str *out);
int pp_get_authority(const struct pp_header *hdr, struct pp_str *out);
int pp_get_unique_id(const struct pp_header *hdr, struct pp_str *out);
int pp_get_netns(const struct pp_header *hdr, struct pp_str *out);
int pp_get_noop(const struct pp_header *hdr, struct pp_str *out);
int pp_get_crc32c(const struct pp_header *hdr, uint32_t *out);
int pp_get_ssl(const struct pp_header *hdr, struct pp_ssl *out);
int pp_get_aws_vpce_id(const struct pp_header *hdr, struct pp_str *out);
int pp_get_azure_linkid(const struct pp_header *hdr, uint32_t *out);
int pp_get_gcp_psc_id(const struct pp_header *hdr, uint64_t *out);

/* ---- CRC32c --------------------------------------------------------------- */

/*
 * CRC32c (Castagnoli, RFC 4960 appendix B) of buf[0..len), continuing from
 * crc: pass 0 to start, and the previous result to continue over more bytes.
 * pp_crc32c(0, "123456789", 9) == 0xE3069283. Uses SSE4.2 when the CPU has it
 * (chosen at run time), a table otherwise; both give the same result.
 */
uint32_t pp_crc32c(uint32_t crc, const void *buf, size_t len);

/* ---- Building ------------------------------------------------------------- */

/*
 * Writes a v1 line for a TCP connection from src to dst into buf[0..cap).
 * Both IPv4: "PROXY TCP4 ...". Either IPv6: "PROXY TCP6 ...", the IPv4 end
 * written as ::ffff:a.b.c.d (as HAProxy does). src or dst NULL, or of another
 * family: "PROXY UNKNOWN\r\n". Returns the line length (no NUL is written),
 * or -PP_ENOSPC. PP_V1_MAX_LEN bytes are always enough.
 */
ssize_t pp_build_v1(uint8_t *buf, size_t cap, const struct sockaddr *src,
                    const struct sockaddr *dst);

/*
 * Writes a v2 header without TLVs into buf[0..cap).
 * command PP2_CMD_LOCAL: fam UNSPEC and no address block (16 bytes); src and
 * dst are ignored. command PP2_CMD_PROXY: the addresses of src and dst with
 * socktype SOCK_STREAM or SOCK_DGRAM; both AF_INET gives TCP4/UDP4, one
 * AF_INET6 gives TCP6/UDP6 with the IPv4 end mapped, both AF_UNIX gives the
 * UNIX family (src and dst must then point to a whole struct sockaddr_un; the
 * path is copied up to its NUL and padded with NULs, so abstract socket names
 * come out empty); src or dst NULL or AF_UNSPEC gives fam UNSPEC with no
 * address block.
 * Returns the header length, -PP_ENOSPC, or -PP_EINVAL (unknown command,
 * socktype or family, or mixing AF_UNIX with IP).
 */
ssize_t pp_build_v2(uint8_t *buf, size_t cap, int command, int socktype, const struct sockaddr *src,
                    const struct sockaddr *dst);

/*
 * Appends one TLV to the v2 header of hdr_len bytes at buf and updates its
 * length field. value may be NULL when vlen is 0. Returns the new header
 * length, -PP_ENOSPC if the TLV does not fit in cap, or -PP_EINVAL if buf
 * does not start with a v2 header of hdr_len bytes or the header would pass
 * PP_V2_MAX_LEN. On error buf is unchanged.
 */
ssize_t pp_build_v2_tlv(uint8_t *buf, size_t cap, size_t hdr_len, uint8_t type, const void *value,
                        size_t vlen);

/*
 * A set of TLV types, for pp_build_v2_tlvs: type t is in the set when bit
 * t % 8 of bits[t / 8] is set. Zero-initialise, then add types.
 */
struct pp_tlv_set {
    uint8_t bits[32];
};

static inline void pp_tlv_set_add(struct pp_tlv_set *s, uint8_t type)
{
    s->bits[type >> 3] = (uint8_t)(s->bits[type >> 3] | (1u << (type & 7)));
}

static inline int pp_tlv_set_has(const struct pp_tlv_set *s, uint8_t type)
{
    return (s->bits[type >> 3] >> (type & 7)) & 1;
}

/*
 * Appends to the v2 header of hdr_len bytes at buf the TLVs of the block
 * tlvs[0..len) whose type is in keep (every type when keep is NULL), each
 * copied once and whole (an SSL TLV with its sub-TLVs), in the order they
 * come. The block is a parsed header's TLV area (hdr->tlv, hdr->tlv_len) or
 * TLVs prepared once with pp_build_v2_tlv on a scratch header (everything
 * after its 16 fixed bytes and address block). A CRC32C TLV is never copied:
 * its checksum covered another header; append a fresh one last with
 * pp_build_v2_crc32c. tlvs may be NULL when len is 0.
 * Returns the new header length, -PP_EBADTLV if the block is truncated,
 * -PP_ENOSPC if the kept TLVs do not fit in cap, or -PP_EINVAL as
 * pp_build_v2_tlv. On error the header (its hdr_len bytes) is unchanged;
 * bytes of buf past it may have been written.
 */
ssize_t pp_build_v2_tlvs(uint8_t *buf, size_t cap, size_t hdr_len, const uint8_t *tlvs, size_t len,
                         const struct pp_tlv_set *keep);

/*
 * Appends a CRC32C TLV to the v2 header of hdr_len bytes and fills in the
 * checksum of the whole header. Append it last: bytes added later are not
 * covered. Returns the new length, -PP_ENOSPC or -PP_EINVAL as above.
 */
ssize_t pp_build_v2_crc32c(uint8_t *buf, size_t cap, size_t hdr_len);

/*
 * Writes the value of an SSL TLV (client, verify and optional sub-TLVs, in the
 * order the fields are listed in struct pp_ssl) into buf[0..cap), ready for
 * pp_build_v2_tlv(..., PP2_TYPE_SSL, buf, n). The sub and sub_len fields of
 * ssl are ignored. Returns the value length, -PP_ENOSPC, or -PP_EINVAL if a
 * string is over 65535 bytes or the value would be.
 */
ssize_t pp_build_ssl(uint8_t *buf, size_t cap, const struct pp_ssl *ssl);

#ifdef __cplusplus
}
#endif

#endif /* PP_PROXYPROTO_H */
