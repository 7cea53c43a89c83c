/* The producer glue in kafka_producer.c, against librdkafka's built-in mock cluster. The mock
 * is only used to inject faults (produce errors, a broker going down, a slow broker);
 * volume and real-broker behaviour are the end-to-end tests' job. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kafka_mock.h"
#include "log.h"

#define TOPIC       "t"
#define MAXMSG      200
#define API_PRODUCE 0 /* Kafka protocol ApiKey of ProduceRequest */

/* ---- what the delivery callback saw ----------------------------------------------------- */

typedef struct {
    int count, failed, off_thread, bad_opaque;
    int seen[MAXMSG]; /* reports per message, indexed by opaque - 1 */
    int err[MAXMSG];
    char topic[32];
    /* optional: close the producer from inside the callback after this many reports */
    jn_kafka_producer *p;
    int close_at;
    int close_timeout_ms;
    int produce_after_close; /* what jn_kafka_produce said right after that close */
    int done;
} reports;

/* Static rather than on a test's stack: after a failed assertion the producer lives on,
 * and a report served later must not write into a dead frame. */
static reports rep;

static void on_done(void *arg) {
    ((reports *)arg)->done = 1;
}

static void on_report(void *ud, void *opaque, int err, const char *topic, int32_t partition,
                      int64_t offset) {
    (void)partition;
    (void)offset;
    reports *r = ud;
    if (!pthread_equal(pthread_self(), loop_thread)) r->off_thread++;
    intptr_t i = (intptr_t)opaque - 1;
    if (i >= 0 && i < MAXMSG) {
        r->seen[i]++;
        r->err[i] = err;
    } else {
        r->bad_opaque++;
    }
    r->count++;
    if (err) r->failed++;
    snprintf(r->topic, sizeof r->topic, "%s", topic);
    if (r->close_at && r->count == r->close_at) {
        jn_kafka_producer_close(r->p, r->close_timeout_ms, on_done, r);
        r->produce_after_close = jn_kafka_produce(r->p, TOPIC, "x", 1, "x", 1, NULL, NULL);
    }
}

/* ---- conditions to run the loop until ---------------------------------------------------- */

static int target;
static jn_kafka_producer *watched; /* the producer connected() and disconnected() ask */
static int reached(void) {
    return rep.count >= target;
}
static int is_done(void) {
    return rep.done;
}
static int connected(void) {
    return jn_kafka_producer_connected(watched);
}
static int disconnected(void) {
    return !jn_kafka_producer_connected(watched);
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    jn_log_setup(JN_LOG_WARN, JN_LOG_TEXT);
    memset(&rep, 0, sizeof rep);
    /* One partition so offsets and order are easy to reason about. */
    if (mock_setup(1) != 0) return -1;
    return rd_kafka_mock_topic_create(mock, TOPIC, 1, 1) ? -1 : 0;
}

static int teardown(void **state) {
    (void)state;
    return mock_teardown();
}

static jn_kafka_producer *make(reports *r, int message_timeout_ms, int queue_max,
                               const char *const *properties) {
    jn_kafka_producer_opts o = {
        .client.brokers = rd_kafka_mock_cluster_bootstraps(mock),
        .client.client_id = "test_kafka",
        .compression = "lz4",
        .linger_ms = 5,
        .queue_max_messages = queue_max,
        .message_timeout_ms = message_timeout_ms,
        .client.properties = properties,
    };
    char *err = NULL;
    jn_kafka_producer *p = jn_kafka_producer_new(&loop, &o, on_report, r, &err);
    if (!p) print_error("jn_kafka_producer_new: %s\n", err);
    free(err);
    assert_non_null(p);
    return p;
}

static void close_and_wait(jn_kafka_producer *p, reports *r, int timeout_ms) {
    jn_kafka_producer_close(p, timeout_ms, on_done, r);
    assert_true(run_until(is_done, timeout_ms + 5000));
}

