/* HTTP client for the loop: libcurl's multi interface with libuv doing the waiting.
 * curl tells us which sockets to watch (socket callback -> one uv_poll_t per socket)
 * and when it next needs a tick (timer callback -> one uv_timer_t); libuv tells curl
 * when a socket is ready or the timer fired (curl_multi_socket_action), and after
 * each such call finished transfers are collected and their callbacks run.
 * Keep-alive connections are pooled by the multi handle, so repeated requests to the
 * same host reuse sockets; beyond MAX_HOST_CONNECTIONS per host they queue in curl. */
#include "http_client.h"

#include <curl/curl.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "log.h"

#define LOG_NAME "http-client"
/* Enough parallelism for one upstream without opening a connection per request. */
#define MAX_HOST_CONNECTIONS 16

/* One watched socket. Its memory outlives CURL_POLL_REMOVE until libuv has finished
 * closing the poll handle, which is why it is freed only in the close callback. */
typedef struct sock {
    uv_poll_t poll;
    jn_http_client *c;
    curl_socket_t fd;
    struct sock *prev, *next; /* open sockets, so close can reach the ones curl forgot */
} sock;

typedef struct req {
    struct req *prev, *next;
    jn_http_client *c;
    CURL *easy;
    struct curl_slist *headers;
    jn_http_done_cb cb;
    void *ud;
    uint64_t started_ns;
    jn_sb body;
    char etag[128];
    long retry_after_s;
    int keep_headers;
    jn_sb fields; /* the response's "name\0value\0" header fields, with keep_headers */
    char errbuf[CURL_ERROR_SIZE];
} req;

struct jn_http_client {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    req *reqs; /* in flight */
    int inflight;
    sock *socks;
    int open_handles; /* uv handles whose close callback has not run yet */
    int closing;
    void (*done)(void *);
    void *done_arg;
};

/* ---- closing ------------------------------------------------------------------------ */

static void on_handle_closed(uv_handle_t *h);

/* Frees the client once the last of its handles is closed; the loop may then end. */
static void handle_gone(jn_http_client *c) {
    if (--c->open_handles > 0 || !c->closing) return;
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done) done(arg);
}

static void on_sock_closed(uv_handle_t *h) {
    sock *s = h->data;
    jn_http_client *c = s->c;
    free(s);
    handle_gone(c);
}

static void on_handle_closed(uv_handle_t *h) {
    handle_gone(h->data);
}

/* Stops watching a socket. Called before curl closes the descriptor (CURL_POLL_REMOVE),
 * so the poll handle leaves epoll while the descriptor is still valid and a new socket
 * that gets the same number can be watched at once. */
static void sock_close(sock *s) {
    jn_http_client *c = s->c;
    if (s->prev)
        s->prev->next = s->next;
    else
        c->socks = s->next;
    if (s->next) s->next->prev = s->prev;
    s->prev = s->next = NULL;
    uv_close((uv_handle_t *)&s->poll, on_sock_closed);
}

/* ---- finished transfers ------------------------------------------------------------- */

/* Takes r out of the client, runs its callback and frees it: the only place a request
 * ends, whether curl finished it or close aborted it. */
