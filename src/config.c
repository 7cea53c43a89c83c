/* Configuration loading and validation, driven by one schema table: each entry names
 * a dotted key, its type, its default, its environment variable and where it lands in
 * jn_config. Adding a key is one line here.
 *
 * The file is data written in Lua, so it runs in an environment of its own, with nothing
 * that reaches outside the process (no os, io, require or load; env() reads environment
 * variables), and under instruction, time and memory limits: a mistake in it must end
 * start-up with an error that says so, never run a command, write a file or hang. */
#include "config.h"

#include <errno.h>
#include <lauxlib.h>
#include <limits.h>
#include <lua.h>
#include <lualib.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "config_api.h"
#include "config_kafka.h"
#include "config_pipeline.h"
#include "config_read.h"
#include "config_source.h"
#include "lua_alloc.h"
#include "script_strlib.h"
#include "secret.h"

/* T_SECRET: a string kept out of messages, from the file (a string, or { env = NAME } or
 * { file = PATH }) or from the entry's variable or <variable>_FILE (secret.h). */
typedef enum {
    T_STR,
    T_OPTSTR,
    T_SECRET,
    T_INT,
    T_LONG,
    T_NUM,
    T_BOOL,
    T_ADDR,
    T_LEVEL,
    T_FORMAT
} key_type;

typedef struct {
    const char *key;
    key_type type;
    size_t offset;
    const char *def;
    const char *env;
    double min, max; /* for numbers */
    const char *doc;
} schema_entry;

