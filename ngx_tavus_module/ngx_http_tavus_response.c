
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


#define NGX_HTTP_TAVUS_TOO_BIG  "an answer larger than tavus_buffer_size"


static ngx_int_t ngx_http_tavus_process_header(ngx_http_request_t *r);
static ngx_int_t ngx_http_tavus_process_body(ngx_http_request_t *r);
static ngx_int_t ngx_http_tavus_again(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx);
static ngx_int_t ngx_http_tavus_process_header_line(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx);
static ngx_int_t ngx_http_tavus_process_answer(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx);
static void ngx_http_tavus_log_upstream(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx, ngx_http_tavus_answer_t *a, u_char *body,
    size_t len);
static ngx_uint_t ngx_http_tavus_valid_retry_after(ngx_str_t *value);
static ngx_int_t ngx_http_tavus_invalid(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx, const char *why);
static void ngx_http_tavus_failure(ngx_http_tavus_ctx_t *ctx,
    ngx_http_upstream_t *u, ngx_int_t rc);


/*
 * The whole answer is read into u->buffer (tavus_buffer_size) a part at
 * a time, as the proxy module reads a status line and then headers: the
 * status line, the headers, the body, each returning NGX_AGAIN until its
 * part has arrived and then handing on to the next through
 * u->process_header (reinit_request starts a retry at the status line).
 * Only a complete answer is translated, and the translated answer is
 * what nginx sends.
 */

ngx_int_t
ngx_http_tavus_process_status_line(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_http_upstream_t   *u;
    ngx_http_tavus_ctx_t  *ctx;

    u = r->upstream;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    if (r->state == 0) {
        ctx->line_start = u->buffer.pos;
    }

    rc = ngx_http_parse_status_line(r, &u->buffer, &ctx->status);

    if (rc == NGX_AGAIN) {
        return ngx_http_tavus_again(r, ctx);
    }

    /*
     * no HTTP/0.9 fallback as in the proxy module, and none of the other
     * liberties of nginx's parser (HTTP/1.10, "200.5", control bytes):
     * garbage is never taken for an answer
     */

    if (rc == NGX_ERROR
        || ngx_http_tavus_valid_status_line(ctx->line_start,
                                            u->buffer.pos - ctx->line_start)
           != NGX_OK)
    {
        return ngx_http_tavus_invalid(r, ctx, "no valid HTTP/1.x status line");
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "tavus upstream status %ui", ctx->status.code);

    if (ctx->status.http_version < NGX_HTTP_VERSION_11) {
        ctx->connection_close = 1;
    }

    u->process_header = ngx_http_tavus_process_header;

    return ngx_http_tavus_process_header(r);
}


