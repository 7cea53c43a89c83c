/* How junction connects to Kafka, beyond kafka.brokers: every librdkafka property a
 * deployment needs (TLS, SASL, timeouts, ...) applied to every producer, consumer and
 * admin client junction makes, from three places:
 *
 *   kafka.properties = { ["security.protocol"] = "SASL_SSL", ... }   any property
 *   kafka.security_protocol, kafka.sasl.*, kafka.ssl.*               named shortcuts
 *   KAFKA_PROPERTY_<NAME>, KAFKA_SASL_PASSWORD, ...                  the environment
 *
 * The environment overrides the file, property by property; within one of them, two
 * different values for one property are an error naming both places. Secrets (passwords,
 * keys) may come from { env = "NAME" } or { file = "/path" } as header values do
 * (config_pipeline.c reads them), or from NAME_FILE variables. Every property is checked
 * against librdkafka here, so a misspelt name or a bad value stops start-up with the key
 * that set it, before any client exists. Properties junction must set itself (the
 * idempotent producer, offsets committed only once settled, ...) are refused with what
 * to set instead. No message shows the value of a secret property (kafka_conf.h says
 * which are). */
#include "config_kafka.h"

#include <errno.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "config_pipeline.h"
#include "config_read.h"
#include "kafka_conf.h"
#include "secret.h"

extern char **environ;

#define ENV_PREFIX "KAFKA_PROPERTY_"
#define HIDDEN     "(hidden)"

/* A named shortcut: a config key and a variable for one librdkafka property. */
typedef struct {
    const char *key;      /* "kafka.sasl.password" */
    const char *property; /* "sasl.password" */
    const char *env;      /* "KAFKA_SASL_PASSWORD" */
    int secret_form;      /* also { env = NAME } or { file = PATH }, and the variable <env>_FILE */
    const char *doc;
} shortcut;

/* clang-format off */
static const shortcut shortcuts[] = {
    {"kafka.security_protocol", "security.protocol", "KAFKA_SECURITY_PROTOCOL", 0, "plaintext (the default), ssl, sasl_plaintext or sasl_ssl"},
    {"kafka.sasl.mechanism", "sasl.mechanism", "KAFKA_SASL_MECHANISM", 0, "PLAIN, SCRAM-SHA-256, SCRAM-SHA-512 or OAUTHBEARER"},
    {"kafka.sasl.username", "sasl.username", "KAFKA_SASL_USERNAME", 1, "SASL user name; a string, { env = \"NAME\" } or { file = \"/path\" }"},
    {"kafka.sasl.password", "sasl.password", "KAFKA_SASL_PASSWORD", 1, "SASL password, never shown; a string, { env = \"NAME\" } or { file = \"/path\" }"},
    {"kafka.ssl.ca_file", "ssl.ca.location", "KAFKA_SSL_CA_FILE", 0, "PEM file of the CAs that sign the brokers' certificates (default: the system's)"},
    {"kafka.ssl.cert_file", "ssl.certificate.location", "KAFKA_SSL_CERT_FILE", 0, "client certificate (PEM), for brokers that ask for one"},
    {"kafka.ssl.key_file", "ssl.key.location", "KAFKA_SSL_KEY_FILE", 0, "the client certificate's private key (PEM)"},
    {"kafka.ssl.key_password", "ssl.key.password", "KAFKA_SSL_KEY_PASSWORD", 1, "password of that key when it is encrypted, never shown; as kafka.sasl.password"},
};

/* Properties junction sets itself, because its guarantees rest on them, or because a key
 * of its own sets them; librdkafka's aliases included. */
