/* The settlement state machine (src/settle.h): when a message a pipeline read is over,
 * from the records its transform call produced, holds, deadlines, sink reports and
 * revocations. Messages live on the heap so the sanitizer build catches any touch of one
 * the machine let go (finished and freed by the owner, or forgotten). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "settle.h"

#define EXPIRED "held by the transform past its deadline without output"

/* The owner's message: the machine's part first, then what the tests look at. */
typedef struct {
    jn_settle_msg sm;
    const char *name;
} tmsg;

/* What the callbacks saw. */
typedef struct {
    jn_settle s;
    int finished;          /* on_finished calls */
    const tmsg *last;      /* the message of the last one (compared, never read) */
    char last_reason[128]; /* its reason, "" when none */
    int last_refused;      /* 1 when the reason was non-NULL */
    int free_on_finish;    /* the owner frees a message inside on_finished */
    int orphans;
    char orphan_reason[128];
    void *orphan_owner;
    int rec_frees;
    void *last_freed_owner;
} fixture;

static void on_finished(void *ud, jn_settle_msg *m, const char *refused) {
    fixture *f = ud;
    /* the owner sees a finished message whose reason is already out of it */
    assert_int_equal(m->finished, 1);
    assert_null(m->refused);
    assert_int_equal(m->in_waiting, 0);
    assert_int_equal(m->outstanding, 0);
    f->finished++;
    f->last = (const tmsg *)m;
    f->last_refused = refused != NULL;
    snprintf(f->last_reason, sizeof f->last_reason, "%s", refused ? refused : "");
    if (f->free_on_finish) free(m);
}

static void on_orphan_refused(void *ud, jn_settle_rec *rec, const char *reason) {
    fixture *f = ud;
    assert_int_equal(rec->nmsgs, 0);
    f->orphans++;
    f->orphan_owner = rec->owner;
    snprintf(f->orphan_reason, sizeof f->orphan_reason, "%s", reason);
}

static void on_rec_free(void *ud, jn_settle_rec *rec) {
    fixture *f = ud;
    f->rec_frees++;
    f->last_freed_owner = rec->owner;
}

static int setup(void **state) {
    fixture *f = calloc(1, sizeof *f);
    if (!f) return -1;
    jn_settle_cbs cbs = {.on_finished = on_finished,
                         .on_orphan_refused = on_orphan_refused,
                         .on_rec_free = on_rec_free};
    jn_settle_init(&f->s, &cbs, f);
    *state = f;
    return 0;
}

static int teardown(void **state) {
    fixture *f = *state;
    jn_settle_free(&f->s);
    free(f);
    return 0;
}

static tmsg *new_msg(const char *name) {
    tmsg *m = calloc(1, sizeof *m); /* zeroed, as the contract asks */
    assert_non_null(m);
    m->name = name;
    return m;
}

/* The message was finished exactly now (count goes from before to before + 1) with the
 * given reason (NULL: delivered). */
static void assert_finished(const fixture *f, int before, const tmsg *m, const char *reason) {
    assert_int_equal(f->finished, before + 1);
    assert_ptr_equal(f->last, m);
    if (reason) {
        assert_int_equal(f->last_refused, 1);
        assert_string_equal(f->last_reason, reason);
    } else {
        assert_int_equal(f->last_refused, 0);
    }
}

/* One transform call on m with id that produces nothing and is not held. */
static int call_nothing(fixture *f, tmsg *m, const char *id) {
    jn_settle_call_begin(&f->s, &m->sm, id);
    return jn_settle_call_end(&f->s, 0, 0, 0, NULL);
}

/* One call on m that holds it at now for hold ms. */
static void call_hold(fixture *f, tmsg *m, const char *id, uint64_t now, uint64_t hold) {
    jn_settle_call_begin(&f->s, &m->sm, id);
    assert_int_equal(jn_settle_call_end(&f->s, 1, now, hold, NULL), 0);
}

/* ---- calls ------------------------------------------------------------------------- */

static void test_filtered_finishes_at_once(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    assert_int_equal(m->sm.in_call, 1);
    assert_int_equal(m->sm.in_waiting, 1);
    assert_int_equal(jn_settle_waiting(&f->s), 1);
    assert_int_equal(f->finished, 0);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 1);
    assert_finished(f, 0, m, NULL);
    assert_int_equal(m->sm.in_call, 0);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(f->s.nrecs, 0);
    assert_null(f->s.call);
    free(m);
}

