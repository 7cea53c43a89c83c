/* Progress of `junction run` and its idle test. A timer samples the roles' counters
 * four times a second: often enough that --until-idle stops soon after the pipeline
 * goes quiet, while the line itself is redrawn only every second (or 5 s). */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "buf.h"

#define SAMPLE_MS      250
#define TTY_EVERY_MS   1000
#define PLAIN_EVERY_MS 5000

struct jn_progress {
    uv_loop_t *loop;
    uv_timer_t timer;
    int show, tty;
    int terse; /* the terminal is too narrow for the line in words */
    uint64_t started_ms;
    /* Rates are the change since the last printed line over the time since then. */
    jn_progress_counts first, shown;
    uint64_t shown_ms;
    /* Idle test state. */
    double last_published;
    uint64_t published_ms; /* when last_published last changed */
    const jn_producer *producer;
    const jn_consumer *consumer;
    uint64_t quiet_ms;
    void (*idle)(void *);
    void *idle_arg;
};

void jn_progress_read(const jn_producer *producer, const jn_consumer *consumer,
                      jn_progress_counts *o) {
    uint64_t published = 0, failures = 0;
    int n = producer ? jn_producer_source_count(producer) : 0;
    for (int i = 0; i < n; i++) {
        jn_producer_source s;
        jn_producer_source_info(producer, i, &s);
        published += s.n->published;
        failures += s.n->failures;
    }
    jn_pipeline_totals t = {0};
    if (consumer) jn_consumer_totals(consumer, &t);
    o->published = (double)published;
    o->merged = (double)t.merged;
    o->delivered = (double)t.delivered;
    o->duplicates = (double)t.duplicates;
    o->dead_lettered = (double)t.dead_lettered;
    o->rejected = (double)t.rejected;
    o->lag = (double)t.lag;
    o->pending = (double)t.pending;
    o->errors = (double)(failures + t.errors + t.sink_retries);
}

/* ---- the line ---------------------------------------------------------------------- */

static double rate(double now, double before, double secs) {
    return secs > 0 && now > before ? (now - before) / secs : 0;
}

/* A count for the terminal: exact below 10000, then 12.3k, 123k, 1.2M, so the line keeps
 * its length while the numbers grow. */
static const char *num(char *buf, size_t n, double v, int exact) {
    if (exact || v < 10000)
        snprintf(buf, n, "%.0f", v);
    else if (v < 100000)
        snprintf(buf, n, "%.1fk", v / 1e3);
    else if (v < 1e6)
        snprintf(buf, n, "%.0fk", v / 1e3);
    else
        snprintf(buf, n, "%.1fM", v / 1e6);
    return buf;
}

/* The line in words, or abbreviated (terse) where words would not fit: a terminal must
 * never wrap it, since only the last row of a wrapped line can be rewritten. A count
 * still at 0 shows no rate. */
static void format_line(jn_sb *out, const jn_progress_counts *c, const jn_progress_counts *b,
                        double elapsed, double secs, int terse, int exact) {
    static const char *const words[] = {"published",     "merged", "delivered", "duplicates",
                                        "dead-lettered", "lag",    "errors"};
    static const char *const abbrev[] = {"pub", "mrg", "dlv", "dup", "dlq", "lag", "err"};
    const char *const *w = terse ? abbrev : words;
    const char *sep = terse ? " " : "  ";
    const double tot[5] = {c->published, c->merged, c->delivered, c->duplicates, c->dead_lettered};
    const double was[5] = {b->published, b->merged, b->delivered, b->duplicates, b->dead_lettered};
    char n1[32], n2[32];
    out->len = 0;
    jn_sb_printf(out, "%.0fs", elapsed);
    for (int i = 0; i < 5; i++) {
        jn_sb_printf(out, "%s%s %s", sep, w[i], num(n1, sizeof n1, tot[i], exact));
        if (tot[i] > 0)
            jn_sb_printf(out, " %s/s", num(n2, sizeof n2, rate(tot[i], was[i], secs), exact));
    }
    jn_sb_printf(out, "%s%s %s%s%s %s", sep, w[5], num(n1, sizeof n1, c->lag, exact), sep, w[6],
                 num(n2, sizeof n2, c->errors, exact));
}

static int terminal_width(void) {
    struct winsize ws;
    if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col > 0) return ws.ws_col;
    return 80;
}

