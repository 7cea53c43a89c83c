/* jn_redis against a real redis-server that each test starts itself on a free loopback
 * port, in a temporary directory, without persistence (never the shared one on 6379).
 * Covers the general command call (any command, every kind of reply, in order), marks and
 * their TTLs, exists as one EXISTS and an MGET only when some key is there,
 * error replies, a server killed and restarted (with
 * commands in flight, including unread ones, which makes the kernel reset the
 * connection), a server that stops answering, and closing in every state, also from
 * inside callbacks. Every test ends with the loop empty (uv_run returns 0 and
 * uv_loop_close succeeds). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <fcntl.h>
#include <hiredis/hiredis.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "marks.h"
#include "redis.h"
#include "resp.h"

/* The original system's layout: a key per mark. */
#define LAYOUT(ttl) (&(jn_marks_layout){.kind = JN_MARKS_LAYOUT_KEYS, .ttl_s = (ttl)})
#define NKEYS       1000
#define NUNKNOWN    10

#include "redis_server.h"

/* ---- fixture ------------------------------------------------------------------------- */

typedef struct {
    uv_loop_t loop;
    uv_timer_t pulse; /* wakes the loop so that RUN_UNTIL can check its condition */
    jn_redis *r;
    int port;
    char dir[64];
    pid_t pid;
    int ups, downs, closed;
    int close_on_up, close_on_down; /* the state callback closes the client */
    char keys[NKEYS + NUNKNOWN][32];
    const char *kp[NKEYS + NUNKNOWN];
} fx;

typedef struct {
    fx *f;
    int called, err;
    size_t n;
    unsigned char found[NKEYS + NUNKNOWN];
    int close_in_cb; /* the callback closes the client */
    char why[200];
} exists_res;

typedef struct {
    fx *f;
    int called, err;
    int close_in_cb;
    char why[200];
} mark_res;

static void on_done(void *arg) {
    fx *f = arg;
    f->closed++;
    f->r = NULL;
}

static void on_state(void *ud, int connected) {
    fx *f = ud;
    if (connected) {
        f->ups++;
        if (f->close_on_up) jn_redis_close(f->r, on_done, f);
    } else {
        f->downs++;
        if (f->close_on_down) jn_redis_close(f->r, on_done, f);
    }
}

static void on_exists(void *arg, const char *err, const unsigned char *found, size_t n) {
    exists_res *e = arg;
    e->called++;
    e->err = err != NULL;
    snprintf(e->why, sizeof e->why, "%s", err ? err : "");
    e->n = n;
    if (n) memcpy(e->found, found, n);
    if (e->close_in_cb) jn_redis_close(e->f->r, on_done, e->f);
}

static void on_mark(void *arg, const char *err) {
    mark_res *m = arg;
    m->called++;
    m->err = err != NULL;
    snprintf(m->why, sizeof m->why, "%s", err ? err : "");
    if (m->close_in_cb) jn_redis_close(m->f->r, on_done, m->f);
}

static void on_pulse(uv_timer_t *t) {
    (void)t;
}

/* Runs the loop until cond holds or ms pass; evaluates to cond. */
#define RUN_UNTIL(f, cond, ms)                                                                     \
    ({                                                                                             \
        uv_update_time(&(f)->loop);                                                                \
        uint64_t until_ = uv_now(&(f)->loop) + (uint64_t)(ms);                                     \
        while (!(cond) && uv_now(&(f)->loop) < until_)                                             \
            uv_run(&(f)->loop, UV_RUN_ONCE);                                                       \
        (cond);                                                                                    \
    })

static void run_for(fx *f, int ms) {
    (void)RUN_UNTIL(f, 0, ms);
}

