/* The consumer. A customer message goes through four steps, each batched:
 *   check   one MGET for the processed:<sha256> marks of every new message
 *   merge   merge.lua's customer(); the result may be held until its products arrive
 *   deliver the sink POSTs it to analytics (or it is dead-lettered for good)
 *   mark    one pipelined SET ... EX ttl per delivered record, then the offset settles
 * A message settles as delivered (after its mark), duplicate, or dead-lettered; the
 * commit timer commits, per partition, the first offset not yet settled. A crash at any
 * point therefore loses nothing: what was not settled is read again. A record can be
 * delivered twice only if the process dies between its delivery and its mark, and the
 * batch's Idempotency-Key lets the receiver see it.
 *
 * Products are state, not events: every consumer process reads the whole product topic
 * with a private catalogue reader (its own group id, never committed), so each one can
 * join its share of customers against all products. */
#include "consumer.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "http_client.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "redis.h"
#include "sink.h"
#include "strmap.h"

#define CHECK_BATCH      500
#define CHECKS_IN_FLIGHT 2

typedef struct partition {
    char topic[128];
    int32_t id;
    unsigned gen; /* bumped on every assignment, so stale settles are ignored */
    int assigned, revoking;
    jn_offsets offs;
    int64_t committed;
    jn_metric *m_lag;
    struct partition *next;
} partition;

typedef struct pmsg {
    partition *p;
    unsigned gen;
    int64_t offset;
    char dkey[80]; /* processed:<sha256 hex> */
    unsigned char hash[32];
    char *value, *key;
    size_t value_len, key_len;
    char cid[64];
    struct pmsg *next;
    struct pmsg *followers; /* later messages with the same content, settled with this one */
    int leader;             /* registered in jn_consumer.inflight */
    /* Settlement is the host's, whatever the script returned: a message waits for the
     * records its own merge call produced (outstanding), and while it is in waiting (for
     * a record answering its customer id, which merge.lua gives when it releases a held
     * customer). It settles when both are over. */
    int outstanding;
    int in_waiting;
    int held;                           /* the script said ctx.hold(): waiting has a deadline */
    uint64_t held_until;                /* loop milliseconds */
    struct pmsg *held_prev, *held_next; /* held messages, oldest first */
    char *refused;                      /* why a record of it was refused, once one was */
    struct pmsg *all_prev, *all_next;
    size_t cap; /* bytes in data: the value and the key, each with a NUL */
    char data[];
} pmsg;

/* Freed messages kept for reuse (at most this many): one allocation per message, taken
 * and given back in batches of hundreds, is what malloc handles worst. Not in the
 * sanitizer build, where a reused message would hide a use after free. */
#if defined(__SANITIZE_ADDRESS__)
#define SPARE_MAX 0
#else
#define SPARE_MAX 4096
#endif
#define SPARE_SIZE 512 /* data bytes of a new message, unless it needs more */

/* One merged record in the sink, and the messages waiting for it (none for a re-emit). */
typedef struct delivery {
    pmsg **msgs; /* inline for the usual one or two, else malloc'd */
    int nmsgs, cap;
    pmsg *inline_msgs[2];
    char *json; /* kept for re-emits only, to dead-letter them if refused */
    size_t len;
    struct delivery *prev, *next; /* every live delivery, for the final cleanup */
} delivery;

struct jn_consumer {
    uv_loop_t *loop;
    jn_script_host *scripts;
    jn_script *merge;
    const jn_config *cfg;
    jn_kafka_consumer *group, *catalogue;
    jn_kafka_producer *dlq;
    jn_redis *redis;
    jn_http_client *http;
    jn_sink *sink;
    partition *parts;
    pmsg *spare; /* freed messages for reuse, linked through next */
    size_t nspare;
    jn_sb json;          /* deliver_results' encoding buffer, kept between calls */
    jn_strmap *waiting;  /* customer id -> pmsg list (packed pointer) awaiting merge output */
    jn_strmap *inflight; /* content hash -> the message carrying it until it settles */
    pmsg *check_head, *check_tail;
    size_t ncheck;
    pmsg *mark_head;
    size_t nmark;
    int checking; /* check batches at Redis (up to CHECKS_IN_FLIGHT) */
    int marking;
    uv_timer_t check_timer, mark_timer, commit_timer, expire_timer, revoke_timer;
    int ctx_ref;
    /* The customer() call in progress: its message, whether the script held it, and for
     * how long. */
    pmsg *call_msg;
    int call_held;
    long call_hold_ms;
    pmsg *held_head, *held_tail;
    long pending; /* messages alive (not settled) */
    int redis_up, paused, stopping;
    int holding; /* taking nothing from the group consumer: too much pending */
    /* Tables first: no customer is merged before the catalogue reader has read every
     * product partition to its end, or customers would go out without products that
     * exist and again when they arrive. */
    int tables_loaded;
    unsigned char *cat_eof; /* per product partition: read to its end at least once */
    int cat_nparts, cat_loaded_parts;
    uint64_t load_started_ms;
    uint64_t revoke_deadline, commit_sent_ns;
    int revoke_commit_wait;
    int handles, stop_stage;
    pmsg *all; /* every live message, for the final cleanup */
    struct delivery *deliveries;
    void (*done)(void *);
    void *done_arg;
    jn_metric *m_consumed, *m_products, *m_duplicates, *m_merged, *m_delivered, *m_dead, *m_commit,
        *m_held, *m_pending, *m_script_errors, *m_hold_expired;
};

static void flush_checks(jn_consumer *c);
static void flush_marks(jn_consumer *c);

static void on_check_timer(uv_timer_t *t) {
    flush_checks(t->data);
}

static void on_mark_timer(uv_timer_t *t) {
    flush_marks(t->data);
}
static void update_flow(jn_consumer *c);

/* ---- small helpers ----------------------------------------------------------------- */

static char *dup_bytes(const void *p, size_t n) {
    char *s = malloc(n + 1);
    if (!s) abort();
    if (n) memcpy(s, p, n);
    s[n] = '\0';
    return s;
}

static pmsg *waiting_get(jn_consumer *c, const char *cid) {
    const unsigned char *v = jn_strmap_get(c->waiting, cid, strlen(cid));
    pmsg *m = NULL;
    if (v) memcpy(&m, v, sizeof m);
    return m;
}

static void waiting_set(jn_consumer *c, const char *cid, pmsg *m) {
    if (!m) {
        jn_strmap_del(c->waiting, cid, strlen(cid));
        return;
    }
    unsigned char v[JN_STRMAP_VALUE] = {0};
    memcpy(v, &m, sizeof m); /* the map stores fixed-size values: a pointer fits */
    jn_strmap_set(c->waiting, cid, strlen(cid), v);
}

