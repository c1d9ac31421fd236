
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


/*
 * Which connections and sessions a delete over TLS may use.  nginx keeps
 * kept-alive connections per upstream{} group and TLS sessions per server
 * of a group, for every location and module that uses the group: a
 * connection that proxy_pass opened without verification, or a session
 * it verified against another CA, would carry the key past this
 * location's own checks.  So every group's peer initialisation is
 * wrapped, as the keepalive module wraps it, and for a delete over TLS:
 *
 *   - a cached connection is used only if its SSL object was made from
 *     this location's SSL context; any other is closed, and a new one
 *     is connected and verified;
 *   - sessions are saved and resumed per SSL context, server address
 *     and name verified, never through the group: a session another
 *     module verified is not resumed, and one this context made does not
 *     reach another module, not even when a server sends a new one while
 *     proxy_pass holds this context's connection.  Each context also has
 *     a random session id context, which OpenSSL stores in every session
 *     it makes and checks when one is resumed.
 */


#if (NGX_HTTP_SSL)

static ngx_int_t ngx_http_tavus_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us);
static ngx_int_t ngx_http_tavus_get_peer(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_tavus_close_cached(ngx_connection_t *c);
static void ngx_http_tavus_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state);
static void ngx_http_tavus_notify_peer(ngx_peer_connection_t *pc,
    void *data, ngx_uint_t type);
static ngx_int_t ngx_http_tavus_set_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_tavus_save_session(ngx_peer_connection_t *pc,
    void *data);
static void ngx_http_tavus_ssl_save_session(ngx_connection_t *c);
static ngx_http_tavus_ssl_session_t *ngx_http_tavus_find_session(
    ngx_http_tavus_peer_t *tp, ngx_peer_connection_t *pc);
static void ngx_http_tavus_sessions_cleanup(void *data);


/*
 * postconfiguration, once the groups' own peer initialisation is set:
 * wrap it in every group, explicit and implicit, when a location deletes
 * over TLS (with variables in tavus_pass, a request may name any group)
 */

