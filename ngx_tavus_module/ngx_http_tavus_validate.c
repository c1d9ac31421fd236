
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_validate.h"


static ngx_uint_t ngx_http_tavus_one_of(u_char *data, size_t len,
    ngx_str_t *words);
static ngx_int_t ngx_http_tavus_line_end(u_char *p, u_char *last);


/*
 * The classes of a byte: RFC 9110's tchar (ALPHA, DIGIT and
 * "!#$%&'*+-.^_`|~"), what a field value or a reason phrase may hold
 * (HTAB, SP, VCHAR and obs-text), and what a replica id may hold
 * (ALPHA, DIGIT, "-" and "_").  A table: every byte of every header line
 * of every answer, and of every replica id, is looked up.
 */

#define NGX_HTTP_TAVUS_TCHAR   1
#define NGX_HTTP_TAVUS_FCHAR   2
#define NGX_HTTP_TAVUS_IDCHAR  4

static u_char  ngx_http_tavus_class[256] = {
    0, 0, 0, 0, 0, 0, 0, 0, 0, 2, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    2, 3, 2, 3, 3, 3, 3, 3, 2, 2, 3, 3, 2, 7, 3, 2,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 2, 2, 2, 2, 2,
    2, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 2, 2, 3, 7,
    3, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
    7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 2, 3, 2, 3, 0,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2
};

