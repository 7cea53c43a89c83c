/* jn_config_load: defaults, the example files, error messages, environment overrides, and
 * the sandbox and limits the config file runs under. */
#include <glob.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "config.h"

/* Every variable the schema reads, so a developer's environment cannot change results. */
static const char *const env_vars[] = {
    "JUNCTION_LOG_LEVEL",
    "JUNCTION_LOG_FORMAT",
    "JUNCTION_ADMIN_LISTEN",
    "JUNCTION_SCRIPT_INSTRUCTION_LIMIT",
    "JUNCTION_SCRIPT_WATCH",
    "JUNCTION_CRM_LISTEN",
    "JUNCTION_CRM_SCRIPT",
    "JUNCTION_CUSTOMERS",
    "JUNCTION_SEED",
    "JUNCTION_INVENTORY_LISTEN",
    "JUNCTION_INVENTORY_SCRIPT",
    "JUNCTION_PRODUCTS",
    "JUNCTION_MAX_BODY_BYTES",
    "JUNCTION_REQUEST_TIMEOUT_MS",
    "JUNCTION_KEEPALIVE_TIMEOUT_MS",
    "JUNCTION_MAX_CONNECTIONS",
    "JUNCTION_POLL_INTERVAL_MS",
    "JUNCTION_PRODUCER_TIMEOUT_MS",
    "JUNCTION_PUBLISH_ALL",
    "JUNCTION_RETRY_ATTEMPTS",
    "JUNCTION_CRM_URL",
    "JUNCTION_INVENTORY_URL",
    "JUNCTION_KAFKA_CLIENT_ID",
    "KAFKA_BOOTSTRAP_SERVERS",
    "REDIS_HOST",
    "REDIS_PORT",
    "JN_TEST_X", /* read by the env() tests */
    "ANALYTICS_URL",
    "JUNCTION_GROUP_ID",
    "JUNCTION_AUTO_OFFSET_RESET",
    "JUNCTION_DEDUPE_TTL_S",
    "JUNCTION_ANALYTICS_LISTEN",
    "JN_TEST_TOKEN", /* header values of the pipeline tests */
    "JN_TEST_TOKEN_FILE",
    "JN_TEST_KEY",
    "JN_TEST_KEY_FILE",
    NULL,
};

static void clear_env(void) {
    for (const char *const *v = env_vars; *v; v++)
        unsetenv(*v);
}

static int setup(void **state) {
    (void)state;
    clear_env();
    return 0;
}

static int teardown(void **state) {
    (void)state;
    clear_env();
    return 0;
}

/* Writes text to a new temporary file; the caller unlinks and frees the path. */
static char *write_temp(const char *text) {
    char *path = strdup("/tmp/jn_config_test_XXXXXX");
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    size_t len = strlen(text);
    assert_int_equal(write(fd, text, len), (ssize_t)len);
    close(fd);
    return path;
}

/* Loads text as a config file, expecting failure; returns the message (free it). */
static char *load_error(const char *text) {
    char *path = write_temp(text);
    jn_config cfg;
    char *err = NULL;
    int rc = jn_config_load(&cfg, path, &err);
    unlink(path);
    free(path);
    if (rc == 0) {
        jn_config_free(&cfg);
        fail_msg("expected an error from: %s", text);
    }
    assert_int_equal(rc, -1);
    assert_non_null(err);
    return err;
}

static int load_text(const char *text, jn_config *cfg, char **err) {
    char *path = write_temp(text);
    int rc = jn_config_load(cfg, path, err);
    unlink(path);
    free(path);
    return rc;
}

static void assert_contains(const char *hay, const char *needle) {
    if (!strstr(hay, needle)) fail_msg("expected \"%s\" in \"%s\"", needle, hay);
}

static void test_defaults(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
    assert_null(err);
    assert_null(cfg.path);
    /* No APIs, sources or pipelines: they come from a file (examples/local.lua has the
     * seed's), and each role says so when its section is missing. */
    assert_int_equal(cfg.napis, 0);
    assert_int_equal(cfg.nsources, 0);
    assert_int_equal(cfg.npipelines, 0);
    assert_string_equal(cfg.admin.listen.host, "127.0.0.1");
    assert_int_equal(cfg.admin.listen.port, 8000);
    assert_string_equal(cfg.kafka.brokers, "127.0.0.1:9092");
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    assert_int_equal(cfg.redis.port, 6379);
    assert_int_equal(cfg.scripts.instruction_limit, 200000000L);
    assert_false(cfg.scripts.allow_exec);
    assert_false(cfg.scripts.allow_write);
    assert_true(cfg.scripts.watch);
    assert_int_equal(cfg.log.level, JN_LOG_INFO);
    assert_int_equal(cfg.log.format, JN_LOG_TEXT);
    jn_config_free(&cfg);
}

/* Without admin.listen, run keeps 8000 and each role alone has its own port; the file or
 * JUNCTION_ADMIN_LISTEN decide for every command. */
static void test_admin_port_per_command(void **state) {
    (void)state;
    static const struct {
        const char *command;
        int port;
    } want[] = {
        {"run", 8000}, {"api", 8001}, {"produce", 8002}, {"consume", 8003}, {"analytics", 8004}};
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        jn_config cfg;
        char *err = NULL;
        assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
        assert_false(cfg.admin.listen_given);
        assert_int_equal(jn_config_for_command(&cfg, want[i].command), 0);
        assert_string_equal(cfg.admin.listen.host, "127.0.0.1");
        assert_int_equal(cfg.admin.listen.port, want[i].port);
        assert_int_equal(jn_config_admin_port(want[i].command), want[i].port);
        jn_config_free(&cfg);

        assert_int_equal(load_text("return { admin = { listen = '127.0.0.1:9100' } }", &cfg, &err),
                         0);
        assert_true(cfg.admin.listen_given);
        assert_int_equal(jn_config_for_command(&cfg, want[i].command), 0);
        assert_int_equal(cfg.admin.listen.port, 9100);
        jn_config_free(&cfg);

        setenv("JUNCTION_ADMIN_LISTEN", "127.0.0.1:9101", 1);
        assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
        assert_int_equal(jn_config_for_command(&cfg, want[i].command), 0);
        assert_int_equal(cfg.admin.listen.port, 9101);
        jn_config_free(&cfg);
        unsetenv("JUNCTION_ADMIN_LISTEN");
    }
    /* The five differ, and none is a port the mocks listen on by default. */
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++)
        for (size_t k = 0; k < sizeof want / sizeof want[0]; k++)
            if (i != k) assert_true(want[i].port != want[k].port);
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, "examples/local.lua", &err), 0);
    assert_int_equal(jn_config_for_command(&cfg, "nope"), -1);
    assert_int_equal(jn_config_admin_port("nope"), -1);
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        for (int k = 0; k < cfg.napis; k++)
            assert_true(want[i].port != cfg.apis[k].listen.port);
        assert_true(want[i].port != cfg.analytics.listen.port);
    }
    jn_config_free(&cfg);
}

static void test_example_file(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    int rc = jn_config_load(&cfg, "examples/local.lua", &err);
    if (rc != 0) fail_msg("examples/local.lua: %s", err);
    assert_string_equal(cfg.path, "examples/local.lua");
    /* The admin address is left to the command, so the roles run side by side. */
    assert_false(cfg.admin.listen_given);
    assert_int_equal(jn_config_for_command(&cfg, "api"), 0);
    assert_int_equal(cfg.admin.listen.port, 8001);
    assert_int_equal(cfg.api.max_body_bytes, 1048576);
    assert_string_equal(cfg.kafka.brokers, "127.0.0.1:9092");
    /* It declares the seed's two APIs, two sources and one pipeline. */
    assert_int_equal(cfg.napis, 2);
    assert_string_equal(cfg.apis[0].name, "crm");
    assert_int_equal(cfg.apis[0].listen.port, 8081);
    assert_int_equal(cfg.apis[0].count, 1000);
    assert_string_equal(cfg.apis[0].resource, "customers");
    assert_string_equal(cfg.apis[0].singular, "Customer");
    assert_string_equal(cfg.apis[1].name, "inventory");
    assert_int_equal(cfg.apis[1].listen.port, 8082);
    assert_int_equal(cfg.apis[1].count, 10);
    assert_string_equal(cfg.apis[1].resource, "products");
    assert_int_equal(cfg.nsources, 2);
    assert_string_equal(cfg.sources[0].name, "crm");
    assert_string_equal(cfg.sources[0].url, "http://127.0.0.1:8081/customers");
    assert_string_equal(cfg.sources[0].topic, "customer_data");
    assert_string_equal(cfg.sources[0].noun, "customer(s)");
    assert_string_equal(cfg.sources[1].name, "inventory");
    assert_string_equal(cfg.sources[1].topic, "inventory_data");
    assert_int_equal(cfg.npipelines, 1);
    const jn_pipeline_config *p = &cfg.pipelines[0];
    assert_string_equal(p->name, "default");
    assert_string_equal(p->group_id, "junction-consumer");
    assert_string_equal(p->transform, "scripts/join.lua");
    assert_string_equal(p->streams[0].name, "customers");
    assert_string_equal(p->streams[0].topic, "customer_data");
    assert_true(p->streams[0].changelog_auto);
    assert_string_equal(p->tables[0].name, "products");
    assert_string_equal(p->tables[0].topic, "inventory_data");
    assert_string_equal(p->sinks[0].url, "http://127.0.0.1:8083/analytics");
    jn_config_free(&cfg);
    /* And the seed's variables still set them, read with env() in the file. */
    setenv("JUNCTION_CRM_LISTEN", "127.0.0.1:9081", 1);
    setenv("JUNCTION_PRODUCTS", "25", 1);
    setenv("JUNCTION_SEED", "3", 1);
    setenv("JUNCTION_CRM_URL", "http://crm:1/c", 1);
    setenv("JUNCTION_GROUP_ID", "env-group", 1);
    setenv("ANALYTICS_URL", "http://env-analytics:9/in", 1);
    rc = jn_config_load(&cfg, "examples/local.lua", &err);
    if (rc != 0) fail_msg("examples/local.lua: %s", err);
    assert_int_equal(cfg.apis[0].listen.port, 9081);
    assert_int_equal(cfg.apis[1].count, 25);
    assert_int_equal(cfg.apis[0].seed, 3);
    assert_int_equal(cfg.apis[1].seed, 3);
    assert_string_equal(cfg.sources[0].url, "http://crm:1/c");
    assert_string_equal(cfg.pipelines[0].group_id, "env-group");
    assert_string_equal(cfg.pipelines[0].sinks[0].url, "http://env-analytics:9/in");
    jn_config_free(&cfg);
}

static void test_file_values_applied(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    int rc = load_text("return { redis = { port = 7001, db = 3 }, analytics = { listen = "
                       "'0.0.0.0:9001' }, scripts = { allow_exec = true }, log = { level = "
                       "'debug' } }",
                       &cfg, &err);
    if (rc != 0) fail_msg("%s", err);
    assert_int_equal(cfg.redis.port, 7001);
    assert_int_equal(cfg.redis.db, 3);
    assert_string_equal(cfg.analytics.listen.host, "0.0.0.0");
    assert_int_equal(cfg.analytics.listen.port, 9001);
    assert_true(cfg.scripts.allow_exec);
    assert_int_equal(cfg.log.level, JN_LOG_DEBUG);
    /* Keys left out keep their defaults. */
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    jn_config_free(&cfg);
}

static void test_bad_type_names_key_value_expectation(void **state) {
    (void)state;
    char *err = load_error("return { consumer = { batch_size = \"abc\" } }");
    assert_contains(err, "consumer.batch_size");
    assert_contains(err, "\"abc\"");
    assert_contains(err, "integer");
    free(err);
}

static void test_out_of_range_and_fraction(void **state) {
    (void)state;
    char *err = load_error("return { redis = { port = 70000 } }");
    assert_contains(err, "redis.port");
    assert_contains(err, "70000");
    assert_contains(err, "65535");
    free(err);
    err = load_error("return { consumer = { batch_size = 1.5 } }");
    assert_contains(err, "consumer.batch_size");
    assert_contains(err, "1.5");
    free(err);
    err = load_error("return { producer = { retry = { multiplier = 0.5 } } }");
    assert_contains(err, "producer.retry.multiplier");
    free(err);
}

