/* The producer. Each source runs one poll at a time: fetch (with retries), then map
 * and queue every new or changed record, then wait poll_interval_ms and poll again.
 * Deliveries are reported asynchronously; a cycle's log line is written when its last
 * report arrives. When librdkafka's queue is full the source pauses where it was and
 * resumes as reports drain the queue: nothing is dropped.
 *
 * Change detection keeps, per record key, the SHA-256 of the last value Kafka
 * acknowledged. A record whose delivery failed keeps its old hash, so the next cycle
 * publishes it again: a broker outage delays records, it never loses them. For the
 * same reason the API's ETag is only trusted after a cycle that delivered everything. */
#include "producer.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "http_client.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "record.h"
#include "strmap.h"

typedef struct source source;

/* One poll's records, alive until its last delivery report. */
typedef struct cycle {
    source *src;
    uint64_t id;
    char etag[128];
    long queued, delivered, failed, skipped;
    int processing; /* still mapping and queueing */
    uint64_t started_ns;
    long deferred; /* records left to an earlier cycle that has them in flight */
} cycle;

/* The opaque of one Kafka message. */
typedef struct {
    cycle *cyc;
    unsigned char hash[32];
    size_t keylen;
    char key[];
} message;

struct source {
    jn_producer *p;
    const char *name, *noun;
    jn_source_config cfg;
    jn_script *script;
    uv_timer_t timer;
    int attempt;
    char etag[128];
    int etag_valid;
    jn_strmap *published, *pending;
    uint64_t next_cycle;
    uint64_t poll_started_ns;
    /* the cycle being mapped and queued */
    cycle *cur;
    /* The response of the cycle being processed: its body and where each record is in
     * it. Records are decoded one at a time, so only one lives as Lua tables at once. */
    jn_sb body;
    jn_json_span *spans;
    size_t nspans, next_span;
    int paused;
    char last_error[256];
    uint64_t warned_at[4];
    long polls, failures;
    jn_metric *m_polls_ok, *m_polls_unchanged, *m_polls_failed, *m_retries, *m_published,
        *m_unchanged, *m_invalid, *m_map_errors, *m_delivery_errors, *m_queue_full, *m_cycle;
};

struct jn_producer {
    uv_loop_t *loop;
    jn_script_host *scripts;
    jn_http_client *http;
    jn_kafka_producer *kafka;
    jn_backoff backoff;
    int poll_interval_ms, request_timeout_ms, publish_all, queue_max;
    uint64_t rng;
    source src[2];
    int nsrc;
    int stopping, pending_close;
    void (*done)(void *);
    void *done_arg;
};

/* A big response is mapped and queued in slices of this many records, one per loop turn. */
#define RECORDS_PER_TURN 2000

static void poll_now(uv_timer_t *t);
static void continue_cycle(source *s);

/* ---- metrics ----------------------------------------------------------------------- */

static jn_metric *counter(const char *name, const char *help, const char *src, const char *k,
                          const char *v) {
    char labels[160];
    if (k)
        snprintf(labels, sizeof labels, "source=\"%s\",%s=\"%s\"", src, k, v);
    else
        snprintf(labels, sizeof labels, "source=\"%s\"", src);
    return jn_metrics_counter(name, help, labels);
}

static void init_metrics(source *s) {
    const char *polls = "junction_producer_polls_total";
    const char *ph =
        "Polls of a source API by result (ok, unchanged via 304, failed after retries)";
    s->m_polls_ok = counter(polls, ph, s->name, "result", "ok");
    s->m_polls_unchanged = counter(polls, ph, s->name, "result", "unchanged");
    s->m_polls_failed = counter(polls, ph, s->name, "result", "failed");
    s->m_retries =
        counter("junction_producer_retries_total", "Retried API requests", s->name, NULL, NULL);
    const char *rec = "junction_producer_records_total";
    const char *rh = "Records by outcome: published (acknowledged by Kafka), unchanged, invalid, "
                     "map_error";
    s->m_published = counter(rec, rh, s->name, "result", "published");
    s->m_unchanged = counter(rec, rh, s->name, "result", "unchanged");
    s->m_invalid = counter(rec, rh, s->name, "result", "invalid");
    s->m_map_errors = counter(rec, rh, s->name, "result", "map_error");
    s->m_delivery_errors =
        counter("junction_producer_delivery_errors_total",
                "Messages Kafka did not acknowledge (published again later)", s->name, NULL, NULL);
    s->m_queue_full =
        counter("junction_producer_queue_full_total",
                "Times polling paused because librdkafka's queue was full", s->name, NULL, NULL);
    char labels[64];
    snprintf(labels, sizeof labels, "source=\"%s\"", s->name);
    s->m_cycle =
        jn_metrics_histogram("junction_producer_cycle_seconds",
                             "From the start of a poll to its last delivery report", labels);
}

