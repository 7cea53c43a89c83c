/* Analytics sink. A batch is immutable once cut: its body and Idempotency-Key are
 * computed once, so every retry sends exactly the same bytes under the same key. */
#include "sink.h"

#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backoff.h"
#include "buf.h"
#include "log.h"
#include "metrics.h"
#include "random.h"

typedef struct {
    void *item;
    size_t off, len; /* the record's text in its batch's body */
    unsigned char key[32];
} entry;

typedef struct batch {
    jn_sink *s;
    entry *e;
    size_t n;
    jn_sb body;
    char key[65];
    int attempt;
    uv_timer_t *retry;
    struct batch *next; /* in the ready queue */
} batch;

struct jn_sink {
    uv_loop_t *loop;
    jn_http_client *http;
    jn_sink_opts o;
    jn_backoff backoff;
    jn_sink_done_cb cb;
    void *ud;
    entry *open;
    size_t nopen;
    jn_sb open_body; /* the open batch's records, written as they come: "[r1,r2" */
    uv_timer_t linger;
    batch *ready_head, *ready_tail;
    batch *waiting; /* on a retry timer, linked through next */
    int inflight;
    size_t pending;
    jn_sink_counts n;
    /* An outage is logged once when it starts (with what to do), then once a minute while
     * it lasts, and once when it ends: batches fail together, the log must not. */
    int failing;
    uint64_t fail_logged_ms;
    long fails;
    uint64_t rng;
    int closing;
    char *url;
    char *ca_file, *cert_file, *key_file;
    char *headers[JN_SINK_MAX_HEADERS + 1]; /* the configured ones, NULL-terminated */
    jn_metric *m_latency;
};

#define BODY_RESERVE_MAX (1024 * 1024)

static void send_batch(batch *b);

static void pump(jn_sink *s) {
    while (!s->closing && s->ready_head && s->inflight < s->o.max_inflight) {
        batch *b = s->ready_head;
        s->ready_head = b->next;
        if (!s->ready_head) s->ready_tail = NULL;
        b->next = NULL;
        send_batch(b);
    }
}

static void enqueue(jn_sink *s, batch *b) {
    if (s->ready_tail)
        s->ready_tail->next = b;
    else
        s->ready_head = b;
    s->ready_tail = b;
    pump(s);
}

/* The first 8 bytes of a key as a number that orders like memcmp. */
static uint64_t prefix(const unsigned char *k) {
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | k[i];
    return v;
}

static int key_before(const unsigned char *a, uint64_t pa, const unsigned char *b, uint64_t pb) {
    return pa != pb ? pa < pb : memcmp(a, b, 32) < 0;
}

/* Sorts n 32-byte keys in memcmp order. They are SHA-256 values, so their first 8 bytes
 * nearly always decide, and a quicksort on those with the pivot in the middle meets no
 * adversarial order (that would need chosen hash values): several times cheaper than
 * qsort's comparison call per step on batches of hundreds. */
static void sort_keys(unsigned char *k, size_t n) {
    while (n > 16) {
        unsigned char pivot[32], tmp[32];
        memcpy(pivot, k + 32 * (n / 2), 32);
        uint64_t pp = prefix(pivot);
        size_t i = 0, j = n - 1;
        for (;;) {
            while (key_before(k + 32 * i, prefix(k + 32 * i), pivot, pp))
                i++;
            while (key_before(pivot, pp, k + 32 * j, prefix(k + 32 * j)))
                j--;
            if (i >= j) break;
            memcpy(tmp, k + 32 * i, 32);
            memcpy(k + 32 * i, k + 32 * j, 32);
            memcpy(k + 32 * j, tmp, 32);
            i++, j--;
        }
        /* Recurse into the smaller side, loop on the larger: stack depth stays log n. */
        size_t left = j + 1;
        if (left < n - left) {
            sort_keys(k, left);
            k += 32 * left;
            n -= left;
        } else {
            sort_keys(k + 32 * left, n - left);
            n = left;
        }
    }
    for (size_t i = 1; i < n; i++) {
        unsigned char t[32];
        memcpy(t, k + 32 * i, 32);
        uint64_t pt = prefix(t);
        size_t j = i;
        for (; j > 0 && key_before(t, pt, k + 32 * (j - 1), prefix(k + 32 * (j - 1))); j--)
            memcpy(k + 32 * j, k + 32 * (j - 1), 32);
        memcpy(k + 32 * j, t, 32);
    }
}

