/* String map with linear probing, kept at most half full.
 *
 * The hashes live in an array of their own, so a probe reads 8 bytes per slot (eight to
 * a cache line) and touches an entry only when its hash matches: the consumer looks up
 * every message's content hash in a map of tens of thousands of keys, where each probe
 * used to be a cache miss. Keys of up to SMALL bytes are stored in the entry, longer
 * ones in memory of their own. Deletion moves later entries of the same run back
 * (backward shift), so no tombstones pile up between rebuilds and probes stay short
 * whatever the churn. */
#include "strmap.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define SMALL 40

typedef struct {
    char *heap; /* the key when longer than SMALL, else NULL and the key is in small */
    size_t len;
    unsigned char value[JN_STRMAP_VALUE];
    char small[SMALL];
} entry;

struct jn_strmap {
    uint64_t *hashes; /* 0 = empty slot */
    entry *entries;
    size_t cap, count;
};

static uint64_t hash_of(const char *s, size_t len) {
    uint64_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h ? h : 1;
}

static const char *key_of(const entry *e) {
    return e->heap ? e->heap : e->small;
}

static void *xcalloc(size_t n, size_t size) {
    void *p = calloc(n, size);
    if (!p) abort();
    return p;
}

static void rebuild(jn_strmap *m, size_t cap) {
    uint64_t *oh = m->hashes;
    entry *oe = m->entries;
    size_t ocap = m->cap;
    m->hashes = xcalloc(cap, sizeof *m->hashes);
    m->entries = malloc(cap * sizeof *m->entries);
    if (!m->entries) abort();
    m->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (!oh[i]) continue;
        size_t j = oh[i] & (cap - 1);
        while (m->hashes[j])
            j = (j + 1) & (cap - 1);
        m->hashes[j] = oh[i];
        m->entries[j] = oe[i];
    }
    free(oh);
    free(oe);
}

jn_strmap *jn_strmap_new(void) {
    jn_strmap *m = xcalloc(1, sizeof *m);
    rebuild(m, 64);
    return m;
}

void jn_strmap_clear(jn_strmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->hashes[i]) free(m->entries[i].heap);
    memset(m->hashes, 0, m->cap * sizeof *m->hashes);
    m->count = 0;
}

void jn_strmap_free(jn_strmap *m) {
    if (!m) return;
    jn_strmap_clear(m);
    free(m->hashes);
    free(m->entries);
    free(m);
}

/* The slot holding key, or the empty slot ending its run (*found tells which). */
static size_t find(const jn_strmap *m, const char *key, size_t len, uint64_t h, int *found) {
    size_t mask = m->cap - 1, j = h & mask;
    for (; m->hashes[j]; j = (j + 1) & mask) {
        if (m->hashes[j] != h) continue;
        const entry *e = &m->entries[j];
        if (e->len == len && !memcmp(key_of(e), key, len)) {
            *found = 1;
            return j;
        }
    }
    *found = 0;
    return j;
}

const unsigned char *jn_strmap_get(const jn_strmap *m, const char *key, size_t len) {
    int found;
    size_t j = find(m, key, len, hash_of(key, len), &found);
    return found ? m->entries[j].value : NULL;
}

void jn_strmap_set(jn_strmap *m, const char *key, size_t len,
                   const unsigned char value[JN_STRMAP_VALUE]) {
    uint64_t h = hash_of(key, len);
    int found;
    size_t j = find(m, key, len, h, &found);
    if (!found) {
        if ((m->count + 1) * 2 > m->cap) {
            rebuild(m, m->cap * 2);
            j = find(m, key, len, h, &found);
        }
        entry *e = &m->entries[j];
        e->heap = NULL;
        if (len > SMALL) {
            e->heap = malloc(len);
            if (!e->heap) abort();
        }
        memcpy(e->heap ? e->heap : e->small, key, len);
        e->len = len;
        m->hashes[j] = h;
        m->count++;
    }
    memcpy(m->entries[j].value, value, JN_STRMAP_VALUE);
}

int jn_strmap_del(jn_strmap *m, const char *key, size_t len) {
    int found;
    size_t mask = m->cap - 1, hole = find(m, key, len, hash_of(key, len), &found);
    if (!found) return 0;
    free(m->entries[hole].heap);
    m->count--;
    /* Backward shift: an entry later in the run moves into the hole unless its home slot
     * lies cyclically after the hole and at or before where it is now. */
    for (size_t j = (hole + 1) & mask; m->hashes[j]; j = (j + 1) & mask) {
        size_t home = m->hashes[j] & mask;
        int stays = hole < j ? (home > hole && home <= j) : (home > hole || home <= j);
        if (stays) continue;
        m->hashes[hole] = m->hashes[j];
        m->entries[hole] = m->entries[j];
        hole = j;
    }
    m->hashes[hole] = 0;
    return 1;
}

size_t jn_strmap_count(const jn_strmap *m) {
    return m->count;
}
