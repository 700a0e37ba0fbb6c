/*
 * test_vectors.c - runs pp_parse over every file of tests/vectors (directory
 * from $PP_VECTORS), each placed to end right before a PROT_NONE page.
 *
 * valid/:   the whole input returns "expect"; every shorter prefix returns 0
 *           while it is shorter than the header and the header length once
 *           the header is complete (application bytes may follow it).
 * invalid/: the whole input returns exactly "expect"; no prefix is ever
 *           accepted, and once a prefix is refused every longer one is too
 *           (refused bytes can never become a header).
 * One cmocka test per file, named after it, plus pp_strerror and a check
 * that every error pp_parse can return has a vector.
 */
#include <limits.h>
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cmocka.h>

#include "proxyproto.h"
#include "vectors.h"

/* Largest vector input; the big-NOOP and over-cap vectors are about 5 KB. */
#define GUARD_CAP 70000

struct vcase {
    char *path;
    int loaded;
    struct vector v;
};

static struct vcase *valid_cases, *invalid_cases;
static int n_valid, n_invalid;

static const char *base(const char *path)
{
    const char *s = strrchr(path, '/');
    return s != NULL ? s + 1 : path;
}

static ssize_t parse_placed(const struct vector *v, size_t n, unsigned flags, struct pp_header *hdr)
{
    struct pp_parse_opts opts = {.max_len = v->max_len, .flags = flags};
    const uint8_t *p = guard_place(&guard, v->bytes, n);
    assert_non_null(p);
    memset(hdr, 0xA5, sizeof(*hdr));
    return pp_parse(p, n, hdr, &opts);
}

static void test_valid(void **state)
{
    const struct vcase *c = *state;
    const struct vector *v = &c->v;
    struct pp_header hdr;

    if (!c->loaded)
        fail_msg("%s: cannot load", c->path);
    assert_true(v->expect > 0);
    assert_true((size_t)v->expect <= v->len);

    ssize_t n = parse_placed(v, v->len, v->flags, &hdr);
    if (n != v->expect)
        fail_msg("%s: got %zd (%s), want %ld", base(c->path), n, vectors_error_name(n), v->expect);
    const uint8_t *p = guard.limit - v->len;
    int version = v->bytes[0] == 'P' ? 1 : 2;
    assert_int_equal(hdr.len, (size_t)n);
    assert_int_equal(hdr.version, version);
    if (version == 1) {
        assert_int_equal(hdr.tlv_len, 0);
    } else if (hdr.tlv_len > 0) {
        /* TLVs end exactly where the header ends, inside the input. */
        assert_ptr_equal(hdr.tlv + hdr.tlv_len, p + n);
        assert_true(hdr.tlv >= p + PP_V2_HDR_LEN);
    }

    for (size_t k = 0; k < v->len; k++) {
        ssize_t want = k < (size_t)v->expect ? 0 : v->expect;
        ssize_t got = parse_placed(v, k, v->flags, &hdr);
        if (got != want)
            fail_msg("%s: prefix of %zu bytes: got %zd (%s), want %zd", base(c->path), k, got,
                     vectors_error_name(got), want);
    }

    /* Refusing the other version changes nothing; refusing this one is "not
     * a PROXY header". */
    unsigned other = version == 1 ? PP_PARSE_NO_V2 : PP_PARSE_NO_V1;
    unsigned self = version == 1 ? PP_PARSE_NO_V1 : PP_PARSE_NO_V2;
    assert_int_equal(parse_placed(v, v->len, v->flags | other, &hdr), v->expect);
    assert_int_equal(parse_placed(v, v->len, v->flags | self, &hdr), -PP_EBADSIG);

    if (v->flags == 0 && v->max_len == 0) {
        const uint8_t *q = guard_place(&guard, v->bytes, v->len);
        assert_int_equal(pp_parse(q, v->len, &hdr, NULL), v->expect);
    }
}

static void test_invalid(void **state)
{
    const struct vcase *c = *state;
    const struct vector *v = &c->v;
    struct pp_header hdr;

    if (!c->loaded)
        fail_msg("%s: cannot load", c->path);
    assert_true(v->expect < 0);

    ssize_t n = parse_placed(v, v->len, v->flags, &hdr);
    if (n != v->expect)
        fail_msg("%s: got %zd (%s), want %ld (%s)", base(c->path), n, vectors_error_name(n),
                 v->expect, vectors_error_name(v->expect));

    ssize_t first_refusal = 0;
    for (size_t k = 0; k < v->len; k++) {
        ssize_t got = parse_placed(v, k, v->flags, &hdr);
        if (got > 0)
            fail_msg("%s: prefix of %zu bytes accepted (%zd)", base(c->path), k, got);
        if (first_refusal < 0 && got == 0)
            fail_msg("%s: prefix of %zu bytes needs more after an earlier refusal (%zd)",
                     base(c->path), k, first_refusal);
        if (got < 0 && first_refusal == 0)
            first_refusal = got;
    }
}

