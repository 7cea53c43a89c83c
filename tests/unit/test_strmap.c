/* jn_strmap: the producer's change detection (record key -> 32-byte content hash). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <string.h>

#include "strmap.h"

/* A value derived from n, different for every n. */
static void value_of(unsigned n, unsigned char out[JN_STRMAP_VALUE]) {
    for (int i = 0; i < JN_STRMAP_VALUE; i++)
        out[i] = (unsigned char)((n >> (8 * (i % 4))) ^ (unsigned)(i * 37));
}

static void assert_value(const unsigned char *got, unsigned n) {
    assert_non_null(got);
    unsigned char want[JN_STRMAP_VALUE];
    value_of(n, want);
    assert_memory_equal(got, want, JN_STRMAP_VALUE);
}

static size_t key_of(unsigned n, char *buf, size_t cap) {
    return (size_t)snprintf(buf, cap, "record-%u", n);
}

static void test_set_get_overwrite(void **state) {
    (void)state;
    jn_strmap *m = jn_strmap_new();
    assert_int_equal(jn_strmap_count(m), 0);
    assert_null(jn_strmap_get(m, "7", 1));

    unsigned char v1[JN_STRMAP_VALUE], v2[JN_STRMAP_VALUE];
    value_of(1, v1);
    value_of(2, v2);
    jn_strmap_set(m, "7", 1, v1);
    assert_int_equal(jn_strmap_count(m), 1);
    assert_value(jn_strmap_get(m, "7", 1), 1);

    /* the map keeps its own copy of the value */
    memset(v1, 0, sizeof v1);
    assert_value(jn_strmap_get(m, "7", 1), 1);

    /* overwriting replaces the value and keeps the count */
    jn_strmap_set(m, "7", 1, v2);
    assert_int_equal(jn_strmap_count(m), 1);
    assert_value(jn_strmap_get(m, "7", 1), 2);

    /* the key is copied: the caller's buffer may change afterwards */
    char key[] = "abc";
    jn_strmap_set(m, key, 3, v2);
    key[0] = 'x';
    assert_value(jn_strmap_get(m, "abc", 3), 2);
    assert_null(jn_strmap_get(m, key, 3));
    assert_int_equal(jn_strmap_count(m), 2);
    jn_strmap_free(m);
}

static void test_missing_keys(void **state) {
    (void)state;
    jn_strmap *m = jn_strmap_new();
    unsigned char v[JN_STRMAP_VALUE];
    value_of(5, v);
    jn_strmap_set(m, "present", 7, v);
    assert_null(jn_strmap_get(m, "absent", 6));
    assert_null(jn_strmap_get(m, "", 0));
    assert_int_equal(jn_strmap_del(m, "absent", 6), 0);
    assert_int_equal(jn_strmap_count(m), 1);
    jn_strmap_free(m);
    jn_strmap_free(NULL); /* allowed, like free() */
}

static void test_lengths_matter(void **state) {
    (void)state;
    jn_strmap *m = jn_strmap_new();
    /* prefixes of each other, and keys that differ only after an embedded NUL */
    static const struct {
        const char *key;
        size_t len;
    } keys[] = {
        {"", 0},      {"k", 1},      {"ke", 2},     {"key", 3}, {"key1", 4},
        {"key\0", 4}, {"key\0a", 5}, {"key\0b", 5}, {"\0", 1},  {"\0\0", 2},
        {"a\0b", 3},  {"a\0c", 3},   {"a\0b\0", 4}, {"a", 1},   {"ab", 2},
    };
    size_t n = sizeof keys / sizeof keys[0];
    unsigned char v[JN_STRMAP_VALUE];
    for (size_t i = 0; i < n; i++) {
        value_of((unsigned)i, v);
        jn_strmap_set(m, keys[i].key, keys[i].len, v);
    }
    assert_int_equal(jn_strmap_count(m), n);
    for (size_t i = 0; i < n; i++)
        assert_value(jn_strmap_get(m, keys[i].key, keys[i].len), (unsigned)i);
    /* removing one leaves its neighbours alone */
    assert_int_equal(jn_strmap_del(m, "key\0a", 5), 1);
    assert_null(jn_strmap_get(m, "key\0a", 5));
    assert_value(jn_strmap_get(m, "key\0b", 5), 7);
    assert_value(jn_strmap_get(m, "key\0", 4), 5);
    assert_value(jn_strmap_get(m, "key", 3), 3);
    assert_int_equal(jn_strmap_count(m), n - 1);
    jn_strmap_free(m);
}