static void print_line(jn_progress *p, const jn_progress_counts *c, uint64_t now, int last) {
    jn_sb line, out;
    jn_sb_init(&line);
    jn_sb_init(&out);
    /* The last line gives the whole run's rates: its own window may be a moment. */
    double elapsed = (double)(now - p->started_ms) / 1000;
    const jn_progress_counts *base = last ? &p->first : &p->shown;
    double secs = last ? elapsed : (double)(now - p->shown_ms) / 1000;
    if (p->tty) {
        int width = terminal_width();
        format_line(&line, c, base, elapsed, secs, p->terse, 0);
        /* Once terse, always terse: flipping back and forth as the numbers grow and
         * shrink would make the line jump. */
        if (!p->terse && (int)line.len >= width) {
            p->terse = 1;
            format_line(&line, c, base, elapsed, secs, 1, 0);
        }
        if ((int)line.len >= width) line.data[line.len = (size_t)width - 1] = '\0';
        /* Clear the row and rewrite it; leave the cursor at its start so a log line
         * written meanwhile lands on this row instead of after the counters. */
        jn_sb_printf(&out, "\r\033[K%s%s", line.data, last ? "\n" : "\r");
    } else {
        format_line(&line, c, base, elapsed, secs, 0, 1);
        jn_sb_printf(&out, "junction: %s\n", line.data);
    }
    ssize_t w = write(STDERR_FILENO, out.data, out.len);
    (void)w; /* a progress line that cannot be written is not worth failing over */
    jn_sb_free(&line);
    jn_sb_free(&out);
    p->shown = *c;
    p->shown_ms = now;
}

/* ---- idle -------------------------------------------------------------------------- */

static int is_idle(jn_progress *p, const jn_progress_counts *c, uint64_t now) {
    int n = p->producer ? jn_producer_source_count(p->producer) : 0;
    jn_producer_source s;
    for (int i = 0; i < n; i++) {
        /* A cycle is over once Kafka acknowledged (or refused) all its records. Counting
         * finished cycles alone would not do: a poll made while the first one's records
         * are still in flight finds them unchanged and ends at once. */
        jn_producer_source_info(p->producer, i, &s);
        if (s.cycles_done < 1 || s.busy) return 0;
    }
    if (now - p->published_ms < p->quiet_ms) return 0;
    /* Lag alone is not enough: before the group's first assignment there is none. */
    jn_pipeline_totals t = {0};
    if (p->consumer) jn_consumer_totals(p->consumer, &t);
    for (int i = 0; i < n && p->consumer; i++) {
        jn_producer_source_info(p->producer, i, &s);
        int64_t read = jn_consumer_topic_read(p->consumer, s.topic);
        if (read >= 0 && (uint64_t)read < s.n->published) return 0;
    }
    if (c->lag > 0 || c->pending > 0 || t.held > 0) return 0;
    /* Re-emitted records settle no message: count them out of the sinks instead. */
    if (c->merged > c->delivered + c->rejected) return 0;
    /* Nothing pending means every sink acknowledged what it was given, and the receiver
     * in this process stores a batch before it acknowledges it. (Comparing its stored
     * records with every sink's deliveries would never end a pipeline that also writes to
     * Kafka, as the orders example does: each record is delivered twice.) */
    return 1;
}

static void on_sample(uv_timer_t *t) {
    jn_progress *p = t->data;
    uint64_t now = uv_now(p->loop);
    jn_progress_counts c;
    jn_progress_read(p->producer, p->consumer, &c);
    if (c.published != p->last_published) {
        p->last_published = c.published;
        p->published_ms = now;
    }
    if (p->show && now - p->shown_ms >= (p->tty ? TTY_EVERY_MS : PLAIN_EVERY_MS))
        print_line(p, &c, now, 0);
    if (p->idle && is_idle(p, &c, now)) {
        void (*cb)(void *) = p->idle;
        p->idle = NULL;
        cb(p->idle_arg);
    }
}

jn_progress *jn_progress_start(uv_loop_t *loop, int show, const jn_producer *producer,
                               const jn_consumer *consumer) {
    jn_progress *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->loop = loop;
    p->show = show;
    p->producer = producer;
    p->consumer = consumer;
    p->tty = isatty(STDERR_FILENO);
    uv_update_time(loop);
    p->started_ms = p->shown_ms = p->published_ms = uv_now(loop);
    jn_progress_read(producer, consumer, &p->first);
    p->shown = p->first;
    p->last_published = p->first.published;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    uv_timer_start(&p->timer, on_sample, SAMPLE_MS, SAMPLE_MS);
    return p;
}

void jn_progress_on_idle(jn_progress *p, uint64_t quiet_ms, void (*idle)(void *), void *arg) {
    p->quiet_ms = quiet_ms;
    p->idle = idle;
    p->idle_arg = arg;
}

static void on_closed(uv_handle_t *h) {
    free(h->data);
}

void jn_progress_stop(jn_progress *p) {
    if (p->show) {
        jn_progress_counts c;
        jn_progress_read(p->producer, p->consumer, &c);
        uv_update_time(p->loop);
        print_line(p, &c, uv_now(p->loop), 1);
    }
    uv_timer_stop(&p->timer);
    uv_close((uv_handle_t *)&p->timer, on_closed);
}
