/* The host's join (see join.h).
 *
 * Memory is what the join needs and little more: a stream record is one allocation
 * holding its key, its text (as received: the output is spliced from it) and, per table
 * key it references, where it sits in that key's list of referrers. A table key is one
 * allocation with that list and the kept fields of its table record. Both are found
 * through open-addressing tables of pointers. No record is decoded: members are found in
 * the canonical text, and the output copies them around the fields the join sets.
 *
 * A kept text is packed: each top-level member's `"name":` is one byte, its number in a
 * dictionary of the names the stream uses (up to 31 of them, kept for the join's life).
 * Canonical JSON has no raw byte below 0x20 (strings escape them, blanks are absent), so
 * those bytes are free to stand for names; a text that has one anyway is kept as it is.
 * The seed's customers lose 36 of their 110 bytes; unpacking costs a copy, paid only
 * when a record held or kept is merged again. */
#include "join.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "buf.h"
#include "error.h"
#include "json.h"

typedef struct ref ref;

/* A stream record, followed in its allocation by ref *refs[nrefs], uint32_t pos[nrefs]
 * (its place in each ref's list), its key and its text, each NUL-terminated. */
typedef struct cust {
    uint64_t h;
    uint32_t tlen;
    uint32_t held; /* its entry's ticket in the held queue; 0: not held */
    uint16_t klen, nrefs;
    uint16_t part;    /* the stream partition it came from (jn_join_keep_partitions) */
    uint8_t restored; /* from a changelog replay, not read from the stream since */
    uint8_t packed;   /* its text has names replaced by dictionary numbers */
} cust;

/* A table key: the stream records referencing it, and its table record (NULL: not seen). */
struct ref {
    uint64_t h;
    cust **mem;
    uint32_t n, cap;
    char *rec;
    uint32_t rlen;
    uint16_t klen;
    char key[];
};

static ref **refs_of(cust *c) {
    return (ref **)(c + 1);
}
static uint32_t *pos_of(cust *c) {
    return (uint32_t *)(refs_of(c) + c->nrefs);
}
static char *key_of(cust *c) {
    return (char *)(pos_of(c) + c->nrefs);
}
static char *text_of(cust *c) {
    return key_of(c) + c->klen + 1;
}

/* What a stream record costs, its slot in the map included (join_bytes). */
static size_t cust_bytes(const cust *c) {
    return sizeof(cust) + c->nrefs * (sizeof(ref *) + sizeof(uint32_t)) + c->klen + 1 + c->tlen +
           1 + sizeof(void *);
}

/* Open addressing over pointers to entries that start with their hash. Each slot has a
 * byte of its entry's hash beside it: a probe reads the entry (a cache miss, with
 * hundreds of thousands of them) only when that byte matches. */
typedef struct {
    void **slot;
    uint8_t *tag;
    size_t cap, n; /* cap: a power of two */
    int custs;     /* entries are custs (else refs) */
} map;

static uint64_t hash(const char *k, size_t len) {
    uint64_t h = 1469598103934665603ULL;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)k[i]) * 1099511628211ULL;
    return h ^ (h >> 29);
}

static int same_key(const map *m, void *e, const char *k, size_t klen) {
    if (m->custs) {
        cust *c = e;
        return c->klen == klen && !memcmp(key_of(c), k, klen);
    }
    const ref *r = e;
    return r->klen == klen && !memcmp(r->key, k, klen);
}

/* The slot holding key k, or the empty slot where it would go. */
static uint8_t tag_of(uint64_t h) {
    return (uint8_t)(h >> 56);
}

static size_t map_find(const map *m, uint64_t h, const char *k, size_t klen) {
    size_t i = (size_t)h & (m->cap - 1);
    uint8_t t = tag_of(h);
    for (;;) {
        void *e = m->slot[i];
        if (!e || (m->tag[i] == t && *(uint64_t *)e == h && same_key(m, e, k, klen))) return i;
        i = (i + 1) & (m->cap - 1);
    }
}

static void *map_get(const map *m, uint64_t h, const char *k, size_t klen) {
    return m->cap ? m->slot[map_find(m, h, k, klen)] : NULL;
}

static void map_grow(map *m) {
    size_t cap = m->cap ? m->cap * 2 : 64;
    void **old = m->slot;
    uint8_t *otag = m->tag;
    size_t ocap = m->cap;
    m->slot = calloc(cap, sizeof *m->slot);
    m->tag = malloc(cap);
    if (!m->slot || !m->tag) abort();
    m->cap = cap;
    for (size_t i = 0; i < ocap; i++) {
        if (!old[i]) continue;
        size_t j = (size_t) * (uint64_t *)old[i] & (cap - 1);
        while (m->slot[j])
            j = (j + 1) & (cap - 1);
        m->slot[j] = old[i];
        m->tag[j] = otag[i];
    }
    free(old);
    free(otag);
}