static void req_finish(req *r, CURLcode code) {
    jn_http_client *c = r->c;
    if (r->prev)
        r->prev->next = r->next;
    else
        c->reqs = r->next;
    if (r->next) r->next->prev = r->prev;
    c->inflight--;

    jn_http_result res = {0};
    res.curl_code = (int)code;
    res.retry_after_s = -1;
    if (code == CURLE_OK) {
        long status = 0;
        double total = 0;
        curl_easy_getinfo(r->easy, CURLINFO_RESPONSE_CODE, &status);
        curl_easy_getinfo(r->easy, CURLINFO_TOTAL_TIME, &total);
        res.status = status;
        res.total_s = total;
        res.curl_error = "";
        memcpy(res.etag, r->etag, sizeof res.etag);
        res.retry_after_s = r->retry_after_s;
        if (r->keep_headers) {
            res.headers = r->fields.data ? r->fields.data : "";
            res.headers_len = r->fields.len;
        }
    } else {
        /* A status line may have arrived before the failure, but the answer is not whole:
         * status stays 0 so that "status == 200" always means a complete response. */
        res.total_s = (double)(uv_hrtime() - r->started_ns) / 1e9;
        if (code == CURLE_ABORTED_BY_CALLBACK && !r->errbuf[0])
            res.curl_error = "aborted: the HTTP client was closed";
        else
            res.curl_error = r->errbuf[0] ? r->errbuf : curl_easy_strerror(code);
    }
    if (c->multi) curl_multi_remove_handle(c->multi, r->easy);

    /* Callers may treat the body as a C string, also when it is empty. */
    if (!r->body.data) jn_sb_append(&r->body, "", 0);
    res.body = r->body;
    jn_sb_init(&r->body);

    /* The callback may start requests or close the client: nothing of r is in any list
     * any more, and the caller holds no iterator. */
    if (r->cb) r->cb(r->ud, &res);

    jn_sb_free(&res.body); /* what the callback did not take */
    jn_sb_free(&r->fields);
    curl_easy_cleanup(r->easy);
    curl_slist_free_all(r->headers);
    free(r);
}

/* Collects every finished transfer. The message is copied before the callback runs,
 * because removing the easy handle invalidates it. */
static void drain(jn_http_client *c) {
    CURLMsg *m;
    int left;
    while (!c->closing && (m = curl_multi_info_read(c->multi, &left))) {
        if (m->msg != CURLMSG_DONE) continue;
        CURLcode code = m->data.result;
        char *priv = NULL;
        curl_easy_getinfo(m->easy_handle, CURLINFO_PRIVATE, &priv);
        if (priv) req_finish((req *)priv, code);
    }
}

static void socket_action(jn_http_client *c, curl_socket_t fd, int flags) {
    int running;
    CURLMcode rc = curl_multi_socket_action(c->multi, fd, flags, &running);
    if (rc != CURLM_OK)
        jn_log_warn(LOG_NAME, "curl_multi_socket_action: %s", curl_multi_strerror(rc));
    drain(c);
}

/* ---- libuv -> curl ------------------------------------------------------------------ */

static void on_poll(uv_poll_t *p, int status, int events) {
    sock *s = p->data;
    jn_http_client *c = s->c;
    int flags = 0;
    if (status < 0) flags = CURL_CSELECT_ERR;
    if (events & UV_READABLE) flags |= CURL_CSELECT_IN;
    if (events & UV_WRITABLE) flags |= CURL_CSELECT_OUT;
    /* s may be closed inside socket_action (CURL_POLL_REMOVE): do not touch it after. */
    socket_action(c, s->fd, flags);
}

static void on_timer(uv_timer_t *t) {
    socket_action(t->data, CURL_SOCKET_TIMEOUT, 0);
}

/* ---- curl -> libuv ------------------------------------------------------------------ */

/* CURLMOPT_SOCKETFUNCTION: watch fd for what curl wants, or stop watching it. curl may
 * call this several times for one socket (IN, then INOUT, ...): the context assigned
 * the first time is reused. */
static int on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp) {
    (void)easy;
    jn_http_client *c = userp;
    sock *s = socketp;
    if (what == CURL_POLL_REMOVE) {
        if (s) {
            /* Not during curl_multi_cleanup (multi NULL): its socket table is going away. */
            if (c->multi) curl_multi_assign(c->multi, fd, NULL);
            sock_close(s);
        }
        return 0;
    }
    if (!c->multi) return -1; /* cleanup under way: nothing new is watched */
    /* -1 makes curl fail every transfer in progress: drastic, but better than a socket
     * nobody watches, whose transfer would hang until its timeout (or forever). */
    if (!s) {
        s = calloc(1, sizeof *s);
        if (!s) return -1;
        if (uv_poll_init_socket(c->loop, &s->poll, fd) != 0) {
            free(s); /* never became a handle: nothing to close */
            return -1;
        }
        s->c = c;
        s->fd = fd;
        s->poll.data = s;
        s->next = c->socks;
        if (c->socks) c->socks->prev = s;
        c->socks = s;
        c->open_handles++;
        curl_multi_assign(c->multi, fd, s);
    }
    int events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= UV_READABLE;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= UV_WRITABLE;
    if (!events) return uv_poll_stop(&s->poll) == 0 ? 0 : -1;
    return uv_poll_start(&s->poll, events, on_poll) == 0 ? 0 : -1;
}

