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
    if (rc == 0) jn_config_free(&cfg);
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
    assert_string_equal(cfg.api.crm.listen.host, "127.0.0.1");
    assert_int_equal(cfg.api.crm.listen.port, 8081);
    assert_string_equal(cfg.api.inventory.listen.host, "127.0.0.1");
    assert_int_equal(cfg.api.inventory.listen.port, 8082);
    assert_string_equal(cfg.admin.listen.host, "127.0.0.1");
    assert_int_equal(cfg.admin.listen.port, 8000);
    assert_int_equal(cfg.api.crm.count, 1000);
    assert_int_equal(cfg.api.inventory.count, 10);
    assert_int_equal(cfg.api.crm.seed, 42);
    assert_string_equal(cfg.api.crm.script, "scripts/crm.lua");
    assert_string_equal(cfg.api.inventory.script, "scripts/inventory.lua");
    assert_string_equal(cfg.kafka.brokers, "127.0.0.1:9092");
    assert_string_equal(cfg.redis.host, "127.0.0.1");
    assert_int_equal(cfg.redis.port, 6379);
    assert_int_equal(cfg.api.crm.faults.error_status, 503);
    assert_int_equal(cfg.scripts.instruction_limit, 200000000L);
    assert_false(cfg.scripts.allow_exec);
    assert_false(cfg.scripts.allow_write);
    assert_true(cfg.scripts.watch);
    assert_int_equal(cfg.log.level, JN_LOG_INFO);
    assert_int_equal(cfg.log.format, JN_LOG_TEXT);
    jn_config_free(&cfg);
}

static void test_example_file(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    int rc = jn_config_load(&cfg, "examples/local.lua", &err);
    if (rc != 0) fail_msg("examples/local.lua: %s", err);
    assert_string_equal(cfg.path, "examples/local.lua");
    assert_int_equal(cfg.api.crm.listen.port, 8081);
    assert_int_equal(cfg.api.inventory.listen.port, 8082);
    assert_int_equal(cfg.admin.listen.port, 8000);
    assert_int_equal(cfg.api.crm.count, 1000);
    assert_int_equal(cfg.api.inventory.count, 10);
    assert_int_equal(cfg.api.max_body_bytes, 1048576);
    assert_string_equal(cfg.kafka.brokers, "127.0.0.1:9092");
    jn_config_free(&cfg);
}

static void test_file_values_applied(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    int rc = load_text("return { api = { crm = { count = 7, listen = '0.0.0.0:9001',"
                       " faults = { error_rate = 0.25 } } },"
                       " scripts = { allow_exec = true }, log = { level = 'debug' } }",
                       &cfg, &err);
    if (rc != 0) fail_msg("%s", err);
    assert_int_equal(cfg.api.crm.count, 7);
    assert_string_equal(cfg.api.crm.listen.host, "0.0.0.0");
    assert_int_equal(cfg.api.crm.listen.port, 9001);
    assert_true(cfg.api.crm.faults.error_rate == 0.25);
    assert_true(cfg.scripts.allow_exec);
    assert_int_equal(cfg.log.level, JN_LOG_DEBUG);
    /* Keys left out keep their defaults. */
    assert_int_equal(cfg.api.inventory.count, 10);
    jn_config_free(&cfg);
}

static void test_bad_type_names_key_value_expectation(void **state) {
    (void)state;
    char *err = load_error("return { api = { crm = { count = \"abc\" } } }");
    assert_contains(err, "api.crm.count");
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
    err = load_error("return { api = { crm = { count = 1.5 } } }");
    assert_contains(err, "api.crm.count");
    assert_contains(err, "1.5");
    free(err);
    err = load_error("return { api = { crm = { faults = { error_rate = 2 } } } }");
    assert_contains(err, "api.crm.faults.error_rate");
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
    char *err = load_error("return { api = { crm = 5 } }");
    assert_contains(err, "api.crm");
    assert_contains(err, "table");
    free(err);
}

static void test_unknown_key_did_you_mean(void **state) {
    (void)state;
    char *err = load_error("return { api = { crm = { cout = 5 } } }");
    assert_contains(err, "api.crm.cout");
    assert_contains(err, "did you mean api.crm.count");
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
    char *err = load_error("return { api = { crm = { count = } }\n");
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
    setenv("JUNCTION_CRM_LISTEN", "0.0.0.0:18081", 1);
    jn_config cfg;
    char *err = NULL;
    int rc = load_text("return { kafka = { brokers = 'file:9092' }, redis = { port = 7000 },"
                       " api = { crm = { listen = '127.0.0.1:9999' } } }",
                       &cfg, &err);
    if (rc != 0) fail_msg("%s", err);
    assert_string_equal(cfg.kafka.brokers, "kafka-1:29092,kafka-2:29092");
    assert_int_equal(cfg.redis.port, 6380);
    assert_string_equal(cfg.api.crm.listen.host, "0.0.0.0");
    assert_int_equal(cfg.api.crm.listen.port, 18081);
    jn_config_free(&cfg);
}

static void test_env_applies_without_file(void **state) {
    (void)state;
    setenv("JUNCTION_CUSTOMERS", "5", 1);
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, NULL, &err), 0);
    assert_int_equal(cfg.api.crm.count, 5);
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
    char *err = load_error("return { api = { crm = { listen = '127.0.0.1:9000' },"
                           " inventory = { listen = '127.0.0.1:9000' } } }");
    assert_contains(err, "api.crm.listen");
    assert_contains(err, "api.inventory.listen");
    assert_contains(err, "127.0.0.1:9000");
    free(err);
}

static void test_same_address_by_env_is_error(void **state) {
    (void)state;
    setenv("JUNCTION_INVENTORY_LISTEN", "127.0.0.1:8081", 1);
    jn_config cfg;
    char *err = NULL;
    assert_int_equal(jn_config_load(&cfg, NULL, &err), -1);
    assert_contains(err, "127.0.0.1:8081");
    free(err);
}

static void test_same_port_different_host_ok(void **state) {
    (void)state;
    jn_config cfg;
    char *err = NULL;
    int rc = load_text("return { api = { crm = { listen = '127.0.0.1:9000' },"
                       " inventory = { listen = '127.0.0.2:9000' } } }",
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
            "  api = { crm = { count = defaults.count + (ok and 100 or 0) } },\n"
            "}\n",
            &cfg);
    assert_string_equal(cfg.kafka.client_id, "A-BC");
    assert_string_equal(cfg.redis.host, "10.0.0.2");
    assert_int_equal(cfg.redis.port, 6390);
    assert_int_equal(cfg.api.crm.count, 3);
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
    char *err = load_error("local x = 1\nreturn { api = { crm = { count = cout } } }\n");
    assert_contains(err, ":2: `cout` is not available in a config file");
    assert_contains(err, "env(name, default)");
    assert_contains(err, "string, table, math, utf8");
    free(err);
}

/* Every shipped configuration still loads in the sandbox. */
static void test_every_example_loads(void **state) {
    (void)state;
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
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_defaults, setup, teardown),
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
