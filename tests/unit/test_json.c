/* jn_json_encode, jn_sb_json_string, JSON error bodies (jn_http_respond_error), decoding,
 * the canonical form and the scanning of checked text (jn_json_skip_*, find_member). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "http_server.h"
#include "json.h"

static int setup(void **state) {
    lua_State *L = luaL_newstate();
    luaL_openlibs(L);
    *state = L;
    return 0;
}

static int teardown(void **state) {
    lua_close(*state);
    return 0;
}

/* Evaluates `return <expr>` and encodes the result; returns the JSON (free it) or NULL with
 * *err set. The Lua stack is checked to be left as it was. */
static char *encode_expr(lua_State *L, const char *expr, const char *const *first,
                         const char **err) {
    char code[4096];
    snprintf(code, sizeof code, "return %s", expr);
    if (luaL_dostring(L, code) != LUA_OK) fail_msg("lua: %s", lua_tostring(L, -1));
    int top = lua_gettop(L);
    jn_sb sb;
    jn_sb_init(&sb);
    const char *e = NULL;
    int rc = jn_json_encode(L, -1, first, &sb, &e);
    assert_int_equal(lua_gettop(L), top);
    lua_pop(L, 1);
    if (rc != 0) {
        assert_int_equal(rc, -1);
        assert_non_null(e);
        *err = e;
        jn_sb_free(&sb);
        return NULL;
    }
    return jn_sb_steal(&sb);
}

static void assert_encodes(lua_State *L, const char *expr, const char *const *first,
                           const char *want) {
    const char *err = NULL;
    char *got = encode_expr(L, expr, first, &err);
    if (!got) fail_msg("%s: unexpected error %s", expr, err);
    if (strcmp(got, want) != 0) {
        char msg[2048];
        snprintf(msg, sizeof msg, "%s: got %s, want %s", expr, got, want);
        free(got);
        fail_msg("%s", msg);
    }
    free(got);
}

static const char *assert_fails(lua_State *L, const char *expr) {
    const char *err = NULL;
    char *got = encode_expr(L, expr, NULL, &err);
    if (got) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s: expected an error, got %s", expr, got);
        free(got);
        fail_msg("%s", msg);
    }
    return err;
}

static char *reencode(lua_State *L, const char *text);

static void test_scalars(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "nil", NULL, "null");
    assert_encodes(L, "true", NULL, "true");
    assert_encodes(L, "false", NULL, "false");
    assert_encodes(L, "42", NULL, "42");
    assert_encodes(L, "-7", NULL, "-7");
    assert_encodes(L, "'hello'", NULL, "\"hello\"");
    assert_encodes(L, "''", NULL, "\"\"");
}

static void test_integer_vs_float(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "1.0", NULL, "1");
    assert_encodes(L, "1.5", NULL, "1.5");
    assert_encodes(L, "-0.25", NULL, "-0.25");
    assert_encodes(L, "math.maxinteger", NULL, "9223372036854775807");
    assert_encodes(L, "1e20", NULL, "1e+20");
}

/* Found by tests/fuzz/fuzz_json.c: encoding is canonical only if the text encodes back
 * to itself once decoded. -0.0 was written "-0" (which decodes as the integer 0, "0"),
 * and a fraction between 1e14 and 1e15 rounded to 14 digits in exponent form
 * ("-9.2233721368547e+14", which decodes to a whole number and was then written
 * "-922337213685470"). */
static void test_float_encoding_is_a_fixed_point(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "-0.0", NULL, "0");
    assert_encodes(L, "-922337213685470.1", NULL, "-922337213685470"); /* the fuzzer's */
    assert_encodes(L, "123456789012345.6", NULL, "123456789012350");
    assert_encodes(L, "99999999999999.99", NULL, "100000000000000");
    assert_encodes(L, "999999999999999.9", NULL, "1e+15"); /* stays a float */
    assert_encodes(L, "12345.678", NULL, "12345.678");
    static const char *const texts[] = {"-0.0",
                                        "[-0.0,-922337213685470.1]",
                                        "123456789012345.6",
                                        "99999999999999.99",
                                        "999999999999999.9",
                                        "-1e-300"};
    for (size_t i = 0; i < sizeof texts / sizeof texts[0]; i++) {
        char *once = reencode(L, texts[i]);
        assert_non_null(once);
        char *twice = reencode(L, once);
        assert_non_null(twice);
        assert_string_equal(once, twice);
        free(once);
        free(twice);
    }
}

