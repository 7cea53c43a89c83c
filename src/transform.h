/* A pipeline's transform: the script with one hook per input, called by the host.
 *
 * The script returns a module table:
 *   M.on.<input>(record, ctx) -> records   one hook per stream and table of the pipeline
 *   M.timer(ctx) -> records                optional, every timer_ms (releases held records)
 *   M.restore.<stream>(record, ctx)        optional: a record replayed from the stream's
 *                                          changelog when a partition is assigned; it
 *                                          rebuilds state and returns nothing
 *   M.revoke.<stream>(partitions, ctx)     optional: some partitions went to another
 *                                          member; forget the stream's state (all of it:
 *                                          the host then replays the partitions listed
 *                                          that are still this member's)
 *   M.dedupe_key.<stream>(record, ctx)    optional: the key de-duplication marks the
 *                                          record under (a string or number; nil leaves
 *                                          it to the record's content, the default)
 * `records` is nil, an array of records (each goes to every sink), or a table whose
 * string keys name sinks, each with an array of records for that sink alone (both may be
 * mixed). ctx carries now (seconds), input, partition (streams), pipeline, hold_ms,
 * hold_max, hold([ms]), which holds the call's record back until a later record with the
 * same id answers it, at most ms, and json(), the record's JSON text as received.
 *
 * A call's output is checked whole before any record leaves: a result that is not a
 * table, a record that is not an object or cannot be encoded, or a sink that does not
 * exist fails the call with a reason, as an error raised by the script does. */
#ifndef JN_TRANSFORM_H
#define JN_TRANSFORM_H

#include <stddef.h>
#include <stdint.h>

#include "script.h"

#define JN_TRANSFORM_MAX_SINKS 16

typedef struct jn_transform jn_transform;

typedef struct {
    const char *pipeline;
    const char *path;
    const char *const *streams; /* input names, streams first, then tables */
    int nstreams;
    const char *const *tables;
    int ntables;
    const char *const *sinks;     /* sink names */
    const char *const *sink_keys; /* per sink: the record field keying its messages, or NULL */
    int nsinks;
    int hold_ms, hold_max;
} jn_transform_opts;

/* One record of a call's output, valid during the emit callback. */
typedef struct {
    const char *json;
    size_t len;
    const char *id; /* the record's id as text, or NULL when it has none */
    uint32_t sinks; /* bit i: sink i */
    const char *keys[JN_TRANSFORM_MAX_SINKS]; /* per sink in `sinks` with a key field */
    size_t key_lens[JN_TRANSFORM_MAX_SINKS];
    int index; /* its place in the output, from 1 */
} jn_transform_record;

typedef struct {
    /* The input record is decoded: id is its id as text ("" when it has none). Runs
     * before the hook, so the owner can register what may answer it. */
    void (*begin)(void *ud, const char *id);
    void (*emit)(void *ud, const jn_transform_record *r);
} jn_transform_cbs;

/* What a hook call is about. */
typedef struct {
    int input; /* index: streams 0..nstreams-1, then tables */
    int32_t partition;
    int canonical; /* the caller found the record canonical (jn_json_is_canonical): a view
                      of it need not check it again */
} jn_transform_call_info;

/* Loads the script and checks its hooks against the inputs. NULL with *err set. */
jn_transform *jn_transform_new(jn_script_host *h, const jn_transform_opts *o, char **err);
void jn_transform_free(jn_transform *t);

/* Decodes json and calls on.<input>. Returns 0 (the records went through cbs->emit),
 * or -1 with *reason (malloc'd): the value is not a JSON object (begin was not called),
 * or the hook failed or returned garbage (begin was called, nothing was emitted).
 * *held tells whether the hook called ctx.hold(), *hold_ms for how long. */
int jn_transform_call(jn_transform *t, const jn_transform_call_info *info, const char *json,
                      size_t len, const jn_transform_cbs *cbs, void *ud, int *held, long *hold_ms,
                      char **reason);
/* Calls timer(ctx) when the script has one. Same result contract, no begin. */
int jn_transform_timer(jn_transform *t, const jn_transform_cbs *cbs, void *ud, char **reason);
/* Whether the script restores state of this stream (has restore.<stream>). */
int jn_transform_restores(jn_transform *t, int stream);
/* Calls restore.<stream>(record, ctx); its results are ignored. */
int jn_transform_restore(jn_transform *t, const jn_transform_call_info *info, const char *json,
                         size_t len, char **reason);
/* Whether the script keys de-duplication of this stream (has dedupe_key.<stream>). */
int jn_transform_keys(jn_transform *t, int stream);
/* Calls dedupe_key.<stream>(record, ctx). Returns 1 with the SHA-256 of the key in hash,
 * 0 when there is no such hook or it returned nil (the content decides), or -1 with
 * *reason (malloc'd) when the value is not an object, the hook failed or returned
 * something that is not a key. */
int jn_transform_dedupe_key(jn_transform *t, const jn_transform_call_info *info, const char *json,
                            size_t len, unsigned char hash[32], char **reason);
/* The size of the join's state (M.join): stream records kept and their bytes. Returns 0,
 * or -1 when the transform declares no join. */
int jn_transform_join_size(const jn_transform *t, int64_t *records, int64_t *bytes);
/* Whether the stream's state can be forgotten partition by partition (the host's join
 * keeps each record's partition): then a rebalance that takes some partitions away calls
 * jn_transform_keep_partitions with those still here, and nothing is replayed for them. */
int jn_transform_keeps_partitions(jn_transform *t, int stream);
/* Returns 0, or -1 when the state cannot be kept in part (jn_join_keep_partitions): then
 * nothing was forgotten, and the caller revokes the whole stream. */
int jn_transform_keep_partitions(jn_transform *t, int stream, const int32_t *parts, int n);
/* Calls revoke.<stream>(partitions, ctx) when the script has it. */
int jn_transform_revoke(jn_transform *t, int stream, const int32_t *parts, int n, char **reason);

#endif