static void test_delete_and_reinsert(void **state) {
    (void)state;
    jn_strmap *m = jn_strmap_new();
    unsigned char v[JN_STRMAP_VALUE];
    value_of(1, v);
    jn_strmap_set(m, "a", 1, v);
    jn_strmap_set(m, "b", 1, v);
    assert_int_equal(jn_strmap_del(m, "a", 1), 1);
    assert_null(jn_strmap_get(m, "a", 1));
    assert_int_equal(jn_strmap_count(m), 1);
    assert_int_equal(jn_strmap_del(m, "a", 1), 0); /* already gone */
    assert_int_equal(jn_strmap_count(m), 1);

    value_of(9, v);
    jn_strmap_set(m, "a", 1, v);
    assert_value(jn_strmap_get(m, "a", 1), 9);
    assert_value(jn_strmap_get(m, "b", 1), 1);
    assert_int_equal(jn_strmap_count(m), 2);
    jn_strmap_free(m);
}

static void test_growth_100k(void **state) {
    (void)state;
    enum { N = 100000 };
    jn_strmap *m = jn_strmap_new();
    char key[32];
    unsigned char v[JN_STRMAP_VALUE];
    for (unsigned i = 0; i < N; i++) {
        value_of(i, v);
        jn_strmap_set(m, key, key_of(i, key, sizeof key), v);
    }
    assert_int_equal(jn_strmap_count(m), N);
    for (unsigned i = 0; i < N; i++) {
        size_t len = key_of(i, key, sizeof key);
        assert_value(jn_strmap_get(m, key, len), i);
    }
    assert_null(jn_strmap_get(m, "record-100000", 13));
    jn_strmap_free(m);
}

static void test_delete_half_keeps_other_half(void **state) {
    (void)state;
    enum { N = 100000 };
    jn_strmap *m = jn_strmap_new();
    char key[32];
    unsigned char v[JN_STRMAP_VALUE];
    for (unsigned i = 0; i < N; i++) {
        value_of(i, v);
        jn_strmap_set(m, key, key_of(i, key, sizeof key), v);
    }
    for (unsigned i = 0; i < N; i += 2)
        assert_int_equal(jn_strmap_del(m, key, key_of(i, key, sizeof key)), 1);
    assert_int_equal(jn_strmap_count(m), N / 2);
    /* the odd keys were moved back into the holes of many probe runs */
    for (unsigned i = 0; i < N; i++) {
        size_t len = key_of(i, key, sizeof key);
        if (i % 2)
            assert_value(jn_strmap_get(m, key, len), i);
        else
            assert_null(jn_strmap_get(m, key, len));
    }
    /* overwriting a survivor finds it instead of inserting a duplicate */
    for (unsigned i = 1; i < N; i += 2) {
        value_of(i + 7, v);
        jn_strmap_set(m, key, key_of(i, key, sizeof key), v);
    }
    assert_int_equal(jn_strmap_count(m), N / 2);
    for (unsigned i = 1; i < N; i += 2)
        assert_value(jn_strmap_get(m, key, key_of(i, key, sizeof key)), i + 7);
    /* deleting each survivor once removes it for good */
    for (unsigned i = 1; i < N; i += 2) {
        size_t len = key_of(i, key, sizeof key);
        assert_int_equal(jn_strmap_del(m, key, len), 1);
        assert_null(jn_strmap_get(m, key, len));
    }
    assert_int_equal(jn_strmap_count(m), 0);
    jn_strmap_free(m);
}

/* Records come and go while the number alive stays small: what deletion leaves behind
 * must not fill the table, or probing never ends. */
