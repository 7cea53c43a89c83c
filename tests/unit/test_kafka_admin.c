/* jn_kafka_topic_ensure (kafka_admin.c) against librdkafka's mock cluster.
 *
 * The mock cluster of librdkafka 2.0.2 implements no admin API: it has no CreateTopics
 * handler, and its metadata names broker 0, which does not exist, as the controller, so
 * librdkafka waits for a controller until the request times out (_TIMED_OUT, "Failed
 * while waiting for controller"). The successful create and the lost creation race
 * cannot be run here. Everything up to the create can: the metadata lookups, the
 * partition-count comparison, the replication factor chosen, unreachable brokers,
 * argument checks, and that the caller is answered on the loop, later, from copies of
 * its arguments. */
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

#define STREAM "orders"

typedef struct {
    int calls, off_thread;
    int err, partitions;
    char reason[2048];
} outcome;

/* Static: a callback arriving after a failed assertion must not write into a dead frame. */
static outcome out;

static void on_ensured(void *ud, int err, int partitions, const char *reason) {
    outcome *o = ud;
    if (!pthread_equal(pthread_self(), loop_thread)) o->off_thread++;
    o->calls++;
    o->err = err;
    o->partitions = partitions;
    snprintf(o->reason, sizeof o->reason, "%s", reason ? reason : "(null)");
}

static int setup_brokers(int brokers) {
    jn_log_setup(JN_LOG_WARN, JN_LOG_TEXT);
    memset(&out, 0, sizeof out);
    if (mock_setup(brokers) != 0) return -1;
    if (rd_kafka_mock_topic_create(mock, STREAM, 6, brokers)) return -1;
    if (rd_kafka_mock_topic_create(mock, "orders-changelog", 6, 1)) return -1;
    if (rd_kafka_mock_topic_create(mock, "orders-old-changelog", 4, 1)) return -1;
    return 0;
}

static int setup(void **state) {
    (void)state;
    return setup_brokers(1);
}

static int setup4(void **state) {
    (void)state;
    return setup_brokers(4);
}

static int teardown(void **state) {
    (void)state;
    return mock_teardown(); /* UV_EBUSY: a request was not answered */
}

/* Runs the loop until the answer came; the pending work request keeps the loop alive. */
static void wait_answer(int max_ms) {
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    while (out.calls == 0 && uv_now(&loop) - start < (uint64_t)max_ms)
        uv_run(&loop, UV_RUN_ONCE);
    assert_int_equal(out.calls, 1);
    assert_int_equal(out.off_thread, 0);
}

static void ensure(const char *topic, const char *like, const char *const *configs) {
    jn_kafka_topic_ensure(
        &loop, &(jn_kafka_client_opts){.brokers = rd_kafka_mock_cluster_bootstraps(mock)}, topic,
        like, configs, on_ensured, &out);
    /* Never answered from inside the call. */
    assert_int_equal(out.calls, 0);
    wait_answer(20000);
}

static void assert_reason_has(const char *s) {
    if (!strstr(out.reason, s)) print_error("reason \"%s\" lacks \"%s\"\n", out.reason, s);
    assert_non_null(strstr(out.reason, s));
}

/* ---- tests ----------------------------------------------------------------------------- */

static void test_existing_topic_with_same_count(void **state) {
    (void)state;
    ensure("orders-changelog", STREAM, NULL);
    assert_int_equal(out.err, 0);
    assert_int_equal(out.partitions, 6);
    assert_reason_has("exists");
}

/* A person reading the reason learns both counts and what to do. */
static void test_existing_topic_with_other_count(void **state) {
    (void)state;
    ensure("orders-old-changelog", STREAM, NULL);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR_INVALID_PARTITIONS));
    assert_int_equal(out.partitions, 0);
    assert_reason_has("\"orders-old-changelog\" has 4 partition(s)");
    assert_reason_has("\"orders\" has 6");
    assert_reason_has("Delete \"orders-old-changelog\"");
}

static void test_like_topic_missing(void **state) {
    (void)state;
    ensure("orders-changelog", "no-such-stream", NULL);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
    assert_reason_has("\"no-such-stream\" does not exist");
}

/* The mock cannot create topics (see the top): the create is attempted, with the stream's
 * partition count and replication min(3, brokers), and its refusal reported. The second
 * attempt checks that the lookup did not create the topic by the way: the mock, like a
 * broker with auto.create.topics.enable, creates a topic asked for by name. */
static void expect_create_attempt(int replication) {
    static const char *const configs[] = {"cleanup.policy=compact", "min.insync.replicas=1", NULL};
    ensure("orders-new-changelog", STREAM, configs);
    assert_int_not_equal(out.err, 0);
    assert_int_equal(out.partitions, 0);
    char want[128];
    snprintf(want, sizeof want,
             "creating topic \"orders-new-changelog\" (6 partition(s), replication factor %d)",
             replication);
    assert_reason_has(want);
    print_message("mock cluster's answer to CreateTopics: %s (%s)\n", jn_kafka_errname(out.err),
                  out.reason);
    /* Still missing: the lookup asked for all topics, not this one by name. */
    memset(&out, 0, sizeof out);
    ensure("orders-other", "orders-new-changelog", NULL);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
}

