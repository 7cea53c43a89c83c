/* Redis client for the consumer's de-duplication, on the process's libuv loop: hiredis'
 * async API (0.14) with its libuv adapter. jn_redis_exists is one EXISTS over the batch,
 * followed by an MGET only when some key is there; jn_redis_mark is N pipelined SET key 1
 * EX ttl (hiredis appends every command to its output buffer and writes them together on
 * the next writable event, so one batch costs about one write and one read). Commands are
 * formatted here rather than by hiredis, and SET's "+OK" answers share one reply object
 * (see "replies"). One connection, re-established with a backoff when it is lost; every
 * command still unanswered then gets an error, never a silent success.
 *
 * Marks stay N SETs rather than one EVAL of a script that SETs every key: that would
 * bring one reply per batch instead of N, but Redis spends more on a SET called from Lua
 * than we spend on a pipelined SET's reply, and the two share the machine.
 *
 * What hiredis 0.14.1 makes us do by hand:
 * - its libuv adapter ignores a poll error (libuv reports POLLERR, e.g. a refused connect
 *   or a reset connection, as status < 0 and stops the handle): the connection would hang
 *   with every command unanswered. We keep the adapter's attach and state but install
 *   our own event hooks whose poll callback hands errors to hiredis as readiness, as
 *   hiredis 1.0 does (upstream commit 9ce15c4);
 * - the adapter closes its uv_poll_t in its cleanup hook and frees it in a close callback
 *   we cannot see; our cleanup hook closes it with our own callback, so close() can wait
 *   for it before calling done;
 * - there is no reply timeout: a Redis that stops answering (stopped process, network
 *   partition) would hold commands forever, so a watchdog drops the connection when
 *   nothing was answered for REPLY_TIMEOUT_MS while commands are in flight;
 * - the redisAsyncContext is freed by hiredis right after the disconnect callback (or
 *   after a failed connect callback) and redisAsyncFree inside a reply callback only
 *   takes effect when the callback returns; r->ac is cleared at those points and nothing
 *   touches the context afterwards;
 * - redisAsyncConnect resolves the host name synchronously (getaddrinfo): use an address
 *   or a name /etc/hosts knows.
 * write(2) on a socket whose peer is gone raises SIGPIPE: main ignores it. */
#include "redis.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
/* The adapter is a header of static functions, some of which we replace (see above). */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wunused-parameter"
#include <hiredis/adapters/libuv.h>
#pragma GCC diagnostic pop

#include "log.h"

#define LOG_NAME "redis"
/* Reconnect delays: a restarted Redis is back within a fraction of a second, a longer
 * outage is probed every 2 s. */
#define BACKOFF_MIN_MS 100
#define BACKOFF_MAX_MS 2000
/* A connect that neither succeeds nor fails (SYNs to a host that drops them) would
 * otherwise last for the kernel's minutes of retries. */
#define CONNECT_TIMEOUT_MS 2000
/* Replies to a batch take milliseconds; this long without any means Redis is stuck. */
#define REPLY_TIMEOUT_MS 5000
#define WATCHDOG_TICK_MS 500

#define container_of(ptr, type, member) ((type *)((char *)(ptr)-offsetof(type, member)))

struct jn_redis {
    uv_loop_t *loop;
    char *host;
    int port;
    jn_redis_state_cb state_cb;
    void *ud;
    /* The context while it is ours to use; NULL once hiredis frees it (or is about to). */
    redisAsyncContext *ac;
    int connected;   /* ac's connect succeeded and commands may be sent */
    int reported_up; /* state_cb(ud, 1) was the last report */
    int down_logged; /* the current outage was logged; further failures go to debug */
    /* One timer, by state: without ac the reconnect backoff, while connecting the connect
     * timeout, while connected the reply watchdog (running only with commands in flight). */
    uv_timer_t timer;
    uint64_t backoff_ms;
    long inflight;
    uint64_t progress_ms; /* loop time of the last reply, or of the first command sent */
    int polls_open;       /* adapter poll handles whose close callback has not run */
    int timer_open;
    int in_connect_cb;         /* inside hiredis' connect callback (see jn_redis_close) */
    int free_after_connect_cb; /* close() came from there: free the context afterwards */
    int closing;
    void (*done)(void *);
    void *done_arg;
};

