/* The admin HTTP server of every process (127.0.0.1:8000 for `run`, a port of its own
 * for each role alone: jn_config_admin_port): /healthz, /readyz, /metrics, /api/status,
 * POST /api/reload and PUT /api/faults/:service. */
#ifndef JN_ADMIN_H
#define JN_ADMIN_H

#include <uv.h>

#include "config.h"
#include "consumer.h"
#include "producer.h"
#include "script.h"
#include "mock/analytics.h"
#include "mock/api.h"

typedef struct jn_admin jn_admin;

jn_admin *jn_admin_start(uv_loop_t *loop, const jn_config *cfg, jn_script_host *scripts,
                         char **err);
/* The roles this process runs register themselves so status and faults can reach them. */
void jn_admin_set_api(jn_admin *a, jn_api *api);
void jn_admin_set_producer(jn_admin *a, jn_producer *p);
void jn_admin_set_consumer(jn_admin *a, jn_consumer *c);
void jn_admin_set_analytics(jn_admin *a, jn_analytics *an);
void jn_admin_stop(jn_admin *a, void (*done)(void *), void *arg);

#endif
