/* The analytics sink (src/sink.h) against the project's own HTTP server over loopback,
 * in one process on one loop. The server's handler records every request (body,
 * Idempotency-Key, when it came) and answers as the test scripts it. Every test ends by
 * closing in the documented order (HTTP client, then sink, then the server) and checks
 * that the loop is then empty: nothing may be left open. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http_client.h"
#include "http_server.h"
#include "metrics.h"
#include "net_fixture.h"
#include "sink.h"

#define MAX_REQS  256
#define MAX_ITEMS 320
#define DROP      -1 /* in a status script: close the connection without answering */
#define SLOW      -2 /* in a status script: 200, but only after slow_ms */

typedef struct {
    char *body;
    char key[300]; /* Idempotency-Key, "" when absent */
    uint64_t at;   /* loop time the request was handled */
    uint64_t end;  /* loop time its answer was due */
    int status;
    int concurrent; /* requests being answered when it came, itself included */
} req_rec;

typedef struct {
    int calls;
    int status;
    char *reason;
    int order; /* position among all reports */
} rep_rec;

typedef struct {
    uv_loop_t loop;
    jn_http_server *srv;
    jn_http_client *cli;
    jn_sink *sink;
    uv_timer_t watchdog, stopper;
    char url[96];

    /* how the handler answers */
    int script[64]; /* statuses of the first requests, in arrival order; then 200 */
    int nscript, next;
    int retry_after;           /* seconds sent as Retry-After with 503 and 429; -1 none */
    const char *reject_marker; /* bodies containing it get 400 */
    int fail_each;             /* each distinct body gets 503 this many times first */
    const char *slow_marker;   /* bodies containing it are held back slow_ms */
    int slow_ms;
    const char *busy_marker; /* bodies containing it get 503 with Retry-After: 5 */
    int delay_ms;            /* every answer held back this long */

    req_rec reqs[MAX_REQS];
    int nreqs;
    int max_concurrent;

    rep_rec reps[MAX_ITEMS];
    int nreports;
    int expect_reports;    /* shut down once this many reports arrived */
    jn_sink_counts counts; /* the sink's counters at the last expected report */
    long batches, retries; /* counts.sent and counts.retried */
    size_t pending;        /* jn_sink_pending then */

    int shut, closing_sink;
    int after_close; /* reports after jn_sink_close was called */
    int server_stopped, client_closed, sink_closed;
} fx;

/* ---- the receiver -------------------------------------------------------------------- */

static int body_has(const jn_http_request *req, const char *marker) {
    size_t n = strlen(marker);
    if (req->body_len < n) return 0;
    for (size_t i = 0; i + n <= req->body_len; i++)
        if (memcmp(req->body + i, marker, n) == 0) return 1;
    return 0;
}

static int times_seen(fx *f, const char *body) {
    int n = 0;
    for (int i = 0; i < f->nreqs; i++)
        if (strcmp(f->reqs[i].body, body) == 0) n++;
    return n;
}

static void handler(void *ud, const jn_http_request *req, jn_http_response *res) {
    fx *f = ud;
    if (f->nreqs == MAX_REQS) fail_msg("too many requests");
    uint64_t now = uv_now(&f->loop);
    req_rec *r = &f->reqs[f->nreqs];
    r->body = malloc(req->body_len + 1);
    memcpy(r->body, req->body, req->body_len);
    r->body[req->body_len] = '\0';
    snprintf(r->key, sizeof r->key, "%s", req->extra ? req->extra : "");
    r->at = now;
    /* Concurrency: earlier requests whose answer is not yet due. A client that waits for
     * an answer before sending the next request sends it at or after the time the answer
     * was due (the delay timer fires no earlier), so it never overlaps. */
    r->concurrent = 1;
    for (int i = 0; i < f->nreqs; i++)
        if (f->reqs[i].end > now) r->concurrent++;
    if (r->concurrent > f->max_concurrent) f->max_concurrent = r->concurrent;

    int status = 200, delay = f->delay_ms;
    const char *answer = "{\"ok\":true}";
    char extra[64] = "";
    if (f->reject_marker && body_has(req, f->reject_marker)) {
        status = 400;
        answer = "{\"error\":\"record refused: bad field\"}";
    } else if (f->busy_marker && body_has(req, f->busy_marker)) {
        status = 503;
        answer = "{\"error\":\"busy\"}";
        snprintf(extra, sizeof extra, "Retry-After: 5\r\n");
    } else if (f->fail_each && times_seen(f, r->body) < f->fail_each) {
        status = 503;
        answer = "{\"error\":\"busy\"}";
    } else if (f->next < f->nscript) {
        status = f->script[f->next++];
        answer = status == 200 ? answer : "{\"error\":\"scripted\"}";
    }
    if (f->slow_marker && body_has(req, f->slow_marker)) delay = f->slow_ms;
    if (status == SLOW) {
        status = 200;
        answer = "{\"ok\":true}";
        delay = f->slow_ms;
    }
    if ((status == 503 || status == 429) && f->retry_after >= 0 && !extra[0])
        snprintf(extra, sizeof extra, "Retry-After: %d\r\n", f->retry_after);
    r->status = status;
    r->end = now + (uint64_t)delay;
    f->nreqs++;
    if (status == DROP) {
        res->drop = 1;
        return;
    }
    jn_http_respond(res, status, answer, strlen(answer));
    snprintf(res->headers, sizeof res->headers, "%s", extra);
    res->delay_ms = delay;
}

