/* kafka_conf.c: configurations built from junction's settings (brokers, client id, the
 * client's own settings, the deployment's properties over them), errors naming the
 * property and never a secret's value, and the log handler, which must not print a secret
 * whatever librdkafka writes, at debug too. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "kafka.h"
#include "log.h"

#define SECRET "hunter2-s3cret"

/* The value librdkafka holds for name, or "" when unset; static buffer. */
static const char *value_of(rd_kafka_conf_t *conf, const char *name) {
    static char buf[512];
    size_t n = sizeof buf;
    if (rd_kafka_conf_get(conf, name, buf, &n) != RD_KAFKA_CONF_OK) buf[0] = '\0';
    return buf;
}

/* ---- capturing what junction logs ------------------------------------------------------ */

static int saved_stderr = -1;
static char captured_path[64];

static void capture_start(void) {
    fflush(stderr);
    snprintf(captured_path, sizeof captured_path, "/tmp/jn_kafka_conf_XXXXXX");
    int fd = mkstemp(captured_path);
    assert_true(fd >= 0);
    saved_stderr = dup(2);
    dup2(fd, 2);
    close(fd);
}

/* Everything written to stderr since capture_start; the caller frees it. */
static char *capture_end(void) {
    fflush(stderr);
    dup2(saved_stderr, 2);
    close(saved_stderr);
    FILE *f = fopen(captured_path, "r");
    assert_non_null(f);
    char *text = calloc(1, 1 << 22);
    size_t n = fread(text, 1, (1 << 22) - 1, f);
    text[n] = '\0';
    fclose(f);
    unlink(captured_path);
    return text;
}

/* ---- secret names and values ----------------------------------------------------------- */

static void test_secret_names(void **state) {
    (void)state;
    assert_true(jn_kafka_conf_is_secret("sasl.password"));
    assert_true(jn_kafka_conf_is_secret("ssl.key.password"));
    assert_true(jn_kafka_conf_is_secret("ssl.keystore.password"));
    assert_true(jn_kafka_conf_is_secret("sasl.oauthbearer.client.secret"));
    assert_true(jn_kafka_conf_is_secret("sasl.oauthbearer.config"));
    assert_true(jn_kafka_conf_is_secret("ssl.key.pem"));
    assert_false(jn_kafka_conf_is_secret("sasl.username"));
    assert_false(jn_kafka_conf_is_secret("security.protocol"));
    assert_false(jn_kafka_conf_is_secret("ssl.ca.location"));
}

static void test_secrets_hidden_in_text(void **state) {
    (void)state;
    jn_kafka_secrets s = {0};
    const char *const props[] = {
        "sasl.username", "alice", "sasl.password", "pw", "sasl.oauthbearer.client.secret",
        "pw-longer",     NULL};
    jn_kafka_secrets_add(&s, props);
    assert_int_equal(s.n, 2); /* the user name is no secret */
    char buf[64];
    const char *plain = "nothing to hide here";
    /* No copy when there is nothing to hide. */
    assert_ptr_equal(jn_kafka_secrets_hide(&s, plain, buf, sizeof buf), plain);
    /* The longest secret wins where two start at one place. */
    assert_string_equal(jn_kafka_secrets_hide(&s, "a pw-longer b pw c", buf, sizeof buf),
                        "a (hidden) b (hidden) c");
    /* Cut short rather than overflow, and never half a secret. */
    char small[12];
    const char *cut = jn_kafka_secrets_hide(&s, "xx pw-longer yy", small, sizeof small);
    assert_ptr_equal(cut, small);
    assert_null(strstr(cut, "pw"));
    assert_int_equal(strlen(cut), sizeof small - 1);
    jn_kafka_secrets_free(&s);
    assert_int_equal(s.n, 0);
    /* An empty list, or none at all, hides nothing. */
    assert_ptr_equal(jn_kafka_secrets_hide(&s, plain, buf, sizeof buf), plain);
    assert_ptr_equal(jn_kafka_secrets_hide(NULL, plain, buf, sizeof buf), plain);
}

/* ---- building configurations ----------------------------------------------------------- */

