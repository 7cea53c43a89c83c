/* HTTP server. Each connection keeps a queue of answers in request order; an answer
 * leaves only when every earlier one has, which is what pipelining requires even when
 * fault injection delays one of them. */
#include "http_server.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include "log.h"
#include "metrics.h"

#define MAX_URL     8192
#define ROUTE_SLOTS 48

typedef struct conn conn;

typedef struct pending {
    struct pending *next;
    conn *c;
    uv_write_t wr;
    uv_timer_t *delay;
    int ready;
    int close_after;
    size_t hdr_len;
    jn_rbuf *body;
    char hdr[1024];
} pending;

enum { T_NONE, T_REQUEST, T_IDLE };

struct conn {
    uv_tcp_t tcp;
    uv_timer_t timer;
    jn_http_reader reader;
    jn_http_server *srv;
    pending *head, *tail;
    int writing;
    int timer_mode;
    int no_more_reads; /* an answer that closes the connection is queued */
    int closing;
    int open_handles;
    uint64_t started_ns;
    conn *prev, *next;
};

typedef struct {
    const char *route;
    int status;
    jn_metric *m;
} route_slot;

struct jn_http_server {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_timer_t grace;
    jn_http_server_opts opts;
    char name[32];
    jn_http_handler handler;
    void *ud;
    conn *conns;
    int nconns;
    int stopping;
    int listener_open, grace_open;
    void (*done)(void *);
    void *done_arg;
    route_slot slots[ROUTE_SLOTS];
    int nslots;
    jn_metric *m_latency, *m_conns, *m_rejected, *m_accept_errors;
    uint64_t accept_logged_ms; /* when accept failures were last logged (0: never) */
    long accept_errors;        /* failures since then */
};

/* ---- responses --------------------------------------------------------------------- */

const char *jn_http_status_text(int status) {
    switch (status) {
    case 100:
        return "Continue";
    case 200:
        return "OK";
    case 201:
        return "Created";
    case 204:
        return "No Content";
    case 304:
        return "Not Modified";
    case 400:
        return "Bad Request";
    case 401:
        return "Unauthorized";
    case 404:
        return "Not Found";
    case 405:
        return "Method Not Allowed";
    case 408:
        return "Request Timeout";
    case 409:
        return "Conflict";
    case 413:
        return "Payload Too Large";
    case 414:
        return "URI Too Long";
    case 415:
        return "Unsupported Media Type";
    case 422:
        return "Unprocessable Content";
    case 429:
        return "Too Many Requests";
    case 431:
        return "Request Header Fields Too Large";
    case 500:
        return "Internal Server Error";
    case 501:
        return "Not Implemented";
    case 502:
        return "Bad Gateway";
    case 503:
        return "Service Unavailable";
    case 504:
        return "Gateway Timeout";
    default:
        return status < 400 ? "OK" : status < 500 ? "Client Error" : "Server Error";
    }
}

void jn_http_respond(jn_http_response *res, int status, const char *data, size_t len) {
    res->status = status;
    jn_rbuf_unref(res->body);
    res->body = jn_rbuf_new(data, len);
}

void jn_http_respond_error(jn_http_response *res, int status, const char *msg) {
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_puts(&sb, "{\"error\":");
    jn_sb_json_string(&sb, msg, strlen(msg));
    jn_sb_puts(&sb, "}");
    res->status = status;
    res->content_type = "application/json";
    jn_rbuf_unref(res->body);
    res->body = jn_rbuf_from_sb(&sb);
}

