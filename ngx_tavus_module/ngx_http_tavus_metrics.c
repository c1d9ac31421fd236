
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <ngx_http.h>
#include "ngx_http_tavus_module.h"


/*
 * Deletion metrics: counters in a shared memory zone, updated with atomics
 * by every worker at the end of each request the module handled, and
 * served in the Prometheus text format.  A zone that keeps its name and
 * size across a reload keeps its counters.
 */


#define NGX_HTTP_TAVUS_METRICS_LABEL_MAX  128
#define NGX_HTTP_TAVUS_METRICS_BUCKETS    11
#define NGX_HTTP_TAVUS_METRICS_CLASSES    5


typedef struct {
    ngx_rbtree_node_t            node;
    ngx_queue_t                  queue;

    ngx_atomic_t                 requests[NGX_HTTP_TAVUS_OUTCOME_NONE][2];
    ngx_atomic_t                 classes[NGX_HTTP_TAVUS_METRICS_CLASSES];
    ngx_atomic_t                 buckets[NGX_HTTP_TAVUS_METRICS_BUCKETS];
    ngx_atomic_t                 time_ms;
    ngx_atomic_t                 timed;

    u_short                      len;
    u_char                       label[1];
} ngx_http_tavus_metrics_series_t;


typedef struct {
    ngx_rbtree_t                 rbtree;
    ngx_rbtree_node_t            sentinel;
    ngx_queue_t                  queue;
    ngx_uint_t                   series;
} ngx_http_tavus_metrics_shctx_t;


typedef struct {
    ngx_http_tavus_metrics_shctx_t  *sh;
    ngx_slab_pool_t                 *shpool;
} ngx_http_tavus_metrics_ctx_t;


typedef struct {
    ngx_shm_zone_t              *shm_zone;
} ngx_http_tavus_metrics_main_conf_t;


typedef struct {
    ngx_http_complex_value_t    *label;
} ngx_http_tavus_metrics_loc_conf_t;


static ngx_int_t ngx_http_tavus_metrics_log_handler(ngx_http_request_t *r);
static ngx_http_tavus_metrics_series_t *ngx_http_tavus_metrics_series(
    ngx_http_request_t *r, ngx_http_tavus_metrics_ctx_t *mctx,
    ngx_str_t *label);
static void ngx_http_tavus_metrics_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel);
static ngx_int_t ngx_http_tavus_metrics_handler(ngx_http_request_t *r);
static u_char *ngx_http_tavus_metrics_write(u_char *p,
    ngx_http_tavus_metrics_series_t *s, ngx_uint_t family);
static u_char *ngx_http_tavus_metrics_label(u_char *p,
    ngx_http_tavus_metrics_series_t *s);

static ngx_int_t ngx_http_tavus_metrics_init(ngx_conf_t *cf);
static void *ngx_http_tavus_metrics_create_main_conf(ngx_conf_t *cf);
static void *ngx_http_tavus_metrics_create_loc_conf(ngx_conf_t *cf);
static char *ngx_http_tavus_metrics_merge_loc_conf(ngx_conf_t *cf,
    void *parent, void *child);
static char *ngx_http_tavus_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);
static ngx_int_t ngx_http_tavus_metrics_init_zone(ngx_shm_zone_t *shm_zone,
    void *data);
static char *ngx_http_tavus_metrics(ngx_conf_t *cf, ngx_command_t *cmd,
    void *conf);


static ngx_command_t  ngx_http_tavus_metrics_commands[] = {

    { ngx_string("tavus_metrics_zone"),
      NGX_HTTP_MAIN_CONF|NGX_CONF_TAKE2,
      ngx_http_tavus_metrics_zone,
      NGX_HTTP_MAIN_CONF_OFFSET,
      0,
      NULL },

    { ngx_string("tavus_metrics_label"),
      NGX_HTTP_MAIN_CONF|NGX_HTTP_SRV_CONF|NGX_HTTP_LOC_CONF|NGX_CONF_TAKE1,
      ngx_http_set_complex_value_slot,
      NGX_HTTP_LOC_CONF_OFFSET,
      offsetof(ngx_http_tavus_metrics_loc_conf_t, label),
      NULL },

    { ngx_string("tavus_metrics"),
      NGX_HTTP_LOC_CONF|NGX_CONF_NOARGS,
      ngx_http_tavus_metrics,
      NGX_HTTP_LOC_CONF_OFFSET,
      0,
      NULL },

      ngx_null_command
};


