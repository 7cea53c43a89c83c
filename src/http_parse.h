/* Incremental HTTP/1.1 request reading on top of http-parser: bytes in, whole requests
 * out, with the size limits a server needs. Knows nothing of sockets, so it is tested
 * by feeding it bytes. A request's head (request line and header fields) is gathered
 * whole before http-parser sees it, so the answer to a request cannot depend on where
 * the network split it. It keeps the headers HTTP itself needs, and one more a caller
 * names (jn_http_reader_keep): what a service does with its own headers is its own. */
#ifndef JN_HTTP_PARSE_H
#define JN_HTTP_PARSE_H

#include <http_parser.h>
#include <stddef.h>

#include "buf.h"

typedef struct {
    int method; /* enum http_method */
    const char *method_name;
    const char *path;
    size_t path_len;
    const char *query; /* without '?', or NULL */
    size_t query_len;
    const char *body;
    size_t body_len;
    const char *if_none_match; /* or NULL */
    const char *content_type;  /* or NULL */
    const char *authorization; /* or NULL; at most 511 bytes are kept */
    const char *origin;        /* or NULL; at most 255 bytes are kept */
    const char *host;          /* or NULL; at most 255 bytes are kept */
    const char *extra;         /* the header the reader was asked to keep, or NULL; at most 255
                                * bytes are kept */
    int keep_alive;
} jn_http_request;

typedef struct jn_http_reader jn_http_reader;
/* Called once per complete request; the request's memory is valid only during the call. */
typedef void (*jn_http_request_cb)(jn_http_reader *r, const jn_http_request *req);

struct jn_http_reader {
    http_parser parser;
    jn_sb url, body, field;
    jn_sb head;     /* the head being gathered, up to its blank line */
    jn_sb spare[2]; /* what is left of a read when http-parser ended a head early */
    int scan;       /* how much of a blank line the gathered bytes end with (0-2) */
    int in_body;    /* http-parser has a head and reads the body from the reads */
    char if_none_match[256];
    char content_type[128];
    char authorization[512];
    char origin[256];
    char host[256];
    char te[128];
    const char *extra_name; /* jn_http_reader_keep's, or NULL */
    char extra[256];
    int has_inm, has_ct, has_auth, has_origin, has_host, has_te, has_extra;
    int nhost;     /* Host fields seen: exactly one in HTTP/1.1 */
    int crlf_left; /* bytes of the CRLF after a chunk's data not checked yet */
    const char *feed_end;
    /* a field name or which header's value is being read (http_parse.c's H_*) */
    int collecting;
    int expect_continue;
    int in_message;
    size_t max_body, max_url;
    int error_status; /* set when the stream must be answered with an error and closed */
    const char *error_msg;
    jn_http_request_cb on_request;
    void (*on_continue)(jn_http_reader *r); /* client sent Expect: 100-continue */
    void *data;
};

void jn_http_reader_init(jn_http_reader *r, size_t max_body, size_t max_url,
                         jn_http_request_cb on_request, void *data);
void jn_http_reader_free(jn_http_reader *r);
/* Keeps the value of the header called name (any case) as each request's extra: a header
 * the server's caller acts on (the analytics receiver's Idempotency-Key). name must
 * outlive the reader. A header HTTP needs (Host, Content-Type, ...) is no extra. */
void jn_http_reader_keep(jn_http_reader *r, const char *name);
/* Feeds bytes. Returns 0, or an HTTP status (400, 413, 414, 431, 501) with
 * r->error_msg set: the caller answers with it and closes the connection. The result is
 * the status to answer, data for the HTTP layer, not an error code of error.h: a reader
 * has no failure of its own, only requests to refuse. */
int jn_http_reader_feed(jn_http_reader *r, const char *data, size_t len);
/* Sets the largest header block any reader accepts (http-parser keeps it global). */
void jn_http_reader_set_max_header(unsigned bytes);

#endif
