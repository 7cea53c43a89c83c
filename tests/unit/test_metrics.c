/* Metrics registry and its Prometheus text rendering. The registry is process-wide, so
 * each test uses its own metric names. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "metrics.h"

static char *render(void) {
    jn_sb sb;
    jn_sb_init(&sb);
    jn_metrics_render(&sb);
    return jn_sb_steal(&sb);
}

static int count_of(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle))
        n++;
    return n;
}

static void assert_line(const char *text, const char *line) {
    /* line must appear as a whole line */
    size_t n = strlen(line);
    for (const char *p = text; (p = strstr(p, line)); p++)
        if ((p == text || p[-1] == '\n') && p[n] == '\n') return;
    fail_msg("missing line \"%s\" in:\n%s", line, text);
}

static void test_counter(void **state) {
    (void)state;
    jn_metric *m = jn_metrics_counter("t_requests_total", "Requests served", "");
    jn_metric_add(m, 1);
    jn_metric_add(m, 2);
    assert_true(jn_metric_value(m) == 3);
    char *s = render();
    assert_line(s, "# HELP t_requests_total Requests served");
    assert_line(s, "# TYPE t_requests_total counter");
    assert_line(s, "t_requests_total 3");
    free(s);
}

static void test_gauge(void **state) {
    (void)state;
    jn_metric *m = jn_metrics_gauge("t_connections", "Open connections", "server=\"crm\"");
    jn_metric_set(m, 5);
    jn_metric_add(m, -1);
    jn_metric_set(m, 2.5);
    assert_true(jn_metric_value(m) == 2.5);
    char *s = render();
    assert_line(s, "# TYPE t_connections gauge");
    assert_line(s, "t_connections{server=\"crm\"} 2.5");
    free(s);
}

static void test_labels_and_family(void **state) {
    (void)state;
    jn_metric *a = jn_metrics_counter("t_http_total", "HTTP answers", "status=\"200\"");
    jn_metric *other = jn_metrics_counter("t_between_total", "Registered in between", "");
    jn_metric *b = jn_metrics_counter("t_http_total", "HTTP answers", "status=\"404\"");
    jn_metric_add(a, 10);
    jn_metric_add(b, 1);
    jn_metric_add(other, 4);
    char *s = render();
    /* HELP/TYPE once per family, even when the family's members were not registered
     * together. */
    assert_int_equal(count_of(s, "# HELP t_http_total "), 1);
    assert_int_equal(count_of(s, "# TYPE t_http_total counter\n"), 1);
    assert_line(s, "t_http_total{status=\"200\"} 10");
    assert_line(s, "t_http_total{status=\"404\"} 1");
    assert_line(s, "t_between_total 4");
    /* The family's samples follow its header and are not split by another family. */
    const char *type = strstr(s, "# TYPE t_http_total counter\n");
    const char *s200 = strstr(s, "t_http_total{status=\"200\"}");
    const char *s404 = strstr(s, "t_http_total{status=\"404\"}");
    const char *between = strstr(s, "# TYPE t_between_total");
    assert_true(type < s200 && s200 < s404);
    assert_true(between < type || between > s404);
    free(s);
}

static void test_same_name_labels_same_pointer(void **state) {
    (void)state;
    jn_metric *a = jn_metrics_counter("t_same_total", "Same", "k=\"v\"");
    jn_metric *b = jn_metrics_counter("t_same_total", "Same", "k=\"v\"");
    jn_metric *c = jn_metrics_counter("t_same_total", "Same", "k=\"w\"");
    jn_metric *d = jn_metrics_counter("t_same_total", "Same", "");
    assert_ptr_equal(a, b);
    assert_ptr_not_equal(a, c);
    assert_ptr_not_equal(a, d);
    assert_ptr_not_equal(c, d);
    jn_metric_add(a, 1);
    jn_metric_add(b, 1);
    assert_true(jn_metric_value(a) == 2);
    /* Labels are not a prefix match. */
    jn_metric *e = jn_metrics_counter("t_same_total", "Same", "k=\"v\",x=\"1\"");
    assert_ptr_not_equal(a, e);
    assert_ptr_equal(d, jn_metrics_counter("t_same_total", "Same", ""));
}

