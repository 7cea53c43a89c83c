/* A stream joined with a table by references, done by the host: the stock merge's policy
 * (scripts/merge.lua) without a script call per record.
 *
 * A transform declares it (scripts/join.lua):
 *   M.join = { stream = "<stream input>", table = "<table input>",
 *              refs = "<stream field: array of table keys>",
 *              into = "<output field: the referenced table records>",
 *              missing = "<output field: the keys not in the table>",  -- optional
 *              stamp = "<output field: when the record was merged>",   -- optional
 *              fields = { "<table record field kept>", ... } }         -- optional: all
 * Both inputs are keyed by their "id" field. For each stream record the host keeps its
 * text and indexes it under each key it references, then delivers it with `into` set to
 * the table records in the order of its references (a missing one is left out and its key
 * listed in `missing`, which is dropped when none is), and `stamp` set to the time
 * (ISO 8601, UTC, milliseconds). A record missing a table record is held (the transform
 * holds its message) until every one it needs arrived, at most hold_ms, and at most
 * hold_max records are held (the oldest is released first); a released record goes out
 * with what is known. A table record that changes re-emits every stream record
 * referencing it (one that is unchanged re-emits nothing). The state is the pipeline's,
 * kept across reloads; a replayed changelog record is kept and indexed, not delivered.
 *
 * Texts in and out are canonical JSON objects (jn_json_is_canonical): the caller makes
 * them so. Nothing here knows Lua. */
#ifndef JN_JOIN_H
#define JN_JOIN_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    char *stream, *table; /* input names */
    char *refs;           /* the stream field holding the table keys */
    char *into;           /* output field of the table records */
    char *missing;        /* output field of the missing keys, or NULL */
    char *stamp;          /* output field of the merge time, or NULL */
    char **fields;        /* table fields kept, sorted; NULL: every one */
    int nfields;
} jn_join_spec;

void jn_join_spec_free(jn_join_spec *s);
/* Whether a and b join the same inputs by the same field (their state is compatible). */
int jn_join_spec_same_shape(const jn_join_spec *a, const jn_join_spec *b);

typedef struct jn_join jn_join;

/* A record of a call's output: text [off, off + len) and id [id_off, id_off + id_len) of
 * jn_join_text (id_off -1: none). */
typedef struct {
    size_t off, len;
    long id_off;
    size_t id_len;
} jn_join_out;

/* Takes spec (the join owns it from here). */
jn_join *jn_join_new(jn_join_spec *spec, long hold_ms, long hold_max);
void jn_join_free(jn_join *j);
/* A reload's spec, of the same shape (jn_join_spec_same_shape): its output fields apply
 * from the next merge on. Takes spec. */
void jn_join_respec(jn_join *j, jn_join_spec *spec);
const jn_join_spec *jn_join_spec_of(const jn_join *j);

/* The id of the record the last jn_join_stream or jn_join_table call read (its "id"
 * member's text, a string without its quotes), into id (cap bytes, NUL-terminated; ""
 * when none, an object or array, too long, or the record was not an object). The join
 * finds it while reading the record's members: no second pass over the text. */
void jn_join_last_id(const jn_join *j, char *id, size_t cap);

/* A stream record (canonical object text) of partition part at time now (seconds): returns 0 with
 * the records to deliver (jn_join_output), and *held set when this record is held; or -1 with
 * *reason (malloc'd) when the text is not an object with members. */
int jn_join_stream(jn_join *j, const char *json, size_t len, int32_t part, double now, int *held,
                   char **reason);
/* A table record: 0 with the records it re-emits, or -1 with *reason. */
int jn_join_table(jn_join *j, const char *json, size_t len, double now, char **reason);
/* Releases what was held past hold_ms, and past hold_max: 0 with those records. */
int jn_join_expire(jn_join *j, double now);
/* A stream record replayed from a changelog: kept and indexed, unless a record with its id
 * was read from the stream meanwhile (the stream is newer than its changelog's replay). */
int jn_join_restore(jn_join *j, const char *json, size_t len, int32_t part, char **reason);
/* Forgets every stream record and what is held (the table stays). */
void jn_join_forget(jn_join *j);
/* Forgets the stream records of every partition but the n in parts (each record is of the
 * partition its last version came from: part of jn_join_stream and jn_join_restore), and
 * everything held; returns 0. Returns -1, forgetting nothing, when a record came from a
 * partition numbered 65535 or more (a record keeps its partition in 16 bits): the caller
 * forgets everything (jn_join_forget) and replays instead. */
int jn_join_keep_partitions(jn_join *j, const int32_t *parts, int n);

/* The last call's output: n records, texts in jn_join_text. */
const jn_join_out *jn_join_output(const jn_join *j, size_t *n);
const char *jn_join_text(const jn_join *j);

typedef struct {
    size_t records; /* stream records kept */
    size_t bytes;   /* memory of the records and the index, allocator overhead aside */
} jn_join_stats;
void jn_join_get_stats(const jn_join *j, jn_join_stats *st);

#endif
