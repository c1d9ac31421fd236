
/*
 * Copyright (C) ngx_tavus_module authors
 *
 * Unit tests of the pure parts: validation and JSON translation.
 * Linked alone with libcjson; prints TAP.
 */


#include <ngx_config.h>
#include <ngx_core.h>
#include <cjson/cJSON.h>
#include "ngx_http_tavus_validate.h"
#include "ngx_http_tavus_outcome.h"
#include "ngx_http_tavus_translate.h"
#include "ngx_http_tavus_json.h"
#include "ngx_http_tavus_text.h"


static int  tests;
static int  failed;


#define ok(cond, name)                                                        \
    do {                                                                      \
        tests++;                                                              \
        if (cond) {                                                           \
            printf("ok %d - %s\n", tests, name);                              \
        } else {                                                              \
            failed++;                                                         \
            printf("not ok %d - %s (%s:%d)\n", tests, name, __FILE__,         \
                   __LINE__);                                                 \
        }                                                                     \
    } while (0)


#define S(s)  (u_char *) s, sizeof(s) - 1


static ngx_str_t  request_id = ngx_string("0123456789abcdef0123456789abcdef");


/* a check of a string: what a function of (data, len) must return */

typedef struct {
    u_char      *data;
    size_t       len;
    ngx_int_t    rc;
    const char  *name;
} str_case_t;


static void
check_strings(ngx_int_t (*f)(u_char *data, size_t len), str_case_t *c,
    size_t n)
{
    for ( /* void */ ; n; n--, c++) {
        ok(f(c->data, c->len) == c->rc, c->name);
    }
}


#define check_table(f, cases)                                                 \
    check_strings(f, cases, sizeof(cases) / sizeof(cases[0]))


static void
test_replica_id(void)
{
    static u_char  id[130];

    str_case_t  cases[] = {
        { S("rf3073f2dcc1"), NGX_OK, "id: a Tavus id" },
        { S("A-z_0-9"), NGX_OK, "id: all classes" },
        { S(""), NGX_DECLINED, "id: empty" },
        { id, 1, NGX_OK, "id: 1 byte" },
        { id, 128, NGX_OK, "id: 128 bytes" },
        { id, 129, NGX_DECLINED, "id: 129 bytes" },
        { S("a.b"), NGX_DECLINED, "id: dot" },
        { S("a/b"), NGX_DECLINED, "id: slash" },
        { S(".."), NGX_DECLINED, "id: dot dot" },
        { S("a%2Fb"), NGX_DECLINED, "id: percent" },
        { S("a b"), NGX_DECLINED, "id: space" },
        { S("a?hard=true"), NGX_DECLINED, "id: query" },
        { S("a\0b"), NGX_DECLINED, "id: NUL" },
        { S("r\xc3\xa9"), NGX_DECLINED, "id: non-ASCII" },
        { S("a\r\nb"), NGX_DECLINED, "id: CRLF" },
    };

    ngx_memset(id, 'a', sizeof(id));

    check_table(ngx_http_tavus_valid_replica_id, cases);
}


static void
test_hard(void)
{
    str_case_t  hard[] = {
        { S(""), 0, "hard: empty is false" },
        { S("false"), 0, "hard: false" },
        { S("true"), 1, "hard: true" },
        { S("TRUE"), NGX_ERROR, "hard: TRUE" },
        { S("1"), NGX_ERROR, "hard: 1" },
        { S("yes"), NGX_ERROR, "hard: yes" },
        { S("truex"), NGX_ERROR, "hard: truex" },
        { S("tru"), NGX_ERROR, "hard: tru" },
    };

    str_case_t  on[] = {
        { S("on"), 1, "switch: on" },
        { S("true"), 1, "switch: true" },
        { S("1"), 1, "switch: 1" },
        { S("off"), 0, "switch: off" },
        { S(""), 0, "switch: empty" },
        { S("ON"), 0, "switch: ON" },
        { S("11"), 0, "switch: 11" },
    };

    check_table(ngx_http_tavus_parse_hard, hard);
    check_table(ngx_http_tavus_parse_switch, on);
}


