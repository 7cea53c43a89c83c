/* The `junction` module for scripts. Small on purpose: everything a transform needs
 * from the host and nothing that could block the loop. */
#include "script_lib.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "buf.h"
#include "json.h"
#include "log.h"
#include "metrics.h"
#include "record_view.h"

static const char *current = NULL;

/* junction.record_view(text): the record view the host hands a script that sets
 * `views = true` (record_view.h), for specs that check a script with both kinds of
 * record and for records a script keeps as text. Returns nil and the reason when text is
 * not an object in canonical form (then json_decode is the way to read it). */
static int l_record_view(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    if (jn_view_push(L, s, len) != 0) {
        lua_pushnil(L);
        lua_pushliteral(L, "not a JSON object in canonical form (no spaces, no escapes, no "
                           "fractions, distinct keys)");
        return 2;
    }
    return 1;
}

const char *jn_lua_current_script(void) {
    return current ? current : "script";
}

void jn_lua_set_current_script(const char *name) {
    current = name;
}

/* junction.log([level,] message): level is debug, info, warn or error (default info). */
static int l_log(lua_State *L) {
    jn_log_level level = JN_LOG_INFO;
    int msg = 1;
    if (lua_gettop(L) >= 2) {
        const char *name = luaL_checkstring(L, 1);
        if (jn_log_level_parse(name, &level) != 0)
            return luaL_argerror(L, 1, "level must be \"debug\", \"info\", \"warn\" or \"error\"");
        msg = 2;
    }
    const char *text = luaL_tolstring(L, msg, NULL);
    char comp[128];
    snprintf(comp, sizeof comp, "script:%s", jn_lua_current_script());
    if (jn_log_enabled(level)) jn_log_write(level, comp, "%s", text);
    return 0;
}

static int l_sha256(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char hex[65];
    jn_sha256_hex(s, len, hex);
    lua_pushlstring(L, hex, 64);
    return 1;
}

/* Wall-clock seconds with millisecond precision, like os.time() but finer. */
static int l_now(lua_State *L) {
    struct timeval tv;
    gettimeofday(&tv, NULL);
    lua_pushnumber(L, (double)tv.tv_sec + (double)(tv.tv_usec / 1000) / 1000.0);
    return 1;
}

static char *env_allow = NULL;

void jn_lua_set_env_allow(const char *spec) {
    free(env_allow);
    env_allow = spec ? strdup(spec) : NULL;
}

int jn_lua_env_allowed(const char *name) {
    if (!env_allow) return 1;
    size_t n = strlen(name);
    for (const char *p = env_allow; *p;) {
        while (*p == ',' || *p == ' ')
            p++;
        const char *e = p;
        while (*e && *e != ',')
            e++;
        size_t len = (size_t)(e - p);
        while (len && p[len - 1] == ' ')
            len--;
        if (len && p[len - 1] == '*') {
            if (n >= len - 1 && !memcmp(name, p, len - 1)) return 1;
        } else if (len && len == n && !memcmp(name, p, n)) {
            return 1;
        }
        p = e;
    }
    return 0;
}

/* junction.env(name [, default]) */
static int l_env(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    if (!jn_lua_env_allowed(name))
        return luaL_error(L,
                          "junction.env: %s is not in scripts.env_allow; add the name (or a "
                          "PREFIX_* pattern) there to let scripts read it",
                          name);
    const char *v = getenv(name);
    if (v)
        lua_pushstring(L, v);
    else
        lua_settop(L, 2);
    return 1;
}

/* junction.count(name [, n]): a counter in /metrics, labelled by script and name. */
static int l_count(lua_State *L) {
    const char *name = luaL_checkstring(L, 1);
    lua_Number n = luaL_optnumber(L, 2, 1);
    for (const char *p = name; *p; p++)
        if (*p == '"' || *p == '\\' || *p == '\n')
            return luaL_argerror(L, 1,
                                 "counter names may not contain quotes, backslashes or "
                                 "newlines");
    char labels[300];
    snprintf(labels, sizeof labels, "script=\"%s\",name=\"%s\"", jn_lua_current_script(), name);
    jn_metric *m =
        jn_metrics_counter("junction_script_events_total",
                           "Counters incremented by scripts with junction.count", labels);
    jn_metric_add(m, n);
    lua_pushnumber(L, jn_metric_value(m));
    return 1;
}

/* junction.json_decode(text) -> value | nil, message. Integers stay integers and null
 * is junction.null, so a record survives decode and encode unchanged. */
static int l_json_decode(lua_State *L) {
    size_t len;
    const char *s = luaL_checklstring(L, 1, &len);
    char err[160];
    if (jn_json_decode(L, s, len, err, sizeof err) != 0) {
        luaL_pushfail(L);
        lua_pushstring(L, err);
        return 2;
    }
    return 1;
}

/* junction.json_encode(value) -> text with sorted keys (canonical). */
static int l_json_encode(lua_State *L) {
    luaL_checkany(L, 1);
    jn_sb sb;
    jn_sb_init(&sb);
    const char *err;
    if (jn_json_encode(L, 1, NULL, &sb, &err) != 0) {
        jn_sb_free(&sb);
        return luaL_error(L, "json_encode: %s", err);
    }
    lua_pushlstring(L, sb.data ? sb.data : "", sb.len);
    jn_sb_free(&sb);
    return 1;
}

int luaopen_junction(lua_State *L) {
    static const luaL_Reg fns[] = {{"log", l_log},
                                   {"sha256", l_sha256},
                                   {"now", l_now},
                                   {"env", l_env},
                                   {"count", l_count},
                                   {"json_decode", l_json_decode},
                                   {"json_encode", l_json_encode},
                                   {"record_view", l_record_view},
                                   {NULL, NULL}};
    luaL_newlib(L, fns);
    lua_pushliteral(L, JN_VERSION);
    lua_setfield(L, -2, "version");
    lua_pushlightuserdata(L, NULL);
    lua_setfield(L, -2, "null");
    return 1;
}
