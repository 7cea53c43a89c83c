/* The Kafka sink (sink_kafka.c) against librdkafka's mock cluster: the reporting
 * contract (delivered, refused for good with a reason, nothing else and never from inside
 * add), order through a full queue, retries after message timeouts, and a close that
 * reports nothing and frees everything (run it under ASan). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka_mock.h"
#include "log.h"
#include "sink_kafka.h"

#define TOPIC       "records"
#define MAXREC      400
#define API_PRODUCE 0 /* Kafka protocol ApiKey of ProduceRequest */

/* ---- what the sink reported ------------------------------------------------------------- */

typedef struct {
    jn_kafka_sink *s;
    int calls, delivered, refused, off_thread, bad_item;
    int seen[MAXREC];   /* reports per record, indexed by item - 1 */
    int status[MAXREC]; /* the last status per record */
    char reason[512];   /* the last refusal's reason */
    int close_at;       /* close the sink from inside the callback at this many calls */
    int done;
} reports;

/* Static: a report arriving after a failed assertion must not write into a dead frame. */
static reports rep;

static void on_done(void *arg) {
    ((reports *)arg)->done = 1;
}

static void on_record(void *ud, void *item, int status, const char *reason) {
    reports *r = ud;
    if (!pthread_equal(pthread_self(), loop_thread)) r->off_thread++;
    intptr_t i = (intptr_t)item - 1;
    if (i < 0 || i >= MAXREC) {
        r->bad_item++;
        return;
    }
    r->calls++;
    r->seen[i]++;
    r->status[i] = status;
    if (status) {
        r->refused++;
        snprintf(r->reason, sizeof r->reason, "%s", reason ? reason : "(null)");
    } else {
        r->delivered++;
    }
    if (r->close_at && r->calls == r->close_at) jn_kafka_sink_close(r->s, on_done, r);
}

/* ---- conditions to run the loop until ---------------------------------------------------- */

static int target;
static int reached(void) {
    return rep.calls >= target;
}
static int is_done(void) {
    return rep.done;
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    jn_log_setup(JN_LOG_ERROR, JN_LOG_TEXT); /* the retries warn, as they should */
    memset(&rep, 0, sizeof rep);
    /* One partition, so the order of everything written is the order in the log. */
    if (mock_setup(1) != 0) return -1;
    return rd_kafka_mock_topic_create(mock, TOPIC, 1, 1) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    return mock_teardown(); /* UV_EBUSY: the sink left a handle open */
}

static jn_kafka_sink *make(int message_timeout_ms, int queue_max, const char *const *properties) {
    jn_kafka_producer_opts o = {
        .client.brokers = rd_kafka_mock_cluster_bootstraps(mock),
        .client.client_id = "test_sink_kafka",
        .compression = "lz4",
        .linger_ms = 5,
        .queue_max_messages = queue_max,
        .message_timeout_ms = message_timeout_ms,
        .client.properties = properties,
    };
    char *err = NULL;
    rep.s = jn_kafka_sink_new(&loop, &o, TOPIC, on_record, &rep, &err);
    if (!rep.s) print_error("jn_kafka_sink_new: %s\n", err);
    free(err);
    assert_non_null(rep.s);
    return rep.s;
}

static void close_and_wait(jn_kafka_sink *s) {
    jn_kafka_sink_close(s, on_done, &rep);
    assert_true(run_until(is_done, 5000));
}

/* Record i: {"n":i,"pad":"..."} with pad bytes of padding, key "k<i % 7>". */
static void add(jn_kafka_sink *s, int i, size_t pad) {
    char *json = malloc(pad + 64);
    assert_non_null(json);
    int n = snprintf(json, 64, "{\"n\":%d,\"pad\":\"", i);
    memset(json + n, 'x', pad);
    memcpy(json + n + pad, "\"}", 2);
    char key[16];
    int klen = snprintf(key, sizeof key, "k%d", i % 7);
    jn_kafka_sink_add(s, json, (size_t)n + pad + 2, key, (size_t)klen, (void *)(intptr_t)(i + 1));
    /* The sink copied both. */
    memset(json, 0, (size_t)n + pad + 2);
    free(json);
}

typedef struct {
    int *ns, max;
} numbers;

/* A record read back: its number goes to the list, and its key must be the one made
 * from that number. */