/* An exists check asks EXISTS first and MGET only when some key is there, so the keys stay
 * formatted after HEAD_ROOM spare bytes, where each command's header is written. */
#define HEAD_ROOM 48 /* the longest header: argc < 2^31 and a name of < 20 bytes */
typedef struct {
    jn_redis *r;
    jn_redis_exists_cb cb;
    void *arg;
    size_t n;
    char *keys; /* the keys as bulk strings, in the same allocation */
    size_t keys_len;
    unsigned char found[]; /* handed to cb, valid during the call only */
} exists_req;

typedef struct {
    jn_redis *r;
    jn_redis_done_cb cb;
    void *arg;
    size_t left; /* replies still expected */
    int err;
} mark_req;

static void start_connect(jn_redis *r);
static void on_timer(uv_timer_t *t);

/* ---- closing ------------------------------------------------------------------------- */

/* Frees r once the context is gone and every handle's close callback has run, so that
 * done(arg) may close the loop. */
static void maybe_finish(jn_redis *r) {
    if (!r->closing || r->timer_open || r->polls_open > 0 || r->ac) return;
    void (*done)(void *) = r->done;
    void *arg = r->done_arg;
    free(r->host);
    free(r);
    if (done) done(arg);
}

static void on_timer_closed(uv_handle_t *h) {
    jn_redis *r = h->data;
    r->timer_open = 0;
    maybe_finish(r);
}

/* ---- event hooks (replacing the adapter's, see the top of the file) ------------------ */

static void on_poll(uv_poll_t *h, int status, int events) {
    redisLibuvEvents *p = container_of(h, redisLibuvEvents, handle);
    jn_redis *r = h->data;
    /* libuv reports POLLERR as status < 0 (and stops the handle). hiredis finds the
     * actual error itself when it reads, writes or checks the pending connect. */
    if (status < 0) events = p->events;
    /* p->context goes NULL when hiredis tears the context down during the first call. */
    if (p->context && (events & UV_READABLE)) redisAsyncHandleRead(p->context);
    if (p->context && (events & UV_WRITABLE)) redisAsyncHandleWrite(p->context);
    /* close() was called from the connect callback, where freeing would pull the context
     * from under hiredis (0.14 does not defer that case): done here, after it returned. */
    if (r->free_after_connect_cb) {
        r->free_after_connect_cb = 0;
        redisAsyncContext *ac = r->ac;
        r->ac = NULL;
        if (ac) redisAsyncFree(ac);
    }
}

/* Applies p->events to the poll handle. Skipped when nothing changes (every command
 * appended asks for writability again), unless libuv stopped the handle after an error. */
static void poll_set(redisLibuvEvents *p, int events) {
    if (events == p->events && (events == 0 || uv_is_active((uv_handle_t *)&p->handle))) return;
    p->events = events;
    if (events)
        uv_poll_start(&p->handle, events, on_poll);
    else
        uv_poll_stop(&p->handle);
}

static void ev_add_read(void *privdata) {
    redisLibuvEvents *p = privdata;
    poll_set(p, p->events | UV_READABLE);
}

static void ev_del_read(void *privdata) {
    redisLibuvEvents *p = privdata;
    poll_set(p, p->events & ~UV_READABLE);
}

static void ev_add_write(void *privdata) {
    redisLibuvEvents *p = privdata;
    poll_set(p, p->events | UV_WRITABLE);
}

static void ev_del_write(void *privdata) {
    redisLibuvEvents *p = privdata;
    poll_set(p, p->events & ~UV_WRITABLE);
}

static void on_poll_closed(uv_handle_t *h) {
    jn_redis *r = h->data;
    free(container_of(h, redisLibuvEvents, handle)); /* the adapter malloc'ed it */
    r->polls_open--;
    maybe_finish(r);
}

/* hiredis calls this while freeing the context, which is gone right after. */
static void ev_cleanup(void *privdata) {
    redisLibuvEvents *p = privdata;
    p->context = NULL;
    uv_close((uv_handle_t *)&p->handle, on_poll_closed);
}

/* ---- replies ------------------------------------------------------------------------- */

