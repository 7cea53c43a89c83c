/* Kafka consumer glue: a consumer-group member whose messages, rebalances and commit
 * results are all served on the libuv loop.
 *
 * Same scheme as the producer in kafka_producer.c: librdkafka works on its own threads and hands
 * us what it has through queues. rd_kafka_poll_set_consumer forwards the main queue
 * (errors) into the consumer-group queue, the log queue goes there too, and every
 * assigned partition's fetch queue is forwarded to a queue of its own for messages. So a
 * rebalance never waits behind the messages fetched before it: the owner can hold
 * messages back (jn_kafka_consumer_hold) and still hear of a rebalance at once.
 * The wake-up pipe of kafka_conf.c watches both: librdkafka writes a byte to it when
 * either queue goes from empty to non-empty, and the loop drains the queues with the
 * event API (rd_kafka_queue_poll(q, 0)), events first.
 * No locks: every field below is only touched on the loop thread.
 *
 * Rebalances use the eager "range" assignor and are delegated to us as
 * RD_KAFKA_EVENT_REBALANCE events. An assignment is applied at once (rd_kafka_assign)
 * and then announced; a revocation is announced and only applied when the owner has
 * settled and committed what it holds for those partitions and says so with
 * jn_kafka_consumer_revoke_done. librdkafka pauses fetching while it waits for that, and
 * the `delivering` flag drops anything of the old assignment still in the queue, so no
 * message of a revoked partition reaches the owner after on_revoke. Offsets are the
 * owner's business (auto commit and auto offset store are off); commits are sent with
 * rd_kafka_commit_queue so their result comes back as an event on the same queue.
 *
 * Closing uses rd_kafka_consumer_close_queue: the final revocation is served here like any
 * other, and rd_kafka_consumer_closed says when librdkafka has left the group, so the
 * loop never blocks on the group protocol.
 *
 * In assign mode (replaying a changelog) nothing is subscribed: the group is never
 * joined, the owner assigns partitions with jn_kafka_consumer_assign (rd_kafka_assign,
 * like a rebalance's assignment). The queues are arranged differently there, see
 * jn_kafka_consumer_new. Close has no revocation to serve: librdkafka drops the
 * assignment itself and reports closed once the fetchers stopped. */
#include "kafka_consumer.h"

#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "buf.h"
#include "kafka_conf.h"
#include "kafka_nudge.h"
#include "log.h"

/* Events served per wake-up before the loop gets a turn (timers, HTTP): a backlog of
 * fetched messages must not starve everything else. The rest is served next turn. */
#define DRAIN_BATCH 1000
/* Every so often the queue is polled even without a wake-up: librdkafka counts our polls
 * against max.poll.interval.ms and an idle consumer gets no events to wake it. */
#define TICK_MS 1000
/* Close waits this long for the owner to answer the final on_revoke; after that the
 * revocation is completed without it. */
#define CLOSE_REVOKE_TIMEOUT_MS 30000
/* ... and then this long for librdkafka to leave the group before it is torn down
 * without leaving (the group notices through the session timeout). */
#define CLOSE_LEAVE_TIMEOUT_MS 10000
/* A nudge (kafka_nudge.h) once the messages queue holds less than half of
 * queued.min.messages, at most this often. */
#define NUDGE_INTERVAL_MS 20
/* For this long after each assignment, partitions with nothing delivered yet (their lag
 * unknown) are nudged too, at most this often (see maybe_nudge). */
#define NUDGE_FRESH_MS          1500
#define NUDGE_FRESH_INTERVAL_MS 100
/* Group members read librdkafka's statistics this often (see on_stats)... */
#define STATS_INTERVAL_MS "200"
/* ... and may join again while this many ms have not passed since they subscribed. */
#define REJOIN_WINDOW_MS 800

enum phase {
    P_RUNNING,
    P_CLOSING, /* close() called: serving the final revocation until the group is left */
    P_CLOSED,  /* rd_kafka_t destroyed, uv handles closing */
};

struct jn_kafka_consumer {
    uv_loop_t *loop;
    rd_kafka_t *rk;
    rd_kafka_queue_t *queue; /* the consumer-group queue: rebalances, commits, errors, logs
                              * (assign mode: the main queue, errors and logs) */
    rd_kafka_queue_t *msgq;  /* messages: every assigned partition's fetch queue
                              * (assign mode: the consumer queue) */
    jn_kafka_secrets secrets;
    jn_kafka_wake wake;
    jn_kafka_consumer_cbs cbs;
    void *ud;
    int assign_only; /* no group membership: the owner assigns (jn_kafka_consumer_assign) */
    int report_eof;  /* jn_kafka_consumer_opts.report_eof */
    /* Our copy of the assignment we gave librdkafka (rd_kafka_assign is only ever called
     * by us), so pause, resume and lag need no round trip to librdkafka's thread. */
    rd_kafka_topic_partition_list_t *assigned;
    /* Per partition of `assigned`: the end last reported (-1: none), and whether it was
     * assigned just before (given back in a rebalance: see maybe_nudge). */
    int64_t *eof_at;
    uint8_t *again;
    rd_kafka_topic_partition_list_t *before; /* the last assignment unassigned */
    /* Every partition we paused since the last resume. librdkafka keeps a partition's
     * pause flag across unassignment, so resume must reach partitions revoked while
     * paused too, or they would come back paused in a later assignment. */
    rd_kafka_topic_partition_list_t *app_paused;
    int paused;
    int held;           /* jn_kafka_consumer_hold: messages stay in librdkafka's queue */
    int delivering;     /* messages go to the owner: between on_assign and on_revoke */
    int revoke_pending; /* on_revoke called, revoke_done not yet */
    long dropped;       /* messages of revoked partitions not delivered (debug) */
    enum phase phase;
    uint64_t close_deadline;
    int close_forced; /* the owner never answered: revocation completed by us */
    int close_failed; /* librdkafka refused to close (fatal error): tear down directly */
    jn_kafka_nudge nudge;
    long nudge_below; /* queue length under which the fetchers are nudged */
    uint64_t nudged_at;
    int nudge_from;         /* where in the assignment the next nudge starts looking */
    uint64_t assigned_at;   /* loop time of the last assignment (maybe_nudge) */
    uint64_t nudge_wait;    /* ms from nudged_at before the next nudge */
    int teardown_waiting;   /* teardown waits for the nudge under way */
    uint64_t subscribed_ns; /* uv_hrtime() of the subscribe (on_stats) */
    int ever_assigned;      /* a rebalance assigned something (or nothing) to us */
    int idle_stats;         /* statistics in a row that saw the group handler idle */
    int rejoined;           /* on_stats had us join again */
    void (*done)(void *);
    void *done_arg;
};

