/* `junction consume`: runs every pipeline of the config (pipeline.h): streams consumed
 * as a group member, tables read whole first, a transform, de-duplication through Redis
 * marks, sinks, and offsets committed only up to the first message not yet delivered,
 * skipped as a duplicate, or dead-lettered. */
#ifndef JN_CONSUMER_H
#define JN_CONSUMER_H

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "pipeline.h"
#include "script.h"

typedef struct jn_consumer jn_consumer;

/* Starts every pipeline. NULL with *err (malloc'd) when one cannot start, with the
 * pipelines started before it stopped (closed on the loop's next turns). */
jn_consumer *jn_consumer_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               char **err);
void jn_consumer_stop(jn_consumer *c, void (*done)(void *), void *arg);
void jn_consumer_status_json(jn_consumer *c, jn_sb *out);
/* Why the consumer is not ready to merge (tables still loading, Redis down), or NULL. */
const char *jn_consumer_not_ready(const jn_consumer *c);
/* Messages read from topic by the pipelines that read it: the least of their counts (each
 * must read what was published), or -1 when none reads it. For `run --until-idle`. */
int64_t jn_consumer_topic_read(const jn_consumer *c, const char *topic);
/* Every pipeline's numbers added up (see jn_pipeline_totals). */
void jn_consumer_totals(const jn_consumer *c, jn_pipeline_totals *out);

#endif
