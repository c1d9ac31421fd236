
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * libFuzzer harness: ngx_http_tavus_key_variable(), which tells a literal
 * tavus_api_key from one variable alone and refuses the rest.
 *
 * Input:  the directive's value, any bytes.
 *
 * Checked against a reference written otherwise: a literal when the value
 * holds no "$"; one variable when it is "$" or "${" ... "}" around a name
 * of [A-Za-z0-9_] that does not start with a digit, the name returned
 * pointing into the value; refused otherwise.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_validate.h"
#include "fuzz_common.h"


#define NAME_CHARS  "abcdefghijklmnopqrstuvwxyz"                              \
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


static ngx_int_t
reference(const char *v, size_t len, size_t *start, size_t *n)
{
    size_t  off, end;

    if (memchr(v, '$', len) == NULL) {
        return NGX_DECLINED;
    }

    if (len >= 3 && v[0] == '$' && v[1] == '{' && v[len - 1] == '}') {
        off = 2;
        end = len - 1;

    } else if (len >= 2 && v[0] == '$') {
        off = 1;
        end = len;

    } else {
        return NGX_ERROR;
    }

    if (end == off || memchr("0123456789", v[off], 10) != NULL) {
        return NGX_ERROR;
    }

    /* strspn() stops at a NUL byte: the name must reach its end anyway */

    if (memchr(v + off, '\0', end - off) != NULL
        || strspn(v + off, NAME_CHARS) < end - off)
    {
        return NGX_ERROR;
    }

    *start = off;
    *n = end - off;

    return NGX_OK;
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char       *v;
    size_t      start, n;
    ngx_int_t   rc, want;
    ngx_str_t   name;

    v = malloc(size + 1);
    fuzz_assert(v != NULL, "malloc");

    memcpy(v, data, size);
    v[size] = '\0';

    want = reference(v, size, &start, &n);
    rc = ngx_http_tavus_key_variable((u_char *) v, size, &name);

    fuzz_assert(rc == want, "%d, the reference says %d", (int) rc,
                (int) want);

    if (rc == NGX_OK) {
        fuzz_assert(name.data == (u_char *) v + start && name.len == n,
                    "the name is at %zu+%zu, not %zu+%zu",
                    (size_t) (name.data - (u_char *) v), name.len, start, n);
    }

    free(v);

    return 0;
}
