/* Settlement: when a message a pipeline read is over, decided from what the host handed
 * the transform, never from ids the transform chose. A pure state machine (no I/O, no
 * clock of its own, no Lua), so every path is unit-tested like offsets.c.
 *
 * A message is handed to one transform call. The call produces records (zero or more),
 * each routed to one or more sinks; it may also hold the message (the transform keeps
 * its record back, waiting for table data) with a deadline. The message is finished
 * once every record it waits for has been reported by every sink it went to and it is
 * not held, or at once when it produced none. A held message is released by a later
 * record answering its id (emitted by any later call or the timer hook), or by its
 * deadline, when it finishes as refused ("held past its deadline"). A record a sink
 * refused for good makes every message waiting for it finish as refused with the sink's
 * reason. The owner then marks a finished message as processed and lets its offset go
 * (refused: dead-letters it first).
 *
 * Records answering no message (a table change re-emitting joined records) are tracked
 * too, so the owner can dead-let them if a sink refuses them.
 *
 * The owner embeds jn_settle_msg in its own message struct and is called back through
 * on_finished; records are allocated here. The callbacks must not call back into the
 * machine (they run while it walks its lists). One call is in progress at a time. */
#ifndef JN_SETTLE_H
#define JN_SETTLE_H

#include <stddef.h>
#include <stdint.h>

#include "strmap.h"

/* An id of JN_SETTLE_ID_MAX bytes or more counts as no id: a message carrying one cannot
 * be answered by id (it waits for the records of its call), a record with one answers
 * nobody. */
#define JN_SETTLE_ID_MAX 64

typedef struct jn_settle_msg jn_settle_msg;
typedef struct jn_settle_rec jn_settle_rec;

struct jn_settle_msg {
    char id[JN_SETTLE_ID_MAX]; /* the id of the record it carried ("" when none) */
    int outstanding;           /* records of it not yet reported by every sink */
    int in_waiting;            /* registered under id, waiting for a record answering it */
    int held;                  /* the transform held it: in_waiting with a deadline */
    int in_call;               /* between jn_settle_call_begin and _end */
    int finished;              /* on_finished ran (or it was forgotten) */
    uint64_t held_until;       /* the owner's milliseconds */
    char *refused;             /* why a record of it was refused, once one was (malloc'd) */
    jn_settle_msg *wnext;      /* same id in waiting */
    jn_settle_msg *held_prev, *held_next;
};

struct jn_settle_rec {
    jn_settle_msg **msgs; /* messages waiting for this record */
    int nmsgs, cap;
    jn_settle_msg *inline_msgs[2];
    int sinks_left; /* sinks that have not reported yet */
    char *refused;  /* first refusal reason (malloc'd) */
    void *owner;    /* the owner's data for this record (e.g. its JSON for a dead letter) */
    int tag;        /* the owner's too (0 when made) */
    jn_settle_rec *prev, *next;
};

typedef struct {
    /* m is over (m->finished is set): refused is NULL when every record of it was
     * delivered (or it produced none), else the first reason. refused is valid only
     * during the call (the machine frees it after; m->refused is already NULL). The owner
     * may free m's storage in or after this callback: the machine does not touch m again. */
    void (*on_finished)(void *ud, jn_settle_msg *m, const char *refused);
    /* A record answering no message was refused by a sink: the owner dead-letters it
     * (rec->owner is its data). Called before the record is freed. */
    void (*on_orphan_refused)(void *ud, jn_settle_rec *rec, const char *reason);
    /* The record is about to be freed: the owner releases rec->owner. May be NULL. */
    void (*on_rec_free)(void *ud, jn_settle_rec *rec);
} jn_settle_cbs;

typedef struct {
    jn_settle_cbs cbs;
    void *ud;
    jn_strmap *waiting; /* id -> first jn_settle_msg (packed pointer), chained by wnext */
    jn_settle_msg *held_head, *held_tail; /* held messages, soonest deadline first */
    jn_settle_rec *recs;                  /* every live record */
    jn_settle_msg *call;                  /* the message of the call in progress, or NULL */
    /* The call's message waits for its id without being in the index yet: most calls
     * answer their own id at once, and then it never has to be put there and taken out.
     * It goes in when the call ends held. */
    int call_unindexed;
    jn_settle_rec *spare; /* freed records kept for reuse, chained by next */
    long nspare;
    int call_answered; /* a record of the call answered its id */
    int call_records;  /* records the call produced so far */
    long nrecs, nheld;
    long nwaiting; /* messages in waiting (the map counts ids, several may share one) */
} jn_settle;