int jn_http_route(const jn_http_routes *t, const jn_http_request *req, jn_http_response *res,
                  jn_route_match *m) {
    int r = jn_router_match(t->routes, t->n, req->method, req->path, req->path_len, m);
    if (r >= 0) {
        res->route = t->routes[r].pattern;
        return r;
    }
    if (r == JN_ROUTE_BAD_METHOD && req->method == HTTP_OPTIONS && t->options) {
        res->route = "options";
        res->status = 204;
        snprintf(res->headers, sizeof res->headers, "Allow: OPTIONS, %s\r\n", m->allow);
        return -1;
    }
    res->route = "unknown";
    jn_sb msg;
    jn_sb_init(&msg);
    if (r == JN_ROUTE_NOT_FOUND) {
        jn_sb_puts(&msg, "no route for ");
        jn_sb_echo(&msg, req->path, req->path_len, 100);
        jn_sb_printf(&msg, "; %s", t->serves);
        jn_http_respond_error(res, 404, msg.data);
    } else {
        jn_sb_printf(&msg, "method %s is not allowed here; use %s", req->method_name, m->allow);
        jn_http_respond_error(res, 405, msg.data);
        snprintf(res->headers, sizeof res->headers, "Allow: %s\r\n", m->allow);
    }
    jn_sb_free(&msg);
    return -1;
}

int jn_http_limit_offset(const jn_http_request *req, jn_http_response *res, long *limit,
                         long *offset) {
    *limit = -1;
    *offset = 0;
    int hl = jn_query_uint(req->query, req->query_len, "limit", limit);
    int ho = jn_query_uint(req->query, req->query_len, "offset", offset);
    if (hl < 0 || ho < 0) {
        jn_http_respond_error(res, 400, "limit and offset must be non-negative integers");
        return -1;
    }
    return hl || ho;
}

/* The Date header changes once a second; format it only then. */
static const char *http_date(void) {
    static char buf[64];
    static time_t last;
    time_t now = time(NULL);
    if (now != last) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(buf, sizeof buf, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        last = now;
    }
    return buf;
}

/* ---- connection life --------------------------------------------------------------- */

static void on_grace_closed(uv_handle_t *h);

/* Runs the stop callback and frees the server once nothing of it is left open. */
static void maybe_done(jn_http_server *s) {
    if (!s->stopping || s->nconns || s->listener_open) return;
    if (s->grace_open) {
        if (!uv_is_closing((uv_handle_t *)&s->grace))
            uv_close((uv_handle_t *)&s->grace, on_grace_closed);
        return;
    }
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s);
    if (done) done(arg);
}

static void on_conn_closed(uv_handle_t *h) {
    conn *c = h->data;
    if (--c->open_handles > 0) return;
    jn_http_server *s = c->srv;
    jn_http_reader_free(&c->reader);
    free(c);
    s->nconns--;
    jn_metric_set(s->m_conns, s->nconns);
    maybe_done(s);
}

static void on_delay_closed(uv_handle_t *h) {
    free(h);
}

static void free_pending(pending *p) {
    jn_rbuf_unref(p->body);
    if (p->delay) {
        p->delay->data = NULL;
        uv_close((uv_handle_t *)p->delay, on_delay_closed);
    }
    free(p);
}

static void conn_close(conn *c) {
    if (c->closing) return;
    c->closing = 1;
    jn_http_server *s = c->srv;
    if (c->prev)
        c->prev->next = c->next;
    else
        s->conns = c->next;
    if (c->next) c->next->prev = c->prev;
    for (pending *p = c->head, *n; p; p = n) {
        n = p->next;
        free_pending(p);
    }
    c->head = c->tail = NULL;
    uv_close((uv_handle_t *)&c->tcp, on_conn_closed);
    uv_close((uv_handle_t *)&c->timer, on_conn_closed);
}

static void on_timer(uv_timer_t *t);

static void set_timer(conn *c, int mode) {
    if (c->timer_mode == mode) return;
    c->timer_mode = mode;
    if (mode == T_NONE)
        uv_timer_stop(&c->timer);
    else
        uv_timer_start(&c->timer, on_timer,
                       (uint64_t)(mode == T_REQUEST ? c->srv->opts.request_timeout_ms
                                                    : c->srv->opts.keepalive_timeout_ms),
                       0);
}

static int conn_idle(const conn *c) {
    return !c->reader.in_message && !c->head && !c->writing;
}

/* ---- writing ----------------------------------------------------------------------- */

