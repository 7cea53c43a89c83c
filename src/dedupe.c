/* De-duplication batching (see dedupe.h). Queues are arrays of (item, key) pairs: the
 * consumer pushes thousands a second and takes them out in batches, which arrays serve
 * with no allocation per item. */
#include "dedupe.h"

#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "marks.h"

#define CHECK_BATCH 500
/* Four batches at Redis at once: the loop answers a reply only between its other work
 * (a batch of records merged and posted takes milliseconds), so with two the checks'
 * queue held thousands of messages at the consumer's full speed. */
#define CHECKS_IN_FLIGHT 4
/* After an error reply (a missing permission, a full Redis) the next try waits this
 * long: answering the same refusal thousands of times a second helps nobody. A lost
 * connection needs no wait of its own: jn_dedupe_resume runs once it is back. */
#define RETRY_MS 1000

typedef struct {
    void *item;
    const char *key;
} entry;

typedef struct {
    entry *v;
    size_t head, len, cap; /* live entries are v[head .. len) */
} queue;

typedef struct batch {
    struct jn_dedupe *d;
    entry *v;
    size_t n;
    /* checks: the order batches went out in, and the answer kept until every earlier
     * batch is answered (a batch with marks there needs an MGET after its EXISTS, so it
     * can be answered after a later one) */
    unsigned long seq;
    int done, err;
    unsigned char *found;
    struct batch *next;
} batch;

struct jn_dedupe {
    uv_loop_t *loop;
    jn_redis *redis;
    jn_marks_layout layout;
    jn_dedupe_cbs cbs;
    void *ud;
    queue checks, marks;
    int checking; /* check batches at Redis */
    /* A check batch that failed, and every one sent after it, goes back to the front of
     * the queue in the order they were sent, and nothing new goes out until all of them
     * are back: items must reach the transform in their partition's order (two versions
     * of a record in two batches). */
    unsigned long sent_seq, fail_seq;
    size_t requeued;              /* items put back at the front during this failure */
    batch *sent_head, *sent_tail; /* check batches at Redis, in the order sent */
    int marking;                  /* mark batches at Redis (one at a time) */
    size_t in_flight;
    int closed;
    uv_timer_t timer; /* sends a partial check batch on the next loop turn, or retries */
    int timer_open;
    uint64_t retry_at; /* loop time before which nothing is sent after an error reply */
    char error[200];   /* why the last batch failed; "" once one succeeded */
};

static void flush_checks(jn_dedupe *d);
static void flush_marks(jn_dedupe *d);
static void on_timer(uv_timer_t *t);

/* A batch failed: remember why, say so once, and hold further sends back a while when
 * Redis itself refused (it is still connected). */
static void failed(jn_dedupe *d, const char *err) {
    int connected = jn_redis_connected(d->redis);
    if (!d->error[0] && connected)
        jn_log_warn("redis",
                    "de-duplication refused: %s; the pipeline waits (nothing is skipped "
                    "unchecked) and retries every %d ms",
                    err, RETRY_MS);
    snprintf(d->error, sizeof d->error, "%s", err);
    if (connected) {
        d->retry_at = uv_now(d->loop) + RETRY_MS;
        uv_timer_start(&d->timer, on_timer, RETRY_MS, 0);
    }
}

static void succeeded(jn_dedupe *d) {
    if (!d->error[0]) return;
    jn_log_info("redis", "de-duplication works again");
    d->error[0] = '\0';
}

/* Whether an error reply holds sends back now. */
static int waiting(const jn_dedupe *d) {
    return d->retry_at && uv_now(d->loop) < d->retry_at;
}

static void push(queue *q, void *item, const char *key) {
    if (q->len == q->cap) {
        if (q->head > 0) { /* reuse the consumed front before growing */
            memmove(q->v, q->v + q->head, (q->len - q->head) * sizeof *q->v);
            q->len -= q->head;
            q->head = 0;
        }
        if (q->len == q->cap) {
            q->cap = q->cap ? q->cap * 2 : 1024;
            q->v = realloc(q->v, q->cap * sizeof *q->v);
            if (!q->v) abort();
        }
    }
    q->v[q->len++] = (entry){item, key};
}

static size_t queued(const queue *q) {
    return q->len - q->head;
}