static void teardown(jn_kafka_consumer *c);

/* ---- small helpers ---------------------------------------------------------------------- */

static void wake(jn_kafka_consumer *c) {
    jn_kafka_wake_kick(&c->wake);
}

/* "t[0],t[1]" for log lines, shortened past a few hundred bytes. */
static char *parts_str(const rd_kafka_topic_partition_list_t *l) {
    jn_sb sb;
    jn_sb_init(&sb);
    for (int i = 0; l && i < l->cnt; i++) {
        if (sb.len > 300) {
            jn_sb_printf(&sb, ",... (%d in all)", l->cnt);
            break;
        }
        jn_sb_printf(&sb, "%s%s[%d]", i ? "," : "", l->elems[i].topic, (int)l->elems[i].partition);
    }
    if (sb.len == 0) jn_sb_puts(&sb, "none");
    return jn_sb_steal(&sb);
}

/* The owner logs what on_error tells it; only without one do we, so no line is doubled.
 * The reason comes from librdkafka: secrets blanked, and what to check added when the
 * cause is the configuration (a login refused, a certificate not trusted). */
static void report_error(jn_kafka_consumer *c, rd_kafka_resp_err_t err, const char *reason) {
    char hidden[1024], text[1536];
    const char *hint = jn_kafka_conf_hint(err);
    snprintf(text, sizeof text, "%s%s%s",
             jn_kafka_secrets_hide(&c->secrets, reason, hidden, sizeof hidden), *hint ? "; " : "",
             hint);
    if (c->cbs.on_error)
        c->cbs.on_error(c->ud, err, text);
    else
        jn_log_warn("kafka", "consumer: %s: %s", rd_kafka_err2name(err), text);
}

/* ---- rebalances --------------------------------------------------------------------------- */

/* Pauses the partitions of l and remembers them for the resume. Those librdkafka does not
 * know yet come back with UNKNOWN_PARTITION in their err. */
static void pause_list(jn_kafka_consumer *c, rd_kafka_topic_partition_list_t *l) {
    if (!l || l->cnt == 0) return;
    /* Asynchronous, but the partitions' op version is bumped right here: messages of them
     * already waiting in our queue are discarded by the next rd_kafka_queue_poll, and on
     * resume fetching restarts after the last message delivered to us. */
    rd_kafka_pause_partitions(c->rk, l);
    if (!c->app_paused) c->app_paused = rd_kafka_topic_partition_list_new(l->cnt);
    for (int i = 0; i < l->cnt; i++)
        if (!rd_kafka_topic_partition_list_find(c->app_paused, l->elems[i].topic,
                                                l->elems[i].partition))
            rd_kafka_topic_partition_list_add(c->app_paused, l->elems[i].topic,
                                              l->elems[i].partition);
}

/* Remembers the assignment being replaced as `before`: names only. A list librdkafka
 * gave us carries references to its partitions that would keep rd_kafka_destroy
 * waiting. */
static void keep_before(jn_kafka_consumer *c) {
    if (!c->assigned) return;
    if (c->before) rd_kafka_topic_partition_list_destroy(c->before);
    c->before = rd_kafka_topic_partition_list_new(c->assigned->cnt);
    for (int i = 0; i < c->assigned->cnt; i++)
        rd_kafka_topic_partition_list_add(c->before, c->assigned->elems[i].topic,
                                          c->assigned->elems[i].partition);
}

/* Replaces librdkafka's assignment with parts (never NULL) and our copy of it. On failure
 * librdkafka has already dropped the old assignment (it clears before it adds), so our
 * copy goes too. */
static rd_kafka_resp_err_t apply_assignment(jn_kafka_consumer *c,
                                            const rd_kafka_topic_partition_list_t *parts) {
    /* Forwarded before the assignment starts their fetchers: librdkafka leaves a fetch
     * queue the application forwarded alone, so no message takes the group queue. In
     * assign mode librdkafka does the forwarding (see jn_kafka_consumer_new). */
    for (int i = 0; !c->assign_only && i < parts->cnt; i++) {
        rd_kafka_queue_t *pq =
            rd_kafka_queue_get_partition(c->rk, parts->elems[i].topic, parts->elems[i].partition);
        if (!pq) continue; /* only for a producer handle */
        rd_kafka_queue_forward(pq, c->msgq);
        rd_kafka_queue_destroy(pq);
    }
    /* Paused before these arrived (e.g. Redis was already down): they start paused, and
     * are paused before the assignment rather than after it. librdkafka's broker thread
     * drops an op whose version is older than the last one it served, and its main thread
     * starts a fetcher (a newer version) as soon as the committed offsets are in, which
     * can come between our version and our op: a pause right after the assignment was
     * then lost and a partition read while paused (one CI run). Before it, nothing of the
     * assignment is under way yet. A partition librdkafka does not know yet is paused
     * after. */
    rd_kafka_topic_partition_list_t *early = NULL;
    if (c->paused && parts->cnt) {
        early = rd_kafka_topic_partition_list_copy(parts);
        pause_list(c, early);
    }
    /* The whole assignment at once. Partitions of the old one that are not in parts stop
     * here: librdkafka bumps their version barrier before rd_kafka_assign returns, and
     * rd_kafka_queue_poll discards whatever of theirs is still queued, so none of their
     * messages reaches the owner after this call. */
    rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, parts);
    if (early && !err) {
        rd_kafka_topic_partition_list_t *late = rd_kafka_topic_partition_list_new(0);
        for (int i = 0; i < early->cnt; i++)
            if (early->elems[i].err)
                rd_kafka_topic_partition_list_add(late, early->elems[i].topic,
                                                  early->elems[i].partition);
        if (late->cnt) rd_kafka_pause_partitions(c->rk, late);
        rd_kafka_topic_partition_list_destroy(late);
    }
    if (early) rd_kafka_topic_partition_list_destroy(early);
    keep_before(c);
    if (c->assigned) rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = err ? NULL : rd_kafka_topic_partition_list_copy(parts);
    free(c->eof_at), free(c->again);
    c->eof_at = NULL, c->again = NULL;
    if (err) return err;
    if (parts->cnt) {
        c->eof_at = malloc((size_t)parts->cnt * sizeof *c->eof_at);
        c->again = malloc((size_t)parts->cnt);
        if (!c->eof_at || !c->again) abort();
        for (int i = 0; i < parts->cnt; i++) {
            const rd_kafka_topic_partition_t *t = &parts->elems[i];
            c->eof_at[i] = -1;
            c->again[i] = c->before && rd_kafka_topic_partition_list_find(c->before, t->topic,
                                                                          t->partition) != NULL;
        }
    }
    c->assigned_at = uv_now(c->loop);
    char *s = parts_str(parts);
    jn_log_info("kafka", "consumer: assigned %s%s", s, c->paused ? " (paused)" : "");
    free(s);
    return 0;
}

