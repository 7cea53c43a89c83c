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

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "script.h"

typedef struct jn_pipeline jn_pipeline;

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
double jn_pipeline_topic_read(const jn_pipeline *p, const char *topic);
/* Messages held waiting for a record answering their id (ctx.hold). */
double jn_pipeline_held(const jn_pipeline *p);

#endif