static void test_null_labels_mean_none(void **state) {
    (void)state;
    jn_metric *a = jn_metrics_counter("t_nolabels_total", "No labels", NULL);
    jn_metric *b = jn_metrics_counter("t_nolabels_total", "No labels", NULL);
    jn_metric *c = jn_metrics_counter("t_nolabels_total", "No labels", "");
    assert_ptr_equal(a, b);
    assert_ptr_equal(a, c);
    jn_metric_add(a, 1);
    char *s = render();
    assert_line(s, "t_nolabels_total 1");
    free(s);
}

static void test_histogram(void **state) {
    (void)state;
    jn_metric *h = jn_metrics_histogram("t_latency_seconds", "Latency", "route=\"/c\"");
    jn_metric_observe(h, 0.0003); /* le 0.0005 */
    jn_metric_observe(h, 0.002);  /* le 0.0025 */
    jn_metric_observe(h, 0.002);  /* le 0.0025 */
    jn_metric_observe(h, 0.5);    /* exactly on a bound: le 0.5 */
    jn_metric_observe(h, 30);     /* above the last bucket: +Inf only */
    assert_true(jn_metric_value(h) == 5);
    char *s = render();
    assert_int_equal(count_of(s, "# HELP t_latency_seconds Latency\n"), 1);
    assert_line(s, "# TYPE t_latency_seconds histogram");
    assert_line(s, "t_latency_seconds_bucket{route=\"/c\",le=\"0.0005\"} 1");
    assert_line(s, "t_latency_seconds_bucket{route=\"/c\",le=\"0.001\"} 1");
    assert_line(s, "t_latency_seconds_bucket{route=\"/c\",le=\"0.0025\"} 3");
    assert_line(s, "t_latency_seconds_bucket{route=\"/c\",le=\"0.25\"} 3");
    assert_line(s, "t_latency_seconds_bucket{route=\"/c\",le=\"0.5\"} 4");
    assert_line(s, "t_latency_seconds_bucket{route=\"/c\",le=\"10\"} 4");
    assert_line(s, "t_latency_seconds_bucket{route=\"/c\",le=\"+Inf\"} 5");
    assert_line(s, "t_latency_seconds_sum{route=\"/c\"} 30.5043");
    assert_line(s, "t_latency_seconds_count{route=\"/c\"} 5");
    /* Every bucket line, cumulative: counts never decrease. */
    const char *p = strstr(s, "t_latency_seconds_bucket{");
    unsigned long prev = 0;
    int buckets = 0;
    while (p && !strncmp(p, "t_latency_seconds_bucket{", 25)) {
        const char *sp = strchr(p, ' ');
        unsigned long v = strtoul(sp + 1, NULL, 10);
        assert_true(v >= prev);
        prev = v;
        buckets++;
        p = strchr(p, '\n') + 1;
    }
    assert_int_equal(buckets, 15); /* 14 bounds and +Inf */
    free(s);
}

static void test_histogram_without_labels(void **state) {
    (void)state;
    jn_metric *h = jn_metrics_histogram("t_plain_seconds", "Plain", "");
    jn_metric_observe(h, 0.01);
    char *s = render();
    assert_line(s, "t_plain_seconds_bucket{le=\"0.01\"} 1");
    assert_line(s, "t_plain_seconds_bucket{le=\"+Inf\"} 1");
    assert_line(s, "t_plain_seconds_sum 0.01");
    assert_line(s, "t_plain_seconds_count 1");
    free(s);
}

static void test_reset_all(void **state) {
    (void)state;
    jn_metric *c = jn_metrics_counter("t_reset_total", "Reset", "");
    jn_metric *h = jn_metrics_histogram("t_reset_seconds", "Reset", "");
    jn_metric_add(c, 9);
    jn_metric_observe(h, 0.1);
    jn_metrics_reset_all();
    assert_true(jn_metric_value(c) == 0);
    assert_true(jn_metric_value(h) == 0);
    char *s = render();
    assert_line(s, "t_reset_total 0");
    assert_line(s, "t_reset_seconds_bucket{le=\"+Inf\"} 0");
    assert_line(s, "t_reset_seconds_bucket{le=\"0.1\"} 0");
    free(s);
}

/* A role's counters are its own integers: /metrics reads them where they live, so a bump
 * shows at the next render without any call into the registry. */
