/* The transform stage (transform.c): hooks checked against the pipeline's inputs, a
 * call's output checked whole before any record leaves, routing to sinks, ids and Kafka
 * keys taken from the records, ctx.hold, the restore and revoke hooks, and de-duplication
 * keys given by the script. Scripts are
 * written to a fresh temporary folder and run by the real script host. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "script.h"
#include "transform.h"

typedef struct {
    uv_loop_t loop;
    char dir[64];
    char path[256];
    jn_script_host *host;
    jn_transform *t;
    /* what the callbacks saw */
    char begin_id[64];
    int begins;
    int nrecs;
    char json[8][256];
    char id[8][64];
    uint32_t sinks[8];
    char key1[8][64]; /* sink 1's key (the kafka sink) */
} fixture;

static const char *const inputs[] = {"orders", "customers"};
static const char *const sinks[] = {"analytics", "enriched"};
static const char *const sink_keys[] = {NULL, "id"};

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    snprintf(f->dir, sizeof f->dir, "/tmp/jn_transform_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/t.lua", f->dir);
    jn_script_opts o = {.instruction_limit = 1000000};
    f->host = jn_script_host_new(&f->loop, &o);
    assert_non_null(f->host);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    jn_transform_free(f->t);
    jn_script_host_close(f->host);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    remove(f->path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Loads text as the transform of pipeline "shop" (stream orders, table customers); returns
 * the error (malloc'd) or NULL. */
static char *load(fixture *f, const char *text) {
    FILE *fp = fopen(f->path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    jn_transform_opts o = {.pipeline = "shop",
                           .path = f->path,
                           .streams = inputs,
                           .nstreams = 1,
                           .tables = inputs + 1,
                           .ntables = 1,
                           .sinks = sinks,
                           .sink_keys = sink_keys,
                           .nsinks = 2,
                           .hold_ms = 1500,
                           .hold_max = 10};
    char *err = NULL;
    f->t = jn_transform_new(f->host, &o, &err);
    return f->t ? NULL : err;
}

static void on_begin(void *ud, const char *id) {
    fixture *f = ud;
    f->begins++;
    snprintf(f->begin_id, sizeof f->begin_id, "%s", id);
}

static void on_emit(void *ud, const jn_transform_record *r) {
    fixture *f = ud;
    assert_true(f->nrecs < 8);
    int i = f->nrecs++;
    snprintf(f->json[i], sizeof f->json[i], "%.*s", (int)r->len, r->json);
    snprintf(f->id[i], sizeof f->id[i], "%s", r->id ? r->id : "(none)");
    f->sinks[i] = r->sinks;
    snprintf(f->key1[i], sizeof f->key1[i], "%.*s", (int)r->key_lens[1],
             r->keys[1] ? r->keys[1] : "");
}

static const jn_transform_cbs cbs = {.begin = on_begin, .emit = on_emit};

/* Calls on.<input> with json; returns the reason of a failure (malloc'd) or NULL. */
static char *call(fixture *f, int input, const char *json, int *held, long *hold_ms) {
    jn_transform_call_info info = {.input = input, .partition = 3};
    int h = 0;
    long ms = 0;
    char *reason = NULL;
    int rc = jn_transform_call(f->t, &info, json, strlen(json), &cbs, f, &h, &ms, &reason);
    if (held) *held = h;
    if (hold_ms) *hold_ms = ms;
    assert_true((rc == 0) == (reason == NULL));
    return reason;
}

static void assert_contains(const char *s, const char *part) {
    if (!s || !strstr(s, part)) fail_msg("\"%s\" does not contain \"%s\"", s ? s : "(null)", part);
}

/* ---- hooks checked against the inputs ----------------------------------------------- */

static void test_missing_hook_is_refused(void **state) {
    fixture *f = *state;
    char *err = load(f, "return { on = { orders = function() end } }");
    assert_contains(err, "pipeline shop reads table customers");
    assert_contains(err, "on.customers(record, ctx)");
    free(err);
}

static void test_hook_for_unknown_input_is_refused(void **state) {
    fixture *f = *state;
    char *err = load(f, "return { on = { orders = function() end, customers = function() end,"
                        " refunds = function() end } }");
    assert_contains(err, "defines on.refunds, but the pipeline has no input refunds");
    assert_contains(err, "orders, customers");
    free(err);
}

static void test_restore_for_a_table_is_refused(void **state) {
    fixture *f = *state;
    char *err =
        load(f, "local h = function() end\n"
                "return { on = { orders = h, customers = h }, restore = { customers = h } }");
    assert_contains(err, "M.restore.customers must be a function named after one of the "
                         "pipeline's streams");
    free(err);
}

static void test_no_on_table_is_refused(void **state) {
    fixture *f = *state;
    char *err = load(f, "return { customer = function() end }");
    assert_contains(err, "the transform must define M.on");
    free(err);
}

/* ---- output ------------------------------------------------------------------------- */

static const char *const ROUTER =
    "return { on = {\n"
    "  orders = function(o, ctx)\n"
    "    if o.kind == 'all' then return { { id = o.id, n = 1 }, { id = 'x' .. o.id } } end\n"
    "    if o.kind == 'named' then return { enriched = { { id = o.id } } } end\n"
    "    if o.kind == 'mixed' then return { { id = 1 }, analytics = { { id = 2 } } } end\n"
    "    if o.kind == 'none' then return nil end\n"
    "    if o.kind == 'string' then return 'oops' end\n"
    "    if o.kind == 'badsink' then return { { id = 1 }, nowhere = { { id = 2 } } } end\n"
    "    if o.kind == 'notjson' then return { { id = 1 }, { id = 2, f = print } } end\n"
    "    if o.kind == 'hold' then ctx.hold(250) return {} end\n"
    "    if o.kind == 'holddefault' then ctx.hold() return {} end\n"
    "    if o.kind == 'ctx' then return { { id = ctx.input, p = ctx.partition,"
    " pl = ctx.pipeline } } end\n"
    "    if o.kind == 'raise' then error('boom') end\n"
    "  end,\n"
    "  customers = function() return {} end } }\n";

static void test_array_goes_to_every_sink_with_ids_and_keys(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    assert_null(call(f, 0, "{\"id\":7,\"kind\":\"all\"}", NULL, NULL));
    assert_int_equal(f->begins, 1);
    assert_string_equal(f->begin_id, "7");
    assert_int_equal(f->nrecs, 2);
    assert_string_equal(f->json[0], "{\"id\":7,\"n\":1}");
    assert_string_equal(f->id[0], "7");
    assert_int_equal(f->sinks[0], 3);
    assert_string_equal(f->key1[0], "7");
    assert_string_equal(f->id[1], "x7");
    assert_string_equal(f->key1[1], "x7");
}

static void test_named_sinks_route_records(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    assert_null(call(f, 0, "{\"id\":1,\"kind\":\"named\"}", NULL, NULL));
    assert_int_equal(f->nrecs, 1);
    assert_int_equal(f->sinks[0], 2); /* enriched only */
    f->nrecs = 0;
    assert_null(call(f, 0, "{\"id\":1,\"kind\":\"mixed\"}", NULL, NULL));
    assert_int_equal(f->nrecs, 2);
    assert_int_equal(f->sinks[0], 3);
    assert_int_equal(f->sinks[1], 1); /* analytics only */
}

static void test_nil_is_no_record(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    assert_null(call(f, 0, "{\"id\":1,\"kind\":\"none\"}", NULL, NULL));
    assert_int_equal(f->nrecs, 0);
    assert_int_equal(f->begins, 1);
}

static void test_garbage_fails_the_call_and_emits_nothing(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    char *r = call(f, 0, "{\"id\":1,\"kind\":\"string\"}", NULL, NULL);
    assert_contains(r, "on.orders returned a string; return nil or a table of records");
    free(r);
    r = call(f, 0, "{\"id\":1,\"kind\":\"badsink\"}", NULL, NULL);
    assert_contains(r, "records for sink nowhere, which pipeline shop does not have");
    assert_contains(r, "analytics, enriched");
    free(r);
    r = call(f, 0, "{\"id\":1,\"kind\":\"notjson\"}", NULL, NULL);
    assert_contains(r, "record 2 of the result cannot be encoded as JSON");
    free(r);
    r = call(f, 0, "{\"id\":1,\"kind\":\"raise\"}", NULL, NULL);
    assert_contains(r, "on.orders: ");
    assert_contains(r, "boom");
    free(r);
    /* the good first record of "badsink" and "notjson" never left */
    assert_int_equal(f->nrecs, 0);
    assert_int_equal(f->begins, 4);
}

static void test_value_that_is_not_an_object_fails_before_begin(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    char *r = call(f, 0, "[1,2]", NULL, NULL);
    assert_contains(r, "not a JSON object");
    free(r);
    r = call(f, 0, "{\"id\":", NULL, NULL);
    assert_contains(r, "value is not JSON");
    free(r);
    assert_int_equal(f->begins, 0);
}

static void test_hold(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    int held = 0;
    long ms = 0;
    assert_null(call(f, 0, "{\"id\":1,\"kind\":\"hold\"}", &held, &ms));
    assert_int_equal(held, 1);
    assert_int_equal(ms, 250);
    assert_null(call(f, 0, "{\"id\":1,\"kind\":\"holddefault\"}", &held, &ms));
    assert_int_equal(held, 1);
    assert_int_equal(ms, 1500); /* the pipeline's hold_ms */
    assert_null(call(f, 0, "{\"id\":1,\"kind\":\"none\"}", &held, &ms));
    assert_int_equal(held, 0);
}

static void test_ctx_names_input_partition_and_pipeline(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    assert_null(call(f, 0, "{\"id\":1,\"kind\":\"ctx\"}", NULL, NULL));
    assert_int_equal(f->nrecs, 1);
    assert_string_equal(f->json[0], "{\"id\":\"orders\",\"p\":3,\"pl\":\"shop\"}");
}

/* ---- restore, revoke, timer ----------------------------------------------------------- */

static void test_restore_revoke_and_timer(void **state) {
    fixture *f = *state;
    assert_null(load(f, "local kept, M = {}, { on = {}, restore = {}, revoke = {} }\n"
                        "function M.on.orders(o) return { { id = o.id, known = #kept } } end\n"
                        "function M.on.customers() end\n"
                        "function M.restore.orders(o, ctx) kept[#kept + 1] = ctx.partition end\n"
                        "function M.revoke.orders(parts) kept = { parts[1], parts[2] } end\n"
                        "function M.timer() return { { id = 'tick', known = #kept } } end\n"
                        "return M\n"));
    assert_true(jn_transform_restores(f->t, 0));
    jn_transform_call_info info = {.input = 0, .partition = 5};
    char *reason = NULL;
    const char *rec = "{\"id\":9}";
    assert_int_equal(jn_transform_restore(f->t, &info, rec, strlen(rec), &reason), 0);
    assert_int_equal(jn_transform_restore(f->t, &info, rec, strlen(rec), &reason), 0);
    assert_int_equal(jn_transform_restore(f->t, &info, "[]", 2, &reason), -1);
    assert_contains(reason, "not a JSON object");
    free(reason);
    reason = NULL;
    assert_null(call(f, 0, "{\"id\":1}", NULL, NULL));
    assert_string_equal(f->json[0], "{\"id\":1,\"known\":2}");
    int32_t parts[] = {1, 4, 6};
    assert_int_equal(jn_transform_revoke(f->t, 0, parts, 3, &reason), 0);
    assert_int_equal(jn_transform_timer(f->t, &cbs, f, &reason), 0);
    assert_int_equal(f->nrecs, 2);
    assert_string_equal(f->json[1], "{\"id\":\"tick\",\"known\":2}");
}

static void test_without_restore_nothing_is_restored(void **state) {
    fixture *f = *state;
    assert_null(load(f, ROUTER));
    assert_false(jn_transform_restores(f->t, 0));
    char *reason = NULL;
    assert_int_equal(jn_transform_timer(f->t, &cbs, f, &reason), 0); /* no timer: nothing */
    assert_int_equal(f->nrecs, 0);
}

/* ---- de-duplication keys --------------------------------------------------------------- */

static void test_dedupe_key_names_the_mark(void **state) {
    fixture *f = *state;
    assert_null(load(f, "local h = function() end\n"
                        "return { on = { orders = h, customers = h }, dedupe_key = {\n"
                        "  orders = function(o, ctx)\n"
                        "    if o.kind == 'nil' then return nil end\n"
                        "    if o.kind == 'table' then return {} end\n"
                        "    if o.kind == 'raise' then error('no key') end\n"
                        "    return o.id .. '@' .. o.version .. ctx.input end } }"));
    assert_true(jn_transform_keys(f->t, 0));
    jn_transform_call_info info = {.input = 0, .partition = 1};
    unsigned char a[32], b[32], c[32];
    char *reason = NULL;
    const char *v1 = "{\"id\":\"7\",\"version\":2,\"x\":1}";
    const char *v2 = "{\"x\":99,\"version\":2,\"id\":\"7\"}";
    const char *v3 = "{\"id\":\"7\",\"version\":3,\"x\":1}";
    assert_int_equal(jn_transform_dedupe_key(f->t, &info, v1, strlen(v1), a, &reason), 1);
    assert_int_equal(jn_transform_dedupe_key(f->t, &info, v2, strlen(v2), b, &reason), 1);
    assert_int_equal(jn_transform_dedupe_key(f->t, &info, v3, strlen(v3), c, &reason), 1);
    /* Same key, different content: one mark; another version: another mark. */
    assert_memory_equal(a, b, 32);
    assert_memory_not_equal(a, c, 32);
    /* Not the mark of any content: the key's text is hashed in a domain of its own. */
    unsigned char plain[32];
    jn_sha256("7@2orders", 9, plain);
    assert_memory_not_equal(a, plain, 32);

    const char *vn = "{\"kind\":\"nil\"}";
    assert_int_equal(jn_transform_dedupe_key(f->t, &info, vn, strlen(vn), a, &reason), 0);
    const char *vt = "{\"kind\":\"table\"}";
    assert_int_equal(jn_transform_dedupe_key(f->t, &info, vt, strlen(vt), a, &reason), -1);
    assert_contains(reason, "dedupe_key.orders: returned a table");
    free(reason);
    const char *vr = "{\"kind\":\"raise\"}";
    assert_int_equal(jn_transform_dedupe_key(f->t, &info, vr, strlen(vr), a, &reason), -1);
    assert_contains(reason, "dedupe_key.orders: ");
    assert_contains(reason, "no key");
    free(reason);
    assert_int_equal(jn_transform_dedupe_key(f->t, &info, "[1]", 3, a, &reason), -1);
    assert_contains(reason, "not a JSON object");
    free(reason);
}

static void test_dedupe_key_only_for_streams(void **state) {
    fixture *f = *state;
    char *err =
        load(f, "local h = function() end\n"
                "return { on = { orders = h, customers = h }, dedupe_key = { customers = h } }");
    assert_contains(err, "M.dedupe_key.customers must be a function named after one of the "
                         "pipeline's streams");
    free(err);
    assert_null(load(f, ROUTER));
    assert_false(jn_transform_keys(f->t, 0));
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(x) cmocka_unit_test_setup_teardown(x, setup, teardown)
        T(test_missing_hook_is_refused),
        T(test_hook_for_unknown_input_is_refused),
        T(test_restore_for_a_table_is_refused),
        T(test_no_on_table_is_refused),
        T(test_array_goes_to_every_sink_with_ids_and_keys),
        T(test_named_sinks_route_records),
        T(test_nil_is_no_record),
        T(test_garbage_fails_the_call_and_emits_nothing),
        T(test_value_that_is_not_an_object_fails_before_begin),
        T(test_hold),
        T(test_ctx_names_input_partition_and_pipeline),
        T(test_restore_revoke_and_timer),
        T(test_without_restore_nothing_is_restored),
        T(test_dedupe_key_names_the_mark),
        T(test_dedupe_key_only_for_streams),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
