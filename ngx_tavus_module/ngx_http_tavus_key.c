
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include <openssl/evp.h>
#include "ngx_http_tavus_module.h"


/*
 * The API key: tavus_api_key and tavus_api_key_file, the checks of a key
 * at configuration time and per request, and its fingerprint.  No message
 * holds the key or a part of it: they name the directive, the file or
 * the place.
 */


#define NGX_HTTP_TAVUS_KEY_FILE_MAX  4096


static char *ngx_http_tavus_key_add(ngx_conf_t *cf,
    ngx_http_tavus_loc_conf_t *tlcf, const char *directive,
    ngx_http_tavus_key_t **keyp);
static char *ngx_http_tavus_key_check(ngx_conf_t *cf,
    ngx_http_tavus_key_t *key);
static const char *ngx_http_tavus_key_invalid(u_char *data, size_t len);
static ngx_uint_t ngx_http_tavus_variable_defined(ngx_conf_t *cf,
    ngx_str_t *name);


char *
ngx_http_tavus_api_key(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tavus_loc_conf_t *tlcf = conf;

    char                        *rv;
    ngx_int_t                    rc;
    ngx_str_t                   *value, name;
    ngx_http_tavus_key_t        *key, **slot;
    ngx_http_tavus_main_conf_t  *tmcf;

    rv = ngx_http_tavus_key_add(cf, tlcf, "tavus_api_key", &key);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;

    /*
     * a literal key, or one variable alone: nothing else is compiled,
     * so that no message of nginx's can echo a part of a literal key
     */

    rc = ngx_http_tavus_key_variable(value[1].data, value[1].len, &name);

    if (rc == NGX_DECLINED) {
        key->value = value[1];
        return ngx_http_tavus_key_check(cf, key);
    }

    if (rc != NGX_OK) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "\"tavus_api_key\" takes a key without \"$\" "
                           "or one variable alone, as in \"tavus_api_key "
                           "$tenant_key;\"; a key that holds \"$\" goes in "
                           "\"tavus_api_key_file\"");
        return NGX_CONF_ERROR;
    }

    key->complex = ngx_http_tavus_compile(cf, &value[1]);
    if (key->complex == NULL) {
        return NGX_CONF_ERROR;
    }

    key->variable = name;
    key->file = cf->conf_file->file.name.data;
    key->line = cf->conf_file->line;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tavus_module);

    slot = ngx_array_push(&tmcf->key_variables);
    if (slot == NULL) {
        return NGX_CONF_ERROR;
    }

    *slot = key;

    return NGX_CONF_OK;
}


char *
ngx_http_tavus_api_key_file(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tavus_loc_conf_t *tlcf = conf;

    u_char                *buf;
    char                  *rv;
    ssize_t                n;
    ngx_fd_t               fd;
    ngx_str_t             *value, name;
    ngx_file_info_t        fi;
    ngx_http_tavus_key_t  *key;

    rv = ngx_http_tavus_key_add(cf, tlcf, "tavus_api_key_file", &key);
    if (rv != NGX_CONF_OK) {
        return rv;
    }

    value = cf->args->elts;
    name = value[1];

    if (ngx_conf_full_name(cf->cycle, &name, 1) != NGX_OK) {
        return NGX_CONF_ERROR;
    }

    fd = ngx_open_file(name.data, NGX_FILE_RDONLY, NGX_FILE_OPEN, 0);

    if (fd == NGX_INVALID_FILE) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_open_file_n " \"%s\" failed", name.data);
        return NGX_CONF_ERROR;
    }

    rv = NGX_CONF_ERROR;
    buf = NULL;

    if (ngx_fd_info(fd, &fi) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_fd_info_n " \"%s\" failed", name.data);
        goto done;
    }

    if (ngx_file_access(&fi) & 0044) {
        ngx_conf_log_error(NGX_LOG_WARN, cf, 0,
                           "key file \"%s\" is readable by group or others: "
                           "it should be mode 0600 or 0400", name.data);
    }

    if (ngx_file_size(&fi) > NGX_HTTP_TAVUS_KEY_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%s\" is larger than %d bytes",
                           name.data, NGX_HTTP_TAVUS_KEY_FILE_MAX);
        goto done;
    }

    buf = ngx_pnalloc(cf->pool, NGX_HTTP_TAVUS_KEY_FILE_MAX + 1);
    if (buf == NULL) {
        goto done;
    }

    n = ngx_read_fd(fd, buf, NGX_HTTP_TAVUS_KEY_FILE_MAX + 1);

    if (n == -1) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, ngx_errno,
                           ngx_read_fd_n " \"%s\" failed", name.data);
        goto done;
    }

    if (n > NGX_HTTP_TAVUS_KEY_FILE_MAX) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "key file \"%s\" is larger than %d bytes",
                           name.data, NGX_HTTP_TAVUS_KEY_FILE_MAX);
        goto done;
    }

    /* one trailing newline, as editors and "echo" write it, is dropped */

    if (n && buf[n - 1] == LF) {
        n--;

        if (n && buf[n - 1] == CR) {
            n--;
        }
    }

    key->value.data = buf;
    key->value.len = n;

    rv = ngx_http_tavus_key_check(cf, key);

