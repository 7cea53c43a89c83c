/* jn_collection: records in id order, id index, cached array and ETags. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mock/collection.h"

static void put(jn_collection *c, const char *id, const char *json) {
    jn_collection_put(c, id, json, strlen(json));
}

/* The whole array as a string (free it). */
static char *array_text(jn_collection *c, char etag_out[72]) {
    const char *etag = NULL;
    jn_rbuf *b = jn_collection_array(c, &etag);
    assert_non_null(b);
    assert_non_null(etag);
    if (etag_out) snprintf(etag_out, 72, "%s", etag);
    char *s = strndup(b->data, b->len);
    jn_rbuf_unref(b);
    return s;
}

static void test_put_get(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    assert_int_equal(jn_collection_count(c), 0);
    put(c, "1", "{\"id\":1}");
    put(c, "abc", "{\"id\":\"abc\"}");
    assert_int_equal(jn_collection_count(c), 2);
    size_t len = 0;
    const char *etag = NULL;
    const char *j = jn_collection_get(c, "1", &len, &etag);
    assert_non_null(j);
    assert_int_equal(len, 8);
    assert_memory_equal(j, "{\"id\":1}", 8);
    assert_non_null(etag);
    assert_int_equal(etag[0], '"');
    assert_int_equal(etag[strlen(etag) - 1], '"');
    j = jn_collection_get(c, "abc", &len, NULL); /* etag is optional */
    assert_non_null(j);
    assert_memory_equal(j, "{\"id\":\"abc\"}", len);
    assert_null(jn_collection_get(c, "2", &len, &etag));
    assert_null(jn_collection_get(c, "ab", &len, &etag));
    jn_collection_free(c);
}

static void test_record_etag_follows_content(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "1", "{\"v\":1}");
    put(c, "2", "{\"v\":1}");
    put(c, "3", "{\"v\":2}");
    size_t len;
    const char *e1, *e2, *e3;
    jn_collection_get(c, "1", &len, &e1);
    jn_collection_get(c, "2", &len, &e2);
    jn_collection_get(c, "3", &len, &e3);
    assert_string_equal(e1, e2);     /* same bytes, same tag */
    assert_string_not_equal(e1, e3); /* different bytes, different tag */
    char before[72];
    snprintf(before, sizeof before, "%s", e1);
    put(c, "1", "{\"v\":9}");
    jn_collection_get(c, "1", &len, &e1);
    assert_string_not_equal(before, e1);
    jn_collection_free(c);
}

static void test_replace_keeps_position(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "1", "\"a\"");
    put(c, "2", "\"b\"");
    put(c, "3", "\"c\"");
    put(c, "2", "\"B2\"");
    assert_int_equal(jn_collection_count(c), 3);
    char *s = array_text(c, NULL);
    assert_string_equal(s, "[\"a\",\"B2\",\"c\"]");
    free(s);
    size_t len;
    const char *j = jn_collection_get(c, "2", &len, NULL);
    assert_int_equal(len, 4);
    assert_memory_equal(j, "\"B2\"", 4);
    jn_collection_free(c);
}

static void test_remove(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "1", "1");
    put(c, "2", "2");
    put(c, "3", "3");
    assert_int_equal(jn_collection_remove(c, "2"), 0);
    assert_int_equal(jn_collection_remove(c, "2"), -1);
    assert_int_equal(jn_collection_remove(c, "nope"), -1);
    assert_int_equal(jn_collection_count(c), 2);
    size_t len;
    assert_null(jn_collection_get(c, "2", &len, NULL));
    /* The others are still found after the index is rebuilt, and keep their order. */
    assert_non_null(jn_collection_get(c, "1", &len, NULL));
    assert_non_null(jn_collection_get(c, "3", &len, NULL));
    char *s = array_text(c, NULL);
    assert_string_equal(s, "[1,3]");
    free(s);
    /* Putting a removed id again appends it. */
    put(c, "2", "22");
    s = array_text(c, NULL);
    assert_string_equal(s, "[1,3,22]");
    free(s);
    jn_collection_free(c);
}

