/* The `pipelines` section of the config file: which topics each pipeline reads (streams
 * and tables), the transform it runs them through and the sinks its records go to. A
 * file without the section has none (examples/local.lua declares the seed's consumer),
 * and `junction consume` says so.
 *
 * The section is read raw and its keys checked against lists, as config_read.c does for
 * every section of named entries. Header values may come from the environment or from
 * files (container secrets); no message ever shows a header's value, wherever it came
 * from. */
#include "config_pipeline.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_read.h"

/* What the seed's consumer marks processed records with in Redis. */
#define DEDUPE_PREFIX "processed:"

/* Short names for this file. */
typedef jn_config_key pkey;
typedef jn_config_level level;
typedef jn_config_reader reader;

#define PIPE(f) offsetof(jn_pipeline_config, f)
#define SINK(f) offsetof(jn_sink_config, f)
/* clang-format off */
static const pkey pipeline_keys[] = {
    {"name", "required", NULL, 0, "letters, digits, _ and -, " JN_CONFIG_UP_TO ", unique; in the map form, the key"},
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
    {"layout", "consumer.dedupe_layout", NULL, 0, "\"keys\" (a key per mark, the original system's) or \"buckets\" (a hash per ttl/2 of time: far less Redis CPU, marks live ttl to 1.5 ttl)"},
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
    {"cert_file", "none", NULL, 0, "PEM client certificate, for a receiver that asks for one"},
    {"key_file", "none", NULL, 0, "PEM key of cert_file (when it is not in cert_file)"},
};
static const pkey kafka_keys[] = {
    {"type", "required", NULL, 0, "\"kafka\": produce each record to a topic"},
    {"topic", "required", NULL, 0, "Kafka topic the records go to"},
    {"key", "id", NULL, 0, "record field whose value keys the Kafka message"},
};
/* clang-format on */

static const level pipeline_level = JN_CONFIG_LEVEL(pipeline_keys, "a pipeline");
static const level dedupe_level = JN_CONFIG_LEVEL(dedupe_keys, "dedupe");
static const level stream_level = JN_CONFIG_LEVEL(stream_keys, "a stream");
static const level table_level = JN_CONFIG_LEVEL(table_keys, "a table");
static const level http_level = JN_CONFIG_LEVEL(http_keys, "an http sink");
static const level kafka_level = JN_CONFIG_LEVEL(kafka_keys, "a kafka sink");

/* ---- sinks --------------------------------------------------------------------------- */

#define SINK_NAME_RULE                                                                             \
    "a sink's name is what the transform routes records to: letters, digits and _, not "           \
    "starting with a digit, " JN_CONFIG_UP_TO

static int read_http_sink(reader *r, int t, const char *at, jn_sink_config *s) {
    s->type = JN_SINK_HTTP;
    if (jn_config_check_keys(r, t, at, &http_level) ||
        jn_config_req_string(r, t, at, "url", "an http sink needs the URL to POST to", &s->url))
        return -1;
    /* The URL is not echoed: it may carry credentials. */
    if (strncasecmp(s->url, "http://", 7) && strncasecmp(s->url, "https://", 8)) {
        jn_sb_printf(r->err,
                     "config: %s.url must start with http:// or https:// (an http sink needs the "
                     "URL to POST to)",
                     at);
        return -1;
    }
    if (jn_config_read_headers(r, t, at, &s->headers) ||
        jn_config_read_inherited(r, t, at, &http_level, s) ||
        jn_config_opt_string(r, t, at, "ca_file", NULL, &s->ca_file) ||
        jn_config_opt_string(r, t, at, "cert_file", NULL, &s->cert_file) ||
        jn_config_opt_string(r, t, at, "key_file", NULL, &s->key_file) ||
        jn_config_read_bool(r, t, at, "verify_tls", 1, &s->verify_tls))
        return -1;
    return 0;
}

static int read_kafka_sink(reader *r, int t, const char *at, jn_sink_config *s) {
    s->type = JN_SINK_KAFKA;
    if (jn_config_check_keys(r, t, at, &kafka_level) ||
        jn_config_req_string(r, t, at, "topic", "a kafka sink needs the topic to produce to",
                             &s->topic) ||
        jn_config_opt_string(r, t, at, "key", "id", &s->key_field))
        return -1;
    return 0;
}