#define OFF(f) offsetof(jn_config, f)
/* clang-format off */
static const schema_entry schema[] = {
    {"log.level", T_LEVEL, OFF(log.level), "info", "JUNCTION_LOG_LEVEL", 0, 0, "debug, info, warn or error"},
    {"log.format", T_FORMAT, OFF(log.format), "text", "JUNCTION_LOG_FORMAT", 0, 0, "text or json (one object per line)"},
    {"admin.listen", T_ADDR, OFF(admin.listen), "127.0.0.1:8000", "JUNCTION_ADMIN_LISTEN", 0, 0, "admin HTTP address (/healthz, /metrics, /api/reload); the default port is run's, each role alone has its own: api 8001, produce 8002, consume 8003, analytics 8004"},
    {"admin.token", T_SECRET, OFF(admin.token), "", "JUNCTION_ADMIN_TOKEN", 0, 0, "bearer token of every state-changing admin and analytics request (reload, faults, DELETE); required when a listener is not on loopback"},
    {"scripts.instruction_limit", T_LONG, OFF(scripts.instruction_limit), "200000000", "JUNCTION_SCRIPT_INSTRUCTION_LIMIT", 1000, 1e12, "Lua instructions one script call may run before it is stopped"},
    {"scripts.time_limit_ms", T_LONG, OFF(scripts.time_limit_ms), "1000", "JUNCTION_SCRIPT_TIME_LIMIT_MS", 1, 3600000, "milliseconds one script call may run before it is stopped (C functions included)"},
    {"scripts.memory_limit_mb", T_LONG, OFF(scripts.memory_limit_mb), "1024", "JUNCTION_SCRIPT_MEMORY_LIMIT_MB", 8, 1048576, "ceiling on the memory of the scripts' Lua state; an allocation past it fails the call"},
    {"scripts.max_file_bytes", T_LONG, OFF(scripts.max_file_bytes), "4194304", NULL, 1024, 1073741824, "largest script file (or chunk given to load) accepted"},
    {"scripts.read_paths", T_OPTSTR, OFF(scripts.read_paths), "", "JUNCTION_SCRIPT_READ_PATHS", 0, 0, "comma-separated folders scripts may read files under (empty: each script's own folder)"},
    {"scripts.env_allow", T_STR, OFF(scripts.env_allow), "SCRIPT_*", "JUNCTION_SCRIPT_ENV_ALLOW", 0, 0, "comma-separated environment variables scripts may read; NAME_* allows a prefix, * allows all"},
    {"scripts.stock_path", T_OPTSTR, OFF(scripts.stock_path), "", "JUNCTION_SCRIPT_STOCK_PATH", 0, 0, "folder of the stock scripts, which scripts reach with require \"stock.<name>\" (empty: the scripts/ installed with junction, <prefix>/share/junction/scripts, or the source tree's for a binary in its build tree)"},
    {"scripts.allow_exec", T_BOOL, OFF(scripts.allow_exec), "false", NULL, 0, 0, "give scripts os.execute and io.popen"},
    {"scripts.allow_write", T_BOOL, OFF(scripts.allow_write), "false", NULL, 0, 0, "let scripts open files for writing"},
    {"scripts.watch", T_BOOL, OFF(scripts.watch), "true", "JUNCTION_SCRIPT_WATCH", 0, 0, "reload a script as soon as its file changes"},
    {"api.max_body_bytes", T_INT, OFF(api.max_body_bytes), "1048576", "JUNCTION_MAX_BODY_BYTES", 16, 1 << 30, "largest request body accepted (413 above)"},
    {"api.request_timeout_ms", T_INT, OFF(api.request_timeout_ms), "10000", "JUNCTION_REQUEST_TIMEOUT_MS", 10, 3600000, "time a client has to send a whole request"},
    {"api.keepalive_timeout_ms", T_INT, OFF(api.keepalive_timeout_ms), "60000", "JUNCTION_KEEPALIVE_TIMEOUT_MS", 10, 3600000, "idle time before a kept-alive connection is closed"},
    {"api.max_connections", T_INT, OFF(api.max_connections), "10000", "JUNCTION_MAX_CONNECTIONS", 1, 1000000, "open connections per listener"},
    {"producer.poll_interval_ms", T_INT, OFF(producer.poll_interval_ms), "360", "JUNCTION_POLL_INTERVAL_MS", 1, 86400000, "delay between the end of one poll and the start of the next"},
    {"producer.request_timeout_ms", T_INT, OFF(producer.request_timeout_ms), "10000", "JUNCTION_PRODUCER_TIMEOUT_MS", 10, 600000, "time one API request may take"},
    {"producer.publish_all", T_BOOL, OFF(producer.publish_all), "false", "JUNCTION_PUBLISH_ALL", 0, 0, "publish every record every cycle, as the original did, instead of only new or changed ones"},
    {"producer.retry.attempts", T_INT, OFF(producer.retry.attempts), "4", "JUNCTION_RETRY_ATTEMPTS", 1, 100, "tries per poll, the first included"},
    {"producer.retry.base_ms", T_INT, OFF(producer.retry.base_ms), "1000", NULL, 1, 3600000, "ceiling of the first retry's delay (full jitter below it)"},
    {"producer.retry.multiplier", T_NUM, OFF(producer.retry.multiplier), "2", NULL, 1, 100, "growth of the ceiling per retry"},
    {"producer.retry.max_ms", T_INT, OFF(producer.retry.max_ms), "30000", NULL, 1, 3600000, "cap of one retry delay, Retry-After included"},
    {"kafka.brokers", T_STR, OFF(kafka.brokers), "127.0.0.1:9092", "KAFKA_BOOTSTRAP_SERVERS", 0, 0, "Kafka bootstrap servers, host:port[,host:port]"},
    {"kafka.client_id", T_STR, OFF(kafka.client_id), "junction", "JUNCTION_KAFKA_CLIENT_ID", 0, 0, "client.id sent to the brokers"},
    {"kafka.compression", T_STR, OFF(kafka.compression), "lz4", NULL, 0, 0, "none, gzip, snappy, lz4 or zstd"},
    {"kafka.linger_ms", T_INT, OFF(kafka.linger_ms), "5", NULL, 0, 60000, "time librdkafka waits to fill a batch"},
    {"kafka.queue_max_messages", T_INT, OFF(kafka.queue_max_messages), "200000", NULL, 1, 10000000, "messages queued in librdkafka before the producer pauses polling"},
    {"kafka.message_timeout_ms", T_INT, OFF(kafka.message_timeout_ms), "120000", NULL, 0, 86400000, "how long librdkafka retries one message before reporting it failed (the record is then published again next cycle)"},
    {"redis.host", T_STR, OFF(redis.host), "127.0.0.1", "REDIS_HOST", 0, 0, "Redis host"},
    {"redis.port", T_INT, OFF(redis.port), "6379", "REDIS_PORT", 1, 65535, "Redis port"},
    {"redis.username", T_OPTSTR, OFF(redis.username), "", "REDIS_USERNAME", 0, 0, "ACL user junction logs in as (empty: the default user)"},
    {"redis.password", T_SECRET, OFF(redis.password), "", "REDIS_PASSWORD", 0, 0, "password of that user (requirepass without a username); empty: no AUTH"},
    {"redis.db", T_INT, OFF(redis.db), "0", "REDIS_DB", 0, 1000000, "database number (SELECT)"},
    {"redis.tls", T_BOOL, OFF(redis.tls), "false", "REDIS_TLS", 0, 0, "TLS to Redis: not in this build (hiredis 0.14); see the README for a TLS proxy"},
    {"analytics.listen", T_ADDR, OFF(analytics.listen), "127.0.0.1:8083", "JUNCTION_ANALYTICS_LISTEN", 0, 0, "address of `junction analytics`"},
    {"analytics.file", T_OPTSTR, OFF(analytics.file), "", "JUNCTION_ANALYTICS_FILE", 0, 0, "append received records to this JSON-lines file"},
    {"analytics.token", T_SECRET, OFF(analytics.token), "", "JUNCTION_ANALYTICS_TOKEN", 0, 0, "bearer token POSTs must carry (Authorization: Bearer <token>); empty: none asked"},
    {"analytics.max_body_bytes", T_INT, OFF(analytics.max_body_bytes), "67108864", NULL, 1024, 1 << 30, "largest batch accepted"},
    {"consumer.dead_letter_topic", T_STR, OFF(consumer.dead_letter_topic), "junction_dead_letter", NULL, 0, 0, "where messages that can never be delivered go, with the error in their headers"},
    {"consumer.auto_offset_reset", T_STR, OFF(consumer.auto_offset_reset), "earliest", "JUNCTION_AUTO_OFFSET_RESET", 0, 0, "where a new group starts: earliest or latest"},
    {"consumer.batch_size", T_INT, OFF(consumer.batch_size), "500", NULL, 1, 100000, "records per POST to analytics"},
    {"consumer.linger_ms", T_INT, OFF(consumer.linger_ms), "20", NULL, 0, 60000, "longest wait to fill a batch"},
    {"consumer.max_inflight_batches", T_INT, OFF(consumer.max_inflight_batches), "4", NULL, 1, 1000, "POSTs in flight at once"},
    {"consumer.max_pending", T_INT, OFF(consumer.max_pending), "15000", NULL, 1, 10000000, "messages read but not yet settled before the consumer stops taking more (it takes them again at three quarters)"},
    {"consumer.request_timeout_ms", T_INT, OFF(consumer.request_timeout_ms), "10000", NULL, 10, 600000, "time one POST may take"},
    {"consumer.retry_base_ms", T_INT, OFF(consumer.retry_base_ms), "200", NULL, 1, 3600000, "ceiling of the first retry delay of a POST"},
    {"consumer.retry_max_ms", T_INT, OFF(consumer.retry_max_ms), "10000", NULL, 1, 3600000, "cap of the retry delay of a POST (retries never stop)"},
    {"consumer.dedupe_ttl_s", T_INT, OFF(consumer.dedupe_ttl_s), "86400", "JUNCTION_DEDUPE_TTL_S", 1, 315360000, "lifetime of processed:<sha256> marks in Redis"},
    {"consumer.dedupe_layout", T_STR, OFF(consumer.dedupe_layout), "keys", "JUNCTION_DEDUPE_LAYOUT", 0, 0, "how marks are kept in Redis: \"keys\" (one per mark, the original system's) or \"buckets\" (a hash per ttl/2: far less Redis CPU; a mark lives ttl to 1.5 ttl)"},
    {"consumer.hold_max", T_INT, OFF(consumer.hold_max), "10000", NULL, 0, 10000000, "records a pipeline holds at once waiting for table data (pipelines.<p>.hold_max)"},
    {"consumer.hold_ms", T_INT, OFF(consumer.hold_ms), "5000", NULL, 0, 86400000, "longest a record is held waiting for table data before it goes on without it (pipelines.<p>.hold_ms)"},
};
/* clang-format on */
#define NSCHEMA (sizeof schema / sizeof schema[0])

