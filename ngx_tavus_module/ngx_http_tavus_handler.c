
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/rand.h>
#include "ngx_http_tavus_module.h"


#define NGX_HTTP_TAVUS_REQUEST_ID_LEN  16
#define NGX_HTTP_TAVUS_RANDOM_SIZE     4096


static ngx_int_t ngx_http_tavus_check_request(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx);
static ngx_int_t ngx_http_tavus_start_upstream(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx);
static void ngx_http_tavus_keep_discarding(ngx_event_t *ev);
static void ngx_http_tavus_discard_body(ngx_http_request_t *r);
static void ngx_http_tavus_cleanup(void *data);
static ngx_int_t ngx_http_tavus_eval_pass(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx);
static ngx_int_t ngx_http_tavus_local_answer(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx, ngx_uint_t outcome);
static ngx_http_variable_value_t *ngx_http_tavus_request_id(
    ngx_http_request_t *r, ngx_http_tavus_loc_conf_t *tlcf);


/*
 * The content handler: the request is checked first, and only a request
 * that passes every check starts the upstream request.  A refusal, a dry
 * run and a misconfigured key are answered here, with no upstream call.
 */

ngx_int_t
ngx_http_tavus_handler(ngx_http_request_t *r)
{
    ngx_int_t                   rc, outcome;
    ngx_pool_cleanup_t         *cln;
    ngx_http_tavus_ctx_t       *ctx;
    ngx_http_tavus_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tavus_module);

    if (tlcf->replica_id == NULL) {
        ngx_log_error(NGX_LOG_ALERT, r->connection->log, 0,
                      "tavus handler in a location without "
                      "\"tavus_delete_replica\"");
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx = ngx_pcalloc(r->pool, sizeof(ngx_http_tavus_ctx_t));
    if (ctx == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    ctx->request = r;
    ctx->answer.outcome = NGX_HTTP_TAVUS_OUTCOME_NONE;
    ctx->content_length = -1;

    ngx_http_set_ctx(r, ctx, ngx_http_tavus_module);

    /* the mark that ngx_http_tavus_get_ctx() finds after a redirect */

    cln = ngx_pool_cleanup_add(r->pool, 0);
    if (cln == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    cln->handler = ngx_http_tavus_cleanup;
    cln->data = ctx;

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    outcome = ngx_http_tavus_check_request(r, tlcf, ctx);

    if (outcome == NGX_ERROR) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    if (outcome != NGX_HTTP_TAVUS_OUTCOME_NONE) {
        return ngx_http_tavus_local_answer(r, ctx, outcome);
    }

    return ngx_http_tavus_start_upstream(r, tlcf, ctx);
}


/*
 * Every check, in the order of the answers' precedence: the outcome of
 * the first that fails (an answer the module makes), NGX_ERROR, or
 * NGX_HTTP_TAVUS_OUTCOME_NONE when the delete may go upstream.  Sets the
 * replica id, the hard flag and the key in the context.
 */

static ngx_int_t
ngx_http_tavus_check_request(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx)
{
    ngx_int_t  hard;
    ngx_str_t  value;

    /* parsed first, so that $tavus_hard shows it whatever is refused */

    if (tlcf->hard) {
        if (ngx_http_complex_value(r, tlcf->hard, &value) != NGX_OK) {
            return NGX_ERROR;
        }

    } else if (r->args.len == 0
               || ngx_http_arg(r, (u_char *) "hard", sizeof("hard") - 1,
                               &value)
                  != NGX_OK)
    {
        /* the default, $arg_hard, without the script engine */

        ngx_str_null(&value);
    }

    hard = ngx_http_tavus_parse_hard(value.data, value.len);
    ctx->hard = (hard == 1);

    /*
     * an internal redirect (X-Accel-Redirect makes it a GET) or
     * a subrequest was allowed in by the configuration; a client
     * must say DELETE, so that no link or image can delete
     */

    if (!r->internal && r->method != NGX_HTTP_DELETE) {
        return NGX_HTTP_TAVUS_METHOD_NOT_ALLOWED;
    }

    if (ngx_http_complex_value(r, tlcf->replica_id, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_tavus_valid_replica_id(value.data, value.len) != NGX_OK) {
        return NGX_HTTP_TAVUS_INVALID_REPLICA_ID;
    }

    ctx->replica_id = value;

    if (hard == NGX_ERROR) {
        return NGX_HTTP_TAVUS_INVALID_HARD;
    }

    if (ctx->hard) {
        if (tlcf->allow_hard == NULL) {
            ngx_str_null(&value);

        } else if (ngx_http_complex_value(r, tlcf->allow_hard, &value)
                   != NGX_OK)
        {
            return NGX_ERROR;
        }

        if (!ngx_http_tavus_parse_switch(value.data, value.len)) {
            return NGX_HTTP_TAVUS_HARD_DELETE_DENIED;
        }
    }

    if (ngx_http_tavus_eval_key(r, tlcf, ctx) != NGX_OK) {
        return NGX_HTTP_TAVUS_GATEWAY_MISCONFIGURED;
    }

    /* all checks done, the key chosen: a dry run stops here */

    if (tlcf->dry_run) {
        if (ngx_http_complex_value(r, tlcf->dry_run, &value) != NGX_OK) {
            return NGX_ERROR;
        }

        if (ngx_http_tavus_parse_dry_run(value.data, value.len)) {
            return NGX_HTTP_TAVUS_DRY_RUN;
        }
    }

    return NGX_HTTP_TAVUS_OUTCOME_NONE;
}


/* the upstream request, as the memcached module starts one */

static ngx_int_t
ngx_http_tavus_start_upstream(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx)
{
    ngx_http_upstream_t  *u;

    if (ngx_http_upstream_create(r) != NGX_OK) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    u = r->upstream;

#if (NGX_HTTP_SSL)
    u->ssl = (tlcf->upstream.ssl != NULL);
#endif

    if (u->ssl) {
        ngx_str_set(&u->schema, "https://");

    } else {
        ngx_str_set(&u->schema, "http://");
    }

    u->output.tag = (ngx_buf_tag_t) &ngx_http_tavus_module;

    u->conf = &tlcf->upstream;

    if (tlcf->pass && ngx_http_tavus_eval_pass(r, tlcf, ctx) != NGX_OK) {
        return ngx_http_tavus_local_answer(r, ctx,
                                        NGX_HTTP_TAVUS_GATEWAY_MISCONFIGURED);
    }

    u->create_request = ngx_http_tavus_create_request;
    u->reinit_request = ngx_http_tavus_reinit_request;
    u->process_header = ngx_http_tavus_process_status_line;
    u->abort_request = ngx_http_tavus_abort_request;
    u->finalize_request = ngx_http_tavus_finalize_request;

    u->input_filter_init = ngx_http_tavus_input_filter_init;
    u->input_filter = ngx_http_tavus_input_filter;
    u->input_filter_ctx = ctx;

    /* the parsers' state outlives an internal redirect, as in proxy */

    r->state = 0;

    /*
     * nginx re-sends a request that failed after it was sent unless its
     * method is POST, LOCK or PATCH, and DELETE is none of them; a delete
     * that may have reached Tavus is re-sent only if the operator says
     * "non_idempotent", so the upstream code is told it is a POST
     * ($request_method still shows the client's method; a HEAD that
     * an internal redirect brought keeps its header-only answer)
     */

    if (!(tlcf->upstream.next_upstream & NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT))
    {
        if (r->method == NGX_HTTP_HEAD) {
            r->header_only = 1;
        }

        r->method = NGX_HTTP_POST;
    }

    r->main->count++;

    ngx_http_upstream_init(r);

    if (r->discard_body) {
        ctx->upstream_read_handler = r->read_event_handler;

        if (r->read_event_handler == ngx_http_discarded_request_body_handler)
        {
            /* tavus_ignore_client_abort: the upstream set none */
            ctx->upstream_read_handler = ngx_http_block_reading;
        }

        ctx->discarding.handler = ngx_http_tavus_keep_discarding;
        ctx->discarding.data = r;
        ctx->discarding.log = r->connection->log;

        ngx_post_event(&ctx->discarding, &ngx_posted_events);
    }

    return NGX_DONE;
}


/*
 * A body still arriving when the delete starts is discarded as nginx
 * discards one, but not under nginx's rules for a finished request.
 * When the handler returns, ngx_http_finalize_connection() makes nginx's
 * discarding the read handler, with a lingering_timeout timer: the timer
 * would end a delete that takes longer, with no answer; and the handler,
 * once at the body's end by a FIN or an error, stays, so that a later
 * event on the connection (a reset after the FIN) runs it again and
 * takes the upstream's reference to the request, which frees the request
 * under the upstream ("http request count is zero").  This event, posted
 * before that, runs after it: while the delete is in flight the body is
 * discarded without a timer, and once it is done the upstream's own read
 * handler watches the connection.  When the upstream is done, nginx's
 * finalization of the request brings its lingering rules back.
 */

static void
ngx_http_tavus_keep_discarding(ngx_event_t *ev)
{
    ngx_connection_t    *c;
    ngx_http_request_t  *r;

    r = ev->data;
    c = r->connection;

    if (r->upstream == NULL || r->upstream->cleanup == NULL) {
        return;
    }

    /*
     * an event on the client connection may have come first, in the same
     * round of events, and ended the body: the timer and, after a FIN,
     * nginx's handler are then left all the same
     */

    if (c->read->timer_set) {
        ngx_del_timer(c->read);
    }

    r->lingering_time = 0;

    if (r->read_event_handler == ngx_http_discarded_request_body_handler) {
        ngx_log_debug0(NGX_LOG_DEBUG_HTTP, c->log, 0,
                       "tavus: the body is discarded while the delete is "
                       "sent");

        r->read_event_handler = ngx_http_tavus_discard_body;
    }
}


static void
ngx_http_tavus_discard_body(ngx_http_request_t *r)
{
    ngx_http_tavus_ctx_t  *ctx;

    /* nginx's discarding, until the body's end; r may then be gone */

    if (r->discard_body) {
        ngx_http_discarded_request_body_handler(r);
        return;
    }

    /*
     * the upstream's handler only while its upstream is in flight: after
     * an error_page to another location, it would finalize a finished
     * upstream once more, and the context may be a later one without it
     */

    ctx = ngx_http_tavus_get_ctx(r);

    if (ctx && ctx->upstream_read_handler
        && r->upstream && r->upstream->cleanup)
    {
        ctx->upstream_read_handler(r);
        return;
    }

    ngx_http_block_reading(r);
}


/*
 * The context for the variables and the metrics: an operator's error_page
 * is an internal redirect, which resets every module's context, and the
 * outcome must still reach the logs.  The pool cleanup keeps it, as the
 * realip module keeps the original address.  Subrequests share their
 * parent's pool: a context found there is taken only if it is this
 * request's own, so that neither the parent nor another subrequest
 * reports a subrequest's delete.  The output filters use the live
 * context only, so that the operator's page is left alone.
 */

ngx_http_tavus_ctx_t *
ngx_http_tavus_get_ctx(ngx_http_request_t *r)
{
    ngx_pool_cleanup_t    *cln;
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (ctx == NULL && r->internal) {
        for (cln = r->pool->cleanup; cln; cln = cln->next) {
            if (cln->handler == ngx_http_tavus_cleanup) {
                ctx = cln->data;

                if (ctx->request == r) {
                    return ctx;
                }
            }
        }

        return NULL;
    }

    return ctx;
}


static void
ngx_http_tavus_cleanup(void *data)
{
    ngx_http_tavus_ctx_t  *ctx = data;

    /* a marker for ngx_http_tavus_get_ctx(), and the end of the request */

    if (ctx->discarding.posted) {
        ngx_delete_posted_event(&ctx->discarding);
    }
}


/*
 * tavus_pass with variables: the host, resolved by nginx's resolver
 * unless it is an address or names an upstream{} group
 */

static ngx_int_t
ngx_http_tavus_eval_pass(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx)
{
    ngx_str_t             value, host;
    ngx_url_t             url;
    ngx_http_upstream_t  *u;

    if (ngx_http_complex_value(r, tlcf->pass, &value) != NGX_OK) {
        return NGX_ERROR;
    }

    /* the rule of the configuration: the host is then safe to log */

    if (ngx_http_tavus_parse_host(value.data, value.len, 0, &host)
        != NGX_OK)
    {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "\"tavus_pass\" evaluated to no valid host[:port]");
        return NGX_ERROR;
    }

    ngx_memzero(&url, sizeof(ngx_url_t));

    url.url = host;
    url.default_port = tlcf->default_port;
    url.no_resolve = 1;

    if (ngx_parse_url(r->pool, &url) != NGX_OK) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "\"tavus_pass\" evaluated to \"%V\": %s",
                      &host, url.err ? url.err : "invalid");
        return NGX_ERROR;
    }

    u = r->upstream;

    u->resolved = ngx_pcalloc(r->pool, sizeof(ngx_http_upstream_resolved_t));
    if (u->resolved == NULL) {
        return NGX_ERROR;
    }

    if (url.addrs) {
        u->resolved->sockaddr = url.addrs[0].sockaddr;
        u->resolved->socklen = url.addrs[0].socklen;
        u->resolved->name = url.addrs[0].name;
        u->resolved->naddrs = 1;
    }

    u->resolved->host = url.host;
    u->resolved->port = url.no_port ? tlcf->default_port : url.port;
    u->resolved->no_port = url.no_port;

    ctx->host = host;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tavus_local_answer(ngx_http_request_t *r, ngx_http_tavus_ctx_t *ctx,
    ngx_uint_t outcome)
{
    ngx_http_tavus_answer_t  a;

    ngx_http_tavus_answer_init(&a, outcome);

    return ngx_http_tavus_send_answer(r, ctx, &a);
}


/* an answer the module makes without the upstream */

ngx_int_t
ngx_http_tavus_send_answer(ngx_http_request_t *r, ngx_http_tavus_ctx_t *ctx,
    ngx_http_tavus_answer_t *a)
{
    ngx_int_t     rc;
    ngx_chain_t  *out;

    ctx->answer = *a;

    out = ngx_http_tavus_answer_body(r, ctx, a);
    if (out == NULL) {
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    /*
     * the header filter adds Content-Type, Cache-Control and Allow;
     * no If-Match, If-None-Match or the like makes it a 412 or a 304,
     * and no Range a 206, whatever an X-Accel-Redirect answer allowed
     */

    r->disable_not_modified = 1;
    r->allow_ranges = 0;

    r->headers_out.status = a->status;
    r->headers_out.content_length_n = out->buf->last - out->buf->pos;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    out->buf->last_buf = (r == r->main) ? 1 : 0;
    out->buf->last_in_chain = 1;

    return ngx_http_output_filter(r, out);
}


ngx_chain_t *
ngx_http_tavus_answer_body(ngx_http_request_t *r, ngx_http_tavus_ctx_t *ctx,
    ngx_http_tavus_answer_t *a)
{
    size_t                      len;
    ngx_buf_t                  *b;
    ngx_str_t                  *replica_id, request_id;
    ngx_chain_t                *cl;
    ngx_http_variable_value_t  *vv;
    ngx_http_tavus_loc_conf_t  *tlcf;

    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tavus_module);

    vv = ngx_http_tavus_request_id(r, tlcf);
    if (vv == NULL || vv->not_found) {
        return NULL;
    }

    request_id.data = vv->data;
    request_id.len = vv->len;

    replica_id = ctx->replica_id.len ? &ctx->replica_id : NULL;

    len = ngx_http_tavus_json_length(a, replica_id, &request_id);

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        return NULL;
    }

    b->last = ngx_http_tavus_json_write(b->last, a, replica_id, ctx->hard,
                                        &request_id);

    cl = ngx_alloc_chain_link(r->pool);
    if (cl == NULL) {
        return NULL;
    }

    cl->buf = b;
    cl->next = NULL;

    return cl;
}