static void test_missing_topic_create_attempted(void **state) {
    (void)state;
    expect_create_attempt(1);
}

static void test_replication_factor_at_most_three(void **state) {
    (void)state;
    expect_create_attempt(3);
}

static void test_brokers_unreachable(void **state) {
    (void)state;
    for (int b = 1; b <= 4; b++)
        rd_kafka_mock_broker_set_down(mock, b);
    ensure("orders-changelog", STREAM, NULL);
    assert_int_not_equal(out.err, 0);
    assert_reason_has("cannot reach the brokers");
    assert_reason_has(rd_kafka_mock_cluster_bootstraps(mock));
}

/* Settings are checked before anything is asked of Kafka, even when the topic exists. */
static void test_bad_arguments(void **state) {
    (void)state;
    static const char *const bad_config[] = {"cleanup.policy", NULL};
    ensure("orders-changelog", STREAM, bad_config);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG));
    assert_reason_has("\"cleanup.policy\" for \"orders-changelog\" is not key=value");

    memset(&out, 0, sizeof out);
    ensure(STREAM, STREAM, NULL);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG));
    assert_reason_has("name of its own");

    memset(&out, 0, sizeof out);
    ensure("", STREAM, NULL);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG));

    memset(&out, 0, sizeof out);
    static const char *const secret[] = {"sasl.oauthbearer.method", "hunter2", NULL};
    jn_kafka_topic_ensure(&loop,
                          &(jn_kafka_client_opts){.brokers = "127.0.0.1:9", .properties = secret},
                          "orders-changelog", STREAM, NULL, on_ensured, &out);
    wait_answer(5000);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG));
    assert_reason_has("(hidden)");
    assert_null(strstr(out.reason, "hunter2"));

    memset(&out, 0, sizeof out);
    static const char *const unknown[] = {"no.such.setting", "1", NULL};
    jn_kafka_topic_ensure(&loop,
                          &(jn_kafka_client_opts){.brokers = "127.0.0.1:9", .properties = unknown},
                          "orders-changelog", STREAM, NULL, on_ensured, &out);
    wait_answer(5000);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG));
    assert_reason_has("no.such.setting");
}

/* The caller's strings may go away as soon as the call returns. The properties reach the
 * client:
 * with test.mock.num.brokers it talks to a mock cluster of its own instead of the made-up
 * broker list, an empty one, where the stream is missing. */
static void test_arguments_copied_and_properties_applied(void **state) {
    (void)state;
    char brokers[64], topic[64], like[64], cfg[64], name[64], value[64];
    snprintf(brokers, sizeof brokers, "%s", rd_kafka_mock_cluster_bootstraps(mock));
    snprintf(topic, sizeof topic, "orders-changelog");
    snprintf(like, sizeof like, STREAM);
    snprintf(cfg, sizeof cfg, "cleanup.policy=compact");
    snprintf(name, sizeof name, "socket.timeout.ms");
    snprintf(value, sizeof value, "5000");
    const char *configs[] = {cfg, NULL};
    const char *properties[] = {name, value, NULL};
    jn_kafka_topic_ensure(&loop,
                          &(jn_kafka_client_opts){.brokers = brokers, .properties = properties},
                          topic, like, configs, on_ensured, &out);
    memset(brokers, 'x', sizeof brokers - 1);
    memset(topic, 'x', sizeof topic - 1);
    memset(like, 'x', sizeof like - 1);
    memset(cfg, 'x', sizeof cfg - 1);
    memset(name, 'x', sizeof name - 1);
    memset(value, 'x', sizeof value - 1);
    configs[0] = properties[0] = properties[1] = NULL;
    wait_answer(20000);
    assert_int_equal(out.err, 0);
    assert_int_equal(out.partitions, 6);

    memset(&out, 0, sizeof out);
    static const char *const own_mock[] = {"test.mock.num.brokers", "1", NULL};
    jn_kafka_topic_ensure(
        &loop, &(jn_kafka_client_opts){.brokers = "no-such-host.invalid:1", .properties = own_mock},
        "orders-changelog", STREAM, NULL, on_ensured, &out);
    wait_answer(20000);
    assert_int_equal(out.err, JN_EKAFKA(RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART));
    assert_reason_has("\"orders\" does not exist");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_existing_topic_with_same_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_existing_topic_with_other_count, setup, teardown),
        cmocka_unit_test_setup_teardown(test_like_topic_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_topic_create_attempted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_replication_factor_at_most_three, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_brokers_unreachable, setup4, teardown),
        cmocka_unit_test_setup_teardown(test_bad_arguments, setup, teardown),
        cmocka_unit_test_setup_teardown(test_arguments_copied_and_properties_applied, setup,
                                        teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