static int setup(void **state) {
    fx *f = calloc(1, sizeof *f);
    assert_non_null(f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    uv_timer_init(&f->loop, &f->pulse);
    uv_timer_start(&f->pulse, on_pulse, 5, 5);
    snprintf(f->dir, sizeof f->dir, "/tmp/jn-redis-test-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    f->port = free_port();
    for (int i = 0; i < NKEYS + NUNKNOWN; i++) {
        snprintf(f->keys[i], sizeof f->keys[i], i < NKEYS ? "jn:test:%d" : "jn:unknown:%d", i);
        f->kp[i] = f->keys[i];
    }
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fx *f = *state;
    if (f->r) jn_redis_close(f->r, on_done, f);
    RUN_UNTIL(f, f->closed, 5000);
    assert_int_equal(f->closed, 1);
    uv_close((uv_handle_t *)&f->pulse, NULL);
    /* Nothing of the client may be left: the loop ends at once. */
    assert_int_equal(uv_run(&f->loop, UV_RUN_DEFAULT), 0);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    server_kill(&f->pid);
    char path[128];
    snprintf(path, sizeof path, "%s/redis.log", f->dir);
    unlink(path);
    rmdir(f->dir);
    free(f);
    return 0;
}

/* Starts the server and a connected client. */
static void connect_up(fx *f) {
    f->pid = server_start(f->dir, f->port);
    f->r =
        jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = f->port}, on_state, f);
    assert_non_null(f->r);
    assert_true(RUN_UNTIL(f, f->ups == 1, 3000));
    assert_true(jn_redis_connected(f->r));
}

static long command_calls(int port, const char *cmd) {
    redisContext *c = sync_connect(port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "INFO commandstats");
    assert_non_null(rep);
    char needle[64];
    snprintf(needle, sizeof needle, "cmdstat_%s:calls=", cmd);
    const char *p = strstr(rep->str, needle);
    long calls = p ? strtol(p + strlen(needle), NULL, 10) : 0;
    freeReplyObject(rep);
    redisFree(c);
    return calls;
}

/* mark then exists round trip: every marked key found, the unknown ones not. */
static void mark_and_check(fx *f, int first, int n) {
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp + first, (size_t)n, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.err, 0);
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, NKEYS + NUNKNOWN, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);
    for (int i = first; i < first + n; i++)
        assert_int_equal(e.found[i], 1);
    for (int i = NKEYS; i < NKEYS + NUNKNOWN; i++)
        assert_int_equal(e.found[i], 0);
}

/* ---- tests ----------------------------------------------------------------------------- */

/* Any command, written with resp.h: replies come back in the order sent, each of its
 * kind, through the call embedded in the caller's own struct. */
typedef struct {
    jn_redis_call call;
    int n;
    jn_redis_reply_type kind[8];
    long long integer[8];
    char str[8][32];
    size_t count[8];
    char first[8][32];
} generic_res;

static void on_generic(jn_redis_call *call, const jn_redis_reply *reply) {
    generic_res *g = (generic_res *)call; /* call is the first member */
    int i = g->n++;
    assert_non_null(reply);
    g->kind[i] = jn_redis_reply_kind(reply);
    g->integer[i] =
        jn_redis_reply_kind(reply) == JN_REDIS_INTEGER ? jn_redis_reply_integer(reply) : 0;
    size_t len;
    const char *s = jn_redis_reply_str(reply, &len);
    snprintf(g->str[i], sizeof g->str[i], "%.*s", (int)len, s);
    g->count[i] = jn_redis_reply_count(reply);
    if (g->count[i]) {
        s = jn_redis_reply_str(jn_redis_reply_at(reply, 0), &len);
        snprintf(g->first[i], sizeof g->first[i], "%.*s", (int)len, s);
    }
}

static void send_argv(fx *f, generic_res *g, int argc, const char **argv) {
    char buf[512], *p = jn_resp_put_head(buf, (size_t)argc, argv[0]);
    for (int i = 1; i < argc; i++)
        p = jn_resp_put_bulk(p, argv[i], strlen(argv[i]));
    assert_int_equal(jn_redis_send(f->r, &g->call, buf, (size_t)(p - buf)), 0);
}

