/* What every Kafka client junction makes shares, whatever its kind (kafka_producer.c,
 * kafka_consumer.c, kafka_admin.c): building its librdkafka configuration from junction's
 * (brokers, client id, the deployment's properties), keeping the secret values of that
 * configuration out of every message, serving librdkafka's log events, and the wake-up
 * pipe that brings librdkafka's queues onto the libuv loop.
 *
 * Properties are NULL-terminated arrays of name, value pairs: a value may hold any
 * character, '=' and ',' included (sasl.oauthbearer.config does). The deployment's
 * come from the config (config_kafka.c: kafka.properties, the kafka.sasl.* and
 * kafka.ssl.* shortcuts, KAFKA_PROPERTY_* variables), already resolved and checked. */
#ifndef JN_KAFKA_CONF_H
#define JN_KAFKA_CONF_H

#include <librdkafka/rdkafka.h>
#include <stddef.h>
#include <uv.h>

#include "error.h"

/* ---- error codes ---------------------------------------------------------------------- */

/* librdkafka's error e (rd_kafka_resp_err_t, not RD_KAFKA_RESP_ERR_NO_ERROR) as a code of
 * error.h's Kafka range, JN_EKAFKA_MIN..JN_EKAFKA_MAX: how the glue's functions and
 * callbacks hand librdkafka's errors on. A constant expression, for comparisons. */
#define JN_EKAFKA(e) (-11000 - (int)(e))
/* 0 for RD_KAFKA_RESP_ERR_NO_ERROR, else JN_EKAFKA(e). */
int jn_kafka_code(rd_kafka_resp_err_t e);
/* librdkafka's words for a code of the Kafka range (rd_kafka_err2str: "Local: Queue
 * full", "Broker: Message size too large"); "Success" for 0. */
const char *jn_kafka_strerror(int code);
/* Its name (rd_kafka_err2name: "MSG_SIZE_TOO_LARGE", "_QUEUE_FULL"). */
const char *jn_kafka_errname(int code);

/* Whether a property's value must never be shown: its name holds "password", "secret",
 * "sasl.oauthbearer" or ".pem" (a private key in the config). */
int jn_kafka_conf_is_secret(const char *name);

/* ---- secret values ------------------------------------------------------------------ */

/* The values of a client's secret properties, so that whatever librdkafka says (log
 * lines at debug, error strings) is shown with them blanked out. Copies, wiped when
 * freed. A zeroed struct is an empty list. */
typedef struct {
    char **values;
    int n;
} jn_kafka_secrets;

/* Adds the secret values of properties (pairs) to s. */
void jn_kafka_secrets_add(jn_kafka_secrets *s, const char *const *properties);
void jn_kafka_secrets_free(jn_kafka_secrets *s);
/* text with every secret value in it replaced by "(hidden)": text itself when it holds
 * none (the usual case, no copy), else buf (cut short to n bytes if need be). */
const char *jn_kafka_secrets_hide(const jn_kafka_secrets *s, const char *text, char *buf, size_t n);
/* text, a malloc'd message (jn_errorf's) the call takes, with every secret value in it
 * replaced by "(hidden)": text itself when it holds none, else a new string (text is
 * wiped and freed). For the *err of a function that fails. */
char *jn_kafka_secrets_hidden(const jn_kafka_secrets *s, char *text);

/* ---- configurations ----------------------------------------------------------------- */

struct jn_config;

/* What every client is built from: the kafka.* part of junction's config. */
typedef struct {
    const char *brokers;           /* bootstrap.servers, "host:port[,host:port]"; NULL: none
                                    * (properties may give it) */
    const char *client_id;         /* client.id; NULL: librdkafka's */
    const char *const *properties; /* the deployment's, pairs: applied last, over the
                                    * client's own settings */
} jn_kafka_client_opts;

/* cfg's kafka.brokers, kafka.client_id and resolved kafka properties (pointers into cfg). */
jn_kafka_client_opts jn_kafka_conf_from(const struct jn_config *cfg);

