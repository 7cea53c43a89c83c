/* The `apis` section of the config file: the mock APIs `junction api` serves, each a
 * listener and a data script with its faults, and optionally a bearer token and a paging
 * style. A file without the section has none (examples/local.lua declares the seed's
 * two), and `junction api` says so.
 *
 * Read like `pipelines` (config_read.c): raw, every key checked against a list, a list
 * of { name = ... } or a map by name. Numbers may also be given as strings holding one,
 * so `count = env("ORDERS_COUNT", 1000)` works; the whole string must be the
 * number. The token is a secret: no message shows it. */
#include "config_api.h"

#include <lauxlib.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config_read.h"
#include "router.h"
#include "secret.h"

#define MAX_COUNT 10000000
/* Pages hold at most this many records, whatever the config asks: one answer of a mock
 * API stays a few tens of MB at most. */
#define MAX_PAGE      100000
#define PAGE_SIZE     100
#define MAX_PAGE_SIZE 1000
/* The server keeps 511 bytes of Authorization (http_parse.h): "Bearer " and this fit. */
#define TOKEN_MAX 256
#define DEF_COUNT -1 /* the script's M.count, else 1000 */
#define DEF_SEED  42

/* clang-format off */
static const jn_config_key api_keys[] = {
    {"name", "required", NULL, 0, "letters, digits, _ and -, " JN_CONFIG_UP_TO ", unique; in the map form, the key"},
    {"listen", "required", NULL, 0, "\"host:port\" the API listens on; each API its own"},
    {"script", "required", NULL, 0, "script that generates and validates the records (scripts/orders.lua is one)"},
    {"count", "M.count or 1000", NULL, 0, "records generated at start, 0 to " JN_CONFIG_TEXT(MAX_COUNT) "; default: the script's M.count, else 1000"},
    {"seed", JN_CONFIG_TEXT(DEF_SEED), NULL, 0, "seed of the generated data"},
    {"resource", "M.resource or <name>", NULL, 0, "path of the records: GET /<resource>, /<resource>/:id; segments of letters, digits and -._~ joined by /"},
    {"singular", "M.singular or Record", NULL, 0, "noun of the 404 answer, {\"error\":\"<singular> not found\"}"},
    {"token", "none", NULL, 0, "bearer token every request must carry (else 401): a string, { env = \"NAME\" } or { file = \"/path\" }"},
    {"faults", "none", NULL, 0, "injected latency and errors (faults.* below); the script's M.faults overrides"},
    {"paging", "none", NULL, 0, "\"offset\", \"cursor\", \"link\" or a table (paging.* below); none: GET /<resource> answers the whole array"},
};
static const jn_config_key fault_keys[] = {
    {"latency_ms", "0", NULL, 0, "delay added to every response, 0 to " JN_CONFIG_TEXT(JN_FAULT_LATENCY_MS_MAX)},
    {"error_rate", "0", NULL, 0, "share of requests answered with error_status, 0 to 1"},
    {"error_status", "503", NULL, 0, "status of injected errors, " JN_CONFIG_TEXT(JN_FAULT_STATUS_MIN) " to " JN_CONFIG_TEXT(JN_FAULT_STATUS_MAX)},
    {"malformed_rate", "0", NULL, 0, "share of answers whose JSON body is cut short, 0 to 1"},
};
static const jn_config_key paging_keys[] = {
    {"style", "required", NULL, 0, "offset: ?offset=O&limit=L, a bare array; cursor: ?cursor=C&limit=L, {\"data\":[...],\"next_cursor\":\"...\"|null}; link: ?page=N&per_page=L, a bare array and Link: <...>; rel=\"next\""},
    {"page_size", JN_CONFIG_TEXT(PAGE_SIZE), NULL, 0, "records per page when the request gives no limit, 1 to " JN_CONFIG_TEXT(MAX_PAGE)},
    {"max_page_size", JN_CONFIG_TEXT(MAX_PAGE_SIZE) " or page_size", NULL, 0, "largest page a request gets (a larger limit is cut to it), page_size to " JN_CONFIG_TEXT(MAX_PAGE)},
};
static const jn_config_key token_keys[] = {
    {"env", "-", NULL, 0, "environment variable holding the token; when unset, <env>_FILE names a file holding it"},
    {"file", "-", NULL, 0, "regular file holding the token (a trailing line break is dropped)"},
};
/* clang-format on */

static const jn_config_level api_level = JN_CONFIG_LEVEL(api_keys, "an API");
static const jn_config_level fault_level = JN_CONFIG_LEVEL(fault_keys, "faults");
static const jn_config_level paging_level = JN_CONFIG_LEVEL(paging_keys, "paging");
static const jn_config_level token_level = JN_CONFIG_LEVEL(token_keys, "a token table");

