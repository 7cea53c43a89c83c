/* The consumer's commit watermark (src/offsets.h): messages are tracked in arrival order
 * and settled in any order; the committable offset is the lowest unsettled one, or one
 * past the highest tracked when everything is settled. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "offsets.h"

static void test_nothing_tracked(void **state) {
    (void)state;
    jn_offsets o;
    jn_offsets_init(&o);
    assert_int_equal(jn_offsets_committable(&o), -1);
    assert_int_equal(jn_offsets_pending(&o), 0);
    assert_int_equal(jn_offsets_settle(&o, 0), -1);
    assert_int_equal(jn_offsets_settle(&o, 5), -1);
    assert_int_equal(jn_offsets_committable(&o), -1);
    jn_offsets_free(&o);
    /* free leaves it as new: usable again */
    assert_int_equal(jn_offsets_committable(&o), -1);
    assert_int_equal(jn_offsets_track(&o, 3), 0);
    assert_int_equal(jn_offsets_committable(&o), 3);
    jn_offsets_free(&o);
}

static void test_offset_zero(void **state) {
    (void)state;
    jn_offsets o;
    jn_offsets_init(&o);
    assert_int_equal(jn_offsets_track(&o, 0), 0);
    assert_int_equal(jn_offsets_committable(&o), 0);
    assert_int_equal(jn_offsets_settle(&o, 0), 0);
    assert_int_equal(jn_offsets_committable(&o), 1);
    assert_int_equal(jn_offsets_pending(&o), 0);
    jn_offsets_free(&o);
}

static void test_out_of_order_settle(void **state) {
    (void)state;
    jn_offsets o;
    jn_offsets_init(&o);
    for (int64_t off = 10; off <= 14; off++)
        assert_int_equal(jn_offsets_track(&o, off), 0);
    assert_int_equal(jn_offsets_committable(&o), 10);
    assert_int_equal(jn_offsets_pending(&o), 5);

    assert_int_equal(jn_offsets_settle(&o, 12), 0);
    assert_int_equal(jn_offsets_committable(&o), 10);
    assert_int_equal(jn_offsets_pending(&o), 4);
    assert_int_equal(jn_offsets_settle(&o, 14), 0);
    assert_int_equal(jn_offsets_committable(&o), 10);
    assert_int_equal(jn_offsets_settle(&o, 10), 0);
    assert_int_equal(jn_offsets_committable(&o), 11);
    assert_int_equal(jn_offsets_pending(&o), 2);
    assert_int_equal(jn_offsets_settle(&o, 11), 0);
    /* 12 was settled already: the watermark jumps over it to 13 */
    assert_int_equal(jn_offsets_committable(&o), 13);
    assert_int_equal(jn_offsets_pending(&o), 1);
    assert_int_equal(jn_offsets_settle(&o, 13), 0);
    assert_int_equal(jn_offsets_committable(&o), 15);
    assert_int_equal(jn_offsets_pending(&o), 0);

    /* later messages continue from there */
    assert_int_equal(jn_offsets_track(&o, 15), 0);
    assert_int_equal(jn_offsets_committable(&o), 15);
    assert_int_equal(jn_offsets_pending(&o), 1);
    jn_offsets_free(&o);
}

static void test_gaps(void **state) {
    (void)state;
    jn_offsets o;
    jn_offsets_init(&o);
    /* compacted topics and transaction markers leave holes in the offsets */
    assert_int_equal(jn_offsets_track(&o, 10), 0);
    assert_int_equal(jn_offsets_track(&o, 12), 0);
    assert_int_equal(jn_offsets_track(&o, 15), 0);
    assert_int_equal(jn_offsets_pending(&o), 3);
    /* offsets inside the gaps were never tracked */
    assert_int_equal(jn_offsets_settle(&o, 11), -1);
    assert_int_equal(jn_offsets_settle(&o, 13), -1);
    assert_int_equal(jn_offsets_settle(&o, 14), -1);
    assert_int_equal(jn_offsets_settle(&o, 16), -1);
    assert_int_equal(jn_offsets_settle(&o, 9), -1);
    assert_int_equal(jn_offsets_pending(&o), 3);

    assert_int_equal(jn_offsets_settle(&o, 12), 0);
    assert_int_equal(jn_offsets_committable(&o), 10);
    assert_int_equal(jn_offsets_settle(&o, 10), 0);
    /* the lowest unsettled is 15, not 11 or 13 */
    assert_int_equal(jn_offsets_committable(&o), 15);
    assert_int_equal(jn_offsets_settle(&o, 15), 0);
    assert_int_equal(jn_offsets_committable(&o), 16);
    assert_int_equal(jn_offsets_pending(&o), 0);
    jn_offsets_free(&o);
}

