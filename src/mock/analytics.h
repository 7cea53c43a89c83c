/* `junction analytics`: an Analytics REST API to deliver to in tests and local runs.
 * It accepts POSTed batches of merged records, keeps them in memory (and optionally
 * appends them to a JSON-lines file), recognises repeated Idempotency-Keys, and can
 * inject failures (status codes, latency, dropped connections) so the consumer's retries
 * and dead-lettering can be exercised. */
#ifndef JN_ANALYTICS_H
#define JN_ANALYTICS_H

#include <uv.h>

#include "buf.h"
#include "config.h"

typedef struct jn_analytics jn_analytics;

jn_analytics *jn_analytics_start(uv_loop_t *loop, const jn_config *cfg, char **err);
void jn_analytics_stop(jn_analytics *a, void (*done)(void *), void *arg);
/* {"batches":..,"records":..,"duplicate_batches":..,...} as served at /analytics/stats. */
void jn_analytics_stats_json(jn_analytics *a, jn_sb *out);
/* Records with distinct ids received (what `run --until-idle` counts as delivered). */
size_t jn_analytics_distinct_ids(const jn_analytics *a);

#endif