static int read_api(jn_config_reader *r, int t, const char *key, int index, void *entry);

static const jn_config_section section = {
    .key = "apis",
    .noun = "API",
    .a_noun = "an API",
    .empty_hint = "or leave the key out when the file runs no `junction api`",
    .size = sizeof(jn_api_config),
    .read = read_api,
};

/* ---- values ------------------------------------------------------------------------ */

/* Whether s is a number as a person writes one in a config: digits, and for a fraction a
 * point and an exponent; no blanks, hex, inf or nan, which strtod would take too. */
static int numeric_text(const char *s, int integer) {
    if (!*s || strlen(s) > 24) return 0;
    for (const char *c = s; *c; c++)
        if (!(*c >= '0' && *c <= '9') && (integer || !strchr(".eE+-", *c))) return 0;
    return 1;
}

/* t[key], a number from min to max (a whole one when integer), or def when absent. */
static int read_number(jn_config_reader *r, int t, const char *at, const char *key, double min,
                       double max, int integer, double def, double *out) {
    int type = jn_config_field(r->L, t, key);
    if (type == LUA_TNIL) {
        lua_pop(r->L, 1);
        *out = def;
        return 0;
    }
    double v = NAN;
    if (type == LUA_TNUMBER) {
        v = lua_tonumber(r->L, -1);
    } else if (type == LUA_TSTRING) {
        const char *s = jn_config_plain_string(r->L);
        char *end;
        if (s && numeric_text(s, integer)) {
            double d = strtod(s, &end);
            if (!*end) v = d;
        }
    }
    if (!(v >= min && v <= max) || (integer && v != floor(v))) {
        char what[96];
        if (integer)
            snprintf(what, sizeof what, "an integer from %.0f to %.0f", min, max);
        else
            snprintf(what, sizeof what, "a number from %g to %g", min, max);
        return jn_config_bad_value(r, at, key, what, NULL);
    }
    *out = v;
    lua_pop(r->L, 1);
    return 0;
}

static int read_int(jn_config_reader *r, int t, const char *at, const char *key, int min, int max,
                    int def, int *out) {
    double v;
    if (read_number(r, t, at, key, min, max, 1, def, &v) != 0) return -1;
    *out = (int)v;
    return 0;
}

/* A sub-table of the API at t (faults, paging): 1 with it pushed and its path in here, 0
 * with nothing pushed when absent, -1 after an error (what: what it must be). */
static int open_table(jn_config_reader *r, int t, const char *at, const char *key,
                      const jn_config_level *lv, const char *what, char here[JN_CONFIG_PATH_LEN]) {
    int opened = jn_config_open_table(r, t, at, key, what, here);
    if (opened <= 0) return opened;
    if (jn_config_check_keys(r, lua_gettop(r->L), here, lv) != 0) {
        lua_pop(r->L, 1);
        return -1;
    }
    return 1;
}

static int read_listen(jn_config_reader *r, int t, const char *at, jn_addr *out) {
    jn_config_field(r->L, t, "listen");
    const char *s = jn_config_plain_string(r->L);
    if (!s || jn_config_parse_addr(s, out) != 0)
        return jn_config_bad_value(r, at, "listen", "\"host:port\" with a port from 1 to 65535",
                                   "where the API listens");
    lua_pop(r->L, 1);
    return 0;
}

static int read_faults(jn_config_reader *r, int t, const char *at, jn_faults *f) {
    char here[JN_CONFIG_PATH_LEN];
    *f = (jn_faults){.error_status = 503};
    int opened =
        open_table(r, t, at, "faults", &fault_level,
                   "a table { latency_ms, error_rate, error_status, malformed_rate }", here);
    if (opened <= 0) return opened;
    int v = lua_gettop(r->L), rc = 0;
    if (read_int(r, v, here, "latency_ms", 0, JN_FAULT_LATENCY_MS_MAX, 0, &f->latency_ms) ||
        read_number(r, v, here, "error_rate", 0, 1, 0, 0, &f->error_rate) ||
        read_int(r, v, here, "error_status", JN_FAULT_STATUS_MIN, JN_FAULT_STATUS_MAX, 503,
                 &f->error_status) ||
        read_number(r, v, here, "malformed_rate", 0, 1, 0, 0, &f->malformed_rate))
        rc = -1;
    lua_pop(r->L, 1);
    return rc;
}

/* The string on top as a paging style, popped; key is where it was written. */
static int take_style(jn_config_reader *r, const char *at, const char *key, jn_paging_style *out) {
    static const char *const names[] = {"offset", "cursor", "link"};
    static const jn_paging_style styles[] = {JN_PAGING_OFFSET, JN_PAGING_CURSOR, JN_PAGING_LINK};
    const char *s = jn_config_plain_string(r->L);
    for (size_t i = 0; s && i < JN_CONFIG_COUNT(names); i++)
        if (!strcmp(s, names[i])) {
            *out = styles[i];
            lua_pop(r->L, 1);
            return 0;
        }
    return jn_config_bad_value(r, at, key, "\"offset\", \"cursor\" or \"link\"",
                               "how GET /<resource> pages its answer");
}

