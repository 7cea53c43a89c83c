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
#include "resp.h"

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

/* What a new connection says before it is used: AUTH when there is a password, SELECT
 * when the database is not 0, and PING without a password (a server that wants one
 * answers it NOAUTH). The connection is reported up only once every answer is right. */
typedef struct {
    jn_redis_call call;
    int left;
    char why[256]; /* the first refusal */
} hello;

struct jn_redis {
    uv_loop_t *loop;
    char *host;
    int port;
    char *username, *password;
    int db;
    hello hello;
    int ready;     /* the hello was answered: callers' commands may be sent */
    char why[300]; /* why the client is down, "" while it is up */
    jn_redis_state_cb state_cb;
    void *ud;
    /* The context while it is ours to use; NULL once hiredis frees it (or is about to). */
    redisAsyncContext *ac;
    int connected;   /* ac's connect succeeded: the hello may be sent */
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
    free(r->username);
    if (r->password) explicit_bzero(r->password, strlen(r->password));
    free(r->password);
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

/* Every SET of a mark is answered "+OK", the elements of an MGET of marks are mostly nil
 * and those of an SMISMEMBER 0 or 1;
 * for each hiredis would allocate a reply object (and a copy of the string) only to free
 * it once the callback returns. Shared, read-only replies serve them all instead; every
 * other reply is built (and freed) by hiredis' own functions. hiredis creates and frees
 * replies only through the reader's function table, and free_object takes the shared
 * nils out of an array before hiredis frees it, so a shared reply is never freed. */
static char ok_str[] = "OK";
static redisReply shared_ok = {.type = REDIS_REPLY_STATUS, .str = ok_str, .len = 2};
static redisReply shared_nil = {.type = REDIS_REPLY_NIL};
static redisReply shared_int[2] = {{.type = REDIS_REPLY_INTEGER, .integer = 0},
                                   {.type = REDIS_REPLY_INTEGER, .integer = 1}};
static const redisReplyObjectFunctions *hiredis_fns; /* the same for every reader */
static redisReplyObjectFunctions reply_fns;

static void *create_string(const redisReadTask *task, char *str, size_t len) {
    if (!task->parent && task->type == REDIS_REPLY_STATUS && len == 2 && memcmp(str, "OK", 2) == 0)
        return &shared_ok;
    return hiredis_fns->createString(task, str, len);
}

/* 0 and 1 in an array: SMISMEMBER's answers. */
static void *create_integer(const redisReadTask *task, long long value) {
    if (!task->parent || (value != 0 && value != 1)) return hiredis_fns->createInteger(task, value);
    redisReply *parent = task->parent->obj;
    parent->element[task->idx] = &shared_int[value];
    return &shared_int[value];
}

static int shared(const redisReply *r) {
    return r == &shared_ok || r == &shared_nil || r == &shared_int[0] || r == &shared_int[1];
}

static void *create_nil(const redisReadTask *task) {
    if (task->parent) {
        redisReply *parent = task->parent->obj;
        parent->element[task->idx] = &shared_nil;
    }
    return &shared_nil;
}

/* hiredis frees an array's elements with its own freeReplyObject, at every depth. */
static void unshare(redisReply *r) {
    if (r->type != REDIS_REPLY_ARRAY || !r->element) return;
    for (size_t i = 0; i < r->elements; i++) {
        if (shared(r->element[i]))
            r->element[i] = NULL;
        else if (r->element[i])
            unshare(r->element[i]);
    }
}

static void free_object(void *reply) {
    redisReply *r = reply;
    if (shared(r)) return;
    unshare(r);
    hiredis_fns->freeObject(reply);
}

static void use_shared_replies(redisContext *c) {
    if (!hiredis_fns) {
        hiredis_fns = c->reader->fn;
        reply_fns = *hiredis_fns;
        reply_fns.createString = create_string;
        reply_fns.createNil = create_nil;
        reply_fns.createInteger = create_integer;
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
    r->ready = 0;
    snprintf(r->why, sizeof r->why, "%s", why);
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
    r->ready = 0;
    redisAsyncFree(ac);
    connection_lost(r, why);
}

static void send_hello(jn_redis *r);

static void on_connect(const redisAsyncContext *ac, int status) {
    jn_redis *r = ac->data;
    if (status != REDIS_OK) {
        connection_lost(r, ac->c.errstr[0] ? ac->c.errstr : "connect failed");
        return;
    }
    uv_timer_stop(&r->timer); /* the connect timeout */
    r->connected = 1;
    r->in_connect_cb = 1;
    send_hello(r);
    r->in_connect_cb = 0;
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
    use_shared_replies(&ac->c);
    r->polls_open++;
    ac->data = r;
    r->ac = ac;
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    /* Also asks for writability, which is how the end of the connect is noticed. */
    redisAsyncSetConnectCallback(ac, on_connect);
    uv_timer_start(&r->timer, on_timer, CONNECT_TIMEOUT_MS, 0);
}

jn_redis *jn_redis_new(uv_loop_t *loop, const jn_redis_opts *o, jn_redis_state_cb cb, void *ud) {
    jn_redis *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    r->host = strdup(o->host);
    r->username = o->username && *o->username ? strdup(o->username) : NULL;
    r->password = o->password && *o->password ? strdup(o->password) : NULL;
    if (!r->host || uv_timer_init(loop, &r->timer) != 0) {
        free(r->host);
        free(r->username);
        free(r->password);
        free(r);
        return NULL;
    }
    r->loop = loop;
    r->port = o->port;
    r->db = o->db;
    r->state_cb = cb;
    r->ud = ud;
    r->timer.data = r;
    r->timer_open = 1;
    r->backoff_ms = BACKOFF_MIN_MS;
    start_connect(r);
    return r;
}

int jn_redis_connected(const jn_redis *r) {
    return r->ready;
}

const char *jn_redis_down_reason(const jn_redis *r) {
    if (r->ready) return NULL;
    return r->why[0] ? r->why : "connecting";
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
    if (!r->ready || r->closing || !r->ac) return -1;
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

/* ---- the hello -------------------------------------------------------------------------- */

static void hello_ok(jn_redis *r) {
    r->ready = 1;
    r->why[0] = '\0';
    r->backoff_ms = BACKOFF_MIN_MS;
    r->down_logged = 0;
    jn_log_info(LOG_NAME, "connected to %s:%d%s%s", r->host, r->port, r->username ? " as " : "",
                r->username ? r->username : "");
    r->reported_up = 1;
    if (r->state_cb) r->state_cb(r->ud, 1);
}

/* What to do about a refusal, for the log line. */
static const char *hello_hint(const jn_redis *r, const char *reply) {
    if (!strncmp(reply, "NOAUTH", 6))
        return "Redis asks for a password: set redis.password (REDIS_PASSWORD or "
               "REDIS_PASSWORD_FILE), and redis.username for an ACL user";
    if (!strncmp(reply, "WRONGPASS", 9) || !strncmp(reply, "ERR invalid password", 20) ||
        !strncmp(reply, "ERR AUTH", 8))
        return r->username ? "check redis.username and redis.password (REDIS_USERNAME, "
                             "REDIS_PASSWORD)"
                           : "check redis.password (REDIS_PASSWORD), and set redis.username "
                             "(REDIS_USERNAME) for an ACL user";
    if (!strncmp(reply, "NOPERM", 6))
        return "the user may not run this command; grant it in the user's ACL";
    if (strstr(reply, "DB index"))
        return "check redis.db (REDIS_DB) against the server's databases setting";
    return "check the redis.* settings";
}

static void on_hello_reply(jn_redis_call *call, const jn_redis_reply *reply) {
    hello *h = container_of(call, hello, call);
    jn_redis *r = container_of(h, jn_redis, hello);
    if (reply && jn_redis_reply_kind(reply) == JN_REDIS_ERROR && !h->why[0]) {
        const char *text = jn_redis_reply_str(reply, NULL);
        snprintf(h->why, sizeof h->why, "refused junction's login (%s); %s", text,
                 hello_hint(r, text));
    }
    if (--h->left > 0 || !reply) return; /* a lost connection is handled as such */
    if (r->closing) return;
    if (h->why[0]) {
        /* Retried with the reconnect backoff: a password may be fixed on the server. */
        drop(r, h->why);
        return;
    }
    hello_ok(r);
}

/* A refused queueing means hiredis is tearing the connection down: its callbacks say so. */
static void send_argv(jn_redis *r, int argc, const char *const *argv) {
    size_t len = jn_resp_head_size((size_t)argc, argv[0]);
    for (int i = 1; i < argc; i++)
        len += jn_resp_bulk_size(strlen(argv[i]));
    char *cmd = malloc(len);
    if (!cmd) abort();
    char *p = jn_resp_put_head(cmd, (size_t)argc, argv[0]);
    for (int i = 1; i < argc; i++)
        p = jn_resp_put_bulk(p, argv[i], strlen(argv[i]));
    int rc = redisAsyncFormattedCommand(r->ac, on_reply, &r->hello.call, cmd, len);
    explicit_bzero(cmd, len); /* it may hold the password */
    free(cmd);
    if (rc != REDIS_OK) return;
    sent(r);
    r->hello.left++;
}

static void send_hello(jn_redis *r) {
    r->hello.call.cb = on_hello_reply;
    r->hello.call.r = r;
    r->hello.left = 0;
    r->hello.why[0] = '\0';
    char db[16];
    snprintf(db, sizeof db, "%d", r->db);
    if (r->password && r->username)
        send_argv(r, 3, (const char *[]){"AUTH", r->username, r->password});
    else if (r->password)
        send_argv(r, 2, (const char *[]){"AUTH", r->password});
    if (r->db) send_argv(r, 2, (const char *[]){"SELECT", db});
    if (!r->password) send_argv(r, 1, (const char *[]){"PING"});
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
