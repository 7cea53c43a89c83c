/* Kafka producer glue: puts librdkafka's results on the libuv loop.
 *
 * librdkafka does its networking on its own threads. Everything it has for the
 * application (delivery reports, errors, its log lines, statistics) lands on its main
 * queue; rd_kafka_queue_io_event_enable makes it write one byte to a non-blocking pipe
 * when that queue goes from empty to non-empty, a uv_poll_t watches the read end, and
 * the loop then drains the pipe and the queue. So the delivery callback, the inflight
 * counter and the connected flag are only ever touched on the loop thread: no locks.
 *
 * The queue is served with the event API (rd_kafka_queue_poll) rather than rd_kafka_poll
 * plus a global dr_msg_cb: one RD_KAFKA_EVENT_DR carries a whole batch of reports (one
 * per ProduceResponse), which we walk with rd_kafka_event_message_next, and errors, logs
 * and statistics come through the same switch with our producer in hand instead of
 * through the rd_kafka_t opaque. */
#define _GNU_SOURCE /* pipe2 */
#include "kafka.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
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
    int fds[2];              /* wake-up pipe: librdkafka writes [1], uv_poll reads [0] */
    uv_poll_t poll;
    uv_timer_t timer; /* close: flush deadline, then purge grace */
    int open_handles;
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
            p->cb(p->ud, m->_private, m->err, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
    }
}

static void on_error(jn_kafka_producer *p, rd_kafka_event_t *ev) {
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (err == RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) p->connected = 0;
    if (rd_kafka_event_error_is_fatal(ev)) {
        /* The idempotent producer gives up (e.g. a sequence gap it cannot repair):
         * every later produce fails with this error, queued messages fail too. */
        jn_log_error("kafka", "fatal: %s: %s", rd_kafka_err2name(err),
                     rd_kafka_event_error_string(ev));
        return;
    }
    /* Everything else is informational: librdkafka keeps retrying on its own. */
    jn_log_warn("kafka", "%s: %s", rd_kafka_err2name(err), rd_kafka_event_error_string(ev));
}