static void on_assign(jn_kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts) {
    /* The list the group gave us, as is (even empty, which keeps librdkafka's join state
     * right): eager protocol. The offsets start from the committed ones, or
     * auto.offset.reset. */
    rd_kafka_topic_partition_list_t *placed = NULL;
    if (c->cbs.on_positions && parts->cnt) {
        placed = rd_kafka_topic_partition_list_copy(parts);
        c->cbs.on_positions(c->ud, placed);
        parts = placed;
    }
    rd_kafka_resp_err_t err = apply_assignment(c, parts);
    if (err) {
        report_error(c, err, "cannot apply the group's partition assignment");
    } else {
        /* During close a last assignment may still arrive (a rebalance under way); it is
         * applied for the group's sake but its messages are not wanted any more. */
        c->delivering = c->phase == P_RUNNING;
        if (c->cbs.on_assign) c->cbs.on_assign(c->ud, parts);
    }
    if (placed) rd_kafka_topic_partition_list_destroy(placed);
}

static void unassign(jn_kafka_consumer *c) {
    rd_kafka_resp_err_t err = rd_kafka_assign(c->rk, NULL);
    if (err) jn_log_warn("kafka", "consumer: unassign: %s", rd_kafka_err2str(err));
    keep_before(c);
    if (c->assigned) rd_kafka_topic_partition_list_destroy(c->assigned);
    c->assigned = NULL;
    free(c->eof_at), free(c->again);
    c->eof_at = NULL, c->again = NULL;
}

static void on_revoke(jn_kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts) {
    c->delivering = 0;
    if (!parts || parts->cnt == 0) {
        /* Nothing to settle: answer for the owner (the eager protocol still wants the
         * call, even for an empty assignment). */
        unassign(c);
        return;
    }
    if (rd_kafka_assignment_lost(c->rk))
        jn_log_warn("kafka", "consumer: assignment lost (session timed out?): other members may "
                             "already own these partitions and commits for them will fail");
    char *s = parts_str(parts);
    jn_log_info("kafka", "consumer: revoking %s", s);
    free(s);
    /* Set before the call: the owner may answer from inside it. */
    c->revoke_pending = 1;
    if (c->cbs.on_revoke)
        c->cbs.on_revoke(c->ud, parts);
    else
        jn_kafka_consumer_revoke_done(c);
}

static void on_rebalance(jn_kafka_consumer *c, rd_kafka_event_t *ev) {
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    const rd_kafka_topic_partition_list_t *parts = rd_kafka_event_topic_partition_list(ev);
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        c->ever_assigned = 1;
        on_assign(c, parts);
    } else if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        on_revoke(c, parts);
    } else {
        /* A failed rebalance: librdkafka wants the assignment cleared. What we hold is
         * gone, so the owner hears about it as a revocation. */
        report_error(c, err, "group rebalance failed");
        if (c->assigned && c->assigned->cnt > 0 && !c->revoke_pending) {
            rd_kafka_topic_partition_list_t *held = rd_kafka_topic_partition_list_copy(c->assigned);
            on_revoke(c, held);
            rd_kafka_topic_partition_list_destroy(held);
        } else if (!c->revoke_pending) {
            unassign(c);
        }
    }
}

/* ---- events from librdkafka ------------------------------------------------------------ */

/* Once per end reached: from the last message before a high watermark (on_fetch), or
 * librdkafka's own end-of-partition event, whichever comes first. */
static void report_eof(jn_kafka_consumer *c, const char *topic, int32_t partition, int64_t end) {
    if (!c->delivering || !c->cbs.on_eof) return;
    rd_kafka_topic_partition_t *t =
        c->assigned ? rd_kafka_topic_partition_list_find(c->assigned, topic, partition) : NULL;
    if (t && c->eof_at) {
        int64_t *at = &c->eof_at[t - c->assigned->elems];
        if (*at == end) return;
        *at = end;
    }
    c->cbs.on_eof(c->ud, topic, partition, end);
}

/* A message while paused: librdkafka lost our pause of its partition (see
 * apply_assignment), or did not know the partition when we paused. The owner must not
 * see it: the partition is paused now and sought back to it, so that it is the first
 * message after the resume. The pause's version barrier discards what was fetched after
 * it. */
