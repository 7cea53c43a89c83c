/* Redis glue: hiredis' async API on the libuv loop (its adapters/libuv.h), for the
 * consumer's de-duplication marks. Commands for a batch go out pipelined in one write
 * and their replies come back in one read. The connection is re-established with a
 * backoff when Redis goes away; callers learn of it through the state callback and by
 * errors on their commands (never by a silent success). */
#ifndef JN_REDIS_H
#define JN_REDIS_H

#include <stddef.h>
#include <uv.h>

typedef struct jn_redis jn_redis;

/* connected is 1 when a connection is (re)established, 0 when it is lost. */
typedef void (*jn_redis_state_cb)(void *ud, int connected);
/* For jn_redis_exists: err is 0 and found[i] is 1 when keys[i] exists; err != 0 when the
 * answer is unknown (Redis unreachable, an error reply): treat every key as unchecked. */
typedef void (*jn_redis_exists_cb)(void *arg, int err, const unsigned char *found, size_t n);
/* For jn_redis_mark: err is 0 when every SET was acknowledged. */
typedef void (*jn_redis_done_cb)(void *arg, int err);

jn_redis *jn_redis_new(uv_loop_t *loop, const char *host, int port, jn_redis_state_cb cb, void *ud);
int jn_redis_connected(const jn_redis *r);
/* One EXISTS over the n keys, then an MGET when some are there. Returns 0, or -1 when not
 * connected (cb is not called). */
int jn_redis_exists(jn_redis *r, const char *const *keys, size_t n, jn_redis_exists_cb cb,
                    void *arg);
/* SET key 1 EX ttl_s for each key, pipelined. Returns 0, or -1 when not connected. */
int jn_redis_mark(jn_redis *r, const char *const *keys, size_t n, int ttl_s, jn_redis_done_cb cb,
                  void *arg);
/* Commands in flight (sent, reply not yet received). */
long jn_redis_inflight(const jn_redis *r);
/* Disconnects (pending callbacks run with err != 0), closes every handle, frees, then
 * calls done(arg). */
void jn_redis_close(jn_redis *r, void (*done)(void *), void *arg);

#endif
