/* The `pipelines` section of the config file: which topics each pipeline reads (streams
 * and tables), the transform it runs them through and the sinks its records go to. A
 * file without the section gets one pipeline built from the consumer.* keys, which is the
 * seed's consumer exactly.
 *
 * The section is the file's own data, so it is read raw (lua_rawget, lua_next): an
 * __index or __pairs of the file's would otherwise run after its limits are off. Every
 * level checks its keys against a list, like config.c's schema, so a typo is an error
 * with a suggestion rather than a setting quietly left at its default. Header values may
 * come from the environment or from files (container secrets); no message ever shows a
 * header's value, wherever it came from. */
#include "config_pipeline.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "secret.h"

/* Names become hooks (on.<name>), metric labels and parts of group and topic names; 64
 * characters is plenty and keeps every message's key readable. */
#define NAME_MAX_LEN 64
#define TEXT_(x)     #x
#define TEXT(x)      TEXT_(x)
#define UP_TO_MAX    "up to " TEXT(NAME_MAX_LEN) " characters"
/* What the seed's consumer marks processed records with in Redis. */
#define DEDUPE_PREFIX "processed:"
#define COUNT(a)      (sizeof(a) / sizeof((a)[0]))
/* Room for the dotted key of a message, pipelines.<p>.sinks.<k>.headers.<H>: names are
 * 64 characters at most, so only a header name of hundreds is cut short. */
#define PATH_LEN 320

/* One key of one level of the section. The lists are what the unknown-key check accepts
 * and what --help-config prints. */
typedef struct {
    const char *key;
    const char *def;  /* as --help-config shows it; NULL: the value of `from` */
    const char *from; /* integers: the consumer.* key giving the default and the range */
    size_t offset;    /* of such an integer in the level's struct */
    const char *doc;
} pkey;

typedef struct {
    const pkey *keys;
    size_t n;
    const char *what; /* for "<what> takes a, b, c" */
} level;

#define PIPE(f) offsetof(jn_pipeline_config, f)
#define SINK(f) offsetof(jn_sink_config, f)
/* clang-format off */
static const pkey pipeline_keys[] = {
    {"name", "required", NULL, 0, "letters, digits, _ and -, " UP_TO_MAX ", unique; in the map form, the key"},
    {"group_id", "junction-<name>", NULL, 0, "Kafka consumer group of the pipeline's streams, its own"},
    {"auto_offset_reset", "consumer.auto_offset_reset", NULL, 0, "where a new group starts: earliest or latest"},
    {"transform", "required", NULL, 0, "path of the transform script, with a hook on.<input> per stream and table"},
    {"dead_letter_topic", "consumer.dead_letter_topic", NULL, 0, "where messages that can never be delivered go"},
    {"dedupe", "true", NULL, 0, "skip records processed before: true, false or a table (dedupe.* below)"},
    {"max_pending", NULL, "consumer.max_pending", PIPE(max_pending), "messages read but not yet settled before the pipeline stops taking more"},
    {"hold_ms", NULL, "consumer.hold_ms", PIPE(hold_ms), "longest a record is held waiting for table data"},
    {"hold_max", NULL, "consumer.hold_max", PIPE(hold_max), "records held at once"},
    {"streams", "required", NULL, 0, "name -> topic or table (streams.* below): consumed as a group member, each message settled, then committed"},
    {"tables", "none", NULL, 0, "name -> topic or table (tables.* below): read whole into the transform's state, then followed"},
    {"sinks", "required", NULL, 0, "name -> table (sinks.* below): where the transform's records go"},
};
static const pkey dedupe_keys[] = {
    {"enabled", "true", NULL, 0, "false turns de-duplication off, as dedupe = false does"},
    {"ttl_s", NULL, "consumer.dedupe_ttl_s", PIPE(dedupe_ttl_s), "lifetime of the marks in Redis"},
    {"prefix", DEDUPE_PREFIX, NULL, 0, "Redis key prefix of the marks; each pipeline de-duplicating needs its own"},
};
static const pkey stream_keys[] = {
    {"topic", "required", NULL, 0, "Kafka topic; `<s> = \"topic\"` is short for { topic = \"topic\" }"},
    {"changelog", "false", NULL, 0, "compacted topic restoring the transform's per-key state: true for \"<group_id>-<s>-changelog\", a topic, or \"auto\": the stream topic itself when it is compacted, else the former"},
};
static const pkey table_keys[] = {
    {"topic", "required", NULL, 0, "Kafka topic; `<t> = \"topic\"` is short for { topic = \"topic\" }"},
};
static const pkey http_keys[] = {
    {"type", "required", NULL, 0, "\"http\": POST batches of records as JSON"},
    {"url", "required", NULL, 0, "http:// or https:// URL the batches are POSTed to"},
    {"headers", "none", NULL, 0, "header name -> a string, or a table (headers.<H>.* below)"},
    {"batch_size", NULL, "consumer.batch_size", SINK(batch_size), "records per POST"},
    {"linger_ms", NULL, "consumer.linger_ms", SINK(linger_ms), "longest wait to fill a batch"},
    {"max_inflight", NULL, "consumer.max_inflight_batches", SINK(max_inflight), "POSTs in flight at once"},
    {"timeout_ms", NULL, "consumer.request_timeout_ms", SINK(timeout_ms), "time one POST may take"},
    {"retry_base_ms", NULL, "consumer.retry_base_ms", SINK(retry_base_ms), "ceiling of the first retry delay of a POST"},
    {"retry_max_ms", NULL, "consumer.retry_max_ms", SINK(retry_max_ms), "cap of the retry delay of a POST"},
    {"ca_file", "system's", NULL, 0, "PEM file of the certificate authorities to trust"},
    {"verify_tls", "true", NULL, 0, "check the server's certificate and name"},
};
static const pkey kafka_keys[] = {
    {"type", "required", NULL, 0, "\"kafka\": produce each record to a topic"},
    {"topic", "required", NULL, 0, "Kafka topic the records go to"},
    {"key", "id", NULL, 0, "record field whose value keys the Kafka message"},
};
static const pkey secret_keys[] = {
    {"env", "-", NULL, 0, "environment variable holding the value; when unset, <env>_FILE names a file holding it"},
    {"file", "-", NULL, 0, "regular file holding the value, " TEXT(JN_SECRET_MAX_BYTES) " bytes at most (a trailing line break is dropped)"},
    {"prefix", "\"\"", NULL, 0, "written before the value, e.g. \"Bearer \""},
};
/* clang-format on */