static void test_multiplied_waits_for_every_record(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    /* ids the transform chose, none of them the message's own */
    jn_settle_rec *r1 = jn_settle_record(&f->s, "x", 1, NULL);
    jn_settle_rec *r2 = jn_settle_record(&f->s, "y", 1, NULL);
    jn_settle_rec *r3 = jn_settle_record(&f->s, NULL, 1, NULL);
    assert_int_equal(f->s.call_records, 3);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(m->sm.outstanding, 3);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    for (jn_settle_rec *r = f->s.recs; r; r = r->next) {
        assert_int_equal(r->nmsgs, 1);
        assert_ptr_equal(r->msgs[0], &m->sm);
    }
    jn_settle_report(&f->s, r2, 0, NULL);
    assert_int_equal(f->finished, 0);
    jn_settle_report(&f->s, r1, 0, NULL);
    assert_int_equal(f->finished, 0);
    assert_int_equal(m->sm.outstanding, 1);
    f->free_on_finish = 1; /* the owner may free it in the callback */
    jn_settle_report(&f->s, r3, 0, NULL);
    assert_finished(f, 0, m, NULL);
    assert_int_equal(f->s.nrecs, 0);
    assert_int_equal(f->rec_frees, 3);
}

static void test_multiplied_with_its_own_id(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    /* three records all keeping the message's id: each stands for it, not only the first */
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r1 = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(f->s.call_answered, 1);
    jn_settle_rec *r2 = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_rec *r3 = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(m->sm.outstanding, 3);
    assert_int_equal(r2->nmsgs, 1);
    assert_int_equal(r3->nmsgs, 1);
    jn_settle_report(&f->s, r1, 0, NULL);
    jn_settle_report(&f->s, r3, 0, NULL);
    assert_int_equal(f->finished, 0);
    jn_settle_report(&f->s, r2, 0, NULL);
    assert_finished(f, 0, m, NULL);
    free(m);
}

static void test_record_to_two_sinks(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 2, NULL);
    assert_int_equal(r->sinks_left, 2);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_int_equal(f->finished, 0);
    assert_int_equal(r->sinks_left, 1);
    assert_int_equal(f->s.nrecs, 1);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 0, m, NULL);
    assert_int_equal(f->s.nrecs, 0);
    free(m);
}

static void test_answered_ignores_hold(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 1, 100, 50, NULL), 0);
    assert_int_equal(m->sm.held, 0);
    assert_int_equal(f->s.nheld, 0);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(jn_settle_expire(&f->s, 1000), 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 0, m, NULL);
    free(m);
}

static void test_id_changed_waits_for_that_record(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    int owner;
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "other", 1, &owner);
    assert_int_equal(r->nmsgs, 0); /* nobody waits for "other" */
    assert_ptr_equal(r->owner, &owner);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(r->nmsgs, 1);
    assert_ptr_equal(r->msgs[0], &m->sm);
    assert_int_equal(m->sm.in_waiting, 0);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 0, m, NULL);
    assert_int_equal(f->orphans, 0);
    assert_ptr_equal(f->last_freed_owner, &owner);
    free(m);
}

static void test_message_without_id(void **state) {
    fixture *f = *state;
    tmsg *a = new_msg("a"), *b = new_msg("b");
    jn_settle_call_begin(&f->s, &a->sm, NULL);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(a->sm.in_waiting, 0);
    /* a hold on a message nothing could release is ignored */
    assert_int_equal(jn_settle_call_end(&f->s, 1, 0, 1000, NULL), 1);
    assert_finished(f, 0, a, NULL);
    assert_int_equal(f->s.nheld, 0);

    jn_settle_call_begin(&f->s, &b->sm, "");
    jn_settle_rec *r = jn_settle_record(&f->s, "", 1, NULL);
    assert_int_equal(r->nmsgs, 0); /* "" is no id: it does not answer b */
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(r->nmsgs, 1);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 1, b, NULL);
    free(a);
    free(b);
}