static void test_many_records(void **state) {
    (void)state;
    /* Enough to grow the vector and rehash the index several times. */
    jn_collection *c = jn_collection_new();
    char id[16], json[32];
    for (int i = 1; i <= 5000; i++) {
        snprintf(id, sizeof id, "%d", i);
        snprintf(json, sizeof json, "{\"id\":%d}", i);
        put(c, id, json);
    }
    assert_int_equal(jn_collection_count(c), 5000);
    for (int i = 1; i <= 5000; i += 7) {
        snprintf(id, sizeof id, "%d", i);
        snprintf(json, sizeof json, "{\"id\":%d}", i);
        size_t len;
        const char *j = jn_collection_get(c, id, &len, NULL);
        assert_non_null(j);
        assert_int_equal(len, strlen(json));
        assert_memory_equal(j, json, len);
    }
    for (int i = 1; i <= 5000; i += 2) {
        snprintf(id, sizeof id, "%d", i);
        assert_int_equal(jn_collection_remove(c, id), 0);
    }
    assert_int_equal(jn_collection_count(c), 2500);
    size_t len;
    assert_null(jn_collection_get(c, "4999", &len, NULL));
    assert_non_null(jn_collection_get(c, "5000", &len, NULL));
    jn_collection_free(c);
}

static long long next_id(jn_collection *c) {
    long long id = -1;
    assert_int_equal(jn_collection_next_id(c, &id), 0);
    return id;
}

static void test_next_id(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    assert_int_equal(next_id(c), 1);
    put(c, "abc", "1");
    assert_int_equal(next_id(c), 1);
    put(c, "3", "1");
    put(c, "12", "1");
    put(c, "7", "1");
    put(c, "99x", "1"); /* not a decimal integer */
    put(c, "+50", "1");
    put(c, " 60", "1");
    assert_int_equal(next_id(c), 13);
    jn_collection_remove(c, "12");
    assert_int_equal(next_id(c), 8);
    /* Too large to be a number: it goes with the strings and does not count. */
    put(c, "99999999999999999999999", "1");
    assert_int_equal(next_id(c), 8);
    jn_collection_free(c);
}

/* The largest id taken: no next one, never a wrapped negative one (it used to be
 * LLONG_MIN, twice, the second POST replacing the first). */
static void test_next_id_when_the_id_space_is_exhausted(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "9223372036854775806", "1");
    assert_true(next_id(c) == JN_ID_MAX);
    put(c, "9223372036854775807", "1");
    long long id = 42;
    assert_int_equal(jn_collection_next_id(c, &id), -1);
    assert_int_equal(id, 42);
    jn_collection_remove(c, "9223372036854775807");
    assert_true(next_id(c) == JN_ID_MAX);
    jn_collection_free(c);
}

static void test_parse_id(void **state) {
    (void)state;
    long long v = 0;
    assert_int_equal(jn_collection_parse_id("7", &v), 0);
    assert_int_equal(v, 7);
    assert_int_equal(jn_collection_parse_id("1000", &v), 0);
    assert_int_equal(v, 1000);
    assert_int_equal(jn_collection_parse_id("9223372036854775807", &v), 0);
    assert_true(v == JN_ID_MAX);
    static const char *const not_plain[] = {"007", "00",  "+7", "-7", " 7", "7 ", "7.0",
                                            "1e3", "0x7", "",   "a",  "7a", "\t7"};
    for (size_t i = 0; i < sizeof not_plain / sizeof *not_plain; i++) {
        v = 99;
        assert_int_equal(jn_collection_parse_id(not_plain[i], &v), JN_ID_NOT_PLAIN);
        assert_int_equal(v, 99);
    }
    static const char *const out_of_range[] = {"0", "9223372036854775808", "9999999999999999999",
                                               "99999999999999999999999", "10000000000000000000"};
    for (size_t i = 0; i < sizeof out_of_range / sizeof *out_of_range; i++)
        assert_int_equal(jn_collection_parse_id(out_of_range[i], &v), JN_ID_OUT_OF_RANGE);
}

/* Ids of 19 digits are numbers too and page by value ("9" before 10^18). */
static void test_pages_order_the_largest_ids_by_value(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "9223372036854775807", "\"max\"");
    put(c, "1000000000000000000", "\"e18\"");
    put(c, "9", "\"9\"");
    put(c, "x", "\"x\"");
    assert_string_equal(jn_collection_id_at(c, 0), "9");
    assert_string_equal(jn_collection_id_at(c, 1), "1000000000000000000");
    assert_string_equal(jn_collection_id_at(c, 2), "9223372036854775807");
    assert_string_equal(jn_collection_id_at(c, 3), "x");
    assert_int_equal(jn_collection_position_after(c, "1000000000000000000"), 2);
    jn_collection_free(c);
}