static void test_vector_counts(void **state)
{
    (void)state;
    /* Guards against running from the wrong directory: an empty list would
     * make every other test here vacuous. */
    assert_true(n_valid >= 50);
    assert_true(n_invalid >= 70);
}

static void test_every_error_has_a_vector(void **state)
{
    (void)state;
    for (int e = PP_EBADSIG; e <= PP_EBADCRC; e++) {
        int found = 0;
        for (int i = 0; i < n_invalid; i++)
            if (invalid_cases[i].loaded && invalid_cases[i].v.expect == -e)
                found++;
        if (found == 0)
            fail_msg("no invalid vector expects -%s", vectors_error_name(e));
    }
}

static void test_strerror(void **state)
{
    (void)state;
    const char *unknown = pp_strerror(0);
    assert_non_null(unknown);
    assert_non_null(strstr(unknown, "unknown"));

    for (int e = 1; e < PP_EMAXCODE; e++) {
        const char *m = pp_strerror(-e);
        assert_non_null(m);
        assert_true(strlen(m) > 0);
        assert_string_equal(m, pp_strerror(e));
        assert_string_not_equal(m, unknown);
        for (int f = 1; f < e; f++)
            if (strcmp(m, pp_strerror(-f)) == 0)
                fail_msg("codes %d and %d share the message \"%s\"", f, e, m);
    }

    static const int out_of_range[] = {PP_EMAXCODE, -PP_EMAXCODE, 1000, -1000, INT_MAX, INT_MIN};
    for (size_t i = 0; i < sizeof(out_of_range) / sizeof(out_of_range[0]); i++) {
        const char *m = pp_strerror(out_of_range[i]);
        assert_non_null(m);
        assert_string_equal(m, unknown);
    }
}

static int load_cases(const char *sub, struct vcase **out)
{
    char **paths;
    int n = vectors_list(sub, &paths);
    if (n < 0) {
        *out = NULL;
        return 0;
    }
    struct vcase *cases = calloc((size_t)n + 1, sizeof(*cases));
    if (cases == NULL) {
        vectors_list_free(paths);
        return 0;
    }
    for (int i = 0; i < n; i++) {
        cases[i].path = strdup(paths[i]);
        cases[i].loaded = cases[i].path != NULL && vectors_load(paths[i], &cases[i].v) == 0;
    }
    vectors_list_free(paths);
    *out = cases;
    return n;
}

static void free_cases(struct vcase *cases, int n)
{
    for (int i = 0; i < n; i++) {
        if (cases[i].loaded)
            vectors_free(&cases[i].v);
        free(cases[i].path);
    }
    free(cases);
}

int main(void)
{
    if (guard_init(&guard, GUARD_CAP) != 0)
        return 1;
    n_valid = load_cases("valid", &valid_cases);
    n_invalid = load_cases("invalid", &invalid_cases);

    static const struct CMUnitTest fixed[] = {
        cmocka_unit_test(test_vector_counts),
        cmocka_unit_test(test_every_error_has_a_vector),
        cmocka_unit_test(test_strerror),
    };
    size_t nfixed = sizeof(fixed) / sizeof(fixed[0]);
    size_t total = nfixed + (size_t)n_valid + (size_t)n_invalid;
    struct CMUnitTest *tests = calloc(total, sizeof(*tests));
    char **names = calloc(total, sizeof(*names));
    if (tests == NULL || names == NULL)
        return 1;
    memcpy(tests, fixed, sizeof(fixed));
    size_t t = nfixed;
    for (int i = 0; i < n_valid; i++, t++) {
        names[t] = malloc(strlen(valid_cases[i].path) + 8);
        if (names[t] == NULL)
            return 1;
        sprintf(names[t], "valid/%s", base(valid_cases[i].path));
        tests[t] = (struct CMUnitTest){names[t], test_valid, NULL, NULL, &valid_cases[i]};
    }
    for (int i = 0; i < n_invalid; i++, t++) {
        names[t] = malloc(strlen(invalid_cases[i].path) + 10);
        if (names[t] == NULL)
            return 1;
        sprintf(names[t], "invalid/%s", base(invalid_cases[i].path));
        tests[t] = (struct CMUnitTest){names[t], test_invalid, NULL, NULL, &invalid_cases[i]};
    }

    /* The cmocka_run_group_tests macro needs a fixed-size array; the list
     * here depends on the files found, so call the function it expands to. */
    int rc = _cmocka_run_group_tests("vectors", tests, total, NULL, NULL);

    for (size_t i = 0; i < total; i++)
        free(names[i]);
    free(names);
    free(tests);
    free_cases(valid_cases, n_valid);
    free_cases(invalid_cases, n_invalid);
    guard_free(&guard);
    return rc;
}
