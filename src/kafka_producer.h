/* Kafka producer glue: an idempotent producer on the libuv loop. librdkafka keeps its own
 * threads; its event queue is handed to the loop through the wake-up pipe of
 * kafka_conf.h and drained until empty on every wake-up, so delivery reports run on the
 * loop thread, no locks. */
#ifndef JN_KAFKA_PRODUCER_H
#define JN_KAFKA_PRODUCER_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <uv.h>

#include "kafka_conf.h"

typedef struct jn_kafka_producer jn_kafka_producer;

/* Runs on the loop for each message's final outcome. err is 0 when the broker
 * acknowledged it (acks=all), else librdkafka's reason as a code of the Kafka range
 * (JN_EKAFKA(e), kafka_conf.h; jn_kafka_strerror names it); opaque is what
 * jn_kafka_produce got. */
typedef void (*jn_kafka_delivery_cb)(void *ud, void *opaque, int err, const char *topic,
                                     int32_t partition, int64_t offset);

typedef struct {
    jn_kafka_client_opts client; /* brokers, client id, the deployment's properties */
    const char *compression;     /* "lz4", "zstd", "snappy", "gzip" or "none" */
    int linger_ms;
    int queue_max_messages; /* queue.buffering.max.messages */
    int message_timeout_ms; /* how long librdkafka retries one message */
} jn_kafka_producer_opts;

/* An idempotent producer (enable.idempotence=true, acks=all). NULL with *err (malloc'd)
 * when a setting is rejected. Brokers being down is not an error: librdkafka retries. */
jn_kafka_producer *jn_kafka_producer_new(uv_loop_t *loop, const jn_kafka_producer_opts *o,
                                         jn_kafka_delivery_cb cb, void *ud, char **err);
/* librdkafka's queue is full: the caller pauses and retries after deliveries drain it. */
#define JN_KAFKA_QUEUE_FULL JN_EKAFKA(RD_KAFKA_RESP_ERR__QUEUE_FULL)

/* Queues one message. Returns 0; JN_KAFKA_QUEUE_FULL when librdkafka's queue is full;
 * another code of the Kafka range (jn_kafka_strerror names it) for a message that can
 * never be sent, JN_EKAFKA(RD_KAFKA_RESP_ERR__DESTROY) once closing. Headers are
 * NULL-terminated name/value pairs. */
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

#endif
