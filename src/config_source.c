/* The `sources` section of the config file: every HTTP API the producer polls, with its
 * URL, method, headers (secrets from the environment or files), timing, retry policy,
 * TLS settings, map script and topic. A file without the section has none
 * (examples/local.lua declares the seed's two), and `junction produce` says so.
 *
 * Read with config_read.c like `pipelines` and `apis`: raw, keys checked against the
 * lists below, no message ever showing a header's value. */
#include "config_source.h"

#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_read.h"

/* A cycle that pages through more than this is more likely a script going round than an
 * API: a thousand pages of a thousand records is a million. */
#define MAX_PAGES_DEFAULT 1000
#define MAX_PAGES_LIMIT   1000000
#define NOUN_DEFAULT      "record(s)"

#define SRC(f) offsetof(jn_source_config, f)
/* clang-format off */
static const jn_config_key source_keys[] = {
    {"name", "required", NULL, 0, "letters, digits, _ and -, " JN_CONFIG_UP_TO ", unique; in the map form, the key"},
    {"enabled", "true", NULL, 0, "false: parsed, never polled (and its header secrets are not read)"},
    {"url", "required", NULL, 0, "http:// or https:// URL of the records, or of their first page"},
    {"method", "GET", NULL, 0, "\"GET\" or \"POST\" (sent without a body)"},
    {"headers", "none", NULL, 0, "header name -> a string, or a table (headers.<H>.* below), sent with every request"},
    {"topic", "required", NULL, 0, "Kafka topic the records are published to; one source per topic"},
    {"script", "required", NULL, 0, "map script: map(record, ctx), optional records(body, ctx) and next(response, ctx)"},
    {"noun", NOUN_DEFAULT, NULL, 0, "what log lines call the records: \"Published 10 <noun> to topic <topic>\""},
    {"poll_interval_ms", NULL, "producer.poll_interval_ms", SRC(poll_interval_ms), "delay between the end of one cycle and the start of the next"},
    {"request_timeout_ms", NULL, "producer.request_timeout_ms", SRC(request_timeout_ms), "time one request may take"},
    {"publish_all", "producer.publish_all", NULL, 0, "publish every record every cycle instead of only new or changed ones"},
    {"max_pages", "1000", NULL, 0, "pages one cycle may fetch (1 to 1000000); a next() asking for more ends the cycle with an error"},
    {"retry", "producer.retry.*", NULL, 0, "table (retry.* below): tries per request and their backoff"},
    {"tls", "-", NULL, 0, "table (tls.* below): certificate authorities, client certificate, checking"},
};
static const jn_config_key retry_keys[] = {
    {"attempts", NULL, "producer.retry.attempts", SRC(retry.attempts), "tries per request, the first included"},
    {"base_ms", NULL, "producer.retry.base_ms", SRC(retry.base_ms), "ceiling of the first retry's delay (full jitter below it)"},
    {"multiplier", "producer.retry.multiplier", NULL, 0, "growth of the ceiling per retry, 1 to 100"},
    {"max_ms", NULL, "producer.retry.max_ms", SRC(retry.max_ms), "cap of one retry delay, Retry-After included"},
};
static const jn_config_key tls_keys[] = {
    {"ca_file", "system's", NULL, 0, "PEM file of the certificate authorities to trust"},
    {"cert_file", "none", NULL, 0, "PEM client certificate, for APIs that ask for one (mutual TLS)"},
    {"key_file", "none", NULL, 0, "PEM private key of cert_file, when the certificate file does not hold it"},
    {"verify", "true", NULL, 0, "check the server's certificate and name"},
};
/* clang-format on */

static const jn_config_level source_level = JN_CONFIG_LEVEL(source_keys, "a source");
static const jn_config_level retry_level = JN_CONFIG_LEVEL(retry_keys, "retry");
static const jn_config_level tls_level = JN_CONFIG_LEVEL(tls_keys, "tls");

/* ---- one source ------------------------------------------------------------------------ */