static void held_unlink(jn_consumer *c, pmsg *m) {
    if (!m->held) return;
    if (m->held_prev)
        m->held_prev->held_next = m->held_next;
    else
        c->held_head = m->held_next;
    if (m->held_next)
        m->held_next->held_prev = m->held_prev;
    else
        c->held_tail = m->held_prev;
    m->held_prev = m->held_next = NULL;
    m->held = 0;
}

/* Takes every message waiting for customer id cid off waiting; returns them as a list. */
static pmsg *waiting_take(jn_consumer *c, const char *cid) {
    pmsg *list = waiting_get(c, cid);
    if (!list) return NULL;
    waiting_set(c, cid, NULL);
    for (pmsg *m = list; m; m = m->next) {
        m->in_waiting = 0;
        held_unlink(c, m);
    }
    return list;
}

/* Takes one message off waiting. */
static void waiting_remove(jn_consumer *c, pmsg *m) {
    pmsg *head = waiting_get(c, m->cid), *prev = NULL;
    for (pmsg *x = head; x; prev = x, x = x->next) {
        if (x != m) continue;
        if (prev)
            prev->next = m->next;
        else
            waiting_set(c, m->cid, m->next);
        break;
    }
    m->next = NULL;
    m->in_waiting = 0;
    held_unlink(c, m);
}

static partition *find_partition(jn_consumer *c, const char *topic, int32_t id, int create) {
    for (partition *p = c->parts; p; p = p->next)
        if (p->id == id && !strcmp(p->topic, topic)) return p;
    if (!create) return NULL;
    partition *p = calloc(1, sizeof *p);
    if (!p) abort();
    snprintf(p->topic, sizeof p->topic, "%s", topic);
    p->id = id;
    jn_offsets_init(&p->offs);
    p->committed = -1;
    char labels[200];
    snprintf(labels, sizeof labels, "topic=\"%s\",partition=\"%d\"", topic, (int)id);
    p->m_lag =
        jn_metrics_gauge("junction_consumer_lag", "Messages behind the partition's end", labels);
    p->next = c->parts;
    c->parts = p;
    return p;
}

/* A message with copies of value and key (NUL-terminated too). */
static pmsg *new_pmsg(jn_consumer *c, const void *value, size_t value_len, const void *key,
                      size_t key_len) {
    size_t need = value_len + key_len + 2;
    pmsg *m = c->spare;
    if (m && m->cap >= need) {
        c->spare = m->next;
        c->nspare--;
    } else {
        size_t cap = need > SPARE_SIZE ? need : SPARE_SIZE;
        m = malloc(sizeof *m + cap);
        if (!m) abort();
        m->cap = cap;
    }
    size_t cap = m->cap;
    memset(m, 0, sizeof *m);
    m->cap = cap;
    m->value = m->data;
    m->value_len = value_len;
    if (value_len) memcpy(m->value, value, value_len);
    m->value[value_len] = '\0';
    m->key = m->data + value_len + 1;
    m->key_len = key_len;
    if (key_len) memcpy(m->key, key, key_len);
    m->key[key_len] = '\0';
    m->all_next = c->all;
    if (c->all) c->all->all_prev = m;
    c->all = m;
    c->pending++;
    jn_metric_set(c->m_pending, (double)c->pending);
    return m;
}

static void free_pmsg(jn_consumer *c, pmsg *m) {
    free(m->refused);
    m->refused = NULL;
    if (m->all_prev)
        m->all_prev->all_next = m->all_next;
    else
        c->all = m->all_next;
    if (m->all_next) m->all_next->all_prev = m->all_prev;
    if (c->nspare + 1 <= SPARE_MAX && m->cap == SPARE_SIZE) {
        m->next = c->spare;
        c->spare = m;
        c->nspare++;
    } else {
        free(m);
    }
    c->pending--;
    jn_metric_set(c->m_pending, (double)c->pending);
}

/* The message's fate is sealed: let the watermark move past it. */
static void settle(jn_consumer *c, pmsg *m) {
    if (m->leader) {
        jn_strmap_del(c->inflight, (const char *)m->hash, 32);
        for (pmsg *f = m->followers, *n; f; f = n) {
            n = f->next;
            jn_metric_add(c->m_duplicates, 1);
            settle(c, f);
        }
        m->followers = NULL;
    }
    if (m->p->assigned && m->p->gen == m->gen) jn_offsets_settle(&m->p->offs, m->offset);
    free_pmsg(c, m);
    update_flow(c);
}

/* Identifies a record by the id field at the top of the stack's table. */
static int read_cid(lua_State *L, int idx, char *out, size_t cap) {
    int t = jn_lua_rawgetfield(L, idx, "id"); /* no metamethods outside the call limits */
    int ok = 1;
    size_t len;
    if (t == LUA_TNUMBER && lua_isinteger(L, -1) && cap >= JN_INT_CHARS) {
        jn_fmt_int(out, (long long)lua_tointeger(L, -1)); /* every customer: no printf */
    } else if (t == LUA_TNUMBER) {
        snprintf(out, cap, "%.0f", lua_tonumber(L, -1));
    } else if (t == LUA_TSTRING && (len = lua_rawlen(L, -1)) > 0 && len < cap) {
        memcpy(out, lua_tostring(L, -1), len + 1);
    } else {
        ok = 0;
    }
    lua_pop(L, 1);
    return ok ? 0 : -1;
}

/* ---- dead letters ------------------------------------------------------------------ */

static void dead_letter(jn_consumer *c, pmsg *m, const char *reason) {
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", m ? (int)m->p->id : -1);
    snprintf(off, sizeof off, "%lld", m ? (long long)m->offset : -1LL);
    const char *hdrs[] = {"error",
                          reason,
                          "source_topic",
                          m ? m->p->topic : "",
                          "source_partition",
                          part,
                          "source_offset",
                          off,
                          NULL};
    int rc = jn_kafka_produce(c->dlq, c->cfg->consumer.dead_letter_topic, m->key, m->key_len,
                              m->value, m->value_len, hdrs, m);
    if (rc != 0)
        jn_log_error("consumer",
                     "cannot queue message %s/%d@%lld for the dead-letter topic: %s; "
                     "it stays unsettled and is read again after a restart",
                     m->p->topic, (int)m->p->id, (long long)m->offset,
                     rd_kafka_err2str((rd_kafka_resp_err_t)rc));
}

