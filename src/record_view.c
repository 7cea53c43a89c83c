/* Record views (see record_view.h): a userdata holding the place of each member of the
 * record's text, with two user values: the text, a Lua string (so ctx.json() gives it
 * without a copy), and the table of changes: fields the script wrote (a field set to nil
 * holds the `deleted` mark) and object or array fields it read, decoded once and kept
 * so that changing them in place changes the record. */
#include "record_view.h"

#include <lauxlib.h>
#include <stdint.h>
#include <string.h>

#include "json.h"

#define MAX_MEMBERS 64

typedef struct {
    uint32_t key, klen, val, vlen;
} member;

struct jn_view {
    const void *magic; /* &metatable_key: see jn_view_test */
    const char *text;  /* the bytes of user value TEXT: a Lua string never moves */
    uint32_t len, n;
    int sorted; /* the members are in key order: the text is canonical as it is */
    member m[];
};

enum { TEXT = 1, CHANGES = 2 };

/* Registry keys and the deleted mark: addresses nothing else uses. */
static const char metatable_key = 0;
static char deleted;

static const char *text_of(const jn_view *v) {
    return v->text;
}

int jn_view_sorted(const jn_view *v) {
    return v->sorted;
}

size_t jn_view_count(const jn_view *v) {
    return v->n;
}

void jn_view_member(const jn_view *v, size_t i, const char **key, size_t *klen, const char **val,
                    size_t *vlen) {
    const char *t = text_of(v);
    *key = t + v->m[i].key;
    *klen = v->m[i].klen;
    *val = t + v->m[i].val;
    *vlen = v->m[i].vlen;
}

/* Called several times per record, so no metatable look-up: a full userdata at least as
 * large as a view that starts with the address of this file's registry key is a view
 * (no other userdata can hold it: scripts make none, and no library of theirs stores
 * that address). */
jn_view *jn_view_test(lua_State *L, int idx) {
    if (lua_type(L, idx) != LUA_TUSERDATA || lua_rawlen(L, idx) < sizeof(jn_view)) return NULL;
    jn_view *v = lua_touserdata(L, idx);
    return v->magic == &metatable_key ? v : NULL;
}

int jn_view_is_deleted(lua_State *L, int idx) {
    return lua_touserdata(L, idx) == &deleted;
}

int jn_view_push_changes(lua_State *L, int idx) {
    return lua_getiuservalue(L, idx, CHANGES);
}

/* The index of the member named k, or -1. Members are few: a scan beats a search. */
static int find(const jn_view *v, const char *k, size_t klen) {
    const char *t = text_of(v);
    for (uint32_t i = 0; i < v->n; i++)
        if (v->m[i].klen == klen && !memcmp(t + v->m[i].key, k, klen)) return (int)i;
    return -1;
}

/* Pushes the value of member i; an object or array is decoded into a table and kept in
 * the table of changes (at index changes, or made when 0) under its key. */
static void push_member(lua_State *L, int view, const jn_view *v, int i, int changes) {
    const char *t = text_of(v);
    const char *val = t + v->m[i].val;
    size_t vlen = v->m[i].vlen;
    /* Canonical strings hold no escapes and canonical numbers are integers of at most 18
     * digits: the common fields need no parser. */
    if (*val == '"') {
        lua_pushlstring(L, val + 1, vlen - 2);
        return;
    }
    if ((*val >= '0' && *val <= '9') || *val == '-') {
        lua_Integer n = 0;
        size_t j = *val == '-';
        for (; j < vlen; j++)
            n = n * 10 + (val[j] - '0');
        lua_pushinteger(L, *val == '-' ? -n : n);
        return;
    }
    char err[8];
    /* The text was checked when the view was made: it decodes. */
    if (jn_json_decode(L, val, vlen, err, sizeof err) != 0) {
        lua_pushnil(L);
        return;
    }
    if (*val != '{' && *val != '[') return;
    int made = !changes;
    if (made) {
        lua_createtable(L, 0, 4);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, view, CHANGES);
        lua_insert(L, -2); /* the changes below the value */
        changes = lua_absindex(L, -2);
    }
    lua_pushlstring(L, t + v->m[i].key, v->m[i].klen);
    lua_pushvalue(L, -2);
    lua_rawset(L, changes);
    if (made) lua_remove(L, changes);
}

