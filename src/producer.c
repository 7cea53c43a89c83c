/* The producer. Each source of the config runs one cycle at a time: fetch a page (with
 * retries), map and queue every new or changed record of it, fetch the next page if the
 * script's next() named one, and after the last page wait the source's poll interval and
 * start over. Deliveries are reported asynchronously; a cycle's log line is written when
 * its last report arrives. When librdkafka's queue is full the source pauses where it was
 * and resumes as reports drain the queue: nothing is dropped.
 *
 * Change detection keeps, per record key, the SHA-256 of the last value Kafka
 * acknowledged; it does not care which page a record came from, so it works across pages
 * and across cycles alike. A record whose delivery failed keeps its old hash, so the next
 * cycle publishes it again: a broker outage delays records, it never loses them. For the
 * same reason the API's ETag is only trusted after a cycle that delivered everything.
 *
 * A page that fails after its retries, or that the script cannot read, ends the cycle:
 * what earlier pages published stays published (and is unchanged next time), and the
 * next cycle starts again from the first page. */
#include "producer.h"

#include <lauxlib.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "backoff.h"
#include "http_client.h"
#include "json.h"
#include "kafka.h"
#include "log.h"
#include "metrics.h"
#include "page.h"
#include "random.h"
#include "record.h"
#include "record_view.h"
#include "strmap.h"

typedef struct source source;