static void on_dlq_delivery(void *ud, void *opaque, rd_kafka_resp_err_t err, const char *topic,
                            int32_t partition_, int64_t offset) {
    (void)topic, (void)partition_, (void)offset;
    jn_consumer *c = ud;
    pmsg *m = opaque;
    if (err) {
        /* The broker did not take it: try again; the offset stays until it does. */
        jn_log_warn("consumer", "dead-letter write failed (%s); retrying", rd_kafka_err2str(err));
        if (!c->stopping) dead_letter(c, m, "retry");
        return;
    }
    jn_metric_add(c->m_dead, 1);
    settle(c, m);
}

/* A re-emit (a record answering no message) the receiver refused: to the dead-letter
 * topic as the merged record itself. */
static void dead_letter_reemit(jn_consumer *c, delivery *d, const char *reason) {
    pmsg *m = new_pmsg(c, d->json, d->len, "", 0);
    static partition none = {.topic = "(re-emit)", .id = -1};
    m->p = &none;
    dead_letter(c, m, reason);
}

/* Every record a message waited for is over: marked as processed (then settled), or,
 * when one was refused, written to the dead-letter topic with the reason. */
static void finish_msg(jn_consumer *c, pmsg *m) {
    if (m->refused) {
        dead_letter(c, m, m->refused);
        return;
    }
    m->next = c->mark_head;
    c->mark_head = m;
    c->nmark++;
    if (!uv_is_active((uv_handle_t *)&c->mark_timer))
        uv_timer_start(&c->mark_timer, on_mark_timer, 0, 0);
}

/* The delivery will tell m when its record is through. */
static void delivery_add(delivery *d, pmsg *m) {
    if (d->nmsgs == d->cap) {
        int cap = d->cap ? d->cap * 2 : 2;
        pmsg **grown = d->msgs == d->inline_msgs ? malloc(sizeof *grown * (size_t)cap)
                                                 : realloc(d->msgs, sizeof *grown * (size_t)cap);
        if (!grown) abort();
        if (d->msgs == d->inline_msgs) memcpy(grown, d->inline_msgs, sizeof d->inline_msgs);
        d->msgs = grown;
        d->cap = cap;
    }
    d->msgs[d->nmsgs++] = m;
    m->outstanding++;
}

/* ---- delivering -------------------------------------------------------------------- */

/* Takes ownership of the array of merged records at the top of the stack and hands each
 * to the sink. A record answers the messages waiting for its customer id (held ones,
 * and the message of this call when the script kept the id). During a customer() call
 * whose message no record answers and that the script did not hold (a transform that
 * filters, or changes the id), the message waits for every record of the call instead,
 * and settles at once when there is none: settlement never depends on ids the script
 * chose. */
static void deliver_results(jn_consumer *c, lua_State *L) {
    pmsg *own = c->call_msg;
    if (!lua_istable(L, -1)) {
        lua_pop(L, 1);
        return;
    }
    int arr = lua_gettop(L);
    lua_Integer n = (lua_Integer)lua_rawlen(L, arr);
    int created = 0, answered = 0;
    jn_sb *json = &c->json;
    for (lua_Integer i = 1; i <= n; i++) {
        lua_rawgeti(L, arr, i);
        char cid[64];
        const char *err = NULL;
        json->len = 0;
        if (!lua_istable(L, -1) || read_cid(L, lua_gettop(L), cid, sizeof cid) != 0) {
            jn_log_error("consumer", "merge.lua returned a record without an id; skipped");
            jn_metric_add(c->m_script_errors, 1);
            lua_pop(L, 1);
            continue;
        }
        if (jn_json_encode(L, -1, NULL, json, &err) != 0) {
            jn_log_error("consumer", "merge.lua returned a record for %s that is not JSON: %s", cid,
                         err);
            jn_metric_add(c->m_script_errors, 1);
            lua_pop(L, 1);
            continue;
        }
        lua_pop(L, 1);
        delivery *d = calloc(1, sizeof *d);
        if (!d) abort();
        d->msgs = d->inline_msgs;
        d->cap = 2;
        d->next = c->deliveries;
        if (d->next) d->next->prev = d;
        c->deliveries = d;
        created++;
        if (own && !strcmp(cid, own->cid)) answered = 1;
        for (pmsg *m = waiting_take(c, cid), *next; m; m = next) {
            next = m->next;
            m->next = NULL;
            delivery_add(d, m);
        }
        /* The record's identity for the batch's Idempotency-Key: the content hash of the
         * message it answers, which a replay after a crash reads again unchanged (the
         * merged record itself carries merged_at, which would differ); in a customer()
         * call, that message's hash with the record's place in the output. */
        unsigned char key[32];
        if (d->nmsgs) {
            memcpy(key, d->msgs[0]->hash, 32);
        } else if (own) {
            unsigned char seed[40];
            memcpy(seed, own->hash, 32);
            memcpy(seed + 32, &i, sizeof i);
            jn_sha256(seed, sizeof seed, key);
        } else {
            jn_sha256(json->data, json->len, key);
        }
        if (!d->nmsgs) { /* to dead-letter the record itself if it is refused */
            d->json = dup_bytes(json->data, json->len);
            d->len = json->len;
        }
        jn_metric_add(c->m_merged, 1);
        /* The sink reports through on_sink_done from a later loop turn, never from here,
         * so messages may still be added to d below. */
        jn_sink_add(c->sink, json->data, json->len, key, d);
    }
    lua_pop(L, 1);
    /* The message of this call, neither answered by its id nor held (a transform that
     * filters, or changes the id): it waits for every record the call produced, which
     * are the newest deliveries. */
    if (own && !answered && !c->call_held && own->in_waiting) {
        waiting_remove(c, own);
        delivery *d = c->deliveries;
        for (int k = 0; k < created; k++, d = d->next)
            delivery_add(d, own);
    }
}

static void free_delivery(jn_consumer *c, delivery *d) {
    if (d->prev)
        d->prev->next = d->next;
    else
        c->deliveries = d->next;
    if (d->next) d->next->prev = d->prev;
    if (d->msgs != d->inline_msgs) free(d->msgs);
    free(d->json);
    free(d);
}

static void on_sink_done(void *ud, void *item, int status, const char *reason) {
    jn_consumer *c = ud;
    delivery *d = item;
    if (status == 0) {
        jn_metric_add(c->m_delivered, 1);
    } else {
        jn_log_warn("consumer", "analytics refused a record for good (%s); dead-lettering %s",
                    reason, d->nmsgs ? "the message(s) it answers" : "it");
        if (!d->nmsgs) dead_letter_reemit(c, d, reason);
    }
    for (int i = 0; i < d->nmsgs; i++) {
        pmsg *m = d->msgs[i];
        if (status != 0 && !m->refused) m->refused = dup_bytes(reason, strlen(reason));
        if (--m->outstanding == 0 && !m->in_waiting) finish_msg(c, m);
    }
    free_delivery(c, d);
}

