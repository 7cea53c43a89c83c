/* Metrics registry: a flat list in registration order, rendered family by family. An
 * entry either holds its value (jn_metric_add/set/observe) or points at an owner's
 * integer (a binding); entries of one name and labels render as one series, their sum. */
#include "metrics.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { K_COUNTER, K_GAUGE, K_HISTOGRAM };

static const double bucket_le[] = {0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
                                   0.1,    0.25,  0.5,    1,     2.5,  5,     10};
#define NBUCKETS (sizeof bucket_le / sizeof bucket_le[0])

struct jn_metric {
    int kind;
    char *name, *help, *labels;
    double value;               /* counter/gauge value, or histogram sum; a bound counter's base */
    const uint64_t *counter_at; /* bound counter: value + *counter_at */
    const int64_t *gauge_at;    /* bound gauge: *gauge_at */
    int bound;                  /* never handed out by lookup */
    unsigned long long count;
    unsigned long long buckets[NBUCKETS];
    jn_metric *next;
};

static jn_metric *head, *tail;

static jn_metric *add_entry(int kind, const char *name, const char *help, const char *labels) {
    jn_metric *m = calloc(1, sizeof *m);
    if (!m) abort();
    m->kind = kind;
    m->name = strdup(name);
    m->help = strdup(help);
    m->labels = strdup(labels);
    if (tail)
        tail->next = m;
    else
        head = m;
    tail = m;
    return m;
}

static jn_metric *lookup(int kind, const char *name, const char *help, const char *labels) {
    if (!labels) labels = "";
    for (jn_metric *m = head; m; m = m->next)
        if (!m->bound && !strcmp(m->name, name) && !strcmp(m->labels, labels)) return m;
    return add_entry(kind, name, help, labels);
}

jn_metric *jn_metrics_counter(const char *name, const char *help, const char *labels) {
    return lookup(K_COUNTER, name, help, labels);
}

jn_metric *jn_metrics_gauge(const char *name, const char *help, const char *labels) {
    return lookup(K_GAUGE, name, help, labels);
}

jn_metric *jn_metrics_histogram(const char *name, const char *help, const char *labels) {
    return lookup(K_HISTOGRAM, name, help, labels);
}

void jn_metric_add(jn_metric *m, double v) {
    m->value += v;
}

void jn_metric_set(jn_metric *m, double v) {
    m->value = v;
}

double jn_metric_value(const jn_metric *m) {
    return m->kind == K_HISTOGRAM ? (double)m->count : m->value;
}

void jn_metrics_counter_bind(const char *name, const char *help, const char *labels,
                             const uint64_t *value) {
    jn_metric *m = add_entry(K_COUNTER, name, help, labels ? labels : "");
    m->bound = 1;
    m->counter_at = value;
}

void jn_metrics_gauge_bind(const char *name, const char *help, const char *labels,
                           const int64_t *value) {
    jn_metric *m = add_entry(K_GAUGE, name, help, labels ? labels : "");
    m->bound = 1;
    m->gauge_at = value;
}

static int within(const void *p, const void *owner, size_t size) {
    uintptr_t a = (uintptr_t)p, lo = (uintptr_t)owner;
    return p && a >= lo && a < lo + size;
}

void jn_metrics_unbind(const void *owner, size_t size) {
    for (jn_metric *m = head; m; m = m->next) {
        if (within(m->counter_at, owner, size)) {
            m->value += (double)*m->counter_at;
            m->counter_at = NULL;
        }
        if (within(m->gauge_at, owner, size)) {
            m->value = 0;
            m->gauge_at = NULL;
        }
    }
}

/* A counter's or gauge's own contribution to its series. */
static double sample(const jn_metric *m) {
    if (m->gauge_at) return (double)*m->gauge_at;
    if (m->counter_at) return m->value + (double)*m->counter_at;
    return m->value;
}

static int same_series(const jn_metric *a, const jn_metric *b) {
    return !strcmp(a->name, b->name) && !strcmp(a->labels, b->labels);
}

void jn_metric_observe(jn_metric *m, double seconds) {
    m->value += seconds;
    m->count++;
    for (size_t i = 0; i < NBUCKETS; i++)
        if (seconds <= bucket_le[i]) {
            m->buckets[i]++;
            break;
        }
}

static void put_labels(jn_sb *out, const char *labels, const char *extra) {
    if (!*labels && !extra) return;
    jn_sb_putc(out, '{');
    jn_sb_puts(out, labels);
    if (extra) {
        if (*labels) jn_sb_putc(out, ',');
        jn_sb_puts(out, extra);
    }
    jn_sb_putc(out, '}');
}

void jn_metrics_render(jn_sb *out) {
    static const char *const kinds[] = {"counter", "gauge", "histogram"};
    for (jn_metric *m = head; m; m = m->next) {
        /* HELP/TYPE once per family: only when no earlier metric carried this name. */
        int first = 1;
        for (jn_metric *p = head; p != m; p = p->next)
            if (!strcmp(p->name, m->name)) first = 0;
        if (!first) continue;
        jn_sb_printf(out, "# HELP %s %s\n# TYPE %s %s\n", m->name, m->help, m->name,
                     kinds[m->kind]);
        for (jn_metric *f = m; f; f = f->next) {
            if (strcmp(f->name, m->name)) continue;
            if (f->kind != K_HISTOGRAM) {
                /* One line per series: the first entry of it sums the later ones. */
                int seen = 0;
                for (jn_metric *p = m; p != f && !seen; p = p->next)
                    seen = same_series(p, f);
                if (seen) continue;
                double v = 0;
                for (jn_metric *g = f; g; g = g->next)
                    if (g->kind == f->kind && same_series(g, f)) v += sample(g);
                jn_sb_puts(out, f->name);
                put_labels(out, f->labels, NULL);
                jn_sb_printf(out, " %.17g\n", v);
                continue;
            }
            unsigned long long cum = 0;
            char le[48];
            for (size_t i = 0; i < NBUCKETS; i++) {
                cum += f->buckets[i];
                snprintf(le, sizeof le, "le=\"%g\"", bucket_le[i]);
                jn_sb_printf(out, "%s_bucket", f->name);
                put_labels(out, f->labels, le);
                jn_sb_printf(out, " %llu\n", cum);
            }
            jn_sb_printf(out, "%s_bucket", f->name);
            put_labels(out, f->labels, "le=\"+Inf\"");
            jn_sb_printf(out, " %llu\n%s_sum", f->count, f->name);
            put_labels(out, f->labels, NULL);
            jn_sb_printf(out, " %.9g\n%s_count", f->value, f->name);
            put_labels(out, f->labels, NULL);
            jn_sb_printf(out, " %llu\n", f->count);
        }
    }
}

void jn_metrics_reset_all(void) {
    for (jn_metric *m = head; m; m = m->next) {
        m->value = 0;
        m->count = 0;
        memset(m->buckets, 0, sizeof m->buckets);
    }
}
