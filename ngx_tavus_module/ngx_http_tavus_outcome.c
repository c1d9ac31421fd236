
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_outcome.h"


typedef struct {
    ngx_str_t           name;
    ngx_uint_t          status;
    ngx_str_t           message;
} ngx_http_tavus_outcome_t;


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