/* The URL is not echoed in messages: it may carry credentials. */
static int read_url(jn_config_reader *r, int t, const char *at, jn_source_config *s) {
    if (jn_config_req_string(r, t, at, "url", "the API the source polls", &s->url)) return -1;
    if (strncasecmp(s->url, "http://", 7) && strncasecmp(s->url, "https://", 8)) {
        jn_sb_printf(r->err, "config: %s.url must start with http:// or https://", at);
        return -1;
    }
    return 0;
}

static int read_method(jn_config_reader *r, int t, const char *at, jn_source_config *s) {
    if (jn_config_opt_string(r, t, at, "method", "GET", &s->method)) return -1;
    if (strcmp(s->method, "GET") && strcmp(s->method, "POST")) {
        jn_config_field(r->L, t, "method");
        return jn_config_bad_value(r, at, "method", "\"GET\" or \"POST\"",
                                   "a source reads; a POST is sent without a body");
    }
    return 0;
}

/* retry = { attempts, base_ms, multiplier, max_ms }: each left out is producer.retry.*'s. */
static int read_retry(jn_config_reader *r, int t, const char *at, jn_source_config *s) {
    lua_State *L = r->L;
    jn_config_fill_inherited(r->cfg, &retry_level, s);
    s->retry.multiplier = r->cfg->producer.retry.multiplier;
    char here[JN_CONFIG_PATH_LEN];
    int opened = jn_config_open_table(r, t, at, "retry",
                                      "a table { attempts, base_ms, multiplier, max_ms }", here);
    if (opened <= 0) return opened;
    int v = lua_gettop(L), rc = 0, type;
    if (jn_config_check_keys(r, v, here, &retry_level) ||
        jn_config_read_inherited(r, v, here, &retry_level, s))
        rc = -1;
    else if ((type = jn_config_field(L, v, "multiplier")) != LUA_TNIL) {
        double m = lua_tonumber(L, -1);
        if (type != LUA_TNUMBER || m < 1 || m > 100)
            rc = jn_config_bad_value(r, here, "multiplier", "a number from 1 to 100",
                                     "growth of the retry delay's ceiling per retry");
        else
            s->retry.multiplier = m, lua_pop(L, 1);
    } else {
        lua_pop(L, 1);
    }
    lua_pop(L, 1);
    return rc;
}

/* tls = { ca_file, cert_file, key_file, verify }. */
static int read_tls(jn_config_reader *r, int t, const char *at, jn_source_config *s) {
    s->tls.verify = 1;
    char here[JN_CONFIG_PATH_LEN];
    int opened = jn_config_open_table(r, t, at, "tls",
                                      "a table { ca_file, cert_file, key_file, verify }", here);
    if (opened <= 0) return opened;
    int v = lua_gettop(r->L), rc = 0;
    if (jn_config_check_keys(r, v, here, &tls_level) ||
        jn_config_opt_string(r, v, here, "ca_file", NULL, &s->tls.ca_file) ||
        jn_config_opt_string(r, v, here, "cert_file", NULL, &s->tls.cert_file) ||
        jn_config_opt_string(r, v, here, "key_file", NULL, &s->tls.key_file) ||
        jn_config_read_bool(r, v, here, "verify", 1, &s->tls.verify)) {
        rc = -1;
    } else if (s->tls.key_file && !s->tls.cert_file) {
        jn_sb_printf(r->err,
                     "config: %s.key_file is the key of a client certificate: set "
                     "%s.cert_file too",
                     here, here);
        rc = -1;
    }
    lua_pop(r->L, 1);
    return rc;
}

static int read_source(jn_config_reader *r, int t, const char *key, int index, void *entry);

static const jn_config_section section = {
    .key = "sources",
    .noun = "source",
    .a_noun = "a source",
    .empty_hint = "or leave the key out when the file runs no `junction produce`",
    .size = sizeof(jn_source_config),
    .read = read_source,
};

/* The source at t; key is its name in the map form, NULL in the list form (index is its
 * place there, from 1). */
