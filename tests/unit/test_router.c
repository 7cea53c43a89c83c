/* jn_router_match, jn_router_valid_path, jn_query_uint, jn_query_get, and the answers
 * every server gives a request no route takes (jn_http_route). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <http_parser.h>
#include <string.h>

#include "http_server.h"
#include "router.h"

static const jn_route routes[] = {
    {"/customers", JN_METHOD(HTTP_GET) | JN_METHOD(HTTP_POST)},
    {"/customers/:id", JN_METHOD(HTTP_GET) | JN_METHOD(HTTP_PUT) | JN_METHOD(HTTP_DELETE)},
    {"/healthz", JN_METHOD(HTTP_GET)},
};
#define NROUTES (sizeof routes / sizeof routes[0])

static int match(int method, const char *path, jn_route_match *m) {
    memset(m, 0, sizeof *m);
    return jn_router_match(routes, NROUTES, method, path, strlen(path), m);
}

static void test_exact_match(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/customers", &m), 0);
    assert_int_equal(match(HTTP_POST, "/customers", &m), 0);
    assert_int_equal(match(HTTP_GET, "/healthz", &m), 2);
}

static void test_param_extracted(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/customers/42", &m), 1);
    assert_string_equal(m.param, "42");
    assert_int_equal(match(HTTP_DELETE, "/customers/abc-def", &m), 1);
    assert_string_equal(m.param, "abc-def");
}

static void test_param_percent_decoded(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/customers/a%20b%2Fc%41", &m), 1);
    assert_string_equal(m.param, "a b/cA");
}

static void test_param_bad_escape_not_matched(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/customers/a%2", &m), JN_ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/customers/a%zz", &m), JN_ROUTE_NOT_FOUND);
    /* A decoded NUL would cut the id short: refused. */
    assert_int_equal(match(HTTP_GET, "/customers/a%00b", &m), JN_ROUTE_NOT_FOUND);
}

static void test_trailing_slash_ignored(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/customers/", &m), 0);
    assert_int_equal(match(HTTP_GET, "/customers/42/", &m), 1);
    assert_string_equal(m.param, "42");
}

static void test_wrong_method(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_DELETE, "/customers", &m), JN_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, HEAD, POST");
    assert_int_equal(match(HTTP_POST, "/customers/1", &m), JN_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "DELETE, GET, HEAD, PUT");
    assert_int_equal(match(HTTP_PUT, "/healthz/", &m), JN_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, HEAD");
}

/* The server answers HEAD wherever GET is allowed, so Allow lists it there, and only
 * there (it used to be missing: RFC 9110 §10.2.1 wants every method the target takes). */
static void test_allow_names_head_with_get(void **state) {
    (void)state;
    static const jn_route only_post[] = {{"/api/reload", JN_METHOD(HTTP_POST)},
                                         {"/api/status", JN_METHOD(HTTP_GET)}};
    jn_route_match m;
    assert_int_equal(
        jn_router_match(only_post, 2, HTTP_GET, "/api/reload", strlen("/api/reload"), &m),
        JN_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "POST");
    assert_int_equal(
        jn_router_match(only_post, 2, HTTP_DELETE, "/api/status", strlen("/api/status"), &m),
        JN_ROUTE_BAD_METHOD);
    assert_string_equal(m.allow, "GET, HEAD");
}

static void test_unknown_path(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/products", &m), JN_ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/customer", &m), JN_ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/customersX", &m), JN_ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/", &m), JN_ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "", &m), JN_ROUTE_NOT_FOUND);
}

static void test_extra_segment_not_matched(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/customers/1/extra", &m), JN_ROUTE_NOT_FOUND);
}

static void test_empty_param_not_matched(void **state) {
    (void)state;
    jn_route_match m;
    assert_int_equal(match(HTTP_GET, "/customers//", &m), JN_ROUTE_NOT_FOUND);
    assert_int_equal(match(HTTP_GET, "/customers//x", &m), JN_ROUTE_NOT_FOUND);
}

static void test_overlong_param_not_matched(void **state) {
    (void)state;
    jn_route_match m;
    char path[400] = "/customers/";
    memset(path + 11, '7', 300);
    path[311] = '\0';
    assert_int_equal(match(HTTP_GET, path, &m), JN_ROUTE_NOT_FOUND);
}

static void test_length_bounds_path(void **state) {
    (void)state;
    jn_route_match m;
    /* Only len bytes are the path: what follows (a query, say) is not looked at. */
    const char *p = "/customers/9?x=1";
    assert_int_equal(jn_router_match(routes, NROUTES, HTTP_GET, p, 12, &m), 1);
    assert_string_equal(m.param, "9");
}

static int quint(const char *q, const char *name, long *out) {
    return jn_query_uint(q, q ? strlen(q) : 0, name, out);
}

static void test_query_present(void **state) {
    (void)state;
    long v = -7;
    assert_int_equal(quint("limit=5", "limit", &v), 1);
    assert_int_equal(v, 5);
    assert_int_equal(quint("offset=10&limit=25", "limit", &v), 1);
    assert_int_equal(v, 25);
    assert_int_equal(quint("offset=10&limit=25", "offset", &v), 1);
    assert_int_equal(v, 10);
    assert_int_equal(quint("limit=0", "limit", &v), 1);
    assert_int_equal(v, 0);
}

