/* jn_record_read: checking what a map script returns before it becomes a Kafka record. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <string.h>

#include "record.h"

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

/* Pushes the value of the Lua expression and reads it into r, checking that the stack is
 * left as it was (the result still on top). A sentinel below the result makes sure the
 * reader does not depend on absolute stack positions. Leaves the result on the stack (the
 * header strings point into it): pop it with done(). */
static const char *read_expr(lua_State *L, jn_record *r, const char *expr) {
    lua_pushliteral(L, "sentinel");
    char code[4096];
    snprintf(code, sizeof code, "return %s", expr);
    if (luaL_dostring(L, code) != LUA_OK) fail_msg("lua: %s", lua_tostring(L, -1));
    int top = lua_gettop(L);
    int type = lua_type(L, -1);
    const void *p = lua_topointer(L, -1);
    const char *why = jn_record_read(L, r);
    assert_int_equal(lua_gettop(L), top);
    assert_int_equal(lua_type(L, -1), type);
    assert_ptr_equal(lua_topointer(L, -1), p);
    assert_string_equal(lua_tostring(L, -2), "sentinel");
    return why;
}

static void done(lua_State *L) {
    lua_pop(L, 2);
    assert_int_equal(lua_gettop(L), 0);
}

/* The read fails with a message containing word. */
static void assert_rejects(lua_State *L, const char *expr, const char *word) {
    jn_record r;
    jn_record_init(&r);
    const char *why = read_expr(L, &r, expr);
    if (!why) fail_msg("%s: accepted, expected a message about %s", expr, word);
    if (!strstr(why, word)) fail_msg("%s: message \"%s\" does not mention %s", expr, why, word);
    done(L);
    jn_record_free(&r);
}

static void assert_sb(const jn_sb *sb, const char *want) {
    assert_int_equal(sb->len, strlen(want));
    assert_memory_equal(sb->data, want, sb->len);
}

static void test_valid_record(void **state) {
    lua_State *L = *state;
    jn_record r;
    jn_record_init(&r);
    const char *why =
        read_expr(L, &r, "{key = '7', value = {b = 1, a = 'x'}, headers = {source = 'crm'}}");
    assert_null(why);
    assert_sb(&r.key, "7");
    assert_sb(&r.value, "{\"a\":\"x\",\"b\":1}"); /* canonical: sorted keys */
    assert_int_equal(r.nheaders, 2);
    assert_string_equal(r.headers[0], "source");
    assert_string_equal(r.headers[1], "crm");
    assert_null(r.headers[2]);
    done(L);
    jn_record_free(&r);
}

static void test_headers_optional(void **state) {
    lua_State *L = *state;
    jn_record r;
    jn_record_init(&r);
    assert_null(read_expr(L, &r, "{key = 'k', value = 'v'}"));
    assert_int_equal(r.nheaders, 0);
    assert_null(r.headers[0]);
    done(L);
    assert_null(read_expr(L, &r, "{key = 'k', value = 'v', headers = {}}"));
    assert_int_equal(r.nheaders, 0);
    assert_null(r.headers[0]);
    done(L);
    jn_record_free(&r);
}

static void test_integer_key(void **state) {
    lua_State *L = *state;
    jn_record r;
    jn_record_init(&r);
    assert_null(read_expr(L, &r, "{key = 7, value = {}}"));
    assert_sb(&r.key, "7");
    done(L);
    assert_null(read_expr(L, &r, "{key = -12, value = {}}"));
    assert_sb(&r.key, "-12");
    done(L);
    assert_null(read_expr(L, &r, "{key = math.maxinteger, value = {}}"));
    assert_sb(&r.key, "9223372036854775807");
    done(L);
    jn_record_free(&r);
}

static void test_string_value_as_is(void **state) {
    lua_State *L = *state;
    jn_record r;
    jn_record_init(&r);
    /* not re-encoded: no quotes added, the bytes (NUL included) kept */
    assert_null(read_expr(L, &r, "{key = 'k', value = 'plain \\0 text {not json'}"));
    assert_int_equal(r.value.len, 22);
    assert_memory_equal(r.value.data, "plain \0 text {not json", 22);
    done(L);
    assert_null(read_expr(L, &r, "{key = 'k', value = '{\"b\":1,\"a\":2}'}"));
    assert_sb(&r.value, "{\"b\":1,\"a\":2}"); /* a JSON string is not reordered */
    done(L);
    jn_record_free(&r);
}

static void test_bad_keys(void **state) {
    lua_State *L = *state;
    assert_rejects(L, "{value = {}}", "key");
    assert_rejects(L, "{key = '', value = {}}", "key");
    assert_rejects(L, "{key = 1.5, value = {}}", "key");
    /* a float key would publish "7.0" where the original published "7" */
    assert_rejects(L, "{key = 7.0, value = {}}", "key");
    assert_rejects(L, "{key = true, value = {}}", "key");
    assert_rejects(L, "{key = {}, value = {}}", "key");
}

