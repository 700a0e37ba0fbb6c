/*
 * encode.c - `ppfwd encode`: build one PROXY header from the command line and
 * write it to stdout (encode_*).
 *
 * Everything is checked before a byte is written, and the finished header is
 * run through pp_parse() as a receiver would: encode never emits a header
 * that libproxyproto (or HAProxy, whose limits it follows) would refuse.
 */
#define _GNU_SOURCE /* getopt_long */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <proxyproto.h>

#include "util/addr.h"
#include "config/cli.h"
#include "config/tlv_policy.h"
#include "cmd/encode.h"

#define CMD "encode"
#define USAGE                                                                                      \
    "usage: ppfwd encode --src IP:PORT --dst IP:PORT [--v1|--v2] [--udp] [--local] "               \
    "[--tlv TYPE=VALUE]... [--crc32c]"
#define TLV_VALUE_MAX 65535

enum { OPT_SRC = 256, OPT_DST, OPT_V1, OPT_V2, OPT_UDP, OPT_LOCAL, OPT_TLV, OPT_CRC };

/* One option per line reads as a table. */
/* clang-format off */
static const struct option longopts[] = {
    {"src", required_argument, NULL, OPT_SRC},
    {"dst", required_argument, NULL, OPT_DST},
    {"v1", no_argument, NULL, OPT_V1},
    {"v2", no_argument, NULL, OPT_V2},
    {"udp", no_argument, NULL, OPT_UDP},
    {"local", no_argument, NULL, OPT_LOCAL},
    {"tlv", required_argument, NULL, OPT_TLV},
    {"crc32c", no_argument, NULL, OPT_CRC},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
/* clang-format on */

struct encode_args {
    int v1, v2, udp, local, crc; /* flags seen */
    const char *src, *dst;       /* as given, or NULL */
    char **tlv;                  /* the --tlv arguments in order, pointing into argv */
    size_t ntlv;
    struct sockaddr_storage src_addr, dst_addr;
};

static void encode_help(void)
{
    printf("%s\n\n"
           "Writes one PROXY protocol header to stdout (binary for v2).\n\n"
           "  --src ADDR, --dst ADDR  1.2.3.4:PORT, [2001:db8::1]:PORT or /unix/path (v2);\n"
           "                          required unless --local, ignored with it\n"
           "  --v1 | --v2             protocol version (default v2)\n"
           "  --udp                   DGRAM transport (v2 only)\n"
           "  --local                 a LOCAL header (v1: PROXY UNKNOWN)\n"
           "  --tlv TYPE=VALUE        add a TLV (v2 only), in order; TYPE is 0-255 (decimal\n"
           "                          or 0x..) or alpn, authority, unique-id, netns, noop;\n"
           "                          VALUE is text, or hex:... for raw bytes\n"
           "  --crc32c                append a CRC32C TLV over the whole header (v2 only)\n"
           "  -h, --help              show this help\n",
           USAGE);
}

static void encode_usage_error(void)
{
    fprintf(stderr, "%s\n", USAGE);
}

static int encode_option(struct encode_args *a, int c, char **argv)
{
    switch (c) {
    case OPT_SRC:
        a->src = optarg;
        break;
    case OPT_DST:
        a->dst = optarg;
        break;
    case OPT_V1:
        a->v1 = 1;
        break;
    case OPT_V2:
        a->v2 = 1;
        break;
    case OPT_UDP:
        a->udp = 1;
        break;
    case OPT_LOCAL:
        a->local = 1;
        break;
    case OPT_TLV:
        a->tlv[a->ntlv++] = optarg;
        break;
    case OPT_CRC:
        a->crc = 1;
        break;
    default:
        cli_opt_error(CMD, longopts, argv, c);
        return -1;
    }
    return 0;
}

/* Combinations that cannot make a header. */
static int encode_check(const struct encode_args *a)
{
    if (a->v1 && a->v2)
        cli_error(CMD, "--v1 and --v2 exclude each other");
    else if (a->v1 && a->udp)
        cli_error(CMD, "--udp needs v2: PROXY v1 cannot express UDP");
    else if (a->v1 && a->ntlv > 0)
        cli_error(CMD, "--tlv needs v2: PROXY v1 headers carry no TLVs");
    else if (a->v1 && a->crc)
        cli_error(CMD, "--crc32c needs v2: PROXY v1 headers carry no TLVs");
    else if (!a->local && a->src == NULL)
        cli_error(CMD, "missing --src (required unless --local)");
    else if (!a->local && a->dst == NULL)
        cli_error(CMD, "missing --dst (required unless --local)");
    else
        return 0;
    return -1;
}

/* Returns 0 with *a filled in, 1 after --help, -1 on a usage error (already
 * reported). a->tlv must have room for argc entries. */
static int encode_args(int argc, char **argv, struct encode_args *a)
{
    int c;

    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        if (c == 'h') {
            encode_help();
            return 1;
        }
        if (encode_option(a, c, argv) != 0) {
            encode_usage_error();
            return -1;
        }
    }
    if (optind < argc) {
        cli_error(CMD, "unexpected argument '%s'", argv[optind]);
        encode_usage_error();
        return -1;
    }
    if (encode_check(a) != 0) {
        encode_usage_error();
        return -1;
    }
    return 0;
}

