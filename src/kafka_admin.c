/* Topic administration for the Kafka glue: making sure a changelog topic exists with as
 * many partitions as the stream it records, so that a key's changelog partition is its
 * stream partition (co-partitioned).
 *
 * librdkafka's metadata and admin calls block (rd_kafka_metadata waits for the reply,
 * a CreateTopics result is waited for on a queue), so they run on libuv's thread pool
 * (uv_queue_work) with a short-lived rd_kafka_t of their own, and only the outcome comes
 * back to the loop. The worker touches nothing but its own request, and the loop looks
 * at the request only after the worker is done: no locks.
 *
 * Every failure becomes one sentence for a person (the reason), since the caller can do
 * little more than log it and stop. That is also why the client's own log lines are
 * switched off: its error events are collected instead, and the last one says why a
 * broker could not be reached. Like every client's, its configuration comes from
 * kafka_conf.c, and secret values are blanked out of the reason. */
#include "kafka_admin.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "error.h"
#include "kafka_conf.h"

/* How long one metadata request may take before the brokers count as unreachable. */
#define METADATA_TIMEOUT_MS 5000
/* How long the controller may take to create the topic on its brokers, and how long the
 * request itself may take on top of that. */
#define CREATE_OPERATION_TIMEOUT_MS 5000
#define CREATE_REQUEST_TIMEOUT_MS   8000
#define MAX_REPLICATION_FACTOR      3

typedef struct {
    uv_work_t work;
    /* The caller's arguments, copied: the worker runs after the call returned. */
    char *brokers;
    char *client_id;
    char **properties; /* pairs */
    char *topic;
    char *like;
    char **configs;
    jn_kafka_topic_cb cb;
    void *ud;
    /* The outcome, written by the worker and read on the loop once it is done. */
    int err;
    int partitions;
    char *reason;
    /* The worker's client and what it said about brokers it could not reach. */
    rd_kafka_t *rk;
    rd_kafka_queue_t *mainq;
    jn_kafka_secrets secrets;
    char last_broker_error[512];
    rd_kafka_resp_err_t last_broker_err;
    /* jn_kafka_topic_compacted: its callback and answer */
    jn_kafka_policy_cb policy_cb;
    int compacted;
    /* jn_kafka_group_committed: the group, the partitions (offsets filled in), callback */
    char *group;
    rd_kafka_topic_partition_list_t *parts;
    jn_kafka_committed_cb committed_cb;
    /* jn_kafka_brokers_check: how long to wait, and its callback */
    int timeout_ms;
    jn_kafka_check_cb check_cb;
} ensure_req;

/* ---- small helpers ------------------------------------------------------------------- */

static char *dup_or_null(const char *s) {
    if (!s) return NULL;
    char *d = strdup(s);
    if (!d) abort();
    return d;
}

static char **dup_strv(const char *const *v) {
    if (!v) return NULL;
    size_t n = 0;
    while (v[n])
        n++;
    char **d = calloc(n + 1, sizeof *d);
    if (!d) abort();
    for (size_t i = 0; i < n; i++)
        d[i] = dup_or_null(v[i]);
    return d;
}

static void free_strv(char **v) {
    for (size_t i = 0; v && v[i]; i++) {
        /* Properties hold secrets. */
        explicit_bzero(v[i], strlen(v[i]));
        free(v[i]);
    }
    free(v);
}

/* A request with the arguments every kind has, copied: the worker runs after the call
 * returned. */
static ensure_req *req_new(const jn_kafka_client_opts *client, void *ud) {
    ensure_req *r = calloc(1, sizeof *r);
    if (!r) abort();
    r->brokers = dup_or_null(client->brokers);
    r->client_id = dup_or_null(client->client_id);
    r->properties = dup_strv(client->properties);
    r->ud = ud;
    r->work.data = r;
    return r;
}

static void req_free(ensure_req *r) {
    free(r->brokers);
    free(r->client_id);
    free_strv(r->properties);
    free(r->topic);
    free(r->like);
    free_strv(r->configs);
    free(r->group);
    if (r->parts) rd_kafka_topic_partition_list_destroy(r->parts);
    free(r->reason);
    jn_kafka_secrets_free(&r->secrets);
    free(r);
}

