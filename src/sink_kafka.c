/* Kafka sink. Each record is copied once, into a rec that lives until the record is
 * reported: librdkafka is handed the rec's bytes without a copy of its own
 * (jn_kafka_produce_ref), and the same bytes are produced again after a timeout.
 *
 * A rec is always in exactly one list:
 *   waiting   added, not yet taken by librdkafka (its queue was full, or producing
 *             failed for a passing reason); in the order added
 *   retrying  taken once and given back by librdkafka with a passing error; older than
 *             every waiting rec, so they go first
 *   inflight  in librdkafka, its delivery report not yet served
 *   refused   refused by librdkafka inside jn_kafka_sink_add: reported on a later turn
 * One timer serves the first two and the last: at once after deliveries made room in
 * librdkafka's queue, and after RETRY_MS when producing failed otherwise. Producing is
 * never retried from inside a delivery report: librdkafka counts a message against its
 * queue until the whole report batch has been served. */
#include "sink_kafka.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"

/* Wait before producing again after an error other than a full queue (a topic not there
 * yet, a producer that lost its way): such errors do not go away in milliseconds. */
#define RETRY_MS 500
/* At most one log line per this long for the same passing error. */
#define WARN_INTERVAL_MS 10000

typedef struct rec {
    struct rec *prev, *next;
    void *item;
    int err;   /* refused: why (a code of the Kafka range, kafka_conf.h) */
    char *key; /* into data, or NULL */
    size_t key_len, len;
    char data[]; /* the JSON text, then the key */
} rec;

typedef struct {
    rec *head, *tail;
    size_t n;
} rec_list;

struct jn_kafka_sink {
    uv_loop_t *loop;
    jn_kafka_producer *producer;
    char *topic;
    jn_sink_done_cb cb;
    void *ud;
    rec_list waiting, retrying, inflight, refused;
    uv_timer_t timer;
    long produced, retries;
    int closing;
    int last_warn_err;
    uint64_t last_warn_ms;
    void (*done)(void *);
    void *done_arg;
};

/* ---- lists ------------------------------------------------------------------------------ */

static void push(rec_list *l, rec *r) {
    r->next = NULL;
    r->prev = l->tail;
    if (l->tail)
        l->tail->next = r;
    else
        l->head = r;
    l->tail = r;
    l->n++;
}

static void unshift(rec_list *l, rec *r) {
    r->prev = NULL;
    r->next = l->head;
    if (l->head)
        l->head->prev = r;
    else
        l->tail = r;
    l->head = r;
    l->n++;
}

static void unlink_rec(rec_list *l, rec *r) {
    if (r->prev)
        r->prev->next = r->next;
    else
        l->head = r->next;
    if (r->next)
        r->next->prev = r->prev;
    else
        l->tail = r->prev;
    r->prev = r->next = NULL;
    l->n--;
}

static void free_list(rec_list *l) {
    rec *r = l->head;
    while (r) {
        rec *next = r->next;
        free(r);
        r = next;
    }
    *l = (rec_list){0};
}

/* ---- outcomes --------------------------------------------------------------------------- */

/* What no retry changes: the record (too large, rejected by the broker's checks), or the
 * topic (invalid name, not ours to write). A missing topic is not among them: it may be
 * created any moment, and refusing would lose the records. */
static int refused_for_good(int err) {
    switch (err) {
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_RECORD_LIST_TOO_LARGE):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_INVALID_RECORD):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_INVALID_TIMESTAMP):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_UNSUPPORTED_FOR_MESSAGE_FORMAT):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_TOPIC_EXCEPTION):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR_POLICY_VIOLATION):
    case JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG):
        return 1;
    default:
        return 0;
    }
}

static void report(jn_kafka_sink *s, rec *r, int err) {
    void *item = r->item;
    size_t len = r->len;
    free(r);
    if (!s->cb) return;
    if (!err) {
        s->cb(s->ud, item, 0, NULL);
        return;
    }
    char reason[300];
    snprintf(reason, sizeof reason, "kafka: topic %s refuses a record of %zu bytes: %s (%s)",
             s->topic, len, jn_kafka_strerror(err), jn_kafka_errname(err));
    s->cb(s->ud, item, err, reason);
}

