/* jn_http_client against the project's own HTTP server over loopback, in one process on
 * one loop. Every test ends by stopping the server and closing the client, and checks
 * that the loop is then empty (uv_loop_close succeeds): nothing may be left open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "http_server.h"
#include "net_fixture.h"

/* ---- fixture: a loop, a server with a small handler, a client ------------------------ */

typedef struct {
    uv_loop_t loop;
    jn_http_server *srv;
    jn_http_client *cli;
    uv_timer_t watchdog;
    char base[64];
    int delay_ms; /* how long /slow holds its answer */
    int served;
    int shut;
    int server_stopped, client_closed;
} fx;

static void handler(void *ud, const jn_http_request *req, jn_http_response *res) {
    fx *f = ud;
    f->served++;
    char path[128];
    snprintf(path, sizeof path, "%.*s", (int)req->path_len, req->path);
    res->content_type = "text/plain";
    if (strcmp(path, "/hello") == 0) {
        jn_http_respond(res, 200, "hello world", 11);
        snprintf(res->etag, sizeof res->etag, "\"v1\"");
    } else if (strcmp(path, "/empty") == 0) {
        jn_http_respond(res, 200, "", 0);
    } else if (strcmp(path, "/echo") == 0) {
        /* The server's parser keeps only these two request headers: they are what the
         * test sends and expects back. */
        jn_sb sb;
        jn_sb_init(&sb);
        jn_sb_printf(&sb, "method=%s\nct=%s\ninm=%s\nbody=", req->method_name,
                     req->content_type ? req->content_type : "-",
                     req->if_none_match ? req->if_none_match : "-");
        jn_sb_append(&sb, req->body, req->body_len);
        jn_http_respond(res, 200, sb.data, sb.len);
        jn_sb_free(&sb);
    } else if (strcmp(path, "/busy") == 0) {
        jn_http_respond_error(res, 503, "busy");
        snprintf(res->headers, sizeof res->headers, "Retry-After: 7\r\n");
    } else if (strcmp(path, "/busy-lower") == 0) {
        jn_http_respond_error(res, 503, "busy");
        snprintf(res->headers, sizeof res->headers, "retry-after: 3\r\netag: \"low\"\r\n");
    } else if (strcmp(path, "/busy-date") == 0) {
        jn_http_respond_error(res, 503, "busy");
        time_t t = time(NULL) + 30;
        struct tm tm;
        gmtime_r(&t, &tm);
        char date[64];
        strftime(date, sizeof date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        snprintf(res->headers, sizeof res->headers, "Retry-After: %s\r\n", date);
    } else if (strcmp(path, "/busy-bad") == 0) {
        jn_http_respond_error(res, 503, "busy");
        snprintf(res->headers, sizeof res->headers, "Retry-After: soon\r\n");
    } else if (strcmp(path, "/slow") == 0) {
        jn_http_respond(res, 200, "late", 4);
        res->delay_ms = f->delay_ms;
    } else {
        jn_http_respond_error(res, 404, "no such thing");
    }
}

static void on_watchdog(uv_timer_t *t) {
    (void)t;
    fail_msg("the test did not finish within 10 s");
}

static void fx_start(fx *f) {
    memset(f, 0, sizeof *f);
    f->delay_ms = 300;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv = fixture_server_start(&f->loop, "test", NULL, handler, f);
    snprintf(f->base, sizeof f->base, "http://127.0.0.1:%d", jn_http_server_port(f->srv));
    f->cli = jn_http_client_new(&f->loop);
    assert_non_null(f->cli);
    uv_timer_init(&f->loop, &f->watchdog);
    uv_timer_start(&f->watchdog, on_watchdog, 10000, 0);
}

static void on_server_stopped(void *arg) {
    ((fx *)arg)->server_stopped = 1;
}

static void on_client_closed(void *arg) {
    ((fx *)arg)->client_closed = 1;
}

/* Ends the test: everything is asked to close, and the loop then runs dry. */
static void fx_shutdown(fx *f) {
    if (f->shut) return;
    f->shut = 1;
    jn_http_server_stop(f->srv, on_server_stopped, f);
    jn_http_client_close(f->cli, on_client_closed, f);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
}

static void fx_run(fx *f) {
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_true(f->shut);
    assert_true(f->server_stopped);
    assert_true(f->client_closed);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

/* ---- results ------------------------------------------------------------------------ */

typedef struct {
    fx *f;
    int called;
    int curl_code;
    long status;
    char *body;
    size_t body_len;
    char etag[128];
    long retry_after;
    char err[256];
    double total;
    int shutdown_after; /* count of results to wait for before ending the test */
    int *counter;
} result;

static void on_result(void *ud, jn_http_result *res) {
    result *r = ud;
    r->called++;
    r->curl_code = res->curl_code;
    r->status = res->status;
    assert_non_null(res->body.data); /* a C string even when empty */
    assert_int_equal(res->body.data[res->body.len], '\0');
    r->body_len = res->body.len;
    r->body = jn_sb_steal(&res->body); /* the client must cope with a stolen body */
    snprintf(r->etag, sizeof r->etag, "%s", res->etag);
    r->retry_after = res->retry_after_s;
    assert_non_null(res->curl_error);
    snprintf(r->err, sizeof r->err, "%s", res->curl_error);
    r->total = res->total_s;
    if (r->counter && ++*r->counter == r->shutdown_after) fx_shutdown(r->f);
}

static void start(fx *f, const char *method, const char *path, long timeout_ms, result *r) {
    char url[256];
    snprintf(url, sizeof url, "%s%s", f->base, path);
    jn_http_request_opts o = {.method = method, .url = url, .timeout_ms = timeout_ms};
    r->f = f;
    assert_int_equal(jn_http_client_request(f->cli, &o, on_result, r), 0);
}

/* Runs one request to completion and ends the test. */
static void one(fx *f, const char *method, const char *path, long timeout_ms, result *r) {
    int n = 0;
    r->counter = &n;
    r->shutdown_after = 1;
    start(f, method, path, timeout_ms, r);
    fx_run(f);
    assert_int_equal(r->called, 1);
}

/* ---- tests -------------------------------------------------------------------------- */

static void test_get_status_body_etag(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    result r = {0};
    one(&f, "GET", "/hello", 5000, &r);
    assert_int_equal(r.curl_code, 0);
    assert_string_equal(r.err, "");
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 11);
    assert_string_equal(r.body, "hello world");
    assert_string_equal(r.etag, "\"v1\"");
    assert_int_equal(r.retry_after, -1);
    assert_true(r.total > 0 && r.total < 5);
    free(r.body);
}

static void test_empty_body_is_a_c_string(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    result r = {0};
    one(&f, NULL, "/empty", 5000, &r); /* NULL method means GET */
    assert_int_equal(r.status, 200);
    assert_int_equal(r.body_len, 0);
    assert_string_equal(r.body, "");
    assert_string_equal(r.etag, "");
    free(r.body);
}

static void test_post_sends_body_and_headers(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    /* 1.5 MiB with NULs in it: copied whole, and over the 1 MiB at which curl would
     * otherwise send "Expect: 100-continue" and wait for the server's go-ahead. */
    size_t blen = 3 << 19;
    char *body = malloc(blen);
    for (size_t i = 0; i < blen; i++)
        body[i] = (char)(i % 251);
    const char *headers[] = {"Content-Type: application/x-test", "If-None-Match: \"zz\"", NULL};
    char url[256];
    snprintf(url, sizeof url, "%s/echo", f.base);
    jn_http_request_opts o = {.method = "POST",
                              .url = url,
                              .body = body,
                              .body_len = blen,
                              .headers = headers,
                              .timeout_ms = 5000};
    int n = 0;
    result r = {.f = &f, .counter = &n, .shutdown_after = 1};
    assert_int_equal(jn_http_client_request(f.cli, &o, on_result, &r), 0);
    free(body); /* the client copied it */
    fx_run(&f);
    assert_int_equal(r.curl_code, 0);
    assert_int_equal(r.status, 200);
    const char *prefix = "method=POST\nct=application/x-test\ninm=\"zz\"\nbody=";
    size_t plen = strlen(prefix);
    assert_int_equal(r.body_len, plen + blen);
    assert_memory_equal(r.body, prefix, plen);
    for (size_t i = 0; i < blen; i++)
        if (r.body[plen + i] != (char)(i % 251)) fail_msg("body differs at byte %zu", i);
    free(r.body);
}

static void test_custom_methods(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    int n = 0;
    result put = {.f = &f, .counter = &n, .shutdown_after = 5};
    result del = put, get = put, post = put, head = put;
    char url[256];
    snprintf(url, sizeof url, "%s/echo", f.base);
    const char *headers[] = {"Content-Type: application/json", NULL};
    jn_http_request_opts o = {
        .method = "PUT", .url = url, .body = "{}", .body_len = 2, .headers = headers};
    assert_int_equal(jn_http_client_request(f.cli, &o, on_result, &put), 0);
    /* A body alone would turn GET into POST. */
    o.method = "GET";
    assert_int_equal(jn_http_client_request(f.cli, &o, on_result, &get), 0);
    start(&f, "DELETE", "/echo", 5000, &del);
    start(&f, "POST", "/echo", 5000, &post); /* no body: Content-Length: 0 */
    start(&f, "HEAD", "/hello", 5000, &head);
    fx_run(&f);
    assert_int_equal(put.status, 200);
    assert_string_equal(put.body, "method=PUT\nct=application/json\ninm=-\nbody={}");
    assert_int_equal(get.status, 200);
    assert_string_equal(get.body, "method=GET\nct=application/json\ninm=-\nbody={}");
    assert_int_equal(del.status, 200);
    assert_string_equal(del.body, "method=DELETE\nct=-\ninm=-\nbody=");
    assert_int_equal(post.status, 200);
    assert_string_equal(post.body,
                        "method=POST\nct=application/x-www-form-urlencoded\ninm=-\nbody=");
    assert_int_equal(head.curl_code, 0);
    assert_int_equal(head.status, 200);
    assert_int_equal(head.body_len, 0);
    assert_string_equal(head.etag, "\"v1\"");
    free(put.body);
    free(get.body);
    free(del.body);
    free(post.body);
    free(head.body);
}

static void test_404_is_a_response(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    result r = {0};
    one(&f, "GET", "/nope", 5000, &r);
    assert_int_equal(r.curl_code, 0);
    assert_int_equal(r.status, 404);
    assert_non_null(strstr(r.body, "no such thing"));
    free(r.body);
}

static void test_retry_after(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    int n = 0;
    result secs = {.counter = &n, .shutdown_after = 4}, lower = secs, date = secs, bad = secs;
    start(&f, "GET", "/busy", 5000, &secs);
    start(&f, "GET", "/busy-lower", 5000, &lower);
    start(&f, "GET", "/busy-date", 5000, &date);
    start(&f, "GET", "/busy-bad", 5000, &bad);
    fx_run(&f);
    assert_int_equal(secs.status, 503);
    assert_int_equal(secs.curl_code, 0);
    assert_int_equal(secs.retry_after, 7);
    /* Header names are case-insensitive. */
    assert_int_equal(lower.retry_after, 3);
    assert_string_equal(lower.etag, "\"low\"");
    /* An HTTP-date 30 s ahead; a second may tick between server and client. */
    assert_in_range(date.retry_after, 28, 31);
    assert_int_equal(bad.status, 503);
    assert_int_equal(bad.retry_after, -1);
    free(secs.body);
    free(lower.body);
    free(date.body);
    free(bad.body);
}

static void test_connection_refused(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    char url[64];
    snprintf(url, sizeof url, "http://127.0.0.1:%d/x", free_port());
    jn_http_request_opts o = {.url = url, .timeout_ms = 5000, .connect_timeout_ms = 2000};
    int n = 0;
    result r = {.f = &f, .counter = &n, .shutdown_after = 1};
    assert_int_equal(jn_http_client_request(f.cli, &o, on_result, &r), 0);
    fx_run(&f);
    assert_int_equal(r.curl_code, CURLE_COULDNT_CONNECT);
    assert_int_equal(r.status, 0);
    assert_true(strlen(r.err) > 0);
    assert_int_equal(r.body_len, 0);
    assert_int_equal(r.retry_after, -1);
    free(r.body);
}

static void test_unsupported_scheme_fails_in_callback(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_http_request_opts o = {.url = "file:///etc/hostname"};
    int n = 0;
    result r = {.f = &f, .counter = &n, .shutdown_after = 1};
    assert_int_equal(jn_http_client_request(f.cli, &o, on_result, &r), 0);
    jn_http_request_opts no_url = {.method = "GET"};
    assert_int_equal(jn_http_client_request(f.cli, &no_url, on_result, &r), -1);
    fx_run(&f);
    assert_int_equal(r.called, 1);
    assert_int_equal(r.curl_code, CURLE_UNSUPPORTED_PROTOCOL);
    assert_int_equal(r.status, 0);
    free(r.body);
}

static void test_timeout(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    f.delay_ms = 400;
    result r = {0};
    one(&f, "GET", "/slow", 100, &r);
    assert_int_equal(r.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(r.status, 0);
    assert_true(strlen(r.err) > 0);
    assert_true(r.total >= 0.09 && r.total < 2); /* generous: loaded CI machines */
    free(r.body);
}

/* Both time out in the same curl_multi_socket_action call: every finished transfer must
 * be collected then, not one per wake-up (nothing else would wake the loop). */
static void test_simultaneous_timeouts(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    f.delay_ms = 400;
    int n = 0;
    result a = {.counter = &n, .shutdown_after = 2}, b = a;
    start(&f, "GET", "/slow", 100, &a);
    start(&f, "GET", "/slow", 100, &b);
    fx_run(&f);
    assert_int_equal(a.curl_code, CURLE_OPERATION_TIMEDOUT);
    assert_int_equal(b.curl_code, CURLE_OPERATION_TIMEDOUT);
    free(a.body);
    free(b.body);
}

/* ---- many at once ------------------------------------------------------------------- */

typedef struct {
    fx *f;
    int done, ok;
    int total;
} many;

static void on_many(void *ud, jn_http_result *res) {
    many *m = ud;
    m->done++;
    /* The body is left in place: the client frees it. */
    if (res->curl_code == 0 && res->status == 200 && res->body.len == 11 &&
        memcmp(res->body.data, "hello world", 11) == 0)
        m->ok++;
    assert_int_equal(jn_http_client_inflight(m->f->cli), m->total - m->done);
    if (m->done == m->total) fx_shutdown(m->f);
}

static void test_fifty_concurrent(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    many m = {.f = &f, .total = 50};
    char url[256];
    snprintf(url, sizeof url, "%s/hello", f.base);
    jn_http_request_opts o = {.method = "GET", .url = url, .timeout_ms = 5000};
    for (int i = 0; i < m.total; i++)
        assert_int_equal(jn_http_client_request(f.cli, &o, on_many, &m), 0);
    assert_int_equal(jn_http_client_inflight(f.cli), 50);
    assert_int_equal(m.done, 0); /* never called from inside jn_http_client_request */
    fx_run(&f);
    assert_int_equal(m.done, 50);
    assert_int_equal(m.ok, 50);
    assert_int_equal(f.served, 50);
}

/* ---- re-entrancy -------------------------------------------------------------------- */

typedef struct {
    fx *f;
    int done;
    char url[256];
} chain;

static void on_chain(void *ud, jn_http_result *res) {
    chain *ch = ud;
    assert_int_equal(res->status, 200);
    if (++ch->done == 5) {
        fx_shutdown(ch->f);
        return;
    }
    jn_http_request_opts o = {.url = ch->url, .timeout_ms = 5000};
    assert_int_equal(jn_http_client_request(ch->f->cli, &o, on_chain, ch), 0);
    assert_int_equal(jn_http_client_inflight(ch->f->cli), 1);
}

static void test_request_from_callback(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    chain ch = {.f = &f};
    snprintf(ch.url, sizeof ch.url, "%s/hello", f.base);
    jn_http_request_opts o = {.url = ch.url, .timeout_ms = 5000};
    assert_int_equal(jn_http_client_request(f.cli, &o, on_chain, &ch), 0);
    fx_run(&f);
    assert_int_equal(ch.done, 5);
    assert_int_equal(f.served, 5);
}

/* ---- closing ------------------------------------------------------------------------ */

typedef struct {
    fx *f;
    int aborted, other;
    int restart_refused;
} aborts;

static void on_aborted(void *ud, jn_http_result *res) {
    aborts *a = ud;
    assert_false(a->f->client_closed); /* done runs after every callback */
    if (res->curl_code == CURLE_ABORTED_BY_CALLBACK && res->status == 0 && res->curl_error &&
        res->curl_error[0])
        a->aborted++;
    else
        a->other++;
    /* A closing client takes no new work. */
    char url[256];
    snprintf(url, sizeof url, "%s/hello", a->f->base);
    jn_http_request_opts o = {.url = url};
    if (jn_http_client_request(a->f->cli, &o, on_aborted, a) == -1) a->restart_refused++;
}

static void on_close_timer(uv_timer_t *t) {
    fx *f = t->data;
    assert_int_equal(jn_http_client_inflight(f->cli), 20);
    fx_shutdown(f);
    uv_close((uv_handle_t *)t, NULL);
}

static void test_close_aborts_in_flight(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    f.delay_ms = 300;
    aborts a = {.f = &f};
    char url[256];
    snprintf(url, sizeof url, "%s/slow", f.base);
    jn_http_request_opts o = {.url = url};
    /* 20 is more than the per-host connection limit: some are still queued in curl. */
    for (int i = 0; i < 20; i++)
        assert_int_equal(jn_http_client_request(f.cli, &o, on_aborted, &a), 0);
    uv_timer_t t;
    uv_timer_init(&f.loop, &t);
    t.data = &f;
    uv_timer_start(&t, on_close_timer, 50, 0);
    fx_run(&f);
    assert_int_equal(a.aborted, 20);
    assert_int_equal(a.other, 0);
    assert_int_equal(a.restart_refused, 20);
}

typedef struct {
    fx *f;
    int hello, slow_code, slow_called;
} mixed;

static void on_slow(void *ud, jn_http_result *res) {
    mixed *m = ud;
    m->slow_called++;
    m->slow_code = res->curl_code;
}

static void on_hello_then_close(void *ud, jn_http_result *res) {
    mixed *m = ud;
    m->hello = (int)res->status;
    fx_shutdown(m->f); /* closes the client from inside one of its callbacks */
    assert_int_equal(m->slow_called, 1);
}

static void test_close_from_callback(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    mixed m = {.f = &f};
    char slow[256], hello[256];
    snprintf(slow, sizeof slow, "%s/slow", f.base);
    snprintf(hello, sizeof hello, "%s/hello", f.base);
    jn_http_request_opts os = {.url = slow}, oh = {.url = hello};
    assert_int_equal(jn_http_client_request(f.cli, &os, on_slow, &m), 0);
    assert_int_equal(jn_http_client_request(f.cli, &oh, on_hello_then_close, &m), 0);
    fx_run(&f);
    assert_int_equal(m.hello, 200);
    assert_int_equal(m.slow_called, 1);
    assert_int_equal(m.slow_code, CURLE_ABORTED_BY_CALLBACK);
}

static void test_close_idle_client(void **state) {
    (void)state;
    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    jn_http_client *c = jn_http_client_new(&loop);
    assert_non_null(c);
    assert_int_equal(jn_http_client_inflight(c), 0);
    fx f = {0};
    jn_http_client_close(c, on_client_closed, &f);
    assert_false(f.client_closed); /* done comes from the loop, not from inside close */
    assert_int_equal(uv_run(&loop, UV_RUN_DEFAULT), 0);
    assert_true(f.client_closed);
    assert_int_equal(uv_loop_close(&loop), 0);
}

/* With keep_headers the callback sees every header field, names lower-cased; without, none. */
typedef struct {
    fx *f;
    int keep;
    int seen_retry_after, seen_etag, seen_content_type;
    int *finished; /* shared: the second result ends the test */
} fields_result;

static void on_fields(void *ud, jn_http_result *res) {
    fields_result *r = ud;
    if (!r->keep) {
        assert_null(res->headers);
        assert_int_equal(res->headers_len, 0);
    }
    const char *p = res->headers, *end = p ? p + res->headers_len : NULL;
    while (p && p < end) {
        const char *name = p, *value = p + strlen(p) + 1;
        for (const char *c = name; *c; c++)
            assert_false(*c >= 'A' && *c <= 'Z');
        if (!strcmp(name, "retry-after")) r->seen_retry_after = !strcmp(value, "3");
        if (!strcmp(name, "etag")) r->seen_etag = !strcmp(value, "\"low\"");
        if (!strcmp(name, "content-type")) r->seen_content_type = 1;
        p = value + strlen(value) + 1;
    }
    if (++*r->finished == 2) fx_shutdown(r->f);
}

static void test_keep_headers(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    char url[128];
    snprintf(url, sizeof url, "%s/busy-lower", f.base);
    int finished = 0;
    fields_result kept = {.f = &f, .keep = 1, .finished = &finished};
    fields_result plain = {.f = &f, .keep = 0, .finished = &finished};
    fields_result *both[2] = {&kept, &plain};
    for (int i = 0; i < 2; i++) {
        jn_http_request_opts o = {.url = url, .timeout_ms = 5000, .keep_headers = both[i]->keep};
        assert_int_equal(jn_http_client_request(f.cli, &o, on_fields, both[i]), 0);
    }
    fx_run(&f);
    assert_int_equal(finished, 2);
    assert_true(kept.seen_retry_after && kept.seen_etag && kept.seen_content_type);
    assert_false(plain.seen_retry_after);
}

static void test_same_origin(void **state) {
    (void)state;
    const char *base = "http://api.example:8080/v1/orders?limit=5";
    assert_true(jn_http_same_origin(base, "http://api.example:8080/v1/orders?cursor=x"));
    assert_true(jn_http_same_origin(base, "http://API.example:8080/other"));
    assert_true(jn_http_same_origin("https://h/x", "https://h:443/y"));
    assert_true(jn_http_same_origin("http://h/x", "http://h:80/y"));
    assert_false(jn_http_same_origin(base, "http://api.example:8081/v1/orders"));
    assert_false(jn_http_same_origin(base, "https://api.example:8080/v1/orders"));
    assert_false(jn_http_same_origin(base, "http://evil.example:8080/v1/orders"));
    assert_false(jn_http_same_origin(base, "/v1/orders?cursor=x"));
    assert_false(jn_http_same_origin(base, "?cursor=x"));
    assert_false(jn_http_same_origin(base, "ftp://api.example:8080/x"));
    assert_false(jn_http_same_origin(base, "http://api.example:8080/a b"));
    assert_false(jn_http_same_origin(base, ""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_get_status_body_etag),
        cmocka_unit_test(test_keep_headers),
        cmocka_unit_test(test_same_origin),
        cmocka_unit_test(test_empty_body_is_a_c_string),
        cmocka_unit_test(test_post_sends_body_and_headers),
        cmocka_unit_test(test_custom_methods),
        cmocka_unit_test(test_404_is_a_response),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_connection_refused),
        cmocka_unit_test(test_unsupported_scheme_fails_in_callback),
        cmocka_unit_test(test_timeout),
        cmocka_unit_test(test_simultaneous_timeouts),
        cmocka_unit_test(test_fifty_concurrent),
        cmocka_unit_test(test_request_from_callback),
        cmocka_unit_test(test_close_aborts_in_flight),
        cmocka_unit_test(test_close_from_callback),
        cmocka_unit_test(test_close_idle_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
