/* One page of a source's response: see page.h. Every hook call is protected and under the
 * script's limits; what a hook returns is checked before the producer relies on it, and
 * a page is either read whole or not at all, so nothing of a page the script could not
 * read is published. */
#include "page.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"

/* A next URL longer than this is a script building one by mistake (say, appending to the
 * previous one): far above any real page link. */
#define MAX_URL_LEN 8192

/* "abc" or "abc..." (the first 200 bytes), for a message quoting a URL. */
static const char *clip(const char *s, char buf[208]) {
    snprintf(buf, 208, "%.200s%s", s, strlen(s) > 200 ? "..." : "");
    return buf;
}

/* A hook's error without the traceback the host adds: one line in the producer's log. */
static const char *first_line(char *err) {
    char *nl = strstr(err, "\nstack traceback:");
    if (nl) *nl = '\0';
    return err;
}

/* The fast path: one JSON array, checked whole before anything is published. */
static const char *read_spans(jn_page *pg, int *transient, char *detail, size_t cap) {
    char jerr[160];
    size_t n;
    int rc = jn_json_array_spans(pg->body, pg->body_len, &pg->spans, &n, jerr, sizeof jerr);
    if (rc == -1) {
        snprintf(detail, cap, "body of %zu bytes is not JSON (%s)", pg->body_len, jerr);
        *transient = 1; /* a body cut short is usually a passing fault: worth another try */
        return "malformed_json";
    }
    if (rc == -2) {
        snprintf(detail, cap,
                 "%s (records in an envelope? the map script's records(body, ctx) returns "
                 "the array inside it)",
                 jerr);
        return "not_array";
    }
    pg->nrecords = n;
    return NULL;
}

void jn_page_push_ctx(lua_State *L, const char *source, const char *topic, int page) {
    lua_createtable(L, 0, 3);
    lua_pushstring(L, source);
    lua_setfield(L, -2, "source");
    lua_pushstring(L, topic);
    lua_setfield(L, -2, "topic");
    lua_pushinteger(L, page);
    lua_setfield(L, -2, "page");
}

/* Calls the hook with the two arguments on the stack, leaving its one result; else -1
 * with "<hook>() failed: <error>" in detail. */
static int call_hook(jn_page *pg, const char *hook, char *detail, size_t cap) {
    char *err = NULL;
    if (jn_script_call(pg->script, hook, 2, 1, &err) == 0) return 0;
    snprintf(detail, cap, "%s() failed: %s", hook, first_line(err));
    free(err);
    return -1;
}

/* Pushes the response's header fields as name -> value. A field sent more than once is
 * one value, joined with ", " as RFC 9110 5.3 allows for list fields (Link is one). */
static void push_headers(lua_State *L, const char *f, size_t len) {
    lua_newtable(L);
    const char *end = f + len;
    while (f < end) {
        const char *name = f, *value = name + strlen(name) + 1;
        f = value + strlen(value) + 1;
        if (lua_getfield(L, -1, name) == LUA_TSTRING) {
            lua_pushliteral(L, ", ");
            lua_pushstring(L, value);
            lua_concat(L, 3);
        } else {
            lua_pop(L, 1);
            lua_pushstring(L, value);
        }
        lua_setfield(L, -2, name);
    }
}

/* A table whose records are at 1..n: an empty table, or one with a first element (a
 * decoded JSON object has none). */
static int is_array(lua_State *L, int idx) {
    idx = lua_absindex(L, idx);
    if (lua_type(L, idx) != LUA_TTABLE) return 0;
    if (lua_rawlen(L, idx) > 0) return 1;
    lua_pushnil(L);
    if (!lua_next(L, idx)) return 1;
    lua_pop(L, 2);
    return 0;
}

/* "nil", "a string", "a table that is not an array", ... */
static const char *describe_type(lua_State *L, int idx, char buf[48]) {
    int t = lua_type(L, idx);
    if (t == LUA_TNIL) return "nil";
    if (t == LUA_TTABLE) return "a table that is not an array";
    if (t == LUA_TLIGHTUSERDATA) return "null"; /* how JSON's null decodes */
    snprintf(buf, 48, "a %s", luaL_typename(L, idx));
    return buf;
}

/* The records: what records(body, ctx) returns, else the body itself, which must then be
 * an array. Pushes them. */
static const char *find_records(lua_State *L, jn_page *pg, int body, int ctx, char *detail,
                                size_t cap) {
    if (!pg->has_records) {
        const char *p = pg->body;
        while (p < pg->body + pg->body_len && strchr(" \t\r\n", *p))
            p++;
        if (*p != '[') {
            snprintf(detail, cap,
                     "expected a JSON array, got %s (records in an envelope? the map script's "
                     "records(body, ctx) returns the array inside it)",
                     jn_json_kind(*p));
            return "not_array";
        }
        lua_pushvalue(L, body);
        return NULL;
    }
    lua_pushvalue(L, body);
    lua_pushvalue(L, ctx);
    if (call_hook(pg, "records", detail, cap) != 0) return "records_error";
    if (!is_array(L, -1)) {
        char t[48];
        snprintf(detail, cap, "records() returned %s; it returns the array of the page's records",
                 describe_type(L, -1, t));
        return "not_array";
    }
    return NULL;
}

