/* De-duplication's marks in Redis, over the general client (redis.h): which of a batch
 * of keys exist, and writing them with a TTL. The batching and ordering policy is in
 * dedupe.c; this file only knows the commands and what their replies mean. */
#ifndef JN_MARKS_H
#define JN_MARKS_H

#include <stddef.h>

#include "redis.h"

/* How marks are kept (marks.c says why two). */
typedef enum { JN_MARKS_LAYOUT_KEYS, JN_MARKS_LAYOUT_BUCKETS } jn_marks_layout_kind;

typedef struct {
    jn_marks_layout_kind kind;
    int ttl_s;
    /* buckets: the leading bytes every key shares (the prefix); the rest is the field */
    size_t prefix_len;
} jn_marks_layout;

/* Buckets an exists check looks in, and the longest bucket key. */
#define JN_MARKS_BUCKETS        3
#define JN_MARKS_BUCKET_KEY_MAX 96

/* err is NULL and found[i] is 1 when keys[i] exists; err says why when the answer is
 * unknown (Redis unreachable, an error reply such as NOPERM): treat every key as
 * unchecked. err is valid during the call only. */
typedef void (*jn_marks_exists_cb)(void *arg, const char *err, const unsigned char *found,
                                   size_t n);
/* err is NULL when every SET was acknowledged, else why not (the first error). */
typedef void (*jn_marks_done_cb)(void *arg, const char *err);

/* Which of the n keys are marked (keys: one EXISTS, then an MGET when some are there;
 * buckets: one SMISMEMBER per live bucket). Returns 0, or -1 when not connected (cb is not
 * called). */
int jn_marks_exists(jn_redis *r, const jn_marks_layout *l, const char *const *keys, size_t n,
                    jn_marks_exists_cb cb, void *arg);
/* Marks the n keys for l->ttl_s (keys: SET key 1 EX ttl each, pipelined; buckets: one
 * SADD and one EXPIREAT). Returns 0, or -1 when not connected. */
int jn_marks_set(jn_redis *r, const jn_marks_layout *l, const char *const *keys, size_t n,
                 jn_marks_done_cb cb, void *arg);

#endif
