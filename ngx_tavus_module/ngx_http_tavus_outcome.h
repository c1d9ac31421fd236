
/*
 * Copyright (C) ngx_tavus_module authors
 */


#ifndef _NGX_HTTP_TAVUS_OUTCOME_H_INCLUDED_
#define _NGX_HTTP_TAVUS_OUTCOME_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * The outcomes of a request, each with its word ($tavus_outcome, the
 * "code" of an answer), its status and its fixed message; and the answer
 * a client gets.  Pure: no event code, no pool.
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


typedef struct {
    ngx_uint_t          outcome;
    ngx_uint_t          status;
    ngx_str_t           message;
} ngx_http_tavus_answer_t;


ngx_str_t *ngx_http_tavus_outcome_name(ngx_uint_t outcome);
void ngx_http_tavus_answer_init(ngx_http_tavus_answer_t *a,
    ngx_uint_t outcome);

#endif /* _NGX_HTTP_TAVUS_OUTCOME_H_INCLUDED_ */
