/* decode.h - the `ppfwd decode` subcommand. */
#ifndef PPFWD_DECODE_H
#define PPFWD_DECODE_H

/*
 * Runs `ppfwd decode [--max-len N] [--no-crc] [--ipv4-in-tcp6] [FILE]` with
 * argv[0] == "decode". Prints one JSON line on stdout for a valid header and
 * nothing otherwise; messages go to stderr. Returns the exit status: 0 valid,
 * 1 invalid header, unreadable input or usage error, 2 input ended before the
 * header did.
 */
int decode_main(int argc, char **argv);

#endif /* PPFWD_DECODE_H */
