/* `junction produce`: polls every source of the config (HTTP APIs, page by page when the
 * source's script pages) on a fixed delay, maps each record with the source's Lua script,
 * and publishes new or changed records to the source's topic with the idempotent
 * producer. A record counts as published only on its delivery report. */
#ifndef JN_PRODUCER_H
#define JN_PRODUCER_H

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "script.h"

typedef struct jn_producer jn_producer;

/* Loads the map scripts, creates the Kafka producer and starts polling. NULL with *err
 * (malloc'd) when a script or a setting is wrong; an unreachable API or broker is not
 * an error here: the producer keeps retrying. */
jn_producer *jn_producer_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               char **err);
/* Stops polling, waits (bounded) for outstanding deliveries, frees; done runs once. */
void jn_producer_stop(jn_producer *p, void (*done)(void *), void *arg);
/* Appends a JSON object describing each source: polls, records, last error. */
void jn_producer_status_json(jn_producer *p, jn_sb *out);

/* One running source, for `run --until-idle` and the progress line. */
typedef struct {
    const char *name, *topic; /* the config's, valid while the producer runs */
    double published;         /* records Kafka acknowledged */
    long cycles_done;         /* cycles every record of which was reported on */
    int busy;                 /* a cycle is fetching, queueing or awaiting reports */
} jn_producer_source;

/* The sources polled (the config's enabled ones), in the config's order. */
int jn_producer_source_count(const jn_producer *p);
void jn_producer_source_info(const jn_producer *p, int i, jn_producer_source *out);

#endif