static const struct {
    const char *name, *instead;
} owned[] = {
    {"bootstrap.servers", "set kafka.brokers (KAFKA_BOOTSTRAP_SERVERS)"},
    {"metadata.broker.list", "set kafka.brokers (KAFKA_BOOTSTRAP_SERVERS)"},
    {"client.id", "set kafka.client_id (JUNCTION_KAFKA_CLIENT_ID)"},
    {"group.id", "set a pipeline's group_id"},
    {"auto.offset.reset", "set consumer.auto_offset_reset or a pipeline's auto_offset_reset"},
    {"compression.type", "set kafka.compression"},
    {"compression.codec", "set kafka.compression"},
    {"linger.ms", "set kafka.linger_ms"},
    {"queue.buffering.max.ms", "set kafka.linger_ms"},
    {"queue.buffering.max.messages", "set kafka.queue_max_messages"},
    {"message.timeout.ms", "set kafka.message_timeout_ms"},
    {"delivery.timeout.ms", "set kafka.message_timeout_ms"},
    {"enable.idempotence", "the producer is always idempotent with acks=all, so no acknowledged record is lost or written twice"},
    {"acks", "the producer is always idempotent with acks=all, so no acknowledged record is lost or written twice"},
    {"request.required.acks", "the producer is always idempotent with acks=all, so no acknowledged record is lost or written twice"},
    {"enable.auto.commit", "the consumer commits an offset only once every message before it is settled"},
    {"enable.auto.offset.store", "the consumer commits an offset only once every message before it is settled"},
    {"partition.assignment.strategy", "the consumer's rebalancing is built on the eager range assignor"},
    {"enable.partition.eof", "each of junction's readers sets it as it needs"},
    {"log.queue", "junction serves librdkafka's log lines on its event loop"},
};
/* clang-format on */

#define COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* One property as resolved so far. */
typedef struct {
    char *name, *value;
    char source[160]; /* where it was set, for messages */
    int from_env;
} prop;

typedef struct {
    prop *v;
    int n;
    jn_sb *err;
} props;

static void free_value(char *s) {
    jn_secret_free(s);
}

static const char *shown(const char *name, const char *value) {
    return jn_kafka_conf_is_secret(name) ? HIDDEN : value;
}

/* Adds name=value (value is taken over) set at source. */
static int add(props *ps, const char *name, char *value, const char *source, int from_env) {
    for (size_t i = 0; i < COUNT(owned); i++) {
        if (strcasecmp(name, owned[i].name)) continue;
        jn_sb_printf(ps->err, "config: %s: junction sets the Kafka property %s itself; %s", source,
                     name, owned[i].instead);
        free_value(value);
        return -1;
    }
    for (int i = 0; i < ps->n; i++) {
        prop *p = &ps->v[i];
        if (strcmp(p->name, name)) continue;
        if (p->from_env == from_env && strcmp(p->value, value)) {
            jn_sb_printf(ps->err, "config: %s and %s both set the Kafka property %s; keep one",
                         p->source, source, name);
            free_value(value);
            return -1;
        }
        /* The same value twice, or the environment over the file. */
        free_value(p->value);
        p->value = value;
        snprintf(p->source, sizeof p->source, "%s", source);
        p->from_env = from_env;
        return 0;
    }
    ps->v = realloc(ps->v, (size_t)(ps->n + 1) * sizeof *ps->v);
    if (!ps->v) abort();
    prop *p = &ps->v[ps->n++];
    p->name = strdup(name);
    p->value = value;
    snprintf(p->source, sizeof p->source, "%s", source);
    p->from_env = from_env;
    return 0;
}

static void props_free(props *ps) {
    for (int i = 0; i < ps->n; i++) {
        free(ps->v[i].name);
        free_value(ps->v[i].value);
    }
    free(ps->v);
    ps->v = NULL;
    ps->n = 0;
}

/* ---- the file ---------------------------------------------------------------------- */