static void flush(conn *c);

static void on_write(uv_write_t *wr, int status) {
    pending *p = wr->data;
    conn *c = p->c;
    int close_after = p->close_after;
    free_pending(p);
    c->writing--;
    if (c->closing) return;
    if (status < 0 || (close_after && !c->writing)) {
        conn_close(c);
        return;
    }
    flush(c);
    if (conn_idle(c)) {
        if (c->srv->stopping || c->no_more_reads)
            conn_close(c);
        else
            set_timer(c, T_IDLE);
    }
}

static void flush(conn *c) {
    while (c->head && c->head->ready && !c->closing) {
        pending *p = c->head;
        c->head = p->next;
        if (!c->head) c->tail = NULL;
        uv_buf_t bufs[2] = {
            uv_buf_init(p->hdr, (unsigned)p->hdr_len),
            uv_buf_init(p->body ? p->body->data : NULL, p->body ? (unsigned)p->body->len : 0)};
        p->wr.data = p;
        int rc = uv_write(&p->wr, (uv_stream_t *)&c->tcp, bufs, bufs[1].len ? 2 : 1, on_write);
        if (rc < 0) {
            free_pending(p);
            conn_close(c);
            return;
        }
        c->writing++;
        if (p->close_after) {
            /* Nothing after a closing answer may be sent. */
            for (pending *q = c->head, *n; q; q = n) {
                n = q->next;
                free_pending(q);
            }
            c->head = c->tail = NULL;
            return;
        }
    }
}

static void on_delay(uv_timer_t *t) {
    pending *p = t->data;
    if (!p) return;
    p->ready = 1;
    flush(p->c);
}

static jn_metric *route_counter(jn_http_server *s, const char *route, int status) {
    for (int i = 0; i < s->nslots; i++)
        if (s->slots[i].route == route && s->slots[i].status == status) return s->slots[i].m;
    char labels[256];
    snprintf(labels, sizeof labels, "server=\"%s\",route=\"%s\",status=\"%d\"", s->name, route,
             status);
    jn_metric *m = jn_metrics_counter("junction_http_requests_total",
                                      "HTTP requests served, by server, route and status", labels);
    if (s->nslots < ROUTE_SLOTS) s->slots[s->nslots++] = (route_slot){route, status, m};
    return m;
}

/* Queues an answer behind the earlier ones of this connection. */
static void enqueue(conn *c, jn_http_response *res, int keep_alive) {
    jn_http_server *s = c->srv;
    pending *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->c = c;
    p->body = res->body;
    res->body = NULL;
    p->close_after = !keep_alive || res->close || s->stopping;
    if (p->close_after) c->no_more_reads = 1;
    size_t blen = p->body ? p->body->len : 0;
    int n = snprintf(p->hdr, sizeof p->hdr,
                     "HTTP/1.1 %d %s\r\nDate: %s\r\nServer: junction\r\n"
                     "Content-Type: %s\r\nContent-Length: %zu\r\n%s%s%s%s%s",
                     res->status, jn_http_status_text(res->status), http_date(),
                     res->content_type ? res->content_type : "application/json", blen,
                     res->etag[0] ? "ETag: " : "", res->etag, res->etag[0] ? "\r\n" : "",
                     res->headers, p->close_after ? "Connection: close\r\n\r\n" : "\r\n");
    p->hdr_len = (size_t)n < sizeof p->hdr ? (size_t)n : sizeof p->hdr - 1;
    if (res->status == 304 || res->status == 204 || res->head) {
        /* No body may follow these; Content-Length above still names the entity's size. */
        jn_rbuf_unref(p->body);
        p->body = NULL;
    }
    if (res->delay_ms > 0) {
        p->delay = malloc(sizeof *p->delay);
        if (!p->delay) abort();
        uv_timer_init(s->loop, p->delay);
        p->delay->data = p;
        uv_timer_start(p->delay, on_delay, (uint64_t)res->delay_ms, 0);
    } else {
        p->ready = 1;
    }
    if (c->tail)
        c->tail->next = p;
    else
        c->head = p;
    c->tail = p;
    jn_metric_add(route_counter(s, res->route ? res->route : "other", res->status), 1);
}

