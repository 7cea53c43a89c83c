/* Deterministic JSON encoder for Lua values. */
#include "json.h"

#include <lauxlib.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_DEPTH 64

typedef struct {
    const char *s;
    size_t len;
    int vidx; /* stack index of the value */
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
    if (d == floor(d) && fabs(d) < 1e15)
        jn_sb_printf(out, "%.0f", d);
    else
        jn_sb_printf(out, "%.14g", d);
    return 0;
}

static int encode_object(lua_State *L, int idx, const char *const *first, jn_sb *out, int depth,
                         const char **err) {
    /* Records are small: a stack array covers them without malloc. */
    key small[32];
    size_t cap = 32, n = 0;
    key *keys = small;
    int rc = 0;
    lua_pushnil(L);
    while (lua_next(L, idx)) {
        if (lua_type(L, -2) != LUA_TSTRING && lua_type(L, -2) != LUA_TNUMBER) {
            *err = "a table key that is neither a string nor a number has no JSON form";
            lua_pop(L, 2 + 2 * (int)n); /* key, value and the n pairs kept so far */
            if (keys != small) free(keys);
            return -1;
        }
        if (n == cap) {
            key *bigger = malloc((cap *= 2) * sizeof *keys);
            if (!bigger) abort();
            memcpy(bigger, keys, n * sizeof *keys);
            if (keys != small) free(keys);
            keys = bigger;
        }
        luaL_checkstack(L, 4, "json: too many keys");
        /* Keep the value and a string copy of the key on the stack, below the iteration
         * key: the key's text stays valid, the value needs no second lookup, and
         * lua_tolstring never touches the key lua_next needs. */
        lua_pushvalue(L, -2);
        keys[n].s = lua_tolstring(L, -1, &keys[n].len);
        lua_rotate(L, -3, -1); /* k v kcopy -> v kcopy k */
        keys[n].vidx = lua_gettop(L) - 2;
        n++;
    }
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
        rc = encode(L, keys[i].vidx, NULL, out, depth + 1, err);
    }
    jn_sb_putc(out, '}');
    lua_pop(L, 2 * (int)n);
    if (keys != small) free(keys);
    return rc;
}

static int encode(lua_State *L, int idx, const char *const *first, jn_sb *out, int depth,
                  const char **err) {
    if (depth > MAX_DEPTH) {
        *err = "tables nested deeper than 64 levels (a cycle?) have no JSON form";
        return -1;
    }
    switch (lua_type(L, idx)) {
    case LUA_TNIL:
        jn_sb_puts(out, "null");
        return 0;
    case LUA_TBOOLEAN:
        jn_sb_puts(out, lua_toboolean(L, idx) ? "true" : "false");
        return 0;
    case LUA_TNUMBER:
        return encode_number(L, idx, out, err);
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
    default:
        break;
    }
    *err = "a function, thread or userdata value has no JSON form";
    return -1;
}

int jn_json_encode(lua_State *L, int idx, const char *const *first_keys, jn_sb *out,
                   const char **err) {
    return encode(L, lua_absindex(L, idx), first_keys, out, 0, err);
}

/* ---- decoding ---------------------------------------------------------------------- */

typedef struct {
    lua_State *L;
    const char *p, *start, *end;
    char *err;
    size_t cap;
    int depth;
} reader;

static int fail_at(reader *r, const char *what) {
    snprintf(r->err, r->cap, "%s at byte %zu", what, (size_t)(r->p - r->start));
    return -1;
}

static void skip_ws(reader *r) {
    while (r->p < r->end && (*r->p == ' ' || *r->p == '\t' || *r->p == '\n' || *r->p == '\r'))
        r->p++;
}

static int hex4(const char *p, unsigned *out) {
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        char c = p[i];
        v <<= 4;
        if (c >= '0' && c <= '9')
            v |= (unsigned)(c - '0');
        else if (c >= 'a' && c <= 'f')
            v |= (unsigned)(c - 'a' + 10);
        else if (c >= 'A' && c <= 'F')
            v |= (unsigned)(c - 'A' + 10);
        else
            return -1;
    }
    *out = v;
    return 0;
}

