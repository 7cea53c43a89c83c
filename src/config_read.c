/* Readers of the config file's sections of named entries.
 *
 * A section is the file's own data, so it is read raw (lua_rawget, lua_next): an __index
 * or __pairs of the file's would otherwise run after its limits are off. Every level
 * checks its keys against a list, like config.c's schema, so a typo is an error with a
 * suggestion rather than a setting quietly left at its default. Secrets may come from the
 * environment or from files (container secrets); no message ever shows one's value,
 * wherever it came from. Shared by config_pipeline.c, config_api.c and config_source.c. */
#include "config_read.h"

#include <ctype.h>
#include <lauxlib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "secret.h"

void jn_config_subpath(char out[JN_CONFIG_PATH_LEN], const char *at, const char *key) {
    if (snprintf(out, JN_CONFIG_PATH_LEN, "%s.%s", at, key) >= JN_CONFIG_PATH_LEN)
        strcpy(out + JN_CONFIG_PATH_LEN - 4, "...");
}

/* ---- values ------------------------------------------------------------------------ */

int jn_config_field(lua_State *L, int t, const char *key) {
    lua_pushstring(L, key);
    return lua_rawget(L, t);
}

const char *jn_config_plain_string(lua_State *L) {
    size_t len;
    if (lua_type(L, -1) != LUA_TSTRING) return NULL;
    const char *s = lua_tolstring(L, -1, &len);
    return len && strlen(s) == len ? s : NULL;
}

