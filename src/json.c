/* Deterministic JSON encoder for Lua values. */
#include "json.h"

#include <lauxlib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t len;
} key;

static int cmp_key(const void *a, const void *b) {
    const key *x = a, *y = b;
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c : (x->len > y->len) - (x->len < y->len);
}

/* A table is an array when its keys are exactly 1..n. */
static lua_Integer array_length(lua_State *L, int idx) {
    lua_Integer n = 0, max = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (!lua_isinteger(L, -1) || lua_tointeger(L, -1) < 1) {
            lua_pop(L, 1);
            return -1;
        }
        lua_Integer k = lua_tointeger(L, -1);
        if (k > max) max = k;
        n++;
    }
    return n == max ? n : -1;
}

static int encode(lua_State *L, int idx, const char *const *first, jn_sb *out, int depth,
                  const char **err);

static int encode_number(lua_State *L, int idx, jn_sb *out, const char **err) {
    if (lua_isinteger(L, idx)) {
        jn_sb_printf(out, "%lld", (long long)lua_tointeger(L, idx));
        return 0;
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d)) {
        *err = "a number that is NaN or infinite has no JSON form";
        return -1;
    }
    if (d == floor(d) && fabs(d) < 1e15) jn_sb_printf(out, "%.0f", d);
    else jn_sb_printf(out, "%.14g", d);
    return 0;
}

static int encode_object(lua_State *L, int idx, const char *const *first, jn_sb *out, int depth,
                         const char **err) {
    size_t cap = 16, n = 0;
    key *keys = malloc(cap * sizeof *keys);
    int rc = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        lua_pop(L, 1);
        if (lua_type(L, -1) != LUA_TSTRING && lua_type(L, -1) != LUA_TNUMBER) {
            *err = "a table key that is neither a string nor a number has no JSON form";
            lua_pop(L, 1);
            free(keys);
            return -1;
        }
        if (n == cap) keys = realloc(keys, (cap *= 2) * sizeof *keys);
        /* Keep a string copy on the stack below the iteration key so the pointer stays
         * valid; lua_tolstring on a number key would break lua_next. */
        lua_pushvalue(L, -1);
        keys[n].s = lua_tolstring(L, -1, &keys[n].len);
        lua_insert(L, -2);
        n++;
    }
    /* Stack now holds n key strings. */
    size_t named = 0;
    if (first)
        for (const char *const *f = first; *f; f++)
            for (size_t i = named; i < n; i++)
                if (keys[i].len == strlen(*f) && !memcmp(keys[i].s, *f, keys[i].len)) {
                    key t = keys[named];
                    keys[named] = keys[i];
                    keys[i] = t;
                    named++;
                    break;
                }
    /* Named keys now lead in their listed order; the rest are sorted. */
    qsort(keys + named, n - named, sizeof *keys, cmp_key);
    jn_sb_putc(out, '{');
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (i) jn_sb_putc(out, ',');
        jn_sb_json_string(out, keys[i].s, keys[i].len);
        jn_sb_putc(out, ':');
        lua_pushlstring(L, keys[i].s, keys[i].len);
        if (lua_rawget(L, idx) == LUA_TNIL) {
            /* A number key such as 1 was stringified; look it up by number. */
            lua_pop(L, 1);
            if (lua_stringtonumber(L, keys[i].s)) lua_rawget(L, idx);
            else lua_pushnil(L);
        }
        rc = encode(L, lua_gettop(L), NULL, out, depth + 1, err);
        lua_pop(L, 1);
    }
    jn_sb_putc(out, '}');
    lua_pop(L, (int)n);
    free(keys);
    return rc;
}

static int encode(lua_State *L, int idx, const char *const *first, jn_sb *out, int depth,
                  const char **err) {
    if (depth > MAX_DEPTH) {
        *err = "tables nested deeper than 64 levels (a cycle?) have no JSON form";
        return -1;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL: jn_sb_puts(out, "null"); return 0;
    case LUA_TBOOLEAN: jn_sb_puts(out, lua_toboolean(L, idx) ? "true" : "false"); return 0;
    case LUA_TNUMBER: return encode_number(L, idx, out, err);
    case LUA_TSTRING: {
        size_t len;
        const char *s = lua_tolstring(L, idx, &len);
        jn_sb_json_string(out, s, len);
        return 0;
    }
    case LUA_TLIGHTUSERDATA:
        /* cjson.null decodes to a light userdata NULL. */
        if (!lua_touserdata(L, idx)) {
            jn_sb_puts(out, "null");
            return 0;
        }
        break;
    case LUA_TTABLE: {
        luaL_checkstack(L, 8, "json");
        lua_Integer n = array_length(L, idx);
        if (n < 0) return encode_object(L, idx, first, out, depth, err);
        jn_sb_putc(out, '[');
        for (lua_Integer i = 1; i <= n; i++) {
            if (i > 1) jn_sb_putc(out, ',');
            lua_rawgeti(L, idx, i);
            int rc = encode(L, lua_gettop(L), NULL, out, depth + 1, err);
            lua_pop(L, 1);
            if (rc) return rc;
        }
        jn_sb_putc(out, ']');
        return 0;
    }
    default: break;
    }
    *err = "a function, thread or userdata value has no JSON form";
    return -1;
}

int jn_json_encode(lua_State *L, int idx, const char *const *first_keys, jn_sb *out,
                   const char **err) {
    return encode(L, lua_absindex(L, idx), first_keys, out, 0, err);
}
