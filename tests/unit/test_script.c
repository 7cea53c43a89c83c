/* The Lua host: loading, sandbox, instruction limit, reloads, the junction module,
 * require and the status report. Scripts are written to a fresh temporary folder. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "buf.h"
#include "log.h"
#include "lua_alloc.h"
#include "script.h"

#define LIMIT 1000000L

typedef struct {
    uv_loop_t loop;
    char dir[64];
    char files[16][256];
    int nfiles;
    jn_script_host *host;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof f->dir, "/tmp/jn_script_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static void close_host(fixture *f) {
    if (!f->host) return;
    jn_script_host_close(f->host);
    f->host = NULL;
    uv_run(&f->loop, UV_RUN_DEFAULT);
}

static int teardown(void **state) {
    fixture *f = *state;
    close_host(f);
    /* Every handle is closed: the loop closes cleanly. */
    assert_int_equal(uv_loop_close(&f->loop), 0);
    for (int i = f->nfiles - 1; i >= 0; i--)
        remove(f->files[i]);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void start_host(fixture *f, int allow_exec, int allow_write) {
    jn_script_opts o = {
        .instruction_limit = LIMIT, .allow_exec = allow_exec, .allow_write = allow_write};
    f->host = jn_script_host_new(&f->loop, &o);
    assert_non_null(f->host);
}

static void start_host_opts(fixture *f, jn_script_opts o) {
    if (!o.instruction_limit) o.instruction_limit = LIMIT;
    f->host = jn_script_host_new(&f->loop, &o);
    assert_non_null(f->host);
}

/* Writes dir/name (remembered for cleanup) and returns its path (static per slot). */
static const char *write_script(fixture *f, const char *name, const char *text) {
    char path[256];
    snprintf(path, sizeof path, "%s/%s", f->dir, name);
    int known = -1;
    for (int i = 0; i < f->nfiles; i++)
        if (!strcmp(f->files[i], path)) known = i;
    if (known < 0) {
        assert_true(f->nfiles < 16);
        known = f->nfiles++;
        snprintf(f->files[known], sizeof f->files[known], "%s", path);
    }
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    return f->files[known];
}

static jn_script *add(fixture *f, const char *name, const char *text) {
    char file[64];
    snprintf(file, sizeof file, "%s.lua", name);
    const char *path = write_script(f, file, text);
    char *err = NULL;
    jn_script *s = jn_script_add(f->host, name, path, NULL, NULL, &err);
    if (!s) fail_msg("adding %s: %s", name, err);
    return s;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!hay) fail_msg("expected \"%s\", got NULL", needle);
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* Calls fn with no arguments and returns its result converted to a string (free it), or
 * NULL with *err set. */
static char *call_str(jn_script *s, lua_State *L, const char *fn, char **err) {
    int top = lua_gettop(L);
    if (jn_script_call(s, fn, 0, 1, err) != 0) {
        assert_int_equal(lua_gettop(L), top);
        return NULL;
    }
    assert_int_equal(lua_gettop(L), top + 1);
    const char *v = luaL_tolstring(L, -1, NULL);
    char *out = strdup(v);
    lua_pop(L, 2);
    return out;
}

static void assert_call(jn_script *s, lua_State *L, const char *fn, const char *want) {
    char *err = NULL;
    char *got = call_str(s, L, fn, &err);
    if (!got) fail_msg("%s(): %s", fn, err);
    if (strcmp(got, want) != 0) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s() returned \"%s\", want \"%s\"", fn, got, want);
        free(got);
        fail_msg("%s", msg);
    }
    free(got);
}

/* Calls fn expecting an error; returns the message (free it). */
static char *call_err(jn_script *s, lua_State *L, const char *fn) {
    char *err = NULL;
    char *got = call_str(s, L, fn, &err);
    if (got) {
        char msg[512];
        snprintf(msg, sizeof msg, "%s() returned \"%s\", expected an error", fn, got);
        free(got);
        fail_msg("%s", msg);
    }
    assert_non_null(err);
    return err;
}

/* ---- loading and calling ------------------------------------------------------------ */

static void test_load_and_call(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "greet",
                       "local M = {}\n"
                       "function M.hello(name) return 'hello ' .. name end\n"
                       "return M\n");
    assert_string_equal(jn_script_name(s), "greet");
    assert_int_equal(jn_script_version(s), 1);
    int top = lua_gettop(L);
    lua_pushstring(L, "world");
    char *err = NULL;
    assert_int_equal(jn_script_call(s, "hello", 1, 1, &err), 0);
    assert_string_equal(lua_tostring(L, -1), "hello world");
    lua_pop(L, 1);
    assert_int_equal(lua_gettop(L), top);
    /* The module table is reachable from C too. */
    jn_script_push_module(s);
    assert_int_equal(lua_getfield(L, -1, "hello"), LUA_TFUNCTION);
    lua_pop(L, 2);
}

static void test_missing_function(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "m", "return { a = 1 }\n");
    int top = lua_gettop(L);
    lua_pushinteger(L, 1); /* an argument that must be dropped too */
    char *err = NULL;
    assert_int_equal(jn_script_call(s, "nope", 1, 1, &err), -1);
    assert_contains(err, "nope");
    assert_int_equal(lua_gettop(L), top);
    free(err);
}

/* A control character in a script's path is written \xNN in every message naming the
 * file (it used to print as the raw byte: invisible, or a broken line). */
