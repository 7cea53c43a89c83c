/* Process-wide metrics rendered in Prometheus text format. Metrics live for the whole
 * process; callers look one up once and keep the pointer, so the hot path is a plain
 * add on a double (one loop per process: no atomics needed). */
#ifndef JN_METRICS_H
#define JN_METRICS_H

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
/* Sum of jn_metric_value over every metric called name whose labels contain label_filter
 * (a substring such as `source="crm",result="published"`; NULL or "" matches all), so a
 * reader such as the progress line needs no pointers into the roles. A histogram counts
 * its observations. 0 when nothing matches. */
double jn_metrics_sum(const char *name, const char *label_filter);

void jn_metrics_render(jn_sb *out);
void jn_metrics_reset_all(void); /* for unit tests */

#endif
