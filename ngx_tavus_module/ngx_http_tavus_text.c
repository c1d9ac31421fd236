
/*
 * Copyright (C) ngx_tavus_module authors
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include "ngx_http_tavus_text.h"


/* whether a text holds the key (or any string), anywhere */

ngx_uint_t
ngx_http_tavus_contains(u_char *s, size_t len, ngx_str_t *what)
{
    u_char  *last;

    if (what->len == 0 || len < what->len) {
        return 0;
    }

    last = s + len - what->len;

    for ( /* void */ ; s <= last; s++) {
        if (*s == what->data[0]
            && ngx_memcmp(s, what->data, what->len) == 0)
        {
            return 1;
        }
    }

    return 0;
}


/*
 * Copies valid UTF-8, replacing each byte that does not start a valid
 * sequence with U+FFFD, and stops before the output would exceed max.
 */

size_t
ngx_http_tavus_utf8_clean(u_char *dst, u_char *src, size_t len, size_t max)
{
    u_char   c, lo, hi, *p, *last;
    size_t   n, i;

    static u_char  replacement[] = { 0xef, 0xbf, 0xbd };

    if (len == 0) {
        return 0;
    }

    p = dst;
    last = src + len;

    while (src < last) {
        c = *src;
        lo = 0x80;
        hi = 0xbf;

        if (c < 0x80) {
            n = 1;

        } else if (c >= 0xc2 && c <= 0xdf) {
            n = 2;

        } else if (c >= 0xe0 && c <= 0xef) {
            n = 3;

            if (c == 0xe0) {
                lo = 0xa0;

            } else if (c == 0xed) {
                hi = 0x9f;
            }

        } else if (c >= 0xf0 && c <= 0xf4) {
            n = 4;

            if (c == 0xf0) {
                lo = 0x90;

            } else if (c == 0xf4) {
                hi = 0x8f;
            }

        } else {
            n = 0;
        }

        if (n > 1) {
            if ((size_t) (last - src) < n
                || src[1] < lo || src[1] > hi)
            {
                n = 0;

            } else {
                for (i = 2; i < n; i++) {
                    if (src[i] < 0x80 || src[i] > 0xbf) {
                        n = 0;
                        break;
                    }
                }
            }
        }

        if (n == 0) {
            if ((size_t) (p - dst) + sizeof(replacement) > max) {
                break;
            }

            p = ngx_cpymem(p, replacement, sizeof(replacement));
            src++;
            continue;
        }

        if ((size_t) (p - dst) + n > max) {
            break;
        }

        p = ngx_cpymem(p, src, n);
        src += n;
    }

    return p - dst;
}


/*
 * Upstream text for the error log, valid UTF-8 as utf8_clean() leaves it.
 * Every byte of a control character becomes \xNN, as in nginx's access
 * log: C0 (CR and LF among them), DEL and C1, and the characters that
 * break or reorder a line when shown (U+061C, U+200E, U+200F, U+2028 to
 * U+202E, U+2066 to U+2069); so do "\"" and "\\", and any byte that does
 * not start a valid sequence.  So no text can end its line, start a
 * forged one or reach a terminal as a control sequence, while other
 * characters stay readable.  dst must hold NGX_HTTP_TAVUS_LOG_ESCAPE(len)
 * bytes.
 */

size_t
ngx_http_tavus_log_escape(u_char *dst, u_char *src, size_t len)
{
    u_char    *p, *last;
    size_t     n, i;
    uint32_t   ch;

    static u_char  hex[] = "0123456789abcdef";

    p = dst;
    last = src + len;

    while (src < last) {
        ch = *src;

        if (ch < 0x80) {
            n = 1;

        } else if (ch >= 0xc2 && ch <= 0xdf) {
            n = 2;
            ch &= 0x1f;

        } else if (ch >= 0xe0 && ch <= 0xef) {
            n = 3;
            ch &= 0x0f;

        } else if (ch >= 0xf0 && ch <= 0xf4) {
            n = 4;
            ch &= 0x07;

        } else {
            n = 0;
        }

        if (n > (size_t) (last - src)) {
            n = 0;
        }

        for (i = 1; i < n; i++) {
            if (src[i] < 0x80 || src[i] > 0xbf) {
                n = 0;
                break;
            }

            ch = (ch << 6) | (src[i] & 0x3f);
        }

        if (n == 0) {
            /* not a sequence: the byte alone, escaped */
            n = 1;
            ch = 0x80;
        }

        if (ch < 0x20 || (ch >= 0x7f && ch <= 0x9f)
            || ch == '"' || ch == '\\'
            || ch == 0x061c || ch == 0x200e || ch == 0x200f
            || (ch >= 0x2028 && ch <= 0x202e)
            || (ch >= 0x2066 && ch <= 0x2069))
        {
            for (i = 0; i < n; i++) {
                *p++ = '\\';
                *p++ = 'x';
                *p++ = hex[src[i] >> 4];
                *p++ = hex[src[i] & 0xf];
            }

        } else {
            p = ngx_cpymem(p, src, n);
        }

        src += n;
    }

    return p - dst;
}