static void put_utf8(jn_sb *sb, unsigned cp) {
    char b[4];
    if (cp < 0x80) {
        jn_sb_putc(sb, (char)cp);
    } else if (cp < 0x800) {
        b[0] = (char)(0xC0 | cp >> 6), b[1] = (char)(0x80 | (cp & 0x3F));
        jn_sb_append(sb, b, 2);
    } else if (cp < 0x10000) {
        b[0] = (char)(0xE0 | cp >> 12), b[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        b[2] = (char)(0x80 | (cp & 0x3F));
        jn_sb_append(sb, b, 3);
    } else {
        b[0] = (char)(0xF0 | cp >> 18), b[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
        b[2] = (char)(0x80 | ((cp >> 6) & 0x3F)), b[3] = (char)(0x80 | (cp & 0x3F));
        jn_sb_append(sb, b, 4);
    }
}

static int read_string(reader *r) {
    r->p++; /* opening quote */
    const char *s = r->p;
    /* Fast path: no escapes, push straight from the input. */
    while (r->p < r->end && *r->p != '"' && *r->p != '\\' && (unsigned char)*r->p >= 0x20)
        r->p++;
    if (r->p < r->end && *r->p == '"') {
        lua_pushlstring(r->L, s, (size_t)(r->p - s));
        r->p++;
        return 0;
    }
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_append(&sb, s, (size_t)(r->p - s));
    while (r->p < r->end && *r->p != '"') {
        unsigned char c = (unsigned char)*r->p;
        if (c < 0x20) {
            jn_sb_free(&sb);
            return fail_at(r, "control character in a string");
        }
        if (c != '\\') {
            jn_sb_putc(&sb, (char)c);
            r->p++;
            continue;
        }
        if (r->p + 1 >= r->end) break;
        char e = r->p[1];
        r->p += 2;
        switch (e) {
        case '"':
            jn_sb_putc(&sb, '"');
            break;
        case '\\':
            jn_sb_putc(&sb, '\\');
            break;
        case '/':
            jn_sb_putc(&sb, '/');
            break;
        case 'b':
            jn_sb_putc(&sb, '\b');
            break;
        case 'f':
            jn_sb_putc(&sb, '\f');
            break;
        case 'n':
            jn_sb_putc(&sb, '\n');
            break;
        case 'r':
            jn_sb_putc(&sb, '\r');
            break;
        case 't':
            jn_sb_putc(&sb, '\t');
            break;
        case 'u': {
            unsigned cp, lo;
            if (r->end - r->p < 4 || hex4(r->p, &cp)) {
                jn_sb_free(&sb);
                return fail_at(r, "bad \\u escape");
            }
            r->p += 4;
            if (cp >= 0xD800 && cp < 0xDC00 && r->end - r->p >= 6 && r->p[0] == '\\' &&
                r->p[1] == 'u' && !hex4(r->p + 2, &lo) && lo >= 0xDC00 && lo < 0xE000) {
                cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                r->p += 6;
            }
            put_utf8(&sb, cp);
            break;
        }
        default:
            jn_sb_free(&sb);
            return fail_at(r, "bad escape in a string");
        }
    }
    if (r->p >= r->end) {
        jn_sb_free(&sb);
        return fail_at(r, "unterminated string");
    }
    r->p++;
    lua_pushlstring(r->L, sb.data ? sb.data : "", sb.len);
    jn_sb_free(&sb);
    return 0;
}

static int read_number(reader *r) {
    const char *s = r->p;
    int is_float = 0;
    if (r->p < r->end && *r->p == '-') r->p++;
    if (r->p >= r->end || *r->p < '0' || *r->p > '9') return fail_at(r, "expected a value");
    while (r->p < r->end && ((*r->p >= '0' && *r->p <= '9') || *r->p == '.' || *r->p == 'e' ||
                             *r->p == 'E' || *r->p == '+' || *r->p == '-')) {
        if (*r->p == '.' || *r->p == 'e' || *r->p == 'E') is_float = 1;
        r->p++;
    }
    char buf[64];
    size_t n = (size_t)(r->p - s);
    if (n >= sizeof buf) return fail_at(r, "number too long");
    memcpy(buf, s, n);
    buf[n] = '\0';
    char *end;
    if (!is_float) {
        errno = 0;
        long long v = strtoll(buf, &end, 10);
        if (!errno && !*end) {
            lua_pushinteger(r->L, (lua_Integer)v);
            return 0;
        }
    }
    double d = strtod(buf, &end);
    if (*end) {
        r->p = s;
        return fail_at(r, "malformed number");
    }
    lua_pushnumber(r->L, d);
    return 0;
}

static int read_value(reader *r);

/* Objects: the pairs are read onto the stack first and the table is created at its
 * final size, which saves the rehash at every power of two that dominates small
 * records. Arrays can be huge, so they grow in place (amortised doubling). */
static int read_object(reader *r) {
    lua_State *L = r->L;
    int base = lua_gettop(L);
    int n = 0;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        lua_newtable(L);
        return 0;
    }
    for (;;) {
        skip_ws(r);
        if (!lua_checkstack(L, 4)) return lua_settop(L, base), fail_at(r, "object too large");
        if (r->p >= r->end || *r->p != '"')
            return lua_settop(L, base), fail_at(r, "expected a key string");
        if (read_string(r)) return lua_settop(L, base), -1;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':') return lua_settop(L, base), fail_at(r, "expected ':'");
        r->p++;
        if (read_value(r)) return lua_settop(L, base), -1;
        n++;
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == '}') {
            r->p++;
            break;
        }
        lua_settop(L, base);
        return fail_at(r, "expected ',' or '}'");
    }
    lua_createtable(L, 0, n);
    int t = lua_gettop(L);
    for (int i = 0; i < n; i++) {
        lua_pushvalue(L, base + 1 + 2 * i);
        lua_pushvalue(L, base + 2 + 2 * i);
        lua_rawset(L, t);
    }
    lua_replace(L, base + 1);
    lua_settop(L, base + 1);
    return 0;
}

