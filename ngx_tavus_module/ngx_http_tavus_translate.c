
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <cjson/cJSON.h>
#include "ngx_http_tavus_translate.h"
#include "ngx_http_tavus_text.h"


static ngx_uint_t ngx_http_tavus_outcome_of(ngx_uint_t status);


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