static void count_failure(source *s, const char *reason) {
    jn_metric_add(counter("junction_producer_failures_total",
                          "Failed API requests and responses by reason", s->name, "reason", reason),
                  1);
}

/* ---- cycle bookkeeping ------------------------------------------------------------- */

static void schedule(source *s, uint64_t ms) {
    if (s->p->stopping) return;
    uv_timer_start(&s->timer, poll_now, ms, 0);
}

static void finish_cycle_if_done(cycle *c) {
    if (c->processing || c->delivered + c->failed < c->queued) return;
    source *s = c->src;
    jn_metric_observe(s->m_cycle, (double)(uv_hrtime() - c->started_ns) / 1e9);
    if (c->queued || c->failed)
        jn_log_info("producer", "Published %ld %s to topic %s%s", c->delivered, s->noun,
                    s->cfg.topic, c->failed ? " (some failed and will be published again)" : "");
    else
        jn_log_debug("producer", "%s: nothing new or changed", s->name);
    /* The ETag stands for what this cycle saw; trust it only if all of it landed. A
     * record left to an earlier cycle's delivery may still fail, and a 304 would then
     * hide it, so such a cycle does not keep its ETag either. */
    if (!c->failed && !c->skipped && !c->deferred && c->etag[0] && c->id + 1 == s->next_cycle) {
        memcpy(s->etag, c->etag, sizeof s->etag);
        s->etag_valid = 1;
    }
    free(c);
}

/* ---- fetching ---------------------------------------------------------------------- */

static void on_response(void *ud, jn_http_result *res);

static void fetch(source *s) {
    char inm[160];
    const char *headers[3] = {"Accept: application/json", NULL, NULL};
    if (s->etag_valid && !s->p->publish_all && s->etag[0]) {
        snprintf(inm, sizeof inm, "If-None-Match: %s", s->etag);
        headers[1] = inm;
    }
    jn_http_request_opts o = {.method = "GET",
                              .url = s->cfg.url,
                              .headers = headers,
                              .timeout_ms = s->p->request_timeout_ms,
                              .connect_timeout_ms = s->p->request_timeout_ms};
    if (jn_http_client_request(s->p->http, &o, on_response, s) != 0) {
        count_failure(s, "request_not_started");
        schedule(s, (uint64_t)s->p->poll_interval_ms);
    }
}

static void poll_now(uv_timer_t *t) {
    source *s = t->data;
    if (s->cur) return; /* the previous cycle is still queueing (paused on a full queue) */
    s->attempt = 1;
    s->polls++;
    s->poll_started_ns = uv_hrtime();
    fetch(s);
}

static void on_retry_timer(uv_timer_t *t) {
    fetch(t->data);
}

/* A failed try: retry after a jittered backoff, or give up until the next poll. */
static void retry_or_give_up(source *s, const char *reason, const char *detail,
                             long retry_after_s) {
    count_failure(s, reason);
    snprintf(s->last_error, sizeof s->last_error, "%s: %s", reason, detail);
    s->attempt++;
    if (jn_backoff_allows(&s->p->backoff, s->attempt) && !s->p->stopping) {
        int64_t d = jn_backoff_delay_ms(&s->p->backoff, s->attempt, jn_random_unit(&s->p->rng),
                                        retry_after_s);
        jn_log_warn("producer", "%s: GET %s failed (%s: %s); try %d of %d in %lld ms", s->name,
                    s->cfg.url, reason, detail, s->attempt, s->p->backoff.attempts, (long long)d);
        jn_metric_add(s->m_retries, 1);
        uv_timer_start(&s->timer, on_retry_timer, (uint64_t)d, 0);
        return;
    }
    s->failures++;
    jn_metric_add(s->m_polls_failed, 1);
    jn_log_error("producer", "%s: GET %s failed after %d tries (%s: %s); polling again in %d ms",
                 s->name, s->cfg.url, s->attempt - 1, reason, detail, s->p->poll_interval_ms);
    schedule(s, (uint64_t)s->p->poll_interval_ms);
}

