/* De-duplication's marks in Redis, over the general client (redis.h): which of a batch
 * of keys exist, and writing them with a TTL. The batching and ordering policy is in
 * dedupe.c; this file only knows the commands and what their replies mean. */
#ifndef JN_MARKS_H
#define JN_MARKS_H

#include <stddef.h>

#include "redis.h"

/* err is NULL and found[i] is 1 when keys[i] exists; err says why when the answer is
 * unknown (Redis unreachable, an error reply such as NOPERM): treat every key as
 * unchecked. err is valid during the call only. */
typedef void (*jn_marks_exists_cb)(void *arg, const char *err, const unsigned char *found,
                                   size_t n);
/* err is NULL when every SET was acknowledged, else why not (the first error). */
typedef void (*jn_marks_done_cb)(void *arg, const char *err);

/* One EXISTS over the n keys, then an MGET when some are there. Returns 0, or -1 when not
 * connected (cb is not called). */
int jn_marks_exists(jn_redis *r, const char *const *keys, size_t n, jn_marks_exists_cb cb,
                    void *arg);
/* SET key 1 EX ttl_s for each key, pipelined. Returns 0, or -1 when not connected. */
int jn_marks_set(jn_redis *r, const char *const *keys, size_t n, int ttl_s, jn_marks_done_cb cb,
                 void *arg);

#endif