/* Puts e under key k, replacing what was there. */
static void map_put(map *m, uint64_t h, const char *k, size_t klen, void *e) {
    if ((m->n + 1) * 4 > m->cap * 3) map_grow(m);
    size_t i = map_find(m, h, k, klen);
    if (!m->slot[i]) m->n++;
    m->slot[i] = e;
    m->tag[i] = tag_of(h);
}

/* The names of packed texts: entry i (1 <= i < DICT_MAX) is byte i of a packed text. */
#define DICT_MAX 32
/* Records with more members are kept unpacked (the plan lives on the stack). */
#define PACK_MAX 64
typedef struct {
    char *tok[DICT_MAX]; /* `"name":` */
    uint8_t len[DICT_MAX];
    int n; /* entries 1 .. n - 1 are used */
} dict;

/* Held stream records, oldest first: the key, the time it was held and a ticket the
 * record holds while this entry stands for it. An entry whose record left the hold since
 * (or was held again: a later entry, another ticket) is skipped. */
typedef struct {
    char *key;
    size_t klen;
    double since;
    uint32_t ticket;
} held_entry;

struct jn_join {
    jn_join_spec *spec;
    long hold_ms, hold_max;
    map custs, refs;
    size_t nheld, bytes;
    held_entry *q;
    size_t qhead, qlen, qcap; /* a ring */
    uint32_t tickets;         /* the last ticket given (held_entry) */
    /* A record came from a partition numbered UINT16_MAX or more, which cust.part cannot
     * hold: jn_join_keep_partitions refuses until the next jn_join_forget. */
    int wide;
    jn_sb text; /* the output */
    jn_join_out *out;
    size_t nout, outcap;
    jn_json_member *m; /* members of the record being read */
    size_t mcap;
    jn_sb list, missing; /* scratch of a merge */
    jn_sb plain;         /* a kept text unpacked for a merge */
    char id[64];         /* the last record's id, id_len bytes (SIZE_MAX: too long) */
    size_t id_len;
    dict names; /* of packed texts */
    /* The stamp of the last merge: most merges of a burst share the millisecond. */
    double stamp_s, stamp_ms;
    char stamp[32];
};

/* ---- spec ---------------------------------------------------------------------------- */

void jn_join_spec_free(jn_join_spec *s) {
    if (!s) return;
    free(s->stream), free(s->table), free(s->refs), free(s->into), free(s->missing);
    free(s->stamp);
    for (int i = 0; i < s->nfields; i++)
        free(s->fields[i]);
    free(s->fields);
    free(s);
}

int jn_join_spec_same_shape(const jn_join_spec *a, const jn_join_spec *b) {
    return !strcmp(a->stream, b->stream) && !strcmp(a->table, b->table) &&
           !strcmp(a->refs, b->refs);
}

/* ---- reading canonical text ---------------------------------------------------------- */

/* The members of a canonical object into j->m; their count, or -1. */
static int members(jn_join *j, const char *t, size_t len) {
    for (;;) {
        if (!j->mcap) {
            j->mcap = 32;
            j->m = malloc(j->mcap * sizeof *j->m);
            if (!j->m) abort();
        }
        int n = jn_json_members_of_canonical(t, len, j->m, j->mcap);
        if (n >= 0 || j->mcap >= 65536) return n;
        /* Too many members for the array, or not an object: a bigger array tells. */
        j->mcap *= 4;
        j->m = realloc(j->m, j->mcap * sizeof *j->m);
        if (!j->m) abort();
    }
}

static int name_is(const char *t, const jn_json_member *m, const char *name, size_t len) {
    return m->klen == len && !memcmp(t + m->key, name, len);
}

static const jn_json_member *member_named(const jn_join *j, int n, const char *t,
                                          const char *name) {
    size_t len = strlen(name);
    for (int i = 0; i < n; i++)
        if (name_is(t, &j->m[i], name, len)) return &j->m[i];
    return NULL;
}

/* A scalar's text as a key: a string without its quotes, anything else as it is. */
static void key_span(const char *v, size_t vlen, const char **k, size_t *klen) {
    if (vlen >= 2 && *v == '"')
        *k = v + 1, *klen = vlen - 2;
    else
        *k = v, *klen = vlen;
}