/* Pushes the ctx table handed to merge.lua, with ctx.now in wall-clock seconds (what
 * junction.now() gives, so scripts can compare the two). */
static void push_ctx(jn_consumer *c, lua_State *L) {
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    lua_rawgeti(L, LUA_REGISTRYINDEX, c->ctx_ref);
    lua_pushnumber(L, (double)ts.tv_sec + (double)ts.tv_nsec / 1e9);
    jn_lua_rawsetfield(L, -2, "now"); /* the script may have given ctx a metatable */
}

/* Calls merge.lua's fn(record, ctx) with the record at the top of the stack. */
static int call_merge(jn_consumer *c, const char *fn, char **err) {
    push_ctx(c, jn_script_host_lua(c->scripts));
    return jn_script_call(c->merge, fn, 2, 1, err);
}

/* ---- merging ----------------------------------------------------------------------- */

/* ctx.hold([ms]): the script keeps the customer of this call back (waiting for products);
 * its message waits for a record answering its id, at most ms (consumer.hold_ms) plus a
 * grace for the script's own expire(), after which the host dead-letters it rather than
 * wait for ever. Outside customer() it does nothing and returns false. */
static int l_ctx_hold(lua_State *L) {
    jn_consumer *c = lua_touserdata(L, lua_upvalueindex(1));
    if (!c->call_msg) {
        lua_pushboolean(L, 0);
        return 1;
    }
    lua_Integer ms = luaL_optinteger(L, 1, c->cfg->consumer.hold_ms);
    c->call_held = 1;
    c->call_hold_ms = ms < 0 ? 0 : (long)ms;
    lua_pushboolean(L, 1);
    return 1;
}

static void merge_customer(jn_consumer *c, pmsg *m) {
    lua_State *L = jn_script_host_lua(c->scripts);
    int top = lua_gettop(L);
    char jerr[160];
    if (jn_json_decode(L, m->value, m->value_len, jerr, sizeof jerr) != 0 || !lua_istable(L, -1)) {
        lua_settop(L, top);
        jn_metric_add(c->m_script_errors, 1);
        dead_letter(c, m, "value is not a JSON object");
        return;
    }
    if (read_cid(L, lua_gettop(L), m->cid, sizeof m->cid) != 0) {
        lua_settop(L, top);
        dead_letter(c, m, "record has no id");
        return;
    }
    /* Register first: the merge may answer for this customer right away. */
    m->next = waiting_get(c, m->cid);
    waiting_set(c, m->cid, m);
    m->in_waiting = 1;
    c->call_msg = m;
    c->call_held = 0;
    char *err = NULL;
    int rc = call_merge(c, "customer", &err);
    if (rc != 0) {
        c->call_msg = NULL;
        if (m->in_waiting) waiting_remove(c, m);
        jn_metric_add(c->m_script_errors, 1);
        /* The header carries the error itself; the traceback goes to the log. */
        jn_log_warn("consumer", "merge.lua failed on %s/%d@%lld: %s", m->p->topic, (int)m->p->id,
                    (long long)m->offset, err);
        char reason[512];
        snprintf(reason, sizeof reason, "merge.lua: %.480s", err);
        char *nl = strchr(reason, '\n');
        if (nl) *nl = '\0';
        free(err);
        lua_settop(L, top);
        if (m->outstanding == 0) dead_letter(c, m, reason);
        return;
    }
    deliver_results(c, L);
    c->call_msg = NULL;
    lua_settop(L, top);
    if (!m->in_waiting) {
        /* Answered by its id, or waiting for the records of its call; with none, done. */
        if (m->outstanding == 0) finish_msg(c, m);
        return;
    }
    if (c->call_held) {
        uint64_t grace = c->call_hold_ms / 2 > 2000 ? (uint64_t)c->call_hold_ms / 2 : 2000;
        m->held = 1;
        m->held_until = uv_now(c->loop) + (uint64_t)c->call_hold_ms + grace;
        m->held_prev = c->held_tail;
        if (c->held_tail)
            c->held_tail->held_next = m;
        else
            c->held_head = m;
        c->held_tail = m;
        return;
    }
    waiting_remove(c, m); /* the call returned no array at all */
    if (m->outstanding == 0) finish_msg(c, m);
}

/* Messages the script held past their deadline: their customers never came out. */
static void expire_holds(jn_consumer *c) {
    uint64_t now = uv_now(c->loop);
    while (c->held_head && c->held_head->held_until <= now) {
        pmsg *m = c->held_head;
        waiting_remove(c, m);
        jn_metric_add(c->m_hold_expired, 1);
        jn_log_warn("consumer",
                    "merge.lua held customer %s (%s/%d@%lld) past its deadline without "
                    "delivering it; dead-lettering the message",
                    m->cid, m->p->topic, (int)m->p->id, (long long)m->offset);
        if (!m->refused) {
            const char *why = "held by the transform past its deadline without output";
            m->refused = dup_bytes(why, strlen(why));
        }
        if (m->outstanding == 0) finish_msg(c, m);
    }
}

static void on_expire(uv_timer_t *t) {
    jn_consumer *c = t->data;
    lua_State *L = jn_script_host_lua(c->scripts);
    int top = lua_gettop(L);
    char *err = NULL;
    push_ctx(c, L);
    if (jn_script_call(c->merge, "expire", 1, 1, &err) != 0) {
        jn_log_error("consumer", "merge.lua expire() failed: %s", err);
        free(err);
        lua_settop(L, top);
    } else {
        deliver_results(c, L);
        lua_settop(L, top);
    }
    expire_holds(c);
    jn_metric_set(c->m_held, (double)jn_strmap_count(c->waiting));
}

/* ---- de-duplication ---------------------------------------------------------------- */

typedef struct {
    jn_consumer *c;
    pmsg **msgs;
    size_t n;
} redis_batch;

static void requeue_checks(jn_consumer *c, pmsg **msgs, size_t n) {
    for (size_t i = n; i-- > 0;) {
        msgs[i]->next = c->check_head;
        c->check_head = msgs[i];
        if (!c->check_tail) c->check_tail = msgs[i];
        c->ncheck++;
    }
}