static void test_bad_address(void **state) {
    (void)state;
    char *err = load_error("return { admin = { listen = 'localhost' } }");
    assert_contains(err, "admin.listen");
    assert_contains(err, "\"localhost\"");
    assert_contains(err, "host:port");
    free(err);
}

static void test_bad_bool(void **state) {
    (void)state;
    char *err = load_error("return { scripts = { watch = 'yes' } }");
    assert_contains(err, "scripts.watch");
    assert_contains(err, "true or false");
    free(err);
}

static void test_section_not_a_table(void **state) {
    (void)state;
    char *err = load_error("return { producer = { retry = 5 } }");
    assert_contains(err, "producer.retry");
    assert_contains(err, "table");
    free(err);
}

static void test_unknown_key_did_you_mean(void **state) {
    (void)state;
    char *err = load_error("return { producer = { retry = { atempts = 5 } } }");
    assert_contains(err, "producer.retry.atempts");
    assert_contains(err, "did you mean producer.retry.attempts");
    free(err);
}

static void test_unknown_key_far_from_any(void **state) {
    (void)state;
    char *err = load_error("return { completely_unrelated = 1 }");
    assert_contains(err, "completely_unrelated");
    assert_null(strstr(err, "did you mean"));
    free(err);
}

static void test_not_a_table(void **state) {
    (void)state;
    char *err = load_error("return 42");
    assert_contains(err, "must return a table");
    assert_contains(err, "number");
    free(err);
    err = load_error("local x = {}\n");
    assert_contains(err, "must return a table");
    assert_contains(err, "nil");
    free(err);
}

static void test_syntax_error(void **state) {
    (void)state;
    char *err = load_error("return { redis = { port = } }\n");
    assert_contains(err, "cannot load");
    assert_contains(err, "/tmp/jn_config_test_");
    assert_contains(err, ":1:"); /* the line */
    free(err);
}

static void test_runtime_error(void **state) {
    (void)state;
    char *err = load_error("error('boom from config')\n");
    assert_contains(err, "boom from config");
    free(err);
}

static void test_non_string_error(void **state) {
    (void)state;
    /* An error object that is not a string still gives a message. */
    char *err = load_error("error({})\n");
    assert_contains(err, "cannot load");
    free(err);
}

static void test_missing_file(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, "/nonexistent/junction.lua", &err), -1);
    assert_non_null(err);
    assert_contains(err, "/nonexistent/junction.lua");
    assert_contains(err, "--config");
    free(err);
}

static void test_env_overrides_file(void **state) {
    (void)state;
    setenv("KAFKA_BOOTSTRAP_SERVERS", "kafka-1:29092,kafka-2:29092", 1);
    setenv("REDIS_PORT", "6380", 1);
    setenv("JUNCTION_ANALYTICS_LISTEN", "0.0.0.0:18081", 1);
    jn_config cfg;
    char *err = NULL;
    int rc = load_text("return { kafka = { brokers = 'file:9092' }, redis = { port = 7000 },"
                       " analytics = { listen = '127.0.0.1:9999' } }",
                       &cfg, &err);
    if (rc != 0) fail_msg("%s", err);
    assert_string_equal(cfg.kafka.brokers, "kafka-1:29092,kafka-2:29092");
    assert_int_equal(cfg.redis.port, 6380);
    assert_string_equal(cfg.analytics.listen.host, "0.0.0.0");
    assert_int_equal(cfg.analytics.listen.port, 18081);
    jn_config_free(&cfg);
}

static void test_env_applies_without_file(void **state) {
    (void)state;
    setenv("JUNCTION_POLL_INTERVAL_MS", "5", 1);
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
    assert_int_equal(cfg.producer.poll_interval_ms, 5);
    jn_config_free(&cfg);
}

static void test_bad_env_value(void **state) {
    (void)state;
    setenv("REDIS_PORT", "notaport", 1);
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, NULL, &err), -1);
    assert_non_null(err);
    assert_contains(err, "REDIS_PORT");
    assert_contains(err, "redis.port");
    assert_contains(err, "\"notaport\"");
    assert_contains(err, "integer");
    free(err);
}

static void test_same_address_is_error(void **state) {
    (void)state;
    char *err = load_error("return { apis = { crm = { listen = '127.0.0.1:9000', script = 'a' },"
                           " inventory = { listen = '127.0.0.1:9000', script = 'b' } } }");
    assert_contains(err, "apis.crm.listen");
    assert_contains(err, "apis.inventory.listen");
    assert_contains(err, "127.0.0.1:9000");
    free(err);
}

static void test_same_address_by_env_is_error(void **state) {
    (void)state;
    setenv("JUNCTION_INVENTORY_LISTEN", "127.0.0.1:8081", 1);
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, "examples/local.lua", &err), -1);
    assert_contains(err, "127.0.0.1:8081");
    free(err);
}

static void test_same_port_different_host_ok(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    int rc = load_text("return { apis = { crm = { listen = '127.0.0.1:9000', script = 'a' },"
                       " inventory = { listen = '127.0.0.2:9000', script = 'b' } } }",
                       &cfg, &err);
    if (rc != 0) fail_msg("%s", err);
    jn_config_free(&cfg);
}

static void test_parse_addr(void **state) {
    (void)state;
    jn_addr a;
    assert_int_equal(jn_config_parse_addr("10.0.0.1:80", &a), 0);
    assert_string_equal(a.host, "10.0.0.1");
    assert_int_equal(a.port, 80);
    assert_int_equal(jn_config_parse_addr("::1:8080", &a), 0); /* last colon splits */
    assert_string_equal(a.host, "::1");
    assert_int_equal(a.port, 8080);
    assert_int_equal(jn_config_parse_addr("host", &a), -1);
    assert_int_equal(jn_config_parse_addr(":80", &a), -1);
    assert_int_equal(jn_config_parse_addr("host:", &a), -1);
    assert_int_equal(jn_config_parse_addr("host:0", &a), -1);
    assert_int_equal(jn_config_parse_addr("host:65536", &a), -1);
    assert_int_equal(jn_config_parse_addr("host:80x", &a), -1);
}

/* ---- the sandbox and limits of the config file ----------------------------------------- */

/* Loads text as a config file, expecting success; the caller frees cfg. */
static void load_ok(const char *text, jn_config *cfg) {
    char *err = NULL;
    if (load_text(text, cfg, &err) != 0) fail_msg("%s", err);
}

static int exists(const char *path) {
    struct stat st;
    return stat(path, &st) == 0;
}

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void test_os_execute_is_refused(void **state) {
    (void)state;
    char victim[64], text[160];
    snprintf(victim, sizeof victim, "/tmp/jn_config_test_exec_%d", (int)getpid());
    unlink(victim);
    snprintf(text, sizeof text, "os.execute('touch %s')\nreturn {}\n", victim);
    char *err = load_error(text);
    assert_contains(err, "/tmp/jn_config_test_");
    assert_contains(err, ":1: `os` is not available in a config file");
    assert_contains(err, "env(name, default)");
    free(err);
    assert_false(exists(victim));
}

static void test_io_open_for_writing_is_refused(void **state) {
    (void)state;
    char victim[64], text[160];
    snprintf(victim, sizeof victim, "/tmp/jn_config_test_write_%d", (int)getpid());
    unlink(victim);
    snprintf(text, sizeof text, "io.open('%s', 'w'):write('x')\nreturn {}\n", victim);
    char *err = load_error(text);
    assert_contains(err, "`io` is not available");
    free(err);
    assert_false(exists(victim));
}

