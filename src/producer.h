/* `junction produce`: polls every source of the config (HTTP APIs, page by page when the
 * source's script pages) on a fixed delay, maps each record with the source's Lua script,
 * and publishes new or changed records to the source's topic with the idempotent
 * producer. A record counts as published only on its delivery report. */
#ifndef JN_PRODUCER_H
#define JN_PRODUCER_H

#include <stdint.h>
#include <uv.h>

#include "buf.h"
#include "config.h"
#include "script.h"

typedef struct jn_producer jn_producer;

/* Loads the map scripts, creates the Kafka producer and starts polling. NULL with *err
 * (malloc'd) when a script or a setting is wrong, with what was begun undone as a stop
 * would (closed on the loop's next turns, the scripts removed); an unreachable API or
 * broker is not an error here: the producer keeps retrying. */
jn_producer *jn_producer_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg,
                               char **err);
/* Stops polling, waits (bounded) for outstanding deliveries, frees; done runs once. */
void jn_producer_stop(jn_producer *p, void (*done)(void *), void *arg);
/* Appends a JSON object describing each source: polls, records, last error. */
void jn_producer_status_json(jn_producer *p, jn_sb *out);

/* What one source did, counted where it happens: /metrics shows these (bound to the
 * junction_producer_* series), and /api/status and the progress line read them. */
typedef struct {
    uint64_t polls_ok, polls_unchanged, polls_failed; /* cycles by result */
    uint64_t retries;                                 /* retried requests */
    uint64_t failures;                                /* failed requests, every reason */
    uint64_t published;                               /* records Kafka acknowledged */
    uint64_t unchanged;                               /* records skipped as already published */
    uint64_t invalid;                                 /* not an object, or no id */
    uint64_t map_errors;      /* the map script failed or returned no record */
    uint64_t delivery_errors; /* messages Kafka did not acknowledge */
    uint64_t queue_full;      /* times polling paused on librdkafka's full queue */
} jn_source_counts;

/* One running source, for `run --until-idle` and the progress line. */
typedef struct {
    const char *name, *topic;  /* the config's, valid while the producer runs */
    const jn_source_counts *n; /* its counters, valid while the producer runs */
    long cycles_done;          /* cycles every record of which was reported on */
    int busy;                  /* a cycle is fetching, queueing or awaiting reports */
} jn_producer_source;

/* The sources polled (the config's enabled ones), in the config's order. */
int jn_producer_source_count(const jn_producer *p);
void jn_producer_source_info(const jn_producer *p, int i, jn_producer_source *out);

/* Why the producer cannot do its work now (no broker reachable), or NULL. */
const char *jn_producer_not_ready(const jn_producer *p);

#endif