#define ngx_http_tavus_in(class, ch)                                         \
    (ngx_http_tavus_class[ch] & NGX_HTTP_TAVUS_ ## class)


/* NGX_OK if 1 to 128 bytes of [A-Za-z0-9_-], NGX_DECLINED otherwise */

ngx_int_t
ngx_http_tavus_valid_replica_id(u_char *data, size_t len)
{
    size_t  i;

    if (len == 0 || len > NGX_HTTP_TAVUS_REPLICA_ID_MAX) {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        if (!ngx_http_tavus_in(IDCHAR, data[i])) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* 1 for "true", 0 for "false" or empty, NGX_ERROR for anything else */

ngx_int_t
ngx_http_tavus_parse_hard(u_char *data, size_t len)
{
    if (len == 0) {
        return 0;
    }

    if (len == 4 && ngx_strncmp(data, "true", 4) == 0) {
        return 1;
    }

    if (len == 5 && ngx_strncmp(data, "false", 5) == 0) {
        return 0;
    }

    return NGX_ERROR;
}


/*
 * tavus_allow_hard_delete and tavus_dry_run: 1 for "on", "true" or "1";
 * 0 for anything else, empty included
 */

ngx_int_t
ngx_http_tavus_parse_switch(u_char *data, size_t len)
{
    static ngx_str_t  yes[] = {
        ngx_string("on"), ngx_string("true"), ngx_string("1"),
        ngx_null_string
    };

    return ngx_http_tavus_one_of(data, len, yes);
}


/*
 * tavus_dry_run fails safe: only "off", "false", "0" or an empty value
 * lets a delete through; anything else is a dry run
 */

ngx_int_t
ngx_http_tavus_parse_dry_run(u_char *data, size_t len)
{
    static ngx_str_t  no[] = {
        ngx_string("off"), ngx_string("false"), ngx_string("0"),
        ngx_null_string
    };

    return len != 0 && !ngx_http_tavus_one_of(data, len, no);
}


/* whether a value is one of the words, exactly */

static ngx_uint_t
ngx_http_tavus_one_of(u_char *data, size_t len, ngx_str_t *words)
{
    for ( /* void */ ; words->len; words++) {
        if (len == words->len && ngx_strncmp(data, words->data, len) == 0) {
            return 1;
        }
    }

    return 0;
}


/*
 * An API key goes into a header line: it must not be empty and must hold
 * no control byte (CR and LF would split the request, NUL truncates it).
 * Spaces at either end would be stripped by the peer, so they are refused
 * too, and so are bytes above ASCII: no API key has them, and they would
 * let the UTF-8 repair of upstream messages rebuild a key.
 */

ngx_int_t
ngx_http_tavus_valid_key(u_char *data, size_t len)
{
    size_t  i;

    if (len == 0) {
        return NGX_DECLINED;
    }

    if (data[0] == ' ' || data[len - 1] == ' ') {
        return NGX_DECLINED;
    }

    for (i = 0; i < len; i++) {
        if (data[i] < 0x20 || data[i] >= 0x7f) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * tavus_api_key: a literal key has no "$"; with "$" it must be one
 * variable alone, "$name" or "${name}" (a name of letters, digits and
 * "_" that does not start with a digit: "$1" is a regex capture).
 * NGX_DECLINED: a literal; NGX_OK: a variable, its name in *name;
 * NGX_ERROR: anything else, which nginx would otherwise compile into a
 * value of literal parts and variables, or report by echoing it.
 */

ngx_int_t
ngx_http_tavus_key_variable(u_char *data, size_t len, ngx_str_t *name)
{
    u_char  ch, *p, *last;

    if (ngx_strlchr(data, data + len, '$') == NULL) {
        return NGX_DECLINED;
    }

    p = data;
    last = data + len;

    if (len < 2 || *p++ != '$') {
        return NGX_ERROR;
    }

    if (*p == '{') {
        if (last[-1] != '}') {
            return NGX_ERROR;
        }

        p++;
        last--;
    }

    if (p == last || (*p >= '0' && *p <= '9')) {
        return NGX_ERROR;
    }

    name->data = p;
    name->len = last - p;

    for ( /* void */ ; p < last; p++) {
        ch = *p;

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9') || ch == '_')
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * A numbered capture, "$1" to "$9", in a value with variables.  It holds
 * the captures of the last regular expression that matched in the
 * request, which need not be the location's: an "if", a "map" or a
 * "rewrite" with captures evaluated later replaces them, with parts of
 * whatever it matched, a client's header as well.  The position of the
 * first, or NULL.  ("$$1" is no capture, but nginx refuses it anyway.)
 */

u_char *
ngx_http_tavus_numbered_capture(u_char *data, size_t len)
{
    u_char  *p, *last;

    last = data + len;

    for (p = data; p + 1 < last; p++) {
        if (p[0] == '$' && p[1] >= '1' && p[1] <= '9') {
            return p;
        }
    }

    return NULL;
}


/*
 * The host[:port] of tavus_pass, after its scheme, as written in the
 * configuration and as evaluated per request: one rule at both times.
 * A lone trailing "/" is dropped.  NGX_OK: *host is a name, an address
 * or an upstream{} name with an optional port, made of letters, digits,
 * ".", "-", "_", ":", "[" and "]" only, so that it is safe in a request
 * line and in a log line; NGX_DECLINED: a path, a query or a fragment
 * follows it; NGX_ERROR: it is empty, or holds another byte.  A value
 * with variables is checked for a path and emptiness at configuration
 * time (with variables set), and wholly once evaluated.
 */

ngx_int_t
ngx_http_tavus_parse_host(u_char *data, size_t len, ngx_uint_t variables,
    ngx_str_t *host)
{
    u_char  ch;
    size_t  i;

    if (len && data[len - 1] == '/') {
        len--;
    }

    for (i = 0; i < len; i++) {
        ch = data[i];

        if (ch == '/' || ch == '?' || ch == '#') {
            return NGX_DECLINED;
        }
    }

    if (len == 0) {
        return NGX_ERROR;
    }

    host->data = data;
    host->len = len;

    if (variables) {
        return NGX_OK;
    }

    for (i = 0; i < len; i++) {
        ch = data[i];

        if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z')
            || (ch >= '0' && ch <= '9')
            || ch == '.' || ch == '-' || ch == '_' || ch == ':'
            || ch == '[' || ch == ']')
        {
            continue;
        }

        return NGX_ERROR;
    }

    return NGX_OK;
}


/*
 * An answer's status line as RFC 9112 has it, with the two liberties
 * nginx's own parser takes that change no meaning: a bare LF for CRLF,
 * and no space after the status code when the reason phrase is empty:
 *
 *     "HTTP/1." DIGIT SP 3DIGIT [ SP reason ] [ CR ] LF
 *
 * The reason phrase may hold HTAB, SP, visible ASCII and bytes above
 * ASCII, nothing else.  NGX_OK, or NGX_DECLINED.
 */

ngx_int_t
ngx_http_tavus_valid_status_line(u_char *p, size_t len)
{
    u_char  *last;

    last = p + len;

    if (len < sizeof("HTTP/1.1 200\n") - 1
        || ngx_strncmp(p, "HTTP/1.", 7) != 0
        || p[7] < '0' || p[7] > '9' || p[8] != ' '
        || p[9] < '0' || p[9] > '9' || p[10] < '0' || p[10] > '9'
        || p[11] < '0' || p[11] > '9')
    {
        return NGX_DECLINED;
    }

    p += 12;

    if (*p == ' ') {
        p++;

        while (p < last && ngx_http_tavus_in(FCHAR, *p)) {
            p++;
        }
    }

    return ngx_http_tavus_line_end(p, last);
}


/*
 * A field name: one or more of RFC 9110's tchar.  NGX_OK, or NGX_DECLINED.
 */

ngx_int_t
ngx_http_tavus_valid_token(u_char *p, size_t len)
{
    u_char  *last;

    if (len == 0) {
        return NGX_DECLINED;
    }

    for (last = p + len; p < last; p++) {
        if (!ngx_http_tavus_in(TCHAR, *p)) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/*
 * A field value: HTAB, SP, VCHAR and obs-text only, no other control
 * byte and no DEL.  NGX_OK, or NGX_DECLINED.
 */

ngx_int_t
ngx_http_tavus_valid_field_value(u_char *p, size_t len)
{
    u_char    *last;
    uint64_t   w, x;

    last = p + len;

    /*
     * 8 bytes at a time while none of them is below SP or is DEL (HTAB,
     * and a word that only seems to hold such a byte, go on byte by byte)
     */

    while (last - p >= 8) {
        ngx_memcpy(&w, p, 8);

        x = w ^ 0x7f7f7f7f7f7f7f7fULL;

        if (((w - 0x2020202020202020ULL) & ~w & 0x8080808080808080ULL)
            || ((x - 0x0101010101010101ULL) & ~x & 0x8080808080808080ULL))
        {
            break;
        }

        p += 8;
    }

    for ( /* void */ ; p < last; p++) {
        if (!ngx_http_tavus_in(FCHAR, *p)) {
            return NGX_DECLINED;
        }
    }

    return NGX_OK;
}


/* what is left is exactly the end of the line: CRLF or LF */

static ngx_int_t
ngx_http_tavus_line_end(u_char *p, u_char *last)
{
    if (p < last && *p == CR) {
        p++;
    }

    return (last - p == 1 && *p == LF) ? NGX_OK : NGX_DECLINED;
}