static const char *type_expect(const schema_entry *e, char *buf, size_t n) {
    switch (e->type) {
    case T_STR:
        return "a non-empty string";
    case T_OPTSTR:
        return "a string (\"\" for none)";
    case T_SECRET:
        return "a string, { env = \"NAME\" } or { file = \"/path\" }";
    case T_INT:
    case T_LONG:
        snprintf(buf, n, "an integer from %.0f to %.0f", e->min, e->max);
        return buf;
    case T_NUM:
        snprintf(buf, n, "a number from %g to %g", e->min, e->max);
        return buf;
    case T_BOOL:
        return "true or false";
    case T_ADDR:
        return "\"host:port\" with a port from 1 to 65535";
    case T_LEVEL:
        return "one of \"debug\", \"info\", \"warn\", \"error\"";
    case T_FORMAT:
        return "\"text\" or \"json\"";
    }
    return "?";
}

int jn_config_parse_addr(const char *s, jn_addr *out) {
    const char *colon = strrchr(s, ':');
    if (!colon || colon == s || (size_t)(colon - s) >= sizeof out->host) return -1;
    char *end;
    errno = 0;
    long port = strtol(colon + 1, &end, 10);
    if (errno || *end || end == colon + 1 || port < 1 || port > 65535) return -1;
    memcpy(out->host, s, (size_t)(colon - s));
    out->host[colon - s] = '\0';
    out->port = (int)port;
    return 0;
}

/* Parses a textual value (a default or an environment variable) into the field. */
static int set_from_string(jn_config *cfg, const schema_entry *e, const char *s) {
    void *field = (char *)cfg + e->offset;
    char *end;
    switch (e->type) {
    case T_SECRET:
        jn_secret_free(*(char **)field);
        *(char **)field = *s ? strdup(s) : NULL;
        return 0;
    case T_STR:
    case T_OPTSTR:
        if (!*s && e->type == T_STR) return -1;
        free(*(char **)field);
        *(char **)field = *s ? strdup(s) : NULL;
        return 0;
    case T_INT:
    case T_LONG: {
        errno = 0;
        long long v = strtoll(s, &end, 10);
        if (errno || *end || end == s || (double)v < e->min || (double)v > e->max) return -1;
        if (e->type == T_INT)
            *(int *)field = (int)v;
        else
            *(long *)field = (long)v;
        return 0;
    }
    case T_NUM: {
        errno = 0;
        double v = strtod(s, &end);
        if (errno || *end || end == s || v < e->min || v > e->max) return -1;
        *(double *)field = v;
        return 0;
    }
    case T_BOOL:
        if (!strcmp(s, "true") || !strcmp(s, "1") || !strcmp(s, "yes"))
            *(int *)field = 1;
        else if (!strcmp(s, "false") || !strcmp(s, "0") || !strcmp(s, "no"))
            *(int *)field = 0;
        else
            return -1;
        return 0;
    case T_ADDR:
        return jn_config_parse_addr(s, (jn_addr *)field);
    case T_LEVEL:
        return jn_log_level_parse(s, (jn_log_level *)field);
    case T_FORMAT:
        if (!strcmp(s, "text"))
            *(jn_log_format *)field = JN_LOG_TEXT;
        else if (!strcmp(s, "json"))
            *(jn_log_format *)field = JN_LOG_JSON;
        else
            return -1;
        return 0;
    }
    return -1;
}

void jn_config_describe_value(lua_State *L, int idx, char *buf, size_t n) {
    switch (lua_type(L, idx)) {
    case LUA_TSTRING:
        snprintf(buf, n, "\"%s\" (a string)", lua_tostring(L, idx));
        break;
    case LUA_TNUMBER:
        snprintf(buf, n, "%s (a number)", lua_tostring(L, idx));
        break;
    case LUA_TBOOLEAN:
        snprintf(buf, n, "%s", lua_toboolean(L, idx) ? "true" : "false");
        break;
    default:
        snprintf(buf, n, "a %s", luaL_typename(L, idx));
        break;
    }
}

/* Notes that the file or the environment set e (what a default that depends on the
 * command must not override). */
static void given(jn_config *cfg, const schema_entry *e) {
    if (e->offset == OFF(admin.listen)) cfg->admin.listen_given = 1;
}

