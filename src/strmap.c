/* String map with linear probing. A deleted slot becomes a tombstone so later probes
 * keep going; tombstones are dropped whenever the table is rebuilt. */
#include "strmap.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    char *key; /* NULL = empty; TOMB = deleted */
    size_t len;
    size_t hash;
    unsigned char value[JN_STRMAP_VALUE];
} slot;

struct jn_strmap {
    slot *slots;
    size_t cap, count, used; /* used = live + tombstones */
};

static char tomb_marker;
#define TOMB (&tomb_marker)

static size_t hash_of(const char *s, size_t len) {
    size_t h = 1469598103934665603ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)s[i]) * 1099511628211ull;
    return h;
}

static void rebuild(jn_strmap *m, size_t cap) {
    slot *old = m->slots;
    size_t oldcap = m->cap;
    m->slots = calloc(cap, sizeof *m->slots);
    if (!m->slots) abort();
    m->cap = cap;
    m->used = m->count;
    for (size_t i = 0; i < oldcap; i++) {
        if (!old[i].key || old[i].key == TOMB) continue;
        size_t j = old[i].hash & (cap - 1);
        while (m->slots[j].key)
            j = (j + 1) & (cap - 1);
        m->slots[j] = old[i];
    }
    free(old);
}

jn_strmap *jn_strmap_new(void) {
    jn_strmap *m = calloc(1, sizeof *m);
    if (!m) abort();
    rebuild(m, 64);
    return m;
}

void jn_strmap_clear(jn_strmap *m) {
    for (size_t i = 0; i < m->cap; i++)
        if (m->slots[i].key && m->slots[i].key != TOMB) free(m->slots[i].key);
    memset(m->slots, 0, m->cap * sizeof *m->slots);
    m->count = m->used = 0;
}

void jn_strmap_free(jn_strmap *m) {
    if (!m) return;
    jn_strmap_clear(m);
    free(m->slots);
    free(m);
}

static slot *find(const jn_strmap *m, const char *key, size_t len, size_t h) {
    size_t j = h & (m->cap - 1);
    while (m->slots[j].key) {
        slot *s = &m->slots[j];
        if (s->key != TOMB && s->hash == h && s->len == len && !memcmp(s->key, key, len)) return s;
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

const unsigned char *jn_strmap_get(const jn_strmap *m, const char *key, size_t len) {
    slot *s = find(m, key, len, hash_of(key, len));
    return s ? s->value : NULL;
}

void jn_strmap_set(jn_strmap *m, const char *key, size_t len,
                   const unsigned char value[JN_STRMAP_VALUE]) {
    size_t h = hash_of(key, len);
    slot *s = find(m, key, len, h);
    if (!s) {
        if ((m->used + 1) * 4 >= m->cap * 3)
            rebuild(m, m->count * 4 >= m->cap ? m->cap * 2 : m->cap);
        size_t j = h & (m->cap - 1);
        while (m->slots[j].key && m->slots[j].key != TOMB)
            j = (j + 1) & (m->cap - 1);
        s = &m->slots[j];
        if (!s->key) m->used++;
        s->key = malloc(len + 1);
        if (!s->key) abort();
        memcpy(s->key, key, len);
        s->key[len] = '\0';
        s->len = len;
        s->hash = h;
        m->count++;
    }
    memcpy(s->value, value, JN_STRMAP_VALUE);
}

int jn_strmap_del(jn_strmap *m, const char *key, size_t len) {
    slot *s = find(m, key, len, hash_of(key, len));
    if (!s) return 0;
    free(s->key);
    s->key = TOMB;
    m->count--;
    return 1;
}

size_t jn_strmap_count(const jn_strmap *m) {
    return m->count;
}