/* Pushes field k (at index key) of the view at index view: a change first, then the
 * text. Returns the type pushed. */
static int get(lua_State *L, int view, jn_view *v, int key) {
    int changes = 0;
    if (lua_getiuservalue(L, view, CHANGES) == LUA_TTABLE) {
        changes = lua_gettop(L);
        lua_pushvalue(L, key);
        int ty = lua_rawget(L, changes);
        if (ty != LUA_TNIL) {
            lua_remove(L, changes);
            if (lua_touserdata(L, -1) == &deleted) {
                lua_pop(L, 1);
                lua_pushnil(L);
                return LUA_TNIL;
            }
            return ty;
        }
        lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
        lua_pushnil(L); /* keeps the stack's shape: changes, then the value */
    }
    int slot = lua_gettop(L);
    int i = -1;
    if (lua_type(L, key) == LUA_TSTRING) {
        size_t klen;
        const char *k = lua_tolstring(L, key, &klen);
        i = find(v, k, klen);
    }
    if (i < 0)
        lua_pushnil(L);
    else
        push_member(L, view, v, i, changes);
    lua_remove(L, slot);
    return lua_type(L, -1);
}

static jn_view *self(lua_State *L) {
    jn_view *v = jn_view_test(L, 1);
    if (!v) luaL_typeerror(L, 1, "record");
    return v;
}

static int l_index(lua_State *L) {
    get(L, 1, self(L), 2);
    return 1;
}

static int l_newindex(lua_State *L) {
    self(L);
    if (lua_isnil(L, 2)) return luaL_error(L, "index is nil");
    if (lua_type(L, 2) == LUA_TNUMBER && lua_tonumber(L, 2) != lua_tonumber(L, 2))
        return luaL_error(L, "index is NaN");
    if (lua_getiuservalue(L, 1, CHANGES) != LUA_TTABLE) {
        lua_pop(L, 1);
        lua_createtable(L, 0, 4);
        lua_pushvalue(L, -1);
        lua_setiuservalue(L, 1, CHANGES);
    }
    lua_pushvalue(L, 2);
    if (lua_isnil(L, 3))
        lua_pushlightuserdata(L, &deleted);
    else
        lua_pushvalue(L, 3);
    lua_rawset(L, -3);
    return 0;
}

/* next() over a view: the members of the text in order (as changed), then what the
 * script added. The control value is the last key given. */
static int l_next(lua_State *L) {
    jn_view *v = self(L);
    lua_settop(L, 2);
    int changes = lua_getiuservalue(L, 1, CHANGES) == LUA_TTABLE ? 3 : 0;
    uint32_t i = 0;
    int from_changes = 0;
    if (!lua_isnil(L, 2)) {
        int j = -1;
        if (lua_type(L, 2) == LUA_TSTRING) {
            size_t klen;
            const char *k = lua_tolstring(L, 2, &klen);
            j = find(v, k, klen);
        }
        if (j >= 0)
            i = (uint32_t)j + 1;
        else
            from_changes = 1;
    }
    const char *t = text_of(v);
    if (!from_changes) {
        for (; i < v->n; i++) {
            lua_pushlstring(L, t + v->m[i].key, v->m[i].klen);
            int key = lua_gettop(L);
            if (get(L, 1, v, key) != LUA_TNIL) return 2;
            lua_settop(L, key - 1);
        }
        if (!changes) return 0;
        lua_pushnil(L);
    } else {
        if (!changes) return 0;
        lua_pushvalue(L, 2);
    }
    /* The additions: keys of the table of changes that are not members. */
    while (lua_next(L, changes)) {
        int added = lua_type(L, -2) != LUA_TSTRING;
        if (!added) {
            size_t klen;
            const char *k = lua_tolstring(L, -2, &klen);
            added = find(v, k, klen) < 0;
        }
        if (added && lua_touserdata(L, -1) != &deleted) return 2;
        lua_pop(L, 1);
    }
    return 0;
}