static void on_log(rd_kafka_event_t *ev) {
    const char *fac, *str;
    int level;
    if (rd_kafka_event_log(ev, &fac, &str, &level) != 0) return;
    /* A broker failure is both logged as FAIL and sent as an error event with the same
     * text; on_error reports it, so the log copy would only double every line. */
    if (level < 7 && strcmp(fac, "FAIL") == 0) return;
    /* librdkafka uses syslog levels: 0..3 error, 4 warning, 5..6 notice/info, 7 debug. */
    jn_log_level l = level <= 3   ? JN_LOG_ERROR
                     : level == 4 ? JN_LOG_WARN
                     : level <= 6 ? JN_LOG_INFO
                                  : JN_LOG_DEBUG;
    if (jn_log_enabled(l)) jn_log_write(l, "kafka", "%s: %s", fac, str);
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
            on_log(ev);
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

static void on_poll(uv_poll_t *h, int status, int events) {
    (void)events;
    jn_kafka_producer *p = h->data;
    if (status < 0) jn_log_warn("kafka", "wake-up pipe: %s", uv_strerror(status));
    /* Pipe first, queue second: a byte written while we drain the queue then wakes us
     * again (at worst for nothing) instead of being swallowed after we looked. */
    char buf[256];
    for (;;) {
        ssize_t n = read(p->fds[0], buf, sizeof buf);
        if (n > 0 || (n < 0 && errno == EINTR)) continue;
        break; /* EAGAIN: empty */
    }
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

/* Settings whose value must not end up in a log line. */
static int secret_setting(const char *name) {
    return strstr(name, "password") || strstr(name, "secret") || strstr(name, ".pem");
}

static int conf_set(rd_kafka_conf_t *conf, const char *name, const char *value, char **err) {
    char reason[512];
    if (rd_kafka_conf_set(conf, name, value, reason, sizeof reason) == RD_KAFKA_CONF_OK) return 0;
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_printf(&sb, "kafka: setting %s=%s rejected: %s", name,
                 secret_setting(name) ? "(hidden)" : value, reason);
    *err = jn_sb_steal(&sb);
    return -1;
}

static int conf_set_int(rd_kafka_conf_t *conf, const char *name, int value, char **err) {
    char v[16];
    snprintf(v, sizeof v, "%d", value);
    return conf_set(conf, name, v, err);
}

static rd_kafka_conf_t *build_conf(const jn_kafka_producer_opts *o, char **err) {
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    int rc = 0;
    if (o->brokers) rc = rc ? rc : conf_set(conf, "bootstrap.servers", o->brokers, err);
    if (o->client_id) rc = rc ? rc : conf_set(conf, "client.id", o->client_id, err);
    /* Idempotence: a retried batch is never written twice and order per partition holds;
     * it requires acks=all, which is what we want anyway (no loss on leader failover). */
    rc = rc ? rc : conf_set(conf, "enable.idempotence", "true", err);
    rc = rc ? rc : conf_set(conf, "acks", "all", err);
    if (o->compression) rc = rc ? rc : conf_set(conf, "compression.type", o->compression, err);
    rc = rc ? rc : conf_set_int(conf, "linger.ms", o->linger_ms, err);
    rc = rc ? rc : conf_set_int(conf, "queue.buffering.max.messages", o->queue_max_messages, err);
    rc = rc ? rc : conf_set_int(conf, "message.timeout.ms", o->message_timeout_ms, err);
    /* Keyed messages go to the partition the Java client would choose (murmur2), so keys
     * keep their partition, and their order, across the switch from the old pipeline. */
    rc = rc ? rc : conf_set(conf, "partitioner", "murmur2_random", err);
    /* Statistics feed jn_kafka_producer_connected (see on_stats). */
    rc = rc ? rc : conf_set(conf, "statistics.interval.ms", "1000", err);
    /* Log lines are queued for us instead of printed from librdkafka's threads. */
    rc = rc ? rc : conf_set(conf, "log.queue", "true", err);
    /* extra comes last so a deployment can override any of the above. */
    for (const char *const *e = o->extra; !rc && e && *e; e++) {
        const char *eq = strchr(*e, '=');
        if (!eq || eq == *e) {
            jn_sb sb;
            jn_sb_init(&sb);
            jn_sb_printf(&sb, "kafka: extra setting \"%s\" is not key=value",
                         secret_setting(*e) ? "(hidden)" : *e);
            *err = jn_sb_steal(&sb);
            rc = -1;
            break;
        }
        char *name = strndup(*e, (size_t)(eq - *e));
        if (!name) abort();
        rc = conf_set(conf, name, eq + 1, err);
        free(name);
    }
    if (rc) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    /* Reports come back as events on the main queue; DR makes librdkafka keep every
     * message until its outcome is known, so each gets exactly one report. */
    rd_kafka_conf_set_events(conf, RD_KAFKA_EVENT_DR | RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG |
                                       RD_KAFKA_EVENT_STATS);
    rd_kafka_conf_set_throttle_cb(conf, on_throttle);
    return conf;
}

jn_kafka_producer *jn_kafka_producer_new(uv_loop_t *loop, const jn_kafka_producer_opts *o,
                                         jn_kafka_delivery_cb cb, void *ud, char **err) {
    rd_kafka_conf_t *conf = build_conf(o, err);
    if (!conf) return NULL;
    jn_kafka_producer *p = calloc(1, sizeof *p);
    if (!p) abort();
    p->loop = loop;
    p->cb = cb;
    p->ud = ud;
    p->fds[0] = p->fds[1] = -1;
    rd_kafka_conf_set_opaque(conf, p);

    char reason[512];
    p->rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, reason, sizeof reason);
    if (!p->rk) {
        /* Settings that are fine one by one but not together (e.g. acks=1 with
         * idempotence) are only refused here. conf is still ours on failure. */
        rd_kafka_conf_destroy(conf);
        jn_sb sb;
        jn_sb_init(&sb);
        jn_sb_printf(&sb, "kafka: cannot create producer: %s", reason);
        *err = jn_sb_steal(&sb);
        free(p);
        return NULL;
    }
    int rc = pipe2(p->fds, O_NONBLOCK | O_CLOEXEC) == 0 ? 0 : uv_translate_sys_error(errno);
    if (rc == 0) rc = uv_poll_init(loop, &p->poll, p->fds[0]);
    if (rc != 0) {
        jn_sb sb;
        jn_sb_init(&sb);
        jn_sb_printf(&sb, "kafka: cannot set up the wake-up pipe: %s", uv_strerror(rc));
        *err = jn_sb_steal(&sb);
        if (p->fds[0] >= 0) close(p->fds[0]);
        if (p->fds[1] >= 0) close(p->fds[1]);
        rd_kafka_destroy(p->rk);
        free(p);
        return NULL;
    }
    p->poll.data = p;
    uv_timer_init(loop, &p->timer);
    p->timer.data = p;
    p->open_handles = 2;

    p->queue = rd_kafka_queue_get_main(p->rk);
    rd_kafka_queue_io_event_enable(p->queue, p->fds[1], "1", 1);
    rd_kafka_set_log_queue(p->rk, NULL); /* NULL: the main queue */
    uv_poll_start(&p->poll, UV_READABLE, on_poll);
    /* Anything queued before the pipe was attached (rd_kafka_new's own log lines) would
     * not cause a write, so wake the loop once ourselves. */
    ssize_t w = write(p->fds[1], "1", 1);
    (void)w;
    return p;
}

/* ---- producing -------------------------------------------------------------------------- */

static int produce(jn_kafka_producer *p, const char *topic, int32_t partition, const void *key,
                   size_t key_len, const void *value, size_t value_len, const char *const *headers,
                   void *opaque, int msgflags) {
    if (p->phase != P_OPEN) return RD_KAFKA_RESP_ERR__DESTROY;
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
    rd_kafka_resp_err_t err =
        rd_kafka_producev(p->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE((void *)value, value_len),
                          RD_KAFKA_V_MSGFLAGS(msgflags), RD_KAFKA_V_HEADERS(hdrs),
                          RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    if (err) {
        /* librdkafka takes the headers only when it takes the message. QUEUE_FULL goes back
         * as is: the caller pauses until deliveries make room, we do not spin here. */
        if (hdrs) rd_kafka_headers_destroy(hdrs);
        return err;
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

static void on_handle_closed(uv_handle_t *h) {
    jn_kafka_producer *p = h->data;
    if (--p->open_handles > 0) return;
    /* librdkafka is gone and the poll handle no longer watches the fd: safe to close. */
    close(p->fds[0]);
    close(p->fds[1]);
    void (*done)(void *) = p->done;
    void *arg = p->done_arg;
    free(p);
    if (done) done(arg);
}

static void teardown(jn_kafka_producer *p) {
    p->phase = P_CLOSED;
    uv_timer_stop(&p->timer);
    if (p->inflight > 0)
        jn_log_error("kafka", "%ld message(s) got no delivery report before the producer closed",
                     p->inflight);
    rd_kafka_queue_io_event_enable(p->queue, -1, NULL, 0);
    rd_kafka_queue_destroy(p->queue);
    /* Blocks while librdkafka joins its threads; brief, and only at shutdown. */
    rd_kafka_destroy(p->rk);
    p->rk = NULL;
    uv_close((uv_handle_t *)&p->poll, on_handle_closed);
    uv_close((uv_handle_t *)&p->timer, on_handle_closed);
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
    uv_timer_stop(&p->timer);
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
        uv_timer_start(&p->timer, on_timer, PURGE_GRACE_MS, 0);
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
    uv_timer_start(&p->timer, on_timer,
                   p->inflight > 0 && timeout_ms > 0 ? (uint64_t)timeout_ms : 0, 0);
}
