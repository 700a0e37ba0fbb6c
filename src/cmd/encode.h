/* encode.h - the `ppfwd encode` subcommand. */
#ifndef PPFWD_ENCODE_H
#define PPFWD_ENCODE_H

/*
 * Runs `ppfwd encode --src IP:PORT --dst IP:PORT [--v1|--v2] [--udp] [--local]
 * [--tlv TYPE=VALUE]... [--crc32c]` with argv[0] == "encode". Writes exactly
 * one header to stdout, or nothing and a message on stderr. Returns the exit
 * status: 0, or 1 for any error.
 */
int encode_main(int argc, char **argv);

#endif /* PPFWD_ENCODE_H */