static void give_up(source *s, const char *reason, const char *detail) {
    s->attempt = s->p->backoff.attempts + 1;
    count_failure(s, reason);
    snprintf(s->last_error, sizeof s->last_error, "%s: %s", reason, detail);
    s->failures++;
    jn_metric_add(s->m_polls_failed, 1);
    jn_log_error("producer", "%s: GET %s: %s (%s); polling again in %d ms", s->name, s->cfg.url,
                 detail, reason, s->p->poll_interval_ms);
    schedule(s, (uint64_t)s->p->poll_interval_ms);
}

static void start_cycle(source *s, jn_http_result *res) {
    char jerr[160];
    jn_json_span *spans;
    size_t nspans;
    /* The whole body is checked before any record is published: a truncated response
     * publishes nothing. */
    int rc = jn_json_array_spans(res->body.data, res->body.len, &spans, &nspans, jerr, sizeof jerr);
    if (rc == -1) {
        char detail[240];
        snprintf(detail, sizeof detail, "body of %zu bytes is not JSON (%s)", res->body.len, jerr);
        /* A truncated body is usually a transient fault: worth another try. */
        retry_or_give_up(s, "malformed_json", detail, -1);
        return;
    }
    if (rc == -2) {
        give_up(s, "not_array", jerr);
        return;
    }
    jn_metric_add(s->m_polls_ok, 1);
    cycle *c = calloc(1, sizeof *c);
    if (!c) abort();
    c->src = s;
    c->id = s->next_cycle++;
    c->processing = 1;
    c->started_ns = s->poll_started_ns;
    snprintf(c->etag, sizeof c->etag, "%s", res->etag);
    s->etag_valid = 0;
    s->cur = c;
    s->body = res->body; /* taken: the client frees what the callback leaves */
    jn_sb_init(&res->body);
    s->spans = spans;
    s->nspans = nspans;
    s->next_span = 0;
    s->last_error[0] = '\0';
    continue_cycle(s);
}

static void on_response(void *ud, jn_http_result *res) {
    source *s = ud;
    if (s->p->stopping) return;
    char detail[200];
    if (res->curl_code) {
        snprintf(detail, sizeof detail, "%s",
                 res->curl_error ? res->curl_error : "transfer failed");
        retry_or_give_up(s, res->curl_code == 28 ? "timeout" : "unreachable", detail, -1);
        return;
    }
    if (res->status == 304) {
        jn_metric_add(s->m_polls_unchanged, 1);
        s->last_error[0] = '\0';
        schedule(s, (uint64_t)s->p->poll_interval_ms);
        return;
    }
    if (res->status == 200) {
        start_cycle(s, res);
        return;
    }
    snprintf(detail, sizeof detail, "HTTP %ld", res->status);
    if (res->status == 408 || res->status == 429 || res->status >= 500)
        retry_or_give_up(s, res->status >= 500 ? "http_5xx" : "http_429", detail,
                         res->retry_after_s);
    else
        give_up(s, "http_4xx", detail);
}

/* ---- mapping and publishing -------------------------------------------------------- */

enum { P_NOT_OBJECT, P_NO_ID, P_MAP_ERROR, P_MAP_RESULT, P_KINDS };

/* Logs a bad record. The same API usually serves the same bad record every cycle, so
 * each kind of problem is logged at most once per 10 s per source; the counters hold
 * the totals. */
static void note(source *s, int kind, lua_Integer i, const char *why) {
    static const char *const words[P_KINDS] = {"is not an object", "has no id", "failed in map()",
                                               "has an unusable map() result"};
    uint64_t now = uv_now(s->p->loop);
    if (s->warned_at[kind] && now - s->warned_at[kind] < 10000) return;
    s->warned_at[kind] = now;
    jn_log_warn("producer", "%s: record %lld %s: %s (more are counted in /metrics)", s->name,
                (long long)i, words[kind], why);
}