static void test_control_characters_in_a_path_are_escaped(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    char want[128];
    snprintf(want, sizeof want, "%s/a\\x01b.lua", f->dir);

    const char *path = write_script(f, "a\001b.lua", "return {\n");
    char *err = NULL;
    assert_null(jn_script_add(f->host, "a", path, NULL, NULL, &err));
    assert_contains(err, want);
    assert_null(strchr(err, '\001'));
    free(err);

    path = write_script(f, "a\001b.lua", "return { boom = function() error('x') end }\n");
    jn_script *s = jn_script_add(f->host, "a", path, NULL, NULL, &err);
    assert_non_null(s);
    err = call_err(s, L, "boom");
    assert_contains(err, want); /* the chunk's name, in the message and the traceback */
    assert_null(strchr(err, '\001'));
    free(err);

    char missing[128];
    snprintf(missing, sizeof missing, "%s/gone\033[2J.lua", f->dir);
    assert_null(jn_script_add(f->host, "g", missing, NULL, NULL, &err));
    assert_contains(err, "gone\\x1b[2J.lua");
    assert_null(strchr(err, '\033'));
    free(err);
}

static void assert_brief(const char *err, const char *want) {
    const char *start = NULL;
    size_t n = jn_script_error_brief(err, &start);
    char got[256];
    snprintf(got, sizeof got, "%.*s", (int)n, start);
    assert_string_equal(got, want);
}

/* What a client may be answered with: the first line, without Lua's source positions. */
static void test_error_brief_keeps_the_message_only(void **state) {
    (void)state;
    assert_brief("/srv/scripts/crm.lua:69: bad argument #2 to 'format' (number has no integer "
                 "representation)\nstack traceback:\n\t[C]: in function 'string.format'\n"
                 "\t/srv/scripts/crm.lua:69: in function </srv/scripts/crm.lua:48>",
                 "bad argument #2 to 'format' (number has no integer representation)");
    assert_brief("...long/folder/scripts/crm.lua:5: /srv/my scripts/lib.lua:10: boom\nstack",
                 "boom");
    assert_brief("crm.lua:3: x must be set", "x must be set");
    assert_brief("[string \"chunk\"]:1: y", "y");
    assert_brief("/srv/crm.lua:1: opening at 12:30: closed", "opening at 12:30: closed");
    /* Without a position, every word stays. */
    assert_brief("opening at 12:30: closed", "opening at 12:30: closed");
    assert_brief("name: 12: odd", "name: 12: odd");
    assert_brief("no position here", "no position here");
    assert_brief("", "");
    assert_brief("/srv/crm.lua:1: ", "");
}

static void test_error_brief_of_a_real_error(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "bad",
                       "local M = {}\n"
                       "local function inner(t) return t.x.y end\n"
                       "function M.boom() return inner({}) end\n"
                       "return M\n");
    char *err = call_err(s, L, "boom");
    assert_contains(err, f->dir);
    assert_contains(err, "stack traceback");
    const char *start;
    size_t n = jn_script_error_brief(err, &start);
    char got[256];
    snprintf(got, sizeof got, "%.*s", (int)n, start);
    assert_string_equal(got, "attempt to index a nil value (field 'x')");
    free(err);
}

/* An empty file, one that returns nil, or one that only defines globals (what a file
 * saved half-way looks like) is an error naming the file, never a module. */
static void test_chunk_returning_nothing_is_an_error(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    static const char *const texts[] = {"", "return nil\n", "function ping() return 1 end\n",
                                        "-- nothing yet\n"};
    for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
        const char *path = write_script(f, "g.lua", texts[i]);
        char *err = NULL;
        assert_null(jn_script_add(f->host, "g", path, NULL, NULL, &err));
        assert_contains(err, path);
        assert_contains(err, "return M");
        free(err);
    }
}

static void test_first_version_failure(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    const char *path = write_script(f, "broken.lua", "return {\n");
    char *err = NULL;
    assert_null(jn_script_add(f->host, "broken", path, NULL, NULL, &err));
    assert_contains(err, "broken");
    assert_contains(err, path);
    free(err);
    path = write_script(f, "notable.lua", "return 42\n");
    err = NULL;
    assert_null(jn_script_add(f->host, "notable", path, NULL, NULL, &err));
    assert_contains(err, "must return a table");
    free(err);
    err = NULL;
    char missing[300];
    snprintf(missing, sizeof missing, "%s/missing.lua", f->dir);
    assert_null(jn_script_add(f->host, "missing", missing, NULL, NULL, &err));
    assert_contains(err, "missing.lua");
    free(err);
}

/* ---- sandbox ------------------------------------------------------------------------ */

static void test_env_per_file(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *a = add(f, "a",
                       "shared = 42\n"
                       "string.marker = 'patched by a'\n"
                       "return { get = function() return shared end }\n");
    jn_script *b = add(f, "b",
                       "return {\n"
                       "  get = function() return tostring(rawget(_ENV, 'shared')) end,\n"
                       "  marker = function() return tostring(string.marker) end,\n"
                       "}\n");
    assert_call(a, L, "get", "42");
    assert_call(b, L, "get", "nil");
    /* Library tables are private copies too. */
    assert_call(b, L, "marker", "nil");
}

static void test_undefined_global(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "u", "return { f = function() return undefined_thingy + 1 end }\n");
    char *err = call_err(s, L, "f");
    assert_contains(err, "undefined_thingy");
    assert_contains(err, "undefined global");
    free(err);
}

static void test_exec_absent_by_default(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "x",
                       "return {\n"
                       "  f = function() return type(os.execute) .. ',' .. "
                       "type(io.popen) end,\n"
                       "  g = function() return type(os.time) .. ',' .. "
                       "type(rawget(_ENV, 'dofile')) end,\n"
                       "}\n");
    assert_call(s, L, "f", "nil,nil");
    assert_call(s, L, "g", "function,nil");
}

static void test_exec_present_with_allow_exec(void **state) {
    fixture *f = *state;
    start_host(f, 1, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "x",
                       "return { f = function() return type(os.execute) .. ',' .. "
                       "type(io.popen) end }\n");
    assert_call(s, L, "f", "function,function");
}