/* Takes up to max entries off the front into a new batch. */
static batch *take(jn_dedupe *d, queue *q, size_t max) {
    size_t n = queued(q) < max ? queued(q) : max;
    batch *b = malloc(sizeof *b);
    if (!b) abort();
    b->d = d;
    b->n = n;
    b->v = malloc(n * sizeof *b->v);
    if (!b->v) abort();
    memcpy(b->v, q->v + q->head, n * sizeof *b->v);
    q->head += n;
    if (q->head == q->len) q->head = q->len = 0;
    d->in_flight += n;
    return b;
}

/* Puts a batch back at the front, after those put back before it in this failure (they
 * were sent, and fail, in order), so the queue keeps the order items came in. */
static void put_back(queue *q, batch *b, size_t after) {
    size_t rest = queued(q);
    entry *v = malloc((rest + b->n + 1) * sizeof *v);
    if (!v) abort();
    if (after > rest) after = rest;
    memcpy(v, q->v + q->head, after * sizeof *v);
    memcpy(v + after, b->v, b->n * sizeof *v);
    memcpy(v + after + b->n, q->v + q->head + after, (rest - after) * sizeof *v);
    free(q->v);
    q->v = v;
    q->head = 0;
    q->cap = rest + b->n + 1;
    q->len = rest + b->n;
}

static void maybe_free(jn_dedupe *d);

static void batch_free(batch *b) {
    b->d->in_flight -= b->n;
    free(b->v);
    free(b);
}

static void unlink_sent(jn_dedupe *d, batch *b) {
    batch **pp = &d->sent_head, *prev = NULL;
    while (*pp && *pp != b)
        prev = *pp, pp = &(*pp)->next;
    if (!*pp) return;
    *pp = b->next;
    if (d->sent_tail == b) d->sent_tail = prev;
}

static void check_free(batch *b) {
    free(b->found);
    batch_free(b);
}

/* Reports answered batches from the oldest, stopping at one still waiting: items reach
 * the owner in the order they were checked. From a failed batch on, every batch goes
 * back to the queue, in order, and nothing new goes out until all of them are back. */
static void drain_checks(jn_dedupe *d) {
    while (!d->closed && d->sent_head && d->sent_head->done) {
        batch *b = d->sent_head;
        d->sent_head = b->next;
        if (!d->sent_head) d->sent_tail = NULL;
        if (d->fail_seq && b->seq >= d->fail_seq) {
            put_back(&d->checks, b, d->requeued);
            d->requeued += b->n;
            d->in_flight -= b->n;
            free(b->found);
            free(b->v);
            free(b);
            continue;
        }
        /* The next batch goes out before this one's work: Redis answers it meanwhile. */
        flush_checks(d);
        for (size_t i = 0; i < b->n && !d->closed; i++)
            d->cbs.on_checked(d->ud, b->v[i].item, b->found[i]);
        check_free(b);
    }
    if (d->closed) {
        maybe_free(d);
        return;
    }
    if (d->fail_seq && !d->sent_head) d->fail_seq = 0, d->requeued = 0; /* all are back */
    flush_checks(d);
}

static void on_checked(void *arg, const char *err, const unsigned char *found, size_t n) {
    batch *b = arg;
    jn_dedupe *d = b->d;
    d->checking--;
    if (d->closed) {
        unlink_sent(d, b);
        check_free(b);
        maybe_free(d);
        return;
    }
    b->done = 1;
    b->err = err != NULL;
    if (err) {
        failed(d, err);
        /* Unknown answers: nothing may pass unchecked. They wait for Redis, and so do
         * the batches sent after them, whatever their answer. */
        if (!d->fail_seq || b->seq < d->fail_seq) d->fail_seq = b->seq;
    } else {
        succeeded(d);
        b->found = malloc(n ? n : 1);
        if (!b->found) abort();
        memcpy(b->found, found, n);
    }
    drain_checks(d);
}

static void flush_checks(jn_dedupe *d) {
    while (!d->closed && !d->fail_seq && d->checking < CHECKS_IN_FLIGHT && queued(&d->checks) &&
           jn_redis_connected(d->redis) && !waiting(d)) {
        batch *b = take(d, &d->checks, CHECK_BATCH);
        b->seq = ++d->sent_seq;
        b->done = b->err = 0;
        b->found = NULL;
        b->next = NULL;
        if (d->sent_tail)
            d->sent_tail->next = b;
        else
            d->sent_head = b;
        d->sent_tail = b;
        const char **keys = malloc(b->n * sizeof *keys);
        if (!keys) abort();
        for (size_t i = 0; i < b->n; i++)
            keys[i] = b->v[i].key;
        d->checking++;
        int rc = jn_marks_exists(d->redis, &d->layout, keys, b->n, on_checked, b);
        free(keys);
        if (rc != 0) {
            on_checked(b, "the connection to Redis was lost", NULL, b->n);
            return;
        }
    }
}

