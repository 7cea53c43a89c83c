/* Reading the sections of the config file that are lists or maps of named entries
 * (`pipelines`, `apis`, `sources`): the file's own tables read raw, values taken with messages that
 * name the key, keys checked against a list so a typo is an error with a suggestion,
 * entry names, and secrets kept out of the file (an environment variable or a file).
 * Internal to the config_*.c files: everyone else reads jn_config. */
#ifndef JN_CONFIG_READ_H
#define JN_CONFIG_READ_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

/* Names become hooks, metric labels, routes and parts of group and topic names; 64
 * characters is plenty and keeps every message's key readable. */
#define JN_CONFIG_NAME_MAX 64
#define JN_CONFIG_TEXT_(x) #x
#define JN_CONFIG_TEXT(x)  JN_CONFIG_TEXT_(x)
#define JN_CONFIG_UP_TO    "up to " JN_CONFIG_TEXT(JN_CONFIG_NAME_MAX) " characters"
/* Room for the dotted key of a message, pipelines.<p>.sinks.<k>.headers.<H>: names are
 * 64 characters at most, so only a header name of hundreds is cut short. */
#define JN_CONFIG_PATH_LEN 320
#define JN_CONFIG_COUNT(a) (sizeof(a) / sizeof((a)[0]))

/* One key of one level of a section. The lists are what the unknown-key check accepts
 * and what --help-config prints. */
typedef struct {
    const char *key;
    const char *def;  /* as --help-config shows it; NULL: the value of `from` */
    const char *from; /* integers: the schema key giving the default and the range */
    size_t offset;    /* of such an integer in the level's struct */
    const char *doc;
} jn_config_key;

typedef struct {
    const jn_config_key *keys;
    size_t n;
    const char *what; /* for "<what> takes a, b, c" */
} jn_config_level;

#define JN_CONFIG_LEVEL(keys, what)                                                                \
    { keys, JN_CONFIG_COUNT(keys), what }

/* The file's state, the config whose schema values are the defaults, and the error. */
typedef struct {
    lua_State *L;
    const jn_config *cfg;
    jn_sb *err;
} jn_config_reader;

/* at.key into out, marked with "..." when cut short. */
void jn_config_subpath(char out[JN_CONFIG_PATH_LEN], const char *at, const char *key);

/* config.c's, shared with the readers of sections. */

/* The Lua value at idx for a message: "abc" (a string), 12 (a number), a table. */
void jn_config_describe_value(lua_State *L, int idx, char *buf, size_t n);
size_t jn_config_edit_distance(const char *a, const char *b);
/* The integer schema key's current value and range; -1 when key is not one. */
int jn_config_int_key(const jn_config *cfg, const char *key, int *value, int *min, int *max);

/* ---- values (each pops what it reads; -1 after appending one line to r->err) ---------- */

/* Pushes t[key], raw, and returns its type. */
int jn_config_field(lua_State *L, int t, const char *key);
/* The value on top of the stack if it is a non-empty string without NUL bytes. */
const char *jn_config_plain_string(lua_State *L);
/* Appends "config: <at>.<key> must be <what> (<why>), got <value>" for the value on top
 * (nil: missing, said without "got"), pops it and returns -1. Never for secrets. */
int jn_config_bad_value(jn_config_reader *r, const char *at, const char *key, const char *what,
                        const char *why);
/* Takes the string on top (popping it) into *out. */
int jn_config_take_string(jn_config_reader *r, const char *at, const char *key, const char *why,
                          char **out);
/* t[key], which must be there; why says what it is for. */
int jn_config_req_string(jn_config_reader *r, int t, const char *at, const char *key,
                         const char *why, char **out);
/* t[key], or a copy of def (NULL: none) when absent. */
int jn_config_opt_string(jn_config_reader *r, int t, const char *at, const char *key,
                         const char *def, char **out);
int jn_config_read_bool(jn_config_reader *r, int t, const char *at, const char *key, int def,
                        int *out);

/* t[key]: an integer from min to max, def when absent. */
int jn_config_read_int(jn_config_reader *r, int t, const char *at, const char *key, int def,
                       int min, int max, int *out);
/* Sets a level's integers (its keys with `from`) to the schema values they default to. */
void jn_config_fill_inherited(const jn_config *cfg, const jn_config_level *lv, void *base);
/* A level's integers: given ones checked against their schema key's range, the rest that
 * key's value. */
int jn_config_read_inherited(jn_config_reader *r, int t, const char *at, const jn_config_level *lv,
                             void *base);
/* t[key], an optional table of settings: 1 with it pushed and here set to its dotted path,
 * 0 with nothing pushed when absent, -1 after the error when it is no table (what says
 * what it should be, e.g. "a table { ca_file, verify }"). */