static void test_array_cached(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "1", "{\"a\":1}");
    put(c, "2", "{\"b\":2}");
    const char *e1 = NULL, *e2 = NULL;
    jn_rbuf *a = jn_collection_array(c, &e1);
    jn_rbuf *b = jn_collection_array(c, &e2);
    assert_ptr_equal(a, b); /* the same cached body, no rebuild */
    assert_string_equal(e1, e2);
    assert_int_equal(a->len, strlen("[{\"a\":1},{\"b\":2}]"));
    assert_memory_equal(a->data, "[{\"a\":1},{\"b\":2}]", a->len);
    jn_rbuf_unref(a);
    jn_rbuf_unref(b);
    jn_collection_free(c);
}

static void test_array_outlives_change(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "1", "1");
    const char *etag;
    jn_rbuf *old = jn_collection_array(c, &etag);
    put(c, "2", "2");
    /* The old body is still valid (a socket may be writing it) and unchanged. */
    assert_memory_equal(old->data, "[1]", 3);
    jn_rbuf *cur = jn_collection_array(c, &etag);
    assert_memory_equal(cur->data, "[1,2]", 5);
    jn_rbuf_unref(old);
    jn_rbuf_unref(cur);
    jn_collection_free(c);
    /* A reference held past the collection itself stays valid too. */
    c = jn_collection_new();
    put(c, "1", "1");
    old = jn_collection_array(c, &etag);
    jn_collection_free(c);
    assert_memory_equal(old->data, "[1]", 3);
    jn_rbuf_unref(old);
}

static void test_array_etag(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    char e_empty[72], e1[72], e1_again[72], e2[72], e3[72], e4[72];
    char *s = array_text(c, e_empty);
    assert_string_equal(s, "[]");
    free(s);
    put(c, "1", "{\"v\":1}");
    free(array_text(c, e1));
    free(array_text(c, e1_again));
    assert_string_equal(e1, e1_again); /* stable while nothing changes */
    assert_string_not_equal(e_empty, e1);
    put(c, "1", "{\"v\":2}"); /* replace */
    free(array_text(c, e2));
    assert_string_not_equal(e1, e2);
    put(c, "2", "{\"v\":3}"); /* insert */
    free(array_text(c, e3));
    assert_string_not_equal(e2, e3);
    jn_collection_remove(c, "2"); /* remove: back to the e2 data */
    free(array_text(c, e4));
    assert_string_not_equal(e3, e4);
    assert_string_equal(e2, e4); /* the tag depends on the data alone */
    assert_int_equal(e4[0], '"');
    assert_int_equal(e4[strlen(e4) - 1], '"');
    jn_collection_free(c);
}

static void test_rewrite_same_content_same_etag(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "1", "{\"v\":1}");
    char a[72], b[72];
    free(array_text(c, a));
    put(c, "1", "{\"v\":1}");
    free(array_text(c, b));
    assert_string_equal(a, b);
    jn_collection_free(c);
}

static char *slice_text(jn_collection *c, size_t off, size_t lim, char etag[72]) {
    jn_rbuf *b = jn_collection_slice(c, off, lim, etag);
    assert_non_null(b);
    char *s = strndup(b->data, b->len);
    jn_rbuf_unref(b);
    return s;
}

static void test_slice(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    char id[8], json[8];
    for (int i = 1; i <= 5; i++) {
        snprintf(id, sizeof id, "%d", i);
        snprintf(json, sizeof json, "%d", i * 10);
        put(c, id, json);
    }
    char e1[72], e2[72], e3[72];
    char *s = slice_text(c, 0, 2, e1);
    assert_string_equal(s, "[10,20]");
    free(s);
    s = slice_text(c, 1, 3, e2);
    assert_string_equal(s, "[20,30,40]");
    free(s);
    assert_string_not_equal(e1, e2);
    s = slice_text(c, 3, 100, e3); /* limit past the end */
    assert_string_equal(s, "[40,50]");
    free(s);
    s = slice_text(c, 5, 10, e3); /* offset at the end */
    assert_string_equal(s, "[]");
    free(s);
    s = slice_text(c, 99, 10, e3); /* offset past the end */
    assert_string_equal(s, "[]");
    free(s);
    s = slice_text(c, 2, 0, e3);
    assert_string_equal(s, "[]");
    free(s);
    s = slice_text(c, 0, (size_t)-1, e3); /* huge limit does not overflow */
    assert_string_equal(s, "[10,20,30,40,50]");
    free(s);
    /* A full-range slice has the same bytes, hence the same tag, as the array. */
    char ea[72];
    free(array_text(c, ea));
    assert_string_equal(e3, ea);
    /* Same page twice, same tag. */
    char again[72];
    free(slice_text(c, 1, 3, again));
    assert_string_equal(e2, again);
    jn_collection_free(c);
}

