/* HTTP client on the libuv loop: libcurl's multi interface driven by uv_poll and
 * uv_timer (CURLMOPT_SOCKETFUNCTION / CURLMOPT_TIMERFUNCTION), so many requests are in
 * flight at once and none blocks the loop. One client per loop. */
#ifndef JN_HTTP_CLIENT_H
#define JN_HTTP_CLIENT_H

#include <stddef.h>
#include <uv.h>

#include "buf.h"

typedef struct jn_http_client jn_http_client;

/* Valid only during the callback. Any HTTP status is a response (curl_code 0), 404 and
 * 503 included; curl_code != 0 means no whole response arrived. */
typedef struct {
    int curl_code;          /* CURLcode; 0 when a response arrived */
    const char *curl_error; /* human text when curl_code != 0, else "" */
    long status;            /* HTTP status; 0 whenever curl_code != 0 */
    jn_sb body;             /* response body, always NUL-terminated (data never NULL); the
                               callback may steal it (jn_sb_steal), else it is freed */
    char etag[128];         /* ETag header as sent (quotes included), or "" (also when it
                               is longer than this field) */
    long retry_after_s;     /* Retry-After in seconds (delta-seconds, or an HTTP-date
                               counted from now), or -1 when absent or unreadable */
    const char *headers;    /* with keep_headers: the response's header fields in the order
                               received, each "name\0value\0" with the name lower-cased and
                               the value trimmed; headers_len bytes in all. Else NULL */
    size_t headers_len;
    double total_s; /* time the transfer took */
} jn_http_result;

/* Runs once per request that jn_http_client_request accepted, on the loop, after the
 * transfer finished, failed or was aborted; never from inside jn_http_client_request.
 * It may start new requests and may call jn_http_client_close. */
typedef void (*jn_http_done_cb)(void *ud, jn_http_result *res);

typedef struct {
    const char *method; /* "GET", "POST", ...; NULL means GET */
    const char *url;    /* http:// or https:// only; other schemes fail in the callback */
    const char *body;   /* copied; may be NULL. POST, PUT and PATCH always send one
                           (Content-Length: 0 when NULL). curl's default Content-Type for
                           a body is application/x-www-form-urlencoded: name yours */
    size_t body_len;
    const char *const *headers; /* NULL-terminated "Name: value" lines, copied; may be NULL */
    long timeout_ms;            /* whole transfer, including time queued for a connection
                                   to the host; 0 = no limit */
    long connect_timeout_ms;    /* 0 = curl's default (300 s) */
    const char *ca_file;        /* PEM file of the CAs to trust; NULL: the system's */
    const char *cert_file;      /* PEM client certificate; NULL: none */
    const char *key_file;       /* PEM key of cert_file; NULL: in cert_file, if needed */
    int insecure;               /* 1: do not check the server's certificate and name */
    int keep_headers;           /* 1: hand the response's header fields to the callback */
} jn_http_request_opts;

/* Whether url is an absolute http:// or https:// URL (parsed by curl's URL parser, as a
 * request would be) with the same scheme, host and port as base: a page's next URL must
 * be, so the credentials in a source's headers go only where the config sends them. */
int jn_http_same_origin(const char *base, const char *url);

/* NULL when curl cannot be initialised (nothing is left registered then); every caller
 * checks. */
jn_http_client *jn_http_client_new(uv_loop_t *loop);
/* Starts a request. Returns 0, or -1 when it could not even be started (cb not called):
 * no URL, an option curl refused, or the client is closing. */
int jn_http_client_request(jn_http_client *c, const jn_http_request_opts *o, jn_http_done_cb cb,
                           void *ud);
/* Requests started and not finished yet (a request no longer counts in its callback). */
int jn_http_client_inflight(const jn_http_client *c);
/* Aborts what is in flight: their callbacks run before close returns, with curl_code
 * CURLE_ABORTED_BY_CALLBACK and status 0, and requests they try to start are refused.
 * Then every handle is closed; done(arg) (done may be NULL) runs later from the loop,
 * once all are closed and the client is freed. A second call does nothing; c must not
 * be used after close has returned. */
void jn_http_client_close(jn_http_client *c, void (*done)(void *), void *arg);

#endif