ngx_int_t
ngx_http_tavus_peer_init_upstreams(ngx_conf_t *cf)
{
    ngx_uint_t                      i;
    ngx_http_tavus_srv_conf_t      *tscf;
    ngx_http_tavus_main_conf_t     *tmcf;
    ngx_http_upstream_srv_conf_t  **uscfp;
    ngx_http_upstream_main_conf_t  *umcf;

    tmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_tavus_module);

    if (tmcf->ssl_locations.nelts == 0) {
        return NGX_OK;
    }

    umcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_upstream_module);
    uscfp = umcf->upstreams.elts;

    for (i = 0; i < umcf->upstreams.nelts; i++) {

        if (uscfp[i]->srv_conf) {
            tscf = ngx_http_conf_upstream_srv_conf(uscfp[i],
                                                   ngx_http_tavus_module);
            tscf->original_init_peer = uscfp[i]->peer.init;

        } else if (uscfp[i]->peer.init
                   != ngx_http_upstream_init_round_robin_peer)
        {
            /* an implicit group has no directives: it is round robin */

            ngx_log_error(NGX_LOG_EMERG, cf->log, 0,
                          "upstream \"%V\" is initialised by another "
                          "module, so tavus_pass cannot keep its "
                          "connections apart in %s:%ui", &uscfp[i]->host,
                          uscfp[i]->file_name, uscfp[i]->line);
            return NGX_ERROR;
        }

        uscfp[i]->peer.init = ngx_http_tavus_init_peer;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_tavus_init_peer(ngx_http_request_t *r,
    ngx_http_upstream_srv_conf_t *us)
{
    ngx_http_upstream_t             *u;
    ngx_http_tavus_ctx_t            *ctx;
    ngx_http_tavus_peer_t           *tp;
    ngx_http_tavus_srv_conf_t       *tscf;
    ngx_http_tavus_loc_conf_t       *tlcf;
    ngx_http_upstream_init_peer_pt   init;

    if (us->srv_conf) {
        tscf = ngx_http_conf_upstream_srv_conf(us, ngx_http_tavus_module);
        init = tscf->original_init_peer;

    } else {
        init = ngx_http_upstream_init_round_robin_peer;
    }

    if (init(r, us) != NGX_OK) {
        return NGX_ERROR;
    }

    /* anything but a delete over TLS is left as the group made it */

    u = r->upstream;
    tlcf = ngx_http_get_module_loc_conf(r, ngx_http_tavus_module);

    if (u->conf != &tlcf->upstream || u->conf->ssl == NULL) {
        return NGX_OK;
    }

    ctx = ngx_http_get_module_ctx(r, ngx_http_tavus_module);

    if (ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_log_debug0(NGX_LOG_DEBUG_HTTP, r->connection->log, 0,
                   "tavus init peer");

    tp = &ctx->peer;

    tp->ssl = (ngx_http_tavus_ssl_t *) u->conf->ssl;
    tp->request = r;
    tp->data = u->peer.data;
    tp->original_get_peer = u->peer.get;
    tp->original_free_peer = u->peer.free;
    tp->original_notify = u->peer.notify;
    tp->original_set_session = u->peer.set_session;
    tp->original_save_session = u->peer.save_session;

    u->peer.data = tp;
    u->peer.get = ngx_http_tavus_get_peer;
    u->peer.free = ngx_http_tavus_free_peer;
    u->peer.set_session = ngx_http_tavus_set_session;
    u->peer.save_session = ngx_http_tavus_save_session;

    if (u->peer.notify) {
        u->peer.notify = ngx_http_tavus_notify_peer;
    }

    return NGX_OK;
}


static ngx_int_t
ngx_http_tavus_get_peer(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tavus_peer_t *tp = data;

    ngx_int_t          rc;
    ngx_connection_t  *c;

    rc = tp->original_get_peer(pc, tp->data);

    if (rc != NGX_DONE) {
        return rc;
    }

    /* a cached connection */

    c = pc->connection;

    if (c->ssl && SSL_get_SSL_CTX(c->ssl->connection) == tp->ssl->ssl.ctx) {
        return NGX_DONE;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "tavus: closing kept-alive connection %p, which another "
                   "location or module made", c);

    /* nginx connects to the server the balancer chose, as if uncached */

    pc->connection = NULL;
    pc->cached = 0;

    ngx_http_tavus_close_cached(c);

    return NGX_OK;
}


static void
ngx_http_tavus_close_cached(ngx_connection_t *c)
{
    if (c->ssl) {
        c->ssl->no_wait_shutdown = 1;
        c->ssl->no_send_shutdown = 1;

        if (ngx_ssl_shutdown(c) == NGX_AGAIN) {
            c->ssl->handler = ngx_http_tavus_close_cached;
            return;
        }
    }

    ngx_destroy_pool(c->pool);
    ngx_close_connection(c);
}


static void
ngx_http_tavus_free_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t state)
{
    ngx_http_tavus_peer_t *tp = data;

    tp->original_free_peer(pc, tp->data, state);
}


static void
ngx_http_tavus_notify_peer(ngx_peer_connection_t *pc, void *data,
    ngx_uint_t type)
{
    ngx_http_tavus_peer_t *tp = data;

    tp->original_notify(pc, tp->data, type);
}


/*
 * A worker's sessions of one SSL context, by server address: the group's
 * own store (per server of the group, shared by every module that uses
 * it) is neither read nor written.
 */

static ngx_int_t
ngx_http_tavus_set_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tavus_peer_t *tp = data;

    ngx_int_t                      rc;
    ngx_http_tavus_ssl_session_t  *s;

    /* instead of the upstream code's, which saves into the group */

    pc->connection->ssl->save_session = ngx_http_tavus_ssl_save_session;

    s = ngx_http_tavus_find_session(tp, pc);

    if (s == NULL || s->session == NULL) {
        return NGX_OK;
    }

    rc = ngx_ssl_set_session(pc->connection, s->session);

    ngx_log_debug2(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "tavus set session: %p:%i", s->session, rc);

    return rc;
}


static void
ngx_http_tavus_save_session(ngx_peer_connection_t *pc, void *data)
{
    ngx_http_tavus_peer_t *tp = data;

    ngx_str_t                     *name;
    ngx_queue_t                   *q;
    ngx_ssl_session_t             *session;
    ngx_http_tavus_ssl_t          *tssl;
    ngx_http_tavus_ssl_session_t  *s;

    name = &tp->request->upstream->ssl_name;

    if (name->len > NGX_HTTP_TAVUS_SSL_NAME_MAX) {
        return;
    }

    session = ngx_ssl_get_session(pc->connection);

    if (session == NULL) {
        return;
    }

    ngx_log_debug1(NGX_LOG_DEBUG_HTTP, pc->log, 0,
                   "tavus save session: %p", session);

    tssl = tp->ssl;

    s = ngx_http_tavus_find_session(tp, pc);

    if (s == NULL) {

        /* a slot of its own, the least recently used if none is free */

        if (ngx_queue_empty(&tssl->free)) {
            q = ngx_queue_last(&tssl->sessions);

        } else {
            q = ngx_queue_head(&tssl->free);
        }

        ngx_queue_remove(q);
        ngx_queue_insert_head(&tssl->sessions, q);

        s = ngx_queue_data(q, ngx_http_tavus_ssl_session_t, queue);

        s->socklen = pc->socklen;
        ngx_memcpy(&s->sockaddr, pc->sockaddr, pc->socklen);
        s->name_len = name->len;
        ngx_memcpy(s->name, name->data, name->len);
    }

    if (s->session) {
        ngx_ssl_free_session(s->session);
    }

    s->session = session;
}


