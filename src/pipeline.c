/* A pipeline (see pipeline.h). The life of a stream message:
 *   read      the group member hands it over; its content hash names its mark
 *   check     dedupe.c asks Redis whether the mark exists (batched)
 *   transform on.<stream>(record, ctx); settle.c registers what may answer it
 *   deliver   every record goes to its sinks; the changelog keeps the input record
 *   mark      once settle.c says every record is through (and the changelog write is
 *             acknowledged), dedupe.c writes the mark, and the offset settles
 * A message whose record a sink refused for good, or on which the transform failed, is
 * dead-lettered instead of marked. The commit timer commits, per partition, the first
 * offset not yet settled: a crash at any point loses nothing, and a record is delivered
 * twice only when the process dies between its delivery and its mark.
 *
 * Tables are state, not events: a private reader (its own group, never committed) reads
 * every partition of every table from the beginning and keeps following them, so each
 * member can join its share of a stream against whole tables. Nothing of a stream goes
 * to the transform before every table partition was read to its end.
 *
 * Join state. What a transform keeps per stream key (the seed's customers and its
 * product -> customers index) would be lost by a restart or a rebalance, and a table
 * change would then miss the records that reference it. Each stream with a changelog
 * writes every input record the transform accepted to a compacted topic with the
 * stream's partition count, to the stream message's partition and key; a message only
 * settles once that write is acknowledged, so what is committed is in the changelog.
 * When a partition is assigned, its changelog partition is replayed into
 * restore.<stream>(record, ctx) before any stream message of it is processed. This is
 * Kafka Streams' scheme, chosen over Redis because the data stays in Kafka, compaction
 * bounds the replay to one record per key, and the replay is a sequential read of one
 * partition rather than a scan of Redis keys. Partitions that a rebalance takes away
 * and gives back keep their state; those that go elsewhere are handed to
 * revoke.<stream>(partitions, ctx) so the script forgets them. */
#include "pipeline.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dedupe.h"
#include "digest_set.h"
#include "http_client.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "offsets.h"
#include "redis.h"
#include "settle.h"
#include "sink.h"
#include "sink_kafka.h"
#include "transform.h"

/* The transform's timer and the hold deadlines: a held record goes out at most this long
 * after its hold ran out. */
#define TIMER_MS            50
#define CHANGELOG_LINGER_MS 50
/* How long an offset commit may go unanswered before another is sent (see commit()). */
#define COMMIT_RESULT_MAX_MS 60000
/* A revocation looks this often whether what it waits for has settled: the whole group
 * waits for the handover. */
#define REVOKE_TICK_MS 10

typedef struct partition {
    char topic[128];
    int32_t id;
    int stream;   /* index of the stream it belongs to */
    unsigned gen; /* bumped on every assignment, so stale settles are ignored */
    int assigned, revoking;
    int kept;      /* its state is in the transform (restored, or built since) */
    int restoring; /* its changelog is being replayed */
    jn_offsets offs;
    int64_t committed;
    int64_t lag; /* as last learned at a commit tick; junction_consumer_lag */
    struct partition *next;
} partition;

enum kafka_op { KOP_NONE, KOP_DLQ, KOP_CHANGELOG };

typedef struct pmsg {
    jn_settle_msg st; /* first: settle.c's callbacks hand it back */
    partition *p;
    unsigned gen;
    int64_t offset;
    unsigned char hash[32];
    char *value, *key;
    size_t value_len, key_len;
    struct pmsg *next;      /* followers' chain */
    struct pmsg *followers; /* later messages with the same content, settled with this one */
    int leader;             /* registered in inflight */
    /* Over once both gates are: settlement (settle.c) and the changelog write. */
    int gates;
    int canonical; /* its value is canonical JSON (checked for the content hash) */
    char *refused;
    int kop; /* what the pipeline's producer is doing for it */
    struct pmsg *all_prev, *all_next;
    size_t cap;  /* bytes of data */
    char *dkey;  /* its mark's key, in data after the value and key */
    char data[]; /* value, key and mark key, each NUL-terminated: sized to the message, as
                  * up to max_pending messages live at once */
} pmsg;

#if defined(__SANITIZE_ADDRESS__)
#define SPARE_MAX 0 /* a reused message would hide a use after free */
#else
#define SPARE_MAX 4096
#endif
/* Messages whose data fits SPARE_SIZE are allocated with that much and reused; the
 * seed's records (about 110 bytes and a 71-byte mark key) fit. */
#define SPARE_SIZE 256

typedef struct {
    const jn_sink_config *cfg;
    jn_sink *http;
    jn_kafka_sink *kafka;
} out_sink;

/* Where a stream's join state is restored from, decided at start. */
typedef struct {
    struct jn_pipeline *p;
    int stream;
    int decided;
    const char *restore_topic; /* the changelog, or the compacted stream topic itself */
    int writes;                /* records are written to the changelog */
} stream_rt;

/* A table partition and whether the reader reached its end since the load started. */
typedef struct {
    char topic[128];
    int32_t id;
    int eof;
    int64_t limit; /* a replay stops at this offset (-1: at the end) */
    int64_t next;  /* a table's: the offset after the last message read (-1: none yet) */
} load_part;

typedef struct {
    load_part *v;
    int n, done;
} load_set;

struct jn_pipeline {
    uv_loop_t *loop;
    const jn_config *cfg;
    const jn_pipeline_config *pc;
    size_t prefix_len; /* of pc->dedupe_prefix: each message's mark key starts with it */
    jn_script_host *scripts;
    jn_transform *tf;
    jn_settle settle;
    jn_kafka_consumer *group, *tables, *restorer;
    jn_kafka_producer *producer; /* dead letters and changelog writes */
    jn_redis *redis;
    jn_dedupe *dedupe;
    jn_http_client *http;
    out_sink sinks[JN_TRANSFORM_MAX_SINKS];
    int nsinks;
    partition *parts;
    pmsg *spare;
    size_t nspare;
    jn_digest_set *inflight; /* content hash -> the message carrying it until it settles */
    pmsg *all;
    int64_t pending; /* messages read and not yet settled (counts.pending mirrors it) */
    pmsg *call_msg;  /* the message of the transform call in progress */
    int redis_up, paused, holding, stopping;
    int joined; /* the group answered with a first assignment */
    int tables_loaded;
    int tables_held; /* the table reader is held: a replay, or too many records in flight */
    long free_recs;  /* records in flight that no stream message's call made (tables, timer) */
    load_set tload, rload;
    int restoring; /* partitions being replayed */
    /* ...of a stream whose transform needs the replay done before the stream is read (a
     * script's restore hook); the host's join reads both at once (jn_join_restore) */
    int restore_blocks;
    int changelogs_ready; /* every stream knows where its state is restored from */
    stream_rt srt[2 * JN_TRANSFORM_MAX_SINKS];
    int admin_pending;      /* topic requests on the thread pool: p is freed after them */
    unsigned restore_gen;   /* bumped by every replay started or abandoned */
    unsigned committed_gen; /* the replay a committed-offsets lookup is for */
    int committed_pending;  /* that lookup is on the thread pool */
    int closed;             /* every handle closed; freed once admin_pending is 0 */
    uint64_t load_started_ms;
    uint64_t revoke_deadline, revoke_started, commit_sent_ns;
    /* One offset commit at a time (see commit()): one is at the coordinator, and the
     * revocation under way has sent its own. */
    int commit_inflight, revoke_committed;
    uint64_t commit_sent_ms;
    uv_timer_t timer, commit_timer, revoke_timer, ensure_timer;
    int handles, stop_stage;
    void (*done)(void *);
    void *done_arg;
    char not_ready[800];
    /* Why the brokers refuse our connection settings (a login, a certificate), as the
     * consumers last reported; empty once Kafka answered. librdkafka keeps retrying. */
    char kafka_refused[600];
    /* What the pipeline did, counted where it happens: /metrics reads these (bound to the
     * junction_consumer_* series), and /api/status, the progress line and --until-idle
     * read them through jn_pipeline_add_totals. */
    struct {
        uint64_t read[2 * JN_TRANSFORM_MAX_SINKS]; /* messages read, by input */
        uint64_t duplicates, merged, delivered, dead_lettered, errors, hold_expired, restored;
        int64_t pending, waiting;
        int64_t join_records, join_bytes; /* the host's join (M.join), as of the last tick */
        uint64_t fetch_nudges;            /* of the group and tables readers, as of the last tick */
    } n;
    jn_metric *m_commit;
};

static void update_flow(jn_pipeline *p);
static void dead_letter(jn_pipeline *p, pmsg *m, const char *reason);
static void start_restore(jn_pipeline *p);

/* ---- messages ---------------------------------------------------------------------- */

static partition *find_partition(jn_pipeline *p, const char *topic, int32_t id, int create) {
    for (partition *x = p->parts; x; x = x->next)
        if (x->id == id && !strcmp(x->topic, topic)) return x;
    if (!create) return NULL;
    partition *x = calloc(1, sizeof *x);
    if (!x) abort();
    snprintf(x->topic, sizeof x->topic, "%s", topic);
    x->id = id;
    x->stream = 0;
    for (int i = 0; i < p->pc->nstreams; i++)
        if (!strcmp(p->pc->streams[i].topic, topic)) x->stream = i;
    jn_offsets_init(&x->offs);
    x->committed = -1;
    char labels[300];
    snprintf(labels, sizeof labels, "pipeline=\"%s\",topic=\"%s\",partition=\"%d\"", p->pc->name,
             topic, (int)id);
    jn_metrics_gauge_bind("junction_consumer_lag", "Messages behind the partition's end", labels,
                          &x->lag);
    x->next = p->parts;
    p->parts = x;
    return x;
}

