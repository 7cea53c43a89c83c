/* The host's configuration: a Lua file returning a table, checked against a schema,
 * then overridden by environment variables (the original system's names where it had
 * them, JUNCTION_* for the rest). Every error names the key, the bad value and what
 * was expected. */
#ifndef JN_CONFIG_H
#define JN_CONFIG_H

#include "log.h"

typedef struct {
    char host[64];
    int port;
} jn_addr;

/* The ranges of the fault settings, wherever they are set: the config (api.<name>.faults.*,
 * apis.<a>.faults.*), a script's M.faults and PUT /api/faults/<name> at run time. Rates
 * are from 0 to 1. */
#define JN_FAULT_LATENCY_MS_MAX 600000
#define JN_FAULT_STATUS_MIN     400
#define JN_FAULT_STATUS_MAX     599

/* Fault injection for a mock API, so clients' retries can be exercised. */
typedef struct {
    int latency_ms;        /* added before every response */
    double error_rate;     /* share of requests answered with error_status */
    int error_status;      /* 500, 503, 429, ... */
    double malformed_rate; /* share of 200 answers whose body is cut short */
} jn_faults;

/* How a mock API pages GET /<resource>: not at all (the whole array), ?offset=&limit=
 * (a bare array), ?cursor=&limit= (an envelope {"data":[...],"next_cursor":...}) or
 * ?page=&per_page= (a bare array and a Link header to the next page). */
typedef enum { JN_PAGING_NONE, JN_PAGING_OFFSET, JN_PAGING_CURSOR, JN_PAGING_LINK } jn_paging_style;

/* One mock API `junction api` serves: an entry of `apis`. */
typedef struct {
    char *name; /* log and metrics label, admin's /api/faults/<name> */
    jn_addr listen;
    char *script;
    int count; /* records generate() makes; -1: the script's M.count, else 1000 */
    int seed;
    jn_faults faults;
    char *resource; /* collection path without the leading /; NULL: the script's M.resource,
                     * else the name */
    char *singular; /* "<singular> not found"; NULL: the script's M.singular, else "Record" */
    char *token;    /* bearer token every request must carry; NULL: none */
    jn_paging_style paging;
    int page_size, max_page_size;
} jn_api_config;

/* One HTTP API the producer polls into one topic (config_source.c). */
typedef struct {
    char *name; /* metric label, log lines, the map script's name */
    char *noun; /* what log lines call its records: "Published 1000 customer(s)" */
    int enabled;
    char *url;
    char *method;
    char **headers; /* NULL-terminated "Name: value" lines, secrets already resolved */
    char *topic;
    char *script; /* map(record, ctx), and optional records(body, ctx) and next(response, ctx) */
    int poll_interval_ms, request_timeout_ms, publish_all, max_pages;
    struct {
        int attempts, base_ms, max_ms;
        double multiplier;
    } retry;
    struct {
        char *ca_file, *cert_file, *key_file; /* NULL: the system's CAs, no client certificate */
        int verify;                           /* on unless the config turns it off */
    } tls;
} jn_source_config;

/* One input of a pipeline: a stream (consumed as a group member, each message settled
 * and committed) or a table (read whole into the transform's state, then followed). */
typedef struct {
    char *name; /* the transform's hook: on.<name> */
    char *topic;
    char *changelog;    /* streams: compacted topic restoring the transform's per-key state
                         * when a partition is assigned; NULL when off */
    int changelog_auto; /* restore from the stream topic itself when it is compacted (no
                         * changelog writes), else from `changelog` */
} jn_input_config;

typedef enum { JN_SINK_HTTP, JN_SINK_KAFKA } jn_sink_type;

/* Where a pipeline's records go. */
typedef struct {
    char *name;
    jn_sink_type type;
    /* http */
    char *url;
    char **headers; /* NULL-terminated "Name: value" lines, secrets already resolved */
    int batch_size, linger_ms, max_inflight, timeout_ms, retry_base_ms, retry_max_ms;
    char *ca_file;              /* NULL: the system's trust store */
    int verify_tls;             /* on unless the config turns it off */
    char *cert_file, *key_file; /* client certificate and key; NULL: none */
    /* kafka */
    char *topic;
    char *key_field; /* the record field whose value keys the Kafka message */
} jn_sink_config;