/* Every SET of a mark is answered "+OK", for which hiredis would allocate a reply object
 * and a copy of the string, only to free both once the callback returns. One shared,
 * read-only reply serves them all instead; every other reply is built (and freed) by
 * hiredis' own functions. hiredis creates and frees replies only through the reader's
 * function table, so the shared one is never freed. */
static char ok_str[] = "OK";
static redisReply shared_ok = {.type = REDIS_REPLY_STATUS, .str = ok_str, .len = 2};
static const redisReplyObjectFunctions *hiredis_fns; /* the same for every reader */
static redisReplyObjectFunctions reply_fns;

static void *create_string(const redisReadTask *task, char *str, size_t len) {
    if (!task->parent && task->type == REDIS_REPLY_STATUS && len == 2 && memcmp(str, "OK", 2) == 0)
        return &shared_ok;
    return hiredis_fns->createString(task, str, len);
}

static void free_object(void *reply) {
    if (reply != &shared_ok) hiredis_fns->freeObject(reply);
}

static void use_shared_ok(redisContext *c) {
    if (!hiredis_fns) {
        hiredis_fns = c->reader->fn;
        reply_fns = *hiredis_fns;
        reply_fns.createString = create_string;
        reply_fns.freeObject = free_object;
    }
    c->reader->fn = &reply_fns;
}

/* ---- connection ---------------------------------------------------------------------- */

static void schedule_reconnect(jn_redis *r) {
    if (r->closing) return;
    uv_timer_start(&r->timer, on_timer, r->backoff_ms, 0);
    r->backoff_ms = r->backoff_ms * 2 > BACKOFF_MAX_MS ? BACKOFF_MAX_MS : r->backoff_ms * 2;
}

/* The context is gone (or going, when hiredis calls us on its way to freeing it). */
static void connection_lost(jn_redis *r, const char *why) {
    r->ac = NULL;
    r->connected = 0;
    if (r->closing) return;
    if (!r->down_logged) {
        jn_log_warn(LOG_NAME, "%s:%d unavailable: %s", r->host, r->port, why);
        r->down_logged = 1;
    } else {
        jn_log_debug(LOG_NAME, "%s:%d: %s", r->host, r->port, why);
    }
    if (r->reported_up) {
        r->reported_up = 0;
        if (r->state_cb) r->state_cb(r->ud, 0);
    }
    schedule_reconnect(r); /* unless state_cb closed r */
}

/* Gives up the context on our side: pending commands are answered with errors now. */
static void drop(jn_redis *r, const char *why) {
    redisAsyncContext *ac = r->ac;
    r->ac = NULL;
    r->connected = 0; /* callbacks run by the free see a client that is down */
    redisAsyncFree(ac);
    connection_lost(r, why);
}

static void on_connect(const redisAsyncContext *ac, int status) {
    jn_redis *r = ac->data;
    if (status != REDIS_OK) {
        connection_lost(r, ac->c.errstr[0] ? ac->c.errstr : "connect failed");
        return;
    }
    uv_timer_stop(&r->timer); /* the connect timeout */
    r->connected = 1;
    r->backoff_ms = BACKOFF_MIN_MS;
    r->down_logged = 0;
    jn_log_info(LOG_NAME, "connected to %s:%d", r->host, r->port);
    r->reported_up = 1;
    if (r->state_cb) {
        r->in_connect_cb = 1;
        r->state_cb(r->ud, 1);
        r->in_connect_cb = 0;
    }
}

static void on_disconnect(const redisAsyncContext *ac, int status) {
    jn_redis *r = ac->data;
    (void)status;
    /* Not ours any more when drop() or close() let it go. */
    if (r->ac != ac) return;
    connection_lost(r, ac->c.errstr[0] ? ac->c.errstr : "disconnected");
}

static void on_timer(uv_timer_t *t) {
    jn_redis *r = t->data;
    if (r->closing) return;
    if (!r->ac) {
        start_connect(r);
    } else if (!r->connected) {
        drop(r, "connect timed out");
    } else if (r->inflight > 0 && uv_now(r->loop) - r->progress_ms >= REPLY_TIMEOUT_MS) {
        char why[64];
        snprintf(why, sizeof why, "no reply for %d ms", REPLY_TIMEOUT_MS);
        drop(r, why);
    }
}