static void test_loaders_and_host_libraries_are_absent(void **state) {
    (void)state;
    static const struct {
        const char *text, *name;
    } cases[] = {
        {"require 'os'\nreturn {}", "`require`"},
        {"load('return 1')\nreturn {}", "`load`"},
        {"loadfile('/dev/null')\nreturn {}", "`loadfile`"},
        {"dofile('/dev/null')\nreturn {}", "`dofile`"},
        {"collectgarbage()\nreturn {}", "`collectgarbage`"},
        {"debug.sethook()\nreturn {}", "`debug`"},
        {"return { x = package.path }", "`package`"},
        {"print('hello')\nreturn {}", "`print`"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *err = load_error(cases[i].text);
        assert_contains(err, cases[i].name);
        assert_contains(err, "is not available in a config file");
        free(err);
    }
}

static void test_string_dump_is_gone(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("assert(string.dump == nil, 'string.dump')\n"
            "assert(('').dump == nil, 'string metatable')\n"
            "return {}\n",
            &cfg);
    jn_config_free(&cfg);
}

/* What a config may reasonably use still works: the four libraries, the basic functions,
 * string methods, metatables without __gc, and globals of its own. */
static void test_data_tools_still_work(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("local defaults = setmetatable({}, { __index = { count = 3 } })\n"
            "host = '10.0.0.' .. math.max(1, 2)\n"
            "local parts = {}\n"
            "for _, w in ipairs({ 'a', 'b' }) do parts[#parts + 1] = w:upper() end\n"
            "local ok = pcall(error, 'caught')\n"
            "return {\n"
            "  kafka = { client_id = table.concat(parts, '-') .. utf8.char(67) },\n"
            "  redis = { host = host, port = tonumber('6390') },\n"
            "  consumer = { batch_size = defaults.count + (ok and 100 or 0) },\n"
            "}\n",
            &cfg);
    assert_string_equal(cfg.kafka.client_id, "A-BC");
    assert_string_equal(cfg.redis.host, "10.0.0.2");
    assert_int_equal(cfg.redis.port, 6390);
    assert_int_equal(cfg.consumer.batch_size, 3);
    jn_config_free(&cfg);
}

static void test_gc_metatable_is_refused(void **state) {
    (void)state;
    char *err = load_error("setmetatable({}, { __gc = function() end })\nreturn {}\n");
    assert_contains(err, ":1: setmetatable: a metatable with __gc is not allowed");
    free(err);
}

static void test_endless_loop_stops_at_instruction_limit(void **state) {
    (void)state;
    double t0 = now_s();
    char *err = load_error("local n = 0\nwhile true do n = n + 1 end\n");
    double took = now_s() - t0;
    assert_contains(err, "config: /tmp/jn_config_test_");
    assert_contains(err, "ran past 10,000,000 instructions, stopped at line 2");
    assert_contains(err, "a config file only returns a table");
    free(err);
    assert_true(took < 2.0); /* the instruction limit, not the clock, stopped it */
}

/* Once the limit is hit every instruction raises it again, so a pcall in the file only
 * delays the end by one instruction. */
static void test_pcall_cannot_swallow_the_limit(void **state) {
    (void)state;
    char *err = load_error("while true do pcall(function() while true do end end) end\n");
    assert_contains(err, "ran past 10,000,000 instructions");
    free(err);
    /* A tail call of pcall returns with no instruction left to raise it. */
    err = load_error("return pcall(function() while true do end end)\n");
    assert_contains(err, "ran past 10,000,000 instructions");
    free(err);
}

/* A pattern that backtracks for seconds runs in one C call, without hook ticks: the
 * matcher charges its steps to the same budget. */
static void test_backtracking_pattern_stops_at_the_limit(void **state) {
    (void)state;
    double t0 = now_s();
    char *err = load_error("local s = ('a'):rep(30000)\nreturn { x = s:find('.-.-.-b') }\n");
    double took = now_s() - t0;
    assert_contains(err, "ran past 10,000,000 instructions, stopped at line 2");
    free(err);
    assert_true(took < 2.0);
}

/* Few instructions, each a C call doing a lot of work: the clock stops it. */
static void test_slow_file_stops_at_time_limit(void **state) {
    (void)state;
    double t0 = now_s();
    char *err = load_error("local s = string.rep('x', 8 << 20)\nfor i = 1, 1e9 do\n"
                           "  local u = s:upper()\nend\nreturn {}\n");
    double took = now_s() - t0;
    assert_contains(err, "ran longer than 2 s, stopped at line");
    assert_contains(err, "a config file only returns a table");
    free(err);
    assert_true(took >= 2.0 && took < 10.0);
}

static void test_huge_string_hits_memory_limit(void **state) {
    (void)state;
    /* Doubling: a few instructions, a gigabyte wanted. */
    char *err = load_error("local s = 'x'\nfor i = 1, 30 do s = s .. s end\nreturn {}\n");
    assert_contains(err, "config: /tmp/jn_config_test_");
    assert_contains(err, "used more than 64 MiB of memory");
    free(err);
}

static void test_huge_table_hits_memory_limit(void **state) {
    (void)state;
    char *err = load_error("local t = {}\n"
                           "for i = 1, 1 << 24 do t[i] = ('x'):rep(1000) .. i end\n"
                           "return {}\n");
    assert_contains(err, "used more than 64 MiB of memory");
    free(err);
}

/* The ceiling holds even when the file catches the error, and the file may go on. */
static void test_memory_error_caught_in_file_is_harmless(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("local ok = pcall(function() local s = 'x' for i = 1, 30 do s = s .. s end end)\n"
            "return { log = { level = ok and 'debug' or 'warn' } }\n",
            &cfg);
    assert_int_equal(cfg.log.level, JN_LOG_WARN);
    jn_config_free(&cfg);
}

static void test_env_returns_variable_or_default(void **state) {
    (void)state;
    const char *text = "return { kafka = { client_id = env('JN_TEST_X', 'd') },\n"
                       "  redis = { host = env('JN_TEST_X') == nil and 'unset' or 'set' } }\n";
    jn_config cfg;
    setenv("JN_TEST_X", "from-env", 1);
    load_ok(text, &cfg);
    assert_string_equal(cfg.kafka.client_id, "from-env");
    assert_string_equal(cfg.redis.host, "set");
    jn_config_free(&cfg);
    unsetenv("JN_TEST_X");
    load_ok(text, &cfg);
    assert_string_equal(cfg.kafka.client_id, "d");
    assert_string_equal(cfg.redis.host, "unset");
    jn_config_free(&cfg);
}

static void test_undefined_global_names_itself(void **state) {
    (void)state;
    char *err = load_error("local x = 1\nreturn { redis = { port = prot } }\n");
    assert_contains(err, ":2: `prot` is not available in a config file");
    assert_contains(err, "env(name, default)");
    assert_contains(err, "string, table, math, utf8");
    free(err);
}

/* Every shipped configuration still loads in the sandbox (with the secrets the orders
 * example asks for). */
static void test_every_example_loads(void **state) {
    (void)state;
    setenv("ANALYTICS_TOKEN", "example-token", 1);
    setenv("ORDERS_API_TOKEN", "example-token", 1);
    glob_t g;
    assert_int_equal(glob("examples/*.lua", 0, NULL, &g), 0);
    assert_true(g.gl_pathc >= 4);
    for (size_t i = 0; i < g.gl_pathc; i++) {
        jn_config cfg;
        char *err = NULL;
        if (jn_config_load(&cfg, g.gl_pathv[i], &err) != 0) fail_msg("%s: %s", g.gl_pathv[i], err);
        jn_config_free(&cfg);
    }
    globfree(&g);
    unsetenv("ANALYTICS_TOKEN");
    unsetenv("ORDERS_API_TOKEN");
}

/* ---- pipelines ----------------------------------------------------------------------- */

static const jn_pipeline_config *find_pipeline(const jn_config *cfg, const char *name) {
    for (int i = 0; i < cfg->npipelines; i++)
        if (!strcmp(cfg->pipelines[i].name, name)) return &cfg->pipelines[i];
    fail_msg("no pipeline %s", name);
    return NULL;
}

/* A pipeline's left-out keys are the consumer.* keys: every field against the key it comes
 * from, with values that are all different from the defaults. */
static void test_consumer_keys_are_a_pipelines_defaults(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("return { consumer = { dead_letter_topic = 'dl', auto_offset_reset = 'latest', "
            "batch_size = 7, linger_ms = 3, max_inflight_batches = 9, max_pending = 123, "
            "request_timeout_ms = 4567, retry_base_ms = 11, retry_max_ms = 22, dedupe_ttl_s = "
            "33, hold_max = 44, hold_ms = 55 },\n"
            "pipelines = { default = { group_id = 'g1', transform = 'm.lua',\n"
            "  streams = { customers = { topic = 'cust', changelog = true } },\n"
            "  tables = { products = 'prod' },\n"
            "  sinks = { analytics = { type = 'http', url = 'http://a:1/x' } } } } }",
            &cfg);
    assert_int_equal(cfg.npipelines, 1);
    const jn_pipeline_config *p = &cfg.pipelines[0];
    assert_string_equal(p->name, "default");
    assert_string_equal(p->group_id, "g1");
    assert_string_equal(p->auto_offset_reset, "latest");
    assert_string_equal(p->transform, "m.lua");
    assert_string_equal(p->dead_letter_topic, "dl");
    assert_true(p->dedupe);
    assert_int_equal(p->dedupe_ttl_s, 33);
    assert_string_equal(p->dedupe_prefix, "processed:");
    assert_int_equal(p->max_pending, 123);
    assert_int_equal(p->hold_ms, 55);
    assert_int_equal(p->hold_max, 44);
    assert_int_equal(p->nstreams, 1);
    assert_string_equal(p->streams[0].name, "customers");
    assert_string_equal(p->streams[0].topic, "cust");
    assert_string_equal(p->streams[0].changelog, "g1-customers-changelog");
    assert_int_equal(p->ntables, 1);
    assert_string_equal(p->tables[0].name, "products");
    assert_string_equal(p->tables[0].topic, "prod");
    assert_null(p->tables[0].changelog);
    assert_int_equal(p->nsinks, 1);
    const jn_sink_config *s = &p->sinks[0];
    assert_string_equal(s->name, "analytics");
    assert_int_equal(s->type, JN_SINK_HTTP);
    assert_string_equal(s->url, "http://a:1/x");
    assert_non_null(s->headers);
    assert_null(s->headers[0]);
    assert_int_equal(s->batch_size, 7);
    assert_int_equal(s->linger_ms, 3);
    assert_int_equal(s->max_inflight, 9);
    assert_int_equal(s->timeout_ms, 4567);
    assert_int_equal(s->retry_base_ms, 11);
    assert_int_equal(s->retry_max_ms, 22);
    assert_null(s->ca_file);
    assert_true(s->verify_tls);
    assert_null(s->topic);
    jn_config_free(&cfg);
    assert_null(cfg.pipelines);
    assert_int_equal(cfg.npipelines, 0);
}

/* The environment overrides consumer.* before a pipeline takes them. */
static void test_pipeline_defaults_follow_environment(void **state) {
    (void)state;
    setenv("JUNCTION_DEDUPE_TTL_S", "77", 1);
    setenv("JUNCTION_AUTO_OFFSET_RESET", "latest", 1);
    jn_config cfg;
    load_ok("return { consumer = { dedupe_ttl_s = 5 }, pipelines = { default = {\n"
            "  transform = 'm.lua', streams = { s = 'in' },\n"
            "  sinks = { out = { type = 'http', url = 'http://a:1/x' } } } } }",
            &cfg);
    assert_int_equal(cfg.pipelines[0].dedupe_ttl_s, 77);
    assert_string_equal(cfg.pipelines[0].auto_offset_reset, "latest");
    assert_string_equal(cfg.pipelines[0].group_id, "junction-default");
    jn_config_free(&cfg);
}

/* Header values kept out of the config file, removed by the caller. */
typedef struct {
    char *key_file, *secret_file;
} secrets;

static secrets make_secrets(void) {
    secrets s = {write_temp("key-from-file\r\n"), write_temp("file-secret\n")};
    setenv("JN_TEST_TOKEN", "tok-env", 1);
    setenv("JN_TEST_KEY_FILE", s.key_file, 1);
    return s;
}

static void drop_secrets(secrets *s) {
    unlink(s->key_file);
    unlink(s->secret_file);
    free(s->key_file);
    free(s->secret_file);
}

/* Two pipelines, in the list or the map form (%s: the file of X-Secret, twice). */
#define ORDERS_PIPELINE                                                                            \
    "{ name = 'orders', group_id = 'junction-orders-g', auto_offset_reset = 'earliest',\n"         \
    "  transform = 'examples/transforms/enrich_orders.lua', dead_letter_topic = 'orders_dead',\n"  \
    "  dedupe = { ttl_s = 86400, prefix = 'orders:' },\n"                                          \
    "  max_pending = 20000, hold_ms = 5000, hold_max = 10000,\n"                                   \
    "  streams = { orders = { topic = 'orders', changelog = true },\n"                             \
    "              returns = { topic = 'returns', changelog = 'returns_log' },\n"                  \
    "              refunds = 'refunds' },\n"                                                       \
    "  tables = { customers = 'customer_data', products = { topic = 'inventory_data' } },\n"       \
    "  sinks = {\n"                                                                                \
    "    analytics = { type = 'http', url = 'https://a.example/analytics',\n"                      \
    "      headers = { Authorization = { env = 'JN_TEST_TOKEN', prefix = 'Bearer ' },\n"           \
    "                  ['X-Api-Key'] = { env = 'JN_TEST_KEY' },\n"                                 \
    "                  ['X-Secret'] = { file = '%s' }, ['X-Plain'] = 'plain' },\n"                 \
    "      batch_size = 500, linger_ms = 20, max_inflight = 4, timeout_ms = 10000,\n"              \
    "      retry_base_ms = 200, retry_max_ms = 10000, ca_file = '/etc/ca.pem',\n"                  \
    "      verify_tls = false },\n"                                                                \
    "    enriched = { type = 'kafka', topic = 'orders_enriched', key = 'order_id' } } }"
#define AUDIT_PIPELINE                                                                             \
    "{ name = 'audit', transform = 'audit.lua', dedupe = false, streams = { events = 'events' "    \
    "},\n"                                                                                         \
    "  sinks = { out = { type = 'kafka', topic = 'audit_out' },\n"                                 \
    "            hook = { type = 'http', url = 'http://h/x' } } }"
/* consumer.* values the audit pipeline's left-out keys take. */
#define CONSUMER_KEYS                                                                              \
    "consumer = { batch_size = 77, linger_ms = 3, max_inflight_batches = 5,\n"                     \
    "  request_timeout_ms = 4321, retry_base_ms = 111, retry_max_ms = 2222, max_pending = 999,\n"  \
    "  hold_ms = 1234, hold_max = 55, dedupe_ttl_s = 600, dead_letter_topic = 'dl',\n"             \
    "  auto_offset_reset = 'latest' },\n"

static void check_orders(const jn_pipeline_config *p) {
    assert_string_equal(p->group_id, "junction-orders-g");
    assert_string_equal(p->auto_offset_reset, "earliest");
    assert_string_equal(p->transform, "examples/transforms/enrich_orders.lua");
    assert_string_equal(p->dead_letter_topic, "orders_dead");
    assert_true(p->dedupe);
    assert_int_equal(p->dedupe_ttl_s, 86400);
    assert_string_equal(p->dedupe_prefix, "orders:");
    assert_int_equal(p->max_pending, 20000);
    assert_int_equal(p->hold_ms, 5000);
    assert_int_equal(p->hold_max, 10000);
    /* In name order, whatever the hash table's. */
    assert_int_equal(p->nstreams, 3);
    assert_string_equal(p->streams[0].name, "orders");
    assert_string_equal(p->streams[0].topic, "orders");
    assert_string_equal(p->streams[0].changelog, "junction-orders-g-orders-changelog");
    assert_string_equal(p->streams[1].name, "refunds");
    assert_string_equal(p->streams[1].topic, "refunds");
    assert_null(p->streams[1].changelog);
    assert_string_equal(p->streams[2].name, "returns");
    assert_string_equal(p->streams[2].topic, "returns");
    assert_string_equal(p->streams[2].changelog, "returns_log");
    assert_int_equal(p->ntables, 2);
    assert_string_equal(p->tables[0].name, "customers");
    assert_string_equal(p->tables[0].topic, "customer_data");
    assert_string_equal(p->tables[1].name, "products");
    assert_string_equal(p->tables[1].topic, "inventory_data");
    assert_null(p->tables[1].changelog);
    assert_int_equal(p->nsinks, 2);
    const jn_sink_config *h = &p->sinks[0], *k = &p->sinks[1];
    assert_string_equal(h->name, "analytics");
    assert_int_equal(h->type, JN_SINK_HTTP);
    assert_string_equal(h->url, "https://a.example/analytics");
    assert_string_equal(h->headers[0], "Authorization: Bearer tok-env");
    assert_string_equal(h->headers[1], "X-Api-Key: key-from-file");
    assert_string_equal(h->headers[2], "X-Plain: plain");
    assert_string_equal(h->headers[3], "X-Secret: file-secret");
    assert_null(h->headers[4]);
    assert_int_equal(h->batch_size, 500);
    assert_int_equal(h->linger_ms, 20);
    assert_int_equal(h->max_inflight, 4);
    assert_int_equal(h->timeout_ms, 10000);
    assert_int_equal(h->retry_base_ms, 200);
    assert_int_equal(h->retry_max_ms, 10000);
    assert_string_equal(h->ca_file, "/etc/ca.pem");
    assert_false(h->verify_tls);
    assert_string_equal(k->name, "enriched");
    assert_int_equal(k->type, JN_SINK_KAFKA);
    assert_string_equal(k->topic, "orders_enriched");
    assert_string_equal(k->key_field, "order_id");
    assert_null(k->url);
    assert_null(k->headers);
}

/* Everything left out: the consumer.* values of CONSUMER_KEYS, or the documented default. */
static void check_audit(const jn_pipeline_config *p) {
    assert_string_equal(p->group_id, "junction-audit");
    assert_string_equal(p->auto_offset_reset, "latest");
    assert_string_equal(p->transform, "audit.lua");
    assert_string_equal(p->dead_letter_topic, "dl");
    assert_false(p->dedupe);
    assert_int_equal(p->dedupe_ttl_s, 600);
    assert_string_equal(p->dedupe_prefix, "processed:");
    assert_int_equal(p->max_pending, 999);
    assert_int_equal(p->hold_ms, 1234);
    assert_int_equal(p->hold_max, 55);
    assert_int_equal(p->nstreams, 1);
    assert_string_equal(p->streams[0].name, "events");
    assert_string_equal(p->streams[0].topic, "events");
    assert_null(p->streams[0].changelog);
    assert_int_equal(p->ntables, 0);
    assert_int_equal(p->nsinks, 2);
    const jn_sink_config *h = &p->sinks[0], *k = &p->sinks[1];
    assert_string_equal(h->name, "hook");
    assert_string_equal(h->url, "http://h/x");
    assert_non_null(h->headers);
    assert_null(h->headers[0]);
    assert_int_equal(h->batch_size, 77);
    assert_int_equal(h->linger_ms, 3);
    assert_int_equal(h->max_inflight, 5);
    assert_int_equal(h->timeout_ms, 4321);
    assert_int_equal(h->retry_base_ms, 111);
    assert_int_equal(h->retry_max_ms, 2222);
    assert_null(h->ca_file);
    assert_true(h->verify_tls);
    assert_string_equal(k->name, "out");
    assert_string_equal(k->topic, "audit_out");
    assert_string_equal(k->key_field, "id");
}

/* tmpl with its %s (if any) replaced by arg, into out. The templates below are chosen at
 * run time, so a printf of one could not be checked (-Wformat-nonliteral). */
static void fill(char *out, size_t n, const char *tmpl, const char *arg) {
    const char *at = strstr(tmpl, "%s");
    int w = at ? snprintf(out, n, "%.*s%s%s", (int)(at - tmpl), tmpl, arg, at + 2)
               : snprintf(out, n, "%s", tmpl);
    assert_true(w >= 0 && (size_t)w < n);
}

/* Loads the two pipelines in the given form: the list keeps the file's order, the map
 * sorts by name. */
static void check_two_pipelines(const char *form, const char *first) {
    secrets sec = make_secrets();
    char text[8192];
    fill(text, sizeof text, form, sec.secret_file);
    jn_config cfg;
    load_ok(text, &cfg);
    drop_secrets(&sec);
    assert_int_equal(cfg.npipelines, 2);
    assert_string_equal(cfg.pipelines[0].name, first);
    check_orders(find_pipeline(&cfg, "orders"));
    check_audit(find_pipeline(&cfg, "audit"));
    /* consumer.* still parse; they add no pipeline of their own. */
    assert_int_equal(cfg.consumer.batch_size, 77);
    jn_config_free(&cfg);
}

static void test_pipelines_list_form(void **state) {
    (void)state;
    check_two_pipelines("return { " CONSUMER_KEYS "pipelines = { " ORDERS_PIPELINE
                        ",\n" AUDIT_PIPELINE " } }",
                        "orders");
}

static void test_pipelines_map_form(void **state) {
    (void)state;
    check_two_pipelines("return { " CONSUMER_KEYS "pipelines = { orders = " ORDERS_PIPELINE
                        ",\n audit = " AUDIT_PIPELINE " } }",
                        "audit");
}

static void test_pipelines_map_sorted_without_names(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("local function p(t) return { transform = 't.lua', dedupe = false, streams = { s = "
            "t }, sinks = { k = { type = 'kafka', topic = 'o' } } } end\n"
            "return { pipelines = { echo = p('e'), delta = p('d'), charlie = p('c'), "
            "bravo = p('b'), alpha = p('a') } }",
            &cfg);
    static const char *const order[] = {"alpha", "bravo", "charlie", "delta", "echo"};
    assert_int_equal(cfg.npipelines, 5);
    for (int i = 0; i < 5; i++) {
        assert_string_equal(cfg.pipelines[i].name, order[i]);
        assert_int_equal(cfg.pipelines[i].streams[0].topic[0], order[i][0]);
    }
    jn_config_free(&cfg);
}

/* A pipeline's metatable never runs: the section is read raw. */
static void test_pipelines_read_without_metamethods(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("local p = setmetatable({ name = 'p', streams = { s = 't' },"
            " sinks = { k = { type = 'kafka', topic = 'o' } } },"
            " { __index = function() error('metamethod ran') end })\n"
            "p.transform = 'x.lua'\n"
            "return { pipelines = { p } }",
            &cfg);
    assert_string_equal(cfg.pipelines[0].group_id, "junction-p");
    jn_config_free(&cfg);
}

/* A minimal valid pipeline, in pieces an error case swaps. */
#define P_NAME    "name = 'p', "
#define P_XFORM   "transform = 't.lua', "
#define P_STREAMS "streams = { s = 'in' }, "
#define P_SINKS   "sinks = { out = { type = 'kafka', topic = 'out' } }"
#define ONE(body) "return { pipelines = { { " body " } } }"
#define WITH_HTTP(sink)                                                                            \
    ONE(P_NAME P_XFORM P_STREAMS "sinks = { out = { type = 'http', " sink " } }")
#define URL "url = 'http://h/x', "

typedef struct {
    const char *text;
    const char *needles[4];
} error_case;

static void check_error_cases(const error_case *cases, size_t n) {
    for (size_t i = 0; i < n; i++) {
        char *err = load_error(cases[i].text);
        assert_contains(err, "config: ");
        assert_null(strchr(err, '\n')); /* one line */
        for (int j = 0; j < 4 && cases[i].needles[j]; j++)
            assert_contains(err, cases[i].needles[j]);
        free(err);
    }
}

static void test_pipeline_unknown_keys(void **state) {
    (void)state;
    static const error_case cases[] = {
        {ONE(P_NAME "transfrom = 't.lua', " P_STREAMS P_SINKS),
         {"unknown key pipelines.p.transfrom", "(did you mean pipelines.p.transform?)"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", colour = 1"),
         {"unknown key pipelines.p.colour", "a pipeline takes name, group_id,"}},
        {WITH_HTTP(URL "batchsize = 5"),
         {"unknown key pipelines.p.sinks.out.batchsize",
          "(did you mean pipelines.p.sinks.out.batch_size?)"}},
        /* url is not a typo of key: no suggestion, the kafka sink's keys instead. */
        {ONE(P_NAME P_XFORM P_STREAMS
             "sinks = { out = { type = 'kafka', topic = 'o', url = 'x' } }"),
         {"unknown key pipelines.p.sinks.out.url", "a kafka sink takes type, topic, key"}},
        {ONE(P_NAME P_XFORM "streams = { s = { topic = 'in', changelgo = true } }, " P_SINKS),
         {"unknown key pipelines.p.streams.s.changelgo",
          "(did you mean pipelines.p.streams.s.changelog?)"}},
        {ONE(P_NAME P_XFORM P_STREAMS
             "tables = { t = { topic = 'x', changelog = true } }, " P_SINKS),
         {"unknown key pipelines.p.tables.t.changelog", "a table takes topic"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", dedupe = { prefx = 'a:' }"),
         {"unknown key pipelines.p.dedupe.prefx", "(did you mean pipelines.p.dedupe.prefix?)"}},
        {WITH_HTTP(URL "headers = { Authorization = { evn = 'JN_TEST_TOKEN' } }"),
         {"unknown key pipelines.p.sinks.out.headers.Authorization.evn",
          "(did you mean pipelines.p.sinks.out.headers.Authorization.env?)"}},
        {"return { pipeline = {} }", {"unknown key pipeline", "(did you mean pipelines?)"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", [1] = 'x'"),
         {"config: pipelines.p has a key 1 (a number); a pipeline takes name,"}},
    };
    check_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_pipeline_wrong_types_and_ranges(void **state) {
    (void)state;
    static const error_case cases[] = {
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", max_pending = 'many'"),
         {"pipelines.p.max_pending must be an integer from 1 to 10000000", "\"many\" (a string)"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", hold_ms = 1.5"),
         {"pipelines.p.hold_ms must be an integer from 0 to 86400000", "got 1.5"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", dedupe = { ttl_s = 0 }"),
         {"pipelines.p.dedupe.ttl_s must be an integer from 1 to 315360000", "got 0"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", dedupe = 'yes'"),
         {"pipelines.p.dedupe must be true, false or a table", "\"yes\""}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", dedupe = { enabled = 1 }"),
         {"pipelines.p.dedupe.enabled must be true or false", "got 1"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", dedupe = { prefix = '' }"),
         {"pipelines.p.dedupe.prefix must be a non-empty string"}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", auto_offset_reset = 'smallest'"),
         {"pipelines.p.auto_offset_reset must be \"earliest\" or \"latest\"", "\"smallest\""}},
        {ONE(P_NAME P_XFORM P_STREAMS P_SINKS ", group_id = 5"),
         {"pipelines.p.group_id must be a non-empty string", "got 5 (a number)"}},
        {WITH_HTTP(URL "batch_size = 0"),
         {"pipelines.p.sinks.out.batch_size must be an integer from 1 to 100000", "got 0"}},
        {WITH_HTTP(URL "max_inflight = 1001"),
         {"pipelines.p.sinks.out.max_inflight must be an integer from 1 to 1000"}},
        {WITH_HTTP(URL "verify_tls = 'no'"),
         {"pipelines.p.sinks.out.verify_tls must be true or false", "\"no\""}},
        {WITH_HTTP(URL "ca_file = false"),
         {"pipelines.p.sinks.out.ca_file must be a non-empty string"}},
        {ONE(P_NAME P_XFORM "streams = { s = { topic = 'in', changelog = 5 } }, " P_SINKS),
         {"pipelines.p.streams.s.changelog must be true", "or a topic name", "got 5"}},
        {ONE(P_NAME P_XFORM "streams = { s = 5 }, " P_SINKS),
         {"pipelines.p.streams.s must be a topic name or a table", "got 5"}},
        {ONE(P_NAME P_XFORM "streams = { s = '' }, " P_SINKS),
         {"pipelines.p.streams.s must be a non-empty string (the Kafka topic to read)"}},
        {ONE(P_NAME P_XFORM "streams = 'in', " P_SINKS), {"pipelines.p.streams must be a table"}},
        {ONE(P_NAME P_XFORM "streams = { 'in' }, " P_SINKS),
         {"pipelines.p.streams has a key 1 (a number)", "orders = \"orders\""}},
        {ONE(P_NAME P_XFORM P_STREAMS "sinks = { out = 'http://x' }"),
         {"pipelines.p.sinks.out must be a table with a type"}},
        {"return { pipelines = 5 }", {"config: pipelines must be a list of pipelines", "got 5"}},
        {"return { pipelines = {} }", {"config: pipelines is empty", "leave the key out"}},
        {"return { pipelines = { { name = 'a' }, b = {} } }",
         {"pipelines must be", "mixing the two"}},
        {"return { pipelines = { 7 } }", {"config: pipelines[1] must be a table", "got 7"}},
    };
    check_error_cases(cases, sizeof cases / sizeof cases[0]);
}

