/* jn_random_*: the one generator of retry jitter and injected faults (random.h). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include "random.h"

static void test_random_unit_range_and_variation(void **state) {
    (void)state;
    uint64_t s = 42;
    double first = jn_random_unit(&s);
    double second = jn_random_unit(&s);
    assert_true(first != second);
    int distinct_pairs = 0;
    double prev = second;
    for (int i = 0; i < 100000; i++) {
        double u = jn_random_unit(&s);
        assert_true(u >= 0.0 && u < 1.0);
        if (u != prev) distinct_pairs++;
        prev = u;
    }
    assert_true(distinct_pairs >= 99990);
    /* a zero state is not a fixed point */
    uint64_t z = 0;
    double a = jn_random_unit(&z);
    double b = jn_random_unit(&z);
    assert_true(z != 0);
    assert_true(a >= 0.0 && a < 1.0 && b >= 0.0 && b < 1.0);
    assert_true(a != b);
}

static void test_random_unit_spreads(void **state) {
    (void)state;
    uint64_t s = 12345;
    const int n = 10000;
    double sum = 0;
    int low = 0, buckets[10] = {0};
    for (int i = 0; i < n; i++) {
        double u = jn_random_unit(&s);
        sum += u;
        if (u < 0.5) low++;
        buckets[(int)(u * 10)]++;
    }
    double mean = sum / n;
    /* the standard error of the mean of 10,000 uniforms is about 0.003 */
    assert_true(mean > 0.48 && mean < 0.52);
    assert_true(low > 4700 && low < 5300);
    for (int i = 0; i < 10; i++) /* about 1000 each */
        assert_true(buckets[i] > 850 && buckets[i] < 1150);
}

static void test_seeds_differ_and_are_never_zero(void **state) {
    (void)state;
    uint64_t a = jn_random_seed(), b = jn_random_seed();
    assert_true(a != 0 && b != 0);
    /* The clock moves between the two calls (uv_hrtime counts nanoseconds). */
    assert_true(a != b);
    /* Two generators seeded apart do not walk in step. */
    assert_true(jn_random_unit(&a) != jn_random_unit(&b));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_random_unit_range_and_variation),
        cmocka_unit_test(test_random_unit_spreads),
        cmocka_unit_test(test_seeds_differ_and_are_never_zero),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