static void start_connect(jn_redis *r) {
    redisAsyncContext *ac = redisAsyncConnect(r->host, r->port);
    if (!ac) {
        connection_lost(r, "out of memory");
        return;
    }
    if (ac->err) {
        char why[128];
        snprintf(why, sizeof why, "%s", ac->errstr);
        redisAsyncFree(ac); /* no events attached yet: freed at once, no callbacks */
        connection_lost(r, why);
        return;
    }
    if (redisLibuvAttach(ac, r->loop) != REDIS_OK) {
        ac->ev.cleanup = NULL; /* set by the adapter before it failed, with no state */
        redisAsyncFree(ac);
        connection_lost(r, "cannot watch the socket");
        return;
    }
    redisLibuvEvents *p = ac->ev.data;
    p->handle.data = r;
    ac->ev.addRead = ev_add_read;
    ac->ev.delRead = ev_del_read;
    ac->ev.addWrite = ev_add_write;
    ac->ev.delWrite = ev_del_write;
    ac->ev.cleanup = ev_cleanup;
    use_shared_ok(&ac->c);
    r->polls_open++;
    ac->data = r;
    r->ac = ac;
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Also asks for writability, which is how the end of the connect is noticed. */
    redisAsyncSetConnectCallback(ac, on_connect);
    uv_timer_start(&r->timer, on_timer, CONNECT_TIMEOUT_MS, 0);
}

jn_redis *jn_redis_new(uv_loop_t *loop, const char *host, int port, jn_redis_state_cb cb,
                       void *ud) {
    jn_redis *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->host = strdup(host);
    if (!r->host || uv_timer_init(loop, &r->timer) != 0) {
        free(r->host);
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->port = port;
    r->state_cb = cb;
    r->ud = ud;
    r->timer.data = r;
    r->timer_open = 1;
    r->backoff_ms = BACKOFF_MIN_MS;
    start_connect(r);
    return r;
}

int jn_redis_connected(const jn_redis *r) {
    return r->connected;
}

long jn_redis_inflight(const jn_redis *r) {
    return r->inflight;
}

/* ---- command formatting --------------------------------------------------------------- */

/* Commands are written in the protocol (RESP) by hand and handed over with
 * redisAsyncFormattedCommand: hiredis' own formatting goes through its printf-like sds
 * functions for every argument, which cost more than the rest of a key's path together. */

static size_t digits(size_t v) {
    size_t d = 1;
    while (v >= 10) {
        v /= 10;
        d++;
    }
    return d;
}

static char *put_uint(char *p, size_t v) {
    char *end = p + digits(v);
    char *q = end;
    do {
        *--q = (char)('0' + v % 10);
        v /= 10;
    } while (v);
    return end;
}

/* "$<len>\r\n<s>\r\n" */
static size_t bulk_size(size_t len) {
    return 1 + digits(len) + 2 + len + 2;
}

static char *put_bulk(char *p, const char *s, size_t len) {
    *p++ = '$';
    p = put_uint(p, len);
    memcpy(p, "\r\n", 2);
    memcpy(p + 2, s, len);
    memcpy(p + 2 + len, "\r\n", 2);
    return p + 4 + len;
}

/* "*<argc>\r\n" followed by the command name as a bulk string. */
static size_t head_size(size_t argc, const char *name) {
    return 1 + digits(argc) + 2 + bulk_size(strlen(name));
}

static char *put_head(char *p, size_t argc, const char *name) {
    *p++ = '*';
    p = put_uint(p, argc);
    memcpy(p, "\r\n", 2);
    return put_bulk(p + 2, name, strlen(name));
}

static size_t keys_size(const char *const *keys, size_t n) {
    size_t size = 0;
    for (size_t i = 0; i < n; i++)
        size += bulk_size(strlen(keys[i]));
    return size;
}

static char *put_keys(char *p, const char *const *keys, size_t n) {
    for (size_t i = 0; i < n; i++)
        p = put_bulk(p, keys[i], strlen(keys[i]));
    return p;
}

/* ---- commands ------------------------------------------------------------------------ */

/* Counts commands handed to hiredis; the watchdog runs while any is unanswered. */
static void sent(jn_redis *r, size_t n) {
    if (r->inflight == 0) {
        /* The loop's cached time is as old as the start of this iteration; after a long
         * callback it would make the first watchdog tick see a stale start. */
        uv_update_time(r->loop);
        r->progress_ms = uv_now(r->loop);
        if (!uv_is_active((uv_handle_t *)&r->timer))
            uv_timer_start(&r->timer, on_timer, WATCHDOG_TICK_MS, WATCHDOG_TICK_MS);
    }
    r->inflight += (long)n;
}

/* reply is NULL when hiredis is tearing the context down: from then on the client is
 * down for the callbacks it runs (new commands would be refused anyway). */
static void answered(jn_redis *r, const void *reply) {
    if (!reply) r->connected = 0;
    r->progress_ms = uv_now(r->loop);
    /* The timer is the watchdog only while connected; otherwise it is the reconnect. */
    if (--r->inflight == 0 && r->connected) uv_timer_stop(&r->timer);
}

static void exists_done(exists_req *q, int err) {
    if (err) memset(q->found, 0, q->n);
    q->cb(q->arg, err, q->found, q->n);
    free(q);
}

/* Sends name followed by q's keys; 0 or -1. */
static int exists_send(exists_req *q, const char *name, redisCallbackFn *fn) {
    size_t head_len = head_size(q->n + 1, name);
    char *cmd = q->keys - head_len; /* HEAD_ROOM covers it: n < INT_MAX, short names */
    put_head(cmd, q->n + 1, name);
    if (redisAsyncFormattedCommand(q->r->ac, fn, q, cmd, head_len + q->keys_len) != REDIS_OK)
        return -1;
    sent(q->r, 1);
    return 0;
}

/* 0 when rep is an answer of type want; logs the unexpected ones. */
static int check_reply(const char *cmd, const redisReply *rep, int want) {
    if (!rep) return -1; /* the connection is gone or being closed */
    if (rep->type == want) return 0;
    jn_log_warn(LOG_NAME, "%s: unexpected reply (type %d%s%s)", cmd, rep->type,
                rep->type == REDIS_REPLY_ERROR ? ": " : "",
                rep->type == REDIS_REPLY_ERROR ? rep->str : "");
    return -1;
}

static void on_mget_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    exists_req *q = privdata;
    redisReply *rep = reply;
    answered(q->r, rep);
    int err = check_reply("MGET", rep, REDIS_REPLY_ARRAY) != 0 || rep->elements != q->n;
    for (size_t i = 0; !err && i < q->n; i++)
        q->found[i] = rep->element[i]->type != REDIS_REPLY_NIL;
    exists_done(q, err);
}