static void test_bad_values(void **state) {
    lua_State *L = *state;
    assert_rejects(L, "{key = 'k'}", "value");
    assert_rejects(L, "{key = 'k', value = 5}", "value");
    assert_rejects(L, "{key = 'k', value = true}", "value");
}

static void test_bad_headers(void **state) {
    lua_State *L = *state;
    assert_rejects(L, "{key = 'k', value = {}, headers = 'source=crm'}", "headers");
    assert_rejects(L, "{key = 'k', value = {}, headers = {source = 5}}", "headers");
    assert_rejects(L, "{key = 'k', value = {}, headers = {source = {}}}", "headers");
    /* a header needs a name: {'crm'} has the integer name 1 */
    assert_rejects(L, "{key = 'k', value = {}, headers = {'crm'}}", "headers");
}

#define HEADERS_EXPR(n)                                                                            \
    "(function() local h = {} for i = 1, " #n " do h['h' .. i] = 'v' .. i end "                    \
    "return {key = 'k', value = {}, headers = h} end)()"

static void test_header_limit(void **state) {
    lua_State *L = *state;
    jn_record r;
    jn_record_init(&r);
    /* 16 headers are allowed, every pair read */
    assert_null(read_expr(L, &r, HEADERS_EXPR(16)));
    assert_int_equal(r.nheaders, 2 * JN_RECORD_MAX_HEADERS);
    assert_null(r.headers[2 * JN_RECORD_MAX_HEADERS]);
    int seen[17] = {0};
    for (int i = 0; i < r.nheaders; i += 2) {
        int n;
        assert_int_equal(sscanf(r.headers[i], "h%d", &n), 1);
        assert_true(n >= 1 && n <= 16);
        char want[8];
        snprintf(want, sizeof want, "v%d", n);
        assert_string_equal(r.headers[i + 1], want);
        seen[n]++;
    }
    for (int n = 1; n <= 16; n++)
        assert_int_equal(seen[n], 1);
    done(L);
    jn_record_free(&r);
    /* the 17th is refused, naming the limit */
    assert_rejects(L, HEADERS_EXPR(17), "16");
}

static void test_not_a_table(void **state) {
    lua_State *L = *state;
    static const char *const exprs[] = {"'7'", "7", "true", "nil", "print"};
    for (size_t i = 0; i < sizeof exprs / sizeof exprs[0]; i++) {
        jn_record r;
        jn_record_init(&r);
        const char *why = read_expr(L, &r, exprs[i]);
        if (!why) fail_msg("%s: accepted as a record", exprs[i]);
        assert_non_null(strstr(why, "table"));
        done(L);
        jn_record_free(&r);
    }
}

static void test_value_encoder_error(void **state) {
    lua_State *L = *state;
    assert_rejects(L, "{key = 'k', value = {f = print}}", "function");
    assert_rejects(L, "{key = 'k', value = {nested = {deeper = {function() end}}}}", "function");
    assert_rejects(L, "{key = 'k', value = {x = 0/0}}", "NaN");
}

static void test_reuse_resets(void **state) {
    lua_State *L = *state;
    jn_record r;
    jn_record_init(&r);
    assert_null(read_expr(L, &r,
                          "{key = 'first-key', value = {long = 'a long first value'}, "
                          "headers = {a = '1', b = '2', c = '3'}}"));
    assert_int_equal(r.nheaders, 6);
    done(L);

    /* shorter key and value, no headers: nothing of the first record remains */
    assert_null(read_expr(L, &r, "{key = 2, value = 'v'}"));
    assert_sb(&r.key, "2");
    assert_sb(&r.value, "v");
    assert_int_equal(r.nheaders, 0);
    assert_null(r.headers[0]);
    done(L);

    /* a failed read, then a good one */
    assert_non_null(read_expr(L, &r, "{key = 'x', value = 5, headers = {a = 'b'}}"));
    done(L);
    assert_null(read_expr(L, &r, "{key = 'y', value = {n = 1}, headers = {s = 't'}}"));
    assert_sb(&r.key, "y");
    assert_sb(&r.value, "{\"n\":1}");
    assert_int_equal(r.nheaders, 2);
    assert_string_equal(r.headers[0], "s");
    assert_string_equal(r.headers[1], "t");
    assert_null(r.headers[2]);
    done(L);

    /* a read failing on its 17th header leaves no header count past the array */
    assert_non_null(read_expr(L, &r, HEADERS_EXPR(17)));
    assert_true(r.nheaders <= 2 * JN_RECORD_MAX_HEADERS);
    assert_null(r.headers[r.nheaders]);
    done(L);
    jn_record_free(&r);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_valid_record, setup, teardown),
        cmocka_unit_test_setup_teardown(test_headers_optional, setup, teardown),
        cmocka_unit_test_setup_teardown(test_integer_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_string_value_as_is, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_headers, setup, teardown),
        cmocka_unit_test_setup_teardown(test_header_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_value_encoder_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reuse_resets, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
