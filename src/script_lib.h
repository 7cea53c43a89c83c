/* The `junction` module that scripts require: log, sha256, now, env and counters.
 * Built into the host and also as build/junction.so so busted specs run the scripts
 * against the same module. */
#ifndef JN_SCRIPT_LIB_H
#define JN_SCRIPT_LIB_H

#include <lua.h>

int luaopen_junction(lua_State *L);
int luaopen_cjson(lua_State *L);

/* Which environment variables junction.env (and the sandbox's os.getenv) may read: a
 * comma-separated list of names, PREFIX_* patterns, or * for all. Secrets live in the
 * environment, so the host sets this from scripts.env_allow; until it is set (the busted
 * module) every name is allowed. */
void jn_lua_set_env_allow(const char *spec);
int jn_lua_env_allowed(const char *name);

/* The script on whose behalf the host is calling, for log components and counters. */
const char *jn_lua_current_script(void);
void jn_lua_set_current_script(const char *name);

#endif
