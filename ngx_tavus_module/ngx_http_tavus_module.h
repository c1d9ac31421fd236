
/*
 * Copyright (C) ngx_tavus_module authors
 */


#ifndef _NGX_HTTP_TAVUS_MODULE_H_INCLUDED_
#define _NGX_HTTP_TAVUS_MODULE_H_INCLUDED_


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_outcome.h"
#include "ngx_http_tavus_translate.h"
#include "ngx_http_tavus_json.h"
#include "ngx_http_tavus_text.h"
#include "ngx_http_tavus_validate.h"


#define NGX_HTTP_TAVUS_FINGERPRINT_LEN  16


typedef struct {
    /* exactly one of the two */
    ngx_str_t                    value;
    ngx_http_complex_value_t    *complex;

    u_char                       fingerprint[NGX_HTTP_TAVUS_FINGERPRINT_LEN];
    const char                  *directive;

    /* a variable's name, checked once all are defined, and where it is */
    ngx_str_t                    variable;
    u_char                      *file;
    ngx_uint_t                   line;
} ngx_http_tavus_key_t;


typedef struct {
    /* locations that delete over TLS, one a distinct SSL context */
    ngx_array_t                  ssl_locations;

    /* tavus_api_key with a variable: ngx_http_tavus_key_t * */
    ngx_array_t                  key_variables;
} ngx_http_tavus_main_conf_t;


typedef struct {
    /* an upstream{} group's own, wrapped when a location deletes over TLS */
    ngx_http_upstream_init_peer_pt   original_init_peer;
} ngx_http_tavus_srv_conf_t;


#if (NGX_HTTP_SSL)

#define NGX_HTTP_TAVUS_SSL_ID_LEN    SSL_MAX_SID_CTX_LENGTH
#define NGX_HTTP_TAVUS_SSL_SESSIONS  16
#define NGX_HTTP_TAVUS_SSL_NAME_MAX  255


/* a session for a server address and the name it was verified for */

typedef struct {
    ngx_queue_t                      queue;
    ngx_ssl_session_t               *session;
    socklen_t                        socklen;
    ngx_sockaddr_t                   sockaddr;
    size_t                           name_len;
    u_char                           name[NGX_HTTP_TAVUS_SSL_NAME_MAX];
} ngx_http_tavus_ssl_session_t;


typedef struct {
    /* first: the upstream code sees an ngx_ssl_t */
    ngx_ssl_t                        ssl;

    /* the session id context of the sessions it makes */
    u_char                           id[NGX_HTTP_TAVUS_SSL_ID_LEN];

    /* a worker's sessions of this context, by server, most recent first */
    ngx_queue_t                      sessions;
    ngx_queue_t                      free;
} ngx_http_tavus_ssl_t;


/* a delete's peer callbacks around the group's, as keepalive wraps them */

typedef struct {
    ngx_http_tavus_ssl_t            *ssl;
    ngx_http_request_t              *request;

    void                            *data;
    ngx_event_get_peer_pt            original_get_peer;
    ngx_event_free_peer_pt           original_free_peer;
    ngx_event_notify_peer_pt         original_notify;
    ngx_event_set_peer_session_pt    original_set_session;
    ngx_event_save_peer_session_pt   original_save_session;
} ngx_http_tavus_peer_t;

#endif


typedef struct {
    ngx_http_upstream_conf_t     upstream;

    ngx_http_complex_value_t    *replica_id;

    /* where tavus_delete_replica is, for the messages about the location */
    ngx_str_t                    location;
    u_char                      *file;
    ngx_uint_t                   line;

    ngx_http_complex_value_t    *hard;
    ngx_http_complex_value_t    *allow_hard;
    ngx_http_complex_value_t    *dry_run;

    ngx_http_tavus_key_t        *key;
    ngx_int_t                    request_id_index;

    /* tavus_pass with variables: host[:port], resolved per request */
    ngx_http_complex_value_t    *pass;
    in_port_t                    default_port;

    /* " HTTP/1.1" CRLF "Host: ..." CRLF "x-api-key: ", when static */
    ngx_str_t                    headers;
    ngx_str_t                    host;
    ngx_uint_t                   ssl;

#if (NGX_HTTP_SSL)
    ngx_uint_t                   ssl_protocols;
    ngx_str_t                    ssl_ciphers;
    ngx_uint_t                   ssl_verify_depth;
    ngx_str_t                    ssl_trusted_certificate;
#endif
} ngx_http_tavus_loc_conf_t;


