
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * Shared by the libFuzzer harnesses in fuzz/: a strict UTF-8 check, a
 * byte-string search, and an assertion that reports through the
 * sanitizer (abort) with a message.
 */


#ifndef _TAVUS_FUZZ_COMMON_H_INCLUDED_
#define _TAVUS_FUZZ_COMMON_H_INCLUDED_


#include <stdio.h>
#include <stdlib.h>
#include <string.h>


#define fuzz_assert(cond, ...)                                                \
    do {                                                                      \
        if (!(cond)) {                                                        \
            fprintf(stderr, "fuzz assertion failed at %s:%d: %s: ",           \
                    __FILE__, __LINE__, #cond);                               \
            fprintf(stderr, __VA_ARGS__);                                     \
            fprintf(stderr, "\n");                                            \
            abort();                                                          \
        }                                                                     \
    } while (0)


/*
 * 1 if s is well-formed UTF-8 (RFC 3629: no overlong forms, no
 * surrogates, nothing above U+10FFFF), 0 otherwise
 */

static int
fuzz_valid_utf8(const unsigned char *s, size_t len)
{
    size_t         i, n, k;
    unsigned long  cp, min;

    for (i = 0; i < len; i += n) {

        if (s[i] < 0x80) {
            n = 1;
            continue;
        }

        if ((s[i] & 0xe0) == 0xc0) {
            n = 2; cp = s[i] & 0x1f; min = 0x80;

        } else if ((s[i] & 0xf0) == 0xe0) {
            n = 3; cp = s[i] & 0x0f; min = 0x800;

        } else if ((s[i] & 0xf8) == 0xf0) {
            n = 4; cp = s[i] & 0x07; min = 0x10000;

        } else {
            return 0;
        }

        if (len - i < n) {
            return 0;
        }

        for (k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) {
                return 0;
            }

            cp = (cp << 6) | (s[i + k] & 0x3f);
        }

        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) {
            return 0;
        }
    }

    return 1;
}


static const unsigned char *
fuzz_find(const unsigned char *s, size_t len, const unsigned char *what,
    size_t n)
{
    size_t  i;

    if (n == 0 || len < n) {
        return NULL;
    }

    for (i = 0; i + n <= len; i++) {
        if (memcmp(s + i, what, n) == 0) {
            return s + i;
        }
    }

    return NULL;
}


#endif /* _TAVUS_FUZZ_COMMON_H_INCLUDED_ */
