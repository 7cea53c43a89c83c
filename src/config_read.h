/* Reading the config file's nested sections (`pipelines`, `sources`): raw fields, key
 * lists that catch typos, names, header values kept out of the file (environment
 * variables, files: container secrets), and sections written as a list or as a map by
 * name (the secrets themselves: secret.c). Shared by config_pipeline.c and config_source.c;
 * internal to the config files.
 *
 * Everything is read raw (lua_rawget, lua_next): an __index or __pairs of the file's would
 * otherwise run after its limits are off. No message ever shows a header's value. */
#ifndef JN_CONFIG_READ_H
#define JN_CONFIG_READ_H

#include <lua.h>
#include <stddef.h>

#include "buf.h"
#include "config.h"

/* Names become hooks, metric labels and parts of group, topic and script names; 64
 * characters is plenty and keeps every message's key readable. */
#define JN_CFG_NAME_MAX  64
#define JN_CFG_TEXT_(x)  #x
#define JN_CFG_TEXT(x)   JN_CFG_TEXT_(x)
#define JN_CFG_UP_TO_MAX "up to " JN_CFG_TEXT(JN_CFG_NAME_MAX) " characters"
/* Room for the dotted key of a message, pipelines.<p>.sinks.<k>.headers.<H>: names are
 * 64 characters at most, so only a header name of hundreds is cut short. */
#define JN_CFG_PATH_LEN 320

/* One key of one level of a section. The lists are what the unknown-key check accepts
 * and what --help-config prints. */
typedef struct {
    const char *key;
    const char *def;  /* as --help-config shows it; NULL: the value of `from` */
    const char *from; /* integers: the schema key giving the default and the range */
    size_t offset;    /* of such an integer in the level's struct */
    const char *doc;
} jn_cfg_key;

typedef struct {
    const jn_cfg_key *keys;
    size_t n;
    const char *what; /* for "<what> takes a, b, c" */
} jn_cfg_level;

#define JN_CFG_LEVEL(keys, what)                                                                   \
    { keys, sizeof(keys) / sizeof((keys)[0]), what }

/* The file's state, the config whose schema values are the defaults, and the error. */
typedef struct {
    lua_State *L;
    const jn_config *cfg;
    jn_sb *err;
} jn_cfg_reader;

/* at.key into out, marked with "..." when cut short. */
void jn_cfg_subpath(char out[JN_CFG_PATH_LEN], const char *at, const char *key);

/* ---- values: each reader pops what it pushed; on error it appends one message to r->err
 * and returns -1 ---- */

/* Pushes t[key], raw, and returns its type. */
int jn_cfg_field(lua_State *L, int t, const char *key);
/* The value on top of the stack if it is a non-empty string without NUL bytes. */
const char *jn_cfg_plain_string(lua_State *L);
/* Appends "config: <at>.<key> must be <what> (<why>), got <value>" for the value on top
 * (nil: missing, said without "got"), pops it and returns -1. Never for header values. */
int jn_cfg_bad_value(jn_cfg_reader *r, const char *at, const char *key, const char *what,
                     const char *why);
/* Takes the string on top (popping it) into *out. */
int jn_cfg_take_string(jn_cfg_reader *r, const char *at, const char *key, const char *why,
                       char **out);
/* t[key], which must be there; why says what it is for. */
int jn_cfg_req_string(jn_cfg_reader *r, int t, const char *at, const char *key, const char *why,
                      char **out);
/* t[key], or a copy of def (NULL: none) when absent. */
int jn_cfg_opt_string(jn_cfg_reader *r, int t, const char *at, const char *key, const char *def,
                      char **out);
int jn_cfg_read_bool(jn_cfg_reader *r, int t, const char *at, const char *key, int def, int *out);
/* t[key]: an integer from min to max, def when absent. */
int jn_cfg_read_int(jn_cfg_reader *r, int t, const char *at, const char *key, int def, int min,
                    int max, int *out);