static void take_number(const rd_kafka_message_t *m, int nth, void *ctx) {
    numbers *out = ctx;
    int n = -1;
    char json[32];
    size_t l = m->len < sizeof json - 1 ? m->len : sizeof json - 1;
    memcpy(json, m->payload, l);
    json[l] = 0;
    sscanf(json, "{\"n\":%d", &n);
    char key[16];
    int klen = snprintf(key, sizeof key, "k%d", n % 7);
    assert_int_equal(m->key_len, (size_t)klen);
    assert_memory_equal(m->key, key, (size_t)klen);
    if (nth < out->max) out->ns[nth] = n;
}

/* The record numbers in log order, into ns; returns how many. */
static int read_back(int *ns, int max, int expect) {
    numbers out = {ns, max};
    return mock_read(TOPIC, expect, take_number, &out);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_delivered_reported(void **state) {
    (void)state;
    jn_kafka_sink *s = make(5000, 1000, NULL);
    for (int i = 0; i < 100; i++)
        add(s, i, 20);
    assert_int_equal(rep.calls, 0); /* never from inside add */
    assert_int_equal(jn_kafka_sink_pending(s), 100);
    jn_kafka_sink_flush(s); /* nothing waits in the sink: changes nothing */
    target = 100;
    assert_true(run_until(reached, 5000));
    run_for(100);
    assert_int_equal(rep.calls, 100);
    assert_int_equal(rep.delivered, 100);
    assert_int_equal(rep.off_thread + rep.bad_item, 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(rep.seen[i], 1);
    assert_int_equal(jn_kafka_sink_pending(s), 0);
    int ns[MAXREC];
    assert_int_equal(read_back(ns, MAXREC, 100), 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(ns[i], i);
    close_and_wait(s);
}

/* Too large for message.max.bytes: refused by librdkafka inside add, reported on a later
 * turn with a reason; the records around it are delivered. The same refusal from the
 * broker (in the delivery report) is reported alike. */
static void test_too_large_refused(void **state) {
    (void)state;
    static const char *const properties[] = {"message.max.bytes", "1000", NULL};
    jn_kafka_sink *s = make(5000, 1000, properties);
    add(s, 0, 10);
    add(s, 1, 2000);
    add(s, 2, 10);
    assert_int_equal(rep.calls, 0);
    assert_int_equal(jn_kafka_sink_pending(s), 3);
    target = 3;
    assert_true(run_until(reached, 5000));
    assert_int_equal(rep.status[0], 0);
    assert_int_equal(rep.status[1], JN_EKAFKA(RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE));
    assert_int_equal(rep.status[2], 0);
    assert_non_null(strstr(rep.reason, TOPIC));
    assert_non_null(strstr(rep.reason, "MSG_SIZE_TOO_LARGE"));
    print_message("reason: %s\n", rep.reason);

    rd_kafka_mock_push_request_errors(mock, API_PRODUCE, 1, RD_KAFKA_RESP_ERR_INVALID_RECORD);
    add(s, 3, 10);
    target = 4;
    assert_true(run_until(reached, 5000));
    assert_int_equal(rep.status[3], JN_EKAFKA(RD_KAFKA_RESP_ERR_INVALID_RECORD));
    assert_non_null(strstr(rep.reason, "INVALID_RECORD"));
    /* And the producer goes on. */
    add(s, 4, 10);
    target = 5;
    assert_true(run_until(reached, 5000));
    run_for(100);
    assert_int_equal(rep.status[4], 0);
    assert_int_equal(rep.calls, 5);
    assert_int_equal(rep.refused, 2);
    assert_int_equal(rep.off_thread + rep.bad_item, 0);
    assert_int_equal(jn_kafka_sink_pending(s), 0);
    close_and_wait(s);
}

/* librdkafka's queue holds 5 messages: the other records wait in the sink and still all
 * arrive, in the order they were added, none twice. */
static void test_queue_full_keeps_order(void **state) {
    (void)state;
    jn_kafka_sink *s = make(5000, 5, NULL);
    for (int i = 0; i < 300; i++)
        add(s, i, 50);
    assert_int_equal(rep.calls, 0);
    assert_int_equal(jn_kafka_sink_pending(s), 300);
    target = 300;
    assert_true(run_until(reached, 20000));
    run_for(100);
    assert_int_equal(rep.delivered, 300);
    long produced, retries;
    jn_kafka_sink_counts(s, &produced, &retries);
    assert_int_equal(produced, 300);
    assert_int_equal(retries, 0);
    assert_int_equal(rep.off_thread + rep.bad_item, 0);
    for (int i = 0; i < 300; i++)
        assert_int_equal(rep.seen[i], 1);
    int ns[MAXREC];
    assert_int_equal(read_back(ns, MAXREC, 300), 300);
    for (int i = 0; i < 300; i++)
        assert_int_equal(ns[i], i);
    close_and_wait(s);
}

/* Brokers down for longer than message_timeout_ms: librdkafka gives the records back
 * (_MSG_TIMED_OUT), the sink produces them again, never reports a failure, and once the
 * broker is back every record is delivered once. */
static void test_timed_out_records_produced_again(void **state) {
    (void)state;
    static const char *const properties[] = {"reconnect.backoff.max.ms", "200", NULL};
    jn_kafka_sink *s = make(500, 1000, properties);
    /* Warm up: connection, metadata, producer id. */
    add(s, 0, 10);
    target = 1;
    assert_true(run_until(reached, 5000));
    assert_int_equal(rep.status[0], 0);

    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    for (int i = 1; i <= 10; i++)
        add(s, i, 10);
    run_for(2000); /* four message timeouts */
    assert_int_equal(rep.calls, 1);
    assert_int_equal(jn_kafka_sink_pending(s), 10);
    assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), 0);
    target = 11;
    assert_true(run_until(reached, 15000));
    run_for(300);
    assert_int_equal(rep.calls, 11);
    assert_int_equal(rep.delivered, 11);
    long produced, retries;
    jn_kafka_sink_counts(s, &produced, &retries);
    print_message("%ld produced, %ld of them again after a timeout\n", produced, retries);
    assert_true(retries >= 10);
    assert_int_equal(produced, 11 + retries);
    assert_int_equal(rep.off_thread + rep.bad_item, 0);
    int ns[MAXREC], seen[11] = {0};
    assert_int_equal(read_back(ns, MAXREC, 11), 11);
    for (int i = 0; i < 11; i++) {
        assert_true(ns[i] >= 0 && ns[i] <= 10);
        seen[ns[i]]++;
    }
    for (int i = 0; i < 11; i++)
        assert_int_equal(seen[i], 1);
    close_and_wait(s);
}

/* Close with records everywhere (in librdkafka, waiting in the sink behind a full queue,
 * refused and not yet reported): none is reported, everything is freed. */
static void test_close_reports_nothing(void **state) {
    (void)state;
    static const char *const properties[] = {"message.max.bytes", "1000", NULL};
    jn_kafka_sink *s = make(30000, 5, properties);
    add(s, 0, 10);
    target = 1;
    assert_true(run_until(reached, 5000));
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mock, 1, 5000), 0);
    add(s, 1, 2000); /* refused, to be reported next turn */
    for (int i = 2; i < 40; i++)
        add(s, i, 10);
    assert_int_equal(jn_kafka_sink_pending(s), 39);
    jn_kafka_sink_close(s, on_done, &rep);
    assert_true(run_until(is_done, 5000));
    assert_int_equal(rep.calls, 1);
    assert_int_equal(rep.off_thread + rep.bad_item, 0);
}