/* ---- fixture ------------------------------------------------------------------------- */

static void on_watchdog(uv_timer_t *t) {
    (void)t;
    fail_msg("the test did not finish within 10 s");
}

static void on_server_stopped(void *arg) {
    ((fx *)arg)->server_stopped = 1;
}

static void on_client_closed(void *arg) {
    ((fx *)arg)->client_closed = 1;
}

static void on_sink_closed(void *arg) {
    fx *f = arg;
    /* The client was closed first: its done may come before or after this one. */
    f->sink_closed++;
}

/* Ends the test in the documented order: HTTP client, then sink; then the server. */
static void fx_shutdown(fx *f) {
    if (f->shut) return;
    f->shut = 1;
    jn_http_client_close(f->cli, on_client_closed, f);
    f->closing_sink = 1;
    jn_sink_close(f->sink, on_sink_closed, f);
    f->sink = NULL;
    jn_http_server_stop(f->srv, on_server_stopped, f);
    uv_close((uv_handle_t *)&f->watchdog, NULL);
    uv_close((uv_handle_t *)&f->stopper, NULL);
}

static void on_stopper(uv_timer_t *t) {
    fx_shutdown(t->data);
}

static void on_done(void *ud, void *item, int status, const char *reason) {
    fx *f = ud;
    if (f->closing_sink) {
        f->after_close++;
        return;
    }
    intptr_t i = (intptr_t)item;
    if (i < 0 || i >= MAX_ITEMS) fail_msg("unknown item %ld", (long)i);
    rep_rec *r = &f->reps[i];
    r->calls++;
    r->status = status;
    free(r->reason);
    r->reason = reason ? strdup(reason) : NULL;
    r->order = f->nreports++;
    /* Not from inside the sink's callback: the test ends from the loop. */
    if (f->nreports == f->expect_reports) {
        f->counts = *jn_sink_counts_of(f->sink);
        f->batches = (long)f->counts.sent;
        f->retries = (long)f->counts.retried;
        f->pending = jn_sink_pending(f->sink);
        uv_timer_start(&f->stopper, on_stopper, 0, 0);
    }
}

static jn_sink_opts default_opts(fx *f) {
    return (jn_sink_opts){.url = f->url,
                          .batch_size = 3,
                          .linger_ms = 30,
                          .max_inflight = 4,
                          .timeout_ms = 5000,
                          .retry_base_ms = 5,
                          .retry_max_ms = 20};
}

static void fx_start(fx *f) {
    memset(f, 0, sizeof *f);
    f->retry_after = -1;
    assert_int_equal(uv_loop_init(&f->loop), 0);
    f->srv = fixture_server_start(&f->loop, "analytics-test", "Idempotency-Key", handler, f);
    snprintf(f->url, sizeof f->url, "http://127.0.0.1:%d/events", jn_http_server_port(f->srv));
    f->cli = jn_http_client_new(&f->loop);
    assert_non_null(f->cli);
    uv_timer_init(&f->loop, &f->watchdog);
    uv_timer_start(&f->watchdog, on_watchdog, 10000, 0);
    uv_timer_init(&f->loop, &f->stopper);
    f->stopper.data = f;
}

static void fx_sink(fx *f, const jn_sink_opts *o) {
    f->sink = jn_sink_new(&f->loop, f->cli, o, on_done, f);
    assert_non_null(f->sink);
}

