/* `junction api`: the mock APIs of the config (cfg->apis; by default the seed's CRM and
 * Inventory). Records come from Lua scripts (scripts/crm.lua, scripts/inventory.lua, ...)
 * that generate them deterministically and validate every write; a reloaded script
 * regenerates the data it serves. */
#ifndef JN_API_H
#define JN_API_H

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "script.h"

typedef struct jn_api jn_api;

/* Loads every API's script and starts its server. NULL with *err (malloc'd) on failure,
 * with the servers already started stopped (closed on the loop's next turns) and their
 * scripts removed. */
jn_api *jn_api_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg, char **err);
/* Stops every server gracefully; done runs once, after which the api is freed. */
void jn_api_stop(jn_api *a, void (*done)(void *), void *arg);

/* Replaces the fault settings of the API named service from a JSON object such as
 * {"latency_ms":200,"error_rate":0.5,"error_status":503,"malformed_rate":0,"fail_next":3}.
 * Returns 0, or with *err (malloc'd) JN_ENOENT (an unknown API; *err lists the known
 * ones) or JN_EINVAL (not such an object, or a setting out of range). */
int jn_api_set_faults(jn_api *a, const char *service, const char *json, size_t len, char **err);
/* Appends {"<name>":{...},...}: per API its record count, port, resource, paging style,
 * whether it asks for a token (never the token), and fault settings. */
void jn_api_status_json(jn_api *a, jn_sb *out);
/* The number of records the API named name serves, or -1 when a is NULL or has no such
 * API: what --until-idle counts records against. */
long jn_api_records(jn_api *a, const char *name);

#endif
