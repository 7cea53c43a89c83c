/* Process-wide metrics rendered in Prometheus text format. Metrics live for the whole
 * process; callers look one up once and keep the pointer, so the hot path is a plain
 * add on a double (one loop per process: no atomics needed).
 *
 * A role's own numbers (what the progress line, --until-idle and /api/status read too)
 * are plain integers in the role's typed counters struct instead, bound here by address:
 * the role bumps its integer, /metrics reads it when rendered, and no code looks a metric
 * up by its name to learn a number. */
#ifndef JN_METRICS_H
#define JN_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "buf.h"

typedef struct jn_metric jn_metric;

/* labels is the inside of Prometheus braces, e.g. `route="/customers",status="200"`,
 * or "" for none. The same (name, labels) always returns the same metric. */
jn_metric *jn_metrics_counter(const char *name, const char *help, const char *labels);
jn_metric *jn_metrics_gauge(const char *name, const char *help, const char *labels);
/* Latency histogram in seconds with buckets from 0.5 ms to 10 s. */
jn_metric *jn_metrics_histogram(const char *name, const char *help, const char *labels);

void jn_metric_add(jn_metric *m, double v);
void jn_metric_set(jn_metric *m, double v);
void jn_metric_observe(jn_metric *m, double seconds);
double jn_metric_value(const jn_metric *m);

/* A counter (or gauge) whose value is *value, read when /metrics is rendered. Several
 * owners may bind the same (name, labels), e.g. two pipelines' unnamed sinks: the series
 * shows their sum. value must stay valid until jn_metrics_unbind covers it. */
void jn_metrics_counter_bind(const char *name, const char *help, const char *labels,
                             const uint64_t *value);
void jn_metrics_gauge_bind(const char *name, const char *help, const char *labels,
                           const int64_t *value);
/* Forgets every binding into [owner, owner + size) before the owner frees it: a counter
 * keeps its last value in the series (counters never go back), a gauge reads 0 (a gone
 * owner has nothing pending). */
void jn_metrics_unbind(const void *owner, size_t size);

void jn_metrics_render(jn_sb *out);
void jn_metrics_reset_all(void); /* for unit tests */

#endif