/* paging = "cursor" is short for paging = { style = "cursor" }. */
static int read_paging(jn_config_reader *r, int t, const char *at, jn_api_config *a) {
    a->paging = JN_PAGING_NONE;
    a->page_size = PAGE_SIZE;
    a->max_page_size = MAX_PAGE_SIZE;
    if (jn_config_field(r->L, t, "paging") == LUA_TSTRING)
        return take_style(r, at, "paging", &a->paging);
    lua_pop(r->L, 1);
    char here[JN_CONFIG_PATH_LEN];
    int opened = open_table(r, t, at, "paging", &paging_level,
                            "\"offset\", \"cursor\", \"link\" or a table { style, page_size, "
                            "max_page_size }",
                            here);
    if (opened <= 0) return opened;
    int v = lua_gettop(r->L), rc = -1, given = jn_config_field(r->L, v, "max_page_size");
    lua_pop(r->L, 1);
    jn_config_field(r->L, v, "style");
    if (take_style(r, here, "style", &a->paging) == 0 &&
        read_int(r, v, here, "page_size", 1, MAX_PAGE, PAGE_SIZE, &a->page_size) == 0) {
        /* Left out, it follows a page_size above its default. */
        int def = a->page_size > MAX_PAGE_SIZE ? a->page_size : MAX_PAGE_SIZE;
        rc = read_int(r, v, here, "max_page_size", 1, MAX_PAGE, def, &a->max_page_size);
        if (rc == 0 && given != LUA_TNIL && a->max_page_size < a->page_size) {
            jn_sb_printf(r->err,
                         "config: %s.max_page_size (%d) must be at least page_size (%d): a "
                         "request without a limit gets page_size records",
                         here, a->max_page_size, a->page_size);
            rc = -1;
        }
    }
    lua_pop(r->L, 1);
    return rc;
}

