/* De-duplication's commands (see marks.h). An exists check sends one EXISTS over the
 * batch and an MGET only when some key is there; marks are N pipelined SET key 1 EX ttl.
 *
 * Marks stay N SETs rather than one EVAL of a script that SETs every key: that would
 * bring one reply per batch instead of N, but Redis spends more on a SET called from Lua
 * than we spend on a pipelined SET's reply, and the two share the machine. */
#include "marks.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "resp.h"

#define LOG_NAME              "redis"
#define container_of(p, t, m) ((t *)((char *)(p)-offsetof(t, m)))

/* The keys stay formatted after JN_RESP_HEAD_MAX spare bytes, where each command's
 * header (EXISTS, then maybe MGET) is written in front of them. */
typedef struct {
    jn_redis_call call;
    jn_redis *r;
    jn_marks_exists_cb cb;
    void *arg;
    size_t n;
    char *keys; /* the keys as bulk strings, in the same allocation */
    size_t keys_len;
    unsigned char found[]; /* handed to cb, valid during the call only */
} exists_req;

typedef struct {
    jn_redis_call call;
    jn_marks_done_cb cb;
    void *arg;
    size_t left; /* replies still expected */
    int err;
} mark_req;

static size_t keys_size(const char *const *keys, size_t n) {
    size_t size = 0;
    for (size_t i = 0; i < n; i++)
        size += jn_resp_bulk_size(strlen(keys[i]));
    return size;
}

/* 0 when reply is an answer of kind want; logs the unexpected ones. */
static int check_reply(const char *cmd, const jn_redis_reply *reply, jn_redis_reply_type want) {
    if (!reply) return -1; /* the connection is gone or being closed */
    jn_redis_reply_type kind = jn_redis_reply_kind(reply);
    if (kind == want) return 0;
    jn_log_warn(LOG_NAME, "%s: unexpected reply (kind %d%s%s)", cmd, (int)kind,
                kind == JN_REDIS_ERROR ? ": " : "",
                kind == JN_REDIS_ERROR ? jn_redis_reply_str(reply, NULL) : "");
    return -1;
}

static void exists_done(exists_req *q, int err) {
    if (err) memset(q->found, 0, q->n);
    q->cb(q->arg, err, q->found, q->n);
    free(q);
}

/* Sends name followed by q's keys; 0 or -1. */
static int exists_send(exists_req *q, const char *name, jn_redis_reply_cb cb) {
    size_t head_len = jn_resp_head_size(q->n + 1, name);
    char *cmd = q->keys - head_len; /* JN_RESP_HEAD_MAX covers it: n < INT_MAX */
    jn_resp_put_head(cmd, q->n + 1, name);
    q->call.cb = cb;
    return jn_redis_send(q->r, &q->call, cmd, head_len + q->keys_len);
}

static void on_mget_reply(jn_redis_call *call, const jn_redis_reply *reply) {
    exists_req *q = container_of(call, exists_req, call);
    int err =
        check_reply("MGET", reply, JN_REDIS_ARRAY) != 0 || jn_redis_reply_count(reply) != q->n;
    for (size_t i = 0; !err && i < q->n; i++)
        q->found[i] = jn_redis_reply_kind(jn_redis_reply_at(reply, i)) != JN_REDIS_NIL;
    exists_done(q, err);
}

/* In steady state no key is there: a count of 0 answers the whole batch with one integer
 * reply, where MGET would make hiredis build a reply object per key. */
static void on_exists_reply(jn_redis_call *call, const jn_redis_reply *reply) {
    exists_req *q = container_of(call, exists_req, call);
    if (check_reply("EXISTS", reply, JN_REDIS_INTEGER) != 0) {
        exists_done(q, 1);
    } else if (jn_redis_reply_integer(reply) == 0) {
        exists_done(q, 0);
    } else if (exists_send(q, "MGET", on_mget_reply) != 0) {
        /* Closing or disconnected: the client sends nothing more. */
        exists_done(q, 1);
    }
    /* Otherwise MGET tells which: a key that expires or appears in between is answered as
     * MGET finds it, as if the check had come a little later. */
}

int jn_marks_exists(jn_redis *r, const char *const *keys, size_t n, jn_marks_exists_cb cb,
                    void *arg) {
    if (!jn_redis_connected(r) || n >= INT_MAX) return -1;
    if (n == 0) {
        /* EXISTS needs a key; nothing to ask means nothing found. */
        cb(arg, 0, NULL, 0);
        return 0;
    }
    size_t keys_len = keys_size(keys, n);
    exists_req *q = malloc(sizeof *q + n + JN_RESP_HEAD_MAX + keys_len);
    if (!q) return -1;
    memset(q->found, 0, n);
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->n = n;
    q->keys = (char *)q->found + n + JN_RESP_HEAD_MAX;
    q->keys_len = keys_len;
    char *p = q->keys;
    for (size_t i = 0; i < n; i++)
        p = jn_resp_put_bulk(p, keys[i], strlen(keys[i]));
    if (exists_send(q, "EXISTS", on_exists_reply) != 0) {
        free(q);
        return -1;
    }
    return 0;
}

static void on_mark_reply(jn_redis_call *call, const jn_redis_reply *reply) {
    mark_req *q = container_of(call, mark_req, call);
    if (!reply) {
        q->err = 1;
    } else if (jn_redis_reply_kind(reply) == JN_REDIS_ERROR) {
        if (!q->err) jn_log_warn(LOG_NAME, "SET: %s", jn_redis_reply_str(reply, NULL));
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
    char *t = jn_resp_put_bulk(sc->tail, "1", 1);
    t = jn_resp_put_bulk(t, "EX", 2);
    sc->tail_len = (size_t)(jn_resp_put_bulk(t, ttl, (size_t)ttl_len) - sc->tail);
    size_t max_key = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = strlen(keys[i]);
        if (len > max_key) max_key = len;
    }
    sc->head_len = jn_resp_head_size(5, "SET");
    sc->buf = malloc(sc->head_len + jn_resp_bulk_size(max_key) + sc->tail_len);
    if (!sc->buf) return -1;
    jn_resp_put_head(sc->buf, 5, "SET");
    return 0;
}

/* The command for key, in sc->buf; returns its length. */
static size_t set_cmds_for(set_cmds *sc, const char *key) {
    char *p = jn_resp_put_bulk(sc->buf + sc->head_len, key, strlen(key));
    memcpy(p, sc->tail, sc->tail_len);
    return (size_t)(p - sc->buf) + sc->tail_len;
}

int jn_marks_set(jn_redis *r, const char *const *keys, size_t n, int ttl_s, jn_marks_done_cb cb,
                 void *arg) {
    if (!jn_redis_connected(r)) return -1;
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
    q->call.cb = on_mark_reply;
    q->cb = cb;
    q->arg = arg;
    q->left = n;
    q->err = 0;
    size_t queued = 0;
    /* Appended to the client's output buffer only: the whole batch goes out together. */
    for (; queued < n; queued++)
        if (jn_redis_send(r, &q->call, sc.buf, set_cmds_for(&sc, keys[queued])) != 0) break;
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
    return 0;
}