/* ---- reading ----------------------------------------------------------------------- */

static void on_request(jn_http_reader *r, const jn_http_request *req) {
    conn *c = r->data;
    jn_http_server *s = c->srv;
    if (c->no_more_reads) return; /* pipelined after a closing answer: dropped */
    jn_http_response res = {0};
    res.status = 200;
    /* HEAD is GET without the body (RFC 9110 §9.3.2): every GET route answers it, with
     * the headers and Content-Length the GET would have. Handlers only ever see GET. */
    jn_http_request get;
    int head = req->method == HTTP_HEAD;
    if (head) {
        get = *req;
        get.method = HTTP_GET;
        get.method_name = "GET";
        req = &get;
    }
    s->handler(s->ud, req, &res);
    res.head = head;
    jn_metric_observe(s->m_latency, (double)(uv_hrtime() - c->started_ns) / 1e9);
    if (res.drop) {
        /* Answers queued before this one still leave; then the connection closes. */
        jn_rbuf_unref(res.body);
        jn_metric_add(route_counter(s, res.route ? res.route : "other", 0), 1);
        c->no_more_reads = 1;
        uv_read_stop((uv_stream_t *)&c->tcp);
        if (!c->head && !c->writing)
            conn_close(c);
        else if (c->tail)
            c->tail->close_after = 1;
        return;
    }
    enqueue(c, &res, req->keep_alive);
}

static void on_continue(jn_http_reader *r) {
    conn *c = r->data;
    static char msg[] = "HTTP/1.1 100 Continue\r\n\r\n";
    uv_buf_t b = uv_buf_init(msg, sizeof msg - 1);
    /* Best effort: a client that gets no 100 sends the body after its own short wait. */
    uv_try_write((uv_stream_t *)&c->tcp, &b, 1);
}

static void reply_error_and_close(conn *c, int status, const char *msg) {
    jn_http_response res = {0};
    jn_http_respond_error(&res, status, msg);
    res.route = "invalid";
    res.close = 1;
    enqueue(c, &res, 0);
    uv_read_stop((uv_stream_t *)&c->tcp);
    flush(c);
}

static void on_timer(uv_timer_t *t) {
    conn *c = t->data;
    int mode = c->timer_mode;
    c->timer_mode = T_NONE;
    if (mode == T_REQUEST && c->reader.in_message) {
        char msg[160];
        snprintf(msg, sizeof msg, "request not completed within %d ms; send the whole request",
                 c->srv->opts.request_timeout_ms);
        jn_log_debug(c->srv->name, "closing a connection whose request stalled");
        reply_error_and_close(c, 408, msg);
    } else if (conn_idle(c)) {
        conn_close(c);
    }
}

static void alloc_cb(uv_handle_t *h, size_t suggested, uv_buf_t *buf) {
    (void)h;
    (void)suggested;
    /* One loop, one reader at a time: a single static buffer serves every socket,
     * because the parser copies what it keeps. */
    static char slab[65536];
    *buf = uv_buf_init(slab, sizeof slab);
}

static void on_read(uv_stream_t *st, ssize_t nread, const uv_buf_t *buf) {
    conn *c = st->data;
    if (nread == 0) return;
    if (nread < 0) {
        /* The peer is gone or half-closed: answers still queued cannot be read. */
        if (c->head || c->writing) {
            uv_read_stop(st);
            c->no_more_reads = 1;
            if (!c->head && !c->writing) conn_close(c);
        } else {
            conn_close(c);
        }
        return;
    }
    if (!c->reader.in_message) c->started_ns = uv_hrtime();
    int err = jn_http_reader_feed(&c->reader, buf->base, (size_t)nread);
    if (err) {
        jn_log_debug(c->srv->name, "bad request: %s", c->reader.error_msg);
        reply_error_and_close(c, err, c->reader.error_msg);
        return;
    }
    if (c->no_more_reads) uv_read_stop(st);
    if (c->reader.in_message)
        set_timer(c, T_REQUEST);
    else if (conn_idle(c))
        set_timer(c, T_IDLE);
    else
        set_timer(c, T_NONE);
    flush(c);
}

