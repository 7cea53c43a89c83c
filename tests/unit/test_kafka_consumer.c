/* The consumer half of the librdkafka glue (kafka_consumer.c), against librdkafka's
 * built-in mock cluster: a few hundred messages and fault injection only; volume and
 * real-broker behaviour are the end-to-end tests' job.
 *
 * The mock's group coordinator waits 3 s before it forms a new group (like
 * group.initial.rebalance.delay.ms) and session.timeout.ms - 1 s for members to rejoin
 * a rebalance, hence the short session timeout in every test's properties. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kafka.h"
#include "kafka_mock.h"
#include "log.h"

#define TOPIC            "orders"
#define EMPTY_TOPIC      "orders-changelog" /* assign-mode tests: a topic never written */
#define NPART            4
#define MAXMSG           1000
#define API_OFFSETCOMMIT 8  /* Kafka protocol ApiKeys: OffsetCommitRequest */
#define API_JOINGROUP    11 /* JoinGroupRequest */

static rd_kafka_t *producer;
static int produced; /* messages produced so far; message i is "k<i>"/"value <i>" */

/* ---- a consumer's owner, as the tests play it ---------------------------------------- */

enum answer {
    ANSWER_NOW,          /* revoke_done from inside on_revoke */
    ANSWER_AFTER_COMMIT, /* commit what was seen, revoke_done from on_commit */
    ANSWER_LATER,        /* the test calls revoke_done itself */
};

typedef struct {
    jn_kafka_consumer *c;
    enum answer answer;
    int msgs;
    int seen[MAXMSG];     /* deliveries per message index */
    int64_t first[NPART]; /* first offset delivered per partition, -1 before */
    int64_t next[NPART];  /* offset after the last delivered per partition */
    int assigned[NPART];  /* what on_assign / on_revoke said */
    int bad_order, bad_content, off_thread, unassigned_msgs;
    int assigns, revokes, errors, done;
    int revoke_pending;
    int commits, commit_errors;
    rd_kafka_resp_err_t last_commit_err, last_error;
    int64_t last_commit_offset[NPART];
    int64_t committed[NPART]; /* what the broker accepted, -1 before */
    int pause_at;             /* pause from inside on_message once this many arrived (0: never) */
    int hold_at;              /* hold from inside on_message once this many arrived (0: never) */
    int msgs_at_revoke;
    int eofs;
    int64_t eof[NPART]; /* end offset on_eof last said per partition of TOPIC, -1 before */
    int64_t eof_empty;  /* the same for EMPTY_TOPIC's partition 0 */
    int reassign_at;    /* assign mode: assign `reassign` from inside on_message then */
    rd_kafka_topic_partition_list_t *reassign;
    int reassign_err;
    char trace[64]; /* A assign, R revoke, D done, in order */
} member;

/* Static rather than on a test's stack: after a failed assertion a consumer lives on,
 * and an event served later must not write into a dead frame. */
static member ma, mb;
static member mw; /* the witness of run_until_witness_read_all */
static void run_until_witness_read_all(void);

static void trace(member *m, char ev) {
    size_t n = strlen(m->trace);
    if (n + 1 < sizeof m->trace) m->trace[n] = ev;
}

static void check_thread(member *m) {
    if (!pthread_equal(pthread_self(), loop_thread)) m->off_thread++;
}

static void on_message(void *ud, const jn_kafka_msg *msg) {
    member *m = ud;
    check_thread(m);
    int i = -1;
    if (msg->key_len > 1 && msg->key_len < 8 && ((const char *)msg->key)[0] == 'k') {
        char k[8];
        memcpy(k, (const char *)msg->key + 1, msg->key_len - 1);
        k[msg->key_len - 1] = 0;
        i = atoi(k);
    }
    char value[32];
    int vlen = snprintf(value, sizeof value, "value %d", i);
    int32_t p = msg->partition;
    if (i < 0 || i >= MAXMSG || p < 0 || p >= NPART || strcmp(msg->topic, TOPIC) != 0 ||
        p != i % NPART || msg->value_len != (size_t)vlen ||
        memcmp(msg->value, value, (size_t)vlen) != 0 || msg->timestamp_ms <= 0 || !msg->raw) {
        m->bad_content++;
        return;
    }
    /* Each partition got messages i, i + NPART, ... in that order: offset = i / NPART. */
    if (msg->offset != i / NPART) m->bad_content++;
    if (m->first[p] < 0)
        m->first[p] = msg->offset;
    else if (msg->offset != m->next[p])
        m->bad_order++;
    if (!m->assigned[p]) m->unassigned_msgs++;
    m->next[p] = msg->offset + 1;
    m->seen[i]++;
    m->msgs++;
    if (m->pause_at && m->msgs == m->pause_at) jn_kafka_consumer_pause(m->c);
    if (m->hold_at && m->msgs == m->hold_at) jn_kafka_consumer_hold(m->c, 1);
    if (m->reassign_at && m->msgs == m->reassign_at)
        m->reassign_err = jn_kafka_consumer_assign(m->c, m->reassign);
}

static void on_assign(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    member *m = ud;
    check_thread(m);
    m->assigns++;
    trace(m, 'A');
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition < NPART) m->assigned[parts->elems[i].partition] = 1;
}

/* Commits next[p] for those of the given partitions (all when NULL) where that is more
 * than was committed already. Returns whether a commit was sent. */