static void repause(jn_kafka_consumer *c, const rd_kafka_message_t *m) {
    const char *topic = rd_kafka_topic_name(m->rkt);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, m->partition)->offset = m->offset;
    pause_list(c, l);
    /* Asynchronous: IN_PROGRESS is its success. */
    rd_kafka_error_t *e = rd_kafka_seek_partitions(c->rk, l, 0);
    rd_kafka_resp_err_t err = e ? rd_kafka_error_code(e) : l->elems[0].err;
    if (err && err != RD_KAFKA_RESP_ERR__IN_PROGRESS)
        jn_log_warn("kafka",
                    "consumer: %s [%" PRId32 "] fetched while paused and paused again, but "
                    "cannot go back to offset %" PRId64 " (%s): the resume reads on after it",
                    topic, m->partition, m->offset, rd_kafka_err2str(err));
    else
        jn_log_info("kafka",
                    "consumer: %s [%" PRId32 "] fetched while paused: paused again, to be "
                    "read from offset %" PRId64 " after the resume",
                    topic, m->partition, m->offset);
    if (e) rd_kafka_error_destroy(e);
    rd_kafka_topic_partition_list_destroy(l);
}

static void on_fetch(jn_kafka_consumer *c, rd_kafka_event_t *ev) {
    const rd_kafka_message_t *m;
    /* One message per FETCH event; reading it also moves librdkafka's position for the
     * partition past it (what rd_kafka_position and pause/resume go by). */
    while ((m = rd_kafka_event_message_next(ev)) != NULL) {
        if (m->err) {
            if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
                report_eof(c, rd_kafka_topic_name(m->rkt), m->partition, m->offset);
                continue;
            }
            report_error(c, m->err, rd_kafka_message_errstr(m));
            continue;
        }
        if (!c->delivering) {
            c->dropped++;
            jn_log_debug("kafka", "consumer: dropped a message of a revoked partition (%ld)",
                         c->dropped);
            continue;
        }
        if (c->paused) {
            repause(c, m);
            continue;
        }
        jn_kafka_msg msg = {
            .topic = rd_kafka_topic_name(m->rkt),
            .partition = m->partition,
            .offset = m->offset,
            .key = m->key,
            .key_len = m->key_len,
            .value = m->payload,
            .value_len = m->len,
            .timestamp_ms = rd_kafka_message_timestamp(m, NULL),
            .raw = m,
        };
        if (c->cbs.on_message) c->cbs.on_message(c->ud, &msg);
        if (c->report_eof && c->cbs.on_eof) {
            /* The last message before the high watermark of the fetch that brought it is
             * the end: librdkafka would only say so after its next fetch, which the broker
             * holds for fetch.wait.max.ms (500 ms) when nothing new comes. Read from its
             * local state, no request. A partition ending in a transaction marker still
             * waits for librdkafka's own end-of-partition event. */
            int64_t lo, hi;
            if (rd_kafka_get_watermark_offsets(c->rk, msg.topic, msg.partition, &lo, &hi) == 0 &&
                hi == msg.offset + 1)
                report_eof(c, msg.topic, msg.partition, hi);
        }
    }
}

static void on_commit(jn_kafka_consumer *c, rd_kafka_event_t *ev) {
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    const rd_kafka_topic_partition_list_t *offsets = rd_kafka_event_topic_partition_list(ev);
    /* The request can succeed while single partitions fail (e.g. not the owner any more):
     * report the first such error so "err == 0" really means every offset was stored. */
    for (int i = 0; !err && offsets && i < offsets->cnt; i++)
        err = offsets->elems[i].err;
    if (c->cbs.on_commit)
        c->cbs.on_commit(c->ud, err, offsets);
    else if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        jn_log_warn("kafka", "consumer: commit failed: %s", rd_kafka_err2str(err));
}

static void on_error(jn_kafka_consumer *c, rd_kafka_event_t *ev) {
    rd_kafka_resp_err_t err = rd_kafka_event_error(ev);
    if (err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
        /* librdkafka 2.0 reports the end of a partition as a partition-level error event
         * on the queue the partition is forwarded to, not as a message of a FETCH. */
        rd_kafka_topic_partition_t *tp = rd_kafka_event_topic_partition(ev);
        if (tp) report_eof(c, tp->topic, tp->partition, tp->offset);
        if (tp) rd_kafka_topic_partition_destroy(tp);
        return;
    }
    const char *reason = rd_kafka_event_error_string(ev);
    /* Nothing more will be consumed after a fatal error (e.g. fenced by a static member
     * with the same id): worth a line of its own whatever the owner does with it. Other
     * errors are informational, librdkafka reconnects and retries on its own. */
    if (rd_kafka_event_error_is_fatal(ev))
        jn_log_error("kafka", "consumer: fatal: %s: %s", rd_kafka_err2name(err), reason);
    report_error(c, err, reason);
}

/* Whether service() leaves the messages where they are now. Events are served anyway. */
static int holding(const jn_kafka_consumer *c) {
    return c->held && c->phase == P_RUNNING;
}

static void on_nudged(void *arg);

/* Members started together: when the second one's JoinGroup reaches the coordinator just
 * after the first was made the group's only member, the first member's SyncGroup fails
 * ("rebalance in progress"), and librdkafka 2.0 joins again only a second after its last
 * JoinGroup, once its main thread wakes after that: up to 2 s in which the whole group
 * waits for it (bench/consumer.py --processes 2: one run in five had its first record
 * after 2.1 s). A first JoinGroup that fails waits 2 s the same way. The statistics say
 * what the group handler is doing: "up" (coordinator known) with join state "init",
 * before any assignment, is a member sitting out that wait, or one about to make its
 * first JoinGroup: the member id tells them apart (the first JoinGroup's answer gives
 * it), or, without one, the same state in the next statistics too. Subscribing again
 * then joins at once (jn_kafka_nudge_rejoin). Only within REJOIN_WINDOW_MS of the
 * subscribe: librdkafka's own join is due no earlier than a second after it, so ours is
 * sure to come first; a subscribe that came after it would be postponed and cost a
 * second rebalance. A deployment that sets statistics.interval.ms=0 in extra leaves
 * librdkafka to it. */
