/* De-duplication (dedupe.c) over the real Redis glue against a private redis-server
 * (redis_server.h): checks answered in order across batches, marks written with their
 * TTL and seen by later checks, nothing answered while Redis is down (checks and marks
 * wait and go out once it is back), a Redis that refuses the commands (a missing ACL
 * permission: nothing answered, the reason kept, retried until granted), and freeing
 * with work queued or in flight. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dedupe.h"
#include "redis_server.h"

#define N 1200 /* more than two check batches */

/* Every test runs in both layouts of the marks (main runs the group twice). */
static jn_marks_layout_kind LAYOUT;

typedef struct {
    uv_loop_t loop;
    uv_timer_t pulse;
    int port;
    char dir[64];
    pid_t pid;
    jn_redis *r;
    jn_dedupe *d;
    int up;
    char keys[N][40];
    int item[N];
    int checked, marked, seen, order_ok, last;
    int closed;
} fx;

static void on_state(void *ud, int connected) {
    fx *f = ud;
    f->up = connected;
    if (connected && f->d) jn_dedupe_resume(f->d);
}

static void on_checked(void *ud, void *item, int seen) {
    fx *f = ud;
    int i = *(int *)item;
    if (i != f->last + 1) {
        if (f->order_ok) fprintf(stderr, "order: %d after %d\n", i, f->last);
        f->order_ok = 0;
    }
    f->last = i;
    f->checked++;
    f->seen += seen;
}

static void on_marked(void *ud, void *item) {
    fx *f = ud;
    (void)item;
    f->marked++;
}

static void on_pulse(uv_timer_t *t) {
    (void)t;
}

/* Runs the loop until cond holds or 10 s passed. */
#define RUN_UNTIL(f, cond)                                                                         \
    do {                                                                                           \
        for (int i_ = 0; i_ < 1000 && !(cond); i_++)                                               \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        assert_true(cond);                                                                         \
    } while (0)

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->pulse);
    uv_timer_start(&f->pulse, on_pulse, 10, 10);
    snprintf(f->dir, sizeof f->dir, "/tmp/jn_dedupe_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->port = free_port();
    f->pid = server_start(f->dir, f->port);
    f->r =
        jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = f->port}, on_state, f);
    static const jn_dedupe_cbs cbs = {.on_checked = on_checked, .on_marked = on_marked};
    jn_marks_layout layout = {.kind = LAYOUT, .ttl_s = 60, .prefix_len = strlen("processed:test:")};
    f->d = jn_dedupe_new(&f->loop, f->r, &layout, &cbs, f);
    for (int i = 0; i < N; i++) {
        snprintf(f->keys[i], sizeof f->keys[i], "processed:test:%d", i);
        f->item[i] = i;
    }
    f->order_ok = 1;
    f->last = -1;
    RUN_UNTIL(f, f->up);
    *state = f;
    return 0;
}

static void on_closed(void *arg) {
    ((fx *)arg)->closed = 1;
}

static int teardown(void **state) {
    fx *f = *state;
    if (f->d) jn_dedupe_free(f->d);
    jn_redis_close(f->r, on_closed, f);
    uv_close((uv_handle_t *)&f->pulse, NULL);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(f->closed, 1);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    server_kill(&f->pid);
    char log[128];
    snprintf(log, sizeof log, "%s/redis.log", f->dir);
    remove(log);
    rmdir(f->dir);
    free(f);
    return 0;
}

static void check_all(fx *f) {
    f->checked = f->seen = 0;
    f->last = -1;
    f->order_ok = 1;
    for (int i = 0; i < N; i++)
        jn_dedupe_check(f->d, &f->item[i], f->keys[i]);
}

/* Whether keys[i] is marked, read from Redis directly in the layout under test; and the
 * TTL of the key holding it (-2 when there is none). */