static void test_string_escaping(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "'say \"hi\"'", NULL, "\"say \\\"hi\\\"\"");
    assert_encodes(L, "'a\\\\b'", NULL, "\"a\\\\b\"");
    assert_encodes(L, "'l1\\nl2\\r\\t'", NULL, "\"l1\\nl2\\r\\t\"");
    assert_encodes(L, "'\\1\\31 x'", NULL, "\"\\u0001\\u001f x\"");
    assert_encodes(L, "'a\\0b'", NULL, "\"a\\u0000b\""); /* embedded NUL kept */
    assert_encodes(L, "'caf\\u{E9}'", NULL, "\"caf\xc3\xa9\"");
}

static void test_arrays_and_objects(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "{1, 2, 3}", NULL, "[1,2,3]");
    assert_encodes(L, "{'a', true, 1.5}", NULL, "[\"a\",true,1.5]");
    assert_encodes(L, "{a = 1}", NULL, "{\"a\":1}");
    /* Keys that are not exactly 1..n make an object. */
    assert_encodes(L, "{[1] = 'x', [3] = 'y'}", NULL, "{\"1\":\"x\",\"3\":\"y\"}");
    assert_encodes(L, "{[0] = 'z'}", NULL, "{\"0\":\"z\"}");
    assert_encodes(L, "{1, 2, k = 'v'}", NULL, "{\"1\":1,\"2\":2,\"k\":\"v\"}");
}

static void test_empty_table(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "{}", NULL, "[]");
}

static void test_sorted_keys(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "{zeta = 1, alpha = 2, mid = 3, Beta = 4, alph = 5}", NULL,
                   "{\"Beta\":4,\"alph\":5,\"alpha\":2,\"mid\":3,\"zeta\":1}");
}

static void test_sorted_keys_stable(void **state) {
    lua_State *L = *state;
    /* Tables built in different insertion orders encode identically. */
    const char *err = NULL;
    char *a = encode_expr(L,
                          "(function() local t = {} for i = 1, 50 do t['k' .. i] = i end "
                          "return t end)()",
                          NULL, &err);
    char *b = encode_expr(L,
                          "(function() local t = {} for i = 50, 1, -1 do t['k' .. i] = i end "
                          "return t end)()",
                          NULL, &err);
    assert_non_null(a);
    assert_non_null(b);
    assert_string_equal(a, b);
    free(a);
    free(b);
}

static void test_first_keys(void **state) {
    lua_State *L = *state;
    static const char *const first[] = {"id", "name", "email", NULL};
    assert_encodes(L, "{zz = 0, email = 'e', aa = 1, name = 'n', id = 7}", first,
                   "{\"id\":7,\"name\":\"n\",\"email\":\"e\",\"aa\":1,\"zz\":0}");
    /* Listed keys that are absent are skipped. */
    assert_encodes(L, "{email = 'e', b = 2, a = 1}", first, "{\"email\":\"e\",\"a\":1,\"b\":2}");
    /* first_keys apply to the top level only. */
    assert_encodes(L, "{id = 1, sub = {name = 'x', email = 'y', id = 2}}", first,
                   "{\"id\":1,\"sub\":{\"email\":\"y\",\"id\":2,\"name\":\"x\"}}");
}

static void test_nested(void **state) {
    lua_State *L = *state;
    assert_encodes(L, "{id = 1, productIds = {'1', '2'}, meta = {tags = {}, on = false}}", NULL,
                   "{\"id\":1,\"meta\":{\"on\":false,\"tags\":[]},\"productIds\":[\"1\",\"2\"]}");
    assert_encodes(L, "{{1, {2, {3}}}}", NULL, "[[1,[2,[3]]]]");
}

static void test_many_keys(void **state) {
    lua_State *L = *state;
    /* More keys than the Lua stack's initial room. */
    const char *err = NULL;
    char *got = encode_expr(L,
                            "(function() local t = {} for i = 1, 500 do t[string.format('k%03d', "
                            "i)] = i end return t end)()",
                            NULL, &err);
    assert_non_null(got);
    assert_int_equal(strncmp(got, "{\"k001\":1,\"k002\":2,", 19), 0);
    assert_non_null(strstr(got, ",\"k500\":500}"));
    free(got);
}

static void test_nan_is_error(void **state) {
    lua_State *L = *state;
    const char *err = assert_fails(L, "0/0");
    assert_non_null(strstr(err, "NaN"));
    assert_fails(L, "math.huge");
    assert_fails(L, "{a = {b = 0/0}}");
}