/* t[key], an optional table of settings: 1 with it pushed and here set to its dotted path,
 * 0 with nothing pushed when absent, -1 after the error when it is no table (what says
 * what it should be, e.g. "a table { ca_file, verify }"). */
int jn_cfg_open_table(jn_cfg_reader *r, int t, const char *at, const char *key, const char *what,
                      char here[JN_CFG_PATH_LEN]);
/* Sets a level's integers to the schema values they default to (keys with `from`). */
void jn_cfg_fill_inherited(const jn_config *cfg, const jn_cfg_level *lv, void *base);
/* A level's integers: given ones checked against their schema key's range, the rest that
 * key's value. */
int jn_cfg_read_inherited(jn_cfg_reader *r, int t, const char *at, const jn_cfg_level *lv,
                          void *base);

/* ---- keys and names ---- */

/* Letters, digits and _, not starting with a digit (Lua names: hooks, routes), or with
 * dashes also and any start (names that go into group, topic and metric names). */
int jn_cfg_is_name(const char *s, int dashes);
/* Every key of the table at t must be one of lv's: a typo would otherwise leave a setting
 * at its default without a word. */
int jn_cfg_check_keys(jn_cfg_reader *r, int t, const char *at, const jn_cfg_level *lv);
/* The keys of the map at t, sorted so the order of what they name does not hang on the
 * hash table; -1 after the error when one is not a string. Free with jn_cfg_free_names. */
int jn_cfg_sorted_keys(jn_cfg_reader *r, int t, const char *at, const char *hint, char ***out,
                       int *n);
void jn_cfg_free_names(char **names, int n);
/* "config: <at> has <kind> named "<name>"; <rule>", -1. */
int jn_cfg_bad_name(jn_cfg_reader *r, const char *at, const char *kind, const char *name,
                    const char *rule);

/* ---- header values ---- */

/* t.headers: header name -> a string, or { env = NAME | file = PATH [, prefix] }, into a
 * NULL-terminated array of "Name: value" lines (empty without headers; NULL only when an
 * error came before it was made). Secrets are resolved here: a variable or file missing
 * is an error naming the key and the variable or file, never the value. */
int jn_cfg_read_headers(jn_cfg_reader *r, int t, const char *at, char ***out);
/* The keys of a header's table, for --help-config. */
extern const jn_cfg_level jn_cfg_secret_level;
/* Overwrites each line before freeing it, then the array. */
void jn_cfg_free_headers(char **headers);

/* ---- sections of named entries ---- */

/* Reads one entry: its table at t (its keys already checked), at its dotted path
 * ("pipelines.orders"), name its name (checked, to copy), into entry (zeroed). */
typedef int (*jn_cfg_entry_fn)(jn_cfg_reader *r, int t, const char *at, const char *name,
                               void *entry);

typedef struct {
    const char *section;      /* "pipelines" */
    const char *one;          /* "pipeline", for messages */
    const char *empty;        /* what to say when the section is empty */
    const char *rule;         /* what a name may be, e.g. "a pipeline's name is ..." */
    const jn_cfg_level *keys; /* what an entry takes, checked before anything is read */
    size_t size;              /* bytes of one entry */
    jn_cfg_entry_fn read;
} jn_cfg_section;

/* The section at idx: a list { { name = "a", ... }, ... } or a map { a = { ... } } (taken
 * in name order). Names are jn_cfg_is_name(..., 1) and unique. *out is a calloc'd array
 * of *n entries, set before any entry is read, so whatever was filled can be freed after
 * an error. */
int jn_cfg_read_section(jn_cfg_reader *r, int idx, const jn_cfg_section *s, void **out, int *n);

/* ---- --help-config ---- */

typedef struct {
    const char *under; /* "pipelines.<p>." */
    const jn_cfg_level *lv;
} jn_cfg_help;

/* One line per key of each level: key, default, meaning. */
void jn_cfg_describe_levels(const jn_cfg_help *levels, size_t n);

#endif
