/* parse.c - pp_parse: tells v1 from v2 by the first byte and dispatches. */
#include "internal.h"

static const struct pp_parse_opts default_opts;

PP_API ssize_t pp_parse(const uint8_t *buf, size_t len, struct pp_header *hdr,
                        const struct pp_parse_opts *opts)
{
    if (opts == NULL)
        opts = &default_opts;
    if (len == 0)
        return 0;
    /* The v2 signature starts with CR and the v1 line with 'P': one byte
     * is enough to tell a PROXY header from anything else. */
    if (buf[0] == '\r' && !(opts->flags & PP_PARSE_NO_V2))
        return pp__parse_v2(buf, len, hdr, opts);
    if (buf[0] == 'P' && !(opts->flags & PP_PARSE_NO_V1))
        return pp__parse_v1(buf, len, hdr, opts->flags);
    return -PP_EBADSIG;
}
