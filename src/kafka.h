/* Kafka glue: librdkafka on the libuv loop. librdkafka keeps its own threads; its
 * event queue is handed to the loop with rd_kafka_queue_io_event_enable on a
 * non-blocking pipe watched by uv_poll, and drained until empty on every wake-up, so
 * delivery reports (and later consumer messages) run on the loop thread, no locks. */
#ifndef JN_KAFKA_H
#define JN_KAFKA_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <uv.h>

typedef struct jn_kafka_producer jn_kafka_producer;

/* Runs on the loop for each message's final outcome. err is RD_KAFKA_RESP_ERR_NO_ERROR
 * when the broker acknowledged it (acks=all); opaque is what jn_kafka_produce got. */
typedef void (*jn_kafka_delivery_cb)(void *ud, void *opaque, rd_kafka_resp_err_t err,
                                     const char *topic, int32_t partition, int64_t offset);

typedef struct {
    const char *brokers; /* "host:port[,host:port]" */
    const char *client_id;
    const char *compression; /* "lz4", "zstd", "snappy", "gzip" or "none" */
    int linger_ms;
    int queue_max_messages;   /* queue.buffering.max.messages */
    int message_timeout_ms;   /* how long librdkafka retries one message */
    const char *const *extra; /* NULL-terminated "key=value" librdkafka settings */
} jn_kafka_producer_opts;

/* An idempotent producer (enable.idempotence=true, acks=all). NULL with *err (malloc'd)
 * when a setting is rejected. Brokers being down is not an error: librdkafka retries. */
jn_kafka_producer *jn_kafka_producer_new(uv_loop_t *loop, const jn_kafka_producer_opts *o,
                                         jn_kafka_delivery_cb cb, void *ud, char **err);
/* Queues one message. Returns 0; RD_KAFKA_RESP_ERR__QUEUE_FULL when librdkafka's queue is
 * full (the caller pauses and retries after deliveries drain it); another error code for a
 * message that can never be sent. Headers are NULL-terminated name/value pairs. */
int jn_kafka_produce(jn_kafka_producer *p, const char *topic, const void *key, size_t key_len,
                     const void *value, size_t value_len, const char *const *headers, void *opaque);
/* jn_kafka_produce without headers and without copying the value, to partition
 * (RD_KAFKA_PARTITION_UA: the partitioner's choice; a number for a topic co-partitioned
 * with another, such as a stream's changelog): it must stay valid and
 * unchanged until the message's delivery callback has run (which close also brings about,
 * through the purge). For a caller that keeps each record until it is reported anyway;
 * saves a copy of every message held in librdkafka's queue. */
int jn_kafka_produce_ref(jn_kafka_producer *p, const char *topic, int32_t partition,
                         const void *key, size_t key_len, const void *value, size_t value_len,
                         void *opaque);
/* Messages queued and not yet reported. */
long jn_kafka_producer_inflight(const jn_kafka_producer *p);
/* Whether a broker is currently reachable, as librdkafka last reported. */
int jn_kafka_producer_connected(const jn_kafka_producer *p);
/* Flushes for up to timeout_ms (delivery callbacks keep running on the loop), then
 * destroys the producer; done(arg) runs once everything is closed. */
void jn_kafka_producer_close(jn_kafka_producer *p, int timeout_ms, void (*done)(void *), void *arg);

/* ---- consumer ----------------------------------------------------------------------
 * A consumer-group member with offsets managed by junction (enable.auto.commit=false,
 * enable.auto.offset.store=false): the owner commits, per partition, the offset up to
 * which every message is settled. Messages, rebalances and commit results all arrive on
 * the loop through the consumer queue's io-event pipe, like the producer's reports. */

typedef struct jn_kafka_consumer jn_kafka_consumer;

