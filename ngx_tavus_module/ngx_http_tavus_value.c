
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


/*
 * The values of directives that may hold variables: compiled once, with
 * named captures only, and the switches that are "on", "off" or a value
 * judged per request.
 */


static ngx_int_t ngx_http_tavus_named_captures(ngx_conf_t *cf,
    ngx_str_t *value);


/* tavus_hard: a value with variables, with named captures only */

char *
ngx_http_tavus_set_value_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_str_t  *value;

    value = cf->args->elts;

    if (ngx_http_tavus_named_captures(cf, &value[1]) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return ngx_http_set_complex_value_slot(cf, cmd, conf);
}


/*
 * tavus_allow_hard_delete and tavus_dry_run: "on" or "off" as nginx's
 * flags are, in any case, or a value with variables judged per request
 */

char *
ngx_http_tavus_set_switch_slot(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    char  *p = conf;

    char                       *rv;
    ngx_str_t                  *value;
    ngx_http_complex_value_t  **cv;

    rv = ngx_http_tavus_set_value_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    cv = (ngx_http_complex_value_t **) (p + cmd->offset);

    if ((*cv)->lengths) {
        return NGX_CONF_OK;
    }

    value = &(*cv)->value;

    if (value->len == 2 && ngx_strncasecmp(value->data, (u_char *) "on", 2)
                           == 0)
    {
        ngx_str_set(value, "on");
        return NGX_CONF_OK;
    }

    if (value->len == 3 && ngx_strncasecmp(value->data, (u_char *) "off", 3)
                           == 0)
    {
        ngx_str_set(value, "off");
        return NGX_CONF_OK;
    }

    return "must be \"on\", \"off\" or a value with variables";
}


/*
 * What is deleted, whether a hard delete is asked or allowed, and where
 * the key goes are never taken from "$1" to "$9": any regular expression
 * with captures that matches later in the request, in an "if" or a
 * "map", replaces them (ngx_http_tavus_numbered_capture).
 */

static ngx_int_t
ngx_http_tavus_named_captures(ngx_conf_t *cf, ngx_str_t *value)
{
    u_char     *p;
    ngx_str_t  *name;

    p = ngx_http_tavus_numbered_capture(value->data, value->len);

    if (p == NULL) {
        return NGX_OK;
    }

    name = cf->args->elts;

    ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                       "\"%V\" cannot use the numbered capture \"$%c\": a "
                       "later regular expression can replace it; use a "
                       "named capture, (?<name>...)",
                       &name[0], p[1]);

    return NGX_ERROR;
}


/* a value that may contain variables, with named captures only, compiled */

ngx_http_complex_value_t *
ngx_http_tavus_compile(ngx_conf_t *cf, ngx_str_t *value)
{
    ngx_http_complex_value_t          *cv;
    ngx_http_compile_complex_value_t   ccv;

    if (ngx_http_tavus_named_captures(cf, value) != NGX_OK) {
        return NULL;
    }

    cv = ngx_palloc(cf->pool, sizeof(ngx_http_complex_value_t));
    if (cv == NULL) {
        return NULL;
    }

    ngx_memzero(&ccv, sizeof(ngx_http_compile_complex_value_t));

    ccv.cf = cf;
    ccv.value = value;
    ccv.complex_value = cv;

    if (ngx_http_compile_complex_value(&ccv) != NGX_OK) {
        return NULL;
    }

    return cv;
}
