/* Deterministic JSON encoder for Lua values. */
#include "json.h"

#include <lauxlib.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "record_view.h"

#define MAX_DEPTH 64

/* One member of an object being encoded: its key, and its "key":value text in the
 * scratch buffer of its depth. */
typedef struct {
    const char *s; /* key bytes; NULL for a number key, whose digits are in the scratch */
    size_t len;
    size_t off, n; /* the member's text in the scratch */
} key;

/* Members are encoded as they come and sorted afterwards as finished text, so no value
 * has to stay on the Lua stack. One scratch per depth: a nested object is finished
 * before its sibling starts, so each level reuses its own. */
static _Thread_local jn_sb scratch[MAX_DEPTH + 2];

static int key_less(const key *x, const key *y) {
    size_t n = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->s, y->s, n);
    return c ? c < 0 : x->len < y->len;
}

/* Records have a handful of keys: insertion sort beats qsort's call per comparison. */
static void sort_keys(key *k, size_t n) {
    for (size_t i = 1; i < n; i++) {
        key t = k[i];
        size_t j = i;
        for (; j > 0 && key_less(&t, &k[j - 1]); j--)
            k[j] = k[j - 1];
        k[j] = t;
    }
}

/* A table is an array when its keys are exactly 1..n; returns n, or -1 for an object.
 * A record's first key is a string, which settles it after one lua_next; only tables
 * that may be arrays are walked to the end. */
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
        jn_sb_int(out, (long long)lua_tointeger(L, idx));
        return 0;
    }
    double d = lua_tonumber(L, idx);
    if (!isfinite(d)) {
        *err = "a number that is NaN or infinite has no JSON form";
        return -1;
    }
    /* The text must decode to a value that encodes to the same text (canonical JSON is
     * hashed). Whole numbers below 1e15 are written as integers, which decode as
     * integers; so -0.0 is written "0" ("-0" reads as the integer 0), and a fraction
     * that %.14g rounds to a whole number in exponent form (1e14 <= |d| < 1e15) is
     * written as that whole number, as the value it decodes to would be. */
    if (d == floor(d) && fabs(d) < 1e15) {
        jn_sb_printf(out, "%.0f", d == 0 ? 0.0 : d);
        return 0;
    }
    char text[32];
    snprintf(text, sizeof text, "%.14g", d);
    if (strchr(text, 'e')) {
        double r = strtod(text, NULL);
        if (r == floor(r) && fabs(r) < 1e15) {
            jn_sb_printf(out, "%.0f", r);
            return 0;
        }
    }
    jn_sb_puts(out, text);
    return 0;
}

/* Writes the object whose members' texts are in the scratch sc: named keys first in
 * their listed order, the rest sorted. */
static void emit_members(key *keys, size_t n, const char *const *first, const jn_sb *sc,
                         jn_sb *out) {
    /* The scratch may have moved while it grew: number keys point into it now. */
    for (size_t i = 0; i < n; i++)
        if (!keys[i].s) keys[i].s = sc->data + keys[i].off + 1;
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
    sort_keys(keys + named, n - named);
    size_t total = 2 + n;
    for (size_t i = 0; i < n; i++)
        total += keys[i].n;
    jn_sb_reserve(out, total);
    char *o = out->data + out->len;
    *o++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i) *o++ = ',';
        memcpy(o, sc->data + keys[i].off, keys[i].n);
        o += keys[i].n;
    }
    *o++ = '}';
    out->len = (size_t)(o - out->data);
    out->data[out->len] = '\0';
}

/* The members of an object being encoded: a stack array covers a record without malloc. */
typedef struct {
    key small[32];
    key *keys;
    size_t n, cap;
} members;

static key *new_member(members *ms) {
    if (ms->n == ms->cap) {
        key *bigger = malloc((ms->cap *= 2) * sizeof *bigger);
        if (!bigger) abort();
        memcpy(bigger, ms->keys, ms->n * sizeof *bigger);
        if (ms->keys != ms->small) free(ms->keys);
        ms->keys = bigger;
    }
    return &ms->keys[ms->n];
}

/* Adds the pair lua_next left at the top (key, value) to ms, its text to sc; pops the
 * value. */