static int commit_seen(member *m, const rd_kafka_topic_partition_list_t *parts) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPART);
    for (int i = 0; i < (parts ? parts->cnt : NPART); i++) {
        int32_t p = parts ? parts->elems[i].partition : i;
        if (p < NPART && m->next[p] > m->committed[p])
            rd_kafka_topic_partition_list_add(l, TOPIC, p)->offset = m->next[p];
    }
    int sent = l->cnt > 0 && jn_kafka_consumer_commit(m->c, l) == 0;
    rd_kafka_topic_partition_list_destroy(l);
    return sent;
}

static void on_revoke(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    member *m = ud;
    check_thread(m);
    m->revokes++;
    m->msgs_at_revoke = m->msgs;
    trace(m, 'R');
    for (int i = 0; i < parts->cnt; i++)
        if (parts->elems[i].partition < NPART) m->assigned[parts->elems[i].partition] = 0;
    m->revoke_pending = 1;
    if (m->answer == ANSWER_NOW || (m->answer == ANSWER_AFTER_COMMIT && !commit_seen(m, parts))) {
        m->revoke_pending = 0;
        jn_kafka_consumer_revoke_done(m->c);
    }
}

static void on_commit(void *ud, rd_kafka_resp_err_t err,
                      const rd_kafka_topic_partition_list_t *offsets) {
    member *m = ud;
    check_thread(m);
    m->commits++;
    m->last_commit_err = err;
    if (err) m->commit_errors++;
    for (int i = 0; offsets && i < offsets->cnt; i++) {
        int32_t p = offsets->elems[i].partition;
        if (p >= NPART) continue;
        m->last_commit_offset[p] = offsets->elems[i].offset;
        if (!err) m->committed[p] = offsets->elems[i].offset;
    }
    if (m->answer == ANSWER_AFTER_COMMIT && m->revoke_pending) {
        m->revoke_pending = 0;
        jn_kafka_consumer_revoke_done(m->c);
    }
}

static void on_error(void *ud, rd_kafka_resp_err_t err, const char *reason) {
    member *m = ud;
    check_thread(m);
    (void)reason;
    m->errors++;
    m->last_error = err;
}

/* Assign mode: each assignment replaces the previous one, and a partition assigned again
 * starts over wherever the owner said. */
static void on_assign_replace(void *ud, const rd_kafka_topic_partition_list_t *parts) {
    member *m = ud;
    check_thread(m);
    m->assigns++;
    trace(m, 'A');
    for (int p = 0; p < NPART; p++) {
        m->assigned[p] = 0;
        m->first[p] = m->next[p] = -1;
    }
    for (int i = 0; i < parts->cnt; i++)
        if (strcmp(parts->elems[i].topic, TOPIC) == 0 && parts->elems[i].partition < NPART)
            m->assigned[parts->elems[i].partition] = 1;
}

static void on_eof(void *ud, const char *topic, int32_t partition, int64_t offset) {
    member *m = ud;
    check_thread(m);
    m->eofs++;
    if (strcmp(topic, TOPIC) == 0 && partition >= 0 && partition < NPART)
        m->eof[partition] = offset;
    else if (strcmp(topic, EMPTY_TOPIC) == 0 && partition == 0)
        m->eof_empty = offset;
    else
        m->bad_content++;
}

static void on_done(void *arg) {
    member *m = arg;
    trace(m, 'D');
    m->done = 1;
}

static const jn_kafka_consumer_cbs cbs = {
    .on_message = on_message,
    .on_assign = on_assign,
    .on_revoke = on_revoke,
    .on_commit = on_commit,
    .on_error = on_error,
};

static void member_reset(member *m, enum answer answer) {
    memset(m, 0, sizeof *m);
    m->answer = answer;
    for (int p = 0; p < NPART; p++)
        m->first[p] = m->next[p] = m->last_commit_offset[p] = m->committed[p] = m->eof[p] = -1;
    m->eof_empty = -1;
}

/* ---- conditions to run the loop until ---------------------------------------------------- */

static int target;
static int a_reached(void) {
    return ma.msgs >= target;
}
static int b_reached(void) {
    return mb.msgs >= target;
}
static int both_reached(void) {
    return ma.msgs + mb.msgs >= target;
}
static int a_assigned(void) {
    return ma.assigns > 0;
}
static int a_committed(void) {
    return ma.commits >= target;
}
static int a_revoke_pending(void) {
    return ma.revoke_pending;
}
static int a_done(void) {
    return ma.done;
}
static int both_done(void) {
    return ma.done && mb.done;
}
static int a_errors(void) {
    return ma.errors > 0;
}
/* The rebalance after B joined is over: A gave up everything and took its share back. */
/* trace is "A" followed by revoke-assign rounds ("RA"), at least min_rounds of them. */
static void assert_rounds(const char *trace, int min_rounds) {
    size_t n = strlen(trace);
    if (n < 1 + 2 * (size_t)min_rounds || trace[0] != 'A' || n % 2 == 0)
        fail_msg("trace \"%s\": want A then at least %d RA round(s)", trace, min_rounds);
    for (size_t i = 1; i < n; i += 2)
        if (trace[i] != 'R' || trace[i + 1] != 'A')
            fail_msg("trace \"%s\": want A then RA rounds", trace);
}

static int split_done(void) {
    return ma.revokes >= 1 && ma.assigns >= 2 && mb.assigns >= 1 && !ma.revoke_pending &&
           !mb.revoke_pending;
}

/* ---- fixture ---------------------------------------------------------------------------- */