static int produce(jn_kafka_producer *p, int i) {
    char key[16], value[32];
    snprintf(key, sizeof key, "k%d", i);
    snprintf(value, sizeof value, "value %d", i);
    static const char *const headers[] = {"source", "crm", "trace-id", "abc123", NULL};
    return jn_kafka_produce(p, TOPIC, key, strlen(key), value, strlen(value), headers,
                            (void *)(intptr_t)(i + 1));
}

/* The first message read back: key, value and headers as produce() wrote them. */
static void check_first(const rd_kafka_message_t *m, int nth, void *ctx) {
    (void)ctx;
    if (nth > 0) return;
    assert_int_equal(m->key_len, 2);
    assert_memory_equal(m->key, "k0", 2);
    assert_int_equal(m->len, strlen("value 0"));
    assert_memory_equal(m->payload, "value 0", m->len);
    rd_kafka_headers_t *h = NULL;
    assert_int_equal(rd_kafka_message_headers(m, &h), 0);
    assert_int_equal(rd_kafka_header_cnt(h), 2);
    const void *v;
    size_t vlen;
    assert_int_equal(rd_kafka_header_get_last(h, "source", &v, &vlen), 0);
    assert_int_equal(vlen, 3);
    assert_memory_equal(v, "crm", 3);
    assert_int_equal(rd_kafka_header_get_last(h, "trace-id", &v, &vlen), 0);
    assert_int_equal(vlen, 6);
    assert_memory_equal(v, "abc123", 6);
}

/* For a check that nothing more arrives: produces message `sentinel` and runs the loop
 * until its report came (at most 5 s). The topic has one partition, whose messages
 * librdkafka reports in the order they were produced: every report due before the
 * sentinel's, a repeated one included, has come by then. */
static int sentinel_at;
static int sentinel_seen(void) {
    return rep.seen[sentinel_at] > 0;
}

static void run_until_sentinel_reported(jn_kafka_producer *p, int sentinel) {
    assert_int_equal(produce(p, sentinel), 0);
    sentinel_at = sentinel;
    assert_true(run_until(sentinel_seen, 5000));
    assert_int_equal(rep.seen[sentinel], 1);
    assert_int_equal(rep.err[sentinel], 0);
}

/* How many messages the topic holds, the first one checked. */
static int read_back(int expect) {
    return mock_read(TOPIC, expect, check_first, NULL);
}

/* ---- tests ------------------------------------------------------------------------------ */

static void test_hundred_messages_delivered(void **state) {
    (void)state;
    reports *r = &rep;
    jn_kafka_producer *p = make(r, 5000, 1000, NULL);
    for (int i = 0; i < 100; i++)
        assert_int_equal(produce(p, i), 0);
    assert_int_equal(jn_kafka_producer_inflight(p), 100);
    target = 100;
    assert_true(run_until(reached, 5000));
    run_until_sentinel_reported(p, 100); /* nothing more may arrive */
    assert_int_equal(r->count, 100 + 1);
    assert_int_equal(r->failed, 0);
    assert_int_equal(r->off_thread, 0);
    assert_int_equal(r->bad_opaque, 0);
    for (int i = 0; i < 100; i++)
        assert_int_equal(r->seen[i], 1);
    assert_string_equal(r->topic, TOPIC);
    assert_int_equal(jn_kafka_producer_inflight(p), 0);
    assert_true(jn_kafka_producer_connected(p));
    assert_int_equal(read_back(100 + 1), 100 + 1);
    close_and_wait(p, r, 1000);
}