/* Takes the records and their body, "[r1,r2" without its closing bracket. */
static batch *make_batch(jn_sink *s, entry *e, size_t n, jn_sb body) {
    batch *b = calloc(1, sizeof *b);
    if (!b) abort();
    b->s = s;
    b->e = e;
    b->n = n;
    b->body = body;
    jn_sb_putc(&b->body, ']');
    unsigned char *keys = malloc(n * 32);
    if (!keys) abort();
    for (size_t i = 0; i < n; i++)
        memcpy(keys + 32 * i, e[i].key, 32);
    /* The key names the set of records, not their order: the same records cut into one
     * batch again (a retry, or a replay after a crash that interleaves partitions
     * differently) carry the same key. */
    sort_keys(keys, n);
    jn_sha256_hex(keys, n * 32, b->key);
    free(keys);
    return b;
}

static void free_batch(batch *b) {
    free(b->e);
    jn_sb_free(&b->body);
    free(b);
}

static void cut(jn_sink *s) {
    uv_timer_stop(&s->linger);
    if (!s->nopen) return;
    batch *b = make_batch(s, s->open, s->nopen, s->open_body);
    jn_sb_init(&s->open_body);
    s->open = NULL;
    s->nopen = 0;
    enqueue(s, b);
}

static void on_linger(uv_timer_t *t) {
    cut(t->data);
}

static void on_retry_closed(uv_handle_t *h) {
    free(h);
}

static void on_retry(uv_timer_t *t) {
    batch *b = t->data;
    jn_sink *s = b->s;
    uv_close((uv_handle_t *)t, on_retry_closed);
    b->retry = NULL;
    for (batch **pp = &s->waiting; *pp; pp = &(*pp)->next)
        if (*pp == b) {
            *pp = b->next;
            break;
        }
    b->next = NULL;
    enqueue(s, b);
}

static void report(jn_sink *s, batch *b, int status, const char *reason) {
    for (size_t i = 0; i < b->n; i++) {
        s->pending--;
        s->cb(s->ud, b->e[i].item, status, reason);
    }
}