static void test_bound_counter_and_gauge(void **state) {
    (void)state;
    struct {
        uint64_t published;
        int64_t pending;
    } role = {0, 0};
    jn_metrics_counter_bind("t_bound_total", "Bound", "source=\"crm\"", &role.published);
    jn_metrics_gauge_bind("t_bound_pending", "Bound gauge", "", &role.pending);
    role.published = 41;
    role.published++;
    role.pending = -3;
    char *s = render();
    assert_line(s, "# TYPE t_bound_total counter");
    assert_line(s, "t_bound_total{source=\"crm\"} 42");
    assert_line(s, "# TYPE t_bound_pending gauge");
    assert_line(s, "t_bound_pending -3");
    free(s);
    role.published = 50;
    s = render();
    assert_line(s, "t_bound_total{source=\"crm\"} 50");
    free(s);
    jn_metrics_unbind(&role, sizeof role);
}

/* Owners binding one series (two pipelines' unnamed sinks) show as one line, their sum;
 * an owner that goes keeps its counts in a counter and leaves a gauge. */
static void test_bound_owners_share_a_series_and_unbind(void **state) {
    (void)state;
    uint64_t a = 5, b = 7, other = 1;
    int64_t ga = 2, gb = 3;
    jn_metrics_counter_bind("t_shared_total", "Shared", "result=\"ok\"", &a);
    jn_metrics_counter_bind("t_shared_total", "Shared", "result=\"retry\"", &other);
    jn_metrics_counter_bind("t_shared_total", "Shared", "result=\"ok\"", &b);
    jn_metrics_gauge_bind("t_shared_pending", "Shared gauge", "", &ga);
    jn_metrics_gauge_bind("t_shared_pending", "Shared gauge", "", &gb);
    char *s = render();
    assert_int_equal(count_of(s, "# HELP t_shared_total "), 1);
    assert_int_equal(count_of(s, "t_shared_total{result=\"ok\"}"), 1);
    assert_line(s, "t_shared_total{result=\"ok\"} 12");
    assert_line(s, "t_shared_total{result=\"retry\"} 1");
    assert_int_equal(count_of(s, "\nt_shared_pending "), 1);
    assert_line(s, "t_shared_pending 5");
    free(s);

    jn_metrics_unbind(&a, sizeof a);
    jn_metrics_unbind(&ga, sizeof ga);
    a = 1000, ga = 1000; /* freed storage: no longer read */
    b++;
    s = render();
    assert_line(s, "t_shared_total{result=\"ok\"} 13");
    assert_line(s, "t_shared_pending 3");
    free(s);
    /* Unbinding what was never bound, or twice, changes nothing. */
    jn_metrics_unbind(&a, sizeof a);
    jn_metrics_unbind(&ga, sizeof ga);
    jn_metrics_unbind(&b, sizeof b);
    jn_metrics_unbind(&gb, sizeof gb);
    jn_metrics_unbind(&other, sizeof other);
    b = other = 99;
    gb = 99;
    s = render();
    assert_line(s, "t_shared_total{result=\"ok\"} 13");
    assert_line(s, "t_shared_total{result=\"retry\"} 1");
    assert_line(s, "t_shared_pending 0");
    free(s);
}

/* A bound series and a held one of the same name and labels are one series too. */
static void test_bound_and_held_add_up(void **state) {
    (void)state;
    uint64_t n = 4;
    jn_metric *m = jn_metrics_counter("t_mixed_total", "Mixed", "");
    jn_metric_add(m, 2);
    jn_metrics_counter_bind("t_mixed_total", "Mixed", "", &n);
    char *s = render();
    assert_line(s, "t_mixed_total 6");
    assert_int_equal(count_of(s, "\nt_mixed_total "), 1);
    free(s);
    /* lookup never hands out a bound entry */
    assert_true(jn_metric_value(jn_metrics_counter("t_mixed_total", "Mixed", "")) == 2);
    jn_metrics_unbind(&n, sizeof n);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counter),
        cmocka_unit_test(test_gauge),
        cmocka_unit_test(test_labels_and_family),
        cmocka_unit_test(test_same_name_labels_same_pointer),
        cmocka_unit_test(test_null_labels_mean_none),
        cmocka_unit_test(test_histogram),
        cmocka_unit_test(test_histogram_without_labels),
        cmocka_unit_test(test_reset_all),
        cmocka_unit_test(test_bound_counter_and_gauge),
        cmocka_unit_test(test_bound_owners_share_a_series_and_unbind),
        cmocka_unit_test(test_bound_and_held_add_up),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