static void test_retriable_error_retried(void **state) {
    (void)state;
    reports *r = &rep;
    jn_kafka_producer *p = make(r, 5000, 1000, NULL);
    /* The next three ProduceRequests fail as if leadership had moved. */
    assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(
                         mock, 1, API_PRODUCE, 3, RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0,
                         RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0,
                         RD_KAFKA_RESP_ERR_NOT_LEADER_FOR_PARTITION, 0),
                     0);
    assert_int_equal(produce(p, 0), 0);
    target = 1;
    assert_true(run_until(reached, 5000));
    size_t left = 99;
    assert_int_equal(rd_kafka_mock_broker_error_stack_cnt(mock, 1, API_PRODUCE, &left), 0);
    assert_int_equal(left, 0); /* all three errors were hit: librdkafka really retried */
    run_until_sentinel_reported(p, 1);
    assert_int_equal(r->count, 1 + 1); /* one report for the retried message */
    assert_int_equal(r->seen[0], 1);
    assert_int_equal(r->err[0], 0);
    assert_int_equal(read_back(1 + 1), 1 + 1); /* and stored it once, before the sentinel */
    close_and_wait(p, r, 1000);
}

static void test_timeout_gives_failed_report(void **state) {
    (void)state;
    reports *r = &rep;
    jn_kafka_producer *p = make(r, 500, 1000, NULL);
    /* Warm up until one message gets through: the first needs a connection, metadata and
     * a producer id, which on a loaded machine can take longer than the 500 ms allowed. */
    int sent = 0, ok = 0;
    while (!ok && sent < 5) {
        assert_int_equal(produce(p, sent), 0);
        target = ++sent;
        assert_true(run_until(reached, 5000));
        ok = r->err[sent - 1] == 0;
    }
    assert_true(ok);
    assert_true(jn_kafka_producer_connected(p));

    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    assert_int_equal(produce(p, 10), 0);
    target = sent + 1;
    assert_true(run_until(reached, 5000));
    assert_int_equal(r->seen[10], 1);
    assert_int_equal(r->err[10], JN_EKAFKA(RD_KAFKA_RESP_ERR__MSG_TIMED_OUT));
    watched = p;
    assert_true(run_until(disconnected, 3000));
    assert_int_equal(jn_kafka_producer_inflight(p), 0);
    /* With no traffic at all, the broker coming back is still noticed. */
    assert_int_equal(rd_kafka_mock_broker_set_up(mock, 1), 0);
    assert_true(run_until(connected, 5000));
    close_and_wait(p, r, 100);
    assert_int_equal(r->count, sent + 1);
}

static void test_queue_full_returned(void **state) {
    (void)state;
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    reports *r = &rep;
    jn_kafka_producer *p = make(r, 30000, 10, NULL);
    for (int i = 0; i < 10; i++)
        assert_int_equal(produce(p, i), 0);
    assert_int_equal(produce(p, 10), JN_KAFKA_QUEUE_FULL);
    assert_int_equal(jn_kafka_producer_inflight(p), 10);
    assert_false(jn_kafka_producer_connected(p));
    /* Close fails the ten queued messages through the callback, once each. */
    close_and_wait(p, r, 100);
    assert_int_equal(r->count, 10);
    assert_int_equal(r->failed, 10);
    for (int i = 0; i < 10; i++) {
        assert_int_equal(r->seen[i], 1);
        assert_int_equal(r->err[i], JN_EKAFKA(RD_KAFKA_RESP_ERR__PURGE_QUEUE));
    }
    assert_int_equal(r->seen[10], 0);
}

static void expect_rejected(const char *compression, const char *const *properties,
                            const char *must_mention) {
    jn_kafka_producer_opts o = {
        .client.brokers = "127.0.0.1:9",
        .compression = compression,
        .queue_max_messages = 10,
        .message_timeout_ms = 1000,
        .client.properties = properties,
    };
    char *err = NULL;
    assert_null(jn_kafka_producer_new(&loop, &o, on_report, &rep, &err));
    assert_refusal(err, must_mention);
}

