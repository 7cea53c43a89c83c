/* jn_page_read: one page of a source's response read through the map script's hooks, or
 * as one bare array without them. Scripts are written to a fresh temporary folder and
 * loaded by the real script host; every case checks the stack is left as it was. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "page.h"
#include "script.h"

typedef struct {
    uv_loop_t loop;
    char dir[64], path[128];
    jn_script_host *host;
    jn_script *script;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof f->dir, "/tmp/jn_page_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    jn_script_opts o = {.instruction_limit = 1000000L};
    f->host = jn_script_host_new(&f->loop, &o);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    jn_script_host_close(f->host);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    remove(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Loads a map script made of hooks (Lua assigning M.records / M.next). */
static void load(fixture *f, const char *hooks) {
    snprintf(f->path, sizeof f->path, "%s/map.lua", f->dir);
    FILE *fp = fopen(f->path, "w");
    fprintf(fp, "local M = {}\n%s\nfunction M.map(r) return r end\nreturn M\n", hooks);
    fclose(fp);
    char *err = NULL;
    f->script = jn_script_add(f->host, "map_test", f->path, NULL, NULL, &err);
    if (!f->script) fail_msg("%s", err);
}

/* A response of the source "s", page 2 of url. */
static jn_page page_of(fixture *f, int has_records, int has_next, const char *body,
                       const char *fields, size_t fields_len) {
    return (jn_page){.script = f->script,
                     .has_records = has_records,
                     .has_next = has_next,
                     .source = "s",
                     .topic = "t",
                     .base_url = "http://api.test:8080/orders?limit=2",
                     .page = 2,
                     .url = "http://api.test:8080/orders?limit=2&cursor=a",
                     .status = 200,
                     .headers = fields,
                     .headers_len = fields_len,
                     .body = body,
                     .body_len = strlen(body)};
}

/* Reads pg expecting failure for reason, with needle in the detail. */
static void expect_failure(fixture *f, jn_page *pg, const char *reason, const char *needle,
                           int transient) {
    lua_State *L = jn_script_host_lua(f->host);
    int top = lua_gettop(L), t = -1;
    char detail[600];
    const char *why = jn_page_read(L, pg, &t, detail, sizeof detail);
    assert_int_equal(lua_gettop(L), top);
    if (!why) fail_msg("expected %s, the page was read", reason);
    assert_string_equal(why, reason);
    if (!strstr(detail, needle)) fail_msg("expected \"%s\" in \"%s\"", needle, detail);
    assert_null(strchr(detail, '\n')); /* no traceback */
    assert_int_equal(t, transient);
    assert_null(pg->spans);
    assert_null(pg->next_url);
    assert_int_equal(pg->records_ref, LUA_NOREF);
}

static void expect_read(fixture *f, jn_page *pg, size_t n, const char *next) {
    lua_State *L = jn_script_host_lua(f->host);
    int top = lua_gettop(L), t;
    char detail[600];
    const char *why = jn_page_read(L, pg, &t, detail, sizeof detail);
    if (why) fail_msg("%s: %s", why, detail);
    assert_int_equal(lua_gettop(L), top);
    assert_int_equal(pg->nrecords, n);
    if (next)
        assert_string_equal(pg->next_url, next);
    else
        assert_null(pg->next_url);
}

static void test_bare_array_without_hooks(void **state) {
    fixture *f = *state;
    load(f, "");
    jn_page pg = page_of(f, 0, 0, "[{\"id\":1}, {\"id\":2}, 3]", NULL, 0);
    expect_read(f, &pg, 3, NULL);
    assert_non_null(pg.spans);
    assert_int_equal(pg.records_ref, LUA_NOREF);
    jn_page_release(jn_script_host_lua(f->host), &pg);
    pg = page_of(f, 0, 0, "{\"data\":[]}", NULL, 0);
    expect_failure(f, &pg, "not_array", "records(body, ctx) returns the array inside it", 0);
    pg = page_of(f, 0, 0, "[{\"id\":1}", NULL, 0);
    expect_failure(f, &pg, "malformed_json", "is not JSON", 1);
}

