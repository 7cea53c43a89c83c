/* The `sources` section of the config file (config_source.c): the HTTP APIs the producer
 * polls, each into a topic of its own. Internal to the config files: everyone else reads
 * cfg->sources. */
#ifndef JN_CONFIG_SOURCE_H
#define JN_CONFIG_SOURCE_H

#include <lua.h>

#include "buf.h"
#include "config.h"

/* Reads the `sources` value at idx of L (the file's state) into cfg->sources. The
 * producer.* keys must hold their final values (file, then environment): keys a source
 * leaves out take them. On error appends one line to err and returns -1; whatever was
 * filled is left for jn_config_sources_free. Runs no code of the file. */
int jn_config_sources_load(jn_config *cfg, lua_State *L, int idx, jn_sb *err);
void jn_config_sources_free(jn_config *cfg);
/* The sources part of `junction --help-config`. */
void jn_config_sources_describe(void);

#endif