static void test_function_is_error(void **state) {
    lua_State *L = *state;
    assert_fails(L, "print");
    assert_fails(L, "{1, 2, print}");
    assert_fails(L, "{a = 1, f = function() end}");
    assert_fails(L, "coroutine.create(print)");
}

static void test_bad_key_is_error(void **state) {
    lua_State *L = *state;
    /* The encoder must also leave the stack as it found it (checked in encode_expr). */
    assert_fails(L, "{a = 1, b = 2, c = 3, [true] = 4}");
    assert_fails(L, "{[{}] = 1}");
}

static void test_deep_nesting_is_error(void **state) {
    lua_State *L = *state;
    const char *err = assert_fails(L, "(function() local t = {} local c = t for i = 1, 100 do "
                                      "c.x = {} c = c.x end return t end)()");
    assert_non_null(strstr(err, "64"));
    /* A cycle is caught by the same limit. */
    assert_fails(L, "(function() local t = {} t.self = t return t end)()");
    /* 60 levels is fine. */
    const char *e2 = NULL;
    char *ok = encode_expr(L,
                           "(function() local t = {} local c = t for i = 1, 60 do "
                           "c[1] = {} c = c[1] end return t end)()",
                           NULL, &e2);
    assert_non_null(ok);
    free(ok);
}

static void test_cjson_null(void **state) {
    lua_State *L = *state;
    lua_pushlightuserdata(L, NULL);
    jn_sb sb;
    jn_sb_init(&sb);
    const char *err = NULL;
    assert_int_equal(jn_json_encode(L, -1, NULL, &sb, &err), 0);
    assert_string_equal(sb.data, "null");
    lua_pop(L, 1);
    jn_sb_free(&sb);
}

static void test_sb_json_string(void **state) {
    (void)state;
    jn_sb sb;
    jn_sb_init(&sb);
    const char raw[] = "q\"b\\n\n\x01\x1f\x7f";
    jn_sb_json_string(&sb, raw, sizeof raw - 1);
    assert_string_equal(sb.data, "\"q\\\"b\\\\n\\n\\u0001\\u001f\x7f\"");
    jn_sb_free(&sb);
}

static void test_error_body(void **state) {
    (void)state;
    jn_http_response res;
    memset(&res, 0, sizeof res);
    jn_http_respond_error(&res, 404, "no customer \"7\"\n\\ here");
    assert_int_equal(res.status, 404);
    assert_string_equal(res.content_type, "application/json");
    assert_non_null(res.body);
    assert_string_equal(res.body->data, "{\"error\":\"no customer \\\"7\\\"\\n\\\\ here\"}");
    assert_int_equal(res.body->len, strlen(res.body->data));
    /* A second call replaces the body (and releases the first). */
    jn_http_respond_error(&res, 400, "bad");
    assert_int_equal(res.status, 400);
    assert_string_equal(res.body->data, "{\"error\":\"bad\"}");
    jn_rbuf_unref(res.body);
}

/* jn_json_array_spans accepts exactly what jn_json_decode accepts, and finds each
 * element's bytes. */
static void test_array_spans(void **state) {
    lua_State *L = *state;
    const char *text = " [ {\"id\":1,\"a\":[1,2]} , \"x\\u0041\", -12.5e1,null,[],{} ] ";
    jn_json_span *sp;
    size_t n;
    char err[128];
    assert_int_equal(jn_json_array_spans(text, strlen(text), &sp, &n, err, sizeof err), 0);
    assert_int_equal(n, 6);
    const char *want[] = {"{\"id\":1,\"a\":[1,2]}", "\"x\\u0041\"", "-12.5e1", "null", "[]", "{}"};
    for (size_t i = 0; i < n; i++) {
        assert_int_equal(sp[i].len, strlen(want[i]));
        assert_memory_equal(text + sp[i].off, want[i], sp[i].len);
        /* Each element decodes on its own. */
        assert_int_equal(jn_json_decode(L, text + sp[i].off, sp[i].len, err, sizeof err), 0);
        lua_pop(L, 1);
    }
    free(sp);
    assert_int_equal(jn_json_array_spans("[]", 2, &sp, &n, err, sizeof err), 0);
    assert_int_equal(n, 0);
    assert_null(sp);
}