/* A message with copies of value and key (each NUL-terminated) and room for its mark's
 * key. */
static pmsg *new_pmsg(jn_pipeline *p, const void *value, size_t value_len, const void *key,
                      size_t key_len) {
    size_t need = value_len + key_len + 2 + p->prefix_len + 64 + 1;
    pmsg *m = p->spare;
    if (m && m->cap >= need) {
        p->spare = m->next;
        p->nspare--;
    } else {
        size_t cap = need > SPARE_SIZE ? need : SPARE_SIZE;
        m = malloc(sizeof *m + cap);
        if (!m) abort();
        m->cap = cap;
    }
    size_t cap = m->cap;
    memset(m, 0, offsetof(pmsg, cap));
    m->cap = cap;
    m->value = m->data;
    m->value_len = value_len;
    if (value_len) memcpy(m->value, value, value_len);
    m->value[value_len] = '\0';
    m->key = m->data + value_len + 1;
    m->key_len = key_len;
    if (key_len) memcpy(m->key, key, key_len);
    m->key[key_len] = '\0';
    m->dkey = m->key + key_len + 1;
    m->dkey[0] = '\0';
    m->all_next = p->all;
    if (p->all) p->all->all_prev = m;
    p->all = m;
    p->n.pending = ++p->pending;
    return m;
}

static void free_pmsg(jn_pipeline *p, pmsg *m) {
    free(m->refused);
    m->refused = NULL;
    if (m->all_prev)
        m->all_prev->all_next = m->all_next;
    else
        p->all = m->all_next;
    if (m->all_next) m->all_next->all_prev = m->all_prev;
    if (p->nspare + 1 <= SPARE_MAX && m->cap == SPARE_SIZE) { /* not "<": 0 in ASan builds */
        m->next = p->spare;
        p->spare = m;
        p->nspare++;
    } else {
        free(m);
    }
    p->n.pending = --p->pending;
}

/* The message's fate is sealed: let the offset watermark move past it. */
static void settle_offset(jn_pipeline *p, pmsg *m) {
    if (m->leader) {
        jn_digest_set_del(p->inflight, m->hash);
        for (pmsg *f = m->followers, *n; f; f = n) {
            n = f->next;
            p->n.duplicates++;
            settle_offset(p, f);
        }
        m->followers = NULL;
    }
    if (m->p->assigned && m->p->gen == m->gen) jn_offsets_settle(&m->p->offs, m->offset);
    free_pmsg(p, m);
    update_flow(p);
}

/* Both gates are through: mark (then settle), or dead-letter with the reason. */
static void gate_done(jn_pipeline *p, pmsg *m) {
    if (--m->gates > 0) return;
    if (m->refused) {
        dead_letter(p, m, m->refused);
    } else if (p->dedupe) {
        jn_dedupe_mark(p->dedupe, m, m->dkey);
    } else {
        settle_offset(p, m);
    }
}

static void refuse(pmsg *m, const char *reason) {
    if (m->refused || !reason) return;
    m->refused = jn_errorf("%s", reason);
}

/* ---- dead letters ------------------------------------------------------------------ */

static void dead_letter(jn_pipeline *p, pmsg *m, const char *reason) {
    char part[16], off[24];
    snprintf(part, sizeof part, "%d", (int)m->p->id);
    snprintf(off, sizeof off, "%lld", (long long)m->offset);
    const char *hdrs[] = {
        "error", reason,     "source_topic", m->p->topic, "source_partition", part, "source_offset",
        off,     "pipeline", p->pc->name,    NULL};
    m->kop = KOP_DLQ;
    int rc = jn_kafka_produce(p->producer, p->pc->dead_letter_topic, m->key, m->key_len, m->value,
                              m->value_len, hdrs, m);
    if (rc != 0)
        jn_log_error("consumer",
                     "%s: cannot queue message %s/%d@%lld for the dead-letter topic: %s; it stays "
                     "unsettled and is read again after a restart",
                     p->pc->name, m->p->topic, (int)m->p->id, (long long)m->offset,
                     jn_kafka_strerror(rc));
}

static void write_changelog(jn_pipeline *p, pmsg *m) {
    const jn_input_config *s = &p->pc->streams[m->p->stream];
    m->kop = KOP_CHANGELOG;
    /* Not copied: the message lives until its changelog write is reported. */
    int rc = jn_kafka_produce_ref(p->producer, s->changelog, m->p->id, m->key, m->key_len, m->value,
                                  m->value_len, m);
    if (rc != 0) {
        jn_log_error("consumer",
                     "%s: cannot queue the changelog write of %s/%d@%lld: %s; it stays "
                     "unsettled and is read again after a restart",
                     p->pc->name, m->p->topic, (int)m->p->id, (long long)m->offset,
                     jn_kafka_strerror(rc));
    }
}

static void on_produced(void *ud, void *opaque, int err, const char *topic, int32_t partition_,
                        int64_t offset) {
    (void)topic, (void)partition_, (void)offset;
    jn_pipeline *p = ud;
    pmsg *m = opaque;
    if (err) {
        /* The broker did not take it: try again; the offset waits until it does. */
        jn_log_warn("consumer", "%s: %s write failed (%s); retrying", p->pc->name,
                    m->kop == KOP_DLQ ? "dead-letter" : "changelog", jn_kafka_strerror(err));
        if (p->stopping) return;
        if (m->kop == KOP_DLQ)
            dead_letter(p, m, m->refused ? m->refused : "retry");
        else
            write_changelog(p, m);
        return;
    }
    if (m->kop == KOP_DLQ) {
        p->n.dead_lettered++;
        settle_offset(p, m);
    } else {
        m->kop = KOP_NONE;
        gate_done(p, m);
    }
}

/* A record answering no message that a sink refused: to the dead-letter topic as the
 * record itself. */
static void dead_letter_orphan(jn_pipeline *p, const char *json, size_t len, const char *reason) {
    static partition none = {.topic = "(re-emit)", .id = -1};
    pmsg *m = new_pmsg(p, json, len, "", 0);
    m->p = &none;
    dead_letter(p, m, reason);
}

/* ---- settlement callbacks ---------------------------------------------------------- */

static void on_finished(void *ud, jn_settle_msg *sm, const char *refused) {
    jn_pipeline *p = ud;
    pmsg *m = (pmsg *)sm;
    refuse(m, refused);
    gate_done(p, m);
}

static void on_orphan_refused(void *ud, jn_settle_rec *rec, const char *reason) {
    jn_pipeline *p = ud;
    jn_sb *json = rec->owner;
    if (json) dead_letter_orphan(p, json->data, json->len, reason);
}

static void on_rec_free(void *ud, jn_settle_rec *rec) {
    jn_pipeline *p = ud;
    if (rec->tag) p->free_recs--;
    jn_sb *json = rec->owner;
    if (json) {
        jn_sb_free(json);
        free(json);
    }
}

static void on_sink_done(void *ud, void *item, int status, const char *reason) {
    jn_pipeline *p = ud;
    if (status == 0)
        p->n.delivered++;
    else
        jn_log_warn("consumer", "%s: a sink refused a record for good (%s); dead-lettering",
                    p->pc->name, reason);
    jn_settle_report(&p->settle, item, status, reason);
    if (p->tables_held) update_flow(p);
}

/* ---- the transform ----------------------------------------------------------------- */

static void on_call_begin(void *ud, const char *id) {
    jn_pipeline *p = ud;
    jn_settle_call_begin(&p->settle, &p->call_msg->st, id);
}

static void no_begin(void *ud, const char *id) {
    (void)ud, (void)id;
}

/* One record of the transform's output: settle.c learns what waits for it, then each
 * sink it is routed to gets it. */
static void on_emit(void *ud, const jn_transform_record *r) {
    jn_pipeline *p = ud;
    int n = 0;
    for (int s = 0; s < p->nsinks; s++)
        n += (int)(r->sinks >> s & 1);
    if (n == 0) return;
    jn_settle_rec *rec = jn_settle_record(&p->settle, r->id, n, NULL);
    if (!p->call_msg) rec->tag = 1, p->free_recs++; /* see update_flow */
    /* The record's identity for an HTTP batch's Idempotency-Key: the content hash of the
     * message it answers, which a replay after a crash reads again unchanged (the record
     * itself may carry a time); for a record of the call, that message's hash with the
     * record's place in the output; otherwise the record's own text. */
    unsigned char key[32];
    pmsg *own = p->call_msg;
    if (rec->nmsgs && r->index == 1) {
        memcpy(key, ((pmsg *)rec->msgs[0])->hash, 32);
    } else if (rec->nmsgs || own) {
        /* Several records answering one message must not share its key. */
        pmsg *base = rec->nmsgs ? (pmsg *)rec->msgs[0] : own;
        unsigned char seed[40];
        memcpy(seed, base->hash, 32);
        int64_t idx = r->index;
        memcpy(seed + 32, &idx, sizeof idx);
        jn_sha256(seed, sizeof seed, key);
    } else {
        jn_sha256(r->json, r->len, key);
    }
    if (!rec->nmsgs) { /* to dead-letter the record itself if it is refused */
        jn_sb *copy = malloc(sizeof *copy);
        if (!copy) abort();
        jn_sb_init(copy);
        jn_sb_append(copy, r->json, r->len);
        rec->owner = copy;
    }
    p->n.merged++;
    for (int s = 0; s < p->nsinks; s++) {
        if (!(r->sinks >> s & 1)) continue;
        /* Sinks report from a later loop turn, never from here. */
        if (p->sinks[s].http)
            jn_sink_add(p->sinks[s].http, r->json, r->len, key, rec);
        else
            jn_kafka_sink_add(p->sinks[s].kafka, r->json, r->len, r->keys[s], r->key_lens[s], rec);
    }
}