/* The owner closes the sink from inside its callback: no report after that one. */
static void test_close_from_callback(void **state) {
    (void)state;
    jn_kafka_sink *s = make(5000, 1000, NULL);
    rep.close_at = 10;
    for (int i = 0; i < 50; i++)
        add(s, i, 10);
    assert_true(run_until(is_done, 5000));
    run_for(100);
    assert_int_equal(rep.calls, 10);
    assert_int_equal(rep.off_thread + rep.bad_item, 0);
}

static void test_bad_settings_rejected(void **state) {
    (void)state;
    jn_kafka_producer_opts o = {
        .client.brokers = "127.0.0.1:9",
        .queue_max_messages = 10,
        .message_timeout_ms = 1000,
    };
    char *err = NULL;
    assert_null(jn_kafka_sink_new(&loop, &o, "", on_record, &rep, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "topic"));
    free(err);
    err = NULL;
    assert_null(jn_kafka_sink_new(&loop, &o, NULL, on_record, &rep, &err));
    assert_non_null(err);
    free(err);
    err = NULL;
    o.compression = "bogus";
    assert_null(jn_kafka_sink_new(&loop, &o, TOPIC, on_record, &rep, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "compression.type=bogus"));
    free(err);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_delivered_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_too_large_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_keeps_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timed_out_records_produced_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_reports_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_settings_rejected, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
