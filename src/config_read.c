/* Reading the config file's nested sections; see config_read.h. Moved here from
 * config_pipeline.c when `sources` came to need the same: one reader of keys, names and
 * secrets for every section, so each reports mistakes the same way. */
#include "config_read.h"

#include <lauxlib.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config_pipeline.h"
#include "secret.h"

/* clang-format off */
static const jn_cfg_key secret_keys[] = {
    {"env", "-", NULL, 0, "environment variable holding the value; when unset, <env>_FILE names a file holding it"},
    {"file", "-", NULL, 0, "regular file holding the value, " JN_CFG_TEXT(JN_SECRET_MAX_BYTES) " bytes at most (a trailing line break is dropped)"},
    {"prefix", "\"\"", NULL, 0, "written before the value, e.g. \"Bearer \""},
};
/* clang-format on */
const jn_cfg_level jn_cfg_secret_level = JN_CFG_LEVEL(secret_keys, "a header value table");

/* at.key into out, marked with "..." when cut short. */
void jn_cfg_subpath(char out[JN_CFG_PATH_LEN], const char *at, const char *key) {
    if (snprintf(out, JN_CFG_PATH_LEN, "%s.%s", at, key) >= JN_CFG_PATH_LEN)
        strcpy(out + JN_CFG_PATH_LEN - 4, "...");
}

/* ---- values ------------------------------------------------------------------------ */

