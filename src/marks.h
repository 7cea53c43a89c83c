/* De-duplication's marks in Redis, over the general client (redis.h): which of a batch
 * of keys exist, and writing them with a TTL. The batching and ordering policy is in
 * dedupe.c; this file only knows the commands and what their replies mean. */
#ifndef JN_MARKS_H
#define JN_MARKS_H

#include <stddef.h>

#include "redis.h"

/* err is 0 and found[i] is 1 when keys[i] exists; err != 0 when the answer is unknown
 * (Redis unreachable, an error reply): treat every key as unchecked. */
typedef void (*jn_marks_exists_cb)(void *arg, int err, const unsigned char *found, size_t n);
/* err is 0 when every SET was acknowledged. */
typedef void (*jn_marks_done_cb)(void *arg, int err);

/* One EXISTS over the n keys, then an MGET when some are there. Returns 0, or -1 when not
 * connected (cb is not called). */
int jn_marks_exists(jn_redis *r, const char *const *keys, size_t n, jn_marks_exists_cb cb,
                    void *arg);
/* SET key 1 EX ttl_s for each key, pipelined. Returns 0, or -1 when not connected. */
int jn_marks_set(jn_redis *r, const char *const *keys, size_t n, int ttl_s, jn_marks_done_cb cb,
                 void *arg);

#endif