static int setup(void **state) {
    (void)state;
    jn_log_setup(JN_LOG_WARN, JN_LOG_TEXT);
    member_reset(&ma, ANSWER_NOW);
    member_reset(&mb, ANSWER_NOW);
    produced = 0;
    if (mock_setup(1) != 0 || rd_kafka_mock_topic_create(mock, TOPIC, NPART, 1)) return -1;
    /* A plain producer: blocking flushes are fine in a test, and explicit partitions make
     * every message's partition and offset known in advance. */
    char errstr[256];
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    if (rd_kafka_conf_set(conf, "bootstrap.servers", rd_kafka_mock_cluster_bootstraps(mock), errstr,
                          sizeof errstr) != RD_KAFKA_CONF_OK)
        return -1;
    rd_kafka_conf_set(conf, "linger.ms", "5", errstr, sizeof errstr);
    rd_kafka_conf_set_log_cb(conf, NULL); /* it would complain when a test stops the broker */
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof errstr);
    return producer ? 0 : -1;
}

static int teardown(void **state) {
    (void)state;
    rd_kafka_destroy(producer);
    return mock_teardown();
}

/* Produces n more messages, message i to partition i % NPART, and waits for them. */
static void produce(int n) {
    for (int k = 0; k < n; k++, produced++) {
        char key[16], value[32];
        snprintf(key, sizeof key, "k%d", produced);
        snprintf(value, sizeof value, "value %d", produced);
        assert_int_equal(
            rd_kafka_producev(
                producer, RD_KAFKA_V_TOPIC(TOPIC), RD_KAFKA_V_PARTITION(produced % NPART),
                RD_KAFKA_V_KEY(key, strlen(key)), RD_KAFKA_V_VALUE(value, strlen(value)),
                RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
            0);
    }
    assert_int_equal(rd_kafka_flush(producer, 10000), 0);
}

static const char *const default_properties[] = {
    "session.timeout.ms", "4000", "heartbeat.interval.ms", "200", "fetch.wait.max.ms", "50", NULL};

static jn_kafka_consumer *make_with(member *m, const char *group, const char *const *properties) {
    static const char *const topics[] = {TOPIC, NULL};
    jn_kafka_consumer_opts o = {
        .client.brokers = rd_kafka_mock_cluster_bootstraps(mock),
        .group_id = group,
        .client.client_id = "test_kafka_consumer",
        .auto_offset_reset = "earliest",
        .topics = topics,
        .client.properties = properties,
    };
    char *err = NULL;
    m->c = jn_kafka_consumer_new(&loop, &o, &cbs, m, &err);
    if (!m->c) print_error("jn_kafka_consumer_new: %s\n", err);
    free(err);
    assert_non_null(m->c);
    return m->c;
}

static jn_kafka_consumer *make(member *m, const char *group) {
    return make_with(m, group, default_properties);
}

static int assigned_count(const member *m) {
    int n = 0;
    for (int p = 0; p < NPART; p++)
        n += m->assigned[p];
    return n;
}

/* ---- tests ------------------------------------------------------------------------------ */

/* Delivery in order with the right contents; a commit; after a close the next member of
 * the group resumes from the committed offsets. */
static void test_consume_commit_and_resume(void **state) {
    (void)state;
    produce(300);
    make(&ma, "g-resume");
    target = 300;
    assert_true(run_until(a_reached, 15000));
    run_until_witness_read_all(); /* nothing more may arrive */
    assert_int_equal(ma.msgs, 300);
    assert_int_equal(ma.bad_content, 0);
    assert_int_equal(ma.bad_order, 0);
    assert_int_equal(ma.unassigned_msgs, 0);
    assert_int_equal(ma.off_thread, 0);
    assert_int_equal(ma.assigns, 1);
    assert_int_equal(assigned_count(&ma), NPART);
    for (int i = 0; i < 300; i++)
        assert_int_equal(ma.seen[i], 1);
    for (int p = 0; p < NPART; p++) {
        assert_int_equal(ma.first[p], 0);
        assert_int_equal(ma.next[p], 300 / NPART);
        /* Everything read: the high watermark (75) is where the position is. */
        assert_int_equal(jn_kafka_consumer_lag(ma.c, TOPIC, p), 0);
    }
    assert_int_equal(jn_kafka_consumer_lag(ma.c, TOPIC, NPART + 3), -1);
    assert_int_equal(jn_kafka_consumer_lag(ma.c, "other", 0), -1);

    /* Settled up to offset 40 in every partition (as if the rest were still pending). */
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPART);
    for (int p = 0; p < NPART; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p)->offset = 40;
    assert_int_equal(jn_kafka_consumer_commit(ma.c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    target = 1;
    assert_true(run_until(a_committed, 5000));
    assert_int_equal(ma.last_commit_err, RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int p = 0; p < NPART; p++)
        assert_int_equal(ma.last_commit_offset[p], 40);

    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
    assert_string_equal(ma.trace, "ARD");

    /* The next member starts where the first one committed, not at the beginning. */
    make(&mb, "g-resume");
    target = 300 - NPART * 40;
    assert_true(run_until(b_reached, 15000));
    run_until_witness_read_all();
    assert_int_equal(mb.msgs, 300 - NPART * 40);
    assert_int_equal(mb.bad_content + mb.bad_order + mb.off_thread, 0);
    for (int p = 0; p < NPART; p++)
        assert_int_equal(mb.first[p], 40);
    for (int i = 0; i < 300; i++)
        assert_int_equal(mb.seen[i], i / NPART >= 40 ? 1 : 0);
    jn_kafka_consumer_close(mb.c, on_done, &mb);
    assert_true(run_until(both_done, 10000));
}

/* The end of the pause tests: A resumes, then has all 200 messages produced, each once, in
 * order, and closes. */
static void resume_and_expect_all_200(void) {
    jn_kafka_consumer_resume(ma.c);
    target = 200;
    assert_true(run_until(a_reached, 5000));
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, 200);
    assert_int_equal(ma.bad_content + ma.bad_order + ma.off_thread, 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(ma.seen[i], 1);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
}

/* Paused before the assignment: the partitions start paused. Paused from inside
 * on_message: not one more message, even of those already fetched. Resume restarts
 * exactly after the last delivered message. */
static void test_pause_and_resume(void **state) {
    (void)state;
    produce(100);
    make(&ma, "g-pause");
    jn_kafka_consumer_pause(ma.c);
    assert_true(jn_kafka_consumer_paused(ma.c));
    assert_true(run_until(a_assigned, 15000));
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, 0);

    ma.pause_at = 50;
    jn_kafka_consumer_resume(ma.c);
    assert_false(jn_kafka_consumer_paused(ma.c));
    target = 50;
    assert_true(run_until(a_reached, 5000));
    assert_true(jn_kafka_consumer_paused(ma.c));
    produce(100);
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, 50);

    resume_and_expect_all_200();
}