static void test_pipeline_missing_and_conflicting(void **state) {
    (void)state;
    static const error_case cases[] = {
        {ONE(P_XFORM P_STREAMS P_SINKS),
         {"config: pipelines[1].name must be a name of letters, digits, _ and -",
          "every pipeline needs one"}},
        {"return { pipelines = { { name = 'a b', " P_XFORM P_STREAMS P_SINKS " } } }",
         {"config: pipelines[1].name must be", "got \"a b\""}},
        {"return { pipelines = { ['a b'] = { " P_XFORM P_STREAMS P_SINKS " } } }",
         {"config: pipelines has a pipeline named \"a b\"", "letters, digits, _ and -"}},
        {"return { pipelines = { q = { name = 'p', " P_XFORM P_STREAMS P_SINKS " } } }",
         {"config: pipelines.q.name must be left out or be \"q\""}},
        {ONE(P_NAME P_STREAMS P_SINKS),
         {"config: pipelines.p.transform must be a non-empty string (the script"}},
        {"return { pipelines = { { " P_NAME P_XFORM P_STREAMS P_SINKS " }, { " P_NAME P_XFORM
         "dedupe = false, " P_STREAMS P_SINKS " } } }",
         {"config: pipelines.p is defined twice (pipelines[1] and pipelines[2])"}},
        {ONE(P_NAME P_XFORM P_SINKS),
         {"config: pipelines.p.streams is missing or empty", "at least one stream"}},
        {ONE(P_NAME P_XFORM "streams = {}, " P_SINKS),
         {"config: pipelines.p.streams is missing or empty"}},
        {ONE(P_NAME P_XFORM P_STREAMS "tables = { t = 'x' }"),
         {"config: pipelines.p.sinks is missing or empty", "needs a sink"}},
        {ONE(P_NAME P_XFORM "streams = { a = 'x' }, tables = { b = 'x' }, " P_SINKS),
         {"config: pipelines.p.streams.a and pipelines.p.tables.b both read topic \"x\"",
          "as a stream or as a table"}},
        {ONE(P_NAME P_XFORM "streams = { x = 'in' }, tables = { x = 'other' }, " P_SINKS),
         {"config: pipelines.p.streams.x and pipelines.p.tables.x have the same name", "on.x"}},
        {WITH_HTTP("batch_size = 5"),
         {"config: pipelines.p.sinks.out.url must be a non-empty string (an http sink needs the "
          "URL to POST to)"}},
        {WITH_HTTP("url = 'ftp://h/x'"),
         {"config: pipelines.p.sinks.out.url must start with http:// or https://"}},
        {ONE(P_NAME P_XFORM P_STREAMS "sinks = { out = { type = 'kafka', key = 'id' } }"),
         {"config: pipelines.p.sinks.out.topic must be a non-empty string",
          "a kafka sink needs the topic"}},
        {ONE(P_NAME P_XFORM P_STREAMS "sinks = { out = { type = 'ftp', topic = 'x' } }"),
         {"config: pipelines.p.sinks.out.type must be \"http\" or \"kafka\"", "got \"ftp\""}},
        {ONE(P_NAME P_XFORM P_STREAMS "sinks = { out = { topic = 'x' } }"),
         {"config: pipelines.p.sinks.out.type must be \"http\" or \"kafka\""}},
        {"return { pipelines = { a = { " P_XFORM "streams = { s = 'a' }, " P_SINKS " },\n"
         "  b = { " P_XFORM "streams = { s = 'b' }, " P_SINKS " } } }",
         {"config: pipelines.a and pipelines.b both mark processed records", "\"processed:\"",
          "set pipelines.b.dedupe.prefix"}},
        {"return { pipelines = { a = { " P_XFORM
         "group_id = 'g', dedupe = false, " P_STREAMS P_SINKS " },\n  b = { " P_XFORM
         "group_id = 'g', dedupe = false, " P_STREAMS P_SINKS " } } }",
         {"config: pipelines.a and pipelines.b are both in consumer group \"g\"",
          "set pipelines.b.group_id"}},
        {ONE(P_NAME P_XFORM "streams = { ['my-stream'] = 'in' }, " P_SINKS),
         {"config: pipelines.p.streams has a stream named \"my-stream\"", "letters, digits and _"}},
        {ONE(P_NAME P_XFORM P_STREAMS "tables = { ['1st'] = 'x' }, " P_SINKS),
         {"config: pipelines.p.tables has a table named \"1st\"", "not starting with a digit"}},
        {ONE(P_NAME P_XFORM P_STREAMS "sinks = { ['out.put'] = { type = 'kafka', topic = 'o' } }"),
         {"config: pipelines.p.sinks has a sink named \"out.put\"", "letters, digits and _"}},
    };
    check_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* Where a header's value comes from goes into the message; the value never does. */
static void test_pipeline_header_sources_missing(void **state) {
    (void)state;
    static const error_case cases[] = {
        {WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN' } }"),
         {"config: pipelines.p.sinks.out.headers.Authorization:",
          "the environment variable JN_TEST_TOKEN is not set", "nor is JN_TEST_TOKEN_FILE"}},
        {WITH_HTTP(URL "headers = { Authorization = { file = '/nonexistent/jn-token' } }"),
         {"config: pipelines.p.sinks.out.headers.Authorization:",
          "cannot read the file /nonexistent/jn-token", "No such file"}},
        {WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN', file = '/x' } }"),
         {"config: pipelines.p.sinks.out.headers.Authorization takes env or file, not both"}},
        {WITH_HTTP(URL "headers = { Authorization = { prefix = 'Bearer ' } }"),
         {"config: pipelines.p.sinks.out.headers.Authorization needs env = \"NAME\"", "file ="}},
        {WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN', prefix = 5 } }"),
         {"config: pipelines.p.sinks.out.headers.Authorization.prefix must be a string"}},
        {WITH_HTTP(URL "headers = { ['Bad Name'] = 'x' }"),
         {"config: pipelines.p.sinks.out.headers has a header named \"Bad Name\""}},
    };
    check_error_cases(cases, sizeof cases / sizeof cases[0]);
    /* A device or FIFO could block start-up, and a big file is not one value. */
    char *err = load_error(WITH_HTTP(URL "headers = { Authorization = { file = '/dev/zero' } }"));
    assert_contains(err, "pipelines.p.sinks.out.headers.Authorization: cannot read the file "
                         "/dev/zero (it is not a regular file)");
    free(err);
    char big[70000], text[512];
    memset(big, 'x', sizeof big - 1);
    big[sizeof big - 1] = '\0';
    char *big_file = write_temp(big);
    snprintf(text, sizeof text, WITH_HTTP(URL "headers = { Authorization = { file = '%s' } }"),
             big_file);
    err = load_error(text);
    unlink(big_file);
    free(big_file);
    assert_contains(err, "pipelines.p.sinks.out.headers.Authorization: cannot read the file");
    assert_contains(err, "(it is larger than 65536 bytes;");
    assert_null(strstr(err, "xxxx"));
    free(err);
    /* NAME_FILE naming a file that is not there: both named. */
    setenv("JN_TEST_TOKEN_FILE", "/nonexistent/jn-token-file", 1);
    err = load_error(WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN' } }"));
    assert_contains(err, "pipelines.p.sinks.out.headers.Authorization");
    assert_contains(err, "/nonexistent/jn-token-file named by JN_TEST_TOKEN_FILE");
    free(err);
}

#define SECRET "s3cr3t-Value-42"

/* Loads text (a %s for path) expecting an error that says each needle and never SECRET. */
static void expect_secret_kept(const char *text, const char *path, const char *n1, const char *n2) {
    char buf[2048];
    fill(buf, sizeof buf, text, path);
    char *err = load_error(buf);
    assert_contains(err, n1);
    if (n2) assert_contains(err, n2);
    if (strstr(err, SECRET) || strstr(err, "s3cr3t")) fail_msg("secret in \"%s\"", err);
    free(err);
}

static void test_pipeline_errors_never_show_secrets(void **state) {
    (void)state;
    char *two_lines = write_temp(SECRET "\nX-Evil: 1\n");
    char *empty = write_temp("\n");
    /* A value of two lines, from the environment, a file, the file NAME_FILE names and the
     * config file itself. */
    setenv("JN_TEST_TOKEN", SECRET "\r\nX-Evil: 1", 1);
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN' } }%s"),
                       "", "pipelines.p.sinks.out.headers.Authorization",
                       "the environment variable JN_TEST_TOKEN holds more than one line");
    unsetenv("JN_TEST_TOKEN");
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = { file = '%s' } }"), two_lines,
                       "pipelines.p.sinks.out.headers.Authorization", "holds more than one line");
    setenv("JN_TEST_TOKEN_FILE", two_lines, 1);
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN' } }%s"),
                       "", "named by JN_TEST_TOKEN_FILE", "holds more than one line");
    unsetenv("JN_TEST_TOKEN_FILE");
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = 'Bearer " SECRET "\\nX: y' }%s"),
                       "", "pipelines.p.sinks.out.headers.Authorization",
                       "the value in the config file holds more than one line");
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = { file = '%s' } }"), empty,
                       "pipelines.p.sinks.out.headers.Authorization", "is empty");
    /* A secret where a name or a table belongs. */
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = { env = '" SECRET "' } }%s"), "",
                       "pipelines.p.sinks.out.headers.Authorization.env must be the name of an "
                       "environment variable",
                       NULL);
    expect_secret_kept(WITH_HTTP(URL "headers = 'Authorization: Bearer " SECRET "' %s"), "",
                       "pipelines.p.sinks.out.headers must be a table", "got a string");
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN', prefix "
                                     "= { '" SECRET "' } } }%s"),
                       "", "headers.Authorization.prefix must be a string", NULL);
    /* A mistake after the secret was read: the message is about that key alone. */
    setenv("JN_TEST_TOKEN", SECRET, 1);
    expect_secret_kept(WITH_HTTP(URL "headers = { Authorization = { env = 'JN_TEST_TOKEN' } }, "
                                     "verify_tls = 'no'%s"),
                       "", "pipelines.p.sinks.out.verify_tls must be true or false", NULL);
    unlink(two_lines);
    unlink(empty);
    free(two_lines);
    free(empty);
}

