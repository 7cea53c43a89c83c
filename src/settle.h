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
 * on_finished; records are allocated here. */
#ifndef JN_SETTLE_H
#define JN_SETTLE_H

#include <stddef.h>
#include <stdint.h>

#include "strmap.h"

#define JN_SETTLE_ID_MAX 64 /* ids longer than this cannot be waited for */

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
    jn_settle_rec *prev, *next;
};

typedef struct {
    /* m is over: refused is NULL when every record of it was delivered (or it produced
     * none), else the first reason. The owner may free m's storage after this returns,
     * once it no longer needs it (the machine does not touch m again). */
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
    jn_settle_msg *held_head, *held_tail; /* held messages, by deadline (insertion order) */
    jn_settle_rec *recs;                  /* every live record */
    jn_settle_msg *call;                  /* the message of the call in progress, or NULL */
    int call_answered;                    /* a record of the call answered its id */
    int call_records;                     /* records the call produced so far */
    long nrecs, nheld;
} jn_settle;

void jn_settle_init(jn_settle *s, const jn_settle_cbs *cbs, void *ud);
/* Frees every record and the waiting index; messages are the owner's and are not
 * reported. */
void jn_settle_free(jn_settle *s);

/* A transform call on m starts; id is the id of the record handed to it (NULL or "" when
 * it has none: then it can only finish from the records of this call). m must be zeroed
 * by the owner before its first call. */
void jn_settle_call_begin(jn_settle *s, jn_settle_msg *m, const char *id);
/* The call (or, when no call is in progress, the timer hook or a table change) produced
 * a record with the given id (NULL when it has none), sent to nsinks sinks (nsinks >= 1).
 * Every message waiting for that id now waits for it (held ones are released); in a
 * call, so does the call's message. owner is stored in the record. */
jn_settle_rec *jn_settle_record(jn_settle *s, const char *id, int nsinks, void *owner);
/* The call on m ended. held: the transform held m until now_ms + hold_ms (ignored when a
 * record of the call answered its id). failed: the call raised (reason says why): m is
 * finished as refused once the records it already produced are reported. Returns 1 when
 * m finished inside this call (on_finished ran), else 0. */
int jn_settle_call_end(jn_settle *s, int held, uint64_t now_ms, uint64_t hold_ms,
                       const char *failed);
/* A sink reported rec: status 0 delivered, otherwise refused for good with reason. Once
 * every sink reported, the waiting messages move on (and may finish) and rec is freed. */
void jn_settle_report(jn_settle *s, jn_settle_rec *rec, int status, const char *reason);
/* Finishes (as refused) every held message whose deadline is <= now_ms. Returns how
 * many expired. */
int jn_settle_expire(jn_settle *s, uint64_t now_ms);
/* The owner drops m without an outcome (its partition was revoked, or the process stops):
 * it leaves waiting and every record's list; on_finished is not called. */
void jn_settle_forget(jn_settle *s, jn_settle_msg *m);
/* Messages waiting for a record answering their id (held or in a call). */
size_t jn_settle_waiting(const jn_settle *s);

#endif
