/*
 * proxy_json.h - a parsed PROXY header as the JSON "proxy" object of
 * INTERFACE.md: what `ppfwd decode` prints and what `whoami` will answer.
 */
#ifndef PPFWD_PROXY_JSON_H
#define PPFWD_PROXY_JSON_H

#include <proxyproto.h>

#include "util/json.h"

/* proxy_json_write flags. */
#define PROXY_JSON_LENGTH 0x01 /* add "length": the header bytes consumed */

/*
 * Writes hdr, which pp_parse() accepted (its TLV bytes still alive), as one
 * object under key (NULL at the top level or in an array):
 *   version, command ("proxy"|"local"), family, src and dst (command proxy with
 *   an address family only), length (with PROXY_JSON_LENGTH), tlvs.
 * Each TLV is {"type", "name" (known types), "value" (see below), "hex"}, in
 * wire order, duplicates included. "value" is the text for alpn, authority
 * and netns; the endpoint ID for aws; the link ID as a number for azure; the
 * PSC ID as a decimal string for gcp (a u64 is past the 2^53 that every JSON
 * reader holds exactly). unique-id, noop, crc32c and unknown types are hex
 * only. An ssl TLV adds "ssl": {client, verify, and each sub-TLV present:
 * version, cn, cipher, sig_alg, key_alg, group, sig_scheme, client_cert (hex)}.
 * A vendor TLV whose value does not decode simply has no "value".
 * Errors are reported through j (see json.h).
 */
void proxy_json_write(struct json *j, const char *key, const struct pp_header *hdr, unsigned flags);

#endif /* PPFWD_PROXY_JSON_H */
