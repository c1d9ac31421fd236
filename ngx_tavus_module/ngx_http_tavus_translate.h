
/*
 * Copyright (C) ngx_tavus_module authors
 */


#ifndef _NGX_HTTP_TAVUS_TRANSLATE_H_INCLUDED_
#define _NGX_HTTP_TAVUS_TRANSLATE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_outcome.h"


/*
 * An upstream answer, its status and body, translated into the client's
 * answer, with the upstream's message where it is passed on.  Pure, with
 * libcjson.
 */


/* the most of an upstream message that is passed on, in bytes */
#define NGX_HTTP_TAVUS_MESSAGE_MAX  512


void ngx_http_tavus_translate(ngx_http_tavus_answer_t *a,
    ngx_uint_t status, u_char *body, size_t len, ngx_str_t *key,
    u_char *buf);
ngx_int_t ngx_http_tavus_upstream_message(u_char *body, size_t len,
    ngx_str_t *key, u_char *buf, ngx_str_t *message);

#endif /* _NGX_HTTP_TAVUS_TRANSLATE_H_INCLUDED_ */