/* Reads the Lua value at the top of the stack into the field. */
static int set_from_lua(jn_config *cfg, const schema_entry *e, lua_State *L) {
    void *field = (char *)cfg + e->offset;
    int t = lua_type(L, -1);
    switch (e->type) {
    case T_INT:
    case T_LONG:
        if (!lua_isinteger(L, -1)) {
            if (t != LUA_TNUMBER) return -1;
            double d = lua_tonumber(L, -1);
            if (d != (double)(long long)d) return -1;
        }
        {
            double v = lua_tonumber(L, -1);
            if (v < e->min || v > e->max) return -1;
            if (e->type == T_INT)
                *(int *)field = (int)v;
            else
                *(long *)field = (long)v;
        }
        return 0;
    case T_NUM:
        if (t != LUA_TNUMBER) return -1;
        {
            double v = lua_tonumber(L, -1);
            if (v < e->min || v > e->max) return -1;
            *(double *)field = v;
        }
        return 0;
    case T_BOOL:
        if (t != LUA_TBOOLEAN) return -1;
        *(int *)field = lua_toboolean(L, -1);
        return 0;
    default:
        if (t != LUA_TSTRING) return -1;
        return set_from_string(cfg, e, lua_tostring(L, -1));
    }
}

/* Edits turning a into b; swapping two neighbours ("evn" for "env") counts as one, since
 * it is the commonest typo and two edits would rule short keys out of "did you mean". */
size_t jn_config_edit_distance(const char *a, const char *b) {
    size_t la = strlen(a), lb = strlen(b);
    if (la > 63 || lb > 63) return 99;
    size_t d[64][64];
    for (size_t i = 0; i <= la; i++)
        d[i][0] = i;
    for (size_t j = 0; j <= lb; j++)
        d[0][j] = j;
    for (size_t i = 1; i <= la; i++)
        for (size_t j = 1; j <= lb; j++) {
            size_t sub = d[i - 1][j - 1] + (a[i - 1] != b[j - 1]);
            size_t del = d[i - 1][j] + 1, ins = d[i][j - 1] + 1;
            d[i][j] = sub < del ? (sub < ins ? sub : ins) : (del < ins ? del : ins);
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < d[i][j])
                d[i][j] = d[i - 2][j - 2] + 1;
        }
    return d[la][lb];
}

static const schema_entry *find_entry(const char *key) {
    for (size_t i = 0; i < NSCHEMA; i++)
        if (!strcmp(schema[i].key, key)) return &schema[i];
    return NULL;
}

int jn_config_int_key(const jn_config *cfg, const char *key, int *value, int *min, int *max) {
    const schema_entry *e = find_entry(key);
    if (!e || e->type != T_INT) return -1;
    *value = *(const int *)((const char *)cfg + e->offset);
    *min = (int)e->min;
    *max = (int)e->max;
    return 0;
}

static int is_section(const char *key) {
    size_t n = strlen(key);
    for (size_t i = 0; i < NSCHEMA; i++)
        if (!strncmp(schema[i].key, key, n) && schema[i].key[n] == '.') return 1;
    return 0;
}

/* The top-level keys config_pipeline.c, config_api.c and config_source.c read, outside
 * the schema. */
#define PIPELINES_KEY "pipelines"
#define APIS_KEY      "apis"
#define SOURCES_KEY   "sources"

/* The closest known key sharing the parent section, for "did you mean". */
static const char *suggest(const char *key) {
    const char *best = NULL;
    size_t best_d = 4;
    for (size_t i = 0; i < NSCHEMA; i++) {
        size_t d = jn_config_edit_distance(key, schema[i].key);
        if (d < best_d) best_d = d, best = schema[i].key;
    }
    static const char *const sections[] = {PIPELINES_KEY, APIS_KEY, SOURCES_KEY};
    for (size_t i = 0; i < sizeof sections / sizeof sections[0]; i++) {
        size_t d = jn_config_edit_distance(key, sections[i]);
        if (d < best_d) best_d = d, best = sections[i];
    }
    for (size_t i = 0; jn_config_kafka_key(i); i++) {
        size_t d = jn_config_edit_distance(key, jn_config_kafka_key(i));
        if (d < best_d) best_d = d, best = jn_config_kafka_key(i);
    }
    return best;
}

/* Where the settings of a key that is gone now live: before the apis, sources and
 * pipelines sections, one API, one source and one pipeline were set under api.NAME,
 * producer.NAME and consumer.*, and a config written then should say where to move them
 * rather than just fail. NULL for anything else, and near (the nearest key) is then the
 * better hint. */
static const char *moved_to(const char *key, int is_table, const char *near) {
    if (is_table && !strncmp(key, "api.", 4))
        return "; an API is declared by name in the `apis` section now: "
               "apis = { NAME = { listen = ..., script = ... } } (README, \"The mock APIs\")";
    if (is_table && !strncmp(key, "producer.", 9))
        return "; a source is declared by name in the `sources` section now: "
               "sources = { NAME = { url = ..., topic = ... } } (README, \"Sources\")";
    if (!strncmp(key, "consumer.", 9) && !near) /* not a typo of a key that remains */
        return "; a pipeline's topics, transform, sink and group are declared by name in the "
               "`pipelines` section now: pipelines = { NAME = { group_id = ..., transform = ..., "
               "streams = ..., tables = ..., sink = ... } } (README, \"Pipelines\")";
    return NULL;
}