/* A pause librdkafka lost: its broker thread drops an op older than the last one it
 * served, and a pause can lose that race against the start of a fetcher. Here the
 * partitions are resumed behind the layer's back, which has the same effect: messages
 * come while the layer is paused. Not one reaches the owner; after the resume each comes
 * once and in order, starting with the first one held back. */
static void test_pause_lost_in_librdkafka(void **state) {
    (void)state;
    produce(100);
    make(&ma, "g-lost");
    ma.pause_at = 40;
    target = 40;
    assert_true(run_until(a_reached, 15000));
    assert_true(jn_kafka_consumer_paused(ma.c));
    produce(100);

    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPART);
    for (int p = 0; p < NPART; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p);
    assert_int_equal(rd_kafka_resume_partitions(jn_kafka_consumer_handle(ma.c), l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    run_until_witness_read_all();
    run_until_witness_read_all(); /* time for every partition to be fetched again */
    assert_int_equal(ma.msgs, 40);
    assert_true(jn_kafka_consumer_paused(ma.c));

    resume_and_expect_all_200();
}

/* A hold stops deliveries at once, fetching goes on meanwhile, and releasing it delivers
 * everything that waited, each message once and in order, without a pause's refetch. */
static void test_hold_and_release(void **state) {
    (void)state;
    produce(100);
    make(&ma, "g-hold");
    ma.hold_at = 40;
    target = 40;
    assert_true(run_until(a_reached, 15000));
    produce(100);
    run_until_witness_read_all();
    /* The event being served when the hold began may finish its batch: nothing more. */
    int held = ma.msgs;
    assert_true(held >= 40 && held < 200);
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, held);
    assert_false(jn_kafka_consumer_paused(ma.c));

    jn_kafka_consumer_hold(ma.c, 0);
    target = 200;
    assert_true(run_until(a_reached, 5000));
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, 200);
    assert_int_equal(ma.bad_content + ma.bad_order + ma.off_thread, 0);
    for (int i = 0; i < 200; i++)
        assert_int_equal(ma.seen[i], 1);
    /* Closing while held still serves the final revocation. */
    jn_kafka_consumer_hold(ma.c, 1);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
}

/* The group has settled with each member holding half of the partitions. */
static int split_even(void) {
    return split_done() && assigned_count(&ma) == NPART / 2 && assigned_count(&mb) == NPART / 2;
}

/* A commits everything it has seen and the broker accepts it. */
static void commit_a_and_wait(void) {
    assert_true(commit_seen(&ma, NULL));
    target = 1;
    assert_true(run_until(a_committed, 5000));
    assert_int_equal(ma.last_commit_err, 0);
}

/* Neither member got anything wrong, and each of the first n messages reached exactly one
 * of them, once. */
static void assert_each_seen_once_by_a_or_b(int n) {
    assert_int_equal(ma.bad_content + ma.bad_order + ma.off_thread + ma.unassigned_msgs, 0);
    assert_int_equal(mb.bad_content + mb.bad_order + mb.off_thread + mb.unassigned_msgs, 0);
    for (int i = 0; i < n; i++) {
        if (ma.seen[i] + mb.seen[i] != 1)
            print_error("message %d seen %d + %d times\n", i, ma.seen[i], mb.seen[i]);
        assert_int_equal(ma.seen[i] + mb.seen[i], 1);
    }
}

/* A rebalance reaches a member that holds its messages back at once, not after them:
 * it may be holding because settling is slow, and the group must not wait for that.
 * The member commits what it saw before the second one joins (the mock refuses commits
 * during a rebalance), so together they see every message once. */
static void test_held_member_hears_rebalance_at_once(void **state) {
    (void)state;
    produce(200);
    ma.answer = mb.answer = ANSWER_AFTER_COMMIT;
    make(&ma, "g-held");
    ma.hold_at = 40;
    target = 40;
    assert_true(run_until(a_reached, 15000));
    run_until_witness_read_all(); /* the other 160 are fetched and wait behind the hold */
    int held = ma.msgs;
    assert_true(held >= 40 && held < 200);
    commit_a_and_wait();

    make(&mb, "g-held");
    assert_true(run_until(split_even, 15000));
    /* Revoked and given its share back without one more message delivered. The group may
     * take two rounds to settle (the mock sometimes forms a generation before B's join
     * arrives), so the trace is A, then revoke-assign pairs. */
    assert_int_equal(ma.msgs, held);
    assert_true(ma.revokes >= 1 && ma.assigns == ma.revokes + 1);
    assert_int_equal(strncmp(ma.trace, "ARA", 3), 0);

    jn_kafka_consumer_hold(ma.c, 0);
    target = 200;
    assert_true(run_until(both_reached, 10000));
    run_until_witness_read_all();
    assert_int_equal(ma.msgs + mb.msgs, 200);
    assert_each_seen_once_by_a_or_b(200);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    jn_kafka_consumer_close(mb.c, on_done, &mb);
    assert_true(run_until(both_done, 15000));
}

