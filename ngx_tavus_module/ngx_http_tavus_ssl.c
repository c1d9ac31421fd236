
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


/*
 * TLS towards the upstream, as the proxy module sets it up, but failing
 * closed: the certificate and the host name are verified unless the
 * operator turns tavus_ssl_verify off, against the system's CA store
 * (OpenSSL's default paths) unless tavus_ssl_trusted_certificate names
 * a file.  nginx checks the result after the handshake and closes the
 * connection before a byte of the request, and so the key, is sent.
 * Which connections and sessions a delete may use is in
 * ngx_http_tavus_peer.c.
 */


#if (NGX_HTTP_SSL)

#include <openssl/rand.h>


static ngx_uint_t ngx_http_tavus_same_ssl(ngx_http_tavus_loc_conf_t *a,
    ngx_http_tavus_loc_conf_t *b);
static ngx_uint_t ngx_http_tavus_same_value(ngx_http_complex_value_t *a,
    ngx_http_complex_value_t *b);
static ngx_int_t ngx_http_tavus_set_ssl(ngx_conf_t *cf,
    ngx_http_tavus_loc_conf_t *tlcf);


ngx_conf_bitmask_t  ngx_http_tavus_ssl_protocols[] = {
    { ngx_string("TLSv1"), NGX_SSL_TLSv1 },
    { ngx_string("TLSv1.1"), NGX_SSL_TLSv1_1 },
    { ngx_string("TLSv1.2"), NGX_SSL_TLSv1_2 },
    { ngx_string("TLSv1.3"), NGX_SSL_TLSv1_3 },
    { ngx_null_string, 0 }
};


void
ngx_http_tavus_ssl_merge_conf(ngx_http_tavus_loc_conf_t *conf,
    ngx_http_tavus_loc_conf_t *prev)
{
    ngx_conf_merge_value(conf->upstream.ssl_session_reuse,
                              prev->upstream.ssl_session_reuse, 1);

    ngx_conf_merge_bitmask_value(conf->ssl_protocols, prev->ssl_protocols,
                                 (NGX_CONF_BITMASK_SET|NGX_SSL_TLSv1_2
                                  |NGX_SSL_TLSv1_3));

    ngx_conf_merge_str_value(conf->ssl_ciphers, prev->ssl_ciphers,
                             "DEFAULT");

    ngx_conf_merge_ptr_value(conf->upstream.ssl_name,
                              prev->upstream.ssl_name, NULL);
    ngx_conf_merge_value(conf->upstream.ssl_server_name,
                              prev->upstream.ssl_server_name, 1);
    ngx_conf_merge_value(conf->upstream.ssl_verify,
                              prev->upstream.ssl_verify, 1);
    ngx_conf_merge_uint_value(conf->ssl_verify_depth,
                              prev->ssl_verify_depth, 4);
    ngx_conf_merge_str_value(conf->ssl_trusted_certificate,
                              prev->ssl_trusted_certificate, "");

    ngx_conf_merge_ptr_value(conf->upstream.ssl_certificate,
                              prev->upstream.ssl_certificate, NULL);
    ngx_conf_merge_ptr_value(conf->upstream.ssl_certificate_key,
                              prev->upstream.ssl_certificate_key, NULL);
    ngx_conf_merge_ptr_value(conf->upstream.ssl_passwords,
                              prev->upstream.ssl_passwords, NULL);
}


/*
 * tavus_ssl_name: a literal name, so that every connection and session
 * of a context and a group is verified for the same one
 */

char *
ngx_http_tavus_ssl_name(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tavus_loc_conf_t *tlcf = conf;

    char  *rv;

    rv = ngx_http_set_complex_value_slot(cf, cmd, conf);

    if (rv != NGX_CONF_OK) {
        return rv;
    }

    if (tlcf->upstream.ssl_name->lengths) {
        return "cannot have variables: a delete's connections and sessions "
               "are verified for one name";
    }

    return NGX_CONF_OK;
}


/*
 * The SSL context of a location that deletes over TLS.  Locations with
 * the same tavus_ssl_* settings share one, and so their connections and
 * sessions; with other settings, a location has a context of its own,
 * whatever group it uses.
 */

ngx_int_t
ngx_http_tavus_ssl_init_location(ngx_conf_t *cf,
    ngx_http_tavus_loc_conf_t *tlcf)
{
    ngx_uint_t                   i;
    ngx_http_tavus_loc_conf_t  **other, **slot;
    ngx_http_tavus_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tavus_module);

    other = tmcf->ssl_locations.elts;

    for (i = 0; i < tmcf->ssl_locations.nelts; i++) {

        if (ngx_http_tavus_same_ssl(other[i], tlcf)) {
            tlcf->upstream.ssl = other[i]->upstream.ssl;
            tlcf->upstream.ssl_passwords = other[i]->upstream.ssl_passwords;

            return NGX_OK;
        }
    }

    if (ngx_http_tavus_set_ssl(cf, tlcf) != NGX_OK) {
        return NGX_ERROR;
    }

    slot = ngx_array_push(&tmcf->ssl_locations);
    if (slot == NULL) {
        return NGX_ERROR;
    }

    *slot = tlcf;

    return NGX_OK;
}