static ngx_int_t
ngx_http_tavus_process_header(ngx_http_request_t *r)
{
    ngx_int_t              rc;
    ngx_buf_t             *b;
    ngx_uint_t             code;
    ngx_http_upstream_t   *u;
    ngx_http_tavus_ctx_t  *ctx;

    u = r->upstream;
    b = &u->buffer;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    for ( ;; ) {

        if (r->state == 0) {
            ctx->line_start = b->pos;
        }

        rc = ngx_http_parse_header_line(r, b, 1);

        if (rc == NGX_OK) {

            /*
             * the line as RFC 9112 writes it, from what nginx's parser
             * found: it skipped no line (it skips a status line among the
             * header lines), a colon ends the name, the name is a token
             * (the parser marks a name with bytes it does not know), and
             * the value holds no control byte (it refuses only NUL)
             */

            if (r->header_name_start != ctx->line_start
                || *r->header_name_end != ':'
                || (r->invalid_header
                    && ngx_http_tavus_valid_token(r->header_name_start,
                                        r->header_name_end
                                        - r->header_name_start)
                       != NGX_OK)
                || ngx_http_tavus_valid_field_value(r->header_start,
                                        r->header_end - r->header_start)
                   != NGX_OK)
            {
                return ngx_http_tavus_invalid(r, ctx, "an invalid header");
            }

            rc = ngx_http_tavus_process_header_line(r, ctx);

            if (rc != NGX_OK) {
                return rc;
            }

            continue;
        }

        if (rc == NGX_AGAIN) {

            /*
             * a whole line gone without NGX_OK: nginx's parser skips a
             * status line among the header lines, and may stop after it
             */

            if (ngx_strlchr(ctx->line_start, b->pos, LF) != NULL) {
                return ngx_http_tavus_invalid(r, ctx, "an invalid header");
            }

            return ngx_http_tavus_again(r, ctx);
        }

        if (rc != NGX_HTTP_PARSE_HEADER_DONE) {
            return ngx_http_tavus_invalid(r, ctx, "an invalid header");
        }

        break;
    }

    code = ctx->status.code;

    if (code >= 100 && code < 200) {

        if (code == NGX_HTTP_SWITCHING_PROTOCOLS) {
            return ngx_http_tavus_invalid(r, ctx, "101 Switching Protocols");
        }

        /* an interim answer: the final one follows */

        ngx_http_tavus_forget_header(ctx);

        u->process_header = ngx_http_tavus_process_status_line;

        return ngx_http_tavus_process_status_line(r);
    }

    /* the framing of the body: exactly one way to know where it ends */

    if (ctx->chunked_body && ctx->content_length != -1) {
        return ngx_http_tavus_invalid(r, ctx,
                      "both \"Content-Length\" and \"Transfer-Encoding\"");
    }

    if (code == NGX_HTTP_NO_CONTENT || code == NGX_HTTP_NOT_MODIFIED) {
        ctx->content_length = 0;
        ctx->chunked_body = 0;

    } else if (!ctx->chunked_body) {

        if (ctx->content_length == -1) {
            return ngx_http_tavus_invalid(r, ctx,
                                      "a body delimited by connection close");
        }

        if (ctx->content_length > b->end - b->pos) {
            return ngx_http_tavus_invalid(r, ctx,
                                  NGX_HTTP_TAVUS_TOO_BIG);
        }
    }

    ctx->body_start = b->pos;
    ctx->body_last = b->pos;

    u->process_header = ngx_http_tavus_process_body;

    return ngx_http_tavus_process_body(r);
}


static ngx_int_t
ngx_http_tavus_process_body(ngx_http_request_t *r)
{
    size_t                 size;
    ngx_int_t              rc;
    ngx_buf_t             *b;
    ngx_http_tavus_ctx_t  *ctx;

    b = &r->upstream->buffer;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (!ctx->chunked_body) {

        if (b->last - ctx->body_start < ctx->content_length) {
            return ngx_http_tavus_again(r, ctx);
        }

        ctx->body_last = ctx->body_start + ctx->content_length;
        b->pos = ctx->body_last;

        return ngx_http_tavus_process_answer(r, ctx);
    }

    for ( ;; ) {

#if (nginx_version >= 1027002)
        /* nginx 1.27.2 added keep_trailers: trailers are discarded */
        rc = ngx_http_parse_chunked(r, b, &ctx->chunked, 0);
#else
        rc = ngx_http_parse_chunked(r, b, &ctx->chunked);
#endif

        if (rc == NGX_OK) {

            if (ctx->chunked.size > b->end - ctx->body_last) {
                return ngx_http_tavus_invalid(r, ctx,
                                  NGX_HTTP_TAVUS_TOO_BIG);
            }

            /* chunk data: gathered at the end of the body so far */

            size = ngx_min((off_t) (b->last - b->pos), ctx->chunked.size);

            ctx->body_last = ngx_movemem(ctx->body_last, b->pos, size);
            b->pos += size;
            ctx->chunked.size -= size;

            continue;
        }

        if (rc == NGX_DONE) {
            return ngx_http_tavus_process_answer(r, ctx);
        }

        if (rc == NGX_AGAIN) {
            return ngx_http_tavus_again(r, ctx);
        }

        return ngx_http_tavus_invalid(r, ctx, "an invalid chunked body");
    }
}


/* a part of the answer is missing: more to read, if there is room */

static ngx_int_t
ngx_http_tavus_again(ngx_http_request_t *r, ngx_http_tavus_ctx_t *ctx)
{
    ngx_buf_t  *b;

    b = &r->upstream->buffer;

    if (b->last == b->end) {
        return ngx_http_tavus_invalid(r, ctx,
                                  NGX_HTTP_TAVUS_TOO_BIG);
    }

    return NGX_AGAIN;
}