int jn_config_open_table(jn_config_reader *r, int t, const char *at, const char *key,
                         const char *what, char here[JN_CONFIG_PATH_LEN]);

/* ---- keys and names ----------------------------------------------------------------- */

/* Letters, digits and _ (a Lua name: not starting with a digit), 64 at most; with dash,
 * - too and a digit first, as names that go into group and topic names allow. */
int jn_config_is_name(const char *s, int dash);
/* Every key of the table at t must be one of lv's. */
int jn_config_check_keys(jn_config_reader *r, int t, const char *at, const jn_config_level *lv);
/* "config: <at> has <kind> named "<name>"; <rule>", -1. */
int jn_config_bad_name(jn_config_reader *r, const char *at, const char *kind, const char *name,
                       const char *rule);
/* The keys of the map at t, sorted so the order of what they name does not hang on the
 * hash table; -1 after the error when one is not a string (hint says what to write). */
int jn_config_sorted_keys(jn_config_reader *r, int t, const char *at, const char *hint, char ***out,
                          int *n);
void jn_config_free_names(char **names, int n);

/* ---- sections of named entries ------------------------------------------------------ */

/* Reads one entry whose table is at t: key is its name in the map form, NULL in the list
 * form (index is its place there, from 1). */
typedef int (*jn_config_entry_fn)(jn_config_reader *r, int t, const char *key, int index,
                                  void *entry);

typedef struct {
    const char *key;        /* "pipelines" */
    const char *noun;       /* "pipeline" */
    const char *a_noun;     /* "a pipeline", "an API" */
    const char *empty_hint; /* what to do instead of an empty section */
    size_t size;            /* of one entry */
    jn_config_entry_fn read;
} jn_config_section;

/* The section at idx: a list { { name = "a", ... }, ... } or a map { a = { ... } } (read
 * in name order) into *entries, a calloc'd array of *n entries that is left for the
 * caller to free also after an error. */
int jn_config_read_section(jn_config_reader *r, int idx, const jn_config_section *s, void **entries,
                           int *n);
/* The start of every entry: a map key must be a name, the value a table; at receives
 * where messages point: <section>.<name>, or <section>[<index>] while the list entry
 * has no usable name. */
int jn_config_entry_begin(jn_config_reader *r, int t, const jn_config_section *s, const char *key,
                          int index, char at[JN_CONFIG_PATH_LEN]);
/* The entry's name: in a list its `name` key, in a map the key it is listed under, which
 * a name key may repeat but not contradict. */
int jn_config_entry_name(jn_config_reader *r, int t, const char *at, const char *key,
                         const jn_config_section *s, char **out);
/* Each entry's name (a char * at name_offset in entries of s->size bytes) must be its
 * own: the message names the two places. */
int jn_config_unique_names(jn_config_reader *r, const jn_config_section *s, const void *entries,
                           int n, size_t name_offset);

/* ---- --help-config ------------------------------------------------------------------ */

/* One level of a section as --help-config lists it: its keys under a dotted prefix. */
typedef struct {
    const char *under; /* "pipelines.<p>.dedupe." */
    const jn_config_level *lv;
} jn_config_described;

/* Prints the KEY DEFAULT MEANING table of a section's levels. */
void jn_config_describe_levels(const jn_config_described *levels, size_t n);

/* ---- secrets ------------------------------------------------------------------------- */

/* Secrets are read by secret.c and freed with jn_secret_free. */

/* The keys of a header's table { env | file, prefix }, for --help-config. */
extern const jn_config_level jn_config_secret_level;
/* The same without prefix: the keys of a secret value's table { env | file }. */
extern const jn_config_level jn_config_secret_value_level;
/* t.headers: header name -> a string, or { env = NAME | file = PATH [, prefix] }, into a
 * NULL-terminated array of "Name: value" lines (empty without headers; NULL only when an
 * error came first). A variable or file missing is an error naming the key and the
 * variable or file, never the value. */
int jn_config_read_headers(jn_config_reader *r, int t, const char *at, char ***out);
/* Overwrites each line before freeing it, then the array. */
void jn_config_free_headers(char **headers);

/* A secret written into the file: the string on top (not popped), checked to be one
 * non-empty line. No message ever shows a secret's value. */
int jn_config_secret_literal(jn_config_reader *r, const char *at, char **out);
/* { env = NAME } (the variable, or when it is unset the file NAME_FILE names) or
 * { file = PATH } at t; the caller checked the table's keys. */
int jn_config_secret_table(jn_config_reader *r, int t, const char *at, char **out);

#endif