static void test_any_command_and_every_reply_kind(void **state) {
    fx *f = *state;
    connect_up(f);
    generic_res g = {.call.cb = on_generic};
    send_argv(f, &g, 3, (const char *[]){"SET", "jn:g:s", "value"});
    send_argv(f, &g, 2, (const char *[]){"GET", "jn:g:s"});
    send_argv(f, &g, 2, (const char *[]){"INCR", "jn:g:n"});
    send_argv(f, &g, 2, (const char *[]){"GET", "jn:g:absent"});
    send_argv(f, &g, 4, (const char *[]){"RPUSH", "jn:g:l", "a", "b"});
    send_argv(f, &g, 4, (const char *[]){"LRANGE", "jn:g:l", "0", "-1"});
    send_argv(f, &g, 2, (const char *[]){"INCR", "jn:g:s"}); /* not a number */
    assert_int_equal(jn_redis_inflight(f->r), 7);
    assert_true(RUN_UNTIL(f, g.n == 7, 3000));
    assert_int_equal(jn_redis_inflight(f->r), 0);
    assert_int_equal(g.kind[0], JN_REDIS_STATUS);
    assert_string_equal(g.str[0], "OK");
    assert_int_equal(g.kind[1], JN_REDIS_STRING);
    assert_string_equal(g.str[1], "value");
    assert_int_equal(g.kind[2], JN_REDIS_INTEGER);
    assert_int_equal(g.integer[2], 1);
    assert_int_equal(g.kind[3], JN_REDIS_NIL);
    assert_int_equal(g.kind[4], JN_REDIS_INTEGER);
    assert_int_equal(g.integer[4], 2);
    assert_int_equal(g.kind[5], JN_REDIS_ARRAY);
    assert_int_equal(g.count[5], 2);
    assert_string_equal(g.first[5], "a");
    assert_int_equal(g.kind[6], JN_REDIS_ERROR);
    assert_non_null(strstr(g.str[6], "not an integer"));
}

static void test_mark_then_exists(void **state) {
    fx *f = *state;
    connect_up(f);

    mark_res m = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, NKEYS, on_mark, &m), 0);
    assert_int_equal(jn_redis_inflight(f->r), NKEYS);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.called, 1);
    assert_int_equal(m.err, 0);
    assert_int_equal(jn_redis_inflight(f->r), 0);

    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, NKEYS + NUNKNOWN, on_exists, &e), 0);
    assert_int_equal(jn_redis_inflight(f->r), 1);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.called, 1);
    assert_int_equal(e.err, 0);
    assert_int_equal(e.n, NKEYS + NUNKNOWN);
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(e.found[i], 1);
    for (int i = NKEYS; i < NKEYS + NUNKNOWN; i++)
        assert_int_equal(e.found[i], 0);
    assert_int_equal(jn_redis_inflight(f->r), 0);

    /* One EXISTS for the 1010 keys, then one MGET as some are there; one SET per mark. */
    assert_int_equal(command_calls(f->port, "exists"), 1);
    assert_int_equal(command_calls(f->port, "mget"), 1);
    assert_int_equal(command_calls(f->port, "set"), NKEYS);

    /* The value and the TTL are really set. */
    redisContext *c = sync_connect(f->port);
    assert_non_null(c);
    for (int i = 0; i < NKEYS; i++) {
        redisReply *rep = redisCommand(c, "TTL %s", f->kp[i]);
        assert_non_null(rep);
        assert_int_equal(rep->type, REDIS_REPLY_INTEGER);
        assert_true(rep->integer > 0 && rep->integer <= 60);
        freeReplyObject(rep);
    }
    redisReply *rep = redisCommand(c, "GET %s", f->kp[0]);
    assert_non_null(rep);
    assert_string_equal(rep->str, "1");
    freeReplyObject(rep);
    rep = redisCommand(c, "TTL %s", f->kp[NKEYS]);
    assert_int_equal(rep->integer, -2); /* no such key */
    freeReplyObject(rep);
    redisFree(c);
}

static void test_empty_batches_and_error_replies(void **state) {
    fx *f = *state;
    connect_up(f);

    /* Nothing to ask: answered at once, nothing sent. */
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 0, on_exists, &e), 0);
    assert_int_equal(e.called, 1);
    assert_int_equal(e.err, 0);
    assert_int_equal(e.n, 0);
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, 0, on_mark, &m), 0);
    assert_int_equal(m.called, 1);
    assert_int_equal(m.err, 0);
    assert_int_equal(jn_redis_inflight(f->r), 0);

    /* An error reply (EX 0 is invalid) fails the batch, and the connection stays. */
    m = (mark_res){.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(0), f->kp, 3, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.called, 1);
    assert_int_not_equal(m.err, 0);
    assert_non_null(strstr(m.why, "marking: ERR invalid expire time"));
    assert_true(jn_redis_connected(f->r));
    assert_int_equal(f->downs, 0);

    /* Keys with spaces and binary-unfriendly characters go as they are (argv). */
    const char *odd[] = {"a key with spaces", "quote\"d", "nl\r\nx"};
    m = (mark_res){.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), odd, 3, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.err, 0);
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), odd, 3, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);
    assert_memory_equal(e.found, "\1\1\1", 3);
}

