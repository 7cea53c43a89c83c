/* Reading map results into Kafka records. A result is a table the script built, so it
 * is read without metamethods: no __index of its can run outside the call limits. */
#include "record.h"

#include <lauxlib.h>

#include "json.h"
#include "record_view.h"
#include "script.h"

void jn_record_init(jn_record *r) {
    jn_sb_init(&r->key);
    jn_sb_init(&r->value);
    r->nheaders = 0;
    r->headers[0] = NULL;
}

void jn_record_free(jn_record *r) {
    jn_sb_free(&r->key);
    jn_sb_free(&r->value);
}

static const char *read_key(lua_State *L, jn_record *r) {
    int t = jn_lua_rawgetfield(L, -1, "key");
    const char *why = NULL;
    if (t == LUA_TNUMBER && !lua_isinteger(L, -1)) {
        why = "key must be a non-empty string or an integer, got a fractional number";
    } else if (t == LUA_TSTRING || t == LUA_TNUMBER) {
        size_t len;
        const char *k = lua_tolstring(L, -1, &len);
        if (len == 0)
            why = "key must be a non-empty string or an integer, got \"\"";
        else
            jn_sb_append(&r->key, k, len);
    } else {
        why = t == LUA_TNIL ? "key is missing; return {key = ..., value = ...}"
                            : "key must be a non-empty string or an integer";
    }
    lua_pop(L, 1);
    return why;
}

static const char *read_value(lua_State *L, jn_record *r) {
    int t = jn_lua_rawgetfield(L, -1, "value");
    const char *why = NULL;
    if (t == LUA_TSTRING) {
        size_t len;
        const char *v = lua_tolstring(L, -1, &len);
        jn_sb_append(&r->value, v, len);
    } else if (t == LUA_TTABLE || jn_view_test(L, -1)) {
        const char *err;
        if (jn_json_encode(L, -1, NULL, &r->value, &err) != 0) why = err;
    } else {
        why = t == LUA_TNIL ? "value is missing; return {key = ..., value = ...}"
                            : "value must be a table (sent as JSON) or a string";
    }
    lua_pop(L, 1);
    return why;
}

static const char *read_headers(lua_State *L, jn_record *r) {
    int t = jn_lua_rawgetfield(L, -1, "headers");
    if (t == LUA_TNIL) {
        lua_pop(L, 1);
        return NULL;
    }
    if (t != LUA_TTABLE) {
        lua_pop(L, 1);
        return "headers must be a table of name = \"value\" pairs";
    }
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        if (lua_type(L, -2) != LUA_TSTRING || lua_type(L, -1) != LUA_TSTRING) {
            lua_pop(L, 3);
            return "headers must map names to strings";
        }
        if (r->nheaders >= 2 * JN_RECORD_MAX_HEADERS) {
            lua_pop(L, 3);
            return "a record may carry at most 16 headers";
        }
        /* The headers table is referenced by the record table, which the caller keeps on
         * the stack: the strings stay alive after these pops. */
        r->headers[r->nheaders++] = lua_tostring(L, -2);
        r->headers[r->nheaders++] = lua_tostring(L, -1);
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return NULL;
}

const char *jn_record_read(lua_State *L, jn_record *r) {
    r->key.len = r->value.len = 0;
    r->nheaders = 0;
    const char *why;
    if (!lua_istable(L, -1))
        why = "map() must return a table {key=, value=, headers=} or nil";
    else if (!(why = read_key(L, r)) && !(why = read_value(L, r)))
        why = read_headers(L, r);
    r->headers[r->nheaders] = NULL;
    return why;
}
