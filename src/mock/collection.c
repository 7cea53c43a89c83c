/* Record store. Records keep insertion order in a vector (the order GET returns);
 * an open-addressing table maps ids to vector slots. Removal is O(n), which mock APIs
 * can afford; reads are O(1). Pages walk a second order, by id, sorted when first asked
 * for after the set of ids changed. */
#include "collection.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    char *id;
    char *json;
    size_t len;
    char etag[24];
    int numeric;        /* the id is digits only, of a value up to JN_ID_MAX ... */
    long long id_value; /* ... this value */
} record;

struct jn_collection {
    record *recs;
    size_t n, cap;
    size_t *slots; /* index+1 into recs, 0 = empty */
    size_t nslots;
    jn_rbuf *array;
    char array_etag[72];
    size_t *order; /* indexes into recs by id; stale when order_stale */
    int order_stale;
};

static size_t hash(const char *s) {
    size_t h = 1469598103934665603ull;
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ull;
    return h;
}

static void make_etag(const char *data, size_t len, char *out, size_t cap) {
    char hex[65];
    jn_sha256_hex(data, len, hex);
    /* 16 hex digits (64 bits) tell versions of one resource apart. */
    out[0] = '"';
    memcpy(out + 1, hex, 16);
    out[17] = '"';
    out[18] = '\0';
    (void)cap;
}

static void reindex(jn_collection *c) {
    size_t want = 16;
    while (want < c->n * 2 + 2)
        want *= 2;
    free(c->slots);
    c->slots = calloc(want, sizeof *c->slots);
    if (!c->slots) abort();
    c->nslots = want;
    for (size_t i = 0; i < c->n; i++) {
        size_t h = hash(c->recs[i].id) & (want - 1);
        while (c->slots[h])
            h = (h + 1) & (want - 1);
        c->slots[h] = i + 1;
    }
}

static long find(const jn_collection *c, const char *id) {
    if (!c->nslots) return -1;
    size_t h = hash(id) & (c->nslots - 1);
    while (c->slots[h]) {
        if (!strcmp(c->recs[c->slots[h] - 1].id, id)) return (long)(c->slots[h] - 1);
        h = (h + 1) & (c->nslots - 1);
    }
    return -1;
}

/* Ids that are integers sort by value ("9" before "10"), the way a person reads them:
 * whether id is one, and its value in *value (0 when not). */
static int numeric_id(const char *id, long long *value) {
    size_t len = strlen(id);
    int numeric = len > 0 && strspn(id, "0123456789") == len;
    *value = 0;
    if (numeric) {
        errno = 0;
        *value = strtoll(id, NULL, 10);
        /* Larger ones go with the other ids, by their bytes. */
        if (errno == ERANGE) numeric = 0, *value = 0;
    }
    return numeric;
}

static void set_id_key(record *r) {
    r->numeric = numeric_id(r->id, &r->id_value);
}

/* Integer ids by value, before every other id; the rest, and ties ("7" and "007"), by
 * their bytes: a total order, so a page boundary never falls between equals. a against
 * the id whose key numeric_id gave. */
static int compare_to(const record *a, const char *id, int numeric, long long value) {
    if (a->numeric != numeric) return a->numeric ? -1 : 1;
    if (a->numeric && a->id_value != value) return a->id_value < value ? -1 : 1;
    return strcmp(a->id, id);
}

static int compare_ids(const record *a, const record *b) {
    return compare_to(a, b->id, b->numeric, b->id_value);
}

static int compare_records(const void *a, const void *b) {
    return compare_ids(*(record *const *)a, *(record *const *)b);
}

static void invalidate(jn_collection *c) {
    jn_rbuf_unref(c->array);
    c->array = NULL;
}

jn_collection *jn_collection_new(void) {
    jn_collection *c = calloc(1, sizeof *c);
    if (!c) abort();
    reindex(c);
    return c;
}

void jn_collection_free(jn_collection *c) {
    if (!c) return;
    free(c->order);
    for (size_t i = 0; i < c->n; i++)
        free(c->recs[i].id), free(c->recs[i].json);
    free(c->recs);
    free(c->slots);
    jn_rbuf_unref(c->array);
    free(c);
}

void jn_collection_put(jn_collection *c, const char *id, const char *json, size_t len) {
    long at = find(c, id);
    record *r;
    if (at >= 0) {
        r = &c->recs[at];
        free(r->json);
    } else {
        if (c->n == c->cap) {
            c->cap = c->cap ? c->cap * 2 : 64;
            c->recs = realloc(c->recs, c->cap * sizeof *c->recs);
            if (!c->recs) abort();
        }
        r = &c->recs[c->n++];
        r->id = strdup(id);
        set_id_key(r);
        c->order_stale = 1;
        if (c->n * 2 + 2 > c->nslots)
            reindex(c);
        else {
            size_t h = hash(id) & (c->nslots - 1);
            while (c->slots[h])
                h = (h + 1) & (c->nslots - 1);
            c->slots[h] = c->n;
        }
    }
    r->json = malloc(len + 1);
    if (!r->json) abort();
    memcpy(r->json, json, len);
    r->json[len] = '\0';
    r->len = len;
    make_etag(json, len, r->etag, sizeof r->etag);
    invalidate(c);
}

