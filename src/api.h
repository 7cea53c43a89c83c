/* `junction api`: the CRM and Inventory mock APIs. Records come from Lua scripts
 * (scripts/crm.lua, scripts/inventory.lua) that generate them deterministically and
 * validate every write; a reloaded script regenerates the data it serves. */
#ifndef JN_API_H
#define JN_API_H

#include <uv.h>

#include "buf.h"
#include "config.h"
#include "script.h"

typedef struct jn_api jn_api;

/* Loads both scripts and starts both servers. NULL with *err (malloc'd) on failure. */
jn_api *jn_api_start(uv_loop_t *loop, jn_script_host *scripts, const jn_config *cfg, char **err);
/* Stops both servers gracefully; done runs once, after which the api is freed. */
void jn_api_stop(jn_api *a, void (*done)(void *), void *arg);

/* Replaces the fault settings of service "crm" or "inventory" from a JSON object such as
 * {"latency_ms":200,"error_rate":0.5,"error_status":503,"malformed_rate":0,"fail_next":3}.
 * Returns 0, 404 for an unknown service, or 400 with *err (malloc'd). */
int jn_api_set_faults(jn_api *a, const char *service, const char *json, size_t len, char **err);
/* Appends {"crm":{...},"inventory":{...}}: record counts and fault settings. */
void jn_api_status_json(jn_api *a, jn_sb *out);

#endif