int jn_config_bad_value(jn_config_reader *r, const char *at, const char *key, const char *what,
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

int jn_config_take_string(jn_config_reader *r, const char *at, const char *key, const char *why,
                          char **out) {
    const char *s = jn_config_plain_string(r->L);
    if (!s) return jn_config_bad_value(r, at, key, "a non-empty string", why);
    *out = strdup(s);
    lua_pop(r->L, 1);
    return 0;
}

int jn_config_req_string(jn_config_reader *r, int t, const char *at, const char *key,
                         const char *why, char **out) {
    jn_config_field(r->L, t, key);
    return jn_config_take_string(r, at, key, why, out);
}

int jn_config_opt_string(jn_config_reader *r, int t, const char *at, const char *key,
                         const char *def, char **out) {
    if (jn_config_field(r->L, t, key) == LUA_TNIL) {
        lua_pop(r->L, 1);
        *out = def ? strdup(def) : NULL;
        return 0;
    }
    return jn_config_take_string(r, at, key, NULL, out);
}

int jn_config_read_bool(jn_config_reader *r, int t, const char *at, const char *key, int def,
                        int *out) {
    int type = jn_config_field(r->L, t, key);
    if (type != LUA_TNIL && type != LUA_TBOOLEAN)
        return jn_config_bad_value(r, at, key, "true or false", NULL);
    *out = type == LUA_TNIL ? def : lua_toboolean(r->L, -1);
    lua_pop(r->L, 1);
    return 0;
}

/* ---- keys and names -------------------------------------------------------------------- */

static int is_letter(int c) {
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c) {
    return c >= '0' && c <= '9';
}

int jn_config_is_name(const char *s, int dash) {
    size_t len = strlen(s);
    if (len == 0 || len > JN_CONFIG_NAME_MAX || (!dash && is_digit(s[0]))) return 0;
    for (const char *c = s; *c; c++)
        if (!is_letter(*c) && !is_digit(*c) && !(dash && *c == '-')) return 0;
    return 1;
}

static void list_keys(jn_sb *sb, const jn_config_level *lv) {
    for (size_t i = 0; i < lv->n; i++)
        jn_sb_printf(sb, "%s%s", i ? ", " : "", lv->keys[i].key);
}

/* The key of lv nearest to key, if near enough to be a typo of it: one edit, and one more
 * per four letters; more on a short word makes another word ("url" is not "key"). */
static const char *nearest_key(const jn_config_level *lv, const char *key) {
    const char *best = NULL;
    size_t best_d = SIZE_MAX;
    for (size_t i = 0; i < lv->n; i++) {
        size_t d = jn_config_edit_distance(key, lv->keys[i].key);
        if (d <= 1 + strlen(lv->keys[i].key) / 4 && d < best_d) best_d = d, best = lv->keys[i].key;
    }
    return best;
}

static void unknown_key(jn_config_reader *r, const char *at, const char *key,
                        const jn_config_level *lv) {
    const char *near = nearest_key(lv, key);
    jn_sb_printf(r->err, "config: unknown key %s.%s", at, key);
    if (near) {
        jn_sb_printf(r->err, " (did you mean %s.%s?)", at, near);
        return;
    }
    jn_sb_printf(r->err, "; %s takes ", lv->what);
    list_keys(r->err, lv);
}

/* A typo would otherwise leave a setting at its default without a word. */
int jn_config_check_keys(jn_config_reader *r, int t, const char *at, const jn_config_level *lv) {
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

int jn_config_bad_name(jn_config_reader *r, const char *at, const char *kind, const char *name,
                       const char *rule) {
    jn_sb_printf(r->err, "config: %s has %s named \"%s\"; %s", at, kind, name, rule);
    return -1;
}

static int compare_names(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void jn_config_free_names(char **names, int n) {
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
}

int jn_config_sorted_keys(jn_config_reader *r, int t, const char *at, const char *hint, char ***out,
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
            jn_config_free_names(names, count);
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

/* ---- sections of named entries ------------------------------------------------------ */

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

static int read_list(jn_config_reader *r, int t, const jn_config_section *s, char *entries, int n) {
    for (int i = 0; i < n; i++) {
        lua_rawgeti(r->L, t, i + 1);
        int rc = s->read(r, lua_gettop(r->L), NULL, i + 1, entries + (size_t)i * s->size);
        lua_pop(r->L, 1);
        if (rc) return -1;
    }
    return 0;
}

/* In name order, so the entries' order does not hang on the hash table. */
static int read_map(jn_config_reader *r, int t, const jn_config_section *s, char *entries) {
    char **names, hint[96];
    int n, rc = 0;
    snprintf(hint, sizeof hint, "name each %s", s->noun);
    if (jn_config_sorted_keys(r, t, s->key, hint, &names, &n) != 0) return -1;
    for (int i = 0; i < n && rc == 0; i++) {
        jn_config_field(r->L, t, names[i]);
        rc = s->read(r, lua_gettop(r->L), names[i], 0, entries + (size_t)i * s->size);
        lua_pop(r->L, 1);
    }
    jn_config_free_names(names, n);
    return rc;
}

int jn_config_read_section(jn_config_reader *r, int idx, const jn_config_section *s, void **entries,
                           int *n) {
    lua_State *L = r->L;
    int t = lua_absindex(L, idx);
    *entries = NULL;
    *n = 0;
    luaL_checkstack(L, 32, "config section"); /* a header's table sits a dozen values down */
    int count = 0;
    section_form form = lua_istable(L, t) ? form_of(L, t, &count) : FORM_MIXED;
    if (!lua_istable(L, t) || form == FORM_MIXED) {
        char val[160];
        jn_config_describe_value(L, t, val, sizeof val);
        jn_sb_printf(r->err,
                     "config: %s must be a list of %ss, { { name = \"a\", ... }, ... }, or a map, "
                     "{ a = { ... }, ... }, got %s%s",
                     s->key, s->noun, val,
                     lua_istable(L, t) ? " mixing the two (or a list with holes)" : "");
        return -1;
    }
    if (count == 0) {
        jn_sb_printf(r->err, "config: %s is empty; give at least one %s, %s", s->key, s->noun,
                     s->empty_hint);
        return -1;
    }
    *entries = calloc((size_t)count, s->size);
    if (!*entries) abort();
    *n = count;
    return form == FORM_LIST ? read_list(r, t, s, *entries, count) : read_map(r, t, s, *entries);
}

int jn_config_entry_begin(jn_config_reader *r, int t, const jn_config_section *s, const char *key,
                          int index, char at[JN_CONFIG_PATH_LEN]) {
    lua_State *L = r->L;
    char rule[160];
    if (key && !jn_config_is_name(key, 1)) {
        snprintf(rule, sizeof rule, "%s's name is letters, digits, _ and -, " JN_CONFIG_UP_TO,
                 s->a_noun);
        return jn_config_bad_name(r, s->key, s->a_noun, key, rule);
    }
    const char *name = key;
    int pushed = !key && lua_istable(L, t);
    if (pushed && jn_config_field(L, t, "name") == LUA_TSTRING &&
        jn_config_is_name(lua_tostring(L, -1), 1))
        name = lua_tostring(L, -1);
    if (name)
        snprintf(at, JN_CONFIG_PATH_LEN, "%s.%s", s->key, name);
    else
        snprintf(at, JN_CONFIG_PATH_LEN, "%s[%d]", s->key, index);
    if (pushed) lua_pop(L, 1);
    if (!lua_istable(L, t)) {
        char val[160];
        jn_config_describe_value(L, t, val, sizeof val);
        jn_sb_printf(r->err, "config: %s must be a table (one %s), got %s", at, s->noun, val);
        return -1;
    }
    return 0;
}

int jn_config_entry_name(jn_config_reader *r, int t, const char *at, const char *key,
                         const jn_config_section *s, char **out) {
    int type = jn_config_field(r->L, t, "name");
    const char *name = jn_config_plain_string(r->L);
    if (key && type != LUA_TNIL && !(name && !strcmp(name, key))) {
        jn_sb_printf(r->err,
                     "config: %s.name must be left out or be \"%s\" (in the map form the key "
                     "names the %s)",
                     at, key, s->noun);
        lua_pop(r->L, 1);
        return -1;
    }
    if (!key && !(name && jn_config_is_name(name, 1))) {
        char why[64];
        snprintf(why, sizeof why, "every %s needs one of its own", s->noun);
        return jn_config_bad_value(r, at, "name",
                                   "a name of letters, digits, _ and -, " JN_CONFIG_UP_TO, why);
    }
    *out = strdup(key ? key : name);
    lua_pop(r->L, 1);
    return 0;
}

int jn_config_unique_names(jn_config_reader *r, const jn_config_section *s, const void *entries,
                           int n, size_t name_offset) {
    const char *base = entries;
    for (int i = 1; i < n; i++)
        for (int j = 0; j < i; j++) {
            const char *a = *(char *const *)(base + (size_t)j * s->size + name_offset);
            const char *b = *(char *const *)(base + (size_t)i * s->size + name_offset);
            if (strcmp(a, b)) continue;
            jn_sb_printf(r->err,
                         "config: %s.%s is defined twice (%s[%d] and %s[%d]); give each %s a "
                         "name of its own",
                         s->key, b, s->key, j + 1, s->key, i + 1, s->noun);
            return -1;
        }
    return 0;
}

/* ---- --help-config ------------------------------------------------------------------ */

void jn_config_describe_levels(const jn_config_described *levels, size_t n) {
    printf("%-44s %-30s %s\n", "KEY", "DEFAULT", "MEANING");
    for (size_t i = 0; i < n; i++)
        for (size_t k = 0; k < levels[i].lv->n; k++) {
            const jn_config_key *e = &levels[i].lv->keys[k];
            char key[96];
            snprintf(key, sizeof key, "%s%s", levels[i].under, e->key);
            printf("%-44s %-30s %s\n", key, e->def ? e->def : e->from, e->doc);
        }
}

/* ---- secrets ------------------------------------------------------------------------- */

/* The value of the environment variable var or, when it is unset, of the file var_FILE
 * names; unset both is an error here (the config asked for it). */
static int secret_from_env(jn_config_reader *r, const char *at, const char *var, char **out) {
    int rc = jn_secret_from_env(at, var, out, r->err);
    if (rc == 0)
        jn_sb_printf(r->err,
                     "config: %s: the environment variable %s is not set, nor is %s_FILE (the "
                     "path of a file holding the value); set one of them",
                     at, var, var);
    return rc == 1 ? 0 : -1;
}

int jn_config_secret_table(jn_config_reader *r, int t, const char *at, char **out) {
    lua_State *L = r->L;
    int has_env = jn_config_field(L, t, "env") != LUA_TNIL;
    int has_file = jn_config_field(L, t, "file") != LUA_TNIL;
    lua_pop(L, 2);
    if (has_env == has_file) {
        jn_sb_printf(r->err, "config: %s %s", at,
                     has_env ? "takes env or file, not both"
                             : "needs env = \"NAME\" (an environment variable) or file = "
                               "\"/path\" (a file) holding the value");
        return -1;
    }
    char *src = NULL;
    if (jn_config_req_string(r, t, at, has_env ? "env" : "file",
                             has_env ? "the name of an environment variable" : "the path of a file",
                             &src) != 0)
        return -1;
    int rc;
    if (has_env && !jn_config_is_name(src, 0)) {
        /* Not echoed: a value put here by mistake would be the secret itself. */
        jn_sb_printf(r->err,
                     "config: %s.env must be the name of an environment variable (letters, "
                     "digits and _, " JN_CONFIG_UP_TO "), not the value",
                     at);
        rc = -1;
    } else {
        rc = has_env ? secret_from_env(r, at, src, out)
                     : jn_secret_from_file(at, src, NULL, out, r->err);
    }
    free(src);
    return rc;
}

int jn_config_secret_literal(jn_config_reader *r, const char *at, char **out) {
    size_t len;
    const char *s = lua_tolstring(r->L, -1, &len);
    if (jn_secret_check(at, "the value in the config file", s, len, r->err) != 0) return -1;
    *out = strdup(s);
    return 0;
}

/* ---- header values ------------------------------------------------------------------- */

/* clang-format off */
static const jn_config_key secret_keys[] = {
    {"env", "-", NULL, 0, "environment variable holding the value; when unset, <env>_FILE names a file holding it"},
    {"file", "-", NULL, 0, "regular file holding the value, " JN_CONFIG_TEXT(JN_SECRET_MAX_BYTES) " bytes at most (a trailing line break is dropped)"},
    {"prefix", "\"\"", NULL, 0, "written before the value, e.g. \"Bearer \""},
};
/* clang-format on */
const jn_config_level jn_config_secret_level = JN_CONFIG_LEVEL(secret_keys, "a header value table");
/* A secret's table without a header's prefix: env and file, the first two of its keys. */
const jn_config_level jn_config_secret_value_level = {secret_keys, 2, "a secret value table"};

/* ---- integers defaulting to schema keys ------------------------------------------- */

/* The schema key a level's integer defaults to: the sections' key lists name only integer
 * schema keys, so a miss is a mistake in them. */
static void inherit(const jn_config *cfg, const char *from, int *value, int *min, int *max) {
    if (jn_config_int_key(cfg, from, value, min, max) != 0) {
        fprintf(stderr, "config: %s is not an integer key of the schema\n", from);
        abort();
    }
}

void jn_config_fill_inherited(const jn_config *cfg, const jn_config_level *lv, void *base) {
    for (size_t i = 0; i < lv->n; i++) {
        int min, max;
        if (lv->keys[i].from)
            inherit(cfg, lv->keys[i].from, (int *)((char *)base + lv->keys[i].offset), &min, &max);
    }
}

/* The integer on top (popping it), from min to max. */
static int take_int(jn_config_reader *r, const char *at, const char *key, int min, int max,
                    int *out) {
    int isint = 0;
    lua_Integer v = lua_type(r->L, -1) == LUA_TNUMBER ? lua_tointegerx(r->L, -1, &isint) : 0;
    if (!isint || v < min || v > max) {
        char what[64];
        snprintf(what, sizeof what, "an integer from %d to %d", min, max);
        return jn_config_bad_value(r, at, key, what, NULL);
    }
    *out = (int)v;
    lua_pop(r->L, 1);
    return 0;
}

int jn_config_read_inherited(jn_config_reader *r, int t, const char *at, const jn_config_level *lv,
                             void *base) {
    for (size_t i = 0; i < lv->n; i++) {
        const jn_config_key *k = &lv->keys[i];
        if (!k->from) continue;
        int *slot = (int *)((char *)base + k->offset), min, max;
        inherit(r->cfg, k->from, slot, &min, &max);
        if (jn_config_field(r->L, t, k->key) == LUA_TNIL) {
            lua_pop(r->L, 1);
            continue;
        }
        if (take_int(r, at, k->key, min, max, slot) != 0) return -1;
    }
    return 0;
}

int jn_config_read_int(jn_config_reader *r, int t, const char *at, const char *key, int def,
                       int min, int max, int *out) {
    if (jn_config_field(r->L, t, key) == LUA_TNIL) {
        lua_pop(r->L, 1);
        *out = def;
        return 0;
    }
    return take_int(r, at, key, min, max, out);
}

int jn_config_open_table(jn_config_reader *r, int t, const char *at, const char *key,
                         const char *what, char here[JN_CONFIG_PATH_LEN]) {
    int type = jn_config_field(r->L, t, key);
    if (type == LUA_TNIL) {
        lua_pop(r->L, 1);
        return 0;
    }
    if (type != LUA_TTABLE) return jn_config_bad_value(r, at, key, what, NULL);
    jn_config_subpath(here, at, key);
    return 1;
}

/* A header table's prefix ("Bearer "): a string of one line, "" when absent. */
static int read_prefix(jn_config_reader *r, int t, const char *at, char **out) {
    int type = jn_config_field(r->L, t, "prefix");
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

/* "Name: <prefix><value>" */
static char *header_line(const char *name, const char *prefix, const char *value) {
    size_t n = strlen(name) + strlen(prefix) + strlen(value) + 3;
    char *line = malloc(n);
    snprintf(line, n, "%s: %s%s", name, prefix, value);
    return line;
}

/* { env = NAME | file = PATH [, prefix = "Bearer "] } */
static int header_from_table(jn_config_reader *r, int t, const char *at, char **prefix,
                             char **value) {
    if (jn_config_check_keys(r, t, at, &jn_config_secret_level) || read_prefix(r, t, at, prefix) ||
        jn_config_secret_table(r, t, at, value))
        return -1;
    return 0;
}

/* One header of the headers table at t: a string, or { env | file [, prefix] }. */
static int read_header(jn_config_reader *r, int t, const char *at, const char *name, char **line) {
    lua_State *L = r->L;
    char here[JN_CONFIG_PATH_LEN];
    jn_config_subpath(here, at, name);
    int type = jn_config_field(L, t, name);
    char *value = NULL, *prefix = NULL;
    int rc = -1;
    if (type == LUA_TSTRING)
        rc = jn_config_secret_literal(r, here, &value);
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
        if (!isalnum((unsigned char)*s) && !strchr("!#$%&'*+-.^_`|~", *s)) return 0;
    return 1;
}

int jn_config_read_headers(jn_config_reader *r, int t, const char *at, char ***out) {
    lua_State *L = r->L;
    int type = jn_config_field(L, t, "headers");
    if (type != LUA_TNIL && type != LUA_TTABLE) {
        /* The type alone: a string here is likely a header with its secret. */
        jn_sb_printf(r->err, "config: %s.headers must be a table, header name -> value, got a %s",
                     at, luaL_typename(L, -1));
        lua_pop(L, 1);
        return -1;
    }
    char here[JN_CONFIG_PATH_LEN], **names = NULL;
    int n = 0, rc = 0;
    jn_config_subpath(here, at, "headers");
    if (type == LUA_TTABLE &&
        jn_config_sorted_keys(r, lua_gettop(L), here, "name each header: { Authorization = ... }",
                              &names, &n) != 0) {
        lua_pop(L, 1);
        return -1;
    }
    char **headers = *out = calloc((size_t)n + 1, sizeof *headers);
    if (!headers) abort();
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
    jn_config_free_names(names, n);
    lua_pop(L, 1);
    return rc;
}

void jn_config_free_headers(char **headers) {
    for (char **h = headers; h && *h; h++)
        jn_secret_free(*h);
    free(headers);
}
