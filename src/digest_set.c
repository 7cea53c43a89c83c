/* Open addressing with linear probing; a removal shifts the rest of its run back, so no
 * tombstones build up in a set that sees a put and a del per message. The digests are
 * cryptographic hashes: their first bytes are the slot, no hashing of our own. */
#include "digest_set.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* The digest's first 8 bytes are kept beside the pointer: a probe compares them and
 * reads the digest itself (another cache line, in another allocation) only when they
 * match. */
typedef struct {
    uint64_t head;
    const unsigned char *digest; /* NULL: empty */
    void *obj;
} slot;

struct jn_digest_set {
    slot *slots;
    size_t cap, count; /* cap a power of two, count at most half of it */
};

static uint64_t head_of(const unsigned char *d) {
    uint64_t h;
    memcpy(&h, d, sizeof h);
    return h;
}

static size_t home(const jn_digest_set *s, uint64_t head) {
    return (size_t)head & (s->cap - 1);
}

static slot *alloc_slots(size_t cap) {
    slot *t = calloc(cap, sizeof *t);
    if (!t) abort();
    return t;
}

jn_digest_set *jn_digest_set_new(void) {
    jn_digest_set *s = calloc(1, sizeof *s);
    if (!s) abort();
    s->cap = 64;
    s->slots = alloc_slots(s->cap);
    return s;
}

void jn_digest_set_free(jn_digest_set *s) {
    if (!s) return;
    free(s->slots);
    free(s);
}

/* The slot holding digest, or the empty slot ending its run. */
static size_t find(const jn_digest_set *s, const unsigned char *d) {
    uint64_t head = head_of(d);
    size_t mask = s->cap - 1, i = home(s, head);
    while (s->slots[i].digest &&
           (s->slots[i].head != head || memcmp(s->slots[i].digest, d, JN_DIGEST_LEN) != 0))
        i = (i + 1) & mask;
    return i;
}

void *jn_digest_set_get(const jn_digest_set *s, const unsigned char *digest) {
    return s->slots[find(s, digest)].obj;
}

static void grow(jn_digest_set *s) {
    slot *old = s->slots;
    size_t ocap = s->cap;
    s->cap *= 2;
    s->slots = alloc_slots(s->cap);
    for (size_t i = 0; i < ocap; i++)
        if (old[i].digest) s->slots[find(s, old[i].digest)] = old[i];
    free(old);
}

void jn_digest_set_put(jn_digest_set *s, const unsigned char *digest, void *obj) {
    size_t i = find(s, digest);
    if (!s->slots[i].digest) {
        if ((s->count + 1) * 2 > s->cap) {
            grow(s);
            i = find(s, digest);
        }
        s->count++;
    }
    s->slots[i] = (slot){head_of(digest), digest, obj};
}

int jn_digest_set_del(jn_digest_set *s, const unsigned char *digest) {
    size_t mask = s->cap - 1, i = find(s, digest);
    if (!s->slots[i].digest) return 0;
    /* Move back every later entry of the run that may sit at i: one whose home is not
     * cyclically within (i, j]. */
    for (size_t j = (i + 1) & mask; s->slots[j].digest; j = (j + 1) & mask) {
        size_t h = home(s, s->slots[j].head);
        if (((j - h) & mask) >= ((j - i) & mask)) {
            s->slots[i] = s->slots[j];
            i = j;
        }
    }
    s->slots[i] = (slot){0, NULL, NULL};
    s->count--;
    return 1;
}

size_t jn_digest_set_count(const jn_digest_set *s) {
    return s->count;
}
