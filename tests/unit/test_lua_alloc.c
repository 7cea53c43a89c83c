/* jn_lua_alloc: the size-class pool behind every Lua state, and the same requests passed
 * straight to malloc (what the sanitizer build gives states). Each test runs both. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <lauxlib.h>
#include <lualib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "lua_alloc.h"

/* Past the pool's largest class (512), so large blocks and the moves between small and
 * large are covered too. */
#define MAX_TESTED 1200

static void fill(unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        p[i] = (unsigned char)(seed * 31 + i * 7);
}

static void assert_filled(const unsigned char *p, size_t n, unsigned seed) {
    for (size_t i = 0; i < n; i++)
        if (p[i] != (unsigned char)(seed * 31 + i * 7))
            fail_msg("byte %zu of a %zu-byte block (seed %u) changed", i, n, seed);
}

static size_t in_use(jn_lua_alloc *a) {
    jn_lua_alloc_stats st;
    jn_lua_alloc_get_stats(a, &st);
    return st.in_use;
}

/* Every size up to past the largest class, all live at once (so they must not overlap),
 * freed, then made again from the free lists. */
static void every_size(int pool) {
    jn_lua_alloc *a = jn_lua_alloc_new(pool);
    assert_non_null(a);
    static unsigned char *blocks[MAX_TESTED + 1];
    size_t total = 0;
    for (int round = 0; round < 2; round++) {
        for (size_t n = 1; n <= MAX_TESTED; n++) {
            blocks[n] = jn_lua_alloc_fn(a, NULL, LUA_TTABLE, n);
            assert_non_null(blocks[n]);
            assert_int_equal((uintptr_t)blocks[n] % 16, 0);
            fill(blocks[n], n, (unsigned)n);
            if (round == 0) total += n;
        }
        assert_int_equal(in_use(a), total);
        for (size_t n = 1; n <= MAX_TESTED; n++)
            assert_filled(blocks[n], n, (unsigned)n);
        for (size_t n = 1; n <= MAX_TESTED; n++)
            assert_null(jn_lua_alloc_fn(a, blocks[n], n, 0));
        assert_int_equal(in_use(a), 0);
    }
    jn_lua_alloc_free(a);
}

static void test_every_size_pool(void **state) {
    (void)state;
    every_size(1);
}

static void test_every_size_malloc(void **state) {
    (void)state;
    every_size(0);
}

/* One block grown a byte at a time to a large size and shrunk back, keeping its bytes. */
static void grow_and_shrink(int pool) {
    jn_lua_alloc *a = jn_lua_alloc_new(pool);
    unsigned char *p = jn_lua_alloc_fn(a, NULL, LUA_TSTRING, 1);
    assert_non_null(p);
    p[0] = 0xA5;
    for (size_t n = 2; n <= MAX_TESTED; n++) {
        p = jn_lua_alloc_fn(a, p, n - 1, n);
        assert_non_null(p);
        assert_int_equal(p[0], 0xA5);
        p[n - 1] = (unsigned char)n;
    }
    for (size_t i = 1; i < MAX_TESTED; i++)
        assert_int_equal(p[i], (unsigned char)(i + 1));
    for (size_t n = MAX_TESTED - 1; n >= 1; n--) {
        p = jn_lua_alloc_fn(a, p, n + 1, n);
        assert_non_null(p);
        assert_int_equal(in_use(a), n);
        assert_int_equal(p[0], 0xA5);
        if (n > 1) assert_int_equal(p[n - 1], (unsigned char)n);
    }
    assert_null(jn_lua_alloc_fn(a, p, 1, 0));
    assert_int_equal(in_use(a), 0);
    jn_lua_alloc_free(a);
}

static void test_grow_and_shrink_pool(void **state) {
    (void)state;
    grow_and_shrink(1);
}

static void test_grow_and_shrink_malloc(void **state) {
    (void)state;
    grow_and_shrink(0);
}

/* Jumps between sizes far apart: small to large, large to small, large to large, and
 * within one class (which keeps the block where it is). */