static int field(lua_State *L, int t, const char *key) {
    t = lua_absindex(L, t);
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

/* The value on top of the stack (popped) as a property value: a string, a number, a
 * boolean, or { env = NAME } / { file = PATH }. */
static int take_value(lua_State *L, const jn_config *cfg, const char *at, jn_sb *err, char **out) {
    int rc = 0;
    switch (lua_type(L, -1)) {
    case LUA_TNUMBER:
        lua_pushvalue(L, -1); /* tostring converts in place: convert a copy */
        *out = strdup(lua_tostring(L, -1));
        lua_pop(L, 1);
        break;
    case LUA_TBOOLEAN:
        *out = strdup(lua_toboolean(L, -1) ? "true" : "false");
        break;
    default:
        rc = jn_config_secret_value(L, -1, cfg, at, err, out);
        break;
    }
    lua_pop(L, 1);
    return rc;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* kafka.properties: property name -> value, taken in name order. */
static int read_properties(props *ps, lua_State *L, int k, const jn_config *cfg) {
    int type = field(L, k, "properties");
    if (type == LUA_TNIL) {
        lua_pop(L, 1);
        return 0;
    }
    if (type != LUA_TTABLE) {
        /* The type alone: a string here may hold a secret. */
        jn_sb_printf(ps->err,
                     "config: kafka.properties must be a table of librdkafka properties, "
                     "{ [\"security.protocol\"] = \"SASL_SSL\", ... }, got a %s",
                     luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    int t = lua_gettop(L), n = 0, rc = 0;
    char **names = NULL;
    lua_pushnil(L);
    while (lua_next(L, t)) {
        size_t len = 0;
        const char *name = lua_type(L, -2) == LUA_TSTRING ? lua_tolstring(L, -2, &len) : NULL;
        if (!name || !len || strlen(name) != len) {
            char val[160];
            jn_config_describe_value(L, -2, val, sizeof val);
            jn_sb_printf(ps->err,
                         "config: kafka.properties has a key %s; its keys are librdkafka "
                         "property names such as [\"security.protocol\"]",
                         val);
            lua_pop(L, 2);
            rc = -1;
            break;
        }
        names = realloc(names, (size_t)(n + 1) * sizeof *names);
        if (!names || !(names[n++] = strdup(name))) abort();
        lua_pop(L, 1);
    }
    if (n) qsort(names, (size_t)n, sizeof *names, compare_names);
    for (int i = 0; rc == 0 && i < n; i++) {
        char at[160];
        snprintf(at, sizeof at, "kafka.properties[\"%s\"]", names[i]);
        char *value = NULL;
        field(L, t, names[i]);
        rc = take_value(L, cfg, at, ps->err, &value);
        if (rc == 0) rc = add(ps, names[i], value, at, 0);
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    lua_pop(L, 1);
    return rc;
}

/* The last part of a shortcut's key, and the section it is in ("sasl", or "" for
 * kafka.security_protocol). */
static const char *leaf(const shortcut *s, char section[16]) {
    const char *rest = s->key + strlen("kafka.");
    const char *dot = strchr(rest, '.');
    snprintf(section, 16, "%.*s", dot ? (int)(dot - rest) : 0, rest);
    return dot ? dot + 1 : rest;
}

/* A section's keys must be shortcuts of it: a typo would leave a password unset without
 * a word. */
static int check_section(props *ps, lua_State *L, int t, const char *section) {
    lua_pushnil(L);
    while (lua_next(L, t)) {
        const char *key = lua_type(L, -2) == LUA_TSTRING ? lua_tostring(L, -2) : NULL;
        const char *near = NULL;
        size_t best = 99;
        int known = 0;
        char sec[16];
        for (size_t i = 0; key && i < COUNT(shortcuts); i++) {
            const char *l = leaf(&shortcuts[i], sec);
            if (strcmp(sec, section)) continue;
            if (!strcmp(l, key)) known = 1;
            size_t d = jn_config_edit_distance(key, l);
            if (d <= 1 + strlen(l) / 4 && d < best) best = d, near = l;
        }
        if (!known) {
            char val[160];
            jn_config_describe_value(L, -2, val, sizeof val);
            if (near)
                jn_sb_printf(ps->err, "config: unknown key kafka.%s.%s (did you mean kafka.%s.%s?)",
                             section, key, section, near);
            else
                jn_sb_printf(ps->err,
                             "config: kafka.%s has a key %s; `junction --help-config` lists "
                             "the kafka.%s.* keys",
                             section, val, section);
            lua_pop(L, 2);
            return -1;
        }
        lua_pop(L, 1);
    }
    return 0;
}

/* Pushes the shortcut's value in the kafka table at k (nil when absent) and returns its
 * type; -1 (nothing pushed) when its section is not a table or has an unknown key. */
static int push_shortcut(props *ps, lua_State *L, int k, const shortcut *s) {
    char section[16];
    const char *l = leaf(s, section);
    if (!*section) return field(L, k, l);
    int type = field(L, k, section);
    if (type == LUA_TNIL) return LUA_TNIL; /* the nil stays as the value */
    if (type != LUA_TTABLE) {
        jn_sb_printf(ps->err, "config: kafka.%s must be a table (kafka.%s.* keys), got a %s",
                     section, section, luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    if (check_section(ps, L, lua_gettop(L), section) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    type = field(L, -1, l);
    lua_remove(L, -2);
    return type;
}

static int read_shortcuts(props *ps, lua_State *L, int k, const jn_config *cfg) {
    for (size_t i = 0; i < COUNT(shortcuts); i++) {
        const shortcut *s = &shortcuts[i];
        int type = push_shortcut(ps, L, k, s);
        if (type < 0) return -1;
        if (type == LUA_TNIL) {
            lua_pop(L, 1);
            continue;
        }
        char *value = NULL;
        if (s->secret_form) {
            if (take_value(L, cfg, s->key, ps->err, &value) != 0) return -1;
        } else if (type == LUA_TSTRING && *lua_tostring(L, -1)) {
            value = strdup(lua_tostring(L, -1));
            lua_pop(L, 1);
        } else {
            char val[160];
            jn_config_describe_value(L, -1, val, sizeof val);
            jn_sb_printf(ps->err, "config: %s must be a non-empty string (%s), got %s", s->key,
                         s->doc, val);
            lua_pop(L, 1);
            return -1;
        }
        if (add(ps, s->property, value, s->key, 0) != 0) return -1;
    }
    return 0;
}

static int load_from_file(props *ps, lua_State *L, const jn_config *cfg) {
    if (!L) return 0;
    /* config.c's walk has refused a `kafka` that is not a table. */
    if (field(L, -1, "kafka") != LUA_TTABLE) {
        lua_pop(L, 1);
        return 0;
    }
    int k = lua_gettop(L);
    int rc = read_properties(ps, L, k, cfg) != 0 || read_shortcuts(ps, L, k, cfg) != 0 ? -1 : 0;
    lua_settop(L, k - 1);
    return rc;
}

/* ---- the environment --------------------------------------------------------------- */

/* The variable var (or the file var_FILE names) for property name. An empty variable
 * counts as unset: compose files pass `NAME=` for what they leave out. */
static int add_from_env(props *ps, const char *name, const char *var, const char *at) {
    char file_var[160];
    snprintf(file_var, sizeof file_var, "%s_FILE", var);
    const char *v = getenv(var);
    if (v && !*v) return 0;
    char *value = NULL;
    int rc = jn_secret_from_env(at, var, &value, ps->err);
    if (rc <= 0) return rc;
    return add(ps, name, value, v ? var : file_var, 1);
}

/* KAFKA_PROPERTY_SASL_KERBEROS_SERVICE_NAME is sasl.kerberos.service.name: lower case,
 * dots for underscores (every property librdkafka takes as a string is dotted; the few
 * with an underscore are set through the file). <var>_FILE names a file holding the
 * value. */
static int load_properties_env(props *ps) {
    for (char **e = environ; *e; e++) {
        if (strncmp(*e, ENV_PREFIX, strlen(ENV_PREFIX))) continue;
        const char *eq = strchr(*e, '=');
        char var[160];
        snprintf(var, sizeof var, "%.*s", eq ? (int)(eq - *e) : 0, *e);
        size_t len = strlen(var);
        /* NAME_FILE counts under NAME, once: skipped when NAME itself is set. */
        if (len > 5 && !strcmp(var + len - 5, "_FILE")) {
            var[len -= 5] = '\0';
            if (getenv(var)) continue;
        }
        char name[160];
        size_t n = 0;
        for (const char *c = var + strlen(ENV_PREFIX); *c && n + 1 < sizeof name; c++)
            name[n++] = *c == '_' ? '.' : (char)((*c >= 'A' && *c <= 'Z') ? *c - 'A' + 'a' : *c);
        name[n] = '\0';
        if (!n) {
            jn_sb_printf(ps->err,
                         "environment: %s names no Kafka property; write it as %s<NAME>, e.g. "
                         "%sSECURITY_PROTOCOL",
                         var, ENV_PREFIX, ENV_PREFIX);
            return -1;
        }
        if (add_from_env(ps, name, var, var) != 0) return -1;
    }
    return 0;
}

static int load_from_env(props *ps) {
    if (load_properties_env(ps) != 0) return -1;
    for (size_t i = 0; i < COUNT(shortcuts); i++) {
        const shortcut *s = &shortcuts[i];
        const char *v = getenv(s->env);
        if (s->secret_form) {
            if (add_from_env(ps, s->property, s->env, s->key) != 0) return -1;
        } else if (v && *v) {
            char *value = strdup(v);
            if (add(ps, s->property, value, s->env, 1) != 0) return -1;
        }
    }
    return 0;
}

/* ---- checks ------------------------------------------------------------------------ */

/* librdkafka's property names, from its own table, and the one nearest to name if it
 * is near enough to be a typo of it. */
static char *nearest_property(const char *name) {
    char *text = NULL, *best = NULL;
    size_t size = 0, best_d = 99;
    FILE *f = open_memstream(&text, &size);
    if (!f) return NULL;
    rd_kafka_conf_properties_show(f);
    fclose(f);
    char *save = NULL;
    for (char *line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
        if (*line < 'a' || *line > 'z' || !strchr(line, '|')) continue;
        line[strcspn(line, " |")] = '\0';
        size_t d = jn_config_edit_distance(name, line);
        if (d <= 1 + strlen(line) / 4 && d < best_d) {
            free(best);
            best = strdup(line);
            best_d = d;
        }
    }
    free(text);
    return best;
}

static int check_with_librdkafka(props *ps) {
    for (int i = 0; i < ps->n; i++) {
        const prop *p = &ps->v[i];
        char why[512];
        if (jn_kafka_conf_check(p->name, p->value, why, sizeof why) == 0) continue;
        jn_sb_printf(ps->err, "config: %s: librdkafka refuses %s=%s: %s", p->source, p->name,
                     shown(p->name, p->value), why);
        char *near =
            strstr(why, "No such configuration property") ? nearest_property(p->name) : NULL;
        if (near) jn_sb_printf(ps->err, " (did you mean %s?)", near);
        free(near);
        return -1;
    }
    return 0;
}

static const prop *find(const props *ps, const char *name) {
    for (int i = 0; i < ps->n; i++)
        if (!strcmp(ps->v[i].name, name)) return &ps->v[i];
    return NULL;
}

/* A login given to a connection that sends none: librdkafka would only warn, and the
 * password would go unused while the broker refuses the connection for another reason. */
static int check_sasl(props *ps) {
    static const char *const sasl[] = {"sasl.username", "sasl.password", "sasl.mechanism",
                                       "sasl.mechanisms"};
    const prop *proto = find(ps, "security.protocol");
    if (proto && !strncasecmp(proto->value, "sasl_", 5)) return 0;
    for (size_t i = 0; i < COUNT(sasl); i++) {
        const prop *p = find(ps, sasl[i]);
        if (!p) continue;
        jn_sb_printf(ps->err,
                     "config: %s is set, but the Kafka security protocol is %s%s%s, which sends "
                     "no SASL login; set kafka.security_protocol = \"SASL_SSL\" "
                     "(or KAFKA_SECURITY_PROTOCOL)",
                     p->source, proto ? proto->value : "plaintext",
                     proto ? " from " : " (the default)", proto ? proto->source : "");
        return -1;
    }
    return 0;
}

/* Files named for TLS must be there now: librdkafka would say so only when the first
 * client is made. */
static int check_files(props *ps) {
    static const char *const files[] = {"ssl.ca.location", "ssl.certificate.location",
                                        "ssl.key.location"};
    for (size_t i = 0; i < COUNT(files); i++) {
        const prop *p = find(ps, files[i]);
        /* "probe": librdkafka looks in the usual places of the system. */
        if (!p || !strcmp(p->value, "probe") || access(p->value, R_OK) == 0) continue;
        jn_sb_printf(ps->err, "config: %s: cannot read %s (%s)", p->source, p->value,
                     strerror(errno));
        return -1;
    }
    return 0;
}

/* ---- the interface ------------------------------------------------------------------ */

int jn_config_kafka_owns(const char *key) {
    static const char *const owned_keys[] = {"kafka.properties", "kafka.security_protocol",
                                             "kafka.sasl", "kafka.ssl"};
    for (size_t i = 0; i < COUNT(owned_keys); i++) {
        size_t n = strlen(owned_keys[i]);
        if (!strncmp(key, owned_keys[i], n) && (key[n] == '\0' || key[n] == '.')) return 1;
    }
    return 0;
}

const char *jn_config_kafka_key(size_t i) {
    if (i == 0) return "kafka.properties";
    return i - 1 < COUNT(shortcuts) ? shortcuts[i - 1].key : NULL;
}

/* The secret values known so far blanked out of what this load appended to err, from
 * byte `from` on: a secret put into a property whose name does not say so (a password as
 * security.protocol) would otherwise be echoed by the message refusing it. */
static void hide_secrets(props *ps, size_t from) {
    jn_kafka_secrets s = {0};
    for (int i = 0; i < ps->n; i++) {
        const char *const pair[] = {ps->v[i].name, ps->v[i].value, NULL};
        jn_kafka_secrets_add(&s, pair);
    }
    char buf[2048];
    const char *text = ps->err->data + from;
    const char *hidden = jn_kafka_secrets_hide(&s, text, buf, sizeof buf);
    if (hidden != text) {
        ps->err->len = from;
        jn_sb_puts(ps->err, hidden);
    }
    jn_kafka_secrets_free(&s);
}

int jn_config_kafka_load(jn_config *cfg, lua_State *L, jn_sb *err) {
    props ps = {.err = err};
    size_t from = err->len;
    int rc = load_from_file(&ps, L, cfg) || load_from_env(&ps) || check_with_librdkafka(&ps) ||
                     check_sasl(&ps) || check_files(&ps)
                 ? -1
                 : 0;
    if (rc != 0 && err->data) hide_secrets(&ps, from);
    if (rc == 0 && ps.n) {
        cfg->kafka.properties = calloc((size_t)ps.n * 2 + 1, sizeof *cfg->kafka.properties);
        if (!cfg->kafka.properties) abort();
        for (int i = 0; i < ps.n; i++) {
            cfg->kafka.properties[2 * i] = ps.v[i].name;
            cfg->kafka.properties[2 * i + 1] = ps.v[i].value;
            ps.v[i].name = ps.v[i].value = NULL;
        }
    }
    props_free(&ps);
    return rc;
}

void jn_config_kafka_free(jn_config *cfg) {
    for (char **p = cfg->kafka.properties; p && *p; p++)
        free_value(*p);
    free(cfg->kafka.properties);
    cfg->kafka.properties = NULL;
}

void jn_config_kafka_describe(void) {
    printf("%-36s %-24s %-34s %s\n", "kafka.properties", "none", ENV_PREFIX "<NAME>",
           "any librdkafka property, [\"name\"] = value (a string, number, boolean, or { env = "
           "\"NAME\" } / { file = \"/path\" }); <NAME> is the name in capitals with _ for . "
           "(KAFKA_PROPERTY_SASL_OAUTHBEARER_CLIENT_SECRET), and <NAME>_FILE names a file "
           "holding the value; the environment overrides the file");
    for (size_t i = 0; i < COUNT(shortcuts); i++) {
        char env[64];
        snprintf(env, sizeof env, "%s%s", shortcuts[i].env,
                 shortcuts[i].secret_form ? "[_FILE]" : "");
        printf("%-36s %-24s %-34s %s (sets %s)\n", shortcuts[i].key, "none", env, shortcuts[i].doc,
               shortcuts[i].property);
    }
}
