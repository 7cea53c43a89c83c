/* mock/fault.c: the settings the mocks' faults take (ranges, messages, which keys a mock
 * offers) and the fate a request meets. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "mock/fault.h"

#define API                                                                                        \
    (JN_FAULT_LATENCY_MS | JN_FAULT_ERROR_RATE | JN_FAULT_ERROR_STATUS | JN_FAULT_MALFORMED_RATE | \
     JN_FAULT_FAIL_NEXT)
#define ALL (API | JN_FAULT_DROP_RATE)

static int setup(void **state) {
    lua_State *L = luaL_newstate();
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    return 0;
}

/* Reads the JSON object text over *set; returns jn_fault_read's result, *err as it gave
 * it (free it). The stack is checked to be left as it was. */
static int read_json(lua_State *L, const char *json, unsigned kinds, int strict,
                     jn_fault_settings *set, char **err) {
    char jerr[160];
    if (jn_json_decode(L, json, strlen(json), jerr, sizeof jerr) != 0) fail_msg("%s", jerr);
    int top = lua_gettop(L);
    *err = NULL;
    int rc = jn_fault_read(L, -1, kinds, strict, "faults: ", set, err);
    assert_int_equal(lua_gettop(L), top);
    lua_pop(L, 1);
    return rc;
}

static void assert_refused(lua_State *L, const char *json, unsigned kinds, const char *want) {
    jn_fault_settings set = jn_fault_none();
    char *err;
    assert_int_equal(read_json(L, json, kinds, 1, &set, &err), -1);
    assert_non_null(err);
    if (strcmp(err, want)) fail_msg("for %s:\n got %s\nwant %s", json, err, want);
    free(err);
}

static void test_read_sets_what_it_names(void **state) {
    lua_State *L = *state;
    jn_fault_settings set = jn_fault_none();
    char *err;
    assert_int_equal(read_json(L,
                               "{\"latency_ms\":250,\"error_rate\":0.25,\"error_status\":429,"
                               "\"malformed_rate\":0.5,\"drop_rate\":1,\"fail_next\":3}",
                               ALL, 1, &set, &err),
                     0);
    assert_null(err);
    assert_int_equal(set.latency_ms, 250);
    assert_true(set.error_rate == 0.25);
    assert_int_equal(set.error_status, 429);
    assert_true(set.malformed_rate == 0.5 && set.drop_rate == 1);
    assert_int_equal(set.fail_next, 3);
    /* A whole number written as a float is that number; the edges of a range are in it. */
    assert_int_equal(
        read_json(L, "{\"latency_ms\":600000.0,\"fail_next\":1000000}", ALL, 1, &set, &err), 0);
    assert_int_equal(set.latency_ms, 600000);
    assert_int_equal(set.fail_next, 1000000);
}

static void test_read_refuses_values_out_of_range(void **state) {
    lua_State *L = *state;
    assert_refused(L, "{\"latency_ms\":2147483647.5}", ALL,
                   "faults: latency_ms must be an integer from 0 to 600000, got 2147483647.5");
    assert_refused(L, "{\"latency_ms\":1e300}", ALL,
                   "faults: latency_ms must be an integer from 0 to 600000, got 1e+300");
    assert_refused(L, "{\"error_status\":503.5}", ALL,
                   "faults: error_status must be an integer from 400 to 599, got 503.5");
    assert_refused(L, "{\"error_status\":200}", ALL,
                   "faults: error_status must be an integer from 400 to 599, got 200");
    assert_refused(L, "{\"drop_rate\":-1}", ALL,
                   "faults: drop_rate must be a number from 0 to 1, got -1");
    assert_refused(L, "{\"fail_next\":null}", ALL,
                   "faults: fail_next must be an integer from 0 to 1000000, got null");
    assert_refused(L, "{\"error_rate\":[0.5]}", ALL,
                   "faults: error_rate must be a number from 0 to 1, got an array or object");
    /* A string is quoted, cut on a character boundary. */
    assert_refused(L, "{\"latency_ms\":\"0123456789012345678901234567890123456789xyz\"}", ALL,
                   "faults: latency_ms must be an integer from 0 to 600000, got "
                   "\"0123456789012345678901234567890123456789...\"");
}

/* A PUT names only the settings its mock offers; the message lists them. */
static void test_read_strict_lists_the_mocks_settings(void **state) {
    lua_State *L = *state;
    assert_refused(L, "{\"latency\":5}", API,
                   "faults: there is no setting \"latency\"; the settings are latency_ms, "
                   "error_rate, error_status, malformed_rate and fail_next");
    assert_refused(L, "{\"drop_rate\":0.5}", API,
                   "faults: there is no setting \"drop_rate\"; the settings are latency_ms, "
                   "error_rate, error_status, malformed_rate and fail_next");
    assert_refused(L, "{\"malformed_rate\":0.5}", ALL & ~(unsigned)JN_FAULT_MALFORMED_RATE,
                   "faults: there is no setting \"malformed_rate\"; the settings are "
                   "latency_ms, error_rate, error_status, drop_rate and fail_next");
}

/* A script's M.faults may hold more than settings; what is not one of kinds stays as it
 * was, even when it is a setting of another kind. */