static void test_array_spans_errors(void **state) {
    lua_State *L = *state;
    const char *bad[] = {"",       "[",           "[1,",     "[1 2]", "[{\"a\":1]",
                         "[\"abc", "[\"\\q\"]",   "[tru]",   "[1]x",  "[{\"a\" 1}]",
                         "[-]",    "[\"\\u12\"]", "[{1:2}]", "[1,]",  "[\"\x01\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        jn_json_span *sp = (jn_json_span *)1;
        size_t n = 7;
        char err[128] = "";
        assert_int_equal(jn_json_array_spans(bad[i], strlen(bad[i]), &sp, &n, err, sizeof err), -1);
        assert_null(sp);
        assert_int_equal(n, 0);
        assert_non_null(strstr(err, "at byte"));
        /* The decoder refuses the same text. */
        assert_int_equal(jn_json_decode(L, bad[i], strlen(bad[i]), err, sizeof err), -1);
    }
    const char *not_array[][2] = {
        {"{\"a\":1}", "an object"}, {" \"s\" ", "a string"}, {"12", "a number"}, {"null", "null"}};
    for (size_t i = 0; i < 4; i++) {
        jn_json_span *sp;
        size_t n;
        char err[128];
        const char *t = not_array[i][0];
        assert_int_equal(jn_json_array_spans(t, strlen(t), &sp, &n, err, sizeof err), -2);
        assert_non_null(strstr(err, not_array[i][1]));
        assert_null(sp);
    }
    /* Valid JSON but broken after the value is not JSON at all. */
    jn_json_span *sp;
    size_t n;
    char err[128];
    assert_int_equal(jn_json_array_spans("{} {}", 5, &sp, &n, err, sizeof err), -1);
}

/* Decoded objects are sized from the previous one at the same depth: records of other
 * shapes and sizes after it still decode completely. */
static void test_decode_mixed_objects(void **state) {
    lua_State *L = *state;
    const char *text = "[{\"a\":1,\"b\":2,\"c\":3},{\"a\":1},{\"a\":1,\"b\":2,\"c\":3,\"d\":4,"
                       "\"e\":{\"x\":[1,{\"y\":2}]}},{}]";
    char err[128];
    assert_int_equal(jn_json_decode(L, text, strlen(text), err, sizeof err), 0);
    jn_sb sb;
    jn_sb_init(&sb);
    const char *e;
    assert_int_equal(jn_json_encode(L, -1, NULL, &sb, &e), 0);
    assert_string_equal(sb.data, "[{\"a\":1,\"b\":2,\"c\":3},{\"a\":1},{\"a\":1,\"b\":2,\"c\":3,"
                                 "\"d\":4,\"e\":{\"x\":[1,{\"y\":2}]}},[]]");
    jn_sb_free(&sb);
    lua_pop(L, 1);
}

/* Integers: the fast path and the slow one give the same values. */
static void test_decode_integers(void **state) {
    lua_State *L = *state;
    const char *text = "[0,-0,7,-7,123456789012345678,-123456789012345678,9223372036854775807,"
                       "-9223372036854775808,1.5,1e3,007]";
    char err[128];
    assert_int_equal(jn_json_decode(L, text, strlen(text), err, sizeof err), 0);
    lua_Integer want[] = {0,         0,        7, -7, 123456789012345678LL, -123456789012345678LL,
                          INT64_MAX, INT64_MIN};
    for (int i = 0; i < 8; i++) {
        lua_rawgeti(L, -1, i + 1);
        assert_true(lua_isinteger(L, -1));
        assert_true(lua_tointeger(L, -1) == want[i]);
        lua_pop(L, 1);
    }
    lua_rawgeti(L, -1, 9);
    assert_false(lua_isinteger(L, -1));
    assert_true(lua_tonumber(L, -1) == 1.5);
    lua_rawgeti(L, -2, 11);
    assert_true(lua_tointeger(L, -1) == 7);
    lua_pop(L, 3);
}

static void test_sb_int(void **state) {
    (void)state;
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_int(&sb, 0);
    jn_sb_putc(&sb, ' ');
    jn_sb_int(&sb, -42);
    jn_sb_putc(&sb, ' ');
    jn_sb_int(&sb, INT64_MAX);
    jn_sb_putc(&sb, ' ');
    jn_sb_int(&sb, INT64_MIN);
    assert_string_equal(sb.data, "0 -42 9223372036854775807 -9223372036854775808");
    jn_sb_free(&sb);
}