/* What --help-config prints, captured from stdout. */
static char *describe_output(void) {
    char *path = write_temp("");
    fflush(stdout);
    int saved = dup(STDOUT_FILENO), fd = open(path, O_WRONLY | O_TRUNC);
    assert_true(saved >= 0 && fd >= 0);
    dup2(fd, STDOUT_FILENO);
    close(fd);
    jn_config_describe();
    fflush(stdout);
    dup2(saved, STDOUT_FILENO);
    close(saved);
    FILE *f = fopen(path, "r");
    static char out[65536];
    size_t n = fread(out, 1, sizeof out - 1, f);
    out[n] = '\0';
    fclose(f);
    unlink(path);
    free(path);
    return out;
}

static void test_help_config_lists_pipelines_without_secrets(void **state) {
    (void)state;
    setenv("JN_TEST_TOKEN", SECRET, 1);
    setenv("ANALYTICS_TOKEN", SECRET, 1);
    const char *out = describe_output();
    unsetenv("ANALYTICS_TOKEN");
    assert_contains(out, "consumer.dead_letter_topic");
    assert_contains(out, "pipelines.<p>.transform");
    assert_contains(out, "pipelines.<p>.streams.<s>.changelog");
    assert_contains(out, "pipelines.<p>.sinks.<k>.headers.<H>.env");
    assert_contains(out, "pipelines.<p>.sinks.<k>.max_inflight");
    assert_contains(out, "consumer.max_inflight_batches");
    assert_null(strstr(out, SECRET));
}