/* Notes the id of the record just read (n members in j->m), for jn_join_last_id; one
 * too long for the copy is noted as too long for any caller. */
static void note_id(jn_join *j, const char *t, int n) {
    j->id_len = 0;
    const jn_json_member *m = n > 0 ? member_named(j, n, t, "id") : NULL;
    if (!m || t[m->val] == '{' || t[m->val] == '[') return;
    const char *k;
    size_t klen;
    key_span(t + m->val, m->vlen, &k, &klen);
    if (klen >= sizeof j->id) {
        j->id_len = SIZE_MAX;
        return;
    }
    memcpy(j->id, k, klen);
    j->id_len = klen;
}

void jn_join_last_id(const jn_join *j, char *id, size_t cap) {
    id[0] = '\0';
    if (!j->id_len || j->id_len >= cap) return;
    memcpy(id, j->id, j->id_len);
    id[j->id_len] = '\0';
}

/* The elements of the array at [v, v + vlen) (canonical: no blanks), one per call: the
 * span of the next after *p, 0 at the end. Not an array: no elements. */
static int next_element(const char *v, size_t vlen, const char **p, const char **e) {
    const char *end = v + vlen;
    if (!*p) {
        if (vlen < 2 || *v != '[') return 0;
        *p = v + 1;
    } else {
        *p = *e;
        if (*p < end && **p == ',') (*p)++;
    }
    if (*p >= end - 1 || **p == ']') return 0;
    *e = jn_json_skip_value(*p, end - 1);
    return *e > *p;
}

/* ---- stream records and the index ---------------------------------------------------- */

static ref *ref_get(jn_join *j, const char *k, size_t klen, int make) {
    uint64_t h = hash(k, klen);
    ref *r = map_get(&j->refs, h, k, klen);
    if (r || !make) return r;
    if (klen > UINT16_MAX) return NULL;
    r = calloc(1, sizeof *r + klen + 1);
    if (!r) abort();
    r->h = h;
    r->klen = (uint16_t)klen;
    memcpy(r->key, k, klen);
    map_put(&j->refs, h, k, klen, r);
    j->bytes += sizeof *r + klen + 1 + sizeof(void *);
    return r;
}

static void ref_add(jn_join *j, ref *r, cust *c, int i) {
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 4;
        r->mem = realloc(r->mem, r->cap * sizeof *r->mem);
        if (!r->mem) abort();
        j->bytes += r->cap / 2 * sizeof *r->mem;
    }
    refs_of(c)[i] = r;
    pos_of(c)[i] = r->n;
    r->mem[r->n++] = c;
}

/* Takes c out of every list it is in. */
static void unindex(cust *c) {
    for (int i = 0; i < c->nrefs; i++) {
        ref *r = refs_of(c)[i];
        uint32_t p = pos_of(c)[i];
        cust *last = r->mem[--r->n];
        if (p == r->n) continue;
        r->mem[p] = last;
        for (int k = 0; k < last->nrefs; k++)
            if (refs_of(last)[k] == r) pos_of(last)[k] = p;
    }
}

/* The distinct keys the record references, in order, into *spans (pairs of pointers). */
typedef struct {
    const char *k;
    size_t len;
} span;

static size_t distinct_refs(const char *v, size_t vlen, span **out, span *small, size_t nsmall) {
    span *s = small;
    size_t n = 0, cap = nsmall;
    const char *p = NULL, *e = NULL;
    while (next_element(v, vlen, &p, &e)) {
        const char *k;
        size_t klen;
        key_span(p, (size_t)(e - p), &k, &klen);
        /* No table key is that long (jn_join_table refuses one): it can only be missing. */
        if (klen > UINT16_MAX) continue;
        size_t i = 0;
        while (i < n && !(s[i].len == klen && !memcmp(s[i].k, k, klen)))
            i++;
        if (i < n) continue;
        if (n == cap) {
            cap *= 2;
            span *bigger = malloc(cap * sizeof *bigger);
            if (!bigger) abort();
            memcpy(bigger, s, n * sizeof *s);
            if (s != small) free(s);
            s = bigger;
        }
        s[n].k = k, s[n].len = klen;
        n++;
    }
    *out = s;
    return n;
}

/* ---- packed texts ------------------------------------------------------------------- */

/* The dictionary number of member m's `"name":` in t, added when new and there is room;
 * 0 when it has none. Records of a stream share their names in the same order, so the
 * search starts after the previous member's number. */
