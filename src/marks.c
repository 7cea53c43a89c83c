/* De-duplication's commands (see marks.h), in one of two layouts.
 *
 * keys (the original system's): a key per mark, <prefix><hex>. An exists check sends one
 * EXISTS over the batch and an MGET only when some key is there; marks are N pipelined
 * SET key 1 EX ttl. Marks stay N SETs rather than one EVAL of a script that SETs every
 * key: that would bring one reply per batch instead of N, but Redis spends more on a SET
 * called from Lua than we spend on a pipelined SET's reply.
 *
 * buckets: a set per stretch of time, <prefix>b:<n> with n = now / width and width =
 * ttl / 2, its members the marks' first 128 bits in binary (16 bytes, not 64 hex
 * digits: less to send, parse, hash and keep). A batch of marks is one SADD and one
 * EXPIREAT of the current bucket (ttl after the bucket ends); a check is one SMISMEMBER
 * in each of the JN_MARKS_BUCKETS buckets that may hold a live mark, pipelined. Redis
 * then works per command and per small member instead of per key with its own expiry
 * (docs/benchmarks.md has the figures). The price is the TTL's precision: a mark is
 * honoured for at least ttl and at most 1.5 ttl, and it goes with its bucket. Sets, not
 * hashes: a hash field carries a value nobody reads, and measured 1.4 us per HSET
 * field against Redis' CPU. */
#include "marks.h"

#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "resp.h"

#define container_of(p, t, m) ((t *)((char *)(p)-offsetof(t, m)))

/* The keys stay formatted after JN_RESP_HEAD_MAX spare bytes, where each command's
 * header (EXISTS, then maybe MGET) is written in front of them. */
typedef struct {
    jn_redis_call call;
    jn_redis *r;
    jn_marks_exists_cb cb;
    void *arg;
    int left;      /* buckets: SMISMEMBER replies still expected */
    char err[200]; /* buckets: the first failure */
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
    char err[200];
} mark_req;

static size_t keys_size(const char *const *keys, size_t n) {
    size_t size = 0;
    for (size_t i = 0; i < n; i++)
        size += jn_resp_bulk_size(strlen(keys[i]));
    return size;
}

/* NULL when reply is an answer of kind want, else why not (in buf, or a constant). The
 * caller reports it, once per outage rather than per batch. */
static const char *check_reply(const char *cmd, const jn_redis_reply *reply,
                               jn_redis_reply_type want, char *buf, size_t size) {
    if (!reply) return "the connection to Redis was lost";
    jn_redis_reply_type kind = jn_redis_reply_kind(reply);
    if (kind == want) return NULL;
    if (kind == JN_REDIS_ERROR)
        snprintf(buf, size, "%s: %s", cmd, jn_redis_reply_str(reply, NULL));
    else
        snprintf(buf, size, "%s: unexpected reply (kind %d)", cmd, (int)kind);
    return buf;
}

static void exists_done(exists_req *q, const char *err) {
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
    char buf[200];
    const char *err = check_reply("MGET", reply, JN_REDIS_ARRAY, buf, sizeof buf);
    if (!err && jn_redis_reply_count(reply) != q->n) err = "MGET: answered a different count";
    for (size_t i = 0; !err && i < q->n; i++)
        q->found[i] = jn_redis_reply_kind(jn_redis_reply_at(reply, i)) != JN_REDIS_NIL;
    exists_done(q, err);
}

/* In steady state no key is there: a count of 0 answers the whole batch with one integer
 * reply, where MGET would make hiredis build a reply object per key. */
static void on_exists_reply(jn_redis_call *call, const jn_redis_reply *reply) {
    exists_req *q = container_of(call, exists_req, call);
    char buf[200];
    const char *err = check_reply("EXISTS", reply, JN_REDIS_INTEGER, buf, sizeof buf);
    if (err) {
        exists_done(q, err);
    } else if (jn_redis_reply_integer(reply) == 0) {
        exists_done(q, NULL);
    } else if (exists_send(q, "MGET", on_mget_reply) != 0) {
        /* Closing or disconnected: the client sends nothing more. */
        exists_done(q, "the connection to Redis was lost");
    }
    /* Otherwise MGET tells which: a key that expires or appears in between is answered as
     * MGET finds it, as if the check had come a little later. */
}

/* A mark's command (SET's +OK, SADD's and EXPIREAT's integers) failed only when it was
 * not answered or answered an error. */
static void on_mark_reply(jn_redis_call *call, const jn_redis_reply *reply) {
    mark_req *q = container_of(call, mark_req, call);
    if (!q->err[0] && !reply)
        snprintf(q->err, sizeof q->err, "the connection to Redis was lost");
    else if (!q->err[0] && jn_redis_reply_kind(reply) == JN_REDIS_ERROR)
        snprintf(q->err, sizeof q->err, "marking: %s", jn_redis_reply_str(reply, NULL));
    if (--q->left > 0) return;
    q->cb(q->arg, q->err[0] ? q->err : NULL);
    free(q);
}