static void test_read_lenient_takes_only_its_kinds(void **state) {
    lua_State *L = *state;
    jn_fault_settings set = jn_fault_none();
    set.fail_next = 7;
    char *err;
    assert_int_equal(read_json(L, "{\"latency_ms\":5,\"note\":\"x\",\"fail_next\":1}",
                               API & ~(unsigned)JN_FAULT_FAIL_NEXT, 0, &set, &err),
                     0);
    assert_int_equal(set.latency_ms, 5);
    assert_int_equal(set.fail_next, 7);
    assert_int_equal(read_json(L, "{\"error_rate\":2}", API, 0, &set, &err), -1);
    assert_string_equal(err, "faults: error_rate must be a number from 0 to 1, got 2");
    free(err);
}

static void test_fail_next_counts_down_then_requests_pass(void **state) {
    (void)state;
    jn_fault f;
    jn_fault_settings set = jn_fault_none();
    set.fail_next = 2;
    set.latency_ms = 30;
    jn_fault_init(&f, &set);
    for (int i = 0; i < 3; i++) {
        jn_http_response res = {0};
        jn_fault_fate fate = jn_fault_inject(&f, &res);
        assert_int_equal(res.delay_ms, 30); /* every answer, failed or not */
        if (i < 2) {
            assert_int_equal(fate, JN_FAULT_FAIL);
            assert_int_equal(res.status, 503);
            assert_string_equal(res.headers, "Retry-After: 1\r\n");
            assert_non_null(strstr(res.body->data, "injected fault"));
        } else {
            assert_int_equal(fate, JN_FAULT_PASS);
            assert_int_equal(res.status, 0);
            assert_null(res.body);
        }
        jn_rbuf_unref(res.body);
    }
    assert_int_equal(f.set.fail_next, 0);
}

static void test_rates_of_one_always_and_zero_never(void **state) {
    (void)state;
    jn_fault f;
    jn_fault_settings set = jn_fault_none();
    set.error_rate = 1;
    set.error_status = 500;
    jn_fault_init(&f, &set);
    for (int i = 0; i < 100; i++) {
        jn_http_response res = {0};
        assert_int_equal(jn_fault_inject(&f, &res), JN_FAULT_FAIL);
        assert_int_equal(res.status, 500);
        assert_string_equal(res.headers, ""); /* Retry-After goes with 429 and 503 only */
        jn_rbuf_unref(res.body);
    }
    f.set.drop_rate = 1; /* a drop is decided before an error */
    jn_http_response res = {0};
    assert_int_equal(jn_fault_inject(&f, &res), JN_FAULT_DROP);
    assert_true(res.drop && !res.body);
    f.set = jn_fault_none();
    for (int i = 0; i < 100; i++) {
        jn_http_response ok = {0};
        assert_int_equal(jn_fault_inject(&f, &ok), JN_FAULT_PASS);
        assert_true(!ok.drop && !ok.body && ok.delay_ms == 0);
    }
}

/* A rate between: about that share of requests, from the one random helper. */
static void test_error_rate_is_a_share(void **state) {
    (void)state;
    jn_fault f;
    jn_fault_settings set = jn_fault_none();
    set.error_rate = 0.3;
    jn_fault_init(&f, &set);
    int failed = 0;
    for (int i = 0; i < 10000; i++) {
        jn_http_response res = {0};
        failed += jn_fault_inject(&f, &res) == JN_FAULT_FAIL;
        jn_rbuf_unref(res.body);
    }
    assert_true(failed > 2700 && failed < 3300);
}

static void test_malform_cuts_a_200_body_in_half(void **state) {
    (void)state;
    jn_fault f;
    jn_fault_settings set = jn_fault_none();
    set.malformed_rate = 1;
    jn_fault_init(&f, &set);
    jn_http_response res = {.status = 200, .body = jn_rbuf_new("[1,2,3,4]", 9)};
    snprintf(res.etag, sizeof res.etag, "\"abc\"");
    jn_fault_malform(&f, &res);
    assert_int_equal(res.body->len, 4);
    assert_memory_equal(res.body->data, "[1,2", 4);
    assert_string_equal(res.etag, "");
    jn_rbuf_unref(res.body);
    jn_http_response err = {.status = 404, .body = jn_rbuf_new("{}", 2)};
    jn_fault_malform(&f, &err);
    assert_int_equal(err.body->len, 2); /* only 200 answers */
    jn_rbuf_unref(err.body);
}

static void test_json_has_the_mocks_settings(void **state) {
    (void)state;
    jn_fault_settings set = jn_fault_none();
    set.latency_ms = 5;
    set.error_rate = 0.5;
    set.fail_next = 2;
    jn_sb sb;
    jn_sb_init(&sb);
    jn_fault_json(&set, API, &sb);
    assert_string_equal(sb.data, "{\"latency_ms\":5,\"error_rate\":0.5,\"error_status\":503,"
                                 "\"malformed_rate\":0,\"fail_next\":2}");
    sb.len = 0;
    jn_fault_json(&set, ALL & ~(unsigned)JN_FAULT_MALFORMED_RATE, &sb);
    assert_string_equal(sb.data, "{\"latency_ms\":5,\"error_rate\":0.5,\"error_status\":503,"
                                 "\"drop_rate\":0,\"fail_next\":2}");
    jn_sb_free(&sb);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_read_sets_what_it_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_refuses_values_out_of_range, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_strict_lists_the_mocks_settings, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_lenient_takes_only_its_kinds, setup, teardown),
        cmocka_unit_test(test_fail_next_counts_down_then_requests_pass),
        cmocka_unit_test(test_rates_of_one_always_and_zero_never),
        cmocka_unit_test(test_error_rate_is_a_share),
        cmocka_unit_test(test_malform_cuts_a_200_body_in_half),
        cmocka_unit_test(test_json_has_the_mocks_settings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