/*
 * $request_id, as nginx makes it (16 random bytes in hex), but from a
 * worker's pool of random bytes: OpenSSL 3 spends as much on one call of
 * RAND_bytes() as on kilobytes, and nginx calls it for every request.
 * The pool is filled in the worker at its first use, never in the master.
 */

static ngx_http_variable_value_t *
ngx_http_tavus_request_id(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf)
{
    u_char                     *id;
    ngx_http_variable_value_t  *vv;

    static u_char  random[NGX_HTTP_TAVUS_RANDOM_SIZE];
    static size_t  used = NGX_HTTP_TAVUS_RANDOM_SIZE;

    vv = &r->variables[tlcf->request_id_index];

    if (vv->valid || vv->not_found) {
        return vv;
    }

    if (used + NGX_HTTP_TAVUS_REQUEST_ID_LEN > NGX_HTTP_TAVUS_RANDOM_SIZE) {
        if (RAND_bytes(random, NGX_HTTP_TAVUS_RANDOM_SIZE) != 1) {
            return ngx_http_get_indexed_variable(r, tlcf->request_id_index);
        }

        used = 0;
    }

    id = ngx_pnalloc(r->pool, 2 * NGX_HTTP_TAVUS_REQUEST_ID_LEN);
    if (id == NULL) {
        return NULL;
    }

    ngx_hex_dump(id, random + used, NGX_HTTP_TAVUS_REQUEST_ID_LEN);
    ngx_explicit_memzero(random + used, NGX_HTTP_TAVUS_REQUEST_ID_LEN);
    used += NGX_HTTP_TAVUS_REQUEST_ID_LEN;

    vv->len = 2 * NGX_HTTP_TAVUS_REQUEST_ID_LEN;
    vv->valid = 1;
    vv->no_cacheable = 0;
    vv->not_found = 0;
    vv->data = id;

    return vv;
}