/* In steady state no key is there: a count of 0 answers the whole batch with one integer
 * reply, where MGET would make hiredis build a reply object per key. */
static void on_exists_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    exists_req *q = privdata;
    redisReply *rep = reply;
    answered(q->r, rep);
    if (check_reply("EXISTS", rep, REDIS_REPLY_INTEGER) != 0) {
        exists_done(q, 1);
    } else if (rep->integer == 0) {
        exists_done(q, 0);
    } else if (q->r->closing || !q->r->ac || exists_send(q, "MGET", on_mget_reply) != 0) {
        /* Once closing, the client sends nothing (hiredis refuses it while freeing too). */
        exists_done(q, 1);
    }
    /* Otherwise MGET tells which: a key that expires or appears in between is answered as
     * MGET finds it, as if the check had come a little later. */
}

int jn_redis_exists(jn_redis *r, const char *const *keys, size_t n, jn_redis_exists_cb cb,
                    void *arg) {
    if (!r->connected || r->closing || n >= INT_MAX) return -1;
    if (n == 0) {
        /* EXISTS needs a key; nothing to ask means nothing found. */
        cb(arg, 0, NULL, 0);
        return 0;
    }
    size_t keys_len = keys_size(keys, n);
    exists_req *q = malloc(sizeof *q + n + HEAD_ROOM + keys_len);
    if (!q) return -1;
    memset(q->found, 0, n);
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->n = n;
    q->keys = (char *)q->found + n + HEAD_ROOM;
    q->keys_len = keys_len;
    put_keys(q->keys, keys, n);
    if (exists_send(q, "EXISTS", on_exists_reply) != 0) {
        free(q);
        return -1;
    }
    return 0;
}

