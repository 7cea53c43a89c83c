/* Kafka producer glue: puts librdkafka's results on the libuv loop.
 *
 * librdkafka does its networking on its own threads. Everything it has for the
 * application (delivery reports, errors, its log lines, statistics) lands on its main
 * queue, which the wake-up pipe of kafka_conf.c watches: librdkafka writes one byte when
 * that queue goes from empty to non-empty, and the loop then drains the queue. So the
 * delivery callback, the inflight counter and the connected flag are only ever touched
 * on the loop thread: no locks.
 *
 * The queue is served with the event API (rd_kafka_queue_poll) rather than rd_kafka_poll
 * plus a global dr_msg_cb: one RD_KAFKA_EVENT_DR carries a whole batch of reports (one
 * per ProduceResponse), which we walk with rd_kafka_event_message_next, and errors, logs
 * and statistics come through the same switch with our producer in hand instead of
 * through the rd_kafka_t opaque. */
#include "kafka_producer.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kafka_conf.h"
#include "log.h"

/* Grace for stragglers after a purge: purged messages normally report before
 * rd_kafka_purge returns, this only covers a broker thread that answers late. */
#define PURGE_GRACE_MS 1000

enum phase {
    P_OPEN,     /* accepting messages */
    P_FLUSHING, /* close() called: waiting for inflight to reach 0 or the timeout */
    P_PURGING,  /* purged, waiting briefly for the purged messages' reports */
    P_CLOSED,   /* rd_kafka_t destroyed, uv handles closing */
};

struct jn_kafka_producer {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* the main queue, where every event for us ends up */
    jn_kafka_secrets secrets;
    jn_kafka_wake wake;
    jn_kafka_delivery_cb cb;
    void *ud;
    long inflight; /* produced and not yet reported; rd_kafka_outq_len also counts requests */
    int connected;
    enum phase phase;
    void (*done)(void *);
    void *done_arg;
};

static void finish(jn_kafka_producer *p);
static void teardown(jn_kafka_producer *p);

/* ---- events from librdkafka ------------------------------------------------------------ */

static void on_delivery(jn_kafka_producer *p, rd_kafka_event_t *ev) {
    const rd_kafka_message_t *m;
    while ((m = rd_kafka_event_message_next(ev)) != NULL) {
        p->inflight--;
        /* An acknowledged message is the surest sign a broker is reachable. */
        if (m->err == RD_KAFKA_RESP_ERR_NO_ERROR) p->connected = 1;
        if (p->cb)
            p->cb(p->ud, m->_private, jn_kafka_code(m->err), rd_kafka_topic_name(m->rkt),
                  m->partition, m->offset);
    }
}

static void on_error(jn_kafka_producer *p, rd_kafka_event_t *ev) {
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) p->connected = 0;
    char buf[1024];
    const char *reason =
        jn_kafka_secrets_hide(&p->secrets, rd_kafka_event_error_string(ev), buf, sizeof buf);
    const char *hint = jn_kafka_conf_hint(err);
    if (rd_kafka_event_error_is_fatal(ev)) {
        /* The idempotent producer gives up (e.g. a sequence gap it cannot repair):
         * every later produce fails with this error, queued messages fail too. */
        jn_log_error("kafka", "fatal: %s: %s", rd_kafka_err2name(err), reason);
        return;
    }
    /* Everything else is informational: librdkafka keeps retrying on its own. */
    jn_log_warn("kafka", "%s: %s%s%s", rd_kafka_err2name(err), reason, *hint ? "; " : "", hint);
}

/* Errors only say when all brokers went down and deliveries only say a broker is up
 * while there is traffic; the statistics say which broker connections are up right now,
 * so an idle producer still notices the cluster coming back. Only broker entries write
 * "state" without a space after the colon (the consumer group writes "state": "..."), and
 * both UP and UPDATE are connected states, hence the prefix match. A deployment that
 * sets statistics.interval.ms=0 in extra is left with errors and deliveries alone. */
static void on_stats(jn_kafka_producer *p, rd_kafka_event_t *ev) {
    const char *json = rd_kafka_event_stats(ev);
    if (json) p->connected = strstr(json, "\"state\":\"UP") != NULL;
}

/* Served from inside rd_kafka_queue_poll, so on the loop thread: throttle reports are not
 * events, librdkafka only queues them when this callback is set. */
static void on_throttle(rd_kafka_t *rk, const char *broker, int32_t broker_id, int throttle_ms,
                        void *opaque) {
    (void)rk;
    (void)opaque;
    if (throttle_ms > 0)
        jn_log_warn("kafka", "broker %s (id %d) throttles us for %d ms (quota)", broker,
                    (int)broker_id, throttle_ms);
    else
        jn_log_info("kafka", "broker %s (id %d) no longer throttles us", broker, (int)broker_id);
}