static void test_properties_applied_over_own_settings(void **state) {
    (void)state;
    const char *const own[] = {"linger.ms", "5", "socket.timeout.ms", "30000", NULL};
    const char *const props[] = {"socket.timeout.ms", "7000",           "security.protocol",
                                 "SASL_SSL",          "sasl.mechanism", "SCRAM-SHA-512",
                                 "sasl.password",     SECRET,           NULL};
    jn_kafka_client_opts c = {.brokers = "b1:9092,b2:9092", .client_id = "me", .properties = props};
    jn_kafka_secrets s = {0};
    char *err = NULL;
    rd_kafka_conf_t *conf = jn_kafka_conf_build(&c, "producer", own, 0, &s, &err);
    assert_non_null(conf);
    assert_null(err);
    assert_string_equal(value_of(conf, "bootstrap.servers"), "b1:9092,b2:9092");
    assert_string_equal(value_of(conf, "client.id"), "me");
    assert_string_equal(value_of(conf, "log.queue"), "true");
    assert_string_equal(value_of(conf, "linger.ms"), "5");
    assert_string_equal(value_of(conf, "socket.timeout.ms"), "7000"); /* properties win */
    assert_string_equal(value_of(conf, "security.protocol"), "sasl_ssl");
    assert_string_equal(value_of(conf, "sasl.mechanism"), "SCRAM-SHA-512");
    assert_int_equal(s.n, 1);
    assert_string_equal(s.values[0], SECRET);
    rd_kafka_conf_destroy(conf);
    jn_kafka_secrets_free(&s);

    /* Without brokers or a client id, neither is set: properties alone may give them. */
    jn_kafka_client_opts bare = {0};
    conf = jn_kafka_conf_build(&bare, "consumer", NULL, 0, &s, &err);
    assert_non_null(conf);
    assert_string_equal(value_of(conf, "bootstrap.servers"), "");
    assert_string_equal(value_of(conf, "client.id"), "rdkafka");
    rd_kafka_conf_destroy(conf);
    jn_kafka_secrets_free(&s);
}

static void expect_refused(const char *const *props, const char *must, const char *must_not) {
    jn_kafka_client_opts c = {.brokers = "127.0.0.1:9", .properties = props};
    jn_kafka_secrets s = {0};
    char *err = NULL;
    assert_null(jn_kafka_conf_build(&c, "consumer", NULL, 0, &s, &err));
    assert_non_null(err);
    if (!strstr(err, must)) print_error("\"%s\" lacks \"%s\"\n", err, must);
    assert_non_null(strstr(err, must));
    assert_non_null(strstr(err, "kafka: consumer: "));
    if (must_not) assert_null(strstr(err, must_not));
    free(err);
    jn_kafka_secrets_free(&s);
}

static void test_errors_name_the_property_and_hide_secrets(void **state) {
    (void)state;
    const char *const unknown[] = {"sasl.mechansim", "PLAIN", NULL};
    expect_refused(unknown,
                   "property sasl.mechansim=PLAIN rejected: No such configuration "
                   "property",
                   NULL);
    const char *const bad_value[] = {"security.protocol", "SASL_TLS", NULL};
    expect_refused(bad_value, "security.protocol=SASL_TLS", NULL);
    const char *const secret[] = {"sasl.oauthbearer.method", SECRET, NULL};
    expect_refused(secret, "sasl.oauthbearer.method=(hidden) rejected: ", SECRET);
    /* A secret put into the wrong property by mistake stays hidden there too, where
     * librdkafka's reason echoes it: `Invalid value "..." for ...`. */
    const char *const misplaced[] = {"sasl.password", SECRET, "security.protocol", SECRET, NULL};
    expect_refused(misplaced, "security.protocol=(hidden) rejected: Invalid value \"(hidden)\"",
                   SECRET);
}

static void test_check_one_property(void **state) {
    (void)state;
    char why[256];
    assert_int_equal(jn_kafka_conf_check("security.protocol", "sasl_ssl", why, sizeof why), 0);
    assert_int_equal(jn_kafka_conf_check("no.such.thing", "1", why, sizeof why), -1);
    assert_non_null(strstr(why, "no.such.thing"));
    assert_int_equal(jn_kafka_conf_check("sasl.oauthbearer.method", SECRET, why, sizeof why), -1);
    assert_null(strstr(why, SECRET));
}

/* Settings fine one by one may be refused together, by rd_kafka_new. */
static void test_client_refused_together(void **state) {
    (void)state;
    const char *const props[] = {"security.protocol", "ssl", "ssl.ca.location",
                                 "/nonexistent/ca.pem", NULL};
    jn_kafka_client_opts c = {.brokers = "127.0.0.1:9", .properties = props};
    jn_kafka_secrets s = {0};
    char *err = NULL;
    rd_kafka_conf_t *conf = jn_kafka_conf_build(&c, "producer", NULL, 0, &s, &err);
    assert_non_null(conf);
    assert_null(jn_kafka_conf_client(RD_KAFKA_PRODUCER, conf, "producer", &s, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "kafka: cannot create the producer: "));
    assert_non_null(strstr(err, "ssl.ca.location"));
    free(err);
    jn_kafka_secrets_free(&s);
}