/* ---- buckets --------------------------------------------------------------------------- */

/* The bucket width: ttl / 2, so JN_MARKS_BUCKETS buckets cover a mark's whole life. */
static uint64_t bucket_width(const jn_marks_layout *l) {
    return l->ttl_s > 1 ? (uint64_t)(l->ttl_s + 1) / 2 : 1;
}

/* "<prefix>b:<n>" into buf (JN_MARKS_BUCKET_KEY_MAX bytes); returns its length. */
static size_t bucket_key(const jn_marks_layout *l, const char *any_key, uint64_t n, char *buf) {
    return (size_t)snprintf(buf, JN_MARKS_BUCKET_KEY_MAX, "%.*sb:%llu", (int)l->prefix_len, any_key,
                            (unsigned long long)n);
}

static void on_smismember_reply(jn_redis_call *call, const jn_redis_reply *reply) {
    exists_req *q = container_of(call, exists_req, call);
    if (!q->err[0]) {
        const char *err = check_reply("SMISMEMBER", reply, JN_REDIS_ARRAY, q->err, sizeof q->err);
        if (!err && jn_redis_reply_count(reply) != q->n)
            err = "SMISMEMBER: answered a different count";
        if (err && err != q->err) snprintf(q->err, sizeof q->err, "%s", err);
        for (size_t i = 0; !q->err[0] && i < q->n; i++)
            if (jn_redis_reply_integer(jn_redis_reply_at(reply, i)) != 0) q->found[i] = 1;
    }
    if (--q->left > 0) return;
    exists_done(q, q->err[0] ? q->err : NULL);
}

/* A mark's member: the first 128 bits of its hex in binary, or the text itself when it
 * is not hex (a prefix_len that does not fit the keys). Returns its length. */
static size_t member(const jn_marks_layout *l, const char *key, char out[16]) {
    /* One more than the value of each lowercase hex digit, 0 for every other byte: a
     * constant table, as this runs for every mark of every check and write, on any
     * thread. */
    static const unsigned char digit[256] = {
        ['0'] = 1,  ['1'] = 2,  ['2'] = 3,  ['3'] = 4,  ['4'] = 5,  ['5'] = 6,
        ['6'] = 7,  ['7'] = 8,  ['8'] = 9,  ['9'] = 10, ['a'] = 11, ['b'] = 12,
        ['c'] = 13, ['d'] = 14, ['e'] = 15, ['f'] = 16,
    };
    const unsigned char *h = (const unsigned char *)key + l->prefix_len;
    for (int i = 0; i < 16; i++) {
        /* One digit at a time: a short key ends at its NUL, which is not one. */
        int hi = digit[h[2 * i]];
        if (!hi) return 0;
        int lo = digit[h[2 * i + 1]];
        if (!lo) return 0;
        out[i] = (char)((hi - 1) << 4 | (lo - 1));
    }
    return 16;
}

/* Every key's member, decoded once: sizing a command and writing it both need them. */
typedef struct {
    char bin[16];
    size_t len; /* 16, or 0: the member is the key's text after the prefix */
} member_of_key;

/* The members of keys[0 .. n), with the bytes their bulk strings take in *size; NULL
 * when out of memory. */
static member_of_key *members_of(const jn_marks_layout *l, const char *const *keys, size_t n,
                                 size_t *size) {
    member_of_key *m = malloc(n * sizeof *m);
    if (!m) return NULL;
    *size = 0;
    for (size_t i = 0; i < n; i++) {
        m[i].len = member(l, keys[i], m[i].bin);
        *size += jn_resp_bulk_size(m[i].len ? m[i].len : strlen(keys[i]) - l->prefix_len);
    }
    return m;
}

/* Writes key's member m as a bulk string at p. */
static char *put_member(const jn_marks_layout *l, char *p, const char *key,
                        const member_of_key *m) {
    return m->len ? jn_resp_put_bulk(p, m->bin, m->len)
                  : jn_resp_put_bulk(p, key + l->prefix_len, strlen(key) - l->prefix_len);
}