static void on_stats(jn_kafka_consumer *c, rd_kafka_event_t *ev) {
    if (c->assign_only || c->phase != P_RUNNING || c->ever_assigned || c->rejoined) return;
    const char *json = rd_kafka_event_stats(ev);
    const char *g = json ? strstr(json, "\"cgrp\": {") : NULL;
    int idle = g && strstr(g, "\"state\": \"up\"") && strstr(g, "\"join_state\": \"init\"");
    c->idle_stats = idle ? c->idle_stats + 1 : 0;
    if (!c->idle_stats || (uv_hrtime() - c->subscribed_ns) / 1000000 >= REJOIN_WINDOW_MS) return;
    jn_kafka_nudge_rejoin(&c->nudge, c->loop, c->rk,
                          c->idle_stats >= 2 ? JN_KAFKA_REJOIN_ALWAYS : JN_KAFKA_REJOIN_IF_MEMBER,
                          on_nudged, c);
}

/* Serves up to DRAIN_BATCH events of q. rd_kafka_queue_poll also returns NULL, with
 * events left, when it meets the close's TERMINATE op; service() checks the lengths
 * afterwards. Returns how many it served. */
static int drain_queue(jn_kafka_consumer *c, rd_kafka_queue_t *q) {
    rd_kafka_event_t *ev;
    int n = 0;
    /* A hold the owner sets while messages are served takes effect at the next one, not
     * after the batch: the owner counts on it to bound what it has in hand. */
    for (; n < DRAIN_BATCH && !(q == c->msgq && holding(c)) &&
           (ev = rd_kafka_queue_poll(q, 0)) != NULL;
         n++) {
        switch (rd_kafka_event_type(ev)) {
        case RD_KAFKA_EVENT_FETCH:
            on_fetch(c, ev);
            break;
        case RD_KAFKA_EVENT_REBALANCE:
            on_rebalance(c, ev);
            break;
        case RD_KAFKA_EVENT_OFFSET_COMMIT:
            on_commit(c, ev);
            break;
        case RD_KAFKA_EVENT_ERROR:
            on_error(c, ev);
            break;
        case RD_KAFKA_EVENT_LOG:
            jn_kafka_conf_log_event(&c->secrets, ev);
            break;
        case RD_KAFKA_EVENT_STATS:
            on_stats(c, ev);
            break;
        default:
            break;
        }
        rd_kafka_event_destroy(ev);
    }
    return n;
}

static void on_tick(uv_timer_t *t);

static void on_nudged(void *arg) {
    jn_kafka_consumer *c = arg;
    if (c->nudge.rejoin && c->nudge.rejoined && !c->rejoined) {
        c->rejoined = 1;
        jn_log_info("kafka", "consumer: the group handler was waiting out librdkafka's pause "
                             "between joins at start-up; joined again at once instead");
    }
    if (c->teardown_waiting) teardown(c);
}

/* While messages flow, the prefetch running low means the fetchers may have stopped
 * for a full queue: nudge the leaders of a few partitions that still have messages to
 * read (none when every partition is read to its end, so an idle consumer sends
 * nothing).
 *
 * Just after an assignment, a partition given back (revoked and assigned again in one
 * rebalance, as at a group's start when the first member had them all) may be stuck as
 * well: librdkafka 2.0 marks it fetchable again without waking its broker thread, which
 * then sleeps up to 1 s before the first fetch. For NUDGE_FRESH_MS after each assignment
 * those with nothing delivered yet (their lag unknown) are nudged too, every
 * NUDGE_FRESH_INTERVAL_MS. A partition new to this member is fetched at once. */
static void maybe_nudge(jn_kafka_consumer *c) {
    if (c->phase != P_RUNNING || !c->delivering || holding(c) || c->nudge.busy || !c->assigned ||
        c->assigned->cnt == 0)
        return;
    if ((long)rd_kafka_queue_length(c->msgq) >= c->nudge_below) return;
    uint64_t now = uv_now(c->loop);
    uint64_t wait = c->nudge_wait ? c->nudge_wait : NUDGE_INTERVAL_MS;
    if (now - c->nudged_at < wait) {
        /* Look again when the interval is over: the queue may be empty by then, and
         * nothing else would call us before the next tick. */
        uv_timer_start(&c->wake.timer, on_tick, wait - (now - c->nudged_at), TICK_MS);
        return;
    }
    c->nudged_at = now;
    int fresh = now - c->assigned_at < NUDGE_FRESH_MS;
    const char *topics[JN_KAFKA_NUDGE_MAX];
    int32_t parts[JN_KAFKA_NUDGE_MAX];
    int n = 0, known = 0, cnt = c->assigned->cnt, k = 0;
    for (; k < cnt && n < JN_KAFKA_NUDGE_MAX; k++) {
        int at = (c->nudge_from + k) % cnt;
        const rd_kafka_topic_partition_t *p = &c->assigned->elems[at];
        int64_t lag = jn_kafka_consumer_lag(c, p->topic, p->partition);
        if (lag == 0 || (lag < 0 && !(fresh && c->again && c->again[at]))) continue;
        known += lag > 0;
        topics[n] = p->topic;
        parts[n++] = p->partition;
    }
    c->nudge_from = (c->nudge_from + k) % cnt;
    c->nudge_wait = n && !known ? NUDGE_FRESH_INTERVAL_MS : NUDGE_INTERVAL_MS;
    if (n && jn_kafka_nudge_start(&c->nudge, c->loop, c->rk, topics, parts, n, on_nudged, c) &&
        !known)
        /* Nothing may arrive to call us again: look once more after the interval. */
        uv_timer_start(&c->wake.timer, on_tick, NUDGE_FRESH_INTERVAL_MS, TICK_MS);
}

static int events_waiting(const jn_kafka_consumer *c) {
    return rd_kafka_queue_length(c->queue) > 0 ||
           (!holding(c) && rd_kafka_queue_length(c->msgq) > 0);
}