static const jn_transform_cbs call_cbs = {.begin = on_call_begin, .emit = on_emit};
static const jn_transform_cbs free_cbs = {.begin = no_begin, .emit = on_emit};

static void process(jn_pipeline *p, pmsg *m) {
    jn_transform_call_info info = {
        .input = m->p->stream, .partition = m->p->id, .canonical = m->canonical};
    int held;
    long hold_ms;
    char *reason = NULL;
    m->gates = 1;
    p->call_msg = m;
    int rc = jn_transform_call(p->tf, &info, m->value, m->value_len, &call_cbs, p, &held, &hold_ms,
                               &reason);
    p->call_msg = NULL;
    if (rc != 0) {
        p->n.errors++;
        jn_log_warn("consumer", "%s: %s/%d@%lld: %s", p->pc->name, m->p->topic, (int)m->p->id,
                    (long long)m->offset, reason);
        if (!m->st.in_call) { /* not even decoded: begin never ran */
            refuse(m, reason);
            free(reason);
            gate_done(p, m);
            return;
        }
        jn_settle_call_end(&p->settle, 0, uv_now(p->loop), 0, reason);
        free(reason);
        return;
    }
    /* The changelog keeps what the transform accepted, keyed like the stream. */
    int logged =
        p->srt[m->p->stream].writes && m->key_len && jn_transform_restores(p->tf, m->p->stream);
    if (logged) m->gates++;
    if (held) {
        uint64_t grace = hold_ms / 2 > 2000 ? (uint64_t)hold_ms / 2 : 2000;
        jn_settle_call_end(&p->settle, 1, uv_now(p->loop), (uint64_t)hold_ms + grace, NULL);
    } else {
        jn_settle_call_end(&p->settle, 0, uv_now(p->loop), 0, NULL);
    }
    if (logged) write_changelog(p, m);
}

static void on_timer(uv_timer_t *t) {
    jn_pipeline *p = t->data;
    char *reason = NULL;
    if (jn_transform_timer(p->tf, &free_cbs, p, &reason) != 0) {
        jn_log_error("consumer", "%s: %s", p->pc->name, reason);
        p->n.errors++;
        free(reason);
    }
    int n = jn_settle_expire(&p->settle, uv_now(p->loop));
    if (n) {
        p->n.hold_expired += (uint64_t)n;
        jn_log_warn("consumer",
                    "%s: %d message(s) held by the transform past their deadline without "
                    "output; dead-lettering them",
                    p->pc->name, n);
    }
    p->n.waiting = (int64_t)jn_settle_waiting(&p->settle);
    jn_transform_join_size(p->tf, &p->n.join_records, &p->n.join_bytes);
    /* Not once stopping began: a closed reader is freed while p still points to it. */
    if (p->stop_stage == 0)
        p->n.fetch_nudges = (p->group ? jn_kafka_consumer_nudges(p->group) : 0) +
                            (p->tables ? jn_kafka_consumer_nudges(p->tables) : 0);
}

/* ---- de-duplication ---------------------------------------------------------------- */

static void on_checked(void *ud, void *item, int seen) {
    jn_pipeline *p = ud;
    pmsg *m = item;
    if (seen) {
        p->n.duplicates++;
        settle_offset(p, m);
    } else {
        process(p, m);
    }
}

static void on_marked(void *ud, void *item) {
    settle_offset(ud, item);
}

static void on_redis_state(void *ud, int connected) {
    jn_pipeline *p = ud;
    p->redis_up = connected;
    if (connected) {
        jn_log_info("consumer", "%s: Redis %s:%d reachable; consuming", p->pc->name,
                    p->cfg->redis.host, p->cfg->redis.port);
        jn_dedupe_resume(p->dedupe);
    } else {
        jn_log_warn("consumer",
                    "%s: Redis %s:%d unreachable; consumption paused, nothing is skipped "
                    "unchecked",
                    p->pc->name, p->cfg->redis.host, p->cfg->redis.port);
    }
    update_flow(p);
}

/* ---- intake ------------------------------------------------------------------------ */

static const char *loading_reason(const jn_pipeline *p);

/* One answer for the flow and for /readyz. */
static int loading(const jn_pipeline *p) {
    return loading_reason(p) != NULL;
}

/* Too much pending, or tables and changelogs still loading: hold, and the messages
 * librdkafka fetched wait there, ready the moment we take them (a pause would discard
 * them and fetch them again); rebalances are served during a hold all the same. Redis
 * down: pause, nothing can be checked. */
static void update_flow(jn_pipeline *p) {
    long high = p->pc->max_pending;
    /* The table reader waits while a replay runs (a table record read meanwhile would
     * re-emit every restored record that references it), and while the sinks have
     * max_pending records or more in flight: one table change can emit a record for
     * every stream record joined with it, and nothing else bounds them. */
    int tables_hold =
        p->restoring || p->free_recs >= high || (p->tables_held && p->free_recs >= high * 3 / 4);
    if (p->tables && tables_hold != p->tables_held) {
        p->tables_held = tables_hold;
        jn_kafka_consumer_hold(p->tables, tables_hold);
    }
    if (!p->group || p->stopping) return;
    /* Redis refusing the checks (a missing permission) pauses intake as its absence does:
     * what is read meanwhile could not be checked anyway. */
    int pause = p->dedupe && (!p->redis_up || jn_dedupe_error(p->dedupe));
    int hold =
        !pause && (loading(p) || p->pending >= high || (p->holding && p->pending >= high * 3 / 4));
    if (pause != p->paused) {
        p->paused = pause;
        if (pause)
            jn_kafka_consumer_pause(p->group);
        else
            jn_kafka_consumer_resume(p->group);
    }
    if (hold != p->holding) {
        p->holding = hold;
        jn_kafka_consumer_hold(p->group, hold);
    }
}

/* The slow path of the content hash: decode, encode with sorted keys, hash. Returns -1
 * for a value that is not JSON, which is dead-lettered. */