/* Passing errors can come by the thousand (every record while a topic is missing). */
static void warn_passing(jn_kafka_sink *s, int err, const char *what) {
    uint64_t now = uv_now(s->loop);
    if (err == s->last_warn_err && now - s->last_warn_ms < WARN_INTERVAL_MS) return;
    s->last_warn_err = err;
    s->last_warn_ms = now;
    jn_log_warn("kafka-sink", "topic %s: %s: %s; retrying (%zu record(s) pending)", s->topic, what,
                jn_kafka_strerror(err), jn_kafka_sink_pending(s));
}

/* Runs on_timer after ms at the latest (an earlier run already planned stays). */
static void on_timer(uv_timer_t *t);
static void schedule(jn_kafka_sink *s, uint64_t ms) {
    if (s->closing) return;
    if (uv_is_active((uv_handle_t *)&s->timer) && uv_timer_get_due_in(&s->timer) <= ms) return;
    uv_timer_start(&s->timer, on_timer, ms, 0);
}

/* ---- producing -------------------------------------------------------------------------- */

enum attempt { A_TAKEN, A_FULL, A_REFUSED, A_FAILED };

/* Hands r to librdkafka, r being in none of the lists. */
static enum attempt attempt(jn_kafka_sink *s, rec *r) {
    int rc = jn_kafka_produce_ref(s->producer, s->topic, RD_KAFKA_PARTITION_UA, r->key, r->key_len,
                                  r->data, r->len, r);
    if (rc == 0) {
        push(&s->inflight, r);
        s->produced++;
        return A_TAKEN;
    }
    r->err = rc;
    if (rc == JN_KAFKA_QUEUE_FULL) return A_FULL;
    return refused_for_good(r->err) ? A_REFUSED : A_FAILED;
}

/* Produces what waits, oldest first, until librdkafka's queue is full or an error says
 * to wait. Only from the timer: refusals are reported right here. */
static void pump(jn_kafka_sink *s) {
    while (!s->closing) {
        rec_list *from = s->retrying.head ? &s->retrying : &s->waiting;
        rec *r = from->head;
        if (!r) break;
        unlink_rec(from, r);
        enum attempt a = attempt(s, r);
        if (a == A_TAKEN) continue;
        if (a == A_REFUSED) {
            report(s, r, r->err);
            continue;
        }
        /* Back at the head of its list: nothing overtakes it. */
        unshift(from, r);
        if (a == A_FAILED) warn_passing(s, r->err, "cannot produce");
        /* A full queue holds messages of ours, whose reports make room and call us again;
         * the timer is only for the case where none is left to report. */
        if (a == A_FAILED || s->inflight.n == 0) schedule(s, RETRY_MS);
        break;
    }
}

static void on_timer(uv_timer_t *t) {
    jn_kafka_sink *s = t->data;
    /* Refusals first: they were added before anything still waiting. */
    while (!s->closing && s->refused.head) {
        rec *r = s->refused.head;
        unlink_rec(&s->refused, r);
        report(s, r, r->err);
    }
    pump(s);
}

static void on_delivery(void *ud, void *opaque, int err, const char *topic, int32_t partition,
                        int64_t offset) {
    (void)topic;
    (void)partition;
    (void)offset;
    jn_kafka_sink *s = ud;
    rec *r = opaque;
    unlink_rec(&s->inflight, r);
    if (s->closing) {
        /* Purged by close (or delivered meanwhile): not reported, by the contract. */
        free(r);
        return;
    }
    if (!err || refused_for_good(err)) {
        report(s, r, err);
    } else {
        /* librdkafka gave up (message timeout, typically brokers down for that long):
         * the record is not lost, it goes again. */
        warn_passing(s, err, "record not delivered");
        push(&s->retrying, r);
        s->retries++;
    }
    if (s->retrying.n || s->waiting.n) schedule(s, 0);
}

