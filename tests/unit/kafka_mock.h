/* What the unit tests of the Kafka glue share: the loop a test runs its clients on,
 * librdkafka's mock cluster (only for injecting faults; volume is the end-to-end tests'
 * job), and running the loop until a condition holds. For one test file each, like
 * redis_server.h: everything is static. */
#ifndef JN_TEST_KAFKA_MOCK_H
#define JN_TEST_KAFKA_MOCK_H

#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>

static uv_loop_t loop;
static rd_kafka_t *mock_owner; /* a mock cluster hangs off some rd_kafka_t */
static rd_kafka_mock_cluster_t *mock;
static pthread_t loop_thread; /* callbacks must come on it */

/* A fresh loop and a mock cluster of `brokers` brokers, without topics; -1 on failure. */
static inline int mock_setup(int brokers) {
    loop_thread = pthread_self();
    if (uv_loop_init(&loop) != 0) return -1;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_conf_set_log_cb(conf, NULL); /* it has no brokers and would say so */
    char errstr[256];
    mock_owner = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    if (!mock_owner) return -1;
    mock = rd_kafka_mock_cluster_new(mock_owner, brokers);
    return mock ? 0 : -1;
}

/* Closes the loop, which fails with UV_EBUSY (the handles left printed) when a client
 * under test left one open, and the mock cluster. */
static inline int mock_teardown(void) {
    uv_run(&loop, UV_RUN_NOWAIT);
    int rc = uv_loop_close(&loop);
    if (rc != 0) {
        print_error("uv_loop_close: %s; handles left:\n", uv_strerror(rc));
        uv_print_all_handles(&loop, stderr);
    }
    rd_kafka_mock_cluster_destroy(mock);
    rd_kafka_destroy(mock_owner);
    return rc;
}

typedef int (*pred_fn)(void);
static struct {
    pred_fn pred;
    uint64_t deadline;
    int met;
} waiter;

static inline void waiter_tick(uv_timer_t *t) {
    if (waiter.pred && waiter.pred()) {
        waiter.met = 1;
        uv_stop(t->loop);
    } else if (uv_now(t->loop) >= waiter.deadline) {
        uv_stop(t->loop);
    }
}

/* Runs the loop until pred() holds (1) or timeout_ms passed (0). The clients' handles
 * keep the loop alive, so a ticking timer decides when to stop. */
static inline int run_until(pred_fn pred, int timeout_ms) {
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    uv_update_time(&loop);
    waiter.pred = pred;
    waiter.deadline = uv_now(&loop) + (uint64_t)timeout_ms;
    waiter.met = pred && pred();
    if (!waiter.met) {
        uv_timer_start(&t, waiter_tick, 5, 5);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return waiter.met;
}

static inline void run_for(int ms) {
    run_until(NULL, ms);
}

/* Reads partition 0 of topic back with a plain consumer (blocking, fine in a test) until
 * expect messages arrived, then a little longer to catch duplicates, calling each with
 * every message and how many came before it. Returns how many there were. */
static inline int mock_read(const char *topic, int expect,
                            void (*each)(const rd_kafka_message_t *m, int nth, void *ctx),
                            void *ctx) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char errstr[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       rd_kafka_mock_cluster_bootstraps(mock), errstr,
                                       sizeof errstr),
                     RD_KAFKA_CONF_OK);
    rd_kafka_conf_set_log_cb(conf, NULL);
    rd_kafka_t *c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof errstr);
    assert_non_null(c);
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(c, topic, NULL);
    assert_int_equal(rd_kafka_consume_start(rkt, 0, RD_KAFKA_OFFSET_BEGINNING), 0);
    int got = 0;
    for (int idle = 0; idle < (got >= expect ? 2 : 20);) {
        rd_kafka_message_t *m = rd_kafka_consume(rkt, 0, 200);
        if (!m) {
            idle++;
            continue;
        }
        if (!m->err) each(m, got++, ctx);
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consume_stop(rkt, 0);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_destroy(c);
    return got;
}

/* err (freed here) is a client's refusal: it names must and shows no secret. */
static inline void assert_refusal(char *err, const char *must) {
    assert_non_null(err);
    if (!strstr(err, must)) print_error("error \"%s\" lacks \"%s\"\n", err, must);
    assert_non_null(strstr(err, must));
    assert_null(strstr(err, "hunter2"));
    free(err);
}

#endif