static void test_settle_twice_or_untracked(void **state) {
    (void)state;
    jn_offsets o;
    jn_offsets_init(&o);
    for (int64_t off = 100; off < 105; off++)
        assert_int_equal(jn_offsets_track(&o, off), 0);
    /* settled in the middle (still in the window) */
    assert_int_equal(jn_offsets_settle(&o, 102), 0);
    assert_int_equal(jn_offsets_settle(&o, 102), -1);
    assert_int_equal(jn_offsets_pending(&o), 4);
    /* settled at the front (dropped from the window) */
    assert_int_equal(jn_offsets_settle(&o, 100), 0);
    assert_int_equal(jn_offsets_settle(&o, 100), -1);
    assert_int_equal(jn_offsets_pending(&o), 3);
    /* never tracked: below, above */
    assert_int_equal(jn_offsets_settle(&o, 50), -1);
    assert_int_equal(jn_offsets_settle(&o, 105), -1);
    assert_int_equal(jn_offsets_settle(&o, -1), -1);
    assert_int_equal(jn_offsets_committable(&o), 101);
    assert_int_equal(jn_offsets_pending(&o), 3);
    /* once everything is settled, nothing is tracked any more */
    assert_int_equal(jn_offsets_settle(&o, 101), 0);
    assert_int_equal(jn_offsets_settle(&o, 103), 0);
    assert_int_equal(jn_offsets_settle(&o, 104), 0);
    assert_int_equal(jn_offsets_committable(&o), 105);
    assert_int_equal(jn_offsets_settle(&o, 104), -1);
    assert_int_equal(jn_offsets_settle(&o, 101), -1);
    assert_int_equal(jn_offsets_committable(&o), 105);
    jn_offsets_free(&o);
}

static void test_track_not_increasing_is_ignored(void **state) {
    (void)state;
    jn_offsets o;
    jn_offsets_init(&o);
    assert_int_equal(jn_offsets_track(&o, 20), 0);
    assert_int_equal(jn_offsets_track(&o, 21), 0);
    /* a redelivery after a seek: equal or lower offsets */
    assert_int_equal(jn_offsets_track(&o, 21), -1);
    assert_int_equal(jn_offsets_track(&o, 20), -1);
    assert_int_equal(jn_offsets_track(&o, 5), -1);
    assert_int_equal(jn_offsets_pending(&o), 2);
    assert_int_equal(jn_offsets_committable(&o), 20);

    /* ignored also once the earlier ones are settled and dropped */
    assert_int_equal(jn_offsets_settle(&o, 20), 0);
    assert_int_equal(jn_offsets_settle(&o, 21), 0);
    assert_int_equal(jn_offsets_committable(&o), 22);
    assert_int_equal(jn_offsets_track(&o, 21), -1);
    assert_int_equal(jn_offsets_track(&o, 10), -1);
    assert_int_equal(jn_offsets_pending(&o), 0);
    assert_int_equal(jn_offsets_committable(&o), 22);
    /* the refused offset did not become tracked */
    assert_int_equal(jn_offsets_settle(&o, 21), -1);

    /* a jump ahead is fine */
    assert_int_equal(jn_offsets_track(&o, 1000), 0);
    assert_int_equal(jn_offsets_committable(&o), 1000);
    assert_int_equal(jn_offsets_pending(&o), 1);
    jn_offsets_free(&o);
}

/* ---- a million messages against a reference model ------------------------------------ */

/* xorshift64*: deterministic, so a failure repeats. */
static uint64_t rng_state = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void) {
    rng_state ^= rng_state >> 12;
    rng_state ^= rng_state << 25;
    rng_state ^= rng_state >> 27;
    return rng_state * 2685821657736338117ull;
}

/* Reference: a settled flag per message index and a pointer to the lowest unsettled. */
typedef struct {
    int64_t *off;        /* offset of message i */
    unsigned char *done; /* settled flag of message i */
    size_t n;            /* messages tracked */
    size_t low;          /* lowest unsettled message index (n when none) */
    size_t pending;
} model;

static int64_t model_committable(const model *m) {
    if (m->n == 0) return -1;
    return m->low < m->n ? m->off[m->low] : m->off[m->n - 1] + 1;
}

static void check(const jn_offsets *o, const model *m, size_t step) {
    int64_t want = model_committable(m);
    int64_t got = jn_offsets_committable(o);
    if (got != want)
        fail_msg("step %zu: committable %lld, the lowest unsettled is %lld", step, (long long)got,
                 (long long)want);
}

