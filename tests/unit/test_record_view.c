/* Record views: a view reads, writes, iterates and encodes as the table its text decodes
 * to would, and only canonical objects become views. */
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
#include "record_view.h"

#define RECORD                                                                                     \
    "{\"address\":{\"city\":\"Oslo\",\"zip\":\"0150\"},\"email\":\"a@b.c\",\"id\":42,"             \
    "\"name\":\"Ada\",\"ok\":true,\"productIds\":[\"P1\",\"P2\"],\"score\":-7,\"x\":null}"

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

static char *encode_top(lua_State *L) {
    jn_sb out;
    jn_sb_init(&out);
    const char *err = NULL;
    if (jn_json_encode(L, -1, NULL, &out, &err) != 0) fail_msg("encode: %s", err);
    return jn_sb_steal(&out);
}

/* Runs chunk (a function of the record `r`, returning one value) on a view of text and
 * on the table text decodes to; both must give the same encoded result. Returns it. */
static char *both_ways(lua_State *L, const char *text, const char *chunk) {
    char *got[2];
    for (int way = 0; way < 2; way++) {
        if (luaL_loadstring(L, chunk) != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
        if (way == 0) {
            assert_int_equal(jn_view_push(L, text, strlen(text)), 0);
            assert_non_null(jn_view_test(L, -1));
        } else {
            char err[100];
            assert_int_equal(jn_json_decode(L, text, strlen(text), err, sizeof err), 0);
        }
        if (lua_pcall(L, 1, 1, 0) != LUA_OK) fail_msg("%s", lua_tostring(L, -1));
        got[way] = encode_top(L);
        lua_pop(L, 1);
    }
    assert_string_equal(got[0], got[1]);
    free(got[1]);
    return got[0];
}

static void test_unchanged_view_encodes_as_its_text(void **state) {
    lua_State *L = *state;
    char *out = both_ways(L, RECORD, "local r = ... return r");
    assert_string_equal(out, RECORD);
    free(out);
}

static void test_reads_every_kind(void **state) {
    lua_State *L = *state;
    char *out = both_ways(L, RECORD,
                          "local r = ... return { r.id, r.name, r.score, r.ok, r.address.city, "
                          "r.productIds[2], r.missing == nil, r.x == nil }");
    assert_string_equal(out, "[42,\"Ada\",-7,true,\"Oslo\",\"P2\",true,false]");
    free(out);
}

static void test_writes_deletes_and_nested_changes(void **state) {
    lua_State *L = *state;
    char *out = both_ways(L, RECORD,
                          "local r = ... r.name = nil r.added = { 1, 2 } r.aa = 'first' "
                          "r.productIds[3] = 'P3' r.address.zip = nil r.score = r.score * 2 "
                          "r[7] = 'seven' return r");
    assert_string_equal(out, "{\"7\":\"seven\",\"aa\":\"first\",\"added\":[1,2],\"address\":{"
                             "\"city\":\"Oslo\"},\"email\":\"a@b.c\",\"id\":42,\"ok\":true,"
                             "\"productIds\":[\"P1\",\"P2\",\"P3\"],\"score\":-14,\"x\":null}");
    free(out);
}

static void test_a_table_read_is_kept(void **state) {
    lua_State *L = *state;
    char *out = both_ways(L, RECORD, "local r = ... return { r.address == r.address }");
    assert_string_equal(out, "[true]");
    free(out);
}

static void test_pairs_sees_changes(void **state) {
    lua_State *L = *state;
    char *out = both_ways(L, RECORD,
                          "local r = ... r.email = nil r.zz = 1 r.id = 43 local keys = {} "
                          "for k, v in pairs(r) do keys[#keys + 1] = k .. '=' .. type(v) end "
                          "table.sort(keys) return keys");
    assert_string_equal(out, "[\"address=table\",\"id=number\",\"name=string\",\"ok=boolean\","
                             "\"productIds=table\",\"score=number\",\"x=userdata\",\"zz=number\"]");
    free(out);
}

static void test_everything_deleted_is_empty(void **state) {
    lua_State *L = *state;
    char *out = both_ways(L, "{\"a\":1}", "local r = ... r.a = nil return r");
    assert_string_equal(out, "[]");
    free(out);
}

/* An API's records come with their members in its own order: the view encodes them
 * sorted, as the decoded table would be. */
static void test_members_in_any_order(void **state) {
    lua_State *L = *state;
    char *out = both_ways(L, "{\"id\":7,\"b\":[1],\"a\":\"x\"}", "local r = ... return r");
    assert_string_equal(out, "{\"a\":\"x\",\"b\":[1],\"id\":7}");
    free(out);
    out = both_ways(L, "{\"id\":7,\"b\":[1],\"a\":\"x\"}", "local r = ... r.c = true return r");
    assert_string_equal(out, "{\"a\":\"x\",\"b\":[1],\"c\":true,\"id\":7}");
    free(out);
}

/* Only objects canonical but for their order become views: anything else is left to the
 * full decoder. */
static void test_only_canonical_objects(void **state) {
    lua_State *L = *state;
    static const char *const refused[] = {"{\"b\":1,\"a\":2,\"b\":3}",
                                          "{\"a\": 1}",
                                          "{\"a\":\"\\u0041\"}",
                                          "{\"a\":1.5}",
                                          "{}",
                                          "[1]",
                                          "\"a\"",
                                          "{\"a\":1",
                                          "{\"a\":01}",
                                          "{\"a\":1}x",
                                          "{\"a\":1,\"a\":2}"};
    int top = lua_gettop(L);
    for (size_t i = 0; i < sizeof refused / sizeof *refused; i++) {
        if (jn_view_push(L, refused[i], strlen(refused[i])) == 0)
            fail_msg("made a view of %s", refused[i]);
        assert_int_equal(lua_gettop(L), top);
    }
}

static void test_protected_metatable(void **state) {
    lua_State *L = *state;
    assert_int_equal(jn_view_push(L, RECORD, strlen(RECORD)), 0);
    lua_setglobal(L, "r");
    assert_int_equal(luaL_dostring(L, "return getmetatable(r)"), LUA_OK);
    assert_string_equal(lua_tostring(L, -1), "junction.record");
    lua_pop(L, 1);
    assert_int_not_equal(luaL_dostring(L, "setmetatable(r, {})"), LUA_OK);
    lua_pop(L, 1);
    /* Not a view: other userdata, tables, strings. */
    luaL_dostring(L, "return io.stdout");
    assert_null(jn_view_test(L, -1));
    lua_pushliteral(L, "{\"a\":1}");
    assert_null(jn_view_test(L, -1));
    lua_pop(L, 2);
}

static void test_get_and_text(void **state) {
    lua_State *L = *state;
    assert_int_equal(jn_view_push(L, RECORD, strlen(RECORD)), 0);
    assert_int_equal(jn_view_get(L, -1, "id"), LUA_TNUMBER);
    assert_int_equal(lua_tointeger(L, -1), 42);
    lua_pop(L, 1);
    assert_int_equal(jn_view_get(L, -1, "nope"), LUA_TNIL);
    lua_pop(L, 1);
    jn_view_push_text(L, -1);
    assert_string_equal(lua_tostring(L, -1), RECORD);
    lua_pop(L, 2);
}

/* The host reads ids and sink keys as text without making Lua values, until the script
 * changed the field. */
static void test_raw_fields(void **state) {
    lua_State *L = *state;
    assert_int_equal(jn_view_push(L, RECORD, strlen(RECORD)), 0);
    const char *val;
    size_t vlen;
    assert_int_equal(jn_view_raw(L, -1, "name", &val, &vlen), 1);
    assert_int_equal(vlen, 5);
    assert_memory_equal(val, "\"Ada\"", 5);
    assert_int_equal(jn_view_raw(L, -1, "nope", &val, &vlen), 0);
    lua_setglobal(L, "r");
    assert_int_equal(luaL_dostring(L, "r.name = 'Bea' r.other = 1"), LUA_OK);
    lua_getglobal(L, "r");
    assert_int_equal(jn_view_raw(L, -1, "name", &val, &vlen), -1);
    assert_int_equal(jn_view_raw(L, -1, "id", &val, &vlen), 1);
    assert_memory_equal(val, "42", 2);
    lua_pushliteral(L, "x");
    assert_int_equal(jn_view_raw(L, -1, "id", &val, &vlen), -1);
    lua_pop(L, 2);
}

/* Text already found canonical is only split into members, with the same result as the
 * checking scan; text that is not shaped so is refused, never read past its end. */
static void test_members_of_canonical_text(void **state) {
    (void)state;
    static const char *const texts[] = {RECORD, "{\"a\":{\"b\":[1,{\"c\":\"}]\"}]},\"d\":\"x,y\"}",
                                        "{\"a\":[],\"b\":-1}"};
    for (size_t t = 0; t < sizeof texts / sizeof *texts; t++) {
        jn_json_member want[64], got[64];
        int n = jn_json_canonical_members(texts[t], strlen(texts[t]), want, 64);
        assert_true(n > 0);
        assert_int_equal(jn_json_members_of_canonical(texts[t], strlen(texts[t]), got, 64), n);
        assert_memory_equal(want, got, (size_t)n * sizeof *got);
    }
    static const char *const bad[] = {"{",          "{\"a",      "{\"a\":",    "{\"a\":\"b",
                                      "{\"a\":[1,", "{\"a\":1",  "{\"a\":1}x", "{}",
                                      "[1]",        "{\"a\":1,}"};
    for (size_t t = 0; t < sizeof bad / sizeof *bad; t++) {
        jn_json_member m[64];
        if (jn_json_members_of_canonical(bad[t], strlen(bad[t]), m, 64) >= 0)
            fail_msg("split %s", bad[t]);
    }
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_unchanged_view_encodes_as_its_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reads_every_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_writes_deletes_and_nested_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_table_read_is_kept, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pairs_sees_changes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_everything_deleted_is_empty, setup, teardown),
        cmocka_unit_test_setup_teardown(test_only_canonical_objects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_members_in_any_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_protected_metatable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_get_and_text, setup, teardown),
        cmocka_unit_test_setup_teardown(test_raw_fields, setup, teardown),
        cmocka_unit_test(test_members_of_canonical_text),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
