/* config_kafka.c: the librdkafka properties of the config (kafka.properties, the
 * kafka.security_protocol, kafka.sasl.* and kafka.ssl.* shortcuts, KAFKA_PROPERTY_<NAME>
 * and the shortcuts' variables) resolved into cfg->kafka.properties, and the errors of a
 * wrong one: naming the key that set it, never showing a secret. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"

#define SECRET "hunter2-s3cret"

extern char **environ;

/* Every variable this file's tests set, and any KAFKA_* a developer may have. */
static void clear_env(void) {
    static const char *const vars[] = {"KAFKA_BOOTSTRAP_SERVERS", "JN_TEST_PW", "JN_TEST_PW_FILE",
                                       NULL};
    for (const char *const *v = vars; *v; v++)
        unsetenv(*v);
    for (int again = 1; again;) {
        again = 0;
        for (char **e = environ; *e; e++) {
            if (strncmp(*e, "KAFKA_", 6)) continue;
            char name[256];
            snprintf(name, sizeof name, "%.*s", (int)strcspn(*e, "="), *e);
            unsetenv(name);
            again = 1;
            break;
        }
    }
}

static int setup(void **state) {
    (void)state;
    clear_env();
    return 0;
}

static char *write_temp(const char *text) {
    char *path = strdup("/tmp/jn_config_kafka_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
    return path;
}

/* Loads a config file with text; returns the error (the caller frees it) or NULL with
 * *cfg loaded. */
static char *load(jn_config *cfg, const char *text) {
    char *path = write_temp(text), *err = NULL;
    int rc = jn_config_load(cfg, path, &err);
    unlink(path);
    free(path);
    if (rc == 0) return NULL;
    assert_non_null(err);
    return err;
}

/* The value cfg resolved for property name, or NULL. */
static const char *prop(const jn_config *cfg, const char *name) {
    for (char **p = cfg->kafka.properties; p && p[0]; p += 2)
        if (!strcmp(p[0], name)) return p[1];
    return NULL;
}

static int nprops(const jn_config *cfg) {
    int n = 0;
    for (char **p = cfg->kafka.properties; p && p[0]; p += 2)
        n++;
    return n;
}

static void expect_error(const char *text, const char *must) {
    jn_config cfg;
    char *err = load(&cfg, text);
    if (!err) jn_config_free(&cfg);
    assert_non_null(err);
    if (!strstr(err, must)) print_error("\"%s\" lacks \"%s\"\n", err, must);
    assert_non_null(strstr(err, must));
    assert_null(strstr(err, SECRET));
    free(err);
}

static void test_nothing_set_means_no_properties(void **state) {
    (void)state;
    jn_config cfg;
    assert_null(load(&cfg, "return {}"));
    assert_null(cfg.kafka.properties);
    jn_config_free(&cfg);
}

static void test_properties_and_shortcuts_from_the_file(void **state) {
    (void)state;
    char *pw = write_temp(SECRET "\n");
    char text[1024];
    snprintf(text, sizeof text,
             "return { kafka = {\n"
             "  properties = { [\"socket.timeout.ms\"] = 7000, [\"ssl.endpoint.identification."
             "algorithm\"] = \"none\",\n"
             "                 [\"enable.ssl.certificate.verification\"] = true },\n"
             "  security_protocol = \"SASL_SSL\",\n"
             "  sasl = { mechanism = \"SCRAM-SHA-512\", username = \"alice\", password = { file "
             "= \"%s\" } },\n"
             "  ssl = { ca_file = \"%s\" },\n"
             "} }",
             pw, pw);
    jn_config cfg;
    char *err = load(&cfg, text);
    if (err) print_error("%s\n", err);
    assert_null(err);
    assert_int_equal(nprops(&cfg), 8);
    assert_string_equal(prop(&cfg, "socket.timeout.ms"), "7000");
    assert_string_equal(prop(&cfg, "ssl.endpoint.identification.algorithm"), "none");
    assert_string_equal(prop(&cfg, "enable.ssl.certificate.verification"), "true");
    assert_string_equal(prop(&cfg, "security.protocol"), "SASL_SSL");
    assert_string_equal(prop(&cfg, "sasl.mechanism"), "SCRAM-SHA-512");
    assert_string_equal(prop(&cfg, "sasl.username"), "alice");
    /* From the file, its line break dropped. */
    assert_string_equal(prop(&cfg, "sasl.password"), SECRET);
    assert_string_equal(prop(&cfg, "ssl.ca.location"), pw);
    jn_config_free(&cfg);
    unlink(pw);
    free(pw);
}

static void test_environment_over_the_file(void **state) {
    (void)state;
    char *pw = write_temp(SECRET);
    setenv("KAFKA_SECURITY_PROTOCOL", "sasl_plaintext", 1);
    setenv("KAFKA_SASL_MECHANISM", "PLAIN", 1);
    setenv("KAFKA_SASL_USERNAME", "bob", 1);
    setenv("KAFKA_SASL_PASSWORD_FILE", pw, 1);
    setenv("KAFKA_PROPERTY_SOCKET_TIMEOUT_MS", "9000", 1);
    setenv("KAFKA_PROPERTY_SASL_KERBEROS_SERVICE_NAME_FILE", pw, 1);
    setenv("KAFKA_PROPERTY_RECONNECT_BACKOFF_MS", "", 1); /* empty: as if unset */
    setenv("JN_TEST_PW", "from-env", 1);
    jn_config cfg;
    char *err = load(&cfg, "return { kafka = { properties = { [\"socket.timeout.ms\"] = 7000 },"
                           " security_protocol = \"SASL_SSL\","
                           " ssl = { key_password = { env = \"JN_TEST_PW\" } } } }");
    if (err) print_error("%s\n", err);
    assert_null(err);
    assert_string_equal(prop(&cfg, "socket.timeout.ms"), "9000");
    assert_string_equal(prop(&cfg, "security.protocol"), "sasl_plaintext");
    assert_string_equal(prop(&cfg, "sasl.mechanism"), "PLAIN");
    assert_string_equal(prop(&cfg, "sasl.username"), "bob");
    assert_string_equal(prop(&cfg, "sasl.password"), SECRET);
    assert_string_equal(prop(&cfg, "sasl.kerberos.service.name"), SECRET);
    assert_string_equal(prop(&cfg, "ssl.key.password"), "from-env");
    assert_null(prop(&cfg, "reconnect.backoff.ms"));
    jn_config_free(&cfg);

    /* Without a file, from the environment alone. */
    assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
    assert_string_equal(prop(&cfg, "sasl.password"), SECRET);
    jn_config_free(&cfg);
    clear_env();
    unlink(pw);
    free(pw);
}

static void test_a_bad_property_names_its_key(void **state) {
    (void)state;
    expect_error("return { kafka = { properties = { [\"sasl.mechansim\"] = \"PLAIN\" } } }",
                 "config: kafka.properties[\"sasl.mechansim\"]: librdkafka refuses "
                 "sasl.mechansim=PLAIN: No such configuration property: \"sasl.mechansim\" (did "
                 "you mean sasl.mechanism?)");
    expect_error("return { kafka = { security_protocol = \"SASL_TLS\" } }",
                 "config: kafka.security_protocol: librdkafka refuses security.protocol=SASL_TLS: "
                 "Invalid value");
    expect_error("return { kafka = { properties = { [\"socket.timeout.ms\"] = {} } } }",
                 "kafka.properties[\"socket.timeout.ms\"] needs env = \"NAME\"");
    expect_error("return { kafka = { properties = \"security.protocol=SASL_SSL\" } }",
                 "config: kafka.properties must be a table of librdkafka properties");
    expect_error("return { kafka = { properties = { \"SASL_SSL\" } } }",
                 "config: kafka.properties has a key 1 (a number)");
    expect_error("return { kafka = { ssl = { ca_fle = \"x\" } } }",
                 "config: unknown key kafka.ssl.ca_fle (did you mean kafka.ssl.ca_file?)");
    expect_error("return { kafka = { sasl = \"alice\" } }",
                 "config: kafka.sasl must be a table (kafka.sasl.* keys), got a string");
    expect_error("return { kafka = { sasl_password = \"x\" } }",
                 "config: unknown key kafka.sasl_password (did you mean kafka.sasl.password?)");
    expect_error("return { kafka = { ssl = { ca_file = 12 } } }",
                 "config: kafka.ssl.ca_file must be a non-empty string");
    setenv("KAFKA_PROPERTY_NO_SUCH_THING", "1", 1);
    expect_error("return {}", "config: KAFKA_PROPERTY_NO_SUCH_THING: librdkafka refuses "
                              "no.such.thing=1");
    clear_env();
}

static void test_what_junction_sets_itself_is_refused(void **state) {
    (void)state;
    expect_error("return { kafka = { properties = { acks = 1 } } }",
                 "config: kafka.properties[\"acks\"]: junction sets the Kafka property acks "
                 "itself; the producer is always idempotent");
    expect_error("return { kafka = { properties = { [\"bootstrap.servers\"] = \"x:1\" } } }",
                 "set kafka.brokers (KAFKA_BOOTSTRAP_SERVERS)");
    setenv("KAFKA_PROPERTY_ENABLE_AUTO_COMMIT", "true", 1);
    expect_error("return {}", "config: KAFKA_PROPERTY_ENABLE_AUTO_COMMIT: junction sets the "
                              "Kafka property enable.auto.commit itself");
    clear_env();
}

static void test_two_values_for_one_property(void **state) {
    (void)state;
    expect_error("return { kafka = { sasl = { password = \"" SECRET "\" }, properties = "
                 "{ [\"sasl.password\"] = \"other\" } } }",
                 "config: kafka.properties[\"sasl.password\"] and kafka.sasl.password both set "
                 "the Kafka property sasl.password; keep one");
    setenv("KAFKA_SASL_PASSWORD", SECRET, 1);
    setenv("KAFKA_PROPERTY_SASL_PASSWORD", "other", 1);
    expect_error("return {}", "both set the Kafka property sasl.password; keep one");
    clear_env();
    /* The same value twice is no conflict. */
    jn_config cfg;
    assert_null(load(&cfg, "return { kafka = { security_protocol = \"SSL\", properties = "
                           "{ [\"security.protocol\"] = \"SSL\" } } }"));
    assert_int_equal(nprops(&cfg), 1);
    jn_config_free(&cfg);
}

static void test_setting_mistakes_caught_early(void **state) {
    (void)state;
    expect_error("return { kafka = { sasl = { username = \"alice\", password = \"" SECRET
                 "\" } } }",
                 "config: kafka.sasl.username is set, but the Kafka security protocol is "
                 "plaintext (the default), which sends no SASL login; set "
                 "kafka.security_protocol = \"SASL_SSL\"");
    expect_error("return { kafka = { security_protocol = \"SSL\", ssl = { ca_file = "
                 "\"/nonexistent/ca.pem\" } } }",
                 "config: kafka.ssl.ca_file: cannot read /nonexistent/ca.pem (No such file");
    expect_error("return { kafka = { security_protocol = \"SASL_SSL\", sasl = { password = "
                 "{ env = \"JN_TEST_PW\" } } } }",
                 "config: kafka.sasl.password: the environment variable JN_TEST_PW is not set, "
                 "nor is JN_TEST_PW_FILE");
    expect_error("return { kafka = { security_protocol = \"SASL_SSL\", sasl = { password = \"\" "
                 "} } }",
                 "config: kafka.sasl.password: the value in the config file is empty");
    setenv("KAFKA_SASL_PASSWORD_FILE", "/nonexistent/pw", 1);
    expect_error("return {}", "config: kafka.sasl.password: cannot read the file /nonexistent/pw "
                              "named by KAFKA_SASL_PASSWORD_FILE");
    clear_env();
}

/* A secret never shows in a message, even put where librdkafka echoes a value. */
static void test_secrets_never_in_errors(void **state) {
    (void)state;
    expect_error(
        "return { kafka = { security_protocol = \"SASL_SSL\", sasl = { password = \"" SECRET
        "\" }, properties = { [\"sasl.kerberos.min.time.before.relogin\"] = \"" SECRET "\" } } }",
        "sasl.kerberos.min.time.before.relogin=(hidden)");
    expect_error("return { kafka = { properties = { [\"ssl.key.password\"] = \"" SECRET "\","
                 " [\"enable.auto.commit\"] = \"" SECRET "\" } } }",
                 "junction sets the Kafka property enable.auto.commit itself");
    setenv("KAFKA_PROPERTY_SASL_OAUTHBEARER_METHOD", SECRET, 1);
    expect_error("return {}", "sasl.oauthbearer.method=(hidden)");
    clear_env();
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_nothing_set_means_no_properties, setup),
        cmocka_unit_test_setup(test_properties_and_shortcuts_from_the_file, setup),
        cmocka_unit_test_setup(test_environment_over_the_file, setup),
        cmocka_unit_test_setup(test_a_bad_property_names_its_key, setup),
        cmocka_unit_test_setup(test_what_junction_sets_itself_is_refused, setup),
        cmocka_unit_test_setup(test_two_values_for_one_property, setup),
        cmocka_unit_test_setup(test_setting_mistakes_caught_early, setup),
        cmocka_unit_test_setup(test_secrets_never_in_errors, setup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