static void test_million_sliding_window(void **state) {
    (void)state;
    enum { TOTAL = 1000000, WINDOW = 1000 };
    model m = {0};
    m.off = malloc(TOTAL * sizeof *m.off);
    m.done = calloc(TOTAL, 1);
    assert_non_null(m.off);
    assert_non_null(m.done);
    size_t *perm = malloc(WINDOW * sizeof *perm);
    assert_non_null(perm);

    jn_offsets o;
    jn_offsets_init(&o);
    int64_t next_off = 7;
    size_t step = 0;

    /* Messages arrive in windows of 1000, with gaps in their offsets now and then. A
     * window's messages are settled in random order, interleaved with the arrival of the
     * next window, so up to two windows are outstanding: the ring grows past its first
     * size and then keeps wrapping around. */
    size_t settled_upto = 0; /* windows below this message index are fully settled */
    for (size_t w = 0; w * WINDOW < TOTAL; w++) {
        size_t start = w * WINDOW;
        size_t end = start + WINDOW;
        /* track window w, settling a random part of window w-1 after each arrival */
        size_t prev = settled_upto;
        size_t prev_n = start - prev;
        for (size_t i = 0; i < prev_n; i++)
            perm[i] = prev + i;
        for (size_t i = prev_n; i > 1; i--) { /* Fisher-Yates */
            size_t j = (size_t)(rnd() % i);
            size_t t = perm[i - 1];
            perm[i - 1] = perm[j];
            perm[j] = t;
        }
        size_t k = 0;
        for (size_t i = start; i < end; i++) {
            if (rnd() % 50 == 0) next_off += 1 + (int64_t)(rnd() % 5); /* a gap */
            m.off[i] = next_off++;
            assert_int_equal(jn_offsets_track(&o, m.off[i]), 0);
            m.n++;
            m.pending++;
            check(&o, &m, step++);
            /* settle about one message of the previous window per arrival */
            if (k < prev_n) {
                size_t idx = perm[k++];
                assert_int_equal(jn_offsets_settle(&o, m.off[idx]), 0);
                m.done[idx] = 1;
                m.pending--;
                while (m.low < m.n && m.done[m.low])
                    m.low++;
                check(&o, &m, step++);
            }
        }
        /* whatever of the previous window is left */
        for (; k < prev_n; k++) {
            size_t idx = perm[k];
            assert_int_equal(jn_offsets_settle(&o, m.off[idx]), 0);
            m.done[idx] = 1;
            m.pending--;
            while (m.low < m.n && m.done[m.low])
                m.low++;
            check(&o, &m, step++);
        }
        settled_upto = start;
        /* pending is a linear scan: checked once per window */
        assert_int_equal(jn_offsets_pending(&o), m.pending);
    }
    /* settle the last window in random order */
    size_t prev = settled_upto, prev_n = m.n - prev;
    for (size_t i = 0; i < prev_n; i++)
        perm[i] = prev + i;
    for (size_t i = prev_n; i > 1; i--) {
        size_t j = (size_t)(rnd() % i);
        size_t t = perm[i - 1];
        perm[i - 1] = perm[j];
        perm[j] = t;
    }
    for (size_t k = 0; k < prev_n; k++) {
        size_t idx = perm[k];
        assert_int_equal(jn_offsets_settle(&o, m.off[idx]), 0);
        /* a second settle of the same message is refused */
        assert_int_equal(jn_offsets_settle(&o, m.off[idx]), -1);
        m.done[idx] = 1;
        m.pending--;
        while (m.low < m.n && m.done[m.low])
            m.low++;
        check(&o, &m, step++);
    }
    assert_int_equal(m.n, TOTAL);
    assert_int_equal(m.pending, 0);
    assert_int_equal(jn_offsets_pending(&o), 0);
    assert_int_equal(jn_offsets_committable(&o), m.off[TOTAL - 1] + 1);
    /* two windows at most were outstanding: the ring stayed small */
    assert_true(o.cap <= 4 * WINDOW);
    assert_true(o.cap >= WINDOW);
    jn_offsets_free(&o);
    free(perm);
    free(m.off);
    free(m.done);
}

/* Settling in reverse order keeps the whole window until the very last settle. */
static void test_reverse_settle_keeps_everything(void **state) {
    (void)state;
    enum { N = 5000 };
    jn_offsets o;
    jn_offsets_init(&o);
    for (int64_t i = 0; i < N; i++)
        assert_int_equal(jn_offsets_track(&o, 2 * i), 0); /* even offsets only */
    for (int64_t i = N - 1; i > 0; i--) {
        assert_int_equal(jn_offsets_settle(&o, 2 * i), 0);
        assert_int_equal(jn_offsets_committable(&o), 0);
    }
    assert_int_equal(jn_offsets_pending(&o), 1);
    assert_int_equal(jn_offsets_settle(&o, 0), 0);
    assert_int_equal(jn_offsets_committable(&o), 2 * (N - 1) + 1);
    assert_int_equal(jn_offsets_pending(&o), 0);
    jn_offsets_free(&o);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_nothing_tracked),
        cmocka_unit_test(test_offset_zero),
        cmocka_unit_test(test_out_of_order_settle),
        cmocka_unit_test(test_gaps),
        cmocka_unit_test(test_settle_twice_or_untracked),
        cmocka_unit_test(test_track_not_increasing_is_ignored),
        cmocka_unit_test(test_million_sliding_window),
        cmocka_unit_test(test_reverse_settle_keeps_everything),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
