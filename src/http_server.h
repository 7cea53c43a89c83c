/* HTTP/1.1 server on libuv: keep-alive, pipelining (answers leave in request order even
 * when one is delayed), size limits, request and idle timeouts, graceful stop.
 * Handlers are synchronous and fill a response; the server owns the socket work. */
#ifndef JN_HTTP_SERVER_H
#define JN_HTTP_SERVER_H

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "http_parse.h"
#include "router.h"

typedef struct jn_http_server jn_http_server;

typedef struct {
    int status;
    const char *content_type; /* default application/json */
    jn_rbuf *body;            /* a reference the server releases */
    char etag[72];            /* quoted, or empty */
    char headers[512];        /* extra header lines, each ending in \r\n */
    const char *route;        /* metrics label: a static string such as "/customers/:id" */
    int delay_ms;             /* hold the answer back (fault injection) */
    int close;                /* close the connection after this answer */
    int drop;                 /* close the connection without answering (fault injection) */
    int head;                 /* set by the server: a HEAD request, answered without body */
} jn_http_response;

typedef void (*jn_http_handler)(void *ud, const jn_http_request *req, jn_http_response *res);

typedef struct {
    const char *name; /* an API's name, or "admin": metrics and log label */
    jn_addr listen;
    size_t max_body;
    int request_timeout_ms;
    int keepalive_timeout_ms;
    int max_connections;
    const char *extra_header; /* a header of the handler's own to keep (jn_http_request's
                               * extra; http_parse.h), or NULL; must outlive the server */
} jn_http_server_opts;

/* Binds and listens. Returns NULL and sets *err (malloc'd) on failure, e.g. a port in use. */
jn_http_server *jn_http_server_start(uv_loop_t *loop, const jn_http_server_opts *opts,
                                     jn_http_handler handler, void *ud, char **err);
/* Stops accepting, lets in-flight requests finish, then closes; done runs once. */
void jn_http_server_stop(jn_http_server *s, void (*done)(void *arg), void *arg);
int jn_http_server_port(const jn_http_server *s);

/* A server's routes, and what its 404 tells a client it serves. */
typedef struct {
    const jn_route *routes;
    size_t n;
    const char *serves; /* "this API serves /customers and /customers/:id" */
    int options;        /* OPTIONS on a route answers 204 with Allow and no CORS header (a page
                         * elsewhere gets nothing); without it OPTIONS is a 405 like any
                         * method the route does not take */
} jn_http_routes;

/* Matches req against t: returns the index of its route (res->route is then its pattern,
 * m->param its :param), or -1 with res answered: 404 naming the path and t->serves, 405
 * with Allow, or 204 to OPTIONS. What every server of junction answers alike. */
int jn_http_route(const jn_http_routes *t, const jn_http_request *req, jn_http_response *res,
                  jn_route_match *m);

/* ?limit=L&offset=O of a GET that lists records: *limit (-1 when not given) and *offset
 * (0 when not given). Returns 1 when either is given, 0 when neither is, or -1 with res
 * answered (400) when one is not a non-negative integer. */
int jn_http_limit_offset(const jn_http_request *req, jn_http_response *res, long *limit,
                         long *offset);

/* Fills res with a JSON error body {"error": msg}. */
void jn_http_respond_error(jn_http_response *res, int status, const char *msg);
/* Fills res with a body copied from data. */
void jn_http_respond(jn_http_response *res, int status, const char *data, size_t len);
const char *jn_http_status_text(int status);

#endif