typedef struct {
    const char *topic;
    int32_t partition;
    int64_t offset;
    const void *key;
    size_t key_len;
    const void *value;
    size_t value_len;
    int64_t timestamp_ms;
    const rd_kafka_message_t *raw; /* for headers; valid only during the callback */
} jn_kafka_msg;

typedef struct {
    /* Each message, in order within its partition. Valid only during the call. */
    void (*on_message)(void *ud, const jn_kafka_msg *m);
    /* Partitions given to this member (already assigned when called). */
    void (*on_assign)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    /* Partitions about to be taken away. No more messages of them arrive after this call.
     * The owner settles what it holds for them, commits, and then calls
     * jn_kafka_consumer_revoke_done; the group waits for that (rebalance timeout). */
    void (*on_revoke)(void *ud, const rd_kafka_topic_partition_list_t *parts);
    /* Result of a jn_kafka_consumer_commit. */
    void (*on_commit)(void *ud, rd_kafka_resp_err_t err,
                      const rd_kafka_topic_partition_list_t *offsets);
    /* Errors worth logging (broker down, ...); consumption goes on by itself. */
    void (*on_error)(void *ud, rd_kafka_resp_err_t err, const char *reason);
    /* With report_eof: the member has read a partition to its end (offset is the end),
     * again each time it catches up after new messages. */
    void (*on_eof)(void *ud, const char *topic, int32_t partition, int64_t offset);
} jn_kafka_consumer_cbs;

typedef struct {
    const char *brokers;
    const char *group_id;
    const char *client_id;
    const char *auto_offset_reset; /* "earliest" or "latest" */
    const char *const *topics;     /* NULL-terminated; not used with assign_only */
    const char *const *extra;      /* NULL-terminated "key=value" librdkafka settings */
    int report_eof;                /* call on_eof when a partition is read to its end */
    /* Assign mode, for replaying partitions (a changelog): nothing is subscribed and the
     * group is never joined, the owner says what to read with jn_kafka_consumer_assign.
     * group_id is still required by librdkafka but nothing is committed under it
     * (jn_kafka_consumer_commit refuses), no rebalance happens and on_revoke is never
     * called. */
    int assign_only;
} jn_kafka_consumer_opts;

jn_kafka_consumer *jn_kafka_consumer_new(uv_loop_t *loop, const jn_kafka_consumer_opts *o,
                                         const jn_kafka_consumer_cbs *cbs, void *ud, char **err);
/* Commits next_offset (the first offset NOT yet settled) for each listed partition,
 * asynchronously; on_commit reports the result. offsets->elems[i].offset holds it.
 * Returns 0, or an error code when the commit could not even be queued (no on_commit);
 * RD_KAFKA_RESP_ERR__STATE in assign mode. */
int jn_kafka_consumer_commit(jn_kafka_consumer *c, const rd_kafka_topic_partition_list_t *offsets);
/* Assign mode only: replaces the whole assignment with parts, each partition read from
 * its elems[i].offset (an offset, RD_KAFKA_OFFSET_BEGINNING, _END, or
 * RD_KAFKA_OFFSET_TAIL(n)). NULL or an empty list unassigns. Messages of partitions not in
 * parts are not delivered after this returns, even those already fetched; a partition
 * assigned again starts over from its new offset. on_assign runs before it returns, with
 * parts (an empty list for NULL). With report_eof, on_eof comes for every assigned
 * partition once it is read to its end, an empty one included. Returns 0, or
 * an error code (RD_KAFKA_RESP_ERR__STATE outside assign mode, __DESTROY once closing,
 * __INVALID_ARG for a duplicate partition or a bad offset: then nothing is assigned any
 * more and on_assign is not called). */
int jn_kafka_consumer_assign(jn_kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts);
/* Stops taking messages from librdkafka, or takes them again. Fetched messages wait in
 * librdkafka (bounded by its queued.max.messages.kbytes) and are there the moment the
 * hold ends, where pause's discard and fetch again would leave the consumer idle.
 * Rebalances, commit results and errors are served all the same. Ignored while
 * closing. */