static uint8_t name_code(dict *d, const char *t, const jn_json_member *m, int *hint) {
    const char *tok = t + m->key - 1;
    size_t len = m->klen + 3;
    if (len > UINT8_MAX) return 0;
    for (int k = 0, i = *hint; k < d->n - 1; k++) {
        if (++i >= d->n) i = 1;
        if (d->len[i] == len && !memcmp(d->tok[i], tok, len)) {
            *hint = i;
            return (uint8_t)i;
        }
    }
    if (d->n == 0) d->n = 1;
    if (d->n == DICT_MAX) return 0;
    int i = d->n++;
    d->tok[i] = malloc(len);
    if (!d->tok[i]) abort();
    memcpy(d->tok[i], tok, len);
    d->len[i] = (uint8_t)len;
    *hint = i;
    return (uint8_t)i;
}

/* Whether t has a byte below 0x20 (then it is kept unpacked). Eight bytes at a time: a
 * byte below 0x20 is one that borrows when 0x20 is taken from it with its top bit clear. */
static int has_low_byte(const char *t, size_t len) {
    const uint64_t ones = 0x0101010101010101ULL, high = 0x8080808080808080ULL;
    uint64_t acc = 0, w;
    size_t i = 0;
    for (; i + 8 <= len; i += 8) {
        memcpy(&w, t + i, 8);
        acc |= (w - 0x20 * ones) & ~w & high;
    }
    for (; i < len; i++)
        acc |= (unsigned char)t[i] < 0x20;
    return acc != 0;
}

/* The numbers of the n members' names into codes (0: kept as text); returns the packed
 * length of t, or len when nothing is packed. */
static size_t pack_plan(jn_join *j, const char *t, size_t len, int n, uint8_t *codes) {
    if (n > PACK_MAX || has_low_byte(t, len)) return len;
    size_t out = len;
    int hint = 0;
    for (int i = 0; i < n; i++) {
        codes[i] = name_code(&j->names, t, &j->m[i], &hint);
        if (codes[i]) out -= j->m[i].klen + 2;
    }
    return out;
}

static void pack(const jn_join *j, const char *t, size_t len, int n, const uint8_t *codes,
                 char *out) {
    size_t at = 0;
    for (int i = 0; i < n; i++) {
        if (!codes[i]) continue;
        size_t tok = j->m[i].key - 1;
        memcpy(out, t + at, tok - at);
        out += tok - at;
        *out++ = (char)codes[i];
        at = j->m[i].val;
    }
    memcpy(out, t + at, len - at);
}

/* c's text as received: unpacked into j->plain when packed. */
static const char *plain_of(jn_join *j, cust *c, size_t *len) {
    const char *t = text_of(c), *end = t + c->tlen, *run = t;
    if (!c->packed) {
        *len = c->tlen;
        return t;
    }
    jn_sb *p = &j->plain;
    p->len = 0;
    jn_sb_reserve(p, c->tlen * 2);
    for (const char *q = t; q < end; q++) {
        unsigned char b = (unsigned char)*q;
        if (b >= 0x20) continue;
        jn_sb_append(p, run, (size_t)(q - run));
        jn_sb_append(p, j->names.tok[b], j->names.len[b]);
        run = q + 1;
    }
    jn_sb_append(p, run, (size_t)(end - run));
    *len = p->len;
    return p->data;
}

/* Keeps the stream record text (canonical, n members in j->m) under its id: the new
 * version replaces the old one, in the index too. Returns it, or NULL when the record
 * cannot be kept (*reason set). */