static void
test_key(void)
{
    str_case_t  cases[] = {
        { S("abc123"), NGX_OK, "key: plain" },
        { S("a b"), NGX_OK, "key: inner space" },
        { S(""), NGX_DECLINED, "key: empty" },
        { S("ab\rc"), NGX_DECLINED, "key: CR" },
        { S("ab\nc"), NGX_DECLINED, "key: LF" },
        { S("ab\tc"), NGX_DECLINED, "key: tab" },
        { S("ab\0c"), NGX_DECLINED, "key: NUL" },
        { S("ab\x7f"), NGX_DECLINED, "key: DEL" },
        { S("ab\xef\xbf\xbd"), NGX_DECLINED, "key: non-ASCII" },
        { S(" ab"), NGX_DECLINED, "key: leading space" },
        { S("ab "), NGX_DECLINED, "key: trailing space" },
    };

    check_table(ngx_http_tavus_valid_key, cases);
}


static void
test_utf8(void)
{
    size_t   i, n;
    u_char   out[1024];

    static const struct {
        u_char      *in;
        size_t       len;
        size_t       max;
        const char  *expect;
        const char  *name;
    } cases[] = {
        { S("hello"), 512, "hello", "utf8: ASCII" },
        { S("caf\xc3\xa9"), 512, "caf\xc3\xa9", "utf8: 2 bytes" },
        { S("\xe2\x82\xac"), 512, "\xe2\x82\xac", "utf8: 3 bytes" },
        { S("\xf0\x9f\x98\x80"), 512, "\xf0\x9f\x98\x80", "utf8: 4 bytes" },
        { S("a\xffz"), 512, "a\xef\xbf\xbdz", "utf8: 0xff replaced" },
        { S("\xc0\x80"), 512, "\xef\xbf\xbd\xef\xbf\xbd",
          "utf8: overlong replaced" },
        { S("\xed\xa0\x80"), 512, "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
          "utf8: surrogate replaced" },
        { S("\xf4\x90\x80\x80"), 512,
          "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd",
          "utf8: above U+10FFFF replaced" },
        { S("ab\xe2\x82"), 512, "ab\xef\xbf\xbd\xef\xbf\xbd",
          "utf8: truncated sequence replaced" },
        { S("abc\xe2\x82\xac"), 5, "abc",
          "utf8: cut before a split character" },
        { S("abc\xe2\x82\xac"), 6, "abc\xe2\x82\xac",
          "utf8: cut after a whole character" },
        { S("ab\xff"), 4, "ab", "utf8: replacement over the limit" },
    };

    for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        n = ngx_http_tavus_utf8_clean(out, cases[i].in, cases[i].len,
                                      cases[i].max);

        ok(n == strlen(cases[i].expect)
           && ngx_memcmp(out, cases[i].expect, n) == 0, cases[i].name);
    }

    ok(ngx_http_tavus_utf8_clean(NULL, NULL, 0, 512) == 0,
       "utf8: nothing from nothing, NULL included");
}


static cJSON *
answer_json(ngx_http_tavus_answer_t *a, ngx_str_t *id, ngx_uint_t hard)
{
    u_char  *buf, *last;
    size_t   len;
    cJSON   *json;

    len = ngx_http_tavus_json_length(a, id, &request_id);

    buf = malloc(len + 1);
    if (buf == NULL) {
        return NULL;
    }

    last = ngx_http_tavus_json_write(buf, a, id, hard, &request_id);

    if ((size_t) (last - buf) > len) {
        printf("# json_length %zu < written %zu\n", len,
               (size_t) (last - buf));
        free(buf);
        return NULL;
    }

    *last = '\0';
    json = cJSON_Parse((char *) buf);

    free(buf);

    return json;
}


static const char *
string_of(cJSON *json, const char *name)
{
    cJSON  *item;

    item = cJSON_GetObjectItemCaseSensitive(json, name);

    return cJSON_IsString(item) ? item->valuestring : NULL;
}


