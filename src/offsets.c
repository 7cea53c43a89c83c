/* Commit watermark. The settled prefix is dropped as soon as it forms, so the ring
 * holds only the window between the oldest unsettled message and the newest one. */
#include "offsets.h"

#include <stdlib.h>
#include <string.h>

void jn_offsets_init(jn_offsets *o) {
    memset(o, 0, sizeof *o);
    o->next = -1;
    o->committed = -1;
}

void jn_offsets_free(jn_offsets *o) {
    free(o->offs);
    free(o->done);
    jn_offsets_init(o);
}

static void grow(jn_offsets *o) {
    size_t cap = o->cap ? o->cap * 2 : 256;
    int64_t *offs = malloc(cap * sizeof *offs);
    unsigned char *done = malloc(cap);
    if (!offs || !done) abort();
    for (size_t i = 0; i < o->len; i++) {
        offs[i] = o->offs[(o->head + i) % o->cap];
        done[i] = o->done[(o->head + i) % o->cap];
    }
    free(o->offs);
    free(o->done);
    o->offs = offs;
    o->done = done;
    o->cap = cap;
    o->head = 0;
}

int jn_offsets_track(jn_offsets *o, int64_t offset) {
    if (o->next >= 0 && offset < o->next) return -1;
    if (o->len == o->cap) grow(o);
    size_t at = (o->head + o->len) % o->cap;
    o->offs[at] = offset;
    o->done[at] = 0;
    o->len++;
    o->next = offset + 1;
    return 0;
}

int jn_offsets_settle(jn_offsets *o, int64_t offset) {
    /* Binary search: the ring is sorted by offset. */
    size_t lo = 0, hi = o->len;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int64_t v = o->offs[(o->head + mid) % o->cap];
        if (v < offset)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo == o->len || o->offs[(o->head + lo) % o->cap] != offset) return -1;
    size_t at = (o->head + lo) % o->cap;
    if (o->done[at]) return -1;
    o->done[at] = 1;
    while (o->len && o->done[o->head]) {
        o->head = (o->head + 1) % o->cap;
        o->len--;
    }
    return 0;
}

int64_t jn_offsets_committable(const jn_offsets *o) {
    if (o->next < 0) return -1;
    return o->len ? o->offs[o->head] : o->next;
}

size_t jn_offsets_pending(const jn_offsets *o) {
    size_t n = 0;
    for (size_t i = 0; i < o->len; i++)
        n += !o->done[(o->head + i) % o->cap];
    return n;
}