done:

    if (ngx_close_file(fd) == NGX_FILE_ERROR) {
        ngx_conf_log_error(NGX_LOG_ALERT, cf, ngx_errno,
                           ngx_close_file_n " \"%s\" failed", name.data);
    }

    if (rv != NGX_CONF_OK && buf) {
        ngx_explicit_memzero(buf, NGX_HTTP_TAVUS_KEY_FILE_MAX + 1);
    }

    return rv;
}


/* one key a level, given by one of the two directives */

static char *
ngx_http_tavus_key_add(ngx_conf_t *cf, ngx_http_tavus_loc_conf_t *tlcf,
    const char *directive, ngx_http_tavus_key_t **keyp)
{
    ngx_http_tavus_key_t  *key;

    if (tlcf->key != NGX_CONF_UNSET_PTR) {
        if (ngx_strcmp(tlcf->key->directive, directive) == 0) {
            return "is duplicate";
        }

        return (ngx_strcmp(directive, "tavus_api_key") == 0)
               ? "cannot be used with \"tavus_api_key_file\" at one level"
               : "cannot be used with \"tavus_api_key\" at one level";
    }

    key = ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_key_t));
    if (key == NULL) {
        return NGX_CONF_ERROR;
    }

    key->directive = directive;
    tlcf->key = key;

    *keyp = key;

    return NGX_CONF_OK;
}


/* never log the key itself: the messages name the problem only */

static char *
ngx_http_tavus_key_check(ngx_conf_t *cf, ngx_http_tavus_key_t *key)
{
    const char  *why;

    why = ngx_http_tavus_key_invalid(key->value.data, key->value.len);

    if (why) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0, "\"%s\" gives %s",
                           key->directive, why);
        return NGX_CONF_ERROR;
    }

    if (ngx_http_tavus_fingerprint(key->fingerprint, key->value.data,
                                   key->value.len)
        != NGX_OK)
    {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "SHA-256 of the key failed");
        return NGX_CONF_ERROR;
    }

    return NGX_CONF_OK;
}


/* the one check of a key, at both times: NULL, or what is wrong */

static const char *
ngx_http_tavus_key_invalid(u_char *data, size_t len)
{
    if (len == 0) {
        return "an empty key";
    }

    if (ngx_http_tavus_valid_key(data, len) != NGX_OK) {
        return "a key with a control character, a byte above ASCII or "
               "a space at either end";
    }

    return NULL;
}


/*
 * Before nginx looks variables up: it would report an unknown one with
 * its name, which is a part of the key when "$" was meant literally.
 * The check follows nginx's own lookup: a variable of that name, or one
 * with a prefix such as "http_".
 */