/* sinks[name] of the sinks table at t, whose type says which keys it takes. */
static int read_sink(reader *r, int t, const char *at, const char *name, jn_sink_config *s) {
    lua_State *L = r->L;
    if (!jn_config_is_name(name, 0))
        return jn_config_bad_name(r, at, "a sink", name, SINK_NAME_RULE);
    s->name = strdup(name);
    if (jn_config_field(L, t, name) != LUA_TTABLE)
        return jn_config_bad_value(r, at, name, "a table with a type, \"http\" or \"kafka\"", NULL);
    char here[JN_CONFIG_PATH_LEN];
    jn_config_subpath(here, at, name);
    int v = lua_gettop(L), rc;
    jn_config_field(L, v, "type");
    const char *type = jn_config_plain_string(L);
    if (type && !strcmp(type, "http")) {
        lua_pop(L, 1);
        rc = read_http_sink(r, v, here, s);
    } else if (type && !strcmp(type, "kafka")) {
        lua_pop(L, 1);
        rc = read_kafka_sink(r, v, here, s);
    } else {
        rc = jn_config_bad_value(
            r, here, "type", "\"http\" or \"kafka\"",
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
    char here[JN_CONFIG_PATH_LEN];
    jn_config_subpath(here, at, key);
    *names = NULL;
    *n = 0;
    int type = jn_config_field(r->L, t, key);
    if (type == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    if (type != LUA_TTABLE) return jn_config_bad_value(r, at, key, "a table, name -> ...", hint);
    if (jn_config_sorted_keys(r, lua_gettop(r->L), here, hint, names, n) != 0) {
        lua_pop(r->L, 1);
        return -1;
    }
    return 1;
}

static int read_sinks(reader *r, int t, const char *at, jn_pipeline_config *p) {
    char **names, here[JN_CONFIG_PATH_LEN];
    int n, opened =
               open_map(r, t, at, "sinks", "name each sink: { out = { type = ... } }", &names, &n);
    if (opened < 0) return -1;
    jn_config_subpath(here, at, "sinks");
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
    jn_config_free_names(names, n);
    if (opened) lua_pop(r->L, 1);
    return rc;
}

/* ---- streams and tables ------------------------------------------------------------ */

#define INPUT_NAME_RULE                                                                            \
    "an input's name is the transform's hook on.<name>: letters, digits and _, not starting "      \
    "with a digit, " JN_CONFIG_UP_TO

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
    int type = jn_config_field(r->L, t, "changelog");
    const char *topic = jn_config_plain_string(r->L);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN && !topic)
        return jn_config_bad_value(
            r, at, "changelog",
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
    if (!jn_config_is_name(name, 0))
        return jn_config_bad_name(r, at, stream ? "a stream" : "a table", name, INPUT_NAME_RULE);
    in->name = strdup(name);
    int type = jn_config_field(L, t, name);
    if (type == LUA_TSTRING)
        return jn_config_take_string(r, at, name, "the Kafka topic to read", &in->topic);
    if (type != LUA_TTABLE)
        return jn_config_bad_value(r, at, name,
                                   stream
                                       ? "a topic name or a table { topic = ..., changelog = ... }"
                                       : "a topic name or a table { topic = ... }",
                                   NULL);
    char here[JN_CONFIG_PATH_LEN];
    jn_config_subpath(here, at, name);
    int v = lua_gettop(L), rc = 0;
    if (jn_config_check_keys(r, v, here, stream ? &stream_level : &table_level) ||
        jn_config_req_string(r, v, here, "topic", "the Kafka topic to read", &in->topic) ||
        (stream && read_changelog(r, v, here, group_id, in)))
        rc = -1;
    lua_pop(L, 1);
    return rc;
}

static int read_inputs(reader *r, int t, const char *at, int stream, jn_pipeline_config *p) {
    const char *key = stream ? "streams" : "tables";
    char **names, here[JN_CONFIG_PATH_LEN];
    int n, opened = open_map(r, t, at, key, "name each input: { orders = \"orders\" }", &names, &n);
    if (opened < 0) return -1;
    jn_config_subpath(here, at, key);
    jn_input_config *list = calloc((size_t)n + 1, sizeof *list);
    *(stream ? &p->streams : &p->tables) = list;
    *(stream ? &p->nstreams : &p->ntables) = n;
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++)
        rc = read_input(r, lua_gettop(r->L), here, names[i], stream, p->group_id, &list[i]);
    jn_config_free_names(names, n);
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

static int read_pipeline(reader *r, int t, const char *key, int index, void *entry);

static const jn_config_section section = {
    .key = "pipelines",
    .noun = "pipeline",
    .a_noun = "a pipeline",
    .empty_hint = "or leave the key out when the file runs no `junction consume`",
    .size = sizeof(jn_pipeline_config),
    .read = read_pipeline,
};

/* ---- one pipeline -------------------------------------------------------------------- */

static int read_offset_reset(reader *r, int t, const char *at, jn_pipeline_config *p) {
    int type = jn_config_field(r->L, t, "auto_offset_reset");
    const char *s =
        type == LUA_TNIL ? r->cfg->consumer.auto_offset_reset : jn_config_plain_string(r->L);
    if (type != LUA_TNIL && !(s && (!strcmp(s, "earliest") || !strcmp(s, "latest"))))
        return jn_config_bad_value(r, at, "auto_offset_reset", "\"earliest\" or \"latest\"",
                                   "where a new consumer group starts reading");
    p->auto_offset_reset = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

/* group_id, auto_offset_reset, transform, dead_letter_topic. */
static int read_identity(reader *r, int t, const char *at, jn_pipeline_config *p) {
    char group[JN_CONFIG_NAME_MAX + 16];
    snprintf(group, sizeof group, "junction-%s", p->name);
    if (jn_config_opt_string(r, t, at, "group_id", group, &p->group_id) ||
        read_offset_reset(r, t, at, p) ||
        jn_config_req_string(r, t, at, "transform",
                             "the script the pipeline runs its inputs through", &p->transform) ||
        jn_config_opt_string(r, t, at, "dead_letter_topic", r->cfg->consumer.dead_letter_topic,
                             &p->dead_letter_topic))
        return -1;
    return 0;
}

/* dedupe: true, false or { enabled, ttl_s, prefix }. */
static int read_dedupe(reader *r, int t, const char *at, jn_pipeline_config *p) {
    lua_State *L = r->L;
    p->dedupe = 1;
    jn_config_fill_inherited(r->cfg, &dedupe_level, p);
    int type = jn_config_field(L, t, "dedupe");
    if (type == LUA_TBOOLEAN) p->dedupe = lua_toboolean(L, -1);
    p->dedupe_buckets = !strcmp(r->cfg->consumer.dedupe_layout, "buckets");
    if (type == LUA_TNIL || type == LUA_TBOOLEAN) {
        lua_pop(L, 1);
        p->dedupe_prefix = strdup(DEDUPE_PREFIX);
        return 0;
    }
    if (type != LUA_TTABLE)
        return jn_config_bad_value(r, at, "dedupe",
                                   "true, false or a table { enabled, ttl_s, prefix }", NULL);
    char here[JN_CONFIG_PATH_LEN];
    jn_config_subpath(here, at, "dedupe");
    int v = lua_gettop(L), rc = 0;
    if (jn_config_check_keys(r, v, here, &dedupe_level) ||
        jn_config_read_bool(r, v, here, "enabled", 1, &p->dedupe) ||
        jn_config_read_inherited(r, v, here, &dedupe_level, p) ||
        jn_config_opt_string(r, v, here, "prefix", DEDUPE_PREFIX, &p->dedupe_prefix))
        rc = -1;
    char *layout = NULL;
    if (!rc &&
        jn_config_opt_string(r, v, here, "layout", r->cfg->consumer.dedupe_layout, &layout) != 0)
        rc = -1;
    if (!rc && strcmp(layout, "keys") != 0 && strcmp(layout, "buckets") != 0) {
        jn_sb_printf(r->err, "config: %s.layout must be \"keys\" or \"buckets\", got \"%s\"", here,
                     layout);
        rc = -1;
    }
    if (!rc) p->dedupe_buckets = !strcmp(layout, "buckets");
    free(layout);
    lua_pop(L, 1);
    return rc;
}

/* The pipeline at t; key is its name in the map form, NULL in the list form (index is its
 * place there, from 1). */
static int read_pipeline(reader *r, int t, const char *key, int index, void *entry) {
    jn_pipeline_config *p = entry;
    char at[JN_CONFIG_PATH_LEN];
    if (jn_config_entry_begin(r, t, &section, key, index, at) ||
        jn_config_check_keys(r, t, at, &pipeline_level) ||
        jn_config_entry_name(r, t, at, key, &section, &p->name) || read_identity(r, t, at, p) ||
        read_dedupe(r, t, at, p) || jn_config_read_inherited(r, t, at, &pipeline_level, p) ||
        read_inputs(r, t, at, 1, p) || read_inputs(r, t, at, 0, p) || check_inputs(r, at, p) ||
        read_sinks(r, t, at, p))
        return -1;
    return 0;
}

/* ---- the section ---------------------------------------------------------------------- */

/* Two pipelines in one consumer group would take each other's partitions, and two
 * marking processed records under one prefix would skip each other's records as
 * duplicates. Names label everything a pipeline does, so they are unique too. */
static int check_across(reader *r, const jn_pipeline_config *ps, int n) {
    if (jn_config_unique_names(r, &section, ps, n, offsetof(jn_pipeline_config, name))) return -1;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            const jn_pipeline_config *a = &ps[j], *b = &ps[i];
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

int jn_config_pipelines_load(jn_config *cfg, lua_State *L, int idx, jn_sb *err) {
    reader r = {L, cfg, err};
    void *entries;
    int rc = jn_config_read_section(&r, idx, &section, &entries, &cfg->npipelines);
    cfg->pipelines = entries;
    return rc ? -1 : check_across(&r, cfg->pipelines, cfg->npipelines);
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
    jn_config_free_headers(s->headers);
    free(s->ca_file);
    free(s->cert_file);
    free(s->key_file);
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
    static const jn_config_described levels[] = {
        {"pipelines.<p>.", &pipeline_level},
        {"pipelines.<p>.dedupe.", &dedupe_level},
        {"pipelines.<p>.streams.<s>.", &stream_level},
        {"pipelines.<p>.tables.<t>.", &table_level},
        {"pipelines.<p>.sinks.<k>.", &http_level},
        {"pipelines.<p>.sinks.<k>.", &kafka_level},
        {"pipelines.<p>.sinks.<k>.headers.<H>.", &jn_config_secret_level},
    };
    printf(
        "\nPIPELINES: `pipelines` is a list { { name = \"a\", ... }, ... } or a map { a = { ... }, "
        "... }, run in name order.\n"
        "Without it there is none (examples/local.lua declares the seed's consumer).\n"
        "A default naming a consumer.* key is that key's value; integers take its range too. "
        "Stream, table and sink names are letters, digits and _.\n"
        "A header value is a string, { env = \"NAME\" } or { file = \"/path\" }, with an "
        "optional prefix; a variable or file missing stops start-up.\n");
    jn_config_describe_levels(levels, JN_CONFIG_COUNT(levels));
}

/* ---- secrets for the other sections ------------------------------------------------ */

int jn_config_secret_value(lua_State *L, int idx, const jn_config *cfg, const char *at, jn_sb *err,
                           char **out) {
    jn_config_reader r = {L, cfg, err};
    int t = lua_absindex(L, idx), rc = -1;
    if (lua_type(L, t) == LUA_TSTRING) {
        lua_pushvalue(L, t);
        rc = jn_config_secret_literal(&r, at, out);
        lua_pop(L, 1);
    } else if (lua_type(L, t) == LUA_TTABLE) {
        rc = jn_config_check_keys(&r, t, at, &jn_config_secret_value_level)
                 ? -1
                 : jn_config_secret_table(&r, t, at, out);
    } else {
        jn_sb_printf(err,
                     "config: %s must be a string, or { env = \"NAME\" } or { file = \"/path\" }, "
                     "got a %s",
                     at, luaL_typename(L, t));
    }
    return rc;
}