static void service(jn_kafka_consumer *c) {
    /* Events first: a revocation stops delivery of what the messages queue still holds
     * of those partitions (see `delivering`). */
    drain_queue(c, c->queue);
    if (!holding(c)) drain_queue(c, c->msgq);
    if (c->phase == P_CLOSING) {
        /* Torn down here, after the drain, never from inside an event being served. */
        if (c->close_failed || rd_kafka_consumer_closed(c->rk)) {
            teardown(c);
            return;
        }
        if (uv_now(c->loop) >= c->close_deadline) {
            if (c->revoke_pending && !c->close_forced) {
                jn_log_error("kafka", "close: no revoke_done after %d ms, revoking anyway",
                             CLOSE_REVOKE_TIMEOUT_MS);
                c->close_forced = 1;
                c->close_deadline = uv_now(c->loop) + CLOSE_LEAVE_TIMEOUT_MS;
                jn_kafka_consumer_revoke_done(c);
            } else {
                jn_log_error("kafka", "close: the consumer did not leave its group in time; "
                                      "destroying it without leaving");
                c->close_failed = 1;
                teardown(c);
                return;
            }
        }
    }
    maybe_nudge(c);
    /* The wake-up byte is only written when a queue goes from empty to non-empty, so
     * whatever the batch limit (or a TERMINATE op) left behind needs our own. */
    if (events_waiting(c)) wake(c);
}

static void on_wake(jn_kafka_wake *w) {
    service(w->data);
}

static void on_tick(uv_timer_t *t) {
    service(t->data);
}

/* ---- setup ------------------------------------------------------------------------------ */

static rd_kafka_conf_t *build_conf(const jn_kafka_consumer_opts *o, jn_kafka_secrets *secrets,
                                   char **err) {
    /* clang-format off */
    const char *const own[] = {
        "group.id", o->group_id,
        /* A new group starts from the beginning unless told otherwise: losing what was
         * produced before the first start is worse than reading it. */
        "auto.offset.reset", o->auto_offset_reset ? o->auto_offset_reset : "earliest",
        /* The owner commits what it has settled; librdkafka must neither commit nor store
         * offsets by itself, or a crash would skip unsettled messages. */
        "enable.auto.commit", "false",
        "enable.auto.offset.store", "false",
        /* A reader of tables learns from it that it holds everything written so far. */
        "enable.partition.eof", o->report_eof ? "true" : "false",
        /* Eager protocol: a revocation takes the whole assignment and the next assignment
         * replaces it, which is what on_assign / on_revoke / revoke_done model. */
        "partition.assignment.strategy", "range",
        "session.timeout.ms", "10000",
        /* A member learns that the group is rebalancing from its next heartbeat: with the
         * default 3 s, a member that joins waits up to that long for the others to give
         * up their partitions, idle meanwhile, and a member that took every partition at
         * start keeps reading them all, work the group then replays (librdkafka 2.0
         * sends one only when its main thread wakes, at least every STATS_INTERVAL_MS
         * here). Ten a second: two processes started together delivered 202,000-243,000
         * records/s end to end (bench/consumer.py --processes 2, five runs) against
         * 192,000-210,000 with four (four runs), the first member giving up its
         * partitions about 0.12 s after the start instead of 0.4 s; with one a second,
         * 85,000-99,000 (an earlier session). */
        "heartbeat.interval.ms", "100",
        /* Also the rebalance timeout: how long the group waits for revoke_done. */
        "max.poll.interval.ms", "300000",
        /* The prefetch. librdkafka measures it on the queue the partitions' fetch queues
         * forward to, so it bounds all of them together. Its fetcher stops at this many
         * messages and, in librdkafka 2.0, looks again only when woken: the consumer
         * nudges it when the queue runs low (kafka_nudge.h), so a small prefetch keeps
         * up. On the consumer benchmark (single runs, noisy), 6,000 messages and
         * fetches of 256 KiB a partition delivered 192,000-214,000 records/s at a peak
         * RSS of 78-79 MiB, 10,000 about as many at 80-82 MiB; 50,000 and the default
         * 1 MiB, 166,000 at 98 MiB (an earlier session); 5,000 and 128 KiB stalled. */
        "queued.min.messages", "6000",
        /* How long the broker holds a fetch that finds nothing new. A nudge's watermark
         * request waits behind such a fetch on the same connection, so with the default
         * 500 ms a nudge took up to 980 ms while the member read nothing (one of two
         * processes stood still for 0.7 s mid-run); at 100 ms, 80 ms at most. */
        "fetch.wait.max.ms", "100",
        "queued.max.messages.kbytes", "16384",
        "max.partition.fetch.bytes", "262144",
        /* The group handler's state (on_stats); nothing to read without a group. */
        "statistics.interval.ms", o->assign_only ? "0" : STATS_INTERVAL_MS,
        NULL,
    };
    /* clang-format on */
    /* Rebalances and commit results come to us as events: without REBALANCE librdkafka
     * would assign and revoke by itself, without telling the owner in time to commit. */
    return jn_kafka_conf_build(&o->client, "consumer", own,
                               RD_KAFKA_EVENT_REBALANCE | RD_KAFKA_EVENT_OFFSET_COMMIT |
                                   RD_KAFKA_EVENT_ERROR | RD_KAFKA_EVENT_LOG | RD_KAFKA_EVENT_STATS,
                               secrets, err);
}

static rd_kafka_topic_partition_list_t *subscription(const char *const *topics) {
    int n = 0;
    while (topics && topics[n])
        n++;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(n);
    for (int i = 0; i < n; i++)
        rd_kafka_topic_partition_list_add(l, topics[i], RD_KAFKA_PARTITION_UA);
    return l;
}

