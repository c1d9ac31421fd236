
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * libFuzzer harness: the checks of client-supplied and configured values
 * (ngx_http_tavus_validate.c), each compared with a plain reading of its
 * contract:
 *
 *   valid_replica_id  NGX_OK iff 1 to 128 bytes of [A-Za-z0-9_-]
 *   parse_hard        1 for "true"; 0 for "false" or empty; NGX_ERROR else
 *   parse_switch      1 for "on", "true" or "1"; 0 for anything else
 *   parse_dry_run     0 for "off", "false", "0" or empty; 1 for anything
 *                     else (fails safe)
 *   valid_key         NGX_OK iff not empty, no byte < 0x20 nor >= 0x7f, and
 *                     no space at either end
 *
 * The whole input is given to each, in a buffer of exactly its size, so
 * that a read past the end is an ASan report; an empty input as NULL, as
 * an unset value (ngx_str_null) is passed.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_validate.h"
#include "fuzz_common.h"


static int
oracle_replica_id(const uint8_t *p, size_t n)
{
    size_t  i;

    if (n < 1 || n > 128) {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (!((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z')
              || (p[i] >= '0' && p[i] <= '9') || p[i] == '_' || p[i] == '-'))
        {
            return 0;
        }
    }

    return 1;
}


static int
is(const uint8_t *p, size_t n, const char *s)
{
    return n == strlen(s) && memcmp(p, s, n) == 0;
}


static int
oracle_key(const uint8_t *p, size_t n)
{
    size_t  i;

    if (n == 0 || p[0] == ' ' || p[n - 1] == ' ') {
        return 0;
    }

    for (i = 0; i < n; i++) {
        if (p[i] < 0x20 || p[i] >= 0x7f) {
            return 0;
        }
    }

    return 1;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char     *p;
    ngx_int_t   rc, want;

    /* an exact copy, not NUL-terminated: the functions take a length */

    p = NULL;

    if (size) {
        p = malloc(size);
        fuzz_assert(p != NULL, "malloc");
        memcpy(p, data, size);
    }

    rc = ngx_http_tavus_valid_replica_id(p, size);
    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED, "rc %d", (int) rc);
    fuzz_assert((rc == NGX_OK) == oracle_replica_id(data, size),
                "replica id of %zu bytes: rc %d", size, (int) rc);

    rc = ngx_http_tavus_parse_hard(p, size);
    want = is(data, size, "true") ? 1
           : (size == 0 || is(data, size, "false")) ? 0 : NGX_ERROR;
    fuzz_assert(rc == want, "hard: rc %d, want %d", (int) rc, (int) want);

    rc = ngx_http_tavus_parse_switch(p, size);
    want = is(data, size, "on") || is(data, size, "true")
           || is(data, size, "1");
    fuzz_assert(rc == want, "switch: rc %d, want %d", (int) rc, (int) want);

    rc = ngx_http_tavus_parse_dry_run(p, size);
    want = !(size == 0 || is(data, size, "off") || is(data, size, "false")
             || is(data, size, "0"));
    fuzz_assert(rc == want, "dry run: rc %d, want %d", (int) rc, (int) want);

    rc = ngx_http_tavus_valid_key(p, size);
    fuzz_assert(rc == NGX_OK || rc == NGX_DECLINED, "rc %d", (int) rc);
    fuzz_assert((rc == NGX_OK) == oracle_key(data, size),
                "key of %zu bytes: rc %d", size, (int) rc);

    free(p);

    return 0;
}