/* ---- sources ----------------------------------------------------------------------- */

static const jn_source_config *find_source(const jn_config *cfg, const char *name) {
    for (int i = 0; i < cfg->nsources; i++)
        if (!strcmp(cfg->sources[i].name, name)) return &cfg->sources[i];
    fail_msg("no source %s", name);
    return NULL;
}

/* The seed's two sources as examples/local.lua writes them: what a source leaves out is
 * the producer.* keys' value or the documented default. */
#define SEED_SOURCES                                                                               \
    "sources = { crm = { url = 'http://127.0.0.1:8081/customers', topic = 'customer_data',\n"      \
    "  script = 'scripts/map_customers.lua', noun = 'customer(s)' },\n"                            \
    "  inventory = { url = 'http://127.0.0.1:8082/products', topic = 'inventory_data',\n"          \
    "  script = 'scripts/map_products.lua', noun = 'product(s)' } }"

static void test_sources_left_out_keys(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("return { " SEED_SOURCES " }", &cfg);
    assert_int_equal(cfg.nsources, 2);
    const jn_source_config *c = &cfg.sources[0], *i = &cfg.sources[1];
    assert_string_equal(c->name, "crm");
    assert_string_equal(c->noun, "customer(s)");
    assert_string_equal(c->url, "http://127.0.0.1:8081/customers");
    assert_string_equal(c->topic, "customer_data");
    assert_string_equal(c->script, "scripts/map_customers.lua");
    assert_string_equal(c->method, "GET");
    assert_non_null(c->headers);
    assert_null(c->headers[0]);
    assert_true(c->enabled);
    assert_int_equal(c->poll_interval_ms, 360);
    assert_int_equal(c->request_timeout_ms, 10000);
    assert_int_equal(c->retry.attempts, 4);
    assert_int_equal(c->retry.base_ms, 1000);
    assert_true(c->retry.multiplier == 2);
    assert_int_equal(c->retry.max_ms, 30000);
    assert_false(c->publish_all);
    assert_int_equal(c->max_pages, 1000);
    assert_true(c->tls.verify);
    assert_null(c->tls.ca_file);
    assert_string_equal(i->name, "inventory");
    assert_string_equal(i->noun, "product(s)");
    assert_string_equal(i->url, "http://127.0.0.1:8082/products");
    assert_string_equal(i->topic, "inventory_data");
    jn_config_free(&cfg);
    assert_null(cfg.sources);

    /* The producer.* keys and their variables shape what the sources leave out. */
    setenv("JUNCTION_POLL_INTERVAL_MS", "250", 1);
    load_ok(
        "return { producer = { publish_all = true, retry = { attempts = 2, multiplier = 3 } },"
        " sources = { crm = { url = 'http://h/c', topic = 'c', script = 'c.lua' },"
        " inventory = { enabled = false, url = 'http://h/i', topic = 'inv', script = 'i.lua' } } }",
        &cfg);
    assert_string_equal(cfg.sources[0].url, "http://h/c");
    assert_int_equal(cfg.sources[0].poll_interval_ms, 250);
    assert_true(cfg.sources[0].publish_all);
    assert_int_equal(cfg.sources[0].retry.attempts, 2);
    assert_true(cfg.sources[0].retry.multiplier == 3);
    assert_false(cfg.sources[1].enabled);
    assert_string_equal(cfg.sources[1].topic, "inv");
    jn_config_free(&cfg);
}

/* One source's keys, every one given (%s: the file of X-Key). */
#define ORDERS_SOURCE                                                                              \
    "url = 'https://api.example/orders?limit=500', method = 'POST',\n"                             \
    "  headers = { Authorization = { env = 'JN_TEST_TOKEN', prefix = 'Bearer ' },\n"               \
    "              ['X-Key'] = { file = '%s' }, Accept = 'application/vnd.x+json' },\n"            \
    "  topic = 'order_data', script = 'scripts/map_orders.lua', noun = 'order(s)',\n"              \
    "  poll_interval_ms = 1500, request_timeout_ms = 2500, publish_all = true, max_pages = 60,\n"  \
    "  retry = { attempts = 7, base_ms = 10, multiplier = 1.5, max_ms = 90 },\n"                   \
    "  tls = { ca_file = '/ca.pem', cert_file = '/c.pem', key_file = '/k.pem', verify = false }"
#define PLAIN_SOURCE "url = 'http://h/p', topic = 'plain_data', script = 'p.lua'"

static void check_orders_source(const jn_source_config *o) {
    assert_string_equal(o->url, "https://api.example/orders?limit=500");
    assert_string_equal(o->method, "POST");
    assert_string_equal(o->headers[0], "Accept: application/vnd.x+json");
    assert_string_equal(o->headers[1], "Authorization: Bearer tok-env");
    assert_string_equal(o->headers[2], "X-Key: file-secret");
    assert_null(o->headers[3]);
    assert_string_equal(o->topic, "order_data");
    assert_string_equal(o->script, "scripts/map_orders.lua");
    assert_string_equal(o->noun, "order(s)");
    assert_int_equal(o->poll_interval_ms, 1500);
    assert_int_equal(o->request_timeout_ms, 2500);
    assert_true(o->publish_all);
    assert_int_equal(o->max_pages, 60);
    assert_int_equal(o->retry.attempts, 7);
    assert_int_equal(o->retry.base_ms, 10);
    assert_true(o->retry.multiplier == 1.5);
    assert_int_equal(o->retry.max_ms, 90);
    assert_string_equal(o->tls.ca_file, "/ca.pem");
    assert_string_equal(o->tls.cert_file, "/c.pem");
    assert_string_equal(o->tls.key_file, "/k.pem");
    assert_false(o->tls.verify);
}

/* Left out: the producer.* values, or the documented default. */
static void check_plain_source(const jn_source_config *p) {
    assert_string_equal(p->method, "GET");
    assert_null(p->headers[0]);
    assert_string_equal(p->noun, "record(s)");
    assert_true(p->enabled);
    assert_int_equal(p->poll_interval_ms, 700);
    assert_int_equal(p->request_timeout_ms, 800);
    assert_false(p->publish_all);
    assert_int_equal(p->max_pages, 1000);
    assert_int_equal(p->retry.attempts, 3);
    assert_int_equal(p->retry.base_ms, 40);
    assert_true(p->retry.multiplier == 4);
    assert_int_equal(p->retry.max_ms, 900);
    assert_null(p->tls.ca_file);
    assert_null(p->tls.cert_file);
    assert_true(p->tls.verify);
}

#define PRODUCER_KEYS                                                                              \
    "producer = { poll_interval_ms = 700, request_timeout_ms = 800,\n"                             \
    "  retry = { attempts = 3, base_ms = 40, multiplier = 4, max_ms = 900 } },\n"

static void test_sources_map_and_list_forms(void **state) {
    (void)state;
    static const char *const forms[] = {
        "return { " PRODUCER_KEYS "sources = { orders = { " ORDERS_SOURCE " },\n"
        "  plain = { " PLAIN_SOURCE " } } }",
        "return { " PRODUCER_KEYS "sources = { { name = 'plain', " PLAIN_SOURCE " },\n"
        "  { name = 'orders', " ORDERS_SOURCE " } } }",
    };
    for (int f = 0; f < 2; f++) {
        secrets sec = make_secrets();
        char text[4096];
        fill(text, sizeof text, forms[f], sec.secret_file);
        jn_config cfg;
        load_ok(text, &cfg);
        drop_secrets(&sec);
        assert_int_equal(cfg.nsources, 2);
        /* The map sorts by name; the list keeps the file's order. */
        assert_string_equal(cfg.sources[0].name, f == 0 ? "orders" : "plain");
        check_orders_source(find_source(&cfg, "orders"));
        check_plain_source(find_source(&cfg, "plain"));
        jn_config_free(&cfg);
    }
}

#define WITH_SOURCE(body) "return { sources = { s = { " body " } } }"
#define SRC_OK            "url = 'http://h/x', topic = 't', script = 's.lua', "

static void test_source_mistakes(void **state) {
    (void)state;
    static const error_case cases[] = {
        {"return { sources = { { name = 'a', url = 'http://h/1', topic = 't1', script = 's' },"
         " { name = 'a', url = 'http://h/2', topic = 't2', script = 's' } } }",
         {"config: sources.a is defined twice (sources[1] and sources[2])"}},
        {"return { sources = { a = { url = 'http://h/1', topic = 'same', script = 's' },"
         " b = { url = 'http://h/2', topic = 'same', script = 's' } } }",
         {"config: sources.a and sources.b both publish to topic \"same\""}},
        {WITH_SOURCE("topic = 't', script = 's'"),
         {"config: sources.s.url must be a non-empty string"}},
        {WITH_SOURCE("url = 'http://h/x', script = 's'"), {"config: sources.s.topic must be"}},
        {WITH_SOURCE("url = 'http://h/x', topic = 't'"), {"config: sources.s.script must be"}},
        {WITH_SOURCE("url = 'ftp://h/x', topic = 't', script = 's'"),
         {"config: sources.s.url must start with http:// or https://"}},
        {WITH_SOURCE(SRC_OK "method = 'DELETE'"),
         {"config: sources.s.method must be \"GET\" or \"POST\"", "got \"DELETE\""}},
        {WITH_SOURCE(SRC_OK "topik = 'x'"),
         {"unknown key sources.s.topik (did you mean sources.s.topic?)"}},
        {WITH_SOURCE(SRC_OK "retry = { attempt = 3 }"),
         {"unknown key sources.s.retry.attempt (did you mean sources.s.retry.attempts?)"}},
        {WITH_SOURCE(SRC_OK "retry = { multiplier = 0.5 }"),
         {"config: sources.s.retry.multiplier must be a number from 1 to 100", "got 0.5"}},
        {WITH_SOURCE(SRC_OK "retry = { attempts = 0 }"),
         {"config: sources.s.retry.attempts must be an integer from 1 to 100"}},
        {WITH_SOURCE(SRC_OK "max_pages = 0"),
         {"config: sources.s.max_pages must be an integer from 1 to 1000000"}},
        {WITH_SOURCE(SRC_OK "poll_interval_ms = 'fast'"),
         {"config: sources.s.poll_interval_ms must be an integer from 1 to 86400000"}},
        {WITH_SOURCE(SRC_OK "tls = { key_file = '/k.pem' }"),
         {"config: sources.s.tls.key_file is the key of a client certificate"}},
        {WITH_SOURCE(SRC_OK "tls = { verify = 'no' }"),
         {"config: sources.s.tls.verify must be true or false"}},
        {WITH_SOURCE(SRC_OK "tls = true"), {"config: sources.s.tls must be a table"}},
        {"return { sources = {} }", {"config: sources is empty; give at least one source"}},
        {"return { sources = 'crm' }", {"config: sources must be a list of sources"}},
        {"return { sources = { ['bad name'] = { } } }",
         {"config: sources has a source named \"bad name\"; a source's name is letters"}},
        {"return { sources = { { url = 'http://h/x', topic = 't', script = 's' } } }",
         {"config: sources[1].name must be a name of letters", "every source needs one"}},
        {"return { sourcs = {} }", {"unknown key sourcs (did you mean sources?)"}},
    };
    check_error_cases(cases, sizeof cases / sizeof cases[0]);
}

/* A token missing or empty stops start-up naming the key and where the value was looked
 * for, never the value; a source switched off needs none. */