static cust *keep(jn_join *j, const char *t, size_t len, int32_t part, int restored, int n,
                  char **reason) {
    const jn_json_member *idm = member_named(j, n, t, "id");
    const char *k = "";
    size_t klen = 0;
    if (idm) key_span(t + idm->val, idm->vlen, &k, &klen);
    if (restored && j->custs.cap) {
        /* The stream may be read while its changelog is replayed: what it brought is
         * newer than anything replayed (the replay stops where the stream starts). */
        cust *cur = map_get(&j->custs, hash(k, klen), k, klen);
        if (cur && !cur->restored) return cur;
    }
    if (klen > UINT16_MAX || len > UINT32_MAX) {
        *reason = jn_errorf("a record of stream %s too large to keep", j->spec->stream);
        return NULL;
    }
    const jn_json_member *rm = member_named(j, n, t, j->spec->refs);
    span small[16], *refs;
    size_t nrefs = rm ? distinct_refs(t + rm->val, rm->vlen, &refs, small, 16) : 0;
    if (!rm) refs = small;
    if (nrefs > UINT16_MAX) nrefs = UINT16_MAX;
    uint8_t codes[PACK_MAX];
    size_t plen = pack_plan(j, t, len, n, codes);
    size_t size = sizeof(cust) + nrefs * (sizeof(ref *) + sizeof(uint32_t)) + klen + 1 + plen + 1;
    cust *c = malloc(size);
    if (!c) abort();
    c->h = hash(k, klen);
    c->klen = (uint16_t)klen;
    c->nrefs = (uint16_t)nrefs;
    c->tlen = (uint32_t)plen;
    c->packed = plen != len;
    c->held = 0;
    c->part = part >= 0 && part < UINT16_MAX ? (uint16_t)part : UINT16_MAX;
    if (c->part == UINT16_MAX) j->wide = 1;
    c->restored = (uint8_t)restored;
    memcpy(key_of(c), k, klen);
    key_of(c)[klen] = '\0';
    if (c->packed)
        pack(j, t, len, n, codes, text_of(c));
    else
        memcpy(text_of(c), t, len);
    text_of(c)[plen] = '\0';
    cust *old = map_get(&j->custs, c->h, k, klen);
    int same = old && old->nrefs == nrefs;
    for (size_t i = 0; same && i < nrefs; i++) {
        ref *r = refs_of(old)[i];
        same = r->klen == refs[i].len && !memcmp(r->key, refs[i].k, refs[i].len);
    }
    if (same) {
        /* The same references: c takes old's places in the lists. */
        for (int i = 0; i < c->nrefs; i++) {
            ref *r = refs_of(old)[i];
            refs_of(c)[i] = r;
            pos_of(c)[i] = pos_of(old)[i];
            r->mem[pos_of(old)[i]] = c;
        }
    } else {
        if (old) unindex(old);
        for (size_t i = 0; i < nrefs; i++)
            ref_add(j, ref_get(j, refs[i].k, refs[i].len, 1), c, (int)i);
    }
    if (refs != small) free(refs);
    map_put(&j->custs, c->h, k, klen, c); /* finds old by its key: before it is freed */
    if (old) {
        c->held = old->held;
        j->bytes -= cust_bytes(old);
        free(old);
    }
    j->bytes += size + sizeof(void *);
    return c;
}

/* ---- merging ------------------------------------------------------------------------- */

static const char *stamp_of(jn_join *j, double now) {
    double s = floor(now), ms = floor((now - s) * 1000);
    if (s != j->stamp_s || ms != j->stamp_ms || !j->stamp[0]) {
        time_t sec = (time_t)s;
        struct tm tm;
        gmtime_r(&sec, &tm);
        /* As a JSON string: the quotes are part of what is spliced in. */
        size_t n = strftime(j->stamp, sizeof j->stamp, "\"%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(j->stamp + n, sizeof j->stamp - n, ".%03dZ\"", (int)ms);
        j->stamp_s = s, j->stamp_ms = ms;
    }
    return j->stamp;
}

/* jn_json_encode's key order: bytes, then length. */
static int key_cmp(const char *a, size_t alen, const char *b, size_t blen) {
    size_t n = alen < blen ? alen : blen;
    int c = memcmp(a, b, n);
    return c ? c : (alen > blen) - (alen < blen);
}

typedef struct {
    const char *name;
    size_t len;
    const char *val; /* NULL: the member is dropped */
    size_t vlen;
} field;

static void sort_fields(field *f, int n) {
    for (int i = 1; i < n; i++) {
        field x = f[i];
        int k = i;
        for (; k > 0 && key_cmp(x.name, x.len, f[k - 1].name, f[k - 1].len) < 0; k--)
            f[k] = f[k - 1];
        f[k] = x;
    }
}

/* Appends c merged at time now to the output; returns whether a table record it
 * references is missing. t: c's text as received, its n members in j->m already (the
 * record of this call was just read); or NULL and n -1 to unpack and read c's own. */