static int
translate_is(ngx_uint_t status, const char *body, ngx_uint_t estatus,
    const char *ecode, const char *emessage)
{
    int                       rc;
    u_char                   *copy, buf[NGX_HTTP_TAVUS_MESSAGE_MAX];
    size_t                    len;
    cJSON                    *json;
    const char               *code, *message;
    ngx_str_t                 key = ngx_string("sk-SECRET");
    ngx_str_t                 id = ngx_string("r1");
    ngx_http_tavus_answer_t   a;

    len = strlen(body);
    copy = malloc(len + 1);
    ngx_memcpy(copy, body, len + 1);

    ngx_http_tavus_translate(&a, status, copy, len, &key, buf);

    free(copy);

    json = answer_json(&a, &id, 0);
    if (json == NULL) {
        printf("# not valid JSON\n");
        return 0;
    }

    code = string_of(json, "code");
    message = string_of(json, "error");

    rc = a.status == estatus
         && string_of(json, "request_id")
         && ngx_strcmp(string_of(json, "request_id"), request_id.data) == 0;

    if (ecode == NULL) {
        rc = rc && code == NULL
             && cJSON_IsTrue(cJSON_GetObjectItem(json, "deleted"));

    } else {
        rc = rc && code && ngx_strcmp(code, ecode) == 0;
    }

    if (emessage) {
        rc = rc && message && ngx_strcmp(message, emessage) == 0;
    }

    if (!rc) {
        printf("# status %u code %s message %s\n", (unsigned) a.status,
               code ? code : "-", message ? message : "-");
    }

    cJSON_Delete(json);

    return rc;
}


#define GENERIC_400  "the upstream rejected the request"


static void
test_translate(void)
{
    char    deep[4096], big[2048];
    int     i;
    size_t  k;

    /* an upstream status and body, and the answer's status, code (NULL: a
     * deletion) and message (NULL: not checked) */

    static const struct {
        ngx_uint_t   status;
        const char  *body;
        ngx_uint_t   estatus;
        const char  *ecode;
        const char  *emessage;
        const char  *name;
    } cases[] = {
        { 200, "", 200, NULL, NULL, "200 empty: deleted" },
        { 200, "{\"x\":1}", 200, NULL, NULL, "200: deleted" },
        { 204, "", 200, NULL, NULL, "204: deleted" },

        { 400, "{\"error\":\"Invalid replica_id\"}", 400,
          "upstream_client_error", "Invalid replica_id",
          "400: message carried" },
        { 400, "not json", 400, "upstream_client_error", GENERIC_400,
          "400 not JSON: generic message" },
        { 401, "{\"message\":\"Invalid access token\"}", 502,
          "upstream_rejected_key",
          "the upstream rejected the gateway's API key",
          "401: rejected key, generic message" },
        { 403, "", 502, "upstream_rejected_key", NULL, "403: rejected key" },
        { 404, "{\"message\":\"no such replica\"}", 404, "not_found",
          "no such replica", "404: not found, message carried" },
        { 429, "", 429, "rate_limited", NULL, "429: rate limited" },
        { 418, "{\"error\":\"teapot\"}", 418, "upstream_client_error",
          "teapot", "418: same status" },
        { 500, "{\"error\":\"boom\"}", 502, "upstream_error",
          "the upstream failed", "500: upstream error, generic" },
        { 503, "", 502, "upstream_error", NULL, "503" },
        { 302, "", 502, "upstream_error", NULL, "302" },

        { 400, "[\"error\"]", 400, "upstream_client_error", GENERIC_400,
          "array root" },
        { 400, "{\"error\":42}", 400, "upstream_client_error", GENERIC_400,
          "error is a number" },
        { 400, "{\"error\":null,\"message\":\"m\"}", 400,
          "upstream_client_error", "m", "error null, message used" },
        { 400, "{\"error\":\"x\"", 400, "upstream_client_error",
          GENERIC_400, "unterminated object" },
        { 400, "{\"error\":\"x", 400, "upstream_client_error", GENERIC_400,
          "unterminated string" },
        { 400, "{\"error\":\"a\\u0000b\"}", 400, "upstream_client_error",
          "a", "\\u0000 ends the message" },
        { 400, "{\"error\":\"x\"} trailing", 400, "upstream_client_error",
          GENERIC_400, "garbage after the document" },
        { 400, "{\"error\":\"line\\nbreak \\\"q\\\" \\\\\"}", 400,
          "upstream_client_error", "line\nbreak \"q\" \\",
          "escapes survive the round trip" },
        { 400, "{\"n\":1e999999,\"error\":\"big\"}", 400,
          "upstream_client_error", "big", "huge number" },
        { 400, "{\"error\":\"bad key sk-SECRET here\"}", 400,
          "upstream_client_error", GENERIC_400,
          "a message with the key is replaced" },
        { 400, "{\"error\":\"bad key sk-\\u0053ECRET\"}", 400,
          "upstream_client_error", GENERIC_400,
          "a message with the key escaped is replaced" },
        { 400, "{\"error\":\"\xff\xfe\"}", 400, "upstream_client_error",
          "\xef\xbf\xbd\xef\xbf\xbd", "invalid UTF-8 replaced" },
    };

    for (k = 0; k < sizeof(cases) / sizeof(cases[0]); k++) {
        ok(translate_is(cases[k].status, cases[k].body, cases[k].estatus,
                        cases[k].ecode, cases[k].emessage),
           cases[k].name);
    }

    for (i = 0; i < 2000; i++) {
        deep[i] = '[';
    }
    deep[i] = '\0';

    ok(translate_is(400, deep, 400, "upstream_client_error", GENERIC_400),
       "deep nesting");

    ngx_memcpy(big, "{\"error\":\"", 10);
    ngx_memset(big + 10, 'x', 1000);
    ngx_memcpy(big + 1010, "\"}", 3);

    {
        u_char                   buf[NGX_HTTP_TAVUS_MESSAGE_MAX];
        ngx_http_tavus_answer_t  a;

        ngx_http_tavus_translate(&a, 400, (u_char *) big, strlen(big), NULL,
                                 buf);
        ok(a.message.len == NGX_HTTP_TAVUS_MESSAGE_MAX,
           "a long message is cut to 512 bytes");
    }
}


