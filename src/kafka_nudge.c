#include "kafka_nudge.h"

#include <stdio.h>

#include "log.h"

/* How long one watermark request may wait for its answer on the thread pool; a close
 * waits for a nudge under way, so at most this long per partition asked. */
#define NUDGE_TIMEOUT_MS 1000

static void run(uv_work_t *w) {
    jn_kafka_nudge *z = w->data;
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
    jn_log_debug("kafka", "consumer: fetchers nudged in %.1f ms",
                 (double)(uv_hrtime() - z->started_ns) / 1e6);
    if (z->done) z->done(z->arg);
}

int jn_kafka_nudge_start(jn_kafka_nudge *z, uv_loop_t *loop, rd_kafka_t *rk,
                         const char *const *topics, const int32_t *partitions, int n,
                         void (*done)(void *), void *arg) {
    if (z->busy || n <= 0) return 0;
    if (n > JN_KAFKA_NUDGE_MAX) n = JN_KAFKA_NUDGE_MAX;
    z->rk = rk;
    z->n = n;
    for (int i = 0; i < n; i++) {
        snprintf(z->topic[i], sizeof z->topic[i], "%s", topics[i]);
        z->partition[i] = partitions[i];
    }
    z->done = done;
    z->arg = arg;
    z->work.data = z;
    if (uv_queue_work(loop, &z->work, run, after) != 0) return 0;
    z->busy = 1;
    z->sent++;
    z->started_ns = uv_hrtime();
    jn_log_debug("kafka", "consumer: prefetch low, nudging the fetchers of %d partition(s)", n);
    return 1;
}