static int add_pair(lua_State *L, members *ms, jn_sb *sc, int depth, const char **err) {
    int kt = lua_type(L, -2);
    if (kt != LUA_TSTRING && kt != LUA_TNUMBER) {
        *err = "a table key that is neither a string nor a number has no JSON form";
        return -1;
    }
    key *k = new_member(ms);
    k->off = sc->len;
    if (kt == LUA_TSTRING) {
        /* The key string lives in the table, which nothing changes while we encode: its
         * text stays valid after lua_next drops it. */
        k->s = lua_tolstring(L, -2, &k->len);
        jn_sb_json_string(sc, k->s, k->len);
    } else {
        /* A number key is written as Lua would turn it into a string; converting the key
         * itself in place would break lua_next, so a copy is converted. */
        lua_pushvalue(L, -2);
        size_t len;
        const char *t = lua_tolstring(L, -1, &len);
        k->s = NULL;
        k->len = len;
        jn_sb_json_string(sc, t, len);
        lua_pop(L, 1);
    }
    jn_sb_putc(sc, ':');
    int rc = encode(L, lua_gettop(L), NULL, sc, depth + 1, err);
    lua_pop(L, 1); /* the value; the key stays for lua_next */
    if (rc) return rc;
    k->n = sc->len - k->off;
    ms->n++;
    return 0;
}

static int encode_object(lua_State *L, int idx, const char *const *first, jn_sb *out, int depth,
                         const char **err) {
    jn_sb *sc = &scratch[depth];
    size_t base = sc->len;
    members ms;
    ms.keys = ms.small;
    ms.n = 0;
    ms.cap = sizeof ms.small / sizeof ms.small[0];
    int rc = 0, top = lua_gettop(L);
    lua_pushnil(L);
    while (rc == 0 && lua_next(L, idx))
        rc = add_pair(L, &ms, sc, depth, err);
    lua_settop(L, top);
    if (rc == 0) emit_members(ms.keys, ms.n, first, sc, out);
    sc->len = base;
    if (ms.keys != ms.small) free(ms.keys);
    return rc;
}

/* A record view (record_view.h): the members the script changed come from its table of
 * changes, encoded as any value; the others are copied from the view's text, which is
 * canonical, so the result is what decoding the whole record into a table and encoding
 * that would give. */
