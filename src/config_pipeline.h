/* The `pipelines` section of the config file (config_pipeline.c). Internal to config.c:
 * everyone else reads cfg->pipelines. */
#ifndef JN_CONFIG_PIPELINE_H
#define JN_CONFIG_PIPELINE_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

/* Reads the `pipelines` value at idx of L (the file's state) into cfg->pipelines. The
 * consumer.* keys must hold their final values (file, then environment): keys a pipeline
 * leaves out take them. On error appends one line to err and returns -1; whatever was
 * filled is left for jn_config_pipelines_free. Runs no code of the file. */
int jn_config_pipelines_load(jn_config *cfg, lua_State *L, int idx, jn_sb *err);
/* The pipeline of a file without `pipelines`: the seed's consumer, from the consumer.*
 * keys (final values). Cannot fail. */
void jn_config_pipelines_default(jn_config *cfg);
void jn_config_pipelines_free(jn_config *cfg);
/* The pipelines part of `junction --help-config`. */
void jn_config_pipelines_describe(void);

#endif