static void on_response(void *ud, jn_http_result *res) {
    batch *b = ud;
    jn_sink *s = b->s;
    s->inflight--;
    if (s->closing || res->curl_code == 42 /* CURLE_ABORTED_BY_CALLBACK: client closing */) {
        free_batch(b);
        return;
    }
    jn_metric_observe(s->m_latency, res->total_s);
    long st = res->curl_code ? 0 : res->status;
    if (st >= 200 && st < 300) {
        s->n.ok++;
        if (s->failing)
            jn_log_info("sink", "POST %s works again (after %ld failed attempt(s))", s->o.url,
                        s->fails);
        s->failing = 0;
        s->fails = 0;
        report(s, b, 0, NULL);
        free_batch(b);
    } else if (st == 0 || st == 408 || st == 429 || st >= 500) {
        b->attempt++;
        s->n.retried++;
        /* Never give up: the records are not committed until delivered, so waiting is
         * the lossless answer to a receiver that is down. The ceiling stops growing. */
        int attempt = b->attempt + 1 < 30 ? b->attempt + 1 : 30;
        int64_t d =
            jn_backoff_delay_ms(&s->backoff, attempt, jn_random_unit(&s->rng), res->retry_after_s);
        char why[160];
        if (st)
            snprintf(why, sizeof why, "HTTP %ld", st);
        else
            snprintf(why, sizeof why, "%s", res->curl_error ? res->curl_error : "no answer");
        s->fails++;
        uint64_t now = uv_now(s->loop);
        if (!s->failing || now - s->fail_logged_ms >= 60000) {
            /* A refused certificate does not go away by waiting: say what to set. */
            int tls = !st && res->curl_error &&
                      (strstr(res->curl_error, "certificate") || strstr(res->curl_error, "SSL"));
            jn_log_warn("sink", "POST %s failed: %s; %s%s", s->o.url, why,
                        s->failing ? "still failing, records wait and are retried"
                                   : "records wait and are retried with backoff",
                        tls ? " (a certificate the sink does not trust: give the sink ca_file, "
                              "the CA that signed the receiver's certificate)"
                            : "");
            s->failing = 1;
            s->fail_logged_ms = now;
        } else {
            jn_log_debug("sink", "POST %s (%zu records) failed: %s; retry %d in %lld ms", s->o.url,
                         b->n, why, b->attempt, (long long)d);
        }
        b->retry = malloc(sizeof *b->retry);
        if (!b->retry) abort();
        uv_timer_init(s->loop, b->retry);
        b->retry->data = b;
        uv_timer_start(b->retry, on_retry, (uint64_t)d, 0);
        b->next = s->waiting;
        s->waiting = b;
    } else if (b->n > 1) {
        /* One bad record must not sink its neighbours: retry them one by one. */
        jn_log_warn("sink",
                    "POST %s rejected a batch of %zu with HTTP %ld; sending its records "
                    "one by one to find the refused ones",
                    s->o.url, b->n, st);
        for (size_t i = 0; i < b->n; i++) {
            entry *one = malloc(sizeof *one);
            if (!one) abort();
            *one = b->e[i];
            jn_sb body;
            jn_sb_init(&body);
            jn_sb_putc(&body, '[');
            jn_sb_append(&body, b->body.data + one->off, one->len);
            one->off = 1;
            enqueue(s, make_batch(s, one, 1, body));
        }
        free(b->e);
        jn_sb_free(&b->body);
        free(b);
    } else {
        char reason[300];
        snprintf(reason, sizeof reason, "HTTP %ld: %.250s", st,
                 res->body.data ? res->body.data : "");
        s->n.rejected++;
        report(s, b, (int)st, reason);
        free_batch(b);
    }
    pump(s);
}

static void send_batch(batch *b) {
    jn_sink *s = b->s;
    char idem[96];
    snprintf(idem, sizeof idem, "Idempotency-Key: %s", b->key);
    const char *headers[JN_SINK_MAX_HEADERS + 3] = {"Content-Type: application/json", idem};
    memcpy(headers + 2, s->headers, sizeof s->headers);
    jn_http_request_opts o = {.method = "POST",
                              .url = s->o.url,
                              .body = b->body.data,
                              .body_len = b->body.len,
                              .headers = headers,
                              .ca_file = s->ca_file,
                              .cert_file = s->cert_file,
                              .key_file = s->key_file,
                              .insecure = s->o.insecure,
                              .timeout_ms = s->o.timeout_ms,
                              .connect_timeout_ms = s->o.timeout_ms};
    s->inflight++;
    s->n.sent++;
    if (jn_http_client_request(s->http, &o, on_response, b) != 0) {
        s->inflight--;
        /* The client refuses only while closing; keep the batch for the retry path. */
        jn_http_result r = {
            .curl_code = 1, .curl_error = "request not started", .retry_after_s = -1};
        s->inflight++;
        on_response(b, &r);
    }
}

jn_sink *jn_sink_new(uv_loop_t *loop, jn_http_client *http, const jn_sink_opts *o,
                     jn_sink_done_cb cb, void *ud) {
    jn_sink *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->loop = loop;
    s->http = http;
    s->o = *o;
    /* The caller's strings may not outlive this call. */
    s->url = strdup(o->url);
    if (!s->url) abort();
    s->o.url = s->url;
    s->ca_file = o->ca_file ? strdup(o->ca_file) : NULL;
    s->o.ca_file = s->ca_file;
    s->cert_file = o->cert_file ? strdup(o->cert_file) : NULL;
    s->o.cert_file = s->cert_file;
    s->key_file = o->key_file ? strdup(o->key_file) : NULL;
    s->o.key_file = s->key_file;
    for (int i = 0; o->headers && o->headers[i] && i < JN_SINK_MAX_HEADERS; i++) {
        s->headers[i] = strdup(o->headers[i]);
        if (!s->headers[i]) abort();
    }
    s->o.headers = NULL;
    char labels[160] = "";
    if (o->name) snprintf(labels, sizeof labels, "sink=\"%s\"", o->name);
    char ok[200], retry[200];
    snprintf(ok, sizeof ok, "%s%sresult=\"ok\"", labels, *labels ? "," : "");
    snprintf(retry, sizeof retry, "%s%sresult=\"retry\"", labels, *labels ? "," : "");
    s->backoff = (jn_backoff){1000000, o->retry_base_ms, 2, o->retry_max_ms};
    s->cb = cb;
    s->ud = ud;
    s->rng = jn_random_seed();
    uv_timer_init(loop, &s->linger);
    s->linger.data = s;
    jn_metrics_counter_bind("junction_sink_batches_total", "Batches POSTed by result", ok,
                            &s->n.ok);
    jn_metrics_counter_bind("junction_sink_batches_total", "Batches POSTed by result", retry,
                            &s->n.retried);
    jn_metrics_counter_bind("junction_sink_rejected_total",
                            "Records a sink refused for good (dead-lettered)", labels,
                            &s->n.rejected);
    s->m_latency = jn_metrics_histogram("junction_sink_post_seconds", "Time of one POST", labels);
    return s;
}

