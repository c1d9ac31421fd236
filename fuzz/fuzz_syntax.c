
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * libFuzzer harness: the syntax of configured values, each checked
 * against a reference written otherwise.
 *
 * Input:  any bytes, given to both functions.
 *
 * ngx_http_tavus_key_variable() (tavus_api_key): a literal when the value
 * holds no "$"; one variable when it is "$" or "${" ... "}" around a name
 * of [A-Za-z0-9_] that does not start with a digit, the name returned
 * pointing into the value; refused otherwise.
 *
 * ngx_http_tavus_parse_host() (tavus_pass after its scheme), evaluated
 * and as a value with variables: a lone trailing "/" dropped; a path,
 * query or fragment declined; empty refused; otherwise, when evaluated,
 * only letters, digits and "._-:[]" accepted.
 *
 * ngx_http_tavus_numbered_capture(): the first "$1" to "$9", against
 * the POSIX regular expression "\$[1-9]" run on each NUL-free part.
 *
 * ngx_http_tavus_valid_status_line(), _valid_token() and
 * _valid_field_value() (upstream lines), against POSIX extended regular
 * expressions of RFC 9112's grammar; a NUL byte is never valid.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_validate.h"
#include "fuzz_common.h"
#include <regex.h>


#define NAME_CHARS  "abcdefghijklmnopqrstuvwxyz"                              \
                    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"


static ngx_int_t
reference_key(const char *v, size_t len, size_t *start, size_t *n)
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


static ngx_int_t
reference_host(const char *v, size_t len, ngx_uint_t variables, size_t *n)
{
    if (len && v[len - 1] == '/') {
        len--;
    }

    if (memchr(v, '/', len) || memchr(v, '?', len) || memchr(v, '#', len)) {
        return NGX_DECLINED;
    }

    if (len == 0) {
        return NGX_ERROR;
    }

    *n = len;

    if (variables) {
        return NGX_OK;
    }

    if (memchr(v, '\0', len) != NULL
        || strspn(v, NAME_CHARS ".-:[]") < len)
    {
        return NGX_ERROR;
    }

    return NGX_OK;
}


static void
check_host(char *v, size_t size, ngx_uint_t variables)
{
    size_t      n;
    ngx_int_t   rc, want;
    ngx_str_t   host;

    want = reference_host(v, size, variables, &n);
    rc = ngx_http_tavus_parse_host((u_char *) v, size, variables, &host);

    fuzz_assert(rc == want, "host: %d, the reference says %d", (int) rc,
                (int) want);

    if (rc == NGX_OK) {
        fuzz_assert(host.data == (u_char *) v && host.len == n,
                    "host: %zu bytes, not %zu", host.len, n);
    }
}


static void
check_lines(char *v, size_t size)
{
    int         match;
    ngx_int_t   rc;

    static int      compiled;
    static regex_t  status, token, value;

    if (!compiled) {
        fuzz_assert(regcomp(&status, "^HTTP/1\\.[0-9] [0-9]{3}"
                            "( [\t\x20-\x7e\x80-\xff]*)?\r?\n$",
                            REG_EXTENDED | REG_NOSUB) == 0, "regcomp");
        fuzz_assert(regcomp(&token, "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$",
                            REG_EXTENDED | REG_NOSUB) == 0, "regcomp");
        fuzz_assert(regcomp(&value, "^[\t\x20-\x7e\x80-\xff]*$",
                            REG_EXTENDED | REG_NOSUB) == 0, "regcomp");
        compiled = 1;
    }

    match = memchr(v, '\0', size) == NULL
            && regexec(&status, v, 0, NULL, 0) == 0;
    rc = ngx_http_tavus_valid_status_line((u_char *) v, size);
    fuzz_assert((rc == NGX_OK) == match, "status line: %d, the reference "
                "says %d", (int) rc, match);

    match = memchr(v, '\0', size) == NULL
            && regexec(&token, v, 0, NULL, 0) == 0;
    rc = ngx_http_tavus_valid_token((u_char *) v, size);
    fuzz_assert((rc == NGX_OK) == match, "token: %d, the reference says %d",
                (int) rc, match);

    match = memchr(v, '\0', size) == NULL
            && regexec(&value, v, 0, NULL, 0) == 0;
    rc = ngx_http_tavus_valid_field_value((u_char *) v, size);
    fuzz_assert((rc == NGX_OK) == match, "field value: %d, the reference "
                "says %d", (int) rc, match);
}


static void
check_capture(char *v, size_t size)
{
    u_char            *p;
    size_t             off, want;
    regmatch_t         m;
    static regex_t     re;
    static ngx_uint_t  compiled;

    if (!compiled) {
        fuzz_assert(regcomp(&re, "\\$[1-9]", REG_EXTENDED) == 0,
                    "regcomp");
        compiled = 1;
    }

    /* regexec() stops at a NUL: each NUL-free part in turn */

    want = size;

    for (off = 0; off < size; off += strlen(v + off) + 1) {
        if (regexec(&re, v + off, 1, &m, 0) == 0) {
            want = off + m.rm_so;
            break;
        }
    }

    p = ngx_http_tavus_numbered_capture((u_char *) v, size);

    fuzz_assert((p ? (size_t) (p - (u_char *) v) : size) == want,
                "a capture at %zd, the reference says %zu",
                p ? (ssize_t) (p - (u_char *) v) : (ssize_t) -1, want);
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

    want = reference_key(v, size, &start, &n);
    rc = ngx_http_tavus_key_variable((u_char *) v, size, &name);

    fuzz_assert(rc == want, "%d, the reference says %d", (int) rc,
                (int) want);

    if (rc == NGX_OK) {
        fuzz_assert(name.data == (u_char *) v + start && name.len == n,
                    "the name is at %zu+%zu, not %zu+%zu",
                    (size_t) (name.data - (u_char *) v), name.len, start, n);
    }

    check_host(v, size, 0);
    check_host(v, size, 1);
    check_capture(v, size);
    check_lines(v, size);

    free(v);

    return 0;
}