int jn_collection_remove(jn_collection *c, const char *id) {
    long at = find(c, id);
    if (at < 0) return -1;
    free(c->recs[at].id);
    free(c->recs[at].json);
    memmove(&c->recs[at], &c->recs[at + 1], (c->n - (size_t)at - 1) * sizeof *c->recs);
    c->n--;
    reindex(c);
    invalidate(c);
    c->order_stale = 1;
    return 0;
}

const char *jn_collection_get(const jn_collection *c, const char *id, size_t *len,
                              const char **etag) {
    long at = find(c, id);
    if (at < 0) return NULL;
    *len = c->recs[at].len;
    if (etag) *etag = c->recs[at].etag;
    return c->recs[at].json;
}

size_t jn_collection_count(const jn_collection *c) {
    return c->n;
}

int jn_collection_next_id(const jn_collection *c, long long *out) {
    long long max = 0;
    for (size_t i = 0; i < c->n; i++)
        if (c->recs[i].numeric && c->recs[i].id_value > max) max = c->recs[i].id_value;
    if (max == JN_ID_MAX) return -1;
    *out = max + 1;
    return 0;
}

int jn_collection_parse_id(const char *s, long long *out) {
    size_t len = strlen(s);
    if (!len || strspn(s, "0123456789") != len || (s[0] == '0' && len > 1)) return JN_ID_NOT_PLAIN;
    /* Digits without a leading zero: the longer, the larger; of one length, by bytes. */
    size_t max_len = sizeof JN_ID_MAX_STR - 1;
    if (len > max_len || (len == max_len && strcmp(s, JN_ID_MAX_STR) > 0) || !strcmp(s, "0"))
        return JN_ID_OUT_OF_RANGE;
    *out = strtoll(s, NULL, 10);
    return 0;
}

static jn_rbuf *build(const jn_collection *c, size_t from, size_t to) {
    size_t total = 2;
    for (size_t i = from; i < to; i++)
        total += c->recs[i].len + 1;
    jn_sb sb;
    jn_sb_init(&sb);
    jn_sb_reserve(&sb, total);
    jn_sb_putc(&sb, '[');
    for (size_t i = from; i < to; i++) {
        if (i > from) jn_sb_putc(&sb, ',');
        jn_sb_append(&sb, c->recs[i].json, c->recs[i].len);
    }
    jn_sb_putc(&sb, ']');
    return jn_rbuf_from_sb(&sb);
}

jn_rbuf *jn_collection_array(jn_collection *c, const char **etag) {
    if (!c->array) {
        c->array = build(c, 0, c->n);
        make_etag(c->array->data, c->array->len, c->array_etag, sizeof c->array_etag);
    }
    *etag = c->array_etag;
    return jn_rbuf_ref(c->array);
}

jn_rbuf *jn_collection_slice(const jn_collection *c, size_t offset, size_t limit, char etag[72]) {
    size_t from = offset < c->n ? offset : c->n;
    size_t to = limit < c->n - from ? from + limit : c->n;
    jn_rbuf *b = build(c, from, to);
    make_etag(b->data, b->len, etag, 72);
    return b;
}

/* The order by id, sorted again after ids were added or removed. */
static const size_t *order(jn_collection *c) {
    if (!c->order_stale && (c->order || !c->n)) return c->order;
    record **by_id = malloc((c->n ? c->n : 1) * sizeof *by_id);
    size_t *o = realloc(c->order, (c->n ? c->n : 1) * sizeof *o);
    if (!by_id || !o) abort();
    for (size_t i = 0; i < c->n; i++)
        by_id[i] = &c->recs[i];
    qsort(by_id, c->n, sizeof *by_id, compare_records);
    for (size_t i = 0; i < c->n; i++)
        o[i] = (size_t)(by_id[i] - c->recs);
    free(by_id);
    c->order = o;
    c->order_stale = 0;
    return o;
}

size_t jn_collection_page(jn_collection *c, size_t from, size_t limit, jn_sb *out) {
    const size_t *o = order(c);
    size_t to = from < c->n ? (limit < c->n - from ? from + limit : c->n) : from;
    jn_sb_putc(out, '[');
    for (size_t i = from; i < to; i++) {
        if (i > from) jn_sb_putc(out, ',');
        jn_sb_append(out, c->recs[o[i]].json, c->recs[o[i]].len);
    }
    jn_sb_putc(out, ']');
    return to > from ? to - from : 0;
}

size_t jn_collection_position_after(jn_collection *c, const char *id) {
    const size_t *o = order(c);
    long long value;
    int numeric = numeric_id(id, &value);
    size_t lo = 0, hi = c->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (compare_to(&c->recs[o[mid]], id, numeric, value) <= 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

const char *jn_collection_id_at(jn_collection *c, size_t pos) {
    return pos < c->n ? c->recs[order(c)[pos]].id : NULL;
}
