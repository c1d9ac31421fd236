
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


/*
 * Header and body filters for the requests the module handles: every
 * answer gets its translated status, Content-Type, Cache-Control and,
 * where due, Allow and Retry-After; and the error page nginx makes
 * itself when the upstream fails becomes a JSON answer.  An operator's
 * error_page is an internal redirect, which drops the module's context:
 * the operator's page then goes out untouched.
 */


static ngx_int_t ngx_http_tavus_header_filter(ngx_http_request_t *r);
static ngx_int_t ngx_http_tavus_body_filter(ngx_http_request_t *r,
    ngx_chain_t *in);
static void ngx_http_tavus_clear_caching(ngx_http_request_t *r);
static ngx_int_t ngx_http_tavus_add_header(ngx_http_request_t *r,
    char *key, ngx_str_t *value);


static ngx_http_output_header_filter_pt  ngx_http_next_header_filter;
static ngx_http_output_body_filter_pt    ngx_http_next_body_filter;


ngx_int_t
ngx_http_tavus_filter_init(ngx_conf_t *cf)
{
    ngx_http_next_header_filter = ngx_http_top_header_filter;
    ngx_http_top_header_filter = ngx_http_tavus_header_filter;

    ngx_http_next_body_filter = ngx_http_top_body_filter;
    ngx_http_top_body_filter = ngx_http_tavus_body_filter;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tavus_header_filter(ngx_http_request_t *r)
{
    ngx_http_tavus_ctx_t  *ctx;

    static ngx_str_t  no_store = ngx_string("no-store");
    static ngx_str_t  delete = ngx_string("DELETE");

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (ctx == NULL
        || ctx->headers_set
        || ctx->answer.outcome == NGX_HTTP_TAVUS_OUTCOME_NONE)
    {
        return ngx_http_next_header_filter(r);
    }

    if (ctx->replace_status) {

        /* not the page nginx made for the failure: a redirect, say */

        if (r->headers_out.status != ctx->replace_status) {
            return ngx_http_next_header_filter(r);
        }

        ctx->out = ngx_http_tavus_answer_body(r, ctx, &ctx->answer);
        if (ctx->out == NULL) {
            return NGX_ERROR;
        }

        ctx->out->buf->last_buf = (r == r->main) ? 1 : 0;
        ctx->out->buf->last_in_chain = 1;
        ctx->replace_body = 1;

        r->headers_out.content_length_n = ctx->out->buf->last
                                          - ctx->out->buf->pos;

        if (r->headers_out.content_length) {
            r->headers_out.content_length->hash = 0;
            r->headers_out.content_length = NULL;
        }
    }

    ctx->headers_set = 1;

    r->headers_out.status = ctx->answer.status;
    ngx_str_null(&r->headers_out.status_line);

    ngx_str_set(&r->headers_out.content_type, "application/json");
    r->headers_out.content_type_len = r->headers_out.content_type.len;
    r->headers_out.content_type_lowcase = NULL;
    ngx_str_null(&r->headers_out.charset);

    ngx_http_tavus_clear_caching(r);

    if (ngx_http_tavus_add_header(r, "Cache-Control", &no_store) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ctx->answer.outcome == NGX_HTTP_TAVUS_METHOD_NOT_ALLOWED
        && ngx_http_tavus_add_header(r, "Allow", &delete) != NGX_OK)
    {
        return NGX_ERROR;
    }

    if (ctx->answer.outcome == NGX_HTTP_TAVUS_RATE_LIMITED
        && ctx->retry_after.len
        && ngx_http_tavus_add_header(r, "Retry-After", &ctx->retry_after)
           != NGX_OK)
    {
        return NGX_ERROR;
    }

    return ngx_http_next_header_filter(r);
}


/*
 * Cache-Control and Expires that an application's X-Accel-Redirect
 * answer left behind must not contradict "no-store"
 */

static void
ngx_http_tavus_clear_caching(ngx_http_request_t *r)
{
    ngx_uint_t        i;
    ngx_list_part_t  *part;
    ngx_table_elt_t  *h;

    part = &r->headers_out.headers.part;
    h = part->elts;

    for (i = 0; /* void */; i++) {

        if (i >= part->nelts) {
            if (part->next == NULL) {
                break;
            }

            part = part->next;
            h = part->elts;
            i = 0;
        }

        if ((h[i].key.len == sizeof("Cache-Control") - 1
             && ngx_strncasecmp(h[i].key.data, (u_char *) "Cache-Control",
                                h[i].key.len) == 0)
            || (h[i].key.len == sizeof("Expires") - 1
                && ngx_strncasecmp(h[i].key.data, (u_char *) "Expires",
                                   h[i].key.len) == 0))
        {
            h[i].hash = 0;
        }
    }

    r->headers_out.expires = NULL;

#if (nginx_version >= 1023000)
    /* nginx 1.23.0 made multi-value headers linked lists */
    r->headers_out.cache_control = NULL;
#else
    r->headers_out.cache_control.nelts = 0;
#endif
}


static ngx_int_t
ngx_http_tavus_add_header(ngx_http_request_t *r, char *key, ngx_str_t *value)
{
    ngx_table_elt_t  *h;

    h = ngx_list_push(&r->headers_out.headers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    h->hash = 1;
    h->key.data = (u_char *) key;
    h->key.len = ngx_strlen(key);
    h->value = *value;

#if (nginx_version >= 1023000)
    /* nginx 1.23.0 links header lines of one name through "next" */
    h->next = NULL;
#endif

    return NGX_OK;
}


/* nginx's error page is dropped, the JSON answer goes in its place */

static ngx_int_t
ngx_http_tavus_body_filter(ngx_http_request_t *r, ngx_chain_t *in)
{
    ngx_uint_t             last;
    ngx_chain_t           *cl;
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (ctx == NULL || !ctx->replace_body) {
        return ngx_http_next_body_filter(r, in);
    }

    last = 0;

    for (cl = in; cl; cl = cl->next) {
        if (cl->buf->last_buf || cl->buf->last_in_chain) {
            last = 1;
        }

        cl->buf->pos = cl->buf->last;
        cl->buf->file_pos = cl->buf->file_last;
    }

    if (!last) {
        return NGX_OK;
    }

    ctx->replace_body = 0;

    return ngx_http_next_body_filter(r, ctx->out);
}
