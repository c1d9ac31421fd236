
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <cjson/cJSON.h>
#include "ngx_http_tavus_json.h"


typedef struct {
    ngx_str_t           name;
    ngx_uint_t          status;
    ngx_str_t           message;
} ngx_http_tavus_outcome_t;


static ngx_uint_t ngx_http_tavus_outcome_of(ngx_uint_t status);
static size_t ngx_http_tavus_json_escape(u_char *dst, u_char *src,
    size_t len);


static ngx_http_tavus_outcome_t  ngx_http_tavus_outcomes[] = {

    { ngx_string("deleted"), 200, ngx_null_string },

    { ngx_string("invalid_replica_id"), 400,
      ngx_string("replica id must be 1 to 128 characters "
                 "of A-Z, a-z, 0-9, \"_\" and \"-\"") },

    { ngx_string("invalid_hard"), 400,
      ngx_string("hard must be \"true\" or \"false\"") },

    { ngx_string("hard_delete_denied"), 403,
      ngx_string("hard delete is not allowed here") },

    { ngx_string("method_not_allowed"), 405,
      ngx_string("only DELETE is allowed") },

    { ngx_string("not_found"), 404,
      ngx_string("replica not found") },

    { ngx_string("rate_limited"), 429,
      ngx_string("rate limited by the upstream") },

    { ngx_string("upstream_rejected_key"), 502,
      ngx_string("the upstream rejected the gateway's API key") },

    { ngx_string("upstream_client_error"), 400,
      ngx_string("the upstream rejected the request") },

    { ngx_string("upstream_error"), 502,
      ngx_string("the upstream failed") },

    { ngx_string("upstream_timeout"), 504,
      ngx_string("the upstream timed out") },

    { ngx_string("upstream_invalid_response"), 502,
      ngx_string("the upstream sent an invalid response") },

    { ngx_string("gateway_misconfigured"), 500,
      ngx_string("the gateway is misconfigured") },

    { ngx_string("dry_run"), 200, ngx_null_string },

    { ngx_string(""), 500, ngx_null_string }
};


ngx_str_t *
ngx_http_tavus_outcome_name(ngx_uint_t outcome)
{
    if (outcome > NGX_HTTP_TAVUS_OUTCOME_NONE) {
        outcome = NGX_HTTP_TAVUS_OUTCOME_NONE;
    }

    return &ngx_http_tavus_outcomes[outcome].name;
}


void
ngx_http_tavus_answer_init(ngx_http_tavus_answer_t *a, ngx_uint_t outcome)
{
    if (outcome > NGX_HTTP_TAVUS_OUTCOME_NONE) {
        outcome = NGX_HTTP_TAVUS_OUTCOME_NONE;
    }

    a->outcome = outcome;
    a->status = ngx_http_tavus_outcomes[outcome].status;
    a->message = ngx_http_tavus_outcomes[outcome].message;
}


static ngx_uint_t
ngx_http_tavus_outcome_of(ngx_uint_t status)
{
    if (status >= 200 && status < 300) {
        return NGX_HTTP_TAVUS_DELETED;
    }

    switch (status) {

    case 401:
    case 403:
        return NGX_HTTP_TAVUS_UPSTREAM_REJECTED_KEY;

    case 404:
        return NGX_HTTP_TAVUS_NOT_FOUND;

    case 429:
        return NGX_HTTP_TAVUS_RATE_LIMITED;
    }

    if (status >= 400 && status < 500) {
        return NGX_HTTP_TAVUS_UPSTREAM_CLIENT_ERROR;
    }

    /* 1xx that was not skipped, 3xx, 5xx */

    return NGX_HTTP_TAVUS_UPSTREAM_ERROR;
}


/*
 * Translates the upstream status and body.  The body must be followed by
 * a NUL byte (body[len] == '\0'); buf must hold NGX_HTTP_TAVUS_MESSAGE_MAX
 * bytes and receives the upstream message when it is passed on.
 *
 * Messages are passed on for the answers a client can act upon (4xx other
 * than 401 and 403); for a rejected key and for server errors the client
 * gets a fixed message and the operator finds the upstream's in the log.
 */

void
ngx_http_tavus_translate(ngx_http_tavus_answer_t *a, ngx_uint_t status,
    u_char *body, size_t len, ngx_str_t *key, u_char *buf)
{
    ngx_str_t  message;

    ngx_http_tavus_answer_init(a, ngx_http_tavus_outcome_of(status));

    switch (a->outcome) {

    case NGX_HTTP_TAVUS_UPSTREAM_CLIENT_ERROR:
        a->status = status;
        break;

    case NGX_HTTP_TAVUS_NOT_FOUND:
    case NGX_HTTP_TAVUS_RATE_LIMITED:
        break;

    default:
        return;
    }

    if (ngx_http_tavus_upstream_message(body, len, key, buf, &message)
        == NGX_OK)
    {
        a->message = message;
    }
}


/*
 * Extracts the message of an upstream JSON error body: the string "error"
 * or, failing that, "message" of a root object.  It is cut to
 * NGX_HTTP_TAVUS_MESSAGE_MAX bytes at a character boundary, with invalid
 * UTF-8 replaced.  NGX_DECLINED: no usable message; NGX_ABORT: the
 * message holds the API key and must not be shown.
 */