/* A secret key's value, at the top of the stack: never echoed in a message. */
static int secret_from_lua(jn_config *cfg, const schema_entry *e, lua_State *L, jn_sb *err) {
    char **field = (char **)((char *)cfg + e->offset);
    char *v = NULL;
    if (lua_type(L, -1) == LUA_TSTRING) {
        size_t len;
        const char *s = lua_tolstring(L, -1, &len);
        if (len && jn_secret_check(e->key, "the value in the config file", s, len, err) != 0)
            return -1;
        v = len ? strdup(s) : NULL;
    } else if (lua_type(L, -1) == LUA_TTABLE) {
        int ne = lua_getfield(L, -1, "env"), nf = lua_getfield(L, -2, "file");
        const char *env = ne == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        const char *file = nf == LUA_TSTRING ? lua_tostring(L, -1) : NULL;
        int rc = 0;
        if (!env == !file) {
            jn_sb_printf(err,
                         "config: %s takes { env = \"NAME\" } (an environment variable) or "
                         "{ file = \"/path\" } (a file) holding the value",
                         e->key);
            rc = -1;
        } else if (env) {
            rc = jn_secret_from_env(e->key, env, &v, err);
            if (rc == 0)
                jn_sb_printf(err,
                             "config: %s: the environment variable %s is not set, nor is "
                             "%s_FILE (the path of a file holding the value); set one of them",
                             e->key, env, env);
            rc = rc == 1 ? 0 : -1;
        } else {
            rc = jn_secret_from_file(e->key, file, NULL, &v, err);
        }
        lua_pop(L, 2);
        if (rc != 0) return -1;
    } else {
        char exp[96];
        jn_sb_printf(err, "config: %s must be %s, got a %s", e->key,
                     type_expect(e, exp, sizeof exp), luaL_typename(L, -1));
        return -1;
    }
    jn_secret_free(*field);
    *field = v;
    return 0;
}