static void
test_answers(void)
{
    cJSON                    *json;
    ngx_str_t                 id = ngx_string("rf3073f2dcc1");
    ngx_str_t                 odd = ngx_string("a\"b\\c\x01");
    ngx_http_tavus_answer_t   a;

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_DELETED);
    json = answer_json(&a, &id, 1);
    ok(json && cJSON_IsTrue(cJSON_GetObjectItem(json, "deleted"))
       && cJSON_IsTrue(cJSON_GetObjectItem(json, "hard"))
       && ngx_strcmp(string_of(json, "replica_id"), "rf3073f2dcc1") == 0,
       "deleted answer, hard");
    cJSON_Delete(json);

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_DRY_RUN);
    json = answer_json(&a, &id, 0);
    ok(json && cJSON_IsFalse(cJSON_GetObjectItem(json, "deleted"))
       && cJSON_IsTrue(cJSON_GetObjectItem(json, "dry_run"))
       && cJSON_IsFalse(cJSON_GetObjectItem(json, "hard")),
       "dry-run answer");
    cJSON_Delete(json);

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_INVALID_REPLICA_ID);
    json = answer_json(&a, NULL, 0);
    ok(json && a.status == 400
       && cJSON_IsNull(cJSON_GetObjectItem(json, "replica_id"))
       && ngx_strcmp(string_of(json, "code"), "invalid_replica_id") == 0,
       "invalid id answer: replica_id null");
    cJSON_Delete(json);

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_METHOD_NOT_ALLOWED);
    ok(a.status == 405, "method not allowed: 405");

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_GATEWAY_MISCONFIGURED);
    ok(a.status == 500, "gateway misconfigured: 500");

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_UPSTREAM_TIMEOUT);
    ok(a.status == 504, "upstream timeout: 504");

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_HARD_DELETE_DENIED);
    ok(a.status == 403, "hard delete denied: 403");

    ngx_http_tavus_answer_init(&a, NGX_HTTP_TAVUS_UPSTREAM_ERROR);
    a.message = odd;
    json = answer_json(&a, &id, 0);
    ok(json && ngx_strcmp(string_of(json, "error"), "a\"b\\c\x01") == 0
       && ngx_strcmp(string_of(json, "replica_id"), "rf3073f2dcc1") == 0,
       "escaping of quotes, backslashes and control bytes");
    cJSON_Delete(json);

    ok(ngx_strcmp(ngx_http_tavus_outcome_name(NGX_HTTP_TAVUS_NOT_FOUND)->data,
                  "not_found") == 0,
       "outcome name");
}


