#include "kafka_nudge.h"

#include <stdio.h>

#include "log.h"

/* How long one watermark request may wait for its answer on the thread pool; a close
 * waits for a nudge under way, so at most this long per partition asked. */
#define NUDGE_TIMEOUT_MS 1000

/* The same topics again: rd_kafka_subscribe compares nothing, it replaces the subscription
 * (without leaving the group) and joins when the handler is idle. */
static rd_kafka_resp_err_t resubscribe(jn_kafka_nudge *z) {
    rd_kafka_t *rk = z->rk;
    if (z->rejoin == JN_KAFKA_REJOIN_IF_MEMBER) {
        /* No id yet: the first JoinGroup has not been answered, so the group handler is
         * about to make it, and a subscribe now would come too late. */
        char *id = rd_kafka_memberid(rk);
        int member = id && *id;
        rd_kafka_mem_free(rk, id);
        if (!member) return RD_KAFKA_RESP_ERR_NO_ERROR;
    }
    z->rejoined = 1;
    rd_kafka_topic_partition_list_t *l = NULL;
    rd_kafka_resp_err_t e = rd_kafka_subscription(rk, &l);
    if (!e && l && l->cnt > 0) e = rd_kafka_subscribe(rk, l);
    if (l) rd_kafka_topic_partition_list_destroy(l);
    return e;
}

static void run(uv_work_t *w) {
    jn_kafka_nudge *z = w->data;
    if (z->rejoin) {
        z->err = resubscribe(z); /* logged on the loop (after) */
        return;
    }
    for (int i = 0; i < z->n; i++) {
        int64_t lo, hi;
        rd_kafka_resp_err_t e = rd_kafka_query_watermark_offsets(
            z->rk, z->topic[i], z->partition[i], &lo, &hi, NUDGE_TIMEOUT_MS);
        /* A leader that does not answer will not fetch either: the others can wait for
         * the next nudge rather than make a close wait longer. */
        if (e) break;
    }
}

static void after(uv_work_t *w, int status) {
    (void)status;
    jn_kafka_nudge *z = w->data;
    z->busy = 0;
    if (z->rejoin && z->err)
        jn_log_warn("kafka",
                    "consumer: joining the group again failed (%s); librdkafka joins "
                    "by itself within 2 s",
                    rd_kafka_err2str(z->err));
    jn_log_debug("kafka", "consumer: %s in %.1f ms",
                 !z->rejoin    ? "fetchers nudged"
                 : z->rejoined ? "group joined again"
                               : "no member id yet, so no need to join again",
                 (double)(uv_hrtime() - z->started_ns) / 1e6);
    if (z->done) z->done(z->arg);
}

/* Puts the job z describes on the thread pool; 1 when it is there. */
static int queue(jn_kafka_nudge *z, uv_loop_t *loop, void (*done)(void *), void *arg) {
    z->done = done;
    z->arg = arg;
    z->work.data = z;
    if (uv_queue_work(loop, &z->work, run, after) != 0) return 0;
    z->busy = 1;
    z->started_ns = uv_hrtime();
    return 1;
}

int jn_kafka_nudge_start(jn_kafka_nudge *z, uv_loop_t *loop, rd_kafka_t *rk,
                         const char *const *topics, const int32_t *partitions, int n,
                         void (*done)(void *), void *arg) {
    if (z->busy || n <= 0) return 0;
    if (n > JN_KAFKA_NUDGE_MAX) n = JN_KAFKA_NUDGE_MAX;
    z->rejoin = 0;
    z->rk = rk;
    z->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(z->topic[i], sizeof z->topic[i], "%s", topics[i]);
        z->partition[i] = partitions[i];
    }
    if (!queue(z, loop, done, arg)) return 0;
    z->sent++;
    jn_log_debug("kafka", "consumer: prefetch low, nudging the fetchers of %d partition(s)", n);
    return 1;
}

int jn_kafka_nudge_rejoin(jn_kafka_nudge *z, uv_loop_t *loop, rd_kafka_t *rk, int when,
                          void (*done)(void *), void *arg) {
    if (z->busy) return 0;
    z->rejoin = when;
    z->rejoined = 0;
    z->err = RD_KAFKA_RESP_ERR_NO_ERROR;
    z->rk = rk;
    z->n = 0;
    return queue(z, loop, done, arg);
}