/* Connections are being refused for want of descriptors: counted, and logged once per
 * burst with what to do (a flood of refusals must not flood the log). libuv answers
 * EMFILE itself, accepting and closing what waits with a descriptor it keeps in reserve,
 * and tells nobody; so the sign watched for is an accepted connection whose descriptor
 * is within DESCRIPTOR_MARGIN of the limit (descriptors are handed out lowest first),
 * besides an accept that failed outright. */
#define DESCRIPTOR_MARGIN 8

static void accept_failed(jn_http_server *s, const char *why) {
    jn_metric_add(s->m_accept_errors, 1);
    uint64_t now = uv_now(s->loop);
    s->accept_errors++;
    if (s->accept_logged_ms && now - s->accept_logged_ms < 10000) return;
    jn_log_warn(s->name,
                "cannot accept connections: %s (%ld time(s) since the last report; the kernel "
                "drops what does not fit); raise the descriptor limit (ulimit -n, LimitNOFILE) "
                "or lower max_connections",
                why, s->accept_errors);
    s->accept_logged_ms = now ? now : 1;
    s->accept_errors = 0;
}

static void check_descriptors(jn_http_server *s, conn *c) {
    uv_os_fd_t fd;
    struct rlimit rl;
    if (uv_fileno((uv_handle_t *)&c->tcp, &fd) != 0 || getrlimit(RLIMIT_NOFILE, &rl) != 0 ||
        rl.rlim_cur == RLIM_INFINITY || (rlim_t)fd + DESCRIPTOR_MARGIN < rl.rlim_cur)
        return;
    char why[96];
    snprintf(why, sizeof why, "too many open files (descriptor %d of a limit of %llu)", fd,
             (unsigned long long)rl.rlim_cur);
    accept_failed(s, why);
}

static void on_connection(uv_stream_t *ls, int status) {
    jn_http_server *s = ls->data;
    if (status < 0) {
        accept_failed(s, uv_strerror(status));
        return;
    }
    conn *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->srv = s;
    uv_tcp_init(s->loop, &c->tcp);
    uv_timer_init(s->loop, &c->timer);
    c->tcp.data = c;
    c->timer.data = c;
    c->open_handles = 2;
    s->nconns++;
    jn_metric_set(s->m_conns, s->nconns);
    c->next = s->conns;
    if (s->conns) s->conns->prev = c;
    s->conns = c;
    int rc = uv_accept(ls, (uv_stream_t *)&c->tcp);
    if (rc < 0)
        accept_failed(s, uv_strerror(rc));
    else
        check_descriptors(s, c);
    if (rc < 0 || s->stopping || s->nconns > s->opts.max_connections) {
        jn_metric_add(s->m_rejected, 1);
        conn_close(c);
        return;
    }
    jn_http_reader_init(&c->reader, s->opts.max_body, MAX_URL, on_request, c);
    if (s->opts.extra_header) jn_http_reader_keep(&c->reader, s->opts.extra_header);
    c->reader.on_continue = on_continue;
    uv_tcp_nodelay(&c->tcp, 1);
    set_timer(c, T_IDLE);
    uv_read_start((uv_stream_t *)&c->tcp, alloc_cb, on_read);
}

/* ---- server life ------------------------------------------------------------------- */

int jn_http_server_port(const jn_http_server *s) {
    struct sockaddr_storage ss;
    int len = sizeof ss;
    if (uv_tcp_getsockname(&s->listener, (struct sockaddr *)&ss, &len) != 0) return -1;
    if (ss.ss_family == AF_INET) return ntohs(((struct sockaddr_in *)&ss)->sin_port);
    return ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
}