/* Runs cmd on a connection of its own, logged in as the default user with pass (or
 * none); asserts it was not refused and returns its integer (0 for other replies). */
static long long admin(fx *f, const char *pass, const char *cmd) {
    redisContext *c = sync_connect(f->port);
    assert_non_null(c);
    redisReply *rep;
    if (pass) {
        rep = redisCommand(c, "AUTH %s", pass);
        assert_int_equal(rep->type, REDIS_REPLY_STATUS);
        freeReplyObject(rep);
    }
    rep = redisCommand(c, cmd);
    assert_non_null(rep);
    if (rep->type == REDIS_REPLY_ERROR) fail_msg("%s: %s", cmd, rep->str);
    long long v = rep->type == REDIS_REPLY_INTEGER ? rep->integer : 0;
    freeReplyObject(rep);
    redisFree(c);
    return v;
}

/* A new client with o, run until it is up or 1.5 s passed; returns whether it came up,
 * and closes it. */
static int comes_up(fx *f, jn_redis_opts o, void (*with)(fx *)) {
    o.host = "127.0.0.1";
    o.port = f->port;
    f->ups = f->closed = 0;
    f->r = jn_redis_new(&f->loop, &o, on_state, f);
    int up = RUN_UNTIL(f, f->ups == 1, 1500);
    if (up) assert_true(jn_redis_connected(f->r));
    if (up && with) with(f);
    jn_redis_close(f->r, on_done, f);
    assert_true(RUN_UNTIL(f, f->closed, 3000));
    return up;
}

static void marks_under_the_prefix_only(fx *f) {
    const char *ok[] = {"processed:a", "processed:b"}, *other[] = {"elsewhere:a"};
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), ok, 2, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.err, 0);
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), ok, 2, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);
    assert_memory_equal(e.found, "\1\1", 2);
    m = (mark_res){.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), other, 1, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_non_null(strstr(m.why, "marking: NOPERM"));
    assert_true(jn_redis_connected(f->r)); /* refused, not disconnected */
}

static void marks_one(fx *f) {
    const char *k[] = {"processed:in-db-3"};
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), k, 1, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.err, 0);
}

static void test_login_with_a_password_an_acl_user_and_a_database(void **state) {
    fx *f = *state;
    f->pid = server_start(f->dir, f->port);
    admin(f, NULL,
          "ACL SETUSER marker on >s3cret-marker resetkeys ~processed:* -@all +exists +mget +set");
    admin(f, NULL, "CONFIG SET requirepass s3cret-default");

    /* No password, a wrong one, a wrong user: never up (and retried meanwhile). */
    assert_false(comes_up(f, (jn_redis_opts){0}, NULL));
    assert_false(comes_up(f, (jn_redis_opts){.password = "wrong"}, NULL));
    assert_false(
        comes_up(f, (jn_redis_opts){.username = "nobody", .password = "s3cret-marker"}, NULL));
    assert_false(comes_up(f, (jn_redis_opts){.username = "marker", .password = "wrong"}, NULL));
    assert_int_equal(f->downs, 0); /* never reported up, so never down */

    /* The ACL user: its keys and commands, and a NOPERM reply outside them. */
    assert_true(comes_up(f, (jn_redis_opts){.username = "marker", .password = "s3cret-marker"},
                         marks_under_the_prefix_only));
    /* requirepass and a database other than 0. */
    assert_true(comes_up(f, (jn_redis_opts){.password = "s3cret-default", .db = 3}, marks_one));
    assert_int_equal(admin(f, "s3cret-default", "EXISTS processed:in-db-3"), 0); /* db 0 */
    /* A database the server does not have: refused, never up. */
    assert_false(comes_up(f, (jn_redis_opts){.password = "s3cret-default", .db = 99}, NULL));
    f->r = NULL;
    f->closed = 1; /* teardown's close is done */
}

/* The bucketed layout: a batch of marks is one SADD into the current bucket and one
 * EXPIREAT, of 16-byte members made from the keys' hex; a mark is found for at least
 * ttl and at most 1.5 ttl. */