static const char *const writer_script = "return {\n"
                                         "  write = function(path)\n"
                                         "    local ok, fh, e = pcall(io.open, path, 'w')\n"
                                         "    if not ok then return 'error: ' .. tostring(fh) end\n"
                                         "    if not fh then return 'nil: ' .. tostring(e) end\n"
                                         "    fh:write('written')\n"
                                         "    fh:close()\n"
                                         "    return 'ok'\n"
                                         "  end,\n"
                                         "  read = function(path)\n"
                                         "    local fh = assert(io.open(path))\n"
                                         "    local s = fh:read('a')\n"
                                         "    fh:close()\n"
                                         "    return s\n"
                                         "  end,\n"
                                         "}\n";

static char *call_with_path(jn_script *s, lua_State *L, const char *fn, const char *path) {
    lua_pushstring(L, path);
    char *err = NULL;
    if (jn_script_call(s, fn, 1, 1, &err) != 0) fail_msg("%s: %s", fn, err);
    char *out = strdup(lua_tostring(L, -1));
    lua_pop(L, 1);
    return out;
}

static void test_write_refused_by_default(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "w", writer_script);
    char target[256];
    snprintf(target, sizeof target, "%s/out.txt", f->dir);
    char *r = call_with_path(s, L, "write", target);
    assert_contains(r, "error: ");
    assert_contains(r, "allow_write");
    free(r);
    assert_int_equal(access(target, F_OK), -1); /* nothing was created */
    /* Reading stays allowed. */
    const char *readable = write_script(f, "data.txt", "some data");
    r = call_with_path(s, L, "read", readable);
    assert_string_equal(r, "some data");
    free(r);
}

static void test_write_allowed(void **state) {
    fixture *f = *state;
    start_host(f, 0, 1);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "w", writer_script);
    const char *target = write_script(f, "out.txt", ""); /* registered for cleanup */
    char *r = call_with_path(s, L, "write", target);
    assert_string_equal(r, "ok");
    free(r);
    r = call_with_path(s, L, "read", target);
    assert_string_equal(r, "written");
    free(r);
}

static void test_instruction_limit(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "loop",
                       "return {\n"
                       "  spin = function() while true do end end,\n"
                       "  ok = function() local n = 0 for i = 1, 1000 do n = n + i "
                       "end return n end,\n"
                       "}\n");
    time_t t0 = time(NULL);
    char *err = call_err(s, L, "spin");
    assert_contains(err, "instruction limit");
    assert_contains(err, "1000000");
    free(err);
    assert_true(time(NULL) - t0 < 5);
    /* The budget is per call: the next call runs normally. */
    assert_call(s, L, "ok", "500500");
    /* And a load that never ends is stopped as well. */
    const char *path = write_script(f, "spin_at_load.lua", "while true do end\n");
    err = NULL;
    assert_null(jn_script_add(f->host, "spin_at_load", path, NULL, NULL, &err));
    assert_contains(err, "instruction limit");
    free(err);
}

/* ---- reloads ------------------------------------------------------------------------ */

static void test_reload_success(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "r", "return { v = function() return 'one' end }\n");
    write_script(f, "r.lua", "return { v = function() return 'two' end }\n");
    assert_int_equal(jn_script_reload(s, "test"), 0);
    assert_int_equal(jn_script_version(s), 2);
    assert_call(s, L, "v", "two");
    assert_int_equal(jn_script_reload_all(f->host, "test"), 0);
    assert_int_equal(jn_script_version(s), 3);
}

static void test_reload_syntax_error_keeps_old(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "r", "return { v = function() return 'old' end }\n");
    int top = lua_gettop(L);
    write_script(f, "r.lua", "return { v = function() return 'new' end\n");
    assert_int_equal(jn_script_reload(s, "test"), -1);
    assert_int_equal(lua_gettop(L), top);
    assert_int_equal(jn_script_version(s), 1);
    assert_call(s, L, "v", "old");
    /* A version that compiles but fails while running is refused the same way. */
    write_script(f, "r.lua", "error('boom at load')\n");
    assert_int_equal(jn_script_reload(s, "test"), -1);
    assert_int_equal(jn_script_reload_all(f->host, "test"), -1);
    assert_int_equal(lua_gettop(L), top);
    assert_int_equal(jn_script_version(s), 1);
    assert_call(s, L, "v", "old");
}

typedef struct {
    jn_script_host *host;
    int calls;
    char accepted[32];
} check_state;

/* Accepts a module whose `value` is not "bad", recording what it accepted. */
static int check_value(jn_script *s, void *ud, char **err) {
    (void)s;
    check_state *cs = ud;
    lua_State *L = jn_script_host_lua(cs->host);
    cs->calls++;
    lua_getfield(L, -1, "value");
    const char *v = lua_tostring(L, -1);
    if (!v || !strcmp(v, "bad")) {
        lua_pop(L, 1);
        *err = strdup("value must not be bad");
        return -1;
    }
    snprintf(cs->accepted, sizeof cs->accepted, "%s", v);
    lua_pop(L, 1);
    return 0;
}

static void test_check_rejects_keeps_old(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    check_state cs = {f->host, 0, ""};
    const char *path = write_script(f, "c.lua",
                                    "return { value = 'good', "
                                    "v = function() return 'first' end }\n");
    char *err = NULL;
    jn_script *s = jn_script_add(f->host, "c", path, check_value, &cs, &err);
    if (!s) fail_msg("%s", err);
    assert_int_equal(cs.calls, 1);
    assert_string_equal(cs.accepted, "good");
    int top = lua_gettop(L);
    write_script(f, "c.lua", "return { value = 'bad', v = function() return 'second' end }\n");
    assert_int_equal(jn_script_reload(s, "test"), -1);
    assert_int_equal(cs.calls, 2);
    assert_int_equal(lua_gettop(L), top);
    assert_int_equal(jn_script_version(s), 1);
    assert_string_equal(cs.accepted, "good");
    assert_call(s, L, "v", "first");
    jn_sb sb;
    jn_sb_init(&sb);
    jn_script_host_status_json(f->host, &sb);
    assert_contains(sb.data, "value must not be bad");
    jn_sb_free(&sb);
    /* An accepted version after that is served. */
    write_script(f, "c.lua", "return { value = 'better', v = function() return 'third' end }\n");
    assert_int_equal(jn_script_reload(s, "test"), 0);
    assert_string_equal(cs.accepted, "better");
    assert_int_equal(jn_script_version(s), 2);
    assert_call(s, L, "v", "third");
}

