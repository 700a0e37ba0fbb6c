/* strerror.c - messages for the PP_E* codes. */
#include "internal.h"

static const char *const messages[PP_EMAXCODE] = {
    [PP_EBADSIG] = "not a PROXY protocol header",
    [PP_EBADVER] = "unsupported PROXY protocol v2 version",
    [PP_EBADCMD] = "unknown PROXY protocol v2 command",
    [PP_EBADFAM] = "unknown PROXY protocol v2 address family or transport",
    [PP_ETOOLONG] = "PROXY header longer than allowed",
    [PP_EBADPROTO] = "unknown PROXY v1 protocol (not TCP4, TCP6 or UNKNOWN)",
    [PP_EBADLINE] = "malformed PROXY v1 line (fields or spacing)",
    [PP_EBADCRLF] = "PROXY v1 line not terminated by CRLF",
    [PP_EBADADDR] = "malformed or mismatched address",
    [PP_EBADPORT] = "malformed port",
    [PP_EADDRLEN] = "PROXY v2 length shorter than the address block",
    [PP_EUNSPEC] = "PROXY v2 command PROXY with unspecified address family",
    [PP_EBADTLV] = "malformed TLV",
    [PP_ETLVLEN] = "TLV value length not allowed for its type",
    [PP_EBADCRC] = "CRC32C checksum mismatch",
    [PP_ENOSPC] = "output buffer too small",
    [PP_EINVAL] = "invalid argument",
    [PP_ENOTFOUND] = "no such TLV",
};

PP_API const char *pp_strerror(int err)
{
    /* Negate in unsigned arithmetic: -INT_MIN would overflow. */
    unsigned e = err < 0 ? 0u - (unsigned)err : (unsigned)err;

    if (e == 0 || e >= PP_EMAXCODE || messages[e] == NULL)
        return "unknown error";
    return messages[e];
}