static int l_pairs(lua_State *L) {
    self(L);
    lua_pushcfunction(L, l_next);
    lua_pushvalue(L, 1);
    lua_pushnil(L);
    return 3;
}

/* # of a record: an object has no array part; a script that added t[1], t[2]... gets
 * their count, as from a table. */
static int l_len(lua_State *L) {
    self(L);
    lua_Integer n = 0;
    if (lua_getiuservalue(L, 1, CHANGES) == LUA_TTABLE) n = (lua_Integer)lua_rawlen(L, -1);
    lua_pushinteger(L, n);
    return 1;
}

static void push_metatable(lua_State *L) {
    if (lua_rawgetp(L, LUA_REGISTRYINDEX, &metatable_key) == LUA_TTABLE) return;
    lua_pop(L, 1);
    static const luaL_Reg mm[] = {{"__index", l_index},
                                  {"__newindex", l_newindex},
                                  {"__pairs", l_pairs},
                                  {"__len", l_len},
                                  {NULL, NULL}};
    lua_createtable(L, 0, 6);
    luaL_setfuncs(L, mm, 0);
    lua_pushliteral(L, "junction.record");
    lua_setfield(L, -2, "__name");
    /* getmetatable(record) gives this string, and setmetatable refuses the record: no
     * script can call the methods above on something else, or take them away. */
    lua_pushliteral(L, "junction.record");
    lua_setfield(L, -2, "__metatable");
    lua_pushvalue(L, -1);
    lua_rawsetp(L, LUA_REGISTRYINDEX, &metatable_key);
}

int jn_view_push(lua_State *L, const char *json, size_t len) {
    return jn_view_push_checked(L, json, len, 0);
}

int jn_view_push_checked(lua_State *L, const char *json, size_t len, int canonical) {
    jn_json_member m[MAX_MEMBERS];
    if (len >= UINT32_MAX) return -1;
    int sorted = 1;
    int n = canonical ? jn_json_members_of_canonical(json, len, m, MAX_MEMBERS)
                      : jn_json_object_members(json, len, m, MAX_MEMBERS, &sorted);
    if (n < 0) return -1;
    jn_view *v = lua_newuserdatauv(L, sizeof(jn_view) + (size_t)n * sizeof(member), 2);
    v->magic = &metatable_key;
    v->sorted = sorted;
    v->len = (uint32_t)len;
    v->n = (uint32_t)n;
    for (int i = 0; i < n; i++)
        v->m[i] = (member){(uint32_t)m[i].key, (uint32_t)m[i].klen, (uint32_t)m[i].val,
                           (uint32_t)m[i].vlen};
    v->text = lua_pushlstring(L, json, len);
    lua_setiuservalue(L, -2, TEXT);
    push_metatable(L);
    lua_setmetatable(L, -2);
    return 0;
}

void jn_view_push_text(lua_State *L, int idx) {
    lua_getiuservalue(L, idx, TEXT);
}

const char *jn_view_text(const jn_view *v, size_t *len) {
    *len = v->len;
    return v->text;
}

int jn_view_raw(lua_State *L, int idx, const char *k, const char **val, size_t *vlen) {
    jn_view *v = jn_view_test(L, idx);
    if (!v) return -1;
    size_t klen = strlen(k);
    if (lua_getiuservalue(L, idx, CHANGES) == LUA_TTABLE) {
        lua_pushlstring(L, k, klen);
        int changed = lua_rawget(L, -2) != LUA_TNIL;
        lua_pop(L, 2);
        if (changed) return -1;
    } else {
        lua_pop(L, 1);
    }
    int i = find(v, k, klen);
    if (i < 0) return 0;
    *val = v->text + v->m[i].val;
    *vlen = v->m[i].vlen;
    return 1;
}

int jn_view_get(lua_State *L, int idx, const char *k) {
    idx = lua_absindex(L, idx);
    jn_view *v = jn_view_test(L, idx);
    if (!v) {
        lua_pushnil(L);
        return LUA_TNIL;
    }
    lua_pushstring(L, k);
    int key = lua_gettop(L);
    int ty = get(L, idx, v, key);
    lua_remove(L, key);
    return ty;
}