static void test_state_survives_reload(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    const char *code = "local state = ...\n"
                       "state.loads = (state.loads or 0) + 1\n"
                       "return { loads = function() return state.loads end }\n";
    jn_script *s = add(f, "st", code);
    assert_call(s, L, "loads", "1");
    assert_int_equal(jn_script_reload(s, "test"), 0);
    assert_call(s, L, "loads", "2");
    /* A failed reload does not lose it either. */
    write_script(f, "st.lua", "error('no')\n");
    assert_int_equal(jn_script_reload(s, "test"), -1);
    write_script(f, "st.lua", code);
    assert_int_equal(jn_script_reload(s, "test"), 0);
    assert_call(s, L, "loads", "3");
    /* The host sees the same table. */
    jn_script_push_state(s);
    assert_int_equal(lua_getfield(L, -1, "loads"), LUA_TNUMBER);
    assert_int_equal(lua_tointeger(L, -1), 3);
    lua_pop(L, 2);
}

static void test_state_per_script(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *a = add(f, "sa",
                       "local st = ... st.who = 'a' return { w = function() return "
                       "st.who end }\n");
    jn_script *b = add(f, "sb",
                       "local st = ... return { w = function() return "
                       "tostring(st.who) end }\n");
    assert_call(a, L, "w", "a");
    assert_call(b, L, "w", "nil");
}

/* ---- the junction module ------------------------------------------------------------ */

static void test_junction_sha256(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "j",
                       "return { h = function() return junction.sha256('abc') end,\n"
                       "  e = function() return junction.sha256('') end }\n");
    assert_call(s, L, "h", "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_call(s, L, "e", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_junction_now(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "j", "return { now = function() return junction.now() end }\n");
    char *err = NULL;
    time_t before = time(NULL);
    assert_int_equal(jn_script_call(s, "now", 0, 1, &err), 0);
    time_t after = time(NULL);
    assert_int_equal(lua_type(L, -1), LUA_TNUMBER);
    double now = lua_tonumber(L, -1);
    lua_pop(L, 1);
    assert_true(now >= (double)before - 1 && now <= (double)after + 1);
}

static void test_junction_env(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.env_allow = "JN_SCRIPT_TEST_*"});
    lua_State *L = jn_script_host_lua(f->host);
    setenv("JN_SCRIPT_TEST_VAR", "from the environment", 1);
    unsetenv("JN_SCRIPT_TEST_UNSET");
    jn_script *s = add(f, "j",
                       "return {\n"
                       "  set = function() return junction.env('JN_SCRIPT_TEST_VAR') end,\n"
                       "  dflt = function() return junction.env('JN_SCRIPT_TEST_UNSET', "
                       "'fallback') end,\n"
                       "  none = function() return tostring(junction.env("
                       "'JN_SCRIPT_TEST_UNSET')) end,\n"
                       "  pref = function() return junction.env('JN_SCRIPT_TEST_VAR', "
                       "'fallback') end,\n"
                       "}\n");
    assert_call(s, L, "set", "from the environment");
    assert_call(s, L, "dflt", "fallback");
    assert_call(s, L, "none", "nil");
    assert_call(s, L, "pref", "from the environment");
    unsetenv("JN_SCRIPT_TEST_VAR");
}

static void test_junction_via_require(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "j",
                       "local j = require 'junction'\n"
                       "return { same = function() return tostring(j == junction) end }\n");
    assert_call(s, L, "same", "true");
}

/* ---- require ------------------------------------------------------------------------ */

static void test_require_cjson(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "cj",
                       "local cjson = require 'cjson'\n"
                       "return { f = function()\n"
                       "  local t = cjson.decode('{\"a\":[1,2,3]}')\n"
                       "  return cjson.encode(t.a) .. ' ' .. #t.a\n"
                       "end }\n");
    assert_call(s, L, "f", "[1,2,3] 3");
}

static void test_require_sibling(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    write_script(f, "helper.lua",
                 "local calls = 0\n"
                 "return { twice = function(x) calls = calls + 1 return x * 2 "
                 "end, calls = function() return calls end }\n");
    jn_script *s = add(f, "main",
                       "local h = require 'helper'\n"
                       "local again = require 'helper'\n"
                       "return { f = function() return h.twice(21) end,\n"
                       "  same = function() return tostring(h == again) end }\n");
    assert_call(s, L, "f", "42");
    assert_call(s, L, "same", "true"); /* loaded once per version */
}

static void test_require_outside_refused(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "main",
                       "return {\n"
                       "  up = function() local ok, e = pcall(require, '../x')\n"
                       "    return tostring(ok) .. ' ' .. tostring(e) end,\n"
                       "  abs = function() local ok, e = pcall(require, '/etc/passwd')\n"
                       "    return tostring(ok) .. ' ' .. tostring(e) end,\n"
                       "  missing = function() local ok, e = pcall(require, 'nothere')\n"
                       "    return tostring(ok) .. ' ' .. tostring(e) end,\n"
                       "}\n");
    char *err = NULL;
    char *r = call_str(s, L, "up", &err);
    assert_non_null(r);
    assert_int_equal(strncmp(r, "false ", 6), 0);
    assert_contains(r, "../x");
    free(r);
    r = call_str(s, L, "abs", &err);
    assert_non_null(r);
    assert_int_equal(strncmp(r, "false ", 6), 0);
    free(r);
    r = call_str(s, L, "missing", &err);
    assert_non_null(r);
    assert_int_equal(strncmp(r, "false ", 6), 0);
    assert_contains(r, "nothere");
    free(r);
}