/* A second member joins: the first one is revoked, commits what it has not committed
 * yet, answers, and both get their share; together they see every message once.
 *
 * The owner commits as it settles, before the second member comes: the mock coordinator
 * refuses OffsetCommit while a rebalance is joining (REBALANCE_IN_PROGRESS; Kafka accepts
 * it in PreparingRebalance), so a commit made in on_revoke of a rebalance would fail
 * here. A commit in on_revoke is exercised by the close instead, the group still being
 * stable then. */
static void test_two_members_split_partitions(void **state) {
    (void)state;
    produce(200);
    ma.answer = mb.answer = ANSWER_AFTER_COMMIT;
    make(&ma, "g-split");
    target = 200;
    assert_true(run_until(a_reached, 15000));
    assert_int_equal(assigned_count(&ma), NPART);
    commit_a_and_wait();

    make(&mb, "g-split");
    assert_true(run_until(split_done, 15000));
    /* The mock coordinator sometimes settles the group in two rounds (CI saw "ARARA"):
     * let it settle, then every round must have been a full revoke-then-assign. */
    run_for(1500);
    assert_rounds(ma.trace, 1);
    assert_rounds(mb.trace, 0);
    char a_trace[sizeof ma.trace + 2];
    snprintf(a_trace, sizeof a_trace, "%sRD", ma.trace);
    assert_int_equal(ma.msgs_at_revoke, 200);
    assert_int_equal(ma.commits, 1); /* nothing new to commit when revoked */
    assert_int_equal(assigned_count(&ma), NPART / 2);
    assert_int_equal(assigned_count(&mb), NPART / 2);
    int a_share[NPART];
    for (int p = 0; p < NPART; p++) {
        assert_int_equal(ma.assigned[p] + mb.assigned[p], 1);
        a_share[p] = ma.assigned[p];
    }

    produce(200);
    target = 400;
    assert_true(run_until(both_reached, 10000));
    run_until_witness_read_all();
    assert_int_equal(ma.msgs + mb.msgs, 400);
    assert_true(mb.msgs > 0);
    assert_each_seen_once_by_a_or_b(400);
    for (int p = 0; p < NPART; p++)
        if (mb.assigned[p]) assert_int_equal(mb.first[p], 200 / NPART);

    /* A leaves first: its revocation commits the 100 messages it read since the split. */
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
    assert_string_equal(ma.trace, a_trace);
    assert_int_equal(ma.commits, 2);
    assert_int_equal(ma.commit_errors, 0);
    for (int p = 0; p < NPART; p++)
        assert_int_equal(ma.committed[p], a_share[p] ? 400 / NPART : 200 / NPART);
    /* B, revoked when A left, tried to commit too; the mock refused (rebalance under way)
     * and B answered all the same: a failed commit must not wedge the rebalance. */
    jn_kafka_consumer_close(mb.c, on_done, &mb);
    assert_true(run_until(both_done, 15000));
    assert_int_equal(ma.revoke_pending + mb.revoke_pending, 0);
}

/* An OffsetCommit the broker refuses reaches on_commit as an error. Close announces the
 * revocation and waits for the owner's answer before it finishes. */