static void on_checked(void *arg, int err, const unsigned char *found, size_t n) {
    redis_batch *b = arg;
    jn_consumer *c = b->c;
    c->checking--;
    /* The next check goes out before this batch's merges: Redis answers it while we
     * work instead of after. */
    if (!err && !c->stopping) flush_checks(c);
    if (err) {
        /* Unknown answers: nothing may pass unchecked. Wait for Redis. */
        if (!c->stopping)
            requeue_checks(c, b->msgs, n);
        else
            for (size_t i = 0; i < n; i++)
                free_pmsg(c, b->msgs[i]);
        c->redis_up = jn_redis_connected(c->redis);
        update_flow(c);
    } else {
        for (size_t i = 0; i < n; i++) {
            pmsg *m = b->msgs[i];
            if (found[i]) {
                jn_metric_add(c->m_duplicates, 1);
                settle(c, m);
            } else {
                merge_customer(c, m);
            }
        }
    }
    free(b->msgs);
    free(b);
    if (c->ncheck && !c->stopping) flush_checks(c);
}

static void flush_checks(jn_consumer *c) {
    if (c->checking >= CHECKS_IN_FLIGHT || !c->ncheck || !c->redis_up) return;
    size_t n = c->ncheck < CHECK_BATCH ? c->ncheck : CHECK_BATCH;
    redis_batch *b = malloc(sizeof *b);
    const char **keys = malloc(n * sizeof *keys);
    if (!b || !keys) abort();
    b->c = c;
    b->n = n;
    b->msgs = malloc(n * sizeof *b->msgs);
    if (!b->msgs) abort();
    for (size_t i = 0; i < n; i++) {
        pmsg *m = c->check_head;
        c->check_head = m->next;
        m->next = NULL;
        b->msgs[i] = m;
        keys[i] = m->dkey;
    }
    if (!c->check_head) c->check_tail = NULL;
    c->ncheck -= n;
    c->checking++;
    if (jn_redis_exists(c->redis, keys, n, on_checked, b) != 0) on_checked(b, 1, NULL, n);
    free(keys);
}

static void on_marked(void *arg, int err) {
    redis_batch *b = arg;
    jn_consumer *c = b->c;
    c->marking = 0;
    for (size_t i = 0; i < b->n; i++) {
        pmsg *m = b->msgs[i];
        if (err && !c->stopping) {
            /* Delivered but not marked: keep it unsettled until the mark is written. */
            m->next = c->mark_head;
            c->mark_head = m;
            c->nmark++;
        } else {
            settle(c, m);
        }
    }
    free(b->msgs);
    free(b);
    if (err) {
        c->redis_up = jn_redis_connected(c->redis);
        update_flow(c);
    } else if (c->nmark) {
        flush_marks(c);
    }
}

static void flush_marks(jn_consumer *c) {
    if (c->marking || !c->nmark || !c->redis_up) return;
    size_t n = c->nmark;
    redis_batch *b = malloc(sizeof *b);
    const char **keys = malloc(n * sizeof *keys);
    if (!b || !keys) abort();
    b->c = c;
    b->n = n;
    b->msgs = malloc(n * sizeof *b->msgs);
    if (!b->msgs) abort();
    size_t i = 0;
    for (pmsg *m = c->mark_head; m; m = m->next) {
        b->msgs[i] = m;
        keys[i++] = m->dkey;
    }
    c->mark_head = NULL;
    c->nmark = 0;
    c->marking = 1;
    if (jn_redis_mark(c->redis, keys, n, c->cfg->consumer.dedupe_ttl_s, on_marked, b) != 0)
        on_marked(b, 1);
    free(keys);
}

static void on_redis_state(void *ud, int connected) {
    jn_consumer *c = ud;
    c->redis_up = connected;
    if (connected) {
        jn_log_info("consumer", "Redis %s:%d reachable; consuming", c->cfg->redis.host,
                    c->cfg->redis.port);
        flush_marks(c);
        flush_checks(c);
    } else {
        jn_log_warn("consumer",
                    "Redis %s:%d unreachable; consumption paused, nothing is "
                    "skipped unchecked",
                    c->cfg->redis.host, c->cfg->redis.port);
    }
    update_flow(c);
}

/* Intake control. Too much pending: hold, and the messages librdkafka fetched wait there,
 * ready the moment settling catches up (a pause would discard them and fetch them again,
 * leaving the consumer idle meanwhile); rebalances are served during a hold all the
 * same, however long it lasts. Redis down: pause, nothing can be checked. */
static void update_flow(jn_consumer *c) {
    if (!c->group || c->stopping) return;
    long high = c->cfg->consumer.max_pending;
    int pause = !c->redis_up;
    int hold = !pause && (!c->tables_loaded || c->pending >= high ||
                          (c->holding && c->pending >= high * 3 / 4));
    if (pause != c->paused) {
        c->paused = pause;
        if (pause)
            jn_kafka_consumer_pause(c->group);
        else
            jn_kafka_consumer_resume(c->group);
    }
    if (hold != c->holding) {
        c->holding = hold;
        jn_kafka_consumer_hold(c->group, hold);
    }
}

/* ---- Kafka callbacks --------------------------------------------------------------- */

static void log_raw(const jn_kafka_msg *m) {
    if (!jn_log_enabled(JN_LOG_DEBUG)) return;
    jn_log_debug("consumer", "[KAFKA RAW] Topic: %s | Key: %.*s | Data: %.*s", m->topic,
                 (int)m->key_len, (const char *)m->key, (int)m->value_len, (const char *)m->value);
}

/* The slow path of the content hash: decode, encode with sorted keys, hash. A value
 * that is not JSON is dead-lettered (returns -1). */
static int canonical_hash(jn_consumer *c, pmsg *m) {
    lua_State *L = jn_script_host_lua(c->scripts);
    char jerr[160];
    if (jn_json_decode(L, m->value, m->value_len, jerr, sizeof jerr) != 0) {
        jn_metric_add(c->m_script_errors, 1);
        char reason[220];
        snprintf(reason, sizeof reason, "value is not JSON: %s", jerr);
        dead_letter(c, m, reason);
        return -1;
    }
    jn_sb canon;
    jn_sb_init(&canon);
    const char *eerr;
    if (jn_json_encode(L, -1, NULL, &canon, &eerr) != 0) canon.len = 0;
    lua_pop(L, 1);
    jn_sha256(canon.data ? canon.data : "", canon.len, m->hash);
    jn_sb_free(&canon);
    return 0;
}