static ngx_uint_t
ngx_http_tavus_same_ssl(ngx_http_tavus_loc_conf_t *a,
    ngx_http_tavus_loc_conf_t *b)
{
    return a->upstream.ssl_verify == b->upstream.ssl_verify
           && a->upstream.ssl_server_name == b->upstream.ssl_server_name
           && a->upstream.ssl_session_reuse == b->upstream.ssl_session_reuse
           && a->ssl_protocols == b->ssl_protocols
           && a->ssl_verify_depth == b->ssl_verify_depth
           && a->ssl_ciphers.len == b->ssl_ciphers.len
           && ngx_strncmp(a->ssl_ciphers.data, b->ssl_ciphers.data,
                          a->ssl_ciphers.len) == 0
           && a->ssl_trusted_certificate.len == b->ssl_trusted_certificate.len
           && ngx_strncmp(a->ssl_trusted_certificate.data,
                          b->ssl_trusted_certificate.data,
                          a->ssl_trusted_certificate.len) == 0
           && ngx_http_tavus_same_value(a->upstream.ssl_name,
                                        b->upstream.ssl_name)
           && ngx_http_tavus_same_value(a->upstream.ssl_certificate,
                                        b->upstream.ssl_certificate)
           && ngx_http_tavus_same_value(a->upstream.ssl_certificate_key,
                                        b->upstream.ssl_certificate_key);
}


static ngx_uint_t
ngx_http_tavus_same_value(ngx_http_complex_value_t *a,
    ngx_http_complex_value_t *b)
{
    if (a == NULL || b == NULL) {
        return a == b;
    }

    return a->value.len == b->value.len
           && ngx_strncmp(a->value.data, b->value.data, a->value.len) == 0;
}


static ngx_int_t
ngx_http_tavus_set_ssl(ngx_conf_t *cf, ngx_http_tavus_loc_conf_t *tlcf)
{
    ngx_ssl_t             *ssl;
    ngx_pool_cleanup_t    *cln;
    ngx_http_tavus_ssl_t  *tssl;

    tssl = ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_ssl_t));
    if (tssl == NULL) {
        return NGX_ERROR;
    }

    ssl = &tssl->ssl;
    ssl->log = cf->log;
    tlcf->upstream.ssl = ssl;

    if (ngx_ssl_create(ssl, tlcf->ssl_protocols, NULL) != NGX_OK) {
        return NGX_ERROR;
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        ngx_ssl_cleanup_ctx(ssl);
        return NGX_ERROR;
    }

    cln->handler = ngx_ssl_cleanup_ctx;
    cln->data = ssl;

    if (ngx_ssl_ciphers(cf, ssl, &tlcf->ssl_ciphers, 0) != NGX_OK) {
        return NGX_ERROR;
    }

    if (tlcf->upstream.ssl_certificate) {

        if (tlcf->upstream.ssl_certificate_key == NULL) {
            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "no \"tavus_ssl_certificate_key\" is defined "
                          "for certificate \"%V\"",
                          &tlcf->upstream.ssl_certificate->value);
            return NGX_ERROR;
        }

        if (tlcf->upstream.ssl_certificate->lengths
            || tlcf->upstream.ssl_certificate_key->lengths)
        {
            tlcf->upstream.ssl_passwords =
                  ngx_ssl_preserve_passwords(cf, tlcf->upstream.ssl_passwords);
            if (tlcf->upstream.ssl_passwords == NULL) {
                return NGX_ERROR;
            }

        } else if (ngx_ssl_certificate(cf, ssl,
                                   &tlcf->upstream.ssl_certificate->value,
                                   &tlcf->upstream.ssl_certificate_key->value,
                                   tlcf->upstream.ssl_passwords)
                   != NGX_OK)
        {
            return NGX_ERROR;
        }
    }

    if (tlcf->upstream.ssl_verify) {

        if (tlcf->ssl_trusted_certificate.len) {
            if (ngx_ssl_trusted_certificate(cf, ssl,
                                            &tlcf->ssl_trusted_certificate,
                                            tlcf->ssl_verify_depth)
                != NGX_OK)
            {
                return NGX_ERROR;
            }

        } else {
            SSL_CTX_set_verify_depth(ssl->ctx, tlcf->ssl_verify_depth);

            if (SSL_CTX_set_default_verify_paths(ssl->ctx) != 1) {
                ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                              "SSL_CTX_set_default_verify_paths() failed");
                return NGX_ERROR;
            }
        }
    }

    if (ngx_ssl_client_session_cache(cf, ssl,
                                     tlcf->upstream.ssl_session_reuse)
        != NGX_OK)
    {
        return NGX_ERROR;
    }

    /* the mark of the sessions this context makes, and their slots */

    if (RAND_bytes(tssl->id, NGX_HTTP_TAVUS_SSL_ID_LEN) != 1) {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0, "RAND_bytes() failed");
        return NGX_ERROR;
    }

    if (SSL_CTX_set_session_id_context(ssl->ctx, tssl->id,
                                       NGX_HTTP_TAVUS_SSL_ID_LEN)
        != 1)
    {
        ngx_ssl_error(NGX_LOG_EMERG, cf->log, 0,
                      "SSL_CTX_set_session_id_context() failed");
        return NGX_ERROR;
    }

    return ngx_http_tavus_peer_init_sessions(cf, tssl,
                                             tlcf->upstream.ssl_session_reuse);
}

#endif