static void test_bad_settings_rejected(void **state) {
    (void)state;
    expect_rejected("bogus", NULL, "compression.type=bogus");
    const char *const unknown[] = {"no.such.setting", "1", NULL};
    expect_rejected("lz4", unknown, "no.such.setting");
    /* Accepted on its own, refused by rd_kafka_new together with idempotence. */
    const char *const acks1[] = {"acks", "1", NULL};
    expect_rejected("lz4", acks1, "acks");
    /* A secret's value must not end up in the log, even where librdkafka's reason
     * echoes it. */
    const char *const secret[] = {"sasl.oauthbearer.method", "hunter2", NULL};
    expect_rejected("lz4", secret, "sasl.oauthbearer.method=(hidden)");
}

/* The properties reach librdkafka, after (so over) our own settings: with librdkafka's own mock
 * cluster the made-up broker list is replaced and the message gets through. */
static void test_properties_applied(void **state) {
    (void)state;
    const char *const properties[] = {"test.mock.num.brokers", "1", NULL};
    jn_kafka_producer_opts o = {
        .client.brokers = "no-such-host.invalid:1",
        .compression = "zstd",
        .queue_max_messages = 10,
        .message_timeout_ms = 5000,
        .client.properties = properties,
    };
    char *err = NULL;
    reports *r = &rep;
    jn_kafka_producer *p = jn_kafka_producer_new(&loop, &o, on_report, r, &err);
    assert_non_null(p);
    assert_int_equal(produce(p, 0), 0);
    target = 1;
    assert_true(run_until(reached, 5000));
    assert_int_equal(r->err[0], 0);
    close_and_wait(p, r, 1000);
}

static void test_close_purges_in_flight(void **state) {
    (void)state;
    reports *r = &rep;
    jn_kafka_producer *p = make(r, 30000, 1000, NULL);
    assert_int_equal(produce(p, 0), 0); /* connect, get a producer id */
    target = 1;
    assert_true(run_until(reached, 5000));
    /* A slow broker: the next requests are on the wire when close gives up on them. */
    assert_int_equal(rd_kafka_mock_broker_set_rtt(mock, 1, 5000), 0);
    for (int i = 1; i <= 20; i++)
        assert_int_equal(produce(p, i), 0);
    run_for(200);
    assert_int_equal(r->count, 1);
    uint64_t start = uv_now(&loop);
    close_and_wait(p, r, 300);
    assert_true(uv_now(&loop) - start < 3000);
    assert_int_equal(r->count, 21);
    int on_the_wire = 0;
    for (int i = 1; i <= 20; i++) {
        assert_int_equal(r->seen[i], 1);
        assert_true(r->err[i] == JN_EKAFKA(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT) ||
                    r->err[i] == JN_EKAFKA(RD_KAFKA_RESP_ERR__PURGE_QUEUE));
        on_the_wire += r->err[i] == JN_EKAFKA(RD_KAFKA_RESP_ERR__PURGE_INFLIGHT);
    }
    assert_true(on_the_wire > 0); /* the in-flight purge really was exercised */
}

static void test_close_waits_for_reports(void **state) {
    (void)state;
    reports *r = &rep;
    jn_kafka_producer *p = make(r, 5000, 1000, NULL);
    r->p = p;
    r->close_at = 5; /* close from inside the fifth report */
    r->close_timeout_ms = 5000;
    for (int i = 0; i < 30; i++)
        assert_int_equal(produce(p, i), 0);
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    /* The 25 messages accepted before the close must still be delivered, and close must
     * finish as soon as they are, not sit out its 5 s timeout. */
    assert_true(run_until(is_done, 5000));
    assert_true(uv_now(&loop) - start < 3000);
    assert_int_equal(r->count, 30);
    assert_int_equal(r->failed, 0);
    for (int i = 0; i < 30; i++)
        assert_int_equal(r->seen[i], 1);
    assert_int_equal(r->produce_after_close, JN_EKAFKA(RD_KAFKA_RESP_ERR__DESTROY));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_hundred_messages_delivered, setup, teardown),
        cmocka_unit_test_setup_teardown(test_retriable_error_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_timeout_gives_failed_report, setup, teardown),
        cmocka_unit_test_setup_teardown(test_queue_full_returned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_settings_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_properties_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_purges_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_waits_for_reports, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