/* Walks the table at the top of the stack, checking every key against the schema. */
static int walk(jn_config *cfg, lua_State *L, const char *prefix, jn_sb *err) {
    lua_pushnil(L);
    while (lua_next(L, -2)) {
        char key[256], val[160], exp[96];
        if (lua_type(L, -2) != LUA_TSTRING) {
            jn_config_describe_value(L, -2, val, sizeof val);
            jn_sb_printf(err, "config: %s has a key %s; keys must be names like \"listen\"",
                         *prefix ? prefix : "the top-level table", val);
            lua_pop(L, 2);
            return -1;
        }
        snprintf(key, sizeof key, "%s%s%s", prefix, *prefix ? "." : "", lua_tostring(L, -2));
        const schema_entry *e = find_entry(key);
        if (!strcmp(key, PIPELINES_KEY) || !strcmp(key, APIS_KEY) || !strcmp(key, SOURCES_KEY) ||
            jn_config_kafka_owns(key)) {
            /* Read by finish(), once the schema keys their defaults come from are final;
             * the Kafka connection's keys there too, with the environment's. */
        } else if (e && e->type == T_SECRET) {
            if (secret_from_lua(cfg, e, L, err) != 0) {
                lua_pop(L, 2);
                return -1;
            }
        } else if (e) {
            if (set_from_lua(cfg, e, L) != 0) {
                jn_config_describe_value(L, -1, val, sizeof val);
                jn_sb_printf(err, "config: %s must be %s, got %s", key,
                             type_expect(e, exp, sizeof exp), val);
                lua_pop(L, 2);
                return -1;
            }
            given(cfg, e);
        } else if (is_section(key)) {
            if (!lua_istable(L, -1)) {
                jn_config_describe_value(L, -1, val, sizeof val);
                jn_sb_printf(err, "config: %s must be a table, got %s", key, val);
                lua_pop(L, 2);
                return -1;
            }
            if (walk(cfg, L, key, err) != 0) {
                lua_pop(L, 2);
                return -1;
            }
        } else {
            const char *s = suggest(key);
            const char *moved = moved_to(key, lua_istable(L, -1), s);
            jn_sb_printf(err, "config: unknown key %s", key);
            if (moved)
                jn_sb_puts(err, moved);
            else if (s)
                jn_sb_printf(err, " (did you mean %s?)", s);
            else
                jn_sb_puts(err, "; `junction --help-config` lists every key");
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* ---- running the file -------------------------------------------------------------- */

/* Limits of one config file. A real one runs a few thousand instructions in well under a
 * millisecond and needs tens of kilobytes, so these sit far above any file that does its
 * job and need no setting of their own. */
#define CONFIG_INSTRUCTIONS 10000000L
#define CONFIG_SECONDS      2
#define CONFIG_MEMORY_MIB   64
/* The hook runs every HOOK_EVERY instructions; one clock read per thousand instructions
 * costs nothing measurable. */
#define HOOK_EVERY 1000

typedef enum { LIMIT_NONE, LIMIT_INSTRUCTIONS, LIMIT_TIME } limit_hit;

/* One run of a config file: the allocator's count and the hook's budget. It is the
 * state's allocator data, so the hook finds it through lua_getallocf. */
typedef struct {
    size_t used, ceiling;
    int memory_refused; /* the allocator turned a request down at least once */
    long budget;        /* instructions left */
    double deadline;    /* monotonic seconds */
    limit_hit hit;
    int line; /* where a limit stopped the file */
} config_run;

static double now_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* realloc/free with a byte count and a ceiling, for the config's state alone: a config is
 * small and loaded once, so it needs no pool. Lua needs freeing and shrinking never to
 * fail, so only growth is refused; Lua then collects garbage and tries once more before
 * raising "not enough memory". used never passes ceiling, so the subtraction is safe. */
static void *config_alloc(void *ud, void *ptr, size_t osize, size_t nsize) {
    config_run *r = ud;
    if (!ptr) osize = 0; /* then osize is the kind of object, not a size */
    if (nsize == 0) {
        free(ptr);
        r->used -= osize;
        return NULL;
    }
    if (nsize > osize && nsize - osize > r->ceiling - r->used) {
        r->memory_refused = 1;
        return NULL;
    }
    void *p = realloc(ptr, nsize);
    if (p) r->used = r->used - osize + nsize;
    return p;
}

static void limit_hook(lua_State *L, lua_Debug *ar);

/* Takes cost from the budget; past a limit, records where the file stopped (at ar, or in
 * the Lua function that called the C function charging) and raises. A pcall in the file
 * would catch the error and let its loop go on, so from then on the hook raises it again
 * on every instruction: the caught error's next instruction outside that pcall ends the
 * file. */
static void spend(lua_State *L, config_run *r, long cost, lua_Debug *ar) {
    if (r->hit == LIMIT_NONE) {
        r->budget -= cost;
        if (r->budget < 0)
            r->hit = LIMIT_INSTRUCTIONS;
        else if (now_s() > r->deadline)
            r->hit = LIMIT_TIME;
        else
            return;
        lua_Debug caller;
        if (!ar && lua_getstack(L, 1, &caller)) ar = &caller;
        if (ar && lua_getinfo(L, "l", ar)) r->line = ar->currentline;
        lua_sethook(L, limit_hook, LUA_MASKCOUNT, 1);
    }
    luaL_error(L, "the config file was stopped at its limit");
}

/* The instruction and time limits: a file that loops would otherwise hang start-up with
 * no output. Both are checked every HOOK_EVERY instructions. */
static void limit_hook(lua_State *L, lua_Debug *ar) {
    void *ud;
    lua_getallocf(L, &ud);
    spend(L, ud, HOOK_EVERY, ar);
}

/* What the bounded string and table functions charge: their work counts against the
 * same budget as instructions, and passing it stops the file the same way. */
static void config_charge(lua_State *L, void *ud, long cost) {
    spend(L, ud, cost, NULL);
}

/* env(name [, default]): the environment variable's value (a string), else default, else
 * nil. Environment variables still override the file's keys after it has run. */
static int config_env(lua_State *L) {
    const char *v = getenv(luaL_checkstring(L, 1));
    if (v)
        lua_pushstring(L, v);
    else
        lua_settop(L, 2);
    return 1;
}

/* setmetatable without finalizers: a __gc runs when the state is closed, after the limits
 * are off, and can run any code there. Lua marks an object for finalizing only when its
 * metatable has __gc as setmetatable is called, so checking here is enough. */
static int config_setmetatable(lua_State *L) {
    if (lua_type(L, 2) == LUA_TTABLE) {
        lua_pushliteral(L, "__gc");
        int has_gc = lua_rawget(L, 2) != LUA_TNIL;
        lua_pop(L, 1);
        if (has_gc)
            return luaL_error(L, "setmetatable: a metatable with __gc is not allowed in a "
                                 "config file (finalizers would run outside its limits); "
                                 "remove the __gc field");
    }
    lua_pushvalue(L, lua_upvalueindex(1)); /* the base library's setmetatable */
    lua_insert(L, 1);
    lua_call(L, lua_gettop(L) - 1, 1);
    return 1;
}

/* _ENV's __index: a name the file reads but never set. */
static int config_undefined(lua_State *L) {
    const char *k = lua_tostring(L, 2);
    return luaL_error(L,
                      "`%s` is not available in a config file (it is data: use env(name, "
                      "default) for environment variables; there are string, table, math, "
                      "utf8 and the basic functions such as pairs, ipairs, tostring, "
                      "tonumber, type, error, assert, pcall and setmetatable)",
                      k ? k : "?");
}

/* Copies the library table on top of the stack into env[name] and pops it: a copy, so
 * what the file does to its string table stays out of the string metatable's. */
static void copy_library(lua_State *L, int env, const char *name) {
    lua_newtable(L);
    lua_pushnil(L);
    while (lua_next(L, -3)) {
        lua_pushvalue(L, -2);
        lua_insert(L, -2);
        lua_rawset(L, -4);
    }
    lua_setfield(L, env, name);
    lua_pop(L, 1);
}

/* Pushes the environment the file runs in. Only the libraries it may use are opened at
 * all; the base library still puts load, loadfile, dofile, collectgarbage and print in
 * the state's globals, which the file never sees: its _ENV is this table. */
static void push_sandbox(lua_State *L, jn_script_meter *meter) {
    static const char *const base[] = {
        "assert",   "error", "ipairs",   "next",   "pairs",  "pcall",  "select",       "tonumber",
        "tostring", "type",  "rawequal", "rawget", "rawlen", "rawset", "getmetatable", NULL,
    };
    lua_newtable(L);
    int env = lua_gettop(L);
    luaL_requiref(L, LUA_GNAME, luaopen_base, 0);
    for (const char *const *n = base; *n; n++) {
        lua_getfield(L, -1, *n);
        lua_setfield(L, env, *n);
    }
    lua_getfield(L, -1, "setmetatable");
    lua_pushcclosure(L, config_setmetatable, 1);
    lua_setfield(L, env, "setmetatable");
    lua_pop(L, 1);
    lua_pushcfunction(L, config_env);
    lua_setfield(L, env, "env");

    /* string.dump goes from the shared table too, since ("").dump reaches it through
     * the string metatable, which is then hidden like the scripts' one. */
    luaL_requiref(L, LUA_STRLIBNAME, luaopen_string, 0);
    lua_pushnil(L);
    lua_setfield(L, -2, "dump");
    /* Pattern matching and string.rep run without hook ticks: the bounded versions
     * charge their work to the same instruction budget. */
    jn_script_strlib_install(L, lua_absindex(L, -1), 0, meter);
    copy_library(L, env, LUA_STRLIBNAME);
    lua_pushliteral(L, "");
    lua_getmetatable(L, -1);
    lua_pushboolean(L, 0);
    lua_setfield(L, -2, "__metatable");
    lua_pop(L, 2);
    luaL_requiref(L, LUA_TABLIBNAME, luaopen_table, 0);
    jn_script_strlib_install(L, 0, lua_absindex(L, -1), meter);
    copy_library(L, env, LUA_TABLIBNAME);
    luaL_requiref(L, LUA_MATHLIBNAME, luaopen_math, 0);
    copy_library(L, env, LUA_MATHLIBNAME);
    luaL_requiref(L, LUA_UTF8LIBNAME, luaopen_utf8, 0);
    copy_library(L, env, LUA_UTF8LIBNAME);

    lua_newtable(L);
    lua_pushcfunction(L, config_undefined);
    lua_setfield(L, -2, "__index");
    lua_pushboolean(L, 0); /* so setmetatable(_ENV, ...) cannot take __index away */
    lua_setfield(L, -2, "__metatable");
    lua_setmetatable(L, env);
}

/* 10000000 → "10,000,000". */
static void with_commas(long n, char *buf, size_t size) {
    char digits[32];
    int len = snprintf(digits, sizeof digits, "%ld", n);
    size_t o = 0;
    for (int i = 0; i < len && o + 1 < size; i++) {
        if (i > 0 && (len - i) % 3 == 0 && o + 2 < size) buf[o++] = ',';
        buf[o++] = digits[i];
    }
    buf[o] = '\0';
}

/* Why the file did not load, in one message naming it, what went wrong and what to do.
 * The error value is on top of the stack. */
static void describe_failure(lua_State *L, const config_run *r, const char *path, int loaded,
                             jn_sb *e) {
    const char *msg = lua_tostring(L, -1);
    char n[32];
    if (r->hit == LIMIT_INSTRUCTIONS) {
        with_commas(CONFIG_INSTRUCTIONS, n, sizeof n);
        jn_sb_printf(e,
                     "config: %s ran past %s instructions, stopped at line %d (a loop that "
                     "never ends?); a config file only returns a table",
                     path, n, r->line);
    } else if (r->hit == LIMIT_TIME) {
        jn_sb_printf(e,
                     "config: %s ran longer than %d s, stopped at line %d (a loop that never "
                     "ends?); a config file only returns a table",
                     path, CONFIG_SECONDS, r->line);
    } else if (r->memory_refused && msg && strstr(msg, "not enough memory")) {
        /* Lua raises this itself, or lauxlib's buffers do; either way it is our ceiling. */
        jn_sb_printf(e,
                     "config: %s used more than %d MiB of memory (a string or table that "
                     "keeps growing?); a config file only returns a table of settings",
                     path, CONFIG_MEMORY_MIB);
    } else if (!loaded || !msg) {
        jn_sb_printf(e, "config: cannot load %s: %s", path,
                     msg ? msg
                         : "it raised an error that is not a string (pass error() a "
                           "message)");
        if (msg && strstr(msg, "cannot open"))
            jn_sb_puts(e, " (pass an existing file with --config FILE)");
    } else {
        /* Runtime errors start with "path:line:" unless raised at level 0 or the path
         * was too long for Lua's chunk name. */
        size_t len = strlen(path);
        if (!strncmp(msg, path, len) && msg[len] == ':')
            jn_sb_printf(e, "config: %s", msg);
        else
            jn_sb_printf(e, "config: %s: %s", path, msg);
    }
}

/* Environment variables override the file's keys. */
static int apply_environment(jn_config *cfg, jn_sb *e) {
    for (size_t i = 0; i < NSCHEMA; i++) {
        const schema_entry *s = &schema[i];
        if (s->type == T_SECRET && s->env) {
            char *v = NULL;
            int rc = jn_secret_from_env(s->key, s->env, &v, e);
            if (rc < 0) return -1;
            if (rc == 1) {
                char **field = (char **)((char *)cfg + s->offset);
                jn_secret_free(*field);
                *field = v;
            }
            continue;
        }
        const char *v = s->env ? getenv(s->env) : NULL;
        if (!v) continue;
        if (set_from_string(cfg, s, v) != 0) {
            char exp[96];
            jn_sb_printf(e, "environment: %s (for %s) must be %s, got \"%s\"", s->env, s->key,
                         type_expect(s, exp, sizeof exp), v);
            return -1;
        }
        given(cfg, s);
    }
    return 0;
}

/* What follows the file's keys: the environment, then the sources, pipelines and APIs,
 * whose left-out keys take producer.*, consumer.* and api.* values the environment may
 * have set, so they are read with the file's state (L, its table on top; NULL without a
 * file) still open. A section the file leaves out is empty: the role that needs it says
 * so when it starts. */
static void finish(jn_config *cfg, lua_State *L, jn_sb *e) {
    if (apply_environment(cfg, e) != 0 || jn_config_kafka_load(cfg, L, e) != 0 || !L) return;
    lua_pushliteral(L, SOURCES_KEY);
    if (lua_rawget(L, -2) != LUA_TNIL) jn_config_sources_load(cfg, L, -1, e);
    lua_pop(L, 1);
    if (e->len) return;
    lua_pushliteral(L, PIPELINES_KEY);
    if (lua_rawget(L, -2) != LUA_TNIL) jn_config_pipelines_load(cfg, L, -1, e);
    lua_pop(L, 1);
    if (e->len) return;
    lua_pushliteral(L, APIS_KEY);
    if (lua_rawget(L, -2) != LUA_TNIL) jn_config_apis_load(cfg, L, -1, e);
    lua_pop(L, 1);
}

/* Runs the file in its sandbox under the limits, applies the table it returns, then
 * finishes. Errors go to e. */
static void load_file(jn_config *cfg, const char *path, jn_sb *e) {
    config_run run = {
        .ceiling = (size_t)CONFIG_MEMORY_MIB << 20,
        .budget = CONFIG_INSTRUCTIONS,
    };
    lua_State *L = lua_newstate(config_alloc, &run);
    if (!L) abort();
    lua_atpanic(L, jn_lua_alloc_panic);
    jn_script_meter meter = {config_charge, &run};
    push_sandbox(L, &meter);
    int loaded = luaL_loadfilex(L, path, "t") == LUA_OK;
    int ok = 0;
    if (loaded) {
        lua_pushvalue(L, -2);
        lua_setupvalue(L, -2, 1); /* a main chunk's only upvalue is its _ENV */
        run.deadline = now_s() + CONFIG_SECONDS;
        lua_sethook(L, limit_hook, LUA_MASKCOUNT, HOOK_EVERY);
        ok = lua_pcall(L, 0, 1, 0) == LUA_OK;
        lua_sethook(L, NULL, 0, 0);
    }
    /* The file has ended: reading its table below runs no Lua code, and must not fail
     * for memory outside a pcall (converting a number to a string allocates). */
    run.ceiling = SIZE_MAX;
    /* A limit counts even when the file returned: `return pcall(f)` tail-calls pcall, and
     * the chunk ends with no instruction left to raise the error again. */
    if (!ok || run.hit != LIMIT_NONE) {
        describe_failure(L, &run, path, loaded, e);
    } else if (!lua_istable(L, -1)) {
        jn_sb_printf(e,
                     "config: %s must return a table, got a %s (end the file with "
                     "`return { ... }`)",
                     path, luaL_typename(L, -1));
    } else if (walk(cfg, L, "", e) == 0) {
        finish(cfg, L, e);
    }
    lua_close(L);
}

int jn_config_load(jn_config *cfg, const char *path, char **err) {
    memset(cfg, 0, sizeof *cfg);
    jn_sb e;
    jn_sb_init(&e);
    for (size_t i = 0; i < NSCHEMA; i++)
        set_from_string(cfg, &schema[i], schema[i].def);

    if (path) {
        cfg->path = strdup(path);
        load_file(cfg, path, &e);
    } else {
        finish(cfg, NULL, &e);
    }
    if (e.len) goto fail;
    if (strcmp(cfg->consumer.dedupe_layout, "keys") &&
        strcmp(cfg->consumer.dedupe_layout, "buckets")) {
        jn_sb_printf(&e,
                     "config: consumer.dedupe_layout must be \"keys\" or \"buckets\", got \"%s\"",
                     cfg->consumer.dedupe_layout);
        goto fail;
    }
    if (cfg->redis.tls) {
        /* The seam: redis.c connects with redisAsyncConnect; a hiredis with hiredis_ssl
         * would wrap that connection (redisInitiateSSLWithContext) right after it. */
        jn_sb_puts(&e, "config: redis.tls = true, but this build's hiredis (0.14, Debian 12's) "
                       "cannot speak TLS; run a TLS proxy such as stunnel beside junction and "
                       "point redis.host and redis.port at it, or build junction against "
                       "hiredis 1.0 or later with hiredis_ssl");
        goto fail;
    }
    return 0;

fail:
    *err = jn_sb_steal(&e);
    jn_config_free(cfg);
    return -1;
}

/* Each command's admin port when the config gives none. `run` keeps 8000, which people
 * and scripts know; each role alone has one of its own beside it, clear of the mock
 * APIs' 8081 and 8082 and the receiver's 8083, so `junction api`, `produce`, `consume`
 * and `analytics` started in four terminals all come up. */
static const struct {
    const char *command;
    int port;
} admin_ports[] = {
    {"run", 8000}, {"api", 8001}, {"produce", 8002}, {"consume", 8003}, {"analytics", 8004}};

int jn_config_admin_port(const char *command) {
    for (size_t i = 0; i < sizeof admin_ports / sizeof admin_ports[0]; i++)
        if (!strcmp(command, admin_ports[i].command)) return admin_ports[i].port;
    return -1;
}

int jn_config_for_command(jn_config *cfg, const char *command) {
    int port = jn_config_admin_port(command);
    if (port < 0) return -1;
    if (!cfg->admin.listen_given) cfg->admin.listen.port = port;
    return 0;
}

void jn_config_free(jn_config *cfg) {
    for (size_t i = 0; i < NSCHEMA; i++)
        if (schema[i].type == T_STR || schema[i].type == T_OPTSTR || schema[i].type == T_SECRET) {
            char **p = (char **)((char *)cfg + schema[i].offset);
            if (schema[i].type == T_SECRET)
                jn_secret_free(*p);
            else
                free(*p);
            *p = NULL;
        }
    free(cfg->path);
    cfg->path = NULL;
    jn_config_kafka_free(cfg);
    jn_config_pipelines_free(cfg);
    jn_config_apis_free(cfg);
    jn_config_sources_free(cfg);
}

void jn_config_describe(void) {
    char exp[96];
    printf("%-36s %-24s %-34s %s\n", "KEY", "DEFAULT", "ENVIRONMENT", "MEANING");
    for (size_t i = 0; i < NSCHEMA; i++) {
        const schema_entry *s = &schema[i];
        printf("%-36s %-24s %-34s %s (%s)\n", s->key, s->def, s->env ? s->env : "-", s->doc,
               type_expect(s, exp, sizeof exp));
    }
    jn_config_kafka_describe();
    jn_config_sources_describe();
    jn_config_pipelines_describe();
    jn_config_apis_describe();
}