static void fx_run(fx *f) {
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_true(f->shut);
    assert_true(f->server_stopped);
    assert_true(f->client_closed);
    assert_int_equal(f->sink_closed, 1);
    assert_int_equal(f->after_close, 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
}

static void fx_free(fx *f) {
    for (int i = 0; i < f->nreqs; i++)
        free(f->reqs[i].body);
    for (int i = 0; i < MAX_ITEMS; i++)
        free(f->reps[i].reason);
}

/* ---- records ------------------------------------------------------------------------- */

/* Record i as JSON; tag lets two records share a key yet differ in content. */
static void record_json(char *out, size_t n, int i, const char *tag) {
    snprintf(out, n, "{\"id\":%d,\"name\":\"record %d\",\"tag\":\"%s\"}", i, i, tag);
}

static void record_key(unsigned char key[32], int k) {
    memset(key, 0, 32);
    memcpy(key, &k, sizeof k);
    key[31] = 0x5a;
}

/* Queues record i (reported as item i) under key k. */
static void add(fx *f, int i, int k, const char *tag) {
    char json[128];
    record_json(json, sizeof json, i, tag);
    unsigned char key[32];
    record_key(key, k);
    jn_sink_add(f->sink, json, strlen(json), key, (void *)(intptr_t)i);
}

/* The JSON array of records first..last (tag "t"), as a batch body must be. */
static void batch_body(char *out, size_t n, int first, int last) {
    size_t len = 0;
    out[len++] = '[';
    for (int i = first; i <= last; i++) {
        if (i > first) out[len++] = ',';
        record_json(out + len, n - len, i, "t");
        len += strlen(out + len);
    }
    out[len++] = ']';
    out[len] = '\0';
}

static int is_hex64(const char *s) {
    if (strlen(s) != 64) return 0;
    for (; *s; s++)
        if (!((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'f'))) return 0;
    return 1;
}

static void assert_delivered(fx *f, int first, int last) {
    for (int i = first; i <= last; i++) {
        if (f->reps[i].calls != 1)
            fail_msg("item %d reported %d times, not once", i, f->reps[i].calls);
        if (f->reps[i].status != 0)
            fail_msg("item %d reported with status %d", i, f->reps[i].status);
        assert_null(f->reps[i].reason);
    }
}

/* ---- tests --------------------------------------------------------------------------- */

static void test_batches_in_order(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.max_inflight = 1; /* batches reach the server in the order they were cut */
    o.linger_ms = 150;
    fx_sink(&f, &o);
    f.expect_reports = 7;
    uv_update_time(&f.loop);
    uint64_t added = uv_now(&f.loop);
    for (int i = 0; i < 7; i++)
        add(&f, i, i, "t");
    assert_int_equal(jn_sink_pending(f.sink), 7);
    fx_run(&f);

    assert_int_equal(f.nreqs, 3);
    char want[1024];
    batch_body(want, sizeof want, 0, 2);
    assert_string_equal(f.reqs[0].body, want);
    batch_body(want, sizeof want, 3, 5);
    assert_string_equal(f.reqs[1].body, want);
    batch_body(want, sizeof want, 6, 6);
    assert_string_equal(f.reqs[2].body, want);
    /* full batches leave at once; the last one only after the linger time */
    assert_true(f.reqs[0].at - added < 150);
    assert_true(f.reqs[2].at - added >= 150);
    assert_delivered(&f, 0, 6);
    for (int i = 0; i < 3; i++)
        assert_true(is_hex64(f.reqs[i].key));
    /* different records, different keys */
    assert_string_not_equal(f.reqs[0].key, f.reqs[1].key);
    assert_string_not_equal(f.reqs[1].key, f.reqs[2].key);
    /* records are reported per batch, in batch order */
    for (int i = 0; i < 6; i++)
        assert_true(f.reps[i].order < f.reps[i + 1].order);
    fx_free(&f);
}

static void test_counts_and_pending(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    fx_sink(&f, &o);
    f.expect_reports = 4;
    f.script[0] = 503;
    f.nscript = 1;
    f.retry_after = 0;
    for (int i = 0; i < 4; i++)
        add(&f, i, i, "t");
    assert_int_equal(jn_sink_pending(f.sink), 4);
    fx_run(&f);
    assert_delivered(&f, 0, 3);
    assert_int_equal(f.pending, 0);
    assert_int_equal(f.nreqs, 3);
    assert_int_equal(f.batches, 3); /* [0,1,2] twice, [3] once */
    assert_int_equal(f.retries, 1);
    fx_free(&f);
}

static void test_flush_sends_without_linger(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.linger_ms = 60000; /* the watchdog would fire long before */
    fx_sink(&f, &o);
    f.expect_reports = 2;
    add(&f, 0, 0, "t");
    add(&f, 1, 1, "t");
    jn_sink_flush(f.sink);
    fx_run(&f);
    assert_int_equal(f.nreqs, 1);
    char want[512];
    batch_body(want, sizeof want, 0, 1);
    assert_string_equal(f.reqs[0].body, want);
    assert_delivered(&f, 0, 1);
    fx_free(&f);
}

static void test_idempotency_key(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    fx_sink(&f, &o);
    f.fail_each = 2; /* every batch: 503, 503, then 200 */
    f.retry_after = 0;
    f.expect_reports = 9;
    for (int i = 0; i < 3; i++)
        add(&f, i, 100 + i, "first");
    /* other content under the same record keys */
    for (int i = 3; i < 6; i++)
        add(&f, i, 100 + (i - 3), "second");
    for (int i = 6; i < 9; i++)
        add(&f, i, 200 + i, "third");
    fx_run(&f);
    assert_delivered(&f, 0, 8);
    assert_int_equal(f.nreqs, 9);

    /* group the requests by body: three tries of each batch, all under one key */
    const char *tags[3] = {"first", "second", "third"};
    const char *keys[3] = {NULL, NULL, NULL};
    for (int b = 0; b < 3; b++) {
        int tries = 0;
        const char *body = NULL;
        for (int i = 0; i < f.nreqs; i++) {
            if (!strstr(f.reqs[i].body, tags[b])) continue;
            assert_true(is_hex64(f.reqs[i].key));
            if (!keys[b]) keys[b] = f.reqs[i].key;
            assert_string_equal(f.reqs[i].key, keys[b]);
            if (!body) body = f.reqs[i].body;
            assert_string_equal(f.reqs[i].body, body); /* the same bytes every time */
            assert_int_equal(f.reqs[i].status, tries < 2 ? 503 : 200);
            tries++;
        }
        assert_int_equal(tries, 3);
    }
    /* the key names the records: equal keys for the same record keys, whatever the
     * content; another set of records gets another key */
    assert_string_equal(keys[0], keys[1]);
    assert_string_not_equal(keys[0], keys[2]);
    fx_free(&f);
}

static int cmp32(const void *a, const void *b) {
    return memcmp(a, b, 32);
}

/* A batch of hundreds: the key is SHA-256 over the record keys in memcmp order, however
 * they were added (the sink sorts them its own way). */
static void test_idempotency_key_large_batch(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.batch_size = 300;
    fx_sink(&f, &o);
    f.expect_reports = 300;
    static unsigned char keys[300 * 32];
    for (int i = 0; i < 300; i++) {
        /* scattered, with repeats of the first bytes and a few equal keys */
        int k = (i * 7919) % 263;
        record_key(keys + 32 * i, k);
        add(&f, i, k, "big");
    }
    fx_run(&f);
    assert_int_equal(f.nreqs, 1);
    qsort(keys, 300, 32, cmp32);
    char want[65];
    jn_sha256_hex(keys, sizeof keys, want);
    assert_string_equal(f.reqs[0].key, want);
    fx_free(&f);
}

static void test_503_retried_until_200(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    fx_sink(&f, &o);
    for (int i = 0; i < 4; i++)
        f.script[i] = 503;
    f.nscript = 4;
    f.retry_after = 0;
    f.expect_reports = 2;
    add(&f, 0, 0, "t");
    add(&f, 1, 1, "t");
    jn_sink_flush(f.sink);
    fx_run(&f);
    assert_int_equal(f.nreqs, 5);
    for (int i = 0; i < 5; i++) {
        assert_int_equal(f.reqs[i].status, i < 4 ? 503 : 200);
        assert_string_equal(f.reqs[i].body, f.reqs[0].body);
        assert_string_equal(f.reqs[i].key, f.reqs[0].key);
    }
    assert_delivered(&f, 0, 1);
    assert_int_equal(f.retries, 4);
    assert_int_equal(f.batches, 5);
    fx_free(&f);
}

/* A receiver's Retry-After wins over a shorter backoff (up to retry_max_ms). */
static void test_retry_after_is_honoured(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.retry_max_ms = 2000;
    fx_sink(&f, &o);
    f.script[0] = 503;
    f.nscript = 1;
    f.retry_after = 1;
    f.expect_reports = 1;
    add(&f, 0, 0, "t");
    jn_sink_flush(f.sink);
    fx_run(&f);
    assert_int_equal(f.nreqs, 2);
    assert_int_equal(f.reqs[0].status, 503);
    assert_true(f.reqs[1].at - f.reqs[0].at >= 1000);
    assert_delivered(&f, 0, 0);
    fx_free(&f);
}

static void test_server_error_storm_then_success(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.batch_size = 2;
    fx_sink(&f, &o);
    /* every transient status (429 and 503 without Retry-After here) */
    int storm[] = {500, 500, 502, 503, 504, 408, 429, 500, 500, 500, 500, 500};
    f.nscript = (int)(sizeof storm / sizeof storm[0]);
    memcpy(f.script, storm, sizeof storm);
    f.expect_reports = 2;
    add(&f, 0, 0, "t");
    add(&f, 1, 1, "t");
    fx_run(&f);
    assert_delivered(&f, 0, 1);
    /* every failure was retried, and the first success ended it */
    assert_int_equal(f.nreqs, f.nscript + 1);
    assert_int_equal(f.retries, f.nscript);
    assert_int_equal(f.batches, f.nscript + 1);
    assert_int_equal(f.reqs[f.nreqs - 1].status, 200);
    for (int i = 0; i < f.nreqs; i++) {
        assert_string_equal(f.reqs[i].key, f.reqs[0].key);
        assert_string_equal(f.reqs[i].body, f.reqs[0].body);
    }
    fx_free(&f);
}

/* No answer at all (a timeout, a connection closed without a response) is transient. */
static void test_no_answer_is_retried(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.timeout_ms = 100;
    fx_sink(&f, &o);
    f.slow_ms = 400;
    int script[] = {SLOW, DROP, DROP, DROP};
    f.nscript = (int)(sizeof script / sizeof script[0]);
    memcpy(f.script, script, sizeof script);
    f.expect_reports = 1;
    add(&f, 0, 0, "t");
    jn_sink_flush(f.sink);
    fx_run(&f);
    assert_delivered(&f, 0, 0);
    assert_int_equal(f.nreqs, f.nscript + 1);
    assert_int_equal(f.reqs[f.nreqs - 1].status, 200);
    /* Each failure reached the sink and was retried by it. (curl itself re-sends a
     * request once when a reused keep-alive connection closes before any answer; here
     * every try is on a fresh connection: the timeout and each drop close theirs.) */
    assert_int_equal(f.retries, 4);
    assert_int_equal(f.batches, 5);
    fx_free(&f);
}

static void test_permanent_400_splits_batch(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    fx_sink(&f, &o);
    f.reject_marker = "poison";
    f.expect_reports = 3;
    add(&f, 0, 0, "t");
    add(&f, 1, 1, "poison");
    add(&f, 2, 2, "t");
    fx_run(&f);

    /* the batch, then its records one by one */
    assert_int_equal(f.nreqs, 4);
    assert_int_equal(f.reqs[0].status, 400);
    assert_non_null(strstr(f.reqs[0].body, "\"id\":0"));
    assert_non_null(strstr(f.reqs[0].body, "\"id\":2"));
    int seen[3] = {0};
    for (int i = 1; i < 4; i++) {
        const char *b = f.reqs[i].body;
        assert_int_equal(b[0], '[');
        int id = -1;
        assert_int_equal(sscanf(b, "[{\"id\":%d,", &id), 1);
        assert_in_range(id, 0, 2);
        seen[id]++;
        char one[256];
        one[0] = '[';
        record_json(one + 1, sizeof one - 2, id, id == 1 ? "poison" : "t");
        strcat(one, "]");
        assert_string_equal(b, one);
        assert_int_equal(f.reqs[i].status, id == 1 ? 400 : 200);
        assert_true(is_hex64(f.reqs[i].key));
        assert_string_not_equal(f.reqs[i].key, f.reqs[0].key);
    }
    assert_int_equal(seen[0], 1);
    assert_int_equal(seen[1], 1);
    assert_int_equal(seen[2], 1);

    assert_delivered(&f, 0, 0);
    assert_delivered(&f, 2, 2);
    assert_int_equal(f.reps[1].calls, 1);
    assert_int_equal(f.reps[1].status, 400);
    assert_non_null(f.reps[1].reason);
    assert_non_null(strstr(f.reps[1].reason, "400"));
    assert_non_null(strstr(f.reps[1].reason, "record refused: bad field"));
    /* junction_sink_rejected_total counts the refused record, and only it */
    assert_int_equal(f.counts.rejected, 1);
    assert_int_equal(f.counts.ok, 2);
    fx_free(&f);
}

static void test_permanent_400_for_every_record(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    fx_sink(&f, &o);
    f.reject_marker = "\"id\""; /* every body */
    f.expect_reports = 3;
    for (int i = 0; i < 3; i++)
        add(&f, i, i, "t");
    fx_run(&f);
    /* one batch of 3, then 3 of 1; nothing is retried after a 4xx */
    assert_int_equal(f.nreqs, 4);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(f.reps[i].calls, 1);
        assert_int_equal(f.reps[i].status, 400);
        assert_non_null(strstr(f.reps[i].reason, "record refused"));
    }
    fx_free(&f);
}