static void test_source_secrets(void **state) {
    (void)state;
    static const error_case cases[] = {
        {WITH_SOURCE(SRC_OK
                     "headers = { Authorization = { env = 'JN_TEST_TOKEN', prefix = 'Bearer ' } }"),
         {"config: sources.s.headers.Authorization:",
          "the environment variable JN_TEST_TOKEN is not set", "nor is JN_TEST_TOKEN_FILE"}},
        {WITH_SOURCE(SRC_OK "headers = { Authorization = { file = '/nonexistent/jn-token' } }"),
         {"config: sources.s.headers.Authorization:",
          "cannot read the file /nonexistent/jn-token"}},
    };
    check_error_cases(cases, sizeof cases / sizeof cases[0]);
    char *empty = write_temp("\n"), text[512];
    setenv("JN_TEST_TOKEN_FILE", empty, 1);
    char *err =
        load_error(WITH_SOURCE(SRC_OK "headers = { Authorization = { env = 'JN_TEST_TOKEN' } }"));
    assert_contains(err, "sources.s.headers.Authorization: the file ");
    assert_contains(err, "named by JN_TEST_TOKEN_FILE is empty");
    free(err);
    unsetenv("JN_TEST_TOKEN_FILE");
    snprintf(text, sizeof text, WITH_SOURCE(SRC_OK "headers = { ['X-Key'] = { file = '%s' } }"),
             empty);
    err = load_error(text);
    assert_contains(err, "sources.s.headers.X-Key: the file ");
    assert_contains(err, "is empty");
    free(err);
    unlink(empty);
    free(empty);
    setenv("JN_TEST_TOKEN", SECRET "\nX: 1", 1);
    expect_secret_kept(
        WITH_SOURCE(SRC_OK "headers = { Authorization = { env = 'JN_TEST_TOKEN' } }%s"), "",
        "sources.s.headers.Authorization", "holds more than one line");
    unsetenv("JN_TEST_TOKEN");
    /* Off: its secrets are not read, so a deployment may leave them out. */
    jn_config cfg;
    load_ok(WITH_SOURCE(SRC_OK
                        "enabled = false, headers = { Authorization = { env = 'JN_TEST_TOKEN' } }"),
            &cfg);
    assert_false(cfg.sources[0].enabled);
    assert_null(cfg.sources[0].headers[0]);
    jn_config_free(&cfg);
}

static void test_help_config_lists_sources(void **state) {
    (void)state;
    setenv("JN_TEST_TOKEN", SECRET, 1);
    const char *out = describe_output();
    assert_contains(out, "sources.<s>.url");
    assert_contains(out, "sources.<s>.noun");
    assert_contains(out, "sources.<s>.max_pages");
    assert_contains(out, "sources.<s>.retry.attempts");
    assert_contains(out, "sources.<s>.tls.cert_file");
    assert_contains(out, "sources.<s>.headers.<H>.env");
    assert_contains(out, "producer.poll_interval_ms");
    assert_null(strstr(out, SECRET));
}

/* Secret keys of the schema (redis.password, analytics.token): a string, { env }, { file },
 * the entry's variable or <variable>_FILE; never echoed. */
static void test_schema_secrets_from_file_env_and_variable(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    char *file = write_temp(SECRET "\n");
    char text[512];
    snprintf(text, sizeof text,
             "return { redis = { username = 'marker', password = { file = '%s' }, db = 2 } }",
             file);
    assert_int_equal(load_text(text, &cfg, &err), 0);
    assert_string_equal(cfg.redis.username, "marker");
    assert_string_equal(cfg.redis.password, SECRET);
    assert_int_equal(cfg.redis.db, 2);
    jn_config_free(&cfg);

    setenv("JN_TEST_REDIS_PASS", SECRET, 1);
    assert_int_equal(
        load_text("return { redis = { password = { env = 'JN_TEST_REDIS_PASS' } } }", &cfg, &err),
        0);
    assert_string_equal(cfg.redis.password, SECRET);
    jn_config_free(&cfg);
    unsetenv("JN_TEST_REDIS_PASS");

    setenv("REDIS_PASSWORD_FILE", file, 1);
    assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
    assert_string_equal(cfg.redis.password, SECRET);
    jn_config_free(&cfg);
    unsetenv("REDIS_PASSWORD_FILE");
    setenv("JUNCTION_ANALYTICS_TOKEN", SECRET, 1);
    assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
    assert_string_equal(cfg.analytics.token, SECRET);
    assert_null(cfg.redis.password);
    jn_config_free(&cfg);
    unsetenv("JUNCTION_ANALYTICS_TOKEN");

    /* Errors name the key and the source, never the value. */
    FILE *fp = fopen(file, "w");
    fclose(fp); /* now empty */
    setenv("REDIS_PASSWORD_FILE", file, 1);
    assert_int_equal(jn_config_load(&cfg, NULL, &err), -1);
    assert_contains(err, "redis.password");
    assert_contains(err, file);
    assert_contains(err, "is empty");
    free(err);
    unsetenv("REDIS_PASSWORD_FILE");
    err = load_error("return { redis = { password = { env = 'JN_TEST_UNSET_VAR' } } }");
    assert_contains(err, "JN_TEST_UNSET_VAR is not set, nor is JN_TEST_UNSET_VAR_FILE");
    free(err);
    err = load_error("return { redis = { password = { env = 'A', file = 'B' } } }");
    assert_contains(err, "redis.password takes { env");
    free(err);
    err = load_error("return { redis = { password = 12 } }");
    assert_contains(err, "redis.password must be a string, { env");
    assert_null(strstr(err, "12"));
    free(err);
    err = load_error("return { redis = { password = '" SECRET "\\n" SECRET "' } }");
    assert_contains(err, "holds more than one line");
    assert_null(strstr(err, SECRET));
    free(err);
    unlink(file);
    free(file);
}

static void test_redis_tls_is_refused_with_the_way_around(void **state) {
    (void)state;
    char *err = load_error("return { redis = { tls = true } }");
    assert_contains(err, "redis.tls");
    assert_contains(err, "cannot speak TLS");
    assert_contains(err, "TLS proxy");
    free(err);
}

/* ---- apis -------------------------------------------------------------------------------- */

static const jn_api_config *find_api(const jn_config *cfg, const char *name) {
    for (int i = 0; i < cfg->napis; i++)
        if (!strcmp(cfg->apis[i].name, name)) return &cfg->apis[i];
    fail_msg("no api %s", name);
    return NULL;
}

/* Without `apis` there is none; the keys the seed's two once had are unknown now, and the
 * error says so. */
static void test_no_apis_without_the_section(void **state) {
    (void)state;
    jn_config cfg;
    load_ok("return { api = { max_body_bytes = 2048 } }", &cfg);
    assert_int_equal(cfg.napis, 0);
    assert_int_equal(cfg.api.max_body_bytes, 2048);
    jn_config_free(&cfg);
    char *err = load_error("return { api = { crm = { count = 5 } } }");
    assert_contains(err, "unknown key api.crm; an API is declared by name in the `apis` section");
    free(err);
}

/* A config written for the per-role keys that are gone says where their settings go now;
 * a typo of a key that remains still gets its nearest key. */
static void test_removed_keys_say_where_to_move(void **state) {
    (void)state;
    char *err = load_error("return { producer = { orders = { topic = 'o' } } }");
    assert_contains(err, "unknown key producer.orders; a source is declared by name in the "
                         "`sources` section");
    free(err);
    err = load_error("return { consumer = { analytics_url = 'http://127.0.0.1:9/x' } }");
    assert_contains(err, "unknown key consumer.analytics_url; a pipeline's topics, transform, "
                         "sink and group are declared by name in the `pipelines` section");
    free(err);
    err = load_error("return { consumer = { max_pendng = 5 } }");
    assert_contains(err, "unknown key consumer.max_pendng (did you mean consumer.max_pending?)");
    free(err);
    err = load_error("return { producer = { interval_msx = 5 } }");
    assert_null(strstr(err, "`sources` section"));
    free(err);
}

static void test_apis_map_form_every_key(void **state) {
    (void)state;
    setenv("JN_TEST_TOKEN", "tok-en_1.2~+/==", 1);
    jn_config cfg;
    load_ok("return { apis = {\n"
            "  orders = { listen = '127.0.0.1:9201', script = 'scripts/orders.lua', count = 50,\n"
            "    seed = 7, resource = '/v1/orders', singular = 'Order',\n"
            "    token = { env = 'JN_TEST_TOKEN' },\n"
            "    faults = { latency_ms = 5, error_rate = 0.1, error_status = 429,\n"
            "               malformed_rate = 0.2 },\n"
            "    paging = { style = 'cursor', page_size = 1000, max_page_size = 5000 } },\n"
            "  a = { listen = '127.0.0.1:9202', script = 's.lua', paging = 'link' },\n"
            "  b = { name = 'b', listen = '127.0.0.1:9203', script = 's.lua',\n"
            "        paging = { style = 'offset', page_size = 2000 } },\n"
            "} }",
            &cfg);
    /* In name order. */
    assert_int_equal(cfg.napis, 3);
    assert_string_equal(cfg.apis[0].name, "a");
    assert_string_equal(cfg.apis[1].name, "b");
    assert_string_equal(cfg.apis[2].name, "orders");
    const jn_api_config *o = find_api(&cfg, "orders");
    assert_int_equal(o->listen.port, 9201);
    assert_string_equal(o->script, "scripts/orders.lua");
    assert_int_equal(o->count, 50);
    assert_int_equal(o->seed, 7);
    assert_string_equal(o->resource, "v1/orders");
    assert_string_equal(o->singular, "Order");
    assert_string_equal(o->token, "tok-en_1.2~+/==");
    assert_int_equal(o->faults.latency_ms, 5);
    assert_true(o->faults.error_rate == 0.1);
    assert_int_equal(o->faults.error_status, 429);
    assert_true(o->faults.malformed_rate == 0.2);
    assert_int_equal(o->paging, JN_PAGING_CURSOR);
    assert_int_equal(o->page_size, 1000);
    assert_int_equal(o->max_page_size, 5000);
    /* Left out: the script decides (count -1, no resource or noun), defaults elsewhere. */
    const jn_api_config *a = find_api(&cfg, "a");
    assert_int_equal(a->count, -1);
    assert_int_equal(a->seed, 42);
    assert_null(a->resource);
    assert_null(a->singular);
    assert_null(a->token);
    assert_int_equal(a->faults.error_status, 503);
    assert_int_equal(a->paging, JN_PAGING_LINK);
    assert_int_equal(a->page_size, 100);
    assert_int_equal(a->max_page_size, 1000);
    /* A page_size above the default largest page raises it. */
    const jn_api_config *b = find_api(&cfg, "b");
    assert_int_equal(b->paging, JN_PAGING_OFFSET);
    assert_int_equal(b->max_page_size, 2000);
    jn_config_free(&cfg);
    unsetenv("JN_TEST_TOKEN");
}

/* The list form, and numbers as strings of digits, as env(name, default) gives them. */
static void test_apis_list_form_and_numbers_from_env(void **state) {
    (void)state;
    setenv("JN_TEST_X", "1234", 1);
    jn_config cfg;
    load_ok("return { apis = {\n"
            "  { name = 'z', listen = '127.0.0.1:9301', script = 's.lua',\n"
            "    count = env('JN_TEST_X', 5), seed = '9', faults = { error_rate = '0.25' } },\n"
            "  { name = 'y', listen = '0.0.0.0:9302', script = 's.lua', token = 'abc' },\n"
            "} }",
            &cfg);
    assert_int_equal(cfg.napis, 2);
    assert_string_equal(cfg.apis[0].name, "z"); /* a list keeps its order */
    assert_int_equal(cfg.apis[0].count, 1234);
    assert_int_equal(cfg.apis[0].seed, 9);
    assert_true(cfg.apis[0].faults.error_rate == 0.25);
    assert_string_equal(cfg.apis[1].listen.host, "0.0.0.0");
    assert_string_equal(cfg.apis[1].token, "abc");
    jn_config_free(&cfg);
    unsetenv("JN_TEST_X");
}