static ngx_int_t
ngx_http_tavus_process_header_line(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx)
{
    size_t      len;
    u_char     *name, *value, *last;
    ngx_str_t   h;

    len = r->header_name_end - r->header_name_start;

    /*
     * the parser lowercased names of up to NGX_HTTP_LC_HEADER_LEN bytes,
     * and the headers of interest are all that short
     */

    if (r->lowcase_index != len) {
        return NGX_OK;
    }

    name = r->lowcase_header;

    /* OWS is SP or HTAB; nginx's parser skips only SP */

    value = r->header_start;
    last = r->header_end;

    while (value < last && (*value == ' ' || *value == '\t')) {
        value++;
    }

    while (last > value && (last[-1] == ' ' || last[-1] == '\t')) {
        last--;
    }

    h.len = last - value;
    h.data = value;

    if (len == sizeof("Content-Length") - 1
        && ngx_strncmp(name, "content-length", len) == 0)
    {
        if (ctx->content_length != -1) {
            return ngx_http_tavus_invalid(r, ctx,
                                       "more than one \"Content-Length\"");
        }

        ctx->content_length = ngx_atoof(value, h.len);

        if (ctx->content_length == NGX_ERROR) {
            return ngx_http_tavus_invalid(r, ctx,
                                          "an invalid \"Content-Length\"");
        }

        return NGX_OK;
    }

    if (len == sizeof("Transfer-Encoding") - 1
        && ngx_strncmp(name, "transfer-encoding", len) == 0)
    {
        if (ctx->chunked_body
            || h.len != sizeof("chunked") - 1
            || ngx_strncasecmp(value, (u_char *) "chunked", h.len) != 0)
        {
            return ngx_http_tavus_invalid(r, ctx,
                                    "an unsupported \"Transfer-Encoding\"");
        }

        ctx->chunked_body = 1;

        return NGX_OK;
    }

    if (len == sizeof("Connection") - 1
        && ngx_strncmp(name, "connection", len) == 0)
    {
        if (ngx_strlcasestrn(value, value + h.len, (u_char *) "close",
                             sizeof("close") - 2)
            != NULL)
        {
            ctx->connection_close = 1;
        }

        return NGX_OK;
    }

    if (len == sizeof("Retry-After") - 1
        && ngx_strncmp(name, "retry-after", len) == 0)
    {
        /*
         * passed on to the client only as what it must be, seconds or
         * an HTTP date: upstream text goes nowhere unchecked
         */

        if (!ngx_http_tavus_valid_retry_after(&h)
            || ngx_http_tavus_contains(h.data, h.len, &ctx->key))
        {
            ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                          "upstream sent an invalid \"Retry-After\", "
                          "not passed on");
            return NGX_OK;
        }

        ctx->retry_after.data = ngx_pstrdup(r->pool, &h);
        if (ctx->retry_after.data == NULL) {
            return NGX_ERROR;
        }

        ctx->retry_after.len = h.len;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_tavus_valid_retry_after(ngx_str_t *value)
{
    size_t  i;

    if (value->len == 0) {
        return 0;
    }

    for (i = 0; i < value->len; i++) {
        if (value->data[i] < '0' || value->data[i] > '9') {
            break;
        }
    }

    if (i == value->len) {
        return value->len <= NGX_INT32_LEN;
    }

    return ngx_parse_http_time(value->data, value->len) != NGX_ERROR;
}


/* the answer is complete: translate it, and let nginx send the result */

static ngx_int_t
ngx_http_tavus_process_answer(ngx_http_request_t *r, ngx_http_tavus_ctx_t *ctx)
{
    u_char                   *body, *buf;
    size_t                    len;
    ngx_buf_t                *b;
    ngx_http_upstream_t      *u;
    ngx_http_tavus_answer_t   a;

    u = r->upstream;
    b = &u->buffer;

    if (b->pos == b->last) {
        u->keepalive = !ctx->connection_close;

    } else {
        ngx_log_error(NGX_LOG_WARN, r->connection->log, 0,
                      "upstream sent %uz bytes after the answer",
                      (size_t) (b->last - b->pos));

        u->keepalive = 0;
    }

    /*
     * one byte of the answer, its last, is left in the buffer: nginx
     * then hands it to the input filter, which queues the translated
     * body at once, instead of flushing first and sending the body later
     */

    b->pos = b->last - 1;

    len = ctx->body_last - ctx->body_start;

    if (ctx->status.code >= 200 && ctx->status.code < 300) {
        ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_DELETED);

    } else {

        /* cJSON wants a NUL-terminated copy */

        body = ngx_pnalloc(r->pool, len + 1 + NGX_HTTP_TAVUS_MESSAGE_MAX);
        if (body == NULL) {
            return NGX_ERROR;
        }

        ngx_memcpy(body, ctx->body_start, len);
        body[len] = '\0';
        buf = body + len + 1;

        ngx_http_tavus_translate(&a, ctx->status.code, body, len, &ctx->key,
                                 buf);

        ngx_http_tavus_log_upstream(r, ctx, &a, body, len);
    }

    ctx->answer = a;

    ctx->out = ngx_http_tavus_answer_body(r, ctx, &a);
    if (ctx->out == NULL) {
        return NGX_ERROR;
    }

    ctx->out->buf->flush = 1;
    ctx->out->buf->tag = u->output.tag;

    /*
     * nginx's upstream code sees the upstream's own status, so that
     * tavus_next_upstream http_500 and the like work as in the proxy
     * module, and $upstream_status shows it; the header filter then
     * sends the translated status and headers
     */

    u->headers_in.status_n = ctx->status.code;
    u->state->status = ctx->status.code;
    u->headers_in.content_length_n = ctx->out->buf->last - ctx->out->buf->pos;

    return NGX_OK;
}


