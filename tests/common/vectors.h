/*
 * vectors.h - test helpers shared by the unit tests: loading the commented hex
 * vector files of tests/vectors (format in tests/vectors/README.md), listing
 * them, and placing bytes right before an inaccessible page so that any read
 * past the end of an input crashes under test.
 *
 * The helpers report problems on stderr and return -1 (or NULL); the tests
 * turn that into a cmocka failure. Nothing here uses cmocka itself.
 */
#ifndef PP_TESTS_VECTORS_H
#define PP_TESTS_VECTORS_H

#include <stddef.h>
#include <stdint.h>

/* One vector file. Every pointer is owned by the struct (vectors_free). */
struct vector {
    char *path;     /* as passed to vectors_load */
    char *name;     /* "# name:" value, or the file name when there is none */
    uint8_t *bytes; /* the decoded bytes; never NULL, even when len is 0 */
    size_t len;
    long expect;    /* "# expect:": > 0 length, 0 need more, < 0 -PP_E* code */
    unsigned flags; /* "# flags:" PP_PARSE_* bits, 0 when absent */
    size_t max_len; /* "# max_len:", 0 (the parser default) when absent */
};

/* Reads and decodes the vector file at path into *v. Returns 0, or -1 with a
 * message on stderr for an unreadable file, a bad hex digit, an odd digit
 * count, a missing "expect" or an unknown error or flag name. */
int vectors_load(const char *path, struct vector *v);
void vectors_free(struct vector *v);

/* Decodes a hex string (whitespace ignored) into out[0..cap). Returns the
 * byte count, or -1 on a bad digit, an odd count or too little room. */
long vectors_unhex(const char *hex, uint8_t *out, size_t cap);
/* Value of the hex digit c (either case), or -1 if c is not one. */
int vectors_hexval(int c);

/* Directory holding valid/ and invalid/: $PP_VECTORS, else "tests/vectors". */
const char *vectors_dir(void);

/* Lists the *.hex files of vectors_dir()/sub (sub is "valid" or "invalid"),
 * sorted by name, as full paths. Returns the count and stores a NULL-terminated
 * array in *paths (free with vectors_list_free), or -1 if the directory cannot
 * be read. */
int vectors_list(const char *sub, char ***paths);
void vectors_list_free(char **paths);

/* Value of a PP_E* name ("PP_EBADSIG" -> PP_EBADSIG), or -1 if unknown. */
int vectors_error_value(const char *name);
/* "PP_EBADSIG" for PP_EBADSIG or -PP_EBADSIG, "?" for anything else. */
const char *vectors_error_name(long code);
/* Value of a PP_PARSE_* name, or 0 if unknown. */
unsigned vectors_flag_value(const char *name);

/*
 * Guard region: a read/write area whose last byte sits right before a
 * PROT_NONE page. guard_place copies n bytes so that they end exactly at that
 * page, so a parser reading even one byte too far gets SIGSEGV instead of a
 * silent pass. The area is reused: place as many inputs as needed.
 */
struct guard {
    uint8_t *map;   /* start of the mapping */
    size_t size;    /* whole mapping, guard page included */
    uint8_t *limit; /* first byte of the PROT_NONE page */
    size_t cap;     /* bytes that fit before limit */
};

/* Maps room for inputs of up to cap bytes. Returns 0, or -1 (message on
 * stderr). */
int guard_init(struct guard *g, size_t cap);
/* Copies p[0..n) to end at g->limit and returns where it starts, or NULL if n
 * is over g->cap. */
uint8_t *guard_place(struct guard *g, const void *p, size_t n);
void guard_free(struct guard *g);

/* The guard region of a test binary, with cmocka group fixtures for it (they
 * only need cmocka's signature): guard_setup maps guard for inputs of up to
 * guard_cap bytes, so set guard_cap before running the group, and returns 0,
 * or -1 if guard_init fails; guard_teardown unmaps it and returns 0. */
extern struct guard guard;
extern size_t guard_cap;
int guard_setup(void **state);
int guard_teardown(void **state);

#endif /* PP_TESTS_VECTORS_H */
