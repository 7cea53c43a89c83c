/* The analytics receiver's batch scanner (src/mock/analytics.c, through analytics_scan.h)
 * under any bytes as a POSTed body.
 *
 * The scanner walks text it has validated without building Lua values; the decoder
 * (src/json.c) is the reference it must agree with. Checked:
 * - a body that is not JSON is a 400, valid JSON of the wrong shape a 422, and an
 *   accepted body is a JSON array of objects, or an object whose last "records" member
 *   is one;
 * - every record span lies in the body and decodes alone to an object, the same object
 *   the decoder finds at that place;
 * - a record's id is what the decoder gives: absent or null is "no id", anything else
 *   its canonical encoding (ids are counted by that text, so a scanner that disagreed
 *   would count one id as two, or two as one). */
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "mock/analytics_scan.h"
#include "buf.h"
#include "fuzz.h"
#include "json.h"

/* A state per input: everything an input allocates is freed before the next, so
 * libFuzzer's leak check (run whenever an input leaves more allocations than frees) stays
 * quiet unless the code under test leaks, instead of scanning the heap on every input. */
static lua_State *L;

/* The canonical text of the value at the top of the stack into out; pops it. */
static int encode_pop(jn_sb *out) {
    const char *err;
    out->len = 0;
    int rc = jn_json_encode(L, -1, NULL, out, &err);
    lua_pop(L, 1);
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    L = luaL_newstate();
    if (!L) abort();
    /* An exact-size copy: a scanner reading past the body is caught by ASan. */
    char *body = malloc(size ? size : 1);
    if (!body) abort();
    memcpy(body, data, size);
    char err[160];
    int top = lua_gettop(L);

    /* The reference: what the decoder makes of the body, and where the records are. */
    int decoded = jn_json_decode(L, body, size, err, sizeof err) == 0;
    int records = 0; /* stack index of the records array, or 0 */
    if (decoded && lua_istable(L, -1)) {
        size_t i = 0;
        while (strchr(" \t\r\n", body[i]))
            i++;
        if (body[i] == '[') {
            records = lua_gettop(L);
        } else {
            lua_getfield(L, -1, "records");
            /* An empty {} and [] decode alike; the scanner wants an array's '['. */
            if (lua_istable(L, -1)) records = lua_gettop(L);
        }
    }

    jn_json_span *spans = NULL;
    jn_http_response res = {0};
    int before = lua_gettop(L);
    long n = jn_analytics_parse_batch(body, size, &spans, &res);
    FUZZ_CHECK(lua_gettop(L) == before, "the scanner left the stack at %d, not %d", lua_gettop(L),
               before);
    if (n < 0) {
        FUZZ_CHECK(res.status == (decoded ? 422 : 400), "status %d for a body that %s", res.status,
                   decoded ? "decodes" : "does not decode");
        FUZZ_CHECK(res.body && res.body->len > 0, "an error without a body");
        FUZZ_CHECK(!spans, "spans kept on failure");
    } else {
        FUZZ_CHECK(decoded && records, "%ld records from a body the decoder %s", n,
                   decoded ? "reads as no batch" : "refuses");
        FUZZ_CHECK((size_t)n == lua_rawlen(L, records), "%ld records of %zu", n,
                   (size_t)lua_rawlen(L, records));
        jn_sb id, want;
        jn_sb_init(&id);
        jn_sb_init(&want);
        for (long i = 0; i < n; i++) {
            const char *r = body + spans[i].off;
            FUZZ_CHECK(spans[i].off + spans[i].len <= size && spans[i].len >= 2 && *r == '{',
                       "record %ld at [%zu, +%zu) of %zu", i, spans[i].off, spans[i].len, size);
            FUZZ_CHECK(jn_json_decode(L, r, spans[i].len, err, sizeof err) == 0,
                       "record %ld does not decode alone: %s", i, err);
            jn_sb alone;
            jn_sb_init(&alone);
            int alone_rc = encode_pop(&alone); /* -1 for a number past a double (1e999) */
            lua_rawgeti(L, records, i + 1);
            FUZZ_CHECK(lua_istable(L, -1), "record %ld is not an object", i);
            lua_getfield(L, -1, "id");
            int no_id = lua_isnil(L, -1) || (lua_islightuserdata(L, -1) && !lua_touserdata(L, -1));
            int want_rc = no_id ? -1 : encode_pop(&want);
            if (no_id) lua_pop(L, 1);
            int batch_rc = encode_pop(&id); /* the record as the array holds it */
            FUZZ_CHECK(alone_rc == batch_rc, "record %ld encodes %d alone, %d in the batch", i,
                       alone_rc, batch_rc);
            FUZZ_CHECK(alone_rc || (id.len == alone.len && !memcmp(id.data, alone.data, id.len)),
                       "record %ld alone:\n%s\nin the batch:\n%s", i, alone.data, id.data);
            jn_sb_free(&alone);

            int rc = jn_analytics_read_id(L, r, r + spans[i].len, &id);
            FUZZ_CHECK(lua_gettop(L) == before, "reading an id left the stack at %d, not %d",
                       lua_gettop(L), before);
            FUZZ_CHECK(rc == want_rc, "record %ld: id read %d, the decoder says %d", i, rc,
                       want_rc);
            if (rc == 0)
                FUZZ_CHECK(id.len == want.len && !memcmp(id.data, want.data, id.len),
                           "record %ld: id %.*s, the decoder's %.*s", i, (int)id.len, id.data,
                           (int)want.len, want.data);
        }
        jn_sb_free(&id);
        jn_sb_free(&want);
    }
    lua_settop(L, top);
    jn_rbuf_unref(res.body);
    free(spans);
    free(body);
    lua_close(L);
    return 0;
}
