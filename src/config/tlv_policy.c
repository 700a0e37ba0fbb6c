/*
 * tlv_policy.c - tlvs=pass|drop|keep:LIST|strip:LIST and add-tlv=TYPE=VALUE,
 * parsed into a set of types and a block of wire TLVs at config time.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config/tlv_policy.h"

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

int tlv_hex_decode(const char *hex, size_t n, uint8_t *out)
{
    if (n % 2 != 0)
        return -1;
    for (size_t i = 0; i < n; i++)
        if (hexval((unsigned char)hex[i]) < 0)
            return -1;
    for (size_t i = 0; i < n / 2; i++)
        out[i] = (uint8_t)(hexval((unsigned char)hex[2 * i]) << 4 | hexval((unsigned char)hex[2 * i + 1]));
    return 0;
}

int tlv_type_parse(const char *s, size_t len, uint8_t *type, char *err, size_t errlen)
{
    unsigned long v = 0;
    size_t i = 0;
    int base = 10;

    /* The names are the library's (pp_tlv_name), as ppfwd decode prints them. */
    for (unsigned t = 0; t <= 255; t++) {
        const char *name = pp_tlv_name((uint8_t)t, 0);
        if (name != NULL && strlen(name) == len && memcmp(name, s, len) == 0) {
            *type = (uint8_t)t;
            return 0;
        }
    }
    if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
        base = 16;
        i = 2;
    }
    if (i == len || len - i > 8)
        goto bad;
    for (; i < len; i++) {
        int d = base == 16 ? hexval((unsigned char)s[i]) : (s[i] >= '0' && s[i] <= '9' ? s[i] - '0' : -1);
        if (d < 0)
            goto bad;
        v = v * (unsigned long)base + (unsigned long)d;
    }
    if (v > 255) {
        snprintf(err, errlen, "TLV type %.*s is above 255", (int)len, s);
        return -1;
    }
    *type = (uint8_t)v;
    return 0;
bad:
    snprintf(err, errlen,
             "unknown TLV type '%.*s' (a number 0-255, decimal or 0x hex, or one of alpn, "
             "authority, crc32c, noop, unique-id, ssl, netns, aws, azure, gcp)",
             (int)(len > 64 ? 64 : len), s);
    return -1;
}

int tlvs_parse(const char *s, enum tlvs_mode *mode, struct pp_tlv_set *set, char *err,
               size_t errlen)
{
    const char *p, *end;

    memset(set, 0, sizeof(*set));
    if (strcmp(s, "pass") == 0 || strcmp(s, "drop") == 0) {
        *mode = s[0] == 'p' ? TLVS_PASS : TLVS_DROP;
        return 0;
    }
    if (strncmp(s, "keep:", 5) == 0)
        *mode = TLVS_KEEP;
    else if (strncmp(s, "strip:", 6) == 0)
        *mode = TLVS_STRIP;
    else {
        snprintf(err, errlen, "expected pass, drop, keep:LIST or strip:LIST, not '%s'", s);
        return -1;
    }
    p = strchr(s, ':') + 1;
    if (*p == '\0') {
        snprintf(err, errlen, "'%s': the list of TLV types is empty", s);
        return -1;
    }
    for (;; p = end + 1) {
        uint8_t t;

        end = strchr(p, ',');
        if (end == NULL)
            end = p + strlen(p);
        if (end == p) {
            snprintf(err, errlen, "'%s': an empty item in the list of TLV types", s);
            return -1;
        }
        if (tlv_type_parse(p, (size_t)(end - p), &t, err, errlen) != 0)
            return -1;
        pp_tlv_set_add(set, t);
        if (*end == '\0')
            return 0;
    }
}

void tlvs_passed(enum tlvs_mode mode, const struct pp_tlv_set *list, struct pp_tlv_set *out)
{
    switch (mode) {
    case TLVS_PASS:
        memset(out, 0xFF, sizeof(*out));
        break;
    case TLVS_DROP:
        memset(out, 0, sizeof(*out));
        break;
    case TLVS_KEEP:
        *out = *list;
        break;
    case TLVS_STRIP:
        for (size_t i = 0; i < sizeof(out->bits); i++)
            out->bits[i] = (uint8_t)~list->bits[i];
        break;
    }
    out->bits[PP2_TYPE_CRC32C >> 3] &= (uint8_t) ~(1u << (PP2_TYPE_CRC32C & 7));
}

/* Whether a receiver takes the TLV of type and value v (vlen bytes; hex
 * digits when hex): parsed as pp_parse parses a header, type rules included
 * (an SSL value of 5 bytes or more with whole sub-TLVs, ...), after a LOCAL
 * header of its own. Returns 0, or -1 with the library's error in *bad. */