static int marked_in_redis(fx *f, int i, long long *ttl) {
    redisContext *c = sync_connect(f->port);
    assert_non_null(c);
    redisReply *rep;
    int found = 0;
    *ttl = -2;
    if (LAYOUT == JN_MARKS_LAYOUT_KEYS) {
        rep = redisCommand(c, "EXISTS %s", f->keys[i]);
        found = rep->integer == 1;
        freeReplyObject(rep);
        rep = redisCommand(c, "TTL %s", f->keys[i]);
        *ttl = rep->integer;
        freeReplyObject(rep);
    } else {
        /* ttl 60: buckets of 30 s, the mark is in the current one or the one before */
        long long now = (long long)time(NULL);
        for (long long b = now / 30; b >= now / 30 - 1 && !found; b--) {
            const char *field = f->keys[i] + strlen("processed:test:");
            rep = redisCommand(c, "SISMEMBER processed:test:b:%lld %s", b, field);
            found = rep->integer == 1;
            freeReplyObject(rep);
            if (found) {
                rep = redisCommand(c, "TTL processed:test:b:%lld", b);
                *ttl = rep->integer;
                freeReplyObject(rep);
            }
        }
    }
    redisFree(c);
    return found;
}

static void test_checks_in_order_then_marks_are_seen(void **state) {
    fx *f = *state;
    check_all(f);
    RUN_UNTIL(f, f->checked == N);
    assert_true(f->order_ok);
    assert_int_equal(f->seen, 0);
    assert_int_equal(jn_dedupe_pending(f->d), 0);
    /* marks for every other key */
    for (int i = 0; i < N; i += 2)
        jn_dedupe_mark(f->d, &f->item[i], f->keys[i]);
    RUN_UNTIL(f, f->marked == N / 2);
    long long ttl;
    assert_true(marked_in_redis(f, 0, &ttl));
    /* keys: the TTL; buckets: ttl after the bucket (30 s) ends, so at least ttl */
    if (LAYOUT == JN_MARKS_LAYOUT_KEYS)
        assert_true(ttl > 0 && ttl <= 60);
    else
        assert_true(ttl >= 60 && ttl <= 90);
    assert_false(marked_in_redis(f, 1, &ttl));
    check_all(f);
    RUN_UNTIL(f, f->checked == N);
    assert_true(f->order_ok);
    assert_int_equal(f->seen, N / 2);
}

static void test_a_batch_needing_mget_keeps_its_place(void **state) {
    fx *f = *state;
    /* Keys of the first batch are marked: its EXISTS finds some and an MGET follows, so
     * Redis answers the second batch first. The owner still gets them in order. */
    for (int i = 0; i < 10; i++)
        jn_dedupe_mark(f->d, &f->item[i], f->keys[i]);
    RUN_UNTIL(f, f->marked == 10);
    check_all(f);
    RUN_UNTIL(f, f->checked == N);
    assert_true(f->order_ok);
    assert_int_equal(f->seen, 10);
}

static void test_nothing_is_answered_while_redis_is_down(void **state) {
    fx *f = *state;
    server_kill(&f->pid);
    RUN_UNTIL(f, !f->up);
    check_all(f);
    for (int i = 0; i < 10; i++)
        jn_dedupe_mark(f->d, &f->item[i], f->keys[i]);
    for (int i = 0; i < 50; i++) /* half a second of loop turns */
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->checked, 0); /* never passed unchecked */
    assert_int_equal(f->marked, 0);
    assert_int_equal(jn_dedupe_pending(f->d), N + 10);
    f->pid = server_start(f->dir, f->port);
    RUN_UNTIL(f, f->checked == N && f->marked == 10);
    assert_true(f->order_ok);
    long long ttl;
    assert_true(marked_in_redis(f, 9, &ttl));
}

static void test_free_with_work_queued_and_in_flight(void **state) {
    fx *f = *state;
    check_all(f); /* two batches go out at once, the rest waits */
    for (int i = 0; i < 10; i++)
        jn_dedupe_mark(f->d, &f->item[i], f->keys[i]);
    jn_dedupe_free(f->d);
    f->d = NULL;
    uv_run(&f->loop, UV_RUN_NOWAIT);
    /* answers of batches already sent may still come in: none is reported */
    for (int i = 0; i < 20; i++)
        uv_run(&f->loop, UV_RUN_ONCE);
    assert_int_equal(f->checked, 0);
    assert_int_equal(f->marked, 0);
}

/* Runs one command on a connection of its own (the default user's). */
static void admin(fx *f, const char *cmd) {
    redisContext *c = sync_connect(f->port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, cmd);
    assert_non_null(rep);
    assert_int_not_equal(rep->type, REDIS_REPLY_ERROR);
    freeReplyObject(rep);
    redisFree(c);
}

/* How many times Redis refused the client a command named object (lower case), from the
 * server's ACL LOG. */