#define LEVEL(keys, what)                                                                          \
    { keys, COUNT(keys), what }
static const level pipeline_level = LEVEL(pipeline_keys, "a pipeline");
static const level dedupe_level = LEVEL(dedupe_keys, "dedupe");
static const level stream_level = LEVEL(stream_keys, "a stream");
static const level table_level = LEVEL(table_keys, "a table");
static const level http_level = LEVEL(http_keys, "an http sink");
static const level kafka_level = LEVEL(kafka_keys, "a kafka sink");
static const level secret_level = LEVEL(secret_keys, "a header value table");

/* The file's state, the config whose consumer.* values are the defaults, and the error. */
typedef struct {
    lua_State *L;
    const jn_config *cfg;
    jn_sb *err;
} reader;

/* at.key into out, marked with "..." when cut short. */
static void subpath(char out[PATH_LEN], const char *at, const char *key) {
    if (snprintf(out, PATH_LEN, "%s.%s", at, key) >= PATH_LEN) strcpy(out + PATH_LEN - 4, "...");
}

/* ---- values ------------------------------------------------------------------------ */

/* Pushes t[key], raw, and returns its type. */
static int field(lua_State *L, int t, const char *key) {
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

/* The value on top of the stack if it is a non-empty string without NUL bytes. */
static const char *plain_string(lua_State *L) {
    size_t len;
    if (lua_type(L, -1) != LUA_TSTRING) return NULL;
    const char *s = lua_tolstring(L, -1, &len);
    return len && strlen(s) == len ? s : NULL;
}

/* Appends "config: <at>.<key> must be <what> (<why>), got <value>" for the value on top
 * (nil: missing, said without "got"), pops it and returns -1. Never for header values. */
static int bad_value(reader *r, const char *at, const char *key, const char *what,
                     const char *why) {
    jn_sb_printf(r->err, "config: %s.%s must be %s", at, key, what);
    if (why) jn_sb_printf(r->err, " (%s)", why);
    if (!lua_isnil(r->L, -1)) {
        char val[160];
        jn_config_describe_value(r->L, -1, val, sizeof val);
        jn_sb_printf(r->err, ", got %s", val);
    }
    lua_pop(r->L, 1);
    return -1;
}

/* Takes the string on top (popping it) into *out. */
static int take_string(reader *r, const char *at, const char *key, const char *why, char **out) {
    const char *s = plain_string(r->L);
    if (!s) return bad_value(r, at, key, "a non-empty string", why);
    *out = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

/* t[key], which must be there; why says what it is for. */
static int req_string(reader *r, int t, const char *at, const char *key, const char *why,
                      char **out) {
    field(r->L, t, key);
    return take_string(r, at, key, why, out);
}

/* t[key], or a copy of def (NULL: none) when absent. */
static int opt_string(reader *r, int t, const char *at, const char *key, const char *def,
                      char **out) {
    if (field(r->L, t, key) == LUA_TNIL) {
        lua_pop(r->L, 1);
        *out = def ? strdup(def) : NULL;
        return 0;
    }
    return take_string(r, at, key, NULL, out);
}

static int read_bool(reader *r, int t, const char *at, const char *key, int def, int *out) {
    int type = field(r->L, t, key);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        return bad_value(r, at, key, "true or false", NULL);
    *out = type == LUA_TNIL ? def : lua_toboolean(r->L, -1);
    lua_pop(r->L, 1);
    return 0;
}

/* A consumer.* key a level's integer defaults to: the tables above name only integer
 * schema keys, so a miss is a mistake in them. */
static void inherit(const jn_config *cfg, const char *from, int *value, int *min, int *max) {
    if (jn_config_int_key(cfg, from, value, min, max) != 0) {
        fprintf(stderr, "config_pipeline: %s is not an integer key of the schema\n", from);
        abort();
    }
}

/* Sets a level's integers to the consumer.* values they default to. */
static void fill_inherited(const jn_config *cfg, const level *lv, void *base) {
    for (size_t i = 0; i < lv->n; i++) {
        int min, max;
        if (lv->keys[i].from)
            inherit(cfg, lv->keys[i].from, (int *)((char *)base + lv->keys[i].offset), &min, &max);
    }
}

/* A level's integers: given ones checked against their consumer.* key's range, the rest
 * that key's value. */
static int read_inherited(reader *r, int t, const char *at, const level *lv, void *base) {
    for (size_t i = 0; i < lv->n; i++) {
        const pkey *k = &lv->keys[i];
        if (!k->from) continue;
        int *slot = (int *)((char *)base + k->offset), min, max, isint = 0;
        inherit(r->cfg, k->from, slot, &min, &max);
        if (field(r->L, t, k->key) == LUA_TNIL) {
            lua_pop(r->L, 1);
            continue;
        }
        lua_Integer v = lua_type(r->L, -1) == LUA_TNUMBER ? lua_tointegerx(r->L, -1, &isint) : 0;
        if (!isint || v < min || v > max) {
            char what[64];
            snprintf(what, sizeof what, "an integer from %d to %d", min, max);
            return bad_value(r, at, k->key, what, NULL);
        }
        *slot = (int)v;
        lua_pop(r->L, 1);
    }
    return 0;
}

/* ---- keys and names -------------------------------------------------------------------- */

static int is_letter(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c) {
    return c >= '0' && c <= '9';
}

/* Input and sink names are the transform's hooks (on.<name>), so Lua names; pipeline
 * names go into group and topic names, where - is usual. */
static int is_name(const char *s, int pipeline) {
    size_t len = strlen(s);
    if (len == 0 || len > NAME_MAX_LEN || (!pipeline && is_digit(s[0]))) return 0;
    for (const char *c = s; *c; c++)
        if (!is_letter(*c) && !is_digit(*c) && !(pipeline && *c == '-')) return 0;
    return 1;
}

static void list_keys(jn_sb *sb, const level *lv) {
    for (size_t i = 0; i < lv->n; i++)
        jn_sb_printf(sb, "%s%s", i ? ", " : "", lv->keys[i].key);
}

/* The key of lv nearest to key, if near enough to be a typo of it: one edit, and one more
 * per four letters; more on a short word makes another word ("url" is not "key"). */
static const char *nearest_key(const level *lv, const char *key) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < lv->n; i++) {
        size_t d = jn_config_edit_distance(key, lv->keys[i].key);
        if (d <= 1 + strlen(lv->keys[i].key) / 4 && d < best_d) best_d = d, best = lv->keys[i].key;
    }
    return best;
}

