/* Kafka administration glue: topics made and looked up, committed offsets read, and
 * whether the brokers take junction's connection settings, each with a short-lived client
 * of its own on libuv's thread pool, the outcome delivered on the loop. */
#ifndef JN_KAFKA_ADMIN_H
#define JN_KAFKA_ADMIN_H

#include <librdkafka/rdkafka.h>
#include <uv.h>

#include "kafka_conf.h"

/* The outcome of jn_kafka_topic_ensure, on the loop. err is 0 (partitions then holds the
 * topic's partition count) or a code of the Kafka range (JN_EKAFKA(e), kafka_conf.h;
 * partitions 0). The same holds for err in every callback below. reason is one
 * sentence for a log line, also on success (whether the topic was created or found);
 * valid only during the call. */
typedef void (*jn_kafka_topic_cb)(void *ud, int err, int partitions, const char *reason);

/* Makes sure `topic` exists with as many partitions as `like_topic` (a changelog and the
 * stream it records, co-partitioned), creating it when missing with `configs`
 * (NULL-terminated "key=value" topic settings, e.g. "cleanup.policy=compact") and a
 * replication factor of min(3, brokers in the cluster). An existing topic's settings are
 * not checked, only its partition count. Never blocks the loop: the Kafka requests run on
 * libuv's thread pool with a client of their own (client: brokers, client id and
 * properties, as for the other clients), each with a timeout of a few seconds, and cb runs exactly
 * once, on a later loop turn. Every argument is copied. A topic created meanwhile by someone else
 * (another instance starting too) counts as found. */
void jn_kafka_topic_ensure(uv_loop_t *loop, const jn_kafka_client_opts *client, const char *topic,
                           const char *like_topic, const char *const *configs, jn_kafka_topic_cb cb,
                           void *ud);

/* Whether `topic` is compacted (its cleanup.policy includes "compact"), read from the
 * brokers in the same way (thread pool, own client, timeouts): err 0 and compacted 0 or 1,
 * or err != 0 (the topic does not exist, brokers unreachable) with the reason. cb runs
 * once on a later loop turn; reason is valid only during the call. */
typedef void (*jn_kafka_policy_cb)(void *ud, int err, int compacted, const char *reason);
void jn_kafka_topic_compacted(uv_loop_t *loop, const jn_kafka_client_opts *client,
                              const char *topic, jn_kafka_policy_cb cb, void *ud);

/* The offsets group has committed for parts, read the same way (thread pool, a client of
 * the group's own that never joins it). On success offsets holds parts with each
 * committed offset filled in (RD_KAFKA_OFFSET_INVALID where nothing was committed);
 * otherwise err != 0 and offsets is NULL. Valid only during the call. */
typedef void (*jn_kafka_committed_cb)(void *ud, int err,
                                      const rd_kafka_topic_partition_list_t *offsets,
                                      const char *reason);
void jn_kafka_group_committed(uv_loop_t *loop, const jn_kafka_client_opts *client,
                              const char *group, const rd_kafka_topic_partition_list_t *parts,
                              jn_kafka_committed_cb cb, void *ud);

/* Whether the brokers take junction's connection settings: a metadata request from a
 * client of its own with client's settings (TLS, SASL: what the roles will use),
 * on the thread pool. err 0 once the brokers answered; otherwise the first
 * authentication or TLS failure ends the wait at once, and anything else (brokers down)
 * after timeout_ms, with the last broker error in the reason, secrets blanked, and
 * jn_kafka_conf_hint(err) saying what to check. cb runs once on a later loop turn;
 * reason is valid only during the call. */
typedef void (*jn_kafka_check_cb)(void *ud, int err, const char *reason);
void jn_kafka_brokers_check(uv_loop_t *loop, const jn_kafka_client_opts *client, int timeout_ms,
                            jn_kafka_check_cb cb, void *ud);

#endif
