/* One consumer message through the stock scripts/merge.lua, and through scripts/join.lua
 * (the same policy done by the host, src/join.c), by the transform stage
 * (src/transform.c) as the seed's pipeline calls it: stream `customers`, table
 * `products`, one sink, the default hold limits.
 *
 * Input: bit 0 of byte 0 picks the input the message arrives on (0: customers, 1:
 * products); the rest is the message value, any bytes. Each input gets a fresh script
 * host and transform (so a crash reproduces from its input alone) whose catalogue
 * already holds two products, so customers can be joined.
 *
 * Checked: the call ends in records or in a reason (a dead letter), never a crash, a
 * sanitizer report or a leak; nothing is emitted on failure; every emitted record is a
 * JSON object for the one sink, with an id shorter than 64 bytes when it has one; a
 * customer that is not held comes out as exactly one record with its own id, and a held
 * one for the pipeline's hold_ms. */
#include <string.h>
#include <lauxlib.h>
#include <uv.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "log.h"
#include "script.h"
#include "transform.h"

#define HOLD_MS  5000 /* consumer.hold_ms's default */
#define HOLD_MAX 10000

static lua_State *check_L; /* decodes emitted records */

typedef struct {
    char begin_id[64];
    int begins, emitted;
    char first_id[64];
    int first_has_id;
} seen;

static void on_begin(void *ud, const char *id) {
    seen *s = ud;
    s->begins++;
    FUZZ_CHECK(strlen(id) < sizeof s->begin_id, "begin id of %zu bytes", strlen(id));
    snprintf(s->begin_id, sizeof s->begin_id, "%s", id);
}

static void on_emit(void *ud, const jn_transform_record *r) {
    seen *s = ud;
    char err[160];
    FUZZ_CHECK(r->sinks == 1, "record %d for sinks %#x", r->index, (unsigned)r->sinks);
    FUZZ_CHECK(r->len > 0 && r->json[0] == '{' && r->json[r->len] == '\0',
               "record %d is not an object: %.*s", r->index, (int)r->len, r->json);
    FUZZ_CHECK(jn_json_decode(check_L, r->json, r->len, err, sizeof err) == 0,
               "record %d does not decode: %s\n%.*s", r->index, err, (int)r->len, r->json);
    lua_pop(check_L, 1);
    if (r->id) FUZZ_CHECK(strlen(r->id) < 64, "an id of %zu bytes", strlen(r->id));
    if (s->emitted++ == 0) {
        s->first_has_id = r->id != NULL;
        snprintf(s->first_id, sizeof s->first_id, "%s", r->id ? r->id : "");
    }
}

static const jn_transform_cbs cbs = {.begin = on_begin, .emit = on_emit};

int LLVMFuzzerInitialize(int *argc, char ***argv) {
    (void)argc, (void)argv;
    /* Script errors are the expected outcome of most inputs: keep stderr for reports. */
    jn_log_setup((jn_log_level)(JN_LOG_ERROR + 1), JN_LOG_TEXT);
    return 0;
}

/* Calls the hook of input with json; returns the call's result, having checked it. */
static int call(jn_transform *t, int input, const char *json, size_t len, seen *s) {
    jn_transform_call_info info = {.input = input, .partition = 0};
    int held = 0;
    long hold_ms = 0;
    char *reason = NULL;
    memset(s, 0, sizeof *s);
    int rc = jn_transform_call(t, &info, json, len, &cbs, s, &held, &hold_ms, &reason);
    FUZZ_CHECK((rc == 0) == (reason == NULL), "result %d, reason %s", rc, reason ? reason : "NULL");
    if (rc != 0) {
        FUZZ_CHECK(*reason, "an empty reason");
        FUZZ_CHECK(s->emitted == 0, "%d records emitted by a failed call: %s", s->emitted, reason);
        free(reason);
        return rc;
    }
    FUZZ_CHECK(s->begins == 1, "begin called %d times", s->begins);
    if (input == 0 && !held)
        FUZZ_CHECK(s->emitted == 1 && !strcmp(s->first_id, s->begin_id),
                   "customer %s came out as %d records, the first with id %s", s->begin_id,
                   s->emitted, s->first_has_id ? s->first_id : "(none)");
    if (held) FUZZ_CHECK(hold_ms == HOLD_MS, "held for %ld ms", hold_ms);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    int input = data[0] & 1;
    /* An exact-size copy of the value: reading past it is caught by ASan. */
    size_t len = size - 1;
    char *value = malloc(len ? len : 1);
    if (!value) abort();
    memcpy(value, data + 1, len);

    /* Everything an input allocates is freed before the next, so libFuzzer's leak check
     * only runs (and then reports) when the code under test leaks. */
    check_L = luaL_newstate();
    if (!check_L) abort();
    uv_loop_t loop;
    uv_loop_init(&loop);
    jn_script_opts so = {.stock_path = JN_SOURCE_DIR "/scripts"};
    jn_script_host *h = jn_script_host_new(&loop, &so);
    FUZZ_CHECK(h, "no script host");
    static const char *const inputs[] = {"customers", "products"};
    static const char *const sinks[] = {"analytics"};
    static const char *const sink_keys[] = {NULL};
    static const char *const scripts[] = {JN_SOURCE_DIR "/scripts/merge.lua",
                                          JN_SOURCE_DIR "/scripts/join.lua"};
    for (size_t k = 0; k < sizeof scripts / sizeof scripts[0]; k++) {
        jn_transform_opts o = {.pipeline = "default",
                               .path = scripts[k],
                               .streams = inputs,
                               .nstreams = 1,
                               .tables = inputs + 1,
                               .ntables = 1,
                               .sinks = sinks,
                               .sink_keys = sink_keys,
                               .nsinks = 1,
                               .hold_ms = HOLD_MS,
                               .hold_max = HOLD_MAX};
        char *err = NULL;
        jn_transform *t = jn_transform_new(h, &o, &err);
        FUZZ_CHECK(t, "%s does not load: %s", scripts[k], err ? err : "?");

        seen s;
        static const char *const catalogue[] = {
            "{\"id\":\"1\",\"name\":\"Laptop\",\"stock\":12}",
            "{\"id\":2,\"name\":\"Mouse\",\"stock\":0}",
        };
        for (size_t i = 0; i < sizeof catalogue / sizeof catalogue[0]; i++)
            FUZZ_CHECK(call(t, 1, catalogue[i], strlen(catalogue[i]), &s) == 0, "product %zu", i);
        call(t, input, value, len, &s);
        jn_transform_free(t);
    }
    jn_script_host_close(h);
    uv_run(&loop, UV_RUN_DEFAULT);
    FUZZ_CHECK(uv_loop_close(&loop) == 0, "handles left open");
    lua_close(check_L);
    free(value);
    return 0;
}