static int canonical_hash(jn_pipeline *p, pmsg *m) {
    lua_State *L = jn_script_host_lua(p->scripts);
    char jerr[160];
    if (jn_json_decode(L, m->value, m->value_len, jerr, sizeof jerr) != 0) {
        p->n.errors++;
        char reason[220];
        snprintf(reason, sizeof reason, "value is not JSON: %s", jerr);
        m->gates = 1;
        refuse(m, reason);
        gate_done(p, m);
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
    jn_pipeline *p = ud;
    partition *x = find_partition(p, km->topic, km->partition, 1);
    p->n.read[x->stream]++;
    if (jn_offsets_track(&x->offs, km->offset) != 0) return; /* seen before a seek */
    pmsg *m = new_pmsg(p, km->value, km->value_len, km->key, km->key_len);
    m->p = x;
    m->gen = x->gen;
    m->offset = km->offset;
    if (!p->dedupe) {
        process(p, m);
        update_flow(p);
        return;
    }
    /* The mark names the key the transform gives (dedupe_key.<stream>), or else the
     * record's content in canonical form (sorted keys), so the same record published
     * twice is skipped whatever the key order. junction's producer publishes that form,
     * whose bytes are hashed as they are. */
    int keyed = 0;
    if (jn_transform_keys(p->tf, x->stream)) {
        jn_transform_call_info info = {.input = x->stream, .partition = x->id};
        char *reason = NULL;
        keyed = jn_transform_dedupe_key(p->tf, &info, m->value, m->value_len, m->hash, &reason);
        if (keyed < 0) {
            p->n.errors++;
            jn_log_warn("consumer", "%s: %s/%d@%lld: %s", p->pc->name, x->topic, (int)x->id,
                        (long long)m->offset, reason);
            refuse(m, reason);
            free(reason);
            m->gates = 1;
            gate_done(p, m);
            update_flow(p);
            return;
        }
    }
    if (keyed) {
        /* m->hash holds the key's hash */
    } else if (jn_json_is_canonical(m->value, m->value_len)) {
        m->canonical = 1;
        jn_sha256(m->value, m->value_len, m->hash);
    } else if (canonical_hash(p, m) != 0) {
        return;
    }
    memcpy(m->dkey, p->pc->dedupe_prefix, p->prefix_len);
    jn_hex(m->hash, 32, m->dkey + p->prefix_len);
    /* The same content already on its way: Redis cannot know yet, so follow that
     * message and settle as its duplicate when it settles. */
    pmsg *leader = jn_digest_set_get(p->inflight, m->hash);
    if (leader) {
        m->next = leader->followers;
        leader->followers = m;
        update_flow(p);
        return;
    }
    jn_digest_set_put(p->inflight, m->hash, m);
    m->leader = 1;
    jn_dedupe_check(p->dedupe, m, m->dkey);
    update_flow(p);
}

/* ---- tables ------------------------------------------------------------------------ */

static int table_index(const jn_pipeline *p, const char *topic) {
    for (int i = 0; i < p->pc->ntables; i++)
        if (!strcmp(p->pc->tables[i].topic, topic)) return i;
    return -1;
}

static load_part *load_find(load_set *s, const char *topic, int32_t id);

static void on_table_message(void *ud, const jn_kafka_msg *km) {
    jn_pipeline *p = ud;
    int t = table_index(p, km->topic);
    if (t < 0) return;
    p->n.read[p->pc->nstreams + t]++;
    load_part *lp = load_find(&p->tload, km->topic, km->partition);
    if (lp) lp->next = km->offset + 1;
    jn_transform_call_info info = {.input = p->pc->nstreams + t, .partition = km->partition};
    int held;
    long hold_ms;
    char *reason = NULL;
    if (jn_transform_call(p->tf, &info, km->value, km->value_len, &free_cbs, p, &held, &hold_ms,
                          &reason) != 0) {
        /* A table is state, not events: a bad entry is skipped, not dead-lettered. */
        jn_log_warn("consumer", "%s: table %s %d@%lld skipped: %s", p->pc->name, km->topic,
                    (int)km->partition, (long long)km->offset, reason);
        p->n.errors++;
        free(reason);
    }
    update_flow(p); /* the records it emitted may be enough to hold the reader */
}

static void load_reset(load_set *s, const rd_kafka_topic_partition_list_t *parts) {
    free(s->v);
    s->n = parts ? parts->cnt : 0;
    s->done = 0;
    s->v = calloc((size_t)s->n + 1, sizeof *s->v);
    if (!s->v) abort();
    for (int i = 0; i < s->n; i++) {
        snprintf(s->v[i].topic, sizeof s->v[i].topic, "%s", parts->elems[i].topic);
        s->v[i].id = parts->elems[i].partition;
        s->v[i].limit = -1;
        s->v[i].next = -1;
    }
}

static load_part *load_find(load_set *s, const char *topic, int32_t id) {
    for (int i = 0; i < s->n; i++)
        if (s->v[i].id == id && !strcmp(s->v[i].topic, topic)) return &s->v[i];
    return NULL;
}

/* Marks a partition read to its end; returns 1 when that completes the set. */
static int load_eof(load_set *s, const char *topic, int32_t id) {
    load_part *lp = load_find(s, topic, id);
    if (!lp || lp->eof) return 0;
    lp->eof = 1;
    return ++s->done == s->n;
}

static void tables_loaded(jn_pipeline *p) {
    p->tables_loaded = 1;
    jn_log_info("consumer", "%s: tables loaded (%d partition(s) read to their end in %llu ms)",
                p->pc->name, p->tload.n,
                (unsigned long long)(uv_now(p->loop) - p->load_started_ms));
    start_restore(p);
    update_flow(p);
}

/* The table reader is alone in a group of its own and never commits, so when the group
 * takes its partitions away (its session ran out: the process stalled past the session
 * timeout) and gives them back, they would start from the beginning, and the transform
 * would take every old version in a table as a change again (re-emitting every record
 * joined with each). Once loaded, it goes on from where it was instead. */
static void tables_positions(void *ud, rd_kafka_topic_partition_list_t *parts) {
    jn_pipeline *p = ud;
    if (!p->tables_loaded) return;
    int kept = 0;
    for (int i = 0; i < parts->cnt; i++) {
        load_part *lp = load_find(&p->tload, parts->elems[i].topic, parts->elems[i].partition);
        if (lp && lp->next >= 0) parts->elems[i].offset = lp->next, kept++;
    }
    jn_log_info("consumer", "%s: table partitions given back; %d of %d go on from where they were",
                p->pc->name, kept, parts->cnt);
}

static void tables_assign(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    jn_pipeline *p = ud;
    p->kafka_refused[0] = '\0';
    if (p->tables_loaded) return; /* it follows the tables from here on */
    load_reset(&p->tload, parts);
    if (parts->cnt == 0) tables_loaded(p);
}

static void tables_eof(void *ud, const char *topic, int32_t part, int64_t offset) {
    (void)offset;
    jn_pipeline *p = ud;
    p->kafka_refused[0] = '\0';
    if (!p->tables_loaded && load_eof(&p->tload, topic, part)) tables_loaded(p);
}

static void tables_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    (void)parts;
    jn_pipeline *p = ud;
    jn_kafka_consumer_revoke_done(p->tables);
}

static void no_commit(void *ud, rd_kafka_resp_err_t err,
                      const rd_kafka_topic_partition_list_t *offsets) {
    (void)ud, (void)err, (void)offsets;
}

static void on_kafka_error(void *ud, rd_kafka_resp_err_t err, const char *reason) {
    jn_pipeline *p = ud;
    /* A login refused or a certificate not trusted: the pipeline cannot work until the
     * settings change, and /readyz says why. */
    if (*jn_kafka_conf_hint(err)) snprintf(p->kafka_refused, sizeof p->kafka_refused, "%s", reason);
    jn_log_warn("consumer", "%s: kafka: %s (%s)", p->pc->name, reason, rd_kafka_err2name(err));
}

/* ---- changelogs -------------------------------------------------------------------- */

static int stream_of_changelog(const jn_pipeline *p, const char *topic) {
    for (int i = 0; i < p->pc->nstreams; i++)
        if (p->srt[i].restore_topic && !strcmp(p->srt[i].restore_topic, topic)) return i;
    return -1;
}

static void restore_done(jn_pipeline *p);

static void on_restore_message(void *ud, const jn_kafka_msg *km) {
    jn_pipeline *p = ud;
    int s = stream_of_changelog(p, km->topic);
    if (s < 0 || !p->restoring) return;
    /* A stream topic replayed as its own changelog: up to the group's committed offset,
     * what this member processes next goes through on.<stream> anyway. */
    load_part *lp = load_find(&p->rload, km->topic, km->partition);
    if (!lp || lp->eof) return;
    if (lp->limit >= 0 && km->offset >= lp->limit) {
        if (load_eof(&p->rload, km->topic, km->partition)) restore_done(p);
        return;
    }
    if (!km->value_len) return; /* a tombstone: nothing to restore */
    jn_transform_call_info info = {.input = s, .partition = km->partition};
    char *reason = NULL;
    p->n.restored++;
    if (jn_transform_restore(p->tf, &info, km->value, km->value_len, &reason) != 0) {
        jn_log_warn("consumer", "%s: changelog %s %d@%lld not restored: %s", p->pc->name, km->topic,
                    (int)km->partition, (long long)km->offset, reason);
        p->n.errors++;
        free(reason);
    }
}

static void restore_done(jn_pipeline *p) {
    p->restoring = 0;
    for (partition *x = p->parts; x; x = x->next)
        if (x->restoring) x->restoring = 0, x->kept = 1;
    for (partition *x = p->parts; x; x = x->next)
        if (x->assigned && !x->revoking) x->kept = 1;
    jn_log_info("consumer", "%s: join state restored from %d changelog partition(s) (%llu records)",
                p->pc->name, p->rload.n, (unsigned long long)p->n.restored);
    /* Replayed: stop following the changelogs (this member writes them itself). */
    jn_kafka_consumer_assign(p->restorer, NULL);
    update_flow(p);
}

static void restore_eof(void *ud, const char *topic, int32_t part, int64_t offset) {
    (void)offset;
    jn_pipeline *p = ud;
    if (p->restoring && load_eof(&p->rload, topic, part)) restore_done(p);
}

/* Assignment: when every partition kept from before is still ours, the state stays. When
 * some went elsewhere, the host's join forgets theirs alone (it knows each record's
 * partition); a script's revoke.<stream> forgets the stream's state (all of it: tracking
 * each key's partition would cost a script every message) and the partitions still ours
 * are replayed with the new ones. */
static void forget_gone(jn_pipeline *p, const rd_kafka_topic_partition_list_t *parts) {
    for (int s = 0; s < p->pc->nstreams; s++) {
        int32_t kept[256], still[256];
        int nkept = 0, nstill = 0, gone = 0, over = 0;
        for (partition *x = p->parts; x; x = x->next) {
            if (x->stream != s || !x->kept) continue;
            if (nkept < 256) kept[nkept++] = x->id;
            if (!rd_kafka_topic_partition_list_find(parts, x->topic, x->id))
                gone = 1;
            else if (nstill < 256)
                still[nstill++] = x->id;
            else
                over = 1;
        }
        if (!gone) continue;
        if (!over && jn_transform_keep_partitions(p->tf, s, still, nstill) == 0) {
            for (partition *x = p->parts; x; x = x->next)
                if (x->stream == s && x->kept &&
                    !rd_kafka_topic_partition_list_find(parts, x->topic, x->id))
                    x->kept = 0;
            continue;
        }
        for (partition *x = p->parts; x; x = x->next)
            if (x->stream == s) x->kept = 0;
        char *reason = NULL;
        if (jn_transform_revoke(p->tf, s, kept, nkept, &reason) != 0) {
            jn_log_warn("consumer", "%s: %s", p->pc->name, reason);
            free(reason);
        }
    }
}