static void fail(ensure_req *r, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void fail(ensure_req *r, int err, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    free(r->reason);
    /* Broker errors and librdkafka's reasons may echo a setting. */
    r->reason = jn_kafka_secrets_hidden(&r->secrets, jn_verrorf(fmt, ap));
    va_end(ap);
    r->err = err;
}

static void succeed(ensure_req *r, int partitions, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void succeed(ensure_req *r, int partitions, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    free(r->reason);
    r->reason = jn_verrorf(fmt, ap);
    va_end(ap);
    r->err = 0;
    r->partitions = partitions;
}

/* Splits "key=value" at the first '='; 0 when there is no key. */
static int split_setting(const char *kv, char **key, const char **value) {
    const char *eq = strchr(kv, '=');
    if (!eq || eq == kv) return 0;
    *key = strndup(kv, (size_t)(eq - kv));
    if (!*key) abort();
    *value = eq + 1;
    return 1;
}

/* ---- the worker (thread pool) --------------------------------------------------------- */

static int check_args(ensure_req *r) {
    if (!r->topic || !*r->topic || !r->like || !*r->like) {
        fail(r, RD_KAFKA_RESP_ERR__INVALID_ARG,
             "kafka: topic ensure needs a topic and the topic "
             "whose partition count it copies");
        return -1;
    }
    if (strcmp(r->topic, r->like) == 0) {
        fail(r, RD_KAFKA_RESP_ERR__INVALID_ARG,
             "kafka: changelog topic \"%s\" is the stream topic itself: give it a name of its own",
             r->topic);
        return -1;
    }
    /* Checked before anything is asked of Kafka, so a mistyped setting is found even
     * while the topic exists and the settings are not needed. */
    for (char **c = r->configs; c && *c; c++) {
        char *key;
        const char *value;
        if (!split_setting(*c, &key, &value)) {
            fail(r, RD_KAFKA_RESP_ERR__INVALID_ARG,
                 "kafka: topic setting \"%s\" for \"%s\" is not key=value", *c, r->topic);
            return -1;
        }
        free(key);
    }
    return 0;
}

static int make_client(ensure_req *r) {
    /* Reading a group's committed offsets needs a consumer of that group; it never joins
     * (no subscribe), so the group's members are not disturbed. */
    /* Log lines are dropped (no log callback, no queue that would only grow). */
    const char *const own[] = {"log.queue", "false", "group.id", r->group, NULL};
    jn_kafka_client_opts c = {.brokers = r->brokers,
                              .client_id = r->client_id,
                              .properties = (const char *const *)r->properties};
    char *err = NULL;
    rd_kafka_conf_t *conf = jn_kafka_conf_build(&c, "admin client", own, 0, &r->secrets, &err);
    if (conf) {
        /* No log lines from librdkafka's threads: what matters comes back in the reason. */
        rd_kafka_conf_set_log_cb(conf, NULL);
        r->rk = jn_kafka_conf_client(r->group ? RD_KAFKA_CONSUMER : RD_KAFKA_PRODUCER, conf,
                                     "admin client", &r->secrets, &err);
    }
    if (!r->rk) {
        fail(r, RD_KAFKA_RESP_ERR__INVALID_ARG, "%s", err);
        free(err);
        return -1;
    }
    r->mainq = rd_kafka_queue_get_main(r->rk);
    return 0;
}

/* Keeps the last broker error librdkafka reported (connection refused, name not
 * resolved, TLS or SASL failures...): the metadata call itself only says it timed out. */
static void collect_errors(ensure_req *r) {
    rd_kafka_event_t *ev;
    while ((ev = rd_kafka_queue_poll(r->mainq, 0)) != NULL) {
        /* "n/n brokers are down" says less than the error before it. */
        if (rd_kafka_event_type(ev) == RD_KAFKA_EVENT_ERROR &&
            rd_kafka_event_error(ev) != RD_KAFKA_RESP_ERR__ALL_BROKERS_DOWN) {
            snprintf(r->last_broker_error, sizeof r->last_broker_error, "%s",
                     rd_kafka_event_error_string(ev));
            r->last_broker_err = rd_kafka_event_error(ev);
        }
        rd_kafka_event_destroy(ev);
    }
}

static const rd_kafka_metadata_topic_t *find_topic(const struct rd_kafka_metadata *md,
                                                   const char *name) {
    for (int i = 0; i < md->topic_cnt; i++)
        if (strcmp(md->topics[i].topic, name) == 0) return &md->topics[i];
    return NULL;
}

/* A topic the metadata knows, or NULL; UNKNOWN_TOPIC_OR_PART also means "not there". */
static const rd_kafka_metadata_topic_t *existing(const struct rd_kafka_metadata *md,
                                                 const char *name) {
    const rd_kafka_metadata_topic_t *t = find_topic(md, name);
    if (t && t->err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART && t->partition_cnt == 0)
        return NULL;
    return t;
}

enum lookup { L_DONE, L_MISSING };

/* Looks both topics up. L_DONE with the outcome set, or L_MISSING with *like_cnt and
 * *brokers set when the topic is to be created. */
static enum lookup look_up(ensure_req *r, int *like_cnt, int *brokers) {
    const struct rd_kafka_metadata *md = NULL;
    /* All topics rather than the two by name: asking for a missing topic by name makes a
     * broker with auto.create.topics.enable create it, with its default partition count
     * and settings, which is exactly what must not happen to a changelog. */
    rd_kafka_resp_err_t merr = rd_kafka_metadata(r->rk, 1, NULL, &md, METADATA_TIMEOUT_MS);
    if (merr) {
        collect_errors(r);
        fail(r, merr, "kafka: cannot reach the brokers (%s) to look up topic \"%s\": %s%s%s",
             r->brokers ? r->brokers : "from the properties", r->topic, rd_kafka_err2str(merr),
             r->last_broker_error[0] ? "; last broker error: " : "", r->last_broker_error);
        return L_DONE;
    }
    enum lookup out = L_DONE;
    const rd_kafka_metadata_topic_t *like = existing(md, r->like);
    const rd_kafka_metadata_topic_t *t = existing(md, r->topic);
    if (!like) {
        fail(r, RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART,
             "kafka: topic \"%s\" does not exist (or this client may not see it), so the "
             "partition count of its changelog \"%s\" is unknown: create \"%s\" first",
             r->like, r->topic, r->like);
    } else if (like->partition_cnt == 0) {
        fail(r, like->err ? like->err : RD_KAFKA_RESP_ERR_UNKNOWN,
             "kafka: cannot learn the partition count of topic \"%s\": %s", r->like,
             rd_kafka_err2str(like->err));
    } else if (t && t->partition_cnt == 0) {
        fail(r, t->err ? t->err : RD_KAFKA_RESP_ERR_UNKNOWN,
             "kafka: cannot learn the partition count of topic \"%s\": %s", r->topic,
             rd_kafka_err2str(t->err));
    } else if (t && t->partition_cnt != like->partition_cnt) {
        fail(r, RD_KAFKA_RESP_ERR_INVALID_PARTITIONS,
             "kafka: changelog topic \"%s\" has %d partition(s) but its stream \"%s\" has %d; "
             "they must be equal, or keys are restored into the wrong partition. Delete \"%s\" "
             "so that it is created again with %d partition(s), or configure another "
             "changelog topic name (adding partitions to it would not do: its keys would stay "
             "where the old count put them)",
             r->topic, t->partition_cnt, r->like, like->partition_cnt, r->topic,
             like->partition_cnt);
    } else if (t) {
        succeed(r, t->partition_cnt, "kafka: topic \"%s\" exists with %d partition(s), like \"%s\"",
                r->topic, t->partition_cnt, r->like);
    } else {
        *like_cnt = like->partition_cnt;
        *brokers = md->broker_cnt;
        out = L_MISSING;
    }
    rd_kafka_metadata_destroy(md);
    return out;
}

enum create { C_CREATED, C_RECHECK, C_FAILED };

static enum create create_topic(ensure_req *r, int partitions, int replication) {
    char errstr[512];
    rd_kafka_NewTopic_t *nt =
        rd_kafka_NewTopic_new(r->topic, partitions, replication, errstr, sizeof errstr);
    if (!nt) {
        fail(r, RD_KAFKA_RESP_ERR__INVALID_ARG, "kafka: cannot create topic \"%s\": %s", r->topic,
             errstr);
        return C_FAILED;
    }
    for (char **c = r->configs; c && *c; c++) {
        char *key = NULL;
        const char *value = NULL;
        if (!split_setting(*c, &key, &value)) continue; /* refused in check_args */
        rd_kafka_resp_err_t e = rd_kafka_NewTopic_set_config(nt, key, value);
        free(key);
        if (e) {
            fail(r, e, "kafka: topic setting \"%s\" for \"%s\": %s", *c, r->topic,
                 rd_kafka_err2str(e));
            rd_kafka_NewTopic_destroy(nt);
            return C_FAILED;
        }
    }
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(r->rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    /* The operation timeout makes the controller answer only once the topic exists on
     * its brokers, so that a metadata request right after finds it. */
    rd_kafka_AdminOptions_set_operation_timeout(opts, CREATE_OPERATION_TIMEOUT_MS, errstr,
                                                sizeof errstr);
    rd_kafka_AdminOptions_set_request_timeout(opts, CREATE_REQUEST_TIMEOUT_MS, errstr,
                                              sizeof errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(r->rk);
    rd_kafka_CreateTopics(r->rk, &nt, 1, opts, q);
    /* librdkafka answers by itself when the request timeout passes; the margin only
     * guards against waiting forever should it not. */
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, CREATE_REQUEST_TIMEOUT_MS + 5000);
    enum create out = C_FAILED;
    const char *what = NULL;
    /* Two kinds of failure: the request got no answer (no controller, timeout, an old
     * broker) or the controller answered and refused this topic (policy, replication,
     * authorization, a bad setting). */
    int answered = 0;
    rd_kafka_resp_err_t e = RD_KAFKA_RESP_ERR__TIMED_OUT;
    if (ev && rd_kafka_event_error(ev)) {
        e = rd_kafka_event_error(ev);
        what = rd_kafka_event_error_string(ev);
    } else if (ev) {
        size_t n = 0;
        const rd_kafka_topic_result_t **res =
            rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(ev), &n);
        e = n == 1 ? rd_kafka_topic_result_error(res[0]) : RD_KAFKA_RESP_ERR__BAD_MSG;
        what = n == 1 ? rd_kafka_topic_result_error_string(res[0]) : NULL;
        answered = n == 1;
    }
    if (!what) what = rd_kafka_err2str(e);
    if (answered && e == RD_KAFKA_RESP_ERR_NO_ERROR) {
        succeed(r, partitions,
                "kafka: created topic \"%s\" with %d partition(s) like \"%s\", "
                "replication factor %d",
                r->topic, partitions, r->like, replication);
        out = C_CREATED;
    } else if (e == RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS ||
               e == RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT) {
        /* Someone else created it meanwhile (another instance starting at the same
         * time), or the controller is still at it: what counts is what exists now. */
        fail(r, e, "kafka: topic \"%s\" was missing a moment ago, and creating it says: %s",
             r->topic, what);
        out = C_RECHECK;
    } else if (answered) {
        fail(r, e,
             "kafka: creating topic \"%s\" (%d partition(s), replication factor %d) was "
             "refused: %s",
             r->topic, partitions, replication, what);
    } else {
        collect_errors(r);
        fail(r, e,
             "kafka: creating topic \"%s\" (%d partition(s), replication factor %d) failed: "
             "%s%s%s",
             r->topic, partitions, replication, what,
             r->last_broker_error[0] ? "; last broker error: " : "", r->last_broker_error);
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_NewTopic_destroy(nt);
    return out;
}

static void ensure_work(uv_work_t *w) {
    ensure_req *r = w->data;
    if (check_args(r) != 0 || make_client(r) != 0) return;
    /* Twice at most: a create that lost a race is followed by one more look. */
    for (int round = 0; round < 2; round++) {
        int like_cnt = 0, brokers = 0;
        if (look_up(r, &like_cnt, &brokers) == L_DONE) break;
        if (round == 1) {
            /* Still missing after the create said it exists or is under way: keep the
             * create's error and reason. */
            break;
        }
        int replication = brokers < MAX_REPLICATION_FACTOR ? brokers : MAX_REPLICATION_FACTOR;
        if (replication < 1) replication = 1;
        if (create_topic(r, like_cnt, replication) != C_RECHECK) break;
    }
    rd_kafka_queue_destroy(r->mainq);
    /* Blocks while librdkafka joins its threads: fine on a pool thread. */
    rd_kafka_destroy(r->rk);
}

/* ---- on the loop ---------------------------------------------------------------------- */

static void ensure_done(uv_work_t *w, int status) {
    ensure_req *r = w->data;
    (void)status; /* never cancelled: nobody else knows the request */
    if (r->cb) r->cb(r->ud, jn_kafka_code(r->err), r->err ? 0 : r->partitions, r->reason);
    req_free(r);
}

void jn_kafka_topic_ensure(uv_loop_t *loop, const jn_kafka_client_opts *client, const char *topic,
                           const char *like_topic, const char *const *configs, jn_kafka_topic_cb cb,
                           void *ud) {
    ensure_req *r = req_new(client, ud);
    r->topic = dup_or_null(topic);
    r->like = dup_or_null(like_topic);
    r->configs = dup_strv(configs);
    r->cb = cb;
    /* Fails only without a work callback. */
    if (uv_queue_work(loop, &r->work, ensure_work, ensure_done) != 0) abort();
}

/* ---- a topic's cleanup policy -------------------------------------------------------- */

/* Asks the brokers for topic's cleanup.policy (DescribeConfigs): compacted when it
 * includes "compact". */
static void policy_work(uv_work_t *w) {
    ensure_req *r = w->data;
    if (!r->topic || !*r->topic) {
        fail(r, RD_KAFKA_RESP_ERR__INVALID_ARG, "kafka: which topic's cleanup policy?");
        return;
    }
    if (make_client(r) != 0) return;
    char errstr[512];
    rd_kafka_ConfigResource_t *cr = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, r->topic);
    rd_kafka_AdminOptions_t *opts =
        rd_kafka_AdminOptions_new(r->rk, RD_KAFKA_ADMIN_OP_DESCRIBECONFIGS);
    rd_kafka_AdminOptions_set_request_timeout(opts, METADATA_TIMEOUT_MS, errstr, sizeof errstr);
    rd_kafka_queue_t *q = rd_kafka_queue_new(r->rk);
    rd_kafka_DescribeConfigs(r->rk, &cr, 1, opts, q);
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, METADATA_TIMEOUT_MS + 5000);
    const rd_kafka_DescribeConfigs_result_t *res =
        ev ? rd_kafka_event_DescribeConfigs_result(ev) : NULL;
    size_t n = 0;
    const rd_kafka_ConfigResource_t **rs =
        res ? rd_kafka_DescribeConfigs_result_resources(res, &n) : NULL;
    if (!ev || rd_kafka_event_error(ev) || n != 1) {
        collect_errors(r);
        fail(r,
             ev && rd_kafka_event_error(ev) ? rd_kafka_event_error(ev)
                                            : RD_KAFKA_RESP_ERR__TIMED_OUT,
             "kafka: cannot read the settings of topic \"%s\": %s%s%s", r->topic,
             ev && rd_kafka_event_error(ev) ? rd_kafka_event_error_string(ev) : "no answer",
             r->last_broker_error[0] ? "; last broker error: " : "", r->last_broker_error);
    } else if (rd_kafka_ConfigResource_error(rs[0])) {
        fail(r, rd_kafka_ConfigResource_error(rs[0]), "kafka: topic \"%s\": %s", r->topic,
             rd_kafka_ConfigResource_error_string(rs[0])
                 ? rd_kafka_ConfigResource_error_string(rs[0])
                 : rd_kafka_err2str(rd_kafka_ConfigResource_error(rs[0])));
    } else {
        size_t cnt = 0;
        const rd_kafka_ConfigEntry_t **entries = rd_kafka_ConfigResource_configs(rs[0], &cnt);
        const char *policy = "delete"; /* the broker's default when the entry is absent */
        for (size_t i = 0; i < cnt; i++)
            if (!strcmp(rd_kafka_ConfigEntry_name(entries[i]), "cleanup.policy") &&
                rd_kafka_ConfigEntry_value(entries[i]))
                policy = rd_kafka_ConfigEntry_value(entries[i]);
        r->compacted = strstr(policy, "compact") != NULL;
        succeed(r, 0, "kafka: topic \"%s\" has cleanup.policy=%s", r->topic, policy);
    }
    if (ev) rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_AdminOptions_destroy(opts);
    rd_kafka_ConfigResource_destroy(cr);
    rd_kafka_queue_destroy(r->mainq);
    rd_kafka_destroy(r->rk);
}

static void policy_done(uv_work_t *w, int status) {
    ensure_req *r = w->data;
    (void)status;
    r->policy_cb(r->ud, jn_kafka_code(r->err), r->err ? 0 : r->compacted, r->reason);
    req_free(r);
}

void jn_kafka_topic_compacted(uv_loop_t *loop, const jn_kafka_client_opts *client,
                              const char *topic, jn_kafka_policy_cb cb, void *ud) {
    ensure_req *r = req_new(client, ud);
    r->topic = dup_or_null(topic);
    r->policy_cb = cb;
    if (uv_queue_work(loop, &r->work, policy_work, policy_done) != 0) abort();
}

/* ---- a group's committed offsets ----------------------------------------------------- */

static void committed_work(uv_work_t *w) {
    ensure_req *r = w->data;
    if (make_client(r) != 0) return;
    rd_kafka_resp_err_t e = rd_kafka_committed(r->rk, r->parts, METADATA_TIMEOUT_MS);
    if (e) {
        collect_errors(r);
        fail(r, e, "kafka: cannot read the committed offsets of group \"%s\": %s%s%s", r->group,
             rd_kafka_err2str(e), r->last_broker_error[0] ? "; last broker error: " : "",
             r->last_broker_error);
    } else {
        succeed(r, 0, "kafka: committed offsets of group \"%s\" read", r->group);
    }
    rd_kafka_queue_destroy(r->mainq);
    /* Never subscribed: nothing to leave. */
    rd_kafka_destroy_flags(r->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
}

static void committed_done(uv_work_t *w, int status) {
    ensure_req *r = w->data;
    (void)status;
    r->committed_cb(r->ud, jn_kafka_code(r->err), r->err ? NULL : r->parts, r->reason);
    req_free(r);
}

void jn_kafka_group_committed(uv_loop_t *loop, const jn_kafka_client_opts *client,
                              const char *group, const rd_kafka_topic_partition_list_t *parts,
                              jn_kafka_committed_cb cb, void *ud) {
    ensure_req *r = req_new(client, ud);
    r->group = dup_or_null(group);
    r->parts = rd_kafka_topic_partition_list_copy(parts);
    r->committed_cb = cb;
    if (uv_queue_work(loop, &r->work, committed_work, committed_done) != 0) abort();
}

/* ---- do the brokers take our settings? ----------------------------------------------- */

/* The metadata request is asked in slices so that the errors a login or a handshake got
 * meanwhile are looked at between them: those end the wait, librdkafka would only retry
 * them until the timeout. */
#define CHECK_SLICE_MS 250

static void check_work(uv_work_t *w) {
    ensure_req *r = w->data;
    if (make_client(r) != 0) return;
    uint64_t deadline = uv_hrtime() + (uint64_t)r->timeout_ms * 1000000;
    const char *where = r->brokers ? r->brokers : "from the properties";
    for (;;) {
        const struct rd_kafka_metadata *md = NULL;
        rd_kafka_resp_err_t e = rd_kafka_metadata(r->rk, 0, NULL, &md, CHECK_SLICE_MS);
        if (!e) {
            rd_kafka_metadata_destroy(md);
            succeed(r, 0, "kafka: the brokers at %s answered", where);
            break;
        }
        collect_errors(r);
        const char *hint = jn_kafka_conf_hint(r->last_broker_err);
        if (*hint) {
            fail(r, r->last_broker_err,
                 "kafka: the brokers at %s refuse junction's settings: %s; %s", where,
                 r->last_broker_error, hint);
            break;
        }
        if (uv_hrtime() >= deadline) {
            fail(r, e, "kafka: the brokers at %s did not answer within %d ms: %s%s%s", where,
                 r->timeout_ms, rd_kafka_err2str(e),
                 r->last_broker_error[0] ? "; last broker error: " : "", r->last_broker_error);
            break;
        }
    }
    rd_kafka_queue_destroy(r->mainq);
    rd_kafka_destroy(r->rk);
}

static void check_done(uv_work_t *w, int status) {
    ensure_req *r = w->data;
    (void)status;
    r->check_cb(r->ud, jn_kafka_code(r->err), r->reason);
    req_free(r);
}

void jn_kafka_brokers_check(uv_loop_t *loop, const jn_kafka_client_opts *client, int timeout_ms,
                            jn_kafka_check_cb cb, void *ud) {
    ensure_req *r = req_new(client, ud);
    r->timeout_ms = timeout_ms;
    r->check_cb = cb;
    if (uv_queue_work(loop, &r->work, check_work, check_done) != 0) abort();
}