/* ---- limits that a script cannot escape ----------------------------------------------- */

static double elapsed_s(const struct timespec *t0) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)(t.tv_sec - t0->tv_sec) + (double)(t.tv_nsec - t0->tv_nsec) / 1e9;
}

/* pcall, xpcall (with a handler that loops too) and coroutines each catch the first limit
 * error; the call must end anyway, and the next call must run normally. */
static void test_limit_cannot_be_caught(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "catch",
                       "return {\n"
                       "  p = function() while true do pcall(function() while true do end "
                       "end) end end,\n"
                       "  x = function() while true do xpcall(function() while true do end "
                       "end, function() while true do end end) end end,\n"
                       "  c = function() while true do coroutine.resume(coroutine.create("
                       "function() while true do end end)) end end,\n"
                       "  w = function() local n = 0 while true do local ok = pcall(error) "
                       "n = n + 1 end end,\n"
                       "  ok = function() return 'fine' end,\n"
                       "}\n");
    static const char *const fns[] = {"p", "x", "c", "w"};
    for (size_t i = 0; i < 4; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        char *err = call_err(s, L, fns[i]);
        assert_contains(err, "limit");
        free(err);
        assert_true(elapsed_s(&t0) < 5);
        assert_call(s, L, "ok", "fine");
    }
}

static void test_time_limit(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.instruction_limit = 1000000000000L, .time_limit_ms = 150});
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "slow", "return { spin = function() while true do end end }\n");
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    char *err = call_err(s, L, "spin");
    double took = elapsed_s(&t0);
    assert_contains(err, "time limit of 150 ms");
    assert_contains(err, "scripts.time_limit_ms");
    free(err);
    assert_true(took >= 0.14 && took < 2);
}

/* Sleeps without using the CPU: a call waiting for one on a starved machine. */
static int block_ms(lua_State *L) {
    long ms = (long)luaL_checkinteger(L, 1);
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0) {
    }
    return 0;
}

/* The time limit counts the time a call ran, not the time it waited for a CPU: the soak
 * saw a products message run past the limit on a machine stalled by other work, and the
 * table miss that version. A call that then goes on spinning is still stopped. */
static void test_time_limit_counts_cpu_not_waiting(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.instruction_limit = 1000000000000L, .time_limit_ms = 150});
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "starved",
                       "return {\n"
                       "  wait = function(block)\n"
                       "    for i = 1, 2000000 do end\n"
                       "    block(400)\n"
                       "    for i = 1, 100000 do end\n"
                       "    return 'ran'\n"
                       "  end,\n"
                       "  wait_at_once = function(block)\n"
                       "    block(400)\n"
                       "    for i = 1, 100000 do end\n"
                       "    return 'ran'\n"
                       "  end,\n"
                       "  wait_then_spin = function(block)\n"
                       "    for i = 1, 2000000 do end\n"
                       "    block(400)\n"
                       "    while true do end\n"
                       "  end,\n"
                       "}\n");
    char *err = NULL;
    lua_pushcfunction(L, block_ms);
    if (jn_script_call(s, "wait", 1, 1, &err) != 0) fail_msg("wait: %s", err);
    assert_string_equal(lua_tostring(L, -1), "ran");
    lua_pop(L, 1);
    /* Blocked before the watchdog's first look: its next instruction comes only after the
     * wait, and the call must still be judged on its CPU time. */
    lua_pushcfunction(L, block_ms);
    if (jn_script_call(s, "wait_at_once", 1, 1, &err) != 0) fail_msg("wait_at_once: %s", err);
    assert_string_equal(lua_tostring(L, -1), "ran");
    lua_pop(L, 1);
    struct timespec t0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    lua_pushcfunction(L, block_ms);
    assert_int_not_equal(jn_script_call(s, "wait_then_spin", 1, 1, &err), 0);
    assert_contains(err, "time limit of 150 ms");
    free(err);
    assert_true(elapsed_s(&t0) < 3);
}

static int hook_mask(lua_State *L) {
    lua_pushinteger(L, lua_gethookmask(L));
    return 1;
}

/* The hook mask a call of probe(p) sees while it runs. */
static lua_Integer mask_in_call(jn_script *s, lua_State *L) {
    lua_pushcfunction(L, hook_mask);
    char *err = NULL;
    if (jn_script_call(s, "probe", 1, 1, &err) != 0) fail_msg("probe: %s", err);
    lua_Integer m = lua_tointeger(L, -1);
    lua_pop(L, 1);
    return m;
}

/* With an instruction limit of 10,000,000 or more, a call runs without the count hook
 * (which taxes every instruction) until the watchdog finds it still running; from then
 * on it is bounded as before, in coroutines too. */
static void test_watchdog_bounds_long_calls(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.instruction_limit = 100000000L, .time_limit_ms = 300});
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s =
        add(f, "w",
            "return {\n"
            "  probe = function(p) return p() end,\n"
            "  spin = function() while true do end end,\n"
            "  co = function()\n"
            "    local c = coroutine.create(function() while true do end end)\n"
            "    local ok, e = coroutine.resume(c)\n"
            "    return 'swallowed: ' .. tostring(e)\n"
            "  end,\n"
            "  wrap = function()\n"
            "    local ok = pcall(coroutine.wrap(function() while true do end end))\n"
            "    return 'swallowed'\n"
            "  end,\n"
            "  yields = function()\n"
            "    local c = coroutine.wrap(function(a) local b = coroutine.yield(a + 1) "
            "return b * 2 end)\n"
            "    return c(1) + c(10)\n"
            "  end,\n"
            "  fails = function() return coroutine.wrap(function() error('inner') end)() "
            "end,\n"
            "}\n");
    /* A short call: no hook at all. */
    assert_int_equal(mask_in_call(s, L), 0);
    static const char *const fns[] = {"spin", "co", "wrap"};
    for (size_t i = 0; i < 3; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        char *err = call_err(s, L, fns[i]);
        assert_contains(err, "limit");
        free(err);
        assert_true(elapsed_s(&t0) < 2);
    }
    /* Coroutines still work, errors in them carry the caller's place, and the next call
     * runs without the hook again. */
    assert_call(s, L, "yields", "22");
    char *err = call_err(s, L, "fails");
    assert_contains(err, "inner");
    free(err);
    assert_int_equal(mask_in_call(s, L), 0);
}