/* Pages walk the records by id, whatever order they came in: integer ids by value ("9"
 * before "10") and before the others, which go by their bytes. */
static char *page_text(jn_collection *c, size_t from, size_t limit, size_t *got) {
    jn_sb sb;
    jn_sb_init(&sb);
    *got = jn_collection_page(c, from, limit, &sb);
    return jn_sb_steal(&sb);
}

static void test_pages_in_id_order(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    put(c, "10", "10");
    put(c, "b", "\"b\"");
    put(c, "9", "9");
    put(c, "a", "\"a\"");
    put(c, "1", "1");
    size_t got;
    char *p = page_text(c, 0, 100, &got);
    assert_int_equal(got, 5);
    assert_string_equal(p, "[1,9,10,\"a\",\"b\"]");
    free(p);
    p = page_text(c, 1, 2, &got);
    assert_int_equal(got, 2);
    assert_string_equal(p, "[9,10]");
    free(p);
    p = page_text(c, 5, 2, &got); /* past the end: an empty array */
    assert_int_equal(got, 0);
    assert_string_equal(p, "[]");
    free(p);
    p = page_text(c, 999999, 2, &got);
    assert_string_equal(p, "[]");
    free(p);
    assert_string_equal(jn_collection_id_at(c, 2), "10");
    assert_null(jn_collection_id_at(c, 5));
    /* Where the page after an id starts, whether that id still exists or not. */
    assert_int_equal(jn_collection_position_after(c, "1"), 1);
    assert_int_equal(jn_collection_position_after(c, "5"), 1);
    assert_int_equal(jn_collection_position_after(c, "10"), 3);
    assert_int_equal(jn_collection_position_after(c, "0"), 0);
    assert_int_equal(jn_collection_position_after(c, "a"), 4);
    assert_int_equal(jn_collection_position_after(c, "z"), 5);
    /* The order follows additions and removals, not replacements. */
    put(c, "2", "2");
    jn_collection_remove(c, "9");
    put(c, "10", "100");
    p = page_text(c, 0, 3, &got);
    assert_string_equal(p, "[1,2,100]");
    free(p);
    /* The whole array keeps insertion order. */
    char *all = array_text(c, NULL);
    assert_string_equal(all, "[100,\"b\",\"a\",1,2]");
    free(all);
    jn_collection_free(c);
}

static void test_pages_of_an_empty_collection(void **state) {
    (void)state;
    jn_collection *c = jn_collection_new();
    size_t got;
    char *p = page_text(c, 0, 10, &got);
    assert_int_equal(got, 0);
    assert_string_equal(p, "[]");
    free(p);
    assert_int_equal(jn_collection_position_after(c, "1"), 0);
    assert_null(jn_collection_id_at(c, 0));
    jn_collection_free(c);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_put_get),
        cmocka_unit_test(test_pages_in_id_order),
        cmocka_unit_test(test_pages_of_an_empty_collection),
        cmocka_unit_test(test_record_etag_follows_content),
        cmocka_unit_test(test_replace_keeps_position),
        cmocka_unit_test(test_remove),
        cmocka_unit_test(test_many_records),
        cmocka_unit_test(test_next_id),
        cmocka_unit_test(test_next_id_when_the_id_space_is_exhausted),
        cmocka_unit_test(test_parse_id),
        cmocka_unit_test(test_pages_order_the_largest_ids_by_value),
        cmocka_unit_test(test_array_cached),
        cmocka_unit_test(test_array_outlives_change),
        cmocka_unit_test(test_array_etag),
        cmocka_unit_test(test_rewrite_same_content_same_etag),
        cmocka_unit_test(test_slice),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
