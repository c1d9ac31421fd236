
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * libFuzzer harness: the translation of an upstream answer (status and
 * body: cJSON, UTF-8 cutting and repair, key redaction) and the JSON body
 * the client gets (ngx_http_tavus_json_length + ngx_http_tavus_json_write),
 * from ngx_http_tavus_json.c.
 *
 * Input:  byte 0     flags: 1 translate an upstream answer (else a local
 *                    answer), 2 hard, 4 no replica id (error answers only)
 *         bytes 1-2  upstream status 100-599, or (local) the outcome
 *         byte 3     key length (0-47), then the key, mapped to printable
 *                    ASCII as configured keys are (interior spaces kept)
 *         byte       replica id length (0-128), then the id, mapped to
 *                    [A-Za-z0-9_-] as validated ids are
 *         the rest   the upstream body
 *
 * Checked: ngx_http_tavus_contains() finds the key in the body exactly
 * when a plain search does; the status and outcome follow the table of
 * docs/responses.md ("Every situation"); the message
 * is at most 512 bytes of valid UTF-8; the body fits in exactly the
 * length computed for it (an ASan report otherwise), is valid UTF-8 with
 * no raw control byte, parses as a JSON object (cJSON) whose fields hold
 * what was put in; and the key appears neither in the decoded strings of
 * the body nor in the message unless it is part of the fixed text of that
 * outcome (a short key can be a word of "the upstream failed").  The raw
 * body is not searched: escaping makes text (a DEL is \u007f, holding
 * the key "00"; a"b becomes the key a\"b) that no client reads as such.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <cjson/cJSON.h>
#include "ngx_http_tavus_outcome.h"
#include "ngx_http_tavus_translate.h"
#include "ngx_http_tavus_json.h"
#include "ngx_http_tavus_text.h"
#include "ngx_http_tavus_validate.h"
#include "fuzz_common.h"


static ngx_str_t  request_id = ngx_string("0123456789abcdef0123456789abcdef");

static const char  id_chars[] =
    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";


/* a JSON string value equal to len bytes at data (data may be NULL) */

static int
same(cJSON *item, u_char *data, size_t len)
{
    return cJSON_IsString(item) && item->valuestring != NULL
           && strlen(item->valuestring) == len
           && (len == 0 || memcmp(item->valuestring, data, len) == 0);
}


/*
 * the decoded text of a JSON body: its string values, each followed by a
 * NUL; what a client reads (escapes like \u007f are not text)
 */

static u_char *
decoded(u_char *out, size_t n, size_t *len)
{
    u_char  *text, *p;
    cJSON   *root, *item;

    root = cJSON_ParseWithLength((const char *) out, n);
    fuzz_assert(cJSON_IsObject(root), "body is not a JSON object");

    text = malloc(n + 1);
    fuzz_assert(text != NULL, "malloc");
    p = text;

    cJSON_ArrayForEach(item, root) {
        if (cJSON_IsString(item)) {
            p = (u_char *) stpcpy((char *) p, item->valuestring) + 1;
        }
    }

    cJSON_Delete(root);

    *len = p - text;

    return text;
}


static u_char *
render(ngx_http_tavus_answer_t *a, ngx_str_t *rid, ngx_uint_t hard,
    size_t *n)
{
    u_char  *out, *last;
    size_t   len;

    len = ngx_http_tavus_json_length(a, rid, &request_id);

    /* exactly the computed length: writing more is a heap overflow */

    out = malloc(len);
    fuzz_assert(out != NULL, "malloc %zu", len);

    last = ngx_http_tavus_json_write(out, a, rid, hard, &request_id);

    fuzz_assert(last >= out && (size_t) (last - out) <= len,
                "wrote %td of %zu", last - out, len);

    *n = last - out;

    return out;
}


static void
check_status(ngx_http_tavus_answer_t *a, ngx_uint_t status)
{
    ngx_uint_t  want_outcome, want_status;

    if (status >= 200 && status < 300) {
        want_outcome = NGX_HTTP_TAVUS_DELETED; want_status = 200;

    } else if (status == 401 || status == 403) {
        want_outcome = NGX_HTTP_TAVUS_UPSTREAM_REJECTED_KEY; want_status = 502;

    } else if (status == 404) {
        want_outcome = NGX_HTTP_TAVUS_NOT_FOUND; want_status = 404;

    } else if (status == 429) {
        want_outcome = NGX_HTTP_TAVUS_RATE_LIMITED; want_status = 429;

    } else if (status >= 400 && status < 500) {
        want_outcome = NGX_HTTP_TAVUS_UPSTREAM_CLIENT_ERROR;
        want_status = status;

    } else {
        want_outcome = NGX_HTTP_TAVUS_UPSTREAM_ERROR; want_status = 502;
    }

    fuzz_assert(a->outcome == want_outcome && a->status == want_status,
                "upstream %u: outcome %u status %u, want %u %u",
                (unsigned) status, (unsigned) a->outcome,
                (unsigned) a->status, (unsigned) want_outcome,
                (unsigned) want_status);
}


static void
check_json(u_char *out, size_t n, ngx_http_tavus_answer_t *a,
    ngx_str_t *rid, ngx_uint_t hard)
{
    size_t      i;
    cJSON      *root, *item;
    ngx_str_t  *code;

    fuzz_assert(fuzz_valid_utf8(out, n), "body is not valid UTF-8");
    fuzz_assert(n >= 2 && out[n - 2] == '}' && out[n - 1] == '\n',
                "body does not end with \"}\\n\"");

    for (i = 0; i + 1 < n; i++) {
        fuzz_assert(out[i] >= 0x20 && out[i] != 0x7f,
                    "raw control byte 0x%02x at %zu", out[i], i);
    }

    root = cJSON_ParseWithLength((const char *) out, n);
    fuzz_assert(cJSON_IsObject(root), "body is not a JSON object: %.*s",
                (int) n, out);

    item = cJSON_GetObjectItemCaseSensitive(root, "request_id");
    fuzz_assert(same(item, request_id.data, request_id.len), "request_id");

    if (a->outcome == NGX_HTTP_TAVUS_DELETED
        || a->outcome == NGX_HTTP_TAVUS_DRY_RUN)
    {
        item = cJSON_GetObjectItemCaseSensitive(root, "replica_id");
        fuzz_assert(same(item, rid->data, rid->len), "replica_id");

        item = cJSON_GetObjectItemCaseSensitive(root, "hard");
        fuzz_assert(cJSON_IsBool(item) && !!cJSON_IsTrue(item) == !!hard,
                    "hard");

        item = cJSON_GetObjectItemCaseSensitive(root, "deleted");
        fuzz_assert(cJSON_IsBool(item)
                    && !!cJSON_IsTrue(item)
                       == (a->outcome == NGX_HTTP_TAVUS_DELETED),
                    "deleted");

    } else {
        item = cJSON_GetObjectItemCaseSensitive(root, "error");
        fuzz_assert(same(item, a->message.data, a->message.len),
                    "error is not the message");

        code = ngx_http_tavus_outcome_name(a->outcome);
        item = cJSON_GetObjectItemCaseSensitive(root, "code");
        fuzz_assert(same(item, code->data, code->len), "code");

        item = cJSON_GetObjectItemCaseSensitive(root, "replica_id");

        if (rid == NULL || rid->len == 0) {
            fuzz_assert(cJSON_IsNull(item), "replica_id is not null");

        } else {
            fuzz_assert(same(item, rid->data, rid->len), "replica_id");
        }
    }

    cJSON_Delete(root);
}


int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    u_char                   *body, *buf, *out, *base, *text, *base_text;
    size_t                    i, n, bn, tn, btn, len;
    uint8_t                   flags, sel;
    ngx_str_t                 key, id, *rid;
    ngx_uint_t                status, hard;
    ngx_http_tavus_answer_t   a, fixed;

    u_char  key_data[48], id_data[NGX_HTTP_TAVUS_REPLICA_ID_MAX];

    if (size < 5) {
        return 0;
    }

    flags = data[0];
    sel = data[1];
    status = 100 + ((data[1] << 8) | data[2]) % 500;
    hard = (flags & 2) ? 1 : 0;

    key.len = data[3] % sizeof(key_data);
    data += 4; size -= 4;

    if (key.len > size) {
        key.len = size;
    }

    for (i = 0; i < key.len; i++) {
        key_data[i] = 0x20 + data[i] % 95;
    }

    if (key.len && key_data[0] == ' ') {
        key_data[0] = 'k';
    }

    if (key.len && key_data[key.len - 1] == ' ') {
        key_data[key.len - 1] = 'k';
    }

    key.data = key_data;
    data += key.len; size -= key.len;

    fuzz_assert(key.len == 0
                || ngx_http_tavus_valid_key(key.data, key.len) == NGX_OK,
                "the harness made an invalid key");

    if (size == 0) {
        return 0;
    }

    id.len = data[0] % (NGX_HTTP_TAVUS_REPLICA_ID_MAX + 1);
    data++; size--;

    if (id.len > size) {
        id.len = size;
    }

    for (i = 0; i < id.len; i++) {
        id_data[i] = id_chars[data[i] % (sizeof(id_chars) - 1)];
    }

    id.data = id_data;
    data += id.len; size -= id.len;

    /* the key search the module redacts with, against a plain one */

    fuzz_assert(ngx_http_tavus_contains((u_char *) data, size, &key)
                == (fuzz_find(data, size, key.data, key.len) != NULL),
                "ngx_http_tavus_contains() of a %zu-byte key", key.len);

    /* the upstream body, NUL-terminated as the module hands it over */

    body = malloc(size + 1);
    buf = malloc(NGX_HTTP_TAVUS_MESSAGE_MAX);
    fuzz_assert(body != NULL && buf != NULL, "malloc");

    memcpy(body, data, size);
    body[size] = '\0';

    if (flags & 1) {
        ngx_http_tavus_translate(&a, status, body, size,
                                 key.len ? &key : NULL, buf);
        check_status(&a, status);

    } else {
        ngx_http_tavus_answer_init(&a, sel % 16);
    }

    fuzz_assert(a.message.len <= NGX_HTTP_TAVUS_MESSAGE_MAX,
                "message of %zu bytes", a.message.len);
    fuzz_assert(fuzz_valid_utf8(a.message.data, a.message.len),
                "message is not valid UTF-8");

    /* a validated id always comes with a deletion */

    if (a.outcome == NGX_HTTP_TAVUS_DELETED
        || a.outcome == NGX_HTTP_TAVUS_DRY_RUN)
    {
        if (id.len == 0) {
            id.data = (u_char *) "r1";
            id.len = 2;
        }

        rid = &id;

    } else {
        rid = (flags & 4) ? NULL : &id;
    }

    out = render(&a, rid, hard, &n);
    check_json(out, n, &a, rid, hard);

    /* the key: never from the upstream's text into the answer */

    if (key.len) {
        ngx_http_tavus_answer_init(&fixed, a.outcome);
        fixed.status = a.status;

        base = render(&fixed, rid, hard, &bn);

        /* in what a client reads of the answer */

        text = decoded(out, n, &tn);
        base_text = decoded(base, bn, &btn);

        fuzz_assert(fuzz_find(text, tn, key.data, key.len) == NULL
                    || fuzz_find(base_text, btn, key.data, key.len) != NULL,
                    "the key \"%.*s\" is in the answer: %.*s",
                    (int) key.len, key.data, (int) n, out);

        free(text);
        free(base_text);

        len = fixed.message.len;

        fuzz_assert(fuzz_find(a.message.data, a.message.len, key.data,
                              key.len) == NULL
                    || fuzz_find(fixed.message.data, len, key.data, key.len)
                       != NULL,
                    "the key is in the message");

        free(base);
    }

    free(out);
    free(buf);
    free(body);

    return 0;
}
