
/*
 * Copyright (C) ngx_tavus_module authors
 */


#ifndef _NGX_HTTP_TAVUS_JSON_H_INCLUDED_
#define _NGX_HTTP_TAVUS_JSON_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_outcome.h"


/*
 * The JSON body of an answer, written without a library: the members in
 * a fixed order, strings escaped.  Pure: no event code, no pool.
 *
 * The replica id must be a validated one ([A-Za-z0-9_-]) or NULL, and the
 * request id hex digits: both go into the body as they are.  The message
 * is escaped.
 */


size_t ngx_http_tavus_json_length(ngx_http_tavus_answer_t *a,
    ngx_str_t *replica_id, ngx_str_t *request_id);
u_char *ngx_http_tavus_json_write(u_char *p, ngx_http_tavus_answer_t *a,
    ngx_str_t *replica_id, ngx_uint_t hard, ngx_str_t *request_id);

#endif /* _NGX_HTTP_TAVUS_JSON_H_INCLUDED_ */