void jn_kafka_consumer_hold(jn_kafka_consumer *c, int hold);
/* Stops / restarts fetching on every assigned partition (Redis down, a long stop). */
void jn_kafka_consumer_pause(jn_kafka_consumer *c);
void jn_kafka_consumer_resume(jn_kafka_consumer *c);
int jn_kafka_consumer_paused(const jn_kafka_consumer *c);
/* Completes a revocation announced by on_revoke. */
void jn_kafka_consumer_revoke_done(jn_kafka_consumer *c);
/* Consumer lag of an assigned partition (high watermark minus the next offset to read),
 * or -1 when unknown (also until a first message of the assignment was delivered). */
int64_t jn_kafka_consumer_lag(jn_kafka_consumer *c, const char *topic, int32_t partition);
/* Leaves the group (on_revoke runs for what is assigned; the owner must answer with
 * revoke_done), then destroys the handle; done(arg) runs once everything is closed.
 * No message is delivered after this call. In assign mode there is no group: the
 * assignment is dropped without on_revoke and close finishes as soon as librdkafka has
 * stopped its fetchers. */
void jn_kafka_consumer_close(jn_kafka_consumer *c, void (*done)(void *), void *arg);

/* ---- topics ------------------------------------------------------------------------- */

/* The outcome of jn_kafka_topic_ensure, on the loop. err is 0 (partitions then holds the
 * topic's partition count) or an rd_kafka_resp_err_t (partitions 0). reason is one
 * sentence for a log line, also on success (whether the topic was created or found);
 * valid only during the call. */
typedef void (*jn_kafka_topic_cb)(void *ud, int err, int partitions, const char *reason);

/* Makes sure `topic` exists with as many partitions as `like_topic` (a changelog and the
 * stream it records, co-partitioned), creating it when missing with `configs`
 * (NULL-terminated "key=value" topic settings, e.g. "cleanup.policy=compact") and a
 * replication factor of min(3, brokers in the cluster). An existing topic's settings are
 * not checked, only its partition count. Never blocks the loop: the Kafka requests run on
 * libuv's thread pool with a client of their own (brokers and extra as for the other
 * clients), each with a timeout of a few seconds, and cb runs exactly once, on a later
 * loop turn. Every argument is copied. A topic created meanwhile by someone else (another
 * instance starting too) counts as found. */
void jn_kafka_topic_ensure(uv_loop_t *loop, const char *brokers, const char *const *extra,
                           const char *topic, const char *like_topic, const char *const *configs,
                           jn_kafka_topic_cb cb, void *ud);

/* Whether `topic` is compacted (its cleanup.policy includes "compact"), read from the
 * brokers in the same way (thread pool, own client, timeouts): err 0 and compacted 0 or 1,
 * or err != 0 (the topic does not exist, brokers unreachable) with the reason. cb runs
 * once on a later loop turn; reason is valid only during the call. */
typedef void (*jn_kafka_policy_cb)(void *ud, int err, int compacted, const char *reason);
void jn_kafka_topic_compacted(uv_loop_t *loop, const char *brokers, const char *const *extra,
                              const char *topic, jn_kafka_policy_cb cb, void *ud);

/* The offsets group has committed for parts, read the same way (thread pool, a client of
 * the group's own that never joins it). On success offsets holds parts with each
 * committed offset filled in (RD_KAFKA_OFFSET_INVALID where nothing was committed);
 * otherwise err != 0 and offsets is NULL. Valid only during the call. */
typedef void (*jn_kafka_committed_cb)(void *ud, int err,
                                      const rd_kafka_topic_partition_list_t *offsets,
                                      const char *reason);
void jn_kafka_group_committed(uv_loop_t *loop, const char *brokers, const char *const *extra,
                              const char *group, const rd_kafka_topic_partition_list_t *parts,
                              jn_kafka_committed_cb cb, void *ud);

#endif