static int read_resource(jn_config_reader *r, int t, const char *at, char **out) {
    int type = jn_config_field(r->L, t, "resource");
    const char *s = jn_config_plain_string(r->L);
    if (type == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    if (s && *s == '/') s++; /* "/customers" is what a person writes, too */
    if (!s || !jn_router_valid_path(s, JN_CONFIG_NAME_MAX))
        return jn_config_bad_value(r, at, "resource",
                                   "a path such as \"customers\" or \"v1/orders\": segments of "
                                   "letters, digits and -._~ joined by /, " JN_CONFIG_UP_TO,
                                   NULL);
    *out = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

int jn_config_valid_singular(const char *s) {
    size_t len = strlen(s);
    for (const char *c = s; *c; c++)
        if (*c < 0x20 || *c >= 0x7f) return 0;
    return len > 0 && len <= JN_CONFIG_NAME_MAX;
}

static int read_singular(jn_config_reader *r, int t, const char *at, char **out) {
    if (jn_config_field(r->L, t, "singular") == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    const char *s = jn_config_plain_string(r->L);
    if (!s || !jn_config_valid_singular(s))
        return jn_config_bad_value(r, at, "singular", "a word of printable ASCII, " JN_CONFIG_UP_TO,
                                   "the noun of \"<singular> not found\"");
    *out = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

/* RFC 6750's b64token, what a bearer token is made of: one that is not would never match
 * a well-formed header. */
static int is_b64token(const char *s) {
    size_t n = strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~+/");
    return n > 0 && strspn(s + n, "=") == strlen(s + n);
}

/* token: a string, { env = NAME } or { file = PATH }. The messages name where the token
 * comes from and never show it. */
static int read_token(jn_config_reader *r, int t, const char *at, char **out) {
    lua_State *L = r->L;
    char here[JN_CONFIG_PATH_LEN];
    jn_config_subpath(here, at, "token");
    int type = jn_config_field(L, t, "token"), rc = -1;
    if (type == LUA_TNIL)
        rc = 0;
    else if (type == LUA_TSTRING)
        rc = jn_config_secret_literal(r, here, out);
    else if (type == LUA_TTABLE)
        rc = jn_config_check_keys(r, lua_gettop(L), here, &token_level) ||
                     jn_config_secret_table(r, lua_gettop(L), here, out)
                 ? -1
                 : 0;
    else
        jn_sb_printf(r->err,
                     "config: %s must be a string, or { env = \"NAME\" } or { file = \"/path\" }, "
                     "got a %s",
                     here, luaL_typename(L, -1));
    lua_pop(L, 1);
    if (rc == 0 && *out && (strlen(*out) > TOKEN_MAX || !is_b64token(*out))) {
        jn_sb_printf(r->err,
                     "config: %s: the value is not a bearer token (RFC 6750: letters, digits and "
                     "-._~+/, then = padding, " JN_CONFIG_TEXT(TOKEN_MAX) " characters at most)",
                     here);
        rc = -1;
    }
    return rc;
}

/* ---- one API ------------------------------------------------------------------------- */

static int read_api(jn_config_reader *r, int t, const char *key, int index, void *entry) {
    jn_api_config *a = entry;
    char at[JN_CONFIG_PATH_LEN];
    if (jn_config_entry_begin(r, t, &section, key, index, at) ||
        jn_config_check_keys(r, t, at, &api_level) ||
        jn_config_entry_name(r, t, at, key, &section, &a->name) ||
        read_listen(r, t, at, &a->listen) ||
        jn_config_req_string(r, t, at, "script", "the script that generates the records",
                             &a->script) ||
        read_int(r, t, at, "count", 0, MAX_COUNT, DEF_COUNT, &a->count) ||
        read_int(r, t, at, "seed", 0, INT_MAX, DEF_SEED, &a->seed) ||
        read_resource(r, t, at, &a->resource) || read_singular(r, t, at, &a->singular) ||
        read_faults(r, t, at, &a->faults) || read_paging(r, t, at, a) ||
        read_token(r, t, at, &a->token))
        return -1;
    return 0;
}

/* ---- the section ---------------------------------------------------------------------- */

static int wildcard(const char *host) {
    return !strcmp(host, "0.0.0.0") || !strcmp(host, "::") || !strcmp(host, "[::]");
}

/* Two APIs on one address: the second would fail to listen with a message about a port in
 * use, when the mistake is in the config. A wildcard host takes the port on every
 * address. at names the section. */
static int check_listeners(const jn_api_config *apis, int n, const char *at, jn_sb *err) {
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            const jn_addr *a = &apis[j].listen, *b = &apis[i].listen;
            if (a->port != b->port) continue;
            if (!strcmp(a->host, b->host)) {
                jn_sb_printf(err,
                             "config: %s.%s.listen and %s.%s.listen are both %s:%d; give each "
                             "API its own port",
                             at, apis[j].name, at, apis[i].name, a->host, a->port);
                return -1;
            }
            if (wildcard(a->host) || wildcard(b->host)) {
                jn_sb_printf(err,
                             "config: %s.%s.listen (%s:%d) and %s.%s.listen (%s:%d) both take "
                             "port %d (%s is every address); give each API its own port",
                             at, apis[j].name, a->host, a->port, at, apis[i].name, b->host, b->port,
                             a->port, wildcard(a->host) ? a->host : b->host);
                return -1;
            }
        }
    return 0;
}

int jn_config_apis_load(jn_config *cfg, lua_State *L, int idx, jn_sb *err) {
    jn_config_reader r = {L, cfg, err};
    void *entries;
    int rc = jn_config_read_section(&r, idx, &section, &entries, &cfg->napis);
    cfg->apis = entries;
    if (rc ||
        jn_config_unique_names(&r, &section, cfg->apis, cfg->napis, offsetof(jn_api_config, name)))
        return -1;
    return check_listeners(cfg->apis, cfg->napis, section.key, err);
}

/* ---- freeing and describing --------------------------------------------------------- */

void jn_config_apis_free(jn_config *cfg) {
    for (int i = 0; i < cfg->napis; i++) {
        jn_api_config *a = &cfg->apis[i];
        free(a->name);
        free(a->script);
        free(a->resource);
        free(a->singular);
        jn_secret_free(a->token);
    }
    free(cfg->apis);
    cfg->apis = NULL;
    cfg->napis = 0;
}

void jn_config_apis_describe(void) {
    static const jn_config_described levels[] = {
        {"apis.<a>.", &api_level},
        {"apis.<a>.faults.", &fault_level},
        {"apis.<a>.paging.", &paging_level},
        {"apis.<a>.token.", &token_level},
    };
    printf("\nAPIS: `apis` is a list { { name = \"a\", ... }, ... } or a map { a = { ... }, ... } "
           "(served in name order) of the mock APIs junction api serves.\n"
           "Without it there is none (examples/local.lua declares the seed's two).\n"
           "The api.* keys without an API's name (max_body_bytes, request_timeout_ms, ...) "
           "apply to every API. Numbers may be strings holding one, for env(name, default).\n"
           "A token is a string, { env = \"NAME\" } or { file = \"/path\" }; a variable or "
           "file missing stops start-up, and no message shows the token.\n");
    jn_config_describe_levels(levels, JN_CONFIG_COUNT(levels));
}