static void test_commit_error_and_close_waits_for_owner(void **state) {
    (void)state;
    produce(40);
    ma.answer = ANSWER_LATER;
    make(&ma, "g-close");
    target = 40;
    assert_true(run_until(a_reached, 15000));

    rd_kafka_mock_push_request_errors(mock, API_OFFSETCOMMIT, 1,
                                      RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, TOPIC, 0)->offset = 5;
    assert_int_equal(jn_kafka_consumer_commit(ma.c, l), 0);
    target = 1;
    assert_true(run_until(a_committed, 5000));
    assert_int_equal(ma.last_commit_err, RD_KAFKA_RESP_ERR_OFFSET_METADATA_TOO_LARGE);
    /* The next one goes through. */
    assert_int_equal(jn_kafka_consumer_commit(ma.c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    target = 2;
    assert_true(run_until(a_committed, 5000));
    assert_int_equal(ma.last_commit_err, RD_KAFKA_RESP_ERR_NO_ERROR);

    produce(40); /* in flight to us while we close: none of it may be delivered */
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    int at_close = ma.msgs;
    assert_true(run_until(a_revoke_pending, 5000));
    run_until_witness_read_all();
    assert_false(ma.done); /* waits for the owner */
    assert_int_equal(ma.msgs, at_close);
    ma.revoke_pending = 0;
    jn_kafka_consumer_revoke_done(ma.c);
    assert_true(run_until(a_done, 10000));
    assert_string_equal(ma.trace, "ARD");
    assert_int_equal(ma.msgs, at_close);
    assert_int_equal(ma.off_thread, 0);
}

/* librdkafka 2.0 makes a group's JoinGroup at most once a second, a second more after
 * one failed, and only when its main thread wakes: a member whose first join fails, or
 * whose first SyncGroup another member's join interrupts (two processes started
 * together), would sit out up to 2 s while the group waits for it. The consumer reads
 * the group handler's state from the statistics (every 50 ms here) and subscribes again,
 * which joins at once. The mock forms a new group 3 s after the first JoinGroup reaches
 * it, so the assignment comes about 3.2 s after the subscribe; left to librdkafka, no
 * earlier than 5 s (2 s of waiting, then the mock's 3 s). */
static void test_failed_first_join_retried_at_once(void **state) {
    (void)state;
    static const char *const properties[] = {"session.timeout.ms",
                                             "4000",
                                             "heartbeat.interval.ms",
                                             "200",
                                             "statistics.interval.ms",
                                             "50",
                                             NULL};
    rd_kafka_mock_push_request_errors(mock, API_JOINGROUP, 1,
                                      RD_KAFKA_RESP_ERR_REBALANCE_IN_PROGRESS);
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    make_with(&ma, "g-rejoin", properties);
    assert_true(run_until(a_assigned, 15000));
    uint64_t took = uv_now(&loop) - start;
    print_message("assigned %llu ms after the subscribe\n", (unsigned long long)took);
    assert_true(took < 4200);
    assert_int_equal(assigned_count(&ma), NPART);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
    assert_string_equal(ma.trace, "ARD");
}

/* Broker trouble reaches on_error on the loop thread; a consumer that never joined its
 * group closes at once. */
static void test_broker_down_reported(void **state) {
    (void)state;
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    make(&ma, "g-down");
    assert_true(run_until(a_errors, 10000));
    assert_int_equal(ma.off_thread, 0);
    assert_int_equal(ma.assigns, 0);
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
    assert_true(uv_now(&loop) - start < 3000);
    assert_string_equal(ma.trace, "D");
}

/* Kafka gone while a member holds partitions: close still revokes (the owner settles
 * what it can) and finishes without waiting for a coordinator that does not answer. */
static void test_close_with_broker_down(void **state) {
    (void)state;
    produce(20);
    make(&ma, "g-gone");
    target = 20;
    assert_true(run_until(a_reached, 15000));
    assert_int_equal(rd_kafka_mock_broker_set_down(mock, 1), 0);
    assert_true(run_until(a_errors, 10000));
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 20000));
    print_message("close took %llu ms\n", (unsigned long long)(uv_now(&loop) - start));
    assert_string_equal(ma.trace, "ARD");
}

static void expect_rejected(const char *group, const char *const *topics, const char *reset,
                            const char *const *properties, const char *must_mention) {
    jn_kafka_consumer_opts o = {
        .client.brokers = "127.0.0.1:9",
        .group_id = group,
        .auto_offset_reset = reset,
        .topics = topics,
        .client.properties = properties,
    };
    char *err = NULL;
    assert_null(jn_kafka_consumer_new(&loop, &o, &cbs, &ma, &err));
    assert_refusal(err, must_mention);
}

static void test_bad_settings_rejected(void **state) {
    (void)state;
    static const char *const topics[] = {TOPIC, NULL};
    expect_rejected("g", topics, "sometimes", NULL, "auto.offset.reset=sometimes");
    expect_rejected(NULL, topics, NULL, NULL, "group.id");
    expect_rejected("", topics, NULL, NULL, "group.id");
    static const char *const none[] = {NULL};
    expect_rejected("g", none, NULL, NULL, "topic");
    expect_rejected("g", NULL, NULL, NULL, "topic");
    static const char *const empty[] = {TOPIC, "", NULL};
    expect_rejected("g", empty, NULL, NULL, "topic");
    static const char *const dup[] = {TOPIC, TOPIC, NULL};
    expect_rejected("g", dup, NULL, NULL, "subscribe");
    static const char *const unknown[] = {"no.such.setting", "1", NULL};
    expect_rejected("g", topics, NULL, unknown, "no.such.setting");
    /* A secret's value must not end up in the log, even where librdkafka's reason
     * echoes it. */
    static const char *const secret[] = {"sasl.oauthbearer.method", "hunter2", NULL};
    expect_rejected("g", topics, NULL, secret, "sasl.oauthbearer.method=(hidden)");
}

/* ---- assign mode ------------------------------------------------------------------------ */

static const jn_kafka_consumer_cbs assign_cbs = {
    .on_message = on_message,
    .on_assign = on_assign_replace,
    .on_revoke = on_revoke, /* must never run: counted in revokes */
    .on_commit = on_commit,
    .on_error = on_error,
    .on_eof = on_eof,
};

static jn_kafka_consumer *make_assign(member *m, int report_eof) {
    static const char *const properties[] = {"fetch.wait.max.ms", "50", NULL};
    jn_kafka_consumer_opts o = {
        .client.brokers = rd_kafka_mock_cluster_bootstraps(mock),
        .group_id = "g-replay",
        .client.client_id = "test_kafka_consumer",
        .client.properties = properties,
        .report_eof = report_eof,
        .assign_only = 1,
    };
    char *err = NULL;
    m->c = jn_kafka_consumer_new(&loop, &o, &assign_cbs, m, &err);
    if (!m->c) print_error("jn_kafka_consumer_new: %s\n", err);
    free(err);
    assert_non_null(m->c);
    return m->c;
}

/* parts: "topic" partition offset triples, ended by a NULL topic. */
static rd_kafka_topic_partition_list_t *parts_of(const char *topic, ...) {
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(4);
    va_list ap;
    va_start(ap, topic);
    for (const char *t = topic; t; t = va_arg(ap, const char *)) {
        int32_t p = va_arg(ap, int32_t);
        rd_kafka_topic_partition_list_add(l, t, p)->offset = va_arg(ap, int64_t);
    }
    va_end(ap);
    return l;
}

