/* Wakes librdkafka's fetchers when the consumer's prefetch runs low.
 *
 * librdkafka 2.0 stops fetching a partition once the queue its messages go to holds
 * queued.min.messages (or queued.max.messages.kbytes), and looks again only when its
 * broker thread wakes up: for an op, for socket input, or at the end of its one-second
 * wait. A consumer that empties a full prefetch faster than that (50,000 messages take
 * the seed's pipeline about 0.35 s) then idles for the rest of the second, for lack of
 * anything waking the fetcher. (Later librdkafka versions have fetch.queue.backoff.ms.)
 * A nudge asks the partitions' leaders for their watermarks: the request is an op for
 * each leader's broker thread, which then sees the drained queue and fetches. The
 * request blocks, so it runs on libuv's thread pool, never on the loop.
 *
 * The same job asks librdkafka to join the consumer group again at once
 * (jn_kafka_nudge_rejoin): also a blocking call, also for a thread of librdkafka's that
 * would otherwise wait. */
#ifndef JN_KAFKA_NUDGE_H
#define JN_KAFKA_NUDGE_H

#include <librdkafka/rdkafka.h>
#include <stdint.h>
#include <uv.h>

/* Partitions asked per nudge: one per leader is enough, and the consumer picks those
 * that lag, a different few each time. */
#define JN_KAFKA_NUDGE_MAX 4

typedef struct {
    uv_work_t work;
    rd_kafka_t *rk;
    int n;
    char topic[JN_KAFKA_NUDGE_MAX][256];
    int32_t partition[JN_KAFKA_NUDGE_MAX];
    int rejoin;              /* this one subscribes again (JN_KAFKA_REJOIN_*, 0: no) */
    int rejoined;            /* ... and it did */
    rd_kafka_resp_err_t err; /* what that subscribe returned */
    int busy;                /* on the thread pool: rk must outlive it */
    uint64_t sent;           /* nudges started */
    uint64_t started_ns;
    void (*done)(void *arg);
    void *arg;
} jn_kafka_nudge;

/* Starts a nudge of the n partitions (at most JN_KAFKA_NUDGE_MAX, topic names of up to
 * 255 bytes) unless one is under way; done(arg) runs on the loop when it finished.
 * Returns 1 when started. */
int jn_kafka_nudge_start(jn_kafka_nudge *z, uv_loop_t *loop, rd_kafka_t *rk,
                         const char *const *topics, const int32_t *partitions, int n,
                         void (*done)(void *), void *arg);

enum {
    JN_KAFKA_REJOIN_ALWAYS = 1,
    JN_KAFKA_REJOIN_IF_MEMBER, /* only when the group gave it a member id already */
};

/* Subscribes rk again to the topics it is subscribed to, on the thread pool (when is a
 * JN_KAFKA_REJOIN_*); rejoined says whether it did. Same rules as jn_kafka_nudge_start.
 * librdkafka 2.0 makes a group's JoinGroup at most once a second: when another member's join
 * interrupts this member's SyncGroup ("rebalance in progress"), it waits out the rest of that
 * second, and then for its main thread to wake, up to a second more, while the whole group waits
 * for it. A subscribe while the group handler waits like that (join state "init") joins at once; in
 * any other join state librdkafka postpones it until the rebalance under way completes and then
 * rebalances again, so the caller must know the state (kafka_consumer.c reads it from
 * the statistics). Returns 1 when started. */
int jn_kafka_nudge_rejoin(jn_kafka_nudge *z, uv_loop_t *loop, rd_kafka_t *rk, int when,
                          void (*done)(void *), void *arg);

#endif
