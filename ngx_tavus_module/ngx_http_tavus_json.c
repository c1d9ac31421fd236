
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_json.h"


static size_t ngx_http_tavus_json_escape(u_char *dst, u_char *src,
    size_t len);


#define ngx_http_tavus_literal(p, s)  ngx_cpymem(p, s, sizeof(s) - 1)


size_t
ngx_http_tavus_json_length(ngx_http_tavus_answer_t *a, ngx_str_t *replica_id,
    ngx_str_t *request_id)
{
    size_t      len;
    ngx_str_t  *code;

    len = sizeof("{\"replica_id\":\"\",\"deleted\":false,\"dry_run\":true,"
                 "\"hard\":false,\"request_id\":\"\"}" CRLF)
          + sizeof("{\"error\":\"\",\"code\":\"\",\"replica_id\":null,"
                   "\"request_id\":\"\"}" CRLF);

    if (replica_id) {
        len += replica_id->len;
    }

    len += request_id->len;

    len += ngx_http_tavus_json_escape(NULL, a->message.data, a->message.len);

    code = ngx_http_tavus_outcome_name(a->outcome);
    len += code->len;

    return len;
}


u_char *
ngx_http_tavus_json_write(u_char *p, ngx_http_tavus_answer_t *a,
    ngx_str_t *replica_id, ngx_uint_t hard, ngx_str_t *request_id)
{
    ngx_str_t  *code;

    if (a->outcome == NGX_HTTP_TAVUS_DELETED
        || a->outcome == NGX_HTTP_TAVUS_DRY_RUN)
    {
        p = ngx_http_tavus_literal(p, "{\"replica_id\":\"");
        p = ngx_cpymem(p, replica_id->data, replica_id->len);

        if (a->outcome == NGX_HTTP_TAVUS_DELETED) {
            p = ngx_http_tavus_literal(p, "\",\"deleted\":true,\"hard\":");

        } else {
            p = ngx_http_tavus_literal(p, "\",\"deleted\":false,"
                                          "\"dry_run\":true,\"hard\":");
        }

        if (hard) {
            p = ngx_http_tavus_literal(p, "true");

        } else {
            p = ngx_http_tavus_literal(p, "false");
        }

    } else {
        code = ngx_http_tavus_outcome_name(a->outcome);

        p = ngx_http_tavus_literal(p, "{\"error\":\"");
        p += ngx_http_tavus_json_escape(p, a->message.data, a->message.len);
        p = ngx_http_tavus_literal(p, "\",\"code\":\"");
        p = ngx_cpymem(p, code->data, code->len);
        p = ngx_http_tavus_literal(p, "\",\"replica_id\":");

        if (replica_id && replica_id->len) {
            *p++ = '"';
            p = ngx_cpymem(p, replica_id->data, replica_id->len);
            *p++ = '"';

        } else {
            p = ngx_http_tavus_literal(p, "null");
        }
    }

    p = ngx_http_tavus_literal(p, ",\"request_id\":\"");
    p = ngx_cpymem(p, request_id->data, request_id->len);
    p = ngx_http_tavus_literal(p, "\"}\n");

    return p;
}


/*
 * Escapes a string of valid UTF-8 for a JSON string literal; with dst
 * NULL, returns the length of the escaped string.  "<", ">" and "&" are
 * escaped too, as \u003c and so on: an operator's SSI, or a browser,
 * must not take upstream text in an answer for markup.
 */

static size_t
ngx_http_tavus_json_escape(u_char *dst, u_char *src, size_t len)
{
    u_char   c, *p;
    size_t   n;

    static u_char  hex[] = "0123456789abcdef";

    if (dst == NULL) {
        n = len;

        while (len--) {
            c = *src++;

            if (c == '"' || c == '\\'
                || c == '\n' || c == '\r' || c == '\t'
                || c == '\b' || c == '\f')
            {
                n++;

            } else if (c < 0x20 || c == 0x7f
                       || c == '<' || c == '>' || c == '&')
            {
                n += sizeof("\\u0000") - 2;
            }
        }

        return n;
    }

    p = dst;

    while (len--) {
        c = *src++;

        switch (c) {

        case '"':
        case '\\':
            *p++ = '\\';
            *p++ = c;
            break;

        case '\n':
            *p++ = '\\'; *p++ = 'n';
            break;

        case '\r':
            *p++ = '\\'; *p++ = 'r';
            break;

        case '\t':
            *p++ = '\\'; *p++ = 't';
            break;

        case '\b':
            *p++ = '\\'; *p++ = 'b';
            break;

        case '\f':
            *p++ = '\\'; *p++ = 'f';
            break;

        default:
            if (c < 0x20 || c == 0x7f || c == '<' || c == '>' || c == '&') {
                *p++ = '\\'; *p++ = 'u'; *p++ = '0'; *p++ = '0';
                *p++ = hex[c >> 4];
                *p++ = hex[c & 0xf];

            } else {
                *p++ = c;
            }
        }
    }

    return p - dst;
}
