/* proxy_json.c - the JSON "proxy" object (proxy_json_*); see proxy_json.h. */
#include <inttypes.h>
#include <stdio.h>

#include "util/addr.h"
#include "util/proxy_json.h"

static const char *family_name(uint8_t fam)
{
    switch (fam) {
    case PP2_FAM_TCP4:
        return "tcp4";
    case PP2_FAM_TCP6:
        return "tcp6";
    case PP2_FAM_UDP4:
        return "udp4";
    case PP2_FAM_UDP6:
        return "udp6";
    case PP2_FAM_UNIX_STREAM:
        return "unix-stream";
    case PP2_FAM_UNIX_DGRAM:
        return "unix-dgram";
    default:
        return "unspec";
    }
}

static void write_addr(struct json *j, const char *key, const union pp_addr *a)
{
    char text[ADDR_STRLEN];
    int n = addr_format(&a->sa, text, sizeof(text));

    if (n >= 0)
        json_string_n(j, key, text, (size_t)n);
}

static void write_str(struct json *j, const char *key, const struct pp_str *s)
{
    if (s->ptr != NULL)
        json_string_n(j, key, s->ptr, s->len);
}

static void write_ssl(struct json *j, const struct pp_tlv *t)
{
    struct pp_ssl ssl;

    if (pp_tlv_ssl(t, &ssl) != 0)
        return;
    json_object_begin(j, "ssl");
    json_uint(j, "client", ssl.client);
    json_uint(j, "verify", ssl.verify);
    write_str(j, "version", &ssl.version);
    write_str(j, "cn", &ssl.cn);
    write_str(j, "cipher", &ssl.cipher);
    write_str(j, "sig_alg", &ssl.sig_alg);
    write_str(j, "key_alg", &ssl.key_alg);
    write_str(j, "group", &ssl.group);
    write_str(j, "sig_scheme", &ssl.sig_scheme);
    if (ssl.client_cert.ptr != NULL)
        json_hex(j, "client_cert", ssl.client_cert.ptr, ssl.client_cert.len);
    json_object_end(j);
}

/* The "value" member, for the types that have a readable one. */
static void write_value(struct json *j, const struct pp_tlv *t)
{
    struct pp_str s;
    uint32_t u32;
    uint64_t u64;
    char num[24];

    switch (t->type) {
    case PP2_TYPE_ALPN:
    case PP2_TYPE_AUTHORITY:
    case PP2_TYPE_NETNS:
        json_string_n(j, "value", t->value, t->len);
        break;
    case PP2_TYPE_AWS:
        if (pp_tlv_aws_vpce_id(t, &s) == 0)
            json_string_n(j, "value", s.ptr, s.len);
        break;
    case PP2_TYPE_AZURE:
        if (pp_tlv_azure_linkid(t, &u32) == 0)
            json_uint(j, "value", u32);
        break;
    case PP2_TYPE_GCP:
        if (pp_tlv_gcp_psc_id(t, &u64) == 0) {
            snprintf(num, sizeof(num), "%" PRIu64, u64);
            json_string(j, "value", num);
        }
        break;
    default:
        break;
    }
}

static void write_tlv(struct json *j, const struct pp_tlv *t)
{
    const char *name = pp_tlv_name(t->type, 0);

    json_object_begin(j, NULL);
    json_uint(j, "type", t->type);
    if (name != NULL)
        json_string(j, "name", name);
    write_value(j, t);
    json_hex(j, "hex", t->value, t->len);
    if (t->type == PP2_TYPE_SSL)
        write_ssl(j, t);
    json_object_end(j);
}

/* pp_parse() has validated the TLV area, so the iterator cannot fail here;
 * if it ever did, the list would just stop. */
static void write_tlvs(struct json *j, const struct pp_header *hdr)
{
    const uint8_t *p = hdr->tlv;
    struct pp_tlv t;

    json_array_begin(j, "tlvs");
    /* v1 headers have no TLV area at all, and NULL + 0 is undefined. */
    if (p != NULL && hdr->tlv_len != 0)
        while (pp_tlv_next(&p, hdr->tlv + hdr->tlv_len, &t) == 1)
            write_tlv(j, &t);
    json_array_end(j);
}

void proxy_json_write(struct json *j, const char *key, const struct pp_header *hdr, unsigned flags)
{
    int proxied = hdr->command == PP2_CMD_PROXY;

    json_object_begin(j, key);
    json_uint(j, "version", hdr->version);
    json_string(j, "command", proxied ? "proxy" : "local");
    json_string(j, "family", family_name(hdr->fam));
    if (proxied && hdr->src.sa.sa_family != AF_UNSPEC)
        write_addr(j, "src", &hdr->src);
    if (proxied && hdr->dst.sa.sa_family != AF_UNSPEC)
        write_addr(j, "dst", &hdr->dst);
    if (flags & PROXY_JSON_LENGTH)
        json_uint(j, "length", hdr->len);
    write_tlvs(j, hdr);
    json_object_end(j);
}