/* random bodies: whatever comes in, the answer is valid JSON */

static void
test_random(void)
{
    int                       i, n, bad;
    u_char                    body[256], buf[NGX_HTTP_TAVUS_MESSAGE_MAX];
    size_t                    j, len;
    cJSON                    *json;
    uint32_t                  seed;
    ngx_str_t                 id = ngx_string("r1");
    ngx_http_tavus_answer_t   a;

    static const char  *frags[] = {
        "{", "}", "\"error\"", "\"message\"", ":", ",", "\"", "\\u0000",
        "\\ud800", "\xff", "\xc3", "[", "]", "1e400", "null", " ",
    };

    seed = 12345;
    bad = 0;

    for (i = 0; i < 20000; i++) {
        len = 0;
        n = (seed >> 8) % 24;

        for (j = 0; j < (size_t) n; j++) {
            const char  *f;

            seed = seed * 1103515245 + 12345;
            f = frags[(seed >> 16) % (sizeof(frags) / sizeof(frags[0]))];

            if (len + strlen(f) >= sizeof(body)) {
                break;
            }

            ngx_memcpy(body + len, f, strlen(f));
            len += strlen(f);
        }

        body[len] = '\0';
        seed = seed * 1103515245 + 12345;

        ngx_http_tavus_translate(&a, 400 + (seed >> 16) % 200, body, len,
                                 NULL, buf);

        json = answer_json(&a, &id, 0);
        if (json == NULL) {
            bad++;
        }

        cJSON_Delete(json);
    }

    ok(bad == 0, "20000 random bodies give valid JSON answers");
}


/* the rc of ngx_http_tavus_key_variable(), for a table */

static ngx_int_t
key_variable(u_char *data, size_t len)
{
    ngx_str_t  name;

    return ngx_http_tavus_key_variable(data, len, &name);
}


static void
test_key_variable(void)
{
    ngx_str_t  name;

    str_case_t  cases[] = {
        { S("Literal-Key_1"), NGX_DECLINED, "key syntax: a literal" },
        { S("Zq8$HiddenPart"), NGX_ERROR,
          "key syntax: a literal part, then a variable" },
        { S("$a$b"), NGX_ERROR, "key syntax: two variables" },
        { S("$a-b"), NGX_ERROR, "key syntax: a \"-\" in the name" },
        { S("$1"), NGX_ERROR, "key syntax: a capture" },
        { S("$1abc"), NGX_ERROR, "key syntax: a capture and a literal" },
        { S("$"), NGX_ERROR, "key syntax: $ alone" },
        { S("x$"), NGX_ERROR, "key syntax: $ at the end" },
        { S("${}"), NGX_ERROR, "key syntax: ${}" },
        { S("${a"), NGX_ERROR, "key syntax: ${ unclosed" },
        { S("$a}"), NGX_ERROR, "key syntax: a stray }" },
        { S("${a}b"), NGX_ERROR, "key syntax: ${a}b" },
        { S("{$a}"), NGX_ERROR, "key syntax: {$a}" },
    };

    check_table(key_variable, cases);

    /* a variable: its name */

    ok(ngx_http_tavus_key_variable(S("$tenant_key"), &name) == NGX_OK
       && name.len == 10 && ngx_strncmp(name.data, "tenant_key", 10) == 0,
       "key syntax: $name");
    ok(ngx_http_tavus_key_variable(S("${tenant_key}"), &name) == NGX_OK
       && name.len == 10 && ngx_strncmp(name.data, "tenant_key", 10) == 0,
       "key syntax: ${name}");
    ok(ngx_http_tavus_key_variable(S("$_x9"), &name) == NGX_OK
       && name.len == 3, "key syntax: $_x9");
}


/* where ngx_http_tavus_numbered_capture() finds one: -1 for none */

static ngx_int_t
numbered_capture(u_char *data, size_t len)
{
    u_char  *p;

    p = ngx_http_tavus_numbered_capture(data, len);

    return p ? p - data : -1;
}