jn_kafka_consumer *jn_kafka_consumer_new(uv_loop_t *loop, const jn_kafka_consumer_opts *o,
                                         const jn_kafka_consumer_cbs *cbs, void *ud, char **err) {
    if (!o->group_id || !*o->group_id) {
        *err = jn_errorf("kafka: consumer needs a group.id");
        return NULL;
    }
    if (!o->assign_only && (!o->topics || !o->topics[0])) {
        *err = jn_errorf("kafka: consumer needs at least one topic");
        return NULL;
    }
    for (const char *const *t = o->topics; !o->assign_only && *t; t++) {
        if (!**t) {
            *err = jn_errorf("kafka: consumer topic name is empty");
            return NULL;
        }
    }
    jn_kafka_consumer *c = calloc(1, sizeof *c);
    if (!c) abort();
    rd_kafka_conf_t *conf = build_conf(o, &c->secrets, err);
    char qmin[32];
    size_t qlen = sizeof qmin;
    c->nudge_below = 5001;
    if (conf && rd_kafka_conf_get(conf, "queued.min.messages", qmin, &qlen) == RD_KAFKA_CONF_OK)
        c->nudge_below = strtol(qmin, NULL, 10) / 2 + 1;
    rd_kafka_t *rk =
        conf ? jn_kafka_conf_client(RD_KAFKA_CONSUMER, conf, "consumer", &c->secrets, err) : NULL;
    if (!rk) goto fail;
    /* Errors (main queue) join the consumer queue: one queue, one pipe. Not in assign
     * mode, where the consumer queue is the messages queue (see below). */
    if (!o->assign_only) rd_kafka_poll_set_consumer(rk);
    /* In assign mode nothing is subscribed, so the group is never joined: no rebalance
     * ever comes, and close has no group to leave. */
    rd_kafka_resp_err_t serr = 0;
    c->subscribed_ns = uv_hrtime();
    if (!o->assign_only) {
        rd_kafka_topic_partition_list_t *topics = subscription(o->topics);
        serr = rd_kafka_subscribe(rk, topics);
        rd_kafka_topic_partition_list_destroy(topics);
    }
    /* Invalid or duplicate topic names: a setting error like the others. */
    if (serr)
        *err =
            jn_errorf("kafka: consumer cannot subscribe to its topics: %s", rd_kafka_err2str(serr));
    int rc = serr ? 0 : jn_kafka_wake_start(&c->wake, loop, on_wake, c);
    if (rc != 0)
        *err = jn_errorf("kafka: cannot set up the consumer's wake-up pipe: %s", uv_strerror(rc));
    if (serr || rc != 0) {
        /* Not subscribed, or subscribed a moment ago: nothing was assigned yet, so there
         * is nothing to leave. */
        rd_kafka_destroy_flags(rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
        goto fail;
    }
    c->loop = loop;
    c->rk = rk;
    if (cbs) c->cbs = *cbs;
    c->ud = ud;
    c->assign_only = o->assign_only;
    c->report_eof = o->report_eof;
    c->phase = P_RUNNING;

    if (o->assign_only) {
        /* A partition assigned again while its fetcher still stops (the same partition
         * in two successive assignments, common when replaying) would lose a forwarding
         * made by us: librdkafka clears it when the fetcher stops, after
         * rd_kafka_assign returned, and never restores one the application made. Left
         * alone, librdkafka forwards every started fetch queue to the consumer queue
         * itself, so that queue carries the messages here, and errors and log lines stay
         * on the main queue. Nothing else needs the consumer queue: no group, no
         * rebalance, no commits. */
        c->queue = rd_kafka_queue_get_main(rk);
        c->msgq = rd_kafka_queue_get_consumer(rk);
    } else {
        c->queue = rd_kafka_queue_get_consumer(rk);
        c->msgq = rd_kafka_queue_new(rk);
    }
    rd_kafka_set_log_queue(rk, c->queue);
    jn_kafka_wake_watch(&c->wake, c->queue);
    jn_kafka_wake_watch(&c->wake, c->msgq);
    uv_timer_start(&c->wake.timer, on_tick, TICK_MS, TICK_MS);
    return c;

fail:
    jn_kafka_secrets_free(&c->secrets);
    free(c);
    return NULL;
}

/* ---- owner's calls ---------------------------------------------------------------------- */

int jn_kafka_consumer_commit(jn_kafka_consumer *c, const rd_kafka_topic_partition_list_t *offsets) {
    if (c->phase == P_CLOSED) return JN_EKAFKA(RD_KAFKA_RESP_ERR__DESTROY);
    if (!offsets || offsets->cnt == 0) return JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG);
    /* A replaying reader shares its group.id with nobody and restarts from the offsets
     * its owner gives: a commit could only leave stale offsets behind under that id. */
    if (c->assign_only) return JN_EKAFKA(RD_KAFKA_RESP_ERR__STATE);
    /* Not rd_kafka_commit(async): its result only reaches an offset_commit_cb. With our
     * queue as the reply queue the result is an OFFSET_COMMIT event served by service(). */
    return jn_kafka_code(rd_kafka_commit_queue(c->rk, offsets, c->queue, NULL, NULL));
}

int jn_kafka_consumer_assign(jn_kafka_consumer *c, const rd_kafka_topic_partition_list_t *parts) {
    /* In a group the group decides; the owner only answers its rebalances. */
    if (!c->assign_only) return JN_EKAFKA(RD_KAFKA_RESP_ERR__STATE);
    if (c->phase != P_RUNNING) return JN_EKAFKA(RD_KAFKA_RESP_ERR__DESTROY);
    /* An empty list clears the assignment like NULL does, and on_assign gets a list
     * either way. */
    rd_kafka_topic_partition_list_t *none = parts ? NULL : rd_kafka_topic_partition_list_new(0);
    const rd_kafka_topic_partition_list_t *l = parts ? parts : none;
    c->delivering = 0;
    rd_kafka_resp_err_t err = apply_assignment(c, l);
    if (err) {
        jn_log_warn("kafka", "consumer: assignment refused (%s): nothing is assigned now",
                    rd_kafka_err2str(err));
    } else {
        c->delivering = l->cnt > 0;
        if (c->cbs.on_assign) c->cbs.on_assign(c->ud, l);
    }
    if (none) rd_kafka_topic_partition_list_destroy(none);
    return jn_kafka_code(err);
}

