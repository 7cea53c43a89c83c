/* Redis client on the process's libuv loop: hiredis' async API (0.14) with its libuv
 * adapter. Callers hand over commands already written in RESP (resp.h); hiredis appends
 * every command to its output buffer and writes them together on the next writable
 * event, so a batch costs about one write and one read. "+OK" answers share one reply
 * object (see "replies"). One connection, re-established with a backoff when it is lost;
 * every command still unanswered then gets a NULL reply, never a silent success. What
 * the commands are is the caller's business (marks.c writes de-duplication's).
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

/* ---- commands ------------------------------------------------------------------------ */

/* Counts commands handed to hiredis; the watchdog runs while any is unanswered. */
static void sent(jn_redis *r) {
    if (r->inflight == 0) {
        /* The loop's cached time is as old as the start of this iteration; after a long
         * callback it would make the first watchdog tick see a stale start. */
        uv_update_time(r->loop);
        r->progress_ms = uv_now(r->loop);
        if (!uv_is_active((uv_handle_t *)&r->timer))
            uv_timer_start(&r->timer, on_timer, WATCHDOG_TICK_MS, WATCHDOG_TICK_MS);
    }
    r->inflight++;
}

/* reply is NULL when hiredis is tearing the context down: from then on the client is
 * down for the callbacks it runs (new commands would be refused anyway). */
static void on_reply(redisAsyncContext *ac, void *reply, void *privdata) {
    (void)ac;
    jn_redis_call *call = privdata;
    jn_redis *r = call->r;
    if (!reply) r->connected = 0;
    r->progress_ms = uv_now(r->loop);
    /* The timer is the watchdog only while connected; otherwise it is the reconnect. */
    if (--r->inflight == 0 && r->connected) uv_timer_stop(&r->timer);
    call->cb(call, reply);
}

int jn_redis_send(jn_redis *r, jn_redis_call *call, const char *cmd, size_t len) {
    if (!r->connected || r->closing || !r->ac) return -1;
    call->r = r;
    if (redisAsyncFormattedCommand(r->ac, on_reply, call, cmd, len) != REDIS_OK) return -1;
    sent(r);
    return 0;
}

/* Replies are hiredis' own objects behind an opaque name: nothing outside this file
 * includes hiredis. */
static const redisReply *rep(const jn_redis_reply *reply) {
    return (const redisReply *)reply;
}

jn_redis_reply_type jn_redis_reply_kind(const jn_redis_reply *reply) {
    switch (rep(reply)->type) {
    case REDIS_REPLY_STRING:
        return JN_REDIS_STRING;
    case REDIS_REPLY_ARRAY:
        return JN_REDIS_ARRAY;
    case REDIS_REPLY_INTEGER:
        return JN_REDIS_INTEGER;
    case REDIS_REPLY_NIL:
        return JN_REDIS_NIL;
    case REDIS_REPLY_STATUS:
        return JN_REDIS_STATUS;
    default:
        return JN_REDIS_ERROR;
    }
}

long long jn_redis_reply_integer(const jn_redis_reply *reply) {
    return rep(reply)->integer;
}

const char *jn_redis_reply_str(const jn_redis_reply *reply, size_t *len) {
    const redisReply *r = rep(reply);
    if (len) *len = r->str ? r->len : 0;
    return r->str ? r->str : "";
}

size_t jn_redis_reply_count(const jn_redis_reply *reply) {
    return rep(reply)->type == REDIS_REPLY_ARRAY ? rep(reply)->elements : 0;
}

const jn_redis_reply *jn_redis_reply_at(const jn_redis_reply *reply, size_t i) {
    return (const jn_redis_reply *)rep(reply)->element[i];
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