static int read_array(reader *r) {
    lua_State *L = r->L;
    if (!lua_checkstack(L, 4)) return fail_at(r, "out of stack");
    r->p++;
    lua_newtable(L);
    lua_Integer n = 0;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return 0;
    }
    for (;;) {
        if (read_value(r)) return lua_pop(L, 1), -1;
        lua_rawseti(L, -2, ++n);
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return 0;
        }
        lua_pop(L, 1);
        return fail_at(r, "expected ',' or ']'");
    }
}

static int read_container(reader *r, int object) {
    if (++r->depth > MAX_DEPTH) return fail_at(r, "nested deeper than 64 levels");
    int rc = object ? read_object(r) : read_array(r);
    r->depth--;
    return rc;
}

static int literal(reader *r, const char *word) {
    size_t n = strlen(word);
    if ((size_t)(r->end - r->p) < n || memcmp(r->p, word, n)) return fail_at(r, "expected a value");
    r->p += n;
    return 0;
}

static int read_value(reader *r) {
    skip_ws(r);
    if (r->p >= r->end) return fail_at(r, "unexpected end of input");
    switch (*r->p) {
    case '{':
        return read_container(r, 1);
    case '[':
        return read_container(r, 0);
    case '"':
        return read_string(r);
    case 't':
        if (literal(r, "true")) return -1;
        lua_pushboolean(r->L, 1);
        return 0;
    case 'f':
        if (literal(r, "false")) return -1;
        lua_pushboolean(r->L, 0);
        return 0;
    case 'n':
        if (literal(r, "null")) return -1;
        lua_pushlightuserdata(r->L, NULL);
        return 0;
    default:
        return read_number(r);
    }
}

int jn_json_decode(lua_State *L, const char *data, size_t len, char *err, size_t cap) {
    reader r = {L, data, data, data + len, err, cap, 0};
    int top = lua_gettop(L);
    if (read_value(&r) != 0) {
        lua_settop(L, top);
        return -1;
    }
    skip_ws(&r);
    if (r.p != r.end) {
        lua_settop(L, top);
        return fail_at(&r, "unexpected data after the JSON value");
    }
    return 0;
}
