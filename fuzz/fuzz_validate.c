
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * libFuzzer harness: the checks of client-supplied and configured values
 * (ngx_http_tavus_validate.c), against oracles written from their
 * contract (docs/directives.md, docs/decisions.md) and not from the code:
 *
 *   valid_replica_id  NGX_OK iff 1 to 128 bytes, each one of the 64 bytes
 *                     of ID_BYTES (spelled out, looked up with memchr)
 *   parse_hard, parse_switch, parse_dry_run
 *                     a table of the words they know, with what each of
 *                     the three makes of each word; any other value is
 *                     NGX_ERROR for hard, 0 for the switch, 1 (a dry run)
 *                     for the dry-run switch
 *   valid_key         NGX_OK iff not empty, every byte printable ASCII
 *                     (isprint in the C locale), and the first and the
 *                     last byte not a space (isgraph)
 *
 * and properties that hold whatever the implementation: an id's bytes
 * are each a valid id, and a valid id's prefixes are valid ids; a valid
 * key holds no CR, LF or NUL; the dry-run switch fails safe (a value
 * that lets a delete through never turns the allow switch on nor means
 * a hard delete).
 *
 * The whole input is given to each, in a buffer of exactly its size, so
 * that a read past the end is an ASan report; an empty input as NULL, as
 * an unset value (ngx_str_null) is passed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ctype.h>
#include "ngx_http_tavus_validate.h"
#include "fuzz_common.h"


#define ID_BYTES                                                              \
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-"


static const struct {
    const char  *word;
    ngx_int_t    hard;
    ngx_int_t    allow;
    ngx_int_t    dry_run;
} words[] = {
    { "",      0,         0, 0 },
    { "true",  1,         1, 1 },
    { "false", 0,         0, 0 },
    { "on",    NGX_ERROR, 1, 1 },
    { "off",   NGX_ERROR, 0, 0 },
    { "1",     NGX_ERROR, 1, 1 },
    { "0",     NGX_ERROR, 0, 0 },
};


/* the number of leading bytes of p that are in the string set */

static size_t
span(const uint8_t *p, size_t n, const char *set)
{
    size_t  i;

    for (i = 0; i < n && memchr(set, p[i], strlen(set)) != NULL; i++) {
        /* void */
    }

    return i;
}


static int
oracle_replica_id(const uint8_t *p, size_t n)
{
    return n >= 1 && n <= 128 && span(p, n, ID_BYTES) == n;
}


static int
oracle_key(const uint8_t *p, size_t n)
{
    size_t  i;

    if (n == 0 || !isgraph(p[0]) || !isgraph(p[n - 1])) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!isprint(p[i])) {
            return 0;
        }
    }

    return 1;
}


/* the table's row for the value, or -1 for a value it does not know */

static int
word(const uint8_t *p, size_t n)
{
    size_t  i;

    for (i = 0; i < sizeof(words) / sizeof(words[0]); i++) {
        if (strlen(words[i].word) == n && memcmp(words[i].word, p, n) == 0) {
            return (int) i;
        }
    }

    return -1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int         w;
    u_char     *p;
    size_t      i;
    ngx_int_t   rc, hard, allow, dry;

    /* an exact copy, not NUL-terminated: the functions take a length */

    p = NULL;

    if (size) {
        p = malloc(size);
        fuzz_assert(p != NULL, "malloc");
        memcpy(p, data, size);
    }

    /* the replica id */

    rc = ngx_http_tavus_valid_replica_id(p, size);
    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED, "rc %d", (int) rc);
    fuzz_assert((rc == NGX_OK) == oracle_replica_id(data, size),
                "replica id of %zu bytes: rc %d", size, (int) rc);

    if (rc == NGX_OK) {
        for (i = 0; i < size; i++) {
            fuzz_assert(ngx_http_tavus_valid_replica_id(p + i, 1) == NGX_OK,
                        "byte %zu of a valid id is not a valid id", i);
        }

        fuzz_assert(size == 1
                    || ngx_http_tavus_valid_replica_id(p, size - 1) == NGX_OK,
                    "a prefix of a valid id of %zu bytes is not valid", size);
    }

    /* the flags */

    hard = ngx_http_tavus_parse_hard(p, size);
    allow = ngx_http_tavus_parse_switch(p, size);
    dry = ngx_http_tavus_parse_dry_run(p, size);

    w = word(data, size);

    fuzz_assert(hard == (w < 0 ? NGX_ERROR : words[w].hard),
                "hard: rc %d", (int) hard);
    fuzz_assert(allow == (w < 0 ? 0 : words[w].allow),
                "switch: rc %d", (int) allow);
    fuzz_assert(dry == (w < 0 ? 1 : words[w].dry_run),
                "dry run: rc %d", (int) dry);

    if (dry == 0) {
        fuzz_assert(allow == 0 && hard != 1,
                    "a value that is no dry run allows or means a hard delete");
    }

    /* the key */

    rc = ngx_http_tavus_valid_key(p, size);
    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED, "rc %d", (int) rc);
    fuzz_assert((rc == NGX_OK) == oracle_key(data, size),
                "key of %zu bytes: rc %d", size, (int) rc);

    if (rc == NGX_OK) {
        fuzz_assert(memchr(data, '\r', size) == NULL
                    && memchr(data, '\n', size) == NULL
                    && memchr(data, '\0', size) == NULL,
                    "a valid key with CR, LF or NUL");
    }

    free(p);

    return 0;
}
