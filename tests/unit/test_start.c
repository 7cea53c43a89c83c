/* A role's start that fails part way leaves nothing behind (error.h, "Starting"): after
 * the failed call the loop runs out by itself with no handle left (uv_loop_close then
 * returns 0), the script host holds none of the scripts the role added (a reload cannot
 * reach a freed owner), and the sanitizer build finds nothing leaked. Kafka and Redis are
 * addresses where nothing listens: a start does not wait for either. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "admin.h"
#include "config.h"
#include "consumer.h"
#include "log.h"
#include "net_fixture.h"
#include "producer.h"
#include "script.h"
#include "mock/analytics.h"
#include "mock/api.h"

/* Where nothing answers: connects are refused at once. */
#define NOWHERE "127.0.0.1:1"

typedef struct {
    uv_loop_t loop;
    jn_script_host *host;
    jn_config cfg;
    int cfg_loaded;
    char *err;
} fixture;

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    jn_script_opts so = {0};
    f->host = jn_script_host_new(&f->loop, &so);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    if (f->cfg_loaded) jn_config_free(&f->cfg);
    free(f->err);
    free(f);
    return 0;
}

/* Loads text as the config. */
static void load(fixture *f, const char *text) {
    char path[] = "/tmp/jn_start_test_XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    char *err = NULL;
    int rc = jn_config_load(&f->cfg, path, &err);
    unlink(path);
    if (rc != 0) fail_msg("config: %s", err);
    f->cfg_loaded = 1;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!hay || !strstr(hay, needle)) fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

/* What the failed start must have left, once the loop has run the closes it began: no
 * handle (uv_run returns by itself; a handle left open keeps it going until the
 * watchdog stops it, and the close fails), no script in the host (a reload finds none,
 * the status lists none). Then the host closes too and the loop with it. */
static void on_watchdog(uv_timer_t *t) {
    uv_stop(t->loop);
}

static void assert_nothing_left(fixture *f) {
    uv_timer_t watchdog;
    uv_timer_init(&f->loop, &watchdog);
    uv_timer_start(&watchdog, on_watchdog, 30000, 0);
    uv_unref((uv_handle_t *)&watchdog);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    uv_close((uv_handle_t *)&watchdog, NULL);
    assert_int_equal(jn_script_reload_all(f->host, "test"), 0);
    jn_sb sb;
    jn_sb_init(&sb);
    jn_script_host_status_json(f->host, &sb);
    assert_string_equal(sb.data, "[]");
    jn_sb_free(&sb);
    jn_script_host_close(f->host);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    if (uv_loop_close(&f->loop) != 0) {
        uv_print_all_handles(&f->loop, stderr);
        fail_msg("handles left on the loop after the failed start");
    }
}

/* The start returned started, which must be NULL, with a message holding needle, and
 * left nothing behind. */
static void assert_failed(fixture *f, const void *started, const char *needle) {
    assert_null(started);
    assert_contains(f->err, needle);
    assert_nothing_left(f);
}

/* Two APIs, a and b (on ports 9 and 10: the tests set real ones), b's script given. */
static void load_two_apis(fixture *f, const char *second_script) {
    char text[400];
    snprintf(text, sizeof text,
             "return { apis = {\n"
             "  a = { listen = '127.0.0.1:9', script = 'scripts/crm.lua', count = 3 },\n"
             "  b = { listen = '127.0.0.1:10', script = '%s', count = 3 },\n"
             "} }\n",
             second_script);
    load(f, text);
}

/* The second API's port is the first's: its server cannot listen, after the first one
 * started listening and both scripts were loaded. */
static void test_api_second_port_taken(void **state) {
    fixture *f = *state;
    load_two_apis(f, "scripts/inventory.lua");
    int port = free_port();
    for (int i = 0; i < f->cfg.napis; i++)
        f->cfg.apis[i].listen.port = port;
    assert_failed(f, jn_api_start(&f->loop, f->host, &f->cfg, &f->err), "address already in use");
}

/* The second API's script is missing: the first API's server and script are undone. */
static void test_api_second_script_missing(void **state) {
    fixture *f = *state;
    load_two_apis(f, "scripts/none_such.lua");
    f->cfg.apis[0].listen.port = free_port();
    f->cfg.apis[1].listen.port = free_port();
    assert_failed(f, jn_api_start(&f->loop, f->host, &f->cfg, &f->err), "none_such.lua");
}

/* The second source's map script is missing: the Kafka producer, the HTTP client, the
 * first source's timer and script are undone. */