static void test_bucket_marks_live_between_ttl_and_one_and_a_half(void **state) {
    fx *f = *state;
    connect_up(f);
    const jn_marks_layout b = {
        .kind = JN_MARKS_LAYOUT_BUCKETS, .ttl_s = 2, .prefix_len = strlen("jn:b:")};
    const char *keys[] = {"jn:b:00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff",
                          "jn:b:not-hex", "jn:b:ffeeddccbbaa99887766554433221100"};
    long sadd = command_calls(f->port, "sadd");
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_set(f->r, &b, keys, 2, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.err, 0);
    assert_int_equal(command_calls(f->port, "sadd"), sadd + 1);
    /* The member is the hex's first 128 bits, in binary, in this second's bucket (or the
     * last second's, when the clock ticked meanwhile). */
    redisContext *c = sync_connect(f->port);
    long long found = 0, now = (long long)time(NULL);
    for (long long sec = now; sec >= now - 1; sec--) {
        redisReply *rep = redisCommand(c, "SISMEMBER jn:b:b:%lld %b", sec,
                                       "\x00\x11\x22\x33\x44\x55\x66\x77\x88\x99\xaa\xbb"
                                       "\xcc\xdd\xee\xff",
                                       (size_t)16);
        found += rep->integer;
        freeReplyObject(rep);
    }
    assert_int_equal(found, 1);
    redisFree(c);
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, &b, keys, 3, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);
    assert_memory_equal(e.found, "\1\1\0", 3);
    run_for(f, 1800); /* under ttl: still there */
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, &b, keys, 3, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_memory_equal(e.found, "\1\1\0", 3);
    run_for(f, 1500); /* past 1.5 ttl: gone, to the check and to Redis */
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, &b, keys, 3, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_memory_equal(e.found, "\0\0\0", 3);
}

/* Sets keys[i] for the i where pattern(i) holds, through a separate connection. */
static void set_keys(fx *f, int (*pattern)(int)) {
    redisContext *c = sync_connect(f->port);
    assert_non_null(c);
    for (int i = 0; i < NKEYS + NUNKNOWN; i++) {
        if (!pattern(i)) continue;
        redisReply *rep = redisCommand(c, "SET %s 1", f->kp[i]);
        assert_non_null(rep);
        freeReplyObject(rep);
    }
    redisFree(c);
}

static int every_seventh_and_the_last(int i) {
    return i % 7 == 3 || i == NKEYS + NUNKNOWN - 1;
}

/* One ACL rule for the user every connection uses. */
static void acl(fx *f, const char *rule) {
    redisContext *c = sync_connect(f->port);
    assert_non_null(c);
    redisReply *rep = redisCommand(c, "ACL SETUSER default %s", rule);
    assert_non_null(rep);
    assert_int_equal(rep->type, REDIS_REPLY_STATUS);
    freeReplyObject(rep);
    redisFree(c);
}

static void test_exists_none_there_is_one_command(void **state) {
    fx *f = *state;
    connect_up(f);
    exists_res e = {.f = f};
    memset(e.found, 0xff, sizeof e.found);
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, NKEYS + NUNKNOWN, on_exists, &e), 0);
    assert_int_equal(jn_redis_inflight(f->r), 1);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);
    assert_int_equal(e.n, NKEYS + NUNKNOWN);
    for (int i = 0; i < NKEYS + NUNKNOWN; i++)
        assert_int_equal(e.found[i], 0);
    assert_int_equal(jn_redis_inflight(f->r), 0);
    assert_int_equal(command_calls(f->port, "exists"), 1);
    assert_int_equal(command_calls(f->port, "mget"), 0);
}

static void test_exists_some_there_gives_each_key(void **state) {
    fx *f = *state;
    connect_up(f);
    set_keys(f, every_seventh_and_the_last);
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, NKEYS + NUNKNOWN, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.called, 1);
    assert_int_equal(e.err, 0);
    assert_int_equal(e.n, NKEYS + NUNKNOWN);
    for (int i = 0; i < NKEYS + NUNKNOWN; i++)
        assert_int_equal(e.found[i], every_seventh_and_the_last(i));
    assert_int_equal(jn_redis_inflight(f->r), 0);
    assert_int_equal(command_calls(f->port, "exists"), 1);
    assert_int_equal(command_calls(f->port, "mget"), 1);

    /* The same key twice counts twice in EXISTS; each is still answered. */
    const char *twice[] = {f->kp[3], f->kp[3], f->kp[4]};
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), twice, 3, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);
    assert_memory_equal(e.found, "\1\1\0", 3);
}