static int encode_view(lua_State *L, int idx, jn_view *v, const char *const *first, jn_sb *out,
                       int depth, const char **err) {
    jn_sb *sc = &scratch[depth];
    size_t base = sc->len;
    members ms;
    ms.keys = ms.small;
    ms.n = 0;
    ms.cap = sizeof ms.small / sizeof ms.small[0];
    uint64_t changed = 0; /* a view has at most 64 members */
    size_t count = jn_view_count(v);
    int rc = 0, top = lua_gettop(L);
    int ty = jn_view_push_changes(L, idx);
    if (ty != LUA_TTABLE && !first && jn_view_sorted(v)) {
        /* Unchanged: its canonical text is its encoding. */
        size_t len;
        const char *text = jn_view_text(v, &len);
        jn_sb_append(out, text, len);
        lua_settop(L, top);
        return 0;
    }
    if (ty == LUA_TTABLE) {
        int changes = lua_gettop(L);
        lua_pushnil(L);
        while (rc == 0 && lua_next(L, changes)) {
            if (lua_type(L, -2) == LUA_TSTRING) {
                size_t klen;
                const char *k = lua_tolstring(L, -2, &klen);
                for (size_t i = 0; i < count; i++) {
                    const char *mk, *mv;
                    size_t mklen, mvlen;
                    jn_view_member(v, i, &mk, &mklen, &mv, &mvlen);
                    if (mklen == klen && !memcmp(mk, k, klen)) {
                        changed |= (uint64_t)1 << i;
                        break;
                    }
                }
            }
            if (jn_view_is_deleted(L, -1))
                lua_pop(L, 1);
            else
                rc = add_pair(L, &ms, sc, depth, err);
        }
    }
    lua_settop(L, top);
    for (size_t i = 0; rc == 0 && i < count; i++) {
        if (changed >> i & 1) continue;
        key *k = new_member(&ms);
        const char *val;
        size_t vlen;
        jn_view_member(v, i, &k->s, &k->len, &val, &vlen);
        /* Canonical keys hold no escapes: quoting them is all encoding does. */
        k->off = sc->len;
        jn_sb_reserve(sc, k->len + vlen + 3);
        jn_sb_putc(sc, '"');
        jn_sb_append(sc, k->s, k->len);
        jn_sb_append(sc, "\":", 2);
        jn_sb_append(sc, val, vlen);
        k->n = sc->len - k->off;
        ms.n++;
    }
    if (rc == 0) {
        if (ms.n)
            emit_members(ms.keys, ms.n, first, sc, out);
        else
            jn_sb_puts(out, "[]"); /* as an empty table */
    }
    sc->len = base;
    if (ms.keys != ms.small) free(ms.keys);
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
    case LUA_TUSERDATA: {
        jn_view *v = jn_view_test(L, idx);
        if (!v) break;
        luaL_checkstack(L, 8, "json");
        return encode_view(L, idx, v, first, out, depth, err);
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
    int *hint;   /* pairs in the last object read at each depth */
    jn_sb *text; /* without L: where read_string puts the string it decodes, or NULL */
} reader;

/* Kept across calls: a producer or consumer decodes one record per call, and the next
 * record is usually shaped like the last. Any value is only a size hint; per thread,
 * so decoders on different threads never share it. */
static _Thread_local int size_hints[MAX_DEPTH];

static int fail_at(reader *r, const char *what) {
    snprintf(r->err, r->cap, "%s at byte %zu", what, (size_t)(r->p - r->start));
    return -1;
}

/* Drops what a failed read pushed; a reader without a lua_State only checks. */
static void unwind(reader *r, int top) {
    if (r->L) lua_settop(r->L, top);
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

/* Whether s holds well-formed UTF-8 (RFC 3629): no overlong forms, no surrogates, nothing
 * past U+10FFFF. RFC 8259 §8.1: JSON text exchanged between systems is UTF-8. */
static int valid_utf8(const unsigned char *s, size_t n) {
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        unsigned lo = 0x80, hi = 0xBF; /* the range of the second byte */
        if (c >= 0xC2 && c <= 0xDF) {
            len = 2;
        } else if (c >= 0xE0 && c <= 0xEF) {
            len = 3;
            if (c == 0xE0)
                lo = 0xA0; /* overlong */
            else if (c == 0xED)
                hi = 0x9F; /* surrogates */
        } else if (c >= 0xF0 && c <= 0xF4) {
            len = 4;
            if (c == 0xF0)
                lo = 0x90; /* overlong */
            else if (c == 0xF4)
                hi = 0x8F; /* past U+10FFFF */
        } else {
            return 0;
        }
        if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return 0;
        for (size_t k = 2; k < len; k++)
            if (s[i + k] < 0x80 || s[i + k] > 0xBF) return 0;
        i += len;
    }
    return 1;
}

static int read_string(reader *r) {
    r->p++; /* opening quote */
    const char *s = r->p;
    /* Fast path: no escapes, push straight from the input; bytes past ASCII send the
     * string through the UTF-8 check. */
    unsigned char high = 0;
    while (r->p < r->end && *r->p != '"' && *r->p != '\\' && (unsigned char)*r->p >= 0x20)
        high |= (unsigned char)*r->p++;
    if ((high & 0x80) && !valid_utf8((const unsigned char *)s, (size_t)(r->p - s)))
        return fail_at(r, "invalid UTF-8 in a string");
    if (r->p < r->end && *r->p == '"') {
        if (r->L)
            lua_pushlstring(r->L, s, (size_t)(r->p - s));
        else if (r->text)
            jn_sb_append(r->text, s, (size_t)(r->p - s));
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
            } else if (cp >= 0xD800 && cp < 0xE000) {
                /* A surrogate without its pair names no character: no UTF-8 holds it. */
                jn_sb_free(&sb);
                return fail_at(r, "lone surrogate in a \\u escape");
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
    if (!valid_utf8((const unsigned char *)(sb.data ? sb.data : ""), sb.len)) {
        jn_sb_free(&sb);
        return fail_at(r, "invalid UTF-8 in a string");
    }
    if (r->L)
        lua_pushlstring(r->L, sb.data ? sb.data : "", sb.len);
    else if (r->text)
        jn_sb_append(r->text, sb.data ? sb.data : "", sb.len);
    jn_sb_free(&sb);
    return 0;
}

/* Characters that continue a number past its integer digits. */
static int is_number_tail(char c) {
    return (c >= '0' && c <= '9') || c == '.' || c == 'e' || c == 'E' || c == '+' || c == '-';
}

static int read_number(reader *r) {
    const char *s = r->p;
    /* Fast path: a plain integer of up to 18 digits cannot overflow 64 bits. */
    {
        const char *q = s + (s < r->end && *s == '-');
        const char *d = q;
        uint64_t v = 0;
        while (d < r->end && d - q < 19 && *d >= '0' && *d <= '9')
            v = v * 10 + (uint64_t)(*d++ - '0');
        size_t nd = (size_t)(d - q);
        if (nd > 0 && nd < 19 && (nd == 1 || *q != '0') && (d == r->end || !is_number_tail(*d))) {
            r->p = d;
            if (r->L) lua_pushinteger(r->L, q != s ? -(lua_Integer)v : (lua_Integer)v);
            return 0;
        }
    }
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
            if (r->L) lua_pushinteger(r->L, (lua_Integer)v);
            return 0;
        }
    }
    double d = strtod(buf, &end);
    if (*end) {
        r->p = s;
        return fail_at(r, "malformed number");
    }
    if (r->L) lua_pushnumber(r->L, d);
    return 0;
}