/*
 * What the operator must see: a rejected key (with the fingerprint, never
 * the key) and server errors, with the upstream's message redacted, cut
 * and escaped.
 */

static void
ngx_http_tavus_log_upstream(ngx_http_request_t *r, ngx_http_tavus_ctx_t *ctx,
    ngx_http_tavus_answer_t *a, u_char *body, size_t len)
{
    u_char     *fp;
    u_char      buf[NGX_HTTP_TAVUS_MESSAGE_MAX];
    u_char      esc[NGX_HTTP_TAVUS_LOG_ESCAPE(NGX_HTTP_TAVUS_MESSAGE_MAX)];
    ngx_int_t   rc;
    ngx_str_t   message;

    if (a->outcome != NGX_HTTP_TAVUS_UPSTREAM_REJECTED_KEY
        && a->outcome != NGX_HTTP_TAVUS_UPSTREAM_ERROR)
    {
        return;
    }

    rc = ngx_http_tavus_upstream_message(body, len, &ctx->key, buf,
                                         &message);

    if (rc == NGX_ABORT) {
        ngx_str_set(&message, "(withheld: it contains the API key)");

    } else if (rc != NGX_OK) {
        ngx_str_set(&message, "(none)");

    } else {

        /* cut as the client's is; escaped, it cannot forge a log line */

        message.len = ngx_http_tavus_log_escape(esc, message.data,
                                                message.len);
        message.data = esc;
    }

    if (a->outcome == NGX_HTTP_TAVUS_UPSTREAM_ERROR) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "upstream answered %ui, message: \"%V\"",
                      ctx->status.code, &message);
        return;
    }

    fp = ngx_http_tavus_key_fingerprint(r->pool, ctx);
    if (fp == NULL) {
        fp = (u_char *) "????????????????";
    }

    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "upstream rejected the API key with fingerprint %*s: "
                  "%ui, message: \"%V\"",
                  (size_t) NGX_HTTP_TAVUS_FINGERPRINT_LEN, fp,
                  ctx->status.code, &message);
}


static ngx_int_t
ngx_http_tavus_invalid(ngx_http_request_t *r, ngx_http_tavus_ctx_t *ctx,
    const char *why)
{
    ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                  "upstream sent %s", why);

    ctx->answer.outcome = NGX_HTTP_TAVUS_UPSTREAM_INVALID_RESPONSE;
    r->upstream->keepalive = 0;

    return NGX_HTTP_UPSTREAM_INVALID_HEADER;
}


ngx_int_t
ngx_http_tavus_input_filter_init(void *data)
{
    ngx_http_tavus_ctx_t  *ctx = data;

    ctx->queued = 0;

    return NGX_OK;
}


