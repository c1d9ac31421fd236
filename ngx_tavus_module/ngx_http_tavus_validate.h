
/*
 * Copyright (C) ngx_tavus_module authors
 */


#ifndef _NGX_HTTP_TAVUS_VALIDATE_H_INCLUDED_
#define _NGX_HTTP_TAVUS_VALIDATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Pure checks of client-supplied, configured and upstream values: no
 * allocation, no event code, so that unit tests and fuzzers link this
 * file alone.
 */


#define NGX_HTTP_TAVUS_REPLICA_ID_MAX  128


ngx_int_t ngx_http_tavus_valid_replica_id(u_char *data, size_t len);
ngx_int_t ngx_http_tavus_parse_hard(u_char *data, size_t len);
ngx_int_t ngx_http_tavus_parse_switch(u_char *data, size_t len);
ngx_int_t ngx_http_tavus_parse_dry_run(u_char *data, size_t len);
ngx_int_t ngx_http_tavus_valid_key(u_char *data, size_t len);
ngx_int_t ngx_http_tavus_key_variable(u_char *data, size_t len,
    ngx_str_t *name);
u_char *ngx_http_tavus_numbered_capture(u_char *data, size_t len);
ngx_int_t ngx_http_tavus_parse_host(u_char *data, size_t len,
    ngx_uint_t variables, ngx_str_t *host);
ngx_int_t ngx_http_tavus_valid_status_line(u_char *p, size_t len);
ngx_int_t ngx_http_tavus_valid_token(u_char *p, size_t len);
ngx_int_t ngx_http_tavus_valid_field_value(u_char *p, size_t len);


#endif /* _NGX_HTTP_TAVUS_VALIDATE_H_INCLUDED_ */