static void test_query_absent(void **state) {
    (void)state;
    long v = -7;
    assert_int_equal(quint("offset=10", "limit", &v), 0);
    assert_int_equal(quint("", "limit", &v), 0);
    assert_int_equal(quint(NULL, "limit", &v), 0);
    assert_int_equal(v, -7); /* untouched */
}

static void test_query_invalid(void **state) {
    (void)state;
    long v = -7;
    assert_int_equal(quint("limit=abc", "limit", &v), -1);
    assert_int_equal(quint("limit=5x", "limit", &v), -1);
    assert_int_equal(quint("limit=", "limit", &v), -1);
    assert_int_equal(quint("limit=1.5", "limit", &v), -1);
    assert_int_equal(v, -7);
}

static void test_query_negative(void **state) {
    (void)state;
    long v = -7;
    assert_int_equal(quint("limit=-1", "limit", &v), -1);
    assert_int_equal(v, -7);
}

static void test_query_overlong(void **state) {
    (void)state;
    long v = -7;
    assert_int_equal(quint("limit=99999999999999999999999", "limit", &v), -1);
    assert_int_equal(v, -7);
    assert_int_equal(quint("limit=123456789012", "limit", &v), 1); /* 12 digits fit */
    assert_int_equal(v, 123456789012L);
}

static void test_query_name_prefix(void **state) {
    (void)state;
    long v = -7;
    assert_int_equal(quint("lim=1&limit=5", "limit", &v), 1);
    assert_int_equal(v, 5);
    assert_int_equal(quint("lim=1&limit=5", "lim", &v), 1);
    assert_int_equal(v, 1);
    assert_int_equal(quint("limit=5&lim=1", "lim", &v), 1);
    assert_int_equal(v, 1);
    assert_int_equal(quint("xlimit=5", "limit", &v), 0);
}

static void test_query_length_bounds(void **state) {
    (void)state;
    long v = -7;
    /* Bytes past len are not part of the query. */
    assert_int_equal(jn_query_uint("limit=5&offset=3", 7, "offset", &v), 0);
    assert_int_equal(jn_query_uint("limit=56", 7, "limit", &v), 1);
    assert_int_equal(v, 5);
}

static void test_query_get_raw_value(void **state) {
    (void)state;
    const char *q = "limit=5&cursor=ab%2Fc&empty=&flag";
    size_t vl = 99;
    const char *v = jn_query_get(q, strlen(q), "cursor", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 6);
    assert_memory_equal(v, "ab%2Fc", 6); /* raw: not decoded */
    v = jn_query_get(q, strlen(q), "empty", &vl);
    assert_non_null(v);
    assert_int_equal(vl, 0);
    assert_null(jn_query_get(q, strlen(q), "flag", &vl)); /* no '=': no value */
    assert_null(jn_query_get(q, strlen(q), "curs", &vl));
    assert_null(jn_query_get(NULL, 0, "limit", &vl));
}

static void test_valid_path(void **state) {
    (void)state;
    assert_true(jn_router_valid_path("customers", 64));
    assert_true(jn_router_valid_path("v1/orders", 64));
    assert_true(jn_router_valid_path("a-b_c.d~e", 64));
    assert_false(jn_router_valid_path("", 64));
    assert_false(jn_router_valid_path("/customers", 64));
    assert_false(jn_router_valid_path("customers/", 64));
    assert_false(jn_router_valid_path("a//b", 64));
    assert_false(jn_router_valid_path("a/../b", 64));
    assert_false(jn_router_valid_path(".", 64));
    assert_false(jn_router_valid_path(":id", 64));
    assert_false(jn_router_valid_path("a b", 64));
    assert_false(jn_router_valid_path("a%20b", 64));
    assert_false(jn_router_valid_path("abcdef", 5));
}

/* A request as http_parse.c hands it to a server. */
static jn_http_request req_of(int method, const char *path) {
    jn_http_request req = {0};
    req.method = method;
    req.method_name = http_method_str((enum http_method)method);
    req.path = path;
    req.path_len = strlen(path);
    return req;
}

static int route(int options, int method, const char *path, jn_http_response *res,
                 jn_route_match *m) {
    static const jn_http_routes t = {routes, NROUTES, "this API serves /customers", 0};
    jn_http_routes with = t;
    with.options = options;
    memset(res, 0, sizeof *res);
    jn_http_request req = req_of(method, path);
    return jn_http_route(&with, &req, res, m);
}

/* A match leaves res for the handler, labelled with the route's pattern. */
static void test_http_route_match_labels_the_answer(void **state) {
    (void)state;
    jn_http_response res;
    jn_route_match m;
    assert_int_equal(route(0, HTTP_GET, "/customers/7", &res, &m), 1);
    assert_string_equal(res.route, "/customers/:id");
    assert_string_equal(m.param, "7");
    assert_int_equal(res.status, 0);
    assert_null(res.body);
}