/* A librdkafka configuration for a client of kind who ("producer", "consumer", "admin
 * client": for messages): c's brokers and client id, own (the kind's settings, pairs),
 * then c's properties, with log lines queued for the owner (log.queue) rather than
 * printed from librdkafka's threads, and the events the owner serves (0: none set). The
 * secret values of the properties go into *secrets, which is the caller's to free in any
 * case. NULL with *err (malloc'd) naming the property, its value (or "(hidden)") and
 * librdkafka's reason, secrets blanked. */
rd_kafka_conf_t *jn_kafka_conf_build(const jn_kafka_client_opts *c, const char *who,
                                     const char *const *own, int events, jn_kafka_secrets *secrets,
                                     char **err);
/* rd_kafka_new with conf, which it takes in every case. NULL with *err: "kafka: cannot
 * create the <who>: <reason>", secrets blanked (settings fine one by one may still be
 * refused together, e.g. acks=1 with idempotence). */
rd_kafka_t *jn_kafka_conf_client(rd_kafka_type_t type, rd_kafka_conf_t *conf, const char *who,
                                 const jn_kafka_secrets *secrets, char **err);
/* Whether librdkafka knows the property and takes the value: 0, or -1 with its reason
 * in why (n bytes), the value blanked if it is secret. For checking a config early. */
int jn_kafka_conf_check(const char *name, const char *value, char *why, size_t n);
/* What to look at after an error librdkafka reported, for a person: the config keys of
 * an authentication or a TLS failure; "" for other errors. */
const char *jn_kafka_conf_hint(rd_kafka_resp_err_t err);

/* ---- log lines ------------------------------------------------------------------------- */

/* A RD_KAFKA_EVENT_LOG event, written to junction's log at the matching level with the
 * secrets blanked. */
void jn_kafka_conf_log_event(const jn_kafka_secrets *secrets, rd_kafka_event_t *ev);
/* The same for one line (level is librdkafka's, syslog's 0..7; fac its facility). */
void jn_kafka_conf_log(const jn_kafka_secrets *secrets, int level, const char *fac,
                       const char *line);

/* ---- the loop side: the wake-up pipe and a timer --------------------------------------- */

/* librdkafka writes a byte to the pipe whenever a queue it watches goes from empty to
 * non-empty (rd_kafka_queue_io_event_enable); a uv_poll_t watches the read end, and
 * on_wake runs on the loop with the pipe already emptied. on_wake must then serve every
 * watched queue until it is empty, or kick: no byte comes for events already queued.
 * The timer is the owner's (the producer's close deadlines, the consumer's tick); it
 * lives and closes with the pipe, so an owner has one close to wait for. */
typedef struct jn_kafka_wake jn_kafka_wake;
struct jn_kafka_wake {
    int fds[2]; /* librdkafka writes [1], uv_poll reads [0] */
    uv_poll_t poll;
    uv_timer_t timer; /* its data is the owner's too */
    int open;         /* handles not yet closed */
    void (*on_wake)(jn_kafka_wake *w);
    void (*on_closed)(jn_kafka_wake *w);
    void *data; /* the owner's */
};

/* Opens the pipe and starts watching it; the timer is initialised, not started. 0, or a
 * libuv error code with nothing left open. */
int jn_kafka_wake_start(jn_kafka_wake *w, uv_loop_t *loop, void (*on_wake)(jn_kafka_wake *),
                        void *data);
/* Has librdkafka write to the pipe when q gets events, and kicks once for what q may
 * hold already (rd_kafka_new's own log lines). */
void jn_kafka_wake_watch(jn_kafka_wake *w, rd_kafka_queue_t *q);
/* Stops librdkafka writing for q: before q or its client is destroyed. */
void jn_kafka_wake_unwatch(rd_kafka_queue_t *q);
/* Makes on_wake run on a later loop turn. */
void jn_kafka_wake_kick(jn_kafka_wake *w);
/* Closes the timer, stops watching and closes the pipe, once librdkafka no longer writes
 * to it (every queue unwatched); on_closed runs after both handles closed, from the loop. */
void jn_kafka_wake_close(jn_kafka_wake *w, void (*on_closed)(jn_kafka_wake *));

#endif