static ngx_http_module_t  ngx_http_tavus_metrics_module_ctx = {
    NULL,                                  /* preconfiguration */
    ngx_http_tavus_metrics_init,           /* postconfiguration */

    ngx_http_tavus_metrics_create_main_conf, /* create main configuration */
    NULL,                                  /* init main configuration */

    NULL,                                  /* create server configuration */
    NULL,                                  /* merge server configuration */

    ngx_http_tavus_metrics_create_loc_conf, /* create location configuration */
    ngx_http_tavus_metrics_merge_loc_conf  /* merge location configuration */
};


ngx_module_t  ngx_http_tavus_metrics_module = {
    NGX_MODULE_V1,
    &ngx_http_tavus_metrics_module_ctx,    /* module context */
    ngx_http_tavus_metrics_commands,       /* module directives */
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


static ngx_str_t  ngx_http_tavus_metrics_help[] = {
    ngx_string("# HELP tavus_requests_total Requests answered by "
               "tavus_delete_replica, by outcome and requested hard flag.\n"
               "# TYPE tavus_requests_total counter\n"),
    ngx_string("# HELP tavus_upstream_responses_total Answers from the "
               "upstream, by status class.\n"
               "# TYPE tavus_upstream_responses_total counter\n"),
    ngx_string("# HELP tavus_upstream_response_seconds Time from the "
               "upstream connection to the end of its answer.\n"
               "# TYPE tavus_upstream_response_seconds histogram\n")
};


/*
 * upper bounds of the histogram buckets: in milliseconds, the resolution
 * of nginx's response times, and as the labels say them, in seconds
 */

static ngx_msec_t  ngx_http_tavus_metrics_bounds[] = {
    5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000
};

static ngx_str_t  ngx_http_tavus_metrics_le[] = {
    ngx_string("0.005"), ngx_string("0.01"), ngx_string("0.025"),
    ngx_string("0.05"), ngx_string("0.1"), ngx_string("0.25"),
    ngx_string("0.5"), ngx_string("1"), ngx_string("2.5"), ngx_string("5"),
    ngx_string("10")
};


static ngx_int_t
ngx_http_tavus_metrics_log_handler(ngx_http_request_t *r)
{
    u_char                               buf[NGX_HTTP_TAVUS_METRICS_LABEL_MAX];
    ngx_str_t                            label;
    ngx_uint_t                           i, code;
    ngx_msec_t                           ms;
    ngx_http_tavus_ctx_t                *ctx;
    ngx_http_tavus_metrics_ctx_t        *mctx;
    ngx_http_tavus_metrics_series_t     *s;
    ngx_http_tavus_metrics_main_conf_t  *mmcf;
    ngx_http_tavus_metrics_loc_conf_t   *mlcf;

    ctx = ngx_http_tavus_get_ctx(r);

    if (ctx == NULL || ctx->answer.outcome >= NGX_HTTP_TAVUS_OUTCOME_NONE) {
        return NGX_OK;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_tavus_metrics_module);
    mlcf = ngx_http_get_module_loc_conf(r, ngx_http_tavus_metrics_module);

    mctx = mmcf->shm_zone->data;

    if (mlcf->label == NULL) {
        ngx_str_null(&label);

    } else if (ngx_http_complex_value(r, mlcf->label, &label) != NGX_OK) {
        return NGX_OK;
    }

    /* the text format wants UTF-8: invalid bytes replaced, a whole cut */

    label.len = ngx_http_tavus_utf8_clean(buf, label.data, label.len,
                                          NGX_HTTP_TAVUS_METRICS_LABEL_MAX);
    label.data = buf;

    s = ngx_http_tavus_metrics_series(r, mctx, &label);
    if (s == NULL) {
        return NGX_OK;
    }

    (void) ngx_atomic_fetch_add(
                       &s->requests[ctx->answer.outcome][ctx->hard ? 1 : 0], 1);

    code = ctx->status.code;

    if (code >= 100 && code < 600) {
        (void) ngx_atomic_fetch_add(&s->classes[code / 100 - 1], 1);
    }

    /* the time of an answer, not of a failed connect */

    if (r->upstream && r->upstream->state
        && r->upstream->state->connect_time != (ngx_msec_t) -1)
    {
        ms = r->upstream->state->response_time;

        for (i = 0; i < NGX_HTTP_TAVUS_METRICS_BUCKETS; i++) {
            if (ms <= ngx_http_tavus_metrics_bounds[i]) {
                (void) ngx_atomic_fetch_add(&s->buckets[i], 1);
                break;
            }
        }

        (void) ngx_atomic_fetch_add(&s->time_ms, ms);
        (void) ngx_atomic_fetch_add(&s->timed, 1);
    }

    return NGX_OK;
}


/* the series of a label, created at its first request */

static ngx_http_tavus_metrics_series_t *
ngx_http_tavus_metrics_series(ngx_http_request_t *r,
    ngx_http_tavus_metrics_ctx_t *mctx, ngx_str_t *label)
{
    size_t                            n;
    uint32_t                          hash;
    ngx_int_t                         rc;
    ngx_rbtree_node_t                *node, *sentinel;
    ngx_http_tavus_metrics_series_t  *s;

    static ngx_uint_t  logged;

    hash = ngx_crc32_short(label->data, label->len);

    ngx_shmtx_lock(&mctx->shpool->mutex);

    node = mctx->sh->rbtree.root;
    sentinel = mctx->sh->rbtree.sentinel;

    while (node != sentinel) {

        if (hash < node->key) {
            node = node->left;
            continue;
        }

        if (hash > node->key) {
            node = node->right;
            continue;
        }

        s = (ngx_http_tavus_metrics_series_t *) node;

        rc = ngx_memn2cmp(label->data, s->label, label->len, s->len);

        if (rc == 0) {
            ngx_shmtx_unlock(&mctx->shpool->mutex);
            return s;
        }

        node = (rc < 0) ? node->left : node->right;
    }

    n = offsetof(ngx_http_tavus_metrics_series_t, label) + label->len;

    s = ngx_slab_calloc_locked(mctx->shpool, n);

    if (s == NULL) {
        ngx_shmtx_unlock(&mctx->shpool->mutex);

        if (!logged) {
            logged = 1;
            ngx_log_error(NGX_LOG_ERR, r->connection->log, 0,
                          "no memory%s: requests with new labels are "
                          "not counted", mctx->shpool->log_ctx);
        }

        return NULL;
    }

    s->node.key = hash;
    s->len = (u_short) label->len;
    ngx_memcpy(s->label, label->data, label->len);

    ngx_rbtree_insert(&mctx->sh->rbtree, &s->node);
    ngx_queue_insert_tail(&mctx->sh->queue, &s->queue);
    mctx->sh->series++;

    ngx_shmtx_unlock(&mctx->shpool->mutex);

    return s;
}


static void
ngx_http_tavus_metrics_insert_value(ngx_rbtree_node_t *temp,
    ngx_rbtree_node_t *node, ngx_rbtree_node_t *sentinel)
{
    ngx_rbtree_node_t                **p;
    ngx_http_tavus_metrics_series_t   *s, *t;

    for ( ;; ) {

        if (node->key < temp->key) {
            p = &temp->left;

        } else if (node->key > temp->key) {
            p = &temp->right;

        } else {
            s = (ngx_http_tavus_metrics_series_t *) node;
            t = (ngx_http_tavus_metrics_series_t *) temp;

            p = (ngx_memn2cmp(s->label, t->label, s->len, t->len) < 0)
                ? &temp->left : &temp->right;
        }

        if (*p == sentinel) {
            break;
        }

        temp = *p;
    }

    *p = node;
    node->parent = temp;
    node->left = sentinel;
    node->right = sentinel;
    ngx_rbt_red(node);
}


/*
 * the most one series takes in the exposition: the family headers are
 * counted once, the lines for each series
 */

#define NGX_HTTP_TAVUS_METRICS_HEADERS  1024
#define NGX_HTTP_TAVUS_METRICS_LINE                                          \
    (sizeof("tavus_upstream_response_seconds_bucket{label=\"\","             \
            "outcome=\"upstream_invalid_response\",hard=\"false\"} ")        \
     + 6 * NGX_HTTP_TAVUS_METRICS_LABEL_MAX + NGX_ATOMIC_T_LEN + 8)
#define NGX_HTTP_TAVUS_METRICS_LINES                                         \
    (2 * NGX_HTTP_TAVUS_OUTCOME_NONE + NGX_HTTP_TAVUS_METRICS_CLASSES        \
     + NGX_HTTP_TAVUS_METRICS_BUCKETS + 3)


static ngx_int_t
ngx_http_tavus_metrics_handler(ngx_http_request_t *r)
{
    size_t                               len;
    ngx_int_t                            rc;
    ngx_buf_t                           *b;
    ngx_uint_t                           family;
    ngx_chain_t                          out;
    ngx_queue_t                         *q;
    ngx_http_tavus_metrics_ctx_t        *mctx;
    ngx_http_tavus_metrics_series_t     *s;
    ngx_http_tavus_metrics_main_conf_t  *mmcf;

    if (!(r->method & (NGX_HTTP_GET|NGX_HTTP_HEAD))) {
        return NGX_HTTP_NOT_ALLOWED;
    }

    rc = ngx_http_discard_request_body(r);

    if (rc != NGX_OK) {
        return rc;
    }

    mmcf = ngx_http_get_module_main_conf(r, ngx_http_tavus_metrics_module);
    mctx = mmcf->shm_zone->data;

    ngx_shmtx_lock(&mctx->shpool->mutex);

    len = NGX_HTTP_TAVUS_METRICS_HEADERS
          + mctx->sh->series * NGX_HTTP_TAVUS_METRICS_LINES
            * NGX_HTTP_TAVUS_METRICS_LINE;

    b = ngx_create_temp_buf(r->pool, len);
    if (b == NULL) {
        ngx_shmtx_unlock(&mctx->shpool->mutex);
        return NGX_HTTP_INTERNAL_SERVER_ERROR;
    }

    for (family = 0; family < 3; family++) {

        b->last = ngx_cpymem(b->last, ngx_http_tavus_metrics_help[family].data,
                             ngx_http_tavus_metrics_help[family].len);

        for (q = ngx_queue_head(&mctx->sh->queue);
             q != ngx_queue_sentinel(&mctx->sh->queue);
             q = ngx_queue_next(q))
        {
            s = ngx_queue_data(q, ngx_http_tavus_metrics_series_t, queue);
            b->last = ngx_http_tavus_metrics_write(b->last, s, family);
        }
    }

    ngx_shmtx_unlock(&mctx->shpool->mutex);

    r->headers_out.status = NGX_HTTP_OK;
    r->headers_out.content_length_n = b->last - b->pos;
    ngx_str_set(&r->headers_out.content_type,
                "text/plain; version=0.0.4; charset=utf-8");
    r->headers_out.content_type_len = r->headers_out.content_type.len;

    rc = ngx_http_send_header(r);

    if (rc == NGX_ERROR || rc > NGX_OK || r->header_only) {
        return rc;
    }

    b->last_buf = (r == r->main) ? 1 : 0;
    b->last_in_chain = 1;

    out.buf = b;
    out.next = NULL;

    return ngx_http_output_filter(r, &out);
}


static u_char *
ngx_http_tavus_metrics_write(u_char *p, ngx_http_tavus_metrics_series_t *s,
    ngx_uint_t family)
{
    ngx_uint_t         i, hard;
    ngx_atomic_uint_t  n;

    switch (family) {

    case 0:
        for (i = 0; i < NGX_HTTP_TAVUS_OUTCOME_NONE; i++) {
            for (hard = 0; hard < 2; hard++) {
                p = ngx_cpymem(p, "tavus_requests_total{",
                               sizeof("tavus_requests_total{") - 1);
                p = ngx_http_tavus_metrics_label(p, s);
                p = ngx_sprintf(p, ",outcome=\"%V\",hard=\"%s\"} %uA\n",
                                ngx_http_tavus_outcome_name(i),
                                hard ? "true" : "false",
                                s->requests[i][hard]);
            }
        }

        break;

    case 1:
        for (i = 0; i < NGX_HTTP_TAVUS_METRICS_CLASSES; i++) {
            p = ngx_cpymem(p, "tavus_upstream_responses_total{",
                           sizeof("tavus_upstream_responses_total{") - 1);
            p = ngx_http_tavus_metrics_label(p, s);
            p = ngx_sprintf(p, ",class=\"%uixx\"} %uA\n", i + 1,
                            s->classes[i]);
        }

        break;

    default:
        n = 0;

        for (i = 0; i < NGX_HTTP_TAVUS_METRICS_BUCKETS; i++) {
            n += s->buckets[i];

            p = ngx_cpymem(p, "tavus_upstream_response_seconds_bucket{",
                       sizeof("tavus_upstream_response_seconds_bucket{") - 1);
            p = ngx_http_tavus_metrics_label(p, s);
            p = ngx_sprintf(p, ",le=\"%V\"} %uA\n",
                            &ngx_http_tavus_metrics_le[i], n);
        }

        n = s->timed;

        p = ngx_cpymem(p, "tavus_upstream_response_seconds_bucket{",
                       sizeof("tavus_upstream_response_seconds_bucket{") - 1);
        p = ngx_http_tavus_metrics_label(p, s);
        p = ngx_sprintf(p, ",le=\"+Inf\"} %uA\n", n);

        p = ngx_cpymem(p, "tavus_upstream_response_seconds_sum{",
                       sizeof("tavus_upstream_response_seconds_sum{") - 1);
        p = ngx_http_tavus_metrics_label(p, s);
        p = ngx_sprintf(p, "} %uA.%03uA\n", s->time_ms / 1000,
                        s->time_ms % 1000);

        p = ngx_cpymem(p, "tavus_upstream_response_seconds_count{",
                       sizeof("tavus_upstream_response_seconds_count{") - 1);
        p = ngx_http_tavus_metrics_label(p, s);
        p = ngx_sprintf(p, "} %uA\n", n);
    }

    return p;
}


/* label="...", escaped as the text format wants */

static u_char *
ngx_http_tavus_metrics_label(u_char *p, ngx_http_tavus_metrics_series_t *s)
{
    u_char  c, *q, *last;

    p = ngx_cpymem(p, "label=\"", sizeof("label=\"") - 1);

    last = s->label + s->len;

    for (q = s->label; q < last; q++) {
        c = *q;

        if (c == '\\' || c == '"') {
            *p++ = '\\';
            *p++ = c;

        } else if (c == '\n') {
            *p++ = '\\';
            *p++ = 'n';

        } else {
            *p++ = c;
        }
    }

    *p++ = '"';

    return p;
}


static ngx_int_t
ngx_http_tavus_metrics_init(ngx_conf_t *cf)
{
    ngx_http_handler_pt                 *h;
    ngx_http_core_main_conf_t           *cmcf;
    ngx_http_tavus_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_tavus_metrics_module);

    if (mmcf->shm_zone == NULL) {
        return NGX_OK;
    }

    cmcf = ngx_http_conf_get_module_main_conf(cf, ngx_http_core_module);

    h = ngx_array_push(&cmcf->phases[NGX_HTTP_LOG_PHASE].handlers);
    if (h == NULL) {
        return NGX_ERROR;
    }

    *h = ngx_http_tavus_metrics_log_handler;

    return NGX_OK;
}


