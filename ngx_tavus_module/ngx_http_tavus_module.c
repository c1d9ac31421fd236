
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


static ngx_int_t ngx_http_tavus_init(ngx_conf_t *cf);
static void *ngx_http_tavus_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_tavus_create_srv_conf(ngx_conf_t *cf);
static void *ngx_http_tavus_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_tavus_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child);
static char *ngx_http_tavus_init_location(ngx_conf_t *cf,
    ngx_http_tavus_loc_conf_t *conf);

static char *ngx_http_tavus_delete_replica(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static char *ngx_http_tavus_pass(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_conf_bitmask_t  ngx_http_tavus_next_upstream_masks[] = {
    { ngx_string("error"), NGX_HTTP_UPSTREAM_FT_ERROR },
    { ngx_string("timeout"), NGX_HTTP_UPSTREAM_FT_TIMEOUT },
    { ngx_string("invalid_header"), NGX_HTTP_UPSTREAM_FT_INVALID_HEADER },
    { ngx_string("invalid_response"), NGX_HTTP_UPSTREAM_FT_INVALID_HEADER },
    { ngx_string("non_idempotent"), NGX_HTTP_UPSTREAM_FT_NON_IDEMPOTENT },
    { ngx_string("http_500"), NGX_HTTP_UPSTREAM_FT_HTTP_500 },
    { ngx_string("http_502"), NGX_HTTP_UPSTREAM_FT_HTTP_502 },
    { ngx_string("http_503"), NGX_HTTP_UPSTREAM_FT_HTTP_503 },
    { ngx_string("http_504"), NGX_HTTP_UPSTREAM_FT_HTTP_504 },
    { ngx_string("http_429"), NGX_HTTP_UPSTREAM_FT_HTTP_429 },
    { ngx_string("off"), NGX_HTTP_UPSTREAM_FT_OFF },
    { ngx_null_string, 0 }
};


static ngx_command_t  ngx_http_tavus_commands[] = {

    { ngx_string("tavus_delete_replica"),
      NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_delete_replica,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tavus_pass"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_pass,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tavus_api_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_api_key,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tavus_api_key_file"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_api_key_file,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tavus_hard"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_set_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, hard),
      NULL },

    { ngx_string("tavus_allow_hard_delete"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_set_switch_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, allow_hard),
      NULL },

    { ngx_string("tavus_dry_run"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_set_switch_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, dry_run),
      NULL },

    { ngx_string("tavus_connect_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.connect_timeout),
      NULL },

    { ngx_string("tavus_send_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.send_timeout),
      NULL },

    { ngx_string("tavus_read_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.read_timeout),
      NULL },

    { ngx_string("tavus_next_upstream"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.next_upstream),
      &ngx_http_tavus_next_upstream_masks },

    { ngx_string("tavus_next_upstream_tries"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.next_upstream_tries),
      NULL },

    { ngx_string("tavus_next_upstream_timeout"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_msec_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.next_upstream_timeout),
      NULL },

    { ngx_string("tavus_ignore_client_abort"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.ignore_client_abort),
      NULL },

    { ngx_string("tavus_buffer_size"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_size_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.buffer_size),
      NULL },

#if (NGX_HTTP_SSL)

    { ngx_string("tavus_ssl_verify"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.ssl_verify),
      NULL },

    { ngx_string("tavus_ssl_verify_depth"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_num_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, ssl_verify_depth),
      NULL },

    { ngx_string("tavus_ssl_trusted_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, ssl_trusted_certificate),
      NULL },

    { ngx_string("tavus_ssl_server_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.ssl_server_name),
      NULL },

    { ngx_string("tavus_ssl_name"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_tavus_ssl_name,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.ssl_name),
      NULL },

    { ngx_string("tavus_ssl_protocols"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_1MORE,
      ngx_conf_set_bitmask_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, ssl_protocols),
      &ngx_http_tavus_ssl_protocols },

    { ngx_string("tavus_ssl_ciphers"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_conf_set_str_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, ssl_ciphers),
      NULL },

    { ngx_string("tavus_ssl_session_reuse"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_FLAG,
      ngx_conf_set_flag_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.ssl_session_reuse),
      NULL },

    { ngx_string("tavus_ssl_certificate"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_zero_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.ssl_certificate),
      NULL },

    { ngx_string("tavus_ssl_certificate_key"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_zero_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_loc_conf_t, upstream.ssl_certificate_key),
      NULL },

#endif

      ngx_null_command
};


static ngx_http_module_t  ngx_http_tavus_module_ctx = {
    ngx_http_tavus_add_variables,          /* preconfiguration */
    ngx_http_tavus_init,                   /* postconfiguration */

    ngx_http_tavus_create_main_conf,       /* create main configuration */
    NULL,                                  /* init main configuration */

    ngx_http_tavus_create_srv_conf,        /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_tavus_create_loc_conf,        /* create location configuration */
    ngx_http_tavus_merge_loc_conf          /* merge location configuration */
};


ngx_module_t  ngx_http_tavus_module = {
    NGX_MODULE_V1,
    &ngx_http_tavus_module_ctx,            /* module context */
    ngx_http_tavus_commands,               /* module directives */
    NGX_HTTP_MODULE,                       /* module type */
    NULL,                                  /* init master */
    NULL,                                  /* init module */
    NULL,                                  /* init process */
    NULL,                                  /* init thread */
    NULL,                                  /* exit thread */
    NULL,                                  /* exit process */
    NULL,                                  /* exit master */
    NGX_MODULE_V1_PADDING
};


static ngx_str_t  ngx_http_tavus_request_id = ngx_string("request_id");


static ngx_int_t
ngx_http_tavus_init(ngx_conf_t *cf)
{
    if (ngx_http_tavus_check_key_variables(cf) != NGX_OK) {
        return NGX_ERROR;
    }

    if (ngx_http_tavus_filter_init(cf) != NGX_OK) {
        return NGX_ERROR;
    }

#if (NGX_HTTP_SSL)
    if (ngx_http_tavus_peer_init_upstreams(cf) != NGX_OK) {
        return NGX_ERROR;
    }
#endif

    return NGX_OK;
}


static void *
ngx_http_tavus_create_main_conf(ngx_conf_t *cf)
{
    ngx_http_tavus_main_conf_t  *tmcf;

    tmcf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_main_conf_t));
    if (tmcf == NULL) {
        return NULL;
    }

    if (ngx_array_init(&tmcf->ssl_locations, cf->pool, 4,
                       sizeof(ngx_http_tavus_loc_conf_t *))
        != NGX_OK)
    {
        return NULL;
    }

    if (ngx_array_init(&tmcf->key_variables, cf->pool, 4,
                       sizeof(ngx_http_tavus_key_t *))
        != NGX_OK)
    {
        return NULL;
    }

    return tmcf;
}


/* in server{} blocks too, where it stays unused */

static void *
ngx_http_tavus_create_srv_conf(ngx_conf_t *cf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->original_init_peer = NULL;
     */

    return ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_srv_conf_t));
}


static void *
ngx_http_tavus_create_loc_conf(ngx_conf_t *cf)
{
    ngx_http_tavus_loc_conf_t  *conf;

    conf = ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_loc_conf_t));
    if (conf == NULL) {
        return NULL;
    }

    /*
     * set by ngx_pcalloc():
     *
     *     conf->upstream.upstream = NULL;
     *     conf->upstream.next_upstream = 0;
     *     conf->upstream.temp_path = NULL;
     *     conf->replica_id = NULL;
     *     conf->hard = NULL;
     *     conf->allow_hard = NULL;
     *     conf->dry_run = NULL;
     *     conf->headers = { 0, NULL };
     *     conf->host = { 0, NULL };
     *     conf->ssl = 0;
     *     conf->upstream.ssl = NULL;
     *     conf->ssl_protocols = 0;
     *     conf->ssl_ciphers = { 0, NULL };
     *     conf->ssl_trusted_certificate = { 0, NULL };
     */

    conf->upstream.local = NGX_CONF_UNSET_PTR;
    conf->upstream.socket_keepalive = NGX_CONF_UNSET;
    conf->upstream.ignore_client_abort = NGX_CONF_UNSET;
    conf->upstream.next_upstream_tries = NGX_CONF_UNSET_UINT;
    conf->upstream.connect_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.send_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.read_timeout = NGX_CONF_UNSET_MSEC;
    conf->upstream.next_upstream_timeout = NGX_CONF_UNSET_MSEC;

    conf->upstream.buffer_size = NGX_CONF_UNSET_SIZE;

    /* the hardcoded values */
    conf->upstream.cyclic_temp_file = 0;
    conf->upstream.buffering = 0;
    conf->upstream.send_lowat = 0;
    conf->upstream.bufs.num = 0;
    conf->upstream.busy_buffers_size = 0;
    conf->upstream.max_temp_file_size = 0;
    conf->upstream.temp_file_write_size = 0;
    conf->upstream.intercept_errors = 0;
    conf->upstream.intercept_404 = 0;
    conf->upstream.pass_request_headers = 0;
    conf->upstream.pass_request_body = 0;

    conf->key = NGX_CONF_UNSET_PTR;

#if (NGX_HTTP_SSL)
    conf->upstream.ssl_session_reuse = NGX_CONF_UNSET;
    conf->upstream.ssl_name = NGX_CONF_UNSET_PTR;
    conf->upstream.ssl_server_name = NGX_CONF_UNSET;
    conf->upstream.ssl_verify = NGX_CONF_UNSET;
    conf->upstream.ssl_certificate = NGX_CONF_UNSET_PTR;
    conf->upstream.ssl_certificate_key = NGX_CONF_UNSET_PTR;
    conf->upstream.ssl_passwords = NGX_CONF_UNSET_PTR;
    conf->ssl_verify_depth = NGX_CONF_UNSET_UINT;
#endif

    return conf;
}


static char *
ngx_http_tavus_merge_loc_conf(ngx_conf_t *cf, void *parent, void *child)
{
    ngx_http_tavus_loc_conf_t *prev = parent;
    ngx_http_tavus_loc_conf_t *conf = child;

    ngx_http_core_loc_conf_t  *clcf;

    /*
     * "if" and "limit_except" blocks are locations of their own: an "if"
     * keeps the content handler of its location, so it must keep all
     * that the handler needs; a "limit_except" gets the handler back,
     * as the proxy module does
     */

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    if (conf->replica_id == NULL && clcf->noname) {
        conf->replica_id = prev->replica_id;
        conf->location = prev->location;
        conf->file = prev->file;
        conf->line = prev->line;
    }

    if (clcf->lmt_excpt && clcf->handler == NULL && conf->replica_id) {
        clcf->handler = ngx_http_tavus_handler;
    }

    ngx_conf_merge_ptr_value(conf->upstream.local,
                              prev->upstream.local, NULL);

    ngx_conf_merge_value(conf->upstream.socket_keepalive,
                              prev->upstream.socket_keepalive, 0);

    ngx_conf_merge_value(conf->upstream.ignore_client_abort,
                              prev->upstream.ignore_client_abort, 0);

    ngx_conf_merge_uint_value(conf->upstream.next_upstream_tries,
                              prev->upstream.next_upstream_tries, 0);

    ngx_conf_merge_msec_value(conf->upstream.connect_timeout,
                              prev->upstream.connect_timeout, 10000);

    ngx_conf_merge_msec_value(conf->upstream.send_timeout,
                              prev->upstream.send_timeout, 30000);

    ngx_conf_merge_msec_value(conf->upstream.read_timeout,
                              prev->upstream.read_timeout, 30000);

    ngx_conf_merge_msec_value(conf->upstream.next_upstream_timeout,
                              prev->upstream.next_upstream_timeout, 0);

    ngx_conf_merge_size_value(conf->upstream.buffer_size,
                              prev->upstream.buffer_size,
                              (size_t) ngx_pagesize);

    ngx_conf_merge_bitmask_value(conf->upstream.next_upstream,
                              prev->upstream.next_upstream,
                              (NGX_CONF_BITMASK_SET
                               |NGX_HTTP_UPSTREAM_FT_ERROR
                               |NGX_HTTP_UPSTREAM_FT_TIMEOUT));

    if (conf->upstream.next_upstream & NGX_HTTP_UPSTREAM_FT_OFF) {
        conf->upstream.next_upstream = NGX_CONF_BITMASK_SET
                                       |NGX_HTTP_UPSTREAM_FT_OFF;
    }

    if (conf->upstream.upstream == NULL && conf->pass == NULL) {
        conf->upstream.upstream = prev->upstream.upstream;
        conf->pass = prev->pass;
        conf->default_port = prev->default_port;
        conf->host = prev->host;
        conf->ssl = prev->ssl;
    }

    ngx_conf_merge_ptr_value(conf->key, prev->key, NULL);

    if (conf->hard == NULL) {
        conf->hard = prev->hard;
    }

    if (conf->allow_hard == NULL) {
        conf->allow_hard = prev->allow_hard;
    }

    if (conf->dry_run == NULL) {
        conf->dry_run = prev->dry_run;
    }

#if (NGX_HTTP_SSL)
    ngx_http_tavus_ssl_merge_conf(conf, prev);
#endif

    if (conf->replica_id == NULL) {
        return NGX_CONF_OK;
    }

    return ngx_http_tavus_init_location(cf, conf);
}


/*
 * A location with tavus_delete_replica, once merged: what it needs must
 * be in scope, and what is the same for every request is made now.
 * Merging happens at the end of http{}, so the messages name the location
 * and the place of its tavus_delete_replica themselves.
 */

static char *
ngx_http_tavus_init_location(ngx_conf_t *cf, ngx_http_tavus_loc_conf_t *conf)
{
    const char  *missing;

    missing = NULL;

    if (conf->upstream.upstream == NULL && conf->pass == NULL) {
        missing = "\"tavus_pass\"";

    } else if (conf->key == NULL) {
        missing = "\"tavus_api_key\" or \"tavus_api_key_file\"";

#if !(NGX_HTTP_SSL)
    } else if (conf->ssl) {
        missing = "nginx built with the ngx_http_ssl_module for \"https://\"";
#endif
    }

    if (missing) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"tavus_delete_replica\" in location \"%V\" requires "
                      "%s in %s:%ui",
                      &conf->location, missing, conf->file, conf->line);
        return NGX_CONF_ERROR;
    }

