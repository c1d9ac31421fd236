
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


/*
 * The constant part of a location's request after the request line, made
 * once: " HTTP/1.1" CRLF "Host: ..." CRLF "x-api-key: ".  A tavus_pass
 * with variables has its Host per request.
 */

ngx_int_t
ngx_http_tavus_prepare_request(ngx_conf_t *cf,
    ngx_http_tavus_loc_conf_t *conf)
{
    u_char  *p;
    size_t   len;

    if (conf->pass) {
        return NGX_OK;
    }

    len = sizeof(" HTTP/1.1" CRLF "Host: ") - 1 + conf->host.len
          + sizeof(CRLF "x-api-key: ") - 1;

    p = ngx_pnalloc(cf->pool, len);
    if (p == NULL) {
        return NGX_ERROR;
    }

    conf->headers.data = p;

    p = ngx_cpymem(p, " HTTP/1.1" CRLF "Host: ",
                   sizeof(" HTTP/1.1" CRLF "Host: ") - 1);
    p = ngx_cpymem(p, conf->host.data, conf->host.len);
    p = ngx_cpymem(p, CRLF "x-api-key: ", sizeof(CRLF "x-api-key: ") - 1);

    conf->headers.len = p - conf->headers.data;

    return NGX_OK;
}


/*
 * The request is built from the configuration, the validated replica id
 * and the hard flag only: nothing of the client's request goes upstream.
 * Its buffer holds the key, so it is never written to the log.
 */

ngx_int_t
ngx_http_tavus_create_request(ngx_http_request_t *r)
{
    u_char                     *p;
    size_t                      len;
    ngx_str_t                   headers;
    ngx_buf_t                  *b;
    ngx_chain_t                *cl;
    ngx_http_tavus_ctx_t       *ctx;
    ngx_http_tavus_loc_conf_t  *tlcf;

    static u_char  method[] = "DELETE /v2/replicas/";
    static u_char  hard[] = "?hard=true";
    static u_char  host[] = " HTTP/1.1" CRLF "Host: ";
    static u_char  key[] = CRLF "x-api-key: ";

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);
    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tavus_module);

    if (tlcf->pass == NULL) {
        headers = tlcf->headers;

    } else {
        headers.len = sizeof(host) - 1 + ctx->host.len + sizeof(key) - 1;
        headers.data = ngx_pnalloc(r->pool, headers.len);
        if (headers.data == NULL) {
            return NGX_ERROR;
        }

        p = ngx_cpymem(headers.data, host, sizeof(host) - 1);
        p = ngx_cpymem(p, ctx->host.data, ctx->host.len);
        ngx_memcpy(p, key, sizeof(key) - 1);
    }

    len = sizeof(method) - 1 + ctx->replica_id.len
          + (ctx->hard ? sizeof(hard) - 1 : 0)
          + headers.len + ctx->key.len + sizeof(CRLF CRLF) - 1;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NGX_ERROR;
    }

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NGX_ERROR;
    }

    cl->buf = b;
    cl->next = NULL;

    b->last = ngx_cpymem(b->last, method, sizeof(method) - 1);
    b->last = ngx_cpymem(b->last, ctx->replica_id.data, ctx->replica_id.len);

    if (ctx->hard) {
        b->last = ngx_cpymem(b->last, hard, sizeof(hard) - 1);
    }

    b->last = ngx_cpymem(b->last, headers.data, headers.len);
    b->last = ngx_cpymem(b->last, ctx->key.data, ctx->key.len);
    *b->last++ = CR; *b->last++ = LF;
    *b->last++ = CR; *b->last++ = LF;

    /* or SSL buffers a request on a kept-alive connection */
    b->flush = 1;

    r->upstream->request_bufs = cl;

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "tavus request: DELETE /v2/replicas/%V%s",
                   &ctx->replica_id, ctx->hard ? hard : (u_char *) "");

    return NGX_OK;
}


/* before a retry: nothing of the previous answer may survive */

ngx_int_t
ngx_http_tavus_reinit_request(ngx_http_request_t *r)
{
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (ctx == NULL) {
        return NGX_OK;
    }

    ctx->answer.outcome = NGX_HTTP_TAVUS_OUTCOME_NONE;
    ctx->out = NULL;
    ctx->replace_status = 0;
    ctx->headers_set = 0;
    ctx->replace_body = 0;
    ctx->queued = 0;

    /* the answer is read again from its status line */

    r->upstream->process_header = ngx_http_tavus_process_status_line;
    r->state = 0;

    ngx_http_tavus_forget_header(ctx);
    ctx->line_start = NULL;
    ngx_memzero(&ctx->chunked, sizeof(ngx_http_chunked_t));
    ctx->body_start = NULL;
    ctx->body_last = NULL;

    return NGX_OK;
}
