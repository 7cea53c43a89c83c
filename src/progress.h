/* What `junction run` shows while it works, and how `--until-idle` knows it is done. The
 * progress line (every second on a terminal, a plain line every 5 s otherwise) and the
 * idle test read the producer's and the consumer's typed counters (the numbers /metrics
 * shows, never /metrics itself): every source polled, nothing published for a while,
 * everything published read by the pipelines reading its topic, settled and delivered. */
#ifndef JN_PROGRESS_H
#define JN_PROGRESS_H

#include <stdint.h>
#include <uv.h>

#include "consumer.h"
#include "producer.h"

/* Totals of the roles at one moment. */
typedef struct {
    double published; /* records Kafka acknowledged to the producer, every source */
    double merged, delivered, duplicates, dead_lettered, rejected;
    double lag;     /* consumer lag, summed over partitions */
    double pending; /* messages read and not yet settled */
    double errors;  /* producer failures, consumer errors, analytics POST retries */
} jn_progress_counts;

/* producer and consumer may be NULL (a role not run: its numbers are 0). */
void jn_progress_read(const jn_producer *producer, const jn_consumer *consumer,
                      jn_progress_counts *out);

typedef struct jn_progress jn_progress;

/* Starts sampling producer's and consumer's counters on loop (either may be NULL; both
 * must outlive the returned value). With show, progress goes to stderr: one line
 * rewritten in place every second when stderr is a terminal, else a line every 5 s. */
jn_progress *jn_progress_start(uv_loop_t *loop, int show, const jn_producer *producer,
                               const jn_consumer *consumer);

/* Calls idle(arg) once, the first time the pipeline is idle: every source of the producer
 * finished a cycle and has none under way, nothing was published for quiet_ms, every
 * record a source published was read by each of the consumer's pipelines reading its
 * topic, lag, pending and held messages are 0, and every merged record was delivered (to
 * each of its sinks) or refused. */
void jn_progress_on_idle(jn_progress *p, uint64_t quiet_ms, void (*idle)(void *), void *arg);

/* Prints the last line (ending the terminal's line), stops sampling and frees p. */
void jn_progress_stop(jn_progress *p);

#endif