static void on_marked(void *arg, const char *err) {
    batch *b = arg;
    jn_dedupe *d = b->d;
    d->marking = 0;
    if (d->closed) {
        batch_free(b);
        maybe_free(d);
        return;
    }
    if (err) {
        failed(d, err);
        /* Delivered but not marked: the items stay until the mark is written. */
        put_back(&d->marks, b, 0);
        d->in_flight -= b->n;
        free(b->v);
        free(b);
        return;
    }
    succeeded(d);
    for (size_t i = 0; i < b->n && !d->closed; i++)
        d->cbs.on_marked(d->ud, b->v[i].item);
    batch_free(b);
    if (d->closed) {
        maybe_free(d);
        return;
    }
    flush_marks(d);
}

static void flush_marks(jn_dedupe *d) {
    if (d->closed || d->marking || !queued(&d->marks) || !jn_redis_connected(d->redis) ||
        waiting(d))
        return;
    batch *b = take(d, &d->marks, queued(&d->marks));
    const char **keys = malloc(b->n * sizeof *keys);
    if (!keys) abort();
    for (size_t i = 0; i < b->n; i++)
        keys[i] = b->v[i].key;
    d->marking = 1;
    int rc = jn_marks_set(d->redis, &d->layout, keys, b->n, on_marked, b);
    free(keys);
    if (rc != 0) on_marked(b, "the connection to Redis was lost");
}

static void on_timer(uv_timer_t *t) {
    jn_dedupe *d = t->data;
    flush_checks(d);
    flush_marks(d);
}

jn_dedupe *jn_dedupe_new(uv_loop_t *loop, jn_redis *redis, const jn_marks_layout *layout,
                         const jn_dedupe_cbs *cbs, void *ud) {
    jn_dedupe *d = calloc(1, sizeof *d);
    if (!d) abort();
    d->loop = loop;
    d->redis = redis;
    d->layout = *layout;
    d->cbs = *cbs;
    d->ud = ud;
    uv_timer_init(loop, &d->timer);
    d->timer.data = d;
    d->timer_open = 1;
    return d;
}

/* A partial batch goes out on the next loop turn, so the messages of one fetch share
 * it; a full one at once. */
static void soon(jn_dedupe *d) {
    if (!uv_is_active((uv_handle_t *)&d->timer)) uv_timer_start(&d->timer, on_timer, 0, 0);
}

void jn_dedupe_check(jn_dedupe *d, void *item, const char *key) {
    push(&d->checks, item, key);
    if (queued(&d->checks) >= CHECK_BATCH)
        flush_checks(d);
    else
        soon(d);
}

void jn_dedupe_mark(jn_dedupe *d, void *item, const char *key) {
    push(&d->marks, item, key);
    soon(d);
}

void jn_dedupe_resume(jn_dedupe *d) {
    flush_marks(d);
    flush_checks(d);
}

const char *jn_dedupe_error(const jn_dedupe *d) {
    return d->error[0] ? d->error : NULL;
}

size_t jn_dedupe_pending(const jn_dedupe *d) {
    return queued(&d->checks) + queued(&d->marks) + d->in_flight;
}

static void on_timer_closed(uv_handle_t *h) {
    jn_dedupe *d = h->data;
    d->timer_open = 0;
    maybe_free(d);
}

static void maybe_free(jn_dedupe *d) {
    if (!d->closed || d->checking || d->marking || d->timer_open) return;
    free(d->checks.v);
    free(d->marks.v);
    free(d);
}

void jn_dedupe_free(jn_dedupe *d) {
    d->closed = 1;
    /* Answered batches waiting for an earlier one are freed here; those still at Redis
     * when their answer comes. */
    for (batch *b = d->sent_head, *next; b; b = next) {
        next = b->next;
        if (!b->done) continue;
        unlink_sent(d, b);
        check_free(b);
    }
    d->checks.head = d->checks.len = 0;
    d->marks.head = d->marks.len = 0;
    if (d->timer_open && !uv_is_closing((uv_handle_t *)&d->timer))
        uv_close((uv_handle_t *)&d->timer, on_timer_closed);
    maybe_free(d);
}