/* Serves everything queued. It must run until the queue is empty: librdkafka writes the
 * wake-up byte only when the queue goes from empty to non-empty, so leaving events behind
 * would leave them there until some unrelated event arrives. */
static void drain_queue(jn_kafka_producer *p) {
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(p->queue, 0)) != NULL) {
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_DR:
            on_delivery(p, ev);
            break;
        case RD_KAFKA_EVENT_ERROR:
            on_error(p, ev);
            break;
        case RD_KAFKA_EVENT_LOG:
            jn_kafka_conf_log_event(&p->secrets, ev);
            break;
        case RD_KAFKA_EVENT_STATS:
            on_stats(p, ev);
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
}

static void on_wake(jn_kafka_wake *w) {
    jn_kafka_producer *p = w->data;
    drain_queue(p);
    /* Close waits on reports; it is finished here, after the drain, never from inside a
     * delivery callback, so the rd_kafka_t is not destroyed under an event being read. */
    if (p->inflight == 0) {
        if (p->phase == P_FLUSHING)
            finish(p);
        else if (p->phase == P_PURGING)
            teardown(p);
    }
}

/* ---- setup ------------------------------------------------------------------------------ */

static rd_kafka_conf_t *build_conf(const jn_kafka_producer_opts *o, jn_kafka_secrets *secrets,
                                   char **err) {
    char linger[16], queue_max[16], timeout[16];
    snprintf(linger, sizeof linger, "%d", o->linger_ms);
    snprintf(queue_max, sizeof queue_max, "%d", o->queue_max_messages);
    snprintf(timeout, sizeof timeout, "%d", o->message_timeout_ms);
    /* clang-format off */
    const char *const own[] = {
        /* Idempotence: a retried batch is never written twice and order per partition
         * holds; it requires acks=all, which is what we want anyway (no loss on leader
         * failover). */
        "enable.idempotence", "true",
        "acks", "all",
        "compression.type", o->compression ? o->compression : "none",
        "linger.ms", linger,
        "queue.buffering.max.messages", queue_max,
        "message.timeout.ms", timeout,
        /* Keyed messages go to the partition the Java client would choose (murmur2), so
         * keys keep their partition, and their order, across the switch from the old
         * pipeline. */
        "partitioner", "murmur2_random",
        /* Statistics feed jn_kafka_producer_connected (see on_stats). */
        "statistics.interval.ms", "1000",
        NULL,
    };
    /* clang-format on */
    /* Reports come back as events on the main queue; DR makes librdkafka keep every
     * message until its outcome is known, so each gets exactly one report. */
    rd_kafka_conf_t *conf = jn_kafka_conf_build(&o->client, "producer", own,
                                                RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR |
                                                    RD_KAFKA_EVENT_LOG | RD_KAFKA_EVENT_STATS,
                                                secrets, err);
    if (!conf) return NULL;
    rd_kafka_conf_set_throttle_cb(conf, on_throttle);
    return conf;
}

jn_kafka_producer *jn_kafka_producer_new(uv_loop_t *loop, const jn_kafka_producer_opts *o,
                                         jn_kafka_delivery_cb cb, void *ud, char **err) {
    jn_kafka_producer *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->loop = loop;
    p->cb = cb;
    p->ud = ud;
    rd_kafka_conf_t *conf = build_conf(o, &p->secrets, err);
    if (conf) {
        rd_kafka_conf_set_opaque(conf, p);
        p->rk = jn_kafka_conf_client(RD_KAFKA_PRODUCER, conf, "producer", &p->secrets, err);
    }
    int rc = p->rk ? jn_kafka_wake_start(&p->wake, loop, on_wake, p) : 0;
    if (rc != 0) *err = jn_errorf("kafka: cannot set up the wake-up pipe: %s", uv_strerror(rc));
    if (!p->rk || rc != 0) {
        if (p->rk) rd_kafka_destroy(p->rk);
        jn_kafka_secrets_free(&p->secrets);
        free(p);
        return NULL;
    }

    p->queue = rd_kafka_queue_get_main(p->rk);
    rd_kafka_set_log_queue(p->rk, NULL); /* NULL: the main queue */
    jn_kafka_wake_watch(&p->wake, p->queue);
    return p;
}

/* ---- producing -------------------------------------------------------------------------- */

