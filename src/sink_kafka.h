/* The Kafka sink: records (JSON text) produced to one topic, each with a message key, on
 * a producer of its own (idempotent, acks=all), under the analytics sink's contract (see
 * sink.h): a record leaves the sink only as delivered or as refused for good, and the
 * callback is the only way it leaves.
 *
 * - Delivered: status 0, once the brokers acknowledged it (acks=all).
 * - Refused for good: status is librdkafka's error as a code of the Kafka range
 *   (JN_EKAFKA(e), kafka_conf.h: negative), reason says why. Only for what
 *   no retry can change: the record is too large for the topic, the topic name is
 *   invalid, the client may not write to it, the broker rejects the record itself.
 * - Everything else is retried for as long as it takes: a full librdkafka queue (the
 *   record waits in the sink, in order), brokers down or slow (a record librdkafka gives
 *   up on after message_timeout_ms is produced again), a topic that does not exist yet.
 *
 * Order: records go to librdkafka in the order they were added, so records of one key
 * (one partition) are written in that order, with one exception: a record that timed out
 * is produced again behind those of its partition that librdkafka still held. A
 * message_timeout_ms of 0 (librdkafka retries forever by itself) avoids that.
 *
 * The callback runs on the loop, never from inside jn_kafka_sink_add. It may add records
 * and may close the sink. */
#ifndef JN_SINK_KAFKA_H
#define JN_SINK_KAFKA_H

#include <stddef.h>
#include <uv.h>

#include "kafka.h"
#include "sink.h"

typedef struct jn_kafka_sink jn_kafka_sink;

/* NULL with *err (malloc'd) when the topic is missing or the producer refuses a setting. */
jn_kafka_sink *jn_kafka_sink_new(uv_loop_t *loop, const jn_kafka_producer_opts *o,
                                 const char *topic, jn_sink_done_cb cb, void *ud, char **err);
/* Queues one record (json and key are copied; key may be NULL for none). item is handed
 * back to the callback. Not after close. */
void jn_kafka_sink_add(jn_kafka_sink *s, const char *json, size_t len, const char *key,
                       size_t key_len, void *item);
/* Records added and not yet reported. */
size_t jn_kafka_sink_pending(const jn_kafka_sink *s);
/* Records handed to librdkafka so far (a record produced again counts again), and of those
 * the ones produced again after librdkafka gave up on them, for status. */
void jn_kafka_sink_counts(const jn_kafka_sink *s, long *produced, long *retries);
/* librdkafka sends by itself after linger_ms; this only makes records that wait in the
 * sink (full queue, a retry after an error) try again now. */
void jn_kafka_sink_flush(jn_kafka_sink *s);
/* No callback runs after this call: records not reported yet are not reported at all
 * (their messages are not committed, so they are read again by the next run; some may
 * have reached Kafka and will be written twice). Purges the producer at once, frees
 * everything; done(arg) runs after. */
void jn_kafka_sink_close(jn_kafka_sink *s, void (*done)(void *), void *arg);

#endif