static void test_producer_second_script_missing(void **state) {
    fixture *f = *state;
    load(f, "return { kafka = { brokers = '" NOWHERE "' }, sources = {\n"
            "  a = { url = 'http://" NOWHERE "/a', topic = 'jn_start_a',\n"
            "        script = 'scripts/map_customers.lua' },\n"
            "  b = { url = 'http://" NOWHERE "/b', topic = 'jn_start_b',\n"
            "        script = 'scripts/none_such.lua' },\n"
            "} }\n");
    assert_failed(f, jn_producer_start(&f->loop, f->host, &f->cfg, &f->err), "none_such.lua");
}

/* A Lua function making the config of a pipeline that has every part: a stream, two
 * tables, de-duplication and an HTTP and a Kafka sink, with the transform given. */
#define PIPELINE_FN                                                                                \
    "local function pipeline(name, transform)\n"                                                   \
    "  return { name = name, group_id = 'jn-start-' .. name, transform = transform,\n"             \
    "    dedupe = { prefix = 'jn-start:' .. name .. ':' },\n"                                      \
    "    streams = { orders = 'jn_start_orders' },\n"                                              \
    "    tables = { customers = 'jn_start_customers', products = 'jn_start_products' },\n"         \
    "    sinks = {\n"                                                                              \
    "      analytics = { type = 'http', url = 'http://" NOWHERE "/analytics' },\n"                 \
    "      enriched = { type = 'kafka', topic = 'jn_start_enriched', key = 'id' },\n"              \
    "    } }\n"                                                                                    \
    "end\n"
#define ENRICH "'examples/transforms/enrich_orders.lua'"

/* The second pipeline's transform is missing, after the first started whole: its group
 * member and table reader, producer, Redis client and de-duplication, HTTP client, HTTP
 * and Kafka sinks, timers and transform script are undone. */
static void test_consumer_second_pipeline_fails(void **state) {
    fixture *f = *state;
    load(f, PIPELINE_FN "return { kafka = { brokers = '" NOWHERE "' },\n"
                        "  redis = { host = '127.0.0.1', port = 1 },\n"
                        "  pipelines = { pipeline('first', " ENRICH "),\n"
                        "                pipeline('second', 'scripts/none_such.lua') } }\n");
    assert_failed(f, jn_consumer_start(&f->loop, f->host, &f->cfg, &f->err), "none_such.lua");
}

/* A pipeline that fails inside its own start: its table reader, the first consumer it
 * makes, is refused by librdkafka (a consumer's fetch.max.bytes below message.max.bytes;
 * producers ignore the setting), after its transform, producer, Redis client, HTTP
 * client and sinks were made and its timers started. */
static void test_pipeline_fails_part_way(void **state) {
    fixture *f = *state;
    load(f, PIPELINE_FN "return { kafka = { brokers = '" NOWHERE "',\n"
                        "    properties = { ['fetch.max.bytes'] = '1024' } },\n"
                        "  redis = { host = '127.0.0.1', port = 1 },\n"
                        "  pipelines = { pipeline('only', " ENRICH ") } }\n");
    assert_failed(f, jn_consumer_start(&f->loop, f->host, &f->cfg, &f->err), "fetch.max.bytes");
}

/* The admin server's port is taken by another listener. */
static void test_admin_port_taken(void **state) {
    fixture *f = *state;
    load(f, "return {}\n");
    jn_http_server *other = fixture_server_start(&f->loop, "other", NULL, NULL, NULL);
    f->cfg.admin.listen.port = jn_http_server_port(other);
    jn_admin *a = jn_admin_start(&f->loop, &f->cfg, f->host, &f->err);
    jn_http_server_stop(other, NULL, NULL);
    assert_failed(f, a, "address already in use");
}

/* The analytics receiver cannot open its file, or cannot listen. */
static void test_analytics_file_unopenable(void **state) {
    fixture *f = *state;
    load(f, "return { analytics = { file = '/nonexistent/jn_start/records.jsonl' } }\n");
    f->cfg.analytics.listen.port = free_port();
    assert_failed(f, jn_analytics_start(&f->loop, &f->cfg, &f->err),
                  "cannot open /nonexistent/jn_start/records.jsonl");
}

static void test_analytics_port_taken(void **state) {
    fixture *f = *state;
    load(f, "return {}\n");
    jn_http_server *other = fixture_server_start(&f->loop, "other", NULL, NULL, NULL);
    f->cfg.analytics.listen.port = jn_http_server_port(other);
    jn_analytics *a = jn_analytics_start(&f->loop, &f->cfg, &f->err);
    jn_http_server_stop(other, NULL, NULL);
    assert_failed(f, a, "address already in use");
}

int main(void) {
    jn_log_setup(JN_LOG_ERROR, JN_LOG_TEXT);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_api_second_port_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_second_script_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_producer_second_script_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consumer_second_pipeline_fails, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_fails_part_way, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_port_taken, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analytics_file_unopenable, setup, teardown),
        cmocka_unit_test_setup_teardown(test_analytics_port_taken, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