static void run_concurrency(int max_inflight, int *max_concurrent) {
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.batch_size = 1;
    o.max_inflight = max_inflight;
    fx_sink(&f, &o);
    f.delay_ms = 60;
    f.expect_reports = 6;
    for (int i = 0; i < 6; i++)
        add(&f, i, i, "t");
    fx_run(&f);
    assert_int_equal(f.nreqs, 6);
    assert_delivered(&f, 0, 5);
    *max_concurrent = f.max_concurrent;
    fx_free(&f);
}

static void test_max_inflight(void **state) {
    (void)state;
    int one = 0, three = 0;
    run_concurrency(1, &one);
    assert_int_equal(one, 1);
    /* the same measure sees overlap when it is allowed, and never more than allowed */
    run_concurrency(3, &three);
    assert_in_range(three, 2, 3);
}

/* ---- closing with work under way ------------------------------------------------------ */

static void on_close_poll(uv_timer_t *t) {
    fx *f = t->data;
    long retries = (long)jn_sink_counts_of(f->sink)->retried;
    int slow = 0;
    for (int i = 0; i < f->nreqs; i++)
        slow += strstr(f->reqs[i].body, "slow") != NULL;
    /* both busy batches wait on their retry timers, both slow ones are being answered */
    if (retries == 2 && slow == 2) {
        assert_int_equal(jn_http_client_inflight(f->cli), 2);
        assert_int_equal(jn_sink_pending(f->sink), 9);
        uv_close((uv_handle_t *)t, NULL);
        fx_shutdown(f);
    }
}