static int merge(jn_join *j, cust *c, const char *t, size_t tlen, double now, int n) {
    if (!t) t = plain_of(j, c, &tlen);
    if (n < 0) n = members(j, t, tlen);
    if (n < 0) n = 0; /* kept, so it was read once: cannot happen */
    const jn_json_member *rm = member_named(j, n, t, j->spec->refs);
    jn_sb *list = &j->list, *miss = &j->missing;
    list->len = miss->len = 0;
    jn_sb_putc(list, '[');
    jn_sb_putc(miss, '[');
    const char *p = NULL, *e = NULL;
    while (rm && next_element(t + rm->val, rm->vlen, &p, &e)) {
        const char *k;
        size_t klen;
        key_span(p, (size_t)(e - p), &k, &klen);
        ref *r = ref_get(j, k, klen, 0);
        jn_sb *to = r && r->rec ? list : miss;
        if (to->len > 1) jn_sb_putc(to, ',');
        if (to == list)
            jn_sb_append(list, r->rec, r->rlen);
        else if (*p == '"')
            jn_sb_append(miss, p, (size_t)(e - p));
        else
            jn_sb_json_string(miss, k, klen); /* a number's key is a string */
    }
    jn_sb_putc(list, ']');
    jn_sb_putc(miss, ']');
    int missing = miss->len > 2;

    field set[3];
    int ns = 0;
    const jn_join_spec *s = j->spec;
    set[ns++] = (field){s->into, strlen(s->into), list->data, list->len};
    if (s->missing)
        set[ns++] = (field){s->missing, strlen(s->missing), missing ? miss->data : NULL,
                            missing ? miss->len : 0};
    if (s->stamp) {
        const char *st = stamp_of(j, now);
        set[ns++] = (field){s->stamp, strlen(s->stamp), st, strlen(st)};
    }
    sort_fields(set, ns);

    if (j->nout == j->outcap) {
        j->outcap = j->outcap ? j->outcap * 2 : 16;
        j->out = realloc(j->out, j->outcap * sizeof *j->out);
        if (!j->out) abort();
    }
    jn_join_out *o = &j->out[j->nout++];
    jn_sb *out = &j->text;
    o->off = out->len;
    o->id_off = -1;
    jn_sb_reserve(out, tlen + list->len + miss->len + 64);
    jn_sb_putc(out, '{');
    int first = 1, f = 0;
    for (int i = 0; i < n || f < ns;) {
        const jn_json_member *mm = i < n ? &j->m[i] : NULL;
        /* < 0: the field set goes first; 0: it replaces the member; > 0: the member */
        int order = !mm ? -1 : f < ns ? key_cmp(set[f].name, set[f].len, t + mm->key, mm->klen) : 1;
        if (order <= 0) {
            if (set[f].val) {
                if (!first) jn_sb_putc(out, ',');
                first = 0;
                jn_sb_putc(out, '"');
                jn_sb_append(out, set[f].name, set[f].len);
                jn_sb_append(out, "\":", 2);
                jn_sb_append(out, set[f].val, set[f].vlen);
            }
            f++;
            i += order == 0;
            continue;
        }
        if (!first) jn_sb_putc(out, ',');
        first = 0;
        jn_sb_append(out, t + mm->key - 1, mm->klen + 3 + mm->vlen); /* "key":value */
        if (name_is(t, mm, "id", 2) && *(t + mm->val) != '{' && *(t + mm->val) != '[') {
            const char *k;
            size_t klen;
            key_span(t + mm->val, mm->vlen, &k, &klen);
            if (klen < 64) {
                o->id_off = (long)(out->len - mm->vlen + (size_t)(k - (t + mm->val)));
                o->id_len = klen;
            }
        }
        i++;
    }
    if (first) {
        out->len = o->off;
        jn_sb_puts(out, "[]"); /* no member at all: an empty table's encoding */
    } else {
        jn_sb_putc(out, '}');
    }
    o->len = out->len - o->off;
    return missing;
}

/* Drops the last record of the output (one that is held, not delivered). */
static void unmerge(jn_join *j) {
    j->nout--;
    j->text.len = j->out[j->nout].off;
}

/* ---- holding ------------------------------------------------------------------------- */

static void hold(jn_join *j, cust *c, double now) {
    if (c->held != 0) return;
    if (++j->tickets == 0) j->tickets = 1; /* 0 means not held */
    c->held = j->tickets;
    j->nheld++;
    if (j->qlen == j->qcap) {
        size_t cap = j->qcap ? j->qcap * 2 : 64;
        held_entry *q = malloc(cap * sizeof *q);
        if (!q) abort();
        for (size_t i = 0; i < j->qlen; i++)
            q[i] = j->q[(j->qhead + i) % j->qcap];
        free(j->q);
        j->q = q, j->qcap = cap, j->qhead = 0;
    }
    held_entry *h = &j->q[(j->qhead + j->qlen++) % j->qcap];
    h->key = malloc(c->klen + 1);
    if (!h->key) abort();
    memcpy(h->key, key_of(c), c->klen + 1);
    h->klen = c->klen;
    h->since = now;
    h->ticket = c->held;
}