static void test_records_hook_finds_the_array(void **state) {
    fixture *f = *state;
    load(f, "function M.records(body, ctx)\n"
            "  assert(ctx.source == 's' and ctx.topic == 't' and ctx.page == 2)\n"
            "  if body.fail then error('the response has no \"data\" array') end\n"
            "  return body.data end");
    lua_State *L = jn_script_host_lua(f->host);
    jn_page pg = page_of(f, 1, 0, "{\"data\":[{\"id\":1},{\"id\":2}]}", NULL, 0);
    expect_read(f, &pg, 2, NULL);
    assert_null(pg.spans);
    assert_int_not_equal(pg.records_ref, LUA_NOREF);
    lua_rawgeti(L, LUA_REGISTRYINDEX, pg.records_ref);
    lua_rawgeti(L, -1, 2);
    lua_getfield(L, -1, "id");
    assert_int_equal(lua_tointeger(L, -1), 2);
    lua_pop(L, 3);
    jn_page_release(L, &pg);
    assert_int_equal(pg.records_ref, LUA_NOREF);
    pg = page_of(f, 1, 0, "{\"data\":[]}", NULL, 0);
    expect_read(f, &pg, 0, NULL);
    jn_page_release(L, &pg);

    pg = page_of(f, 1, 0, "{\"fail\":true}", NULL, 0);
    expect_failure(f, &pg, "records_error", "records() failed: ", 0);
    pg = page_of(f, 1, 0, "{\"data\":{\"id\":1}}", NULL, 0);
    expect_failure(f, &pg, "not_array", "records() returned a table that is not an array", 0);
    pg = page_of(f, 1, 0, "{\"data\":\"x\"}", NULL, 0);
    expect_failure(f, &pg, "not_array", "records() returned a string", 0);
    pg = page_of(f, 1, 0, "{}", NULL, 0);
    expect_failure(f, &pg, "not_array", "records() returned nil", 0);
}

/* The Link header (sent twice: one value), a cursor in the body, and what next() may
 * return. */
static void test_next_hook(void **state) {
    fixture *f = *state;
    load(f, "function M.next(r, ctx)\n"
            "  assert(r.status == 200 and r.page == 2 and ctx.page == 2 and #r.records == 1)\n"
            "  local v = r.body.v\n"
            "  if v == 'link' then return r.headers.link end\n"
            "  if v == 'type' then return r.headers['content-type'] end\n"
            "  if v == 'url' then return r.url .. 'x' end\n"
            "  if v == 'table' then return {} end\n"
            "  if v == 'false' then return false end\n"
            "  if v == 'error' then error('Link header: expected \"<\"') end\n"
            "  return v end\n"
            "function M.records(body) return body.data end");
    static const char fields[] = "content-type\0application/json\0link\0http://api.test:8080/a\0"
                                 "link\0b\0";
    const size_t flen = sizeof fields - 1;
    jn_page pg = page_of(f, 1, 1, "{\"data\":[{}],\"v\":\"url\"}", fields, flen);
    expect_read(f, &pg, 1, "http://api.test:8080/orders?limit=2&cursor=ax");
    jn_page_release(jn_script_host_lua(f->host), &pg);
    pg = page_of(f, 1, 1, "{\"data\":[{}],\"v\":\"type\"}", fields, flen);
    expect_failure(f, &pg, "bad_next_url", "\"application/json\", which is not an absolute", 0);
    pg = page_of(f, 1, 1, "{\"data\":[{}],\"v\":\"link\"}", fields, flen);
    expect_failure(f, &pg, "bad_next_url", "\"http://api.test:8080/a, b\", which is not", 0);
    pg = page_of(f, 1, 1, "{\"data\":[{}],\"v\":\"http://other.test:8080/orders\"}", NULL, 0);
    expect_failure(f, &pg, "bad_next_url", "on another host than the source's url", 0);
    pg = page_of(f, 1, 1, "{\"data\":[{}],\"v\":\"https://api.test:8080/orders\"}", NULL, 0);
    expect_failure(f, &pg, "bad_next_url", "on another host", 0);
    pg = page_of(f, 1, 1, "{\"data\":[{}],\"v\":\"table\"}", NULL, 0);
    expect_failure(f, &pg, "bad_next_url", "next() returned a table that is not an array", 0);
    pg = page_of(f, 1, 1, "{\"data\":[{}],\"v\":\"error\"}", NULL, 0);
    expect_failure(f, &pg, "next_error", "next() failed: ", 0);
    /* nil, false and JSON's null end the cycle. */
    for (int i = 0; i < 3; i++) {
        static const char *const ends[] = {"{\"data\":[{}]}", "{\"data\":[{}],\"v\":\"false\"}",
                                           "{\"data\":[{}],\"v\":null}"};
        pg = page_of(f, 1, 1, ends[i], NULL, 0);
        expect_read(f, &pg, 1, NULL);
        jn_page_release(jn_script_host_lua(f->host), &pg);
    }
}

/* next() without records(): the body must be the array, and is what next() sees. */
static void test_next_over_a_bare_array(void **state) {
    fixture *f = *state;
    load(f, "function M.next(r) if #r.body == 2 then return r.url .. '&more' end end");
    jn_page pg = page_of(f, 0, 1, "[{\"id\":1},{\"id\":2}]", NULL, 0);
    expect_read(f, &pg, 2, "http://api.test:8080/orders?limit=2&cursor=a&more");
    jn_page_release(jn_script_host_lua(f->host), &pg);
    pg = page_of(f, 0, 1, "  {\"data\":[]}", NULL, 0);
    expect_failure(f, &pg, "not_array", "expected a JSON array, got an object", 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_bare_array_without_hooks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_records_hook_finds_the_array, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_hook, setup, teardown),
        cmocka_unit_test_setup_teardown(test_next_over_a_bare_array, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
