/* jn_backoff_*: retry ceilings, full jitter, Retry-After and the attempt limit. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <limits.h>
#include <math.h>

#include "backoff.h"

/* The defaults of producer.retry.* (config.c). */
static const jn_backoff DEF = {.attempts = 4, .base_ms = 1000, .multiplier = 2.0, .max_ms = 30000};

/* The largest double below 1. */
static double almost_one(void) {
    return nextafter(1.0, 0.0);
}

static void test_ceiling_default_policy(void **state) {
    (void)state;
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 1), 0); /* the first try does not wait */
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 2), 1000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 3), 2000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 4), 4000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 5), 8000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 6), 16000);
}

static void test_ceiling_capped_at_max(void **state) {
    (void)state;
    /* 1000 * 2^5 = 32000 would pass the cap at attempt 7 */
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 7), 30000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 8), 30000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 64), 30000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, 1000), 30000);
    assert_int_equal(jn_backoff_ceiling_ms(&DEF, INT_MAX), 30000);
    /* never decreasing and never above the cap */
    int64_t prev = 0;
    for (int a = 1; a < 200; a++) {
        int64_t c = jn_backoff_ceiling_ms(&DEF, a);
        assert_true(c >= prev);
        assert_true(c <= DEF.max_ms);
        prev = c;
    }
    /* a base above the cap is capped from the first retry on */
    jn_backoff small = {.attempts = 4, .base_ms = 5000, .multiplier = 2.0, .max_ms = 1500};
    assert_int_equal(jn_backoff_ceiling_ms(&small, 2), 1500);
    assert_int_equal(jn_backoff_ceiling_ms(&small, 3), 1500);
}

static void test_delay_full_jitter(void **state) {
    (void)state;
    for (int a = 2; a <= 10; a++) {
        int64_t c = jn_backoff_ceiling_ms(&DEF, a);
        /* unit 0: no wait at all */
        assert_int_equal(jn_backoff_delay_ms(&DEF, a, 0.0, -1), 0);
        /* unit just below 1: the ceiling itself */
        assert_int_equal(jn_backoff_delay_ms(&DEF, a, almost_one(), -1), c);
        /* unit 0.5: about half the ceiling */
        int64_t half = jn_backoff_delay_ms(&DEF, a, 0.5, -1);
        assert_true(half >= c / 2 - 1 && half <= c / 2 + 1);
    }
    /* the first try waits for nothing whatever the unit */
    assert_int_equal(jn_backoff_delay_ms(&DEF, 1, almost_one(), -1), 0);
}

static void test_delay_within_ceiling_and_monotonic_in_unit(void **state) {
    (void)state;
    for (int a = 2; a <= 8; a++) {
        int64_t c = jn_backoff_ceiling_ms(&DEF, a);
        int64_t prev = 0;
        for (int i = 0; i < 1000; i++) {
            double u = i / 1000.0;
            int64_t d = jn_backoff_delay_ms(&DEF, a, u, -1);
            assert_true(d >= 0 && d <= c);
            assert_true(d >= prev); /* a larger unit never gives a shorter delay */
            prev = d;
        }
    }
}

static void test_retry_after_raises_delay(void **state) {
    (void)state;
    /* unit 0 would give 0; the server asked for 3 s */
    assert_true(jn_backoff_delay_ms(&DEF, 2, 0.0, 3) >= 3000);
    assert_int_equal(jn_backoff_delay_ms(&DEF, 2, 0.0, 3), 3000);
    /* a jittered delay longer than Retry-After is kept */
    assert_int_equal(jn_backoff_delay_ms(&DEF, 4, almost_one(), 3), 4000);
    /* Retry-After: 0 asks for no wait; the jitter still applies */
    assert_int_equal(jn_backoff_delay_ms(&DEF, 2, 0.0, 0), 0);
    assert_int_equal(jn_backoff_delay_ms(&DEF, 3, almost_one(), 0), 2000);
}

static void test_retry_after_capped_at_max(void **state) {
    (void)state;
    assert_int_equal(jn_backoff_delay_ms(&DEF, 2, 0.0, 30), 30000);
    assert_int_equal(jn_backoff_delay_ms(&DEF, 2, 0.0, 31), 30000);
    assert_int_equal(jn_backoff_delay_ms(&DEF, 2, 0.5, 3600), 30000);
    assert_int_equal(jn_backoff_delay_ms(&DEF, 4, almost_one(), 86400), 30000);
    /* values a server can send that overflow when turned into milliseconds */
    assert_int_equal(jn_backoff_delay_ms(&DEF, 2, 0.0, 9999999999999999L), 30000);
    assert_int_equal(jn_backoff_delay_ms(&DEF, 2, 0.0, LONG_MAX), 30000);
    /* a cap that is not a whole number of seconds */
    jn_backoff odd = {.attempts = 4, .base_ms = 100, .multiplier = 2.0, .max_ms = 1500};
    assert_int_equal(jn_backoff_delay_ms(&odd, 2, 0.0, 1), 1000);
    assert_int_equal(jn_backoff_delay_ms(&odd, 2, 0.0, 2), 1500);
}

static void test_retry_after_minus_one_means_none(void **state) {
    (void)state;
    for (int a = 1; a <= 8; a++) {
        int64_t c = jn_backoff_ceiling_ms(&DEF, a);
        assert_int_equal(jn_backoff_delay_ms(&DEF, a, 0.0, -1), 0);
        assert_int_equal(jn_backoff_delay_ms(&DEF, a, almost_one(), -1), c);
    }
}

static void test_allows_up_to_attempts(void **state) {
    (void)state;
    for (int a = 1; a <= DEF.attempts; a++)
        assert_true(jn_backoff_allows(&DEF, a));
    assert_false(jn_backoff_allows(&DEF, DEF.attempts + 1));
    assert_false(jn_backoff_allows(&DEF, DEF.attempts + 100));
    jn_backoff once = DEF;
    once.attempts = 1; /* no retries */
    assert_true(jn_backoff_allows(&once, 1));
    assert_false(jn_backoff_allows(&once, 2));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ceiling_default_policy),
        cmocka_unit_test(test_ceiling_capped_at_max),
        cmocka_unit_test(test_delay_full_jitter),
        cmocka_unit_test(test_delay_within_ceiling_and_monotonic_in_unit),
        cmocka_unit_test(test_retry_after_raises_delay),
        cmocka_unit_test(test_retry_after_capped_at_max),
        cmocka_unit_test(test_retry_after_minus_one_means_none),
        cmocka_unit_test(test_allows_up_to_attempts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