#define API(extra)                                                                                 \
    "return { apis = { o = { listen = '127.0.0.1:9401', script = 's.lua', " extra " } } }"

static void expect_error(const char *text, const char *n1, const char *n2) {
    char *err = load_error(text);
    assert_contains(err, n1);
    if (n2) assert_contains(err, n2);
    free(err);
}

static void test_apis_bad_values_name_the_key(void **state) {
    (void)state;
    expect_error(API("cout = 5"), "unknown key apis.o.cout", "did you mean apis.o.count?");
    expect_error(API("count = 'many'"), "apis.o.count must be an integer from 0 to 10000000",
                 "\"many\" (a string)");
    expect_error(API("count = ' 5'"), "apis.o.count must be an integer", NULL);
    expect_error(API("count = '0x10'"), "apis.o.count must be an integer", NULL);
    expect_error(API("count = 1.5"), "apis.o.count must be an integer", "1.5");
    expect_error(API("count = -1"), "apis.o.count must be an integer from 0", NULL);
    expect_error(API("seed = 'nan'"), "apis.o.seed must be an integer", NULL);
    expect_error(API("faults = { error_rate = 2 }"),
                 "apis.o.faults.error_rate must be a number "
                 "from 0 to 1",
                 NULL);
    expect_error(API("faults = { error_status = 200 }"),
                 "apis.o.faults.error_status must be an "
                 "integer from 400 to 599",
                 NULL);
    expect_error(API("faults = { latency = 1 }"), "unknown key apis.o.faults.latency",
                 "latency_ms");
    expect_error(API("faults = 3"), "apis.o.faults must be a table", NULL);
    expect_error(API("paging = 'pages'"),
                 "apis.o.paging must be \"offset\", \"cursor\" or "
                 "\"link\"",
                 "\"pages\"");
    expect_error(API("paging = { page_size = 5 }"), "apis.o.paging.style must be \"offset\"", NULL);
    expect_error(API("paging = { style = 'link', page_size = 0 }"),
                 "apis.o.paging.page_size must be an integer from 1 to 100000", NULL);
    expect_error(API("paging = { style = 'link', page_size = 50, max_page_size = 10 }"),
                 "apis.o.paging.max_page_size (10) must be at least page_size (50)", NULL);
    expect_error(API("paging = { style = 'offset', size = 1 }"), "unknown key apis.o.paging.size",
                 NULL);
    expect_error(API("paging = true"),
                 "apis.o.paging must be \"offset\", \"cursor\", \"link\" or "
                 "a table",
                 NULL);
    expect_error(API("resource = 'a b'"), "apis.o.resource must be a path", "\"a b\"");
    expect_error(API("resource = 'x/../y'"), "apis.o.resource must be a path", NULL);
    expect_error(API("resource = 'x/'"), "apis.o.resource must be a path", NULL);
    expect_error(API("resource = ':id'"), "apis.o.resource must be a path", NULL);
    expect_error(API("singular = ''"), "apis.o.singular must be a word", NULL);
    expect_error("return { apis = { o = { script = 's.lua' } } }",
                 "apis.o.listen must be \"host:port\"", NULL);
    expect_error("return { apis = { o = { listen = '127.0.0.1:9401' } } }",
                 "apis.o.script must be a non-empty string", NULL);
    /* The later of two keys wins in a Lua table constructor. */
    expect_error(API("listen = 'nowhere'"), "apis.o.listen must be \"host:port\" with a port",
                 "\"nowhere\"");
}

static void test_apis_section_shape(void **state) {
    (void)state;
    expect_error("return { apis = {} }", "apis is empty; give at least one API",
                 "when the file runs no `junction api`");
    expect_error("return { apis = 5 }", "apis must be a list of APIs", "5 (a number)");
    expect_error("return { apis = { { name = 'a', listen = '127.0.0.1:1', script = 's' }, "
                 "b = {} } }",
                 "mixing the two", NULL);
    expect_error("return { apis = { { listen = '127.0.0.1:1', script = 's' } } }",
                 "apis[1].name must be a name", "every API needs one of its own");
    expect_error("return { apis = { ['a b'] = { listen = '127.0.0.1:1', script = 's' } } }",
                 "apis has an API named \"a b\"", NULL);
    expect_error("return { apis = { a = { name = 'b', listen = '127.0.0.1:1', script = 's' } } }",
                 "apis.a.name must be left out or be \"a\"", NULL);
    expect_error("return { apis = { a = 'x' } }", "apis.a must be a table (one API)", NULL);
    expect_error("return { apsi = {} }", "unknown key apsi", "did you mean apis?");
}

/* Two APIs of one name, or on one address: the message names both. */
static void test_apis_duplicates_name_both(void **state) {
    (void)state;
    expect_error("return { apis = {\n"
                 "  { name = 'crm', listen = '127.0.0.1:9501', script = 's' },\n"
                 "  { name = 'inv', listen = '127.0.0.1:9502', script = 's' },\n"
                 "  { name = 'crm', listen = '127.0.0.1:9503', script = 's' } } }",
                 "apis.crm is defined twice (apis[1] and apis[3])", NULL);
    expect_error("return { apis = {\n"
                 "  a = { listen = '127.0.0.1:9501', script = 's' },\n"
                 "  b = { listen = '127.0.0.1:9501', script = 's' } } }",
                 "apis.a.listen and apis.b.listen are both 127.0.0.1:9501", NULL);
    expect_error("return { apis = {\n"
                 "  a = { listen = '0.0.0.0:9501', script = 's' },\n"
                 "  b = { listen = '127.0.0.1:9501', script = 's' } } }",
                 "apis.a.listen (0.0.0.0:9501) and apis.b.listen (127.0.0.1:9501) both take "
                 "port 9501",
                 NULL);
    jn_config cfg;
    load_ok("return { apis = { a = { listen = '127.0.0.1:9501', script = 's' },\n"
            "  b = { listen = '127.0.0.2:9501', script = 's' } } }",
            &cfg);
    jn_config_free(&cfg);
}

/* A token: from a string, a variable, the file NAME_FILE names or a file; a missing or
 * empty one stops start-up naming the key and where it looked; no message shows it. */
static void test_api_tokens_and_their_errors(void **state) {
    (void)state;
    char *file = write_temp(SECRET "\n");
    char *empty = write_temp("\n");
    char *bad = write_temp("not a token\n");
    jn_config cfg;
    char text[512];
    snprintf(text, sizeof text, API("token = { file = '%s' }"), file);
    load_ok(text, &cfg);
    assert_string_equal(cfg.apis[0].token, SECRET);
    jn_config_free(&cfg);
    setenv("JN_TEST_TOKEN_FILE", file, 1);
    load_ok(API("token = { env = 'JN_TEST_TOKEN' }"), &cfg);
    assert_string_equal(cfg.apis[0].token, SECRET);
    jn_config_free(&cfg);
    unsetenv("JN_TEST_TOKEN_FILE");

    expect_secret_kept(API("token = { file = '%s' }"), empty, "apis.o.token",
                       "the file /tmp/jn_config_test_");
    expect_secret_kept(API("token = { file = '%s' }"), empty, "is empty", NULL);
    expect_secret_kept(API("token = { file = '%s/nope' }"), "/tmp",
                       "apis.o.token: cannot read "
                       "the file /tmp/nope",
                       "No such file");
    expect_secret_kept(API("token = { env = 'JN_TEST_TOKEN' }%s"), "",
                       "apis.o.token: the environment variable JN_TEST_TOKEN is not set, nor is "
                       "JN_TEST_TOKEN_FILE",
                       NULL);
    expect_secret_kept(API("token = { file = '%s' }"), bad,
                       "apis.o.token: the value is not a bearer token", NULL);
    expect_secret_kept(API("token = '" SECRET " x'%s"), "",
                       "apis.o.token: the value is not a "
                       "bearer token",
                       NULL);
    expect_secret_kept(API("token = { env = '" SECRET "' }%s"), "",
                       "apis.o.token.env must be the name of an environment variable", NULL);
    expect_secret_kept(API("token = { env = 'JN_TEST_TOKEN', prefix = 'x' }%s"), "",
                       "unknown key apis.o.token.prefix", NULL);
    expect_secret_kept(API("token = 42%s"), "", "apis.o.token must be a string, or { env",
                       "got a number");
    setenv("JN_TEST_TOKEN", SECRET, 1);
    expect_secret_kept(API("token = { env = 'JN_TEST_TOKEN' }, paging = 'pages'%s"), "",
                       "apis.o.paging must be", NULL);
    unsetenv("JN_TEST_TOKEN");
    unlink(file);
    unlink(empty);
    unlink(bad);
    free(file);
    free(empty);
    free(bad);
}

static void test_help_config_lists_apis(void **state) {
    (void)state;
    const char *out = describe_output();
    assert_contains(out, "apis.<a>.listen");
    assert_contains(out, "apis.<a>.token.env");
    assert_contains(out, "apis.<a>.paging.max_page_size");
    assert_contains(out, "apis.<a>.faults.error_status");
    assert_contains(out, "api.max_body_bytes");
    assert_null(strstr(out, "api.crm"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
        cmocka_unit_test_setup_teardown(test_admin_port_per_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_schema_secrets_from_file_env_and_variable, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_redis_tls_is_refused_with_the_way_around, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_example_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_file_values_applied, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_type_names_key_value_expectation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_out_of_range_and_fraction, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_address, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_bool, setup, teardown),
        cmocka_unit_test_setup_teardown(test_section_not_a_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_did_you_mean, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unknown_key_far_from_any, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_a_table, setup, teardown),
        cmocka_unit_test_setup_teardown(test_syntax_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_runtime_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_non_string_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_missing_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_overrides_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_env_applies_without_file, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_env_value, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_address_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_address_by_env_is_error, setup, teardown),
        cmocka_unit_test_setup_teardown(test_same_port_different_host_ok, setup, teardown),
        cmocka_unit_test_setup_teardown(test_parse_addr, setup, teardown),
        cmocka_unit_test_setup_teardown(test_os_execute_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_io_open_for_writing_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_loaders_and_host_libraries_are_absent, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_string_dump_is_gone, setup, teardown),
        cmocka_unit_test_setup_teardown(test_data_tools_still_work, setup, teardown),
        cmocka_unit_test_setup_teardown(test_gc_metatable_is_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_backtracking_pattern_stops_at_the_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_endless_loop_stops_at_instruction_limit, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pcall_cannot_swallow_the_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_slow_file_stops_at_time_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_string_hits_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_huge_table_hits_memory_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_memory_error_caught_in_file_is_harmless, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_env_returns_variable_or_default, setup, teardown),
        cmocka_unit_test_setup_teardown(test_undefined_global_names_itself, setup, teardown),
        cmocka_unit_test_setup_teardown(test_every_example_loads, setup, teardown),
        cmocka_unit_test_setup_teardown(test_consumer_keys_are_a_pipelines_defaults, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_defaults_follow_environment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelines_list_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelines_map_form, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelines_map_sorted_without_names, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipelines_read_without_metamethods, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_unknown_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_wrong_types_and_ranges, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_missing_and_conflicting, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_header_sources_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pipeline_errors_never_show_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sources_left_out_keys, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sources_map_and_list_forms, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_mistakes, setup, teardown),
        cmocka_unit_test_setup_teardown(test_source_secrets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_config_lists_sources, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_config_lists_pipelines_without_secrets, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_no_apis_without_the_section, setup, teardown),
        cmocka_unit_test_setup_teardown(test_removed_keys_say_where_to_move, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apis_map_form_every_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apis_list_form_and_numbers_from_env, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apis_bad_values_name_the_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apis_section_shape, setup, teardown),
        cmocka_unit_test_setup_teardown(test_apis_duplicates_name_both, setup, teardown),
        cmocka_unit_test_setup_teardown(test_api_tokens_and_their_errors, setup, teardown),
        cmocka_unit_test_setup_teardown(test_help_config_lists_apis, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