static int read_value(reader *r);

/* Objects: the table is created at the size of the last object read at the same depth,
 * so a response of like records (the usual case) is built without the rehash at every
 * power of two that dominates small tables. Arrays can be huge, so they grow in place
 * (amortised doubling). */
static int read_object(reader *r) {
    lua_State *L = r->L;
    int depth = r->depth < MAX_DEPTH ? r->depth : MAX_DEPTH - 1;
    int t = 0;
    if (L) {
        if (!lua_checkstack(L, 4)) return fail_at(r, "object too large");
        lua_createtable(L, 0, r->hint[depth]);
        t = lua_gettop(L);
    }
    int n = 0;
    r->p++;
    skip_ws(r);
    if (r->p < r->end && *r->p == '}') {
        r->p++;
        return 0;
    }
    for (;;) {
        skip_ws(r);
        if (r->p >= r->end || *r->p != '"')
            return unwind(r, t - 1), fail_at(r, "expected a key string");
        if (read_string(r)) return unwind(r, t - 1), -1;
        skip_ws(r);
        if (r->p >= r->end || *r->p != ':') return unwind(r, t - 1), fail_at(r, "expected ':'");
        r->p++;
        if (read_value(r)) return unwind(r, t - 1), -1;
        if (L) lua_rawset(L, t);
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
        unwind(r, t - 1);
        return fail_at(r, "expected ',' or '}'");
    }
    r->hint[depth] = n;
    return 0;
}

static int read_array(reader *r) {
    lua_State *L = r->L;
    int t = 0;
    if (L) {
        if (!lua_checkstack(L, 4)) return fail_at(r, "out of stack");
        lua_newtable(L);
        t = lua_gettop(L);
    }
    r->p++;
    lua_Integer n = 0;
    skip_ws(r);
    if (r->p < r->end && *r->p == ']') {
        r->p++;
        return 0;
    }
    for (;;) {
        if (read_value(r)) return unwind(r, t - 1), -1;
        n++;
        if (L) lua_rawseti(L, t, n);
        skip_ws(r);
        if (r->p < r->end && *r->p == ',') {
            r->p++;
            continue;
        }
        if (r->p < r->end && *r->p == ']') {
            r->p++;
            return 0;
        }
        unwind(r, t - 1);
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
        if (r->L) lua_pushboolean(r->L, 1);
        return 0;
    case 'f':
        if (literal(r, "false")) return -1;
        if (r->L) lua_pushboolean(r->L, 0);
        return 0;
    case 'n':
        if (literal(r, "null")) return -1;
        if (r->L) lua_pushlightuserdata(r->L, NULL);
        return 0;
    default:
        return read_number(r);
    }
}