static int a_eofs(void) {
    return ma.eofs >= target;
}
static int a_eof_at_50(void) {
    return ma.eof[0] == 50 && ma.eof[2] == 50;
}

static int w_read_all(void) {
    return mw.msgs >= produced;
}
static int w_done(void) {
    return mw.done;
}

/* For a check that nothing more arrives (a paused or held consumer, one that has
 * everything): runs the loop until a fresh reader of every partition, on the same loop and
 * mock cluster, has read all `produced` messages from the start, at most 10 s. By then a
 * consumer free to deliver would have delivered them too, and its duplicates would have
 * come: the check waits on that condition, not on a time it hopes is long enough. */
static void run_until_witness_read_all(void) {
    member_reset(&mw, ANSWER_NOW);
    make_assign(&mw, 0);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(NPART);
    for (int p = 0; p < NPART; p++)
        rd_kafka_topic_partition_list_add(l, TOPIC, p)->offset = RD_KAFKA_OFFSET_BEGINNING;
    assert_int_equal(jn_kafka_consumer_assign(mw.c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    if (!run_until(w_read_all, 10000))
        fail_msg("the witness read %d of %d messages in 10 s", mw.msgs, produced);
    assert_int_equal(mw.msgs, produced);
    assert_int_equal(mw.bad_content + mw.bad_order + mw.off_thread + mw.unassigned_msgs, 0);
    jn_kafka_consumer_close(mw.c, on_done, &mw);
    assert_true(run_until(w_done, 10000));
}

/* Nothing is read before the owner assigns; then each partition from the offset it was
 * given, an empty partition included, with an EOF for each once read to its end, and
 * again after more messages arrived. No group: nothing to commit, no revocation. */
static void test_assign_replays_and_reports_eof(void **state) {
    (void)state;
    assert_int_equal(rd_kafka_mock_topic_create(mock, EMPTY_TOPIC, 2, 1), 0);
    produce(100); /* 25 per partition */
    make_assign(&ma, 1);
    run_until_witness_read_all();
    assert_int_equal(ma.assigns + ma.msgs + ma.eofs, 0);

    rd_kafka_topic_partition_list_t *l =
        parts_of(TOPIC, (int32_t)0, (int64_t)RD_KAFKA_OFFSET_BEGINNING, TOPIC, (int32_t)2,
                 (int64_t)10, EMPTY_TOPIC, (int32_t)0, (int64_t)RD_KAFKA_OFFSET_BEGINNING, NULL);
    assert_int_equal(jn_kafka_consumer_assign(ma.c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    assert_int_equal(ma.assigns, 1); /* on_assign ran inside the call */
    assert_true(ma.assigned[0] && ma.assigned[2] && !ma.assigned[1] && !ma.assigned[3]);

    target = 3;
    assert_true(run_until(a_eofs, 10000));
    run_until_witness_read_all();
    assert_int_equal(ma.eofs, 3);
    /* librdkafka 2.0.2 reports the end of a partition that never had a message too. */
    assert_int_equal(ma.eof_empty, 0);
    assert_int_equal(ma.eof[0], 25);
    assert_int_equal(ma.eof[2], 25);
    assert_int_equal(ma.eof[1], -1);
    assert_int_equal(ma.msgs, 25 + 15);
    assert_int_equal(ma.first[0], 0);
    assert_int_equal(ma.first[2], 10);
    assert_int_equal(ma.next[0], 25);
    assert_int_equal(ma.next[2], 25);
    assert_int_equal(ma.bad_content + ma.bad_order + ma.off_thread + ma.unassigned_msgs, 0);
    assert_int_equal(jn_kafka_consumer_lag(ma.c, TOPIC, 0), 0);
    assert_int_equal(jn_kafka_consumer_lag(ma.c, TOPIC, 1), -1);

    /* Caught up again after more arrived: another EOF, at the new end. */
    produce(100);
    assert_true(run_until(a_eof_at_50, 10000));
    assert_int_equal(ma.msgs, 25 + 15 + 2 * 25);
    assert_int_equal(ma.bad_content + ma.bad_order + ma.off_thread + ma.unassigned_msgs, 0);

    /* Nothing is committed under the borrowed group id. */
    l = parts_of(TOPIC, (int32_t)0, (int64_t)5, NULL);
    assert_int_equal(jn_kafka_consumer_commit(ma.c, l), JN_EKAFKA(RD_KAFKA_RESP_ERR__STATE));
    rd_kafka_topic_partition_list_destroy(l);

    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
    assert_true(uv_now(&loop) - start < 3000);
    assert_string_equal(ma.trace, "AD");
    assert_int_equal(ma.revokes + ma.commits + ma.errors, 0);
}

/* A new assignment takes effect when the call returns: not one more message of a
 * partition it dropped, even of those already fetched and queued (it is made from inside
 * on_message, with most of the old partitions' messages waiting). A partition assigned
 * again starts over from its new offset; an empty list unassigns; a bad list leaves the
 * consumer unassigned. */
static void test_assign_replaces_assignment(void **state) {
    (void)state;
    produce(400); /* 100 per partition */
    make_assign(&ma, 0);
    ma.reassign_at = 10;
    ma.reassign = parts_of(TOPIC, (int32_t)2, (int64_t)RD_KAFKA_OFFSET_BEGINNING, TOPIC, (int32_t)3,
                           (int64_t)RD_KAFKA_OFFSET_BEGINNING, NULL);
    rd_kafka_topic_partition_list_t *l =
        parts_of(TOPIC, (int32_t)0, (int64_t)RD_KAFKA_OFFSET_BEGINNING, TOPIC, (int32_t)1,
                 (int64_t)RD_KAFKA_OFFSET_BEGINNING, NULL);
    assert_int_equal(jn_kafka_consumer_assign(ma.c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    target = 210;
    assert_true(run_until(a_reached, 10000));
    run_until_witness_read_all();
    assert_int_equal(ma.reassign_err, 0);
    assert_int_equal(ma.assigns, 2);
    assert_int_equal(ma.msgs, 210);
    assert_int_equal(ma.bad_content + ma.bad_order + ma.off_thread + ma.unassigned_msgs, 0);
    int old = 0;
    for (int i = 0; i < 400; i++) {
        if (i % NPART < 2)
            old += ma.seen[i];
        else
            assert_int_equal(ma.seen[i], 1);
    }
    assert_int_equal(old, 10);
    rd_kafka_topic_partition_list_destroy(ma.reassign);
    ma.reassign = NULL;

    /* Partition 2 again, from offset 90: its last ten messages once more. */
    l = parts_of(TOPIC, (int32_t)2, (int64_t)90, NULL);
    assert_int_equal(jn_kafka_consumer_assign(ma.c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    target = 220;
    assert_true(run_until(a_reached, 10000));
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, 220);
    assert_int_equal(ma.first[2], 90);
    assert_int_equal(ma.bad_content + ma.bad_order + ma.off_thread + ma.unassigned_msgs, 0);

    /* NULL unassigns: nothing more arrives, on_assign hears of it with an empty list. */
    assert_int_equal(jn_kafka_consumer_assign(ma.c, NULL), 0);
    assert_int_equal(ma.assigns, 4);
    produce(40);
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, 220);
    assert_int_equal(jn_kafka_consumer_lag(ma.c, TOPIC, 2), -1);

    /* A partition listed twice: refused, and nothing is assigned. */
    l = parts_of(TOPIC, (int32_t)1, (int64_t)0, TOPIC, (int32_t)1, (int64_t)5, NULL);
    assert_int_equal(jn_kafka_consumer_assign(ma.c, l), JN_EKAFKA(RD_KAFKA_RESP_ERR__INVALID_ARG));
    rd_kafka_topic_partition_list_destroy(l);
    assert_int_equal(ma.assigns, 4);
    run_until_witness_read_all();
    assert_int_equal(ma.msgs, 220);

    /* Closing while partitions are being read: no revocation to wait for. */
    l = parts_of(TOPIC, (int32_t)0, (int64_t)RD_KAFKA_OFFSET_BEGINNING, NULL);
    assert_int_equal(jn_kafka_consumer_assign(ma.c, l), 0);
    rd_kafka_topic_partition_list_destroy(l);
    uv_update_time(&loop);
    uint64_t start = uv_now(&loop);
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_int_equal(jn_kafka_consumer_assign(ma.c, NULL), JN_EKAFKA(RD_KAFKA_RESP_ERR__DESTROY));
    int at_close = ma.msgs;
    assert_true(run_until(a_done, 10000));
    assert_true(uv_now(&loop) - start < 3000);
    assert_int_equal(ma.msgs, at_close);
    assert_string_equal(ma.trace, "AAAAAD");
    assert_int_equal(ma.revokes + ma.errors, 0);
}

/* A group member's assignment is the group's: the owner cannot set it. */
static void test_assign_refused_in_group_mode(void **state) {
    (void)state;
    make(&ma, "g-no-assign");
    rd_kafka_topic_partition_list_t *l =
        parts_of(TOPIC, (int32_t)0, (int64_t)RD_KAFKA_OFFSET_BEGINNING, NULL);
    assert_int_equal(jn_kafka_consumer_assign(ma.c, l), JN_EKAFKA(RD_KAFKA_RESP_ERR__STATE));
    rd_kafka_topic_partition_list_destroy(l);
    assert_true(run_until(a_assigned, 15000));
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 10000));
    assert_string_equal(ma.trace, "ARD");
}

static void test_assign_mode_settings(void **state) {
    (void)state;
    /* Topics are not needed, a group id still is. */
    jn_kafka_consumer_opts o = {.client.brokers = "127.0.0.1:9", .assign_only = 1};
    char *err = NULL;
    assert_null(jn_kafka_consumer_new(&loop, &o, &assign_cbs, &ma, &err));
    assert_non_null(err);
    assert_non_null(strstr(err, "group.id"));
    free(err);
    err = NULL;
    o.group_id = "g-replay";
    ma.c = jn_kafka_consumer_new(&loop, &o, &assign_cbs, &ma, &err);
    assert_null(err);
    assert_non_null(ma.c);
    /* Never assigned, never joined: closes at once. */
    jn_kafka_consumer_close(ma.c, on_done, &ma);
    assert_true(run_until(a_done, 3000));
    assert_string_equal(ma.trace, "D");
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_consume_commit_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_and_resume, setup, teardown),
        cmocka_unit_test_setup_teardown(test_pause_lost_in_librdkafka, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_and_release, setup, teardown),
        cmocka_unit_test_setup_teardown(test_held_member_hears_rebalance_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_members_split_partitions, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_error_and_close_waits_for_owner, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_failed_first_join_retried_at_once, setup, teardown),
        cmocka_unit_test_setup_teardown(test_broker_down_reported, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_broker_down, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_settings_rejected, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_replays_and_reports_eof, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_replaces_assignment, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_refused_in_group_mode, setup, teardown),
        cmocka_unit_test_setup_teardown(test_assign_mode_settings, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