static void drop_response(source *s) {
    jn_sb_free(&s->body);
    free(s->spans);
    s->spans = NULL;
    s->nspans = s->next_span = 0;
}

static void end_processing(source *s) {
    drop_response(s);
    cycle *c = s->cur;
    s->cur = NULL;
    c->processing = 0;
    finish_cycle_if_done(c);
    schedule(s, (uint64_t)s->p->poll_interval_ms);
}

static void on_turn(uv_timer_t *t) {
    source *s = t->data;
    if (!s->p->stopping && s->cur && !s->paused) continue_cycle(s);
}

static void continue_cycle(source *s) {
    jn_producer *p = s->p;
    size_t turn_end = s->next_span + RECORDS_PER_TURN;
    lua_State *L = jn_script_host_lua(p->scripts);
    cycle *c = s->cur;
    int top = lua_gettop(L);
    char *ferr = NULL;
    if (jn_script_push_function(s->script, "map", &ferr) != 0) {
        /* Only a module whose metatable stopped answering gets here: every record of the
         * turn fails as a map error would, and is published once a version maps it. */
        jn_metric_add(s->m_map_errors, (double)(s->nspans - s->next_span));
        c->skipped += s->nspans - s->next_span;
        note(s, P_MAP_ERROR, (lua_Integer)s->next_span + 1, ferr);
        free(ferr);
        s->next_span = s->nspans;
        end_processing(s);
        return;
    }
    int map = lua_gettop(L);
    lua_createtable(L, 0, 2);
    lua_pushstring(L, s->name);
    lua_setfield(L, -2, "source");
    lua_pushstring(L, s->cfg.topic);
    lua_setfield(L, -2, "topic");
    int ctx = lua_gettop(L);
    jn_record rec;
    jn_record_init(&rec);
    for (; s->next_span < s->nspans; s->next_span++) {
        if (s->next_span == turn_end) {
            /* The rest on the next loop turn: the admin API and delivery reports are
             * served in between, however many records the API returned. */
            jn_record_free(&rec);
            lua_settop(L, top);
            uv_timer_start(&s->timer, on_turn, 0, 0);
            return;
        }
        lua_Integer i = (lua_Integer)s->next_span + 1;
        const jn_json_span *sp = &s->spans[s->next_span];
        const char *text = s->body.data + sp->off;
        lua_settop(L, ctx);
        char jerr[8];
        if (*text != '{' || jn_json_decode(L, text, sp->len, jerr, sizeof jerr) != 0) {
            jn_metric_add(s->m_invalid, 1);
            c->skipped++;
            note(s, P_NOT_OBJECT, i, jn_json_kind(*text));
            continue;
        }
        int t = lua_getfield(L, -1, "id");
        lua_pop(L, 1);
        if (t != LUA_TSTRING && t != LUA_TNUMBER) {
            jn_metric_add(s->m_invalid, 1);
            c->skipped++;
            note(s, P_NO_ID, i, "records need an \"id\"");
            continue;
        }
        lua_pushvalue(L, map);
        lua_insert(L, -2);
        lua_pushvalue(L, ctx);
        char *err = NULL;
        if (jn_script_pcall(s->script, 2, 1, &err) != 0) {
            jn_metric_add(s->m_map_errors, 1);
            c->skipped++;
            note(s, P_MAP_ERROR, i, err);
            free(err);
            continue;
        }
        if (lua_isnil(L, -1)) continue; /* the script filtered it out */
        const char *why = jn_record_read(L, &rec);
        if (why) {
            jn_metric_add(s->m_map_errors, 1);
            c->skipped++;
            note(s, P_MAP_RESULT, i, why);
            continue;
        }
        unsigned char hash[32];
        jn_sha256(rec.value.data, rec.value.len, hash);
        if (!p->publish_all) {
            const unsigned char *old = jn_strmap_get(s->published, rec.key.data, rec.key.len);
            const unsigned char *inflight = jn_strmap_get(s->pending, rec.key.data, rec.key.len);
            if ((old && !memcmp(old, hash, 32) && !inflight) ||
                (inflight && !memcmp(inflight, hash, 32))) {
                if (inflight) c->deferred++;
                jn_metric_add(s->m_unchanged, 1);
                continue;
            }
        }
        message *m = malloc(sizeof *m + rec.key.len + 1);
        if (!m) abort();
        m->cyc = c;
        memcpy(m->hash, hash, 32);
        m->keylen = rec.key.len;
        memcpy(m->key, rec.key.data, rec.key.len + 1);
        int rc = jn_kafka_produce(p->kafka, s->cfg.topic, rec.key.data, rec.key.len, rec.value.data,
                                  rec.value.len, rec.nheaders ? rec.headers : NULL, m);
        if (rc == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
            free(m);
            jn_metric_add(s->m_queue_full, 1);
            s->paused = 1;
            break; /* resumed from this record by on_delivery */
        }
        if (rc != 0) {
            free(m);
            c->failed++;
            jn_metric_add(s->m_delivery_errors, 1);
            jn_log_error("producer", "%s: cannot queue record %s: %s", s->name, rec.key.data,
                         rd_kafka_err2str((rd_kafka_resp_err_t)rc));
            continue;
        }
        jn_strmap_set(s->pending, rec.key.data, rec.key.len, hash);
        c->queued++;
    }
    jn_record_free(&rec);
    lua_settop(L, top);
    if (!s->paused) end_processing(s);
}

