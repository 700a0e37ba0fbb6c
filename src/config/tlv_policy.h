/*
 * tlv_policy.h - the values of the TLV keys of a route: which TLVs of an
 * accepted header go on (tlvs=pass|drop|keep:LIST|strip:LIST) and which are
 * added to every sent v2 header (add-tlv=TYPE=VALUE, repeatable).
 *
 * Everything here is parsed and built once, when the config is loaded: a
 * connection only tests a bit set and copies a prepared block
 * (pp_build_v2_tlvs).
 */
#ifndef PPFWD_CONFIG_TLV_POLICY_H
#define PPFWD_CONFIG_TLV_POLICY_H

#include <stddef.h>
#include <stdint.h>

#include <proxyproto.h>

enum tlvs_mode { TLVS_PASS, TLVS_DROP, TLVS_KEEP, TLVS_STRIP };

/*
 * Parses a TLV type: a number (decimal, or 0x and hex digits) from 0 to 255,
 * or a name: alpn, authority, crc32c, noop, unique-id, ssl, netns, aws,
 * azure, gcp. s[0..len) need not be NUL-terminated. Returns 0 and sets
 * *type, or -1 with a message in err.
 */
int tlv_type_parse(const char *s, size_t len, uint8_t *type, char *err, size_t errlen);

/*
 * Decodes n hex digits (either case; n even) into out[0..n/2). Returns 0,
 * or -1 (an odd n or a character that is not a hex digit).
 */
int tlv_hex_decode(const char *hex, size_t n, uint8_t *out);

/*
 * Parses a tlvs value: "pass", "drop", "keep:LIST" or "strip:LIST" (LIST:
 * comma-separated types as above, at least one). Sets *mode and, for keep
 * and strip, *set to the types listed. Returns 0, or -1 with a message.
 */
int tlvs_parse(const char *s, enum tlvs_mode *mode, struct pp_tlv_set *set, char *err,
               size_t errlen);

/*
 * The types an accepted header's TLVs are passed on for, from a mode and
 * its list: every type for pass, none for drop, the list for keep, all but
 * the list for strip. CRC32C is left out of every set: a received checksum
 * covered another header (crc32c=on computes a fresh one).
 */
void tlvs_passed(enum tlvs_mode mode, const struct pp_tlv_set *list, struct pp_tlv_set *out);

/* The TLVs added to every header of a route, as one block of wire TLVs
 * (type, 16-bit length, value) in the order given. */
struct tlv_block {
    uint8_t *bytes;
    size_t len;
};

/* The most a route's added TLVs may take: a header with the largest address
 * block (UNIX, 216 bytes), these and a CRC32C stays within PP_V2_DEFAULT_CAP
 * (4 KiB), the most a receiver with default settings accepts (ppfwd itself,
 * libproxyproto's pp_parse). The route's other TLVs (authority, unique-id)
 * count against the same cap (cfg validation). */
#define TLV_HDR_FIXED (16 + 216 + 7)
#define TLV_ADDED_MAX (PP_V2_DEFAULT_CAP - TLV_HDR_FIXED)

/*
 * Parses one add-tlv value, "TYPE=VALUE" (VALUE: text, or "hex:" and an
 * even number of hex digits; empty is allowed), and appends the TLV to b.
 * Refused with a message: a missing "=VALUE", an unknown type name, a type
 * above 255, crc32c (use crc32c=on), bad hex, an AUTHORITY over 255 bytes or
 * a UNIQUE_ID over 128 (the spec's limits), a block over TLV_ADDED_MAX, or
 * any other value pp_parse refuses in a header (an SSL value shorter than 5
 * bytes or with broken sub-TLVs): every header sent would be refused.
 * Returns 0, or -1 (b unchanged).
 */
int tlv_block_add(struct tlv_block *b, const char *s, char *err, size_t errlen);

void tlv_block_free(struct tlv_block *b);

#endif /* PPFWD_CONFIG_TLV_POLICY_H */