/*
 * The answer was read whole: the first call brings its last byte, left
 * there by process_answer, and queues the translated body; whatever
 * comes after is surplus.
 */

ngx_int_t
ngx_http_tavus_input_filter(void *data, ssize_t bytes)
{
    ngx_http_tavus_ctx_t  *ctx = data;

    ngx_http_upstream_t  *u;

    u = ctx->request->upstream;
    u->length = 0;

    if (!ctx->queued) {
        ctx->queued = 1;
        u->out_bufs = ctx->out;

        return NGX_OK;
    }

    ngx_log_error(NGX_LOG_WARN, ctx->request->connection->log, 0,
                  "upstream sent %z bytes after the answer", bytes);

    u->keepalive = 0;

    return NGX_OK;
}


void
ngx_http_tavus_abort_request(ngx_http_request_t *r)
{
    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "abort tavus request");
}


/*
 * When the upstream fails (refused, reset, timed out, an invalid answer),
 * nginx finalizes the request with 502 or 504 and sends its own error
 * page, or the operator's error_page; the header and body filters make
 * nginx's own page a JSON answer.
 */

void
ngx_http_tavus_finalize_request(ngx_http_request_t *r, ngx_int_t rc)
{
    ngx_http_upstream_t   *u;
    ngx_http_tavus_ctx_t  *ctx;

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "finalize tavus request %i", rc);

    u = r->upstream;

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (ctx == NULL || u->header_sent) {
        return;
    }

    /*
     * with tavus_ignore_client_abort, a client that is gone (an HTTP/2
     * stream it reset) makes nginx end an upstream failure with 499:
     * nothing is sent, but the log and the metrics must say what the
     * upstream did
     */

    if (rc == NGX_HTTP_CLIENT_CLOSED_REQUEST
        && u->conf->ignore_client_abort
        && ctx->answer.outcome == NGX_HTTP_TAVUS_OUTCOME_NONE)
    {
        if (u->peer.connection
            && (u->peer.connection->read->timedout
                || u->peer.connection->write->timedout))
        {
            ngx_http_tavus_failure(ctx, u, NGX_HTTP_GATEWAY_TIME_OUT);

        } else {
            ngx_http_tavus_failure(ctx, u, NGX_HTTP_BAD_GATEWAY);
        }

        return;
    }

    if (rc < NGX_HTTP_INTERNAL_SERVER_ERROR || rc >= 600) {
        return;
    }

    ngx_http_tavus_failure(ctx, u, rc);

    ctx->answer.status = rc;
    ctx->replace_status = rc;
}


/*
 * The outcome of a request that nginx ends with a 5xx, in the answer:
 * the last try decides.  A try that received bytes got an invalid or a
 * cut answer; one that received none was refused, reset or failed its
 * handshake, or found no live server.  u->buffer and the outcome of
 * process_answer may be those of an earlier try: nginx reinits them only
 * once a new connection is made.
 */

static void
ngx_http_tavus_failure(ngx_http_tavus_ctx_t *ctx, ngx_http_upstream_t *u,
    ngx_int_t rc)
{
    ngx_uint_t  outcome;

    if (rc == NGX_HTTP_GATEWAY_TIME_OUT) {
        outcome = NGX_HTTP_TAVUS_UPSTREAM_TIMEOUT;

    } else if (u->state && u->state->bytes_received) {
        outcome = NGX_HTTP_TAVUS_UPSTREAM_INVALID_RESPONSE;

    } else {
        outcome = NGX_HTTP_TAVUS_UPSTREAM_ERROR;

        /* and no upstream answer to count in the metrics */

        ngx_memzero(&ctx->status, sizeof(ngx_http_status_t));
    }

    ngx_http_tavus_answer_init(&ctx->answer, outcome);
}


/* what an answer's status line and headers said, before another answer */

void
ngx_http_tavus_forget_header(ngx_http_tavus_ctx_t *ctx)
{
    ngx_memzero(&ctx->status, sizeof(ngx_http_status_t));
    ctx->content_length = -1;
    ctx->chunked_body = 0;
    ctx->connection_close = 0;
    ngx_str_null(&ctx->retry_after);
}
