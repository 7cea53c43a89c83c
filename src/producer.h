/* `junction produce`: polls the CRM and Inventory APIs on a fixed delay, maps each
 * record with a Lua script, and publishes new or changed records to Kafka with the
 * idempotent producer. A record counts as published only on its delivery report. */
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

#endif