/* Assigned partitions whose state is not here are replayed from their changelogs. Only
 * once the tables are loaded: a table record read after the replay would otherwise
 * re-emit every restored record that references it. The table reader waits during the
 * replay for the same reason (a change must reach records restored after it). */
static void pipeline_free(jn_pipeline *p);

/* An admin answer came back: p may have closed meanwhile, and waited for it. */
static int admin_back(jn_pipeline *p) {
    p->admin_pending--;
    if (!p->closed) return 1;
    if (p->admin_pending == 0) pipeline_free(p);
    return 0;
}

static void restore_assign(jn_pipeline *p, rd_kafka_topic_partition_list_t *l) {
    if (l->cnt == 0) {
        restore_done(p);
        return;
    }
    jn_log_info("consumer", "%s: restoring join state from %d partition(s)", p->pc->name, l->cnt);
    jn_kafka_consumer_assign(p->restorer, l);
}

/* The group's committed offsets of the partitions whose stream topic is their own
 * changelog: each replay stops there (nothing committed: nothing to replay). */
static void on_committed(void *ud, int err, const rd_kafka_topic_partition_list_t *offsets,
                         const char *reason) {
    jn_pipeline *p = ud;
    if (!admin_back(p) || p->stopping) return;
    p->committed_pending = 0;
    if (!p->restoring || p->committed_gen != p->restore_gen) {
        /* The replay it was for was abandoned (a rebalance): start the current one. */
        start_restore(p);
        update_flow(p);
        return;
    }
    /* The group's commits, for /api/status: a member given partitions another member
     * settled shows where they stand before it commits anything itself. */
    for (partition *x = p->parts; offsets && x; x = x->next) {
        const rd_kafka_topic_partition_t *c =
            x->assigned && x->committed < 0
                ? rd_kafka_topic_partition_list_find(offsets, x->topic, x->id)
                : NULL;
        if (c && c->offset >= 0) x->committed = c->offset;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(p->rload.n + 1);
    for (int i = 0; i < p->rload.n; i++) {
        load_part *lp = &p->rload.v[i];
        int s = stream_of_changelog(p, lp->topic);
        if (s >= 0 && !p->srt[s].writes) {
            const rd_kafka_topic_partition_t *c =
                offsets ? rd_kafka_topic_partition_list_find(offsets, lp->topic, lp->id) : NULL;
            /* Unknown (the lookup failed): the whole partition, which is safe. */
            lp->limit = !offsets ? -1 : c && c->offset >= 0 ? c->offset : 0;
            if (lp->limit == 0) {
                lp->eof = 1;
                p->rload.done++;
                continue;
            }
        }
        rd_kafka_topic_partition_list_add(l, lp->topic, lp->id)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (err)
        jn_log_warn("consumer", "%s: %s; replaying whole partitions instead", p->pc->name, reason);
    restore_assign(p, l);
    rd_kafka_topic_partition_list_destroy(l);
}

static void start_restore(jn_pipeline *p) {
    if (!p->restorer || !p->tables_loaded || !p->changelogs_ready || p->restoring ||
        p->committed_pending)
        return;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    int from_stream = 0, blocks = 0;
    for (partition *x = p->parts; x; x = x->next) {
        const char *from = p->srt[x->stream].restore_topic;
        if (!x->assigned || x->revoking || x->kept || !from ||
            !jn_transform_restores(p->tf, x->stream))
            continue;
        x->restoring = 1;
        from_stream |= !p->srt[x->stream].writes;
        blocks |= !jn_transform_keeps_partitions(p->tf, x->stream);
        rd_kafka_topic_partition_list_add(l, from, x->id)->offset = RD_KAFKA_OFFSET_BEGINNING;
    }
    if (l->cnt) {
        load_reset(&p->rload, l);
        p->restoring = 1;
        p->restore_blocks = blocks;
        p->restore_gen++;
        update_flow(p);
        if (from_stream) {
            p->admin_pending++;
            p->committed_pending = 1;
            p->committed_gen = p->restore_gen;
            jn_kafka_client_opts kc = jn_kafka_conf_from(p->cfg);
            jn_kafka_group_committed(p->loop, &kc, p->pc->group_id, l, on_committed, p);
        } else {
            restore_assign(p, l);
        }
    } else {
        /* Nothing to replay: what is assigned is kept from here on. */
        for (partition *x = p->parts; x; x = x->next)
            if (x->assigned && !x->revoking) x->kept = 1;
    }
    rd_kafka_topic_partition_list_destroy(l);
}

static void decide_stream(stream_rt *st);

static void stream_decided(stream_rt *st, const char *from, int writes) {
    jn_pipeline *p = st->p;
    st->decided = 1;
    st->restore_topic = from;
    st->writes = writes;
    for (int s = 0; s < p->pc->nstreams; s++)
        if (p->pc->streams[s].changelog && !p->srt[s].decided) return;
    p->changelogs_ready = 1;
    start_restore(p);
    update_flow(p);
}

static void on_ensure_timer(uv_timer_t *t) {
    jn_pipeline *p = t->data;
    for (int s = 0; s < p->pc->nstreams; s++)
        if (p->pc->streams[s].changelog && !p->srt[s].decided) decide_stream(&p->srt[s]);
}

static void retry_later(jn_pipeline *p, const char *reason) {
    jn_log_warn("consumer", "%s: %s; trying again in 2 s", p->pc->name, reason);
    if (!uv_is_active((uv_handle_t *)&p->ensure_timer))
        uv_timer_start(&p->ensure_timer, on_ensure_timer, 2000, 0);
}

static void on_ensured(void *ud, int err, int partitions, const char *reason) {
    (void)partitions;
    stream_rt *st = ud;
    jn_pipeline *p = st->p;
    if (!admin_back(p) || p->stopping) return;
    if (err) {
        retry_later(p, reason);
        return;
    }
    jn_log_info("consumer", "%s: %s", p->pc->name, reason);
    stream_decided(st, p->pc->streams[st->stream].changelog, 1);
}

static void ensure_changelog(stream_rt *st) {
    static const char *const configs[] = {"cleanup.policy=compact", NULL};
    jn_pipeline *p = st->p;
    const jn_input_config *in = &p->pc->streams[st->stream];
    p->admin_pending++;
    jn_kafka_client_opts kc = jn_kafka_conf_from(p->cfg);
    jn_kafka_topic_ensure(p->loop, &kc, in->changelog, in->topic, configs, on_ensured, st);
}

/* "auto": a compacted stream topic is its own changelog (Kafka Streams does the same with
 * a table's source topic): its replay reads about one record per key and nothing has to
 * be written. Otherwise the dedicated changelog. */
static void on_policy(void *ud, int err, int compacted, const char *reason) {
    stream_rt *st = ud;
    jn_pipeline *p = st->p;
    if (!admin_back(p) || p->stopping) return;
    if (err) {
        retry_later(p, reason);
        return;
    }
    const jn_input_config *in = &p->pc->streams[st->stream];
    if (compacted) {
        jn_log_info("consumer",
                    "%s: stream topic %s is compacted: join state is restored from it, no "
                    "changelog is written",
                    p->pc->name, in->topic);
        stream_decided(st, in->topic, 0);
    } else {
        jn_log_info("consumer", "%s: stream topic %s is not compacted: join state goes to %s",
                    p->pc->name, in->topic, in->changelog);
        ensure_changelog(st);
    }
}

static void decide_stream(stream_rt *st) {
    jn_pipeline *p = st->p;
    const jn_input_config *in = &p->pc->streams[st->stream];
    if (in->changelog_auto) {
        p->admin_pending++;
        jn_kafka_client_opts kc = jn_kafka_conf_from(p->cfg);
        jn_kafka_topic_compacted(p->loop, &kc, in->topic, on_policy, st);
    } else {
        ensure_changelog(st);
    }
}

/* ---- rebalances and commits -------------------------------------------------------- */

static void on_assign(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    jn_pipeline *p = ud;
    p->kafka_refused[0] = '\0';
    for (int i = 0; i < parts->cnt; i++) {
        partition *x = find_partition(p, parts->elems[i].topic, parts->elems[i].partition, 1);
        x->gen++;
        x->assigned = 1;
        x->revoking = 0;
        jn_offsets_free(&x->offs);
        x->committed = -1;
    }
    jn_log_info("consumer", "%s: assigned %d partition(s)", p->pc->name, parts->cnt);
    p->joined = 1; /* none is an answer too: the group has more members than partitions */
    forget_gone(p, parts);
    start_restore(p);
    update_flow(p);
}

/* Commits, per partition, the first offset not yet settled; returns 1 when a commit was
 * sent. Never while an earlier one awaits its result: librdkafka (2.0.2) retries a commit
 * that met a coordinator change inside itself ("Operation in progress") while failing
 * the ones sent after it ("Waiting for coordinator"), so an older commit can reach the
 * new coordinator after a newer one and move the group's offset back, for good if the
 * partition has nothing more to commit (seen in tests/chaos: a commit of offset 0 sent at
 * start and retried landed after the commit of the partition's end). One at a time, the
 * results come back in the order the offsets grew; what settles meanwhile goes with the
 * next tick. */
static int commit(jn_pipeline *p, int only_revoking) {
    if (p->commit_inflight) {
        /* A result that never comes would stop commits for good; librdkafka answers every
         * commit, so this only guards against a lost one, with a warning. */
        if (uv_now(p->loop) - p->commit_sent_ms < COMMIT_RESULT_MAX_MS) return 0;
        jn_log_warn("consumer", "%s: no result for an offset commit after %d s; committing again",
                    p->pc->name, COMMIT_RESULT_MAX_MS / 1000);
        p->commit_inflight = 0;
    }
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(8);
    for (partition *x = p->parts; x; x = x->next) {
        if (!x->assigned || (only_revoking && !x->revoking)) continue;
        int64_t off = jn_offsets_committable(&x->offs);
        int64_t lag = jn_kafka_consumer_lag(p->group, x->topic, x->id);
        if (lag >= 0) x->lag = lag;
        if (off < 0 || off <= x->committed) continue;
        rd_kafka_topic_partition_list_add(l, x->topic, x->id)->offset = off;
        x->committed = off;
    }
    int sent = 0;
    if (l->cnt) {
        p->commit_sent_ns = uv_hrtime();
        p->commit_sent_ms = uv_now(p->loop);
        if (jn_log_enabled(JN_LOG_DEBUG))
            for (int i = 0; i < l->cnt; i++)
                jn_log_debug("consumer", "%s: commit sent %s[%d]@%lld", p->pc->name,
                             l->elems[i].topic, (int)l->elems[i].partition,
                             (long long)l->elems[i].offset);
        sent = jn_kafka_consumer_commit(p->group, l) == 0;
        p->commit_inflight = sent;
        /* Refused at once (closing): no result will come, so nothing counts as sent. */
        for (int i = 0; !sent && i < l->cnt; i++) {
            partition *x = find_partition(p, l->elems[i].topic, l->elems[i].partition, 0);
            if (x) x->committed = -1;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return sent;
}

static void on_commit_timer(uv_timer_t *t) {
    commit(t->data, 0);
}

static void finish_revoke(jn_pipeline *p) {
    uv_timer_stop(&p->revoke_timer);
    jn_log_info("consumer", "%s: rebalance: partitions handed over after %llu ms", p->pc->name,
                (unsigned long long)(uv_now(p->loop) - p->revoke_started));
    for (partition *x = p->parts; x; x = x->next)
        if (x->revoking) x->revoking = 0, x->assigned = 0;
    jn_kafka_consumer_revoke_done(p->group);
}

/* A revocation hands the partitions over only once their last commit is answered: a
 * commit still on its way when the group has moved on is sent again by librdkafka under
 * the new generation, which the coordinator accepts, and would then put an older offset
 * over the one the partition's next owner commits. So: settle what is in flight, wait
 * for the commit at the coordinator, commit the revoked partitions, wait for that
 * answer, hand over. The deadline bounds it all; past it the partitions go as they are
 * (their next owner reads again what was not committed; the marks skip what was
 * delivered). */
static void on_revoke_timer(uv_timer_t *t) {
    jn_pipeline *p = t->data;
    size_t left = 0;
    for (partition *x = p->parts; x; x = x->next)
        if (x->revoking) left += jn_offsets_pending(&x->offs);
    int late = uv_now(p->loop) >= p->revoke_deadline;
    if (late) {
        if (left)
            jn_log_warn("consumer",
                        "%s: rebalance: %zu message(s) of revoked partitions not settled in "
                        "time; their new owner reads them again",
                        p->pc->name, left);
        if (p->commit_inflight)
            jn_log_warn("consumer",
                        "%s: rebalance: an offset commit is still unanswered; handing the "
                        "partitions over without waiting for it",
                        p->pc->name);
        if (!p->revoke_committed && !p->commit_inflight) commit(p, 1);
        finish_revoke(p);
        return;
    }
    if (left || p->commit_inflight) return;
    if (!p->revoke_committed) {
        p->revoke_committed = 1;
        if (commit(p, 1)) return; /* its answer comes back to on_commit_result */
    }
    finish_revoke(p);
}

static void on_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    jn_pipeline *p = ud;
    for (int i = 0; i < parts->cnt; i++) {
        partition *x = find_partition(p, parts->elems[i].topic, parts->elems[i].partition, 0);
        if (x && x->assigned) x->revoking = 1;
    }
    /* A replay under way is for the old assignment: the next one starts over. */
    if (p->restoring) {
        p->restoring = 0;
        p->restore_gen++;
        for (partition *x = p->parts; x; x = x->next)
            x->restoring = 0;
        jn_kafka_consumer_assign(p->restorer, NULL);
        update_flow(p);
    }
    /* Give in-flight messages of these partitions a bounded time to settle, so the
     * commit covers them and their new owner does not deliver them again. */
    for (int s = 0; s < p->nsinks; s++)
        if (p->sinks[s].http) jn_sink_flush(p->sinks[s].http);
    p->revoke_deadline = uv_now(p->loop) + (p->stop_stage ? 5000 : 10000);
    p->revoke_started = uv_now(p->loop);
    jn_log_info("consumer",
                "%s: rebalance: settling %lld message(s) in hand before handing the "
                "partitions over",
                p->pc->name, (long long)p->pending);
    p->revoke_committed = 0;
    uv_timer_start(&p->revoke_timer, on_revoke_timer, 0, REVOKE_TICK_MS);
}

static void on_commit_result(void *ud, rd_kafka_resp_err_t err,
                             const rd_kafka_topic_partition_list_t *offsets) {
    jn_pipeline *p = ud;
    p->commit_inflight = 0;
    if (jn_log_enabled(JN_LOG_DEBUG))
        for (int i = 0; offsets && i < offsets->cnt; i++)
            jn_log_debug("consumer", "%s: commit result %s[%d]@%lld: %s", p->pc->name,
                         offsets->elems[i].topic, (int)offsets->elems[i].partition,
                         (long long)offsets->elems[i].offset,
                         rd_kafka_err2str(err ? err : offsets->elems[i].err));
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET) {
        jn_log_warn("consumer", "%s: offset commit failed: %s (retried by the next commit)",
                    p->pc->name, rd_kafka_err2str(err));
        /* Forget what was sent so the timer sends it again, even on a quiet partition. */
        for (int i = 0; offsets && i < offsets->cnt; i++) {
            partition *x =
                find_partition(p, offsets->elems[i].topic, offsets->elems[i].partition, 0);
            if (x && x->committed == offsets->elems[i].offset) x->committed = -1;
        }
    } else if (p->commit_sent_ns) {
        jn_metric_observe(p->m_commit, (double)(uv_hrtime() - p->commit_sent_ns) / 1e9);
    }
}

/* ---- life -------------------------------------------------------------------------- */

static void register_metrics(jn_pipeline *p) {
    char l[300];
    const char *n = p->pc->name;
    for (int i = 0; i < p->pc->nstreams + p->pc->ntables; i++) {
        const char *input =
            i < p->pc->nstreams ? p->pc->streams[i].name : p->pc->tables[i - p->pc->nstreams].name;
        snprintf(l, sizeof l, "pipeline=\"%s\",topic=\"%s\"", n, input);
        jn_metrics_counter_bind("junction_consumer_messages_total", "Messages read, by input", l,
                                &p->n.read[i]);
    }
    snprintf(l, sizeof l, "pipeline=\"%s\"", n);
    jn_metrics_counter_bind("junction_consumer_duplicates_total",
                            "Messages skipped: their processed mark exists", l, &p->n.duplicates);
    jn_metrics_counter_bind("junction_consumer_merged_total", "Records the transform produced", l,
                            &p->n.merged);
    jn_metrics_gauge_bind("junction_join_records", "Stream records the host's join keeps (M.join)",
                          l, &p->n.join_records);
    jn_metrics_gauge_bind("junction_join_bytes",
                          "Memory of the host's join: records, index and table, in bytes", l,
                          &p->n.join_bytes);
    jn_metrics_counter_bind("junction_consumer_fetch_nudges_total",
                            "Times librdkafka's fetchers were woken for a prefetch running low", l,
                            &p->n.fetch_nudges);
    jn_metrics_counter_bind("junction_consumer_delivered_total", "Records a sink acknowledged", l,
                            &p->n.delivered);
    jn_metrics_counter_bind("junction_consumer_dead_lettered_total",
                            "Messages written to the dead-letter topic", l, &p->n.dead_lettered);
    jn_metrics_counter_bind("junction_consumer_errors_total", "Bad messages and transform errors",
                            l, &p->n.errors);
    p->m_commit =
        jn_metrics_histogram("junction_consumer_commit_seconds", "Latency of offset commits", l);
    jn_metrics_gauge_bind("junction_consumer_held_messages",
                          "Messages waiting for a record answering their id (held)", l,
                          &p->n.waiting);
    jn_metrics_gauge_bind("junction_consumer_pending_messages", "Messages read and not yet settled",
                          l, &p->n.pending);
    jn_metrics_counter_bind("junction_consumer_hold_expired_total",
                            "Messages the transform held past their deadline (dead-lettered)", l,
                            &p->n.hold_expired);
    jn_metrics_counter_bind("junction_consumer_restored_total",
                            "Changelog records replayed into the transform", l, &p->n.restored);
}

/* The kafka.* settings every producer of a pipeline shares. */
static jn_kafka_producer_opts producer_opts(const jn_config *cfg) {
    return (jn_kafka_producer_opts){.client = jn_kafka_conf_from(cfg),
                                    .compression = cfg->kafka.compression,
                                    .linger_ms = cfg->kafka.linger_ms,
                                    .queue_max_messages = cfg->kafka.queue_max_messages,
                                    .message_timeout_ms = cfg->kafka.message_timeout_ms};
}

static int start_sinks(jn_pipeline *p, char **err) {
    const jn_config *cfg = p->cfg;
    for (int i = 0; i < p->pc->nsinks; i++) {
        const jn_sink_config *sc = &p->pc->sinks[i];
        out_sink *o = &p->sinks[p->nsinks];
        o->cfg = sc;
        if (sc->type == JN_SINK_HTTP) {
            if (!p->http) p->http = jn_http_client_new(p->loop);
            if (!p->http) {
                *err =
                    jn_errorf("pipeline %s: cannot start the HTTP client (libcurl)", p->pc->name);
                return -1;
            }
            jn_sink_opts so = {.url = sc->url,
                               .batch_size = sc->batch_size,
                               .linger_ms = sc->linger_ms,
                               .max_inflight = sc->max_inflight,
                               .timeout_ms = sc->timeout_ms,
                               .retry_base_ms = sc->retry_base_ms,
                               .retry_max_ms = sc->retry_max_ms,
                               .headers = (const char *const *)sc->headers,
                               .name = sc->name,
                               .ca_file = sc->ca_file,
                               .cert_file = sc->cert_file,
                               .key_file = sc->key_file,
                               .insecure = !sc->verify_tls};
            o->http = jn_sink_new(p->loop, p->http, &so, on_sink_done, p);
        } else {
            jn_kafka_producer_opts po = producer_opts(cfg);
            o->kafka = jn_kafka_sink_new(p->loop, &po, sc->topic, on_sink_done, p, err);
            if (!o->kafka) return -1;
        }
        p->nsinks++;
    }
    return 0;
}

static jn_kafka_consumer *start_reader(jn_pipeline *p, const char *what, const char **topics,
                                       int assign_only, const jn_kafka_consumer_cbs *cbs,
                                       char **err) {
    /* Alone in a group of its own, never committing: it reads from the beginning. */
    char group[300];
    snprintf(group, sizeof group, "%s-%s-%d-%llx", p->pc->group_id, what, (int)getpid(),
             (unsigned long long)uv_hrtime());
    jn_kafka_consumer_opts o = {.client = jn_kafka_conf_from(p->cfg),
                                .group_id = group,
                                .auto_offset_reset = "earliest",
                                .topics = topics,
                                .report_eof = 1,
                                .assign_only = assign_only};
    return jn_kafka_consumer_new(p->loop, &o, cbs, p, err);
}

jn_pipeline *jn_pipeline_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               const jn_pipeline_config *pc, char **err) {
    jn_pipeline *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->loop = loop;
    p->cfg = cfg;
    p->pc = pc;
    p->prefix_len = strlen(pc->dedupe_prefix);
    p->scripts = scripts;
    p->inflight = jn_digest_set_new();
    register_metrics(p);
    static const jn_settle_cbs scbs = {.on_finished = on_finished,
                                       .on_orphan_refused = on_orphan_refused,
                                       .on_rec_free = on_rec_free};
    jn_settle_init(&p->settle, &scbs, p);
    /* Before anything can fail: a failed start ends as a stop does, which closes them. */
    uv_timer_t *timers[] = {&p->timer, &p->commit_timer, &p->revoke_timer, &p->ensure_timer};
    for (size_t i = 0; i < sizeof timers / sizeof *timers; i++) {
        uv_timer_init(loop, timers[i]);
        timers[i]->data = p;
    }

    const char *inputs[2 * JN_TRANSFORM_MAX_SINKS + 1], *sinks[JN_TRANSFORM_MAX_SINKS + 1],
        *keys[JN_TRANSFORM_MAX_SINKS + 1];
    if (pc->nstreams + pc->ntables > 2 * JN_TRANSFORM_MAX_SINKS ||
        pc->nsinks > JN_TRANSFORM_MAX_SINKS) {
        *err = jn_errorf("pipeline %s: at most %d inputs and %d sinks", pc->name,
                         2 * JN_TRANSFORM_MAX_SINKS, JN_TRANSFORM_MAX_SINKS);
        goto fail;
    }
    for (int i = 0; i < pc->nstreams; i++)
        inputs[i] = pc->streams[i].name;
    for (int i = 0; i < pc->ntables; i++)
        inputs[pc->nstreams + i] = pc->tables[i].name;
    for (int i = 0; i < pc->nsinks; i++) {
        sinks[i] = pc->sinks[i].name;
        keys[i] = pc->sinks[i].type == JN_SINK_KAFKA ? pc->sinks[i].key_field : NULL;
    }
    jn_transform_opts to = {.pipeline = pc->name,
                            .path = pc->transform,
                            .streams = inputs,
                            .nstreams = pc->nstreams,
                            .tables = inputs + pc->nstreams,
                            .ntables = pc->ntables,
                            .sinks = sinks,
                            .sink_keys = keys,
                            .nsinks = pc->nsinks,
                            .hold_ms = pc->hold_ms,
                            .hold_max = pc->hold_max};
    p->tf = jn_transform_new(scripts, &to, err);
    if (!p->tf) goto fail;

    jn_kafka_producer_opts po = producer_opts(cfg);
    /* Changelog writes and dead letters are off a record's path to its sinks (they only
     * hold back its mark and commit), so they can wait for fuller batches: fewer requests
     * for librdkafka and the broker. */
    if (po.linger_ms < CHANGELOG_LINGER_MS) po.linger_ms = CHANGELOG_LINGER_MS;
    p->producer = jn_kafka_producer_new(loop, &po, on_produced, p, err);
    if (!p->producer) goto fail;
    if (pc->dedupe) {
        jn_redis_opts ro = {.host = cfg->redis.host,
                            .port = cfg->redis.port,
                            .username = cfg->redis.username,
                            .password = cfg->redis.password,
                            .db = cfg->redis.db};
        p->redis = jn_redis_new(loop, &ro, on_redis_state, p);
        static const jn_dedupe_cbs dcbs = {.on_checked = on_checked, .on_marked = on_marked};
        jn_marks_layout layout = {.kind = pc->dedupe_buckets ? JN_MARKS_LAYOUT_BUCKETS
                                                             : JN_MARKS_LAYOUT_KEYS,
                                  .ttl_s = pc->dedupe_ttl_s,
                                  .prefix_len = p->prefix_len};
        p->dedupe = jn_dedupe_new(loop, p->redis, &layout, &dcbs, p);
    }
    if (start_sinks(p, err) != 0) goto fail;

    p->load_started_ms = uv_now(loop);
    uv_timer_start(&p->commit_timer, on_commit_timer, 500, 500);
    uv_timer_start(&p->timer, on_timer, TIMER_MS, TIMER_MS);

    p->changelogs_ready = 1;
    for (int i = 0; i < pc->nstreams; i++) {
        p->srt[i].p = p;
        p->srt[i].stream = i;
        if (pc->streams[i].changelog) p->changelogs_ready = 0;
    }
    if (!p->changelogs_ready) {
        jn_kafka_consumer_cbs rcbs = {.on_message = on_restore_message,
                                      .on_commit = no_commit,
                                      .on_error = on_kafka_error,
                                      .on_eof = restore_eof};
        p->restorer = start_reader(p, "restore", NULL, 1, &rcbs, err);
        if (!p->restorer) goto fail;
        for (int i = 0; i < pc->nstreams; i++)
            if (pc->streams[i].changelog) decide_stream(&p->srt[i]);
    }

    if (pc->ntables) {
        const char *topics[2 * JN_TRANSFORM_MAX_SINKS + 1];
        for (int i = 0; i < pc->ntables; i++)
            topics[i] = pc->tables[i].topic;
        topics[pc->ntables] = NULL;
        jn_kafka_consumer_cbs tcbs = {.on_message = on_table_message,
                                      .on_positions = tables_positions,
                                      .on_assign = tables_assign,
                                      .on_revoke = tables_revoke,
                                      .on_commit = no_commit,
                                      .on_error = on_kafka_error,
                                      .on_eof = tables_eof};
        p->tables = start_reader(p, "tables", topics, 0, &tcbs, err);
        if (!p->tables) goto fail;
    } else {
        p->tables_loaded = 1;
    }

    const char *topics[2 * JN_TRANSFORM_MAX_SINKS + 1];
    for (int i = 0; i < pc->nstreams; i++)
        topics[i] = pc->streams[i].topic;
    topics[pc->nstreams] = NULL;
    jn_kafka_consumer_opts go = {.client = jn_kafka_conf_from(cfg),
                                 .group_id = pc->group_id,
                                 .auto_offset_reset = pc->auto_offset_reset,
                                 .topics = topics};
    jn_kafka_consumer_cbs gcbs = {.on_message = on_group_message,
                                  .on_assign = on_assign,
                                  .on_revoke = on_revoke,
                                  .on_commit = on_commit_result,
                                  .on_error = on_kafka_error};
    p->group = jn_kafka_consumer_new(loop, &go, &gcbs, p, err);
    if (!p->group) goto fail;
    jn_sb desc;
    jn_sb_init(&desc);
    for (int i = 0; i < pc->nstreams; i++)
        jn_sb_printf(&desc, "%s%s", i ? ", " : "", pc->streams[i].topic);
    jn_sb_puts(&desc, " (tables:");
    for (int i = 0; i < pc->ntables; i++)
        jn_sb_printf(&desc, " %s", pc->tables[i].topic);
    jn_sb_puts(&desc, pc->ntables ? "), delivering to" : " none), delivering to");
    for (int i = 0; i < pc->nsinks; i++)
        jn_sb_printf(&desc, " %s", pc->sinks[i].name);
    jn_log_info("consumer", "pipeline %s: group %s reading %s", pc->name, pc->group_id, desc.data);
    jn_sb_free(&desc);
    /* With de-duplication, reading waits for Redis: a message must never pass
     * unchecked. */
    update_flow(p);
    return p;

fail:
    /* Undone as a stop does it (each stage skips what was never made); p frees itself
     * once every handle has closed. */
    p->stopping = 1;
    jn_pipeline_stop(p, NULL, NULL);
    return NULL;
}

/* Shutdown runs as a chain: the group (its revoke settles and commits what it can), the
 * readers, the HTTP client, the sinks, Redis, the producer, the timers. */
static void stop_step(void *arg);

static void on_timer_closed(uv_handle_t *h) {
    jn_pipeline *p = h->data;
    if (--p->handles > 0) return;
    for (partition *x = p->parts, *n; x; x = n) {
        n = x->next;
        jn_offsets_free(&x->offs);
        jn_metrics_unbind(&x->lag, sizeof x->lag);
        free(x);
    }
    jn_metrics_unbind(&p->n, sizeof p->n);
    jn_digest_set_free(p->inflight);
    free(p->tload.v);
    free(p->rload.v);
    for (pmsg *m = p->spare, *n; m; m = n) {
        n = m->next;
        free(m);
    }
    jn_transform_free(p->tf);
    void (*done)(void *) = p->done;
    void *arg = p->done_arg;
    p->done = NULL;
    /* A topic request still on the thread pool holds p: it frees it when it is back. */
    p->closed = 1;
    if (p->admin_pending == 0) pipeline_free(p);
    if (done) done(arg);
}

static void pipeline_free(jn_pipeline *p) {
    free(p);
}

static void stop_step(void *arg) {
    jn_pipeline *p = arg;
    int stage = p->stop_stage++;
    switch (stage) {
    case 0:
        if (p->group) {
            jn_kafka_consumer_close(p->group, stop_step, p);
            return;
        }
        break;
    case 1:
        if (p->tables) {
            jn_kafka_consumer_close(p->tables, stop_step, p);
            return;
        }
        break;
    case 2:
        if (p->restorer) {
            jn_kafka_consumer_close(p->restorer, stop_step, p);
            return;
        }
        break;
    case 3:
        /* From here on nothing is delivered: what is unsettled is read again next run. */
        p->stopping = 1;
        if (p->http) {
            jn_http_client_close(p->http, stop_step, p);
            return;
        }
        break;
    case 4:
        /* The sinks drop what they did not deliver without reporting it. */
        for (int i = 0; i < p->nsinks; i++) {
            if (p->sinks[i].http) jn_sink_close(p->sinks[i].http, NULL, NULL);
            if (p->sinks[i].kafka) jn_kafka_sink_close(p->sinks[i].kafka, NULL, NULL);
        }
        break;
    case 5:
        if (p->dedupe) jn_dedupe_free(p->dedupe);
        if (p->redis) {
            jn_redis_close(p->redis, stop_step, p);
            return;
        }
        break;
    case 6:
        if (p->producer) {
            jn_kafka_producer_close(p->producer, 5000, stop_step, p);
            return;
        }
        break;
    default: {
        /* Messages never settled (waiting for Redis, held, in a sink) are read again by
         * the next run. */
        while (p->all) {
            jn_settle_forget(&p->settle, &p->all->st);
            free_pmsg(p, p->all);
        }
        jn_settle_free(&p->settle);
        uv_timer_t *timers[] = {&p->timer, &p->commit_timer, &p->revoke_timer, &p->ensure_timer};
        p->handles = 4;
        for (int i = 0; i < 4; i++)
            uv_close((uv_handle_t *)timers[i], on_timer_closed);
        return;
    }
    }
    stop_step(p); /* a stage with nothing to close */
}

void jn_pipeline_stop(jn_pipeline *p, void (*done)(void *), void *arg) {
    if (p->stop_stage) return;
    p->done = done;
    p->done_arg = arg;
    /* Not "stopping" yet: the group's final revoke still delivers, marks and commits. */
    stop_step(p);
}

static const char *loading_reason(const jn_pipeline *p) {
    if (!p->tables_loaded) return "loading tables: not every table partition was read to its end";
    if (!p->joined) return "joining its consumer group (no assignment yet)";
    if (!p->changelogs_ready) return "finding or creating its changelog topics";
    if ((p->restoring || p->committed_pending) && p->restore_blocks)
        return "restoring join state from the changelog";
    return NULL;
}

void jn_pipeline_status_json(jn_pipeline *p, jn_sb *out) {
    uint64_t batches = 0, retries = 0, consumed = 0;
    for (int i = 0; i < p->nsinks; i++) {
        if (!p->sinks[i].http) continue;
        const jn_sink_counts *c = jn_sink_counts_of(p->sinks[i].http);
        batches += c->sent, retries += c->retried;
    }
    for (int i = 0; i < p->pc->nstreams; i++)
        consumed += p->n.read[i];
    jn_sb_puts(out, "{\"name\":");
    jn_sb_json_string(out, p->pc->name, strlen(p->pc->name));
    jn_sb_printf(out,
                 ",\"consumed\":%llu,\"duplicates\":%llu,\"merged\":%llu,\"delivered\":%llu,"
                 "\"dead_lettered\":%llu,\"restored\":%llu,\"pending\":%lld,"
                 "\"held\":%zu,\"redis\":%s,\"paused\":%s,\"tables_loaded\":%s,"
                 "\"restoring\":%s,\"batches\":%llu,\"retries\":%llu,\"partitions\":[",
                 (unsigned long long)consumed, (unsigned long long)p->n.duplicates,
                 (unsigned long long)p->n.merged, (unsigned long long)p->n.delivered,
                 (unsigned long long)p->n.dead_lettered, (unsigned long long)p->n.restored,
                 (long long)p->pending, jn_settle_waiting(&p->settle),
                 !p->dedupe || (p->redis_up && !jn_dedupe_error(p->dedupe)) ? "true" : "false",
                 p->paused ? "true" : "false", p->tables_loaded ? "true" : "false",
                 p->restoring ? "true" : "false", (unsigned long long)batches,
                 (unsigned long long)retries);
    int first = 1;
    for (partition *x = p->parts; x; x = x->next) {
        if (!x->assigned) continue;
        jn_sb_puts(out, first ? "{\"topic\":" : ",{\"topic\":");
        jn_sb_json_string(out, x->topic, strlen(x->topic));
        jn_sb_printf(out, ",\"partition\":%d,\"committed\":%lld,\"lag\":%lld}", (int)x->id,
                     (long long)x->committed, (long long)x->lag);
        first = 0;
    }
    jn_sb_puts(out, "]}");
}

const char *jn_pipeline_not_ready(jn_pipeline *p) {
    const char *why = loading_reason(p);
    char refused[240];
    if (!why && p->dedupe && !p->redis_up) {
        snprintf(refused, sizeof refused, "Redis unreachable (%s)",
                 jn_redis_down_reason(p->redis) ? jn_redis_down_reason(p->redis) : "connecting");
        why = refused;
    }
    if (!why && p->dedupe && jn_dedupe_error(p->dedupe)) {
        snprintf(refused, sizeof refused, "Redis refuses de-duplication (%s)",
                 jn_dedupe_error(p->dedupe));
        why = refused;
    }
    if (!why) return NULL;
    if (p->kafka_refused[0])
        snprintf(p->not_ready, sizeof p->not_ready, "pipeline %s: Kafka refuses the connection: %s",
                 p->pc->name, p->kafka_refused);
    else
        snprintf(p->not_ready, sizeof p->not_ready, "pipeline %s: %s", p->pc->name, why);
    return p->not_ready;
}

int64_t jn_pipeline_topic_read(const jn_pipeline *p, const char *topic) {
    int64_t n = -1;
    for (int i = 0; i < p->pc->nstreams + p->pc->ntables; i++) {
        const jn_input_config *in =
            i < p->pc->nstreams ? &p->pc->streams[i] : &p->pc->tables[i - p->pc->nstreams];
        if (strcmp(in->topic, topic)) continue;
        n = (n < 0 ? 0 : n) + (int64_t)p->n.read[i];
    }
    return n;
}

void jn_pipeline_add_totals(const jn_pipeline *p, jn_pipeline_totals *t) {
    t->merged += p->n.merged;
    t->delivered += p->n.delivered;
    t->duplicates += p->n.duplicates;
    t->dead_lettered += p->n.dead_lettered;
    t->errors += p->n.errors;
    t->pending += p->pending;
    t->held += (int64_t)jn_settle_waiting(&p->settle);
    /* Every partition ever assigned, as junction_consumer_lag shows them. */
    for (const partition *x = p->parts; x; x = x->next)
        t->lag += x->lag;
    for (int i = 0; i < p->nsinks; i++) {
        if (!p->sinks[i].http) continue;
        const jn_sink_counts *c = jn_sink_counts_of(p->sinks[i].http);
        t->rejected += c->rejected;
        t->sink_retries += c->retried;
    }
}