/*
 * A new session while a request holds this context's connection: a late
 * TLSv1.3 ticket, or a TLSv1.2 renegotiation.  The connection may be held
 * by proxy_pass, which nginx's cache lets take it: the session is kept
 * only when a delete of this context holds it.
 */

static void
ngx_http_tavus_ssl_save_session(ngx_connection_t *c)
{
    ngx_http_request_t   *r;
    ngx_http_upstream_t  *u;

    if (c->idle) {
        return;
    }

    r = c->data;
    u = r->upstream;

    if (u == NULL || u->peer.save_session != ngx_http_tavus_save_session) {
        return;
    }

    ngx_http_set_log_request(r->connection->log, r);

    u->peer.save_session(&u->peer, u->peer.data);
}


/*
 * the slot of the server address and of the name this request verifies
 * (u->ssl_name), made the most recent; NULL if it has none
 */

static ngx_http_tavus_ssl_session_t *
ngx_http_tavus_find_session(ngx_http_tavus_peer_t *tp,
    ngx_peer_connection_t *pc)
{
    ngx_str_t                     *name;
    ngx_queue_t                   *q, *sessions;
    ngx_http_tavus_ssl_session_t  *s;

    name = &tp->request->upstream->ssl_name;
    sessions = &tp->ssl->sessions;

    for (q = ngx_queue_head(sessions);
         q != ngx_queue_sentinel(sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_tavus_ssl_session_t, queue);

        if (ngx_memn2cmp((u_char *) &s->sockaddr, (u_char *) pc->sockaddr,
                         s->socklen, pc->socklen)
            == 0
            && ngx_memn2cmp(s->name, name->data, s->name_len, name->len)
               == 0)
        {
            ngx_queue_remove(q);
            ngx_queue_insert_head(sessions, q);

            return s;
        }
    }

    return NULL;
}


/* the slots of an SSL context's sessions, when it reuses sessions */

ngx_int_t
ngx_http_tavus_peer_init_sessions(ngx_conf_t *cf, ngx_http_tavus_ssl_t *tssl,
    ngx_flag_t reuse)
{
    ngx_uint_t                     i;
    ngx_pool_cleanup_t            *cln;
    ngx_http_tavus_ssl_session_t  *slots;

    ngx_queue_init(&tssl->sessions);
    ngx_queue_init(&tssl->free);

    if (!reuse) {
        return NGX_OK;
    }

    slots = ngx_pcalloc(cf->pool, NGX_HTTP_TAVUS_SSL_SESSIONS
                                  * sizeof(ngx_http_tavus_ssl_session_t));
    if (slots == NULL) {
        return NGX_ERROR;
    }

    for (i = 0; i < NGX_HTTP_TAVUS_SSL_SESSIONS; i++) {
        ngx_queue_insert_tail(&tssl->free, &slots[i].queue);
    }

    cln = ngx_pool_cleanup_add(cf->pool, 0);
    if (cln == NULL) {
        return NGX_ERROR;
    }

    cln->handler = ngx_http_tavus_sessions_cleanup;
    cln->data = tssl;

    return NGX_OK;
}


static void
ngx_http_tavus_sessions_cleanup(void *data)
{
    ngx_http_tavus_ssl_t *tssl = data;

    ngx_queue_t                   *q;
    ngx_http_tavus_ssl_session_t  *s;

    for (q = ngx_queue_head(&tssl->sessions);
         q != ngx_queue_sentinel(&tssl->sessions);
         q = ngx_queue_next(q))
    {
        s = ngx_queue_data(q, ngx_http_tavus_ssl_session_t, queue);

        if (s->session) {
            ngx_ssl_free_session(s->session);
            s->session = NULL;
        }
    }
}

#endif
