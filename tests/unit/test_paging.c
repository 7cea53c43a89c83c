/* paging.c: the query of a paged GET, cursors and the Link header. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "mock/paging.h"

static char err[200];

/* Parses q under style with page size 100 and largest page 1000. */
static int parse(jn_paging_style style, const char *q, jn_page_query *out) {
    err[0] = '\0';
    return jn_paging_parse(style, 100, 1000, q, q ? strlen(q) : 0, out, err, sizeof err);
}

static void expect_400(jn_paging_style style, const char *q, const char *needle) {
    jn_page_query p;
    assert_int_equal(parse(style, q, &p), -1);
    if (!strstr(err, needle)) fail_msg("expected \"%s\" in \"%s\"", needle, err);
}

static void test_offset(void **state) {
    (void)state;
    jn_page_query p;
    assert_int_equal(parse(JN_PAGING_OFFSET, NULL, &p), 0);
    assert_int_equal(p.offset, 0);
    assert_int_equal(p.limit, 100); /* the page size */
    assert_int_equal(parse(JN_PAGING_OFFSET, "offset=20&limit=5&x=y", &p), 0);
    assert_int_equal(p.offset, 20);
    assert_int_equal(p.limit, 5);
    assert_int_equal(parse(JN_PAGING_OFFSET, "limit=5000", &p), 0);
    assert_int_equal(p.limit, 1000); /* cut to the largest page */
    assert_int_equal(parse(JN_PAGING_OFFSET, "offset=999999999", &p), 0);
    expect_400(JN_PAGING_OFFSET, "offset=-1",
               "offset must be a whole number of 0 or more, got "
               "\"-1\"");
    expect_400(JN_PAGING_OFFSET, "offset=abc", "offset must be");
    expect_400(JN_PAGING_OFFSET, "offset=", "got \"\"");
    expect_400(JN_PAGING_OFFSET, "offset=1e3", "offset must be");
    expect_400(JN_PAGING_OFFSET, "offset=1000000000", "offset must be"); /* ten digits */
    expect_400(JN_PAGING_OFFSET, "limit=0", "limit must be a whole number of 1 or more");
    expect_400(JN_PAGING_OFFSET, "limit=+5", "limit must be");
    expect_400(JN_PAGING_OFFSET, "limit=5.0", "limit must be");
}

static void test_link(void **state) {
    (void)state;
    jn_page_query p;
    assert_int_equal(parse(JN_PAGING_LINK, "", &p), 0);
    assert_int_equal(p.page, 1);
    assert_int_equal(p.limit, 100);
    assert_int_equal(p.offset, 0);
    assert_int_equal(parse(JN_PAGING_LINK, "page=3&per_page=25", &p), 0);
    assert_int_equal(p.page, 3);
    assert_int_equal(p.limit, 25);
    assert_int_equal(p.offset, 50);
    expect_400(JN_PAGING_LINK, "page=0",
               "page must be a whole number of 1 or more (pages count "
               "from 1), got \"0\"");
    expect_400(JN_PAGING_LINK, "page=-2", "page must be");
    expect_400(JN_PAGING_LINK, "per_page=x",
               "per_page must be a whole number of 1 or more, got "
               "\"x\"");
}

static void test_cursor(void **state) {
    (void)state;
    jn_page_query p;
    assert_int_equal(parse(JN_PAGING_CURSOR, "limit=10", &p), 0);
    assert_false(p.after); /* no cursor: the first page */
    assert_int_equal(p.limit, 10);
    char c[JN_CURSOR_MAX], q[JN_CURSOR_MAX + 32];
    jn_paging_cursor_encode("1000", c);
    snprintf(q, sizeof q, "cursor=%s", c);
    assert_int_equal(parse(JN_PAGING_CURSOR, q, &p), 0);
    assert_true(p.after);
    assert_string_equal(p.after_id, "1000");
    assert_int_equal(p.limit, 100);
    expect_400(JN_PAGING_CURSOR, "cursor=garbage",
               "cursor \"garbage\" is not one this API gave "
               "out");
    expect_400(JN_PAGING_CURSOR, "cursor=", "is not one this API gave out");
    expect_400(JN_PAGING_CURSOR, "limit=-1", "limit must be");
    /* A cursor cut short or altered is not ours. */
    snprintf(q, sizeof q, "cursor=%.*s", (int)strlen(c) - 2, c);
    expect_400(JN_PAGING_CURSOR, q, "is not one this API gave out");
    snprintf(q, sizeof q, "cursor=%s", c);
    q[strlen(q) - 1] = q[strlen(q) - 1] == '0' ? '1' : '0';
    expect_400(JN_PAGING_CURSOR, q, "is not one this API gave out");
    char long_value[300];
    memset(long_value, 'f', sizeof long_value - 1);
    long_value[sizeof long_value - 1] = '\0';
    snprintf(q, sizeof q, "cursor=%s", long_value);
    expect_400(JN_PAGING_CURSOR, q, "...\" is not one"); /* the echo is cut short */
}

static void test_cursor_round_trip(void **state) {
    (void)state;
    const char *ids[] = {"1", "50000", "abc", "o-17", "a/b c"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        char c[JN_CURSOR_MAX], id[256];
        jn_paging_cursor_encode(ids[i], c);
        assert_int_equal(strspn(c, "0123456789abcdef"), strlen(c)); /* URL-safe as it is */
        assert_int_equal(jn_paging_cursor_decode(c, strlen(c), id, sizeof id), 0);
        assert_string_equal(id, ids[i]);
    }
    char id[8];
    char c[JN_CURSOR_MAX];
    jn_paging_cursor_encode("longer-than-eight", c);
    assert_int_equal(jn_paging_cursor_decode(c, strlen(c), id, sizeof id), -1);
    assert_int_equal(jn_paging_cursor_decode("00", 2, id, sizeof id), -1);
}

static void test_link_header(void **state) {
    (void)state;
    char out[256];
    int n = jn_paging_link(out, sizeof out, "127.0.0.1:8084", "orders", 2, 50);
    assert_string_equal(
        out, "Link: <http://127.0.0.1:8084/orders?page=3&per_page=50>; rel=\"next\"\r\n");
    assert_int_equal(n, (int)strlen(out));
    assert_int_equal(jn_paging_link(out, 20, "127.0.0.1:8084", "orders", 2, 50), -1);
    assert_true(jn_paging_host_ok("api.example.com:8084"));
    assert_true(jn_paging_host_ok("[::1]:8084"));
    assert_false(jn_paging_host_ok(""));
    assert_false(jn_paging_host_ok("evil.com/path?"));
    assert_false(jn_paging_host_ok("a b"));
    assert_false(jn_paging_host_ok("x>; rel=\"prev\""));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_offset),      cmocka_unit_test(test_link),
        cmocka_unit_test(test_cursor),      cmocka_unit_test(test_cursor_round_trip),
        cmocka_unit_test(test_link_header),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