static void test_refused_commands_fail_the_batch(void **state) {
    fx *f = *state;
    connect_up(f);
    set_keys(f, every_seventh_and_the_last);

    /* MGET refused: a batch with a key there cannot tell which, a batch without any can. */
    acl(f, "-mget");
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, NKEYS, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.called, 1);
    assert_int_not_equal(e.err, 0);
    for (int i = 0; i < NKEYS; i++)
        assert_int_equal(e.found[i], 0);
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp + NKEYS, 4, on_exists, &e),
                     0); /* none */
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);

    /* EXISTS refused. */
    acl(f, "+mget");
    acl(f, "-exists");
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 3, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_not_equal(e.err, 0);

    /* SET refused: every one fails, the callback runs once. */
    acl(f, "+exists");
    acl(f, "-set");
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, NKEYS, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called && jn_redis_inflight(f->r) == 0, 3000));
    assert_int_equal(m.called, 1);
    assert_int_not_equal(m.err, 0);
    /* Only the last one refused. */
    acl(f, "+set");
    acl(f, "resetkeys");
    acl(f, "~jn:test:*");
    const char *last_refused[] = {f->kp[0], f->kp[1], "jn:elsewhere"};
    m = (mark_res){.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), last_refused, 3, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_not_equal(m.err, 0);

    /* None of that costs the connection. */
    assert_true(jn_redis_connected(f->r));
    assert_int_equal(f->downs, 0);
    acl(f, "allkeys");
    m = (mark_res){.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, NKEYS, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, m.called, 3000));
    assert_int_equal(m.err, 0);
}

static void on_mark_kill_server(void *arg, const char *err) {
    mark_res *m = arg;
    m->called++;
    m->err = err != NULL;
    server_kill(&m->f->pid);
}

/* The server dies after answering EXISTS and before MGET: the check fails. The replies to
 * EXISTS and to the mark sent with it come in one read, so MGET is still in the client's
 * output buffer when the mark's callback kills the server. */
static void test_server_dies_between_exists_and_mget(void **state) {
    fx *f = *state;
    connect_up(f);
    set_keys(f, every_seventh_and_the_last);
    exists_res e = {.f = f};
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 10, on_exists, &e), 0);
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp + 20, 10, on_mark_kill_server, &m), 0);
    assert_true(RUN_UNTIL(f, e.called && f->downs == 1, 3000));
    assert_int_equal(m.called, 1);
    assert_int_equal(m.err, 0);
    assert_int_equal(e.called, 1);
    assert_int_not_equal(e.err, 0);
    assert_int_equal(jn_redis_inflight(f->r), 0);
    assert_false(jn_redis_connected(f->r));
}

static void test_not_connected_then_server_appears(void **state) {
    fx *f = *state;
    /* Nobody listens on the port yet. */
    f->r =
        jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = f->port}, on_state, f);
    assert_non_null(f->r);
    assert_false(jn_redis_connected(f->r));
    exists_res e = {.f = f};
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 3, on_exists, &e), -1);
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, 3, on_mark, &m), -1);
    run_for(f, 300);
    assert_int_equal(e.called + m.called, 0);
    assert_int_equal(f->ups + f->downs, 0); /* never up, so never reported down */
    assert_false(jn_redis_connected(f->r));

    f->pid = server_start(f->dir, f->port);
    assert_true(RUN_UNTIL(f, f->ups == 1, 4000)); /* the backoff stays under 2 s */
    assert_int_equal(f->downs, 0);
    mark_and_check(f, 0, 10);
}

