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
void jn_config_pipelines_free(jn_config *cfg);
/* The pipelines part of `junction --help-config`. */
void jn_config_pipelines_describe(void);

/* config_pipeline.c's reading of a secret value, shared with the other sections
 * (config_kafka.c): the value at idx of L, a string (one non-empty line) or
 * { env = "NAME" } (the variable, or when it is unset the file NAME_FILE names) or
 * { file = "/path" } (secret.h reads them). at names the key in messages, which never
 * show the value. On error one line goes to err and -1 is returned. */
int jn_config_secret_value(lua_State *L, int idx, const jn_config *cfg, const char *at, jn_sb *err,
                           char **out);

#endif
