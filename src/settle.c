/* Settlement state machine (settle.h). Three structures hold a message between its call
 * and its end: the waiting index (id -> messages chained by wnext), the held list (the
 * waiting ones with a deadline, soonest first), and the msgs lists of live records (each
 * entry one unit of the message's outstanding count). A message finishes when it is in
 * none of them and no call on it is in progress. */
#include "settle.h"

#include <stdlib.h>
#include <string.h>

#include "error.h"

static const char expired_reason[] = "held by the transform past its deadline without output";

/* An id that can be waited for: present, non-empty and short enough for msg->id. */
static int usable_id(const char *id) {
    return id && id[0] && strnlen(id, JN_SETTLE_ID_MAX) < JN_SETTLE_ID_MAX;
}

/* ---- waiting index ----------------------------------------------------------------- */

static jn_settle_msg *waiting_get(const jn_settle *s, const char *id) {
    const unsigned char *v = jn_strmap_get(s->waiting, id, strlen(id));
    jn_settle_msg *m = NULL;
    if (v) memcpy(&m, v, sizeof m);
    return m;
}

/* Makes m the head of id's chain; NULL drops the key. */
static void waiting_set_head(jn_settle *s, const char *id, jn_settle_msg *m) {
    if (!m) {
        jn_strmap_del(s->waiting, id, strlen(id));
        return;
    }
    unsigned char v[JN_STRMAP_VALUE] = {0};
    memcpy(v, &m, sizeof m); /* the map holds fixed-size values: a pointer fits */
    jn_strmap_set(s->waiting, id, strlen(id), v);
}

static void waiting_add(jn_settle *s, jn_settle_msg *m) {
    m->wnext = waiting_get(s, m->id);
    waiting_set_head(s, m->id, m);
    m->in_waiting = 1;
    s->nwaiting++;
}

static void held_unlink(jn_settle *s, jn_settle_msg *m) {
    if (!m->held) return;
    if (m->held_prev)
        m->held_prev->held_next = m->held_next;
    else
        s->held_head = m->held_next;
    if (m->held_next)
        m->held_next->held_prev = m->held_prev;
    else
        s->held_tail = m->held_prev;
    m->held_prev = m->held_next = NULL;
    m->held = 0;
    s->nheld--;
}

/* Inserted by deadline, searched from the tail: hold times are mostly the same, so a new
 * hold usually goes last in O(1). Equal deadlines keep their arrival order. */
static void held_insert(jn_settle *s, jn_settle_msg *m, uint64_t until) {
    jn_settle_msg *after = s->held_tail;
    while (after && after->held_until > until)
        after = after->held_prev;
    m->held = 1;
    m->held_until = until;
    m->held_prev = after;
    m->held_next = after ? after->held_next : s->held_head;
    if (m->held_next)
        m->held_next->held_prev = m;
    else
        s->held_tail = m;
    if (after)
        after->held_next = m;
    else
        s->held_head = m;
    s->nheld++;
}

/* Detaches m's waiting state without touching the chain (the caller fixes the chain). */
static void leave_waiting(jn_settle *s, jn_settle_msg *m) {
    m->wnext = NULL;
    m->in_waiting = 0;
    held_unlink(s, m);
    s->nwaiting--;
}

/* Takes every message waiting for id off waiting; returns them chained by wnext. */
static jn_settle_msg *waiting_take(jn_settle *s, const char *id) {
    jn_settle_msg *list = waiting_get(s, id);
    if (!list) return NULL;
    waiting_set_head(s, id, NULL);
    for (jn_settle_msg *m = list; m; m = m->wnext) {
        m->in_waiting = 0;
        held_unlink(s, m);
        s->nwaiting--;
    }
    return list; /* wnext is left for the caller to walk and clear */
}

