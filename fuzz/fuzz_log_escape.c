
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * libFuzzer harness: ngx_http_tavus_log_escape(), which writes upstream
 * text into the error log.
 *
 * Input:  any bytes, escaped as they are and after the UTF-8 repair the
 *         module makes first (ngx_http_tavus_utf8_clean(), 512 bytes).
 *
 * Checked: the output fits in NGX_HTTP_TAVUS_LOG_ESCAPE(len) bytes (an
 * ASan report otherwise); it holds no C0 control byte, no DEL and no '"';
 * it holds no C1 control and no character that breaks or reorders a line
 * (U+061C, U+200E, U+200F, U+2028 to U+202E, U+2066 to U+2069) as UTF-8;
 * every "\" starts "\xNN"; and decoding the escapes gives the input back.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_translate.h"
#include "ngx_http_tavus_text.h"
#include "fuzz_common.h"


static int
hexval(u_char c)
{
    if (c >= '0' && c <= '9') {
        return c - '0';
    }

    if (c >= 'a' && c <= 'f') {
        return c - 'a' + 10;
    }

    return -1;
}


static void
check(u_char *src, size_t len)
{
    u_char  *out, *back, c;
    size_t   n, i, m;
    int      hi, lo;

    out = malloc(NGX_HTTP_TAVUS_LOG_ESCAPE(len) + 1);
    back = malloc(len + 1);
    fuzz_assert(out != NULL && back != NULL, "malloc");

    n = ngx_http_tavus_log_escape(out, src, len);

    fuzz_assert(n <= NGX_HTTP_TAVUS_LOG_ESCAPE(len), "%zu bytes out of %zu",
                n, len);

    m = 0;

    for (i = 0; i < n; i++) {
        c = out[i];

        fuzz_assert(c >= 0x20 && c != 0x7f && c != '"',
                    "byte 0x%02x at %zu", c, i);

        if (c == 0xc2 && i + 1 < n) {
            fuzz_assert(out[i + 1] < 0x80 || out[i + 1] > 0x9f,
                        "a C1 control at %zu", i);
        }

        if (i + 2 < n) {
            fuzz_assert(!(c == 0xd8 && out[i + 1] == 0x9c)
                        && !(c == 0xe2 && out[i + 1] == 0x80
                             && ((out[i + 2] >= 0xa8 && out[i + 2] <= 0xae)
                                 || out[i + 2] == 0x8e
                                 || out[i + 2] == 0x8f))
                        && !(c == 0xe2 && out[i + 1] == 0x81
                             && out[i + 2] >= 0xa6 && out[i + 2] <= 0xa9),
                        "a line breaking or reordering character at %zu", i);
        }

        if (c == '\\') {
            fuzz_assert(i + 3 < n && out[i + 1] == 'x', "a bare \\ at %zu",
                        i);

            hi = hexval(out[i + 2]);
            lo = hexval(out[i + 3]);
            fuzz_assert(hi >= 0 && lo >= 0, "not \\xNN at %zu", i);

            c = (u_char) (hi << 4 | lo);
            i += 3;
        }

        fuzz_assert(m < len, "more bytes decoded than given");
        back[m++] = c;
    }

    fuzz_assert(m == len && memcmp(back, src, len) == 0,
                "decoding gives %zu bytes, not the %zu given", m, len);

    free(back);
    free(out);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char  *src, clean[NGX_HTTP_TAVUS_MESSAGE_MAX];
    size_t   n;

    src = malloc(size ? size : 1);
    fuzz_assert(src != NULL, "malloc");

    memcpy(src, data, size);

    check(src, size);

    n = ngx_http_tavus_utf8_clean(clean, size ? src : NULL, size,
                                  NGX_HTTP_TAVUS_MESSAGE_MAX);
    check(clean, n);

    free(src);

    return 0;
}