/* The URL next() returned: absolute, on the source's own host, of a sane length. */
static const char *check_next_url(const jn_page *pg, const char *url, size_t len, char *detail,
                                  size_t cap) {
    char b[208];
    if (len > MAX_URL_LEN || strlen(url) != len) {
        snprintf(detail, cap, "next() returned a string of %zu bytes%s, not a URL", len,
                 strlen(url) != len ? " with a NUL byte in it" : "");
        return "bad_next_url";
    }
    if (!jn_http_same_origin(url, url)) {
        snprintf(detail, cap,
                 "next() returned \"%s\", which is not an absolute http:// or https:// URL",
                 clip(url, b));
        return "bad_next_url";
    }
    if (!jn_http_same_origin(pg->base_url, url)) {
        snprintf(detail, cap,
                 "next() returned \"%s\", on another host than the source's url; a source's "
                 "requests, and the credentials in its headers, stay on its own host",
                 clip(url, b));
        return "bad_next_url";
    }
    return NULL;
}

/* next(response, ctx) with response = {status, headers, body, url, page, records}. */
static const char *find_next(lua_State *L, jn_page *pg, int body, int records, int ctx,
                             char *detail, size_t cap) {
    lua_createtable(L, 0, 6);
    lua_pushinteger(L, pg->status);
    lua_setfield(L, -2, "status");
    push_headers(L, pg->headers ? pg->headers : "", pg->headers ? pg->headers_len : 0);
    lua_setfield(L, -2, "headers");
    lua_pushvalue(L, body);
    lua_setfield(L, -2, "body");
    lua_pushstring(L, pg->url);
    lua_setfield(L, -2, "url");
    lua_pushinteger(L, pg->page);
    lua_setfield(L, -2, "page");
    lua_pushvalue(L, records);
    lua_setfield(L, -2, "records");
    lua_pushvalue(L, ctx);
    if (call_hook(pg, "next", detail, cap) != 0) return "next_error";
    int t = lua_type(L, -1);
    /* JSON's null too: `return response.body.paging.next` ends on the last page. */
    if (t == LUA_TNIL || (t == LUA_TBOOLEAN && !lua_toboolean(L, -1)) ||
        (t == LUA_TLIGHTUSERDATA && !lua_touserdata(L, -1)))
        return NULL;
    if (t != LUA_TSTRING) {
        char b[48];
        snprintf(detail, cap,
                 "next() returned %s; it returns the next page's URL, or nil after the last page",
                 describe_type(L, -1, b));
        return "bad_next_url";
    }
    size_t len;
    const char *url = lua_tolstring(L, -1, &len);
    const char *why = check_next_url(pg, url, len, detail, cap);
    if (!why) pg->next_url = strdup(url);
    return why;
}

/* The hooks' path: decode, records(), next(), keep the array. */
static const char *read_hooks(lua_State *L, jn_page *pg, int *transient, char *detail, size_t cap) {
    char jerr[160];
    if (jn_json_decode(L, pg->body, pg->body_len, jerr, sizeof jerr) != 0) {
        snprintf(detail, cap, "body of %zu bytes is not JSON (%s)", pg->body_len, jerr);
        *transient = 1;
        return "malformed_json";
    }
    int body = lua_gettop(L);
    jn_page_push_ctx(L, pg->source, pg->topic, pg->page);
    int ctx = lua_gettop(L);
    const char *why = find_records(L, pg, body, ctx, detail, cap);
    if (why) return why;
    int records = lua_gettop(L);
    if (pg->has_next && (why = find_next(L, pg, body, records, ctx, detail, cap))) return why;
    pg->nrecords = lua_rawlen(L, records);
    lua_pushvalue(L, records);
    pg->records_ref = luaL_ref(L, LUA_REGISTRYINDEX);
    return NULL;
}

const char *jn_page_read(lua_State *L, jn_page *pg, int *transient, char *detail, size_t cap) {
    *transient = 0;
    pg->spans = NULL;
    pg->records_ref = LUA_NOREF;
    pg->nrecords = 0;
    pg->next_url = NULL;
    if (!pg->has_records && !pg->has_next) return read_spans(pg, transient, detail, cap);
    int top = lua_gettop(L);
    const char *why = read_hooks(L, pg, transient, detail, cap);
    lua_settop(L, top);
    if (why) jn_page_release(L, pg);
    return why;
}

void jn_page_release(lua_State *L, jn_page *pg) {
    free(pg->spans);
    pg->spans = NULL;
    luaL_unref(L, LUA_REGISTRYINDEX, pg->records_ref);
    pg->records_ref = LUA_NOREF;
    free(pg->next_url);
    pg->next_url = NULL;
    pg->nrecords = 0;
}
