
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * Forced include (cc -include) for the valgrind and AddressSanitizer
 * builds of the module only (scripts/test-valgrind.sh, test-asan.sh);
 * never in a normal build.
 *
 * nginx's pools hand out pieces of one large malloc'd block, so neither
 * valgrind nor ASan sees an overflow from one pool allocation into the
 * next, nor a read of stale bytes an earlier request left there.  Debian's
 * nginx is not built with NGX_DEBUG_PALLOC, so the module's own pool
 * allocations are redirected here to ngx_pmemalign(): one malloc each,
 * owned by the pool and freed with it, with red zones (ASan) and
 * definedness tracking (valgrind) around each.  Allocations nginx makes
 * itself stay pooled, and so do those of the inline helpers of nginx's
 * headers (ngx_array_init, ngx_list_init), compiled before these macros.
 *
 * nginx's configure compiles its test programs with the same flags but
 * without nginx's include paths: there this file is empty.
 */


#ifndef _TAVUS_DEBUG_POOL_H_INCLUDED_
#define _TAVUS_DEBUG_POOL_H_INCLUDED_

#if defined(__has_include)
#if __has_include(<ngx_config.h>) && __has_include(<ngx_auto_config.h>)


#include <ngx_config.h>
#include <ngx_core.h>


static ngx_inline void *
tavus_debug_palloc(ngx_pool_t *pool, size_t size, ngx_uint_t zero)
{
    void  *p;

    p = ngx_pmemalign(pool, size ? size : 1, NGX_ALIGNMENT);

    if (p && zero) {
        ngx_memzero(p, size);
    }

    return p;
}


static ngx_inline ngx_buf_t *
tavus_debug_create_temp_buf(ngx_pool_t *pool, size_t size)
{
    ngx_buf_t  *b;

    b = tavus_debug_palloc(pool, sizeof(ngx_buf_t), 1);
    if (b == NULL) {
        return NULL;
    }

    b->start = tavus_debug_palloc(pool, size, 0);
    if (b->start == NULL) {
        return NULL;
    }

    b->pos = b->start;
    b->last = b->start;
    b->end = b->last + size;
    b->temporary = 1;

    return b;
}


static ngx_inline u_char *
tavus_debug_pstrdup(ngx_pool_t *pool, ngx_str_t *src)
{
    u_char  *dst;

    dst = tavus_debug_palloc(pool, src->len, 0);
    if (dst == NULL) {
        return NULL;
    }

    ngx_memcpy(dst, src->data, src->len);

    return dst;
}


#define ngx_palloc(pool, size)   tavus_debug_palloc(pool, size, 0)
#define ngx_pnalloc(pool, size)  tavus_debug_palloc(pool, size, 0)
#define ngx_pcalloc(pool, size)  tavus_debug_palloc(pool, size, 1)
#define ngx_create_temp_buf      tavus_debug_create_temp_buf
#define ngx_pstrdup              tavus_debug_pstrdup


#endif
#endif

#endif /* _TAVUS_DEBUG_POOL_H_INCLUDED_ */
