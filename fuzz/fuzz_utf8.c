
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * libFuzzer harness: ngx_http_tavus_utf8_clean(), which cuts an upstream
 * message to a maximum at a character boundary and replaces invalid
 * UTF-8 with U+FFFD.
 *
 * Input:  bytes 0-1  max, 0-1023 (the module uses 512)
 *         the rest   the source bytes
 *
 * An empty source is passed as NULL, as callers holding an ngx_str_t
 * set by ngx_str_null() do (the metrics label when none is configured).
 *
 * Checked: the output fits in a buffer of exactly max bytes (an ASan
 * report otherwise) and is valid UTF-8; valid input that fits comes out
 * unchanged; the output is a prefix of the output without a limit, cut
 * only where the next character would not fit.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_text.h"
#include "fuzz_common.h"


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *src, *dst, *all;
    size_t   max, len, n, full;

    if (size < 2) {
        return 0;
    }

    max = ((data[0] << 8) | data[1]) % 1024;
    len = size - 2;

    src = malloc(len ? len : 1);
    dst = malloc(max ? max : 1);
    all = malloc(len * 3 + 1);
    fuzz_assert(src != NULL && dst != NULL && all != NULL, "malloc");

    memcpy(src, data + 2, len);

    n = ngx_http_tavus_utf8_clean(dst, len ? src : NULL, len, max);

    fuzz_assert(n <= max, "%zu bytes out, max %zu", n, max);
    fuzz_assert(fuzz_valid_utf8(dst, n), "output is not valid UTF-8");

    if (fuzz_valid_utf8(src, len) && len <= max) {
        fuzz_assert(n == len && memcmp(dst, src, len) == 0,
                    "valid input of %zu bytes changed", len);
    }

    /* each input byte gives at most 3 output bytes (U+FFFD) */

    full = ngx_http_tavus_utf8_clean(all, len ? src : NULL, len, len * 3);

    fuzz_assert(fuzz_valid_utf8(all, full), "output is not valid UTF-8");
    fuzz_assert(n <= full && memcmp(dst, all, n) == 0,
                "the cut output is not a prefix of the whole");

    /* cut only when the next character (at most 4 bytes) did not fit */

    fuzz_assert(n == full || n + 4 > max,
                "cut at %zu of %zu with max %zu", n, full, max);

    free(all);
    free(dst);
    free(src);

    return 0;
}
