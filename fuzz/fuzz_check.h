/*
 * fuzz_check.h - invariant checks shared by the fuzz targets: an independent
 * model of what every typed TLV decoder must return for a given TLV, written
 * from the contracts in proxyproto.h rather than from the library's code.
 * Included by exactly one translation unit per fuzz binary.
 */
#ifndef PP_FUZZ_CHECK_H
#define PP_FUZZ_CHECK_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxyproto.h"

/* Printing the failed condition before aborting makes a crash report
 * readable without a debugger; abort() lets libFuzzer save the input. */
#define CHECK(cond)                                                                                \
    do {                                                                                           \
        if (!(cond))                                                                               \
            check_failed(__FILE__, __LINE__, #cond);                                               \
    } while (0)

static void check_failed(const char *file, int line, const char *what)
{
    fprintf(stderr, "%s:%d: invariant violated: %s\n", file, line, what);
    abort();
}

static unsigned be16(const uint8_t *p)
{
    return (unsigned)p[0] << 8 | p[1];
}

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

/* Reads every byte of [p, p + n) so ASan sees any pointer that escapes its
 * buffer. A memcpy is checked as one range by ASan, where a byte loop would
 * cost an instrumented comparison per byte. */
static volatile uint8_t touch_sink;

static void touch(const void *p, size_t n)
{
    static uint8_t scratch[4096];
    const uint8_t *b = p;

    while (n > 0) {
        size_t k = n < sizeof(scratch) ? n : sizeof(scratch);

        memcpy(scratch, b, k);
        /* A read of the copy keeps the compiler from dropping it. */
        touch_sink = scratch[k - 1];
        b += k;
        n -= k;
    }
}

static int is_text_type(uint8_t type)
{
    return type == PP2_TYPE_ALPN || type == PP2_TYPE_AUTHORITY || type == PP2_TYPE_UNIQUE_ID ||
           type == PP2_TYPE_NETNS || type == PP2_TYPE_NOOP;
}

static size_t text_limit(uint8_t type)
{
    if (type == PP2_TYPE_AUTHORITY)
        return PP2_AUTHORITY_MAX;
    if (type == PP2_TYPE_UNIQUE_ID)
        return PP2_UNIQUE_ID_MAX;
    return 0xFFFF;
}

static struct pp_str *ssl_slot(struct pp_ssl *s, uint8_t sub)
{
    struct pp_str *slots[] = {&s->version, &s->cn,    &s->cipher,     &s->sig_alg,
                              &s->key_alg, &s->group, &s->sig_scheme, &s->client_cert};

    return sub >= PP2_SUBTYPE_SSL_VERSION && sub <= PP2_SUBTYPE_SSL_CLIENT_CERT
               ? slots[sub - PP2_SUBTYPE_SSL_VERSION]
               : NULL;
}

static void check_str_eq(const struct pp_str *got, const struct pp_str *want)
{
    CHECK((got->ptr == NULL) == (want->ptr == NULL));
    if (got->ptr != NULL) {
        CHECK(got->ptr == want->ptr);
        CHECK(got->len == want->len);
    }
}

/* The model of pp_tlv_ssl: the fixed part, then a sub-TLV walk in which the
 * first sub-TLV of each known kind fills its field. Returns the expected
 * return code and fills *want when it is 0. */
static int model_ssl(const struct pp_tlv *t, struct pp_ssl *want)
{
    const uint8_t *p, *end;

    if (t->len < PP2_SSL_FIXED_LEN)
        return -PP_ETLVLEN;
    memset(want, 0, sizeof(*want));
    want->client = t->value[0];
    want->verify = be32(t->value + 1);
    want->sub = p = t->value + PP2_SSL_FIXED_LEN;
    want->sub_len = t->len - PP2_SSL_FIXED_LEN;
    end = p + want->sub_len;
    while (p != end) {
        struct pp_str *slot;
        unsigned n;

        if (end - p < 3)
            return -PP_EBADTLV;
        n = be16(p + 1);
        if ((size_t)(end - p) - 3 < n)
            return -PP_EBADTLV;
        slot = ssl_slot(want, p[0]);
        if (slot != NULL && slot->ptr == NULL) {
            slot->ptr = (const char *)p + 3;
            slot->len = n;
        }
        p += 3 + n;
    }
    return 0;
}

static void check_ssl(const struct pp_tlv *t)
{
    struct pp_ssl got, want;
    int rc = pp_tlv_ssl(t, &got);

    if (t->type != PP2_TYPE_SSL) {
        CHECK(rc == -PP_EINVAL);
        return;
    }
    CHECK(rc == model_ssl(t, &want));
    if (rc < 0)
        return;
    CHECK(got.client == want.client && got.verify == want.verify);
    CHECK(got.sub == want.sub && got.sub_len == want.sub_len);
    check_str_eq(&got.version, &want.version);
    check_str_eq(&got.cn, &want.cn);
    check_str_eq(&got.cipher, &want.cipher);
    check_str_eq(&got.sig_alg, &want.sig_alg);
    check_str_eq(&got.key_alg, &want.key_alg);
    check_str_eq(&got.group, &want.group);
    check_str_eq(&got.sig_scheme, &want.sig_scheme);
    check_str_eq(&got.client_cert, &want.client_cert);

    /* The sub-TLVs are meant to be walked with the same iterator. */
    const uint8_t *p = got.sub, *end = got.sub + got.sub_len;
    struct pp_tlv sub;
    int n;

    while ((n = pp_tlv_next(&p, end, &sub)) == 1) {
        const char *name = pp_tlv_name(sub.type, 1);

        CHECK((name != NULL) == (ssl_slot(&want, sub.type) != NULL));
        touch(sub.value, sub.len);
    }
    CHECK(n == 0 && p == end);
}

static int aws_id_char(uint8_t c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-';
}

static void check_vendor(const struct pp_tlv *t)
{
    struct pp_str s;
    uint32_t u32;
    uint64_t u64;
    int rc, want;

    rc = pp_tlv_aws_vpce_id(t, &s);
    if (t->type != PP2_TYPE_AWS) {
        want = -PP_EINVAL;
    } else if (t->len < 1) {
        want = -PP_ETLVLEN;
    } else {
        want = t->value[0] == PP2_SUBTYPE_AWS_VPCE_ID ? 0 : -PP_EBADTLV;
        for (size_t i = 1; i < t->len && want == 0; i++)
            if (!aws_id_char(t->value[i]))
                want = -PP_EBADTLV;
    }
    CHECK(rc == want);
    if (rc == 0)
        CHECK(s.ptr == (const char *)t->value + 1 && s.len == t->len - 1u);

    rc = pp_tlv_azure_linkid(t, &u32);
    if (t->type != PP2_TYPE_AZURE)
        want = -PP_EINVAL;
    else if (t->len != 5)
        want = -PP_ETLVLEN;
    else
        want = t->value[0] == PP2_SUBTYPE_AZURE_PRIVATEENDPOINT_LINKID ? 0 : -PP_EBADTLV;
    CHECK(rc == want);
    if (rc == 0)
        CHECK(u32 == ((uint32_t)t->value[1] | (uint32_t)t->value[2] << 8 |
                      (uint32_t)t->value[3] << 16 | (uint32_t)t->value[4] << 24));

    rc = pp_tlv_gcp_psc_id(t, &u64);
    if (t->type != PP2_TYPE_GCP)
        CHECK(rc == -PP_EINVAL);
    else if (t->len != 8)
        CHECK(rc == -PP_ETLVLEN);
    else
        CHECK(rc == 0 && u64 == ((uint64_t)be32(t->value) << 32 | be32(t->value + 4)));
}

/* Runs every typed decoder on t and checks each against the contract,
 * whatever t's type: a decoder given another type must say -PP_EINVAL. */
static void check_decoders(const struct pp_tlv *t)
{
    struct pp_str s;
    uint32_t u32;
    int rc;

    touch(t->value, t->len);
    rc = pp_tlv_str(t, &s);
    if (!is_text_type(t->type)) {
        CHECK(rc == -PP_EINVAL);
    } else if (t->len > text_limit(t->type)) {
        CHECK(rc == -PP_ETLVLEN);
    } else {
        CHECK(rc == 0);
        CHECK(s.ptr == (const char *)t->value && s.len == t->len);
    }

    rc = pp_tlv_crc32c(t, &u32);
    if (t->type != PP2_TYPE_CRC32C)
        CHECK(rc == -PP_EINVAL);
    else if (t->len != 4)
        CHECK(rc == -PP_ETLVLEN);
    else
        CHECK(rc == 0 && u32 == be32(t->value));

    check_ssl(t);
    check_vendor(t);

    const char *name = pp_tlv_name(t->type, 0);
    if (name != NULL)
        touch(name, strlen(name));
    CHECK((name != NULL) == (is_text_type(t->type) || t->type == PP2_TYPE_CRC32C ||
                             t->type == PP2_TYPE_SSL || t->type == PP2_TYPE_AWS ||
                             t->type == PP2_TYPE_AZURE || t->type == PP2_TYPE_GCP));
}

#endif /* PP_FUZZ_CHECK_H */