static void on_mark_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    mark_req *q = privdata;
    redisReply *rep = reply;
    answered(q->r, rep);
    if (!rep) {
        q->err = 1;
    } else if (rep->type == REDIS_REPLY_ERROR) {
        if (!q->err) jn_log_warn(LOG_NAME, "SET: %s", rep->str);
        q->err = 1;
    }
    if (--q->left > 0) return;
    q->cb(q->arg, q->err);
    free(q);
}

/* SET <key> 1 EX <ttl> for one key after another: all but the key is formatted once, and
 * the buffer has room for the longest key. */
typedef struct {
    char *buf; /* the head, then the key and the tail of the current command */
    size_t head_len;
    char tail[48]; /* the bulk strings 1, EX and the TTL */
    size_t tail_len;
} set_cmds;

static int set_cmds_init(set_cmds *sc, const char *const *keys, size_t n, int ttl_s) {
    char ttl[16];
    int ttl_len = snprintf(ttl, sizeof ttl, "%d", ttl_s);
    char *t = put_bulk(sc->tail, "1", 1);
    t = put_bulk(t, "EX", 2);
    sc->tail_len = (size_t)(put_bulk(t, ttl, (size_t)ttl_len) - sc->tail);
    size_t max_key = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(keys[i]);
        if (len > max_key) max_key = len;
    }
    sc->head_len = head_size(5, "SET");
    sc->buf = malloc(sc->head_len + bulk_size(max_key) + sc->tail_len);
    if (!sc->buf) return -1;
    put_head(sc->buf, 5, "SET");
    return 0;
}

/* The command for key, in sc->buf; returns its length. */
static size_t set_cmds_for(set_cmds *sc, const char *key) {
    char *p = put_bulk(sc->buf + sc->head_len, key, strlen(key));
    memcpy(p, sc->tail, sc->tail_len);
    return (size_t)(p - sc->buf) + sc->tail_len;
}

int jn_redis_mark(jn_redis *r, const char *const *keys, size_t n, int ttl_s, jn_redis_done_cb cb,
                  void *arg) {
    if (!r->connected || r->closing) return -1;
    if (n == 0) {
        cb(arg, 0);
        return 0;
    }
    set_cmds sc;
    if (set_cmds_init(&sc, keys, n, ttl_s) != 0) return -1;
    mark_req *q = malloc(sizeof *q);
    if (!q) {
        free(sc.buf);
        return -1;
    }
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->left = n;
    q->err = 0;
    size_t queued = 0;
    /* Appended to hiredis' output buffer only: the whole batch goes out together. */
    for (; queued < n; queued++) {
        size_t len = set_cmds_for(&sc, keys[queued]);
        if (redisAsyncFormattedCommand(r->ac, on_mark_reply, q, sc.buf, len) != REDIS_OK) break;
    }
    free(sc.buf);
    if (queued < n) {
        /* Out of memory part-way: the queued ones still get their replies, and the
         * callback reports the batch as failed. */
        if (queued == 0) {
            free(q);
            return -1;
        }
        q->left = queued;
        q->err = 1;
    }
    sent(r, queued);
    return 0;
}

void jn_redis_close(jn_redis *r, void (*done)(void *), void *arg) {
    if (r->closing) return;
    r->closing = 1;
    r->done = done;
    r->done_arg = arg;
    r->connected = 0;
    uv_close((uv_handle_t *)&r->timer, on_timer_closed);
    redisAsyncContext *ac = r->ac;
    if (!ac) return; /* done runs from the timer's close callback */
    if (r->in_connect_cb) {
        r->free_after_connect_cb = 1; /* see on_poll */
    } else if (ac->c.flags & REDIS_IN_CALLBACK) {
        /* Inside a reply callback: hiredis frees the context when it returns (the other
         * pending callbacks get NULL replies) and then calls on_disconnect, which clears
         * r->ac. */
        redisAsyncFree(ac);
    } else {
        /* Pending callbacks run now with NULL replies: they report errors. */
        r->ac = NULL;
        redisAsyncFree(ac);
    }
}