static int encode_addr(const char *opt, const char *s, struct sockaddr_storage *out)
{
    int rc = addr_parse(s, ADDR_PARSE_UNIX, out);

    if (rc != 0)
        cli_error(CMD, "%s '%s': %s", opt, s, addr_strerror(rc));
    return rc;
}

/* Parses --src/--dst (also with --local, where they are then not carried). */
static int encode_addrs(struct encode_args *a)
{
    int unix_src, unix_dst;

    if (a->src != NULL && encode_addr("--src", a->src, &a->src_addr) != 0)
        return -1;
    if (a->dst != NULL && encode_addr("--dst", a->dst, &a->dst_addr) != 0)
        return -1;
    if (a->local)
        return 0;
    unix_src = a->src_addr.ss_family == AF_UNIX;
    unix_dst = a->dst_addr.ss_family == AF_UNIX;
    if (unix_src != unix_dst) {
        cli_error(CMD, "--src and --dst must both be unix paths or both IP addresses");
        return -1;
    }
    if (unix_src && a->v1) {
        cli_error(CMD, "PROXY v1 cannot express unix addresses; use --v2");
        return -1;
    }
    return 0;
}

/* TYPE: decimal 0-255, 0x00-0xff, or a name pp_tlv_name() knows: the same
 * spelling as a route's add-tlv (config/tlv_policy.c). */
static int encode_tlv_type(const char *s, size_t n, uint8_t *type)
{
    char err[256];

    return tlv_type_parse(s, n, type, err, sizeof(err));
}

/* VALUE: "hex:" and an even number of hex digits (decoded into scratch, which
 * holds TLV_VALUE_MAX bytes), or text used as is. */
static int encode_tlv_value(const char *s, uint8_t *scratch, const uint8_t **val, size_t *len)
{
    size_t n;

    if (strncmp(s, "hex:", 4) != 0) {
        *val = (const uint8_t *)s;
        *len = strlen(s);
        return 0;
    }
    s += 4;
    n = strlen(s);
    if (n % 2 != 0)
        return -1;
    if (n / 2 > TLV_VALUE_MAX) {
        *len = n / 2;
        return 0;
    }
    if (tlv_hex_decode(s, n, scratch) != 0)
        return -1;
    *val = scratch;
    *len = n / 2;
    return 0;
}

/* The per-type limits receivers enforce (pp_parse() refuses more). */
static int encode_tlv_limits(const char *spec, int tn, uint8_t type, size_t len)
{
    size_t max = TLV_VALUE_MAX;

    if (type == PP2_TYPE_CRC32C) {
        cli_error(CMD, "--tlv %.*s: use --crc32c, which computes the checksum", tn, spec);
        return -1;
    }
    if (type == PP2_TYPE_AUTHORITY)
        max = PP2_AUTHORITY_MAX;
    else if (type == PP2_TYPE_UNIQUE_ID)
        max = PP2_UNIQUE_ID_MAX;
    if (len > max) {
        cli_error(CMD, "--tlv %.*s: value is %zu bytes, more than the %zu allowed", tn, spec, len,
                  max);
        return -1;
    }
    return 0;
}