/* Below that limit every instruction counts, as the limit is then meant to be exact. */
static void test_small_instruction_limit_counts_every_call(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "p", "return { probe = function(p) return p() end }\n");
    assert_int_equal(mask_in_call(s, L), LUA_MASKCOUNT);
}

/* C functions run without hook ticks: the matcher and the table functions charge their
 * work to the call's budget instead. */
static void test_c_functions_are_bounded(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.instruction_limit = 1000000000000L, .time_limit_ms = 200});
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "c",
                       "local s = string.rep('a', 400)\n"
                       "return {\n"
                       "  find = function() return string.find(s, '.-.-.-b') end,\n"
                       "  method = function() while true do pcall(s.match, s, '.-.-.-b') end "
                       "end,\n"
                       "  move = function() return table.move({1}, 1, 1e15, 2) end,\n"
                       "  ok = function() return (('x'):rep(3)):gsub('x', 'y') end,\n"
                       "}\n");
    static const char *const fns[] = {"find", "method", "move"};
    for (size_t i = 0; i < 3; i++) {
        struct timespec t0;
        clock_gettime(CLOCK_MONOTONIC, &t0);
        char *err = call_err(s, L, fns[i]);
        assert_contains(err, "limit");
        free(err);
        assert_true(elapsed_s(&t0) < 2);
    }
    assert_call(s, L, "ok", "yyy");
}

static long rss_kb(void) {
    FILE *fp = fopen("/proc/self/status", "r");
    char line[256];
    long kb = -1;
    while (fp && fgets(line, sizeof line, fp))
        if (!strncmp(line, "VmRSS:", 6)) kb = atol(line + 6);
    if (fp) fclose(fp);
    return kb;
}

static void test_memory_limit(void **state) {
    fixture *f = *state;
    /* Budgets far above what the hogs need: the ceiling must be what stops them. */
    start_host_opts(f, (jn_script_opts){.memory_limit_mb = 32,
                                        .instruction_limit = 1000000000000L,
                                        .time_limit_ms = 20000});
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "hog",
                       "return {\n"
                       "  rep = function() return #string.rep('x', 1 << 30) end,\n"
                       "  tables = function() local t = {} for i = 1, 2e7 do t[i] = {i} end "
                       "return #t end,\n"
                       "  caught = function() local t = {} while true do pcall(function() "
                       "for i = 1, 1e6 do t[#t + 1] = {i} end end) end end,\n"
                       "  ok = function() local t = {} for i = 1, 1000 do t[i] = {i} end "
                       "return #t end,\n"
                       "}\n");
    long base = rss_kb();
    static const char *const fns[] = {"rep", "tables", "caught"};
    for (size_t i = 0; i < 3; i++) {
        char *err = call_err(s, L, fns[i]);
        if (!strstr(err, "not enough memory") || !strstr(err, "memory limit of 32 MB"))
            fail_msg("%s(): %s", fns[i], err);
        free(err);
        assert_call(s, L, "ok", "1000");
    }
    /* The ceiling held and what the failed calls built was given back. (ASan keeps
     * freed memory in its quarantine, so RSS says nothing in that build.) */
    long after = rss_kb();
#if !defined(__SANITIZE_ADDRESS__)
    assert_true(after - base < 40 * 1024);
#else
    (void)after, (void)base;
#endif
    jn_lua_alloc_stats st;
    jn_lua_alloc_get_stats(jn_lua_alloc_of(L), &st);
    assert_true(st.reserved < 8u << 20); /* the pool's chunks went back (0 without a pool) */
    assert_true(st.refused >= 3);
    /* Host code between calls never meets the ceiling. */
    lua_createtable(L, 1 << 20, 0); /* 16 MiB, half the ceiling, outside any call */
    lua_pop(L, 1);
}

/* ---- isolation ---------------------------------------------------------------------- */

