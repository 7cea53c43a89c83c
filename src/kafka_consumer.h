/* Kafka consumer glue: a consumer-group member (or, in assign mode, a reader of the
 * partitions its owner names) with offsets managed by junction (enable.auto.commit=false,
 * enable.auto.offset.store=false): the owner commits, per partition, the offset up to
 * which every message is settled. Messages, rebalances and commit results all arrive on
 * the loop through the wake-up pipe of kafka_conf.h, like the producer's reports. */
#ifndef JN_KAFKA_CONSUMER_H
#define JN_KAFKA_CONSUMER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#include "kafka_conf.h"

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
    /* Optional, before a group's assignment is applied: the owner may set where each
     * partition starts (parts->elems[i].offset; left alone, the committed offset or
     * auto.offset.reset). A reader that never commits keeps its place this way when the
     * group takes its partitions away and gives them back. */
    void (*on_positions)(void *ud, rd_kafka_topic_partition_list_t *parts);
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
    jn_kafka_client_opts client; /* brokers, client id, the deployment's properties */
    const char *group_id;
    const char *auto_offset_reset; /* "earliest" or "latest" */
    const char *const *topics;     /* NULL-terminated; not used with assign_only */
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
 * Returns 0, or a code of the Kafka range (kafka_conf.h) when the commit could not even
 * be queued (no on_commit): JN_EKAFKA(RD_KAFKA_RESP_ERR__STATE) in assign mode. */
int jn_kafka_consumer_commit(jn_kafka_consumer *c, const rd_kafka_topic_partition_list_t *offsets);
/* Assign mode only: replaces the whole assignment with parts, each partition read from
 * its elems[i].offset (an offset, RD_KAFKA_OFFSET_BEGINNING, _END, or
 * RD_KAFKA_OFFSET_TAIL(n)). NULL or an empty list unassigns. Messages of partitions not in
 * parts are not delivered after this returns, even those already fetched; a partition
 * assigned again starts over from its new offset. on_assign runs before it returns, with
 * parts (an empty list for NULL). With report_eof, on_eof comes for every assigned
 * partition once it is read to its end, an empty one included. Returns 0, or a code of
 * the Kafka range, JN_EKAFKA(e) with e RD_KAFKA_RESP_ERR__STATE outside assign mode,
 * __DESTROY once closing, __INVALID_ARG for a duplicate partition or a bad offset: then
 * nothing is assigned any more and on_assign is not called. */
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
/* librdkafka's handle underneath, NULL once closed. Only for what this layer does not
 * do: its tests use it to act behind its back, as librdkafka itself might. */
rd_kafka_t *jn_kafka_consumer_handle(jn_kafka_consumer *c);
/* Completes a revocation announced by on_revoke. */
void jn_kafka_consumer_revoke_done(jn_kafka_consumer *c);
/* How many times the consumer woke librdkafka's fetchers because its prefetch ran low
 * while partitions still had messages to read (kafka_nudge.h). */
uint64_t jn_kafka_consumer_nudges(const jn_kafka_consumer *c);
/* Consumer lag of an assigned partition (high watermark minus the next offset to read),
 * or -1 when unknown (also until a first message of the assignment was delivered). */
int64_t jn_kafka_consumer_lag(jn_kafka_consumer *c, const char *topic, int32_t partition);
/* Leaves the group (on_revoke runs for what is assigned; the owner must answer with
 * revoke_done), then destroys the handle; done(arg) runs once everything is closed.
 * No message is delivered after this call. In assign mode there is no group: the
 * assignment is dropped without on_revoke and close finishes as soon as librdkafka has
 * stopped its fetchers. */
void jn_kafka_consumer_close(jn_kafka_consumer *c, void (*done)(void *), void *arg);

#endif