static void on_group_message(void *ud, const jn_kafka_msg *km) {
    jn_consumer *c = ud;
    log_raw(km);
    jn_metric_add(c->m_consumed, 1);
    partition *p = find_partition(c, km->topic, km->partition, 1);
    if (jn_offsets_track(&p->offs, km->offset) != 0) return; /* seen before a seek */
    pmsg *m = new_pmsg(c, km->value, km->value_len, km->key, km->key_len);
    m->p = p;
    m->gen = p->gen;
    m->offset = km->offset;
    /* The mark names the record's content in canonical form (sorted keys), so the same
     * customer published twice with the same data is skipped, whatever the key order.
     * junction's producer publishes that form, whose bytes are hashed as they are;
     * other text is decoded and encoded first. The merge decodes the record only once
     * Redis has said it is new, so a duplicate is never decoded at all. */
    if (jn_json_is_canonical(m->value, m->value_len)) {
        jn_sha256(m->value, m->value_len, m->hash);
    } else if (canonical_hash(c, m) != 0) {
        return; /* dead-lettered */
    }
    memcpy(m->dkey, "processed:", 10);
    jn_hex(m->hash, 32, m->dkey + 10);
    /* The same content already on its way (read in the same fetch, or before its mark
     * was written): Redis cannot know yet, so follow that message and settle as its
     * duplicate when it settles. */
    pmsg *leader = NULL;
    const unsigned char *v = jn_strmap_get(c->inflight, (const char *)m->hash, 32);
    if (v) memcpy(&leader, v, sizeof leader);
    if (leader) {
        m->next = leader->followers;
        leader->followers = m;
        update_flow(c);
        return;
    }
    unsigned char packed[JN_STRMAP_VALUE] = {0};
    memcpy(packed, &m, sizeof m);
    jn_strmap_set(c->inflight, (const char *)m->hash, 32, packed);
    m->leader = 1;
    if (c->check_tail)
        c->check_tail->next = m;
    else
        c->check_head = m;
    c->check_tail = m;
    c->ncheck++;
    if (c->ncheck >= CHECK_BATCH)
        flush_checks(c);
    else if (!uv_is_active((uv_handle_t *)&c->check_timer))
        uv_timer_start(&c->check_timer, on_check_timer, 0, 0);
    update_flow(c);
}

static void on_product_message(void *ud, const jn_kafka_msg *km) {
    jn_consumer *c = ud;
    log_raw(km);
    jn_metric_add(c->m_products, 1);
    lua_State *L = jn_script_host_lua(c->scripts);
    int top = lua_gettop(L);
    char jerr[160];
    if (jn_json_decode(L, km->value, km->value_len, jerr, sizeof jerr) != 0 ||
        !lua_istable(L, -1)) {
        jn_log_warn("consumer", "product %.*s@%lld is not a JSON object; ignored", (int)km->key_len,
                    (const char *)km->key, (long long)km->offset);
        jn_metric_add(c->m_script_errors, 1);
        lua_settop(L, top);
        return;
    }
    char *err = NULL;
    if (call_merge(c, "product", &err) != 0) {
        jn_log_error("consumer", "merge.lua product() failed: %s", err);
        jn_metric_add(c->m_script_errors, 1);
        free(err);
        lua_settop(L, top);
        return;
    }
    deliver_results(c, L);
    lua_settop(L, top);
}

static void on_assign(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    jn_consumer *c = ud;
    for (int i = 0; i < parts->cnt; i++) {
        partition *p = find_partition(c, parts->elems[i].topic, parts->elems[i].partition, 1);
        p->gen++;
        p->assigned = 1;
        p->revoking = 0;
        jn_offsets_free(&p->offs);
        p->committed = -1;
    }
    jn_log_info("consumer", "assigned %d partition(s)", parts->cnt);
}

static void commit(jn_consumer *c, int only_revoking) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (partition *p = c->parts; p; p = p->next) {
        if (!p->assigned || (only_revoking && !p->revoking)) continue;
        int64_t off = jn_offsets_committable(&p->offs);
        int64_t lag = jn_kafka_consumer_lag(c->group, p->topic, p->id);
        if (lag >= 0) jn_metric_set(p->m_lag, (double)lag);
        if (off < 0 || off <= p->committed) continue;
        rd_kafka_topic_partition_list_add(l, p->topic, p->id)->offset = off;
        p->committed = off;
    }
    if (l->cnt) {
        c->commit_sent_ns = uv_hrtime();
        jn_kafka_consumer_commit(c->group, l);
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void on_commit_timer(uv_timer_t *t) {
    commit(t->data, 0);
}

static void finish_revoke(jn_consumer *c) {
    uv_timer_stop(&c->revoke_timer);
    commit(c, 1);
    for (partition *p = c->parts; p; p = p->next)
        if (p->revoking) p->revoking = 0, p->assigned = 0;
    jn_kafka_consumer_revoke_done(c->group);
}

static void on_revoke_timer(uv_timer_t *t) {
    jn_consumer *c = t->data;
    size_t left = 0;
    for (partition *p = c->parts; p; p = p->next)
        if (p->revoking) left += jn_offsets_pending(&p->offs);
    if (left == 0 || uv_now(c->loop) >= c->revoke_deadline) {
        if (left)
            jn_log_warn("consumer",
                        "rebalance: %zu message(s) of revoked partitions not settled "
                        "in time; their new owner reads them again",
                        left);
        finish_revoke(c);
    }
}

static void on_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    jn_consumer *c = ud;
    for (int i = 0; i < parts->cnt; i++) {
        partition *p = find_partition(c, parts->elems[i].topic, parts->elems[i].partition, 0);
        if (p && p->assigned) p->revoking = 1;
    }
    /* Give in-flight messages of these partitions a bounded time to settle, so the
     * commit covers them and their new owner does not deliver them again. */
    jn_sink_flush(c->sink);
    /* A shutdown gets less time than a rebalance: what does not settle is read again. */
    c->revoke_deadline = uv_now(c->loop) + (c->stop_stage ? 5000 : 10000);
    uv_timer_start(&c->revoke_timer, on_revoke_timer, 0, 50);
}

static void on_commit_result(void *ud, rd_kafka_resp_err_t err,
                             const rd_kafka_topic_partition_list_t *offsets) {
    jn_consumer *c = ud;
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        jn_log_warn("consumer", "offset commit failed: %s (retried by the next commit)",
                    rd_kafka_err2str(err));
        /* Forget what was sent so the commit timer sends it again, even on a partition
         * that receives nothing new. */
        for (int i = 0; offsets && i < offsets->cnt; i++) {
            partition *p =
                find_partition(c, offsets->elems[i].topic, offsets->elems[i].partition, 0);
            if (p && p->committed == offsets->elems[i].offset) p->committed = -1;
        }
    } else if (c->commit_sent_ns)
        jn_metric_observe(c->m_commit, (double)(uv_hrtime() - c->commit_sent_ns) / 1e9);
}