/* A 404 names the path (cut, and what cannot be seen escaped) and what the server serves. */
static void test_http_route_not_found(void **state) {
    (void)state;
    jn_http_response res;
    jn_route_match m;
    assert_int_equal(route(1, HTTP_GET, "/nope", &res, &m), -1);
    assert_int_equal(res.status, 404);
    assert_string_equal(res.route, "unknown");
    assert_string_equal(res.body->data,
                        "{\"error\":\"no route for /nope; this API serves /customers\"}");
    assert_string_equal(res.headers, "");
    jn_rbuf_unref(res.body);
    char long_path[300] = "/";
    memset(long_path + 1, 'x', 250);
    assert_int_equal(route(0, HTTP_GET, long_path, &res, &m), -1);
    assert_non_null(strstr(res.body->data, "xxx...; this API serves"));
    assert_true(res.body->len < 200);
    jn_rbuf_unref(res.body);
}

/* A 405 says which methods the route takes, in the message and in Allow. */
static void test_http_route_bad_method(void **state) {
    (void)state;
    jn_http_response res;
    jn_route_match m;
    assert_int_equal(route(1, HTTP_DELETE, "/customers", &res, &m), -1);
    assert_int_equal(res.status, 405);
    assert_string_equal(res.route, "unknown");
    assert_string_equal(res.headers, "Allow: GET, HEAD, POST\r\n");
    assert_string_equal(res.body->data,
                        "{\"error\":\"method DELETE is not allowed here; use GET, HEAD, POST\"}");
    jn_rbuf_unref(res.body);
}

/* OPTIONS: 204 with what the route takes where the server answers it, else a 405. */
static void test_http_route_options(void **state) {
    (void)state;
    jn_http_response res;
    jn_route_match m;
    assert_int_equal(route(1, HTTP_OPTIONS, "/healthz", &res, &m), -1);
    assert_int_equal(res.status, 204);
    assert_string_equal(res.route, "options");
    assert_string_equal(res.headers, "Allow: OPTIONS, GET, HEAD\r\n");
    assert_null(res.body);
    assert_int_equal(route(0, HTTP_OPTIONS, "/healthz", &res, &m), -1);
    assert_int_equal(res.status, 405);
    assert_string_equal(res.headers, "Allow: GET, HEAD\r\n");
    jn_rbuf_unref(res.body);
    /* No route, no methods to offer: a 404 either way. */
    assert_int_equal(route(1, HTTP_OPTIONS, "/nope", &res, &m), -1);
    assert_int_equal(res.status, 404);
    jn_rbuf_unref(res.body);
}

static int limit_offset(const char *query, long *limit, long *offset, jn_http_response *res) {
    jn_http_request req = req_of(HTTP_GET, "/r");
    req.query = query;
    req.query_len = query ? strlen(query) : 0;
    memset(res, 0, sizeof *res);
    return jn_http_limit_offset(&req, res, limit, offset);
}

/* Given or not is told apart (a listing with either pages); a bad one is a 400. */
static void test_http_limit_offset(void **state) {
    (void)state;
    long limit, offset;
    jn_http_response res;
    assert_int_equal(limit_offset(NULL, &limit, &offset, &res), 0);
    assert_true(limit == -1 && offset == 0);
    assert_int_equal(limit_offset("offset=0", &limit, &offset, &res), 1);
    assert_true(limit == -1 && offset == 0);
    assert_int_equal(limit_offset("limit=5&offset=10", &limit, &offset, &res), 1);
    assert_true(limit == 5 && offset == 10);
    assert_null(res.body);
    assert_int_equal(limit_offset("limit=-1", &limit, &offset, &res), -1);
    assert_int_equal(res.status, 400);
    assert_non_null(strstr(res.body->data, "limit and offset must be non-negative integers"));
    jn_rbuf_unref(res.body);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_exact_match),
        cmocka_unit_test(test_param_extracted),
        cmocka_unit_test(test_param_percent_decoded),
        cmocka_unit_test(test_param_bad_escape_not_matched),
        cmocka_unit_test(test_trailing_slash_ignored),
        cmocka_unit_test(test_wrong_method),
        cmocka_unit_test(test_allow_names_head_with_get),
        cmocka_unit_test(test_unknown_path),
        cmocka_unit_test(test_extra_segment_not_matched),
        cmocka_unit_test(test_empty_param_not_matched),
        cmocka_unit_test(test_overlong_param_not_matched),
        cmocka_unit_test(test_length_bounds_path),
        cmocka_unit_test(test_query_present),
        cmocka_unit_test(test_query_absent),
        cmocka_unit_test(test_query_invalid),
        cmocka_unit_test(test_query_negative),
        cmocka_unit_test(test_query_overlong),
        cmocka_unit_test(test_query_name_prefix),
        cmocka_unit_test(test_query_length_bounds),
        cmocka_unit_test(test_query_get_raw_value),
        cmocka_unit_test(test_valid_path),
        cmocka_unit_test(test_http_route_match_labels_the_answer),
        cmocka_unit_test(test_http_route_not_found),
        cmocka_unit_test(test_http_route_bad_method),
        cmocka_unit_test(test_http_route_options),
        cmocka_unit_test(test_http_limit_offset),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