static void test_id_too_long_is_no_id(void **state) {
    fixture *f = *state;
    char longid[JN_SETTLE_ID_MAX + 1], fits[JN_SETTLE_ID_MAX];
    memset(longid, 'k', sizeof longid - 1); /* JN_SETTLE_ID_MAX bytes: one too many */
    longid[sizeof longid - 1] = '\0';
    memset(fits, 'k', sizeof fits - 1); /* the longest id that fits */
    fits[sizeof fits - 1] = '\0';

    tmsg *m = new_msg("long");
    jn_settle_call_begin(&f->s, &m->sm, longid);
    assert_string_equal(m->sm.id, "");
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    jn_settle_rec *r = jn_settle_record(&f->s, longid, 1, NULL);
    assert_int_equal(f->s.call_answered, 0);
    assert_int_equal(r->nmsgs, 0);
    assert_int_equal(jn_settle_call_end(&f->s, 1, 0, 100, NULL), 0);
    assert_int_equal(r->nmsgs, 1); /* it waits for the record of its call instead */
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 0, m, NULL);

    tmsg *n = new_msg("fits");
    call_hold(f, n, fits, 0, 100);
    assert_string_equal(n->sm.id, fits);
    assert_int_equal(jn_settle_waiting(&f->s), 1);
    jn_settle_rec *r2 = jn_settle_record(&f->s, fits, 1, NULL);
    assert_int_equal(r2->nmsgs, 1);
    jn_settle_report(&f->s, r2, 0, NULL);
    assert_finished(f, 1, n, NULL);
    free(m);
    free(n);
}

static void test_called_again_with_record_out(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "a");
    jn_settle_rec *r = jn_settle_record(&f->s, "x", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    /* a second call on it while the first call's record is still out (without an id,
     * so only the call itself keeps it from finishing) */
    jn_settle_call_begin(&f->s, &m->sm, NULL);
    assert_int_equal(m->sm.in_waiting, 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_int_equal(m->sm.outstanding, 0);
    assert_int_equal(f->finished, 0); /* in a call: only call_end decides */
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 1);
    assert_finished(f, 0, m, NULL);
    free(m);
}

static void test_called_again_while_held(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    call_hold(f, m, "a", 0, 100);
    jn_settle_call_begin(&f->s, &m->sm, "a"); /* starts over: registered once, not held */
    assert_int_equal(jn_settle_waiting(&f->s), 1);
    assert_int_equal(f->s.nheld, 0);
    assert_int_equal(m->sm.held, 0);
    assert_null(m->sm.wnext);
    jn_settle_rec *r = jn_settle_record(&f->s, "a", 1, NULL);
    assert_int_equal(r->nmsgs, 1);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(jn_settle_expire(&f->s, 1000), 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 0, m, NULL);
    free(m);
}

/* ---- holds ------------------------------------------------------------------------- */

static void test_held_released_by_timer_record(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    call_hold(f, m, "c1", 1000, 500);
    assert_int_equal(m->sm.held, 1);
    assert_int_equal(m->sm.held_until, 1500);
    assert_int_equal(m->sm.in_waiting, 1);
    assert_int_equal(f->s.nheld, 1);
    assert_ptr_equal(f->s.held_head, &m->sm);
    assert_int_equal(jn_settle_waiting(&f->s), 1);
    assert_int_equal(f->finished, 0);

    /* the timer hook (no call in progress) emits the customer */
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(r->nmsgs, 1);
    assert_ptr_equal(r->msgs[0], &m->sm);
    assert_int_equal(m->sm.held, 0);
    assert_int_equal(m->sm.in_waiting, 0);
    assert_int_equal(f->s.nheld, 0);
    assert_null(f->s.held_head);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(f->finished, 0); /* released, but its record is not through yet */
    /* past the old deadline: released messages do not expire */
    assert_int_equal(jn_settle_expire(&f->s, 5000), 0);
    assert_int_equal(f->finished, 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 0, m, NULL);
    free(m);
}

