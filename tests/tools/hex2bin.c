/*
 * hex2bin - turns a test vector file (tests/vectors/README.md) into raw bytes.
 *
 * Reads the file on stdin and writes the bytes to stdout. '#' starts a comment
 * that runs to the end of the line, whitespace is ignored, everything else
 * must be a hex digit, and the digits must pair up into whole bytes. On bad
 * input nothing useful can be produced, so it exits 1 with a message naming
 * the line; the fuzz corpus rule in the Makefile stops on that.
 */
#include <stdio.h>
#include <stdlib.h>

#include "vectors.h"

static int is_space(int c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\v' || c == '\f';
}

int main(void)
{
    unsigned long line = 1;
    int hi = -1; /* pending high nibble, -1 when none */
    int c;

    while ((c = getchar()) != EOF) {
        if (c == '#') {
            while ((c = getchar()) != EOF && c != '\n')
                ;
            if (c == EOF)
                break;
        }
        if (c == '\n') {
            line++;
            continue;
        }
        if (is_space(c))
            continue;
        int v = vectors_hexval(c);
        if (v < 0) {
            fprintf(stderr, "hex2bin: line %lu: bad character 0x%02x\n", line, (unsigned)c);
            return 1;
        }
        if (hi < 0) {
            hi = v;
            continue;
        }
        if (putchar(hi << 4 | v) == EOF) {
            perror("hex2bin: write");
            return 1;
        }
        hi = -1;
    }
    if (ferror(stdin)) {
        perror("hex2bin: read");
        return 1;
    }
    if (hi >= 0) {
        fprintf(stderr, "hex2bin: odd number of hex digits\n");
        return 1;
    }
    if (fflush(stdout) == EOF) {
        perror("hex2bin: write");
        return 1;
    }
    return 0;
}