static long long refusals(fx *f, const char *object) {
    redisContext *c = sync_connect(f->port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "ACL LOG");
    assert_non_null(rep);
    long long n = 0;
    for (size_t i = 0; rep->type == REDIS_REPLY_ARRAY && i < rep->elements; i++) {
        const redisReply *e = rep->element[i];
        long long count = 0;
        int match = 0;
        for (size_t k = 0; e->type == REDIS_REPLY_ARRAY && k + 1 < e->elements; k += 2) {
            const char *key = e->element[k]->str;
            const redisReply *v = e->element[k + 1];
            if (key && !strcmp(key, "count")) count = v->integer;
            if (key && !strcmp(key, "object") && v->str && !strcmp(v->str, object)) match = 1;
        }
        if (match) n += count;
    }
    freeReplyObject(rep);
    redisFree(c);
    return n;
}

/* Runs the loop for at most 10 s until the dedupe reported a refusal and Redis then refused
 * object again: the retry after the dedupe's pause (RETRY_MS) was refused too. By then a
 * command let through, or a result reported though refused, would have shown. (One try
 * may send object many times, one per key: the count must grow after the error.) */
static void run_until_refused_again(fx *f, const char *object) {
    uv_update_time(&f->loop);
    uint64_t until = uv_now(&f->loop) + 10000;
    while (!jn_dedupe_error(f->d) && uv_now(&f->loop) < until)
        uv_run(&f->loop, UV_RUN_ONCE); /* the pulse timer ticks every 10 ms */
    assert_non_null(jn_dedupe_error(f->d));
    long long first = refusals(f, object), n;
    assert_true(first > 0);
    while ((n = refusals(f, object)) == first && uv_now(&f->loop) < until)
        for (int i = 0; i < 5; i++)
            uv_run(&f->loop, UV_RUN_ONCE);
    if (n == first) fail_msg("Redis refused %s no more after the first try in 10 s", object);
}

static void test_refused_commands_wait_until_permitted(void **state) {
    fx *f = *state;
    /* ACL changes apply to connections already open, the client's included. */
    admin(f, "ACL SETUSER default -exists -smismember");
    check_all(f);
    run_until_refused_again(f, LAYOUT == JN_MARKS_LAYOUT_KEYS ? "exists" : "smismember");
    assert_int_equal(f->checked, 0);
    assert_non_null(jn_dedupe_error(f->d));
    assert_non_null(strstr(jn_dedupe_error(f->d), LAYOUT == JN_MARKS_LAYOUT_KEYS
                                                      ? "EXISTS: NOPERM"
                                                      : "SMISMEMBER: NOPERM"));
    assert_int_equal(jn_dedupe_pending(f->d), N);
    admin(f, "ACL SETUSER default +exists +smismember");
    RUN_UNTIL(f, f->checked == N);
    assert_true(f->order_ok);
    assert_int_equal(f->seen, 0);
    assert_null(jn_dedupe_error(f->d));

    admin(f, "ACL SETUSER default -set -sadd");
    for (int i = 0; i < N; i++)
        jn_dedupe_mark(f->d, &f->item[i], f->keys[i]);
    run_until_refused_again(f, LAYOUT == JN_MARKS_LAYOUT_KEYS ? "set" : "sadd");
    assert_int_equal(f->marked, 0);
    assert_non_null(strstr(jn_dedupe_error(f->d), "marking: NOPERM"));
    admin(f, "ACL SETUSER default +set +sadd");
    RUN_UNTIL(f, f->marked == N);
    assert_null(jn_dedupe_error(f->d));
    check_all(f);
    RUN_UNTIL(f, f->checked == N);
    assert_int_equal(f->seen, N);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_checks_in_order_then_marks_are_seen, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_batch_needing_mget_keeps_its_place, setup, teardown),
        cmocka_unit_test_setup_teardown(test_nothing_is_answered_while_redis_is_down, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_free_with_work_queued_and_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_commands_wait_until_permitted, setup,
                                        teardown),
    };
    LAYOUT = JN_MARKS_LAYOUT_KEYS;
    int failed = cmocka_run_group_tests_name("keys", tests, NULL, NULL);
    LAYOUT = JN_MARKS_LAYOUT_BUCKETS;
    return failed + cmocka_run_group_tests_name("buckets", tests, NULL, NULL);
}