static void on_delivery(void *ud, void *opaque, rd_kafka_resp_err_t err, const char *topic,
                        int32_t partition, int64_t offset) {
    (void)topic, (void)partition, (void)offset;
    jn_producer *p = ud;
    message *m = opaque;
    cycle *c = m->cyc;
    source *s = c->src;
    const unsigned char *inflight = jn_strmap_get(s->pending, m->key, m->keylen);
    if (inflight && !memcmp(inflight, m->hash, 32)) jn_strmap_del(s->pending, m->key, m->keylen);
    if (!err) {
        jn_strmap_set(s->published, m->key, m->keylen, m->hash);
        c->delivered++;
        jn_metric_add(s->m_published, 1);
    } else {
        if (!c->failed)
            jn_log_warn("producer",
                        "%s: Kafka did not take record %s: %s; it will be published "
                        "again",
                        s->name, m->key, rd_kafka_err2str(err));
        c->failed++;
        jn_metric_add(s->m_delivery_errors, 1);
    }
    free(m);
    finish_cycle_if_done(c);
    /* Resume a paused source once the queue has room again. */
    for (int i = 0; i < p->nsrc; i++) {
        source *x = &p->src[i];
        if (x->paused && !p->stopping && jn_kafka_producer_inflight(p->kafka) < p->queue_max / 2) {
            x->paused = 0;
            continue_cycle(x);
        }
    }
}

/* ---- life -------------------------------------------------------------------------- */

static int check_map(jn_script *script, void *ud, char **err) {
    source *s = ud;
    lua_State *L = jn_script_host_lua(s->p->scripts);
    lua_getfield(L, -1, "map");
    int ok = lua_isfunction(L, -1);
    lua_pop(L, 1);
    if (!ok) {
        *err = strdup("the script must define map(record, ctx) returning {key=, value=, "
                      "headers=} or nil");
        return -1;
    }
    (void)script;
    /* A new mapping may change every value: re-read the whole array next poll. */
    s->etag_valid = 0;
    return 0;
}