static void test_held_released_by_another_call(void **state) {
    fixture *f = *state;
    tmsg *held = new_msg("held"), *m = new_msg("m");
    call_hold(f, held, "a", 0, 1000);
    /* the call on m answers its own id and releases the held one */
    jn_settle_call_begin(&f->s, &m->sm, "b");
    jn_settle_rec *ra = jn_settle_record(&f->s, "a", 1, NULL);
    jn_settle_rec *rb = jn_settle_record(&f->s, "b", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    /* m waits for both records of its call; held for the one with its id */
    assert_int_equal(ra->nmsgs, 2);
    assert_ptr_equal(ra->msgs[0], &held->sm);
    assert_ptr_equal(ra->msgs[1], &m->sm);
    assert_int_equal(rb->nmsgs, 1);
    assert_ptr_equal(rb->msgs[0], &m->sm);
    jn_settle_report(&f->s, rb, 0, NULL);
    assert_int_equal(f->finished, 0);
    jn_settle_report(&f->s, ra, 0, NULL);
    assert_int_equal(f->finished, 2);
    assert_int_equal(held->sm.finished, 1);
    assert_int_equal(m->sm.finished, 1);
    free(held);
    free(m);
}

static void test_unanswered_call_waits_for_release_record(void **state) {
    fixture *f = *state;
    tmsg *held = new_msg("held"), *m = new_msg("m");
    call_hold(f, held, "a", 0, 1000);
    /* the call on m only releases the held one: m waits for that record too */
    jn_settle_call_begin(&f->s, &m->sm, "b");
    jn_settle_rec *ra = jn_settle_record(&f->s, "a", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(ra->nmsgs, 2);
    assert_ptr_equal(ra->msgs[0], &held->sm);
    assert_ptr_equal(ra->msgs[1], &m->sm);
    jn_settle_report(&f->s, ra, 0, NULL);
    assert_int_equal(f->finished, 2);
    assert_int_equal(held->sm.finished, 1);
    assert_int_equal(m->sm.finished, 1);
    free(held);
    free(m);
}

static void test_held_expired(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    call_hold(f, m, "c1", 1000, 500);
    assert_int_equal(jn_settle_expire(&f->s, 1499), 0);
    assert_int_equal(f->finished, 0);
    f->free_on_finish = 1;
    assert_int_equal(jn_settle_expire(&f->s, 1500), 1); /* the deadline itself is past */
    assert_finished(f, 0, m, EXPIRED);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(f->s.nheld, 0);
    assert_null(f->s.held_head);
    assert_null(f->s.held_tail);
    /* its customer arriving late answers nobody */
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(r->nmsgs, 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_int_equal(f->finished, 1);
    assert_int_equal(jn_settle_expire(&f->s, 9999), 0);
}

static void test_held_before_deadline_stays(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    call_hold(f, m, "c1", 1000, 500);
    assert_int_equal(jn_settle_expire(&f->s, 0), 0);
    assert_int_equal(jn_settle_expire(&f->s, 1499), 0);
    assert_int_equal(f->finished, 0);
    assert_int_equal(m->sm.held, 1);
    assert_int_equal(m->sm.in_waiting, 1);
    assert_int_equal(f->s.nheld, 1);
    assert_int_equal(jn_settle_waiting(&f->s), 1);
    jn_settle_forget(&f->s, &m->sm);
    free(m);
}

static void test_expire_by_deadline_not_arrival(void **state) {
    fixture *f = *state;
    tmsg *slow = new_msg("slow"), *quick = new_msg("quick"), *mid = new_msg("mid");
    call_hold(f, slow, "s", 0, 1000); /* until 1000 */
    call_hold(f, quick, "q", 0, 100); /* until 100, though held later */
    call_hold(f, mid, "m", 0, 500);   /* until 500 */
    assert_ptr_equal(f->s.held_head, &quick->sm);
    assert_ptr_equal(f->s.held_tail, &slow->sm);
    assert_int_equal(jn_settle_expire(&f->s, 200), 1);
    assert_finished(f, 0, quick, EXPIRED);
    assert_int_equal(slow->sm.held, 1);
    assert_int_equal(mid->sm.held, 1);
    assert_int_equal(jn_settle_waiting(&f->s), 2);
    assert_int_equal(jn_settle_expire(&f->s, 1000), 2);
    assert_int_equal(f->finished, 3);
    assert_int_equal(slow->sm.finished, 1);
    assert_int_equal(mid->sm.finished, 1);
    assert_int_equal(f->s.nheld, 0);
    free(slow);
    free(quick);
    free(mid);
}

static void test_same_id_released_together(void **state) {
    fixture *f = *state;
    tmsg *a = new_msg("a"), *b = new_msg("b");
    call_hold(f, a, "c1", 0, 1000);
    call_hold(f, b, "c1", 0, 1000);
    assert_int_equal(jn_settle_waiting(&f->s), 2); /* two messages under one id */
    assert_int_equal(f->s.nheld, 2);
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(r->nmsgs, 2);
    assert_true((r->msgs[0] == &a->sm && r->msgs[1] == &b->sm) ||
                (r->msgs[0] == &b->sm && r->msgs[1] == &a->sm));
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(f->s.nheld, 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_int_equal(f->finished, 2);
    assert_int_equal(a->sm.finished, 1);
    assert_int_equal(b->sm.finished, 1);
    free(a);
    free(b);
}

static void test_many_waiting_for_one_record(void **state) {
    fixture *f = *state;
    enum { N = 9 }; /* past the record's inline slots */
    tmsg *m[N];
    for (int i = 0; i < N; i++) {
        m[i] = new_msg("m");
        call_hold(f, m[i], "c1", 0, 1000);
    }
    assert_int_equal(jn_settle_waiting(&f->s), N);
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(r->nmsgs, N);
    assert_true(r->cap >= N);
    jn_settle_report(&f->s, r, 500, "bad");
    assert_int_equal(f->finished, N);
    for (int i = 0; i < N; i++)
        free(m[i]);
}

/* ---- failures and refusals --------------------------------------------------------- */

static void test_failed_without_records(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    /* a hold before the raise does not keep it */
    assert_int_equal(jn_settle_call_end(&f->s, 1, 0, 1000, "script: boom"), 1);
    assert_finished(f, 0, m, "script: boom");
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(f->s.nheld, 0);
    free(m);
}

static void test_failed_after_a_record(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "x", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, "script: boom"), 0);
    assert_int_equal(f->finished, 0);
    assert_int_equal(r->nmsgs, 1);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    jn_settle_report(&f->s, r, 0, NULL); /* delivered, but the call failed */
    assert_finished(f, 0, m, "script: boom");
    assert_int_equal(f->orphans, 0);
    free(m);
}

static void test_failed_after_answering_record(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *own = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_rec *other = jn_settle_record(&f->s, "x", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, "script: boom"), 0);
    /* it waits for everything the call produced, once each */
    assert_int_equal(own->nmsgs, 1);
    assert_int_equal(other->nmsgs, 1);
    assert_int_equal(m->sm.outstanding, 2);
    jn_settle_report(&f->s, own, 0, NULL);
    assert_int_equal(f->finished, 0);
    jn_settle_report(&f->s, other, 0, NULL);
    assert_finished(f, 0, m, "script: boom");
    free(m);
}

static void test_refused_record(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_call_end(&f->s, 0, 0, 0, NULL);
    jn_settle_report(&f->s, r, 500, "analytics: 422 bad field");
    assert_finished(f, 0, m, "analytics: 422 bad field");
    assert_int_equal(f->orphans, 0); /* it answered a message: that one is dead-lettered */
    assert_int_equal(f->s.nrecs, 0);
    free(m);
}

static void test_refusal_reasons(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r1 = jn_settle_record(&f->s, "x", 3, NULL);
    jn_settle_rec *r2 = jn_settle_record(&f->s, "y", 1, NULL);
    jn_settle_call_end(&f->s, 0, 0, 0, NULL);
    /* one sink delivers, two refuse: the record keeps the first reason */
    jn_settle_report(&f->s, r1, 0, NULL);
    jn_settle_report(&f->s, r1, 500, "first");
    assert_string_equal(r1->refused, "first");
    jn_settle_report(&f->s, r1, 400, "second");
    assert_int_equal(f->finished, 0);
    assert_string_equal(m->sm.refused, "first");
    /* a later refusal of another record does not replace the message's reason */
    jn_settle_report(&f->s, r2, 500, "third");
    assert_finished(f, 0, m, "first");
    free(m);
}

static void test_refused_without_reason(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_call_end(&f->s, 0, 0, 0, NULL);
    jn_settle_report(&f->s, r, 503, NULL);
    assert_int_equal(f->finished, 1);
    assert_int_equal(f->last_refused, 1); /* still refused, with some reason */
    assert_true(strlen(f->last_reason) > 0);
    free(m);
}

static void test_orphan_refused(void **state) {
    fixture *f = *state;
    int data1, data2;
    /* a table change re-emits joined records: nobody waits for them */
    jn_settle_rec *ok = jn_settle_record(&f->s, "p1", 1, &data1);
    jn_settle_rec *bad = jn_settle_record(&f->s, "p2", 2, &data2);
    assert_int_equal(f->s.nrecs, 2);
    jn_settle_report(&f->s, ok, 0, NULL);
    assert_int_equal(f->orphans, 0); /* delivered: nothing to dead-letter */
    assert_int_equal(f->rec_frees, 1);
    assert_ptr_equal(f->last_freed_owner, &data1);
    jn_settle_report(&f->s, bad, 500, "too large");
    assert_int_equal(f->orphans, 0); /* one sink still out */
    jn_settle_report(&f->s, bad, 0, NULL);
    assert_int_equal(f->orphans, 1);
    assert_ptr_equal(f->orphan_owner, &data2);
    assert_string_equal(f->orphan_reason, "too large");
    assert_int_equal(f->rec_frees, 2);
    assert_ptr_equal(f->last_freed_owner, &data2);
    assert_int_equal(f->s.nrecs, 0);
    assert_null(f->s.recs);
    assert_int_equal(f->finished, 0);
}

static void test_held_call_waits_for_its_other_records(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    /* the call holds its message and emits an unrelated record (a released customer, say):
     * the message waits for it as well as for its release */
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "z", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 1, 0, 100, NULL), 0);
    assert_int_equal(r->nmsgs, 1);
    assert_int_equal(m->sm.held, 1);
    jn_settle_rec *release = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_report(&f->s, release, 0, NULL);
    assert_int_equal(f->finished, 0); /* the other record is still out */
    jn_settle_report(&f->s, r, 500, "no");
    assert_finished(f, 0, m, "no");
    assert_int_equal(f->orphans, 0);
    free(m);
}

