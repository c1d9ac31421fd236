
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


/*
 * The $tavus_* variables, for logs and for the configuration: the values
 * of the request's own delete (ngx_http_tavus_get_ctx), never cached,
 * never the key.
 */


#define NGX_HTTP_TAVUS_VAR_REPLICA_ID   0
#define NGX_HTTP_TAVUS_VAR_HARD         1
#define NGX_HTTP_TAVUS_VAR_OUTCOME      2
#define NGX_HTTP_TAVUS_VAR_FINGERPRINT  3


static ngx_int_t ngx_http_tavus_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_tavus_vars[] = {

    { ngx_string("tavus_replica_id"), NULL, ngx_http_tavus_variable,
      NGX_HTTP_TAVUS_VAR_REPLICA_ID, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tavus_hard"), NULL, ngx_http_tavus_variable,
      NGX_HTTP_TAVUS_VAR_HARD, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tavus_outcome"), NULL, ngx_http_tavus_variable,
      NGX_HTTP_TAVUS_VAR_OUTCOME, NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tavus_api_key_fingerprint"), NULL, ngx_http_tavus_variable,
      NGX_HTTP_TAVUS_VAR_FINGERPRINT, NGX_HTTP_VAR_NOCACHEABLE, 0 },

      ngx_http_null_variable
};


ngx_int_t
ngx_http_tavus_add_variables(ngx_conf_t *cf)
{
    ngx_http_variable_t  *var, *v;

    for (v = ngx_http_tavus_vars; v->name.len; v++) {
        var = ngx_http_add_variable(cf, &v->name, v->flags);
        if (var == NULL) {
            return NGX_ERROR;
        }

        var->get_handler = v->get_handler;
        var->data = v->data;
    }

    return NGX_OK;
}


/* a variable is not found until the request has a value for it */

static ngx_int_t
ngx_http_tavus_variable(ngx_http_request_t *r, ngx_http_variable_value_t *v,
    uintptr_t data)
{
    ngx_str_t              value;
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_tavus_get_ctx(r);

    if (ctx == NULL) {
        goto not_found;
    }

    switch (data) {

    case NGX_HTTP_TAVUS_VAR_REPLICA_ID:
        value = ctx->replica_id;
        break;

    case NGX_HTTP_TAVUS_VAR_HARD:
        if (ctx->hard) {
            ngx_str_set(&value, "true");

        } else {
            ngx_str_set(&value, "false");
        }

        break;

    case NGX_HTTP_TAVUS_VAR_OUTCOME:
        if (ctx->answer.outcome == NGX_HTTP_TAVUS_OUTCOME_NONE) {
            goto not_found;
        }

        value = *ngx_http_tavus_outcome_name(ctx->answer.outcome);
        break;

    default: /* NGX_HTTP_TAVUS_VAR_FINGERPRINT */

        if (ctx->key.len == 0) {
            goto not_found;
        }

        value.len = NGX_HTTP_TAVUS_FINGERPRINT_LEN;
        value.data = ngx_http_tavus_key_fingerprint(r->pool, ctx);
        if (value.data == NULL) {
            return NGX_ERROR;
        }
    }

    if (value.len == 0) {
        goto not_found;
    }

    v->len = value.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = value.data;

    return NGX_OK;

not_found:

    v->not_found = 1;

    return NGX_OK;
}
