/* The host's join (join.c, declared by scripts/join.lua) against the stock merge script
 * it replaces (scripts/merge.lua): the same random sequences of customers, products,
 * replays, revocations and timer calls go through both transforms, and every call must
 * give the same records (as a set: the order of the customers a product change re-emits
 * is the order of a hash table), the same held flag and the same id. Then the join's own
 * cases: bad records, its memory per record, a reload that changes its shape, kept texts
 * packed and unpacked byte for byte. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "buf.h"
#include "join.h"
#include "json.h"
#include "script.h"
#include "transform.h"

static const char *const inputs[] = {"customers", "products"};
static const char *const sinks[] = {"analytics"};
static const char *const sink_keys[] = {NULL};

#define MAX_OUT 256

/* What one call gave. */
typedef struct {
    char begin[64];
    int begins, held, rc;
    int n;
    char *recs[MAX_OUT];
    char ids[MAX_OUT][64];
} result;

typedef struct {
    uv_loop_t loop;
    jn_script_host *host;
    jn_transform *lua, *native;
    char dir[64];
} fixture;

static jn_transform *load(fixture *f, const char *name, const char *path, int hold_ms, int hold_max,
                          char **err) {
    jn_transform_opts o = {.pipeline = name,
                           .path = path,
                           .streams = inputs,
                           .nstreams = 1,
                           .tables = inputs + 1,
                           .ntables = 1,
                           .sinks = sinks,
                           .sink_keys = sink_keys,
                           .nsinks = 1,
                           .hold_ms = hold_ms,
                           .hold_max = hold_max};
    (void)f;
    return jn_transform_new(f->host, &o, err);
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    assert_int_equal(uv_loop_init(&f->loop), 0);
    jn_script_opts o = {.instruction_limit = 100000000};
    f->host = jn_script_host_new(&f->loop, &o);
    assert_non_null(f->host);
    snprintf(f->dir, sizeof f->dir, "/tmp/jn_join_test_XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    jn_transform_free(f->lua);
    jn_transform_free(f->native);
    jn_script_host_close(f->host);
    uv_run(&f->loop, UV_RUN_DEFAULT);
    assert_int_equal(uv_loop_close(&f->loop), 0);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", f->dir);
    assert_int_equal(system(cmd), 0);
    free(f);
    return 0;
}

static void on_begin(void *ud, const char *id) {
    result *r = ud;
    r->begins++;
    snprintf(r->begin, sizeof r->begin, "%s", id);
}

/* The record, with the time it was merged made the same for both. */
static void on_emit(void *ud, const jn_transform_record *rec) {
    result *r = ud;
    assert_true(r->n < MAX_OUT);
    char *s = malloc(rec->len + 1);
    memcpy(s, rec->json, rec->len);
    s[rec->len] = '\0';
    char *at = strstr(s, "\"merged_at\":\"");
    if (at) {
        char *v = at + strlen("\"merged_at\":\"");
        assert_true(strlen(v) >= 25 && v[24] == '"');
        memset(v, 'T', 24);
    }
    snprintf(r->ids[r->n], sizeof r->ids[r->n], "%s", rec->id ? rec->id : "(none)");
    r->recs[r->n++] = s;
}

static const jn_transform_cbs cbs = {.begin = on_begin, .emit = on_emit};

static void clear(result *r) {
    for (int i = 0; i < r->n; i++)
        free(r->recs[i]);
    memset(r, 0, sizeof *r);
}

static int by_text(const void *a, const void *b) {
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Fails unless both transforms gave the same. */
static void same(result *a, result *b, const char *what, int step) {
    qsort(a->recs, (size_t)a->n, sizeof *a->recs, by_text);
    qsort(b->recs, (size_t)b->n, sizeof *b->recs, by_text);
    int ok = a->rc == b->rc && a->held == b->held && a->n == b->n && a->begins == b->begins &&
             !strcmp(a->begin, b->begin);
    for (int i = 0; ok && i < a->n; i++)
        ok = !strcmp(a->recs[i], b->recs[i]);
    if (!ok) {
        fprintf(stderr,
                "step %d, %s: merge.lua rc %d held %d begin '%s' %d records; join rc %d "
                "held %d begin '%s' %d records\n",
                step, what, a->rc, a->held, a->begin, a->n, b->rc, b->held, b->begin, b->n);
        for (int i = 0; i < a->n || i < b->n; i++)
            fprintf(stderr, "  lua:  %s\n  join: %s\n", i < a->n ? a->recs[i] : "-",
                    i < b->n ? b->recs[i] : "-");
        fail();
    }
}

static uint64_t rng = 88172645463325252ULL;
static unsigned rnd(unsigned n) {
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (unsigned)(rng % n);
}

/* A customer as JSON: canonical, or now and then with its keys out of order. */
static void customer(jn_sb *s, int version) {
    int id = 1 + (int)rnd(30);
    s->len = 0;
    jn_sb sorted;
    jn_sb_init(&sorted);
    jn_sb ids;
    jn_sb_init(&ids);
    int kind = (int)rnd(20);
    if (kind == 0) {
        jn_sb_puts(&ids, "\"3\""); /* not an array: references nothing */
    } else if (kind != 1) {        /* kind 1: no productIds at all */
        jn_sb_putc(&ids, '[');
        int n = (int)rnd(4);
        for (int i = 0; i < n; i++) {
            int p = (int)rnd(50); /* products 40-49 never come: held, then released */
            if (rnd(8) == 0)
                jn_sb_printf(&ids, "%s%d", i ? "," : "", p); /* a number */
            else
                jn_sb_printf(&ids, "%s\"%d\"", i ? "," : "", p);
        }
        jn_sb_putc(&ids, ']');
    }
    int extra = (int)rnd(10);
    /* sorted keys: email, id, [missing_product_ids], name, [productIds], [products], zeta */
    jn_sb_printf(s, "{\"email\":\"c%d@example.com\",\"id\":%d", id, id);
    if (extra == 1) jn_sb_puts(s, ",\"missing_product_ids\":[\"x\"]");
    jn_sb_printf(s, ",\"name\":\"Customer %d v%d\"", id, version);
    if (ids.len) jn_sb_printf(s, ",\"productIds\":%s", ids.data);
    if (extra == 2) jn_sb_puts(s, ",\"products\":{\"old\":true}");
    if (extra == 3) jn_sb_puts(s, ",\"zeta\":{\"a\":[1,2,{\"b\":null}]}");
    jn_sb_putc(s, '}');
    if (rnd(10) == 0) { /* the same, keys out of order */
        jn_sb_printf(&sorted,
                     "{\"name\":\"Customer %d v%d\",\"id\":%d,\"email\":\"c%d@example.com\"", id,
                     version, id, id);
        if (ids.len) jn_sb_printf(&sorted, ",\"productIds\":%s", ids.data);
        jn_sb_putc(&sorted, '}');
        s->len = 0;
        jn_sb_append(s, sorted.data, sorted.len);
    }
    jn_sb_free(&sorted);
    jn_sb_free(&ids);
}

static void product(jn_sb *s) {
    static const char *const names[] = {"Laptop", "Mouse", "Desk"};
    s->len = 0;
    int p = (int)rnd(40);
    jn_sb_printf(s, "{\"id\":\"%d\",\"name\":\"%s\"", p, names[rnd(3)]);
    if (rnd(5) == 0) jn_sb_puts(s, ",\"price\":12");
    jn_sb_printf(s, ",\"stock\":%u}", rnd(3));
}

static void call(jn_transform *t, int input, const jn_sb *s, result *r) {
    jn_transform_call_info info = {
        .input = input, .partition = 0, .canonical = jn_json_is_canonical(s->data, s->len)};
    long ms;
    char *reason = NULL;
    r->rc = jn_transform_call(t, &info, s->data, s->len, &cbs, r, &r->held, &ms, &reason);
    if (r->rc) fail_msg("%s", reason);
}

/* hold_max 4 and a long hold_ms: releases past hold_max, not by time, so both see the
 * same whatever the clock. */
static void run_both(fixture *f, int steps) {
    char *err = NULL;
    f->lua = load(f, "lua", "scripts/merge.lua", 3600000, 4, &err);
    if (!f->lua) fail_msg("%s", err);
    f->native = load(f, "native", "scripts/join.lua", 3600000, 4, &err);
    if (!f->native) fail_msg("%s", err);
    jn_sb s;
    jn_sb_init(&s);
    result a = {0}, b = {0};
    long records = 0, held = 0, multi = 0;
    for (int step = 0; step < steps; step++) {
        int what = (int)rnd(100);
        const char *kind;
        if (what < 60) {
            kind = "customer";
            customer(&s, step);
            call(f->lua, 0, &s, &a);
            call(f->native, 0, &s, &b);
        } else if (what < 90) {
            kind = "product";
            product(&s);
            call(f->lua, 1, &s, &a);
            call(f->native, 1, &s, &b);
        } else if (what < 97) {
            kind = "timer";
            char *reason = NULL;
            a.rc = jn_transform_timer(f->lua, &cbs, &a, &reason);
            b.rc = jn_transform_timer(f->native, &cbs, &b, &reason);
        } else {
            /* As the pipeline does: partitions revoked, the state forgotten, and what the
             * member keeps replayed from the changelog before anything else. */
            kind = "revoke and replay";
            int32_t parts[] = {0};
            char *reason = NULL;
            a.rc = jn_transform_revoke(f->lua, 0, parts, 1, &reason);
            b.rc = jn_transform_revoke(f->native, 0, parts, 1, &reason);
            for (int i = (int)rnd(20); i > 0 && !a.rc && !b.rc; i--) {
                customer(&s, step);
                jn_transform_call_info info = {.input = 0, .partition = 0};
                a.rc = jn_transform_restore(f->lua, &info, s.data, s.len, &reason);
                b.rc = jn_transform_restore(f->native, &info, s.data, s.len, &reason);
            }
        }
        same(&a, &b, kind, step);
        records += b.n, held += b.held, multi += b.n > 1;
        clear(&a);
        clear(&b);
    }
    /* Not a vacuous run: records, holds and calls with several records all happened. */
    printf("%d steps: %ld records alike, %ld customers held, %ld calls with several records\n",
           steps, records, held, multi);
    assert_true(records > steps / 2 && held > 100 && multi > 100);
    jn_sb_free(&s);
}

static void test_same_records_as_merge_lua(void **state) {
    run_both(*state, 20000);
}

/* A hold that runs out: both release the customer with what is known. */
static void test_hold_runs_out_alike(void **state) {
    fixture *f = *state;
    char *err = NULL;
    f->lua = load(f, "lua", "scripts/merge.lua", 50, 100, &err);
    f->native = load(f, "native", "scripts/join.lua", 50, 100, &err);
    assert_non_null(f->lua);
    assert_non_null(f->native);
    jn_sb s;
    jn_sb_init(&s);
    jn_sb_puts(&s, "{\"id\":\"p1\",\"name\":\"A\",\"stock\":1}");
    result a = {0}, b = {0};
    call(f->lua, 1, &s, &a);
    call(f->native, 1, &s, &b);
    same(&a, &b, "product", 0);
    clear(&a), clear(&b);
    s.len = 0;
    jn_sb_puts(&s, "{\"id\":7,\"productIds\":[\"p1\",\"p2\"]}");
    call(f->lua, 0, &s, &a);
    call(f->native, 0, &s, &b);
    assert_int_equal(b.held, 1);
    assert_int_equal(b.n, 0);
    same(&a, &b, "held customer", 1);
    clear(&a), clear(&b);
    usleep(120 * 1000);
    char *reason = NULL;
    jn_transform_timer(f->lua, &cbs, &a, &reason);
    jn_transform_timer(f->native, &cbs, &b, &reason);
    assert_int_equal(b.n, 1);
    assert_non_null(strstr(b.recs[0], "\"missing_product_ids\":[\"p2\"]"));
    assert_non_null(strstr(b.recs[0], "\"products\":[{\"id\":\"p1\",\"name\":\"A\",\"stock\":1}]"));
    assert_string_equal(b.ids[0], "7");
    same(&a, &b, "released", 2);
    clear(&a), clear(&b);
    jn_sb_free(&s);
}

/* What is not an object is refused with a reason, and the join goes on. */
static void test_bad_records_are_refused(void **state) {
    fixture *f = *state;
    char *err = NULL;
    f->native = load(f, "native", "scripts/join.lua", 1000, 10, &err);
    assert_non_null(f->native);
    static const char *const bad[] = {"[1,2]", "not json", "{}", "\"text\"", "{\"id\":1,}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        jn_transform_call_info info = {.input = (int)(i % 2), .partition = 0};
        result r = {0};
        int held;
        long ms;
        char *reason = NULL;
        int rc = jn_transform_call(f->native, &info, bad[i], strlen(bad[i]), &cbs, &r, &held, &ms,
                                   &reason);
        if (rc == 0) fail_msg("%s was taken", bad[i]);
        assert_non_null(reason);
        assert_int_equal(r.n, 0);
        free(reason);
    }
    result r = {0};
    jn_sb s;
    jn_sb_init(&s);
    jn_sb_puts(&s, "{\"id\":1,\"productIds\":[]}");
    call(f->native, 0, &s, &r);
    assert_int_equal(r.n, 1);
    assert_string_equal(r.recs[0], "{\"id\":1,\"merged_at\":\"TTTTTTTTTTTTTTTTTTTTTTTT\","
                                   "\"productIds\":[],\"products\":[]}");
    clear(&r);
    jn_sb_free(&s);
}

/* A reference longer than any table key can be (64 KiB) is listed as missing, not
 * indexed: indexing it took a table key the join cannot make, and crashed the host. */
static void test_a_huge_reference_is_missing(void **state) {
    fixture *f = *state;
    char *err = NULL;
    f->native = load(f, "native", "scripts/join.lua", 0, 10, &err);
    assert_non_null(f->native);
    jn_sb s;
    jn_sb_init(&s);
    jn_sb_puts(&s, "{\"id\":5,\"productIds\":[\"1\",\"");
    for (int i = 0; i < 70000; i++)
        jn_sb_putc(&s, 'x');
    jn_sb_puts(&s, "\"]}");
    result r = {0};
    call(f->native, 0, &s, &r);
    assert_int_equal(r.n, 1);
    assert_non_null(strstr(r.recs[0], "\"missing_product_ids\":[\"1\",\"xxxx"));
    clear(&r);
    call(f->native, 0, &s, &r); /* again: the same references, kept in place */
    assert_int_equal(r.n, 1);
    clear(&r);
    jn_sb_free(&s);
}

static void call_on(jn_transform *t, int input, int32_t part, const char *json, result *r) {
    jn_transform_call_info info = {.input = input, .partition = part, .canonical = 1};
    long ms;
    char *reason = NULL;
    r->rc = jn_transform_call(t, &info, json, strlen(json), &cbs, r, &r->held, &ms, &reason);
    if (r->rc) fail_msg("%s", reason);
}

static int emitted_name(const result *r, const char *name) {
    char want[64];
    snprintf(want, sizeof want, "\"name\":\"%s\"", name);
    for (int i = 0; i < r->n; i++)
        if (strstr(r->recs[i], want)) return 1;
    return 0;
}

/* A rebalance that takes a partition away forgets the records of that partition only:
 * those of the partitions still here are re-emitted by a table change without a replay.
 * A record replayed from a changelog while the stream is read never replaces one read
 * from the stream (the stream is newer), and is kept when there is none. */
static void test_a_rebalance_forgets_only_the_partitions_gone(void **state) {
    fixture *f = *state;
    char *err = NULL;
    f->native = load(f, "native", "scripts/join.lua", 0, 10, &err);
    assert_non_null(f->native);
    result r = {0};
    call_on(f->native, 0, 0, "{\"id\":1,\"name\":\"a\",\"productIds\":[\"p1\"]}", &r);
    clear(&r);
    call_on(f->native, 0, 1, "{\"id\":2,\"name\":\"b\",\"productIds\":[\"p1\"]}", &r);
    clear(&r);
    int32_t still[] = {0};
    assert_true(jn_transform_keeps_partitions(f->native, 0));
    assert_int_equal(jn_transform_keep_partitions(f->native, 0, still, 1), 0);
    const char *p1 = "{\"id\":\"p1\",\"name\":\"P\",\"stock\":1}";
    call_on(f->native, 1, 0, p1, &r);
    assert_int_equal(r.n, 1);
    assert_true(emitted_name(&r, "a"));
    clear(&r);
    static const char *const replay[] = {
        "{\"id\":1,\"name\":\"old\",\"productIds\":[\"p1\"]}",
        "{\"id\":3,\"name\":\"c\",\"productIds\":[\"p1\"]}",
    };
    for (int i = 0; i < 2; i++) {
        jn_transform_call_info info = {.input = 0, .partition = 0, .canonical = 1};
        char *reason = NULL;
        if (jn_transform_restore(f->native, &info, replay[i], strlen(replay[i]), &reason) != 0)
            fail_msg("%s", reason);
    }
    call_on(f->native, 1, 0, "{\"id\":\"p1\",\"name\":\"P\",\"stock\":2}", &r);
    assert_int_equal(r.n, 2);
    assert_true(emitted_name(&r, "a"));
    assert_true(emitted_name(&r, "c"));
    assert_false(emitted_name(&r, "old"));
    clear(&r);
    /* Nothing kept: every record goes. */
    assert_int_equal(jn_transform_keep_partitions(f->native, 0, still, 0), 0);
    call_on(f->native, 1, 0, p1, &r);
    assert_int_equal(r.n, 0);
    clear(&r);
    /* A partition number a record cannot keep: the caller must forget and replay. */
    call_on(f->native, 0, 70000, "{\"id\":4,\"name\":\"d\",\"productIds\":[\"p1\"]}", &r);
    clear(&r);
    int32_t wide[] = {70000};
    assert_int_equal(jn_transform_keep_partitions(f->native, 0, wide, 1), -1);
    call_on(f->native, 1, 0, "{\"id\":\"p1\",\"name\":\"P\",\"stock\":3}", &r);
    assert_int_equal(r.n, 1); /* nothing was forgotten */
    clear(&r);
}

/* Scripts that declare a join wrongly are refused, saying what is wrong. */
static void test_bad_declarations(void **state) {
    fixture *f = *state;
    static const struct {
        const char *script, *want;
    } cases[] = {
        {"return { join = 1 }", "M.join must be a table"},
        {"return { join = { stream = 'products', table = 'products', refs = 'r', into = 'x' } }",
         "not one of the pipeline's streams"},
        {"return { join = { stream = 'customers', table = 'orders', refs = 'r', into = 'x' } }",
         "not one of the pipeline's tables"},
        {"return { join = { stream = 'customers', table = 'products', into = 'x' } }",
         "M.join.refs must be a non-empty string"},
        {"return { join = { stream = 'customers', table = 'products', refs = 'r', into = 'x', "
         "stamp = 'x' } }",
         "sets field x twice"},
        {"return { join = { stream = 'customers', table = 'products', refs = 'r', into = 'x' }, "
         "on = { customers = function() end } }",
         "on.customers is defined too"},
        {"return { join = { stream = 'customers', table = 'products', refs = 'r', into = 'x', "
         "fields = { 1 } } }",
         "M.join.fields must be an array of field names"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char path[128];
        snprintf(path, sizeof path, "%s/bad%zu.lua", f->dir, i);
        FILE *fp = fopen(path, "w");
        assert_non_null(fp);
        fputs(cases[i].script, fp);
        fclose(fp);
        char *err = NULL;
        jn_transform *t = load(f, "bad", path, 1000, 10, &err);
        if (t) fail_msg("case %zu was accepted", i);
        if (!strstr(err, cases[i].want)) fail_msg("case %zu: %s", i, err);
        free(err);
    }
}

static jn_join *plain_join(void) {
    jn_join_spec *sp = calloc(1, sizeof *sp);
    assert_non_null(sp);
    sp->stream = strdup("customers");
    sp->table = strdup("products");
    sp->refs = strdup("productIds");
    sp->into = strdup("products");
    return jn_join_new(sp, 3600000, 1000000);
}

/* Kept texts are packed (names replaced by dictionary numbers) and come back byte for
 * byte when a table change re-emits them: more distinct names than the dictionary holds,
 * and a text with a raw control byte (not canonical JSON, kept unpacked). */
static void test_kept_texts_come_back_whole(void **state) {
    (void)state;
    jn_join *j = plain_join();
    enum { N = 60 };
    char *want[N];
    char *reason = NULL;
    for (int i = 0; i < N; i++) {
        jn_sb s;
        jn_sb_init(&s);
        /* "f<i>" sorts before "id": each record brings a name of its own */
        jn_sb_printf(&s, "{\"f%02d\":[%d,{\"id\":\"x\"}],\"id\":\"c%d\",\"name\":\"%s\",", i, i, i,
                     i == 7 ? "a\001b" : "Customer");
        jn_sb_puts(&s, "\"productIds\":[\"p1\"]}");
        int held = 0;
        assert_int_equal(jn_join_stream(j, s.data, s.len, 0, 1.0, &held, &reason), 0);
        assert_int_equal(held, 1);
        s.len--; /* the same text with the product spliced in last */
        jn_sb_puts(&s, ",\"products\":[{\"id\":\"p1\",\"stock\":1}]}");
        want[i] = strdup(s.data);
        jn_sb_free(&s);
    }
    const char *p1 = "{\"id\":\"p1\",\"stock\":1}";
    assert_int_equal(jn_join_table(j, p1, strlen(p1), 2.0, &reason), 0);
    size_t n;
    const jn_join_out *o = jn_join_output(j, &n);
    assert_int_equal(n, N);
    int seen[N] = {0};
    for (size_t k = 0; k < n; k++) {
        const char *t = jn_join_text(j) + o[k].off;
        int i = -1;
        assert_int_equal(sscanf(t, "{\"f%d\"", &i), 1);
        assert_true(i >= 0 && i < N && !seen[i]);
        seen[i] = 1;
        if (o[k].len != strlen(want[i]) || memcmp(t, want[i], o[k].len))
            fail_msg("record %d came back as %.*s, not %s", i, (int)o[k].len, t, want[i]);
    }
    for (int i = 0; i < N; i++)
        free(want[i]);
    jn_join_free(j);
}

/* The seed's customers: packed, each costs at least 30 bytes less than the same customer
 * kept unpacked (a raw control byte in its name keeps it so): its five names, less a
 * byte each, are 36 bytes of its text. */
static size_t join_bytes(int unpacked) {
    jn_join *j = plain_join();
    char *reason = NULL;
    enum { N = 1000 };
    for (int i = 0; i < N; i++) {
        char t[256];
        int len = snprintf(t, sizeof t,
                           "{\"email\":\"customer%d@example.com\",\"id\":%d,\"name\":\"Customer%s"
                           "%d\",\"phone\":\"0788%02d\",\"productIds\":[\"%d\"]}",
                           i, i, unpacked ? "\001" : " ", i, i, i % 6);
        int held;
        assert_int_equal(jn_join_stream(j, t, (size_t)len, 0, 1.0, &held, &reason), 0);
    }
    jn_join_stats st;
    jn_join_get_stats(j, &st);
    assert_int_equal(st.records, N);
    jn_join_free(j);
    return st.bytes / N;
}

static void test_kept_texts_are_packed(void **state) {
    (void)state;
    size_t packed = join_bytes(0), unpacked = join_bytes(1);
    printf("a seed customer kept: %zu bytes packed, %zu unpacked\n", packed, unpacked);
    assert_true(packed + 30 <= unpacked);
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_same_records_as_merge_lua, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hold_runs_out_alike, setup, teardown),
        cmocka_unit_test_setup_teardown(test_bad_records_are_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_huge_reference_is_missing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_rebalance_forgets_only_the_partitions_gone, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_bad_declarations, setup, teardown),
        cmocka_unit_test(test_kept_texts_come_back_whole),
        cmocka_unit_test(test_kept_texts_are_packed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
