/* De-duplication as a policy over the Redis client: a message is checked against its
 * mark (<prefix><sha256 of its content>) before the transform sees it, and marked after
 * everything it produced was delivered. Checks go out in batches of CHECK_BATCH keys,
 * two batches in flight, so Redis answers one while the caller works on the other;
 * marks go out as one pipelined batch at a time, gathering what settles meanwhile.
 *
 * What is never done: an item whose check failed (Redis down, an error reply) is never
 * reported as new or as seen; it is checked again once Redis is back. A mark that failed
 * is written again; its item is reported marked only once Redis acknowledged it. */
#ifndef JN_DEDUPE_H
#define JN_DEDUPE_H

#include <stddef.h>
#include <uv.h>

#include "marks.h"
#include "redis.h"

typedef struct jn_dedupe jn_dedupe;

/* A mark's key: a prefix of at most JN_DEDUPE_PREFIX_MAX bytes and 64 hex digits. */
#define JN_DEDUPE_PREFIX_MAX 63
#define JN_DEDUPE_KEY_MAX    (JN_DEDUPE_PREFIX_MAX + 64 + 1)

typedef struct {
    /* The check of item is answered: seen is 1 when its mark exists. */
    void (*on_checked)(void *ud, void *item, int seen);
    /* item's mark is written. */
    void (*on_marked)(void *ud, void *item);
} jn_dedupe_cbs;

/* Marks are kept as layout says (marks.h). */
jn_dedupe *jn_dedupe_new(uv_loop_t *loop, jn_redis *redis, const jn_marks_layout *layout,
                         const jn_dedupe_cbs *cbs, void *ud);
/* Queues item for a check of key (kept by pointer: it must live until on_checked). */
void jn_dedupe_check(jn_dedupe *d, void *item, const char *key);
/* Queues item for a mark of key (kept by pointer until on_marked). */
void jn_dedupe_mark(jn_dedupe *d, void *item, const char *key);
/* Redis came back: send what waits. */
void jn_dedupe_resume(jn_dedupe *d);
/* Why the last check or mark failed (Redis refused it, or was unreachable), or NULL once
 * one succeeded: while it is set the owner should not take more work in. */
const char *jn_dedupe_error(const jn_dedupe *d);
/* Items waiting for a check or a mark, or with one in flight. */
size_t jn_dedupe_pending(const jn_dedupe *d);
/* Drops every queued item without a report (the owner frees them) and stops reporting
 * answers still in flight; frees d once they are in (Redis' close answers them). */
void jn_dedupe_free(jn_dedupe *d);

#endif