/* Re-encodes text through Lua: the slow path jn_json_is_canonical stands in for. */
static char *reencode(lua_State *L, const char *text) {
    char err[128];
    if (jn_json_decode(L, text, strlen(text), err, sizeof err) != 0) return NULL;
    jn_sb sb;
    jn_sb_init(&sb);
    const char *e;
    int rc = jn_json_encode(L, -1, NULL, &sb, &e);
    lua_pop(L, 1);
    if (rc != 0) {
        jn_sb_free(&sb);
        return NULL;
    }
    return jn_sb_steal(&sb);
}

/* "Canonical" must mean "re-encodes to the same bytes"; texts that do re-encode the same
 * are recognised when they hold no escapes or fractions. */
static void test_canonical(void **state) {
    lua_State *L = *state;
    const char *yes[] = {"{\"email\":\"c1@example.com\",\"id\":1,\"name\":\"Customer 1\","
                         "\"phone\":\"078801\",\"productIds\":[\"1\",\"2\"]}",
                         "[]",
                         "[1,-2,0,true,false,null,\"\"]",
                         "{\"\":1,\"a\":{\"b\":[[]]}}",
                         "{\"a\":1,\"ab\":2,\"b\":3}",
                         "\"caf\xc3\xa9\"",
                         "-123456789012345678"};
    for (size_t i = 0; i < sizeof yes / sizeof *yes; i++) {
        assert_true(jn_json_is_canonical(yes[i], strlen(yes[i])));
        char *again = reencode(L, yes[i]);
        assert_non_null(again);
        assert_string_equal(again, yes[i]);
        free(again);
    }
    const char *no[] = {"{\"b\":1,\"a\":2}",
                        "{\"a\":1,\"a\":2}",
                        "{\"ab\":1,\"a\":2}",
                        "{}",
                        "{ \"a\":1}",
                        "[1, 2]",
                        "[01]",
                        "[-0]",
                        "[1.0]",
                        "[1e2]",
                        "\"a\\u0041\"",
                        "\"a\\n\"",
                        "{\"a\":1",
                        "[1]x",
                        "nul",
                        "",
                        "1234567890123456789",
                        "{\"a\":{}}"};
    for (size_t i = 0; i < sizeof no / sizeof *no; i++)
        assert_false(jn_json_is_canonical(no[i], strlen(no[i])));
}

/* Found by tests/fuzz/fuzz_json.c: bytes that do not decode (malformed UTF-8 in a
 * string) were called canonical, so a consumer hashed them as they were for its
 * de-duplication mark. Canonical means "decodes and encodes back to these bytes". */
static void test_canonical_refuses_bad_utf8(void **state) {
    lua_State *L = *state;
    static const char *const bad[] = {
        "{\"n\xc3\xa9\":\"\xe2\x82\xac\xf2\xff\xff\xff\xf0\x9f\x98\x80\"}", /* the fuzzer's */
        "\"\xff\"",
        "[\"\xc3\"]",
        "{\"\xed\xa0\x80\":1}",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (jn_json_is_canonical(bad[i], strlen(bad[i]))) fail_msg("case %zu called canonical", i);
        assert_null(reencode(L, bad[i]));
    }
}

/* RFC 8259 §8.1: strings are UTF-8. Malformed bytes and lone surrogates are refused
 * (they were stored and served back); well-formed text of every length passes. */
static void test_decode_refuses_bad_utf8_and_lone_surrogates(void **state) {
    lua_State *L = *state;
    static const char *const bad[] = {
        "\"\xff\"",             /* not UTF-8 at all */
        "\"\xc3\"",             /* cut short */
        "\"\xc0\xaf\"",         /* overlong "/" */
        "\"\xe0\x80\xaf\"",     /* overlong, three bytes */
        "\"\xed\xa0\x80\"",     /* a surrogate, encoded */
        "\"\xf4\x90\x80\x80\"", /* past U+10FFFF */
        "\"a\\n\xff\"",         /* on the slow path (an escape first) */
        "\"\\ud800\"",          /* lone high surrogate */
        "\"\\udc00x\"",         /* lone low surrogate */
        "\"\\ud800\\u0041\"",   /* high surrogate, no low one after it */
    };
    char err[128];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        if (jn_json_decode(L, bad[i], strlen(bad[i]), err, sizeof err) == 0)
            fail_msg("case %zu accepted", i);
        assert_true(strstr(err, "UTF-8") || strstr(err, "surrogate"));
    }
    static const char *const good[] = {"\"caf\xc3\xa9\"", "\"\xe2\x82\xac\"",
                                       "\"\xf0\x9f\x98\x80\"", "\"\\ud83d\\ude00\"",
                                       "\"\\u00e9\\n\xc3\xa9\""};
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        if (jn_json_decode(L, good[i], strlen(good[i]), err, sizeof err) != 0)
            fail_msg("case %zu refused: %s", i, err);
        lua_pop(L, 1);
    }
}