static int read_source(jn_config_reader *r, int t, const char *key, int index, void *entry) {
    jn_source_config *s = entry;
    char at[JN_CONFIG_PATH_LEN];
    if (jn_config_entry_begin(r, t, &section, key, index, at) ||
        jn_config_check_keys(r, t, at, &source_level) ||
        jn_config_entry_name(r, t, at, key, &section, &s->name) ||
        jn_config_read_bool(r, t, at, "enabled", 1, &s->enabled) || read_url(r, t, at, s) ||
        read_method(r, t, at, s) ||
        jn_config_req_string(r, t, at, "topic", "the Kafka topic the records go to", &s->topic) ||
        jn_config_req_string(r, t, at, "script", "the map script, with map(record, ctx)",
                             &s->script) ||
        jn_config_opt_string(r, t, at, "noun", NOUN_DEFAULT, &s->noun) ||
        jn_config_read_inherited(r, t, at, &source_level, s) ||
        jn_config_read_bool(r, t, at, "publish_all", r->cfg->producer.publish_all,
                            &s->publish_all) ||
        jn_config_read_int(r, t, at, "max_pages", MAX_PAGES_DEFAULT, 1, MAX_PAGES_LIMIT,
                           &s->max_pages) ||
        read_retry(r, t, at, s) || read_tls(r, t, at, s))
        return -1;
    /* A source switched off needs none of its secrets: a deployment may leave them out. */
    if (!s->enabled) {
        s->headers = calloc(1, sizeof *s->headers);
        if (!s->headers) abort();
        return 0;
    }
    return jn_config_read_headers(r, t, at, &s->headers);
}

/* ---- the section ---------------------------------------------------------------------- */

/* Two sources publishing to one topic would mix their records under one another's keys
 * (and each would find the other's changes "new"). under is
 * where the sources are written. */
static int check_topics(jn_sb *err, const char *under, const jn_source_config *ss, int n) {
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            const jn_source_config *a = &ss[j], *b = &ss[i];
            if (a->enabled && b->enabled && !strcmp(a->topic, b->topic)) {
                jn_sb_printf(err,
                             "config: %s.%s and %s.%s both publish to topic \"%s\"; give each "
                             "source a topic of its own (a consumer tells records apart by "
                             "topic)",
                             under, a->name, under, b->name, a->topic);
                return -1;
            }
        }
    return 0;
}

int jn_config_sources_load(jn_config *cfg, lua_State *L, int idx, jn_sb *err) {
    jn_config_reader r = {L, cfg, err};
    void *entries;
    int rc = jn_config_read_section(&r, idx, &section, &entries, &cfg->nsources);
    cfg->sources = entries;
    if (rc || jn_config_unique_names(&r, &section, entries, cfg->nsources,
                                     offsetof(jn_source_config, name)))
        return -1;
    return check_topics(err, "sources", cfg->sources, cfg->nsources);
}

/* ---- freeing and describing --------------------------------------------------------- */

void jn_config_sources_free(jn_config *cfg) {
    for (int i = 0; i < cfg->nsources; i++) {
        jn_source_config *s = &cfg->sources[i];
        free(s->name);
        free(s->noun);
        free(s->url);
        free(s->method);
        jn_config_free_headers(s->headers);
        free(s->topic);
        free(s->script);
        free(s->tls.ca_file);
        free(s->tls.cert_file);
        free(s->tls.key_file);
    }
    free(cfg->sources);
    cfg->sources = NULL;
    cfg->nsources = 0;
}

void jn_config_sources_describe(void) {
    static const jn_config_described levels[] = {
        {"sources.<s>.", &source_level},
        {"sources.<s>.retry.", &retry_level},
        {"sources.<s>.tls.", &tls_level},
        {"sources.<s>.headers.<H>.", &jn_config_secret_level},
    };
    printf("\nSOURCES: `sources` is a list { { name = \"a\", ... }, ... } or a map { a = { ... }, "
           "... }: the APIs `junction produce` polls, one topic each.\n"
           "Without it there is none (examples/local.lua declares the seed's two).\n"
           "A default naming a producer.* key is that key's value; integers take its range "
           "too. Header values are given as for pipelines below.\n"
           "The map script may page: records(body, ctx) returns the array inside an envelope, "
           "next(response, ctx) the next page's URL or nil.\n");
    jn_config_describe_levels(levels, JN_CONFIG_COUNT(levels));
}