jn_producer *jn_producer_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               char **err) {
    jn_producer *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->loop = loop;
    p->scripts = scripts;
    p->backoff = (jn_backoff){cfg->producer.retry.attempts, cfg->producer.retry.base_ms,
                              cfg->producer.retry.multiplier, cfg->producer.retry.max_ms};
    p->poll_interval_ms = cfg->producer.poll_interval_ms;
    p->request_timeout_ms = cfg->producer.request_timeout_ms;
    p->publish_all = cfg->producer.publish_all;
    p->queue_max = cfg->kafka.queue_max_messages;
    p->rng = uv_hrtime() | 1;

    jn_kafka_producer_opts ko = {.client = jn_kafka_conf_from(cfg),
                                 .compression = cfg->kafka.compression,
                                 .linger_ms = cfg->kafka.linger_ms,
                                 .queue_max_messages = cfg->kafka.queue_max_messages,
                                 .message_timeout_ms = cfg->kafka.message_timeout_ms};
    p->kafka = jn_kafka_producer_new(loop, &ko, on_delivery, p, err);
    if (!p->kafka) {
        free(p);
        return NULL;
    }
    p->http = jn_http_client_new(loop);

    const jn_source_config *sc[2] = {&cfg->producer.crm, &cfg->producer.inventory};
    const char *names[2] = {"crm", "inventory"}, *nouns[2] = {"customer(s)", "product(s)"};
    for (int i = 0; i < 2; i++) {
        if (!sc[i]->enabled) continue;
        source *s = &p->src[p->nsrc++];
        s->p = p;
        s->name = names[i];
        s->noun = nouns[i];
        s->cfg = *sc[i];
        s->published = jn_strmap_new();
        s->pending = jn_strmap_new();
        init_metrics(s);
        char sname[64];
        snprintf(sname, sizeof sname, "map_%s", s->name);
        s->script = jn_script_add(scripts, sname, s->cfg.script, check_map, s, err);
        if (!s->script) return NULL; /* the caller exits */
        uv_timer_init(loop, &s->timer);
        s->timer.data = s;
        uv_timer_start(&s->timer, poll_now, 0, 0);
        jn_log_info("producer", "%s: polling %s every %d ms into topic %s", s->name, s->cfg.url,
                    p->poll_interval_ms, s->cfg.topic);
    }
    return p;
}

static void closed_one(void *arg) {
    jn_producer *p = arg;
    if (--p->pending_close > 0) return;
    for (int i = 0; i < p->nsrc; i++) {
        jn_strmap_free(p->src[i].published);
        jn_strmap_free(p->src[i].pending);
        free(p->src[i].cur);
    }
    void (*done)(void *) = p->done;
    void *arg2 = p->done_arg;
    free(p);
    if (done) done(arg2);
}

static void on_timer_closed(uv_handle_t *h) {
    closed_one(((source *)h->data)->p);
}

static void on_http_closed(void *arg) {
    jn_producer *p = arg;
    /* Messages still queued get their reports during the flush; cycles free themselves. */
    jn_kafka_producer_close(p->kafka, 10000, closed_one, p);
}

void jn_producer_stop(jn_producer *p, void (*done)(void *), void *arg) {
    if (p->stopping) return;
    p->stopping = 1;
    p->done = done;
    p->done_arg = arg;
    p->pending_close = 1 + p->nsrc;
    for (int i = 0; i < p->nsrc; i++) {
        source *s = &p->src[i];
        if (s->cur) {
            /* A cycle paused on a full queue ends here; what it did not queue is
             * published by the next run, since nothing marked it published. */
            drop_response(s);
            s->cur->processing = 0;
            cycle *c = s->cur;
            s->cur = NULL;
            finish_cycle_if_done(c);
        }
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    }
    jn_http_client_close(p->http, on_http_closed, p);
}

void jn_producer_status_json(jn_producer *p, jn_sb *out) {
    jn_sb_putc(out, '{');
    for (int i = 0; i < p->nsrc; i++) {
        source *s = &p->src[i];
        jn_sb_printf(out,
                     "%s\"%s\":{\"url\":\"%s\",\"topic\":\"%s\",\"polls\":%ld,\"failures\":%ld,"
                     "\"published\":%.0f,\"unchanged\":%.0f,\"known_records\":%zu,\"last_error\":",
                     i ? "," : "", s->name, s->cfg.url, s->cfg.topic, s->polls, s->failures,
                     jn_metric_value(s->m_published), jn_metric_value(s->m_unchanged),
                     jn_strmap_count(s->published));
        if (s->last_error[0])
            jn_sb_json_string(out, s->last_error, strlen(s->last_error));
        else
            jn_sb_puts(out, "null");
        jn_sb_putc(out, '}');
    }
    jn_sb_printf(out, "%s\"kafka\":{\"inflight\":%ld,\"connected\":%s}}", p->nsrc ? "," : "",
                 jn_kafka_producer_inflight(p->kafka),
                 jn_kafka_producer_connected(p->kafka) ? "true" : "false");
}