static void test_answered_call_waits_for_its_other_records(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    /* one record answers the message's id, a second one has another id: settling after
     * the first alone would let a crash lose the second */
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *own = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_rec *copy = jn_settle_record(&f->s, "copy-c1", 1, NULL);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(copy->nmsgs, 1);
    jn_settle_report(&f->s, own, 0, NULL);
    assert_int_equal(f->finished, 0);
    jn_settle_report(&f->s, copy, 0, NULL);
    assert_finished(f, 0, m, NULL);
    free(m);
}

/* ---- reports inside a call (the host never does it; the machine copes) ------------- */

static void test_report_inside_call_refusal_reaches_message(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "x", 1, NULL);
    jn_settle_report(&f->s, r, 500, "refused early");
    /* kept until the call ends, so the message can still join it */
    assert_int_equal(f->s.nrecs, 1);
    assert_int_equal(f->rec_frees, 0);
    assert_int_equal(f->orphans, 0);
    assert_int_equal(f->finished, 0);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 1);
    assert_finished(f, 0, m, "refused early");
    assert_int_equal(f->orphans, 0);
    assert_int_equal(f->s.nrecs, 0);
    free(m);
}

static void test_report_inside_call_answered(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_int_equal(f->finished, 0); /* in a call: only call_end decides */
    jn_settle_rec *later = jn_settle_record(&f->s, "y", 1, NULL);
    f->free_on_finish = 1;
    /* the later record is the call's output too: m waits for it */
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(f->s.nrecs, 1);
    assert_ptr_equal(f->s.recs, later);
    assert_int_equal(later->nmsgs, 1);
    jn_settle_report(&f->s, later, 0, NULL);
    assert_finished(f, 0, m, NULL);
    assert_int_equal(f->s.nrecs, 0);
}

