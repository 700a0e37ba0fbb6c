/*
 * tlv.c - TLV iteration, validation inside pp_parse, the CRC32C check, and
 * the typed decoders for the spec's and the cloud vendors' TLVs.
 */
#include "internal.h"

PP_API int pp_tlv_next(const uint8_t **cursor, const uint8_t *end, struct pp_tlv *out)
{
    const uint8_t *p = *cursor;
    size_t vlen;

    if (p == end)
        return 0;
    if (end - p < 3)
        return -PP_EBADTLV;
    vlen = rd16be(p + 1);
    if ((size_t)(end - p) - 3 < vlen)
        return -PP_EBADTLV;
    out->type = p[0];
    out->len = (uint16_t)vlen;
    out->value = p + 3;
    *cursor = p + 3 + vlen;
    return 1;
}

PP_API int pp_tlv_find(const struct pp_header *hdr, uint8_t type, struct pp_tlv *out)
{
    const uint8_t *p = hdr->tlv, *end;
    int rc;

    if (p == NULL)
        return 0;
    end = p + hdr->tlv_len;
    while ((rc = pp_tlv_next(&p, end, out)) > 0) {
        if (out->type == type)
            return 1;
    }
    return rc;
}

static int ssl_subtlvs_valid(const uint8_t *p, const uint8_t *end)
{
    struct pp_tlv t;
    int rc;

    while ((rc = pp_tlv_next(&p, end, &t)) > 0)
        ;
    return rc;
}

/* Length limits and inner structure that pp_parse enforces per type. */
static int check_tlv(const struct pp_tlv *t)
{
    switch (t->type) {
    case PP2_TYPE_CRC32C:
        return t->len == 4 ? 0 : -PP_ETLVLEN;
    case PP2_TYPE_AUTHORITY:
        return t->len <= PP2_AUTHORITY_MAX ? 0 : -PP_ETLVLEN;
    case PP2_TYPE_UNIQUE_ID:
        return t->len <= PP2_UNIQUE_ID_MAX ? 0 : -PP_ETLVLEN;
    case PP2_TYPE_SSL:
        if (t->len < PP2_SSL_FIXED_LEN)
            return -PP_ETLVLEN;
        return ssl_subtlvs_valid(t->value + PP2_SSL_FIXED_LEN, t->value + t->len);
    default:
        return 0;
    }
}

int pp__tlv_validate(const uint8_t *hdr, size_t hdr_len, const uint8_t *p, const uint8_t *end,
                     int no_crc, int *crc_ok)
{
    const uint8_t *crc_at = NULL;
    struct pp_tlv t;
    int rc;

    while ((rc = pp_tlv_next(&p, end, &t)) > 0) {
        rc = check_tlv(&t);
        if (rc < 0)
            return rc;
        if (t.type == PP2_TYPE_CRC32C) {
            /* Two checksums cannot both cover a header that holds the other. */
            if (crc_at != NULL)
                return -PP_EBADTLV;
            crc_at = t.value;
        }
    }
    if (rc < 0)
        return rc;
    if (crc_at != NULL && !no_crc) {
        if (pp__crc32c_hole(hdr, hdr_len, (size_t)(crc_at - hdr)) != rd32be(crc_at))
            return -PP_EBADCRC;
        *crc_ok = 1;
    }
    return 0;
}

PP_API const char *pp_tlv_name(uint8_t type, int sub)
{
    static const char *const sub_names[] = {
        [PP2_SUBTYPE_SSL_VERSION - 0x21] = "version",
        [PP2_SUBTYPE_SSL_CN - 0x21] = "cn",
        [PP2_SUBTYPE_SSL_CIPHER - 0x21] = "cipher",
        [PP2_SUBTYPE_SSL_SIG_ALG - 0x21] = "sig_alg",
        [PP2_SUBTYPE_SSL_KEY_ALG - 0x21] = "key_alg",
        [PP2_SUBTYPE_SSL_GROUP - 0x21] = "group",
        [PP2_SUBTYPE_SSL_SIG_SCHEME - 0x21] = "sig_scheme",
        [PP2_SUBTYPE_SSL_CLIENT_CERT - 0x21] = "client_cert",
    };

    if (sub)
        return type >= 0x21 && type <= 0x28 ? sub_names[type - 0x21] : NULL;
    switch (type) {
    case PP2_TYPE_ALPN:
        return "alpn";
    case PP2_TYPE_AUTHORITY:
        return "authority";
    case PP2_TYPE_CRC32C:
        return "crc32c";
    case PP2_TYPE_NOOP:
        return "noop";
    case PP2_TYPE_UNIQUE_ID:
        return "unique-id";
    case PP2_TYPE_SSL:
        return "ssl";
    case PP2_TYPE_NETNS:
        return "netns";
    case PP2_TYPE_AWS:
        return "aws";
    case PP2_TYPE_AZURE:
        return "azure";
    case PP2_TYPE_GCP:
        return "gcp";
    default:
        return NULL;
    }
}

static void set_str(struct pp_str *s, const struct pp_tlv *t)
{
    s->ptr = (const char *)t->value;
    s->len = t->len;
}

PP_API int pp_tlv_str(const struct pp_tlv *t, struct pp_str *out)
{
    switch (t->type) {
    case PP2_TYPE_ALPN:
    case PP2_TYPE_AUTHORITY:
    case PP2_TYPE_UNIQUE_ID:
    case PP2_TYPE_NETNS:
    case PP2_TYPE_NOOP:
        break;
    default:
        return -PP_EINVAL;
    }
    if (check_tlv(t) < 0)
        return -PP_ETLVLEN;
    set_str(out, t);
    return 0;
}