static void test_junction_and_cjson_are_read_only(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *a = add(f, "a",
                       "return {\n"
                       "  patch = function() junction.sha256 = function() return 'x' end end,\n"
                       "  patchc = function() require('cjson').encode = print end,\n"
                       "  raw = function() rawset(junction, 'sha256', function() return "
                       "'tampered' end) return junction.sha256('') end,\n"
                       "  depth = function() local c = require 'cjson' c.encode_max_depth(1) "
                       "return tostring(pcall(c.encode, {{}})) end,\n"
                       "}\n");
    jn_script *b = add(f, "b",
                       "return {\n"
                       "  sha = function() return junction.sha256('') end,\n"
                       "  enc = function() return require('cjson').encode({{1}}) end,\n"
                       "  keys = function() local n = 0 for k in pairs(junction) do n = n + 1 "
                       "end return tostring(n > 5) end,\n"
                       "}\n");
    char *err = call_err(a, L, "patch");
    assert_contains(err, "junction is read-only");
    free(err);
    err = call_err(a, L, "patchc");
    assert_contains(err, "cjson is read-only");
    free(err);
    assert_call(a, L, "raw", "tampered"); /* its own view only */
    assert_call(a, L, "depth", "false");  /* its own cjson instance */
    assert_call(b, L, "sha", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
    assert_call(b, L, "enc", "[[1]]");
    assert_call(b, L, "keys", "true");
    /* And a reload of every script gives nobody the patched function. */
    assert_int_equal(jn_script_reload_all(f->host, "test"), 0);
    assert_call(b, L, "sha", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
}

static void test_gc_finalizers_refused(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "gc",
                       "return { f = function() setmetatable({}, {__gc = function() while "
                       "true do end end}) end,\n"
                       "  ok = function() return getmetatable(setmetatable({}, {__index = "
                       "{a = 1}})).__index.a end }\n");
    char *err = call_err(s, L, "f");
    assert_contains(err, "__gc");
    free(err);
    assert_call(s, L, "ok", "1");
}

static void test_read_paths_and_env_allow(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.env_allow = "JN_OK_*,JN_EXACT"});
    lua_State *L = jn_script_host_lua(f->host);
    write_script(f, "data.txt", "inside\n");
    setenv("JN_OK_ONE", "1", 1);
    setenv("JN_EXACT", "2", 1);
    setenv("JN_SECRET", "hunter2", 1);
    jn_script *s = add(f, "r",
                       "local dir = ...\n"
                       "return {\n"
                       "  inside = function(p) return io.open(p):read('l') end,\n"
                       "  outside = function() return io.open('/etc/hostname') end,\n"
                       "  lines = function() return io.lines('/etc/hostname')() end,\n"
                       "  stdin = function() return io.lines() end,\n"
                       "  envok = function() return junction.env('JN_OK_ONE') .. "
                       "os.getenv('JN_EXACT') end,\n"
                       "  secret = function() return junction.env('JN_SECRET') end,\n"
                       "  osecret = function() return os.getenv('JN_SECRET') end,\n"
                       "}\n");
    char path[300];
    snprintf(path, sizeof path, "%s/data.txt", f->dir);
    char *r = call_with_path(s, L, "inside", path);
    assert_string_equal(r, "inside");
    free(r);
    static const char *const bad[] = {"outside", "lines", "stdin", "secret", "osecret"};
    static const char *const why[] = {"scripts.read_paths", "scripts.read_paths", "standard input",
                                      "scripts.env_allow", "scripts.env_allow"};
    for (size_t i = 0; i < 5; i++) {
        char *err = call_err(s, L, bad[i]);
        assert_contains(err, why[i]);
        assert_true(strstr(err, "hunter2") == NULL);
        free(err);
    }
    assert_call(s, L, "envok", "12");
    unsetenv("JN_OK_ONE"), unsetenv("JN_EXACT"), unsetenv("JN_SECRET");
    /* A FIFO inside the folder would block the loop on open. */
    char fifo[300];
    snprintf(fifo, sizeof fifo, "%s/pipe", f->dir);
    assert_int_equal(mkfifo(fifo, 0600), 0);
    lua_pushstring(L, fifo);
    char *err = NULL;
    int rc = jn_script_call(s, "inside", 1, 1, &err);
    unlink(fifo);
    assert_int_equal(rc, -1);
    assert_contains(err, "not a regular file");
    free(err);
}

static void test_load_size_capped(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.max_file_bytes = 4096});
    lua_State *L = jn_script_host_lua(f->host);
    jn_script *s = add(f, "ld",
                       "return { big = function() return load(string.rep(' ', 5000)) end,\n"
                       "  small = function() return load('return 7')() end }\n");
    char *err = call_err(s, L, "big");
    assert_contains(err, "scripts.max_file_bytes");
    free(err);
    assert_call(s, L, "small", "7");
}

/* ---- script files ------------------------------------------------------------------- */