static void on_kafka_error(void *ud, rd_kafka_resp_err_t err, const char *reason) {
    (void)ud;
    jn_log_warn("consumer", "kafka: %s (%s)", reason, rd_kafka_err2name(err));
}

static void tables_loaded(jn_consumer *c) {
    c->tables_loaded = 1;
    jn_log_info("consumer",
                "catalogue loaded (%d product partition(s) read to their end in %llu ms); "
                "merging customers",
                c->cat_nparts, (unsigned long long)(uv_now(c->loop) - c->load_started_ms));
    update_flow(c);
}

static void cat_assign(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    jn_consumer *c = ud;
    jn_log_info("consumer", "catalogue reader: reading %d product partition(s)", parts->cnt);
    if (c->tables_loaded) return; /* it follows the table from here on */
    int32_t max = -1;
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition > max) max = parts->elems[i].partition;
    free(c->cat_eof);
    c->cat_eof = calloc((size_t)max + 2, 1);
    if (!c->cat_eof) abort();
    c->cat_nparts = parts->cnt;
    c->cat_loaded_parts = 0;
    if (parts->cnt == 0) tables_loaded(c);
}

static void cat_eof(void *ud, const char *topic, int32_t partition, int64_t offset) {
    (void)topic, (void)offset;
    jn_consumer *c = ud;
    if (c->tables_loaded || !c->cat_eof || partition < 0 || c->cat_eof[partition]) return;
    c->cat_eof[partition] = 1;
    if (++c->cat_loaded_parts == c->cat_nparts) tables_loaded(c);
}

static void cat_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    (void)parts;
    jn_consumer *c = ud;
    jn_kafka_consumer_revoke_done(c->catalogue);
}

static void cat_commit(void *ud, rd_kafka_resp_err_t err,
                       const rd_kafka_topic_partition_list_t *offsets) {
    (void)ud, (void)err, (void)offsets;
}

/* ---- life -------------------------------------------------------------------------- */

static int check_merge(jn_script *s, void *ud, char **err) {
    (void)s, (void)ud;
    lua_State *L = jn_script_host_lua(((jn_consumer *)ud)->scripts);
    static const char *const fns[] = {"customer", "product", "expire", NULL};
    for (int i = 0; fns[i]; i++) {
        lua_getfield(L, -1, fns[i]);
        int ok = lua_isfunction(L, -1);
        lua_pop(L, 1);
        if (!ok) {
            char buf[120];
            snprintf(buf, sizeof buf, "the merge script must define %s()", fns[i]);
            *err = strdup(buf);
            return -1;
        }
    }
    return 0;
}

jn_consumer *jn_consumer_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               char **err) {
    jn_consumer *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->loop = loop;
    c->scripts = scripts;
    c->cfg = cfg;
    c->waiting = jn_strmap_new();
    c->inflight = jn_strmap_new();
    c->m_consumed = jn_metrics_counter("junction_consumer_messages_total",
                                       "Messages read, by topic", "topic=\"customers\"");
    c->m_products = jn_metrics_counter("junction_consumer_messages_total",
                                       "Messages read, by topic", "topic=\"products\"");
    c->m_duplicates = jn_metrics_counter("junction_consumer_duplicates_total",
                                         "Messages skipped: their processed: mark exists", "");
    c->m_merged = jn_metrics_counter("junction_consumer_merged_total",
                                     "Merged records produced by merge.lua", "");
    c->m_delivered = jn_metrics_counter("junction_consumer_delivered_total",
                                        "Merged records analytics acknowledged", "");
    c->m_dead = jn_metrics_counter("junction_consumer_dead_lettered_total",
                                   "Messages written to the dead-letter topic", "");
    c->m_script_errors = jn_metrics_counter("junction_consumer_errors_total",
                                            "Bad messages and merge script errors", "");
    c->m_commit =
        jn_metrics_histogram("junction_consumer_commit_seconds", "Latency of offset commits", "");
    c->m_held = jn_metrics_gauge("junction_consumer_waiting_customers",
                                 "Customers waiting for merge output (held for products)", "");
    c->m_pending = jn_metrics_gauge("junction_consumer_pending_messages",
                                    "Messages read and not yet settled", "");
    c->m_hold_expired = jn_metrics_counter(
        "junction_consumer_hold_expired_total",
        "Messages the merge script held past their deadline (dead-lettered)", "");

    c->merge = jn_script_add(scripts, "merge", cfg->consumer.merge_script, check_merge, c, err);
    if (!c->merge) return NULL;
    lua_State *L = jn_script_host_lua(scripts);
    lua_createtable(L, 0, 4);
    lua_pushinteger(L, cfg->consumer.hold_ms);
    lua_setfield(L, -2, "hold_ms");
    lua_pushinteger(L, cfg->consumer.hold_max);
    lua_setfield(L, -2, "hold_max");
    lua_pushlightuserdata(L, c);
    lua_pushcclosure(L, l_ctx_hold, 1);
    lua_setfield(L, -2, "hold");
    c->ctx_ref = luaL_ref(L, LUA_REGISTRYINDEX);

    jn_kafka_producer_opts po = {.brokers = cfg->kafka.brokers,
                                 .client_id = cfg->kafka.client_id,
                                 .compression = cfg->kafka.compression,
                                 .linger_ms = cfg->kafka.linger_ms,
                                 .queue_max_messages = cfg->kafka.queue_max_messages,
                                 .message_timeout_ms = cfg->kafka.message_timeout_ms};
    c->dlq = jn_kafka_producer_new(loop, &po, on_dlq_delivery, c, err);
    if (!c->dlq) return NULL;
    c->redis = jn_redis_new(loop, cfg->redis.host, cfg->redis.port, on_redis_state, c);
    c->http = jn_http_client_new(loop);
    jn_sink_opts so = {.url = cfg->consumer.analytics_url,
                       .batch_size = cfg->consumer.batch_size,
                       .linger_ms = cfg->consumer.linger_ms,
                       .max_inflight = cfg->consumer.max_inflight_batches,
                       .timeout_ms = cfg->consumer.request_timeout_ms,
                       .retry_base_ms = cfg->consumer.retry_base_ms,
                       .retry_max_ms = cfg->consumer.retry_max_ms};
    c->sink = jn_sink_new(loop, c->http, &so, on_sink_done, c);

    uv_timer_t *timers[] = {&c->check_timer, &c->mark_timer, &c->commit_timer, &c->expire_timer,
                            &c->revoke_timer};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = c;
    }
    c->load_started_ms = uv_now(loop);
    uv_timer_start(&c->commit_timer, on_commit_timer, 500, 500);
    uv_timer_start(&c->expire_timer, on_expire, 200, 200);

    /* The catalogue reader: alone in a group of its own, so it gets every partition and,
     * never committing, starts from the beginning each time. */
    char cat_group[200];
    snprintf(cat_group, sizeof cat_group, "%s-catalogue-%d-%llx", cfg->consumer.group_id,
             (int)getpid(), (unsigned long long)uv_hrtime());
    const char *cat_topics[] = {cfg->consumer.product_topic, NULL};
    jn_kafka_consumer_opts co = {.brokers = cfg->kafka.brokers,
                                 .group_id = cat_group,
                                 .client_id = cfg->kafka.client_id,
                                 .auto_offset_reset = "earliest",
                                 .topics = cat_topics,
                                 .report_eof = 1};
    jn_kafka_consumer_cbs ccbs = {.on_message = on_product_message,
                                  .on_assign = cat_assign,
                                  .on_revoke = cat_revoke,
                                  .on_commit = cat_commit,
                                  .on_error = on_kafka_error,
                                  .on_eof = cat_eof};
    c->catalogue = jn_kafka_consumer_new(loop, &co, &ccbs, c, err);
    if (!c->catalogue) return NULL;

    const char *topics[] = {cfg->consumer.customer_topic, NULL};
    jn_kafka_consumer_opts go = {.brokers = cfg->kafka.brokers,
                                 .group_id = cfg->consumer.group_id,
                                 .client_id = cfg->kafka.client_id,
                                 .auto_offset_reset = cfg->consumer.auto_offset_reset,
                                 .topics = topics};
    jn_kafka_consumer_cbs gcbs = {.on_message = on_group_message,
                                  .on_assign = on_assign,
                                  .on_revoke = on_revoke,
                                  .on_commit = on_commit_result,
                                  .on_error = on_kafka_error};
    c->group = jn_kafka_consumer_new(loop, &go, &gcbs, c, err);
    if (!c->group) return NULL;
    jn_log_info("consumer", "group %s reading %s (products from %s), delivering to %s",
                cfg->consumer.group_id, cfg->consumer.customer_topic, cfg->consumer.product_topic,
                cfg->consumer.analytics_url);
    /* Reading waits for Redis: a message must never pass unchecked. */
    update_flow(c);
    return c;
}