typedef struct {
    ngx_http_request_t          *request;

    ngx_str_t                    replica_id;
    ngx_str_t                    key;
    ngx_http_tavus_key_t        *key_conf;
    ngx_str_t                    host;
    ngx_uint_t                   hard;

    /* what the client gets, once decided */
    ngx_http_tavus_answer_t      answer;
    ngx_chain_t                 *out;

    /* an error nginx answers itself, whose body is replaced */
    ngx_uint_t                   replace_status;

    /* the upstream answer, read whole by the process_* callbacks */
    ngx_http_status_t            status;
    u_char                      *line_start;
    ngx_http_chunked_t           chunked;
    off_t                        content_length;
    u_char                      *body_start;
    u_char                      *body_last;
    ngx_str_t                    retry_after;
    unsigned                     chunked_body:1;
    unsigned                     connection_close:1;

    unsigned                     headers_set:1;
    unsigned                     replace_body:1;
    unsigned                     queued:1;

    /* a body still arriving: see ngx_http_tavus_keep_discarding() */
    ngx_event_t                  discarding;
    ngx_http_event_handler_pt    upstream_read_handler;

#if (NGX_HTTP_SSL)
    ngx_http_tavus_peer_t        peer;
#endif
} ngx_http_tavus_ctx_t;


ngx_http_complex_value_t *ngx_http_tavus_compile(ngx_conf_t *cf,
    ngx_str_t *value);
char *ngx_http_tavus_set_value_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
char *ngx_http_tavus_set_switch_slot(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_tavus_add_variables(ngx_conf_t *cf);

char *ngx_http_tavus_api_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf);
char *ngx_http_tavus_api_key_file(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
ngx_int_t ngx_http_tavus_check_key_variables(ngx_conf_t *cf);
ngx_int_t ngx_http_tavus_eval_key(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx);
ngx_int_t ngx_http_tavus_fingerprint(u_char *dst, u_char *data, size_t len);
u_char *ngx_http_tavus_key_fingerprint(ngx_pool_t *pool,
    ngx_http_tavus_ctx_t *ctx);

ngx_int_t ngx_http_tavus_handler(ngx_http_request_t *r);
ngx_http_tavus_ctx_t *ngx_http_tavus_get_ctx(ngx_http_request_t *r);
ngx_int_t ngx_http_tavus_send_answer(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx, ngx_http_tavus_answer_t *a);
ngx_chain_t *ngx_http_tavus_answer_body(ngx_http_request_t *r,
    ngx_http_tavus_ctx_t *ctx, ngx_http_tavus_answer_t *a);
ngx_int_t ngx_http_tavus_filter_init(ngx_conf_t *cf);

#if (NGX_HTTP_SSL)
void ngx_http_tavus_ssl_merge_conf(ngx_http_tavus_loc_conf_t *conf,
    ngx_http_tavus_loc_conf_t *prev);
ngx_int_t ngx_http_tavus_ssl_init_location(ngx_conf_t *cf,
    ngx_http_tavus_loc_conf_t *tlcf);
ngx_int_t ngx_http_tavus_peer_init_upstreams(ngx_conf_t *cf);
ngx_int_t ngx_http_tavus_peer_init_sessions(ngx_conf_t *cf,
    ngx_http_tavus_ssl_t *tssl, ngx_flag_t reuse);
char *ngx_http_tavus_ssl_name(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
#endif

ngx_int_t ngx_http_tavus_prepare_request(ngx_conf_t *cf,
    ngx_http_tavus_loc_conf_t *conf);
ngx_int_t ngx_http_tavus_create_request(ngx_http_request_t *r);
ngx_int_t ngx_http_tavus_reinit_request(ngx_http_request_t *r);

ngx_int_t ngx_http_tavus_process_status_line(ngx_http_request_t *r);
ngx_int_t ngx_http_tavus_input_filter_init(void *data);
ngx_int_t ngx_http_tavus_input_filter(void *data, ssize_t bytes);
void ngx_http_tavus_abort_request(ngx_http_request_t *r);
void ngx_http_tavus_finalize_request(ngx_http_request_t *r, ngx_int_t rc);
void ngx_http_tavus_forget_header(ngx_http_tavus_ctx_t *ctx);


extern ngx_module_t  ngx_http_tavus_module;

#if (NGX_HTTP_SSL)
extern ngx_conf_bitmask_t  ngx_http_tavus_ssl_protocols[];
#endif


#endif /* _NGX_HTTP_TAVUS_MODULE_H_INCLUDED_ */