/* Appends the TLV spec ("TYPE=VALUE") to the header of *len bytes in buf. */
static int encode_tlv(uint8_t *buf, size_t cap, size_t *len, const char *spec, uint8_t *scratch)
{
    const char *eq = strchr(spec, '=');
    const uint8_t *val = NULL;
    size_t vlen;
    uint8_t type;
    ssize_t n;
    int tn;

    if (eq == NULL) {
        cli_error(CMD, "--tlv '%.40s': expected TYPE=VALUE", spec);
        return -1;
    }
    tn = (int)(eq - spec) > 40 ? 40 : (int)(eq - spec);
    if (encode_tlv_type(spec, (size_t)(eq - spec), &type) != 0) {
        cli_error(CMD,
                  "--tlv: unknown TLV type '%.*s' (want 0-255, 0x00-0xff, alpn, "
                  "authority, unique-id, netns or noop)",
                  tn, spec);
        return -1;
    }
    if (encode_tlv_value(eq + 1, scratch, &val, &vlen) != 0) {
        cli_error(CMD, "--tlv %.*s: bad hex value (want hex: and pairs of hex digits)", tn, spec);
        return -1;
    }
    if (encode_tlv_limits(spec, tn, type, vlen) != 0)
        return -1;
    n = pp_build_v2_tlv(buf, cap, *len, type, val, vlen);
    if (n < 0) {
        cli_error(CMD, "--tlv %.*s: %s", tn, spec,
                  n == -PP_EINVAL ? "the header would be longer than 65551 bytes"
                                  : pp_strerror((int)n));
        return -1;
    }
    *len = (size_t)n;
    return 0;
}

static const struct sockaddr *sa_or_null(const struct sockaddr_storage *ss, int local)
{
    return local || ss->ss_family == AF_UNSPEC ? NULL : (const struct sockaddr *)ss;
}

/* Builds the header into buf[0..cap); returns its length or -1 (reported). */
static ssize_t encode_build(const struct encode_args *a, uint8_t *buf, size_t cap, uint8_t *scratch)
{
    const struct sockaddr *src = sa_or_null(&a->src_addr, a->local);
    const struct sockaddr *dst = sa_or_null(&a->dst_addr, a->local);
    ssize_t n;
    size_t len, i;

    if (a->v1)
        n = pp_build_v1(buf, cap, src, dst);
    else
        n = pp_build_v2(buf, cap, a->local ? PP2_CMD_LOCAL : PP2_CMD_PROXY,
                        a->udp ? SOCK_DGRAM : SOCK_STREAM, src, dst);
    if (n < 0) {
        cli_error(CMD, "cannot build the header: %s", pp_strerror((int)n));
        return -1;
    }
    len = (size_t)n;
    for (i = 0; i < a->ntlv; i++)
        if (encode_tlv(buf, cap, &len, a->tlv[i], scratch) != 0)
            return -1;
    if (a->crc) {
        n = pp_build_v2_crc32c(buf, cap, len);
        if (n < 0) {
            cli_error(CMD, "--crc32c: %s",
                      n == -PP_EINVAL ? "the header would be longer than 65551 bytes"
                                      : pp_strerror((int)n));
            return -1;
        }
        len = (size_t)n;
    }
    return (ssize_t)len;
}

/* Parses the header back as a receiver would, with the largest v2 cap. */
static int encode_verify(const uint8_t *buf, size_t len)
{
    struct pp_parse_opts opts = {.max_len = PP_V2_MAX_LEN, .flags = 0};
    struct pp_header hdr;
    ssize_t n = pp_parse(buf, len, &hdr, &opts);

    if (n == (ssize_t)len)
        return 0;
    if (n < 0)
        cli_error(CMD, "refusing to write a header receivers would reject: %s",
                  pp_strerror((int)n));
    else
        cli_error(CMD, "internal error: the built header parses as %zd of %zu bytes", n, len);
    return -1;
}

static int encode_write(const uint8_t *buf, size_t len)
{
    if (fwrite(buf, 1, len, stdout) != len || fflush(stdout) != 0) {
        cli_error(CMD, "cannot write the header: %s", strerror(errno));
        return -1;
    }
    return 0;
}

int encode_main(int argc, char **argv)
{
    struct encode_args a;
    uint8_t *buf = NULL, *scratch = NULL;
    int rc, ret = CLI_EXIT_FAIL;
    ssize_t n;

    memset(&a, 0, sizeof(a));
    a.tlv = calloc((size_t)argc, sizeof(*a.tlv));
    buf = malloc(PP_V2_MAX_LEN);
    scratch = malloc(TLV_VALUE_MAX);
    if (a.tlv == NULL || buf == NULL || scratch == NULL) {
        cli_error(CMD, "%s", strerror(ENOMEM));
        goto out;
    }
    rc = encode_args(argc, argv, &a);
    if (rc != 0) {
        ret = rc > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
        goto out;
    }
    if (encode_addrs(&a) != 0)
        goto out;
    n = encode_build(&a, buf, PP_V2_MAX_LEN, scratch);
    if (n < 0 || encode_verify(buf, (size_t)n) != 0)
        goto out;
    if (encode_write(buf, (size_t)n) == 0)
        ret = CLI_EXIT_OK;
out:
    free(scratch);
    free(buf);
    free(a.tlv);
    return ret;
}