/* Shutdown runs as a chain: group (its revoke settles and commits what it can),
 * catalogue, HTTP client, sink, Redis, dead-letter producer, timers. */
static void stop_step(void *arg);

static void on_timer_closed(uv_handle_t *h) {
    jn_consumer *c = h->data;
    if (--c->handles > 0) return;
    for (partition *p = c->parts, *n; p; p = n) {
        n = p->next;
        jn_offsets_free(&p->offs);
        free(p);
    }
    jn_strmap_free(c->waiting);
    jn_strmap_free(c->inflight);
    free(c->cat_eof);
    for (pmsg *m = c->spare, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    jn_sb_free(&c->json);
    luaL_unref(jn_script_host_lua(c->scripts), LUA_REGISTRYINDEX, c->ctx_ref);
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done) done(arg);
}

static void stop_step(void *arg) {
    jn_consumer *c = arg;
    switch (c->stop_stage++) {
    case 0:
        jn_kafka_consumer_close(c->group, stop_step, c);
        break;
    case 1:
        jn_kafka_consumer_close(c->catalogue, stop_step, c);
        break;
    case 2:
        /* From here on nothing is delivered: what is unsettled is read again next run. */
        c->stopping = 1;
        jn_http_client_close(c->http, stop_step, c);
        break;
    case 3:
        jn_sink_close(c->sink, stop_step, c);
        break;
    case 4:
        jn_redis_close(c->redis, stop_step, c);
        break;
    case 5:
        jn_kafka_producer_close(c->dlq, 5000, stop_step, c);
        break;
    default: {
        /* Messages never settled (waiting for Redis, held, in the sink) are simply read
         * again by the next run. */
        while (c->all)
            free_pmsg(c, c->all);
        /* The sink drops what it did not deliver without reporting it. */
        while (c->deliveries)
            free_delivery(c, c->deliveries);
        uv_timer_t *timers[] = {&c->check_timer, &c->mark_timer, &c->commit_timer, &c->expire_timer,
                                &c->revoke_timer};
        c->handles = 5;
        for (int i = 0; i < 5; i++)
            uv_close((uv_handle_t *)timers[i], on_timer_closed);
    }
    }
}

void jn_consumer_stop(jn_consumer *c, void (*done)(void *), void *arg) {
    if (c->stop_stage) return;
    c->done = done;
    c->done_arg = arg;
    /* Not "stopping" yet: the group's final revoke still delivers, marks and commits. */
    stop_step(c);
}

void jn_consumer_status_json(jn_consumer *c, jn_sb *out) {
    long batches, retries;
    jn_sink_counts(c->sink, &batches, &retries);
    jn_sb_printf(out,
                 "{\"consumed\":%.0f,\"duplicates\":%.0f,\"merged\":%.0f,\"delivered\":%.0f,"
                 "\"dead_lettered\":%.0f,\"pending\":%ld,\"waiting_customers\":%zu,"
                 "\"redis\":%s,\"paused\":%s,\"tables_loaded\":%s,\"batches\":%ld,"
                 "\"retries\":%ld,\"partitions\":[",
                 jn_metric_value(c->m_consumed), jn_metric_value(c->m_duplicates),
                 jn_metric_value(c->m_merged), jn_metric_value(c->m_delivered),
                 jn_metric_value(c->m_dead), c->pending, jn_strmap_count(c->waiting),
                 c->redis_up ? "true" : "false", c->paused ? "true" : "false",
                 c->tables_loaded ? "true" : "false", batches, retries);
    int first = 1;
    for (partition *p = c->parts; p; p = p->next) {
        if (!p->assigned) continue;
        jn_sb_printf(out, "%s{\"topic\":\"%s\",\"partition\":%d,\"committed\":%lld,\"lag\":%.0f}",
                     first ? "" : ",", p->topic, (int)p->id, (long long)p->committed,
                     jn_metric_value(p->m_lag));
        first = 0;
    }
    jn_sb_puts(out, "]}");
}

const char *jn_consumer_not_ready(const jn_consumer *c) {
    if (!c->tables_loaded)
        return "loading tables: the catalogue reader has not read every product partition to its "
               "end";
    if (!c->redis_up) return "Redis unreachable";
    return NULL;
}