ngx_int_t
ngx_http_tavus_check_key_variables(ngx_conf_t *cf)
{
    ngx_uint_t                   i;
    ngx_http_tavus_key_t       **key;
    ngx_http_tavus_main_conf_t  *tmcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tavus_module);

    key = tmcf->key_variables.elts;

    for (i = 0; i < tmcf->key_variables.nelts; i++) {

        if (ngx_http_tavus_variable_defined(cf, &key[i]->variable)) {
            continue;
        }

        ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                      "\"tavus_api_key\" names a variable that is not "
                      "defined; a key that holds \"$\" goes in "
                      "\"tavus_api_key_file\" in %s:%ui",
                      key[i]->file, key[i]->line);
        return NGX_ERROR;
    }

    return NGX_OK;
}


static ngx_uint_t
ngx_http_tavus_variable_defined(ngx_conf_t *cf, ngx_str_t *name)
{
    ngx_uint_t                  n;
    ngx_hash_key_t             *hk;
    ngx_http_variable_t        *pv;
    ngx_http_core_main_conf_t  *cmcf;

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    hk = cmcf->variables_keys->keys.elts;

    for (n = 0; n < cmcf->variables_keys->keys.nelts; n++) {
        if (name->len == hk[n].key.len
            && ngx_strncasecmp(name->data, hk[n].key.data, name->len) == 0)
        {
            return 1;
        }
    }

    pv = cmcf->prefix_variables.elts;

    for (n = 0; n < cmcf->prefix_variables.nelts; n++) {
        if (name->len >= pv[n].name.len
            && ngx_strncasecmp(name->data, pv[n].name.data, pv[n].name.len)
               == 0)
        {
            return 1;
        }
    }

    return 0;
}


/* the key of a request: the configured one, or its variable's value */

ngx_int_t
ngx_http_tavus_eval_key(ngx_http_request_t *r,
    ngx_http_tavus_loc_conf_t *tlcf, ngx_http_tavus_ctx_t *ctx)
{
    ngx_int_t    rc;
    ngx_str_t    key;
    ngx_uint_t   level;
    const char  *why;

    ctx->key_conf = tlcf->key;

    if (tlcf->key->complex == NULL) {
        ctx->key = tlcf->key->value;
        return NGX_OK;
    }

    /*
     * nginx's map and script code debug-log the values they produce:
     * debug logging is off while the key is made, and variables it is
     * made of are cached by then, so later lookups log nothing either
     */

    level = r->connection->log->log_level;
    r->connection->log->log_level &= ~NGX_LOG_DEBUG_ALL;

    rc = ngx_http_complex_value(r, tlcf->key->complex, &key);

    r->connection->log->log_level = level;

    if (rc != NGX_OK) {
        return NGX_ERROR;
    }

    why = ngx_http_tavus_key_invalid(key.data, key.len);

    if (why) {
        ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                      "\"tavus_api_key\" evaluated to %s", why);
        return NGX_ERROR;
    }

    ctx->key = key;

    return NGX_OK;
}


/* the first 16 hex digits of the SHA-256 of the key */

ngx_int_t
ngx_http_tavus_fingerprint(u_char *dst, u_char *data, size_t len)
{
    u_char  md[EVP_MAX_MD_SIZE];

    if (EVP_Digest(data, len, md, NULL, EVP_sha256(), NULL) != 1) {
        return NGX_ERROR;
    }

    ngx_hex_dump(dst, md, NGX_HTTP_TAVUS_FINGERPRINT_LEN / 2);

    return NGX_OK;
}


/*
 * The fingerprint of a request's key, NGX_HTTP_TAVUS_FINGERPRINT_LEN
 * bytes: the stored one of a literal key, or one computed into the pool;
 * NULL on failure
 */

u_char *
ngx_http_tavus_key_fingerprint(ngx_pool_t *pool, ngx_http_tavus_ctx_t *ctx)
{
    u_char  *p;

    if (ctx->key_conf->complex == NULL) {
        return ctx->key_conf->fingerprint;
    }

    p = ngx_pnalloc(pool, NGX_HTTP_TAVUS_FINGERPRINT_LEN);
    if (p == NULL) {
        return NULL;
    }

    if (ngx_http_tavus_fingerprint(p, ctx->key.data, ctx->key.len)
        != NGX_OK)
    {
        return NULL;
    }

    return p;
}