static void *
ngx_http_tavus_metrics_create_main_conf(ngx_conf_t *cf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->shm_zone = NULL;
     */

    return ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_metrics_main_conf_t));
}


static void *
ngx_http_tavus_metrics_create_loc_conf(ngx_conf_t *cf)
{
    /*
     * set by ngx_pcalloc():
     *
     *     conf->label = NULL;
     */

    return ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_metrics_loc_conf_t));
}


static char *
ngx_http_tavus_metrics_merge_loc_conf(ngx_conf_t *cf, void *parent,
    void *child)
{
    ngx_http_tavus_metrics_loc_conf_t *prev = parent;
    ngx_http_tavus_metrics_loc_conf_t *conf = child;

    if (conf->label == NULL) {
        conf->label = prev->label;
    }

    return NGX_CONF_OK;
}


static char *
ngx_http_tavus_metrics_zone(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_tavus_metrics_main_conf_t *mmcf = conf;

    ssize_t                        size;
    ngx_str_t                     *value;
    ngx_http_tavus_metrics_ctx_t  *mctx;

    if (mmcf->shm_zone) {
        return "is duplicate";
    }

    value = cf->args->elts;

    size = ngx_parse_size(&value[2]);

    if (size == NGX_ERROR) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "invalid zone size \"%V\"", &value[2]);
        return NGX_CONF_ERROR;
    }

    if (size < (ssize_t) (8 * ngx_pagesize)) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is too small: at least %uz",
                           &value[1], 8 * ngx_pagesize);
        return NGX_CONF_ERROR;
    }

    mctx = ngx_pcalloc(cf->pool, sizeof(ngx_http_tavus_metrics_ctx_t));
    if (mctx == NULL) {
        return NGX_CONF_ERROR;
    }

    mmcf->shm_zone = ngx_shared_memory_add(cf, &value[1], size,
                                           &ngx_http_tavus_metrics_module);
    if (mmcf->shm_zone == NULL) {
        return NGX_CONF_ERROR;
    }

    if (mmcf->shm_zone->data) {
        ngx_conf_log_error(NGX_LOG_EMERG, cf, 0,
                           "zone \"%V\" is already in use", &value[1]);
        return NGX_CONF_ERROR;
    }

    mmcf->shm_zone->init = ngx_http_tavus_metrics_init_zone;
    mmcf->shm_zone->data = mctx;

    return NGX_CONF_OK;
}