static int produce(jn_kafka_producer *p, const char *topic, int32_t partition, const void *key,
                   size_t key_len, const void *value, size_t value_len, const char *const *headers,
                   void *opaque, int msgflags) {
    if (p->phase != P_OPEN) return JN_EKAFKA(RD_KAFKA_RESP_ERR__DESTROY);
    rd_kafka_headers_t *hdrs = NULL;
    if (headers && headers[0] && headers[1]) {
        size_t n = 0;
        while (headers[2 * n] && headers[2 * n + 1])
            n++;
        hdrs = rd_kafka_headers_new(n);
        /* A pair with a NULL value ends the list too, so we never read past an odd one. */
        for (size_t i = 0; i < n; i++)
            rd_kafka_header_add(hdrs, headers[2 * i], -1, headers[2 * i + 1], -1);
    }
    /* RD_KAFKA_V_KEY and RD_KAFKA_V_VALUE cast to void *, though librdkafka only reads the
     * key and the value (it copies them, or keeps them until delivery; it frees them only
     * with RD_KAFKA_MSG_F_FREE, never passed here): the const goes through an integer,
     * which -Wcast-qual accepts. */
    void *key_bytes = (void *)(uintptr_t)key, *value_bytes = (void *)(uintptr_t)value;
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_KEY(key_bytes, key_len),
                          RD_KAFKA_V_VALUE(value_bytes, value_len), RD_KAFKA_V_MSGFLAGS(msgflags),
                          RD_KAFKA_V_HEADERS(hdrs), RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err) {
        /* librdkafka takes the headers only when it takes the message. QUEUE_FULL goes back
         * as is: the caller pauses until deliveries make room, we do not spin here. */
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return jn_kafka_code(err);
    }
    p->inflight++;
    return 0;
}

int jn_kafka_produce(jn_kafka_producer *p, const char *topic, const void *key, size_t key_len,
                     const void *value, size_t value_len, const char *const *headers,
                     void *opaque) {
    /* The partition is left to the partitioner, which picks it from the key; F_COPY: the
     * caller's buffers are free to go as soon as we return. */
    return produce(p, topic, RD_KAFKA_PARTITION_UA, key, key_len, value, value_len, headers, opaque,
                   RD_KAFKA_MSG_F_COPY);
}

int jn_kafka_produce_ref(jn_kafka_producer *p, const char *topic, int32_t partition,
                         const void *key, size_t key_len, const void *value, size_t value_len,
                         void *opaque) {
    /* No flag: librdkafka points at the value until the message is destroyed, which is
     * after its delivery report was served. It copies the key in any case. */
    return produce(p, topic, partition, key, key_len, value, value_len, NULL, opaque, 0);
}

long jn_kafka_producer_inflight(const jn_kafka_producer *p) {
    return p->inflight;
}

int jn_kafka_producer_connected(const jn_kafka_producer *p) {
    return p->connected;
}

/* ---- closing ---------------------------------------------------------------------------- */

static void on_wake_closed(jn_kafka_wake *w) {
    jn_kafka_producer *p = w->data;
    jn_kafka_secrets_free(&p->secrets);
    void (*done)(void *) = p->done;
    void *arg = p->done_arg;
    free(p);
    if (done) done(arg);
}

static void teardown(jn_kafka_producer *p) {
    p->phase = P_CLOSED;
    if (p->inflight > 0)
        jn_log_error("kafka", "%ld message(s) got no delivery report before the producer closed",
                     p->inflight);
    jn_kafka_wake_unwatch(p->queue);
    rd_kafka_queue_destroy(p->queue);
    /* Blocks while librdkafka joins its threads; brief, and only at shutdown. */
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    jn_kafka_wake_close(&p->wake, on_wake_closed);
}

static void on_timer(uv_timer_t *t) {
    jn_kafka_producer *p = t->data;
    if (p->phase == P_FLUSHING)
        finish(p);
    else if (p->phase == P_PURGING)
        teardown(p);
}

/* The flush is over (all reported, or the time is up): fail what is left, through the
 * normal callback, then tear down. */
static void finish(jn_kafka_producer *p) {
    uv_timer_stop(&p->wake.timer);
    if (p->inflight == 0) {
        teardown(p);
        return;
    }
    jn_log_warn("kafka", "close: %ld message(s) still undelivered, purging them", p->inflight);
    p->phase = P_PURGING;
    /* Blocks until the broker threads have purged (milliseconds); each purged message
     * gets a report with ERR__PURGE_QUEUE or ERR__PURGE_INFLIGHT, served right here. */
    rd_kafka_purge(p->rk, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
    drain_queue(p);
    if (p->inflight == 0)
        teardown(p);
    else
        uv_timer_start(&p->wake.timer, on_timer, PURGE_GRACE_MS, 0);
}

void jn_kafka_producer_close(jn_kafka_producer *p, int timeout_ms, void (*done)(void *),
                             void *arg) {
    if (p->phase != P_OPEN) return; /* already closing; the first caller's done runs */
    p->phase = P_FLUSHING;
    p->done = done;
    p->done_arg = arg;
    if (p->inflight > 0)
        jn_log_info("kafka", "close: waiting up to %d ms for %ld delivery report(s)", timeout_ms,
                    p->inflight);
    /* Even with nothing in flight the rest happens on the next loop turn: close may be
     * called from a delivery callback, while the queue is being read. */
    uv_timer_start(&p->wake.timer, on_timer,
                   p->inflight > 0 && timeout_ms > 0 ? (uint64_t)timeout_ms : 0, 0);
}