/* CURLMOPT_TIMERFUNCTION. curl calls this from inside its own functions, where calling
 * back into curl_multi_socket_action is not allowed, so even "now" (0) goes through
 * the loop as a 0 ms timer. */
static int on_curl_timer(CURLM *multi, long timeout_ms, void *userp) {
    (void)multi;
    jn_http_client *c = userp;
    if (c->closing) return 0; /* the timer is closed or about to be */
    if (timeout_ms < 0)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer, (uint64_t)timeout_ms, 0);
    return 0;
}

/* ---- transfer callbacks ------------------------------------------------------------- */

static size_t on_body(char *ptr, size_t size, size_t nmemb, void *userp) {
    req *r = userp;
    jn_sb_append(&r->body, ptr, size * nmemb);
    return size * nmemb;
}

/* Retry-After is either delta-seconds or an HTTP-date (RFC 9110 10.2.3). */
static long parse_retry_after(const char *v) {
    if (*v >= '0' && *v <= '9') {
        char *end;
        errno = 0;
        long n = strtol(v, &end, 10);
        if (errno || *end) return -1;
        return n;
    }
    time_t t = curl_getdate(v, NULL);
    if (t == -1) return -1;
    time_t now = time(NULL);
    return t > now ? (long)(t - now) : 0;
}

/* Appends one field as "name\0value\0", the name lower-cased (names are case-insensitive,
 * RFC 9110 5.1). A value with a NUL in it is kept only up to it. */
static void keep_header(req *r, const char *name, size_t name_len, const char *v, size_t vlen) {
    for (size_t i = 0; i < name_len; i++) {
        char c = name[i];
        jn_sb_putc(&r->fields, c >= 'A' && c <= 'Z' ? (char)(c + 32) : c);
    }
    jn_sb_putc(&r->fields, '\0');
    jn_sb_append(&r->fields, v, strnlen(v, vlen));
    jn_sb_putc(&r->fields, '\0');
}

/* Header lines arrive one at a time, not NUL-terminated, with their CRLF. */
static size_t on_header(char *buf, size_t size, size_t nitems, void *userp) {
    req *r = userp;
    size_t len = size * nitems;
    if (len >= 5 && memcmp(buf, "HTTP/", 5) == 0) {
        /* A new response begins (after a 100 Continue, say): only the last one counts. */
        r->etag[0] = '\0';
        r->retry_after_s = -1;
        r->fields.len = 0;
        return len;
    }
    const char *colon = memchr(buf, ':', len);
    if (!colon) return len;
    size_t name_len = (size_t)(colon - buf);
    const char *v = colon + 1;
    const char *end = buf + len;
    while (v < end && (*v == ' ' || *v == '\t'))
        v++;
    while (end > v && (end[-1] == '\r' || end[-1] == '\n' || end[-1] == ' ' || end[-1] == '\t'))
        end--;
    size_t vlen = (size_t)(end - v);
    if (r->keep_headers) keep_header(r, buf, name_len, v, vlen);
    if (name_len == 4 && strncasecmp(buf, "ETag", 4) == 0) {
        /* A cut-off ETag would never match again: one too long is treated as absent. */
        if (vlen < sizeof r->etag) {
            memcpy(r->etag, v, vlen);
            r->etag[vlen] = '\0';
        } else {
            r->etag[0] = '\0';
        }
    } else if (name_len == 11 && strncasecmp(buf, "Retry-After", 11) == 0) {
        char tmp[64];
        if (vlen < sizeof tmp) {
            memcpy(tmp, v, vlen);
            tmp[vlen] = '\0';
            r->retry_after_s = parse_retry_after(tmp);
        } else {
            r->retry_after_s = -1;
        }
    }
    return len;
}

