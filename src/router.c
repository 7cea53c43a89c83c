/* Route matching. */
#include "router.h"

#include <http_parser.h>
#include <stdlib.h>
#include <string.h>

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int decode(const char *s, size_t len, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        char c = s[i];
        if (c == '%') {
            if (i + 2 >= len) return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0) return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (c == '\0' || o + 1 >= cap) return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* Matches one pattern; on a :param segment copies the decoded value. */
static int match_one(const char *pat, const char *path, size_t len, jn_route_match *m) {
    size_t i = 0;
    while (*pat) {
        if (*pat == ':') {
            size_t start = i;
            while (i < len && path[i] != '/')
                i++;
            if (i == start) return 0;
            if (decode(path + start, i - start, m->param, sizeof m->param) != 0) return 0;
            while (*pat && *pat != '/')
                pat++;
            continue;
        }
        if (i >= len || path[i] != *pat) return 0;
        pat++;
        i++;
    }
    return i == len;
}

int jn_router_match(const jn_route *routes, size_t n, int method, const char *path, size_t len,
                    jn_route_match *m) {
    if (len > 1 && path[len - 1] == '/') len--;
    unsigned allowed = 0;
    for (size_t r = 0; r < n; r++) {
        if (!match_one(routes[r].pattern, path, len, m)) continue;
        if (routes[r].methods & JN_METHOD(method)) return (int)r;
        allowed |= routes[r].methods;
    }
    if (!allowed) return JN_ROUTE_NOT_FOUND;
    /* The server answers HEAD on every GET route (http_server.c), so Allow says so. */
    if (allowed & JN_METHOD(HTTP_GET)) allowed |= JN_METHOD(HTTP_HEAD);
    m->allow[0] = '\0';
    for (int k = 0; k < 32; k++) {
        if (!(allowed & (1u << k))) continue;
        const char *name = http_method_str((enum http_method)k);
        if (strlen(m->allow) + strlen(name) + 3 >= sizeof m->allow) break;
        if (m->allow[0]) strcat(m->allow, ", ");
        strcat(m->allow, name);
    }
    return JN_ROUTE_BAD_METHOD;
}

const char *jn_query_get(const char *query, size_t len, const char *name, size_t *vlen) {
    size_t nl = strlen(name);
    size_t i = 0;
    while (query && i < len) {
        size_t end = i;
        while (end < len && query[end] != '&')
            end++;
        if (end - i > nl && !strncmp(query + i, name, nl) && query[i + nl] == '=') {
            *vlen = end - i - nl - 1;
            return query + i + nl + 1;
        }
        i = end + 1;
    }
    return NULL;
}

int jn_query_uint(const char *query, size_t len, const char *name, long *out) {
    size_t vl;
    const char *v = jn_query_get(query, len, name, &vl);
    if (!v) return 0;
    if (vl == 0 || vl > 12) return -1;
    long x = 0;
    for (size_t k = 0; k < vl; k++) {
        if (v[k] < '0' || v[k] > '9') return -1;
        x = x * 10 + (v[k] - '0');
    }
    *out = x;
    return 1;
}

int jn_router_valid_path(const char *s, size_t max) {
    size_t len = strlen(s);
    if (len == 0 || len > max || s[len - 1] == '/') return 0;
    const char *seg = s;
    for (const char *c = s;; c++) {
        if (*c == '/' || !*c) {
            size_t n = (size_t)(c - seg);
            if (n == 0 || strspn(seg, ".") >= n) return 0;
            if (!*c) return 1;
            seg = c + 1;
        } else if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                     (*c >= '0' && *c <= '9') || strchr("-._~", *c))) {
            return 0;
        }
    }
}