static void test_jumps(void **state) {
    (void)state;
    static const size_t sizes[] = {24, 4096, 40, 600, 513, 512, 1, 100000, 300, 17, 30, 8};
    for (int pool = 0; pool <= 1; pool++) {
        jn_lua_alloc *a = jn_lua_alloc_new(pool);
        size_t cur = 8;
        unsigned char *p = jn_lua_alloc_fn(a, NULL, LUA_TUSERDATA, cur);
        fill(p, cur, 9);
        for (size_t i = 0; i < sizeof sizes / sizeof *sizes; i++) {
            size_t n = sizes[i], keep = cur < n ? cur : n;
            unsigned char *q = jn_lua_alloc_fn(a, p, cur, n);
            assert_non_null(q);
            assert_filled(q, keep, 9);
            fill(q, n, 9);
            if (pool && cur == 17 && n == 30) assert_ptr_equal(q, p); /* both 32-byte class */
            p = q, cur = n;
            assert_int_equal(in_use(a), cur);
        }
        jn_lua_alloc_fn(a, p, cur, 0);
        assert_int_equal(in_use(a), 0);
        jn_lua_alloc_free(a);
    }
}

/* The lua_Alloc contract for NULL and zero sizes: with ptr NULL osize is a type tag,
 * not a size, and nsize 0 asks for nothing; nsize 0 with a block frees it. */
static void test_null_and_zero(void **state) {
    (void)state;
    for (int pool = 0; pool <= 1; pool++) {
        jn_lua_alloc *a = jn_lua_alloc_new(pool);
        assert_null(jn_lua_alloc_fn(a, NULL, 0, 0));
        assert_null(jn_lua_alloc_fn(a, NULL, LUA_TTABLE, 0));
        assert_null(jn_lua_alloc_fn(a, NULL, LUA_TSTRING, 0));
        assert_int_equal(in_use(a), 0);
        /* A tag bigger than any block must not be taken for the old size. */
        void *p = jn_lua_alloc_fn(a, NULL, LUA_NUMTYPES + 100, 48);
        assert_non_null(p);
        assert_int_equal(in_use(a), 48);
        assert_null(jn_lua_alloc_fn(a, p, 48, 0));
        void *big = jn_lua_alloc_fn(a, NULL, LUA_TTABLE, 5000);
        assert_null(jn_lua_alloc_fn(a, big, 5000, 0));
        assert_int_equal(in_use(a), 0);
        jn_lua_alloc_free(a);
        jn_lua_alloc_free(NULL);
    }
}

/* Many more blocks than one chunk holds, in mixed classes, freed in a different order
 * and made again (same sizes): chunk tails and free lists must never hand out a block twice. */
static void test_many_chunks(void **state) {
    (void)state;
    enum { N = 40000 };
    unsigned char **p = calloc(N, sizeof *p);
    jn_lua_alloc *a = jn_lua_alloc_new(1);
    jn_lua_alloc_stats st;
    size_t first = 0;
    for (int round = 0; round < 3; round++) {
        for (unsigned i = 0; i < N; i++) {
            size_t n = 1 + (i * 97) % 512;
            p[i] = jn_lua_alloc_fn(a, NULL, LUA_TTABLE, n);
            assert_non_null(p[i]);
            fill(p[i], n, i);
        }
        for (unsigned i = 0; i < N; i++)
            assert_filled(p[i], 1 + (i * 97) % 512, i);
        for (unsigned k = 0; k < N; k++) {
            unsigned i = (k * 7919) % N; /* 7919 is prime and N is not its multiple */
            jn_lua_alloc_fn(a, p[i], 1 + (i * 97) % 512, 0);
        }
        jn_lua_alloc_get_stats(a, &st);
        assert_int_equal(st.in_use, 0);
        if (round == 0) first = st.reserved;
    }
    /* The freed blocks were reused: later rounds took no more chunks than the first one
     * needed (about 10 MB for 40,000 blocks averaging 264 bytes with rounding). */
    assert_int_equal(st.reserved, first);
    assert_true(st.reserved >= (size_t)N * 256);
    assert_true(st.reserved <= (size_t)N * 300);
    jn_lua_alloc_free(a);
    free(p);
}

/* ---- Lua states ----------------------------------------------------------------------- */

/* Builds and drops many tables and strings; the result depends only on the values, not
 * on table order, so every allocator and GC mode must give the same text. */
