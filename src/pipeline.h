/* One pipeline of `junction consume` (see config.h's jn_pipeline_config): a consumer-group
 * member reading the pipeline's streams, a private reader following its tables, the
 * transform, de-duplication through Redis, the sinks, the dead-letter topic and the
 * streams' changelogs. Stages, each behind its own interface:
 *   intake      the group's messages, flow control, rebalances, commits (here)
 *   dedupe      dedupe.c: the check before the transform, the mark after delivery
 *   transform   transform.c: hook calls, their output checked whole
 *   settlement  settle.c: when a message is over, whatever the script returned
 *   sinks       sink.c (HTTP) and sink_kafka.c, one done callback for both
 *   changelog   stream records kept in a compacted topic and replayed on assignment
 * A message is committed only once it is settled: delivered to every sink its records
 * went to and marked, skipped as a duplicate, or dead-lettered. */
#ifndef JN_PIPELINE_H
#define JN_PIPELINE_H

#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "script.h"

typedef struct jn_pipeline jn_pipeline;

/* Starts the pipeline pc of cfg. NULL with *err (malloc'd) when a setting or its script is
 * wrong, with what was begun undone as a stop would (closed on the loop's next turns, the
 * script removed). */
jn_pipeline *jn_pipeline_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               const jn_pipeline_config *pc, char **err);
/* Leaves the group (settling and committing what it can), then closes everything;
 * done(arg) runs once all is closed and p is freed. */
void jn_pipeline_stop(jn_pipeline *p, void (*done)(void *), void *arg);
void jn_pipeline_status_json(jn_pipeline *p, jn_sb *out);
/* Why the pipeline cannot process yet (tables or changelogs loading, Redis down), or
 * NULL. The message is kept in p until the next call. */
const char *jn_pipeline_not_ready(jn_pipeline *p);
/* Messages read from topic (as a stream or a table), or -1 when the pipeline reads no such
 * topic. */
int64_t jn_pipeline_topic_read(const jn_pipeline *p, const char *topic);

/* Pipelines' numbers added up, for the progress line and `run --until-idle`: read from
 * the counters the pipelines bump (the ones /metrics shows), never from /metrics. */
typedef struct {
    uint64_t merged, delivered, duplicates, dead_lettered;
    uint64_t errors;       /* bad messages and transform errors */
    uint64_t rejected;     /* records the HTTP sinks refused for good */
    uint64_t sink_retries; /* POSTs the HTTP sinks send again */
    int64_t lag;           /* messages behind the partitions' ends */
    int64_t pending;       /* messages read and not yet settled */
    int64_t held;          /* messages waiting for a record answering their id (ctx.hold) */
} jn_pipeline_totals;

/* Adds p's numbers to t. */
void jn_pipeline_add_totals(const jn_pipeline *p, jn_pipeline_totals *t);

#endif