static void test_churn_reclaims_tombstones(void **state) {
    (void)state;
    jn_strmap *m = jn_strmap_new();
    char key[32];
    unsigned char v[JN_STRMAP_VALUE];
    for (unsigned i = 0; i < 200000; i++) {
        value_of(i, v);
        jn_strmap_set(m, key, key_of(i, key, sizeof key), v);
        if (i >= 10) assert_int_equal(jn_strmap_del(m, key, key_of(i - 10, key, sizeof key)), 1);
    }
    assert_int_equal(jn_strmap_count(m), 10);
    for (unsigned i = 199990; i < 200000; i++)
        assert_value(jn_strmap_get(m, key, key_of(i, key, sizeof key)), i);
    assert_null(jn_strmap_get(m, key, key_of(199989, key, sizeof key)));
    jn_strmap_free(m);
}

/* Key k of the random test's pool: one in three longer than the map keeps in an entry. */
static size_t pool_key(unsigned k, char *out, size_t cap) {
    if (k % 3) return (size_t)snprintf(out, cap, "k%u", k);
    return (size_t)snprintf(out, cap, "a-key-longer-than-forty-bytes-number-%u-of-the-pool", k);
}

/* Random sets, deletes and lookups on a pool of keys, short and long (stored apart),
 * checked against a plain array after every step: deletion moves entries around, across
 * the end of the table too, and every key must stay findable. */
static void test_random_operations_match_a_reference(void **state) {
    (void)state;
    enum { KEYS = 300, STEPS = 200000 };
    static int present[KEYS];
    static unsigned stored[KEYS];
    memset(present, 0, sizeof present);
    jn_strmap *m = jn_strmap_new();
    char key[96];
    unsigned char v[JN_STRMAP_VALUE];
    size_t count = 0;
    unsigned rng = 12345;
    for (unsigned step = 0; step < STEPS; step++) {
        rng = rng * 1103515245u + 12345u;
        unsigned k = (rng >> 8) % KEYS, op = (rng >> 20) % 3;
        size_t len = pool_key(k, key, sizeof key);
        if (op == 0) {
            value_of(step, v);
            jn_strmap_set(m, key, len, v);
            if (!present[k]) count++;
            present[k] = 1;
            stored[k] = step;
        } else if (op == 1) {
            assert_int_equal(jn_strmap_del(m, key, len), present[k]);
            if (present[k]) count--;
            present[k] = 0;
        }
        const unsigned char *got = jn_strmap_get(m, key, len);
        if (present[k])
            assert_value(got, stored[k]);
        else
            assert_null(got);
        assert_int_equal(jn_strmap_count(m), count);
    }
    for (unsigned k = 0; k < KEYS; k++) {
        size_t len = pool_key(k, key, sizeof key);
        if (present[k])
            assert_value(jn_strmap_get(m, key, len), stored[k]);
        else
            assert_null(jn_strmap_get(m, key, len));
    }
    jn_strmap_free(m);
}

static void test_clear(void **state) {
    (void)state;
    jn_strmap *m = jn_strmap_new();
    char key[32];
    unsigned char v[JN_STRMAP_VALUE];
    for (unsigned i = 0; i < 1000; i++) {
        value_of(i, v);
        jn_strmap_set(m, key, key_of(i, key, sizeof key), v);
    }
    jn_strmap_del(m, "record-3", 8);
    jn_strmap_clear(m);
    assert_int_equal(jn_strmap_count(m), 0);
    for (unsigned i = 0; i < 1000; i++)
        assert_null(jn_strmap_get(m, key, key_of(i, key, sizeof key)));
    /* usable again after clearing */
    value_of(42, v);
    jn_strmap_set(m, "record-5", 8, v);
    assert_int_equal(jn_strmap_count(m), 1);
    assert_value(jn_strmap_get(m, "record-5", 8), 42);
    jn_strmap_clear(m);
    jn_strmap_clear(m); /* clearing an empty map is fine */
    assert_int_equal(jn_strmap_count(m), 0);
    jn_strmap_free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_set_get_overwrite),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_lengths_matter),
        cmocka_unit_test(test_delete_and_reinsert),
        cmocka_unit_test(test_growth_100k),
        cmocka_unit_test(test_delete_half_keeps_other_half),
        cmocka_unit_test(test_churn_reclaims_tombstones),
        cmocka_unit_test(test_random_operations_match_a_reference),
        cmocka_unit_test(test_clear),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
