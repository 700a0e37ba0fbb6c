/*
 * clirun.h - running the ppfwd binary in the command-line tests: see
 * clirun.c.
 */
#ifndef PPFWD_TESTS_CLIRUN_H
#define PPFWD_TESTS_CLIRUN_H

#include <stddef.h>
#include <stdint.h>

#define CRUN_TIMEOUT_MS 30000
#define CRUN_MAX_ARGS 32

struct crun {
    int status; /* exit code; 128 + signal if killed; -1 on timeout */
    uint8_t *out;
    size_t out_len;
    char *err; /* NUL-terminated */
    size_t err_len;
};

/* Runs ppfwd with args (NULL-terminated) and stdin in[0..in_len); fills r
 * (free it with crun_free). */
void crun_run(struct crun *r, const char *const *args, const void *in, size_t in_len);
void crun_free(struct crun *r);

/* Hex digits to bytes (at most cap). Returns the byte count. */
size_t crun_unhex(const char *hex, uint8_t *out, size_t cap);

/* Decodes in[0..len) from stdin and expects exit 0 and exactly json + '\n';
 * _hex takes the input as hex digits. */
void crun_expect_decode(const void *in, size_t len, const char *json);
void crun_expect_decode_hex(const char *hex, const char *json_line);

/* Expects a failure with this exit status, nothing on stdout and stderr
 * containing each of the NULL-terminated needles (see NEEDLES). */
void crun_expect_fail(const char *const *args, const void *in, size_t len, int status, ...);

/* Runs encode with args, expects success, and returns the header bytes in
 * *out (the caller frees it). */
size_t crun_encode(const char *const *args, uint8_t **out);

/* encode | decode must print exactly json (plus '\n'). */
void crun_expect_roundtrip(const char *const *args, const char *json);

/* encode must print exactly the bytes of hex. */
void crun_expect_encode_bytes(const char *const *args, const char *hex);

#define ARGS(...) ((const char *const[]){__VA_ARGS__, NULL})
#define NEEDLES(...) __VA_ARGS__, (const char *)NULL

#endif /* PPFWD_TESTS_CLIRUN_H */