static void test_script_path_must_be_a_regular_file_under_the_limit(void **state) {
    fixture *f = *state;
    start_host_opts(f, (jn_script_opts){.max_file_bytes = 2048});
    char *err = NULL;
    assert_null(jn_script_add(f->host, "dir", f->dir, NULL, NULL, &err));
    assert_contains(err, "a folder, not a regular file");
    free(err);
    err = NULL;
    assert_null(jn_script_add(f->host, "zero", "/dev/zero", NULL, NULL, &err));
    assert_contains(err, "not a regular file");
    free(err);
    char big[3000];
    memset(big, '-', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    const char *path = write_script(f, "big.lua", big);
    err = NULL;
    assert_null(jn_script_add(f->host, "big", path, NULL, NULL, &err));
    assert_contains(err, "larger than 2048 bytes");
    free(err);
}

/* A check that reads a module whose metatable raises (or loops) is a load error. */
static int check_reads_generate(jn_script *s, void *ud, char **err) {
    (void)s, (void)ud, (void)err;
    lua_State *L = *(lua_State **)ud;
    lua_getfield(L, -1, "generate");
    lua_pop(L, 1);
    return 0;
}

static void test_check_is_protected_and_bounded(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    lua_State *L = jn_script_host_lua(f->host);
    const char *path = write_script(
        f, "meta.lua",
        "return setmetatable({}, {__index = function(_, k) error('no field ' .. k) end})\n");
    char *err = NULL;
    assert_null(jn_script_add(f->host, "meta", path, check_reads_generate, &L, &err));
    assert_contains(err, "no field generate");
    free(err);
    path = write_script(f, "loop.lua",
                        "return setmetatable({}, {__index = function() while true do end "
                        "end})\n");
    err = NULL;
    assert_null(jn_script_add(f->host, "loop", path, check_reads_generate, &L, &err));
    assert_contains(err, "limit");
    free(err);
    /* A call through such a module's metatable is bounded too. */
    path = write_script(f, "inherit.lua",
                        "local base = { hi = function() return 'inherited' end }\n"
                        "return setmetatable({}, {__index = base})\n");
    jn_script *s = jn_script_add(f->host, "inherit", path, NULL, NULL, &err);
    assert_non_null(s);
    assert_call(s, L, "hi", "inherited");
}

/* A script builds on a stock script: require "stock.<name>" loads it from the stock
 * folder with the requiring script's state table, which survives reloads of both. */
static void test_require_stock_with_the_state(void **state) {
    fixture *f = *state;
    char stock[128];
    snprintf(stock, sizeof stock, "%s/stock", f->dir);
    assert_int_equal(mkdir(stock, 0700), 0);
    start_host_opts(f, (jn_script_opts){.stock_path = stock});
    lua_State *L = jn_script_host_lua(f->host);
    write_script(f, "stock/base.lua",
                 "local state = ...\n"
                 "state.n = state.n or 0\n"
                 "return { bump = function() state.n = state.n + 1 return state.n end }\n");
    jn_script *s = add(f, "wrap",
                       "local state = ...\n"
                       "local base = require 'stock.base'\n"
                       "return { bump = function() return base.bump() * 10 end,\n"
                       "  seen = function() return state.n end }\n");
    assert_call(s, L, "bump", "10");
    assert_call(s, L, "bump", "20");
    assert_call(s, L, "seen", "2"); /* the same state table */
    assert_int_equal(jn_script_reload(s, "test"), 0);
    assert_call(s, L, "bump", "30"); /* kept across the reload */
    char path[200];
    snprintf(path, sizeof path, "%s/base.lua", stock);
    remove(path);
    rmdir(stock);
}

/* Started from a folder holding no scripts (an installed junction run from anywhere), the
 * host finds a configuration's relative "scripts/..." path and the stock scripts of
 * require "stock.<name>" among the files that came with it (from a build tree: the source
 * tree's scripts/), and each script's own require beside the file found. */
static void test_stock_scripts_found_from_any_directory(void **state) {
    fixture *f = *state;
    char old[1024];
    assert_non_null(getcwd(old, sizeof old));
    assert_int_equal(chdir(f->dir), 0);
    start_host_opts(f, (jn_script_opts){0});
    lua_State *L = jn_script_host_lua(f->host);
    char *err = NULL;
    /* crm.lua itself does require "lcg", a file beside it. */
    jn_script *crm = jn_script_add(f->host, "crm", "scripts/crm.lua", NULL, NULL, &err);
    if (!crm) fail_msg("scripts/crm.lua from %s: %s", f->dir, err);
    jn_script *s = add(f, "wrap",
                       "local lcg = require 'stock.lcg'\n"
                       "return { pick = function() return lcg(42)(1000000) end }\n");
    /* A draw of the stock generator: 1 to n. */
    char *got = call_str(s, L, "pick", &err);
    assert_non_null(got);
    assert_true(atoi(got) >= 1 && atoi(got) <= 1000000);
    free(got);
    /* A name found nowhere still fails, naming the path as the config gave it. */
    assert_null(jn_script_add(f->host, "none", "scripts/no_such.lua", NULL, NULL, &err));
    assert_contains(err, "scripts/no_such.lua");
    free(err);
    assert_int_equal(chdir(old), 0);
}

/* ---- status ------------------------------------------------------------------------- */

static void test_status_json_last_error(void **state) {
    fixture *f = *state;
    start_host(f, 0, 0);
    jn_script *s = add(f, "stat", "return { v = function() return 1 end }\n");
    jn_sb sb;
    jn_sb_init(&sb);
    jn_script_host_status_json(f->host, &sb);
    assert_contains(sb.data, "\"name\":\"stat\"");
    assert_contains(sb.data, "\"version\":1");
    assert_contains(sb.data, "\"last_error\":null");
    jn_sb_free(&sb);

    write_script(f, "stat.lua", "return { v = function() return 1 end\n");
    assert_int_equal(jn_script_reload(s, "manual"), -1);
    jn_script_host_status_json(f->host, &sb);
    assert_int_equal(sb.data[0], '[');
    assert_int_equal(sb.data[sb.len - 1], ']');
    char want[400];
    snprintf(want, sizeof want, "\"last_error\":\"%s/stat.lua:", f->dir);
    assert_contains(sb.data, want);
    assert_contains(sb.data, "\"result\":\"error\"");
    assert_contains(sb.data, "\"reason\":\"manual\"");
    assert_contains(sb.data, "\"version\":1");
    jn_sb_free(&sb);
}

int main(void) {
    jn_log_setup(JN_LOG_ERROR, JN_LOG_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_load_and_call, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_function, setup, teardown),
        cmocka_unit_test_setup_teardown(test_control_characters_in_a_path_are_escaped, setup,
                                        teardown),
        cmocka_unit_test(test_error_brief_keeps_the_message_only),
        cmocka_unit_test_setup_teardown(test_error_brief_of_a_real_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_chunk_returning_nothing_is_an_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_first_version_failure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_per_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undefined_global, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_absent_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exec_present_with_allow_exec, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_refused_by_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_write_allowed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_instruction_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_watchdog_bounds_long_calls, setup, teardown),
        cmocka_unit_test_setup_teardown(test_small_instruction_limit_counts_every_call, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_limit_cannot_be_caught, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_time_limit_counts_cpu_not_waiting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_c_functions_are_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junction_and_cjson_are_read_only, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_finalizers_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_read_paths_and_env_allow, setup, teardown),
        cmocka_unit_test_setup_teardown(test_load_size_capped, setup, teardown),
        cmocka_unit_test_setup_teardown(test_script_path_must_be_a_regular_file_under_the_limit,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_is_protected_and_bounded, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_stock_with_the_state, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stock_scripts_found_from_any_directory, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_reload_success, setup, teardown),
        cmocka_unit_test_setup_teardown(test_reload_syntax_error_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_check_rejects_keeps_old, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_survives_reload, setup, teardown),
        cmocka_unit_test_setup_teardown(test_state_per_script, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junction_sha256, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junction_now, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junction_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junction_via_require, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_cjson, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_sibling, setup, teardown),
        cmocka_unit_test_setup_teardown(test_require_outside_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_status_json_last_error, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