void jn_kafka_consumer_pause(jn_kafka_consumer *c) {
    if (c->paused || c->phase == P_CLOSED) return;
    c->paused = 1;
    pause_list(c, c->assigned);
    jn_log_info("kafka", "consumer: paused");
}

void jn_kafka_consumer_hold(jn_kafka_consumer *c, int hold) {
    if (c->phase == P_CLOSED || c->held == !!hold) return;
    c->held = !!hold;
    /* Serve what waited from the loop, not from inside the caller's callback. */
    if (!hold) wake(c);
}

void jn_kafka_consumer_resume(jn_kafka_consumer *c) {
    if (!c->paused || c->phase == P_CLOSED) return;
    c->paused = 0;
    if (c->app_paused) {
        /* Fetching restarts after the last message delivered; what was fetched and not
         * delivered when we paused was discarded and is fetched again. */
        rd_kafka_resume_partitions(c->rk, c->app_paused);
        rd_kafka_topic_partition_list_destroy(c->app_paused);
        c->app_paused = NULL;
    }
    jn_log_info("kafka", "consumer: resumed");
}

int jn_kafka_consumer_paused(const jn_kafka_consumer *c) {
    return c->paused;
}

rd_kafka_t *jn_kafka_consumer_handle(jn_kafka_consumer *c) {
    return c->rk;
}

void jn_kafka_consumer_revoke_done(jn_kafka_consumer *c) {
    if (!c->revoke_pending || c->phase == P_CLOSED) return;
    c->revoke_pending = 0;
    /* Now librdkafka may hand the partitions over: it stops their fetchers and rejoins. */
    unassign(c);
}

uint64_t jn_kafka_consumer_nudges(const jn_kafka_consumer *c) {
    return c->nudge.sent;
}

int64_t jn_kafka_consumer_lag(jn_kafka_consumer *c, const char *topic, int32_t partition) {
    if (c->phase == P_CLOSED || !c->delivering || !c->assigned ||
        !rd_kafka_topic_partition_list_find(c->assigned, topic, partition))
        return -1;
    /* Both are read from librdkafka's local state under its partition lock, no request:
     * the high watermark comes with every fetch response, even an empty one, and the
     * position is the offset after the last message handed to us. */
    int64_t lo, hi;
    if (rd_kafka_get_watermark_offsets(c->rk, topic, partition, &lo, &hi) != 0 || hi < 0) return -1;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, topic, partition);
    int64_t pos = -1;
    if (rd_kafka_position(c->rk, l) == 0 && l->elems[0].err == 0) pos = l->elems[0].offset;
    rd_kafka_topic_partition_list_destroy(l);
    /* No message delivered yet in this assignment: where it starts is not known here. */
    if (pos < 0) return -1;
    return hi > pos ? hi - pos : 0;
}

/* ---- closing ---------------------------------------------------------------------------- */

static void on_wake_closed(jn_kafka_wake *w) {
    jn_kafka_consumer *c = w->data;
    jn_kafka_secrets_free(&c->secrets);
    void (*done)(void *) = c->done;
    void *arg = c->done_arg;
    free(c);
    if (done) done(arg);
}

static void teardown(jn_kafka_consumer *c) {
    /* A nudge on the thread pool still uses the handle: on_nudged comes back here. */
    if (c->nudge.busy) {
        c->teardown_waiting = 1;
        return;
    }
    c->teardown_waiting = 0;
    c->phase = P_CLOSED;
    c->delivering = 0;
    if (c->dropped)
        jn_log_debug("kafka", "consumer: %ld message(s) of revoked partitions dropped", c->dropped);
    jn_kafka_wake_unwatch(c->queue);
    jn_kafka_wake_unwatch(c->msgq);
    rd_kafka_queue_destroy(c->queue);
    rd_kafka_queue_destroy(c->msgq);
    /* Blocks while librdkafka joins its threads: brief, and only at shutdown. Once the
     * group is left, rd_kafka_destroy's own consumer close returns at once; otherwise it
     * would wait for a revocation nobody serves any more, hence the flag. */
    if (c->close_failed)
        rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    else
        rd_kafka_destroy(c->rk);
    c->rk = NULL;
    if (c->assigned) rd_kafka_topic_partition_list_destroy(c->assigned);
    if (c->app_paused) rd_kafka_topic_partition_list_destroy(c->app_paused);
    if (c->before) rd_kafka_topic_partition_list_destroy(c->before);
    c->assigned = c->app_paused = c->before = NULL;
    free(c->eof_at), free(c->again);
    c->eof_at = NULL, c->again = NULL;
    jn_kafka_wake_close(&c->wake, on_wake_closed);
}

void jn_kafka_consumer_close(jn_kafka_consumer *c, void (*done)(void *), void *arg) {
    if (c->phase != P_RUNNING) return; /* already closing; the first caller's done runs */
    c->phase = P_CLOSING;
    c->done = done;
    c->done_arg = arg;
    /* The owner is shutting down: what is still queued stays uncommitted and goes to the
     * partitions' next owner. */
    c->delivering = 0;
    c->close_deadline = uv_now(c->loop) + CLOSE_REVOKE_TIMEOUT_MS;
    /* Non-blocking: librdkafka revokes (an event we serve like any other), commits
     * nothing (auto commit is off), leaves the group and then posts a TERMINATE op on our
     * queue; rd_kafka_consumer_closed turns true just before. */
    rd_kafka_error_t *e = rd_kafka_consumer_close_queue(c->rk, c->queue);
    if (e) {
        /* A fatal error was raised before: there is no group to leave properly. */
        jn_log_warn("kafka", "consumer close: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
        c->close_failed = 1;
    }
    /* The rest happens in service(), on a later loop turn: close may be called from one of
     * our callbacks, while the queue is being read. */
    wake(c);
}