static void
test_numbered_capture(void)
{
    str_case_t  cases[] = {
        { S("$1"), 0, "captures: $1" },
        { S("$9"), 0, "captures: $9" },
        { S("r-$2"), 2, "captures: after a literal" },
        { S("${replica_id}$3"), 13, "captures: after a variable" },
        { S("$10abc"), 0, "captures: $10abc is $1, then 0abc" },
        { S("$0"), -1, "captures: $0 is none" },
        { S("$replica_id"), -1, "captures: a named one" },
        { S("$arg_r1"), -1, "captures: a name with a digit" },
        { S("${r1}"), -1, "captures: ${r1}" },
        { S("r1"), -1, "captures: a literal with a digit" },
        { S("x$"), -1, "captures: $ at the end" },
        { S(""), -1, "captures: empty" },
    };

    check_table(numbered_capture, cases);
}


static void
test_host(void)
{
    ngx_str_t  host;

#define host_is(in, vars, rc, want)                                           \
    ok(ngx_http_tavus_parse_host(S(in), vars, &host) == rc                    \
       && (rc != NGX_OK || (host.len == sizeof(want) - 1                      \
                            && ngx_memcmp(host.data, want, host.len) == 0)),  \
       "host: " #in)

    host_is("tavusapi.com", 0, NGX_OK, "tavusapi.com");
    host_is("tavusapi.com/", 0, NGX_OK, "tavusapi.com");
    host_is("127.0.0.1:8443", 0, NGX_OK, "127.0.0.1:8443");
    host_is("[::1]:8443", 0, NGX_OK, "[::1]:8443");
    host_is("my_group-2", 0, NGX_OK, "my_group-2");
    host_is("a/b", 0, NGX_DECLINED, "");
    host_is("a//", 0, NGX_DECLINED, "");
    host_is("a?x", 0, NGX_DECLINED, "");
    host_is("a#x", 0, NGX_DECLINED, "");
    host_is("", 0, NGX_ERROR, "");
    host_is("/", 0, NGX_ERROR, "");
    host_is("a b", 0, NGX_ERROR, "");
    host_is("exa\"mple", 0, NGX_ERROR, "");
    host_is("a\xc2\x9b" "b", 0, NGX_ERROR, "");
    host_is("a\nb", 0, NGX_ERROR, "");
    host_is("${tavus_host}", 1, NGX_OK, "${tavus_host}");
    host_is("${tavus_host}", 0, NGX_ERROR, "");
    host_is("$h/x", 1, NGX_DECLINED, "");

#undef host_is
}


static void
test_lines(void)
{
    str_case_t  status[] = {
        { S("HTTP/1.1 200 OK\r\n"), NGX_OK, "status line: 200 OK" },
        { S("HTTP/1.0 204 No Content\n"), NGX_OK, "status line: bare LF" },
        { S("HTTP/1.1 200\r\n"), NGX_OK, "status line: no reason" },
        { S("HTTP/1.1 200 \r\n"), NGX_OK, "status line: empty reason" },
        { S("HTTP/1.1 404 Not\tFound \xc3\xa9\r\n"), NGX_OK,
          "status line: HTAB and obs-text in the reason" },
        { S("HTTP/1.10 200 OK\r\n"), NGX_DECLINED, "status line: 1.10" },
        { S("HTTP/1.01 200 OK\r\n"), NGX_DECLINED, "status line: 1.01" },
        { S("HTTP/2.0 200 OK\r\n"), NGX_DECLINED, "status line: 2.0" },
        { S("HTTP/1.1  200 OK\r\n"), NGX_DECLINED,
          "status line: two spaces" },
        { S("HTTP/1.1 200.5 OK\r\n"), NGX_DECLINED, "status line: 200.5" },
        { S("HTTP/1.1 20 OK\r\n"), NGX_DECLINED, "status line: 2 digits" },
        { S("HTTP/1.1 2000 OK\r\n"), NGX_DECLINED, "status line: 4 digits" },
        { S("HTTP/1.1 200 O\x01" "K\r\n"), NGX_DECLINED,
          "status line: a control byte" },
        { S("HTTP/1.1 200 OK\x7f\r\n"), NGX_DECLINED, "status line: DEL" },
        { S("HTTP/1.1 200 OK\r\r\n"), NGX_DECLINED, "status line: CR CR" },
        { S("HTTP/1.1 200 OK"), NGX_DECLINED, "status line: no end" },
        { S("http/1.1 200 OK\r\n"), NGX_DECLINED,
          "status line: lowercase" },
    };

    str_case_t  token[] = {
        { S("Content-Length"), NGX_OK, "token: a header name" },
        { S("!#$%&'*+-.^_`|~09aZ"), NGX_OK, "token: every tchar" },
        { S(""), NGX_DECLINED, "token: empty" },
        { S("X@Y"), NGX_DECLINED, "token: @" },
        { S("X Y"), NGX_DECLINED, "token: a space" },
        { S("X/Y"), NGX_DECLINED, "token: /" },
        { S("X\xc3\xa9"), NGX_DECLINED, "token: a byte above ASCII" },
    };

    str_case_t  value[] = {
        { S(""), NGX_OK, "field value: empty" },
        { S("application/json"), NGX_OK, "field value: plain" },
        { S("Tue, 01 Dec 2026 22:56:00 GMT"), NGX_OK,
          "field value: longer than a word" },
        { S("a\tb c \xc3\xa9 \xff"), NGX_OK,
          "field value: HTAB, SP, obs-text" },
        { S("0123456789abcdef\x01"), NGX_DECLINED,
          "field value: a control byte after two words" },
        { S("01234567\x7f"), NGX_DECLINED, "field value: DEL after a word" },
        { S("a\x01" "b"), NGX_DECLINED, "field value: a control byte" },
        { S("a\x7f" "b"), NGX_DECLINED, "field value: DEL" },
        { S("a\r\nb"), NGX_DECLINED, "field value: CR LF" },
        { S("a\0b"), NGX_DECLINED, "field value: NUL" },
        { S("\xff\xff\xff\xff\xff\xff\xff\xff\x7f"), NGX_DECLINED,
          "field value: DEL after a word of 0xff" },
    };

    check_table(ngx_http_tavus_valid_status_line, status);
    check_table(ngx_http_tavus_valid_token, token);
    check_table(ngx_http_tavus_valid_field_value, value);
}


static void
test_log_escape(void)
{
    u_char  out[NGX_HTTP_TAVUS_LOG_ESCAPE(64)];
    size_t  n;

#define esc(in, want)                                                         \
    n = ngx_http_tavus_log_escape(out, S(in));                                \
    ok(n == sizeof(want) - 1 && ngx_memcmp(out, want, n) == 0,                \
       "log escape: " #in)

    esc("plain text", "plain text");
    esc("a\nb\r\tc", "a\\x0ab\\x0d\\x09c");
    esc("\x1b[31m", "\\x1b[31m");
    esc("q\"b\\", "q\\x22b\\x5c");
    esc("\x7f", "\\x7f");
    esc("\xc3\xa9t\xc3\xa9", "\xc3\xa9t\xc3\xa9");
    esc("\xf0\x9f\x98\x80", "\xf0\x9f\x98\x80");
    esc("\xc2\x9b", "\\xc2\\x9b");
    esc("\xe2\x80\xae", "\\xe2\\x80\\xae");
    esc("\xe2\x80\xa8", "\\xe2\\x80\\xa8");
    esc("\xe2\x81\xa6", "\\xe2\\x81\\xa6");
    esc("\xd8\x9c", "\\xd8\\x9c");
    esc("\xe2\x80\x99", "\xe2\x80\x99");
    esc("\xc3\x0a", "\\xc3\\x0a");
    esc("\xe0\x80\x8a", "\\xe0\\x80\\x8a");
    esc("\xff\xc3", "\\xff\\xc3");

#undef esc
}


int
main(void)
{
    test_replica_id();
    test_hard();
    test_key();
    test_utf8();
    test_translate();
    test_answers();
    test_random();
    test_key_variable();
    test_numbered_capture();
    test_host();
    test_lines();
    test_log_escape();

    printf("1..%d\n", tests);

    if (failed) {
        printf("# %d of %d failed\n", failed, tests);
        return 1;
    }

    return 0;
}