#if (NGX_HTTP_SSL)
    if (conf->ssl && ngx_http_tavus_ssl_init_location(cf, conf) != NGX_OK) {
        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "TLS of location \"%V\" cannot be set up (the reason "
                      "is above) in %s:%ui",
                      &conf->location, conf->file, conf->line);
        return NGX_CONF_ERROR;
    }
#endif

    conf->request_id_index = ngx_http_get_variable_index(cf,
                                                   &ngx_http_tavus_request_id);
    if (conf->request_id_index == NGX_ERROR) {
        return NGX_CONF_ERROR;
    }

    if (ngx_http_tavus_prepare_request(cf, conf) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tavus_delete_replica(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tavus_loc_conf_t *tlcf = conf;

    ngx_str_t                 *value;
    ngx_http_core_loc_conf_t  *clcf;

    if (tlcf->replica_id) {
        return "is duplicate";
    }

    value = cf->args->elts;

    tlcf->replica_id = ngx_http_tavus_compile(cf, &value[1]);
    if (tlcf->replica_id == NULL) {
        return NGX_CONF_ERROR;
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = ngx_http_tavus_handler;

    tlcf->location = clcf->name;
    tlcf->file = cf->conf_file->file.name.data;
    tlcf->line = cf->conf_file->line;

    return NGX_CONF_OK;
}


static char *
ngx_http_tavus_pass(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tavus_loc_conf_t *tlcf = conf;

    size_t       add;
    in_port_t    port;
    ngx_int_t    rc;
    ngx_uint_t   n;
    ngx_str_t   *value, url;
    ngx_url_t    u;

    if (tlcf->upstream.upstream || tlcf->pass) {
        return "is duplicate";
    }

    value = cf->args->elts;
    url = value[1];

    if (ngx_strncasecmp(url.data, (u_char *) "http://", 7) == 0) {
        add = 7;
        port = 80;

    } else if (ngx_strncasecmp(url.data, (u_char *) "https://", 8) == 0) {
        add = 8;
        port = 443;
        tlcf->ssl = 1;

    } else {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tavus_pass\" URL must start with \"http://\" "
                           "or \"https://\"");
        return NGX_CONF_ERROR;
    }

    url.data += add;
    url.len -= add;

    n = ngx_http_script_variables_count(&url);

    rc = ngx_http_tavus_parse_host(url.data, url.len, n, &url);

    if (rc == NGX_DECLINED) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tavus_pass\" URL must not have a path, "
                           "a query or a fragment");
        return NGX_CONF_ERROR;
    }

    if (rc != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tavus_pass\" URL has no valid host[:port]: "
                           "letters, digits, \".\", \"-\", \"_\", \":\", "
                           "\"[\" and \"]\" only");
        return NGX_CONF_ERROR;
    }

    tlcf->default_port = port;

    if (n) {

        /* the scheme is literal: TLS is set up at configuration time */

        tlcf->pass = ngx_http_tavus_compile(cf, &url);
        if (tlcf->pass == NULL) {
            return NGX_CONF_ERROR;
        }

        return NGX_CONF_OK;
    }

    ngx_memzero(&u, sizeof(ngx_url_t));

    u.url = url;
    u.default_port = port;
    u.no_resolve = 1;

    tlcf->upstream.upstream = ngx_http_upstream_add(cf, &u, 0);
    if (tlcf->upstream.upstream == NULL) {
        return NGX_CONF_ERROR;
    }

    tlcf->host = url;

    return NGX_CONF_OK;
}