static void test_server_killed_and_restarted(void **state) {
    fx *f = *state;
    connect_up(f);
    mark_and_check(f, 0, NKEYS);

    /* Killed right before a call: the client has not noticed yet, so the call is taken
     * and fails in its callback. */
    server_kill(&f->pid);
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, NKEYS, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called && f->downs == 1, 3000));
    assert_int_equal(e.called, 1);
    assert_int_not_equal(e.err, 0);
    assert_int_equal(f->downs, 1);
    assert_false(jn_redis_connected(f->r));
    assert_int_equal(jn_redis_inflight(f->r), 0);
    /* While it is down, calls are refused. */
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 3, on_exists, &e), -1);
    run_for(f, 250); /* a few failed reconnects */
    assert_int_equal(f->downs, 1);
    assert_int_equal(e.called, 0);

    /* Restarted on the same port: the client comes back by itself (empty server). */
    f->pid = server_start(f->dir, f->port);
    assert_true(RUN_UNTIL(f, f->ups == 2, 4000));
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 3, on_exists, &e), 0);
    assert_true(RUN_UNTIL(f, e.called, 3000));
    assert_int_equal(e.err, 0);
    assert_memory_equal(e.found, "\0\0\0", 3);
    mark_and_check(f, 0, 100);

    /* Killed with commands on the wire that it never read: the kernel resets the
     * connection (POLLERR on our side), and every command still fails. */
    kill(f->pid, SIGSTOP);
    mark_res m = {.f = f};
    e = (exists_res){.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, NKEYS, on_mark, &m), 0);
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, NKEYS, on_exists, &e), 0);
    run_for(f, 100);
    assert_int_equal(m.called + e.called, 0);
    assert_int_equal(jn_redis_inflight(f->r), NKEYS + 1);
    server_kill(&f->pid);
    assert_true(RUN_UNTIL(f, m.called && e.called && f->downs == 2, 3000));
    assert_int_not_equal(m.err, 0);
    assert_int_not_equal(e.err, 0);
    assert_int_equal(jn_redis_inflight(f->r), 0);

    f->pid = server_start(f->dir, f->port);
    assert_true(RUN_UNTIL(f, f->ups == 3, 4000));
    mark_and_check(f, 0, NKEYS);
    assert_int_equal(f->downs, 2);
}

static void test_stuck_server_times_out(void **state) {
    fx *f = *state;
    connect_up(f);
    kill(f->pid, SIGSTOP);
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 10, on_exists, &e), 0);
    run_for(f, 1000);
    assert_int_equal(e.called, 0);
    /* The watchdog gives up after 5 s without a reply. */
    assert_true(RUN_UNTIL(f, e.called, 8000));
    assert_int_not_equal(e.err, 0);
    assert_int_equal(f->downs, 1);
    /* The kernel still completes connects for the stopped server (listen backlog), so
     * the client may already count as up again; once it runs, commands work. */
    kill(f->pid, SIGCONT);
    assert_true(RUN_UNTIL(f, jn_redis_connected(f->r), 4000));
    mark_and_check(f, 0, 10);
}

static void test_close_with_commands_in_flight(void **state) {
    fx *f = *state;
    connect_up(f);
    kill(f->pid, SIGSTOP); /* so that nothing gets answered */
    mark_res m = {.f = f};
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, 100, on_mark, &m), 0);
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 100, on_exists, &e), 0);
    run_for(f, 50);
    assert_int_equal(m.called + e.called, 0);
    jn_redis_close(f->r, on_done, f);
    assert_int_equal(m.called, 1);
    assert_int_not_equal(m.err, 0);
    assert_int_equal(e.called, 1);
    assert_int_not_equal(e.err, 0);
    assert_int_equal(f->closed, 0); /* done waits for the handles' close callbacks */
    assert_true(RUN_UNTIL(f, f->closed, 1000));
    assert_int_equal(f->downs, 0); /* a close is not reported as a lost connection */
    kill(f->pid, SIGCONT);
}

static void test_close_inside_reply_callback(void **state) {
    fx *f = *state;
    connect_up(f);
    /* Both replies come in one read; closing in the first fails the second. */
    exists_res e = {.f = f, .close_in_cb = 1};
    mark_res m = {.f = f};
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 10, on_exists, &e), 0);
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, 100, on_mark, &m), 0);
    assert_true(RUN_UNTIL(f, f->closed, 3000));
    assert_int_equal(e.called, 1);
    assert_int_equal(e.err, 0);
    assert_int_equal(m.called, 1);
    assert_int_not_equal(m.err, 0);
}