void jn_sink_add(jn_sink *s, const char *json, size_t len, const unsigned char key[32],
                 void *item) {
    if (!s->open) {
        s->open = malloc((size_t)s->o.batch_size * sizeof *s->open);
        if (!s->open) abort();
    }
    entry *e = &s->open[s->nopen++];
    e->item = item;
    memcpy(e->key, key, 32);
    e->off = s->open_body.len + 1;
    e->len = len;
    /* Straight into the body: no copy of the record waits for the cut. Records of a
     * batch are alike in size, so the first one sizes the buffer for all, up to
     * BODY_RESERVE_MAX: a huge batch_size must not reserve memory a lingered batch
     * never fills (past that the buffer grows by doubling). */
    if (s->nopen == 1) {
        size_t want = (len + 1) * (size_t)s->o.batch_size + 2;
        jn_sb_reserve(&s->open_body, want < BODY_RESERVE_MAX ? want : BODY_RESERVE_MAX);
    }
    jn_sb_putc(&s->open_body, s->nopen == 1 ? '[' : ',');
    jn_sb_append(&s->open_body, json, len);
    s->pending++;
    if ((int)s->nopen >= s->o.batch_size)
        cut(s);
    else if (s->nopen == 1)
        uv_timer_start(&s->linger, on_linger, (uint64_t)s->o.linger_ms, 0);
}

size_t jn_sink_pending(const jn_sink *s) {
    return s->pending;
}

void jn_sink_flush(jn_sink *s) {
    cut(s);
}

const jn_sink_counts *jn_sink_counts_of(const jn_sink *s) {
    return &s->n;
}

typedef struct {
    jn_sink *s;
    void (*done)(void *);
    void *arg;
} close_ctx;

static void on_linger_closed(uv_handle_t *h) {
    close_ctx *c = h->data;
    jn_sink *s = c->s;
    free(s->open);
    jn_sb_free(&s->open_body);
    for (batch *b = s->ready_head, *n; b; b = n) {
        n = b->next;
        free_batch(b);
    }
    for (batch *b = s->waiting, *n; b; b = n) {
        n = b->next;
        uv_close((uv_handle_t *)b->retry, on_retry_closed);
        free_batch(b);
    }
    void (*done)(void *) = c->done;
    void *arg = c->arg;
    free(s->url);
    free(s->ca_file);
    free(s->cert_file);
    free(s->key_file);
    for (int i = 0; s->headers[i]; i++)
        free(s->headers[i]);
    jn_metrics_unbind(&s->n, sizeof s->n);
    free(s);
    free(c);
    if (done) done(arg);
}

void jn_sink_close(jn_sink *s, void (*done)(void *), void *arg) {
    s->closing = 1;
    close_ctx *c = malloc(sizeof *c);
    if (!c) abort();
    *c = (close_ctx){s, done, arg};
    /* Call after the HTTP client is closed: in-flight batches were freed by their aborted
     * callbacks; those waiting on a retry timer are dropped here with their timers. */
    s->linger.data = c;
    uv_close((uv_handle_t *)&s->linger, on_linger_closed);
}