static void test_report_inside_call_of_older_record(void **state) {
    fixture *f = *state;
    tmsg *held = new_msg("held"), *m = new_msg("m");
    call_hold(f, held, "a", 0, 1000);
    jn_settle_rec *old = jn_settle_record(&f->s, "a", 1, NULL); /* releases held */
    jn_settle_call_begin(&f->s, &m->sm, "b");
    jn_settle_rec *mine = jn_settle_record(&f->s, "z", 1, NULL);
    /* a record from before the call completes at once, under the call's records */
    jn_settle_report(&f->s, old, 0, NULL);
    assert_finished(f, 0, held, NULL);
    assert_int_equal(f->s.nrecs, 1);
    assert_int_equal(f->s.call_records, 1);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(mine->nmsgs, 1);
    jn_settle_report(&f->s, mine, 0, NULL);
    assert_finished(f, 1, m, NULL);
    free(held);
    free(m);
}

/* ---- forgetting -------------------------------------------------------------------- */

static void test_forget_held(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m"), *other = new_msg("other");
    call_hold(f, m, "c1", 0, 100);
    call_hold(f, other, "c1", 0, 100);
    jn_settle_forget(&f->s, &m->sm);
    free(m); /* the owner drops it: nothing may reach it after this */
    assert_int_equal(f->finished, 0);
    assert_int_equal(jn_settle_waiting(&f->s), 1);
    assert_int_equal(f->s.nheld, 1);
    assert_ptr_equal(f->s.held_head, &other->sm);
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(r->nmsgs, 1);
    assert_ptr_equal(r->msgs[0], &other->sm);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_finished(f, 0, other, NULL);
    assert_int_equal(jn_settle_expire(&f->s, 1000), 0);
    free(other);
}

