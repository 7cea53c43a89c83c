/* The `apis` section of the config file (config_api.c). Internal to config.c: everyone
 * else reads cfg->apis. */
#ifndef JN_CONFIG_API_H
#define JN_CONFIG_API_H

#include <lua.h>

#include "buf.h"
#include "config.h"

/* Reads the `apis` value at idx of L (the file's state) into cfg->apis. On error appends
 * one line to err and returns -1; whatever was filled is left for jn_config_apis_free.
 * Runs no code of the file. */
int jn_config_apis_load(jn_config *cfg, lua_State *L, int idx, jn_sb *err);
void jn_config_apis_free(jn_config *cfg);
/* The apis part of `junction --help-config`. */
void jn_config_apis_describe(void);

#endif