static void test_close_with_work_in_flight(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    o.batch_size = 2;
    o.linger_ms = 60000;
    o.retry_max_ms = 10000; /* lets Retry-After: 5 keep the busy batches waiting */
    fx_sink(&f, &o);
    f.slow_marker = "slow";
    f.slow_ms = 300;
    f.busy_marker = "busy"; /* 503 with Retry-After: 5 */
    f.expect_reports = -1;
    add(&f, 0, 0, "slow");
    add(&f, 1, 1, "slow");
    add(&f, 2, 2, "busy");
    add(&f, 3, 3, "busy");
    add(&f, 4, 4, "slow");
    add(&f, 5, 5, "slow");
    add(&f, 6, 6, "busy");
    add(&f, 7, 7, "busy");
    add(&f, 8, 8, "open"); /* stays in the open batch: linger is a minute */
    uv_timer_t poll;
    uv_timer_init(&f.loop, &poll);
    poll.data = &f;
    uv_timer_start(&poll, on_close_poll, 2, 2);
    fx_run(&f);
    assert_int_equal(f.nreports, 0);
    assert_int_equal(f.nreqs, 4);
    fx_free(&f);
}

static void test_close_idle_sink(void **state) {
    (void)state;
    fx f;
    fx_start(&f);
    jn_sink_opts o = default_opts(&f);
    fx_sink(&f, &o);
    fx_shutdown(&f);
    assert_int_equal(f.sink_closed, 0); /* done comes from the loop */
    fx_run(&f);
    assert_int_equal(f.nreqs, 0);
    fx_free(&f);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_batches_in_order),
        cmocka_unit_test(test_counts_and_pending),
        cmocka_unit_test(test_flush_sends_without_linger),
        cmocka_unit_test(test_idempotency_key),
        cmocka_unit_test(test_idempotency_key_large_batch),
        cmocka_unit_test(test_503_retried_until_200),
        cmocka_unit_test(test_retry_after_is_honoured),
        cmocka_unit_test(test_server_error_storm_then_success),
        cmocka_unit_test(test_no_answer_is_retried),
        cmocka_unit_test(test_permanent_400_splits_batch),
        cmocka_unit_test(test_permanent_400_for_every_record),
        cmocka_unit_test(test_max_inflight),
        cmocka_unit_test(test_close_with_work_in_flight),
        cmocka_unit_test(test_close_idle_sink),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