static void waiting_remove(jn_settle *s, jn_settle_msg *m) {
    if (!m->in_waiting) return;
    if (m == s->call && s->call_unindexed) {
        s->call_unindexed = 0;
        leave_waiting(s, m);
        return;
    }
    jn_settle_msg *prev = NULL;
    for (jn_settle_msg *x = waiting_get(s, m->id); x; prev = x, x = x->wnext) {
        if (x != m) continue;
        if (prev)
            prev->wnext = m->wnext;
        else
            waiting_set_head(s, m->id, m->wnext);
        break;
    }
    leave_waiting(s, m);
}

/* ---- records ----------------------------------------------------------------------- */

/* m now waits for rec too. */
static void rec_attach(jn_settle_rec *rec, jn_settle_msg *m) {
    if (rec->nmsgs == rec->cap) {
        int cap = rec->cap * 2;
        int inline_now = rec->msgs == rec->inline_msgs;
        jn_settle_msg **grown = inline_now ? malloc(sizeof *grown * (size_t)cap)
                                           : realloc(rec->msgs, sizeof *grown * (size_t)cap);
        if (!grown) abort();
        if (inline_now) memcpy(grown, rec->inline_msgs, sizeof rec->inline_msgs);
        rec->msgs = grown;
        rec->cap = cap;
    }
    rec->msgs[rec->nmsgs++] = m;
    m->outstanding++;
}

static int rec_has(const jn_settle_rec *rec, const jn_settle_msg *m) {
    for (int i = 0; i < rec->nmsgs; i++)
        if (rec->msgs[i] == m) return 1;
    return 0;
}

/* Drops m from rec's list, keeping the order of the others (the owner may read msgs[0]
 * as the record's identity). Returns how many entries went. */
static int rec_detach(jn_settle_rec *rec, const jn_settle_msg *m) {
    int kept = 0;
    for (int i = 0; i < rec->nmsgs; i++)
        if (rec->msgs[i] != m) rec->msgs[kept++] = rec->msgs[i];
    int gone = rec->nmsgs - kept;
    rec->nmsgs = kept;
    return gone;
}

#if defined(__SANITIZE_ADDRESS__)
#define SPARE_RECS 0 /* a reused record would hide a use after free */
#else
#define SPARE_RECS 1024
#endif

static void rec_free(jn_settle *s, jn_settle_rec *rec) {
    if (s->cbs.on_rec_free) s->cbs.on_rec_free(s->ud, rec);
    if (rec->prev)
        rec->prev->next = rec->next;
    else
        s->recs = rec->next;
    if (rec->next) rec->next->prev = rec->prev;
    if (rec->msgs != rec->inline_msgs) free(rec->msgs);
    free(rec->refused);
    s->nrecs--;
    if (s->nspare < SPARE_RECS) {
        rec->next = s->spare;
        s->spare = rec;
        s->nspare++;
    } else {
        free(rec);
    }
}

/* The records of the call in progress are the newest call_records entries of s->recs:
 * records are pushed at the head, and none of the call's is freed before call_end (see
 * rec_done), so they stay a prefix whatever older records go meanwhile. */
static int is_call_record(const jn_settle *s, const jn_settle_rec *rec) {
    const jn_settle_rec *r = s->recs;
    for (int k = 0; k < s->call_records && r; k++, r = r->next)
        if (r == rec) return 1;
    return 0;
}

/* ---- finishing --------------------------------------------------------------------- */

/* The reason is moved out of m before the callback, since the owner may free m there:
 * it lives until the callback returns. */
static void finish(jn_settle *s, jn_settle_msg *m) {
    char *why = m->refused;
    m->refused = NULL;
    m->finished = 1;
    if (m == s->call) s->call = NULL; /* tells call_end that m is over (it may be freed) */
    if (s->cbs.on_finished) s->cbs.on_finished(s->ud, m, why);
    free(why);
}

static int can_finish(const jn_settle_msg *m) {
    return !m->finished && m->outstanding == 0 && !m->in_waiting && !m->in_call;
}