static void test_forget_held_alone(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    call_hold(f, m, "c1", 0, 100);
    jn_settle_forget(&f->s, &m->sm);
    assert_int_equal(m->sm.finished, 1);
    assert_int_equal(m->sm.in_waiting, 0);
    assert_int_equal(m->sm.held, 0);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    assert_int_equal(f->s.nheld, 0);
    assert_null(f->s.held_head);
    free(m);
    jn_settle_rec *r = jn_settle_record(&f->s, "c1", 1, NULL);
    assert_int_equal(r->nmsgs, 0);
    assert_int_equal(jn_settle_expire(&f->s, 1000), 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_int_equal(f->finished, 0);
}

static void test_forget_attached_to_live_record(void **state) {
    fixture *f = *state;
    tmsg *a = new_msg("a"), *b = new_msg("b"), *c = new_msg("c");
    call_hold(f, a, "k", 0, 100);
    call_hold(f, b, "k", 0, 100);
    call_hold(f, c, "k", 0, 100);
    jn_settle_rec *r = jn_settle_record(&f->s, "k", 1, NULL);
    jn_settle_rec *r2 = jn_settle_record(&f->s, "z", 1, NULL);
    assert_int_equal(r->nmsgs, 3);
    jn_settle_msg *first = r->msgs[0], *last = r->msgs[2];
    jn_settle_forget(&f->s, &b->sm); /* b is in the middle of the list */
    assert_int_equal(b->sm.finished, 1);
    assert_int_equal(b->sm.outstanding, 0);
    free(b);
    assert_int_equal(r->nmsgs, 2);
    assert_ptr_equal(r->msgs[0], first); /* the others keep their order */
    assert_ptr_equal(r->msgs[1], last);
    jn_settle_report(&f->s, r, 500, "refused");
    assert_int_equal(f->finished, 2);
    assert_string_equal(f->last_reason, "refused");
    assert_int_equal(a->sm.finished, 1);
    assert_int_equal(c->sm.finished, 1);
    assert_int_equal(f->orphans, 0);
    jn_settle_report(&f->s, r2, 0, NULL);
    assert_int_equal(f->finished, 2);
    free(a);
    free(c);
}

static void test_forget_only_message_of_record(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r1 = jn_settle_record(&f->s, "x", 1, NULL);
    jn_settle_rec *r2 = jn_settle_record(&f->s, "c1", 1, NULL);
    jn_settle_call_end(&f->s, 0, 0, 0, "boom"); /* refused: it owns a reason string */
    assert_int_equal(m->sm.outstanding, 2);
    assert_non_null(m->sm.refused);
    jn_settle_forget(&f->s, &m->sm);
    assert_null(m->sm.refused);
    free(m);
    assert_int_equal(r1->nmsgs, 0);
    assert_int_equal(r2->nmsgs, 0);
    /* the records go on; refused, they are now nobody's */
    jn_settle_report(&f->s, r1, 500, "late");
    assert_int_equal(f->orphans, 1);
    jn_settle_report(&f->s, r2, 0, NULL);
    assert_int_equal(f->finished, 0);
    assert_int_equal(f->s.nrecs, 0);
}

static void test_forget_finished_is_noop(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    assert_int_equal(call_nothing(f, m, "c1"), 1);
    jn_settle_forget(&f->s, &m->sm);
    assert_int_equal(f->finished, 1);
    assert_int_equal(m->sm.finished, 1);
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    free(m);
}

static void test_forget_during_call(void **state) {
    fixture *f = *state;
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&f->s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&f->s, "x", 1, NULL);
    jn_settle_rec *done = jn_settle_record(&f->s, "y", 1, NULL);
    jn_settle_report(&f->s, done, 0, NULL); /* deferred to the call's end */
    assert_int_equal(f->rec_frees, 0);
    jn_settle_forget(&f->s, &m->sm);
    assert_null(f->s.call);
    assert_int_equal(f->rec_frees, 1); /* no call_end will come for it to wait on */
    assert_int_equal(jn_settle_waiting(&f->s), 0);
    free(m);
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(f->finished, 0);
    assert_int_equal(r->nmsgs, 0);
    jn_settle_report(&f->s, r, 0, NULL);
    assert_int_equal(f->finished, 0);
    assert_int_equal(f->s.nrecs, 0);
}

static void test_call_end_without_call(void **state) {
    fixture *f = *state;
    assert_int_equal(jn_settle_call_end(&f->s, 0, 0, 0, NULL), 0);
    assert_int_equal(jn_settle_call_end(&f->s, 1, 0, 10, "x"), 0);
    assert_int_equal(f->finished, 0);
}

/* ---- teardown ---------------------------------------------------------------------- */