ngx_int_t
ngx_http_tavus_upstream_message(u_char *body, size_t len, ngx_str_t *key,
    u_char *buf, ngx_str_t *message)
{
    u_char     *s;
    size_t      n;
    ngx_int_t   rc;
    cJSON      *root, *item;

    if (len == 0) {
        return NGX_DECLINED;
    }

    /* the length counts the NUL, which ends a complete document */

    root = cJSON_ParseWithLengthOpts((const char *) body, len + 1, NULL, 1);
    if (root == NULL) {
        return NGX_DECLINED;
    }

    rc = NGX_DECLINED;

    if (!cJSON_IsObject(root)) {
        goto done;
    }

    item = cJSON_GetObjectItemCaseSensitive(root, "error");

    if (!cJSON_IsString(item) || item->valuestring == NULL) {
        item = cJSON_GetObjectItemCaseSensitive(root, "message");

        if (!cJSON_IsString(item) || item->valuestring == NULL) {
            goto done;
        }
    }

    s = (u_char *) item->valuestring;
    n = ngx_strlen(s);

    if (n == 0) {
        goto done;
    }

    if (key && ngx_http_tavus_contains(s, n, key)) {
        rc = NGX_ABORT;
        goto done;
    }

    message->len = ngx_http_tavus_utf8_clean(buf, s, n,
                                             NGX_HTTP_TAVUS_MESSAGE_MAX);
    message->data = buf;

    rc = NGX_OK;

done:

    cJSON_Delete(root);

    return rc;
}


/* whether a text holds the key (or any string), anywhere */

ngx_uint_t
ngx_http_tavus_contains(u_char *s, size_t len, ngx_str_t *what)
{
    u_char  *last;

    if (what->len == 0 || len < what->len) {
        return 0;
    }

    last = s + len - what->len;

    for ( /* void */ ; s <= last; s++) {
        if (*s == what->data[0]
            && ngx_memcmp(s, what->data, what->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Copies valid UTF-8, replacing each byte that does not start a valid
 * sequence with U+FFFD, and stops before the output would exceed max.
 */

size_t
ngx_http_tavus_utf8_clean(u_char *dst, u_char *src, size_t len, size_t max)
{
    u_char   c, lo, hi, *p, *last;
    size_t   n, i;

    static u_char  replacement[] = { 0xef, 0xbf, 0xbd };

    if (len == 0) {
        return 0;
    }

    p = dst;
    last = src + len;

    while (src < last) {
        c = *src;
        lo = 0x80;
        hi = 0xbf;

        if (c < 0x80) {
            n = 1;

        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 2;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;

            if (c == 0xe0) {
                lo = 0xa0;

            } else if (c == 0xed) {
                hi = 0x9f;
            }

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;

            if (c == 0xf0) {
                lo = 0x90;

            } else if (c == 0xf4) {
                hi = 0x8f;
            }

        } else {
            n = 0;
        }

        if (n > 1) {
            if ((size_t) (last - src) < n
                || src[1] < lo || src[1] > hi)
            {
                n = 0;

            } else {
                for (i = 2; i < n; i++) {
                    if (src[i] < 0x80 || src[i] > 0xbf) {
                        n = 0;
                        break;
                    }
                }
            }
        }

        if (n == 0) {
            if ((size_t) (p - dst) + sizeof(replacement) > max) {
                break;
            }

            p = ngx_cpymem(p, replacement, sizeof(replacement));
            src++;
            continue;
        }

        if ((size_t) (p - dst) + n > max) {
            break;
        }

        p = ngx_cpymem(p, src, n);
        src += n;
    }

    return p - dst;
}


/*
 * Upstream text for the error log, valid UTF-8 as utf8_clean() leaves it.
 * Every byte of a control character becomes \xNN, as in nginx's access
 * log: C0 (CR and LF among them), DEL and C1, and the characters that
 * break or reorder a line when shown (U+061C, U+200E, U+200F, U+2028 to
 * U+202E, U+2066 to U+2069); so do "\"" and "\\", and any byte that does
 * not start a valid sequence.  So no text can end its line, start a
 * forged one or reach a terminal as a control sequence, while other
 * characters stay readable.  dst must hold NGX_HTTP_TAVUS_LOG_ESCAPE(len)
 * bytes.
 */

size_t
ngx_http_tavus_log_escape(u_char *dst, u_char *src, size_t len)
{
    u_char    *p, *last;
    size_t     n, i;
    uint32_t   ch;

    static u_char  hex[] = "0123456789abcdef";

    p = dst;
    last = src + len;

    while (src < last) {
        ch = *src;

        if (ch < 0x80) {
            n = 1;

        } else if (ch >= 0xc2 && ch <= 0xdf) {
            n = 2;
            ch &= 0x1f;

        } else if (ch >= 0xe0 && ch <= 0xef) {
            n = 3;
            ch &= 0x0f;

        } else if (ch >= 0xf0 && ch <= 0xf4) {
            n = 4;
            ch &= 0x07;

        } else {
            n = 0;
        }

        if (n > (size_t) (last - src)) {
            n = 0;
        }

        for (i = 1; i < n; i++) {
            if (src[i] < 0x80 || src[i] > 0xbf) {
                n = 0;
                break;
            }

            ch = (ch << 6) | (src[i] & 0x3f);
        }

        if (n == 0) {
            /* not a sequence: the byte alone, escaped */
            n = 1;
            ch = 0x80;
        }

        if (ch < 0x20 || (ch >= 0x7f && ch <= 0x9f)
            || ch == '"' || ch == '\\'
            || ch == 0x061c || ch == 0x200e || ch == 0x200f
            || (ch >= 0x2028 && ch <= 0x202e)
            || (ch >= 0x2066 && ch <= 0x2069))
        {
            for (i = 0; i < n; i++) {
                *p++ = '\\';
                *p++ = 'x';
                *p++ = hex[src[i] >> 4];
                *p++ = hex[src[i] & 0xf];
            }

        } else {
            p = ngx_cpymem(p, src, n);
        }

        src += n;
    }

    return p - dst;
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