static void unhold(jn_join *j, cust *c) {
    if (c->held == 0) return;
    c->held = 0;
    j->nheld--;
}

static void pop_held(jn_join *j) {
    free(j->q[j->qhead].key);
    j->qhead = (j->qhead + 1) % j->qcap;
    j->qlen--;
}

/* The oldest record held (stale entries before it dropped), or NULL. */
static cust *oldest_held(jn_join *j, double *since) {
    while (j->qlen) {
        held_entry *h = &j->q[j->qhead];
        cust *c = map_get(&j->custs, hash(h->key, h->klen), h->key, h->klen);
        if (c && c->held == h->ticket) {
            *since = h->since;
            return c;
        }
        pop_held(j);
    }
    return NULL;
}

/* Releases the oldest held records while more than hold_max are held. */
static void over_capacity(jn_join *j, double now) {
    double since;
    cust *c;
    while (j->nheld > (size_t)j->hold_max && (c = oldest_held(j, &since))) {
        pop_held(j);
        unhold(j, c);
        merge(j, c, NULL, 0, now, -1);
    }
}

/* ---- calls --------------------------------------------------------------------------- */

jn_join *jn_join_new(jn_join_spec *spec, long hold_ms, long hold_max) {
    jn_join *j = calloc(1, sizeof *j);
    if (!j) abort();
    j->spec = spec;
    j->hold_ms = hold_ms;
    j->hold_max = hold_max;
    j->custs.custs = 1;
    jn_sb_init(&j->text);
    jn_sb_init(&j->list);
    jn_sb_init(&j->missing);
    jn_sb_init(&j->plain);
    return j;
}

static void free_custs(jn_join *j) {
    for (size_t i = 0; i < j->custs.cap; i++)
        free(j->custs.slot[i]);
    free(j->custs.slot);
    free(j->custs.tag);
    j->custs = (map){.custs = 1};
    while (j->qlen)
        pop_held(j);
    j->nheld = 0;
}

void jn_join_free(jn_join *j) {
    if (!j) return;
    free_custs(j);
    for (size_t i = 0; i < j->refs.cap; i++) {
        ref *r = j->refs.slot[i];
        if (r) free(r->mem), free(r->rec), free(r);
    }
    free(j->refs.slot);
    free(j->refs.tag);
    free(j->q);
    free(j->out);
    free(j->m);
    jn_sb_free(&j->text);
    jn_sb_free(&j->list);
    jn_sb_free(&j->missing);
    jn_sb_free(&j->plain);
    for (int i = 1; i < j->names.n; i++)
        free(j->names.tok[i]);
    jn_join_spec_free(j->spec);
    free(j);
}

void jn_join_respec(jn_join *j, jn_join_spec *spec) {
    jn_join_spec_free(j->spec);
    j->spec = spec;
}

const jn_join_spec *jn_join_spec_of(const jn_join *j) {
    return j->spec;
}

static void reset_output(jn_join *j) {
    j->text.len = 0;
    j->nout = 0;
}

static int read_members(jn_join *j, const char *json, size_t len, const char *what, char **reason) {
    int n = members(j, json, len);
    if (n < 0) *reason = jn_errorf("a record of %s is not a canonical JSON object", what);
    return n;
}

int jn_join_stream(jn_join *j, const char *json, size_t len, int32_t part, double now, int *held,
                   char **reason) {
    reset_output(j);
    *held = 0;
    int n = read_members(j, json, len, j->spec->stream, reason);
    note_id(j, json, n);
    if (n < 0) return -1;
    cust *c = keep(j, json, len, part, 0, n, reason);
    if (!c) return -1;
    if (merge(j, c, json, len, now, n) && j->hold_ms > 0 && j->hold_max > 0) {
        /* Held: the record waits for a later one with its id. */
        unmerge(j);
        *held = 1;
        hold(j, c, now);
        over_capacity(j, now);
        return 0;
    }
    unhold(j, c);
    return 0;
}