static void test_hints_name_the_keys(void **state) {
    (void)state;
    assert_non_null(
        strstr(jn_kafka_conf_hint(RD_KAFKA_RESP_ERR__AUTHENTICATION), "kafka.sasl.password"));
    assert_non_null(strstr(jn_kafka_conf_hint(RD_KAFKA_RESP_ERR__SSL), "kafka.ssl.ca_file"));
    assert_string_equal(jn_kafka_conf_hint(RD_KAFKA_RESP_ERR__TRANSPORT), "");
}

/* ---- log lines ------------------------------------------------------------------------- */

static void test_log_line_hides_secrets(void **state) {
    (void)state;
    jn_kafka_secrets s = {0};
    const char *const props[] = {"sasl.password", SECRET, NULL};
    jn_kafka_secrets_add(&s, props);
    jn_log_setup(JN_LOG_DEBUG, JN_LOG_TEXT);
    capture_start();
    jn_kafka_conf_log(&s, 7, "CONF", "sasl.password = " SECRET " (as a careless dump would)");
    jn_kafka_conf_log(&s, 4, "CONFWARN", "ignored " SECRET);
    jn_kafka_conf_log(&s, 3, "FAIL", "a FAIL line, reported through its error event");
    char *out = capture_end();
    jn_log_setup(JN_LOG_INFO, JN_LOG_TEXT);
    assert_null(strstr(out, SECRET));
    assert_non_null(strstr(out, "CONF: sasl.password = (hidden) (as a careless dump would)"));
    assert_non_null(strstr(out, "CONFWARN: ignored (hidden)"));
    assert_null(strstr(out, "a FAIL line"));
    free(out);
    jn_kafka_secrets_free(&s);
}

static void stop_loop(uv_timer_t *t) {
    uv_stop(t->loop);
}

static void on_closed(void *arg) {
    *(int *)arg = 1;
}

/* A real client at debug, everything librdkafka logs (its configuration dump at start
 * included) served through a producer: no line shows the secrets. */
static void test_debug_log_of_a_client_shows_no_secret(void **state) {
    (void)state;
    uv_loop_t loop;
    uv_loop_init(&loop);
    const char *const props[] = {"debug",
                                 "all",
                                 "security.protocol",
                                 "sasl_plaintext",
                                 "sasl.mechanism",
                                 "PLAIN",
                                 "sasl.username",
                                 "alice",
                                 "sasl.password",
                                 SECRET,
                                 "ssl.key.password",
                                 SECRET "-key",
                                 NULL};
    jn_kafka_producer_opts o = {.client = {.brokers = "127.0.0.1:9", .properties = props},
                                .compression = "none",
                                .queue_max_messages = 10,
                                .message_timeout_ms = 1000};
    jn_log_setup(JN_LOG_DEBUG, JN_LOG_TEXT);
    capture_start();
    char *err = NULL;
    jn_kafka_producer *p = jn_kafka_producer_new(&loop, &o, NULL, NULL, &err);
    int closed = 0;
    if (p) {
        /* Long enough for a few connection attempts to the closed port. */
        uv_timer_t t;
        uv_timer_init(&loop, &t);
        uv_timer_start(&t, stop_loop, 1500, 0);
        uv_run(&loop, UV_RUN_DEFAULT);
        uv_close((uv_handle_t *)&t, NULL);
        jn_kafka_producer_close(p, 0, on_closed, &closed);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    char *out = capture_end();
    jn_log_setup(JN_LOG_INFO, JN_LOG_TEXT);
    assert_non_null(p);
    assert_true(closed);
    assert_null(strstr(out, SECRET));
    /* It did log at debug: its SASL set-up and its connection attempts. */
    assert_non_null(strstr(out, "Selected provider PLAIN"));
    assert_non_null(strstr(out, "CONNECT"));
    free(out);
    assert_int_equal(uv_loop_close(&loop), 0);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_secret_names),
        cmocka_unit_test(test_secrets_hidden_in_text),
        cmocka_unit_test(test_properties_applied_over_own_settings),
        cmocka_unit_test(test_errors_name_the_property_and_hide_secrets),
        cmocka_unit_test(test_check_one_property),
        cmocka_unit_test(test_client_refused_together),
        cmocka_unit_test(test_hints_name_the_keys),
        cmocka_unit_test(test_log_line_hides_secrets),
        cmocka_unit_test(test_debug_log_of_a_client_shows_no_secret),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