static const char churn[] =
    "local kept, total = {}, 0\n"
    "for round = 1, 60 do\n"
    "  local rows = {}\n"
    "  for i = 1, 400 do\n"
    "    local email = string.format('customer%d@example.com', i * round)\n"
    "    rows[i] = {id = i, email = email, name = ('N'):rep(i % 700),\n"
    "               tags = {tostring(i), email:upper()}, headers = {source = 'crm'}}\n"
    "  end\n"
    "  table.sort(rows, function(a, b) return a.email < b.email end)\n"
    "  local parts = {}\n"
    "  for i = 1, #rows, 40 do\n"
    "    parts[#parts + 1] = rows[i].email .. #rows[i].name .. rows[i].tags[2]\n"
    "  end\n"
    "  kept[round % 5 + 1] = table.concat(parts, ',')\n"
    "  for _, r in ipairs(rows) do total = total + r.id + #r.tags[2] + #r.name end\n"
    "end\n"
    "return total .. ':' .. table.concat(kept, '|')\n";

/* Runs churn in L (closing it) and returns the result (free it). */
static char *run_churn(lua_State *L, int generational) {
    assert_non_null(L);
    luaL_openlibs(L);
    if (generational) lua_gc(L, LUA_GCGEN, 0, 0);
    if (luaL_dostring(L, churn) != LUA_OK) fail_msg("churn: %s", lua_tostring(L, -1));
    char *out = strdup(lua_tostring(L, -1));
    lua_settop(L, 0);
    return out;
}

/* Lua's own count of its memory matches what the allocator was asked for. */
static void assert_counts_agree(lua_State *L, jn_lua_alloc *a) {
    size_t lua = (size_t)lua_gc(L, LUA_GCCOUNT, 0) * 1024 + (size_t)lua_gc(L, LUA_GCCOUNTB, 0);
    assert_int_equal(in_use(a), lua);
}

static void test_state_same_results(void **state) {
    (void)state;
    lua_State *ref = luaL_newstate();
    char *want = run_churn(ref, 0);
    lua_close(ref);
    assert_true(strlen(want) > 1000);
    for (int pool = 0; pool <= 1; pool++) {
        for (int gen = 0; gen <= 1; gen++) {
            jn_lua_alloc *a = jn_lua_alloc_new(pool);
            lua_State *L = lua_newstate(jn_lua_alloc_fn, a);
            char *got = run_churn(L, gen);
            assert_string_equal(got, want);
            assert_counts_agree(L, a);
            lua_gc(L, LUA_GCCOLLECT, 0);
            assert_counts_agree(L, a);
            lua_close(L);
            /* Lua gave back every block with the size it was given. */
            assert_int_equal(in_use(a), 0);
            jn_lua_alloc_free(a);
            free(got);
        }
    }
    /* And through the constructor the program uses. */
    lua_State *L = jn_lua_alloc_newstate();
    char *got = run_churn(L, 1);
    assert_string_equal(got, want);
    jn_lua_alloc_close(L);
    free(got);
    free(want);
}

/* Warnings are off until "@on", as with luaL_newstate; pieces make one line. */
static void test_state_warnings(void **state) {
    (void)state;
    FILE *tmp = tmpfile();
    assert_non_null(tmp);
    fflush(stderr);
    int saved = dup(2);
    dup2(fileno(tmp), 2);
    lua_State *L = jn_lua_alloc_newstate();
    luaL_openlibs(L);
    int rc = luaL_dostring(L, "warn('hidden') warn('@on') warn('shown ', 'in ', 'pieces')\n"
                              "warn('@unknown') warn('again') warn('@off') warn('hidden')");
    fflush(stderr);
    dup2(saved, 2);
    close(saved);
    assert_int_equal(rc, LUA_OK);
    jn_lua_alloc_close(L);
    char buf[256] = {0};
    rewind(tmp);
    size_t n = fread(buf, 1, sizeof buf - 1, tmp);
    fclose(tmp);
    buf[n] = 0;
    assert_string_equal(buf, "Lua warning: shown in pieces\nLua warning: again\n");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_size_pool),
        cmocka_unit_test(test_every_size_malloc),
        cmocka_unit_test(test_grow_and_shrink_pool),
        cmocka_unit_test(test_grow_and_shrink_malloc),
        cmocka_unit_test(test_jumps),
        cmocka_unit_test(test_null_and_zero),
        cmocka_unit_test(test_many_chunks),
        cmocka_unit_test(test_state_same_results),
        cmocka_unit_test(test_state_warnings),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