int jn_join_table(jn_join *j, const char *json, size_t len, double now, char **reason) {
    reset_output(j);
    int n = read_members(j, json, len, j->spec->table, reason);
    note_id(j, json, n);
    if (n < 0) return -1;
    const jn_json_member *idm = member_named(j, n, json, "id");
    const char *k = "";
    size_t klen = 0;
    if (idm) key_span(json + idm->val, idm->vlen, &k, &klen);
    ref *r = ref_get(j, k, klen, 1);
    if (!r) {
        *reason = jn_errorf("a record of table %s with an id too long to keep", j->spec->table);
        return -1;
    }
    /* The fields kept, in order (both lists are sorted). */
    jn_sb *rec = &j->list;
    rec->len = 0;
    if (j->spec->fields) {
        jn_sb_putc(rec, '{');
        int i = 0;
        for (int f = 0; f < j->spec->nfields; f++) {
            const char *name = j->spec->fields[f];
            size_t nlen = strlen(name);
            while (i < n && key_cmp(json + j->m[i].key, j->m[i].klen, name, nlen) < 0)
                i++;
            if (i < n && name_is(json, &j->m[i], name, nlen)) {
                if (rec->len > 1) jn_sb_putc(rec, ',');
                jn_sb_append(rec, json + j->m[i].key - 1, j->m[i].klen + 3 + j->m[i].vlen);
            }
        }
        if (rec->len == 1) {
            rec->len = 0;
            jn_sb_puts(rec, "[]"); /* no field: an empty table's encoding */
        } else {
            jn_sb_putc(rec, '}');
        }
    } else {
        jn_sb_append(rec, json, len);
    }
    if (r->rec && r->rlen == rec->len && !memcmp(r->rec, rec->data, rec->len)) return 0;
    j->bytes += rec->len - (r->rec ? r->rlen : 0);
    free(r->rec);
    r->rec = malloc(rec->len + 1);
    if (!r->rec) abort();
    memcpy(r->rec, rec->data, rec->len);
    r->rec[rec->len] = '\0';
    r->rlen = (uint32_t)rec->len;
    /* Every stream record referencing it goes out again; a held one only once nothing is
     * missing any more. */
    for (uint32_t i = 0; i < r->n; i++) {
        cust *c = r->mem[i];
        if (merge(j, c, NULL, 0, now, -1) && c->held != 0) {
            unmerge(j);
            continue;
        }
        unhold(j, c);
    }
    return 0;
}

int jn_join_expire(jn_join *j, double now) {
    reset_output(j);
    double deadline = now - (double)j->hold_ms / 1000, since;
    cust *c;
    while ((c = oldest_held(j, &since)) && since <= deadline) {
        pop_held(j);
        unhold(j, c);
        merge(j, c, NULL, 0, now, -1);
    }
    over_capacity(j, now);
    return 0;
}

int jn_join_restore(jn_join *j, const char *json, size_t len, int32_t part, char **reason) {
    reset_output(j);
    int n = read_members(j, json, len, j->spec->stream, reason);
    if (n < 0) return -1;
    return keep(j, json, len, part, 1, n, reason) ? 0 : -1;
}

int jn_join_keep_partitions(jn_join *j, const int32_t *parts, int n) {
    if (j->wide) return -1;
    /* Nothing is held any more: the messages held were not settled, so they come again. */
    while (j->qlen)
        pop_held(j);
    j->nheld = 0;
    map m = j->custs;
    j->custs = (map){.custs = 1};
    for (size_t i = 0; i < m.cap; i++) {
        cust *c = m.slot[i];
        if (!c) continue;
        c->held = 0;
        int kept = 0;
        for (int k = 0; k < n && !kept; k++)
            kept = parts[k] == c->part;
        if (kept) {
            map_put(&j->custs, c->h, key_of(c), c->klen, c);
            continue;
        }
        unindex(c);
        j->bytes -= cust_bytes(c);
        free(c);
    }
    free(m.slot);
    free(m.tag);
    return 0;
}

void jn_join_forget(jn_join *j) {
    free_custs(j);
    j->wide = 0;
    for (size_t i = 0; i < j->refs.cap; i++) {
        ref *r = j->refs.slot[i];
        if (r) r->n = 0;
    }
    /* What the refs hold stays: the table, and the lists' memory. */
    j->bytes = 0;
    for (size_t i = 0; i < j->refs.cap; i++) {
        ref *r = j->refs.slot[i];
        if (r)
            j->bytes +=
                sizeof *r + r->klen + 1 + r->cap * sizeof(cust *) + r->rlen + sizeof(void *);
    }
}

const jn_join_out *jn_join_output(const jn_join *j, size_t *n) {
    *n = j->nout;
    return j->out;
}

const char *jn_join_text(const jn_join *j) {
    return j->text.data;
}

void jn_join_get_stats(const jn_join *j, jn_join_stats *st) {
    st->records = j->custs.n;
    st->bytes = j->bytes + (j->custs.cap + j->refs.cap) * (sizeof(void *) + 1);
}