/* ---- public ------------------------------------------------------------------------- */

/* Scheme, host and port of url (port made explicit from the scheme), or -1. */
static int origin_of(const char *url, char **scheme, char **host, char **port) {
    CURLU *u = curl_url();
    if (!u) return -1;
    *scheme = *host = *port = NULL;
    int ok = curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_SCHEME, scheme, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_HOST, host, 0) == CURLUE_OK &&
             curl_url_get(u, CURLUPART_PORT, port, CURLU_DEFAULT_PORT) == CURLUE_OK &&
             (!strcmp(*scheme, "http") || !strcmp(*scheme, "https"));
    curl_url_cleanup(u);
    return ok ? 0 : -1;
}

int jn_http_same_origin(const char *base, const char *url) {
    char *p[6] = {0};
    /* curl_url_set without CURLU_NON_SUPPORT_SCHEME refuses what curl cannot fetch, and
     * with no default scheme a relative reference is refused too. */
    int same = origin_of(base, &p[0], &p[1], &p[2]) == 0 &&
               origin_of(url, &p[3], &p[4], &p[5]) == 0 && !strcmp(p[0], p[3]) &&
               !strcasecmp(p[1], p[4]) && !strcmp(p[2], p[5]);
    for (int i = 0; i < 6; i++)
        curl_free(p[i]);
    return same;
}

jn_http_client *jn_http_client_new(uv_loop_t *loop) {
    /* Not thread-safe, and needs no lock: there is one loop thread. */
    static int curl_ready;
    if (!curl_ready) {
        if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return NULL;
        curl_ready = 1;
    }
    jn_http_client *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->multi = curl_multi_init();
    if (!c->multi) {
        free(c);
        return NULL;
    }
    c->loop = loop;
    uv_timer_init(loop, &c->timer);
    c->timer.data = c;
    c->open_handles = 1;
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETFUNCTION, on_curl_socket);
    curl_multi_setopt(c->multi, CURLMOPT_SOCKETDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERFUNCTION, on_curl_timer);
    curl_multi_setopt(c->multi, CURLMOPT_TIMERDATA, c);
    curl_multi_setopt(c->multi, CURLMOPT_MAX_HOST_CONNECTIONS, (long)MAX_HOST_CONNECTIONS);
    return c;
}

int jn_http_client_inflight(const jn_http_client *c) {
    return c->inflight;
}

static int has_header(const char *const *headers, const char *name) {
    size_t n = strlen(name);
    for (; headers && *headers; headers++)
        if (strncasecmp(*headers, name, n) == 0 && (*headers)[n] == ':') return 1;
    return 0;
}

