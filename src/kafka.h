/* The Kafka glue: librdkafka on the libuv loop. librdkafka keeps its own threads; its
 * event queues are handed to the loop with rd_kafka_queue_io_event_enable on a
 * non-blocking pipe watched by uv_poll, and drained until empty on every wake-up, so
 * delivery reports, messages and rebalances run on the loop thread, no locks.
 *
 *   kafka_conf.h      what every client shares: its configuration from junction's, secret
 *                     values kept out of messages, log lines, the wake-up pipe
 *   kafka_producer.h  the idempotent producer
 *   kafka_consumer.h  the consumer-group member and the partition reader
 *   kafka_admin.h     topics, committed offsets and connection checks, off the loop */
#ifndef JN_KAFKA_H
#define JN_KAFKA_H

#include "kafka_admin.h"
#include "kafka_conf.h"
#include "kafka_consumer.h"
#include "kafka_producer.h"

#endif
