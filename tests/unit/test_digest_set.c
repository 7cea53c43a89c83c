/* jn_digest_set: the pipeline's messages in flight by content hash. Random puts, gets
 * and removals are checked against a plain array, with digests made to share their
 * first bytes so runs collide and removals must shift entries back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "digest_set.h"

#define N 5000

typedef struct {
    unsigned char digest[JN_DIGEST_LEN];
    int in; /* in the set, per the reference */
} obj;

static uint64_t rnd_state = 88172645463325252ULL;

static uint64_t rnd(void) {
    rnd_state ^= rnd_state << 13;
    rnd_state ^= rnd_state >> 7;
    rnd_state ^= rnd_state << 17;
    return rnd_state;
}

/* Digests whose slot bits take few values (runs that wrap and overlap), told apart by
 * the bytes after them. */
static void make(obj *o, unsigned i) {
    memset(o->digest, 0, sizeof o->digest);
    uint64_t h = rnd() % 97;
    if (i % 3 == 0) h = UINT64_MAX - h; /* the table's last slots: runs wrap to its start */
    memcpy(o->digest, &h, sizeof h);
    memcpy(o->digest + 8, &i, sizeof i);
    o->in = 0;
}

static void check_all(jn_digest_set *s, obj *objs, size_t n) {
    size_t count = 0;
    for (size_t i = 0; i < n; i++) {
        void *got = jn_digest_set_get(s, objs[i].digest);
        if (objs[i].in) {
            assert_ptr_equal(got, &objs[i]);
            count++;
        } else {
            assert_null(got);
        }
    }
    assert_int_equal(jn_digest_set_count(s), count);
}

static void test_matches_a_plain_array(void **state) {
    (void)state;
    obj *objs = calloc(N, sizeof *objs);
    assert_non_null(objs);
    for (unsigned i = 0; i < N; i++)
        make(&objs[i], i);
    jn_digest_set *s = jn_digest_set_new();
    for (int step = 0; step < 200000; step++) {
        obj *o = &objs[rnd() % N];
        if (rnd() % 3) {
            jn_digest_set_put(s, o->digest, o);
            o->in = 1;
        } else {
            assert_int_equal(jn_digest_set_del(s, o->digest), o->in);
            o->in = 0;
        }
        if (step % 20000 == 0) check_all(s, objs, N);
    }
    check_all(s, objs, N);
    /* Emptied one by one, in an order unrelated to the puts. */
    for (unsigned i = 0; i < N; i++) {
        unsigned k = (i * 7919u) % N;
        assert_int_equal(jn_digest_set_del(s, objs[k].digest), objs[k].in);
        objs[k].in = 0;
    }
    check_all(s, objs, N);
    jn_digest_set_free(s);
    free(objs);
}

static void test_put_replaces_and_compares_whole_digests(void **state) {
    (void)state;
    jn_digest_set *s = jn_digest_set_new();
    obj a, b, c;
    make(&a, 1);
    b = a;
    c = a;
    c.digest[JN_DIGEST_LEN - 1] ^= 1; /* same slot, different in its last byte */
    jn_digest_set_put(s, a.digest, &a);
    assert_null(jn_digest_set_get(s, c.digest));
    jn_digest_set_put(s, b.digest, &b); /* the same digest: replaces */
    assert_ptr_equal(jn_digest_set_get(s, a.digest), &b);
    assert_int_equal(jn_digest_set_count(s), 1);
    jn_digest_set_put(s, c.digest, &c);
    assert_int_equal(jn_digest_set_count(s), 2);
    assert_int_equal(jn_digest_set_del(s, a.digest), 1);
    assert_int_equal(jn_digest_set_del(s, a.digest), 0);
    assert_ptr_equal(jn_digest_set_get(s, c.digest), &c);
    jn_digest_set_free(s);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_matches_a_plain_array),
        cmocka_unit_test(test_put_replaces_and_compares_whole_digests),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