static void unknown_key(reader *r, const char *at, const char *key, const level *lv) {
    const char *near = nearest_key(lv, key);
    jn_sb_printf(r->err, "config: unknown key %s.%s", at, key);
    if (near) {
        jn_sb_printf(r->err, " (did you mean %s.%s?)", at, near);
        return;
    }
    jn_sb_printf(r->err, "; %s takes ", lv->what);
    list_keys(r->err, lv);
}

/* Every key of the table at t must be one of lv's: a typo would otherwise leave a setting
 * at its default without a word. */
static int check_keys(reader *r, int t, const char *at, const level *lv) {
    lua_State *L = r->L;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t len = 0, i = 0;
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (key && strlen(key) != len) key = NULL; /* a NUL inside: no key of ours */
        while (key && i < lv->n && strcmp(key, lv->keys[i].key))
            i++;
        if (!key || i == lv->n) {
            if (key) {
                unknown_key(r, at, key, lv);
            } else {
                char val[160];
                jn_config_describe_value(L, -2, val, sizeof val);
                jn_sb_printf(r->err, "config: %s has a key %s; %s takes ", at, val, lv->what);
                list_keys(r->err, lv);
            }
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The keys of the map at t, sorted so the order of what they name does not hang on the
 * hash table; -1 after the error when one is not a string. */
static int sorted_keys(reader *r, int t, const char *at, const char *hint, char ***out, int *n) {
    lua_State *L = r->L;
    char **names = NULL;
    int count = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t len = 0;
        const char *k = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (!k || strlen(k) != len) {
            char val[160];
            jn_config_describe_value(L, -2, val, sizeof val);
            jn_sb_printf(r->err, "config: %s has a key %s; %s", at, val, hint);
            lua_pop(L, 2);
            free_names(names, count);
            return -1;
        }
        names = realloc(names, (size_t)(count + 1) * sizeof *names);
        names[count++] = strdup(k);
        lua_pop(L, 1);
    }
    if (count) qsort(names, (size_t)count, sizeof *names, compare_names);
    *out = names;
    *n = count;
    return 0;
}

/* ---- header values ------------------------------------------------------------------- */

/* The value of the environment variable var or, when it is unset, of the file var_FILE
 * names; unset both is an error here (the config asked for it). */
static int secret_from_env(reader *r, const char *at, const char *var, char **out) {
    int rc = jn_secret_from_env(at, var, out, r->err);
    if (rc == 0)
        jn_sb_printf(r->err,
                     "config: %s: the environment variable %s is not set, nor is %s_FILE (the "
                     "path of a file holding the value); set one of them",
                     at, var, var);
    return rc == 1 ? 0 : -1;
}

/* A header table's prefix ("Bearer "): a string of one line, "" when absent. */
static int read_prefix(reader *r, int t, const char *at, char **out) {
    int type = field(r->L, t, "prefix");
    size_t len = 0;
    const char *s = type == LUA_TSTRING ? lua_tolstring(r->L, -1, &len) : "";
    if (type != LUA_TNIL && (type != LUA_TSTRING || strcspn(s, "\r\n") != len)) {
        jn_sb_printf(r->err,
                     "config: %s.prefix must be a string of one line, such as \"Bearer \", got "
                     "a %s",
                     at, luaL_typename(r->L, -1));
        lua_pop(r->L, 1);
        return -1;
    }
    *out = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

/* { env = NAME } or { file = PATH }: where the value is kept out of the config file. */
static int secret_from_table(reader *r, int t, const char *at, char **out) {
    lua_State *L = r->L;
    int has_env = field(L, t, "env") != LUA_TNIL;
    int has_file = field(L, t, "file") != LUA_TNIL;
    lua_pop(L, 2);
    if (has_env == has_file) {
        jn_sb_printf(r->err, "config: %s %s", at,
                     has_env ? "takes env or file, not both"
                             : "needs env = \"NAME\" (an environment variable) or file = "
                               "\"/path\" (a file) holding the value");
        return -1;
    }
    char *src = NULL;
    if (req_string(r, t, at, has_env ? "env" : "file",
                   has_env ? "the name of an environment variable" : "the path of a file",
                   &src) != 0)
        return -1;
    int rc;
    if (has_env && !is_name(src, 0)) {
        /* Not echoed: a value put here by mistake would be the secret itself. */
        jn_sb_printf(r->err,
                     "config: %s.env must be the name of an environment variable (letters, "
                     "digits and _, " UP_TO_MAX "), not the value",
                     at);
        rc = -1;
    } else {
        rc = has_env ? secret_from_env(r, at, src, out)
                     : jn_secret_from_file(at, src, NULL, out, r->err);
    }
    free(src);
    return rc;
}

/* A header value written into the file itself. */
static int literal_value(reader *r, const char *at, char **out) {
    size_t len;
    const char *s = lua_tolstring(r->L, -1, &len);
    if (jn_secret_check(at, "the value in the config file", s, len, r->err) != 0) return -1;
    *out = strdup(s);
    return 0;
}

/* "Name: <prefix><value>" */
static char *header_line(const char *name, const char *prefix, const char *value) {
    size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
    char *line = malloc(n);
    snprintf(line, n, "%s: %s%s", name, prefix, value);
    return line;
}

/* { env = NAME | file = PATH [, prefix = "Bearer "] } */
static int header_from_table(reader *r, int t, const char *at, char **prefix, char **value) {
    if (check_keys(r, t, at, &secret_level) || read_prefix(r, t, at, prefix) ||
        secret_from_table(r, t, at, value))
        return -1;
    return 0;
}

/* One header of the headers table at t: a string, or { env | file [, prefix] }. */
static int read_header(reader *r, int t, const char *at, const char *name, char **line) {
    lua_State *L = r->L;
    char here[PATH_LEN];
    subpath(here, at, name);
    int type = field(L, t, name);
    char *value = NULL, *prefix = NULL;
    int rc = -1;
    if (type == LUA_TSTRING)
        rc = literal_value(r, here, &value);
    else if (type == LUA_TTABLE)
        rc = header_from_table(r, lua_gettop(L), here, &prefix, &value);
    else
        jn_sb_printf(r->err,
                     "config: %s must be a string, or { env = \"NAME\" } or { file = \"/path\" } "
                     "with an optional prefix, got a %s",
                     here, luaL_typename(L, -1));
    lua_pop(L, 1);
    if (rc == 0) *line = header_line(name, prefix ? prefix : "", value);
    jn_secret_free(value);
    free(prefix);
    return rc;
}

/* RFC 9110's token: what a header name may be made of. */
static int is_token(const char *s) {
    if (!*s) return 0;
    for (; *s; s++)
        if (!is_letter(*s) && !is_digit(*s) && !strchr("!#$%&'*+-.^`|~", *s)) return 0;
    return 1;
}

/* The sink's headers as "Name: value" lines, NULL-terminated (empty without headers). */
static int read_headers(reader *r, int t, const char *at, jn_sink_config *s) {
    lua_State *L = r->L;
    int type = field(L, t, "headers");
    if (type != LUA_TNIL && type != LUA_TTABLE) {
        /* The type alone: a string here is likely a header with its secret. */
        jn_sb_printf(r->err, "config: %s.headers must be a table, header name -> value, got a %s",
                     at, luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    char here[PATH_LEN], **names = NULL;
    int n = 0, rc = 0;
    subpath(here, at, "headers");
    if (type == LUA_TTABLE &&
        sorted_keys(r, lua_gettop(L), here, "name each header: { Authorization = ... }", &names,
                    &n) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    s->headers = calloc((size_t)n + 1, sizeof *s->headers);
    for (int i = 0; i < n && rc == 0; i++) {
        if (!is_token(names[i])) {
            jn_sb_printf(r->err,
                         "config: %s has a header named \"%s\"; a header name is letters, "
                         "digits and !#$%%&'*+-.^_`|~",
                         here, names[i]);
            rc = -1;
        } else {
            rc = read_header(r, lua_gettop(L), here, names[i], &s->headers[i]);
        }
    }
    free_names(names, n);
    lua_pop(L, 1);
    return rc;
}

/* ---- sinks --------------------------------------------------------------------------- */

#define SINK_NAME_RULE                                                                             \
    "a sink's name is what the transform routes records to: letters, digits and _, not "           \
    "starting with a digit, " UP_TO_MAX

static int bad_name(reader *r, const char *at, const char *kind, const char *name,
                    const char *rule) {
    jn_sb_printf(r->err, "config: %s has %s named \"%s\"; %s", at, kind, name, rule);
    return -1;
}

static int read_http_sink(reader *r, int t, const char *at, jn_sink_config *s) {
    s->type = JN_SINK_HTTP;
    if (check_keys(r, t, at, &http_level) ||
        req_string(r, t, at, "url", "an http sink needs the URL to POST to", &s->url))
        return -1;
    /* The URL is not echoed: it may carry credentials. */
    if (strncasecmp(s->url, "http://", 7) && strncasecmp(s->url, "https://", 8)) {
        jn_sb_printf(r->err,
                     "config: %s.url must start with http:// or https:// (an http sink needs the "
                     "URL to POST to)",
                     at);
        return -1;
    }
    if (read_headers(r, t, at, s) || read_inherited(r, t, at, &http_level, s) ||
        opt_string(r, t, at, "ca_file", NULL, &s->ca_file) ||
        read_bool(r, t, at, "verify_tls", 1, &s->verify_tls))
        return -1;
    return 0;
}

static int read_kafka_sink(reader *r, int t, const char *at, jn_sink_config *s) {
    s->type = JN_SINK_KAFKA;
    if (check_keys(r, t, at, &kafka_level) ||
        req_string(r, t, at, "topic", "a kafka sink needs the topic to produce to", &s->topic) ||
        opt_string(r, t, at, "key", "id", &s->key_field))
        return -1;
    return 0;
}

/* sinks[name] of the sinks table at t, whose type says which keys it takes. */
static int read_sink(reader *r, int t, const char *at, const char *name, jn_sink_config *s) {
    lua_State *L = r->L;
    if (!is_name(name, 0)) return bad_name(r, at, "a sink", name, SINK_NAME_RULE);
    s->name = strdup(name);
    if (field(L, t, name) != LUA_TTABLE)
        return bad_value(r, at, name, "a table with a type, \"http\" or \"kafka\"", NULL);
    char here[PATH_LEN];
    subpath(here, at, name);
    int v = lua_gettop(L), rc;
    field(L, v, "type");
    const char *type = plain_string(L);
    if (type && !strcmp(type, "http")) {
        lua_pop(L, 1);
        rc = read_http_sink(r, v, here, s);
    } else if (type && !strcmp(type, "kafka")) {
        lua_pop(L, 1);
        rc = read_kafka_sink(r, v, here, s);
    } else {
        rc = bad_value(r, here, "type", "\"http\" or \"kafka\"",
                       "what the sink does: POST batches of records, or produce them to a topic");
    }
    lua_pop(L, 1);
    return rc;
}

/* The name -> ... map of a section (streams, tables, sinks) of the pipeline at t: its
 * sorted names, and 1 with the map pushed; 0 with nothing pushed and no names when the
 * section is absent; -1 after an error. */
static int open_map(reader *r, int t, const char *at, const char *key, const char *hint,
                    char ***names, int *n) {
    char here[PATH_LEN];
    subpath(here, at, key);
    *names = NULL;
    *n = 0;
    int type = field(r->L, t, key);
    if (type == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    if (type != LUA_TTABLE) return bad_value(r, at, key, "a table, name -> ...", hint);
    if (sorted_keys(r, lua_gettop(r->L), here, hint, names, n) != 0) {
        lua_pop(r->L, 1);
        return -1;
    }
    return 1;
}

static int read_sinks(reader *r, int t, const char *at, jn_pipeline_config *p) {
    char **names, here[PATH_LEN];
    int n, opened =
               open_map(r, t, at, "sinks", "name each sink: { out = { type = ... } }", &names, &n);
    if (opened < 0) return -1;
    subpath(here, at, "sinks");
    int rc = 0;
    if (n == 0) {
        jn_sb_printf(r->err,
                     "config: %s is missing or empty; a pipeline needs a sink for its records, "
                     "e.g. sinks = { out = { type = \"kafka\", topic = \"out\" } }",
                     here);
        rc = -1;
    }
    p->sinks = calloc((size_t)n + 1, sizeof *p->sinks);
    p->nsinks = n;
    for (int i = 0; i < n && rc == 0; i++)
        rc = read_sink(r, lua_gettop(r->L), here, names[i], &p->sinks[i]);
    free_names(names, n);
    if (opened) lua_pop(r->L, 1);
    return rc;
}

/* ---- streams and tables ------------------------------------------------------------ */

#define INPUT_NAME_RULE                                                                            \
    "an input's name is the transform's hook on.<name>: letters, digits and _, not starting "      \
    "with a digit, " UP_TO_MAX

/* "<group_id>-<input>-changelog": each group restores the state it built. */
static char *changelog_name(const char *group_id, const char *input) {
    size_t n = strlen(group_id) + strlen(input) + sizeof "--changelog";
    char *s = malloc(n);
    snprintf(s, n, "%s-%s-changelog", group_id, input);
    return s;
}

/* true: the topic named after the group and the stream; "auto": the stream topic itself
 * when it is compacted, else that named topic; a string: that topic; false or nothing:
 * none. */
static int read_changelog(reader *r, int t, const char *at, const char *group_id,
                          jn_input_config *in) {
    int type = field(r->L, t, "changelog");
    const char *topic = plain_string(r->L);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN && !topic)
        return bad_value(r, at, "changelog",
                         "true (for \"<group_id>-<name>-changelog\"), \"auto\", false or a "
                         "topic name",
                         NULL);
    if (topic && !strcmp(topic, "auto")) {
        in->changelog = changelog_name(group_id, in->name);
        in->changelog_auto = 1;
    } else if (topic)
        in->changelog = strdup(topic);
    else if (lua_toboolean(r->L, -1))
        in->changelog = changelog_name(group_id, in->name);
    lua_pop(r->L, 1);
    return 0;
}

/* map[name] of the streams or tables map at t: "topic" or { topic [, changelog] }. */
static int read_input(reader *r, int t, const char *at, const char *name, int stream,
                      const char *group_id, jn_input_config *in) {
    lua_State *L = r->L;
    if (!is_name(name, 0))
        return bad_name(r, at, stream ? "a stream" : "a table", name, INPUT_NAME_RULE);
    in->name = strdup(name);
    int type = field(L, t, name);
    if (type == LUA_TSTRING) return take_string(r, at, name, "the Kafka topic to read", &in->topic);
    if (type != LUA_TTABLE)
        return bad_value(r, at, name,
                         stream ? "a topic name or a table { topic = ..., changelog = ... }"
                                : "a topic name or a table { topic = ... }",
                         NULL);
    char here[PATH_LEN];
    subpath(here, at, name);
    int v = lua_gettop(L), rc = 0;
    if (check_keys(r, v, here, stream ? &stream_level : &table_level) ||
        req_string(r, v, here, "topic", "the Kafka topic to read", &in->topic) ||
        (stream && read_changelog(r, v, here, group_id, in)))
        rc = -1;
    lua_pop(L, 1);
    return rc;
}

static int read_inputs(reader *r, int t, const char *at, int stream, jn_pipeline_config *p) {
    const char *key = stream ? "streams" : "tables";
    char **names, here[PATH_LEN];
    int n, opened = open_map(r, t, at, key, "name each input: { orders = \"orders\" }", &names, &n);
    if (opened < 0) return -1;
    subpath(here, at, key);
    jn_input_config *list = calloc((size_t)n + 1, sizeof *list);
    *(stream ? &p->streams : &p->tables) = list;
    *(stream ? &p->nstreams : &p->ntables) = n;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = read_input(r, lua_gettop(r->L), here, names[i], stream, p->group_id, &list[i]);
    free_names(names, n);
    if (opened) lua_pop(r->L, 1);
    return rc;
}

/* Streams first, then tables: a pipeline's i-th input, and the list it is in. */
static const jn_input_config *input_at(const jn_pipeline_config *p, int i, const char **list) {
    *list = i < p->nstreams ? "streams" : "tables";
    return i < p->nstreams ? &p->streams[i] : &p->tables[i - p->nstreams];
}

/* A pipeline consumes at least one stream; each input has a hook of its own, and each
 * topic is read once, as a stream or as a table (read twice, its records would reach the
 * transform twice). */
static int check_inputs(reader *r, const char *at, const jn_pipeline_config *p) {
    if (p->nstreams == 0) {
        jn_sb_printf(r->err,
                     "config: %s.streams is missing or empty; a pipeline consumes at least one "
                     "stream, e.g. streams = { orders = \"orders\" }",
                     at);
        return -1;
    }
    int n = p->nstreams + p->ntables;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            const char *la, *lb;
            const jn_input_config *a = input_at(p, j, &la), *b = input_at(p, i, &lb);
            if (!strcmp(a->name, b->name)) {
                jn_sb_printf(r->err,
                             "config: %s.%s.%s and %s.%s.%s have the same name, and the "
                             "transform's hook on.%s can serve only one: rename one",
                             at, la, a->name, at, lb, b->name, a->name);
                return -1;
            }
            if (!strcmp(a->topic, b->topic)) {
                jn_sb_printf(r->err,
                             "config: %s.%s.%s and %s.%s.%s both read topic \"%s\"; a pipeline "
                             "reads a topic once, as a stream or as a table: drop one",
                             at, la, a->name, at, lb, b->name, a->topic);
                return -1;
            }
        }
    return 0;
}

/* ---- one pipeline -------------------------------------------------------------------- */

#define PIPELINE_NAME_RULE "a pipeline's name is letters, digits, _ and -, " UP_TO_MAX

/* Where messages about the pipeline at t point: pipelines.<name>, or pipelines[<index>]
 * in a list while the name is not a usable one. */
static void pipeline_path(lua_State *L, int t, const char *key, int index, char *at, size_t n) {
    const char *name = key;
    if (!name && lua_istable(L, t) && field(L, t, "name") == LUA_TSTRING &&
        is_name(lua_tostring(L, -1), 1))
        name = lua_tostring(L, -1);
    if (name)
        snprintf(at, n, "pipelines.%s", name);
    else
        snprintf(at, n, "pipelines[%d]", index);
    if (!key && lua_istable(L, t)) lua_pop(L, 1);
}

/* In a list the name is a key of the pipeline; in a map it is the key the pipeline is
 * listed under, which a name key may repeat but not contradict. */
static int read_name(reader *r, int t, const char *at, const char *key, jn_pipeline_config *p) {
    int type = field(r->L, t, "name");
    const char *s = plain_string(r->L);
    if (key && type != LUA_TNIL && !(s && !strcmp(s, key))) {
        jn_sb_printf(r->err,
                     "config: %s.name must be left out or be \"%s\" (in the map form the key "
                     "names the pipeline)",
                     at, key);
        lua_pop(r->L, 1);
        return -1;
    }
    if (!key && !(s && is_name(s, 1)))
        return bad_value(r, at, "name", "a name of letters, digits, _ and -, " UP_TO_MAX,
                         "every pipeline needs one of its own");
    p->name = strdup(key ? key : s);
    lua_pop(r->L, 1);
    return 0;
}

static int read_offset_reset(reader *r, int t, const char *at, jn_pipeline_config *p) {
    int type = field(r->L, t, "auto_offset_reset");
    const char *s = type == LUA_TNIL ? r->cfg->consumer.auto_offset_reset : plain_string(r->L);
    if (type != LUA_TNIL && !(s && (!strcmp(s, "earliest") || !strcmp(s, "latest"))))
        return bad_value(r, at, "auto_offset_reset", "\"earliest\" or \"latest\"",
                         "where a new consumer group starts reading");
    p->auto_offset_reset = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

/* group_id, auto_offset_reset, transform, dead_letter_topic. */
static int read_identity(reader *r, int t, const char *at, jn_pipeline_config *p) {
    char group[NAME_MAX_LEN + 16];
    snprintf(group, sizeof group, "junction-%s", p->name);
    if (opt_string(r, t, at, "group_id", group, &p->group_id) || read_offset_reset(r, t, at, p) ||
        req_string(r, t, at, "transform", "the script the pipeline runs its inputs through",
                   &p->transform) ||
        opt_string(r, t, at, "dead_letter_topic", r->cfg->consumer.dead_letter_topic,
                   &p->dead_letter_topic))
        return -1;
    return 0;
}

/* dedupe: true, false or { enabled, ttl_s, prefix }. */
static int read_dedupe(reader *r, int t, const char *at, jn_pipeline_config *p) {
    lua_State *L = r->L;
    p->dedupe = 1;
    fill_inherited(r->cfg, &dedupe_level, p);
    int type = field(L, t, "dedupe");
    if (type == LUA_TBOOLEAN) p->dedupe = lua_toboolean(L, -1);
    if (type == LUA_TNIL || type == LUA_TBOOLEAN) {
        lua_pop(L, 1);
        p->dedupe_prefix = strdup(DEDUPE_PREFIX);
        return 0;
    }
    if (type != LUA_TTABLE)
        return bad_value(r, at, "dedupe", "true, false or a table { enabled, ttl_s, prefix }",
                         NULL);
    char here[PATH_LEN];
    subpath(here, at, "dedupe");
    int v = lua_gettop(L), rc = 0;
    if (check_keys(r, v, here, &dedupe_level) || read_bool(r, v, here, "enabled", 1, &p->dedupe) ||
        read_inherited(r, v, here, &dedupe_level, p) ||
        opt_string(r, v, here, "prefix", DEDUPE_PREFIX, &p->dedupe_prefix))
        rc = -1;
    lua_pop(L, 1);
    return rc;
}

/* The pipeline at t; key is its name in the map form, NULL in the list form (index is its
 * place there, from 1). */
static int read_pipeline(reader *r, int t, const char *key, int index, jn_pipeline_config *p) {
    char at[PATH_LEN];
    if (key && !is_name(key, 1))
        return bad_name(r, "pipelines", "a pipeline", key, PIPELINE_NAME_RULE);
    pipeline_path(r->L, t, key, index, at, sizeof at);
    if (!lua_istable(r->L, t)) {
        char val[160];
        jn_config_describe_value(r->L, t, val, sizeof val);
        jn_sb_printf(r->err, "config: %s must be a table (one pipeline), got %s", at, val);
        return -1;
    }
    if (check_keys(r, t, at, &pipeline_level) || read_name(r, t, at, key, p) ||
        read_identity(r, t, at, p) || read_dedupe(r, t, at, p) ||
        read_inherited(r, t, at, &pipeline_level, p) || read_inputs(r, t, at, 1, p) ||
        read_inputs(r, t, at, 0, p) || check_inputs(r, at, p) || read_sinks(r, t, at, p))
        return -1;
    return 0;
}

/* ---- the section ---------------------------------------------------------------------- */

/* Two pipelines in one consumer group would take each other's partitions, and two
 * marking processed records under one prefix would skip each other's records as
 * duplicates. Names label everything a pipeline does, so they are unique too. */
static int check_across(reader *r, const jn_pipeline_config *ps, int n) {
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            const jn_pipeline_config *a = &ps[j], *b = &ps[i];
            if (!strcmp(a->name, b->name)) {
                jn_sb_printf(r->err,
                             "config: pipelines.%s is defined twice (pipelines[%d] and "
                             "pipelines[%d]); give each pipeline a name of its own",
                             b->name, j + 1, i + 1);
                return -1;
            }
            if (!strcmp(a->group_id, b->group_id)) {
                jn_sb_printf(r->err,
                             "config: pipelines.%s and pipelines.%s are both in consumer group "
                             "\"%s\" and would take each other's partitions; set "
                             "pipelines.%s.group_id to a group of its own",
                             a->name, b->name, a->group_id, b->name);
                return -1;
            }
            if (a->dedupe && b->dedupe && !strcmp(a->dedupe_prefix, b->dedupe_prefix)) {
                jn_sb_printf(r->err,
                             "config: pipelines.%s and pipelines.%s both mark processed records "
                             "under the Redis prefix \"%s\", so each would skip the other's "
                             "records as duplicates; set pipelines.%s.dedupe.prefix, e.g. to "
                             "\"%s:processed:\"",
                             a->name, b->name, a->dedupe_prefix, b->name, b->name);
                return -1;
            }
        }
    return 0;
}

typedef enum { FORM_LIST, FORM_MAP, FORM_MIXED } section_form;

/* A list has the keys 1..n alone, a map string keys alone; *n counts the entries. */
static section_form form_of(lua_State *L, int t, int *n) {
    int strings = 0, others = 0;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        if (lua_type(L, -2) == LUA_TSTRING)
            strings++;
        else
            others++;
        lua_pop(L, 1);
    }
    *n = strings + others;
    if (!others) return FORM_MAP;
    if (strings) return FORM_MIXED;
    for (int i = 1; i <= others; i++) {
        int hole = lua_rawgeti(L, t, i) == LUA_TNIL;
        lua_pop(L, 1);
        if (hole) return FORM_MIXED;
    }
    return FORM_LIST;
}

static int read_list(reader *r, int t, jn_pipeline_config *ps, int n) {
    for (int i = 0; i < n; i++) {
        lua_rawgeti(r->L, t, i + 1);
        int rc = read_pipeline(r, lua_gettop(r->L), NULL, i + 1, &ps[i]);
        lua_pop(r->L, 1);
        if (rc) return -1;
    }
    return 0;
}

/* In name order, so the pipelines' order does not hang on the hash table. */
static int read_map(reader *r, int t, jn_pipeline_config *ps) {
    char **names;
    int n, rc = 0;
    if (sorted_keys(r, t, "pipelines", "name each pipeline", &names, &n) != 0) return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        field(r->L, t, names[i]);
        rc = read_pipeline(r, lua_gettop(r->L), names[i], 0, &ps[i]);
        lua_pop(r->L, 1);
    }
    free_names(names, n);
    return rc;
}

int jn_config_pipelines_load(jn_config *cfg, lua_State *L, int idx, jn_sb *err) {
    reader r = {L, cfg, err};
    int t = lua_absindex(L, idx), n = 0;
    luaL_checkstack(L, 32, "config pipelines"); /* a header's table sits a dozen values down */
    section_form form = lua_istable(L, t) ? form_of(L, t, &n) : FORM_MIXED;
    if (!lua_istable(L, t) || form == FORM_MIXED) {
        char val[160];
        jn_config_describe_value(L, t, val, sizeof val);
        jn_sb_printf(err,
                     "config: pipelines must be a list of pipelines, { { name = \"a\", ... }, ... "
                     "}, or a map, { a = { ... }, ... }, got %s%s",
                     val, lua_istable(L, t) ? " mixing the two (or a list with holes)" : "");
        return -1;
    }
    if (n == 0) {
        jn_sb_puts(err, "config: pipelines is empty; give at least one pipeline, or leave the key "
                        "out for the one the consumer.* keys describe");
        return -1;
    }
    cfg->pipelines = calloc((size_t)n, sizeof *cfg->pipelines);
    cfg->npipelines = n;
    int rc =
        form == FORM_LIST ? read_list(&r, t, cfg->pipelines, n) : read_map(&r, t, cfg->pipelines);
    return rc ? -1 : check_across(&r, cfg->pipelines, n);
}

/* ---- the default pipeline ------------------------------------------------------------ */

static void set_input(jn_input_config *in, const char *name, const char *topic, char *changelog) {
    in->name = strdup(name);
    in->topic = strdup(topic);
    in->changelog = changelog;
}

void jn_config_pipelines_default(jn_config *cfg) {
    jn_pipeline_config *p = calloc(1, sizeof *p);
    cfg->pipelines = p;
    cfg->npipelines = 1;
    p->name = strdup("default");
    p->group_id = strdup(cfg->consumer.group_id);
    p->auto_offset_reset = strdup(cfg->consumer.auto_offset_reset);
    p->transform = strdup(cfg->consumer.merge_script);
    p->dead_letter_topic = strdup(cfg->consumer.dead_letter_topic);
    p->dedupe = 1;
    p->dedupe_prefix = strdup(DEDUPE_PREFIX);
    fill_inherited(cfg, &pipeline_level, p);
    fill_inherited(cfg, &dedupe_level, p);
    p->streams = calloc(1, sizeof *p->streams);
    p->nstreams = 1;
    set_input(p->streams, "customers", cfg->consumer.customer_topic,
              cfg->consumer.changelog ? changelog_name(p->group_id, "customers") : NULL);
    p->streams[0].changelog_auto = cfg->consumer.changelog;
    p->tables = calloc(1, sizeof *p->tables);
    p->ntables = 1;
    set_input(p->tables, "products", cfg->consumer.product_topic, NULL);
    jn_sink_config *s = p->sinks = calloc(1, sizeof *p->sinks);
    p->nsinks = 1;
    s->name = strdup("analytics");
    s->type = JN_SINK_HTTP;
    s->url = strdup(cfg->consumer.analytics_url);
    s->headers = calloc(1, sizeof *s->headers);
    fill_inherited(cfg, &http_level, s);
    s->verify_tls = 1;
}

/* ---- freeing and describing --------------------------------------------------------- */

static void free_inputs(jn_input_config *in, int n) {
    for (int i = 0; i < n; i++) {
        free(in[i].name);
        free(in[i].topic);
        free(in[i].changelog);
    }
    free(in);
}

static void free_sink(jn_sink_config *s) {
    free(s->name);
    free(s->url);
    for (char **h = s->headers; h && *h; h++)
        jn_secret_free(*h);
    free(s->headers);
    free(s->ca_file);
    free(s->topic);
    free(s->key_field);
}

static void free_pipeline(jn_pipeline_config *p) {
    free(p->name);
    free(p->group_id);
    free(p->auto_offset_reset);
    free(p->transform);
    free(p->dead_letter_topic);
    free(p->dedupe_prefix);
    free_inputs(p->streams, p->nstreams);
    free_inputs(p->tables, p->ntables);
    for (int i = 0; i < p->nsinks; i++)
        free_sink(&p->sinks[i]);
    free(p->sinks);
}

void jn_config_pipelines_free(jn_config *cfg) {
    for (int i = 0; i < cfg->npipelines; i++)
        free_pipeline(&cfg->pipelines[i]);
    free(cfg->pipelines);
    cfg->pipelines = NULL;
    cfg->npipelines = 0;
}

void jn_config_pipelines_describe(void) {
    static const struct {
        const char *under;
        const level *lv;
    } levels[] = {
        {"pipelines.<p>.", &pipeline_level},
        {"pipelines.<p>.dedupe.", &dedupe_level},
        {"pipelines.<p>.streams.<s>.", &stream_level},
        {"pipelines.<p>.tables.<t>.", &table_level},
        {"pipelines.<p>.sinks.<k>.", &http_level},
        {"pipelines.<p>.sinks.<k>.", &kafka_level},
        {"pipelines.<p>.sinks.<k>.headers.<H>.", &secret_level},
    };
    printf(
        "\nPIPELINES: `pipelines` is a list { { name = \"a\", ... }, ... } or a map { a = { ... }, "
        "... }, run in name order.\n"
        "Without it, the consumer.* keys above make one pipeline, \"default\": stream "
        "customers (consumer.customer_topic), table products\n(consumer.product_topic), http "
        "sink analytics (consumer.analytics_url).\n"
        "A default naming a consumer.* key is that key's value; integers take its range too. "
        "Stream, table and sink names are letters, digits and _.\n"
        "A header value is a string, { env = \"NAME\" } or { file = \"/path\" }, with an "
        "optional prefix; a variable or file missing stops start-up.\n");
    printf("%-44s %-30s %s\n", "KEY", "DEFAULT", "MEANING");
    for (size_t i = 0; i < COUNT(levels); i++)
        for (size_t k = 0; k < levels[i].lv->n; k++) {
            const pkey *e = &levels[i].lv->keys[k];
            char key[96];
            snprintf(key, sizeof key, "%s%s", levels[i].under, e->key);
            printf("%-44s %-30s %s\n", key, e->def ? e->def : e->from, e->doc);
        }
}

/* ---- secrets for the other sections ------------------------------------------------ */

/* A secret's table without a header's prefix: env and file, the first two of its keys. */
static const level value_level = {secret_keys, 2, "a secret value table"};

int jn_config_secret_value(lua_State *L, int idx, const jn_config *cfg, const char *at, jn_sb *err,
                           char **out) {
    reader r = {L, cfg, err};
    int t = lua_absindex(L, idx), rc = -1;
    if (lua_type(L, t) == LUA_TSTRING) {
        lua_pushvalue(L, t);
        rc = literal_value(&r, at, out);
        lua_pop(L, 1);
    } else if (lua_type(L, t) == LUA_TTABLE) {
        rc = check_keys(&r, t, at, &value_level) ? -1 : secret_from_table(&r, t, at, out);
    } else {
        jn_sb_printf(err,
                     "config: %s must be a string, or { env = \"NAME\" } or { file = \"/path\" }, "
                     "got a %s",
                     at, luaL_typename(L, t));
    }
    return rc;
}