void jn_kafka_sink_add(jn_kafka_sink *s, const char *json, size_t len, const char *key,
                       size_t key_len, void *item) {
    if (s->closing) return;
    if (!key) key_len = 0;
    rec *r = malloc(sizeof *r + len + key_len);
    if (!r) abort();
    *r = (rec){.item = item, .len = len, .key_len = key_len};
    memcpy(r->data, json, len);
    if (key) {
        r->key = r->data + len;
        memcpy(r->key, key, key_len);
    }
    /* Behind everything still waiting, so records keep the order they were added in. */
    if (s->waiting.n || s->retrying.n) {
        push(&s->waiting, r);
        return;
    }
    switch (attempt(s, r)) {
    case A_TAKEN:
        break;
    case A_FULL:
        push(&s->waiting, r);
        if (s->inflight.n == 0) schedule(s, RETRY_MS); /* see pump */
        break;
    case A_REFUSED:
        /* Never reported from inside add: the caller may not expect its callback yet. */
        push(&s->refused, r);
        schedule(s, 0);
        break;
    case A_FAILED:
        warn_passing(s, r->err, "cannot produce");
        push(&s->waiting, r);
        schedule(s, RETRY_MS);
        break;
    }
}

size_t jn_kafka_sink_pending(const jn_kafka_sink *s) {
    return s->waiting.n + s->retrying.n + s->inflight.n + s->refused.n;
}

void jn_kafka_sink_counts(const jn_kafka_sink *s, long *produced, long *retries) {
    *produced = s->produced;
    *retries = s->retries;
}

void jn_kafka_sink_flush(jn_kafka_sink *s) {
    if (s->waiting.n || s->retrying.n) schedule(s, 0);
}

/* ---- setup and closing ------------------------------------------------------------------ */

jn_kafka_sink *jn_kafka_sink_new(uv_loop_t *loop, const jn_kafka_producer_opts *o,
                                 const char *topic, jn_sink_done_cb cb, void *ud, char **err) {
    if (!topic || !*topic) {
        *err = jn_errorf("kafka sink: no topic");
        return NULL;
    }
    jn_kafka_sink *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->producer = jn_kafka_producer_new(loop, o, on_delivery, s, err);
    if (!s->producer) {
        free(s);
        return NULL;
    }
    s->loop = loop;
    s->topic = strdup(topic);
    if (!s->topic) abort();
    s->cb = cb;
    s->ud = ud;
    uv_timer_init(loop, &s->timer);
    s->timer.data = s;
    return s;
}

static void on_timer_closed(uv_handle_t *h) {
    jn_kafka_sink *s = h->data;
    void (*done)(void *) = s->done;
    void *arg = s->done_arg;
    free(s->topic);
    free(s);
    if (done) done(arg);
}

static void on_producer_closed(void *arg) {
    jn_kafka_sink *s = arg;
    /* librdkafka is gone: recs whose report never came are no longer pointed at. */
    if (s->inflight.n)
        jn_log_warn("kafka-sink", "topic %s: %zu record(s) had no report at close", s->topic,
                    s->inflight.n);
    free_list(&s->inflight);
    uv_close((uv_handle_t *)&s->timer, on_timer_closed);
}

void jn_kafka_sink_close(jn_kafka_sink *s, void (*done)(void *), void *arg) {
    if (s->closing) return;
    s->closing = 1;
    s->done = done;
    s->done_arg = arg;
    uv_timer_stop(&s->timer);
    /* librdkafka never saw these, or is done with them. */
    free_list(&s->waiting);
    free_list(&s->retrying);
    free_list(&s->refused);
    /* No flush: whatever is delivered from now on would not be reported anyway. The
     * purge reports every message in librdkafka, and on_delivery frees its rec. */
    jn_kafka_producer_close(s->producer, 0, on_producer_closed, s);
}
