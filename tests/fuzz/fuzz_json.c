/* The JSON decoder and the canonical encoder (src/json.c) under any bytes.
 *
 * Checked, for every input:
 * - round trip: when the bytes decode to x, x encodes (canonically, no named keys), and
 *   that text decodes to a value encoding to the very same text: decode(encode(x)) == x,
 *   compared through the canonical form, which is what content hashes are taken of;
 * - jn_json_array_spans is exactly as strict as the decoder: it accepts what decodes
 *   (-2 for a value that is not an array), and for an array gives one span per element,
 *   each decoding on its own to what the array holds there;
 * - a record view of the text, when one is made, encodes as its decoded table;
 * - jn_json_members_of_canonical finds in canonical text what jn_json_canonical_members
 *   finds (record views trust the first);
 * - jn_json_is_canonical never says yes wrongly: bytes it accepts decode and encode back
 *   to themselves (the consumer hashes such bytes as they are, without decoding). */
#include <lauxlib.h>
#include <lualib.h>
#include <string.h>

#include "buf.h"
#include "fuzz.h"
#include "json.h"
#include "record_view.h"

/* A state per input: everything an input allocates is freed before the next, so
 * libFuzzer's leak check (run whenever an input leaves more allocations than frees) stays
 * quiet unless the code under test leaks, instead of scanning the heap on every input. */
static lua_State *L;

/* Encodes the value at the top of the stack canonically into out (emptied first).
 * Returns 0, or -1 for the one value that decodes but has no encoding: a number past
 * the range of a double (1e999 reads as infinity, as the analytics receiver's tests
 * expect), which the encoder refuses rather than write something else. */
static int encode_top(jn_sb *out, const char *what) {
    const char *err = NULL;
    out->len = 0;
    int rc = jn_json_encode(L, -1, NULL, out, &err);
    FUZZ_CHECK(rc == 0 || (err && strstr(err, "infinite")), "%s decoded but does not encode: %s",
               what, err ? err : "?");
    return rc;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    L = luaL_newstate();
    if (!L) abort();
    /* An exact-size copy: no NUL after the text, so reading past its end is caught. */
    char *text = malloc(size ? size : 1);
    if (!text) abort();
    memcpy(text, data, size);
    char err[160];
    jn_sb once, twice;
    jn_sb_init(&once);
    jn_sb_init(&twice);
    int top = lua_gettop(L);

    int decoded = jn_json_decode(L, text, size, err, sizeof err) == 0;
    FUZZ_CHECK(lua_gettop(L) == top + decoded, "stack %d after decode (was %d)", lua_gettop(L),
               top);
    int is_array = 0;
    lua_Integer n = 0;
    int encodes = 0;
    if (decoded) {
        encodes = encode_top(&once, "the input") == 0;
        if (lua_istable(L, -1)) {
            size_t i = 0;
            while (i < size && strchr(" \t\r\n", text[i]))
                i++;
            is_array = text[i] == '[';
            n = (lua_Integer)lua_rawlen(L, -1);
        }
    }
    if (encodes) {
        FUZZ_CHECK(jn_json_decode(L, once.data, once.len, err, sizeof err) == 0,
                   "the encoding of the input does not decode: %s\n%s", err, once.data);
        FUZZ_CHECK(encode_top(&twice, "the encoding") == 0, "the encoding's value has none");
        FUZZ_CHECK(once.len == twice.len && !memcmp(once.data, twice.data, once.len),
                   "round trip changed the value:\n%s\n%s", once.data, twice.data);
        lua_pop(L, 1); /* the input's value stays, for the spans below */
    }
    if (!decoded) {
        FUZZ_CHECK(strlen(err) > 0, "decode failed without a reason");
    }

    jn_json_span *spans = NULL;
    size_t nspans = 0;
    int rc = jn_json_array_spans(text, size, &spans, &nspans, err, sizeof err);
    FUZZ_CHECK(rc == (!decoded   ? -1
                      : is_array ? 0
                                 : -2),
               "array_spans gave %d; the decoder %s (%s)", rc,
               decoded ? (is_array ? "read an array" : "read another value") : "refused it", err);
    if (rc == 0) {
        FUZZ_CHECK((lua_Integer)nspans == n, "%zu spans for an array of %lld", nspans,
                   (long long)n);
        for (size_t i = 0; i < nspans; i++) {
            FUZZ_CHECK(spans[i].off + spans[i].len <= size, "span %zu past the end", i);
            FUZZ_CHECK(jn_json_decode(L, text + spans[i].off, spans[i].len, err, sizeof err) == 0,
                       "element %zu does not decode alone: %s", i, err);
            int alone = encode_top(&twice, "an element");
            lua_pop(L, 1);
            lua_rawgeti(L, top + 1, (lua_Integer)i + 1);
            int in_array = encode_top(&once, "an element in its array");
            lua_pop(L, 1);
            FUZZ_CHECK(alone == in_array, "element %zu encodes %s alone, %s in its array", i,
                       alone ? "not" : "well", in_array ? "not" : "well");
            FUZZ_CHECK(alone || (once.len == twice.len && !memcmp(once.data, twice.data, once.len)),
                       "element %zu alone:\n%s\nin its array:\n%s", i, twice.data, once.data);
        }
    }
    free(spans);
    lua_settop(L, top);

    /* A record view (record_view.h) of the text, where it makes one, encodes as the table
     * the text decodes to (records reach sinks and hashes through either). */
    if (jn_view_push(L, text, size) == 0) {
        FUZZ_CHECK(decoded, "a view of text that does not decode: %s", err);
        FUZZ_CHECK(encode_top(&twice, "a view") == 0, "a view with no encoding");
        lua_pop(L, 1);
        jn_json_decode(L, text, size, err, sizeof err);
        FUZZ_CHECK(encode_top(&once, "the view's text") == 0, "decodes, but has no encoding");
        lua_pop(L, 1);
        FUZZ_CHECK(once.len == twice.len && !memcmp(once.data, twice.data, once.len),
                   "a view encodes as\n%s\nthe decoded text as\n%s", twice.data, once.data);
    }

    if (jn_json_is_canonical(text, size)) {
        FUZZ_CHECK(decoded, "said canonical, but does not decode: %s", err);
        jn_json_decode(L, text, size, err, sizeof err);
        FUZZ_CHECK(encode_top(&once, "canonical text") == 0, "canonical text with no encoding");
        lua_pop(L, 1);
        FUZZ_CHECK(once.len == size && !memcmp(once.data, text, size),
                   "said canonical, but encodes as\n%s", once.data);
        /* Record views split canonical text into members without checking it again: the
         * same members as the checking scan. */
        jn_json_member want[64], got[64];
        int checked = jn_json_canonical_members(text, size, want, 64);
        int trusted = jn_json_members_of_canonical(text, size, got, 64);
        FUZZ_CHECK(checked == trusted &&
                       (checked <= 0 || !memcmp(want, got, (size_t)checked * sizeof *got)),
                   "members of canonical text: %d checked, %d trusted", checked, trusted);
    }

    FUZZ_CHECK(lua_gettop(L) == top, "stack %d, was %d", lua_gettop(L), top);
    jn_sb_free(&once);
    jn_sb_free(&twice);
    free(text);
    lua_close(L);
    return 0;
}