/* Pushes t[key], raw, and returns its type. */
int jn_cfg_field(lua_State *L, int t, const char *key) {
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

/* The value on top of the stack if it is a non-empty string without NUL bytes. */
const char *jn_cfg_plain_string(lua_State *L) {
    size_t len;
    if (lua_type(L, -1) != LUA_TSTRING) return NULL;
    const char *s = lua_tolstring(L, -1, &len);
    return len && strlen(s) == len ? s : NULL;
}

/* Appends "config: <at>.<key> must be <what> (<why>), got <value>" for the value on top
 * (nil: missing, said without "got"), pops it and returns -1. Never for header values. */
int jn_cfg_bad_value(jn_cfg_reader *r, const char *at, const char *key, const char *what,
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
int jn_cfg_take_string(jn_cfg_reader *r, const char *at, const char *key, const char *why,
                       char **out) {
    const char *s = jn_cfg_plain_string(r->L);
    if (!s) return jn_cfg_bad_value(r, at, key, "a non-empty string", why);
    *out = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

/* t[key], which must be there; why says what it is for. */
int jn_cfg_req_string(jn_cfg_reader *r, int t, const char *at, const char *key, const char *why,
                      char **out) {
    jn_cfg_field(r->L, t, key);
    return jn_cfg_take_string(r, at, key, why, out);
}

/* t[key], or a copy of def (NULL: none) when absent. */
int jn_cfg_opt_string(jn_cfg_reader *r, int t, const char *at, const char *key, const char *def,
                      char **out) {
    if (jn_cfg_field(r->L, t, key) == LUA_TNIL) {
        lua_pop(r->L, 1);
        *out = def ? strdup(def) : NULL;
        return 0;
    }
    return jn_cfg_take_string(r, at, key, NULL, out);
}

int jn_cfg_read_bool(jn_cfg_reader *r, int t, const char *at, const char *key, int def, int *out) {
    int type = jn_cfg_field(r->L, t, key);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        return jn_cfg_bad_value(r, at, key, "true or false", NULL);
    *out = type == LUA_TNIL ? def : lua_toboolean(r->L, -1);
    lua_pop(r->L, 1);
    return 0;
}

int jn_cfg_open_table(jn_cfg_reader *r, int t, const char *at, const char *key, const char *what,
                      char here[JN_CFG_PATH_LEN]) {
    int type = jn_cfg_field(r->L, t, key);
    if (type == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    if (type != LUA_TTABLE) return jn_cfg_bad_value(r, at, key, what, NULL);
    jn_cfg_subpath(here, at, key);
    return 1;
}

/* The schema key a level's integer defaults to: the sections' tables name only integer
 * schema keys, so a miss is a mistake in them. */
static void inherit(const jn_config *cfg, const char *from, int *value, int *min, int *max) {
    if (jn_config_int_key(cfg, from, value, min, max) != 0) {
        fprintf(stderr, "config: %s is not an integer key of the schema\n", from);
        abort();
    }
}

void jn_cfg_fill_inherited(const jn_config *cfg, const jn_cfg_level *lv, void *base) {
    for (size_t i = 0; i < lv->n; i++) {
        int min, max;
        if (lv->keys[i].from)
            inherit(cfg, lv->keys[i].from, (int *)((char *)base + lv->keys[i].offset), &min, &max);
    }
}

/* The integer on top (popping it), from min to max. */
static int take_int(jn_cfg_reader *r, const char *at, const char *key, int min, int max, int *out) {
    int isint = 0;
    lua_Integer v = lua_type(r->L, -1) == LUA_TNUMBER ? lua_tointegerx(r->L, -1, &isint) : 0;
    if (!isint || v < min || v > max) {
        char what[64];
        snprintf(what, sizeof what, "an integer from %d to %d", min, max);
        return jn_cfg_bad_value(r, at, key, what, NULL);
    }
    *out = (int)v;
    lua_pop(r->L, 1);
    return 0;
}

int jn_cfg_read_inherited(jn_cfg_reader *r, int t, const char *at, const jn_cfg_level *lv,
                          void *base) {
    for (size_t i = 0; i < lv->n; i++) {
        const jn_cfg_key *k = &lv->keys[i];
        if (!k->from) continue;
        int *slot = (int *)((char *)base + k->offset), min, max;
        inherit(r->cfg, k->from, slot, &min, &max);
        if (jn_cfg_field(r->L, t, k->key) == LUA_TNIL) {
            lua_pop(r->L, 1);
            continue;
        }
        if (take_int(r, at, k->key, min, max, slot) != 0) return -1;
    }
    return 0;
}

int jn_cfg_read_int(jn_cfg_reader *r, int t, const char *at, const char *key, int def, int min,
                    int max, int *out) {
    if (jn_cfg_field(r->L, t, key) == LUA_TNIL) {
        lua_pop(r->L, 1);
        *out = def;
        return 0;
    }
    return take_int(r, at, key, min, max, out);
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
int jn_cfg_is_name(const char *s, int pipeline) {
    size_t len = strlen(s);
    if (len == 0 || len > JN_CFG_NAME_MAX || (!pipeline && is_digit(s[0]))) return 0;
    for (const char *c = s; *c; c++)
        if (!is_letter(*c) && !is_digit(*c) && !(pipeline && *c == '-')) return 0;
    return 1;
}

static void list_keys(jn_sb *sb, const jn_cfg_level *lv) {
    for (size_t i = 0; i < lv->n; i++)
        jn_sb_printf(sb, "%s%s", i ? ", " : "", lv->keys[i].key);
}

/* The key of lv nearest to key, if near enough to be a typo of it: one edit, and one more
 * per four letters; more on a short word makes another word ("url" is not "key"). */
static const char *nearest_key(const jn_cfg_level *lv, const char *key) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < lv->n; i++) {
        size_t d = jn_config_edit_distance(key, lv->keys[i].key);
        if (d <= 1 + strlen(lv->keys[i].key) / 4 && d < best_d) best_d = d, best = lv->keys[i].key;
    }
    return best;
}

static void unknown_key(jn_cfg_reader *r, const char *at, const char *key, const jn_cfg_level *lv) {
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
int jn_cfg_check_keys(jn_cfg_reader *r, int t, const char *at, const jn_cfg_level *lv) {
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

void jn_cfg_free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

/* The keys of the map at t, sorted so the order of what they name does not hang on the
 * hash table; -1 after the error when one is not a string. */
int jn_cfg_sorted_keys(jn_cfg_reader *r, int t, const char *at, const char *hint, char ***out,
                       int *n) {
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
            jn_cfg_free_names(names, count);
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
static int secret_from_env(jn_cfg_reader *r, const char *at, const char *var, char **out) {
    int rc = jn_secret_from_env(at, var, out, r->err);
    if (rc == 0)
        jn_sb_printf(r->err,
                     "config: %s: the environment variable %s is not set, nor is %s_FILE (the "
                     "path of a file holding the value); set one of them",
                     at, var, var);
    return rc == 1 ? 0 : -1;
}

/* A header table's prefix ("Bearer "): a string of one line, "" when absent. */
static int read_prefix(jn_cfg_reader *r, int t, const char *at, char **out) {
    int type = jn_cfg_field(r->L, t, "prefix");
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
static int secret_from_table(jn_cfg_reader *r, int t, const char *at, char **out) {
    lua_State *L = r->L;
    int has_env = jn_cfg_field(L, t, "env") != LUA_TNIL;
    int has_file = jn_cfg_field(L, t, "file") != LUA_TNIL;
    lua_pop(L, 2);
    if (has_env == has_file) {
        jn_sb_printf(r->err, "config: %s %s", at,
                     has_env ? "takes env or file, not both"
                             : "needs env = \"NAME\" (an environment variable) or file = "
                               "\"/path\" (a file) holding the value");
        return -1;
    }
    char *src = NULL;
    if (jn_cfg_req_string(r, t, at, has_env ? "env" : "file",
                          has_env ? "the name of an environment variable" : "the path of a file",
                          &src) != 0)
        return -1;
    int rc;
    if (has_env && !jn_cfg_is_name(src, 0)) {
        /* Not echoed: a value put here by mistake would be the secret itself. */
        jn_sb_printf(r->err,
                     "config: %s.env must be the name of an environment variable (letters, "
                     "digits and _, " JN_CFG_UP_TO_MAX "), not the value",
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
static int literal_value(jn_cfg_reader *r, const char *at, char **out) {
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
static int header_from_table(jn_cfg_reader *r, int t, const char *at, char **prefix, char **value) {
    if (jn_cfg_check_keys(r, t, at, &jn_cfg_secret_level) || read_prefix(r, t, at, prefix) ||
        secret_from_table(r, t, at, value))
        return -1;
    return 0;
}

/* One header of the headers table at t: a string, or { env | file [, prefix] }. */
static int read_header(jn_cfg_reader *r, int t, const char *at, const char *name, char **line) {
    lua_State *L = r->L;
    char here[JN_CFG_PATH_LEN];
    jn_cfg_subpath(here, at, name);
    int type = jn_cfg_field(L, t, name);
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

int jn_cfg_read_headers(jn_cfg_reader *r, int t, const char *at, char ***out) {
    lua_State *L = r->L;
    int type = jn_cfg_field(L, t, "headers");
    if (type != LUA_TNIL && type != LUA_TTABLE) {
        /* The type alone: a string here is likely a header with its secret. */
        jn_sb_printf(r->err, "config: %s.headers must be a table, header name -> value, got a %s",
                     at, luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    char here[JN_CFG_PATH_LEN], **names = NULL;
    int n = 0, rc = 0;
    jn_cfg_subpath(here, at, "headers");
    if (type == LUA_TTABLE &&
        jn_cfg_sorted_keys(r, lua_gettop(L), here, "name each header: { Authorization = ... }",
                           &names, &n) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    char **headers = *out = calloc((size_t)n + 1, sizeof *headers);
    for (int i = 0; i < n && rc == 0; i++) {
        if (!is_token(names[i])) {
            jn_sb_printf(r->err,
                         "config: %s has a header named \"%s\"; a header name is letters, "
                         "digits and !#$%%&'*+-.^_`|~",
                         here, names[i]);
            rc = -1;
        } else {
            rc = read_header(r, lua_gettop(L), here, names[i], &headers[i]);
        }
    }
    jn_cfg_free_names(names, n);
    lua_pop(L, 1);
    return rc;
}

int jn_cfg_bad_name(jn_cfg_reader *r, const char *at, const char *kind, const char *name,
                    const char *rule) {
    jn_sb_printf(r->err, "config: %s has %s named \"%s\"; %s", at, kind, name, rule);
    return -1;
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

void jn_cfg_free_headers(char **headers) {
    for (char **h = headers; h && *h; h++)
        jn_secret_free(*h);
    free(headers);
}

/* ---- sections of named entries -------------------------------------------------------- */

/* Where messages about the entry at t point: <section>.<name>, or <section>[<index>] in a
 * list while the name is not a usable one. */
static void entry_path(lua_State *L, const jn_cfg_section *s, int t, const char *key, int index,
                       char at[JN_CFG_PATH_LEN]) {
    const char *name = key;
    if (!name && lua_istable(L, t) && jn_cfg_field(L, t, "name") == LUA_TSTRING &&
        jn_cfg_is_name(lua_tostring(L, -1), 1))
        name = lua_tostring(L, -1);
    if (name)
        snprintf(at, JN_CFG_PATH_LEN, "%s.%s", s->section, name);
    else
        snprintf(at, JN_CFG_PATH_LEN, "%s[%d]", s->section, index);
    if (!key && lua_istable(L, t)) lua_pop(L, 1);
}

/* In a list the name is a key of the entry; in a map it is the key the entry is listed
 * under, which a name key may repeat but not contradict. */
static int entry_name(jn_cfg_reader *r, const jn_cfg_section *s, int t, const char *at,
                      const char *key, char **out) {
    int type = jn_cfg_field(r->L, t, "name");
    const char *v = jn_cfg_plain_string(r->L);
    if (key && type != LUA_TNIL && !(v && !strcmp(v, key))) {
        jn_sb_printf(r->err,
                     "config: %s.name must be left out or be \"%s\" (in the map form the key "
                     "names the %s)",
                     at, key, s->one);
        lua_pop(r->L, 1);
        return -1;
    }
    if (!key && !(v && jn_cfg_is_name(v, 1))) {
        char why[80];
        snprintf(why, sizeof why, "every %s needs one of its own", s->one);
        return jn_cfg_bad_value(r, at, "name",
                                "a name of letters, digits, _ and -, " JN_CFG_UP_TO_MAX, why);
    }
    *out = strdup(key ? key : v);
    lua_pop(r->L, 1);
    return 0;
}

/* The entry at t; key is its name in the map form, NULL in the list form (index is its
 * place there, from 1). *name is set once known, for the caller to free. */
static int read_entry(jn_cfg_reader *r, const jn_cfg_section *s, int t, const char *key, int index,
                      void *entry, char **name) {
    char at[JN_CFG_PATH_LEN], kind[80];
    snprintf(kind, sizeof kind, "a %s", s->one);
    if (key && !jn_cfg_is_name(key, 1)) return jn_cfg_bad_name(r, s->section, kind, key, s->rule);
    entry_path(r->L, s, t, key, index, at);
    if (!lua_istable(r->L, t)) {
        char val[160];
        jn_config_describe_value(r->L, t, val, sizeof val);
        jn_sb_printf(r->err, "config: %s must be a table (one %s), got %s", at, s->one, val);
        return -1;
    }
    if (jn_cfg_check_keys(r, t, at, s->keys) || entry_name(r, s, t, at, key, name)) return -1;
    return s->read(r, t, at, *name, entry);
}

int jn_cfg_read_section(jn_cfg_reader *r, int idx, const jn_cfg_section *s, void **out,
                        int *count) {
    lua_State *L = r->L;
    int t = lua_absindex(L, idx), n = 0;
    *out = NULL;
    *count = 0;
    luaL_checkstack(L, 32, "config section"); /* a header's table sits a dozen values down */
    section_form form = lua_istable(L, t) ? form_of(L, t, &n) : FORM_MIXED;
    if (!lua_istable(L, t) || form == FORM_MIXED) {
        char val[160];
        jn_config_describe_value(L, t, val, sizeof val);
        jn_sb_printf(r->err,
                     "config: %s must be a list of %s, { { name = \"a\", ... }, ... }, or a map, "
                     "{ a = { ... }, ... }, got %s%s",
                     s->section, s->section, val,
                     lua_istable(L, t) ? " mixing the two (or a list with holes)" : "");
        return -1;
    }
    if (n == 0) {
        jn_sb_printf(r->err, "config: %s is empty; %s", s->section, s->empty);
        return -1;
    }
    char *entries = *out = calloc((size_t)n, s->size), **names = calloc((size_t)n, sizeof *names),
         **keys = NULL;
    if (!entries || !names) abort();
    *count = n;
    int rc = 0, nkeys = 0;
    if (form == FORM_MAP) {
        /* In name order, so the entries' order does not hang on the hash table. */
        char hint[64];
        snprintf(hint, sizeof hint, "name each %s", s->one);
        rc = jn_cfg_sorted_keys(r, t, s->section, hint, &keys, &nkeys);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        if (keys)
            jn_cfg_field(L, t, keys[i]);
        else
            lua_rawgeti(L, t, i + 1);
        rc = read_entry(r, s, lua_gettop(L), keys ? keys[i] : NULL, i + 1,
                        entries + (size_t)i * s->size, &names[i]);
        lua_pop(L, 1);
    }
    /* Names label everything an entry does, so each is one entry's. */
    for (int i = 1; i < n && rc == 0; i++)
        for (int j = 0; j < i && rc == 0; j++)
            if (!strcmp(names[i], names[j])) {
                jn_sb_printf(r->err,
                             "config: %s.%s is defined twice (%s[%d] and %s[%d]); give each %s a "
                             "name of its own",
                             s->section, names[i], s->section, j + 1, s->section, i + 1, s->one);
                rc = -1;
            }
    jn_cfg_free_names(keys, nkeys);
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return rc;
}

/* ---- --help-config ------------------------------------------------------------------ */

void jn_cfg_describe_levels(const jn_cfg_help *levels, size_t n) {
    printf("%-44s %-30s %s\n", "KEY", "DEFAULT", "MEANING");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < levels[i].lv->n; k++) {
            const jn_cfg_key *e = &levels[i].lv->keys[k];
            char key[96];
            snprintf(key, sizeof key, "%s%s", levels[i].under, e->key);
            printf("%-44s %-30s %s\n", key, e->def ? e->def : e->from, e->doc);
        }
}