static struct pp_str *ssl_field(struct pp_ssl *ssl, uint8_t type)
{
    switch (type) {
    case PP2_SUBTYPE_SSL_VERSION:
        return &ssl->version;
    case PP2_SUBTYPE_SSL_CN:
        return &ssl->cn;
    case PP2_SUBTYPE_SSL_CIPHER:
        return &ssl->cipher;
    case PP2_SUBTYPE_SSL_SIG_ALG:
        return &ssl->sig_alg;
    case PP2_SUBTYPE_SSL_KEY_ALG:
        return &ssl->key_alg;
    case PP2_SUBTYPE_SSL_GROUP:
        return &ssl->group;
    case PP2_SUBTYPE_SSL_SIG_SCHEME:
        return &ssl->sig_scheme;
    case PP2_SUBTYPE_SSL_CLIENT_CERT:
        return &ssl->client_cert;
    default:
        return NULL;
    }
}

PP_API int pp_tlv_ssl(const struct pp_tlv *t, struct pp_ssl *out)
{
    const uint8_t *p, *end;
    struct pp_tlv sub;
    struct pp_str *f;
    int rc;

    if (t->type != PP2_TYPE_SSL)
        return -PP_EINVAL;
    if (t->len < PP2_SSL_FIXED_LEN)
        return -PP_ETLVLEN;
    memset(out, 0, sizeof(*out));
    out->client = t->value[0];
    out->verify = rd32be(t->value + 1);
    out->sub = p = t->value + PP2_SSL_FIXED_LEN;
    out->sub_len = t->len - PP2_SSL_FIXED_LEN;
    end = p + out->sub_len;
    while ((rc = pp_tlv_next(&p, end, &sub)) > 0) {
        f = ssl_field(out, sub.type);
        if (f != NULL && f->ptr == NULL)
            set_str(f, &sub);
    }
    return rc;
}

PP_API int pp_tlv_crc32c(const struct pp_tlv *t, uint32_t *out)
{
    if (t->type != PP2_TYPE_CRC32C)
        return -PP_EINVAL;
    if (t->len != 4)
        return -PP_ETLVLEN;
    *out = rd32be(t->value);
    return 0;
}

PP_API int pp_tlv_aws_vpce_id(const struct pp_tlv *t, struct pp_str *out)
{
    if (t->type != PP2_TYPE_AWS)
        return -PP_EINVAL;
    if (t->len < 1)
        return -PP_ETLVLEN;
    if (t->value[0] != PP2_SUBTYPE_AWS_VPCE_ID)
        return -PP_EBADTLV;
    for (size_t i = 1; i < t->len; i++) {
        uint8_t c = t->value[i];
        if (!((c >= '0' && c <= '9') || ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') || c == '-'))
            return -PP_EBADTLV;
    }
    out->ptr = (const char *)t->value + 1;
    out->len = t->len - 1u;
    return 0;
}

PP_API int pp_tlv_azure_linkid(const struct pp_tlv *t, uint32_t *out)
{
    const uint8_t *v = t->value;

    if (t->type != PP2_TYPE_AZURE)
        return -PP_EINVAL;
    if (t->len != 5)
        return -PP_ETLVLEN;
    if (v[0] != PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID)
        return -PP_EBADTLV;
    *out = (uint32_t)v[1] | (uint32_t)v[2] << 8 | (uint32_t)v[3] << 16 | (uint32_t)v[4] << 24;
    return 0;
}

PP_API int pp_tlv_gcp_psc_id(const struct pp_tlv *t, uint64_t *out)
{
    if (t->type != PP2_TYPE_GCP)
        return -PP_EINVAL;
    if (t->len != 8)
        return -PP_ETLVLEN;
    *out = (uint64_t)rd32be(t->value) << 32 | rd32be(t->value + 4);
    return 0;
}

/* Header-level accessors: find, then decode. */
static int find(const struct pp_header *hdr, uint8_t type, struct pp_tlv *t)
{
    int rc = pp_tlv_find(hdr, type, t);
    return rc > 0 ? 0 : rc == 0 ? -PP_ENOTFOUND : rc;
}

#define PP_GETTER(name, type, out_type, decode)                                                    \
    PP_API int name(const struct pp_header *hdr, out_type *out)                                    \
    {                                                                                              \
        struct pp_tlv t;                                                                           \
        int rc = find(hdr, type, &t);                                                              \
        return rc < 0 ? rc : decode(&t, out);                                                      \
    }

PP_GETTER(pp_get_alpn, PP2_TYPE_ALPN, struct pp_str, pp_tlv_str)
PP_GETTER(pp_get_authority, PP2_TYPE_AUTHORITY, struct pp_str, pp_tlv_str)
PP_GETTER(pp_get_unique_id, PP2_TYPE_UNIQUE_ID, struct pp_str, pp_tlv_str)
PP_GETTER(pp_get_netns, PP2_TYPE_NETNS, struct pp_str, pp_tlv_str)
PP_GETTER(pp_get_noop, PP2_TYPE_NOOP, struct pp_str, pp_tlv_str)
PP_GETTER(pp_get_crc32c, PP2_TYPE_CRC32C, uint32_t, pp_tlv_crc32c)
PP_GETTER(pp_get_ssl, PP2_TYPE_SSL, struct pp_ssl, pp_tlv_ssl)
PP_GETTER(pp_get_aws_vpce_id, PP2_TYPE_AWS, struct pp_str, pp_tlv_aws_vpce_id)
PP_GETTER(pp_get_azure_linkid, PP2_TYPE_AZURE, uint32_t, pp_tlv_azure_linkid)
PP_GETTER(pp_get_gcp_psc_id, PP2_TYPE_GCP, uint64_t, pp_tlv_gcp_psc_id)