static void test_close_inside_mark_callback_of_a_dying_connection(void **state) {
    fx *f = *state;
    connect_up(f);
    kill(f->pid, SIGSTOP);
    mark_res m = {.f = f, .close_in_cb = 1};
    exists_res e = {.f = f};
    assert_int_equal(jn_marks_set(f->r, LAYOUT(60), f->kp, 100, on_mark, &m), 0);
    assert_int_equal(jn_marks_exists(f->r, LAYOUT(60), f->kp, 100, on_exists, &e), 0);
    run_for(f, 50);
    server_kill(&f->pid);
    assert_true(RUN_UNTIL(f, f->closed, 3000));
    assert_int_not_equal(m.err, 0);
    assert_int_equal(e.called, 1);
    assert_int_not_equal(e.err, 0);
    assert_int_equal(f->downs, 0);
}

static void test_close_from_state_callbacks(void **state) {
    fx *f = *state;
    f->close_on_up = 1; /* closing inside hiredis' connect callback */
    f->pid = server_start(f->dir, f->port);
    f->r =
        jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = f->port}, on_state, f);
    assert_true(RUN_UNTIL(f, f->closed, 3000));
    assert_int_equal(f->ups, 1);

    /* Again, closing when told of the loss. */
    f->close_on_up = 0;
    f->closed = 0;
    f->close_on_down = 1;
    f->r =
        jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = f->port}, on_state, f);
    assert_true(RUN_UNTIL(f, f->ups == 2, 3000));
    server_kill(&f->pid);
    assert_true(RUN_UNTIL(f, f->closed, 3000));
    assert_int_equal(f->downs, 1);
}

static void test_close_while_connecting_or_waiting(void **state) {
    fx *f = *state;
    /* Waiting for the next reconnect (nobody listens). */
    f->r =
        jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = f->port}, on_state, f);
    run_for(f, 150);
    jn_redis_close(f->r, on_done, f);
    assert_true(RUN_UNTIL(f, f->closed, 1000));

    /* Right after new: the connect is under way. */
    f->pid = server_start(f->dir, f->port);
    f->closed = 0;
    f->r =
        jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = f->port}, on_state, f);
    jn_redis_close(f->r, on_done, f);
    assert_true(RUN_UNTIL(f, f->closed, 1000));
    assert_int_equal(f->ups, 0);

    /* A listener whose accept queue is full: the kernel drops our SYNs, so the connect
     * neither succeeds nor fails until the client's connect timeout (2 s) gives up. */
    f->closed = 0;
    int lfd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    assert_int_equal(bind(lfd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(listen(lfd, 0), 0);
    socklen_t len = sizeof a;
    getsockname(lfd, (struct sockaddr *)&a, &len);
    int fill[4];
    for (int i = 0; i < 4; i++) {
        fill[i] = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
        connect(fill[i], (struct sockaddr *)&a, sizeof a);
    }
    usleep(50000);
    f->r = jn_redis_new(&f->loop, &(jn_redis_opts){.host = "127.0.0.1", .port = ntohs(a.sin_port)},
                        on_state, f);
    run_for(f, 2500);
    assert_false(jn_redis_connected(f->r));
    jn_redis_close(f->r, on_done, f);
    assert_true(RUN_UNTIL(f, f->closed, 1000));
    for (int i = 0; i < 4; i++)
        close(fill[i]);
    close(lfd);
}

int main(void) {
    signal(SIGPIPE, SIG_IGN); /* as main() does: hiredis writes with write(2) */
    /* tools/setup installs it: a machine without it fails here rather than pass unrun. */
    if (system("command -v redis-server >/dev/null 2>&1") != 0) {
        fprintf(stderr, "redis-server not installed: run tools/setup\n");
        return 1;
    }
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_any_command_and_every_reply_kind, setup, teardown),
        cmocka_unit_test_setup_teardown(test_mark_then_exists, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bucket_marks_live_between_ttl_and_one_and_a_half,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_login_with_a_password_an_acl_user_and_a_database,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_empty_batches_and_error_replies, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_none_there_is_one_command, setup, teardown),
        cmocka_unit_test_setup_teardown(test_exists_some_there_gives_each_key, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_commands_fail_the_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_dies_between_exists_and_mget, setup, teardown),
        cmocka_unit_test_setup_teardown(test_not_connected_then_server_appears, setup, teardown),
        cmocka_unit_test_setup_teardown(test_server_killed_and_restarted, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stuck_server_times_out, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_with_commands_in_flight, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_reply_callback, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_inside_mark_callback_of_a_dying_connection,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_from_state_callbacks, setup, teardown),
        cmocka_unit_test_setup_teardown(test_close_while_connecting_or_waiting, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