static int exists_buckets(jn_redis *r, const jn_marks_layout *l, const char *const *keys, size_t n,
                          jn_marks_exists_cb cb, void *arg) {
    size_t fields_len;
    member_of_key *m = members_of(l, keys, n, &fields_len);
    size_t room = JN_RESP_HEAD_MAX + jn_resp_bulk_size(JN_MARKS_BUCKET_KEY_MAX);
    exists_req *q = m ? malloc(sizeof *q + n + room + fields_len) : NULL;
    if (!q) {
        free(m);
        return -1;
    }
    memset(q->found, 0, n);
    q->r = r;
    q->cb = cb;
    q->arg = arg;
    q->n = n;
    q->err[0] = '\0';
    q->left = 0;
    q->call.cb = on_smismember_reply;
    char *fields = (char *)q->found + n + room, *p = fields;
    for (size_t i = 0; i < n; i++)
        p = put_member(l, p, keys[i], &m[i]);
    free(m);
    uint64_t now = (uint64_t)time(NULL), width = bucket_width(l), cur = now / width;
    /* The buckets are written in front of the same fields in turn: sending copies. */
    for (int b = 0; b < JN_MARKS_BUCKETS && (uint64_t)b <= cur; b++) {
        char key[JN_MARKS_BUCKET_KEY_MAX];
        size_t klen = bucket_key(l, keys[0], cur - (uint64_t)b, key);
        size_t head = jn_resp_head_size(n + 2, "SMISMEMBER") + jn_resp_bulk_size(klen);
        char *cmd = fields - head;
        jn_resp_put_bulk(jn_resp_put_head(cmd, n + 2, "SMISMEMBER"), key, klen);
        if (jn_redis_send(r, &q->call, cmd, head + fields_len) != 0) break;
        q->left++;
    }
    if (q->left == 0) {
        free(q);
        return -1;
    }
    return 0;
}

static int set_buckets(jn_redis *r, const jn_marks_layout *l, const char *const *keys, size_t n,
                       jn_marks_done_cb cb, void *arg) {
    uint64_t width = bucket_width(l), cur = (uint64_t)time(NULL) / width;
    char key[JN_MARKS_BUCKET_KEY_MAX];
    size_t klen = bucket_key(l, keys[0], cur, key);
    size_t fields_len;
    member_of_key *m = members_of(l, keys, n, &fields_len);
    if (!m) abort();
    size_t len = jn_resp_head_size(n + 2, "SADD") + jn_resp_bulk_size(klen) + fields_len;
    char *cmd = malloc(len), *p = cmd;
    mark_req *q = malloc(sizeof *q);
    if (!cmd || !q) abort();
    p = jn_resp_put_bulk(jn_resp_put_head(p, n + 2, "SADD"), key, klen);
    for (size_t i = 0; i < n; i++)
        p = put_member(l, p, keys[i], &m[i]);
    free(m);
    q->call.cb = on_mark_reply;
    q->cb = cb;
    q->arg = arg;
    q->left = 0;
    q->err[0] = '\0';
    int rc = jn_redis_send(r, &q->call, cmd, len);
    free(cmd);
    if (rc != 0) {
        free(q);
        return -1;
    }
    q->left = 1;
    /* Every batch renews the bucket's expiry: it ends ttl after the bucket does. */
    char ttl[24], ex[JN_RESP_HEAD_MAX + JN_MARKS_BUCKET_KEY_MAX + 64];
    int tlen = snprintf(ttl, sizeof ttl, "%llu",
                        (unsigned long long)((cur + 1) * width + (uint64_t)l->ttl_s));
    p = jn_resp_put_bulk(jn_resp_put_head(ex, 3, "EXPIREAT"), key, klen);
    p = jn_resp_put_bulk(p, ttl, (size_t)tlen);
    if (jn_redis_send(r, &q->call, ex, (size_t)(p - ex)) == 0)
        q->left++;
    else
        snprintf(q->err, sizeof q->err, "EXPIREAT: not sent");
    return 0;
}

/* ---- keys ------------------------------------------------------------------------------ */

int jn_marks_exists(jn_redis *r, const jn_marks_layout *l, const char *const *keys, size_t n,
                    jn_marks_exists_cb cb, void *arg) {
    if (!jn_redis_connected(r) || n >= INT_MAX) return -1;
    if (n && l->kind == JN_MARKS_LAYOUT_BUCKETS) return exists_buckets(r, l, keys, n, cb, arg);
    if (n == 0) {
        /* EXISTS needs a key; nothing to ask means nothing found. */
        cb(arg, NULL, NULL, 0);
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

int jn_marks_set(jn_redis *r, const jn_marks_layout *l, const char *const *keys, size_t n,
                 jn_marks_done_cb cb, void *arg) {
    if (!jn_redis_connected(r)) return -1;
    if (n == 0) {
        cb(arg, NULL);
        return 0;
    }
    if (l->kind == JN_MARKS_LAYOUT_BUCKETS) return set_buckets(r, l, keys, n, cb, arg);
    set_cmds sc;
    if (set_cmds_init(&sc, keys, n, l->ttl_s) != 0) return -1;
    mark_req *q = malloc(sizeof *q);
    if (!q) {
        free(sc.buf);
        return -1;
    }
    q->call.cb = on_mark_reply;
    q->cb = cb;
    q->arg = arg;
    q->left = n;
    q->err[0] = '\0';
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
        snprintf(q->err, sizeof q->err, "SET: out of memory");
    }
    return 0;
}