static void test_free_with_live_records(void **state) {
    (void)state;
    fixture f = {0};
    jn_settle_cbs cbs = {.on_finished = on_finished, .on_rec_free = on_rec_free};
    jn_settle_init(&f.s, &cbs, &f);
    tmsg *held = new_msg("held"), *m = new_msg("m");
    int d1, d2, d3;
    call_hold(&f, held, "a", 0, 100);
    jn_settle_record(&f.s, NULL, 1, &d1); /* nobody's */
    jn_settle_call_begin(&f.s, &m->sm, "b");
    jn_settle_rec *r = jn_settle_record(&f.s, "x", 2, &d2);
    jn_settle_report(&f.s, r, 500, "half refused"); /* the record owns a reason */
    jn_settle_call_end(&f.s, 0, 0, 0, "boom");      /* m owns a reason */
    for (int i = 0; i < 5; i++)                     /* a grown list */
        jn_settle_record(&f.s, "b", 1, &d3);
    assert_int_equal(f.s.nrecs, 7);
    jn_settle_free(&f.s);
    assert_int_equal(f.rec_frees, 7); /* the owner released every record's data */
    assert_int_equal(f.finished, 0);  /* nothing is reported on the way out */
    assert_null(f.s.recs);
    assert_null(f.s.waiting);
    assert_int_equal(jn_settle_waiting(&f.s), 0);
    /* the messages are the owner's, reason included */
    assert_string_equal(m->sm.refused, "boom");
    free(m->sm.refused);
    free(m);
    free(held);
    /* init again: usable */
    jn_settle_init(&f.s, &cbs, &f);
    tmsg *n = new_msg("n");
    assert_int_equal(call_nothing(&f, n, "a"), 1);
    jn_settle_free(&f.s);
    free(n);
}

static void test_init_without_callbacks(void **state) {
    (void)state;
    jn_settle s;
    jn_settle_init(&s, NULL, NULL);
    tmsg *m = new_msg("m");
    jn_settle_call_begin(&s, &m->sm, "c1");
    jn_settle_rec *r = jn_settle_record(&s, "z", 1, NULL);
    jn_settle_rec *o = jn_settle_record(&s, "q", 1, NULL);
    assert_int_equal(jn_settle_call_end(&s, 0, 0, 0, NULL), 0);
    assert_int_equal(m->sm.outstanding, 2); /* it joined both records of its call */
    jn_settle_report(&s, r, 500, "x");
    assert_int_equal(m->sm.finished, 0);
    assert_string_equal(m->sm.refused, "x");
    jn_settle_report(&s, o, 500, "y");
    assert_int_equal(m->sm.finished, 1);
    assert_null(m->sm.refused); /* freed even without anyone to tell */
    assert_int_equal(s.nrecs, 0);
    jn_settle_free(&s);
    free(m);
}

int main(void) {
    const struct CMUnitTest tests[] = {
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
        T(test_filtered_finishes_at_once),
        T(test_multiplied_waits_for_every_record),
        T(test_multiplied_with_its_own_id),
        T(test_record_to_two_sinks),
        T(test_answered_ignores_hold),
        T(test_id_changed_waits_for_that_record),
        T(test_message_without_id),
        T(test_id_too_long_is_no_id),
        T(test_called_again_with_record_out),
        T(test_called_again_while_held),
        T(test_held_released_by_timer_record),
        T(test_held_released_by_another_call),
        T(test_unanswered_call_waits_for_release_record),
        T(test_held_expired),
        T(test_held_before_deadline_stays),
        T(test_expire_by_deadline_not_arrival),
        T(test_same_id_released_together),
        T(test_many_waiting_for_one_record),
        T(test_failed_without_records),
        T(test_failed_after_a_record),
        T(test_failed_after_answering_record),
        T(test_refused_record),
        T(test_refusal_reasons),
        T(test_refused_without_reason),
        T(test_orphan_refused),
        T(test_held_call_waits_for_its_other_records),
        T(test_answered_call_waits_for_its_other_records),
        T(test_report_inside_call_refusal_reaches_message),
        T(test_report_inside_call_answered),
        T(test_report_inside_call_of_older_record),
        T(test_forget_held),
        T(test_forget_held_alone),
        T(test_forget_attached_to_live_record),
        T(test_forget_only_message_of_record),
        T(test_forget_finished_is_noop),
        T(test_forget_during_call),
        T(test_call_end_without_call),
        cmocka_unit_test(test_free_with_live_records),
        cmocka_unit_test(test_init_without_callbacks),
#undef T
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