void jn_settle_init(jn_settle *s, const jn_settle_cbs *cbs, void *ud);
/* Frees every record (on_rec_free runs for each) and the waiting index; init again to
 * reuse s. Messages are the owner's and are neither reported nor touched: the owner
 * frees m->refused of those it did not forget, or forgets them first. */
void jn_settle_free(jn_settle *s);

/* A transform call on m starts; id is the id of the record handed to it (NULL or "" when
 * it has none: then it can only finish from the records of this call). m must be zeroed
 * by the owner before its first call. Until call_end, m never finishes (not even when
 * every record it waits for is reported). */
void jn_settle_call_begin(jn_settle *s, jn_settle_msg *m, const char *id);
/* The call (or, when no call is in progress, the timer hook or a table change) produced
 * a record with the given id (NULL when it has none), sent to nsinks sinks (nsinks >= 1,
 * or it never completes). Every message waiting for that id leaves waiting and waits for
 * it (held ones are released). In a call, the call's message is one of them when the id
 * is its own (the call "answered" it), and then it also waits for every later record of
 * the call with that id; when no record of the call answers it, call_end decides (see
 * there). owner is stored in the record. */
jn_settle_rec *jn_settle_record(jn_settle *s, const char *id, int nsinks, void *owner);
/* The call on m ended; m's fate, first rule that applies:
 *   failed (non-NULL: the call raised, failed says why): m leaves waiting, is refused
 *     with that reason (unless already refused), waits for every record the call
 *     produced and finishes once they are reported (at once when there is none);
 *   a record of the call answered its id: m waits for the answering record(s) and for
 *     every other record of the call;
 *   held: m stays in waiting until now_ms + hold_ms (jn_settle_expire), released by a
 *     later record with its id (ignored when m has no id: nothing could release it), and
 *     waits for every record the call produced as well;
 *   otherwise (filtered, or the transform changed the id): m leaves waiting and waits
 *     for every record the call produced; with none it finishes at once.
 * Records of the call whose sinks all reported before this point complete here, after m
 * joined them. Returns 1 when m finished inside this call (on_finished ran; m may be
 * freed already), else 0. Without a call in progress (or after its message was
 * forgotten) it does nothing and returns 0. */
int jn_settle_call_end(jn_settle *s, int held, uint64_t now_ms, uint64_t hold_ms,
                       const char *failed);
/* A sink reported rec: status 0 delivered, otherwise refused for good with reason (the
 * record keeps the first). Once every sink reported, the waiting messages move on (a
 * refused record refuses each, unless already refused; a refused record with none goes
 * to on_orphan_refused), finish when nothing else holds them, and rec is freed
 * (on_rec_free first): rec is invalid after the last report. A record of the call in
 * progress completes at call_end instead. */
void jn_settle_report(jn_settle *s, jn_settle_rec *rec, int status, const char *reason);
/* Finishes (as refused: "held by the transform past its deadline without output") every
 * held message whose deadline is <= now_ms, or, when records of it are still out, makes
 * it finish refused once they are reported. Returns how many expired. */
int jn_settle_expire(jn_settle *s, uint64_t now_ms);
/* The owner drops m without an outcome (its partition was revoked, or the process stops):
 * it leaves waiting and every record's list (the records go on, answering nobody else),
 * its reason is freed and it is marked finished; on_finished is not called. Does
 * nothing on a finished message. Forgetting the message of the call in progress ends
 * the call's bookkeeping: call_end then does nothing. Costs a scan of the live records
 * when m has records out. */
void jn_settle_forget(jn_settle *s, jn_settle_msg *m);
/* Messages waiting for a record answering their id (held or in a call). */
size_t jn_settle_waiting(const jn_settle *s);

#endif
