
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


static ngx_int_t ngx_http_tavus_replica_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_tavus_hard_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_tavus_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);
static ngx_int_t ngx_http_tavus_fingerprint_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data);


static ngx_http_variable_t  ngx_http_tavus_vars[] = {

    { ngx_string("tavus_replica_id"), NULL,
      ngx_http_tavus_replica_id_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tavus_hard"), NULL,
      ngx_http_tavus_hard_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tavus_outcome"), NULL,
      ngx_http_tavus_outcome_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

    { ngx_string("tavus_api_key_fingerprint"), NULL,
      ngx_http_tavus_fingerprint_variable, 0,
      NGX_HTTP_VAR_NOCACHEABLE, 0 },

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


static ngx_int_t
ngx_http_tavus_replica_id_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_tavus_get_ctx(r);

    if (ctx == NULL || ctx->replica_id.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    v->len = ctx->replica_id.len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = ctx->replica_id.data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tavus_hard_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_tavus_get_ctx(r);

    if (ctx == NULL) {
        v->not_found = 1;
        return NGX_OK;
    }

    if (ctx->hard) {
        v->len = sizeof("true") - 1;
        v->data = (u_char *) "true";

    } else {
        v->len = sizeof("false") - 1;
        v->data = (u_char *) "false";
    }

    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tavus_outcome_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    ngx_str_t             *name;
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_tavus_get_ctx(r);

    if (ctx == NULL || ctx->answer.outcome == NGX_HTTP_TAVUS_OUTCOME_NONE) {
        v->not_found = 1;
        return NGX_OK;
    }

    name = ngx_http_tavus_outcome_name(ctx->answer.outcome);

    v->len = name->len;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = name->data;

    return NGX_OK;
}


static ngx_int_t
ngx_http_tavus_fingerprint_variable(ngx_http_request_t *r,
    ngx_http_variable_value_t *v, uintptr_t data)
{
    u_char                *p;
    ngx_http_tavus_ctx_t  *ctx;

    ctx = ngx_http_tavus_get_ctx(r);

    if (ctx == NULL || ctx->key.len == 0) {
        v->not_found = 1;
        return NGX_OK;
    }

    p = ngx_pnalloc(r->pool, NGX_HTTP_TAVUS_FINGERPRINT_LEN);
    if (p == NULL) {
        return NGX_ERROR;
    }

    if (ngx_http_tavus_key_fingerprint(ctx, p) != NGX_OK) {
        return NGX_ERROR;
    }

    v->len = NGX_HTTP_TAVUS_FINGERPRINT_LEN;
    v->valid = 1;
    v->no_cacheable = 1;
    v->not_found = 0;
    v->data = p;

    return NGX_OK;
}
