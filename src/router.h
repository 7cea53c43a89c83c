/* Route matching for the small, fixed route tables of junction's servers, and query
 * string helpers. Pure functions: no allocation, tested directly. */
#ifndef JN_ROUTER_H
#define JN_ROUTER_H

#include <stddef.h>

#define JN_ROUTE_NOT_FOUND  (-1)
#define JN_ROUTE_BAD_METHOD (-2)
#define JN_METHOD(m)        (1u << (m)) /* m is an enum http_method */

typedef struct {
    const char *pattern; /* "/customers" or "/customers/:id"; one :param at most */
    unsigned methods;    /* JN_METHOD(HTTP_GET) | ... */
} jn_route;

typedef struct {
    char param[256]; /* the :param segment, percent-decoded */
    char allow[80];  /* for JN_ROUTE_BAD_METHOD: the Allow header value */
} jn_route_match;

/* Returns the index of the matching route, JN_ROUTE_NOT_FOUND, or JN_ROUTE_BAD_METHOD
 * when the path exists for other methods (m->allow then lists them, with HEAD wherever
 * GET is allowed). A trailing slash is ignored. */
int jn_router_match(const jn_route *routes, size_t n, int method, const char *path, size_t len,
                    jn_route_match *m);

/* Looks up name in a query string. Returns 1 and sets *out for a non-negative integer,
 * 0 when the name is absent, -1 when present but not such an integer. */
int jn_query_uint(const char *query, size_t len, const char *name, long *out);
/* The raw (not percent-decoded) value of name's first occurrence in a query string, its
 * length in *vlen; NULL when name is absent or has no '='. */
const char *jn_query_get(const char *query, size_t len, const char *name, size_t *vlen);

/* Whether s can be the fixed part of a route, /<s> and /<s>/:id: segments of letters,
 * digits and -._~ joined by single slashes, none only dots (a client would resolve it
 * away), at most max characters. */
int jn_router_valid_path(const char *s, size_t max);

#endif