/* Fills the easy handle; returns 0 or -1 when an option was refused. */
static int setup_easy(req *r, const jn_http_request_opts *o) {
    CURL *e = r->easy;
    const char *method = o->method ? o->method : "GET";
    int ok = 1;
#define SET(opt, val) ok &= curl_easy_setopt(e, opt, val) == CURLE_OK
    SET(CURLOPT_URL, o->url);
    SET(CURLOPT_PRIVATE, (void *)r);
    SET(CURLOPT_NOSIGNAL, 1L); /* no SIGALRM-based DNS timeouts on the loop thread */
    SET(CURLOPT_PROTOCOLS_STR, "http,https");
    SET(CURLOPT_ERRORBUFFER, r->errbuf);
    SET(CURLOPT_WRITEFUNCTION, on_body);
    SET(CURLOPT_WRITEDATA, (void *)r);
    SET(CURLOPT_HEADERFUNCTION, on_header);
    SET(CURLOPT_HEADERDATA, (void *)r);
    SET(CURLOPT_TIMEOUT_MS, o->timeout_ms);
    SET(CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    /* TLS: the system's trust store unless a CA file is named; the peer and its name
     * are checked unless the caller was told not to (curl's defaults, said here). */
    if (o->ca_file) SET(CURLOPT_CAINFO, o->ca_file);
    if (o->cert_file) SET(CURLOPT_SSLCERT, o->cert_file);
    if (o->key_file) SET(CURLOPT_SSLKEY, o->key_file);
    SET(CURLOPT_SSL_VERIFYPEER, o->insecure ? 0L : 1L);
    SET(CURLOPT_SSL_VERIFYHOST, o->insecure ? 0L : 2L);

    int is_post = strcmp(method, "POST") == 0;
    int with_body =
        o->body || is_post || strcmp(method, "PUT") == 0 || strcmp(method, "PATCH") == 0;
    if (strcmp(method, "HEAD") == 0) {
        /* CUSTOMREQUEST "HEAD" would make curl wait for a body that never comes. */
        SET(CURLOPT_NOBODY, 1L);
    } else {
        if (with_body) {
            /* Size first: COPYPOSTFIELDS copies exactly that many bytes, NULs included.
             * A body-carrying method without one still sends Content-Length: 0. */
            SET(CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(o->body ? o->body_len : 0));
            SET(CURLOPT_COPYPOSTFIELDS, o->body ? o->body : "");
        }
        /* Post fields alone make curl send POST: any other method that carries a body
         * (even GET) is named explicitly. */
        if (!is_post && (with_body || strcmp(method, "GET") != 0))
            SET(CURLOPT_CUSTOMREQUEST, method);
    }

    struct curl_slist *h = NULL;
    for (const char *const *p = o->headers; p && *p; p++) {
        struct curl_slist *n = curl_slist_append(h, *p);
        if (!n) {
            ok = 0;
            break;
        }
        h = n;
    }
    if (ok && with_body && !has_header(o->headers, "Expect")) {
        /* curl would otherwise send "Expect: 100-continue" for large bodies (over 1 MiB
         * in 7.88) and hold the body back until the server answers or a second passes. */
        struct curl_slist *n = curl_slist_append(h, "Expect:");
        if (n)
            h = n;
        else
            ok = 0;
    }
    r->headers = h;
    if (h) SET(CURLOPT_HTTPHEADER, h);
#undef SET
    return ok ? 0 : -1;
}

int jn_http_client_request(jn_http_client *c, const jn_http_request_opts *o, jn_http_done_cb cb,
                           void *ud) {
    if (c->closing || !o || !o->url) return -1;
    req *r = calloc(1, sizeof *r);
    if (!r) return -1;
    r->c = c;
    r->cb = cb;
    r->ud = ud;
    r->retry_after_s = -1;
    r->keep_headers = o->keep_headers;
    jn_sb_init(&r->fields);
    r->started_ns = uv_hrtime();
    jn_sb_init(&r->body);
    r->easy = curl_easy_init();
    if (!r->easy || setup_easy(r, o) != 0 || curl_multi_add_handle(c->multi, r->easy) != CURLM_OK) {
        if (r->easy) curl_easy_cleanup(r->easy);
        curl_slist_free_all(r->headers);
        free(r);
        return -1;
    }
    /* The transfer starts from the 0 ms timer curl just asked for, never from here, so
     * the callback cannot run before this function has returned. */
    r->next = c->reqs;
    if (c->reqs) c->reqs->prev = r;
    c->reqs = r;
    c->inflight++;
    return 0;
}

void jn_http_client_close(jn_http_client *c, void (*done)(void *), void *arg) {
    if (c->closing) return;
    c->closing = 1;
    c->done = done;
    c->done_arg = arg;
    /* Take the head each time: a callback may have ended other requests meanwhile
     * (it cannot add any, closing refuses them). */
    while (c->reqs)
        req_finish(c->reqs, CURLE_ABORTED_BY_CALLBACK);
    /* Cleanup closes the pooled connections; it may or may not report them through the
     * socket callback first, so whatever is still watched is closed below. */
    CURLM *multi = c->multi;
    c->multi = NULL;
    curl_multi_cleanup(multi);
    while (c->socks)
        sock_close(c->socks);
    uv_close((uv_handle_t *)&c->timer, on_handle_closed);
}
