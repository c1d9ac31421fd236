
/*
 * Copyright (C) ngx_tavus_module authors
 */


#ifndef _NGX_HTTP_TAVUS_JSON_H_INCLUDED_
#define _NGX_HTTP_TAVUS_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Pure translation of an upstream answer into the client's answer, and
 * the JSON bodies the client gets: no event code, no pool; unit tests
 * and fuzzers link this file alone with libcjson.
 */


#define NGX_HTTP_TAVUS_DELETED                    0
#define NGX_HTTP_TAVUS_INVALID_REPLICA_ID         1
#define NGX_HTTP_TAVUS_INVALID_HARD               2
#define NGX_HTTP_TAVUS_HARD_DELETE_DENIED         3
#define NGX_HTTP_TAVUS_METHOD_NOT_ALLOWED         4
#define NGX_HTTP_TAVUS_NOT_FOUND                  5
#define NGX_HTTP_TAVUS_RATE_LIMITED               6
#define NGX_HTTP_TAVUS_UPSTREAM_REJECTED_KEY      7
#define NGX_HTTP_TAVUS_UPSTREAM_CLIENT_ERROR      8
#define NGX_HTTP_TAVUS_UPSTREAM_ERROR             9
#define NGX_HTTP_TAVUS_UPSTREAM_TIMEOUT           10
#define NGX_HTTP_TAVUS_UPSTREAM_INVALID_RESPONSE  11
#define NGX_HTTP_TAVUS_GATEWAY_MISCONFIGURED      12
#define NGX_HTTP_TAVUS_DRY_RUN                    13
#define NGX_HTTP_TAVUS_OUTCOME_NONE               14


/* the most of an upstream message that is passed on, in bytes */
#define NGX_HTTP_TAVUS_MESSAGE_MAX                512


typedef struct {
    ngx_uint_t          outcome;
    ngx_uint_t          status;
    ngx_str_t           message;
} ngx_http_tavus_answer_t;


ngx_str_t *ngx_http_tavus_outcome_name(ngx_uint_t outcome);
void ngx_http_tavus_answer_init(ngx_http_tavus_answer_t *a,
    ngx_uint_t outcome);
void ngx_http_tavus_translate(ngx_http_tavus_answer_t *a,
    ngx_uint_t status, u_char *body, size_t len, ngx_str_t *key,
    u_char *buf);
ngx_int_t ngx_http_tavus_upstream_message(u_char *body, size_t len,
    ngx_str_t *key, u_char *buf, ngx_str_t *message);
ngx_uint_t ngx_http_tavus_contains(u_char *s, size_t len, ngx_str_t *what);
size_t ngx_http_tavus_utf8_clean(u_char *dst, u_char *src, size_t len,
    size_t max);

#define NGX_HTTP_TAVUS_LOG_ESCAPE(len)  (4 * (len))

size_t ngx_http_tavus_log_escape(u_char *dst, u_char *src, size_t len);

/*
 * The replica id must be a validated one ([A-Za-z0-9_-]) or NULL, and the
 * request id hex digits: both go into the body as they are.  The message
 * is escaped.
 */

size_t ngx_http_tavus_json_length(ngx_http_tavus_answer_t *a,
    ngx_str_t *replica_id, ngx_str_t *request_id);
u_char *ngx_http_tavus_json_write(u_char *p, ngx_http_tavus_answer_t *a,
    ngx_str_t *replica_id, ngx_uint_t hard, ngx_str_t *request_id);


#endif /* _NGX_HTTP_TAVUS_JSON_H_INCLUDED_ */