/* One poll's records, every page of it, alive until its last delivery report. */
typedef struct cycle {
    source *src;
    uint64_t id;
    char etag[128]; /* of a cycle of one page without next(): see read_page */
    long queued, delivered, failed, skipped;
    int processing; /* still fetching pages, mapping and queueing */
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

enum { P_NOT_OBJECT, P_NO_ID, P_MAP_ERROR, P_MAP_RESULT, P_KINDS };

/* Kinds of failure a source can meet (the README's list of reasons, and a few more). */
#define MAX_REASONS 24

struct source {
    jn_producer *p;
    const jn_source_config *cfg;
    jn_backoff backoff;
    const char **headers; /* sent with every request; If-None-Match goes in at inm_slot */
    int inm_slot;
    jn_script *script;
    int has_records, has_next; /* hooks of the script's current version */
    int views;                 /* map() takes record views (M.views = true, record_view.h) */
    uv_timer_t timer;
    int attempt;
    char etag[128];
    int etag_valid;
    jn_strmap *published, *pending;
    jn_strmap *pages_seen; /* URL -> its page number, this cycle: a next() going round */
    uint64_t next_cycle;
    uint64_t poll_started_ns;
    long cycles_live, cycles_done;
    /* the cycle being fetched, mapped and queued */
    cycle *cur;
    int page;  /* the page being fetched or mapped, from 1 */
    char *url; /* its URL */
    /* The page being mapped: its body (the fast path decodes records from it one at a
     * time, so only one lives as Lua tables at once) or the array the hooks found. */
    jn_sb body;
    jn_page pg;
    size_t next_record;
    /* A next() that went round or past max_pages: reported once this page is queued. */
    const char *end_reason;
    char end_detail[320];
    int paused;
    int unauthorized; /* the last cycle ended on 401/403: said once, until it passes */
    char last_error[256];
    uint64_t warned_at[P_KINDS];
    long polls, failures;
    jn_source_counts n;
    /* Failed requests by reason; a reason's series appears on /metrics once it happened. */
    struct {
        const char *reason;
        uint64_t n;
    } failed[MAX_REASONS];
    jn_metric *m_cycle;
};

struct jn_producer {
    uv_loop_t *loop;
    jn_script_host *scripts;
    jn_http_client *http;
    jn_kafka_producer *kafka;
    int queue_max;
    uint64_t rng;
    source *src;
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

static void bind_counter(const char *name, const char *help, const char *src, const char *k,
                         const char *v, const uint64_t *value) {
    char labels[160];
    if (k)
        snprintf(labels, sizeof labels, "source=\"%s\",%s=\"%s\"", src, k, v);
    else
        snprintf(labels, sizeof labels, "source=\"%s\"", src);
    jn_metrics_counter_bind(name, help, labels, value);
}

static void init_metrics(source *s) {
    const char *name = s->cfg->name;
    jn_source_counts *n = &s->n;
    const char *polls = "junction_producer_polls_total";
    const char *ph = "Cycles of a source by result (ok: every page, unchanged via 304, failed)";
    bind_counter(polls, ph, name, "result", "ok", &n->polls_ok);
    bind_counter(polls, ph, name, "result", "unchanged", &n->polls_unchanged);
    bind_counter(polls, ph, name, "result", "failed", &n->polls_failed);
    bind_counter("junction_producer_retries_total", "Retried API requests", name, NULL, NULL,
                 &n->retries);
    const char *rec = "junction_producer_records_total";
    const char *rh = "Records by outcome: published (acknowledged by Kafka), unchanged, invalid, "
                     "map_error";
    bind_counter(rec, rh, name, "result", "published", &n->published);
    bind_counter(rec, rh, name, "result", "unchanged", &n->unchanged);
    bind_counter(rec, rh, name, "result", "invalid", &n->invalid);
    bind_counter(rec, rh, name, "result", "map_error", &n->map_errors);
    bind_counter("junction_producer_delivery_errors_total",
                 "Messages Kafka did not acknowledge (published again later)", name, NULL, NULL,
                 &n->delivery_errors);
    bind_counter("junction_producer_queue_full_total",
                 "Times polling paused because librdkafka's queue was full", name, NULL, NULL,
                 &n->queue_full);
    char labels[96];
    snprintf(labels, sizeof labels, "source=\"%s\"", name);
    s->m_cycle =
        jn_metrics_histogram("junction_producer_cycle_seconds",
                             "From the start of a poll to its last delivery report", labels);
}

/* reason is one of a few literals; a failure is per request, never per record. */
static void count_failure(source *s, const char *reason) {
    s->n.failures++;
    int i = 0;
    while (i < MAX_REASONS && s->failed[i].reason && strcmp(s->failed[i].reason, reason))
        i++;
    if (i == MAX_REASONS) return; /* only the total counts it */
    if (!s->failed[i].reason) {
        s->failed[i].reason = reason;
        bind_counter("junction_producer_failures_total",
                     "Failed API requests and responses by reason", s->cfg->name, "reason", reason,
                     &s->failed[i].n);
    }
    s->failed[i].n++;
}

/* ---- cycle bookkeeping ------------------------------------------------------------- */

/* Whether the source pages (or reads an envelope): its messages then name the page. */
static int paged(const source *s) {
    return s->has_next || s->has_records || s->page > 1;
}

/* What messages about the current page start with: "orders" for a source of one bare
 * array, as always; "source orders page 3" for one whose script pages. */
static const char *where(const source *s, char buf[96]) {
    if (paged(s))
        snprintf(buf, 96, "source %s page %d", s->cfg->name, s->page);
    else
        snprintf(buf, 96, "%s", s->cfg->name);
    return buf;
}

static void schedule(source *s, uint64_t ms) {
    if (s->p->stopping) return;
    uv_timer_start(&s->timer, poll_now, ms, 0);
}

static void finish_cycle_if_done(cycle *c) {
    if (c->processing || c->delivered + c->failed < c->queued) return;
    source *s = c->src;
    jn_metric_observe(s->m_cycle, (double)(uv_hrtime() - c->started_ns) / 1e9);
    if (c->queued || c->failed)
        jn_log_info("producer", "Published %ld %s to topic %s%s", c->delivered, s->cfg->noun,
                    s->cfg->topic, c->failed ? " (some failed and will be published again)" : "");
    else
        jn_log_debug("producer", "%s: nothing new or changed", s->cfg->name);
    /* The ETag stands for what this cycle saw; trust it only if all of it landed. A
     * record left to an earlier cycle's delivery may still fail, and a 304 would then
     * hide it, so such a cycle does not keep its ETag either. */
    if (!c->failed && !c->skipped && !c->deferred && c->etag[0] && c->id + 1 == s->next_cycle) {
        memcpy(s->etag, c->etag, sizeof s->etag);
        s->etag_valid = 1;
    }
    s->cycles_live--;
    s->cycles_done++;
    free(c);
}

/* Drops the page being mapped, if any. */
static void drop_page(source *s) {
    jn_sb_free(&s->body);
    jn_page_release(jn_script_host_lua(s->p->scripts), &s->pg);
    s->next_record = 0;
}

/* Ends the cycle, whole or cut short (what it queued is reported on as it lands), and
 * waits for the next poll. */
static void end_cycle(source *s) {
    drop_page(s);
    cycle *c = s->cur;
    s->cur = NULL;
    if (c) {
        c->processing = 0;
        finish_cycle_if_done(c);
    }
    schedule(s, (uint64_t)s->cfg->poll_interval_ms);
}

/* ---- fetching ---------------------------------------------------------------------- */

static void on_response(void *ud, jn_http_result *res);

static void fetch(source *s) {
    char inm[160];
    /* A paged cycle never asks for a 304: the first page's ETag says nothing of the pages
     * after it, where a change may be, so only a cycle of one page may be skipped. */
    int ask = s->page == 1 && !s->has_next && s->etag_valid && !s->cfg->publish_all && s->etag[0];
    if (ask) snprintf(inm, sizeof inm, "If-None-Match: %s", s->etag);
    s->headers[s->inm_slot] = ask ? inm : NULL; /* copied by the client */
    jn_http_request_opts o = {.method = s->cfg->method,
                              .url = s->url,
                              .headers = s->headers,
                              .timeout_ms = s->cfg->request_timeout_ms,
                              .connect_timeout_ms = s->cfg->request_timeout_ms,
                              .ca_file = s->cfg->tls.ca_file,
                              .cert_file = s->cfg->tls.cert_file,
                              .key_file = s->cfg->tls.key_file,
                              .insecure = !s->cfg->tls.verify,
                              .keep_headers = s->has_next};
    int rc = jn_http_client_request(s->p->http, &o, on_response, s);
    s->headers[s->inm_slot] = NULL;
    if (rc != 0) {
        count_failure(s, "request_not_started");
        end_cycle(s);
    }
}

/* Makes url the page the cycle fetches next. */
static void set_page(source *s, int page, char *url) {
    unsigned char v[JN_STRMAP_VALUE] = {0};
    memcpy(v, &page, sizeof page);
    jn_strmap_set(s->pages_seen, url, strlen(url), v);
    free(s->url);
    s->url = url;
    s->page = page;
    s->attempt = 1;
}

static void poll_now(uv_timer_t *t) {
    source *s = t->data;
    if (s->cur) return; /* the previous cycle is still queueing (paused on a full queue) */
    s->polls++;
    s->poll_started_ns = uv_hrtime();
    jn_strmap_clear(s->pages_seen);
    set_page(s, 1, strdup(s->cfg->url));
    fetch(s);
}

static void on_retry_timer(uv_timer_t *t) {
    fetch(t->data);
}

/* The cycle ends on a failure: counted, kept for /api/status, said, and the next poll
 * starts from the first page. */
static void fail_cycle(source *s, const char *reason, const char *detail, int loud, const char *fmt,
                       ...) __attribute__((format(printf, 5, 6)));
static void fail_cycle(source *s, const char *reason, const char *detail, int loud, const char *fmt,
                       ...) {
    snprintf(s->last_error, sizeof s->last_error, "%s: %s", reason, detail);
    s->failures++;
    s->n.polls_failed++;
    char msg[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (loud)
        jn_log_error("producer", "%s; polling again in %d ms", msg, s->cfg->poll_interval_ms);
    else
        jn_log_debug("producer", "%s; polling again in %d ms", msg, s->cfg->poll_interval_ms);
    end_cycle(s);
}

/* A failed try: retry after a jittered backoff, or give up until the next poll. */
static void retry_or_give_up(source *s, const char *reason, const char *detail,
                             long retry_after_s) {
    char w[96];
    count_failure(s, reason);
    s->attempt++;
    if (jn_backoff_allows(&s->backoff, s->attempt) && !s->p->stopping) {
        snprintf(s->last_error, sizeof s->last_error, "%s: %s", reason, detail);
        int64_t d =
            jn_backoff_delay_ms(&s->backoff, s->attempt, jn_random_unit(&s->p->rng), retry_after_s);
        jn_log_warn("producer", "%s: %s %s failed (%s: %s); try %d of %d in %lld ms", where(s, w),
                    s->cfg->method, s->url, reason, detail, s->attempt, s->backoff.attempts,
                    (long long)d);
        s->n.retries++;
        uv_timer_start(&s->timer, on_retry_timer, (uint64_t)d, 0);
        return;
    }
    fail_cycle(s, reason, detail, 1, "%s: %s %s failed after %d tries (%s: %s)", where(s, w),
               s->cfg->method, s->url, s->attempt - 1, reason, detail);
}

static void give_up(source *s, const char *reason, const char *detail) {
    char w[96];
    count_failure(s, reason);
    fail_cycle(s, reason, detail, 1, "%s: %s %s: %s (%s)", where(s, w), s->cfg->method, s->url,
               detail, reason);
}

/* 401 and 403 say the credentials are wrong: asking again only repeats the answer, so
 * the cycle ends at once, counted once, and logged once until a cycle gets through. */
static void unauthorized(source *s, long status) {
    char w[96], detail[160];
    snprintf(detail, sizeof detail, "HTTP %ld; check the source's credentials (its headers)",
             status);
    count_failure(s, "unauthorized");
    int first = !s->unauthorized;
    s->unauthorized = 1;
    fail_cycle(s, "unauthorized", detail, first, "%s: %s %s: %s (unauthorized)", where(s, w),
               s->cfg->method, s->url, detail);
}

/* The page's records are queued: on to the next page, or the cycle is over. */
static void page_done(source *s) {
    char *next = s->pg.next_url;
    s->pg.next_url = NULL;
    drop_page(s);
    if (next) {
        set_page(s, s->page + 1, next);
        fetch(s);
    } else if (s->end_reason) {
        char w[96];
        count_failure(s, s->end_reason);
        fail_cycle(s, s->end_reason, s->end_detail, 1, "%s: %s", where(s, w), s->end_detail);
    } else {
        end_cycle(s);
    }
}

/* A next URL that was fetched this cycle already, or one past max_pages: the page itself
 * is good and is published, then the cycle ends with the error (the script pages in a
 * circle, or the API has more pages than the config allows). */
static void check_next(source *s) {
    const char *next = s->pg.next_url;
    if (!next) return;
    const unsigned char *seen = jn_strmap_get(s->pages_seen, next, strlen(next));
    if (seen) {
        int m;
        memcpy(&m, seen, sizeof m);
        s->end_reason = "page_loop";
        snprintf(s->end_detail, sizeof s->end_detail,
                 "next() returned the URL of page %d again; the script's next() must move on "
                 "(or return nil after the last page)",
                 m);
    } else if (s->page >= s->cfg->max_pages) {
        s->end_reason = "max_pages";
        snprintf(s->end_detail, sizeof s->end_detail,
                 "next() asks for page %d, past max_pages (%d); raise sources.%s.max_pages if "
                 "the API has that many pages",
                 s->page + 1, s->cfg->max_pages, s->cfg->name);
    } else {
        return;
    }
    free(s->pg.next_url);
    s->pg.next_url = NULL;
}

static void read_page(source *s, jn_http_result *res) {
    lua_State *L = jn_script_host_lua(s->p->scripts);
    jn_page *pg = &s->pg;
    *pg = (jn_page){.script = s->script,
                    .has_records = s->has_records,
                    .has_next = s->has_next,
                    .source = s->cfg->name,
                    .topic = s->cfg->topic,
                    .base_url = s->cfg->url,
                    .page = s->page,
                    .url = s->url,
                    .status = res->status,
                    .headers = res->headers,
                    .headers_len = res->headers_len,
                    .body = res->body.data,
                    .body_len = res->body.len};
    char detail[600];
    int transient;
    const char *why = jn_page_read(L, pg, &transient, detail, sizeof detail);
    if (why) {
        /* Nothing of this page is published; the next cycle tries again. */
        if (transient)
            retry_or_give_up(s, why, detail, -1);
        else
            give_up(s, why, detail);
        return;
    }
    s->end_reason = NULL;
    check_next(s);
    if (!s->cur) {
        cycle *c = calloc(1, sizeof *c);
        if (!c) abort();
        c->src = s;
        c->id = s->next_cycle++;
        c->processing = 1;
        c->started_ns = s->poll_started_ns;
        /* See fetch: only a cycle of one page may be answered with a 304 later. */
        if (!s->has_next) snprintf(c->etag, sizeof c->etag, "%s", res->etag);
        s->etag_valid = 0;
        s->cur = c;
        s->cycles_live++;
    }
    if (!pg->next_url && !s->end_reason) {
        /* Every page of the cycle arrived. */
        s->n.polls_ok++;
        s->last_error[0] = '\0';
        s->unauthorized = 0;
    }
    if (pg->spans) {
        s->body = res->body; /* taken: the client frees what the callback leaves */
        jn_sb_init(&res->body);
    }
    s->next_record = 0;
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
    if (res->status == 304 && s->page == 1) {
        s->n.polls_unchanged++;
        s->last_error[0] = '\0';
        s->unauthorized = 0;
        end_cycle(s);
        return;
    }
    if (res->status == 200) {
        read_page(s, res);
        return;
    }
    if (res->status == 401 || res->status == 403) {
        unauthorized(s, res->status);
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

/* Logs a bad record. The same API usually serves the same bad record every cycle, so
 * each kind of problem is logged at most once per 10 s per source; the counters hold
 * the totals. */
static void note(source *s, int kind, lua_Integer i, const char *why) {
    static const char *const words[P_KINDS] = {"is not an object", "has no id", "failed in map()",
                                               "has an unusable map() result"};
    uint64_t now = uv_now(s->p->loop);
    if (s->warned_at[kind] && now - s->warned_at[kind] < 10000) return;
    s->warned_at[kind] = now;
    char w[96];
    jn_log_warn("producer", "%s: record %lld %s: %s (more are counted in /metrics)", where(s, w),
                (long long)i, words[kind], why);
}

static void on_turn(uv_timer_t *t) {
    source *s = t->data;
    if (!s->p->stopping && s->cur && !s->paused) continue_cycle(s);
}

/* Pushes record i of the page as a table, or returns the kind of problem with *why. A
 * record of the fast path is decoded here; one the hooks found is already a table in the
 * array at arr. */
static int push_record(source *s, lua_State *L, int arr, size_t i, const char **why) {
    if (s->pg.spans) {
        const jn_json_span *sp = &s->pg.spans[i];
        const char *text = s->body.data + sp->off;
        char jerr[8];
        if (s->views && jn_view_push(L, text, sp->len) == 0) {
            /* a view: the text is one object; its id is checked below */
        } else if (*text != '{' || jn_json_decode(L, text, sp->len, jerr, sizeof jerr) != 0) {
            *why = jn_json_kind(*text);
            return P_NOT_OBJECT;
        }
    } else if (lua_rawgeti(L, arr, (lua_Integer)i + 1) != LUA_TTABLE) {
        *why = lua_type(L, -1) == LUA_TLIGHTUSERDATA ? "null" : luaL_typename(L, -1);
        lua_pop(L, 1);
        return P_NOT_OBJECT;
    }
    /* Raw: a table from records() may carry any metatable, and this runs outside limits. */
    int t = lua_type(L, -1) == LUA_TUSERDATA ? jn_view_get(L, -1, "id")
                                             : jn_lua_rawgetfield(L, -1, "id");
    lua_pop(L, 1);
    if (t != LUA_TSTRING && t != LUA_TNUMBER) {
        lua_pop(L, 1);
        *why = "records need an \"id\"";
        return P_NO_ID;
    }
    return -1;
}

static void continue_cycle(source *s) {
    jn_producer *p = s->p;
    size_t turn_end = s->next_record + RECORDS_PER_TURN, n = s->pg.nrecords;
    lua_State *L = jn_script_host_lua(p->scripts);
    cycle *c = s->cur;
    int top = lua_gettop(L);
    char *ferr = NULL;
    if (jn_script_push_function(s->script, "map", &ferr) != 0) {
        /* Only a module whose metatable stopped answering gets here: every record of the
         * turn fails as a map error would, and is published once a version maps it. */
        s->n.map_errors += n - s->next_record;
        c->skipped += (long)(n - s->next_record);
        note(s, P_MAP_ERROR, (lua_Integer)s->next_record + 1, ferr);
        free(ferr);
        s->next_record = n;
        page_done(s);
        return;
    }
    int map = lua_gettop(L);
    jn_page_push_ctx(L, s->cfg->name, s->cfg->topic, s->page);
    int ctx = lua_gettop(L);
    if (s->pg.records_ref != LUA_NOREF) lua_rawgeti(L, LUA_REGISTRYINDEX, s->pg.records_ref);
    int arr = lua_gettop(L);
    jn_record rec;
    jn_record_init(&rec);
    for (; s->next_record < n; s->next_record++) {
        if (s->next_record == turn_end) {
            /* The rest on the next loop turn: the admin API and delivery reports are
             * served in between, however many records the API returned. */
            jn_record_free(&rec);
            lua_settop(L, top);
            uv_timer_start(&s->timer, on_turn, 0, 0);
            return;
        }
        lua_Integer i = (lua_Integer)s->next_record + 1;
        lua_settop(L, arr);
        const char *why;
        int kind = push_record(s, L, arr, s->next_record, &why);
        if (kind >= 0) {
            s->n.invalid++;
            c->skipped++;
            note(s, kind, i, why);
            continue;
        }
        lua_pushvalue(L, map);
        lua_insert(L, -2);
        lua_pushvalue(L, ctx);
        char *err = NULL;
        if (jn_script_pcall(s->script, 2, 1, &err) != 0) {
            s->n.map_errors++;
            c->skipped++;
            note(s, P_MAP_ERROR, i, err);
            free(err);
            continue;
        }
        if (lua_isnil(L, -1)) continue; /* the script filtered it out */
        why = jn_record_read(L, &rec);
        if (why) {
            s->n.map_errors++;
            c->skipped++;
            note(s, P_MAP_RESULT, i, why);
            continue;
        }
        unsigned char hash[32];
        jn_sha256(rec.value.data, rec.value.len, hash);
        if (!s->cfg->publish_all) {
            const unsigned char *old = jn_strmap_get(s->published, rec.key.data, rec.key.len);
            const unsigned char *inflight = jn_strmap_get(s->pending, rec.key.data, rec.key.len);
            if ((old && !memcmp(old, hash, 32) && !inflight) ||
                (inflight && !memcmp(inflight, hash, 32))) {
                if (inflight) c->deferred++;
                s->n.unchanged++;
                continue;
            }
        }
        message *m = malloc(sizeof *m + rec.key.len + 1);
        if (!m) abort();
        m->cyc = c;
        memcpy(m->hash, hash, 32);
        m->keylen = rec.key.len;
        memcpy(m->key, rec.key.data, rec.key.len + 1);
        int rc =
            jn_kafka_produce(p->kafka, s->cfg->topic, rec.key.data, rec.key.len, rec.value.data,
                             rec.value.len, rec.nheaders ? rec.headers : NULL, m);
        if (rc == JN_KAFKA_QUEUE_FULL) {
            free(m);
            s->n.queue_full++;
            s->paused = 1;
            break; /* resumed from this record by on_delivery */
        }
        if (rc != 0) {
            free(m);
            c->failed++;
            s->n.delivery_errors++;
            jn_log_error("producer", "%s: cannot queue record %s: %s", s->cfg->name, rec.key.data,
                         jn_kafka_strerror(rc));
            continue;
        }
        jn_strmap_set(s->pending, rec.key.data, rec.key.len, hash);
        c->queued++;
    }
    jn_record_free(&rec);
    lua_settop(L, top);
    if (!s->paused) page_done(s);
}

static void on_delivery(void *ud, void *opaque, int err, const char *topic, int32_t partition,
                        int64_t offset) {
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
        s->n.published++;
    } else {
        if (!c->failed)
            jn_log_warn("producer",
                        "%s: Kafka did not take record %s: %s; it will be published "
                        "again",
                        s->cfg->name, m->key, jn_kafka_strerror(err));
        c->failed++;
        s->n.delivery_errors++;
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

/* The map script: map(record, ctx), and records(body, ctx) and next(response, ctx) when
 * the API pages or wraps its records. Which hooks there are is noted for the next page. */
static int check_map(jn_script *script, void *ud, char **err) {
    (void)script;
    source *s = ud;
    lua_State *L = jn_script_host_lua(s->p->scripts);
    static const char *const hooks[] = {"map", "records", "next"};
    int is_fn[3];
    for (int i = 0; i < 3; i++) {
        int t = lua_getfield(L, -1, hooks[i]);
        is_fn[i] = t == LUA_TFUNCTION;
        lua_pop(L, 1);
        if (!is_fn[i] && (i == 0 || t != LUA_TNIL)) {
            *err = jn_errorf(
                "%s", i == 0   ? "the script must define map(record, ctx) returning {key=, "
                                 "value=, headers=} or nil"
                      : i == 1 ? "records must be a function, records(body, ctx) returning "
                                 "the array of the page's records"
                               : "next must be a function, next(response, ctx) returning the "
                                 "next page's URL or nil");
            return -1;
        }
    }
    int views = lua_getfield(L, -1, "views");
    int take_views = lua_toboolean(L, -1);
    lua_pop(L, 1);
    if (views != LUA_TNIL && views != LUA_TBOOLEAN) {
        *err = jn_errorf("views must be true or false (true: map() gets record views)");
        return -1;
    }
    s->has_records = is_fn[1];
    s->has_next = is_fn[2];
    s->views = take_views;
    /* A new mapping may change every value: re-read the whole array next poll. */
    s->etag_valid = 0;
    return 0;
}

/* Accept: application/json unless the config names an Accept of its own, the config's
 * headers, a slot for If-None-Match and the NULL after it. */
static void build_headers(source *s) {
    int n = 0, k = 0, own_accept = 0;
    for (char **h = s->cfg->headers; h && *h; h++, n++)
        own_accept |= !strncasecmp(*h, "Accept:", 7);
    s->headers = calloc((size_t)n + 3, sizeof *s->headers);
    if (!s->headers) abort();
    if (!own_accept) s->headers[k++] = "Accept: application/json";
    for (int i = 0; i < n; i++)
        s->headers[k++] = s->cfg->headers[i];
    s->inm_slot = k;
}

static int start_source(jn_producer *p, source *s, const jn_source_config *sc, char **err) {
    s->p = p;
    s->cfg = sc;
    s->backoff =
        (jn_backoff){sc->retry.attempts, sc->retry.base_ms, sc->retry.multiplier, sc->retry.max_ms};
    s->pg.records_ref = LUA_NOREF;
    build_headers(s);
    s->published = jn_strmap_new();
    s->pending = jn_strmap_new();
    s->pages_seen = jn_strmap_new();
    init_metrics(s);
    /* Before anything can fail: a source that was begun has a timer for stop to close. */
    uv_timer_init(p->loop, &s->timer);
    s->timer.data = s;
    char sname[96];
    snprintf(sname, sizeof sname, "map_%s", sc->name);
    s->script = jn_script_add(p->scripts, sname, sc->script, check_map, s, err);
    if (!s->script) return -1;
    uv_timer_start(&s->timer, poll_now, 0, 0);
    jn_log_info("producer", "%s: polling %s every %d ms into topic %s", sc->name, sc->url,
                sc->poll_interval_ms, sc->topic);
    return 0;
}

jn_producer *jn_producer_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               char **err) {
    jn_producer *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->loop = loop;
    p->scripts = scripts;
    p->queue_max = cfg->kafka.queue_max_messages;
    p->rng = jn_random_seed();

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
    p->src = calloc((size_t)cfg->nsources + 1, sizeof *p->src);
    if (!p->src) abort();
    p->http = jn_http_client_new(loop);
    if (!p->http) {
        *err = jn_errorf("producer: cannot start the HTTP client (libcurl)");
        jn_producer_stop(p, NULL, NULL);
        return NULL;
    }
    for (int i = 0; i < cfg->nsources; i++) {
        if (!cfg->sources[i].enabled) continue;
        if (start_source(p, &p->src[p->nsrc++], &cfg->sources[i], err) != 0) {
            /* What the sources begun so far hold goes the way of a stop. */
            jn_producer_stop(p, NULL, NULL);
            return NULL;
        }
    }
    return p;
}

static void closed_one(void *arg) {
    jn_producer *p = arg;
    if (--p->pending_close > 0) return;
    for (int i = 0; i < p->nsrc; i++) {
        source *s = &p->src[i];
        /* No reload may reach a check whose source is gone. */
        if (s->script) jn_script_remove(s->script);
        jn_strmap_free(s->published);
        jn_strmap_free(s->pending);
        jn_strmap_free(s->pages_seen);
        free(s->headers);
        free(s->url);
        free(s->cur);
    }
    void (*done)(void *) = p->done;
    void *arg2 = p->done_arg;
    jn_metrics_unbind(p->src, (size_t)p->nsrc * sizeof *p->src);
    free(p->src);
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
        /* A cycle paused on a full queue, or between pages, ends here; what it did not
         * queue is published by the next run, since nothing marked it published. */
        end_cycle(s);
        uv_close((uv_handle_t *)&s->timer, on_timer_closed);
    }
    if (p->http)
        jn_http_client_close(p->http, on_http_closed, p);
    else
        on_http_closed(p); /* a start that failed before it had one */
}

void jn_producer_status_json(jn_producer *p, jn_sb *out) {
    jn_sb_putc(out, '{');
    for (int i = 0; i < p->nsrc; i++) {
        source *s = &p->src[i];
        const jn_source_config *c = s->cfg;
        jn_sb_printf(out, "%s", i ? "," : "");
        jn_sb_json_string(out, c->name, strlen(c->name));
        jn_sb_puts(out, ":{\"url\":");
        jn_sb_json_string(out, c->url, strlen(c->url));
        jn_sb_puts(out, ",\"topic\":");
        jn_sb_json_string(out, c->topic, strlen(c->topic));
        jn_sb_printf(out,
                     ",\"polls\":%ld,\"failures\":%ld,\"page\":%d,\"published\":%llu,"
                     "\"unchanged\":%llu,\"known_records\":%zu,\"last_error\":",
                     s->polls, s->failures, s->page, (unsigned long long)s->n.published,
                     (unsigned long long)s->n.unchanged, jn_strmap_count(s->published));
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

int jn_producer_source_count(const jn_producer *p) {
    return p->nsrc;
}

void jn_producer_source_info(const jn_producer *p, int i, jn_producer_source *out) {
    const source *s = &p->src[i];
    out->name = s->cfg->name;
    out->topic = s->cfg->topic;
    out->n = &s->n;
    out->cycles_done = s->cycles_done;
    out->busy = s->cur != NULL || s->cycles_live > 0;
}

const char *jn_producer_not_ready(const jn_producer *p) {
    /* Scripts are loaded before the producer starts (a failing one stops start-up), so
     * what remains is Kafka: librdkafka's statistics say whether a broker is up. */
    return jn_kafka_producer_connected(p->kafka) ? NULL : "producer: no Kafka broker reachable";
}