/* Every sink reported rec: its messages move on and it is freed. */
static void rec_done(jn_settle *s, jn_settle_rec *rec) {
    if (rec->nmsgs == 0 && rec->refused && s->cbs.on_orphan_refused)
        s->cbs.on_orphan_refused(s->ud, rec, rec->refused);
    for (int i = 0; i < rec->nmsgs; i++) {
        jn_settle_msg *m = rec->msgs[i];
        if (rec->refused && !m->refused) m->refused = jn_errorf("%s", rec->refused);
        m->outstanding--;
        if (can_finish(m)) finish(s, m);
    }
    rec_free(s, rec);
}

/* Completes the records of the call that every sink reported before the call ended (the
 * call's message joined them first, so it sees their refusals). */
static void call_records_settle(jn_settle *s) {
    jn_settle_rec *r = s->recs;
    for (int k = 0; k < s->call_records && r; k++) {
        jn_settle_rec *next = r->next;
        if (r->sinks_left <= 0) rec_done(s, r);
        r = next;
    }
}

/* m waits for every record its call produced (those it does not wait for already). */
static void call_records_join(jn_settle *s, jn_settle_msg *m) {
    jn_settle_rec *r = s->recs;
    for (int k = 0; k < s->call_records && r; k++, r = r->next)
        if (!rec_has(r, m)) rec_attach(r, m);
}

/* The call's bookkeeping ends (its message already has its fate). */
static void call_close(jn_settle *s) {
    call_records_settle(s);
    s->call_records = 0;
    s->call_answered = 0;
}

/* ---- public ------------------------------------------------------------------------ */

void jn_settle_init(jn_settle *s, const jn_settle_cbs *cbs, void *ud) {
    memset(s, 0, sizeof *s);
    if (cbs) s->cbs = *cbs;
    s->ud = ud;
    s->waiting = jn_strmap_new();
}

void jn_settle_free(jn_settle *s) {
    while (s->recs)
        rec_free(s, s->recs);
    while (s->spare) {
        jn_settle_rec *next = s->spare->next;
        free(s->spare);
        s->spare = next;
    }
    s->nspare = 0;
    s->call_unindexed = 0;
    jn_strmap_free(s->waiting);
    s->waiting = NULL;
    s->held_head = s->held_tail = NULL;
    s->call = NULL;
    s->call_records = s->call_answered = 0;
    s->nheld = s->nwaiting = 0;
}

void jn_settle_call_begin(jn_settle *s, jn_settle_msg *m, const char *id) {
    waiting_remove(s, m); /* a message called again starts over */
    m->id[0] = '\0';
    s->call_unindexed = 0;
    if (usable_id(id)) {
        /* Waiting from here on (the call may answer its own id right away), but kept out
         * of the index until the call ends (call_unindexed). */
        memcpy(m->id, id, strlen(id) + 1);
        m->in_waiting = 1;
        s->nwaiting++;
        s->call_unindexed = 1;
    }
    m->in_call = 1;
    s->call = m;
    s->call_answered = 0;
    s->call_records = 0;
}

jn_settle_rec *jn_settle_record(jn_settle *s, const char *id, int nsinks, void *owner) {
    jn_settle_rec *rec = s->spare;
    if (rec) {
        s->spare = rec->next;
        s->nspare--;
        memset(rec, 0, sizeof *rec);
    } else {
        rec = calloc(1, sizeof *rec);
        if (!rec) abort();
    }
    rec->msgs = rec->inline_msgs;
    rec->cap = (int)(sizeof rec->inline_msgs / sizeof *rec->inline_msgs);
    rec->sinks_left = nsinks;
    rec->owner = owner;
    rec->next = s->recs;
    if (rec->next) rec->next->prev = rec;
    s->recs = rec;
    s->nrecs++;
    if (s->call) s->call_records++;
    if (!usable_id(id)) return rec;
    /* A call's message answered by an earlier record of its call has left waiting; it
     * waits for every later record of the call with its id as well, or those records
     * would answer nobody and its offset could pass before they are delivered. */
    int again = s->call && s->call_answered && !strcmp(id, s->call->id);
    if (s->call && s->call_unindexed && !strcmp(id, s->call->id)) {
        /* The call's message, newest of those waiting for id: first, as the head of the
         * index's chain would have been. */
        s->call_unindexed = 0;
        leave_waiting(s, s->call);
        rec_attach(rec, s->call);
        s->call_answered = 1;
    }
    for (jn_settle_msg *m = waiting_take(s, id), *next; m; m = next) {
        next = m->wnext;
        m->wnext = NULL;
        rec_attach(rec, m);
        if (m == s->call) s->call_answered = 1;
    }
    if (again) rec_attach(rec, s->call);
    return rec;
}

