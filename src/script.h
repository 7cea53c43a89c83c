/* The Lua host: one lua_State per process, each script file loaded with its own
 * sandboxed _ENV, versions swapped only after the new one compiled, ran and passed its
 * owner's check. A failed reload leaves the old version running and records the error. */
#ifndef JN_SCRIPT_H
#define JN_SCRIPT_H

#include <lua.h>
#include <uv.h>

#include "buf.h"

typedef struct jn_script_host jn_script_host;
typedef struct jn_script jn_script;

/* Limits and permissions of every script. Zero fields take the defaults below. */
typedef struct {
    long instruction_limit; /* Lua instructions per call (200,000,000) */
    long time_limit_ms;     /* wall-clock per call, C functions included (1000) */
    long memory_limit_mb;   /* ceiling on the state's memory while a call runs (1024) */
    long max_file_bytes;    /* largest script file or load() chunk (4 MiB) */
    const char *read_paths; /* comma-separated folders io.open may read; NULL: the script's */
    const char *env_allow;  /* names (NAME, PREFIX_*, *) junction.env/os.getenv may read */
    const char *stock_path; /* folder of the stock scripts, for require "stock.<name>" */
    int allow_exec;
    int allow_write;
} jn_script_opts;

/* Called with a candidate version's module table at the top of the stack. Returning 0
 * accepts it (the owner has already switched to what the module produced); returning -1
 * with *err set (malloc'd) rejects it and the owner must keep its old data. The callback
 * must leave the stack as it found it. */
typedef int (*jn_script_check_cb)(jn_script *s, void *ud, char **err);

jn_script_host *jn_script_host_new(uv_loop_t *loop, const jn_script_opts *opts);
/* Stops the file watchers; done(h) runs once every handle has closed. */
void jn_script_host_close(jn_script_host *h);
lua_State *jn_script_host_lua(jn_script_host *h);

/* Loads path as script `name` and runs check on it. Returns NULL and sets *err when the
 * first version fails: a host cannot start without its scripts. */
jn_script *jn_script_add(jn_script_host *h, const char *name, const char *path,
                         jn_script_check_cb check, void *ud, char **err);
/* Takes s out of its host: no reload reaches its check any more, and s is freed (its
 * load and reload counters stay). For an owner that stops, or whose start failed after
 * adding it; its folder stays watched. */
void jn_script_remove(jn_script *s);
/* Reloads one script, or every script. Returns 0 when all reloads were accepted. */
int jn_script_reload(jn_script *s, const char *reason);
int jn_script_reload_all(jn_script_host *h, const char *reason);
/* Watches the scripts' folders and reloads a script when its file (or a file it may
 * require from the same folder) changes. */
int jn_script_watch(jn_script_host *h);

const char *jn_script_name(const jn_script *s);
int jn_script_version(const jn_script *s);
/* Pushes the state table that every version of s shares (survives reloads). */
void jn_script_push_state(jn_script *s);
/* Pushes the current module table of s. */
void jn_script_push_module(jn_script *s);

/* Pushes module[fn] of the current version, or pushes nothing and returns -1 with *err
 * set when it is not a function. A module with a metatable is read under the call
 * limits, so no lookup can run script code unbounded. */
int jn_script_push_function(jn_script *s, const char *fn, char **err);

/* Reads t[k] without metamethods (tables a script returned may carry any metatable,
 * and the host reads them outside any limit). Returns the value's type. */
static inline int jn_lua_rawgetfield(lua_State *L, int idx, const char *k) {
    idx = lua_absindex(L, idx);
    lua_pushstring(L, k);
    return lua_rawget(L, idx);
}
/* t[k] = value at the top, without metamethods; pops the value. */
static inline void jn_lua_rawsetfield(lua_State *L, int idx, const char *k) {
    idx = lua_absindex(L, idx);
    lua_pushstring(L, k);
    lua_insert(L, -2);
    lua_rawset(L, idx);
}

/* Calls the function below nargs arguments on the stack under the instruction limit
 * and a traceback handler, on behalf of s (for log lines and counters). Leaves nresults
 * values on success; on failure leaves nothing, returns -1 and sets *err (malloc'd). */
int jn_script_pcall(jn_script *s, int nargs, int nresults, char **err);
/* Looks up module[fn] of the current version and calls it as above. A missing function
 * is an error. */
int jn_script_call(jn_script *s, const char *fn, int nargs, int nresults, char **err);

/* The part of a script error (as jn_script_pcall sets it) a client of the host may be
 * answered with: its first line, without the source positions Lua puts in front
 * ("/srv/scripts/orders.lua:69: "), so neither the traceback nor a script's path leaves the
 * process; the log is the place for the whole error. Returns its length and sets *start
 * inside err; never allocates. */
size_t jn_script_error_brief(const char *err, const char **start);

/* JSON array describing every script: version, hash, reload history, last error. */
void jn_script_host_status_json(jn_script_host *h, jn_sb *out);

#endif
