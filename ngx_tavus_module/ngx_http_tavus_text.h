
/*
 * Copyright (C) ngx_tavus_module authors
 */


#ifndef _NGX_HTTP_TAVUS_TEXT_H_INCLUDED_
#define _NGX_HTTP_TAVUS_TEXT_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>


/*
 * Text that comes from outside: a search for the key in it, UTF-8 repair
 * and cutting (messages, metrics labels), and escaping for the error log.
 * Pure: no event code, no pool.
 */


#define NGX_HTTP_TAVUS_LOG_ESCAPE(len)  (4 * (len))


ngx_uint_t ngx_http_tavus_contains(u_char *s, size_t len, ngx_str_t *what);
size_t ngx_http_tavus_utf8_clean(u_char *dst, u_char *src, size_t len,
    size_t max);
size_t ngx_http_tavus_log_escape(u_char *dst, u_char *src, size_t len);

#endif /* _NGX_HTTP_TAVUS_TEXT_H_INCLUDED_ */