/* The fate of the call's message m, per jn_settle_call_end. */
static void call_decide(jn_settle *s, jn_settle_msg *m, int held, uint64_t now_ms, uint64_t hold_ms,
                        const char *failed) {
    if (failed) {
        waiting_remove(s, m);
        if (!m->refused) m->refused = jn_errorf("%s", failed);
        call_records_join(s, m);
    } else if (s->call_answered) {
        /* It waits in the answering record(s) already, and for the call's other records
         * too: they are its output, and settling before they are delivered would let a
         * crash lose them. */
        call_records_join(s, m);
    } else if (held && m->in_waiting) {
        if (s->call_unindexed) {
            /* Into the index now, at the head of its id's chain as if from the start:
             * nothing else entered waiting during the call. */
            s->call_unindexed = 0;
            s->nwaiting--;
            waiting_add(s, m);
        }
        held_insert(s, m, now_ms + hold_ms);
        call_records_join(s, m);
    } else {
        /* filtered, or the id changed: what the call produced stands for m */
        waiting_remove(s, m);
        call_records_join(s, m);
    }
}

int jn_settle_call_end(jn_settle *s, int held, uint64_t now_ms, uint64_t hold_ms,
                       const char *failed) {
    jn_settle_msg *m = s->call;
    if (!m) { /* no call, or its message was forgotten meanwhile */
        call_close(s);
        return 0;
    }
    m->in_call = 0;
    call_decide(s, m, held, now_ms, hold_ms, failed);
    call_close(s); /* may finish m: finish() then clears s->call */
    if (s->call != m) return 1;
    s->call = NULL;
    if (!can_finish(m)) return 0;
    finish(s, m);
    return 1;
}

void jn_settle_report(jn_settle *s, jn_settle_rec *rec, int status, const char *reason) {
    if (status != 0 && !rec->refused) rec->refused = jn_errorf("%s", reason ? reason : "refused");
    if (--rec->sinks_left > 0) return;
    /* A record of the call in progress waits for call_end, which first decides whether
     * the call's message waits for it too. */
    if (s->call && is_call_record(s, rec)) return;
    rec_done(s, rec);
}

int jn_settle_expire(jn_settle *s, uint64_t now_ms) {
    int n = 0;
    /* Re-read the head each time: finishing one may free it. */
    while (s->held_head && s->held_head->held_until <= now_ms) {
        jn_settle_msg *m = s->held_head;
        waiting_remove(s, m);
        if (!m->refused) m->refused = jn_errorf("%s", expired_reason);
        n++;
        if (can_finish(m)) finish(s, m);
    }
    return n;
}

void jn_settle_forget(jn_settle *s, jn_settle_msg *m) {
    if (m->finished) return;
    waiting_remove(s, m);
    /* Stop scanning once every entry counted in outstanding is found. */
    for (jn_settle_rec *r = s->recs; r && m->outstanding > 0; r = r->next)
        m->outstanding -= rec_detach(r, m);
    m->outstanding = 0;
    free(m->refused);
    m->refused = NULL;
    m->finished = 1;
    if (m->in_call && s->call == m) {
        m->in_call = 0;
        s->call = NULL;
        call_close(s); /* its records cannot wait for a call_end that decides nothing */
    }
    m->in_call = 0;
}

size_t jn_settle_waiting(const jn_settle *s) {
    return (size_t)s->nwaiting;
}