static void on_listener_closed(uv_handle_t *h) {
    jn_http_server *s = h->data;
    s->listener_open = 0;
    if (!s->stopping) {
        free(s); /* start failed */
        return;
    }
    maybe_done(s);
}

static void on_grace_closed(uv_handle_t *h) {
    jn_http_server *s = h->data;
    s->grace_open = 0;
    maybe_done(s);
}

jn_http_server *jn_http_server_start(uv_loop_t *loop, const jn_http_server_opts *opts,
                                     jn_http_handler handler, void *ud, char **err) {
    struct sockaddr_storage addr;
    const char *host = strcmp(opts->listen.host, "localhost") ? opts->listen.host : "127.0.0.1";
    if (uv_ip4_addr(host, opts->listen.port, (struct sockaddr_in *)&addr) != 0 &&
        uv_ip6_addr(host, opts->listen.port, (struct sockaddr_in6 *)&addr) != 0) {
        *err = jn_errorf("%s: cannot listen on %s:%d: the host must be an IP address such as "
                         "127.0.0.1 or 0.0.0.0",
                         opts->name, opts->listen.host, opts->listen.port);
        return NULL;
    }
    jn_http_server *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->opts = *opts;
    snprintf(s->name, sizeof s->name, "%s", opts->name);
    s->opts.name = s->name;
    s->handler = handler;
    s->ud = ud;
    uv_tcp_init(loop, &s->listener);
    s->listener.data = s;
    s->listener_open = 1;
    int rc = uv_tcp_bind(&s->listener, (struct sockaddr *)&addr, 0);
    if (rc == 0) rc = uv_listen((uv_stream_t *)&s->listener, 1024, on_connection);
    if (rc != 0) {
        *err = jn_errorf("%s: cannot listen on %s:%d: %s%s", opts->name, opts->listen.host,
                         opts->listen.port, uv_strerror(rc),
                         rc == UV_EADDRINUSE ? " (another process holds the port: stop it or "
                                               "choose another port in the config)"
                                             : "");
        uv_close((uv_handle_t *)&s->listener, on_listener_closed);
        return NULL;
    }
    char labels[64];
    snprintf(labels, sizeof labels, "server=\"%s\"", s->name);
    s->m_latency = jn_metrics_histogram("junction_http_request_duration_seconds",
                                        "Time from a request's first byte to its answer", labels);
    s->m_conns = jn_metrics_gauge("junction_http_connections", "Open HTTP connections", labels);
    s->m_rejected = jn_metrics_counter("junction_http_connections_rejected_total",
                                       "Connections refused (limit reached or stopping)", labels);
    s->m_accept_errors = jn_metrics_counter(
        "junction_http_accept_errors_total",
        "Connections the kernel would not hand over (out of descriptors)", labels);
    jn_http_reader_set_max_header(32 * 1024);
    jn_log_info(s->name, "listening on http://%s:%d", opts->listen.host, jn_http_server_port(s));
    return s;
}

static void on_grace(uv_timer_t *t) {
    jn_http_server *s = t->data;
    if (s->nconns)
        jn_log_warn(s->name, "closing %d connection(s) that did not finish in time", s->nconns);
    for (conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        conn_close(c);
    }
}

void jn_http_server_stop(jn_http_server *s, void (*done)(void *), void *arg) {
    if (s->stopping) return;
    s->stopping = 1;
    s->done = done;
    s->done_arg = arg;
    uv_close((uv_handle_t *)&s->listener, on_listener_closed);
    for (conn *c = s->conns, *n; c; c = n) {
        n = c->next;
        if (conn_idle(c))
            conn_close(c);
        else
            c->no_more_reads = 1;
    }
    /* In-flight answers get a bounded time to leave. */
    uv_timer_init(s->loop, &s->grace);
    s->grace.data = s;
    s->grace_open = 1;
    uv_timer_start(&s->grace, on_grace, 5000, 0);
    uv_unref((uv_handle_t *)&s->grace);
    maybe_done(s);
}
