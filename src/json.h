/* JSON encoding of Lua values with a fixed key order: named keys first (so records read
 * like the original APIs' output, "id" first), the rest sorted. With no named keys it is
 * canonical JSON with sorted keys, stable across runs, which is what content hashes need
 * (Lua's own table order changes from run to run). */
#ifndef JN_JSON_H
#define JN_JSON_H

#include <lua.h>

#include "buf.h"

/* Encodes the value at idx. Returns 0, or -1 with *err (static text) for a value JSON
 * cannot hold (a function, NaN, a cycle deeper than 64 levels). An empty table encodes
 * as []. */
int jn_json_encode(lua_State *L, int idx, const char *const *first_keys, jn_sb *out,
                   const char **err);

/* Decodes JSON text onto the Lua stack. Integers that fit in 64 bits become Lua
 * integers (1 stays 1, never 1.0, so ids keep their form through tostring), null becomes
 * a NULL light userdata (encoded back as null). Returns 0, or -1 with a message naming
 * the byte offset in err (cap bytes). Pushes nothing on failure. */
int jn_json_decode(lua_State *L, const char *data, size_t len, char *err, size_t cap);

/* What the JSON value whose text starts with c is ("an object", "a string", ...), for
 * messages about valid JSON of the wrong kind. */
const char *jn_json_kind(char c);

/* An element of a JSON array: its bytes are [off, off + len) of the text. */
typedef struct {
    size_t off, len;
} jn_json_span;

/* Checks that data is one JSON array, exactly as strict as jn_json_decode, without
 * building anything, and gives the place of each element (malloc'd array in *spans, to
 * free; NULL when empty). Lets a caller decode a large response one element at a time.
 * Returns 0; -1 when data is not JSON; -2 when it is JSON but not an array; err (cap
 * bytes) says why. */
int jn_json_array_spans(const char *data, size_t len, jn_json_span **spans, size_t *n, char *err,
                        size_t cap);

/* Walking text already checked (by jn_json_array_spans or jn_json_decode), without
 * checking it again: what text that was not checked gives is unspecified, but stays
 * within [p, end). */
/* p past any whitespace. */
const char *jn_json_skip_ws(const char *p, const char *end);
/* The end of the value that starts at p. */
const char *jn_json_skip_value(const char *p, const char *end);
/* In the object that starts at obj (after any whitespace), where the value of its last
 * member called name starts (the one jn_json_decode keeps; a name spelled with escapes
 * counts as its decoded self), or NULL when it has none or obj is no object. */
const char *jn_json_find_member(const char *obj, const char *end, const char *name);

/* Whether data is exactly what jn_json_encode (no named keys) gives for the value it
 * decodes to: then its bytes can be hashed as they are, without decoding and encoding
 * again. A 0 only means "take the slow path": escapes, fractions and empty objects are
 * not checked here. */
int jn_json_is_canonical(const char *data, size_t len);

/* A member of a JSON object: its key's bytes (without quotes) are [key, key + klen) of the
 * text, its value's [val, val + vlen). */
typedef struct {
    size_t key, klen, val, vlen;
} jn_json_member;

/* When data is one object in canonical form (as jn_json_is_canonical), gives the place
 * of each of its members, in order (so sorted by key), into m (max entries); their keys
 * hold no escapes. Returns how many, or -1 when data is not such an object or has more
 * than max members. One pass over the text, nothing decoded. */
int jn_json_canonical_members(const char *data, size_t len, jn_json_member *m, size_t max);

/* The same for an object whose members may come in any order (what an API sends) but
 * are otherwise canonical: no spaces, keys without escapes and distinct, values in
 * canonical form. *sorted tells whether the keys are in order (then the whole text is
 * canonical). */
int jn_json_object_members(const char *data, size_t len, jn_json_member *m, size_t max,
                           int *sorted);

/* The same for text the caller already found canonical (jn_json_is_canonical): only finds
 * the members, trusting the text's shape, in a fraction of the time. Still never reads
 * outside the text, and gives -1 for text not shaped so. */
int jn_json_members_of_canonical(const char *data, size_t len, jn_json_member *m, size_t max);

#endif