static ngx_int_t
ngx_http_tavus_metrics_init_zone(ngx_shm_zone_t *shm_zone, void *data)
{
    ngx_http_tavus_metrics_ctx_t  *octx = data;

    size_t                         len;
    ngx_http_tavus_metrics_ctx_t  *mctx;

    mctx = shm_zone->data;

    if (octx) {

        /* a reload with the same zone: the counters go on */

        mctx->sh = octx->sh;
        mctx->shpool = octx->shpool;

        return NGX_OK;
    }

    mctx->shpool = (ngx_slab_pool_t *) shm_zone->shm.addr;

    if (shm_zone->shm.exists) {
        mctx->sh = mctx->shpool->data;
        return NGX_OK;
    }

    mctx->sh = ngx_slab_calloc(mctx->shpool,
                               sizeof(ngx_http_tavus_metrics_shctx_t));
    if (mctx->sh == NULL) {
        return NGX_ERROR;
    }

    mctx->shpool->data = mctx->sh;

    ngx_rbtree_init(&mctx->sh->rbtree, &mctx->sh->sentinel,
                    ngx_http_tavus_metrics_insert_value);
    ngx_queue_init(&mctx->sh->queue);

    len = sizeof(" in tavus_metrics_zone \"\"") + shm_zone->shm.name.len;

    mctx->shpool->log_ctx = ngx_slab_alloc(mctx->shpool, len);
    if (mctx->shpool->log_ctx == NULL) {
        return NGX_ERROR;
    }

    ngx_sprintf(mctx->shpool->log_ctx, " in tavus_metrics_zone \"%V\"%Z",
                &shm_zone->shm.name);

    /* a full zone is reported once, not for every request */

    mctx->shpool->log_nomem = 0;

    return NGX_OK;
}


static char *
ngx_http_tavus_metrics(ngx_conf_t *cf, ngx_command_t *cmd, void *conf)
{
    ngx_http_core_loc_conf_t            *clcf;
    ngx_http_tavus_metrics_main_conf_t  *mmcf;

    mmcf = ngx_http_conf_get_module_main_conf(cf,
                                              ngx_http_tavus_metrics_module);

    if (mmcf->shm_zone == NULL) {
        return "requires \"tavus_metrics_zone\" before it";
    }

    clcf = ngx_http_conf_get_module_loc_conf(cf, ngx_http_core_module);

    clcf->handler = ngx_http_tavus_metrics_handler;

    return NGX_CONF_OK;
}