static int tlv_check(uint8_t type, const char *v, int hex, size_t vlen, int *bad)
{
    uint8_t hdr[PP_V2_HDR_LEN + TLV_ADDED_MAX];
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN, .flags = 0};
    struct pp_header h;
    size_t n = 3 + vlen;
    ssize_t got;

    if (n > TLV_ADDED_MAX)
        return 0; /* the caller's own cap refuses it */
    memcpy(hdr, PP_V2_SIG, PP_V2_SIG_LEN);
    hdr[12] = PP2_VERSION | PP2_CMD_LOCAL;
    hdr[13] = PP2_FAM_UNSPEC_UNSPEC;
    hdr[14] = (uint8_t)(n >> 8);
    hdr[15] = (uint8_t)n;
    hdr[16] = type;
    hdr[17] = (uint8_t)(vlen >> 8);
    hdr[18] = (uint8_t)vlen;
    if (hex)
        tlv_hex_decode(v, 2 * vlen, hdr + 19);
    else
        memcpy(hdr + 19, v, vlen);
    got = pp_parse(hdr, PP_V2_HDR_LEN + n, &h, &opts);
    if (got == (ssize_t)(PP_V2_HDR_LEN + n))
        return 0;
    *bad = got < 0 ? (int)-got : PP_EBADTLV;
    return -1;
}

int tlv_block_add(struct tlv_block *b, const char *s, char *err, size_t errlen)
{
    const char *eq = strchr(s, '='), *v;
    size_t vlen, max = 0xFFFF;
    uint8_t type, *nb;
    int hex, bad = 0;

    if (eq == NULL) {
        snprintf(err, errlen, "'%s': expected TYPE=VALUE", s);
        return -1;
    }
    if (tlv_type_parse(s, (size_t)(eq - s), &type, err, errlen) != 0)
        return -1;
    if (type == PP2_TYPE_CRC32C) {
        snprintf(err, errlen, "'%s': a CRC32C TLV cannot be added as a value (crc32c=on computes "
                 "one over the header sent)", s);
        return -1;
    }
    v = eq + 1;
    hex = strncmp(v, "hex:", 4) == 0;
    if (hex) {
        v += 4;
        vlen = strlen(v);
        if (vlen % 2 != 0) {
            snprintf(err, errlen, "'%s': an odd number of hex digits", s);
            return -1;
        }
        for (size_t i = 0; i < vlen; i++)
            if (hexval((unsigned char)v[i]) < 0) {
                snprintf(err, errlen, "'%s': '%c' is not a hex digit", s, v[i]);
                return -1;
            }
        vlen /= 2;
    } else {
        vlen = strlen(v);
    }
    if (type == PP2_TYPE_AUTHORITY)
        max = 255;
    else if (type == PP2_TYPE_UNIQUE_ID)
        max = 128;
    if (vlen > max) {
        snprintf(err, errlen, "'%.*s=...': %zu bytes, more than the %zu a%s TLV may hold",
                 (int)(eq - s), s, vlen, max, type == PP2_TYPE_AUTHORITY ? "n AUTHORITY" : " UNIQUE_ID");
        return -1;
    }
    if (vlen + 3 > TLV_ADDED_MAX - b->len) {
        snprintf(err, errlen,
                 "'%.*s=...': the added TLVs would take %zu bytes, more than the %d a v2 header "
                 "leaves for them within %d bytes (PP_V2_DEFAULT_CAP, what receivers accept)",
                 (int)(eq - s), s, b->len + vlen + 3, TLV_ADDED_MAX, PP_V2_DEFAULT_CAP);
        return -1;
    }
    if (tlv_check(type, v, hex, vlen, &bad) != 0) {
        snprintf(err, errlen, "'%.*s=...': every header sent would be refused by its receiver: %s",
                 (int)(eq - s), s, pp_strerror(bad));
        return -1;
    }
    nb = realloc(b->bytes, b->len + 3 + vlen);
    if (nb == NULL) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    b->bytes = nb;
    nb += b->len;
    nb[0] = type;
    nb[1] = (uint8_t)(vlen >> 8);
    nb[2] = (uint8_t)vlen;
    if (hex)
        tlv_hex_decode(v, 2 * vlen, nb + 3); /* checked above */
    else
        memcpy(nb + 3, v, vlen);
    b->len += 3 + vlen;
    return 0;
}

void tlv_block_free(struct tlv_block *b)
{
    free(b->bytes);
    b->bytes = NULL;
    b->len = 0;
}
