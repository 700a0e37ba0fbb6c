/*
 * decode.c - `ppfwd decode [FILE]`: parse the PROXY header at the start of
 * FILE or stdin and print it as one JSON object (decode_*).
 *
 * Input is read only until pp_parse() can decide, so `nc -l ... | ppfwd
 * decode` answers as soon as the header is in, and whatever follows it
 * (application data) is left unread.
 */
#define _GNU_SOURCE /* getopt_long */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <proxyproto.h>

#include "config/cli.h"
#include "cmd/decode.h"
#include "util/json.h"
#include "util/proxy_json.h"

#define CMD "decode"
#define USAGE "usage: ppfwd decode [--max-len N] [--no-crc] [--ipv4-in-tcp6] [FILE]"

enum { OPT_MAX_LEN = 256, OPT_NO_CRC, OPT_V4_IN_V6 };

/* One option per line reads as a table. */
/* clang-format off */
static const struct option longopts[] = {
    {"max-len", required_argument, NULL, OPT_MAX_LEN},
    {"no-crc", no_argument, NULL, OPT_NO_CRC},
    {"ipv4-in-tcp6", no_argument, NULL, OPT_V4_IN_V6},
    {"help", no_argument, NULL, 'h'},
    {NULL, 0, NULL, 0},
};
/* clang-format on */

static void decode_help(void)
{
    printf("%s\n\n"
           "Parses the PROXY protocol v1 or v2 header at the start of FILE (default\n"
           "stdin, also '-') and prints it as one JSON object. Bytes after the header\n"
           "are application data and are not read.\n\n"
           "  --max-len N       largest v2 header accepted, 16-%d bytes (default %d)\n"
           "  --no-crc          do not verify a CRC32C TLV\n"
           "  --ipv4-in-tcp6    accept plain IPv4 in a v1 TCP6 line (nginx does this)\n"
           "  -h, --help        show this help\n\n"
           "Exit status: 0 valid, 1 invalid (or unreadable), 2 incomplete.\n",
           USAGE, PP_V2_MAX_LEN, PP_V2_MAX_LEN);
}

/* Returns 0 with the options filled in, 1 after --help, -1 on a usage error
 * (already reported). */
static int decode_args(int argc, char **argv, struct pp_parse_opts *opts, const char **path)
{
    unsigned long n;
    int c;

    opts->max_len = PP_V2_MAX_LEN;
    opts->flags = 0;
    optind = 0;
    opterr = 0;
    while ((c = getopt_long(argc, argv, ":h", longopts, NULL)) != -1) {
        switch (c) {
        case OPT_MAX_LEN:
            if (cli_parse_uint(optarg, PP_V2_HDR_LEN, PP_V2_MAX_LEN, &n) != 0) {
                cli_error(CMD, "--max-len: expected a number from %d to %d, got '%s'",
                          PP_V2_HDR_LEN, PP_V2_MAX_LEN, optarg);
                return -1;
            }
            opts->max_len = n;
            break;
        case OPT_NO_CRC:
            opts->flags |= PP_PARSE_NO_CRC;
            break;
        case OPT_V4_IN_V6:
            opts->flags |= PP_PARSE_V1_IPV4_IN_TCP6;
            break;
        case 'h':
            decode_help();
            return 1;
        default:
            cli_opt_error(CMD, longopts, argv, c);
            fprintf(stderr, "%s\n", USAGE);
            return -1;
        }
    }
    if (argc - optind > 1) {
        cli_error(CMD, "unexpected argument '%s'", argv[optind + 1]);
        fprintf(stderr, "%s\n", USAGE);
        return -1;
    }
    *path = optind < argc ? argv[optind] : "-";
    return 0;
}

/*
 * Reads fd into buf[0..cap) until pp_parse() decides or input ends. Stores
 * the bytes read in *len and the verdict in *res (> 0 header length, 0
 * incomplete, < 0 -PP_E*). Returns 0, or -errno if reading failed.
 */
static int decode_read(int fd, uint8_t *buf, size_t cap, const struct pp_parse_opts *opts,
                       struct pp_header *hdr, size_t *len, ssize_t *res)
{
    ssize_t n;

    *len = 0;
    for (;;) {
        *res = pp_parse(buf, *len, hdr, opts);
        if (*res != 0)
            return 0;
        /* cap holds the longest header there is; a parser still wanting
         * more by then is a parser bug, reported as too long. */
        if (*len == cap) {
            *res = -PP_ETOOLONG;
            return 0;
        }
        n = read(fd, buf + *len, cap - *len);
        if (n == -1 && errno == EINTR)
            continue;
        if (n == -1)
            return -errno;
        if (n == 0)
            return 0;
        *len += (size_t)n;
    }
}

/* Prints the header as one JSON line in a single write, so stdout gets all
 * of it or (on a memory failure) nothing. */
static int decode_print(const struct pp_header *hdr)
{
    struct json j;
    const char *out;
    size_t n;
    int rc;

    json_init_buf(&j);
    proxy_json_write(&j, NULL, hdr, PROXY_JSON_LENGTH);
    json_newline(&j);
    rc = json_error(&j);
    if (rc == 0) {
        out = json_buf(&j, &n);
        errno = 0;
        if (fwrite(out, 1, n, stdout) != n || fflush(stdout) != 0)
            rc = errno != 0 ? -errno : -EIO;
    }
    json_free(&j);
    if (rc != 0)
        cli_error(CMD, "cannot write the result: %s", strerror(-rc));
    return rc;
}

static int decode_verdict(ssize_t res, size_t len, const struct pp_header *hdr)
{
    if (res < 0) {
        cli_error(CMD, "%s", pp_strerror((int)res));
        return CLI_EXIT_FAIL;
    }
    if (res == 0) {
        if (len == 0)
            cli_error(CMD, "incomplete header: no input");
        else
            cli_error(CMD, "incomplete header: input ended after %zu bytes", len);
        return CLI_EXIT_INCOMPLETE;
    }
    return decode_print(hdr) == 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}

int decode_main(int argc, char **argv)
{
    struct pp_parse_opts opts;
    struct pp_header hdr;
    const char *path;
    uint8_t *buf = NULL;
    int fd = STDIN_FILENO, rc, ret = CLI_EXIT_FAIL;
    size_t len;
    ssize_t res;

    rc = decode_args(argc, argv, &opts, &path);
    if (rc != 0)
        return rc > 0 ? CLI_EXIT_OK : CLI_EXIT_FAIL;
    if (strcmp(path, "-") != 0) {
        fd = open(path, O_RDONLY | O_CLOEXEC);
        if (fd == -1) {
            cli_error(CMD, "%s: %s", path, strerror(errno));
            return CLI_EXIT_FAIL;
        }
    }
    buf = malloc(PP_V2_MAX_LEN);
    if (buf == NULL) {
        cli_error(CMD, "%s", strerror(ENOMEM));
        goto out;
    }
    rc = decode_read(fd, buf, PP_V2_MAX_LEN, &opts, &hdr, &len, &res);
    if (rc != 0) {
        cli_error(CMD, "%s: %s", strcmp(path, "-") == 0 ? "stdin" : path, strerror(-rc));
        goto out;
    }
    ret = decode_verdict(res, len, &hdr);
out:
    free(buf);
    if (fd != STDIN_FILENO)
        close(fd);
    return ret;
}