/* The text of the value found for name in obj, or "(none)". */
static void assert_member(const char *obj, const char *name, const char *want) {
    const char *e = obj + strlen(obj);
    const char *v = jn_json_find_member(obj, e, name);
    char got[256] = "(none)";
    if (v) snprintf(got, sizeof got, "%.*s", (int)(jn_json_skip_value(v, e) - v), v);
    assert_string_equal(got, want);
}

/* The value a member names, found by skipping the others whole: strings holding quotes,
 * escaped backslashes and brackets, nested containers, numbers and literals. */
static void test_find_member_skips_other_values_whole(void **state) {
    (void)state;
    assert_member("{\"a\":1,\"id\":7}", "id", "7");
    assert_member(" \n{ \"a\" : \"x\\\"}\" , \"id\" : \"7\" }", "id", "\"7\"");
    assert_member("{\"a\":\"\\\\\",\"id\":true}", "id", "true");
    assert_member("{\"a\":{\"id\":1,\"b\":[{\"id\":2}]},\"id\":[1,{\"c\":\"]\"}]}", "id",
                  "[1,{\"c\":\"]\"}]");
    assert_member("{\"a\":-1.5e3,\"id\":null}", "id", "null");
    assert_member("{\"records\":[{\"id\":1}]}", "records", "[{\"id\":1}]");
    /* Inside another member's value does not count; none at all is NULL. */
    assert_member("{\"a\":{\"id\":1}}", "id", "(none)");
    assert_member("{}", "id", "(none)");
    assert_member("[{\"id\":1}]", "id", "(none)");
    assert_member("  ", "id", "(none)");
}

/* As the decoder: the last of a repeated name wins, and a name spelled with escapes is
 * the same name (one that decodes to something else is not). */
static void test_find_member_reads_names_as_the_decoder_does(void **state) {
    (void)state;
    assert_member("{\"id\":1,\"id\":2}", "id", "2");
    assert_member("{\"i\\u0064\":3}", "id", "3");
    assert_member("{\"rec\\u006frds\":[],\"id\":4}", "records", "[]");
    assert_member("{\"i\\u0065\":5}", "id", "(none)");
    assert_member("{\"i\\\\d\":6}", "id", "(none)");
    assert_member("{\"idx\":1,\"i\":2}", "id", "(none)");
}

static void test_skip_ws_and_value(void **state) {
    (void)state;
    const char *t = " \t\r\n[1, 2] x";
    const char *e = t + strlen(t);
    const char *v = jn_json_skip_ws(t, e);
    assert_int_equal(v - t, 4);
    assert_int_equal(jn_json_skip_value(v, e) - t, 10);
    assert_ptr_equal(jn_json_skip_ws(e, e), e);
    const char *n = "12345";
    assert_ptr_equal(jn_json_skip_value(n, n + 3), n + 3); /* never past end */
    const char *open = "{\"a\":[1";
    assert_ptr_equal(jn_json_skip_value(open, open + strlen(open)), open + strlen(open));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_scalars, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer_vs_float, setup, teardown),
        cmocka_unit_test_setup_teardown(test_float_encoding_is_a_fixed_point, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_escaping, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arrays_and_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sorted_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sorted_keys_stable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nested, setup, teardown),
        cmocka_unit_test_setup_teardown(test_many_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nan_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_function_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_key_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_deep_nesting_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cjson_null, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sb_json_string, setup, teardown),
        cmocka_unit_test_setup_teardown(test_error_body, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_spans, setup, teardown),
        cmocka_unit_test_setup_teardown(test_array_spans_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_mixed_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_integers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_decode_refuses_bad_utf8_and_lone_surrogates, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_sb_int, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canonical, setup, teardown),
        cmocka_unit_test_setup_teardown(test_canonical_refuses_bad_utf8, setup, teardown),
        cmocka_unit_test(test_find_member_skips_other_values_whole),
        cmocka_unit_test(test_find_member_reads_names_as_the_decoder_does),
        cmocka_unit_test(test_skip_ws_and_value),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