int jn_json_decode(lua_State *L, const char *data, size_t len, char *err, size_t cap) {
    reader r = {L, data, data, data + len, err, cap, 0, size_hints, NULL};
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

const char *jn_json_kind(char c) {
    switch (c) {
    case '{':
        return "an object";
    case '[':
        return "an array";
    case '"':
        return "a string";
    case 't':
    case 'f':
        return "a boolean";
    case 'n':
        return "null";
    default:
        return "a number";
    }
}

int jn_json_array_spans(const char *data, size_t len, jn_json_span **spans, size_t *n, char *err,
                        size_t cap) {
    int hints[MAX_DEPTH];
    reader r = {NULL, data, data, data + len, err, cap, 0, hints, NULL};
    *spans = NULL;
    *n = 0;
    skip_ws(&r);
    const char *first = r.p;
    if (r.p < r.end && *r.p != '[') {
        if (read_value(&r) != 0) return -1;
        skip_ws(&r);
        if (r.p != r.end) return fail_at(&r, "unexpected data after the JSON value");
        snprintf(err, cap, "expected a JSON array of records, got %s", jn_json_kind(*first));
        return -2;
    }
    if (r.p >= r.end) return fail_at(&r, "unexpected end of input");
    size_t cap_spans = 0;
    int closed = 0;
    r.p++;
    r.depth = 1; /* as inside jn_json_decode's read of the array */
    skip_ws(&r);
    if (r.p < r.end && *r.p == ']') {
        r.p++;
        closed = 1;
    } else {
        for (;;) {
            skip_ws(&r);
            const char *start = r.p;
            if (read_value(&r) != 0) break;
            if (*n == cap_spans) {
                cap_spans = cap_spans ? 2 * cap_spans : 1024;
                jn_json_span *bigger = realloc(*spans, cap_spans * sizeof **spans);
                if (!bigger) abort();
                *spans = bigger;
            }
            (*spans)[(*n)++] = (jn_json_span){(size_t)(start - data), (size_t)(r.p - start)};
            skip_ws(&r);
            if (r.p < r.end && *r.p == ',') {
                r.p++;
                continue;
            }
            if (r.p < r.end && *r.p == ']') {
                r.p++;
                closed = 1;
                break;
            }
            fail_at(&r, "expected ',' or ']'");
            break;
        }
    }
    if (closed) {
        skip_ws(&r);
        if (r.p == r.end) return 0;
        fail_at(&r, "unexpected data after the JSON value");
    }
    free(*spans);
    *spans = NULL;
    *n = 0;
    return -1;
}

/* ---- scanning checked text --------------------------------------------------------- */

/* Text jn_json_array_spans or jn_json_decode accepted can be walked without the checks:
 * a caller finds a member's value by skipping over the others, so a batch costs one check
 * and a scan rather than a table per record that is thrown away at once. */

const char *jn_json_skip_ws(const char *p, const char *end) {
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* memchr finds the closing quote faster than a byte loop; a quote is escaped when an odd
 * number of backslashes precedes it. */
static const char *skip_string(const char *p, const char *e) {
    for (p++;;) {
        const char *q = memchr(p, '"', (size_t)(e - p));
        if (!q) return e;
        const char *b = q;
        while (b > p && b[-1] == '\\')
            b--;
        if ((q - b) % 2 == 0) return q + 1;
        p = q + 1;
    }
}

/* The bytes that matter inside a container being skipped; the rest, most of a record,
 * costs one lookup each. */
static const unsigned char structural[256] = {
    ['"'] = 1, ['{'] = 1, ['['] = 1, ['}'] = 1, [']'] = 1};

const char *jn_json_skip_value(const char *p, const char *e) {
    if (p >= e) return e;
    if (*p == '"') return skip_string(p, e);
    if (*p == '{' || *p == '[') {
        int depth = 0;
        for (;;) {
            while (p < e && !structural[(unsigned char)*p])
                p++;
            if (p >= e) return e;
            char c = *p;
            if (c == '"') {
                p = skip_string(p, e);
                continue;
            }
            p++;
            if (c == '{' || c == '[')
                depth++;
            else if (--depth == 0)
                return p;
        }
    }
    /* A number or a literal: it ends where a separator or whitespace starts. */
    while (p < e && *p != ',' && *p != ']' && *p != '}' && *p != ' ' && *p != '\t' && *p != '\n' &&
           *p != '\r')
        p++;
    return p;
}

/* Whether the JSON string at [p, q) is name; a key spelled with escapes is decoded first
 * so {"rec\u006frds": [...]} means the same as the plain spelling. */
static int key_is(const char *p, const char *q, const char *name, size_t len) {
    /* Escapes only make a key longer than what it decodes to, so a shorter one cannot
     * match and one of the same length matches only byte for byte. */
    if ((size_t)(q - p) < len + 2) return 0;
    if ((size_t)(q - p) == len + 2 || !memchr(p, '\\', (size_t)(q - p)))
        return (size_t)(q - p) == len + 2 && !memcmp(p + 1, name, len);
    jn_sb text;
    jn_sb_init(&text);
    char err[8];
    reader r = {NULL, p, p, q, err, sizeof err, 0, NULL, &text};
    int is = read_string(&r) == 0 && text.len == len && !memcmp(text.data, name, len);
    jn_sb_free(&text);
    return is;
}

const char *jn_json_find_member(const char *obj, const char *end, const char *name) {
    const char *p = jn_json_skip_ws(obj, end), *e = end;
    if (p >= e || *p != '{') return NULL;
    const char *found = NULL;
    size_t len = strlen(name);
    p = jn_json_skip_ws(p + 1, e);
    while (p < e && *p == '"') {
        const char *q = skip_string(p, e);
        int match = key_is(p, q, name, len);
        p = jn_json_skip_ws(q, e);
        p = jn_json_skip_ws(p + 1, e); /* the ':' */
        if (match) found = p;
        p = jn_json_skip_ws(jn_json_skip_value(p, e), e);
        if (p < e && *p == ',') p = jn_json_skip_ws(p + 1, e);
    }
    return found;
}

/* ---- canonical form ---------------------------------------------------------------- */

/* The rules below are those of jn_json_encode's output; anything they do not cover (an
 * escape, a fraction, an empty object, which encodes as []) is left to the slow path,
 * so a "no" costs nothing but time. */
static const char *canon_value(const char *p, const char *e, int depth);

static const char *canon_string(const char *p, const char *e) {
    const char *s = ++p;
    /* Bytes past ASCII must be well-formed UTF-8, as the decoder demands: text it refuses
     * is not the encoding of anything. Checked only when there are such bytes, as in
     * read_string. */
    unsigned char high = 0;
    for (; p < e; p++) {
        unsigned char c = (unsigned char)*p;
        if (c == '"') {
            if ((high & 0x80) && !valid_utf8((const unsigned char *)s, (size_t)(p - s)))
                return NULL;
            return p + 1;
        }
        if (c < 0x20 || c == '\\') return NULL;
        high |= c;
    }
    return NULL;
}

static const char *canon_number(const char *p, const char *e) {
    const char *s = p;
    if (p < e && *p == '-') p++;
    const char *d = p;
    while (p < e && *p >= '0' && *p <= '9')
        p++;
    size_t n = (size_t)(p - d);
    /* %lld of an integer: no leading zero, no "-0", and short enough to be one. */
    if (n == 0 || n > 18 || (*d == '0' && (n > 1 || d != s))) return NULL;
    if (p < e && (*p == '.' || *p == 'e' || *p == 'E')) return NULL;
    return p;
}

static const char *canon_object(const char *p, const char *e, int depth) {
    const char *prev = NULL;
    size_t prev_len = 0;
    p++;
    for (;;) {
        if (p >= e || *p != '"') return NULL;
        const char *k = p + 1, *q = canon_string(p, e);
        if (!q) return NULL;
        size_t len = (size_t)(q - 1 - k);
        if (prev) {
            /* Strictly after the previous key in jn_json_encode's order: sorted, and no
             * repeats (decoding keeps only the last of a repeated key). */
            size_t m = len < prev_len ? len : prev_len;
            int c = memcmp(prev, k, m);
            if (c > 0 || (c == 0 && prev_len >= len)) return NULL;
        }
        prev = k;
        prev_len = len;
        if (q >= e || *q != ':') return NULL;
        p = canon_value(q + 1, e, depth + 1);
        if (!p || p >= e) return NULL;
        if (*p == '}') return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *canon_array(const char *p, const char *e, int depth) {
    p++;
    if (p < e && *p == ']') return p + 1;
    for (;;) {
        p = canon_value(p, e, depth + 1);
        if (!p || p >= e) return NULL;
        if (*p == ']') return p + 1;
        if (*p++ != ',') return NULL;
    }
}

static const char *canon_literal(const char *p, const char *e, const char *word, size_t n) {
    return (size_t)(e - p) >= n && !memcmp(p, word, n) ? p + n : NULL;
}

static const char *canon_value(const char *p, const char *e, int depth) {
    if (p >= e || depth >= MAX_DEPTH) return NULL;
    switch (*p) {
    case '{':
        return canon_object(p, e, depth);
    case '[':
        return canon_array(p, e, depth);
    case '"':
        return canon_string(p, e);
    case 't':
        return canon_literal(p, e, "true", 4);
    case 'f':
        return canon_literal(p, e, "false", 5);
    case 'n':
        return canon_literal(p, e, "null", 4);
    default:
        return canon_number(p, e);
    }
}

int jn_json_is_canonical(const char *data, size_t len) {
    return canon_value(data, data + len, 0) == data + len;
}

int jn_json_object_members(const char *data, size_t len, jn_json_member *m, size_t max,
                           int *sorted) {
    const char *p = data, *e = data + len;
    /* An empty object encodes as [] (canon_object refuses it too). */
    if (len < 2 || *p != '{' || p[1] == '}') return -1;
    size_t n = 0;
    *sorted = 1;
    p++;
    for (;;) {
        if (n == max || p >= e || *p != '"') return -1;
        const char *k = p + 1, *q = canon_string(p, e);
        if (!q) return -1;
        size_t klen = (size_t)(q - 1 - k);
        if (n) {
            const char *pk = data + m[n - 1].key;
            size_t pklen = m[n - 1].klen, c = klen < pklen ? klen : pklen;
            int d = memcmp(pk, k, c);
            if (d > 0 || (d == 0 && pklen >= klen)) *sorted = 0;
        }
        if (q >= e || *q != ':') return -1;
        const char *v = q + 1;
        p = canon_value(v, e, 1);
        if (!p || p >= e) return -1;
        m[n++] = (jn_json_member){(size_t)(k - data), klen, (size_t)(v - data), (size_t)(p - v)};
        if (*p == '}') break;
        if (*p++ != ',') return -1;
    }
    if (p + 1 != e) return -1;
    /* Out of order, the keys may repeat, which decoding would fold into one: refused. In
     * order they cannot (each is strictly after the one before). */
    if (!*sorted)
        for (size_t i = 1; i < n; i++)
            for (size_t j = 0; j < i; j++)
                if (m[i].klen == m[j].klen && !memcmp(data + m[i].key, data + m[j].key, m[i].klen))
                    return -1;
    return (int)n;
}

int jn_json_canonical_members(const char *data, size_t len, jn_json_member *m, size_t max) {
    int sorted;
    int n = jn_json_object_members(data, len, m, max, &sorted);
    return n >= 0 && sorted ? n : -1;
}

/* The end of the canonical value at p (before e), or NULL when the text is not shaped as
 * canonical text is: strings hold no escapes, so a string ends at the next quote. */
static const char *skip_canonical(const char *p, const char *e) {
    if (p >= e) return NULL;
    if (*p == '"') {
        const char *q = memchr(p + 1, '"', (size_t)(e - p - 1));
        return q ? q + 1 : NULL;
    }
    if (*p != '{' && *p != '[') {
        while (p < e && *p != ',' && *p != '}' && *p != ']')
            p++;
        return p;
    }
    int depth = 0;
    for (; p < e; p++) {
        if (*p == '"') {
            const char *q = memchr(p + 1, '"', (size_t)(e - p - 1));
            if (!q) return NULL;
            p = q;
        } else if (*p == '{' || *p == '[') {
            depth++;
        } else if ((*p == '}' || *p == ']') && --depth == 0) {
            return p + 1;
        }
    }
    return NULL;
}

int jn_json_members_of_canonical(const char *data, size_t len, jn_json_member *m, size_t max) {
    const char *p = data, *e = data + len;
    if (len < 2 || *p != '{' || p[1] == '}') return -1;
    size_t n = 0;
    p++;
    for (;;) {
        if (n == max || p >= e || *p != '"') return -1;
        const char *k = p + 1, *q = memchr(k, '"', (size_t)(e - k));
        if (!q || q + 1 >= e || q[1] != ':') return -1;
        const char *v = q + 2, *end = skip_canonical(v, e);
        if (!end || end >= e || end == v) return -1;
        m[n++] = (jn_json_member){(size_t)(k - data), (size_t)(q - k), (size_t)(v - data),
                                  (size_t)(end - v)};
        if (*end == '}') return end + 1 == e ? (int)n : -1;
        if (*end != ',') return -1;
        p = end + 1;
    }
}