typedef struct {
    char *name;
    char *group_id;
    char *auto_offset_reset;
    char *transform; /* script path */
    char *dead_letter_topic;
    int dedupe; /* skip records whose content was processed before */
    int dedupe_ttl_s;
    char *dedupe_prefix; /* Redis key prefix of the marks ("processed:") */
    int dedupe_buckets;  /* marks in time-bucketed hashes, not a key each (marks.c) */
    int max_pending;
    int hold_ms, hold_max;
    jn_input_config *streams;
    int nstreams;
    jn_input_config *tables;
    int ntables;
    jn_sink_config *sinks;
    int nsinks;
} jn_pipeline_config;

typedef struct jn_config {
    char *path;
    struct {
        jn_log_level level;
        jn_log_format format;
    } log;
    struct {
        jn_addr listen;   /* run's unless given: jn_config_for_command settles it */
        int listen_given; /* the file or JUNCTION_ADMIN_LISTEN set listen */
        char *token;      /* NULL: no token asked (loopback listeners only) */
    } admin;
    struct {
        long instruction_limit;
        long time_limit_ms;
        long memory_limit_mb;
        long max_file_bytes;
        char *read_paths;
        char *env_allow;
        char *stock_path;
        int allow_exec;
        int allow_write;
        int watch;
    } scripts;
    struct {
        int max_body_bytes;
        int request_timeout_ms;
        int keepalive_timeout_ms;
        int max_connections;
    } api;
    struct {
        int poll_interval_ms;
        int request_timeout_ms;
        int publish_all;
        struct {
            int attempts;
            int base_ms;
            double multiplier;
            int max_ms;
        } retry;
    } producer;
    struct {
        char *brokers;
        char *client_id;
        char *compression;
        int linger_ms;
        int queue_max_messages;
        int message_timeout_ms;
        /* Every librdkafka property the deployment sets, resolved (config_kafka.c):
         * name/value pairs, NULL-terminated, secrets included, never shown. */
        char **properties;
    } kafka;
    struct {
        char *host;
        int port;
        char *username; /* NULL: the default user */
        char *password; /* NULL: no AUTH */
        int db;
        int tls; /* refused at load: see config.c */
    } redis;
    struct {
        jn_addr listen;
        char *file;  /* JSON-lines file records are appended to, or NULL */
        char *token; /* bearer token POSTs must carry, or NULL */
        int max_body_bytes;
    } analytics;
    struct {
        char *dead_letter_topic;
        char *auto_offset_reset;
        int batch_size;
        int linger_ms;
        int max_inflight_batches;
        int max_pending;
        int request_timeout_ms;
        int retry_base_ms, retry_max_ms;
        int dedupe_ttl_s;
        char *dedupe_layout;
        int hold_max;
        int hold_ms;
    } consumer;
    /* `pipelines` in the file (none without it: `junction consume` says so). */
    jn_pipeline_config *pipelines;
    int npipelines;
    /* `sources` in the file, disabled ones included (none without it). */
    jn_source_config *sources;
    int nsources;
    /* `apis` in the file (none without it). */
    jn_api_config *apis;
    int napis;
} jn_config;

/* Loads path (or the defaults alone when path is NULL), applies the environment and
 * validates. On failure returns -1 and sets *err to a message for a person (free it). */
int jn_config_load(jn_config *cfg, const char *path, char **err);
/* Settles what depends on the command the process runs (run, api, produce, consume,
 * analytics): admin.listen, when neither the file nor JUNCTION_ADMIN_LISTEN gave it, is
 * 127.0.0.1 and the command's own port (jn_config_admin_port), so the roles started
 * side by side on one machine with the default config do not collide. Returns 0, or -1
 * for an unknown command. */
int jn_config_for_command(jn_config *cfg, const char *command);
/* The admin port of a command when the config gives none: run 8000, api 8001, produce
 * 8002, consume 8003, analytics 8004; -1 for an unknown command. */
int jn_config_admin_port(const char *command);
void jn_config_free(jn_config *cfg);
/* Writes every key with its type, default and environment variable, for --help-config. */
void jn_config_describe(void);
/* Whether s can be an API's singular (config or script): printable ASCII, 1 to 64. */
int jn_config_valid_singular(const char *s);
/* "host:port" → addr; returns 0 on success. */
int jn_config_parse_addr(const char *s, jn_addr *out);

#endif
