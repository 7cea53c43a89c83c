/* The commit watermark of one partition. Messages are tracked in the order they arrive
 * (increasing offsets, possibly with gaps) and settled in any order: delivered,
 * skipped as a duplicate, or dead-lettered. The committable offset is the first offset
 * not yet settled, so a commit never covers a message that could still be lost. */
#ifndef JN_OFFSETS_H
#define JN_OFFSETS_H

#include <stddef.h>
#include <stdint.h>

typedef struct {
    int64_t *offs;       /* ring of tracked offsets, oldest first */
    unsigned char *done; /* settled flags, parallel to offs */
    size_t head, len, cap;
    int64_t next;      /* one past the highest offset tracked (what to commit when all done) */
    int64_t committed; /* last offset handed to a commit, -1 when none */
} jn_offsets;

void jn_offsets_init(jn_offsets *o);
void jn_offsets_free(jn_offsets *o);
/* Tracks a new message. Offsets must increase; an offset at or below the last one is
 * ignored and returns -1 (a redelivery after a seek). */
int jn_offsets_track(jn_offsets *o, int64_t offset);
/* Settles a tracked message. Returns -1 when it is not tracked (already settled and
 * dropped, or never seen). */
int jn_offsets_settle(jn_offsets *o, int64_t offset);
/* The offset to commit: the lowest unsettled one, or one past the highest when all are
 * settled; -1 when nothing was ever tracked. */
int64_t jn_offsets_committable(const jn_offsets *o);
/* Messages tracked and not settled. */
size_t jn_offsets_pending(const jn_offsets *o);

#endif
